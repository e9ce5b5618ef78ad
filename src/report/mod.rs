//! LLM reports as the outside world sees them: the `LLMReportData` item
//! (the `LLMReportData` field names of docs/DESIGN.md, plus `version`) as plain JSON with exact
//! decimal numbers (`streamfold llm-report`), and as a DynamoDB item
//! (`publish`).

pub mod publish;

use crate::aggregate::llm_rollup::Report;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// A decimal as a JSON number token, digit for digit (never through `f64`).
fn number(d: Decimal) -> Box<RawValue> {
    RawValue::from_string(d.normalize().to_string()).expect("a decimal's text is a JSON number")
}

#[derive(Serialize)]
struct ModelJson {
    requests: i64,
    tokens: i64,
    cost: Box<RawValue>,
}

#[derive(Serialize)]
struct ReportJson<'a> {
    report_id: String,
    account_id: &'a str,
    report_period: &'a str,
    generated_at: &'a str,
    total_requests: i64,
    total_tokens: i64,
    total_cost_usd: Box<RawValue>,
    average_response_time_ms: Box<RawValue>,
    average_quality_score: Box<RawValue>,
    model_usage: BTreeMap<&'a str, ModelJson>,
    function_breakdown: &'a BTreeMap<String, i64>,
    version: i64,
}

/// One report as a JSON object on one line. `generated_at` is when the
/// report last changed. Money and averages are exact decimal numbers;
/// averages are 0 when there is nothing to average (see `ReportSums`).
pub fn json_line(report: &Report) -> String {
    let s = &report.sums;
    let doc = ReportJson {
        report_id: report.key.report_id(),
        account_id: &report.key.account_id,
        report_period: &report.key.period,
        generated_at: &report.updated_at,
        total_requests: s.requests,
        total_tokens: s.tokens,
        total_cost_usd: number(s.cost_usd),
        average_response_time_ms: number(s.average_response_time_ms()),
        average_quality_score: number(s.average_quality_score()),
        model_usage: s
            .models
            .iter()
            .map(|(m, u)| {
                (
                    m.as_str(),
                    ModelJson {
                        requests: u.requests,
                        tokens: u.tokens,
                        cost: number(u.cost_usd),
                    },
                )
            })
            .collect(),
        function_breakdown: &s.functions,
        version: report.revision,
    };
    serde_json::to_string(&doc).expect("report JSON serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::llm_rollup::{ModelUsage, ReportKey, ReportSums};
    use std::str::FromStr;

    #[test]
    fn exact_numbers_and_seed_names() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        let report = Report {
            key: ReportKey {
                account_id: "acct-1".into(),
                period: "2024-01".into(),
            },
            sums: ReportSums {
                requests: 3,
                tokens: 900,
                cost_usd: d("0.100000000000000001"),
                response_time_ms: 7000,
                quality_sum: d("1.7"),
                quality_scored: 2,
                models: [(
                    "m".to_string(),
                    ModelUsage {
                        requests: 3,
                        tokens: 900,
                        cost_usd: d("0.100000000000000001"),
                    },
                )]
                .into(),
                functions: [("generate_email".to_string(), 3)].into(),
            },
            revision: 4,
            updated_at: "2024-02-01T00:00:00.000Z".into(),
        };
        let line = json_line(&report);
        assert!(
            line.contains(r#""total_cost_usd":0.100000000000000001"#),
            "{line}"
        );
        assert!(
            line.contains(r#""average_response_time_ms":2333.333"#),
            "{line}"
        );
        assert!(line.contains(r#""average_quality_score":0.85"#), "{line}");
        assert!(line.contains(r#""report_id":"acct-1#2024-01""#), "{line}");
        assert!(
            line.contains(r#""function_breakdown":{"generate_email":3}"#),
            "{line}"
        );
        assert!(line.contains(r#""version":4"#), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["model_usage"]["m"]["requests"], 3);
    }
}
