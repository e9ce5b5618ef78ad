//! Kinesis Data Streams for DynamoDB as a source: the fixture events in the
//! Kinesis shape, duplicated and reordered, count exactly as in the
//! DynamoDB Streams shape; unreadable Kinesis data is quarantined by its
//! Kinesis sequence number; a failed batch is reported by it.

use crate::support::*;
use serde_json::Value;

/// The committed fixture events as batches of stream records, but for the
/// hostile file `06_bad_records.json`: its records are malformed as
/// DynamoDB stream records (no SequenceNumber, bad times), which has no
/// Kinesis counterpart.
fn fixture_batches() -> Vec<Vec<Value>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/events");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().contains("bad_records"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "{files:?}");
    files
        .iter()
        .map(|f| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
            v["Records"].as_array().unwrap().clone()
        })
        .collect()
}

/// A small deterministic shuffle (xorshift), so a failure reproduces.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

pub async fn kinesis_shape_counts_as_the_stream_shape(engine: &str) {
    let Some(streams) = Harness::with_directory(engine, &fixture_directory()).await else {
        return;
    };
    let kinesis = Harness::with_directory(engine, &fixture_directory())
        .await
        .unwrap();
    let batches = fixture_batches();
    for batch in &batches {
        streams.apply(batch).await;
    }
    let want = counted_state(&streams.p).await;
    assert!(
        !want.0.is_empty() && !want.1.is_empty(),
        "the fixtures count something"
    );

    // Every record once, a quarter of them twice (Kinesis duplicates), in a
    // shuffled order, in batches of 7.
    let records: Vec<Value> = batches.concat();
    let micros = kinesis_micros(&records);
    let mut delivered: Vec<Value> = Vec::new();
    for (i, (rec, us)) in records.iter().zip(&micros).enumerate() {
        delivered.push(kinesis_record(rec, *us, &format!("4959{:052}", 2 * i)));
        if i % 4 == 0 {
            delivered.push(kinesis_record(rec, *us, &format!("4959{:052}", 2 * i + 1)));
        }
    }
    shuffle(&mut delivered, 0x5eed_f01d);
    let mut unchanged = 0;
    for batch in delivered.chunks(7) {
        unchanged += kinesis.apply(batch).await.total().unchanged;
    }
    assert!(unchanged > 0, "duplicates were delivered");
    assert_eq!(counted_state(&kinesis.p).await, want, "engine {engine}");

    // Redelivered whole, in another order: nothing moves.
    shuffle(&mut delivered, 7);
    for batch in delivered.chunks(50) {
        let t = kinesis.apply(batch).await.total();
        assert_eq!(t.applied, 0, "engine {engine}");
    }
    assert_eq!(counted_state(&kinesis.p).await, want, "engine {engine}");
}

#[tokio::test]
async fn kinesis_shape_counts_as_the_stream_shape_sqlite() {
    kinesis_shape_counts_as_the_stream_shape("sqlite").await;
}

#[tokio::test]
#[ignore = "needs STREAMFOLD_TEST_MYSQL_URL"]
async fn kinesis_shape_counts_as_the_stream_shape_mysql() {
    kinesis_shape_counts_as_the_stream_shape("mysql").await;
}

#[tokio::test]
#[ignore = "needs STREAMFOLD_TEST_POSTGRES_URL"]
async fn kinesis_shape_counts_as_the_stream_shape_postgres() {
    kinesis_shape_counts_as_the_stream_shape("postgres").await;
}

#[tokio::test]
async fn unreadable_kinesis_data_is_quarantined_by_its_sequence_number() {
    let h = Harness::new("sqlite").await.unwrap();
    let good = kinesis_record(
        &gh("INSERT", "100", "e1", "alice", "2024-03-12T14:00:00Z"),
        1_710_063_000_000_000,
        "49590000000000000000000000000000000000000000000000000001",
    );
    let mut bad = kinesis_record(
        &gh("INSERT", "101", "e2", "alice", "2024-03-12T15:00:00Z"),
        1_710_063_000_000_001,
        "49590000000000000000000000000000000000000000000000000002",
    );
    bad["kinesis"]["data"] = Value::String("bm90IGpzb24=".into()); // "not json"
    let mut old_precision = kinesis_record(
        &gh("INSERT", "102", "e3", "alice", "2024-03-12T16:00:00Z"),
        1_710_063_000_000_002,
        "49590000000000000000000000000000000000000000000000000003",
    );
    // A precision nobody documents: refused rather than guessed.
    let data = old_precision["kinesis"]["data"]
        .as_str()
        .unwrap()
        .to_string();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = String::from_utf8(b64.decode(data).unwrap()).unwrap();
    old_precision["kinesis"]["data"] =
        Value::String(b64.encode(text.replace("\"MICROSECOND\"", "\"NANOSECOND\"")));
    let report = h.apply(&[good, bad, old_precision]).await;
    let t = report.total();
    assert_eq!((t.applied, t.rejected), (1, 2), "{report:?}");
    assert_eq!(h.total().await, 1);
    let rejects = h.p.store.rejects(10).await.unwrap();
    let text = format!("{rejects:?}");
    assert!(
        text.contains("49590000000000000000000000000000000000000000000000000002")
            && text.contains("not a DynamoDB change record"),
        "{text}"
    );
    assert!(text.contains("NANOSECOND"), "{text}");
}
