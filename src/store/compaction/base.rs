//! What a compaction chunk folds away: the contributions of the live
//! ledger rows it deletes, summed per aggregate key and added to the
//! compaction bases (`compacted_activity_base`, `compacted_llm_base*`) in
//! the chunk's transaction, so that every aggregate stays the sum of its
//! base and its live ledger rows (`streamfold audit` checks that).
//!
//! The chunk's rows are read under lock (`FOR UPDATE` on MySQL and
//! PostgreSQL, SQLite's write lock), summed in Rust, and deleted by id: a
//! row that a batch changes meanwhile is either locked before (the batch
//! waits) or not among the ids (kept).
//! The LLM sums are the apply path's own (`llm_rollup::report_deltas` of
//! the rows as new), so a base is exactly what those rows had added.

use super::Run;
use crate::aggregate::llm_rollup::{
    ExistingLlm, ModelUsage, ReportKey, ReportSums, RollupOverflow, report_deltas,
};
use crate::aggregate::{LlmRow, RowState};
use crate::store::StoreError;
use crate::store::dialect::Flavor;
use crate::store::exec::{Bind, Sql, fetch_all, fetch_optional};
use crate::store::upsert::{Kind, Update, adds_decimals_in_sql, upsert_sql};
use std::collections::BTreeMap;

/// The chunk's rows to drop. Parameters: (after,) end, horizon.
fn chunk_filter(f: Flavor, first: bool, unattributed: bool) -> String {
    let states = if unattributed { "1, 2" } else { "1" };
    let (lower, n) = if first {
        (String::new(), 1)
    } else {
        (format!("id > {} AND ", f.p(1)), 2)
    };
    format!(
        "{lower}id <= {} AND state IN ({states}) AND event_at IS NOT NULL AND event_at < {}",
        f.p(n),
        f.p(n + 1)
    )
}

fn lock(f: Flavor) -> &'static str {
    match f {
        Flavor::Sqlite => "",
        _ => " FOR UPDATE",
    }
}

/// The chunk's activity rows to drop, locked, in id order: `id, state,
/// subject, integration, dow, hours`.
pub(crate) fn doomed_activity_sql(f: Flavor, first: bool, unattributed: bool) -> String {
    format!(
        "SELECT id, {}, {}, {}, {}, {} FROM activity_ledger WHERE {} ORDER BY id{}",
        f.as_int("state"),
        f.as_text("subject"),
        f.as_text("integration"),
        f.as_int("dow"),
        f.as_int("hours"),
        chunk_filter(f, first, unattributed),
        lock(f)
    )
}

/// The chunk's LLM rows to drop, locked, in id order, as `rows::llm_row`
/// decodes them.
pub(crate) fn doomed_llm_sql(f: Flavor, first: bool, unattributed: bool) -> String {
    format!(
        "SELECT {} FROM llm_ledger WHERE {} ORDER BY id{}",
        crate::store::queries::llm_row_columns(f),
        chunk_filter(f, first, unattributed),
        lock(f)
    )
}

/// Ids bound per DELETE.
pub(crate) const DELETE_IDS: usize = 1000;

/// Delete `n` rows of `ledger` by id.
pub(crate) fn delete_ids_sql(f: Flavor, ledger: &str, n: usize) -> String {
    let list: Vec<String> = (1..=n).map(|i| f.p(i)).collect();
    format!("DELETE FROM {ledger} WHERE id IN ({})", list.join(", "))
}

/// Activity cells as `(slack_id, integration, dow, hours)`.
pub type CellKey = (String, String, i64, i64);

/// An activity row to drop: `state, subject, integration, dow, hours`.
pub(crate) type ActivityContribution = (i64, Option<String>, String, Option<i64>, Option<i64>);

/// Sum the live rows of `(state, subject, integration, dow, hours)` per
/// cell: what they count in `user_event_counts`.
pub(crate) fn activity_sums(
    rows: &[ActivityContribution],
) -> Result<BTreeMap<CellKey, i64>, StoreError> {
    let mut out: BTreeMap<CellKey, i64> = BTreeMap::new();
    for (state, subject, integration, dow, hours) in rows {
        if RowState::from_code(*state) != Some(RowState::Live) {
            continue;
        }
        let (Some(subject), Some(dow), Some(hours)) = (subject, dow, hours) else {
            return Err(StoreError::Corrupt {
                table: "activity_ledger",
                reason: "a live row has no Slack ID or bucket".into(),
            });
        };
        *out.entry((
            subject.clone(),
            integration.trim().to_string(),
            *dow,
            *hours,
        ))
        .or_default() += 1;
    }
    Ok(out)
}

