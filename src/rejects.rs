//! Re-running quarantined records (`streamfold rejects retry`) after a fix
//! (a normaliser change, a directory or configuration fix). Each page of
//! quarantined records goes through `run_batch` like any other batch; the
//! ones no longer rejected are then removed from `rejected_records`. A
//! retry is idempotent: a record already applied is unchanged by the
//! ledger, and one rejected again stays quarantined (same record key).

use crate::pipeline::{BatchReport, Pipeline, PipelineError, run_batch};
use serde_json::value::RawValue;
use std::collections::HashSet;

/// What a retry did.
#[derive(Debug, Default)]
pub struct RetryReport {
    /// Quarantined records re-run.
    pub retried: u64,
    /// Of those, applied (or unchanged, skipped, unattributed) and removed
    /// from quarantine.
    pub resolved: u64,
    /// Rejected again, with their reasons (id, reason).
    pub still_rejected: Vec<(i64, String)>,
    pub report: BatchReport,
}

/// Re-run the quarantined records `only` names (all when empty), `page`
/// records per batch.
pub async fn retry_rejects(
    p: &Pipeline,
    only: &[i64],
    page: u32,
) -> Result<RetryReport, PipelineError> {
    let wanted: HashSet<i64> = only.iter().copied().collect();
    let mut out = RetryReport::default();
    let mut after = 0i64;
    loop {
        let rows = p.store.rejected_raw(after, page.max(1)).await?;
        let Some((last, _)) = rows.last() else { break };
        after = last.id;
        let rows: Vec<_> = rows
            .into_iter()
            .filter(|(r, _)| wanted.is_empty() || wanted.contains(&r.id))
            .collect();
        // A raw text that is not JSON cannot be retried: it stays.
        let mut ids = Vec::with_capacity(rows.len());
        let mut records: Vec<Box<RawValue>> = Vec::with_capacity(rows.len());
        for (listing, raw) in rows {
            out.retried += 1;
            match RawValue::from_string(raw) {
                Ok(r) => {
                    ids.push(listing.id);
                    records.push(r);
                }
                Err(_) => out.still_rejected.push((listing.id, listing.reason)),
            }
        }
        if records.is_empty() {
            continue;
        }
        let refs: Vec<&RawValue> = records.iter().map(|r| r.as_ref()).collect();
        let report = run_batch(p, &refs).await?;
        let mut resolved = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            match report.rejections.iter().find(|r| r.index == i) {
                Some(r) => out.still_rejected.push((*id, r.reason.clone())),
                None => resolved.push(*id),
            }
        }
        p.store.delete_rejects(&resolved).await?;
        out.resolved += resolved.len() as u64;
        out.report.merge(report);
    }
    Ok(out)
}
