//! Backfill (DESIGN §4, §7): snapshots overlapping the stream never
//! double-count (per engine), an export folder is read and checked
//! against its manifests (found by prefix, and in S3: `export_prefix.rs`), and a parallel Scan of a moto table is
//! checkpointed, interrupted and resumed.

use crate::support::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use streamfold::record::backfill_text::snapshot_text;
use streamfold::sources::backfill::{BackfillError, Quiet};
use streamfold::sources::export::{ExportChoice, ExportLocation, ExportOptions, export_backfill};

const TABLE: &str = "icarus-dev-github_events";

/// Item `i` of the overlap test: alternating users, hours apart.
fn item(i: usize, ts: &str) -> Value {
    gh_item(
        &format!("e{i}"),
        if i.is_multiple_of(2) { "alice" } else { "bob" },
        ts,
    )
}

fn ts(i: usize) -> String {
    (chrono::DateTime::parse_from_rfc3339("2024-03-11T00:00:00Z").unwrap()
        + chrono::Duration::minutes(97 * i as i64))
    .to_utc()
    .to_rfc3339()
}

/// A backfilled item as its quarantine text, which the pipeline reads as
/// the Scan or export reader would.
fn snapshot(i: usize, t: &str) -> Value {
    let item = item(i, t).to_string();
    let rec = snapshot_text(TABLE, &["id".to_string()], &item, &format!("test {i}"));
    serde_json::from_str(&rec).unwrap()
}

/// Ground truth: each live item once, in its user's zone.
async fn assert_truth(h: &Harness, live: &BTreeMap<usize, String>) {
    for (user, slack, zone) in [
        ("alice", "U_ALICE", chrono_tz::Tz::America__New_York),
        ("bob", "U_BOB", chrono_tz::Tz::Australia__Sydney),
    ] {
        let mut want: BTreeMap<(u8, u8), i64> = BTreeMap::new();
        for (i, t) in live {
            if i.is_multiple_of(2) == (user == "alice") {
                let at = chrono::DateTime::parse_from_rfc3339(t).unwrap().to_utc();
                let b = streamfold::aggregate::bucket::bucket(at, zone);
                *want.entry((b.dow, b.hour)).or_default() += 1;
            }
        }
        assert_eq!(h.cells(slack, None).await, want, "{user}");
    }
    assert_eq!(h.total().await, live.len() as i64);
}

/// Stream records for half the items, a backfill of all of them (seeing
/// one item already modified and one already removed), then the stream
/// again (lagging INSERTs of the other half, the first half redelivered)
/// and a later MODIFY: every item counts once, where it last was.
pub async fn backfill_overlapping_the_stream_counts_once(engine: &str) {
    let Some(h) = Harness::new(engine).await else {
        return;
    };
    let n: usize = 40;
    let inserts: Vec<Value> = (0..n)
        .map(|i| {
            gh(
                "INSERT",
                &(1000 + i).to_string(),
                &format!("e{i}"),
                if i.is_multiple_of(2) { "alice" } else { "bob" },
                &ts(i),
            )
        })
        .collect();
    let moved = ts(500);
    let modify5 = gh("MODIFY", "2000", "e5", "bob", &moved);
    let mut remove7 = gh("REMOVE", "2001", "e7", "bob", &ts(7));
    remove7["dynamodb"]["OldImage"] = remove7["dynamodb"]["NewImage"].take();
    // 1. The stream so far: the first half, item 5 moved, item 7 removed.
    let mut first: Vec<Value> = inserts[..n / 2].to_vec();
    first.push(modify5.clone());
    first.push(remove7.clone());
    h.apply(&first).await;
    // 2. A backfill of the table as it is now.
    let snapshots: Vec<Value> = (0..n)
        .filter(|i| *i != 7)
        .map(|i| snapshot(i, &if i == 5 { moved.clone() } else { ts(i) }))
        .collect();
    let r = h.apply(&snapshots).await;
    assert_eq!(
        r.total().applied,
        (n / 2) as u64,
        "only the items the stream has not delivered"
    );
    assert_eq!(r.total().unchanged, (n / 2 - 1) as u64);
    // 3. The stream again: everything redelivered, the second half for the
    // first time, then a later MODIFY of an item known only from the backfill.
    let mut again = inserts.clone();
    again.push(modify5);
    again.push(remove7);
    h.apply(&again).await;
    let moved30 = ts(900);
    h.apply(&[gh("MODIFY", "3000", "e30", "alice", &moved30)])
        .await;
    // 4. Another backfill (stale now for item 30): changes nothing.
    let r = h.apply(&snapshots).await;
    assert_eq!(r.total().applied, 0);

    let live: BTreeMap<usize, String> = (0..n)
        .filter(|i| *i != 7)
        .map(|i| {
            let t = match i {
                5 => moved.clone(),
                30 => moved30.clone(),
                _ => ts(i),
            };
            (i, t)
        })
        .collect();
    assert_truth(&h, &live).await;
}

