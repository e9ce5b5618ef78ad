//! SQLite store: the embedded default. One writer at a time (`BEGIN
//! IMMEDIATE`), so the ledger read and the ledger write of a batch see the
//! same state. Staging tables are per-connection temporary tables.

use super::dialect::{Dialect, Flavor};
use super::exec::{Bind, EachRow, Engine, Sql, bound};
use super::{ApplyResult, RejectedRecord, StoreError, StoreOptions};
use crate::aggregate::StagedRows;
use futures::TryStreamExt as _;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: Migrator = sqlx::migrate!("sql/sqlite");

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
        super::batch::apply_once(self, rows, rejects, horizon).await
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
}
