//! The LLM rollup (DESIGN §6), independent of SQL: how a batch's winning
//! LLM ledger rows move the monthly reports, and what a report is.
//!
//! A report is kept as sums (requests, tokens, cost, response time, quality
//! and how many requests carry a quality score) per account and UTC month,
//! with per-model and per-function breakdowns. A batch moves them by
//! (new contribution − old contribution) of each identity whose staged row
//! wins, so its cost is proportional to the identities it touches. Money and
//! scores are exact `Decimal`s whose additions are checked never to round.

use super::exact::exact_add;
use super::{LlmRow, RowState, wins};
use crate::domain::{Identity, LlmRequest, Version};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};

/// One report: an account's usage in one UTC calendar month.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReportKey {
    pub account_id: String,
    /// `YYYY-MM`.
    pub period: String,
}

impl ReportKey {
    /// `report_id` of the `LLMReportData` item: `<account_id>#<YYYY-MM>`.
    pub fn report_id(&self) -> String {
        format!("{}#{}", self.account_id, self.period)
    }
}

/// Per-model usage sums.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelUsage {
    pub requests: i64,
    pub tokens: i64,
    pub cost_usd: Decimal,
}

/// Sums of one report, or a change of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportSums {
    pub requests: i64,
    pub tokens: i64,
    pub cost_usd: Decimal,
    pub response_time_ms: i64,
    pub quality_sum: Decimal,
    /// Requests that carry a quality score (the average's denominator).
    pub quality_scored: i64,
    pub models: BTreeMap<String, ModelUsage>,
    pub functions: BTreeMap<String, i64>,
}

/// A report as stored: its sums, and the revision that numbers its changes
/// (the `version` of the projected item).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub key: ReportKey,
    pub sums: ReportSums,
    pub revision: i64,
    /// When the report last changed (RFC 3339, UTC).
    pub updated_at: String,
}

/// A rollup sum left the range in which it stays exact.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("LLM report {report}: {what} is out of the exactly representable range")]
pub struct RollupOverflow {
    pub report: String,
    pub what: &'static str,
}

/// What one live request contributes to its report.
struct Contribution<'a> {
    key: ReportKey,
    request: &'a LlmRequest,
}

impl ReportSums {
    /// Is this change empty (moves nothing)?
    pub fn is_zero(&self) -> bool {
        self.requests == 0
            && self.tokens == 0
            && self.cost_usd.is_zero()
            && self.response_time_ms == 0
            && self.quality_sum.is_zero()
            && self.quality_scored == 0
            && self.models.values().all(|m| *m == ModelUsage::default())
            && self.functions.values().all(|n| *n == 0)
    }

