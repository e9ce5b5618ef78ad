//! Sources of batches: Lambda stream events and replay files. Each source
//! only produces raw records; all of them hand batches to
//! `pipeline::run_batch`.

pub mod lambda;
pub mod lambda_event;
pub mod replay;
