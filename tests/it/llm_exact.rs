//! LLM reports stay exact (issue 18, faults 1 and 2): sums at mixed
//! decimal scales, corrections that net a report to zero and then add to
//! it, and three writers folding the same stream into one database at once
//! (Lambda with ParallelizationFactor > 1, a replay beside the stream). Every
//! report field is compared with a model computed here from the records.

use crate::support::{self, Harness};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use streamfold::pipeline::{Pipeline, run_batch};
use streamfold::resolve::local::LocalDirectory;
use streamfold::store::Store;
use streamfold::store::reports::ReportFilter;

/// The amounts of one LLM request.
#[derive(Clone, Debug)]
pub struct Req {
    pub conv: String,
    pub generated_at: String,
    pub cost: &'static str,
    pub quality: Option<&'static str>,
    pub model: &'static str,
    pub function: &'static str,
    pub tokens: i64,
    pub response_ms: i64,
}

fn image(r: &Req) -> Value {
    let mut image = json!({
        "conversation_id":{"S":r.conv},"model_used":{"S":r.model},
        "function_name":{"S":r.function},"total_tokens":{"N":r.tokens.to_string()},
        "response_time_ms":{"N":r.response_ms.to_string()},
        "generated_at":{"S":r.generated_at},"metadata":{"M":{"cost_usd":{"N":r.cost}}}
    });
    if let Some(q) = r.quality {
        image["quality_score"] = json!({"N": q});
    }
    image
}

/// A stream record of `LLMDataCollection` (key `conversation_id`).
pub fn llm_record(event_name: &str, seq: u64, r: &Req) -> Value {
    let keys = json!({"conversation_id":{"S":r.conv}});
    let table = "acsd2p-dev-LLMDataCollection";
    let seq = seq.to_string();
    match event_name {
        "REMOVE" => support::record(table, "REMOVE", &seq, keys, None, Some(image(r))),
        _ => support::record(table, event_name, &seq, keys, Some(image(r)), None),
    }
}

/// What a report must hold.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Expected {
    pub requests: i64,
    pub tokens: i64,
    pub cost: Decimal,
    pub response_ms: i64,
    pub quality_sum: Decimal,
    pub quality_scored: i64,
    /// model → (requests, tokens, cost)
    pub models: BTreeMap<String, (i64, i64, Decimal)>,
    pub functions: BTreeMap<String, i64>,
}

/// The model: the requests that count (identity `conversation_id` +
/// `generated_at`, the last record of each wins, an application REMOVE
/// retracts), summed per account and month with `Decimal` arithmetic.
pub fn model(
    records: &[(String, u64, Req)],
    account_of: impl Fn(&str) -> String,
) -> BTreeMap<(String, String), Expected> {
    let mut live: BTreeMap<(String, String), Option<Req>> = BTreeMap::new();
    let mut ordered: Vec<&(String, u64, Req)> = records.iter().collect();
    ordered.sort_by_key(|(_, seq, _)| *seq);
    for (event, _, r) in ordered {
        let id = (r.conv.clone(), r.generated_at.clone());
        match event.as_str() {
            "REMOVE" => {
                live.insert(id, None);
            }
            "TTL" => {}
            _ => {
                live.insert(id, Some(r.clone()));
            }
        }
    }
    let mut out: BTreeMap<(String, String), Expected> = BTreeMap::new();
    for r in live.into_values().flatten() {
        let e = out
            .entry((account_of(&r.conv), r.generated_at[..7].to_string()))
            .or_default();
        let cost = Decimal::from_str(r.cost).unwrap();
        e.requests += 1;
        e.tokens += r.tokens;
        e.cost += cost;
        e.response_ms += r.response_ms;
        if let Some(q) = r.quality {
            e.quality_sum += Decimal::from_str(q).unwrap();
            e.quality_scored += 1;
        }
        let m = e.models.entry(r.model.to_string()).or_default();
        m.0 += 1;
        m.1 += r.tokens;
        m.2 += cost;
        *e.functions.entry(r.function.to_string()).or_default() += 1;
    }
    out
}

