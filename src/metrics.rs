//! Batch metrics in CloudWatch Embedded Metric Format (EMF): JSON lines the
//! Lambda prints to stdout, which CloudWatch Logs turns into metrics in
//! namespace `streamfold`. Dimensions are low-cardinality only: the source
//! table suffix (one per registered table, `normalize::TABLES`), or none
//! for batch-wide metrics.

use crate::pipeline::BatchReport;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::time::Duration;

pub const NAMESPACE: &str = "streamfold";

/// What the Lambda measured around one batch, beyond the report.
#[derive(Clone, Copy, Debug, Default)]
pub struct BatchTiming {
    /// Handler time for the batch, end to end.
    pub latency: Duration,
    /// Directory lookups answered from the cache / asked of DynamoDB.
    pub cache_hits: u64,
    pub cache_misses: u64,
}

fn document(now: DateTime<Utc>, dimensions: &[&str], metrics: &[(&str, &str, f64)]) -> Value {
    let mut doc = json!({
        "_aws": {
            "Timestamp": now.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions],
                "Metrics": metrics
                    .iter()
                    .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
                    .collect::<Vec<_>>(),
            }],
        },
    });
    for (name, _, value) in metrics {
        doc[*name] = json!(value);
    }
    doc
}

/// EMF documents for one batch: one per source (dimension `Source`) with
/// the outcome counts, and one batch-wide with latency, database time,
/// lookup cache hit rate, iterator lag and LLM report projections.
pub fn emf_documents(report: &BatchReport, timing: &BatchTiming, now: DateTime<Utc>) -> Vec<Value> {
    // The batch's lag: batch-wide, and per source too (a DynamoDB stream
    // mapping delivers one table's records, so its source's lag is the
    // mapping's: the dashboard's per-mapping age).
    let lag = report
        .oldest_record
        .map(|oldest| (now - oldest).num_milliseconds().max(0) as f64);
    let mut docs = Vec::new();
    for (source, c) in &report.by_source {
        let mut metrics = vec![
            ("RecordsRead", "Count", c.read as f64),
            ("RecordsApplied", "Count", c.applied as f64),
            ("RecordsUnchanged", "Count", c.unchanged as f64),
            ("RecordsSkipped", "Count", c.skipped as f64),
            ("RecordsRejected", "Count", c.rejected as f64),
            ("RecordsUnattributed", "Count", c.unattributed as f64),
            ("EventTimeFallbacks", "Count", c.time_fallback as f64),
        ];
        if let Some(lag) = lag {
            metrics.push(("IteratorAge", "Milliseconds", lag));
        }
        let mut d = document(now, &["Source"], &metrics);
        d["Source"] = json!(source);
        docs.push(d);
    }
    let lookups = timing.cache_hits + timing.cache_misses;
    let mut batch = vec![
        (
            "BatchLatency",
            "Milliseconds",
            timing.latency.as_secs_f64() * 1e3,
        ),
        (
            "DatabaseTime",
            "Milliseconds",
            report.db_time.as_secs_f64() * 1e3,
        ),
        ("SqlStatements", "Count", report.statements as f64),
        ("TransactionRetries", "Count", report.retries as f64),
        ("BatchSplits", "Count", report.splits as f64),
        (
            "KinesisMillisecondRecords",
            "Count",
            report.kinesis_millisecond as f64,
        ),
        ("LlmReportsChanged", "Count", report.reports_changed as f64),
        (
            "LlmReportsProjected",
            "Count",
            report.published.written as f64,
        ),
        (
            "LlmReportProjectionFailures",
            "Count",
            report.published.failed as f64,
        ),
    ];
    if lookups > 0 {
        batch.push((
            "LookupCacheHitRate",
            "Percent",
            100.0 * timing.cache_hits as f64 / lookups as f64,
        ));
    }
    if let Some(lag) = lag {
        batch.push(("IteratorAge", "Milliseconds", lag));
    }
    docs.push(document(now, &[], &batch));
    docs
}

/// The EMF document of one backfill work item (a Distributed Map child's
/// invocation), from the task's answer: `items` read and `applied`, with
/// dimension `Task` (`export_file` or `scan_segment`).
pub fn backfill_document(task: &str, answer: &Value, now: DateTime<Utc>) -> Value {
    let number = |k: &str| answer.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let mut d = document(
        now,
        &["Task"],
        &[
            ("BackfillItemsRead", "Count", number("items")),
            ("BackfillItemsApplied", "Count", number("applied")),
        ],
    );
    d["Task"] = json!(task);
    d
}

/// Every metric name the code emits in namespace `streamfold` (the
/// dashboard may chart these and no others: a test holds it to them).
pub fn metric_names() -> std::collections::BTreeSet<String> {
    let mut report = BatchReport::default();
    for source in crate::domain::SourceKind::all() {
        report
            .by_source
            .insert(source.table_suffix().into(), Default::default());
    }
    let now = Utc::now();
    report.oldest_record = Some(now);
    let timing = BatchTiming {
        cache_hits: 1,
        ..BatchTiming::default()
    };
    let mut docs = emf_documents(&report, &timing, now);
    docs.push(backfill_document("export_file", &json!({}), now));
    docs.iter()
        .flat_map(|d| {
            d["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|m| m["Name"].as_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Counts;

    #[test]
    fn documents_follow_the_emf_shape() {
        let mut report = BatchReport::default();
        report.by_source.insert(
            "github_events".into(),
            Counts {
                read: 5,
                applied: 3,
                unchanged: 1,
                rejected: 1,
                ..Counts::default()
            },
        );
        let now = DateTime::parse_from_rfc3339("2024-03-12T14:00:10Z")
            .unwrap()
            .to_utc();
        report.oldest_record = Some(now - chrono::Duration::seconds(10));
        report.db_time = Duration::from_millis(4);
        let timing = BatchTiming {
            latency: Duration::from_millis(9),
            cache_hits: 3,
            cache_misses: 1,
        };
        let docs = emf_documents(&report, &timing, now);
        assert_eq!(docs.len(), 2);
        let per_source = &docs[0];
        assert_eq!(per_source["Source"], "github_events");
        assert_eq!(per_source["RecordsApplied"], 3.0);
        let cw = &per_source["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "streamfold");
        assert_eq!(cw["Dimensions"], json!([["Source"]]));
        // Every declared metric has a value at the top level.
        for m in cw["Metrics"].as_array().unwrap() {
            assert!(per_source[m["Name"].as_str().unwrap()].is_number(), "{m}");
        }
        let batch = &docs[1];
        assert_eq!(
            batch["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );
        assert_eq!(batch["IteratorAge"], 10_000.0);
        assert_eq!(batch["LookupCacheHitRate"], 75.0);
        assert_eq!(batch["BatchLatency"], 9.0);
        assert_eq!(batch["_aws"]["Timestamp"], now.timestamp_millis());
    }
}
