//! Assembling what a command runs on, once: its `Config` (from the
//! common options), the store and the pipeline with the directory the
//! command asked for.

use crate::cli::Lookups;
use anyhow::Result;
use streamfold::config::Config;
use streamfold::pipeline::Pipeline;
use streamfold::resolve::AnyDirectory;
use streamfold::resolve::dynamo::DynamoDirectory;
use streamfold::resolve::local::LocalDirectory;
use streamfold::store::Store;

/// Every store a command opened, closed by `close_all` at exit.
static OPENED: std::sync::Mutex<Vec<Store>> = std::sync::Mutex::new(Vec::new());

fn opened(store: &Store) {
    OPENED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(store.clone());
}

/// The command's store, opened (and on SQLite created and migrated).
pub async fn store(cfg: &Config) -> Result<Store> {
    let store = Store::open_with(&cfg.database_url, &cfg.store).await?;
    opened(&store);
    Ok(store)
}

/// The command's store, connected without the schema check (`migrate`).
pub async fn connect(cfg: &Config) -> Result<Store> {
    let store = Store::connect(&cfg.database_url, &cfg.store).await?;
    opened(&store);
    Ok(store)
}

/// Close every store the command opened, whether it succeeded or not: on
/// SQLite this checkpoints the write-ahead log into the database file, so
/// that copying `streamfold.db` alone copies the data.
pub async fn close_all() {
    let stores = std::mem::take(&mut *OPENED.lock().unwrap_or_else(|e| e.into_inner()));
    for store in stores {
        store.close().await;
    }
}

/// A store to apply records to: says, when the ledger was compacted, what
/// that means for the records this command brings.
async fn applying_store(cfg: &Config) -> Result<Store> {
    let store = store(cfg).await?;
    if let Some(h) = store.compaction_horizon().await? {
        let at = crate::print::epoch_text(h);
        eprintln!(
            "note: the ledger was compacted up to {at}: a record of an event before that \
             whose ledger row is gone is skipped (it may have been counted before), never \
             counted twice"
        );
    }
    Ok(store)
}

/// The pipeline of a local command: the store and the local directory.
pub async fn open(cfg: &Config) -> Result<Pipeline> {
    let store = applying_store(cfg).await?;
    Ok(Pipeline {
        store,
        directory: local_directory(cfg)?.into(),
        default_tz: cfg.default_tz,
    })
}

/// The local directory of `--directory`, with a note when it is empty.
fn local_directory(cfg: &Config) -> Result<LocalDirectory> {
    let directory = LocalDirectory::load(&cfg.directory)?;
    if directory.is_empty() {
        eprintln!(
            "note: the directory {} holds no identity items: every GitHub, Dropbox and LLM actor stays unattributed (`streamfold reattribute` counts them once linked)",
            cfg.directory.display()
        );
    }
    Ok(directory)
}

/// The directory `lookups` names, on its own (for `stats`'s time zones).
pub async fn directory(lookups: Lookups, cfg: &Config) -> Result<AnyDirectory> {
    Ok(match lookups {
        Lookups::Local => local_directory(cfg)?.into(),
        Lookups::Dynamodb => {
            let aws = streamfold::aws_http::load_sdk_config().await;
            dynamo_directory(&aws)?.into()
        }
    })
}

/// A pipeline that resolves identities as `lookups` says: the local
/// directory, or the DynamoDB tables.
pub async fn pipeline_for(
    lookups: Lookups,
    cfg: &Config,
    aws: &aws_config::SdkConfig,
) -> Result<Pipeline> {
    match lookups {
        Lookups::Local => open(cfg).await,
        Lookups::Dynamodb => {
            let store = applying_store(cfg).await?;
            dynamo_pipeline(store, cfg, aws)
        }
    }
}

/// A pipeline resolving identities in the DynamoDB tables named by
/// ICARUS_TABLE_PREFIX / ACS_TABLE_PREFIX (and TABLE_* overrides).
fn dynamo_pipeline(store: Store, cfg: &Config, aws: &aws_config::SdkConfig) -> Result<Pipeline> {
    Ok(Pipeline {
        store,
        directory: dynamo_directory(aws)?.into(),
        default_tz: cfg.default_tz,
    })
}

fn dynamo_directory(aws: &aws_config::SdkConfig) -> Result<DynamoDirectory> {
    let lookups = streamfold::config::LookupSettings::from_env(|k| std::env::var(k).ok())?;
    Ok(DynamoDirectory::new(
        aws_sdk_dynamodb::Client::new(aws),
        lookups.tables,
        lookups.cache,
    ))
}
