//! Connection policy shared by the dialects: which dialect a URL names, and
//! TLS required for any non-loopback host unless the URL explicitly disables
//! it and the operator allowed that.

use super::StoreError;
use crate::redact::redact_url;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    MySql,
    Postgres,
}

pub fn dialect_of(url: &str) -> Option<Dialect> {
    let scheme = url.split_once(':')?.0.to_ascii_lowercase();
    match scheme.as_str() {
        "sqlite" => Some(Dialect::Sqlite),
        "mysql" | "mariadb" => Some(Dialect::MySql),
        "postgres" | "postgresql" => Some(Dialect::Postgres),
        _ => None,
    }
}

/// Is `host` this machine (or a Unix socket)?
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.is_empty()
        || h == "localhost"
        || h.starts_with('/')
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// How TLS is to be used for a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsDecision {
    /// Keep what the URL says (loopback, or an explicit TLS mode).
    AsConfigured,
    /// Upgrade "prefer" to "require".
    Require,
}

/// Decide TLS for `host` given whether the URL disabled TLS explicitly and
/// whether it named any mode at all.
pub fn tls_policy(
    url: &str,
    host: &str,
    explicitly_disabled: bool,
    mode_given: bool,
    allow_plaintext: bool,
) -> Result<TlsDecision, StoreError> {
    if is_loopback(host) {
        return Ok(TlsDecision::AsConfigured);
    }
    if explicitly_disabled {
        if allow_plaintext {
            tracing::warn!(url = %redact_url(url), "TLS disabled for a non-loopback database host");
            return Ok(TlsDecision::AsConfigured);
        }
        return Err(StoreError::Insecure {
            url: redact_url(url),
            reason: "TLS is disabled in the URL for a non-loopback host; set STREAMFOLD_DB_ALLOW_PLAINTEXT=1 to allow it".into(),
        });
    }
    Ok(if mode_given {
        TlsDecision::AsConfigured
    } else {
        TlsDecision::Require
    })
}

/// Value of a query parameter of the URL (first match, case-insensitive key).
pub fn query_param<'a>(url: &'a str, keys: &[&str]) -> Option<&'a str> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        keys.iter()
            .any(|want| k.eq_ignore_ascii_case(want))
            .then_some(v)
    })
}

/// Await `connecting` (a pool's first connection to `url`), unless the
/// server's port refuses connections: sqlx's pool takes `ConnectionRefused`
/// for a server still starting and retries until its acquire timeout, then
/// says only "pool timed out". A plain TCP connect to `host:port`, raced
/// with it, tells a refused port at once. `socket`: the URL names a Unix
/// socket, which has no port to ask. Failures are `StoreError::Connect`
/// with the URL redacted.
pub(crate) async fn unless_refused<T>(
    url: &str,
    (host, port, socket): (&str, u16, bool),
    connecting: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, super::StoreError> {
    let probe = async {
        if !socket && !host.starts_with('/') {
            let attempt = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                tokio::net::TcpStream::connect((host, port)),
            )
            .await;
            if let Ok(Err(e)) = attempt
                && e.kind() == std::io::ErrorKind::ConnectionRefused
            {
                return format!(
                    "connection refused by {host}:{port}: is the server running, and is \
                     that its port?"
                );
            }
        }
        std::future::pending().await
    };
    let reason = tokio::select! {
        connected = connecting => match connected {
            Ok(pool) => return Ok(pool),
            Err(e) => e.to_string(),
        },
        refused = probe => refused,
    };
    Err(super::StoreError::Connect {
        url: crate::redact::redact_url(url),
        reason: crate::redact::scrub(&reason, url),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialects() {
        assert_eq!(dialect_of("sqlite://x.db"), Some(Dialect::Sqlite));
        assert_eq!(dialect_of("sqlite::memory:"), Some(Dialect::Sqlite));
        assert_eq!(dialect_of("mariadb://h/db"), Some(Dialect::MySql));
        assert_eq!(dialect_of("postgresql://h/db"), Some(Dialect::Postgres));
        assert_eq!(dialect_of("oracle://h"), None);
        assert_eq!(dialect_of("nothing"), None);
    }

    #[test]
    fn loopback() {
        for h in [
            "127.0.0.1",
            "localhost",
            "::1",
            "[::1]",
            "127.8.9.1",
            "/var/run/mysqld",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "db.example.com",
            "10.0.0.5",
            "mydb.abc.us-east-1.rds.amazonaws.com",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn tls_required_for_remote_hosts() {
        let u = "mysql://u:pw@db.example.com/x";
        assert_eq!(
            tls_policy(u, "db.example.com", false, false, false).unwrap(),
            TlsDecision::Require
        );
        assert_eq!(
            tls_policy(u, "db.example.com", false, true, false).unwrap(),
            TlsDecision::AsConfigured
        );
        let e = tls_policy(u, "db.example.com", true, true, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("TLS is disabled") && !e.contains("pw"), "{e}");
        assert_eq!(
            tls_policy(u, "db.example.com", true, true, true).unwrap(),
            TlsDecision::AsConfigured
        );
        assert_eq!(
            tls_policy(u, "127.0.0.1", true, true, false).unwrap(),
            TlsDecision::AsConfigured
        );
    }

    #[test]
    fn params() {
        assert_eq!(
            query_param(
                "mysql://h/db?ssl-mode=DISABLED&x=1",
                &["ssl-mode", "sslmode"]
            ),
            Some("DISABLED")
        );
        assert_eq!(
            query_param("postgres://h/db?sslmode=require", &["ssl-mode", "sslmode"]),
            Some("require")
        );
        assert_eq!(query_param("postgres://h/db", &["sslmode"]), None);
    }
}
