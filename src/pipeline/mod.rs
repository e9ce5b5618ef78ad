//! `run_batch`: the one path every entry point takes (replay, Lambda,
//! backfill, re-attribution). A batch is parsed record by record, normalised
//! (pure), resolved against the `Directory` once for all its keys, staged as
//! one ledger row per identity, and applied by the `Store` in one transaction
//! together with the batch's rejected records.
//!
//! `run_batch` (this file) normalises and isolates records the store
//! refuses; `fold` resolves, stages and applies; `outcome` counts what
//! happened; `reattribute` re-enters `fold` with unattributed ledger rows.

mod fold;
mod outcome;
mod reattribute;

pub use fold::fold_changes;
pub use outcome::{BatchReport, Counts, Rejection};
pub use reattribute::reattribute;

use crate::domain::SourceKind;
use crate::normalize::{self, Change, Normalized};
use crate::record::change::{Read, approx_created_of, meta_of, source_of};
use crate::record::lambda_event::{RecordMeta, parse_event, parse_event_typed, parse_record};
use crate::record::{backfill_text, kinesis};
use crate::resolve::{AnyDirectory, DirectoryError};
use crate::store::{RejectedRecord, Store, StoreError};
use chrono_tz::Tz;
use serde_json::value::RawValue;
use tracing::Instrument;

/// A batch failed: retry it. Nothing of it was applied, or, when it was
/// being bisected, only parts that the retry re-applies as no-ops.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Everything a batch needs, built once per process and passed explicitly.
pub struct Pipeline {
    pub store: Store,
    pub directory: AnyDirectory,
    /// Zone for users without a valid `tz` / `timezone`.
    pub default_tz: Tz,
}

/// The text of each record of a batch as it was received, for its
/// quarantine row (`rejects show`, `rejects retry`). Asked only for the
/// records that are quarantined.
pub trait RawText: Send + Sync {
    fn raw_text(&self, index: usize) -> String;
}

/// Records received one by one as JSON texts (Lambda's, quarantine rows).
pub struct RawRecords<'a, 'b>(pub &'a [&'b RawValue]);

impl RawText for RawRecords<'_, '_> {
    fn raw_text(&self, index: usize) -> String {
        self.0
            .get(index)
            .map(|r| r.get().to_string())
            .unwrap_or_default()
    }
}

/// A whole Lambda event read in one pass: split into its records' texts
/// only when one of them is quarantined.
pub struct EventText<'a> {
    text: &'a str,
    split: std::sync::OnceLock<Vec<&'a RawValue>>,
}

impl<'a> EventText<'a> {
    pub fn new(text: &'a str) -> Self {
        EventText {
            text,
            split: std::sync::OnceLock::new(),
        }
    }
}

impl RawText for EventText<'_> {
    fn raw_text(&self, index: usize) -> String {
        let split = self.split.get_or_init(|| {
            parse_event(self.text)
                .map(|e| e.records)
                .unwrap_or_default()
        });
        split
            .get(index)
            .map(|r| r.get().to_string())
            .unwrap_or_default()
    }
}

/// One batch as its reader read it: a change (or why there is none) per
/// record, and the records' texts as received.
pub struct Batch<'a, 'r> {
    pub records: Vec<Read<'r>>,
    pub raw: &'a dyn RawText,
}

/// Apply one batch of Lambda records (DynamoDB stream records, or Kinesis
/// records of DynamoDB changes) or quarantine texts of backfilled records
/// (`record::backfill_text`), each parsed on its own.
pub async fn run_batch(p: &Pipeline, records: &[&RawValue]) -> Result<BatchReport, PipelineError> {
    let mut millisecond = 0u64;
    let mut read: Vec<Read<'_>> = Vec::with_capacity(records.len());
    for raw in records {
        // A backfilled record's quarantine text (`rejects retry`).
        if let Some(r) = backfill_text::read(raw) {
            read.push(r);
            continue;
        }
        match kinesis::read(raw) {
            Some(k) => {
                if k.millisecond {
                    millisecond += 1;
                    if millisecond == 1 {
                        say_millisecond_once(kinesis::stream_arn(raw).as_deref());
                    }
                }
                read.push(k.read);
            }
            None => read.push(parse_record(raw).body),
        }
    }
    let mut report = run_read(
        p,
        Batch {
            records: read,
            raw: &RawRecords(records),
        },
        &[],
    )
    .await?;
    report.kinesis_millisecond = millisecond;
    Ok(report)
}

