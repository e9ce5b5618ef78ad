//! The store's read queries and transaction shell, written once for every
//! dialect. `Flavor` supplies what differs (placeholders, casts, text
//! conversions); `common_methods!` expands the same method bodies into each
//! dialect's store, whose pool types differ.

/// What differs between the dialects' SQL text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Sqlite,
    MySql,
    Postgres,
}

impl Flavor {
    /// The `n`th bind parameter (1-based).
    pub fn p(self, n: usize) -> String {
        match self {
            Flavor::Postgres => format!("${n}"),
            _ => "?".to_string(),
        }
    }

    /// Name of a 64-bit integer in `CAST(… AS …)`.
    pub fn int(self) -> &'static str {
        match self {
            Flavor::Sqlite => "INTEGER",
            Flavor::MySql => "SIGNED",
            Flavor::Postgres => "BIGINT",
        }
    }

    /// A column as a 64-bit integer.
    pub fn as_int(self, col: &str) -> String {
        format!("CAST({col} AS {})", self.int())
    }

    /// A text column as plain text (MySQL reports binary-collated text as
    /// BINARY; PostgreSQL `CHAR(n)` as bpchar).
    pub fn as_text(self, col: &str) -> String {
        match self {
            Flavor::Sqlite => col.to_string(),
            Flavor::MySql => format!("CONVERT({col} USING utf8mb4)"),
            Flavor::Postgres => format!("CAST({col} AS TEXT)"),
        }
    }

    /// A decimal column as its exact text.
    pub fn decimal_text(self, col: &str) -> String {
        match self {
            Flavor::Sqlite => col.to_string(),
            Flavor::MySql => format!("CAST({col} AS CHAR)"),
            Flavor::Postgres => format!("CAST({col} AS TEXT)"),
        }
    }

    /// A text parameter, typed where the engine needs it (`… IS NULL`).
    pub(crate) fn text_param(self, n: usize) -> String {
        match self {
            Flavor::Postgres => format!("CAST(${n} AS TEXT)"),
            _ => "?".to_string(),
        }
    }

    pub fn heatmap(self) -> String {
        format!(
            "SELECT {}, {}, {} FROM user_event_counts
              WHERE slack_id = {} AND ({} IS NULL OR integration = {})
              GROUP BY dow, hours ORDER BY dow, hours",
            self.as_int("dow"),
            self.as_int("hours"),
            self.as_int("SUM(event_count)"),
            self.p(1),
            self.text_param(2),
            self.text_param(3),
        )
    }

    pub fn unattributed_activity(self) -> String {
        format!(
            "SELECT id, version, {}, {}, event_at FROM activity_ledger
              WHERE state = 2 AND id > {} ORDER BY id LIMIT {}",
            self.as_text("integration"),
            self.as_text("subject"),
            self.p(1),
            self.p(2),
        )
    }

    /// LLM ledger columns as `rows::llm_row` decodes them.
    pub fn llm_row_columns(self) -> String {
        format!(
            "id, version, {}, {}, {}, prompt_tokens, response_tokens, total_tokens, {},
             response_time_ms, {}, event_at, {}, {}",
            self.as_text("conversation_id"),
            self.as_text("model"),
            self.as_text("function_name"),
            self.decimal_text("cost_usd"),
            self.decimal_text("quality_score"),
            self.as_int("state"),
            self.as_text("subject"),
        )
    }

    pub fn unattributed_llm(self) -> String {
        format!(
            "SELECT {} FROM llm_ledger WHERE state = 2 AND id > {} ORDER BY id LIMIT {}",
            self.llm_row_columns(),
            self.p(1),
            self.p(2),
        )
    }

    /// The LLM ledger rows of the staged identities with their counted
    /// contributions, in identity order (`ids`: the dialect's way to name
    /// the staged identities; the dialect appends its row lock).
    pub fn existing_llm(self, ids: &str) -> String {
        format!(
            "SELECT {} FROM llm_ledger WHERE id IN ({ids}) ORDER BY id",
            self.llm_row_columns()
        )
    }

    pub fn rejects(self) -> String {
        format!(
            "SELECT id, source, event_id, sequence_number, reason, rejected_at
               FROM rejected_records ORDER BY id LIMIT {}",
            self.p(1)
        )
    }

    /// Users by events counted, most first.
    pub fn top_users(self) -> String {
        format!(
            "SELECT {}, {} FROM user_event_counts GROUP BY slack_id
              HAVING SUM(event_count) <> 0 ORDER BY 2 DESC, 1 LIMIT {}",
            self.as_text("slack_id"),
            self.as_int("SUM(event_count)"),
            self.p(1)
        )
    }

    /// Quarantined records with their raw text, after an id, in id order.
    pub fn rejected_raw(self) -> String {
        format!(
            "SELECT id, source, event_id, sequence_number, reason, rejected_at, raw_record
               FROM rejected_records WHERE id > {} ORDER BY id LIMIT {}",
            self.p(1),
            self.p(2)
        )
    }

    pub fn delete_reject(self) -> String {
        format!("DELETE FROM rejected_records WHERE id = {}", self.p(1))
    }

    pub fn totals(self) -> String {
        super::totals_sql(self.int())
    }
}

