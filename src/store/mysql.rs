//! MySQL 8 / MariaDB 10.11 store: the RDS production target. Sessions run
//! at READ COMMITTED; a batch locks its existing ledger rows in identity
//! order (`FOR UPDATE`) before computing deltas, so concurrent consumers
//! serialise per item and never double-count. SQL avoids syntax only one of
//! the two servers accepts (no `AS new` row alias, no reopened temporary
//! tables).

use super::connect::{self, TlsDecision};
use super::dialect::{Dialect, Flavor, StagedDialect};
use super::sql;
use super::stage;
use super::{ApplyResult, RejectListing, RejectedRecord, StoreError, StoreOptions, Totals};
use crate::aggregate::llm_rollup::{ReportKey, ReportSums};
use crate::aggregate::{ActivityRow, LlmRow, StagedRows};
use sqlx::migrate::Migrator;
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlSslMode};
use sqlx::{Executor, Transaction};
use std::collections::BTreeMap;
use std::str::FromStr;

static MIGRATOR: Migrator = sqlx::migrate!("sql/mysql");

/// Bound parameters per statement (the protocol allows 65535).
const MAX_PARAMS: usize = 60_000;

// Staging tables are session-local MEMORY tables: cheaper to fill than
// InnoDB ones. MEMORY is not transactional, which is harmless here: every
// batch (and every retry) starts by emptying them. Their session's
// `max_heap_table_size` is raised so that a 10,000-record batch of the
// widest rows fits (MEMORY stores VARCHAR at full width).
const STAGE_ACTIVITY_DDL: &str = "CREATE TEMPORARY TABLE IF NOT EXISTS stage_activity (
    id BINARY(16) NOT NULL PRIMARY KEY, version VARBINARY(18) NOT NULL, state TINYINT NOT NULL,
    integration CHAR(1) NOT NULL, subject VARCHAR(255) NULL, dow TINYINT NULL, hours TINYINT NULL,
    event_at BIGINT NULL
) ENGINE = MEMORY DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin";

const STAGE_LLM_DDL: &str = "CREATE TEMPORARY TABLE IF NOT EXISTS stage_llm (
    id BINARY(16) NOT NULL PRIMARY KEY, version VARBINARY(18) NOT NULL, state TINYINT NOT NULL,
    subject VARCHAR(255) NULL, conversation_id VARCHAR(255) NULL, report_period CHAR(7) NULL,
    model VARCHAR(255) NULL, function_name VARCHAR(255) NULL, prompt_tokens BIGINT NULL,
    response_tokens BIGINT NULL, total_tokens BIGINT NULL, cost_usd DECIMAL(38,28) NULL,
    response_time_ms BIGINT NULL, quality_score DECIMAL(38,28) NULL, event_at BIGINT NULL
) ENGINE = MEMORY DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin";

#[derive(Clone)]
pub struct MySqlStore {
    pool: MySqlPool,
}

impl MySqlStore {
    pub async fn open(url: &str, opts: &StoreOptions) -> Result<MySqlStore, StoreError> {
        let connect_err = |e: sqlx::Error| StoreError::Connect {
            url: crate::redact::redact_url(url),
            reason: crate::redact::scrub(&e.to_string(), url),
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
        let host = options.get_host().to_string();
        let at = (
            host.as_str(),
            options.get_port(),
            options.get_socket().is_some(),
        );
        let pool = connect::unless_refused(
            url,
            at,
            MySqlPoolOptions::new()
                .acquire_timeout(opts.connect_timeout)
                .max_connections(opts.max_connections.max(1))
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                            .await?;
                        conn.execute("SET SESSION max_heap_table_size = 268435456")
                            .await?;
                        conn.execute(STAGE_ACTIVITY_DDL).await?;
                        conn.execute(STAGE_LLM_DDL).await?;
                        Ok(())
                    })
                })
                .connect_with(options),
        )
        .await?;
        Ok(MySqlStore { pool })
    }

    /// The connection pool, for tools that run their own statements
    /// (`streamfold bench` baselines, tests).
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    super::queries::common_methods!(MySqlDialect);
    super::reports::report_methods!(MySqlDialect);
    super::checkpoints::checkpoint_methods!(MySqlDialect);
    super::compaction::compaction_methods!(MySqlDialect);
}

