//! MySQL 8 / MariaDB 10.11 store: the RDS production target. Sessions run
//! at READ COMMITTED; a batch locks its existing ledger rows in identity
//! order (`FOR UPDATE`) before computing deltas, so concurrent consumers
//! serialise per item and never double-count. SQL avoids syntax only one of
//! the two servers accepts (no `AS new` row alias, no reopened temporary
//! tables).

use super::connect::{self, TlsDecision};
use super::rows::{self, Existing};
use super::sql::{self, ACTIVITY_COLUMNS, LLM_COLUMNS, WINS};
use super::stage;
use super::{ApplyResult, RejectListing, RejectRow, StoreError, StoreOptions, Totals, judge};
use crate::aggregate::{ActivityRow, LlmRow, StagedRows};
use crate::domain::Identity;
use sqlx::migrate::Migrator;
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlSslMode};
use sqlx::{Executor, Transaction};
use std::str::FromStr;

static MIGRATOR: Migrator = sqlx::migrate!("sql/mysql");

/// Bound parameters per statement (the protocol allows 65535).
const MAX_PARAMS: usize = 60_000;

const STAGE_ACTIVITY_DDL: &str = "CREATE TEMPORARY TABLE IF NOT EXISTS stage_activity (
    id BINARY(16) NOT NULL PRIMARY KEY, version VARBINARY(18) NOT NULL, state TINYINT NOT NULL,
    integration CHAR(1) NOT NULL, subject VARCHAR(255) NULL, dow TINYINT NULL, hours TINYINT NULL,
    event_at BIGINT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin";

const STAGE_LLM_DDL: &str = "CREATE TEMPORARY TABLE IF NOT EXISTS stage_llm (
    id BINARY(16) NOT NULL PRIMARY KEY, version VARBINARY(18) NOT NULL, state TINYINT NOT NULL,
    subject VARCHAR(255) NULL, conversation_id VARCHAR(255) NULL, report_period CHAR(7) NULL,
    model VARCHAR(255) NULL, function_name VARCHAR(255) NULL, prompt_tokens BIGINT NULL,
    response_tokens BIGINT NULL, total_tokens BIGINT NULL, cost_usd DECIMAL(38,28) NULL,
    response_time_ms BIGINT NULL, quality_score DECIMAL(38,28) NULL, event_at BIGINT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin";

#[derive(Clone)]
pub struct MySqlStore {
    pool: MySqlPool,
}

impl MySqlStore {
    pub async fn open(url: &str, opts: &StoreOptions) -> Result<MySqlStore, StoreError> {
        let connect_err = |e: sqlx::Error| StoreError::Connect {
            url: super::redact_url(url),
            reason: e.to_string(),
        };
        let mut options = MySqlConnectOptions::from_str(url)
            .map_err(connect_err)?
            .charset("utf8mb4");
        let mode = connect::query_param(url, &["ssl-mode", "sslmode"]);
        let disabled = matches!(options.get_ssl_mode(), MySqlSslMode::Disabled) && mode.is_some();
        if connect::tls_policy(
            url,
            options.get_host(),
            disabled,
            mode.is_some(),
            opts.allow_plaintext,
        )? == TlsDecision::Require
        {
            options = options.ssl_mode(MySqlSslMode::Required);
        }
        let pool = MySqlPoolOptions::new()
            .acquire_timeout(opts.connect_timeout)
            .max_connections(opts.max_connections.max(1))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                        .await?;
                    conn.execute(STAGE_ACTIVITY_DDL).await?;
                    conn.execute(STAGE_LLM_DDL).await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(connect_err)?;
        Ok(MySqlStore { pool })
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
        let mut tx = self.pool.begin().await?;
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
            "SELECT dow, hours, CAST(SUM(event_count) AS SIGNED) FROM user_event_counts
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
            "SELECT id, version, CONVERT(integration USING utf8mb4), CONVERT(subject USING utf8mb4), event_at FROM activity_ledger
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
            "SELECT id, version, CONVERT(conversation_id USING utf8mb4), CONVERT(model USING utf8mb4),
                    CONVERT(function_name USING utf8mb4), prompt_tokens, response_tokens,
                    total_tokens, CAST(cost_usd AS CHAR), response_time_ms, CAST(quality_score AS CHAR), event_at
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
        let r = sqlx::query_as::<_, (i64, i64, i64, i64, i64, i64)>(&super::totals_sql("SIGNED"))
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
            MySql,
            &self.pool,
            "CREATE TABLE bench_bulk (id BINARY(16) NOT NULL PRIMARY KEY, version VARBINARY(18) NOT NULL, state TINYINT NOT NULL, integration CHAR(1) NOT NULL, subject VARCHAR(255) NULL, dow TINYINT NULL, hours TINYINT NULL, event_at BIGINT NULL) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin",
            rows,
            batch,
            MAX_PARAMS / 8,
        )
    }

    /// The pool, for tests and tools that inspect tables directly.
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }
}

