//! The rows of `streamfold bench`: each measures one thing against a
//! baseline run by the harness itself, in the same process, on the same
//! data and engine settings, and reports per-round values (min / median).

use super::baselines;
use super::{Run, apply_events, drop_scratch, generate_events, open_fresh, scratch_database};
use crate::aggregate::bucket::bucket;
use crate::domain::{Actor, Fact};
use crate::normalize::{ChangeKind, Normalized, normalize, normalize_change};
use crate::pipeline::{Pipeline, PipelineError};
use crate::record::lambda_event::{parse_event_records, parse_event_typed};
use crate::resolve::local::LocalDirectory;
use crate::store::StoreError;
use std::path::PathBuf;
use std::time::Instant;

/// One row of the results table.
#[derive(Clone, Debug)]
pub struct Row {
    pub name: String,
    pub baseline: String,
    /// Per round: the row's value (a ratio, or a count).
    pub values: Vec<f64>,
    pub goal: String,
    /// Is the goal met by the median?
    pub met: Option<bool>,
    /// Rates or counts behind the values, for the record.
    pub detail: String,
}

impl Row {
    pub fn min(&self) -> f64 {
        self.values.iter().copied().fold(f64::INFINITY, f64::min)
    }
    pub fn median(&self) -> f64 {
        median(&self.values)
    }
}

/// The middle value (the upper one of an even count); NaN when empty.
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// What to run and how big.
#[derive(Clone, Debug)]
pub struct SuiteOptions {
    pub url: String,
    pub directory: PathBuf,
    pub records: usize,
    pub batch: usize,
    pub rounds: usize,
    /// Records of the per-event baseline (a prefix of the same data: one
    /// autocommit per record is slow on a durable server).
    pub per_event_records: usize,
    /// History rows for the scaling row (0: skip it).
    pub history_rows: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("bench setup: {0}")]
    Setup(String),
}

async fn pipeline(url: &str, dir: &std::path::Path) -> Result<Pipeline, BenchError> {
    Ok(Pipeline {
        store: open_fresh(url, 2).await?,
        directory: LocalDirectory::load(dir)
            .map_err(|e| BenchError::Setup(e.to_string()))?
            .into(),
        default_tz: chrono_tz::Tz::UTC,
    })
}

/// Run `f` on a fresh scratch database of `opts.url`, dropping it after.
async fn on_scratch<T, F, Fut>(opts: &SuiteOptions, round: usize, f: F) -> Result<T, BenchError>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<T, BenchError>>,
{
    let (url, _tmp) = scratch_database(&opts.url, round).await?;
    let result = f(url).await;
    drop_scratch(&opts.url, round).await?;
    result
}

/// Rows 1 and 2: batch application vs a bulk INSERT of as many ledger rows,
/// and vs one autocommit upsert per record.
pub async fn apply_rows(opts: &SuiteOptions) -> Result<(Row, Row, Vec<f64>), BenchError> {
    let events = generate_events(opts.records, opts.batch, 7);
    let keys = per_event_keys(&events, opts.per_event_records);
    let (events, keys) = (&events, &keys);
    let mut vs_bulk = Vec::new();
    let mut vs_each = Vec::new();
    let mut apply_rates = Vec::new();
    let mut detail = Vec::new();
    for round in 0..opts.rounds.max(1) {
        let (a, b, e): (Run, Run, Run) = on_scratch(opts, round, |url| async move {
            let p = pipeline(&url, &opts.directory).await?;
            let a = apply_events(&p, events).await?;
            let b = baselines::bulk_insert_baseline(&p.store, opts.records, opts.batch).await?;
            let e = baselines::per_event_baseline(&p.store, keys).await?;
            Ok((a, b, e))
        })
        .await?;
        vs_bulk.push(a.rate() / b.rate());
        vs_each.push(a.rate() / e.rate());
        apply_rates.push(a.rate());
        detail.push(format!(
            "apply {:.0}/s ({:.0} % of it in SQL, {:.1} statements/batch), bulk {:.0}/s, per-event {:.0}/s",
            a.rate(),
            100.0 * a.db_time.as_secs_f64() / a.elapsed.as_secs_f64().max(1e-9),
            a.statements as f64 / a.batches.max(1) as f64,
            b.rate(),
            e.rate()
        ));
    }
    let mut bulk = Row {
        name: format!(
            "apply {} generated records (batches of {})",
            opts.records, opts.batch
        ),
        baseline: "multi-row bulk INSERT of as many ledger rows".into(),
        values: vs_bulk,
        goal: "≥ 0.45".into(),
        met: None,
        detail: detail.join("; "),
    };
    bulk.met = Some(bulk.median() >= 0.45);
    let mut each = Row {
        name: "same, vs the per-event pattern".into(),
        baseline: format!(
            "one autocommit upsert per record ({} records of the same data)",
            keys.len()
        ),
        values: vs_each,
        goal: "≥ 25×".into(),
        met: None,
        detail: bulk.detail.clone(),
    };
    each.met = Some(each.median() >= 25.0);
    Ok((bulk, each, apply_rates))
}

