//! A Dropbox change is one event whatever the table's key schema (issue 18,
//! fault 4; DESIGN §1): stream records and an S3 export of the same table
//! fold to the same identities (`account_id` + `timestamp`), so a backfill
//! overlapping the stream counts nothing twice, with the seed's key
//! (`account_id`) and with (`account_id`, `timestamp`).

use crate::support::{self, Harness};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::atomic::AtomicBool;
use streamfold::sources::backfill::Quiet;
use streamfold::sources::export::{ExportLocation, ExportOptions, export_backfill};

const TABLE: &str = "icarus-dev-dropbox_file_changes";

/// Accounts, each linked to a user.
const DIRECTORY: &[(&str, &str)] = &[
    (
        "integrations",
        r#"{"slack_id":{"S":"U_ALICE"},"integration":{"S":"D"},"account_id":{"S":"dbid:A"}}"#,
    ),
    (
        "integrations",
        r#"{"slack_id":{"S":"U_BOB"},"integration":{"S":"D"},"account_id":{"S":"dbid:B"}}"#,
    ),
];

fn change(account: &str, ts: &str) -> Value {
    json!({"account_id":{"S":account},"user_id":{"S":account},"timestamp":{"S":ts},"type":{"S":"file"}})
}

fn keys(schema: &[&str], item: &Value) -> Value {
    let mut k = serde_json::Map::new();
    for name in schema {
        k.insert(name.to_string(), item[*name].clone());
    }
    Value::Object(k)
}

/// `changes` as the table's stream delivers them: with the key
/// `account_id` alone a later change of an account is a MODIFY of its item,
/// with (`account_id`, `timestamp`) every change is an INSERT.
fn stream(schema: &[&str], changes: &[(&str, String)]) -> Vec<Value> {
    let mut seen = std::collections::BTreeSet::new();
    changes
        .iter()
        .enumerate()
        .map(|(i, (account, ts))| {
            let item = change(account, ts);
            let existed = !seen.insert(keys(schema, &item).to_string());
            let event = if existed { "MODIFY" } else { "INSERT" };
            support::record(
                TABLE,
                event,
                &(5000 + i).to_string(),
                keys(schema, &item),
                Some(item),
                None,
            )
        })
        .collect()
}

/// A local DynamoDB export (manifests and one gzip data file) of `items`.
fn export_dir(items: &[Value]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let prefix = "p/AWSDynamoDB/01700000000000-abcdef12";
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let lines: String = items
        .iter()
        .map(|i| format!("{}\n", json!({ "Item": i })))
        .collect();
    let data = dir.path().join("data/f1.json.gz");
    let mut gz = std::process::Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::fs::File::create(&data).unwrap())
        .spawn()
        .expect("gzip");
    gz.stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    assert!(gz.wait().unwrap().success());
    std::fs::write(
        dir.path().join("manifest-files.json"),
        format!(
            "{}\n",
            json!({"itemCount": items.len(), "dataFileS3Key": format!("{prefix}/data/f1.json.gz")})
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("manifest-summary.json"),
        json!({"manifestFilesS3Key": format!("{prefix}/manifest-files.json"),
               "itemCount": items.len(), "outputFormat": "DYNAMODB_JSON"})
        .to_string(),
    )
    .unwrap();
    dir
}

async fn backfill(h: &Harness, dir: &tempfile::TempDir) -> streamfold::pipeline::Counts {
    let opts = ExportOptions {
        location: ExportLocation::Dir(dir.path().to_path_buf()),
        choice: Default::default(),
        table: TABLE.into(),
        parallel: 1,
        batch: 3,
        resume: false,
        incremental: None,
    };
    let s = export_backfill(&h.p, None, &opts, &Quiet, &AtomicBool::new(false))
        .await
        .unwrap();
    s.report.total()
}

