//! Backfill checkpoints (`backfill_checkpoints`): where each part of a
//! backfill job (a Scan segment, an export data file) got to, so that
//! `--resume` continues instead of starting over. Saved after the part's
//! batch committed: a crash in between re-applies one page, which the
//! ledger makes a no-op.

use super::dialect::Flavor;

/// Progress of one part of a backfill job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub part: String,
    /// Where to continue (a Scan's `LastEvaluatedKey` as DynamoDB JSON).
    pub position: Option<String>,
    /// Items read so far.
    pub items: i64,
    pub done: bool,
}

impl Checkpoint {
    /// The job marker's row.
    pub fn marker(done: bool) -> Checkpoint {
        Checkpoint {
            part: JOB_MARKER.to_string(),
            position: None,
            items: 0,
            done,
        }
    }
}

pub fn checkpoints_sql(f: Flavor) -> String {
    format!(
        "SELECT {}, {}, items, {} FROM backfill_checkpoints WHERE job = {} ORDER BY part",
        f.as_text("part"),
        f.as_text("position"),
        f.as_int("done"),
        f.p(1)
    )
}

/// Parameters: job, part, position, items, done, updated_at.
pub fn save_checkpoint_sql(f: Flavor) -> String {
    use super::upsert::{Kind, Update, upsert_sql};
    upsert_sql(
        f,
        "backfill_checkpoints",
        &[("job", Kind::Text), ("part", Kind::Text)],
        &[
            ("position", Kind::Text, Update::Set),
            ("items", Kind::Int, Update::Set),
            ("done", Kind::Int, Update::Set),
            ("updated_at", Kind::Text, Update::Set),
        ],
    )
}

/// The part that marks a whole backfill job begun (`done` = 0) and
/// finished (`done` = 1): a job's parts exist only once they have started,
/// so their rows alone cannot tell a job with parts still to come.
pub const JOB_MARKER: &str = "(job)";

/// Backfill jobs (Scan or export, not `tail`) with a part not done, with
/// their latest progress time. A compaction refuses to run beside them.
pub fn unfinished_jobs_sql(f: Flavor) -> String {
    format!(
        "SELECT {}, MAX({}) FROM backfill_checkpoints
         WHERE done = 0 AND (job LIKE 'scan:%' OR job LIKE 'export:%')
         GROUP BY job ORDER BY job",
        f.as_text("job"),
        f.as_text("updated_at"),
    )
}

pub fn clear_checkpoints_sql(f: Flavor) -> String {
    format!("DELETE FROM backfill_checkpoints WHERE job = {}", f.p(1))
}

/// Checkpoint methods, the same for every dialect's store, from its
/// `Dialect` `$d` (a macro for the reason given at
/// `queries::common_methods!`).
macro_rules! checkpoint_methods {
    ($d:ty) => {
        pub async fn checkpoints(
            &self,
            job: &str,
        ) -> Result<Vec<super::checkpoints::Checkpoint>, StoreError> {
            let rows = sqlx::query_as::<_, (String, Option<String>, i64, i64)>(
                &super::checkpoints::checkpoints_sql(<$d as super::dialect::Dialect>::FLAVOR),
            )
            .bind(job)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(
                    |(part, position, items, done)| super::checkpoints::Checkpoint {
                        part,
                        position,
                        items,
                        done: done != 0,
                    },
                )
                .collect())
        }

        pub async fn save_checkpoint(
            &self,
            job: &str,
            c: &super::checkpoints::Checkpoint,
        ) -> Result<(), StoreError> {
            sqlx::query(&super::checkpoints::save_checkpoint_sql(
                <$d as super::dialect::Dialect>::FLAVOR,
            ))
            .bind(job)
            .bind(&c.part)
            .bind(&c.position)
            .bind(c.items)
            .bind(i64::from(c.done))
            .bind(super::now_text())
            .execute(&self.pool)
            .await?;
            Ok(())
        }

        pub async fn unfinished_backfills(&self) -> Result<Vec<(String, String)>, StoreError> {
            Ok(
                sqlx::query_as::<_, (String, String)>(&super::checkpoints::unfinished_jobs_sql(
                    <$d as super::dialect::Dialect>::FLAVOR,
                ))
                .fetch_all(&self.pool)
                .await?,
            )
        }

        pub async fn clear_checkpoints(&self, job: &str) -> Result<(), StoreError> {
            sqlx::query(&super::checkpoints::clear_checkpoints_sql(
                <$d as super::dialect::Dialect>::FLAVOR,
            ))
            .bind(job)
            .execute(&self.pool)
            .await?;
            Ok(())
        }
    };
}
pub(crate) use checkpoint_methods;
