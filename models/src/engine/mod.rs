//! The batching engine of one worker (one DP rank): continuous batching with a token budget,
//! a sequence cap, KV blocks, chunked prefill and LIFO preemption, with the scheduling rules of
//! vLLM as Dynamo's engine simulator implements them (aisimulate-core 0.13
//! `src/engine/scheduler/vllm/core.rs`, cited per rule below).
//!
//! It is a plain state machine with no events of its own: its owner submits requests, asks
//! [`Engine::next_wakeup`] and calls [`Engine::wakeup`] then. It never works per token, and not
//! per step while the batch is unchanged: when every running sequence is decoding and nothing
//! waiting can be admitted, one plan covers all steps up to the next completion (their
//! durations are a known function of the context lengths), and an arrival in between cuts the
//! plan after the step in progress.
//!
//! Deliberate differences from aisimulate-core: time is integer nanoseconds (its f64
//! milliseconds are rounded to ns per duration anyway); there is no prefix cache yet (the
//! suite's prompts are random, so it never hits).

pub mod timing;

use std::collections::VecDeque;

use sim_core::{SimDuration, SimTime};

use crate::profile::EngineLimits;
use timing::{StepTime, StepWork, Timing};

/// What the engine reports at a wake-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The request's first token was sampled at this wake-up.
    FirstToken(u64),
    /// The request generated all its tokens and left the engine.
    Finished(u64),
}

#[derive(Clone, Debug)]
struct Seq {
    id: u64,
    prompt: u32,
    output: u32,
    generated: u32,
    /// Tokens whose KV is computed.
    computed: u32,
    /// KV blocks held.
    blocks: u32,
    aborted: bool,
}

impl Seq {
    fn len(&self) -> u32 {
        self.prompt + self.generated
    }
}

#[derive(Clone, Debug)]
enum PlanKind {
    /// One general step; the decision is in `Engine::sched`/`keep`/`admit`.
    Single,
    /// `steps` pure-decode steps of every running sequence.
    Decode { steps: u32 },
}

#[derive(Clone, Debug)]
struct Plan {
    start: SimTime,
    end: SimTime,
    kind: PlanKind,
}

/// One worker's engine.
pub struct Engine {
    limits: EngineLimits,
    timing: Timing,
    total_kv_tokens: u64,
    free_blocks: u32,
    /// Running sequences in admission order.
    running: Vec<Seq>,
    waiting: VecDeque<Seq>,
    plan: Option<Plan>,
    // The pending single-step decision: tokens per running sequence, how many running
    // sequences survive (the rest are preempted), tokens for each admitted waiting sequence.
    sched: Vec<u32>,
    keep: usize,
    admit: Vec<u32>,
    outputs: Vec<Output>,
    steps_done: u64,
    /// Aborted requests still held (marked during a step, dropped at the next plan).
    aborted: usize,
}

fn ceil_div(a: u32, b: u32) -> u32 {
    a.div_ceil(b)
}

impl Engine {
    /// An idle engine.
    pub fn new(limits: EngineLimits, timing: Timing) -> Self {
        Engine {
            total_kv_tokens: u64::from(limits.num_gpu_blocks) * u64::from(limits.block_size),
            free_blocks: limits.num_gpu_blocks,
            limits,
            timing,
            running: Vec::new(),
            waiting: VecDeque::new(),
            plan: None,
            sched: Vec::new(),
            keep: 0,
            admit: Vec::new(),
            outputs: Vec::new(),
            steps_done: 0,
            aborted: 0,
        }
    }

    /// When the owner must call [`Engine::wakeup`] next.
    pub fn next_wakeup(&self) -> Option<SimTime> {
        self.plan.as_ref().map(|p| p.end)
    }

    /// Requests inside the engine (running and waiting).
    pub fn len(&self) -> usize {
        self.running
            .iter()
            .chain(self.waiting.iter())
            .filter(|s| !s.aborted)
            .count()
    }

    /// Whether no request is inside.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Engine steps executed so far (for reports and the reference test).
    pub fn steps_done(&self) -> u64 {
        self.steps_done
    }

