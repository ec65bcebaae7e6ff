//! Every kind of bad input gives one clear error (file, line:column, field, what was
//! expected), exit code 2, no panic, and nothing written.

use std::path::{Path, PathBuf};
use std::process::Command;

fn dynsim(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dynsim"))
        .args(args)
        .output()
        .expect("dynsim runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn bad(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/bad")
        .join(name)
        .display()
        .to_string()
}

/// Checks the error of `dynsim check FILE` and of a sweep including it: exit 2, the message
/// holds every `needle`, no panic, and the sweep wrote nothing.
fn assert_rejected(file: &str, needles: &[&str]) {
    let path = bad(file);
    let (code, _, err) = dynsim(&["check", &path]);
    assert_eq!(code, 2, "{file}: exit code; stderr: {err}");
    assert!(!err.contains("panicked"), "{file}: {err}");
    assert_eq!(err.lines().count(), 1, "{file}: one line of error: {err}");
    for n in needles {
        assert!(err.contains(n), "{file}: expected `{n}` in: {err}");
    }
    let out: PathBuf =
        std::env::temp_dir().join(format!("dynsim-bad-{}-{file}", std::process::id()));
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/ft-agg-k8s-a100.ron");
    let (code, _, _) = dynsim(&[
        "sweep",
        good.to_str().unwrap(),
        &path,
        "--out",
        out.to_str().unwrap(),
        "--seeds",
        "1",
    ]);
    assert_eq!(code, 2);
    assert!(
        !out.exists(),
        "{file}: a failed sweep must not write anything"
    );
}

#[test]
fn malformed_ron_names_line_and_column() {
    assert_rejected("malformed.ron", &["malformed.ron:6:5:", "Expected"]);
}

#[test]
fn unknown_fields_are_refused() {
    assert_rejected(
        "unknown_field.ron",
        &["unknown_field.ron:4:52:", "`replicas`"],
    );
}

#[test]
fn missing_fields_are_named() {
    assert_rejected("missing_field.ron", &["missing_field.ron:", "`load`"]);
}

#[test]
fn zero_replicas_point_at_the_field() {
    assert_rejected(
        "dp_zero.ron",
        &[
            "dp_zero.ron:7:20:",
            "`deployments[1].dp`",
            "at least 1 worker replica",
        ],
    );
}

#[test]
fn negative_durations_are_refused() {
    assert_rejected(
        "negative_time.ron",
        &[
            "negative_time.ron:6:45:",
            "`failures[0].at_s`",
            "non-negative",
        ],
    );
    assert_rejected(
        "negative_timeout.ron",
        &[
            "negative_timeout.ron:5:92:",
            "`load.attempt_timeout_s`",
            "positive",
        ],
    );
}

#[test]
fn a_failure_of_a_missing_role_is_refused() {
    assert_rejected(
        "missing_role.ron",
        &["missing_role.ron:6:45:", "`failures[1].kind`", "prefill"],
    );
}

#[test]
fn more_kills_than_replicas_are_refused() {
    assert_rejected(
        "too_many_kills.ron",
        &["too_many_kills.ron:6:", "`failures[0].count`", "at most 2"],
    );
}

#[test]
fn a_malformed_trace_line_is_named() {
    assert_rejected(
        "bad_trace.ron",
        &["bad_trace.jsonl:3:", "not a trace record"],
    );
}

#[test]
fn an_unreadable_file_is_an_input_error() {
    let (code, _, err) = dynsim(&["check", "/nonexistent/scenario.ron"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("/nonexistent/scenario.ron: cannot read"),
        "{err}"
    );
}

#[test]
fn every_shipped_scenario_checks() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        let (code, out, err) = dynsim(&["check", p.to_str().unwrap()]);
        assert_eq!(code, 0, "{}: {err}", p.display());
        assert!(out.starts_with("ok: "), "{out}");
    }
}

#[test]
fn two_deployments_of_one_name_are_rejected() {
    assert_rejected(
        "same_name.ron",
        &[
            "same_name.ron:7:",
            "`deployments[1].name`",
            "deployments[0] is also `agg-tp-1-dp-1`",
        ],
    );
}

