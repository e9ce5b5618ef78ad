//! Exports found by the prefix they were taken with (issue 20):
//! `export-table-to-point-in-time --s3-prefix P` writes
//! `P/AWSDynamoDB/<export id>/…`, and `backfill --export P` finds the
//! export there — the one, the newest with `--latest`, or the one named —
//! locally and in S3 (moto), passing over unfinished exports and those of
//! other tables, and checks each data file's `md5Checksum`.

use crate::moto::{Moto, moto_config};
use crate::support::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use streamfold::sources::backfill::{BackfillError, Observer};
use streamfold::sources::export::{ExportChoice, ExportLocation, ExportOptions, export_backfill};

const TABLE: &str = "icarus-prod-github_events";
/// The fixture export's id, and a later one made from it.
const FIRST: &str = "01711929600000-5f3c2a1b";
const SECOND: &str = "01714521600000-0a1b2c3d";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/exports/github_events")
}

/// The files of an export with id `id` of `table`, exported at `time`,
/// under the S3 prefix `prefix`: (key relative to the prefix, bytes). Its
/// data files are the fixture's.
fn export_files(prefix: &str, id: &str, table: &str, time: &str) -> Vec<(String, Vec<u8>)> {
    let folder = format!("AWSDynamoDB/{id}");
    let mut summary: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture().join("manifest-summary.json")).unwrap(),
    )
    .unwrap();
    summary["exportArn"] = json!(format!(
        "arn:aws:dynamodb:us-east-1:123456789012:table/{table}/export/{id}"
    ));
    summary["tableArn"] = json!(format!(
        "arn:aws:dynamodb:us-east-1:123456789012:table/{table}"
    ));
    summary["exportTime"] = json!(time);
    summary["manifestFilesS3Key"] = json!(format!("{prefix}/{folder}/manifest-files.json"));
    let manifest: String = std::fs::read_to_string(fixture().join("manifest-files.json"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            let name = v["dataFileS3Key"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string();
            v["dataFileS3Key"] = json!(format!("{prefix}/{folder}/data/{name}"));
            format!("{v}\n")
        })
        .collect();
    let mut files = vec![
        (
            format!("{folder}/manifest-summary.json"),
            summary.to_string().into_bytes(),
        ),
        (
            format!("{folder}/manifest-files.json"),
            manifest.into_bytes(),
        ),
    ];
    for entry in std::fs::read_dir(fixture().join("data")).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        files.push((format!("{folder}/data/{name}"), std::fs::read(&p).unwrap()));
    }
    files
}

