//! The run loop: a [`Model`] reacts to its events through a [`Context`] that owns time and the
//! queue; the loop stops when work runs out or a limit is reached, and keeps a rolling hash of
//! every processed event so determinism can be asserted.

use crate::queue::{EventKey, EventQueue};
use crate::time::{SimDuration, SimTime};

/// Something a [`Model`]'s events can be folded into the trace hash with: a word that names the
/// event and its target (kind and ids, not floating-point data).
pub trait TraceWord {
    /// A stable summary of the event.
    fn trace_word(&self) -> u64;
}

/// A simulated world: it owns its state and handles its own events.
pub trait Model {
    /// The events the world schedules for itself.
    type Event: TraceWord;
    /// Reacts to `event` at `ctx.now()`; may schedule and cancel events through `ctx`.
    fn handle(&mut self, event: Self::Event, ctx: &mut Context<Self::Event>);
}

/// What a handler sees of the engine: the current time and the queue.
pub struct Context<E> {
    now: SimTime,
    queue: EventQueue<E>,
    stop: bool,
}

impl<E> Context<E> {
    /// The current simulated time.
    pub fn now(&self) -> SimTime {
        self.now
    }
    /// Schedules `event` at `time` (never earlier than now; an earlier time is clamped to now,
    /// which is a model bug caught in debug builds).
    pub fn schedule_at(&mut self, time: SimTime, event: E) -> EventKey {
        debug_assert!(time >= self.now, "event scheduled in the past");
        self.queue.push(time.max(self.now), event)
    }
    /// Schedules `event` after `delay`.
    pub fn schedule_in(&mut self, delay: SimDuration, event: E) -> EventKey {
        self.queue.push(self.now + delay, event)
    }
    /// Schedules `event` now, after every event already scheduled for now.
    pub fn schedule_now(&mut self, event: E) -> EventKey {
        self.queue.push(self.now, event)
    }
    /// Cancels a pending event, returning its payload if it was still pending.
    pub fn cancel(&mut self, key: EventKey) -> Option<E> {
        self.queue.cancel(key)
    }
    /// Whether the event behind `key` is still pending.
    pub fn is_pending(&self, key: EventKey) -> bool {
        self.queue.is_pending(key)
    }
    /// Number of pending events.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }
    /// Asks the run loop to stop after this event (the model's work is done even though
    /// periodic events remain).
    pub fn stop(&mut self) {
        self.stop = true;
    }
}

/// When a run stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Stop before processing any event later than this time.
    pub until: SimTime,
    /// Stop after processing this many events.
    pub max_events: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            until: SimTime::MAX,
            max_events: u64::MAX,
        }
    }
}

/// Why a run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// No event was left.
    Idle,
    /// The next event lies beyond [`Limits::until`].
    TimeLimit,
    /// [`Limits::max_events`] events were processed.
    EventLimit,
    /// The model called [`Context::stop`].
    Stopped,
}

/// A rolling hash of the processed events (time and [`TraceWord`]), cheap enough to keep on in
/// every run. Two runs with equal hashes processed the same events at the same times.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceHash(u64);

impl TraceHash {
    /// Folds one event in: a multiply-rotate step, cheap enough for every event, sensitive
    /// to order, time and word.
    fn fold(&mut self, time: SimTime, word: u64) {
        const K1: u64 = 0x9e37_79b9_7f4a_7c15;
        const K2: u64 = 0xbf58_476d_1ce4_e5b9;
        let x = time.as_nanos().wrapping_mul(K1) ^ word.wrapping_mul(K2);
        self.0 = (self.0.rotate_left(27) ^ x).wrapping_mul(K1);
    }
    /// The hash value.
    pub fn value(self) -> u64 {
        self.0
    }
}

/// One run of a [`Model`].
pub struct Simulation<M: Model> {
    model: M,
    ctx: Context<M::Event>,
    trace: TraceHash,
    processed: u64,
}

impl<M: Model> Simulation<M> {
    /// A simulation of `model` at time zero with an empty queue.
    pub fn new(model: M) -> Self {
        Simulation {
            model,
            ctx: Context {
                now: SimTime::ZERO,
                queue: EventQueue::with_capacity(1024),
                stop: false,
            },
            trace: TraceHash::default(),
            processed: 0,
        }
    }

