//! Finding the export to read. `export-table-to-point-in-time --s3-prefix P`
//! writes `s3://B/P/AWSDynamoDB/<export id>/…`; operators pass `s3://B/P`
//! (or a local copy of it), the `AWSDynamoDB` folder, or one export's
//! folder. Exports of other tables, unfinished exports (no
//! `manifest-summary.json` yet) and incremental exports are passed over;
//! of the rest, the one there is taken, or the newest (`--latest`), or the
//! one named (`--export-id`, an id or the export's ARN).

use super::ExportLocation;
use super::objects::Objects;
use crate::sources::backfill::BackfillError;
use serde::Deserialize;

/// Which export under a prefix to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ExportChoice {
    /// The only one (several are an error that lists them).
    #[default]
    Only,
    /// The one with the latest `exportTime`.
    Latest,
    /// The export with this id, or this export ARN.
    Id(String),
}

/// `manifest-summary.json`, the fields read.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Summary {
    pub manifest_files_s3_key: String,
    pub item_count: Option<u64>,
    pub output_format: Option<String>,
    pub export_arn: Option<String>,
    pub table_arn: Option<String>,
    pub export_time: Option<String>,
    pub export_type: Option<String>,
    /// Incremental exports: the window, [from, to).
    pub export_from_time: Option<serde_json::Value>,
    pub export_to_time: Option<serde_json::Value>,
    /// `NEW_AND_OLD_IMAGES` or `NEW_IMAGE` (incremental exports).
    pub output_view: Option<String>,
}

/// `exportType` of incremental exports.
pub(super) const INCREMENTAL: &str = "INCREMENTAL_EXPORT";

/// A manifest time (RFC 3339 text, or epoch seconds as a number) in whole
/// epoch seconds, rounded down.
pub(super) fn epoch_secs(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::String(t) => chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| t.timestamp()),
        serde_json::Value::Number(n) => n.as_f64().map(|f| f.floor() as i64),
        _ => None,
    }
}

impl Summary {
    pub(super) fn is_incremental(&self) -> bool {
        self.export_type.as_deref() == Some(INCREMENTAL)
    }

    /// An incremental export's window in whole epoch seconds.
    pub(super) fn window(&self) -> Option<(i64, i64)> {
        Some((
            epoch_secs(self.export_from_time.as_ref()?)?,
            epoch_secs(self.export_to_time.as_ref()?)?,
        ))
    }

    /// The export's id: the last part of its ARN.
    pub(super) fn id(&self) -> Option<&str> {
        self.export_arn.as_deref()?.rsplit('/').next()
    }

    /// The exported table's name, from its ARN.
    fn table(&self) -> Option<&str> {
        self.table_arn.as_deref()?.rsplit('/').next()
    }

    fn describe(&self, id: &str) -> String {
        format!(
            "{id} (table {}, exported {}, {} items)",
            self.table().unwrap_or("?"),
            self.export_time.as_deref().unwrap_or("?"),
            self.item_count
                .map_or_else(|| "?".to_string(), |n| n.to_string())
        )
    }
}

/// The export chosen: its folder, its summary, and a sentence saying why.
#[derive(Debug)]
pub struct Chosen {
    pub folder: ExportLocation,
    pub(super) summary: Summary,
    pub why: String,
}

const SUMMARY: &str = "manifest-summary.json";
const EXPORTS: &str = "AWSDynamoDB";

async fn read_summary(objects: &Objects<'_>) -> Result<Summary, BackfillError> {
    let text = objects.read_text(SUMMARY).await?;
    serde_json::from_str(&text).map_err(|e| {
        BackfillError::Inconsistent(format!("{}/{SUMMARY}: {e}", objects.location.describe()))
    })
}

