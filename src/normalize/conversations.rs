//! `Conversations`: one item is one e-mail message of the ACS account
//! `associated_account`, counted under integration `E` for that account.

use super::table::SourceTable;
use super::{TimeContext, event_time};
use crate::bounds;
use crate::domain::{ActivityEvent, Actor, Fact, Integration, SourceKind};
use crate::record::attrs;
use crate::record::item::Item;

/// The `Conversations` table: one item per (`conversation_id`,
/// `response_id`).
pub(crate) static TABLE: SourceTable = SourceTable {
    kind: SourceKind::Conversations,
    suffix: "Conversations",
    code: 3,
    integration: Some(Integration::Email),
    key_attributes: &["conversation_id", "response_id"],
    identity_attributes: &[("conversation_id", true), ("response_id", true)],
    identity_extra: None,
    fact,
};

fn fact(image: &Item<'_>, ctx: &TimeContext<'_>) -> Result<(Fact, bool), String> {
    let account = attrs::opt_str(
        attrs::get(image, "associated_account"),
        "associated_account",
    )?
    .ok_or("missing actor attribute `associated_account`")?;
    // Counted as `user_event_counts.slack_id` itself.
    let account = bounds::check(account, "associated_account", bounds::SLACK_ID)?;
    let (at, fallback) = event_time(image, "timestamp", ctx)?;
    let event = ActivityEvent {
        integration: Integration::Email,
        actor: Actor::Acs(account.to_string()),
        at,
    };
    Ok((Fact::Activity(event), fallback))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::domain::{Actor, Fact};
    use serde_json::{Value, json};

    fn rec(image: Value) -> Value {
        record(
            "acsd2p-prod-Conversations",
            "INSERT",
            "600",
            image,
            json!({"conversation_id":{"S":"conv-1"},"response_id":{"S":"resp-1"}}),
        )
    }

    #[test]
    fn account_is_the_actor() {
        let (fact, fb) = upsert(run(&rec(json!({
            "conversation_id":{"S":"conv-1"},"response_id":{"S":"resp-1"},
            "associated_account":{"S":"acct-7"},"timestamp":{"S":"2024-01-01T00:00:00Z"},
            "ev_score":{"N":"0.85"},"metadata":{"M":{"headers":{"M":{}},"attachments":{"L":[]}}}
        }))));
        let Fact::Activity(ev) = fact else { panic!() };
        assert_eq!(ev.actor, Actor::Acs("acct-7".into()));
        assert!(!fb);
    }

    #[test]
    fn rejections() {
        let r = rejected(run(&rec(json!({"timestamp":{"S":"2024-01-01T00:00:00Z"}}))));
        assert!(r.contains("associated_account"), "{r}");
        let r = rejected(run(&rec(
            json!({"associated_account":{"S":"a"},"timestamp":{"S":"2024-01-01T25:00:00Z"}}),
        )));
        assert!(r.contains("bad time"), "{r}");
    }
}
