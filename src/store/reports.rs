//! The LLM report tables (`llm_reports`, `llm_report_models`,
//! `llm_report_functions`): SQL text shared by the dialects, the rows a
//! batch's report deltas become and their multi-row write, reading reports
//! back, and the projection bookkeeping.
//!
//! How the deltas are added differs: MySQL and PostgreSQL add them in SQL
//! (`col = col + delta` on exact DECIMAL columns, keys in order); SQLite,
//! which has no exact decimal type, reads the touched reports under its
//! single write lock and writes back the sums added in Rust.

use super::dialect::Flavor;
use super::exec::{Bind, Cells, Engine, Sql};
use super::{ApplyResult, StoreError};
use crate::aggregate::llm_rollup::{ModelUsage, Report, ReportKey, ReportSums};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::str::FromStr;

/// Which reports to read.
#[derive(Clone, Debug, Default)]
pub struct ReportFilter {
    pub account_id: Option<String>,
    /// `YYYY-MM`.
    pub period: Option<String>,
    /// Only reports whose latest revision has not been projected yet.
    pub pending_only: bool,
    /// At most this many reports (in key order).
    pub limit: u32,
}

/// `(key, model, usage)` rows of a set of reports.
pub fn model_rows(
    reports: &BTreeMap<ReportKey, ReportSums>,
) -> Vec<(&ReportKey, &String, &ModelUsage)> {
    reports
        .iter()
        .flat_map(|(k, s)| s.models.iter().map(move |(m, u)| (k, m, u)))
        .collect()
}

/// `(key, function, count)` rows of a set of reports.
pub fn function_rows(reports: &BTreeMap<ReportKey, ReportSums>) -> Vec<(&ReportKey, &String, i64)> {
    reports
        .iter()
        .flat_map(|(k, s)| s.functions.iter().map(move |(f, n)| (k, f, *n)))
        .collect()
}

pub const TOTALS_COLUMNS: &str = "account_id, report_period, total_requests, total_tokens, total_cost_usd, \
     response_time_ms_sum, quality_score_sum, quality_scored, revision, pending, updated_at";

/// The filter's WHERE clause over `llm_reports` (5 parameters: account
/// twice, period twice, pending flag).
fn report_filter(f: Flavor) -> String {
    format!(
        "({} IS NULL OR account_id = {}) AND ({} IS NULL OR report_period = {})
           AND ({} = 0 OR pending = 1)",
        f.text_param(1),
        f.text_param(2),
        f.text_param(3),
        f.text_param(4),
        f.p(5)
    )
}

/// The reports a filter selects, as a derived table `r(account_id,
/// report_period)` (a join target: MySQL allows no LIMIT inside IN).
fn selected_reports(f: Flavor) -> String {
    format!(
        "(SELECT account_id, report_period FROM llm_reports WHERE {}
           ORDER BY account_id, report_period LIMIT {})",
        report_filter(f),
        f.p(6)
    )
}

/// Report sums: `account, period, requests, tokens, cost, response
/// time, quality sum, scored, revision`.
pub fn report_totals(f: Flavor) -> String {
    format!(
        "SELECT {}, {}, t.total_requests, t.total_tokens, {}, t.response_time_ms_sum, {},
                t.quality_scored, t.revision, {}
           FROM llm_reports t JOIN {} r
             ON r.account_id = t.account_id AND r.report_period = t.report_period
          ORDER BY t.account_id, t.report_period",
        f.as_text("t.account_id"),
        f.as_text("t.report_period"),
        f.decimal_text("t.total_cost_usd"),
        f.decimal_text("t.quality_score_sum"),
        f.as_text("t.updated_at"),
        selected_reports(f)
    )
}

/// Per-model rows of the selected reports: `account, period, model,
/// requests, tokens, cost`.
pub fn report_models(f: Flavor) -> String {
    format!(
        "SELECT {}, {}, {}, m.requests, m.tokens, {}
           FROM llm_report_models m JOIN {} r
             ON r.account_id = m.account_id AND r.report_period = m.report_period
          WHERE m.requests <> 0",
        f.as_text("m.account_id"),
        f.as_text("m.report_period"),
        f.as_text("m.model"),
        f.decimal_text("m.cost_usd"),
        selected_reports(f)
    )
}

/// Per-function rows of the selected reports: `account, period,
/// function, requests`.
pub fn report_functions(f: Flavor) -> String {
    format!(
        "SELECT {}, {}, {}, f.requests
           FROM llm_report_functions f JOIN {} r
             ON r.account_id = f.account_id AND r.report_period = f.report_period
          WHERE f.requests <> 0",
        f.as_text("f.account_id"),
        f.as_text("f.report_period"),
        f.as_text("f.function_name"),
        selected_reports(f)
    )
}

