//! A `Directory` read from local DynamoDB-JSON item files
//! (`<dir>/<table suffix>.jsonl`, one item per line, bare attribute map or
//! S3-export `{"Item": {...}}` line). A missing file is an empty table.
//! Used by `replay` and by tests.

use super::{Directory, DirectoryError, ExternalAccount};
use crate::domain::Integration;
use serde::Deserialize;
use serde_dynamo::{AttributeValue, Item};
use std::collections::HashMap;
use std::path::Path;

/// In-memory indexes built from the item files.
#[derive(Debug, Default)]
pub struct LocalDirectory {
    /// `integrations` GSI: (integration, account_id) → slack_id.
    integrations: HashMap<ExternalAccount, String>,
    /// `slackid_by_githubuser`: githubId → slack_id.
    github_legacy: HashMap<String, String>,
    /// `slackid_by_dropboxid`: dropboxId → slack_id.
    dropbox_legacy: HashMap<String, String>,
    /// `accounts`: slack_id → tz.
    account_tz: HashMap<String, String>,
    /// `Users`: id → timezone.
    user_tz: HashMap<String, String>,
    /// `Threads`: conversation_id → associated_account.
    threads: HashMap<String, String>,
    /// `Conversations`: conversation_id → associated_account.
    conversations: HashMap<String, String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Line {
    Export {
        #[serde(rename = "Item")]
        item: Item,
    },
    Bare(Item),
}

/// A non-blank string attribute; anything else counts as absent.
fn s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(s)) if !s.trim().is_empty() => Some(s.as_str()),
        _ => None,
    }
}

impl LocalDirectory {
    /// Load every known table file under `dir`.
    /// Whether no identity file was found (every actor stays unattributed).
    pub fn is_empty(&self) -> bool {
        self.integrations.is_empty()
            && self.github_legacy.is_empty()
            && self.dropbox_legacy.is_empty()
            && self.account_tz.is_empty()
            && self.user_tz.is_empty()
            && self.threads.is_empty()
            && self.conversations.is_empty()
    }

    pub fn load(dir: &Path) -> Result<LocalDirectory, DirectoryError> {
        // A folder that is not there is a mistake (a wrong --directory, or a
        // run outside the repository), not an empty directory: without this
        // every actor would silently stay unattributed.
        if dir.is_file() {
            return Err(DirectoryError::Folder {
                path: dir.display().to_string(),
                reason: "is a file, not a folder (pass --directory FOLDER of <table>.jsonl \
                         identity files)",
            });
        }
        if !dir.is_dir() {
            return Err(DirectoryError::Folder {
                path: dir.display().to_string(),
                reason: "the folder does not exist (pass --directory FOLDER of <table>.jsonl \
                         identity files)",
            });
        }
        let mut d = LocalDirectory::default();
        for item in read_items(dir, "integrations")? {
            let integration = s(&item, "integration").and_then(Integration::from_code);
            if let (Some(i), Some(acct), Some(slack)) =
                (integration, s(&item, "account_id"), s(&item, "slack_id"))
            {
                d.integrations
                    .insert((i, acct.to_string()), slack.to_string());
            }
        }
        for item in read_items(dir, "github_accounts")? {
            if let (Some(gh), Some(slack)) = (s(&item, "githubId"), s(&item, "slack_id")) {
                d.github_legacy.insert(gh.to_string(), slack.to_string());
            }
        }
        for item in read_items(dir, "dropbox_accounts")? {
            if let (Some(db), Some(slack)) = (s(&item, "dropboxId"), s(&item, "slack_id")) {
                d.dropbox_legacy.insert(db.to_string(), slack.to_string());
            }
        }
        for item in read_items(dir, "accounts")? {
            if let (Some(slack), Some(tz)) = (s(&item, "slack_id"), s(&item, "tz")) {
                d.account_tz.insert(slack.to_string(), tz.to_string());
            }
        }
        for item in read_items(dir, "Users")? {
            let tz = s(&item, "timezone").or_else(|| match item.get("preferences") {
                Some(AttributeValue::M(prefs)) => match prefs.get("timezone") {
                    Some(AttributeValue::S(tz)) => Some(tz.as_str()),
                    _ => None,
                },
                _ => None,
            });
            if let (Some(id), Some(tz)) = (s(&item, "id"), tz) {
                d.user_tz.insert(id.to_string(), tz.to_string());
            }
        }
        for (table, map) in [
            ("Threads", &mut d.threads),
            ("Conversations", &mut d.conversations),
        ] {
            for item in read_items(dir, table)? {
                if let (Some(conv), Some(acct)) =
                    (s(&item, "conversation_id"), s(&item, "associated_account"))
                {
                    map.entry(conv.to_string())
                        .or_insert_with(|| acct.to_string());
                }
            }
        }
        Ok(d)
    }
}

fn read_items(dir: &Path, table: &str) -> Result<Vec<Item>, DirectoryError> {
    let path = dir.join(format!("{table}.jsonl"));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(DirectoryError::Io {
                path: path.display().to_string(),
                source,
            });
        }
    };
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(line).map_err(|e| DirectoryError::BadFile {
            path: path.display().to_string(),
            line: i + 1,
            reason: crate::record::lambda_event::redact_quoted(&e.to_string()),
        })?;
        items.push(match parsed {
            Line::Export { item } | Line::Bare(item) => item,
        });
    }
    Ok(items)
}

