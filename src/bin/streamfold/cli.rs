//! The argument schema of `streamfold` (clap derive): one `Args` struct per
//! subcommand, the database options (`Db`) and lookup options (`Lookup`)
//! each command takes only if it uses them, the `--json` switch (`Output`)
//! and how they become a `Config`.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use streamfold::config::{self, Config};
use streamfold::store::StoreOptions;

#[derive(Parser)]
#[command(
    name = "streamfold",
    version,
    about = "Fold DynamoDB Streams into activity heatmaps and LLM reports, exactly once"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Database options: every command that reads or writes the database.
#[derive(clap::Args, Clone)]
pub struct Db {
    /// Database URL (sqlite://FILE is created if missing by the commands
    /// that write; the commands that only read refuse a file that is not
    /// there). Its value from the environment is never shown by --help: it
    /// may hold a password.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, default_value = config::DEFAULT_DATABASE_URL)]
    database_url: String,
    /// AWS Secrets Manager secret (RDS credentials JSON) to build the
    /// database URL from, instead of --database-url.
    #[arg(long, env = "DATABASE_SECRET_ARN", hide_env_values = true)]
    database_secret_arn: Option<String>,
    /// Database connections in the pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 4)]
    max_connections: u32,
    /// Seconds to keep trying to reach the database.
    #[arg(long, env = "DATABASE_CONNECT_TIMEOUT", default_value_t = 10)]
    connect_timeout: u64,
    /// Allow a TLS mode that can end in plaintext (disable, allow, prefer;
    /// MySQL DISABLED, PREFERRED) to a non-loopback database host.
    #[arg(long, env = "STREAMFOLD_DB_ALLOW_PLAINTEXT")]
    allow_plaintext: bool,
    /// Allow encrypted but unverified TLS (require, verify-ca; MySQL
    /// REQUIRED, VERIFY_CA) to a non-loopback database host.
    #[arg(long, env = "STREAMFOLD_DB_INSECURE_TLS")]
    insecure_tls: bool,
    /// PEM bundle of CAs to trust for the database's certificate besides
    /// the public roots, e.g. the RDS global bundle.
    #[arg(long, env = "DATABASE_CA_FILE")]
    db_ca_file: Option<PathBuf>,
}

/// Lookup options: the commands that resolve identities or time zones
/// (replay, stats, reattribute, rejects retry, backfill, tail).
#[derive(clap::Args, Clone)]
pub struct Lookup {
    /// Folder of DynamoDB-JSON identity items (<table suffix>.jsonl).
    #[arg(long, default_value = config::DEFAULT_DIRECTORY)]
    directory: PathBuf,
    /// Time zone for users without a valid one.
    #[arg(long, env = "DEFAULT_TIMEZONE", default_value = "UTC")]
    default_tz: String,
}

/// Both: the options of a command that folds records or draws heatmaps.
#[derive(clap::Args, Clone)]
pub struct Common {
    #[command(flatten)]
    pub db: Db,
    #[command(flatten)]
    pub lookup: Lookup,
}

/// `--json`, the one output switch of every summary (README, "Scripting";
/// `print::json` prints it).
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct Output {
    /// Print the summary as JSON on stdout instead of text (one object, or
    /// JSON Lines for a listing; schemas in README, "Scripting"). Progress
    /// and notes stay on stderr.
    #[arg(long)]
    pub json: bool,
}

impl Db {
    /// The configuration of a command that may create and migrate an
    /// SQLite file, with the default lookups (unused by such a command).
    pub async fn config(&self) -> Result<Config> {
        let database_url = match &self.database_secret_arn {
            Some(arn) => {
                let aws = streamfold::aws_http::load_sdk_config().await;
                let client = aws_sdk_secretsmanager::Client::new(&aws);
                streamfold::store::secret::database_url_from_secret(&client, arn, None).await?
            }
            None => self.database_url.clone(),
        };
        Ok(Config {
            database_url,
            directory: PathBuf::from(config::DEFAULT_DIRECTORY),
            default_tz: chrono_tz::Tz::UTC,
            store: StoreOptions {
                max_connections: self.max_connections,
                allow_plaintext: self.allow_plaintext,
                insecure_tls: self.insecure_tls,
                ca_file: self.db_ca_file.clone(),
                connect_timeout: std::time::Duration::from_secs(self.connect_timeout),
                ..StoreOptions::default()
            },
        })
    }