    /// Add (`sign` = 1) or retract (`sign` = −1) one request.
    fn add_request(&mut self, r: &LlmRequest, sign: i64) -> Result<(), &'static str> {
        let signed = |d: Decimal| if sign < 0 { -d } else { d };
        let int = |a: i64, b: i64, what| a.checked_add(sign * b).ok_or(what);
        self.requests = int(self.requests, 1, "total_requests")?;
        self.tokens = int(self.tokens, r.total_tokens, "total_tokens")?;
        self.cost_usd = exact_add(self.cost_usd, signed(r.cost_usd)).ok_or("total_cost_usd")?;
        self.response_time_ms = int(self.response_time_ms, r.response_time_ms, "response time")?;
        if let Some(q) = r.quality_score {
            self.quality_sum = exact_add(self.quality_sum, signed(q)).ok_or("quality_score sum")?;
            self.quality_scored = int(self.quality_scored, 1, "quality_scored")?;
        }
        let m = self.models.entry(r.model.clone()).or_default();
        m.requests = int(m.requests, 1, "model requests")?;
        m.tokens = int(m.tokens, r.total_tokens, "model tokens")?;
        m.cost_usd = exact_add(m.cost_usd, signed(r.cost_usd)).ok_or("model cost")?;
        let f = self.functions.entry(r.function.clone()).or_default();
        *f = int(*f, 1, "function count")?;
        Ok(())
    }

    /// Count one live request, as a batch that adds it does.
    pub fn add(&mut self, r: &LlmRequest) -> Result<(), &'static str> {
        self.add_request(r, 1)
    }

    /// `-self` (`None`: an integer sum is `i64::MIN`), so that
    /// `a.plus(&b.negated()?)` is the exact change from `b` to `a`.
    pub fn negated(&self) -> Option<ReportSums> {
        Some(ReportSums {
            requests: self.requests.checked_neg()?,
            tokens: self.tokens.checked_neg()?,
            cost_usd: -self.cost_usd,
            response_time_ms: self.response_time_ms.checked_neg()?,
            quality_sum: -self.quality_sum,
            quality_scored: self.quality_scored.checked_neg()?,
            models: self
                .models
                .iter()
                .map(|(m, u)| {
                    Some((
                        m.clone(),
                        ModelUsage {
                            requests: u.requests.checked_neg()?,
                            tokens: u.tokens.checked_neg()?,
                            cost_usd: -u.cost_usd,
                        },
                    ))
                })
                .collect::<Option<_>>()?,
            functions: self
                .functions
                .iter()
                .map(|(f, n)| Some((f.clone(), n.checked_neg()?)))
                .collect::<Option<_>>()?,
        })
    }

    /// `self + other`, exactly (for applying a change to stored sums).
    pub fn plus(&self, other: &ReportSums) -> Result<ReportSums, &'static str> {
        let int = |a: i64, b: i64, what| a.checked_add(b).ok_or(what);
        let mut out = ReportSums {
            requests: int(self.requests, other.requests, "total_requests")?,
            tokens: int(self.tokens, other.tokens, "total_tokens")?,
            cost_usd: exact_add(self.cost_usd, other.cost_usd).ok_or("total_cost_usd")?,
            response_time_ms: int(
                self.response_time_ms,
                other.response_time_ms,
                "response time",
            )?,
            quality_sum: exact_add(self.quality_sum, other.quality_sum)
                .ok_or("quality_score sum")?,
            quality_scored: int(self.quality_scored, other.quality_scored, "quality_scored")?,
            models: self.models.clone(),
            functions: self.functions.clone(),
        };
        for (name, d) in &other.models {
            let m = out.models.entry(name.clone()).or_default();
            m.requests = int(m.requests, d.requests, "model requests")?;
            m.tokens = int(m.tokens, d.tokens, "model tokens")?;
            m.cost_usd = exact_add(m.cost_usd, d.cost_usd).ok_or("model cost")?;
        }
        for (name, d) in &other.functions {
            let f = out.functions.entry(name.clone()).or_default();
            *f = int(*f, *d, "function count")?;
        }
        Ok(out)
    }

    /// Mean response time in ms (0 without requests), rounded to 3 places.
    pub fn average_response_time_ms(&self) -> Decimal {
        if self.requests <= 0 {
            return Decimal::ZERO;
        }
        (Decimal::from(self.response_time_ms) / Decimal::from(self.requests))
            .round_dp(3)
            .normalize()
    }

    /// Mean quality over the requests that carry a score (0 if none do),
    /// rounded to 6 places.
    pub fn average_quality_score(&self) -> Decimal {
        if self.quality_scored <= 0 {
            return Decimal::ZERO;
        }
        (self.quality_sum / Decimal::from(self.quality_scored))
            .round_dp(6)
            .normalize()
    }
}

/// Ledger rows of a batch's LLM identities as read under lock: version,
/// state and, when live, the counted account and request.
pub type ExistingLlm = HashMap<Identity, (Version, RowState, Option<(String, LlmRequest)>)>;

fn contribution<'a>(
    row_state: RowState,
    subject: Option<&String>,
    r: Option<&'a LlmRequest>,
) -> Option<Contribution<'a>> {
    match (row_state, subject, r) {
        (RowState::Live, Some(account), Some(request)) => Some(Contribution {
            key: ReportKey {
                account_id: account.clone(),
                period: request.report_period(),
            },
            request,
        }),
        _ => None,
    }
}

