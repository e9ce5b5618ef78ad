//! PostgreSQL store (RDS / Aurora PostgreSQL). A batch is one statement:
//! the batch arrives as arrays (`UNNEST`, no parameter limit to chunk
//! around), and data-modifying CTEs lock the existing ledger rows in
//! identity order (`FOR UPDATE`), move the aggregates (pre-summed, so
//! `ON CONFLICT` touches each key once), write both ledgers, move the LLM
//! reports and quarantine the rejects. Only the LLM report deltas need a
//! read first (the rollup runs in Rust on exact decimals), so with BEGIN
//! and COMMIT a batch costs 3 round trips, or 4 when it has LLM records,
//! whatever its size.

use super::connect::{self, TlsMode};
use super::dialect::{Dialect, Flavor};
use super::exec::{Bind, EachRow, Engine, Sql, bound};
use super::sql::{self, ACTIVITY_COLUMNS, LLM_COLUMNS};
use super::{ApplyResult, RejectedRecord, StoreError, StoreOptions};
use crate::aggregate::llm_rollup::{ReportKey, ReportSums};
use crate::aggregate::{LlmRow, StagedRows};
use crate::domain::Identity;
use futures::TryStreamExt as _;
use sqlx::Transaction;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode, Postgres};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::OnceLock;

static MIGRATOR: Migrator = sqlx::migrate!("sql/postgres");

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn open(url: &str, opts: &StoreOptions) -> Result<PgStore, StoreError> {
        let connect_err = |e: sqlx::Error| StoreError::Connect {
            url: crate::redact::redact_url(url),
            reason: crate::redact::scrub(&e.to_string(), url),
        };
        let mut options = PgConnectOptions::from_str(url).map_err(connect_err)?;
        // The driver also takes the mode from PGSSLMODE: that names one too.
        let named = (connect::query_param(url, &["sslmode", "ssl-mode"]).is_some()
            || std::env::var_os("PGSSLMODE").is_some())
        .then(|| tls_mode_of(options.get_ssl_mode()));
        if let Some(mode) =
            connect::tls_policy(url, options.get_host(), named, opts.tls_allowances())?
        {
            options = options.ssl_mode(pg_ssl_mode(mode));
        }
        if let Some(ca) = &opts.ca_file
            && connect::query_param(url, &["sslrootcert"]).is_none()
            && std::env::var_os("PGSSLROOTCERT").is_none()
        {
            connect::check_ca_file(url, ca)?;
            options = options.ssl_root_cert(ca);
        }
        let host = options.get_host().to_string();
        let at = (
            host.as_str(),
            options.get_port(),
            options.get_socket().is_some(),
        );
        let pool = connect::unless_refused(
            url,
            at,
            PgPoolOptions::new()
                .acquire_timeout(opts.connect_timeout)
                .max_connections(opts.max_connections.max(1))
                .connect_with(options),
        )
        .await?;
        Ok(PgStore { pool })
    }

    /// The connection pool, for tools that run their own statements
    /// (`streamfold bench` baselines, tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// One attempt at applying a batch, in one transaction: the horizon
    /// guard, then the dialect's batch steps.
    pub async fn apply_once(
        &self,
        rows: &StagedRows,
        rejects: &[RejectedRecord],
        horizon: Option<i64>,
    ) -> Result<ApplyResult, StoreError> {
        let mut result = ApplyResult::default();
        let mut tx = match PgDialect::BEGIN {
            Some(statement) => self.pool.begin_with(statement).await?,
            None => self.pool.begin().await?,
        };
        result.statements += 1;
        let kept = match horizon {
            Some(h) => super::compaction::horizon_guard!(PgDialect, &mut tx, rows, h, result),
            None => None,
        };
        let rows = kept.as_ref().unwrap_or(rows);
        PgDialect::apply_steps(&mut tx, rows, rejects, &mut result).await?;
        tx.commit().await?;
        result.statements += 1;
        Ok(result)
    }
}

impl Sql for &PgPool {
    async fn run(&mut self, sql: &str, binds: &[Bind]) -> Result<u64, StoreError> {
        Ok(bound::<Postgres>(sql, binds)
            .execute(*self)
            .await?
            .rows_affected())
    }

