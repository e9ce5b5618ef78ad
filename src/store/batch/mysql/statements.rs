//! The SQL text of a MySQL batch: `JSON_TABLE` column lists, the staging
//! fills, the ledger and count writes, the report upserts and the
//! quarantine insert, each reading a session variable.

use super::super::super::StoreError;
use super::PACKET_BUDGET;
use super::Variables;
use super::documents::{TotalsJson, UsageJson, json_arrays};
use crate::aggregate::llm_rollup::{ReportKey, ReportSums};
use std::collections::BTreeMap;

pub(super) const ACTIVITY_TABLE: &str =
    "i VARCHAR(32) PATH '$.i', v VARCHAR(48) PATH '$.v', s INT PATH '$.s',
    g VARCHAR(4) PATH '$.g', u VARCHAR(1024) PATH '$.u', d INT PATH '$.d', h INT PATH '$.h',
    t BIGINT PATH '$.t'";

pub(super) const LLM_TABLE: &str =
    "i VARCHAR(32) PATH '$.i', v VARCHAR(48) PATH '$.v', s INT PATH '$.s',
    u VARCHAR(1024) PATH '$.u', c VARCHAR(1024) PATH '$.c', p VARCHAR(16) PATH '$.p',
    m VARCHAR(1024) PATH '$.m', f VARCHAR(1024) PATH '$.f', pt BIGINT PATH '$.pt',
    rt BIGINT PATH '$.rt', tt BIGINT PATH '$.tt', cu VARCHAR(128) PATH '$.cu',
    ms BIGINT PATH '$.ms', q VARCHAR(128) PATH '$.q', t BIGINT PATH '$.t'";

pub(super) fn fill(
    table: &str,
    columns: &str,
    select: &str,
    json_columns: &str,
    var: &str,
) -> String {
    format!(
        "INSERT INTO {table} ({columns}) SELECT {select}
           FROM JSON_TABLE({var}, '$[*]' COLUMNS ({json_columns})) AS j"
    )
}

/// `ON DUPLICATE KEY UPDATE` of every column but `id` (replaced rows,
/// which the read locked, so each is an update).
pub(super) fn upsert_suffix(columns: &str) -> String {
    let assign = super::super::super::sql::but_id(columns, |c| format!("{c} = VALUES({c})"));
    format!(" ON DUPLICATE KEY UPDATE {assign}")
}

pub(super) const COUNT_TABLE: &str = "u VARCHAR(255) PATH '$.u', g VARCHAR(4) PATH '$.g',
    d INT PATH '$.d', h INT PATH '$.h', n BIGINT PATH '$.n'";

/// `user_event_counts` moved by the plan's count moves (no `AS new` alias:
/// MariaDB lacks it).
pub(super) fn count_upsert(var: &str) -> String {
    format!(
        "INSERT INTO user_event_counts (slack_id, integration, dow, hours, event_count)
         SELECT j.u, j.g, j.d, j.h, j.n
           FROM JSON_TABLE({var}, '$[*]' COLUMNS ({COUNT_TABLE})) AS j
         ON DUPLICATE KEY UPDATE event_count = event_count + VALUES(event_count)"
    )
}

/// Apply one batch inside `tx` (see the module doc for the round trips).
pub(super) fn report_writes(
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
            super::super::super::reports::TOTALS_COLUMNS
        ));
    }
    let models = super::super::super::reports::model_rows(deltas);
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
    let functions = super::super::super::reports::function_rows(deltas);
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
pub(super) fn reject_insert(var: &str) -> String {
    format!(
        "INSERT INTO rejected_records ({})
         SELECT FROM_BASE64(j.k), j.o, j.t, j.e, j.n, j.r, j.w, @sf_now
           FROM JSON_TABLE({var}, '$[*]' COLUMNS (o2 FOR ORDINALITY, k VARCHAR(32) PATH '$.k',
             o VARCHAR(64) PATH '$.o', t VARCHAR(1024) PATH '$.t', e VARCHAR(1024) PATH '$.e',
             n VARCHAR(256) PATH '$.n', r LONGTEXT PATH '$.r', w LONGTEXT PATH '$.w')) AS j
          ORDER BY j.o2
         ON DUPLICATE KEY UPDATE record_key = record_key",
        super::super::super::REJECT_COLUMNS
    )
}
