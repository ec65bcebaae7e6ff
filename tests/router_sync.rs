//! Router replica sync (`policies.router_replica_sync`, Dynamo `--router-replica-sync`): four
//! standalone KV router replicas in front of two workers. Unsynced, each replica balances only
//! the load it routed itself, so together they overload one worker at times; synced, each sees
//! the whole fleet's active blocks and first tokens come sooner.

use std::path::Path;

use models::scenario::Scenario;

fn scenario(routers: u32, sync: bool) -> Scenario {
    let text = format!(
        r#"Scenario(
            name: "sync",
            profile: "a100-k8s",
            deployments: [Deployment(backend: vllm, mode: agg, dp: 2, frontends: 4, router: kv, routers: {routers})],
            load: Harness(clients: 8, requests_per_client: 100, input_tokens: 3000, output_tokens: 300),
            policies: (router_replica_sync: {sync}),
            failures: [Failure(kind: none)],
        )"#
    );
    Scenario::parse(&text, Path::new("sync.ron")).expect("valid scenario")
}

/// Mean TTFT [s] and trace hash per seed.
fn runs(s: &Scenario) -> Vec<(f64, u64)> {
    (1..=5)
        .map(|seed| {
            let out = models::cluster::run(s, &s.deployments[0], &s.failures[0], seed);
            assert_eq!(out.metrics.success_before, 800, "all requests succeed");
            (out.metrics.ttft_mean_s.expect("ttft"), out.trace_hash)
        })
        .collect()
}

#[test]
fn synced_replicas_balance_the_fleet_better() {
    let (apart, synced) = (runs(&scenario(4, false)), runs(&scenario(4, true)));
    let mean = |v: &[(f64, u64)]| v.iter().map(|r| r.0).sum::<f64>() / v.len() as f64;
    let (a, s) = (mean(&apart), mean(&synced));
    assert!(s < a * 0.95, "mean TTFT synced {s:.4} s, unsynced {a:.4} s");
    assert!(
        apart.iter().zip(&synced).all(|(x, y)| x.1 != y.1),
        "sync changes the routing in every run"
    );
}

#[test]
fn sync_with_a_single_replica_changes_nothing() {
    assert_eq!(runs(&scenario(1, false)), runs(&scenario(1, true)));
}