/// Every report of the store, as `Expected` (empty reports left out).
pub async fn reports(store: &Store) -> BTreeMap<(String, String), Expected> {
    let all = store
        .reports(&ReportFilter {
            limit: u32::MAX,
            ..Default::default()
        })
        .await
        .unwrap();
    all.into_iter()
        .filter(|r| r.sums.requests != 0 || !r.sums.is_zero())
        .map(|r| {
            let s = r.sums;
            (
                (r.key.account_id, r.key.period),
                Expected {
                    requests: s.requests,
                    tokens: s.tokens,
                    cost: s.cost_usd,
                    response_ms: s.response_time_ms,
                    quality_sum: s.quality_sum,
                    quality_scored: s.quality_scored,
                    models: s
                        .models
                        .into_iter()
                        .filter(|(_, u)| u.requests != 0 || !u.cost_usd.is_zero() || u.tokens != 0)
                        .map(|(m, u)| (m, (u.requests, u.tokens, u.cost_usd)))
                        .collect(),
                    functions: s.functions.into_iter().filter(|(_, n)| *n != 0).collect(),
                },
            )
        })
        .collect()
}

fn threads(convs: usize, accounts: usize) -> Vec<(&'static str, &'static str)> {
    (0..convs)
        .map(|i| {
            let line = format!(
                r#"{{"conversation_id":{{"S":"conv-{i}"}},"associated_account":{{"S":"acct-{}"}}}}"#,
                i % accounts
            );
            ("Threads", &*Box::leak(line.into_boxed_str()))
        })
        .collect()
}

fn req(conv: usize, generated_at: &str, cost: &'static str, quality: Option<&'static str>) -> Req {
    Req {
        conv: format!("conv-{conv}"),
        generated_at: generated_at.into(),
        cost,
        quality,
        model: "m1",
        function: "summarize",
        tokens: 10,
        response_ms: 100,
    }
}

/// One (event, sequence number, request) of a test stream as its record;
/// `TTL` is a REMOVE by DynamoDB's TTL process.
fn stream_record((event, seq, r): &(String, u64, Req)) -> Value {
    if event == "TTL" {
        support::ttl_remove(llm_record("REMOVE", *seq, r))
    } else {
        llm_record(event, *seq, r)
    }
}

async fn apply_clean(h: &Harness, batch: &[(String, u64, Req)]) {
    let records: Vec<Value> = batch.iter().map(stream_record).collect();
    let report = h.apply(&records).await;
    assert!(
        report.rejections.is_empty(),
        "legitimate records quarantined: {:?}",
        report.rejections
    );
    assert_eq!(report.splits, 0, "the store refused a legitimate batch");
}

/// Three `generated_at` times of `conv` in April 2024 whose request
/// identities ascend: a batch's rows are folded in identity order, so the
/// cases below happen in the order written whatever the hash.
fn ascending_times(conv: usize) -> [String; 3] {
    let mut times: Vec<(u128, String)> = (0..24)
        .map(|h| {
            let at = format!("2024-04-0{}T{h:02}:00:00Z", 1 + conv);
            let rec = llm_record("INSERT", 1, &req(conv, &at, "0", None));
            let raw = serde_json::value::RawValue::from_string(rec.to_string()).unwrap();
            let parsed = streamfold::record::lambda_event::parse_record(&raw);
            match streamfold::normalize::normalize(&parsed) {
                streamfold::normalize::Normalized::Change(c) => (c.identity.0, at),
                other => panic!("{other:?}"),
            }
        })
        .collect();
    times.sort();
    [times[0].1.clone(), times[1].1.clone(), times[2].1.clone()]
}

