//! `run_batch`: the one path every entry point takes (replay, Lambda,
//! backfill, re-attribution). A batch is parsed record by record, normalised
//! (pure), resolved against the `Directory` once for all its keys, staged as
//! one ledger row per identity, and applied by the `Store` in one transaction
//! together with the batch's quarantined records.

use crate::aggregate::{self, ActivityRow, LlmRow, RowState, StagedRows, bucket::bucket};
use crate::bounds;
use crate::domain::{ActivityEvent, Actor, Fact, Identity, Integration, SourceKind};
use crate::normalize::{self, Change, ChangeKind, Normalized};
use crate::record::lambda_event::{RecordMeta, parse_record, read_meta};
use crate::report::publish::{PublishSummary, ReportPublisher};
use crate::resolve::{AnyDirectory, Directory, DirectoryError, ExternalAccount, pick_time_zone};
use crate::store::reports::ReportFilter;
use crate::store::{RejectedRecord, Store, StoreError};
use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tracing::Instrument;

/// A batch failed as a whole: nothing of it was applied; retry it.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Everything a batch needs, built once per process and passed explicitly.
pub struct Pipeline {
    pub store: Store,
    pub directory: AnyDirectory,
    /// Zone for users without a valid `tz` / `timezone`.
    pub default_tz: Tz,
    /// Where LLM reports are projected after each commit (`LLMReportData`);
    /// `None` keeps them in SQL only (local use).
    pub publisher: Option<ReportPublisher>,
}

/// Reports projected per batch at most; more wait for the next batch or
/// `streamfold llm-report --publish`.
const PUBLISH_PER_BATCH: u32 = 200;

/// Per-source outcome counts. Every record read ends in exactly one of
/// applied, unchanged, skipped, rejected, unattributed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub read: u64,
    pub applied: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub rejected: u64,
    pub unattributed: u64,
    /// Of the applied/unattributed: event time taken from ApproximateCreationDateTime.
    pub time_fallback: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.read += o.read;
        self.applied += o.applied;
        self.unchanged += o.unchanged;
        self.skipped += o.skipped;
        self.rejected += o.rejected;
        self.unattributed += o.unattributed;
        self.time_fallback += o.time_fallback;
    }
}

/// A quarantined record, as reported to the caller (no raw content).
#[derive(Clone, Debug)]
pub struct Rejection {
    pub index: usize,
    pub meta: RecordMeta,
    pub reason: String,
}

/// What one batch did.
#[derive(Clone, Debug, Default)]
pub struct BatchReport {
    /// Keyed by source table suffix, or `unknown`.
    pub by_source: BTreeMap<String, Counts>,
    pub rejections: Vec<Rejection>,
    pub statements: usize,
    /// Wall time spent in the store (the SQL transaction, retries included).
    pub db_time: std::time::Duration,
    /// Transaction attempts that failed transiently and were retried.
    pub retries: u64,
    /// Times a part of the batch that the store refused was split in two to
    /// isolate the records responsible (0 when the batch applied whole).
    pub splits: u64,
    /// LLM reports changed in SQL.
    pub reports_changed: u64,
    /// LLM report projections to DynamoDB after the commit.
    pub published: PublishSummary,
    /// Earliest `ApproximateCreationDateTime` among the records (for the
    /// iterator-lag metric).
    pub oldest_record: Option<chrono::DateTime<Utc>>,
}

impl BatchReport {
    pub fn total(&self) -> Counts {
        let mut t = Counts::default();
        for c in self.by_source.values() {
            t.add(c);
        }
        t
    }

