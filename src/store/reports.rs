//! The LLM report tables (`llm_reports`, `llm_report_models`,
//! `llm_report_functions`): SQL text shared by the dialects, the rows a
//! batch's report deltas become, and decoding of reports read back.
//!
//! How the deltas are added differs: MySQL and PostgreSQL add them in SQL
//! (`col = col + delta` on exact DECIMAL columns, keys in order); SQLite,
//! which has no exact decimal type, reads the touched reports under its
//! single write lock and writes back the sums added in Rust.

use super::StoreError;
use super::dialect::Flavor;
use crate::aggregate::llm_rollup::{ModelUsage, Report, ReportKey, ReportSums};
use rust_decimal::Decimal;
use sqlx::{ColumnIndex, Decode, Row, Type};
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

fn key_of<R>(r: &R) -> Result<ReportKey, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(ReportKey {
        account_id: r.try_get(0)?,
        period: r.try_get::<String, _>(1)?.trim().to_string(),
    })
}

/// Assemble reports from the rows of `report_totals`, `report_models` and
/// `report_functions`.
pub fn assemble<R>(totals: &[R], models: &[R], functions: &[R]) -> Result<Vec<Report>, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let mut out: BTreeMap<ReportKey, Report> = BTreeMap::new();
    for r in totals {
        let key = key_of(r)?;
        let cost: String = r.try_get(4)?;
        let quality: String = r.try_get(6)?;
        let sums = ReportSums {
            requests: r.try_get(2)?,
            tokens: r.try_get(3)?,
            cost_usd: decimal(&cost)?,
            response_time_ms: r.try_get(5)?,
            quality_sum: decimal(&quality)?,
            quality_scored: r.try_get(7)?,
            models: BTreeMap::new(),
            functions: BTreeMap::new(),
        };
        let revision = r.try_get(8)?;
        let updated_at = r.try_get(9)?;
        out.insert(
            key.clone(),
            Report {
                key,
                sums,
                revision,
                updated_at,
            },
        );
    }
    for r in models {
        let key = key_of(r)?;
        let cost: String = r.try_get(5)?;
        if let Some(report) = out.get_mut(&key) {
            report.sums.models.insert(
                r.try_get(2)?,
                ModelUsage {
                    requests: r.try_get(3)?,
                    tokens: r.try_get(4)?,
                    cost_usd: decimal(&cost)?,
                },
            );
        }
    }
    for r in functions {
        let key = key_of(r)?;
        if let Some(report) = out.get_mut(&key) {
            report.sums.functions.insert(r.try_get(2)?, r.try_get(3)?);
        }
    }
    Ok(out.into_values().collect())
}

/// The read and bookkeeping methods on reports, the same for every
/// dialect's store, from its `Dialect` `$d` (a macro for the reason given
/// at `queries::common_methods!`).
macro_rules! report_methods {
    ($d:ty) => {
        /// Reports selected by `filter`, in key order.
        pub async fn reports(
            &self,
            filter: &super::reports::ReportFilter,
        ) -> Result<Vec<crate::aggregate::llm_rollup::Report>, StoreError> {
            let run = |sql: String| {
                let pool = &self.pool;
                async move {
                    sqlx::query(&sql)
                        .bind(filter.account_id.clone())
                        .bind(filter.account_id.clone())
                        .bind(filter.period.clone())
                        .bind(filter.period.clone())
                        .bind(i64::from(filter.pending_only))
                        .bind(i64::from(filter.limit))
                        .fetch_all(pool)
                        .await
                }
            };
            let totals = run(super::reports::report_totals(
                <$d as super::dialect::Dialect>::FLAVOR,
            ))
            .await?;
            let models = run(super::reports::report_models(
                <$d as super::dialect::Dialect>::FLAVOR,
            ))
            .await?;
            let functions = run(super::reports::report_functions(
                <$d as super::dialect::Dialect>::FLAVOR,
            ))
            .await?;
            super::reports::assemble(&totals, &models, &functions)
        }

        /// Record that `revision` of `key` is in LLMReportData.
        pub async fn mark_published(
            &self,
            key: &crate::aggregate::llm_rollup::ReportKey,
            revision: i64,
        ) -> Result<(), StoreError> {
            sqlx::query(&super::reports::mark_published(
                <$d as super::dialect::Dialect>::FLAVOR,
            ))
            .bind(revision)
            .bind(revision)
            .bind(revision)
            .bind(&key.account_id)
            .bind(&key.period)
            .execute(&self.pool)
            .await?;
            Ok(())
        }
    };
}
pub(crate) use report_methods;
