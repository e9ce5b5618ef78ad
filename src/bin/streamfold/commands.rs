//! Each subcommand of `streamfold`, run from its parsed arguments.

use crate::backfill;
use crate::cli::*;
use crate::print::{self, print_counts, print_rejections, print_totals};
use crate::progress;
use crate::setup::{open, pipeline_for};
use anyhow::{Context, Result, bail};
use std::time::Instant;
use streamfold::bench::suite::SuiteOptions;
use streamfold::pipeline;
use streamfold::printable::printable;
use streamfold::redact::redact_url;
use streamfold::report::publish::ReportPublisher;
use streamfold::sources::export::ExportChoice;
use streamfold::sources::replay;
use streamfold::sources::scan::Segments;
use streamfold::store::reports::ReportFilter;

/// `streamfold replay`.
pub async fn replay(args: ReplayArgs) -> Result<()> {
    let ReplayArgs {
        common,
        paths,
        keep_going,
        output,
    } = args;
    let cfg = common.config().await?;
    let p = open(&cfg).await?;
    let files = replay::event_files(&paths)?;
    progress::on_ctrl_c();
    let started = Instant::now();
    let mut records = 0u64;
    let mut batches = 0usize;
    let mut every = progress::Every::new(std::time::Duration::from_secs(2));
    // A bar on a terminal; a line every 2 s when stderr is piped.
    let bar = progress::on_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(progress::bar_style(
            "{spinner} {human_pos} records in {elapsed} ({rate}), now at {msg}",
        ));
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    });
    // Where each rejected record came from: (file:line, record).
    let mut rejected: Vec<(String, streamfold::pipeline::Rejection)> = Vec::new();
    let on_unreadable = if keep_going {
        replay::OnUnreadable::KeepGoing
    } else {
        replay::OnUnreadable::Stop
    };
    let replayed = replay::replay(
        &p,
        &files,
        on_unreadable,
        &progress::STOP,
        |file, line, report| {
            batches += 1;
            let read = report.total().read;
            records += read;
            let place = format!("{}:{line}", file.display());
            rejected.extend(report.rejections.iter().map(|r| (place.clone(), r.clone())));
            match &bar {
                Some(bar) => {
                    bar.inc(read);
                    bar.set_message(printable(&place).into_owned());
                }
                None if every.due() => {
                    let secs = started.elapsed().as_secs_f64();
                    eprintln!(
                        "… {} records in {} batches ({}), now at {}",
                        progress::thousands(records),
                        progress::thousands(batches as u64),
                        progress::rate(records as f64 / secs.max(1e-9)),
                        printable(&place)
                    );
                }
                None => {}
            }
        },
    )
    .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let total = &replayed.total;
    let secs = started.elapsed().as_secs_f64();
    let read = total.total().read;
    let interrupted = replayed.interrupted.as_ref().map(|(file, line)| {
        format!(
            "replay interrupted before {}:{line}: the batches before it are applied; \
             run the same command again to apply the rest (what was applied is \
             recognised, not counted twice)",
            printable(&file.display().to_string())
        )
    });
    if output.json {
        let stopped = replayed
            .stopped
            .as_ref()
            .map(|e| e.to_string())
            .or_else(|| interrupted.clone());
        let unreadable: Vec<String> = replayed.unreadable.iter().map(|e| e.to_string()).collect();
        print::json(&serde_json::json!({
            "files": files.len(),
            "batches": batches,
            "seconds": secs,
            "database": redact_url(&cfg.database_url),
            "statements": total.statements,
            "splits": total.splits,
            "reports_changed": total.reports_changed,
            "counts": print::counts_json(total),
            "rejected": print::rejections_json(&rejected),
            "unreadable": unreadable,
            "interrupted": replayed.interrupted.is_some(),
            "stopped": stopped,
            "totals": print::totals_json(&p.store).await?,
        }));
    } else {
        let stopped = if replayed.stopped.is_some() {
            " (stopped early: see below)"
        } else if replayed.interrupted.is_some() {
            " (interrupted: see below)"
        } else {
            ""
        };
        outln!(
            "replayed {} file(s), {batches} batch(es), {read} record(s) in {secs:.2} s ({}) into {}{stopped}",
            files.len(),
            progress::rate(read as f64 / secs.max(1e-9)).replace("/s", " records/s"),
            redact_url(&cfg.database_url)
        );
        outln!(
            "{} SQL statement(s), {:.1} per batch",
            total.statements,
            total.statements as f64 / batches.max(1) as f64
        );
        if total.splits > 0 {
            outln!(
                "{} batch split(s): the database refused some records, which were isolated and quarantined",
                total.splits
            );
        }
        if total.reports_changed > 0 {
            outln!(
                "{} LLM report change(s) (`streamfold llm-report` prints the reports)",
                total.reports_changed
            );
        }
        outln!();
        print_counts(total);
        print_rejections(&rejected);
        outln!();
        print_totals(&p.store).await?;
    }
    for e in &replayed.unreadable {
        eprintln!("not applied: {}", printable(&e.to_string()));
    }
    if let Some(e) = replayed.stopped {
        let again = "run the same command again: the batches already applied are \
                     recognised and not counted twice";
        let hint = match &e {
            replay::ReplayError::Malformed { .. } => format!(
                "the events before it are applied, none from it on; fix or remove that \
                 event and {again} (or pass --keep-going to apply every readable event \
                 and list the unreadable ones)"
            ),
            _ => format!("the events before it are applied, none from it on; {again}"),
        };
        bail!("{e}; replay stopped there: {hint}");
    }
    if let Some(message) = interrupted {
        return Err(progress::Interrupted(message).into());
    }
    if !replayed.unreadable.is_empty() {
        bail!(
            "{} unreadable event(s) not applied (listed above); the rest is applied",
            replayed.unreadable.len()
        );
    }
    if read == 0 {
        bail!("no records found");
    }
    Ok(())
}

