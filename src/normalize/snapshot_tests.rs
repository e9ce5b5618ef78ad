//! A backfill snapshot (`record::snapshot`) normalises to the stream's
//! identity with the lowest version.

use crate::normalize::{ChangeKind, Normalized, normalize_change};
use crate::record::item::Item;
use crate::record::snapshot::*;

fn item(text: &str) -> Item<'_> {
    serde_json::from_str(text).unwrap()
}

#[test]
fn snapshot_has_the_lowest_version_and_the_stream_identity() {
    let text = r#"{"id":{"S":"gh-1"},"username":{"S":"alice"},"timestamp":{"S":"2024-03-12T14:00:00Z"},"eventType":{"S":"commit"}}"#;
    let rec =
        snapshot_change("icarus-prod-github_events", &["id"], item(text), "scan 0/1").unwrap();
    let Normalized::Change(c) = normalize_change(&rec) else {
        panic!("{:?}", normalize_change(&rec))
    };
    assert_eq!(c.version, crate::domain::Version::snapshot());
    assert!(matches!(c.kind, ChangeKind::Upsert { .. }));
    // The same item from the stream: same identity.
    let stream = super::test_support::record(
        "icarus-prod-github_events",
        "INSERT",
        "100",
        serde_json::from_str(text).unwrap(),
        serde_json::json!({"id":{"S":"gh-1"}}),
    );
    let Normalized::Change(s) = super::test_support::run(&stream) else {
        panic!()
    };
    assert_eq!(s.identity, c.identity);
    assert!(s.version > c.version);
}

#[test]
fn missing_key_attribute_is_named() {
    let it = item(r#"{"username":{"S":"alice"}}"#);
    let err = snapshot_change("t-github_events", &["id"], it, "file.json.gz:7").unwrap_err();
    assert!(
        err.contains("file.json.gz:7") && err.contains("`id`"),
        "{err}"
    );
}

#[test]
fn a_stream_record_cannot_claim_to_be_a_snapshot_by_accident() {
    // Only the exact eventSource makes a snapshot; a stream record with
    // another eventSource keeps its SequenceNumber version.
    let stream = super::test_support::record(
        "icarus-prod-github_events",
        "INSERT",
        "100",
        serde_json::json!({"id":{"S":"gh-1"},"username":{"S":"a"},"timestamp":{"S":"2024-03-12T14:00:00Z"}}),
        serde_json::json!({"id":{"S":"gh-1"}}),
    );
    let Normalized::Change(s) = super::test_support::run(&stream) else {
        panic!()
    };
    assert_ne!(s.version, crate::domain::Version::snapshot());
}
