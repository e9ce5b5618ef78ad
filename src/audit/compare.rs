//! The comparison, fed by the store's streams (`store::audit::AuditSink`):
//! cells arrive with both sides summed; report parts arrive grouped by
//! report and are folded with `llm_rollup`'s exact sums, one report held at
//! a time.

use super::Progress;
use super::report::{AuditReport, Difference};
use crate::aggregate::llm_rollup::{ReportKey, ReportSums, RollupOverflow};
use crate::store::StoreError;
use crate::store::audit::{
    AuditSink, CellAudit, Fixes, ReportFix, ReportPart, Side, without_empty,
};

/// Rows between two progress updates.
const PROGRESS_EVERY: u64 = 4096;

/// Compares what the store streams; collects differences and repairs.
pub struct Comparer<'p> {
    progress: &'p dyn Progress,
    unreported: u64,
    report: AuditReport,
    fixes: Fixes,
    /// The report being folded: stored and recomputed sums.
    current: Option<(ReportKey, ReportSums, ReportSums)>,
}

impl<'p> Comparer<'p> {
    pub fn new(progress: &'p dyn Progress) -> Comparer<'p> {
        Comparer {
            progress,
            unreported: 0,
            report: AuditReport::default(),
            fixes: Fixes::default(),
            current: None,
        }
    }

    /// The report of what was compared.
    pub fn into_report(self, fixed: bool) -> AuditReport {
        AuditReport {
            fixed: fixed && !self.report.differences.is_empty(),
            ..self.report
        }
    }

    fn tick(&mut self) {
        self.unreported += 1;
        if self.unreported >= PROGRESS_EVERY {
            self.progress.advance(self.unreported);
            self.unreported = 0;
        }
    }

    /// Compare the report folded so far.
    fn close_report(&mut self) {
        let Some((key, stored, recomputed)) = self.current.take() else {
            return;
        };
        self.report.reports_checked += 1;
        let (s, r) = (without_empty(stored), without_empty(recomputed));
        if s == r {
            return;
        }
        let mut field = |model: Option<&String>,
                         function: Option<&String>,
                         name: &str,
                         a: String,
                         b: String| {
            if a != b {
                self.report.differences.push(Difference::Report {
                    account_id: key.account_id.clone(),
                    report_period: key.period.clone(),
                    model: model.cloned(),
                    function: function.cloned(),
                    field: name.to_string(),
                    stored: a,
                    recomputed: b,
                });
            }
        };
        let text = |d: rust_decimal::Decimal| d.normalize().to_string();
        field(
            None,
            None,
            "total_requests",
            s.requests.to_string(),
            r.requests.to_string(),
        );
        field(
            None,
            None,
            "total_tokens",
            s.tokens.to_string(),
            r.tokens.to_string(),
        );
        field(
            None,
            None,
            "total_cost_usd",
            text(s.cost_usd),
            text(r.cost_usd),
        );
        field(
            None,
            None,
            "response_time_ms_sum",
            s.response_time_ms.to_string(),
            r.response_time_ms.to_string(),
        );
        field(
            None,
            None,
            "quality_score_sum",
            text(s.quality_sum),
            text(r.quality_sum),
        );
        field(
            None,
            None,
            "quality_scored",
            s.quality_scored.to_string(),
            r.quality_scored.to_string(),
        );
        let models: std::collections::BTreeSet<&String> =
            s.models.keys().chain(r.models.keys()).collect();
        for m in models {
            let a = s.models.get(m).cloned().unwrap_or_default();
            let b = r.models.get(m).cloned().unwrap_or_default();
            field(
                Some(m),
                None,
                "requests",
                a.requests.to_string(),
                b.requests.to_string(),
            );
            field(
                Some(m),
                None,
                "tokens",
                a.tokens.to_string(),
                b.tokens.to_string(),
            );
            field(
                Some(m),
                None,
                "cost_usd",
                text(a.cost_usd),
                text(b.cost_usd),
            );
        }
        let functions: std::collections::BTreeSet<&String> =
            s.functions.keys().chain(r.functions.keys()).collect();
        for f in functions {
            let a = s.functions.get(f).copied().unwrap_or_default();
            let b = r.functions.get(f).copied().unwrap_or_default();
            field(None, Some(f), "requests", a.to_string(), b.to_string());
        }
        self.fixes.reports.push(ReportFix {
            key,
            stored: s,
            recomputed: r,
        });
    }
}

impl AuditSink for Comparer<'_> {
    fn cell(&mut self, c: CellAudit) -> Result<(), StoreError> {
        self.tick();
        self.report.cells_checked += 1;
        if c.stored != c.recomputed {
            self.report.differences.push(Difference::Cell {
                slack_id: c.slack_id.clone(),
                integration: c.integration.clone(),
                dow: c.dow,
                hour: c.hours,
                stored: c.stored,
                recomputed: c.recomputed,
            });
            self.fixes.cells.push(c);
        }
        Ok(())
    }

    fn report_part(&mut self, part: ReportPart) -> Result<(), StoreError> {
        self.tick();
        if self
            .current
            .as_ref()
            .is_some_and(|(k, _, _)| *k != part.key)
        {
            self.close_report();
        }
        let (key, stored, recomputed) = self.current.get_or_insert_with(|| {
            (
                part.key.clone(),
                ReportSums::default(),
                ReportSums::default(),
            )
        });
        let side = match part.side {
            Side::Stored => stored,
            Side::Recomputed => recomputed,
        };
        *side = side.plus(&part.sums).map_err(|what| RollupOverflow {
            report: key.report_id(),
            what,
        })?;
        Ok(())
    }

    fn end(&mut self) -> Result<(), StoreError> {
        self.close_report();
        self.progress.advance(self.unreported);
        self.unreported = 0;
        Ok(())
    }

    fn take_fixes(&mut self) -> Fixes {
        std::mem::take(&mut self.fixes)
    }
}
