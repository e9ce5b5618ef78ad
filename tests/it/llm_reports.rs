//! Monthly LLM reports (DESIGN §6), per engine: the committed fixtures give
//! the hand-computed reports exactly (decimal equality), replaying them
//! changes nothing (not even a report's revision), and corrections,
//! removals and late links move the reports as the ledger says.

use crate::support::*;
use rust_decimal::Decimal;
use serde_json::Value;
use std::collections::BTreeMap;
use std::str::FromStr;
use streamfold::aggregate::llm_rollup::{ModelUsage, Report, ReportKey, ReportSums};
use streamfold::pipeline::reattribute;
use streamfold::store::reports::ReportFilter;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

const LLAMA: &str = "meta-llama/Llama-3.3-70B-Instruct-Turbo";
const MIXTRAL: &str = "mistralai/Mixtral-8x7B-Instruct-v0.1";
const GPT: &str = "gpt-4o-mini";

/// (requests, tokens, cost, response ms sum, quality sum, scored,
/// models, functions) of one report.
#[allow(clippy::too_many_arguments)]
fn sums(
    requests: i64,
    tokens: i64,
    cost: &str,
    response_ms: i64,
    quality: &str,
    scored: i64,
    models: &[(&str, i64, i64, &str)],
    functions: &[(&str, i64)],
) -> ReportSums {
    ReportSums {
        requests,
        tokens,
        cost_usd: d(cost),
        response_time_ms: response_ms,
        quality_sum: d(quality),
        quality_scored: scored,
        models: models
            .iter()
            .map(|(m, r, t, c)| {
                (
                    m.to_string(),
                    ModelUsage {
                        requests: *r,
                        tokens: *t,
                        cost_usd: d(c),
                    },
                )
            })
            .collect(),
        functions: functions.iter().map(|(f, n)| (f.to_string(), *n)).collect(),
    }
}

fn key(account: &str, period: &str) -> ReportKey {
    ReportKey {
        account_id: account.into(),
        period: period.into(),
    }
}

/// The reports of `fixtures/events`, computed by hand from the items in
/// `fixtures/make_fixtures.py` (see the comments there).
fn expected_fixture_reports() -> BTreeMap<ReportKey, ReportSums> {
    BTreeMap::from([
        // conv-a's first generation (corrected to quality 0.91) and conv-c's.
        (
            key("acct-1001", "2024-01"),
            sums(
                2,
                1350,
                "0.0175",
                3700,
                "1.86",
                2,
                &[(LLAMA, 1, 350, "0.0025"), (GPT, 1, 1000, "0.015")],
                &[("generate_email", 1), ("summarize", 1)],
            ),
        ),
        // conv-a regenerated on Feb 1st: a second request, no score.
        (
            key("acct-1001", "2024-02"),
            sums(
                1,
                300,
                "0.0021",
                2100,
                "0",
                0,
                &[(LLAMA, 1, 300, "0.0021")],
                &[("llm_response", 1)],
            ),
        ),
        // conv-c regenerated: 38-digit numbers that are exact.
        (
            key("acct-1001", "2024-03"),
            sums(
                1,
                600,
                "0.00125",
                800,
                "0.8",
                1,
                &[(LLAMA, 1, 600, "0.00125")],
                &[("summarize", 1)],
            ),
        ),
        // conv-b via the Conversations fallback; its TTL delete keeps it.
        (
            key("acct-1002", "2024-02"),
            sums(
                1,
                150,
                "0.000123456789012345",
                900,
                "0.7",
                1,
                &[(MIXTRAL, 1, 150, "0.000123456789012345")],
                &[("unspecified", 1)],
            ),
        ),
        // conv-d: the first request removed by the application, the
        // inexact one quarantined, the next generation counted.
        (
            key("acct-1003", "2024-02"),
            sums(
                1,
                100,
                "0.0001",
                500,
                "0.6",
                1,
                &[(LLAMA, 1, 100, "0.0001")],
                &[("generate_email", 1)],
            ),
        ),
    ])
}

fn fixture_batches() -> Vec<Vec<Value>> {
    fixture_event_texts()
        .iter()
        .map(|t| {
            let v: Value = serde_json::from_str(t).unwrap();
            v["Records"].as_array().unwrap().clone()
        })
        .collect()
}

async fn all_reports(h: &Harness) -> Vec<Report> {
    h.p.store
        .reports(&ReportFilter {
            limit: u32::MAX,
            ..ReportFilter::default()
        })
        .await
        .unwrap()
}

