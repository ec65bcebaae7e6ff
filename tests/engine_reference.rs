//! The fast-forwarding engine gives exactly the completion (and first-token) times of a plain
//! step-by-step engine kept here: one step at a time, every step scheduled from scratch with
//! the same rules (running first, then waiting FIFO within the token budget and the sequence
//! cap; first token at the end of the step that completes the prompt; one token per step
//! after).

use std::collections::{BTreeMap, VecDeque};

use models::engine::timing::{Gpu, Polynomial, Roofline, StepTime, StepWork, Timing};
use models::engine::{Engine, Output};
use models::profile::EngineLimits;
use proptest::prelude::*;
use sim_core::{SimDuration, SimTime};

#[derive(Clone, Debug)]
struct Req {
    id: u64,
    at: SimTime,
    prompt: u32,
    output: u32,
}

struct Seq {
    id: u64,
    prompt: u32,
    output: u32,
    generated: u32,
    computed: u32,
}

/// The plain reference: returns (first token, finish) per request id.
fn reference(
    reqs: &[Req],
    limits: &EngineLimits,
    timing: &Timing,
) -> BTreeMap<u64, (SimTime, SimTime)> {
    let total = u64::from(limits.num_gpu_blocks) * u64::from(limits.block_size);
    let mut out = BTreeMap::new();
    let mut first = BTreeMap::new();
    let mut waiting: VecDeque<Seq> = VecDeque::new();
    let mut running: Vec<Seq> = Vec::new();
    let mut next = 0;
    let mut t = SimTime::ZERO;
    loop {
        while next < reqs.len() && reqs[next].at <= t {
            let r = &reqs[next];
            waiting.push_back(Seq {
                id: r.id,
                prompt: r.prompt,
                output: r.output,
                generated: 0,
                computed: 0,
            });
            next += 1;
        }
        if running.is_empty() && waiting.is_empty() {
            if next == reqs.len() {
                return out;
            }
            t = reqs[next].at;
            continue;
        }
        let mut budget = limits.max_num_batched_tokens;
        let mut takes = Vec::new();
        for s in &running {
            if budget == 0 {
                break;
            }
            let take = (s.prompt + s.generated - s.computed).min(budget);
            budget -= take;
            takes.push(take);
        }
        takes.resize(running.len(), 0);
        while running.len() < limits.max_num_seqs as usize && budget > 0 {
            let Some(w) = waiting.pop_front() else { break };
            let take = (w.prompt - w.computed).min(budget);
            budget -= take;
            running.push(w);
            takes.push(take);
        }
        let (mut n, mut before, mut after, mut dn, mut dkv) = (0u64, 0u64, 0u64, 0u64, 0u64);
        for (s, &take) in running.iter().zip(&takes) {
            let b = s.computed.min(s.prompt);
            let a = (s.computed + take).min(s.prompt);
            if a > b {
                n += 1;
                before += u64::from(b);
                after += u64::from(a);
            }
            let len = s.prompt + s.generated;
            if take > 0 && s.computed + take >= len && !(s.generated == 0 && a > b) {
                dn += 1;
                dkv += u64::from(len);
            }
        }
        let prefill = if n == 0 {
            0
        } else {
            n * (after / n - before / n)
        };
        t += timing.step_time(
            StepWork {
                prefill_tokens: prefill,
                decode_seqs: dn,
                decode_kv_tokens: dkv,
            },
            total,
        );
        let mut i = 0;
        while i < running.len() {
            let s = &mut running[i];
            let take = takes[i];
            if take > 0 {
                s.computed += take;
                if s.computed >= s.prompt + s.generated {
                    s.generated += 1;
                    if s.generated == 1 {
                        first.insert(s.id, t);
                    }
                }
            }
            if s.generated >= s.output {
                out.insert(s.id, (first[&s.id], t));
                running.remove(i);
                takes.remove(i);
                continue;
            }
            i += 1;
        }
    }
}

