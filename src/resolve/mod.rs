//! Identity and time-zone resolution (DESIGN §2) behind one `Directory`
//! trait. Every method is batched: the pipeline asks once per batch for all
//! the keys it needs, so a remote implementation can de-duplicate and batch.
//!
//! A missing entry in a returned map means "not linked / not known"; an `Err`
//! means the lookup itself failed (transient: the batch is retried).

mod cache;
pub mod dynamo;
pub mod local;
pub mod tables;

use crate::domain::Integration;
use chrono_tz::Tz;
use std::collections::HashMap;
use std::future::Future;

/// A lookup that failed (I/O, throttling, malformed directory data).
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("directory file {path}:{line}: {reason}")]
    BadFile {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("directory folder {path}: {reason}")]
    Folder { path: String, reason: &'static str },
    #[error("cannot read directory file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("directory lookup failed: {0}")]
    Lookup(String),
}

/// An external account to resolve to a Slack ID: (integration, account id).
pub type ExternalAccount = (Integration, String);

/// Where identities and time zones come from.
pub trait Directory: Send + Sync {
    /// Slack IDs of GitHub usernames / Dropbox IDs: the `integrations` GSI
    /// first, the legacy `github_accounts` / `dropbox_accounts` indexes as
    /// fallback.
    fn slack_ids(
        &self,
        accounts: &[ExternalAccount],
    ) -> impl Future<Output = Result<HashMap<ExternalAccount, String>, DirectoryError>> + Send;

    /// Raw `tz` attribute of Icarus `accounts` items, by Slack ID.
    fn icarus_time_zones(
        &self,
        slack_ids: &[String],
    ) -> impl Future<Output = Result<HashMap<String, String>, DirectoryError>> + Send;

    /// Raw `timezone` (or `preferences.timezone`) of ACS `Users`, by id.
    fn acs_time_zones(
        &self,
        account_ids: &[String],
    ) -> impl Future<Output = Result<HashMap<String, String>, DirectoryError>> + Send;

    /// Account of a conversation: `Threads`, then `Conversations`.
    fn conversation_accounts(
        &self,
        conversation_ids: &[String],
    ) -> impl Future<Output = Result<HashMap<String, String>, DirectoryError>> + Send;
}

/// The directory a pipeline resolves through: the local files (replay,
/// tests) or DynamoDB (Lambda, and `--lookups dynamodb`). An enum rather
/// than a trait object because `Directory`'s methods return `impl Future`.
pub enum AnyDirectory {
    Local(local::LocalDirectory),
    Dynamo(dynamo::DynamoDirectory),
}

impl From<local::LocalDirectory> for AnyDirectory {
    fn from(d: local::LocalDirectory) -> Self {
        AnyDirectory::Local(d)
    }
}

impl From<dynamo::DynamoDirectory> for AnyDirectory {
    fn from(d: dynamo::DynamoDirectory) -> Self {
        AnyDirectory::Dynamo(d)
    }
}

impl AnyDirectory {
    /// Lookup cache (hits, misses) so far; the local directory has no cache.
    pub fn cache_counts(&self) -> (u64, u64) {
        match self {
            AnyDirectory::Local(_) => (0, 0),
            AnyDirectory::Dynamo(d) => {
                let s = d.cache_stats();
                (s.hits, s.misses)
            }
        }
    }
}

impl Directory for AnyDirectory {
    async fn slack_ids(
        &self,
        accounts: &[ExternalAccount],
    ) -> Result<HashMap<ExternalAccount, String>, DirectoryError> {
        match self {
            AnyDirectory::Local(d) => d.slack_ids(accounts).await,
            AnyDirectory::Dynamo(d) => d.slack_ids(accounts).await,
        }
    }

    async fn icarus_time_zones(
        &self,
        slack_ids: &[String],
    ) -> Result<HashMap<String, String>, DirectoryError> {
        match self {
            AnyDirectory::Local(d) => d.icarus_time_zones(slack_ids).await,
            AnyDirectory::Dynamo(d) => d.icarus_time_zones(slack_ids).await,
        }
    }

    async fn acs_time_zones(
        &self,
        account_ids: &[String],
    ) -> Result<HashMap<String, String>, DirectoryError> {
        match self {
            AnyDirectory::Local(d) => d.acs_time_zones(account_ids).await,
            AnyDirectory::Dynamo(d) => d.acs_time_zones(account_ids).await,
        }
    }

    async fn conversation_accounts(
        &self,
        conversation_ids: &[String],
    ) -> Result<HashMap<String, String>, DirectoryError> {
        match self {
            AnyDirectory::Local(d) => d.conversation_accounts(conversation_ids).await,
            AnyDirectory::Dynamo(d) => d.conversation_accounts(conversation_ids).await,
        }
    }
}

/// Parse an IANA zone name; missing or invalid zones give the default.
pub fn pick_time_zone(raw: Option<&str>, default: Tz) -> Tz {
    raw.and_then(|name| name.trim().parse::<Tz>().ok())
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zone_choice() {
        assert_eq!(
            pick_time_zone(Some("America/New_York"), Tz::UTC),
            Tz::America__New_York
        );
        assert_eq!(
            pick_time_zone(Some(" Europe/Madrid "), Tz::UTC),
            Tz::Europe__Madrid
        );
        assert_eq!(
            pick_time_zone(Some("Mars/Olympus_Mons"), Tz::Europe__Berlin),
            Tz::Europe__Berlin
        );
        assert_eq!(pick_time_zone(Some(""), Tz::UTC), Tz::UTC);
        assert_eq!(pick_time_zone(None, Tz::Asia__Tokyo), Tz::Asia__Tokyo);
    }
}
