//! The compaction run and the horizon guard as statements, expanded into
//! each dialect's store (`compaction_methods!`) and batch transaction
//! (`horizon_guard!`); the rules they follow are in the parent module.

/// Compaction methods and the horizon guard, the same for every dialect's
/// store, from its `Dialect` `$d` (a macro for the reason given at
/// `queries::common_methods!`).
macro_rules! compaction_methods {
    ($d:ty) => {
        /// The store's compaction horizon (`None`: never compacted).
        pub async fn compaction_horizon(&self) -> Result<Option<i64>, StoreError> {
            let (h,): (Option<i64>,) = sqlx::query_as(super::compaction::horizon_sql())
                .fetch_one(&self.pool)
                .await?;
            Ok(h)
        }

        /// Begin a run (or take up the unfinished one), announce its
        /// horizon, and delete chunk by chunk until done or the deadline.
        pub async fn compact(
            &self,
            opts: &super::compaction::CompactOptions,
        ) -> Result<super::compaction::CompactReport, StoreError> {
            use super::compaction::*;
            const F: super::dialect::Flavor = <$d as super::dialect::Dialect>::FLAVOR;
            type Unfinished = (i64, i64, i64, Option<Vec<u8>>, Option<Vec<u8>>, i64, String);
            let unfinished: Option<Unfinished> = sqlx::query_as(&unfinished_sql(F))
                .fetch_optional(&self.pool)
                .await?;
            let (run, resumed, wait) = match unfinished {
                Some((id, horizon, unattributed, activity_after, llm_after, done, started)) => (
                    Run {
                        id,
                        horizon,
                        include_unattributed: unattributed != 0,
                        activity_after,
                        llm_after,
                        activity_done: done != 0,
                    },
                    true,
                    // Taken up before its announcement was over.
                    announce_left(&started, opts.announce),
                ),
                None => {
                    // A horizon no larger than one already announced needs
                    // only what is left of that announcement (consumers
                    // guard with the larger one); a larger one, all of it.
                    let announced: Option<(String,)> = sqlx::query_as(&announced_sql(F))
                        .bind(opts.horizon)
                        .fetch_optional(&self.pool)
                        .await?;
                    let wait = match announced {
                        Some((started,)) => announce_left(&started, opts.announce),
                        None => opts.announce,
                    };
                    let started = super::now_text();
                    sqlx::query(&start_sql(F))
                        .bind(opts.horizon)
                        .bind(i64::from(opts.include_unattributed))
                        .bind(&started)
                        .execute(&self.pool)
                        .await?;
                    let (id,): (Option<i64>,) = sqlx::query_as(&begun_sql(F))
                        .bind(opts.horizon)
                        .bind(&started)
                        .fetch_one(&self.pool)
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
                    let first = after.is_none();
                    let end_sql = chunk_end_sql(F, ledger, first);
                    let mut q = sqlx::query_as::<_, (Vec<u8>,)>(&end_sql);
                    if let Some(a) = &after {
                        q = q.bind(a.clone());
                    }
                    let end = q
                        .bind(i64::from(opts.chunk.max(1)))
                        .fetch_optional(&self.pool)
                        .await?;
                    let Some((end,)) = end else { break };
                    // The chunk's DELETE and its progress commit together,
                    // so a retried or resumed run neither repeats nor skips.
                    let sql = delete_sql(F, ledger, first, run.include_unattributed);
                    let mut tx = self.pool.begin().await?;
                    let mut del = sqlx::query(&sql);
                    if let Some(a) = &after {
                        del = del.bind(a.clone());
                    }
                    let dropped = del
                        .bind(end.clone())
                        .bind(run.horizon)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    sqlx::query(&progress_sql(F, ledger))
                        .bind(end.clone())
                        .bind(dropped as i64)
                        .bind(run.id)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    after = Some(end);
                }
                if !finished {
                    break;
                }
                if i == 0 {
                    sqlx::query(&activity_done_sql(F))
                        .bind(run.id)
                        .execute(&self.pool)
                        .await?;
                }
            }
            if finished {
                sqlx::query(&finish_sql(F))
                    .bind(super::now_text())
                    .bind(run.id)
                    .execute(&self.pool)
                    .await?;
            }
            let (activity_dropped, llm_dropped): (i64, i64) = sqlx::query_as(&dropped_sql(F))
                .bind(run.id)
                .fetch_one(&self.pool)
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
    };
}
pub(crate) use compaction_methods;

/// Inside a batch transaction `$tx` of dialect `$d`: the staged rows of
/// `$rows` that the horizon `$horizon` guards and that have no ledger row
/// (read under lock), removed from a copy of the rows, which is returned
/// with the identities removed (`None`: nothing to remove).
macro_rules! horizon_guard {
    ($d:ty, $tx:expr, $rows:expr, $horizon:expr, $result:expr) => {{
        use super::compaction::{guarded, present_sql};
        const F: super::dialect::Flavor = <$d as super::dialect::Dialect>::FLAVOR;
        let rows: &crate::aggregate::StagedRows = $rows;
        let mut missing = std::collections::HashSet::new();
        let sets = [
            guarded(&rows.activity, $horizon, |r| (r.id, r.state, r.event_at)),
            guarded(&rows.llm, $horizon, |r| {
                (
                    r.id,
                    r.state,
                    r.request.as_ref().map(|q| q.generated_at.timestamp()),
                )
            }),
        ];
        for (ledger, ids) in super::compaction::LEDGERS.iter().zip(sets) {
            for chunk in ids.chunks(4000) {
                let sql = present_sql(F, ledger, chunk.len());
                let keys: Vec<Vec<u8>> = chunk.iter().map(|i| i.to_bytes().to_vec()).collect();
                let mut q = sqlx::query_as(&sql);
                for k in keys {
                    q = q.bind(k);
                }
                let found: Vec<(Vec<u8>,)> = q.fetch_all(&mut **$tx).await?;
                $result.statements += 1;
                let found: std::collections::HashSet<Vec<u8>> =
                    found.into_iter().map(|(k,)| k).collect();
                missing.extend(
                    chunk
                        .iter()
                        .filter(|i| !found.contains(&i.to_bytes()[..]))
                        .copied(),
                );
            }
        }
        if missing.is_empty() {
            None
        } else {
            let kept = crate::aggregate::StagedRows {
                activity: rows
                    .activity
                    .iter()
                    .filter(|r| !missing.contains(&r.id))
                    .cloned()
                    .collect(),
                llm: rows
                    .llm
                    .iter()
                    .filter(|r| !missing.contains(&r.id))
                    .cloned()
                    .collect(),
            };
            $result.before_horizon.extend(missing);
            Some(kept)
        }
    }};
}
pub(crate) use horizon_guard;
