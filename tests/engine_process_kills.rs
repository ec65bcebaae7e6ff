//! The suite's engine-process kills per backend: vLLM's engine monitor notices a dead
//! `EngineCore` and the worker restarts; nobody notices SGLang's dead scheduler at TP 1, so
//! requests hang on a worker that stays registered, while at TP > 1 the surviving ranks take
//! the whole worker down and it restarts; the SGLang detokenizer is off Dynamo's request path
//! and no TensorRT-LLM process matches `TRTLLM::EngineCore`, so those kills change nothing.

use std::path::Path;

use models::metrics::{Outcome, RunLog};
use models::scenario::{FailureKind, Scenario};

/// One aggregated TP-1 deployment of `backend` with one frontend, four clients and `kind`.
fn run(backend: &str, kind: FailureKind) -> RunLog {
    run_tp(backend, 1, kind)
}

fn run_tp(backend: &str, tp: u32, kind: FailureKind) -> RunLog {
    let text = format!(
        r#"Scenario(
    name: "engine-process-kills",
    profile: "a100-k8s",
    deployments: [Deployment(backend: {backend}, mode: agg, tp: {tp}, dp: 1, frontends: 1)],
    load: Harness(clients: 4, requests_per_client: 150, input_tokens: 100, output_tokens: 100),
    failures: [Failure(kind: {}, at_s: 30.0)],
)"#,
        kind.name()
    );
    let s = Scenario::parse(&text, Path::new("engine-process-kills.ron")).expect("valid");
    models::cluster::run(&s, &s.deployments[0], &s.failures[0], 7).log
}

/// Seconds from the fault line to the worker leaving discovery.
fn deregistered_after(log: &RunLog) -> f64 {
    let fault = log.fault_logged.expect("fault injected");
    let left = log
        .departures
        .iter()
        .find(|d| d.0 > fault)
        .expect("deregistered");
    (left.0 - fault).as_secs_f64()
}

fn restarted(log: &RunLog) -> bool {
    let fault = log.fault_logged.expect("fault injected");
    log.ready_lines.iter().any(|l| !l.frontend && l.at > fault)
}

#[test]
fn vllm_engine_death_is_noticed_and_the_worker_restarts() {
    let log = run("vllm", FailureKind::VllmDecodeEngineCore);
    assert!(
        deregistered_after(&log) < 5.0,
        "the monitor notices within its 2-s poll"
    );
    assert!(restarted(&log), "Kubernetes restarts the worker");
    assert!(!log.attempts.iter().any(|a| a.outcome == Outcome::Timeout));
}

#[test]
fn a_dead_sglang_scheduler_hangs_requests_on_a_worker_that_stays_registered() {
    let log = run("sglang", FailureKind::SglangDecodeScheduler);
    let fault = log.fault_logged.unwrap();
    assert!(
        log.departures.iter().all(|d| d.0 < fault),
        "the worker never leaves discovery"
    );
    assert!(!restarted(&log), "nothing restarts it");
    let after: Vec<_> = log.attempts.iter().filter(|a| a.start > fault).collect();
    assert!(!after.is_empty());
    for a in &after {
        assert_eq!(a.outcome, Outcome::Timeout, "every later request hangs");
        assert!((a.end - a.start).as_secs_f64() >= 30.0 - 1e-6);
    }
}

#[test]
fn detokenizer_and_trtllm_engine_core_kills_change_nothing() {
    for (backend, kind) in [
        ("sglang", FailureKind::SglangDecodeDetokenizer),
        ("trtllm", FailureKind::TrtllmDecodeEngineCore),
    ] {
        let log = run(backend, kind);
        assert!(log.fault_logged.is_some(), "{kind:?}: injected");
        assert!(
            log.attempts.iter().all(|a| a.outcome == Outcome::Success),
            "{kind:?}: every request succeeds"
        );
        assert!(!restarted(&log), "{kind:?}: no restart");
        assert_eq!(log.attempts.len(), 4 * 150);
        // Not even a delay: every attempt starts and ends as in the run without a fault.
        let calm = run(backend, FailureKind::None);
        let times =
            |l: &RunLog| -> Vec<_> { l.attempts.iter().map(|a| (a.start, a.end)).collect() };
        assert_eq!(
            times(&log),
            times(&calm),
            "{kind:?}: as if nothing happened"
        );
    }
}

#[test]
fn a_dead_sglang_scheduler_rank_takes_a_tensor_parallel_worker_down() {
    let log = run_tp("sglang", 2, FailureKind::SglangDecodeScheduler);
    // The process dies at once; its lease runs out (no revoke) and the container restarts.
    let gone = deregistered_after(&log);
    assert!(
        gone > 5.0 && gone < 12.0,
        "lease expiry, {gone} s after the fault"
    );
    assert!(restarted(&log), "Kubernetes restarts the worker");
    assert!(!log.attempts.iter().any(|a| a.outcome == Outcome::Timeout));
}

#[test]
fn a_dead_sglang_prefill_scheduler_leaves_the_decode_engines_alive() {
    // vLLM's decode engine dies reading KV from a dead prefill engine; SGLang's has no such
    // path: requests sent to the hung prefill worker hang, the others go on succeeding.
    let text = r#"Scenario(
    name: "sglang-prefill-scheduler",
    profile: "a100-k8s",
    deployments: [Deployment(backend: sglang, mode: disagg, tp: 1, dp: 2, frontends: 2)],
    load: Harness(clients: 10, requests_per_client: 150, input_tokens: 100, output_tokens: 100),
    failures: [Failure(kind: sglang_prefill_scheduler, at_s: 30.0)],
)"#;
    let s = Scenario::parse(text, Path::new("sglang-prefill-scheduler.ron")).expect("valid");
    for seed in 1..=10 {
        let log = models::cluster::run(&s, &s.deployments[0], &s.failures[0], seed).log;
        let fault = log.fault_logged.unwrap();
        let after: Vec<_> = log.attempts.iter().filter(|a| a.start > fault).collect();
        let ok = after
            .iter()
            .filter(|a| a.outcome == Outcome::Success)
            .count();
        let hung = after
            .iter()
            .filter(|a| a.outcome == Outcome::Timeout)
            .count();
        assert!(hung > 0, "seed {seed}: requests to the dead scheduler hang");
        // No engine dies with it: no worker leaves discovery or restarts.
        assert!(
            log.departures.iter().all(|d| d.0 < fault),
            "seed {seed}: a worker left discovery"
        );
        assert!(!restarted(&log), "seed {seed}: a worker restarted");
        // Round-robin over the two prefill workers sends about half to the hung one.
        assert!(
            ok * 5 >= after.len() * 2,
            "seed {seed}: {ok} of {} later requests succeed",
            after.len()
        );
    }
}