/// The issue's cases, batch by batch: a report netted to zero (at scale 4)
/// then added to at scale 1 (REMOVE A, INSERT C, INSERT B); a quality sum
/// netted to `0.00` plus `0.8`; a report emptied in one batch and added to
/// in the next (its stored sums read back without trailing zeros).
pub async fn mixed_scales_and_zero_sums(engine: &str) {
    let Some(h) = Harness::with_directory(engine, &threads(3, 3)).await else {
        return;
    };
    let [ta, tc, tb] = ascending_times(0);
    let a = req(0, &ta, "0.0025", Some("0.4"));
    let c = req(0, &tc, "0.0025", Some("0.40"));
    let b = req(0, &tb, "0.5", Some("0.8"));
    let [tz, tq, tadd] = ascending_times(1);
    let retracted_q = req(1, &tz, "0.01", Some("0.25"));
    let zero_q = req(1, &tq, "0.00", Some("0.25"));
    let add_q = req(1, &tadd, "0.10", Some("0.8"));
    let emptied = req(2, "2024-05-01T10:00:00Z", "0.0025", Some("0.25"));
    let later = req(2, "2024-05-09T10:00:00Z", "0.5", None);
    let batches: Vec<Vec<(String, u64, Req)>> = vec![
        vec![
            ("INSERT".into(), 100, a.clone()),
            ("INSERT".into(), 101, emptied.clone()),
            ("INSERT".into(), 102, retracted_q.clone()),
        ],
        vec![
            ("REMOVE".into(), 200, a.clone()),
            ("INSERT".into(), 201, c.clone()),
            ("INSERT".into(), 202, b.clone()),
            ("REMOVE".into(), 203, retracted_q.clone()),
            ("INSERT".into(), 206, zero_q.clone()),
            ("INSERT".into(), 204, add_q.clone()),
            ("REMOVE".into(), 205, emptied.clone()),
        ],
        vec![("INSERT".into(), 300, later.clone())],
        // A correction of `b` that keeps its amounts at another scale.
        vec![(
            "MODIFY".into(),
            400,
            Req {
                cost: "0.500000",
                quality: Some("0.80"),
                ..b.clone()
            },
        )],
    ];
    for batch in &batches {
        apply_clean(&h, batch).await;
        // A redelivery changes nothing and is refused nothing.
        apply_clean(&h, batch).await;
    }
    let all: Vec<_> = batches.concat();
    let want = model(&all, |conv| {
        format!(
            "acct-{}",
            conv["conv-".len()..].parse::<usize>().unwrap() % 3
        )
    });
    let got = reports(&h.p.store).await;
    assert_eq!(got, want, "{engine}");
    let april = &got[&("acct-0".to_string(), "2024-04".to_string())];
    assert_eq!(april.cost, Decimal::from_str("0.5025").unwrap());
    assert_eq!(april.quality_sum, Decimal::from_str("1.2").unwrap());
    let april_1 = &got[&("acct-1".to_string(), "2024-04".to_string())];
    assert_eq!(april_1.quality_sum, Decimal::from_str("1.05").unwrap());
    assert_eq!(april_1.cost, Decimal::from_str("0.1").unwrap());
}

