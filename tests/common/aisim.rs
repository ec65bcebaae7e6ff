//! Drivers shared by the differential tests and the side-by-side benchmark: the same
//! workload through aisimulate-core 0.13.0's replay and through dynsim's engine.
#![allow(dead_code)]

use std::collections::BTreeMap;

use aisimulate_core::replay::{
    run_engine_replay, ReplayAdapters, ReplayEngineConfig, ReplayRequest, ReplaySpec,
    ReplayTopology, SlaThresholds,
};
use models::engine::timing::{Polynomial, Timing};
use models::engine::{Engine, Output};
use models::profile::EngineLimits;
use sim_core::SimTime;

/// One request of a workload: arrival [ms], prompt and output tokens.
#[derive(Clone, Copy, Debug)]
pub struct Req {
    pub at_ms: f64,
    pub prompt: u32,
    pub output: u32,
    /// Shared prefix: (group, tokens of the group's prefix at the start of the prompt).
    pub prefix: Option<(u32, u32)>,
}

impl Req {
    /// The prompt's token ids when it has a shared prefix (group tokens, then its own).
    pub fn tokens(&self, index: usize) -> Option<Vec<u32>> {
        let (g, p) = self.prefix?;
        let own = 1_000_000_000 + index as u32 * 10_000;
        Some(
            (0..self.prompt)
                .map(|i| if i < p { g * 1_000_000 + i } else { own + i })
                .collect(),
        )
    }
}

/// dynsim's chained hashes of a prompt's full blocks, from its token ids.
pub fn block_hashes(tokens: &[u32], bs: u32) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    for block in tokens.chunks_exact(bs as usize) {
        let content = block.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &t| {
            (h ^ u64::from(t)).wrapping_mul(0x0100_0000_01b3)
        });
        out.push(models::engine::chain_hash(out.last().copied(), content));
    }
    out
}

/// Per request: (first token, end) [ms].
pub type Times = BTreeMap<usize, (f64, f64)>;

fn aisim_config(l: &EngineLimits) -> serde_json::Value {
    let mut eng = ReplayEngineConfig::default();
    eng.rank.num_gpu_blocks = l.num_gpu_blocks as usize;
    eng.rank.block_size = l.block_size as usize;
    eng.rank.max_num_seqs = l.max_num_seqs as usize;
    eng.rank.max_num_batched_tokens = l.max_num_batched_tokens as usize;
    eng.rank.enable_chunked_prefill = l.chunked_prefill;
    serde_json::to_value(&eng).expect("engine config serialises")
}

pub fn aisim(reqs: &[Req], l: &EngineLimits, workers: usize, closed_loop: Option<usize>) -> Times {
    let requests = reqs
        .iter()
        .enumerate()
        .map(|(i, r)| ReplayRequest {
            id: format!("r{i}"),
            arrival_time_ms: r.at_ms,
            input_tokens: r.prompt as usize,
            input_token_ids: r.tokens(i),
            output_tokens: r.output as usize,
            output_token_ids: None,
            dp_rank: None,
            prefill_dp_rank: None,
            session_id: None,
            turn_index: None,
            metadata: serde_json::Value::Null,
        })
        .collect();
    let spec = ReplaySpec {
        version: 1,
        topology: ReplayTopology::aggregated(workers),
        engine: aisim_config(l),
        adapters: ReplayAdapters::default(),
        max_sim_time_ms: None,
        max_in_flight: closed_loop,
        record_per_request: true,
        sla: SlaThresholds::default(),
        requests,
    };
    let report = run_engine_replay(spec).expect("aisimulate replay runs");
    report
        .per_request
        .iter()
        .map(|p| {
            let id: usize = p.request_id.as_deref().expect("authored id")[1..]
                .parse()
                .unwrap();
            (
                id,
                (
                    p.first_token_ms.unwrap_or(f64::NAN),
                    p.last_token_ms.unwrap_or(f64::NAN),
                ),
            )
        })
        .collect()
}

