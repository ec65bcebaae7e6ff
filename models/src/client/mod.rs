//! Load generators.

pub mod harness;
pub mod open_loop;

pub use harness::{Client, ClientEvent, ClientParams};
