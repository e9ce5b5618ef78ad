//! `rejects retry`: quarantined records re-run after a fix leave the
//! quarantine once applied, are counted once, and a second retry changes
//! nothing; records still bad stay with their reason.

use crate::support::*;
use streamfold::rejects::retry_rejects;
use streamfold::store::RejectedRecord;

#[tokio::test]
async fn retry_applies_what_is_now_good_once_and_keeps_the_rest() {
    let Some(h) = Harness::new("sqlite").await else {
        return;
    };
    // A bad record, quarantined by the pipeline.
    let mut bad = gh("INSERT", "100", "e-bad", "alice", "2024-03-12T14:00:00Z");
    bad["dynamodb"]["NewImage"]["timestamp"] = serde_json::json!({"S": "next thursday"});
    let r = h.apply(&[bad]).await;
    assert_eq!(r.total().rejected, 1);
    // A good record that an older release had quarantined (as if a
    // normaliser fix now accepts it).
    let good = gh("INSERT", "101", "e-good", "alice", "2024-03-12T14:00:00Z");
    let row = RejectedRecord {
        source: streamfold::domain::SourceKind::from_table_name("github_events"),
        table: Some("icarus-dev-github_events".into()),
        event_id: Some("evt-101".into()),
        sequence_number: Some("101".into()),
        reason: "unrecognised time format (old release)".into(),
        raw: String::new(),
        key: [0; 16],
    }
    .with_raw(&good.to_string());
    h.p.store
        .apply(&Default::default(), std::slice::from_ref(&row))
        .await
        .unwrap();
    assert_eq!(h.p.store.totals().await.unwrap().rejected, 2);
    assert_eq!(h.total().await, 0);

    let r = retry_rejects(&h.p, &[], 100).await.unwrap();
    assert_eq!((r.retried, r.resolved), (2, 1));
    assert_eq!(r.still_rejected.len(), 1);
    assert!(
        r.still_rejected[0].1.contains("unrecognised time format"),
        "{:?}",
        r.still_rejected
    );
    assert_eq!(h.total().await, 1);
    let listed = h.p.store.rejects(10).await.unwrap();
    assert_eq!(listed.len(), 1);

    // Again: the bad one is retried and stays; nothing is counted twice.
    let r = retry_rejects(&h.p, &[], 100).await.unwrap();
    assert_eq!((r.retried, r.resolved), (1, 0));
    assert_eq!(h.total().await, 1);
    // Retrying by an id that is not quarantined does nothing.
    let r = retry_rejects(&h.p, &[999], 100).await.unwrap();
    assert_eq!(r.retried, 0);
}
