//! The Lambda handler against DynamoDB lookups in moto: same counts as a
//! local replay, unattributed when unlinked, partial batch failures that
//! name the first unapplied record and converge on retry.

use crate::moto::{self, Moto};
use crate::moto_tables::{ACS, ICARUS, create, seed_tables};
use crate::support;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use std::collections::HashMap;
use streamfold::pipeline::Pipeline;
use streamfold::record::lambda_event::OwnedRawEvent;
use streamfold::resolve::dynamo::{CachePolicy, DynamoDirectory, TableNames};
use streamfold::sources::lambda::handle;
use streamfold::store::Store;

fn fixture_events() -> Vec<OwnedRawEvent> {
    support::fixture_event_texts()
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect()
}

async fn dynamo_pipeline(moto: &Moto, db_url: &str, tables: TableNames) -> Pipeline {
    Pipeline {
        store: Store::open(db_url).await.unwrap(),
        directory: DynamoDirectory::new(
            moto::dynamodb_client(&moto.endpoint),
            tables,
            CachePolicy::default(),
        )
        .into(),
        default_tz: chrono_tz::Tz::UTC,
    }
}

#[tokio::test]
#[ignore = "needs STREAMFOLD_TEST_MOTO"]
async fn handler_with_dynamodb_lookups_matches_local_replay() {
    let Some(moto) = Moto::start() else { return };
    seed_tables(&moto::dynamodb_client(&moto.endpoint)).await;
    let lambda_db = support::fresh_db("sqlite").await.unwrap();
    let p = dynamo_pipeline(
        &moto,
        &lambda_db.url,
        TableNames::from_prefixes(ICARUS, ACS, &HashMap::new()),
    )
    .await;
    for event in fixture_events() {
        let (response, report) = handle(&p, None, &event).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
        assert!(report.is_some());
    }
    // The same files through the local directory (what `streamfold replay` does).
    let Some(local) = support::Harness::with_directory("sqlite", &[]).await else {
        return;
    };
    let local_p = Pipeline {
        store: local.p.store.clone(),
        directory: streamfold::resolve::local::LocalDirectory::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/directory"
        )))
        .unwrap()
        .into(),
        default_tz: chrono_tz::Tz::UTC,
    };
    for event in fixture_events() {
        handle(&local_p, None, &event).await.unwrap();
    }
    let (a, b) = (
        p.store.totals().await.unwrap(),
        local_p.store.totals().await.unwrap(),
    );
    assert_eq!(a, b);
    assert!(a.events_counted > 0 && a.unattributed > 0, "{a:?}");
    for user in ["U01ALICE", "U02BOB", "U03CAROL", "acct-1001", "acct-1002"] {
        assert_eq!(
            p.store.heatmap(user, None).await.unwrap(),
            local_p.store.heatmap(user, None).await.unwrap(),
            "{user}"
        );
    }
    // A warm Lambda answers repeated lookups from its cache.
    let before = p.directory.cache_counts();
    handle(&p, None, &fixture_events()[0]).await.unwrap();
    let after = p.directory.cache_counts();
    assert!(
        after.0 > before.0 && after.1 == before.1,
        "(hits, misses) {before:?} → {after:?}"
    );
}

#[tokio::test]
#[ignore = "needs STREAMFOLD_TEST_MOTO"]
async fn failed_lookup_reports_the_first_record_and_a_retry_converges() {
    let Some(moto) = Moto::start() else { return };
    seed_tables(&moto::dynamodb_client(&moto.endpoint)).await;
    let db = support::fresh_db("sqlite").await.unwrap();
    let events = fixture_events();
    let first_seq = streamfold::record::lambda_event::read_meta(&events[0].records[0])
        .sequence_number
        .unwrap();
    // The accounts table is missing: every lookup of a time zone fails.
    let mut broken = TableNames::from_prefixes(ICARUS, ACS, &HashMap::new());
    broken.accounts = "icarus-test-no_such_table".into();
    let p = dynamo_pipeline(&moto, &db.url, broken).await;
    let (response, report) = handle(&p, None, &events[0]).await.unwrap();
    assert!(report.is_none());
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(
        response.batch_item_failures[0].item_identifier.as_deref(),
        Some(first_seq.as_str())
    );
    assert_eq!(
        p.store.totals().await.unwrap().ledger_rows,
        0,
        "nothing partially applied"
    );
    // Fixed configuration, same batch again: applied once.
    let fixed = dynamo_pipeline(
        &moto,
        &db.url,
        TableNames::from_prefixes(ICARUS, ACS, &HashMap::new()),
    )
    .await;
    let (response, _) = handle(&fixed, None, &events[0]).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let counted = fixed.store.totals().await.unwrap().events_counted;
    assert!(counted > 0);
    let (again, _) = handle(&fixed, None, &events[0]).await.unwrap();
    assert!(again.batch_item_failures.is_empty());
    assert_eq!(fixed.store.totals().await.unwrap().events_counted, counted);
}

