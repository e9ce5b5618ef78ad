//! Decoding of ledger and quarantine rows, shared by every dialect. Each
//! dialect's SELECTs cast columns so that integers arrive as 64-bit, decimals
//! as text and ids as bytes.

use super::{RejectListing, StoreError};
use crate::aggregate::{ActivityRow, LlmRow, RowState};
use crate::domain::{Identity, Integration, LlmRequest, Version};
use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use sqlx::{ColumnIndex, Decode, Row, Type};
use std::str::FromStr;

fn corrupt(table: &'static str, reason: &str) -> StoreError {
    StoreError::Corrupt {
        table,
        reason: reason.to_string(),
    }
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

/// LLM ledger rows (`Flavor::llm_row_columns`): `id, version,
/// conversation_id, model, function_name, prompt_tokens, response_tokens,
/// total_tokens, cost_usd (text), response_time_ms, quality_score (text),
/// event_at, state, subject`. Tombstones carry no request.
pub fn llm_row<R>(r: &R) -> Result<LlmRow, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
{
    let t = "llm_ledger";
    let id: Vec<u8> = r.try_get(0)?;
    let state: i64 = r.try_get(12)?;
    let state = RowState::from_code(state).ok_or_else(|| corrupt(t, "unknown state"))?;
    let decimal = |s: &str, what: &str| {
        Decimal::from_str(s.trim())
            .map(|d| d.normalize())
            .map_err(|_| corrupt(t, what))
    };
    let conversation_id: Option<String> = r.try_get(2)?;
    let request = match conversation_id {
        None => None,
        Some(conversation_id) => {
            let need_s = |i: usize, what: &str| -> Result<String, StoreError> {
                r.try_get::<Option<String>, _>(i)?
                    .ok_or_else(|| corrupt(t, what))
            };
            let need_i = |i: usize, what: &str| -> Result<i64, StoreError> {
                r.try_get::<Option<i64>, _>(i)?
                    .ok_or_else(|| corrupt(t, what))
            };
            let event_at = need_i(11, "no event_at")?;
            let quality: Option<String> = r.try_get(10)?;
            Some(LlmRequest {
                conversation_id,
                generated_at: Utc
                    .timestamp_opt(event_at, 0)
                    .single()
                    .ok_or_else(|| corrupt(t, "bad event_at"))?,
                model: need_s(3, "no model")?,
                function: need_s(4, "no function_name")?,
                prompt_tokens: need_i(5, "no prompt_tokens")?,
                response_tokens: need_i(6, "no response_tokens")?,
                total_tokens: need_i(7, "no total_tokens")?,
                cost_usd: decimal(&need_s(8, "no cost_usd")?, "bad cost_usd")?,
                response_time_ms: need_i(9, "no response_time_ms")?,
                quality_score: quality
                    .map(|q| decimal(&q, "bad quality_score"))
                    .transpose()?,
            })
        }
    };
    Ok(LlmRow {
        id: Identity::from_bytes(&id).ok_or_else(|| corrupt(t, "id is not 16 bytes"))?,
        version: Version::from_bytes(r.try_get(1)?),
        state,
        subject: r.try_get(13)?,
        request,
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
