//! Request routers inside a frontend: which live worker instance gets a request
//! (`model-facts.md` §2: round-robin is Dynamo's default; random, power-of-two and KV-aware
//! are the other modes).

pub mod kv;
pub mod power_of_two;
pub mod service;

use rand::RngExt;
use sim_core::{SimRng, SimTime};

use crate::discovery::etcd::Instance;

/// What a router may know of a request.
#[derive(Clone, Copy, Debug)]
pub struct RouteRequest<'a> {
    /// Which request (the frontend's attempt id), for the routers' books of active requests.
    pub id: u64,
    /// When the decision is made.
    pub now: SimTime,
    /// Prompt tokens.
    pub prompt: u32,
    /// Tokens to generate.
    pub output: u32,
    /// Chained hashes of the prompt's shared full blocks.
    pub hashes: &'a [u64],
}

/// Chooses among the live instances (listed in a stable order), and may learn from what
/// happens to the requests and the workers' caches.
pub trait Router {
    /// Index into `live` (non-empty) of the chosen instance.
    fn pick(&mut self, req: &RouteRequest<'_>, live: &[Instance]) -> usize;
    /// The request was sent to `to`.
    fn routed(&mut self, _to: Instance, _req: &RouteRequest<'_>) {}
    /// Request `id`, sent to `to`, ended (finished or failed).
    fn ended(&mut self, _to: Instance, _id: u64) {}
    /// A KV event from `from`'s engine: a block hash was stored (or removed).
    fn kv_event(&mut self, _from: Instance, _stored: bool, _hash: u64) {}
    /// `instance` left discovery: forget it.
    fn removed(&mut self, _instance: Instance) {}
    /// Whether it wants KV events from the workers.
    fn wants_kv_events(&self) -> bool {
        false
    }
    /// The block hashes it believes each worker caches, if it keeps such a view.
    fn view(&self) -> Vec<(Instance, Vec<u64>)> {
        Vec::new()
    }
}

/// Round-robin over the live instances.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: usize,
}

impl Router for RoundRobin {
    fn pick(&mut self, _req: &RouteRequest<'_>, live: &[Instance]) -> usize {
        let i = self.next % live.len();
        self.next = self.next.wrapping_add(1);
        i
    }
}

/// Uniformly random instance, from the frontend's own stream.
pub struct Random {
    rng: SimRng,
}

impl Random {
    /// A random router drawing from `rng`.
    pub fn new(rng: SimRng) -> Self {
        Random { rng }
    }
}

impl Router for Random {
    fn pick(&mut self, _req: &RouteRequest<'_>, live: &[Instance]) -> usize {
        self.rng.random_range(0..live.len())
    }
}

/// A first-incarnation decode instance in pod slot `slot`, for the routers' tests.
#[cfg(test)]
pub(crate) fn test_instance(slot: u16) -> Instance {
    Instance {
        slot,
        incarnation: 1,
        prefill: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(n: u16) -> Vec<Instance> {
        (0..n).map(test_instance).collect()
    }

    const REQ: RouteRequest<'static> = RouteRequest {
        id: 0,
        now: SimTime::ZERO,
        prompt: 10,
        output: 10,
        hashes: &[],
    };

    #[test]
    fn round_robin_cycles_and_adapts_to_pool_size() {
        let mut r = RoundRobin::default();
        let picks: Vec<_> = (0..5).map(|_| r.pick(&REQ, &live(2))).collect();
        assert_eq!(picks, [0, 1, 0, 1, 0]);
        assert_eq!(r.pick(&REQ, &live(1)), 0);
    }

    #[test]
    fn random_stays_in_range_and_covers_it() {
        let mut r = Random::new(sim_core::RngStreams::new(1).stream("r"));
        let mut seen = [false; 3];
        for _ in 0..100 {
            seen[r.pick(&REQ, &live(3))] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
