//! The main job end to end: `sweep` prints the tables and writes the files; `compare` prints
//! every cell and the summary line.

use std::path::Path;
use std::process::Command;

#[test]
fn sweep_writes_results_and_compare_reads_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("dynsim-cli-{}", std::process::id()));
    let scenario = root.join("scenarios/ft-agg-k8s-a100.ron");
    let sweep = Command::new(env!("CARGO_BIN_EXE_dynsim"))
        .args([
            "sweep",
            scenario.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--seeds",
            "2",
        ])
        .output()
        .unwrap();
    assert!(sweep.status.success());
    let stdout = String::from_utf8_lossy(&sweep.stdout);
    assert!(stdout.contains("Test Group: agg-tp-1-dp-1"), "{stdout}");
    assert!(stdout.contains("Test Group: agg-tp-1-dp-2"), "{stdout}");
    assert!(stdout.contains("│ vllm_decode_engine_core │"), "{stdout}");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert!(csv.starts_with(&reports::COLUMNS.join(",")));
    assert_eq!(
        csv.lines().count(),
        1 + 12 * 2,
        "header + 12 rows × 2 seeds"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["runs"], 24);
    assert_eq!(std::fs::read_dir(out.join("attempts")).unwrap().count(), 24);

    let compare = Command::new(env!("CARGO_BIN_EXE_dynsim"))
        .args([
            "compare",
            out.join("results.csv").to_str().unwrap(),
            root.join("tests/data/ft-results-k8s-a100.csv")
                .to_str()
                .unwrap(),
        ])
        .output()
        .unwrap();
    assert!(compare.status.success());
    let text = String::from_utf8_lossy(&compare.stdout);
    let last = text.lines().last().unwrap();
    assert!(
        last.ends_with("/12 reference rows within tolerance"),
        "{last}"
    );
    assert!(
        text.contains("18 reference rows not in the results"),
        "{text}"
    );
    // One line per compared cell: 12 rows × 8 columns after a header; a header and a line per
    // row of the seeds that meet it alone; four summary lines.
    assert_eq!(text.lines().count(), 1 + 12 * 8 + 1 + 12 + 4, "{text}");
    assert!(
        text.contains("reference rows met by one simulated run, on average over the seeds"),
        "{text}"
    );
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn compare_refuses_one_row_key_from_two_scenarios() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("dynsim-cli-dup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The suite's aggregated matrix under another scenario name: same deployments, same
    // failures.
    let text = std::fs::read_to_string(root.join("scenarios/ft-agg-k8s-a100.ron")).unwrap();
    let copy = dir.join("copy.ron");
    std::fs::write(
        &copy,
        text.replace("name: \"ft-agg-k8s-a100\"", "name: \"ft-agg-copy\""),
    )
    .unwrap();
    let out = dir.join("out");
    let sweep = Command::new(env!("CARGO_BIN_EXE_dynsim"))
        .args(["sweep", "--seeds", "1", "--out", out.to_str().unwrap()])
        .arg(root.join("scenarios/ft-agg-k8s-a100.ron"))
        .arg(&copy)
        .output()
        .unwrap();
    assert!(sweep.status.success());
    let compare = Command::new(env!("CARGO_BIN_EXE_dynsim"))
        .arg("compare")
        .arg(out.join("results.csv"))
        .arg(root.join("tests/data/ft-results-k8s-a100.csv"))
        .output()
        .unwrap();
    assert_eq!(compare.status.code(), Some(2));
    let err = String::from_utf8_lossy(&compare.stderr);
    assert!(
        err.contains("ft-agg-k8s-a100") && err.contains("ft-agg-copy"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
