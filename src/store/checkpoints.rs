//! Backfill checkpoints (`backfill_checkpoints`): where each part of a
//! backfill job (a Scan segment, an export data file) got to, so that
//! `--resume` continues instead of starting over. Saved after the part's
//! batch committed: a crash in between re-applies one page, which the
//! ledger makes a no-op.

use super::StoreError;
use super::dialect::Flavor;
use super::exec::{Engine, Sql, fetch_all};

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

/// A backfill job's checkpoints, by part.
pub(crate) async fn checkpoints<E: Engine>(
    e: &E,
    job: &str,
) -> Result<Vec<Checkpoint>, StoreError> {
    fetch_all(
        &mut e.pool(),
        &checkpoints_sql(E::FLAVOR),
        &[job.into()],
        |r| {
            Ok(Checkpoint {
                part: r.text(0)?,
                position: r.opt_text(1)?,
                items: r.int(2)?,
                done: r.int(3)? != 0,
            })
        },
    )
    .await
}

/// Record a backfill part's progress.
pub(crate) async fn save_checkpoint<E: Engine>(
    e: &E,
    job: &str,
    c: &Checkpoint,
) -> Result<(), StoreError> {
    e.pool()
        .run(
            &save_checkpoint_sql(E::FLAVOR),
            &[
                job.into(),
                (&c.part).into(),
                c.position.clone().into(),
                c.items.into(),
                i64::from(c.done).into(),
                super::now_text().into(),
            ],
        )
        .await?;
    Ok(())
}

/// Unfinished Scan and export jobs with their latest progress time.
pub(crate) async fn unfinished_backfills<E: Engine>(
    e: &E,
) -> Result<Vec<(String, String)>, StoreError> {
    fetch_all(&mut e.pool(), &unfinished_jobs_sql(E::FLAVOR), &[], |r| {
        Ok((r.text(0)?, r.text(1)?))
    })
    .await
}

/// Forget a backfill job's progress.
pub(crate) async fn clear_checkpoints<E: Engine>(e: &E, job: &str) -> Result<(), StoreError> {
    e.pool()
        .run(&clear_checkpoints_sql(E::FLAVOR), &[job.into()])
        .await?;
    Ok(())
}
