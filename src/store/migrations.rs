//! Schema migrations (`sql/<dialect>/`, embedded): applying them (on
//! SQLite under the database's write lock, on MySQL / MariaDB under a
//! `GET_LOCK` of streamfold's own) and telling how many are pending.

use super::StoreError;
use std::collections::HashSet;

/// Versions recorded as applied; empty when the bookkeeping table is missing.
async fn applied_versions<DB>(pool: &sqlx::Pool<DB>) -> Result<HashSet<i64>, StoreError>
where
    DB: sqlx::Database,
    DB::Connection: sqlx::migrate::Migrate,
{
    use sqlx::migrate::Migrate;
    let mut conn = pool.acquire().await?;
    Ok(match (*conn).list_applied_migrations().await {
        Ok(applied) => applied.into_iter().map(|m| m.version).collect(),
        Err(_) => HashSet::new(),
    })
}

/// Run the migrations; returns the versions this call applied.
pub(crate) async fn run_migrations<DB>(
    migrator: &sqlx::migrate::Migrator,
    pool: &sqlx::Pool<DB>,
) -> Result<Vec<i64>, StoreError>
where
    DB: sqlx::Database,
    DB::Connection: sqlx::migrate::Migrate,
{
    let before = applied_versions(pool).await?;
    migrator.run(pool).await?;
    Ok(migrator
        .iter()
        .map(|m| m.version)
        .filter(|v| !before.contains(v))
        .collect())
}

/// The MySQL lock name that serialises `migrate` runs on one server.
const MYSQL_MIGRATION_LOCK: &str = "streamfold_migrate";

/// How long a `migrate` waits for another one to finish, in seconds.
pub const MYSQL_MIGRATION_LOCK_WAIT_SECS: i64 = 300;

/// MySQL / MariaDB: sqlx's migrator run on one connection that holds
/// `GET_LOCK('streamfold_migrate', 300)` for the whole run, released after.
/// sqlx's own lock is `GET_LOCK(name, -1)`, which MySQL reads as "wait
/// forever" but MariaDB answers with NULL at once; sqlx goes on regardless,
/// so concurrent runs on an empty MariaDB database raced (`Duplicate entry
/// '1' for key 'PRIMARY'` in `_sqlx_migrations`, `table … already
/// exists`). Here the answer must be 1 (acquired); a timeout (0) or an
/// error (NULL) refuses to migrate. A run that waited finds the schema
/// applied and does nothing.
pub(crate) async fn run_mysql_migrations(
    migrator: &sqlx::migrate::Migrator,
    pool: &sqlx::MySqlPool,
) -> Result<Vec<i64>, StoreError> {
    let mut conn = pool.acquire().await?;
    let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
        .bind(MYSQL_MIGRATION_LOCK)
        .bind(MYSQL_MIGRATION_LOCK_WAIT_SECS)
        .fetch_one(&mut *conn)
        .await?;
    if got != Some(1) {
        return Err(StoreError::MigrationLock(format!(
            "the lock `{MYSQL_MIGRATION_LOCK}` was not acquired within              {MYSQL_MIGRATION_LOCK_WAIT_SECS} s (another `streamfold migrate` still running?)"
        )));
    }
    let result = migrate_on(migrator, &mut conn).await;
    let released: Result<Option<i64>, sqlx::Error> = sqlx::query_scalar("SELECT RELEASE_LOCK(?)")
        .bind(MYSQL_MIGRATION_LOCK)
        .fetch_one(&mut *conn)
        .await;
    if !matches!(released, Ok(Some(1))) {
        // A connection that may still hold the lock never returns to the
        // pool: closing it releases the lock.
        conn.close_on_drop();
    }
    result
}

/// The migrations on one connection; returns the versions newly applied.
async fn migrate_on(
    migrator: &sqlx::migrate::Migrator,
    conn: &mut sqlx::MySqlConnection,
) -> Result<Vec<i64>, StoreError> {
    use sqlx::migrate::Migrate;
    let before: HashSet<i64> = match conn.list_applied_migrations().await {
        Ok(applied) => applied.into_iter().map(|m| m.version).collect(),
        Err(_) => HashSet::new(),
    };
    migrator.run_direct(conn).await?;
    Ok(migrator
        .iter()
        .map(|m| m.version)
        .filter(|v| !before.contains(v))
        .collect())
}

/// Number of migrations not yet applied.
pub(crate) async fn pending_migrations<DB>(
    migrator: &sqlx::migrate::Migrator,
    pool: &sqlx::Pool<DB>,
) -> usize
where
    DB: sqlx::Database,
    DB::Connection: sqlx::migrate::Migrate,
{
    let applied = applied_versions(pool).await.unwrap_or_default();
    migrator
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .count()
}

/// SQLite: every pending migration in one `BEGIN IMMEDIATE` transaction,
/// bookkept in sqlx's own `_sqlx_migrations` table (same columns and
/// checksums, so `pending_migrations` and sqlx's migrator agree with it).
/// sqlx's migrator takes no lock on SQLite and opens deferred
/// transactions, so two commands starting on a new database file raced:
/// `table user_event_counts already exists`, `database is locked`. Here
/// the write lock is taken before anything is read; the second process
/// waits for it (the busy timeout) and then finds nothing to do.
pub(crate) async fn run_sqlite_migrations(
    migrator: &sqlx::migrate::Migrator,
    pool: &sqlx::SqlitePool,
) -> Result<Vec<i64>, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    // Dropped on error: the transaction rolls back.
    let newly = apply_sqlite_pending(migrator, &mut tx).await?;
    tx.commit().await?;
    Ok(newly)
}

async fn apply_sqlite_pending(
    migrator: &sqlx::migrate::Migrator,
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
) -> Result<Vec<i64>, StoreError> {
    use sqlx::Executor;
    use sqlx::migrate::MigrateError;
    tx.execute(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
            success BOOLEAN NOT NULL,
            checksum BLOB NOT NULL,
            execution_time BIGINT NOT NULL
        )",
    )
    .await?;
    let rows = sqlx::query("SELECT version, checksum FROM _sqlx_migrations WHERE success")
        .fetch_all(&mut **tx)
        .await?;
    let mut applied = std::collections::HashMap::new();
    for row in &rows {
        use sqlx::Row;
        applied.insert(row.try_get::<i64, _>(0)?, row.try_get::<Vec<u8>, _>(1)?);
    }
    let mut newly = Vec::new();
    for m in migrator.iter() {
        if m.migration_type.is_down_migration() {
            continue;
        }
        match applied.get(&m.version) {
            Some(sum) if sum[..] != m.checksum[..] => {
                return Err(MigrateError::VersionMismatch(m.version).into());
            }
            Some(_) => continue,
            None => {}
        }
        let started = std::time::Instant::now();
        // Every statement of the file (SQLite runs them all from one string).
        tx.execute(&*m.sql)
            .await
            .map_err(|e| MigrateError::ExecuteMigration(e, m.version))?;
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (?, ?, TRUE, ?, ?)",
        )
        .bind(m.version)
        .bind(&*m.description)
        .bind(&*m.checksum)
        .bind(started.elapsed().as_nanos() as i64)
        .execute(&mut **tx)
        .await?;
        newly.push(m.version);
    }
    Ok(newly)
}
