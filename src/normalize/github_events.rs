//! `github_events`: one item is one GitHub event by `username` at `timestamp`,
//! counted under integration `G` for the Slack user linked to that username.

use super::table::SourceTable;
use super::{TimeContext, event_time};
use crate::bounds;
use crate::domain::{ActivityEvent, Actor, Fact, Integration, SourceKind};
use crate::record::attrs;
use crate::record::item::Item;

/// The `github_events` table: keyed by the event's `id`, which alone names it.
pub(crate) static TABLE: SourceTable = SourceTable {
    kind: SourceKind::GithubEvents,
    suffix: "github_events",
    code: 1,
    integration: Some(Integration::Github),
    key_attributes: &["id"],
    identity_attributes: &[("id", true)],
    identity_extra: None,
    fact,
};

fn fact(image: &Item<'_>, ctx: &TimeContext<'_>) -> Result<(Fact, bool), String> {
    let username = attrs::opt_str(attrs::get(image, "username"), "username")?
        .ok_or("missing actor attribute `username`")?;
    let username = bounds::check(username, "username", bounds::TEXT)?;
    let (at, fallback) = event_time(image, "timestamp", ctx)?;
    let event = ActivityEvent {
        integration: Integration::Github,
        actor: Actor::External {
            integration: Integration::Github,
            id: username.to_string(),
        },
        at,
    };
    Ok((Fact::Activity(event), fallback))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::domain::{Actor, Fact};
    use chrono::{DateTime, Utc};
    use serde_json::{Value, json};

    fn rec(image: Value) -> Value {
        record(
            "icarus-dev-github_events",
            "INSERT",
            "4000000000000000001",
            image,
            json!({"id":{"S":"e1"}}),
        )
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn table() {
        // (timestamp attribute, expected instant, expected fallback)
        let cases: Vec<(Option<Value>, &str, bool)> = vec![
            (
                Some(json!({"S":"2024-03-10T09:30:00Z"})),
                "2024-03-10T09:30:00Z",
                false,
            ),
            (
                Some(json!({"S":"2024-03-10T11:30:00+02:00"})),
                "2024-03-10T09:30:00Z",
                false,
            ),
            (
                Some(json!({"S":"2024-03-10T09:30:00"})),
                "2024-03-10T09:30:00Z",
                false,
            ),
            (
                Some(json!({"N":"1710063000"})),
                "2024-03-10T09:30:00Z",
                false,
            ),
            (
                Some(json!({"N":"1710063000000"})),
                "2024-03-10T09:30:00Z",
                false,
            ),
            (
                Some(json!({"S":"1710063000"})),
                "2024-03-10T09:30:00Z",
                false,
            ),
            (
                Some(json!({"S":"1710063000000"})),
                "2024-03-10T09:30:00Z",
                false,
            ),
            (Some(json!({"NULL":true})), "2024-03-10T09:30:00.5Z", true),
            (None, "2024-03-10T09:30:00.5Z", true),
        ];
        for (ts, want, fallback) in cases {
            let mut image =
                json!({"id":{"S":"e1"},"username":{"S":"octocat"},"eventType":{"S":"commit"}});
            if let Some(ts) = &ts {
                image["timestamp"] = ts.clone();
            }
            let (fact, fb) = upsert(run(&rec(image)));
            let Fact::Activity(ev) = fact else { panic!() };
            assert_eq!(ev.at, at(want), "{ts:?}");
            assert_eq!(fb, fallback, "{ts:?}");
            assert_eq!(
                ev.actor,
                Actor::External {
                    integration: crate::domain::Integration::Github,
                    id: "octocat".into()
                }
            );
        }
    }

    #[test]
    fn rejections() {
        let cases = [
            (
                json!({"id":{"S":"e1"},"timestamp":{"S":"2024-03-10T09:30:00Z"}}),
                "missing actor attribute `username`",
            ),
            (
                json!({"id":{"S":"e1"},"username":{"N":"5"},"timestamp":{"S":"2024-03-10T09:30:00Z"}}),
                "`username` has type N",
            ),
            (
                json!({"id":{"S":"e1"},"username":{"S":" "},"timestamp":{"S":"2024-03-10T09:30:00Z"}}),
                "empty string",
            ),
            (
                json!({"id":{"S":"e1"},"username":{"S":"o"},"timestamp":{"S":"last tuesday"}}),
                "bad time in attribute `timestamp`",
            ),
            (
                json!({"id":{"S":"e1"},"username":{"S":"o"},"timestamp":{"BOOL":true}}),
                "expected S or N",
            ),
            (
                json!({"id":{"S":"e1"},"username":{"S":"o"},"timestamp":{"N":"-100"}}),
                "negative epoch",
            ),
        ];
        for (image, want) in cases {
            let r = rejected(run(&rec(image)));
            assert!(r.contains(want), "{r} !~ {want}");
        }
    }
}
