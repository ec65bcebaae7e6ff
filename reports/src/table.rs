//! The suite's results table on the terminal: one table per deployment.

use crate::results::ResultRow;

const HEAD: &[&str] = &[
    "Failure",
    "Startup",
    "Success Before",
    "Failed Before",
    "Success After",
    "Failed After",
    "Latency Before",
    "Latency After",
    "Recovery",
];
/// The suite's columns after "Failure", in its order.
const COLS: &[&str] = crate::compare::COMPARED;

/// Renders `rows` (all of one deployment) as the suite prints it, with a heading line.
pub fn render(title: &str, rows: &[&ResultRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            std::iter::once(r.failure.clone())
                .chain(
                    COLS.iter()
                        .map(|c| r.value(c).map_or("N/A".to_string(), |v| format!("{v:.2}"))),
                )
                .collect()
        })
        .collect();
    let widths: Vec<usize> = (0..HEAD.len())
        .map(|i| {
            cells
                .iter()
                .map(|r| r[i].len())
                .chain([HEAD[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |l: char, m: char, r: char| {
        let mut s = String::new();
        s.push(l);
        for (i, w) in widths.iter().enumerate() {
            s.push_str(&"─".repeat(w + 2));
            s.push(if i + 1 == widths.len() { r } else { m });
        }
        s.push('\n');
        s
    };
    let row = |vals: &[String]| {
        let mut s = String::from("│");
        for (i, (v, w)) in vals.iter().zip(&widths).enumerate() {
            if i == 0 {
                s.push_str(&format!(" {v:<w$} │"));
            } else {
                s.push_str(&format!(" {v:>w$} │"));
            }
        }
        s.push('\n');
        s
    };
    let mut s = format!("Test Group: {title}\n");
    s.push_str(&line('┌', '┬', '┐'));
    s.push_str(&row(&HEAD
        .iter()
        .map(|h| h.to_string())
        .collect::<Vec<_>>()));
    s.push_str(&line('├', '┼', '┤'));
    for c in &cells {
        s.push_str(&row(c));
    }
    s.push_str(&line('└', '┴', '┘'));
    s
}
