//! The network the KV transfers of disaggregated serving cross, and the transfers sharing it.
//!
//! Worker processes live on hosts. Each host has one NIC, two links to the switch: up and
//! down, each of the profile's NIC bandwidth (`profile::DisaggProfile::nic_bandwidth`, full
//! duplex). A decode worker reading a prompt's KV from a prefill worker on another host
//! crosses the prefill host's up-link and its own host's down-link; on one host it crosses
//! no NIC. The links are the edges of the topology graph (petgraph).
//!
//! A transfer is also held to its own connection's rate (`kv_bandwidth`: one NIXL agent
//! pair over UCX/TCP, one read at a time — the worker keeps that queue). Transfers in flight
//! share every link max-min fairly (progressive filling): each gets the least of its
//! connection's rate and its fair share of its busiest link. The shares are recomputed when
//! a transfer starts or ends, and only transfers whose rate changed are rescheduled, so a
//! transfer that never shares a link to its limit ends exactly `alone` after it started. With the A100 profile
//! (200 Gb/s NICs, 42.6 MB/s per connection) no link binds; faster connections (RDMA) or
//! many readers on one host make the NICs the bottleneck.

use petgraph::graph::{DiGraph, NodeIndex};
use sim_core::{Context, EventKey, SimDuration, SimTime};

use crate::cluster::Event;
use crate::discovery::etcd::Instance;
use crate::worker::WorkerEvent;

/// Events handled by the fabric.
#[derive(Clone, Copy, Debug)]
pub enum FabricEvent {
    /// A decode worker starts reading a prompt's KV.
    Start(Transfer),
    /// The transfer in `slot` ends now, if its generation still matches.
    Due {
        /// Slab slot.
        slot: u32,
        /// Generation of the slot when the end was scheduled.
        gen: u32,
    },
    /// Worker `worker`'s process is gone: the transfers it was reading end unfinished.
    ReaderGone {
        /// Worker index.
        worker: u16,
    },
    /// Prefill instance `from`'s process is gone: the transfers reading from it end
    /// unfinished.
    SourceGone {
        /// The prefill instance.
        from: Instance,
    },
}

/// One KV read.
#[derive(Clone, Copy, Debug)]
pub struct Transfer {
    /// The reading decode worker.
    pub reader: u16,
    /// Its container generation (the answer is dropped by a newer one).
    pub reader_gen: u32,
    /// The prefill instance whose KV is read.
    pub from: Instance,
    /// Attempt id.
    pub attempt: u64,
    /// Bytes to move.
    pub bytes: f64,
    /// Its duration at its connection's rate, sharing nothing [ns].
    pub alone: SimDuration,
}

/// A path: the links it crosses — none within a host, else the source's up-link and the
/// destination's down-link.
#[derive(Clone, Copy, Debug, Default)]
struct Path {
    links: [u16; 2],
    len: u8,
}

impl Path {
    fn links(&self) -> &[u16] {
        &self.links[..self.len as usize]
    }
}

/// A transfer in flight.
#[derive(Clone, Copy, Debug)]
struct Flow {
    t: Transfer,
    path: Path,
    /// Its connection's rate [bytes/ns].
    cap: f64,
    /// Work left, in nanoseconds at its connection's rate.
    remaining: f64,
    /// Current rate as a fraction of `cap` (1 when nothing binds; 0 until first shared).
    speed: f64,
    /// When `remaining` was last brought up to date [ns since the start].
    updated: SimTime,
    due: Option<EventKey>,
}

/// The hosts, their links and the transfers in flight.
pub struct Fabric {
    /// Host of each worker.
    host_of: Vec<u16>,
    /// Each host's link to the switch and from it (indices into `capacity`).
    up: Vec<u16>,
    down: Vec<u16>,
    /// Capacity of each link [bytes/ns].
    capacity: Vec<f64>,
    /// Slab of flows; `gens[i]` counts the reuses of slot `i`.
    flows: Vec<Option<Flow>>,
    gens: Vec<u32>,
    free: Vec<u32>,
    // Scratch space of the rate computation, kept to avoid allocating per event.
    residual: Vec<f64>,
    crossing: Vec<u32>,
    rate: Vec<f64>,
    /// Live flow slots not yet at their final rate, in slot order.
    unfrozen: Vec<u32>,
    just: Vec<u32>,
}

