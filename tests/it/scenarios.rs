//! The exactly-once scenario suite, written once and run per engine.

use crate::support::*;
use serde_json::json;
use std::collections::BTreeMap;
use streamfold::pipeline::reattribute;

const A: &str = "2024-03-12T14:00:00Z"; // Tue 10:00 New York (EDT), Wed 01:00 Sydney
const B: &str = "2024-03-12T20:30:00Z"; // Tue 16:30 New York
const C: &str = "2024-03-16T03:59:00Z"; // Fri 23:59 New York

fn one(cell: (u8, u8)) -> BTreeMap<(u8, u8), i64> {
    BTreeMap::from([(cell, 1)])
}

pub async fn insert_counts_in_users_time_zone(engine: &str) {
    let Some(h) = Harness::new(engine).await else {
        return;
    };
    let r = h
        .apply(&[
            gh("INSERT", "100", "e1", "alice", A),
            gh("INSERT", "101", "e2", "bob", A),
        ])
        .await;
    assert_eq!(r.total().applied, 2);
    assert_eq!(h.cells("U_ALICE", Some("G")).await, one((2, 10)));
    // bob is linked through the legacy github_accounts index only.
    assert_eq!(h.cells("U_BOB", None).await, one((3, 1)));
}

pub async fn redelivered_batch_changes_nothing(engine: &str) {
    let Some(h) = Harness::new(engine).await else {
        return;
    };
    let batch = vec![
        gh("INSERT", "100", "e1", "alice", A),
        gh("INSERT", "101", "e2", "alice", B),
        gh("MODIFY", "102", "e1", "alice", C),
        gh("REMOVE", "103", "e2", "alice", B),
    ];
    let first = h.apply(&batch).await;
    assert_eq!(first.total().applied, 4);
    let before = h.cells("U_ALICE", None).await;
    assert_eq!(before, one((5, 23)));
    let again = h.apply(&batch).await;
    assert_eq!(again.total().unchanged, 4);
    assert_eq!(again.total().applied, 0);
    assert_eq!(h.cells("U_ALICE", None).await, before);
}

pub async fn insert_redelivered_after_its_modify_is_ignored(engine: &str) {
    let Some(h) = Harness::new(engine).await else {
        return;
    };
    h.apply(&[gh("INSERT", "100", "e1", "alice", A)]).await;
    h.apply(&[gh("MODIFY", "200", "e1", "alice", B)]).await;
    let late = h.apply(&[gh("INSERT", "100", "e1", "alice", A)]).await;
    assert_eq!(late.total().unchanged, 1);
    assert_eq!(h.cells("U_ALICE", None).await, one((2, 16)));
}

pub async fn modify_moves_the_count_only_when_the_time_changes(engine: &str) {
    let Some(h) = Harness::new(engine).await else {
        return;
    };
    h.apply(&[gh("INSERT", "100", "e1", "alice", A)]).await;
    assert_eq!(h.cells("U_ALICE", None).await, one((2, 10)));
    h.apply(&[gh("MODIFY", "200", "e1", "alice", B)]).await;
    assert_eq!(h.cells("U_ALICE", None).await, one((2, 16)));
    // A status-like change: same time, other attribute.
    let mut status_only = gh("MODIFY", "300", "e1", "alice", B);
    status_only["dynamodb"]["NewImage"]["eventType"] = json!({"S":"push"});
    let r = h.apply(&[status_only]).await;
    assert_eq!(r.total().applied, 1);
    assert_eq!(h.cells("U_ALICE", None).await, one((2, 16)));
    assert_eq!(h.total().await, 1);
}

pub async fn application_remove_retracts_and_ttl_remove_does_not(engine: &str) {
    let Some(h) = Harness::new(engine).await else {
        return;
    };
    h.apply(&[
        gh("INSERT", "100", "e1", "alice", A),
        gh("INSERT", "101", "e2", "alice", B),
    ])
    .await;
    assert_eq!(h.total().await, 2);
    let r = h
        .apply(&[
            gh("REMOVE", "200", "e1", "alice", A),
            ttl_remove(gh("REMOVE", "201", "e2", "alice", B)),
        ])
        .await;
    assert_eq!(r.total().applied, 1);
    assert_eq!(r.total().skipped, 1);
    assert_eq!(h.cells("U_ALICE", None).await, one((2, 16)));
    // The tombstone blocks a late, older INSERT from resurrecting the item.
    let late = h.apply(&[gh("INSERT", "100", "e1", "alice", A)]).await;
    assert_eq!(late.total().unchanged, 1);
    assert_eq!(h.cells("U_ALICE", None).await, one((2, 16)));
}

