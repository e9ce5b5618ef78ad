//! The batch's ledger read, shared by the engines: both ledgers' rows in
//! one column layout (a `t` column tells them apart), and its decoding into
//! `aggregate` rows. Each engine adds which identities and its row lock.
//!
//! Layout: `t, id, version, state, subject, integration, dow, hours,
//! event_at, conversation_id, model, function_name, prompt_tokens,
//! response_tokens, total_tokens, cost_usd, response_time_ms,
//! quality_score` (integers as 64-bit, decimals and text as text).

use super::super::StoreError;
use super::super::dialect::Flavor;
use crate::aggregate::plan::LedgerRead;
use crate::aggregate::{ActivityRow, LlmRow, RowState};
use crate::domain::{Bucket, Identity, Integration, LlmRequest, Version};
use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use sqlx::{ColumnIndex, Decode, Row, Type};
use std::str::FromStr;

/// `SELECT <layout> FROM <from>`, where `from` names `activity_ledger` as
/// `l` (the caller adds the rest).
pub(crate) fn activity_select(f: Flavor, from: &str) -> String {
    let null_text = f.as_text("NULL");
    let null_int = f.as_int("NULL");
    format!(
        "SELECT {zero}, l.id, l.version, {state}, {subject}, {integration}, {dow}, {hours}, {at},
                {null_text}, {null_text}, {null_text}, {null_int}, {null_int}, {null_int},
                {null_text}, {null_int}, {null_text}
           FROM {from}",
        zero = f.as_int("0"),
        state = f.as_int("l.state"),
        subject = f.as_text("l.subject"),
        integration = f.as_text("l.integration"),
        dow = f.as_int("l.dow"),
        hours = f.as_int("l.hours"),
        at = f.as_int("l.event_at"),
    )
}

/// `SELECT <layout> FROM <from>`, where `from` names `llm_ledger` as `l`
/// (the caller adds the rest).
pub(crate) fn llm_select(f: Flavor, from: &str) -> String {
    let null_text = f.as_text("NULL");
    let null_int = f.as_int("NULL");
    format!(
        "SELECT {one}, l.id, l.version, {state}, {subject}, {null_text}, {null_int}, {null_int},
                {at}, {conversation}, {model}, {function}, {pt}, {rt}, {tt}, {cost}, {ms}, {quality}
           FROM {from}",
        one = f.as_int("1"),
        state = f.as_int("l.state"),
        subject = f.as_text("l.subject"),
        at = f.as_int("l.event_at"),
        conversation = f.as_text("l.conversation_id"),
        model = f.as_text("l.model"),
        function = f.as_text("l.function_name"),
        pt = f.as_int("l.prompt_tokens"),
        rt = f.as_int("l.response_tokens"),
        tt = f.as_int("l.total_tokens"),
        cost = f.decimal_text("l.cost_usd"),
        ms = f.as_int("l.response_time_ms"),
        quality = f.decimal_text("l.quality_score"),
    )
}

fn corrupt(table: &'static str, reason: &str) -> StoreError {
    StoreError::Corrupt {
        table,
        reason: reason.to_string(),
    }
}

/// Add rows of the layout to `read`.
pub(crate) fn decode_into<R>(rows: &[R], read: &mut LedgerRead) -> Result<(), StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
{
    for r in rows {
        let t: i64 = r.try_get(0)?;
        let table = if t == 0 {
            "activity_ledger"
        } else {
            "llm_ledger"
        };
        let id: Vec<u8> = r.try_get(1)?;
        let id = Identity::from_bytes(&id).ok_or_else(|| corrupt(table, "id is not 16 bytes"))?;
        let version = Version::from_bytes(r.try_get(2)?);
        let state: i64 = r.try_get(3)?;
        let state = RowState::from_code(state).ok_or_else(|| corrupt(table, "unknown state"))?;
        let subject: Option<String> = r.try_get(4)?;
        let event_at: Option<i64> = r.try_get(8)?;
        if t == 0 {
            let integration: Option<String> = r.try_get(5)?;
            let integration = integration
                .as_deref()
                .and_then(Integration::from_code)
                .ok_or_else(|| corrupt(table, "unknown integration"))?;
            let dow: Option<i64> = r.try_get(6)?;
            let hours: Option<i64> = r.try_get(7)?;
            let bucket = match (dow, hours) {
                (Some(d), Some(h)) => Some(Bucket {
                    dow: u8::try_from(d).map_err(|_| corrupt(table, "bad dow"))?,
                    hour: u8::try_from(h).map_err(|_| corrupt(table, "bad hours"))?,
                }),
                _ => None,
            };
            read.activity.insert(
                id,
                ActivityRow {
                    id,
                    version,
                    state,
                    integration,
                    subject,
                    bucket,
                    event_at,
                },
            );
        } else {
            let request = llm_request(r, event_at)?;
            read.llm.insert(
                id,
                LlmRow {
                    id,
                    version,
                    state,
                    subject,
                    request,
                },
            );
        }
    }
    Ok(())
}

fn llm_request<R>(r: &R, event_at: Option<i64>) -> Result<Option<LlmRequest>, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
{
    let t = "llm_ledger";
    let conversation_id: Option<String> = r.try_get(9)?;
    let Some(conversation_id) = conversation_id else {
        return Ok(None);
    };
    let text = |i: usize, what: &str| -> Result<String, StoreError> {
        r.try_get::<Option<String>, _>(i)?
            .ok_or_else(|| corrupt(t, what))
    };
    let int = |i: usize, what: &str| -> Result<i64, StoreError> {
        r.try_get::<Option<i64>, _>(i)?
            .ok_or_else(|| corrupt(t, what))
    };
    let decimal = |s: &str, what: &str| {
        Decimal::from_str(s.trim())
            .map(|d| d.normalize())
            .map_err(|_| corrupt(t, what))
    };
    let quality: Option<String> = r.try_get(17)?;
    let at = event_at.ok_or_else(|| corrupt(t, "no event_at"))?;
    Ok(Some(LlmRequest {
        conversation_id,
        generated_at: Utc
            .timestamp_opt(at, 0)
            .single()
            .ok_or_else(|| corrupt(t, "bad event_at"))?,
        model: text(10, "no model")?,
        function: text(11, "no function_name")?,
        prompt_tokens: int(12, "no prompt_tokens")?,
        response_tokens: int(13, "no response_tokens")?,
        total_tokens: int(14, "no total_tokens")?,
        cost_usd: decimal(&text(15, "no cost_usd")?, "bad cost_usd")?,
        response_time_ms: int(16, "no response_time_ms")?,
        quality_score: quality
            .map(|q| decimal(&q, "bad quality_score"))
            .transpose()?,
    }))
}
