//! The baselines `streamfold bench` measures batch application against, run
//! on the store's own pool: plain multi-row INSERTs of ledger-shaped rows
//! (the floor of getting those rows into the engine), one autocommit
//! upsert per event (the pattern the ledger replaced), and a ledger
//! pre-filled with history rows (to see whether batches slow down as it
//! grows). None of this is part of the production `Store`.

use super::Run;
use crate::aggregate::{ActivityRow, RowState};
use crate::domain::{Bucket, Identity, Integration, Version};
use crate::store::dialect::Flavor;
use crate::store::{Backend, Store, StoreError};
use std::time::Instant;

/// The per-event baseline's table: `user_event_counts`' shape.
const PER_EVENT_DDL: &str = "CREATE TABLE bench_per_event (
    slack_id VARCHAR(64) NOT NULL, integration CHAR(1) NOT NULL,
    dow SMALLINT NOT NULL, hours SMALLINT NOT NULL,
    event_count INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (slack_id, integration, dow, hours))";

/// The bulk baseline's scratch table, per dialect: the ledger's shape.
const BULK_DDL_SQLITE: &str = "CREATE TABLE bench_bulk (id BLOB NOT NULL PRIMARY KEY, version BLOB NOT NULL, state INTEGER NOT NULL, integration TEXT NOT NULL, subject TEXT, dow INTEGER, hours INTEGER, event_at INTEGER) WITHOUT ROWID";
const BULK_DDL_MYSQL: &str = "CREATE TABLE bench_bulk (id BINARY(16) NOT NULL PRIMARY KEY, version VARBINARY(32) NOT NULL, state TINYINT NOT NULL, integration CHAR(1) NOT NULL, subject VARCHAR(255) NULL, dow TINYINT NULL, hours TINYINT NULL, event_at BIGINT NULL) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin";
const BULK_DDL_POSTGRES: &str = "CREATE TABLE bench_bulk (id BYTEA NOT NULL PRIMARY KEY, version BYTEA NOT NULL, state SMALLINT NOT NULL, integration CHAR(1) NOT NULL, subject TEXT, dow SMALLINT, hours SMALLINT, event_at BIGINT)";

/// Rows per multi-row INSERT (8 parameters a row, within each engine's
/// parameter limit; PostgreSQL's 65535 as the store's VALUES dialects).
const SQLITE_ROWS: usize = 32_000 / 8;
const MYSQL_ROWS: usize = 60_000 / 8;
const POSTGRES_ROWS: usize = 60_000 / 8;

/// `+1` for one (slack_id, integration, dow, hours), as one statement.
fn per_event_upsert(flavor: Flavor) -> String {
    let head = format!(
        "INSERT INTO bench_per_event (slack_id, integration, dow, hours, event_count)
         VALUES ({}, {}, {}, {}, 1)",
        flavor.p(1),
        flavor.p(2),
        flavor.p(3),
        flavor.p(4)
    );
    match flavor {
        Flavor::MySql => format!("{head} ON DUPLICATE KEY UPDATE event_count = event_count + 1"),
        _ => format!(
            "{head} ON CONFLICT (slack_id, integration, dow, hours)
             DO UPDATE SET event_count = bench_per_event.event_count + 1"
        ),
    }
}

/// Rows for the bulk-INSERT baseline: ledger-shaped, distinct identities,
/// realistic widths.
fn baseline_rows(rows: usize) -> Vec<ActivityRow> {
    (0..rows)
        .map(|i| ActivityRow {
            id: Identity::from_canonical(&(i as u64).to_be_bytes()),
            version: Version::stream_record(
                &(4_421_584_500_000_000_000_000_000_000u128 + i as u128).to_string(),
                1_710_000_000 + i as i64,
            )
            .expect("valid sequence number"),
            state: RowState::Live,
            integration: Integration::Github,
            subject: Some("U01ALICE".into()),
            bucket: Some(Bucket {
                dow: (i % 7) as u8,
                hour: (i % 24) as u8,
            }),
            event_at: Some(1_710_000_000 + i as i64),
        })
        .collect()
}

/// Ledger rows that match no generated identity (tombstones with hashed,
/// random-looking ids): history for the scaling measurement.
fn prefill_rows(from: usize, n: usize) -> Vec<ActivityRow> {
    (from..from + n)
        .map(|i| ActivityRow {
            id: Identity::from_canonical(format!("prefill-{i}").as_bytes()),
            version: Version::stream_record(
                &(1_000_000_000_000_000_000u128 + i as u128).to_string(),
                1_700_000_000 + i as i64,
            )
            .expect("valid sequence number"),
            state: RowState::Tombstone,
            integration: Integration::Github,
            subject: None,
            bucket: None,
            event_at: None,
        })
        .collect()
}

// The three baselines are written once as macros over the dialect's sqlx
// database type: executing a borrowed `QueryBuilder` on `&mut
// Transaction<'_, DB>` needs `for<'c> &'c mut DB::Connection: Executor<'c>`
// plus `Encode + Type` bounds for every bound column type, which sqlx does
// not let generic code name usably.

