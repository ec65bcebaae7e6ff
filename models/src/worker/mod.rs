//! A Dynamo worker process (`dynamo.vllm` and its engine-core sub-process) in one worker pod:
//! model load, registration in etcd under a lease, serving through the batching engine, and
//! the ways it dies. A worker is an aggregated/decode worker or a disaggregated prefill worker.
//!
//! - SIGKILL of the main process: the container exits; its lease expires TTL after the last
//!   keep-alive; streams in flight break at once (the frontend sees "stream ended").
//! - SIGTERM (pod deletion): in the suite's deployments it never reaches the process (a
//!   `/bin/sh -c` PID 1, see `profile::ProcessProfile::sigterm_reaches_process`), which runs
//!   on until the kubelet's SIGKILL 2 s later. Where it does arrive, Dynamo's graceful
//!   shutdown revokes the lease at once and, for decode workers, drops in-flight requests
//!   (`graceful_shutdown=False` in the vLLM worker's `main.py`, mid-2025), then exits.
//! - Engine-core death: the engine stops; the engine monitor notices at its next poll
//!   (every 2 s, `engine_monitor.py`), shuts the runtime down (lease revoked, streams ended)
//!   and exits 1 so Kubernetes restarts the container. Without the monitor (older releases)
//!   requests hang until the client's timeout and the instance stays registered.
//!
//! Disaggregated serving (`model-facts.md` §2–3): a decode worker sends each request's prefill
//! to a prefill worker it found through discovery (round-robin), reads the KV over its
//! connection to that prefill process (bytes / bandwidth, one read at a time per connection)
//! while doing its own serial hand-off work (one request at a time per decode worker), and
//! decodes once both are over. The first KV from a prefill process waits for the connection
//! set-up (the NIXL handshake, on a background thread, one at a time: vLLM 0.9.2+
//! `_background_nixl_handshake`) without holding the hand-off. Whether it sends prefills away
//! at all is a flag its handler refreshes every 5 s from the registered prefill instances
//! (`_prefill_check_loop` of `DecodeWorkerHandler`, Dynamo
//! `components/backends/vllm/src/dynamo/vllm/handlers.py`, mid-2025): with the flag off it
//! prefills locally and counts a fallback; with it on and no live prefill instance the request
//! fails. So a dead prefill worker keeps failing requests until its lease ends AND the next
//! check — the ~12 s (not ~7.5 s) of failures the disaggregated `prefill_worker` rows show. A
//! prefill worker's death fails its remote prefills and the KV reads from it not yet done (the
//! KV goes with the process); the decode worker drops that instance until the reconcile finds
//! it registered again. When a vLLM prefill ENGINE dies, KV reads from it
//! fail: a decode worker with KV still to read from it (waiting for the read or in it)
//! loses its own engine, as vLLM 0.9.2–0.10.2's NIXL connector does not catch the error (the
//! published observation "prefill worker engine failure causes decode engine failure").

use rand_distr::{Distribution, Normal};
use sim_core::{Context, EventKey, SimDuration, SimRng, SimTime};

use crate::cluster::{Event, Sig};
use crate::discovery::client::{DiscoveryClient, RECONCILE};

/// Period of the decode handler's look at the registered prefill workers [ns] (`asyncio.sleep(5)`
/// in `_prefill_check_loop`, Dynamo vLLM `handlers.py`, mid-2025).
const PREFILL_CHECK: SimDuration = SimDuration::from_secs(5);
use crate::discovery::etcd::{notify_watchers, Etcd, EtcdEvent, Instance, WatchEvent, Watchers};
use crate::engine::{Engine, Output};
use crate::fabric::{FabricEvent, Transfer};
use crate::frontend::FrontendEvent;
use crate::k8s::kubelet::{KubeEvent, ProcessSignal};
use crate::metrics::{ReadyLine, RunLog};
use std::collections::VecDeque;
use std::sync::Arc;

use crate::processor::ProcessorEvent;
use crate::request::{Prefix, Traces};
use crate::router::service::RouterEvent;
use crate::router::{RoundRobin, RouteRequest};

