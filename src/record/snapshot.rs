//! Backfill snapshots as change records. An item read from a table Scan or
//! a full S3 export becomes an `INSERT` [`StreamChange`] with the snapshot
//! origin ([`Origin::Snapshot`]); `normalize` gives it the snapshot
//! version, the lowest there is (DESIGN §4), so a snapshot adds what the
//! stream has not delivered and changes nothing the stream already did.
//! Pure.
//!
//! The change's `keys` must be exactly what the table's stream would carry,
//! or the snapshot would count under another identity: they are the item's
//! key attributes, named by the table's key schema.

use crate::record::change::{EventName, Origin, StreamChange, StreamViewType};
use crate::record::item::Item;
use serde::Deserialize;
use std::borrow::Cow;

/// `eventSource` of the Lambda-JSON snapshot records earlier releases
/// wrote (quarantine rows may still hold them; `record::lambda_event`
/// reads them as snapshots). Nothing writes it any more.
pub const SNAPSHOT_EVENT_SOURCE: &str = "streamfold:backfill";

/// The change of one backfilled `item` of `table`; `id` names it in errors
/// and quarantine rows (e.g. `file:line`, `scan … page … item …`).
pub fn snapshot_change<'a, K: AsRef<str>>(
    table: &'a str,
    key_names: &'a [K],
    item: Item<'a>,
    id: &'a str,
) -> Result<StreamChange<'a>, String> {
    let mut keys = Item::with_capacity(key_names.len());
    for name in key_names {
        let name = name.as_ref();
        let value = item
            .get(name)
            .ok_or_else(|| format!("{id}: the item has no key attribute `{name}`"))?;
        keys.push(Cow::Borrowed(name), value.clone());
    }
    let mut change = StreamChange::new(
        Some(Cow::Borrowed(table)),
        EventName::Insert,
        Origin::Snapshot,
    );
    change.event_id = Some(Cow::Borrowed(id));
    change.view_type = Some(StreamViewType::NewImage);
    change.keys = keys;
    change.new_image = item;
    Ok(change)
}

#[derive(Deserialize)]
struct DataLine<'a> {
    #[serde(rename = "Item", borrow)]
    item: &'a serde_json::value::RawValue,
}

/// The change of one line of a full export (`{"Item": {…}}`), named `id`
/// (`file:line`).
pub fn export_line_change<'a, K: AsRef<str>>(
    table: &'a str,
    key_names: &'a [K],
    line: &'a str,
    id: &'a str,
) -> Result<StreamChange<'a>, String> {
    let parsed: DataLine<'a> = serde_json::from_str(line)
        .map_err(|e| format!("{id}: not an {{\"Item\": …}} line: {e}"))?;
    let item: Item<'a> = serde_json::from_str(parsed.item.get()).map_err(|e| {
        format!(
            "{id}: the item is not a DynamoDB JSON map: {}",
            crate::record::lambda_event::redact_quoted(&e.to_string())
        )
    })?;
    snapshot_change(table, key_names, item, id)
}
