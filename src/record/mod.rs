//! The stream record as read, the lowest layer every other module imports
//! downwards: a Lambda DynamoDB stream event split into raw records and
//! parsed without copying (`lambda_event`, `item`), typed access to
//! attributes (`attrs`), event-time formats (`event_time`), and a backfilled
//! item dressed as a stream record (`snapshot`), a Kinesis record of a
//! DynamoDB change turned into a stream record (`kinesis`), an
//! incremental-export line likewise (`incremental`). No I/O.

pub mod attrs;
pub mod change;
pub mod event_time;
pub mod incremental;
pub mod item;
pub mod kinesis;
pub mod lambda_event;
pub mod snapshot;
