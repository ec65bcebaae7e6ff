//! The batching engine of one worker (one DP rank): continuous batching with a token budget,
//! a sequence cap, KV blocks with prefix caching, chunked prefill and LIFO preemption, with the
//! scheduling rules of vLLM as Dynamo's engine simulator implements them (aisimulate-core 0.13
//! `src/engine/scheduler/vllm/core.rs`, cited per rule below).
//!
//! It is a plain state machine with no events of its own. Its owner submits requests, calls
//! [`Engine::start_step`] when the engine is idle with work (after every arrival of that
//! instant: arrivals are released before steps start, aisimulate `replay/agg.rs` 859–956), and
//! [`Engine::wakeup`] at [`Engine::next_wakeup`], when the step in progress ends. A general
//! step is decided and committed when it starts (`replay/CLAUDE.md`: a pass commits its whole
//! batch at its start). The engine never works per token, and not per step while the batch is
//! unchanged: when every running sequence is decoding and nothing waiting can be admitted, one
//! plan covers all steps up to the next completion (their durations are a known function of
//! the context lengths), and an arrival in between cuts it after the step in progress.
//!
//! Deliberate differences from aisimulate-core: time is integer nanoseconds (it rounds every
//! duration to whole nanoseconds too); block hashes are dynsim's own (only equality matters).

mod kv;
pub mod timing;

pub(crate) use kv::IdHasher;

use std::collections::VecDeque;

use sim_core::{SimDuration, SimTime};

use crate::profile::EngineLimits;
use kv::{Held, Pool};
use timing::{StepTime, StepWork, Timing};

/// What the engine reports at a wake-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The request's first token was sampled at this wake-up.
    FirstToken(u64),
    /// The request generated all its tokens and left the engine.
    Finished(u64),
}

/// splitmix64, for dynsim's block hashes.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Chains a block's content onto its parent's hash (aisimulate `common/hashing.rs`: each
/// block's hash covers every block before it).
pub fn chain_hash(parent: Option<u64>, content: u64) -> u64 {
    mix(parent.map_or(0x5eed, mix) ^ mix(content))
}

#[derive(Clone, Debug)]
struct Seq {
    id: u64,
    prompt: u32,
    output: u32,
    generated: u32,
    /// Tokens whose KV is computed (or, during a step, will be at its end).
    computed: u32,
    /// Hashes of the prompt's leading full blocks that other requests may share.
    hashes: Vec<u64>,
    /// After a preemption: the request's own cached blocks past `hashes` (copy, generation),
    /// which only it can hit again.
    own: Vec<(kv::CopyId, u32)>,
    /// Blocks held, in order.
    held: Vec<Held>,
    /// This step: context before it (including cache hits) and the target after it.
    step_before: u32,
    step_target: u32,
    aborted: bool,
    /// Whether it has been admitted before (re-admissions after preemption are not counted
    /// in the prefix-cache statistics).
    admitted: bool,
}

impl Seq {
    fn len(&self) -> u32 {
        self.prompt + self.generated
    }
}

#[derive(Clone, Debug)]
enum PlanKind {
    /// One general step, committed at its start.
    Single,
    /// `steps` pure-decode steps of every running sequence, applied at the end.
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
    pool: Pool,
    /// Running sequences in admission order.
    running: Vec<Seq>,
    waiting: VecDeque<Seq>,
    plan: Option<Plan>,
    outputs: Vec<Output>,
    steps_done: u64,
    /// Requests preempted so far (each recomputes its tokens when readmitted).
    preemptions: u64,
    /// Aborted requests still held (marked during a step, dropped when it ends).
    aborted: usize,
    /// Prompt tokens of first admissions, and how many of them the prefix cache held.
    prompt_tokens: u64,
    cached_tokens: u64,
    /// First admissions since the last drain: (request, prompt tokens, cached tokens).
    admissions: Vec<(u64, u32, u32)>,
}

fn ceil_div(a: u32, b: u32) -> u32 {
    a.div_ceil(b)
}

