//! The version rule where clocks tie or are missing (ARCHITECTURE
//! "Versions"): a stream record without `ApproximateCreationDateTime` is
//! quarantined with the reason, never applied below older records; Kinesis
//! changes of one item in one millisecond keep INSERT before REMOVE in every
//! delivery order.

use crate::support::*;
use serde_json::Value;

/// `alice-gh`'s GitHub event `id` at `ts`, as a stream record at second
/// `approx` (none: the field is left out).
fn github(event: &str, seq: &str, id: &str, ts: &str, approx: Option<f64>) -> Value {
    let mut r = gh(event, seq, id, "alice-gh", ts);
    let ddb = r["dynamodb"].as_object_mut().unwrap();
    match approx {
        Some(t) => {
            ddb.insert("ApproximateCreationDateTime".into(), t.into());
        }
        None => {
            ddb.remove("ApproximateCreationDateTime");
        }
    }
    r
}

/// Monday 2024-01-15 09:00 UTC and Tuesday 2024-01-16 13:00 UTC.
const MONDAY_09: &str = "2024-01-15T09:00:00Z";
const TUESDAY_13: &str = "2024-01-16T13:00:00Z";

/// The (dow, hour) cells of U01ALICE in UTC-equivalent terms are whatever
/// her zone makes them: compare against the same record applied alone.
async fn cells_of(engine: &str, records: &[Value]) -> std::collections::BTreeMap<(u8, u8), i64> {
    let h = Harness::with_directory(engine, &fixture_directory())
        .await
        .unwrap();
    h.apply(records).await;
    h.cells("U01ALICE", None).await
}

pub async fn a_record_without_a_clock_is_quarantined_not_applied_below(engine: &str) {
    let Some(h) = Harness::with_directory(engine, &fixture_directory()).await else {
        return;
    };
    let insert = github(
        "INSERT",
        "1000",
        "gh-clockless",
        MONDAY_09,
        Some(1_705_309_200.0),
    );
    h.apply(std::slice::from_ref(&insert)).await;
    let monday = h.cells("U01ALICE", None).await;
    assert_eq!(monday.values().sum::<i64>(), 1, "{engine}");

    // A later MODIFY (higher SequenceNumber) without the time, moving the
    // event to Tuesday: not applied at time 0 below the INSERT (where it
    // would be "unchanged" and lost without a trace), but quarantined.
    let modify = github("MODIFY", "2000", "gh-clockless", TUESDAY_13, None);
    let r = h.apply(std::slice::from_ref(&modify)).await;
    let t = r.total();
    assert_eq!((t.applied, t.unchanged, t.rejected), (0, 0, 1), "{engine}");
    assert!(
        r.rejections[0]
            .reason
            .contains("no ApproximateCreationDateTime"),
        "{engine}: {}",
        r.rejections[0].reason
    );
    let rows = h.p.store.rejected_raw(0, 10).await.unwrap();
    assert_eq!(rows.len(), 1, "{engine}");
    assert!(rows[0].1.contains(TUESDAY_13), "the raw record is kept");

    // A REMOVE without the time: quarantined too, not ignored.
    let remove = github("REMOVE", "3000", "gh-clockless", TUESDAY_13, None);
    let t = h.apply(std::slice::from_ref(&remove)).await.total();
    assert_eq!((t.applied, t.unchanged, t.rejected), (0, 0, 1), "{engine}");
    // A TTL expiry without the time is still just skipped.
    let expiry = ttl_remove(github("REMOVE", "3001", "gh-clockless", TUESDAY_13, None));
    let t = h.apply(std::slice::from_ref(&expiry)).await.total();
    assert_eq!((t.skipped, t.rejected), (1, 0), "{engine}");
    assert_eq!(h.cells("U01ALICE", None).await, monday, "{engine}");

    // The same MODIFY with its time moves the event, as the stream meant.
    let timed = github(
        "MODIFY",
        "2000",
        "gh-clockless",
        TUESDAY_13,
        Some(1_705_410_000.0),
    );
    assert_eq!(
        h.apply(std::slice::from_ref(&timed)).await.total().applied,
        1
    );
    let tuesday = cells_of(
        "sqlite",
        &[github(
            "INSERT",
            "1",
            "gh-other",
            TUESDAY_13,
            Some(1_705_410_000.0),
        )],
    )
    .await;
    assert_eq!(h.cells("U01ALICE", None).await, tuesday, "{engine}");
}

/// Eight items, each inserted and deleted in one millisecond (Kinesis at
/// `MILLISECOND` precision), delivered in both orders: none stays counted,
/// and each REMOVE is the state the ledger keeps.
pub async fn kinesis_insert_and_remove_in_one_millisecond(engine: &str) {
    let Some(h) = Harness::with_directory(engine, &fixture_directory()).await else {
        return;
    };
    let ms = 1_705_309_200_123u64;
    let mut batch = Vec::new();
    for i in 0..8 {
        let id = format!("gh-ms-{i}");
        let insert = gh(
            "INSERT",
            &format!("{}", 10 + 2 * i),
            &id,
            "alice-gh",
            MONDAY_09,
        );
        let remove = gh(
            "REMOVE",
            &format!("{}", 11 + 2 * i),
            &id,
            "alice-gh",
            MONDAY_09,
        );
        let mut pair = vec![
            millisecond(kinesis_record(&insert, ms, &format!("49{i}0"))),
            millisecond(kinesis_record(&remove, ms, &format!("49{i}1"))),
        ];
        // Half of them arrive REMOVE first (a retried shard, a replay).
        if i % 2 == 1 {
            pair.reverse();
        }
        batch.extend(pair);
    }
    // One batch, then each record alone in reverse order, then again.
    h.apply(&batch).await;
    for r in batch.iter().rev() {
        h.apply(std::slice::from_ref(r)).await;
    }
    assert_eq!(
        h.total().await,
        0,
        "{engine}: an INSERT outlived its REMOVE"
    );
    let t = h.apply(&batch).await.total();
    assert_eq!((t.applied, t.rejected), (0, 0), "{engine}");
}

/// `rec` (a Lambda Kinesis record from `kinesis_record`, stamped at
/// microsecond precision with a value in milliseconds) as Kinesis writes it
/// at `MILLISECOND` precision.
fn millisecond(mut rec: Value) -> Value {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let data = b64
        .decode(rec["kinesis"]["data"].as_str().unwrap())
        .unwrap();
    let mut change: Value = serde_json::from_slice(&data).unwrap();
    change["dynamodb"]["ApproximateCreationDateTimePrecision"] = "MILLISECOND".into();
    rec["kinesis"]["data"] = b64.encode(change.to_string()).into();
    rec
}

#[macro_export]
macro_rules! version_tests {
    ($engine:literal $(, #[$attr:meta])*) => {
        #[tokio::test]
        $(#[$attr])*
        async fn a_record_without_a_clock_is_quarantined_not_applied_below() {
            $crate::versions::a_record_without_a_clock_is_quarantined_not_applied_below($engine)
                .await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn kinesis_insert_and_remove_in_one_millisecond() {
            $crate::versions::kinesis_insert_and_remove_in_one_millisecond($engine).await
        }
    };
}
