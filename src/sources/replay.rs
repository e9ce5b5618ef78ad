//! Local replay of captured Lambda DynamoDB stream events: files or folders
//! (their `.json` / `.jsonl` files, not subfolders), in name order. A `.json`
//! file is one event; a `.jsonl` file holds one event per line. Every event
//! is one batch through `pipeline::run_event`, as Lambda would deliver it.

use crate::pipeline::{BatchReport, Pipeline, PipelineError, run_event};
use crate::record::lambda_event::redact_quoted;
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

/// How a replay treats an event it cannot read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnUnreadable {
    /// Stop there (the default): nothing after it is applied.
    #[default]
    Stop,
    /// Report it and go on with the next event (`--keep-going`).
    KeepGoing,
}

/// What a replay did, also when it stopped early.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Outcomes of every batch applied.
    pub total: BatchReport,
    /// Batches applied.
    pub batches: usize,
    /// Events passed over as unreadable (`KeepGoing`), each naming its
    /// file and line.
    pub unreadable: Vec<ReplayError>,
    /// The failure that stopped the replay: the event it names (file and
    /// line) is the first one not applied, and nothing after it was.
    pub stopped: Option<ReplayError>,
    /// Stopped on request (`stop` set) after a whole batch: the place of the
    /// first event not applied (file, line), if any was left.
    pub interrupted: Option<(PathBuf, usize)>,
}

/// Replay files, calling `on_batch` after each applied batch with the file,
/// the line (1 for `.json`) and the batch report. Stops at the first
/// failure (or, with `KeepGoing`, at the first that is not an unreadable
/// event), returning what was applied before it; and before the next event
/// once `stop` is set (Ctrl-C), a batch being applied whole or not at all.
pub async fn replay(
    p: &Pipeline,
    files: &[PathBuf],
    on_unreadable: OnUnreadable,
    stop: &std::sync::atomic::AtomicBool,
    mut on_batch: impl FnMut(&Path, usize, &BatchReport),
) -> Replayed {
    let mut out = Replayed::default();
    for file in files {
        let name = file.display().to_string();
        let io = |source| ReplayError::Io {
            path: name.clone(),
            source,
        };
        let jsonl = file.extension().and_then(|e| e.to_str()) == Some("jsonl");
        let events: Box<dyn Iterator<Item = Result<(usize, String), ReplayError>>> = if jsonl {
            match std::fs::File::open(file) {
                Ok(f) => Box::new(
                    std::io::BufReader::new(f)
                        .lines()
                        .enumerate()
                        .map(|(i, line)| line.map(|l| (i + 1, l)).map_err(io))
                        .filter(|l| !matches!(l, Ok((_, text)) if text.trim().is_empty())),
                ),
                Err(e) => Box::new(std::iter::once(Err(io(e)))),
            }
        } else {
            Box::new(std::iter::once(
                std::fs::read_to_string(file).map(|t| (1, t)).map_err(io),
            ))
        };
        for event in events {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                let line = match &event {
                    Ok((line, _)) => *line,
                    Err(_) => 1,
                };
                out.interrupted = Some((file.clone(), line));
                return out;
            }
            let result = match event {
                Ok((line, text)) => apply_event(p, &name, line, &text)
                    .await
                    .map(|report| (line, report)),
                Err(e) => Err(e),
            };
            match result {
                Ok((line, report)) => {
                    on_batch(file, line, &report);
                    out.batches += 1;
                    out.total.merge(report);
                }
                Err(e @ ReplayError::Malformed { .. })
                    if on_unreadable == OnUnreadable::KeepGoing =>
                {
                    out.unreadable.push(e);
                }
                Err(e) => {
                    out.stopped = Some(e);
                    return out;
                }
            }
        }
    }
    out
}

async fn apply_event(
    p: &Pipeline,
    path: &str,
    line: usize,
    text: &str,
) -> Result<BatchReport, ReplayError> {
    let read = run_event(p, text)
        .await
        .map_err(|source| ReplayError::Batch {
            path: path.to_string(),
            line,
            source,
        })?;
    read.map_err(|e| ReplayError::Malformed {
        path: path.to_string(),
        // For a .json file, serde's own line is the useful one.
        line: if line == 1 && e.line() > 0 {
            e.line()
        } else {
            line
        },
        reason: {
            let reason = redact_quoted(&e.to_string());
            if text.trim_start().starts_with('[') {
                format!(
                    "{reason}; a JSON array is not an event: write one event per line \
                     in a .jsonl file"
                )
            } else {
                reason
            }
        },
    })
}