    async fn each(
        &mut self,
        sql: &str,
        binds: &[Bind],
        row: &mut EachRow<'_>,
    ) -> Result<(), StoreError> {
        let mut rows = bound::<Postgres>(sql, binds).fetch(*self);
        while let Some(r) = rows.try_next().await? {
            row(&r)?;
        }
        Ok(())
    }
}

impl Sql for Transaction<'_, Postgres> {
    async fn run(&mut self, sql: &str, binds: &[Bind]) -> Result<u64, StoreError> {
        Ok(bound::<Postgres>(sql, binds)
            .execute(&mut **self)
            .await?
            .rows_affected())
    }

    async fn each(
        &mut self,
        sql: &str,
        binds: &[Bind],
        row: &mut EachRow<'_>,
    ) -> Result<(), StoreError> {
        let mut rows = bound::<Postgres>(sql, binds).fetch(&mut **self);
        while let Some(r) = rows.try_next().await? {
            row(&r)?;
        }
        Ok(())
    }
}

impl Engine for PgStore {
    const FLAVOR: Flavor = PgDialect::FLAVOR;
    type Pool<'p> = &'p PgPool;
    type Tx = Transaction<'static, Postgres>;

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin(&self) -> Result<Self::Tx, StoreError> {
        Ok(match PgDialect::BEGIN {
            Some(statement) => self.pool.begin_with(statement).await?,
            None => self.pool.begin().await?,
        })
    }

    async fn commit(tx: Self::Tx) -> Result<(), StoreError> {
        Ok(tx.commit().await?)
    }

    async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        PgDialect::migrate(&self.pool).await
    }

    async fn pending_migrations(&self) -> Result<usize, StoreError> {
        Ok(super::pending_migrations(PgDialect::migrator(), &self.pool).await)
    }

    async fn apply_once(
        &self,
        rows: &StagedRows,
        rejects: &[RejectedRecord],
        horizon: Option<i64>,
    ) -> Result<ApplyResult, StoreError> {
        PgStore::apply_once(self, rows, rejects, horizon).await
    }

    async fn close(&self) {
        self.pool.close().await
    }
}

/// The PostgreSQL dialect: the whole batch as arrays in one statement.
pub struct PgDialect;

impl Dialect for PgDialect {
    type Db = Postgres;
    const FLAVOR: Flavor = Flavor::Postgres;
    const BEGIN: Option<&'static str> = None;

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    /// sqlx's migrator, which locks the database while it runs.
    async fn migrate(pool: &sqlx::Pool<sqlx::Postgres>) -> Result<Vec<i64>, StoreError> {
        super::run_migrations(Self::migrator(), pool).await
    }

    async fn apply_steps(
        tx: &mut Transaction<'static, Postgres>,
        rows: &StagedRows,
        rejects: &[RejectedRecord],
        result: &mut ApplyResult,
    ) -> Result<(), StoreError> {
        apply_steps(tx, rows, rejects, result).await
    }
}

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