    /// The configuration of a command that only reads: an SQLite file
    /// that is not there is an error, not created.
    pub async fn read_only_config(&self) -> Result<Config> {
        let mut cfg = self.config().await?;
        cfg.store.create_if_missing = false;
        Ok(cfg)
    }
}

impl Common {
    pub async fn config(&self) -> Result<Config> {
        let cfg = self.db.config().await?;
        self.lookup.apply(cfg)
    }

    /// As `config`, for a command that only reads.
    pub async fn read_only_config(&self) -> Result<Config> {
        let cfg = self.db.read_only_config().await?;
        self.lookup.apply(cfg)
    }
}

impl Lookup {
    fn apply(&self, cfg: Config) -> Result<Config> {
        Ok(Config {
            directory: self.directory.clone(),
            default_tz: config::parse_default_tz(&self.default_tz).map_err(anyhow::Error::msg)?,
            ..cfg
        })
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Replay Lambda DynamoDB stream event files (.json, .jsonl) or folders of them.
    Replay(ReplayArgs),
    /// Show a user's 7×24 heatmap (day of week × hour, in the user's time
    /// zone), or without --slack-id the database's totals.
    Stats(StatsArgs),
    /// Resolve unattributed events again and count those now linked, once.
    Reattribute(ReattributeArgs),
    /// List quarantined records and their reasons.
    Rejects(RejectsArgs),
    /// Benchmarks: each row against a baseline run in the same process on
    /// the same data (BENCHMARKS.md); --smoke for a quick small run.
    Bench(BenchArgs),
    /// Print monthly LLM usage reports as JSON Lines (LLMReportData items:
    /// seed field names, exact decimal numbers); --publish also writes them
    /// to the LLMReportData table.
    LlmReport(LlmReportArgs),
    /// Fold a table's existing items in: a parallel Scan, or (--export) a
    /// DynamoDB export to S3. Items enter as snapshots with the lowest
    /// version, so running alongside the stream never double-counts.
    Backfill(BackfillArgs),
    /// Follow a table's stream through the DynamoDB Streams API (no Lambda),
    /// checkpointing each shard in the database; a restart resumes.
    Tail(TailArgs),
    /// Create or update the database schema.
    Migrate(MigrateArgs),
    /// Drop ledger rows of events older than a horizon, so the ledger stops
    /// growing. Gives up exactness for what is older: afterwards a record of
    /// an event before the horizon whose ledger row is gone is skipped, not
    /// counted (it may have been counted before), and a change to such an
    /// item cannot retract what it counted. Resumable; safe beside running
    /// consumers.
    Compact(CompactArgs),
    /// Recompute user_event_counts and the LLM reports from the ledgers
    /// (and what compaction folded away) and name every stored value that
    /// differs. Exit code 0: nothing differs (or --fix repaired it all);
    /// 3: something differs; 1: the audit could not run.
    Audit(AuditArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell,
    /// elvish) on stdout, e.g. `streamfold completions bash >
    /// ~/.local/share/bash-completion/completions/streamfold`.
    Completions(CompletionsArgs),
    /// Write man pages: streamfold.1 and one per subcommand into --out, or
    /// streamfold.1 alone on stdout.
    Man(ManArgs),
}

#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(clap::Args)]
pub struct ManArgs {
    /// Folder to write streamfold.1 and streamfold-<command>.1 into
    /// (created if missing); without it, streamfold.1 goes to stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub common: Common,
    /// Files or folders, applied in name order.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Pass over events that cannot be read (each is listed, and the exit
    /// status says some were not applied) instead of stopping at the first.
    #[arg(long)]
    pub keep_going: bool,
    #[command(flatten)]
    pub output: Output,
}

#[derive(clap::Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub common: Common,
    /// The user (Slack ID) whose heatmap to show; without it, the
    /// database's totals and top users.
    #[arg(long)]
    pub slack_id: Option<String>,
    /// Only one integration: G (GitHub), D (Dropbox) or E (e-mail); or
    /// `all`: each integration the user has, side by side.
    #[arg(long, value_parser = ["G", "D", "E", "all"])]
    pub integration: Option<String>,
    /// Also draw the user's heatmap as a PNG image.
    #[arg(long, requires = "slack_id")]
    pub png: Option<PathBuf>,
    /// Where the user's time zone is looked up: the local --directory, or
    /// the DynamoDB tables named by ICARUS_TABLE_PREFIX / ACS_TABLE_PREFIX.
    #[arg(long, value_enum, default_value_t = Lookups::Local)]
    pub lookups: Lookups,
    /// Without --slack-id: how many top users to list.
    #[arg(long, default_value_t = 10)]
    pub top: u32,
    #[command(flatten)]
    pub output: Output,
}

#[derive(clap::Args)]
pub struct ReattributeArgs {
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args)]
pub struct RejectsArgs {
    #[command(subcommand)]
    pub action: RejectsAction,
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Database URL: sqlite (a temporary file is used) or a MySQL /
    /// PostgreSQL server on which scratch databases may be created.
    #[arg(long, default_value = "sqlite://bench.db")]
    pub database_url: String,
    /// Folder of identity items, as for replay.
    #[arg(long, default_value = config::DEFAULT_DIRECTORY)]
    pub directory: PathBuf,
    /// Records per round.
    #[arg(long, default_value_t = 100_000)]
    pub records: usize,
    /// Records per Lambda batch.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Rounds (each on a fresh database); min and median are reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Records of the per-event baseline (a prefix of the same data).
    #[arg(long, default_value_t = 20_000)]
    pub per_event_records: usize,
    /// Ledger rows already present for the scaling row (0 skips it).
    #[arg(long, default_value_t = 5_000_000)]
    pub history_rows: usize,
    /// Small sizes, one round: checks that every row runs (CI).
    #[arg(long)]
    pub smoke: bool,
    /// The streamfold-lambda binary for the Lambda rows (build it with
    /// the profile to measure); without it those rows are skipped.
    #[arg(long, requires = "hello_bin")]
    pub lambda_bin: Option<PathBuf>,
    /// The lambda_hello example built with the same profile.
    #[arg(long, requires = "lambda_bin")]
    pub hello_bin: Option<PathBuf>,
    /// Run only these rows (comma-separated); all rows by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<BenchRow>,
}

