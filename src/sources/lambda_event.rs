//! Reading Lambda DynamoDB stream events.
//!
//! The event is taken as `Records: [RawValue]` and every record is parsed on
//! its own (DESIGN §10): one malformed record must not fail the batch. A
//! lenient pass reads what is needed to name and order the record (table,
//! `eventID`, `SequenceNumber`, `ApproximateCreationDateTime`) even when the
//! strict `aws_lambda_events` parse fails.

use crate::domain::SourceKind;
use crate::event_time;
use aws_lambda_events::event::dynamodb::EventRecord;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt;

/// A Lambda DynamoDB event with its records left raw.
#[derive(Deserialize)]
pub struct RawEvent<'a> {
    #[serde(rename = "Records", borrow)]
    pub records: Vec<&'a RawValue>,
}

/// An owned Lambda DynamoDB event with its records left raw (for the Lambda
/// runtime, which hands over owned payloads).
#[derive(Deserialize)]
pub struct OwnedRawEvent {
    #[serde(rename = "Records")]
    pub records: Vec<Box<RawValue>>,
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
    pub body: Result<EventRecord, String>,
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
struct LenientChange<'a> {
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
        .and_then(|d| serde_json::from_str::<LenientChange>(d.get()).ok());
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

/// Parse one record: metadata leniently, the body strictly.
pub fn parse_record(raw: &RawValue) -> ParsedRecord<'_> {
    let meta = read_meta(raw);
    let body = serde_json::from_str::<EventRecord>(raw.get())
        .map_err(|e| format!("malformed stream record: {}", redact_quoted(&e.to_string())));
    ParsedRecord { raw, meta, body }
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
mod tests {
    use super::*;

    #[test]
    fn arn_table() {
        assert_eq!(
            table_from_arn(
                "arn:aws:dynamodb:us-east-1:123456789012:table/icarus-dev-github_events/stream/2024-01-01T00:00:00.000"
            ),
            Some("icarus-dev-github_events")
        );
        assert_eq!(table_from_arn("arn:aws:sqs:x"), None);
        assert_eq!(table_from_arn("arn:aws:dynamodb:r:a:table//stream/x"), None);
    }

    #[test]
    fn meta_survives_malformed_body() {
        let raw: Box<RawValue> = serde_json::from_str(
            r#"{"eventID":"e1","eventName":"INSERT","eventSourceARN":"arn:aws:dynamodb:us-east-1:1:table/acsd2p-dev-Conversations/stream/x",
                "dynamodb":{"SequenceNumber":"123","ApproximateCreationDateTime":1717000000.123,"Keys":{"k":{"Q":"bad"}}}}"#,
        )
        .unwrap();
        let p = parse_record(&raw);
        assert!(p.body.is_err());
        assert_eq!(p.meta.event_id.as_deref(), Some("e1"));
        assert_eq!(p.meta.sequence_number.as_deref(), Some("123"));
        assert_eq!(p.meta.source, Some(SourceKind::Conversations));
        assert_eq!(
            p.meta.approx_created.unwrap().timestamp_millis(),
            1_717_000_000_123
        );
    }

    #[test]
    fn meta_of_garbage_is_empty() {
        let raw: Box<RawValue> = serde_json::from_str("[1,2]").unwrap();
        assert_eq!(read_meta(&raw), RecordMeta::default());
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_quoted(r#"invalid type: string "tok", expected x"#),
            r#"invalid type: string "…", expected x"#
        );
    }
}
