//! Failure processes: the suite's scripted injection.

pub mod inject;
