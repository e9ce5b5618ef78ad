//! Connection policy shared by the dialects: which dialect a URL names; TLS
//! verified in full for any non-loopback host unless the operator allowed
//! less; the process's one crypto provider.

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

/// A TLS mode, in PostgreSQL's names (MySQL's map one to one:
/// `DISABLED`, `PREFERRED`, `REQUIRED`, `VERIFY_CA`, `VERIFY_IDENTITY`).
/// MySQL has no `allow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// Plaintext.
    Disable,
    /// Plaintext, TLS only if the server insists.
    Allow,
    /// TLS if the server offers it, else plaintext; nothing verified.
    Prefer,
    /// TLS, but the certificate is not verified.
    Require,
    /// TLS, the certificate chains to a trusted CA; its name is not checked.
    VerifyCa,
    /// TLS, trusted CA and the certificate names the host.
    VerifyFull,
}

impl TlsMode {
    /// The modes that can end in plaintext.
    pub fn can_be_plaintext(self) -> bool {
        matches!(self, TlsMode::Disable | TlsMode::Allow | TlsMode::Prefer)
    }

    /// The mode as URLs spell it: PostgreSQL's name, then MySQL's.
    pub fn names(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable / DISABLED",
            TlsMode::Allow => "allow",
            TlsMode::Prefer => "prefer / PREFERRED",
            TlsMode::Require => "require / REQUIRED",
            TlsMode::VerifyCa => "verify-ca / VERIFY_CA",
            TlsMode::VerifyFull => "verify-full / VERIFY_IDENTITY",
        }
    }

    /// The modes that do not check the server's identity in full.
    pub fn skips_verification(self) -> bool {
        self != TlsMode::VerifyFull
    }
}

/// What the operator allowed beyond full verification, for non-loopback
/// hosts. Loopback hosts and Unix sockets keep whatever the URL says: their
/// traffic does not leave the machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsAllowances {
    /// `--allow-plaintext`: modes that can end in plaintext (and, since
    /// plaintext is weaker still, those that skip verification).
    pub plaintext: bool,
    /// `--insecure-tls`: encrypted modes that skip verification (`require`,
    /// `verify-ca`).
    pub unverified: bool,
}

/// The TLS mode to connect with, given the mode the URL (or the driver's
/// environment) named, if any. `None`: keep the driver's own choice
/// (loopback hosts only).
///
/// A non-loopback host without a mode gets `verify-full`; a named mode that
/// can end in plaintext needs `allowances.plaintext`; one that encrypts but
/// does not verify in full needs `allowances.unverified` (or `plaintext`).
pub fn tls_policy(
    url: &str,
    host: &str,
    named: Option<TlsMode>,
    allowances: TlsAllowances,
) -> Result<Option<TlsMode>, StoreError> {
    if is_loopback(host) {
        return Ok(named);
    }
    let Some(mode) = named else {
        return Ok(Some(TlsMode::VerifyFull));
    };
    let refuse = |reason: String| StoreError::Insecure {
        url: redact_url(url),
        reason,
    };
    if mode.can_be_plaintext() {
        if !allowances.plaintext {
            return Err(refuse(format!(
                "TLS mode {} can fall back to plaintext to a non-loopback host; use \
                 verify-full (MySQL: VERIFY_IDENTITY), or pass --allow-plaintext \
                 (STREAMFOLD_DB_ALLOW_PLAINTEXT=1) to accept that",
                mode.names()
            )));
        }
        tracing::warn!(url = %redact_url(url), ?mode, "plaintext allowed to a non-loopback database host");
    } else if mode.skips_verification() {
        if !(allowances.unverified || allowances.plaintext) {
            return Err(refuse(format!(
                "TLS mode {} does not verify the server's identity (a non-loopback \
                 host); use verify-full (MySQL: VERIFY_IDENTITY) with the server's CA \
                 (--db-ca-file), or pass --insecure-tls (STREAMFOLD_DB_INSECURE_TLS=1) to \
                 accept that",
                mode.names()
            )));
        }
        tracing::warn!(url = %redact_url(url), ?mode, "unverified TLS allowed to a non-loopback database host");
    }
    Ok(Some(mode))
}

