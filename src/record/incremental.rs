//! Incremental-export lines as stream records. Pure.
//!
//! An incremental export (`exportType` `INCREMENTAL_EXPORT`) holds, for each
//! item changed in its window [`exportFromTime`, `exportToTime`), one line
//! with the item's state at the window's end:
//! `{"Metadata":{"WriteTimestampMicros":…},"Keys":…,"NewImage":…,"OldImage":…}`
//! (`OldImage`, the state before the window, only in `NEW_AND_OLD_IMAGES`
//! exports). A line without `NewImage` is a delete.
//!
//! Each line becomes a stream record with `eventSource`
//! `streamfold:incremental-export` and the timed version
//! `domain::Version::incremental_export` (the window's end, kind
//! `WindowEnd`, the write time): above every stream record written before
//! the window's end, below every one written at or after it, so the
//! export's state replaces what the ledger holds from before the gap and
//! loses to what the stream delivers after it, in either order of arrival
//! (ARCHITECTURE.md, "Versions").
//!
//! A delete is an application delete (a retraction and a tombstone) unless
//! it is a TTL expiry, which the stream would have skipped: an export does
//! not mark those, so with `ttl_attribute` a delete whose `OldImage` holds
//! that attribute at or before the write time is taken as one, and the
//! state before it (`OldImage`) stays counted. That line states the item at
//! the window's *start*, so it carries the version of the window's start
//! (ARCHITECTURE.md, "Versions", claim 6): it replaces what the ledger held
//! from before the window, and loses to every stream record of the window
//! that did arrive (a later state of the item).

use crate::domain::Version;
use crate::record::snapshot::INCREMENTAL_EVENT_SOURCE;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::HashMap;

/// What every line of one incremental export shares.
#[derive(Clone, Debug)]
pub struct Window<'a> {
    /// The source table (its name routes the records to their normaliser).
    pub table: &'a str,
    /// `exportFromTime` in whole epoch seconds (rounded down).
    pub start_secs: i64,
    /// `exportToTime` in whole epoch seconds (rounded down).
    pub end_secs: i64,
    /// The table's TTL attribute, if it has one.
    pub ttl_attribute: Option<&'a str>,
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(rename = "Metadata")]
    metadata: Metadata<'a>,
    #[serde(rename = "Keys", borrow)]
    keys: &'a RawValue,
    #[serde(rename = "NewImage", borrow, default)]
    new_image: Option<&'a RawValue>,
    #[serde(rename = "OldImage", borrow, default)]
    old_image: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(rename = "WriteTimestampMicros", borrow)]
    write_timestamp_micros: &'a RawValue,
}

/// A number as DynamoDB JSON (`{"N": "…"}`), a JSON number or a string.
fn integer(raw: &RawValue) -> Option<u64> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num<'a> {
        Typed {
            #[serde(rename = "N")]
            n: &'a str,
        },
        Plain(u64),
        Text(&'a str),
    }
    match serde_json::from_str::<Num>(raw.get()).ok()? {
        Num::Typed { n } | Num::Text(n) => n.trim().parse().ok(),
        Num::Plain(n) => Some(n),
    }
}

/// Epoch seconds in a DynamoDB number attribute (`{"N": "1704067200"}`).
fn epoch_seconds(raw: &RawValue) -> Option<f64> {
    #[derive(Deserialize)]
    struct N<'a> {
        #[serde(rename = "N")]
        n: &'a str,
    }
    serde_json::from_str::<N>(raw.get())
        .ok()?
        .n
        .trim()
        .parse()
        .ok()
}

/// Whether a delete of an item whose state before it was `old` is a TTL
/// expiry at `write_micros`.
fn is_ttl_expiry(old: Option<&RawValue>, ttl_attribute: Option<&str>, write_micros: u64) -> bool {
    let (Some(old), Some(name)) = (old, ttl_attribute) else {
        return false;
    };
    let Ok(attrs) = serde_json::from_str::<HashMap<&str, &RawValue>>(old.get()) else {
        return false;
    };
    attrs
        .get(name)
        .and_then(|v| epoch_seconds(v))
        .is_some_and(|expires| expires > 0.0 && expires * 1e6 <= write_micros as f64)
}

fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The stream record of one line; `id` names it (`file:line`).
pub fn incremental_record(
    window: &Window<'_>,
    line: &str,
    id: &str,
) -> Result<Box<RawValue>, String> {
    let l: Line<'_> = serde_json::from_str(line).map_err(|e| {
        format!(
            "{id}: not an incremental-export line ({{\"Metadata\":…,\"Keys\":…}}): {}",
            crate::record::lambda_event::redact_quoted(&e.to_string())
        )
    })?;
    let write_micros = integer(l.metadata.write_timestamp_micros)
        .ok_or_else(|| format!("{id}: Metadata.WriteTimestampMicros is not a whole number"))?;
    let mut version = Version::incremental_export(window.end_secs, write_micros);
    let (name, new, old) = match (l.new_image, l.old_image) {
        (Some(new), old) => (
            if old.is_some() { "MODIFY" } else { "INSERT" },
            Some(new),
            old,
        ),
        // The state at the window's start: at the window's end it would beat
        // the stream records of the window that did arrive.
        (None, old) if is_ttl_expiry(old, window.ttl_attribute, write_micros) => {
            version = Version::incremental_export(window.start_secs, write_micros);
            ("INSERT", old, None)
        }
        (None, old) => ("REMOVE", None, old),
    };
    let mut ddb = format!(
        r#"{{"ApproximateCreationDateTime":{secs},"Keys":{keys},"StreamfoldVersion":"{version}","SizeBytes":{size},"StreamViewType":"NEW_AND_OLD_IMAGES""#,
        secs = write_micros as f64 / 1e6,
        keys = l.keys.get(),
        version = version.to_hex(),
        size = line.len(),
    );
    if let Some(new) = new {
        ddb.push_str(&format!(r#","NewImage":{}"#, new.get()));
    }
    if let Some(old) = old {
        ddb.push_str(&format!(r#","OldImage":{}"#, old.get()));
    }
    ddb.push('}');
    let text = format!(
        r#"{{"eventID":{id},"eventName":"{name}","eventVersion":"1.1","eventSource":"{INCREMENTAL_EVENT_SOURCE}","awsRegion":"backfill","eventSourceARN":{arn},"dynamodb":{ddb}}}"#,
        id = json(id),
        arn = json(&format!(
            "arn:aws:dynamodb:backfill:000000000000:table/{}/stream/incremental-export",
            window.table
        )),
    );
    RawValue::from_string(text).map_err(|e| format!("{id}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Window<'static> = Window {
        table: "icarus-prod-github_events",
        start_secs: 1_709_996_400,
        end_secs: 1_710_003_600,
        ttl_attribute: Some("ttl"),
    };

    fn record(line: &str) -> serde_json::Value {
        serde_json::from_str(
            incremental_record(&WINDOW, line, "data.json.gz:3")
                .unwrap()
                .get(),
        )
        .unwrap()
    }

    #[test]
    fn lines_become_upserts_removals_or_kept_states() {
        let upsert = record(
            r#"{"Metadata":{"WriteTimestampMicros":{"N":"1710000000123456"}},"Keys":{"id":{"S":"a"}},"NewImage":{"id":{"S":"a"}},"OldImage":{"id":{"S":"a"}}}"#,
        );
        assert_eq!(upsert["eventName"], "MODIFY");
        assert_eq!(upsert["eventSource"], INCREMENTAL_EVENT_SOURCE);
        assert_eq!(
            upsert["dynamodb"]["StreamfoldVersion"],
            Version::incremental_export(1_710_003_600, 1_710_000_000_123_456).to_hex()
        );
        let insert = record(
            r#"{"Metadata":{"WriteTimestampMicros":1710000000000000},"Keys":{"id":{"S":"a"}},"NewImage":{"id":{"S":"a"}}}"#,
        );
        assert_eq!(insert["eventName"], "INSERT");
        // An application delete, and one of an item whose TTL had passed.
        let delete = record(
            r#"{"Metadata":{"WriteTimestampMicros":"1710000000000000"},"Keys":{"id":{"S":"a"}},"OldImage":{"id":{"S":"a"},"ttl":{"N":"1710000001"}}}"#,
        );
        assert_eq!(delete["eventName"], "REMOVE");
        assert_eq!(delete["dynamodb"]["OldImage"]["id"]["S"], "a");
        let expired = record(
            r#"{"Metadata":{"WriteTimestampMicros":{"N":"1710000000000000"}},"Keys":{"id":{"S":"a"}},"OldImage":{"id":{"S":"a"},"ttl":{"N":"1709999999"}}}"#,
        );
        assert_eq!(expired["eventName"], "INSERT");
        assert_eq!(expired["dynamodb"]["NewImage"]["ttl"]["N"], "1709999999");
        assert!(expired["dynamodb"]["OldImage"].is_null());
        // It states the item at the window's start, and carries that time.
        assert_eq!(
            expired["dynamodb"]["StreamfoldVersion"],
            Version::incremental_export(1_709_996_400, 1_710_000_000_000_000).to_hex()
        );
        assert_eq!(
            delete["dynamodb"]["StreamfoldVersion"],
            Version::incremental_export(1_710_003_600, 1_710_000_000_000_000).to_hex()
        );
        // Without OldImage (a NEW_IMAGE export) a delete cannot be told apart.
        let keys_only = record(
            r#"{"Metadata":{"WriteTimestampMicros":{"N":"1710000000000000"}},"Keys":{"id":{"S":"a"}}}"#,
        );
        assert_eq!(keys_only["eventName"], "REMOVE");
    }

    #[test]
    fn bad_lines_are_named() {
        for (line, why) in [
            (
                r#"{"Item":{"id":{"S":"a"}}}"#,
                "not an incremental-export line",
            ),
            (
                r#"{"Metadata":{"WriteTimestampMicros":{"N":"-5"}},"Keys":{}}"#,
                "not a whole number",
            ),
            (
                r#"{"Metadata":{"WriteTimestampMicros":{"S":"x"}},"Keys":{}}"#,
                "not a whole number",
            ),
        ] {
            let e = incremental_record(&WINDOW, line, "f:9").unwrap_err();
            assert!(e.starts_with("f:9: ") && e.contains(why), "{e}");
        }
    }
}
