//! The CloudWatch dashboard in infra/template.yaml charts only metrics the
//! code emits: every `streamfold` metric it names (directly or in a
//! `SEARCH`) is one of `metrics::metric_names()`, and the body is valid
//! JSON once CloudFormation has substituted it.

use std::collections::BTreeSet;

/// The dashboard body, between its markers, with `${…}` substituted.
fn dashboard_body() -> serde_json::Value {
    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/infra/template.yaml"))
            .unwrap();
    let start = template
        .find("# dashboard-body-begin")
        .expect("begin marker");
    let end = template.find("# dashboard-body-end").expect("end marker");
    let block = &template[start..end];
    let json_start =
        block.find("DashboardBody: !Sub |").expect("body") + "DashboardBody: !Sub |".len();
    let mut text = String::new();
    let mut rest = &block[json_start..];
    // `${Name}` and `${Name.Attr}` become a placeholder, as CloudFormation
    // would put a value there.
    while let Some(i) = rest.find("${") {
        text.push_str(&rest[..i]);
        let close = rest[i..].find('}').expect("closing brace") + i;
        text.push_str("placeholder");
        rest = &rest[close + 1..];
    }
    text.push_str(rest);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("dashboard body is not JSON: {e}\n{text}"))
}

/// `streamfold` metric names the dashboard charts.
fn charted(body: &serde_json::Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for w in body["widgets"].as_array().unwrap() {
        for m in w["properties"]["metrics"].as_array().unwrap() {
            let m = m.as_array().unwrap();
            if m[0] == "streamfold" {
                names.insert(m[1].as_str().unwrap().to_string());
            }
            if let Some(expr) = m[0]["expression"].as_str() {
                assert!(expr.contains("{streamfold,"), "{expr}");
                let name = expr
                    .split("MetricName=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .expect("a MetricName in the SEARCH");
                names.insert(name.to_string());
            }
        }
    }
    names
}

#[test]
fn the_dashboard_charts_only_metrics_the_code_emits() {
    let body = dashboard_body();
    let charted = charted(&body);
    let emitted = streamfold::metrics::metric_names();
    let unknown: Vec<_> = charted.difference(&emitted).collect();
    assert!(unknown.is_empty(), "charted but never emitted: {unknown:?}");
    for needed in [
        "IteratorAge",
        "RecordsApplied",
        "RecordsUnchanged",
        "RecordsRejected",
        "RecordsUnattributed",
        "BatchLatency",
        "LlmReportsProjected",
        "BackfillItemsRead",
        "BackfillItemsApplied",
    ] {
        assert!(charted.contains(needed), "the dashboard lacks {needed}");
    }
}
