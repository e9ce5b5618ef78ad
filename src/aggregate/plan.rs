//! The batch plan (pure): from a batch's staged rows and the ledger rows of
//! its identities (read under lock), everything a store must write.
//!
//! This is the one place that decides which staged rows win (`wins`), how
//! `user_event_counts` and the LLM reports move, and which rows the
//! compaction horizon keeps out. A store only reads the ledger rows, hands
//! them here and writes the `Plan` it gets back; there is no copy of these
//! rules in SQL.
//!
//! * A staged row with no ledger row is **new** (inserted), unless it is
//!   live or unattributed, its event is older than the compaction horizon,
//!   and so its ledger row may have been compacted away after it was
//!   counted: it is then left out (`before_horizon`).
//! * A staged row that wins against its ledger row **replaces** it.
//! * Any other staged row is **unchanged** (a duplicate or a stale
//!   version).
//! * `user_event_counts` moves by −1 at the replaced row's cell when that
//!   row was live, +1 at the staged row's cell when it is live; the moves
//!   are summed per cell and zero sums dropped.
//! * LLM reports move by (new − old) contribution of each winning row
//!   (`llm_rollup::report_deltas`), exactly.

use super::llm_rollup::{ExistingLlm, ReportKey, ReportSums, RollupOverflow, report_deltas};
use super::{ActivityRow, LlmRow, RowState, StagedRows, wins};
use crate::domain::{Identity, Integration};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The ledger rows of a batch's identities, as read under lock.
#[derive(Debug, Default)]
pub struct LedgerRead {
    pub activity: HashMap<Identity, ActivityRow>,
    pub llm: HashMap<Identity, LlmRow>,
}

/// One cell of `user_event_counts`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cell {
    pub slack_id: String,
    pub integration: Integration,
    pub dow: u8,
    pub hour: u8,
}

impl Cell {
    /// The cell a live activity row counts in (`None`: the row counts
    /// nothing, or lacks a subject or bucket).
    pub fn of(row: &ActivityRow) -> Option<Cell> {
        match (row.state, &row.subject, row.bucket) {
            (RowState::Live, Some(subject), Some(b)) => Some(Cell {
                slack_id: subject.clone(),
                integration: row.integration,
                dow: b.dow,
                hour: b.hour,
            }),
            _ => None,
        }
    }
}

/// Everything one batch writes, in identity (or key) order.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    /// Activity rows of identities the ledger does not hold yet.
    pub activity_new: Vec<&'a ActivityRow>,
    /// Activity rows that replace the ledger's row of their identity.
    pub activity_replaced: Vec<&'a ActivityRow>,
    /// `user_event_counts` moves, summed per cell, none zero.
    pub counts: Vec<(Cell, i64)>,
    pub llm_new: Vec<&'a LlmRow>,
    pub llm_replaced: Vec<&'a LlmRow>,
    /// LLM report moves, none zero.
    pub reports: BTreeMap<ReportKey, ReportSums>,
    /// Staged identities that lost to their ledger row.
    pub unchanged: HashSet<Identity>,
    /// Staged identities left out by the compaction horizon.
    pub before_horizon: HashSet<Identity>,
}

impl Plan<'_> {
    /// Does the plan write nothing to the ledgers and aggregates?
    pub fn writes_nothing(&self) -> bool {
        self.activity_new.is_empty()
            && self.activity_replaced.is_empty()
            && self.llm_new.is_empty()
            && self.llm_replaced.is_empty()
            && self.counts.is_empty()
            && self.reports.is_empty()
    }
}

/// A staged row with an identity: both ledgers' rows.
trait Staged {
    fn id(&self) -> Identity;
}

impl Staged for ActivityRow {
    fn id(&self) -> Identity {
        self.id
    }
}

impl Staged for LlmRow {
    fn id(&self) -> Identity {
        self.id
    }
}

impl<'a> Plan<'a> {
    /// Put `row` where its fate says (`new` / `replaced`: the ledger's
    /// lists); `false` when it writes nothing.
    fn place<R: Staged>(
        &mut self,
        row: &'a R,
        fate: Fate,
        new: impl FnOnce(&mut Self) -> &mut Vec<&'a R>,
        replaced: impl FnOnce(&mut Self) -> &mut Vec<&'a R>,
    ) -> bool {
        match fate {
            Fate::BeforeHorizon => {
                self.before_horizon.insert(row.id());
                false
            }
            Fate::Unchanged => {
                self.unchanged.insert(row.id());
                false
            }
            Fate::New => {
                new(self).push(row);
                true
            }
            Fate::Replaces => {
                replaced(self).push(row);
                true
            }
        }
    }
}

/// Is a staged row with no ledger row kept out by the horizon (epoch
/// seconds)? Tombstones only ever protect, so they are always written.
pub fn before_horizon(state: RowState, event_at: Option<i64>, horizon: Option<i64>) -> bool {
    match horizon {
        None => false,
        Some(h) => state != RowState::Tombstone && event_at.is_none_or(|t| t < h),
    }
}

/// Where a staged row goes.
enum Fate {
    New,
    Replaces,
    Unchanged,
    BeforeHorizon,
}

