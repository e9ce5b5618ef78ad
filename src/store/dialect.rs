//! What each SQL dialect supplies to the store, stated where the compiler
//! and rustdoc can see it.
//!
//! * `Flavor`: the differences in SQL text (placeholders, casts, text and
//!   decimal conversions); the SQL of `queries`, `reports` and
//!   `checkpoints` is written once as functions of it.
//! * `Dialect`: the migrations and how a transaction begins.
//!   `queries::common_methods!` builds each store's methods from it.
//!
//! A batch is not written here: each engine implements `batch::Engine`.

use super::StoreError;
use sqlx::migrate::Migrator;
use std::future::Future;

/// What differs between the dialects' SQL text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Sqlite,
    MySql,
    Postgres,
}

impl Flavor {
    /// The `n`th bind parameter (1-based).
    pub fn p(self, n: usize) -> String {
        match self {
            Flavor::Postgres => format!("${n}"),
            _ => "?".to_string(),
        }
    }

    /// Name of a 64-bit integer in `CAST(… AS …)`.
    pub fn int(self) -> &'static str {
        match self {
            Flavor::Sqlite => "INTEGER",
            Flavor::MySql => "SIGNED",
            Flavor::Postgres => "BIGINT",
        }
    }

    /// A column as a 64-bit integer.
    pub fn as_int(self, col: &str) -> String {
        format!("CAST({col} AS {})", self.int())
    }

    /// A text column as plain text (MySQL reports binary-collated text as
    /// BINARY; PostgreSQL `CHAR(n)` as bpchar).
    pub fn as_text(self, col: &str) -> String {
        match self {
            Flavor::Sqlite => col.to_string(),
            Flavor::MySql => format!("CONVERT({col} USING utf8mb4)"),
            Flavor::Postgres => format!("CAST({col} AS TEXT)"),
        }
    }

    /// A decimal column as its exact text.
    pub fn decimal_text(self, col: &str) -> String {
        match self {
            Flavor::Sqlite => col.to_string(),
            Flavor::MySql => format!("CAST({col} AS CHAR)"),
            Flavor::Postgres => format!("CAST({col} AS TEXT)"),
        }
    }

    /// A text parameter, typed where the engine needs it (`… IS NULL`).
    pub(crate) fn text_param(self, n: usize) -> String {
        match self {
            Flavor::Postgres => format!("CAST(${n} AS TEXT)"),
            _ => "?".to_string(),
        }
    }
}

/// One SQL dialect of the store.
pub trait Dialect {
    /// The sqlx database type.
    type Db: sqlx::Database;
    /// Its SQL text differences.
    const FLAVOR: Flavor;
    /// The statement that opens a batch transaction (`None`: the driver's).
    const BEGIN: Option<&'static str>;
    /// Its schema migrations (`sql/<dialect>/`).
    fn migrator() -> &'static Migrator;
    /// Apply the pending migrations; returns the versions this call applied.
    fn migrate(
        pool: &sqlx::Pool<Self::Db>,
    ) -> impl Future<Output = Result<Vec<i64>, StoreError>> + Send;
}