/// Events handled by a worker.
#[derive(Clone, Copy, Debug)]
pub enum WorkerEvent {
    /// From the kubelet: the container started, or a signal.
    Process(ProcessSignal),
    /// Model loaded and engine built: "has been initialized"; registers and serves.
    Loaded {
        /// Container generation.
        gen: u32,
    },
    /// The engine's next step boundary.
    Wake {
        /// Container generation.
        gen: u32,
    },
    /// The idle engine starts a step (after every arrival of this instant).
    StartStep {
        /// Container generation.
        gen: u32,
    },
    /// A request from a frontend.
    Generate {
        /// Attempt id.
        attempt: u64,
        /// Frontend index.
        fe: u16,
        /// The instance the frontend meant.
        incarnation: u32,
        /// Prompt tokens.
        prompt: u32,
        /// Tokens to generate.
        output: u32,
        /// The prompt's shared prefix.
        prefix: Prefix,
        /// The processor it came through, if any.
        via: Option<u16>,
    },
    /// Cancel a request (client gone).
    Cancel {
        /// Attempt id.
        attempt: u64,
        /// The instance it was sent to.
        incarnation: u32,
    },
    /// To a prefill worker: prefill this prompt for a decode worker.
    RemotePrefill {
        /// Attempt id.
        attempt: u64,
        /// The decode worker asking.
        decode: Instance,
        /// The prefill instance meant.
        incarnation: u32,
        /// Prompt tokens.
        prompt: u32,
        /// The prompt's shared prefix.
        prefix: Prefix,
    },
    /// To a decode worker: the KV of a remote prefill has arrived.
    PrefillDone {
        /// Attempt id.
        attempt: u64,
        /// The decode incarnation that asked.
        incarnation: u32,
        /// The prefill instance that computed it.
        from: Instance,
    },
    /// To a decode worker: a remote prefill failed (the prefill worker died or was gone).
    PrefillFailed {
        /// Attempt id.
        attempt: u64,
        /// The decode incarnation that asked.
        incarnation: u32,
        /// The prefill instance it was sent to.
        from: Instance,
    },
    /// From the fabric: a decode worker's KV read of a remote prefill is over.
    ReadDone {
        /// Attempt id.
        attempt: u64,
        /// Container generation that started the read.
        gen: u32,
        /// The prefill instance read from (its connection takes the next read).
        from: Instance,
    },
    /// A decode worker's serial hand-off of a remote prefill is done.
    HandoffDone {
        /// Attempt id.
        attempt: u64,
        /// Container generation.
        gen: u32,
    },
    /// To a decode worker: the engine of prefill instance `from` died; KV reads from it fail.
    PrefillEngineLost {
        /// The prefill instance.
        from: Instance,
    },
    /// To a decode worker: the process of prefill instance `from` is gone, and the KV it
    /// held with it. Reads from it not yet done cannot finish: those requests fail (the
    /// decode engine is not taken down: the suite's `prefill_worker` rows show none).
    PrefillProcessGone {
        /// The prefill instance.
        from: Instance,
    },
    /// A standalone router restarted: send it every shared block hash the cache holds.
    DumpKv {
        /// The router.
        router: u16,
    },
    /// A discovery watch event of the prefill pool (decode workers of a disaggregated
    /// deployment).
    Watch(WatchEvent),
    /// Periodic discovery reconcile of the prefill pool.
    Reconcile {
        /// Container generation.
        gen: u32,
    },
    /// The decode handler's periodic look at the registered prefill instances.
    PrefillCheck {
        /// Container generation.
        gen: u32,
    },
    /// SIGKILL to the engine-core sub-process.
    KillEngineCore {
        /// Container generation.
        gen: u32,
    },
    /// The engine monitor polls.
    MonitorPoll {
        /// Container generation.
        gen: u32,
    },
    /// The process exits after shutting down.
    Exit {
        /// Container generation.
        gen: u32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Down,
    Loading,
    Serving,
    EngineDead,
    /// Shutting down after SIGTERM or an engine death: no longer serving, exits soon.
    Stopping,
}

/// Where a request a worker holds stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// In this worker's engine.
    Engine,
    /// A decode worker waits for its remote prefill at `Instance`.
    Prefilling(Instance),
    /// A decode worker takes in the KV computed by `Instance`.
    Ingesting(Instance),
}

/// A request a worker holds.
#[derive(Clone, Copy, Debug)]
struct Held {
    attempt: u64,
    /// The frontend (decode work) or the decode instance (prefill work) to answer.
    to: Peer,
    prompt: u32,
    output: u32,
    prefix: Prefix,
    stage: Stage,
    /// Progress of a remote prefill's intake (decode workers).
    ingest: Ingest,
}

impl Held {
    /// Whether a decode worker still has KV to read for it from prefill instance `from`
    /// (waiting for the read or in it).
    fn reading_from(&self, from: Instance) -> bool {
        self.stage == Stage::Ingesting(from) && !self.ingest.read_done
    }
}

/// The event that cancels `attempt` at worker instance `to` (its requester's stream closed).
pub(crate) fn cancel_at(to: Instance, attempt: u64) -> Event {
    let e = WorkerEvent::Cancel {
        attempt,
        incarnation: to.incarnation,
    };
    Event::Worker(to.slot, e)
}

