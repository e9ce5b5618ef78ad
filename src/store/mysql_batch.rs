//! The MySQL / MariaDB batch in a constant number of round trips.
//!
//! A batch's rows travel as JSON documents bound to session variables
//! (`SET @sf_… = ?`, one prepared statement), and every statement that
//! needs them reads them with `JSON_TABLE` inside multi-statement text
//! queries (the driver negotiates `CLIENT_MULTI_STATEMENTS`). A batch is:
//!
//! 1. `BEGIN`;
//! 2. `SET` of the batch's rows (and its quarantined records);
//! 3. fill the staging tables from them, then read the existing ledger rows
//!    `FOR UPDATE`, in identity order (one multi-statement);
//! 4. `SET` of the LLM report deltas computed from what step 3 read (only
//!    when the batch moves a report);
//! 5. move `user_event_counts`, replace and insert ledger rows, move the
//!    reports, quarantine, release the variables (one multi-statement; the
//!    inserted row counts are checked against what step 3 saw);
//! 6. `COMMIT`.
//!
//! Six round trips whatever the batch size, unless one `SET` would exceed
//! `PACKET_BUDGET` (very wide rows): the documents are then cut into several
//! variables and sent by as many `SET`s. Values travel as JSON strings where
//! exactness matters (decimals) and as base64 for bytes; a missing key is
//! SQL NULL. `JSON_TABLE` needs MariaDB ≥ 10.6 or MySQL ≥ 8.0.4.

use super::sql::{self, ACTIVITY_COLUMNS, LLM_COLUMNS};
use super::{ApplyResult, RejectedRecord, StoreError};
use crate::aggregate::llm_rollup::{ReportKey, ReportSums};
use crate::aggregate::{ActivityRow, LlmRow, StagedRows};
use base64::Engine as _;
use futures::TryStreamExt;
use serde::Serialize;
use sqlx::mysql::{MySql, MySqlRow};
use sqlx::{Either, Executor, Transaction};
use std::collections::BTreeMap;

/// Largest `SET` statement sent at once. MariaDB's default
/// `max_allowed_packet` is 16 MiB and MySQL 8's 64 MiB.
pub const PACKET_BUDGET: usize = 4 << 20;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[derive(Serialize)]
struct ActivityJson<'a> {
    i: String,
    v: String,
    s: i64,
    g: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    u: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    d: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    h: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    t: Option<i64>,
}

fn activity_json(r: &ActivityRow) -> ActivityJson<'_> {
    ActivityJson {
        i: b64(&r.id.to_bytes()),
        v: b64(r.version.as_bytes()),
        s: r.state.code(),
        g: r.integration.code(),
        u: r.subject.as_deref(),
        d: r.bucket.map(|b| b.dow),
        h: r.bucket.map(|b| b.hour),
        t: r.event_at,
    }
}

#[derive(Serialize, Default)]
struct LlmJson<'a> {
    i: String,
    v: String,
    s: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    u: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    c: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    m: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    f: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pt: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rt: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tt: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cu: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    q: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    t: Option<i64>,
}

fn llm_json(r: &LlmRow) -> LlmJson<'_> {
    let mut j = LlmJson {
        i: b64(&r.id.to_bytes()),
        v: b64(r.version.as_bytes()),
        s: r.state.code(),
        u: r.subject.as_deref(),
        ..LlmJson::default()
    };
    if let Some(q) = &r.request {
        j.c = Some(&q.conversation_id);
        j.p = Some(q.report_period());
        j.m = Some(&q.model);
        j.f = Some(&q.function);
        j.pt = Some(q.prompt_tokens);
        j.rt = Some(q.response_tokens);
        j.tt = Some(q.total_tokens);
        j.cu = Some(q.cost_usd.to_string());
        j.ms = Some(q.response_time_ms);
        j.q = q.quality_score.map(|s| s.to_string());
        j.t = Some(q.generated_at.timestamp());
    }
    j
}

#[derive(Serialize)]
struct RejectJson<'a> {
    k: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    o: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    t: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<&'a str>,
    r: &'a str,
    w: &'a str,
}

fn reject_json(r: &RejectedRecord) -> RejectJson<'_> {
    RejectJson {
        k: b64(&r.record_key()),
        o: r.source.map(|s| s.table_suffix()),
        t: r.table.as_deref(),
        e: r.event_id.as_deref(),
        n: r.sequence_number.as_deref(),
        r: &r.reason,
        w: &r.raw,
    }
}

