//! Kinesis Data Streams for DynamoDB: a Lambda Kinesis record read as the
//! change record (`record::change::StreamChange`) it carries. Pure.
//!
//! A table streamed to Kinesis reaches Lambda as Kinesis records whose
//! base64 `data` holds DynamoDB's change record: `tableName`, `eventName`,
//! `userIdentity`, `dynamodb` with `Keys`, the images and
//! `ApproximateCreationDateTime` in milli- or microseconds
//! (`ApproximateCreationDateTimePrecision`), but no `SequenceNumber`.
//! Records may be duplicated, and are ordered per item only by that time.
//!
//! The change record is read with the timed version formed here
//! (`domain::Version::kinesis_record`: the time in microseconds, then a
//! hash of the change record): a duplicate has the same version, so it
//! changes nothing; a reordered older record has a lower version, so it
//! loses to the newer one already applied. The Kinesis `sequenceNumber`
//! names the record (its `sequence_number`, which a timed version does not
//! use): partial batch failures and quarantine rows report it. A record
//! whose data cannot be read is `Unreadable` with the reason; the pipeline
//! quarantines the Kinesis record as received.

use crate::domain::{ChangeOrder, Version};
use crate::record::change::{EventName, Origin, RecordMeta, StreamChange, Unreadable};
use crate::record::event_time;
use crate::record::item::Item;
use crate::record::lambda_event::{UserIdentity, redact_quoted};
use base64::Engine;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// `eventSource` Lambda sets on Kinesis records.
pub const KINESIS_SOURCE: &str = "aws:kinesis";

/// The Kinesis stream a Lambda Kinesis record came from
/// (`eventSourceARN`).
pub fn stream_arn(raw: &RawValue) -> Option<String> {
    let rec: KinesisEventRecord<'_> = serde_json::from_str(raw.get()).ok()?;
    rec.event_source_arn.map(Cow::into_owned)
}

/// Only what tells a Kinesis record from anything else.
#[derive(Deserialize)]
struct Source<'a> {
    #[serde(rename = "eventSource", borrow, default)]
    event_source: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct KinesisEventRecord<'a> {
    #[serde(rename = "eventSourceARN", borrow, default)]
    event_source_arn: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kinesis: KinesisPayload<'a>,
}

#[derive(Deserialize)]
struct KinesisPayload<'a> {
    #[serde(rename = "sequenceNumber", borrow)]
    sequence_number: Cow<'a, str>,
    #[serde(borrow)]
    data: Cow<'a, str>,
}

/// DynamoDB's change record inside `data`.
#[derive(Deserialize)]
struct ChangeRecord<'a> {
    #[serde(rename = "tableName", borrow)]
    table_name: Cow<'a, str>,
    #[serde(rename = "eventName", borrow)]
    event_name: Cow<'a, str>,
    #[serde(rename = "eventID", borrow, default)]
    event_id: Option<Cow<'a, str>>,
    #[serde(rename = "userIdentity", borrow, default)]
    user_identity: Option<&'a RawValue>,
    #[serde(borrow)]
    dynamodb: ChangePayload<'a>,
}

#[derive(Deserialize)]
struct ChangePayload<'a> {
    #[serde(rename = "ApproximateCreationDateTime")]
    approximate_creation: f64,
    #[serde(rename = "ApproximateCreationDateTimePrecision", default)]
    precision: Option<String>,
    #[serde(rename = "Keys", borrow)]
    keys: &'a RawValue,
    #[serde(rename = "NewImage", borrow, default)]
    new_image: Option<&'a RawValue>,
    #[serde(rename = "OldImage", borrow, default)]
    old_image: Option<&'a RawValue>,
}

/// A Lambda Kinesis record read: the change it carries (owned: it was
/// decoded from base64), or why there is none.
pub struct KinesisRead {
    pub read: Result<StreamChange<'static>, Unreadable>,
    /// Stamped to the millisecond (`ApproximateCreationDateTimePrecision`
    /// `MILLISECOND`, the default): two changes of an item in one
    /// millisecond are then ordered only by what they carry
    /// (`domain::ChangeOrder`), so the pipeline says so once per stream.
    pub millisecond: bool,
}

