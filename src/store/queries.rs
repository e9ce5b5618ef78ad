//! The store's read queries, written once for every dialect: the SQL text
//! as functions of the dialect's `Flavor`, and the reads themselves as
//! generic functions over an `Engine`.

use super::dialect::Flavor;
use super::exec::{Bind, Engine, Sql, fetch_all, fetch_one};
use super::{RejectListing, StoreError, Totals, rows};
use crate::aggregate::{ActivityRow, LlmRow};
use crate::domain::Identity;

pub fn heatmap(f: Flavor) -> String {
    format!(
        "SELECT {}, {}, {} FROM user_event_counts
          WHERE slack_id = {} AND ({} IS NULL OR integration = {})
          GROUP BY dow, hours ORDER BY dow, hours",
        f.as_int("dow"),
        f.as_int("hours"),
        f.as_int("SUM(event_count)"),
        f.p(1),
        f.text_param(2),
        f.text_param(3),
    )
}

/// First and last event time (epoch seconds) of a subject's counted
/// activity in the ledger (live rows; compacted rows are gone).
pub fn event_span(f: Flavor) -> String {
    format!(
        "SELECT {}, {} FROM activity_ledger
          WHERE state = 1 AND subject = {} AND ({} IS NULL OR integration = {})",
        f.as_int("MIN(event_at)"),
        f.as_int("MAX(event_at)"),
        f.p(1),
        f.text_param(2),
        f.text_param(3),
    )
}

pub fn unattributed_activity(f: Flavor) -> String {
    format!(
        "SELECT id, version, {}, {}, event_at FROM activity_ledger
          WHERE state = 2 AND id > {} ORDER BY id LIMIT {}",
        f.as_text("integration"),
        f.as_text("subject"),
        f.p(1),
        f.p(2),
    )
}

/// LLM ledger columns as `rows::llm_row` decodes them.
pub fn llm_row_columns(f: Flavor) -> String {
    format!(
        "id, version, {}, {}, {}, prompt_tokens, response_tokens, total_tokens, {},
         response_time_ms, {}, event_at, {}, {}",
        f.as_text("conversation_id"),
        f.as_text("model"),
        f.as_text("function_name"),
        f.decimal_text("cost_usd"),
        f.decimal_text("quality_score"),
        f.as_int("state"),
        f.as_text("subject"),
    )
}

pub fn unattributed_llm(f: Flavor) -> String {
    format!(
        "SELECT {} FROM llm_ledger WHERE state = 2 AND id > {} ORDER BY id LIMIT {}",
        llm_row_columns(f),
        f.p(1),
        f.p(2),
    )
}

pub fn rejects(f: Flavor) -> String {
    format!(
        "SELECT id, source, event_id, sequence_number, reason, rejected_at
           FROM rejected_records ORDER BY id LIMIT {}",
        f.p(1)
    )
}

/// Users by events counted, most first.
pub fn top_users(f: Flavor) -> String {
    format!(
        "SELECT {}, {} FROM user_event_counts GROUP BY slack_id
          HAVING SUM(event_count) <> 0 ORDER BY 2 DESC, 1 LIMIT {}",
        f.as_text("slack_id"),
        f.as_int("SUM(event_count)"),
        f.p(1)
    )
}

/// Quarantined records with their raw text, after an id, in id order.
pub fn rejected_raw(f: Flavor) -> String {
    format!(
        "SELECT id, source, event_id, sequence_number, reason, rejected_at, raw_record
           FROM rejected_records WHERE id > {} ORDER BY id LIMIT {}",
        f.p(1),
        f.p(2)
    )
}

pub fn delete_reject(f: Flavor) -> String {
    format!("DELETE FROM rejected_records WHERE id = {}", f.p(1))
}

pub fn totals(f: Flavor) -> String {
    super::totals_sql(f.int())
}

/// `(dow, hours, count)` cells of one user's heatmap.
pub(crate) async fn heatmap_cells<E: Engine>(
    e: &E,
    slack_id: &str,
    integration: Option<&str>,
) -> Result<Vec<(u8, u8, i64)>, StoreError> {
    let binds = [slack_id.into(), integration.into(), integration.into()];
    fetch_all(&mut e.pool(), &heatmap(E::FLAVOR), &binds, |r| {
        rows::cell(r)
    })
    .await
}

