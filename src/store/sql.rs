//! SQL text shared by every dialect: the ledger replacement rule and the
//! source of aggregate deltas. Each references the staging table once (MySQL
//! cannot reopen a temporary table within one statement).

/// `aggregate::wins` in SQL (`s` = staged row, `l` = ledger row).
pub const WINS: &str =
    "(s.version > l.version OR (s.version = l.version AND l.state = 2 AND s.state = 1))";

/// Rows `(slack_id, integration, dow, hours, d)` whose sum per key is the
/// change of `user_event_counts`: −1 for a live ledger row being replaced,
/// +1 for a live staged row that replaces (or creates) its ledger row.
pub fn activity_deltas(stage: &str) -> String {
    format!(
        "SELECT CASE WHEN k.n = 1 THEN l.subject ELSE s.subject END AS slack_id,
                CASE WHEN k.n = 1 THEN l.integration ELSE s.integration END AS integration,
                CASE WHEN k.n = 1 THEN l.dow ELSE s.dow END AS dow,
                CASE WHEN k.n = 1 THEN l.hours ELSE s.hours END AS hours,
                CASE WHEN k.n = 1 THEN -1 ELSE 1 END AS d
           FROM {stage} s
           LEFT JOIN activity_ledger l ON l.id = s.id
           CROSS JOIN (SELECT 1 AS n UNION ALL SELECT 2) k
          WHERE (k.n = 1 AND l.state = 1 AND {WINS})
             OR (k.n = 2 AND s.state = 1 AND (l.id IS NULL OR {WINS}))"
    )
}

/// Pre-summed deltas per key, non-zero only, in key order.
pub fn summed_activity_deltas(stage: &str) -> String {
    format!(
        "SELECT slack_id, integration, dow, hours, SUM(d) AS d FROM ({}) x
          GROUP BY slack_id, integration, dow, hours HAVING SUM(d) <> 0",
        activity_deltas(stage)
    )
}

pub const ACTIVITY_COLUMNS: &str = "id, version, state, integration, subject, dow, hours, event_at";

pub const LLM_COLUMNS: &str = "id, version, state, subject, conversation_id, report_period, model, function_name, \
     prompt_tokens, response_tokens, total_tokens, cost_usd, response_time_ms, quality_score, event_at";

/// `col = s.col` assignments for an UPDATE from the staging table.
pub fn assignments(columns: &str, target_prefix: &str) -> String {
    columns
        .split(',')
        .map(str::trim)
        .filter(|c| *c != "id")
        .map(|c| format!("{target_prefix}{c} = s.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// New ledger rows: staged identities that have none yet. The caller checks
/// the row count against what it saw under lock (a concurrent insert means
/// retry).
pub fn insert_new(ledger: &str, stage: &str, columns: &str) -> String {
    let select_cols = columns
        .split(',')
        .map(|c| format!("s.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO {ledger} ({columns}) SELECT {select_cols} FROM {stage} s
          WHERE NOT EXISTS (SELECT 1 FROM {ledger} l WHERE l.id = s.id) ORDER BY s.id"
    )
}

/// Existing ledger rows of the staged identities, in identity order (the
/// dialect appends its row lock). `int` names the dialect's 64-bit cast.
/// Written as `IN (…)` so that every planner drives the lookup from the
/// (small) staging table through the ledger's primary key, never scanning
/// the ledger.
pub fn existing(ledger: &str, stage: &str, int: &str) -> String {
    format!(
        "SELECT l.id, l.version, CAST(l.state AS {int}) FROM {ledger} l
          WHERE l.id IN (SELECT id FROM {stage}) ORDER BY l.id"
    )
}
