//! The Lambda stream trigger's handler: a DynamoDB stream event in, a
//! `DynamoDbEventResponse` out, through `run_batch` like every other entry
//! point. The whole batch is one transaction, so on a transient failure
//! nothing was applied (or, when `run_batch` was isolating refused records,
//! only parts that re-apply as no-ops) and the first record is reported as
//! the first not applied (`batchItemFailures`); Lambda retries from there.
//! Bad records, and records the database refuses, are quarantined inside the
//! batch and never reported.

use crate::pipeline::{BatchReport, Pipeline, PipelineError, run_batch};
use crate::record::lambda_event::{OwnedRawEvent, read_meta};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde_json::value::RawValue;

/// A batch that could not even be named for a partial failure: Lambda
/// must retry it whole.
#[derive(Debug, thiserror::Error)]
#[error("batch failed and none of its records carries a SequenceNumber to report: {0}")]
pub struct UnreportableFailure(#[source] pub PipelineError);

/// Handle one invocation. Returns the response and, when the batch was
/// applied, its report.
pub async fn handle(
    p: &Pipeline,
    event: &OwnedRawEvent,
) -> Result<(DynamoDbEventResponse, Option<BatchReport>), UnreportableFailure> {
    let records: Vec<&RawValue> = event.records.iter().map(|r| r.as_ref()).collect();
    match run_batch(p, &records).await {
        Ok(report) => Ok((DynamoDbEventResponse::default(), Some(report))),
        Err(e) => {
            // Nothing was committed: the first record with a sequence number
            // is the first not applied.
            let Some(seq) = records.iter().find_map(|r| read_meta(r).sequence_number) else {
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
