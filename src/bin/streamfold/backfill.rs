//! `streamfold backfill` and `streamfold tail`: build the clients, draw
//! progress bars (indicatif), stop cleanly on Ctrl-C and print the summary.
//! The work is the library's (`sources::scan`, `sources::export`,
//! `sources::tail`).

use crate::print::{print_counts, print_totals};
use anyhow::Result;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
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

static STOP: AtomicBool = AtomicBool::new(false);

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
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>24} [{bar:30}] {human_pos}/{human_len} items {per_sec:>12} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
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

/// Stop after the current batch on the first Ctrl-C, abort on the second.
fn on_ctrl_c() {
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("stopping after the current batch (Ctrl-C again to abort)…");
            STOP.store(true, Ordering::Relaxed);
            let _ = tokio::signal::ctrl_c().await;
            std::process::exit(130);
        }
    });
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

pub async fn run(p: &Pipeline, aws: &aws_config::SdkConfig, job: &Job) -> Result<()> {
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
            print_summary(job.table(), &summary);
            print_totals(&p.store).await?;
            Ok(())
        }
        // Refused data files: the others were applied; say what they did,
        // then fail.
        Err(BackfillError::FilesRefused { summary, refused }) => {
            print_summary(job.table(), &summary);
            print_totals(&p.store).await?;
            anyhow::bail!(
                "backfill of {}: {} data file(s) refused (nothing of them is \
                 checkpointed as done), the others applied:\n  {}",
                job.table(),
                refused.len(),
                refused.join("\n  ")
            )
        }
        Err(BackfillError::Interrupted) => {
            anyhow::bail!(
                "backfill of {} interrupted; rerun with --resume to continue",
                job.table()
            )
        }
        Err(e) => Err(e.into()),
    }
}

fn print_summary(table: &str, s: &BackfillSummary) {
    let secs = s.elapsed.as_secs_f64();
    outln!(
        "backfilled {} item(s) of {} in {secs:.2} s ({:.0} items/s): {} part(s) done, {} already done earlier",
        s.items,
        printable(table),
        s.items as f64 / secs.max(1e-9),
        s.parts_done,
        s.parts_skipped
    );
    outln!();
    print_counts(&s.report);
    outln!();
}
