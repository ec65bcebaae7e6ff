//! The KV-aware router (`model-facts.md` §2; Dynamo `lib/llm/src/kv_router`): it keeps, per
//! worker, the block hashes that worker's cache holds — learned from the KV events (stored /
//! removed) the engines publish on the event plane — and its own count of the blocks of the
//! requests it sent there and that are still active. A request goes where
//! `overlap_weight × prefill_blocks + decode_blocks` is lowest, prefill blocks being the
//! prompt blocks not already cached there. Ties go to the smaller tree, then at random; with a
//! temperature above zero the choice is sampled by softmax over the normalised costs.
//! Defaults: overlap weight 1.0, temperature 0.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::hash::BuildHasherDefault;

use rand::RngExt;
use sim_core::{SimDuration, SimRng, SimTime};

use super::{RouteRequest, Router};
use crate::discovery::etcd::Instance;
use crate::engine::IdHasher;

/// How long the approximate mode believes a routed request's blocks stay cached [ns]
/// (`model-facts.md` §2: TTL 120 s when predicting without events).
pub const APPROX_TTL: SimDuration = SimDuration::from_secs(120);

/// How long a request may stay in a router's books without its end being heard: Dynamo's
/// `ActiveSequences` drops the requests still active at two expiry checks 300 s apart, the
/// checks running lazily when a request is added to that worker (`EXPIRY_DURATION`,
/// `force_expiry`, `lib/llm/src/kv_router/sequence.rs`, 2025). Ends nobody publishes — those
/// of the requests a router replica routed before it died — leave its peers' books only so.
pub(crate) const ACTIVE_EXPIRY: SimDuration = SimDuration::from_secs(300);

/// One worker's active requests, as a router counts them.
struct Active {
    /// Blocks of the requests below.
    blocks: u64,
    /// Request id → its blocks.
    requests: BTreeMap<u64, u64>,
    /// The requests active at the last expiry check: dropped at the next if still active
    /// (an id ended meanwhile leaves the set, as Dynamo's `free` does, so that a request
    /// routed again under it is not dropped).
    expiring: BTreeSet<u64>,
    /// When the next expiry check is due.
    next_check: SimTime,
}

impl Active {
    fn new(now: SimTime) -> Self {
        Active {
            blocks: 0,
            requests: BTreeMap::new(),
            expiring: BTreeSet::new(),
            next_check: now + ACTIVE_EXPIRY,
        }
    }

    fn expire(&mut self, now: SimTime) {
        if now < self.next_check {
            return;
        }
        for id in std::mem::take(&mut self.expiring) {
            if let Some(b) = self.requests.remove(&id) {
                self.blocks -= b;
            }
        }
        self.expiring = self.requests.keys().copied().collect();
        self.next_check = now + ACTIVE_EXPIRY;
    }
}

/// The KV-aware router of one frontend.
pub struct KvRouter {
    block_size: u32,
    overlap_weight: f64,
    temperature: f64,
    /// Per worker: block hash → until when it is believed cached (`SimTime::MAX` for what KV
    /// events reported; now + TTL for what the approximate mode predicts).
    trees: BTreeMap<Instance, HashMap<u64, SimTime, BuildHasherDefault<IdHasher>>>,
    /// Approximate mode: no KV events; a routed request's blocks are predicted cached on its
    /// worker for this long (§2: 120 s).
    approx_ttl: Option<SimDuration>,
    /// Approximate mode, per worker: every prediction's deadline, earliest first, so that
    /// expired predictions are dropped without scanning the tree (a re-predicted block keeps
    /// its stale deadline here until it comes up and no longer matches the tree).
    deadlines: BTreeMap<Instance, BinaryHeap<Reverse<(SimTime, u64)>>>,
    /// Per worker, the requests it sent there (or, with replica sync, its peers did) that
    /// have not ended.
    active: BTreeMap<Instance, Active>,
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
            approx_ttl: None,
            deadlines: BTreeMap::new(),
            active: BTreeMap::new(),
            rng,
        }
    }

    /// The approximate mode (§2, `--no-kv-events`): the router takes no KV events and
    /// predicts that a routed request's prompt blocks stay cached on its worker for `ttl`.
    pub fn approximate(mut self, ttl: SimDuration) -> Self {
        self.approx_ttl = Some(ttl);
        self
    }

    fn blocks(&self, tokens: u32) -> u64 {
        u64::from(tokens.div_ceil(self.block_size))
    }

    /// How many of the request's leading blocks `i`'s cache holds, as far as the router knows.
    fn overlap(&self, i: &Instance, hashes: &[u64], now: SimTime) -> u32 {
        self.trees.get(i).map_or(0, |t| {
            hashes
                .iter()
                .take_while(|h| t.get(h).is_some_and(|&until| until > now))
                .count() as u32
        })
    }
}

