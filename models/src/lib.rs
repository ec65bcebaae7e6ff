//! # models
//!
//! The simulated Dynamo cluster on top of `sim-core`: the fault-tolerance suite's client, the
//! Kubernetes ingress (port-forwards, readiness), frontends with their routers, workers with a
//! batching engine, etcd discovery, fault injection, and the metrics the suite's parser
//! computes.
#![warn(missing_docs)]

pub mod engine;
pub mod profile;
pub mod scenario;