fn write_local(root: &Path, files: &[(String, Vec<u8>)]) {
    for (rel, bytes) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

/// Keeps the notes a backfill makes (which export it chose).
#[derive(Default)]
struct Notes(Mutex<Vec<String>>);
impl Observer for Notes {
    fn note(&self, message: &str) {
        self.0.lock().unwrap().push(message.to_string());
    }
}

fn opts(location: ExportLocation, choice: ExportChoice) -> ExportOptions {
    ExportOptions {
        location,
        choice,
        table: TABLE.into(),
        parallel: 2,
        batch: 25,
        resume: false,
        incremental: None,
    }
}

/// Backfill with `choice`; the items read and the note made.
async fn run(
    h: &Harness,
    s3: Option<&aws_sdk_s3::Client>,
    location: &ExportLocation,
    choice: ExportChoice,
) -> Result<(u64, String), BackfillError> {
    let notes = Notes::default();
    let s = export_backfill(
        &h.p,
        s3,
        &opts(location.clone(), choice),
        &notes,
        &AtomicBool::new(false),
    )
    .await?;
    let note = notes.0.lock().unwrap().join("\n");
    Ok((s.items, note))
}

#[tokio::test]
async fn a_local_prefix_holding_one_export_is_read() {
    let root = tempfile::tempdir().unwrap();
    write_local(
        root.path(),
        &export_files("backfill", FIRST, TABLE, "2024-04-01T00:00:00.000Z"),
    );
    // Passed over: an export still running, and one of another table.
    std::fs::create_dir_all(root.path().join("AWSDynamoDB/01719792000000-99999999/data")).unwrap();
    write_local(
        root.path(),
        &export_files(
            "backfill",
            "01717200000000-dbdbdbdb",
            "icarus-prod-dropbox_file_changes",
            "2024-06-01T00:00:00Z",
        ),
    );
    let Some(h) = Harness::with_directory("sqlite", &fixture_directory()).await else {
        return;
    };
    let at = ExportLocation::Dir(root.path().into());
    let (items, note) = run(&h, None, &at, ExportChoice::Only).await.unwrap();
    assert_eq!(items, 60);
    assert!(
        note.contains(FIRST) && note.contains("the only one"),
        "{note}"
    );
    assert!(
        note.contains("1 unfinished") && note.contains("1 of other tables"),
        "{note}"
    );
    assert_eq!(h.p.store.totals().await.unwrap().events_counted, 45);
    // The AWSDynamoDB folder itself, and the export's own folder, work too.
    for inner in ["AWSDynamoDB", &format!("AWSDynamoDB/{FIRST}")] {
        let at = ExportLocation::Dir(root.path().join(inner));
        let (items, note) = run(&h, None, &at, ExportChoice::Only).await.unwrap();
        assert_eq!(items, 60, "{inner}: {note}");
    }
    assert_eq!(h.p.store.totals().await.unwrap().events_counted, 45);
    // The export of another table is named, with the fix.
    let mut wrong = opts(
        ExportLocation::Dir(root.path().join(format!("AWSDynamoDB/{FIRST}"))),
        ExportChoice::Only,
    );
    wrong.table = "icarus-prod-dropbox_file_changes".into();
    let err = export_backfill(
        &h.p,
        None,
        &wrong,
        &Notes::default(),
        &AtomicBool::new(false),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("is of table icarus-prod-github_events"),
        "{err}"
    );
    // A prefix with no export of the table says where it looked.
    let empty = tempfile::tempdir().unwrap();
    let err = run(
        &h,
        None,
        &ExportLocation::Dir(empty.path().into()),
        ExportChoice::Only,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("no finished export of icarus-prod-github_events"),
        "{err}"
    );
    assert!(
        err.contains("AWSDynamoDB/<export id>/manifest-summary.json"),
        "{err}"
    );
}

#[tokio::test]
async fn a_data_file_whose_md5_differs_is_named() {
    let root = tempfile::tempdir().unwrap();
    let mut files = export_files("p", FIRST, TABLE, "2024-04-01T00:00:00Z");
    let manifest = files
        .iter_mut()
        .find(|(k, _)| k.ends_with("manifest-files.json"))
        .unwrap();
    let text = String::from_utf8(manifest.1.clone()).unwrap();
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines[1]["md5Checksum"] = json!("AAAAAAAAAAAAAAAAAAAAAA==");
    let bad_key = lines[1]["dataFileS3Key"].as_str().unwrap().to_string();
    manifest.1 = lines
        .iter()
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .into_bytes();
    write_local(root.path(), &files);
    let Some(h) = Harness::with_directory("sqlite", &fixture_directory()).await else {
        return;
    };
    let err = run(
        &h,
        None,
        &ExportLocation::Dir(root.path().into()),
        ExportChoice::Only,
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, BackfillError::ChecksumMismatch { .. }),
        "{msg}"
    );
    assert!(
        msg.contains(&bad_key) && msg.contains("md5Checksum"),
        "{msg}"
    );
    // The file is not checkpointed as done: a resume reads it again.
    let job = streamfold::sources::export::job_name(
        TABLE,
        &format!("arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}/export/{FIRST}"),
    );
    let done: Vec<String> =
        h.p.store
            .checkpoints(&job)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.done)
            .map(|c| c.part)
            .collect();
    assert!(!done.iter().any(|p| p == &bad_key), "{done:?}");
}

fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(&moto_config(endpoint))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

async fn upload(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str, files: &[(String, Vec<u8>)]) {
    for (rel, bytes) in files {
        s3.put_object()
            .bucket(bucket)
            .key(format!("{prefix}/{rel}"))
            .body(bytes.clone().into())
            .send()
            .await
            .unwrap();
    }
}

