//! Load scenarios, written once and run per engine: four consumers
//! applying the same histories at once agree with the ground truth, and a
//! maximal Lambda batch costs a bounded number of statements.

use crate::support::*;
use serde_json::json;
use std::collections::BTreeMap;

/// Four consumers apply overlapping, shuffled, redelivered batches of the
/// same item histories at once; the counts must equal the ground truth.
pub async fn concurrent_consumers_agree_with_ground_truth(engine: &str) {
    let Some(h) = Harness::new(engine).await else {
        return;
    };
    let users = ["alice", "bob"];
    let times = [
        "2024-03-12T14:00:00Z",
        "2024-03-12T20:30:00Z",
        "2024-03-16T03:59:00Z",
        "2024-03-17T09:00:00Z",
    ];
    let mut records = Vec::new();
    let mut truth: BTreeMap<(&str, &str), i64> = BTreeMap::new(); // (user, time) → count
    for i in 0..120usize {
        let id = format!("item-{i}");
        let user = users[i % 2];
        let base = 1_000 + i * 10;
        let t0 = times[i % 4];
        let t1 = times[(i / 4) % 4];
        records.push(gh("INSERT", &base.to_string(), &id, user, t0));
        let mut last = Some(t0);
        if i % 3 != 0 {
            records.push(gh("MODIFY", &(base + 1).to_string(), &id, user, t1));
            last = Some(t1);
        }
        if i % 5 == 0 {
            records.push(gh("REMOVE", &(base + 2).to_string(), &id, user, t1));
            last = None;
        }
        if let Some(t) = last {
            *truth.entry((user, t)).or_default() += 1;
        }
    }
    let p = std::sync::Arc::new(h.p);
    let mut tasks = Vec::new();
    for worker in 0..4u64 {
        let p = p.clone();
        let mut mine = records.clone();
        // Deterministic shuffle per worker (LCG).
        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ worker;
        for k in (1..mine.len()).rev() {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            mine.swap(k, (x >> 33) as usize % (k + 1));
        }
        tasks.push(tokio::spawn(async move {
            for batch in mine.chunks(25) {
                let text = json!({ "Records": batch }).to_string();
                let event = streamfold::record::lambda_event::parse_event(&text).unwrap();
                // Redelivery: every batch twice.
                for _ in 0..2 {
                    streamfold::pipeline::run_batch(&p, &event.records)
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Ground truth in each user's zone.
    let zone = |u: &str| {
        if u == "alice" {
            chrono_tz::Tz::America__New_York
        } else {
            chrono_tz::Tz::Australia__Sydney
        }
    };
    for (user, slack) in [("alice", "U_ALICE"), ("bob", "U_BOB")] {
        let mut want: BTreeMap<(u8, u8), i64> = BTreeMap::new();
        for ((u, t), n) in &truth {
            if *u == user {
                let at = chrono::DateTime::parse_from_rfc3339(t).unwrap().to_utc();
                let b = streamfold::aggregate::bucket::bucket(at, zone(user));
                *want.entry((b.dow, b.hour)).or_default() += n;
            }
        }
        let got = cells(&p, slack, None).await;
        assert_eq!(got, want, "{user} on {engine}");
    }
}

/// A 10,000-record Lambda batch (the maximum) costs a handful of statements
/// and, delivered again, changes nothing.
pub async fn a_maximal_batch_is_a_handful_of_statements(engine: &str) {
    let Some(h) = Harness::with_directory(engine, &crate::support::fixture_directory()).await
    else {
        return;
    };
    let events = streamfold::bench::generate_events(10_000, 10_000, 11);
    let event = streamfold::record::lambda_event::parse_event(&events[0]).unwrap();
    let first = streamfold::pipeline::run_batch(&h.p, &event.records)
        .await
        .unwrap();
    let t = first.total();
    assert_eq!(t.read, 10_000);
    assert_eq!(t.rejected, 0);
    assert!(t.applied > 5_000, "{t:?}");
    // PostgreSQL: BEGIN, the ledger rows read under lock, the plan written
    // in one statement, COMMIT. MySQL: the identities bound, the
    // transaction begun with the locked read, the plan's documents bound,
    // the writes with COMMIT (`store::batch::mysql`).
    // SQLite's statements are in-process calls; its LLM report update adds
    // a read-modify-write (no exact decimal type), and its statements are
    // chunked at 32k parameters.
    let bound = match engine {
        "postgres" => 4,
        "sqlite" => 20,
        _ => 4,
    };
    assert!(
        first.statements <= bound,
        "{} statements on {engine}",
        first.statements
    );
    let counted = h.total().await;
    assert!(counted > 0);
    let again = streamfold::pipeline::run_batch(&h.p, &event.records)
        .await
        .unwrap();
    assert_eq!(
        again.total().applied + again.total().unattributed,
        0,
        "{:?}",
        again.total()
    );
    assert_eq!(h.total().await, counted);
}

/// A batch of the widest rows the bounds allow (actors of 255 four-byte
/// characters, kept unattributed in the ledger) is larger than one
/// statement should carry on MySQL: it is sent in parts, and still counts
/// each record once, on a first delivery and a redelivery.
pub async fn a_batch_of_the_widest_rows_counts_once(engine: &str) {
    let Some(h) = Harness::with_directory(engine, &crate::support::fixture_directory()).await
    else {
        return;
    };
    let wide: String = "\u{1F600}".repeat(255 - 6);
    let records: Vec<_> = (0..8000usize)
        .map(|i| {
            let user = if i % 2 == 0 {
                "alice-gh".to_string()
            } else {
                format!("{i:06}{wide}")
            };
            gh(
                "INSERT",
                &(1000 + i).to_string(),
                &format!("wide-{i}"),
                &user,
                "2024-03-12T14:00:00Z",
            )
        })
        .collect();
    let first = h.apply(&records).await;
    let t = first.total();
    assert_eq!((t.read, t.rejected), (8000, 0), "{t:?}");
    assert_eq!((t.applied, t.unattributed), (4000, 4000), "{t:?}");
    if engine == "mysql" {
        // About 5 MiB of JSON: two SETs of the batch's rows, where a
        // batch in one part costs four round trips.
        assert!(first.statements > 4, "{} statements", first.statements);
    }
    assert_eq!(h.total().await, 4000);
    let again = h.apply(&records).await.total();
    assert_eq!((again.applied, again.unattributed), (0, 0), "{again:?}");
    assert_eq!(h.total().await, 4000);
}

/// Run every load scenario as its own test against one engine.
#[macro_export]
macro_rules! load_tests {
    ($engine:literal $(, #[$attr:meta])*) => {
        #[tokio::test]
        $(#[$attr])*
        async fn a_maximal_batch_is_a_handful_of_statements() {
            $crate::load::a_maximal_batch_is_a_handful_of_statements($engine).await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn a_batch_of_the_widest_rows_counts_once() {
            $crate::load::a_batch_of_the_widest_rows_counts_once($engine).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        $(#[$attr])*
        async fn concurrent_consumers_agree_with_ground_truth() {
            $crate::load::concurrent_consumers_agree_with_ground_truth($engine).await
        }
    };
}
