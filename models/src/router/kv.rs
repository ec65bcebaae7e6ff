//! The KV-aware router (`model-facts.md` §2; Dynamo `lib/llm/src/kv_router`): it keeps, per
//! worker, the block hashes that worker's cache holds — learned from the KV events (stored /
//! removed) the engines publish on the event plane — and its own count of the blocks of the
//! requests it sent there and that are still active. A request goes where
//! `overlap_weight × prefill_blocks + decode_blocks` is lowest, prefill blocks being the
//! prompt blocks not already cached there. Ties go to the smaller tree, then at random; with a
//! temperature above zero the choice is sampled by softmax over the normalised costs.
//! Defaults: overlap weight 1.0, temperature 0.

use std::collections::{BTreeMap, HashSet};
use std::hash::BuildHasherDefault;

use rand::RngExt;
use sim_core::SimRng;

use super::{RouteRequest, Router};
use crate::discovery::etcd::Instance;
use crate::engine::IdHasher;

/// The KV-aware router of one frontend.
pub struct KvRouter {
    block_size: u32,
    overlap_weight: f64,
    temperature: f64,
    trees: BTreeMap<Instance, HashSet<u64, BuildHasherDefault<IdHasher>>>,
    active_blocks: BTreeMap<Instance, u64>,
    rng: SimRng,
}

impl KvRouter {
    /// A router for engines with `block_size`-token blocks.
    pub fn new(block_size: u32, overlap_weight: f64, temperature: f64, rng: SimRng) -> Self {
        KvRouter {
            block_size,
            overlap_weight,
            temperature,
            trees: BTreeMap::new(),
            active_blocks: BTreeMap::new(),
            rng,
        }
    }

    fn blocks(&self, tokens: u32) -> u64 {
        u64::from(tokens.div_ceil(self.block_size))
    }

    /// How many of the request's leading blocks `i`'s cache holds, as far as the router knows.
    fn overlap(&self, i: &Instance, hashes: &[u64]) -> u32 {
        self.trees.get(i).map_or(0, |t| {
            hashes.iter().take_while(|h| t.contains(h)).count() as u32
        })
    }
}

impl Router for KvRouter {
    fn pick(&mut self, req: &RouteRequest<'_>, live: &[Instance]) -> usize {
        let costs: Vec<(f64, usize)> = live
            .iter()
            .map(|i| {
                let cached = (self.overlap(i, req.hashes) * self.block_size).min(req.prompt);
                let prefill = f64::from((req.prompt - cached).div_ceil(self.block_size));
                let decode = self.active_blocks.get(i).copied().unwrap_or(0) as f64;
                let tree = self.trees.get(i).map_or(0, HashSet::len);
                (self.overlap_weight * prefill + decode, tree)
            })
            .collect();
        if self.temperature > 0.0 {
            let max = costs.iter().map(|c| c.0).fold(0.0, f64::max).max(1e-9);
            let weights: Vec<f64> = costs
                .iter()
                .map(|c| (-(c.0 / max) / self.temperature).exp())
                .collect();
            let total: f64 = weights.iter().sum();
            let mut x = self.rng.random::<f64>() * total;
            for (k, w) in weights.iter().enumerate() {
                if x < *w {
                    return k;
                }
                x -= w;
            }
            return live.len() - 1;
        }
        let best = costs
            .iter()
            .map(|c| (c.0, c.1))
            .fold((f64::INFINITY, usize::MAX), |a, b| {
                if b.0 < a.0 || (b.0 == a.0 && b.1 < a.1) {
                    b
                } else {
                    a
                }
            });
        let ties: Vec<usize> = (0..live.len()).filter(|&k| costs[k] == best).collect();
        ties[self.rng.random_range(0..ties.len())]
    }

    fn routed(&mut self, to: Instance, req: &RouteRequest<'_>) {
        *self.active_blocks.entry(to).or_default() += self.blocks(req.prompt + req.output);
    }

    fn ended(&mut self, to: Instance, prompt: u32, output: u32) {
        let b = self.blocks(prompt + output);
        if let Some(a) = self.active_blocks.get_mut(&to) {
            *a = a.saturating_sub(b);
        }
    }

    fn kv_event(&mut self, from: Instance, stored: bool, hash: u64) {
        let tree = self.trees.entry(from).or_default();
        if stored {
            tree.insert(hash);
        } else {
            tree.remove(&hash);
        }
    }

    fn removed(&mut self, instance: Instance) {
        self.trees.remove(&instance);
        self.active_blocks.remove(&instance);
    }

    fn wants_kv_events(&self) -> bool {
        true
    }

    fn view(&self) -> Vec<(Instance, Vec<u64>)> {
        self.trees
            .iter()
            .map(|(i, t)| {
                let mut v: Vec<u64> = t.iter().copied().collect();
                v.sort_unstable();
                (*i, v)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim_core::RngStreams;

    fn inst(slot: u16) -> Instance {
        Instance {
            slot,
            incarnation: 1,
            prefill: false,
        }
    }

    #[test]
    fn cached_prefixes_attract_and_active_load_repels() {
        let mut r = KvRouter::new(64, 1.0, 0.0, RngStreams::new(1).stream("kv"));
        let live = [inst(0), inst(1)];
        let hashes = [11, 12, 13];
        for h in hashes {
            r.kv_event(inst(1), true, h);
        }
        let req = RouteRequest {
            prompt: 256,
            output: 10,
            hashes: &hashes,
        };
        assert_eq!(
            r.pick(&req, &live),
            1,
            "3 of 4 prompt blocks cached on worker 1"
        );
        // Load worker 1 until its decode blocks outweigh the saved prefill.
        for _ in 0..2 {
            r.routed(inst(1), &req);
        }
        assert_eq!(r.pick(&req, &live), 0);
        r.ended(inst(1), 256, 10);
        r.ended(inst(1), 256, 10);
        r.kv_event(inst(1), false, 11);
        // Without its first block the chain breaks: no overlap; the tie goes to the smaller tree.
        assert_eq!(r.pick(&req, &live), 0);
        r.removed(inst(0));
        assert_eq!(r.overlap(&inst(1), &[12, 13]), 2);
    }
}