/// In S3 (moto): `s3://bucket/prefix` with one export, then with two.
#[tokio::test]
#[ignore = "needs STREAMFOLD_TEST_MOTO"]
async fn an_s3_prefix_with_one_then_two_exports() {
    let Some(moto) = Moto::start() else {
        return;
    };
    let s3 = s3_client(&moto.endpoint);
    let bucket = "acme-dynamodb-exports";
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    let prefix = "backfill";
    upload(
        &s3,
        bucket,
        prefix,
        &export_files(prefix, FIRST, TABLE, "2024-04-01T00:00:00.000Z"),
    )
    .await;
    let Some(h) = Harness::with_directory("sqlite", &fixture_directory()).await else {
        return;
    };
    // With and without the trailing slash operators type.
    for text in [
        format!("s3://{bucket}/{prefix}"),
        format!("s3://{bucket}/{prefix}/"),
    ] {
        let at = ExportLocation::parse(&text).unwrap();
        let (items, note) = run(&h, Some(&s3), &at, ExportChoice::Only).await.unwrap();
        assert_eq!(items, 60, "{text}");
        assert!(note.contains(FIRST), "{note}");
    }
    assert_eq!(h.p.store.totals().await.unwrap().events_counted, 45);

    // A second, later export: the operator must choose.
    upload(
        &s3,
        bucket,
        prefix,
        &export_files(prefix, SECOND, TABLE, "2024-05-01T00:00:00.000Z"),
    )
    .await;
    let at = ExportLocation::parse(&format!("s3://{bucket}/{prefix}")).unwrap();
    let err = run(&h, Some(&s3), &at, ExportChoice::Only)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("2 exports of icarus-prod-github_events"),
        "{err}"
    );
    assert!(
        err.contains(FIRST) && err.contains(SECOND) && err.contains("--latest"),
        "{err}"
    );
    let (items, note) = run(&h, Some(&s3), &at, ExportChoice::Latest).await.unwrap();
    assert_eq!(items, 60);
    assert!(
        note.contains(SECOND) && note.contains("the newest"),
        "{note}"
    );
    let arn = format!("arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}/export/{FIRST}");
    let (_, note) = run(&h, Some(&s3), &at, ExportChoice::Id(arn))
        .await
        .unwrap();
    assert!(
        note.contains(FIRST) && note.contains("the one named"),
        "{note}"
    );
    let err = run(&h, Some(&s3), &at, ExportChoice::Id("0000-nope".into()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no export 0000-nope"), "{err}");
    // Three reads of the same items: counted once.
    assert_eq!(h.p.store.totals().await.unwrap().events_counted, 45);
}

/// The work of a Distributed Map over an export in S3 (moto), one child
/// per line of `manifest-files.json`: a child that runs out of time goes
/// on from its checkpoint, a child that fails (its object missing) is run
/// again, a re-run of every child applies nothing, and the counts equal
/// a CLI backfill of the same export.
#[tokio::test]
#[ignore = "needs STREAMFOLD_TEST_MOTO"]
async fn distributed_map_children_apply_each_file_once() {
    use streamfold::sources::backfill_task::{ExportFileTask, run_export_file};
    let Some(moto) = Moto::start() else {
        return;
    };
    let s3 = s3_client(&moto.endpoint);
    let bucket = "exports";
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    let files = export_files("backfill", FIRST, TABLE, "2024-04-01T00:00:00.000Z");
    let manifest: Vec<Value> = files
        .iter()
        .find(|(k, _)| k.ends_with("manifest-files.json"))
        .map(|(_, b)| {
            String::from_utf8(b.clone())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        })
        .unwrap();
    // The third data file is not there yet: its child fails.
    let third = manifest[2]["dataFileS3Key"].as_str().unwrap().to_string();
    let first_upload: Vec<_> = files
        .iter()
        .filter(|(k, _)| !third.ends_with(k.as_str()))
        .cloned()
        .collect();
    upload(&s3, bucket, "backfill", &first_upload).await;

    let Some(h) = Harness::with_directory("sqlite", &fixture_directory()).await else {
        return;
    };
    let task = |file: &Value, batch: usize| ExportFileTask {
        export: format!("s3://{bucket}/backfill/AWSDynamoDB/{FIRST}"),
        table: TABLE.into(),
        file: file.clone(),
        incremental: false,
        ttl_attribute: None,
        batch,
    };
    let later = std::time::Instant::now() + std::time::Duration::from_secs(600);
    // Child 1 is out of time at once: the file is checked whole before any
    // line is applied, and the deadline is looked at after every line of
    // that check: nothing applied, not done.
    let out_of_time = std::time::Instant::now();
    let o = run_export_file(&h.p, Some(&s3), &task(&manifest[0], 7), out_of_time)
        .await
        .unwrap();
    assert!(!o.done && o.items == 0, "{o:?}");
    assert_eq!(h.p.store.totals().await.unwrap().ledger_rows, 0);
    // Its next invocation applies one batch of 7 and is stopped.
    let job = streamfold::sources::export::FileJob {
        export: ExportLocation::parse(&task(&manifest[0], 7).export).unwrap(),
        table: TABLE.into(),
        file: manifest[0].clone(),
        incremental: None,
        batch: 7,
        max_batches: Some(1),
    };
    let o = streamfold::sources::export::export_file_backfill(&h.p, Some(&s3), &job, Some(later))
        .await
        .unwrap();
    assert!(!o.done && o.summary.items == 7, "{o:?}");
    let mut applied = o.summary.report.total().applied + o.summary.report.total().unattributed;
    // The next is out of time while passing over the 7 lines applied
    // before: it applies nothing more (the deadline is looked at while
    // passing over lines too).
    let o = run_export_file(&h.p, Some(&s3), &task(&manifest[0], 7), out_of_time)
        .await
        .unwrap();
    assert!(!o.done && o.items == 0, "{o:?}");
    // The state machine invokes it again: it goes on after line 7.
    let o = run_export_file(&h.p, Some(&s3), &task(&manifest[0], 7), later)
        .await
        .unwrap();
    assert!(o.done && !o.already_done, "{o:?}");
    assert_eq!(o.items, 20 - 7, "went on after its checkpoint");
    applied += o.applied + o.unattributed;
    let o = run_export_file(&h.p, Some(&s3), &task(&manifest[1], 7), later)
        .await
        .unwrap();
    assert!(o.done, "{o:?}");
    applied += o.applied + o.unattributed;
    let err = run_export_file(&h.p, Some(&s3), &task(&manifest[2], 7), later)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&third),
        "the failed child names its file: {err}"
    );
    // The operator fixes it and re-runs the execution: every child again.
    upload(
        &s3,
        bucket,
        "backfill",
        &files
            .iter()
            .filter(|(k, _)| third.ends_with(k.as_str()))
            .cloned()
            .collect::<Vec<_>>(),
    )
    .await;
    for (i, file) in manifest.iter().enumerate() {
        let o = run_export_file(&h.p, Some(&s3), &task(file, 7), later)
            .await
            .unwrap();
        assert!(o.done, "{o:?}");
        assert_eq!(o.already_done, i < 2, "file {i}: {o:?}");
        applied += o.applied + o.unattributed;
    }
    // The same counts as one CLI backfill of the export, each item applied
    // once over all the invocations.
    let cli = Harness::with_directory("sqlite", &fixture_directory())
        .await
        .unwrap();
    let location = ExportLocation::S3 {
        bucket: bucket.into(),
        prefix: "backfill".into(),
    };
    let (items, _) = run(&cli, Some(&s3), &location, ExportChoice::Only)
        .await
        .unwrap();
    assert_eq!(items, 60);
    assert_eq!(counted_state(&h.p).await, counted_state(&cli.p).await);
    assert!(cli.total().await > 0);
    let cli_applied = cli.p.store.totals().await.unwrap().ledger_rows;
    assert_eq!(applied as i64, cli_applied, "every item applied once");
}