#[derive(clap::Args)]
pub struct LlmReportArgs {
    #[command(flatten)]
    pub db: Db,
    /// Only this account.
    #[arg(long)]
    pub account: Option<String>,
    /// Only this UTC month, YYYY-MM.
    #[arg(long, value_parser = parse_period)]
    pub period: Option<String>,
    /// Write the reports to DynamoDB (conditional on their version).
    #[arg(long)]
    pub publish: bool,
    /// LLMReportData table; default: $TABLE_LLMREPORTDATA, else
    /// $ACS_TABLE_PREFIX followed by LLMReportData.
    #[arg(long)]
    pub table: Option<String>,
}

#[derive(clap::Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    pub common: Common,
    /// Source table name (with its prefix, e.g. icarus-prod-github_events).
    #[arg(long)]
    pub table: String,
    /// Scan segments run in this process (default: from the table's size).
    #[arg(long, conflicts_with_all = ["segment", "total_segments", "export"])]
    pub segments: Option<u32>,
    /// Run only this segment (0-based) of --total-segments.
    #[arg(long, requires = "total_segments", conflicts_with = "export")]
    pub segment: Option<u32>,
    /// With --segment: how many segments the table is divided into, across
    /// every machine or invocation sharing it.
    #[arg(long, requires = "segment")]
    pub total_segments: Option<u32>,
    /// Continue from the checkpoints of an interrupted run.
    #[arg(long)]
    pub resume: bool,
    /// Read capacity units per second, all segments together.
    #[arg(long)]
    pub max_rcu: Option<f64>,
    /// Items per second, all segments together.
    #[arg(long)]
    pub max_items_per_sec: Option<f64>,
    /// Items per Scan page.
    #[arg(long)]
    pub page_size: Option<i32>,
    /// Strongly consistent Scan reads (twice the capacity).
    #[arg(long)]
    pub consistent_read: bool,
    /// Read a DynamoDB export (DYNAMODB_JSON), local or s3://bucket/prefix:
    /// the --s3-prefix it was exported with (its exports of --table are
    /// found under AWSDynamoDB/), or one export's folder.
    #[arg(long)]
    pub export: Option<String>,
    /// Of several exports of the table under the prefix, the newest.
    #[arg(long, requires = "export", conflicts_with = "export_id")]
    pub latest: bool,
    /// Of several exports under the prefix, this one (its id, e.g.
    /// 01711929600000-5f3c2a1b, or its export ARN).
    #[arg(long, requires = "export", conflicts_with = "incremental")]
    pub export_id: Option<String>,
    /// Read incremental exports (catch-up after an outage longer than the
    /// stream's retention): the folder of one, or every incremental export
    /// of --table under the prefix, oldest window first. Their states
    /// replace what the ledger holds from before each window's end and
    /// lose to stream records after it (README, "Catching up").
    #[arg(long, requires = "export", conflicts_with = "latest")]
    pub incremental: bool,
    /// With --incremental: the table's TTL attribute. A delete of an item
    /// whose TTL had passed is a TTL expiry and leaves the item counted,
    /// as the stream does; without it every delete retracts.
    #[arg(long, requires = "incremental")]
    pub ttl_attribute: Option<String>,
    /// Export data files processed at once.
    #[arg(long, default_value_t = 2)]
    pub parallel: usize,
    /// Export items per batch (one transaction each).
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Where identities are resolved: the local --directory, or the
    /// DynamoDB tables named by ICARUS_TABLE_PREFIX / ACS_TABLE_PREFIX.
    #[arg(long, value_enum, default_value_t = Lookups::Local)]
    pub lookups: Lookups,
    #[command(flatten)]
    pub output: Output,
}

