//! Backfill from a DynamoDB export to S3 in `DYNAMODB_JSON` format, read
//! from a local folder or from `s3://bucket/prefix`: the `--s3-prefix` the
//! export was taken with, its `AWSDynamoDB` folder, or one export's folder
//! (`locate` chooses and says which).
//!
//! `manifest-summary.json` names `manifest-files.json`, whose lines name the
//! gzip data files (`dataFileS3Key`) and their `itemCount`. Each data line is
//! `{"Item": {...}}`. Files are processed concurrently, each streamed
//! (gunzip → lines → batches of lines, each read into a `StreamChange` →
//! `run_read`), so memory
//! stays bounded by `parallel` batches of at most `batch` records and
//! `MAX_BATCH_BYTES` whatever the export's size. Lines are read within
//! caps (`lines`: one line, a file's inflated size for its `itemCount`,
//! blank lines); a file past one is refused by name while the export's
//! other files go on, and the run then fails listing what it refused. A
//! line that cannot be a record is quarantined (`file:line`, reason) with
//! its batch. Data file keys are confined to the export (`keys`).
//! Every file's item count is checked against the manifest, and the total
//! against the summary, and its bytes against the manifest's `md5Checksum`,
//! in a first pass over the file before any of its lines is applied
//! (`verify`); a completed file is checkpointed, so `--resume` skips it.

mod keys;
mod lines;
mod locate;
mod objects;
mod verify;

pub use lines::{FILE_SLACK_BYTES, MAX_LINE_BYTES, max_inflated};
pub use locate::ExportChoice;

use super::backfill::{BackfillError, BackfillSummary, LineTexts, Observer, apply_read};
use crate::domain::SourceKind;
use crate::pipeline::{Batch, Pipeline};
use crate::record::backfill_text::WindowText;
use crate::record::change::StreamChange;
use crate::record::incremental::{Window, incremental_change};
use crate::record::snapshot::export_line_change;
use crate::store::RejectedRecord;
use crate::store::checkpoints::Checkpoint;
use async_compression::tokio::bufread::GzipDecoder;
use futures::StreamExt;
use lines::{BoundedLines, Limits, LineError};
use objects::{Md5Check, Objects};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tokio::io::BufReader;

/// Where an export is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportLocation {
    /// A local copy of the export's folder.
    Dir(PathBuf),
    /// `s3://bucket/prefix`: the export's folder in S3.
    S3 { bucket: String, prefix: String },
}

impl ExportLocation {
    /// `s3://bucket/prefix` or a local path.
    pub fn parse(text: &str) -> Result<ExportLocation, String> {
        match text.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(format!("{text:?} names no bucket"));
                }
                Ok(ExportLocation::S3 {
                    bucket: bucket.to_string(),
                    prefix: prefix.trim_end_matches('/').to_string(),
                })
            }
            None => Ok(ExportLocation::Dir(PathBuf::from(text))),
        }
    }

    fn describe(&self) -> String {
        match self {
            ExportLocation::Dir(d) => d.display().to_string(),
            ExportLocation::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }

    /// The location's last path part.
    fn last_name(&self) -> Option<&str> {
        match self {
            ExportLocation::Dir(d) => d.file_name()?.to_str(),
            ExportLocation::S3 { prefix, .. } => prefix.rsplit('/').next(),
        }
    }

    /// The folder `name` inside this one.
    fn join(&self, name: &str) -> ExportLocation {
        match self {
            ExportLocation::Dir(d) => ExportLocation::Dir(d.join(name)),
            ExportLocation::S3 { bucket, prefix } if prefix.is_empty() => ExportLocation::S3 {
                bucket: bucket.clone(),
                prefix: name.to_string(),
            },
            ExportLocation::S3 { bucket, prefix } => ExportLocation::S3 {
                bucket: bucket.clone(),
                prefix: format!("{prefix}/{name}"),
            },
        }
    }
}

