//! `streamfold audit`: recompute the aggregates from the ledgers (and the
//! compaction bases) and name every stored value that differs; `--fix`
//! repairs them in one transaction. The work is the library's
//! (`streamfold::audit`); this draws progress and prints.
//!
//! Exit codes: 0 nothing differs (or `--fix` repaired every difference in
//! a committed transaction), 3 something differs (nothing repaired), 1 the
//! audit could not run.
//!
//! `--json` prints one `AuditReport` object on stdout:
//!
//! ```json
//! {"cells_checked": 1512, "reports_checked": 4, "fixed": false,
//!  "runs_before_bases": 0,
//!  "differences": [
//!    {"kind": "cell", "slack_id": "U1", "integration": "g", "dow": 2, "hour": 14,
//!     "stored": 6, "recomputed": 5},
//!    {"kind": "report", "account_id": "acct", "report_period": "2024-01",
//!     "model": null, "function": null, "field": "total_tokens",
//!     "stored": "999", "recomputed": "160"}]}
//! ```
//!
//! A `report` difference names a totals field (`model` and `function`
//! null), a model's field (`model` set: `requests`, `tokens`, `cost_usd`)
//! or a function's count (`function` set: `requests`); its values are exact
//! decimal text. With `--fix`, `differences` are those repaired and `fixed`
//! is true.

use crate::cli::AuditArgs;
use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal as _;
use streamfold::audit::{AuditReport, Difference, Progress};
use streamfold::printable::printable;

/// The exit code when something differs and was not repaired.
pub const DIFFERS: u8 = 3;

/// The audit found differences (and did not repair them).
#[derive(Debug)]
pub struct Differs(pub usize);

impl std::fmt::Display for Differs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} stored value(s) differ from the ledger's recomputation",
            self.0
        )
    }
}

impl std::error::Error for Differs {}

/// A bar on a terminal; a line at start and end otherwise.
struct Display {
    bar: Option<ProgressBar>,
}

impl Display {
    fn new() -> Display {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "audit [{bar:30}] {human_pos}/~{human_len} rows {per_sec:>12} {elapsed}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        });
        Display { bar }
    }
}

impl Progress for Display {
    fn start(&self, total: u64) {
        match &self.bar {
            Some(b) => {
                b.set_length(total);
                b.set_position(0);
                b.reset_elapsed();
            }
            None => eprintln!("audit: reading about {total} row(s) of aggregates and ledgers…"),
        }
    }

    fn advance(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    fn finish(&self) {
        match &self.bar {
            Some(b) => b.finish_and_clear(),
            None => eprintln!("audit: done"),
        }
    }
}

fn describe(d: &Difference) -> String {
    match d {
        Difference::Cell {
            slack_id,
            integration,
            dow,
            hour,
            stored,
            recomputed,
        } => format!(
            "user_event_counts slack_id={} integration={} dow={dow} hour={hour}: stored {stored}, recomputed {recomputed}",
            printable(slack_id),
            printable(integration)
        ),
        Difference::Report {
            account_id,
            report_period,
            model,
            function,
            field,
            stored,
            recomputed,
        } => {
            let part = match (model, function) {
                (Some(m), _) => format!(" model={}", printable(m)),
                (_, Some(f)) => format!(" function={}", printable(f)),
                _ => String::new(),
            };
            format!(
                "llm report {}#{}{part} {field}: stored {}, recomputed {}",
                printable(account_id),
                printable(report_period),
                printable(stored),
                printable(recomputed)
            )
        }
    }
}

fn print_report(report: &AuditReport) {
    for d in &report.differences {
        outln!("{}", describe(d));
    }
    outln!(
        "{} cell(s) and {} LLM report(s) compared: {} difference(s)",
        report.cells_checked,
        report.reports_checked,
        report.differences.len()
    );
}

fn print_json(report: &AuditReport) -> Result<()> {
    outln!("{}", serde_json::to_string(report)?);
    Ok(())
}

/// `streamfold audit`.
pub async fn run(args: AuditArgs) -> Result<()> {
    let cfg = args.common.config().await?;
    let store = crate::setup::store(&cfg).await?;
    let display = Display::new();
    let report = streamfold::audit::audit(&store, &display).await?;
    if report.runs_before_bases > 0 {
        eprintln!(
            "warning: {} compaction run(s) dropped ledger rows before base totals were kept: \
             their counts are in the aggregates but cannot be recomputed, so cells and reports \
             they touched show stored > recomputed without being wrong (--fix is refused)",
            report.runs_before_bases
        );
    }
    if report.is_clean() {
        if args.json {
            print_json(&report)?;
        } else {
            print_report(&report);
        }
        return Ok(());
    }
    if !args.fix {
        if args.json {
            print_json(&report)?;
        } else {
            print_report(&report);
        }
        return Err(Differs(report.differences.len()).into());
    }
    if !args.json {
        print_report(&report);
        outln!("repairing in one transaction: each value above is set to its recomputation…");
    }
    let fixed = streamfold::audit::fix(&store, &display).await?;
    if args.json {
        print_json(&fixed)?;
    } else if fixed.differences != report.differences {
        // Batches committed between the two reads: say what was repaired.
        outln!("differences found inside the repair's transaction:");
        print_report(&fixed);
    }
    if !args.json {
        outln!(
            "repaired {} difference(s); the transaction committed",
            fixed.differences.len()
        );
    }
    Ok(())
}
