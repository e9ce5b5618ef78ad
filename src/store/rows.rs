//! Decoding of ledger and quarantine rows, shared by every dialect. Each
//! dialect's SELECTs cast columns so that integers arrive as 64-bit, decimals
//! as text and ids as bytes.

use super::{RejectListing, StoreError};
use crate::aggregate::{ActivityRow, LlmRow, RowState};
use crate::domain::{Identity, Integration, LlmRequest, Version};
use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use sqlx::{ColumnIndex, Decode, Row, Type};
use std::collections::HashMap;
use std::str::FromStr;

/// Ledger rows as read under lock: identity → (version, state).
pub type Existing = HashMap<Identity, (Version, RowState)>;

fn corrupt(table: &'static str, reason: &str) -> StoreError {
    StoreError::Corrupt {
        table,
        reason: reason.to_string(),
    }
}

/// `(id, version, state)` rows of `sql::existing`.
pub fn existing<R>(rows: &[R], table: &'static str) -> Result<Existing, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    rows.iter()
        .map(|r| {
            let id: Vec<u8> = r.try_get(0)?;
            let version: Vec<u8> = r.try_get(1)?;
            let state: i64 = r.try_get(2)?;
            Ok((
                Identity::from_bytes(&id).ok_or_else(|| corrupt(table, "id is not 16 bytes"))?,
                (
                    Version::from_bytes(version),
                    RowState::from_code(state).ok_or_else(|| corrupt(table, "unknown state"))?,
                ),
            ))
        })
        .collect()
}

/// Unattributed activity rows: `id, version, integration, subject, event_at`.
pub fn unattributed_activity<R>(r: &R) -> Result<ActivityRow, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
{
    let id: Vec<u8> = r.try_get(0)?;
    let integration: String = r.try_get(2)?;
    Ok(ActivityRow {
        id: Identity::from_bytes(&id)
            .ok_or_else(|| corrupt("activity_ledger", "id is not 16 bytes"))?,
        version: Version::from_bytes(r.try_get(1)?),
        state: RowState::Unattributed,
        integration: Integration::from_code(integration.trim())
            .ok_or_else(|| corrupt("activity_ledger", "unknown integration"))?,
        subject: r.try_get(3)?,
        bucket: None,
        event_at: r.try_get(4)?,
    })
}

/// Unattributed LLM rows: `id, version, conversation_id, model,
/// function_name, prompt_tokens, response_tokens, total_tokens, cost_usd
/// (text), response_time_ms, quality_score (text), event_at`.
pub fn unattributed_llm<R>(r: &R) -> Result<LlmRow, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let t = "llm_ledger";
    let id: Vec<u8> = r.try_get(0)?;
    let cost: String = r.try_get(8)?;
    let quality: Option<String> = r.try_get(10)?;
    let event_at: i64 = r.try_get(11)?;
    let decimal = |s: &str, what: &str| {
        Decimal::from_str(s.trim())
            .map(|d| d.normalize())
            .map_err(|_| corrupt(t, what))
    };
    let request = LlmRequest {
        conversation_id: r.try_get(2)?,
        generated_at: Utc
            .timestamp_opt(event_at, 0)
            .single()
            .ok_or_else(|| corrupt(t, "bad event_at"))?,
        model: r.try_get(3)?,
        function: r.try_get(4)?,
        prompt_tokens: r.try_get(5)?,
        response_tokens: r.try_get(6)?,
        total_tokens: r.try_get(7)?,
        cost_usd: decimal(&cost, "bad cost_usd")?,
        response_time_ms: r.try_get(9)?,
        quality_score: quality
            .map(|q| decimal(&q, "bad quality_score"))
            .transpose()?,
    };
    Ok(LlmRow {
        id: Identity::from_bytes(&id).ok_or_else(|| corrupt(t, "id is not 16 bytes"))?,
        version: Version::from_bytes(r.try_get(1)?),
        state: RowState::Unattributed,
        subject: None,
        request: Some(request),
    })
}

/// `id, source, event_id, sequence_number, reason, rejected_at`.
pub fn reject_listing<R>(r: &R) -> Result<RejectListing, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(RejectListing {
        id: r.try_get(0)?,
        source: r.try_get(1)?,
        event_id: r.try_get(2)?,
        sequence_number: r.try_get(3)?,
        reason: r.try_get(4)?,
        rejected_at: r.try_get(5)?,
    })
}

/// `(dow, hours, count)` heatmap cells.
pub fn cell<R>(r: &R) -> Result<(u8, u8, i64), StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let dow: i64 = r.try_get(0)?;
    let hours: i64 = r.try_get(1)?;
    Ok((
        u8::try_from(dow).map_err(|_| corrupt("user_event_counts", "dow out of range"))?,
        u8::try_from(hours).map_err(|_| corrupt("user_event_counts", "hours out of range"))?,
        r.try_get(2)?,
    ))
}