/// A whole Lambda event document through the pipeline, read in one pass
/// when every record in it is a well-formed DynamoDB stream record
/// (`record::lambda_event::parse_event_typed`), else record by record as
/// [`run_batch`] reads them. `Ok(None)` when the document is not an event.
pub async fn run_event(
    p: &Pipeline,
    text: &str,
) -> Result<Result<BatchReport, serde_json::Error>, PipelineError> {
    if let Some(records) = parse_event_typed(text) {
        let raw = EventText::new(text);
        return run_read(p, Batch { records, raw: &raw }, &[]).await.map(Ok);
    }
    match parse_event(text) {
        Ok(event) => run_batch(p, &event.records).await.map(Ok),
        Err(e) => Ok(Err(e)),
    }
}

/// Warn, once per Kinesis stream and process, that its change records are
/// stamped to the millisecond: two changes of one item in one millisecond
/// are then ordered only by their kind (`domain::ChangeOrder`). The batch's
/// count goes out as the `KinesisMillisecondRecords` metric each time.
fn say_millisecond_once(stream: Option<&str>) {
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let stream = stream.unwrap_or("(unnamed stream)");
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if seen.iter().any(|s| s == stream) {
        return;
    }
    // A handful of streams per process: a short list, bounded all the same.
    if seen.len() < 64 {
        seen.push(stream.to_string());
    }
    tracing::warn!(
        stream,
        "Kinesis change records at MILLISECOND precision: two changes of one item in one \
         millisecond are ordered only by their kind (INSERT, MODIFY, REMOVE); set the \
         stream's ApproximateCreationDateTimePrecision to MICROSECOND"
    );
}

/// A read batch through the pipeline, in one span that names the batch
/// (source, sequence range) and carries its outcome counts (never item
/// contents). `unreadable` is quarantined in the same transaction: what a
/// reader could not even make into a record (a backfill's bad export line
/// or Scan item, with its reason). Each counts as read and rejected, and
/// is reported after the batch's records (`Rejection::index` from
/// `records.len()` on).
pub async fn run_read(
    p: &Pipeline,
    batch: Batch<'_, '_>,
    unreadable: &[RejectedRecord],
) -> Result<BatchReport, PipelineError> {
    let first = batch.records.first().map(meta_of).unwrap_or_default();
    let last = batch.records.last().map(meta_of).unwrap_or_default();
    let span = tracing::info_span!(
        "batch",
        source = first.source.map_or("unknown", SourceKind::table_suffix),
        first_sequence = first.sequence_number.as_deref().unwrap_or("-"),
        last_sequence = last.sequence_number.as_deref().unwrap_or("-"),
        records = batch.records.len(),
        applied = tracing::field::Empty,
        unchanged = tracing::field::Empty,
        skipped = tracing::field::Empty,
        rejected = tracing::field::Empty,
        unattributed = tracing::field::Empty,
    );
    let report = run_batch_inner(p, batch, unreadable)
        .instrument(span.clone())
        .await?;
    let t = report.total();
    span.record("applied", t.applied);
    span.record("unchanged", t.unchanged);
    span.record("skipped", t.skipped);
    span.record("rejected", t.rejected);
    span.record("unattributed", t.unattributed);
    span.in_scope(|| {
        tracing::info!(
            statements = report.statements,
            db_ms = report.db_time.as_millis() as u64,
            "batch applied"
        )
    });
    Ok(report)
}

/// What normalisation left to apply of one record.
enum Pending {
    /// A change to fold (its record's naming metadata is read again only
    /// should the store refuse it).
    Change(Box<Change>),
    /// A record to quarantine.
    Reject(RejectedRecord),
    /// Nothing to write (a skip).
    Nothing,
}

/// The quarantine row of a record whose text as received is `raw`.
fn reject_row(meta: &RecordMeta, reason: &str, raw: &str) -> RejectedRecord {
    RejectedRecord::new(meta, reason, RawValue::NULL).with_raw(raw)
}

