//! Reading Lambda DynamoDB stream events.
//!
//! The event is taken as `Records: [RawValue]` and every record is parsed on
//! its own (DESIGN §10): one malformed record must not fail the batch. The
//! strict parse ([`StreamRecord`]) borrows from the record's text and also
//! yields what names and orders the record (table, `eventID`,
//! `SequenceNumber`, `ApproximateCreationDateTime`); only when it fails does
//! a lenient pass read those few fields from whatever is there.
//!
//! [`StreamRecord`] accepts and rejects what `aws_lambda_events`'
//! `EventRecord` does (a unit test compares them over the fixtures and the
//! hostile corpus); it exists because that type copies every attribute into
//! a `HashMap<String, AttributeValue>`, which made it the larger part of
//! normalisation time (BENCHMARKS.md, row 5).

use crate::domain::SourceKind;
use crate::record::change::{EventName, Origin, Read, StreamChange, Unreadable, meta_of};
pub use crate::record::change::{RecordMeta, StreamViewType};
use crate::record::event_time;
use crate::record::item::{CowStr, Item};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// A Lambda DynamoDB event with its records left raw. Only the Lambda
/// shape, an object `{"Records": [...]}`, is one (see [`from_object_only`]).
pub struct RawEvent<'a> {
    pub records: Vec<&'a RawValue>,
}

/// An owned Lambda DynamoDB event with its records left raw (for the Lambda
/// runtime, which hands over owned payloads).
pub struct OwnedRawEvent {
    pub records: Vec<Box<RawValue>>,
}

#[derive(Deserialize)]
struct EventFields<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct OwnedEventFields {
    #[serde(rename = "Records")]
    records: Vec<Box<RawValue>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for RawEvent<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f: EventFields<'a> = from_object_only(d)?;
        Ok(RawEvent { records: f.records })
    }
}

impl<'de> Deserialize<'de> for OwnedRawEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f: OwnedEventFields = from_object_only(d)?;
        Ok(OwnedRawEvent { records: f.records })
    }
}

/// Deserialize `T` from an object only. serde's derive also takes a struct
/// from an array of its fields, which made `[[record, …]]` pass as an event
/// and `[{"Records": []}]` fail with "expected a sequence".
fn from_object_only<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ObjectOnly<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectOnly<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(
                "a Lambda event: an object whose Records field is an array of stream records",
            )
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_map(ObjectOnly(std::marker::PhantomData))
}

/// Parse one event document (`{"Records": [...]}`).
pub fn parse_event(text: &str) -> Result<RawEvent<'_>, serde_json::Error> {
    serde_json::from_str(text)
}

/// One stream record: the change it holds, or, when it is not well
/// formed, its naming metadata and why. `raw` is its text when the event
/// was split into records (`None` after a one-pass parse of a whole event,
/// [`parse_event_records`]: the pipeline splits the event only when a
/// record must be quarantined).
pub struct ParsedRecord<'a> {
    pub raw: Option<&'a RawValue>,
    pub body: Read<'a>,
}

impl ParsedRecord<'_> {
    /// The naming metadata, owned.
    pub fn meta(&self) -> RecordMeta {
        meta_of(&self.body)
    }
}

/// A DynamoDB stream record as Lambda delivers it, borrowing from its text.
/// Required as in `aws_lambda_events`: `awsRegion`, `eventID`,
/// `eventName`, `dynamodb` and its `SizeBytes`; unknown fields are ignored.
#[derive(Debug, Deserialize)]
pub struct StreamRecord<'a> {
    #[serde(rename = "awsRegion", borrow)]
    _aws_region: CowStr<'a>,
    #[serde(rename = "eventID", borrow)]
    pub event_id: CowStr<'a>,
    #[serde(rename = "eventName", borrow)]
    pub event_name: CowStr<'a>,
    #[serde(rename = "eventSource", borrow, default)]
    pub event_source: Option<CowStr<'a>>,
    #[serde(rename = "eventSourceARN", borrow, default)]
    pub event_source_arn: Option<CowStr<'a>>,
    #[serde(rename = "userIdentity", borrow, default)]
    pub user_identity: Option<UserIdentity<'a>>,
    #[serde(rename = "dynamodb", borrow)]
    pub dynamodb: DynamoDbPayload<'a>,
    /// Why a source adapter could not turn what arrived into a stream
    /// record (`record::kinesis`): `normalize` quarantines it with this.
    #[serde(rename = "streamfoldError", borrow, default)]
    pub adapter_error: Option<CowStr<'a>>,
}

/// `userIdentity`: set on removals by DynamoDB's TTL process.
#[derive(Debug, Deserialize)]
pub struct UserIdentity<'a> {
    #[serde(rename = "type", borrow, default)]
    pub type_: CowStr<'a>,
    #[serde(rename = "principalId", borrow, default)]
    pub principal_id: CowStr<'a>,
}

