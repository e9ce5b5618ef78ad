//! `streamfold stats`: the database's totals and top users, or one user's
//! heatmap (each integration, or all together) in the terminal and as a
//! PNG, labelled with the time zone its buckets are in.

use crate::cli::StatsArgs;
use crate::print::{self, print_totals};
use anyhow::{Result, bail};
use chrono_tz::Tz;
use streamfold::domain::Integration;
use streamfold::heatmap::{self, Panel};
use streamfold::printable::{Printable, printable};
use streamfold::resolve::{AnyDirectory, Directory, pick_time_zone};

/// `streamfold stats`.
pub async fn run(args: StatsArgs) -> Result<()> {
    let StatsArgs {
        common,
        slack_id,
        integration,
        png,
        top,
        lookups,
        output,
    } = args;
    let cfg = common.read_only_config().await?;
    if let Some(path) = &png
        && let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty())
        && !folder.is_dir()
    {
        bail!(
            "cannot write {}: the folder {} does not exist",
            path.display(),
            folder.display()
        );
    }
    let store = crate::setup::store(&cfg).await?;
    let Some(slack_id) = slack_id else {
        if output.json {
            let users = store.top_users(top).await?;
            let top_users: Vec<serde_json::Value> = users
                .iter()
                .enumerate()
                .map(|(i, (user, n))| {
                    serde_json::json!({"rank": i + 1, "slack_id": user, "events": n})
                })
                .collect();
            print::json(&serde_json::json!({
                "totals": print::totals_json(&store).await?,
                "top_users": top_users,
            }));
            return Ok(());
        }
        print_totals(&store).await?;
        let users = store.top_users(top).await?;
        if !users.is_empty() {
            outln!();
            outln!("top users by events counted:");
            for (i, (user, n)) in users.iter().enumerate() {
                outln!("{:>4}. {:<24} {n:>10}", i + 1, Printable(user));
            }
        }
        return Ok(());
    };
    let directory = crate::setup::directory(lookups, &cfg).await?;
    let zones = Zones::of(&directory, &slack_id, cfg.default_tz).await?;
    let mut panels = Vec::new();
    match integration.as_deref() {
        Some("all") => {
            for i in [
                Integration::Github,
                Integration::Dropbox,
                Integration::Email,
            ] {
                let cells = store.heatmap(&slack_id, Some(i.code())).await?;
                if !cells.is_empty() {
                    panels.push(zones.panel(Some(i), cells));
                }
            }
            if panels.is_empty() {
                panels.push(zones.panel(None, Vec::new()));
            }
        }
        Some(code) => {
            let i = Integration::from_code(code);
            panels.push(zones.panel(i, store.heatmap(&slack_id, Some(code)).await?));
        }
        None => {
            let mut cells = Vec::new();
            let mut used = Vec::new();
            for i in [
                Integration::Github,
                Integration::Dropbox,
                Integration::Email,
            ] {
                let some = store.heatmap(&slack_id, Some(i.code())).await?;
                if !some.is_empty() {
                    used.push(i);
                }
                cells.extend(some);
            }
            let mut panel = zones.panel(None, cells);
            panel.time_zone = zones.of_all(&used);
            panels.push(panel);
        }
    }
    let events: i64 = panels
        .iter()
        .flat_map(|p| p.cells.iter().map(|c| c.2))
        .sum();
    let title = format!("heatmap of {}", printable(&slack_id));
    if output.json {
        let panels_json: Vec<serde_json::Value> = panels
            .iter()
            .zip(panel_codes(integration.as_deref(), &panels))
            .map(|(p, code)| {
                serde_json::json!({
                    "integration": code,
                    "label": p.label,
                    "time_zone": p.time_zone,
                    "events": p.cells.iter().map(|c| c.2).sum::<i64>(),
                    "cells": heatmap::grid(&p.cells),
                })
            })
            .collect();
        print::json(&serde_json::json!({
            "slack_id": slack_id,
            "events": events,
            "panels": panels_json,
            "png": png.as_ref().map(|p| p.display().to_string()),
        }));
    } else {
        for p in &panels {
            outln!(
                "{title}, {} (rows: day of week, columns: hour, time zone {})",
                p.label,
                p.time_zone
            );
            if events == 0 {
                continue;
            }
            out!("{}", heatmap::render(&p.cells));
        }
        if events == 0 {
            let which = match integration.as_deref() {
                Some(code @ ("G" | "D" | "E")) => Integration::from_code(code)
                    .map(|i| format!("{} ", label(i)))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            outln!(
                "no {which}events counted for {}: no such user in this database, or none of \
                 their events is attributed to them yet (`streamfold reattribute` counts \
                 events of users linked since)",
                printable(&slack_id)
            );
        }
    }
    if let Some(path) = png {
        font_said();
        let code = match integration.as_deref() {
            Some("all") | None => None,
            Some(code) => Some(code),
        };
        let period = store
            .event_span(&slack_id, code)
            .await?
            .map(|(first, last)| {
                let day = |t: i64| {
                    chrono::DateTime::from_timestamp(t, 0).map_or_else(
                        || t.to_string(),
                        |d| d.format("%Y-%m-%d %H:%M UTC").to_string(),
                    )
                };
                format!("events from {} to {}", day(first), day(last))
            });
        let text = heatmap::png::render_png(&panels, &title, period.as_deref(), &path)?;
        if output.json {
            eprintln!("wrote {}", path.display());
        } else {
            outln!("wrote {}", path.display());
        }
        if let Err(why) = text {
            eprintln!("{why}: the image has no text");
        }
    }
    Ok(())
}

