//! SQLite's LLM report moves: SQLite has no exact decimal type, so the
//! reports a batch moves are read (the batch holds the only write lock),
//! added to in Rust and written back as exact text; function counts are
//! plain integers and are added in SQL.

use super::sqlite::MAX_PARAMS;
use crate::aggregate::llm_rollup::{Report, ReportKey, ReportSums};
use crate::store::dialect::Flavor;
use crate::store::reports::{ReportWrite, assemble, function_rows, model_rows, write_report_rows};
use crate::store::{ApplyResult, StoreError, now_text};
use sqlx::{Sqlite, Transaction};
use std::collections::BTreeMap;

/// Move the LLM reports by a batch's deltas. SQLite has no exact decimal
/// type, so the touched reports and model rows are read (the batch holds
/// the only write lock), added to in Rust and written back; function counts
/// are plain integers and are added in SQL.
pub(crate) async fn apply_reports(
    tx: &mut Transaction<'static, Sqlite>,
    deltas: &BTreeMap<ReportKey, ReportSums>,
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    let keys: Vec<&ReportKey> = deltas.keys().collect();
    let mut current: BTreeMap<ReportKey, Report> = BTreeMap::new();
    // 2 parameters a key; the two reads share the key list.
    for chunk in keys.chunks(MAX_PARAMS / 2) {
        let list = vec!["(?, ?)"; chunk.len()].join(", ");
        let within = format!("(account_id, report_period) IN (VALUES {list})");
        let sql = [
            format!(
                "SELECT account_id, report_period, total_requests, total_tokens, total_cost_usd,
                        response_time_ms_sum, quality_score_sum, quality_scored, revision, updated_at
                   FROM llm_reports WHERE {within}"
            ),
            format!(
                "SELECT account_id, report_period, model, requests, tokens, cost_usd
                   FROM llm_report_models WHERE {within}"
            ),
        ];
        let mut found = Vec::with_capacity(2);
        for text in &sql {
            let mut q = sqlx::query(text);
            for k in chunk {
                q = q.bind(&k.account_id).bind(&k.period);
            }
            found.push(q.fetch_all(&mut **tx).await?);
        }
        let (totals, models) = (&found[0], &found[1]);
        result.statements += 2;
        for report in assemble(totals, models, &[])? {
            current.insert(report.key.clone(), report);
        }
    }
    let mut updated: BTreeMap<ReportKey, ReportSums> = BTreeMap::new();
    let mut revisions = Vec::with_capacity(deltas.len());
    for (key, delta) in deltas {
        let (base, revision) = match current.get(key) {
            Some(r) => (&r.sums, r.revision + 1),
            None => (&ReportSums::default() as &ReportSums, 1),
        };
        let sums =
            base.plus(delta)
                .map_err(|what| crate::aggregate::llm_rollup::RollupOverflow {
                    report: key.report_id(),
                    what,
                })?;
        // Only the breakdown entries this batch moved are written back.
        let mut written = sums.clone();
        written.models.retain(|m, _| delta.models.contains_key(m));
        // Function counts are plain integers: added in SQL, from the delta.
        written.functions = delta.functions.clone();
        revisions.push(revision);
        updated.insert(key.clone(), written);
    }
    let now = now_text();
    let rows: Vec<(&ReportKey, &ReportSums, i64)> = updated
        .iter()
        .zip(&revisions)
        .map(|((k, s), r)| (k, s, *r))
        .collect();
    let models = model_rows(&updated);
    let functions = function_rows(&updated);
    let write = ReportWrite {
        totals: rows,
        models,
        functions,
        now,
        on_conflict: [
            " ON CONFLICT (account_id, report_period) DO UPDATE SET
               total_requests = excluded.total_requests, total_tokens = excluded.total_tokens,
               total_cost_usd = excluded.total_cost_usd,
               response_time_ms_sum = excluded.response_time_ms_sum,
               quality_score_sum = excluded.quality_score_sum,
               quality_scored = excluded.quality_scored, revision = excluded.revision,
               pending = 1, updated_at = excluded.updated_at",
            " ON CONFLICT (account_id, report_period, model) DO UPDATE SET
               requests = excluded.requests, tokens = excluded.tokens, cost_usd = excluded.cost_usd",
            " ON CONFLICT (account_id, report_period, function_name) DO UPDATE SET
               requests = llm_report_functions.requests + excluded.requests",
        ],
    };
    write_report_rows(tx, Flavor::Sqlite, MAX_PARAMS, &write, result).await?;
    Ok(())
}
