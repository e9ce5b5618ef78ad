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
use crate::record::kinesis;
use crate::record::lambda_event::{RecordMeta, parse_record, read_meta};
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

/// Apply one batch of Lambda DynamoDB stream records, in one span that
/// names the batch (source, sequence range) and carries its outcome counts
/// (never item contents).
///
/// Kinesis records of DynamoDB changes (Kinesis Data Streams for DynamoDB)
/// are turned into stream records first (`record::kinesis`), so every
/// entry point takes either shape, record by record.
pub async fn run_batch(p: &Pipeline, records: &[&RawValue]) -> Result<BatchReport, PipelineError> {
    run_batch_quarantining(p, records, &[]).await
}

/// `run_batch`, quarantining `unreadable` in the same transaction: what a
/// source could not even make into a record (a backfill's bad export line
/// or Scan item, with its reason). Each counts as read and rejected, and
/// is reported after the batch's records (`Rejection::index` from
/// `records.len()` on).
pub async fn run_batch_quarantining(
    p: &Pipeline,
    records: &[&RawValue],
    unreadable: &[RejectedRecord],
) -> Result<BatchReport, PipelineError> {
    let converted: Vec<Option<Box<RawValue>>> =
        records.iter().map(|r| kinesis::stream_record(r)).collect();
    if converted.iter().any(Option::is_some) {
        let mut millisecond = 0u64;
        for (raw, c) in records.iter().zip(&converted) {
            if c.as_deref().is_some_and(kinesis::is_millisecond) {
                millisecond += 1;
                if millisecond == 1 {
                    say_millisecond_once(kinesis::stream_arn(raw).as_deref());
                }
            }
        }
        let records: Vec<&RawValue> = records
            .iter()
            .zip(&converted)
            .map(|(raw, c)| c.as_deref().unwrap_or(raw))
            .collect();
        let mut report = run_stream_batch(p, &records, unreadable).await?;
        report.kinesis_millisecond = millisecond;
        return Ok(report);
    }
    run_stream_batch(p, records, unreadable).await
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

/// `run_batch` over DynamoDB stream records.
async fn run_stream_batch(
    p: &Pipeline,
    records: &[&RawValue],
    unreadable: &[RejectedRecord],
) -> Result<BatchReport, PipelineError> {
    let first = records.first().map(|r| read_meta(r)).unwrap_or_default();
    let last = records.last().map(|r| read_meta(r)).unwrap_or_default();
    let span = tracing::info_span!(
        "batch",
        source = first.source.map_or("unknown", SourceKind::table_suffix),
        first_sequence = first.sequence_number.as_deref().unwrap_or("-"),
        last_sequence = last.sequence_number.as_deref().unwrap_or("-"),
        records = records.len(),
        applied = tracing::field::Empty,
        unchanged = tracing::field::Empty,
        skipped = tracing::field::Empty,
        rejected = tracing::field::Empty,
        unattributed = tracing::field::Empty,
    );
    let report = run_batch_inner(p, records, unreadable)
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
    /// A change to fold (with the record's naming metadata, should the
    /// store refuse it).
    Change(Box<Change>, RecordMeta),
    /// A record to quarantine.
    Reject(RejectedRecord),
    /// Nothing to write (a skip).
    Nothing,
}

async fn run_batch_inner(
    p: &Pipeline,
    records: &[&RawValue],
    unreadable: &[RejectedRecord],
) -> Result<BatchReport, PipelineError> {
    let mut report = BatchReport::default();
    let mut pending = Vec::with_capacity(records.len());
    for (index, raw) in records.iter().enumerate() {
        let parsed = parse_record(raw);
        report.counts(parsed.meta.source).read += 1;
        if let Some(at) = parsed.meta.approx_created {
            report.oldest_record = Some(report.oldest_record.map_or(at, |o| o.min(at)));
        }
        match normalize::normalize(&parsed) {
            Normalized::Change(c) => pending.push(Pending::Change(Box::new(c), parsed.meta)),
            Normalized::Skip(_) => {
                report.counts(parsed.meta.source).skipped += 1;
                pending.push(Pending::Nothing);
            }
            Normalized::Reject(reason) => {
                report.counts(parsed.meta.source).rejected += 1;
                tracing::warn!(record = %parsed.meta, %reason, "record quarantined");
                pending.push(Pending::Reject(RejectedRecord::new(
                    &parsed.meta,
                    &reason,
                    raw,
                )));
                report.rejections.push(Rejection {
                    index,
                    meta: parsed.meta,
                    reason,
                });
            }
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
            index: records.len() + i,
            meta: RecordMeta {
                table: r.table.clone(),
                source: r.source,
                event_id: r.event_id.clone(),
                ..RecordMeta::default()
            },
            reason: r.reason.clone(),
        });
    }
    apply_isolating(p, records, &pending, 0, &mut report).await?;
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
    records: &'a [&'a RawValue],
    pending: &'a [Pending],
    offset: usize,
    report: &'a mut BatchReport,
) -> futures::future::BoxFuture<'a, Result<(), PipelineError>> {
    Box::pin(async move {
        let mut changes = Vec::new();
        let mut rejects = Vec::new();
        for item in pending {
            match item {
                Pending::Change(c, _) => changes.push((**c).clone()),
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
            apply_isolating(p, records, &pending[..mid], offset, report).await?;
            return apply_isolating(p, records, &pending[mid..], offset + mid, report).await;
        }
        // One record the store refuses on its own: quarantine it.
        let Pending::Change(_, meta) = &pending[0] else {
            // A quarantine row itself was refused: nothing left to isolate.
            return Err(PipelineError::Store(err));
        };
        let reason = format!("the database refused this record: {}", err.record_reason());
        tracing::warn!(record = %meta, %reason, "record quarantined");
        let reject = RejectedRecord::new(meta, &reason, records[offset]);
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