/// Add to the activity base. Parameters: slack_id, integration, dow,
/// hours, events.
pub(crate) fn activity_base_sql(f: Flavor) -> String {
    upsert_sql(
        f,
        "compacted_activity_base",
        &CELL_KEYS,
        &[("events", Kind::Int, Update::Add)],
    )
}

pub(crate) const CELL_KEYS: [(&str, Kind); 4] = [
    ("slack_id", Kind::Text),
    ("integration", Kind::Text),
    ("dow", Kind::Int),
    ("hours", Kind::Int),
];

pub(crate) fn cell_vals(key: &CellKey, n: i64) -> Vec<Bind> {
    vec![
        Bind::Text(key.0.clone()),
        Bind::Text(key.1.clone()),
        Bind::Int(key.2),
        Bind::Int(key.3),
        Bind::Int(n),
    ]
}

/// What the live rows among `rows` add to their reports (as new rows:
/// the apply path's sums).
pub(crate) fn llm_sums(rows: &[LlmRow]) -> Result<BTreeMap<ReportKey, ReportSums>, StoreError> {
    Ok(report_deltas(rows, &ExistingLlm::new())?)
}

const REPORT_KEYS: [(&str, Kind); 2] = [("account_id", Kind::Text), ("report_period", Kind::Text)];

/// How decimal sums are written: added in SQL, or set to a sum computed
/// in Rust (SQLite).
fn decimal_update(f: Flavor) -> Update {
    if adds_decimals_in_sql(f) {
        Update::Add
    } else {
        Update::Set
    }
}

/// Upserts of the LLM base tables: totals, per model, per function.
pub(crate) fn llm_base_sql(f: Flavor) -> [String; 3] {
    let u = decimal_update(f);
    [
        upsert_sql(
            f,
            "compacted_llm_base",
            &REPORT_KEYS,
            &[
                ("requests", Kind::Int, u),
                ("tokens", Kind::Int, u),
                ("cost_usd", Kind::Decimal, u),
                ("response_time_ms_sum", Kind::Int, u),
                ("quality_score_sum", Kind::Decimal, u),
                ("quality_scored", Kind::Int, u),
            ],
        ),
        upsert_sql(
            f,
            "compacted_llm_base_models",
            &[REPORT_KEYS[0], REPORT_KEYS[1], ("model", Kind::Text)],
            &[
                ("requests", Kind::Int, u),
                ("tokens", Kind::Int, u),
                ("cost_usd", Kind::Decimal, u),
            ],
        ),
        upsert_sql(
            f,
            "compacted_llm_base_functions",
            &[
                REPORT_KEYS[0],
                REPORT_KEYS[1],
                ("function_name", Kind::Text),
            ],
            &[("requests", Kind::Int, Update::Add)],
        ),
    ]
}

/// The values of those upserts for one report: its totals row, then one
/// row per model and per function. `sums` are what to add (MySQL,
/// PostgreSQL) or the new sums (SQLite); `functions` always what to add.
pub(crate) fn llm_base_vals(
    key: &ReportKey,
    sums: &ReportSums,
    functions: &BTreeMap<String, i64>,
) -> crate::store::audit::ReportRows {
    let k = || {
        vec![
            Bind::Text(key.account_id.clone()),
            Bind::Text(key.period.clone()),
        ]
    };
    let mut totals = k();
    totals.extend([
        Bind::Int(sums.requests),
        Bind::Int(sums.tokens),
        Bind::Text(sums.cost_usd.to_string()),
        Bind::Int(sums.response_time_ms),
        Bind::Text(sums.quality_sum.to_string()),
        Bind::Int(sums.quality_scored),
    ]);
    let models = sums
        .models
        .iter()
        .map(|(m, u)| {
            let mut v = k();
            v.extend([
                Bind::Text(m.clone()),
                Bind::Int(u.requests),
                Bind::Int(u.tokens),
                Bind::Text(u.cost_usd.to_string()),
            ]);
            v
        })
        .collect();
    let functions = functions
        .iter()
        .map(|(name, n)| {
            let mut v = k();
            v.extend([Bind::Text(name.clone()), Bind::Int(*n)]);
            v
        })
        .collect();
    (totals, models, functions)
}

/// SQLite: one report's base as stored (totals, then models), to add a
/// chunk's sums to in Rust. Parameters: account, period.
pub(crate) fn sqlite_llm_base_reads() -> [&'static str; 2] {
    [
        "SELECT requests, tokens, cost_usd, response_time_ms_sum, quality_score_sum, quality_scored
           FROM compacted_llm_base WHERE account_id = ? AND report_period = ?",
        "SELECT model, requests, tokens, cost_usd
           FROM compacted_llm_base_models WHERE account_id = ? AND report_period = ?",
    ]
}

