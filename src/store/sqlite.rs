//! SQLite store: the embedded default. One writer at a time (`BEGIN
//! IMMEDIATE`), so the ledger read and the ledger write of a batch see the
//! same state. A batch is staged into connection-local temporary tables in
//! multi-row INSERTs, then folded with one statement for the aggregate deltas
//! and one for the ledger.

use super::{ApplyResult, RejectListing, RejectRow, StoreError, Totals};
use crate::aggregate::{ActivityRow, LlmRow, RowState, StagedRows};
use crate::domain::{Identity, Integration, LlmRequest, Version};
use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Executor, QueryBuilder, Row, Sqlite, Transaction};
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

/// The ledger replacement rule of `aggregate::wins`, in SQL
/// (`s` = staged row, `l` = ledger row).
const WINS: &str =
    "(s.version > l.version OR (s.version = l.version AND l.state = 2 AND s.state = 1))";

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        let connect_err = |source| StoreError::Connect {
            url: super::redact_url(url),
            source,
        };
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(connect_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // The ledger and the aggregates commit together: a transaction
            // lost to power failure is simply applied again by a re-run.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30));
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { 4 })
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(STAGE_DDL).await?;
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .map_err(connect_err)?;
        MIGRATOR.run(&pool).await?;
        Ok(SqliteStore { pool })
    }

    pub async fn apply(
        &self,
        rows: &StagedRows,
        rejects: &[RejectRow],
    ) -> Result<ApplyResult, StoreError> {
        let mut result = ApplyResult::default();
        if rows.is_empty() && rejects.is_empty() {
            return Ok(result);
        }
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
            "SELECT dow, hours, SUM(event_count) AS n FROM user_event_counts
              WHERE slack_id = ? AND (? IS NULL OR integration = ?)
              GROUP BY dow, hours ORDER BY dow, hours",
        )
        .bind(slack_id)
        .bind(integration)
        .bind(integration)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<i64, _>(0)? as u8,
                    r.try_get::<i64, _>(1)? as u8,
                    r.try_get::<i64, _>(2)?,
                ))
            })
            .collect()
    }

    pub async fn unattributed_activity(
        &self,
        after: Option<Identity>,
        limit: u32,
    ) -> Result<Vec<ActivityRow>, StoreError> {
        let after = after.map(|i| i.to_bytes().to_vec()).unwrap_or_default();
        let rows = sqlx::query(
            "SELECT id, version, integration, subject, event_at FROM activity_ledger
              WHERE state = 2 AND id > ? ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let corrupt = |reason: &str| StoreError::Corrupt {
                    table: "activity_ledger",
                    reason: reason.to_string(),
                };
                let id: Vec<u8> = r.try_get("id")?;
                let integration: String = r.try_get("integration")?;
                Ok(ActivityRow {
                    id: Identity::from_bytes(&id).ok_or_else(|| corrupt("id is not 16 bytes"))?,
                    version: Version::from_bytes(r.try_get("version")?),
                    state: RowState::Unattributed,
                    integration: Integration::from_code(&integration)
                        .ok_or_else(|| corrupt("unknown integration"))?,
                    subject: r.try_get("subject")?,
                    bucket: None,
                    event_at: r.try_get("event_at")?,
                })
            })
            .collect()
    }

    pub async fn unattributed_llm(
        &self,
        after: Option<Identity>,
        limit: u32,
    ) -> Result<Vec<LlmRow>, StoreError> {
        let after = after.map(|i| i.to_bytes().to_vec()).unwrap_or_default();
        let rows = sqlx::query(
            "SELECT id, version, conversation_id, model, function_name, prompt_tokens, response_tokens,
                    total_tokens, cost_usd, response_time_ms, quality_score, event_at
               FROM llm_ledger WHERE state = 2 AND id > ? ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let corrupt = |reason: &str| StoreError::Corrupt {
                    table: "llm_ledger",
                    reason: reason.to_string(),
                };
                let id: Vec<u8> = r.try_get("id")?;
                let cost: String = r.try_get("cost_usd")?;
                let quality: Option<String> = r.try_get("quality_score")?;
                let event_at: i64 = r.try_get("event_at")?;
                let request = LlmRequest {
                    conversation_id: r.try_get("conversation_id")?,
                    generated_at: Utc
                        .timestamp_opt(event_at, 0)
                        .single()
                        .ok_or_else(|| corrupt("bad event_at"))?,
                    model: r.try_get("model")?,
                    function: r.try_get("function_name")?,
                    prompt_tokens: r.try_get("prompt_tokens")?,
                    response_tokens: r.try_get("response_tokens")?,
                    total_tokens: r.try_get("total_tokens")?,
                    cost_usd: Decimal::from_str(&cost).map_err(|_| corrupt("bad cost_usd"))?,
                    response_time_ms: r.try_get("response_time_ms")?,
                    quality_score: quality
                        .map(|q| Decimal::from_str(&q).map_err(|_| corrupt("bad quality_score")))
                        .transpose()?,
                };
                Ok(LlmRow {
                    id: Identity::from_bytes(&id).ok_or_else(|| corrupt("id is not 16 bytes"))?,
                    version: Version::from_bytes(r.try_get("version")?),
                    state: RowState::Unattributed,
                    subject: None,
                    request: Some(request),
                })
            })
            .collect()
    }

    pub async fn rejects(&self, limit: u32) -> Result<Vec<RejectListing>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, source, event_id, sequence_number, reason, rejected_at
               FROM rejected_records ORDER BY id LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RejectListing {
                    id: r.try_get("id")?,
                    source: r.try_get("source")?,
                    event_id: r.try_get("event_id")?,
                    sequence_number: r.try_get("sequence_number")?,
                    reason: r.try_get("reason")?,
                    rejected_at: r.try_get("rejected_at")?,
                })
            })
            .collect()
    }

    pub async fn totals(&self) -> Result<Totals, StoreError> {
        let r = sqlx::query(
            "SELECT
               (SELECT COALESCE(SUM(event_count), 0) FROM user_event_counts),
               (SELECT COUNT(DISTINCT slack_id) FROM user_event_counts WHERE event_count <> 0),
               (SELECT COUNT(*) FROM activity_ledger) + (SELECT COUNT(*) FROM llm_ledger),
               (SELECT COUNT(*) FROM activity_ledger WHERE state = 2) + (SELECT COUNT(*) FROM llm_ledger WHERE state = 2),
               (SELECT COUNT(*) FROM llm_ledger WHERE state = 1),
               (SELECT COUNT(*) FROM rejected_records)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Totals {
            events_counted: r.try_get(0)?,
            users: r.try_get(1)?,
            ledger_rows: r.try_get(2)?,
            unattributed: r.try_get(3)?,
            llm_requests: r.try_get(4)?,
            rejected: r.try_get(5)?,
        })
    }

    /// The pool, for tests and tools that inspect tables directly.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

