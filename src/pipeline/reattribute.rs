//! `streamfold reattribute`: unattributed ledger rows resolved again, and
//! those now linked counted once, through `fold_changes` like every batch.

use super::{BatchReport, Pipeline, PipelineError, fold_changes};
use crate::domain::{ActivityEvent, Actor, Fact, Identity, Integration, SourceKind};
use crate::normalize::{Change, ChangeKind};
use chrono::{TimeZone, Utc};

/// Resolve unattributed ledger rows again and count those now linked, once.
/// Goes through `fold_changes`, the same path as every batch.
pub async fn reattribute(p: &Pipeline, page_size: u32) -> Result<BatchReport, PipelineError> {
    let mut report = BatchReport::default();
    let mut after: Option<Identity> = None;
    loop {
        let rows = p.store.unattributed_activity(after, page_size).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id);
        let changes: Vec<Change> = rows
            .into_iter()
            .filter_map(|r| {
                let integration = r.integration;
                // An e-mail account is itself the count's key: never
                // unattributed, nothing to resolve again.
                if integration == Integration::Email {
                    return None;
                }
                // The registered table counted under this integration (the
                // row keeps its identity; the source names its counts).
                let source = SourceKind::all().find(|k| k.integration() == Some(integration))?;
                let at = Utc.timestamp_opt(r.event_at?, 0).single()?;
                Some(Change {
                    source,
                    identity: r.id,
                    version: r.version,
                    kind: ChangeKind::Upsert {
                        fact: Fact::Activity(ActivityEvent {
                            integration,
                            actor: Actor::External {
                                integration,
                                id: r.subject?,
                            },
                            at,
                        }),
                        time_fallback: false,
                    },
                })
            })
            .collect();
        for c in &changes {
            report.counts(Some(c.source)).read += 1;
        }
        fold_changes(p, changes, &[], &mut report).await?;
    }
    // The registered table of LLM requests (no heatmap integration).
    let Some(llm_source) = SourceKind::all().find(|k| k.integration().is_none()) else {
        return Ok(report);
    };
    let mut after: Option<Identity> = None;
    loop {
        let rows = p.store.unattributed_llm(after, page_size).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id);
        let changes: Vec<Change> = rows
            .into_iter()
            .filter_map(|r| {
                Some(Change {
                    source: llm_source,
                    identity: r.id,
                    version: r.version,
                    kind: ChangeKind::Upsert {
                        fact: Fact::Llm(r.request?),
                        time_fallback: false,
                    },
                })
            })
            .collect();
        for c in &changes {
            report.counts(Some(c.source)).read += 1;
        }
        fold_changes(p, changes, &[], &mut report).await?;
    }
    Ok(report)
}
