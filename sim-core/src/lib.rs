//! # sim-core
//!
//! A small, domain-free discrete-event engine: integer-nanosecond time ([`SimTime`],
//! [`SimDuration`]), an event queue ordered by (time, sequence number) with payloads kept in a
//! slab ([`EventQueue`]), cancellable timers ([`EventKey`]), seeded per-purpose random streams
//! ([`RngStreams`]), and a run loop with stop conditions and a rolling trace hash
//! ([`Simulation`]).
//!
//! It knows nothing about what it simulates: a [`Model`] receives its own events and schedules
//! new ones through a [`Context`]. Everything is single-threaded; parallelism comes from running
//! many simulations at once.
#![warn(missing_docs)]

mod hash;
mod queue;
mod rng;
mod sim;
mod time;

pub use hash::StableHasher;
pub use queue::{EventKey, EventQueue};
pub use rng::{stream_id, RngStreams, SimRng};
pub use sim::{Context, Limits, Model, Simulation, StopReason, TraceHash, TraceWord};
pub use time::{SimDuration, SimTime};