/// Say on stderr when `STREAMFOLD_FONT` names a file that cannot be read:
/// the image is then drawn with a system font, if any.
fn font_said() {
    if let Some(path) = std::env::var_os("STREAMFOLD_FONT").filter(|p| !p.is_empty()) {
        let shown = printable(&path.to_string_lossy()).into_owned();
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => eprintln!(
                "STREAMFOLD_FONT={shown} is not a file: using a system font instead, if there is one"
            ),
            Err(e) => eprintln!(
                "STREAMFOLD_FONT={shown} cannot be read ({e}): using a system font instead, if there is one"
            ),
        }
    }
}

/// The integration code of each panel (`null` for all together).
fn panel_codes(integration: Option<&str>, panels: &[Panel]) -> Vec<Option<&'static str>> {
    panels
        .iter()
        .map(|p| match integration {
            None => None,
            _ => [
                Integration::Github,
                Integration::Dropbox,
                Integration::Email,
            ]
            .into_iter()
            .find(|&i| p.label == label(i))
            .map(|i| i.code()),
        })
        .collect()
}

/// The time zones a subject's buckets were made in (DESIGN §2): GitHub and
/// Dropbox events in the Icarus account's `tz`, e-mail events in the ACS
/// user's; the default where none is set.
struct Zones {
    icarus: String,
    acs: String,
}

impl Zones {
    async fn of(directory: &AnyDirectory, subject: &str, default: Tz) -> Result<Zones> {
        let ids = [subject.to_string()];
        let (icarus, acs) = tokio::join!(
            directory.icarus_time_zones(&ids),
            directory.acs_time_zones(&ids)
        );
        let name = |raw: Option<&String>| match raw.map(|r| r.trim().parse::<Tz>()) {
            Some(Ok(tz)) => tz.name().to_string(),
            _ => format!(
                "{} (the default: none set)",
                pick_time_zone(None, default).name()
            ),
        };
        Ok(Zones {
            icarus: name(icarus?.get(subject)),
            acs: name(acs?.get(subject)),
        })
    }

    fn zone(&self, i: Integration) -> &str {
        match i {
            Integration::Github | Integration::Dropbox => &self.icarus,
            Integration::Email => &self.acs,
        }
    }

    /// The zone of the integrations `used` together.
    fn of_all(&self, used: &[Integration]) -> String {
        let mut names: Vec<&str> = used.iter().map(|&i| self.zone(i)).collect();
        names.dedup();
        match names.as_slice() {
            [] => self.icarus.clone(),
            [one] => one.to_string(),
            _ => used
                .iter()
                .map(|&i| format!("{} {}", i.code(), self.zone(i)))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    fn panel(&self, i: Option<Integration>, cells: Vec<(u8, u8, i64)>) -> Panel {
        let (label, time_zone) = match i {
            Some(i) => (label(i).to_string(), self.zone(i).to_string()),
            None => ("all integrations".to_string(), self.icarus.clone()),
        };
        Panel {
            label,
            time_zone,
            cells,
        }
    }
}

fn label(i: Integration) -> &'static str {
    match i {
        Integration::Github => "GitHub (G)",
        Integration::Dropbox => "Dropbox (D)",
        Integration::Email => "e-mail (E)",
    }
}
