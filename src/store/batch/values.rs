//! Multi-row VALUES statements of ledger rows and quarantined records,
//! generic over the engine: SQLite's batch writes and the benchmark's
//! baselines build their INSERTs here.

use super::super::RejectedRecord;
use super::super::sql::{ACTIVITY_COLUMNS, LLM_COLUMNS};
use crate::aggregate::{ActivityRow, LlmRow};
use sqlx::{Database, Encode, QueryBuilder, Type};

/// `INSERT INTO <table> (activity ledger columns) VALUES …` for one chunk.
pub fn activity_values_into<'a, DB: Database>(
    table: &str,
    chunk: &[&ActivityRow],
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

/// `INSERT INTO <table> (LLM ledger columns) VALUES …` for one chunk (15
/// parameters a row).
pub fn llm_values_into<'a, DB: Database>(table: &str, chunk: &[&LlmRow]) -> QueryBuilder<'a, DB>
where
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new(format!("INSERT INTO {table} ({LLM_COLUMNS}) "));
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
        super::super::REJECT_COLUMNS
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
