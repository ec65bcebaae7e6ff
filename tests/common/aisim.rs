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
            input_token_ids: None,
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

/// dynsim's engine, `workers` of them with round-robin placement in arrival order.
pub fn dynsim(reqs: &[Req], l: &EngineLimits, workers: usize) -> Times {
    let mut engines: Vec<Engine> = (0..workers)
        .map(|_| Engine::new(l.clone(), Timing::Polynomial(Polynomial)))
        .collect();
    let at = |ms: f64| SimTime::from_nanos((ms * 1e6).round() as u64);
    let mut first = BTreeMap::new();
    let mut out = Times::new();
    let mut next = 0;
    loop {
        let arrival = reqs.get(next).map(|r| at(r.at_ms));
        let wake = engines
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.next_wakeup().map(|t| (t, i)))
            .min();
        match (arrival, wake) {
            (None, None) => return out,
            (Some(a), w) if w.is_none_or(|(t, _)| a < t) => {
                let r = reqs[next];
                engines[next % workers].submit(a, next as u64, r.prompt, r.output);
                next += 1;
            }
            (_, Some((t, i))) => {
                for o in engines[i].wakeup(t) {
                    let ms = t.as_nanos() as f64 / 1e6;
                    match *o {
                        Output::FirstToken(id) => {
                            first.insert(id as usize, ms);
                        }
                        Output::Finished(id) => {
                            out.insert(id as usize, (first[&(id as usize)], ms));
                        }
                    }
                }
            }
            _ => unreachable!(),
        }
    }
}

/// dynsim's engines in a closed loop of `c` in flight: a new request arrives when one ends,
/// at that instant (aisimulate's `max_in_flight`, `replay/components/admission.rs`).
pub fn dynsim_closed(reqs: &[Req], l: &EngineLimits, workers: usize, c: usize) -> Times {
    let mut engines: Vec<Engine> = (0..workers)
        .map(|_| Engine::new(l.clone(), Timing::Polynomial(Polynomial)))
        .collect();
    let mut first = BTreeMap::new();
    let mut out = Times::new();
    let mut next = 0;
    let mut in_flight = 0;
    let mut now = SimTime::ZERO;
    loop {
        while in_flight < c && next < reqs.len() {
            let r = reqs[next];
            engines[next % workers].submit(now, next as u64, r.prompt, r.output);
            next += 1;
            in_flight += 1;
        }
        let Some((t, i)) = engines
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.next_wakeup().map(|t| (t, i)))
            .min()
        else {
            return out;
        };
        now = t;
        for o in engines[i].wakeup(t) {
            let ms = t.as_nanos() as f64 / 1e6;
            match *o {
                Output::FirstToken(id) => {
                    first.insert(id as usize, ms);
                }
                Output::Finished(id) => {
                    out.insert(id as usize, (first[&(id as usize)], ms));
                    in_flight -= 1;
                }
            }
        }
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
