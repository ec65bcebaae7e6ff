//! # models
//!
//! The simulated Dynamo cluster on top of `sim-core`: the fault-tolerance suite's client, the
//! Kubernetes ingress (port-forwards, readiness), frontends with their routers, workers with a
//! batching engine, etcd discovery, fault injection, and the metrics the suite's parser
//! computes.
#![warn(missing_docs)]

pub mod client;
pub mod cluster;
pub mod discovery;
pub mod engine;
pub mod fabric;
pub mod fault;
pub mod frontend;
pub mod k8s;
pub mod metrics;
pub mod processor;
pub mod profile;
pub mod request;
pub mod router;
pub mod scenario;
pub mod worker;
