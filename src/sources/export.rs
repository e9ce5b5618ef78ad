//! Backfill from a DynamoDB export to S3 in `DYNAMODB_JSON` format, read
//! from a local folder or from `s3://bucket/prefix` (the export's folder,
//! the one holding `manifest-summary.json`).
//!
//! `manifest-summary.json` names `manifest-files.json`, whose lines name the
//! gzip data files (`dataFileS3Key`) and their `itemCount`. Each data line is
//! `{"Item": {...}}`. Files are processed concurrently, each streamed
//! (gunzip → lines → batches of snapshot records → `run_batch`), so memory
//! stays bounded by `parallel × batch` records whatever the export's size.
//! Every file's item count is checked against the manifest, and the total
//! against the summary; a completed file is checkpointed, so `--resume`
//! skips it.

use super::backfill::{BackfillError, BackfillSummary, Observer, apply_page};
use crate::domain::SourceKind;
use crate::pipeline::Pipeline;
use crate::record::snapshot::{key_attributes, snapshot_record};
use crate::store::checkpoints::Checkpoint;
use async_compression::tokio::bufread::GzipDecoder;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, BufReader};

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
}

#[derive(Clone, Debug)]
pub struct ExportOptions {
    pub location: ExportLocation,
    /// The source table the export was taken from (its name routes the
    /// items to their normaliser).
    pub table: String,
    /// Data files processed at once.
    pub parallel: usize,
    /// Items per batch (one transaction each).
    pub batch: usize,
    pub resume: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    manifest_files_s3_key: String,
    item_count: Option<u64>,
    output_format: Option<String>,
    export_arn: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestFile {
    data_file_s3_key: String,
    item_count: u64,
}

#[derive(Deserialize)]
struct DataLine<'a> {
    #[serde(rename = "Item", borrow)]
    item: &'a RawValue,
}

/// Reads the export's objects, local or in S3.
struct Reader<'a> {
    location: &'a ExportLocation,
    s3: Option<&'a aws_sdk_s3::Client>,
}

type Lines = Box<dyn AsyncBufRead + Unpin + Send>;

impl Reader<'_> {
    /// The local path of an object named by its S3 key (relative to the
    /// export folder: the key's part from `manifest-files.json` / `data/`).
    fn local_path(dir: &std::path::Path, key: &str) -> PathBuf {
        let rel = key
            .rfind("/data/")
            .map(|i| &key[i + 1..])
            .or_else(|| key.rsplit('/').next())
            .unwrap_or(key);
        dir.join(rel)
    }

    async fn open(&self, key: &str, in_folder: bool) -> Result<Lines, BackfillError> {
        let read_err = |reason: String| BackfillError::Read {
            what: key.to_string(),
            reason,
        };
        match self.location {
            ExportLocation::Dir(dir) => {
                let path = if in_folder {
                    dir.join(key)
                } else {
                    Self::local_path(dir, key)
                };
                let f = tokio::fs::File::open(&path)
                    .await
                    .map_err(|e| read_err(format!("{}: {e}", path.display())))?;
                Ok(Box::new(BufReader::with_capacity(256 * 1024, f)))
            }
            ExportLocation::S3 { bucket, prefix } => {
                let s3 = self
                    .s3
                    .ok_or_else(|| read_err("no S3 client configured".into()))?;
                let full = if in_folder {
                    if prefix.is_empty() {
                        key.to_string()
                    } else {
                        format!("{prefix}/{key}")
                    }
                } else {
                    key.to_string()
                };
                let obj = s3
                    .get_object()
                    .bucket(bucket)
                    .key(&full)
                    .send()
                    .await
                    .map_err(|e| {
                        read_err(aws_sdk_s3::error::DisplayErrorContext(&e).to_string())
                    })?;
                Ok(Box::new(BufReader::with_capacity(
                    256 * 1024,
                    obj.body.into_async_read(),
                )))
            }
        }
    }

    async fn read_text(&self, key: &str, in_folder: bool) -> Result<String, BackfillError> {
        let mut r = self.open(key, in_folder).await?;
        let mut text = String::new();
        r.read_to_string(&mut text)
            .await
            .map_err(|e| BackfillError::Read {
                what: key.to_string(),
                reason: e.to_string(),
            })?;
        Ok(text)
    }
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

