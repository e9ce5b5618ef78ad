//! SQL text shared by every dialect: the ledger replacement rule and the
//! source of aggregate deltas. Each references the staging table once (MySQL
//! cannot reopen a temporary table within one statement).

use crate::aggregate::RowState;

/// `aggregate::wins` in SQL: the row aliased `staged` replaces the ledger
/// row aliased `ledger` (versions compare as bytes, which is their numeric
/// order). `tests::wins_in_sql_is_wins_in_rust` holds the two together.
pub fn wins(staged: &str, ledger: &str) -> String {
    format!(
        "({staged}.version > {ledger}.version OR ({staged}.version = {ledger}.version AND {ledger}.state = {unattributed} AND {staged}.state = {live}))",
        unattributed = RowState::Unattributed.code(),
        live = RowState::Live.code(),
    )
}

/// Rows `(slack_id, integration, dow, hours, d)` whose sum per key is the
/// change of `user_event_counts`: −1 for a live ledger row being replaced,
/// +1 for a live staged row that replaces (or creates) its ledger row.
/// `ledger` is the activity ledger as the dialect reads it (the table, or
/// PostgreSQL's locked pre-image of the batch's rows).
pub fn activity_deltas(stage: &str, ledger: &str) -> String {
    let wins = wins("s", "l");
    format!(
        "SELECT CASE WHEN k.n = 1 THEN l.subject ELSE s.subject END AS slack_id,
                CASE WHEN k.n = 1 THEN l.integration ELSE s.integration END AS integration,
                CASE WHEN k.n = 1 THEN l.dow ELSE s.dow END AS dow,
                CASE WHEN k.n = 1 THEN l.hours ELSE s.hours END AS hours,
                CASE WHEN k.n = 1 THEN -1 ELSE 1 END AS d
           FROM {stage} s
           LEFT JOIN {ledger} l ON l.id = s.id
           CROSS JOIN (SELECT 1 AS n UNION ALL SELECT 2) k
          WHERE (k.n = 1 AND l.state = 1 AND {wins})
             OR (k.n = 2 AND s.state = 1 AND (l.id IS NULL OR {wins}))"
    )
}

/// Pre-summed deltas per key, non-zero only, in key order.
pub fn summed_activity_deltas(stage: &str, ledger: &str) -> String {
    format!(
        "SELECT slack_id, integration, dow, hours, SUM(d) AS d FROM ({}) x
          GROUP BY slack_id, integration, dow, hours HAVING SUM(d) <> 0",
        activity_deltas(stage, ledger)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate;
    use crate::domain::Version;
    use sqlx::Connection;

    /// Every pair of (version, state) rows, judged by the SQL expression in
    /// SQLite on the versions' stored bytes and by `aggregate::wins`.
    #[tokio::test]
    async fn wins_in_sql_is_wins_in_rust() {
        let mut c = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        let versions = [
            Version::snapshot(),
            Version::from_sequence_number("5").unwrap(),
            Version::from_sequence_number("49").unwrap(),
            Version::from_sequence_number("4421584500000000017450439000").unwrap(),
        ];
        let states = [RowState::Live, RowState::Unattributed, RowState::Tombstone];
        let sql = format!(
            "SELECT {} FROM (SELECT ? AS version, ? AS state) s, (SELECT ? AS version, ? AS state) l",
            wins("s", "l")
        );
        let mut checked = 0;
        for sv in &versions {
            for ss in states {
                for lv in &versions {
                    for ls in states {
                        let got: bool = sqlx::query_scalar(&sql)
                            .bind(sv.as_bytes().to_vec())
                            .bind(ss.code())
                            .bind(lv.as_bytes().to_vec())
                            .bind(ls.code())
                            .fetch_one(&mut c)
                            .await
                            .unwrap();
                        let want = aggregate::wins((sv, ss), Some((lv, ls)));
                        assert_eq!(got, want, "{sv:?} {ss:?} vs {lv:?} {ls:?}");
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 144);
    }
}
