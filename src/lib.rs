//! The `dynsim` command's library side: expanding scenario files into runs, executing them
//! in parallel with deterministic output, and writing the results. `main.rs` is the CLI.
#![warn(missing_docs)]

pub mod sweep;