/// An S3 client for reading exports. With a custom endpoint
/// (`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`: an emulator such as moto
/// or MinIO, or a proxy), objects are addressed by path
/// (`endpoint/bucket/key`), which those expect; AWS's own endpoints keep
/// virtual-hosted addressing.
pub fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let custom = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|u| !u.is_empty()));
    let conf = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(custom)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// The export, or the prefix holding it.
    pub location: ExportLocation,
    /// Which export when the location holds several.
    pub choice: ExportChoice,
    /// The source table the export was taken from (its name routes the
    /// items to their normaliser).
    pub table: String,
    /// Data files processed at once.
    pub parallel: usize,
    /// Items per batch (one transaction each).
    pub batch: usize,
    pub resume: bool,
    /// Read incremental exports (their windows, in order) instead of a
    /// full one.
    pub incremental: Option<IncrementalOptions>,
}

/// How incremental exports are read.
#[derive(Clone, Debug, Default)]
pub struct IncrementalOptions {
    /// The table's TTL attribute: a delete of an item whose TTL had passed
    /// is a TTL expiry, which leaves the item counted (`record::incremental`).
    pub ttl_attribute: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestFile {
    data_file_s3_key: String,
    item_count: u64,
    /// Base64 MD5 of the gzip object; absent in hand-made manifests.
    md5_checksum: Option<String>,
}

/// The checkpoint job of an export backfill.
pub fn job_name(table: &str, export: &str) -> String {
    crate::bounds::key(
        &format!("export:{table}:{export}"),
        crate::bounds::CHECKPOINT_JOB,
    )
}

/// The checkpoint part of an export data file (its S3 key, fitted to the
/// column).
pub fn part_name(data_file_key: &str) -> String {
    crate::bounds::key(data_file_key, crate::bounds::CHECKPOINT_PART)
}

/// Backfill `opts.table` from the export at `opts.location` through `p`:
/// the full export chosen there, or (`opts.incremental`) every incremental
/// export of the table there, oldest window first.
pub async fn export_backfill(
    p: &Pipeline,
    s3: Option<&aws_sdk_s3::Client>,
    opts: &ExportOptions,
    observer: &dyn Observer,
    stop: &AtomicBool,
) -> Result<BackfillSummary, BackfillError> {
    let started = Instant::now();
    let source = SourceKind::from_table_name(&opts.table).ok_or_else(|| BackfillError::Table {
        table: opts.table.clone(),
        reason: crate::normalize::not_a_source_table(),
    })?;
    let exports = match &opts.incremental {
        None => vec![locate::locate(&opts.location, s3, &opts.table, &opts.choice).await?],
        Some(_) => locate::locate_incremental(&opts.location, s3, &opts.table).await?,
    };
    let mut out = BackfillSummary::default();
    for chosen in exports {
        observer.note(&chosen.why);
        match backfill_export(p, s3, opts, source, chosen, observer, stop).await {
            Ok(s) => out.merge(s),
            // Later windows wait until this one is whole.
            Err(BackfillError::FilesRefused { summary, refused }) => {
                out.merge(*summary);
                out.elapsed = started.elapsed();
                return Err(BackfillError::FilesRefused {
                    summary: Box::new(out),
                    refused,
                });
            }
            Err(e) => return Err(e),
        }
    }
    out.elapsed = started.elapsed();
    Ok(out)
}

/// A batch is applied at `--batch` items or at this many bytes of records
/// (64 MiB), whichever comes first, so that long lines (up to
/// `lines::MAX_LINE_BYTES` each) cannot pile up a batch of gigabytes.
pub const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// What a data line becomes.
enum LineFormat {
    /// `{"Item": …}`: a snapshot, keyed by the table's key attributes.
    Snapshot { key_names: Vec<String> },
    /// An incremental-export line of the window [`start_secs`, `end_secs`).
    Incremental { start_secs: i64, end_secs: i64 },
}

/// One export, ready to read: how its lines become records, its objects
/// and its checkpoint job.
struct Prepared<'s> {
    format: LineFormat,
    reader: Objects<'s>,
    job: String,
    summary: locate::Summary,
    /// The export's own folder key (`…/AWSDynamoDB/<export id>`), under
    /// whose `data/` every data file must lie (`keys`).
    folder_key: String,
    /// The file name of `manifest-files.json`.
    manifest_name: String,
}

