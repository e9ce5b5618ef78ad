//! PostgreSQL's batch in four round trips whatever its size: `BEGIN`; one
//! read of both ledgers' rows of the batch's identities, locked in
//! identity order (`FOR UPDATE` in two CTEs); one write statement whose
//! data-modifying CTEs insert the new ledger rows, update the replaced
//! ones, move `user_event_counts` and the LLM reports (on exact NUMERIC
//! columns) and quarantine the rejects, every list bound as an array
//! (`UNNEST`, so there is no parameter limit to chunk around); `COMMIT`.
//!
//! Absent rows are not locked: a concurrent writer that inserts one of the
//! batch's new identities first makes this INSERT fail on the ledger key
//! (23505, transient), and the batch is retried against the row it wrote.

use super::super::postgres::PgStore;
use super::super::sql::{ACTIVITY_COLUMNS, LLM_COLUMNS};
use super::super::{ApplyResult, RejectedRecord, StoreError};
use super::read::{activity_select, decode_into, llm_select};
use super::{BatchEngine, Plan};
use crate::aggregate::llm_rollup::{ReportKey, ReportSums};
use crate::aggregate::plan::LedgerRead;
use crate::aggregate::{ActivityRow, LlmRow, StagedRows};
use crate::domain::LlmRequest;
use crate::store::dialect::Flavor;
use sqlx::Transaction;
use sqlx::postgres::Postgres;
use std::sync::OnceLock;

/// `$start::t0, $start+1::t1, …`: the placeholders of consecutive array
/// parameters.
fn params(start: usize, types: &[&str]) -> String {
    types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("${}::{t}", start + i))
        .collect::<Vec<_>>()
        .join(", ")
}

const ACTIVITY_TYPES: [&str; 8] = [
    "bytea[]", "bytea[]", "int2[]", "text[]", "text[]", "int2[]", "int2[]", "int8[]",
];
const LLM_TYPES: [&str; 15] = [
    "bytea[]",
    "bytea[]",
    "int2[]",
    "text[]",
    "text[]",
    "text[]",
    "text[]",
    "text[]",
    "int8[]",
    "int8[]",
    "int8[]",
    "text[]::numeric[]",
    "int8[]",
    "text[]::numeric[]",
    "int8[]",
];
const REPORT_TYPES: [&str; 8] = [
    "text[]",
    "text[]",
    "int8[]",
    "int8[]",
    "text[]::numeric[]",
    "int8[]",
    "text[]::numeric[]",
    "int8[]",
];
const MODEL_TYPES: [&str; 6] = [
    "text[]",
    "text[]",
    "text[]",
    "int8[]",
    "int8[]",
    "text[]::numeric[]",
];
const FUNCTION_TYPES: [&str; 4] = ["text[]", "text[]", "text[]", "int8[]"];
const REJECT_TYPES: [&str; 8] = [
    "bytea[]", "text[]", "text[]", "text[]", "text[]", "text[]", "text[]", "text[]",
];

/// The LLM report moves (added in SQL on exact NUMERIC columns, keys in
/// order), one CTE per table, from parameter `first` on (`first + 8` is the
/// update time).
fn report_ctes(first: usize) -> String {
    let models = first + REPORT_TYPES.len() + 1;
    let functions = models + MODEL_TYPES.len();
    format!(
        "r_totals AS (INSERT INTO llm_reports ({totals})
         SELECT a, p, r, t, c, rt, qs, qn, 1, 1, ${now}::text
           FROM UNNEST({report}) AS u(a, p, r, t, c, rt, qs, qn)
          ORDER BY a, p
         ON CONFLICT (account_id, report_period) DO UPDATE SET
           total_requests = llm_reports.total_requests + EXCLUDED.total_requests,
           total_tokens = llm_reports.total_tokens + EXCLUDED.total_tokens,
           total_cost_usd = llm_reports.total_cost_usd + EXCLUDED.total_cost_usd,
           response_time_ms_sum = llm_reports.response_time_ms_sum + EXCLUDED.response_time_ms_sum,
           quality_score_sum = llm_reports.quality_score_sum + EXCLUDED.quality_score_sum,
           quality_scored = llm_reports.quality_scored + EXCLUDED.quality_scored,
           revision = llm_reports.revision + 1, pending = 1, updated_at = EXCLUDED.updated_at
         RETURNING 1),
         r_models AS (INSERT INTO llm_report_models (account_id, report_period, model, requests, tokens, cost_usd)
         SELECT * FROM UNNEST({model}) ORDER BY 1, 2, 3
         ON CONFLICT (account_id, report_period, model) DO UPDATE SET
           requests = llm_report_models.requests + EXCLUDED.requests,
           tokens = llm_report_models.tokens + EXCLUDED.tokens,
           cost_usd = llm_report_models.cost_usd + EXCLUDED.cost_usd
         RETURNING 1),
         r_functions AS (INSERT INTO llm_report_functions (account_id, report_period, function_name, requests)
         SELECT * FROM UNNEST({function}) ORDER BY 1, 2, 3
         ON CONFLICT (account_id, report_period, function_name) DO UPDATE SET
           requests = llm_report_functions.requests + EXCLUDED.requests
         RETURNING 1)",
        totals = super::super::reports::TOTALS_COLUMNS,
        report = params(first, &REPORT_TYPES),
        now = first + REPORT_TYPES.len(),
        model = params(models, &MODEL_TYPES),
        function = params(functions, &FUNCTION_TYPES),
    )
}

