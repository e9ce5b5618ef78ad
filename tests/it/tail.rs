//! `streamfold tail` against moto's DynamoDB Streams: a table's stream is
//! followed into the store, checkpointed per shard, and a second run
//! resumes after the last applied record.

use crate::moto::Moto;
use crate::support::Harness;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use streamfold::sources::backfill::Quiet;
use streamfold::sources::tail::{StartAt, TailOptions, job_name, tail};

const TABLE: &str = "icarus-dev-github_events";

fn streams_client(endpoint: &str) -> aws_sdk_dynamodbstreams::Client {
    aws_sdk_dynamodbstreams::Client::new(&crate::moto::moto_config(endpoint))
}

async fn put(c: &aws_sdk_dynamodb::Client, id: &str, user: &str, ts: &str) {
    let item: HashMap<String, AttributeValue> = [
        ("id", id),
        ("username", user),
        ("timestamp", ts),
        ("eventType", "commit"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), AttributeValue::S(v.to_string())))
    .collect();
    c.put_item()
        .table_name(TABLE)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

fn opts() -> TailOptions {
    TailOptions {
        table: TABLE.into(),
        start: StartAt::TrimHorizon,
        poll: Duration::from_millis(50),
        until_idle: Some(2),
    }
}

#[tokio::test]
#[ignore = "needs STREAMFOLD_TEST_MOTO"]
async fn tail_follows_the_stream_and_resumes_from_checkpoints() {
    let Some(moto) = Moto::start() else { return };
    let (c, s) = (
        crate::moto::dynamodb_client(&moto.endpoint),
        streams_client(&moto.endpoint),
    );
    crate::moto::create_id_table(&c, TABLE, true).await;
    let Some(h) = Harness::new("sqlite").await else {
        return;
    };
    // 2024-03-12T14:00:00Z is Tue 10:00 in New York (alice), Wed 01:00 in
    // Sydney (bob).
    put(&c, "e1", "alice", "2024-03-12T14:00:00Z").await;
    put(&c, "e2", "bob", "2024-03-12T14:00:00Z").await;
    put(&c, "e3", "alice", "2024-03-12T15:00:00Z").await;
    let stop = AtomicBool::new(false);
    let first = tail(&h.p, &c, &s, &opts(), &Quiet, &stop).await.unwrap();
    assert_eq!(first.items, 3);
    assert_eq!(first.report.total().applied, 3);
    assert_eq!(h.total().await, 3);

    // The stream goes on: a move, a removal, a new item. The next run reads
    // only those.
    put(&c, "e1", "alice", "2024-03-16T03:59:00Z").await;
    c.delete_item()
        .table_name(TABLE)
        .key("id", AttributeValue::S("e3".into()))
        .send()
        .await
        .unwrap();
    put(&c, "e4", "bob", "2024-03-12T14:00:00Z").await;
    let second = tail(&h.p, &c, &s, &opts(), &Quiet, &stop).await.unwrap();
    assert_eq!(second.items, 3, "{:?}", second.report.total());
    assert_eq!(h.total().await, 3);
    assert_eq!(
        h.cells("U_ALICE", None).await,
        std::collections::BTreeMap::from([((5, 23), 1)]),
        "alice: e1 moved to Fri 23:59, e3 removed"
    );
    assert_eq!(h.cells("U_BOB", None).await.values().sum::<i64>(), 2);
    // Checkpoints name the last applied sequence number of each shard.
    let table = c.describe_table().table_name(TABLE).send().await.unwrap();
    let arn = table.table().unwrap().latest_stream_arn().unwrap();
    let saved = h.p.store.checkpoints(&job_name(arn)).await.unwrap();
    assert!(!saved.is_empty() && saved.iter().all(|c| c.position.is_some()));
    assert_eq!(saved.iter().map(|c| c.items).sum::<i64>(), 6);
    // Nothing new: a third run applies nothing.
    let third = tail(&h.p, &c, &s, &opts(), &Quiet, &stop).await.unwrap();
    assert_eq!(third.items, 0);
}
