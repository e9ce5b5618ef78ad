//! Scheduled invocations of the Lambda function (an EventBridge schedule's
//! constant input) rather than stream batches:
//! `{"streamfold": {"compact": {"older_than_days": 90}}}` runs a ledger
//! compaction (`store::compaction`) until shortly before the invocation's
//! deadline; the next scheduled invocation resumes it where it stopped.

use crate::store::compaction::{CompactOptions, CompactReport, MIN_AGE_DAYS};
use crate::store::{COMPACTION_ANNOUNCE, Store, StoreError};
use serde::Deserialize;
use std::time::{Duration, Instant};

/// The `streamfold` object of a scheduled invocation.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledTask {
    pub compact: Option<CompactTask>,
    /// The export state machine's first step (`sources::backfill_task`).
    pub export_plan: Option<crate::sources::backfill_task::ExportPlanTask>,
    /// A Distributed Map child's export data file (`sources::backfill_task`).
    pub export_file: Option<crate::sources::backfill_task::ExportFileTask>,
    /// A Distributed Map child's Scan segment (`sources::backfill_task`).
    pub scan_segment: Option<crate::sources::backfill_task::ScanSegmentTask>,
}

/// A compaction to run: drop ledger rows of events older than
/// `older_than_days` (at least `MIN_AGE_DAYS`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompactTask {
    pub older_than_days: u64,
    #[serde(default)]
    pub include_unattributed: bool,
    /// Ledger rows examined per DELETE.
    #[serde(default = "default_chunk")]
    pub chunk: u32,
}

fn default_chunk() -> u32 {
    5000
}

/// A scheduled task that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ScheduledError {
    #[error(
        "scheduled task: nothing to do (expected {{\"streamfold\": {{\"compact\": {{\"older_than_days\": N}}}}}}, or export_file / scan_segment)"
    )]
    Empty,
    #[error(
        "scheduled compaction: older_than_days {0} is under {MIN_AGE_DAYS}: records that old still arrive and would be skipped"
    )]
    TooRecent(u64),
    #[error("scheduled compaction: {0}")]
    Store(#[from] StoreError),
}

/// Time kept back from the invocation's deadline for the last chunk and
/// the response.
const MARGIN: Duration = Duration::from_secs(10);

/// Run `task` on `store`, stopping (resumably) `MARGIN` before `deadline`.
pub async fn run(
    store: &Store,
    task: &ScheduledTask,
    deadline: Instant,
) -> Result<CompactReport, ScheduledError> {
    let Some(c) = &task.compact else {
        return Err(ScheduledError::Empty);
    };
    if c.older_than_days < MIN_AGE_DAYS {
        return Err(ScheduledError::TooRecent(c.older_than_days));
    }
    let horizon = chrono::Utc::now().timestamp() - (c.older_than_days * 86_400) as i64;
    let report = store
        .compact(&CompactOptions {
            horizon,
            include_unattributed: c.include_unattributed,
            chunk: c.chunk,
            announce: COMPACTION_ANNOUNCE,
            deadline: Some(deadline.checked_sub(MARGIN).unwrap_or(deadline)),
            on_wait: None,
        })
        .await?;
    tracing::info!(
        run = report.run,
        horizon = report.horizon,
        resumed = report.resumed,
        activity_dropped = report.activity_dropped,
        llm_dropped = report.llm_dropped,
        finished = report.finished,
        "scheduled ledger compaction"
    );
    Ok(report)
}