impl Directory for LocalDirectory {
    async fn slack_ids(
        &self,
        accounts: &[ExternalAccount],
    ) -> Result<HashMap<ExternalAccount, String>, DirectoryError> {
        let mut out = HashMap::new();
        for acct in accounts {
            let legacy = match acct.0 {
                Integration::Github => self.github_legacy.get(&acct.1),
                Integration::Dropbox => self.dropbox_legacy.get(&acct.1),
                Integration::Email => None,
            };
            if let Some(slack) = self.integrations.get(acct).or(legacy) {
                out.insert(acct.clone(), slack.clone());
            }
        }
        Ok(out)
    }

    async fn icarus_time_zones(
        &self,
        slack_ids: &[String],
    ) -> Result<HashMap<String, String>, DirectoryError> {
        Ok(pick(&self.account_tz, slack_ids))
    }

    async fn acs_time_zones(
        &self,
        account_ids: &[String],
    ) -> Result<HashMap<String, String>, DirectoryError> {
        Ok(pick(&self.user_tz, account_ids))
    }

    async fn conversation_accounts(
        &self,
        conversation_ids: &[String],
    ) -> Result<HashMap<String, String>, DirectoryError> {
        let mut out = HashMap::new();
        for c in conversation_ids {
            if let Some(a) = self.threads.get(c).or_else(|| self.conversations.get(c)) {
                out.insert(c.clone(), a.clone());
            }
        }
        Ok(out)
    }
}

fn pick(map: &HashMap<String, String>, keys: &[String]) -> HashMap<String, String> {
    keys.iter()
        .filter_map(|k| map.get(k).map(|v| (k.clone(), v.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, lines: &[&str]) {
        std::fs::write(dir.join(format!("{name}.jsonl")), lines.join("\n")).unwrap();
    }

    #[tokio::test]
    async fn canonical_gsi_wins_over_legacy_and_fallbacks_work() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        write(
            p,
            "integrations",
            &[
                r#"{"slack_id":{"S":"U_NEW"},"integration":{"S":"G"},"account_id":{"S":"octo"},"access_token":{"S":"x"}}"#,
            ],
        );
        write(
            p,
            "github_accounts",
            &[
                r#"{"Item":{"slack_id":{"S":"U_OLD"},"githubId":{"S":"octo"}}}"#,
                r#"{"Item":{"slack_id":{"S":"U_LEG"},"githubId":{"S":"legacy-only"}}}"#,
            ],
        );
        write(
            p,
            "dropbox_accounts",
            &[r#"{"slack_id":{"S":"U_DB"},"dropboxId":{"S":"dbid:1"}}"#],
        );
        write(
            p,
            "accounts",
            &[r#"{"slack_id":{"S":"U_NEW"},"tz":{"S":"Europe/Madrid"}}"#],
        );
        write(
            p,
            "Users",
            &[
                r#"{"id":{"S":"acct-1"},"timezone":{"S":"Asia/Tokyo"}}"#,
                r#"{"id":{"S":"acct-2"},"preferences":{"M":{"timezone":{"S":"America/Sao_Paulo"}}}}"#,
            ],
        );
        write(
            p,
            "Threads",
            &[r#"{"conversation_id":{"S":"c1"},"associated_account":{"S":"acct-1"}}"#],
        );
        write(
            p,
            "Conversations",
            &[
                r#"{"conversation_id":{"S":"c1"},"response_id":{"S":"r"},"associated_account":{"S":"acct-X"}}"#,
                r#"{"conversation_id":{"S":"c2"},"response_id":{"S":"r"},"associated_account":{"S":"acct-2"}}"#,
            ],
        );
        let d = LocalDirectory::load(p).unwrap();
        let ids = d
            .slack_ids(&[
                (Integration::Github, "octo".into()),
                (Integration::Github, "legacy-only".into()),
                (Integration::Dropbox, "dbid:1".into()),
                (Integration::Github, "nobody".into()),
            ])
            .await
            .unwrap();
        assert_eq!(ids[&(Integration::Github, "octo".into())], "U_NEW");
        assert_eq!(ids[&(Integration::Github, "legacy-only".into())], "U_LEG");
        assert_eq!(ids[&(Integration::Dropbox, "dbid:1".into())], "U_DB");
        assert!(!ids.contains_key(&(Integration::Github, "nobody".into())));
        let tz = d
            .acs_time_zones(&["acct-1".into(), "acct-2".into()])
            .await
            .unwrap();
        assert_eq!(tz["acct-2"], "America/Sao_Paulo");
        let conv = d
            .conversation_accounts(&["c1".into(), "c2".into(), "c3".into()])
            .await
            .unwrap();
        assert_eq!(conv["c1"], "acct-1");
        assert_eq!(conv["c2"], "acct-2");
        assert!(!conv.contains_key("c3"));
    }

    #[test]
    fn bad_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "accounts",
            &[r#"{"slack_id":{"S":"U1"}}"#, "{not json"],
        );
        let e = LocalDirectory::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("accounts.jsonl:2"), "{e}");
    }

    #[test]
    fn missing_dir_is_an_error_and_an_empty_one_is_empty() {
        let e = LocalDirectory::load(Path::new("/nonexistent/streamfold"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/nonexistent/streamfold") && e.contains("does not exist"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = LocalDirectory::load(dir.path()).unwrap();
        assert!(d.is_empty() && d.integrations.is_empty());
    }
}