/// How far a decode worker has taken in a remote prefill: it enters the engine once both its
/// KV read and its hand-off are over.
#[derive(Clone, Copy, Debug, Default)]
struct Ingest {
    read_started: bool,
    read_done: bool,
    handoff_done: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Peer {
    /// A frontend, answered directly or through a processor.
    Frontend(u16, Option<u16>),
    Decode(Instance),
}

/// Sends `event` to frontend `fe`, through processor `via` if the request came that way.
fn to_frontend(ctx: &mut Context<Event>, fe: u16, via: Option<u16>, event: FrontendEvent) {
    let e = match via {
        Some(p) => Event::Processor(p, ProcessorEvent::Relay { fe, event }),
        None => Event::Frontend(fe, event),
    };
    ctx.schedule_now(e);
}

/// Start-up, detection and disaggregation times of a worker.
#[derive(Clone, Copy, Debug)]
pub struct WorkerTimes {
    /// Container start to serving, mean [ns].
    pub start: SimDuration,
    /// Its standard deviation [ns].
    pub start_sd: SimDuration,
    /// Engine monitor period [ns].
    pub monitor_period: SimDuration,
    /// Whether the engine monitor runs.
    pub monitor: bool,
    /// Runtime shutdown to exit [ns].
    pub shutdown: SimDuration,
    /// KV of one prompt token [bytes].
    pub kv_bytes_per_token: f64,
    /// One prefill→decode connection's KV read rate [bytes/s].
    pub kv_bandwidth: f64,
    /// The prefill's answer (the transfer parameters) reaching the decode worker [ns].
    pub kv_setup: SimDuration,
    /// Serial decode-side work of one remote prefill, overlapping its read [ns].
    pub handoff: SimDuration,
    /// Connection set-up (the NIXL handshake) before the first read from a prefill process [ns].
    pub first_transfer: SimDuration,
    /// Whether a prefill engine's death takes down a decode engine reading KV from it.
    pub prefill_death_kills_reader: bool,
    /// Whether SIGTERM reaches the process (else it runs on until SIGKILL).
    pub sigterm_reaches_process: bool,
    /// KV block size of the engine [tokens].
    pub block_size: u32,
    /// Whether the engine's KV events go to the frontends (a KV-aware router listens), and
    /// their delivery delay on the event plane.
    pub kv_events: Option<SimDuration>,
}

/// A decode process's connection to one prefill process (one NIXL agent pair).
#[derive(Clone, Debug)]
struct Connection {
    to: Instance,
    /// When its set-up (the NIXL handshake) is done.
    ready: SimTime,
    /// Whether a KV read is on it: reads over one connection go one at a time.
    busy: bool,
    /// Attempts waiting for it, in order.
    waiting: VecDeque<u64>,
}

/// One worker process and its engine.
pub struct Worker {
    idx: u16,
    pod: u16,
    prefill_role: bool,
    gen: u32,
    phase: Phase,
    incarnation: u32,
    engine: Engine,
    held: Vec<Held>,
    wake: Option<(EventKey, SimTime)>,
    start_pending: bool,
    /// The prefill pool as a decode worker of a disaggregated deployment sees it.
    prefill: Option<DiscoveryClient>,
    /// Whether the handler sends prefills away: any prefill instance registered at its last
    /// 5-s check (`can_prefill` in Dynamo's vLLM `DecodeWorkerHandler`).
    can_prefill: bool,
    /// Remote prefills in hand-off order (the order their KV became ready to read); the
    /// first's hand-off runs once its read has started.
    handoffs: VecDeque<u64>,
    /// Whether the first of `handoffs` is in its hand-off.
    handoff_busy: bool,
    /// Prefill processes this process has set a connection up with.
    connected: Vec<Connection>,
    /// When the handshake thread is free again: handshakes run one at a time on a background
    /// thread (vLLM 0.9.2+ `_background_nixl_handshake`, `ThreadPoolExecutor(max_workers=1)`).
    handshake_free: SimTime,
    /// KV events drained from the engine, to publish.
    kv_buf: Vec<(bool, u64)>,
    /// First admissions drained from the engine, to log.
    admitted: Vec<(u64, u32, u32)>,
    times: WorkerTimes,
    watchers: Watchers,
    rng: SimRng,
    traces: Arc<Traces>,
}

impl Worker {
    /// A worker (not started) in slot `idx` (its pod is `pod`). `prefill_role` makes it a
    /// prefill worker; `disagg` gives a decode worker a prefill pool to use.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        idx: u16,
        pod: u16,
        prefill_role: bool,
        disagg: bool,
        engine: Engine,
        times: WorkerTimes,
        watchers: Watchers,
        rng: SimRng,
        traces: Arc<Traces>,
    ) -> Self {
        let prefill = (disagg && !prefill_role)
            .then(|| DiscoveryClient::new(true, Box::new(RoundRobin::default())));
        Worker {
            idx,
            pod,
            prefill_role,
            gen: 0,
            phase: Phase::Down,
            incarnation: 0,
            engine,
            held: Vec::new(),
            wake: None,
            start_pending: false,
            prefill,
            can_prefill: false,
            handoffs: VecDeque::new(),
            handoff_busy: false,
            connected: Vec::new(),
            handshake_free: SimTime::ZERO,
            kv_buf: Vec::new(),
            admitted: Vec::new(),
            times,
            watchers,
            rng,
            traces,
        }
    }

    /// The serving instance and the shared block hashes its cache holds (`None` when not
    /// serving).
    pub fn cache(&self) -> Option<(Instance, Vec<u64>)> {
        (self.phase == Phase::Serving).then(|| (self.instance(), self.engine.cached_hashes()))
    }

