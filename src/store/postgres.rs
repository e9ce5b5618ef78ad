//! PostgreSQL store (RDS / Aurora PostgreSQL). A batch is one statement per
//! table: the batch arrives as arrays (`UNNEST`, no parameter limit to chunk
//! around), data-modifying CTEs lock the existing ledger rows in identity
//! order (`FOR UPDATE`), move the aggregates (pre-summed, so `ON CONFLICT`
//! touches each key once), and write the ledger. With BEGIN and COMMIT a
//! batch costs 3 to 5 round trips whatever its size.

use super::connect::{self, TlsDecision};
use super::sql::{self, ACTIVITY_COLUMNS, LLM_COLUMNS, WINS};
use super::stage;
use super::{ApplyResult, RejectListing, RejectRow, StoreError, StoreOptions, Totals};
use crate::aggregate::llm_rollup::{ReportKey, ReportSums};
use crate::aggregate::{ActivityRow, LlmRow, StagedRows};
use crate::domain::Identity;
use sqlx::Transaction;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode, Postgres};
use std::collections::BTreeMap;
use std::str::FromStr;

const FLAVOR: super::queries::Flavor = super::queries::Flavor::Postgres;
/// How a batch transaction begins (`None`: the driver default).
const BEGIN: Option<&str> = None;

static MIGRATOR: Migrator = sqlx::migrate!("sql/postgres");

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn open(url: &str, opts: &StoreOptions) -> Result<PgStore, StoreError> {
        let connect_err = |e: sqlx::Error| StoreError::Connect {
            url: super::redact_url(url),
            reason: e.to_string(),
        };
        let mut options = PgConnectOptions::from_str(url).map_err(connect_err)?;
        let mode = connect::query_param(url, &["sslmode", "ssl-mode"]);
        let disabled = matches!(options.get_ssl_mode(), PgSslMode::Disable) && mode.is_some();
        if connect::tls_policy(
            url,
            options.get_host(),
            disabled,
            mode.is_some(),
            opts.allow_plaintext,
        )? == TlsDecision::Require
        {
            options = options.ssl_mode(PgSslMode::Require);
        }
        let pool = PgPoolOptions::new()
            .acquire_timeout(opts.connect_timeout)
            .max_connections(opts.max_connections.max(1))
            .connect_with(options)
            .await
            .map_err(connect_err)?;
        Ok(PgStore { pool })
    }

    super::queries::common_methods!();
    super::reports::report_methods!();
    super::checkpoints::checkpoint_methods!();
    super::bench_baselines::bench_methods!(Postgres);

    /// The bulk-INSERT baseline of `streamfold bench` on this engine.
    pub async fn bulk_insert_baseline(
        &self,
        rows: usize,
        batch: usize,
    ) -> Result<crate::bench::Run, StoreError> {
        stage::bulk_insert_baseline!(
            Postgres,
            &self.pool,
            "CREATE TABLE bench_bulk (id BYTEA NOT NULL PRIMARY KEY, version BYTEA NOT NULL, state SMALLINT NOT NULL, integration CHAR(1) NOT NULL, subject TEXT, dow SMALLINT, hours SMALLINT, event_at BIGINT)",
            rows,
            batch,
            60_000 / 8,
        )
    }
}

