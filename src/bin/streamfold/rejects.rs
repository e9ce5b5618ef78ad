//! `streamfold rejects`: list, show and re-run quarantined records.

use crate::cli::RejectsAction;
use crate::print::{self, print_counts};
use crate::setup::open;
use anyhow::{Context, Result, bail};
use streamfold::printable::printable;

/// An optional text as printed: escaped, or `default`.
fn or<'a>(text: &'a Option<String>, default: &'a str) -> std::borrow::Cow<'a, str> {
    printable(text.as_deref().unwrap_or(default))
}

pub async fn run(action: RejectsAction) -> Result<()> {
    match action {
        RejectsAction::List { db, limit, output } => {
            let cfg = db.read_only_config().await?;
            let store = crate::setup::store(&cfg).await?;
            let rows = store.rejects(limit).await?;
            if output.json {
                // JSON Lines: one object per quarantined record.
                for r in rows {
                    print::json(&serde_json::json!({
                        "id": r.id,
                        "rejected_at": r.rejected_at,
                        "source": r.source,
                        "event_id": r.event_id,
                        "sequence_number": r.sequence_number,
                        "reason": r.reason,
                    }));
                }
                return Ok(());
            }
            if rows.is_empty() {
                outln!("no quarantined records");
            }
            for r in rows {
                outln!(
                    "#{} {} source {} event {} sequence {}: {}",
                    r.id,
                    r.rejected_at,
                    or(&r.source, "unknown"),
                    or(&r.event_id, "?"),
                    or(&r.sequence_number, "?"),
                    printable(&r.reason)
                );
            }
        }
        RejectsAction::Show { db, id, output } => {
            let cfg = db.read_only_config().await?;
            let store = crate::setup::store(&cfg).await?;
            let found = store.rejected_raw(id - 1, 1).await?;
            let Some((r, raw)) = found.into_iter().next().filter(|(r, _)| r.id == id) else {
                bail!("no quarantined record #{id}");
            };
            if output.json {
                // The record itself when it is JSON, else its text.
                let record = serde_json::from_str::<serde_json::Value>(&raw)
                    .unwrap_or(serde_json::Value::String(raw));
                print::json(&serde_json::json!({
                    "id": r.id,
                    "rejected_at": r.rejected_at,
                    "source": r.source,
                    "event_id": r.event_id,
                    "sequence_number": r.sequence_number,
                    "reason": r.reason,
                    "record": record,
                }));
                return Ok(());
            }
            outln!("record #{}, quarantined {}", r.id, r.rejected_at);
            outln!("source:   {}", or(&r.source, "unknown"));
            outln!("event:    {}", or(&r.event_id, "?"));
            outln!("sequence: {}", or(&r.sequence_number, "?"));
            outln!("reason:   {}", printable(&r.reason));
            // JSON escapes control characters in strings; text that is not
            // JSON is escaped whole (its newlines too).
            let pretty = serde_json::from_str::<serde_json::Value>(&raw)
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or_else(|_| printable(&raw).into_owned());
            outln!("{pretty}");
        }
        RejectsAction::Retry { common, ids, all } => {
            let cfg = common.config().await?;
            let p = open(&cfg).await?;
            if !all {
                let known: std::collections::HashSet<i64> = p
                    .store
                    .rejects(u32::MAX)
                    .await?
                    .iter()
                    .map(|r| r.id)
                    .collect();
                let unknown: Vec<String> = ids
                    .iter()
                    .filter(|id| !known.contains(id))
                    .map(i64::to_string)
                    .collect();
                if !unknown.is_empty() {
                    bail!(
                        "no rejected record with id {} (`streamfold rejects list` shows them)",
                        unknown.join(", ")
                    );
                }
            }
            let only = if all { Vec::new() } else { ids };
            let r = streamfold::rejects::retry_rejects(&p, &only, 500)
                .await
                .context("retrying quarantined records failed")?;
            outln!(
                "retried {} quarantined record(s): {} applied and released, {} still rejected",
                r.retried,
                r.resolved,
                r.still_rejected.len()
            );
            for (id, reason) in r.still_rejected.iter().take(30) {
                outln!("  #{id}: {}", printable(reason));
            }
            if r.retried > 0 {
                outln!();
                print_counts(&r.report);
            }
        }
    }
    Ok(())
}