/// Install the one rustls crypto provider of the process (ring, the one
/// sqlx's handshakes use). rustls is linked with both ring and aws-lc-rs
/// (the AWS SDK brings the latter), and with two providers and none
/// installed, the first verifier built from the process default panics (as
/// sqlx's `verify-ca` did). Idempotent; both binaries call it first thing,
/// and opening a store calls it again for library users.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A CA bundle file to trust, checked before any connection so that a
/// mistyped path is said as such rather than as a failed handshake.
pub fn check_ca_file(url: &str, path: &std::path::Path) -> Result<(), StoreError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(StoreError::Insecure {
            url: redact_url(url),
            reason: format!("the CA bundle {} is not a file", path.display()),
        }),
        Err(e) => Err(StoreError::Insecure {
            url: redact_url(url),
            reason: format!("the CA bundle {} cannot be read: {e}", path.display()),
        }),
    }
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
        reason: crate::redact::scrub(&with_tls_hint(reason), url),
    })
}

/// A failed certificate check, with what to do about it.
fn with_tls_hint(reason: String) -> String {
    if reason.contains("UnknownIssuer") || reason.contains("unknown issuer") {
        format!(
            "{reason}; the server's certificate is not signed by a trusted CA: give its CA \
             bundle with --db-ca-file / DATABASE_CA_FILE (RDS and Aurora: AWS's global \
             bundle; README, \"TLS\")"
        )
    } else if reason.contains("NotValidForName") || reason.contains("not valid for name") {
        format!(
            "{reason}; the certificate does not name the host in the URL: connect by the \
             name the certificate carries (the RDS endpoint, not an IP or a CNAME)"
        )
    } else {
        reason
    }
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
    fn remote_hosts_verify_in_full_unless_allowed() {
        let u = "mysql://u:pw@db.example.com/x";
        let none = TlsAllowances::default();
        let remote = |named, allow| tls_policy(u, "db.example.com", named, allow);
        assert_eq!(remote(None, none).unwrap(), Some(TlsMode::VerifyFull));
        assert_eq!(
            remote(Some(TlsMode::VerifyFull), none).unwrap(),
            Some(TlsMode::VerifyFull)
        );
        for weak in [
            TlsMode::Disable,
            TlsMode::Allow,
            TlsMode::Prefer,
            TlsMode::Require,
            TlsMode::VerifyCa,
        ] {
            let e = remote(Some(weak), none).unwrap_err().to_string();
            assert!(!e.contains("pw"), "{e}");
            assert!(
                e.contains("--allow-plaintext") || e.contains("--insecure-tls"),
                "{e}"
            );
        }
        let unverified = TlsAllowances {
            unverified: true,
            plaintext: false,
        };
        for mode in [TlsMode::Require, TlsMode::VerifyCa] {
            assert_eq!(remote(Some(mode), unverified).unwrap(), Some(mode));
        }
        for mode in [TlsMode::Disable, TlsMode::Allow, TlsMode::Prefer] {
            let e = remote(Some(mode), unverified).unwrap_err().to_string();
            assert!(e.contains("plaintext"), "{e}");
        }
        let plaintext = TlsAllowances {
            plaintext: true,
            unverified: false,
        };
        for mode in [TlsMode::Disable, TlsMode::Prefer, TlsMode::Require] {
            assert_eq!(remote(Some(mode), plaintext).unwrap(), Some(mode));
        }
        // Loopback keeps what it was given, including nothing.
        assert_eq!(tls_policy(u, "127.0.0.1", None, none).unwrap(), None);
        assert_eq!(
            tls_policy(u, "localhost", Some(TlsMode::Disable), none).unwrap(),
            Some(TlsMode::Disable)
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
