//! SQLite store: the embedded default. One writer at a time (`BEGIN
//! IMMEDIATE`), so the ledger read and the ledger write of a batch see the
//! same state. Staging tables are per-connection temporary tables.

use super::dialect::{Dialect, Flavor, StagedDialect};
use super::exec::{Bind, EachRow, Engine, Sql, bound};
use super::sql::{self};
use super::{ApplyResult, RejectedRecord, StoreError, StoreOptions};
use crate::aggregate::llm_rollup::{Report, ReportKey, ReportSums};
use crate::aggregate::{ActivityRow, LlmRow, StagedRows};
use futures::TryStreamExt as _;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Executor, Sqlite, Transaction};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: Migrator = sqlx::migrate!("sql/sqlite");

/// Bound parameters per statement (SQLite ≥ 3.32 allows 32766).
const MAX_PARAMS: usize = 32_000;

const STAGE_DDL: &str = "
CREATE TEMP TABLE IF NOT EXISTS stage_activity (
    id BLOB NOT NULL PRIMARY KEY, version BLOB NOT NULL, state INTEGER NOT NULL,
    integration TEXT NOT NULL, subject TEXT, dow INTEGER, hours INTEGER, event_at INTEGER
) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS stage_llm (
    id BLOB NOT NULL PRIMARY KEY, version BLOB NOT NULL, state INTEGER NOT NULL,
    subject TEXT, conversation_id TEXT, report_period TEXT, model TEXT, function_name TEXT,
    prompt_tokens INTEGER, response_tokens INTEGER, total_tokens INTEGER, cost_usd TEXT,
    response_time_ms INTEGER, quality_score TEXT, event_at INTEGER
) WITHOUT ROWID;
";

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn open(url: &str, opts: &StoreOptions) -> Result<SqliteStore, StoreError> {
        let connect_err = |e: sqlx::Error| StoreError::Connect {
            url: crate::redact::redact_url(url),
            reason: crate::redact::scrub(&e.to_string(), url),
        };
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(url)
            .map_err(connect_err)?
            .create_if_missing(opts.create_if_missing)
            .journal_mode(SqliteJournalMode::Wal)
            // The ledger and the aggregates commit together: a transaction
            // lost to power failure is simply applied again by a re-run.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30));
        let file = options.get_filename();
        if !opts.create_if_missing && !in_memory && !file.exists() {
            return Err(StoreError::NoSuchDatabase {
                path: file.display().to_string(),
            });
        }
        // Switching a new database file to WAL takes an exclusive lock that
        // the busy timeout does not wait for: a second command opening the
        // same new file at that moment is told "database is locked". Wait
        // for it here, briefly.
        let started = std::time::Instant::now();
        let pool = loop {
            let attempt = SqlitePoolOptions::new()
                .acquire_timeout(opts.connect_timeout)
                .max_connections(if in_memory {
                    1
                } else {
                    opts.max_connections.max(1)
                })
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute(STAGE_DDL).await?;
                        Ok(())
                    })
                })
                .connect_with(options.clone())
                .await;
            match attempt {
                Err(sqlx::Error::Database(e))
                    if e.code().as_deref() == Some("5")
                        && started.elapsed() < std::time::Duration::from_secs(10) =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(25)).await;
                }
                other => break other.map_err(connect_err)?,
            }
        };
        Ok(SqliteStore { pool })
    }

    /// Checkpoint the write-ahead log into the database file, then close
    /// every connection. Another process still writing makes the checkpoint
    /// give up (`busy`): it is tried again for up to 3 s, so that commands
    /// ending together still leave the file whole (the log empty, and
    /// removed by the last connection to close).
    pub async fn checkpoint_and_close(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        loop {
            let checkpoint: Result<(i64, i64, i64), sqlx::Error> =
                sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                    .fetch_one(&self.pool)
                    .await;
            match checkpoint {
                Ok((0, _, _)) => break,
                Ok((busy, log, done)) if std::time::Instant::now() >= deadline => {
                    tracing::info!(
                        busy,
                        log,
                        done,
                        "the write-ahead log could not be checkpointed whole: another process holds it"
                    );
                    break;
                }
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                Err(e) => {
                    tracing::info!(error = %e, "write-ahead log checkpoint failed");
                    break;
                }
            }
        }
        self.pool.close().await;
    }

    /// The connection pool, for tools that run their own statements
    /// (`streamfold bench` baselines, tests).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// One attempt at applying a batch, in one transaction: the horizon
    /// guard, then the dialect's batch steps.
    pub async fn apply_once(
        &self,
        rows: &StagedRows,
        rejects: &[RejectedRecord],
        horizon: Option<i64>,
    ) -> Result<ApplyResult, StoreError> {
        let mut result = ApplyResult::default();
        let mut tx = match SqliteDialect::BEGIN {
            Some(statement) => self.pool.begin_with(statement).await?,
            None => self.pool.begin().await?,
        };
        result.statements += 1;
        let kept = match horizon {
            Some(h) => super::compaction::horizon_guard!(SqliteDialect, &mut tx, rows, h, result),
            None => None,
        };
        let rows = kept.as_ref().unwrap_or(rows);
        SqliteDialect::apply_steps(&mut tx, rows, rejects, &mut result).await?;
        tx.commit().await?;
        result.statements += 1;
        Ok(result)
    }
}

