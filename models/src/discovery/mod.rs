//! Service discovery: etcd leases and watches.

pub mod etcd;