/// dynsim's engine driven by arrivals and its own wake-ups: at each instant, the step that
/// ends is applied, the arrivals are submitted, then an idle engine starts its next step.
fn fast(
    reqs: &[Req],
    limits: &EngineLimits,
    timing: &Timing,
    arrivals_first: bool,
) -> (BTreeMap<u64, (SimTime, SimTime)>, u64) {
    let mut e = Engine::new(limits.clone(), *timing);
    let mut first = BTreeMap::new();
    let mut out = BTreeMap::new();
    let mut next = 0;
    let mut wakeups = 0u64;
    loop {
        let arrival = reqs.get(next).map(|r| r.at);
        let wake = e.next_wakeup();
        let now = match (arrival, wake) {
            (None, None) => return (out, wakeups),
            (Some(a), None) => a,
            (None, Some(w)) => w,
            (Some(a), Some(w)) => a.min(w),
        };
        let mut apply = |e: &mut Engine| {
            if e.next_wakeup() == Some(now) {
                wakeups += 1;
                for o in e.wakeup(now) {
                    match *o {
                        Output::FirstToken(id) => {
                            first.insert(id, now);
                        }
                        Output::Finished(id) => {
                            let ft = *first.get(&id).expect("a first token before the end");
                            out.insert(id, (ft, now));
                        }
                    }
                }
            }
        };
        // Either order of "step ends" and "arrival" at one instant gives the same result.
        if !arrivals_first {
            apply(&mut e);
        }
        while next < reqs.len() && reqs[next].at == now {
            let r = &reqs[next];
            assert!(e.submit(r.at, r.id, r.prompt, r.output));
            next += 1;
        }
        if arrivals_first {
            apply(&mut e);
        }
        e.start_step(now);
    }
}

fn workload() -> impl Strategy<Value = (Vec<Req>, EngineLimits, bool, bool)> {
    (
        prop::collection::vec((0u64..80, 1u32..3000, 1u32..400), 1..40),
        (
            1u32..=12,
            prop_oneof![Just(256u32), 1u32..=16],
            16u32..=8192,
            prop_oneof![Just(16u32), Just(64u32)],
        ),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(raw, (gap_ms, seqs, budget, bs), roofline, arrivals_first)| {
                let mut t = SimTime::ZERO;
                let mut blocks = 0u32;
                let reqs: Vec<Req> = raw
                    .iter()
                    .enumerate()
                    .map(|(i, &(gap, prompt, output))| {
                        // Bursts: many requests share a time stamp.
                        t += SimDuration::from_millis(gap % (gap_ms as u64 * 10));
                        blocks += (prompt + output).div_ceil(bs) + 1;
                        Req {
                            id: i as u64,
                            at: t,
                            prompt,
                            output,
                        }
                    })
                    .collect();
                // KV room for everything: no preemption, as in the reference.
                let limits = EngineLimits {
                    num_gpu_blocks: blocks.max(16),
                    block_size: bs,
                    max_num_seqs: seqs,
                    max_num_batched_tokens: budget,
                    chunked_prefill: true,
                };
                (reqs, limits, roofline, arrivals_first)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn fast_forward_matches_step_by_step((reqs, limits, roofline, arrivals_first) in workload()) {
        let timing = if roofline {
            Timing::Roofline(Roofline::dense_bf16(Gpu::A100, 1, 8e9, 131_072.0, SimDuration::from_millis(2)))
        } else {
            Timing::Polynomial(Polynomial)
        };
        let want = reference(&reqs, &limits, &timing);
        let (got, _) = fast(&reqs, &limits, &timing, arrivals_first);
        prop_assert_eq!(got.len(), reqs.len());
        for (id, w) in &want {
            prop_assert_eq!(got.get(id), Some(w), "request {} differs", id);
        }
    }
}

#[test]
fn wakeups_do_not_grow_with_output_length() {
    // 64 requests arriving together: with fast-forwarding the engine wakes once per batch
    // change, not once per token.
    let limits = EngineLimits::default();
    let timing = Timing::Polynomial(Polynomial);
    let reqs = |out: u32| -> Vec<Req> {
        (0..64)
            .map(|i| Req {
                id: i,
                at: SimTime::ZERO,
                prompt: 1024,
                output: out + (i as u32 % 8),
            })
            .collect()
    };
    let (_, short) = fast(&reqs(128), &limits, &timing, true);
    let (_, long) = fast(&reqs(1280), &limits, &timing, true);
    assert!(
        long <= short + 2,
        "wake-ups: {short} for 128 tokens, {long} for 1280"
    );
}