fn prepare<'s>(
    opts: &ExportOptions,
    source: SourceKind,
    chosen: locate::Chosen,
    s3: Option<&'s aws_sdk_s3::Client>,
    observer: &dyn Observer,
) -> Result<Prepared<'s>, BackfillError> {
    let summary = chosen.summary;
    let format = match &opts.incremental {
        None => LineFormat::Snapshot {
            key_names: source
                .table()
                .key_attributes
                .iter()
                .map(|s| s.to_string())
                .collect(),
        },
        Some(inc) => {
            let (start_secs, end_secs) = summary.window().ok_or_else(|| {
                BackfillError::Inconsistent("an incremental export without its window".into())
            })?;
            if summary.output_view.as_deref() == Some("NEW_IMAGE") {
                observer.note(&format!(
                    "this export has new images only: its deletes are applied as \
                     application deletes{} and LLM deletes are quarantined (they \
                     need the old image); export with NEW_AND_OLD_IMAGES",
                    if inc.ttl_attribute.is_some() {
                        ", TTL expiries among them too,"
                    } else {
                        ""
                    }
                ));
            }
            LineFormat::Incremental {
                start_secs,
                end_secs,
            }
        }
    };
    if let Some(format) = &summary.output_format
        && format != "DYNAMODB_JSON"
    {
        return Err(BackfillError::Inconsistent(format!(
            "output format {format}; only DYNAMODB_JSON exports are read"
        )));
    }
    let reader = Objects {
        location: chosen.folder,
        s3,
    };
    let (folder_key, manifest_name) =
        keys::export_folder(&summary.manifest_files_s3_key, summary.id()).map_err(|reason| {
            BackfillError::KeyRefused {
                at: format!("{}/manifest-summary.json", reader.location.describe()),
                key: summary.manifest_files_s3_key.clone(),
                reason,
            }
        })?;
    let (folder_key, manifest_name) = (folder_key.to_string(), manifest_name.to_string());
    let job = job_name(
        &opts.table,
        summary
            .export_arn
            .as_deref()
            .unwrap_or(&reader.location.describe()),
    );
    Ok(Prepared {
        format,
        reader,
        job,
        summary,
        folder_key,
        manifest_name,
    })
}

/// Backfill one export.
async fn backfill_export(
    p: &Pipeline,
    s3: Option<&aws_sdk_s3::Client>,
    opts: &ExportOptions,
    source: SourceKind,
    chosen: locate::Chosen,
    observer: &dyn Observer,
    stop: &AtomicBool,
) -> Result<BackfillSummary, BackfillError> {
    let Prepared {
        format,
        reader,
        job,
        summary,
        folder_key,
        manifest_name,
    } = prepare(opts, source, chosen, s3, observer)?;
    let files_text = reader.read_text(&manifest_name).await?;
    let mut files = Vec::new();
    for (i, line) in files_text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: ManifestFile = serde_json::from_str(line)
            .map_err(|e| BackfillError::Inconsistent(format!("{manifest_name}:{}: {e}", i + 1)))?;
        // Every key is checked before any data file is opened.
        checked_name(&f, &folder_key, || {
            format!("{}/{manifest_name}:{}", reader.location.describe(), i + 1)
        })?;
        files.push(f);
    }
    let listed: u64 = files.iter().map(|f| f.item_count).sum();
    if let Some(total) = summary.item_count
        && total != listed
    {
        return Err(BackfillError::Inconsistent(format!(
            "manifest-summary.json says {total} items, manifest-files.json lists {listed}"
        )));
    }
    // With --resume, each file goes on from its checkpoint: skipped when
    // done, from the line after its last committed batch otherwise.
    let progress: HashMap<String, Checkpoint> = if opts.resume {
        p.store
            .checkpoints(&job)
            .await?
            .into_iter()
            .map(|c| (c.part.clone(), c))
            .collect()
    } else {
        p.store.clear_checkpoints(&job).await?;
        HashMap::new()
    };
    // Until every file is done, compaction is refused (`Store::compact`).
    p.store.begin_backfill(&job).await?;
    let ctx = FileContext {
        p,
        reader: &reader,
        opts,
        observer,
        stop,
        job: &job,
        format: &format,
        folder_key: &folder_key,
    };
    let mut out = BackfillSummary::default();
    let mut first_err = None;
    let mut refused = Vec::new();
    let mut results = futures::stream::iter(files.iter().map(|f| {
        let checkpoint = progress.get(&part_name(&f.data_file_s3_key));
        let ctx = &ctx;
        async move {
            if checkpoint.is_some_and(|c| c.done) {
                return Ok(BackfillSummary {
                    parts_skipped: 1,
                    ..BackfillSummary::default()
                });
            }
            backfill_file(ctx, f, From::from(checkpoint), None, None)
                .await
                .map(|(summary, _)| summary)
        }
    }))
    .buffer_unordered(opts.parallel.max(1));
    while let Some(r) = results.next().await {
        match r {
            Ok(s) => out.merge(s),
            // A file a cap refused fails alone: the others go on.
            Err(e @ BackfillError::Refused { .. }) => {
                observer.note(&e.to_string());
                refused.push(e.to_string());
            }
            Err(e) => {
                stop_on_error(stop);
                first_err.get_or_insert(e);
            }
        }
    }
    if first_err.is_none() {
        mark_finished_if_done(p, &job, &files).await?;
    }
    match first_err {
        Some(e) => Err(e),
        None if refused.is_empty() => Ok(out),
        None => Err(BackfillError::FilesRefused {
            summary: Box::new(out),
            refused,
        }),
    }
}

