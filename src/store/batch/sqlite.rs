//! SQLite's batch: `BEGIN IMMEDIATE` takes the only write lock, so the
//! read and the writes see one state; the read and each write are
//! multi-row statements (chunked by SQLite's parameter limit). SQLite has
//! no exact decimal type: the LLM reports a batch moves are read, added to
//! in Rust and written back (`reports`).

use super::super::sqlite::SqliteStore;
use super::super::{ApplyResult, RejectedRecord, StoreError};
use super::read::{activity_select, decode_into, llm_select};
use super::values::{activity_values_into, llm_values_into, reject_values};
use super::{BatchEngine, Plan};
use crate::aggregate::StagedRows;
use crate::aggregate::plan::LedgerRead;
use crate::store::dialect::Flavor;
use sqlx::{Sqlite, Transaction};

/// Bound parameters per statement (SQLite ≥ 3.32 allows 32766).
pub(crate) const MAX_PARAMS: usize = 32_000;

// The batch's statements are prepared once each and not kept
// (`persistent(false)`): their text depends on the batch's size, and a
// prepared statement of 32,000 parameters holds megabytes, which the
// connection's statement cache would keep for every size it met.

/// `col = excluded.col` for every column but `id`.
fn from_excluded(columns: &str) -> String {
    super::super::sql::but_id(columns, |c| format!("{c} = excluded.{c}"))
}

impl BatchEngine for SqliteStore {
    type Tx = Transaction<'static, Sqlite>;

    async fn begin(&self, result: &mut ApplyResult) -> Result<Self::Tx, StoreError> {
        let tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        result.statements += 1;
        Ok(tx)
    }

    async fn lock_read(
        tx: &mut Self::Tx,
        rows: &StagedRows,
        result: &mut ApplyResult,
    ) -> Result<LedgerRead, StoreError> {
        let mut read = LedgerRead::default();
        let reads = [
            (
                activity_select(Flavor::Sqlite, "activity_ledger l"),
                rows.activity.iter().map(|r| r.id).collect::<Vec<_>>(),
            ),
            (
                llm_select(Flavor::Sqlite, "llm_ledger l"),
                rows.llm.iter().map(|r| r.id).collect(),
            ),
        ];
        for (select, ids) in reads {
            for chunk in ids.chunks(MAX_PARAMS) {
                let list = vec!["?"; chunk.len()].join(", ");
                let text = format!("{select} WHERE l.id IN ({list}) ORDER BY l.id");
                let mut q = sqlx::query(&text).persistent(false);
                for id in chunk {
                    q = q.bind(id.to_bytes().to_vec());
                }
                let found = q.fetch_all(&mut **tx).await?;
                result.statements += 1;
                decode_into(&found, &mut read)?;
            }
        }
        Ok(read)
    }

    async fn write_plan(
        tx: &mut Self::Tx,
        plan: &Plan<'_>,
        rejects: &[RejectedRecord],
        result: &mut ApplyResult,
    ) -> Result<(), StoreError> {
        use super::super::sql::{ACTIVITY_COLUMNS, LLM_COLUMNS};
        // One writer: new and replaced rows go through one upsert.
        let activity: Vec<_> = plan
            .activity_new
            .iter()
            .chain(&plan.activity_replaced)
            .copied()
            .collect();
        for chunk in activity.chunks(MAX_PARAMS / 8) {
            let mut qb = activity_values_into::<Sqlite>("activity_ledger", chunk);
            qb.push(format!(
                " ON CONFLICT (id) DO UPDATE SET {}",
                from_excluded(ACTIVITY_COLUMNS)
            ));
            qb.build().persistent(false).execute(&mut **tx).await?;
            result.statements += 1;
        }
        for chunk in plan.counts.chunks(MAX_PARAMS / 5) {
            let mut qb = sqlx::QueryBuilder::<Sqlite>::new(
                "INSERT INTO user_event_counts (slack_id, integration, dow, hours, event_count) ",
            );
            qb.push_values(chunk, |mut b, (cell, d)| {
                b.push_bind(cell.slack_id.as_str())
                    .push_bind(cell.integration.code())
                    .push_bind(i64::from(cell.dow))
                    .push_bind(i64::from(cell.hour))
                    .push_bind(*d);
            });
            qb.push(
                " ON CONFLICT (slack_id, integration, dow, hours)
                  DO UPDATE SET event_count = user_event_counts.event_count + excluded.event_count",
            );
            qb.build().persistent(false).execute(&mut **tx).await?;
            result.statements += 1;
        }
        let llm: Vec<_> = plan
            .llm_new
            .iter()
            .chain(&plan.llm_replaced)
            .copied()
            .collect();
        for chunk in llm.chunks(MAX_PARAMS / 15) {
            let mut qb = llm_values_into::<Sqlite>("llm_ledger", chunk);
            qb.push(format!(
                " ON CONFLICT (id) DO UPDATE SET {}",
                from_excluded(LLM_COLUMNS)
            ));
            qb.build().persistent(false).execute(&mut **tx).await?;
            result.statements += 1;
        }
        if !plan.reports.is_empty() {
            super::sqlite_reports::apply_reports(tx, &plan.reports, result).await?;
        }
        let now = super::super::now_text();
        for chunk in rejects.chunks(MAX_PARAMS / 8) {
            let mut qb = reject_values::<Sqlite>(chunk, &now);
            qb.push(" ON CONFLICT (record_key) DO NOTHING");
            qb.build().persistent(false).execute(&mut **tx).await?;
            result.statements += 1;
        }
        Ok(())
    }

    async fn commit(tx: Self::Tx, result: &mut ApplyResult) -> Result<(), StoreError> {
        super::commit_tx(tx, result).await
    }

    async fn rollback(tx: Self::Tx) {
        super::rollback_tx(tx).await
    }
}
