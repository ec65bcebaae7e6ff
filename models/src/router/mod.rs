//! Request routers inside a frontend: which live worker instance gets a request
//! (`model-facts.md` §2: round-robin is Dynamo's default; random is the other stateless mode).

use rand::RngExt;
use sim_core::SimRng;

/// Chooses among `n` live instances (listed in a stable order).
pub trait Router {
    /// Index of the chosen instance, `n > 0`.
    fn pick(&mut self, n: usize) -> usize;
}

/// Round-robin over the live instances.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: usize,
}

impl Router for RoundRobin {
    fn pick(&mut self, n: usize) -> usize {
        let i = self.next % n;
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
    fn pick(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_cycles_and_adapts_to_pool_size() {
        let mut r = RoundRobin::default();
        let picks: Vec<_> = (0..5).map(|_| r.pick(2)).collect();
        assert_eq!(picks, [0, 1, 0, 1, 0]);
        assert_eq!(r.pick(1), 0);
    }

    #[test]
    fn random_stays_in_range_and_covers_it() {
        let mut r = Random::new(sim_core::RngStreams::new(1).stream("r"));
        let mut seen = [false; 3];
        for _ in 0..100 {
            seen[r.pick(3)] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
