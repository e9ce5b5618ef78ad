//! Ledger compaction (issue 22), per engine: dropping old ledger rows keeps
//! every count and report, and afterwards nothing old is counted twice —
//! not on redelivery, not beside three writers that keep applying while
//! the compaction deletes — while new events count once and unattributed
//! rows can still be linked.

use crate::support::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use streamfold::pipeline::{Pipeline, run_batch};
use streamfold::resolve::local::LocalDirectory;
use streamfold::store::compaction::{CompactOptions, CompactReport};
use streamfold::store::reports::ReportFilter;
use streamfold::store::{Store, StoreOptions};

/// GitHub histories with 2024 event times: inserts, corrections, removals,
/// an unlinked actor (`nobody`), and LLM requests of conv-1 (acct-1).
fn old_records() -> Vec<Value> {
    let mut out = Vec::new();
    let users = ["alice", "bob", "nobody"];
    for i in 0..45usize {
        let id = format!("old-{i}");
        let base = 10_000 + i * 10;
        let t0 = format!("2024-03-{:02}T{:02}:15:00Z", 1 + i % 28, i % 24);
        let t1 = format!("2024-04-{:02}T{:02}:45:00Z", 1 + i % 28, (i * 7) % 24);
        out.push(gh("INSERT", &base.to_string(), &id, users[i % 3], &t0));
        if i % 4 == 1 {
            out.push(gh(
                "MODIFY",
                &(base + 1).to_string(),
                &id,
                users[i % 3],
                &t1,
            ));
        }
        if i % 9 == 2 {
            out.push(gh(
                "REMOVE",
                &(base + 2).to_string(),
                &id,
                users[i % 3],
                &t1,
            ));
        }
    }
    for i in 0..6usize {
        let at = format!("2024-05-{:02}T10:00:00Z", 1 + i);
        out.push(llm(
            "INSERT",
            &(90_000 + i).to_string(),
            "conv-1",
            &at,
            "0.5",
        ));
    }
    out
}

/// GitHub events of the last days (after any horizon of 7 days or more).
fn new_records(prefix: &str, n: usize) -> Vec<Value> {
    let now = chrono::Utc::now();
    (0..n)
        .map(|i| {
            let at = (now - chrono::Duration::hours(1 + i as i64 % 48))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let user = if i % 2 == 0 { "alice" } else { "bob" };
            gh(
                "INSERT",
                &(500_000 + i).to_string(),
                &format!("{prefix}-{i}"),
                user,
                &at,
            )
        })
        .collect()
}

type Snapshot = (
    BTreeMap<(u8, u8), i64>,
    BTreeMap<(u8, u8), i64>,
    i64,
    Vec<(String, String, i64, i64, String)>,
);

/// Every count a compaction must keep: both users' heatmaps, the total,
/// and each LLM report's sums.
async fn snapshot(p: &Pipeline) -> Snapshot {
    let reports = p
        .store
        .reports(&ReportFilter {
            limit: 1000,
            ..ReportFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.key.account_id.clone(),
                r.key.period.clone(),
                r.sums.requests,
                r.sums.tokens,
                r.sums.cost_usd.normalize().to_string(),
            )
        })
        .collect();
    (
        cells(p, "U_ALICE", None).await,
        cells(p, "U_BOB", None).await,
        p.store.totals().await.unwrap().events_counted,
        reports,
    )
}

async fn apply(p: &Pipeline, records: &[Value]) -> streamfold::pipeline::BatchReport {
    let text = json!({ "Records": records }).to_string();
    let event = streamfold::record::lambda_event::parse_event(&text).unwrap();
    run_batch(p, &event.records).await.unwrap()
}

fn options(horizon: i64, chunk: u32, announce: Duration) -> CompactOptions {
    CompactOptions {
        horizon,
        include_unattributed: false,
        chunk,
        announce,
        deadline: None,
        on_wait: None,
    }
}

fn week_ago() -> i64 {
    chrono::Utc::now().timestamp() - 7 * 86_400
}

