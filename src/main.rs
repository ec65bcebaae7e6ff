//! `dynsim`: run, sweep, check and compare Dynamo fault-tolerance scenarios.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::{Parser, Subcommand};
use dynsim::sweep::{self, Error};
use indicatif::{ProgressBar, ProgressStyle};
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
        #[arg(long)]
        seeds: Option<u32>,
        /// Worker threads (default: all cores; RAYON_NUM_THREADS also works).
        #[arg(long)]
        jobs: Option<usize>,
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

fn print_tables(rows: &[ResultRow]) {
    let mut seen: Vec<(String, String)> = Vec::new();
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
        println!(
            "{}",
            table::render(
                &format!(
                    "{} (scenario {}, seed {})",
                    r.deployment, r.scenario, r.seed
                ),
                &mine
            )
        );
    }
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
    let prints = match out {
        Some(_) => Some(sweep::Fingerprints::new(sweep::build_id()?, &scenarios)),
        None => None,
    };
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
            let row = sweep::finished(out, &sweep::run_id(&scenarios, r), prints.of(r))?;
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
            print_tables(&swept.rows);
        }
        Command::Sweep {
            files,
            out,
            seeds,
            jobs,
            resume,
        } => {
            if let Some(j) = jobs {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(j.max(1))
                    .build_global()
                    .ok();
            }
            let swept = sweep_to(&files, Some(&out), seeds, None, resume)?;
            print_tables(&swept.rows);
            print!(
                "{} runs written to {}",
                swept.rows.len(),
                out.join("results.csv").display()
            );
            if resume {
                print!(" ({} taken from the earlier sweep)", swept.reused);
            }
            println!();
        }
        Command::Check { files } => {
            for f in &files {
                let s = models::scenario::Scenario::load(f)?;
                let runs = sweep::plan(std::slice::from_ref(&s), None).len();
                println!(
                    "ok: {} ({} deployments × {} failures × {} seeds = {runs} runs)",
                    f.display(),
                    s.deployments.len(),
                    s.failures.len(),
                    s.seeds
                );
            }
        }
        Command::Compare { results, reference } => {
            let (_, text) = sweep::compare_files(&results, &reference)?;
            print!("{text}");
        }
    }
    Ok(())
}
