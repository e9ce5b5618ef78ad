//! Projection of LLM reports to the DynamoDB table `LLMReportData`.
//!
//! Each report is written whole with `PutItem`, conditioned on its `version`
//! (the report's SQL revision) being newer than the stored item's, so an
//! older projection never replaces a newer one; losing that condition is
//! expected under concurrency and is not an error. Projection happens after
//! the SQL transaction commits: a report whose projection failed stays
//! pending in SQL and is written by the next batch that touches LLM data,
//! or by `streamfold llm-report --publish`.

use crate::aggregate::llm_rollup::Report;
use crate::store::reports::ReportFilter;
use crate::store::{Store, StoreError};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use rust_decimal::Decimal;
use std::collections::HashMap;

/// Projection failed (the report stays pending).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("writing LLM report {report_id} to {table} failed: {reason}")]
    Put {
        report_id: String,
        table: String,
        reason: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What happened to one report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Written,
    /// The table already holds this or a newer version.
    Superseded,
}

/// Counts of one projection pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishSummary {
    pub written: u64,
    pub superseded: u64,
    pub failed: u64,
    /// Why the first failed puts failed (at most `MAX_FAILURES_KEPT`),
    /// each naming its report and table.
    pub failures: Vec<String>,
}

/// Failure messages a summary keeps: enough to see the cause, bounded
/// however many reports fail the same way.
pub const MAX_FAILURES_KEPT: usize = 3;

impl PublishSummary {
    /// Count a failed put and keep its message if there is room.
    pub fn failed_with(&mut self, message: String) {
        self.failed += 1;
        if self.failures.len() < MAX_FAILURES_KEPT {
            self.failures.push(message);
        }
    }

    pub fn add(&mut self, o: &PublishSummary) {
        self.written += o.written;
        self.superseded += o.superseded;
        self.failed += o.failed;
        for f in &o.failures {
            if self.failures.len() < MAX_FAILURES_KEPT {
                self.failures.push(f.clone());
            }
        }
    }
}

fn n(d: Decimal) -> AttributeValue {
    AttributeValue::N(d.normalize().to_string())
}

fn int(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The `LLMReportData` item of a report: seed fields, numbers as `N`,
/// breakdowns as `M`, plus `version`.
pub fn item(report: &Report) -> HashMap<String, AttributeValue> {
    let s = &report.sums;
    let models = s
        .models
        .iter()
        .map(|(m, u)| {
            (
                m.clone(),
                AttributeValue::M(HashMap::from([
                    ("requests".to_string(), int(u.requests)),
                    ("tokens".to_string(), int(u.tokens)),
                    ("cost".to_string(), n(u.cost_usd)),
                ])),
            )
        })
        .collect();
    let functions = s
        .functions
        .iter()
        .map(|(f, c)| (f.clone(), int(*c)))
        .collect();
    HashMap::from([
        (
            "report_id".into(),
            AttributeValue::S(report.key.report_id()),
        ),
        (
            "account_id".into(),
            AttributeValue::S(report.key.account_id.clone()),
        ),
        (
            "report_period".into(),
            AttributeValue::S(report.key.period.clone()),
        ),
        (
            "generated_at".into(),
            AttributeValue::S(report.updated_at.clone()),
        ),
        ("total_requests".into(), int(s.requests)),
        ("total_tokens".into(), int(s.tokens)),
        ("total_cost_usd".into(), n(s.cost_usd)),
        (
            "average_response_time_ms".into(),
            n(s.average_response_time_ms()),
        ),
        ("average_quality_score".into(), n(s.average_quality_score())),
        ("model_usage".into(), AttributeValue::M(models)),
        ("function_breakdown".into(), AttributeValue::M(functions)),
        ("version".into(), int(report.revision)),
    ])
}

/// Writes reports to one `LLMReportData` table.
#[derive(Clone, Debug)]
pub struct ReportPublisher {
    client: Client,
    table: String,
}

impl ReportPublisher {
    pub fn new(client: Client, table: impl Into<String>) -> ReportPublisher {
        ReportPublisher {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Put one report unless the table holds this or a newer version. The
    /// SDK retries throttling and transient errors itself.
    pub async fn put(&self, report: &Report) -> Result<Outcome, PublishError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(report)))
            .condition_expression("attribute_not_exists(report_id) OR #v < :v")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":v", int(report.revision))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Outcome::Written),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(Outcome::Superseded)
            }
            Err(e) => Err(PublishError::Put {
                report_id: report.key.report_id(),
                table: self.table.clone(),
                reason: crate::aws_error::describe(&e),
            }),
        }
    }

    /// Project reports selected by `filter` and record each success in SQL.
    /// A failed put is counted and logged, and the report stays pending.
    pub async fn publish(
        &self,
        store: &Store,
        filter: &ReportFilter,
    ) -> Result<PublishSummary, StoreError> {
        let mut summary = PublishSummary::default();
        for report in store.reports(filter).await? {
            match self.put(&report).await {
                Ok(outcome) => {
                    match outcome {
                        Outcome::Written => summary.written += 1,
                        Outcome::Superseded => summary.superseded += 1,
                    }
                    store.mark_published(&report.key, report.revision).await?;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "LLM report projection failed; it stays pending");
                    summary.failed_with(e.to_string());
                }
            }
        }
        Ok(summary)
    }
}