    /// Schedules an initial event (before or between runs).
    pub fn schedule_at(&mut self, time: SimTime, event: M::Event) -> EventKey {
        self.ctx.schedule_at(time, event)
    }

    /// Processes events in (time, sequence) order until a stop condition holds.
    pub fn run(&mut self, limits: Limits) -> StopReason {
        self.run_observed(limits, |_, _| {})
    }

    /// As [`Simulation::run`], calling `observe(time, event)` before each event is handled
    /// (the tracing hook).
    pub fn run_observed(
        &mut self,
        limits: Limits,
        mut observe: impl FnMut(SimTime, &M::Event),
    ) -> StopReason {
        loop {
            if self.processed >= limits.max_events {
                return StopReason::EventLimit;
            }
            let (time, event) = match self.ctx.queue.pop_until(limits.until) {
                Ok(Some(next)) => next,
                Ok(None) => return StopReason::Idle,
                Err(_) => return StopReason::TimeLimit,
            };
            debug_assert!(time >= self.ctx.now, "simulated time went backwards");
            self.ctx.now = time;
            self.trace.fold(time, event.trace_word());
            self.processed += 1;
            observe(time, &event);
            self.model.handle(event, &mut self.ctx);
            if self.ctx.stop {
                self.ctx.stop = false;
                return StopReason::Stopped;
            }
        }
    }

    /// The current simulated time.
    pub fn now(&self) -> SimTime {
        self.ctx.now
    }
    /// Events processed so far.
    pub fn events_processed(&self) -> u64 {
        self.processed
    }
    /// The rolling hash of every processed event.
    pub fn trace_hash(&self) -> TraceHash {
        self.trace
    }
    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }
    /// The model, mutably (between runs).
    pub fn model_mut(&mut self) -> &mut M {
        &mut self.model
    }
    /// Consumes the simulation, returning the model.
    pub fn into_model(self) -> M {
        self.model
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ping-pong model: each event schedules the next one `gap` later, `n` times.
    struct Pinger {
        seen: Vec<(u64, u32)>,
        gap: SimDuration,
        n: u32,
    }
    #[derive(Debug)]
    struct Ping(u32);
    impl TraceWord for Ping {
        fn trace_word(&self) -> u64 {
            u64::from(self.0)
        }
    }
    impl Model for Pinger {
        type Event = Ping;
        fn handle(&mut self, e: Ping, ctx: &mut Context<Ping>) {
            self.seen.push((ctx.now().as_nanos(), e.0));
            if e.0 + 1 < self.n {
                ctx.schedule_in(self.gap, Ping(e.0 + 1));
            }
        }
    }

    fn run(gap: u64, n: u32, limits: Limits) -> (Simulation<Pinger>, StopReason) {
        let mut sim = Simulation::new(Pinger {
            seen: vec![],
            gap: SimDuration::from_nanos(gap),
            n,
        });
        sim.schedule_at(SimTime::ZERO, Ping(0));
        let r = sim.run(limits);
        (sim, r)
    }

    #[test]
    fn stops_on_each_condition() {
        let (sim, r) = run(10, 5, Limits::default());
        assert_eq!(r, StopReason::Idle);
        assert_eq!(sim.events_processed(), 5);
        assert_eq!(sim.now().as_nanos(), 40);

        let until = SimTime::from_nanos(25);
        let (sim, r) = run(
            10,
            5,
            Limits {
                until,
                ..Limits::default()
            },
        );
        assert_eq!(r, StopReason::TimeLimit);
        assert_eq!(sim.model().seen.len(), 3);

        let (sim, r) = run(
            10,
            5,
            Limits {
                max_events: 2,
                ..Limits::default()
            },
        );
        assert_eq!(r, StopReason::EventLimit);
        assert_eq!(sim.model().seen, vec![(0, 0), (10, 1)]);
    }

    #[test]
    fn trace_hash_tells_runs_apart() {
        let (a, _) = run(10, 5, Limits::default());
        let (b, _) = run(10, 5, Limits::default());
        let (c, _) = run(11, 5, Limits::default());
        assert_eq!(a.trace_hash(), b.trace_hash());
        assert_ne!(a.trace_hash(), c.trace_hash());
    }
}
