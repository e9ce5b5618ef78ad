//! The audit's statements (`crate::audit`, `streamfold audit`): the
//! aggregates recomputed from the ledgers and the compaction bases, beside
//! what is stored, each in ONE statement (one consistent snapshot on every
//! engine, whatever batches commit meanwhile), streamed in key order; and
//! the repair of what differs, in one transaction.
//!
//! * Activity: `user_event_counts`, the live ledger rows counted per cell
//!   and `compacted_activity_base`, grouped per cell by the database.
//! * LLM reports: the rows of the report tables, of the bases and the live
//!   ledger requests, ordered by report; the caller folds each report in
//!   Rust with `llm_rollup`'s exact sums (SQLite has no exact decimal type).
//!
//! Each stream is one statement whose rows are handed on as they arrive
//! (`exec::Sql::each`), never collected. A repair moves each differing cell or report by (recomputed − stored)
//! as read inside its transaction: MySQL and PostgreSQL add the change in
//! SQL, so a batch committing meanwhile (which moves ledger and aggregate
//! alike) keeps its effect; SQLite, under its single write lock, sets the
//! recomputed sums. A repaired report gets a new revision and is pending
//! projection again.

use super::StoreError;
use super::compaction::base::{CELL_KEYS, CellKey, cell_vals, llm_base_vals};
use super::dialect::Flavor;
use super::exec::{Bind, Cells, Engine, Sql, fetch_one};
use super::upsert::{Kind, Update, adds_decimals_in_sql, upsert_sql};
use crate::aggregate::llm_rollup::{ModelUsage, ReportKey, ReportSums, RollupOverflow};
use crate::domain::LlmRequest;
use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use std::str::FromStr;

/// One activity cell: stored and recomputed counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellAudit {
    pub slack_id: String,
    pub integration: String,
    pub dow: i64,
    pub hours: i64,
    pub stored: i64,
    pub recomputed: i64,
}

/// Which side of the comparison a report row counts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The report tables.
    Stored,
    /// The compaction bases and live ledger requests.
    Recomputed,
}

/// One row of the report stream: part of a report's sums, on one side.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportPart {
    pub key: ReportKey,
    pub side: Side,
    pub sums: ReportSums,
}

/// What reads the audit's streams (`crate::audit`).
pub trait AuditSink: Send {
    /// Every cell stored or recomputed, in key order.
    fn cell(&mut self, cell: CellAudit) -> Result<(), StoreError>;
    /// Every part of every report, the parts of a report together.
    fn report_part(&mut self, part: ReportPart) -> Result<(), StoreError>;
    /// The report stream has ended.
    fn end(&mut self) -> Result<(), StoreError>;
    /// What differs, to repair (taken once the streams have ended).
    fn take_fixes(&mut self) -> Fixes;
}

/// A report whose stored sums differ from the recomputed ones.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportFix {
    pub key: ReportKey,
    pub stored: ReportSums,
    pub recomputed: ReportSums,
}

/// What a repair writes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fixes {
    pub cells: Vec<CellAudit>,
    pub reports: Vec<ReportFix>,
}

/// Every cell with its stored and recomputed counts, in key order:
/// `slack_id, integration, dow, hours, stored, recomputed`.
pub fn cells_sql(f: Flavor) -> String {
    format!(
        "SELECT {}, {}, {}, {}, {}, {} FROM (
            SELECT slack_id, integration, dow, hours, event_count AS stored, 0 AS recomputed
              FROM user_event_counts
            UNION ALL
            SELECT subject, integration, dow, hours, 0, COUNT(*)
              FROM activity_ledger WHERE state = 1
             GROUP BY subject, integration, dow, hours
            UNION ALL
            SELECT slack_id, integration, dow, hours, 0, events FROM compacted_activity_base
         ) u
         GROUP BY u.slack_id, u.integration, u.dow, u.hours
         ORDER BY u.slack_id, u.integration, u.dow, u.hours",
        f.as_text("u.slack_id"),
        f.as_text("u.integration"),
        f.as_int("u.dow"),
        f.as_int("u.hours"),
        f.as_int("SUM(u.stored)"),
        f.as_int("SUM(u.recomputed)"),
    )
}

/// Part tags of the report stream.
const STORED_TOTALS: i64 = 0;
const STORED_MODEL: i64 = 1;
const STORED_FUNCTION: i64 = 2;
const BASE_TOTALS: i64 = 3;
const BASE_MODEL: i64 = 4;
const BASE_FUNCTION: i64 = 5;
const LEDGER: i64 = 6;