/// The manifest's lines of `files` (an export made by `export_files`).
fn manifest_lines(files: &[(String, Vec<u8>)]) -> Vec<Value> {
    files
        .iter()
        .find(|(k, _)| k.ends_with("manifest-files.json"))
        .map(|(_, b)| {
            String::from_utf8(b.clone())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        })
        .unwrap()
}

/// The real `streamfold-lambda`, invoked with `export_file` work items as
/// a Distributed Map child does, on an export in S3 (moto) whose second
/// file's bytes differ from its manifest's md5: that child fails with the
/// stable name `Streamfold.ChecksumMismatch` (which the state machine does
/// not retry) and nothing of that file is counted; a task that cannot run
/// is `Streamfold.InvalidTask`; the good file is applied.
#[tokio::test]
#[ignore = "needs STREAMFOLD_TEST_MOTO"]
async fn a_corrupt_file_is_refused_before_any_line_with_a_stable_error_name() {
    let Some(moto) = Moto::start() else {
        return;
    };
    let s3 = s3_client(&moto.endpoint);
    let bucket = "exports";
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    let files = export_files("backfill", FIRST, TABLE, "2024-04-01T00:00:00.000Z");
    upload(&s3, bucket, "backfill", &files).await;
    let manifest = manifest_lines(&files);
    let mut corrupt = manifest[1].clone();
    corrupt["md5Checksum"] = json!("AAAAAAAAAAAAAAAAAAAAAA==");
    let Some(h) = Harness::with_directory("sqlite", &fixture_directory()).await else {
        return;
    };
    let task = |file: &Value, export: &str| {
        json!({"streamfold": {"export_file": {
            "export": export, "table": TABLE, "file": file, "batch": 7}}})
        .to_string()
    };
    let export = format!("s3://{bucket}/backfill/AWSDynamoDB/{FIRST}");
    let events = [
        task(&corrupt, &export),
        task(&manifest[0], &export),
        task(&manifest[0], "/etc"),
    ];
    let mut env = streamfold::bench::lambda::lambda_env(
        std::path::Path::new(h.db.url.trim_start_matches("sqlite://")),
        h.dir.path(),
    );
    env.push(("AWS_ENDPOINT_URL", moto.endpoint.clone()));
    let out = streamfold::bench::lambda::invoke(
        std::path::Path::new(env!("CARGO_BIN_EXE_streamfold-lambda")),
        &env,
        &events,
    )
    .await
    .unwrap();
    let answers: Vec<(bool, Value)> = out
        .answers
        .iter()
        .map(|(e, b)| (*e, serde_json::from_str(b).unwrap()))
        .collect();
    assert_eq!(answers.len(), 3, "{answers:?}");
    let (failed, body) = &answers[0];
    assert!(failed, "{body}");
    assert_eq!(body["errorType"], "Streamfold.ChecksumMismatch", "{body}");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(
        message.contains(manifest[1]["dataFileS3Key"].as_str().unwrap()),
        "{message}"
    );
    let (failed, body) = &answers[1];
    assert!(!failed && body["done"] == true, "{body}");
    let (failed, body) = &answers[2];
    assert!(failed, "{body}");
    assert_eq!(body["errorType"], "Streamfold.InvalidTask", "{body}");
    // Only the good file's 20 items reached the ledger: none of the
    // corrupt one's.
    assert_eq!(h.p.store.totals().await.unwrap().ledger_rows, 20);
}