/// Find the export of `table` at or under `location`.
pub(super) async fn locate(
    location: &ExportLocation,
    s3: Option<&aws_sdk_s3::Client>,
    table: &str,
    choice: &ExportChoice,
) -> Result<Chosen, BackfillError> {
    let here = Objects {
        location: location.clone(),
        s3,
    };
    if here.exists(SUMMARY).await? {
        let summary = read_summary(&here).await?;
        let id = summary.id().unwrap_or("?").to_string();
        if let ExportChoice::Id(want) = choice
            && !same_export(want, &id)
        {
            return Err(BackfillError::Inconsistent(format!(
                "{} is export {id}, not {want}",
                location.describe()
            )));
        }
        check_table(&summary, &id, table)?;
        if summary.is_incremental() {
            return Err(BackfillError::Inconsistent(format!(
                "{} is an incremental export: pass --incremental to apply its window",
                location.describe()
            )));
        }
        return Ok(Chosen {
            folder: location.clone(),
            why: format!("export {}: the folder given", summary.describe(&id)),
            summary,
        });
    }
    let base = if location.last_name() == Some(EXPORTS) {
        location.clone()
    } else {
        location.join(EXPORTS)
    };
    let lister = Objects {
        location: base.clone(),
        s3,
    };
    let mut finished = Vec::new();
    let (mut unfinished, mut other_tables, mut incremental) = (0, Vec::new(), 0);
    for id in lister.folders().await? {
        let folder = Objects {
            location: base.join(&id),
            s3,
        };
        if !folder.exists(SUMMARY).await? {
            unfinished += 1;
            continue;
        }
        let summary = read_summary(&folder).await?;
        if summary.is_incremental() {
            incremental += 1;
        } else if summary.table().is_some_and(|t| t != table) {
            other_tables.push(summary.describe(&id));
        } else {
            finished.push((id, summary));
        }
    }
    let passed_over = {
        let mut parts = Vec::new();
        if unfinished > 0 {
            parts.push(format!("{unfinished} unfinished (no {SUMMARY})"));
        }
        if incremental > 0 {
            parts.push(format!("{incremental} incremental"));
        }
        if !other_tables.is_empty() {
            parts.push(format!(
                "{} of other tables: {}",
                other_tables.len(),
                other_tables.join("; ")
            ));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("; passed over: {}", parts.join(", "))
        }
    };
    let under = base.describe();
    if finished.is_empty() {
        return Err(BackfillError::Inconsistent(format!(
            "no finished export of {table} under {under} (looked for \
             {under}/<export id>/{SUMMARY}){passed_over}"
        )));
    }
    let index = match choice {
        ExportChoice::Id(want) => finished
            .iter()
            .position(|(id, _)| same_export(want, id))
            .ok_or_else(|| {
                BackfillError::Inconsistent(format!(
                    "no export {want} of {table} under {under}; there: {}",
                    list(&finished)
                ))
            })?,
        ExportChoice::Latest => newest(&finished),
        ExportChoice::Only if finished.len() == 1 => 0,
        ExportChoice::Only => {
            return Err(BackfillError::Inconsistent(format!(
                "{} exports of {table} under {under}: {}; pass --latest for the \
                 newest, or --export-id to name one",
                finished.len(),
                list(&finished)
            )));
        }
    };
    let (id, summary) = finished.swap_remove(index);
    let why = match choice {
        ExportChoice::Only => "the only one",
        ExportChoice::Latest => "the newest",
        ExportChoice::Id(_) => "the one named",
    };
    Ok(Chosen {
        folder: base.join(&id),
        why: format!(
            "export {}: {why} under {under}{passed_over}",
            summary.describe(&id)
        ),
        summary,
    })
}

/// Every incremental export of `table` at or under `location` (the folder
/// of one, or the prefix they were exported with), oldest window first.
/// Windows must chain: a hole between two would leave changes missing.
pub(super) async fn locate_incremental(
    location: &ExportLocation,
    s3: Option<&aws_sdk_s3::Client>,
    table: &str,
) -> Result<Vec<Chosen>, BackfillError> {
    let here = Objects {
        location: location.clone(),
        s3,
    };
    let mut found = Vec::new();
    if here.exists(SUMMARY).await? {
        let summary = read_summary(&here).await?;
        let id = summary.id().unwrap_or("?").to_string();
        check_table(&summary, &id, table)?;
        if !summary.is_incremental() {
            return Err(BackfillError::Inconsistent(format!(
                "{} is a full export, not an incremental one: leave out --incremental",
                location.describe()
            )));
        }
        found.push((location.clone(), id, summary));
    } else {
        let base = if location.last_name() == Some(EXPORTS) {
            location.clone()
        } else {
            location.join(EXPORTS)
        };
        let lister = Objects {
            location: base.clone(),
            s3,
        };
        for id in lister.folders().await? {
            let folder = Objects {
                location: base.join(&id),
                s3,
            };
            if !folder.exists(SUMMARY).await? {
                continue;
            }
            let summary = read_summary(&folder).await?;
            if summary.is_incremental() && summary.table().is_none_or(|t| t == table) {
                found.push((folder.location, id, summary));
            }
        }
        if found.is_empty() {
            return Err(BackfillError::Inconsistent(format!(
                "no finished incremental export of {table} under {} (looked for \
                 <export id>/{SUMMARY} with exportType {INCREMENTAL})",
                base.describe()
            )));
        }
    }
    let mut windows = Vec::new();
    for (folder, id, summary) in found {
        let (from, to) = summary.window().ok_or_else(|| {
            BackfillError::Inconsistent(format!(
                "incremental export {id}: {SUMMARY} has no readable exportFromTime and exportToTime"
            ))
        })?;
        if to <= from {
            return Err(BackfillError::Inconsistent(format!(
                "incremental export {id}: its window ends ({to}) before it starts ({from})"
            )));
        }
        windows.push((from, to, folder, id, summary));
    }
    windows.sort_by(|a, b| (a.0, a.1, &a.3).cmp(&(b.0, b.1, &b.3)));
    let mut covered: Option<i64> = None;
    let n = windows.len();
    let mut out = Vec::with_capacity(n);
    for (i, (from, to, folder, id, summary)) in windows.into_iter().enumerate() {
        if let Some(end) = covered
            && from > end
        {
            return Err(BackfillError::Inconsistent(format!(
                "the incremental exports of {table} leave a hole from {} to {}: \
                 export that window too (the changes in it would be missing)",
                iso(end),
                iso(from)
            )));
        }
        covered = Some(covered.map_or(to, |c| c.max(to)));
        out.push(Chosen {
            folder,
            why: format!(
                "incremental export {id} ({} of {n}): window {} to {}",
                i + 1,
                iso(from),
                iso(to)
            ),
            summary,
        });
    }
    Ok(out)
}

