//! `streamfold backfill` and `streamfold tail`: build the clients, draw
//! progress bars (indicatif), stop cleanly on Ctrl-C and print the summary.
//! The work is the library's (`sources::scan`, `sources::export`,
//! `sources::tail`).

use crate::cli::Output;
use crate::print::{self, print_counts, print_totals};
use crate::progress::{self, STOP, on_ctrl_c};
use anyhow::Result;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget};
use std::collections::HashMap;
use std::sync::Mutex;
use streamfold::pipeline::Pipeline;
use streamfold::printable::printable;
use streamfold::sources::backfill::{BackfillError, BackfillSummary, Observer};
use streamfold::sources::export::{ExportLocation, ExportOptions, export_backfill};
use streamfold::sources::scan::{ScanOptions, scan_backfill};

/// What to backfill from: the library's own options.
pub enum Job {
    Scan(ScanOptions),
    Export(ExportOptions),
}

impl Job {
    fn table(&self) -> &str {
        match self {
            Job::Scan(o) => &o.table,
            Job::Export(o) => &o.table,
        }
    }
}

/// One bar per segment / data file: items, items/s, ETA.
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    fn new() -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
        }
    }
}

impl Observer for Bars {
    fn note(&self, message: &str) {
        if self.multi.println(printable(message)).is_err() || self.multi.is_hidden() {
            eprintln!("{}", printable(message));
        }
    }

    fn started(&self, part: &str, expected: Option<u64>, already: u64) {
        let bar = match expected {
            Some(n) => ProgressBar::new(n.max(already)),
            None => ProgressBar::no_length(),
        };
        bar.set_style(progress::bar_style(
            "{prefix:>24} [{bar:30}] {human_pos}/{human_len} items {rate:>10} ETA {eta}",
        ));
        bar.set_prefix(printable(part).into_owned());
        bar.set_position(already);
        let bar = self.multi.add(bar);
        self.bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(part.to_string(), bar);
    }

    fn advanced(&self, part: &str, items: u64) {
        if let Some(b) = self
            .bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(part)
        {
            b.inc(items);
        }
    }

    fn finished(&self, part: &str) {
        if let Some(b) = self
            .bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(part)
        {
            b.finish();
        }
    }
}

/// `streamfold tail`.
pub async fn tail(
    p: &Pipeline,
    aws: &aws_config::SdkConfig,
    opts: &streamfold::sources::tail::TailOptions,
) -> Result<()> {
    on_ctrl_c();
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let streams = aws_sdk_dynamodbstreams::Client::new(aws);
    eprintln!(
        "following the stream of {} (Ctrl-C stops)…",
        printable(&opts.table)
    );
    let summary = streamfold::sources::tail::tail(
        p,
        &dynamodb,
        &streams,
        opts,
        &streamfold::sources::backfill::Quiet,
        &STOP,
    )
    .await?;
    let secs = summary.elapsed.as_secs_f64();
    outln!(
        "applied {} stream record(s) of {} in {secs:.2} s; {} shard(s) read to their end",
        summary.items,
        printable(&opts.table),
        summary.parts_done
    );
    outln!();
    print_counts(&summary.report);
    outln!();
    print_totals(&p.store).await?;
    Ok(())
}

pub async fn run(
    p: &Pipeline,
    aws: &aws_config::SdkConfig,
    job: &Job,
    output: Output,
) -> Result<()> {
    on_ctrl_c();
    let bars = Bars::new();
    let result = match job {
        Job::Export(opts) => {
            let s3 = matches!(opts.location, ExportLocation::S3 { .. })
                .then(|| streamfold::sources::export::s3_client(aws));
            export_backfill(p, s3.as_ref(), opts, &bars, &STOP).await
        }
        Job::Scan(opts) => {
            // Throttling is retried by the SDK: more attempts than the
            // default for a long-running scan.
            let conf = aws_sdk_dynamodb::config::Builder::from(aws)
                .retry_config(
                    aws_config::retry::RetryConfig::standard()
                        .with_max_attempts(10)
                        .with_initial_backoff(std::time::Duration::from_millis(100)),
                )
                .build();
            let client = aws_sdk_dynamodb::Client::from_conf(conf);
            scan_backfill(p, &client, opts, &bars, &STOP).await
        }
    };
    let _ = bars.multi.clear();
    match result {
        Ok(summary) => {
            print_summary(p, job.table(), &summary, &[], output).await?;
            Ok(())
        }
        // Refused data files: the others were applied; say what they did,
        // then fail.
        Err(BackfillError::FilesRefused { summary, refused }) => {
            print_summary(p, job.table(), &summary, &refused, output).await?;
            anyhow::bail!(
                "backfill of {}: {} data file(s) refused (nothing of them is \
                 checkpointed as done), the others applied:\n  {}",
                job.table(),
                refused.len(),
                refused.join("\n  ")
            )
        }
        Err(BackfillError::Interrupted) => Err(progress::Interrupted(format!(
            "backfill of {} interrupted; rerun with --resume to continue",
            printable(job.table())
        ))
        .into()),
        Err(e) => Err(e.into()),
    }
}

/// The backfill's summary, as text or (`--json`) one object.
async fn print_summary(
    p: &Pipeline,
    table: &str,
    s: &BackfillSummary,
    refused: &[String],
    output: Output,
) -> Result<()> {
    let secs = s.elapsed.as_secs_f64();
    if output.json {
        print::json(&serde_json::json!({
            "table": table,
            "items": s.items,
            "seconds": secs,
            "parts_done": s.parts_done,
            "parts_skipped": s.parts_skipped,
            "refused": refused,
            "counts": print::counts_json(&s.report),
            "totals": print::totals_json(&p.store).await?,
        }));
        return Ok(());
    }
    outln!(
        "backfilled {} item(s) of {} in {secs:.2} s ({}): {} part(s) done, {} already done earlier",
        s.items,
        printable(table),
        progress::rate(s.items as f64 / secs.max(1e-9)).replace("/s", " items/s"),
        s.parts_done,
        s.parts_skipped
    );
    outln!();
    print_counts(&s.report);
    outln!();
    print_totals(&p.store).await?;
    Ok(())
}
