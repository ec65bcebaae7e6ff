//! When the kubelet marks the suite's frontend Ready again (60 s initial delay, 60 s period;
//! kubelet `prober/worker.go`): a replacement pod's probe ticker starts just before its
//! container, so the tick at 60 s passes whenever the container started in the same wall-clock
//! second as the ticker (`StartedAt` is truncated to the second); a restarted container keeps
//! its pod's ticker, whose ticks fall anywhere in the period. Pod syncs (60–90 s apart) trigger
//! a probe too.

#[path = "common/shipped.rs"]
mod shipped;

use models::profile::Profile;
use models::scenario::{FailureKind, FailureSpec, Scenario};

/// The aggregated suite and its row of failure `kind`.
fn agg_suite(kind: FailureKind) -> (Scenario, FailureSpec) {
    let s = shipped::scenario("ft-agg-k8s-a100.ron");
    let f = shipped::failure(&s, kind);
    (s, f)
}

/// Ready minus container start [s], one per seed, for the one-frontend deployment.
fn ready_after_start(kind: FailureKind) -> Vec<f64> {
    let (s, f) = agg_suite(kind);
    let d = &s.deployments[0];
    assert_eq!(d.frontends, Some(1), "one frontend pod");
    let start = Profile::builtin(&s.profile)
        .unwrap()
        .process
        .frontend_start
        .as_secs_f64();
    (1..=40)
        .map(|seed| {
            let log = models::cluster::run(&s, d, &f, seed).log;
            let fault = log.fault_logged.expect("fault injected");
            // The new frontend process logs "added model" `start` after its container starts
            // (the worker stays registered in these rows).
            let up = log
                .ready_lines
                .iter()
                .find(|l| l.frontend && l.at > fault)
                .expect("the frontend comes back")
                .at
                .as_secs_f64();
            let started = up - start;
            let ready = log
                .pods_ready
                .iter()
                .map(|r| r.0.as_secs_f64())
                .find(|&t| t > started)
                .expect("the frontend pod turns Ready");
            ready - started
        })
        .collect()
}

#[test]
fn a_replacement_pod_often_passes_at_its_first_tick_a_restarted_container_rarely() {
    let replaced = ready_after_start(FailureKind::FrontendPod);
    let restarted = ready_after_start(FailureKind::Frontend);
    for (what, v) in [("replacement", &replaced), ("restart", &restarted)] {
        // Never before the initial delay (counted from the start truncated to its second),
        // never later than one period after it.
        assert!(
            v.iter().all(|&x| (59.0..=120.5).contains(&x)),
            "{what}: Ready after {v:?} s"
        );
    }
    // The tick at the initial delay: Ready within 60.5 s of the start. A pod sync rarely
    // triggers the probe that early (the sync at the start re-arms the resync 60–90 s later):
    // were the ticker started 2 s before the container (it is 0.3–1 s), 1 run in 40 would
    // get there.
    let first_tick = |v: &[f64]| v.iter().filter(|&&x| x < 60.5).count();
    assert!(
        first_tick(&replaced) >= 8,
        "replacement pods Ready at the first tick in {} of 40 runs: {replaced:?}",
        first_tick(&replaced)
    );
    assert!(
        first_tick(&restarted) <= 4,
        "restarted containers Ready at a tick right after the delay in {} of 40 runs: {restarted:?}",
        first_tick(&restarted)
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(
        mean(&restarted) > mean(&replaced),
        "restart {:.1} s vs replacement {:.1} s",
        mean(&restarted),
        mean(&replaced)
    );
}

/// At the deployment's first start the kubelet registers the frontend pod (its probe ticker
/// starts) about 1 s after the deployment is applied, before the image pull, so the first
/// probe after the workers register is a tick 180 s after registration — or a probe a pod sync
/// triggered before it. The suite's startup rows: 181–182 s in 20 of 30, the others 161–180 s.
#[test]
fn startup_ends_at_a_frontend_tick_unless_a_pod_sync_comes_first() {
    let (s, f) = agg_suite(FailureKind::None);
    let startups: Vec<f64> = (1..=40)
        .map(|seed| {
            let out = models::cluster::run(&s, &s.deployments[0], &f, seed);
            out.metrics.startup_s.expect("the deployment turns ready")
        })
        .collect();
    let at_tick = startups
        .iter()
        .filter(|&&x| (181.0..=182.0).contains(&x))
        .count();
    assert!(
        startups.iter().all(|&x| (155.0..=182.0).contains(&x)),
        "never after the tick: {startups:?}"
    );
    assert!(
        (20..40).contains(&at_tick),
        "at the tick in {at_tick} of 40, earlier by a pod sync in the rest: {startups:?}"
    );
}