#[test]
fn an_impossible_profile_override_names_its_field() {
    assert_rejected(
        "bad_override.ron",
        &[
            "bad_override.ron:6:9:",
            "`profile_overrides.lease_ttl_s`",
            "a number from 1 to 1,000,000",
        ],
    );
}

#[test]
fn an_unknown_profile_override_lists_the_known_ones() {
    assert_rejected(
        "unknown_override.ron",
        &["unknown_override.ron:5:9:", "`nic_gbps`", "`nic_gbit_s`"],
    );
}

#[test]
fn a_lease_ttl_below_the_keepalive_interval_is_rejected() {
    assert_rejected(
        "keepalive_override.ron",
        &[
            "keepalive_override.ron:5:",
            "`profile_overrides.lease_ttl_s`",
            "shorter than the lease TTL (now 5 s and 3 s)",
        ],
    );
}

#[test]
fn a_node_smaller_than_a_tp_group_is_rejected() {
    assert_rejected(
        "small_node.ron",
        &[
            "small_node.ron:6:20:",
            "`deployments[0].gpus_per_node`",
            "at least 4 GPUs per node",
        ],
    );
}

#[test]
fn values_past_the_simulators_ranges_are_refused() {
    // Each would otherwise run as something else: a NaN weight panics the router, a path in
    // a name writes outside the output, 65,537 clients wrap to one, a prompt near 2^32
    // tokens wraps the engine's capacity check and hangs, seeds wrap to 0, a huge index
    // wraps past the check and hits nothing, a fault after the cut-off never happens.
    let cases: &[(&str, &[&str])] = &[
        (
            "nan_weight_trace.ron",
            &[
                "nan_weight_trace.ron:7:16:",
                "`policies.kv_overlap_weight`",
                "finite",
            ],
        ),
        ("path_name.ron", &["path_name.ron:3:5:", "`name`", "ASCII"]),
        (
            "too_many_clients.ron",
            &["too_many_clients.ron:6:", "`load.clients`", "1 to 60000"],
        ),
        (
            "huge_prompt.ron",
            &[
                "huge_prompt.ron:6:",
                "`load.input_tokens`",
                "at most 10000000",
            ],
        ),
        (
            "seed_overflow.ron",
            &["seed_overflow.ron:5:5:", "`seed`", "64 bits"],
        ),
        (
            "index_overflow.ron",
            &["index_overflow.ron:9:", "`failures[1].index`", "below 1"],
        ),
        (
            "fault_after_end.ron",
            &[
                "fault_after_end.ron:8:",
                "`failures[0].at_s`",
                "`max_sim_s` is 600 s",
            ],
        ),
    ];
    for (file, needles) in cases {
        assert_rejected(file, needles);
    }
}

#[test]
fn two_files_of_one_scenario_name_are_rejected_before_anything_runs() {
    // Their runs would write the same files (one file listed twice, or an edited copy).
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/ft-agg-k8s-a100.ron");
    let good = good.to_str().unwrap();
    let out = std::env::temp_dir().join(format!("dynsim-twice-{}", std::process::id()));
    let (code, _, err) = dynsim(&["sweep", good, good, "--out", out.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("ft-agg-k8s-a100.ron:"), "{err}");
    assert!(err.contains("field `name`"), "{err}");
    assert!(err.contains("is `ft-agg-k8s-a100` too"), "{err}");
    assert!(!out.exists(), "nothing is written");
}

#[test]
fn impossible_sweep_options_are_usage_errors() {
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/ft-agg-k8s-a100.ron");
    let out = std::env::temp_dir().join(format!("dynsim-opts-{}", std::process::id()));
    for args in [["--seeds", "0"], ["--seeds", "4294967295"], ["--jobs", "0"]] {
        let (code, _, err) = dynsim(&[
            "sweep",
            good.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            args[0],
            args[1],
        ]);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(args[0]), "{args:?}: {err}");
        assert!(!out.exists(), "{args:?}: nothing is written");
    }
}

#[test]
fn a_reader_that_goes_away_ends_the_program_quietly() {
    // `dynsim run … | head -1` with the reader gone before the tables are printed: the pipe
    // is closed at once, and the run takes tens of milliseconds before it prints.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_dynsim"))
        .args([
            "run",
            root.join("scenarios/ft-agg-k8s-a100.ron").to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(err.is_empty(), "{err}");
}
