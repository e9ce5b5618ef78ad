//! Backfill work items for the Lambda function, as the children of a Step
//! Functions Distributed Map invoke it (`infra/backfill-*.asl.json`):
//!
//! * `{"streamfold": {"export_file": {"export": "s3://bucket/…/AWSDynamoDB/<id>",
//!   "table": "…", "file": {<its line of manifest-files.json>}}}}` applies one
//!   data file of an export;
//! * `{"streamfold": {"scan_segment": {"table": "…", "segment": 3,
//!   "total_segments": 16}}}` scans one segment of a table.
//!
//! An `export_file` task takes `s3://` locations only (a path is refused),
//! and its file's key must lie in that export's own `data/` folder.
//!
//! Both go through the same backfill code as `streamfold backfill`, and
//! through `run_batch`, with its checkpoints in SQL: a finished file or
//! segment is skipped, a started one goes on after its last committed
//! batch. Each stops, resumably, `MARGIN` before the invocation's deadline
//! and answers `{"done": false, …}`; the state machine invokes it again
//! until `done`. A re-run of the whole execution (after a failed child)
//! skips what finished and re-applies nothing: what a crashed batch had
//! committed is a no-op the second time (the ledger).

use super::backfill::{BackfillError, Quiet};
use super::export::{
    ExportLocation, ExportPlan, FileJob, IncrementalOptions, export_file_backfill, export_plan,
};
use super::scan::{ScanOptions, Segments, scan_backfill_until_stopped};
use crate::pipeline::Pipeline;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Time kept back from the invocation's deadline for the batch under way
/// and the response: at most this, and at most a quarter of the time left
/// (a function with a short timeout, or a local runtime's, still works).
pub const MARGIN: Duration = Duration::from_secs(20);

/// One data file of an export.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportFileTask {
    /// The export's folder, `s3://bucket/prefix/AWSDynamoDB/<export id>`.
    pub export: String,
    /// The source table (with its prefix).
    pub table: String,
    /// The file's line of `manifest-files.json` (`dataFileS3Key`,
    /// `itemCount`, `md5Checksum`), as the Map's `ItemReader` read it.
    pub file: serde_json::Value,
    /// An incremental export (its window's states, `record::incremental`).
    #[serde(default)]
    pub incremental: bool,
    /// With `incremental`: the table's TTL attribute.
    #[serde(default)]
    pub ttl_attribute: Option<String>,
    /// Items per transaction.
    #[serde(default = "default_batch")]
    pub batch: usize,
}

/// The first step of an export backfill: check the export and say what
/// the Map will read (`export::export_plan`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportPlanTask {
    pub bucket: String,
    /// The export's folder (`<prefix>/AWSDynamoDB/<export id>`) or the
    /// prefix holding only it; a trailing `/` is allowed.
    pub export_prefix: String,
    pub table: String,
    #[serde(default)]
    pub incremental: bool,
    #[serde(default)]
    pub ttl_attribute: Option<String>,
}

/// One segment of a parallel Scan.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanSegmentTask {
    pub table: String,
    pub segment: u32,
    pub total_segments: u32,
    /// The backfill run (the Step Functions execution's name): a new run
    /// scans anew, the same run goes on from its checkpoints
    /// (`scan::job_name`). Without it, the CLI's job of the table.
    #[serde(default)]
    pub run: Option<String>,
    /// Read capacity units per second: of the whole backfill when
    /// `concurrency` is given (each segment takes its share), else of this
    /// segment.
    #[serde(default)]
    pub max_rcu: Option<f64>,
    /// Segments scanned at once (the Map's MaxConcurrency), sharing
    /// `max_rcu`.
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// Items per Scan page.
    #[serde(default)]
    pub page_size: Option<i32>,
}

fn default_batch() -> usize {
    1000
}

/// What one invocation did, committed work only, also when it stopped
/// for its deadline: the state machine loops while `done` is false and
/// fails the work item after `progressed` was false a few times in a row.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct TaskOutcome {
    pub done: bool,
    /// An earlier invocation (of this run) had finished the work: nothing
    /// was read.
    pub already_done: bool,
    /// A checkpoint moved: a page or batch was committed, or the work
    /// finished.
    pub progressed: bool,
    /// Scan pages (export: batches) committed.
    pub pages: u64,
    pub items: u64,
    pub applied: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub rejected: u64,
    /// Stored uncounted (no Slack ID / account yet).
    pub unattributed: u64,
}

impl TaskOutcome {
    fn from_summary(s: &super::backfill::BackfillSummary, done: bool, already_done: bool) -> Self {
        let t = s.report.total();
        TaskOutcome {
            done,
            already_done,
            progressed: done || s.pages > 0 || s.items > 0,
            pages: s.pages,
            items: s.items,
            applied: t.applied,
            unchanged: t.unchanged,
            skipped: t.skipped,
            rejected: t.rejected,
            unattributed: t.unattributed,
        }
    }
}

/// Plan an export backfill: the export's folder and manifest key without
/// a doubled `/`, its files, and how many an earlier run applied (said in
/// the log and the execution's history: those work items read nothing).
pub async fn run_export_plan(
    p: &Pipeline,
    s3: Option<&aws_sdk_s3::Client>,
    task: &ExportPlanTask,
) -> Result<ExportPlan, BackfillError> {
    let location = ExportLocation::S3 {
        bucket: task.bucket.clone(),
        prefix: task.export_prefix.trim_matches('/').to_string(),
    };
    let incremental = task.incremental.then(|| IncrementalOptions {
        ttl_attribute: task.ttl_attribute.clone(),
    });
    let plan = export_plan(p, s3, &location, &task.table, incremental).await?;
    if plan.already_done_files > 0 {
        tracing::warn!(table = %task.table, export = %plan.export,
            files = plan.files, already_done_files = plan.already_done_files,
            "an earlier run of this export applied some of its files whole: this run \
             reads nothing of them (a re-run of an export changes nothing)");
    }
    tracing::info!(table = %task.table, export = %plan.export, files = plan.files,
        items = plan.items, "export backfill planned");
    Ok(plan)
}

