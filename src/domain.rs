//! Core vocabulary shared by every stage: sources, integrations, item identities,
//! versions, buckets and the contributions an item makes to the aggregates.
//!
//! Everything here is plain data with no I/O.

use crate::normalize::{TABLES, table::SourceTable};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::fmt;

/// One of the source tables: a name for a table of the registry,
/// `normalize::TABLES`, where everything about it is declared
/// (`normalize::table::SourceTable`). The enum stays so that code may match
/// on a table; its facts are the registry's. A new table adds its variant
/// here and its entry, at the same position, to the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    GithubEvents,
    DropboxFileChanges,
    Conversations,
    LlmDataCollection,
}

impl SourceKind {
    /// Everything declared about this table.
    pub fn table(self) -> &'static SourceTable {
        // The registry lists the tables in variant order (a compile-time
        // check in `normalize`), so a variant's discriminant is its index.
        TABLES[self as usize]
    }

    /// Every registered source table, in registry order.
    pub fn all() -> impl Iterator<Item = SourceKind> {
        TABLES.iter().map(|t| t.kind)
    }

    /// The table-name suffix that identifies this source.
    pub fn table_suffix(self) -> &'static str {
        self.table().suffix
    }

    /// Recognise a table name such as `icarus-dev-github_events` or
    /// `acsd2p-prod-Conversations`: the name is the suffix itself or ends in
    /// `-<suffix>`.
    pub fn from_table_name(table: &str) -> Option<SourceKind> {
        TABLES.iter().find(|t| t.names(table)).map(|t| t.kind)
    }

    /// Stable small code used inside identity hashes and SQL rows.
    pub fn code(self) -> u8 {
        self.table().code
    }

    /// The heatmap integration this source's activity rows are counted
    /// under; `None` for a source of LLM requests.
    pub fn integration(self) -> Option<Integration> {
        self.table().integration
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.table_suffix())
    }
}

/// Integration code of the activity heatmap (`user_event_counts.integration`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Integration {
    Github,
    Dropbox,
    Email,
}

impl Integration {
    pub fn code(self) -> &'static str {
        match self {
            Integration::Github => "G",
            Integration::Dropbox => "D",
            Integration::Email => "E",
        }
    }

    pub fn from_code(code: &str) -> Option<Integration> {
        match code {
            "G" => Some(Integration::Github),
            "D" => Some(Integration::Dropbox),
            "E" => Some(Integration::Email),
            _ => None,
        }
    }
}

/// Identity of one source item (or, for LLM, one request): a 128-bit hash of
/// the source and the canonically serialised key attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity(pub u128);

impl Identity {
    pub fn from_canonical(bytes: &[u8]) -> Identity {
        Identity(xxhash_rust::xxh3::xxh3_128(bytes))
    }

    /// Big-endian bytes, so that SQL byte order equals numeric order.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Identity> {
        let arr: [u8; 16] = bytes.try_into().ok()?;
        Some(Identity(u128::from_be_bytes(arr)))
    }
}

/// The version that set a ledger row. Stored as bytes whose lexicographic
/// order is the numeric order of versions:
///
/// * `[]`            — placeholder (no contribution yet), lowest of all;
/// * `[0x00]`        — a backfill snapshot;
/// * `[0x01, b0..b16]` — a stream `SequenceNumber` (up to 40 decimal digits)
///   as a 17-byte big-endian integer: the untimed form, written before
///   versions carried time (still read; every timed version beats it);
/// * `[0x02, t0..t7, kind, b0..b16]` — a **timed** version: the change's
///   time in microseconds since the epoch (big-endian `u64`), a kind byte
///   and a 17-byte tiebreak. What each source puts there, and why it sorts
///   every change of an item in the order it was written, is the version
///   rule ([`TimedKind`], ARCHITECTURE.md "Versions"):
///   - a DynamoDB Streams record: its `ApproximateCreationDateTime` in
///     whole seconds (the stream rounds it down to the second), kind
///     [`TimedKind::Record`], its `SequenceNumber`;
///   - a Kinesis record: its `ApproximateCreationDateTime` in micro- or
///     milliseconds, kind `Record`, a hash of the record's content (equal
///     for duplicates, which are then no-ops);
///   - an incremental-export line: its window's end in whole seconds, kind
///     [`TimedKind::WindowEnd`], the line's `WriteTimestampMicros`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(Vec<u8>);

