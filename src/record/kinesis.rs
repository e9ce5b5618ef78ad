//! Kinesis Data Streams for DynamoDB: a Lambda Kinesis record turned into
//! the stream record `normalize` reads. Pure.
//!
//! A table streamed to Kinesis reaches Lambda as Kinesis records whose
//! base64 `data` holds DynamoDB's change record: `tableName`, `eventName`,
//! `userIdentity`, `dynamodb` with `Keys`, the images and
//! `ApproximateCreationDateTime` in milli- or microseconds
//! (`ApproximateCreationDateTimePrecision`), but no `SequenceNumber`.
//! Records may be duplicated, and are ordered per item only by that time.
//!
//! The change record becomes a stream record with `eventSource`
//! `streamfold:kinesis` and the timed version formed here
//! (`domain::Version::kinesis_record`: the time in microseconds, then a
//! hash of the change record): a duplicate has the same version, so it
//! changes nothing; a reordered older record has a lower version, so it
//! loses to the newer one already applied. The Kinesis `sequenceNumber`
//! names the record (`dynamodb.SequenceNumber`, which Kinesis-formed
//! records do not use as a version): partial batch failures and quarantine
//! rows report it. A record whose data cannot be read becomes a record that
//! `normalize` quarantines with the reason, keeping the Kinesis record.

use crate::domain::{ChangeOrder, Version};
use crate::record::snapshot::KINESIS_EVENT_SOURCE;
use base64::Engine;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// `eventSource` Lambda sets on Kinesis records.
pub const KINESIS_SOURCE: &str = "aws:kinesis";

/// Set on a record adapted from a change record stamped to the millisecond
/// (`ApproximateCreationDateTimePrecision` `MILLISECOND`, the default):
/// two changes of an item in one millisecond are then ordered only by what
/// they carry (`domain::ChangeOrder`), so the pipeline says so once per
/// stream.
pub const MILLISECOND_MARK: &str = r#","streamfoldPrecision":"MILLISECOND""#;

/// Whether `adapted` (a [`stream_record`] result) came from a change record
/// stamped to the millisecond.
pub fn is_millisecond(adapted: &RawValue) -> bool {
    adapted.get().contains(MILLISECOND_MARK)
}

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
    #[serde(rename = "awsRegion", borrow, default)]
    aws_region: Option<Cow<'a, str>>,
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
    #[serde(rename = "tableName")]
    table_name: String,
    #[serde(rename = "eventName")]
    event_name: String,
    #[serde(rename = "eventID", default)]
    event_id: Option<String>,
    #[serde(rename = "awsRegion", default)]
    aws_region: Option<String>,
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
    #[serde(rename = "SizeBytes", default)]
    size_bytes: Option<i64>,
}

/// Whether `raw` may be a Kinesis record (a cheap test that passes over
/// DynamoDB stream records; [`stream_record`] decides).
fn may_be_kinesis(raw: &RawValue) -> bool {
    raw.get().contains(KINESIS_SOURCE)
}

/// Whether `raw` is a Lambda Kinesis record (`eventSource` `aws:kinesis`).
fn is_kinesis(raw: &RawValue) -> bool {
    may_be_kinesis(raw)
        && serde_json::from_str::<Source<'_>>(raw.get())
            .is_ok_and(|s| s.event_source.as_deref() == Some(KINESIS_SOURCE))
}

/// The stream record of a Lambda Kinesis record, or `None` when `raw` is
/// not one (a DynamoDB stream record, or anything else `normalize` judges).
pub fn stream_record(raw: &RawValue) -> Option<Box<RawValue>> {
    if !is_kinesis(raw) {
        return None;
    }
    let rec: KinesisEventRecord<'_> = match serde_json::from_str(raw.get()) {
        Ok(rec) => rec,
        Err(e) => {
            let reason = format!(
                "malformed Kinesis record: {}",
                crate::record::lambda_event::redact_quoted(&e.to_string())
            );
            return Some(unreadable(raw, "?", "unknown", &reason));
        }
    };
    let region = rec.aws_region.as_deref().unwrap_or("unknown");
    let account = rec
        .event_source_arn
        .as_deref()
        .and_then(|arn| arn.split(':').nth(4))
        .filter(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or("000000000000");
    let seq = &rec.kinesis.sequence_number;
    Some(
        convert(&rec, region, account)
            .unwrap_or_else(|reason| unreadable(raw, seq, region, &reason)),
    )
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

fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn convert(
    rec: &KinesisEventRecord<'_>,
    region: &str,
    account: &str,
) -> Result<Box<RawValue>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(rec.kinesis.data.as_bytes())
        .map_err(|_| "Kinesis data is not base64".to_string())?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| "Kinesis data is not UTF-8 text".to_string())?;
    change_record(&rec.kinesis.sequence_number, region, account, text)
}

