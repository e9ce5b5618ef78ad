//! Staging (pure): a batch's normalised changes, with the directory's
//! answers, become one ledger row per identity — live with its bucket in
//! the user's zone, unattributed when the actor or conversation has no
//! link yet (or a link that would not fit its column), or a tombstone —
//! and rows of one identity collapse to the one that would be applied
//! last.

use super::bucket::bucket;
use super::{ActivityRow, LlmRow, RowState, StagedRows, collapse};
use crate::bounds;
use crate::domain::{ActivityEvent, Actor, Fact, Identity, SourceKind, Version};
use crate::normalize::{Change, ChangeKind};
use crate::resolve::{ExternalAccount, pick_time_zone};
use chrono_tz::Tz;
use std::collections::HashMap;

/// Directory answers for one batch.
#[derive(Default)]
pub struct Resolved {
    /// Slack ID of each linked GitHub / Dropbox account.
    pub slack_ids: HashMap<ExternalAccount, String>,
    /// Raw `tz` of Icarus accounts, by Slack ID.
    pub icarus_tz: HashMap<String, String>,
    /// Raw time zone of ACS accounts, by id.
    pub acs_tz: HashMap<String, String>,
    /// Account of each conversation.
    pub conversation_accounts: HashMap<String, String>,
}

impl Resolved {
    fn activity_row(
        &self,
        id: Identity,
        version: Version,
        ev: ActivityEvent,
        default_tz: Tz,
    ) -> ActivityRow {
        let (subject, tz) = match &ev.actor {
            Actor::External {
                integration,
                id: ext,
            } => match self.slack_ids.get(&(*integration, ext.clone())) {
                // `user_event_counts.slack_id` is VARCHAR(64): a longer
                // "Slack ID" is bad directory data, treated as no link.
                Some(slack) if bounds::fits(slack, bounds::SLACK_ID) => {
                    (Some(slack.clone()), Some(self.icarus_tz.get(slack)))
                }
                _ => (Some(ext.clone()), None),
            },
            Actor::Acs(account) => (Some(account.clone()), Some(self.acs_tz.get(account))),
        };
        match tz {
            Some(raw_tz) => ActivityRow {
                id,
                version,
                state: RowState::Live,
                integration: ev.integration,
                subject,
                bucket: Some(bucket(
                    ev.at,
                    pick_time_zone(raw_tz.map(String::as_str), default_tz),
                )),
                event_at: Some(ev.at.timestamp()),
            },
            None => ActivityRow {
                id,
                version,
                state: RowState::Unattributed,
                integration: ev.integration,
                subject,
                bucket: None,
                event_at: Some(ev.at.timestamp()),
            },
        }
    }
}

/// A staged batch: its rows, and what is needed to count each change.
pub struct Staged {
    pub rows: StagedRows,
    /// Per change, in order: (source, identity, fell back to the
    /// approximate creation time).
    pub order: Vec<(SourceKind, Identity, bool)>,
    /// The state each identity's staged row has.
    pub final_state: HashMap<Identity, RowState>,
}

/// Stage `changes` with the directory's answers.
pub fn stage(changes: Vec<Change>, resolved: &Resolved, default_tz: Tz) -> Staged {
    let mut activity = Vec::new();
    let mut llm = Vec::new();
    let mut order = Vec::with_capacity(changes.len());
    for change in changes {
        let Change {
            source,
            identity,
            version,
            kind,
        } = change;
        match kind {
            ChangeKind::Upsert {
                fact,
                time_fallback,
            } => {
                order.push((source, identity, time_fallback));
                match fact {
                    Fact::Activity(ev) => {
                        activity.push(resolved.activity_row(identity, version, ev, default_tz))
                    }
                    Fact::Llm(req) => {
                        let account = resolved
                            .conversation_accounts
                            .get(&req.conversation_id)
                            .filter(|a| bounds::fits(a, bounds::TEXT))
                            .cloned();
                        llm.push(LlmRow {
                            id: identity,
                            version,
                            state: if account.is_some() {
                                RowState::Live
                            } else {
                                RowState::Unattributed
                            },
                            subject: account,
                            request: Some(req),
                        });
                    }
                }
            }
            ChangeKind::Retract => {
                order.push((source, identity, false));
                match source.integration() {
                    Some(integration) => activity.push(ActivityRow {
                        id: identity,
                        version,
                        state: RowState::Tombstone,
                        integration,
                        subject: None,
                        bucket: None,
                        event_at: None,
                    }),
                    None => llm.push(LlmRow {
                        id: identity,
                        version,
                        state: RowState::Tombstone,
                        subject: None,
                        request: None,
                    }),
                }
            }
        }
    }
    let rows = StagedRows {
        activity: collapse(activity, |r| (r.id, &r.version, r.state)),
        llm: collapse(llm, |r| (r.id, &r.version, r.state)),
    };
    let final_state = rows
        .activity
        .iter()
        .map(|r| (r.id, r.state))
        .chain(rows.llm.iter().map(|r| (r.id, r.state)))
        .collect();
    Staged {
        rows,
        order,
        final_state,
    }
}
