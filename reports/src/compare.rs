//! Simulated rows against a measured table (`ft-results-k8s-a100.csv`), cell by cell.
//!
//! Tolerances (the calibration rules of the issue tracker's aggregated issue): counts within
//! ±10 % or ±10, whichever is larger; latency ±5 %; recovery ±10 %. Startup (±10 %) and the
//! latency before the fault (±5 %) are the same quantity in every row of a deployment, so they
//! are held against that deployment's mean over its rows (the `none` row's latency, whose
//! window is the whole run, keeps its own value). Simulated values are means over seeds.
//!
//! Each published row is ONE run, so a cell can miss the mean while the run is one the model
//! produces: every cell also carries the range of its per-seed values, and a miss whose held-to
//! value lies inside that range (or is N/A where some seed's is) is marked `MISS*`: that cell
//! is within the model's spread over seeds, its mean is not. Cells are judged one by one, not
//! as one seed's whole row.
//! The count of rows within tolerance, the calibration rule, is the last line.

use std::collections::BTreeMap;

/// The columns compared, in the reference's order.
pub const COMPARED: &[&str] = &[
    "startup_s",
    "success_before",
    "failed_before",
    "success_after",
    "failed_after",
    "latency_before_s",
    "latency_after_s",
    "recovery_s",
];

/// Simulated per-seed values by (deployment, failure), then by column (missing values left out).
pub type Seeds = BTreeMap<(String, String), BTreeMap<String, Vec<Option<f64>>>>;

/// A row of a measured table.
#[derive(Clone, Debug)]
pub struct RefRow {
    /// Deployment name.
    pub deployment: String,
    /// Failure kind.
    pub failure: String,
    /// Values by column; `None` for N/A.
    pub values: BTreeMap<String, Option<f64>>,
}

/// Parses a measured table (`deployment,failure,<columns>`, `N/A` for missing).
pub fn parse_reference(text: &str) -> Result<Vec<RefRow>, String> {
    let rows = crate::results::read_csv(text, &["deployment", "failure"], &[])?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let mut k = r.keys.into_iter();
            RefRow {
                deployment: k.next().unwrap_or_default(),
                failure: k.next().unwrap_or_default(),
                values: r.values,
            }
        })
        .collect())
}

/// One compared cell.
#[derive(Clone, Debug)]
pub struct Cell {
    /// Deployment.
    pub deployment: String,
    /// Failure kind.
    pub failure: String,
    /// Column.
    pub column: &'static str,
    /// The measured value of this row.
    pub measured: Option<f64>,
    /// What the simulated value is held against (the row's value, or the deployment mean).
    pub target: Option<f64>,
    /// Simulated mean over seeds.
    pub simulated: Option<f64>,
    /// Smallest and largest per-seed simulated value.
    pub range: Option<(f64, f64)>,
    /// Whether some seed has no value (N/A) for this cell.
    pub some_na: bool,
    /// Allowed absolute deviation.
    pub tolerance: f64,
    /// Whether the cell is within tolerance.
    pub ok: bool,
}

impl Cell {
    /// Whether the held-to value lies within the per-seed range (an N/A one: whether some
    /// seed's value is N/A too).
    pub fn in_range(&self) -> bool {
        match (self.target, self.range) {
            (Some(t), Some((lo, hi))) => lo - 1e-9 <= t && t <= hi + 1e-9,
            (None, _) => self.some_na,
            (Some(_), None) => false,
        }
    }

    /// Simulated minus target, if both exist.
    pub fn error(&self) -> Option<f64> {
        Some(self.simulated? - self.target?)
    }
}

/// The whole comparison.
#[derive(Clone, Debug, Default)]
pub struct Comparison {
    /// Every compared cell, in reference order.
    pub cells: Vec<Cell>,
    /// Reference rows (deployment, failure) and whether every cell of each is within tolerance.
    pub rows: Vec<(String, String, bool)>,
    /// Per reference row (as `rows`): of its seeds, how many have every cell of their own
    /// run within tolerance of the held-to values — how often one simulated run meets the one
    /// measured run — and how many seeds there are.
    pub seeds_within: Vec<(usize, usize)>,
    /// Reference rows the results do not cover (not simulated), left out of the count.
    pub not_simulated: Vec<(String, String)>,
}

