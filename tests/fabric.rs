//! KV transfers share the NICs they cross (`models/src/fabric.rs`), as
//! `scenarios/kv-transfer-nic.ron` shows: four prefill workers' reads into one decode worker
//! on thin NICs queue on its down-link unless the workers share a node, and a NIC fast enough
//! for all four makes the placement irrelevant.

#[path = "common/shipped.rs"]
mod shipped;

use models::scenario::Scenario;

/// Mean TTFT [s] of each deployment of `s`, over its seeds.
fn ttft(s: &Scenario) -> Vec<(String, f64)> {
    let runs = dynsim::sweep::plan(std::slice::from_ref(s), None);
    let rows = dynsim::sweep::run_all(std::slice::from_ref(s), &runs, |_, _| Ok(())).unwrap();
    s.deployments
        .iter()
        .map(|d| {
            let name = d.display_name();
            let v: Vec<f64> = rows
                .iter()
                .filter(|r| r.deployment == name)
                .filter_map(|r| r.value("ttft_mean_s"))
                .collect();
            assert!(!v.is_empty(), "{name} has rows");
            (name, v.iter().sum::<f64>() / v.len() as f64)
        })
        .collect()
}

#[test]
fn packing_the_workers_on_one_node_spares_a_thin_nic() {
    let s = shipped::scenario("kv-transfer-nic.ron");
    let t = ttft(&s);
    let (spread, packed) = (t[0].1, t[1].1);
    assert!(
        packed < 0.8 * spread,
        "four nodes {spread:.3} s vs one node {packed:.3} s"
    );
    // With 800 Gbit/s NICs the four reads fit the decode worker's link: placement no longer
    // matters.
    let mut wide = s.clone();
    wide.profile_overrides.nic_gbit_s = Some(800.0);
    let w = ttft(&wide);
    assert!(
        (w[0].1 - w[1].1).abs() < 0.01 * w[1].1,
        "800 Gbit/s: four nodes {:.3} s vs one node {:.3} s",
        w[0].1,
        w[1].1
    );
    assert!((w[1].1 - packed).abs() < 1e-9, "one node crosses no NIC");
}
