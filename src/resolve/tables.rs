//! What the DynamoDB directory is configured with: the table and index
//! names (from the two prefixes and per-table overrides; the one place the
//! `LLMReportData` name is derived) and the cache lifetimes.

use std::collections::HashMap;
use std::time::Duration;

/// Table and index names, from configuration.
#[derive(Clone, Debug)]
pub struct TableNames {
    pub integrations: String,
    /// GSI of `integrations`: partition `account_id`, sort `integration`.
    pub integrations_index: String,
    pub github_accounts: String,
    pub github_index: String,
    pub dropbox_accounts: String,
    pub dropbox_index: String,
    pub accounts: String,
    pub users: String,
    pub threads: String,
    pub conversations: String,
    /// Where LLM reports are projected.
    pub llm_reports: String,
}

impl TableNames {
    /// Names from the two prefixes (`icarus-<stage>-`, `acsd2p-<stage>-`),
    /// each overridable by `overrides` (key: the table suffix or index name).
    pub fn from_prefixes(
        icarus: &str,
        acs: &str,
        overrides: &HashMap<String, String>,
    ) -> TableNames {
        let name = |key: &str, default: String| overrides.get(key).cloned().unwrap_or(default);
        TableNames {
            integrations: name("integrations", format!("{icarus}integrations")),
            integrations_index: name("integrations_index", "account_id-integration-index".into()),
            github_accounts: name("github_accounts", format!("{icarus}github_accounts")),
            github_index: name("github_index", "slackid_by_githubuser".into()),
            dropbox_accounts: name("dropbox_accounts", format!("{icarus}dropbox_accounts")),
            dropbox_index: name("dropbox_index", "slackid_by_dropboxid".into()),
            accounts: name("accounts", format!("{icarus}accounts")),
            users: name("Users", format!("{acs}Users")),
            threads: name("Threads", format!("{acs}Threads")),
            conversations: name("Conversations", format!("{acs}Conversations")),
            llm_reports: name("LLMReportData", format!("{acs}LLMReportData")),
        }
    }
}

/// Entries the lookup cache holds at most, by default (about 100 bytes
/// each with their keys: some 10 MB of a Lambda's memory).
pub const LOOKUP_CACHE_MAX_ENTRIES: usize = 100_000;

/// Cache lifetimes and size.
#[derive(Clone, Copy, Debug)]
pub struct CachePolicy {
    /// How long a found value is reused.
    pub positive: Duration,
    /// How long "not found" is reused (short: links get created).
    pub negative: Duration,
    /// Entries kept at most; past it, expired entries go first, then the
    /// least recently used.
    pub max_entries: usize,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            positive: Duration::from_secs(300),
            negative: Duration::from_secs(60),
            max_entries: LOOKUP_CACHE_MAX_ENTRIES,
        }
    }
}