/// What a waiting request would get from the prefix cache: cached tokens and how many of them
/// are in active blocks (`vllm_backend.rs` 1467–1487), capped so that the last token is
/// recomputed (`vllm_backend.rs` 62–94).
#[derive(Clone, Copy, Debug)]
struct Cost {
    cached: u32,
    active_cached: u32,
}

impl Engine {
    /// An idle engine.
    pub fn new(limits: EngineLimits, timing: Timing) -> Self {
        Engine {
            total_kv_tokens: u64::from(limits.num_gpu_blocks) * u64::from(limits.block_size),
            pool: Pool::new(limits.num_gpu_blocks),
            limits,
            timing,
            running: Vec::new(),
            waiting: VecDeque::new(),
            plan: None,
            outputs: Vec::new(),
            steps_done: 0,
            preemptions: 0,
            aborted: 0,
            prompt_tokens: 0,
            cached_tokens: 0,
            admissions: Vec::new(),
        }
    }

    /// Tokens generated so far for request `id` (0 if it is not inside).
    pub fn generated(&self, id: u64) -> u32 {
        self.running
            .iter()
            .chain(self.waiting.iter())
            .find(|s| s.id == id)
            .map_or(0, |s| s.generated)
    }

    /// Moves the first admissions since the last call into `out`: (request, prompt tokens,
    /// of which cached).
    pub fn drain_admissions(&mut self, out: &mut Vec<(u64, u32, u32)>) {
        out.append(&mut self.admissions);
    }

    /// The shared block hashes its cache holds, sorted (a KV router rebuilding its view).
    pub fn cached_hashes(&self) -> Vec<u64> {
        self.pool.cached_hashes()
    }

    /// Moves the KV events (stored or removed shared block hashes) since the last call into
    /// `out`, for the event plane.
    pub fn drain_kv_events(&mut self, out: &mut Vec<(bool, u64)>) {
        self.pool.drain_events(out);
    }

    /// Prompt tokens admitted (first admissions) and how many were prefix-cache hits.
    pub fn prefix_stats(&self) -> (u64, u64) {
        (self.prompt_tokens, self.cached_tokens)
    }

    /// When the step (or run of decode steps) in progress ends.
    pub fn next_wakeup(&self) -> Option<SimTime> {
        self.plan.as_ref().map(|p| p.end)
    }

    /// Whether the engine is between steps with work to do: its owner calls
    /// [`Engine::start_step`].
    pub fn wants_step(&self) -> bool {
        self.plan.is_none() && !(self.running.is_empty() && self.waiting.is_empty())
    }

    /// Requests inside the engine (running and waiting).
    pub fn len(&self) -> usize {
        self.running.len() + self.waiting.len() - self.aborted
    }

    /// Whether no request is inside.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Engine steps executed so far (for reports and the reference test).
    pub fn steps_done(&self) -> u64 {
        self.steps_done
    }

    /// Requests preempted so far.
    pub fn preemptions(&self) -> u64 {
        self.preemptions
    }

    /// Whether every KV block is free or only cached (no request holds one).
    pub fn kv_idle(&self) -> bool {
        self.pool.idle()
    }

    /// Adds a request with a prompt of its own (no prefix shared with any other). It joins at
    /// the next step. Returns `false` (and keeps nothing) if its context can never fit in the
    /// KV cache (aisimulate `policy.rs` 260–267).
    pub fn submit(&mut self, now: SimTime, id: u64, prompt: u32, output: u32) -> bool {
        self.submit_with_prefix(now, id, prompt, output, Vec::new())
    }

    /// As [`Engine::submit`], with the chained hashes of the prompt's leading full blocks
    /// (requests sharing a prefix share these hashes; see [`chain_hash`]).
    pub fn submit_with_prefix(
        &mut self,
        now: SimTime,
        id: u64,
        prompt: u32,
        output: u32,
        hashes: Vec<u64>,
    ) -> bool {
        if ceil_div(prompt + output.max(1), self.limits.block_size) > self.limits.num_gpu_blocks {
            return false;
        }
        let full = (prompt / self.limits.block_size) as usize;
        let mut hashes = hashes;
        hashes.truncate(full);
        self.waiting.push_back(Seq {
            id,
            prompt,
            output: output.max(1),
            generated: 0,
            computed: 0,
            hashes,
            own: Vec::new(),
            held: Vec::new(),
            step_before: 0,
            step_target: 0,
            aborted: false,
            admitted: false,
        });
        self.interrupt(now);
        true
    }