/// A decimal read back from a base.
pub(crate) fn base_decimal(text: &str) -> Result<rust_decimal::Decimal, StoreError> {
    use std::str::FromStr;
    rust_decimal::Decimal::from_str(text.trim())
        .map(|d| d.normalize())
        .map_err(|_| StoreError::Corrupt {
            table: "compacted_llm_base",
            reason: "a sum is not a decimal".into(),
        })
}

/// The parameters of the chunk's read: (after,) end, horizon.
fn chunk_binds(after: Option<&Vec<u8>>, end: &[u8], run: &Run) -> Vec<Bind> {
    let mut binds: Vec<Bind> = after.cloned().map(Bind::from).into_iter().collect();
    binds.push(end.to_vec().into());
    binds.push(run.horizon.into());
    binds
}

/// Inside a chunk's transaction: read the activity rows to drop (locked),
/// add the live ones' counts to `compacted_activity_base`; returns their
/// ids.
pub(crate) async fn drop_activity_chunk<S: Sql + ?Sized>(
    tx: &mut S,
    f: Flavor,
    after: Option<&Vec<u8>>,
    end: &[u8],
    run: &Run,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let sql = doomed_activity_sql(f, after.is_none(), run.include_unattributed);
    let mut ids = Vec::new();
    let mut contributions = Vec::new();
    tx.each(&sql, &chunk_binds(after, end, run), &mut |r| {
        ids.push(r.bytes(0)?);
        contributions.push((
            r.int(1)?,
            r.opt_text(2)?,
            r.text(3)?,
            r.opt_int(4)?,
            r.opt_int(5)?,
        ));
        Ok(())
    })
    .await?;
    let upsert = activity_base_sql(f);
    for (key, n) in activity_sums(&contributions)? {
        tx.run(&upsert, &cell_vals(&key, n)).await?;
    }
    Ok(ids)
}

/// Inside a chunk's transaction: read the LLM rows to drop (locked), add
/// the live ones' sums to the LLM compaction bases; returns their ids.
pub(crate) async fn drop_llm_chunk<S: Sql + ?Sized>(
    tx: &mut S,
    f: Flavor,
    after: Option<&Vec<u8>>,
    end: &[u8],
    run: &Run,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let sql = doomed_llm_sql(f, after.is_none(), run.include_unattributed);
    let rows = fetch_all(tx, &sql, &chunk_binds(after, end, run), |r| {
        crate::store::rows::llm_row(r)
    })
    .await?;
    let ids: Vec<Vec<u8>> = rows.iter().map(|r| r.id.to_bytes().to_vec()).collect();
    let upserts = llm_base_sql(f);
    for (key, added) in llm_sums(&rows)? {
        let sums = if adds_decimals_in_sql(f) {
            added.clone()
        } else {
            sqlite_base_plus(tx, &key, &added).await?
        };
        let (totals, models, functions) = llm_base_vals(&key, &sums, &added.functions);
        tx.run(&upserts[0], &totals).await?;
        for v in models {
            tx.run(&upserts[1], &v).await?;
        }
        for v in functions {
            tx.run(&upserts[2], &v).await?;
        }
    }
    Ok(ids)
}

/// SQLite: a report's stored base plus a chunk's sums, added in Rust; only
/// the models the chunk moved are kept (only those are written).
async fn sqlite_base_plus<S: Sql + ?Sized>(
    tx: &mut S,
    key: &ReportKey,
    added: &ReportSums,
) -> Result<ReportSums, StoreError> {
    let [totals_sql, models_sql] = sqlite_llm_base_reads();
    let binds = [Bind::from(&key.account_id), (&key.period).into()];
    let totals = fetch_optional(tx, totals_sql, &binds, |r| {
        Ok((
            r.int(0)?,
            r.int(1)?,
            r.text(2)?,
            r.int(3)?,
            r.text(4)?,
            r.int(5)?,
        ))
    })
    .await?;
    let models = fetch_all(tx, models_sql, &binds, |r| {
        Ok((r.text(0)?, r.int(1)?, r.int(2)?, r.text(3)?))
    })
    .await?;
    let mut stored = ReportSums::default();
    if let Some((requests, tokens, cost, rt, quality, scored)) = totals {
        stored.requests = requests;
        stored.tokens = tokens;
        stored.cost_usd = base_decimal(&cost)?;
        stored.response_time_ms = rt;
        stored.quality_sum = base_decimal(&quality)?;
        stored.quality_scored = scored;
    }
    for (model, requests, tokens, cost) in models {
        stored.models.insert(
            model,
            ModelUsage {
                requests,
                tokens,
                cost_usd: base_decimal(&cost)?,
            },
        );
    }
    let mut sums = stored.plus(added).map_err(|what| RollupOverflow {
        report: key.report_id(),
        what,
    })?;
    sums.models.retain(|m, _| added.models.contains_key(m));
    Ok(sums)
}