    /// Prompt tokens its engine prefilled and how many were prefix-cache hits.
    pub fn prefix_stats(&self) -> (u64, u64) {
        self.engine.prefix_stats()
    }

    /// Whether its endpoint is served (`/health`, and so readiness).
    pub fn serving(&self) -> bool {
        self.phase == Phase::Serving
    }

    fn instance(&self) -> Instance {
        Instance {
            slot: self.idx,
            incarnation: self.incarnation,
            prefill: self.prefill_role,
        }
    }

    fn find(&self, attempt: u64) -> Option<usize> {
        self.held.iter().position(|h| h.attempt == attempt)
    }

    /// Publishes the engine's KV events on the event plane to every frontend (their
    /// KV-aware routers), if anyone listens.
    fn publish_kv(&mut self, ctx: &mut Context<Event>) {
        let Some(delay) = self.times.kv_events else {
            return;
        };
        if self.prefill_role {
            return;
        }
        self.engine.drain_kv_events(&mut self.kv_buf);
        let from = self.instance();
        for (stored, hash) in self.kv_buf.drain(..) {
            if self.watchers.routers > 0 {
                for r in 0..self.watchers.routers {
                    ctx.schedule_in(
                        delay,
                        Event::Router(r, RouterEvent::KvEvent { from, stored, hash }),
                    );
                }
            } else {
                for fe in 0..self.watchers.frontends {
                    ctx.schedule_in(
                        delay,
                        Event::Frontend(fe, FrontendEvent::KvEvent { from, stored, hash }),
                    );
                }
            }
        }
    }

    fn sync_wake(&mut self, ctx: &mut Context<Event>, log: &mut RunLog) {
        self.publish_kv(ctx);
        self.engine.drain_admissions(&mut self.admitted);
        for (id, prompt, cached) in self.admitted.drain(..) {
            log.admitted(id, prompt, cached);
        }
        if self.engine.wants_step() && !self.start_pending {
            self.start_pending = true;
            ctx.schedule_now(Event::Worker(
                self.idx,
                WorkerEvent::StartStep { gen: self.gen },
            ));
        }
        let want = self.engine.next_wakeup();
        if self.wake.map(|w| w.1) == want {
            return;
        }
        if let Some((k, _)) = self.wake.take() {
            ctx.cancel(k);
        }
        if let Some(t) = want {
            let k = ctx.schedule_at(
                t,
                Event::Worker(self.idx, WorkerEvent::Wake { gen: self.gen }),
            );
            self.wake = Some((k, t));
        }
    }

    /// Tells whoever waits for `h` that it failed here; `gone`: because this process is
    /// going away.
    fn fail(&self, ctx: &mut Context<Event>, h: Held, gone: bool) {
        self.fail_with(ctx, h, gone, 0);
    }

    /// As [`Worker::fail`], reporting `generated` tokens already produced.
    fn fail_with(&self, ctx: &mut Context<Event>, h: Held, gone: bool, generated: u32) {
        match h.to {
            Peer::Frontend(fe, via) => {
                let e = FrontendEvent::StreamError {
                    attempt: h.attempt,
                    instance: self.instance(),
                    generated,
                    gone,
                };
                to_frontend(ctx, fe, via, e);
            }
            Peer::Decode(d) => {
                let e = WorkerEvent::PrefillFailed {
                    attempt: h.attempt,
                    incarnation: d.incarnation,
                    from: self.instance(),
                };
                ctx.schedule_now(Event::Worker(d.slot, e));
            }
        }
    }

    /// Breaks every request held (the peers see it at once) and empties the engine.
    fn drop_held(&mut self, ctx: &mut Context<Event>) {
        // What each request had generated goes with its error: a frontend migrating it asks
        // the next worker for the rest only.
        let progress: Vec<u32> = self
            .held
            .iter()
            .map(|h| self.engine.generated(h.attempt))
            .collect();
        let _ = self.engine.kill();
        self.start_pending = false;
        for (h, g) in std::mem::take(&mut self.held).into_iter().zip(progress) {
            if let Stage::Prefilling(to) = h.stage {
                // Its stream from the prefill worker breaks: that worker stops the request
                // (the requester's disconnect stops the request's context there too).
                ctx.schedule_now(cancel_at(to, h.attempt));
            }
            self.fail_with(ctx, h, true, g);
        }
        if let Some((k, _)) = self.wake.take() {
            ctx.cancel(k);
        }
    }

    /// Puts a request into the engine (local prefill, or after a remote one).
    fn admit(
        &mut self,
        ctx: &mut Context<Event>,
        i: usize,
        remote: bool,
        log: &mut RunLog,
    ) -> bool {
        let h = self.held[i];
        let now = ctx.now();
        let ok = if remote {
            self.engine
                .submit_remote(now, h.attempt, h.prompt, h.output)
        } else {
            let hashes = h.prefix.block_hashes(self.times.block_size, &self.traces);
            self.engine
                .submit_with_prefix(now, h.attempt, h.prompt, h.output, hashes)
        };
        if ok {
            self.held[i].stage = Stage::Engine;
            self.sync_wake(ctx, log);
        } else {
            let h = self.held.swap_remove(i);
            self.fail(ctx, h, false);
        }
        ok
    }

