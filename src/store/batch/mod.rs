//! One batch, the same way on every engine: read the ledger rows of the
//! batch's identities under lock, let `aggregate::plan` decide everything
//! (in Rust, without SQL), and write the plan.
//!
//! Each engine implements `BatchEngine` in its own file with ordinary code:
//! `sqlite.rs` (multi-row VALUES, one writer at a time), `mysql/` (JSON
//! documents bound to session variables, multi-statement queries, four
//! round trips) and `postgres.rs` (arrays, one read and one write
//! statement). `apply_once` is the one orchestration they share.
//!
//! **Concurrency.** The read locks the ledger rows that exist, in identity
//! order, so two writers of the same existing identity serialise and the
//! second plans against what the first wrote. An identity that has no row
//! yet is not locked (MySQL and MariaDB run at READ COMMITTED, which takes
//! no gap locks; PostgreSQL never locks absent rows): both writers plan an
//! insert, and the ledger key's uniqueness makes the second INSERT fail
//! (MySQL 1062, PostgreSQL 23505), which is transient, so that writer's
//! whole transaction is retried and then finds the row. SQLite has one
//! writer at a time (`BEGIN IMMEDIATE`).

pub(crate) mod mysql;
pub(crate) mod postgres;
mod read;
pub(crate) mod sqlite;
mod sqlite_reports;
pub(crate) mod values;

use super::{ApplyResult, RejectedRecord, StoreError};
use crate::aggregate::StagedRows;
use crate::aggregate::plan::{LedgerRead, Plan, plan};
use std::future::Future;

/// What an engine does for one batch: each step in as few round trips as
/// it can, every round trip counted in `ApplyResult::statements`.
pub(crate) trait BatchEngine: Sync {
    /// An open batch transaction.
    type Tx: Send;

    /// Open the batch's transaction (or what will carry it).
    fn begin(
        &self,
        result: &mut ApplyResult,
    ) -> impl Future<Output = Result<Self::Tx, StoreError>> + Send;

    /// The ledger rows of `rows`' identities, locked until the end of the
    /// transaction, read in identity order.
    fn lock_read(
        tx: &mut Self::Tx,
        rows: &StagedRows,
        result: &mut ApplyResult,
    ) -> impl Future<Output = Result<LedgerRead, StoreError>> + Send;

    /// Write the plan and quarantine `rejects`.
    fn write_plan(
        tx: &mut Self::Tx,
        plan: &Plan<'_>,
        rejects: &[RejectedRecord],
        result: &mut ApplyResult,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Commit (if `write_plan` has not already).
    fn commit(
        tx: Self::Tx,
        result: &mut ApplyResult,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Give the transaction up after a failure.
    fn rollback(tx: Self::Tx) -> impl Future<Output = ()> + Send;
}

/// One attempt at applying a batch, in one transaction: lock-read, plan,
/// write. `horizon` is the compaction horizon (`aggregate::plan`).
pub(crate) async fn apply_once<E: BatchEngine>(
    engine: &E,
    rows: &StagedRows,
    rejects: &[RejectedRecord],
    horizon: Option<i64>,
) -> Result<ApplyResult, StoreError> {
    let mut result = ApplyResult::default();
    let mut tx = engine.begin(&mut result).await?;
    match steps::<E>(&mut tx, rows, rejects, horizon, &mut result).await {
        Ok(()) => {
            E::commit(tx, &mut result).await?;
            Ok(result)
        }
        Err(e) => {
            E::rollback(tx).await;
            Err(e)
        }
    }
}

async fn steps<E: BatchEngine>(
    tx: &mut E::Tx,
    rows: &StagedRows,
    rejects: &[RejectedRecord],
    horizon: Option<i64>,
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    let read = if rows.is_empty() {
        LedgerRead::default()
    } else {
        E::lock_read(tx, rows, result).await?
    };
    let plan = plan(rows, &read, horizon)?;
    if !plan.writes_nothing() || !rejects.is_empty() {
        E::write_plan(tx, &plan, rejects, result).await?;
    }
    result.reports_changed = plan.reports.len();
    result.unchanged = plan.unchanged;
    result.before_horizon = plan.before_horizon;
    Ok(())
}

/// `BatchEngine::commit` of an engine whose batch is a driver transaction.
async fn commit_tx<DB: sqlx::Database>(
    tx: sqlx::Transaction<'static, DB>,
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    tx.commit().await?;
    result.statements += 1;
    Ok(())
}

/// `BatchEngine::rollback` of an engine whose batch is a driver
/// transaction: a failed rollback is only logged (the batch has already
/// failed with its own error).
async fn rollback_tx<DB: sqlx::Database>(tx: sqlx::Transaction<'static, DB>) {
    if let Err(e) = tx.rollback().await {
        tracing::debug!(error = %e, "rollback after a failed batch failed");
    }
}