#[tokio::test]
#[ignore = "needs STREAMFOLD_TEST_MOTO"]
async fn database_refusing_the_third_record_quarantines_it_and_a_retry_converges() {
    let Some(moto) = Moto::start() else { return };
    seed_tables(&moto::dynamodb_client(&moto.endpoint)).await;
    let db = support::fresh_db("sqlite").await.unwrap();
    let p = dynamo_pipeline(
        &moto,
        &db.url,
        TableNames::from_prefixes(ICARUS, ACS, &HashMap::new()),
    )
    .await;
    let times = [
        "2024-03-12T14:00:00Z",
        "2024-03-12T15:00:00Z",
        "2024-03-12T16:00:00Z",
        "2024-03-12T17:00:00Z",
        "2024-03-12T18:00:00Z",
    ];
    let records: Vec<Value> = times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            support::gh(
                "INSERT",
                &format!("{}", 500 + i),
                &format!("e{i}"),
                "alice-gh",
                t,
            )
        })
        .collect();
    let event: OwnedRawEvent =
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap();
    // Inject: the database refuses the third record's ledger row.
    let streamfold::store::Backend::Sqlite(s) = p.store.backend() else {
        unreachable!()
    };
    let third_at = chrono::DateTime::parse_from_rfc3339(times[2])
        .unwrap()
        .timestamp();
    sqlx::raw_sql(&format!(
        "CREATE TRIGGER inject_failure BEFORE INSERT ON activity_ledger WHEN NEW.event_at = {third_at}
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
    ))
    .execute(s.pool())
    .await
    .unwrap();
    // A refusal that is not transient is blamed on the record: it is
    // isolated and quarantined, the rest applied, and Lambda is told the
    // batch succeeded (retrying it would be refused forever).
    let (response, report) = handle(&p, None, &event).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let report = report.unwrap();
    assert_eq!(report.total().rejected, 1);
    assert_eq!(report.rejections[0].index, 2);
    assert_eq!(p.store.totals().await.unwrap().events_counted, 4);
    let listed = p.store.rejects(10).await.unwrap();
    assert_eq!(listed[0].sequence_number.as_deref(), Some("502"));
    assert!(
        listed[0].reason.contains("injected failure"),
        "{}",
        listed[0].reason
    );
    // After the fix, `rejects retry` applies it once; redelivery is a no-op.
    sqlx::raw_sql("DROP TRIGGER inject_failure")
        .execute(s.pool())
        .await
        .unwrap();
    let retried = streamfold::rejects::retry_rejects(&p, &[], 100)
        .await
        .unwrap();
    assert_eq!(retried.resolved, 1);
    let (response, _) = handle(&p, None, &event).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(p.store.totals().await.unwrap().events_counted, 5);
    assert_eq!(p.store.totals().await.unwrap().rejected, 0);
    let (response, _) = handle(&p, None, &event).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(p.store.totals().await.unwrap().events_counted, 5);
    // alice is in New York: 10:00 … 14:00 EDT on Tuesday.
    let cells = p.store.heatmap("U01ALICE", Some("G")).await.unwrap();
    assert_eq!(
        cells,
        (10..15).map(|h| (2u8, h as u8, 1i64)).collect::<Vec<_>>()
    );
}

