//! (b) The 12-row aggregated matrix (`scenarios/ft-agg-k8s-a100.ron`) × 10 seeds on the
//! machine's cores, timed by criterion (target: under 1 s wall on 2 cores). Printed first:
//! events per request at 100 and 1,000 output tokens (target: ratio ≤ 2) and simulated
//! requests per second per core.

use std::path::Path;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use models::scenario::Scenario;

fn scenario() -> Scenario {
    Scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/ft-agg-k8s-a100.ron"))
        .expect("valid")
}

fn events_per_request(output: u32) -> f64 {
    let text = format!(
        r#"Scenario(name: "epr", profile: "a100-k8s",
            deployments: [Deployment(backend: vllm, dp: 1)],
            load: Harness(clients: 10, requests_per_client: 150, input_tokens: 100, output_tokens: {output}),
            failures: [Failure(kind: none)])"#
    );
    let s = Scenario::parse(&text, Path::new("epr.ron")).expect("valid");
    let out = models::cluster::run(&s, &s.deployments[0], &s.failures[0], 1);
    out.events as f64 / 1500.0
}

fn figures() {
    let (short, long) = (events_per_request(100), events_per_request(1000));
    println!(
        "events/request: {short:.2} at 100 output tokens, {long:.2} at 1000 (ratio {:.2})",
        long / short
    );
    // Simulated requests per second on one core: the whole matrix on this thread.
    let s = scenario();
    let runs = dynsim::sweep::plan(std::slice::from_ref(&s), None);
    let start = Instant::now();
    let mut requests = 0u64;
    for r in &runs {
        let (row, _) = dynsim::sweep::execute(std::slice::from_ref(&s), r);
        requests += row.metrics.attempts;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "single core: {} runs, {requests} simulated requests in {secs:.3} s = {:.0} requests/s/core",
        runs.len(),
        requests as f64 / secs
    );
}

fn matrix(c: &mut Criterion) {
    figures();
    let s = scenario();
    let runs = dynsim::sweep::plan(std::slice::from_ref(&s), Some(10));
    assert_eq!(runs.len(), 120);
    let mut g = c.benchmark_group("agg-matrix");
    g.sample_size(10);
    g.bench_function("12-rows-x-10-seeds", |b| {
        b.iter(|| {
            dynsim::sweep::run_all(std::slice::from_ref(&s), &runs, |_, _| Ok(())).expect("runs")
        })
    });
    g.finish();
}

criterion_group!(benches, matrix);
criterion_main!(benches);
