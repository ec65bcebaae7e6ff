//! Differential tests against Dynamo's own engine simulator, aisimulate-core 0.13.0 (the
//! engine inside Dynamo 1.6's mocker and offline replay): the same workloads through both,
//! per-request agreement of first-token and end times.

#[path = "common/aisim.rs"]
mod aisim;

use aisim::{aisim, duration, dynsim, dynsim_closed, first_disagreement, Req};
use models::profile::EngineLimits;
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Clone, Debug)]
enum Arrivals {
    Burst,
    Poisson(f64),
    Closed(usize),
}

fn workload() -> impl Strategy<Value = (Vec<Req>, EngineLimits, usize, Arrivals, u64)> {
    (
        (
            1usize..60,
            1u32..4000,
            1u32..600,
            any::<u64>(),
            (0u32..=4, 0u32..3000),
        ),
        prop_oneof![
            Just(Arrivals::Burst),
            (1.0f64..200.0).prop_map(Arrivals::Poisson),
            (1usize..12).prop_map(Arrivals::Closed)
        ],
        1usize..=4,
        // KV capacity: ample, or tight enough to preempt and evict.
        (
            prop_oneof![Just(16_384u32), 64u32..2048],
            prop_oneof![Just(64u32), Just(16u32)],
            prop_oneof![Just(256u32), 1u32..32],
            prop_oneof![Just(8192u32), 64u32..4096],
        ),
    )
        .prop_map(
            |(
                (n, max_in, max_out, seed, (groups, max_prefix)),
                arrivals,
                workers,
                (blocks, bs, seqs, budget),
            )| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let mut t = 0.0f64;
                let reqs = (0..n)
                    .map(|_| {
                        if let Arrivals::Poisson(rate) = arrivals {
                            let u: f64 = rng.random_range(1e-9..1.0);
                            t += -u.ln() / rate * 1000.0;
                        }
                        // Shared prefixes: `groups` prompt prefixes (none when 0).
                        let prefix = (groups > 0).then(|| {
                            (
                                rng.random_range(0..groups),
                                rng.random_range(0..=max_prefix),
                            )
                        });
                        let own = rng.random_range(1..=max_in);
                        Req {
                            at_ms: (t * 1000.0).round() / 1000.0,
                            prompt: own + prefix.map_or(0, |p| p.1),
                            output: rng.random_range(1..=max_out),
                            prefix,
                        }
                    })
                    .collect();
                let limits = EngineLimits {
                    num_gpu_blocks: blocks,
                    block_size: bs,
                    max_num_seqs: seqs,
                    max_num_batched_tokens: budget,
                    chunked_prefill: true,
                };
                (reqs, limits, workers, arrivals, seed)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn dynsim_agrees_with_aisimulate((reqs, limits, workers, arrivals, seed) in workload()) {
        // Requests that can never fit are refused by both; keep the workload to ones that fit.
        let fits = |r: &Req| (r.prompt + r.output).div_ceil(limits.block_size) <= limits.num_gpu_blocks;
        prop_assume!(reqs.iter().all(fits));
        let (a, d) = match arrivals {
            Arrivals::Closed(c) => (aisim(&reqs, &limits, workers, Some(c)), dynsim_closed(&reqs, &limits, workers, c)),
            _ => (aisim(&reqs, &limits, workers, None), dynsim(&reqs, &limits, workers)),
        };
        if let Some(diff) = first_disagreement(&a, &d) {
            prop_assert!(false, "seed {seed}, {arrivals:?}, {workers} workers, {limits:?}: {diff}");
        }
        let (da, dd) = (duration(&a), duration(&d));
        prop_assert!((da - dd).abs() <= 0.005 * da, "seed {seed}: duration {da} vs {dd}");
    }
}