/// The CTEs that fold one ledger, named with `p`: the staged rows (`{p}s`),
/// the existing rows locked in identity order (`{p}l`), the aggregate move
/// computed against that locked pre-image (`{p}counts`, optional), the
/// replaced losing rows (`{p}upd`) and the inserted new ones (`{p}ins`).
fn fold_ctes(p: &str, ledger: &str, columns: &str, first: usize, types: &[&str]) -> String {
    let select_s = columns
        .split(',')
        .map(|c| format!("s.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{p}s AS (SELECT * FROM UNNEST({casts}) AS s({columns})),
         {p}l AS (SELECT * FROM {ledger} WHERE id = ANY(${first}::bytea[]) ORDER BY id FOR UPDATE),
         {p}upd AS (UPDATE {ledger} t SET {assign} FROM {p}s s JOIN {p}l l ON l.id = s.id
                  WHERE t.id = s.id AND {wins} RETURNING 1),
         {p}ins AS (INSERT INTO {ledger} ({columns}) SELECT {select_s} FROM {p}s s
                  WHERE NOT EXISTS (SELECT 1 FROM {p}l l WHERE l.id = s.id) ORDER BY s.id
                  ON CONFLICT (id) DO NOTHING RETURNING 1)",
        casts = params(first, types),
        assign = sql::assignments(columns, ""),
        wins = sql::wins("s", "l"),
    )
}

/// What the statement returns per ledger: rows inserted, rows it expected
/// to insert, and the identities that lost to the ledger.
fn fold_results(p: &str) -> String {
    format!(
        "(SELECT count(*) FROM {p}ins)::int8,
         (SELECT count(*) FROM {p}s s WHERE NOT EXISTS (SELECT 1 FROM {p}l l WHERE l.id = s.id))::int8,
         ARRAY(SELECT s.id FROM {p}s s JOIN {p}l l ON l.id = s.id WHERE NOT {wins})",
        wins = sql::wins("s", "l"),
    )
}

/// The `user_event_counts` move of the activity fold (a CTE), computed by
/// the rule every dialect shares against the locked pre-image `a_l`.
fn activity_counts() -> String {
    format!(
        "a_counts AS (INSERT INTO user_event_counts (slack_id, integration, dow, hours, event_count)
         SELECT slack_id, integration, dow, hours, d FROM ({}) y
          ORDER BY slack_id, integration, dow, hours
         ON CONFLICT (slack_id, integration, dow, hours)
         DO UPDATE SET event_count = user_event_counts.event_count + EXCLUDED.event_count
         RETURNING 1)",
        sql::summed_activity_deltas("a_s", "a_l")
    )
}

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
        totals = super::reports::TOTALS_COLUMNS,
        report = params(first, &REPORT_TYPES),
        now = first + REPORT_TYPES.len(),
        model = params(models, &MODEL_TYPES),
        function = params(functions, &FUNCTION_TYPES),
    )
}

/// The whole batch in one statement; parameters in the order of
/// `apply_steps`' binds.
fn batch_statement() -> &'static str {
    static STATEMENT: OnceLock<String> = OnceLock::new();
    STATEMENT.get_or_init(|| {
        let llm = 1 + ACTIVITY_TYPES.len();
        let reports = llm + LLM_TYPES.len();
        let rejects = reports + REPORT_TYPES.len() + 1 + MODEL_TYPES.len() + FUNCTION_TYPES.len();
        format!(
            "WITH {activity}, {counts}, {ledger}, {reports},
             q AS (INSERT INTO rejected_records ({reject_columns})
                   SELECT * FROM UNNEST({reject}) ON CONFLICT (record_key) DO NOTHING RETURNING 1)
             SELECT {activity_results}, {llm_results}, (SELECT count(*) FROM m_l)::int8",
            activity = fold_ctes(
                "a_",
                "activity_ledger",
                ACTIVITY_COLUMNS,
                1,
                &ACTIVITY_TYPES
            ),
            counts = activity_counts(),
            ledger = fold_ctes("m_", "llm_ledger", LLM_COLUMNS, llm, &LLM_TYPES),
            reports = report_ctes(reports),
            reject_columns = super::REJECT_COLUMNS,
            reject = params(rejects, &REJECT_TYPES),
            activity_results = fold_results("a_"),
            llm_results = fold_results("m_"),
        )
    })
}