impl Fabric {
    /// A star: one switch, every host one NIC of `nic_bandwidth` [bytes/s, > 0] each way;
    /// `host_of[w]` is the host of worker `w`.
    pub fn star(host_of: Vec<u16>, nic_bandwidth: f64) -> Fabric {
        debug_assert!(nic_bandwidth > 0.0, "a NIC moves bytes");
        let hosts = host_of
            .iter()
            .map(|&h| usize::from(h) + 1)
            .max()
            .unwrap_or(0);
        let mut g: DiGraph<(), u16> = DiGraph::new();
        let switch = g.add_node(());
        let nodes: Vec<NodeIndex> = (0..hosts).map(|_| g.add_node(())).collect();
        let mut capacity = Vec::with_capacity(2 * hosts);
        for &n in &nodes {
            for (a, b) in [(n, switch), (switch, n)] {
                g.add_edge(a, b, capacity.len() as u16);
                capacity.push(nic_bandwidth * 1e-9);
            }
        }
        let link = |a, b| {
            g[g.find_edge(a, b)
                .expect("every host is linked to the switch")]
        };
        let up = nodes.iter().map(|&n| link(n, switch)).collect();
        let down = nodes.iter().map(|&n| link(switch, n)).collect();
        let links = capacity.len();
        Fabric {
            host_of,
            up,
            down,
            capacity,
            flows: Vec::new(),
            gens: Vec::new(),
            free: Vec::new(),
            residual: vec![0.0; links],
            crossing: vec![0; links],
            rate: Vec::new(),
            unfrozen: Vec::new(),
            just: Vec::new(),
        }
    }

    /// The links from host `a` to host `b`.
    fn path(&self, a: u16, b: u16) -> Path {
        if a == b {
            return Path::default();
        }
        Path {
            links: [self.up[usize::from(a)], self.down[usize::from(b)]],
            len: 2,
        }
    }

    /// Handles `ev`.
    pub fn handle(&mut self, ev: FabricEvent, ctx: &mut Context<Event>) {
        match ev {
            FabricEvent::Start(t) => {
                let (a, b) = (
                    self.host_of[usize::from(t.from.slot)],
                    self.host_of[usize::from(t.reader)],
                );
                let alone = t.alone.as_nanos() as f64;
                let flow = Flow {
                    t,
                    path: self.path(a, b),
                    cap: t.bytes / alone.max(1.0),
                    remaining: alone,
                    speed: 0.0,
                    updated: ctx.now(),
                    due: None,
                };
                let slot = match self.free.pop() {
                    Some(s) => {
                        self.flows[s as usize] = Some(flow);
                        s
                    }
                    None => {
                        self.flows.push(Some(flow));
                        self.gens.push(0);
                        (self.flows.len() - 1) as u32
                    }
                };
                self.gens[slot as usize] += 1;
                self.share(ctx);
            }
            FabricEvent::Due { slot, gen } => {
                if self.gens.get(slot as usize) != Some(&gen) {
                    return;
                }
                let Some(f) = self.flows[slot as usize].take() else {
                    return;
                };
                self.free.push(slot);
                let t = f.t;
                let e = WorkerEvent::ReadDone {
                    attempt: t.attempt,
                    gen: t.reader_gen,
                    from: t.from,
                };
                ctx.schedule_now(Event::Worker(t.reader, e));
                self.share(ctx);
            }
            FabricEvent::ReaderGone { worker } => self.drop_flows(ctx, |t| t.reader == worker),
            FabricEvent::SourceGone { from } => self.drop_flows(ctx, |t| t.from == from),
        }
    }

    /// Ends the flows whose transfer matches `gone`, unfinished, and shares the links again.
    fn drop_flows(&mut self, ctx: &mut Context<Event>, gone: impl Fn(&Transfer) -> bool) {
        let mut any = false;
        for (slot, f) in self.flows.iter_mut().enumerate() {
            if f.is_some_and(|f| gone(&f.t)) {
                if let Some(k) = f.take().and_then(|f| f.due) {
                    ctx.cancel(k);
                }
                self.free.push(slot as u32);
                any = true;
            }
        }
        if any {
            self.share(ctx);
        }
    }

