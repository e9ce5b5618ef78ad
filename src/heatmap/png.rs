//! The heatmap as a PNG image (plotters, bitmap backend): panels side by
//! side, each a grid of day of week × hour shaded by count on one shared
//! scale, with its integration, time zone, counts, row and column totals,
//! and a legend of the scale under them. Text needs a TrueType font: `STREAMFOLD_FONT`, else the
//! first of the usual system sans-serif fonts found; without one the image
//! is drawn without text (and the caller is told).

use super::{DAYS, Panel, grid, totals};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use std::path::Path;
use std::sync::OnceLock;

/// Drawing the image failed.
#[derive(Debug, thiserror::Error)]
#[error("drawing {path}: {reason}")]
pub struct PngError {
    pub path: String,
    pub reason: String,
}

const FONT_CANDIDATES: [&str; 6] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
];

/// Register a sans-serif font once; whether one is available.
fn font_available() -> bool {
    static FONT: OnceLock<bool> = OnceLock::new();
    *FONT.get_or_init(|| {
        let from_env = std::env::var("STREAMFOLD_FONT").ok();
        for path in from_env.iter().map(String::as_str).chain(FONT_CANDIDATES) {
            if let Ok(bytes) = std::fs::read(path) {
                // Registered fonts live as long as the process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

const CELL_W: i32 = 32;
const CELL_H: i32 = 30;
/// Left of each panel's grid: the day names.
const DAY_LABELS: i32 = 44;
/// Right of each panel's grid: the row totals.
const ROW_TOTALS: i32 = 60;
const PANEL_W: i32 = DAY_LABELS + 24 * CELL_W + ROW_TOTALS;
const GAP: i32 = 28;
const MARGIN: i32 = 16;
/// Top of the grids: the title, the panel labels and the hour labels above.
const TOP: i32 = 96;
const GRID_H: i32 = 7 * CELL_H;
const HEIGHT: u32 = (TOP + GRID_H + 100) as u32;

/// Image width for `panels` side by side.
fn width(panels: usize) -> u32 {
    (2 * MARGIN + panels.max(1) as i32 * PANEL_W + (panels.max(1) as i32 - 1) * GAP) as u32
}

/// Colour of a cell: light grey when empty, then light to dark blue.
fn shade(n: i64, max: i64) -> RGBColor {
    if n <= 0 || max <= 0 {
        return RGBColor(242, 242, 242);
    }
    let t = (n as f64 / max as f64).clamp(0.0, 1.0);
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
    RGBColor(mix(198, 8), mix(219, 48), mix(239, 107))
}

/// Draw `panels` side by side to `path`, under `title`, on one colour
/// scale (the largest cell of any panel is the darkest), each with its
/// time zone, row and column totals, and one legend of the scale. Returns
/// whether the text could be drawn.
pub fn render_png(panels: &[Panel], title: &str, path: &Path) -> Result<bool, PngError> {
    let err = |e: &dyn std::fmt::Display| PngError {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let labelled = font_available();
    let grids: Vec<[[i64; 24]; 7]> = panels.iter().map(|p| grid(&p.cells)).collect();
    let max = grids.iter().flatten().flatten().copied().max().unwrap_or(0);
    let root = BitMapBackend::new(path, (width(panels.len()), HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let font = |size: u32, colour: &RGBColor| ("sans-serif", size).into_font().color(colour);
    let grey = RGBColor(90, 90, 90);
    for (i, (panel, grid)) in panels.iter().zip(&grids).enumerate() {
        let left = MARGIN + i as i32 * (PANEL_W + GAP);
        let x0 = left + DAY_LABELS;
        for (d, row) in grid.iter().enumerate() {
            for (h, &n) in row.iter().enumerate() {
                let x = x0 + h as i32 * CELL_W;
                let y = TOP + d as i32 * CELL_H;
                root.draw(&Rectangle::new(
                    [(x + 1, y + 1), (x + CELL_W - 1, y + CELL_H - 1)],
                    shade(n, max).filled(),
                ))
                .map_err(|e| err(&e))?;
                if labelled && n > 0 {
                    let colour = if n * 2 > max { WHITE } else { BLACK };
                    root.draw_text(&n.to_string(), &font(12, &colour), (x + 5, y + 9))
                        .map_err(|e| err(&e))?;
                }
            }
        }
        if !labelled {
            continue;
        }
        let (rows, cols) = totals(grid);
        let total: i64 = rows.iter().sum();
        root.draw_text(
            &format!("{} — time zone {}", panel.label, panel.time_zone),
            &font(17, &BLACK),
            (left, TOP - 46),
        )
        .map_err(|e| err(&e))?;
        for (d, day) in DAYS.iter().enumerate() {
            root.draw_text(day, &font(14, &BLACK), (left, TOP + d as i32 * CELL_H + 8))
                .map_err(|e| err(&e))?;
            root.draw_text(
                &rows[d].to_string(),
                &font(13, &grey),
                (x0 + 24 * CELL_W + 8, TOP + d as i32 * CELL_H + 9),
            )
            .map_err(|e| err(&e))?;
        }
        root.draw_text("day", &font(12, &grey), (x0 + 24 * CELL_W + 8, TOP - 20))
            .map_err(|e| err(&e))?;
        for h in 0..24 {
            let x = x0 + h * CELL_W + 8;
            root.draw_text(&h.to_string(), &font(13, &BLACK), (x, TOP - 20))
                .map_err(|e| err(&e))?;
            root.draw_text(
                &cols[h as usize].to_string(),
                &font(12, &grey),
                (x - 4, TOP + GRID_H + 8),
            )
            .map_err(|e| err(&e))?;
        }
        root.draw_text(
            &total.to_string(),
            &font(13, &BLACK),
            (x0 + 24 * CELL_W + 8, TOP + GRID_H + 8),
        )
        .map_err(|e| err(&e))?;
        root.draw_text("hour", &font(12, &grey), (left, TOP + GRID_H + 8))
            .map_err(|e| err(&e))?;
    }
    if labelled {
        root.draw_text(title, &font(21, &BLACK), (MARGIN, 12))
            .map_err(|e| err(&e))?;
        legend(&root, max, TOP + GRID_H + 40).map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(labelled)
}

/// The colour scale: empty, then eight steps from 1 to `max` events per
/// cell, each swatch labelled with the count it stands for.
fn legend(
    root: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    max: i64,
    y: i32,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    const STEPS: i64 = 8;
    const SWATCH: i32 = 44;
    let black = ("sans-serif", 13).into_font().color(&BLACK);
    root.draw_text("events per cell:", &black, (MARGIN, y + 4))
        .map_err(e)?;
    let x0 = MARGIN + 112;
    let mut values = vec![0];
    if max > 0 {
        values.extend((1..=STEPS).map(|k| (max * k + STEPS - 1) / STEPS));
        values.dedup();
    }
    for (i, &v) in values.iter().enumerate() {
        let x = x0 + i as i32 * SWATCH;
        root.draw(&Rectangle::new(
            [(x, y), (x + SWATCH - 2, y + 18)],
            shade(v, max).filled(),
        ))
        .map_err(e)?;
        let label = if v == 0 {
            "none".to_string()
        } else {
            format!("≤{v}")
        };
        root.draw_text(&label, &black, (x + 2, y + 24)).map_err(e)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel(label: &str, cells: &[(u8, u8, i64)]) -> Panel {
        Panel {
            label: label.into(),
            time_zone: "Europe/Madrid".into(),
            cells: cells.to_vec(),
        }
    }

    /// Width and height from the PNG header.
    fn size(path: &Path) -> (u32, u32) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let be = |r: std::ops::Range<usize>| u32::from_be_bytes(bytes[r].try_into().unwrap());
        (be(16..20), be(20..24))
    }

    #[test]
    fn panels_sit_side_by_side_on_one_scale() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one.png");
        render_png(&[panel("GitHub", &[(0, 9, 4), (6, 23, 1)])], "t", &one).unwrap();
        assert_eq!(size(&one), (width(1), HEIGHT));
        let three = dir.path().join("three.png");
        let panels = [
            panel("GitHub", &[(0, 9, 4)]),
            panel("Dropbox", &[(1, 10, 2)]),
            panel("e-mail", &[]),
        ];
        render_png(&panels, "t", &three).unwrap();
        assert_eq!(size(&three), (width(3), HEIGHT));
        assert_eq!(width(3) - width(1), 2 * (PANEL_W + GAP) as u32);
        assert_eq!(shade(0, 4), RGBColor(242, 242, 242));
        assert_eq!(shade(4, 4), RGBColor(8, 48, 107));
        assert!(shade(1, 4).0 > shade(4, 4).0);
    }
}