async fn apply_activity(
    tx: &mut Transaction<'static, Sqlite>,
    rows: &[ActivityRow],
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    tx.execute("DELETE FROM temp.stage_activity").await?;
    result.statements += 1;
    for chunk in rows.chunks(MAX_PARAMS / 8) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO temp.stage_activity (id, version, state, integration, subject, dow, hours, event_at) ",
        );
        qb.push_values(chunk, |mut b, r| {
            b.push_bind(r.id.to_bytes().to_vec())
                .push_bind(r.version.as_bytes().to_vec())
                .push_bind(r.state.code())
                .push_bind(r.integration.code())
                .push_bind(r.subject.clone())
                .push_bind(r.bucket.map(|b| i64::from(b.dow)))
                .push_bind(r.bucket.map(|b| i64::from(b.hour)))
                .push_bind(r.event_at);
        });
        qb.build().execute(&mut **tx).await?;
        result.statements += 1;
    }
    collect_unchanged(tx, "stage_activity", "activity_ledger", result).await?;

    let delta = format!(
        "INSERT INTO user_event_counts (slack_id, integration, dow, hours, event_count)
         SELECT slack_id, integration, dow, hours, SUM(d) FROM (
             SELECT l.subject AS slack_id, l.integration AS integration, l.dow AS dow, l.hours AS hours, -1 AS d
               FROM temp.stage_activity s JOIN activity_ledger l ON l.id = s.id
              WHERE l.state = 1 AND {WINS}
             UNION ALL
             SELECT s.subject, s.integration, s.dow, s.hours, 1
               FROM temp.stage_activity s LEFT JOIN activity_ledger l ON l.id = s.id
              WHERE s.state = 1 AND (l.id IS NULL OR {WINS})
         ) AS deltas
         WHERE true
         GROUP BY slack_id, integration, dow, hours
         HAVING SUM(d) <> 0
         ON CONFLICT (slack_id, integration, dow, hours)
         DO UPDATE SET event_count = user_event_counts.event_count + excluded.event_count"
    );
    tx.execute(delta.as_str()).await?;
    result.statements += 1;

    let ledger = "INSERT INTO activity_ledger (id, version, state, integration, subject, dow, hours, event_at)
         SELECT id, version, state, integration, subject, dow, hours, event_at FROM temp.stage_activity WHERE true
         ON CONFLICT (id) DO UPDATE SET
             version = excluded.version, state = excluded.state, integration = excluded.integration,
             subject = excluded.subject, dow = excluded.dow, hours = excluded.hours, event_at = excluded.event_at
         WHERE excluded.version > activity_ledger.version
            OR (excluded.version = activity_ledger.version AND activity_ledger.state = 2 AND excluded.state = 1)";
    tx.execute(ledger).await?;
    result.statements += 1;
    Ok(())
}