    /// Adds a request at `now`; it joins at the next step boundary. Returns `false` (and
    /// keeps nothing) if its context can never fit in the KV cache (aisimulate `policy.rs`
    /// 260–267).
    pub fn submit(&mut self, now: SimTime, id: u64, prompt: u32, output: u32) -> bool {
        if ceil_div(prompt + output.max(1), self.limits.block_size) > self.limits.num_gpu_blocks {
            return false;
        }
        self.waiting.push_back(Seq {
            id,
            prompt,
            output: output.max(1),
            generated: 0,
            computed: 0,
            blocks: 0,
            aborted: false,
        });
        self.interrupt(now);
        self.ensure_plan(now);
        true
    }

    /// Drops a request (client gone, cancelled). Its KV is freed at the end of the step in
    /// progress. Returns whether it was inside.
    pub fn abort(&mut self, now: SimTime, id: u64) -> bool {
        self.interrupt(now);
        let in_plan = self.plan.is_some();
        let mut found = false;
        if let Some(i) = self.waiting.iter().position(|s| s.id == id && !s.aborted) {
            found = true;
            if in_plan {
                self.waiting[i].aborted = true;
                self.aborted += 1;
            } else {
                self.waiting.remove(i);
            }
        } else if let Some(i) = self.running.iter().position(|s| s.id == id && !s.aborted) {
            found = true;
            if in_plan {
                self.running[i].aborted = true;
                self.aborted += 1;
            } else {
                let s = self.running.remove(i);
                self.free_blocks += s.blocks;
            }
        }
        self.ensure_plan(now);
        found
    }

    /// The engine dies: every request inside is lost; returns their ids (running first, in
    /// admission order, then waiting).
    pub fn kill(&mut self) -> Vec<u64> {
        let ids = self
            .running
            .drain(..)
            .chain(self.waiting.drain(..))
            .filter(|s| !s.aborted)
            .map(|s| s.id)
            .collect();
        self.plan = None;
        self.free_blocks = self.limits.num_gpu_blocks;
        self.aborted = 0;
        ids
    }

    /// Applies the plan that ends at `now` and plans the next step(s). Returns what happened.
    pub fn wakeup(&mut self, now: SimTime) -> &[Output] {
        self.outputs.clear();
        if let Some(plan) = self.plan.take() {
            debug_assert_eq!(plan.end, now, "wakeup at the plan's end");
            match plan.kind {
                PlanKind::Single => self.apply_single(now),
                PlanKind::Decode { steps } => self.apply_decode(now, steps),
            }
        }
        self.ensure_plan(now);
        &self.outputs
    }

    /// Cuts a multi-step plan after the step in progress at `now` (an arrival joins the next
    /// step: aisimulate `core.rs` 1327–1340); a plan starting exactly now is dropped so the
    /// arrival joins it (arrivals are released before steps start, `replay/agg.rs` 859–956).
    fn interrupt(&mut self, now: SimTime) {
        let Some(plan) = &self.plan else { return };
        if plan.start == now {
            self.plan = None;
            return;
        }
        let (start, PlanKind::Decode { steps }) = (plan.start, &plan.kind) else {
            return;
        };
        let steps = *steps;
        let n = self.running.len() as u64;
        let s0: u64 = self.running.iter().map(|s| u64::from(s.len())).sum();
        let mut t = start;
        for j in 0..steps {
            t += self.decode_step(n, s0 + u64::from(j) * n);
            if t >= now {
                // Steps ending at or before `now` are done; the one in progress completes.
                self.plan = Some(Plan {
                    start,
                    end: t,
                    kind: PlanKind::Decode { steps: j + 1 },
                });
                return;
            }
        }
    }

    fn decode_step(&self, n: u64, kv: u64) -> SimDuration {
        let w = StepWork {
            prefill_tokens: 0,
            decode_seqs: n,
            decode_kv_tokens: kv,
        };
        self.timing.step_time(w, self.total_kv_tokens)
    }

