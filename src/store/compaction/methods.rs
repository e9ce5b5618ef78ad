//! The horizon guard as statements, expanded into each dialect's batch
//! transaction (`horizon_guard!`); the rules it follows are in the parent
//! module.

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
