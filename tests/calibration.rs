//! Calibration: the 30 rows of the published A100 tables (`tests/data/ft-results-k8s-a100.csv`,
//! copied from `shared/reference/`) against `scenarios/ft-agg-k8s-a100.ron` (12 rows) and
//! `scenarios/ft-disagg-k8s-a100.ron` (18 rows), all with the ONE `a100-k8s` profile, means over
//! the files' seeds, within the tolerance rules of `reports::compare`. Every row must be met
//! except the listed known gaps, each with the mechanism the model lacks; and every listed gap
//! must still be a miss, so a row that starts to match leaves the list.

use std::path::Path;

use models::scenario::Scenario;
use reports::compare;

/// Aggregated rows the model does not meet yet, and why.
const AGG_GAPS: &[(&str, &str, &str)] = &[
    (
        "agg-tp-1-dp-1",
        "frontend",
        "Missing mechanism: whatever makes the kubelet mark a RESTARTED frontend container Ready \
         later (≈90–100 s of failures in the agg and disagg `frontend` rows) than a REPLACEMENT \
         pod (≈65–68 s in both `frontend_pod` rows); dynsim's kubelet (probe ticks from pod start, \
         probes triggered by pod syncs, resync every 60–90 s) gives ≈75 s for both. Its recovery \
         (3.36 s) is also ~1 s below the three other published frontend rows (4.28–4.37 s), which \
         the model's 4.0 s matches.",
    ),
    (
        "agg-tp-1-dp-1",
        "frontend_pod",
        "Same missing kubelet mechanism (a replacement pod's readiness ≈65 s measured vs ≈77 s \
         modelled); in addition the measured run lost two clients to kr8s' NotFoundError, where \
         the race (a pod deleted between the list and its refresh) kills 0.5 per run on average — \
         the rate the four published frontend_pod runs (2 deaths in 40 client-deletions) imply.",
    ),
];

/// Disaggregated rows the model does not meet yet, and why. (Issue 4 allows 3 gaps over all 30
/// rows; with the two aggregated ones above this list is over that budget: the issue stays open.)
const DISAGG_GAPS: &[(&str, &str, &str)] = &[
    (
        "disagg-tp-1-dp-1",
        "frontend",
        "The restarted-frontend readiness gap of agg-tp-1-dp-1 `frontend`: 583 failures measured \
         (~100 s without a Ready frontend) against 460 modelled (~75 s).",
    ),
    (
        "disagg-tp-1-dp-1",
        "decode_worker_pod",
        "Recovery 174 s measured, 18 s above every other worker row of the tables (152–157 s), \
         and latency after 1.83 s where the deployment's two other decode restarts give 1.98 s \
         and 2.12 s: one run's spread that a mean over seeds of one process-start distribution \
         (152 ± 1.5 s) does not have.",
    ),
    (
        "disagg-tp-1-dp-1",
        "prefill_worker",
        "70 failures measured vs a 57.5 mean; the model's seeds give 35–73 (lease expiry and the \
         decode's 5-s prefill check fall at random phases), so the run lies inside the spread, \
         but 15 more than the pod-delete row (55, modelled 56) is not explained.",
    ),
    (
        "disagg-tp-1-dp-2",
        "vllm_decode_engine_core",
        "Latency after 1.64 s vs 1.56 s (tolerance 0.078): while one decode worker serves with \
         both prefill workers the model's serial hand-off gives ~1.88 s per request; the three \
         measured decode-restart rows (1.56–1.58 s) imply ~1.70 s.",
    ),
    (
        "disagg-tp-1-dp-2",
        "vllm_prefill_engine_core",
        "The model takes down every decode engine with a hand-off from the dead prefill engine \
         pending (one of the two in most seeds, both in some); the measured run lost neither \
         (2 failures), while the dp-1 row lost its decode engine (849). What decides it is not \
         known; a shorter window (the KV read only) would lose the dp-1 row.",
    ),
];

/// Sweeps one scenario file, compares its means with the reference and asserts every row but
/// the gaps is met and every gap is missed. Returns the printed table.
fn held_to_reference(file: &str, rows: usize, gaps: &[(&str, &str, &str)]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scenario = Scenario::load(&root.join(file)).expect("valid scenario");
    let reference =
        std::fs::read_to_string(root.join("tests/data/ft-results-k8s-a100.csv")).unwrap();
    let reference = compare::parse_reference(&reference).unwrap();
    let runs = dynsim::sweep::plan(std::slice::from_ref(&scenario), None);
    assert!(
        scenario.seeds >= 10,
        "calibration is held over at least 10 seeds"
    );
    let results =
        dynsim::sweep::run_all(std::slice::from_ref(&scenario), &runs, |_, _| Ok(())).unwrap();
    let seeds = dynsim::sweep::seeds_of(&results);
    let c = compare::compare(&seeds, &reference);
    let report = compare::render(&c);
    assert_eq!(
        c.rows.len(),
        rows,
        "every reference row is simulated:\n{report}"
    );
    for g in gaps {
        assert!(
            c.rows.iter().any(|(d, f, _)| d == g.0 && f == g.1),
            "known gap {} {} is not a row of {file}",
            g.0,
            g.1
        );
    }
    for (dep, fail, ok) in &c.rows {
        let gap = gaps.iter().any(|g| g.0 == dep && g.1 == fail);
        if gap {
            assert!(
                !ok,
                "{dep} {fail} now matches: take it off the known gaps:\n{report}"
            );
        } else {
            assert!(ok, "{dep} {fail} is outside tolerance:\n{report}");
        }
    }
    report
}

#[test]
fn aggregated_rows_match_the_published_a100_tables() {
    assert!(AGG_GAPS.len() <= 2, "issue 3 allows two aggregated gaps");
    let report = held_to_reference("scenarios/ft-agg-k8s-a100.ron", 12, AGG_GAPS);
    eprintln!("{report}");
}

#[test]
fn disaggregated_rows_match_the_published_a100_tables() {
    let report = held_to_reference("scenarios/ft-disagg-k8s-a100.ron", 18, DISAGG_GAPS);
    eprintln!("{report}");
}