/// The per-event pattern's key of each record: actor, integration and UTC
/// bucket for activity; a fixed key for the rest (still one statement each).
fn per_event_keys(events: &[String], limit: usize) -> Vec<(String, String, i64, i64)> {
    let mut keys = Vec::new();
    'outer: for text in events {
        let Ok(records) = parse_event_records(text) else {
            continue;
        };
        for rec in &records {
            if keys.len() >= limit {
                break 'outer;
            }
            let key = match normalize(rec) {
                Normalized::Change(c) => match c.kind {
                    ChangeKind::Upsert {
                        fact: Fact::Activity(ev),
                        ..
                    } => {
                        let actor = match ev.actor {
                            Actor::External { id, .. } => id,
                            Actor::Acs(a) => a,
                        };
                        let b = bucket(ev.at, chrono_tz::Tz::UTC);
                        let actor: String = actor.chars().take(64).collect();
                        (
                            actor,
                            ev.integration.code().to_string(),
                            i64::from(b.dow),
                            i64::from(b.hour),
                        )
                    }
                    _ => ("-".to_string(), "X".to_string(), 0, 0),
                },
                _ => ("-".to_string(), "X".to_string(), 0, 0),
            };
            keys.push(key);
        }
    }
    keys
}

/// Row 3: apply rate with `history_rows` already in the ledger vs on an
/// empty ledger, same events, same round.
pub async fn scaling_row(opts: &SuiteOptions) -> Result<Row, BenchError> {
    let events = generate_events(opts.records, opts.batch, 7);
    let events = &events;
    let mut values = Vec::new();
    let mut detail = Vec::new();
    for round in 0..opts.rounds.max(1) {
        let empty = on_scratch(opts, 100 + round, |url| async move {
            let p = pipeline(&url, &opts.directory).await?;
            Ok(apply_events(&p, events).await?)
        })
        .await?;
        let full = on_scratch(opts, 200 + round, |url| async move {
            let p = pipeline(&url, &opts.directory).await?;
            baselines::prefill_ledger(&p.store, opts.history_rows).await?;
            Ok(apply_events(&p, events).await?)
        })
        .await?;
        values.push(full.rate() / empty.rate());
        detail.push(format!(
            "{:.0}/s with history, {:.0}/s empty",
            full.rate(),
            empty.rate()
        ));
    }
    let mut row = Row {
        name: format!(
            "apply with {} rows already in the ledger",
            opts.history_rows
        ),
        baseline: "the same batches on an empty ledger".into(),
        values,
        goal: "≥ 0.70".into(),
        met: None,
        detail: detail.join("; "),
    };
    row.met = Some(row.median() >= 0.7);
    Ok(row)
}

/// Row 4: SQL statements (round trips, BEGIN and COMMIT included) per batch
/// of 100, 1,000 and 10,000 records.
pub async fn round_trip_rows(opts: &SuiteOptions) -> Result<Vec<Row>, BenchError> {
    let in_process = opts.url.starts_with("sqlite");
    let mut rows = Vec::new();
    for (i, size) in [100usize, 1000, 10_000].into_iter().enumerate() {
        let events = generate_events(size * 3, size, 11);
        let events = &events;
        let run = on_scratch(opts, 300 + i, |url| async move {
            let p = pipeline(&url, &opts.directory).await?;
            Ok(apply_events(&p, events).await?)
        })
        .await?;
        let per_batch = run.statements as f64 / run.batches.max(1) as f64;
        rows.push(Row {
            name: format!("SQL round trips per batch of {size}"),
            baseline: "—".into(),
            values: vec![per_batch],
            // SQLite's statements are in-process calls, not round trips.
            goal: if in_process {
                "— (in-process)"
            } else {
                "≤ 6, constant"
            }
            .into(),
            met: (!in_process).then_some(per_batch <= 6.0),
            detail: format!("{} statements in {} batches", run.statements, run.batches),
        });
    }
    Ok(rows)
}