fn by_key(reports: &[Report]) -> BTreeMap<ReportKey, ReportSums> {
    reports
        .iter()
        .map(|r| (r.key.clone(), r.sums.clone()))
        .collect()
}

pub async fn fixture_reports_match_hand_computed(engine: &str) {
    let Some(h) = Harness::with_directory(engine, &fixture_directory()).await else {
        return;
    };
    for batch in fixture_batches() {
        h.apply(&batch).await;
    }
    let first = all_reports(&h).await;
    assert_eq!(by_key(&first), expected_fixture_reports());
    let jan = &first[0].sums;
    assert_eq!(jan.average_response_time_ms(), d("1850"));
    assert_eq!(jan.average_quality_score(), d("0.93"));
    assert!(first.iter().all(|r| r.revision >= 1));

    // Replaying everything changes nothing, not even a revision.
    let mut changed = 0;
    for batch in fixture_batches() {
        changed += h.apply(&batch).await.reports_changed;
    }
    assert_eq!(changed, 0);
    let second = all_reports(&h).await;
    assert_eq!(first, second);

    // Filters select by account and month.
    let only =
        h.p.store
            .reports(&ReportFilter {
                account_id: Some("acct-1001".into()),
                period: Some("2024-03".into()),
                limit: 10,
                ..ReportFilter::default()
            })
            .await
            .unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].key, key("acct-1001", "2024-03"));
}

pub async fn reports_follow_corrections_removals_and_late_links(engine: &str) {
    let Some(mut h) = Harness::new(engine).await else {
        return;
    };
    let t1 = "2024-01-31T23:59:59Z";
    let t2 = "2024-02-01T00:00:05Z";
    let jan = key("acct-1", "2024-01");
    let feb = key("acct-1", "2024-02");
    // Insert, correct (same generation), regenerate; one unlinked.
    h.apply(&[
        llm("INSERT", "10", "conv-1", t1, "0.5"),
        llm("MODIFY", "11", "conv-1", t1, "0.9"),
    ])
    .await;
    h.apply(&[
        llm("MODIFY", "12", "conv-1", t2, "0.7"),
        llm("INSERT", "13", "conv-2", t2, "0.25"),
    ])
    .await;
    let one = |q: &str| {
        sums(
            1,
            30,
            "0.001",
            100,
            q,
            1,
            &[("m1", 1, 30, "0.001")],
            &[("unspecified", 1)],
        )
    };
    assert_eq!(
        by_key(&all_reports(&h).await),
        BTreeMap::from([(jan.clone(), one("0.9")), (feb.clone(), one("0.7"))])
    );
    // TTL removal keeps the request; an application REMOVE retracts it.
    h.apply(&[ttl_remove(llm("REMOVE", "14", "conv-1", t2, "0.7"))])
        .await;
    assert_eq!(by_key(&all_reports(&h).await)[&feb], one("0.7"));
    let r = h.apply(&[llm("REMOVE", "15", "conv-1", t2, "0.7")]).await;
    assert_eq!(r.reports_changed, 1);
    let zero = sums(0, 0, "0", 0, "0", 0, &[], &[]);
    assert_eq!(by_key(&all_reports(&h).await)[&feb], zero);
    // A stale correction of the removed request changes nothing.
    let r = h.apply(&[llm("MODIFY", "12", "conv-1", t2, "0.1")]).await;
    assert_eq!(r.reports_changed, 0);
    // conv-2 gets linked: re-attribution counts it once.
    let mut items: Vec<(&str, &str)> = DIRECTORY.to_vec();
    items.push((
        "Threads",
        r#"{"conversation_id":{"S":"conv-2"},"associated_account":{"S":"acct-1"}}"#,
    ));
    h.relink(&items);
    reattribute(&h.p, 100).await.unwrap();
    reattribute(&h.p, 100).await.unwrap();
    assert_eq!(by_key(&all_reports(&h).await)[&feb], one("0.25"));
}

#[macro_export]
macro_rules! llm_report_tests {
    ($engine:literal $(, #[$attr:meta])*) => {
        use $crate::llm_reports as l;

        #[tokio::test]
        $(#[$attr])*
        async fn fixture_reports_match_hand_computed() {
            l::fixture_reports_match_hand_computed($engine).await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn reports_follow_corrections_removals_and_late_links() {
            l::reports_follow_corrections_removals_and_late_links($engine).await
        }
    };
}
