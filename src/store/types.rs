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
    /// Allow a TLS mode that can end in plaintext (`disable`, `allow`,
    /// `prefer`; MySQL `DISABLED`, `PREFERRED`) to a non-loopback host.
    pub allow_plaintext: bool,
    /// Allow an encrypted mode that does not verify the server in full
    /// (`require`, `verify-ca`; MySQL `REQUIRED`, `VERIFY_CA`) to a
    /// non-loopback host.
    pub insecure_tls: bool,
    /// A PEM bundle of CAs to trust besides the built-in public roots (the
    /// RDS CA bundle, say), unless the URL names its own (`sslrootcert`,
    /// `ssl-ca`).
    pub ca_file: Option<std::path::PathBuf>,
    /// How long to keep trying to connect / acquire a connection.
    pub connect_timeout: Duration,
    /// How long the compaction horizon read from the database is trusted
    /// before it is read again (`store::compaction`).
    pub horizon_refresh: Duration,
    /// Whether an SQLite file that is not there is created (and migrated).
    /// `false` for the commands that only read: a mistyped path is then
    /// `StoreError::NoSuchDatabase` instead of an empty new database.
    pub create_if_missing: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 4,
            max_retries: 6,
            allow_plaintext: false,
            insecure_tls: false,
            ca_file: None,
            connect_timeout: Duration::from_secs(10),
            horizon_refresh: HORIZON_REFRESH,
            create_if_missing: true,
        }
    }
}

impl StoreOptions {
    /// What the operator allowed beyond verified TLS.
    pub fn tls_allowances(&self) -> super::connect::TlsAllowances {
        super::connect::TlsAllowances {
            plaintext: self.allow_plaintext,
            unverified: self.insecure_tls,
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

/// The longest a batch transaction is taken to wait for a lock: InnoDB's
/// default `innodb_lock_wait_timeout`.
pub const LOCK_WAIT: Duration = Duration::from_secs(50);

/// The shortest announcement the command line accepts: a consumer may act
/// on a horizon read up to `HORIZON_REFRESH` ago, in a transaction that
/// waited up to `LOCK_WAIT` for a lock. Any shorter, and a batch that read
/// the old horizon can re-count an item whose ledger row the first chunk
/// just deleted.
pub const MIN_COMPACTION_ANNOUNCE: Duration =
    Duration::from_secs(HORIZON_REFRESH.as_secs() + LOCK_WAIT.as_secs());

/// A record quarantined by the pipeline.
#[derive(Clone, Debug)]
pub struct RejectedRecord {
    pub source: Option<SourceKind>,
    pub table: Option<String>,
    pub event_id: Option<String>,
    pub sequence_number: Option<String>,
    pub reason: String,
    /// The record as received, cut to `bounds::REJECT_RAW` bytes.
    pub raw: String,
    /// xxh3-128 of the whole record as received: quarantining it twice is
    /// a no-op even when `raw` was cut.
    pub key: [u8; 16],
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
            raw: String::new(),
            key: [0; 16],
        }
        .with_raw(raw.get())
    }

    /// Keep `raw` (the record as received), cut to `bounds::REJECT_RAW`
    /// bytes; a cut one says so in the reason, with its length and hash (a
    /// cut record is not JSON, so `rejects retry` leaves it).
    pub fn with_raw(mut self, raw: &str) -> RejectedRecord {
        use crate::bounds::{REASON, REJECT_RAW, clip};
        let hash = xxhash_rust::xxh3::xxh3_128(raw.as_bytes());
        self.key = hash.to_be_bytes();
        if raw.len() <= REJECT_RAW {
            self.raw = raw.to_string();
            return self;
        }
        let mut end = REJECT_RAW;
        while !raw.is_char_boundary(end) {
            end -= 1;
        }
        self.raw = raw[..end].to_string();
        let note = format!(
            " [record of {} bytes: its first {end} kept; xxh3-128 {hash:032x}]",
            raw.len()
        );
        let room = REASON.saturating_sub(note.chars().count());
        self.reason = format!("{}{note}", clip(&self.reason, room));
        self
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
            raw: String::new(),
            key: [0; 16],
        }
        .with_raw(&raw.replace('\0', "\u{FFFD}"))
    }

    /// Key that makes quarantining the same record twice a no-op.
    pub fn record_key(&self) -> [u8; 16] {
        self.key
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
