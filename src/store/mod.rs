//! SQL storage behind one `Store`: the aggregates, the contribution ledger
//! and the quarantine, changed together in one transaction per batch.
//!
//! The dialect is chosen by the database URL scheme. Each dialect applies a
//! batch set-based: a handful of statements whatever the batch size.

pub mod sqlite;

use crate::aggregate::{ActivityRow, LlmRow, StagedRows};
use crate::domain::{Identity, SourceKind};
use std::collections::HashSet;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL scheme in {0:?} (expected sqlite:)")]
    UnsupportedUrl(String),
    #[error("cannot open database {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("migrating the database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("corrupt row in {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
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
    /// SQL statements executed for the batch (including BEGIN/COMMIT).
    pub statements: usize,
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

/// The SQL store. One variant per dialect.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
}

impl Store {
    /// Open the store named by `url` and bring its schema up to date where
    /// that is automatic (SQLite).
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Store::Sqlite(sqlite::SqliteStore::open(url).await?))
        } else {
            Err(StoreError::UnsupportedUrl(redact_url(url)))
        }
    }

    /// Apply one batch's staged rows and quarantined records in one transaction.
    pub async fn apply(
        &self,
        rows: &StagedRows,
        rejects: &[RejectRow],
    ) -> Result<ApplyResult, StoreError> {
        match self {
            Store::Sqlite(s) => s.apply(rows, rejects).await,
        }
    }

    /// `(dow, hours, count)` cells of one user's heatmap.
    pub async fn heatmap(
        &self,
        slack_id: &str,
        integration: Option<&str>,
    ) -> Result<Vec<(u8, u8, i64)>, StoreError> {
        match self {
            Store::Sqlite(s) => s.heatmap(slack_id, integration).await,
        }
    }

    /// Unattributed activity rows, in identity order, after `after`.
    pub async fn unattributed_activity(
        &self,
        after: Option<Identity>,
        limit: u32,
    ) -> Result<Vec<ActivityRow>, StoreError> {
        match self {
            Store::Sqlite(s) => s.unattributed_activity(after, limit).await,
        }
    }

    /// Unattributed LLM rows, in identity order, after `after`.
    pub async fn unattributed_llm(
        &self,
        after: Option<Identity>,
        limit: u32,
    ) -> Result<Vec<LlmRow>, StoreError> {
        match self {
            Store::Sqlite(s) => s.unattributed_llm(after, limit).await,
        }
    }

    pub async fn rejects(&self, limit: u32) -> Result<Vec<RejectListing>, StoreError> {
        match self {
            Store::Sqlite(s) => s.rejects(limit).await,
        }
    }

    pub async fn totals(&self) -> Result<Totals, StoreError> {
        match self {
            Store::Sqlite(s) => s.totals().await,
        }
    }
}

/// A database URL safe to print: any password is replaced.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                format!("{scheme}://{user}@{host}{tail}")
            }
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("mysql://admin:s3cret@db.example:3306/x"),
            "mysql://admin:***@db.example:3306/x"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("sqlite://streamfold.db"),
            "sqlite://streamfold.db"
        );
        assert_eq!(redact_url("mysql://a:p@ss@h/x"), "mysql://a:***@h/x");
    }
}
