//! Simulation events per request do not grow with the output length: the engine
//! fast-forwards through decode steps instead of working per token or per step.

use std::path::Path;

use models::scenario::Scenario;

fn events_per_request(output_tokens: u32) -> f64 {
    let text = format!(
        r#"Scenario(
            name: "scaling",
            profile: "a100-k8s",
            deployments: [Deployment(backend: vllm, dp: 1)],
            load: Harness(clients: 10, requests_per_client: 60, input_tokens: 100, output_tokens: {output_tokens}),
            failures: [Failure(kind: none)],
        )"#
    );
    let s = Scenario::parse(&text, Path::new("scaling.ron")).unwrap();
    let out = models::cluster::run(&s, &s.deployments[0], &s.failures[0], 1);
    assert_eq!(out.metrics.success_before, 600, "all requests succeed");
    out.events as f64 / 600.0
}

#[test]
fn events_per_request_are_flat_in_output_length() {
    let short = events_per_request(100);
    let long = events_per_request(1000);
    eprintln!("events/request: {short:.1} at 100 tokens, {long:.1} at 1000");
    assert!(
        long <= 2.0 * short,
        "events/request: {short:.1} at 100 tokens, {long:.1} at 1000"
    );
    // And far below one event per token.
    assert!(long < 100.0, "{long}");
}

#[test]
fn a_client_refreshes_hundreds_of_frontend_pods() {
    // Before every request a client refreshes each listed frontend pod; with 300 of them
    // (more than 256) it still gets to send its requests.
    let text = r#"Scenario(
        name: "many-frontends",
        profile: "a100-k8s",
        deployments: [Deployment(backend: vllm, dp: 1, frontends: 300)],
        load: Harness(clients: 1, requests_per_client: 3, input_tokens: 100, output_tokens: 100),
        failures: [Failure(kind: none)],
        max_sim_s: 2000.0,
    )"#;
    let s = Scenario::parse(text, Path::new("many-frontends.ron")).unwrap();
    let out = models::cluster::run(&s, &s.deployments[0], &s.failures[0], 1);
    assert_eq!(
        out.metrics.success_before, 3,
        "every request is sent and served"
    );
}
