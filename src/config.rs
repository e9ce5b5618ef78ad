//! Configuration, parsed once at start-up into plain structs and passed
//! explicitly to whatever needs it.

use crate::redact::redact_url;
use crate::store::StoreOptions;
use chrono_tz::Tz;
use std::path::PathBuf;

/// Default embedded database.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://streamfold.db";
/// Default local directory of identity items.
pub const DEFAULT_DIRECTORY: &str = "fixtures/directory";

/// What every local command needs. `Debug` redacts the database password.
#[derive(Clone)]
pub struct Config {
    pub database_url: String,
    pub directory: PathBuf,
    pub default_tz: Tz,
    pub store: StoreOptions,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("directory", &self.directory)
            .field("default_tz", &self.default_tz)
            .field("store", &self.store)
            .finish()
    }
}

impl std::fmt::Debug for LambdaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaConfig")
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("database_secret_arn", &self.database_secret_arn)
            .field("store", &self.store)
            .field("default_tz", &self.default_tz)
            .field("tables", &self.tables)
            .field("cache", &self.cache)
            .finish()
    }
}

/// Parse an IANA time zone name given by an operator (strict: an invalid
/// configured default is an error, unlike a user's invalid `tz`).
pub fn parse_default_tz(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("unknown time zone {name:?} (expected an IANA name such as Europe/Madrid)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tz() {
        assert_eq!(parse_default_tz("UTC"), Ok(Tz::UTC));
        assert!(
            parse_default_tz("Nowhere/Land")
                .unwrap_err()
                .contains("Nowhere/Land")
        );
    }
}

/// Configuration of `streamfold-lambda`, read once at init from the
/// environment. `Debug` redacts the database password.
#[derive(Clone)]
pub struct LambdaConfig {
    /// `DATABASE_URL`, unless `DATABASE_SECRET_ARN` is given.
    pub database_url: Option<String>,
    pub database_secret_arn: Option<String>,
    pub store: StoreOptions,
    pub default_tz: Tz,
    pub tables: crate::resolve::dynamo::TableNames,
    pub cache: crate::resolve::dynamo::CachePolicy,
}

/// A configuration value that cannot be used, named.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// Per-table overrides: `TABLE_<NAME>` (e.g. `TABLE_THREADS`,
/// `TABLE_INTEGRATIONS_INDEX`) replaces the prefixed default.
const TABLE_OVERRIDES: [&str; 11] = [
    "integrations",
    "integrations_index",
    "github_accounts",
    "github_index",
    "dropbox_accounts",
    "dropbox_index",
    "accounts",
    "Users",
    "Threads",
    "Conversations",
    "LLMReportData",
];

/// How to reach the DynamoDB identity tables and how long to cache their
/// answers: the part of the environment the Lambda and the CLI's
/// `--lookups dynamodb` share, parsed by one function.
#[derive(Clone, Debug)]
pub struct LookupSettings {
    pub tables: crate::resolve::dynamo::TableNames,
    pub cache: crate::resolve::dynamo::CachePolicy,
}

/// A whole number from the environment, or `default` when unset.
fn env_number(
    get: &impl Fn(&str) -> Option<String>,
    k: &str,
    default: u64,
) -> Result<u64, ConfigError> {
    match get(k) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| ConfigError(format!("{k} must be a whole number, not {v:?}"))),
    }
}

impl LookupSettings {
    /// `ICARUS_TABLE_PREFIX`, `ACS_TABLE_PREFIX`, `TABLE_<NAME>` overrides
    /// and the cache lifetimes, from an environment lookup.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<LookupSettings, ConfigError> {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let icarus = get("ICARUS_TABLE_PREFIX").or_else(|| get("TABLE_PREFIX"));
        let acs = get("ACS_TABLE_PREFIX");
        let (Some(icarus), Some(acs)) = (icarus, acs) else {
            return Err(ConfigError(
                "set ICARUS_TABLE_PREFIX (e.g. icarus-prod-) and ACS_TABLE_PREFIX (e.g. acsd2p-prod-)".into(),
            ));
        };
        Ok(LookupSettings {
            tables: crate::resolve::dynamo::TableNames::from_prefixes(
                &icarus,
                &acs,
                &table_overrides(&get),
            ),
            cache: crate::resolve::dynamo::CachePolicy {
                positive: std::time::Duration::from_secs(env_number(
                    &get,
                    "LOOKUP_CACHE_TTL_SECS",
                    300,
                )?),
                negative: std::time::Duration::from_secs(env_number(
                    &get,
                    "LOOKUP_NEGATIVE_TTL_SECS",
                    60,
                )?),
                max_entries: usize::try_from(env_number(
                    &get,
                    "LOOKUP_CACHE_MAX_ENTRIES",
                    crate::resolve::tables::LOOKUP_CACHE_MAX_ENTRIES as u64,
                )?)
                .unwrap_or(usize::MAX)
                .max(1),
            },
        })
    }
}

/// `TABLE_<NAME>` overrides present in the environment.
fn table_overrides(
    get: &impl Fn(&str) -> Option<String>,
) -> std::collections::HashMap<String, String> {
    TABLE_OVERRIDES
        .iter()
        .filter_map(|name| {
            get(&format!("TABLE_{}", name.to_ascii_uppercase())).map(|v| (name.to_string(), v))
        })
        .collect()
}