/// A generated LLM stream: `convs` conversations over two months, each
/// with several generations, corrections at other scales, application and
/// TTL removes. Records are (event, sequence number, request).
pub fn generated_stream(convs: usize) -> Vec<(String, u64, Req)> {
    const COSTS: [&str; 6] = [
        "0.0025",
        "0.5",
        "0",
        "1.000000000000000001",
        "12.34",
        "0.10",
    ];
    const QUALITY: [Option<&str>; 5] = [Some("0.8"), None, Some("0"), Some("0.123456"), Some("1")];
    const MODELS: [&str; 3] = ["claude", "gpt", "llama"];
    const FUNCTIONS: [&str; 2] = ["summarize", "classify"];
    let mut out = Vec::new();
    let mut seq = 10_000u64;
    for step in 0..6usize {
        for c in 0..convs {
            seq += 1;
            let k = c * 7 + step;
            let at = |g: usize| {
                format!(
                    "2024-{:02}-{:02}T{:02}:00:00Z",
                    4 + (c + g) % 2,
                    1 + g,
                    c % 24
                )
            };
            let base = Req {
                conv: format!("conv-{c}"),
                generated_at: at(step),
                cost: COSTS[k % COSTS.len()],
                quality: QUALITY[k % QUALITY.len()],
                model: MODELS[k % MODELS.len()],
                function: FUNCTIONS[k % FUNCTIONS.len()],
                tokens: (k % 50) as i64,
                response_ms: (k % 7) as i64 * 100,
            };
            let (event, r) = match (step, c % 4) {
                // A correction of the previous generation, at another scale.
                (3, 0) => (
                    "MODIFY",
                    Req {
                        generated_at: at(2),
                        cost: "0.50",
                        quality: Some("0.00"),
                        ..base
                    },
                ),
                // The application deletes the current item (generation 3).
                (4, 1) => (
                    "REMOVE",
                    Req {
                        generated_at: at(3),
                        ..base
                    },
                ),
                // TTL expiry of the current item: the request happened.
                (4, 2) => (
                    "TTL",
                    Req {
                        generated_at: at(3),
                        ..base
                    },
                ),
                (0, _) => ("INSERT", base),
                _ => ("MODIFY", base),
            };
            out.push((event.to_string(), seq, r));
        }
    }
    out
}

/// Three writers fold the same stream, each in its own batch sizes, into
/// one database at the same time; the reports must equal the model exactly
/// (on PostgreSQL a new request seen by two writers was counted twice).
pub async fn three_concurrent_writers(engine: &str) {
    let convs = 24;
    let Some(h) = Harness::with_directory(engine, &threads(convs, 5)).await else {
        return;
    };
    let stream = generated_stream(convs);
    let mut writers = Vec::new();
    for size in [5usize, 8, 13] {
        let p = Arc::new(Pipeline {
            store: Store::open(&h.db.url).await.unwrap(),
            directory: LocalDirectory::load(h.dir.path()).unwrap().into(),
            default_tz: chrono_tz::Tz::UTC,
        });
        let records: Vec<Value> = stream.iter().map(stream_record).collect();
        writers.push(tokio::spawn(async move {
            let mut quarantined = 0;
            for batch in records.chunks(size) {
                let text = json!({ "Records": batch }).to_string();
                let event = streamfold::record::lambda_event::parse_event(&text).unwrap();
                let report = run_batch(&p, &event.records).await.unwrap();
                quarantined += report.rejections.len() + report.splits as usize;
            }
            quarantined
        }));
    }
    for w in writers {
        assert_eq!(w.await.unwrap(), 0, "legitimate records quarantined");
    }
    let want = model(&stream, |conv| {
        format!(
            "acct-{}",
            conv["conv-".len()..].parse::<usize>().unwrap() % 5
        )
    });
    assert!(want.len() >= 8, "the workload spans several reports");
    let got = reports(&h.p.store).await;
    assert_eq!(
        got, want,
        "{engine}: reports after three concurrent writers"
    );
    let totals = h.p.store.totals().await.unwrap();
    let live: i64 = want.values().map(|e| e.requests).sum();
    assert_eq!(totals.llm_requests, live, "{engine}: live LLM ledger rows");
}

#[macro_export]
macro_rules! llm_exact_tests {
    ($engine:literal $(, #[$attr:meta])*) => {
        #[tokio::test]
        $(#[$attr])*
        async fn llm_mixed_scales_and_zero_sums() {
            $crate::llm_exact::mixed_scales_and_zero_sums($engine).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 3)]
        $(#[$attr])*
        async fn llm_three_concurrent_writers() {
            $crate::llm_exact::three_concurrent_writers($engine).await
        }
    };
}