#[macro_export]
macro_rules! backfill_tests {
    ($engine:literal $(, #[$attr:meta])*) => {
        #[tokio::test]
        $(#[$attr])*
        async fn backfill_overlapping_the_stream_counts_once() {
            $crate::backfill::backfill_overlapping_the_stream_counts_once($engine).await
        }
    };
}

pub fn export_dir() -> std::path::PathBuf {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/exports/github_events"
    )
    .into()
}

pub fn export_opts(dir: std::path::PathBuf, resume: bool) -> ExportOptions {
    ExportOptions {
        location: ExportLocation::Dir(dir),
        choice: ExportChoice::Only,
        table: "icarus-prod-github_events".into(),
        parallel: 2,
        batch: 7,
        resume,
        incremental: None,
    }
}

/// `fixtures/exports/github_events` (scripts/make_export.py): 60 items,
/// users cycling alice-gh, bobcodes, carol (linked) and ghosts (not).
#[tokio::test]
async fn export_folder_is_backfilled_once_and_checked_against_its_manifest() {
    let Some(h) = Harness::with_directory("sqlite", &fixture_directory()).await else {
        return;
    };
    let stop = AtomicBool::new(false);
    let s = export_backfill(&h.p, None, &export_opts(export_dir(), false), &Quiet, &stop)
        .await
        .unwrap();
    assert_eq!((s.items, s.parts_done), (60, 3));
    let t = s.report.total();
    assert_eq!((t.applied, t.unattributed, t.rejected), (45, 15, 0));
    let totals = h.p.store.totals().await.unwrap();
    assert_eq!((totals.events_counted, totals.unattributed), (45, 15));
    let alice: i64 = h.cells("U01ALICE", None).await.values().sum();
    assert_eq!(alice, 15);

    // Resumed after completion: every file is skipped.
    let s = export_backfill(&h.p, None, &export_opts(export_dir(), true), &Quiet, &stop)
        .await
        .unwrap();
    assert_eq!((s.items, s.parts_skipped), (0, 3));
    // Run again from scratch: read again, nothing changes.
    let s = export_backfill(&h.p, None, &export_opts(export_dir(), false), &Quiet, &stop)
        .await
        .unwrap();
    assert_eq!((s.items, s.report.total().unchanged), (60, 60));
    assert_eq!(h.p.store.totals().await.unwrap(), totals);

    // A manifest that disagrees with a data file is an error naming it.
    let copy = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(copy.path().join("data")).unwrap();
    for entry in std::fs::read_dir(export_dir().join("data")).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, copy.path().join("data").join(p.file_name().unwrap())).unwrap();
    }
    std::fs::copy(
        export_dir().join("manifest-summary.json"),
        copy.path().join("manifest-summary.json"),
    )
    .unwrap();
    let files = std::fs::read_to_string(export_dir().join("manifest-files.json")).unwrap();
    let mut lines: Vec<Value> = files
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines[1]["itemCount"] = json!(21);
    lines[2]["itemCount"] = json!(19);
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(copy.path().join("manifest-files.json"), text).unwrap();
    let err = export_backfill(
        &h.p,
        None,
        &export_opts(copy.path().into(), false),
        &Quiet,
        &stop,
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, BackfillError::Inconsistent(_)), "{msg}");
    // Both tampered files are read concurrently: either may be the one named.
    assert!(
        msg.contains("manifest says 21 items, the file holds 20")
            || msg.contains("manifest says 19 items, the file holds 20"),
        "{msg}"
    );
    // Nothing was double-counted by the partial run.
    assert_eq!(h.p.store.totals().await.unwrap().events_counted, 45);
}

mod scan {
    use super::*;
    use crate::moto::Moto;
    use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
    use streamfold::sources::scan::{ScanOptions, Segments, job_name, scan_backfill};

    pub(super) const ITEMS: usize = 240;

