//! Quarantined backfill records (a full-export line, an incremental-export
//! line, a Scan item): `rejects show` prints the line as received with its
//! table, name and what forms its version (`record::backfill_text`), and
//! `rejects retry` reads it back into the same change: rejected again for
//! the same reason while nothing is fixed, and, once it is good, applied
//! once with the version its reader gave it (the snapshot version; an
//! incremental export's window end), which stream records then meet as
//! they would have met the backfill itself.

use crate::bin::{stdout, streamfold};
use crate::export_hostile::{gzip, items, lines, opts, write_export};
use crate::support::*;
use serde_json::{Value, json};
use std::sync::atomic::AtomicBool;
use streamfold::rejects::retry_rejects;
use streamfold::sources::backfill::Quiet;
use streamfold::sources::export::{
    ExportChoice, ExportLocation, ExportOptions, IncrementalOptions, export_backfill,
};
use streamfold::store::RejectedRecord;

/// The table of `export_hostile`'s exports.
const TABLE: &str = "icarus-prod-github_events";
const BAD_TIME: &str = "next thursday";
const GOOD_TIME: &str = "2024-03-11T05:00:00Z";

/// A GitHub item of the linked user whose time no normaliser reads.
fn bad_item(id: &str) -> Value {
    gh_item(id, "bobcodes", BAD_TIME)
}

/// A stream MODIFY of GitHub item `id` written at `at` (epoch seconds).
fn stream_modify(id: &str, seq: &str, at: f64) -> Value {
    let mut rec = gh("MODIFY", seq, id, "bobcodes", "2024-03-12T09:00:00Z");
    rec["eventSourceARN"] = json!(format!(
        "arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}/stream/2024-01-01T00:00:00.000"
    ));
    rec["dynamodb"]["ApproximateCreationDateTime"] = json!(at);
    rec
}