fn fate(
    staged: (&crate::domain::Version, RowState),
    event_at: Option<i64>,
    ledger: Option<(&crate::domain::Version, RowState)>,
    horizon: Option<i64>,
) -> Fate {
    match ledger {
        None if before_horizon(staged.1, event_at, horizon) => Fate::BeforeHorizon,
        None => Fate::New,
        Some(l) if wins(staged, Some(l)) => Fate::Replaces,
        Some(_) => Fate::Unchanged,
    }
}

/// The plan of one batch. `rows` holds one row per identity
/// (`aggregate::collapse`); `read` the ledger rows of those identities;
/// `horizon` the compaction horizon, if any.
pub fn plan<'a>(
    rows: &'a StagedRows,
    read: &LedgerRead,
    horizon: Option<i64>,
) -> Result<Plan<'a>, RollupOverflow> {
    let mut plan = Plan::default();
    let mut counts: HashMap<Cell, i64> = HashMap::new();
    for row in &rows.activity {
        let old = read.activity.get(&row.id);
        let fate = fate(
            (&row.version, row.state),
            row.event_at,
            old.map(|o| (&o.version, o.state)),
            horizon,
        );
        if !plan.place(
            row,
            fate,
            |p| &mut p.activity_new,
            |p| &mut p.activity_replaced,
        ) {
            continue;
        }
        if let Some(cell) = old.and_then(Cell::of) {
            *counts.entry(cell).or_default() -= 1;
        }
        if let Some(cell) = Cell::of(row) {
            *counts.entry(cell).or_default() += 1;
        }
    }
    plan.counts = counts.into_iter().filter(|(_, d)| *d != 0).collect();
    plan.counts.sort_unstable_by(|a, b| a.0.cmp(&b.0));

    let mut winners: Vec<LlmRow> = Vec::new();
    let mut existing = ExistingLlm::new();
    for row in &rows.llm {
        let old = read.llm.get(&row.id);
        let fate = fate(
            (&row.version, row.state),
            row.request.as_ref().map(|q| q.generated_at.timestamp()),
            old.map(|o| (&o.version, o.state)),
            horizon,
        );
        if !plan.place(row, fate, |p| &mut p.llm_new, |p| &mut p.llm_replaced) {
            continue;
        }
        winners.push(row.clone());
        if let Some(o) = old {
            existing.insert(
                o.id,
                (
                    o.version.clone(),
                    o.state,
                    o.subject.clone().zip(o.request.clone()),
                ),
            );
        }
    }
    if !winners.is_empty() {
        plan.reports = report_deltas(&winners, &existing)?;
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Bucket, Version};

    fn v(s: &str) -> Version {
        Version::from_sequence_number(s).unwrap()
    }

    fn act(id: u128, seq: &str, state: RowState, who: &str, hour: u8, at: i64) -> ActivityRow {
        ActivityRow {
            id: Identity(id),
            version: v(seq),
            state,
            integration: Integration::Github,
            subject: Some(who.into()),
            bucket: (state == RowState::Live).then_some(Bucket { dow: 1, hour }),
            event_at: Some(at),
        }
    }

    #[test]
    fn a_move_between_cells_and_a_duplicate() {
        let rows = StagedRows {
            activity: vec![
                act(1, "5", RowState::Live, "U1", 9, 100),
                act(2, "3", RowState::Live, "U1", 9, 100),
                act(3, "1", RowState::Tombstone, "U2", 0, 100),
            ],
            llm: vec![],
        };
        let mut read = LedgerRead::default();
        read.activity
            .insert(Identity(1), act(1, "4", RowState::Live, "U1", 8, 100));
        read.activity
            .insert(Identity(2), act(2, "3", RowState::Live, "U1", 9, 100));
        let p = plan(&rows, &read, None).unwrap();
        assert_eq!(p.activity_replaced.len(), 1);
        assert_eq!(p.activity_new.len(), 1, "the tombstone is new");
        assert_eq!(p.unchanged, HashSet::from([Identity(2)]));
        let moves: Vec<(u8, i64)> = p.counts.iter().map(|(c, d)| (c.hour, *d)).collect();
        assert_eq!(moves, vec![(8, -1), (9, 1)]);
    }

    #[test]
    fn the_horizon_keeps_out_old_rows_without_ledger_rows_only() {
        let rows = StagedRows {
            activity: vec![
                act(1, "5", RowState::Live, "U1", 9, 100),
                act(2, "5", RowState::Live, "U1", 9, 100),
                act(3, "5", RowState::Tombstone, "U1", 9, 100),
                act(4, "5", RowState::Live, "U1", 9, 5000),
            ],
            llm: vec![],
        };
        let mut read = LedgerRead::default();
        read.activity
            .insert(Identity(2), act(2, "4", RowState::Live, "U1", 9, 100));
        let p = plan(&rows, &read, Some(1000)).unwrap();
        assert_eq!(p.before_horizon, HashSet::from([Identity(1)]));
        assert_eq!(p.activity_replaced.len(), 1);
        assert_eq!(p.activity_new.len(), 2);
        // Row 2 moved within its cell (nothing); row 4 is new and live.
        assert_eq!(p.counts.iter().map(|(_, d)| *d).sum::<i64>(), 1);
        let none = plan(&rows, &read, None).unwrap();
        assert!(none.before_horizon.is_empty());
        assert_eq!(none.activity_new.len(), 3);
    }
}
