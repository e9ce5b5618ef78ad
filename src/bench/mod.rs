//! `streamfold bench`: measures batch application against a baseline run on
//! the same engine, in the same process, on the same number of rows.
//!
//! * **apply**: generated Lambda batches (all four sources, ~5 % redelivered
//!   duplicates, ~2 % MODIFY, ~1 % application REMOVE) through `run_batch`;
//! * **bulk INSERT baseline**: the same number of ledger rows written with
//!   plain multi-row INSERTs into a scratch copy of the ledger table, one
//!   transaction per batch — the floor of getting those rows into the engine.
//!
//! Each round uses a fresh database (a temporary SQLite file, or a scratch
//! database created on the server and dropped afterwards).

pub mod baselines;
pub mod lambda;
pub mod suite;

use crate::pipeline::{Pipeline, run_event};
use crate::store::{Store, StoreError, StoreOptions};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Deterministic generator state (64-bit LCG; quality is irrelevant here).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }
}

const GH_USERS: [&str; 4] = ["alice-gh", "bobcodes", "carol", "dave-unlinked"];
const DB_USERS: [&str; 3] = ["dbid:AAALICE", "dbid:AABOB", "dbid:AAZED"];
const ACCOUNTS: [&str; 2] = ["acct-1001", "acct-1002"];
const CONVS: [&str; 3] = ["conv-a", "conv-b", "conv-zzz"];