/// `rows` ledger-shaped rows in plain multi-row INSERTs (`per_statement`
/// rows each) into a fresh `bench_bulk` (created by `create`), one
/// transaction per `batch` rows.
macro_rules! bulk_insert {
    ($db:ty, $pool:expr, $create:expr, $rows:expr, $batch:expr, $per_statement:expr) => {{
        use sqlx::Executor as _;
        let pool = $pool;
        pool.execute("DROP TABLE IF EXISTS bench_bulk").await?;
        pool.execute($create).await?;
        let all = baseline_rows($rows);
        let started = Instant::now();
        let mut statements = 0;
        for txn_rows in all.chunks($batch.max(1)) {
            let mut tx = pool.begin().await?;
            statements += 1;
            for chunk in txn_rows.chunks($per_statement) {
                crate::store::activity_values_into::<$db>(
                    "bench_bulk",
                    &chunk.iter().collect::<Vec<_>>(),
                )
                .build()
                .execute(&mut *tx)
                .await?;
                statements += 1;
            }
            tx.commit().await?;
            statements += 1;
        }
        let elapsed = started.elapsed();
        pool.execute("DROP TABLE IF EXISTS bench_bulk").await?;
        Ok(Run {
            rows: $rows,
            elapsed,
            statements,
            batches: $rows.div_ceil($batch.max(1)),
            db_time: elapsed,
        })
    }};
}

/// One autocommit upsert per key into a fresh `bench_per_event`.
macro_rules! per_event {
    ($pool:expr, $flavor:expr, $keys:expr) => {{
        use sqlx::Executor as _;
        let pool = $pool;
        pool.execute("DROP TABLE IF EXISTS bench_per_event").await?;
        pool.execute(PER_EVENT_DDL).await?;
        let sql = per_event_upsert($flavor);
        let started = Instant::now();
        for (slack, integration, dow, hours) in $keys {
            sqlx::query(&sql)
                .bind(slack)
                .bind(integration)
                .bind(*dow)
                .bind(*hours)
                .execute(pool)
                .await?;
        }
        let elapsed = started.elapsed();
        pool.execute("DROP TABLE IF EXISTS bench_per_event").await?;
        Ok(Run {
            rows: $keys.len(),
            elapsed,
            statements: $keys.len(),
            batches: $keys.len(),
            db_time: elapsed,
        })
    }};
}

/// `n` history rows added to the activity ledger (multi-row INSERTs,
/// 50,000 rows a transaction).
macro_rules! prefill {
    ($db:ty, $pool:expr, $n:expr) => {{
        let mut done = 0;
        while done < $n {
            let rows = prefill_rows(done, ($n - done).min(50_000));
            let mut tx = $pool.begin().await?;
            for chunk in rows.chunks(4000) {
                crate::store::activity_values_into::<$db>(
                    "activity_ledger",
                    &chunk.iter().collect::<Vec<_>>(),
                )
                .build()
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            done += rows.len();
        }
        Ok(())
    }};
}

/// Baseline: `rows` ledger-shaped rows in plain multi-row INSERTs, one
/// transaction per `batch` rows, into a fresh scratch table.
pub async fn bulk_insert_baseline(
    store: &Store,
    rows: usize,
    batch: usize,
) -> Result<Run, StoreError> {
    match store.backend() {
        Backend::Sqlite(s) => {
            bulk_insert!(
                sqlx::Sqlite,
                s.pool(),
                BULK_DDL_SQLITE,
                rows,
                batch,
                SQLITE_ROWS
            )
        }
        Backend::MySql(s) => {
            bulk_insert!(
                sqlx::MySql,
                s.pool(),
                BULK_DDL_MYSQL,
                rows,
                batch,
                MYSQL_ROWS
            )
        }
        Backend::Postgres(s) => {
            bulk_insert!(
                sqlx::Postgres,
                s.pool(),
                BULK_DDL_POSTGRES,
                rows,
                batch,
                POSTGRES_ROWS
            )
        }
    }
}

/// The per-event baseline: one autocommit upsert per
/// `(slack_id, integration, dow, hours)`.
pub async fn per_event_baseline(
    store: &Store,
    keys: &[(String, String, i64, i64)],
) -> Result<Run, StoreError> {
    match store.backend() {
        Backend::Sqlite(s) => per_event!(s.pool(), Flavor::Sqlite, keys),
        Backend::MySql(s) => per_event!(s.pool(), Flavor::MySql, keys),
        Backend::Postgres(s) => per_event!(s.pool(), Flavor::Postgres, keys),
    }
}

/// Fill the activity ledger with `n` history rows.
pub async fn prefill_ledger(store: &Store, n: usize) -> Result<(), StoreError> {
    match store.backend() {
        Backend::Sqlite(s) => prefill!(sqlx::Sqlite, s.pool(), n),
        Backend::MySql(s) => prefill!(sqlx::MySql, s.pool(), n),
        Backend::Postgres(s) => prefill!(sqlx::Postgres, s.pool(), n),
    }
}
