//! What the store's shared code needs of an engine, as two small traits
//! with one ordinary implementation per engine (in `sqlite.rs`, `mysql.rs`,
//! `postgres.rs`):
//!
//! * `Sql`: run one statement with bound `Bind` values, on an engine's pool
//!   or inside one of its transactions, and hand each result row to a
//!   callback as `Cells` (read by column index), streaming;
//! * `Engine`: an engine's store: its `Flavor`, its pool and transactions
//!   as `Sql`, and what only it can do (migrations, the batch, closing).
//!
//! The reads, checkpoints, reports, compaction and audit are then ordinary
//! generic functions over these traits, written once. The engines' futures
//! are stated `Send` here, on concrete types, so generic callers never ask
//! sqlx's generic `Executor` signatures for a `Send` proof.

use super::dialect::Flavor;
use super::{ApplyResult, RejectedRecord, StoreError};
use crate::aggregate::StagedRows;
use sqlx::query::Query;
use sqlx::{ColumnIndex, Database, Decode, Encode, Row, Type};
use std::future::Future;

/// A value bound to a statement's parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bind {
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    /// Text or a typed NULL (a filter left open).
    OptText(Option<String>),
}

impl From<i64> for Bind {
    fn from(v: i64) -> Bind {
        Bind::Int(v)
    }
}

impl From<&str> for Bind {
    fn from(v: &str) -> Bind {
        Bind::Text(v.to_string())
    }
}

impl From<&String> for Bind {
    fn from(v: &String) -> Bind {
        Bind::Text(v.clone())
    }
}

impl From<String> for Bind {
    fn from(v: String) -> Bind {
        Bind::Text(v)
    }
}

impl From<Vec<u8>> for Bind {
    fn from(v: Vec<u8>) -> Bind {
        Bind::Bytes(v)
    }
}

impl From<Option<&str>> for Bind {
    fn from(v: Option<&str>) -> Bind {
        Bind::OptText(v.map(str::to_string))
    }
}

impl From<Option<String>> for Bind {
    fn from(v: Option<String>) -> Bind {
        Bind::OptText(v)
    }
}

/// `sql` with `binds` bound in order, for any engine's driver.
pub(crate) fn bound<'q, DB: Database>(
    sql: &'q str,
    binds: &'q [Bind],
) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    i64: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
    &'q [u8]: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
{
    let mut q = sqlx::query(sql);
    for b in binds {
        q = match b {
            Bind::Int(v) => q.bind(*v),
            Bind::Text(v) => q.bind(v.as_str()),
            Bind::Bytes(v) => q.bind(v.as_slice()),
            Bind::OptText(v) => q.bind(v.as_deref()),
        };
    }
    q
}

/// One result row's columns, by index, as the store's decoders read them.
/// Every sqlx row of an engine is one.
pub trait Cells {
    fn int(&self, i: usize) -> Result<i64, StoreError>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    fn text(&self, i: usize) -> Result<String, StoreError>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError>;
    fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError>;
    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError>;
}

impl<R> Cells for R
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn text(&self, i: usize) -> Result<String, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.try_get(i)?)
    }
}

/// What `Sql::each` hands every row to.
pub type EachRow<'f> = dyn FnMut(&dyn Cells) -> Result<(), StoreError> + Send + 'f;

/// Runs SQL with bound parameters: an engine's pool (each statement on a
/// connection of its own) or one of its transactions.
pub trait Sql: Send {
    /// Run a statement; the rows it changed.
    fn run(
        &mut self,
        sql: &str,
        binds: &[Bind],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Run a query and hand each row to `row` as it arrives (nothing is
    /// collected here); an error from `row` ends the query with it.
    fn each(
        &mut self,
        sql: &str,
        binds: &[Bind],
        row: &mut EachRow<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Every row of a query, decoded.
pub(crate) async fn fetch_all<S, T>(
    s: &mut S,
    sql: &str,
    binds: &[Bind],
    mut decode: impl FnMut(&dyn Cells) -> Result<T, StoreError> + Send,
) -> Result<Vec<T>, StoreError>
where
    S: Sql + ?Sized,
    T: Send,
{
    let mut out = Vec::new();
    s.each(sql, binds, &mut |r| {
        out.push(decode(r)?);
        Ok(())
    })
    .await?;
    Ok(out)
}

/// The first row of a query, decoded (`None`: no row). For statements of
/// at most one row.
pub(crate) async fn fetch_optional<S, T>(
    s: &mut S,
    sql: &str,
    binds: &[Bind],
    mut decode: impl FnMut(&dyn Cells) -> Result<T, StoreError> + Send,
) -> Result<Option<T>, StoreError>
where
    S: Sql + ?Sized,
    T: Send,
{
    let mut out = None;
    s.each(sql, binds, &mut |r| {
        if out.is_none() {
            out = Some(decode(r)?);
        }
        Ok(())
    })
    .await?;
    Ok(out)
}

/// The one row of a query, decoded; no row is sqlx's `RowNotFound`.
pub(crate) async fn fetch_one<S, T>(
    s: &mut S,
    sql: &str,
    binds: &[Bind],
    decode: impl FnMut(&dyn Cells) -> Result<T, StoreError> + Send,
) -> Result<T, StoreError>
where
    S: Sql + ?Sized,
    T: Send,
{
    fetch_optional(s, sql, binds, decode)
        .await?
        .ok_or(StoreError::Sql(sqlx::Error::RowNotFound))
}

/// One SQL engine's store, as the shared code uses it.
pub trait Engine: Send + Sync + 'static {
    /// Its SQL text differences.
    const FLAVOR: Flavor;
    /// Its pool, running each statement on a connection of its own.
    type Pool<'p>: Sql
    where
        Self: 'p;
    /// One of its transactions.
    type Tx: Sql;

    fn pool(&self) -> Self::Pool<'_>;

    /// Begin a transaction the way a batch does (SQLite: `BEGIN
    /// IMMEDIATE`, the write lock taken at once).
    fn begin(&self) -> impl Future<Output = Result<Self::Tx, StoreError>> + Send;

    fn commit(tx: Self::Tx) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Apply the pending migrations; returns the versions this call applied.
    fn migrate(&self) -> impl Future<Output = Result<Vec<i64>, StoreError>> + Send;

    /// Migrations not applied yet.
    fn pending_migrations(&self) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// One attempt at applying a batch, in one transaction.
    fn apply_once(
        &self,
        rows: &StagedRows,
        rejects: &[RejectedRecord],
        horizon: Option<i64>,
    ) -> impl Future<Output = Result<ApplyResult, StoreError>> + Send;

    /// Close the pool's connections (SQLite: the write-ahead log
    /// checkpointed first).
    fn close(&self) -> impl Future<Output = ()> + Send;
}