/// Record that `revision` of a report was projected (never moving
/// `published_revision` backwards). Parameters: revision ×3, account,
/// period.
pub fn mark_published(f: Flavor) -> String {
    format!(
        "UPDATE llm_reports
            SET published_revision = CASE WHEN published_revision < {p1} THEN {p2} ELSE published_revision END,
                pending = CASE WHEN revision <= {p3} THEN 0 ELSE 1 END
          WHERE account_id = {p4} AND report_period = {p5}",
        p1 = f.p(1),
        p2 = f.p(2),
        p3 = f.p(3),
        p4 = f.p(4),
        p5 = f.p(5),
    )
}

fn corrupt(reason: &str) -> StoreError {
    StoreError::Corrupt {
        table: "llm_reports",
        reason: reason.to_string(),
    }
}

fn decimal(text: &str) -> Result<Decimal, StoreError> {
    Decimal::from_str(text.trim())
        .map(|d| d.normalize())
        .map_err(|_| corrupt("a sum is not a decimal"))
}

fn key_of<R: Cells + ?Sized>(r: &R) -> Result<ReportKey, StoreError> {
    Ok(ReportKey {
        account_id: r.text(0)?,
        period: r.text(1)?.trim().to_string(),
    })
}

/// Reports put together from the rows of `report_totals`, then
/// `report_models` and `report_functions` (a breakdown row of a report
/// not among the totals is passed over).
#[derive(Default)]
pub(crate) struct Assembly {
    reports: BTreeMap<ReportKey, Report>,
}

impl Assembly {
    /// A row of `report_totals`.
    pub fn totals<R: Cells + ?Sized>(&mut self, r: &R) -> Result<(), StoreError> {
        let key = key_of(r)?;
        let sums = ReportSums {
            requests: r.int(2)?,
            tokens: r.int(3)?,
            cost_usd: decimal(&r.text(4)?)?,
            response_time_ms: r.int(5)?,
            quality_sum: decimal(&r.text(6)?)?,
            quality_scored: r.int(7)?,
            models: BTreeMap::new(),
            functions: BTreeMap::new(),
        };
        let revision = r.int(8)?;
        let updated_at = r.text(9)?;
        self.reports.insert(
            key.clone(),
            Report {
                key,
                sums,
                revision,
                updated_at,
            },
        );
        Ok(())
    }

    /// A row of `report_models`.
    pub fn model<R: Cells + ?Sized>(&mut self, r: &R) -> Result<(), StoreError> {
        let key = key_of(r)?;
        let cost = r.text(5)?;
        if let Some(report) = self.reports.get_mut(&key) {
            report.sums.models.insert(
                r.text(2)?,
                ModelUsage {
                    requests: r.int(3)?,
                    tokens: r.int(4)?,
                    cost_usd: decimal(&cost)?,
                },
            );
        }
        Ok(())
    }

    /// A row of `report_functions`.
    pub fn function<R: Cells + ?Sized>(&mut self, r: &R) -> Result<(), StoreError> {
        let key = key_of(r)?;
        if let Some(report) = self.reports.get_mut(&key) {
            report.sums.functions.insert(r.text(2)?, r.int(3)?);
        }
        Ok(())
    }

    /// The reports, in key order.
    pub fn finish(self) -> Vec<Report> {
        self.reports.into_values().collect()
    }
}

/// Assemble reports from the rows of `report_totals`, `report_models` and
/// `report_functions`.
pub fn assemble<R: Cells>(
    totals: &[R],
    models: &[R],
    functions: &[R],
) -> Result<Vec<Report>, StoreError> {
    let mut out = Assembly::default();
    for r in totals {
        out.totals(r)?;
    }
    for r in models {
        out.model(r)?;
    }
    for r in functions {
        out.function(r)?;
    }
    Ok(out.finish())
}

/// Reports selected by `filter`, in key order: their totals, models and
/// functions, one statement each.
pub(crate) async fn read_reports<E: Engine>(
    e: &E,
    filter: &ReportFilter,
) -> Result<Vec<Report>, StoreError> {
    let binds = [
        filter.account_id.clone().into(),
        filter.account_id.clone().into(),
        filter.period.clone().into(),
        filter.period.clone().into(),
        i64::from(filter.pending_only).into(),
        i64::from(filter.limit).into(),
    ];
    let mut out = Assembly::default();
    let mut pool = e.pool();
    let f = E::FLAVOR;
    pool.each(&report_totals(f), &binds, &mut |r| out.totals(r))
        .await?;
    pool.each(&report_models(f), &binds, &mut |r| out.model(r))
        .await?;
    pool.each(&report_functions(f), &binds, &mut |r| out.function(r))
        .await?;
    Ok(out.finish())
}

