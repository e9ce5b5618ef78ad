//! The heatmap as a PNG image (plotters, bitmap backend): panels side by
//! side (at most 1920 pixels wide, so three integrations fit a screen),
//! each a grid of day of week × hour shaded on one shared scale of even
//! bins, with its integration, time zone, counts, per-day and per-hour
//! totals and its total; the period the data covers under the title; a
//! legend of the bins. Text needs a TrueType font: `STREAMFOLD_FONT`, else
//! the first of the usual system sans-serif fonts found; without one the
//! image is drawn without text (and the caller is told which font is
//! missing). Glyphs are placed by their own metrics (`text`).

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

/// The font text is drawn in, loaded once: `STREAMFOLD_FONT`, else the
/// first usual system font found. `Err` says why there is none.
fn font() -> &'static Result<ab_glyph::FontRef<'static>, String> {
    static FONT: OnceLock<Result<ab_glyph::FontRef<'static>, String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let load = |path: &str| -> Result<ab_glyph::FontRef<'static>, String> {
            let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
            // Loaded once, kept for the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            let font = ab_glyph::FontRef::try_from_slice(bytes)
                .map_err(|_| format!("{path}: not a TrueType / OpenType font"))?;
            register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| format!("{path}: the font cannot be used"))?;
            Ok(font)
        };
        // A `STREAMFOLD_FONT` that cannot be used is said by the command
        // (`stats`), which then falls back to the usual system fonts.
        let chosen = std::env::var("STREAMFOLD_FONT")
            .ok()
            .filter(|p| !p.is_empty())
            .and_then(|p| load(&p).ok());
        chosen
            .or_else(|| FONT_CANDIDATES.iter().find_map(|p| load(p).ok()))
            .ok_or_else(|| {
                "no TrueType font found among the usual system fonts (set \
                 STREAMFOLD_FONT=/path/to/font.ttf)"
                    .to_string()
            })
    })
}

/// Widest image, so that three panels side by side fit a common screen.
const MAX_WIDTH: i32 = 1920;
/// Cell width with one or two panels.
const CELL_W_MAX: i32 = 32;
/// Left of each panel's grid: the day names.
const DAY_LABELS: i32 = 44;
/// Right of each panel's grid: the row totals.
const ROW_TOTALS: i32 = 64;
const GAP: i32 = 28;
const MARGIN: i32 = 16;
/// Top of the grids: the title, the period, the panel labels and the hour
/// labels above.
const TOP: i32 = 112;
/// Below the grids: the column totals, the legend.
const BOTTOM: i32 = 104;

/// The geometry of `n` panels side by side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    cell_w: i32,
    cell_h: i32,
    panel_w: i32,
    width: u32,
    height: u32,
}

impl Layout {
    fn of(panels: usize) -> Layout {
        let n = panels.max(1) as i32;
        let room = (MAX_WIDTH - 2 * MARGIN - (n - 1) * GAP) / n - DAY_LABELS - ROW_TOTALS;
        let cell_w = (room / 24).clamp(18, CELL_W_MAX);
        let cell_h = (cell_w * 15 / 16).max(18);
        let panel_w = DAY_LABELS + 24 * cell_w + ROW_TOTALS;
        Layout {
            cell_w,
            cell_h,
            panel_w,
            width: (2 * MARGIN + n * panel_w + (n - 1) * GAP) as u32,
            height: (TOP + 7 * cell_h + BOTTOM) as u32,
        }
    }
}

/// The colour scale: equal bins of a round width (1, 2 or 5 × 10^k), at
/// most eight, from 1 to the largest count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bins {
    step: i64,
    count: i64,
}

impl Bins {
    fn of(max: i64) -> Bins {
        let max = max.max(1);
        let mut step = 1i64;
        'search: loop {
            for m in [1, 2, 5] {
                if step.saturating_mul(m).saturating_mul(8) >= max {
                    step = step.saturating_mul(m);
                    break 'search;
                }
            }
            step = step.saturating_mul(10);
        }
        Bins {
            step,
            count: (max + step - 1) / step,
        }
    }

    /// 1-based bin of a count (0 for none).
    fn of_count(&self, n: i64) -> i64 {
        if n <= 0 {
            0
        } else {
            ((n - 1) / self.step + 1).min(self.count)
        }
    }

    fn label(&self, bin: i64) -> String {
        let (lo, hi) = ((bin - 1) * self.step + 1, bin * self.step);
        if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}–{hi}")
        }
    }
}