pub async fn one_batch_insert_modify_remove_nets_out(engine: &str) {
    let Some(h) = Harness::new(engine).await else {
        return;
    };
    h.apply(&[
        gh("INSERT", "100", "e1", "alice", A),
        gh("MODIFY", "101", "e1", "alice", B),
        gh("REMOVE", "102", "e1", "alice", B),
        gh("INSERT", "103", "e2", "alice", A),
        gh("MODIFY", "104", "e2", "alice", C),
    ])
    .await;
    assert_eq!(h.cells("U_ALICE", None).await, one((5, 23)));
}

pub async fn sequence_numbers_compare_numerically_beyond_u64(engine: &str) {
    let Some(h) = Harness::new(engine).await else {
        return;
    };
    // Both beyond u64; as text the newer one sorts first.
    let older = "99999999999999999999";
    let newer = "100000000000000000000";
    h.apply(&[gh("INSERT", older, "e1", "alice", A)]).await;
    h.apply(&[gh("MODIFY", newer, "e1", "alice", B)]).await;
    let stale = h.apply(&[gh("MODIFY", older, "e1", "alice", A)]).await;
    assert_eq!(stale.total().unchanged, 1);
    assert_eq!(h.cells("U_ALICE", None).await, one((2, 16)));
    // Real 28-digit sequence numbers.
    h.apply(&[gh(
        "INSERT",
        "4421584500000000017450439091",
        "e2",
        "alice",
        A,
    )])
    .await;
    h.apply(&[gh(
        "MODIFY",
        "4421584500000000017450439100",
        "e2",
        "alice",
        C,
    )])
    .await;
    h.apply(&[gh(
        "MODIFY",
        "4421584500000000017450439099",
        "e2",
        "alice",
        A,
    )])
    .await;
    assert_eq!(
        h.cells("U_ALICE", None).await,
        BTreeMap::from([((2, 16), 1), ((5, 23), 1)])
    );
}

pub async fn unlinked_user_is_kept_and_counted_once_after_reattribute(engine: &str) {
    let Some(mut h) = Harness::new(engine).await else {
        return;
    };
    let rec = gh("INSERT", "100", "e1", "carol", A);
    let r = h.apply(std::slice::from_ref(&rec)).await;
    assert_eq!(r.total().unattributed, 1);
    assert_eq!(h.total().await, 0);
    assert_eq!(h.p.store.totals().await.unwrap().unattributed, 1);

    // Not linked yet: re-attribution changes nothing.
    let none = reattribute(&h.p, 100).await.unwrap();
    assert_eq!((none.total().read, none.total().applied), (1, 0));
    assert_eq!(h.total().await, 0);

    let mut linked: Vec<(&str, &str)> = DIRECTORY.to_vec();
    linked.push((
        "integrations",
        r#"{"slack_id":{"S":"U_CAROL"},"integration":{"S":"G"},"account_id":{"S":"carol"}}"#,
    ));
    linked.push((
        "accounts",
        r#"{"slack_id":{"S":"U_CAROL"},"tz":{"S":"Asia/Tokyo"}}"#,
    ));
    h.relink(&linked);
    let done = reattribute(&h.p, 100).await.unwrap();
    assert_eq!(done.total().applied, 1);
    // Tue 14:00Z = Tue 23:00 Tokyo.
    assert_eq!(h.cells("U_CAROL", None).await, one((2, 23)));

    // Again, and a replay of the original record: still once.
    let again = reattribute(&h.p, 100).await.unwrap();
    assert_eq!(again.total().read, 0);
    let replayed = h.apply(&[rec]).await;
    assert_eq!(replayed.total().unchanged, 1);
    assert_eq!(h.total().await, 1);
    assert_eq!(h.p.store.totals().await.unwrap().unattributed, 0);
}

pub async fn replay_after_link_counts_an_unattributed_event_once(engine: &str) {
    let Some(mut h) = Harness::new(engine).await else {
        return;
    };
    let rec = gh("INSERT", "100", "e1", "carol", A);
    h.apply(std::slice::from_ref(&rec)).await;
    let mut linked: Vec<(&str, &str)> = DIRECTORY.to_vec();
    linked.push((
        "integrations",
        r#"{"slack_id":{"S":"U_CAROL"},"integration":{"S":"G"},"account_id":{"S":"carol"}}"#,
    ));
    h.relink(&linked);
    let r = h.apply(std::slice::from_ref(&rec)).await;
    assert_eq!(r.total().applied, 1);
    let r = h.apply(&[rec]).await;
    assert_eq!(r.total().unchanged, 1);
    let re = reattribute(&h.p, 100).await.unwrap();
    assert_eq!(re.total().read, 0);
    // No tz for carol: the default (UTC).
    assert_eq!(h.cells("U_CAROL", None).await, one((2, 14)));
}