/// Every part of every report, ordered by report: `tag, account, period,
/// model, function, requests, tokens, cost, response time, quality,
/// scored, event_at`.
pub fn report_parts_sql(f: Flavor) -> String {
    let d = |c: &str| f.decimal_text(c);
    let null_text = match f {
        Flavor::Postgres => "CAST(NULL AS TEXT)",
        _ => "NULL",
    };
    let n = null_text;
    format!(
        "SELECT {tag}, {acct}, {period}, {model}, {func}, {req}, {tok}, {cost}, {rt}, {q}, {sc}, {at}
           FROM (
            SELECT {STORED_TOTALS} AS tag, account_id AS acct, report_period AS period,
                   {n} AS model, {n} AS func, total_requests AS req, total_tokens AS tok,
                   {} AS cost, response_time_ms_sum AS rt, {} AS q, quality_scored AS sc,
                   0 AS at
              FROM llm_reports
            UNION ALL
            SELECT {STORED_MODEL}, account_id, report_period, model, {n}, requests, tokens, {},
                   0, {n}, 0, 0
              FROM llm_report_models
            UNION ALL
            SELECT {STORED_FUNCTION}, account_id, report_period, {n}, function_name, requests, 0,
                   {n}, 0, {n}, 0, 0
              FROM llm_report_functions
            UNION ALL
            SELECT {BASE_TOTALS}, account_id, report_period, {n}, {n}, requests, tokens, {},
                   response_time_ms_sum, {}, quality_scored, 0
              FROM compacted_llm_base
            UNION ALL
            SELECT {BASE_MODEL}, account_id, report_period, model, {n}, requests, tokens, {},
                   0, {n}, 0, 0
              FROM compacted_llm_base_models
            UNION ALL
            SELECT {BASE_FUNCTION}, account_id, report_period, {n}, function_name, requests, 0,
                   {n}, 0, {n}, 0, 0
              FROM compacted_llm_base_functions
            UNION ALL
            SELECT {LEDGER}, subject, report_period, model, function_name, 1, total_tokens, {},
                   response_time_ms, {}, 0, event_at
              FROM llm_ledger WHERE state = 1
         ) u
         ORDER BY u.acct, u.period, u.tag",
        d("total_cost_usd"),
        d("quality_score_sum"),
        d("cost_usd"),
        d("cost_usd"),
        d("quality_score_sum"),
        d("cost_usd"),
        d("cost_usd"),
        d("quality_score"),
        tag = f.as_int("u.tag"),
        acct = f.as_text("u.acct"),
        period = f.as_text("u.period"),
        model = f.as_text("u.model"),
        func = f.as_text("u.func"),
        req = f.as_int("u.req"),
        tok = f.as_int("u.tok"),
        cost = f.as_text("u.cost"),
        rt = f.as_int("u.rt"),
        q = f.as_text("u.q"),
        sc = f.as_int("u.sc"),
        at = f.as_int("u.at"),
    )
}

/// How many rows the two streams will carry, roughly (for progress):
/// stored cells, and report rows plus live LLM ledger rows.
pub fn sizes_sql(f: Flavor) -> String {
    format!(
        "SELECT {}, {}",
        f.as_int("(SELECT COUNT(*) FROM user_event_counts)"),
        f.as_int(
            "(SELECT COUNT(*) FROM llm_reports) + (SELECT COUNT(*) FROM llm_report_models)
             + (SELECT COUNT(*) FROM llm_report_functions) + (SELECT COUNT(*) FROM llm_ledger WHERE state = 1)"
        ),
    )
}

/// How many compaction runs may have dropped rows before the bases
/// existed (migration 0006): if any, the recomputation lacks their counts.
pub fn runs_before_bases_sql(f: Flavor) -> String {
    format!(
        "SELECT {} FROM ledger_compactions c, compacted_base_origin o
          WHERE c.id <= o.before_run AND (c.activity_dropped > 0 OR c.llm_dropped > 0)",
        f.as_int("COUNT(*)")
    )
}

fn corrupt(reason: &str) -> StoreError {
    StoreError::Corrupt {
        table: "llm_reports",
        reason: reason.to_string(),
    }
}

fn decimal(text: Option<String>) -> Result<Decimal, StoreError> {
    let text = text.ok_or_else(|| corrupt("a sum is missing"))?;
    Decimal::from_str(text.trim())
        .map(|d| d.normalize())
        .map_err(|_| corrupt("a sum is not a decimal"))
}

