//! Sweeps: scenario files × deployments × failures × seeds, run on every core, written
//! atomically and in a fixed order whatever the thread count.
//!
//! Each finished run leaves a marker (`runs/<id>.done.json`), written after its other files:
//! the fingerprint of what made it and its results row in full precision. A resumed sweep
//! takes a run from its marker, without running it, when the fingerprint is the one the run
//! would have now; results.csv and summary.json are then the same bytes as an uninterrupted
//! sweep's.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hash::Hasher;
use std::path::{Path, PathBuf};

use models::cluster::{self, RunOutput};
use models::scenario::{Scenario, ScenarioError};
use rayon::prelude::*;
use reports::{compare, results, stats, write_atomic, ResultRow};
use serde::{Deserialize, Serialize};
use sim_core::StableHasher;

/// Why a command failed. Input errors exit with code 2.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A scenario file is unreadable or invalid.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// A results or reference file is unreadable or malformed.
    #[error("{path}: {message}")]
    Input {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An output could not be written.
    #[error("{path}: cannot write: {source}")]
    Output {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The worker threads could not be started.
    #[error("cannot start {threads} worker threads: {message}")]
    Threads {
        /// How many were asked for.
        threads: usize,
        /// Why.
        message: String,
    },
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Scenario(_) | Error::Input { .. } => 2,
            Error::Output { .. } | Error::Threads { .. } => 1,
        }
    }
}

/// One run to do.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// Index of the scenario in the loaded list.
    pub scenario: usize,
    /// Deployment index.
    pub deployment: usize,
    /// Failure index.
    pub failure: usize,
    /// Seed.
    pub seed: u64,
}

/// Loads and validates every file before anything runs; two files may not name their
/// scenarios alike (run ids are made of the names).
pub fn load_all(files: &[PathBuf]) -> Result<Vec<Scenario>, Error> {
    let scenarios = files
        .iter()
        .map(|f| Scenario::load(f).map_err(Error::from))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen: BTreeMap<&str, &Path> = BTreeMap::new();
    for (s, f) in scenarios.iter().zip(files) {
        if let Some(first) = seen.insert(&s.name, f) {
            return Err(Scenario::name_taken(f, first, &s.name).into());
        }
    }
    Ok(scenarios)
}

/// The runs of `scenarios`, in output order; `seeds` overrides each file's seed count.
pub fn plan(scenarios: &[Scenario], seeds: Option<u32>) -> Vec<RunSpec> {
    let mut runs = Vec::new();
    for (si, s) in scenarios.iter().enumerate() {
        for di in 0..s.deployments.len() {
            for fi in 0..s.failures.len() {
                for k in 0..seeds.unwrap_or(s.seeds) {
                    runs.push(RunSpec {
                        scenario: si,
                        deployment: di,
                        failure: fi,
                        seed: s.seed + u64::from(k),
                    });
                }
            }
        }
    }
    runs
}

/// The id of a planned run (the stem of its files).
pub fn run_id(scenarios: &[Scenario], r: &RunSpec) -> String {
    let s = &scenarios[r.scenario];
    results::run_id(
        &s.name,
        &s.deployments[r.deployment].display_name(),
        s.failures[r.failure].kind.name(),
        r.seed,
    )
}

/// This program's identity for fingerprints: a hash of its executable, so a rebuilt
/// dynsim (another model) never takes an older build's runs as its own. `None` when the
/// executable cannot be read: then no run is ever taken.
pub fn build_id() -> Option<u64> {
    let bytes = std::fs::read(std::env::current_exe().ok()?).ok()?;
    let mut h = StableHasher::default();
    h.write(&bytes);
    Some(h.finish())
}

/// What each run is made from: the build, its whole scenario (every field as parsed, a
/// replayed trace's records too) and its deployment, failure and seed.
pub struct Fingerprints {
    /// Per scenario; empty when the build is unknown.
    scenarios: Vec<u64>,
}

impl Fingerprints {
    /// Fingerprints of the runs of `scenarios` made by build `build` ([`build_id`]).
    pub fn new(build: Option<u64>, scenarios: &[Scenario]) -> Fingerprints {
        let Some(build) = build else {
            return Fingerprints {
                scenarios: Vec::new(),
            };
        };
        let scenarios = scenarios
            .iter()
            .map(|s| {
                let mut h = StableHasher::default();
                h.write(&build.to_le_bytes());
                write!(h, "{s:?}").expect("hashing text cannot fail");
                h.finish()
            })
            .collect();
        Fingerprints { scenarios }
    }

