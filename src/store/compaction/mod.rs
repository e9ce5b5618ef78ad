//! Ledger compaction (DESIGN §4): dropping ledger rows whose event is older
//! than an operator's horizon, and the guard that keeps the aggregates
//! exact afterwards.
//!
//! **What compaction gives up.** A ledger row is what makes a second
//! delivery of its item a no-op. Once the row is gone, the store can no
//! longer tell "counted, then compacted" from "never seen". So, after a
//! compaction with horizon `H` (the largest of every run, finished or not):
//!
//! - a staged live or unattributed row whose event time is before `H` and
//!   whose identity has no ledger row is *not counted* (`before_horizon`):
//!   replays, redeliveries and backfills of old items never count twice,
//!   but an old item that was never counted (a first backfill of a table,
//!   a file never replayed) is not counted either;
//! - a change to an item whose row was compacted (a MODIFY moving its
//!   event time past `H`, an application REMOVE) finds no contribution to
//!   replace: a MODIFY past `H` counts the item as new (the old
//!   contribution stays in the aggregates), a REMOVE retracts nothing.
//!   Choose a horizon beyond the time items are still changed.
//!
//! Tombstones have no event time and are kept; unattributed rows are kept
//! unless asked (dropping one gives up counting it after a later link).
//!
//! **Protocol.** A run first records its horizon, then waits (`announce`)
//! for every consumer to see it (each `Store` re-reads the horizon when its
//! cached copy is older than `StoreOptions::horizon_refresh`), then deletes
//! in chunks of the primary key order, one short transaction each: the
//! chunk's rows read under lock, the live ones' contributions added to the
//! compaction bases (`base`: what `streamfold audit` adds back), the rows
//! deleted by id and the progress saved, so a run cut short (a Lambda's
//! time limit) resumes where it stopped. A batch locks the ledger rows it checks
//! (`FOR UPDATE` on MySQL and PostgreSQL; SQLite has one writer), so a
//! chunk's DELETE and a batch never interleave on one row.

pub(crate) mod base;
pub(crate) mod run;

use super::dialect::Flavor;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What `Store::compact` is asked to do.
#[derive(Clone, Debug)]
pub struct CompactOptions {
    /// Epoch seconds: rows whose event time is before it are dropped.
    pub horizon: i64,
    /// Also drop unattributed rows (they can then never be counted).
    pub include_unattributed: bool,
    /// Ledger rows examined per DELETE.
    pub chunk: u32,
    /// How long to wait after announcing a new, larger horizon before the
    /// first DELETE: at least the consumers' `horizon_refresh` plus the
    /// longest a batch transaction can last.
    pub announce: Duration,
    /// Stop (resumable) once this instant has passed.
    pub deadline: Option<Instant>,
    /// Told how long the run is about to wait for its announcement, when
    /// it waits at all (the command line counts it down).
    pub on_wait: Option<tokio::sync::mpsc::UnboundedSender<Duration>>,
}

/// What a compaction run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CompactReport {
    pub run: i64,
    pub horizon: i64,
    /// The run was begun by an earlier call and resumed here.
    pub resumed: bool,
    pub activity_dropped: i64,
    pub llm_dropped: i64,
    /// Whether both ledgers were walked to the end.
    pub finished: bool,
}

/// One run's row in `ledger_compactions`.
#[derive(Clone, Debug)]
pub(crate) struct Run {
    pub id: i64,
    pub horizon: i64,
    pub include_unattributed: bool,
    pub activity_after: Option<Vec<u8>>,
    pub llm_after: Option<Vec<u8>>,
    pub activity_done: bool,
}

/// The shortest horizon, in days, the command line and the scheduled Lambda
/// task accept: records that old still arrive (stream retention, late
/// items, retried batches) and would be skipped.
pub const MIN_AGE_DAYS: u64 = 7;

/// How much of the announcement a run begun at `started_at` (RFC 3339)
/// still has to wait (a resumed run may be taken up early).
pub(crate) fn announce_left(started_at: &str, announce: Duration) -> Duration {
    let since = chrono::DateTime::parse_from_rfc3339(started_at)
        .map(|t| {
            (chrono::Utc::now() - t.to_utc())
                .to_std()
                .unwrap_or_default()
        })
        .unwrap_or_default();
    announce.saturating_sub(since)
}

/// Sleep `wait`, but not past `deadline`; whether the whole wait was slept.
pub(crate) async fn wait_until(wait: Duration, deadline: Option<Instant>) -> bool {
    let cap = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    match cap {
        Some(c) if c < wait => {
            tokio::time::sleep(c).await;
            false
        }
        _ => {
            tokio::time::sleep(wait).await;
            true
        }
    }
}

/// The two ledgers, walked in this order.
pub(crate) const LEDGERS: [&str; 2] = ["activity_ledger", "llm_ledger"];

pub(crate) fn horizon_sql() -> &'static str {
    "SELECT MAX(horizon) FROM ledger_compactions"
}

pub(crate) fn unfinished_sql(f: Flavor) -> String {
    format!(
        "SELECT id, horizon, {}, activity_after, llm_after, {}, {}
           FROM ledger_compactions WHERE finished_at IS NULL ORDER BY id LIMIT 1",
        f.as_int("include_unattributed"),
        f.as_int("activity_done"),
        f.as_text("started_at")
    )
}