/// Colour of a bin: light grey when empty, then light to dark blue.
fn shade(bin: i64, bins: &Bins) -> RGBColor {
    if bin <= 0 {
        return RGBColor(242, 242, 242);
    }
    let t = if bins.count <= 1 {
        1.0
    } else {
        (bin - 1) as f64 / (bins.count - 1) as f64
    };
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
    RGBColor(mix(198, 8), mix(219, 48), mix(239, 107))
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// Text at `at` in `size` px, glyph by glyph: plotters' ab_glyph drawing
/// drops each glyph's left side bearing ("T ue", "time z one"), so each
/// glyph is placed at its pen position plus its bearing here.
fn text(
    root: &Area<'_>,
    font: &ab_glyph::FontRef<'static>,
    s: &str,
    size: u32,
    colour: &RGBColor,
    at: (i32, i32),
) -> Result<(), String> {
    use ab_glyph::{Font, ScaleFont};
    let scaled = font.as_scaled(size as f32);
    let style = ("sans-serif", size).into_font().color(colour);
    let mut pen = 0f32;
    let mut prev = None;
    let mut buf = [0u8; 4];
    for c in s.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = prev {
            pen += scaled.kern(p, id);
        }
        prev = Some(id);
        if let Some(outline) = scaled.outline_glyph(scaled.scaled_glyph(c)) {
            let bearing = outline.px_bounds().min.x;
            root.draw_text(
                c.encode_utf8(&mut buf),
                &style,
                (at.0 + (pen + bearing).round() as i32, at.1),
            )
            .map_err(|e| e.to_string())?;
        }
        pen += scaled.h_advance(id);
    }
    Ok(())
}

