//! Column bounds: the one home of what a text value must satisfy before it
//! reaches a SQL column, on every engine (DESIGN §5: values that would not
//! fit are quarantined before SQL).
//!
//! Lengths are counted in characters, as MySQL `VARCHAR(n)` (utf8mb4) and
//! PostgreSQL `VARCHAR(n)` count them. PostgreSQL text cannot hold U+0000,
//! so a value carrying it is refused everywhere (the engines must agree on
//! what counts). Values from records are checked by the normalisers
//! (`check`), values from the directory by the pipeline (`fits`: a link that
//! does not fit is treated as no link), and the naming metadata of a
//! quarantined record is cut to fit (`clip`), because a quarantine row that
//! cannot be written would block its batch.

/// `user_event_counts.slack_id` (the seed's `VARCHAR(64)`): Slack IDs and the
/// ACS accounts that e-mail activity is counted under.
pub const SLACK_ID: usize = 64;
/// Actors kept in the ledgers (`subject`), conversation ids, LLM accounts,
/// model and function names (`VARCHAR(255)`).
pub const TEXT: usize = 255;
/// `rejected_records.source` and `.sequence_number` (`VARCHAR(64)`).
pub const REJECT_SHORT: usize = 64;
/// `rejected_records.table_name` and `.event_id` (`VARCHAR(255)`).
pub const REJECT_TEXT: usize = 255;
/// `rejected_records.reason` (`TEXT`; kept short enough to read).
pub const REASON: usize = 2000;
/// `rejected_records.raw`: bytes of a quarantined record kept. Two 400 KB
/// DynamoDB images in DynamoDB JSON fit whole, so any record a stream can
/// deliver is kept whole; a larger one (a hand-made file) keeps its first
/// bytes, and its length and hash go in the reason. Bounded so that one
/// record's row, JSON-escaped, stays under every server's packet limit.
pub const REJECT_RAW: usize = 2 << 20;
/// `backfill_checkpoints.job` (`VARCHAR(255)` on MySQL).
pub const CHECKPOINT_JOB: usize = 255;
/// `backfill_checkpoints.part` (`VARCHAR(512)` on MySQL; an S3 key may
/// have 1024 bytes).
pub const CHECKPOINT_PART: usize = 512;

/// Why `value` cannot be stored in a column of `max` characters, if it
/// cannot.
pub fn violation(value: &str, max: usize) -> Option<String> {
    if value.contains('\0') {
        Some("contains a NUL character (U+0000), which PostgreSQL text cannot hold".into())
    } else if value.chars().nth(max).is_some() {
        Some(format!("is longer than {max} characters"))
    } else {
        None
    }
}

/// Whether `value` fits a column of `max` characters.
pub fn fits(value: &str, max: usize) -> bool {
    violation(value, max).is_none()
}

/// `value` if it fits a column of `max` characters, else the reason naming
/// the attribute (never its value, which may be a token).
pub fn check<'a>(value: &'a str, attribute: &str, max: usize) -> Result<&'a str, String> {
    match violation(value, max) {
        None => Ok(value),
        Some(why) => Err(format!("attribute `{attribute}` {why}")),
    }
}

/// `value` cut to fit a column of `max` characters (NUL characters dropped,
/// a cut marked with a trailing `…`): for the metadata that names a
/// quarantined record, which must be stored whatever the record holds.
pub fn clip(value: &str, max: usize) -> String {
    let clean: String = value.chars().filter(|c| *c != '\0').collect();
    if clean.chars().nth(max).is_none() {
        return clean;
    }
    let mut out: String = clean.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `value` as a key of at most `max` characters that still names it alone:
/// unchanged when it fits; else its start, `~` and the 128-bit hash of the
/// whole (checkpoint jobs and parts, which must stay distinct and be found
/// again on resume).
pub fn key(value: &str, max: usize) -> String {
    if fits(value, max) {
        return value.to_string();
    }
    let hash = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(value.as_bytes()));
    let keep = max.saturating_sub(hash.len() + 1);
    let start: String = value.chars().filter(|c| *c != '\0').take(keep).collect();
    format!("{start}~{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_characters_at_and_past_the_bound() {
        let at = "é".repeat(SLACK_ID);
        assert!(fits(&at, SLACK_ID), "64 two-byte characters fit");
        assert!(
            fits(&"🦀".repeat(SLACK_ID), SLACK_ID),
            "64 four-byte characters fit"
        );
        assert!(!fits(&format!("{at}x"), SLACK_ID));
        assert!(fits("", SLACK_ID));
        let err = check(&"a".repeat(TEXT + 1), "model_used", TEXT).unwrap_err();
        assert_eq!(err, "attribute `model_used` is longer than 255 characters");
    }

    #[test]
    fn nul_is_refused_and_clipped_away() {
        assert!(!fits("a\0b", TEXT));
        assert!(check("a\0b", "username", TEXT).unwrap_err().contains("NUL"));
        assert_eq!(clip("a\0b", TEXT), "ab");
    }

    #[test]
    fn keys_fit_and_stay_distinct() {
        let short = "scan:icarus-prod-github_events:4";
        assert_eq!(key(short, CHECKPOINT_JOB), short);
        let base = format!("export:{}", "t".repeat(300));
        let (a, b) = (
            key(&format!("{base}:a"), CHECKPOINT_JOB),
            key(&format!("{base}:b"), CHECKPOINT_JOB),
        );
        assert_ne!(a, b);
        assert_eq!(a.chars().count(), CHECKPOINT_JOB);
        assert_eq!(
            a,
            key(&format!("{base}:a"), CHECKPOINT_JOB),
            "deterministic"
        );
        let part = "p/".repeat(600);
        assert!(fits(&key(&part, CHECKPOINT_PART), CHECKPOINT_PART));
    }

    #[test]
    fn clip_keeps_short_values_and_marks_cuts() {
        assert_eq!(clip("evt-1", REJECT_TEXT), "evt-1");
        let long = "9".repeat(100);
        let c = clip(&long, REJECT_SHORT);
        assert_eq!(c.chars().count(), REJECT_SHORT);
        assert!(c.ends_with('…'));
        let exact = "x".repeat(REJECT_SHORT);
        assert_eq!(clip(&exact, REJECT_SHORT), exact);
        assert_eq!(
            clip(&"🦀".repeat(300), REJECT_TEXT).chars().count(),
            REJECT_TEXT
        );
    }
}
