//! `streamfold-lambda`: the AWS Lambda DynamoDB stream trigger. Everything
//! is built once at init (configuration, SDK clients, database pool,
//! lookup cache) and reused by every invocation; each invocation is one
//! `run_batch` through `sources::lambda::handle`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use std::time::Instant;
use streamfold::config::LambdaConfig;
use streamfold::metrics::{BatchTiming, emf_documents};
use streamfold::pipeline::Pipeline;
use streamfold::report::publish::ReportPublisher;
use streamfold::resolve::Directory;
use streamfold::resolve::dynamo::DynamoDirectory;
use streamfold::resolve::local::LocalDirectory;
use streamfold::sources::lambda::handle;
use streamfold::sources::lambda_event::OwnedRawEvent;
use streamfold::store::Store;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STREAMFOLD_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_current_span(true)
        .without_time()
        .init();
    let started = Instant::now();
    let cfg = LambdaConfig::from_env(|k| std::env::var(k).ok())?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let url = match (&cfg.database_secret_arn, &cfg.database_url) {
        (Some(arn), _) => {
            let client = aws_sdk_secretsmanager::Client::new(&aws);
            streamfold::store::secret::database_url_from_secret(&client, arn, None).await?
        }
        (None, Some(url)) => url.clone(),
        (None, None) => unreachable!("LambdaConfig requires one of them"),
    };
    let store = Store::open_with(&url, &cfg.store).await?;
    // For local runs and benchmarks only: identities from a folder of
    // DynamoDB-JSON items instead of DynamoDB, and no report projection.
    if let Ok(dir) = std::env::var("STREAMFOLD_LOCAL_DIRECTORY") {
        let pipeline = Pipeline {
            store,
            directory: LocalDirectory::load(std::path::Path::new(&dir))?,
            default_tz: cfg.default_tz,
            publisher: None,
        };
        tracing::info!(
            init_ms = started.elapsed().as_millis() as u64,
            directory = %dir,
            "streamfold-lambda initialised with a local directory"
        );
        return serve(&pipeline, |_| (0, 0)).await;
    }
    let directory = DynamoDirectory::new(
        aws_sdk_dynamodb::Client::new(&aws),
        cfg.tables.clone(),
        cfg.cache,
    );
    let pipeline = Pipeline {
        store,
        directory,
        default_tz: cfg.default_tz,
        publisher: Some(ReportPublisher::new(
            aws_sdk_dynamodb::Client::new(&aws),
            cfg.tables.llm_reports.clone(),
        )),
    };
    tracing::info!(
        init_ms = started.elapsed().as_millis() as u64,
        "streamfold-lambda initialised"
    );
    serve(&pipeline, |d| {
        let s = d.cache_stats();
        (s.hits, s.misses)
    })
    .await
}

/// The invocation loop: each event through `handle`, then its EMF metrics
/// (`cache` reads the directory's lookup cache counters).
async fn serve<D: Directory>(
    p: &Pipeline<D>,
    cache: impl Fn(&D) -> (u64, u64),
) -> Result<(), Error> {
    let cache = &cache;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<OwnedRawEvent>| async move {
            let started = Instant::now();
            let (hits_before, misses_before) = cache(&p.directory);
            let (response, report) = handle(p, &event.payload).await?;
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
            Ok::<_, Error>(response)
        },
    ))
    .await
}