/// `streamfold reattribute`.
pub async fn reattribute(args: ReattributeArgs) -> Result<()> {
    let ReattributeArgs { common } = args;
    let cfg = common.config().await?;
    let p = open(&cfg).await?;
    let report = pipeline::reattribute(&p, 5000)
        .await
        .context("re-attribution failed")?;
    let t = report.total();
    outln!(
        "re-attribution: {} unattributed event(s) examined, {} now attributed and counted, {} still unlinked",
        t.read,
        t.applied,
        t.unchanged
    );
    Ok(())
}

/// `streamfold rejects`.
pub async fn rejects(args: RejectsArgs) -> Result<()> {
    let RejectsArgs { action } = args;
    crate::rejects::run(action).await
}

/// `streamfold bench`.
pub async fn bench(args: BenchArgs) -> Result<()> {
    let BenchArgs {
        database_url,
        directory,
        records,
        batch,
        rounds,
        per_event_records,
        history_rows,
        smoke,
        lambda_bin,
        hello_bin,
        only,
    } = args;
    let opts = if smoke {
        SuiteOptions {
            url: database_url,
            directory,
            records: 3000,
            batch: 500,
            rounds: 1,
            per_event_records: 300,
            history_rows: 20_000,
        }
    } else {
        SuiteOptions {
            url: database_url,
            directory,
            records,
            batch,
            rounds,
            per_event_records,
            history_rows,
        }
    };
    let lambda = lambda_bin.zip(hello_bin);
    let only = |row| only.is_empty() || only.contains(&row);
    crate::bench::suite(
        &opts,
        lambda.as_ref(),
        if smoke { 1000 } else { 10_000 },
        &only,
    )
    .await?;
    Ok(())
}

