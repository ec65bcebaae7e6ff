//! (a) The engine alone: a hold model with ~10,000 pending events (pop the earliest, push a
//! new one a pseudo-random delay later), through sim-core's `Simulation` (slab payloads, lazy
//! cancellation, trace hash) and through a bare `std::collections::BinaryHeap` loop of the
//! same shape. Criterion reports events/s for both; the target is sim-core ≥ 80 % of the bare
//! heap's rate.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sim_core::{Context, Limits, Model, SimDuration, SimTime, Simulation, TraceWord};

const PENDING: usize = 10_000;
const EVENTS: u64 = 1_000_000;

/// Delays from a small xorshift, identical for both loops [ns].
fn delays() -> Vec<u64> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            1 + x % 1_000_000
        })
        .collect()
}

struct Hold {
    delays: Vec<u64>,
    i: usize,
}

#[derive(Clone, Copy)]
struct Tick(u32);

impl TraceWord for Tick {
    fn trace_word(&self) -> u64 {
        u64::from(self.0)
    }
}

impl Model for Hold {
    type Event = Tick;
    fn handle(&mut self, e: Tick, ctx: &mut Context<Tick>) {
        let d = self.delays[self.i & 4095];
        self.i += 1;
        ctx.schedule_in(SimDuration::from_nanos(d), Tick(e.0));
    }
}

fn simcore(delays: &[u64]) -> u64 {
    let mut sim = Simulation::new(Hold {
        delays: delays.to_vec(),
        i: 0,
    });
    for k in 0..PENDING {
        sim.schedule_at(SimTime::from_nanos(delays[k & 4095]), Tick(k as u32));
    }
    sim.run(Limits {
        until: SimTime::MAX,
        max_events: EVENTS,
    });
    sim.trace_hash().value()
}

fn bare(delays: &[u64]) -> u64 {
    let mut heap: BinaryHeap<Reverse<(u64, u64, u32)>> = BinaryHeap::with_capacity(PENDING + 1);
    let mut seq = 0u64;
    for k in 0..PENDING {
        heap.push(Reverse((delays[k & 4095], seq, k as u32)));
        seq += 1;
    }
    let mut sum = 0u64;
    for i in 0..EVENTS as usize {
        let Reverse((t, _, p)) = heap.pop().expect("never empty");
        sum = sum.wrapping_add(t ^ u64::from(p));
        heap.push(Reverse((t + delays[i & 4095], seq, p)));
        seq += 1;
    }
    sum
}

fn hold(c: &mut Criterion) {
    let d = delays();
    let mut g = c.benchmark_group("hold-10k-pending");
    g.throughput(Throughput::Elements(EVENTS));
    g.sample_size(20);
    g.bench_function("sim-core", |b| b.iter(|| simcore(&d)));
    g.bench_function("bare-binaryheap", |b| b.iter(|| bare(&d)));
    g.finish();
}

criterion_group!(benches, hold);
criterion_main!(benches);