fn n(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.clone(),
        other => panic!("{name} is not N: {other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs STREAMFOLD_TEST_MOTO"]
async fn llm_reports_are_projected_to_dynamodb_and_never_regress() {
    use streamfold::report::publish::ReportPublisher;
    use streamfold::store::reports::ReportFilter;
    let Some(moto) = Moto::start() else { return };
    let c = moto::dynamodb_client(&moto.endpoint);
    seed_tables(&c).await;
    let table = format!("{ACS}LLMReportData");
    create(&c, &table, "report_id", None, &[]).await;
    let db = support::fresh_db("sqlite").await.unwrap();
    let p = dynamo_pipeline(
        &moto,
        &db.url,
        TableNames::from_prefixes(ICARUS, ACS, &HashMap::new()),
    )
    .await;
    // First with a table that does not exist: projections fail, the
    // batches do not, and the reports stay pending.
    let missing = ReportPublisher::new(c.clone(), "no-such-table");
    for event in fixture_events() {
        let (response, report) = handle(&p, Some(&missing), &event).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
        let _ = report.unwrap();
    }
    let all = ReportFilter {
        limit: u32::MAX,
        ..ReportFilter::default()
    };
    let pending = ReportFilter {
        pending_only: true,
        ..all.clone()
    };
    let reports = p.store.reports(&all).await.unwrap();
    assert_eq!(reports.len(), 5);
    assert_eq!(p.store.reports(&pending).await.unwrap().len(), 5);

    // The next batch with LLM data (here: a redelivery) repairs them all.
    let publisher = ReportPublisher::new(c.clone(), &table);
    let llm_event = &fixture_events()[3];
    let (_, report) = handle(&p, Some(&publisher), llm_event).await.unwrap();
    let report = report.unwrap();
    assert_eq!(report.reports_changed, 0);
    assert_eq!(report.published.written, 5, "{:?}", report.published);
    assert!(p.store.reports(&pending).await.unwrap().is_empty());

    // Every item reads back with every seed field, typed N / M / S.
    for r in &reports {
        let item = c
            .get_item()
            .table_name(&table)
            .key("report_id", AttributeValue::S(r.key.report_id()))
            .send()
            .await
            .unwrap()
            .item
            .unwrap_or_else(|| panic!("{} not projected", r.key.report_id()));
        for s in ["report_id", "account_id", "report_period", "generated_at"] {
            assert!(matches!(item.get(s), Some(AttributeValue::S(_))), "{s}");
        }
        assert_eq!(n(&item, "total_requests"), r.sums.requests.to_string());
        assert_eq!(n(&item, "total_tokens"), r.sums.tokens.to_string());
        assert_eq!(n(&item, "total_cost_usd"), r.sums.cost_usd.to_string());
        assert_eq!(
            n(&item, "average_response_time_ms"),
            r.sums.average_response_time_ms().to_string()
        );
        assert_eq!(
            n(&item, "average_quality_score"),
            r.sums.average_quality_score().to_string()
        );
        assert_eq!(n(&item, "version"), r.revision.to_string());
        let Some(AttributeValue::M(models)) = item.get("model_usage") else {
            panic!("model_usage is not M")
        };
        assert_eq!(models.len(), r.sums.models.len());
        for (model, usage) in &r.sums.models {
            let Some(AttributeValue::M(m)) = models.get(model) else {
                panic!("{model}")
            };
            assert_eq!(n(m, "requests"), usage.requests.to_string());
            assert_eq!(n(m, "tokens"), usage.tokens.to_string());
            assert_eq!(n(m, "cost"), usage.cost_usd.to_string());
        }
        let Some(AttributeValue::M(functions)) = item.get("function_breakdown") else {
            panic!("function_breakdown is not M")
        };
        for (f, count) in &r.sums.functions {
            assert_eq!(n(functions, f), count.to_string());
        }
    }
    let exact = c
        .get_item()
        .table_name(&table)
        .key("report_id", AttributeValue::S("acct-1002#2024-02".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(n(&exact, "total_cost_usd"), "0.000123456789012345");

    // A newer projection is already there (another writer): ours loses the
    // condition, which is not an error, and the newer item stays.
    let id = "acct-1001#2024-02";
    c.update_item()
        .table_name(&table)
        .key("report_id", AttributeValue::S(id.into()))
        .update_expression("SET #v = :v, total_requests = :r")
        .expression_attribute_names("#v", "version")
        .expression_attribute_values(":v", AttributeValue::N("99".into()))
        .expression_attribute_values(":r", AttributeValue::N("999".into()))
        .send()
        .await
        .unwrap();
    let newer = support::record(
        "acsd2p-test-LLMDataCollection",
        "INSERT",
        "99000000000000000000000001",
        serde_json::json!({"conversation_id":{"S":"conv-a"}}),
        Some(serde_json::json!({
            "conversation_id":{"S":"conv-a"},"model_used":{"S":"m"},"total_tokens":{"N":"5"},
            "generated_at":{"S":"2024-02-20T00:00:00Z"},"metadata":{"M":{"cost_usd":{"N":"0.5"}}}
        })),
        None,
    );
    let event: OwnedRawEvent =
        serde_json::from_value(serde_json::json!({ "Records": [newer] })).unwrap();
    let (_, report) = handle(&p, Some(&publisher), &event).await.unwrap();
    let report = report.unwrap();
    assert_eq!(report.reports_changed, 1);
    assert_eq!(report.published.superseded, 1, "{:?}", report.published);
    let item = c
        .get_item()
        .table_name(&table)
        .key("report_id", AttributeValue::S(id.into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(n(&item, "version"), "99");
    assert_eq!(n(&item, "total_requests"), "999");
    // SQL has the request all the same.
    let sql = p
        .store
        .reports(&ReportFilter {
            account_id: Some("acct-1001".into()),
            period: Some("2024-02".into()),
            limit: 1,
            ..ReportFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(sql[0].sums.requests, 2);
    assert_eq!(sql[0].sums.cost_usd.to_string(), "0.5021");
}

/// A Kinesis batch that cannot be applied is reported by the Kinesis
/// `sequenceNumber` of its first record; the retry applies it once.
#[tokio::test]
#[ignore = "needs STREAMFOLD_TEST_MOTO"]
async fn failed_kinesis_batch_reports_its_kinesis_sequence_number() {
    let Some(moto) = Moto::start() else { return };
    seed_tables(&moto::dynamodb_client(&moto.endpoint)).await;
    let db = support::fresh_db("sqlite").await.unwrap();
    let records: Vec<serde_json::Value> = fixture_events()[0]
        .records
        .iter()
        .map(|r| serde_json::from_str(r.get()).unwrap())
        .collect();
    let micros = support::kinesis_micros(&records);
    let kinesis: Vec<serde_json::Value> = records
        .iter()
        .zip(&micros)
        .enumerate()
        .map(|(i, (r, us))| support::kinesis_record(r, *us, &format!("4959{:052}", i + 10)))
        .collect();
    let event: OwnedRawEvent =
        serde_json::from_value(serde_json::json!({ "Records": kinesis })).unwrap();
    let mut broken = TableNames::from_prefixes(ICARUS, ACS, &HashMap::new());
    broken.accounts = "icarus-test-no_such_table".into();
    let p = dynamo_pipeline(&moto, &db.url, broken).await;
    let (response, report) = handle(&p, None, &event).await.unwrap();
    assert!(report.is_none());
    assert_eq!(
        response.batch_item_failures[0].item_identifier.as_deref(),
        Some(format!("4959{:052}", 10).as_str())
    );
    assert_eq!(p.store.totals().await.unwrap().ledger_rows, 0);
    let fixed = dynamo_pipeline(
        &moto,
        &db.url,
        TableNames::from_prefixes(ICARUS, ACS, &HashMap::new()),
    )
    .await;
    for _ in 0..2 {
        let (response, _) = handle(&fixed, None, &event).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
    }
    let streams = support::fresh_db("sqlite").await.unwrap();
    let direct = dynamo_pipeline(
        &moto,
        &streams.url,
        TableNames::from_prefixes(ICARUS, ACS, &HashMap::new()),
    )
    .await;
    handle(&direct, None, &fixture_events()[0]).await.unwrap();
    assert_eq!(
        support::counted_state(&fixed).await,
        support::counted_state(&direct).await
    );
    assert!(fixed.store.totals().await.unwrap().events_counted > 0);
}
