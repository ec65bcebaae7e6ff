//! The event queue: a binary heap of small `(time, seq, slot, generation)` entries, with the
//! payloads kept in a slab beside it.
//!
//! Equal times pop in the order they were scheduled (the sequence number breaks ties), so a run
//! never depends on heap internals, and zero-delay events keep FIFO order. Cancelling is lazy and
//! O(1): the slot's generation is bumped and its payload dropped; the stale heap entry is skipped
//! when it reaches the top.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::time::SimTime;

/// A handle to a scheduled event, for cancelling it. Stale keys are harmless.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventKey {
    slot: u32,
    generation: u32,
}

/// A heap entry: `Reverse((time, seq, slot, generation))`, so the max-heap pops the earliest
/// (time, seq); `seq` is unique, so slot and generation never decide the order.
type Entry = Reverse<(u64, u64, u32, u32)>;

struct Slot<E> {
    generation: u32,
    payload: Option<E>,
}

/// A priority queue of events ordered by (time, insertion sequence).
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry>,
    slots: Vec<Slot<E>>,
    free: Vec<u32>,
    next_seq: u64,
    live: usize,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> EventQueue<E> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty queue with room for `n` pending events before it allocates.
    pub fn with_capacity(n: usize) -> Self {
        EventQueue {
            heap: BinaryHeap::with_capacity(n),
            slots: Vec::with_capacity(n),
            free: Vec::with_capacity(n),
            next_seq: 0,
            live: 0,
        }
    }

    /// Schedules `payload` at `time`. O(log n).
    pub fn push(&mut self, time: SimTime, payload: E) -> EventKey {
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize].payload = Some(payload);
                s
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    payload: Some(payload),
                });
                (self.slots.len() - 1) as u32
            }
        };
        let generation = self.slots[slot as usize].generation;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap
            .push(Reverse((time.as_nanos(), seq, slot, generation)));
        self.live += 1;
        EventKey { slot, generation }
    }

    /// Removes and returns the earliest live event. Amortised O(log n).
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        self.pop_until(SimTime::MAX).ok().flatten()
    }

    /// Removes and returns the earliest live event if it is not later than `limit`; `Err` with
    /// the earliest time if it is, `Ok(None)` if the queue is empty. One sift per event.
    pub fn pop_until(&mut self, limit: SimTime) -> Result<Option<(SimTime, E)>, SimTime> {
        while let Some(&Reverse((time, _, slot, generation))) = self.heap.peek() {
            if self.slots[slot as usize].generation != generation {
                self.heap.pop();
                continue; // cancelled
            }
            if time > limit.as_nanos() {
                return Err(SimTime::from_nanos(time));
            }
            self.heap.pop();
            let s = &mut self.slots[slot as usize];
            let payload = s.payload.take().expect("live slot holds a payload");
            s.generation = s.generation.wrapping_add(1);
            self.free.push(slot);
            self.live -= 1;
            return Ok(Some((SimTime::from_nanos(time), payload)));
        }
        Ok(None)
    }

    /// The time of the earliest live event, dropping cancelled entries on the way. Amortised
    /// O(log n).
    pub fn peek_time(&mut self) -> Option<SimTime> {
        while let Some(&Reverse((time, _, slot, generation))) = self.heap.peek() {
            if self.slots[slot as usize].generation == generation {
                return Some(SimTime::from_nanos(time));
            }
            self.heap.pop();
        }
        None
    }

    /// Cancels a scheduled event and returns its payload; `None` if it already ran or was
    /// cancelled. O(1).
    pub fn cancel(&mut self, key: EventKey) -> Option<E> {
        let slot = self.slots.get_mut(key.slot as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        let payload = slot.payload.take();
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.slot);
        self.live -= 1;
        payload
    }

    /// Whether the event behind `key` is still pending. O(1).
    pub fn is_pending(&self, key: EventKey) -> bool {
        self.slots
            .get(key.slot as usize)
            .is_some_and(|s| s.generation == key.generation && s.payload.is_some())
    }

    /// Number of live (not cancelled, not yet popped) events.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no live event is pending.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::SimDuration;

    fn t(ns: u64) -> SimTime {
        SimTime::ZERO + SimDuration::from_nanos(ns)
    }

    #[test]
    fn pops_in_time_then_fifo_order() {
        let mut q = EventQueue::new();
        q.push(t(5), "c");
        q.push(t(1), "a");
        q.push(t(5), "d");
        q.push(t(1), "b");
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).map(|(_, e)| e).collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
    }

    #[test]
    fn cancelled_events_never_pop_and_slots_are_reused_safely() {
        let mut q = EventQueue::new();
        let k = q.push(t(1), 1);
        q.push(t(2), 2);
        assert_eq!(q.cancel(k), Some(1));
        assert_eq!(q.cancel(k), None, "double cancel is a no-op");
        let k3 = q.push(t(0), 3); // reuses the freed slot
        assert!(!q.is_pending(k));
        assert!(q.is_pending(k3));
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(), Some((t(0), 3)));
        assert_eq!(q.pop(), Some((t(2), 2)));
        assert_eq!(q.pop(), None);
        assert_eq!(q.cancel(k3), None, "cancel after pop is a no-op");
    }

    #[test]
    fn pop_until_respects_the_limit_and_skips_cancelled() {
        let mut q = EventQueue::new();
        let k = q.push(t(1), 'a');
        q.push(t(5), 'b');
        q.cancel(k);
        assert_eq!(q.pop_until(t(4)), Err(t(5)));
        assert_eq!(q.pop_until(t(5)), Ok(Some((t(5), 'b'))));
        assert_eq!(q.pop_until(t(9)), Ok(None));
    }

    #[test]
    fn peek_skips_cancelled() {
        let mut q = EventQueue::new();
        let k = q.push(t(1), ());
        q.push(t(7), ());
        q.cancel(k);
        assert_eq!(q.peek_time(), Some(t(7)));
    }
}
