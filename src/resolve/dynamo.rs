//! `Directory` on DynamoDB (aws-sdk-dynamodb), for the Lambda and any run
//! against the real tables. Every lookup of a batch is de-duplicated, served
//! from an in-process cache (positive and negative entries, with TTLs) when
//! it can be, and otherwise batched: BatchGetItem in chunks of 100 keys with
//! `UnprocessedKeys` retried under backoff, Queries run concurrently. The
//! cache lives as long as the process, so it survives across invocations of
//! a warm Lambda; it holds `CachePolicy::max_entries` at most
//! (`resolve::cache`).

use super::cache::LookupCache;
pub use super::tables::{CachePolicy, TableNames};
use super::{Directory, DirectoryError, ExternalAccount};
use crate::domain::Integration;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum CacheKey {
    Slack(Integration, String),
    IcarusTz(String),
    AcsTz(String),
    ConversationAccount(String),
}

/// Lookup statistics, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

pub struct DynamoDirectory {
    client: Client,
    tables: TableNames,
    cache: LookupCache<CacheKey>,
    stats: Mutex<CacheStats>,
}

/// Keys per BatchGetItem request (the service maximum).
const BATCH_GET_MAX: usize = 100;
/// Attempts at draining `UnprocessedKeys` before the lookup fails.
const UNPROCESSED_ATTEMPTS: u32 = 8;
/// Queries in flight at once.
const QUERY_CONCURRENCY: usize = 16;

fn lookup_err(what: &str, e: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Lookup(format!("{what}: {e}"))
}

fn s_attr<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(s)) if !s.is_empty() => Some(s.as_str()),
        _ => None,
    }
}

impl DynamoDirectory {
    pub fn new(client: Client, tables: TableNames, policy: CachePolicy) -> DynamoDirectory {
        DynamoDirectory {
            client,
            tables,
            cache: LookupCache::new(policy),
            stats: Mutex::new(CacheStats::default()),
        }
    }

