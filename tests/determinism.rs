//! Determinism: the same sweep is byte-identical whatever the thread count; the same run
//! twice has the same trace hash; another seed has another.

use std::path::{Path, PathBuf};
use std::process::Command;

fn sweep(threads: &str, out: &Path) {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/ft-agg-k8s-a100.ron");
    let status = Command::new(env!("CARGO_BIN_EXE_dynsim"))
        .args([
            "sweep",
            scenario.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--seeds",
            "2",
        ])
        .env("RAYON_NUM_THREADS", threads)
        .output()
        .expect("dynsim runs");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
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
    sweep("1", &a);
    sweep("2", &b);
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
