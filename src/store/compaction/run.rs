//! A compaction run as statements, written once for every engine: begin
//! (or take up) a run, announce its horizon, then fold and delete the
//! ledgers chunk by chunk in key order (`base`), one transaction each,
//! until done or the deadline. The rules it follows are in the parent
//! module.

use super::base::{DELETE_IDS, delete_ids_sql, drop_activity_chunk, drop_llm_chunk};
use super::{
    CompactOptions, CompactReport, LEDGERS, Run, activity_done_sql, announce_left, announced_sql,
    begun_sql, chunk_end_sql, dropped_sql, finish_sql, horizon_sql, progress_sql, start_sql,
    unfinished_sql, wait_until,
};
use crate::store::StoreError;
use crate::store::exec::{Bind, Engine, Sql, fetch_one, fetch_optional};

/// The store's compaction horizon (`None`: never compacted).
pub(crate) async fn horizon<E: Engine>(e: &E) -> Result<Option<i64>, StoreError> {
    fetch_one(&mut e.pool(), horizon_sql(), &[], |r| r.opt_int(0)).await
}

/// Begin a run (or take up the unfinished one), announce its horizon, and
/// delete chunk by chunk until done or the deadline.
pub(crate) async fn compact<E: Engine>(
    e: &E,
    opts: &CompactOptions,
) -> Result<CompactReport, StoreError> {
    let f = E::FLAVOR;
    let unfinished = fetch_optional(&mut e.pool(), &unfinished_sql(f), &[], |r| {
        let run = Run {
            id: r.int(0)?,
            horizon: r.int(1)?,
            include_unattributed: r.int(2)? != 0,
            activity_after: r.opt_bytes(3)?,
            llm_after: r.opt_bytes(4)?,
            activity_done: r.int(5)? != 0,
        };
        Ok((run, r.text(6)?))
    })
    .await?;
    let (run, resumed, wait) = match unfinished {
        // Taken up before its announcement was over.
        Some((run, started)) => (run, true, announce_left(&started, opts.announce)),
        None => {
            // A horizon no larger than one already announced needs only
            // what is left of that announcement (consumers guard with the
            // larger one); a larger one, all of it.
            let announced = fetch_optional(
                &mut e.pool(),
                &announced_sql(f),
                &[opts.horizon.into()],
                |r| r.text(0),
            )
            .await?;
            let wait = match announced {
                Some(started) => announce_left(&started, opts.announce),
                None => opts.announce,
            };
            let started = crate::store::now_text();
            e.pool()
                .run(
                    &start_sql(f),
                    &[
                        opts.horizon.into(),
                        i64::from(opts.include_unattributed).into(),
                        (&started).into(),
                    ],
                )
                .await?;
            let id = fetch_one(
                &mut e.pool(),
                &begun_sql(f),
                &[opts.horizon.into(), started.into()],
                |r| r.opt_int(0),
            )
            .await?;
            (
                Run {
                    id: id.unwrap_or_default(),
                    horizon: opts.horizon,
                    include_unattributed: opts.include_unattributed,
                    activity_after: None,
                    llm_after: None,
                    activity_done: false,
                },
                false,
                wait,
            )
        }
    };
    if !wait.is_zero()
        && let Some(tell) = &opts.on_wait
    {
        let _ = tell.send(wait);
    }
    let mut finished = wait_until(wait, opts.deadline).await;
    for (i, ledger) in LEDGERS.iter().enumerate() {
        if !finished {
            break;
        }
        if i == 0 && run.activity_done {
            continue;
        }
        let mut after = if i == 0 {
            run.activity_after.clone()
        } else {
            run.llm_after.clone()
        };
        loop {
            if opts
                .deadline
                .is_some_and(|d| std::time::Instant::now() >= d)
            {
                finished = false;
                break;
            }
            let mut binds: Vec<Bind> = after.iter().cloned().map(Bind::from).collect();
            binds.push(i64::from(opts.chunk.max(1)).into());
            let end_sql = chunk_end_sql(f, ledger, after.is_none());
            let end = fetch_optional(&mut e.pool(), &end_sql, &binds, |r| r.bytes(0)).await?;
            let Some(end) = end else { break };
            // The chunk's rows are read under lock, their counts added to
            // the compaction base, the rows deleted and the progress saved
            // in one transaction, so a retried or resumed run neither
            // repeats nor skips, and the aggregates stay base + ledger
            // (`base`).
            let mut tx = e.begin().await?;
            let ids = if i == 0 {
                drop_activity_chunk(&mut tx, f, after.as_ref(), &end, &run).await?
            } else {
                drop_llm_chunk(&mut tx, f, after.as_ref(), &end, &run).await?
            };
            for chunk in ids.chunks(DELETE_IDS) {
                let binds: Vec<Bind> = chunk.iter().cloned().map(Bind::from).collect();
                tx.run(&delete_ids_sql(f, ledger, chunk.len()), &binds)
                    .await?;
            }
            let dropped = ids.len() as i64;
            tx.run(
                &progress_sql(f, ledger),
                &[end.clone().into(), dropped.into(), run.id.into()],
            )
            .await?;
            E::commit(tx).await?;
            after = Some(end);
        }
        if !finished {
            break;
        }
        if i == 0 {
            e.pool()
                .run(&activity_done_sql(f), &[run.id.into()])
                .await?;
        }
    }
    if finished {
        e.pool()
            .run(
                &finish_sql(f),
                &[crate::store::now_text().into(), run.id.into()],
            )
            .await?;
    }
    let (activity_dropped, llm_dropped) =
        fetch_one(&mut e.pool(), &dropped_sql(f), &[run.id.into()], |r| {
            Ok((r.int(0)?, r.int(1)?))
        })
        .await?;
    Ok(CompactReport {
        run: run.id,
        horizon: run.horizon,
        resumed,
        activity_dropped,
        llm_dropped,
        finished,
    })
}