/// One column of the batch, as a bound array.
fn col<T, U>(rows: &[T], f: impl Fn(&T) -> U) -> Vec<U> {
    rows.iter().map(f).collect()
}

const COUNT_TYPES: [&str; 5] = ["text[]", "text[]", "int2[]", "int2[]", "int8[]"];

/// The read: both ledgers' rows of the batch's identities, locked in
/// identity order, in the layout of `batch::read`.
fn read_statement() -> &'static str {
    static STATEMENT: OnceLock<String> = OnceLock::new();
    STATEMENT.get_or_init(|| {
        let names = "t, id, version, state, subject, integration, dow, hours, event_at,
             conversation_id, model, function_name, prompt_tokens, response_tokens,
             total_tokens, cost_usd, response_time_ms, quality_score";
        format!(
            "WITH a({names}) AS ({activity} WHERE l.id = ANY($1::bytea[]) ORDER BY l.id FOR UPDATE),
                  m({names}) AS ({llm} WHERE l.id = ANY($2::bytea[]) ORDER BY l.id FOR UPDATE)
             SELECT * FROM a UNION ALL SELECT * FROM m",
            activity = activity_select(Flavor::Postgres, "activity_ledger l"),
            llm = llm_select(Flavor::Postgres, "llm_ledger l"),
        )
    })
}

/// `INSERT` of new ledger rows (`p`: CTE name) from the arrays at `first`.
fn insert_cte(p: &str, ledger: &str, columns: &str, first: usize, types: &[&str]) -> String {
    format!(
        "{p} AS (INSERT INTO {ledger} ({columns}) SELECT * FROM UNNEST({arrays}) ORDER BY 1 RETURNING 1)",
        arrays = params(first, types),
    )
}

/// `UPDATE` of replaced (locked) ledger rows from the arrays at `first`.
fn update_cte(p: &str, ledger: &str, columns: &str, first: usize, types: &[&str]) -> String {
    let assign = super::super::sql::but_id(columns, |c| format!("{c} = s.{c}"));
    format!(
        "{p} AS (UPDATE {ledger} t SET {assign} FROM UNNEST({arrays}) AS s({columns})
                  WHERE t.id = s.id RETURNING 1)",
        arrays = params(first, types),
    )
}

