//! The JSON documents a MySQL batch binds to session variables: one object
//! per row with short keys (a missing key is SQL NULL in `JSON_TABLE`),
//! decimals as strings, bytes as base64, and arrays cut to a byte budget.

use super::super::super::{RejectedRecord, StoreError};
use crate::aggregate::plan::Cell;
use crate::aggregate::{ActivityRow, LlmRow};
use crate::domain::Identity;
use base64::Engine as _;
use serde::Serialize;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An identity, as the read's `JSON_TABLE` takes it.
pub(super) fn id_json(id: Identity) -> String {
    b64(&id.to_bytes())
}

#[derive(Serialize)]
pub(super) struct CountJson<'a> {
    u: &'a str,
    g: &'static str,
    d: u8,
    h: u8,
    n: i64,
}

/// One count move.
pub(super) fn count_json(c: &Cell, n: i64) -> CountJson<'_> {
    CountJson {
        u: &c.slack_id,
        g: c.integration.code(),
        d: c.dow,
        h: c.hour,
        n,
    }
}

#[derive(Serialize)]
pub(super) struct ActivityJson<'a> {
    i: String,
    v: String,
    s: i64,
    g: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    u: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    d: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    h: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    t: Option<i64>,
}

pub(super) fn activity_json(r: &ActivityRow) -> ActivityJson<'_> {
    ActivityJson {
        i: b64(&r.id.to_bytes()),
        v: b64(r.version.as_bytes()),
        s: r.state.code(),
        g: r.integration.code(),
        u: r.subject.as_deref(),
        d: r.bucket.map(|b| b.dow),
        h: r.bucket.map(|b| b.hour),
        t: r.event_at,
    }
}

#[derive(Serialize, Default)]
pub(super) struct LlmJson<'a> {
    i: String,
    v: String,
    s: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    u: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    c: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    m: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    f: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pt: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rt: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tt: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cu: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    q: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    t: Option<i64>,
}

pub(super) fn llm_json(r: &LlmRow) -> LlmJson<'_> {
    let mut j = LlmJson {
        i: b64(&r.id.to_bytes()),
        v: b64(r.version.as_bytes()),
        s: r.state.code(),
        u: r.subject.as_deref(),
        ..LlmJson::default()
    };
    if let Some(q) = &r.request {
        j.c = Some(&q.conversation_id);
        j.p = Some(q.report_period());
        j.m = Some(&q.model);
        j.f = Some(&q.function);
        j.pt = Some(q.prompt_tokens);
        j.rt = Some(q.response_tokens);
        j.tt = Some(q.total_tokens);
        j.cu = Some(q.cost_usd.to_string());
        j.ms = Some(q.response_time_ms);
        j.q = q.quality_score.map(|s| s.to_string());
        j.t = Some(q.generated_at.timestamp());
    }
    j
}

#[derive(Serialize)]
pub(super) struct RejectJson<'a> {
    k: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    o: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    t: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<&'a str>,
    r: &'a str,
    w: &'a str,
}

pub(super) fn reject_json(r: &RejectedRecord) -> RejectJson<'_> {
    RejectJson {
        k: b64(&r.record_key()),
        o: r.source.map(|s| s.table_suffix()),
        t: r.table.as_deref(),
        e: r.event_id.as_deref(),
        n: r.sequence_number.as_deref(),
        r: &r.reason,
        w: &r.raw,
    }
}

/// JSON arrays of `items`, each at most `budget` bytes unless one item alone
/// is larger.
pub(super) fn json_arrays<T: Serialize>(
    items: impl Iterator<Item = T>,
    budget: usize,
) -> Result<Vec<String>, StoreError> {
    let mut arrays = Vec::new();
    let mut current = String::from("[");
    for item in items {
        let text = serde_json::to_string(&item).map_err(|e| StoreError::Value(e.to_string()))?;
        if current.len() > 1 && current.len() + text.len() + 2 > budget {
            current.push(']');
            arrays.push(std::mem::replace(&mut current, String::from("[")));
        }
        if current.len() > 1 {
            current.push(',');
        }
        current.push_str(&text);
    }
    if current.len() > 1 {
        current.push(']');
        arrays.push(current);
    }
    Ok(arrays)
}
#[derive(Serialize)]
pub(super) struct TotalsJson<'a> {
    pub(super) a: &'a str,
    pub(super) p: &'a str,
    pub(super) r: i64,
    pub(super) k: i64,
    pub(super) c: String,
    pub(super) m: i64,
    pub(super) q: String,
    pub(super) n: i64,
}

#[derive(Serialize)]
pub(super) struct UsageJson<'a> {
    pub(super) a: &'a str,
    pub(super) p: &'a str,
    pub(super) x: &'a str,
    pub(super) r: i64,
    pub(super) k: i64,
    pub(super) c: String,
}

/// The three report upserts, reading the deltas from session variables
/// (added in SQL on exact DECIMAL columns; `VALUES(col)` is the value
/// converted to the column's type, and MariaDB lacks the row alias). Keys
/// arrive in `BTreeMap` order, which is the tables' binary collation order.
#[cfg(test)]
mod tests {
    use super::json_arrays;

    fn parse(arrays: &[String]) -> Vec<u32> {
        arrays
            .iter()
            .flat_map(|a| serde_json::from_str::<Vec<u32>>(a).unwrap())
            .collect()
    }

    #[test]
    fn arrays_keep_order_and_the_budget() {
        let items: Vec<u32> = (0..1000).collect();
        for budget in [1, 10, 64, 1000, 1 << 20] {
            let arrays = json_arrays(items.iter(), budget).unwrap();
            assert_eq!(parse(&arrays), items, "budget {budget}");
            for a in &arrays {
                // Over budget only when one item alone is.
                let one = serde_json::from_str::<Vec<u32>>(a).unwrap().len() == 1;
                assert!(a.len() <= budget || one, "{} > {budget}", a.len());
            }
        }
        assert_eq!(json_arrays(items.iter(), 1 << 20).unwrap().len(), 1);
        assert!(
            json_arrays(std::iter::empty::<u32>(), 10)
                .unwrap()
                .is_empty()
        );
    }
}