    /// Adds a request whose prompt KV was computed elsewhere and transferred in (a decode
    /// worker of a disaggregated deployment): all but the last prompt token are present; the
    /// engine computes that token and samples the first output token, then decodes.
    pub fn submit_remote(&mut self, now: SimTime, id: u64, prompt: u32, output: u32) -> bool {
        if !self.submit(now, id, prompt, output) {
            return false;
        }
        let s = self.waiting.back_mut().expect("just submitted");
        s.computed = prompt.saturating_sub(1);
        true
    }

    /// Drops a request (client gone, cancelled). Its KV is released when the step in progress
    /// ends. Returns whether it was inside.
    pub fn abort(&mut self, now: SimTime, id: u64) -> bool {
        self.interrupt(now);
        let in_step = self.plan.is_some();
        if let Some(i) = self.waiting.iter().position(|s| s.id == id && !s.aborted) {
            let s = self.waiting.remove(i).expect("index in range");
            self.release(&s);
            return true;
        }
        if let Some(i) = self.running.iter().position(|s| s.id == id && !s.aborted) {
            if in_step {
                self.running[i].aborted = true;
                self.aborted += 1;
            } else {
                let s = self.running.remove(i);
                self.release(&s);
            }
            return true;
        }
        false
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
        self.pool = Pool::new(self.limits.num_gpu_blocks);
        self.aborted = 0;
        ids
    }

    /// Applies the step(s) ending at `now` and reports what happened. The next step starts at
    /// [`Engine::start_step`].
    pub fn wakeup(&mut self, now: SimTime) -> &[Output] {
        self.outputs.clear();
        if let Some(plan) = self.plan.take() {
            debug_assert_eq!(plan.end, now, "wakeup at the plan's end");
            match plan.kind {
                PlanKind::Single => self.apply_single(),
                PlanKind::Decode { steps } => self.apply_decode(steps),
            }
        }
        &self.outputs
    }

    fn release(&mut self, s: &Seq) {
        // Tail first (`vllm_backend.rs` 1302–1331).
        for &h in s.held.iter().rev() {
            self.pool.release(h);
        }
    }

