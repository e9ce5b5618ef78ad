//! The text a backfilled record keeps in quarantine, and reading it back.
//! Pure.
//!
//! A Scan item, a full-export line or an incremental-export line is read
//! straight into a `StreamChange`; should it be quarantined, its row keeps
//! the line (or the Scan item, as the line a full export would hold) as
//! received, with what the line alone does not say: its table, its name
//! (`file:line`, `scan … item …`) and what forms its version (a full
//! export's or Scan's key attributes: the snapshot version; an incremental
//! export's window and TTL attribute: its timed version):
//!
//! `{"StreamfoldBackfill":{"table":…,"id":…,"keys":[…]},"Line":{"Item":{…}}}`
//! `{"StreamfoldBackfill":{"table":…,"id":…,"window":{"start_secs":…,"end_secs":…,"ttl_attribute":…}},"Line":{…}}`
//!
//! `rejects show` prints it; `rejects retry` ([`read`]) reads the line
//! again with the same reader, so the retried change is the one first read.

use crate::record::change::{Read, RecordMeta, Unreadable};
use crate::record::incremental::{Window, incremental_change};
use crate::record::snapshot::export_line_change;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The key that marks a backfill quarantine text (anywhere in its text:
/// a text re-serialised, e.g. with its keys sorted, is still one).
const MARK: &str = "\"StreamfoldBackfill\"";

/// What names a backfilled line and forms its version.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Names<'a> {
    #[serde(borrow)]
    pub table: Cow<'a, str>,
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// A snapshot (Scan, full export): the key attributes of the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<String>>,
    /// An incremental-export line: its export's window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowText>,
}

/// An incremental export's window, as quarantine keeps it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WindowText {
    pub start_secs: i64,
    pub end_secs: i64,
    pub ttl_attribute: Option<String>,
}

