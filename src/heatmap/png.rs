//! The heatmap as a PNG image (plotters, bitmap backend): one cell per day
//! of week and hour, shaded by count, with the count, day and hour labels
//! and a title. Text needs a TrueType font: `STREAMFOLD_FONT`, else the
//! first of the usual system sans-serif fonts found; without one the image
//! is drawn without text (and the caller is told).

use super::{DAYS, grid};
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

const WIDTH: u32 = 1040;
const HEIGHT: u32 = 380;
const LEFT: i32 = 64;
const TOP: i32 = 64;
const CELL_W: i32 = 40;
const CELL_H: i32 = 40;

/// Colour of a cell: light grey when empty, then light to dark blue.
fn shade(n: i64, max: i64) -> RGBColor {
    if n <= 0 || max <= 0 {
        return RGBColor(242, 242, 242);
    }
    let t = (n as f64 / max as f64).clamp(0.0, 1.0);
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
    RGBColor(mix(198, 8), mix(219, 48), mix(239, 107))
}

/// Draw `cells` to `path`. Returns whether the text could be drawn.
pub fn render_png(cells: &[(u8, u8, i64)], title: &str, path: &Path) -> Result<bool, PngError> {
    let err = |e: &dyn std::fmt::Display| PngError {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let labelled = font_available();
    let grid = grid(cells);
    let max = grid.iter().flatten().copied().max().unwrap_or(0);
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    for (d, row) in grid.iter().enumerate() {
        for (h, &n) in row.iter().enumerate() {
            let x = LEFT + h as i32 * CELL_W;
            let y = TOP + d as i32 * CELL_H;
            root.draw(&Rectangle::new(
                [(x + 1, y + 1), (x + CELL_W - 1, y + CELL_H - 1)],
                shade(n, max).filled(),
            ))
            .map_err(|e| err(&e))?;
            if labelled && n > 0 {
                let colour = if n * 2 > max { WHITE } else { BLACK };
                let style = ("sans-serif", 14).into_font().color(&colour);
                root.draw_text(&n.to_string(), &style, (x + 8, y + 13))
                    .map_err(|e| err(&e))?;
            }
        }
    }
    if labelled {
        let text = ("sans-serif", 16).into_font().color(&BLACK);
        root.draw_text(
            title,
            &("sans-serif", 20).into_font().color(&BLACK),
            (LEFT, 12),
        )
        .map_err(|e| err(&e))?;
        for (d, day) in DAYS.iter().enumerate() {
            root.draw_text(day, &text, (16, TOP + d as i32 * CELL_H + 12))
                .map_err(|e| err(&e))?;
        }
        for h in 0..24 {
            root.draw_text(&h.to_string(), &text, (LEFT + h * CELL_W + 12, TOP - 22))
                .map_err(|e| err(&e))?;
        }
        let total: i64 = grid.iter().flatten().sum();
        let note =
            format!("total {total}, max {max} per cell (day of week × hour, user's time zone)");
        root.draw_text(&note, &text, (LEFT, TOP + 7 * CELL_H + 12))
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(labelled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_shaded_by_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.png");
        render_png(&[(0, 9, 4), (6, 23, 1)], "test", &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height.
        assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), WIDTH);
        assert_eq!(
            u32::from_be_bytes(bytes[20..24].try_into().unwrap()),
            HEIGHT
        );
        assert_eq!(shade(0, 4), RGBColor(242, 242, 242));
        assert_eq!(shade(4, 4), RGBColor(8, 48, 107));
        assert!(shade(1, 4).0 > shade(4, 4).0);
    }
}