pub async fn compaction_keeps_counts_and_nothing_counts_twice(engine: &str) {
    let Some(mut h) = Harness::new(engine).await else {
        return;
    };
    let old = old_records();
    for batch in old.chunks(17) {
        apply(&h.p, batch).await;
    }
    let before = snapshot(&h.p).await;
    let totals = h.p.store.totals().await.unwrap();
    assert!(before.2 > 0 && !before.3.is_empty(), "{before:?}");

    let report: CompactReport =
        h.p.store
            .compact(&options(week_ago(), 7, Duration::ZERO))
            .await
            .unwrap();
    assert!(report.finished && !report.resumed, "{report:?}");
    assert!(
        report.activity_dropped > 0 && report.llm_dropped == 6,
        "{report:?}"
    );
    let after = h.p.store.totals().await.unwrap();
    assert_eq!(
        after.ledger_rows,
        totals.ledger_rows - report.activity_dropped - report.llm_dropped
    );
    assert_eq!(
        after.unattributed, totals.unattributed,
        "unattributed rows are kept"
    );
    assert_eq!(snapshot(&h.p).await, before, "compaction moved a count");
    let audit = streamfold::audit::audit(&h.p.store, &streamfold::audit::NoProgress)
        .await
        .unwrap();
    assert!(audit.is_clean(), "{:#?}", audit.differences);

    // Everything old delivered again: skipped, nothing counted twice.
    let mut skipped = 0;
    for batch in old.chunks(23) {
        skipped += apply(&h.p, batch).await.before_horizon;
    }
    assert!(skipped > 0);
    assert_eq!(
        snapshot(&h.p).await,
        before,
        "a redelivery after compaction counted"
    );

    // New events count once, also when redelivered.
    let new = new_records("new", 10);
    let first = apply(&h.p, &new).await;
    assert_eq!((first.total().applied, first.before_horizon), (10, 0));
    apply(&h.p, &new).await;
    assert_eq!(
        h.p.store.totals().await.unwrap().events_counted,
        before.2 + 10
    );

    // A second run with the same horizon finds nothing more to drop and
    // keeps the new rows.
    let again =
        h.p.store
            .compact(&options(week_ago(), 1000, Duration::ZERO))
            .await
            .unwrap();
    assert_eq!((again.activity_dropped, again.llm_dropped), (0, 0));
    assert_eq!(
        h.p.store.totals().await.unwrap().events_counted,
        before.2 + 10
    );

    // Unattributed rows survived: linking `nobody` counts them, once.
    let mut linked = DIRECTORY.to_vec();
    linked.push((
        "integrations",
        r#"{"slack_id":{"S":"U_NOBODY"},"integration":{"S":"G"},"account_id":{"S":"nobody"}}"#,
    ));
    h.relink(&linked);
    let r = streamfold::pipeline::reattribute(&h.p, 100).await.unwrap();
    assert!(r.total().applied > 0);
    let linked_total = h.p.store.totals().await.unwrap().events_counted;
    assert_eq!(linked_total, before.2 + 10 + r.total().applied as i64);
    for batch in old.chunks(23) {
        apply(&h.p, batch).await;
    }
    assert_eq!(
        h.p.store.totals().await.unwrap().events_counted,
        linked_total
    );
}

/// A run cut short by its deadline resumes where it stopped, and ends with
/// the same ledger as an uninterrupted one.
pub async fn a_run_cut_short_resumes(engine: &str) {
    let Some(h) = Harness::new(engine).await else {
        return;
    };
    apply(&h.p, &old_records()).await;
    let before = snapshot(&h.p).await;
    let mut cut = options(week_ago(), 3, Duration::ZERO);
    cut.deadline = Some(std::time::Instant::now());
    let first = h.p.store.compact(&cut).await.unwrap();
    assert!(!first.finished && first.activity_dropped == 0, "{first:?}");
    // A later call with another horizon takes up the unfinished run.
    let rest =
        h.p.store
            .compact(&options(week_ago() - 86_400, 3, Duration::ZERO))
            .await
            .unwrap();
    assert!(
        rest.resumed && rest.finished && rest.run == first.run,
        "{rest:?}"
    );
    assert_eq!(rest.horizon, first.horizon);
    assert!(
        rest.activity_dropped > 0 && rest.llm_dropped == 6,
        "{rest:?}"
    );
    assert_eq!(snapshot(&h.p).await, before);
}