fn iso(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).map_or_else(
        || secs.to_string(),
        |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

/// An export id matches an id or an export ARN naming it.
fn same_export(want: &str, id: &str) -> bool {
    want.rsplit('/').next() == Some(id)
}

fn check_table(summary: &Summary, id: &str, table: &str) -> Result<(), BackfillError> {
    match summary.table() {
        Some(t) if t != table => Err(BackfillError::Inconsistent(format!(
            "export {id} is of table {t}, not {table}: pass --table {t}, or the \
             export of {table}"
        ))),
        _ => Ok(()),
    }
}

fn list(exports: &[(String, Summary)]) -> String {
    exports
        .iter()
        .map(|(id, s)| s.describe(id))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The index of the export with the latest `exportTime` (ties and missing
/// times broken by id, whose first part is the export's start in ms).
fn newest(exports: &[(String, Summary)]) -> usize {
    let time = |s: &Summary| {
        s.export_time
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    (0..exports.len())
        .max_by(|&a, &b| {
            let (ia, sa) = &exports[a];
            let (ib, sb) = &exports[b];
            time(sa).cmp(&time(sb)).then_with(|| ia.cmp(ib))
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(id: &str, table: &str, time: &str) -> Summary {
        serde_json::from_value(serde_json::json!({
            "manifestFilesS3Key": format!("p/AWSDynamoDB/{id}/manifest-files.json"),
            "exportArn": format!("arn:aws:dynamodb:us-east-1:1:table/{table}/export/{id}"),
            "tableArn": format!("arn:aws:dynamodb:us-east-1:1:table/{table}"),
            "exportTime": time,
            "itemCount": 3,
        }))
        .unwrap()
    }

    #[test]
    fn ids_match_by_id_or_arn() {
        assert!(same_export("0171-a", "0171-a"));
        assert!(same_export(
            "arn:aws:dynamodb:us-east-1:1:table/t/export/0171-a",
            "0171-a"
        ));
        assert!(!same_export("0171-b", "0171-a"));
    }

    #[test]
    fn the_newest_is_by_export_time_not_by_name() {
        let exports = vec![
            (
                "0172-b".to_string(),
                summary("0172-b", "t", "2024-04-01T00:00:00Z"),
            ),
            (
                "0171-a".to_string(),
                summary("0171-a", "t", "2024-05-01T00:00:00.000Z"),
            ),
        ];
        assert_eq!(newest(&exports), 1);
    }

    #[test]
    fn a_summary_names_its_table_and_id() {
        let s = summary(
            "0171-a",
            "icarus-prod-github_events",
            "2024-04-01T00:00:00Z",
        );
        assert_eq!(s.id(), Some("0171-a"));
        assert_eq!(s.table(), Some("icarus-prod-github_events"));
        assert!(check_table(&s, "0171-a", "icarus-prod-github_events").is_ok());
        let e = check_table(&s, "0171-a", "icarus-prod-dropbox_file_changes").unwrap_err();
        assert!(
            e.to_string().contains("--table icarus-prod-github_events"),
            "{e}"
        );
    }
}
