//! SQL storage behind one `Store`: the aggregates, the contribution ledger
//! and the quarantine, changed together in one transaction per batch.
//!
//! The dialect is chosen by the database URL scheme (`sqlite:`, `mysql:` /
//! `mariadb:`, `postgres:` / `postgresql:`). Every dialect applies a batch
//! the same way, set-based, in a handful of statements whatever its size:
//!
//! 1. stage the batch's ledger rows in a session-local temporary table
//!    (multi-row INSERTs, or one UNNEST on PostgreSQL);
//! 2. read (and lock, in identity order) the ledger rows of those identities;
//! 3. move `user_event_counts` by the deltas, summed per key in SQL;
//! 4. replace the ledger rows that lose to their staged row;
//! 5. insert ledger rows for new identities (a count mismatch means a
//!    concurrent writer created one: the transaction is retried);
//! 6. quarantine the batch's rejected records.
//!
//! Deadlocks, serialization failures, lock timeouts, that insert race and
//! lost connections are retried with bounded backoff; re-running a batch is
//! always safe because the ledger makes it idempotent.

pub mod checkpoints;
pub mod connect;
pub mod dialect;
pub mod mysql;
pub mod postgres;
mod queries;
pub mod reports;
mod rows;
pub mod secret;
mod sql;
pub mod sqlite;
pub(crate) mod stage;

use crate::aggregate::{self, ActivityRow, LlmRow, RowState, StagedRows};
use crate::domain::{Identity, SourceKind, Version};
use rows::Existing;
use std::collections::HashSet;
use std::time::Duration;

use crate::redact::redact_url;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0} (expected sqlite:, mysql:, mariadb: or postgres:)")]
    UnsupportedUrl(String),
    #[error("cannot connect to database {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("database {url} refuses a plaintext connection policy: {reason}")]
    Insecure { url: String, reason: String },
    #[error(
        "the schema of {url} is not up to date ({pending} migration(s) pending): run `streamfold migrate`"
    )]
    SchemaOutdated { url: String, pending: usize },
    #[error("migrating the database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("corrupt row in {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
    #[error(transparent)]
    ReportOverflow(#[from] crate::aggregate::llm_rollup::RollupOverflow),
    #[error(
        "a concurrent writer created ledger rows of this batch ({inserted} inserted, {expected} expected)"
    )]
    Conflict { inserted: u64, expected: u64 },
    #[error(
        "a concurrent writer created LLM ledger rows of this batch between its reads ({seen} seen, then {now})"
    )]
    LlmRace { seen: i64, now: i64 },
    #[error("value does not fit the schema: {0}")]
    Value(String),
    #[error("database secret: {0}")]
    Secret(String),
}

impl StoreError {
    /// Failures that a retry of the whole transaction can cure.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Conflict { .. } | StoreError::LlmRace { .. } => true,
            StoreError::Sql(e) => is_transient_sql(e),
            _ => false,
        }
    }

    /// A failure of applying a batch that some of its records may have
    /// caused, so that applying fewer of them can succeed: neither transient
    /// nor a fault of the environment (permissions, a missing table, a full
    /// disk, a read-only server), which would refuse every record alike.
    /// `run_batch` isolates the records responsible for such failures.
    pub fn blames_the_data(&self) -> bool {
        match self {
            StoreError::ReportOverflow(_) | StoreError::Value(_) | StoreError::Corrupt { .. } => {
                true
            }
            StoreError::Sql(e) => !is_transient_sql(e) && !is_environment_sql(e),
            _ => false,
        }
    }

    /// This error as the reason of a quarantined record: values quoted in a
    /// server message (MySQL echoes the bytes of an incorrect string) are
    /// left out, names of columns, tables and keys kept.
    pub fn record_reason(&self) -> String {
        let text = match self {
            StoreError::Sql(sqlx::Error::Database(db)) => match db.code() {
                Some(code) => format!("{} (code {code})", db.message()),
                None => db.message().to_string(),
            },
            other => other.to_string(),
        };
        without_quoted_values(&text)
    }
}

