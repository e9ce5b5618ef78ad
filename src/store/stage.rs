//! Multi-row staging statements for the dialect that stages with VALUES
//! lists (SQLite), and its batch steps.

use super::RejectedRecord;
use super::sql::{ACTIVITY_COLUMNS, LLM_COLUMNS};
use crate::aggregate::{ActivityRow, LlmRow};
use sqlx::{Database, Encode, QueryBuilder, Type};

/// `INSERT INTO stage_activity … VALUES …` for one chunk (8 parameters a row).
pub fn activity_values<'a, DB: Database>(chunk: &[ActivityRow]) -> QueryBuilder<'a, DB>
where
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
{
    activity_values_into("stage_activity", chunk)
}

/// `INSERT INTO <table> (activity ledger columns) VALUES …` for one chunk.
pub fn activity_values_into<'a, DB: Database>(
    table: &str,
    chunk: &[ActivityRow],
) -> QueryBuilder<'a, DB>
where
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new(format!("INSERT INTO {table} ({ACTIVITY_COLUMNS}) "));
    qb.push_values(chunk, |mut b, r| {
        b.push_bind(r.id.to_bytes().to_vec())
            .push_bind(r.version.as_bytes().to_vec())
            .push_bind(r.state.code())
            .push_bind(r.integration.code().to_string())
            .push_bind(r.subject.clone())
            .push_bind(r.bucket.map(|b| i64::from(b.dow)))
            .push_bind(r.bucket.map(|b| i64::from(b.hour)))
            .push_bind(r.event_at);
    });
    qb
}

/// `INSERT INTO stage_llm … VALUES …` for one chunk (15 parameters a row).
pub fn llm_values<'a, DB: Database>(chunk: &[LlmRow]) -> QueryBuilder<'a, DB>
where
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new(format!("INSERT INTO stage_llm ({LLM_COLUMNS}) "));
    qb.push_values(chunk, |mut b, r| {
        let q = r.request.as_ref();
        b.push_bind(r.id.to_bytes().to_vec())
            .push_bind(r.version.as_bytes().to_vec())
            .push_bind(r.state.code())
            .push_bind(r.subject.clone())
            .push_bind(q.map(|q| q.conversation_id.clone()))
            .push_bind(q.map(|q| q.report_period()))
            .push_bind(q.map(|q| q.model.clone()))
            .push_bind(q.map(|q| q.function.clone()))
            .push_bind(q.map(|q| q.prompt_tokens))
            .push_bind(q.map(|q| q.response_tokens))
            .push_bind(q.map(|q| q.total_tokens))
            .push_bind(q.map(|q| q.cost_usd.to_string()))
            .push_bind(q.map(|q| q.response_time_ms))
            .push_bind(q.and_then(|q| q.quality_score.map(|s| s.to_string())))
            .push_bind(q.map(|q| q.generated_at.timestamp()));
    });
    qb
}

/// `INSERT INTO rejected_records … VALUES …` for one chunk (8 parameters a
/// row); the caller appends its dialect's "ignore duplicates" clause.
pub fn reject_values<'a, DB: Database>(chunk: &[RejectedRecord], now: &str) -> QueryBuilder<'a, DB>
where
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new(format!(
        "INSERT INTO rejected_records ({}) ",
        super::REJECT_COLUMNS
    ));
    qb.push_values(chunk, |mut b, r| {
        b.push_bind(r.record_key().to_vec())
            .push_bind(r.source.map(|s| s.table_suffix().to_string()))
            .push_bind(r.table.clone())
            .push_bind(r.event_id.clone())
            .push_bind(r.sequence_number.clone())
            .push_bind(r.reason.clone())
            .push_bind(r.raw.clone())
            .push_bind(now.to_string());
    });
    qb
}