/// The one quarantined row: checks what `rejects show --json` prints of it
/// (its name, and the line as received) and that a retry with nothing
/// fixed keeps it for the same reason. Returns its id and text.
async fn shown_and_kept(h: &Harness, id: &str, line: &Value) -> (i64, String) {
    let rows = h.p.store.rejected_raw(0, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    let (listing, raw) = rows.into_iter().next().unwrap();
    assert!(
        listing.reason.contains("unrecognised time format"),
        "{}",
        listing.reason
    );
    assert_eq!(listing.event_id.as_deref(), Some(id));
    let out = streamfold(&[
        "rejects",
        "show",
        "--json",
        "--database-url",
        &h.db.url,
        &listing.id.to_string(),
    ]);
    assert!(out.status.success());
    let shown: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let record = &shown["record"];
    assert_eq!(record["StreamfoldBackfill"]["table"], TABLE, "{record}");
    assert_eq!(record["StreamfoldBackfill"]["id"], id, "{record}");
    assert_eq!(&record["Line"], line, "the line as received: {record}");
    // Nothing fixed: rejected again for the same reason, still one row.
    let counted = h.total().await;
    let r = retry_rejects(&h.p, &[], 100).await.unwrap();
    assert_eq!((r.retried, r.resolved), (1, 0));
    assert_eq!(r.still_rejected, vec![(listing.id, listing.reason.clone())]);
    assert_eq!(h.p.store.rejected_raw(0, 10).await.unwrap().len(), 1);
    assert_eq!(h.total().await, counted);
    (listing.id, raw)
}

/// As if a normaliser fix now read the bad time: the row holds the same
/// text with a time it reads. The retry applies it once and empties the
/// quarantine; a second retry has nothing to do.
async fn fixed_and_retried(h: &Harness, id: i64, raw: &str) {
    let fixed = raw.replace(BAD_TIME, GOOD_TIME);
    assert_ne!(fixed, raw);
    h.p.store.delete_rejects(&[id]).await.unwrap();
    let row = RejectedRecord {
        source: Some(streamfold::domain::SourceKind::GithubEvents),
        table: Some(TABLE.into()),
        event_id: None,
        sequence_number: None,
        reason: "unrecognised time format (old release)".into(),
        raw: String::new(),
        key: [0; 16],
    }
    .with_raw(&fixed);
    h.p.store
        .apply(&Default::default(), std::slice::from_ref(&row))
        .await
        .unwrap();
    let counted = h.total().await;
    let r = retry_rejects(&h.p, &[], 100).await.unwrap();
    assert_eq!((r.retried, r.resolved), (1, 1), "{:?}", r.still_rejected);
    assert_eq!(r.report.total().applied, 1);
    assert_eq!(h.total().await, counted + 1);
    assert!(h.p.store.rejected_raw(0, 10).await.unwrap().is_empty());
    let r = retry_rejects(&h.p, &[], 100).await.unwrap();
    assert_eq!(r.retried, 0);
}

#[tokio::test]
async fn a_quarantined_export_line_is_retried_as_read() {
    let root = tempfile::tempdir().unwrap();
    let bad = bad_item("bad-0");
    let mut text = lines(&items("a", 2));
    text.extend(lines(std::slice::from_ref(&bad)));
    let folder = write_export(root.path(), &[("f.json.gz", text, 3)]);
    let Some(h) = Harness::with_directory("sqlite", &fixture_directory()).await else {
        return;
    };
    let s = export_backfill(
        &h.p,
        None,
        &opts(&folder, 10),
        &Quiet,
        &AtomicBool::new(false),
    )
    .await
    .unwrap();
    let t = s.report.total();
    assert_eq!((t.read, t.applied, t.rejected), (3, 2, 1), "{t:?}");
    let (id, raw) = shown_and_kept(&h, "f.json.gz:3", &json!({ "Item": bad })).await;
    assert_eq!(
        serde_json::from_str::<Value>(&raw).unwrap()["StreamfoldBackfill"]["keys"],
        json!(["id"])
    );
    fixed_and_retried(&h, id, &raw).await;
    // The retried item has the snapshot version: any stream record of it
    // is newer.
    let r = h
        .apply(&[stream_modify("bad-0", "100", 1_710_000_000.0)])
        .await;
    assert_eq!(r.total().applied, 1, "{r:?}");
    assert_eq!(h.total().await, 3);
}

/// An incremental export of [`TABLE`] for the window [`from`, `to`), its
/// lines in one data file.
fn write_incremental(root: &std::path::Path, (from, to): (i64, i64), lines: &[Value]) {
    const EXPORT: &str = "01710007200000-0a1b2c3d";
    let prefix = format!("p/AWSDynamoDB/{EXPORT}");
    let dir = root.join("AWSDynamoDB").join(EXPORT);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join("data/f1.json.gz"), gzip(text.as_bytes())).unwrap();
    std::fs::write(
        dir.join("manifest-files.json"),
        format!(
            "{}\n",
            json!({"itemCount": lines.len(), "dataFileS3Key": format!("{prefix}/data/f1.json.gz")})
        ),
    )
    .unwrap();
    let iso = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S.000Z")
            .to_string()
    };
    std::fs::write(
        dir.join("manifest-summary.json"),
        json!({
            "version": "2023-08-01",
            "exportArn": format!("arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}/export/{EXPORT}"),
            "tableArn": format!("arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}"),
            "exportFromTime": iso(from),
            "exportToTime": iso(to),
            "exportType": "INCREMENTAL_EXPORT",
            "outputFormat": "DYNAMODB_JSON",
            "outputView": "NEW_AND_OLD_IMAGES",
            "manifestFilesS3Key": format!("{prefix}/manifest-files.json"),
            "itemCount": lines.len(),
        })
        .to_string(),
    )
    .unwrap();
}

