//! Rendering of a user's 7×24 activity heatmap: shaded text for the
//! terminal (pure: cells in, text out) and a PNG image (`png`).

pub mod png;

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
        assert_eq!(lines.len(), 9);
        assert!(lines[1].starts_with("Sun"));
        assert!(lines[1].trim_end().ends_with('4'));
        assert_eq!(lines[1].chars().filter(|&c| c == '█').count(), 1);
        assert!(lines[7].starts_with("Sat"));
        assert!(lines[7].contains('░'));
        assert!(lines[8].starts_with("total 7"));
    }

    #[test]
    fn empty_and_out_of_range_cells() {
        let text = render(&[(9, 1, 5), (1, 30, 5)]);
        assert!(text.contains("total 0"));
    }
}
