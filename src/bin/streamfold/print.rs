//! How `streamfold` prints what a run did: outcome counts per source,
//! quarantined records, and the database's totals.

use anyhow::Result;
use streamfold::pipeline::{self, BatchReport};
use streamfold::printable::{Printable, printable};
use streamfold::store::Store;

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
