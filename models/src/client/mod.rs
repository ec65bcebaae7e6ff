//! Load generators.

pub mod harness;

pub use harness::{Client, ClientEvent, ClientParams};