/// `text` with every single-quoted segment replaced by `'…'`, except those
/// that name a column, table, key or constraint.
fn without_quoted_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('\'') {
        let (before, after) = rest.split_at(open);
        out.push_str(before);
        let Some(close) = after[1..].find('\'') else {
            out.push_str("'…'");
            return out;
        };
        let quoted = &after[..close + 2];
        let names_a_thing = ["column ", "table ", "key ", "constraint "]
            .iter()
            .any(|w| before.to_ascii_lowercase().ends_with(w))
            && quoted.len() <= 66;
        out.push_str(if names_a_thing { quoted } else { "'…'" });
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// Server errors that no subset of a batch can avoid: authentication and
/// permissions, missing objects and syntax (a schema out of step), resources
/// (disk, memory, connections) and operator intervention.
fn is_environment_sql(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                // access denied, command denied, unknown table / column,
                // syntax, table full, disk full, out of memory, too many
                // connections, read-only server.
                return matches!(
                    my.number(),
                    1044 | 1045
                        | 1142
                        | 1143
                        | 1146
                        | 1054
                        | 1064
                        | 1114
                        | 1021
                        | 1037
                        | 1040
                        | 1290
                        | 1792
                );
            }
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // Primary result codes: SQL error (no such table or
                // column, syntax), permission, read-only, I/O error,
                // corrupt, full, cannot open, out of memory, not a database.
                let primary = db
                    .code()
                    .and_then(|c| c.parse::<u32>().ok())
                    .map(|c| c & 0xff);
                return matches!(primary, Some(1 | 3 | 7 | 8 | 10 | 11 | 13 | 14 | 26));
            }
            match db.code().as_deref() {
                // PostgreSQL classes: 28 authorization, 3D catalog, 42 syntax
                // or access rule (undefined table, insufficient privilege),
                // 53 insufficient resources, 57 operator intervention, 58
                // system error, XX internal; 25006 read-only transaction.
                Some(code) if code.len() == 5 => {
                    matches!(&code[..2], "28" | "3D" | "42" | "53" | "57" | "58" | "XX")
                        || code == "25006"
                }
                _ => false,
            }
        }
        sqlx::Error::Configuration(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Migrate(_) => true,
        _ => false,
    }
}

fn is_transient_sql(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                // deadlock, lock wait timeout, duplicate key (insert race),
                // server shutdown / connection killed, query interrupted.
                return matches!(
                    my.number(),
                    1213 | 1205 | 1062 | 1053 | 1927 | 1317 | 2006 | 2013
                );
            }
            match db.code().as_deref() {
                // serialization failure, deadlock, lock not available, unique
                // violation (insert race), admin shutdown, crash shutdown,
                // cannot connect now, connection failures.
                Some("40001" | "40P01" | "55P03" | "23505" | "57P01" | "57P02" | "57P03") => true,
                Some(code) if code.starts_with("08") => true,
                // SQLite: busy / locked.
                Some("5" | "6" | "261" | "517") => true,
                _ => false,
            }
        }
        _ => false,
    }
}

/// Connection settings beyond the URL.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Pool size: 1–2 for a Lambda, more for a backfill.
    pub max_connections: u32,
    /// Retries of a batch transaction on transient failures.
    pub max_retries: u32,
    /// Allow a plaintext connection to a non-loopback host when the URL
    /// explicitly disables TLS.
    pub allow_plaintext: bool,
    /// How long to keep trying to connect / acquire a connection.
    pub connect_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 4,
            max_retries: 6,
            allow_plaintext: false,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// A record quarantined by the pipeline.
#[derive(Clone, Debug)]
pub struct RejectRow {
    pub source: Option<SourceKind>,
    pub table: Option<String>,
    pub event_id: Option<String>,
    pub sequence_number: Option<String>,
    pub reason: String,
    pub raw: String,
}

impl RejectRow {
    /// The quarantine row of a record: its naming metadata cut to fit the
    /// columns (a row that cannot be written would block the batch), the
    /// raw record kept whole.
    pub fn new(
        meta: &crate::record::lambda_event::RecordMeta,
        reason: &str,
        raw: &serde_json::value::RawValue,
    ) -> RejectRow {
        use crate::bounds::{REASON, REJECT_SHORT, REJECT_TEXT, clip};
        RejectRow {
            source: meta.source,
            table: meta.table.as_deref().map(|t| clip(t, REJECT_TEXT)),
            event_id: meta.event_id.as_deref().map(|e| clip(e, REJECT_TEXT)),
            sequence_number: meta
                .sequence_number
                .as_deref()
                .map(|s| clip(s, REJECT_SHORT)),
            reason: clip(reason, REASON),
            raw: raw.get().to_string(),
        }
    }

