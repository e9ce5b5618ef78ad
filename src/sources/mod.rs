//! Sources of batches: Lambda stream events, replay files, and backfill
//! snapshots (table Scan, S3 export). Each source only produces raw stream
//! records; all of them hand batches to `pipeline::run_batch`.

pub mod attribute_values;
pub mod backfill;
pub mod backfill_task;
pub mod export;
pub mod lambda;
pub mod replay;
pub mod scan;
pub mod scheduled;
pub mod tail;
