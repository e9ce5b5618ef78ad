//! `streamfold audit`, per engine: the fixtures' aggregates recompute from
//! the ledger exactly; one tampered count cell and one tampered report
//! total are named (stored vs recomputed) and nothing else; the audit stays
//! clean after a compaction (what it drops is kept in the bases) and after
//! what follows it (redeliveries, new events, a change to a compacted
//! item); `fix` repairs both in one transaction. Through the binary: exit
//! codes and `--json`.

use crate::bin::{stderr, stdout, streamfold};
use crate::support::*;
use serde_json::{Value, json};
use std::time::Duration;
use streamfold::audit::{AuditReport, Difference, NoProgress};
use streamfold::pipeline::run_batch;
use streamfold::store::compaction::CompactOptions;
use streamfold::store::dialect::Flavor;
use streamfold::store::reports::ReportFilter;
use streamfold::store::{Backend, Store};

fn flavor(store: &Store) -> Flavor {
    match store.backend() {
        Backend::Sqlite(_) => Flavor::Sqlite,
        Backend::MySql(_) => Flavor::MySql,
        Backend::Postgres(_) => Flavor::Postgres,
    }
}

/// Run one statement with text and integer parameters on the store's pool.
async fn exec(store: &Store, sql: &str, texts: &[&str], ints: &[i64]) -> u64 {
    macro_rules! run {
        ($pool:expr) => {{
            let mut q = sqlx::query(sql);
            for t in texts {
                q = q.bind(t.to_string());
            }
            for i in ints {
                q = q.bind(*i);
            }
            q.execute($pool).await.unwrap().rows_affected()
        }};
    }
    match store.backend() {
        Backend::Sqlite(s) => run!(s.pool()),
        Backend::MySql(s) => run!(s.pool()),
        Backend::Postgres(s) => run!(s.pool()),
    }
}

/// One stored cell: (slack_id, integration, dow, hours, count).
async fn a_cell(store: &Store) -> (String, String, i64, i64, i64) {
    let f = flavor(store);
    let sql = format!(
        "SELECT {}, {}, {}, {}, {} FROM user_event_counts WHERE event_count > 0
          ORDER BY slack_id, integration, dow, hours LIMIT 1",
        f.as_text("slack_id"),
        f.as_text("integration"),
        f.as_int("dow"),
        f.as_int("hours"),
        f.as_int("event_count")
    );
    macro_rules! get {
        ($pool:expr) => {
            sqlx::query_as::<_, (String, String, i64, i64, i64)>(&sql)
                .fetch_one($pool)
                .await
                .unwrap()
        };
    }
    let (s, i, d, h, n) = match store.backend() {
        Backend::Sqlite(s) => get!(s.pool()),
        Backend::MySql(s) => get!(s.pool()),
        Backend::Postgres(s) => get!(s.pool()),
    };
    (s, i.trim().to_string(), d, h, n)
}

async fn apply(h: &Harness, records: &[Value]) {
    let text = json!({ "Records": records }).to_string();
    let event = streamfold::record::lambda_event::parse_event(&text).unwrap();
    run_batch(&h.p, &event.records).await.unwrap();
}

async fn replay_fixtures(h: &Harness) {
    for text in fixture_event_texts() {
        let event = streamfold::record::lambda_event::parse_event(&text).unwrap();
        run_batch(&h.p, &event.records).await.unwrap();
    }
}

async fn audit(store: &Store) -> AuditReport {
    streamfold::audit::audit(store, &NoProgress).await.unwrap()
}

fn assert_clean(r: &AuditReport, when: &str) {
    assert!(r.is_clean(), "{when}: {:#?}", r.differences);
    assert!(
        r.cells_checked > 0 && r.reports_checked > 0,
        "{when}: {r:?}"
    );
}

