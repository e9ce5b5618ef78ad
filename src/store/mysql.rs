//! MySQL 8 / MariaDB store: the RDS production target (MariaDB ≥ 10.6 or
//! MySQL ≥ 8.0.4, for `JSON_TABLE`; tested on MariaDB 10.11). Sessions run
//! at READ COMMITTED; a batch (`batch::mysql`) locks its existing ledger
//! rows in identity order (`FOR UPDATE`) before planning, so concurrent
//! consumers serialise per item and never double-count. SQL avoids syntax
//! only one of the two servers accepts (no `AS new` row alias).

use super::connect::{self, TlsMode};
use super::dialect::{Dialect, Flavor};
use super::exec::{Bind, EachRow, Engine, Sql, bound};
use super::{ApplyResult, RejectedRecord, StoreError, StoreOptions};
use crate::aggregate::StagedRows;
use futures::TryStreamExt as _;
use sqlx::migrate::Migrator;
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlSslMode};
use sqlx::{Executor, Transaction};
use std::str::FromStr;

static MIGRATOR: Migrator = sqlx::migrate!("sql/mysql");

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
        let named = connect::query_param(url, &["ssl-mode", "sslmode"])
            .map(|_| tls_mode_of(options.get_ssl_mode()));
        if let Some(mode) =
            connect::tls_policy(url, options.get_host(), named, opts.tls_allowances())?
        {
            options = options.ssl_mode(mysql_ssl_mode(mode));
        }
        if let Some(ca) = &opts.ca_file
            && connect::query_param(url, &["ssl-ca", "sslca"]).is_none()
        {
            connect::check_ca_file(url, ca)?;
            options = options.ssl_ca(ca);
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
                        Ok(())
                    })
                })
                .connect_with(options),
        )
        .await?;
        let version: String = sqlx::query_scalar("SELECT VERSION()")
            .fetch_one(&pool)
            .await?;
        if let Err(reason) = supported_server(&version) {
            return Err(StoreError::UnsupportedServer {
                url: crate::redact::redact_url(url),
                reason,
            });
        }
        let packet: i64 = sqlx::query_scalar("SELECT CAST(@@max_allowed_packet AS SIGNED)")
            .fetch_one(&pool)
            .await?;
        if let Err(reason) = packet_fits(packet) {
            return Err(StoreError::UnsupportedServer {
                url: crate::redact::redact_url(url),
                reason,
            });
        }
        Ok(MySqlStore { pool })
    }

    /// The connection pool, for tools that run their own statements
    /// (`streamfold bench` baselines, tests).
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }
}

/// Whether a server of `version` (`SELECT VERSION()`) has what the batch
/// needs (`JSON_TABLE`): MariaDB ≥ 10.6, MySQL ≥ 8.0.4.
pub fn supported_server(version: &str) -> Result<(), String> {
    // MariaDB may prefix "5.5.5-" for old replication clients.
    let v = version.strip_prefix("5.5.5-").unwrap_or(version);
    let mariadb = v.to_ascii_lowercase().contains("mariadb");
    // The leading `X.Y.Z`; Aurora reports `8.0.mysql_aurora.3.05.2`, whose
    // missing patch level counts as new enough.
    let numbers: Vec<u32> = v
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()
        .unwrap_or("")
        .split('.')
        .take(3)
        .map(|n| {
            if n.is_empty() {
                u32::MAX
            } else {
                n.parse().unwrap_or(0)
            }
        })
        .collect();
    let numbers = if numbers.first().is_none_or(|&n| n == u32::MAX) {
        Vec::new()
    } else {
        numbers
    };
    let at_least = |want: [u32; 3]| numbers.as_slice() >= want.as_slice();
    let (ok, need) = if mariadb {
        (at_least([10, 6, 0]), "MariaDB 10.6")
    } else {
        (at_least([8, 0, 4]), "MySQL 8.0.4")
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "server version {version} lacks JSON_TABLE, which the batch needs: use {need} or later"
        ))
    }
}

impl Sql for &MySqlPool {
    async fn run(&mut self, sql: &str, binds: &[Bind]) -> Result<u64, StoreError> {
        Ok(bound::<MySql>(sql, binds)
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
        let mut rows = bound::<MySql>(sql, binds).fetch(*self);
        while let Some(r) = rows.try_next().await? {
            row(&r)?;
        }
        Ok(())
    }
}

impl Sql for Transaction<'_, MySql> {
    async fn run(&mut self, sql: &str, binds: &[Bind]) -> Result<u64, StoreError> {
        Ok(bound::<MySql>(sql, binds)
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
        let mut rows = bound::<MySql>(sql, binds).fetch(&mut **self);
        while let Some(r) = rows.try_next().await? {
            row(&r)?;
        }
        Ok(())
    }
}

impl Engine for MySqlStore {
    const FLAVOR: Flavor = MySqlDialect::FLAVOR;
    type Pool<'p> = &'p MySqlPool;
    type Tx = Transaction<'static, MySql>;

    fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    async fn begin(&self) -> Result<Self::Tx, StoreError> {
        Ok(match MySqlDialect::BEGIN {
            Some(statement) => self.pool.begin_with(statement).await?,
            None => self.pool.begin().await?,
        })
    }

    async fn commit(tx: Self::Tx) -> Result<(), StoreError> {
        Ok(tx.commit().await?)
    }

    async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        MySqlDialect::migrate(&self.pool).await
    }

    async fn pending_migrations(&self) -> Result<usize, StoreError> {
        Ok(super::pending_migrations(MySqlDialect::migrator(), &self.pool).await)
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

/// The MySQL / MariaDB dialect: READ COMMITTED, row locks in id order.
pub struct MySqlDialect;

impl Dialect for MySqlDialect {
    type Db = MySql;
    const FLAVOR: Flavor = Flavor::MySql;
    const BEGIN: Option<&'static str> = None;

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    /// sqlx's migrator under streamfold's own lock (MariaDB ignores
    /// sqlx's; `migrations::run_mysql_migrations`).
    async fn migrate(pool: &sqlx::Pool<sqlx::MySql>) -> Result<Vec<i64>, StoreError> {
        super::migrations::run_mysql_migrations(Self::migrator(), pool).await
    }
}

/// The smallest `max_allowed_packet` the batch's statements stay under:
/// documents are sent in `SET`s of at most `batch::mysql::PACKET_BUDGET`
/// bytes, unless one document alone is larger, and one quarantined record
/// (`bounds::REJECT_RAW`, JSON-escaped: at most twice that) is the largest
/// document there is.
pub const MIN_PACKET: i64 = 8 << 20;

/// Whether the server's `max_allowed_packet` holds the largest statement a
/// batch sends.
fn packet_fits(packet: i64) -> Result<(), String> {
    if packet < MIN_PACKET {
        return Err(format!(
            "max_allowed_packet is {packet} bytes; streamfold needs at least {MIN_PACKET} \
             (8 MiB; the MariaDB default is 16 MiB, MySQL 8's 64 MiB): raise it on the server"
        ));
    }
    Ok(())
}

/// The driver's mode in the policy's terms.
fn tls_mode_of(mode: MySqlSslMode) -> TlsMode {
    match mode {
        MySqlSslMode::Disabled => TlsMode::Disable,
        MySqlSslMode::Preferred => TlsMode::Prefer,
        MySqlSslMode::Required => TlsMode::Require,
        MySqlSslMode::VerifyCa => TlsMode::VerifyCa,
        MySqlSslMode::VerifyIdentity => TlsMode::VerifyFull,
    }
}

/// The policy's mode in the driver's terms (MySQL has no `allow`: it is
/// the closest plaintext-first mode, `PREFERRED`, only if ever asked).
fn mysql_ssl_mode(mode: TlsMode) -> MySqlSslMode {
    match mode {
        TlsMode::Disable => MySqlSslMode::Disabled,
        TlsMode::Allow | TlsMode::Prefer => MySqlSslMode::Preferred,
        TlsMode::Require => MySqlSslMode::Required,
        TlsMode::VerifyCa => MySqlSslMode::VerifyCa,
        TlsMode::VerifyFull => MySqlSslMode::VerifyIdentity,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_largest_statement_fits_the_smallest_packet_accepted() {
        use super::{MIN_PACKET, packet_fits};
        use crate::bounds::REJECT_RAW;
        use crate::store::batch::mysql::PACKET_BUDGET;
        // One quarantined record, JSON-escaped (at most doubled), with its
        // row's other fields; or one budget's worth of documents.
        assert!((2 * REJECT_RAW + (64 << 10)) as i64 <= MIN_PACKET);
        assert!(PACKET_BUDGET as i64 + (64 << 10) <= MIN_PACKET);
        assert!(packet_fits(16 << 20).is_ok());
        let e = packet_fits(4 << 20).unwrap_err();
        assert!(e.contains("raise it"), "{e}");
    }

    use super::supported_server;

    #[test]
    fn server_versions() {
        for ok in [
            "10.11.19-MariaDB-0+deb12u1",
            "10.6.0-MariaDB",
            "5.5.5-10.6.12-MariaDB",
            "11.4.2-MariaDB-log",
            "8.0.4",
            "8.0.36",
            "8.4.0-commercial",
            "9.1.0",
            "8.0.mysql_aurora.3.05.2",
        ] {
            assert!(supported_server(ok).is_ok(), "{ok}");
        }
        for old in [
            "10.5.23-MariaDB",
            "10.3.39-MariaDB-0+deb10u1",
            "5.7.44-log",
            "8.0.3-rc",
            "5.5.5-10.4.1-MariaDB",
            "5.7.mysql_aurora.2.11.2",
            "mysql",
            "",
        ] {
            let why = supported_server(old).unwrap_err();
            assert!(why.contains("JSON_TABLE"), "{old}: {why}");
        }
    }
}
