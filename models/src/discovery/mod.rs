//! Service discovery: etcd leases and watches.

pub mod client;
pub mod etcd;
