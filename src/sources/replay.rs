//! Local replay of captured Lambda DynamoDB stream events: files or folders
//! (their `.json` / `.jsonl` files, not subfolders), in name order. A `.json`
//! file is one event; a `.jsonl` file holds one event per line. Every event
//! is one batch through `run_batch`, as Lambda would deliver it.

use crate::pipeline::{BatchReport, Pipeline, PipelineError, run_batch};
use crate::record::lambda_event::{RawEvent, parse_event, redact_quoted};
use std::io::BufRead;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a Lambda DynamoDB event ({{\"Records\": [...]}}): {reason}")]
    Malformed {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("{path}:{line}: batch not applied: {source}")]
    Batch {
        path: String,
        line: usize,
        #[source]
        source: PipelineError,
    },
    #[error("no .json or .jsonl event files found in {0}")]
    Empty(String),
}

/// Expand the given paths into event files in name order.
pub fn event_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ReplayError> {
    let mut out = Vec::new();
    for path in paths {
        let io = |source| ReplayError::Io {
            path: path.display().to_string(),
            source,
        };
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(io)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_event_file(p))
                .collect();
            if files.is_empty() {
                return Err(ReplayError::Empty(path.display().to_string()));
            }
            files.sort();
            out.extend(files);
        } else {
            std::fs::metadata(path).map_err(io)?;
            out.push(path.clone());
        }
    }
    Ok(out)
}

fn is_event_file(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("json" | "jsonl")
    )
}

/// Replay files, calling `on_batch` after each applied batch with the file,
/// the line (1 for `.json`) and the batch report. Stops at the first failure.
pub async fn replay(
    p: &Pipeline,
    files: &[PathBuf],
    mut on_batch: impl FnMut(&Path, usize, &BatchReport),
) -> Result<BatchReport, ReplayError> {
    let mut total = BatchReport::default();
    for file in files {
        let name = file.display().to_string();
        let io = |source| ReplayError::Io {
            path: name.clone(),
            source,
        };
        let jsonl = file.extension().and_then(|e| e.to_str()) == Some("jsonl");
        if jsonl {
            let reader = std::io::BufReader::new(std::fs::File::open(file).map_err(io)?);
            for (i, line) in reader.lines().enumerate() {
                let line = line.map_err(io)?;
                if line.trim().is_empty() {
                    continue;
                }
                let report = apply_event(p, &name, i + 1, &line).await?;
                on_batch(file, i + 1, &report);
                total.merge(report);
            }
        } else {
            let text = std::fs::read_to_string(file).map_err(io)?;
            let report = apply_event(p, &name, 1, &text).await?;
            on_batch(file, 1, &report);
            total.merge(report);
        }
    }
    Ok(total)
}

async fn apply_event(
    p: &Pipeline,
    path: &str,
    line: usize,
    text: &str,
) -> Result<BatchReport, ReplayError> {
    let event: RawEvent<'_> = parse_event(text).map_err(|e| ReplayError::Malformed {
        path: path.to_string(),
        // For a .json file, serde's own line is the useful one.
        line: if line == 1 { e.line() } else { line },
        reason: redact_quoted(&e.to_string()),
    })?;
    run_batch(p, &event.records)
        .await
        .map_err(|source| ReplayError::Batch {
            path: path.to_string(),
            line,
            source,
        })
}
