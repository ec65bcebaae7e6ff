//! DEP scenario 3 (`scenarios/dep-3-router-failure.ron`): while the standalone KV router is
//! down the frontend routes by its round-robin fallback and requests keep succeeding; after
//! the router restarts it rebuilds its view of the workers' caches and the prefix hit rate
//! comes back.

#[path = "common/shipped.rs"]
mod shipped;

use models::metrics::{AttemptRecord, Outcome};
use models::scenario::FailureKind;
use sim_core::{SimDuration, SimTime};

/// Prefix hit rate of the attempts sent in `[from, to)`.
fn hit_rate(attempts: &[AttemptRecord], from: SimTime, to: SimTime) -> f64 {
    let (p, c) = attempts
        .iter()
        .filter(|a| a.start >= from && a.start < to)
        .filter_map(|a| a.prefill)
        .fold((0u64, 0u64), |(p, c), (pt, ct)| {
            (p + u64::from(pt), c + u64::from(ct))
        });
    assert!(p > 0, "attempts in the window");
    c as f64 / p as f64
}

#[test]
fn fallback_routing_keeps_serving_and_the_rebuilt_router_recovers_the_hit_rate() {
    let s = shipped::scenario("dep-3-router-failure.ron");
    let d = &s.deployments[0];
    let none = shipped::failure(&s, FailureKind::None);
    for f in s.failures.iter().filter(|f| f.kind != FailureKind::None) {
        for seed in s.seed..s.seed + u64::from(s.seeds) {
            let out = models::cluster::run(&s, d, f, seed);
            let base = models::cluster::run(&s, d, &none, seed);
            let log = &out.log;
            let fault = log.fault_logged.expect("the fault was injected");
            // While the router was down: routed by the fallback, and all succeeded.
            let fallback: Vec<_> = log.attempts.iter().filter(|a| a.fallback_routed).collect();
            assert!(
                !fallback.is_empty(),
                "{:?} seed {seed}: some requests routed by the fallback",
                f.kind
            );
            assert!(
                fallback.iter().all(|a| a.outcome == Outcome::Success),
                "{:?} seed {seed}",
                f.kind
            );
            assert!(
                log.attempts.iter().all(|a| a.outcome == Outcome::Success),
                "nothing fails"
            );
            // Well after the restart the view is rebuilt: the hit rate is what the same window
            // gets without any fault (within 3 %), not the round-robin one.
            let (from, to) = (
                fault + SimDuration::from_secs(30),
                fault + SimDuration::from_secs(90),
            );
            let after = hit_rate(&log.attempts, from, to);
            let undisturbed = hit_rate(&base.log.attempts, from, to);
            assert!(after >= undisturbed - 0.03, "{:?} seed {seed}: hit rate {after:.4} after recovery vs {undisturbed:.4} undisturbed", f.kind);
        }
    }
}
