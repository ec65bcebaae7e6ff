//! dynsim's engine beside Dynamo's own engine simulator (aisimulate-core 0.13.0) in one
//! process, on one aggregated worker with aisimulate's defaults (256 sequences, 8,192-token
//! batch budget, 16,384 blocks of 64 tokens):
//! (a) 1,000 requests 1024 in / 128 out, all at t = 0; (b) 10,000 of the same;
//! (c) 1,500 requests 100 / 100, closed loop with 10 in flight; (d) 1,000 requests 1024 / 1280.
//! For each: median wall time of both over 5 runs, speed-up, simulated-duration difference,
//! and whether every request agrees (first token and end within 1 % or 1 ms).

#[path = "../tests/common/aisim.rs"]
mod aisim;

use std::time::Instant;

use aisim::{aisim, duration, dynsim, dynsim_closed, first_disagreement, Req, Times};
use models::profile::EngineLimits;

const RUNS: usize = 5;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn time(f: impl Fn() -> Times) -> (f64, Times) {
    let mut walls = Vec::new();
    let mut out = Times::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        out = f();
        walls.push(t.elapsed().as_secs_f64());
    }
    (median(walls), out)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run small then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let scale = if quick { 10 } else { 1 };
    let l = EngineLimits::default();
    let burst = |n: usize, i: u32, o: u32| {
        vec![
            Req {
                at_ms: 0.0,
                prompt: i,
                output: o,
                prefix: None,
            };
            n / scale
        ]
    };
    let workloads: Vec<(&str, Vec<Req>, Option<usize>)> = vec![
        ("(a) 1,000 × 1024/128 burst", burst(1_000, 1024, 128), None),
        (
            "(b) 10,000 × 1024/128 burst",
            burst(10_000, 1024, 128),
            None,
        ),
        (
            "(c) 1,500 × 100/100 closed loop of 10",
            burst(1_500, 100, 100),
            Some(10),
        ),
        (
            "(d) 1,000 × 1024/1280 burst",
            burst(1_000, 1024, 1280),
            None,
        ),
    ];
    println!(
        "{:<40} {:>12} {:>12} {:>9} {:>12}  agree",
        "workload", "aisimulate", "dynsim", "speed-up", "duration Δ"
    );
    let (mut agree, mut min_speedup) = (0, f64::INFINITY);
    for (name, reqs, closed) in &workloads {
        let (ta, a) = time(|| aisim(reqs, &l, 1, *closed));
        let (td, d) = time(|| match closed {
            Some(c) => dynsim_closed(reqs, &l, 1, *c),
            None => dynsim(reqs, &l, 1),
        });
        let (da, dd) = (duration(&a), duration(&d));
        let rel = (dd - da) / da;
        let ok = first_disagreement(&a, &d).is_none() && rel.abs() <= 0.005;
        agree += usize::from(ok);
        let speedup = ta / td;
        min_speedup = min_speedup.min(speedup);
        println!(
            "{name:<40} {:>10.2}ms {:>10.3}ms {:>8.1}× {:>+11.4}%  {}",
            ta * 1e3,
            td * 1e3,
            speedup,
            rel * 100.0,
            if ok { "yes" } else { "NO" }
        );
    }
    println!(
        "agreement: {agree}/{} workloads, speed-up min {min_speedup:.1}×",
        workloads.len()
    );
}
