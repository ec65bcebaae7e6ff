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
        "Missing mechanism: whatever keeps a RESTARTED frontend container out of Ready longer \
         (527 and 583 failures in the agg and disagg dp-1 `frontend` rows, ~90–100 s) than a \
         REPLACEMENT pod (305 with two clients lost, 395: ~60–65 s). dynsim's kubelet follows \
         the prober source (one ticker per pod kept across restarts, started just before a new \
         pod's sandbox; StartedAt truncated to the second; probes triggered by syncs; resync \
         60–90 s) and gives ~75 s after a restart, ~65–70 s for a replacement. By that source \
         (sync-triggered probes since kubelet 1.21, PR #97126) a restart is Ready at most ~92 s \
         after the kill, yet the disagg run needs ~100 s; a tick-only kubelet (60 s + U(0, 60 s), \
         mean ~93 s) would fit both restart rows. A restart in CrashLoopBackOff would too, but \
         the measured recovery (the new process up in 3.4 s) rules out a delayed restart. Its \
         recovery (3.36 s) is also ~1 s below the three \
         other published frontend rows (4.28–4.37 s), which the model's 4.2 s matches. Also \
         ruled out (sources read): kr8s' sync `PortForward.stop()`, which the client calls only \
         in the restart case, only closes the listening socket; `port_forward` runs the same \
         0.5 s + checked HEAD in both cases; the frontend is the pod's PID 1, so the suite sends \
         it SIGINT (`PodProcess.kill`) and it exits at once; its `/health` is 503 only until a \
         model is listed.",
    ),
    (
        "agg-tp-1-dp-1",
        "frontend_pod",
        "The measured run lost two clients to kr8s' NotFoundError (the row sums to 1,230, not \
         1,500) where the race (a pod deleted between the list and its refresh) kills 0.5 per run \
         here in the model (0.4–0.85 in the three other deployments, 0.54 over the four) and 0.5 \
         per run over the four published frontend_pod runs; each lost client moves ~100 requests from failed/success after to nowhere. The run lies just below \
         the model's 40 seeds (failed after 320–521): two lost clients is a 1-in-10 run.",
    ),
];

/// Disaggregated rows the model does not meet yet, and why. (Issue 4 allows 3 gaps over all 30
/// rows; with the two aggregated ones above — which no single profile can meet, as their
/// sibling rows ask the same mechanism for the opposite — this list is over that budget, and
/// the issue is blocked on more measured runs or the cluster's kubelet data.)
/// One row met is met for a fragile reason: disagg-tp-1-dp-2 `vllm_prefill_engine_core`
/// (no decode engine dies, as measured) holds because the kill at 30.8 s after the clients'
/// spawn finds both decode workers with no KV to read from the dying prefill engine in all 40
/// seeds — deterministic service times keep the ten closed-loop clients in platoons; injected
/// at 33–45 s instead, a decode engine dies in 0–83 % of the seeds (about half would be
/// expected from the decode workers' read load). The timing noise that breaks such platoons
/// is not modelled.
const DISAGG_GAPS: &[(&str, &str, &str)] = &[
    (
        "disagg-tp-1-dp-1",
        "frontend",
        "The restarted-frontend readiness gap of agg-tp-1-dp-1 `frontend`: 583 failures measured \
         (~100 s without a Ready frontend) against 454 modelled (~78 s; seeds 360–530). Its \
         100 requests before the fault are also 12 above the model's 88 (the deployment's eight \
         rows measure 81–100).",
    ),
    (
        "disagg-tp-1-dp-1",
        "decode_worker_pod",
        "Recovery 174 s measured, 18 s above every other worker row of the tables (152–157 s), \
         and latency after 1.83 s where the deployment's two other decode restarts give 1.98 s \
         and 2.12 s: one run's spread that a mean over seeds of one process-start distribution \
         (152 ± 1.5 s) does not have. Both fit a prefill restart ~20 s after the decode pod \
         went, which no source read explains: the prefill only connects out for response \
         streams (no write timeout or keep-alive; a panic there is caught by tokio), creates no \
         NIXL/UCX endpoint (UCX's 20 s keep-alive only drops internal endpoints) and exits only \
         on its own etcd lease or a signal.",
    ),
    (
        "disagg-tp-1-dp-1",
        "prefill_worker",
        "70 failures measured vs a 57.8 mean; the model's seeds give 37–75 (lease expiry, etcd's \
         lessor check and the decode's 5-s prefill check fall at random phases) and 18 of 40 \
         single runs meet the row, so the run lies inside the spread, but 15 more than the \
         pod-delete row (55, modelled 60.4) is not explained.",
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
    assert_eq!(
        scenario.profile_overrides,
        models::profile::Overrides::default(),
        "the published rows are held to the built-in profile as it is"
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