pub async fn conversations_count_for_the_account_in_its_zone(engine: &str) {
    let Some(h) = Harness::new(engine).await else {
        return;
    };
    let msg = |seq: &str, resp: &str, ts: &str| {
        let item = json!({"conversation_id":{"S":"conv-1"},"response_id":{"S":resp},
            "associated_account":{"S":"acct-1"},"timestamp":{"S":ts},"status":{"S":"received"}});
        record(
            "acsd2p-dev-Conversations",
            "INSERT",
            seq,
            json!({"conversation_id":{"S":"conv-1"},"response_id":{"S":resp}}),
            Some(item),
            None,
        )
    };
    // Madrid switches to CEST on 2024-03-31 at 01:00Z.
    h.apply(&[
        msg("1", "r1", "2024-03-31T00:30:00Z"),
        msg("2", "r2", "2024-03-31T01:30:00Z"),
    ])
    .await;
    assert_eq!(
        h.cells("acct-1", Some("E")).await,
        BTreeMap::from([((0, 1), 1), ((0, 3), 1)])
    );
}

pub async fn llm_requests_are_identified_by_generation(engine: &str) {
    let Some(h) = Harness::new(engine).await else {
        return;
    };
    let t1 = "2024-01-31T23:59:59Z";
    let t2 = "2024-02-01T00:00:05Z";
    let r = h
        .apply(&[
            llm("INSERT", "10", "conv-1", t1, "0.5"),
            llm("MODIFY", "11", "conv-1", t1, "0.9"),
            llm("MODIFY", "12", "conv-1", t2, "0.7"),
            llm("INSERT", "13", "conv-unknown", t2, "0.7"),
        ])
        .await;
    assert_eq!(r.total().unattributed, 1);
    assert_eq!(h.p.store.totals().await.unwrap().llm_requests, 2);
    // TTL removal of the item does not retract; an application REMOVE
    // retracts only the generation in its OldImage.
    h.apply(&[ttl_remove(llm("REMOVE", "14", "conv-1", t2, "0.7"))])
        .await;
    assert_eq!(h.p.store.totals().await.unwrap().llm_requests, 2);
    h.apply(&[llm("REMOVE", "15", "conv-1", t2, "0.7")]).await;
    assert_eq!(h.p.store.totals().await.unwrap().llm_requests, 1);
    // Redelivery of everything changes nothing.
    let again = h
        .apply(&[
            llm("INSERT", "10", "conv-1", t1, "0.5"),
            llm("MODIFY", "12", "conv-1", t2, "0.7"),
        ])
        .await;
    assert_eq!(again.total().unchanged, 2);
    assert_eq!(h.p.store.totals().await.unwrap().llm_requests, 1);
}

