//! What the two backfill sources (table Scan, S3 export) share: their
//! errors, progress reporting, pacing, the quarantine texts of their
//! lines, and applying a page of changes through `run_read`.

use crate::pipeline::{Batch, BatchReport, Pipeline, PipelineError, RawText, run_read};
use crate::record::backfill_text::{self, Names, WindowText};
use crate::store::RejectedRecord;
use crate::store::StoreError;
use std::borrow::Cow;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant as TokioInstant;

/// A backfill that stopped. Whatever was applied stays applied (and is
/// checkpointed up to the last committed page); `--resume` continues.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("table {table}: {reason}")]
    Table { table: String, reason: String },
    #[error("reading {what} failed: {reason}")]
    Read { what: String, reason: String },
    #[error("export is inconsistent: {0}")]
    Inconsistent(String),
    /// A data file whose bytes are not those its manifest's `md5Checksum`
    /// names: found before any of its lines was applied.
    #[error(
        "{file}: md5Checksum in the manifest is {want}, the file's is {got}: not the file \
         the export wrote; none of its lines was applied"
    )]
    ChecksumMismatch {
        file: String,
        want: String,
        got: String,
    },
    #[error("{part}: {source}")]
    Batch {
        part: String,
        #[source]
        source: PipelineError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("interrupted; progress is checkpointed, continue with --resume")]
    Interrupted,
    /// A manifest names an object outside the export's own folder
    /// (`sources::export::keys`); nothing was opened.
    #[error("{at}: key {key:?} refused: {reason}")]
    KeyRefused {
        at: String,
        key: String,
        reason: String,
    },
    /// A task that cannot run as given (a Lambda export task with a local
    /// path).
    #[error("{0}")]
    Task(String),
    /// A data file a cap refused (`sources::export::lines`): the other
    /// files of its export go on.
    #[error("{file}: refused: {reason}")]
    Refused { file: String, reason: String },
    /// Data files were refused (each with its reason); the others were
    /// applied, as `summary` counts.
    #[error(
        "{} data file(s) refused, the others applied: {}",
        refused.len(),
        refused.join("; ")
    )]
    FilesRefused {
        summary: Box<BackfillSummary>,
        refused: Vec<String>,
    },
}

/// The stable error names a backfill task fails with (the Lambda's
/// `errorType`, which Step Functions' `Retry` and `Catch` match): only
/// [`TRANSIENT`] is worth retrying; every other name is permanent, and the
/// state machines fail the work item at once (infra/README, "Errors").
pub mod error_names {
    /// A read, a lookup or the database failed in a way a later attempt may
    /// not (network, throttling, a dropped connection, a lock conflict).
    pub const TRANSIENT: &str = "Streamfold.Transient";
    /// A data file's bytes differ from its manifest's `md5Checksum`.
    pub const CHECKSUM_MISMATCH: &str = "Streamfold.ChecksumMismatch";
    /// The export contradicts itself or its caps: a malformed manifest,
    /// item counts that disagree, a key outside the export, a refused file.
    pub const INVALID_EXPORT: &str = "Streamfold.InvalidExport";
    /// The task cannot run as given: not a source table, a segment out of
    /// range, a local path, an export of another table, bad JSON.
    pub const INVALID_TASK: &str = "Streamfold.InvalidTask";
    /// The function's environment refuses the work whatever the input: a
    /// database schema not migrated, a URL or TLS setting refused, the
    /// secret unreadable.
    pub const ENVIRONMENT: &str = "Streamfold.Environment";
    /// Every name, for documentation and tests.
    pub const ALL: [&str; 5] = [
        TRANSIENT,
        CHECKSUM_MISMATCH,
        INVALID_EXPORT,
        INVALID_TASK,
        ENVIRONMENT,
    ];
}

/// The error name (`error_names`) of a store failure.
pub fn store_error_name(e: &StoreError) -> &'static str {
    match e {
        StoreError::UnsupportedUrl(_)
        | StoreError::Insecure { .. }
        | StoreError::SchemaOutdated { .. }
        | StoreError::UnsupportedServer { .. }
        | StoreError::Secret(_)
        | StoreError::BackfillUnfinished { .. } => error_names::ENVIRONMENT,
        // A refused connection is also what a failover looks like.
        _ => error_names::TRANSIENT,
    }
}

impl BackfillError {
    /// This error's stable name (`error_names`): what Step Functions sees.
    pub fn error_name(&self) -> &'static str {
        use error_names::*;
        match self {
            BackfillError::Read { .. } | BackfillError::Interrupted => TRANSIENT,
            BackfillError::ChecksumMismatch { .. } => CHECKSUM_MISMATCH,
            BackfillError::Inconsistent(_)
            | BackfillError::KeyRefused { .. }
            | BackfillError::Refused { .. }
            | BackfillError::FilesRefused { .. } => INVALID_EXPORT,
            BackfillError::Table { .. } | BackfillError::Task(_) => INVALID_TASK,
            BackfillError::Store(e) => store_error_name(e),
            BackfillError::Batch { source, .. } => match source {
                PipelineError::Store(e) => store_error_name(e),
                PipelineError::Directory(_) => TRANSIENT,
            },
        }
    }
}

