//! The KV block pool of one engine with prefix caching, as vLLM's block manager behaves in
//! Dynamo's engine simulator (aisimulate-core 0.13 `src/engine/cache/vllm_block_pool.rs`,
//! `src/engine/kv_manager/vllm_backend.rs`, cited per rule).
//!
//! A block is free, private to one sequence (not yet full and computed), or a cached copy
//! found by its chained hash. Cached copies with references are active; released ones wait in
//! an LRU list in release order and are evicted from its head when fresh blocks run out
//! (`pool.rs` 1106–1122). Several copies of one hash may exist; lookups use the oldest
//! (`pool.rs` 1136–1145).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Index of a cached copy.
pub(crate) type CopyId = u32;

/// One block a sequence holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Held {
    /// A block only this sequence uses (partial, or full but not yet published).
    Private,
    /// A cached copy (shared through the prefix cache).
    Cached(CopyId),
}

const NIL: CopyId = CopyId::MAX;

#[derive(Clone, Debug)]
struct Copy {
    hash: u64,
    refs: u32,
    /// Whether the copy is in the LRU list (inactive).
    in_lru: bool,
    /// LRU neighbours (intrusive list, release order).
    prev: CopyId,
    next: CopyId,
    /// The next younger copy of the same hash.
    younger: CopyId,
    /// Whether lookups by hash find it (blocks of a shared prompt); a request's own blocks
    /// are found only by their owner, through [`Pool::alive`].
    indexed: bool,
    /// Bumped when the copy is evicted, so an owner's stale handle is recognised.
    gen: u32,
}

/// A fixed hasher for block hashes, which are already well mixed: lookups only, never
/// iterated, so nothing of its order reaches results.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = x;
    }
}

/// The pool.
#[derive(Clone, Debug)]
pub(crate) struct Pool {
    capacity: u32,
    free: u32,
    copies: Vec<Copy>,
    spare: Vec<CopyId>,
    /// Hash → its oldest copy (younger ones chain through `Copy::younger`).
    index: HashMap<u64, CopyId, BuildHasherDefault<IdHasher>>,
    /// Inactive cached copies in release order: head is evicted first.
    lru_head: CopyId,
    lru_tail: CopyId,
    lru_len: u32,
    /// KV events since the last drain: (stored, hash) when a shared hash appears in or
    /// vanishes from the cache.
    events: Vec<(bool, u64)>,
}

impl Pool {
    pub(crate) fn new(capacity: u32) -> Self {
        Pool {
            capacity,
            free: capacity,
            copies: Vec::new(),
            spare: Vec::new(),
            index: HashMap::default(),
            lru_head: NIL,
            lru_tail: NIL,
            lru_len: 0,
            events: Vec::new(),
        }
    }

    /// Blocks an admission may count on: free plus evictable (`backend.rs` 485–510:
    /// `num_gpu_blocks − num_active`).
    pub(crate) fn available(&self) -> u32 {
        self.free + self.lru_len
    }

