//! Router replica sync (`policies.router_replica_sync`, Dynamo `--router-replica-sync`): four
//! standalone KV router replicas in front of two workers. Unsynced, each replica balances only
//! the load it routed itself, so together they load one worker more than the other at times;
//! synced, each sees the whole fleet's active blocks and the two workers' loads stay closer.
//! (What that does to first tokens depends on the load: evening out active blocks is not
//! evening out prefill arrivals — at 8 clients synced replicas give slightly sooner first
//! tokens, at 12 later ones. With equal request sizes the counts tie often, and every synced
//! replica breaks a tie the same way, toward the smaller prefix tree (`model-facts.md` §2):
//! at 12 clients 633 of 1,198 arrivals reach a worker within 50 ms of the previous one there,
//! 157 unsynced, and those prefills queue behind each other.)

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

/// Per seed: the mean, over request starts, of how many more requests one worker is serving
/// than the other at that moment; the mean TTFT [s]; the trace hash.
fn runs(s: &Scenario) -> Vec<(f64, f64, u64)> {
    (1..=5)
        .map(|seed| {
            let out = models::cluster::run(s, &s.deployments[0], &s.failures[0], seed);
            assert_eq!(out.metrics.success_before, 800, "all requests succeed");
            // (start, end, worker slot) of every served attempt.
            let served: Vec<_> = out
                .log
                .attempts
                .iter()
                .filter_map(|a| a.served_by.map(|((w, _), _)| (a.start, a.end, w)))
                .collect();
            let gap: i64 = served
                .iter()
                .map(|&(t, _, _)| {
                    let busy = |w: u16| {
                        served
                            .iter()
                            .filter(|b| b.2 == w && b.0 <= t && b.1 > t)
                            .count() as i64
                    };
                    (busy(0) - busy(1)).abs()
                })
                .sum();
            (
                gap as f64 / served.len() as f64,
                out.metrics.ttft_mean_s.expect("ttft"),
                out.trace_hash,
            )
        })
        .collect()
}

#[test]
fn synced_replicas_balance_the_fleet_better() {
    let (apart, synced) = (runs(&scenario(4, false)), runs(&scenario(4, true)));
    let mean = |v: &[(f64, f64, u64)]| v.iter().map(|r| r.0).sum::<f64>() / v.len() as f64;
    let (a, s) = (mean(&apart), mean(&synced));
    assert!(
        s < a * 0.9,
        "mean load gap between the workers: synced {s:.3}, unsynced {a:.3} requests"
    );
    assert!(
        apart.iter().zip(&synced).all(|(x, y)| x.2 != y.2),
        "sync changes the routing in every run"
    );
}

#[test]
fn sync_with_a_single_replica_changes_nothing() {
    assert_eq!(runs(&scenario(1, false)), runs(&scenario(1, true)));
}