/// Apply one export data file, stopping `MARGIN` before `deadline`.
pub async fn run_export_file(
    p: &Pipeline,
    s3: Option<&aws_sdk_s3::Client>,
    task: &ExportFileTask,
    deadline: Instant,
) -> Result<TaskOutcome, BackfillError> {
    let export = ExportLocation::parse(&task.export).map_err(BackfillError::Inconsistent)?;
    // The function reads exports from S3 only: a path would read its own
    // file system.
    if !matches!(export, ExportLocation::S3 { .. }) {
        return Err(BackfillError::Task(format!(
            "export_file: export {:?} is not an s3:// location; the function reads \
             exports from S3 only (s3://bucket/prefix/AWSDynamoDB/<export id>)",
            task.export
        )));
    }
    let job = FileJob {
        export,
        table: task.table.clone(),
        file: task.file.clone(),
        incremental: task.incremental.then(|| IncrementalOptions {
            ttl_attribute: task.ttl_attribute.clone(),
        }),
        batch: task.batch,
        max_batches: None,
    };
    let out = export_file_backfill(p, s3, &job, Some(stop_at(deadline))).await?;
    let outcome = TaskOutcome::from_summary(&out.summary, out.done, out.already_done);
    if out.already_done {
        // Export checkpoints are keyed by the export, not by the run: its
        // files do not change, so a re-run would change nothing.
        tracing::warn!(table = %task.table, export = %task.export,
            "this data file was applied whole by an earlier run of this export: \
             nothing read, nothing applied (a re-run of an export is a no-op)");
    }
    tracing::info!(table = %task.table, export = %task.export, done = outcome.done,
        already_done = outcome.already_done, items = outcome.items, applied = outcome.applied,
        "backfill of an export data file");
    Ok(outcome)
}

/// Scan one segment, stopping after the page under way once `MARGIN`
/// before `deadline` has come.
pub async fn run_scan_segment(
    p: &Pipeline,
    dynamodb: &aws_sdk_dynamodb::Client,
    task: &ScanSegmentTask,
    deadline: Instant,
) -> Result<TaskOutcome, BackfillError> {
    let opts = ScanOptions {
        table: task.table.clone(),
        segments: Segments::One {
            segment: task.segment,
            total: task.total_segments,
        },
        resume: true,
        max_rcu: segment_rcu(task),
        max_items_per_sec: None,
        page_size: task.page_size,
        consistent_read: false,
        max_pages: None,
        run: task.run.clone(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let timer = {
        let stop = stop.clone();
        let at = tokio::time::Instant::from_std(stop_at(deadline));
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    let result = scan_backfill_until_stopped(p, dynamodb, &opts, &Quiet, &stop).await;
    timer.abort();
    // Stopped for the deadline: what it committed before is counted, and
    // the next invocation goes on from there.
    let s = result?;
    let outcome = TaskOutcome::from_summary(
        &s,
        !s.interrupted,
        s.parts_skipped > 0 && s.items == 0 && s.pages == 0,
    );
    tracing::info!(table = %task.table, segment = task.segment, total = task.total_segments,
        run = task.run.as_deref().unwrap_or(""), done = outcome.done,
        already_done = outcome.already_done, pages = outcome.pages, items = outcome.items,
        applied = outcome.applied, "backfill of a Scan segment");
    Ok(outcome)
}

/// This segment's read capacity: its share of the whole backfill's
/// `max_rcu` when the task says how many segments run at once.
fn segment_rcu(task: &ScanSegmentTask) -> Option<f64> {
    let rcu = task.max_rcu?;
    let at_once = task
        .concurrency
        .unwrap_or(1)
        .clamp(1, task.total_segments.max(1));
    Some(rcu / f64::from(at_once))
}

fn stop_at(deadline: Instant) -> Instant {
    let left = deadline.saturating_duration_since(Instant::now());
    deadline
        .checked_sub(MARGIN.min(left / 4))
        .unwrap_or(deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_leaves_time_to_work_whatever_the_timeout() {
        let now = Instant::now();
        // A 3 s timeout (Lambda's default, a local runtime's): work until
        // about 2.25 s, not "already out of time".
        let short = stop_at(now + Duration::from_secs(3));
        assert!(short > now + Duration::from_secs(2), "{:?}", short - now);
        // A long one keeps the whole margin back.
        let long = stop_at(now + Duration::from_secs(900));
        assert!(long <= now + Duration::from_secs(880));
        assert!(long > now + Duration::from_secs(879));
    }

    fn task(max_rcu: Option<f64>, concurrency: Option<u32>, total: u32) -> ScanSegmentTask {
        ScanSegmentTask {
            table: "t".into(),
            segment: 0,
            total_segments: total,
            run: None,
            max_rcu,
            concurrency,
            page_size: None,
        }
    }

    #[test]
    fn the_backfill_rcu_is_shared_by_the_segments_scanned_at_once() {
        assert_eq!(segment_rcu(&task(None, Some(4), 16)), None);
        assert_eq!(segment_rcu(&task(Some(100.0), None, 16)), Some(100.0));
        assert_eq!(segment_rcu(&task(Some(100.0), Some(4), 16)), Some(25.0));
        // Fewer segments than children: each segment runs at once.
        assert_eq!(segment_rcu(&task(Some(100.0), Some(8), 2)), Some(50.0));
        assert_eq!(segment_rcu(&task(Some(100.0), Some(0), 2)), Some(100.0));
    }
}
