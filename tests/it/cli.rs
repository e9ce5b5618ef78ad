//! The `streamfold` binary as a user runs it, on the committed fixtures.

use crate::bin::{database_line, stdout, streamfold, total_row};
use std::process::Output;

#[test]
fn replaying_the_fixtures_twice_applies_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("replay.db").display());
    let first = streamfold(&["replay", "--database-url", &url, "fixtures/events"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let out1 = stdout(&first);
    let t1 = total_row(&out1);
    assert!(t1[1] > 0, "first replay applied nothing:\n{out1}");
    assert!(
        t1[4] >= 12,
        "the bad-records batch should be quarantined:\n{out1}"
    );
    assert_eq!(
        t1[0],
        t1[1..].iter().sum::<u64>(),
        "every record has one outcome:\n{out1}"
    );

    let second = streamfold(&["replay", "--database-url", &url, "fixtures/events"]);
    assert!(second.status.success());
    let out2 = stdout(&second);
    let t2 = total_row(&out2);
    assert_eq!(t2[0], t1[0], "same records read");
    assert_eq!(t2[1], 0, "second replay applied something:\n{out2}");
    assert_eq!(
        t2[5], 0,
        "second replay left new unattributed events:\n{out2}"
    );
    assert_eq!(database_line(&out1), database_line(&out2));

    // The heatmap of a fixture user renders from the same database.
    let png = dir.path().join("alice.png");
    let stats = streamfold(&[
        "stats",
        "--database-url",
        &url,
        "--slack-id",
        "U01ALICE",
        "--png",
        png.to_str().unwrap(),
    ]);
    assert!(stats.status.success());
    let text = stdout(&stats);
    // Alice: two GitHub events and her Dropbox change of 2024-03-12 (the
    // later change to her account, by bob, is another event: identity
    // `account_id` + `timestamp`).
    assert!(text.contains("Sun") && text.contains("total 4"), "{text}");
    assert_eq!(&std::fs::read(&png).unwrap()[..4], b"\x89PNG");
    let top = stdout(&streamfold(&[
        "stats",
        "--database-url",
        &url,
        "--top",
        "2",
    ]));
    assert!(
        top.contains("1. U02BOB") && top.contains("2. U01ALICE"),
        "{top}"
    );
    assert!(!top.contains("3. "), "{top}");

    let rejects = streamfold(&["rejects", "list", "--database-url", &url]);
    let listing = stdout(&rejects);
    assert!(listing.contains("KEYS_ONLY"));
    let first_id = listing
        .lines()
        .next()
        .and_then(|l| l.strip_prefix('#'))
        .and_then(|l| l.split(' ').next())
        .unwrap()
        .to_string();
    let show = streamfold(&["rejects", "show", "--database-url", &url, &first_id]);
    let text = stdout(&show);
    assert!(
        text.contains("reason:") && text.contains("\"eventSourceARN\""),
        "{text}"
    );
    // Nothing has been fixed: a retry of all keeps every one of them.
    let retry = streamfold(&["rejects", "retry", "--database-url", &url, "--all"]);
    let text = stdout(&retry);
    assert!(
        text.contains(": 0 applied and released, 14 still rejected"),
        "{text}"
    );
    assert_eq!(
        database_line(&stdout(&streamfold(&["stats", "--database-url", &url]))),
        database_line(&out2)
    );

    // The monthly LLM reports, as JSON Lines with exact decimal numbers.
    let all = streamfold(&["llm-report", "--database-url", &url]);
    assert!(all.status.success());
    assert_eq!(stdout(&all).lines().count(), 5, "{}", stdout(&all));
    let jan = streamfold(&[
        "llm-report",
        "--database-url",
        &url,
        "--account",
        "acct-1001",
        "--period",
        "2024-01",
    ]);
    let text = stdout(&jan);
    let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(line["report_id"], "acct-1001#2024-01");
    assert_eq!(line["total_requests"], 2);
    assert!(text.contains(r#""total_cost_usd":0.0175,"#), "{text}");
    assert!(text.contains(r#""average_quality_score":0.93,"#), "{text}");
    let bad = streamfold(&["llm-report", "--database-url", &url, "--period", "2024-13"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a month"));
}

#[test]
fn malformed_json_fails_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    std::fs::write(&events, "{\"Records\": []}\n{\"Records\": [\n").unwrap();
    let url = format!("sqlite://{}", dir.path().join("x.db").display());
    let out = streamfold(&["replay", "--database-url", &url, events.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("events.jsonl:2"), "{err}");
}

#[test]
fn unreadable_path_fails() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("x.db").display());
    let out = streamfold(&["replay", "--database-url", &url, "no/such/file.json"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/file.json"));
}

#[test]
fn invalid_default_time_zone_is_an_error() {
    let out = streamfold(&["replay", "--default-tz", "Mars/Base", "fixtures/events"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Mars/Base"));
}

/// `migrate` then `replay` twice against a server engine, from the README.
fn replay_on_server(engine: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = rt.block_on(crate::support::fresh_db(engine)) else {
        return;
    };
    // fresh_db migrated already: migrate reports nothing new.
    let m = streamfold(&["migrate", "--database-url", &db.url]);
    assert!(m.status.success(), "{}", String::from_utf8_lossy(&m.stderr));
    assert!(stdout(&m).contains("already up to date"), "{}", stdout(&m));
    let first = streamfold(&["replay", "--database-url", &db.url, "fixtures/events"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = streamfold(&["replay", "--database-url", &db.url, "fixtures/events"]);
    let (o1, o2) = (stdout(&first), stdout(&second));
    assert!(total_row(&o1)[1] > 0);
    assert_eq!(total_row(&o2)[1], 0, "{o2}");
    assert_eq!(database_line(&o1), database_line(&o2));
    // Same result as the embedded default.
    let dir = tempfile::tempdir().unwrap();
    let lite = format!("sqlite://{}", dir.path().join("l.db").display());
    let o3 = stdout(&streamfold(&[
        "replay",
        "--database-url",
        &lite,
        "fixtures/events",
    ]));
    assert_eq!(database_line(&o1), database_line(&o3));
    drop(db);
}

#[test]
#[ignore = "needs STREAMFOLD_TEST_MYSQL_URL"]
fn replay_on_mysql() {
    replay_on_server("mysql");
}

#[test]
#[ignore = "needs STREAMFOLD_TEST_POSTGRES_URL"]
fn replay_on_postgres() {
    replay_on_server("postgres");
}

#[test]
#[ignore = "needs STREAMFOLD_TEST_POSTGRES_URL"]
fn unmigrated_server_database_names_the_fix() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = rt.block_on(crate::support::fresh_unmigrated_db("postgres")) else {
        return;
    };
    let err = rt
        .block_on(streamfold::store::Store::open(&db.url))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("streamfold migrate"), "{err}");
}

#[test]
fn passwords_never_appear_in_errors() {
    for url in [
        "mysql://root:Sup3rSecretPw@127.0.0.1:1/nodb",
        "postgres://postgres:Sup3rSecretPw@127.0.0.1:1/nodb",
        "mysql://root:Sup3rSecretPw@db.invalid.example/nodb?ssl-mode=disabled",
    ] {
        let out = streamfold(&[
            "replay",
            "--connect-timeout",
            "1",
            "--database-url",
            url,
            "fixtures/events",
        ]);
        assert!(!out.status.success());
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains("Sup3rSecretPw"), "{all}");
        assert!(all.contains("***"), "{all}");
    }
}

#[test]
fn backfill_from_the_export_fixture_then_resume() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bf.db").display());
    let args = [
        "backfill",
        "--database-url",
        &url,
        "--table",
        "icarus-prod-github_events",
        "--export",
        "fixtures/exports/github_events",
    ];
    let out = streamfold(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(text.contains("backfilled 60 item(s)"), "{text}");
    assert_eq!(total_row(&text)[1], 45, "{text}");
    let mut resumed = args.to_vec();
    resumed.push("--resume");
    let out = streamfold(&resumed);
    let text = stdout(&out);
    assert!(
        text.contains("backfilled 0 item(s)") && text.contains("3 already done"),
        "{text}"
    );
    let bad = streamfold(&[
        "backfill",
        "--database-url",
        &url,
        "--table",
        "icarus-prod-slack_accounts",
        "--export",
        "fixtures/exports/github_events",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not one of the source tables (github_events, dropbox_file_changes, Conversations, LLMDataCollection)"));
}

/// An operator's usual mistakes get one short message naming the thing,
/// and a non-zero exit (issue 20).
#[test]
fn mistakes_get_short_messages_and_fail() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();

    // Each cause once, not repeated by the error chain.
    let o = streamfold(&["replay", "--database-url", &url, "/no/such/file.json"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert_eq!(e.matches("os error 2").count(), 1, "{e}");
    assert!(e.contains("/no/such/file.json"), "{e}");

    // An unknown rejected-record id is an error, as it is for `show`.
    let o = streamfold(&["rejects", "retry", "--database-url", &url, "999"]);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("no rejected record with id 999"),
        "{}",
        stderr(&o)
    );

    // A PNG into a folder that does not exist names the folder.
    let o = streamfold(&[
        "stats",
        "--database-url",
        &url,
        "--slack-id",
        "U01ALICE",
        "--png",
        "/no/such/dir/x.png",
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("the folder /no/such/dir does not exist"), "{e}");
    assert!(!e.contains("ImageError"), "{e}");
}

/// A `--directory` that does not exist is an error naming it; an empty one
/// is said explicitly (issue 20: it silently left every actor unattributed).
#[test]
fn a_missing_directory_is_an_error_and_an_empty_one_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("d.db").display());
    let o = streamfold(&[
        "replay",
        "--database-url",
        &url,
        "--directory",
        "/no/such/directory",
        "fixtures/events",
    ]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("/no/such/directory") && e.contains("does not exist"),
        "{e}"
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = streamfold(&[
        "replay",
        "--database-url",
        &url,
        "--directory",
        empty.to_str().unwrap(),
        "fixtures/events",
    ]);
    assert!(o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("holds no identity items"), "{e}");
}

/// `streamfold replay` takes events in the Kinesis shape (Kinesis Data
/// Streams for DynamoDB) as they are: the committed Kinesis fixture counts
/// as its DynamoDB Streams original, and replaying both adds nothing.
#[test]
fn replaying_the_kinesis_fixture_counts_as_its_stream_original() {
    let dir = tempfile::tempdir().unwrap();
    let db = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    let kinesis = streamfold(&[
        "replay",
        "--database-url",
        &db("k.db"),
        "fixtures/kinesis/01_github_events.json",
    ]);
    let streams = streamfold(&[
        "replay",
        "--database-url",
        &db("s.db"),
        "fixtures/events/01_github_events.json",
    ]);
    assert!(kinesis.status.success() && streams.status.success());
    let (k, s) = (stdout(&kinesis), stdout(&streams));
    assert_eq!(total_row(&k), total_row(&s), "{k}\n{s}");
    assert!(total_row(&k)[1] > 0, "{k}");
    assert_eq!(database_line(&k), database_line(&s));
    // The stream originals after their Kinesis copies: the same changes,
    // so the counts do not move (where a copy's version is the higher one
    // it replaces the other with the same contribution).
    let both = streamfold(&[
        "replay",
        "--database-url",
        &db("k.db"),
        "fixtures/events/01_github_events.json",
    ]);
    assert!(both.status.success());
    assert_eq!(database_line(&stdout(&both)), database_line(&k));
}
