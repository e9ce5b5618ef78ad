//! What a batch did: outcome counts per source, the records it rejected,
//! and what the store and the projection reported.

use crate::domain::SourceKind;
use crate::record::lambda_event::RecordMeta;
use crate::report::publish::PublishSummary;
use chrono::Utc;
use std::collections::BTreeMap;

/// Per-source outcome counts. Every record read ends in exactly one of
/// applied, unchanged, skipped, rejected, unattributed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub read: u64,
    pub applied: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub rejected: u64,
    pub unattributed: u64,
    /// Of the applied/unattributed: event time taken from ApproximateCreationDateTime.
    pub time_fallback: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.read += o.read;
        self.applied += o.applied;
        self.unchanged += o.unchanged;
        self.skipped += o.skipped;
        self.rejected += o.rejected;
        self.unattributed += o.unattributed;
        self.time_fallback += o.time_fallback;
    }
}

/// A quarantined record, as reported to the caller (no raw content).
#[derive(Clone, Debug)]
pub struct Rejection {
    pub index: usize,
    pub meta: RecordMeta,
    pub reason: String,
}

/// What one batch did.
#[derive(Clone, Debug, Default)]
pub struct BatchReport {
    /// Keyed by source table suffix, or `unknown`.
    pub by_source: BTreeMap<String, Counts>,
    pub rejections: Vec<Rejection>,
    pub statements: usize,
    /// Wall time spent in the store (the SQL transaction, retries included).
    pub db_time: std::time::Duration,
    /// Transaction attempts that failed transiently and were retried.
    pub retries: u64,
    /// Times a part of the batch that the store refused was split in two to
    /// isolate the records responsible (0 when the batch applied whole).
    pub splits: u64,
    /// LLM reports changed in SQL.
    pub reports_changed: u64,
    /// Records not applied because their event is older than the ledger's
    /// compaction horizon and their identity has no ledger row (counted as
    /// skipped; `store::compaction`).
    pub before_horizon: u64,
    /// LLM report projections to DynamoDB after the commit.
    pub published: PublishSummary,
    /// Kinesis records stamped only to the millisecond
    /// (`KinesisMillisecondRecords`).
    pub kinesis_millisecond: u64,
    /// Earliest `ApproximateCreationDateTime` among the records (for the
    /// iterator-lag metric).
    pub oldest_record: Option<chrono::DateTime<Utc>>,
}

impl BatchReport {
    pub fn total(&self) -> Counts {
        let mut t = Counts::default();
        for c in self.by_source.values() {
            t.add(c);
        }
        t
    }

    pub fn merge(&mut self, other: BatchReport) {
        for (k, v) in other.by_source {
            self.by_source.entry(k).or_default().add(&v);
        }
        self.rejections.extend(other.rejections);
        self.statements += other.statements;
        self.db_time += other.db_time;
        self.reports_changed += other.reports_changed;
        self.retries += other.retries;
        self.splits += other.splits;
        self.before_horizon += other.before_horizon;
        self.kinesis_millisecond += other.kinesis_millisecond;
        self.published.add(&other.published);
        self.oldest_record = match (self.oldest_record, other.oldest_record) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    pub(crate) fn counts(&mut self, source: Option<SourceKind>) -> &mut Counts {
        let key = source.map_or("unknown", SourceKind::table_suffix);
        self.by_source.entry(key.to_string()).or_default()
    }
}
