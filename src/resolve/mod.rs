//! Identity and time-zone resolution (DESIGN §2) behind one `Directory`
//! trait. Every method is batched: the pipeline asks once per batch for all
//! the keys it needs, so a remote implementation can de-duplicate and batch.
//!
//! A missing entry in a returned map means "not linked / not known"; an `Err`
//! means the lookup itself failed (transient: the batch is retried).

pub mod dynamo;
pub mod local;

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
