//! No record blocks a batch (issue 18, fault 3): values at and past every
//! column's bound, NUL characters, over-long naming metadata and sums past
//! a column's range, from records and from the directory, in one batch on
//! every engine — the batch applies, each odd record is quarantined or
//! counted as stated, the others are counted. The safety net for what no
//! bound foresaw is in `safety_net.rs`.

use crate::llm_exact::{Req, llm_record};
use crate::support::{self, Harness};
use serde_json::{Value, json};

pub(crate) const TS: &str = "2024-03-10T09:30:00Z";

pub(crate) fn s(n: usize, c: &str) -> String {
    c.repeat(n)
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn conversation(seq: u64, account: &str) -> Value {
    let resp = format!("resp-{seq}");
    support::record(
        "acsd2p-dev-Conversations",
        "INSERT",
        &seq.to_string(),
        json!({"conversation_id":{"S":"c-odd"},"response_id":{"S":resp}}),
        Some(
            json!({"conversation_id":{"S":"c-odd"},"response_id":{"S":resp},
            "associated_account":{"S":account},"timestamp":{"S":TS}}),
        ),
        None,
    )
}

pub(crate) fn llm(seq: u64, conv: &str, f: impl FnOnce(&mut Req)) -> Value {
    let mut r = Req {
        conv: conv.to_string(),
        generated_at: "2024-03-10T09:30:00Z".into(),
        cost: "0.25",
        quality: Some("0.5"),
        model: "m1",
        function: "summarize",
        tokens: 10,
        response_ms: 100,
    };
    f(&mut r);
    llm_record("INSERT", seq, &r)
}

/// Slack IDs and accounts of the directory, at and past their bounds.
pub(crate) fn directory() -> Vec<(&'static str, &'static str)> {
    let link = |gh: &str, slack: &str| {
        (
            "integrations",
            leak(
                json!({"slack_id":{"S":slack},"integration":{"S":"G"},"account_id":{"S":gh}})
                    .to_string(),
            ),
        )
    };
    let thread = |conv: &str, account: &str| {
        (
            "Threads",
            leak(
                json!({"conversation_id":{"S":conv},"associated_account":{"S":account}})
                    .to_string(),
            ),
        )
    };
    vec![
        link("gh-ok", "U_OK"),
        link("gh-64", &format!("U{}", s(63, "é"))),
        link("gh-65", &format!("U{}", s(64, "A"))),
        link("gh-nul", "U_N\u{0}UL"),
        thread("conv-ok", "acct-ok"),
        thread("conv-255", &s(255, "🦀")),
        thread("conv-256", &s(256, "a")),
        thread("conv-nul", "acct\u{0}x"),
    ]
}

/// Outcome expected of each record of the corpus.
#[derive(Debug, PartialEq)]
enum Want {
    Counted,
    Unattributed,
    Quarantined(&'static str),
}

fn corpus() -> Vec<(Value, Want, &'static str)> {
    use Want::*;
    let gh = |seq: u64, user: &str| {
        support::gh("INSERT", &seq.to_string(), &format!("e{seq}"), user, TS)
    };
    let mut long_arn = gh(30, "gh-ok");
    long_arn["eventSourceARN"] = json!(support::arn(&format!("icarus-dev-{}", s(300, "x"))));
    let mut long_seq = gh(31, "gh-ok");
    long_seq["dynamodb"]["SequenceNumber"] = json!(s(100, "9"));
    let mut long_event_id = gh(32, "gh-ok");
    long_event_id["eventID"] = json!(s(1000, "é"));
    long_event_id["dynamodb"]["NewImage"]["timestamp"] = json!({"S":"not a time"});
    let mut nul_table = gh(33, "gh-ok");
    nul_table["eventSourceARN"] = json!(support::arn("icarus-dev-gith\u{0}ub_events"));
    vec![
        (conversation(1, "acct-ok"), Counted, "ordinary e-mail"),
        (
            conversation(2, &s(64, "🦀")),
            Counted,
            "account of 64 four-byte characters",
        ),
        (
            conversation(3, &s(65, "a")),
            Quarantined("longer than 64"),
            "account of 65",
        ),
        (
            conversation(4, &s(100, "a")),
            Quarantined("longer than 64"),
            "account of 100",
        ),
        (
            conversation(5, "acct\u{0}x"),
            Quarantined("NUL"),
            "account with NUL",
        ),
        (gh(10, "gh-ok"), Counted, "linked GitHub user"),
        (gh(11, &s(255, "u")), Unattributed, "username of 255"),
        (
            gh(12, &s(256, "u")),
            Quarantined("longer than 255"),
            "username of 256",
        ),
        (gh(13, "gh\u{0}x"), Quarantined("NUL"), "username with NUL"),
        (gh(14, "gh-64"), Counted, "Slack ID of 64"),
        (gh(15, "gh-65"), Unattributed, "Slack ID of 65 (no link)"),
        (
            gh(16, "gh-nul"),
            Unattributed,
            "Slack ID with NUL (no link)",
        ),
        (llm(20, "conv-ok", |_| {}), Counted, "ordinary LLM request"),
        (
            llm(21, "conv-255", |_| {}),
            Counted,
            "Threads account of 255",
        ),
        (
            llm(22, "conv-256", |_| {}),
            Unattributed,
            "Threads account of 256",
        ),
        (
            llm(23, "conv-nul", |_| {}),
            Unattributed,
            "Threads account with NUL",
        ),
        (
            llm(24, &s(256, "c"), |_| {}),
            Quarantined("longer than 255"),
            "conversation_id of 256",
        ),
        (
            llm(25, "conv-ok", |r| r.model = leak(s(256, "m"))),
            Quarantined("longer than 255"),
            "model of 256",
        ),
        (
            llm(26, "conv-ok", |r| r.model = "m\u{0}1"),
            Quarantined("NUL"),
            "model with NUL",
        ),
        (
            llm(27, "conv-ok", |r| {
                r.function = leak(s(255, "ƒ"));
                r.generated_at = "2024-03-10T09:31:00Z".into();
            }),
            Counted,
            "function of 255",
        ),
        (
            llm(28, "conv-ok", |r| {
                r.cost = "9999999999.999999999999999999";
                r.generated_at = "2024-03-10T09:32:00Z".into();
            }),
            Counted,
            "cost at its bound",
        ),
        (
            llm(29, "conv-ok", |r| {
                r.cost = "10000000000";
                r.generated_at = "2024-03-10T09:33:00Z".into();
            }),
            Quarantined("out of range"),
            "cost past its bound",
        ),
        (
            long_arn,
            Quarantined("unknown source table"),
            "table name of 311",
        ),
        (
            long_seq,
            Quarantined("SequenceNumber"),
            "sequence number of 100 digits",
        ),
        (
            long_event_id,
            Quarantined("bad time"),
            "event id of 1000 characters",
        ),
        (
            nul_table,
            Quarantined("unknown source table"),
            "table name with NUL",
        ),
    ]
}

pub async fn odd_values_never_block_a_batch(engine: &str) {
    let Some(h) = Harness::with_directory(engine, &directory()).await else {
        return;
    };
    let corpus = corpus();
    let records: Vec<Value> = corpus.iter().map(|(r, _, _)| r.clone()).collect();
    let report = h.apply(&records).await;
    let t = report.total();
    let rejected: Vec<(usize, &str)> = report
        .rejections
        .iter()
        .map(|r| (r.index, r.reason.as_str()))
        .collect();
    for (i, (_, want, what)) in corpus.iter().enumerate() {
        let got = rejected.iter().find(|(j, _)| *j == i);
        match (want, got) {
            (Want::Quarantined(why), Some((_, reason))) => {
                assert!(reason.contains(why), "{engine}: {what}: {reason}")
            }
            (Want::Quarantined(_), None) => panic!("{engine}: {what} was not quarantined"),
            (_, Some((_, reason))) => panic!("{engine}: {what} quarantined: {reason}"),
            (_, None) => {}
        }
    }
    let count = |w: fn(&Want) -> bool| corpus.iter().filter(|(_, x, _)| w(x)).count() as u64;
    assert_eq!(
        t.rejected,
        count(|w| matches!(w, Want::Quarantined(_))),
        "{engine}"
    );
    assert_eq!(
        t.unattributed,
        count(|w| *w == Want::Unattributed),
        "{engine}"
    );
    assert_eq!(t.applied, count(|w| *w == Want::Counted), "{engine}");
    assert_eq!(report.splits, 0, "{engine}: bounds are checked before SQL");

    // What was counted is where it belongs.
    let p = &h.p.store;
    assert_eq!(
        p.heatmap(&s(64, "🦀"), None).await.unwrap().len(),
        1,
        "{engine}"
    );
    let slack_64 = format!("U{}", s(63, "é"));
    assert_eq!(
        p.heatmap(&slack_64, None).await.unwrap().len(),
        1,
        "{engine}"
    );
    let reports = crate::llm_exact::reports(p).await;
    let long_account = (s(255, "🦀"), "2024-03".to_string());
    assert!(
        reports.contains_key(&long_account),
        "{engine}: {:?}",
        reports.keys()
    );
    // Quarantine rows hold clipped metadata; the raw record is whole.
    let rows = p.rejected_raw(0, 100).await.unwrap();
    assert_eq!(rows.len() as u64, t.rejected, "{engine}");
    let event_id = rows
        .iter()
        .find(|(r, _)| r.event_id.as_deref().is_some_and(|e| e.starts_with("éé")))
        .expect("the long event id's record is quarantined");
    assert_eq!(event_id.0.event_id.as_ref().unwrap().chars().count(), 255);
    assert!(event_id.1.contains(&s(1000, "é")), "raw record kept whole");
    assert!(rows.iter().any(|(r, _)| {
        r.sequence_number
            .as_deref()
            .is_some_and(|q| q.chars().count() == 64)
    }));
    // Applying the same batch again changes nothing and refuses nothing new.
    let again = h.apply(&records).await;
    assert_eq!(again.total().applied, 0, "{engine}");
    assert_eq!(
        p.rejected_raw(0, 100).await.unwrap().len() as u64,
        t.rejected
    );
}

/// Two requests of one report whose token sum passes the 64-bit columns:
/// the first is counted, the second isolated and quarantined; the batch's
/// other records are counted.
pub async fn a_sum_past_its_column_is_isolated(engine: &str) {
    let Some(h) = Harness::with_directory(engine, &directory()).await else {
        return;
    };
    let big = |seq: u64, at: &str| {
        llm(seq, "conv-ok", |r| {
            r.tokens = i64::MAX;
            r.generated_at = at.to_string();
        })
    };
    let records = vec![
        support::gh("INSERT", "1", "e1", "gh-ok", TS),
        big(2, "2024-03-10T09:30:00Z"),
        support::gh("INSERT", "3", "e3", "gh-ok", "2024-03-11T09:30:00Z"),
        big(4, "2024-03-10T09:31:00Z"),
        support::gh("INSERT", "5", "e5", "gh-ok", "2024-03-12T09:30:00Z"),
    ];
    let report = h.apply(&records).await;
    let t = report.total();
    assert_eq!((t.applied, t.rejected), (4, 1), "{engine}: {report:?}");
    assert!(report.splits > 0, "{engine}");
    let reason = &report.rejections[0].reason;
    assert!(
        reason.starts_with("the database refused this record"),
        "{engine}: {reason}"
    );
    assert_eq!(
        h.total().await,
        3,
        "{engine}: the GitHub events are counted"
    );
    let reports = crate::llm_exact::reports(&h.p.store).await;
    let r = &reports[&("acct-ok".to_string(), "2024-03".to_string())];
    assert_eq!((r.requests, r.tokens), (1, i64::MAX), "{engine}");
}

/// A record larger than MariaDB's default packet (16 MiB): quarantined
/// with its first bytes, its length and its hash, while the batch's other
/// record is counted and the next batch applies on the same connection.
/// Quarantining it again is a no-op (the key hashes the whole record).
pub async fn a_record_past_the_packet_limit_is_quarantined(engine: &str) {
    let Some(h) = Harness::with_directory(engine, &crate::support::fixture_directory()).await
    else {
        return;
    };
    let huge_login = "x".repeat(17 << 20);
    let batch = vec![
        crate::support::gh(
            "INSERT",
            "100",
            "huge-1",
            &huge_login,
            "2024-01-15T09:00:00Z",
        ),
        crate::support::gh("INSERT", "101", "ok-1", "alice-gh", "2024-01-15T09:00:00Z"),
    ];
    let report = h.apply(&batch).await;
    let t = report.total();
    assert_eq!((t.applied, t.rejected), (1, 1), "{engine}: {report:?}");
    let rows = h.p.store.rejected_raw(0, 10).await.unwrap();
    assert_eq!(rows.len(), 1, "{engine}");
    let (listing, raw) = &rows[0];
    assert_eq!(raw.len(), streamfold::bounds::REJECT_RAW, "{engine}");
    assert!(
        listing.reason.contains("bytes: its first") && listing.reason.contains("xxh3-128"),
        "{engine}: {}",
        listing.reason
    );
    // The next batch, and the same one again, apply normally.
    let next = vec![crate::support::gh(
        "INSERT",
        "102",
        "ok-2",
        "alice-gh",
        "2024-01-16T09:00:00Z",
    )];
    assert_eq!(h.apply(&next).await.total().applied, 1, "{engine}");
    let again = h.apply(&batch).await.total();
    assert_eq!((again.applied, again.rejected), (0, 1), "{engine}");
    assert_eq!(h.p.store.rejected_raw(0, 10).await.unwrap().len(), 1);
    assert_eq!(h.total().await, 2, "{engine}");
}

#[macro_export]
macro_rules! odd_value_tests {
    ($engine:literal $(, #[$attr:meta])*) => {
        #[tokio::test]
        $(#[$attr])*
        async fn a_record_past_the_packet_limit_is_quarantined() {
            $crate::odd_values::a_record_past_the_packet_limit_is_quarantined($engine).await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn odd_values_never_block_a_batch() {
            $crate::odd_values::odd_values_never_block_a_batch($engine).await
        }
        #[tokio::test]
        $(#[$attr])*
        async fn a_sum_past_its_column_is_isolated() {
            $crate::odd_values::a_sum_past_its_column_is_isolated($engine).await
        }
    };
}