/// The report changes of one batch: for every staged row that wins against
/// the ledger, retract the ledger's live contribution and add the staged
/// one. Keys whose change nets to nothing are left out.
pub fn report_deltas(
    staged: &[LlmRow],
    existing: &ExistingLlm,
) -> Result<BTreeMap<ReportKey, ReportSums>, RollupOverflow> {
    let mut out: BTreeMap<ReportKey, ReportSums> = BTreeMap::new();
    let mut apply = |c: Contribution<'_>, sign: i64| {
        let report = c.key.report_id();
        out.entry(c.key)
            .or_default()
            .add_request(c.request, sign)
            .map_err(|what| RollupOverflow { report, what })
    };
    for row in staged {
        let old = existing.get(&row.id);
        if !wins((&row.version, row.state), old.map(|(v, s, _)| (v, *s))) {
            continue;
        }
        if let Some((_, state, Some((account, request)))) = old
            && let Some(c) = contribution(*state, Some(account), Some(request))
        {
            apply(c, -1)?;
        }
        if let Some(c) = contribution(row.state, row.subject.as_ref(), row.request.as_ref()) {
            apply(c, 1)?;
        }
    }
    for sums in out.values_mut() {
        sums.models.retain(|_, m| *m != ModelUsage::default());
        sums.functions.retain(|_, n| *n != 0);
    }
    out.retain(|_, sums| !sums.is_zero());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use std::str::FromStr;

    fn request(
        at: i64,
        model: &str,
        function: &str,
        tokens: i64,
        cost: &str,
        q: Option<&str>,
    ) -> LlmRequest {
        LlmRequest {
            conversation_id: "conv-1".into(),
            generated_at: Utc.timestamp_opt(at, 0).unwrap(),
            model: model.into(),
            function: function.into(),
            prompt_tokens: 0,
            response_tokens: tokens,
            total_tokens: tokens,
            cost_usd: Decimal::from_str(cost).unwrap(),
            response_time_ms: 1000,
            quality_score: q.map(|q| Decimal::from_str(q).unwrap()),
        }
    }

    fn row(
        id: u128,
        seq: &str,
        state: RowState,
        account: Option<&str>,
        r: Option<LlmRequest>,
    ) -> LlmRow {
        LlmRow {
            id: Identity(id),
            version: Version::from_sequence_number(seq).unwrap(),
            state,
            subject: account.map(String::from),
            request: r,
        }
    }

    const JAN: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z
    const FEB: i64 = 1_706_745_600; // 2024-02-01T00:00:00Z

    #[test]
    fn new_requests_add_and_group_by_account_and_month() {
        let staged = vec![
            row(
                1,
                "10",
                RowState::Live,
                Some("acct"),
                Some(request(JAN, "m1", "f1", 100, "0.10", Some("0.5"))),
            ),
            row(
                2,
                "11",
                RowState::Live,
                Some("acct"),
                Some(request(JAN + 60, "m2", "f1", 50, "0.0025", None)),
            ),
            row(
                3,
                "12",
                RowState::Live,
                Some("acct"),
                Some(request(FEB - 1, "m1", "f2", 10, "1", Some("1"))),
            ),
            row(
                4,
                "13",
                RowState::Live,
                Some("acct"),
                Some(request(FEB, "m1", "f2", 10, "1", None)),
            ),
            row(
                5,
                "14",
                RowState::Unattributed,
                Some("conv-x"),
                Some(request(FEB, "m1", "f2", 10, "1", None)),
            ),
        ];
        let d = report_deltas(&staged, &ExistingLlm::new()).unwrap();
        assert_eq!(d.len(), 2);
        let jan = &d[&ReportKey {
            account_id: "acct".into(),
            period: "2024-01".into(),
        }];
        assert_eq!(jan.requests, 3);
        assert_eq!(jan.tokens, 160);
        assert_eq!(jan.cost_usd.to_string(), "1.1025");
        assert_eq!(jan.quality_scored, 2);
        assert_eq!(jan.average_quality_score().to_string(), "0.75");
        assert_eq!(
            jan.models["m1"],
            ModelUsage {
                requests: 2,
                tokens: 110,
                cost_usd: Decimal::from_str("1.10").unwrap()
            }
        );
        assert_eq!(jan.functions["f2"], 1);
        assert_eq!(jan.average_response_time_ms().to_string(), "1000");
    }

    #[test]
    fn correction_moves_only_the_difference_and_removal_retracts() {
        let old = request(JAN, "m1", "f1", 100, "0.10", Some("0.5"));
        let existing: ExistingLlm = [(
            Identity(1),
            (
                Version::from_sequence_number("10").unwrap(),
                RowState::Live,
                Some(("acct".to_string(), old.clone())),
            ),
        )]
        .into();
        let corrected = request(JAN, "m1", "f1", 120, "0.12", Some("0.5"));
        let d = report_deltas(
            &[row(1, "20", RowState::Live, Some("acct"), Some(corrected))],
            &existing,
        )
        .unwrap();
        let jan = d.values().next().unwrap();
        assert_eq!(
            (jan.requests, jan.tokens, jan.cost_usd.to_string()),
            (0, 20, "0.02".into())
        );
        assert!(jan.functions.is_empty(), "function count unchanged");
        // Stale: nothing.
        let stale = request(JAN, "m9", "f9", 1, "9", None);
        assert!(
            report_deltas(
                &[row(1, "5", RowState::Live, Some("acct"), Some(stale))],
                &existing
            )
            .unwrap()
            .is_empty()
        );
        // Same version redelivered: nothing.
        assert!(
            report_deltas(
                &[row(1, "10", RowState::Live, Some("acct"), Some(old))],
                &existing
            )
            .unwrap()
            .is_empty()
        );
        // Tombstone retracts.
        let d = report_deltas(&[row(1, "30", RowState::Tombstone, None, None)], &existing).unwrap();
        let jan = d.values().next().unwrap();
        assert_eq!(
            (jan.requests, jan.tokens, jan.quality_scored),
            (-1, -100, -1)
        );
        assert_eq!(jan.cost_usd.to_string(), "-0.10");
    }
}