    /// Handles an event.
    pub fn handle(
        &mut self,
        ev: WorkerEvent,
        ctx: &mut Context<Event>,
        etcd: &mut Etcd,
        log: &mut RunLog,
    ) {
        match ev {
            WorkerEvent::Process(ProcessSignal::Start { gen }) => {
                self.gen = gen;
                self.phase = Phase::Loading;
                let mean = self.times.start.as_secs_f64();
                let sd = self.times.start_sd.as_secs_f64();
                let load = Normal::new(mean, sd)
                    .map_or(mean, |n| n.sample(&mut self.rng))
                    .max(0.0);
                ctx.schedule_in(
                    SimDuration::from_secs_f64(load),
                    Event::Worker(self.idx, WorkerEvent::Loaded { gen }),
                );
            }
            WorkerEvent::Loaded { gen } => {
                if gen != self.gen || self.phase != Phase::Loading {
                    return;
                }
                self.phase = Phase::Serving;
                self.incarnation += 1;
                log.ready_lines.push(ReadyLine {
                    at: ctx.now(),
                    frontend: false,
                });
                log.incarnations
                    .push((self.idx, self.incarnation, ctx.now(), None));
                let w = etcd.register(ctx.now(), self.instance());
                notify_watchers(ctx, self.watchers, w);
                if let Some(p) = &mut self.prefill {
                    p.reset(etcd);
                    ctx.schedule_in(
                        RECONCILE,
                        Event::Worker(self.idx, WorkerEvent::Reconcile { gen }),
                    );
                    // The handler's check loop starts with the handler: look now.
                    ctx.schedule_now(Event::Worker(self.idx, WorkerEvent::PrefillCheck { gen }));
                }
                if self.times.monitor {
                    ctx.schedule_in(
                        self.times.monitor_period,
                        Event::Worker(self.idx, WorkerEvent::MonitorPoll { gen }),
                    );
                }
            }
            WorkerEvent::Wake { gen } => {
                if gen != self.gen || self.phase != Phase::Serving {
                    log.zombie_work += 1;
                    return;
                }
                self.wake = None;
                let now = ctx.now();
                let me = self.instance();
                for &o in self.engine.wakeup(now) {
                    match o {
                        Output::FirstToken(id) => {
                            if !self.prefill_role {
                                log.first_token(id, now);
                            }
                        }
                        Output::Finished(id) => {
                            let Some(i) = self.held.iter().position(|h| h.attempt == id) else {
                                continue;
                            };
                            let h = self.held.swap_remove(i);
                            match h.to {
                                Peer::Frontend(fe, via) => {
                                    log.served(id, (me.slot, me.incarnation), now);
                                    to_frontend(
                                        ctx,
                                        fe,
                                        via,
                                        FrontendEvent::WorkerDone { attempt: id },
                                    );
                                }
                                Peer::Decode(d) => {
                                    // The decode worker learns where the KV is, and reads it.
                                    log.kv_transfer(id);
                                    let e = WorkerEvent::PrefillDone {
                                        attempt: id,
                                        incarnation: d.incarnation,
                                        from: me,
                                    };
                                    ctx.schedule_in(self.times.kv_setup, Event::Worker(d.slot, e));
                                }
                            }
                        }
                    }
                }
                self.engine.start_step(now);
                self.sync_wake(ctx, log);
            }
            WorkerEvent::StartStep { gen } => {
                if gen != self.gen {
                    return;
                }
                self.start_pending = false;
                if self.phase == Phase::Serving {
                    self.engine.start_step(ctx.now());
                    self.sync_wake(ctx, log);
                }
            }
            WorkerEvent::Generate {
                attempt,
                fe,
                incarnation,
                prompt,
                output,
                prefix,
                via,
            } => {
                let h = Held {
                    attempt,
                    to: Peer::Frontend(fe, via),
                    prompt,
                    output,
                    prefix,
                    stage: Stage::Engine,
                    ingest: Ingest::default(),
                };
                self.take_work(ctx, h, incarnation, log);
            }
            WorkerEvent::RemotePrefill {
                attempt,
                decode,
                incarnation,
                prompt,
                prefix,
            } => {
                let h = Held {
                    attempt,
                    to: Peer::Decode(decode),
                    prompt,
                    output: 1,
                    prefix,
                    stage: Stage::Engine,
                    ingest: Ingest::default(),
                };
                self.take_work(ctx, h, incarnation, log);
            }
            WorkerEvent::PrefillDone {
                attempt,
                incarnation,
                from,
            } => {
                if incarnation != self.incarnation || self.phase != Phase::Serving {
                    return;
                }
                let Some(i) = self.find(attempt) else { return };
                self.held[i].stage = Stage::Ingesting(from);
                self.held[i].ingest = Ingest::default();
                // The first KV from a prefill process needs the connection set up first; the
                // request waits for it without holding the hand-off, and comes back then.
                let now = ctx.now();
                let k = match self.connected.iter().position(|c| c.to == from) {
                    Some(k) => k,
                    None => {
                        let t = self.handshake_free.max(now) + self.times.first_transfer;
                        self.handshake_free = t;
                        self.connected.push(Connection {
                            to: from,
                            ready: t,
                            busy: false,
                            waiting: VecDeque::new(),
                        });
                        self.connected.len() - 1
                    }
                };
                let ready = self.connected[k].ready;
                if ready > now {
                    let e = WorkerEvent::PrefillDone {
                        attempt,
                        incarnation,
                        from,
                    };
                    ctx.schedule_at(ready, Event::Worker(self.idx, e));
                    return;
                }
                // The KV read, one at a time over this connection, and, alongside it, the
                // serial hand-off on this decode worker, one remote prefill at a time in the
                // order their KV became ready, each starting no earlier than its read.
                self.handoffs.push_back(attempt);
                let c = &mut self.connected[k];
                if c.busy {
                    c.waiting.push_back(attempt);
                } else {
                    c.busy = true;
                    self.start_read(ctx, i, from);
                }
                self.next_handoff(ctx);
            }
            WorkerEvent::ReadDone { attempt, gen, from } => {
                if gen != self.gen || self.phase != Phase::Serving {
                    return;
                }
                if let Some(i) = self.find(attempt) {
                    self.held[i].ingest.read_done = true;
                    self.try_admit(ctx, i, log);
                }
                // The connection takes its next read (of a request still held).
                let Some(k) = self.connected.iter().position(|c| c.to == from) else {
                    return;
                };
                self.connected[k].busy = false;
                while let Some(next) = self.connected[k].waiting.pop_front() {
                    if let Some(j) = self.find(next) {
                        self.connected[k].busy = true;
                        self.start_read(ctx, j, from);
                        break;
                    }
                }
                self.next_handoff(ctx);
            }
            WorkerEvent::HandoffDone { attempt, gen } => {
                if gen != self.gen || self.phase != Phase::Serving {
                    return;
                }
                self.handoff_busy = false;
                if self.handoffs.front() == Some(&attempt) {
                    self.handoffs.pop_front();
                }
                if let Some(i) = self.find(attempt) {
                    self.held[i].ingest.handoff_done = true;
                    self.try_admit(ctx, i, log);
                }
                self.next_handoff(ctx);
            }
            WorkerEvent::PrefillFailed {
                attempt,
                incarnation,
                from,
            } => {
                if incarnation != self.incarnation {
                    return;
                }
                if let Some(p) = &mut self.prefill {
                    p.report_down(from);
                }
                // The request fails with an error; this worker stays in the frontends' routers.
                if let Some(i) = self.find(attempt) {
                    let h = self.held.swap_remove(i);
                    self.fail(ctx, h, false);
                    if self.phase == Phase::Serving {
                        self.next_handoff(ctx);
                    }
                }
            }
            WorkerEvent::PrefillEngineLost { from } => {
                let reading = self.held.iter().any(|h| h.reading_from(from));
                if self.phase == Phase::Serving && reading && self.times.prefill_death_kills_reader
                {
                    self.engine_died(ctx, log);
                }
            }
            WorkerEvent::PrefillProcessGone { from } => {
                if self.phase != Phase::Serving {
                    return;
                }
                self.connected.retain(|c| c.to != from);
                let mut i = 0;
                while i < self.held.len() {
                    if self.held[i].reading_from(from) {
                        let h = self.held.swap_remove(i);
                        self.fail(ctx, h, false);
                    } else {
                        i += 1;
                    }
                }
                self.next_handoff(ctx);
            }
            WorkerEvent::DumpKv { router } => {
                if self.phase == Phase::Serving && !self.prefill_role {
                    let from = self.instance();
                    let delay = self.times.kv_events.unwrap_or(SimDuration::ZERO);
                    for hash in self.engine.cached_hashes() {
                        ctx.schedule_in(
                            delay,
                            Event::Router(
                                router,
                                RouterEvent::KvEvent {
                                    from,
                                    stored: true,
                                    hash,
                                },
                            ),
                        );
                    }
                }
            }
            WorkerEvent::Watch(w) => {
                if let (Some(p), Phase::Serving) = (&mut self.prefill, self.phase) {
                    p.watch(w);
                }
            }
            WorkerEvent::PrefillCheck { gen } => {
                if gen != self.gen || self.phase != Phase::Serving {
                    return;
                }
                if let Some(p) = &self.prefill {
                    self.can_prefill = p.any();
                }
                ctx.schedule_in(
                    PREFILL_CHECK,
                    Event::Worker(self.idx, WorkerEvent::PrefillCheck { gen }),
                );
            }
            WorkerEvent::Reconcile { gen } => {
                if gen != self.gen || self.phase != Phase::Serving {
                    return;
                }
                if let Some(p) = &mut self.prefill {
                    p.reconcile(etcd);
                }
                ctx.schedule_in(
                    RECONCILE,
                    Event::Worker(self.idx, WorkerEvent::Reconcile { gen }),
                );
            }
            WorkerEvent::Cancel {
                attempt,
                incarnation,
            } => {
                if incarnation != self.incarnation {
                    return;
                }
                if let Some(i) = self.find(attempt) {
                    let h = self.held.swap_remove(i);
                    if self.phase == Phase::Serving && h.stage == Stage::Engine {
                        self.engine.abort(ctx.now(), attempt);
                        self.sync_wake(ctx, log);
                    }
                    // It leaves the hand-off line (a read it started runs to its end).
                    if self.phase == Phase::Serving {
                        self.next_handoff(ctx);
                    }
                }
            }
            WorkerEvent::Process(ProcessSignal::Signal { gen, sig }) => {
                if gen != self.gen || self.phase == Phase::Down {
                    return;
                }
                match sig {
                    Sig::Kill => {
                        if matches!(self.phase, Phase::Serving | Phase::EngineDead) {
                            if let Some(t) = etcd.expiry_after_crash(ctx.now(), self.instance()) {
                                ctx.schedule_at(
                                    t,
                                    Event::Etcd(EtcdEvent::LeaseExpired(self.instance())),
                                );
                            }
                        }
                        self.drop_held(ctx);
                        self.exit(ctx, log);
                    }
                    Sig::Term if !self.times.sigterm_reaches_process => {}
                    Sig::Term | Sig::Int => self.shutdown(ctx, etcd, log),
                }
            }
            WorkerEvent::KillEngineCore { gen } => {
                if gen != self.gen || self.phase != Phase::Serving {
                    return;
                }
                self.engine_died(ctx, log);
                if self.prefill_role {
                    // KV reads from this engine fail now.
                    for d in 0..self.watchers.decode_workers {
                        let e = WorkerEvent::PrefillEngineLost {
                            from: self.instance(),
                        };
                        ctx.schedule_now(Event::Worker(d, e));
                    }
                }
            }
            WorkerEvent::MonitorPoll { gen } => {
                if gen != self.gen {
                    return;
                }
                match self.phase {
                    Phase::Serving => {
                        ctx.schedule_in(
                            self.times.monitor_period,
                            Event::Worker(self.idx, WorkerEvent::MonitorPoll { gen }),
                        );
                    }
                    Phase::EngineDead => self.shutdown(ctx, etcd, log),
                    _ => {}
                }
            }
            WorkerEvent::Exit { gen } => {
                if gen == self.gen && self.phase != Phase::Down {
                    self.exit(ctx, log);
                }
            }
        }
    }

