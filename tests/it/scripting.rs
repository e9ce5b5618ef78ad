//! The `streamfold` binary as scripts and shells use it: `--json`
//! summaries, completions and man pages, help for every option and only
//! the options a command uses, read-only commands that never create a
//! database, Ctrl-C during a replay, and the clear messages of the
//! "A CLI that scripts and shells expect" issue.

use crate::bin::{command, database_line, stderr as err, stdout as out, streamfold, total_row};
use serde_json::Value;
use std::path::Path;
use std::process::Output;

fn ok(o: &Output) {
    assert!(o.status.success(), "{}\n{}", out(o), err(o));
}

/// Stdout as one JSON document.
fn json(o: &Output) -> Value {
    let text = out(o);
    assert_eq!(
        text.lines().count(),
        1,
        "one line of JSON expected:\n{text}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn sqlite(dir: &Path, name: &str) -> String {
    format!("sqlite://{}", dir.join(name).display())
}

/// Outcome counts as `--json` gives them: every record has one outcome.
fn check_counts(c: &Value) {
    let t = &c["total"];
    let sum: u64 = [
        "applied",
        "unchanged",
        "skipped",
        "rejected",
        "unattributed",
    ]
    .iter()
    .map(|k| t[k].as_u64().unwrap())
    .sum();
    assert_eq!(t["read"].as_u64().unwrap(), sum, "{c}");
}

#[test]
fn replay_stats_and_rejects_print_json() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite(dir.path(), "j.db");
    let text = streamfold(&["replay", "--database-url", &url, "fixtures/events"]);
    ok(&text);
    let again = streamfold(&[
        "replay",
        "--json",
        "--database-url",
        &url,
        "fixtures/events",
    ]);
    ok(&again);
    let r = json(&again);
    check_counts(&r["counts"]);
    assert_eq!(
        r["counts"]["total"]["read"].as_u64(),
        Some(total_row(&out(&text))[0])
    );
    assert_eq!(r["counts"]["total"]["applied"], 0, "{r}");
    assert!(r["counts"]["by_source"]["github_events"]["read"].as_u64() > Some(0));
    assert!(r["rejected"].as_array().unwrap().len() >= 12, "{r}");
    assert_eq!(r["interrupted"], false);
    assert_eq!(r["stopped"], Value::Null);
    assert!(r["batches"].as_u64() > Some(0) && r["files"].as_u64() > Some(0));
    let totals = r["totals"].clone();
    assert!(totals["events_counted"].as_i64() > Some(0), "{r}");
    assert!(
        database_line(&out(&text))
            .contains(&format!("{} event(s) counted", totals["events_counted"])),
        "{r}"
    );

    // stats: totals and top users, then one user's heatmap.
    let s = json(&streamfold(&[
        "stats",
        "--json",
        "--database-url",
        &url,
        "--top",
        "2",
    ]));
    assert_eq!(s["totals"], totals);
    assert_eq!(s["top_users"][0]["slack_id"], "U02BOB", "{s}");
    assert_eq!(s["top_users"][1]["rank"], 2, "{s}");
    assert_eq!(s["top_users"].as_array().unwrap().len(), 2);
    let alice = json(&streamfold(&[
        "stats",
        "--json",
        "--database-url",
        &url,
        "--slack-id",
        "U01ALICE",
    ]));
    assert_eq!(alice["slack_id"], "U01ALICE");
    assert_eq!(alice["events"], 4, "{alice}");
    let panel = &alice["panels"][0];
    assert_eq!(panel["integration"], Value::Null);
    let cells = panel["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 7);
    assert!(cells.iter().all(|row| row.as_array().unwrap().len() == 24));
    let sum: i64 = cells
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|n| n.as_i64().unwrap())
        .sum();
    assert_eq!(sum, 4);
    let each = json(&streamfold(&[
        "stats",
        "--json",
        "--database-url",
        &url,
        "--slack-id",
        "U01ALICE",
        "--integration",
        "all",
    ]));
    let codes: Vec<&str> = each["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["integration"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["G", "D"], "{each}");
    assert!(each["panels"][0]["time_zone"].is_string());

    // rejects list: JSON Lines, one per quarantined record.
    let list = streamfold(&["rejects", "list", "--json", "--database-url", &url]);
    ok(&list);
    let lines: Vec<Value> = out(&list)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as i64, totals["rejected"].as_i64().unwrap());
    assert!(
        lines
            .iter()
            .all(|l| l["id"].is_i64() && l["reason"].is_string())
    );
    assert!(
        lines
            .iter()
            .any(|l| l["reason"].as_str().unwrap().contains("KEYS_ONLY"))
    );
    let id = lines[0]["id"].to_string();
    let show = json(&streamfold(&[
        "rejects",
        "show",
        "--json",
        "--database-url",
        &url,
        &id,
    ]));
    assert_eq!(show["id"], lines[0]["id"]);
    assert_eq!(show["reason"], lines[0]["reason"]);
    assert!(show["record"]["eventSourceARN"].is_string(), "{show}");
}

