//! An operator's first hour (issue 20): the usual mistakes, each answered
//! by the `streamfold` binary with a short message naming the thing and the
//! fix, a non-zero exit, and nothing lost or counted twice.

use crate::bin::{command, database_line, stderr as err, stdout as out, streamfold, total_row};
use std::path::Path;
use std::process::Output;

/// The binary with no AWS credentials anywhere: no variables, no profile
/// files, no instance metadata.
fn without_aws(args: &[&str], home: &Path) -> Output {
    let mut cmd = command(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap()
}

/// The fixture events, one per line, with an unreadable event as line 4.
fn jsonl_with_a_bad_fourth_line(dir: &Path) -> std::path::PathBuf {
    let mut lines: Vec<String> = crate::support::fixture_event_texts()
        .iter()
        .map(|text| {
            serde_json::from_str::<serde_json::Value>(text)
                .unwrap()
                .to_string()
        })
        .collect();
    lines.insert(3, r#"{"Records": [ {"eventID": "cut off"#.to_string());
    let path = dir.join("events.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[test]
fn a_bad_line_in_the_middle_stops_with_a_summary_and_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let events = jsonl_with_a_bad_fourth_line(dir.path());
    let url = format!("sqlite://{}", dir.path().join("j.db").display());
    let path = events.to_str().unwrap();

    let stopped = streamfold(&["replay", "--database-url", &url, path]);
    assert!(!stopped.status.success());
    let (o, e) = (out(&stopped), err(&stopped));
    // What was applied before the bad line is summarised...
    let applied_before = total_row(&o)[1];
    assert!(applied_before > 0, "{o}");
    assert!(o.contains("stopped early"), "{o}");
    // ...the first line not applied is named, with how to go on.
    assert!(e.contains("events.jsonl:4"), "{e}");
    assert!(e.contains("--keep-going") && e.contains("again"), "{e}");

    // Resuming with --keep-going applies the rest, not the first part again.
    let kept = streamfold(&["replay", "--keep-going", "--database-url", &url, path]);
    assert!(
        !kept.status.success(),
        "an unreadable event is still a failure"
    );
    let (o2, e2) = (out(&kept), err(&kept));
    assert!(
        e2.contains("not applied: ") && e2.contains("events.jsonl:4"),
        "{e2}"
    );
    assert!(e2.contains("1 unreadable event(s)"), "{e2}");
    let after = total_row(&o2);
    assert!(
        after[1] > 0,
        "the lines after the bad one are applied: {o2}"
    );

    // The same database as a clean replay of the fixtures.
    let clean_url = format!("sqlite://{}", dir.path().join("clean.db").display());
    let clean = streamfold(&["replay", "--database-url", &clean_url, "fixtures/events"]);
    assert!(clean.status.success(), "{}", err(&clean));
    assert_eq!(database_line(&o2), database_line(&out(&clean)));
    assert_eq!(applied_before + after[1], total_row(&out(&clean))[1]);
}

#[test]
fn only_the_lambda_event_shape_is_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    for (name, text) in [
        ("wrapped.json", r#"[{"Records": []}]"#),
        (
            "records.json",
            r#"[[{"eventID": "e1", "eventName": "INSERT"}]]"#,
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let o = streamfold(&["replay", "--database-url", &url, path.to_str().unwrap()]);
        assert!(!o.status.success(), "{name} accepted");
        let e = err(&o);
        assert!(e.contains(&format!("{name}:1")), "{e}");
        assert!(
            e.contains("an object whose Records field is an array") && e.contains(".jsonl"),
            "{e}"
        );
        assert!(!e.contains("expected a sequence"), "{e}");
    }
}

/// Three commands on a database file that does not exist yet: all migrate
/// it without a race, the counts are those of one replay, and afterwards
/// the file alone holds the data (no write-ahead log left beside it).
#[test]
fn sqlite_first_use_by_three_commands_and_a_file_that_copies_whole() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new.db");
    let url = format!("sqlite://{}", db.display());
    let runs: Vec<_> = (0..3)
        .map(|_| {
            command(&["replay", "--database-url", &url, "fixtures/events"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = runs
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for o in &outputs {
        assert!(o.status.success(), "{}", err(o));
        assert!(!err(o).contains("already exists") && !err(o).contains("locked"));
    }
    let applied: u64 = outputs.iter().map(|o| total_row(&out(o))[1]).sum();
    let alone = dir.path().join("alone.db");
    std::fs::copy(&db, &alone).unwrap();
    // The log is gone, or empty: the data is in the database file.
    let wal = std::fs::metadata(dir.path().join("new.db-wal")).map_or(0, |m| m.len());
    assert_eq!(wal, 0, "the write-ahead log still holds data");
    let fresh_url = format!("sqlite://{}", dir.path().join("fresh.db").display());
    let fresh = streamfold(&["replay", "--database-url", &fresh_url, "fixtures/events"]);
    assert_eq!(applied, total_row(&out(&fresh))[1], "applied once in all");
    let stats = |u: &str| {
        let o = streamfold(&["stats", "--database-url", u]);
        assert!(o.status.success(), "{}", err(&o));
        out(&o)
    };
    let copied = stats(&format!("sqlite://{}", alone.display()));
    assert_eq!(copied, stats(&fresh_url));
    assert!(!copied.contains(" 0 event(s)"), "{copied}");
}

/// A port nobody listens on is said to refuse the connection, naming the
/// host and port, not "pool timed out" after the connect timeout.
#[test]
fn a_refused_port_is_said_with_its_host() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    for scheme in ["mysql://root", "postgres://postgres"] {
        let url = format!("{scheme}@127.0.0.1:{port}/streamfold");
        let o = streamfold(&["stats", "--connect-timeout", "60", "--database-url", &url]);
        assert!(!o.status.success());
        let e = err(&o);
        assert!(
            e.contains(&format!("connection refused by 127.0.0.1:{port}")),
            "{e}"
        );
        assert!(!e.contains("timed out"), "{e}");
    }
}

/// Without AWS credentials, `tail` and `llm-report --publish` say so in a
/// line, with the fix, instead of the SDK's dump; publishing names why.
#[test]
fn no_aws_credentials_is_one_line_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a.db").display());
    let r = streamfold(&["replay", "--database-url", &url, "fixtures/events"]);
    assert!(r.status.success(), "{}", err(&r));

    let t = without_aws(
        &[
            "tail",
            "--database-url",
            &url,
            "--table",
            "icarus-prod-github_events",
        ],
        dir.path(),
    );
    assert!(!t.status.success());
    let e = err(&t);
    let line = e
        .lines()
        .find(|l| l.starts_with("streamfold: error"))
        .unwrap();
    assert!(
        line.contains("icarus-prod-github_events") && line.contains("AWS_PROFILE"),
        "{e}"
    );
    assert!(line.len() < 500, "{} bytes: {line}", line.len());

    let p = without_aws(
        &[
            "llm-report",
            "--database-url",
            &url,
            "--publish",
            "--table",
            "reports-x",
        ],
        dir.path(),
    );
    assert!(!p.status.success());
    let e = err(&p);
    let line = e
        .lines()
        .find(|l| l.starts_with("streamfold: error"))
        .unwrap();
    assert!(
        line.contains("stay pending") && line.contains("reports-x"),
        "{e}"
    );
    assert!(line.contains("AWS_PROFILE"), "the reason is named: {e}");
    assert!(line.len() < 600, "{} bytes: {line}", line.len());
}

/// The heatmap names the time zone its buckets are in, has row and column
/// totals, and draws each integration side by side with `--integration all`.
#[test]
fn the_heatmap_names_its_time_zone_and_draws_each_integration() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("h.db").display());
    let r = streamfold(&["replay", "--database-url", &url, "fixtures/events"]);
    assert!(r.status.success(), "{}", err(&r));
    let png = |name: &str, extra: &[&str]| {
        let path = dir.path().join(name);
        let mut args = vec!["stats", "--database-url", &url, "--slack-id", "U01ALICE"];
        args.extend_from_slice(extra);
        let p = path.to_str().unwrap().to_string();
        args.extend_from_slice(&["--png", &p]);
        let o = streamfold(&args);
        assert!(o.status.success(), "{}", err(&o));
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        (out(&o), width)
    };
    let (together, one_wide) = png("all.png", &[]);
    // U01ALICE's Icarus account is in America/New_York (fixtures/directory).
    assert!(
        together.contains("all integrations") && together.contains("time zone America/New_York"),
        "{together}"
    );
    assert!(together.contains("\nhour "), "column totals: {together}");
    let (each, two_wide) = png("each.png", &["--integration", "all"]);
    assert!(
        each.contains("GitHub (G)") && each.contains("Dropbox (D)"),
        "{each}"
    );
    assert!(
        !each.contains("e-mail (E)"),
        "only the integrations she has: {each}"
    );
    assert!(
        two_wide > one_wide + one_wide / 2,
        "{one_wide} then {two_wide}"
    );
    // An ACS account's e-mail buckets are in its Users time zone.
    let o = streamfold(&[
        "stats",
        "--database-url",
        &url,
        "--slack-id",
        "acct-1001",
        "--integration",
        "E",
    ]);
    assert!(out(&o).contains("time zone Europe/Madrid"), "{}", out(&o));
    // A user with no time zone set says the default was used.
    let o = streamfold(&["stats", "--database-url", &url, "--slack-id", "U09NOBODY"]);
    assert!(
        out(&o).contains("UTC (the default: none set)"),
        "{}",
        out(&o)
    );
}

/// `compact` refuses a horizon under 7 days; a compaction keeps every
/// count, and a replay afterwards says what it skipped and counts nothing
/// twice.
#[test]
fn compact_keeps_the_counts_and_a_later_replay_says_what_it_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let first = streamfold(&["replay", "--database-url", &url, "fixtures/events"]);
    assert!(first.status.success(), "{}", err(&first));
    // "database now holds: N event(s) counted for U user(s), R LLM
    // request(s), …": the counts, without the ledger's size.
    let counted = |o: &Output| {
        let line = database_line(&out(o));
        let head: Vec<&str> = line.splitn(4, ", ").take(3).collect();
        head.join(", ")
    };
    let before = counted(&first);

    let short = streamfold(&["compact", "--database-url", &url, "--older-than", "2d"]);
    assert!(!short.status.success());
    assert!(
        err(&short).contains("shorter than 7 days"),
        "{}",
        err(&short)
    );

    // Shorter than consumers need (their horizon cache, a lock wait): refused.
    for wait in ["0s", "79s"] {
        let o = streamfold(&[
            "compact",
            "--database-url",
            &url,
            "--older-than",
            "30d",
            "--announce-wait",
            wait,
        ]);
        assert!(!o.status.success());
        assert!(err(&o).contains("shorter than 1m 20s"), "{}", err(&o));
    }
    // A horizon announced an hour ago needs no wait now (every consumer
    // has seen it): what a run taking up an earlier announcement does.
    crate::support::announced_compaction(&dir.path().join("c.db"), 29, 3600);
    let c = streamfold(&["compact", "--database-url", &url, "--older-than", "30d"]);
    assert!(c.status.success(), "{}", err(&c));
    let text = out(&c);
    assert!(
        text.contains("compaction run #2") && text.contains("LLM ledger row(s)"),
        "{text}"
    );
    assert_eq!(counted(&c), before, "{text}");

    let again = streamfold(&["replay", "--database-url", &url, "fixtures/events"]);
    assert!(again.status.success(), "{}", err(&again));
    assert!(
        err(&again).contains("the ledger was compacted up to"),
        "{}",
        err(&again)
    );
    let o = out(&again);
    assert!(
        o.contains("skipped: older than the ledger's compaction horizon"),
        "{o}"
    );
    assert_eq!(total_row(&o)[1], 0, "nothing applied again: {o}");
    assert_eq!(counted(&again), before, "{o}");
}

/// Four `streamfold migrate` at once on a new, empty server database: all
/// succeed (one applies the schema, the others wait for it and find
/// nothing to do) and the schema is whole. MariaDB answers sqlx's own
/// migration lock (`GET_LOCK(…, -1)`) with NULL at once, so before
/// streamfold took a lock of its own three of the four failed.
async fn four_concurrent_migrations(engine: &str) {
    let Some(db) = crate::support::fresh_unmigrated_db(engine).await else {
        return;
    };
    let runs: Vec<_> = (0..4)
        .map(|_| {
            command(&["migrate", "--database-url", &db.url])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = runs
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for o in &outputs {
        assert!(o.status.success(), "{engine}: {}{}", out(o), err(o));
    }
    // The schema is whole: the store opens (nothing pending), every
    // migration is recorded once as successful, and a replay counts.
    let store = streamfold::store::Store::open(&db.url).await.unwrap();
    assert_eq!(store.migrate().await.unwrap(), Vec::<i64>::new());
    let recorded: i64 = match engine {
        "mysql" => {
            let pool = sqlx::MySqlPool::connect(&db.url).await.unwrap();
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&pool)
                .await
                .unwrap()
        }
        _ => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let files = std::fs::read_dir(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("sql")
            .join(engine),
    )
    .unwrap()
    .filter(|e| {
        e.as_ref()
            .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
    })
    .count();
    assert_eq!(recorded as usize, files, "{engine}: migrations recorded");
    let replay = streamfold(&["replay", "--database-url", &db.url, "fixtures/events"]);
    assert!(replay.status.success(), "{}", err(&replay));
    assert!(total_row(&out(&replay))[1] > 0, "{}", out(&replay));
}

#[tokio::test]
#[ignore = "needs STREAMFOLD_TEST_MYSQL_URL"]
async fn mysql_four_concurrent_migrations_on_an_empty_database() {
    four_concurrent_migrations("mysql").await;
}

#[tokio::test]
#[ignore = "needs STREAMFOLD_TEST_POSTGRES_URL"]
async fn postgres_four_concurrent_migrations_on_an_empty_database() {
    four_concurrent_migrations("postgres").await;
}