/// JSON arrays of `items`, each at most `budget` bytes unless one item alone
/// is larger.
fn json_arrays<T: Serialize>(
    items: impl Iterator<Item = T>,
    budget: usize,
) -> Result<Vec<String>, StoreError> {
    let mut arrays = Vec::new();
    let mut current = String::from("[");
    for item in items {
        let text = serde_json::to_string(&item).map_err(|e| StoreError::Value(e.to_string()))?;
        if current.len() > 1 && current.len() + text.len() + 2 > budget {
            current.push(']');
            arrays.push(std::mem::replace(&mut current, String::from("[")));
        }
        if current.len() > 1 {
            current.push(',');
        }
        current.push_str(&text);
    }
    if current.len() > 1 {
        current.push(']');
        arrays.push(current);
    }
    Ok(arrays)
}

/// Session variables holding one step's documents, sent by as few `SET`s as
/// `PACKET_BUDGET` allows.
#[derive(Default)]
struct Variables {
    /// `(name, document)`.
    set: Vec<(String, String)>,
}

impl Variables {
    /// Bind `arrays` to `@sf_<prefix><n>`; returns the variables' names.
    fn add(&mut self, prefix: &str, arrays: Vec<String>) -> Vec<String> {
        arrays
            .into_iter()
            .enumerate()
            .map(|(n, doc)| {
                let name = format!("@sf_{prefix}{n}");
                self.set.push((name.clone(), doc));
                name
            })
            .collect()
    }

    /// Send the variables; one round trip per `PACKET_BUDGET`.
    async fn send(
        &self,
        tx: &mut Transaction<'static, MySql>,
        result: &mut ApplyResult,
    ) -> Result<(), StoreError> {
        let mut group: Vec<&(String, String)> = Vec::new();
        let mut bytes = 0;
        for (i, var) in self.set.iter().enumerate() {
            bytes += var.1.len();
            group.push(var);
            let next = self.set.get(i + 1).map_or(usize::MAX, |v| v.1.len());
            if bytes.saturating_add(next) > PACKET_BUDGET {
                send_set(tx, &group, result).await?;
                group.clear();
                bytes = 0;
            }
        }
        Ok(())
    }

    /// `SET @a = NULL, …`: releases the documents' server memory.
    fn release(&self) -> Option<String> {
        (!self.set.is_empty()).then(|| {
            let names: Vec<String> = self
                .set
                .iter()
                .map(|(n, _)| format!("{n} = NULL"))
                .collect();
            format!("SET {}", names.join(", "))
        })
    }
}

async fn send_set(
    tx: &mut Transaction<'static, MySql>,
    group: &[&(String, String)],
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    let names: Vec<String> = group.iter().map(|(n, _)| format!("{n} = ?")).collect();
    let text = format!("SET {}", names.join(", "));
    let mut q = sqlx::query(&text);
    for (_, doc) in group {
        q = q.bind(doc.as_str());
    }
    q.execute(&mut **tx).await?;
    result.statements += 1;
    Ok(())
}

/// One statement's outcome within a multi-statement query.
#[derive(Default)]
struct Outcome {
    rows_affected: u64,
    rows: Vec<MySqlRow>,
}

/// Run `statements` as one multi-statement text query (one round trip);
/// one outcome per statement, in order.
async fn multi(
    tx: &mut Transaction<'static, MySql>,
    statements: &[String],
    result: &mut ApplyResult,
) -> Result<Vec<Outcome>, StoreError> {
    if statements.is_empty() {
        return Ok(Vec::new());
    }
    let text = statements.join(";\n");
    let mut outcomes = Vec::with_capacity(statements.len());
    let mut current = Outcome::default();
    {
        let mut stream = (&mut **tx).fetch_many(text.as_str());
        while let Some(step) = stream.try_next().await? {
            match step {
                Either::Left(done) => {
                    current.rows_affected = done.rows_affected();
                    outcomes.push(std::mem::take(&mut current));
                }
                Either::Right(row) => current.rows.push(row),
            }
        }
    }
    result.statements += 1;
    if outcomes.len() != statements.len() {
        return Err(StoreError::Protocol(format!(
            "multi-statement query returned {} results for {} statements",
            outcomes.len(),
            statements.len()
        )));
    }
    Ok(outcomes)
}

const ACTIVITY_TABLE: &str = "i VARCHAR(32) PATH '$.i', v VARCHAR(32) PATH '$.v', s INT PATH '$.s',
    g VARCHAR(4) PATH '$.g', u VARCHAR(1024) PATH '$.u', d INT PATH '$.d', h INT PATH '$.h',
    t BIGINT PATH '$.t'";

