//! `streamfold audit`: the aggregates recomputed from the ledgers (and
//! what compaction folded into its bases), compared with what is stored.
//!
//! Every cell of `user_event_counts` should be its compaction base plus its
//! live activity ledger rows; every LLM report (`llm_reports` and its
//! per-model and per-function rows) its base plus its live LLM ledger
//! requests, summed exactly as a batch adds them (`llm_rollup`). Averages
//! are derived from those sums when read, so comparing the sums covers
//! them. The store streams each side in key order from one statement per
//! table family (`store::audit`); `compare` folds one report at a time, so
//! memory is bounded by one report and the differences found.
//!
//! `fix` audits again inside one transaction and moves each differing cell
//! or report by what differs (see `store::audit`).

pub mod compare;
pub mod report;

pub use compare::Comparer;
pub use report::{AuditReport, Difference};

use crate::store::{Store, StoreError};

/// What can stop an audit.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit failed: {0}")]
    Store(#[from] StoreError),
    #[error(
        "refusing to repair: {0} compaction run(s) dropped ledger rows before this release kept \
         their counts in base totals, so the recomputation lacks them and a repair would remove \
         true counts"
    )]
    BasesIncomplete(i64),
}

/// Told how far an audit has got, for a progress display.
pub trait Progress: Send + Sync {
    /// About `total` rows will be read (cells, then report rows).
    fn start(&self, total: u64);
    /// `n` more rows read.
    fn advance(&self, n: u64);
    /// The streams have ended.
    fn finish(&self);
}

/// No progress display.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

/// Compare every stored aggregate with its recomputation.
pub async fn audit(store: &Store, progress: &dyn Progress) -> Result<AuditReport, AuditError> {
    let (cells, parts) = store.audit_sizes().await?;
    progress.start(total(cells, parts));
    let mut comparer = Comparer::new(progress);
    store.audit(&mut comparer).await?;
    progress.finish();
    let mut report = comparer.into_report(false);
    report.runs_before_bases = store.runs_before_bases().await?;
    Ok(report)
}

/// Audit again inside one transaction and repair what differs there; the
/// report names what was repaired (`fixed`: the transaction committed).
///
/// Refused (`BasesIncomplete`) when a compaction dropped rows before the
/// bases existed: those counts are true but cannot be recomputed.
pub async fn fix(store: &Store, progress: &dyn Progress) -> Result<AuditReport, AuditError> {
    let before = store.runs_before_bases().await?;
    if before > 0 {
        return Err(AuditError::BasesIncomplete(before));
    }
    let (cells, parts) = store.audit_sizes().await?;
    progress.start(total(cells, parts));
    let mut comparer = Comparer::new(progress);
    store.audit_fix(&mut comparer).await?;
    progress.finish();
    Ok(comparer.into_report(true))
}

fn total(cells: i64, parts: i64) -> u64 {
    u64::try_from(cells.saturating_add(parts)).unwrap_or(0)
}