    /// Every shared hash cached, sorted.
    pub(crate) fn cached_hashes(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.index.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Moves the KV events since the last call into `out`.
    pub(crate) fn drain_events(&mut self, out: &mut Vec<(bool, u64)>) {
        out.append(&mut self.events);
    }

    /// Whether every block is free or evictable (nothing active).
    pub(crate) fn idle(&self) -> bool {
        self.available() == self.capacity
    }

    /// The oldest copy of `hash`, and whether it is active.
    pub(crate) fn lookup(&self, hash: u64) -> Option<(CopyId, bool)> {
        let &c = self.index.get(&hash)?;
        Some((c, self.copies[c as usize].refs > 0))
    }

    fn lru_unlink(&mut self, c: CopyId) {
        let (prev, next) = {
            let copy = &mut self.copies[c as usize];
            debug_assert!(copy.in_lru);
            copy.in_lru = false;
            (
                std::mem::replace(&mut copy.prev, NIL),
                std::mem::replace(&mut copy.next, NIL),
            )
        };
        match prev {
            NIL => self.lru_head = next,
            p => self.copies[p as usize].next = next,
        }
        match next {
            NIL => self.lru_tail = prev,
            n => self.copies[n as usize].prev = prev,
        }
        self.lru_len -= 1;
    }

    fn lru_push_tail(&mut self, c: CopyId) {
        let tail = self.lru_tail;
        {
            let copy = &mut self.copies[c as usize];
            copy.in_lru = true;
            copy.prev = tail;
            copy.next = NIL;
        }
        match tail {
            NIL => self.lru_head = c,
            t => self.copies[t as usize].next = c,
        }
        self.lru_tail = c;
        self.lru_len += 1;
    }

    /// Takes `hits` (copies found by lookup) and `fresh` new private blocks, evicting from the
    /// LRU head what the free blocks do not cover. Fails, changing nothing, if the blocks are
    /// not there (`pool.rs` 474–556: free first, then eviction; hits are pinned first so they
    /// are never evicted for this request).
    pub(crate) fn allocate(&mut self, hits: &[CopyId], fresh: u32) -> bool {
        let inactive_hits = hits
            .iter()
            .filter(|&&c| self.copies[c as usize].refs == 0)
            .count() as u32;
        let need_evict = fresh.saturating_sub(self.free);
        if need_evict > self.lru_len - inactive_hits {
            return false;
        }
        for &c in hits {
            if self.copies[c as usize].in_lru {
                self.lru_unlink(c);
            }
            self.copies[c as usize].refs += 1;
        }
        self.free -= fresh - need_evict;
        for _ in 0..need_evict {
            let c = self.lru_head;
            self.lru_unlink(c);
            self.evict(c);
        }
        true
    }

    /// Whether the owner's copy `c` of generation `gen` is still cached, and if so whether it
    /// is active.
    pub(crate) fn alive(&self, c: CopyId, gen: u32) -> Option<bool> {
        let copy = self.copies.get(c as usize)?;
        // An evicted copy had its generation bumped, so a stale handle never matches.
        (copy.gen == gen).then_some(copy.refs > 0)
    }

    /// The generation of copy `c`.
    pub(crate) fn gen(&self, c: CopyId) -> u32 {
        self.copies[c as usize].gen
    }

    fn evict(&mut self, c: CopyId) {
        let (hash, younger, indexed) = {
            let copy = &mut self.copies[c as usize];
            copy.gen = copy.gen.wrapping_add(1);
            (copy.hash, copy.younger, copy.indexed)
        };
        if !indexed {
            self.spare.push(c);
            return;
        }
        // Unlink from its hash's chain of copies.
        if self.index.get(&hash) == Some(&c) {
            if younger == NIL {
                self.index.remove(&hash);
                self.events.push((false, hash));
            } else {
                self.index.insert(hash, younger);
            }
        } else {
            let mut x = self.index[&hash];
            while self.copies[x as usize].younger != c {
                x = self.copies[x as usize].younger;
            }
            self.copies[x as usize].younger = younger;
        }
        self.spare.push(c);
    }

    /// A sequence's private block became full and computed: it is published under `hash`
    /// (visible to lookups at once, `backend.rs` 960–1025) with the sequence's reference. An
    /// existing hash gets a younger duplicate copy.
    pub(crate) fn publish(&mut self, hash: u64) -> CopyId {
        let c = self.new_copy(hash, true);
        match self.index.get(&hash) {
            None => {
                self.index.insert(hash, c);
                self.events.push((true, hash));
            }
            Some(&oldest) => {
                let mut x = oldest;
                while self.copies[x as usize].younger != NIL {
                    x = self.copies[x as usize].younger;
                }
                self.copies[x as usize].younger = c;
            }
        }
        c
    }

    /// A sequence's own block (no other request can share it) became full and computed: it
    /// is cached for its owner only (after a preemption it may hit it again).
    pub(crate) fn publish_own(&mut self) -> CopyId {
        self.new_copy(0, false)
    }

    fn new_copy(&mut self, hash: u64, indexed: bool) -> CopyId {
        let fresh = |gen| Copy {
            hash,
            refs: 1,
            in_lru: false,
            prev: NIL,
            next: NIL,
            younger: NIL,
            indexed,
            gen,
        };
        match self.spare.pop() {
            Some(c) => {
                let copy = &mut self.copies[c as usize];
                *copy = fresh(copy.gen);
                c
            }
            None => {
                self.copies.push(fresh(0));
                (self.copies.len() - 1) as CopyId
            }
        }
    }

    /// Releases one held block: a private one is freed, a cached copy loses a reference and,
    /// at none, joins the LRU tail (`pool.rs` 837–872).
    pub(crate) fn release(&mut self, held: Held) {
        match held {
            Held::Private => self.free += 1,
            Held::Cached(c) => {
                let copy = &mut self.copies[c as usize];
                debug_assert!(copy.refs > 0);
                copy.refs -= 1;
                if copy.refs == 0 {
                    self.lru_push_tail(c);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_blocks_go_first_then_the_least_recently_released() {
        let mut p = Pool::new(4);
        assert!(p.allocate(&[], 3));
        let a = p.publish(10);
        let b = p.publish(20);
        p.release(Held::Cached(a));
        p.release(Held::Cached(b));
        p.release(Held::Private);
        // 2 free (one never used, one released private), 2 evictable.
        assert_eq!(p.available(), 4);
        assert!(
            p.allocate(&[], 3),
            "two free, then evict the head (hash 10)"
        );
        assert_eq!(p.lookup(10), None);
        assert_eq!(p.lookup(20), Some((b, false)));
        assert!(!p.allocate(&[], 2), "only one evictable block left");
        assert_eq!(p.available(), 1);
    }

    #[test]
    fn hits_are_pinned_and_never_evicted_for_their_own_request() {
        let mut p = Pool::new(2);
        assert!(p.allocate(&[], 2));
        let a = p.publish(1);
        let b = p.publish(2);
        p.release(Held::Cached(a));
        p.release(Held::Cached(b));
        // Hit `a`, one fresh block: the free list is empty, so `b` (not `a`) is evicted.
        assert!(p.allocate(&[a], 1));
        assert_eq!(p.lookup(1), Some((a, true)));
        assert_eq!(p.lookup(2), None);
        assert!(!p.allocate(&[], 1));
    }
}
