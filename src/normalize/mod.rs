//! Pure normalisation: one stream record → a change to one identity
//! (upsert of a fact, or retraction), a skip with its reason, or a rejection
//! with its reason. No I/O; identity resolution happens later.
//!
//! The rules common to all tables live here (event name, view type, TTL
//! removes, versions, event-time fallback, identity); each table is
//! declared once, in its own file, as a `table::SourceTable` (its name,
//! code, key and identity attributes, integration, normalising function),
//! and `TABLES` below, the registry, lists them.

mod conversations;
mod dropbox_file_changes;
mod github_events;
mod llm_data_collection;
#[cfg(test)]
mod snapshot_tests;
pub mod table;
#[cfg(test)]
mod table_tests;

use crate::domain::{Fact, Identity, SkipReason, SourceKind, Version};
use crate::record::attrs;
use crate::record::change::{EventName, Origin, StreamChange, StreamViewType};
use crate::record::event_time;
use crate::record::item::{Attr, Item};
use crate::record::lambda_event::ParsedRecord;
use chrono::{DateTime, Utc};

/// The registry: every source table, each declared in its own file, listed
/// in the order of `SourceKind`'s variants. Everything else reads a table's
/// facts from here (through `SourceKind::table`). Adding a table: its file,
/// its line here, its `SourceKind` variant (ARCHITECTURE.md, "Adding a
/// source table").
pub static TABLES: &[&table::SourceTable] = &[
    &github_events::TABLE,
    &dropbox_file_changes::TABLE,
    &conversations::TABLE,
    &llm_data_collection::TABLE,
];

/// "not one of the source tables (…)", naming every registered suffix: the
/// reason a backfill gives a table name it does not know.
pub fn not_a_source_table() -> String {
    let names: Vec<&str> = TABLES.iter().map(|t| t.suffix).collect();
    format!("not one of the source tables ({})", names.join(", "))
}

// Checked when the crate compiles: the registry is in variant order (so a
// variant's discriminant indexes it) and no two tables share a code.
const _: () = {
    let mut i = 0;
    while i < TABLES.len() {
        assert!(
            TABLES[i].kind as usize == i,
            "normalize::TABLES must list the tables in SourceKind's variant order"
        );
        let mut j = 0;
        while j < i {
            assert!(
                TABLES[i].code != TABLES[j].code,
                "two source tables share a code"
            );
            j += 1;
        }
        i += 1;
    }
};

/// The outcome of normalising one record.
#[derive(Clone, Debug, PartialEq)]
pub enum Normalized {
    Change(Change),
    Skip(SkipReason),
    Reject(String),
}

/// A versioned change to one identity's contribution.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub source: SourceKind,
    pub identity: Identity,
    pub version: Version,
    pub kind: ChangeKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ChangeKind {
    /// The item now contributes this fact. `time_fallback` is set when the
    /// event time came from `ApproximateCreationDateTime`.
    Upsert { fact: Fact, time_fallback: bool },
    /// The application removed the item: retract its contribution.
    Retract,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Insert,
    Modify,
    Remove,
}

/// Normalise one parsed record.
/// Why a DynamoDB Streams record without `ApproximateCreationDateTime` is
/// quarantined (ARCHITECTURE "Versions"): its version's time is that field,
/// and without it the record could not be ordered against its item's other
/// records; at time 0 it would lose to every earlier one.
pub const NO_APPROXIMATE_TIME: &str = "the stream record has no ApproximateCreationDateTime: \
     without it, it cannot be ordered against its item's other records (it would lose to \
     older ones), so it is quarantined rather than applied out of order";

pub fn normalize(rec: &ParsedRecord<'_>) -> Normalized {
    match &rec.body {
        Ok(change) => normalize_change(change),
        Err(u) => Normalized::Reject(u.reason.clone()),
    }
}

/// Normalise one change record.
pub fn normalize_change(rec: &StreamChange<'_>) -> Normalized {
    match normalize_record(rec) {
        Ok(n) => n,
        Err(reason) => Normalized::Reject(reason),
    }
}