const LLM_TABLE: &str = "i VARCHAR(32) PATH '$.i', v VARCHAR(32) PATH '$.v', s INT PATH '$.s',
    u VARCHAR(1024) PATH '$.u', c VARCHAR(1024) PATH '$.c', p VARCHAR(16) PATH '$.p',
    m VARCHAR(1024) PATH '$.m', f VARCHAR(1024) PATH '$.f', pt BIGINT PATH '$.pt',
    rt BIGINT PATH '$.rt', tt BIGINT PATH '$.tt', cu VARCHAR(128) PATH '$.cu',
    ms BIGINT PATH '$.ms', q VARCHAR(128) PATH '$.q', t BIGINT PATH '$.t'";

fn fill(table: &str, columns: &str, select: &str, json_columns: &str, var: &str) -> String {
    format!(
        "INSERT INTO {table} ({columns}) SELECT {select}
           FROM JSON_TABLE({var}, '$[*]' COLUMNS ({json_columns})) AS j"
    )
}

/// The ledger rows that lose to their staged row, replaced.
fn ledger_update(ledger: &str, stage: &str, columns: &str) -> String {
    format!(
        "UPDATE {ledger} l JOIN {stage} s ON l.id = s.id SET {} WHERE {}",
        sql::assignments(columns, "l."),
        sql::wins("s", "l")
    )
}

/// `user_event_counts` moved by the pre-summed deltas (no `AS new` alias:
/// MariaDB lacks it; the derived table's column is referenced instead).
fn activity_delta() -> String {
    format!(
        "INSERT INTO user_event_counts (slack_id, integration, dow, hours, event_count)
         SELECT y.slack_id, y.integration, y.dow, y.hours, y.d FROM ({}) y
          ORDER BY y.slack_id, y.integration, y.dow, y.hours
         ON DUPLICATE KEY UPDATE event_count = event_count + y.d",
        sql::summed_activity_deltas("stage_activity", "activity_ledger")
    )
}

/// Apply one batch inside `tx` (see the module doc for the round trips).
pub async fn apply(
    tx: &mut Transaction<'static, MySql>,
    rows: &StagedRows,
    rejects: &[RejectedRecord],
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    if rows.activity.is_empty() && rows.llm.is_empty() && rejects.is_empty() {
        return Ok(());
    }
    let mut vars = Variables::default();
    let act_vars = vars.add(
        "a",
        json_arrays(rows.activity.iter().map(activity_json), PACKET_BUDGET)?,
    );
    let llm_vars = vars.add(
        "l",
        json_arrays(rows.llm.iter().map(llm_json), PACKET_BUDGET)?,
    );
    let rej_vars = vars.add(
        "r",
        json_arrays(rejects.iter().map(reject_json), PACKET_BUDGET)?,
    );
    let now = super::now_text();
    vars.set.push(("@sf_now".into(), now));
    vars.send(tx, result).await?;

    // Step 3: stage, then read under lock.
    let mut reads = Vec::new();
    let (mut act_select, mut llm_select) = (None, None);
    if !rows.activity.is_empty() {
        reads.push("DELETE FROM stage_activity".to_string());
        for v in &act_vars {
            reads.push(fill(
                "stage_activity",
                ACTIVITY_COLUMNS,
                "FROM_BASE64(j.i), FROM_BASE64(j.v), j.s, j.g, j.u, j.d, j.h, j.t",
                ACTIVITY_TABLE,
                v,
            ));
        }
        act_select = Some(reads.len());
        reads.push(format!(
            "{} FOR UPDATE",
            sql::existing("activity_ledger", "stage_activity", "SIGNED")
        ));
    }
    if !rows.llm.is_empty() {
        reads.push("DELETE FROM stage_llm".to_string());
        for v in &llm_vars {
            reads.push(fill(
                "stage_llm",
                LLM_COLUMNS,
                "FROM_BASE64(j.i), FROM_BASE64(j.v), j.s, j.u, j.c, j.p, j.m, j.f, j.pt, j.rt,
                 j.tt, j.cu, j.ms, j.q, j.t",
                LLM_TABLE,
                v,
            ));
        }
        llm_select = Some(reads.len());
        reads.push(format!(
            "{} FOR UPDATE",
            super::queries::existing_llm(super::dialect::Flavor::MySql, "SELECT id FROM stage_llm")
        ));
    }
    let mut read = multi(tx, &reads, result).await?;
    let mut take = |at: Option<usize>| {
        at.map(|i| std::mem::take(&mut read[i].rows))
            .unwrap_or_default()
    };
    let act_found = take(act_select);
    let llm_found = take(llm_select);

    // Judge, and compute the report deltas from what the lock read.
    let mut writes = Vec::new();
    let mut checked = Vec::new();
    if !rows.activity.is_empty() {
        let found = super::rows::existing(&act_found, "ledger")?;
        let expected_new = super::judge(
            rows.activity.iter().map(|r| (r.id, &r.version, r.state)),
            &found,
            &mut result.unchanged,
        );
        writes.push(activity_delta());
        ledger_writes(
            &mut writes,
            &mut checked,
            "activity_ledger",
            "stage_activity",
            ACTIVITY_COLUMNS,
            found.len(),
            expected_new,
        );
    }
    let mut report_vars = Variables::default();
    if !rows.llm.is_empty() {
        let found = llm_found
            .iter()
            .map(super::rows::llm_row)
            .collect::<Result<Vec<_>, _>>()?;
        let (found, contributions) = super::rows::llm_existing(&found);
        let expected_new = super::judge(
            rows.llm.iter().map(|r| (r.id, &r.version, r.state)),
            &found,
            &mut result.unchanged,
        );
        let deltas = crate::aggregate::llm_rollup::report_deltas(&rows.llm, &contributions)?;
        ledger_writes(
            &mut writes,
            &mut checked,
            "llm_ledger",
            "stage_llm",
            LLM_COLUMNS,
            found.len(),
            expected_new,
        );
        if !deltas.is_empty() {
            report_writes(&mut writes, &mut report_vars, &deltas)?;
            result.reports_changed += deltas.len();
        }
    }
    for v in &rej_vars {
        writes.push(reject_insert(v));
    }
    writes.extend(vars.release());
    writes.extend(report_vars.release());

    // Steps 4 and 5.
    report_vars.send(tx, result).await?;
    let done = multi(tx, &writes, result).await?;
    for (index, expected) in checked {
        let inserted = done[index].rows_affected;
        if inserted != expected {
            return Err(StoreError::Conflict { inserted, expected });
        }
    }
    Ok(())
}