/// One row of `report_parts_sql`.
pub fn report_part<R: Cells + ?Sized>(r: &R) -> Result<ReportPart, StoreError> {
    let int = |i: usize| -> Result<i64, StoreError> {
        r.opt_int(i)?.ok_or_else(|| corrupt("a count is missing"))
    };
    let text = |i: usize| -> Result<String, StoreError> {
        r.opt_text(i)?.ok_or_else(|| corrupt("a key is missing"))
    };
    let tag = int(0)?;
    let key = ReportKey {
        account_id: text(1)?,
        period: text(2)?.trim().to_string(),
    };
    let side = if tag <= STORED_FUNCTION {
        Side::Stored
    } else {
        Side::Recomputed
    };
    let mut sums = ReportSums::default();
    match tag {
        STORED_TOTALS | BASE_TOTALS => {
            sums.requests = int(5)?;
            sums.tokens = int(6)?;
            sums.cost_usd = decimal(r.opt_text(7)?)?;
            sums.response_time_ms = int(8)?;
            sums.quality_sum = decimal(r.opt_text(9)?)?;
            sums.quality_scored = int(10)?;
        }
        STORED_MODEL | BASE_MODEL => {
            sums.models.insert(
                text(3)?,
                ModelUsage {
                    requests: int(5)?,
                    tokens: int(6)?,
                    cost_usd: decimal(r.opt_text(7)?)?,
                },
            );
        }
        STORED_FUNCTION | BASE_FUNCTION => {
            sums.functions.insert(text(4)?, int(5)?);
        }
        LEDGER => {
            // The request as the apply path counts it.
            let quality = r.opt_text(9)?;
            let request = LlmRequest {
                conversation_id: String::new(),
                generated_at: Utc
                    .timestamp_opt(int(11)?, 0)
                    .single()
                    .ok_or_else(|| corrupt("bad event_at"))?,
                model: text(3)?,
                function: text(4)?,
                prompt_tokens: 0,
                response_tokens: 0,
                total_tokens: int(6)?,
                cost_usd: decimal(r.opt_text(7)?)?,
                response_time_ms: int(8)?,
                quality_score: quality.map(|q| decimal(Some(q))).transpose()?,
            };
            sums.add(&request).map_err(|what| RollupOverflow {
                report: key.report_id(),
                what,
            })?;
        }
        _ => return Err(corrupt("unknown part")),
    }
    Ok(ReportPart { key, side, sums })
}

/// Move a cell by (recomputed − stored). Parameters: the cell, the change.
pub fn fix_cell_sql(f: Flavor) -> String {
    upsert_sql(
        f,
        "user_event_counts",
        &CELL_KEYS,
        &[("event_count", Kind::Int, Update::Add)],
    )
}

pub fn fix_cell_vals(c: &CellAudit) -> Result<Vec<Bind>, StoreError> {
    let change = c
        .recomputed
        .checked_sub(c.stored)
        .ok_or_else(|| StoreError::Value("a count change is out of range".into()))?;
    let key: CellKey = (c.slack_id.clone(), c.integration.clone(), c.dow, c.hours);
    Ok(cell_vals(&key, change))
}

/// Repairs of the report tables: totals (with a new revision, pending
/// projection), per model, per function.
pub fn fix_report_sql(f: Flavor) -> [String; 3] {
    let u = if adds_decimals_in_sql(f) {
        Update::Add
    } else {
        Update::Set
    };
    let keys = [("account_id", Kind::Text), ("report_period", Kind::Text)];
    [
        upsert_sql(
            f,
            "llm_reports",
            &keys,
            &[
                ("total_requests", Kind::Int, u),
                ("total_tokens", Kind::Int, u),
                ("total_cost_usd", Kind::Decimal, u),
                ("response_time_ms_sum", Kind::Int, u),
                ("quality_score_sum", Kind::Decimal, u),
                ("quality_scored", Kind::Int, u),
                ("revision", Kind::Int, Update::Bump),
                ("pending", Kind::Int, Update::One),
                ("updated_at", Kind::Text, Update::Set),
            ],
        ),
        upsert_sql(
            f,
            "llm_report_models",
            &[keys[0], keys[1], ("model", Kind::Text)],
            &[
                ("requests", Kind::Int, u),
                ("tokens", Kind::Int, u),
                ("cost_usd", Kind::Decimal, u),
            ],
        ),
        upsert_sql(
            f,
            "llm_report_functions",
            &[keys[0], keys[1], ("function_name", Kind::Text)],
            &[("requests", Kind::Int, Update::Add)],
        ),
    ]
}

