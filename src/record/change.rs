//! The change record: one typed form of a source record, whichever reader
//! produced it (a Lambda DynamoDB event, a Kinesis record, a Scan page, an
//! export line, an incremental-export line, a record from `tail`). Readers
//! build a [`StreamChange`] directly from what they received; `normalize`
//! reads only this type. Names, strings and numbers borrow from the
//! reader's input where they can, and the version a reader formed travels
//! as a value ([`Origin::Timed`]), never as text.

use crate::domain::{SourceKind, Version};
use crate::record::item::Item;
use chrono::{DateTime, Utc};
use std::borrow::Cow;
use std::fmt;

/// What happened to the item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventName {
    Insert,
    Modify,
    Remove,
    /// Any other `eventName`: `normalize` rejects it.
    Other,
}

impl EventName {
    pub fn parse(name: &str) -> EventName {
        match name {
            "INSERT" => EventName::Insert,
            "MODIFY" => EventName::Modify,
            "REMOVE" => EventName::Remove,
            _ => EventName::Other,
        }
    }
}

/// Where the change's version comes from (the version rule,
/// ARCHITECTURE.md "Versions").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A DynamoDB Streams record (Lambda, `tail`): its
    /// `ApproximateCreationDateTime` and `SequenceNumber`.
    Stream,
    /// A backfilled item (Scan, full export): the snapshot version, the
    /// lowest there is.
    Snapshot,
    /// A version the reader formed (a Kinesis record, an incremental-export
    /// line).
    Timed(Version),
}

/// What images a stream carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamViewType {
    NewImage,
    OldImage,
    NewAndOldImages,
    KeysOnly,
}

impl StreamViewType {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamViewType::NewImage => "NEW_IMAGE",
            StreamViewType::OldImage => "OLD_IMAGE",
            StreamViewType::NewAndOldImages => "NEW_AND_OLD_IMAGES",
            StreamViewType::KeysOnly => "KEYS_ONLY",
        }
    }

    /// From the Streams API's or an event's text; `None` for any other.
    pub fn parse(name: &str) -> Option<StreamViewType> {
        match name {
            "NEW_IMAGE" => Some(StreamViewType::NewImage),
            "OLD_IMAGE" => Some(StreamViewType::OldImage),
            "NEW_AND_OLD_IMAGES" => Some(StreamViewType::NewAndOldImages),
            "KEYS_ONLY" => Some(StreamViewType::KeysOnly),
            _ => None,
        }
    }
}

impl fmt::Display for StreamViewType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change to one item of one source table, as read.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamChange<'a> {
    /// The table it came from (routes it to its normaliser).
    pub table: Option<Cow<'a, str>>,
    /// The source that table is, when it is one.
    pub source: Option<SourceKind>,
    /// What names the record: `eventID`, an export's `file:line`, a Scan's
    /// `segment/page/item`.
    pub event_id: Option<Cow<'a, str>>,
    /// The stream's `SequenceNumber` (or a Kinesis `sequenceNumber`, which
    /// only names the record).
    pub sequence_number: Option<Cow<'a, str>>,
    /// `ApproximateCreationDateTime`.
    pub approx_created: Option<DateTime<Utc>>,
    pub event_name: EventName,
    pub origin: Origin,
    /// A REMOVE performed by DynamoDB's TTL process.
    pub ttl_expiry: bool,
    pub view_type: Option<StreamViewType>,
    pub keys: Item<'a>,
    pub new_image: Item<'a>,
    pub old_image: Item<'a>,
}

impl<'a> StreamChange<'a> {
    /// A change of `table` with nothing else set yet.
    pub fn new(table: Option<Cow<'a, str>>, event_name: EventName, origin: Origin) -> Self {
        let source = table.as_deref().and_then(SourceKind::from_table_name);
        StreamChange {
            table,
            source,
            event_id: None,
            sequence_number: None,
            approx_created: None,
            event_name,
            origin,
            ttl_expiry: false,
            view_type: None,
            keys: Item::default(),
            new_image: Item::default(),
            old_image: Item::default(),
        }
    }

    /// The naming metadata, owned (for quarantine rows and reports).
    pub fn meta(&self) -> RecordMeta {
        RecordMeta {
            table: self.table.as_deref().map(str::to_string),
            source: self.source,
            event_id: self.event_id.as_deref().map(str::to_string),
            sequence_number: self.sequence_number.as_deref().map(str::to_string),
            approx_created: self.approx_created,
        }
    }

    /// The same change, owning all it holds.
    pub fn into_owned(self) -> StreamChange<'static> {
        StreamChange {
            table: self.table.map(|c| Cow::Owned(c.into_owned())),
            source: self.source,
            event_id: self.event_id.map(|c| Cow::Owned(c.into_owned())),
            sequence_number: self.sequence_number.map(|c| Cow::Owned(c.into_owned())),
            approx_created: self.approx_created,
            event_name: self.event_name,
            origin: self.origin,
            ttl_expiry: self.ttl_expiry,
            view_type: self.view_type,
            keys: self.keys.into_owned(),
            new_image: self.new_image.into_owned(),
            old_image: self.old_image.into_owned(),
        }
    }
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

/// A record a reader could not make into a change: what names it, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Unreadable {
    pub meta: RecordMeta,
    pub reason: String,
}

/// One record as a reader read it: the change, or why there is none.
pub type Read<'a> = Result<StreamChange<'a>, Unreadable>;

/// The naming metadata of a read record.
pub fn meta_of(read: &Read<'_>) -> RecordMeta {
    match read {
        Ok(c) => c.meta(),
        Err(u) => u.meta.clone(),
    }
}

/// The source of a read record, when known.
pub fn source_of(read: &Read<'_>) -> Option<SourceKind> {
    match read {
        Ok(c) => c.source,
        Err(u) => u.meta.source,
    }
}

/// `ApproximateCreationDateTime` of a read record, when known.
pub fn approx_created_of(read: &Read<'_>) -> Option<DateTime<Utc>> {
    match read {
        Ok(c) => c.approx_created,
        Err(u) => u.meta.approx_created,
    }
}
