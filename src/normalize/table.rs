//! What one source table is, declared once: `SourceTable`, the value each
//! `normalize/<table>.rs` exports and `normalize::TABLES` lists. Every fact
//! about a table that the rest of the crate needs (its name, its code in
//! identities, its key and identity attributes, what its items count as,
//! how an item becomes a fact) is read from that value.

use super::TimeContext;
use crate::domain::{Fact, Integration, SourceKind};
use crate::record::item::Item;

/// How an item of a table becomes a fact: the fact and whether its event
/// time fell back to the record's `ApproximateCreationDateTime`; an error
/// is the rejection's reason.
pub type FactFn = fn(&Item<'_>, &TimeContext<'_>) -> Result<(Fact, bool), String>;

/// What, beyond the identity attributes, names one contribution of a
/// table (an LLM request's `generated_at`): bytes appended to the
/// canonical identity, read from the image (`None`: a REMOVE without one).
pub type IdentityExtraFn = fn(Option<&Item<'_>>, &mut Vec<u8>) -> Result<(), String>;

/// One source table. Declared as a `pub(crate) const TABLE` in its own
/// `normalize/<table>.rs` and listed once in `normalize::TABLES`.
#[derive(Debug)]
pub struct SourceTable {
    /// The variant naming this table. `normalize::TABLES` lists the tables
    /// in the order of these variants (checked when the crate compiles).
    pub kind: SourceKind,
    /// The table-name suffix that identifies the table: a table is named
    /// the suffix itself or `<prefix>-<suffix>` (case-sensitive).
    pub suffix: &'static str,
    /// Stable small code, the first byte of every identity of the table
    /// (stored in the ledger through the identity hash): never change or
    /// reuse one.
    pub code: u8,
    /// What the table's items count as: activity under this heatmap
    /// integration (`user_event_counts.integration`), or, for `None`, LLM
    /// requests (the monthly reports).
    pub integration: Option<Integration>,
    /// The key attributes of the table's key schema (docs/DESIGN.md,
    /// appendix): what a stream record's `Keys` carries and a Scan checks
    /// against `DescribeTable`.
    pub key_attributes: &'static [&'static str],
    /// The attributes that name one contribution, in name order, each with
    /// whether it is required (DESIGN §1). Identity is read from these, never
    /// from the record's `Keys` map as a whole, so a stream record, a Scan
    /// page and an export line of one change agree whatever key schema the
    /// live table has.
    pub identity_attributes: &'static [(&'static str, bool)],
    /// What else names a contribution, if anything (see `IdentityExtraFn`).
    pub identity_extra: Option<IdentityExtraFn>,
    /// The normalising function: item → fact.
    pub fact: FactFn,
}

impl SourceTable {
    /// Whether `table` (a DynamoDB table name) is this table: the suffix
    /// itself, or ending in `-<suffix>`.
    pub fn names(&self, table: &str) -> bool {
        let suffix = self.suffix;
        table == suffix
            || (table.len() > suffix.len()
                && table.ends_with(suffix)
                && table.as_bytes()[table.len() - suffix.len() - 1] == b'-')
    }
}