/// Three writers keep applying — old records again and new ones, each
/// batch twice — while a compaction deletes in small chunks; the counts end
/// as the old snapshot plus the new records counted once (checked against
/// the new records applied alone to a fresh SQLite database).
pub async fn compaction_beside_three_writers_counts_exactly(engine: &str) {
    let Some(h) = Harness::new(engine).await else {
        return;
    };
    let old = old_records();
    apply(&h.p, &old).await;
    let before = snapshot(&h.p).await;
    let opts = StoreOptions {
        // Every batch attempt reads the horizon from the database.
        horizon_refresh: Duration::ZERO,
        max_retries: 50,
        ..StoreOptions::default()
    };
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..3usize {
        let p = Pipeline {
            store: Store::open_with(&h.db.url, &opts).await.unwrap(),
            directory: LocalDirectory::load(h.dir.path()).unwrap().into(),
            default_tz: chrono_tz::Tz::UTC,
        };
        let old = old.clone();
        let new = new_records(&format!("w{w}"), 30);
        let done = done.clone();
        writers.push(tokio::spawn(async move {
            // While the compaction runs: old batches again, and new ones
            // twice each (the new ones over the first rounds).
            // Bounded, so that a failed compaction fails the test instead
            // of leaving the writers looping.
            let mut round = 0usize;
            while !done.load(std::sync::atomic::Ordering::SeqCst) && round < 400 {
                for (i, batch) in old.chunks(9).enumerate() {
                    if (i + w + round).is_multiple_of(2) {
                        apply(&p, batch).await;
                    }
                }
                for batch in new.chunks(4).skip(round * 3).take(3) {
                    apply(&p, batch).await;
                    apply(&p, batch).await;
                }
                round += 1;
                // SQLite's busy handler is not fair: leave the compaction
                // a moment to take the write lock.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            // After it: everything once more.
            for batch in old.chunks(9).chain(new.chunks(4)) {
                apply(&p, batch).await;
            }
        }));
    }
    let store = h.p.store.clone();
    let finished = done.clone();
    let compaction = tokio::spawn(async move {
        // The writers re-read the horizon per attempt: a short announcement
        // covers one batch transaction.
        let r = store
            .compact(&options(week_ago(), 2, Duration::from_millis(300)))
            .await
            .unwrap();
        finished.store(true, std::sync::atomic::Ordering::SeqCst);
        r
    });
    for w in writers {
        w.await.unwrap();
    }
    let report = compaction.await.unwrap();
    assert!(report.finished && report.activity_dropped > 0, "{report:?}");

    // The new records alone, applied to a fresh database.
    let reference = Harness::new("sqlite").await.unwrap();
    for w in 0..3usize {
        apply(&reference.p, &new_records(&format!("w{w}"), 30)).await;
    }
    let added = snapshot(&reference.p).await;
    let mut want = before.clone();
    for (cells, more) in [(&mut want.0, &added.0), (&mut want.1, &added.1)] {
        for (k, n) in more {
            *cells.entry(*k).or_default() += n;
        }
    }
    want.2 += added.2;
    assert_eq!(snapshot(&h.p).await, want, "{engine}");
    // What the chunks dropped beside the writers is in the bases: every
    // aggregate still recomputes from base + ledger.
    let audit = streamfold::audit::audit(&h.p.store, &streamfold::audit::NoProgress)
        .await
        .unwrap();
    assert!(audit.is_clean(), "{engine}: {:#?}", audit.differences);
}

/// The Lambda's scheduled invocation: the input shape of the EventBridge
/// schedule parses, a horizon under 7 days is refused, and a run stops
/// before the invocation's deadline (here inside its announcement, so
/// nothing is deleted yet) while the announced horizon already guards.
#[tokio::test]
async fn a_scheduled_compaction_stops_before_its_deadline() {
    use streamfold::sources::lambda::Invocation;
    use streamfold::sources::scheduled::{ScheduledError, run};
    let h = Harness::new("sqlite").await.unwrap();
    let old = old_records();
    apply(&h.p, &old).await;
    let before = snapshot(&h.p).await;
    let rows = h.p.store.totals().await.unwrap().ledger_rows;

    let stream: Invocation = serde_json::from_str(r#"{"Records": [{"eventID": "1"}]}"#).unwrap();
    assert!(stream.records.is_some_and(|r| r.len() == 1) && stream.streamfold.is_none());
    let too_recent: Invocation =
        serde_json::from_str(r#"{"streamfold": {"compact": {"older_than_days": 3}}}"#).unwrap();
    let e = run(
        &h.p.store,
        &too_recent.streamfold.unwrap(),
        std::time::Instant::now(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ScheduledError::TooRecent(3)), "{e}");
    assert!(serde_json::from_str::<Invocation>(r#"{"streamfold": {"compcat": {}}}"#).is_err());

    let task: Invocation =
        serde_json::from_str(r#"{"streamfold": {"compact": {"older_than_days": 30}}}"#).unwrap();
    let started = std::time::Instant::now();
    // 10 s are kept back from the deadline: half a second is left to run.
    let deadline = started + Duration::from_millis(10_500);
    let report = run(&h.p.store, &task.streamfold.unwrap(), deadline)
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        !report.finished && report.activity_dropped == 0,
        "{report:?}"
    );
    assert_eq!(h.p.store.totals().await.unwrap().ledger_rows, rows);
    assert!(h.p.store.compaction_horizon().await.unwrap().is_some());
    assert_eq!(snapshot(&h.p).await, before);
}

/// A compaction is refused while an export backfill is unfinished (here
/// stopped before its first file, as by Ctrl-C): announcing a horizon
/// would make the guard skip the items it has yet to read, for good. Once
/// `--resume` has finished it, the compaction runs and keeps its counts. A
/// `tail` job, whose open shards are never done, does not block it.
pub async fn compaction_is_refused_beside_an_unfinished_backfill(engine: &str) {
    use std::sync::atomic::AtomicBool;
    use streamfold::sources::backfill::Quiet;
    use streamfold::sources::export::export_backfill;
    let Some(h) = Harness::with_directory(engine, &fixture_directory()).await else {
        return;
    };
    let (dir, opts) = (crate::backfill::export_dir, crate::backfill::export_opts);
    let stopped = AtomicBool::new(true);
    let _ = export_backfill(&h.p, None, &opts(dir(), false), &Quiet, &stopped).await;
    let unfinished = h.p.store.unfinished_backfills().await.unwrap();
    assert_eq!(unfinished.len(), 1, "{unfinished:?}");
    let e =
        h.p.store
            .compact(&options(week_ago(), 100, Duration::ZERO))
            .await
            .unwrap_err();
    assert!(
        matches!(e, streamfold::store::StoreError::BackfillUnfinished { .. })
            && e.to_string().contains(&unfinished[0].0)
            && e.to_string().contains("--resume"),
        "{e}"
    );
    assert_eq!(h.p.store.compaction_horizon().await.unwrap(), None);

    // A tail's checkpoint (an open shard) does not count as a backfill.
    h.p.store
        .save_checkpoint(
            "tail:arn:aws:dynamodb:us-east-1:123456789012:table/x/stream/1",
            &streamfold::store::checkpoints::Checkpoint {
                part: "shardId-1".into(),
                position: Some("49".into()),
                items: 3,
                done: false,
            },
        )
        .await
        .unwrap();

    let go = AtomicBool::new(false);
    export_backfill(&h.p, None, &opts(dir(), true), &Quiet, &go)
        .await
        .unwrap();
    assert_eq!(h.p.store.unfinished_backfills().await.unwrap(), vec![]);
    let before = h.p.store.totals().await.unwrap().events_counted;
    assert_eq!(before, 45);
    let report =
        h.p.store
            .compact(&options(week_ago(), 100, Duration::ZERO))
            .await
            .unwrap();
    assert!(report.finished && report.activity_dropped > 0, "{report:?}");
    assert_eq!(h.p.store.totals().await.unwrap().events_counted, before);
}

#[macro_export]
macro_rules! compaction_tests {
    ($engine:expr $(, #[$attr:meta])*) => {
        #[tokio::test]
        $(#[$attr])*
        async fn compaction_is_refused_beside_an_unfinished_backfill() {
            $crate::compaction::compaction_is_refused_beside_an_unfinished_backfill($engine).await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn compaction_keeps_counts_and_nothing_counts_twice() {
            $crate::compaction::compaction_keeps_counts_and_nothing_counts_twice($engine).await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn a_compaction_run_cut_short_resumes() {
            $crate::compaction::a_run_cut_short_resumes($engine).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        $(#[$attr])*
        async fn compaction_beside_three_writers_counts_exactly() {
            $crate::compaction::compaction_beside_three_writers_counts_exactly($engine).await
        }
    };
}