#[derive(clap::Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub common: Common,
    /// Source table name (with its prefix).
    #[arg(long)]
    pub table: String,
    /// Where shards without a checkpoint start.
    #[arg(long, value_enum, default_value_t = From::TrimHorizon)]
    pub from: From,
    /// Milliseconds between polls when nothing is new.
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
    /// Stop after this many idle polling rounds (default: follow forever).
    #[arg(long)]
    pub until_idle: Option<u32>,
    /// Where identities are resolved: the local --directory, or the
    /// DynamoDB tables named by ICARUS_TABLE_PREFIX / ACS_TABLE_PREFIX.
    #[arg(long, value_enum, default_value_t = Lookups::Local)]
    pub lookups: Lookups,
}

#[derive(clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub common: Common,
    /// Print the report as one JSON object (cells_checked, reports_checked,
    /// differences, fixed; see README "Prove the numbers").
    #[arg(long)]
    pub json: bool,
    /// After listing the differences, repair them in one transaction: each
    /// differing cell and report moved to its recomputation (a repaired
    /// report gets a new revision, pending projection).
    #[arg(long)]
    pub fix: bool,
}

#[derive(clap::Args)]
pub struct CompactArgs {
    #[command(flatten)]
    pub db: Db,
    /// Drop rows whose event is older than this (e.g. 90d, 26weeks); at
    /// least 7 days, beyond the time items are still modified.
    #[arg(long, value_parser = parse_age)]
    pub older_than: std::time::Duration,
    /// Also drop unattributed rows of that age: they can then never be
    /// counted by `reattribute`.
    #[arg(long)]
    pub include_unattributed: bool,
    /// Ledger rows examined per DELETE (one short transaction each).
    #[arg(long, default_value_t = 5000)]
    pub chunk: u32,
    /// Wait after announcing a larger horizon, before deleting, so every
    /// running consumer has re-read it (their cache lives 30 s, a batch can
    /// wait 50 s for a lock): at least 80s.
    #[arg(long, default_value = "120s", value_parser = parse_announce)]
    pub announce_wait: std::time::Duration,
    /// Stop after this long (a later run resumes where this one stopped).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub max_time: Option<std::time::Duration>,
    /// Give up an unfinished backfill job (as named by the refusal) so that
    /// compaction may run: the items it has not read yet, if older than the
    /// horizon, will never be counted.
    #[arg(long, value_name = "JOB")]
    pub abandon_backfill: Vec<String>,
    #[command(flatten)]
    pub output: Output,
}

