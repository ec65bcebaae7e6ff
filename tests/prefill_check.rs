//! The decode handler's 5-s look at the registered prefill workers (Dynamo vLLM
//! `_prefill_check_loop`): after a lone prefill worker is killed, requests keep failing past
//! the moment its lease ends — until the next check turns remote prefill off — and not longer.

#[path = "common/shipped.rs"]
mod shipped;

use models::metrics::Outcome;
use models::scenario::FailureKind;
use sim_core::SimDuration;

#[test]
fn failures_outlive_the_prefill_lease_by_at_most_one_check_period() {
    let s = shipped::scenario("ft-disagg-k8s-a100.ron");
    let d = &s.deployments[0];
    assert_eq!(
        (d.dp, d.prefill_count()),
        (1, 1),
        "one decode, one prefill worker"
    );
    let f = shipped::failure(&s, FailureKind::PrefillWorker);
    let (period, slack) = (SimDuration::from_secs(5), SimDuration::from_millis(100));
    let mut lags = Vec::new();
    for seed in 1..=10 {
        let log = models::cluster::run(&s, d, &f, seed).log;
        let fault = log.fault_logged.expect("fault injected");
        // The only worker leaving discovery after the fault is the killed prefill worker.
        let gone = log
            .departures
            .iter()
            .map(|d| d.0)
            .find(|&t| t > fault)
            .expect("the prefill worker's lease ends");
        let last_failure = log
            .attempts
            .iter()
            .filter(|a| a.start > fault && a.outcome != Outcome::Success)
            .map(|a| a.end)
            .max()
            .expect("requests fail while the prefill worker is registered");
        assert!(
            last_failure <= gone + period + slack,
            "seed {seed}: failing {:?} after the lease ended",
            last_failure - gone
        );
        lags.push(last_failure.saturating_since(gone));
    }
    // Without the check loop, failures would stop when the lease ends.
    assert!(
        lags.iter()
            .filter(|l| **l > SimDuration::from_millis(500))
            .count()
            >= 5,
        "failures after the lease ended: {lags:?}"
    );
}