/// One statement per table, built from data-modifying CTEs over the batch
/// arrays: lock the existing ledger rows in identity order (`l`), move the
/// aggregates by the deltas computed against that locked pre-image, replace
/// losing ledger rows, insert new ones. It returns how many rows it
/// inserted, how many it expected to, and the identities that lost.
fn fold_statement(ledger: &str, columns: &str, casts: &str, aggregate: Option<&str>) -> String {
    let select_s = columns
        .split(',')
        .map(|c| format!("s.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let counts = aggregate
        .map(|a| format!("counts AS ({a}),"))
        .unwrap_or_default();
    format!(
        "WITH s AS (SELECT * FROM UNNEST({casts}) AS s({columns})),
         l AS (SELECT * FROM {ledger} WHERE id = ANY($1::bytea[]) ORDER BY id FOR UPDATE),
         {counts}
         upd AS (UPDATE {ledger} t SET {assign} FROM s JOIN l ON l.id = s.id
                  WHERE t.id = s.id AND {WINS} RETURNING 1),
         ins AS (INSERT INTO {ledger} ({columns}) SELECT {select_s} FROM s
                  WHERE NOT EXISTS (SELECT 1 FROM l WHERE l.id = s.id) ORDER BY s.id
                  ON CONFLICT (id) DO NOTHING RETURNING 1)
         SELECT (SELECT count(*) FROM ins)::int8,
                (SELECT count(*) FROM s WHERE NOT EXISTS (SELECT 1 FROM l WHERE l.id = s.id))::int8,
                ARRAY(SELECT s.id FROM s JOIN l ON l.id = s.id WHERE NOT {WINS})",
        assign = sql::assignments(columns, ""),
    )
}

/// The `user_event_counts` upsert of the activity fold (a CTE body).
fn activity_counts() -> String {
    format!(
        "INSERT INTO user_event_counts (slack_id, integration, dow, hours, event_count)
         SELECT slack_id, integration, dow, hours, d FROM (
             SELECT slack_id, integration, dow, hours, SUM(d) AS d FROM (
                 SELECT l.subject AS slack_id, l.integration, l.dow, l.hours, -1 AS d
                   FROM s JOIN l ON l.id = s.id WHERE l.state = 1 AND {WINS}
                 UNION ALL
                 SELECT s.subject, s.integration, s.dow, s.hours, 1
                   FROM s LEFT JOIN l ON l.id = s.id WHERE s.state = 1 AND (l.id IS NULL OR {WINS})
             ) x GROUP BY slack_id, integration, dow, hours HAVING SUM(d) <> 0
         ) y ORDER BY slack_id, integration, dow, hours
         ON CONFLICT (slack_id, integration, dow, hours)
         DO UPDATE SET event_count = user_event_counts.event_count + EXCLUDED.event_count
         RETURNING 1"
    )
}

/// Run a fold statement's result through the checks shared with the other
/// dialects: a short insert is a concurrent writer (retry).
fn settle(row: (i64, i64, Vec<Vec<u8>>), result: &mut ApplyResult) -> Result<(), StoreError> {
    let (inserted, expected, lost) = row;
    result
        .unchanged
        .extend(lost.iter().filter_map(|b| Identity::from_bytes(b)));
    if inserted != expected {
        return Err(StoreError::Conflict {
            inserted: inserted as u64,
            expected: expected as u64,
        });
    }
    Ok(())
}

async fn apply_activity(
    tx: &mut Transaction<'static, Postgres>,
    rows: &[ActivityRow],
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    let statement = fold_statement(
        "activity_ledger",
        ACTIVITY_COLUMNS,
        "$1::bytea[], $2::bytea[], $3::int2[], $4::text[], $5::text[], $6::int2[], $7::int2[], $8::int8[]",
        Some(&activity_counts()),
    );
    let row = sqlx::query_as::<_, (i64, i64, Vec<Vec<u8>>)>(&statement)
        .bind(
            rows.iter()
                .map(|r| r.id.to_bytes().to_vec())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.version.as_bytes().to_vec())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.state.code() as i16)
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.integration.code())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.subject.clone()).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.bucket.map(|b| i16::from(b.dow)))
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.bucket.map(|b| i16::from(b.hour)))
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.event_at).collect::<Vec<_>>())
        .fetch_one(&mut **tx)
        .await?;
    result.statements += 1;
    settle(row, result)
}