/// dynsim's engines, `workers` of them, with round-robin placement in arrival order. At each
/// instant: steps ending then are applied, arrivals are submitted, idle engines start a step
/// (aisimulate `replay/agg.rs` 859–956).
pub fn dynsim(reqs: &[Req], l: &EngineLimits, workers: usize) -> Times {
    let mut engines = engines(l, workers);
    let at = |ms: f64| SimTime::from_nanos((ms * 1e6).round() as u64);
    let mut first = BTreeMap::new();
    let mut out = Times::new();
    let mut next = 0;
    loop {
        let arrival = reqs.get(next).map(|r| at(r.at_ms));
        let wake = engines.iter().filter_map(Engine::next_wakeup).min();
        let now = match (arrival, wake) {
            (None, None) => return out,
            (Some(a), None) => a,
            (None, Some(w)) => w,
            (Some(a), Some(w)) => a.min(w),
        };
        for e in &mut engines {
            if e.next_wakeup() == Some(now) {
                record(e.wakeup(now), now, &mut first, &mut out, &mut 0);
            }
        }
        while next < reqs.len() && at(reqs[next].at_ms) == now {
            submit(
                &mut engines[next % workers],
                now,
                next,
                &reqs[next],
                l.block_size,
            );
            next += 1;
        }
        for e in &mut engines {
            e.start_step(now);
        }
    }
}

/// `workers` engines with the mocker's step time.
fn engines(l: &EngineLimits, workers: usize) -> Vec<Engine> {
    (0..workers)
        .map(|_| Engine::new(l.clone(), Timing::Polynomial(Polynomial)))
        .collect()
}

fn submit(e: &mut Engine, now: SimTime, i: usize, r: &Req, bs: u32) {
    let hashes = r
        .tokens(i)
        .map(|t| block_hashes(&t, bs))
        .unwrap_or_default();
    e.submit_with_prefix(now, i as u64, r.prompt, r.output, hashes);
}

fn record(
    outputs: &[Output],
    now: SimTime,
    first: &mut BTreeMap<usize, f64>,
    out: &mut Times,
    finished: &mut usize,
) {
    let ms = now.as_nanos() as f64 / 1e6;
    for o in outputs {
        match *o {
            Output::FirstToken(id) => {
                first.insert(id as usize, ms);
            }
            Output::Finished(id) => {
                out.insert(id as usize, (first[&(id as usize)], ms));
                *finished += 1;
            }
        }
    }
}

/// dynsim's engines in a closed loop of `c` in flight: a new request arrives when one ends,
/// at that instant (aisimulate's `max_in_flight`, `replay/components/admission.rs`), placed
/// round-robin in arrival order.
pub fn dynsim_closed(reqs: &[Req], l: &EngineLimits, workers: usize, c: usize) -> Times {
    let mut engines = engines(l, workers);
    let mut first = BTreeMap::new();
    let mut out = Times::new();
    let mut next = 0;
    let mut in_flight = 0;
    let mut now = SimTime::ZERO;
    loop {
        while in_flight < c && next < reqs.len() {
            submit(
                &mut engines[next % workers],
                now,
                next,
                &reqs[next],
                l.block_size,
            );
            next += 1;
            in_flight += 1;
        }
        for e in &mut engines {
            e.start_step(now);
        }
        let Some(t) = engines.iter().filter_map(Engine::next_wakeup).min() else {
            return out;
        };
        now = t;
        let mut finished = 0;
        for e in &mut engines {
            if e.next_wakeup() == Some(now) {
                record(e.wakeup(now), now, &mut first, &mut out, &mut finished);
            }
        }
        in_flight -= finished;
    }
}

/// The first request whose times differ by more than 1 % or 1 ms, if any.
pub fn first_disagreement(a: &Times, d: &Times) -> Option<String> {
    if a.len() != d.len() {
        return Some(format!(
            "{} requests finished in aisimulate, {} in dynsim",
            a.len(),
            d.len()
        ));
    }
    for (id, &(af, ae)) in a {
        let Some(&(df, de)) = d.get(id) else {
            return Some(format!("request {id} missing in dynsim"));
        };
        let close = |x: f64, y: f64| (x - y).abs() <= (0.01 * x.abs()).max(1.0);
        if !close(af, df) || !close(ae, de) {
            return Some(format!("request {id}: aisimulate first {af:.3} end {ae:.3} ms, dynsim first {df:.3} end {de:.3} ms"));
        }
    }
    None
}

/// Total simulated duration: the last end time [ms].
pub fn duration(t: &Times) -> f64 {
    t.values().map(|v| v.1).fold(0.0, f64::max)
}