    /// Max-min fair rates by progressive filling, and new ends for the flows whose rate
    /// changed. Each round raises every unfrozen flow to the next level (a link's fair share
    /// of what frozen flows leave it, or a flow's cap) and freezes those that reach it; a
    /// round visits the links and only the flows still unfrozen, in index order:
    /// deterministic.
    fn share(&mut self, ctx: &mut Context<Event>) {
        let n = self.flows.len();
        self.rate.clear();
        self.rate.resize(n, 0.0);
        self.residual.copy_from_slice(&self.capacity);
        self.crossing.fill(0);
        self.unfrozen.clear();
        for (i, f) in self.flows.iter().enumerate() {
            if let Some(f) = f {
                self.unfrozen.push(i as u32);
                for &l in f.path.links() {
                    self.crossing[usize::from(l)] += 1;
                }
            }
        }
        while !self.unfrozen.is_empty() {
            // The level every unfrozen flow reaches next: a link's fair share or a flow's cap.
            let mut level = f64::INFINITY;
            for (r, &c) in self.residual.iter().zip(&self.crossing) {
                if c > 0 {
                    level = level.min(r / f64::from(c));
                }
            }
            for &i in &self.unfrozen {
                if let Some(f) = &self.flows[i as usize] {
                    level = level.min(f.cap);
                }
            }
            // Freeze the flows that reach it: capped ones, and those on a link it fills
            // (judged on this round's residuals, then taken off them).
            let (flows, residual, crossing) = (&self.flows, &self.residual, &self.crossing);
            let reached = |i: u32| {
                flows[i as usize].as_ref().is_none_or(|f| {
                    f.cap <= level
                        || f.path.links().iter().any(|&l| {
                            let l = usize::from(l);
                            residual[l] / f64::from(crossing[l]) <= level
                        })
                })
            };
            let just = &mut self.just;
            just.clear();
            self.unfrozen.retain(|&i| {
                let r = reached(i);
                if r {
                    just.push(i);
                }
                !r
            });
            for &i in &self.just {
                let Some(f) = &self.flows[i as usize] else {
                    continue;
                };
                self.rate[i as usize] = level;
                for &l in f.path.links() {
                    let l = usize::from(l);
                    self.residual[l] = (self.residual[l] - level).max(0.0);
                    self.crossing[l] -= 1;
                }
            }
        }
        let now = ctx.now();
        for i in 0..n {
            let gen = self.gens[i];
            let Some(f) = &mut self.flows[i] else {
                continue;
            };
            let speed = (self.rate[i] / f.cap).min(1.0);
            if speed == f.speed && f.due.is_some() {
                continue;
            }
            let run = now.saturating_since(f.updated).as_nanos() as f64;
            f.remaining = (f.remaining - run * f.speed).max(0.0);
            f.updated = now;
            f.speed = speed;
            if let Some(k) = f.due.take() {
                ctx.cancel(k);
            }
            let left = SimDuration::from_nanos((f.remaining / speed).ceil() as u64);
            let e = Event::Fabric(FabricEvent::Due {
                slot: i as u32,
                gen,
            });
            f.due = Some(ctx.schedule_in(left, e));
        }
    }
}

#[cfg(test)]
mod tests {
    use sim_core::{Limits, Model, Simulation};

    use super::*;

    /// The fabric alone; a worker's `ReadDone` is recorded as (attempt, time [ns]).
    struct Bench {
        fabric: Fabric,
        done: Vec<(u64, u64)>,
    }

    impl Model for Bench {
        type Event = Event;
        fn handle(&mut self, ev: Event, ctx: &mut Context<Event>) {
            match ev {
                Event::Fabric(e) => self.fabric.handle(e, ctx),
                Event::Worker(_, WorkerEvent::ReadDone { attempt, .. }) => {
                    self.done.push((attempt, ctx.now().as_nanos()))
                }
                _ => unreachable!("only the fabric and its answers"),
            }
        }
    }

    /// A transfer of `bytes` at `cap` bytes/ns from worker `from` to worker `reader`.
    fn read(attempt: u64, from: u16, reader: u16, bytes: f64, cap: f64) -> Event {
        Event::Fabric(FabricEvent::Start(Transfer {
            reader,
            reader_gen: 0,
            from: Instance {
                slot: from,
                incarnation: 0,
                prefill: true,
            },
            attempt,
            bytes,
            alone: SimDuration::from_nanos((bytes / cap) as u64),
        }))
    }