async fn apply_llm(
    tx: &mut Transaction<'static, Postgres>,
    rows: &[LlmRow],
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    let req = |f: &dyn Fn(&crate::domain::LlmRequest) -> Option<String>| -> Vec<Option<String>> {
        rows.iter()
            .map(|r| r.request.as_ref().and_then(f))
            .collect()
    };
    let int = |f: &dyn Fn(&crate::domain::LlmRequest) -> i64| -> Vec<Option<i64>> {
        rows.iter().map(|r| r.request.as_ref().map(f)).collect()
    };
    // Lock the existing rows and read what they count, for the rollup.
    let ids: Vec<Vec<u8>> = rows.iter().map(|r| r.id.to_bytes().to_vec()).collect();
    let found = sqlx::query(&format!(
        "{} FOR UPDATE",
        FLAVOR.existing_llm("SELECT UNNEST($1::bytea[])")
    ))
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?;
    result.statements += 1;
    let found = found
        .iter()
        .map(super::rows::llm_row)
        .collect::<Result<Vec<_>, _>>()?;
    let (_, contributions) = super::rows::llm_existing(&found);
    let deltas = crate::aggregate::llm_rollup::report_deltas(rows, &contributions)?;
    let statement = fold_statement(
        "llm_ledger",
        LLM_COLUMNS,
        "$1::bytea[], $2::bytea[], $3::int2[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
         $9::int8[], $10::int8[], $11::int8[], $12::text[]::numeric[], $13::int8[], $14::text[]::numeric[], $15::int8[]",
        None,
    );
    let row = sqlx::query_as::<_, (i64, i64, Vec<Vec<u8>>)>(&statement)
        .bind(
            rows.iter()
                .map(|r| r.id.to_bytes().to_vec())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.version.as_bytes().to_vec())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.state.code() as i16)
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.subject.clone()).collect::<Vec<_>>())
        .bind(req(&|q| Some(q.conversation_id.clone())))
        .bind(req(&|q| Some(q.report_period())))
        .bind(req(&|q| Some(q.model.clone())))
        .bind(req(&|q| Some(q.function.clone())))
        .bind(int(&|q| q.prompt_tokens))
        .bind(int(&|q| q.response_tokens))
        .bind(int(&|q| q.total_tokens))
        .bind(req(&|q| Some(q.cost_usd.to_string())))
        .bind(int(&|q| q.response_time_ms))
        .bind(req(&|q| q.quality_score.map(|s| s.to_string())))
        .bind(int(&|q| q.generated_at.timestamp()))
        .fetch_one(&mut **tx)
        .await?;
    result.statements += 1;
    settle(row, result)?;
    if !deltas.is_empty() {
        apply_reports(tx, &deltas, result).await?;
        result.reports_changed += deltas.len();
    }
    Ok(())
}