#[test]
fn backfill_and_compact_print_json() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite(dir.path(), "b.db");
    let b = streamfold(&[
        "backfill",
        "--json",
        "--database-url",
        &url,
        "--table",
        "icarus-prod-github_events",
        "--export",
        "fixtures/exports/github_events",
    ]);
    ok(&b);
    let b = json(&b);
    assert_eq!(b["items"], 60, "{b}");
    assert_eq!(b["counts"]["total"]["applied"], 45, "{b}");
    assert_eq!(b["parts_done"], 3, "{b}");
    assert_eq!(b["refused"], serde_json::json!([]));
    check_counts(&b["counts"]);

    crate::support::announced_compaction(&dir.path().join("b.db"), 29, 3600);
    let c = streamfold(&[
        "compact",
        "--json",
        "--database-url",
        &url,
        "--older-than",
        "30d",
    ]);
    ok(&c);
    let c = json(&c);
    assert_eq!(c["run"], 2, "{c}");
    assert_eq!(c["finished"], true, "{c}");
    assert!(c["activity_dropped"].is_i64() && c["llm_dropped"].is_i64());
    assert!(c["horizon"].as_str().unwrap().ends_with('Z'), "{c}");
    for k in ["events_counted", "users", "llm_requests", "unattributed"] {
        assert_eq!(
            c["totals"][k], b["totals"][k],
            "compaction moves no count: {k}"
        );
    }
    assert!(c["totals"]["ledger_rows"].as_i64() < b["totals"]["ledger_rows"].as_i64());
}

/// Taking up an announcement made 72 s ago, with an 80 s wait: the 8 s
/// left are counted down on stderr, a line per step when piped.
#[test]
fn compact_counts_down_its_announcement_wait() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite(dir.path(), "c.db");
    ok(&streamfold(&["migrate", "--database-url", &url]));
    crate::support::announced_compaction(&dir.path().join("c.db"), 29, 72);
    let c = streamfold(&[
        "compact",
        "--database-url",
        &url,
        "--older-than",
        "30d",
        "--announce-wait",
        "80s",
    ]);
    ok(&c);
    let e = err(&c);
    let left: Vec<&str> = e
        .lines()
        .filter(|l| l.contains(" left (of 1m 20s)"))
        .collect();
    assert!(left.len() >= 2, "{e}");
    assert_ne!(left[0], left[1], "{e}");
    assert!(out(&c).contains("compaction run #2"), "{}", out(&c));
}