/// First and last event time of a subject's counted activity in the ledger.
pub(crate) async fn subject_span<E: Engine>(
    e: &E,
    slack_id: &str,
    integration: Option<&str>,
) -> Result<Option<(i64, i64)>, StoreError> {
    let binds = [slack_id.into(), integration.into(), integration.into()];
    let (first, last) = fetch_one(&mut e.pool(), &event_span(E::FLAVOR), &binds, |r| {
        Ok((r.opt_int(0)?, r.opt_int(1)?))
    })
    .await?;
    Ok(first.zip(last))
}

/// The keyset page parameters: ids after `after` (from the start: after
/// the empty id), at most `limit`.
fn page(after: Option<Identity>, limit: u32) -> [Bind; 2] {
    [
        after
            .map(|i| i.to_bytes().to_vec())
            .unwrap_or_default()
            .into(),
        i64::from(limit).into(),
    ]
}

/// Unattributed activity rows, in identity order, after `after`.
pub(crate) async fn unattributed_activity_rows<E: Engine>(
    e: &E,
    after: Option<Identity>,
    limit: u32,
) -> Result<Vec<ActivityRow>, StoreError> {
    let sql = unattributed_activity(E::FLAVOR);
    fetch_all(&mut e.pool(), &sql, &page(after, limit), |r| {
        rows::unattributed_activity(r)
    })
    .await
}

/// Unattributed LLM rows, in identity order, after `after`.
pub(crate) async fn unattributed_llm_rows<E: Engine>(
    e: &E,
    after: Option<Identity>,
    limit: u32,
) -> Result<Vec<LlmRow>, StoreError> {
    let sql = unattributed_llm(E::FLAVOR);
    fetch_all(&mut e.pool(), &sql, &page(after, limit), |r| {
        rows::llm_row(r)
    })
    .await
}

/// The first `limit` quarantined records.
pub(crate) async fn reject_listings<E: Engine>(
    e: &E,
    limit: u32,
) -> Result<Vec<RejectListing>, StoreError> {
    let binds = [i64::from(limit).into()];
    fetch_all(&mut e.pool(), &rejects(E::FLAVOR), &binds, |r| {
        rows::reject_listing(r)
    })
    .await
}

/// Quarantined records with their raw text, after id `after`.
pub(crate) async fn rejected_with_raw<E: Engine>(
    e: &E,
    after: i64,
    limit: u32,
) -> Result<Vec<(RejectListing, String)>, StoreError> {
    let binds = [after.into(), i64::from(limit).into()];
    fetch_all(&mut e.pool(), &rejected_raw(E::FLAVOR), &binds, |r| {
        Ok((rows::reject_listing(r)?, r.text(6)?))
    })
    .await
}

/// Drop quarantined records, in one transaction.
pub(crate) async fn delete_rejects<E: Engine>(e: &E, ids: &[i64]) -> Result<(), StoreError> {
    let sql = delete_reject(E::FLAVOR);
    let mut tx = e.begin().await?;
    for id in ids {
        tx.run(&sql, &[(*id).into()]).await?;
    }
    E::commit(tx).await
}

/// Users by events counted, most first.
pub(crate) async fn top_subjects<E: Engine>(
    e: &E,
    limit: u32,
) -> Result<Vec<(String, i64)>, StoreError> {
    let binds = [i64::from(limit).into()];
    fetch_all(&mut e.pool(), &top_users(E::FLAVOR), &binds, |r| {
        Ok((r.text(0)?, r.int(1)?))
    })
    .await
}

/// The database's totals.
pub(crate) async fn read_totals<E: Engine>(e: &E) -> Result<Totals, StoreError> {
    let r = fetch_one(&mut e.pool(), &totals(E::FLAVOR), &[], |r| {
        Ok((
            r.int(0)?,
            r.int(1)?,
            r.int(2)?,
            r.int(3)?,
            r.int(4)?,
            r.int(5)?,
        ))
    })
    .await?;
    Ok(super::totals_from(r))
}