fn normalize_record(rec: &StreamChange<'_>) -> Result<Normalized, String> {
    let table = rec
        .table
        .as_deref()
        .ok_or("record has no eventSourceARN naming a DynamoDB table")?;
    let source = rec
        .source
        .ok_or_else(|| format!("unknown source table `{table}`"))?;
    let op = match rec.event_name {
        EventName::Insert => Op::Insert,
        EventName::Modify => Op::Modify,
        EventName::Remove => Op::Remove,
        EventName::Other => {
            return Err("unknown eventName (expected INSERT, MODIFY or REMOVE)".into());
        }
    };
    let version = match &rec.origin {
        Origin::Snapshot => {
            // A backfilled item: the lowest version (DESIGN §4).
            if op != Op::Insert {
                return Err("a backfill snapshot must be an INSERT".into());
            }
            Version::snapshot()
        }
        // Kinesis records and incremental-export lines: the reader formed
        // the timed version (the version rule, `domain::Version`).
        Origin::Timed(v) => v.clone(),
        Origin::Stream => {
            let seq = rec
                .sequence_number
                .as_deref()
                .ok_or("record has no SequenceNumber")?;
            match rec.approx_created {
                Some(t) => Version::stream_record(seq, t.timestamp())?,
                // Expired by TTL: skipped below whatever its version.
                None if op == Op::Remove && rec.ttl_expiry => {
                    return Ok(Normalized::Skip(SkipReason::TtlExpiry));
                }
                None => return Err(NO_APPROXIMATE_TIME.into()),
            }
        }
    };

    match &rec.view_type {
        Some(StreamViewType::NewImage) | Some(StreamViewType::NewAndOldImages) | None => {}
        Some(other) => {
            return Err(format!(
                "stream view type {other} carries no new image; configure NEW_IMAGE or NEW_AND_OLD_IMAGES"
            ));
        }
    }

    let keys = &rec.keys;
    let new_image = non_empty(&rec.new_image);
    let old_image = non_empty(&rec.old_image);

    if op == Op::Remove {
        if rec.ttl_expiry {
            return Ok(Normalized::Skip(SkipReason::TtlExpiry));
        }
        let identity = identity(source, keys, old_image)?;
        return Ok(Normalized::Change(Change {
            source,
            identity,
            version,
            kind: ChangeKind::Retract,
        }));
    }

    let image = new_image.ok_or("INSERT/MODIFY record has no NewImage")?;
    let identity = identity(source, keys, Some(image))?;
    let ctx = TimeContext {
        old_image: if op == Op::Modify { old_image } else { None },
        approx_created: rec.approx_created,
    };
    let (fact, time_fallback) = (source.table().fact)(image, &ctx)?;
    Ok(Normalized::Change(Change {
        source,
        identity,
        version,
        kind: ChangeKind::Upsert {
            fact,
            time_fallback,
        },
    }))
}

fn non_empty<'a, 'b>(item: &'a Item<'b>) -> Option<&'a Item<'b>> {
    (!item.is_empty()).then_some(item)
}

/// The identity a record's contribution belongs to: its identity
/// attributes, read from `Keys` or else from the image (NewImage, or a
/// REMOVE's OldImage), serialised as key attributes are (so that for the
/// seed's key schemas the identity is that of the `Keys` map), plus what
/// else the table declares names a contribution (an LLM request's
/// `generated_at`). An optional attribute absent from the image is
/// left out; a REMOVE without an image whose `Keys` lack it cannot name the
/// change and is rejected.
fn identity(
    source: SourceKind,
    keys: &Item<'_>,
    image: Option<&Item<'_>>,
) -> Result<Identity, String> {
    if keys.is_empty() {
        return Err("record has no Keys".into());
    }
    let table = source.table();
    let mut canon = vec![table.code];
    for (name, required) in table.identity_attributes {
        let value = attrs::get(keys, name).or_else(|| image.and_then(|i| attrs::get(i, name)));
        match value {
            Some(v) => attrs::push_key_attribute(&mut canon, name, v)?,
            None if image.is_none() => {
                return Err(format!(
                    "REMOVE has no OldImage and its Keys lack `{name}`, so the change to retract is unknown (use NEW_AND_OLD_IMAGES)"
                ));
            }
            None if *required => {
                return Err(format!("record has no `{name}` in its Keys or image"));
            }
            None => {}
        }
    }
    if let Some(extra) = table.identity_extra {
        extra(image, &mut canon)?;
    }
    Ok(Identity::from_canonical(&canon))
}

/// What an event-time fallback may use (handed to every table's
/// normalising function).
pub struct TimeContext<'a> {
    old_image: Option<&'a Item<'a>>,
    approx_created: Option<DateTime<Utc>>,
}

/// Read an event time attribute; when absent, fall back to the old image's
/// (a MODIFY that dropped it must not move the event) and then to the
/// record's `ApproximateCreationDateTime`. Returns whether it fell back to the
/// latter.
pub(crate) fn event_time(
    image: &Item<'_>,
    name: &str,
    ctx: &TimeContext<'_>,
) -> Result<(DateTime<Utc>, bool), String> {
    if let Some(v) = attrs::get(image, name) {
        return parse_time_value(v, name).map(|t| (t, false));
    }
    if let Some(v) = ctx.old_image.and_then(|old| attrs::get(old, name)) {
        return parse_time_value(v, name).map(|t| (t, false));
    }
    match ctx.approx_created {
        Some(t) => Ok((t, true)),
        None => Err(format!(
            "attribute `{name}` is missing and the record has no ApproximateCreationDateTime"
        )),
    }
}