#[tokio::test]
async fn a_quarantined_incremental_export_line_keeps_its_version() {
    const FROM: i64 = 1_710_000_000;
    const TO: i64 = 1_710_007_200;
    let line = |item: Value| {
        let id = item["id"].clone();
        json!({
            "Metadata": {"WriteTimestampMicros": {"N": ((FROM + 600) * 1_000_000).to_string()}},
            "Keys": {"id": id},
            "NewImage": item,
        })
    };
    let bad = line(bad_item("inc-bad"));
    let good = line(gh_item("inc-good", "bobcodes", GOOD_TIME));
    let root = tempfile::tempdir().unwrap();
    write_incremental(root.path(), (FROM, TO), &[good, bad.clone()]);
    let Some(h) = Harness::with_directory("sqlite", &fixture_directory()).await else {
        return;
    };
    let options = ExportOptions {
        location: ExportLocation::Dir(root.path().to_path_buf()),
        choice: ExportChoice::Only,
        table: TABLE.into(),
        parallel: 1,
        batch: 10,
        resume: false,
        incremental: Some(IncrementalOptions {
            ttl_attribute: Some("ttl".into()),
        }),
    };
    let s = export_backfill(&h.p, None, &options, &Quiet, &AtomicBool::new(false))
        .await
        .unwrap();
    let t = s.report.total();
    assert_eq!((t.read, t.applied, t.rejected), (2, 1, 1), "{t:?}");
    let (id, raw) = shown_and_kept(&h, "f1.json.gz:2", &bad).await;
    assert_eq!(
        serde_json::from_str::<Value>(&raw).unwrap()["StreamfoldBackfill"]["window"],
        json!({"start_secs": FROM, "end_secs": TO, "ttl_attribute": "ttl"})
    );
    fixed_and_retried(&h, id, &raw).await;
    // The retried line has its export's version (the window's end): a
    // stream record written before that end loses to it, one written
    // after it wins.
    let before = h
        .apply(&[stream_modify("inc-bad", "900", (TO - 60) as f64)])
        .await;
    assert_eq!(
        (before.total().applied, before.total().unchanged),
        (0, 1),
        "{before:?}"
    );
    let after = h
        .apply(&[stream_modify("inc-bad", "901", (TO + 60) as f64)])
        .await;
    assert_eq!(after.total().applied, 1, "{after:?}");
    assert_eq!(h.total().await, 2);
}

#[tokio::test]
#[ignore = "needs STREAMFOLD_TEST_MOTO"]
async fn a_quarantined_scan_item_is_retried_as_read() {
    use aws_sdk_dynamodb::types::AttributeValue as V;
    use streamfold::sources::scan::{ScanOptions, Segments, scan_backfill};
    let Some(moto) = crate::moto::Moto::start() else {
        return;
    };
    let c = crate::moto::dynamodb_client(&moto.endpoint);
    crate::moto::create_id_table(&c, TABLE, false).await;
    for (id, time) in [("s-0", GOOD_TIME), ("s-1", GOOD_TIME), ("s-bad", BAD_TIME)] {
        c.put_item()
            .table_name(TABLE)
            .item("id", V::S(id.into()))
            .item("username", V::S("bobcodes".into()))
            .item("timestamp", V::S(time.into()))
            .item("eventType", V::S("commit".into()))
            .send()
            .await
            .unwrap();
    }
    let Some(h) = Harness::with_directory("sqlite", &fixture_directory()).await else {
        return;
    };
    let scan = ScanOptions {
        table: TABLE.into(),
        segments: Segments::All(1),
        resume: false,
        max_rcu: None,
        max_items_per_sec: None,
        page_size: Some(10),
        consistent_read: true,
        max_pages: None,
        run: None,
    };
    let s = scan_backfill(&h.p, &c, &scan, &Quiet, &AtomicBool::new(false))
        .await
        .unwrap();
    let t = s.report.total();
    assert_eq!((t.read, t.applied, t.rejected), (3, 2, 1), "{t:?}");
    let rows = h.p.store.rejected_raw(0, 10).await.unwrap();
    let name = rows[0].0.event_id.clone().unwrap();
    assert!(
        name.starts_with(&format!("scan {TABLE} segment 0/1 page 1 item ")),
        "{name}"
    );
    // The item as a full export's line of it.
    let line = json!({"Item": bad_item("s-bad")});
    let (id, raw) = shown_and_kept(&h, &name, &line).await;
    fixed_and_retried(&h, id, &raw).await;
    let r = h
        .apply(&[stream_modify("s-bad", "100", 1_710_000_000.0)])
        .await;
    assert_eq!(r.total().applied, 1, "{r:?}");
    assert_eq!(h.total().await, 3);
}
