//! Backfill by parallel table Scan (DESIGN §7, §9). Each segment is read
//! page by page; a page's items are read straight into snapshot changes
//! (`sources::attribute_values`, `record::snapshot`), one batch through
//! `run_read`, then the segment's `LastEvaluatedKey` is checkpointed in the
//! SQL store. Segments run concurrently in one process, or one per process
//! (`--segment I --total-segments N`) so that many machines or Lambda
//! invocations can share a table. Throttling is retried by the SDK's retry
//! policy (the caller configures attempts and backoff on the client);
//! `max_rcu` / `max_items_per_sec` pace all segments together.

use super::attribute_values;
use super::backfill::{BackfillError, BackfillSummary, Observer, Pacer, apply_read};
use crate::domain::SourceKind;
use crate::pipeline::{Batch, Pipeline, RawText};
use crate::record::backfill_text;
use crate::record::snapshot::snapshot_change;
use crate::store::RejectedRecord;
use crate::store::checkpoints::Checkpoint;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeyType, ReturnConsumedCapacity};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Which segments this process scans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segments {
    /// All of them; how many from the table's size.
    Auto,
    /// All of `n`.
    All(u32),
    /// Only `segment` of `total` (distributed backfill).
    One { segment: u32, total: u32 },
}

#[derive(Clone, Debug)]
pub struct ScanOptions {
    pub table: String,
    pub segments: Segments,
    /// Continue from the checkpoints of an earlier run of the same job.
    pub resume: bool,
    /// Read capacity units per second, all segments together.
    pub max_rcu: Option<f64>,
    /// Items per second, all segments together.
    pub max_items_per_sec: Option<f64>,
    /// Items per Scan page (`Limit`); the 1 MB page limit applies anyway.
    pub page_size: Option<i32>,
    pub consistent_read: bool,
    /// Stop each segment after this many pages (for tests of `--resume`).
    pub max_pages: Option<u64>,
    /// The backfill run this Scan belongs to (a Step Functions execution's
    /// name): part of its checkpoint job, so that a new run starts over
    /// and only the same run goes on (`job_name`).
    pub run: Option<String>,
}

/// Segments for a table of `size_bytes`: one per 256 MiB, 1 to 16.
pub fn auto_segments(size_bytes: i64) -> u32 {
    let per = 256 * 1024 * 1024;
    (size_bytes.max(0) / per + 1).clamp(1, 16) as u32
}

/// The checkpoint job of a Scan: a table split into `total` segments, in
/// the run `run` (a Step Functions execution's name) if any. The CLI's
/// Scan has no run: without `--resume` it starts its job over.
pub fn job_name(table: &str, total: u32, run: Option<&str>) -> String {
    let name = match run {
        Some(run) => format!("scan:{table}:{total}:{run}"),
        None => format!("scan:{table}:{total}"),
    };
    crate::bounds::key(&name, crate::bounds::CHECKPOINT_JOB)
}

fn key_to_json(key: &HashMap<String, AttributeValue>) -> Result<String, String> {
    let item = serde_dynamo::Item::from(key.clone());
    serde_json::to_string(&item).map_err(|e| e.to_string())
}

fn key_from_json(text: &str) -> Result<HashMap<String, AttributeValue>, String> {
    let item: serde_dynamo::Item = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(item.into())
}

/// Backfill `opts.table` by Scan through `p`; a stop is
/// `BackfillError::Interrupted`.
pub async fn scan_backfill(
    p: &Pipeline,
    client: &Client,
    opts: &ScanOptions,
    observer: &dyn Observer,
    stop: &AtomicBool,
) -> Result<BackfillSummary, BackfillError> {
    let s = scan_backfill_until_stopped(p, client, opts, observer, stop).await?;
    if s.interrupted {
        return Err(BackfillError::Interrupted);
    }
    Ok(s)
}

