//! Decoding of ledger and quarantine rows, shared by every dialect, from
//! any row's `Cells` (an engine's row, or a row handed to an `each`
//! callback). Each dialect's SELECTs cast columns so that integers arrive
//! as 64-bit, decimals as text and ids as bytes.

use super::exec::Cells;
use super::{RejectListing, StoreError};
use crate::aggregate::{ActivityRow, LlmRow, RowState};
use crate::domain::{Identity, Integration, LlmRequest, Version};
use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use std::str::FromStr;

fn corrupt(table: &'static str, reason: &str) -> StoreError {
    StoreError::Corrupt {
        table,
        reason: reason.to_string(),
    }
}

/// Unattributed activity rows: `id, version, integration, subject, event_at`.
pub fn unattributed_activity<R: Cells + ?Sized>(r: &R) -> Result<ActivityRow, StoreError> {
    let id = r.bytes(0)?;
    let integration = r.text(2)?;
    Ok(ActivityRow {
        id: Identity::from_bytes(&id)
            .ok_or_else(|| corrupt("activity_ledger", "id is not 16 bytes"))?,
        version: Version::from_bytes(r.bytes(1)?),
        state: RowState::Unattributed,
        integration: Integration::from_code(integration.trim())
            .ok_or_else(|| corrupt("activity_ledger", "unknown integration"))?,
        subject: r.opt_text(3)?,
        bucket: None,
        event_at: r.opt_int(4)?,
    })
}

/// LLM ledger rows (`Flavor::llm_row_columns`): `id, version,
/// conversation_id, model, function_name, prompt_tokens, response_tokens,
/// total_tokens, cost_usd (text), response_time_ms, quality_score (text),
/// event_at, state, subject`. Tombstones carry no request.
pub fn llm_row<R: Cells + ?Sized>(r: &R) -> Result<LlmRow, StoreError> {
    let t = "llm_ledger";
    let id = r.bytes(0)?;
    let state = r.int(12)?;
    let state = RowState::from_code(state).ok_or_else(|| corrupt(t, "unknown state"))?;
    let decimal = |s: &str, what: &str| {
        Decimal::from_str(s.trim())
            .map(|d| d.normalize())
            .map_err(|_| corrupt(t, what))
    };
    let conversation_id = r.opt_text(2)?;
    let request = match conversation_id {
        None => None,
        Some(conversation_id) => {
            let need_s = |i: usize, what: &str| -> Result<String, StoreError> {
                r.opt_text(i)?.ok_or_else(|| corrupt(t, what))
            };
            let need_i = |i: usize, what: &str| -> Result<i64, StoreError> {
                r.opt_int(i)?.ok_or_else(|| corrupt(t, what))
            };
            let event_at = need_i(11, "no event_at")?;
            let quality = r.opt_text(10)?;
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
        version: Version::from_bytes(r.bytes(1)?),
        state,
        subject: r.opt_text(13)?,
        request,
    })
}

/// `id, source, event_id, sequence_number, reason, rejected_at`.
pub fn reject_listing<R: Cells + ?Sized>(r: &R) -> Result<RejectListing, StoreError> {
    Ok(RejectListing {
        id: r.int(0)?,
        source: r.opt_text(1)?,
        event_id: r.opt_text(2)?,
        sequence_number: r.opt_text(3)?,
        reason: r.text(4)?,
        rejected_at: r.text(5)?,
    })
}

/// `(dow, hours, count)` heatmap cells.
pub fn cell<R: Cells + ?Sized>(r: &R) -> Result<(u8, u8, i64), StoreError> {
    let dow = r.int(0)?;
    let hours = r.int(1)?;
    Ok((
        u8::try_from(dow).map_err(|_| corrupt("user_event_counts", "dow out of range"))?,
        u8::try_from(hours).map_err(|_| corrupt("user_event_counts", "hours out of range"))?,
        r.int(2)?,
    ))
}