/// Mark the job finished when every one of its files is checkpointed done
/// (not when a stop cut it short).
async fn mark_finished_if_done(
    p: &Pipeline,
    job: &str,
    files: &[ManifestFile],
) -> Result<(), BackfillError> {
    let done: std::collections::HashSet<String> = p
        .store
        .checkpoints(job)
        .await?
        .into_iter()
        .filter(|c| c.done)
        .map(|c| c.part)
        .collect();
    if files
        .iter()
        .all(|f| done.contains(&part_name(&f.data_file_s3_key)))
    {
        p.store.finish_backfill(job).await?;
    }
    Ok(())
}

/// Where a data file's reading starts.
#[derive(Clone, Copy, Debug)]
struct Resume {
    /// The line its checkpoint says was applied last (0: none).
    after: u64,
    /// An earlier run checked the file whole (`verify`) before it applied
    /// anything: a file has a checkpoint only once it passed.
    verified: bool,
}

impl From<Option<&Checkpoint>> for Resume {
    fn from(checkpoint: Option<&Checkpoint>) -> Resume {
        Resume {
            after: checkpoint
                .and_then(|c| c.position.as_deref())
                .and_then(|p| p.strip_prefix("line:"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            verified: checkpoint.is_some(),
        }
    }
}

/// One data file of an export, the work of one Step Functions Distributed
/// Map child (`sources::backfill_task`).
#[derive(Clone, Debug)]
pub struct FileJob {
    /// The export's folder (where its `manifest-summary.json` is).
    pub export: ExportLocation,
    pub table: String,
    /// The file's line of `manifest-files.json`, as the Map read it.
    pub file: serde_json::Value,
    pub incremental: Option<IncrementalOptions>,
    /// Items per batch (one transaction each).
    pub batch: usize,
    /// Stop, resumably, after this many batches (tests of resuming).
    pub max_batches: Option<u64>,
}

/// What a file job did.
#[derive(Debug, Default)]
pub struct FileOutcome {
    /// The file is applied whole (now, or by an earlier run).
    pub done: bool,
    /// An earlier run had finished it: nothing was read.
    pub already_done: bool,
    pub summary: BackfillSummary,
}

/// Apply one data file of an export through `p`, going on from its
/// checkpoint (a finished file is skipped; a started one continues after
/// its last committed batch) and stopping, resumably, once `deadline` has
/// passed. The checkpoints are those of `streamfold backfill --export`, so
/// either can finish what the other started.
pub async fn export_file_backfill(
    p: &Pipeline,
    s3: Option<&aws_sdk_s3::Client>,
    job: &FileJob,
    deadline: Option<Instant>,
) -> Result<FileOutcome, BackfillError> {
    let started = Instant::now();
    let source = SourceKind::from_table_name(&job.table).ok_or_else(|| BackfillError::Table {
        table: job.table.clone(),
        reason: crate::normalize::not_a_source_table(),
    })?;
    let file: ManifestFile = serde_json::from_value(job.file.clone()).map_err(|e| {
        BackfillError::Inconsistent(format!(
            "the file is not a line of manifest-files.json (dataFileS3Key, itemCount): {e}"
        ))
    })?;
    let opts = ExportOptions {
        location: job.export.clone(),
        choice: ExportChoice::Only,
        table: job.table.clone(),
        parallel: 1,
        batch: job.batch,
        resume: true,
        incremental: job.incremental.clone(),
    };
    let quiet = super::backfill::Quiet;
    let chosen = match &opts.incremental {
        None => locate::locate(&opts.location, s3, &opts.table, &opts.choice).await?,
        Some(_) => {
            let mut all = locate::locate_incremental(&opts.location, s3, &opts.table).await?;
            if all.len() != 1 {
                return Err(BackfillError::Inconsistent(format!(
                    "{} holds {} incremental exports: name one export's folder",
                    opts.location.describe(),
                    all.len()
                )));
            }
            all.remove(0)
        }
    };
    let prepared = prepare(&opts, source, chosen, s3, &quiet)?;
    checked_name(&file, &prepared.folder_key, || {
        "the task's file (its line of manifest-files.json)".to_string()
    })?;
    let part = part_name(&file.data_file_s3_key);
    let checkpoint = p
        .store
        .checkpoints(&prepared.job)
        .await?
        .into_iter()
        .find(|c| c.part == part);
    if checkpoint.as_ref().is_some_and(|c| c.done) {
        return Ok(FileOutcome {
            done: true,
            already_done: true,
            summary: BackfillSummary {
                parts_skipped: 1,
                ..BackfillSummary::default()
            },
        });
    }
    let stop = AtomicBool::new(false);
    let ctx = FileContext {
        p,
        reader: &prepared.reader,
        opts: &opts,
        observer: &quiet,
        stop: &stop,
        job: &prepared.job,
        format: &prepared.format,
        folder_key: &prepared.folder_key,
    };
    let (mut summary, done) = backfill_file(
        &ctx,
        &file,
        From::from(checkpoint.as_ref()),
        deadline,
        job.max_batches,
    )
    .await?;
    summary.elapsed = started.elapsed();
    Ok(FileOutcome {
        done,
        already_done: false,
        summary,
    })
}

/// What an export backfill on Step Functions will read: the first step of
/// the export state machine (`sources::backfill_task::run_export_plan`),
/// before its Map reads the manifest.
#[derive(Clone, Debug, Default, serde::Serialize, PartialEq, Eq)]
pub struct ExportPlan {
    /// The export's folder as the work items name it, `s3://bucket/prefix`
    /// (no trailing `/`, whatever the input had).
    pub export: String,
    pub bucket: String,
    /// The key of its `manifest-files.json`, for the Map's `ItemReader`.
    pub manifest_key: String,
    /// Data files the manifest lists, and items.
    pub files: u64,
    pub items: u64,
    /// Files an earlier run of this export applied whole: their work
    /// items will read nothing (export checkpoints are keyed by the
    /// export, whose files do not change).
    pub already_done_files: u64,
}

/// Plan the backfill of the export at `location` (an `s3://` folder of
/// one export, or a prefix holding exactly one of `table`'s): check it is
/// `table`'s and readable, and say what its Map will read.
pub async fn export_plan(
    p: &Pipeline,
    s3: Option<&aws_sdk_s3::Client>,
    location: &ExportLocation,
    table: &str,
    incremental: Option<IncrementalOptions>,
) -> Result<ExportPlan, BackfillError> {
    let ExportLocation::S3 { bucket, .. } = location else {
        return Err(BackfillError::Task(format!(
            "export_plan: {} is not an s3:// location",
            location.describe()
        )));
    };
    let source = SourceKind::from_table_name(table).ok_or_else(|| BackfillError::Table {
        table: table.to_string(),
        reason: crate::normalize::not_a_source_table(),
    })?;
    let opts = ExportOptions {
        location: location.clone(),
        choice: ExportChoice::Only,
        table: table.to_string(),
        parallel: 1,
        batch: 1,
        resume: true,
        incremental,
    };
    let chosen = match &opts.incremental {
        None => locate::locate(location, s3, table, &opts.choice).await?,
        Some(_) => {
            let mut all = locate::locate_incremental(location, s3, table).await?;
            if all.len() != 1 {
                return Err(BackfillError::Inconsistent(format!(
                    "{} holds {} incremental exports: name one export's folder",
                    location.describe(),
                    all.len()
                )));
            }
            all.remove(0)
        }
    };
    let quiet = super::backfill::Quiet;
    let prepared = prepare(&opts, source, chosen, s3, &quiet)?;
    let text = prepared.reader.read_text(&prepared.manifest_name).await?;
    let mut plan = ExportPlan {
        export: prepared.reader.location.describe(),
        bucket: bucket.clone(),
        manifest_key: prepared.reader.resolve(&prepared.manifest_name),
        ..ExportPlan::default()
    };
    let done: std::collections::HashSet<String> = p
        .store
        .checkpoints(&prepared.job)
        .await?
        .into_iter()
        .filter(|c| c.done)
        .map(|c| c.part)
        .collect();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: ManifestFile = serde_json::from_str(line).map_err(|e| {
            BackfillError::Inconsistent(format!("{}:{}: {e}", prepared.manifest_name, i + 1))
        })?;
        checked_name(&f, &prepared.folder_key, || {
            format!("{}:{}", plan.manifest_key, i + 1)
        })?;
        plan.files += 1;
        plan.items += f.item_count;
        if done.contains(&part_name(&f.data_file_s3_key)) {
            plan.already_done_files += 1;
        }
    }
    Ok(plan)
}

/// Other files stop at their next batch once one has failed.
fn stop_on_error(stop: &AtomicBool) {
    stop.store(true, Ordering::Relaxed);
}

struct FileContext<'a> {
    p: &'a Pipeline,
    reader: &'a Objects<'a>,
    opts: &'a ExportOptions,
    observer: &'a dyn Observer,
    stop: &'a AtomicBool,
    job: &'a str,
    format: &'a LineFormat,
    folder_key: &'a str,
}

