//! Rendering of a user's 7×24 activity heatmap: shaded text for the
//! terminal (pure: cells in, text out) and a PNG image (`png`) of one or
//! more panels (one integration each, or all together) side by side.

pub mod png;

/// One heatmap to draw: its label (the integration, or "all
/// integrations"), the time zone its buckets are in, and its
/// `(dow, hour, count)` cells.
#[derive(Clone, Debug)]
pub struct Panel {
    pub label: String,
    pub time_zone: String,
    pub cells: Vec<(u8, u8, i64)>,
}

/// Row (day) and column (hour) totals of a grid.
pub fn totals(grid: &[[i64; 24]; 7]) -> ([i64; 7], [i64; 24]) {
    let mut rows = [0i64; 7];
    let mut cols = [0i64; 24];
    for (d, row) in grid.iter().enumerate() {
        for (h, &n) in row.iter().enumerate() {
            rows[d] += n;
            cols[h] += n;
        }
    }
    (rows, cols)
}

/// Day names by `dow` (0 = Sunday).
pub const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const SHADES: [char; 5] = ['·', '░', '▒', '▓', '█'];

/// `(dow, hour, count)` cells as a 7×24 grid (out-of-range cells dropped).
pub fn grid(cells: &[(u8, u8, i64)]) -> [[i64; 24]; 7] {
    let mut grid = [[0i64; 24]; 7];
    for &(dow, hour, n) in cells {
        if let (Some(row), true) = (grid.get_mut(usize::from(dow)), hour < 24) {
            row[usize::from(hour)] += n;
        }
    }
    grid
}

/// Render `(dow, hour, count)` cells as a shaded grid with row totals.
pub fn render(cells: &[(u8, u8, i64)]) -> String {
    let grid = grid(cells);
    let max = grid.iter().flatten().copied().max().unwrap_or(0);
    let mut out = String::from("      0     3     6     9     12    15    18    21     total\n");
    for (d, row) in grid.iter().enumerate() {
        out.push_str(&format!("{:<5} ", DAYS[d]));
        for &n in row {
            let shade = if n <= 0 || max <= 0 {
                SHADES[0]
            } else {
                // 1..=4 by quarter of the maximum.
                SHADES[(1 + (n * 4 - 1) / max).clamp(1, 4) as usize]
            };
            out.push(shade);
            out.push(' ');
        }
        out.push_str(&format!("{:>7}\n", row.iter().sum::<i64>()));
    }
    let (_, cols) = totals(&grid);
    out.push_str("hour  ");
    let widest = cols.iter().map(|n| n.to_string().len()).max().unwrap_or(1);
    if widest == 1 {
        for n in cols {
            out.push_str(&format!("{n} "));
        }
        out.push('\n');
    } else {
        // Column totals too wide for the grid's two-character columns.
        let list: Vec<String> = cols
            .iter()
            .enumerate()
            .filter(|(_, n)| **n != 0)
            .map(|(h, n)| format!("{h}h {n}"))
            .collect();
        out.push_str(&format!("totals: {}\n", list.join(", ")));
    }
    out.push_str(&format!(
        "total {}   (max {} per cell; · none  ░ ▒ ▓ █ by quarter of max)\n",
        grid.iter().flatten().sum::<i64>(),
        max
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cells_and_totals() {
        let text = render(&[(0, 9, 4), (6, 23, 1), (1, 0, 2)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 10);
        assert!(lines[1].starts_with("Sun"));
        assert!(lines[1].trim_end().ends_with('4'));
        assert_eq!(lines[1].chars().filter(|&c| c == '█').count(), 1);
        assert!(lines[7].starts_with("Sat"));
        assert!(lines[7].contains('░'));
        assert!(
            lines[8].starts_with("hour  2 0 0 0 0 0 0 0 0 4 "),
            "{}",
            lines[8]
        );
        assert!(lines[9].starts_with("total 7"));
    }

    #[test]
    fn empty_and_out_of_range_cells() {
        let text = render(&[(9, 1, 5), (1, 30, 5)]);
        assert!(text.contains("total 0"));
    }

    #[test]
    fn row_and_column_totals_add_up() {
        let cells = [(0, 9, 4), (0, 10, 12), (3, 9, 30), (6, 23, 1)];
        let (rows, cols) = totals(&grid(&cells));
        assert_eq!(rows, [16, 0, 0, 30, 0, 0, 1]);
        assert_eq!((cols[9], cols[10], cols[23]), (34, 12, 1));
        assert_eq!(rows.iter().sum::<i64>(), cols.iter().sum::<i64>());
        let text = render(&cells);
        assert!(text.contains("totals: 9h 34, 10h 12, 23h 1"), "{text}");
    }
}