pub(crate) fn parse_time_value(v: &Attr<'_>, name: &str) -> Result<DateTime<Utc>, String> {
    match v {
        Attr::S(s) => event_time::parse_time_str(s),
        Attr::N(n) => event_time::parse_epoch(n),
        other => Err(format!("has type {}, expected S or N", other.type_tag())),
    }
    .map_err(|e| format!("bad time in attribute `{name}`: {e}"))
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Builders for table-driven normaliser tests: real stream-record JSON.
    use super::*;
    use crate::record::lambda_event::parse_record;
    use serde_json::{Value, json};

    pub fn record(
        table: &str,
        event_name: &str,
        seq: &str,
        new_image: Value,
        keys: Value,
    ) -> Value {
        json!({
            "eventID": format!("ev-{seq}"),
            "eventName": event_name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "ApproximateCreationDateTime": 1710063000.5,
                "Keys": keys,
                "NewImage": new_image,
                "SequenceNumber": seq,
                "SizeBytes": 120,
                "StreamViewType": "NEW_AND_OLD_IMAGES"
            },
            "eventSourceARN": format!("arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/2024-01-01T00:00:00.000")
        })
    }

    pub fn run(v: &Value) -> Normalized {
        let text = v.to_string();
        let raw: Box<serde_json::value::RawValue> = serde_json::from_str(&text).unwrap();
        normalize(&parse_record(&raw))
    }

    pub fn upsert(n: Normalized) -> (Fact, bool) {
        match n {
            Normalized::Change(Change {
                kind:
                    ChangeKind::Upsert {
                        fact,
                        time_fallback,
                    },
                ..
            }) => (fact, time_fallback),
            other => panic!("expected upsert, got {other:?}"),
        }
    }

    pub fn rejected(n: Normalized) -> String {
        match n {
            Normalized::Reject(r) => r,
            other => panic!("expected reject, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use serde_json::json;

    fn gh(seq: &str) -> serde_json::Value {
        record(
            "icarus-dev-github_events",
            "INSERT",
            seq,
            json!({"id":{"S":"e1"},"username":{"S":"octo"},"timestamp":{"S":"2024-03-10T09:30:00Z"}}),
            json!({"id":{"S":"e1"}}),
        )
    }

    #[test]
    fn common_rejections() {
        let mut v = gh("100");
        v["eventName"] = json!("UPSERT");
        assert!(rejected(run(&v)).contains("eventName"));

        let mut v = gh("100");
        v["dynamodb"]["StreamViewType"] = json!("KEYS_ONLY");
        assert!(rejected(run(&v)).contains("KEYS_ONLY"));

        let mut v = gh("100");
        v["dynamodb"]["StreamViewType"] = json!("OLD_IMAGE");
        assert!(rejected(run(&v)).contains("OLD_IMAGE"));

        let mut v = gh("100");
        v["eventSourceARN"] =
            json!("arn:aws:dynamodb:us-east-1:1:table/icarus-dev-slack_accounts/stream/x");
        assert!(rejected(run(&v)).contains("unknown source table `icarus-dev-slack_accounts`"));

        let mut v = gh("100");
        v["dynamodb"]["Keys"] = json!({});
        assert!(rejected(run(&v)).contains("no Keys"));

        let mut v = gh("100");
        v["dynamodb"]["SequenceNumber"] = json!("12x");
        assert!(rejected(run(&v)).contains("SequenceNumber"));

        let mut v = gh("100");
        v["dynamodb"]["NewImage"] =
            json!({"id":{"S":"e1"},"username":{"S":"o"},"timestamp":{"X":"1"}});
        assert!(rejected(run(&v)).contains("malformed stream record"));

        let mut v = gh("100");
        v["dynamodb"].as_object_mut().unwrap().remove("NewImage");
        assert!(rejected(run(&v)).contains("no NewImage"));
    }

    #[test]
    fn removes() {
        let mut v = gh("200");
        v["eventName"] = json!("REMOVE");
        v["dynamodb"]["OldImage"] = v["dynamodb"]["NewImage"].take();
        match run(&v) {
            Normalized::Change(Change {
                kind: ChangeKind::Retract,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        v["userIdentity"] = json!({"type":"Service","principalId":"dynamodb.amazonaws.com"});
        assert_eq!(run(&v), Normalized::Skip(SkipReason::TtlExpiry));
    }

    #[test]
    fn identity_is_stable_across_versions_and_distinct_across_items() {
        let id = |v: &serde_json::Value| match run(v) {
            Normalized::Change(c) => c.identity,
            other => panic!("{other:?}"),
        };
        let a = gh("100");
        let b = gh("200");
        let mut c = gh("300");
        c["dynamodb"]["Keys"]["id"] = json!({"S":"e2"});
        assert_eq!(id(&a), id(&b));
        assert_ne!(id(&a), id(&c));
    }

    #[test]
    fn unknown_fields_and_binary_values_are_tolerated() {
        let mut v = gh("100");
        v["someNewField"] = json!({"x": 1});
        v["dynamodb"]["NewImage"]["blob"] = json!({"B": "AAEC"});
        v["dynamodb"]["NewImage"]["big"] = json!({"N": "12345678901234567890123456789012345678"});
        let (fact, _) = upsert(run(&v));
        assert!(matches!(fact, Fact::Activity(_)));
    }
}
