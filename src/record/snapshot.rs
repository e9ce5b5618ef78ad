//! Backfill snapshots as stream records. An item read from a table Scan or
//! an S3 export is wrapped as an `INSERT` stream record whose `eventSource`
//! is `streamfold:backfill`; `normalize` gives such records the snapshot
//! version, the lowest there is (DESIGN §4), so a snapshot adds what the
//! stream has not delivered and changes nothing the stream already did.
//!
//! The record's `Keys` must be exactly what the table's stream would carry,
//! or the snapshot would count under another identity: they are the item's
//! key attributes, named by the table's key schema.

use crate::domain::SourceKind;
use crate::record::item::CowStr;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;

/// `eventSource` of snapshot records (AWS sets `aws:dynamodb` on stream
/// records, so a Lambda-delivered record can never be a snapshot).
pub const SNAPSHOT_EVENT_SOURCE: &str = "streamfold:backfill";

/// `eventSource` of a Kinesis Data Streams record turned into a stream
/// record (`record::kinesis`); it carries its timed version in
/// `dynamodb.StreamfoldVersion`.
pub const KINESIS_EVENT_SOURCE: &str = "streamfold:kinesis";

/// `eventSource` of an incremental-export line turned into a stream record
/// (`sources::export`); it carries its timed version as Kinesis records do.
pub const INCREMENTAL_EVENT_SOURCE: &str = "streamfold:incremental-export";

/// Key attributes of each source table (docs/DESIGN.md, appendix). A Scan
/// checks them against `DescribeTable`.
pub fn key_attributes(source: SourceKind) -> &'static [&'static str] {
    match source {
        SourceKind::GithubEvents => &["id"],
        SourceKind::DropboxFileChanges => &["account_id"],
        SourceKind::Conversations => &["conversation_id", "response_id"],
        SourceKind::LlmDataCollection => &["conversation_id"],
    }
}

/// The stream record (JSON text) of one backfilled item. `item` is the
/// item in DynamoDB JSON (`{"attr": {"S": "…"}, …}`); `id` names it in
/// errors and quarantine rows (e.g. `export file:line`, `scan segment/page`).
pub fn snapshot_record(
    table: &str,
    key_names: &[String],
    item: &RawValue,
    id: &str,
) -> Result<Box<RawValue>, String> {
    // Names borrow from the item unless JSON escapes them (a name with a
    // `"` in it is a valid DynamoDB attribute name, as in stream records).
    let attrs: HashMap<CowStr<'_>, &RawValue> = serde_json::from_str(item.get())
        .map_err(|e| format!("{id}: the item is not a DynamoDB JSON map: {e}"))?;
    let mut keys = String::from("{");
    for (i, name) in key_names.iter().enumerate() {
        let value = attrs
            .get(&CowStr(Cow::Borrowed(name.as_str())))
            .ok_or_else(|| format!("{id}: the item has no key attribute `{name}`"))?;
        if i > 0 {
            keys.push(',');
        }
        keys.push_str(&serde_json::to_string(name).map_err(|e| e.to_string())?);
        keys.push(':');
        keys.push_str(value.get());
    }
    keys.push('}');
    let text = format!(
        r#"{{"eventID":{id},"eventName":"INSERT","eventVersion":"1.1","eventSource":"{SNAPSHOT_EVENT_SOURCE}","awsRegion":"backfill","eventSourceARN":{arn},"dynamodb":{{"Keys":{keys},"NewImage":{item},"SizeBytes":{size},"StreamViewType":"NEW_IMAGE"}}}}"#,
        id = serde_json::to_string(id).map_err(|e| e.to_string())?,
        arn = serde_json::to_string(&format!(
            "arn:aws:dynamodb:backfill:000000000000:table/{table}/stream/backfill"
        ))
        .map_err(|e| e.to_string())?,
        item = item.get(),
        size = item.get().len(),
    );
    RawValue::from_string(text).map_err(|e| format!("{id}: {e}"))
}