    fn ensure_plan(&mut self, now: SimTime) {
        if self.plan.is_some() {
            return;
        }
        if self.aborted > 0 {
            let mut freed = 0;
            self.running.retain(|s| {
                if s.aborted {
                    freed += s.blocks;
                }
                !s.aborted
            });
            self.free_blocks += freed;
            self.waiting.retain(|s| !s.aborted);
            self.aborted = 0;
        }
        if self.running.is_empty() && self.waiting.is_empty() {
            return;
        }
        if let Some(steps) = self.decode_run_length() {
            let n = self.running.len() as u64;
            let s0: u64 = self.running.iter().map(|s| u64::from(s.len())).sum();
            let mut end = now;
            for j in 0..steps {
                end += self.decode_step(n, s0 + u64::from(j) * n);
            }
            self.plan = Some(Plan {
                start: now,
                end,
                kind: PlanKind::Decode { steps },
            });
        } else {
            let work = self.decide_single();
            let dur = self.timing.step_time(work, self.total_kv_tokens);
            self.plan = Some(Plan {
                start: now,
                end: now + dur,
                kind: PlanKind::Single,
            });
        }
    }

    /// How many pure-decode steps can run unchanged from now, if the batch is in that state:
    /// every running sequence decoding, nothing waiting admissible, and KV blocks for all the
    /// steps guaranteed (else preemption could happen and general steps are taken).
    fn decode_run_length(&self) -> Option<u32> {
        if self.running.is_empty()
            || self
                .running
                .iter()
                .any(|s| s.generated == 0 || s.len() - s.computed != 1)
            || self.running.len() as u32 > self.limits.max_num_batched_tokens
        {
            return None;
        }
        if let Some(w) = self.waiting.front() {
            let seats = (self.running.len() as u32) < self.limits.max_num_seqs;
            if seats && ceil_div(w.len(), self.limits.block_size) <= self.free_blocks {
                return None;
            }
        }
        let mut k = self.running.iter().map(|s| s.output - s.generated).min()?;
        // Largest k whose block growth fits.
        let bs = self.limits.block_size;
        let need = |k: u32| -> u64 {
            self.running
                .iter()
                .map(|s| u64::from(ceil_div(s.computed + k, bs) - s.blocks))
                .sum()
        };
        if need(k) > u64::from(self.free_blocks) {
            let (mut lo, mut hi) = (0u32, k);
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                if need(mid) <= u64::from(self.free_blocks) {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            k = lo;
        }
        (k >= 2).then_some(k)
    }

    /// Decides one general step (aisimulate `execute_pass_internal`, `core.rs` 1781–2349)
    /// without changing state; returns its work.
    fn decide_single(&mut self) -> StepWork {
        let bs = self.limits.block_size;
        let mut budget = self.limits.max_num_batched_tokens;
        let mut free = self.free_blocks;
        self.sched.clear();
        self.sched.resize(self.running.len(), 0);
        self.admit.clear();
        let mut keep = self.running.len();
        let mut preempted = false;
        // Prompt accounting for T (`core.rs` 3315–3332): per request with prompt work, the
        // prompt tokens computed before and after.
        let (mut n_prompt, mut sum_before, mut sum_after) = (0u64, 0u64, 0u64);
        let mut decode_seqs = 0u64;
        let mut decode_kv = 0u64;
        let mut account = |s: &Seq, take: u32| {
            let before = s.computed.min(s.prompt);
            let after = (s.computed + take).min(s.prompt);
            if after > before {
                n_prompt += 1;
                sum_before += u64::from(before);
                sum_after += u64::from(after);
            }
            // A sequence completing its context samples a token; it costs decode time unless
            // this is its first token out of a prefill in this step (`core.rs` 2882–2912).
            if s.computed + take >= s.len() && !(s.generated == 0 && after > before) {
                decode_seqs += 1;
                decode_kv += u64::from(s.len());
            }
        };
        // Running sequences first, in admission order (`core.rs` 1828–1884).
        let mut i = 0;
        while i < keep && budget > 0 {
            let s = &self.running[i];
            let take = (s.len() - s.computed).min(budget);
            let mut need = ceil_div(s.computed + take, bs).saturating_sub(s.blocks);
            // Out of blocks: preempt the latest admitted (LIFO, `core.rs` 2409–2435),
            // possibly this very sequence (`core.rs` 2763–2765).
            let mut self_preempted = false;
            while need > free {
                preempted = true;
                keep -= 1;
                let v = &self.running[keep];
                free += v.blocks;
                budget += self.sched[keep];
                self.sched[keep] = 0;
                if keep == i {
                    self_preempted = true;
                    break;
                }
            }
            if self_preempted {
                break;
            }
            if need > free {
                need = free;
            }
            free -= need;
            budget -= take;
            self.sched[i] = take;
            i += 1;
        }
        // The accounting of the survivors (refunds above already removed the victims).
        for (s, &take) in self.running[..keep].iter().zip(&self.sched) {
            if take > 0 {
                account(s, take);
            }
        }
        // Then waiting requests, FIFO, while nobody was preempted and seats remain
        // (`core.rs` 1899–2202); admission needs blocks for the whole context
        // (`policy.rs` 289–315) and stops at the first that does not fit (`core.rs` 2081).
        if !preempted {
            let mut seats = self.limits.max_num_seqs.saturating_sub(keep as u32);
            for w in self.waiting.iter() {
                if seats == 0 || budget == 0 {
                    break;
                }
                if ceil_div(w.len(), bs) > free {
                    break;
                }
                let take = (w.len() - w.computed).min(budget);
                if !self.limits.chunked_prefill && take < w.len() - w.computed {
                    break;
                }
                free -= ceil_div(w.computed + take, bs).saturating_sub(w.blocks);
                budget -= take;
                seats -= 1;
                self.admit.push(take);
                account(w, take);
            }
        }
        self.keep = keep;
        let t = if n_prompt == 0 {
            0
        } else {
            n_prompt * (sum_after / n_prompt - sum_before / n_prompt)
        };
        StepWork {
            prefill_tokens: t,
            decode_seqs,
            decode_kv_tokens: decode_kv,
        }
    }

    fn apply_single(&mut self, now: SimTime) {
        self.steps_done += 1;
        let bs = self.limits.block_size;
        // Preempted sequences recompute from scratch but keep their tokens, and go to the
        // front of the waiting queue in running order (`core.rs` 526–549).
        for mut v in self.running.drain(self.keep..).rev() {
            self.free_blocks += v.blocks;
            v.blocks = 0;
            v.computed = 0;
            self.waiting.push_front(v);
        }
        for _ in 0..self.admit.len() {
            let s = self
                .waiting
                .pop_front()
                .expect("admitted request is waiting");
            self.running.push(s);
        }
        self.sched.extend_from_slice(&self.admit);
        self.sched.truncate(self.running.len());
        let mut i = 0;
        while i < self.running.len() {
            let take = self.sched.get(i).copied().unwrap_or(0);
            let s = &mut self.running[i];
            if take > 0 {
                s.computed += take;
                let blocks = ceil_div(s.computed, bs);
                self.free_blocks -= blocks - s.blocks;
                s.blocks = blocks;
                if s.computed >= s.len() {
                    s.generated += 1;
                    if s.generated == 1 && !s.aborted {
                        self.outputs.push(Output::FirstToken(s.id));
                    }
                }
            }
            if s.aborted || s.generated >= s.output {
                if !s.aborted {
                    self.outputs.push(Output::Finished(s.id));
                }
                self.free_blocks += s.blocks;
                self.running.remove(i);
                if i < self.sched.len() {
                    self.sched.remove(i);
                }
                continue;
            }
            i += 1;
        }
        let _ = now;
    }

    fn apply_decode(&mut self, _now: SimTime, steps: u32) {
        self.steps_done += u64::from(steps);
        let bs = self.limits.block_size;
        let mut free = self.free_blocks;
        self.running.retain_mut(|s| {
            s.computed += steps;
            s.generated += steps;
            let blocks = ceil_div(s.computed, bs);
            free -= blocks - s.blocks;
            s.blocks = blocks;
            if s.aborted || s.generated >= s.output {
                if !s.aborted {
                    self.outputs.push(Output::Finished(s.id));
                }
                free += s.blocks;
                false
            } else {
                true
            }
        });
        self.free_blocks = free;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use timing::Polynomial;

    fn engine() -> Engine {
        Engine::new(EngineLimits::default(), Timing::Polynomial(Polynomial))
    }

    fn run_to_idle(e: &mut Engine) -> Vec<(SimTime, Output)> {
        let mut out = vec![];
        while let Some(t) = e.next_wakeup() {
            out.extend(e.wakeup(t).iter().map(|o| (t, *o)));
        }
        out
    }

    #[test]
    fn one_request_takes_one_prefill_step_then_output_minus_one_decode_steps() {
        let mut e = engine();
        e.submit(SimTime::ZERO, 7, 100, 10);
        let out = run_to_idle(&mut e);
        let prefill = SimDuration::from_secs_f64(Polynomial::prefill_ms(100) / 1e3);
        assert_eq!(out[0], (SimTime::ZERO + prefill, Output::FirstToken(7)));
        let mut t = SimTime::ZERO + prefill;
        for j in 0..9u64 {
            t += SimDuration::from_secs_f64(Polynomial::decode_ms(101 + j, 16_384 * 64) / 1e3);
        }
        assert_eq!(out[1], (t, Output::Finished(7)));
        assert_eq!(e.steps_done(), 10);
        assert_eq!(e.free_blocks, 16_384);
    }

    #[test]
    fn an_arrival_cuts_a_decode_run_after_the_step_in_progress() {
        let mut e = engine();
        e.submit(SimTime::ZERO, 1, 64, 1000);
        let t1 = e.next_wakeup().unwrap();
        e.wakeup(t1);
        let long_end = e.next_wakeup().unwrap();
        let mid = SimTime::from_nanos((t1.as_nanos() + long_end.as_nanos()) / 2);
        e.submit(mid, 2, 64, 5);
        let cut = e.next_wakeup().unwrap();
        assert!(cut >= mid && cut < long_end);
        let out = run_to_idle(&mut e);
        assert!(out.contains(&(out.last().unwrap().0, Output::Finished(1))));
        assert!(out.iter().any(|o| o.1 == Output::Finished(2)));
    }

    #[test]
    fn preemption_under_a_tiny_cache_still_finishes_everything_once() {
        let limits = EngineLimits {
            num_gpu_blocks: 8,
            block_size: 16,
            ..EngineLimits::default()
        };
        let mut e = Engine::new(limits, Timing::Polynomial(Polynomial));
        for id in 0..4 {
            assert!(e.submit(SimTime::ZERO, id, 30, 40));
        }
        let out = run_to_idle(&mut e);
        for id in 0..4 {
            assert_eq!(
                out.iter().filter(|o| o.1 == Output::Finished(id)).count(),
                1,
                "{id}"
            );
            assert_eq!(
                out.iter().filter(|o| o.1 == Output::FirstToken(id)).count(),
                1,
                "{id}"
            );
        }
        assert_eq!(e.free_blocks, 8, "every block is returned");
        assert!(e.is_empty());
        // 4 × 40 tokens on at most 8 blocks of 16: some request must have been recomputed.
        assert!(e.steps_done() > 4 * 40 / 2, "{}", e.steps_done());
    }

    #[test]
    fn oversized_requests_are_rejected_and_kill_empties_the_engine() {
        let mut e = engine();
        assert!(!e.submit(SimTime::ZERO, 1, 16_384 * 64, 1));
        assert!(e.is_empty());
        e.submit(SimTime::ZERO, 2, 10, 10);
        e.submit(SimTime::ZERO, 3, 10, 10);
        assert_eq!(e.kill(), vec![2, 3]);
        assert!(e.is_empty());
        assert_eq!(e.next_wakeup(), None);
    }
}
