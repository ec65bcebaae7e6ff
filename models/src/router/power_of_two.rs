//! Power-of-two-choices routing (`model-facts.md` §2 lists it among Dynamo's router modes):
//! draw two distinct live instances at random and send the request to the one with fewer
//! requests in flight from this frontend (Mitzenmacher, "The Power of Two Choices in
//! Randomized Load Balancing", 2001). A tie goes to the first drawn.

use std::collections::BTreeMap;

use rand::RngExt;
use sim_core::SimRng;

use super::{RouteRequest, Router};
use crate::discovery::etcd::Instance;

/// The power-of-two-choices router of one frontend.
pub struct PowerOfTwo {
    /// Requests this frontend sent to each instance that have not ended.
    in_flight: BTreeMap<Instance, u32>,
    rng: SimRng,
}

impl PowerOfTwo {
    /// A router drawing from `rng`.
    pub fn new(rng: SimRng) -> Self {
        PowerOfTwo {
            in_flight: BTreeMap::new(),
            rng,
        }
    }

    fn load(&self, i: &Instance) -> u32 {
        self.in_flight.get(i).copied().unwrap_or(0)
    }
}

impl Router for PowerOfTwo {
    fn pick(&mut self, _req: &RouteRequest<'_>, live: &[Instance]) -> usize {
        let n = live.len();
        if n == 1 {
            return 0;
        }
        let a = self.rng.random_range(0..n);
        // A second, distinct draw: uniform over the other n − 1.
        let b = (a + 1 + self.rng.random_range(0..n - 1)) % n;
        if self.load(&live[b]) < self.load(&live[a]) {
            b
        } else {
            a
        }
    }

    fn routed(&mut self, to: Instance, _req: &RouteRequest<'_>) {
        *self.in_flight.entry(to).or_default() += 1;
    }

    fn ended(&mut self, to: Instance, _id: u64) {
        if let Some(n) = self.in_flight.get_mut(&to) {
            *n = n.saturating_sub(1);
        }
    }

    fn removed(&mut self, instance: Instance) {
        self.in_flight.remove(&instance);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim_core::{RngStreams, SimTime};

    use crate::router::test_instance as inst;

    const REQ: RouteRequest<'static> = RouteRequest {
        id: 0,
        now: SimTime::ZERO,
        prompt: 100,
        output: 10,
        hashes: &[],
    };

    #[test]
    fn with_two_instances_the_less_loaded_always_wins() {
        let mut r = PowerOfTwo::new(RngStreams::new(3).stream("p2c"));
        let live = [inst(0), inst(1)];
        r.routed(inst(0), &REQ);
        for _ in 0..50 {
            assert_eq!(r.pick(&REQ, &live), 1);
        }
        r.ended(inst(0), 0);
        r.routed(inst(1), &REQ);
        for _ in 0..50 {
            assert_eq!(r.pick(&REQ, &live), 0);
        }
    }

    #[test]
    fn it_never_picks_a_lone_most_loaded_instance_and_spreads_load_evenly() {
        let mut r = PowerOfTwo::new(RngStreams::new(4).stream("p2c"));
        let live: Vec<Instance> = (0..5).map(inst).collect();
        // Keep every request in flight, so the loads only grow.
        for _ in 0..500 {
            let k = r.pick(&REQ, &live);
            let max = live.iter().map(|i| r.load(i)).max().unwrap();
            let at_max = live.iter().filter(|i| r.load(i) == max).count();
            // A lone most-loaded instance loses against whichever other one is drawn.
            assert!(
                at_max > 1 || r.load(&live[k]) < max,
                "picked the lone most loaded"
            );
            r.routed(live[k], &REQ);
        }
        let loads: Vec<u32> = live.iter().map(|i| r.load(i)).collect();
        let (max, min) = (loads.iter().max().unwrap(), loads.iter().min().unwrap());
        assert!(max - min <= 3, "loads {loads:?}");
    }
}