/// Row 5: parse + normalise alone, one core, vs reading the same bytes as
/// `serde_json::IgnoredAny` (the floor of reading that JSON at all). Ours
/// is the pipeline's one pass: the event's text straight to change
/// records (`parse_event_typed`), then `normalize_change`.
pub fn normalization_row(records: usize, rounds: usize) -> Row {
    let events = generate_events(records, 1000, 5);
    let bytes: usize = events.iter().map(String::len).sum();
    let mut values = Vec::new();
    let mut detail = Vec::new();
    // Both sides: ours counts the changes, the floor only reads.
    let ours_pass = || {
        let mut n = 0usize;
        for text in &events {
            let records = parse_event_typed(text).expect("generated records are well formed");
            for rec in &records {
                let out = match rec {
                    Ok(change) => normalize_change(change),
                    Err(u) => Normalized::Reject(u.reason.clone()),
                };
                n += usize::from(matches!(out, Normalized::Change(_)));
            }
        }
        std::hint::black_box(n);
    };
    let floor_pass = || {
        for text in &events {
            let v: serde::de::IgnoredAny = serde_json::from_str(text).expect("generated JSON");
            std::hint::black_box(v);
        }
    };
    // One untimed pass of each side first: the first touch of the
    // allocator's and the inputs' pages would otherwise land on one side.
    ours_pass();
    floor_pass();
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        ours_pass();
        let ours = records as f64 / started.elapsed().as_secs_f64();
        let started = Instant::now();
        floor_pass();
        let floor_secs = started.elapsed().as_secs_f64();
        let floor = records as f64 / floor_secs;
        values.push(ours / floor);
        detail.push(format!(
            "{ours:.0} records/s vs {floor:.0} records/s ({:.0} MB/s)",
            bytes as f64 / floor_secs / 1e6
        ));
    }
    let mut row = Row {
        name: format!("parse + normalise {records} records, one core"),
        baseline: "serde_json → IgnoredAny over the same bytes".into(),
        values,
        goal: "≥ 0.35".into(),
        met: None,
        detail: detail.join("; "),
    };
    row.met = Some(row.median() >= 0.35);
    row
}

