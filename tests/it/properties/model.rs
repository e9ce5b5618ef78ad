//! The model the property test compares the store with: what an
//! obviously-correct reading of DESIGN §1–§3 says the counts and the LLM
//! reports must be after a set of item histories, and the directory the
//! generated users are linked through.

use super::*;

/// The changes of an item that count, with the amounts of each: every
/// distinct time it was put with is one change (a put with the same time
/// corrects it); an application REMOVE retracts the one in its OldImage
/// (the last put); TTL never retracts. Dropbox changes and LLM requests.
pub(super) fn live_changes(h: &History) -> BTreeMap<usize, usize> {
    let mut live = BTreeMap::new();
    let mut last_put = None;
    for op in &h.ops {
        match op {
            Op::Put(t, a) => {
                live.insert(*t, *a);
                last_put = Some(*t);
            }
            Op::Remove => {
                if let Some(t) = last_put {
                    live.remove(&t);
                }
            }
            Op::TtlRemove => {}
        }
    }
    live
}

/// The model: a GitHub or e-mail item counts at its last non-TTL op's time
/// if that op is a put; a Dropbox item (key `account_id` alone, identity
/// `account_id` + `timestamp`, DESIGN §1) counts each live change.
pub(super) fn model(histories: &[History]) -> BTreeMap<(&'static str, u8, u8), i64> {
    let mut want = BTreeMap::new();
    for h in histories.iter().filter(|h| h.source != 3) {
        let times: Vec<usize> = if h.source == 1 {
            live_changes(h).into_keys().collect()
        } else {
            match h.ops.iter().rev().find(|o| !matches!(o, Op::TtlRemove)) {
                Some(Op::Put(t, _)) => vec![*t],
                _ => vec![],
            }
        };
        let (_, slack, tz) = USERS[h.user];
        // E-mail counts for the ACS account itself.
        let slack = if h.source == 2 {
            ACS_ACCOUNTS[h.user]
        } else {
            slack
        };
        for t in times {
            let at = chrono::DateTime::parse_from_rfc3339(TIMES[t])
                .unwrap()
                .to_utc();
            let b = streamfold::aggregate::bucket::bucket(at, tz);
            *want.entry((slack, b.dow, b.hour)).or_insert(0) += 1;
        }
    }
    want
}

pub(super) const DIRECTORY: &[(&str, &str)] = &[
    (
        "integrations",
        r#"{"slack_id":{"S":"U_ALICE"},"integration":{"S":"G"},"account_id":{"S":"alice"}}"#,
    ),
    (
        "integrations",
        r#"{"slack_id":{"S":"U_ALICE"},"integration":{"S":"D"},"account_id":{"S":"dbid:A"}}"#,
    ),
    (
        "github_accounts",
        r#"{"slack_id":{"S":"U_BOB"},"githubId":{"S":"bob"}}"#,
    ),
    (
        "dropbox_accounts",
        r#"{"slack_id":{"S":"U_BOB"},"dropboxId":{"S":"dbid:B"}}"#,
    ),
    (
        "accounts",
        r#"{"slack_id":{"S":"U_ALICE"},"tz":{"S":"America/New_York"}}"#,
    ),
    (
        "accounts",
        r#"{"slack_id":{"S":"U_BOB"},"tz":{"S":"Australia/Sydney"}}"#,
    ),
    (
        "accounts",
        r#"{"slack_id":{"S":"U_CAROL"},"tz":{"S":"Asia/Tokyo"}}"#,
    ),
    (
        "Users",
        r#"{"id":{"S":"acct-alice"},"timezone":{"S":"America/New_York"}}"#,
    ),
    (
        "Users",
        r#"{"id":{"S":"acct-bob"},"preferences":{"M":{"timezone":{"S":"Australia/Sydney"}}}}"#,
    ),
    (
        "Users",
        r#"{"id":{"S":"acct-carol"},"timezone":{"S":"Asia/Tokyo"}}"#,
    ),
];
/// What the model expects of one LLM report.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ReportModel {
    pub(super) requests: i64,
    pub(super) tokens: i64,
    pub(super) cost: rust_decimal::Decimal,
    pub(super) quality_sum: rust_decimal::Decimal,
    pub(super) quality_scored: i64,
}

/// The LLM model: per (account, month), the sums of the requests that
/// count (`live_changes`), added with plain `Decimal` arithmetic (exact at
/// these magnitudes).
pub(super) fn llm_model(histories: &[History]) -> BTreeMap<(String, String), ReportModel> {
    use std::str::FromStr;
    let mut want: BTreeMap<(String, String), ReportModel> = BTreeMap::new();
    for (i, h) in histories.iter().enumerate() {
        if h.source != 3 {
            continue;
        }
        let account = ACS_ACCOUNTS[conversation_account(i)];
        for (t, a) in live_changes(h) {
            let (cost, quality, tokens) = AMOUNTS[a];
            let r = want
                .entry((account.to_string(), TIMES[t][..7].to_string()))
                .or_default();
            r.requests += 1;
            r.tokens += tokens;
            r.cost += rust_decimal::Decimal::from_str(cost).unwrap();
            if let Some(q) = quality {
                r.quality_sum += rust_decimal::Decimal::from_str(q).unwrap();
                r.quality_scored += 1;
            }
        }
    }
    want
}

/// Which user's ACS account conversation `item-i` belongs to (carol's are
/// linked only at the end).
pub(super) fn conversation_account(i: usize) -> usize {
    i % 3
}

/// `Threads` items of the conversations, carol's (`linked_late`) or the others.
pub(super) fn threads(linked_late: bool) -> Vec<(&'static str, &'static str)> {
    (0..10)
        .filter(|i| (conversation_account(*i) == 2) == linked_late)
        .map(|i| {
            let line = format!(
                r#"{{"conversation_id":{{"S":"item-{i}"}},"associated_account":{{"S":"{}"}}}}"#,
                ACS_ACCOUNTS[conversation_account(i)]
            );
            ("Threads", &*Box::leak(line.into_boxed_str()))
        })
        .collect()
}

pub(super) const CAROL_LINK: (&str, &str) = (
    "integrations",
    r#"{"slack_id":{"S":"U_CAROL"},"integration":{"S":"G"},"account_id":{"S":"carol"}}"#,
);
