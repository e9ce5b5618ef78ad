//! `streamfold` command line: a thin layer of argument parsing and printing
//! over the library.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Instant;
use streamfold::bench::suite::SuiteOptions;
use streamfold::config::{self, Config};
use streamfold::pipeline::{self, BatchReport, Pipeline};
use streamfold::redact::redact_url;
use streamfold::report::publish::ReportPublisher;
use streamfold::resolve::local::LocalDirectory;
use streamfold::sources::replay;
use streamfold::sources::scan::Segments;
use streamfold::store::reports::ReportFilter;
use streamfold::store::{Store, StoreOptions};

/// Print to stdout; a closed pipe (`streamfold … | head`) ends the program
/// quietly instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

#[path = "streamfold/backfill.rs"]
mod backfill;

#[derive(Parser)]
#[command(
    name = "streamfold",
    version,
    about = "Fold DynamoDB Streams into activity heatmaps and LLM reports, exactly once"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// Database URL (sqlite://FILE is created if missing).
    #[arg(long, env = "DATABASE_URL", default_value = config::DEFAULT_DATABASE_URL)]
    database_url: String,
    /// AWS Secrets Manager secret (RDS credentials JSON) to build the
    /// database URL from, instead of --database-url.
    #[arg(long, env = "DATABASE_SECRET_ARN")]
    database_secret_arn: Option<String>,
    /// Folder of DynamoDB-JSON identity items (<table suffix>.jsonl).
    #[arg(long, default_value = config::DEFAULT_DIRECTORY)]
    directory: PathBuf,
    /// Time zone for users without a valid one.
    #[arg(long, env = "DEFAULT_TIMEZONE", default_value = "UTC")]
    default_tz: String,
    /// Database connections in the pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 4)]
    max_connections: u32,
    /// Seconds to keep trying to reach the database.
    #[arg(long, env = "DATABASE_CONNECT_TIMEOUT", default_value_t = 10)]
    connect_timeout: u64,
    /// Allow a URL that disables TLS to a non-loopback database host.
    #[arg(long, env = "STREAMFOLD_DB_ALLOW_PLAINTEXT")]
    allow_plaintext: bool,
}