/// Whether `raw` may be a Kinesis record (a cheap test that passes over
/// DynamoDB stream records; [`read`] decides).
fn may_be_kinesis(raw: &RawValue) -> bool {
    raw.get().contains(KINESIS_SOURCE)
}

/// Whether `raw` is a Lambda Kinesis record (`eventSource` `aws:kinesis`).
fn is_kinesis(raw: &RawValue) -> bool {
    may_be_kinesis(raw)
        && serde_json::from_str::<Source<'_>>(raw.get())
            .is_ok_and(|s| s.event_source.as_deref() == Some(KINESIS_SOURCE))
}

/// The change a Lambda Kinesis record carries, or `None` when `raw` is
/// not one (a DynamoDB stream record, or anything else `normalize` judges).
pub fn read(raw: &RawValue) -> Option<KinesisRead> {
    if !is_kinesis(raw) {
        return None;
    }
    let rec: KinesisEventRecord<'_> = match serde_json::from_str(raw.get()) {
        Ok(rec) => rec,
        Err(e) => {
            let reason = format!(
                "malformed Kinesis record: {}",
                redact_quoted(&e.to_string())
            );
            return Some(unreadable("?", reason));
        }
    };
    let seq = &rec.kinesis.sequence_number;
    let read = base64::engine::general_purpose::STANDARD
        .decode(rec.kinesis.data.as_bytes())
        .map_err(|_| "Kinesis data is not base64".to_string())
        .and_then(|bytes| {
            String::from_utf8(bytes).map_err(|_| "Kinesis data is not UTF-8 text".to_string())
        });
    let text = match read {
        Ok(text) => text,
        Err(reason) => return Some(unreadable(seq, reason)),
    };
    Some(match change_record(seq, &text) {
        Ok((change, millisecond)) => KinesisRead {
            read: change.map(StreamChange::into_owned),
            millisecond,
        },
        Err(reason) => unreadable(seq, reason),
    })
}

/// The Kinesis `sequenceNumber` of a Lambda Kinesis record: its
/// `itemIdentifier` in a partial batch failure.
pub fn sequence_number(raw: &RawValue) -> Option<String> {
    if !is_kinesis(raw) {
        return None;
    }
    let rec: KinesisEventRecord<'_> = serde_json::from_str(raw.get()).ok()?;
    Some(rec.kinesis.sequence_number.into_owned())
}

/// `ApproximateCreationDateTime` of a change record in microseconds: as
/// its precision says, else by magnitude (milliseconds are the default).
fn approx_micros(value: f64, precision: Option<&str>) -> Result<u64, String> {
    if !value.is_finite() || value <= 0.0 {
        return Err("ApproximateCreationDateTime is not a positive number".into());
    }
    let micros = match precision {
        Some("MICROSECOND") => value,
        Some("MILLISECOND") => value * 1_000.0,
        Some(other) => {
            return Err(format!(
                "ApproximateCreationDateTimePrecision {other:?} is neither MILLISECOND nor MICROSECOND"
            ));
        }
        None if value >= 1e14 => value,
        None if value >= 1e11 => value * 1_000.0,
        None => value * 1_000_000.0,
    };
    // Beyond the year 9999: not a time.
    if micros >= 253_402_300_800_000_000.0 {
        return Err("ApproximateCreationDateTime is out of range".into());
    }
    Ok(micros as u64)
}

/// An image of the change record, parsed strictly (`None`/`null`: empty).
fn image<'a>(raw: Option<&'a RawValue>) -> Result<Item<'a>, serde_json::Error> {
    match raw {
        None => Ok(Item::default()),
        Some(r) => Ok(serde_json::from_str::<Option<Item<'a>>>(r.get())?.unwrap_or_default()),
    }
}

