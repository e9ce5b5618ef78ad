//! Every store operation as one object-safe trait (`StoreOps`), implemented
//! once for every `Engine` by calling the shared generic functions: what
//! `Store` dispatches to, through `Backend::ops`.

use super::audit::{self, AuditSink, Fixes};
use super::checkpoints::{self, Checkpoint};
use super::compaction::{self, CompactOptions, CompactReport};
use super::exec::Engine;
use super::reports::{self, ReportFilter};
use super::{ApplyResult, RejectListing, RejectedRecord, StoreError, Totals, queries};
use crate::aggregate::llm_rollup::{Report, ReportKey};
use crate::aggregate::{ActivityRow, LlmRow, StagedRows};
use crate::domain::Identity;
use async_trait::async_trait;

/// What `Store` asks of its engine (the methods of `Store` of the same
/// names say what each does).
#[async_trait]
pub(crate) trait StoreOps: Send + Sync {
    async fn migrate(&self) -> Result<Vec<i64>, StoreError>;
    async fn pending_migrations(&self) -> Result<usize, StoreError>;
    async fn apply_once(
        &self,
        rows: &StagedRows,
        rejects: &[RejectedRecord],
        horizon: Option<i64>,
    ) -> Result<ApplyResult, StoreError>;
    async fn close(&self);
    async fn compaction_horizon(&self) -> Result<Option<i64>, StoreError>;
    async fn compact(&self, opts: &CompactOptions) -> Result<CompactReport, StoreError>;
    async fn heatmap(
        &self,
        slack_id: &str,
        integration: Option<&str>,
    ) -> Result<Vec<(u8, u8, i64)>, StoreError>;
    async fn event_span(
        &self,
        slack_id: &str,
        integration: Option<&str>,
    ) -> Result<Option<(i64, i64)>, StoreError>;
    async fn unattributed_activity(
        &self,
        after: Option<Identity>,
        limit: u32,
    ) -> Result<Vec<ActivityRow>, StoreError>;
    async fn unattributed_llm(
        &self,
        after: Option<Identity>,
        limit: u32,
    ) -> Result<Vec<LlmRow>, StoreError>;
    async fn reports(&self, filter: &ReportFilter) -> Result<Vec<Report>, StoreError>;
    async fn mark_published(&self, key: &ReportKey, revision: i64) -> Result<(), StoreError>;
    async fn checkpoints(&self, job: &str) -> Result<Vec<Checkpoint>, StoreError>;
    async fn save_checkpoint(&self, job: &str, c: &Checkpoint) -> Result<(), StoreError>;
    async fn unfinished_backfills(&self) -> Result<Vec<(String, String)>, StoreError>;
    async fn clear_checkpoints(&self, job: &str) -> Result<(), StoreError>;
    async fn rejected_raw(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(RejectListing, String)>, StoreError>;
    async fn delete_rejects(&self, ids: &[i64]) -> Result<(), StoreError>;
    async fn rejects(&self, limit: u32) -> Result<Vec<RejectListing>, StoreError>;
    async fn top_users(&self, limit: u32) -> Result<Vec<(String, i64)>, StoreError>;
    async fn totals(&self) -> Result<Totals, StoreError>;
    async fn audit(&self, sink: &mut (dyn AuditSink + Send)) -> Result<(), StoreError>;
    async fn audit_sizes(&self) -> Result<(i64, i64), StoreError>;
    async fn runs_before_bases(&self) -> Result<i64, StoreError>;
    async fn audit_fix(&self, sink: &mut (dyn AuditSink + Send)) -> Result<Fixes, StoreError>;
}

#[async_trait]
impl<E: Engine> StoreOps for E {
    async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        Engine::migrate(self).await
    }

    async fn pending_migrations(&self) -> Result<usize, StoreError> {
        Engine::pending_migrations(self).await
    }

    async fn apply_once(
        &self,
        rows: &StagedRows,
        rejects: &[RejectedRecord],
        horizon: Option<i64>,
    ) -> Result<ApplyResult, StoreError> {
        Engine::apply_once(self, rows, rejects, horizon).await
    }

    async fn close(&self) {
        Engine::close(self).await
    }

    async fn compaction_horizon(&self) -> Result<Option<i64>, StoreError> {
        compaction::run::horizon(self).await
    }

    async fn compact(&self, opts: &CompactOptions) -> Result<CompactReport, StoreError> {
        compaction::run::compact(self, opts).await
    }

    async fn heatmap(
        &self,
        slack_id: &str,
        integration: Option<&str>,
    ) -> Result<Vec<(u8, u8, i64)>, StoreError> {
        queries::heatmap_cells(self, slack_id, integration).await
    }

    async fn event_span(
        &self,
        slack_id: &str,
        integration: Option<&str>,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        queries::subject_span(self, slack_id, integration).await
    }

    async fn unattributed_activity(
        &self,
        after: Option<Identity>,
        limit: u32,
    ) -> Result<Vec<ActivityRow>, StoreError> {
        queries::unattributed_activity_rows(self, after, limit).await
    }

    async fn unattributed_llm(
        &self,
        after: Option<Identity>,
        limit: u32,
    ) -> Result<Vec<LlmRow>, StoreError> {
        queries::unattributed_llm_rows(self, after, limit).await
    }

    async fn reports(&self, filter: &ReportFilter) -> Result<Vec<Report>, StoreError> {
        reports::read_reports(self, filter).await
    }

    async fn mark_published(&self, key: &ReportKey, revision: i64) -> Result<(), StoreError> {
        reports::set_published(self, key, revision).await
    }

    async fn checkpoints(&self, job: &str) -> Result<Vec<Checkpoint>, StoreError> {
        checkpoints::checkpoints(self, job).await
    }

    async fn save_checkpoint(&self, job: &str, c: &Checkpoint) -> Result<(), StoreError> {
        checkpoints::save_checkpoint(self, job, c).await
    }

    async fn unfinished_backfills(&self) -> Result<Vec<(String, String)>, StoreError> {
        checkpoints::unfinished_backfills(self).await
    }

    async fn clear_checkpoints(&self, job: &str) -> Result<(), StoreError> {
        checkpoints::clear_checkpoints(self, job).await
    }

    async fn rejected_raw(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(RejectListing, String)>, StoreError> {
        queries::rejected_with_raw(self, after, limit).await
    }

    async fn delete_rejects(&self, ids: &[i64]) -> Result<(), StoreError> {
        queries::delete_rejects(self, ids).await
    }

    async fn rejects(&self, limit: u32) -> Result<Vec<RejectListing>, StoreError> {
        queries::reject_listings(self, limit).await
    }

    async fn top_users(&self, limit: u32) -> Result<Vec<(String, i64)>, StoreError> {
        queries::top_subjects(self, limit).await
    }

    async fn totals(&self) -> Result<Totals, StoreError> {
        queries::read_totals(self).await
    }

    async fn audit(&self, sink: &mut (dyn AuditSink + Send)) -> Result<(), StoreError> {
        audit::audit(self, sink).await
    }

    async fn audit_sizes(&self) -> Result<(i64, i64), StoreError> {
        audit::sizes(self).await
    }

    async fn runs_before_bases(&self) -> Result<i64, StoreError> {
        audit::runs_before_bases(self).await
    }

    async fn audit_fix(&self, sink: &mut (dyn AuditSink + Send)) -> Result<Fixes, StoreError> {
        audit::audit_fix(self, sink).await
    }
}
