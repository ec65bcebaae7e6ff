//! `dynsim`: run, sweep, check and compare Dynamo fault-tolerance scenarios.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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

fn sweep_to(
    files: &[PathBuf],
    out: Option<&Path>,
    seeds: Option<u32>,
    single_seed: Option<u64>,
) -> Result<Vec<ResultRow>, Error> {
    let mut scenarios = sweep::load_all(files)?;
    if let Some(s) = single_seed {
        for sc in &mut scenarios {
            sc.seed = s;
        }
    }
    let runs = sweep::plan(&scenarios, seeds);
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
    let rows = sweep::run_all(&scenarios, &runs, |row, run| {
        if let Some(out) = out {
            sweep::write_run(out, row, run)?;
        }
        bar.inc(1);
        Ok(())
    })?;
    bar.finish_and_clear();
    if let Some(out) = out {
        sweep::write_results(out, &rows)?;
    }
    Ok(rows)
}

fn run(cmd: Command) -> Result<(), Error> {
    match cmd {
        Command::Run { file, seed, out } => {
            let rows = sweep_to(&[file], out.as_deref(), Some(1), seed)?;
            print_tables(&rows);
        }
        Command::Sweep {
            files,
            out,
            seeds,
            jobs,
        } => {
            if let Some(j) = jobs {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(j.max(1))
                    .build_global()
                    .ok();
            }
            let rows = sweep_to(&files, Some(&out), seeds, None)?;
            print_tables(&rows);
            println!(
                "{} runs written to {}",
                rows.len(),
                out.join("results.csv").display()
            );
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