/// The change in DynamoDB's change record `text` (a Kinesis record's
/// decoded `data`), named by Kinesis sequence number `seq`, and whether it
/// is stamped to the millisecond. `Err` when `text` is not a change record
/// at all; `Ok(Err(_))` when it is one with a malformed part (it is named
/// by its table and event).
#[allow(clippy::type_complexity)]
pub fn change_record<'a>(
    seq: &str,
    text: &'a str,
) -> Result<(Result<StreamChange<'a>, Unreadable>, bool), String> {
    let change: ChangeRecord<'a> = serde_json::from_str(text).map_err(|e| {
        format!(
            "Kinesis data is not a DynamoDB change record: {}",
            redact_quoted(&e.to_string())
        )
    })?;
    let d = &change.dynamodb;
    let micros = approx_micros(d.approximate_creation, d.precision.as_deref())?;
    let order = ChangeOrder::of_event(&change.event_name).ok_or_else(|| {
        format!(
            "eventName {:?} is not INSERT, MODIFY or REMOVE",
            change.event_name
        )
    })?;
    let millisecond = !(d.precision.as_deref() == Some("MICROSECOND")
        || (d.precision.is_none() && d.approximate_creation >= 1e14));
    let version = Version::kinesis_record(micros, order, text.as_bytes());
    let mut out = StreamChange::new(
        Some(change.table_name),
        EventName::parse(&change.event_name),
        Origin::Timed(version),
    );
    out.event_id = Some(
        change
            .event_id
            .unwrap_or_else(|| Cow::Owned(seq.to_string())),
    );
    out.sequence_number = Some(Cow::Owned(seq.to_string()));
    out.approx_created = event_time::approximate_creation(micros as f64 / 1e6);
    let parts = (|| -> Result<_, serde_json::Error> {
        let identity = match change.user_identity {
            Some(u) => serde_json::from_str::<Option<UserIdentity<'a>>>(u.get())?,
            None => None,
        };
        Ok((
            identity,
            image(Some(d.keys))?,
            image(d.new_image)?,
            image(d.old_image)?,
        ))
    })();
    match parts {
        Ok((identity, keys, new_image, old_image)) => {
            out.ttl_expiry = identity.is_some_and(|u| u.is_ttl_process());
            out.keys = keys;
            out.new_image = new_image;
            out.old_image = old_image;
            Ok((Ok(out), millisecond))
        }
        Err(e) => Ok((
            Err(Unreadable {
                meta: out.meta(),
                reason: format!("malformed stream record: {}", redact_quoted(&e.to_string())),
            }),
            millisecond,
        )),
    }
}

