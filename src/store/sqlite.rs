//! SQLite store: the embedded default. One writer at a time (`BEGIN
//! IMMEDIATE`), so the ledger read and the ledger write of a batch see the
//! same state. Staging tables are per-connection temporary tables.

use super::rows::{self, Existing};
use super::sql::{self, ACTIVITY_COLUMNS, LLM_COLUMNS};
use super::stage;
use super::{ApplyResult, RejectListing, RejectRow, StoreError, StoreOptions, Totals, judge};
use crate::aggregate::{ActivityRow, LlmRow, StagedRows};
use crate::domain::Identity;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Executor, Sqlite, Transaction};
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
            url: super::redact_url(url),
            reason: e.to_string(),
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(connect_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // The ledger and the aggregates commit together: a transaction
            // lost to power failure is simply applied again by a re-run.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30));
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = SqlitePoolOptions::new()
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
            .connect_with(options)
            .await
            .map_err(connect_err)?;
        Ok(SqliteStore { pool })
    }

    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        super::run_migrations(&MIGRATOR, &self.pool).await
    }

    pub async fn pending_migrations(&self) -> Result<usize, StoreError> {
        Ok(super::pending_migrations(&MIGRATOR, &self.pool).await)
    }

    pub async fn apply_once(
        &self,
        rows: &StagedRows,
        rejects: &[RejectRow],
    ) -> Result<ApplyResult, StoreError> {
        let mut result = ApplyResult::default();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        result.statements += 1;
        if !rows.activity.is_empty() {
            apply_activity(&mut tx, &rows.activity, &mut result).await?;
        }
        if !rows.llm.is_empty() {
            apply_llm(&mut tx, &rows.llm, &mut result).await?;
        }
        if !rejects.is_empty() {
            insert_rejects(&mut tx, rejects, &mut result).await?;
        }
        tx.commit().await?;
        result.statements += 1;
        Ok(result)
    }

    pub async fn heatmap(
        &self,
        slack_id: &str,
        integration: Option<&str>,
    ) -> Result<Vec<(u8, u8, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT dow, hours, SUM(event_count) FROM user_event_counts
              WHERE slack_id = ? AND (? IS NULL OR integration = ?)
              GROUP BY dow, hours ORDER BY dow, hours",
        )
        .bind(slack_id)
        .bind(integration)
        .bind(integration)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::cell).collect()
    }

    pub async fn unattributed_activity(
        &self,
        after: Option<Identity>,
        limit: u32,
    ) -> Result<Vec<ActivityRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, version, integration, subject, event_at FROM activity_ledger
              WHERE state = 2 AND id > ? ORDER BY id LIMIT ?",
        )
        .bind(after.map(|i| i.to_bytes().to_vec()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::unattributed_activity).collect()
    }

    pub async fn unattributed_llm(
        &self,
        after: Option<Identity>,
        limit: u32,
    ) -> Result<Vec<LlmRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, version, conversation_id, model, function_name, prompt_tokens, response_tokens,
                    total_tokens, cost_usd, response_time_ms, quality_score, event_at
               FROM llm_ledger WHERE state = 2 AND id > ? ORDER BY id LIMIT ?",
        )
        .bind(after.map(|i| i.to_bytes().to_vec()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::unattributed_llm).collect()
    }

    pub async fn rejects(&self, limit: u32) -> Result<Vec<RejectListing>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, source, event_id, sequence_number, reason, rejected_at
               FROM rejected_records ORDER BY id LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::reject_listing).collect()
    }

    pub async fn totals(&self) -> Result<Totals, StoreError> {
        let r = sqlx::query_as::<_, (i64, i64, i64, i64, i64, i64)>(&super::totals_sql("INTEGER"))
            .fetch_one(&self.pool)
            .await?;
        Ok(super::totals_from(r))
    }

    /// The bulk-INSERT baseline of `streamfold bench` on this engine.
    pub async fn bulk_insert_baseline(
        &self,
        rows: usize,
        batch: usize,
    ) -> Result<crate::bench::Run, StoreError> {
        stage::bulk_insert_baseline!(
            Sqlite,
            &self.pool,
            "CREATE TABLE bench_bulk (id BLOB NOT NULL PRIMARY KEY, version BLOB NOT NULL, state INTEGER NOT NULL, integration TEXT NOT NULL, subject TEXT, dow INTEGER, hours INTEGER, event_at INTEGER) WITHOUT ROWID",
            rows,
            batch,
            MAX_PARAMS / 8,
        )
    }

    /// The pool, for tests and tools that inspect tables directly.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