fn parse_announce(s: &str) -> Result<std::time::Duration, String> {
    use streamfold::store::MIN_COMPACTION_ANNOUNCE;
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 120s)"))?;
    if d < MIN_COMPACTION_ANNOUNCE {
        return Err(format!(
            "{s:?} is shorter than {}: consumers re-read the horizon every 30 s and a batch \
             can wait 50 s for a lock, so a shorter wait can count an item twice",
            humantime::format_duration(MIN_COMPACTION_ANNOUNCE)
        ));
    }
    Ok(d)
}

fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    use streamfold::store::compaction::MIN_AGE_DAYS;
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 90d)"))?;
    if d.as_secs() < MIN_AGE_DAYS * 86_400 {
        return Err(format!(
            "{s:?} is shorter than {MIN_AGE_DAYS} days: records that old still arrive \
             (stream retention, late items, retries), and would be skipped"
        ));
    }
    Ok(d)
}

#[derive(clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: Db,
}

/// Quarantined records: see them, and re-run them after a fix.
#[derive(Subcommand)]
pub enum RejectsAction {
    /// List quarantined records and their reasons.
    List {
        #[command(flatten)]
        db: Db,
        /// List at most this many records, oldest first.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        output: Output,
    },
    /// Show one quarantined record: its reason and the raw record.
    Show {
        #[command(flatten)]
        db: Db,
        /// The record's id, as `rejects list` shows it (#ID).
        id: i64,
        #[command(flatten)]
        output: Output,
    },
    /// Re-run quarantined records (these ids, or --all); those applied now
    /// leave the quarantine, the others stay with their new reason.
    Retry {
        #[command(flatten)]
        common: Common,
        /// Ids of the records to re-run, as `rejects list` shows them.
        #[arg(required_unless_present = "all")]
        ids: Vec<i64>,
        /// Re-run every quarantined record.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum From {
    /// The oldest record the shard still holds.
    TrimHorizon,
    /// Only records written from now on.
    Latest,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookups {
    /// The local --directory.
    Local,
    /// The DynamoDB tables named by ICARUS_TABLE_PREFIX / ACS_TABLE_PREFIX.
    Dynamodb,
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
pub enum BenchRow {
    /// Apply vs bulk INSERT and vs the per-event pattern.
    Apply,
    /// Apply with a large ledger vs an empty one.
    Scaling,
    /// Statements per batch of 100 / 1,000 / 10,000.
    RoundTrips,
    /// Parse + normalise vs IgnoredAny.
    Normalize,
    /// Init, first invocation after a cold start, peak RSS, per-invocation
    /// overhead (needs --lambda-bin).
    Lambda,
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every argument of every subcommand, with the path to it, that has no
    /// help text.
    fn without_help(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            if help.trim().is_empty() {
                out.push(format!("{path} {id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            if sub.get_about().is_none() {
                out.push(format!("{path} {} (the subcommand)", sub.get_name()));
            }
            without_help(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_argument_has_a_description() {
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        let mut missing = Vec::new();
        without_help(&cmd, "streamfold", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:#?}");
    }

    /// Options of a subcommand, by long name.
    fn longs(name: &[&str]) -> Vec<String> {
        let mut cmd = Cli::command();
        for n in name {
            cmd = cmd.find_subcommand(n).unwrap().clone();
        }
        cmd.get_arguments()
            .filter_map(|a| a.get_long().map(str::to_string))
            .collect()
    }

    #[test]
    fn lookup_options_only_where_lookups_happen() {
        for name in [
            &["migrate"][..],
            &["compact"],
            &["llm-report"],
            &["rejects", "list"],
            &["rejects", "show"],
        ] {
            let l = longs(name);
            assert!(l.contains(&"database-url".to_string()), "{name:?}: {l:?}");
            assert!(
                !l.contains(&"directory".to_string()) && !l.contains(&"default-tz".to_string()),
                "{name:?} offers lookup options it does not use: {l:?}"
            );
        }
        for name in [
            &["replay"][..],
            &["stats"],
            &["reattribute"],
            &["rejects", "retry"],
            &["backfill"],
            &["tail"],
        ] {
            let l = longs(name);
            assert!(
                l.contains(&"directory".to_string()) && l.contains(&"default-tz".to_string()),
                "{name:?}: {l:?}"
            );
        }
    }
}
