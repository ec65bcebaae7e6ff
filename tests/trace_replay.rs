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

/// Replays `lines` (JSONL records) with a 2-s timeout on one aggregated worker; returns the
/// latency of the last request [s].
fn last_latency(name: &str, lines: &[String]) -> f64 {
    let dir = std::env::temp_dir().join(format!("dynsim-cancel-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("t.jsonl"), lines.join("\n")).unwrap();
    let text = r#"Scenario(
    name: "cancel",
    profile: "a100-k8s",
    deployments: [Deployment(backend: vllm, mode: agg, tp: 1, dp: 1, frontends: 1)],
    load: Trace(file: "t.jsonl", block_tokens: 512, speedup: 1.0, timeout_s: 2.0),
    failures: [Failure(kind: none)],
)"#;
    let path = dir.join("s.ron");
    std::fs::write(&path, text).unwrap();
    let s = models::scenario::Scenario::load(&path).unwrap();
    let out = models::cluster::run(&s, &s.deployments[0], &s.failures[0], 1);
    std::fs::remove_dir_all(dir).unwrap();
    let last = out.log.attempts.last().unwrap();
    assert_eq!(last.outcome, Outcome::Success);
    (last.end - last.start).as_secs_f64()
}

#[test]
fn a_request_the_replay_gave_up_on_is_cancelled_in_the_engine() {
    // 300 requests of 2,000 tokens to generate, more than the engine's 256 sequences, time
    // out after 2 s; a short one follows at 10 s. The replay closes each timed-out
    // connection, so the frontend cancels the request and the engine drops it: the short
    // request is served as on an idle engine, not queued for a seat behind abandoned
    // generations.
    let record = |ms: f64, input: u32, output: u32, id: u32| {
        format!(
            r#"{{"timestamp": {ms}, "input_length": {input}, "output_length": {output}, "hash_ids": [{id}]}}"#
        )
    };
    let short = record(10_000.0, 512, 20, 999);
    let mut busy: Vec<String> = (0..300)
        .map(|i| record(f64::from(i) * 10.0, 512, 2_000, i))
        .collect();
    busy.push(short.clone());
    let alone = last_latency("alone", &[short]);
    let after = last_latency("after", &busy);
    assert!(
        after < alone * 1.5,
        "{after:.3} s after abandoned requests, {alone:.3} s alone"
    );
}
