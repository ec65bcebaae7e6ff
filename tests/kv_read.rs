//! Where a decode worker's remote prefills queue (`profile::DisaggProfile::kv_bandwidth` and
//! `handoff`): the KV read is serial per prefill→decode connection, the decode worker's own
//! hand-off work serial per decode worker, the two overlapping. The A100 tables show the
//! signature: one decode worker fed by one prefill worker is slowest (1.99 s), a second
//! prefill worker speeds it up (≈1.75 s while one decode worker is left in the dp-2 rows), and
//! two decode workers are as fast fed by one prefill worker as by two (1.44 vs 1.43 s).

#[path = "common/shipped.rs"]
mod shipped;

use models::metrics::Outcome;
use models::profile::Profile;
use models::scenario::FailureKind;

/// Mean latency [s] of the successful requests of a whole `none` run with `decode` decode and
/// `prefill` prefill workers, over three seeds.
fn latency(decode: u32, prefill: u32) -> f64 {
    let a100 = Profile::builtin("a100-k8s").unwrap();
    latency_on(&a100, decode, prefill, None)
}

/// The same on `profile`, the workers filling nodes of `gpus_per_node` GPUs (each on its own
/// node if `None`).
fn latency_on(profile: &Profile, decode: u32, prefill: u32, gpus_per_node: Option<u32>) -> f64 {
    let s = shipped::scenario("ft-disagg-k8s-a100.ron");
    let mut d = s.deployments[0].clone();
    d.dp = decode;
    d.prefill_dp = Some(prefill);
    d.gpus_per_node = gpus_per_node;
    let f = shipped::failure(&s, FailureKind::None);
    let (mut sum, mut n) = (0.0, 0u32);
    for seed in 1..=3 {
        let log = models::cluster::run_with(profile, &s, &d, &f, seed).log;
        for a in log
            .attempts
            .iter()
            .filter(|a| a.outcome == Outcome::Success)
        {
            sum += (a.end - a.start).as_secs_f64();
            n += 1;
        }
    }
    assert!(n > 4000, "the runs served their requests ({n})");
    sum / f64::from(n)
}

#[test]
fn a_second_prefill_worker_relieves_one_decode_worker_but_not_two() {
    let (d1p1, d1p2) = (latency(1, 1), latency(1, 2));
    let (d2p1, d2p2) = (latency(2, 1), latency(2, 2));
    let all = format!("1D+1P {d1p1:.3}  1D+2P {d1p2:.3}  2D+1P {d2p1:.3}  2D+2P {d2p2:.3}");
    // Reads from two prefill processes run side by side: one decode worker gets faster.
    assert!(d1p2 < d1p1 - 0.15, "{all}");
    // The decode worker's own serial work still bounds it: slower than two decode workers.
    assert!(d1p2 > d2p2 + 0.15, "{all}");
    // Two decode workers do not queue on one prefill worker's connections (one each).
    assert!((d2p1 - d2p2).abs() < 0.05, "{all}");
}

/// Transfers sharing a link share its bandwidth (`fabric.rs`). With the A100 profile no NIC
/// binds; with NICs no faster than one connection, one decode worker's two prefill
/// connections share its down-link, and the second prefill worker stops helping. On one node
/// the reads cross no NIC and the thin NICs change nothing.
#[test]
fn reads_into_one_decode_worker_share_its_nic() {
    let a100 = Profile::builtin("a100-k8s").unwrap();
    let mut thin = a100.clone();
    thin.disagg.nic_bandwidth = thin.disagg.kv_bandwidth;
    let wide = latency_on(&a100, 1, 2, None);
    let shared = latency_on(&thin, 1, 2, None);
    let one_node = latency_on(&thin, 1, 2, Some(8));
    let one_prefill = latency_on(&a100, 1, 1, None);
    let all = format!(
        "1D+2P: 25 GB/s NICs {wide:.3}, thin {shared:.3}, thin on one node {one_node:.3}; 1D+1P {one_prefill:.3}"
    );
    assert!(shared > wide + 0.1, "{all}");
    assert!(
        shared > one_prefill - 0.1,
        "sharing takes back most of the second prefill's gain: {all}"
    );
    assert_eq!(one_node, wide, "{all}");
}

#[test]
fn a_read_from_a_prefill_process_that_died_fails_at_once() {
    // 4,000-token prompts take ~10.8 s each to read at 42.6 MB/s, one at a time per
    // connection: when the prefill worker's process is killed, reads are under way and
    // queued. Its KV goes with it: those requests fail then — not hang until the client's
    // 30-s timeout, nor get a first token later — and the decode worker stays up.
    let mut s = shipped::scenario("ft-disagg-k8s-a100.ron");
    let models::scenario::Load::Harness(h) = &mut s.load else {
        panic!("the suite's harness")
    };
    h.input_tokens = 4_000;
    h.clients = 4;
    h.requests_per_client = 20;
    let f = shipped::failure(&s, FailureKind::PrefillWorker);
    let mut failed_at_kill = 0;
    for seed in 1..=5 {
        let log = models::cluster::run(&s, &s.deployments[0], &f, seed).log;
        let fault = log.fault_logged.expect("injected");
        let caught: Vec<_> = log
            .attempts
            .iter()
            .filter(|a| a.start < fault && a.end > fault)
            .collect();
        for a in &caught {
            assert_ne!(a.outcome, Outcome::Timeout, "seed {seed}: a read hung");
            // The kill lands within ~1 s of the fault line; a read done before it yields
            // its first token within a hand-off and a step.
            let cut = fault + sim_core::SimDuration::from_secs(2);
            assert!(
                a.first_token.is_none_or(|t| t <= cut),
                "seed {seed}: a late first token"
            );
        }
        failed_at_kill += caught
            .iter()
            .filter(|a| a.outcome != Outcome::Success)
            .count();
        assert!(
            log.departures.iter().all(|d| d.1 != 0 || d.0 < fault),
            "seed {seed}: the decode worker stays up"
        );
    }
    assert!(failed_at_kill > 0, "some reads were under way at the kill");
}
