//! Follow a table's stream without Lambda (`streamfold tail`), through the
//! DynamoDB Streams API: for running beside a table without a trigger, and
//! for local development against an emulator.
//!
//! The stream's shards are read parents first; each `GetRecords` page's
//! records are read into change records (`stream_change`, straight from
//! the SDK's values) and applied by `pipeline::run_read`, then the shard's last applied `SequenceNumber` is
//! checkpointed in the SQL store (job `tail:<stream ARN>`). A restart
//! continues `AFTER_SEQUENCE_NUMBER` of each shard; a closed shard read to
//! its end is marked done. A page applied twice (a crash between commit and
//! checkpoint) changes nothing: the ledger sees the same versions.

use super::attribute_values::from_streams;
use super::backfill::{BackfillError, BackfillSummary, Observer, apply_read};
use crate::pipeline::{Batch, Pipeline, RawText};
use crate::record::change::{EventName, Origin, StreamChange, StreamViewType};
use crate::record::event_time;
use crate::record::item::Item;
use crate::record::lambda_event::table_from_arn;
use crate::store::checkpoints::Checkpoint;
use aws_sdk_dynamodbstreams::Client as StreamsClient;
use aws_sdk_dynamodbstreams::types::{Record, Shard, ShardIteratorType};
use serde_json::json;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Where a shard without a checkpoint starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest record still in the stream (24 h): nothing is missed.
    TrimHorizon,
    /// Only records written from now on.
    Latest,
}

#[derive(Clone, Debug)]
pub struct TailOptions {
    pub table: String,
    pub start: StartAt,
    /// Wait between polls of a shard that had nothing new.
    pub poll: Duration,
    /// Stop after this many rounds in which no shard had anything new
    /// (`None`: follow forever, until stopped).
    pub until_idle: Option<u32>,
}

/// The checkpoint job of a stream.
pub fn job_name(stream_arn: &str) -> String {
    crate::bounds::key(&format!("tail:{stream_arn}"), crate::bounds::CHECKPOINT_JOB)
}