async fn existing(
    tx: &mut Transaction<'static, Sqlite>,
    ledger: &str,
    stage: &str,
) -> Result<Existing, StoreError> {
    let found = sqlx::query(&sql::existing(ledger, stage, "INTEGER"))
        .fetch_all(&mut **tx)
        .await?;
    rows::existing(&found, "ledger")
}

async fn apply_activity(
    tx: &mut Transaction<'static, Sqlite>,
    rows: &[ActivityRow],
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    tx.execute("DELETE FROM stage_activity").await?;
    result.statements += 1;
    for chunk in rows.chunks(MAX_PARAMS / 8) {
        stage::activity_values::<Sqlite>(chunk)
            .build()
            .execute(&mut **tx)
            .await?;
        result.statements += 1;
    }
    let found = existing(tx, "activity_ledger", "stage_activity").await?;
    result.statements += 1;
    judge(
        rows.iter().map(|r| (r.id, &r.version, r.state)),
        &found,
        &mut result.unchanged,
    );

    let delta = format!(
        "INSERT INTO user_event_counts (slack_id, integration, dow, hours, event_count)
         SELECT slack_id, integration, dow, hours, d FROM ({}) y WHERE true
          ORDER BY slack_id, integration, dow, hours
         ON CONFLICT (slack_id, integration, dow, hours)
         DO UPDATE SET event_count = user_event_counts.event_count + excluded.event_count",
        sql::summed_activity_deltas("stage_activity")
    );
    tx.execute(delta.as_str()).await?;
    result.statements += 1;
    write_ledger(
        tx,
        "activity_ledger",
        "stage_activity",
        ACTIVITY_COLUMNS,
        result,
    )
    .await
}

/// Write the ledger with one upsert driven by the staging table: SQLite
/// has a single writer (`BEGIN IMMEDIATE`), so no concurrent insert can
/// race the rows judged new.
async fn write_ledger(
    tx: &mut Transaction<'static, Sqlite>,
    ledger: &str,
    stage: &str,
    columns: &str,
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    let upsert = format!(
        "INSERT INTO {ledger} ({columns}) SELECT {columns} FROM {stage} WHERE true
         ON CONFLICT (id) DO UPDATE SET {}
         WHERE excluded.version > {ledger}.version
            OR (excluded.version = {ledger}.version AND {ledger}.state = 2 AND excluded.state = 1)",
        sql::assignments(columns, "").replace("s.", "excluded.")
    );
    tx.execute(upsert.as_str()).await?;
    result.statements += 1;
    Ok(())
}

async fn apply_llm(
    tx: &mut Transaction<'static, Sqlite>,
    rows: &[LlmRow],
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    tx.execute("DELETE FROM stage_llm").await?;
    result.statements += 1;
    for chunk in rows.chunks(MAX_PARAMS / 15) {
        stage::llm_values::<Sqlite>(chunk)
            .build()
            .execute(&mut **tx)
            .await?;
        result.statements += 1;
    }
    let found = existing(tx, "llm_ledger", "stage_llm").await?;
    result.statements += 1;
    judge(
        rows.iter().map(|r| (r.id, &r.version, r.state)),
        &found,
        &mut result.unchanged,
    );
    write_ledger(tx, "llm_ledger", "stage_llm", LLM_COLUMNS, result).await
}

async fn insert_rejects(
    tx: &mut Transaction<'static, Sqlite>,
    rejects: &[RejectRow],
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    let now = super::now_text();
    for chunk in rejects.chunks(MAX_PARAMS / 8) {
        let mut qb = stage::reject_values::<Sqlite>(chunk, &now);
        qb.push(" ON CONFLICT (record_key) DO NOTHING");
        qb.build().execute(&mut **tx).await?;
        result.statements += 1;
    }
    Ok(())
}
