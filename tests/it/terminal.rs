//! What reaches a terminal or a log: record-derived text with an ESC or a
//! newline is printed escaped by every human-readable output of the
//! binary (summaries, `rejects list / show`, `stats`, errors, the text
//! log), while the records are handled as before; `--help` never shows the
//! `DATABASE_URL` it read.

use crate::bin::{command, stderr, stdout, streamfold, total_row};
use serde_json::json;
use std::process::Output;

const ESC_NL: &str = "\u{1b}[31m\nFORGED";
/// How `printable` shows `ESC_NL`.
const ESCAPED: &str = r"\u{1b}[31m\nFORGED";

/// A Conversations record whose eventID, table name and account carry
/// `ESC_NL`; without `associated_account` when `counted` is false (it is
/// then rejected).
fn hostile_record(n: u32, counted: bool) -> serde_json::Value {
    let mut image = json!({
        "conversation_id": {"S": format!("conv-{n}")},
        "response_id": {"S": "r"},
        "timestamp": {"S": "2024-03-31T00:30:00Z"},
    });
    if counted {
        image["associated_account"] = json!({"S": format!("acct{ESC_NL} account")});
    }
    json!({
        "eventID": format!("evt{n}{ESC_NL} event"),
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1711848600,
            "Keys": {"conversation_id": image["conversation_id"], "response_id": {"S": "r"}},
            "NewImage": image,
            "SequenceNumber": format!("10{n}"),
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        },
        "eventSourceARN": format!(
            "arn:aws:dynamodb:us-east-1:123456789012:table/acsd2p{ESC_NL} table-Conversations/stream/2024"
        ),
    })
}

/// No raw ESC, and no line that a record's newline started.
fn assert_clean(what: &str, o: &Output) {
    for (stream, text) in [("stdout", stdout(o)), ("stderr", stderr(o))] {
        assert!(
            !text.contains('\u{1b}'),
            "{what}: raw ESC on {stream}:\n{text}"
        );
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with("FORGED")),
            "{what}: a record forged a line on {stream}:\n{text}"
        );
    }
}

#[test]
fn record_text_reaches_the_terminal_and_the_log_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let event = dir.path().join("hostile.json");
    let records = json!({"Records": [hostile_record(1, true), hostile_record(2, false)]});
    std::fs::write(&event, records.to_string()).unwrap();

    let replay = command(&["replay", "--database-url", &url, event.to_str().unwrap()])
        .env("STREAMFOLD_LOG", "warn")
        .output()
        .unwrap();
    assert_clean("replay", &replay);
    assert!(replay.status.success(), "{}", stderr(&replay));
    let out = stdout(&replay);
    // read, applied, unchanged, skipped, rejected, unattributed
    assert_eq!(total_row(&out), vec![2, 1, 0, 0, 1, 0], "{out}");
    // The rejection is listed, its names escaped, and so is the log line.
    assert!(
        out.contains(&format!(
            "table acsd2p{ESCAPED} table-Conversations, event evt2{ESCAPED} event"
        )),
        "{out}"
    );
    let log = stderr(&replay);
    assert!(
        log.contains("record quarantined") && log.contains(&format!("evt2{ESCAPED} event")),
        "{log}"
    );

    let list = streamfold(&["rejects", "list", "--database-url", &url]);
    assert_clean("rejects list", &list);
    assert!(
        stdout(&list).contains(&format!("event evt2{ESCAPED} event")),
        "{}",
        stdout(&list)
    );
    let show = streamfold(&["rejects", "show", "1", "--database-url", &url]);
    assert_clean("rejects show", &show);
    assert!(
        stdout(&show).contains(&format!("event:    evt2{ESCAPED} event")),
        "{}",
        stdout(&show)
    );

    let stats = streamfold(&["stats", "--database-url", &url]);
    assert_clean("stats", &stats);
    assert!(
        stdout(&stats).contains(&format!("1. acct{ESCAPED} account")),
        "{}",
        stdout(&stats)
    );
    let heatmap = streamfold(&[
        "stats",
        "--database-url",
        &url,
        "--slack-id",
        &format!("acct{ESC_NL} account"),
    ]);
    assert_clean("stats --slack-id", &heatmap);
    assert!(stdout(&heatmap).contains("total 1"), "{}", stdout(&heatmap));

    // An error naming an unreadable file: printed on one line, escaped.
    let bad = dir.path().join(format!("bad{ESC_NL}.json"));
    std::fs::write(&bad, "{not json").unwrap();
    let failed = streamfold(&["replay", "--database-url", &url, bad.to_str().unwrap()]);
    assert!(!failed.status.success());
    assert_clean("replay of an unreadable file", &failed);
    assert!(
        stderr(&failed).contains(&format!("bad{ESCAPED}.json")),
        "{}",
        stderr(&failed)
    );
}

/// Every subcommand that reads `DATABASE_URL`.
const WITH_DATABASE_URL: [&[&str]; 11] = [
    &["replay"],
    &["stats"],
    &["reattribute"],
    &["rejects", "list"],
    &["rejects", "show"],
    &["rejects", "retry"],
    &["llm-report"],
    &["backfill"],
    &["tail"],
    &["migrate"],
    &["compact"],
];

#[test]
fn help_never_shows_the_database_password() {
    for sub in WITH_DATABASE_URL {
        let mut args = sub.to_vec();
        args.push("--help");
        let o = command(&args)
            .env("DATABASE_URL", "mysql://u:s3cretpw@h/db")
            .output()
            .unwrap();
        assert!(o.status.success(), "{sub:?}: {}", stderr(&o));
        let text = format!("{}{}", stdout(&o), stderr(&o));
        assert!(text.contains("DATABASE_URL"), "{sub:?}: {text}");
        assert!(
            !text.contains("s3cretpw"),
            "{sub:?} --help shows the password:\n{text}"
        );
    }
}
