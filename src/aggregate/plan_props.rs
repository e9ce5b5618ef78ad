//! Property test of the batch plan against a reference model.
//!
//! The model knows nothing of batches, ledgers or plans: for each identity
//! the record that counts is the greatest one delivered (by version; at the
//! same version a live record over its unattributed twin), and the
//! aggregates are the sums of those records' contributions. The system
//! under test is the plan applied to an in-memory ledger, batch after
//! batch, with the records shuffled, duplicated and cut into random
//! batches (each collapsed as `aggregate::stage` does). Versions mix
//! snapshots, untimed sequence numbers and timed stream, Kinesis and
//! incremental-export versions; states mix live, unattributed and
//! tombstones (removals); TTL expiries are records that never reach the
//! plan.

use super::llm_rollup::{ReportKey, ReportSums};
use super::plan::{Cell, LedgerRead, plan};
use super::{ActivityRow, LlmRow, RowState, StagedRows, collapse};
use crate::domain::{
    Bucket, ChangeOrder, Identity, Integration, LlmRequest, SEQ_BYTES, TimedKind, Version,
};
use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};

/// One delivered record, before staging.
#[derive(Clone, Debug)]
enum Rec {
    Activity(ActivityRow),
    Llm(LlmRow),
    /// A TTL expiry: normalisation skips it.
    Expiry,
}

fn version(kind: u8, n: u64) -> Version {
    let mut tie = [0u8; SEQ_BYTES];
    tie[SEQ_BYTES - 8..].copy_from_slice(&n.to_be_bytes());
    match kind {
        0 => Version::snapshot(),
        1 => Version::from_sequence_number(&n.to_string()).unwrap(),
        2 => Version::timed(n / 3 * 1_000_000, TimedKind::Record, tie),
        3 => Version::incremental_export((n / 3) as i64, n),
        _ => Version::kinesis_record(n / 2 * 1000, ChangeOrder::Changed, &n.to_be_bytes()),
    }
}

/// The content of a record is a function of (identity, version), as it is
/// for real records: a removal (tombstone) is one of the versions, and a
/// live record may have an unattributed twin at its version (the actor not
/// linked yet). Snapshots are one version per identity, never removals.
fn record(id: u8, kind: u8, n: u64, twin: bool) -> Rec {
    let n = if kind == 0 { 0 } else { n };
    let v = version(kind, n);
    let row_state = if kind != 0 && n % 5 == 4 {
        RowState::Tombstone
    } else if twin {
        RowState::Unattributed
    } else {
        RowState::Live
    };
    let who = format!("U{}", (u64::from(id) + n) % 3);
    let at = 1_700_000_000 + (n as i64 % 7) * 3600;
    if id.is_multiple_of(2) {
        Rec::Activity(ActivityRow {
            id: Identity(u128::from(id)),
            version: v,
            state: row_state,
            integration: if id.is_multiple_of(4) {
                Integration::Github
            } else {
                Integration::Dropbox
            },
            subject: (row_state != RowState::Tombstone).then_some(who),
            bucket: (row_state == RowState::Live).then_some(Bucket {
                dow: (n % 7) as u8,
                hour: (n % 24) as u8,
            }),
            event_at: Some(at),
        })
    } else {
        let request = (row_state != RowState::Tombstone).then(|| LlmRequest {
            conversation_id: format!("c{id}"),
            generated_at: Utc
                .timestamp_opt(at + (n as i64 % 3) * 2_700_000, 0)
                .unwrap(),
            model: format!("m{}", n % 2),
            function: format!("f{}", n % 3),
            prompt_tokens: n as i64,
            response_tokens: 1,
            total_tokens: n as i64 + 1,
            cost_usd: Decimal::new(n as i64 * 7 + 1, 6),
            response_time_ms: 10 + n as i64,
            quality_score: (n % 2 == 0).then(|| Decimal::new(n as i64 % 10, 1)),
        });
        Rec::Llm(LlmRow {
            id: Identity(u128::from(id)),
            version: v,
            state: row_state,
            subject: match row_state {
                RowState::Live => Some(format!("acct{}", n % 2)),
                RowState::Unattributed => Some(format!("c{id}")),
                RowState::Tombstone => None,
            },
            request,
        })
    }
}

