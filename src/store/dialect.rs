//! What each SQL dialect supplies to the store, stated where the compiler
//! and rustdoc can see it.
//!
//! * `Flavor`: the differences in SQL text (placeholders, casts, text and
//!   decimal conversions); the SQL of `queries`, `reports` and
//!   `checkpoints` is written once as functions of it.
//! * `Dialect`: the migrations, how a batch transaction begins and the
//!   batch's statements inside it, which each store's `exec::Engine`
//!   implementation runs.
//! * `StagedDialect`: for the dialects that stage a batch with multi-row
//!   VALUES lists (SQLite), the limits and hooks that
//!   `stage::values_staged_apply!` builds their batch statements from.
//!   PostgreSQL sends the whole batch as arrays in one statement instead,
//!   MySQL as JSON documents read by multi-statement queries
//!   (`mysql_batch`).

use super::{ApplyResult, RejectedRecord, StoreError};
use crate::aggregate::StagedRows;
use crate::aggregate::llm_rollup::{ReportKey, ReportSums};
use sqlx::Transaction;
use sqlx::migrate::Migrator;
use std::collections::BTreeMap;
use std::future::Future;

/// What differs between the dialects' SQL text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Sqlite,
    MySql,
    Postgres,
}

impl Flavor {
    /// The `n`th bind parameter (1-based).
    pub fn p(self, n: usize) -> String {
        match self {
            Flavor::Postgres => format!("${n}"),
            _ => "?".to_string(),
        }
    }

    /// Name of a 64-bit integer in `CAST(… AS …)`.
    pub fn int(self) -> &'static str {
        match self {
            Flavor::Sqlite => "INTEGER",
            Flavor::MySql => "SIGNED",
            Flavor::Postgres => "BIGINT",
        }
    }

    /// A column as a 64-bit integer.
    pub fn as_int(self, col: &str) -> String {
        format!("CAST({col} AS {})", self.int())
    }

    /// A text column as plain text (MySQL reports binary-collated text as
    /// BINARY; PostgreSQL `CHAR(n)` as bpchar).
    pub fn as_text(self, col: &str) -> String {
        match self {
            Flavor::Sqlite => col.to_string(),
            Flavor::MySql => format!("CONVERT({col} USING utf8mb4)"),
            Flavor::Postgres => format!("CAST({col} AS TEXT)"),
        }
    }

    /// A decimal column as its exact text.
    pub fn decimal_text(self, col: &str) -> String {
        match self {
            Flavor::Sqlite => col.to_string(),
            Flavor::MySql => format!("CAST({col} AS CHAR)"),
            Flavor::Postgres => format!("CAST({col} AS TEXT)"),
        }
    }

    /// A text parameter, typed where the engine needs it (`… IS NULL`).
    pub(crate) fn text_param(self, n: usize) -> String {
        match self {
            Flavor::Postgres => format!("CAST(${n} AS TEXT)"),
            _ => "?".to_string(),
        }
    }
}

/// One SQL dialect of the store.
pub trait Dialect {
    /// The sqlx database type.
    type Db: sqlx::Database;
    /// Its SQL text differences.
    const FLAVOR: Flavor;
    /// The statement that opens a batch transaction (`None`: the driver's).
    const BEGIN: Option<&'static str>;
    /// Its schema migrations (`sql/<dialect>/`).
    fn migrator() -> &'static Migrator;
    /// Apply the pending migrations; returns the versions this call applied.
    fn migrate(
        pool: &sqlx::Pool<Self::Db>,
    ) -> impl Future<Output = Result<Vec<i64>, StoreError>> + Send;
    /// A batch's statements inside its transaction: stage the rows, lock
    /// and judge the existing ledger rows, move the aggregates, write the
    /// ledger and the LLM reports, quarantine the rejects.
    fn apply_steps(
        tx: &mut Transaction<'static, Self::Db>,
        rows: &StagedRows,
        rejects: &[RejectedRecord],
        result: &mut ApplyResult,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A dialect that stages a batch with multi-row VALUES lists into
/// session-local tables (`stage_activity`, `stage_llm`).
pub trait StagedDialect: Dialect {
    /// Bound parameters allowed in one statement.
    const MAX_PARAMS: usize;
    /// Appended to the read of a batch's existing ledger rows (the row lock).
    const LOCK_SUFFIX: &'static str;
    /// Appended to the quarantine INSERT: a record quarantined twice is kept
    /// once.
    const REJECT_IGNORE: &'static str;
    /// The statement that moves `user_event_counts` by the staged deltas.
    fn activity_delta() -> String;
    /// Replace the ledger rows that lose to their staged row and insert the
    /// new identities (`existing`: ledger rows found; `expected_new`: rows
    /// the batch must insert, checked where concurrent writers exist).
    fn write_ledger(
        tx: &mut Transaction<'static, Self::Db>,
        ledger: &str,
        stage: &str,
        columns: &str,
        existing: usize,
        expected_new: u64,
        result: &mut ApplyResult,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Move the LLM reports by a batch's deltas.
    fn apply_reports(
        tx: &mut Transaction<'static, Self::Db>,
        deltas: &BTreeMap<ReportKey, ReportSums>,
        result: &mut ApplyResult,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