/// The write: the plan in one statement; parameters in `write_plan`'s bind
/// order. Returns the rows each ledger write touched.
fn write_statement() -> &'static str {
    static STATEMENT: OnceLock<String> = OnceLock::new();
    STATEMENT.get_or_init(|| {
        let a_new = 1;
        let a_rep = a_new + ACTIVITY_TYPES.len();
        let counts = a_rep + ACTIVITY_TYPES.len();
        let m_new = counts + COUNT_TYPES.len();
        let m_rep = m_new + LLM_TYPES.len();
        let reports = m_rep + LLM_TYPES.len();
        let rejects = reports + REPORT_TYPES.len() + 1 + MODEL_TYPES.len() + FUNCTION_TYPES.len();
        format!(
            "WITH {an}, {ar},
             c AS (INSERT INTO user_event_counts (slack_id, integration, dow, hours, event_count)
                   SELECT * FROM UNNEST({count_arrays})
                   ON CONFLICT (slack_id, integration, dow, hours)
                   DO UPDATE SET event_count = user_event_counts.event_count + EXCLUDED.event_count
                   RETURNING 1),
             {mn}, {mr}, {reports},
             q AS (INSERT INTO rejected_records ({reject_columns})
                   SELECT * FROM UNNEST({reject}) ON CONFLICT (record_key) DO NOTHING RETURNING 1)
             SELECT (SELECT count(*) FROM an)::int8, (SELECT count(*) FROM ar)::int8,
                    (SELECT count(*) FROM mn)::int8, (SELECT count(*) FROM mr)::int8",
            an = insert_cte(
                "an",
                "activity_ledger",
                ACTIVITY_COLUMNS,
                a_new,
                &ACTIVITY_TYPES
            ),
            ar = update_cte(
                "ar",
                "activity_ledger",
                ACTIVITY_COLUMNS,
                a_rep,
                &ACTIVITY_TYPES
            ),
            count_arrays = params(counts, &COUNT_TYPES),
            mn = insert_cte("mn", "llm_ledger", LLM_COLUMNS, m_new, &LLM_TYPES),
            mr = update_cte("mr", "llm_ledger", LLM_COLUMNS, m_rep, &LLM_TYPES),
            reports = report_ctes(reports),
            reject_columns = super::super::REJECT_COLUMNS,
            reject = params(rejects, &REJECT_TYPES),
        )
    })
}

type Query<'q> = sqlx::query::QueryAs<
    'q,
    Postgres,
    (i64, i64, i64, i64),
    <Postgres as sqlx::Database>::Arguments<'q>,
>;

/// Bind one ledger's activity rows as arrays.
fn bind_activity<'q>(q: Query<'q>, rows: &[&ActivityRow]) -> Query<'q> {
    q.bind(col(rows, |r| r.id.to_bytes().to_vec()))
        .bind(col(rows, |r| r.version.as_bytes().to_vec()))
        .bind(col(rows, |r| r.state.code() as i16))
        .bind(col(rows, |r| r.integration.code()))
        .bind(col(rows, |r| r.subject.clone()))
        .bind(col(rows, |r| r.bucket.map(|b| i16::from(b.dow))))
        .bind(col(rows, |r| r.bucket.map(|b| i16::from(b.hour))))
        .bind(col(rows, |r| r.event_at))
}

/// Bind LLM rows as arrays.
fn bind_llm<'q>(q: Query<'q>, rows: &[&LlmRow]) -> Query<'q> {
    let text = |f: &dyn Fn(&LlmRequest) -> Option<String>| -> Vec<Option<String>> {
        rows.iter()
            .map(|r| r.request.as_ref().and_then(f))
            .collect()
    };
    let int = |f: &dyn Fn(&LlmRequest) -> i64| -> Vec<Option<i64>> {
        rows.iter().map(|r| r.request.as_ref().map(f)).collect()
    };
    q.bind(col(rows, |r| r.id.to_bytes().to_vec()))
        .bind(col(rows, |r| r.version.as_bytes().to_vec()))
        .bind(col(rows, |r| r.state.code() as i16))
        .bind(col(rows, |r| r.subject.clone()))
        .bind(text(&|q| Some(q.conversation_id.clone())))
        .bind(text(&|q| Some(q.report_period())))
        .bind(text(&|q| Some(q.model.clone())))
        .bind(text(&|q| Some(q.function.clone())))
        .bind(int(&|q| q.prompt_tokens))
        .bind(int(&|q| q.response_tokens))
        .bind(int(&|q| q.total_tokens))
        .bind(text(&|q| Some(q.cost_usd.to_string())))
        .bind(int(&|q| q.response_time_ms))
        .bind(text(&|q| q.quality_score.map(|s| s.to_string())))
        .bind(int(&|q| q.generated_at.timestamp()))
}

impl BatchEngine for PgStore {
    type Tx = Transaction<'static, Postgres>;

    async fn begin(&self, result: &mut ApplyResult) -> Result<Self::Tx, StoreError> {
        let tx = self.pool().begin().await?;
        result.statements += 1;
        Ok(tx)
    }

