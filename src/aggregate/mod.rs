//! Ledger semantics (DESIGN §4), independent of SQL: turning resolved
//! changes into ledger rows, collapsing one batch to one row per identity,
//! and the rule that decides whether a row replaces the ledger's.
//!
//! `plan` applies `wins` to a batch and the ledger rows it read; the SQL
//! stores only write what it decides.

pub mod bucket;
pub mod exact;
pub mod llm_rollup;
pub mod plan;
#[cfg(test)]
mod plan_props;
pub mod stage;

use crate::domain::{Bucket, Identity, Integration, LlmRequest, Version};
use std::collections::HashMap;

/// State of a ledger row. The numbers are stored in SQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RowState {
    /// Counted in the aggregates.
    Live = 1,
    /// Kept but not counted: the actor has no Slack ID / account yet.
    Unattributed = 2,
    /// Removed by the application: counts nothing, blocks older versions.
    Tombstone = 3,
}

impl RowState {
    pub fn code(self) -> i64 {
        self as i64
    }

    /// The inverse of `code`, for rows read back from SQL.
    pub fn from_code(code: i64) -> Option<RowState> {
        [RowState::Live, RowState::Unattributed, RowState::Tombstone]
            .into_iter()
            .find(|s| s.code() == code)
    }
}

/// Does a staged row replace the ledger's row? Newer versions win; at the
/// same version an unattributed row may become live (re-attribution), never
/// the other way round.
pub fn wins(staged: (&Version, RowState), ledger: Option<(&Version, RowState)>) -> bool {
    match ledger {
        None => true,
        Some((lv, ls)) => {
            staged.0 > lv
                || (staged.0 == lv && ls == RowState::Unattributed && staged.1 == RowState::Live)
        }
    }
}

/// An activity ledger row: the contribution of one item to `user_event_counts`.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivityRow {
    pub id: Identity,
    pub version: Version,
    pub state: RowState,
    pub integration: Integration,
    /// Slack ID / ACS account when live; the raw actor when unattributed.
    pub subject: Option<String>,
    pub bucket: Option<Bucket>,
    /// Event time, epoch seconds (kept to re-bucket on re-attribution).
    pub event_at: Option<i64>,
}

/// An LLM ledger row: the contribution of one request to the monthly report.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmRow {
    pub id: Identity,
    pub version: Version,
    pub state: RowState,
    /// Account when live; the conversation id when unattributed.
    pub subject: Option<String>,
    pub request: Option<LlmRequest>,
}

/// Staged contributions of one batch, one row per identity.
#[derive(Debug, Default)]
pub struct StagedRows {
    pub activity: Vec<ActivityRow>,
    pub llm: Vec<LlmRow>,
}

impl StagedRows {
    pub fn is_empty(&self) -> bool {
        self.activity.is_empty() && self.llm.is_empty()
    }
}

/// Collapse rows of one batch to the one per identity that would be applied
/// last (records of one identity are applied in order, so only the winner
/// among them can matter), then sort by identity (keys touched in order).
pub fn collapse<R>(rows: Vec<R>, key: impl Fn(&R) -> (Identity, &Version, RowState)) -> Vec<R> {
    let mut best: HashMap<Identity, usize> = HashMap::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let (id, version, state) = key(row);
        match best.get(&id) {
            Some(&j) => {
                let (_, bv, bs) = key(&rows[j]);
                if wins((version, state), Some((bv, bs))) {
                    best.insert(id, i);
                }
            }
            None => {
                best.insert(id, i);
            }
        }
    }
    let mut keep: Vec<usize> = best.into_values().collect();
    keep.sort_unstable();
    let mut slots: Vec<Option<R>> = rows.into_iter().map(Some).collect();
    let mut out: Vec<R> = keep.into_iter().filter_map(|i| slots[i].take()).collect();
    out.sort_by_key(|r| key(r).0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::from_sequence_number(s).unwrap()
    }

    #[test]
    fn win_rule() {
        use RowState::*;
        assert!(wins((&v("2"), Live), None));
        assert!(wins((&v("10"), Live), Some((&v("9"), Live))));
        assert!(!wins((&v("9"), Live), Some((&v("10"), Tombstone))));
        assert!(!wins((&v("9"), Live), Some((&v("9"), Live))));
        assert!(wins((&v("9"), Live), Some((&v("9"), Unattributed))));
        assert!(!wins((&v("9"), Unattributed), Some((&v("9"), Live))));
        assert!(!wins((&Version::snapshot(), Live), Some((&v("1"), Live))));
        assert!(wins(
            (&v("1"), Tombstone),
            Some((&Version::snapshot(), Live))
        ));
    }

    #[test]
    fn collapse_keeps_last_applicable_per_identity_sorted() {
        let rows = vec![
            (Identity(5), v("1"), RowState::Live, "insert"),
            (Identity(1), v("7"), RowState::Live, "other"),
            (Identity(5), v("3"), RowState::Tombstone, "remove"),
            (Identity(5), v("2"), RowState::Live, "modify"),
            (Identity(5), v("1"), RowState::Live, "redelivered insert"),
        ];
        let out = collapse(rows, |r| (r.0, &r.1, r.2));
        let tags: Vec<_> = out.iter().map(|r| r.3).collect();
        assert_eq!(tags, vec!["other", "remove"]);
    }
}