#[test]
fn completions_and_man_pages() {
    for (shell, mark) in [
        ("bash", "_streamfold()"),
        ("zsh", "#compdef streamfold"),
        ("fish", "complete -c streamfold"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let o = streamfold(&["completions", shell]);
        ok(&o);
        let text = out(&o);
        assert!(text.contains(mark), "{shell}: {text}");
        assert!(
            text.contains("replay") && text.contains("--database-url"),
            "{shell}"
        );
    }
    assert!(!streamfold(&["completions", "tcsh"]).status.success());

    let page = streamfold(&["man"]);
    ok(&page);
    assert!(out(&page).contains(".TH streamfold 1"), "{}", out(&page));
    let dir = tempfile::tempdir().unwrap();
    let into = dir.path().join("man1");
    let o = streamfold(&["man", "--out", into.to_str().unwrap()]);
    ok(&o);
    for page in [
        "streamfold.1",
        "streamfold-replay.1",
        "streamfold-rejects-list.1",
        "streamfold-completions.1",
    ] {
        let text = std::fs::read_to_string(into.join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}; {}", err(&o)));
        assert!(text.contains(".TH"), "{page}");
    }
    let replay = std::fs::read_to_string(into.join("streamfold-replay.1")).unwrap();
    assert!(replay.contains("keep\\-going"), "{replay}");
}

#[test]
fn help_describes_every_option_and_only_those_a_command_uses() {
    let help = |args: &[&str]| {
        let o = streamfold(args);
        ok(&o);
        out(&o)
    };
    for args in [&["migrate", "--help"][..], &["compact", "--help"]] {
        let h = help(args);
        assert!(h.contains("--database-url"), "{h}");
        assert!(
            !h.contains("--directory") && !h.contains("--default-tz"),
            "{args:?}:\n{h}"
        );
    }
    let h = help(&["replay", "--help"]);
    assert!(
        h.contains("--directory") && h.contains("--default-tz"),
        "{h}"
    );
    // Options that had no description.
    for (args, option) in [
        (&["stats", "--help"][..], "--slack-id <SLACK_ID>"),
        (&["rejects", "retry", "--help"], "--all"),
        (&["backfill", "--help"], "--total-segments <TOTAL_SEGMENTS>"),
        (&["rejects", "list", "--help"], "--limit <LIMIT>"),
        (&["rejects", "show", "--help"], "<ID>"),
    ] {
        let h = help(args);
        let line = h
            .lines()
            .find(|l| l.trim_start().starts_with(option))
            .unwrap_or_else(|| panic!("{option} not in {h}"));
        let described = line.trim_start().len() > option.len() + 2
            || h.lines()
                .skip_while(|l| !l.trim_start().starts_with(option))
                .nth(1)
                .is_some_and(|next| {
                    let t = next.trim_start();
                    !t.is_empty() && !t.starts_with('-') && !t.starts_with('<')
                });
        assert!(described, "{option} has no description:\n{h}");
    }
}

#[test]
fn read_only_commands_never_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mistyped.db");
    let url = format!("sqlite://{}", db.display());
    for args in [
        &["stats"][..],
        &["stats", "--slack-id", "U01ALICE"],
        &["rejects", "list"],
        &["rejects", "show", "1"],
        &["llm-report"],
        &["stats", "--json"],
    ] {
        let mut all = args.to_vec();
        all.extend(["--database-url", &url]);
        let o = streamfold(&all);
        assert!(!o.status.success(), "{args:?}: {}", out(&o));
        let e = err(&o);
        assert!(
            e.contains("no such database") && e.contains("mistyped.db"),
            "{args:?}: {e}"
        );
        assert!(!db.exists(), "{args:?} created {}", db.display());
        assert!(out(&o).is_empty(), "{args:?}: {}", out(&o));
    }
    // A command that writes still creates it.
    ok(&streamfold(&["migrate", "--database-url", &url]));
    assert!(db.exists());
    ok(&streamfold(&["stats", "--database-url", &url]));
}

#[test]
fn a_user_without_events_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite(dir.path(), "u.db");
    ok(&streamfold(&[
        "replay",
        "--database-url",
        &url,
        "fixtures/events",
    ]));
    let o = streamfold(&["stats", "--database-url", &url, "--slack-id", "U09NOBODY"]);
    ok(&o);
    assert!(
        out(&o).contains("no events counted for U09NOBODY"),
        "{}",
        out(&o)
    );
    let o = streamfold(&[
        "stats",
        "--database-url",
        &url,
        "--slack-id",
        "U01ALICE",
        "--integration",
        "E",
    ]);
    assert!(
        out(&o).contains("no e-mail (E) events counted for U01ALICE"),
        "{}",
        out(&o)
    );
    let o = streamfold(&["stats", "--database-url", &url, "--slack-id", "U01ALICE"]);
    assert!(!out(&o).contains("no events counted"), "{}", out(&o));
    let j = json(&streamfold(&[
        "stats",
        "--json",
        "--database-url",
        &url,
        "--slack-id",
        "U09NOBODY",
    ]));
    assert_eq!(j["events"], 0, "{j}");
}