/// Width of the big-endian integer part of a stream version (10^40 < 2^136).
pub const SEQ_BYTES: usize = 17;

/// Decimal string → big-endian base-256, by repeated multiply-add (39 and
/// 40 digits, which do not fit a `u128`).
fn sequence_bytes_long(seq: &str) -> [u8; SEQ_BYTES] {
    let mut be = [0u8; SEQ_BYTES];
    for digit in seq.bytes().map(|b| b - b'0') {
        let mut carry = u16::from(digit);
        for byte in be.iter_mut().rev() {
            let v = u16::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
    }
    be
}

/// The kind byte of a timed version: at one instant, the state an
/// incremental export holds at its window's end sorts below any record
/// written at that instant or later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TimedKind {
    WindowEnd = 0x00,
    Record = 0x01,
}

/// Where a change sorts among changes of its item stamped with the same
/// instant, from what it carries: one with no old image (an INSERT) came
/// first, one with no new image (a REMOVE) last. The order of two changes
/// of one kind in one instant (two MODIFYs, a REMOVE then a re-INSERT) is
/// not in the records: the hash after this byte decides, the same way in
/// every delivery order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum ChangeOrder {
    /// No old image: the item did not exist before (INSERT).
    Created = 0,
    /// Both images (MODIFY).
    Changed = 1,
    /// No new image: the item does not exist after (REMOVE).
    Removed = 2,
}

impl ChangeOrder {
    /// From a change record's `eventName`; `None` for any other name.
    pub fn of_event(event_name: &str) -> Option<ChangeOrder> {
        match event_name {
            "INSERT" => Some(ChangeOrder::Created),
            "MODIFY" => Some(ChangeOrder::Changed),
            "REMOVE" => Some(ChangeOrder::Removed),
            _ => None,
        }
    }
}

/// Tag of timed versions.
const TIMED: u8 = 0x02;
/// Length of a timed version: tag, time, kind, tiebreak.
pub const TIMED_LEN: usize = 1 + 8 + 1 + SEQ_BYTES;

/// A `SequenceNumber` (1 to 40 decimal digits) as a 17-byte big-endian
/// integer.
fn sequence_bytes(seq: &str) -> Result<[u8; SEQ_BYTES], String> {
    if seq.is_empty() || seq.len() > 40 || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "SequenceNumber {seq:?} is not a decimal number of 1 to 40 digits"
        ));
    }
    let be = if seq.len() <= 38 {
        // Fits a u128 (< 3.4 × 10^38): the common case, 21 digits.
        let n: u128 = seq
            .parse()
            .map_err(|_| format!("SequenceNumber {seq:?} is not a decimal number"))?;
        let wide = n.to_be_bytes();
        let mut be = [0u8; SEQ_BYTES];
        be[SEQ_BYTES - wide.len()..].copy_from_slice(&wide);
        be
    } else {
        sequence_bytes_long(seq)
    };
    Ok(be)
}

impl Version {
    pub fn snapshot() -> Version {
        Version(vec![0x00])
    }

    /// Parse a stream `SequenceNumber`: 1 to 40 decimal digits (the
    /// untimed form; see [`Version::stream_record`]).
    pub fn from_sequence_number(seq: &str) -> Result<Version, String> {
        let be = sequence_bytes(seq)?;
        let mut bytes = Vec::with_capacity(1 + SEQ_BYTES);
        bytes.push(0x01);
        bytes.extend_from_slice(&be);
        Ok(Version(bytes))
    }

    /// A timed version (see the type's documentation).
    pub fn timed(micros: u64, kind: TimedKind, tiebreak: [u8; SEQ_BYTES]) -> Version {
        let mut bytes = Vec::with_capacity(TIMED_LEN);
        bytes.push(TIMED);
        bytes.extend_from_slice(&micros.to_be_bytes());
        bytes.push(kind as u8);
        bytes.extend_from_slice(&tiebreak);
        Version(bytes)
    }

    /// A DynamoDB Streams record: `ApproximateCreationDateTime` in whole
    /// epoch seconds, then the `SequenceNumber`. A record without the time
    /// has no version (it is quarantined: `normalize::NO_APPROXIMATE_TIME`).
    pub fn stream_record(seq: &str, approx_secs: i64) -> Result<Version, String> {
        let tiebreak = sequence_bytes(seq)?;
        let micros = (approx_secs.max(0) as u64).saturating_mul(1_000_000);
        Ok(Version::timed(micros, TimedKind::Record, tiebreak))
    }