/// `streamfold llm-report`.
pub async fn llm_report(args: LlmReportArgs) -> Result<()> {
    let LlmReportArgs {
        db,
        account,
        period,
        publish,
        table,
    } = args;
    let cfg = db.read_only_config().await?;
    let store = crate::setup::store(&cfg).await?;
    let filter = ReportFilter {
        account_id: account,
        period,
        pending_only: false,
        limit: u32::MAX,
    };
    let reports = store.reports(&filter).await?;
    for r in &reports {
        outln!("{}", streamfold::report::json_line(r));
    }
    if publish {
        let table = table
            .or_else(|| streamfold::config::llm_report_table(|k| std::env::var(k).ok()))
            .context("--publish needs --table, TABLE_LLMREPORTDATA or ACS_TABLE_PREFIX")?;
        let aws = streamfold::aws_http::load_sdk_config().await;
        let publisher = ReportPublisher::new(aws_sdk_dynamodb::Client::new(&aws), &table);
        let s = publisher.publish(&store, &filter).await?;
        eprintln!(
            "published {} report(s) to {table}: {} written, {} already there at this or a newer version, {} failed",
            reports.len(),
            s.written,
            s.superseded,
            s.failed
        );
        if s.failed > 0 {
            let first = s
                .failures
                .first()
                .map(String::as_str)
                .unwrap_or("no reason kept");
            let others = match s.failed {
                1 => String::new(),
                n => format!(" (the first of {n})"),
            };
            bail!(
                "{} report(s) could not be written, and stay pending (a later --publish \
                 or Lambda invocation retries them): {first}{others}",
                s.failed,
            );
        }
    }
    Ok(())
}

/// `streamfold backfill`.
pub async fn backfill(args: BackfillArgs) -> Result<()> {
    let BackfillArgs {
        common,
        table,
        segments,
        segment,
        total_segments,
        resume,
        max_rcu,
        max_items_per_sec,
        page_size,
        consistent_read,
        export,
        latest,
        export_id,
        incremental,
        ttl_attribute,
        parallel,
        batch,
        lookups,
        output,
    } = args;
    let cfg = common.config().await?;
    let location = export
        .map(|e| streamfold::sources::export::ExportLocation::parse(&e).map_err(anyhow::Error::msg))
        .transpose()?;
    if let Some(streamfold::sources::export::ExportLocation::Dir(dir)) = &location {
        if dir.is_file() {
            bail!(
                "--export {}: is a file, not an export folder (give the folder the export \
                 was written to, or its AWSDynamoDB folder, or one export's folder)",
                printable(&dir.display().to_string())
            );
        }
        if !dir.exists() {
            bail!(
                "--export {}: no such folder",
                printable(&dir.display().to_string())
            );
        }
    }
    let aws = streamfold::aws_http::load_sdk_config().await;
    let job = match location {
        Some(location) => backfill::Job::Export(streamfold::sources::export::ExportOptions {
            location,
            choice: match (latest, export_id) {
                (_, Some(id)) => ExportChoice::Id(id),
                (true, None) => ExportChoice::Latest,
                (false, None) => ExportChoice::Only,
            },
            table,
            parallel,
            batch,
            resume,
            incremental: incremental
                .then_some(streamfold::sources::export::IncrementalOptions { ttl_attribute }),
        }),
        None => backfill::Job::Scan(streamfold::sources::scan::ScanOptions {
            table,
            segments: match (segments, segment, total_segments) {
                (_, Some(segment), Some(total)) => Segments::One { segment, total },
                (Some(n), _, _) => Segments::All(n),
                _ => Segments::Auto,
            },
            resume,
            max_rcu,
            max_items_per_sec,
            page_size,
            consistent_read,
            max_pages: None,
            run: None,
        }),
    };
    let p = pipeline_for(lookups, &cfg, &aws).await?;
    backfill::run(&p, &aws, &job, output).await?;
    Ok(())
}