impl Sql for &SqlitePool {
    async fn run(&mut self, sql: &str, binds: &[Bind]) -> Result<u64, StoreError> {
        Ok(bound::<Sqlite>(sql, binds)
            .execute(*self)
            .await?
            .rows_affected())
    }

    async fn each(
        &mut self,
        sql: &str,
        binds: &[Bind],
        row: &mut EachRow<'_>,
    ) -> Result<(), StoreError> {
        let mut rows = bound::<Sqlite>(sql, binds).fetch(*self);
        while let Some(r) = rows.try_next().await? {
            row(&r)?;
        }
        Ok(())
    }
}

impl Sql for Transaction<'_, Sqlite> {
    async fn run(&mut self, sql: &str, binds: &[Bind]) -> Result<u64, StoreError> {
        Ok(bound::<Sqlite>(sql, binds)
            .execute(&mut **self)
            .await?
            .rows_affected())
    }

    async fn each(
        &mut self,
        sql: &str,
        binds: &[Bind],
        row: &mut EachRow<'_>,
    ) -> Result<(), StoreError> {
        let mut rows = bound::<Sqlite>(sql, binds).fetch(&mut **self);
        while let Some(r) = rows.try_next().await? {
            row(&r)?;
        }
        Ok(())
    }
}

impl Engine for SqliteStore {
    const FLAVOR: Flavor = Flavor::Sqlite;
    type Pool<'p> = &'p SqlitePool;
    type Tx = Transaction<'static, Sqlite>;

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// `BEGIN IMMEDIATE`: the only write lock, taken at once.
    async fn begin(&self) -> Result<Self::Tx, StoreError> {
        Ok(match SqliteDialect::BEGIN {
            Some(statement) => self.pool.begin_with(statement).await?,
            None => self.pool.begin().await?,
        })
    }

    async fn commit(tx: Self::Tx) -> Result<(), StoreError> {
        Ok(tx.commit().await?)
    }

    async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        SqliteDialect::migrate(&self.pool).await
    }

    async fn pending_migrations(&self) -> Result<usize, StoreError> {
        Ok(super::pending_migrations(SqliteDialect::migrator(), &self.pool).await)
    }

    async fn apply_once(
        &self,
        rows: &StagedRows,
        rejects: &[RejectedRecord],
        horizon: Option<i64>,
    ) -> Result<ApplyResult, StoreError> {
        SqliteStore::apply_once(self, rows, rejects, horizon).await
    }

    async fn close(&self) {
        self.checkpoint_and_close().await
    }
}

/// The SQLite dialect: one writer at a time (`BEGIN IMMEDIATE`).
pub struct SqliteDialect;

impl Dialect for SqliteDialect {
    type Db = Sqlite;
    const FLAVOR: Flavor = Flavor::Sqlite;
    const BEGIN: Option<&'static str> = Some("BEGIN IMMEDIATE");

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    /// Under the write lock: sqlx's migrator takes none on SQLite.
    async fn migrate(pool: &sqlx::Pool<Sqlite>) -> Result<Vec<i64>, StoreError> {
        super::migrations::run_sqlite_migrations(Self::migrator(), pool).await
    }

    async fn apply_steps(
        tx: &mut Transaction<'static, Sqlite>,
        rows: &StagedRows,
        rejects: &[RejectedRecord],
        result: &mut ApplyResult,
    ) -> Result<(), StoreError> {
        apply_staged(tx, rows, rejects, result).await
    }
}

impl StagedDialect for SqliteDialect {
    const MAX_PARAMS: usize = MAX_PARAMS;
    /// `BEGIN IMMEDIATE` already holds the only write lock.
    const LOCK_SUFFIX: &'static str = "";
    /// Quarantining the same record twice keeps the first.
    const REJECT_IGNORE: &'static str = " ON CONFLICT (record_key) DO NOTHING";

    /// `user_event_counts` moved by the pre-summed deltas (`WHERE true` keeps
    /// SQLite's parser from reading `ON CONFLICT` as a join constraint).
    fn activity_delta() -> String {
        format!(
            "INSERT INTO user_event_counts (slack_id, integration, dow, hours, event_count)
             SELECT slack_id, integration, dow, hours, d FROM ({}) y WHERE true
              ORDER BY slack_id, integration, dow, hours
             ON CONFLICT (slack_id, integration, dow, hours)
             DO UPDATE SET event_count = user_event_counts.event_count + excluded.event_count",
            sql::summed_activity_deltas("stage_activity", "activity_ledger")
        )
    }

