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

pub mod audit;
mod batch;
pub mod checkpoints;
pub mod compaction;
pub mod connect;
pub mod dialect;
mod error;
pub(crate) mod exec;
mod migrations;
pub mod mysql;
mod ops;
pub mod postgres;
mod queries;
pub mod reports;
mod rows;
pub mod secret;
pub(crate) mod sql;
pub mod sqlite;
mod types;
pub(crate) mod upsert;

use crate::aggregate::{ActivityRow, LlmRow, StagedRows};
use crate::domain::Identity;
use std::time::Duration;

use crate::redact::redact_url;
pub use batch::values::activity_values_into;
pub use error::StoreError;
pub(crate) use migrations::{pending_migrations, run_migrations};
pub use types::{
    ApplyResult, COMPACTION_ANNOUNCE, HORIZON_REFRESH, LOCK_WAIT, MIN_COMPACTION_ANNOUNCE,
    RejectListing, RejectedRecord, StoreOptions, Totals,
};

/// The SQL store: one dialect backend and its retry policy.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    max_retries: u32,
    horizon: std::sync::Arc<compaction::HorizonCache>,
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

impl Backend {
    /// The engine behind the store's operations.
    fn ops(&self) -> &dyn ops::StoreOps {
        match self {
            Backend::Sqlite(s) => s,
            Backend::MySql(s) => s,
            Backend::Postgres(s) => s,
        }
    }
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
        if let Backend::Sqlite(_) = &store.backend {
            // The embedded default migrates itself; one read of
            // `_sqlx_migrations` tells whether there is anything to do
            // (the migrator's own check is several statements per open).
            if store.pending_migrations().await? > 0 {
                store.migrate().await?;
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
        connect::install_crypto_provider();
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
            horizon: std::sync::Arc::new(compaction::HorizonCache::new(opts.horizon_refresh)),
        })
    }

    /// Close the store's connections. On SQLite the write-ahead log is
    /// first checkpointed into the database file (and removed with the last
    /// connection), so the file alone holds the data; a checkpoint another
    /// process blocks is only logged: the log stays valid, and is folded in
    /// by whoever closes last.
    pub async fn close(&self) {
        self.backend.ops().close().await
    }

    /// Apply the schema migrations; returns the versions newly applied.
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        self.backend.ops().migrate().await
    }

    async fn pending_migrations(&self) -> Result<usize, StoreError> {
        self.backend.ops().pending_migrations().await
    }

    /// Apply one batch's staged rows and quarantined records in one
    /// transaction, retrying transient failures with backoff.
    pub async fn apply(
        &self,
        rows: &StagedRows,
        rejects: &[RejectedRecord],
    ) -> Result<ApplyResult, StoreError> {
        let max_retries = self.max_retries;
        if rows.is_empty() && rejects.is_empty() {
            return Ok(ApplyResult::default());
        }
        let mut attempt = 0u32;
        loop {
            // Read again each attempt: a compaction may have begun meanwhile.
            let horizon = self.compaction_horizon().await?;
            let result = self.backend.ops().apply_once(rows, rejects, horizon).await;
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

    /// The compaction horizon (epoch seconds; `None`: never compacted), as
    /// last read within `StoreOptions::horizon_refresh`.
    pub async fn compaction_horizon(&self) -> Result<Option<i64>, StoreError> {
        if let Some(h) = self.horizon.fresh() {
            return Ok(h);
        }
        let h = self.backend.ops().compaction_horizon().await?;
        self.horizon.store(h);
        Ok(h)
    }

    /// Run (or resume) a ledger compaction: see `store::compaction` for what
    /// it gives up and how it stays exact.
    ///
    /// Refused while a Scan or export backfill is unfinished (its job
    /// marker or a part not done): its items older than the horizon, not
    /// read yet, would be skipped for good by the horizon guard.
    pub async fn compact(
        &self,
        opts: &compaction::CompactOptions,
    ) -> Result<compaction::CompactReport, StoreError> {
        let unfinished = self.unfinished_backfills().await?;
        if !unfinished.is_empty() {
            let jobs = unfinished
                .iter()
                .map(|(job, at)| format!("{job} (last progress {at})"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(StoreError::BackfillUnfinished { jobs });
        }
        // A chunk that fails transiently (a deadlock with a batch) is
        // retried by resuming the run from its last committed chunk.
        let mut attempt = 0u32;
        let report = loop {
            match self.backend.ops().compact(opts).await {
                Ok(r) => break r,
                Err(e) if e.is_transient() && attempt < self.max_retries.max(1) * 4 => {
                    attempt += 1;
                    tracing::warn!(attempt, error = %e, "compaction chunk failed transiently; resuming");
                    tokio::time::sleep(backoff(attempt.min(6))).await;
                }
                Err(e) => return Err(e),
            }
        };
        self.horizon
            .store(self.backend.ops().compaction_horizon().await?);
        Ok(report)
    }

    /// `(dow, hours, count)` cells of one user's heatmap.
    pub async fn heatmap(
        &self,
        slack_id: &str,
        integration: Option<&str>,
    ) -> Result<Vec<(u8, u8, i64)>, StoreError> {
        self.backend.ops().heatmap(slack_id, integration).await
    }

    /// First and last event time (epoch seconds) of a subject's counted
    /// activity still in the ledger, or `None` when it has none.
    pub async fn event_span(
        &self,
        slack_id: &str,
        integration: Option<&str>,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        self.backend.ops().event_span(slack_id, integration).await
    }

    /// Unattributed activity rows, in identity order, after `after`.
    pub async fn unattributed_activity(
        &self,
        after: Option<Identity>,
        limit: u32,
    ) -> Result<Vec<ActivityRow>, StoreError> {
        self.backend.ops().unattributed_activity(after, limit).await
    }

    /// Unattributed LLM rows, in identity order, after `after`.
    pub async fn unattributed_llm(
        &self,
        after: Option<Identity>,
        limit: u32,
    ) -> Result<Vec<LlmRow>, StoreError> {
        self.backend.ops().unattributed_llm(after, limit).await
    }

    /// LLM reports selected by `filter`, in key order.
    pub async fn reports(
        &self,
        filter: &reports::ReportFilter,
    ) -> Result<Vec<crate::aggregate::llm_rollup::Report>, StoreError> {
        self.backend.ops().reports(filter).await
    }

    /// Record that `revision` of a report was projected to LLMReportData.
    pub async fn mark_published(
        &self,
        key: &crate::aggregate::llm_rollup::ReportKey,
        revision: i64,
    ) -> Result<(), StoreError> {
        self.backend.ops().mark_published(key, revision).await
    }

    /// Checkpoints of a backfill job, by part.
    pub async fn checkpoints(&self, job: &str) -> Result<Vec<checkpoints::Checkpoint>, StoreError> {
        self.backend.ops().checkpoints(job).await
    }

    /// Record a backfill part's progress.
    pub async fn save_checkpoint(
        &self,
        job: &str,
        c: &checkpoints::Checkpoint,
    ) -> Result<(), StoreError> {
        self.backend.ops().save_checkpoint(job, c).await
    }

    /// Mark a backfill job begun: until `finish_backfill`, compaction is
    /// refused.
    pub async fn begin_backfill(&self, job: &str) -> Result<(), StoreError> {
        self.save_checkpoint(job, &checkpoints::Checkpoint::marker(false))
            .await
    }

    /// Mark a backfill job finished (every part read and applied).
    pub async fn finish_backfill(&self, job: &str) -> Result<(), StoreError> {
        self.save_checkpoint(job, &checkpoints::Checkpoint::marker(true))
            .await
    }

    /// Scan and export backfill jobs not finished, with their latest
    /// progress time.
    pub async fn unfinished_backfills(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.backend.ops().unfinished_backfills().await
    }

    /// Forget a backfill job's progress (a fresh run).
    pub async fn clear_checkpoints(&self, job: &str) -> Result<(), StoreError> {
        self.backend.ops().clear_checkpoints(job).await
    }

    /// Quarantined records with their raw text, after id `after`.
    pub async fn rejected_raw(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(RejectListing, String)>, StoreError> {
        self.backend.ops().rejected_raw(after, limit).await
    }

    /// Drop quarantined records that have been applied.
    pub async fn delete_rejects(&self, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.backend.ops().delete_rejects(ids).await
    }

    pub async fn rejects(&self, limit: u32) -> Result<Vec<RejectListing>, StoreError> {
        self.backend.ops().rejects(limit).await
    }

    /// Users (Slack IDs, ACS accounts) by events counted, most first.
    pub async fn top_users(&self, limit: u32) -> Result<Vec<(String, i64)>, StoreError> {
        self.backend.ops().top_users(limit).await
    }

    pub async fn totals(&self) -> Result<Totals, StoreError> {
        self.backend.ops().totals().await
    }

    /// Stream the aggregates as stored and as recomputed from the ledgers
    /// and compaction bases into `sink` (`crate::audit`).
    pub async fn audit(&self, sink: &mut (dyn audit::AuditSink + Send)) -> Result<(), StoreError> {
        self.backend.ops().audit(sink).await
    }

    /// Rows the audit streams carry, roughly: `(cells, report rows)`.
    pub async fn audit_sizes(&self) -> Result<(i64, i64), StoreError> {
        self.backend.ops().audit_sizes().await
    }

    /// Compaction runs that dropped ledger rows before the compaction bases
    /// existed (their counts cannot be recomputed).
    pub async fn runs_before_bases(&self) -> Result<i64, StoreError> {
        self.backend.ops().runs_before_bases().await
    }

    /// In one transaction: audit into `sink`, then repair what differs.
    pub async fn audit_fix(
        &self,
        sink: &mut (dyn audit::AuditSink + Send),
    ) -> Result<audit::Fixes, StoreError> {
        self.backend.ops().audit_fix(sink).await
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
           CAST((SELECT COALESCE(SUM(total_requests), 0) FROM llm_reports) AS {int}),
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