/// Where LLM reports are projected: `TABLE_LLMREPORTDATA`, else the ACS
/// prefix's `LLMReportData` (named as `TableNames` names it); `None` when
/// neither is set.
pub fn llm_report_table(env: impl Fn(&str) -> Option<String>) -> Option<String> {
    let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let acs = get("ACS_TABLE_PREFIX");
    let overrides = table_overrides(&get);
    if acs.is_none() && !overrides.contains_key("LLMReportData") {
        return None;
    }
    Some(
        crate::resolve::dynamo::TableNames::from_prefixes(
            "",
            acs.as_deref().unwrap_or(""),
            &overrides,
        )
        .llm_reports,
    )
}

impl LambdaConfig {
    /// Parse from an environment lookup (`std::env::var` in the binary).
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<LambdaConfig, ConfigError> {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let database_url = get("DATABASE_URL");
        let database_secret_arn = get("DATABASE_SECRET_ARN");
        if database_url.is_none() && database_secret_arn.is_none() {
            return Err(ConfigError(
                "set DATABASE_URL or DATABASE_SECRET_ARN".into(),
            ));
        }
        let number = |k: &str, default: u64| env_number(&get, k, default);
        let default_tz = parse_default_tz(get("DEFAULT_TIMEZONE").as_deref().unwrap_or("UTC"))
            .map_err(|e| ConfigError(format!("DEFAULT_TIMEZONE: {e}")))?;
        let lookups = LookupSettings::from_env(get)?;
        let max_connections = number("DATABASE_MAX_CONNECTIONS", 2)?;
        if max_connections == 0 {
            return Err(ConfigError(
                "DATABASE_MAX_CONNECTIONS must be at least 1".into(),
            ));
        }
        Ok(LambdaConfig {
            database_url,
            database_secret_arn,
            store: StoreOptions {
                max_connections: max_connections as u32,
                connect_timeout: std::time::Duration::from_secs(number(
                    "DATABASE_CONNECT_TIMEOUT",
                    5,
                )?),
                allow_plaintext: get("STREAMFOLD_DB_ALLOW_PLAINTEXT")
                    .is_some_and(|v| v == "1" || v == "true"),
                insecure_tls: get("STREAMFOLD_DB_INSECURE_TLS")
                    .is_some_and(|v| v == "1" || v == "true"),
                ca_file: get("DATABASE_CA_FILE").map(std::path::PathBuf::from),
                ..StoreOptions::default()
            },
            default_tz,
            tables: lookups.tables,
            cache: lookups.cache,
        })
    }
}

#[cfg(test)]
mod lambda_tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn llm_report_table_has_one_derivation() {
        assert_eq!(llm_report_table(env(&[])), None);
        assert_eq!(
            llm_report_table(env(&[("ACS_TABLE_PREFIX", "acsd2p-prod-")])).as_deref(),
            Some("acsd2p-prod-LLMReportData")
        );
        assert_eq!(
            llm_report_table(env(&[
                ("ACS_TABLE_PREFIX", "acsd2p-prod-"),
                ("TABLE_LLMREPORTDATA", "reports")
            ]))
            .as_deref(),
            Some("reports")
        );
        let lambda = LambdaConfig::from_env(env(&[
            ("DATABASE_URL", "sqlite://x"),
            ("ICARUS_TABLE_PREFIX", "i-"),
            ("ACS_TABLE_PREFIX", "a-"),
        ]))
        .unwrap();
        assert_eq!(
            Some(lambda.tables.llm_reports),
            llm_report_table(env(&[("ACS_TABLE_PREFIX", "a-")]))
        );
    }

    #[test]
    fn lambda_config() {
        let c = LambdaConfig::from_env(env(&[
            ("DATABASE_URL", "mysql://u@db/x"),
            ("ICARUS_TABLE_PREFIX", "icarus-prod-"),
            ("ACS_TABLE_PREFIX", "acsd2p-prod-"),
            ("TABLE_THREADS", "threads-v2"),
            ("LOOKUP_CACHE_TTL_SECS", "30"),
        ]))
        .unwrap();
        assert_eq!(c.store.max_connections, 2);
        assert_eq!(c.tables.accounts, "icarus-prod-accounts");
        assert_eq!(c.tables.threads, "threads-v2");
        assert_eq!(c.cache.positive.as_secs(), 30);
        let with_pw = LambdaConfig::from_env(env(&[
            ("DATABASE_URL", "mysql://admin:Sup3rSecretPw@db/x"),
            ("ICARUS_TABLE_PREFIX", "i-"),
            ("ACS_TABLE_PREFIX", "a-"),
        ]))
        .unwrap();
        assert!(!format!("{with_pw:?}").contains("Sup3rSecretPw"));
        for (bad, want) in [
            (
                vec![("ICARUS_TABLE_PREFIX", "i-"), ("ACS_TABLE_PREFIX", "a-")],
                "DATABASE_URL or DATABASE_SECRET_ARN",
            ),
            (
                vec![("DATABASE_URL", "sqlite://x"), ("ACS_TABLE_PREFIX", "a-")],
                "ICARUS_TABLE_PREFIX",
            ),
            (
                vec![
                    ("DATABASE_URL", "sqlite://x"),
                    ("ICARUS_TABLE_PREFIX", "i-"),
                    ("ACS_TABLE_PREFIX", "a-"),
                    ("DATABASE_MAX_CONNECTIONS", "two"),
                ],
                "DATABASE_MAX_CONNECTIONS must be a whole number",
            ),
            (
                vec![
                    ("DATABASE_URL", "sqlite://x"),
                    ("ICARUS_TABLE_PREFIX", "i-"),
                    ("ACS_TABLE_PREFIX", "a-"),
                    ("DEFAULT_TIMEZONE", "Moon/Base"),
                ],
                "DEFAULT_TIMEZONE",
            ),
        ] {
            let e = LambdaConfig::from_env(env(&bad)).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
