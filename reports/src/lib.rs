//! # reports
//!
//! Everything dynsim writes: the per-deployment results table on the terminal, `results.csv`
//! (one row per scenario, deployment, failure and seed), per-attempt CSVs, a JSON summary
//! with statistics across seeds, and the comparison of simulated rows with a measured table.
//! Files are written atomically. Nothing here simulates.
#![warn(missing_docs)]

mod atomic;
pub mod compare;
pub mod results;
pub mod stats;
pub mod table;

pub use atomic::{remove_leftovers, write_atomic};
pub use results::{ResultRow, COLUMNS};