impl WindowText {
    pub fn of(window: &Window<'_>) -> WindowText {
        WindowText {
            start_secs: window.start_secs,
            end_secs: window.end_secs,
            ttl_attribute: window.ttl_attribute.map(str::to_string),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Text<'a> {
    #[serde(rename = "StreamfoldBackfill", borrow)]
    names: Names<'a>,
    #[serde(rename = "Line", borrow)]
    line: &'a RawValue,
}

/// The quarantine text of `line` (a JSON object, as received) named by
/// `names`. A line that is not JSON (it could not have been read into a
/// change) is kept as it is.
pub fn text(names: &Names<'_>, line: &str) -> String {
    let Ok(line) = serde_json::from_str::<&RawValue>(line) else {
        return line.to_string();
    };
    serde_json::to_string(&Text {
        names: names.clone(),
        line,
    })
    .unwrap_or_else(|_| line.get().to_string())
}

/// The quarantine text of a snapshot item given in DynamoDB JSON
/// (`{"attr": {"S": "…"}, …}`), as a full-export line of it.
pub fn snapshot_text(table: &str, key_names: &[String], item: &str, id: &str) -> String {
    let names = Names {
        table: Cow::Borrowed(table),
        id: Cow::Borrowed(id),
        keys: Some(key_names.to_vec()),
        window: None,
    };
    text(&names, &format!(r#"{{"Item":{item}}}"#))
}

/// The change a backfill quarantine text holds, read as its reader first
/// read it; `None` when `raw` is not such a text (a stream record, a
/// Kinesis record, …).
pub fn read(raw: &RawValue) -> Option<Read<'static>> {
    if !raw.get().contains(MARK) {
        return None;
    }
    let text: Text<'_> = serde_json::from_str(raw.get()).ok()?;
    let names = &text.names;
    let line = text.line.get();
    let read = match (&names.keys, &names.window) {
        (Some(keys), None) => export_line_change(&names.table, keys, line, &names.id),
        (None, Some(w)) => {
            let window = Window {
                table: &names.table,
                start_secs: w.start_secs,
                end_secs: w.end_secs,
                ttl_attribute: w.ttl_attribute.as_deref(),
            };
            incremental_change(&window, line, &names.id)
        }
        _ => Err(format!(
            "{}: a backfill quarantine text with neither `keys` nor `window`, or both",
            names.id
        )),
    };
    Some(match read {
        Ok(change) => Ok(change.into_owned()),
        Err(reason) => Err(Unreadable {
            meta: RecordMeta {
                table: Some(names.table.to_string()),
                source: crate::domain::SourceKind::from_table_name(&names.table),
                event_id: Some(names.id.to_string()),
                ..RecordMeta::default()
            },
            reason,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::change::StreamChange;

    const ITEM: &str = r#"{"id":{"S":"gh-\"1"},"username":{"S":"alice"},"n":{"N":"1.50"}}"#;

    fn raw(text: String) -> Box<RawValue> {
        RawValue::from_string(text).unwrap()
    }

    #[test]
    fn an_export_line_reads_back_into_the_same_change() {
        let line = format!(r#" {{"Item":{ITEM}}} "#);
        let keys = vec!["id".to_string()];
        let first = export_line_change("t-github_events", &keys, &line, "f.json.gz:3").unwrap();
        let names = Names {
            table: "t-github_events".into(),
            id: "f.json.gz:3".into(),
            keys: Some(keys.clone()),
            window: None,
        };
        let text = text(&names, &line);
        assert_eq!(read(&raw(text.clone())).unwrap().unwrap(), first);
        // Re-serialised with its keys sorted (`Line` first): still read.
        let sorted = serde_json::from_str::<serde_json::Value>(&text)
            .unwrap()
            .to_string();
        assert!(sorted.starts_with(r#"{"Line":"#), "{sorted}");
        let again = read(&raw(sorted)).unwrap().unwrap();
        // The same change, its attributes in the sorted order.
        assert_eq!(again.new_image.sorted(), first.new_image.sorted());
        let image = |mut c: StreamChange<'static>| {
            c.new_image = Default::default();
            c
        };
        assert_eq!(image(again), image(first.clone().into_owned()));
        // A Scan item, as the export line of it: the same change.
        let scan = snapshot_text("t-github_events", &keys, ITEM, "f.json.gz:3");
        assert_eq!(read(&raw(scan)).unwrap().unwrap(), first);
    }

    #[test]
    fn an_incremental_line_reads_back_with_its_version() {
        let window = Window {
            table: "t-github_events",
            start_secs: 1_709_996_400,
            end_secs: 1_710_003_600,
            ttl_attribute: Some("ttl"),
        };
        let line = format!(
            r#"{{"Metadata":{{"WriteTimestampMicros":{{"N":"1710000000000000"}}}},"Keys":{{"id":{{"S":"a"}}}},"NewImage":{ITEM}}}"#
        );
        let first = incremental_change(&window, &line, "f:2").unwrap();
        let names = Names {
            table: "t-github_events".into(),
            id: "f:2".into(),
            keys: None,
            window: Some(WindowText::of(&window)),
        };
        let again = read(&raw(text(&names, &line))).unwrap().unwrap();
        assert_eq!(again, first);
        assert!(matches!(
            again.origin,
            crate::record::change::Origin::Timed(_)
        ));
    }

    #[test]
    fn other_texts_are_not_read_and_bad_ones_are_named() {
        // A stream record whose image holds the mark is not a backfill text.
        let stream = raw(
            r#"{"eventID":"1","dynamodb":{"NewImage":{"StreamfoldBackfill":{"S":"x"}}}}"#.into(),
        );
        assert!(read(&stream).is_none());
        let both = raw(
            r#"{"StreamfoldBackfill":{"table":"t-github_events","id":"x:1"},"Line":{}}"#.into(),
        );
        let err = read(&both).unwrap().unwrap_err();
        assert!(err.reason.starts_with("x:1: "), "{}", err.reason);
        assert_eq!(err.meta.event_id.as_deref(), Some("x:1"));
    }
}