/// Record that `revision` of `key` is in LLMReportData.
pub(crate) async fn set_published<E: Engine>(
    e: &E,
    key: &ReportKey,
    revision: i64,
) -> Result<(), StoreError> {
    let binds = [
        revision.into(),
        revision.into(),
        revision.into(),
        (&key.account_id).into(),
        (&key.period).into(),
    ];
    e.pool().run(&mark_published(E::FLAVOR), &binds).await?;
    Ok(())
}

/// Report rows to write with multi-row INSERTs (`write_report_rows`).
pub(crate) struct ReportWrite<'a> {
    /// `(key, sums, revision of a new row)`.
    pub totals: Vec<(&'a ReportKey, &'a ReportSums, i64)>,
    /// As from `model_rows`.
    pub models: Vec<(&'a ReportKey, &'a String, &'a ModelUsage)>,
    /// As from `function_rows`.
    pub functions: Vec<(&'a ReportKey, &'a String, i64)>,
    pub now: String,
    /// The dialect's conflict clause after each table's INSERT (totals,
    /// models, functions): SQLite sets the sums it computed, MySQL adds
    /// deltas.
    pub on_conflict: [&'a str; 3],
}

/// `INSERT INTO {table_and_columns} VALUES (…), …` of `rows` rows of
/// `width` parameters each, then `tail`.
fn values_insert(
    f: Flavor,
    table_and_columns: &str,
    width: usize,
    rows: usize,
    tail: &str,
) -> String {
    let tuples: Vec<String> = (0..rows)
        .map(|r| {
            let params: Vec<String> = (1..=width).map(|c| f.p(r * width + c)).collect();
            format!("({})", params.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO {table_and_columns} VALUES {}{tail}",
        tuples.join(", ")
    )
}

/// Write report rows with multi-row INSERTs of at most `max_params`
/// parameters, each followed by its conflict clause; counts the statements
/// into `result`.
pub(crate) async fn write_report_rows<S: Sql + ?Sized>(
    tx: &mut S,
    f: Flavor,
    max_params: usize,
    rows: &ReportWrite<'_>,
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    let [totals_clause, models_clause, functions_clause] = rows.on_conflict;
    let head = format!("llm_reports ({TOTALS_COLUMNS})");
    for chunk in rows.totals.chunks(max_params / 11) {
        let mut binds = Vec::with_capacity(chunk.len() * 11);
        for (k, s, revision) in chunk {
            binds.extend([
                Bind::from(&k.account_id),
                (&k.period).into(),
                s.requests.into(),
                s.tokens.into(),
                s.cost_usd.to_string().into(),
                s.response_time_ms.into(),
                s.quality_sum.to_string().into(),
                s.quality_scored.into(),
                (*revision).into(),
                1i64.into(),
                (&rows.now).into(),
            ]);
        }
        let sql = values_insert(f, &head, 11, chunk.len(), totals_clause);
        tx.run(&sql, &binds).await?;
        result.statements += 1;
    }
    let head = "llm_report_models (account_id, report_period, model, requests, tokens, cost_usd)";
    for chunk in rows.models.chunks(max_params / 6) {
        let mut binds = Vec::with_capacity(chunk.len() * 6);
        for (k, m, u) in chunk {
            binds.extend([
                Bind::from(&k.account_id),
                (&k.period).into(),
                (*m).into(),
                u.requests.into(),
                u.tokens.into(),
                u.cost_usd.to_string().into(),
            ]);
        }
        let sql = values_insert(f, head, 6, chunk.len(), models_clause);
        tx.run(&sql, &binds).await?;
        result.statements += 1;
    }
    let head = "llm_report_functions (account_id, report_period, function_name, requests)";
    for chunk in rows.functions.chunks(max_params / 4) {
        let mut binds = Vec::with_capacity(chunk.len() * 4);
        for (k, name, n) in chunk {
            binds.extend([
                Bind::from(&k.account_id),
                (&k.period).into(),
                (*name).into(),
                (*n).into(),
            ]);
        }
        let sql = values_insert(f, head, 4, chunk.len(), functions_clause);
        tx.run(&sql, &binds).await?;
        result.statements += 1;
    }
    Ok(())
}