    pub(super) async fn seed(c: &aws_sdk_dynamodb::Client) {
        crate::moto::create_id_table(c, TABLE, false).await;
        let items: Vec<WriteRequest> = (0..ITEMS)
            .map(|i| {
                let item: std::collections::HashMap<String, AttributeValue> = [
                    ("id", AttributeValue::S(format!("e{i}"))),
                    (
                        "username",
                        AttributeValue::S(if i.is_multiple_of(2) { "alice" } else { "bob" }.into()),
                    ),
                    ("timestamp", AttributeValue::S(ts(i))),
                    ("eventType", AttributeValue::S("commit".into())),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                    .build()
            })
            .collect();
        for chunk in items.chunks(25) {
            c.batch_write_item()
                .request_items(TABLE, chunk.to_vec())
                .send()
                .await
                .unwrap();
        }
    }

    fn opts(segments: Segments, resume: bool, max_pages: Option<u64>) -> ScanOptions {
        ScanOptions {
            table: TABLE.into(),
            segments,
            resume,
            max_rcu: None,
            max_items_per_sec: None,
            page_size: Some(10),
            consistent_read: false,
            max_pages,
            run: None,
        }
    }

    #[tokio::test]
    #[ignore = "needs STREAMFOLD_TEST_MOTO"]
    async fn parallel_scan_is_checkpointed_interrupted_and_resumed() {
        let Some(moto) = Moto::start() else { return };
        let c = crate::moto::dynamodb_client(&moto.endpoint);
        seed(&c).await;
        let Some(h) = Harness::new("sqlite").await else {
            return;
        };
        let stop = AtomicBool::new(false);
        // Interrupted after 2 pages of each of 4 segments.
        let err = scan_backfill(
            &h.p,
            &c,
            &opts(Segments::All(4), false, Some(2)),
            &Quiet,
            &stop,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, BackfillError::Interrupted), "{err}");
        let saved =
            h.p.store
                .checkpoints(&job_name(TABLE, 4, None))
                .await
                .unwrap();
        assert_eq!(saved.len(), 4);
        let first: i64 = saved.iter().map(|c| c.items).sum();
        assert!(first > 0 && first < ITEMS as i64, "{saved:?}");
        assert!(saved.iter().all(|c| !c.done && c.position.is_some()));
        assert_eq!(h.total().await, first);

        // Resumed: reads only the rest, and the counts are the truth.
        let s = scan_backfill(&h.p, &c, &opts(Segments::All(4), true, None), &Quiet, &stop)
            .await
            .unwrap();
        assert_eq!(s.items as i64 + first, ITEMS as i64);
        assert_eq!(s.parts_done, 4);
        let live: BTreeMap<usize, String> = (0..ITEMS).map(|i| (i, ts(i))).collect();
        assert_truth(&h, &live).await;
        let saved =
            h.p.store
                .checkpoints(&job_name(TABLE, 4, None))
                .await
                .unwrap();
        assert!(saved.iter().all(|c| c.done));

        // A full rerun without --resume, and one distributed segment: the
        // ledger keeps everything once.
        let s = scan_backfill(
            &h.p,
            &c,
            &opts(Segments::All(4), false, None),
            &Quiet,
            &stop,
        )
        .await
        .unwrap();
        assert_eq!(
            (s.items, s.report.total().unchanged),
            (ITEMS as u64, ITEMS as u64)
        );
        let one = Segments::One {
            segment: 2,
            total: 3,
        };
        let s = scan_backfill(&h.p, &c, &opts(one, false, None), &Quiet, &stop)
            .await
            .unwrap();
        assert!(s.items > 0 && s.items < ITEMS as u64);
        assert_eq!(s.report.total().applied, 0);
        assert_truth(&h, &live).await;
        let bad = Segments::One {
            segment: 3,
            total: 3,
        };
        assert!(
            scan_backfill(&h.p, &c, &opts(bad, false, None), &Quiet, &stop)
                .await
                .is_err()
        );
    }