impl UserIdentity<'_> {
    /// DynamoDB's TTL process (a REMOVE it performed is an expiry).
    pub fn is_ttl_process(&self) -> bool {
        self.type_.0 == "Service" && self.principal_id.0 == "dynamodb.amazonaws.com"
    }
}

/// The `dynamodb` part of a stream record.
#[derive(Debug, Deserialize)]
pub struct DynamoDbPayload<'a> {
    #[serde(
        rename = "ApproximateCreationDateTime",
        default,
        deserialize_with = "approximate_seconds"
    )]
    pub approximate_creation: Option<f64>,
    #[serde(rename = "Keys", borrow, default, deserialize_with = "nullish")]
    pub keys: Item<'a>,
    #[serde(rename = "NewImage", borrow, default, deserialize_with = "nullish")]
    pub new_image: Item<'a>,
    #[serde(rename = "OldImage", borrow, default, deserialize_with = "nullish")]
    pub old_image: Item<'a>,
    #[serde(rename = "SequenceNumber", borrow, default)]
    pub sequence_number: Option<CowStr<'a>>,
    #[serde(rename = "SizeBytes")]
    _size_bytes: i64,
    #[serde(rename = "StreamViewType", default)]
    pub stream_view_type: Option<StreamViewType>,
}

/// `ApproximateCreationDateTime`, accepted where `aws_lambda_events`
/// accepts it: a number whose whole seconds are a representable instant.
/// The value is converted later by `event_time::approximate_creation`,
/// which reads the fraction correctly (DESIGN §10).
fn approximate_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    use chrono::{TimeZone, Utc};
    let secs = f64::deserialize(d)?;
    if Utc.timestamp_opt(secs.trunc() as i64, 0).single().is_none() {
        return Err(serde::de::Error::custom(
            "ApproximateCreationDateTime is out of range",
        ));
    }
    Ok(Some(secs))
}

/// An image that may be `null` (as `aws_lambda_events` allows).
fn nullish<'de, D: Deserializer<'de>>(d: D) -> Result<Item<'de>, D::Error> {
    Ok(Option::<Item<'de>>::deserialize(d)?.unwrap_or_default())
}

impl<'a> StreamRecord<'a> {
    /// The naming metadata, as `read_meta` would read it.
    pub fn meta(&self) -> RecordMeta {
        let table = self.table().map(str::to_string);
        let source = table.as_deref().and_then(SourceKind::from_table_name);
        RecordMeta {
            table,
            source,
            event_id: Some(self.event_id.0.to_string()),
            sequence_number: self
                .dynamodb
                .sequence_number
                .as_ref()
                .map(|s| s.0.to_string()),
            approx_created: self
                .dynamodb
                .approximate_creation
                .and_then(event_time::approximate_creation),
        }
    }

    fn table(&self) -> Option<&str> {
        self.event_source_arn
            .as_ref()
            .and_then(|arn| table_from_arn(&arn.0))
    }

    /// The change this record holds. A record of an earlier release's
    /// backfill (`eventSource` `streamfold:backfill`, as quarantine rows
    /// keep them) is a snapshot; one of its Kinesis or incremental-export
    /// records is unreadable (its version was text); everything else
    /// Lambda delivers is a DynamoDB Streams record.
    pub fn into_change(self) -> Result<StreamChange<'a>, Unreadable> {
        if let Some(reason) = &self.adapter_error {
            return Err(Unreadable {
                meta: self.meta(),
                reason: reason.0.to_string(),
            });
        }
        let origin = match self.event_source.as_ref().map(|s| s.0.as_ref()) {
            Some(crate::record::snapshot::SNAPSHOT_EVENT_SOURCE) => Origin::Snapshot,
            // Records an earlier release wrote with its version as text
            // (`StreamfoldVersion`): that text is no longer read, and no
            // other version would be right.
            Some(source @ ("streamfold:kinesis" | "streamfold:incremental-export")) => {
                return Err(Unreadable {
                    meta: self.meta(),
                    reason: format!(
                        "a `{source}` record of an earlier release, whose version this \
                         release does not read: replay its Kinesis stream or export instead"
                    ),
                });
            }
            _ => Origin::Stream,
        };
        let table = match self.event_source_arn {
            Some(CowStr(Cow::Borrowed(arn))) => table_from_arn(arn).map(Cow::Borrowed),
            Some(CowStr(Cow::Owned(arn))) => table_from_arn(&arn).map(|t| Cow::Owned(t.into())),
            None => None,
        };
        let mut change = StreamChange::new(table, EventName::parse(&self.event_name.0), origin);
        change.event_id = Some(self.event_id.0);
        change.sequence_number = self.dynamodb.sequence_number.map(|s| s.0);
        change.approx_created = self
            .dynamodb
            .approximate_creation
            .and_then(event_time::approximate_creation);
        change.ttl_expiry = self
            .user_identity
            .as_ref()
            .is_some_and(UserIdentity::is_ttl_process);
        change.view_type = self.dynamodb.stream_view_type;
        change.keys = self.dynamodb.keys;
        change.new_image = self.dynamodb.new_image;
        change.old_image = self.dynamodb.old_image;
        Ok(change)
    }
}

