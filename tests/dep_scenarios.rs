//! The DEP's failure scenarios as shipped scenario files, with the resiliency behaviour each
//! describes visible in the results.

#[path = "common/shipped.rs"]
mod shipped;

use models::scenario::FailureKind;
use reports::ResultRow;

fn rows(file: &str) -> Vec<ResultRow> {
    let s = shipped::scenario(file);
    let runs = dynsim::sweep::plan(std::slice::from_ref(&s), None);
    dynsim::sweep::run_all(std::slice::from_ref(&s), &runs, |_, _| Ok(())).unwrap()
}

fn sum(rows: &[ResultRow], deployment: Option<&str>, failure: &str, col: &str) -> f64 {
    rows.iter()
        .filter(|r| r.failure == failure && deployment.is_none_or(|d| r.deployment == d))
        .filter_map(|r| r.value(col))
        .sum()
}

#[test]
fn scenario_1_decode_worker_failure_migrates_in_flight_requests() {
    let r = rows("dep-1-decode-worker-failure.ron");
    for kind in [
        FailureKind::DecodeWorker,
        FailureKind::VllmDecodeEngineCore,
        FailureKind::DecodeWorkerPod,
    ] {
        let k = kind.name();
        assert!(
            sum(&r, None, k, "migrations") > 0.0,
            "{k}: in-flight requests restart elsewhere"
        );
        assert_eq!(sum(&r, None, k, "failed_after"), 0.0, "{k}: none fails");
        assert!(
            sum(&r, None, k, "recovery_s") > 0.0,
            "{k}: the worker comes back"
        );
    }
}

#[test]
fn scenario_2_prefill_worker_failure_falls_back_to_local_prefill() {
    let r = rows("dep-2-prefill-worker-failure.ron");
    for k in ["prefill_worker", "prefill_worker_pod"] {
        let (ok, failed) = (
            sum(&r, None, k, "success_after"),
            sum(&r, None, k, "failed_after"),
        );
        assert!(
            sum(&r, None, k, "fallbacks") > 100.0,
            "{k}: decode workers prefill locally"
        );
        assert!(
            failed < 0.1 * ok,
            "{k}: only the requests caught by the failure fail ({failed} of {ok})"
        );
    }
    assert_eq!(sum(&r, None, "none", "fallbacks"), 0.0);
}

#[test]
fn scenario_5_frontend_failure_is_absorbed_by_a_second_frontend() {
    let r = rows("dep-5-frontend-failure.ron");
    for k in ["frontend", "frontend_pod"] {
        let one = sum(&r, Some("agg-tp-1-dp-2-one-frontend"), k, "failed_after");
        let two = sum(&r, Some("agg-tp-1-dp-2-two-frontends"), k, "failed_after");
        assert!(
            one > 100.0 && two < one / 20.0,
            "{k}: {one} failures with one frontend, {two} with two"
        );
    }
}

#[test]
fn scenario_4_processor_failure_restarts_requests_through_another_processor() {
    let r = rows("dep-4-processor-failure.ron");
    for k in ["processor", "processor_pod"] {
        assert!(
            sum(&r, None, k, "migrations") > 0.0,
            "{k}: the broken requests restart"
        );
        assert_eq!(
            sum(&r, None, k, "failed_after"),
            0.0,
            "{k}: none fails with migration"
        );
    }
    // Without migration the requests the processor carried fail.
    let mut s = shipped::scenario("dep-4-processor-failure.ron");
    s.policies.migration_limit = 0;
    let f = shipped::failure(&s, FailureKind::Processor);
    let failed: u64 = (0..3)
        .map(|seed| {
            models::cluster::run(&s, &s.deployments[0], &f, seed)
                .metrics
                .failed_after
                .unwrap()
        })
        .sum();
    assert!(
        failed > 0,
        "requests in flight on the dead processor fail without migration"
    );
}