    /// Write the ledger with one upsert driven by the staging table. SQLite has
    /// a single writer (`BEGIN IMMEDIATE`), so no concurrent insert can race the
    /// rows judged new and the counts need no check.
    async fn write_ledger(
        tx: &mut Transaction<'static, Sqlite>,
        ledger: &str,
        stage: &str,
        columns: &str,
        _existing: usize,
        _expected_new: u64,
        result: &mut ApplyResult,
    ) -> Result<(), StoreError> {
        let upsert = format!(
            "INSERT INTO {ledger} ({columns}) SELECT {columns} FROM {stage} WHERE true
             ON CONFLICT (id) DO UPDATE SET {}
             WHERE {}",
            sql::assignments(columns, "").replace("s.", "excluded."),
            sql::wins("excluded", ledger)
        );
        tx.execute(upsert.as_str()).await?;
        result.statements += 1;
        Ok(())
    }

    /// Move the LLM reports by a batch's deltas. SQLite has no exact decimal
    /// type, so the touched reports and model rows are read (the batch holds
    /// the only write lock), added to in Rust and written back; function counts
    /// are plain integers and are added in SQL.
    async fn apply_reports(
        tx: &mut Transaction<'static, Sqlite>,
        deltas: &BTreeMap<ReportKey, ReportSums>,
        result: &mut ApplyResult,
    ) -> Result<(), StoreError> {
        let keys: Vec<&ReportKey> = deltas.keys().collect();
        let mut current: BTreeMap<ReportKey, Report> = BTreeMap::new();
        // 2 parameters a key; the two reads share the key list.
        for chunk in keys.chunks(MAX_PARAMS / 2) {
            let list = vec!["(?, ?)"; chunk.len()].join(", ");
            let within = format!("(account_id, report_period) IN (VALUES {list})");
            let sql = [
                format!(
                    "SELECT account_id, report_period, total_requests, total_tokens, total_cost_usd,
                            response_time_ms_sum, quality_score_sum, quality_scored, revision, updated_at
                       FROM llm_reports WHERE {within}"
                ),
                format!(
                    "SELECT account_id, report_period, model, requests, tokens, cost_usd
                       FROM llm_report_models WHERE {within}"
                ),
            ];
            let mut found = Vec::with_capacity(2);
            for text in &sql {
                let mut q = sqlx::query(text);
                for k in chunk {
                    q = q.bind(&k.account_id).bind(&k.period);
                }
                found.push(q.fetch_all(&mut **tx).await?);
            }
            let (totals, models) = (&found[0], &found[1]);
            result.statements += 2;
            for report in super::reports::assemble(totals, models, &[])? {
                current.insert(report.key.clone(), report);
            }
        }
        let mut updated: BTreeMap<ReportKey, ReportSums> = BTreeMap::new();
        let mut revisions = Vec::with_capacity(deltas.len());
        for (key, delta) in deltas {
            let (base, revision) = match current.get(key) {
                Some(r) => (&r.sums, r.revision + 1),
                None => (&ReportSums::default() as &ReportSums, 1),
            };
            let sums =
                base.plus(delta)
                    .map_err(|what| crate::aggregate::llm_rollup::RollupOverflow {
                        report: key.report_id(),
                        what,
                    })?;
            // Only the breakdown entries this batch moved are written back.
            let mut written = sums.clone();
            written.models.retain(|m, _| delta.models.contains_key(m));
            // Function counts are plain integers: added in SQL, from the delta.
            written.functions = delta.functions.clone();
            revisions.push(revision);
            updated.insert(key.clone(), written);
        }
        let now = super::now_text();
        let rows: Vec<(&ReportKey, &ReportSums, i64)> = updated
            .iter()
            .zip(&revisions)
            .map(|((k, s), r)| (k, s, *r))
            .collect();
        let write = super::reports::ReportWrite {
            totals: rows,
            models: super::reports::model_rows(&updated),
            functions: super::reports::function_rows(&updated),
            now,
            on_conflict: [
                " ON CONFLICT (account_id, report_period) DO UPDATE SET
                   total_requests = excluded.total_requests, total_tokens = excluded.total_tokens,
                   total_cost_usd = excluded.total_cost_usd,
                   response_time_ms_sum = excluded.response_time_ms_sum,
                   quality_score_sum = excluded.quality_score_sum,
                   quality_scored = excluded.quality_scored, revision = excluded.revision,
                   pending = 1, updated_at = excluded.updated_at",
                " ON CONFLICT (account_id, report_period, model) DO UPDATE SET
                   requests = excluded.requests, tokens = excluded.tokens, cost_usd = excluded.cost_usd",
                " ON CONFLICT (account_id, report_period, function_name) DO UPDATE SET
                   requests = llm_report_functions.requests + excluded.requests",
            ],
        };
        super::reports::write_report_rows(tx, Flavor::Sqlite, MAX_PARAMS, &write, result).await?;
        Ok(())
    }
}

super::stage::values_staged_apply!(SqliteDialect);