/// The Lambda rows: the binary under a fake Runtime API (see
/// `bench::lambda`): init vs a hello-world of the same profile, the first
/// invocation after a cold start, peak RSS for one 10,000-record event,
/// and per-invocation overhead of 100-record batches without SQL time.
pub async fn lambda_rows(
    lambda_bin: &std::path::Path,
    hello_bin: &std::path::Path,
    directory: &std::path::Path,
    rounds: usize,
    big_event: usize,
) -> Result<Vec<Row>, BenchError> {
    use super::lambda::{
        fake_dynamodb, first_response_ms, invoke, lambda_env, lambda_env_deployed,
    };
    let io = |e: std::io::Error| BenchError::Setup(e.to_string());
    let dir = tempfile::tempdir().map_err(io)?;
    // A migrated database, so that init measures opening it, not creating it.
    let db = dir.path().join("lambda.db");
    open_fresh(&format!("sqlite://{}", db.display()), 1).await?;
    let init = init_row(
        "streamfold-lambda init (start → first GET next), local directory",
        lambda_bin,
        hello_bin,
        &lambda_env(&db, directory),
        rounds,
        3.0,
    )
    .await?;
    // As deployed: identities in DynamoDB and reports projected, so init
    // builds the SDK clients (no AWS call is made before the first event).
    let init_sdk = init_row(
        "streamfold-lambda init, production configuration (SDK clients)",
        lambda_bin,
        hello_bin,
        &lambda_env_deployed(&db, "http://127.0.0.1:9"),
        rounds,
        2.0,
    )
    .await?;

    // What a user waits for after a cold start: init and the first
    // 100-record batch, as deployed, with DynamoDB answered by a stand-in
    // on loopback; each round on a fresh copy of the migrated database.
    let dynamodb = fake_dynamodb().await.map_err(io)?;
    let first_event = super::generate_events(100, 100, 19).remove(0);
    let (mut ratios, mut ours_ms, mut hello_ms) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds.max(5) {
        let fresh = dir.path().join(format!("first-{round}.db"));
        std::fs::copy(&db, &fresh).map_err(io)?;
        let env = lambda_env_deployed(&fresh, &dynamodb);
        let o = first_response_ms(lambda_bin, &env, &first_event)
            .await
            .map_err(io)?;
        let h = first_response_ms(hello_bin, &[], &first_event)
            .await
            .map_err(io)?;
        ratios.push(o / h);
        ours_ms.push(o);
        hello_ms.push(h);
    }
    let first = Row {
        name: "first invocation after a cold start (start → first response, 100-record batch), \
               production configuration"
            .into(),
        baseline: "lambda_runtime hello-world, start → its first response".into(),
        values: ratios,
        goal: "report it".into(),
        met: None,
        detail: format!(
            "median {:.1} ms vs {:.1} ms",
            median(&ours_ms),
            median(&hello_ms)
        ),
    };

    let big_db = dir.path().join("big.db");
    let big = super::generate_events(big_event, big_event, 13);
    let run = invoke(lambda_bin, &lambda_env(&big_db, directory), &big)
        .await
        .map_err(io)?;
    if run.errors > 0 {
        return Err(BenchError::Setup(
            "the 10,000-record invocation failed".into(),
        ));
    }
    let mb = run.peak_rss_kb as f64 / 1024.0;
    let event_mb = big[0].len() as f64 / 1e6;
    let rss = Row {
        name: format!("peak RSS, one {big_event}-record event ({event_mb:.1} MB)"),
        baseline: "—".into(),
        values: vec![mb],
        goal: "< 64 MB".into(),
        met: Some(mb < 64.0),
        detail: format!("VmHWM {} kB", run.peak_rss_kb),
    };

    let small_db = dir.path().join("small.db");
    let small = super::generate_events(100 * 20, 100, 17);
    let run = invoke(lambda_bin, &lambda_env(&small_db, directory), &small)
        .await
        .map_err(io)?;
    let overhead = &run.overhead_ms;
    if overhead.is_empty() {
        return Err(BenchError::Setup("no EMF metrics from the function".into()));
    }
    let med = median(overhead);
    let min = overhead.iter().copied().fold(f64::INFINITY, f64::min);
    let per = Row {
        name: "per-invocation overhead, 100-record batch, without SQL time".into(),
        baseline: "—".into(),
        values: vec![med],
        goal: "report it".into(),
        met: None,
        detail: format!(
            "{} invocations: min {min:.2} ms, median {med:.2} ms (ms)",
            overhead.len()
        ),
    };
    Ok(vec![init, init_sdk, first, rss, per])
}

/// Init of `lambda_bin` with `env` vs the hello-world, in alternation; met
/// when the median ratio is at most `goal`.
async fn init_row(
    name: &str,
    lambda_bin: &std::path::Path,
    hello_bin: &std::path::Path,
    env: &[(&str, String)],
    rounds: usize,
    goal: f64,
) -> Result<Row, BenchError> {
    use super::lambda::init_ms;
    let io = |e: std::io::Error| BenchError::Setup(e.to_string());
    let mut ratios = Vec::new();
    let (mut ours_ms, mut hello_ms) = (Vec::new(), Vec::new());
    for _ in 0..rounds.max(5) {
        let o = init_ms(lambda_bin, env).await.map_err(io)?;
        let h = init_ms(hello_bin, &[]).await.map_err(io)?;
        ratios.push(o / h);
        ours_ms.push(o);
        hello_ms.push(h);
    }
    let mut row = Row {
        name: name.into(),
        baseline: "lambda_runtime hello-world, same profile, same harness".into(),
        values: ratios,
        goal: format!("≤ {goal}×"),
        met: None,
        detail: format!(
            "median {:.1} ms vs {:.1} ms",
            median(&ours_ms),
            median(&hello_ms)
        ),
    };
    row.met = Some(row.median() <= goal);
    Ok(row)
}
