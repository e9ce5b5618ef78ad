//! streamfold: DynamoDB Streams of the source tables (the registry,
//! `normalize::TABLES`), normalised into events and folded exactly once into
//! `user_event_counts` and LLM usage reports.
//!
//! Sources (`sources`) produce raw stream records; `pipeline::run_batch`
//! normalises them (`normalize`, pure), resolves identities (`resolve`),
//! stages ledger rows (`aggregate`) and applies them in one transaction
//! (`store`). See ARCHITECTURE.md.

pub mod aggregate;
pub mod audit;
pub mod aws_error;
pub mod aws_http;
pub mod bench;
pub mod bounds;
pub mod config;
pub mod domain;
pub mod heatmap;
pub mod logging;
pub mod metrics;
pub mod normalize;
pub mod pipeline;
pub mod printable;
pub mod record;
pub mod redact;
pub mod rejects;
pub mod report;
pub mod resolve;
pub mod sources;
pub mod store;