pub(crate) fn start_sql(f: Flavor) -> String {
    format!(
        "INSERT INTO ledger_compactions (horizon, include_unattributed, started_at)
         VALUES ({}, {}, {})",
        f.p(1),
        f.p(2),
        f.p(3)
    )
}

/// The run just begun. Parameters: its horizon and start time.
pub(crate) fn begun_sql(f: Flavor) -> String {
    format!(
        "SELECT MAX(id) FROM ledger_compactions WHERE horizon = {} AND started_at = {}",
        f.p(1),
        f.p(2)
    )
}

/// When consumers began to guard with a horizon at least the parameter:
/// the start of the first run that announced one.
pub(crate) fn announced_sql(f: Flavor) -> String {
    format!(
        "SELECT {} FROM ledger_compactions WHERE horizon >= {} ORDER BY id LIMIT 1",
        f.as_text("started_at"),
        f.p(1)
    )
}

/// The last id of the next chunk of `ledger` after the `after` parameter
/// (`first`: from the start, no parameter); no row at the end.
pub(crate) fn chunk_end_sql(f: Flavor, ledger: &str, first: bool) -> String {
    let lower = if first {
        String::new()
    } else {
        format!("WHERE id > {}", f.p(1))
    };
    let limit = f.p(if first { 1 } else { 2 });
    // Not MAX(id): PostgreSQL has no max(bytea).
    format!(
        "SELECT id FROM (SELECT id FROM {ledger} {lower} ORDER BY id LIMIT {limit}) c
          ORDER BY id DESC LIMIT 1"
    )
}

/// Record a chunk's progress. Parameters: after, dropped, run id.
pub(crate) fn progress_sql(f: Flavor, ledger: &str) -> String {
    let (after, dropped) = if ledger == LEDGERS[0] {
        ("activity_after", "activity_dropped")
    } else {
        ("llm_after", "llm_dropped")
    };
    format!(
        "UPDATE ledger_compactions SET {after} = {}, {dropped} = {dropped} + {} WHERE id = {}",
        f.p(1),
        f.p(2),
        f.p(3)
    )
}

pub(crate) fn activity_done_sql(f: Flavor) -> String {
    format!(
        "UPDATE ledger_compactions SET activity_done = 1 WHERE id = {}",
        f.p(1)
    )
}

pub(crate) fn finish_sql(f: Flavor) -> String {
    format!(
        "UPDATE ledger_compactions SET finished_at = {} WHERE id = {}",
        f.p(1),
        f.p(2)
    )
}

pub(crate) fn dropped_sql(f: Flavor) -> String {
    format!(
        "SELECT activity_dropped, llm_dropped FROM ledger_compactions WHERE id = {}",
        f.p(1)
    )
}

/// The store's compaction horizon, re-read when older than `refresh`.
#[derive(Debug)]
pub(crate) struct HorizonCache {
    refresh: Duration,
    read: Mutex<Option<(Instant, Option<i64>)>>,
}

impl HorizonCache {
    pub fn new(refresh: Duration) -> HorizonCache {
        HorizonCache {
            refresh,
            read: Mutex::new(None),
        }
    }

    /// The cached horizon, unless it is stale.
    pub fn fresh(&self) -> Option<Option<i64>> {
        let read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        match *read {
            Some((at, h)) if at.elapsed() < self.refresh => Some(h),
            _ => None,
        }
    }

    pub fn store(&self, horizon: Option<i64>) {
        *self.read.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), horizon));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::RowState;

    #[test]
    fn only_old_live_and_unattributed_rows_are_guarded() {
        use crate::aggregate::plan::before_horizon;
        let rows = [
            (RowState::Live, Some(99), true),
            (RowState::Live, Some(100), false),
            (RowState::Unattributed, Some(5), true),
            (RowState::Tombstone, None, false),
            (RowState::Live, None, true),
        ];
        for (state, at, guarded) in rows {
            assert_eq!(
                before_horizon(state, at, Some(100)),
                guarded,
                "{state:?} {at:?}"
            );
            assert!(!before_horizon(state, at, None));
        }
    }

    #[test]
    fn a_run_taken_up_early_waits_the_rest_of_its_announcement() {
        let now = chrono::Utc::now();
        let ago = |s: i64| (now - chrono::Duration::seconds(s)).to_rfc3339();
        let left = announce_left(&ago(30), Duration::from_secs(120));
        assert!(
            left <= Duration::from_secs(90) && left >= Duration::from_secs(85),
            "{left:?}"
        );
        assert_eq!(
            announce_left(&ago(300), Duration::from_secs(120)),
            Duration::ZERO
        );
        // An unreadable start time waits the whole announcement.
        assert_eq!(
            announce_left("?", Duration::from_secs(5)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn the_cached_horizon_goes_stale() {
        let c = HorizonCache::new(Duration::from_millis(20));
        assert_eq!(c.fresh(), None);
        c.store(Some(7));
        assert_eq!(c.fresh(), Some(Some(7)));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(c.fresh(), None);
    }
}
