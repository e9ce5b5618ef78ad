//! `streamfold bench`: the suite's rows printed as a Markdown table.

use crate::cli::BenchRow;
use anyhow::{Result, bail};
use std::path::PathBuf;
use streamfold::bench::suite::SuiteOptions;
use streamfold::redact::redact_url;

pub async fn suite(
    opts: &SuiteOptions,
    lambda: Option<&(PathBuf, PathBuf)>,
    big_event: usize,
    only: &dyn Fn(BenchRow) -> bool,
) -> Result<()> {
    use streamfold::bench::suite;
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build: its numbers mean nothing; build with \
             `cargo build --release` and run target/release/streamfold bench"
        );
    }
    outln!(
        "bench: {} records in batches of {}, {} round(s), engine {}",
        opts.records,
        opts.batch,
        opts.rounds,
        redact_url(&opts.url)
    );
    let mut rows = Vec::new();
    if only(BenchRow::Apply) {
        let (bulk, each, _) = suite::apply_rows(opts).await?;
        rows.push(bulk);
        rows.push(each);
    }
    if opts.history_rows > 0 && only(BenchRow::Scaling) {
        eprintln!(
            "… scaling: filling a ledger with {} rows",
            opts.history_rows
        );
        rows.push(suite::scaling_row(opts).await?);
    }
    if only(BenchRow::RoundTrips) {
        rows.extend(suite::round_trip_rows(opts).await?);
    }
    if only(BenchRow::Normalize) {
        rows.push(suite::normalization_row(opts.records, opts.rounds.max(3)));
    }
    if let Some((lambda_bin, hello_bin)) = lambda
        && only(BenchRow::Lambda)
    {
        rows.extend(
            suite::lambda_rows(
                lambda_bin,
                hello_bin,
                &opts.directory,
                opts.rounds,
                big_event,
            )
            .await?,
        );
    }
    outln!();
    outln!("| row | baseline | min | median | goal | met | measured |");
    outln!("|---|---|---|---|---|---|---|");
    for r in &rows {
        outln!(
            "| {} | {} | {:.2} | {:.2} | {} | {} | {} |",
            r.name,
            r.baseline,
            r.min(),
            r.median(),
            r.goal,
            match r.met {
                Some(true) => "yes",
                Some(false) => "no",
                None => "—",
            },
            r.detail
        );
        if !r.values.iter().all(|v| v.is_finite()) {
            bail!("row {:?} computed no value", r.name);
        }
    }
    Ok(())
}
