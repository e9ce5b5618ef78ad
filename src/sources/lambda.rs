//! The Lambda stream trigger's handler: a DynamoDB stream event (or a
//! Kinesis event of a table streamed to Kinesis Data Streams, see
//! `record::kinesis`) in, a `DynamoDbEventResponse` out (Kinesis takes the
//! same `batchItemFailures` shape, by Kinesis `sequenceNumber`), through `run_batch` like every other entry
//! point. The whole batch is one transaction, so on a transient failure
//! nothing was applied (or, when `run_batch` was isolating refused records,
//! only parts that re-apply as no-ops) and the first record is reported as
//! the first not applied (`batchItemFailures`); Lambda retries from there.
//! Bad records, and records the database refuses, are quarantined inside the
//! batch and never reported.
//!
//! After the commit, a batch that carried LLM records projects the reports
//! that are pending (its own changes and any an earlier projection left
//! behind) to `LLMReportData`: the projection belongs to the trigger, not
//! to the fold.

use crate::domain::SourceKind;
use crate::pipeline::{BatchReport, Pipeline, PipelineError, run_batch};
use crate::record::kinesis;
use crate::record::lambda_event::{OwnedRawEvent, read_meta};
use crate::report::publish::ReportPublisher;
use crate::store::reports::ReportFilter;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde_json::value::RawValue;

/// What the function is invoked with: a stream batch (`Records`), or a
/// scheduled task (`streamfold`, see `sources::scheduled`).
#[derive(serde::Deserialize)]
pub struct Invocation {
    #[serde(rename = "Records", default)]
    pub records: Option<Vec<Box<RawValue>>>,
    #[serde(default)]
    pub streamfold: Option<crate::sources::scheduled::ScheduledTask>,
}

/// A batch that could not even be named for a partial failure: Lambda
/// must retry it whole.
#[derive(Debug, thiserror::Error)]
#[error("batch failed and none of its records carries a SequenceNumber to report: {0}")]
pub struct UnreportableFailure(#[source] pub PipelineError);

/// Reports projected per batch at most; more wait for the next batch or
/// `streamfold llm-report --publish`.
const PUBLISH_PER_BATCH: u32 = 200;

/// Handle one invocation: the batch through `run_batch`, then, with a
/// `publisher`, the projection of pending LLM reports. Returns the
/// response and, when the batch was applied, its report.
pub async fn handle(
    p: &Pipeline,
    publisher: Option<&ReportPublisher>,
    event: &OwnedRawEvent,
) -> Result<(DynamoDbEventResponse, Option<BatchReport>), UnreportableFailure> {
    let records: Vec<&RawValue> = event.records.iter().map(|r| r.as_ref()).collect();
    match run_batch(p, &records).await {
        Ok(mut report) => {
            if let Some(publisher) = publisher {
                project(p, publisher, &mut report).await;
            }
            Ok((DynamoDbEventResponse::default(), Some(report)))
        }
        Err(e) => {
            // Nothing was committed: the first record with a sequence number
            // is the first not applied.
            // (A Kinesis record is reported by its Kinesis sequenceNumber.)
            let Some(seq) = records
                .iter()
                .find_map(|r| kinesis::sequence_number(r).or_else(|| read_meta(r).sequence_number))
            else {
                return Err(UnreportableFailure(e));
            };
            tracing::error!(error = %e, first_unapplied = %seq, records = records.len(), "batch not applied; reporting a partial batch failure");
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(seq);
            let mut response = DynamoDbEventResponse::default();
            response.batch_item_failures.push(failure);
            Ok((response, None))
        }
    }
}

/// After a committed batch with LLM records: project what is pending.
/// A failure leaves the reports pending (the next batch repairs them); it
/// never fails the batch, which is committed.
async fn project(p: &Pipeline, publisher: &ReportPublisher, report: &mut BatchReport) {
    let had_llm = SourceKind::all()
        .filter(|k| k.integration().is_none())
        .filter_map(|k| report.by_source.get(k.table_suffix()))
        .any(|c| c.read > 0);
    if !had_llm {
        return;
    }
    let filter = ReportFilter {
        pending_only: true,
        limit: PUBLISH_PER_BATCH,
        ..ReportFilter::default()
    };
    match publisher.publish(&p.store, &filter).await {
        Ok(s) => report.published.add(&s),
        Err(e) => {
            tracing::warn!(error = %e, "reading LLM reports to project failed; they stay pending");
            report
                .published
                .failed_with(format!("reading LLM reports to project failed: {e}"));
        }
    }
}
