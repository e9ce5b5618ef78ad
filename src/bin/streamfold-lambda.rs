//! `streamfold-lambda`: the AWS Lambda DynamoDB stream trigger. Everything
//! is built once at init (configuration, SDK clients, database pool,
//! lookup cache; the init log line times each part) and reused by every
//! invocation; each invocation is one `run_batch` through
//! `sources::lambda::handle`.

use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use std::time::Instant;
use streamfold::config::LambdaConfig;
use streamfold::metrics::{BatchTiming, emf_documents};
use streamfold::pipeline::Pipeline;
use streamfold::record::lambda_event::OwnedRawEvent;
use streamfold::report::publish::ReportPublisher;
use streamfold::resolve::dynamo::DynamoDirectory;
use streamfold::resolve::local::LocalDirectory;
use streamfold::sources::backfill::{BackfillError, error_names, store_error_name};
use streamfold::sources::lambda::Invocation;
use streamfold::sources::lambda::handle;
use streamfold::sources::scheduled::ScheduledError;
use streamfold::store::Store;

#[tokio::main]
async fn main() -> Result<(), Error> {
    streamfold::store::connect::install_crypto_provider();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(streamfold::logging::filter("info"))
        .with_current_span(true)
        .without_time()
        .init();
    let started = Instant::now();
    let cfg = LambdaConfig::from_env(|k| std::env::var(k).ok())?;
    // For local runs and benchmarks only: identities from a folder of
    // DynamoDB-JSON items instead of DynamoDB, and no report projection.
    let local_directory = std::env::var("STREAMFOLD_LOCAL_DIRECTORY").ok();
    // The SDK configuration is loaded only when an SDK client is needed.
    // Its HTTPS client trusts the compiled-in roots (`aws_http`): parsing
    // the system's trust store was half of this binary's init
    // (BENCHMARKS.md, Lambda rows).
    let mut aws = None;
    let url = match (&cfg.database_secret_arn, &cfg.database_url) {
        (Some(arn), _) => {
            let client = aws_sdk_secretsmanager::Client::new(&sdk_config(&mut aws).await);
            streamfold::store::secret::database_url_from_secret(&client, arn, None).await?
        }
        (None, Some(url)) => url.clone(),
        (None, None) => unreachable!("LambdaConfig requires one of them"),
    };
    let secret_us = started.elapsed().as_micros() as u64;
    let store = Store::open_with(&url, &cfg.store).await?;
    let store_us = started.elapsed().as_micros() as u64 - secret_us;
    if let Some(dir) = local_directory {
        let pipeline = Pipeline {
            store,
            directory: LocalDirectory::load(std::path::Path::new(&dir))?.into(),
            default_tz: cfg.default_tz,
        };
        tracing::info!(
            init_us = started.elapsed().as_micros() as u64,
            store_us,
            directory = %dir,
            "streamfold-lambda initialised with a local directory"
        );
        return serve(&pipeline, None).await;
    }
    let before_sdk = started.elapsed().as_micros() as u64;
    let aws = sdk_config(&mut aws).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let sdk_us = started.elapsed().as_micros() as u64 - before_sdk;
    let directory = DynamoDirectory::new(dynamodb.clone(), cfg.tables.clone(), cfg.cache);
    let pipeline = Pipeline {
        store,
        directory: directory.into(),
        default_tz: cfg.default_tz,
    };
    let publisher = ReportPublisher::new(dynamodb, cfg.tables.llm_reports.clone());
    tracing::info!(
        init_us = started.elapsed().as_micros() as u64,
        store_us,
        sdk_us,
        "streamfold-lambda initialised"
    );
    serve(&pipeline, Some(&publisher)).await
}

/// The AWS SDK configuration, loaded on first use.
async fn sdk_config(cache: &mut Option<aws_config::SdkConfig>) -> aws_config::SdkConfig {
    match cache {
        Some(c) => c.clone(),
        None => {
            let c = streamfold::aws_http::load_sdk_config().await;
            *cache = Some(c.clone());
            c
        }
    }
}

/// A failure with its stable name (`error_names`), the `errorType` that
/// Step Functions' Retry and Catch match (infra/README, "Errors").
fn named(name: &str, message: impl std::fmt::Display) -> Diagnostic {
    Diagnostic {
        error_type: name.to_string(),
        error_message: message.to_string(),
    }
}

fn backfill_failure(e: BackfillError) -> Diagnostic {
    tracing::error!(error_type = e.error_name(), error = %e, "backfill task failed");
    named(e.error_name(), e)
}

fn scheduled_failure(e: ScheduledError) -> Diagnostic {
    let name = match &e {
        ScheduledError::Store(s) => store_error_name(s),
        ScheduledError::Empty | ScheduledError::TooRecent(_) => error_names::INVALID_TASK,
    };
    named(name, e)
}

