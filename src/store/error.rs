//! What can go wrong in the store, and its three classes: transient (retry
//! the transaction), of the environment (fail the batch whole) or of the
//! data (`run_batch` isolates the records responsible).

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0} (expected sqlite:, mysql:, mariadb: or postgres:)")]
    UnsupportedUrl(String),
    #[error(
        "no such database: {path} does not exist (only commands that write, such as \
         `streamfold replay` or `streamfold migrate`, create one)"
    )]
    NoSuchDatabase { path: String },
    #[error("cannot connect to database {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("database {url}: TLS settings refused: {reason}")]
    Insecure { url: String, reason: String },
    #[error(
        "refusing to compact while a backfill is unfinished: {jobs}. The items it has not read \
         yet are older than the horizon and would be skipped for good. Finish it with \
         `streamfold backfill … --resume`, or give it up with `streamfold compact \
         --abandon-backfill JOB`"
    )]
    BackfillUnfinished { jobs: String },
    #[error(
        "the schema of {url} is not up to date ({pending} migration(s) pending): run `streamfold migrate`"
    )]
    SchemaOutdated { url: String, pending: usize },
    #[error("migrating the database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("migrating the database failed: {0}")]
    MigrationLock(String),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("corrupt row in {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
    #[error(transparent)]
    ReportOverflow(#[from] crate::aggregate::llm_rollup::RollupOverflow),
    #[error(
        "a concurrent writer changed ledger rows of this batch ({inserted} rows written, {expected} planned)"
    )]
    Conflict { inserted: u64, expected: u64 },
    #[error("value does not fit the schema: {0}")]
    Value(String),
    #[error("database {url} cannot be used: {reason}")]
    UnsupportedServer { url: String, reason: String },
    #[error("unexpected answer from the database server: {0}")]
    Protocol(String),
    #[error("database secret: {0}")]
    Secret(String),
}

impl StoreError {
    /// Failures that a retry of the whole transaction can cure.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Conflict { .. } => true,
            StoreError::Sql(e) => is_transient_sql(e),
            _ => false,
        }
    }

    /// A failure of applying a batch that some of its records may have
    /// caused, so that applying fewer of them can succeed: neither transient
    /// nor a fault of the environment (permissions, a missing table, a full
    /// disk, a read-only server), which would refuse every record alike.
    /// `run_batch` isolates the records responsible for such failures.
    pub fn blames_the_data(&self) -> bool {
        match self {
            StoreError::ReportOverflow(_) | StoreError::Value(_) | StoreError::Corrupt { .. } => {
                true
            }
            StoreError::Sql(e) => !is_transient_sql(e) && !is_environment_sql(e),
            _ => false,
        }
    }

    /// This error as the reason of a quarantined record: values quoted in a
    /// server message (MySQL echoes the bytes of an incorrect string) are
    /// left out, names of columns, tables and keys kept.
    pub fn record_reason(&self) -> String {
        let text = match self {
            StoreError::Sql(sqlx::Error::Database(db)) => match db.code() {
                Some(code) => format!("{} (code {code})", db.message()),
                None => db.message().to_string(),
            },
            other => other.to_string(),
        };
        without_quoted_values(&text)
    }
}

/// `text` with every single-quoted segment replaced by `'…'`, except those
/// that name a column, table, key or constraint.
fn without_quoted_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('\'') {
        let (before, after) = rest.split_at(open);
        out.push_str(before);
        let Some(close) = after[1..].find('\'') else {
            out.push_str("'…'");
            return out;
        };
        let quoted = &after[..close + 2];
        let names_a_thing = ["column ", "table ", "key ", "constraint "]
            .iter()
            .any(|w| before.to_ascii_lowercase().ends_with(w))
            && quoted.len() <= 66;
        out.push_str(if names_a_thing { quoted } else { "'…'" });
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// Server errors that no subset of a batch can avoid: authentication and
/// permissions, missing objects and syntax (a schema out of step), resources
/// (disk, memory, connections) and operator intervention.
fn is_environment_sql(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                // access denied, command denied, unknown table / column,
                // syntax, table full, disk full, out of memory, too many
                // connections, read-only server.
                return matches!(
                    my.number(),
                    1044 | 1045
                        | 1142
                        | 1143
                        | 1146
                        | 1054
                        | 1064
                        | 1114
                        | 1021
                        | 1037
                        | 1040
                        | 1290
                        | 1792
                );
            }
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // Primary result codes: SQL error (no such table or
                // column, syntax), permission, read-only, I/O error,
                // corrupt, full, cannot open, out of memory, not a database.
                let primary = db
                    .code()
                    .and_then(|c| c.parse::<u32>().ok())
                    .map(|c| c & 0xff);
                return matches!(primary, Some(1 | 3 | 7 | 8 | 10 | 11 | 13 | 14 | 26));
            }
            match db.code().as_deref() {
                // PostgreSQL classes: 28 authorization, 3D catalog, 42 syntax
                // or access rule (undefined table, insufficient privilege),
                // 53 insufficient resources, 57 operator intervention, 58
                // system error, XX internal; 25006 read-only transaction.
                Some(code) if code.len() == 5 => {
                    matches!(&code[..2], "28" | "3D" | "42" | "53" | "57" | "58" | "XX")
                        || code == "25006"
                }
                _ => false,
            }
        }
        sqlx::Error::Configuration(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Migrate(_) => true,
        _ => false,
    }
}

fn is_transient_sql(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                // deadlock, lock wait timeout, duplicate key (insert race),
                // server shutdown / connection killed, query interrupted.
                return matches!(
                    my.number(),
                    1213 | 1205 | 1062 | 1053 | 1927 | 1317 | 2006 | 2013
                );
            }
            match db.code().as_deref() {
                // serialization failure, deadlock, lock not available, unique
                // violation (insert race), admin shutdown, crash shutdown,
                // cannot connect now, connection failures.
                Some("40001" | "40P01" | "55P03" | "23505" | "57P01" | "57P02" | "57P03") => true,
                Some(code) if code.starts_with("08") => true,
                // SQLite: busy / locked.
                Some("5" | "6" | "261" | "517") => true,
                _ => false,
            }
        }
        _ => false,
    }
}
