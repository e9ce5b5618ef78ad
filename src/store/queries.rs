//! The store's read queries and transaction shell, written once for every
//! dialect: the SQL text as functions of the dialect's `Flavor`, and
//! `common_methods!`, which expands the same method bodies into each
//! dialect's store (their pool types differ).

use super::dialect::Flavor;

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

/// Methods every dialect store has, identical but for the pool type:
/// migrations and the read queries, all
/// from the store's `Dialect` `$d`. A macro because the stores' pools are
/// distinct concrete types and generic code over `Pool<DB>` would have to
/// state `for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>` and
/// a `Decode + Type` bound per column type read.
macro_rules! common_methods {
    ($d:ty) => {
        pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
            <$d as super::dialect::Dialect>::migrate(&self.pool).await
        }

        pub async fn pending_migrations(&self) -> Result<usize, StoreError> {
            Ok(
                super::pending_migrations(<$d as super::dialect::Dialect>::migrator(), &self.pool)
                    .await,
            )
        }

        pub async fn heatmap(
            &self,
            slack_id: &str,
            integration: Option<&str>,
        ) -> Result<Vec<(u8, u8, i64)>, StoreError> {
            let rows = sqlx::query(&super::queries::heatmap(
                <$d as super::dialect::Dialect>::FLAVOR,
            ))
            .bind(slack_id)
            .bind(integration)
            .bind(integration)
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(super::rows::cell).collect()
        }

        pub async fn event_span(
            &self,
            slack_id: &str,
            integration: Option<&str>,
        ) -> Result<Option<(i64, i64)>, StoreError> {
            let (first, last): (Option<i64>, Option<i64>) = sqlx::query_as(
                &super::queries::event_span(<$d as super::dialect::Dialect>::FLAVOR),
            )
            .bind(slack_id)
            .bind(integration)
            .bind(integration)
            .fetch_one(&self.pool)
            .await?;
            Ok(first.zip(last))
        }

        pub async fn unattributed_activity(
            &self,
            after: Option<crate::domain::Identity>,
            limit: u32,
        ) -> Result<Vec<ActivityRow>, StoreError> {
            let rows = sqlx::query(&super::queries::unattributed_activity(
                <$d as super::dialect::Dialect>::FLAVOR,
            ))
            .bind(after.map(|i| i.to_bytes().to_vec()).unwrap_or_default())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(super::rows::unattributed_activity)
                .collect()
        }

        pub async fn unattributed_llm(
            &self,
            after: Option<crate::domain::Identity>,
            limit: u32,
        ) -> Result<Vec<LlmRow>, StoreError> {
            let rows = sqlx::query(&super::queries::unattributed_llm(
                <$d as super::dialect::Dialect>::FLAVOR,
            ))
            .bind(after.map(|i| i.to_bytes().to_vec()).unwrap_or_default())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(super::rows::llm_row).collect()
        }

        pub async fn rejects(&self, limit: u32) -> Result<Vec<RejectListing>, StoreError> {
            let rows = sqlx::query(&super::queries::rejects(
                <$d as super::dialect::Dialect>::FLAVOR,
            ))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(super::rows::reject_listing).collect()
        }

        pub async fn rejected_raw(
            &self,
            after: i64,
            limit: u32,
        ) -> Result<Vec<(RejectListing, String)>, StoreError> {
            let rows = sqlx::query(&super::queries::rejected_raw(
                <$d as super::dialect::Dialect>::FLAVOR,
            ))
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    use sqlx::Row as _;
                    Ok((super::rows::reject_listing(r)?, r.try_get::<String, _>(6)?))
                })
                .collect()
        }

        pub async fn delete_rejects(&self, ids: &[i64]) -> Result<(), StoreError> {
            let mut tx = self.pool.begin().await?;
            for id in ids {
                sqlx::query(&super::queries::delete_reject(
                    <$d as super::dialect::Dialect>::FLAVOR,
                ))
                .bind(*id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        }

        pub async fn top_users(&self, limit: u32) -> Result<Vec<(String, i64)>, StoreError> {
            Ok(
                sqlx::query_as::<_, (String, i64)>(&super::queries::top_users(
                    <$d as super::dialect::Dialect>::FLAVOR,
                ))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?,
            )
        }

        pub async fn totals(&self) -> Result<Totals, StoreError> {
            let r = sqlx::query_as::<_, (i64, i64, i64, i64, i64, i64)>(&super::queries::totals(
                <$d as super::dialect::Dialect>::FLAVOR,
            ))
            .fetch_one(&self.pool)
            .await?;
            Ok(super::totals_from(r))
        }
    };
}
pub(crate) use common_methods;