/// The ledger's UPDATE (if rows exist) and INSERT (if identities are new);
/// records the INSERT's position and expected row count in `checked`.
fn ledger_writes(
    writes: &mut Vec<String>,
    checked: &mut Vec<(usize, u64)>,
    ledger: &str,
    stage: &str,
    columns: &str,
    existing: usize,
    expected_new: u64,
) {
    if existing > 0 {
        writes.push(ledger_update(ledger, stage, columns));
    }
    if expected_new > 0 {
        checked.push((writes.len(), expected_new));
        writes.push(sql::insert_new(ledger, stage, columns));
    }
}

#[derive(Serialize)]
struct TotalsJson<'a> {
    a: &'a str,
    p: &'a str,
    r: i64,
    k: i64,
    c: String,
    m: i64,
    q: String,
    n: i64,
}

#[derive(Serialize)]
struct UsageJson<'a> {
    a: &'a str,
    p: &'a str,
    x: &'a str,
    r: i64,
    k: i64,
    c: String,
}

/// The three report upserts, reading the deltas from session variables
/// (added in SQL on exact DECIMAL columns; `VALUES(col)` is the value
/// converted to the column's type, and MariaDB lacks the row alias). Keys
/// arrive in `BTreeMap` order, which is the tables' binary collation order.
fn report_writes(
    writes: &mut Vec<String>,
    vars: &mut Variables,
    deltas: &BTreeMap<ReportKey, ReportSums>,
) -> Result<(), StoreError> {
    let totals = deltas.iter().map(|(k, s)| TotalsJson {
        a: &k.account_id,
        p: &k.period,
        r: s.requests,
        k: s.tokens,
        c: s.cost_usd.to_string(),
        m: s.response_time_ms,
        q: s.quality_sum.to_string(),
        n: s.quality_scored,
    });
    for v in vars.add("t", json_arrays(totals, PACKET_BUDGET)?) {
        writes.push(format!(
            "INSERT INTO llm_reports ({}) SELECT j.a, j.p, j.r, j.k, j.c, j.m, j.q, j.n, 1, 1, @sf_now
               FROM JSON_TABLE({v}, '$[*]' COLUMNS (o FOR ORDINALITY, a VARCHAR(1024) PATH '$.a',
                 p VARCHAR(16) PATH '$.p', r BIGINT PATH '$.r', k BIGINT PATH '$.k',
                 c VARCHAR(128) PATH '$.c', m BIGINT PATH '$.m', q VARCHAR(128) PATH '$.q',
                 n BIGINT PATH '$.n')) AS j ORDER BY j.o
             ON DUPLICATE KEY UPDATE
               total_requests = total_requests + VALUES(total_requests),
               total_tokens = total_tokens + VALUES(total_tokens),
               total_cost_usd = total_cost_usd + VALUES(total_cost_usd),
               response_time_ms_sum = response_time_ms_sum + VALUES(response_time_ms_sum),
               quality_score_sum = quality_score_sum + VALUES(quality_score_sum),
               quality_scored = quality_scored + VALUES(quality_scored),
               revision = revision + 1, pending = 1, updated_at = VALUES(updated_at)",
            super::reports::TOTALS_COLUMNS
        ));
    }
    let models = super::reports::model_rows(deltas);
    let models = models.iter().map(|(k, m, u)| UsageJson {
        a: &k.account_id,
        p: &k.period,
        x: m,
        r: u.requests,
        k: u.tokens,
        c: u.cost_usd.to_string(),
    });
    for v in vars.add("m", json_arrays(models, PACKET_BUDGET)?) {
        writes.push(format!(
            "INSERT INTO llm_report_models (account_id, report_period, model, requests, tokens, cost_usd)
             SELECT j.a, j.p, j.x, j.r, j.k, j.c
               FROM JSON_TABLE({v}, '$[*]' COLUMNS (o FOR ORDINALITY, a VARCHAR(1024) PATH '$.a',
                 p VARCHAR(16) PATH '$.p', x VARCHAR(1024) PATH '$.x', r BIGINT PATH '$.r',
                 k BIGINT PATH '$.k', c VARCHAR(128) PATH '$.c')) AS j ORDER BY j.o
             ON DUPLICATE KEY UPDATE requests = requests + VALUES(requests),
               tokens = tokens + VALUES(tokens), cost_usd = cost_usd + VALUES(cost_usd)"
        ));
    }
    let functions = super::reports::function_rows(deltas);
    let functions = functions.iter().map(|(k, f, n)| UsageJson {
        a: &k.account_id,
        p: &k.period,
        x: f,
        r: *n,
        k: 0,
        c: String::new(),
    });
    for v in vars.add("f", json_arrays(functions, PACKET_BUDGET)?) {
        writes.push(format!(
            "INSERT INTO llm_report_functions (account_id, report_period, function_name, requests)
             SELECT j.a, j.p, j.x, j.r
               FROM JSON_TABLE({v}, '$[*]' COLUMNS (o FOR ORDINALITY, a VARCHAR(1024) PATH '$.a',
                 p VARCHAR(16) PATH '$.p', x VARCHAR(1024) PATH '$.x',
                 r BIGINT PATH '$.r')) AS j ORDER BY j.o
             ON DUPLICATE KEY UPDATE requests = requests + VALUES(requests)"
        ));
    }
    Ok(())
}