impl Router for KvRouter {
    fn pick(&mut self, req: &RouteRequest<'_>, live: &[Instance]) -> usize {
        let costs: Vec<(f64, usize)> = live
            .iter()
            .map(|i| {
                let cached =
                    (self.overlap(i, req.hashes, req.now) * self.block_size).min(req.prompt);
                let prefill = f64::from((req.prompt - cached).div_ceil(self.block_size));
                let decode = self.active.get(i).map_or(0, |a| a.blocks) as f64;
                let tree = self.trees.get(i).map_or(0, HashMap::len);
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
        let blocks = self.blocks(req.prompt + req.output);
        let a = self
            .active
            .entry(to)
            .or_insert_with(|| Active::new(req.now));
        a.expire(req.now);
        a.blocks += blocks;
        if let Some(old) = a.requests.insert(req.id, blocks) {
            a.blocks -= old;
        }
        if let Some(ttl) = self.approx_ttl {
            let tree = self.trees.entry(to).or_default();
            let deadlines = self.deadlines.entry(to).or_default();
            // Forget expired predictions so the tie-break on tree size counts live ones.
            while let Some(&Reverse((until, h))) = deadlines.peek() {
                if until > req.now {
                    break;
                }
                deadlines.pop();
                if tree.get(&h) == Some(&until) {
                    tree.remove(&h);
                }
            }
            let until = req.now + ttl;
            for &h in req.hashes {
                tree.insert(h, until);
                deadlines.push(Reverse((until, h)));
            }
        }
    }

    fn ended(&mut self, to: Instance, id: u64) {
        if let Some(a) = self.active.get_mut(&to) {
            if let Some(b) = a.requests.remove(&id) {
                a.blocks -= b;
            }
            a.expiring.remove(&id);
        }
    }

    fn kv_event(&mut self, from: Instance, stored: bool, hash: u64) {
        let tree = self.trees.entry(from).or_default();
        if stored {
            tree.insert(hash, SimTime::MAX);
        } else {
            tree.remove(&hash);
        }
    }

    fn removed(&mut self, instance: Instance) {
        self.trees.remove(&instance);
        self.deadlines.remove(&instance);
        self.active.remove(&instance);
    }

    fn wants_kv_events(&self) -> bool {
        self.approx_ttl.is_none()
    }

    fn view(&self) -> Vec<(Instance, Vec<u64>)> {
        // Predictions are guesses by design; only an event-driven view must match the caches.
        if self.approx_ttl.is_some() {
            return Vec::new();
        }
        self.trees
            .iter()
            .map(|(i, t)| {
                let mut v: Vec<u64> = t.keys().copied().collect();
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

    use crate::router::test_instance as inst;

    #[test]
    fn cached_prefixes_attract_and_active_load_repels() {
        let mut r = KvRouter::new(64, 1.0, 0.0, RngStreams::new(1).stream("kv"));
        let live = [inst(0), inst(1)];
        let hashes = [11, 12, 13];
        for h in hashes {
            r.kv_event(inst(1), true, h);
        }
        let req = RouteRequest {
            id: 1,
            now: SimTime::ZERO,
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
        for id in [1, 2] {
            r.routed(inst(1), &RouteRequest { id, ..req });
        }
        assert_eq!(r.pick(&req, &live), 0);
        r.ended(inst(1), 1);
        r.ended(inst(1), 2);
        r.kv_event(inst(1), false, 11);
        // Without its first block the chain breaks: no overlap; the tie goes to the smaller tree.
        assert_eq!(r.pick(&req, &live), 0);
        r.removed(inst(0));
        assert_eq!(r.overlap(&inst(1), &[12, 13], SimTime::ZERO), 2);
    }

    #[test]
    fn a_request_whose_end_never_comes_leaves_the_books_at_the_second_expiry_check() {
        let mut r = KvRouter::new(64, 1.0, 0.0, RngStreams::new(1).stream("kv"));
        let w = inst(0);
        let at = |s| SimTime::ZERO + SimDuration::from_secs(s);
        let req = |id, s| RouteRequest {
            id,
            now: at(s),
            prompt: 128,
            output: 64,
            hashes: &[],
        };
        r.routed(w, &req(1, 0)); // its end is never heard (the replica that routed it died)
        r.routed(w, &req(2, 301)); // first check: nothing to drop yet; 1 is marked
        r.ended(w, 2);
        r.ended(w, 7); // an end for a request never counted changes nothing
        assert_eq!(r.active[&w].blocks, 3, "1 still counted");
        r.routed(w, &req(3, 600)); // before the next check: still counted
        assert_eq!(r.active[&w].blocks, 6);
        r.routed(w, &req(4, 601)); // second check: 1 dropped, 3 marked
        assert_eq!(r.active[&w].blocks, 6, "3 and 4 remain");
        assert!(!r.active[&w].requests.contains_key(&1));
        // 3 ends and is routed here again under the same id (a migration back): the new
        // booking is not the one marked at the last check.
        r.ended(w, 3);
        r.routed(w, &req(3, 700));
        r.routed(w, &req(5, 902)); // third check: 3 was marked at the second but ended since
        assert!(r.active[&w].requests.contains_key(&3));
        r.routed(w, &req(6, 1203)); // fourth: 3 and 4, marked at the third, are dropped
        assert_eq!(
            r.active[&w].requests.keys().copied().collect::<Vec<_>>(),
            vec![5, 6]
        );
    }

    #[test]
    fn the_approximate_mode_predicts_from_its_own_decisions_until_the_ttl() {
        let ttl = SimDuration::from_secs(120);
        let mut r = KvRouter::new(64, 1.0, 0.0, RngStreams::new(1).stream("kv")).approximate(ttl);
        assert!(!r.wants_kv_events());
        let live = [inst(0), inst(1)];
        let hashes = [21, 22, 23];
        let at = |s| SimTime::ZERO + SimDuration::from_secs(s);
        let req = |now| RouteRequest {
            id: 1,
            now,
            prompt: 256,
            output: 10,
            hashes: &hashes,
        };
        let first = r.pick(&req(at(0)), &live);
        r.routed(live[first], &req(at(0)));
        r.ended(live[first], 1);
        assert_eq!(r.pick(&req(at(60)), &live), first, "predicted cached there");
        assert_eq!(
            r.overlap(&live[first], &hashes, at(121)),
            0,
            "the prediction expired"
        );
        // A block predicted again keeps its newer deadline when the older one comes up.
        let w = live[first];
        r.routed(w, &req(at(200)));
        r.routed(w, &req(at(300)));
        // Another prompt at 330 s pops the 320 s deadlines: stale, the 420 s ones rule.
        let other = RouteRequest {
            id: 2,
            now: at(330),
            prompt: 64,
            output: 10,
            hashes: &[99],
        };
        r.routed(w, &other);
        assert_eq!(r.overlap(&w, &hashes, at(400)), 3);
        assert_eq!(r.trees[&w].len(), 4, "nothing live is dropped");
        let later = RouteRequest {
            now: at(421),
            ..other
        };
        r.routed(w, &later);
        assert_eq!(r.trees[&w].len(), 1, "expired predictions are dropped");
    }
}