#[derive(Deserialize)]
struct Lenient<'a> {
    #[serde(rename = "eventID", borrow, default)]
    event_id: Option<&'a RawValue>,
    #[serde(rename = "eventSourceARN", borrow, default)]
    arn: Option<&'a RawValue>,
    #[serde(borrow, default)]
    dynamodb: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct LenientPayload<'a> {
    #[serde(rename = "SequenceNumber", borrow, default)]
    sequence_number: Option<&'a RawValue>,
    #[serde(rename = "ApproximateCreationDateTime", borrow, default)]
    approx: Option<&'a RawValue>,
}

fn as_string(raw: Option<&RawValue>) -> Option<String> {
    raw.and_then(|r| serde_json::from_str::<String>(r.get()).ok())
}

/// The table name inside `arn:aws:dynamodb:<region>:<acct>:table/<TABLE>/stream/<label>`.
pub fn table_from_arn(arn: &str) -> Option<&str> {
    let rest = arn.split_once(":table/")?.1;
    let table = rest.split('/').next()?;
    (!table.is_empty()).then_some(table)
}

/// Read the naming metadata of a record, tolerating any malformation.
pub fn read_meta(raw: &RawValue) -> RecordMeta {
    let Ok(lenient) = serde_json::from_str::<Lenient>(raw.get()) else {
        return RecordMeta::default();
    };
    let table = as_string(lenient.arn).and_then(|arn| table_from_arn(&arn).map(str::to_string));
    let source = table.as_deref().and_then(SourceKind::from_table_name);
    let change = lenient
        .dynamodb
        .and_then(|d| serde_json::from_str::<LenientPayload>(d.get()).ok());
    let (sequence_number, approx_created) = match change {
        Some(c) => (
            as_string(c.sequence_number),
            c.approx
                .and_then(|a| serde_json::from_str::<f64>(a.get()).ok())
                .and_then(event_time::approximate_creation),
        ),
        None => (None, None),
    };
    RecordMeta {
        table,
        source,
        event_id: as_string(lenient.event_id),
        sequence_number,
        approx_created,
    }
}

/// Parse one record strictly; when that fails, read its metadata leniently.
pub fn parse_record(raw: &RawValue) -> ParsedRecord<'_> {
    let body = match serde_json::from_str::<StreamRecord>(raw.get()) {
        Ok(rec) => rec.into_change(),
        Err(e) => Err(Unreadable {
            meta: read_meta(raw),
            reason: format!("malformed stream record: {}", redact_quoted(&e.to_string())),
        }),
    };
    ParsedRecord {
        raw: Some(raw),
        body,
    }
}

#[derive(Deserialize)]
struct TypedEventFields<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<StreamRecord<'a>>,
}

struct TypedEvent<'a>(Vec<StreamRecord<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for TypedEvent<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f: TypedEventFields<'a> = from_object_only(d)?;
        Ok(TypedEvent(f.records))
    }
}

/// Parse a whole event document in one pass, from its text to changes,
/// when every record in it is a well-formed DynamoDB stream record (the
/// common case); `None` otherwise (then split it with [`parse_event`] and
/// read each record on its own, so that one malformed record never fails
/// the batch).
pub fn parse_event_typed(text: &str) -> Option<Vec<Read<'_>>> {
    let TypedEvent(records) = serde_json::from_str::<TypedEvent>(text).ok()?;
    Some(records.into_iter().map(StreamRecord::into_change).collect())
}

/// Parse a whole event document: in one pass when it can
/// ([`parse_event_typed`]), else record by record. Fails only when the
/// document is not an event.
pub fn parse_event_records(text: &str) -> Result<Vec<ParsedRecord<'_>>, serde_json::Error> {
    if let Some(records) = parse_event_typed(text) {
        return Ok(records
            .into_iter()
            .map(|body| ParsedRecord { raw: None, body })
            .collect());
    }
    Ok(parse_event(text)?
        .records
        .into_iter()
        .map(parse_record)
        .collect())
}

/// serde error messages quote offending values (`invalid type: string "…"`);
/// item values may be secrets, so quoted text is dropped.
pub fn redact_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut inside = false;
    for c in msg.chars() {
        if c == '"' {
            if inside {
                out.push_str("…\"");
            } else {
                out.push('"');
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
#[path = "lambda_event_tests.rs"]
mod tests;