    /// Cuts a multi-step decode plan after the step in progress at `now` (an arrival joins the
    /// next step: aisimulate `core.rs` 1327–1340).
    fn interrupt(&mut self, now: SimTime) {
        let Some(Plan {
            start,
            kind: PlanKind::Decode { steps },
            ..
        }) = self.plan
        else {
            return;
        };
        let n = self.running.len() as u64;
        let s0: u64 = self.running.iter().map(|s| u64::from(s.len())).sum();
        let mut t = start;
        for j in 0..steps {
            t += self.decode_step(n, s0 + u64::from(j) * n);
            if t > now || (t == now && j + 1 < steps) {
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

    /// Starts the next step at `now` if the engine is idle with work.
    pub fn start_step(&mut self, now: SimTime) {
        if !self.wants_step() {
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
            let work = self.schedule_single();
            let dur = self.timing.step_time(work, self.total_kv_tokens);
            self.plan = Some(Plan {
                start: now,
                end: now + dur,
                kind: PlanKind::Single,
            });
        }
    }

    /// The cached copy of full block `k` of waiting request `s`, and whether it is active:
    /// shared blocks by hash, its own blocks by handle.
    fn cached_block(&self, s: &Seq, k: usize) -> Option<(kv::CopyId, bool)> {
        match s.hashes.get(k) {
            Some(&h) => self.pool.lookup(h),
            None => {
                let &(c, gen) = s.own.get(k - s.hashes.len())?;
                self.pool.alive(c, gen).map(|active| (c, active))
            }
        }
    }

    /// The prefix-cache cost of waiting request `s`: the longest run of its blocks still
    /// cached, active or not (`vllm_backend.rs` 1467–1487).
    fn cost(&self, s: &Seq) -> Cost {
        let bs = self.limits.block_size;
        let (mut overlap, mut active) = (0u32, 0u32);
        while let Some((_, is_active)) = self.cached_block(s, overlap as usize) {
            overlap += 1;
            active += u32::from(is_active);
        }
        let len = s.len();
        let cap = (len - 1) / bs * bs;
        Cost {
            cached: (overlap * bs).min(len).min(cap),
            active_cached: (active * bs).min(len).min(cap),
        }
    }

    /// Whether waiting request `s` passes admission: blocks for its whole context, less its
    /// active cached ones, against free plus evictable blocks (`policy.rs` 289–315).
    fn admissible(&self, s: &Seq) -> Option<Cost> {
        let c = self.cost(s);
        let needed =
            ceil_div(s.len(), self.limits.block_size) - c.active_cached / self.limits.block_size;
        (needed <= self.pool.available()).then_some(c)
    }

    /// How many pure-decode steps can run unchanged from now, if the batch is in that state:
    /// every running sequence decoding, nothing waiting admissible, and KV blocks for all the
    /// steps guaranteed (else preemption could happen and general steps are taken).
    fn decode_run_length(&self) -> Option<u32> {
        if self.running.is_empty()
            || self.aborted > 0
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
            if seats && self.admissible(w).is_some() {
                return None;
            }
        }
        let mut k = self.running.iter().map(|s| s.output - s.generated).min()?;
        // Largest k whose block growth fits in the free and evictable blocks.
        let bs = self.limits.block_size;
        let need = |k: u32| -> u64 {
            self.running
                .iter()
                .map(|s| u64::from(ceil_div(s.computed + k, bs) - s.held.len() as u32))
                .sum()
        };
        let room = u64::from(self.pool.available());
        if need(k) > room {
            let (mut lo, mut hi) = (0u32, k);
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                if need(mid) <= room {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            k = lo;
        }
        (k >= 2).then_some(k)
    }

    /// Takes the blocks `s` needs to reach `target` tokens: `hits` cached blocks then fresh
    /// ones (`vllm_backend.rs` 614–713). Fails, changing nothing, if the pool is short.
    fn allocate(pool: &mut Pool, s: &mut Seq, target: u32, hits: &[kv::CopyId], bs: u32) -> bool {
        let have = s.held.len() as u32 + hits.len() as u32;
        let fresh = ceil_div(target, bs).saturating_sub(have);
        if !pool.allocate(hits, fresh) {
            return false;
        }
        s.held.extend(hits.iter().map(|&c| Held::Cached(c)));
        s.held
            .extend(std::iter::repeat_n(Held::Private, fresh as usize));
        true
    }

    /// Publishes the blocks `s` completes in this step (visible at once, `vllm_backend.rs`
    /// 960–1025). Blocks past the shared prompt are the request's own (their tokens are its
    /// alone): cached for it, never found by another.
    fn publish(pool: &mut Pool, s: &mut Seq, before: u32, target: u32, bs: u32) {
        for k in (before / bs)..(target / bs) {
            let k = k as usize;
            if s.held[k] == Held::Private {
                let c = match s.hashes.get(k) {
                    Some(&h) => pool.publish(h),
                    None => pool.publish_own(),
                };
                s.held[k] = Held::Cached(c);
            }
        }
    }

    /// Preempts the latest admitted running sequence (LIFO, `core.rs` 2409–2435): its blocks
    /// are released, it recomputes from scratch keeping its tokens, and goes to the front of
    /// the waiting queue (`core.rs` 526–549). Returns its budget to refund.
    fn preempt_last(&mut self) -> u32 {
        self.preemptions += 1;
        let mut v = self.running.pop().expect("a victim");
        let refund = v.step_target - v.step_before;
        self.release(&v);
        // Remember its own cached blocks: it may hit them when readmitted.
        let shared = v.hashes.len();
        v.own.clear();
        for h in v.held.iter().skip(shared) {
            let Held::Cached(c) = *h else { break };
            v.own.push((c, self.pool.gen(c)));
        }
        v.held.clear();
        v.computed = 0;
        v.step_before = 0;
        v.step_target = 0;
        self.waiting.push_front(v);
        refund
    }

    /// Decides and commits one general step (aisimulate `execute_pass_internal`, `core.rs`
    /// 1781–2349); returns its work.
    fn schedule_single(&mut self) -> StepWork {
        let bs = self.limits.block_size;
        let mut budget = self.limits.max_num_batched_tokens;
        let mut preempted = false;
        for s in &mut self.running {
            s.step_before = s.computed;
            s.step_target = s.computed;
        }
        // Running sequences first, in admission order (`core.rs` 1828–1884).
        let mut i = 0;
        while i < self.running.len() && budget > 0 {
            let s = &self.running[i];
            let target = s.computed + (s.len() - s.computed).min(budget);
            loop {
                let s = &mut self.running[i];
                if Self::allocate(&mut self.pool, s, target, &[], bs) {
                    break;
                }
                preempted = true;
                let self_victim = i + 1 == self.running.len();
                budget += self.preempt_last();
                if self_victim {
                    break;
                }
            }
            if i >= self.running.len() {
                break; // this sequence was its own victim
            }
            let s = &mut self.running[i];
            let before = s.computed;
            Self::publish(&mut self.pool, s, before, target, bs);
            budget -= target - before;
            s.step_target = target;
            i += 1;
        }
        // Then waiting requests, FIFO, while nobody was preempted and seats remain
        // (`core.rs` 1899–2202); admission stops at the first that does not fit (`core.rs`
        // 2081).
        while !preempted && (self.running.len() as u32) < self.limits.max_num_seqs {
            let Some(w) = self.waiting.front() else { break };
            let Some(cost) = self.admissible(w) else {
                break;
            };
            let before = cost.cached;
            let desired = (w.len() - before).min(budget);
            if desired == 0 || (!self.limits.chunked_prefill && desired < w.len() - before) {
                break;
            }
            let target = before + desired;
            let mut w = self.waiting.pop_front().expect("front exists");
            let admitted = loop {
                let hit_blocks = if w.computed == 0 { before / bs } else { 0 };
                let hits: Vec<kv::CopyId> = (0..hit_blocks as usize)
                    .map(|k| self.cached_block(&w, k).expect("hit still cached").0)
                    .collect();
                if Self::allocate(&mut self.pool, &mut w, target, &hits, bs) {
                    break true;
                }
                if self.running.is_empty() {
                    break false;
                }
                preempted = true;
                budget += self.preempt_last();
            };
            if !admitted {
                self.waiting.push_front(w);
                break;
            }
            if !w.admitted && w.computed == 0 {
                // First admission of a prompt this engine prefills (not one transferred in).
                self.prompt_tokens += u64::from(w.prompt);
                self.cached_tokens += u64::from(before.min(w.prompt));
                self.admissions.push((w.id, w.prompt, before.min(w.prompt)));
            }
            w.admitted = true;
            w.computed = before;
            w.step_before = before;
            w.step_target = target;
            Self::publish(&mut self.pool, &mut w, before, target, bs);
            budget -= desired;
            self.running.push(w);
        }
        // The step's work (`core.rs` 2882–2912, 3315–3332): prompt tokens through the
        // integer-mean formula; a sequence reaching its context samples a token and costs
        // decode time unless it is its first token out of a prefill in this step.
        let (mut n, mut sum_before, mut sum_after) = (0u64, 0u64, 0u64);
        let (mut decode_seqs, mut decode_kv) = (0u64, 0u64);
        for s in &self.running {
            if s.step_target == s.step_before {
                continue;
            }
            let b = s.step_before.min(s.prompt);
            let a = s.step_target.min(s.prompt);
            if a > b {
                n += 1;
                sum_before += u64::from(b);
                sum_after += u64::from(a);
            }
            if s.step_target >= s.len() && !(s.generated == 0 && a > b) {
                decode_seqs += 1;
                decode_kv += u64::from(s.len());
            }
        }
        let t = if n == 0 {
            0
        } else {
            n * (sum_after / n - sum_before / n)
        };
        StepWork {
            prefill_tokens: t,
            decode_seqs,
            decode_kv_tokens: decode_kv,
        }
    }

    fn apply_single(&mut self) {
        self.steps_done += 1;
        let mut i = 0;
        while i < self.running.len() {
            let s = &mut self.running[i];
            if s.step_target > s.step_before {
                s.computed = s.step_target;
                if s.computed >= s.len() {
                    s.generated += 1;
                    if s.generated == 1 && !s.aborted {
                        self.outputs.push(Output::FirstToken(s.id));
                    }
                }
            }
            s.step_before = s.computed;
            s.step_target = s.computed;
            if s.aborted || s.generated >= s.output {
                let s = self.running.remove(i);
                if s.aborted {
                    self.aborted -= 1;
                } else {
                    self.outputs.push(Output::Finished(s.id));
                }
                self.release(&s);
                continue;
            }
            i += 1;
        }
    }

    fn apply_decode(&mut self, steps: u32) {
        self.steps_done += u64::from(steps);
        let bs = self.limits.block_size;
        // Every step's blocks are taken before any sequence leaves: each step allocates at its
        // start, and the sequences finishing in the run release theirs only after its last
        // step (`core.rs` 2689–2766 per step, completion at the pass end), so their blocks
        // never stand in for an eviction of an earlier step.
        for s in &mut self.running {
            let (before, target) = (s.computed, s.computed + steps);
            let ok = Self::allocate(&mut self.pool, s, target, &[], bs);
            debug_assert!(
                ok,
                "decode runs are planned within the free and evictable blocks"
            );
            Self::publish(&mut self.pool, s, before, target, bs);
            s.computed = target;
            s.generated += steps;
        }
        let mut i = 0;
        while i < self.running.len() {
            let s = &self.running[i];
            if s.generated >= s.output {
                let s = self.running.remove(i);
                self.outputs.push(Output::Finished(s.id));
                self.release(&s);
                continue;
            }
            i += 1;
        }
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
        e.start_step(SimTime::ZERO);
        while let Some(t) = e.next_wakeup() {
            out.extend(e.wakeup(t).iter().map(|o| (t, *o)));
            e.start_step(t);
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
        assert!(e.kv_idle());
    }

    #[test]
    fn an_arrival_cuts_a_decode_run_after_the_step_in_progress() {
        let mut e = engine();
        e.submit(SimTime::ZERO, 1, 64, 1000);
        e.start_step(SimTime::ZERO);
        let t1 = e.next_wakeup().unwrap();
        e.wakeup(t1);
        e.start_step(t1);
        let long_end = e.next_wakeup().unwrap();
        let mid = SimTime::from_nanos((t1.as_nanos() + long_end.as_nanos()) / 2);
        e.submit(mid, 2, 64, 5);
        let cut = e.next_wakeup().unwrap();
        // The end of the decode step under way at `mid`: steps of the growing context from
        // t1 (prompt 64 + the first token).
        let mut step_end = t1;
        let mut j = 0u64;
        while step_end < mid {
            step_end +=
                SimDuration::from_secs_f64(Polynomial::decode_ms(65 + j, 16_384 * 64) / 1e3);
            j += 1;
        }
        assert_eq!(cut, step_end, "the run stops after the step in progress");
        assert!(cut < long_end);
        let mut out = vec![];
        while let Some(t) = e.next_wakeup() {
            out.extend(e.wakeup(t).iter().map(|o| (t, *o)));
            e.start_step(t);
        }
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
        assert!(e.kv_idle(), "every block is returned");
        assert!(e.is_empty());
        // 4 × (30 + 40) tokens need 20 blocks of 16 at the end; 8 hold at most 128 tokens:
        // requests were preempted, and the same work with room for all preempts none.
        assert!(e.preemptions() > 0);
        let mut roomy = Engine::new(EngineLimits::default(), Timing::Polynomial(Polynomial));
        for id in 0..4 {
            assert!(roomy.submit(SimTime::ZERO, id, 30, 40));
        }
        run_to_idle(&mut roomy);
        assert_eq!(roomy.preemptions(), 0);
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