pub async fn audit_names_tampered_values_and_survives_compaction(engine: &str) {
    let Some(h) = Harness::with_directory(engine, &fixture_directory()).await else {
        return;
    };
    replay_fixtures(&h).await;
    // An old item of carol's (linked in the fixtures' directory), changed
    // after the compaction below.
    apply(
        &h,
        &[gh(
            "INSERT",
            "800001",
            "audit-old-1",
            "carol",
            "2024-03-05T09:30:00Z",
        )],
    )
    .await;
    let store = &h.p.store;
    assert_clean(&audit(store).await, "after the fixtures");
    let reports_before = store
        .reports(&ReportFilter {
            limit: 100,
            ..ReportFilter::default()
        })
        .await
        .unwrap();
    let totals_before = store.totals().await.unwrap();

    // Compaction drops every fixture row (their events are from 2024); the
    // bases keep what they counted.
    let report = store
        .compact(&CompactOptions {
            horizon: chrono::Utc::now().timestamp() - 7 * 86_400,
            include_unattributed: false,
            chunk: 3,
            announce: Duration::ZERO,
            deadline: None,
            on_wait: None,
        })
        .await
        .unwrap();
    assert!(
        report.finished && report.activity_dropped > 0 && report.llm_dropped > 0,
        "{report:?}"
    );
    assert_clean(&audit(store).await, "after compaction");

    // After it: the fixtures again (skipped), new events, and a compacted
    // item changed past the horizon (counted as new; its old count stays).
    replay_fixtures(&h).await;
    let now = chrono::Utc::now();
    let at = |hours: i64| {
        (now - chrono::Duration::hours(hours)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    apply(
        &h,
        &[
            gh("INSERT", "900001", "audit-new-1", "carol", &at(3)),
            gh("INSERT", "900002", "audit-new-2", "carol", &at(5)),
            gh("MODIFY", "900003", "audit-new-2", "carol", &at(2)),
            gh("MODIFY", "900005", "audit-old-1", "carol", &at(1)),
            llm("INSERT", "900004", "conv-a", &at(4), "0.75"),
        ],
    )
    .await;
    assert_clean(&audit(store).await, "after compaction and new events");

    // Tamper with one count cell and one report total.
    let (slack, integration, dow, hours, count) = a_cell(store).await;
    let f = flavor(store);
    let n = exec(
        store,
        &format!(
            "UPDATE user_event_counts SET event_count = event_count + 5
              WHERE slack_id = {} AND integration = {} AND dow = {} AND hours = {}",
            f.p(1),
            f.p(2),
            f.p(3),
            f.p(4)
        ),
        &[&slack, &integration],
        &[dow, hours],
    )
    .await;
    assert_eq!(n, 1);
    let tampered = &reports_before[0];
    let n = exec(
        store,
        &format!(
            "UPDATE llm_reports SET total_tokens = total_tokens + 7
              WHERE account_id = {} AND report_period = {}",
            f.p(1),
            f.p(2)
        ),
        &[&tampered.key.account_id, &tampered.key.period],
        &[],
    )
    .await;
    assert_eq!(n, 1);

    let found = audit(store).await;
    assert_eq!(
        found.differences,
        vec![
            Difference::Cell {
                slack_id: slack.clone(),
                integration: integration.clone(),
                dow,
                hour: hours,
                stored: count + 5,
                recomputed: count,
            },
            Difference::Report {
                account_id: tampered.key.account_id.clone(),
                report_period: tampered.key.period.clone(),
                model: None,
                function: None,
                field: "total_tokens".into(),
                stored: (tampered.sums.tokens + 7).to_string(),
                recomputed: tampered.sums.tokens.to_string(),
            },
        ],
        "{found:#?}"
    );
    assert!(!found.fixed);

    // The repair: the same two, then clean; the report has a new revision.
    let revision = store
        .reports(&ReportFilter {
            account_id: Some(tampered.key.account_id.clone()),
            period: Some(tampered.key.period.clone()),
            limit: 1,
            ..ReportFilter::default()
        })
        .await
        .unwrap()[0]
        .revision;
    let fixed = streamfold::audit::fix(store, &NoProgress).await.unwrap();
    assert_eq!(fixed.differences, found.differences);
    assert!(fixed.fixed);
    assert_clean(&audit(store).await, "after the repair");
    let after = store
        .reports(&ReportFilter {
            account_id: Some(tampered.key.account_id.clone()),
            period: Some(tampered.key.period.clone()),
            limit: 1,
            ..ReportFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(after[0].revision, revision + 1);
    assert_eq!(after[0].sums.tokens, tampered.sums.tokens);
    assert!(store.totals().await.unwrap().events_counted > totals_before.events_counted);

    // A repair with nothing to repair changes nothing.
    let again = streamfold::audit::fix(store, &NoProgress).await.unwrap();
    assert!(again.is_clean() && !again.fixed, "{again:?}");
    assert_eq!(audit(store).await.runs_before_bases, 0);

    // As if that compaction had run before the bases existed: said, and a
    // repair (which would remove true counts) refused.
    exec(
        store,
        "UPDATE compacted_base_origin SET before_run = 1000000",
        &[],
        &[],
    )
    .await;
    assert_eq!(audit(store).await.runs_before_bases, 1);
    let refused = streamfold::audit::fix(store, &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, streamfold::audit::AuditError::BasesIncomplete(1)),
        "{refused}"
    );
}

/// Every report field and breakdown row tampered with in turn is named by
/// its field; decimals are compared by value.
pub async fn audit_names_report_breakdowns(engine: &str) {
    let Some(h) = Harness::with_directory(engine, &fixture_directory()).await else {
        return;
    };
    replay_fixtures(&h).await;
    let store = &h.p.store;
    let f = flavor(store);
    let r = &store
        .reports(&ReportFilter {
            limit: 100,
            ..ReportFilter::default()
        })
        .await
        .unwrap()[0];
    let (model, function) = (
        r.sums.models.keys().next().unwrap().clone(),
        r.sums.functions.keys().next().unwrap().clone(),
    );
    let cost = match f {
        Flavor::Sqlite => "'0.5'".to_string(),
        _ => "total_cost_usd + 0.5".to_string(),
    };
    for sql in [
        format!(
            "UPDATE llm_reports SET total_cost_usd = {cost} WHERE account_id = {}",
            f.p(1)
        ),
        format!(
            "UPDATE llm_report_models SET tokens = tokens + 1 WHERE account_id = {} AND model = {}",
            f.p(1),
            f.p(2)
        ),
        format!(
            "UPDATE llm_report_functions SET requests = requests + 2 WHERE account_id = {} AND function_name = {}",
            f.p(1),
            f.p(2)
        ),
    ] {
        let texts: Vec<&str> = if sql.contains("llm_report_models") {
            vec![&r.key.account_id, &model]
        } else if sql.contains("llm_report_functions") {
            vec![&r.key.account_id, &function]
        } else {
            vec![&r.key.account_id]
        };
        assert!(exec(store, &sql, &texts, &[]).await > 0);
    }
    let found = audit(store).await;
    let fields: Vec<(Option<String>, Option<String>, String)> = found
        .differences
        .iter()
        .filter_map(|d| match d {
            Difference::Report {
                account_id,
                model,
                function,
                field,
                ..
            } if *account_id == r.key.account_id => {
                Some((model.clone(), function.clone(), field.clone()))
            }
            _ => None,
        })
        .collect();
    assert!(
        fields.contains(&(None, None, "total_cost_usd".into())),
        "{found:#?}"
    );
    assert!(
        fields.contains(&(Some(model), None, "tokens".into())),
        "{found:#?}"
    );
    assert!(
        fields.contains(&(None, Some(function), "requests".into())),
        "{found:#?}"
    );
    assert!(
        found
            .differences
            .iter()
            .all(|d| matches!(d, Difference::Report { .. })),
        "{found:#?}"
    );
    streamfold::audit::fix(store, &NoProgress).await.unwrap();
    assert_clean(&audit(store).await, "after repairing breakdowns");
}

#[macro_export]
macro_rules! audit_tests {
    ($engine:literal $(, #[$attr:meta])*) => {
        #[tokio::test]
        $(#[$attr])*
        async fn audit_names_tampered_values_and_survives_compaction() {
            $crate::audit::audit_names_tampered_values_and_survives_compaction($engine).await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn audit_names_report_breakdowns() {
            $crate::audit::audit_names_report_breakdowns($engine).await
        }
    };
}

/// Through the binary on SQLite: 0 when clean, 3 and both values named
/// when tampered (`--json` parses), 0 after `--fix`, clean afterwards.
#[tokio::test]
async fn audit_command_exit_codes_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    let out = streamfold(&["replay", "--database-url", &url, "fixtures/events"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let clean = streamfold(&["audit", "--database-url", &url]);
    assert_eq!(clean.status.code(), Some(0), "{}", stderr(&clean));
    assert!(
        stdout(&clean).contains(": 0 difference(s)"),
        "{}",
        stdout(&clean)
    );

    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let n = sqlx::query(
        "UPDATE user_event_counts SET event_count = event_count + 1
          WHERE (slack_id, integration, dow, hours) IN
                (SELECT slack_id, integration, dow, hours FROM user_event_counts
                  ORDER BY slack_id, integration, dow, hours LIMIT 1)",
    )
    .execute(&pool)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(n, 1);
    sqlx::query(
        "UPDATE llm_reports SET total_requests = total_requests + 1
          WHERE (account_id, report_period) IN
                (SELECT account_id, report_period FROM llm_reports
                  ORDER BY account_id, report_period LIMIT 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let json_out = streamfold(&["audit", "--database-url", &url, "--json"]);
    assert_eq!(json_out.status.code(), Some(3), "{}", stderr(&json_out));
    let report: Value = serde_json::from_str(stdout(&json_out).trim()).unwrap();
    let diffs = report["differences"].as_array().unwrap();
    assert_eq!(diffs.len(), 2, "{report}");
    assert_eq!(diffs[0]["kind"], "cell");
    assert_eq!(
        diffs[0]["stored"].as_i64().unwrap(),
        diffs[0]["recomputed"].as_i64().unwrap() + 1
    );
    assert_eq!(diffs[1]["kind"], "report");
    assert_eq!(diffs[1]["field"], "total_requests");
    assert_eq!(report["fixed"], false);
    assert_eq!(report["runs_before_bases"], 0);
    assert!(stderr(&json_out).contains("2 stored value(s) differ"));

    let text = streamfold(&["audit", "--database-url", &url]);
    assert_eq!(text.status.code(), Some(3));
    let listing = stdout(&text);
    assert!(
        listing.contains("user_event_counts slack_id=")
            && listing.contains("total_requests: stored"),
        "{listing}"
    );

    let fix = streamfold(&["audit", "--database-url", &url, "--fix"]);
    assert_eq!(fix.status.code(), Some(0), "{}", stderr(&fix));
    assert!(
        stdout(&fix).contains("repaired 2 difference(s)"),
        "{}",
        stdout(&fix)
    );

    let after = streamfold(&["audit", "--database-url", &url, "--json"]);
    assert_eq!(after.status.code(), Some(0), "{}", stderr(&after));
    let report: Value = serde_json::from_str(stdout(&after).trim()).unwrap();
    assert_eq!(report["differences"], json!([]));
}
