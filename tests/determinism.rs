//! Determinism: the same sweep is byte-identical whatever the thread count, and a resumed
//! sweep writes what an uninterrupted one does; the same run twice has the same trace hash;
//! another seed has another.

use std::path::{Path, PathBuf};
use std::process::Command;

fn agg() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/ft-agg-k8s-a100.ron")
}

/// Sweeps `scenario` with two seeds into `out` on `threads` threads; returns stdout.
fn sweep(scenario: &Path, threads: &str, out: &Path, extra: &[&str]) -> String {
    let status = Command::new(env!("CARGO_BIN_EXE_dynsim"))
        .args([
            "sweep",
            scenario.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--seeds",
            "2",
        ])
        .args(extra)
        .env("RAYON_NUM_THREADS", threads)
        .output()
        .expect("dynsim runs");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    String::from_utf8(status.stdout).unwrap()
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn one_thread_and_two_threads_write_identical_files() {
    let base = std::env::temp_dir().join(format!("dynsim-det-{}", std::process::id()));
    let (a, b) = (base.join("t1"), base.join("t2"));
    sweep(&agg(), "1", &a, &[]);
    sweep(&agg(), "2", &b, &[]);
    let (fa, fb) = (files(&a), files(&b));
    assert!(
        fa.len() > 24,
        "results, summary and a file per run: {}",
        fa.len()
    );
    assert_eq!(fa.len(), fb.len());
    for ((pa, ca), (pb, cb)) in fa.iter().zip(&fb) {
        assert_eq!(pa, pb);
        assert!(ca == cb, "{} differs between 1 and 2 threads", pa.display());
    }
    std::fs::remove_dir_all(base).unwrap();
}

/// The stdout line's count of runs taken from the earlier sweep.
fn taken(stdout: &str) -> usize {
    let line = stdout.lines().last().unwrap();
    let n = line
        .split(" (")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .unwrap_or_else(|| panic!("no count of runs taken: {line}"));
    n.parse().unwrap()
}

#[test]
fn a_resumed_sweep_redoes_only_unfinished_runs_and_writes_the_same_bytes() {
    let base = std::env::temp_dir().join(format!("dynsim-resume-{}", std::process::id()));
    let out = base.join("out");
    let first = sweep(&agg(), "2", &out, &[]);
    assert!(!first.contains("taken"), "{first}");
    let whole = files(&out);
    let runs = out.join("runs");
    let id =
        |dep: &str, fail: &str, seed: u32| format!("ft-agg-k8s-a100__{dep}__{fail}__seed{seed}");
    let marker = |id: &str| runs.join(format!("{id}.done.json"));

    // Everything finished: nothing is run again.
    assert_eq!(taken(&sweep(&agg(), "2", &out, &["--resume"])), 24);

    // As a sweep stopped part-way leaves it: three runs without their marker, one marker
    // cut short, one from another build or scenario, one run whose attempt file is gone.
    for (dep, fail, seed) in [
        ("agg-tp-1-dp-1", "frontend", 1),
        ("agg-tp-1-dp-2", "frontend", 2),
        ("agg-tp-1-dp-2", "decode_worker_pod", 1),
    ] {
        std::fs::remove_file(marker(&id(dep, fail, seed))).unwrap();
    }
    let cut = marker(&id("agg-tp-1-dp-1", "none", 1));
    let text = std::fs::read_to_string(&cut).unwrap();
    std::fs::write(&cut, &text[..text.len() / 2]).unwrap();
    let other = marker(&id("agg-tp-1-dp-1", "decode_worker", 2));
    let text = std::fs::read_to_string(&other).unwrap();
    let hex = text.split('"').nth(3).unwrap().to_string();
    std::fs::write(&other, text.replace(&hex, "0123456789abcdef")).unwrap();
    std::fs::remove_file(out.join("attempts").join(format!(
        "{}.csv",
        id("agg-tp-1-dp-2", "vllm_decode_engine_core", 1)
    )))
    .unwrap();
    // And the temporary of a write it did not finish.
    let half = format!(".{}.csv.tmp.4242", id("agg-tp-1-dp-2", "frontend", 1));
    std::fs::write(runs.join(half), "scenario,deploy").unwrap();
    let resumed = sweep(&agg(), "1", &out, &["--resume"]);
    assert_eq!(taken(&resumed), 24 - 6, "{resumed}");
    let again = files(&out);
    assert_eq!(whole.len(), again.len());
    for ((pa, ca), (pb, cb)) in whole.iter().zip(&again) {
        assert_eq!(pa, pb);
        assert!(ca == cb, "{} differs after the resumed sweep", pa.display());
    }

    // An edited scenario is another input: none of its runs is taken, even where the edit
    // changes no number.
    let text = std::fs::read_to_string(agg()).unwrap();
    let edited = base.join("edited.ron");
    let description = "description: \"";
    assert!(text.contains(description));
    std::fs::write(
        &edited,
        text.replacen(description, "description: \"Edited. ", 1),
    )
    .unwrap();
    assert_eq!(taken(&sweep(&edited, "2", &out, &["--resume"])), 0);
    std::fs::remove_dir_all(base).unwrap();
}

#[test]
fn same_seed_same_trace_other_seed_other_trace() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/ft-agg-k8s-a100.ron");
    let s = models::scenario::Scenario::load(&path).unwrap();
    let (d, f) = (&s.deployments[0], &s.failures[3]);
    let a = models::cluster::run(&s, d, f, 7);
    let b = models::cluster::run(&s, d, f, 7);
    let c = models::cluster::run(&s, d, f, 8);
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.metrics, b.metrics);
    assert_eq!(a.events, b.events);
    assert_ne!(a.trace_hash, c.trace_hash);
}