/// Run a fold's result through the checks shared with the other dialects:
/// a short insert is a concurrent writer (retry).
fn settle(
    inserted: i64,
    expected: i64,
    lost: Vec<Vec<u8>>,
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
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

/// Lock the batch's existing LLM ledger rows and compute the report deltas
/// from what they count (the rollup runs in Rust, on exact decimals).
/// Returns the deltas and how many ledger rows they were computed against.
async fn llm_deltas(
    tx: &mut Transaction<'static, Postgres>,
    rows: &[LlmRow],
    result: &mut ApplyResult,
) -> Result<(BTreeMap<ReportKey, ReportSums>, i64), StoreError> {
    let ids: Vec<Vec<u8>> = rows.iter().map(|r| r.id.to_bytes().to_vec()).collect();
    let found = sqlx::query(&format!(
        "{} FOR UPDATE",
        super::queries::existing_llm(Flavor::Postgres, "SELECT UNNEST($1::bytea[])")
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
    Ok((deltas, found.len() as i64))
}

/// One column of the batch, as a bound array.
fn col<T, U>(rows: &[T], f: impl Fn(&T) -> U) -> Vec<U> {
    rows.iter().map(f).collect()
}

type FoldRow = (i64, i64, Vec<Vec<u8>>, i64, i64, Vec<Vec<u8>>, i64);

async fn apply_steps(
    tx: &mut Transaction<'static, Postgres>,
    rows: &StagedRows,
    rejects: &[RejectedRecord],
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    let (deltas, llm_seen) = if rows.llm.is_empty() {
        (BTreeMap::new(), 0)
    } else {
        llm_deltas(tx, &rows.llm, result).await?
    };
    if rows.activity.is_empty() && rows.llm.is_empty() && rejects.is_empty() {
        return Ok(());
    }
    let act = &rows.activity;
    let llm = &rows.llm;
    let req = |f: &dyn Fn(&crate::domain::LlmRequest) -> Option<String>| -> Vec<Option<String>> {
        llm.iter().map(|r| r.request.as_ref().and_then(f)).collect()
    };
    let int = |f: &dyn Fn(&crate::domain::LlmRequest) -> i64| -> Vec<Option<i64>> {
        llm.iter().map(|r| r.request.as_ref().map(f)).collect()
    };
    let text = |f: &dyn Fn(&ReportKey, &ReportSums) -> String| -> Vec<String> {
        deltas.iter().map(|(k, s)| f(k, s)).collect()
    };
    let sums = |f: &dyn Fn(&ReportSums) -> i64| -> Vec<i64> { deltas.values().map(f).collect() };
    let models = super::reports::model_rows(&deltas);
    let functions = super::reports::function_rows(&deltas);
    let now = super::now_text();
    let row: FoldRow = sqlx::query_as(batch_statement())
        // Activity ledger.
        .bind(col(act, |r| r.id.to_bytes().to_vec()))
        .bind(col(act, |r| r.version.as_bytes().to_vec()))
        .bind(col(act, |r| r.state.code() as i16))
        .bind(col(act, |r| r.integration.code()))
        .bind(col(act, |r| r.subject.clone()))
        .bind(col(act, |r| r.bucket.map(|b| i16::from(b.dow))))
        .bind(col(act, |r| r.bucket.map(|b| i16::from(b.hour))))
        .bind(col(act, |r| r.event_at))
        // LLM ledger.
        .bind(col(llm, |r| r.id.to_bytes().to_vec()))
        .bind(col(llm, |r| r.version.as_bytes().to_vec()))
        .bind(col(llm, |r| r.state.code() as i16))
        .bind(col(llm, |r| r.subject.clone()))
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
    let (a_inserted, a_expected, a_lost, m_inserted, m_expected, m_lost, m_locked) = row;
    // The report deltas were computed against the LLM rows the first read
    // found. Those stay locked, but under READ COMMITTED this statement has
    // a newer snapshot: if a concurrent writer committed a new identity of
    // this batch in between, the statement sees (and locks) more rows than
    // the deltas assumed, and would count that request twice. Retry.
    if m_locked != llm_seen {
        return Err(StoreError::LlmRace {
            seen: llm_seen,
            now: m_locked,
        });
    }
    settle(a_inserted, a_expected, a_lost, result)?;
    settle(m_inserted, m_expected, m_lost, result)?;
    result.reports_changed += deltas.len();
    Ok(())
}

/// The driver's mode in the policy's terms.
fn tls_mode_of(mode: PgSslMode) -> TlsMode {
    match mode {
        PgSslMode::Disable => TlsMode::Disable,
        PgSslMode::Allow => TlsMode::Allow,
        PgSslMode::Prefer => TlsMode::Prefer,
        PgSslMode::Require => TlsMode::Require,
        PgSslMode::VerifyCa => TlsMode::VerifyCa,
        PgSslMode::VerifyFull => TlsMode::VerifyFull,
    }
}

/// The policy's mode in the driver's terms.
fn pg_ssl_mode(mode: TlsMode) -> PgSslMode {
    match mode {
        TlsMode::Disable => PgSslMode::Disable,
        TlsMode::Allow => PgSslMode::Allow,
        TlsMode::Prefer => PgSslMode::Prefer,
        TlsMode::Require => PgSslMode::Require,
        TlsMode::VerifyCa => PgSslMode::VerifyCa,
        TlsMode::VerifyFull => PgSslMode::VerifyFull,
    }
}