    /// A Kinesis Data Streams record of a DynamoDB change: its
    /// `ApproximateCreationDateTime` in microseconds, then the change's
    /// place within one instant (`within_instant`, [`ChangeOrder`]), then a
    /// 128-bit hash of the change record as DynamoDB wrote it (Kinesis has
    /// no `SequenceNumber` of the change), so a duplicate has the same
    /// version.
    pub fn kinesis_record(
        approx_micros: u64,
        within_instant: ChangeOrder,
        change_record: &[u8],
    ) -> Version {
        let mut tiebreak = [0u8; SEQ_BYTES];
        tiebreak[0] = within_instant as u8;
        tiebreak[1..].copy_from_slice(&xxhash_rust::xxh3::xxh3_128(change_record).to_be_bytes());
        Version::timed(approx_micros, TimedKind::Record, tiebreak)
    }

    /// An item's state in an incremental export of the window that ends at
    /// `window_end_secs` (whole epoch seconds, exclusive), last written at
    /// `write_micros`.
    pub fn incremental_export(window_end_secs: i64, write_micros: u64) -> Version {
        let mut tiebreak = [0u8; SEQ_BYTES];
        tiebreak[SEQ_BYTES - 8..].copy_from_slice(&write_micros.to_be_bytes());
        let micros = (window_end_secs.max(0) as u64).saturating_mul(1_000_000);
        Version::timed(micros, TimedKind::WindowEnd, tiebreak)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Version {
        Version(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Heatmap bucket in the user's own time zone: `dow` 0 = Sunday … 6 = Saturday.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bucket {
    pub dow: u8,
    pub hour: u8,
}

/// Who produced an activity event, before resolution.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Actor {
    /// A GitHub username or Dropbox ID that must be resolved to a Slack ID.
    External {
        integration: Integration,
        id: String,
    },
    /// An ACS account: it is its own subject.
    Acs(String),
}

/// An activity event (GitHub, Dropbox, e-mail) as read from one source item.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivityEvent {
    pub integration: Integration,
    pub actor: Actor,
    pub at: DateTime<Utc>,
}

/// One LLM request as read from an `LLMDataCollection` item.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmRequest {
    pub conversation_id: String,
    pub generated_at: DateTime<Utc>,
    pub model: String,
    pub function: String,
    pub prompt_tokens: i64,
    pub response_tokens: i64,
    pub total_tokens: i64,
    /// Exact decimal USD.
    pub cost_usd: Decimal,
    pub response_time_ms: i64,
    pub quality_score: Option<Decimal>,
}

impl LlmRequest {
    /// UTC calendar month `YYYY-MM`.
    pub fn report_period(&self) -> String {
        self.generated_at.format("%Y-%m").to_string()
    }
}

/// What one source item contributes, before identity resolution.
#[derive(Clone, Debug, PartialEq)]
pub enum Fact {
    Activity(ActivityEvent),
    Llm(LlmRequest),
}

