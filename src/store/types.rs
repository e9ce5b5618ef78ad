//! The values the store takes and gives back: connection options, a
//! rejected record to quarantine, what an applied batch did, listings and
//! totals.

use crate::domain::{Identity, SourceKind};
use std::collections::HashSet;
use std::time::Duration;

/// Connection settings beyond the URL.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Pool size: 1–2 for a Lambda, more for a backfill.
    pub max_connections: u32,
    /// Retries of a batch transaction on transient failures.
    pub max_retries: u32,
    /// Allow a plaintext connection to a non-loopback host when the URL
    /// explicitly disables TLS.
    pub allow_plaintext: bool,
    /// How long to keep trying to connect / acquire a connection.
    pub connect_timeout: Duration,
    /// How long the compaction horizon read from the database is trusted
    /// before it is read again (`store::compaction`).
    pub horizon_refresh: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 4,
            max_retries: 6,
            allow_plaintext: false,
            connect_timeout: Duration::from_secs(10),
            horizon_refresh: HORIZON_REFRESH,
        }
    }
}

/// The default `StoreOptions::horizon_refresh`. A compaction waits
/// `COMPACTION_ANNOUNCE` after announcing a larger horizon: this refresh,
/// plus the longest a batch transaction can wait for a lock (InnoDB's
/// default `innodb_lock_wait_timeout` is 50 s), plus a margin.
pub const HORIZON_REFRESH: Duration = Duration::from_secs(30);

/// See `HORIZON_REFRESH`.
pub const COMPACTION_ANNOUNCE: Duration = Duration::from_secs(120);

/// A record quarantined by the pipeline.
#[derive(Clone, Debug)]
pub struct RejectedRecord {
    pub source: Option<SourceKind>,
    pub table: Option<String>,
    pub event_id: Option<String>,
    pub sequence_number: Option<String>,
    pub reason: String,
    pub raw: String,
}

impl RejectedRecord {
    /// The quarantine row of a record: its naming metadata cut to fit the
    /// columns (a row that cannot be written would block the batch), the
    /// raw record kept whole.
    pub fn new(
        meta: &crate::record::lambda_event::RecordMeta,
        reason: &str,
        raw: &serde_json::value::RawValue,
    ) -> RejectedRecord {
        use crate::bounds::{REASON, REJECT_SHORT, REJECT_TEXT, clip};
        RejectedRecord {
            source: meta.source,
            table: meta.table.as_deref().map(|t| clip(t, REJECT_TEXT)),
            event_id: meta.event_id.as_deref().map(|e| clip(e, REJECT_TEXT)),
            sequence_number: meta
                .sequence_number
                .as_deref()
                .map(|s| clip(s, REJECT_SHORT)),
            reason: clip(reason, REASON),
            raw: raw.get().to_string(),
        }
    }

    /// The quarantine row of something a source could not make into a
    /// record (a backfill's bad export line): named by `event_id` (e.g.
    /// `file:line`), its text kept whole but for NUL characters, which
    /// PostgreSQL text cannot hold (U+FFFD instead).
    pub fn unreadable(
        source: Option<crate::domain::SourceKind>,
        table: &str,
        event_id: &str,
        reason: &str,
        raw: &str,
    ) -> RejectedRecord {
        use crate::bounds::{REASON, REJECT_TEXT, clip};
        RejectedRecord {
            source,
            table: Some(clip(table, REJECT_TEXT)),
            event_id: Some(clip(event_id, REJECT_TEXT)),
            sequence_number: None,
            reason: clip(reason, REASON),
            raw: raw.replace('\0', "\u{FFFD}"),
        }
    }

    /// Key that makes quarantining the same record twice a no-op.
    pub fn record_key(&self) -> [u8; 16] {
        xxhash_rust::xxh3::xxh3_128(self.raw.as_bytes()).to_be_bytes()
    }
}

/// What the store reports back for one applied batch.
#[derive(Debug, Default)]
pub struct ApplyResult {
    /// Staged identities whose row did not replace the ledger's (duplicates,
    /// stale versions): they changed nothing.
    pub unchanged: HashSet<Identity>,
    /// Round trips to the database for the batch's final attempt (BEGIN and
    /// COMMIT included; a MySQL multi-statement query counts once).
    pub statements: usize,
    /// Transaction attempts that failed transiently before the final one.
    pub retries: u32,
    /// LLM reports the batch changed (now pending projection).
    pub reports_changed: usize,
    /// Staged identities not applied because their event is older than the
    /// compaction horizon and they have no ledger row: they may have been
    /// counted before their row was compacted (`store::compaction`).
    pub before_horizon: HashSet<Identity>,
}

/// One quarantined record as listed by `streamfold rejects`.
#[derive(Clone, Debug)]
pub struct RejectListing {
    pub id: i64,
    pub source: Option<String>,
    pub event_id: Option<String>,
    pub sequence_number: Option<String>,
    pub reason: String,
    pub rejected_at: String,
}

/// Totals for summaries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub events_counted: i64,
    pub users: i64,
    pub ledger_rows: i64,
    pub unattributed: i64,
    pub llm_requests: i64,
    pub rejected: i64,
}