    /// A request arrives for instance `incarnation` of this worker: a decode worker with a
    /// prefill pool sends the prefill away; otherwise the engine takes it.
    fn take_work(&mut self, ctx: &mut Context<Event>, h: Held, incarnation: u32, log: &mut RunLog) {
        log.picks.push((ctx.now(), self.idx, incarnation));
        match self.phase {
            Phase::Serving if incarnation == self.incarnation => {
                self.held.push(h);
                let i = self.held.len() - 1;
                let me = self.instance();
                // Remote prefill while the last check saw a prefill worker registered; local
                // prefill (the decode-only fallback) once a check saw none. Registered ones all
                // dropped after errors, or all gone since the check: the request fails ("no
                // instances").
                let req = RouteRequest {
                    id: h.attempt,
                    now: ctx.now(),
                    prompt: h.prompt,
                    output: h.output,
                    hashes: &[],
                };
                let can_prefill = self.can_prefill;
                match self
                    .prefill
                    .as_mut()
                    .map(|p| can_prefill.then(|| p.pick(&req)))
                {
                    Some(Some(Some(to))) => {
                        self.held[i].stage = Stage::Prefilling(to);
                        log.remote_prefill(h.attempt);
                        let e = WorkerEvent::RemotePrefill {
                            attempt: h.attempt,
                            decode: me,
                            incarnation: to.incarnation,
                            prompt: h.prompt,
                            prefix: h.prefix,
                        };
                        ctx.schedule_now(Event::Worker(to.slot, e));
                    }
                    Some(Some(None)) => {
                        let h = self.held.swap_remove(i);
                        self.fail(ctx, h, false);
                    }
                    Some(None) => {
                        log.fallbacks += 1;
                        self.admit(ctx, i, false, log);
                    }
                    None => {
                        self.admit(ctx, i, false, log);
                    }
                }
            }
            // A dead engine whose death nobody noticed: the request hangs.
            Phase::EngineDead if incarnation == self.incarnation && !self.times.monitor => {
                self.held.push(h);
            }
            _ => {
                // Nobody serves that instance any more ("no responders").
                let me = Instance {
                    incarnation,
                    ..self.instance()
                };
                match h.to {
                    Peer::Frontend(fe, via) => {
                        let e = FrontendEvent::StreamError {
                            attempt: h.attempt,
                            instance: me,
                            generated: 0,
                            gone: true,
                        };
                        to_frontend(ctx, fe, via, e);
                    }
                    Peer::Decode(d) => {
                        let e = WorkerEvent::PrefillFailed {
                            attempt: h.attempt,
                            incarnation: d.incarnation,
                            from: me,
                        };
                        ctx.schedule_now(Event::Worker(d.slot, e));
                    }
                }
            }
        }
    }

