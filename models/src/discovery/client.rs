//! The discovery client a component keeps: the instances of one pool it learned from the
//! etcd watch, those it dropped after an error (`push_router.rs` `report_instance_down`:
//! "no responders" or a broken stream removes an instance at once), and the router that
//! picks among the live ones. A reconcile every 5 s restores dropped instances that are
//! still registered (`model-facts.md` §3).

use sim_core::SimDuration;

use crate::discovery::etcd::{Etcd, Instance, WatchEvent};
use crate::router::{RouteRequest, Router};

/// Reconcile period of the discovery client [ns] (`model-facts.md` §3: 5 s).
pub const RECONCILE: SimDuration = SimDuration::from_secs(5);

/// Instances of one pool as a component sees them.
pub struct DiscoveryClient {
    /// Which pool it follows.
    prefill: bool,
    instances: Vec<Instance>,
    down: Vec<Instance>,
    router: Box<dyn Router>,
    live: Vec<Instance>,
}

impl DiscoveryClient {
    /// A client of the prefill pool (`prefill`) or of the decode pool, with `router`.
    pub fn new(prefill: bool, router: Box<dyn Router>) -> Self {
        DiscoveryClient {
            prefill,
            instances: Vec::new(),
            down: Vec::new(),
            router,
            live: Vec::new(),
        }
    }

    /// Whether any instance is registered (live or dropped).
    pub fn any(&self) -> bool {
        !self.instances.is_empty()
    }

    /// Reads every registered instance of its pool (start-up, or after a restart).
    pub fn reset(&mut self, etcd: &Etcd) {
        self.instances = etcd
            .instances()
            .filter(|i| i.prefill == self.prefill)
            .collect();
        self.down.clear();
    }

    /// Forgets everything (the process died).
    pub fn clear(&mut self) {
        for i in std::mem::take(&mut self.instances) {
            self.router.removed(i);
        }
        self.down.clear();
    }

    /// Applies a watch event of its pool; returns whether the instance set went from empty
    /// to non-empty.
    pub fn watch(&mut self, w: WatchEvent) -> bool {
        let was_empty = self.instances.is_empty();
        match w {
            WatchEvent::Put(i) if i.prefill == self.prefill && !self.instances.contains(&i) => {
                self.instances.push(i);
                self.instances.sort();
            }
            WatchEvent::Delete(i) if i.prefill == self.prefill => {
                self.instances.retain(|x| *x != i);
                self.down.retain(|x| *x != i);
                self.router.removed(i);
            }
            _ => {}
        }
        was_empty && !self.instances.is_empty()
    }

    /// Drops an instance after an error.
    pub fn report_down(&mut self, i: Instance) {
        if !self.down.contains(&i) && self.instances.contains(&i) {
            self.down.push(i);
        }
    }

    /// Whether `i` is registered and not dropped: one a request may be sent to.
    pub fn available(&self, i: Instance) -> bool {
        self.instances.contains(&i) && !self.down.contains(&i)
    }

    /// Restores dropped instances still registered.
    pub fn reconcile(&mut self, etcd: &Etcd) {
        self.down.retain(|d| !etcd.instances().any(|i| i == *d));
    }

    /// Picks a live instance for `req` and tells the router it was sent there; `None` if
    /// there is none.
    pub fn pick(&mut self, req: &RouteRequest<'_>) -> Option<Instance> {
        self.live.clear();
        self.live
            .extend(self.instances.iter().filter(|i| !self.down.contains(i)));
        if self.live.is_empty() {
            return None;
        }
        let chosen = self.live[self.router.pick(req, &self.live)];
        self.router.routed(chosen, req);
        Some(chosen)
    }

    /// Another router replica sent a request to `to` (replica sync).
    pub fn routed(&mut self, to: Instance, req: &RouteRequest<'_>) {
        if self.instances.contains(&to) {
            self.router.routed(to, req);
        }
    }

    /// Request `id`, sent to `to`, ended.
    pub fn ended(&mut self, to: Instance, id: u64) {
        self.router.ended(to, id);
    }

    /// A KV event from `from`'s engine.
    pub fn kv_event(&mut self, from: Instance, stored: bool, hash: u64) {
        if self.instances.contains(&from) {
            self.router.kv_event(from, stored, hash);
        }
    }

    /// Its router's view of the workers' caches (KV routers).
    pub fn view(&self) -> Vec<(Instance, Vec<u64>)> {
        self.router.view()
    }

    /// Whether its router wants KV events.
    pub fn wants_kv_events(&self) -> bool {
        self.router.wants_kv_events()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::RoundRobin;

    const REQ: RouteRequest<'static> = RouteRequest {
        id: 0,
        now: SimTime::ZERO,
        prompt: 1,
        output: 1,
        hashes: &[],
    };
    use sim_core::SimTime;

    #[test]
    fn errors_drop_an_instance_until_the_reconcile_finds_it_registered() {
        let mut etcd = Etcd::new(
            SimDuration::from_secs(10),
            SimDuration::from_secs(5),
            SimDuration::ZERO,
            SimDuration::ZERO,
        );
        let (a, b) = (
            Instance {
                slot: 0,
                incarnation: 1,
                prefill: false,
            },
            Instance {
                slot: 1,
                incarnation: 1,
                prefill: false,
            },
        );
        let p = Instance {
            slot: 2,
            incarnation: 1,
            prefill: true,
        };
        for i in [a, b, p] {
            etcd.register(SimTime::ZERO, i);
        }
        let mut c = DiscoveryClient::new(false, Box::new(RoundRobin::default()));
        c.reset(&etcd);
        assert_eq!(
            (c.pick(&REQ), c.pick(&REQ)),
            (Some(a), Some(b)),
            "the prefill instance is not in this pool"
        );
        c.report_down(a);
        assert_eq!((c.pick(&REQ), c.pick(&REQ)), (Some(b), Some(b)));
        c.reconcile(&etcd);
        assert!([c.pick(&REQ), c.pick(&REQ)].contains(&Some(a)));
        c.report_down(b);
        etcd.remove(b);
        c.reconcile(&etcd);
        assert!(!c.watch(WatchEvent::Delete(b)));
        assert_eq!((c.pick(&REQ), c.pick(&REQ)), (Some(a), Some(a)));
    }
}