/// Backfill `opts.table` from the export at `opts.location` through `p`.
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
        reason: "not one of the four source tables".into(),
    })?;
    let key_names: Vec<String> = key_attributes(source)
        .iter()
        .map(|s| s.to_string())
        .collect();
    let reader = Reader {
        location: &opts.location,
        s3,
    };
    let summary_text = reader.read_text("manifest-summary.json", true).await?;
    let summary: Summary = serde_json::from_str(&summary_text)
        .map_err(|e| BackfillError::Inconsistent(format!("manifest-summary.json: {e}")))?;
    if let Some(format) = &summary.output_format
        && format != "DYNAMODB_JSON"
    {
        return Err(BackfillError::Inconsistent(format!(
            "output format {format}; only DYNAMODB_JSON exports are read"
        )));
    }
    let manifest_name = summary
        .manifest_files_s3_key
        .rsplit('/')
        .next()
        .unwrap_or("manifest-files.json")
        .to_string();
    let files_text = reader.read_text(&manifest_name, true).await?;
    let mut files = Vec::new();
    for (i, line) in files_text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: ManifestFile = serde_json::from_str(line)
            .map_err(|e| BackfillError::Inconsistent(format!("{manifest_name}:{}: {e}", i + 1)))?;
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
    let job = job_name(
        &opts.table,
        summary
            .export_arn
            .as_deref()
            .unwrap_or(&opts.location.describe()),
    );
    let done: HashSet<String> = if opts.resume {
        p.store
            .checkpoints(&job)
            .await?
            .into_iter()
            .filter(|c| c.done)
            .map(|c| c.part)
            .collect()
    } else {
        p.store.clear_checkpoints(&job).await?;
        HashSet::new()
    };
    let ctx = FileContext {
        p,
        reader: &reader,
        opts,
        observer,
        stop,
        job: &job,
        key_names: &key_names,
    };
    let mut out = BackfillSummary::default();
    let mut first_err = None;
    let mut results = futures::stream::iter(files.iter().map(|f| {
        let skip = done.contains(&part_name(&f.data_file_s3_key));
        let ctx = &ctx;
        async move {
            if skip {
                return Ok(BackfillSummary {
                    parts_skipped: 1,
                    ..BackfillSummary::default()
                });
            }
            backfill_file(ctx, f).await
        }
    }))
    .buffer_unordered(opts.parallel.max(1));
    while let Some(r) = results.next().await {
        match r {
            Ok(s) => out.merge(s),
            Err(e) => {
                stop_on_error(stop);
                first_err.get_or_insert(e);
            }
        }
    }
    out.elapsed = started.elapsed();
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Other files stop at their next batch once one has failed.
fn stop_on_error(stop: &AtomicBool) {
    stop.store(true, Ordering::Relaxed);
}

struct FileContext<'a> {
    p: &'a Pipeline,
    reader: &'a Reader<'a>,
    opts: &'a ExportOptions,
    observer: &'a dyn Observer,
    stop: &'a AtomicBool,
    job: &'a str,
    key_names: &'a [String],
}

async fn backfill_file(
    ctx: &FileContext<'_>,
    file: &ManifestFile,
) -> Result<BackfillSummary, BackfillError> {
    let key = &file.data_file_s3_key;
    let name = key.rsplit('/').next().unwrap_or(key);
    let mut summary = BackfillSummary::default();
    ctx.observer.started(name, Some(file.item_count), 0);
    let raw = ctx.reader.open(key, false).await?;
    let mut lines = BufReader::with_capacity(256 * 1024, GzipDecoder::new(raw)).lines();
    let batch = ctx.opts.batch.max(1);
    let mut records: Vec<Box<RawValue>> = Vec::with_capacity(batch);
    let mut line_no = 0u64;
    let mut count = 0u64;
    loop {
        let line = lines.next_line().await.map_err(|e| BackfillError::Read {
            what: format!("{key}:{}", line_no + 1),
            reason: e.to_string(),
        })?;
        let Some(line) = line else { break };
        line_no += 1;
        if line.trim().is_empty() {
            continue;
        }
        let id = format!("{name}:{line_no}");
        let parsed: DataLine<'_> = serde_json::from_str(&line).map_err(|e| {
            BackfillError::Inconsistent(format!("{id}: not an {{\"Item\": …}} line: {e}"))
        })?;
        records.push(
            snapshot_record(&ctx.opts.table, ctx.key_names, parsed.item, &id)
                .map_err(BackfillError::Inconsistent)?,
        );
        count += 1;
        if records.len() >= batch {
            flush(ctx, name, &mut records, &mut summary).await?;
        }
    }
    flush(ctx, name, &mut records, &mut summary).await?;
    if count != file.item_count {
        return Err(BackfillError::Inconsistent(format!(
            "{key}: manifest says {} items, the file holds {count}",
            file.item_count
        )));
    }
    ctx.p
        .store
        .save_checkpoint(
            ctx.job,
            &Checkpoint {
                part: part_name(key),
                position: None,
                items: count as i64,
                done: true,
            },
        )
        .await?;
    ctx.observer.finished(name);
    summary.parts_done = 1;
    Ok(summary)
}

async fn flush(
    ctx: &FileContext<'_>,
    name: &str,
    records: &mut Vec<Box<RawValue>>,
    summary: &mut BackfillSummary,
) -> Result<(), BackfillError> {
    if records.is_empty() {
        return Ok(());
    }
    if ctx.stop.load(Ordering::Relaxed) {
        return Err(BackfillError::Interrupted);
    }
    let report = apply_page(ctx.p, records, name).await?;
    summary.report.merge(report);
    let n = records.len() as u64;
    summary.items += n;
    ctx.observer.advanced(name, n);
    records.clear();
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

    #[test]
    fn data_keys_map_into_the_local_folder() {
        let dir = std::path::Path::new("/tmp/export");
        assert_eq!(
            Reader::local_path(dir, "prefix/AWSDynamoDB/0123-abc/data/f1.json.gz"),
            dir.join("data/f1.json.gz")
        );
        assert_eq!(
            Reader::local_path(dir, "f2.json.gz"),
            dir.join("f2.json.gz")
        );
    }
}