/// A Kinesis record whose data is no change record: named by its sequence
/// number.
fn unreadable(seq: &str, reason: String) -> KinesisRead {
    KinesisRead {
        read: Err(Unreadable {
            meta: RecordMeta {
                event_id: Some(seq.to_string()),
                sequence_number: Some(seq.to_string()),
                ..RecordMeta::default()
            },
            reason,
        }),
        millisecond: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinesis(data: &str, seq: &str) -> Box<RawValue> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        RawValue::from_string(format!(
            r#"{{"kinesis":{{"kinesisSchemaVersion":"1.0","partitionKey":"pk","sequenceNumber":"{seq}","data":"{b64}","approximateArrivalTimestamp":1710063000.5}},"eventSource":"aws:kinesis","eventVersion":"1.0","eventID":"shardId-000000000000:{seq}","eventName":"aws:kinesis:record","invokeIdentityArn":"arn:aws:iam::123456789012:role/r","awsRegion":"us-east-1","eventSourceARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s"}}"#
        ))
        .unwrap()
    }

    const CHANGE: &str = r#"{"awsRegion":"us-east-1","eventID":"e-1","eventName":"INSERT","userIdentity":null,"recordFormat":"application/json","tableName":"icarus-prod-github_events","dynamodb":{"ApproximateCreationDateTime":1710063000123,"Keys":{"id":{"S":"gh-1"}},"NewImage":{"id":{"S":"gh-1"}},"SizeBytes":20,"ApproximateCreationDateTimePrecision":"MILLISECOND"},"eventSource":"aws:dynamodb"}"#;

    #[test]
    fn a_change_record_becomes_a_change_with_its_timed_version() {
        let out = read(&kinesis(CHANGE, "4959")).unwrap();
        assert!(out.millisecond);
        let c = out.read.unwrap();
        assert_eq!(c.table.as_deref(), Some("icarus-prod-github_events"));
        assert_eq!(c.sequence_number.as_deref(), Some("4959"));
        assert_eq!(
            c.keys.get("id"),
            Some(&crate::record::item::Attr::S("gh-1".into()))
        );
        let version = Version::kinesis_record(
            1_710_063_000_123_000,
            ChangeOrder::Created,
            CHANGE.as_bytes(),
        );
        assert_eq!(c.origin, Origin::Timed(version));
        assert_eq!(
            c.approx_created.unwrap().timestamp_millis(),
            1_710_063_000_123
        );
        assert_eq!(
            sequence_number(&kinesis(CHANGE, "4959")).as_deref(),
            Some("4959")
        );
    }

    #[test]
    fn precision_and_magnitude_give_microseconds() {
        assert_eq!(
            approx_micros(1.5e12, Some("MILLISECOND")),
            Ok(1_500_000_000_000_000)
        );
        assert_eq!(
            approx_micros(1.5e15, Some("MICROSECOND")),
            Ok(1_500_000_000_000_000)
        );
        assert_eq!(approx_micros(1.5e15, None), Ok(1_500_000_000_000_000));
        assert_eq!(approx_micros(1.5e12, None), Ok(1_500_000_000_000_000));
        assert_eq!(approx_micros(1.5e9, None), Ok(1_500_000_000_000_000));
        assert!(approx_micros(0.0, None).is_err());
        assert!(approx_micros(f64::NAN, None).is_err());
        assert!(approx_micros(1e30, None).is_err());
        assert!(approx_micros(1.0, Some("SECOND")).is_err());
    }

    #[test]
    fn unreadable_data_is_kept_with_a_reason_and_its_sequence_number() {
        for (data, reason) in [
            ("not json at all", "not a DynamoDB change record"),
            (r#"{"tableName":"t"}"#, "not a DynamoDB change record"),
        ] {
            let u = read(&kinesis(data, "77")).unwrap().read.unwrap_err();
            assert!(u.reason.contains(reason), "{u:?}");
            assert_eq!(u.meta.sequence_number.as_deref(), Some("77"));
        }
        let mut bad = kinesis(CHANGE, "78").get().to_string();
        bad = bad.replace(r#""data":""#, r#""data":"%%%"#);
        let u = read(&RawValue::from_string(bad).unwrap())
            .unwrap()
            .read
            .unwrap_err();
        assert!(u.reason.contains("not base64"), "{u:?}");
    }

    #[test]
    fn a_malformed_kinesis_record_is_kept_with_a_reason() {
        let raw = RawValue::from_string(
            r#"{"eventSource":"aws:kinesis","kinesis":{"data":"e30="}}"#.into(),
        )
        .unwrap();
        let u = read(&raw).unwrap().read.unwrap_err();
        assert!(
            u.reason
                .starts_with("malformed Kinesis record: missing field `sequenceNumber`"),
            "{u:?}"
        );
        assert_eq!(sequence_number(&raw), None);
    }

    #[test]
    fn dynamodb_stream_records_pass_through() {
        let ddb = RawValue::from_string(
            r#"{"eventID":"1","eventName":"INSERT","eventSource":"aws:dynamodb","awsRegion":"us-east-1","dynamodb":{"Keys":{"id":{"S":"aws:kinesis"}},"SizeBytes":1}}"#
                .into(),
        )
        .unwrap();
        assert!(read(&ddb).is_none());
        assert!(sequence_number(&ddb).is_none());
    }
}