    /// Key that makes quarantining the same record twice a no-op.
    pub fn record_key(&self) -> [u8; 16] {
        xxhash_rust::xxh3::xxh3_128(self.raw.as_bytes()).to_be_bytes()
    }
}

/// What the store reports back for one applied batch.
#[derive(Debug, Default)]
pub struct ApplyResult {
    /// Staged identities whose row did not replace the ledger's (duplicates,
    /// stale versions): they changed nothing.
    pub unchanged: HashSet<Identity>,
    /// SQL statements executed for the batch's final attempt (with BEGIN/COMMIT).
    pub statements: usize,
    /// Transaction attempts that failed transiently before the final one.
    pub retries: u32,
    /// LLM reports the batch changed (now pending projection).
    pub reports_changed: usize,
}

/// One quarantined record as listed by `streamfold rejects`.
#[derive(Clone, Debug)]
pub struct RejectListing {
    pub id: i64,
    pub source: Option<String>,
    pub event_id: Option<String>,
    pub sequence_number: Option<String>,
    pub reason: String,
    pub rejected_at: String,
}

/// Totals for summaries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub events_counted: i64,
    pub users: i64,
    pub ledger_rows: i64,
    pub unattributed: i64,
    pub llm_requests: i64,
    pub rejected: i64,
}

/// The SQL store: one dialect backend and its retry policy.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    max_retries: u32,
}

/// One variant per dialect.
#[derive(Clone)]
pub enum Backend {
    Sqlite(sqlite::SqliteStore),
    MySql(mysql::MySqlStore),
    Postgres(postgres::PgStore),
}

impl std::fmt::Debug for Store {
    // Connection options hold the password: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.backend {
            Backend::Sqlite(_) => "Store(sqlite)",
            Backend::MySql(_) => "Store(mysql)",
            Backend::Postgres(_) => "Store(postgres)",
        })
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match &$self.backend {
            Backend::Sqlite($s) => $e,
            Backend::MySql($s) => $e,
            Backend::Postgres($s) => $e,
        }
    };
}