/// A `{"streamfold": …}` invocation: exactly one task.
async fn run_task(
    p: &Pipeline,
    aws: &tokio::sync::OnceCell<aws_config::SdkConfig>,
    task: &streamfold::sources::scheduled::ScheduledTask,
    deadline: Instant,
) -> Result<serde_json::Value, Diagnostic> {
    use streamfold::sources::backfill_task::{run_export_file, run_export_plan, run_scan_segment};
    let set = [
        task.compact.is_some(),
        task.export_plan.is_some(),
        task.export_file.is_some(),
        task.scan_segment.is_some(),
    ];
    if set.iter().filter(|s| **s).count() > 1 {
        return Err(named(
            error_names::INVALID_TASK,
            "a {\"streamfold\": …} invocation names one task: compact, export_plan, export_file or scan_segment",
        ));
    }
    let json = |v: Result<serde_json::Value, serde_json::Error>| {
        v.map_err(|e| named(error_names::INVALID_TASK, e))
    };
    // SDK clients for backfill work are built on its first invocation, so
    // that stream batches do not pay for them at init.
    let config = || aws.get_or_init(streamfold::aws_http::load_sdk_config);
    if let Some(plan) = &task.export_plan {
        let s3 = streamfold::sources::export::s3_client(config().await);
        let plan = run_export_plan(p, Some(&s3), plan)
            .await
            .map_err(backfill_failure)?;
        return json(serde_json::to_value(plan));
    }
    if let Some(file) = &task.export_file {
        let s3 = streamfold::sources::export::s3_client(config().await);
        let outcome = run_export_file(p, Some(&s3), file, deadline)
            .await
            .map_err(backfill_failure)?;
        return json(serde_json::to_value(outcome)).map(|a| with_metrics("export_file", a));
    }
    if let Some(segment) = &task.scan_segment {
        let dynamodb = aws_sdk_dynamodb::Client::new(config().await);
        let outcome = run_scan_segment(p, &dynamodb, segment, deadline)
            .await
            .map_err(backfill_failure)?;
        return json(serde_json::to_value(outcome)).map(|a| with_metrics("scan_segment", a));
    }
    let report = streamfold::sources::scheduled::run(&p.store, task, deadline)
        .await
        .map_err(scheduled_failure)?;
    json(serde_json::to_value(report))
}

/// How long a task works when the runtime's deadline is unusable.
const UNUSABLE_DEADLINE_BUDGET_MS: u64 = 30_000;

/// A backfill task's answer, after printing its progress as EMF
/// (`BackfillItemsRead`, `BackfillItemsApplied`).
fn with_metrics(task: &str, answer: serde_json::Value) -> serde_json::Value {
    println!(
        "{}",
        streamfold::metrics::backfill_document(task, &answer, chrono::Utc::now())
    );
    answer
}

/// The invocation loop: each event through `handle`, then its EMF metrics
/// (with the directory's lookup cache counters).
async fn serve(p: &Pipeline, publisher: Option<&ReportPublisher>) -> Result<(), Error> {
    let aws = &tokio::sync::OnceCell::new();
    let cache = |d: &streamfold::resolve::AnyDirectory| d.cache_counts();
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Invocation>| async move {
            let (payload, context) = (event.payload, event.context);
            if let Some(task) = payload.streamfold {
                // A scheduled task (EventBridge) or a backfill work item
                // (a Step Functions Distributed Map child), not a stream batch.
                let left = context
                    .deadline
                    .saturating_sub(chrono::Utc::now().timestamp_millis().max(0) as u64);
                // A runtime whose deadline has already passed (cargo lambda's
                // local runtime sends one) would have every task stop
                // before its first line: work a bounded while instead.
                let left = if left == 0 {
                    tracing::warn!(
                        deadline_ms = context.deadline,
                        "the runtime's deadline is already past: working at most {} ms",
                        UNUSABLE_DEADLINE_BUDGET_MS
                    );
                    UNUSABLE_DEADLINE_BUDGET_MS
                } else {
                    left
                };
                let deadline = Instant::now() + std::time::Duration::from_millis(left);
                tracing::info!(time_left_ms = left, "task invocation");
                return run_task(p, aws, &task, deadline).await;
            }
            let Some(records) = payload.records else {
                return Err(named(
                    error_names::INVALID_TASK,
                    "the event is neither a stream batch ({\"Records\": [...]}) nor a \
                     scheduled task ({\"streamfold\": {...}})",
                ));
            };
            let batch = OwnedRawEvent { records };
            let started = Instant::now();
            let (hits_before, misses_before) = cache(&p.directory);
            let (response, report) = handle(p, publisher, &batch)
                .await
                .map_err(|e| named(error_names::TRANSIENT, e))?;
            if let Some(r) = report {
                let (hits, misses) = cache(&p.directory);
                let timing = BatchTiming {
                    latency: started.elapsed(),
                    cache_hits: hits - hits_before,
                    cache_misses: misses - misses_before,
                };
                // EMF: one JSON document per line on stdout.
                for doc in emf_documents(&r, &timing, chrono::Utc::now()) {
                    println!("{doc}");
                }
            }
            serde_json::to_value(response).map_err(|e| named(error_names::TRANSIENT, e))
        },
    ))
    .await
}
