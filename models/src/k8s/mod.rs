//! Kubernetes as the suite's deployment sees it: pods, containers, restarts, probes.

pub mod kubelet;