/// The name of `file` in the export's `data/` folder, if its key lies
/// there (`keys`); else a refusal naming `at` (the manifest line) and the
/// key.
fn checked_name<'f>(
    file: &'f ManifestFile,
    folder_key: &str,
    at: impl FnOnce() -> String,
) -> Result<&'f str, BackfillError> {
    keys::data_file_name(&file.data_file_s3_key, folder_key).map_err(|reason| {
        BackfillError::KeyRefused {
            at: at(),
            key: file.data_file_s3_key.clone(),
            reason,
        }
    })
}

/// Apply a data file's lines after `resume_after` (each batch's line saved
/// as the file's checkpoint once committed), once the whole file has
/// passed its checks (`verify`: md5, caps, item count). Returns whether
/// the file is done: `false` when `deadline` passed first, in the checks,
/// while passing over lines applied before, or while applying. The file is read within the
/// caps of `lines` (a file past one is `BackfillError::Refused`), and the
/// deadline and `stop` are looked at after every line, blank ones too.
async fn backfill_file(
    ctx: &FileContext<'_>,
    file: &ManifestFile,
    resume: Resume,
    deadline: Option<Instant>,
    max_batches: Option<u64>,
) -> Result<(BackfillSummary, bool), BackfillError> {
    let resume_after = resume.after;
    let key = &file.data_file_s3_key;
    let name = checked_name(file, ctx.folder_key, || key.clone())?;
    let mut summary = BackfillSummary::default();
    ctx.observer.started(name, Some(file.item_count), 0);
    // Every check first, then the lines: nothing of a file that fails one
    // is applied (`verify`).
    let expected = verify::Expected {
        name,
        key,
        item_count: file.item_count,
        md5: file.md5_checksum.as_deref(),
    };
    if !resume.verified {
        if verify::verify(ctx.reader, &expected, deadline).await? == verify::Verified::OutOfTime {
            return Ok((summary, false));
        }
        // Checked: the next run of this file need not check it again.
        save_progress(ctx, key, 0, 0, false).await?;
    }
    let raw = BufReader::with_capacity(
        256 * 1024,
        Md5Check::new(ctx.reader.open(&format!("data/{name}")).await?),
    );
    let mut lines = BoundedLines::new(
        BufReader::with_capacity(256 * 1024, GzipDecoder::new(raw)),
        Limits::for_items(file.item_count),
        file.item_count,
    );
    let batch = ctx.opts.batch.max(1);
    // The batch's lines, read into changes when it is applied.
    let mut pending: Vec<PendingLine> = Vec::with_capacity(batch);
    let mut batch_bytes = 0usize;
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    let mut count = 0u64;
    let mut batches = 0u64;
    loop {
        let more = lines.next_line(&mut buf).await.map_err(|e| match e {
            LineError::Io(e) => BackfillError::Read {
                what: format!("{key}:{}", line_no + 1),
                reason: e.to_string(),
            },
            capped => BackfillError::Refused {
                file: key.to_string(),
                reason: capped.to_string(),
            },
        })?;
        if !more {
            break;
        }
        line_no += 1;
        if ctx.stop.load(Ordering::Relaxed) {
            return Err(BackfillError::Interrupted);
        }
        let text = String::from_utf8_lossy(&buf);
        if !text.trim().is_empty() {
            count += 1;
            // Lines before the checkpoint were applied by an earlier run;
            // passing over them takes time too.
            if line_no <= resume_after {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok((summary, false));
                }
                continue;
            }
            // A line that cannot be a record is quarantined with its
            // place and reason; the file goes on.
            let id = format!("{name}:{line_no}");
            batch_bytes += text.len();
            pending.push(match std::str::from_utf8(&buf) {
                Ok(line) => PendingLine::Text {
                    id,
                    line: line.to_string(),
                },
                Err(e) => PendingLine::Unreadable(RejectedRecord::unreadable(
                    SourceKind::from_table_name(&ctx.opts.table),
                    &ctx.opts.table,
                    &id,
                    &format!("{id}: the line is not UTF-8: {e}"),
                    &text,
                )),
            });
        } else if line_no <= resume_after {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok((summary, false));
            }
            continue;
        }
        let full = pending.len() >= batch || batch_bytes >= MAX_BATCH_BYTES;
        let late = deadline.is_some_and(|d| Instant::now() >= d);
        if full || late {
            // Also out of time inside a batch or a run of blank lines:
            // what was read is applied and checkpointed (at least this
            // line, so every run moves on), and the next run goes on.
            flush(ctx, name, &mut pending, &mut summary).await?;
            batch_bytes = 0;
            save_progress(ctx, key, line_no, count, false).await?;
            batches += 1;
            if late || max_batches.is_some_and(|m| batches >= m) {
                return Ok((summary, false));
            }
        }
    }
    flush(ctx, name, &mut pending, &mut summary).await?;
    // The bytes after the gzip member (none in an AWS export) count too.
    let mut raw = lines.into_inner().into_inner().into_inner();
    tokio::io::copy(&mut raw, &mut tokio::io::sink())
        .await
        .map_err(|e| BackfillError::Read {
            what: key.to_string(),
            reason: e.to_string(),
        })?;
    let md5 = raw.into_inner().finish();
    if let Some(want) = &file.md5_checksum
        && *want != md5
    {
        // Verified before, changed since (the object was replaced while
        // it was read): what was applied is snapshots, which a correct
        // re-run does not count twice.
        return Err(BackfillError::ChecksumMismatch {
            file: key.to_string(),
            want: want.clone(),
            got: md5,
        });
    }
    if count != file.item_count {
        return Err(BackfillError::Inconsistent(format!(
            "{key}: manifest says {} items, the file holds {count}",
            file.item_count
        )));
    }
    save_progress(ctx, key, line_no, count, true).await?;
    ctx.observer.finished(name);
    summary.parts_done = 1;
    Ok((summary, true))
}

