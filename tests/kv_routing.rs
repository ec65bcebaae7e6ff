//! `scenarios/kv-routing.ron`: on a prefix-heavy workload the KV-aware router finds more
//! cached prefixes than round-robin and so gets first tokens out sooner.

#[path = "common/shipped.rs"]
mod shipped;

#[test]
fn kv_routing_beats_round_robin_on_prefix_hits_and_ttft() {
    let s = shipped::scenario("kv-routing.ron");
    let runs = dynsim::sweep::plan(std::slice::from_ref(&s), None);
    let rows = dynsim::sweep::run_all(std::slice::from_ref(&s), &runs, |_, _| Ok(())).unwrap();
    let mean = |router: &str, col: &str| {
        let v: Vec<f64> = rows
            .iter()
            .filter(|r| r.router == router)
            .filter_map(|r| r.value(col))
            .collect();
        assert_eq!(v.len() as u32, s.seeds, "{router} {col}");
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (kv_hit, rr_hit) = (
        mean("kv", "prefix_hit_rate"),
        mean("round_robin", "prefix_hit_rate"),
    );
    let (kv_ttft, rr_ttft) = (
        mean("kv", "ttft_mean_s"),
        mean("round_robin", "ttft_mean_s"),
    );
    assert!(
        kv_hit > rr_hit,
        "prefix hit rate: kv {kv_hit:.4}, round-robin {rr_hit:.4}"
    );
    assert!(
        kv_ttft < rr_ttft,
        "TTFT: kv {kv_ttft:.4} s, round-robin {rr_ttft:.4} s"
    );
    // Everything succeeds in both: the comparison is of equal work.
    assert!(
        rows.iter().all(|r| r.metrics.success_before == 1600),
        "all requests succeed"
    );
}

/// Without KV events (`--no-kv-events`) the router predicts cached prefixes from its own
/// decisions; on this workload, where a prefix stays cached for far longer than the 120 s
/// TTL would need, the prediction still finds more cached prefixes than round-robin.
#[test]
fn the_approximate_kv_router_still_beats_round_robin_on_prefix_hits() {
    let sweep = |kv_events: bool| {
        let mut s = shipped::scenario("kv-routing.ron");
        s.policies.kv_events = kv_events;
        let runs = dynsim::sweep::plan(std::slice::from_ref(&s), None);
        dynsim::sweep::run_all(std::slice::from_ref(&s), &runs, |_, _| Ok(())).unwrap()
    };
    let (rows, with_events) = (sweep(false), sweep(true));
    // The switch is in effect, and only for the KV router: its runs route otherwise than the
    // event-driven ones, the round-robin runs are the same runs.
    for (a, e) in rows.iter().zip(&with_events) {
        assert_eq!((&a.router, a.seed), (&e.router, e.seed));
        match a.router.as_str() {
            "kv" => assert_ne!(a.trace_hash, e.trace_hash, "seed {}", a.seed),
            _ => assert_eq!(a.trace_hash, e.trace_hash, "seed {}", a.seed),
        }
    }
    let mean = |router: &str| {
        let v: Vec<f64> = rows
            .iter()
            .filter(|r| r.router == router)
            .filter_map(|r| r.value("prefix_hit_rate"))
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (approx, rr) = (mean("kv"), mean("round_robin"));
    assert!(
        approx > rr,
        "prefix hit rate: approximate kv {approx:.4}, round-robin {rr:.4}"
    );
}