/// The MySQL / MariaDB dialect: READ COMMITTED, row locks in id order.
pub struct MySqlDialect;

impl Dialect for MySqlDialect {
    type Db = MySql;
    const FLAVOR: Flavor = Flavor::MySql;
    const BEGIN: Option<&'static str> = None;

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    /// sqlx's migrator, which locks the database while it runs.
    async fn migrate(pool: &sqlx::Pool<sqlx::MySql>) -> Result<Vec<i64>, StoreError> {
        super::run_migrations(Self::migrator(), pool).await
    }

    async fn apply_steps(
        tx: &mut Transaction<'static, MySql>,
        rows: &StagedRows,
        rejects: &[RejectedRecord],
        result: &mut ApplyResult,
    ) -> Result<(), StoreError> {
        apply_staged(tx, rows, rejects, result).await
    }
}

impl StagedDialect for MySqlDialect {
    const MAX_PARAMS: usize = MAX_PARAMS;
    /// Existing ledger rows are locked (in identity order) for the batch.
    const LOCK_SUFFIX: &'static str = " FOR UPDATE";
    /// Quarantining the same record twice keeps the first.
    const REJECT_IGNORE: &'static str = " ON DUPLICATE KEY UPDATE record_key = record_key";

    /// `user_event_counts` moved by the pre-summed deltas (no `AS new` alias:
    /// MariaDB lacks it; the derived table's column is referenced instead).
    fn activity_delta() -> String {
        format!(
            "INSERT INTO user_event_counts (slack_id, integration, dow, hours, event_count)
             SELECT y.slack_id, y.integration, y.dow, y.hours, y.d FROM ({}) y
              ORDER BY y.slack_id, y.integration, y.dow, y.hours
             ON DUPLICATE KEY UPDATE event_count = event_count + y.d",
            sql::summed_activity_deltas("stage_activity", "activity_ledger")
        )
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
            "UPDATE {ledger} l JOIN {stage} s ON l.id = s.id SET {} WHERE {}",
            sql::assignments(columns, "l."),
            sql::wins("s", "l")
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

    /// Move the LLM reports by a batch's deltas, added in SQL on exact DECIMAL
    /// columns, keys in order. `VALUES(col)` (not a row alias, which MariaDB
    /// lacks) is the value converted to the column's type, so the additions
    /// stay decimal.
    async fn apply_reports(
        tx: &mut Transaction<'static, MySql>,
        deltas: &BTreeMap<ReportKey, ReportSums>,
        result: &mut ApplyResult,
    ) -> Result<(), StoreError> {
        let now = super::now_text();
        // New reports start at revision 1; existing ones count up.
        let totals: Vec<(&ReportKey, &ReportSums, i64)> =
            deltas.iter().map(|(k, s)| (k, s, 1)).collect();
        super::reports::write_report_rows!(
            MySqlDialect,
            tx,
            totals,
            super::reports::model_rows(deltas),
            super::reports::function_rows(deltas),
            now,
            (
                " ON DUPLICATE KEY UPDATE
                   total_requests = total_requests + VALUES(total_requests),
                   total_tokens = total_tokens + VALUES(total_tokens),
                   total_cost_usd = total_cost_usd + VALUES(total_cost_usd),
                   response_time_ms_sum = response_time_ms_sum + VALUES(response_time_ms_sum),
                   quality_score_sum = quality_score_sum + VALUES(quality_score_sum),
                   quality_scored = quality_scored + VALUES(quality_scored),
                   revision = revision + 1, pending = 1, updated_at = VALUES(updated_at)",
                " ON DUPLICATE KEY UPDATE requests = requests + VALUES(requests),
                   tokens = tokens + VALUES(tokens), cost_usd = cost_usd + VALUES(cost_usd)",
                " ON DUPLICATE KEY UPDATE requests = requests + VALUES(requests)",
            ),
            result,
        );
        Ok(())
    }
}

super::stage::values_staged_apply!(MySqlDialect);