impl Store {
    /// Open the store named by `url` with default options.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, &StoreOptions::default()).await
    }

    /// Open the store named by `url`. SQLite is created and migrated
    /// automatically; MySQL and PostgreSQL must have been migrated with
    /// `streamfold migrate` (checked here).
    pub async fn open_with(url: &str, opts: &StoreOptions) -> Result<Store, StoreError> {
        let store = Store::connect(url, opts).await?;
        if let Backend::Sqlite(s) = &store.backend {
            // The embedded default migrates itself; one read of
            // `_sqlx_migrations` tells whether there is anything to do
            // (the migrator's own check is several statements per open).
            if store.pending_migrations().await? > 0 {
                s.migrate().await?;
            }
        } else {
            let pending = store.pending_migrations().await?;
            if pending > 0 {
                return Err(StoreError::SchemaOutdated {
                    url: redact_url(url),
                    pending,
                });
            }
        }
        Ok(store)
    }

    /// Connect without checking the schema (for `migrate`).
    pub async fn connect(url: &str, opts: &StoreOptions) -> Result<Store, StoreError> {
        let backend = match connect::dialect_of(url) {
            Some(connect::Dialect::Sqlite) => {
                Backend::Sqlite(sqlite::SqliteStore::open(url, opts).await?)
            }
            Some(connect::Dialect::MySql) => {
                Backend::MySql(mysql::MySqlStore::open(url, opts).await?)
            }
            Some(connect::Dialect::Postgres) => {
                Backend::Postgres(postgres::PgStore::open(url, opts).await?)
            }
            None => return Err(StoreError::UnsupportedUrl(redact_url(url))),
        };
        Ok(Store {
            backend,
            max_retries: opts.max_retries,
        })
    }

    /// Apply the schema migrations; returns the versions newly applied.
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        dispatch!(self, s => s.migrate().await)
    }

    async fn pending_migrations(&self) -> Result<usize, StoreError> {
        dispatch!(self, s => s.pending_migrations().await)
    }

    /// Apply one batch's staged rows and quarantined records in one
    /// transaction, retrying transient failures with backoff.
    pub async fn apply(
        &self,
        rows: &StagedRows,
        rejects: &[RejectRow],
    ) -> Result<ApplyResult, StoreError> {
        let max_retries = self.max_retries;
        if rows.is_empty() && rejects.is_empty() {
            return Ok(ApplyResult::default());
        }
        let mut attempt = 0u32;
        loop {
            let result = dispatch!(self, s => s.apply_once(rows, rejects).await);
            match result {
                Ok(mut r) => {
                    r.retries = attempt;
                    return Ok(r);
                }
                Err(e) if e.is_transient() && attempt < max_retries => {
                    attempt += 1;
                    let wait = backoff(attempt);
                    tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, error = %e, "batch transaction failed transiently; retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `(dow, hours, count)` cells of one user's heatmap.
    pub async fn heatmap(
        &self,
        slack_id: &str,
        integration: Option<&str>,
    ) -> Result<Vec<(u8, u8, i64)>, StoreError> {
        dispatch!(self, s => s.heatmap(slack_id, integration).await)
    }

    /// Unattributed activity rows, in identity order, after `after`.
    pub async fn unattributed_activity(
        &self,
        after: Option<Identity>,
        limit: u32,
    ) -> Result<Vec<ActivityRow>, StoreError> {
        dispatch!(self, s => s.unattributed_activity(after, limit).await)
    }

    /// Unattributed LLM rows, in identity order, after `after`.
    pub async fn unattributed_llm(
        &self,
        after: Option<Identity>,
        limit: u32,
    ) -> Result<Vec<LlmRow>, StoreError> {
        dispatch!(self, s => s.unattributed_llm(after, limit).await)
    }

    /// LLM reports selected by `filter`, in key order.
    pub async fn reports(
        &self,
        filter: &reports::ReportFilter,
    ) -> Result<Vec<crate::aggregate::llm_rollup::Report>, StoreError> {
        dispatch!(self, s => s.reports(filter).await)
    }

    /// Record that `revision` of a report was projected to LLMReportData.
    pub async fn mark_published(
        &self,
        key: &crate::aggregate::llm_rollup::ReportKey,
        revision: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.mark_published(key, revision).await)
    }

    /// Checkpoints of a backfill job, by part.
    pub async fn checkpoints(&self, job: &str) -> Result<Vec<checkpoints::Checkpoint>, StoreError> {
        dispatch!(self, s => s.checkpoints(job).await)
    }

    /// Record a backfill part's progress.
    pub async fn save_checkpoint(
        &self,
        job: &str,
        c: &checkpoints::Checkpoint,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.save_checkpoint(job, c).await)
    }

    /// Forget a backfill job's progress (a fresh run).
    pub async fn clear_checkpoints(&self, job: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.clear_checkpoints(job).await)
    }

    /// Quarantined records with their raw text, after id `after`.
    pub async fn rejected_raw(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(RejectListing, String)>, StoreError> {
        dispatch!(self, s => s.rejected_raw(after, limit).await)
    }

    /// Drop quarantined records that have been applied.
    pub async fn delete_rejects(&self, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        dispatch!(self, s => s.delete_rejects(ids).await)
    }

    pub async fn rejects(&self, limit: u32) -> Result<Vec<RejectListing>, StoreError> {
        dispatch!(self, s => s.rejects(limit).await)
    }

    /// Users (Slack IDs, ACS accounts) by events counted, most first.
    pub async fn top_users(&self, limit: u32) -> Result<Vec<(String, i64)>, StoreError> {
        dispatch!(self, s => s.top_users(limit).await)
    }

    pub async fn totals(&self) -> Result<Totals, StoreError> {
        dispatch!(self, s => s.totals().await)
    }

    /// The dialect backend, for tests and tools that inspect tables directly.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }
}

/// Exponential backoff with jitter: ~25 ms, 50 ms, … capped at 2 s.
fn backoff(attempt: u32) -> Duration {
    let base = 25u64.saturating_mul(1 << attempt.min(7)).min(2000);
    let jitter = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos(),
    ) % (base / 2 + 1);
    Duration::from_millis(base / 2 + jitter)
}