    /// Runs `starts` (time [ns], event) on hosts `host_of` with NICs of 1 byte/ns; returns
    /// each attempt's end [ns], by attempt.
    fn ends(host_of: Vec<u16>, starts: Vec<(u64, Event)>) -> Vec<u64> {
        let mut sim = Simulation::new(Bench {
            fabric: Fabric::star(host_of, 1e9),
            done: Vec::new(),
        });
        for (t, e) in starts {
            sim.schedule_at(SimTime::from_nanos(t), e);
        }
        sim.run(Limits::default());
        let mut done = sim.into_model().done;
        done.sort();
        done.into_iter().map(|d| d.1).collect()
    }

    #[test]
    fn a_transfer_alone_takes_its_connection_time_exactly() {
        // 1,000 bytes at 0.3 bytes/ns: 3,333 ns, on a 1 byte/ns NIC that does not bind.
        let e = ends(vec![0, 1], vec![(7, read(0, 0, 1, 1_000.0, 0.3))]);
        assert_eq!(e, vec![7 + 3_333]);
    }

    #[test]
    fn an_empty_transfer_ends_at_once() {
        let e = ends(vec![0, 1], vec![(5, read(0, 0, 1, 0.0, 1.0))]);
        assert_eq!(e, vec![5]);
    }

    #[test]
    fn two_reads_into_one_host_share_its_down_link() {
        // Prefill workers 0 and 1 on their own hosts, the reader 2 on a third: both reads
        // cross host 2's down-link (1 byte/ns), each could go at 1 byte/ns alone.
        let both = ends(
            vec![0, 1, 2],
            vec![
                (0, read(0, 0, 2, 1_000.0, 1.0)),
                (0, read(1, 1, 2, 1_000.0, 1.0)),
            ],
        );
        assert_eq!(both, vec![2_000, 2_000]);
        // Staggered: the first goes alone for 500 ns, then both at half speed until it ends
        // at 1,500 ns; the second then has 500 bytes left at full speed.
        let staggered = ends(
            vec![0, 1, 2],
            vec![
                (0, read(0, 0, 2, 1_000.0, 1.0)),
                (500, read(1, 1, 2, 1_000.0, 1.0)),
            ],
        );
        assert_eq!(staggered, vec![1_500, 2_000]);
    }

    #[test]
    fn a_capped_read_leaves_the_rest_of_the_link_to_the_other() {
        // Max-min: 0.2 byte/ns for the slow connection, the remaining 0.8 to the other.
        let e = ends(
            vec![0, 1, 2],
            vec![
                (0, read(0, 0, 2, 200.0, 0.2)),
                (0, read(1, 1, 2, 800.0, 1.0)),
            ],
        );
        assert_eq!(e, vec![1_000, 1_000]);
    }

    #[test]
    fn reads_within_one_host_cross_no_nic() {
        // Everything on host 0: each read at its connection's rate.
        let e = ends(
            vec![0, 0, 0],
            vec![
                (0, read(0, 0, 2, 1_000.0, 1.0)),
                (0, read(1, 1, 2, 1_000.0, 1.0)),
            ],
        );
        assert_eq!(e, vec![1_000, 1_000]);
    }

    #[test]
    fn a_gone_source_frees_its_share() {
        // Prefill workers 0 and 1 on their own hosts feed reader 2 on a third, sharing its
        // down-link; worker 0's process goes at 500 ns: its read never ends, reader 2's other
        // read takes the whole link: 250 + 750 bytes, done at 1,250 ns.
        let gone = Instance {
            slot: 0,
            incarnation: 0,
            prefill: true,
        };
        let e = ends(
            vec![0, 1, 2],
            vec![
                (0, read(0, 0, 2, 1_000.0, 1.0)),
                (0, read(1, 1, 2, 1_000.0, 1.0)),
                (500, Event::Fabric(FabricEvent::SourceGone { from: gone })),
            ],
        );
        assert_eq!(e, vec![1_250]);
    }

    #[test]
    fn a_gone_reader_frees_its_share() {
        // Reader 1's read ends unfinished at 500 ns; reader 2's, sharing prefill host 0's
        // up-link with it, then runs at full speed: 250 + 750 bytes, done at 1,250 ns.
        let e = ends(
            vec![0, 1, 2],
            vec![
                (0, read(0, 0, 1, 1_000.0, 1.0)),
                (0, read(1, 0, 2, 1_000.0, 1.0)),
                (500, Event::Fabric(FabricEvent::ReaderGone { worker: 1 })),
            ],
        );
        assert_eq!(e, vec![1_250]);
    }
}