/// The batch steps of a `StagedDialect` `$d` (SQLite), as
/// `apply_staged`: clear and fill the staging tables, read the existing
/// ledger rows (locked with `LOCK_SUFFIX`), judge, move the aggregates
/// (`activity_delta`), write the ledger (`write_ledger`), move the LLM
/// reports (`apply_reports`), quarantine. Everything dialect-specific comes
/// from the trait. A macro, not a generic function, because executing a
/// borrowed `QueryBuilder` on `&mut Transaction<'_, DB>` needs
/// `for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>` together
/// with `IntoArguments` for the builder's arguments, which sqlx's generic
/// signatures do not let a caller state.
macro_rules! values_staged_apply {
    ($d:ty) => {
        async fn apply_staged(
            tx: &mut sqlx::Transaction<'static, <$d as super::dialect::Dialect>::Db>,
            rows: &StagedRows,
            rejects: &[RejectedRecord],
            result: &mut ApplyResult,
        ) -> Result<(), StoreError> {
            if !rows.activity.is_empty() {
                apply_activity(tx, &rows.activity, result).await?;
            }
            if !rows.llm.is_empty() {
                apply_llm(tx, &rows.llm, result).await?;
            }
            if !rejects.is_empty() {
                insert_rejects(tx, rejects, result).await?;
            }
            Ok(())
        }

        async fn existing(
            tx: &mut sqlx::Transaction<'static, <$d as super::dialect::Dialect>::Db>,
            ledger: &str,
            stage: &str,
        ) -> Result<super::rows::Existing, StoreError> {
            let q = format!(
                "{}{}",
                super::sql::existing(ledger, stage, <$d as super::dialect::Dialect>::FLAVOR.int()),
                <$d as super::dialect::StagedDialect>::LOCK_SUFFIX
            );
            let found = sqlx::query(&q).fetch_all(&mut **tx).await?;
            super::rows::existing(&found, "ledger")
        }

        async fn apply_activity(
            tx: &mut sqlx::Transaction<'static, <$d as super::dialect::Dialect>::Db>,
            rows: &[ActivityRow],
            result: &mut ApplyResult,
        ) -> Result<(), StoreError> {
            tx.execute("DELETE FROM stage_activity").await?;
            result.statements += 1;
            for chunk in rows.chunks(<$d as super::dialect::StagedDialect>::MAX_PARAMS / 8) {
                super::stage::activity_values::<<$d as super::dialect::Dialect>::Db>(chunk)
                    .build()
                    .execute(&mut **tx)
                    .await?;
                result.statements += 1;
            }
            let found = existing(tx, "activity_ledger", "stage_activity").await?;
            result.statements += 1;
            let expected_new = super::judge(
                rows.iter().map(|r| (r.id, &r.version, r.state)),
                &found,
                &mut result.unchanged,
            );
            tx.execute(<$d as super::dialect::StagedDialect>::activity_delta().as_str())
                .await?;
            result.statements += 1;
            <$d as super::dialect::StagedDialect>::write_ledger(
                tx,
                "activity_ledger",
                "stage_activity",
                super::sql::ACTIVITY_COLUMNS,
                found.len(),
                expected_new,
                result,
            )
            .await
        }

        async fn apply_llm(
            tx: &mut sqlx::Transaction<'static, <$d as super::dialect::Dialect>::Db>,
            rows: &[LlmRow],
            result: &mut ApplyResult,
        ) -> Result<(), StoreError> {
            tx.execute("DELETE FROM stage_llm").await?;
            result.statements += 1;
            for chunk in rows.chunks(<$d as super::dialect::StagedDialect>::MAX_PARAMS / 15) {
                super::stage::llm_values::<<$d as super::dialect::Dialect>::Db>(chunk)
                    .build()
                    .execute(&mut **tx)
                    .await?;
                result.statements += 1;
            }
            let q = format!(
                "{}{}",
                super::queries::existing_llm(
                    <$d as super::dialect::Dialect>::FLAVOR,
                    "SELECT id FROM stage_llm"
                ),
                <$d as super::dialect::StagedDialect>::LOCK_SUFFIX
            );
            let found = sqlx::query(&q).fetch_all(&mut **tx).await?;
            result.statements += 1;
            let found = found
                .iter()
                .map(super::rows::llm_row)
                .collect::<Result<Vec<_>, _>>()?;
            let (found, contributions) = super::rows::llm_existing(&found);
            let expected_new = super::judge(
                rows.iter().map(|r| (r.id, &r.version, r.state)),
                &found,
                &mut result.unchanged,
            );
            let deltas = crate::aggregate::llm_rollup::report_deltas(rows, &contributions)?;
            <$d as super::dialect::StagedDialect>::write_ledger(
                tx,
                "llm_ledger",
                "stage_llm",
                super::sql::LLM_COLUMNS,
                found.len(),
                expected_new,
                result,
            )
            .await?;
            if !deltas.is_empty() {
                <$d as super::dialect::StagedDialect>::apply_reports(tx, &deltas, result).await?;
                result.reports_changed += deltas.len();
            }
            Ok(())
        }

        async fn insert_rejects(
            tx: &mut sqlx::Transaction<'static, <$d as super::dialect::Dialect>::Db>,
            rejects: &[RejectedRecord],
            result: &mut ApplyResult,
        ) -> Result<(), StoreError> {
            let now = super::now_text();
            for chunk in rejects.chunks(<$d as super::dialect::StagedDialect>::MAX_PARAMS / 8) {
                let mut qb =
                    super::stage::reject_values::<<$d as super::dialect::Dialect>::Db>(chunk, &now);
                qb.push(<$d as super::dialect::StagedDialect>::REJECT_IGNORE);
                qb.build().execute(&mut **tx).await?;
                result.statements += 1;
            }
            Ok(())
        }
    };
}
pub(crate) use values_staged_apply;