/// A data line of a batch, as read.
enum PendingLine {
    /// Its name (`file:line`) and text.
    Text { id: String, line: String },
    /// A line that is not even text, with its quarantine row.
    Unreadable(RejectedRecord),
}

/// The window of an incremental export's lines.
fn window<'a>(ctx: &FileContext<'a>, start_secs: i64, end_secs: i64) -> Window<'a> {
    Window {
        table: &ctx.opts.table,
        start_secs,
        end_secs,
        ttl_attribute: ctx
            .opts
            .incremental
            .as_ref()
            .and_then(|i| i.ttl_attribute.as_deref()),
    }
}

/// The change of the data line `id` (`file:line`), or why it cannot be
/// one.
fn line_change<'a>(
    ctx: &FileContext<'a>,
    id: &'a str,
    line: &'a str,
) -> Result<StreamChange<'a>, String> {
    match ctx.format {
        LineFormat::Snapshot { key_names } => {
            export_line_change(&ctx.opts.table, key_names, line, id)
        }
        LineFormat::Incremental {
            start_secs,
            end_secs,
        } => incremental_change(&window(ctx, *start_secs, *end_secs), line, id),
    }
}

/// A data file's checkpoint: the last line applied, and whether it is done.
async fn save_progress(
    ctx: &FileContext<'_>,
    key: &str,
    line_no: u64,
    items: u64,
    done: bool,
) -> Result<(), BackfillError> {
    ctx.p
        .store
        .save_checkpoint(
            ctx.job,
            &Checkpoint {
                part: part_name(key),
                position: Some(format!("line:{line_no}")),
                items: items as i64,
                done,
            },
        )
        .await?;
    Ok(())
}