/// A model or function entry that counts nothing is no entry.
pub fn without_empty(mut s: ReportSums) -> ReportSums {
    s.models.retain(|_, m| *m != ModelUsage::default());
    s.functions.retain(|_, n| *n != 0);
    s
}

/// Bound values of one report's upserts: totals, model rows, function rows.
pub type ReportRows = (Vec<Bind>, Vec<Vec<Bind>>, Vec<Vec<Bind>>);

/// The values of `fix_report_sql` for one report.
pub fn fix_report_vals(f: Flavor, fix: &ReportFix, now: &str) -> Result<ReportRows, StoreError> {
    let overflow = |what| RollupOverflow {
        report: fix.key.report_id(),
        what,
    };
    let negated = fix
        .stored
        .negated()
        .ok_or_else(|| overflow("stored sums"))?;
    let change = fix.recomputed.plus(&negated).map_err(overflow)?;
    let stored = without_empty(fix.stored.clone());
    let recomputed = without_empty(fix.recomputed.clone());
    let mut written = if adds_decimals_in_sql(f) {
        change.clone()
    } else {
        let mut w = recomputed.clone();
        for m in change.models.keys() {
            w.models.entry(m.clone()).or_default();
        }
        w
    };
    written
        .models
        .retain(|m, _| stored.models.get(m) != recomputed.models.get(m));
    let mut functions = change.functions.clone();
    functions.retain(|_, n| *n != 0);
    let (mut totals, models, functions) = llm_base_vals(&fix.key, &written, &functions);
    totals.extend([Bind::Int(1), Bind::Int(1), Bind::Text(now.to_string())]);
    Ok((totals, models, functions))
}

/// The audit's two streams, each one statement on `s` (the pool, or a
/// transaction), row by row into `sink`.
pub(crate) async fn scan<S: Sql + ?Sized>(
    s: &mut S,
    f: Flavor,
    sink: &mut (dyn AuditSink + Send),
) -> Result<(), StoreError> {
    s.each(&cells_sql(f), &[], &mut |r| {
        sink.cell(CellAudit {
            slack_id: r.text(0)?,
            integration: r.text(1)?.trim().to_string(),
            dow: r.int(2)?,
            hours: r.int(3)?,
            stored: r.int(4)?,
            recomputed: r.int(5)?,
        })
    })
    .await?;
    s.each(&report_parts_sql(f), &[], &mut |r| {
        sink.report_part(report_part(r)?)
    })
    .await?;
    sink.end()
}

/// Stream the recomputed and stored aggregates into `sink`.
pub(crate) async fn audit<E: Engine>(
    e: &E,
    sink: &mut (dyn AuditSink + Send),
) -> Result<(), StoreError> {
    scan(&mut e.pool(), E::FLAVOR, sink).await
}

/// Rows the audit's streams will carry, roughly: cells, report rows.
pub(crate) async fn sizes<E: Engine>(e: &E) -> Result<(i64, i64), StoreError> {
    fetch_one(&mut e.pool(), &sizes_sql(E::FLAVOR), &[], |r| {
        Ok((r.int(0)?, r.int(1)?))
    })
    .await
}

/// Compaction runs that dropped rows before the bases existed.
pub(crate) async fn runs_before_bases<E: Engine>(e: &E) -> Result<i64, StoreError> {
    fetch_one(&mut e.pool(), &runs_before_bases_sql(E::FLAVOR), &[], |r| {
        r.int(0)
    })
    .await
}

/// In one transaction: stream the audit into `sink` again, then write what
/// it found to differ.
pub(crate) async fn audit_fix<E: Engine>(
    e: &E,
    sink: &mut (dyn AuditSink + Send),
) -> Result<Fixes, StoreError> {
    let f = E::FLAVOR;
    let mut tx = e.begin().await?;
    scan(&mut tx, f, sink).await?;
    let fixes = sink.take_fixes();
    let cell_sql = fix_cell_sql(f);
    for c in &fixes.cells {
        tx.run(&cell_sql, &fix_cell_vals(c)?).await?;
    }
    let report_sql = fix_report_sql(f);
    let now = super::now_text();
    for fix in &fixes.reports {
        let (totals, models, functions) = fix_report_vals(f, fix, &now)?;
        tx.run(&report_sql[0], &totals).await?;
        for v in models {
            tx.run(&report_sql[1], &v).await?;
        }
        for v in functions {
            tx.run(&report_sql[2], &v).await?;
        }
    }
    E::commit(tx).await?;
    Ok(fixes)
}
