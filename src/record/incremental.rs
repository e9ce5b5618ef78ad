//! Incremental-export lines as change records
//! (`record::change::StreamChange`). Pure.
//!
//! An incremental export (`exportType` `INCREMENTAL_EXPORT`) holds, for each
//! item changed in its window [`exportFromTime`, `exportToTime`), one line
//! with the item's state at the window's end:
//! `{"Metadata":{"WriteTimestampMicros":…},"Keys":…,"NewImage":…,"OldImage":…}`
//! (`OldImage`, the state before the window, only in `NEW_AND_OLD_IMAGES`
//! exports). A line without `NewImage` is a delete.
//!
//! Each line becomes a change carrying, as a value ([`Origin::Timed`]),
//! the timed version `domain::Version::incremental_export` (the window's end, kind
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
use crate::record::change::{EventName, Origin, StreamChange, StreamViewType};
use crate::record::event_time;
use crate::record::item::{Attr, Item};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

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
    /// Required; `null` is no keys (as in a stream record).
    #[serde(rename = "Keys", borrow, deserialize_with = "nullish")]
    keys: Item<'a>,
    #[serde(rename = "NewImage", borrow, default)]
    new_image: Option<Item<'a>>,
    #[serde(rename = "OldImage", borrow, default)]
    old_image: Option<Item<'a>>,
}

fn nullish<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Item<'de>, D::Error> {
    Ok(Option::<Item<'de>>::deserialize(d)?.unwrap_or_default())
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

/// Whether a delete of an item whose state before it was `old` is a TTL
/// expiry at `write_micros`.
fn is_ttl_expiry(old: Option<&Item<'_>>, ttl_attribute: Option<&str>, write_micros: u64) -> bool {
    let (Some(old), Some(name)) = (old, ttl_attribute) else {
        return false;
    };
    // Epoch seconds in a DynamoDB number attribute (`{"N": "1704067200"}`).
    let expires = match old.get(name) {
        Some(Attr::N(n)) => n.trim().parse::<f64>().ok(),
        _ => None,
    };
    expires.is_some_and(|expires| expires > 0.0 && expires * 1e6 <= write_micros as f64)
}

/// The change of one line of the export `window`; `id` names it
/// (`file:line`).
pub fn incremental_change<'a>(
    window: &Window<'a>,
    line: &'a str,
    id: &'a str,
) -> Result<StreamChange<'a>, String> {
    let l: Line<'a> = serde_json::from_str(line).map_err(|e| {
        format!(
            "{id}: not an incremental-export line ({{\"Metadata\":…,\"Keys\":…}}): {}",
            crate::record::lambda_event::redact_quoted(&e.to_string())
        )
    })?;
    let write_micros = integer(l.metadata.write_timestamp_micros)
        .ok_or_else(|| format!("{id}: Metadata.WriteTimestampMicros is not a whole number"))?;
    // The write time is the change's `ApproximateCreationDateTime`, in
    // seconds, and must be an instant.
    let secs = write_micros as f64 / 1e6;
    if chrono::DateTime::from_timestamp(secs.trunc() as i64, 0).is_none() {
        return Err(format!(
            "{id}: Metadata.WriteTimestampMicros is out of range"
        ));
    }
    let mut version = Version::incremental_export(window.end_secs, write_micros);
    let (name, new, old) = match (l.new_image, l.old_image) {
        (Some(new), old) => (
            if old.is_some() {
                EventName::Modify
            } else {
                EventName::Insert
            },
            new,
            old,
        ),
        // The state at the window's start: at the window's end it would beat
        // the stream records of the window that did arrive.
        (None, old) if is_ttl_expiry(old.as_ref(), window.ttl_attribute, write_micros) => {
            version = Version::incremental_export(window.start_secs, write_micros);
            (EventName::Insert, old.unwrap_or_default(), None)
        }
        (None, old) => (EventName::Remove, Item::default(), old),
    };
    let mut change = StreamChange::new(
        Some(Cow::Borrowed(window.table)),
        name,
        Origin::Timed(version),
    );
    change.event_id = Some(Cow::Borrowed(id));
    change.approx_created = event_time::approximate_creation(secs);
    change.view_type = Some(StreamViewType::NewAndOldImages);
    change.keys = l.keys;
    change.new_image = new;
    change.old_image = old.unwrap_or_default();
    Ok(change)
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

    fn record(line: &'static str) -> StreamChange<'static> {
        incremental_change(&WINDOW, line, "data.json.gz:3").unwrap()
    }

    fn s(text: &str) -> Attr<'_> {
        Attr::S(text.into())
    }

    #[test]
    fn lines_become_upserts_removals_or_kept_states() {
        let upsert = record(
            r#"{"Metadata":{"WriteTimestampMicros":{"N":"1710000000123456"}},"Keys":{"id":{"S":"a"}},"NewImage":{"id":{"S":"a"}},"OldImage":{"id":{"S":"a"}}}"#,
        );
        assert_eq!(upsert.event_name, EventName::Modify);
        assert_eq!(upsert.table.as_deref(), Some(WINDOW.table));
        assert_eq!(upsert.event_id.as_deref(), Some("data.json.gz:3"));
        assert_eq!(upsert.keys.get("id"), Some(&s("a")));
        assert_eq!(
            upsert.origin,
            Origin::Timed(Version::incremental_export(
                1_710_003_600,
                1_710_000_000_123_456
            ))
        );
        let insert = record(
            r#"{"Metadata":{"WriteTimestampMicros":1710000000000000},"Keys":{"id":{"S":"a"}},"NewImage":{"id":{"S":"a"}}}"#,
        );
        assert_eq!(insert.event_name, EventName::Insert);
        // An application delete, and one of an item whose TTL had passed.
        let delete = record(
            r#"{"Metadata":{"WriteTimestampMicros":"1710000000000000"},"Keys":{"id":{"S":"a"}},"OldImage":{"id":{"S":"a"},"ttl":{"N":"1710000001"}}}"#,
        );
        assert_eq!(delete.event_name, EventName::Remove);
        assert_eq!(delete.old_image.get("id"), Some(&s("a")));
        let expired = record(
            r#"{"Metadata":{"WriteTimestampMicros":{"N":"1710000000000000"}},"Keys":{"id":{"S":"a"}},"OldImage":{"id":{"S":"a"},"ttl":{"N":"1709999999"}}}"#,
        );
        assert_eq!(expired.event_name, EventName::Insert);
        assert_eq!(
            expired.new_image.get("ttl"),
            Some(&Attr::N("1709999999".into()))
        );
        assert!(expired.old_image.is_empty());
        // It states the item at the window's start, and carries that time.
        assert_eq!(
            expired.origin,
            Origin::Timed(Version::incremental_export(
                1_709_996_400,
                1_710_000_000_000_000
            ))
        );
        assert_eq!(
            delete.origin,
            Origin::Timed(Version::incremental_export(
                1_710_003_600,
                1_710_000_000_000_000
            ))
        );
        // Without OldImage (a NEW_IMAGE export) a delete cannot be told apart.
        let keys_only = record(
            r#"{"Metadata":{"WriteTimestampMicros":{"N":"1710000000000000"}},"Keys":{"id":{"S":"a"}}}"#,
        );
        assert_eq!(keys_only.event_name, EventName::Remove);
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
            let e = incremental_change(&WINDOW, line, "f:9").unwrap_err();
            assert!(e.starts_with("f:9: ") && e.contains(why), "{e}");
        }
    }
}