    pub fn merge(&mut self, other: BatchReport) {
        for (k, v) in other.by_source {
            self.by_source.entry(k).or_default().add(&v);
        }
        self.rejections.extend(other.rejections);
        self.statements += other.statements;
        self.db_time += other.db_time;
        self.reports_changed += other.reports_changed;
        self.retries += other.retries;
        self.splits += other.splits;
        self.published.add(&other.published);
        self.oldest_record = match (self.oldest_record, other.oldest_record) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    fn counts(&mut self, source: Option<SourceKind>) -> &mut Counts {
        let key = source.map_or("unknown", SourceKind::table_suffix);
        self.by_source.entry(key.to_string()).or_default()
    }
}

/// Apply one batch of Lambda DynamoDB stream records, in one span that
/// names the batch (source, sequence range) and carries its outcome counts
/// (never item contents).
pub async fn run_batch(p: &Pipeline, records: &[&RawValue]) -> Result<BatchReport, PipelineError> {
    let first = records.first().map(|r| read_meta(r)).unwrap_or_default();
    let last = records.last().map(|r| read_meta(r)).unwrap_or_default();
    let span = tracing::info_span!(
        "batch",
        source = first.source.map_or("unknown", SourceKind::table_suffix),
        first_sequence = first.sequence_number.as_deref().unwrap_or("-"),
        last_sequence = last.sequence_number.as_deref().unwrap_or("-"),
        records = records.len(),
        applied = tracing::field::Empty,
        unchanged = tracing::field::Empty,
        skipped = tracing::field::Empty,
        rejected = tracing::field::Empty,
        unattributed = tracing::field::Empty,
    );
    let report = run_batch_inner(p, records).instrument(span.clone()).await?;
    let t = report.total();
    span.record("applied", t.applied);
    span.record("unchanged", t.unchanged);
    span.record("skipped", t.skipped);
    span.record("rejected", t.rejected);
    span.record("unattributed", t.unattributed);
    span.in_scope(|| {
        tracing::info!(
            statements = report.statements,
            db_ms = report.db_time.as_millis() as u64,
            "batch applied"
        )
    });
    Ok(report)
}

/// What normalisation left to apply of one record.
enum Pending {
    /// A change to fold (with the record's naming metadata, should the
    /// store refuse it).
    Change(Box<Change>, RecordMeta),
    /// A record to quarantine.
    Reject(RejectedRecord),
    /// Nothing to write (a skip).
    Nothing,
}

async fn run_batch_inner(
    p: &Pipeline,
    records: &[&RawValue],
) -> Result<BatchReport, PipelineError> {
    let mut report = BatchReport::default();
    let mut pending = Vec::with_capacity(records.len());
    for (index, raw) in records.iter().enumerate() {
        let parsed = parse_record(raw);
        report.counts(parsed.meta.source).read += 1;
        if let Some(at) = parsed.meta.approx_created {
            report.oldest_record = Some(report.oldest_record.map_or(at, |o| o.min(at)));
        }
        match normalize::normalize(&parsed) {
            Normalized::Change(c) => pending.push(Pending::Change(Box::new(c), parsed.meta)),
            Normalized::Skip(_) => {
                report.counts(parsed.meta.source).skipped += 1;
                pending.push(Pending::Nothing);
            }
            Normalized::Reject(reason) => {
                report.counts(parsed.meta.source).rejected += 1;
                tracing::warn!(record = %parsed.meta, %reason, "record quarantined");
                pending.push(Pending::Reject(RejectedRecord::new(
                    &parsed.meta,
                    &reason,
                    raw,
                )));
                report.rejections.push(Rejection {
                    index,
                    meta: parsed.meta,
                    reason,
                });
            }
        }
    }
    apply_isolating(p, records, &pending, 0, &mut report).await?;
    Ok(report)
}

/// Apply the records `pending[..]` (the batch's records from `offset` on)
/// in one transaction. When the store refuses them with an error that
/// blames the data (not transient, not the environment: DESIGN §5, "no
/// record can block a batch"), bisect: apply each half on its own, in
/// order, down to the single records responsible, which are quarantined
/// with the store's reason. Halves that committed before a later failure
/// are harmless to apply again: the ledger makes a retried batch a no-op.
fn apply_isolating<'a>(
    p: &'a Pipeline,
    records: &'a [&'a RawValue],
    pending: &'a [Pending],
    offset: usize,
    report: &'a mut BatchReport,
) -> futures::future::BoxFuture<'a, Result<(), PipelineError>> {
    Box::pin(async move {
        let mut changes = Vec::new();
        let mut rejects = Vec::new();
        for item in pending {
            match item {
                Pending::Change(c, _) => changes.push((**c).clone()),
                Pending::Reject(r) => rejects.push(r.clone()),
                Pending::Nothing => {}
            }
        }
        if changes.is_empty() && rejects.is_empty() {
            return Ok(());
        }
        let mut attempt = BatchReport::default();
        let err = match fold_changes(p, changes, &rejects, &mut attempt).await {
            Ok(()) => {
                report.merge(attempt);
                return Ok(());
            }
            Err(PipelineError::Store(e)) if e.blames_the_data() => e,
            Err(e) => return Err(e),
        };
        if pending.len() > 1 {
            let mid = pending.len() / 2;
            report.splits += 1;
            tracing::warn!(error = %err, records = pending.len(), "the store refused part of this batch; isolating the records responsible");
            apply_isolating(p, records, &pending[..mid], offset, report).await?;
            return apply_isolating(p, records, &pending[mid..], offset + mid, report).await;
        }
        // One record the store refuses on its own: quarantine it.
        let Pending::Change(_, meta) = &pending[0] else {
            // A quarantine row itself was refused: nothing left to isolate.
            return Err(PipelineError::Store(err));
        };
        let reason = format!("the database refused this record: {}", err.record_reason());
        tracing::warn!(record = %meta, %reason, "record quarantined");
        let reject = RejectedRecord::new(meta, &reason, records[offset]);
        fold_changes(p, Vec::new(), std::slice::from_ref(&reject), report).await?;
        report.counts(meta.source).rejected += 1;
        report.rejections.push(Rejection {
            index: offset,
            meta: meta.clone(),
            reason,
        });
        Ok(())
    })
}

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
    let mut activity = Vec::new();
    let mut llm = Vec::new();
    // Per change: (source, identity, fell back to approximate time).
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
                        activity.push(resolved.activity_row(identity, version, ev, p.default_tz))
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
                match aggregate::integration_of(source) {
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
    let staged = StagedRows {
        activity: aggregate::collapse(activity, |r| (r.id, &r.version, r.state)),
        llm: aggregate::collapse(llm, |r| (r.id, &r.version, r.state)),
    };
    let final_state: HashMap<Identity, RowState> = staged
        .activity
        .iter()
        .map(|r| (r.id, r.state))
        .chain(staged.llm.iter().map(|r| (r.id, r.state)))
        .collect();
    let started = std::time::Instant::now();
    let applied = p.store.apply(&staged, rejects).await?;
    report.db_time += started.elapsed();
    report.statements += applied.statements;
    report.reports_changed += applied.reports_changed as u64;
    report.retries += u64::from(applied.retries);
    if let Some(publisher) = &p.publisher
        && !staged.llm.is_empty()
    {
        // After the commit: what this batch changed, and anything an
        // earlier projection left pending.
        let filter = ReportFilter {
            pending_only: true,
            limit: PUBLISH_PER_BATCH,
            ..ReportFilter::default()
        };
        match publisher.publish(&p.store, &filter).await {
            Ok(s) => report.published.add(&s),
            Err(e) => {
                report.published.failed += 1;
                tracing::warn!(error = %e, "reading LLM reports to project failed; they stay pending");
            }
        }
    }
    for (source, identity, fallback) in order {
        let counts = report.counts(Some(source));
        if applied.unchanged.contains(&identity) {
            counts.unchanged += 1;
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

/// Directory answers for one batch.
#[derive(Default)]
struct Resolved {
    slack_ids: HashMap<ExternalAccount, String>,
    icarus_tz: HashMap<String, String>,
    acs_tz: HashMap<String, String>,
    conversation_accounts: HashMap<String, String>,
}

impl Resolved {
    fn activity_row(
        &self,
        id: Identity,
        version: crate::domain::Version,
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
                let (source, integration) = match r.integration {
                    Integration::Github => (SourceKind::GithubEvents, Integration::Github),
                    Integration::Dropbox => (SourceKind::DropboxFileChanges, Integration::Dropbox),
                    Integration::Email => return None,
                };
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
    let mut after: Option<Identity> = None;
    loop {
        let rows = p.store.unattributed_llm(after, page_size).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id);
        let changes: Vec<Change> = rows
            .into_iter()
            .filter_map(|r| {
                Some(Change {
                    source: SourceKind::LlmDataCollection,
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
