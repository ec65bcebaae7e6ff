//! `dynsim`: run, sweep, check and compare Dynamo fault-tolerance scenarios.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::{Parser, Subcommand};
use dynsim::sweep::{self, Error};
use indicatif::{ProgressBar, ProgressStyle};
use models::scenario::limits;
use reports::{table, ResultRow};

#[derive(Parser)]
#[command(
    name = "dynsim",
    version,
    about = "Deterministic simulator of NVIDIA Dynamo serving clusters under faults"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario file with one seed and print its tables.
    Run {
        /// Scenario file (RON).
        file: PathBuf,
        /// Seed (default: the file's `seed`).
        #[arg(long)]
        seed: Option<u64>,
        /// Also write results.csv, summary.json and per-run files here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run scenario files × deployments × failures × seeds on every core.
    Sweep {
        /// Scenario files (RON).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Seeds per run (default: each file's `seeds`).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(limits::SEEDS)))]
        seeds: Option<u32>,
        /// Worker threads (default: all cores; RAYON_NUM_THREADS also works).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=4096))]
        jobs: Option<u16>,
        /// Take the runs an earlier sweep into the same directory finished, by this same
        /// build from the same scenario, instead of running them again.
        #[arg(long)]
        resume: bool,
    },
    /// Parse and validate scenario files without running them.
    Check {
        /// Scenario files (RON).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Compare a sweep's results.csv with a measured table, cell by cell.
    Compare {
        /// The sweep's results.csv.
        results: PathBuf,
        /// The measured table (e.g. ft-results-k8s-a100.csv).
        reference: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dynsim: error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// Writes `text` to standard output. A reader that has gone (`dynsim compare … | head`)
/// ends the program quietly: every file is written before anything is printed.
fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("dynsim: error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// One results table per (scenario, deployment), of its first seed.
fn tables(rows: &[ResultRow]) -> String {
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut text = String::new();
    for r in rows {
        let key = (r.scenario.clone(), r.deployment.clone());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let mine: Vec<&ResultRow> = rows
            .iter()
            .filter(|x| {
                x.scenario == r.scenario && x.deployment == r.deployment && x.seed == r.seed
            })
            .collect();
        let title = format!(
            "{} (scenario {}, seed {})",
            r.deployment, r.scenario, r.seed
        );
        text.push_str(&table::render(&title, &mine));
        text.push('\n');
    }
    text
}

/// What a sweep did: its rows in plan order, and how many of them an earlier sweep had
/// finished.
struct Swept {
    rows: Vec<ResultRow>,
    reused: usize,
}

fn sweep_to(
    files: &[PathBuf],
    out: Option<&Path>,
    seeds: Option<u32>,
    single_seed: Option<u64>,
    resume: bool,
) -> Result<Swept, Error> {
    let mut scenarios = sweep::load_all(files)?;
    if let Some(s) = single_seed {
        for sc in &mut scenarios {
            sc.seed = s;
        }
    }
    let runs = sweep::plan(&scenarios, seeds);
    if let Some(out) = out {
        sweep::remove_leftovers(out)?;
    }
    let build = out.and_then(|_| sweep::build_id());
    if resume && build.is_none() {
        eprintln!(
            "dynsim: cannot read this program's executable to fingerprint runs: no run is taken"
        );
    }
    let prints = out.map(|_| sweep::Fingerprints::new(build, &scenarios));
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::new(runs.len() as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} runs {elapsed}")
                .expect("valid template"),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let reused = AtomicUsize::new(0);
    let rows = sweep::run_resuming(
        &scenarios,
        &runs,
        |r| {
            let (out, prints) = (out?, prints.as_ref()?);
            if !resume {
                return None;
            }
            let row = sweep::finished(out, &sweep::run_id(&scenarios, r), prints.of(r)?)?;
            reused.fetch_add(1, Ordering::Relaxed);
            bar.inc(1);
            Some(row)
        },
        |r, row, run| {
            if let (Some(out), Some(prints)) = (out, &prints) {
                sweep::write_run(out, row, run, prints.of(r))?;
            }
            bar.inc(1);
            Ok(())
        },
    )?;
    bar.finish_and_clear();
    if let Some(out) = out {
        sweep::write_results(out, &rows)?;
    }
    Ok(Swept {
        rows,
        reused: reused.into_inner(),
    })
}

fn run(cmd: Command) -> Result<(), Error> {
    match cmd {
        Command::Run { file, seed, out } => {
            let swept = sweep_to(&[file], out.as_deref(), Some(1), seed, false)?;
            say(&tables(&swept.rows));
        }
        Command::Sweep {
            files,
            out,
            seeds,
            jobs,
            resume,
        } => {
            // 0: rayon's default (every core, or RAYON_NUM_THREADS).
            let threads = jobs.map_or(0, usize::from);
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map_err(|e| Error::Threads {
                    threads,
                    message: e.to_string(),
                })?;
            let swept = pool.install(|| sweep_to(&files, Some(&out), seeds, None, resume))?;
            let mut text = tables(&swept.rows);
            text.push_str(&format!(
                "{} runs written to {}",
                swept.rows.len(),
                out.join("results.csv").display()
            ));
            if resume {
                text.push_str(&format!(" ({} taken from the earlier sweep)", swept.reused));
            }
            text.push('\n');
            say(&text);
        }
        Command::Check { files } => {
            for f in &files {
                let s = models::scenario::Scenario::load(f)?;
                let (d, fl) = (s.deployments.len() as u64, s.failures.len() as u64);
                let runs = d * fl * u64::from(s.seeds);
                say(&format!(
                    "ok: {} ({d} deployments × {fl} failures × {} seeds = {runs} runs)\n",
                    f.display(),
                    s.seeds
                ));
            }
        }
        Command::Compare { results, reference } => {
            let (_, text) = sweep::compare_files(&results, &reference)?;
            say(&text);
        }
    }
    Ok(())
}
