//! PostgreSQL store (RDS / Aurora PostgreSQL). A batch is one statement:
//! the batch arrives as arrays (`UNNEST`, no parameter limit to chunk
//! around), and data-modifying CTEs lock the existing ledger rows in
//! identity order (`FOR UPDATE`), move the aggregates (pre-summed, so
//! `ON CONFLICT` touches each key once), write both ledgers, move the LLM
//! reports and quarantine the rejects. Only the LLM report deltas need a
//! read first (the rollup runs in Rust on exact decimals), so with BEGIN
//! and COMMIT a batch costs 3 round trips, or 4 when it has LLM records,
//! whatever its size.

use super::connect::{self, TlsMode};
use super::dialect::{Dialect, Flavor};
use super::exec::{Bind, EachRow, Engine, Sql, bound};
use super::{ApplyResult, RejectedRecord, StoreError, StoreOptions};
use crate::aggregate::StagedRows;
use futures::TryStreamExt as _;
use sqlx::Transaction;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode, Postgres};
use std::str::FromStr;

static MIGRATOR: Migrator = sqlx::migrate!("sql/postgres");

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn open(url: &str, opts: &StoreOptions) -> Result<PgStore, StoreError> {
        let connect_err = |e: sqlx::Error| StoreError::Connect {
            url: crate::redact::redact_url(url),
            reason: crate::redact::scrub(&e.to_string(), url),
        };
        let mut options = PgConnectOptions::from_str(url).map_err(connect_err)?;
        // The driver also takes the mode from PGSSLMODE: that names one too.
        let named = (connect::query_param(url, &["sslmode", "ssl-mode"]).is_some()
            || std::env::var_os("PGSSLMODE").is_some())
        .then(|| tls_mode_of(options.get_ssl_mode()));
        if let Some(mode) =
            connect::tls_policy(url, options.get_host(), named, opts.tls_allowances())?
        {
            options = options.ssl_mode(pg_ssl_mode(mode));
        }
        if let Some(ca) = &opts.ca_file
            && connect::query_param(url, &["sslrootcert"]).is_none()
            && std::env::var_os("PGSSLROOTCERT").is_none()
        {
            connect::check_ca_file(url, ca)?;
            options = options.ssl_root_cert(ca);
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
            PgPoolOptions::new()
                .acquire_timeout(opts.connect_timeout)
                .max_connections(opts.max_connections.max(1))
                .connect_with(options),
        )
        .await?;
        Ok(PgStore { pool })
    }

    /// The connection pool, for tools that run their own statements
    /// (`streamfold bench` baselines, tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl Sql for &PgPool {
    async fn run(&mut self, sql: &str, binds: &[Bind]) -> Result<u64, StoreError> {
        Ok(bound::<Postgres>(sql, binds)
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
        let mut rows = bound::<Postgres>(sql, binds).fetch(*self);
        while let Some(r) = rows.try_next().await? {
            row(&r)?;
        }
        Ok(())
    }
}

impl Sql for Transaction<'_, Postgres> {
    async fn run(&mut self, sql: &str, binds: &[Bind]) -> Result<u64, StoreError> {
        Ok(bound::<Postgres>(sql, binds)
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
        let mut rows = bound::<Postgres>(sql, binds).fetch(&mut **self);
        while let Some(r) = rows.try_next().await? {
            row(&r)?;
        }
        Ok(())
    }
}

impl Engine for PgStore {
    const FLAVOR: Flavor = PgDialect::FLAVOR;
    type Pool<'p> = &'p PgPool;
    type Tx = Transaction<'static, Postgres>;

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin(&self) -> Result<Self::Tx, StoreError> {
        Ok(match PgDialect::BEGIN {
            Some(statement) => self.pool.begin_with(statement).await?,
            None => self.pool.begin().await?,
        })
    }

    async fn commit(tx: Self::Tx) -> Result<(), StoreError> {
        Ok(tx.commit().await?)
    }

    async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        PgDialect::migrate(&self.pool).await
    }

    async fn pending_migrations(&self) -> Result<usize, StoreError> {
        Ok(super::pending_migrations(PgDialect::migrator(), &self.pool).await)
    }

    async fn apply_once(
        &self,
        rows: &StagedRows,
        rejects: &[RejectedRecord],
        horizon: Option<i64>,
    ) -> Result<ApplyResult, StoreError> {
        super::batch::apply_once(self, rows, rejects, horizon).await
    }

    async fn close(&self) {
        self.pool.close().await
    }
}

/// The PostgreSQL dialect: the whole batch as arrays in one statement.
pub struct PgDialect;

impl Dialect for PgDialect {
    type Db = Postgres;
    const FLAVOR: Flavor = Flavor::Postgres;
    const BEGIN: Option<&'static str> = None;

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    /// sqlx's migrator, which locks the database while it runs.
    async fn migrate(pool: &sqlx::Pool<sqlx::Postgres>) -> Result<Vec<i64>, StoreError> {
        super::run_migrations(Self::migrator(), pool).await
    }
}

/// The driver's mode in the policy's terms.
fn tls_mode_of(mode: PgSslMode) -> TlsMode {
    match mode {
        PgSslMode::Disable => TlsMode::Disable,
        PgSslMode::Allow => TlsMode::Allow,
        PgSslMode::Prefer => TlsMode::Prefer,
        PgSslMode::Require => TlsMode::Require,
        PgSslMode::VerifyCa => TlsMode::VerifyCa,
        PgSslMode::VerifyFull => TlsMode::VerifyFull,
    }
}

/// The policy's mode in the driver's terms.
fn pg_ssl_mode(mode: TlsMode) -> PgSslMode {
    match mode {
        TlsMode::Disable => PgSslMode::Disable,
        TlsMode::Allow => PgSslMode::Allow,
        TlsMode::Prefer => PgSslMode::Prefer,
        TlsMode::Require => PgSslMode::Require,
        TlsMode::VerifyCa => PgSslMode::VerifyCa,
        TlsMode::VerifyFull => PgSslMode::VerifyFull,
    }
}
