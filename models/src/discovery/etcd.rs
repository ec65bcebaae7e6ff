//! etcd as Dynamo uses it for discovery: each worker instance registers its endpoint under a
//! lease (TTL 10 s, keep-alive every 5 s, `model-facts.md` §3); frontends watch the prefix.
//!
//! A crashed holder stops its keep-alives, so its lease runs out TTL after the last keep-alive
//! that got through, and etcd's lessor revokes it at its next periodic check: that instant is
//! computed when the holder dies, not polled. A graceful exit revokes the lease at once.

use sim_core::{Context, SimDuration, SimTime};

use crate::cluster::Event;
use crate::frontend::FrontendEvent;
use crate::router::service::RouterEvent;
use crate::worker::WorkerEvent;

/// A registered worker instance: worker slot, process incarnation, and its pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instance {
    /// Worker slot (index among all workers).
    pub slot: u16,
    /// Process incarnation of that slot.
    pub incarnation: u32,
    /// Whether it serves prefill (a disaggregated prefill worker); else it serves the model.
    pub prefill: bool,
}

/// Events handled by etcd.
#[derive(Clone, Copy, Debug)]
pub enum EtcdEvent {
    /// The instance's lease expired (if it was not refreshed by a new registration).
    LeaseExpired(Instance),
}

/// What the watchers must be told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key appeared.
    Put(Instance),
    /// A key vanished (lease expired or revoked).
    Delete(Instance),
}

#[derive(Clone, Debug)]
struct Lease {
    instance: Instance,
    granted: SimTime,
}

/// The etcd cluster (healthy; outages come with later failure kinds).
#[derive(Clone, Debug)]
pub struct Etcd {
    ttl: SimDuration,
    keepalive: SimDuration,
    /// Period of the lessor's expiry check [ns].
    check: SimDuration,
    /// When, within a period, the lessor checks (its ticker started with etcd) [ns].
    check_phase: SimDuration,
    leases: Vec<Lease>,
}

impl Etcd {
    /// etcd with the given lease TTL and keep-alive period, whose lessor looks for expired
    /// leases every `check`, at `check_phase` into each period.
    pub fn new(
        ttl: SimDuration,
        keepalive: SimDuration,
        check: SimDuration,
        check_phase: SimDuration,
    ) -> Self {
        Etcd {
            ttl,
            keepalive,
            check,
            check_phase,
            leases: Vec::new(),
        }
    }

    /// Registered instances, in (slot, incarnation) order.
    pub fn instances(&self) -> impl Iterator<Item = Instance> + '_ {
        self.leases.iter().map(|l| l.instance)
    }

    /// An instance registers (lease granted now).
    pub fn register(&mut self, now: SimTime, instance: Instance) -> WatchEvent {
        self.leases.push(Lease {
            instance,
            granted: now,
        });
        self.leases.sort_by_key(|l| l.instance);
        WatchEvent::Put(instance)
    }

    /// The holder died without revoking: when its lease is revoked (the lessor's first check
    /// at or after TTL past the last keep-alive sent at or before `now`).
    pub fn expiry_after_crash(&self, now: SimTime, instance: Instance) -> Option<SimTime> {
        let l = self.leases.iter().find(|l| l.instance == instance)?;
        let alive = now.saturating_since(l.granted).as_nanos();
        let period = self.keepalive.as_nanos().max(1);
        let last = l.granted + SimDuration::from_nanos(alive / period * period);
        let expiry = (last + self.ttl).as_nanos();
        let (check, phase) = (self.check.as_nanos(), self.check_phase.as_nanos());
        if check == 0 {
            return Some(SimTime::from_nanos(expiry));
        }
        let k = expiry.saturating_sub(phase).div_ceil(check);
        Some(SimTime::from_nanos(phase + k * check))
    }

    /// The lease is revoked or expired: the key is deleted.
    pub fn remove(&mut self, instance: Instance) -> Option<WatchEvent> {
        let i = self.leases.iter().position(|l| l.instance == instance)?;
        self.leases.remove(i);
        Some(WatchEvent::Delete(instance))
    }
}

/// Who watches which pool: frontends watch the decode (model) pool, decode workers the
/// prefill pool.
#[derive(Clone, Copy, Debug)]
pub struct Watchers {
    /// Frontends (indices `0..frontends`).
    pub frontends: u16,
    /// Decode workers (worker slots `0..decode_workers`).
    pub decode_workers: u16,
    /// Standalone routers (they watch the decode pool too).
    pub routers: u16,
    /// Watch delivery delay [ns].
    pub delay: SimDuration,
}

/// Delivers a watch event to the watchers of the instance's pool.
pub fn notify_watchers(ctx: &mut Context<Event>, watchers: Watchers, w: WatchEvent) {
    let (WatchEvent::Put(i) | WatchEvent::Delete(i)) = w;
    if i.prefill {
        for wk in 0..watchers.decode_workers {
            ctx.schedule_in(watchers.delay, Event::Worker(wk, WorkerEvent::Watch(w)));
        }
    } else {
        for fe in 0..watchers.frontends {
            ctx.schedule_in(watchers.delay, Event::Frontend(fe, FrontendEvent::Watch(w)));
        }
        for r in 0..watchers.routers {
            ctx.schedule_in(watchers.delay, Event::Router(r, RouterEvent::Watch(w)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crashed_lease_expires_ttl_after_its_last_keepalive() {
        let mut e = Etcd::new(
            SimDuration::from_secs(10),
            SimDuration::from_secs(5),
            SimDuration::ZERO,
            SimDuration::ZERO,
        );
        let i = Instance {
            slot: 0,
            incarnation: 1,
            prefill: false,
        };
        e.register(SimTime::ZERO + SimDuration::from_secs(100), i);
        let died = SimTime::ZERO + SimDuration::from_secs(113);
        // Keep-alives at 105 and 110; expiry at 120.
        assert_eq!(
            e.expiry_after_crash(died, i),
            Some(SimTime::ZERO + SimDuration::from_secs(120))
        );
        assert_eq!(e.remove(i), Some(WatchEvent::Delete(i)));
        assert_eq!(e.remove(i), None);
    }

    #[test]
    fn the_lessor_revokes_an_expired_lease_at_its_next_check() {
        let ms = SimDuration::from_millis;
        let mut e = Etcd::new(
            SimDuration::from_secs(10),
            SimDuration::from_secs(5),
            ms(500),
            ms(120),
        );
        let i = Instance {
            slot: 0,
            incarnation: 1,
            prefill: false,
        };
        e.register(SimTime::ZERO + ms(100_050), i);
        // Last keep-alive at 110.05 s, expired at 120.05 s; checks at …, 120.12 s, 120.62 s.
        let died = SimTime::ZERO + ms(113_000);
        assert_eq!(
            e.expiry_after_crash(died, i),
            Some(SimTime::ZERO + ms(120_120))
        );
        // Expiring exactly on a check: revoked at that check.
        let mut e = Etcd::new(
            SimDuration::from_secs(10),
            SimDuration::from_secs(5),
            ms(500),
            ms(0),
        );
        e.register(SimTime::ZERO + ms(100_000), i);
        assert_eq!(
            e.expiry_after_crash(died, i),
            Some(SimTime::ZERO + ms(120_000))
        );
    }
}
