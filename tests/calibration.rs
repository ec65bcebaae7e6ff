//! Calibration: the 12 aggregated rows of the published A100 tables
//! (`tests/data/ft-results-k8s-a100.csv`, copied from `shared/reference/`) are reproduced by
//! `scenarios/ft-agg-k8s-a100.ron` with the ONE `a100-k8s` profile, means over the file's seeds,
//! within the tolerance rules of `reports::compare`. Every row must be met except the listed
//! known gaps, each with the mechanism the model lacks.

use std::path::Path;

use models::scenario::Scenario;
use reports::compare;

/// Rows the model does not meet yet, and why.
const KNOWN_GAPS: &[(&str, &str, &str)] = &[
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

#[test]
fn aggregated_rows_match_the_published_a100_tables() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scenario =
        Scenario::load(&root.join("scenarios/ft-agg-k8s-a100.ron")).expect("valid scenario");
    let reference =
        std::fs::read_to_string(root.join("tests/data/ft-results-k8s-a100.csv")).unwrap();
    let reference = compare::parse_reference(&reference).unwrap();
    let runs = dynsim::sweep::plan(std::slice::from_ref(&scenario), None);
    assert!(
        scenario.seeds >= 10,
        "calibration is held over at least 10 seeds"
    );
    let rows =
        dynsim::sweep::run_all(std::slice::from_ref(&scenario), &runs, |_, _| Ok(())).unwrap();
    let means = dynsim::sweep::means_of(&rows);
    let c = compare::compare(&means, &reference);
    let report = compare::render(&c);
    assert_eq!(
        c.rows.len(),
        12,
        "the 12 aggregated rows are simulated:\n{report}"
    );
    assert!(KNOWN_GAPS.len() <= 2);
    for (dep, fail, ok) in &c.rows {
        let gap = KNOWN_GAPS.iter().any(|g| g.0 == dep && g.1 == fail);
        if !gap {
            assert!(ok, "{dep} {fail} is outside tolerance:\n{report}");
        }
    }
    eprintln!("{report}");
}