/// `streamfold tail`.
pub async fn tail(args: TailArgs) -> Result<()> {
    let TailArgs {
        common,
        table,
        from,
        poll_ms,
        until_idle,
        lookups,
    } = args;
    let cfg = common.config().await?;
    let aws = streamfold::aws_http::load_sdk_config().await;
    let opts = streamfold::sources::tail::TailOptions {
        table,
        start: match from {
            From::TrimHorizon => streamfold::sources::tail::StartAt::TrimHorizon,
            From::Latest => streamfold::sources::tail::StartAt::Latest,
        },
        poll: std::time::Duration::from_millis(poll_ms),
        until_idle,
    };
    let p = pipeline_for(lookups, &cfg, &aws).await?;
    backfill::tail(&p, &aws, &opts).await?;
    Ok(())
}

/// `streamfold migrate`.
pub async fn migrate(args: MigrateArgs) -> Result<()> {
    let MigrateArgs { db } = args;
    let cfg = db.config().await?;
    let store = crate::setup::connect(&cfg).await?;
    let applied = store.migrate().await?;
    if applied.is_empty() {
        outln!(
            "schema of {} was already up to date",
            redact_url(&cfg.database_url)
        );
    } else {
        let list: Vec<String> = applied.iter().map(i64::to_string).collect();
        outln!(
            "applied migration(s) {} to {}",
            list.join(", "),
            redact_url(&cfg.database_url)
        );
    }
    Ok(())
}

/// `streamfold compact`.
pub async fn compact(args: CompactArgs) -> Result<()> {
    let CompactArgs {
        db,
        older_than,
        include_unattributed,
        chunk,
        announce_wait,
        max_time,
        abandon_backfill,
        output,
    } = args;
    let cfg = db.config().await?;
    let store = crate::setup::store(&cfg).await?;
    let known = if abandon_backfill.is_empty() {
        Vec::new()
    } else {
        store.unfinished_backfills().await?
    };
    for job in &abandon_backfill {
        if !known.iter().any(|(j, _)| j == job) {
            anyhow::bail!("--abandon-backfill {job:?}: no unfinished backfill job of that name");
        }
        store.clear_checkpoints(job).await?;
        eprintln!("gave up the backfill job {job}: a later run of it starts over");
    }
    let horizon = chrono::Utc::now().timestamp() - older_than.as_secs() as i64;
    let at = crate::print::epoch_text;
    if store
        .compaction_horizon()
        .await?
        .is_none_or(|h| h < horizon)
    {
        eprintln!(
            "announcing the horizon {} and waiting {} for running consumers to see it…",
            at(horizon),
            humantime::format_duration(announce_wait)
        );
    }
    let (tell, waits) = tokio::sync::mpsc::unbounded_channel();
    let countdown = tokio::spawn(progress::count_down(waits, announce_wait));
    let report = store
        .compact(&streamfold::store::compaction::CompactOptions {
            horizon,
            include_unattributed,
            chunk,
            announce: announce_wait,
            deadline: max_time.map(|d| Instant::now() + d),
            on_wait: Some(tell),
        })
        .await;
    countdown.abort();
    let _ = countdown.await;
    let report = report?;
    let now_horizon = store.compaction_horizon().await?.unwrap_or(report.horizon);
    if output.json {
        print::json(&serde_json::json!({
            "run": report.run,
            "resumed": report.resumed,
            "horizon": at(report.horizon),
            "activity_dropped": report.activity_dropped,
            "llm_dropped": report.llm_dropped,
            "finished": report.finished,
            "skipped_before": at(now_horizon),
            "totals": print::totals_json(&store).await?,
        }));
        return Ok(());
    }
    outln!(
        "compaction run #{}{}: events before {} — dropped {} activity and {} LLM ledger row(s){}",
        report.run,
        if report.resumed { " (resumed)" } else { "" },
        at(report.horizon),
        report.activity_dropped,
        report.llm_dropped,
        if report.finished {
            ""
        } else {
            "; stopped at --max-time, run again to go on"
        }
    );
    outln!(
        "from now on, a record of an event before {} whose ledger row is gone is skipped, not counted",
        at(now_horizon)
    );
    print_totals(&store).await?;
    Ok(())
}