/// Why a record was deliberately not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// REMOVE by DynamoDB TTL expiry: the event still happened.
    TtlExpiry,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::TtlExpiry => f.write_str("TTL expiry (REMOVE by dynamodb.amazonaws.com)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_sequence_paths_agree() {
        for seq in [
            "0",
            "7",
            "49999999999999999999",
            "400000000000000000000123",
            &"9".repeat(38),
            &"1".repeat(37),
        ] {
            let fast = Version::from_sequence_number(seq).unwrap();
            let mut slow = vec![0x01];
            slow.extend_from_slice(&sequence_bytes_long(seq));
            assert_eq!(fast.as_bytes(), &slow[..], "{seq}");
        }
        // Order is numeric across the two paths.
        let a = Version::from_sequence_number(&"9".repeat(38)).unwrap();
        let b = Version::from_sequence_number(&format!("1{}", "0".repeat(38))).unwrap();
        assert!(a < b);
    }

    #[test]
    fn table_suffix_recognition() {
        let cases = [
            ("icarus-dev-github_events", Some("github_events")),
            ("icarus-nicusdev-github_events", Some("github_events")),
            (
                "icarus-prod-dropbox_file_changes",
                Some("dropbox_file_changes"),
            ),
            ("acsd2p-prod-Conversations", Some("Conversations")),
            ("acsd2p-dev-LLMDataCollection", Some("LLMDataCollection")),
            ("github_events", Some("github_events")),
            ("acsd2p-prod-conversations", None),
            ("acsd2p-prod-XConversations", None),
            ("acsd2p-prod-Threads", None),
        ];
        for (table, want) in cases {
            assert_eq!(
                SourceKind::from_table_name(table).map(SourceKind::table_suffix),
                want,
                "{table}"
            );
        }
    }

    #[test]
    fn versions_order_numerically_not_textually() {
        let v = |s: &str| Version::from_sequence_number(s).unwrap();
        assert!(v("9") < v("10"));
        assert!(v("111000000000000000000001") < v("111000000000000000000010"));
        assert!(v("99999999999999999999") < v("100000000000000000000"));
        let max40 = "9".repeat(40);
        assert!(v("340282366920938463463374607431768211455") < v(&max40));
        assert!(Version::snapshot() < v("0"));
        assert!(Version::from_bytes(vec![]) < Version::snapshot());
        assert!(Version::from_sequence_number("").is_err());
        assert!(Version::from_sequence_number(&"1".repeat(41)).is_err());
        assert!(Version::from_sequence_number("12a").is_err());
        assert!(Version::from_sequence_number("-1").is_err());
    }

    /// The version rule (ARCHITECTURE.md "Versions"), on the instants at
    /// either edge of an incremental export's window [A, B).
    #[test]
    fn timed_versions_order_changes_around_an_export_window() {
        let (a, b) = (1_710_000_000i64, 1_710_003_600i64);
        let stream = |secs: i64, seq: &str| Version::stream_record(seq, secs).unwrap();
        let kinesis =
            |micros: u64| Version::kinesis_record(micros, ChangeOrder::Changed, b"change");
        let export = Version::incremental_export(b, (b as u64 - 1) * 1_000_000 + 999_999);
        let us = |secs: i64| secs as u64 * 1_000_000;
        // Before the window and inside it, of either stream: below.
        for below in [
            stream(a - 1, "999999999999999999999999"),
            stream(a, "5"),
            stream(b - 1, &"9".repeat(40)),
            kinesis(us(a) - 1),
            kinesis(us(b) - 1),
            Version::snapshot(),
            Version::from_sequence_number(&"9".repeat(40)).unwrap(),
        ] {
            assert!(below < export, "{below:?}");
        }
        // At the window's end or after it: above.
        for above in [
            stream(b, "0"),
            stream(b + 1, "1"),
            kinesis(us(b)),
            kinesis(us(b) + 1),
        ] {
            assert!(export < above, "{above:?}");
        }
        // Chained windows: the later one's state wins.
        assert!(export < Version::incremental_export(b + 900, us(b)));
        // Within one export, a later write of an item wins.
        assert!(Version::incremental_export(b, 1) < Version::incremental_export(b, 2));
        // Within one second of a DynamoDB stream, the SequenceNumber orders.
        assert!(stream(a, "9") < stream(a, "10"));
        // Duplicates of a Kinesis record are one version.
        assert_eq!(kinesis(7), kinesis(7));
        assert_ne!(
            kinesis(7),
            Version::kinesis_record(7, ChangeOrder::Changed, b"other")
        );
        // In one instant: created, then changed, then removed, whatever the
        // hashes.
        let at = |o: ChangeOrder, body: &[u8]| Version::kinesis_record(7, o, body);
        for (x, y) in [(b"a".as_slice(), b"b".as_slice()), (b"b", b"a")] {
            assert!(at(ChangeOrder::Created, x) < at(ChangeOrder::Removed, y));
            assert!(at(ChangeOrder::Created, x) < at(ChangeOrder::Changed, y));
            assert!(at(ChangeOrder::Changed, x) < at(ChangeOrder::Removed, y));
        }
        // A later instant beats any order within an earlier one.
        assert!(
            at(ChangeOrder::Removed, b"a") < Version::kinesis_record(8, ChangeOrder::Created, b"a")
        );
    }

    #[test]
    fn identity_bytes_roundtrip() {
        let id = Identity::from_canonical(b"abc");
        assert_eq!(Identity::from_bytes(&id.to_bytes()), Some(id));
    }
}