    /// The fingerprint of run `r` (`None` if the build is unknown).
    pub fn of(&self, r: &RunSpec) -> Option<u64> {
        let mut h = StableHasher::default();
        for x in [
            *self.scenarios.get(r.scenario)?,
            r.deployment as u64,
            r.failure as u64,
            r.seed,
        ] {
            h.write(&x.to_le_bytes());
        }
        Some(h.finish())
    }
}

/// A finished run's marker (`runs/<id>.done.json`).
#[derive(Serialize, Deserialize)]
struct Marker<R> {
    /// [`Fingerprints::of`] the run, in hex (none when the build was unknown).
    fingerprint: Option<String>,
    /// Its results row, every float as computed.
    row: R,
}

fn marker_path(out: &Path, id: &str) -> PathBuf {
    out.join("runs").join(format!("{id}.done.json"))
}

fn run_files(out: &Path, id: &str) -> [PathBuf; 2] {
    [
        out.join("attempts").join(format!("{id}.csv")),
        out.join("runs").join(format!("{id}.csv")),
    ]
}

/// Removes what a stopped sweep's unfinished writes left in `out` (temporaries beside
/// `results.csv`, `summary.json` and the run files), before a sweep writes there again.
pub fn remove_leftovers(out: &Path) -> Result<(), Error> {
    for dir in [out.to_path_buf(), out.join("runs"), out.join("attempts")] {
        reports::remove_leftovers(&dir).map_err(|source| Error::Output { path: dir, source })?;
    }
    Ok(())
}

/// The row of run `id` as an earlier sweep into `out` finished it, if its marker holds
/// `fingerprint` and its files are there; anything else (no marker, another fingerprint, a
/// damaged marker, a missing file) is `None`: the run is done again.
pub fn finished(out: &Path, id: &str, fingerprint: u64) -> Option<ResultRow> {
    let text = std::fs::read_to_string(marker_path(out, id)).ok()?;
    let m: Marker<ResultRow> = serde_json::from_str(&text).ok()?;
    let ok = m.fingerprint == Some(format!("{fingerprint:016x}"))
        && m.row.id() == id
        && run_files(out, id).iter().all(|p| p.is_file());
    ok.then_some(m.row)
}

/// Executes one run.
pub fn execute(scenarios: &[Scenario], r: &RunSpec) -> (ResultRow, RunOutput) {
    let s = &scenarios[r.scenario];
    let d = &s.deployments[r.deployment];
    let f = &s.failures[r.failure];
    let out = cluster::run(s, d, f, r.seed);
    let row = ResultRow {
        scenario: s.name.clone(),
        deployment: d.display_name(),
        failure: f.kind.name().to_string(),
        seed: r.seed,
        router: d.router_mode(&s.policies).name().to_string(),
        metrics: out.metrics.clone(),
        events: out.events,
        trace_hash: out.trace_hash,
    };
    (row, out)
}

/// Runs everything in parallel (rayon), calling `done` after each run with its row and log
/// (to write it at once), and returns the rows in plan order.
pub fn run_all(
    scenarios: &[Scenario],
    runs: &[RunSpec],
    done: impl Fn(&ResultRow, &RunOutput) -> Result<(), Error> + Sync,
) -> Result<Vec<ResultRow>, Error> {
    run_resuming(scenarios, runs, |_| None, |_, row, out| done(row, out))
}

/// As [`run_all`], but a run for which `reuse` gives a row is not run again: its row takes
/// its place.
pub fn run_resuming(
    scenarios: &[Scenario],
    runs: &[RunSpec],
    reuse: impl Fn(&RunSpec) -> Option<ResultRow> + Sync,
    done: impl Fn(&RunSpec, &ResultRow, &RunOutput) -> Result<(), Error> + Sync,
) -> Result<Vec<ResultRow>, Error> {
    runs.par_iter()
        .map(|r| {
            if let Some(row) = reuse(r) {
                return Ok(row);
            }
            let (row, out) = execute(scenarios, r);
            done(r, &row, &out)?;
            Ok(row)
        })
        .collect()
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    write_atomic(path, text.as_bytes()).map_err(|source| Error::Output {
        path: path.to_owned(),
        source,
    })
}

/// Writes one finished run's files (`attempts/<id>.csv`, `runs/<id>.csv` with its results
/// row) and then its marker with `fingerprint`. An older marker goes first, so none vouches
/// for files a run interrupted now leaves half rewritten.
pub fn write_run(
    out: &Path,
    row: &ResultRow,
    run: &RunOutput,
    fingerprint: Option<u64>,
) -> Result<(), Error> {
    let id = row.id();
    let marker = marker_path(out, &id);
    match std::fs::remove_file(&marker) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::Output {
                path: marker,
                source: e,
            })
        }
        _ => {}
    }
    let [attempts, runs] = run_files(out, &id);
    write(&attempts, &results::attempts_csv(&run.log))?;
    write(&runs, &results::results_csv(std::slice::from_ref(row)))?;
    let m = Marker {
        fingerprint: fingerprint.map(|f| format!("{f:016x}")),
        row,
    };
    write(
        &marker,
        &(serde_json::to_string(&m).expect("JSON of plain values") + "\n"),
    )
}