/// The export state machine's first step, `export_plan`: an
/// `export_prefix` typed with a trailing `/` (as the CLI accepts) gives
/// the manifest's real key, not `…//manifest-files.json` (which S3
/// answers with NoSuchKey), and the work items' export without it; a
/// re-run of the same export says how many files an earlier run applied;
/// an export of another table is refused at once, with a permanent name.
#[tokio::test]
#[ignore = "needs STREAMFOLD_TEST_MOTO"]
async fn the_export_plan_takes_a_trailing_slash_and_says_what_is_done() {
    use streamfold::sources::backfill_task::{
        ExportFileTask, ExportPlanTask, run_export_file, run_export_plan,
    };
    let Some(moto) = Moto::start() else {
        return;
    };
    let s3 = s3_client(&moto.endpoint);
    let bucket = "exports";
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    let files = export_files("backfill", FIRST, TABLE, "2024-04-01T00:00:00.000Z");
    upload(&s3, bucket, "backfill", &files).await;
    let manifest = manifest_lines(&files);
    let Some(h) = Harness::with_directory("sqlite", &fixture_directory()).await else {
        return;
    };
    let plan_task = |prefix: &str, table: &str| ExportPlanTask {
        bucket: bucket.into(),
        export_prefix: prefix.into(),
        table: table.into(),
        incremental: false,
        ttl_attribute: None,
    };
    for prefix in [
        format!("backfill/AWSDynamoDB/{FIRST}/"),
        format!("backfill/AWSDynamoDB/{FIRST}"),
        "backfill/".to_string(),
    ] {
        let plan = run_export_plan(&h.p, Some(&s3), &plan_task(&prefix, TABLE))
            .await
            .unwrap();
        assert_eq!(
            plan.manifest_key,
            format!("backfill/AWSDynamoDB/{FIRST}/manifest-files.json"),
            "{prefix}"
        );
        assert_eq!(
            plan.export,
            format!("s3://{bucket}/backfill/AWSDynamoDB/{FIRST}")
        );
        assert_eq!(
            (plan.files, plan.items, plan.already_done_files),
            (3, 60, 0)
        );
        // The key the Map's ItemReader reads exists.
        s3.get_object()
            .bucket(&plan.bucket)
            .key(&plan.manifest_key)
            .send()
            .await
            .unwrap();
    }
    let plan = run_export_plan(&h.p, Some(&s3), &plan_task("backfill/", TABLE))
        .await
        .unwrap();
    let o = run_export_file(
        &h.p,
        Some(&s3),
        &ExportFileTask {
            export: plan.export.clone(),
            table: TABLE.into(),
            file: manifest[0].clone(),
            incremental: false,
            ttl_attribute: None,
            batch: 100,
        },
        std::time::Instant::now() + std::time::Duration::from_secs(600),
    )
    .await
    .unwrap();
    assert!(o.done && o.items == 20, "{o:?}");
    let again = run_export_plan(&h.p, Some(&s3), &plan_task("backfill/", TABLE))
        .await
        .unwrap();
    assert_eq!(again.already_done_files, 1, "{again:?}");
    let err = run_export_plan(
        &h.p,
        Some(&s3),
        &plan_task("backfill/", "icarus-prod-dropbox_file_changes"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_name(), "Streamfold.InvalidExport", "{err}");
}