/// The reference model: the greatest record per identity, summed.
fn model(records: &[Rec]) -> (BTreeMap<Cell, i64>, BTreeMap<ReportKey, ReportSums>) {
    let rank = |v: &Version, s: RowState| (v.clone(), s == RowState::Live);
    let mut act: HashMap<Identity, &ActivityRow> = HashMap::new();
    let mut llm: HashMap<Identity, &LlmRow> = HashMap::new();
    for r in records {
        match r {
            Rec::Activity(a) => {
                let e = act.entry(a.id).or_insert(a);
                if rank(&a.version, a.state) > rank(&e.version, e.state) {
                    *e = a;
                }
            }
            Rec::Llm(l) => {
                let e = llm.entry(l.id).or_insert(l);
                if rank(&l.version, l.state) > rank(&e.version, e.state) {
                    *e = l;
                }
            }
            Rec::Expiry => {}
        }
    }
    let mut counts = BTreeMap::new();
    for a in act.values() {
        if let Some(c) = Cell::of(a) {
            *counts.entry(c).or_insert(0) += 1;
        }
    }
    let mut reports: BTreeMap<ReportKey, ReportSums> = BTreeMap::new();
    for l in llm.values() {
        if let (RowState::Live, Some(account), Some(q)) = (l.state, &l.subject, &l.request) {
            let key = ReportKey {
                account_id: account.clone(),
                period: q.report_period(),
            };
            reports.entry(key).or_default().add(q).unwrap();
        }
    }
    (counts, reports)
}

/// The system under test: an in-memory ledger written by plans.
#[derive(Default)]
struct Memory {
    activity: HashMap<Identity, ActivityRow>,
    llm: HashMap<Identity, LlmRow>,
    counts: BTreeMap<Cell, i64>,
    reports: BTreeMap<ReportKey, ReportSums>,
}

impl Memory {
    fn apply(&mut self, batch: &[Rec]) {
        let rows = StagedRows {
            activity: collapse(
                batch
                    .iter()
                    .filter_map(|r| match r {
                        Rec::Activity(a) => Some(a.clone()),
                        _ => None,
                    })
                    .collect(),
                |r| (r.id, &r.version, r.state),
            ),
            llm: collapse(
                batch
                    .iter()
                    .filter_map(|r| match r {
                        Rec::Llm(l) => Some(l.clone()),
                        _ => None,
                    })
                    .collect(),
                |r| (r.id, &r.version, r.state),
            ),
        };
        let read = LedgerRead {
            activity: rows
                .activity
                .iter()
                .filter_map(|r| self.activity.get(&r.id).map(|l| (r.id, l.clone())))
                .collect(),
            llm: rows
                .llm
                .iter()
                .filter_map(|r| self.llm.get(&r.id).map(|l| (r.id, l.clone())))
                .collect(),
        };
        let p = plan(&rows, &read, None).unwrap();
        for r in p.activity_new.iter().chain(&p.activity_replaced) {
            self.activity.insert(r.id, (*r).clone());
        }
        for r in p.llm_new.iter().chain(&p.llm_replaced) {
            self.llm.insert(r.id, (*r).clone());
        }
        for (cell, d) in p.counts {
            *self.counts.entry(cell).or_insert(0) += d;
        }
        for (key, delta) in p.reports {
            let e = self.reports.entry(key).or_default();
            *e = e.plus(&delta).unwrap();
        }
        self.counts.retain(|_, n| *n != 0);
    }
}

/// Report sums without empty breakdown entries and empty reports, for
/// comparing with the model.
fn tidy(mut r: BTreeMap<ReportKey, ReportSums>) -> BTreeMap<ReportKey, ReportSums> {
    for s in r.values_mut() {
        s.models.retain(|_, m| *m != Default::default());
        s.functions.retain(|_, n| *n != 0);
    }
    r.retain(|_, s| !s.is_zero());
    r
}

fn records() -> impl Strategy<Value = Vec<Rec>> {
    let one =
        (0u8..8, 0u8..5, 0u64..12, any::<bool>(), 0u8..10).prop_map(|(id, kind, n, twin, t)| {
            if t == 0 {
                Rec::Expiry
            } else {
                record(id, kind, n, twin)
            }
        });
    proptest::collection::vec(one, 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Any delivery order, any duplicates, any cut into batches: the plan
    /// leaves the aggregates the model computes.
    #[test]
    fn plans_fold_to_the_model(
        recs in records(),
        dup in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        order in any::<u64>(),
        cuts in proptest::collection::vec(1usize..8, 1..20),
    ) {
        let mut delivered = recs.clone();
        for d in &dup {
            delivered.push(d.get(&recs).clone());
        }
        // A deterministic shuffle from `order`.
        let mut state = order | 1;
        for i in (1..delivered.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            delivered.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut memory = Memory::default();
        let mut rest = &delivered[..];
        let mut cut = cuts.iter().cycle();
        while !rest.is_empty() {
            let n = (*cut.next().unwrap()).min(rest.len());
            memory.apply(&rest[..n]);
            rest = &rest[n..];
        }
        let (counts, reports) = model(&recs);
        prop_assert_eq!(memory.counts, counts);
        prop_assert_eq!(tidy(memory.reports), tidy(reports));
    }
}
