//! MySQL 8 / MariaDB 10.11 store: the RDS production target. Sessions run
//! at READ COMMITTED; a batch locks its existing ledger rows in identity
//! order (`FOR UPDATE`) before computing deltas, so concurrent consumers
//! serialise per item and never double-count. SQL avoids syntax only one of
//! the two servers accepts (no `AS new` row alias, no reopened temporary
//! tables).

use super::connect::{self, TlsDecision};
use super::dialect::{Dialect, Flavor};
use super::{ApplyResult, RejectListing, RejectedRecord, StoreError, StoreOptions, Totals};
use crate::aggregate::{ActivityRow, LlmRow, StagedRows};
use sqlx::migrate::Migrator;
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlSslMode};
use sqlx::{Executor, Transaction};
use std::str::FromStr;

static MIGRATOR: Migrator = sqlx::migrate!("sql/mysql");

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
        super::mysql_batch::apply(tx, rows, rejects, result).await
    }
}
