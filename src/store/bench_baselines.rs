//! What `streamfold bench` needs from a store beyond batches: the
//! per-event baseline (one autocommit upsert per record, the pattern the
//! ledger replaced) and a ledger pre-filled with millions of rows (to
//! measure whether batches slow down as history grows).

use super::queries::Flavor;
use crate::aggregate::{ActivityRow, RowState};
use crate::domain::{Identity, Integration, Version};

/// The per-event baseline's table: `user_event_counts`' shape.
pub const PER_EVENT_DDL: &str = "CREATE TABLE bench_per_event (
    slack_id VARCHAR(64) NOT NULL, integration CHAR(1) NOT NULL,
    dow SMALLINT NOT NULL, hours SMALLINT NOT NULL,
    event_count INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (slack_id, integration, dow, hours))";

impl Flavor {
    /// `+1` for one (slack_id, integration, dow, hours), as one statement.
    pub fn per_event_upsert(self) -> String {
        let head = format!(
            "INSERT INTO bench_per_event (slack_id, integration, dow, hours, event_count)
             VALUES ({}, {}, {}, {}, 1)",
            self.p(1),
            self.p(2),
            self.p(3),
            self.p(4)
        );
        match self {
            Flavor::MySql => {
                format!("{head} ON DUPLICATE KEY UPDATE event_count = event_count + 1")
            }
            _ => format!(
                "{head} ON CONFLICT (slack_id, integration, dow, hours)
                 DO UPDATE SET event_count = bench_per_event.event_count + 1"
            ),
        }
    }
}

/// Ledger rows that match no generated identity (tombstones with hashed,
/// random-looking ids): history for the scaling measurement.
pub fn prefill_rows(from: usize, n: usize) -> Vec<ActivityRow> {
    (from..from + n)
        .map(|i| ActivityRow {
            id: Identity::from_canonical(format!("prefill-{i}").as_bytes()),
            version: Version::from_sequence_number(
                &(1_000_000_000_000_000_000u128 + i as u128).to_string(),
            )
            .expect("valid sequence number"),
            state: RowState::Tombstone,
            integration: Integration::Github,
            subject: None,
            bucket: None,
            event_at: None,
        })
        .collect()
}

/// The bench methods of a dialect store (`$db`: its sqlx database type).
/// Expects `FLAVOR` in scope.
macro_rules! bench_methods {
    ($db:ty) => {
        /// One autocommit upsert per key into a fresh `bench_per_event`.
        pub async fn per_event_baseline(
            &self,
            keys: &[(String, String, i64, i64)],
        ) -> Result<crate::bench::Run, StoreError> {
            use sqlx::Executor as _;
            self.pool
                .execute("DROP TABLE IF EXISTS bench_per_event")
                .await?;
            self.pool
                .execute(super::bench_baselines::PER_EVENT_DDL)
                .await?;
            let sql = FLAVOR.per_event_upsert();
            let started = std::time::Instant::now();
            for (slack, integration, dow, hours) in keys {
                sqlx::query(&sql)
                    .bind(slack)
                    .bind(integration)
                    .bind(*dow)
                    .bind(*hours)
                    .execute(&self.pool)
                    .await?;
            }
            let elapsed = started.elapsed();
            self.pool
                .execute("DROP TABLE IF EXISTS bench_per_event")
                .await?;
            Ok(crate::bench::Run {
                rows: keys.len(),
                elapsed,
                statements: keys.len(),
                batches: keys.len(),
                db_time: elapsed,
            })
        }

        /// Add `n` history rows to the activity ledger (multi-row INSERTs,
        /// 50,000 rows a transaction).
        pub async fn prefill_ledger(&self, n: usize) -> Result<(), StoreError> {
            let mut done = 0;
            while done < n {
                let rows = super::bench_baselines::prefill_rows(done, (n - done).min(50_000));
                let mut tx = self.pool.begin().await?;
                for chunk in rows.chunks(4000) {
                    super::stage::activity_values_into::<$db>("activity_ledger", chunk)
                        .build()
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                done += rows.len();
            }
            Ok(())
        }
    };
}
pub(crate) use bench_methods;