#[test]
fn clear_messages_for_the_usual_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite(dir.path(), "m.db");
    let backfill = |export: &str| {
        streamfold(&[
            "backfill",
            "--database-url",
            &url,
            "--table",
            "icarus-prod-github_events",
            "--export",
            export,
        ])
    };
    let o = backfill("/no/such/export");
    assert!(!o.status.success());
    let e = err(&o);
    assert!(
        e.contains("/no/such/export") && e.contains("no such folder"),
        "{e}"
    );
    assert!(!e.contains("inconsistent"), "{e}");
    let o = backfill("Cargo.toml");
    assert!(!o.status.success());
    assert!(err(&o).contains("Cargo.toml: is a file"), "{}", err(&o));

    let o = streamfold(&[
        "replay",
        "--database-url",
        &url,
        "--directory",
        "Cargo.toml",
        "fixtures/events",
    ]);
    assert!(!o.status.success());
    let e = err(&o);
    assert!(e.contains("Cargo.toml: is a file, not a folder"), "{e}");
    assert!(!e.contains("does not exist"), "{e}");

    ok(&streamfold(&[
        "replay",
        "--database-url",
        &url,
        "fixtures/events",
    ]));
    let png = dir.path().join("a.png");
    let o = command(&[
        "stats",
        "--database-url",
        &url,
        "--slack-id",
        "U01ALICE",
        "--png",
        png.to_str().unwrap(),
    ])
    .env("STREAMFOLD_FONT", "/no/such/font.ttf")
    .output()
    .unwrap();
    ok(&o);
    assert!(
        err(&o).contains("STREAMFOLD_FONT=/no/such/font.ttf cannot be read"),
        "{}",
        err(&o)
    );

    // This test binary runs the debug build of streamfold.
    let o = streamfold(&[
        "bench",
        "--database-url",
        &sqlite(dir.path(), "bench.db"),
        "--smoke",
        "--only",
        "normalize",
    ]);
    ok(&o);
    assert!(
        err(&o).contains("debug build: its numbers mean nothing"),
        "{}",
        err(&o)
    );
}

/// Ctrl-C (SIGINT) in the middle of a large replay: the batch under way is
/// finished, the summary of what was applied is printed, the exit status
/// is 130; progress went to stderr as plain lines (piped), its rate
/// formatted; a second run applies the rest.
#[test]
fn ctrl_c_stops_a_replay_after_a_batch_with_its_summary() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("big.jsonl");
    let gen_ = std::process::Command::new("python3")
        .args([
            concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/gen_events.py"),
            "60000",
            events.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(gen_.status.success(), "{}", err(&gen_));
    let url = sqlite(dir.path(), "big.db");
    let mut child = command(&["replay", "--database-url", &url, events.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if line.starts_with("… ") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // The first progress line: the replay is under way.
    rx.recv_timeout(std::time::Duration::from_secs(120))
        .expect("no progress line");
    // SAFETY: kill(2) on the pid of our own child, still running.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let e = reader.join().unwrap();
    assert_eq!(status.code(), Some(130), "{stdout}\n{e}");
    assert!(e.contains("stopping after the current batch"), "{e}");
    assert!(e.contains("replay interrupted before"), "{e}");
    assert!(stdout.contains("(interrupted: see below)"), "{stdout}");
    let first = total_row(&stdout);
    assert!(first[0] > 0 && first[0] < 60_000, "{stdout}");
    assert_eq!(first[0] % 1000, 0, "whole batches of 1000: {stdout}");
    // Progress lines: plain, with a rate like "5,133/s".
    let progress = e.lines().find(|l| l.starts_with("… ")).unwrap();
    let rate = progress
        .split('(')
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap();
    assert!(rate.ends_with("/s"), "{progress}");
    assert!(
        rate.trim_end_matches("/s")
            .chars()
            .all(|c| c.is_ascii_digit() || c == ','),
        "{progress}"
    );

    // The rest, with the same command.
    let rest = streamfold(&[
        "replay",
        "--json",
        "--database-url",
        &url,
        events.to_str().unwrap(),
    ]);
    ok(&rest);
    let r = json(&rest);
    assert_eq!(r["counts"]["total"]["read"], 60_000);
    assert_eq!(r["interrupted"], false);
}
