//! `dropbox_file_changes`: one item is one file change, by the "modified by"
//! Dropbox ID `user_id` (the account owner `account_id` when absent), counted
//! under integration `D`.

use super::table::SourceTable;
use super::{TimeContext, event_time};
use crate::bounds;
use crate::domain::{ActivityEvent, Actor, Fact, Integration, SourceKind};
use crate::record::attrs;
use crate::record::item::Item;

/// The `dropbox_file_changes` table. The seed keys it by `account_id`; a
/// change is named by `account_id` and its `timestamp` (when present), so
/// a change is one event whether the real table is keyed by `account_id`
/// alone (each change overwrites the account's item) or by (`account_id`,
/// `timestamp`).
pub(crate) static TABLE: SourceTable = SourceTable {
    kind: SourceKind::DropboxFileChanges,
    suffix: "dropbox_file_changes",
    code: 2,
    integration: Some(Integration::Dropbox),
    key_attributes: &["account_id"],
    identity_attributes: &[("account_id", true), ("timestamp", false)],
    identity_extra: None,
    fact,
};

fn fact(image: &Item<'_>, ctx: &TimeContext<'_>) -> Result<(Fact, bool), String> {
    let actor = match attrs::opt_str(attrs::get(image, "user_id"), "user_id")? {
        Some(id) => bounds::check(id, "user_id", bounds::TEXT)?,
        None => bounds::check(
            attrs::opt_str(attrs::get(image, "account_id"), "account_id")?
                .ok_or("missing actor attribute: neither `user_id` nor `account_id`")?,
            "account_id",
            bounds::TEXT,
        )?,
    };
    let (at, fallback) = event_time(image, "timestamp", ctx)?;
    let event = ActivityEvent {
        integration: Integration::Dropbox,
        actor: Actor::External {
            integration: Integration::Dropbox,
            id: actor.to_string(),
        },
        at,
    };
    Ok((Fact::Activity(event), fallback))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::domain::{Actor, Fact, Integration};
    use serde_json::{Value, json};

    fn rec(image: Value) -> Value {
        record(
            "icarus-prod-dropbox_file_changes",
            "INSERT",
            "500",
            image,
            json!({"account_id":{"S":"dbid:OWNER"}}),
        )
    }

    #[test]
    fn actor_choice() {
        let cases = [
            (
                json!({"account_id":{"S":"dbid:OWNER"},"user_id":{"S":"dbid:EDITOR"},"timestamp":{"S":"2024-03-10T09:30:00Z"}}),
                "dbid:EDITOR",
            ),
            (
                json!({"account_id":{"S":"dbid:OWNER"},"timestamp":{"N":"1710063000"}}),
                "dbid:OWNER",
            ),
            (
                json!({"account_id":{"S":"dbid:OWNER"},"user_id":{"NULL":true},"timestamp":{"S":"2024-03-10T09:30:00.000+00:00"}}),
                "dbid:OWNER",
            ),
        ];
        for (image, want) in cases {
            let (fact, _) = upsert(run(&rec(image)));
            let Fact::Activity(ev) = fact else { panic!() };
            assert_eq!(
                ev.actor,
                Actor::External {
                    integration: Integration::Dropbox,
                    id: want.into()
                }
            );
            assert_eq!(ev.integration, Integration::Dropbox);
        }
    }

    #[test]
    fn rejections() {
        let r = rejected(run(&rec(
            json!({"timestamp":{"S":"2024-03-10T09:30:00Z"},"type":{"S":"file"}}),
        )));
        assert!(r.contains("neither `user_id` nor `account_id`"), "{r}");
        let r = rejected(run(&rec(
            json!({"user_id":{"L":[]},"timestamp":{"S":"2024-03-10T09:30:00Z"}}),
        )));
        assert!(r.contains("`user_id` has type L"), "{r}");
    }
}