    /// Distributed Map children over Scan segments: a child out of time
    /// stops after a committed page and answers not done, the next
    /// invocation goes on from the segment's checkpoint, and once done a
    /// segment is skipped; the counts are the truth.
    #[tokio::test]
    #[ignore = "needs STREAMFOLD_TEST_MOTO"]
    async fn distributed_map_segments_go_on_from_their_checkpoints() {
        use streamfold::sources::backfill_task::{ScanSegmentTask, run_scan_segment};
        let Some(moto) = Moto::start() else { return };
        let c = crate::moto::dynamodb_client(&moto.endpoint);
        seed(&c).await;
        let Some(h) = Harness::new("sqlite").await else {
            return;
        };
        let task = |segment| ScanSegmentTask {
            table: TABLE.into(),
            segment,
            total_segments: 3,
            run: Some("exec-1".into()),
            max_rcu: None,
            concurrency: None,
            page_size: Some(10),
        };
        let later = std::time::Instant::now() + std::time::Duration::from_secs(600);
        let mut items = 0;
        for segment in 0..3 {
            let o = run_scan_segment(&h.p, &c, &task(segment), std::time::Instant::now())
                .await
                .unwrap();
            assert!(!o.done, "out of time: {o:?}");
            let o = run_scan_segment(&h.p, &c, &task(segment), later)
                .await
                .unwrap();
            assert!(o.done && !o.already_done, "{o:?}");
            items += o.items;
            let o = run_scan_segment(&h.p, &c, &task(segment), later)
                .await
                .unwrap();
            assert!(o.done && o.already_done && o.items == 0, "{o:?}");
        }
        assert!(items < ITEMS as u64 + 1 && items > 0, "{items}");
        let saved =
            h.p.store
                .checkpoints(&job_name(TABLE, 3, Some("exec-1")))
                .await
                .unwrap();
        assert_eq!(saved.len(), 3);
        assert!(saved.iter().all(|c| c.done), "{saved:?}");
        assert_eq!(saved.iter().map(|c| c.items).sum::<i64>(), ITEMS as i64);
        let live: BTreeMap<usize, String> = (0..ITEMS).map(|i| (i, ts(i))).collect();
        assert_truth(&h, &live).await;
    }
}

/// What a Scan invocation answers is what it committed, also when its
/// deadline stopped it: the answers of every invocation of a segment add
/// up to the segment's items (before, a stopped invocation answered 0
/// items whatever it had committed, and the state machine could not see
/// progress). A new run (another execution's name) scans the table anew;
/// the same run goes on, and finds its segments done.
#[cfg(test)]
mod scan_runs {
    use super::*;
    use streamfold::sources::backfill_task::{ScanSegmentTask, run_scan_segment};
    use streamfold::sources::scan::job_name;

    #[tokio::test]
    #[ignore = "needs STREAMFOLD_TEST_MOTO"]
    async fn stopped_invocations_report_what_they_committed_and_runs_are_apart() {
        let Some(moto) = crate::moto::Moto::start() else {
            return;
        };
        let c = crate::moto::dynamodb_client(&moto.endpoint);
        scan::seed(&c).await;
        let Some(h) = Harness::new("sqlite").await else {
            return;
        };
        let task = |segment, run: &str| ScanSegmentTask {
            table: TABLE.into(),
            segment,
            total_segments: 2,
            run: Some(run.into()),
            max_rcu: None,
            concurrency: None,
            page_size: Some(2),
        };
        // Each invocation has about 250 ms before its stop (a quarter of
        // a short timeout is kept back): a few pages.
        let short = || std::time::Instant::now() + std::time::Duration::from_millis(333);
        let mut reported = 0;
        let mut stopped_with_work = 0;
        for segment in 0..2 {
            let mut invocations = 0;
            loop {
                invocations += 1;
                assert!(invocations < 500, "segment {segment} never finished");
                let o = run_scan_segment(&h.p, &c, &task(segment, "exec-1"), short())
                    .await
                    .unwrap();
                reported += o.items;
                assert_eq!(o.progressed, o.done || o.pages > 0, "{o:?}");
                if o.done {
                    break;
                }
                if o.items > 0 {
                    stopped_with_work += 1;
                }
            }
        }
        assert!(
            stopped_with_work > 0,
            "no invocation was stopped after a page"
        );
        let saved =
            h.p.store
                .checkpoints(&job_name(TABLE, 2, Some("exec-1")))
                .await
                .unwrap();
        assert!(saved.iter().all(|c| c.done), "{saved:?}");
        assert_eq!(
            reported,
            scan::ITEMS as u64,
            "the answers add up to the items"
        );
        let live: BTreeMap<usize, String> = (0..scan::ITEMS).map(|i| (i, ts(i))).collect();
        assert_truth(&h, &live).await;

        let later = std::time::Instant::now() + std::time::Duration::from_secs(600);
        // The same run again: its segments are done.
        let o = run_scan_segment(&h.p, &c, &task(0, "exec-1"), later)
            .await
            .unwrap();
        assert!(o.done && o.already_done && o.items == 0, "{o:?}");
        // A new run, months later: it scans, it does not answer from the
        // old run's checkpoints; what it reads changes nothing.
        let mut items = 0;
        for segment in 0..2 {
            let o = run_scan_segment(&h.p, &c, &task(segment, "exec-2"), later)
                .await
                .unwrap();
            assert!(o.done && !o.already_done, "{o:?}");
            assert_eq!(o.applied, 0, "{o:?}");
            items += o.items;
        }
        assert_eq!(items, scan::ITEMS as u64);
        assert_truth(&h, &live).await;
    }
}
