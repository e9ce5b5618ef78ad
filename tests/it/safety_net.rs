//! The safety net, per engine: a refusal nobody foresaw (a constraint the
//! schema gained) isolates the one record responsible, also through the
//! Lambda handler; a fault of the environment fails the batch whole; the
//! longest checkpoint keys fit their columns.

use crate::odd_values::{TS, directory, llm, s};
use crate::support::{self, Harness};
use serde_json::{Value, json};

/// Add a constraint no code foresaw: ledger rows of the actor `evil` are
/// refused by the database.
async fn refuse_evil(engine: &str, url: &str) {
    use sqlx::Connection;
    match engine {
        "sqlite" => {
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::raw_sql(
                "CREATE TRIGGER no_evil BEFORE INSERT ON activity_ledger WHEN NEW.subject = 'evil'
                 BEGIN SELECT RAISE(ABORT, 'evil subject refused'); END;",
            )
            .execute(&mut c)
            .await
            .unwrap();
        }
        "mysql" => {
            let mut c = sqlx::MySqlConnection::connect(url).await.unwrap();
            sqlx::raw_sql("ALTER TABLE activity_ledger ADD CONSTRAINT no_evil CHECK (subject IS NULL OR subject <> 'evil')")
                .execute(&mut c)
                .await
                .unwrap();
        }
        _ => {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::raw_sql("ALTER TABLE activity_ledger ADD CONSTRAINT no_evil CHECK (subject IS NULL OR subject <> 'evil')")
                .execute(&mut c)
                .await
                .unwrap();
        }
    }
}

fn batch_with_evil() -> Vec<Value> {
    (1..=9u64)
        .map(|i| {
            let user = if i == 6 { "evil" } else { "gh-ok" };
            let ts = format!("2024-03-{:02}T09:30:00Z", 10 + i);
            support::gh("INSERT", &i.to_string(), &format!("e{i}"), user, &ts)
        })
        .collect()
}

pub async fn an_unforeseen_refusal_isolates_one_record(engine: &str) {
    let Some(h) = Harness::with_directory(engine, &directory()).await else {
        return;
    };
    refuse_evil(engine, &h.db.url).await;
    let report = h.apply(&batch_with_evil()).await;
    let t = report.total();
    assert_eq!((t.applied, t.rejected), (8, 1), "{engine}");
    assert_eq!(report.rejections[0].index, 5, "{engine}");
    assert!(
        report.splits >= 3,
        "{engine}: bisected, {} splits",
        report.splits
    );
    assert_eq!(h.total().await, 8, "{engine}");
    let listed = h.p.store.rejects(10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].sequence_number.as_deref(), Some("6"));
    assert!(listed[0].reason.contains("refused"), "{}", listed[0].reason);
    // Redelivered: nothing new, the record stays quarantined once.
    let again = h.apply(&batch_with_evil()).await;
    assert_eq!(again.total().applied, 0);
    assert_eq!(h.p.store.rejects(10).await.unwrap().len(), 1);
}

/// A fault of the environment (here a table missing) refuses every record
/// alike: the batch fails whole, to be retried, and nothing is quarantined
/// or applied.
pub async fn a_missing_table_fails_the_batch_whole(engine: &str) {
    use sqlx::Connection;
    let Some(h) = Harness::with_directory(engine, &directory()).await else {
        return;
    };
    let drop = "DROP TABLE llm_report_functions";
    match engine {
        "sqlite" => {
            let mut c = sqlx::SqliteConnection::connect(&h.db.url).await.unwrap();
            sqlx::raw_sql(drop).execute(&mut c).await.unwrap();
        }
        "mysql" => {
            let mut c = sqlx::MySqlConnection::connect(&h.db.url).await.unwrap();
            sqlx::raw_sql(drop).execute(&mut c).await.unwrap();
        }
        _ => {
            let mut c = sqlx::PgConnection::connect(&h.db.url).await.unwrap();
            sqlx::raw_sql(drop).execute(&mut c).await.unwrap();
        }
    }
    let records = vec![
        support::gh("INSERT", "1", "e1", "gh-ok", TS),
        llm(2, "conv-ok", |_| {}),
    ];
    let text = json!({ "Records": records }).to_string();
    let event = streamfold::record::lambda_event::parse_event(&text).unwrap();
    let err = streamfold::pipeline::run_batch(&h.p, &event.records).await;
    assert!(err.is_err(), "{engine}: {err:?}");
    assert_eq!(h.total().await, 0, "{engine}: nothing applied");
    assert!(h.p.store.rejects(10).await.unwrap().is_empty(), "{engine}");
}

/// The Lambda handler: a batch holding a record the database refuses
/// answers with no `batchItemFailures`, the record in `rejected_records`.
pub async fn lambda_answers_no_failure_for_a_refused_record(engine: &str) {
    let Some(h) = Harness::with_directory(engine, &directory()).await else {
        return;
    };
    refuse_evil(engine, &h.db.url).await;
    let text = json!({ "Records": batch_with_evil() }).to_string();
    let event: streamfold::record::lambda_event::OwnedRawEvent =
        serde_json::from_str(&text).unwrap();
    let (response, report) = streamfold::sources::lambda::handle(&h.p, None, &event)
        .await
        .unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "{engine}: {response:?}"
    );
    assert_eq!(report.unwrap().total().rejected, 1);
    let listed = h.p.store.rejects(10).await.unwrap();
    assert_eq!(listed.len(), 1, "{engine}");
    assert_eq!(listed[0].sequence_number.as_deref(), Some("6"));
}

/// Backfill checkpoint keys built from the longest table names, export
/// ARNs, stream ARNs and S3 keys fit their columns and are found again.
pub async fn long_checkpoint_keys_fit(engine: &str) {
    use streamfold::store::checkpoints::Checkpoint;
    let Some(h) = Harness::new(engine).await else {
        return;
    };
    let table = format!("icarus-prod-{}", s(243, "t"));
    let arn = format!("arn:aws:dynamodb:us-east-1:123456789012:table/{table}/export/0170-abc");
    let jobs = [
        streamfold::sources::export::job_name(&table, &arn),
        streamfold::sources::scan::job_name(&table, 16, None),
        streamfold::sources::tail::job_name(&format!("{arn}/stream/2024")),
    ];
    let part = streamfold::sources::export::part_name(&format!("{}/data/f1.json.gz", s(1000, "p")));
    for job in &jobs {
        let c = Checkpoint {
            part: part.clone(),
            position: Some(s(5000, "k")),
            items: 1,
            done: true,
        };
        h.p.store.save_checkpoint(job, &c).await.unwrap();
        assert_eq!(
            h.p.store.checkpoints(job).await.unwrap(),
            vec![c],
            "{engine}"
        );
    }
    assert_ne!(jobs[0], jobs[1]);
}

#[macro_export]
macro_rules! safety_net_tests {
    ($engine:literal $(, #[$attr:meta])*) => {
        #[tokio::test]
        $(#[$attr])*
        async fn an_unforeseen_refusal_isolates_one_record() {
            $crate::safety_net::an_unforeseen_refusal_isolates_one_record($engine).await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn a_missing_table_fails_the_batch_whole() {
            $crate::safety_net::a_missing_table_fails_the_batch_whole($engine).await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn lambda_answers_no_failure_for_a_refused_record() {
            $crate::safety_net::lambda_answers_no_failure_for_a_refused_record($engine).await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn long_checkpoint_keys_fit() {
            $crate::safety_net::long_checkpoint_keys_fit($engine).await
        }
    };
}