/// Backfill `opts.table` by Scan through `p`; a stop answers what was
/// committed before it, with `interrupted` set.
pub async fn scan_backfill_until_stopped(
    p: &Pipeline,
    client: &Client,
    opts: &ScanOptions,
    observer: &dyn Observer,
    stop: &AtomicBool,
) -> Result<BackfillSummary, BackfillError> {
    let started = Instant::now();
    let table_err = |reason: String| BackfillError::Table {
        table: opts.table.clone(),
        reason,
    };
    let source = SourceKind::from_table_name(&opts.table)
        .ok_or_else(|| table_err(crate::normalize::not_a_source_table()))?;
    let described = client
        .describe_table()
        .table_name(&opts.table)
        .send()
        .await
        .map_err(|e| table_err(crate::aws_error::describe(&e)))?;
    let desc = described
        .table
        .ok_or_else(|| table_err("DescribeTable returned no table".into()))?;
    // The stream's Keys are the table's key schema: hash key, then range.
    let mut key_names: Vec<(bool, String)> = desc
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.key_type() == &KeyType::Range,
                k.attribute_name().to_string(),
            )
        })
        .collect();
    key_names.sort();
    let key_names: Vec<String> = key_names.into_iter().map(|(_, n)| n).collect();
    let expected: Vec<String> = source
        .table()
        .key_attributes
        .iter()
        .map(|s| s.to_string())
        .collect();
    if key_names.iter().collect::<std::collections::BTreeSet<_>>()
        != expected.iter().collect::<std::collections::BTreeSet<_>>()
    {
        tracing::warn!(table = %opts.table, ?key_names, ?expected, "key schema differs from the seed; using the table's");
    }
    let (total, mine): (u32, Vec<u32>) = match opts.segments {
        Segments::Auto => {
            let n = auto_segments(desc.table_size_bytes().unwrap_or(0));
            (n, (0..n).collect())
        }
        Segments::All(n) => (n.max(1), (0..n.max(1)).collect()),
        Segments::One { segment, total } => {
            if total == 0 || segment >= total {
                return Err(table_err(format!(
                    "segment {segment} is not below total segments {total}"
                )));
            }
            (total, vec![segment])
        }
    };
    let per_segment = desc
        .item_count()
        .map(|n| (n.max(0) as u64).div_ceil(u64::from(total)));
    let job = job_name(&opts.table, total, opts.run.as_deref());
    let done: HashMap<String, Checkpoint> = if opts.resume {
        p.store
            .checkpoints(&job)
            .await?
            .into_iter()
            .map(|c| (c.part.clone(), c))
            .collect()
    } else {
        for s in &mine {
            p.store
                .save_checkpoint(
                    &job,
                    &Checkpoint {
                        part: s.to_string(),
                        position: None,
                        items: 0,
                        done: false,
                    },
                )
                .await?;
        }
        HashMap::new()
    };
    let rcu = Pacer::new(opts.max_rcu);
    let items_pacer = Pacer::new(opts.max_items_per_sec);
    let ctx = SegmentContext {
        p,
        client,
        opts,
        observer,
        stop,
        job: &job,
        total,
        key_names: &key_names,
        rcu: &rcu,
        items: &items_pacer,
        expected: per_segment,
    };
    let runs = mine
        .iter()
        .map(|s| scan_segment(&ctx, *s, done.get(&s.to_string()).cloned()));
    let results = futures::future::join_all(runs).await;
    let mut summary = BackfillSummary::default();
    let mut first_err = None;
    for r in results {
        match r {
            Ok(s) => summary.merge(s),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    summary.elapsed = started.elapsed();
    match first_err {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

struct SegmentContext<'a> {
    p: &'a Pipeline,
    client: &'a Client,
    opts: &'a ScanOptions,
    observer: &'a dyn Observer,
    stop: &'a AtomicBool,
    job: &'a str,
    total: u32,
    key_names: &'a [String],
    rcu: &'a Pacer,
    items: &'a Pacer,
    expected: Option<u64>,
}

async fn scan_segment(
    ctx: &SegmentContext<'_>,
    segment: u32,
    checkpoint: Option<Checkpoint>,
) -> Result<BackfillSummary, BackfillError> {
    let part = format!("segment {segment}/{}", ctx.total);
    let mut summary = BackfillSummary::default();
    let mut state = checkpoint.unwrap_or(Checkpoint {
        part: segment.to_string(),
        position: None,
        items: 0,
        done: false,
    });
    if state.done {
        summary.parts_skipped = 1;
        return Ok(summary);
    }
    let mut start_key = match &state.position {
        Some(text) => Some(key_from_json(text).map_err(|reason| BackfillError::Read {
            what: format!("checkpoint of {part}"),
            reason,
        })?),
        None => None,
    };
    ctx.observer
        .started(&part, ctx.expected, state.items.max(0) as u64);
    let mut pages = 0u64;
    loop {
        if ctx.stop.load(Ordering::Relaxed) || ctx.opts.max_pages.is_some_and(|m| pages >= m) {
            summary.interrupted = true;
            return Ok(summary);
        }
        let page = ctx
            .client
            .scan()
            .table_name(&ctx.opts.table)
            .segment(segment as i32)
            .total_segments(ctx.total as i32)
            .consistent_read(ctx.opts.consistent_read)
            .set_limit(ctx.opts.page_size)
            .set_exclusive_start_key(start_key.take())
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| BackfillError::Read {
                what: format!("{} {part}", ctx.opts.table),
                reason: crate::aws_error::describe(&e),
            })?;
        pages += 1;
        summary.pages += 1;
        let items = page.items();
        let ids: Vec<String> = (0..items.len())
            .map(|i| format!("scan {} {part} page {pages} item {i}", ctx.opts.table))
            .collect();
        let mut records = Vec::with_capacity(items.len());
        let mut texts = ItemTexts {
            table: &ctx.opts.table,
            key_names: ctx.key_names,
            items: Vec::with_capacity(items.len()),
        };
        let mut unreadable = Vec::new();
        for (item, id) in items.iter().zip(&ids) {
            let change = attribute_values::from_dynamodb(item)
                .map_err(|reason| format!("{id}: {reason}"))
                .and_then(|read| snapshot_change(&ctx.opts.table, ctx.key_names, read, id));
            // An item that cannot be a record is quarantined; the page goes on.
            match change {
                Ok(change) => {
                    records.push(Ok(change));
                    texts.items.push((id, item));
                }
                Err(reason) => unreadable.push(RejectedRecord::unreadable(
                    SourceKind::from_table_name(&ctx.opts.table),
                    &ctx.opts.table,
                    id,
                    &reason,
                    &item_json(item),
                )),
            }
        }
        let n = items.len() as u64;
        if n > 0 {
            let batch = Batch {
                records,
                raw: &texts,
            };
            let report = apply_read(ctx.p, batch, &unreadable, &part).await?;
            summary.report.merge(report);
        }
        summary.items += n;
        state.items += n as i64;
        let last = page.last_evaluated_key().filter(|k| !k.is_empty());
        state.position = match last {
            Some(k) => Some(key_to_json(k).map_err(|reason| BackfillError::Read {
                what: format!("LastEvaluatedKey of {part}"),
                reason,
            })?),
            None => None,
        };
        state.done = last.is_none();
        ctx.p.store.save_checkpoint(ctx.job, &state).await?;
        ctx.observer.advanced(&part, n);
        let units = page
            .consumed_capacity()
            .and_then(|c| c.capacity_units())
            .unwrap_or(0.0);
        ctx.rcu.charge(units).await;
        ctx.items.charge(n as f64).await;
        match last {
            Some(k) => start_key = Some(k.clone()),
            None => break,
        }
    }
    ctx.observer.finished(&part);
    summary.parts_done = 1;
    Ok(summary)
}

/// An item in DynamoDB JSON (`{"attr": {"S": "…"}, …}`); empty if it
/// holds a type this SDK does not know.
fn item_json(item: &HashMap<String, AttributeValue>) -> String {
    serde_json::to_string(&serde_dynamo::Item::from(item.clone())).unwrap_or_default()
}

/// The items of a page, as received, with what names them: their
/// quarantine texts (`record::backfill_text`, as full-export lines),
/// written only for the items quarantined.
struct ItemTexts<'a> {
    table: &'a str,
    key_names: &'a [String],
    items: Vec<(&'a str, &'a HashMap<String, AttributeValue>)>,
}

impl RawText for ItemTexts<'_> {
    fn raw_text(&self, index: usize) -> String {
        match self.items.get(index) {
            Some((id, item)) => {
                backfill_text::snapshot_text(self.table, self.key_names, &item_json(item), id)
            }
            None => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_grow_with_size_and_stay_bounded() {
        assert_eq!(auto_segments(0), 1);
        assert_eq!(auto_segments(300 * 1024 * 1024), 2);
        assert_eq!(auto_segments(i64::MAX), 16);
    }

    #[test]
    fn last_evaluated_key_round_trips_through_the_checkpoint() {
        let key = HashMap::from([
            ("id".to_string(), AttributeValue::S("gh-1".into())),
            (
                "n".to_string(),
                AttributeValue::N("12345678901234567890123".into()),
            ),
        ]);
        let text = key_to_json(&key).unwrap();
        assert_eq!(key_from_json(&text).unwrap(), key);
    }
}