    async fn lock_read(
        tx: &mut Self::Tx,
        rows: &StagedRows,
        result: &mut ApplyResult,
    ) -> Result<LedgerRead, StoreError> {
        let found = sqlx::query(read_statement())
            .bind(col(&rows.activity, |r| r.id.to_bytes().to_vec()))
            .bind(col(&rows.llm, |r| r.id.to_bytes().to_vec()))
            .fetch_all(&mut **tx)
            .await?;
        result.statements += 1;
        let mut read = LedgerRead::default();
        decode_into(&found, &mut read)?;
        Ok(read)
    }

    async fn write_plan(
        tx: &mut Self::Tx,
        plan: &Plan<'_>,
        rejects: &[RejectedRecord],
        result: &mut ApplyResult,
    ) -> Result<(), StoreError> {
        let deltas = &plan.reports;
        let text = |f: &dyn Fn(&ReportKey, &ReportSums) -> String| -> Vec<String> {
            deltas.iter().map(|(k, s)| f(k, s)).collect()
        };
        let sums =
            |f: &dyn Fn(&ReportSums) -> i64| -> Vec<i64> { deltas.values().map(f).collect() };
        let models = super::super::reports::model_rows(deltas);
        let functions = super::super::reports::function_rows(deltas);
        let now = super::super::now_text();
        let q: Query<'_> = sqlx::query_as(write_statement());
        let q = bind_activity(q, &plan.activity_new);
        let q = bind_activity(q, &plan.activity_replaced);
        let q = q
            .bind(col(&plan.counts, |(c, _)| c.slack_id.clone()))
            .bind(col(&plan.counts, |(c, _)| c.integration.code()))
            .bind(col(&plan.counts, |(c, _)| i16::from(c.dow)))
            .bind(col(&plan.counts, |(c, _)| i16::from(c.hour)))
            .bind(col(&plan.counts, |(_, d)| *d));
        let q = bind_llm(q, &plan.llm_new);
        let q = bind_llm(q, &plan.llm_replaced);
        let (an, ar, mn, mr) = q
            // Report totals, then the update time.
            .bind(text(&|k, _| k.account_id.clone()))
            .bind(text(&|k, _| k.period.clone()))
            .bind(sums(&|s| s.requests))
            .bind(sums(&|s| s.tokens))
            .bind(text(&|_, s| s.cost_usd.to_string()))
            .bind(sums(&|s| s.response_time_ms))
            .bind(text(&|_, s| s.quality_sum.to_string()))
            .bind(sums(&|s| s.quality_scored))
            .bind(&now)
            // Per-model and per-function report rows.
            .bind(col(&models, |(k, _, _)| k.account_id.clone()))
            .bind(col(&models, |(k, _, _)| k.period.clone()))
            .bind(col(&models, |(_, m, _)| (*m).clone()))
            .bind(col(&models, |(_, _, u)| u.requests))
            .bind(col(&models, |(_, _, u)| u.tokens))
            .bind(col(&models, |(_, _, u)| u.cost_usd.to_string()))
            .bind(col(&functions, |(k, _, _)| k.account_id.clone()))
            .bind(col(&functions, |(k, _, _)| k.period.clone()))
            .bind(col(&functions, |(_, f, _)| (*f).clone()))
            .bind(col(&functions, |(_, _, n)| *n))
            // Quarantined records.
            .bind(col(rejects, |r| r.record_key().to_vec()))
            .bind(col(rejects, |r| r.source.map(|s| s.table_suffix())))
            .bind(col(rejects, |r| r.table.clone()))
            .bind(col(rejects, |r| r.event_id.clone()))
            .bind(col(rejects, |r| r.sequence_number.clone()))
            .bind(col(rejects, |r| r.reason.clone()))
            .bind(col(rejects, |r| r.raw.clone()))
            .bind(vec![now.clone(); rejects.len()])
            .fetch_one(&mut **tx)
            .await?;
        result.statements += 1;
        // Replaced rows were locked by the read: every one must be there.
        for (done, planned) in [
            (ar, plan.activity_replaced.len()),
            (mr, plan.llm_replaced.len()),
            (an, plan.activity_new.len()),
            (mn, plan.llm_new.len()),
        ] {
            if done != planned as i64 {
                return Err(StoreError::Conflict {
                    inserted: done as u64,
                    expected: planned as u64,
                });
            }
        }
        Ok(())
    }

    async fn commit(tx: Self::Tx, result: &mut ApplyResult) -> Result<(), StoreError> {
        super::commit_tx(tx, result).await
    }

    async fn rollback(tx: Self::Tx) {
        super::rollback_tx(tx).await
    }
}