fn iso(secs: u64) -> String {
    chrono::DateTime::from_timestamp(1_704_067_200 + secs as i64, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn item(kind: usize, i: usize, rng: &mut Lcg) -> (&'static str, Value, Value) {
    let t = rng.next() % 31_536_000;
    match kind {
        0 => (
            "icarus-prod-github_events",
            json!({"id":{"S":format!("gh-{i}")}}),
            json!({"id":{"S":format!("gh-{i}")},"eventType":{"S":"commit"},"object_type":{"S":"commit"},
                   "object_uri":{"S":format!("https://api.github.com/repos/acme/app/commits/{i:040x}")},
                   "username":{"S":GH_USERS[rng.below(4)]},"timestamp":{"S":iso(t)}}),
        ),
        1 => (
            "icarus-prod-dropbox_file_changes",
            json!({"account_id":{"S":format!("dbid:ACC{i}")}}),
            json!({"account_id":{"S":format!("dbid:ACC{i}")},"user_id":{"S":DB_USERS[rng.below(3)]},
                   "type":{"S":"file"},"path_lower":{"S":format!("/projects/report-{i}.xlsx")},
                   "timestamp":{"N":(1_704_067_200 + t).to_string()}}),
        ),
        2 => (
            "acsd2p-prod-Conversations",
            json!({"conversation_id":{"S":format!("conv-{}", i / 4)},"response_id":{"S":format!("resp-{i}")}}),
            json!({"conversation_id":{"S":format!("conv-{}", i / 4)},"response_id":{"S":format!("resp-{i}")},
                   "message_id":{"S":format!("msg-{i}")},"associated_account":{"S":ACCOUNTS[rng.below(2)]},
                   "sender_email":{"S":"sender@example.com"},"subject":{"S":"Quarterly numbers"},
                   "timestamp":{"S":iso(t)},"status":{"S":"received"},"ev_score":{"N":"0.85"}}),
        ),
        _ => {
            let conv = CONVS[rng.below(3)];
            (
                "acsd2p-prod-LLMDataCollection",
                json!({"conversation_id":{"S":conv}}),
                json!({"conversation_id":{"S":conv},"model_used":{"S":"meta-llama/Llama-3.3-70B-Instruct-Turbo"},
                       "prompt_tokens":{"N":"150"},"response_tokens":{"N":"200"},"total_tokens":{"N":"350"},
                       "response_time_ms":{"N":"2500"},"quality_score":{"N":"0.88"},
                       "generated_at":{"S":format!("{}.{:03}Z", iso(t).trim_end_matches('Z'), i % 1000)},
                       "metadata":{"M":{"cost_usd":{"N":"0.0025"},"function_name":{"S":"generate_email"}}}}),
            )
        }
    }
}

fn record(
    table: &str,
    name: &str,
    seq: u64,
    keys: Value,
    new: Option<Value>,
    old: Option<Value>,
) -> Value {
    let mut ddb = json!({
        "ApproximateCreationDateTime": 1_710_000_000 + seq / 10,
        "Keys": keys,
        "SequenceNumber": (4_421_584_500_000_000_000_000_000_000u128 + u128::from(seq)).to_string(),
        "SizeBytes": 300,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    if let Some(n) = new {
        ddb["NewImage"] = n;
    }
    if let Some(o) = old {
        ddb["OldImage"] = o;
    }
    json!({
        "eventID": format!("{seq:032x}"), "eventName": name, "eventVersion": "1.1",
        "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "dynamodb": ddb,
        "eventSourceARN": format!("arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/2024-01-02T03:04:05.678"),
    })
}

/// `n` generated stream records as Lambda event documents of `batch` records.
pub fn generate_events(n: usize, batch: usize, seed: u64) -> Vec<String> {
    let mut rng = Lcg(seed);
    let mut out: Vec<Value> = Vec::with_capacity(n);
    let mut live: Vec<(&'static str, Value, Value)> = Vec::new();
    let mut seq = 0u64;
    let mut i = 0usize;
    while out.len() < n {
        seq += 1;
        if !out.is_empty() && rng.chance(50) {
            let k = out.len().saturating_sub(5000) + rng.below(out.len().min(5000));
            out.push(out[k].clone());
        } else if !live.is_empty() && rng.chance(21) {
            let (table, keys, old) = live[rng.below(live.len())].clone();
            let mut new = old.clone();
            if new.get("timestamp").is_some() && rng.chance(500) {
                new["timestamp"] = json!({"S": iso(rng.next() % 31_536_000)});
            }
            new["status"] = json!({"S":"processed"});
            out.push(record(table, "MODIFY", seq, keys, Some(new), Some(old)));
        } else if !live.is_empty() && rng.chance(11) {
            let (table, keys, old) = live.swap_remove(rng.below(live.len()));
            out.push(record(table, "REMOVE", seq, keys, None, Some(old)));
        } else {
            i += 1;
            let (table, keys, new) = item(rng.below(4), i, &mut rng);
            live.push((table, keys.clone(), new.clone()));
            if live.len() > 20_000 {
                live.swap_remove(0);
            }
            out.push(record(table, "INSERT", seq, keys, Some(new), None));
        }
    }
    out.chunks(batch.max(1))
        .map(|c| json!({ "Records": c }).to_string())
        .collect()
}

/// One measured run.
#[derive(Clone, Debug)]
pub struct Run {
    pub rows: usize,
    pub elapsed: Duration,
    pub statements: usize,
    pub batches: usize,
    /// Of `elapsed`, time in the store.
    pub db_time: Duration,
}

impl Run {
    pub fn rate(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Apply pre-generated events through `run_event`.
pub async fn apply_events(
    p: &Pipeline,
    events: &[String],
) -> Result<Run, crate::pipeline::PipelineError> {
    let started = Instant::now();
    let mut rows = 0;
    let mut statements = 0;
    let mut db_time = Duration::ZERO;
    for text in events {
        let report = run_event(p, text)
            .await?
            .expect("generated events are valid JSON");
        rows += report.total().read as usize;
        statements += report.statements;
        db_time += report.db_time;
    }
    Ok(Run {
        rows,
        elapsed: started.elapsed(),
        statements,
        batches: events.len(),
        db_time,
    })
}

/// Baseline: `rows` ledger-shaped rows in plain multi-row INSERTs, one
/// transaction per `batch` rows, into a fresh scratch table.
pub async fn bulk_insert_baseline(
    store: &Store,
    rows: usize,
    batch: usize,
) -> Result<Run, StoreError> {
    baselines::bulk_insert_baseline(store, rows, batch).await
}

/// Open a store on `url` and migrate it.
pub async fn open_fresh(url: &str, max_connections: u32) -> Result<Store, StoreError> {
    let opts = StoreOptions {
        max_connections,
        ..StoreOptions::default()
    };
    let store = Store::connect(url, &opts).await?;
    store.migrate().await?;
    Ok(store)
}

/// A scratch database for one bench round: a temporary SQLite file, or a new
/// database on the server `url` points at (dropped by `drop_scratch`).
pub async fn scratch_database(
    url: &str,
    round: usize,
) -> Result<(String, Option<tempfile::TempDir>), StoreError> {
    use sqlx::Connection;
    match crate::store::connect::dialect_of(url) {
        Some(crate::store::connect::Dialect::Sqlite) | None => {
            let dir = tempfile::tempdir().map_err(|e| StoreError::Value(e.to_string()))?;
            let u = format!("sqlite://{}", dir.path().join("bench.db").display());
            Ok((u, Some(dir)))
        }
        Some(dialect) => {
            let name = format!("sf_bench_{}_{round}", std::process::id());
            let stmt = format!("CREATE DATABASE {name}");
            if dialect == crate::store::connect::Dialect::Postgres {
                let mut c = sqlx::PgConnection::connect(url).await?;
                sqlx::raw_sql(&stmt).execute(&mut c).await?;
            } else {
                let mut c = sqlx::MySqlConnection::connect(url).await?;
                sqlx::raw_sql(&stmt).execute(&mut c).await?;
            }
            Ok((replace_database(url, &name), None))
        }
    }
}

/// Drop a scratch database made by `scratch_database` on the server of `url`.
pub async fn drop_scratch(url: &str, round: usize) -> Result<(), StoreError> {
    use sqlx::Connection;
    let name = format!("sf_bench_{}_{round}", std::process::id());
    match crate::store::connect::dialect_of(url) {
        Some(crate::store::connect::Dialect::Postgres) => {
            let mut c = sqlx::PgConnection::connect(url).await?;
            sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut c)
                .await?;
        }
        Some(crate::store::connect::Dialect::MySql) => {
            let mut c = sqlx::MySqlConnection::connect(url).await?;
            sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name}"))
                .execute(&mut c)
                .await?;
        }
        _ => {}
    }
    Ok(())
}

/// Replace the database (URL path) of a server URL, keeping its query.
pub fn replace_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{db}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_events_have_the_requested_size_and_mix() {
        let events = generate_events(2000, 500, 7);
        assert_eq!(events.len(), 4);
        let mut names = std::collections::HashMap::new();
        let mut n = 0;
        for e in &events {
            let v: Value = serde_json::from_str(e).unwrap();
            for r in v["Records"].as_array().unwrap() {
                *names
                    .entry(r["eventName"].as_str().unwrap().to_string())
                    .or_insert(0) += 1;
                n += 1;
            }
        }
        assert_eq!(n, 2000);
        assert!(names["MODIFY"] > 10 && names["REMOVE"] > 5, "{names:?}");
    }

    #[test]
    fn database_replacement() {
        assert_eq!(
            replace_database("mysql://root@127.0.0.1:3306/test", "x"),
            "mysql://root@127.0.0.1:3306/x"
        );
        assert_eq!(
            replace_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}
