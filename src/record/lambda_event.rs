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
use crate::record::event_time;
use crate::record::item::{CowStr, Item};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
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

/// What names a record in errors, quarantine rows and batch failures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordMeta {
    pub table: Option<String>,
    pub source: Option<SourceKind>,
    pub event_id: Option<String>,
    pub sequence_number: Option<String>,
    pub approx_created: Option<DateTime<Utc>>,
}

impl fmt::Display for RecordMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or = |o: &Option<String>| o.clone().unwrap_or_else(|| "?".into());
        write!(
            f,
            "table {}, event {}, sequence {}",
            or(&self.table),
            or(&self.event_id),
            or(&self.sequence_number)
        )
    }
}

/// One stream record: its naming metadata and, when it is well formed, the
/// strictly parsed record.
pub struct ParsedRecord<'a> {
    pub raw: &'a RawValue,
    pub meta: RecordMeta,
    pub body: Result<StreamRecord<'a>, String>,
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
    /// A timed version a source adapter formed (Kinesis records,
    /// incremental-export lines; `domain::Version::to_hex`).
    #[serde(rename = "StreamfoldVersion", borrow, default)]
    pub streamfold_version: Option<CowStr<'a>>,
    #[serde(rename = "SizeBytes")]
    _size_bytes: i64,
    #[serde(rename = "StreamViewType", default)]
    pub stream_view_type: Option<StreamViewType>,
}

/// What images a stream carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamViewType {
    NewImage,
    OldImage,
    NewAndOldImages,
    KeysOnly,
}

impl fmt::Display for StreamViewType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StreamViewType::NewImage => "NEW_IMAGE",
            StreamViewType::OldImage => "OLD_IMAGE",
            StreamViewType::NewAndOldImages => "NEW_AND_OLD_IMAGES",
            StreamViewType::KeysOnly => "KEYS_ONLY",
        })
    }
}

/// `ApproximateCreationDateTime`, accepted where `aws_lambda_events`
/// accepts it: a number whose whole seconds are a representable instant.
/// The value is converted later by `event_time::approximate_creation`,
/// which reads the fraction correctly (DESIGN §10).
fn approximate_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    use chrono::TimeZone;
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

impl StreamRecord<'_> {
    /// The naming metadata, as `read_meta` would read it.
    pub fn meta(&self) -> RecordMeta {
        let table = self
            .event_source_arn
            .as_ref()
            .and_then(|arn| table_from_arn(&arn.0))
            .map(str::to_string);
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
    match serde_json::from_str::<StreamRecord>(raw.get()) {
        Ok(body) => ParsedRecord {
            raw,
            meta: body.meta(),
            body: Ok(body),
        },
        Err(e) => ParsedRecord {
            raw,
            meta: read_meta(raw),
            body: Err(format!(
                "malformed stream record: {}",
                redact_quoted(&e.to_string())
            )),
        },
    }
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