async fn existing(
    tx: &mut Transaction<'static, MySql>,
    ledger: &str,
    stage: &str,
) -> Result<Existing, StoreError> {
    let q = format!("{} FOR UPDATE", sql::existing(ledger, stage, "SIGNED"));
    let found = sqlx::query(&q).fetch_all(&mut **tx).await?;
    rows::existing(&found, "ledger")
}

async fn apply_activity(
    tx: &mut Transaction<'static, MySql>,
    rows: &[ActivityRow],
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    tx.execute("DELETE FROM stage_activity").await?;
    result.statements += 1;
    for chunk in rows.chunks(MAX_PARAMS / 8) {
        stage::activity_values::<MySql>(chunk)
            .build()
            .execute(&mut **tx)
            .await?;
        result.statements += 1;
    }
    let found = existing(tx, "activity_ledger", "stage_activity").await?;
    result.statements += 1;
    let expected_new = judge(
        rows.iter().map(|r| (r.id, &r.version, r.state)),
        &found,
        &mut result.unchanged,
    );
    let delta = format!(
        "INSERT INTO user_event_counts (slack_id, integration, dow, hours, event_count)
         SELECT y.slack_id, y.integration, y.dow, y.hours, y.d FROM ({}) y
          ORDER BY y.slack_id, y.integration, y.dow, y.hours
         ON DUPLICATE KEY UPDATE event_count = event_count + y.d",
        sql::summed_activity_deltas("stage_activity")
    );
    tx.execute(delta.as_str()).await?;
    result.statements += 1;
    write_ledger(
        tx,
        "activity_ledger",
        "stage_activity",
        ACTIVITY_COLUMNS,
        found.len(),
        expected_new,
        result,
    )
    .await
}

/// Replace losing ledger rows, then insert new ones (checked count).
#[allow(clippy::too_many_arguments)]
async fn write_ledger(
    tx: &mut Transaction<'static, MySql>,
    ledger: &str,
    stage: &str,
    columns: &str,
    existing: usize,
    expected_new: u64,
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    let update = format!(
        "UPDATE {ledger} l JOIN {stage} s ON l.id = s.id SET {} WHERE {WINS}",
        sql::assignments(columns, "l.")
    );
    let insert = sql::insert_new(ledger, stage, columns);
    stage::write_ledger(
        tx,
        &update,
        &insert,
        existing,
        expected_new,
        |r| r.rows_affected(),
        result,
    )
    .await
}

async fn apply_llm(
    tx: &mut Transaction<'static, MySql>,
    rows: &[LlmRow],
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    tx.execute("DELETE FROM stage_llm").await?;
    result.statements += 1;
    for chunk in rows.chunks(MAX_PARAMS / 15) {
        stage::llm_values::<MySql>(chunk)
            .build()
            .execute(&mut **tx)
            .await?;
        result.statements += 1;
    }
    let found = existing(tx, "llm_ledger", "stage_llm").await?;
    result.statements += 1;
    let expected_new = judge(
        rows.iter().map(|r| (r.id, &r.version, r.state)),
        &found,
        &mut result.unchanged,
    );
    write_ledger(
        tx,
        "llm_ledger",
        "stage_llm",
        LLM_COLUMNS,
        found.len(),
        expected_new,
        result,
    )
    .await
}

async fn insert_rejects(
    tx: &mut Transaction<'static, MySql>,
    rejects: &[RejectRow],
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    let now = super::now_text();
    for chunk in rejects.chunks(MAX_PARAMS / 8) {
        let mut qb = stage::reject_values::<MySql>(chunk, &now);
        qb.push(" ON DUPLICATE KEY UPDATE record_key = record_key");
        qb.build().execute(&mut **tx).await?;
        result.statements += 1;
    }
    Ok(())
}