/// Draw `panels` side by side to `path`, under `title` and `subtitle` (the
/// period the data covers), on one colour scale of even bins, each with
/// its time zone, per-day and per-hour totals and its total, and one
/// legend. Returns `Err` in `Ok` when no font could be loaded: the image is
/// then drawn without text, and the reason says which font is missing.
pub fn render_png(
    panels: &[Panel],
    title: &str,
    subtitle: Option<&str>,
    path: &Path,
) -> Result<Result<(), String>, PngError> {
    let err = |e: &dyn std::fmt::Display| PngError {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let font = font().as_ref();
    let layout = Layout::of(panels.len());
    let Layout {
        cell_w,
        cell_h,
        panel_w,
        ..
    } = layout;
    let grid_h = 7 * cell_h;
    let grids: Vec<[[i64; 24]; 7]> = panels.iter().map(|p| grid(&p.cells)).collect();
    let max = grids.iter().flatten().flatten().copied().max().unwrap_or(0);
    let bins = Bins::of(max);
    let root = BitMapBackend::new(path, (layout.width, layout.height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let grey = RGBColor(90, 90, 90);
    let count_size = if cell_w >= 28 { 12 } else { 10 };
    for (i, (panel, grid)) in panels.iter().zip(&grids).enumerate() {
        let left = MARGIN + i as i32 * (panel_w + GAP);
        let x0 = left + DAY_LABELS;
        for (d, row) in grid.iter().enumerate() {
            for (h, &n) in row.iter().enumerate() {
                let x = x0 + h as i32 * cell_w;
                let y = TOP + d as i32 * cell_h;
                let bin = bins.of_count(n);
                root.draw(&Rectangle::new(
                    [(x + 1, y + 1), (x + cell_w - 1, y + cell_h - 1)],
                    shade(bin, &bins).filled(),
                ))
                .map_err(|e| err(&e))?;
                if let Ok(f) = font
                    && n > 0
                {
                    let colour = if bin * 2 > bins.count { WHITE } else { BLACK };
                    text(
                        &root,
                        f,
                        &n.to_string(),
                        count_size,
                        &colour,
                        (x + 4, y + cell_h / 2 - 6),
                    )
                    .map_err(|e| err(&e))?;
                }
            }
        }
        let Ok(f) = font else { continue };
        let t = |s: &str, size: u32, colour: &RGBColor, at: (i32, i32)| {
            text(&root, f, s, size, colour, at).map_err(|e| err(&e))
        };
        let (rows, cols) = totals(grid);
        let total: i64 = rows.iter().sum();
        t(
            &format!("{} — time zone {}", panel.label, panel.time_zone),
            17,
            &BLACK,
            (left, TOP - 46),
        )?;
        let right = x0 + 24 * cell_w + 8;
        t("per day", 12, &grey, (right, TOP - 20))?;
        for (d, day) in DAYS.iter().enumerate() {
            let y = TOP + d as i32 * cell_h + cell_h / 2 - 7;
            t(day, 14, &BLACK, (left, y))?;
            t(&rows[d].to_string(), 13, &grey, (right, y))?;
        }
        for h in 0..24 {
            let x = x0 + h * cell_w + 4;
            t(&h.to_string(), 12, &BLACK, (x, TOP - 20))?;
            t(
                &cols[h as usize].to_string(),
                11,
                &grey,
                (x, TOP + grid_h + 8),
            )?;
        }
        t("per hour", 12, &grey, (left - 4, TOP + grid_h + 8))?;
        t(
            &format!("total {total}"),
            13,
            &BLACK,
            (right, TOP + grid_h + 8),
        )?;
    }
    if let Ok(f) = font {
        text(&root, f, title, 21, &BLACK, (MARGIN, 12)).map_err(|e| err(&e))?;
        if let Some(sub) = subtitle {
            text(&root, f, sub, 14, &grey, (MARGIN, 42)).map_err(|e| err(&e))?;
        }
        legend(&root, f, &bins, max, TOP + grid_h + 40).map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(font.map(|_| ()).map_err(|e| e.clone()))
}

/// The colour scale: none, then each bin with the counts it holds.
fn legend(
    root: &Area<'_>,
    font: &ab_glyph::FontRef<'static>,
    bins: &Bins,
    max: i64,
    y: i32,
) -> Result<(), String> {
    const SWATCH: i32 = 64;
    text(root, font, "events per cell:", 13, &BLACK, (MARGIN, y + 4))?;
    let x0 = MARGIN + 116;
    let shown = if max > 0 { bins.count } else { 0 };
    for bin in 0..=shown {
        let x = x0 + bin as i32 * SWATCH;
        root.draw(&Rectangle::new(
            [(x, y), (x + SWATCH - 2, y + 18)],
            shade(bin, bins).filled(),
        ))
        .map_err(|e| e.to_string())?;
        let label = if bin == 0 {
            "none".to_string()
        } else {
            bins.label(bin)
        };
        text(root, font, &label, 13, &BLACK, (x + 2, y + 24))?;
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
    fn panels_sit_side_by_side_within_a_screen() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one.png");
        let _text = render_png(
            &[panel("GitHub", &[(0, 9, 4), (6, 23, 1)])],
            "t",
            None,
            &one,
        )
        .unwrap();
        let l1 = Layout::of(1);
        assert_eq!(size(&one), (l1.width, l1.height));
        let three = dir.path().join("three.png");
        let panels = [
            panel("GitHub", &[(0, 9, 4)]),
            panel("Dropbox", &[(1, 10, 2)]),
            panel("e-mail", &[]),
        ];
        // Drawn with or without a font: the size is the same.
        let _text = render_png(&panels, "t", Some("events from a to b"), &three).unwrap();
        let l3 = Layout::of(3);
        assert_eq!(size(&three), (l3.width, l3.height));
        // Three integrations fit a 1920-pixel screen, and stay readable.
        assert!(l3.width <= MAX_WIDTH as u32 && l3.cell_w >= 18, "{l3:?}");
        assert!(l1.width <= MAX_WIDTH as u32 && l1.cell_w == CELL_W_MAX);
    }

    #[test]
    fn legend_bins_are_even_and_round() {
        for (max, step, count) in [
            (1, 1, 1),
            (8, 1, 8),
            (9, 2, 5),
            (20, 5, 4),
            (41, 10, 5),
            (400, 50, 8),
        ] {
            assert_eq!(Bins::of(max), Bins { step, count }, "max {max}");
        }
        let b = Bins::of(20);
        assert_eq!(
            (b.label(1), b.label(4)),
            ("1–5".to_string(), "16–20".to_string())
        );
        assert_eq!(
            (
                b.of_count(0),
                b.of_count(1),
                b.of_count(5),
                b.of_count(6),
                b.of_count(20)
            ),
            (0, 1, 1, 2, 4)
        );
        assert_eq!(Bins::of(3).label(2), "2");
        assert_eq!(shade(0, &b), RGBColor(242, 242, 242));
        assert_eq!(shade(4, &b), RGBColor(8, 48, 107));
        assert!(shade(1, &b).0 > shade(4, &b).0);
    }

    #[test]
    fn glyphs_keep_their_side_bearings() {
        use ab_glyph::{Font, ScaleFont};
        // Where a font is installed: the pen advances by each glyph's
        // advance, and a glyph sits at pen + its bearing, so "Tue" draws
        // 'u' right after 'T' (as the font's metrics say), not a gap later.
        let Ok(f) = font() else { return };
        let s = f.as_scaled(14.0);
        let t = s.scaled_glyph('T');
        let bearing_u = s
            .outline_glyph(s.scaled_glyph('u'))
            .unwrap()
            .px_bounds()
            .min
            .x;
        let pen_u = s.h_advance(t.id) + s.kern(t.id, s.glyph_id('u'));
        assert!(bearing_u > 0.0 && pen_u > 0.0);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("t.png");
        render_png(&[panel("Tue", &[(2, 1, 1)])], "time zone", None, &out)
            .unwrap()
            .unwrap();
    }
}