async fn apply_llm(
    tx: &mut Transaction<'static, Sqlite>,
    rows: &[LlmRow],
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    tx.execute("DELETE FROM temp.stage_llm").await?;
    result.statements += 1;
    for chunk in rows.chunks(MAX_PARAMS / 15) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO temp.stage_llm (id, version, state, subject, conversation_id, report_period, model,
             function_name, prompt_tokens, response_tokens, total_tokens, cost_usd, response_time_ms,
             quality_score, event_at) ",
        );
        qb.push_values(chunk, |mut b, r| {
            let q = r.request.as_ref();
            b.push_bind(r.id.to_bytes().to_vec())
                .push_bind(r.version.as_bytes().to_vec())
                .push_bind(r.state.code())
                .push_bind(r.subject.clone())
                .push_bind(q.map(|q| q.conversation_id.clone()))
                .push_bind(q.map(|q| q.report_period()))
                .push_bind(q.map(|q| q.model.clone()))
                .push_bind(q.map(|q| q.function.clone()))
                .push_bind(q.map(|q| q.prompt_tokens))
                .push_bind(q.map(|q| q.response_tokens))
                .push_bind(q.map(|q| q.total_tokens))
                .push_bind(q.map(|q| q.cost_usd.to_string()))
                .push_bind(q.map(|q| q.response_time_ms))
                .push_bind(q.and_then(|q| q.quality_score.map(|s| s.to_string())))
                .push_bind(q.map(|q| q.generated_at.timestamp()));
        });
        qb.build().execute(&mut **tx).await?;
        result.statements += 1;
    }
    collect_unchanged(tx, "stage_llm", "llm_ledger", result).await?;
    let ledger = "INSERT INTO llm_ledger (id, version, state, subject, conversation_id, report_period, model,
             function_name, prompt_tokens, response_tokens, total_tokens, cost_usd, response_time_ms,
             quality_score, event_at)
         SELECT id, version, state, subject, conversation_id, report_period, model, function_name,
                prompt_tokens, response_tokens, total_tokens, cost_usd, response_time_ms, quality_score, event_at
           FROM temp.stage_llm WHERE true
         ON CONFLICT (id) DO UPDATE SET
             version = excluded.version, state = excluded.state, subject = excluded.subject,
             conversation_id = excluded.conversation_id, report_period = excluded.report_period,
             model = excluded.model, function_name = excluded.function_name,
             prompt_tokens = excluded.prompt_tokens, response_tokens = excluded.response_tokens,
             total_tokens = excluded.total_tokens, cost_usd = excluded.cost_usd,
             response_time_ms = excluded.response_time_ms, quality_score = excluded.quality_score,
             event_at = excluded.event_at
         WHERE excluded.version > llm_ledger.version
            OR (excluded.version = llm_ledger.version AND llm_ledger.state = 2 AND excluded.state = 1)";
    tx.execute(ledger).await?;
    result.statements += 1;
    Ok(())
}

/// Staged identities that will not replace their ledger row.
async fn collect_unchanged(
    tx: &mut Transaction<'static, Sqlite>,
    stage: &str,
    ledger: &str,
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    let sql =
        format!("SELECT s.id FROM temp.{stage} s JOIN {ledger} l ON l.id = s.id WHERE NOT {WINS}");
    let ids: Vec<Vec<u8>> = sqlx::query_scalar(&sql).fetch_all(&mut **tx).await?;
    result.statements += 1;
    result
        .unchanged
        .extend(ids.iter().filter_map(|b| Identity::from_bytes(b)));
    Ok(())
}

async fn insert_rejects(
    tx: &mut Transaction<'static, Sqlite>,
    rejects: &[RejectRow],
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for chunk in rejects.chunks(MAX_PARAMS / 8) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO rejected_records (record_key, source, table_name, event_id, sequence_number, reason, raw_record, rejected_at) ",
        );
        qb.push_values(chunk, |mut b, r| {
            b.push_bind(r.record_key().to_vec())
                .push_bind(r.source.map(|s| s.table_suffix()))
                .push_bind(r.table.clone())
                .push_bind(r.event_id.clone())
                .push_bind(r.sequence_number.clone())
                .push_bind(r.reason.clone())
                .push_bind(r.raw.clone())
                .push_bind(now.clone());
        });
        qb.push(" ON CONFLICT (record_key) DO NOTHING");
        qb.build().execute(&mut **tx).await?;
        result.statements += 1;
    }
    Ok(())
}
