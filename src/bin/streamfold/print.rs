//! How `streamfold` prints what a run did: outcome counts per source,
//! quarantined records, and the database's totals, as text or (`--json`)
//! as JSON.
//!
//! The JSON convention, for every command: `--json` (`cli::Output`) prints
//! on stdout either one object (a summary) or JSON Lines (a listing, one
//! object per item), always through `json`; nothing else goes to stdout.
//! Field names are snake_case and stable (README, "Scripting", documents
//! each command's schema); counts are numbers, times RFC 3339 strings,
//! absent values `null`. Progress, notes and errors stay on stderr, and the
//! exit status means what it means without `--json`. Record-derived text is
//! escaped by JSON itself, not by `printable`. The shared parts are built
//! here: `counts_json` (outcomes per source), `totals_json` (the
//! database's totals), `rejections_json`.

use anyhow::Result;
use serde_json::{Value, json};
use streamfold::pipeline::{self, BatchReport};
use streamfold::printable::{Printable, printable};
use streamfold::store::Store;

/// Print one JSON document as one line on stdout: a `--json` summary, or
/// one line of a `--json` listing.
pub fn json(value: &Value) {
    outln!("{value}");
}

fn counts_object(c: &pipeline::Counts) -> Value {
    json!({
        "read": c.read,
        "applied": c.applied,
        "unchanged": c.unchanged,
        "skipped": c.skipped,
        "rejected": c.rejected,
        "unattributed": c.unattributed,
        "time_fallback": c.time_fallback,
    })
}

/// A run's outcomes: `{"by_source": {SOURCE: COUNTS}, "total": COUNTS,
/// "before_horizon": N}`, COUNTS being `read`, `applied`, `unchanged`,
/// `skipped`, `rejected`, `unattributed`, `time_fallback`.
pub fn counts_json(report: &BatchReport) -> Value {
    let by_source: serde_json::Map<String, Value> = report
        .by_source
        .iter()
        .map(|(s, c)| (s.clone(), counts_object(c)))
        .collect();
    json!({
        "by_source": by_source,
        "total": counts_object(&report.total()),
        "before_horizon": report.before_horizon,
    })
}

/// Quarantined records of a run: `[{"place", "record", "table", "event_id",
/// "sequence_number", "reason"}]` (`place` is `file:line` or the part, `record`
/// the 1-based index in its batch).
pub fn rejections_json(rejected: &[(String, pipeline::Rejection)]) -> Value {
    rejected
        .iter()
        .map(|(place, r)| {
            json!({
                "place": place,
                "record": r.index + 1,
                "table": r.meta.table,
                "event_id": r.meta.event_id,
                "sequence_number": r.meta.sequence_number,
                "reason": r.reason,
            })
        })
        .collect()
}

/// The database's totals: `{"events_counted", "users", "llm_requests",
/// "unattributed", "rejected", "ledger_rows"}`.
pub async fn totals_json(store: &Store) -> Result<Value> {
    let t = store.totals().await?;
    Ok(json!({
        "events_counted": t.events_counted,
        "users": t.users,
        "llm_requests": t.llm_requests,
        "unattributed": t.unattributed,
        "rejected": t.rejected,
        "ledger_rows": t.ledger_rows,
    }))
}

pub fn print_counts(report: &BatchReport) {
    outln!(
        "{:<22} {:>9} {:>9} {:>10} {:>8} {:>9} {:>13}",
        "source",
        "read",
        "applied",
        "unchanged",
        "skipped",
        "rejected",
        "unattributed"
    );
    let row = |name: &str, c: &pipeline::Counts| {
        outln!(
            "{:<22} {:>9} {:>9} {:>10} {:>8} {:>9} {:>13}",
            printable(name),
            c.read,
            c.applied,
            c.unchanged,
            c.skipped,
            c.rejected,
            c.unattributed
        );
    };
    for (source, c) in &report.by_source {
        row(source, c);
    }
    row("total", &report.total());
    let fallback = report.total().time_fallback;
    if fallback > 0 {
        outln!("({fallback} event time(s) taken from ApproximateCreationDateTime)");
    }
    if report.before_horizon > 0 {
        outln!(
            "({} record(s) skipped: older than the ledger's compaction horizon, with no \
             ledger row, so perhaps counted before their row was compacted; see `streamfold compact --help`)",
            report.before_horizon
        );
    }
}

pub fn print_rejections(rejected: &[(String, streamfold::pipeline::Rejection)]) {
    if rejected.is_empty() {
        return;
    }
    outln!();
    outln!(
        "rejected records (quarantined in rejected_records; `streamfold rejects list` shows them):"
    );
    for (place, r) in rejected.iter().take(30) {
        outln!(
            "  {} record {} ({}): {}",
            printable(place),
            r.index + 1,
            Printable(&r.meta),
            printable(&r.reason)
        );
    }
    if rejected.len() > 30 {
        outln!("  … and {} more", rejected.len() - 30);
    }
}

pub async fn print_totals(store: &Store) -> Result<()> {
    let t = store.totals().await?;
    outln!(
        "database now holds: {} event(s) counted for {} user(s), {} LLM request(s), {} unattributed, {} quarantined record(s), {} ledger row(s)",
        t.events_counted,
        t.users,
        t.llm_requests,
        t.unattributed,
        t.rejected,
        t.ledger_rows
    );
    Ok(())
}

/// Epoch seconds as an RFC 3339 UTC time (the number itself if out of range).
pub fn epoch_text(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| t.to_string())
}