/// Methods every dialect store has, identical but for the pool type:
/// migrations, the transaction shell of a batch, and the read queries.
/// Expects in scope: `MIGRATOR`, `FLAVOR`, `BEGIN` (the statement that
/// opens a batch transaction, or `None` for the default) and the dialect's
/// `apply_steps` (the batch's statements inside the transaction).
macro_rules! common_methods {
    () => {
        pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
            super::run_migrations(&MIGRATOR, &self.pool).await
        }

        pub async fn pending_migrations(&self) -> Result<usize, StoreError> {
            Ok(super::pending_migrations(&MIGRATOR, &self.pool).await)
        }

        /// One attempt at applying a batch, in one transaction.
        pub async fn apply_once(
            &self,
            rows: &StagedRows,
            rejects: &[RejectRow],
        ) -> Result<ApplyResult, StoreError> {
            let mut result = ApplyResult::default();
            let mut tx = match BEGIN {
                Some(statement) => self.pool.begin_with(statement).await?,
                None => self.pool.begin().await?,
            };
            result.statements += 1;
            apply_steps(&mut tx, rows, rejects, &mut result).await?;
            tx.commit().await?;
            result.statements += 1;
            Ok(result)
        }

        pub async fn heatmap(
            &self,
            slack_id: &str,
            integration: Option<&str>,
        ) -> Result<Vec<(u8, u8, i64)>, StoreError> {
            let rows = sqlx::query(&FLAVOR.heatmap())
                .bind(slack_id)
                .bind(integration)
                .bind(integration)
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(super::rows::cell).collect()
        }

        pub async fn unattributed_activity(
            &self,
            after: Option<crate::domain::Identity>,
            limit: u32,
        ) -> Result<Vec<ActivityRow>, StoreError> {
            let rows = sqlx::query(&FLAVOR.unattributed_activity())
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
            let rows = sqlx::query(&FLAVOR.unattributed_llm())
                .bind(after.map(|i| i.to_bytes().to_vec()).unwrap_or_default())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(super::rows::llm_row).collect()
        }

        pub async fn rejects(&self, limit: u32) -> Result<Vec<RejectListing>, StoreError> {
            let rows = sqlx::query(&FLAVOR.rejects())
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
            let rows = sqlx::query(&FLAVOR.rejected_raw())
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
                sqlx::query(&FLAVOR.delete_reject())
                    .bind(*id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        }

        pub async fn top_users(&self, limit: u32) -> Result<Vec<(String, i64)>, StoreError> {
            Ok(sqlx::query_as::<_, (String, i64)>(&FLAVOR.top_users())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?)
        }

        pub async fn totals(&self) -> Result<Totals, StoreError> {
            let r = sqlx::query_as::<_, (i64, i64, i64, i64, i64, i64)>(&FLAVOR.totals())
                .fetch_one(&self.pool)
                .await?;
            Ok(super::totals_from(r))
        }
    };
}
pub(crate) use common_methods;