/// (scenario, deployment, failure).
pub type GroupKey = (String, String, String);

/// Rows grouped by (scenario, deployment, failure), in first-appearance order.
pub fn groups(rows: &[ResultRow]) -> Vec<(GroupKey, Vec<&ResultRow>)> {
    let mut out: Vec<(GroupKey, Vec<&ResultRow>)> = Vec::new();
    for r in rows {
        let key = (r.scenario.clone(), r.deployment.clone(), r.failure.clone());
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(r),
            None => out.push((key, vec![r])),
        }
    }
    out
}

/// The JSON summary: per group, each column's mean, sd and 95 % CI over seeds.
pub fn summary_json(rows: &[ResultRow]) -> String {
    let groups: Vec<serde_json::Value> = groups(rows)
        .into_iter()
        .map(|((s, d, f), rs)| {
            let metrics: serde_json::Map<String, serde_json::Value> = results::numeric_columns()
                .iter()
                .filter_map(|c| {
                    let sum = stats::summarize(rs.iter().map(|r| r.value(c)))?;
                    Some((c.to_string(), serde_json::to_value(sum).ok()?))
                })
                .collect();
            serde_json::json!({
                "scenario": s,
                "deployment": d,
                "failure": f,
                "seeds": rs.iter().map(|r| r.seed).collect::<Vec<_>>(),
                "metrics": metrics,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "dynsim_version": env!("CARGO_PKG_VERSION"),
        "runs": rows.len(),
        "groups": groups,
    });
    serde_json::to_string_pretty(&doc).expect("JSON of plain values") + "\n"
}

/// Writes `results.csv` and `summary.json`.
pub fn write_results(out: &Path, rows: &[ResultRow]) -> Result<(), Error> {
    write(&out.join("results.csv"), &results::results_csv(rows))?;
    write(&out.join("summary.json"), &summary_json(rows))
}

/// Reads `path` and parses it; an unreadable file or a parse error names the file.
fn read_input<T>(path: &Path, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<T, Error> {
    let input = |message| Error::Input {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| input(e.to_string()))?;
    parse(&text).map_err(input)
}

/// Per-seed values of the compared columns in `results.csv`, keyed by (deployment, failure).
/// A reference table names its rows by deployment and failure only, so rows of one key from
/// two scenario files are an error, not a merge.
pub fn seeds_from_csv(path: &Path) -> Result<compare::Seeds, Error> {
    let rows = read_input(path, results::parse_results_csv)?;
    let mut out = compare::Seeds::new();
    let mut owner: BTreeMap<(String, String), String> = BTreeMap::new();
    for row in rows {
        let mut keys = row.keys.into_iter();
        let scenario = keys.next().unwrap_or_default();
        let key = (
            keys.next().unwrap_or_default(),
            keys.next().unwrap_or_default(),
        );
        let first = owner.entry(key.clone()).or_insert_with(|| scenario.clone());
        if *first != scenario {
            return Err(Error::Input {
                path: path.to_owned(),
                message: format!(
                    "deployment `{}` failure `{}` comes from two scenarios (`{first}` and \
                     `{scenario}`); compare one matrix's results, or name the deployments apart",
                    key.0, key.1
                ),
            });
        }
        let e = out.entry(key).or_default();
        for (k, v) in row.values {
            let values = e.entry(k).or_default();
            values.push(v);
        }
    }
    Ok(out)
}

/// Per-seed values of the compared columns of `rows` (of one scenario), keyed by
/// (deployment, failure).
pub fn seeds_of(rows: &[ResultRow]) -> compare::Seeds {
    let mut out = compare::Seeds::new();
    for ((_, d, f), rs) in groups(rows) {
        let cols = compare::COMPARED
            .iter()
            .map(|c| (c.to_string(), rs.iter().map(|r| r.value(c)).collect()))
            .collect();
        out.insert((d, f), cols);
    }
    out
}

/// `dynsim compare`: the per-cell comparison text.
pub fn compare_files(
    results_csv: &Path,
    reference: &Path,
) -> Result<(compare::Comparison, String), Error> {
    let sim = seeds_from_csv(results_csv)?;
    let refs = read_input(reference, compare::parse_reference)?;
    let c = compare::compare(&sim, &refs);
    let text = compare::render(&c);
    Ok((c, text))
}
