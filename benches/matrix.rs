//! (b) The 12-row aggregated matrix (`scenarios/ft-agg-k8s-a100.ron`) × 10 seeds on the
//! machine's cores, timed by criterion (target: under 1 s wall on 2 cores), and the whole
//! 30-row matrix (aggregated and disaggregated, `ft-disagg-k8s-a100.ron`) × 10 seeds (target:
//! under 2 s wall on 2 cores). Printed first: events per request at 100 and 1,000 output
//! tokens (target: ratio ≤ 2) and simulated requests per second per core, for each matrix.

use std::path::Path;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use models::scenario::Scenario;

fn load(file: &str) -> Scenario {
    Scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).expect("valid")
}

fn agg() -> Vec<Scenario> {
    vec![load("scenarios/ft-agg-k8s-a100.ron")]
}

fn all() -> Vec<Scenario> {
    vec![
        load("scenarios/ft-agg-k8s-a100.ron"),
        load("scenarios/ft-disagg-k8s-a100.ron"),
    ]
}

/// Runs every run of `scenarios` × 10 seeds on this thread; prints simulated requests per
/// second.
fn single_core(name: &str, scenarios: &[Scenario]) {
    let runs = dynsim::sweep::plan(scenarios, Some(10));
    let start = Instant::now();
    let mut requests = 0u64;
    for r in &runs {
        let (row, _) = dynsim::sweep::execute(scenarios, r);
        requests += row.metrics.attempts;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "single core, {name}: {} runs, {requests} simulated requests in {secs:.3} s = {:.0} requests/s/core",
        runs.len(),
        requests as f64 / secs
    );
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
    // Simulated requests per second on one core: each matrix on this thread.
    single_core("12-row aggregated matrix", &agg());
    single_core("30-row matrix", &all());
}

fn matrix(c: &mut Criterion) {
    figures();
    let mut g = c.benchmark_group("ft-matrix");
    g.sample_size(10);
    for (name, scenarios, rows) in [
        ("12-rows-x-10-seeds", agg(), 12),
        ("30-rows-x-10-seeds", all(), 30),
    ] {
        let runs = dynsim::sweep::plan(&scenarios, Some(10));
        assert_eq!(runs.len(), rows * 10);
        g.bench_function(name, |b| {
            b.iter(|| dynsim::sweep::run_all(&scenarios, &runs, |_, _| Ok(())).expect("runs"))
        });
    }
    g.finish();
}

criterion_group!(benches, matrix);
criterion_main!(benches);