impl Comparison {
    /// Rows within tolerance.
    pub fn rows_ok(&self) -> usize {
        self.rows.iter().filter(|r| r.2).count()
    }

    /// The mean over rows of the share of seeds whose own run meets the row: the rows one
    /// simulated run can be expected to meet.
    pub fn rows_single_run(&self) -> f64 {
        self.seeds_within
            .iter()
            .map(|&(k, n)| if n == 0 { 0.0 } else { k as f64 / n as f64 })
            .sum()
    }

    /// Rows whose every cell is within tolerance or has its held-to value inside the per-seed
    /// range.
    pub fn rows_plausible(&self) -> usize {
        self.rows
            .iter()
            .filter(|(d, f, _)| {
                self.cells
                    .iter()
                    .filter(|c| &c.deployment == d && &c.failure == f)
                    .all(|c| c.ok || c.in_range())
            })
            .count()
    }
}

fn tolerance(column: &str, target: f64) -> f64 {
    match column {
        "startup_s" | "recovery_s" => 0.10 * target.abs(),
        "latency_before_s" | "latency_after_s" => 0.05 * target.abs(),
        _ => (0.10 * target.abs()).max(10.0),
    }
}

/// Whether a value (a mean or one seed's) meets `target` within `tol`: both N/A, or both
/// present and close.
fn meets(value: Option<f64>, target: Option<f64>, tol: f64) -> bool {
    match (target, value) {
        (Some(t), Some(v)) => (v - t).abs() <= tol + 1e-9,
        (None, None) => true,
        _ => false,
    }
}

/// Compares the per-seed values `sim[(deployment, failure)][column]` (their mean, and their
/// range) with `reference`.
pub fn compare(sim: &Seeds, reference: &[RefRow]) -> Comparison {
    let deployment_mean = |dep: &str, column: &str, skip_none: bool| -> Option<f64> {
        let v: Vec<f64> = reference
            .iter()
            .filter(|r| r.deployment == dep && !(skip_none && r.failure == "none"))
            .filter_map(|r| r.values.get(column).copied().flatten())
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let mut out = Comparison::default();
    for r in reference {
        let key = (r.deployment.clone(), r.failure.clone());
        let Some(simrow) = sim.get(&key) else {
            out.not_simulated.push(key);
            continue;
        };
        let n_seeds = simrow.values().map(Vec::len).max().unwrap_or(0);
        let mut seed_ok = vec![true; n_seeds];
        let simrow = Some(simrow);
        let mut row_ok = true;
        for &column in COMPARED {
            let measured = r.values.get(column).copied().flatten();
            let target = match column {
                "startup_s" => deployment_mean(&r.deployment, column, false),
                "latency_before_s" if r.failure != "none" => {
                    deployment_mean(&r.deployment, column, true)
                }
                _ => measured,
            };
            let all = simrow.and_then(|s| s.get(column));
            let some_na = all.is_some_and(|v| v.iter().any(Option::is_none));
            let present: Vec<f64> = all.into_iter().flatten().flatten().copied().collect();
            let seeds = Some(&present).filter(|v| !v.is_empty());
            let simulated = seeds.map(|v| v.iter().sum::<f64>() / v.len() as f64);
            let range = seeds.map(|v| {
                v.iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                        (lo.min(x), hi.max(x))
                    })
            });
            let tol = target.map_or(0.0, |t| tolerance(column, t));
            let ok = meets(simulated, target, tol);
            row_ok &= ok;
            for (i, seed) in seed_ok.iter_mut().enumerate() {
                let value = all.and_then(|v| v.get(i).copied().flatten());
                *seed &= meets(value, target, tol);
            }
            out.cells.push(Cell {
                deployment: r.deployment.clone(),
                failure: r.failure.clone(),
                column,
                measured,
                target,
                simulated,
                range,
                some_na,
                tolerance: tol,
                ok,
            });
        }
        out.rows
            .push((r.deployment.clone(), r.failure.clone(), row_ok));
        let within = seed_ok.iter().filter(|&&ok| ok).count();
        out.seeds_within.push((within, n_seeds));
    }
    out
}