fn read_err(what: &str, e: impl std::fmt::Display) -> BackfillError {
    BackfillError::Read {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

/// The change record of one `GetRecords` record of `table`'s stream, read
/// from the SDK's values (its images borrow their text).
pub fn stream_change<'a>(r: &'a Record, table: &'a str) -> Result<StreamChange<'a>, String> {
    let d = r.dynamodb().ok_or("record has no dynamodb section")?;
    let image = |m: Option<&'a HashMap<String, _>>| match m {
        Some(m) => from_streams(m),
        None => Ok(Item::default()),
    };
    let mut change = StreamChange::new(
        Some(Cow::Borrowed(table)),
        EventName::parse(r.event_name().map_or("", |n| n.as_str())),
        Origin::Stream,
    );
    change.event_id = r.event_id().map(Cow::Borrowed);
    change.sequence_number = d.sequence_number().map(Cow::Borrowed);
    change.approx_created = d
        .approximate_creation_date_time()
        .and_then(|t| event_time::approximate_creation(t.as_secs_f64()));
    change.ttl_expiry = r.user_identity().is_some_and(|u| {
        u.r#type() == Some("Service") && u.principal_id() == Some("dynamodb.amazonaws.com")
    });
    change.view_type = d
        .stream_view_type()
        .and_then(|v| StreamViewType::parse(v.as_str()));
    change.keys = image(d.keys())?;
    change.new_image = image(d.new_image())?;
    change.old_image = image(d.old_image())?;
    Ok(change)
}

/// The text of one stream record for its quarantine row: the shape of a
/// Lambda DynamoDB event record (the Streams API's record is that record),
/// so that `rejects show` prints it and `rejects retry` reads it back.
pub fn record_text(r: &Record, stream_arn: &str) -> Result<String, String> {
    let d = r.dynamodb().ok_or("record has no dynamodb section")?;
    let item = |m: Option<&HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>| {
        m.map(|m| {
            serde_json::to_value(serde_dynamo::Item::from(m.clone())).map_err(|e| e.to_string())
        })
        .transpose()
    };
    let mut ddb = json!({
        "Keys": item(d.keys())?.unwrap_or_else(|| json!({})),
        "SequenceNumber": d.sequence_number(),
        "SizeBytes": d.size_bytes().unwrap_or(0),
        "StreamViewType": d.stream_view_type().map(|v| v.as_str()),
    });
    if let Some(t) = d.approximate_creation_date_time() {
        ddb["ApproximateCreationDateTime"] = json!(t.as_secs_f64());
    }
    if let Some(n) = item(d.new_image())? {
        ddb["NewImage"] = n;
    }
    if let Some(o) = item(d.old_image())? {
        ddb["OldImage"] = o;
    }
    let mut rec = json!({
        "eventID": r.event_id(),
        "eventName": r.event_name().map(|n| n.as_str()),
        "eventVersion": r.event_version(),
        "eventSource": r.event_source().unwrap_or("aws:dynamodb"),
        "awsRegion": r.aws_region().unwrap_or(""),
        "dynamodb": ddb,
        "eventSourceARN": stream_arn,
    });
    if let Some(u) = r.user_identity() {
        rec["userIdentity"] = json!({"type": u.r#type(), "principalId": u.principal_id()});
    }
    Ok(rec.to_string())
}

/// A `GetRecords` page's records as received, for quarantine rows.
struct PageText<'a> {
    records: &'a [Record],
    stream_arn: &'a str,
}

impl RawText for PageText<'_> {
    fn raw_text(&self, index: usize) -> String {
        self.records
            .get(index)
            .and_then(|r| record_text(r, self.stream_arn).ok())
            .unwrap_or_default()
    }
}

/// Follow `opts.table`'s stream through `p` until stopped or idle.
pub async fn tail(
    p: &Pipeline,
    dynamodb: &aws_sdk_dynamodb::Client,
    streams: &StreamsClient,
    opts: &TailOptions,
    observer: &dyn Observer,
    stop: &AtomicBool,
) -> Result<BackfillSummary, BackfillError> {
    let started = Instant::now();
    let table = dynamodb
        .describe_table()
        .table_name(&opts.table)
        .send()
        .await
        .map_err(|e| read_err(&opts.table, crate::aws_error::describe(&e)))?;
    let stream_arn = table
        .table()
        .and_then(|t| t.latest_stream_arn())
        .ok_or_else(|| BackfillError::Table {
            table: opts.table.clone(),
            reason: "has no stream enabled".into(),
        })?
        .to_string();
    let job = job_name(&stream_arn);
    let table = table_from_arn(&stream_arn).unwrap_or(&opts.table);
    let mut summary = BackfillSummary::default();
    let mut idle_rounds = 0u32;
    // Open iterators by shard, carried between rounds.
    let mut iterators: HashMap<String, String> = HashMap::new();
    loop {
        let checkpoints: HashMap<String, Checkpoint> = p
            .store
            .checkpoints(&job)
            .await?
            .into_iter()
            .map(|c| (c.part.clone(), c))
            .collect();
        let shards = list_shards(streams, &stream_arn).await?;
        let mut active = false;
        for shard in order_parents_first(&shards) {
            if stop.load(Ordering::Relaxed) {
                summary.elapsed = started.elapsed();
                return Ok(summary);
            }
            let id = shard.shard_id().unwrap_or_default().to_string();
            let mut state = checkpoints.get(&id).cloned().unwrap_or(Checkpoint {
                part: id.clone(),
                position: None,
                items: 0,
                done: false,
            });
            if state.done {
                continue;
            }
            // A child waits until its parent has been read to its end.
            if let Some(parent) = shard.parent_shard_id()
                && shards.iter().any(|s| s.shard_id() == Some(parent))
                && !checkpoints.get(parent).is_some_and(|c| c.done)
            {
                continue;
            }
            let iterator = match iterators.remove(&id) {
                Some(it) => it,
                None => shard_iterator(streams, &stream_arn, &id, &state, opts.start).await?,
            };
            let page = streams
                .get_records()
                .shard_iterator(iterator)
                .send()
                .await
                .map_err(|e| read_err(&id, crate::aws_error::describe(&e)))?;
            let records = page.records();
            if !records.is_empty() {
                active = true;
                let mut read = Vec::with_capacity(records.len());
                for r in records {
                    read.push(Ok(stream_change(r, table).map_err(|e| read_err(&id, e))?));
                }
                let raw = PageText {
                    records,
                    stream_arn: &stream_arn,
                };
                let batch = Batch {
                    records: read,
                    raw: &raw,
                };
                let report = apply_read(p, batch, &[], &id).await?;
                summary.report.merge(report);
                summary.items += records.len() as u64;
                state.items += records.len() as i64;
                state.position = records
                    .last()
                    .and_then(|r| r.dynamodb())
                    .and_then(|d| d.sequence_number())
                    .map(str::to_string)
                    .or(state.position);
                observer.advanced(&id, records.len() as u64);
            }
            match page.next_shard_iterator() {
                Some(next) => {
                    iterators.insert(id.clone(), next.to_string());
                }
                None => {
                    // The shard is closed and read to its end.
                    state.done = true;
                    summary.parts_done += 1;
                    observer.finished(&id);
                }
            }
            if !records.is_empty() || state.done {
                p.store.save_checkpoint(&job, &state).await?;
            }
        }
        if active {
            idle_rounds = 0;
        } else {
            idle_rounds += 1;
            if opts.until_idle.is_some_and(|n| idle_rounds >= n) {
                break;
            }
            tokio::time::sleep(opts.poll).await;
        }
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

async fn list_shards(
    streams: &StreamsClient,
    stream_arn: &str,
) -> Result<Vec<Shard>, BackfillError> {
    let mut shards = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let out = streams
            .describe_stream()
            .stream_arn(stream_arn)
            .set_exclusive_start_shard_id(start.take())
            .send()
            .await
            .map_err(|e| read_err(stream_arn, crate::aws_error::describe(&e)))?;
        let Some(desc) = out.stream_description() else {
            break;
        };
        shards.extend(desc.shards().iter().cloned());
        match desc.last_evaluated_shard_id() {
            Some(last) => start = Some(last.to_string()),
            None => break,
        }
    }
    Ok(shards)
}

/// Shards with every parent before its children.
fn order_parents_first(shards: &[Shard]) -> Vec<&Shard> {
    let ids: HashSet<&str> = shards.iter().filter_map(|s| s.shard_id()).collect();
    let mut placed: HashSet<&str> = HashSet::new();
    let mut out = Vec::with_capacity(shards.len());
    while out.len() < shards.len() {
        let before = out.len();
        for s in shards {
            let id = s.shard_id().unwrap_or_default();
            if placed.contains(id) {
                continue;
            }
            let parent_ready = s
                .parent_shard_id()
                .is_none_or(|p| !ids.contains(p) || placed.contains(p));
            if parent_ready {
                placed.insert(id);
                out.push(s);
            }
        }
        if out.len() == before {
            // A cycle cannot happen in a real stream; take the rest as is.
            out.extend(
                shards
                    .iter()
                    .filter(|s| !placed.contains(s.shard_id().unwrap_or_default())),
            );
            break;
        }
    }
    out
}

async fn shard_iterator(
    streams: &StreamsClient,
    stream_arn: &str,
    shard: &str,
    state: &Checkpoint,
    start: StartAt,
) -> Result<String, BackfillError> {
    let mut req = streams
        .get_shard_iterator()
        .stream_arn(stream_arn)
        .shard_id(shard);
    req = match &state.position {
        Some(seq) => req
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .sequence_number(seq),
        None => req.shard_iterator_type(match start {
            StartAt::TrimHorizon => ShardIteratorType::TrimHorizon,
            StartAt::Latest => ShardIteratorType::Latest,
        }),
    };
    let out = req
        .send()
        .await
        .map_err(|e| read_err(shard, crate::aws_error::describe(&e)))?;
    out.shard_iterator()
        .map(str::to_string)
        .ok_or_else(|| read_err(shard, "no shard iterator returned"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parent: Option<&str>) -> Shard {
        Shard::builder()
            .shard_id(id)
            .set_parent_shard_id(parent.map(String::from))
            .build()
    }

    #[test]
    fn parents_come_before_children() {
        let shards = vec![
            shard("c2", Some("c1")),
            shard("c1", Some("root")),
            shard("root", None),
            shard("orphan", Some("trimmed-away")),
        ];
        let order: Vec<&str> = order_parents_first(&shards)
            .iter()
            .map(|s| s.shard_id().unwrap())
            .collect();
        let pos = |id| order.iter().position(|s| *s == id).unwrap();
        assert!(pos("root") < pos("c1") && pos("c1") < pos("c2"));
        assert_eq!(order.len(), 4);
    }
}