/// Move the LLM reports by a batch's deltas, added in SQL on exact NUMERIC
/// columns, keys in order: one statement per table.
async fn apply_reports(
    tx: &mut Transaction<'static, Postgres>,
    deltas: &BTreeMap<ReportKey, ReportSums>,
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    let text = |f: &dyn Fn(&ReportKey, &ReportSums) -> String| -> Vec<String> {
        deltas.iter().map(|(k, s)| f(k, s)).collect()
    };
    let int = |f: &dyn Fn(&ReportSums) -> i64| -> Vec<i64> { deltas.values().map(f).collect() };
    sqlx::query(&format!(
        "INSERT INTO llm_reports ({})
         SELECT a, p, r, t, c, rt, qs, qn, 1, 1, $9
           FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::text[]::numeric[],
                       $6::int8[], $7::text[]::numeric[], $8::int8[]) AS u(a, p, r, t, c, rt, qs, qn)
          ORDER BY a, p
         ON CONFLICT (account_id, report_period) DO UPDATE SET
           total_requests = llm_reports.total_requests + EXCLUDED.total_requests,
           total_tokens = llm_reports.total_tokens + EXCLUDED.total_tokens,
           total_cost_usd = llm_reports.total_cost_usd + EXCLUDED.total_cost_usd,
           response_time_ms_sum = llm_reports.response_time_ms_sum + EXCLUDED.response_time_ms_sum,
           quality_score_sum = llm_reports.quality_score_sum + EXCLUDED.quality_score_sum,
           quality_scored = llm_reports.quality_scored + EXCLUDED.quality_scored,
           revision = llm_reports.revision + 1, pending = 1, updated_at = EXCLUDED.updated_at",
        super::reports::TOTALS_COLUMNS
    ))
    .bind(text(&|k, _| k.account_id.clone()))
    .bind(text(&|k, _| k.period.clone()))
    .bind(int(&|s| s.requests))
    .bind(int(&|s| s.tokens))
    .bind(text(&|_, s| s.cost_usd.to_string()))
    .bind(int(&|s| s.response_time_ms))
    .bind(text(&|_, s| s.quality_sum.to_string()))
    .bind(int(&|s| s.quality_scored))
    .bind(super::now_text())
    .execute(&mut **tx)
    .await?;
    result.statements += 1;
    let models = super::reports::model_rows(deltas);
    if !models.is_empty() {
        sqlx::query(
            "INSERT INTO llm_report_models (account_id, report_period, model, requests, tokens, cost_usd)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[]::numeric[])
              ORDER BY 1, 2, 3
             ON CONFLICT (account_id, report_period, model) DO UPDATE SET
               requests = llm_report_models.requests + EXCLUDED.requests,
               tokens = llm_report_models.tokens + EXCLUDED.tokens,
               cost_usd = llm_report_models.cost_usd + EXCLUDED.cost_usd",
        )
        .bind(models.iter().map(|(k, _, _)| k.account_id.clone()).collect::<Vec<_>>())
        .bind(models.iter().map(|(k, _, _)| k.period.clone()).collect::<Vec<_>>())
        .bind(models.iter().map(|(_, m, _)| (*m).clone()).collect::<Vec<_>>())
        .bind(models.iter().map(|(_, _, u)| u.requests).collect::<Vec<_>>())
        .bind(models.iter().map(|(_, _, u)| u.tokens).collect::<Vec<_>>())
        .bind(models.iter().map(|(_, _, u)| u.cost_usd.to_string()).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
        result.statements += 1;
    }
    let functions = super::reports::function_rows(deltas);
    if !functions.is_empty() {
        sqlx::query(
            "INSERT INTO llm_report_functions (account_id, report_period, function_name, requests)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[])
              ORDER BY 1, 2, 3
             ON CONFLICT (account_id, report_period, function_name) DO UPDATE SET
               requests = llm_report_functions.requests + EXCLUDED.requests",
        )
        .bind(
            functions
                .iter()
                .map(|(k, _, _)| k.account_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            functions
                .iter()
                .map(|(k, _, _)| k.period.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            functions
                .iter()
                .map(|(_, f, _)| (*f).clone())
                .collect::<Vec<_>>(),
        )
        .bind(functions.iter().map(|(_, _, n)| *n).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
        result.statements += 1;
    }
    Ok(())
}

async fn insert_rejects(
    tx: &mut Transaction<'static, Postgres>,
    rejects: &[RejectRow],
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    let now = super::now_text();
    sqlx::query(&format!(
        "INSERT INTO rejected_records ({})
         SELECT * FROM UNNEST($1::bytea[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
         ON CONFLICT (record_key) DO NOTHING",
        super::REJECT_COLUMNS
    ))
    .bind(rejects.iter().map(|r| r.record_key().to_vec()).collect::<Vec<_>>())
    .bind(rejects.iter().map(|r| r.source.map(|s| s.table_suffix())).collect::<Vec<_>>())
    .bind(rejects.iter().map(|r| r.table.clone()).collect::<Vec<_>>())
    .bind(rejects.iter().map(|r| r.event_id.clone()).collect::<Vec<_>>())
    .bind(rejects.iter().map(|r| r.sequence_number.clone()).collect::<Vec<_>>())
    .bind(rejects.iter().map(|r| r.reason.clone()).collect::<Vec<_>>())
    .bind(rejects.iter().map(|r| r.raw.clone()).collect::<Vec<_>>())
    .bind(vec![now; rejects.len()])
    .execute(&mut **tx)
    .await?;
    result.statements += 1;
    Ok(())
}