/// The comparison as text: one line per cell; per row, how many seeds' own runs meet it; the
/// rows one simulated run meets on average; the count of rows within tolerance or inside the
/// seeds' range; and last `K/N reference rows within tolerance`.
pub fn render(c: &Comparison) -> String {
    let fmt = |x: Option<f64>| x.map_or("N/A".to_string(), |v| format!("{v:.2}"));
    let mut s = format!(
        "{:<16} {:<26} {:<18} {:>10} {:>10} {:>10} {:>9} {:>7} {:>19}  {}\n",
        "deployment",
        "failure",
        "column",
        "measured",
        "held_to",
        "simulated",
        "error",
        "tol",
        "seed_range",
        "ok"
    );
    for cell in &c.cells {
        let range = cell
            .range
            .map_or("-".to_string(), |(lo, hi)| format!("{lo:.2}..{hi:.2}"));
        s.push_str(&format!(
            "{:<16} {:<26} {:<18} {:>10} {:>10} {:>10} {:>9} {:>7.2} {:>19}  {}\n",
            cell.deployment,
            cell.failure,
            cell.column,
            fmt(cell.measured),
            fmt(cell.target),
            fmt(cell.simulated),
            cell.error().map_or("-".into(), |e| format!("{e:+.2}")),
            cell.tolerance,
            range,
            match (cell.ok, cell.in_range()) {
                (true, _) => "ok",
                (false, true) => "MISS*",
                (false, false) => "MISS",
            }
        ));
    }
    s.push_str(&format!(
        "{:<16} {:<26} seeds whose own run is within tolerance (one simulated run against the \
         one measured run)\n",
        "deployment", "failure"
    ));
    for ((d, f, _), (k, n)) in c.rows.iter().zip(&c.seeds_within) {
        s.push_str(&format!("{d:<16} {f:<26} {k}/{n}\n"));
    }
    if !c.not_simulated.is_empty() {
        s.push_str(&format!(
            "{} reference rows not in the results (not simulated)\n",
            c.not_simulated.len()
        ));
    }
    s.push_str(&format!(
        "{:.1}/{} reference rows met by one simulated run, on average over the seeds\n",
        c.rows_single_run(),
        c.rows.len()
    ));
    s.push_str(&format!(
        "{}/{} reference rows within tolerance or, where not, inside the seeds' range (MISS*)\n",
        c.rows_plausible(),
        c.rows.len()
    ));
    s.push_str(&format!(
        "{}/{} reference rows within tolerance\n",
        c.rows_ok(),
        c.rows.len()
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const REF: &str = "deployment,failure,startup_s,success_before,failed_before,success_after,failed_after,latency_before_s,latency_after_s,recovery_s
d,none,100.00,1500.00,0.00,N/A,N/A,1.00,N/A,N/A
d,x,120.00,100.00,0.00,50.00,200.00,2.00,1.00,10.00";

    type Cols<'a> = &'a [(&'a str, Option<f64>)];

    fn sim(rows: &[(&str, Cols<'_>)]) -> Seeds {
        rows.iter()
            .map(|(f, vals)| {
                (
                    ("d".to_string(), f.to_string()),
                    vals.iter()
                        .map(|(k, v)| (k.to_string(), vec![*v]))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn tolerances_and_deployment_means() {
        let r = parse_reference(REF).unwrap();
        let none: &[(&str, Option<f64>)] = &[
            ("startup_s", Some(121.0)), // mean 110 ± 11
            ("success_before", Some(1500.0)),
            ("failed_before", Some(0.0)),
            ("latency_before_s", Some(1.04)), // own value 1.00 ± 0.05
        ];
        let x: &[(&str, Option<f64>)] = &[
            ("startup_s", Some(99.0)),
            ("success_before", Some(110.0)), // ± max(10, 10)
            ("failed_before", Some(9.0)),
            ("success_after", Some(61.0)), // 50 ± 10: miss
            ("failed_after", Some(219.0)),
            ("latency_before_s", Some(2.09)), // held to its own (only non-none) row: 2.00 ± 0.10
            ("latency_after_s", Some(1.05)),
            ("recovery_s", Some(10.9)),
        ];
        let c = compare(&sim(&[("none", none), ("x", x)]), &r);
        assert!(c.not_simulated.is_empty());
        let only_none = compare(&sim(&[("none", none)]), &r);
        assert_eq!(
            only_none.not_simulated,
            vec![("d".to_string(), "x".to_string())]
        );
        assert_eq!((only_none.rows_ok(), only_none.rows.len()), (1, 1));
        let miss: Vec<_> = c
            .cells
            .iter()
            .filter(|c| !c.ok)
            .map(|c| (c.failure.as_str(), c.column))
            .collect();
        assert_eq!(miss, vec![("x", "success_after")]);
        assert_eq!(c.rows_ok(), 1);
        assert!(render(&c).ends_with("1/2 reference rows within tolerance\n"));
        assert!(render(&c).contains("1/2 reference rows within tolerance or, where not, inside"));
    }

    #[test]
    fn a_cell_measured_n_a_is_in_range_when_some_seed_is_n_a() {
        let r = parse_reference(REF).unwrap();
        let none = |recovery: Vec<Option<f64>>| -> Seeds {
            let cols: BTreeMap<String, Vec<Option<f64>>> = [
                ("startup_s", vec![Some(110.0)]),
                ("success_before", vec![Some(1500.0)]),
                ("failed_before", vec![Some(0.0)]),
                ("latency_before_s", vec![Some(1.0)]),
                ("recovery_s", recovery),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            [(("d".to_string(), "none".to_string()), cols)].into()
        };
        let cell = |c: &Comparison| {
            c.cells
                .iter()
                .find(|c| c.failure == "none" && c.column == "recovery_s")
                .cloned()
                .unwrap()
        };
        // Measured N/A; one seed of two has a value: the mean misses, the spread does not.
        let some = compare(&none(vec![None, Some(5.0)]), &r);
        assert!(!cell(&some).ok && cell(&some).in_range());
        let all = compare(&none(vec![Some(4.0), Some(5.0)]), &r);
        assert!(!cell(&all).ok && !cell(&all).in_range());
        let neither = compare(&none(vec![None, None]), &r);
        assert!(cell(&neither).ok);
    }

    #[test]
    fn a_miss_inside_the_seed_range_is_told_apart() {
        let r = parse_reference(REF).unwrap();
        let row = |failed_after: &[f64]| -> Seeds {
            // Every seed has the same value in every other cell.
            let mut cols: BTreeMap<String, Vec<Option<f64>>> = [
                ("startup_s", 110.0),
                ("success_before", 100.0),
                ("failed_before", 0.0),
                ("success_after", 50.0),
                ("latency_before_s", 2.0),
                ("latency_after_s", 1.0),
                ("recovery_s", 10.0),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), vec![Some(v); failed_after.len()]))
            .collect();
            cols.insert(
                "failed_after".into(),
                failed_after.iter().copied().map(Some).collect(),
            );
            [(("d".to_string(), "x".to_string()), cols)].into()
        };
        // Measured 200 ± 20: a mean of 160 misses; seeds 100..220 contain the run.
        let inside = compare(&row(&[100.0, 160.0, 220.0]), &r);
        let cell = inside
            .cells
            .iter()
            .find(|c| c.column == "failed_after")
            .unwrap();
        assert!(!cell.ok && cell.in_range());
        assert_eq!(cell.range, Some((100.0, 220.0)));
        assert_eq!((inside.rows_ok(), inside.rows_plausible()), (0, 1));
        let starred = |c: &Comparison| render(c).lines().filter(|l| l.ends_with("MISS*")).count();
        assert_eq!(starred(&inside), 1);
        // Seeds 150..170 do not.
        let outside = compare(&row(&[150.0, 160.0, 170.0]), &r);
        assert_eq!((outside.rows_ok(), outside.rows_plausible()), (0, 0));
        assert_eq!(starred(&outside), 0);
        // One run against one run: of seeds 100, 160 and 220, only 220 is within 200 ± 20
        // (the other cells hold for every seed).
        assert_eq!(inside.seeds_within, vec![(1, 3)]);
        assert!((inside.rows_single_run() - 1.0 / 3.0).abs() < 1e-12);
        assert!(render(&inside).contains("\nd                x                          1/3\n"));
        assert_eq!(outside.seeds_within, vec![(0, 3)]);
    }

    #[test]
    fn bad_reference_lines_are_named() {
        assert!(parse_reference("deployment,failure,a\nd,x")
            .unwrap_err()
            .starts_with("line 2:"));
        assert!(parse_reference("x,y\n").is_err());
        assert!(parse_reference("deployment,failure,a\nd,x,fast")
            .unwrap_err()
            .contains("`a` is not a number"));
    }
}