async fn overlap(engine: &str, schema: &[&str]) {
    let Some(h) = Harness::with_directory(engine, DIRECTORY).await else {
        return;
    };
    let at = |d: u32| format!("2024-03-{d:02}T{:02}:15:00Z", (d * 5) % 24);
    let changes: Vec<(&str, String)> = vec![
        ("dbid:A", at(1)),
        ("dbid:B", at(2)),
        ("dbid:A", at(3)),
        ("dbid:A", at(4)),
        ("dbid:B", at(5)),
    ];
    let records = stream(schema, &changes);
    // The table as an export sees it after the stream: the last change of
    // each account (key `account_id`) or every change (composite key).
    let mut table: std::collections::BTreeMap<String, Value> = Default::default();
    for (account, ts) in &changes {
        let item = change(account, ts);
        table.insert(keys(schema, &item).to_string(), item);
    }
    let items: Vec<Value> = table.into_values().collect();
    let dir = export_dir(&items);

    // Stream first, then the export, then the stream redelivered.
    h.apply(&records[..3]).await;
    let t = backfill(&h, &dir).await;
    assert_eq!(t.read, items.len() as u64);
    h.apply(&records).await;
    let again = backfill(&h, &dir).await;
    assert_eq!(
        again.applied, 0,
        "{engine} {schema:?}: the export added something"
    );
    let alice: i64 = h.cells("U_ALICE", Some("D")).await.values().sum();
    let bob: i64 = h.cells("U_BOB", Some("D")).await.values().sum();
    assert_eq!(
        (alice, bob),
        (3, 2),
        "{engine} {schema:?}: one event per change"
    );
    assert_eq!(h.total().await, 5);

    // The other order on a fresh database: export first, then the stream.
    let Some(h) = Harness::with_directory(engine, DIRECTORY).await else {
        return;
    };
    backfill(&h, &dir).await;
    h.apply(&records).await;
    assert_eq!(
        h.total().await,
        5,
        "{engine} {schema:?}: export then stream"
    );
}

pub async fn dropbox_export_and_stream_agree_keyed_by_account(engine: &str) {
    overlap(engine, &["account_id"]).await
}

pub async fn dropbox_export_and_stream_agree_keyed_by_account_and_time(engine: &str) {
    overlap(engine, &["account_id", "timestamp"]).await
}

/// A REMOVE without an OldImage whose Keys cannot name the change is
/// quarantined, not applied to another identity; with NEW_AND_OLD_IMAGES
/// it retracts the change of its OldImage.
pub async fn dropbox_remove_names_its_change(engine: &str) {
    let Some(h) = Harness::with_directory(engine, DIRECTORY).await else {
        return;
    };
    let first = change("dbid:A", "2024-03-01T10:00:00Z");
    let second = change("dbid:A", "2024-03-02T10:00:00Z");
    let k = json!({"account_id":{"S":"dbid:A"}});
    h.apply(&[
        support::record(TABLE, "INSERT", "1", k.clone(), Some(first), None),
        support::record(TABLE, "MODIFY", "2", k.clone(), Some(second.clone()), None),
    ])
    .await;
    assert_eq!(h.total().await, 2);
    let blind = support::record(TABLE, "REMOVE", "3", k.clone(), None, None);
    let r = h.apply(&[blind]).await;
    assert_eq!(r.total().rejected, 1, "{engine}");
    assert!(
        r.rejections[0].reason.contains("OldImage"),
        "{}",
        r.rejections[0].reason
    );
    assert_eq!(h.total().await, 2);
    let remove = support::record(TABLE, "REMOVE", "4", k, None, Some(second));
    h.apply(&[remove]).await;
    assert_eq!(
        h.total().await,
        1,
        "{engine}: the second change is retracted"
    );
}

#[macro_export]
macro_rules! dropbox_identity_tests {
    ($engine:literal $(, #[$attr:meta])*) => {
        #[tokio::test]
        $(#[$attr])*
        async fn dropbox_export_and_stream_agree_keyed_by_account() {
            $crate::dropbox_identity::dropbox_export_and_stream_agree_keyed_by_account($engine)
                .await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn dropbox_export_and_stream_agree_keyed_by_account_and_time() {
            $crate::dropbox_identity::dropbox_export_and_stream_agree_keyed_by_account_and_time(
                $engine,
            )
            .await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn dropbox_remove_names_its_change() {
            $crate::dropbox_identity::dropbox_remove_names_its_change($engine).await
        }
    };
}
