//! The shipped Mooncake-style trace replays open-loop: every request is sent at its
//! timestamp and answered; shared prompt blocks give prefix-cache hits.

#[path = "common/shipped.rs"]
mod shipped;

use models::metrics::Outcome;
use models::scenario::FailureKind;

#[test]
fn the_example_trace_replays_every_request() {
    let s = shipped::scenario("trace-replay.ron");
    let none = shipped::failure(&s, FailureKind::None);
    let out = models::cluster::run(&s, &s.deployments[0], &none, s.seed);
    let trace = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/traces/mooncake-example.jsonl"
    ))
    .unwrap();
    let lines = trace.lines().count();
    assert_eq!(out.log.attempts.len(), lines, "one request per trace line");
    assert!(out
        .log
        .attempts
        .iter()
        .all(|a| a.outcome == Outcome::Success));
    // Open loop: request k is sent at the trace's k-th timestamp after the replay starts.
    let starts: Vec<f64> = out
        .log
        .attempts
        .iter()
        .map(|a| a.start.as_secs_f64())
        .collect();
    let ts: Vec<f64> = trace
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["timestamp"]
                .as_f64()
                .unwrap()
                / 1000.0
        })
        .collect();
    for k in 1..ts.len() {
        assert!(
            ((starts[k] - starts[0]) - (ts[k] - ts[0])).abs() < 1e-6,
            "request {k} sent off its timestamp"
        );
    }
    let hit = out.metrics.prefix_hit_rate.unwrap();
    assert!(hit > 0.2, "shared blocks hit the prefix cache: {hit}");
}

#[test]
fn a_fault_after_a_number_of_requests_fires_on_a_replayed_trace() {
    // The open-loop source reports finished requests to the runner as the suite's clients
    // do: the fault comes after the 100th, and there is an after-the-fault half.
    let s = shipped::scenario("trace-replay.ron");
    let mut f = shipped::failure(&s, FailureKind::DecodeWorkerPod);
    f.at_s = None;
    f.after_requests = Some(100);
    let out = models::cluster::run(&s, &s.deployments[0], &f, s.seed);
    let fault = out.log.fault_logged.expect("the fault was injected");
    let finished_before = out.log.attempts.iter().filter(|a| a.end <= fault).count();
    assert_eq!(finished_before, 100, "injected as the 100th request ended");
    assert!(out.metrics.success_after.is_some_and(|n| n > 0));
}