async fn run_batch_inner(
    p: &Pipeline,
    mut batch: Batch<'_, '_>,
    unreadable: &[RejectedRecord],
) -> Result<BatchReport, PipelineError> {
    let mut report = BatchReport::default();
    let records = batch.records.len();
    let mut pending = Vec::with_capacity(records);
    for index in 0..records {
        let read = &batch.records[index];
        let source = source_of(read);
        report.counts(source).read += 1;
        if let Some(at) = approx_created_of(read) {
            report.oldest_record = Some(report.oldest_record.map_or(at, |o| o.min(at)));
        }
        let normalized = match read {
            Ok(change) => normalize::normalize_change(change),
            Err(u) => Normalized::Reject(u.reason.clone()),
        };
        match normalized {
            Normalized::Change(c) => pending.push(Pending::Change(Box::new(c))),
            Normalized::Skip(_) => {
                report.counts(source).skipped += 1;
                pending.push(Pending::Nothing);
            }
            Normalized::Reject(reason) => {
                let meta = meta_of(read);
                report.counts(source).rejected += 1;
                tracing::warn!(record = %meta, %reason, "record quarantined");
                pending.push(Pending::Reject(reject_row(
                    &meta,
                    &reason,
                    &batch.raw.raw_text(index),
                )));
                report.rejections.push(Rejection {
                    index,
                    meta,
                    reason,
                });
            }
        }
        // Normalised: only the record's names are needed from here on (to
        // quarantine it should the store refuse it). Its parsed images go
        // now, so that a batch holds one record's images at a time, not
        // all of them through the database round trips.
        if let Ok(change) = &mut batch.records[index] {
            change.keys = Default::default();
            change.new_image = Default::default();
            change.old_image = Default::default();
        }
    }
    // After the records, so that `pending[i]` stays `records[i]` for them.
    for (i, r) in unreadable.iter().enumerate() {
        let counts = report.counts(r.source);
        counts.read += 1;
        counts.rejected += 1;
        tracing::warn!(record = ?r.event_id, reason = %r.reason, "record quarantined");
        pending.push(Pending::Reject(r.clone()));
        report.rejections.push(Rejection {
            index: records + i,
            meta: RecordMeta {
                table: r.table.clone(),
                source: r.source,
                event_id: r.event_id.clone(),
                ..RecordMeta::default()
            },
            reason: r.reason.clone(),
        });
    }
    apply_isolating(p, &batch, &pending, 0, &mut report).await?;
    Ok(report)
}

/// Apply the records `pending[..]` (the batch's records from `offset` on)
/// in one transaction. When the store refuses them with an error that
/// blames the data (not transient, not the environment: DESIGN §5, "no
/// record can block a batch"), bisect: apply each half on its own, in
/// order, down to the single records responsible, which are quarantined
/// with the store's reason. Halves that committed before a later failure
/// are harmless to apply again: the ledger makes a retried batch a no-op.
fn apply_isolating<'a>(
    p: &'a Pipeline,
    batch: &'a Batch<'a, 'a>,
    pending: &'a [Pending],
    offset: usize,
    report: &'a mut BatchReport,
) -> futures::future::BoxFuture<'a, Result<(), PipelineError>> {
    Box::pin(async move {
        let mut changes = Vec::new();
        let mut rejects = Vec::new();
        for item in pending {
            match item {
                Pending::Change(c) => changes.push((**c).clone()),
                Pending::Reject(r) => rejects.push(r.clone()),
                Pending::Nothing => {}
            }
        }
        if changes.is_empty() && rejects.is_empty() {
            return Ok(());
        }
        let mut attempt = BatchReport::default();
        let err = match fold_changes(p, changes, &rejects, &mut attempt).await {
            Ok(()) => {
                report.merge(attempt);
                return Ok(());
            }
            Err(PipelineError::Store(e)) if e.blames_the_data() => e,
            Err(e) => return Err(e),
        };
        if pending.len() > 1 {
            let mid = pending.len() / 2;
            report.splits += 1;
            tracing::warn!(error = %err, records = pending.len(), "the store refused part of this batch; isolating the records responsible");
            apply_isolating(p, batch, &pending[..mid], offset, report).await?;
            return apply_isolating(p, batch, &pending[mid..], offset + mid, report).await;
        }
        // One record the store refuses on its own: quarantine it.
        let Pending::Change(_) = &pending[0] else {
            // A quarantine row itself was refused: nothing left to isolate.
            return Err(PipelineError::Store(err));
        };
        let meta = &batch.records.get(offset).map(meta_of).unwrap_or_default();
        let reason = format!("the database refused this record: {}", err.record_reason());
        tracing::warn!(record = %meta, %reason, "record quarantined");
        let reject = reject_row(meta, &reason, &batch.raw.raw_text(offset));
        fold_changes(p, Vec::new(), std::slice::from_ref(&reject), report).await?;
        report.counts(meta.source).rejected += 1;
        report.rejections.push(Rejection {
            index: offset,
            meta: meta.clone(),
            reason,
        });
        Ok(())
    })
}