impl Common {
    async fn config(&self) -> Result<Config> {
        let database_url = match &self.database_secret_arn {
            Some(arn) => {
                let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                let client = aws_sdk_secretsmanager::Client::new(&aws);
                streamfold::store::secret::database_url_from_secret(&client, arn, None).await?
            }
            None => self.database_url.clone(),
        };
        Ok(Config {
            database_url,
            directory: self.directory.clone(),
            default_tz: config::parse_default_tz(&self.default_tz).map_err(anyhow::Error::msg)?,
            store: StoreOptions {
                max_connections: self.max_connections,
                allow_plaintext: self.allow_plaintext,
                connect_timeout: std::time::Duration::from_secs(self.connect_timeout),
                ..StoreOptions::default()
            },
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Replay Lambda DynamoDB stream event files (.json, .jsonl) or folders of them.
    Replay {
        #[command(flatten)]
        common: Common,
        /// Files or folders, applied in name order.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Show a user's 7×24 heatmap (day of week × hour, in the user's time
    /// zone), or without --slack-id the database's totals.
    Stats {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        slack_id: Option<String>,
        /// Only one integration: G (GitHub), D (Dropbox) or E (e-mail).
        #[arg(long, value_parser = ["G", "D", "E"])]
        integration: Option<String>,
        /// Also draw the user's heatmap as a PNG image.
        #[arg(long, requires = "slack_id")]
        png: Option<PathBuf>,
        /// Without --slack-id: how many top users to list.
        #[arg(long, default_value_t = 10)]
        top: u32,
    },
    /// Resolve unattributed events again and count those now linked, once.
    Reattribute {
        #[command(flatten)]
        common: Common,
    },
    /// List quarantined records and their reasons.
    Rejects {
        #[command(subcommand)]
        action: RejectsAction,
    },
    /// Benchmarks: each row against a baseline run in the same process on
    /// the same data (BENCHMARKS.md); --smoke for a quick small run.
    Bench {
        /// Database URL: sqlite (a temporary file is used) or a MySQL /
        /// PostgreSQL server on which scratch databases may be created.
        #[arg(long, default_value = "sqlite://bench.db")]
        database_url: String,
        /// Folder of identity items, as for replay.
        #[arg(long, default_value = config::DEFAULT_DIRECTORY)]
        directory: PathBuf,
        /// Records per round.
        #[arg(long, default_value_t = 100_000)]
        records: usize,
        /// Records per Lambda batch.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Rounds (each on a fresh database); min and median are reported.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Records of the per-event baseline (a prefix of the same data).
        #[arg(long, default_value_t = 20_000)]
        per_event_records: usize,
        /// Ledger rows already present for the scaling row (0 skips it).
        #[arg(long, default_value_t = 5_000_000)]
        history_rows: usize,
        /// Small sizes, one round: checks that every row runs (CI).
        #[arg(long)]
        smoke: bool,
        /// The streamfold-lambda binary for the Lambda rows (build it with
        /// the profile to measure); without it those rows are skipped.
        #[arg(long, requires = "hello_bin")]
        lambda_bin: Option<PathBuf>,
        /// The lambda_hello example built with the same profile.
        #[arg(long, requires = "lambda_bin")]
        hello_bin: Option<PathBuf>,
        /// Run only these rows (comma-separated); all rows by default.
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<BenchRow>,
    },
    /// Print monthly LLM usage reports as JSON Lines (LLMReportData items:
    /// seed field names, exact decimal numbers); --publish also writes them
    /// to the LLMReportData table.
    LlmReport {
        #[command(flatten)]
        common: Common,
        /// Only this account.
        #[arg(long)]
        account: Option<String>,
        /// Only this UTC month, YYYY-MM.
        #[arg(long, value_parser = parse_period)]
        period: Option<String>,
        /// Write the reports to DynamoDB (conditional on their version).
        #[arg(long)]
        publish: bool,
        /// LLMReportData table; default: $TABLE_LLMREPORTDATA, else
        /// $ACS_TABLE_PREFIX followed by LLMReportData.
        #[arg(long)]
        table: Option<String>,
    },
    /// Fold a table's existing items in: a parallel Scan, or (--export) a
    /// DynamoDB export to S3. Items enter as snapshots with the lowest
    /// version, so running alongside the stream never double-counts.
    Backfill {
        #[command(flatten)]
        common: Common,
        /// Source table name (with its prefix, e.g. icarus-prod-github_events).
        #[arg(long)]
        table: String,
        /// Scan segments run in this process (default: from the table's size).
        #[arg(long, conflicts_with_all = ["segment", "total_segments", "export"])]
        segments: Option<u32>,
        /// Run only this segment (0-based) of --total-segments.
        #[arg(long, requires = "total_segments", conflicts_with = "export")]
        segment: Option<u32>,
        #[arg(long, requires = "segment")]
        total_segments: Option<u32>,
        /// Continue from the checkpoints of an interrupted run.
        #[arg(long)]
        resume: bool,
        /// Read capacity units per second, all segments together.
        #[arg(long)]
        max_rcu: Option<f64>,
        /// Items per second, all segments together.
        #[arg(long)]
        max_items_per_sec: Option<f64>,
        /// Items per Scan page.
        #[arg(long)]
        page_size: Option<i32>,
        /// Strongly consistent Scan reads (twice the capacity).
        #[arg(long)]
        consistent_read: bool,
        /// Read a DynamoDB export (DYNAMODB_JSON): the export's folder,
        /// local or s3://bucket/prefix.
        #[arg(long)]
        export: Option<String>,
        /// Export data files processed at once.
        #[arg(long, default_value_t = 2)]
        parallel: usize,
        /// Export items per batch (one transaction each).
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Where identities are resolved: the local --directory, or the
        /// DynamoDB tables named by ICARUS_TABLE_PREFIX / ACS_TABLE_PREFIX.
        #[arg(long, value_enum, default_value_t = Lookups::Local)]
        lookups: Lookups,
    },
    /// Follow a table's stream through the DynamoDB Streams API (no Lambda),
    /// checkpointing each shard in the database; a restart resumes.
    Tail {
        #[command(flatten)]
        common: Common,
        /// Source table name (with its prefix).
        #[arg(long)]
        table: String,
        /// Where shards without a checkpoint start.
        #[arg(long, value_enum, default_value_t = From::TrimHorizon)]
        from: From,
        /// Milliseconds between polls when nothing is new.
        #[arg(long, default_value_t = 1000)]
        poll_ms: u64,
        /// Stop after this many idle polling rounds (default: follow forever).
        #[arg(long)]
        until_idle: Option<u32>,
        #[arg(long, value_enum, default_value_t = Lookups::Local)]
        lookups: Lookups,
    },
    /// Create or update the database schema.
    Migrate {
        #[command(flatten)]
        common: Common,
    },
}

/// Quarantined records: see them, and re-run them after a fix.
#[derive(Subcommand)]
enum RejectsAction {
    /// List quarantined records and their reasons.
    List {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Show one quarantined record: its reason and the raw record.
    Show {
        #[command(flatten)]
        common: Common,
        id: i64,
    },
    /// Re-run quarantined records (these ids, or --all); those applied now
    /// leave the quarantine, the others stay with their new reason.
    Retry {
        #[command(flatten)]
        common: Common,
        #[arg(required_unless_present = "all")]
        ids: Vec<i64>,
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum From {
    TrimHorizon,
    Latest,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Lookups {
    Local,
    Dynamodb,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(streamfold::logging::filter("error"))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("streamfold: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn open(cfg: &Config) -> Result<Pipeline> {
    let store = Store::open_with(&cfg.database_url, &cfg.store).await?;
    let directory = LocalDirectory::load(&cfg.directory)?;
    Ok(Pipeline {
        store,
        directory: directory.into(),
        default_tz: cfg.default_tz,
        publisher: None,
    })
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Replay { common, paths } => {
            let cfg = common.config().await?;
            let p = open(&cfg).await?;
            let files = replay::event_files(&paths)?;
            let started = Instant::now();
            let mut batches = 0usize;
            let mut records = 0u64;
            let mut last_progress = Instant::now();
            // Where each rejected record came from: (file:line, record).
            let mut rejected: Vec<(String, streamfold::pipeline::Rejection)> = Vec::new();
            let total = replay::replay(&p, &files, |file, line, report| {
                batches += 1;
                records += report.total().read;
                let place = format!("{}:{line}", file.display());
                rejected.extend(report.rejections.iter().map(|r| (place.clone(), r.clone())));
                if last_progress.elapsed().as_secs() >= 2 {
                    last_progress = Instant::now();
                    let secs = started.elapsed().as_secs_f64();
                    eprintln!(
                        "… {records} records in {batches} batches ({:.0} records/s), now at {place}",
                        records as f64 / secs.max(1e-9)
                    );
                }
            })
            .await?;
            let secs = started.elapsed().as_secs_f64();
            let read = total.total().read;
            outln!(
                "replayed {} file(s), {batches} batch(es), {read} record(s) in {secs:.2} s ({:.0} records/s) into {}",
                files.len(),
                read as f64 / secs.max(1e-9),
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
            print_counts(&total);
            print_rejections(&rejected);
            outln!();
            print_totals(&p.store).await?;
            if total.total().read == 0 {
                bail!("no records found");
            }
        }
        Command::Stats {
            common,
            slack_id,
            integration,
            png,
            top,
        } => {
            let cfg = common.config().await?;
            let store = Store::open_with(&cfg.database_url, &cfg.store).await?;
            let Some(slack_id) = slack_id else {
                print_totals(&store).await?;
                let users = store.top_users(top).await?;
                if !users.is_empty() {
                    outln!();
                    outln!("top users by events counted:");
                    for (i, (user, n)) in users.iter().enumerate() {
                        outln!("{:>4}. {user:<24} {n:>10}", i + 1);
                    }
                }
                return Ok(());
            };
            let cells = store.heatmap(&slack_id, integration.as_deref()).await?;
            let title = format!(
                "heatmap of {slack_id}{}",
                integration
                    .map(|i| format!(", integration {i}"))
                    .unwrap_or_default()
            );
            outln!("{title} (rows: day of week, columns: hour, user's time zone)");
            out!("{}", streamfold::heatmap::render(&cells));
            if let Some(path) = png {
                let labelled = streamfold::heatmap::png::render_png(&cells, &title, &path)?;
                outln!("wrote {}", path.display());
                if !labelled {
                    eprintln!(
                        "no TrueType font found (set STREAMFOLD_FONT=/path/to/font.ttf): the image has no text"
                    );
                }
            }
        }
        Command::Reattribute { common } => {
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
        }
        Command::Rejects { action } => rejects(action).await?,
        Command::Bench {
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
        } => {
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
            bench(
                &opts,
                lambda.as_ref(),
                if smoke { 1000 } else { 10_000 },
                &only,
            )
            .await?
        }
        Command::LlmReport {
            common,
            account,
            period,
            publish,
            table,
        } => {
            let cfg = common.config().await?;
            let store = Store::open_with(&cfg.database_url, &cfg.store).await?;
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
                let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
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
                    bail!(
                        "{} report(s) could not be written; they stay pending",
                        s.failed
                    );
                }
            }
        }
        Command::Backfill {
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
            parallel,
            batch,
            lookups,
        } => {
            let cfg = common.config().await?;
            let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let job = match export {
                Some(location) => {
                    backfill::Job::Export(streamfold::sources::export::ExportOptions {
                        location: streamfold::sources::export::ExportLocation::parse(&location)
                            .map_err(anyhow::Error::msg)?,
                        table,
                        parallel,
                        batch,
                        resume,
                    })
                }
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
                }),
            };
            let p = pipeline_for(lookups, &cfg, &aws).await?;
            backfill::run(&p, &aws, &job).await?;
        }
        Command::Tail {
            common,
            table,
            from,
            poll_ms,
            until_idle,
            lookups,
        } => {
            let cfg = common.config().await?;
            let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
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
        }
        Command::Migrate { common } => {
            let cfg = common.config().await?;
            let store = Store::connect(&cfg.database_url, &cfg.store).await?;
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
        }
    }
    Ok(())
}

fn print_counts(report: &BatchReport) {
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
            name,
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
}

fn print_rejections(rejected: &[(String, streamfold::pipeline::Rejection)]) {
    if rejected.is_empty() {
        return;
    }
    outln!();
    outln!(
        "rejected records (quarantined in rejected_records; `streamfold rejects list` shows them):"
    );
    for (place, r) in rejected.iter().take(30) {
        outln!(
            "  {place} record {} ({}): {}",
            r.index + 1,
            r.meta,
            r.reason
        );
    }
    if rejected.len() > 30 {
        outln!("  … and {} more", rejected.len() - 30);
    }
}

async fn print_totals(store: &Store) -> Result<()> {
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

async fn rejects(action: RejectsAction) -> Result<()> {
    match action {
        RejectsAction::List { common, limit } => {
            let cfg = common.config().await?;
            let store = Store::open_with(&cfg.database_url, &cfg.store).await?;
            let rows = store.rejects(limit).await?;
            if rows.is_empty() {
                outln!("no quarantined records");
            }
            for r in rows {
                outln!(
                    "#{} {} source {} event {} sequence {}: {}",
                    r.id,
                    r.rejected_at,
                    r.source.as_deref().unwrap_or("unknown"),
                    r.event_id.as_deref().unwrap_or("?"),
                    r.sequence_number.as_deref().unwrap_or("?"),
                    r.reason
                );
            }
        }
        RejectsAction::Show { common, id } => {
            let cfg = common.config().await?;
            let store = Store::open_with(&cfg.database_url, &cfg.store).await?;
            let found = store.rejected_raw(id - 1, 1).await?;
            let Some((r, raw)) = found.into_iter().next().filter(|(r, _)| r.id == id) else {
                bail!("no quarantined record #{id}");
            };
            outln!("record #{}, quarantined {}", r.id, r.rejected_at);
            outln!("source:   {}", r.source.as_deref().unwrap_or("unknown"));
            outln!("event:    {}", r.event_id.as_deref().unwrap_or("?"));
            outln!("sequence: {}", r.sequence_number.as_deref().unwrap_or("?"));
            outln!("reason:   {}", r.reason);
            let pretty = serde_json::from_str::<serde_json::Value>(&raw)
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or(raw);
            outln!("{pretty}");
        }
        RejectsAction::Retry { common, ids, all } => {
            let cfg = common.config().await?;
            let p = open(&cfg).await?;
            let only = if all { Vec::new() } else { ids };
            let r = streamfold::quarantine::retry_rejects(&p, &only, 500)
                .await
                .context("retrying quarantined records failed")?;
            outln!(
                "retried {} quarantined record(s): {} applied and released, {} still rejected",
                r.retried,
                r.resolved,
                r.still_rejected.len()
            );
            for (id, reason) in r.still_rejected.iter().take(30) {
                outln!("  #{id}: {reason}");
            }
            if r.retried > 0 {
                outln!();
                print_counts(&r.report);
            }
        }
    }
    Ok(())
}

/// A pipeline resolving identities in the DynamoDB tables named by
/// ICARUS_TABLE_PREFIX / ACS_TABLE_PREFIX (and TABLE_* overrides).
/// A pipeline that resolves identities as `lookups` says: the local
/// directory, or the DynamoDB tables.
async fn pipeline_for(
    lookups: Lookups,
    cfg: &Config,
    aws: &aws_config::SdkConfig,
) -> Result<Pipeline> {
    match lookups {
        Lookups::Local => open(cfg).await,
        Lookups::Dynamodb => {
            let store = Store::open_with(&cfg.database_url, &cfg.store).await?;
            dynamo_pipeline(store, cfg, aws)
        }
    }
}

fn dynamo_pipeline(store: Store, cfg: &Config, aws: &aws_config::SdkConfig) -> Result<Pipeline> {
    let lookups = streamfold::config::LookupSettings::from_env(|k| std::env::var(k).ok())?;
    Ok(Pipeline {
        store,
        directory: streamfold::resolve::dynamo::DynamoDirectory::new(
            aws_sdk_dynamodb::Client::new(aws),
            lookups.tables,
            lookups.cache,
        )
        .into(),
        default_tz: cfg.default_tz,
        publisher: None,
    })
}

fn parse_period(s: &str) -> Result<String, String> {
    chrono::NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d")
        .ok()
        .filter(|_| s.len() == 7)
        .map(|_| s.to_string())
        .ok_or_else(|| format!("{s:?} is not a month like 2024-01"))
}

/// Rows of `streamfold bench`, for `--only`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum BenchRow {
    /// Apply vs bulk INSERT and vs the per-event pattern.
    Apply,
    /// Apply with a large ledger vs an empty one.
    Scaling,
    /// Statements per batch of 100 / 1,000 / 10,000.
    RoundTrips,
    /// Parse + normalise vs IgnoredAny.
    Normalize,
    /// Init, peak RSS, per-invocation overhead (needs --lambda-bin).
    Lambda,
}

async fn bench(
    opts: &SuiteOptions,
    lambda: Option<&(PathBuf, PathBuf)>,
    big_event: usize,
    only: &dyn Fn(BenchRow) -> bool,
) -> Result<()> {
    use streamfold::bench::suite;
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