    /// Starts the KV read of held request `i` from prefill instance `from` on the fabric.
    fn start_read(&mut self, ctx: &mut Context<Event>, i: usize, from: Instance) {
        let h = &mut self.held[i];
        h.ingest.read_started = true;
        let per_token_ns = self.times.kv_bytes_per_token / self.times.kv_bandwidth * 1e9;
        let alone = per_token_ns * f64::from(h.prompt);
        let t = Transfer {
            reader: self.idx,
            reader_gen: self.gen,
            from,
            attempt: h.attempt,
            bytes: self.times.kv_bytes_per_token * f64::from(h.prompt),
            alone: SimDuration::from_nanos(alone.round() as u64),
        };
        ctx.schedule_now(Event::Fabric(FabricEvent::Start(t)));
    }

    /// Starts the next hand-off if none runs and the first in line has its read started;
    /// requests no longer held leave the line.
    fn next_handoff(&mut self, ctx: &mut Context<Event>) {
        if self.handoff_busy {
            return;
        }
        while let Some(&a) = self.handoffs.front() {
            match self.find(a) {
                None => {
                    self.handoffs.pop_front();
                }
                Some(i) if self.held[i].ingest.read_started => {
                    self.handoff_busy = true;
                    let e = WorkerEvent::HandoffDone {
                        attempt: a,
                        gen: self.gen,
                    };
                    ctx.schedule_in(self.times.handoff, Event::Worker(self.idx, e));
                    return;
                }
                Some(_) => return,
            }
        }
    }