/// Quarantine from a session variable; a record quarantined twice is kept
/// once.
fn reject_insert(var: &str) -> String {
    format!(
        "INSERT INTO rejected_records ({})
         SELECT FROM_BASE64(j.k), j.o, j.t, j.e, j.n, j.r, j.w, @sf_now
           FROM JSON_TABLE({var}, '$[*]' COLUMNS (o2 FOR ORDINALITY, k VARCHAR(32) PATH '$.k',
             o VARCHAR(64) PATH '$.o', t VARCHAR(1024) PATH '$.t', e VARCHAR(1024) PATH '$.e',
             n VARCHAR(256) PATH '$.n', r LONGTEXT PATH '$.r', w LONGTEXT PATH '$.w')) AS j
          ORDER BY j.o2
         ON DUPLICATE KEY UPDATE record_key = record_key",
        super::REJECT_COLUMNS
    )
}

#[cfg(test)]
mod tests {
    use super::json_arrays;

    fn parse(arrays: &[String]) -> Vec<u32> {
        arrays
            .iter()
            .flat_map(|a| serde_json::from_str::<Vec<u32>>(a).unwrap())
            .collect()
    }

    #[test]
    fn arrays_keep_order_and_the_budget() {
        let items: Vec<u32> = (0..1000).collect();
        for budget in [1, 10, 64, 1000, 1 << 20] {
            let arrays = json_arrays(items.iter(), budget).unwrap();
            assert_eq!(parse(&arrays), items, "budget {budget}");
            for a in &arrays {
                // Over budget only when one item alone is.
                let one = serde_json::from_str::<Vec<u32>>(a).unwrap().len() == 1;
                assert!(a.len() <= budget || one, "{} > {budget}", a.len());
            }
        }
        assert_eq!(json_arrays(items.iter(), 1 << 20).unwrap().len(), 1);
        assert!(
            json_arrays(std::iter::empty::<u32>(), 10)
                .unwrap()
                .is_empty()
        );
    }
}