/// Read the batch's lines into changes and apply them, quarantining the
/// lines that cannot be changes (with their place and reason) in the same
/// transaction.
async fn flush(
    ctx: &FileContext<'_>,
    name: &str,
    pending: &mut Vec<PendingLine>,
    summary: &mut BackfillSummary,
) -> Result<(), BackfillError> {
    if pending.is_empty() {
        return Ok(());
    }
    if ctx.stop.load(Ordering::Relaxed) {
        return Err(BackfillError::Interrupted);
    }
    let mut records = Vec::with_capacity(pending.len());
    let mut texts = LineTexts {
        table: &ctx.opts.table,
        keys: None,
        window: None,
        lines: Vec::with_capacity(pending.len()),
    };
    match ctx.format {
        LineFormat::Snapshot { key_names } => texts.keys = Some(key_names),
        LineFormat::Incremental {
            start_secs,
            end_secs,
        } => texts.window = Some(WindowText::of(&window(ctx, *start_secs, *end_secs))),
    }
    let mut unreadable = Vec::new();
    for line in pending.iter() {
        match line {
            PendingLine::Text { id, line } => match line_change(ctx, id, line) {
                Ok(change) => {
                    records.push(Ok(change));
                    texts.lines.push((id, line));
                }
                Err(reason) => unreadable.push(RejectedRecord::unreadable(
                    SourceKind::from_table_name(&ctx.opts.table),
                    &ctx.opts.table,
                    id,
                    &reason,
                    line,
                )),
            },
            PendingLine::Unreadable(row) => unreadable.push(row.clone()),
        }
    }
    let batch = Batch {
        records,
        raw: &texts,
    };
    let report = apply_read(ctx.p, batch, &unreadable, name).await?;
    summary.report.merge(report);
    let n = pending.len() as u64;
    summary.items += n;
    summary.pages += 1;
    ctx.observer.advanced(name, n);
    pending.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(
            ExportLocation::parse("s3://b/AWSDynamoDB/0123-abc/").unwrap(),
            ExportLocation::S3 {
                bucket: "b".into(),
                prefix: "AWSDynamoDB/0123-abc".into()
            }
        );
        assert!(ExportLocation::parse("s3:///x").is_err());
        assert_eq!(
            ExportLocation::parse("fixtures/exports/x").unwrap(),
            ExportLocation::Dir("fixtures/exports/x".into())
        );
    }
}