    /// Admits held request `i` once its read and its hand-off are both over.
    fn try_admit(&mut self, ctx: &mut Context<Event>, i: usize, log: &mut RunLog) {
        let g = self.held[i].ingest;
        if g.read_done && g.handoff_done && matches!(self.held[i].stage, Stage::Ingesting(_)) {
            self.admit(ctx, i, true, log);
        }
    }

    /// Runtime shutdown: the lease is revoked, streams end, the process exits shortly after.
    fn shutdown(&mut self, ctx: &mut Context<Event>, etcd: &mut Etcd, log: &mut RunLog) {
        if matches!(self.phase, Phase::Serving | Phase::EngineDead) {
            if let Some(w) = etcd.remove(self.instance()) {
                log.departures.push((ctx.now(), self.idx, self.incarnation));
                notify_watchers(ctx, self.watchers, w);
            }
        }
        self.drop_held(ctx);
        self.serving_ends(ctx.now(), log);
        self.phase = Phase::Stopping;
        let gen = self.gen;
        ctx.schedule_in(
            self.times.shutdown,
            Event::Worker(self.idx, WorkerEvent::Exit { gen }),
        );
    }

    /// The engine is gone (the process lives on until the monitor or a signal ends it): it
    /// serves nothing more.
    fn engine_died(&mut self, ctx: &mut Context<Event>, log: &mut RunLog) {
        self.phase = Phase::EngineDead;
        if let Some((k, _)) = self.wake.take() {
            ctx.cancel(k);
        }
        self.serving_ends(ctx.now(), log);
    }

    /// Records the end of this incarnation's serving (its engine's death, a shutdown or the
    /// exit, whichever comes first).
    fn serving_ends(&self, now: SimTime, log: &mut RunLog) {
        if let Some(rec) = log
            .incarnations
            .iter_mut()
            .rev()
            .find(|r| r.0 == self.idx && r.1 == self.incarnation && r.3.is_none())
        {
            rec.3 = Some(now);
        }
    }

    fn exit(&mut self, ctx: &mut Context<Event>, log: &mut RunLog) {
        self.serving_ends(ctx.now(), log);
        if let Some(p) = &mut self.prefill {
            p.clear();
        }
        self.connected.clear();
        self.handshake_free = SimTime::ZERO;
        self.handoffs.clear();
        self.handoff_busy = false;
        if !self.prefill_role && self.prefill.is_some() {
            ctx.schedule_now(Event::Fabric(FabricEvent::ReaderGone { worker: self.idx }));
        }
        if self.prefill_role {
            // Its KV goes with the process: reads from it stop.
            let from = self.instance();
            ctx.schedule_now(Event::Fabric(FabricEvent::SourceGone { from }));
            for d in 0..self.watchers.decode_workers {
                ctx.schedule_now(Event::Worker(d, WorkerEvent::PrefillProcessGone { from }));
            }
        }
        self.phase = Phase::Down;
        ctx.schedule_now(Event::Kube(KubeEvent::ContainerExited {
            pod: self.pod,
            gen: self.gen,
        }));
    }
}
