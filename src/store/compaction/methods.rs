//! The compaction run and the horizon guard as statements, expanded into
//! each dialect's store (`compaction_methods!`) and batch transaction
//! (`horizon_guard!`); the rules they follow are in the parent module.

/// Inside a chunk's transaction `$tx`: read the activity rows to drop
/// (locked), add the live ones' counts to `compacted_activity_base`;
/// evaluates to their ids.
macro_rules! drop_activity_chunk {
    ($f:expr, $tx:expr, $after:expr, $end:expr, $run:expr) => {{
        use super::compaction::base;
        use super::upsert::bind_vals;
        let sql = base::doomed_activity_sql($f, $after.is_none(), $run.include_unattributed);
        let mut q = sqlx::query_as::<
            _,
            (
                Vec<u8>,
                i64,
                Option<String>,
                String,
                Option<i64>,
                Option<i64>,
            ),
        >(&sql);
        if let Some(a) = $after {
            q = q.bind(a.clone());
        }
        let rows = q
            .bind($end.clone())
            .bind($run.horizon)
            .fetch_all(&mut **$tx)
            .await?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut contributions = Vec::with_capacity(rows.len());
        for (id, state, subject, integration, dow, hours) in rows {
            ids.push(id);
            contributions.push((state, subject, integration, dow, hours));
        }
        let upsert = base::activity_base_sql($f);
        for (key, n) in base::activity_sums(&contributions)? {
            bind_vals!(sqlx::query(&upsert), base::cell_vals(&key, n))
                .execute(&mut **$tx)
                .await?;
        }
        ids
    }};
}
pub(crate) use drop_activity_chunk;

/// Inside a chunk's transaction `$tx`: read the LLM rows to drop (locked),
/// add the live ones' sums to the LLM compaction bases; evaluates to their
/// ids.
macro_rules! drop_llm_chunk {
    ($f:expr, $tx:expr, $after:expr, $end:expr, $run:expr) => {{
        use super::compaction::base;
        use super::upsert::bind_vals;
        let sql = base::doomed_llm_sql($f, $after.is_none(), $run.include_unattributed);
        let mut q = sqlx::query(&sql);
        if let Some(a) = $after {
            q = q.bind(a.clone());
        }
        let found = q
            .bind($end.clone())
            .bind($run.horizon)
            .fetch_all(&mut **$tx)
            .await?;
        let rows = found
            .iter()
            .map(super::rows::llm_row)
            .collect::<Result<Vec<_>, StoreError>>()?;
        let ids: Vec<Vec<u8>> = rows.iter().map(|r| r.id.to_bytes().to_vec()).collect();
        let upserts = base::llm_base_sql($f);
        for (key, added) in base::llm_sums(&rows)? {
            let mut sums = added.clone();
            if !super::upsert::adds_decimals_in_sql($f) {
                // SQLite: the stored base plus the chunk's, in Rust.
                let [totals_sql, models_sql] = base::sqlite_llm_base_reads();
                let totals: Option<(i64, i64, String, i64, String, i64)> =
                    sqlx::query_as(totals_sql)
                        .bind(&key.account_id)
                        .bind(&key.period)
                        .fetch_optional(&mut **$tx)
                        .await?;
                let models: Vec<(String, i64, i64, String)> = sqlx::query_as(models_sql)
                    .bind(&key.account_id)
                    .bind(&key.period)
                    .fetch_all(&mut **$tx)
                    .await?;
                let mut stored = crate::aggregate::llm_rollup::ReportSums::default();
                if let Some((requests, tokens, cost, rt, quality, scored)) = totals {
                    stored.requests = requests;
                    stored.tokens = tokens;
                    stored.cost_usd = base::base_decimal(&cost)?;
                    stored.response_time_ms = rt;
                    stored.quality_sum = base::base_decimal(&quality)?;
                    stored.quality_scored = scored;
                }
                for (model, requests, tokens, cost) in models {
                    stored.models.insert(
                        model,
                        crate::aggregate::llm_rollup::ModelUsage {
                            requests,
                            tokens,
                            cost_usd: base::base_decimal(&cost)?,
                        },
                    );
                }
                sums = stored.plus(&added).map_err(|what| {
                    crate::aggregate::llm_rollup::RollupOverflow {
                        report: key.report_id(),
                        what,
                    }
                })?;
                // Only the models this chunk moved are written.
                sums.models.retain(|m, _| added.models.contains_key(m));
            }
            let (totals, models, functions) = base::llm_base_vals(&key, &sums, &added.functions);
            bind_vals!(sqlx::query(&upserts[0]), totals)
                .execute(&mut **$tx)
                .await?;
            for v in models {
                bind_vals!(sqlx::query(&upserts[1]), v)
                    .execute(&mut **$tx)
                    .await?;
            }
            for v in functions {
                bind_vals!(sqlx::query(&upserts[2]), v)
                    .execute(&mut **$tx)
                    .await?;
            }
        }
        ids
    }};
}
pub(crate) use drop_llm_chunk;

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
                    // The chunk's rows are read under lock, their counts
                    // added to the compaction base, the rows deleted and the
                    // progress saved in one transaction, so a retried or
                    // resumed run neither repeats nor skips, and the
                    // aggregates stay base + ledger (`base`).
                    let mut tx = match <$d as super::dialect::Dialect>::BEGIN {
                        Some(statement) => self.pool.begin_with(statement).await?,
                        None => self.pool.begin().await?,
                    };
                    let ids = if i == 0 {
                        super::compaction::drop_activity_chunk!(
                            F,
                            &mut tx,
                            after.as_ref(),
                            &end,
                            &run
                        )
                    } else {
                        super::compaction::drop_llm_chunk!(F, &mut tx, after.as_ref(), &end, &run)
                    };
                    for chunk in ids.chunks(super::compaction::base::DELETE_IDS) {
                        let sql = super::compaction::base::delete_ids_sql(F, ledger, chunk.len());
                        let mut del = sqlx::query(&sql);
                        for id in chunk {
                            del = del.bind(id.clone());
                        }
                        del.execute(&mut *tx).await?;
                    }
                    let dropped = ids.len() as u64;
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