/// Which staged rows lose to the ledger, and how many identities are new.
pub(crate) fn judge<'a>(
    staged: impl Iterator<Item = (Identity, &'a Version, RowState)>,
    existing: &Existing,
    unchanged: &mut HashSet<Identity>,
) -> u64 {
    let mut new = 0;
    for (id, version, state) in staged {
        match existing.get(&id) {
            None => new += 1,
            Some((lv, ls)) => {
                if !aggregate::wins((version, state), Some((lv, *ls))) {
                    unchanged.insert(id);
                }
            }
        }
    }
    new
}

/// Columns of `rejected_records` written per quarantined record.
pub(crate) const REJECT_COLUMNS: &str =
    "record_key, source, table_name, event_id, sequence_number, reason, raw_record, rejected_at";

pub(crate) fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Totals in one query; `int` is the dialect's name of a 64-bit integer cast.
pub(crate) fn totals_sql(int: &str) -> String {
    format!(
        "SELECT
           CAST((SELECT COALESCE(SUM(event_count), 0) FROM user_event_counts) AS {int}),
           CAST((SELECT COUNT(DISTINCT slack_id) FROM user_event_counts WHERE event_count <> 0) AS {int}),
           CAST((SELECT COUNT(*) FROM activity_ledger) + (SELECT COUNT(*) FROM llm_ledger) AS {int}),
           CAST((SELECT COUNT(*) FROM activity_ledger WHERE state = 2)
              + (SELECT COUNT(*) FROM llm_ledger WHERE state = 2) AS {int}),
           CAST((SELECT COUNT(*) FROM llm_ledger WHERE state = 1) AS {int}),
           CAST((SELECT COUNT(*) FROM rejected_records) AS {int})"
    )
}

pub(crate) fn totals_from(r: (i64, i64, i64, i64, i64, i64)) -> Totals {
    Totals {
        events_counted: r.0,
        users: r.1,
        ledger_rows: r.2,
        unattributed: r.3,
        llm_requests: r.4,
        rejected: r.5,
    }
}

/// Versions recorded as applied; empty when the bookkeeping table is missing.
async fn applied_versions<DB>(pool: &sqlx::Pool<DB>) -> Result<HashSet<i64>, StoreError>
where
    DB: sqlx::Database,
    DB::Connection: sqlx::migrate::Migrate,
{
    use sqlx::migrate::Migrate;
    let mut conn = pool.acquire().await?;
    Ok(match (*conn).list_applied_migrations().await {
        Ok(applied) => applied.into_iter().map(|m| m.version).collect(),
        Err(_) => HashSet::new(),
    })
}

/// Run the migrations; returns the versions this call applied.
pub(crate) async fn run_migrations<DB>(
    migrator: &sqlx::migrate::Migrator,
    pool: &sqlx::Pool<DB>,
) -> Result<Vec<i64>, StoreError>
where
    DB: sqlx::Database,
    DB::Connection: sqlx::migrate::Migrate,
{
    let before = applied_versions(pool).await?;
    migrator.run(pool).await?;
    Ok(migrator
        .iter()
        .map(|m| m.version)
        .filter(|v| !before.contains(v))
        .collect())
}

/// Number of migrations not yet applied.
pub(crate) async fn pending_migrations<DB>(
    migrator: &sqlx::migrate::Migrator,
    pool: &sqlx::Pool<DB>,
) -> usize
where
    DB: sqlx::Database,
    DB::Connection: sqlx::migrate::Migrate,
{
    let applied = applied_versions(pool).await.unwrap_or_default();
    migrator
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded() {
        for a in 0..20 {
            let d = backoff(a);
            assert!(d <= Duration::from_millis(2000), "{a}: {d:?}");
            assert!(d >= Duration::from_millis(12), "{a}: {d:?}");
        }
    }
}
