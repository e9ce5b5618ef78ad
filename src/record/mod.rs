//! The stream record as read, the lowest layer every other module imports
//! downwards: the one change record every reader produces (`change`), a
//! Lambda DynamoDB stream event split into raw records and parsed without
//! copying (`lambda_event`, `item`), typed access to attributes (`attrs`),
//! event-time formats (`event_time`), and the other readers' changes: a
//! backfilled item, from a Scan page or a full-export line (`snapshot`), a
//! Kinesis record of a DynamoDB change (`kinesis`), an incremental-export
//! line (`incremental`), and the quarantine text of a backfilled record
//! read back (`backfill_text`). No I/O.

pub mod attrs;
pub mod backfill_text;
pub mod change;
pub mod event_time;
pub mod incremental;
pub mod item;
pub mod kinesis;
pub mod lambda_event;
pub mod snapshot;