/// Receives progress (the CLI draws bars; tests ignore it).
pub trait Observer: Send + Sync {
    /// A part (segment, data file) starts; `expected` items if known.
    fn started(&self, _part: &str, _expected: Option<u64>, _already: u64) {}
    /// `items` more items of a part were applied.
    fn advanced(&self, _part: &str, _items: u64) {}
    fn finished(&self, _part: &str) {}
    /// Something the operator should know before the work starts (which
    /// export was chosen, and why).
    fn note(&self, _message: &str) {}
}

/// No progress output.
pub struct Quiet;
impl Observer for Quiet {}

/// What a backfill did.
#[derive(Debug, Default)]
pub struct BackfillSummary {
    /// Items read in this run.
    pub items: u64,
    /// Parts completed in this run, and parts skipped because an earlier
    /// run had completed them (`--resume`).
    pub parts_done: u64,
    pub parts_skipped: u64,
    /// Pages (Scan) or batches (export) committed and checkpointed in
    /// this run: what moved a checkpoint, even a page of no items.
    pub pages: u64,
    /// A stop (Ctrl-C, a deadline) cut a part short; what was committed
    /// before it is counted here and checkpointed.
    pub interrupted: bool,
    /// Outcome counts of the snapshot records.
    pub report: BatchReport,
    pub elapsed: Duration,
}

impl BackfillSummary {
    pub fn merge(&mut self, o: BackfillSummary) {
        self.items += o.items;
        self.parts_done += o.parts_done;
        self.parts_skipped += o.parts_skipped;
        self.pages += o.pages;
        self.interrupted |= o.interrupted;
        self.report.merge(o.report);
    }
}

/// Keeps a rate (items or capacity units per second) across all the
/// workers of a backfill: each charges what it used and waits until the
/// rate allows it. Written here because the cost of a Scan page is known
/// only after the page (its `ConsumedCapacity`), which the usual
/// ask-before-acting rate limiters do not model.
pub struct Pacer {
    rate: Option<f64>,
    started: TokioInstant,
    used: Mutex<f64>,
}

impl Pacer {
    /// `rate` per second; `None` does not limit.
    pub fn new(rate: Option<f64>) -> Pacer {
        Pacer {
            rate: rate.filter(|r| *r > 0.0),
            started: TokioInstant::now(),
            used: Mutex::new(0.0),
        }
    }

    /// Charge `units` and wait until the rate allows them.
    pub async fn charge(&self, units: f64) {
        let Some(rate) = self.rate else { return };
        let due = {
            let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
            *used += units;
            self.started + Duration::from_secs_f64(*used / rate)
        };
        tokio::time::sleep_until(due).await;
    }
}

/// The export lines (or Scan items written as such lines) of a batch, as
/// received, with what names them (`record::backfill_text`): their
/// quarantine texts, written only for the lines quarantined.
pub struct LineTexts<'a> {
    pub table: &'a str,
    /// A snapshot's key attributes.
    pub keys: Option<&'a [String]>,
    /// An incremental export's window.
    pub window: Option<WindowText>,
    /// Each record's name and line, in the batch's order.
    pub lines: Vec<(&'a str, &'a str)>,
}

impl LineTexts<'_> {
    /// What names record `id` of this batch.
    pub fn names<'n>(&'n self, id: &'n str) -> Names<'n> {
        Names {
            table: Cow::Borrowed(self.table),
            id: Cow::Borrowed(id),
            keys: self.keys.map(<[String]>::to_vec),
            window: self.window.clone(),
        }
    }
}

impl RawText for LineTexts<'_> {
    fn raw_text(&self, index: usize) -> String {
        match self.lines.get(index) {
            Some((id, line)) => backfill_text::text(&self.names(id), line),
            None => String::new(),
        }
    }
}

/// Apply one page a reader read into change records (`batch`), and
/// quarantine `unreadable` with it, in one transaction.
pub async fn apply_read(
    p: &Pipeline,
    batch: Batch<'_, '_>,
    unreadable: &[RejectedRecord],
    part: &str,
) -> Result<BatchReport, BackfillError> {
    run_read(p, batch, unreadable)
        .await
        .map_err(|source| BackfillError::Batch {
            part: part.to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pacer_keeps_the_rate_across_charges() {
        let pacer = Pacer::new(Some(100.0));
        let start = tokio::time::Instant::now();
        for _ in 0..10 {
            pacer.charge(50.0).await;
        }
        // 500 units at 100/s: 5 s (virtual time).
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(4900), "{waited:?}");
        assert!(waited <= Duration::from_millis(5100), "{waited:?}");
        let unlimited = Pacer::new(None);
        let t = tokio::time::Instant::now();
        unlimited.charge(1e9).await;
        assert_eq!(t.elapsed(), Duration::ZERO);
    }
}
