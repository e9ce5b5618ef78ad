//! The fold every batch ends in: resolve the changes' keys against the
//! `Directory` (one batched call per kind), stage them as ledger rows
//! (`aggregate::stage`, pure) and apply them with the batch's rejected
//! records in one store transaction, then count each change's outcome.

use super::{BatchReport, Pipeline, PipelineError};
use crate::aggregate::RowState;
use crate::aggregate::stage::{Resolved, Staged, stage};
use crate::domain::{Actor, Fact};
use crate::normalize::{Change, ChangeKind};
use crate::resolve::Directory;
use crate::store::RejectedRecord;
use std::collections::{BTreeSet, HashMap};

/// Resolve, stage and apply normalised changes (with the batch's rejects) in
/// one store transaction, counting each change's outcome into `report`.
/// `run_batch` and re-attribution both end here.
pub async fn fold_changes(
    p: &Pipeline,
    changes: Vec<Change>,
    rejects: &[RejectedRecord],
    report: &mut BatchReport,
) -> Result<(), PipelineError> {
    let resolved = resolve(p, &changes).await?;
    let Staged {
        rows: staged,
        order,
        final_state,
    } = stage(changes, &resolved, p.default_tz);
    let started = std::time::Instant::now();
    let applied = p.store.apply(&staged, rejects).await?;
    report.db_time += started.elapsed();
    report.statements += applied.statements;
    report.reports_changed += applied.reports_changed as u64;
    report.retries += u64::from(applied.retries);
    for (source, identity, fallback) in order {
        let counts = report.counts(Some(source));
        if applied.unchanged.contains(&identity) {
            counts.unchanged += 1;
            continue;
        }
        if applied.before_horizon.contains(&identity) {
            counts.skipped += 1;
            report.before_horizon += 1;
            continue;
        }
        match final_state.get(&identity) {
            Some(RowState::Unattributed) => counts.unattributed += 1,
            _ => counts.applied += 1,
        }
        if fallback {
            counts.time_fallback += 1;
        }
    }
    Ok(())
}

/// Ask the directory, once per kind of key, for everything the batch needs.
async fn resolve(p: &Pipeline, changes: &[Change]) -> Result<Resolved, PipelineError> {
    let mut external = BTreeSet::new();
    let mut acs = BTreeSet::new();
    let mut conversations = BTreeSet::new();
    for c in changes {
        match &c.kind {
            ChangeKind::Upsert {
                fact: Fact::Activity(ev),
                ..
            } => match &ev.actor {
                Actor::External { integration, id } => {
                    external.insert((*integration, id.clone()));
                }
                Actor::Acs(a) => {
                    acs.insert(a.clone());
                }
            },
            ChangeKind::Upsert {
                fact: Fact::Llm(r), ..
            } => {
                conversations.insert(r.conversation_id.clone());
            }
            ChangeKind::Retract => {}
        }
    }
    let mut out = Resolved::default();
    let external: Vec<_> = external.into_iter().collect();
    let acs: Vec<_> = acs.into_iter().collect();
    let conversations: Vec<_> = conversations.into_iter().collect();
    let (slack, acs_tz, convs) = tokio::join!(
        async {
            if external.is_empty() {
                Ok(HashMap::new())
            } else {
                p.directory.slack_ids(&external).await
            }
        },
        async {
            if acs.is_empty() {
                Ok(HashMap::new())
            } else {
                p.directory.acs_time_zones(&acs).await
            }
        },
        async {
            if conversations.is_empty() {
                Ok(HashMap::new())
            } else {
                p.directory.conversation_accounts(&conversations).await
            }
        },
    );
    out.slack_ids = slack?;
    out.acs_tz = acs_tz?;
    out.conversation_accounts = convs?;
    let slack_ids: Vec<String> = out
        .slack_ids
        .values()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !slack_ids.is_empty() {
        out.icarus_tz = p.directory.icarus_time_zones(&slack_ids).await?;
    }
    Ok(out)
}