    /// Entries in the lookup cache.
    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }

    pub fn cache_stats(&self) -> CacheStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Split `keys` into cached answers and keys still to look up.
    fn cached<K: Clone>(
        &self,
        keys: &[K],
        key: impl Fn(&K) -> CacheKey,
    ) -> (HashMap<CacheKey, Option<String>>, Vec<K>) {
        let (hit, miss) = self.cache.split(keys, key, Instant::now());
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.hits += hit.len() as u64;
        stats.misses += miss.len() as u64;
        (hit, miss)
    }

    fn remember(&self, entries: impl IntoIterator<Item = (CacheKey, Option<String>)>) {
        self.cache.insert_all(entries, Instant::now());
    }

    /// `key_attr` → `value_attr` for `keys` of `table`, by BatchGetItem.
    async fn batch_get(
        &self,
        table: &str,
        key_attr: &str,
        keys: &[String],
        pick: impl Fn(&HashMap<String, AttributeValue>) -> Option<String>,
    ) -> Result<HashMap<String, String>, DirectoryError> {
        let mut out = HashMap::new();
        for chunk in keys.chunks(BATCH_GET_MAX) {
            let request_keys: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|k| HashMap::from([(key_attr.to_string(), AttributeValue::S(k.clone()))]))
                .collect();
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(request_keys))
                    .build()
                    .map_err(|e| lookup_err(table, e))?,
            );
            let mut attempt = 0;
            while let Some(ka) = pending.take() {
                let resp = self
                    .client
                    .batch_get_item()
                    .request_items(table, ka)
                    .send()
                    .await
                    .map_err(|e| {
                        lookup_err(
                            &format!("BatchGetItem on {table}"),
                            crate::aws_error::describe(&e),
                        )
                    })?;
                for item in resp
                    .responses()
                    .and_then(|r| r.get(table))
                    .into_iter()
                    .flatten()
                {
                    if let (Some(k), Some(v)) = (s_attr(item, key_attr), pick(item)) {
                        out.insert(k.to_string(), v);
                    }
                }
                if let Some(left) = resp
                    .unprocessed_keys()
                    .and_then(|u| u.get(table))
                    .filter(|ka| !ka.keys().is_empty())
                {
                    attempt += 1;
                    if attempt >= UNPROCESSED_ATTEMPTS {
                        return Err(DirectoryError::Lookup(format!(
                            "BatchGetItem on {table}: keys still unprocessed after {attempt} attempts (throttled)"
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(50 << attempt.min(6))).await;
                    pending = Some(left.clone());
                }
            }
        }
        Ok(out)
    }

    /// First item of a Query `attr = value` on `table` (optionally an index,
    /// optionally with a sort-key condition), as `value_attr`.
    async fn query_one(
        &self,
        table: &str,
        index: Option<&str>,
        conditions: &[(&str, &str)],
        value_attr: &str,
    ) -> Result<Option<String>, DirectoryError> {
        let expr = conditions
            .iter()
            .enumerate()
            .map(|(i, _)| format!("#k{i} = :v{i}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let mut q = self
            .client
            .query()
            .table_name(table)
            .key_condition_expression(expr)
            .limit(1);
        if let Some(index) = index {
            q = q.index_name(index);
        }
        for (i, (name, value)) in conditions.iter().enumerate() {
            q = q
                .expression_attribute_names(format!("#k{i}"), *name)
                .expression_attribute_values(
                    format!(":v{i}"),
                    AttributeValue::S(value.to_string()),
                );
        }
        let resp = q.send().await.map_err(|e| {
            lookup_err(&format!("Query on {table}"), crate::aws_error::describe(&e))
        })?;
        Ok(resp
            .items()
            .first()
            .and_then(|item| s_attr(item, value_attr))
            .map(str::to_string))
    }

    async fn slack_id_of(
        &self,
        account: &ExternalAccount,
    ) -> Result<Option<String>, DirectoryError> {
        let (integration, id) = account;
        let code = integration.code();
        if let Some(slack) = self
            .query_one(
                &self.tables.integrations,
                Some(&self.tables.integrations_index),
                &[("account_id", id), ("integration", code)],
                "slack_id",
            )
            .await?
        {
            return Ok(Some(slack));
        }
        match integration {
            Integration::Github => {
                self.query_one(
                    &self.tables.github_accounts,
                    Some(&self.tables.github_index),
                    &[("githubId", id)],
                    "slack_id",
                )
                .await
            }
            Integration::Dropbox => {
                self.query_one(
                    &self.tables.dropbox_accounts,
                    Some(&self.tables.dropbox_index),
                    &[("dropboxId", id)],
                    "slack_id",
                )
                .await
            }
            Integration::Email => Ok(None),
        }
    }
}

/// Run `f` over `items` with bounded concurrency, failing on the first error.
async fn concurrently<T, R, F, Fut>(items: Vec<T>, f: F) -> Result<Vec<(T, R)>, DirectoryError>
where
    T: Clone,
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<R, DirectoryError>>,
{
    use futures::stream::{self, StreamExt, TryStreamExt};
    stream::iter(items.into_iter().map(|t| {
        let fut = f(t.clone());
        async move { fut.await.map(|r| (t, r)) }
    }))
    .buffer_unordered(QUERY_CONCURRENCY)
    .try_collect()
    .await
}

fn found(
    hit: HashMap<CacheKey, Option<String>>,
    unwrap: impl Fn(CacheKey) -> Option<String>,
) -> HashMap<String, String> {
    hit.into_iter()
        .filter_map(|(k, v)| Some((unwrap(k)?, v?)))
        .collect()
}

impl Directory for DynamoDirectory {
    async fn slack_ids(
        &self,
        accounts: &[ExternalAccount],
    ) -> Result<HashMap<ExternalAccount, String>, DirectoryError> {
        let (hit, miss) = self.cached(accounts, |(i, id)| CacheKey::Slack(*i, id.clone()));
        let mut out: HashMap<ExternalAccount, String> = hit
            .into_iter()
            .filter_map(|(k, v)| match (k, v) {
                (CacheKey::Slack(i, id), Some(slack)) => Some(((i, id), slack)),
                _ => None,
            })
            .collect();
        let looked =
            concurrently(miss, |acct| async move { self.slack_id_of(&acct).await }).await?;
        self.remember(
            looked
                .iter()
                .map(|((i, id), v)| (CacheKey::Slack(*i, id.clone()), v.clone())),
        );
        out.extend(looked.into_iter().filter_map(|(k, v)| Some((k, v?))));
        Ok(out)
    }

    async fn icarus_time_zones(
        &self,
        slack_ids: &[String],
    ) -> Result<HashMap<String, String>, DirectoryError> {
        let (hit, miss) = self.cached(slack_ids, |s| CacheKey::IcarusTz(s.clone()));
        let mut out = found(hit, |k| match k {
            CacheKey::IcarusTz(s) => Some(s),
            _ => None,
        });
        let got = self
            .batch_get(&self.tables.accounts, "slack_id", &miss, |item| {
                s_attr(item, "tz").map(str::to_string)
            })
            .await?;
        self.remember(
            miss.iter()
                .map(|k| (CacheKey::IcarusTz(k.clone()), got.get(k).cloned())),
        );
        out.extend(got);
        Ok(out)
    }

    async fn acs_time_zones(
        &self,
        account_ids: &[String],
    ) -> Result<HashMap<String, String>, DirectoryError> {
        let (hit, miss) = self.cached(account_ids, |s| CacheKey::AcsTz(s.clone()));
        let mut out = found(hit, |k| match k {
            CacheKey::AcsTz(s) => Some(s),
            _ => None,
        });
        let got = self
            .batch_get(&self.tables.users, "id", &miss, |item| {
                s_attr(item, "timezone").map(str::to_string).or_else(|| {
                    match item.get("preferences") {
                        Some(AttributeValue::M(m)) => s_attr(m, "timezone").map(str::to_string),
                        _ => None,
                    }
                })
            })
            .await?;
        self.remember(
            miss.iter()
                .map(|k| (CacheKey::AcsTz(k.clone()), got.get(k).cloned())),
        );
        out.extend(got);
        Ok(out)
    }

    async fn conversation_accounts(
        &self,
        conversation_ids: &[String],
    ) -> Result<HashMap<String, String>, DirectoryError> {
        let (hit, miss) = self.cached(conversation_ids, |s| {
            CacheKey::ConversationAccount(s.clone())
        });
        let mut out = found(hit, |k| match k {
            CacheKey::ConversationAccount(s) => Some(s),
            _ => None,
        });
        let mut got = self
            .batch_get(&self.tables.threads, "conversation_id", &miss, |item| {
                s_attr(item, "associated_account").map(str::to_string)
            })
            .await?;
        // Fallback: the Conversations table (partition key conversation_id).
        let rest: Vec<String> = miss
            .iter()
            .filter(|c| !got.contains_key(*c))
            .cloned()
            .collect();
        let table = &self.tables.conversations;
        let fallback = concurrently(rest, |c| async move {
            self.query_one(
                table,
                None,
                &[("conversation_id", &c)],
                "associated_account",
            )
            .await
        })
        .await?;
        got.extend(fallback.into_iter().filter_map(|(c, a)| Some((c, a?))));
        self.remember(miss.iter().map(|k| {
            (
                CacheKey::ConversationAccount(k.clone()),
                got.get(k).cloned(),
            )
        }));
        out.extend(got);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_from_prefixes_and_overrides() {
        let overrides = HashMap::from([("Threads".to_string(), "custom-threads".to_string())]);
        let t = TableNames::from_prefixes("icarus-dev-", "acsd2p-dev-", &overrides);
        assert_eq!(t.integrations, "icarus-dev-integrations");
        assert_eq!(t.users, "acsd2p-dev-Users");
        assert_eq!(t.threads, "custom-threads");
        assert_eq!(t.github_index, "slackid_by_githubuser");
    }

    fn directory(max_entries: usize) -> DynamoDirectory {
        use aws_sdk_dynamodb::config::{BehaviorVersion, Region};
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .build();
        DynamoDirectory::new(
            Client::from_conf(conf),
            TableNames::from_prefixes("i-", "a-", &HashMap::new()),
            CachePolicy {
                max_entries,
                ..CachePolicy::default()
            },
        )
    }

    fn tz_keys(round: usize) -> Vec<String> {
        (0..100).map(|i| format!("U{round}-{i}")).collect()
    }

    fn tz_answer(round: usize, i: usize) -> Option<String> {
        (!i.is_multiple_of(3)).then(|| format!("tz-{round}-{i}"))
    }

    /// More lookups than the bound: the cache stays at the bound, the
    /// newest answers are served as they were remembered (found and not
    /// found), and evicted ones are looked up again, never answered wrong.
    #[test]
    fn the_lookup_cache_stays_within_its_bound() {
        let d = directory(100);
        for round in 0..5 {
            d.remember(
                tz_keys(round)
                    .into_iter()
                    .enumerate()
                    .map(|(i, k)| (CacheKey::IcarusTz(k), tz_answer(round, i))),
            );
            assert_eq!(d.cache_len(), 100, "after round {round}");
        }
        let (hit, miss) = d.cached(&tz_keys(4), |s| CacheKey::IcarusTz(s.clone()));
        assert!(miss.is_empty(), "{miss:?}");
        for (i, k) in tz_keys(4).into_iter().enumerate() {
            assert_eq!(hit[&CacheKey::IcarusTz(k)], tz_answer(4, i));
        }
        let (hit, miss) = d.cached(&tz_keys(0), |s| CacheKey::IcarusTz(s.clone()));
        assert!(hit.is_empty(), "{hit:?}");
        assert_eq!(miss, tz_keys(0));
    }
}
