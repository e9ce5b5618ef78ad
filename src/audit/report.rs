//! What an audit found: `AuditReport`, serialised as `streamfold audit
//! --json` prints it (field names are a stable interface, see README).

use serde::Serialize;

/// The outcome of an audit (or of a repair).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// Cells of `user_event_counts` compared (stored or recomputed).
    pub cells_checked: u64,
    /// LLM reports compared (stored or recomputed).
    pub reports_checked: u64,
    /// Every stored value that differs from its recomputation.
    pub differences: Vec<Difference>,
    /// The differences were repaired (`--fix`) in a committed transaction.
    pub fixed: bool,
    /// Compaction runs that dropped ledger rows before the compaction bases
    /// existed: if not 0, counts they dropped show as stored > recomputed
    /// without being wrong, and `--fix` is refused.
    pub runs_before_bases: i64,
}

impl AuditReport {
    /// Nothing differs.
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
    }
}

/// One stored value that differs from the recomputed one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Difference {
    /// A cell of `user_event_counts` (a missing row counts 0).
    Cell {
        slack_id: String,
        integration: String,
        /// Day of week, 0 = Monday … 6, in the user's zone.
        dow: i64,
        hour: i64,
        stored: i64,
        recomputed: i64,
    },
    /// A field of an LLM report: of its totals (`model` and `function`
    /// null: `total_requests`, `total_tokens`, `total_cost_usd`,
    /// `response_time_ms_sum`, `quality_score_sum`, `quality_scored`), of
    /// one model's row (`requests`, `tokens`, `cost_usd`) or of one
    /// function's (`requests`). Values are exact decimal text.
    Report {
        account_id: String,
        report_period: String,
        model: Option<String>,
        function: Option<String>,
        field: String,
        stored: String,
        recomputed: String,
    },
}