pub async fn malformed_records_are_quarantined_and_the_batch_goes_on(engine: &str) {
    let Some(h) = Harness::new(engine).await else {
        return;
    };
    let good = gh("INSERT", "500", "good", "alice", A);
    let mut bad = Vec::new();
    let mut tweak = |seq: &str, f: &dyn Fn(&mut serde_json::Value)| {
        let mut r = gh("INSERT", seq, &format!("bad-{seq}"), "alice", A);
        f(&mut r);
        bad.push(r);
    };
    tweak("1", &|r| r["dynamodb"]["Keys"] = json!({}));
    tweak("2", &|r| {
        r["dynamodb"]["NewImage"]["username"] = json!({"N":"7"})
    });
    tweak("3", &|r| {
        r["dynamodb"]["NewImage"]["timestamp"] = json!({"S":"soon"})
    });
    tweak("4", &|r| {
        r["dynamodb"]["StreamViewType"] = json!("KEYS_ONLY")
    });
    tweak("5", &|r| {
        r["eventSourceARN"] = json!(arn("icarus-dev-unknown_table"))
    });
    tweak("6", &|r| {
        r["dynamodb"]["NewImage"]
            .as_object_mut()
            .unwrap()
            .remove("username");
    });
    tweak("7", &|r| {
        r["dynamodb"]["NewImage"]["timestamp"] = json!({"Z":"1"})
    });
    tweak("8", &|r| {
        r["dynamodb"]["NewImage"]["b"] = json!({"B":"%%%"})
    });
    tweak("9", &|r| r["eventName"] = json!("DELETE"));
    tweak("10", &|r| {
        r["dynamodb"]["SequenceNumber"] = json!("1".repeat(41))
    });
    tweak("11", &|r| {
        r["dynamodb"]["NewImage"]["timestamp"] = json!({"N":"99999999999999999999"})
    });
    tweak("12", &|r| {
        r["dynamodb"].as_object_mut().unwrap().remove("SizeBytes");
    });
    tweak("13", &|r| r["dynamodb"] = json!("not an object"));
    let want = [
        "no Keys",
        "type N, expected S",
        "bad time",
        "KEYS_ONLY",
        "unknown source table `icarus-dev-unknown_table`",
        "missing actor attribute `username`",
        "not a known DynamoDB prefix",
        "base64",
        "unknown eventName",
        "SequenceNumber",
        "out of range",
        "SizeBytes",
        "malformed stream record",
    ];
    let mut batch = bad.clone();
    batch.insert(6, good);
    let r = h.apply(&batch).await;
    assert_eq!(r.total().rejected, 13);
    assert_eq!(r.total().applied, 1);
    assert_eq!(h.cells("U_ALICE", None).await, one((2, 10)));

    let rows = h.p.store.rejects(100).await.unwrap();
    assert_eq!(rows.len(), 13);
    for (row, want) in rows.iter().zip(want) {
        assert!(
            row.reason.contains(want),
            "reason {:?} should mention {want:?}",
            row.reason
        );
    }
    // Every quarantined row names its record (its eventID survives even a
    // malformed body).
    for row in &rows {
        assert!(
            row.event_id
                .as_deref()
                .is_some_and(|e| e.starts_with("evt-")),
            "{row:?}"
        );
    }
    // Redelivery quarantines nothing twice and counts nothing twice.
    h.apply(&batch).await;
    assert_eq!(h.p.store.rejects(100).await.unwrap().len(), 13);
    assert_eq!(h.total().await, 1);
}

pub async fn missing_event_time_falls_back_to_approximate_creation(engine: &str) {
    let Some(h) = Harness::new(engine).await else {
        return;
    };
    let mut r = gh("INSERT", "100", "e1", "alice", A);
    r["dynamodb"]["NewImage"]
        .as_object_mut()
        .unwrap()
        .remove("timestamp");
    r["dynamodb"]["ApproximateCreationDateTime"] = json!(1710252000.75); // 2024-03-12T14:00:00.75Z
    let rep = h.apply(&[r]).await;
    assert_eq!(rep.total().time_fallback, 1);
    assert_eq!(h.cells("U_ALICE", None).await, one((2, 10)));
}

/// Run every scenario as its own test against one engine.
#[macro_export]
macro_rules! scenario_tests {
    ($engine:literal $(, #[$attr:meta])*) => {
        use $crate::scenarios as s;
        #[tokio::test]
        $(#[$attr])*
        async fn insert_counts_in_users_time_zone() {
            s::insert_counts_in_users_time_zone($engine).await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn redelivered_batch_changes_nothing() {
            s::redelivered_batch_changes_nothing($engine).await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn insert_redelivered_after_its_modify_is_ignored() {
            s::insert_redelivered_after_its_modify_is_ignored($engine).await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn modify_moves_the_count_only_when_the_time_changes() {
            s::modify_moves_the_count_only_when_the_time_changes($engine).await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn application_remove_retracts_and_ttl_remove_does_not() {
            s::application_remove_retracts_and_ttl_remove_does_not($engine).await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn one_batch_insert_modify_remove_nets_out() {
            s::one_batch_insert_modify_remove_nets_out($engine).await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn sequence_numbers_compare_numerically_beyond_u64() {
            s::sequence_numbers_compare_numerically_beyond_u64($engine).await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn unlinked_user_is_kept_and_counted_once_after_reattribute() {
            s::unlinked_user_is_kept_and_counted_once_after_reattribute($engine).await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn replay_after_link_counts_an_unattributed_event_once() {
            s::replay_after_link_counts_an_unattributed_event_once($engine).await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn conversations_count_for_the_account_in_its_zone() {
            s::conversations_count_for_the_account_in_its_zone($engine).await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn llm_requests_are_identified_by_generation() {
            s::llm_requests_are_identified_by_generation($engine).await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn malformed_records_are_quarantined_and_the_batch_goes_on() {
            s::malformed_records_are_quarantined_and_the_batch_goes_on($engine).await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn missing_event_time_falls_back_to_approximate_creation() {
            s::missing_event_time_falls_back_to_approximate_creation($engine).await
        }
    };
}