/// The stream record of DynamoDB's change record `text` (a Kinesis
/// record's decoded `data`), named by Kinesis sequence number `seq`.
pub fn change_record(
    seq: &str,
    region: &str,
    account: &str,
    text: &str,
) -> Result<Box<RawValue>, String> {
    let change: ChangeRecord<'_> = serde_json::from_str(text).map_err(|e| {
        format!(
            "Kinesis data is not a DynamoDB change record: {}",
            crate::record::lambda_event::redact_quoted(&e.to_string())
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
    let version = Version::kinesis_record(micros, order, text.as_bytes());
    let mut ddb = format!(
        r#"{{"ApproximateCreationDateTime":{secs},"Keys":{keys},"SequenceNumber":{seq},"StreamfoldVersion":"{version}","SizeBytes":{size}"#,
        secs = micros as f64 / 1e6,
        keys = d.keys.get(),
        seq = json(seq),
        version = version.to_hex(),
        size = d.size_bytes.unwrap_or(text.len() as i64),
    );
    if let Some(new) = d.new_image {
        ddb.push_str(&format!(r#","NewImage":{}"#, new.get()));
    }
    if let Some(old) = d.old_image {
        ddb.push_str(&format!(r#","OldImage":{}"#, old.get()));
    }
    ddb.push('}');
    let identity = change
        .user_identity
        .map(|u| format!(r#","userIdentity":{}"#, u.get()))
        .unwrap_or_default();
    let millisecond = if d.precision.as_deref() == Some("MICROSECOND")
        || (d.precision.is_none() && d.approximate_creation >= 1e14)
    {
        ""
    } else {
        MILLISECOND_MARK
    };
    let out = format!(
        r#"{{"eventID":{id},"eventName":{name},"eventSource":"{KINESIS_EVENT_SOURCE}","awsRegion":{region},"eventSourceARN":{arn}{identity}{millisecond},"dynamodb":{ddb}}}"#,
        id = json(change.event_id.as_deref().unwrap_or(seq)),
        name = json(&change.event_name),
        region = json(change.aws_region.as_deref().unwrap_or(region)),
        arn = json(&format!(
            "arn:aws:dynamodb:{region}:{account}:table/{}/stream/kinesis",
            change.table_name
        )),
    );
    RawValue::from_string(out).map_err(|e| format!("Kinesis record not convertible: {e}"))
}

/// A record `normalize` quarantines with `reason`; the Kinesis record is
/// kept inside it (`kinesisRecord`), so the raw text shows what arrived.
fn unreadable(raw: &RawValue, seq: &str, region: &str, reason: &str) -> Box<RawValue> {
    let text = format!(
        r#"{{"eventID":{id},"eventName":"?","eventSource":"{KINESIS_EVENT_SOURCE}","awsRegion":{region},"streamfoldError":{reason},"kinesisRecord":{raw},"dynamodb":{{"SequenceNumber":{id},"SizeBytes":0}}}}"#,
        id = json(seq),
        region = json(region),
        reason = json(reason),
        raw = raw.get(),
    );
    RawValue::from_string(text).unwrap_or_else(|_| raw.to_owned())
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
    fn a_change_record_becomes_a_stream_record_with_its_timed_version() {
        let out = stream_record(&kinesis(CHANGE, "4959")).unwrap();
        let v: serde_json::Value = serde_json::from_str(out.get()).unwrap();
        assert_eq!(v["eventSource"], KINESIS_EVENT_SOURCE);
        assert_eq!(
            v["eventSourceARN"],
            "arn:aws:dynamodb:us-east-1:123456789012:table/icarus-prod-github_events/stream/kinesis"
        );
        assert_eq!(v["dynamodb"]["SequenceNumber"], "4959");
        assert_eq!(v["dynamodb"]["Keys"]["id"]["S"], "gh-1");
        let version = Version::kinesis_record(
            1_710_063_000_123_000,
            ChangeOrder::Created,
            CHANGE.as_bytes(),
        );
        assert_eq!(v["dynamodb"]["StreamfoldVersion"], version.to_hex());
        assert_eq!(v["dynamodb"]["ApproximateCreationDateTime"], 1710063000.123);
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
            let out = stream_record(&kinesis(data, "77")).unwrap();
            let v: serde_json::Value = serde_json::from_str(out.get()).unwrap();
            assert!(
                v["streamfoldError"].as_str().unwrap().contains(reason),
                "{v}"
            );
            assert_eq!(v["dynamodb"]["SequenceNumber"], "77");
            assert_eq!(v["kinesisRecord"]["kinesis"]["sequenceNumber"], "77");
        }
        let mut bad = kinesis(CHANGE, "78").get().to_string();
        bad = bad.replace(r#""data":""#, r#""data":"%%%"#);
        let out = stream_record(&RawValue::from_string(bad).unwrap()).unwrap();
        assert!(out.get().contains("not base64"), "{}", out.get());
    }

    #[test]
    fn a_malformed_kinesis_record_is_kept_with_a_reason() {
        let raw = RawValue::from_string(
            r#"{"eventSource":"aws:kinesis","kinesis":{"data":"e30="}}"#.into(),
        )
        .unwrap();
        let out = stream_record(&raw).unwrap();
        let v: serde_json::Value = serde_json::from_str(out.get()).unwrap();
        assert!(
            v["streamfoldError"]
                .as_str()
                .unwrap()
                .starts_with("malformed Kinesis record: missing field `sequenceNumber`"),
            "{v}"
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
        assert!(stream_record(&ddb).is_none());
        assert!(sequence_number(&ddb).is_none());
    }
}
