//! Schema migrations (`sql/<dialect>/`, embedded): applying them and
//! telling how many are pending.

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
