//! A Dynamo worker process (`dynamo.vllm` and its engine-core sub-process) in one worker pod:
//! model load, registration in etcd under a lease, serving through the batching engine, and
//! the ways it dies.
//!
//! - SIGKILL of the main process: the container exits; its lease expires TTL after the last
//!   keep-alive; streams in flight break at once (the frontend sees "stream ended").
//! - SIGTERM (pod deletion): Dynamo's graceful shutdown revokes the lease at once and, for
//!   decode workers, drops in-flight requests (`graceful_shutdown=False` in the vLLM worker's
//!   `main.py`, mid-2025), then exits.
//! - Engine-core death: the engine stops; the engine monitor notices at its next poll
//!   (every 2 s, `engine_monitor.py`), shuts the runtime down (lease revoked, streams ended)
//!   and exits 1 so Kubernetes restarts the container. Without the monitor (older releases)
//!   requests hang until the client's timeout and the instance stays registered.

use rand_distr::{Distribution, Normal};
use sim_core::{Context, EventKey, SimDuration, SimRng, SimTime};

use crate::cluster::{Event, Sig};
use crate::discovery::etcd::{notify_watchers, Etcd, EtcdEvent, Instance};
use crate::engine::{Engine, Output};
use crate::frontend::FrontendEvent;
use crate::k8s::kubelet::{KubeEvent, ProcessSignal};
use crate::metrics::{ReadyLine, RunLog};

/// Tells frontend `fe` that `instance`'s stream for `attempt` broke.
fn stream_error(ctx: &mut Context<Event>, fe: u16, attempt: u64, instance: Instance) {
    let e = FrontendEvent::StreamError {
        attempt,
        instance,
        generated: 0,
    };
    ctx.schedule_now(Event::Frontend(fe, e));
}

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
    },
    /// Cancel a request (client gone).
    Cancel {
        /// Attempt id.
        attempt: u64,
        /// The instance it was sent to.
        incarnation: u32,
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

/// Start-up and detection times of a worker.
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
    /// Watch delivery delay [ns].
    pub watch_delay: SimDuration,
    /// Runtime shutdown to exit [ns].
    pub shutdown: SimDuration,
}

/// One worker process and its engine.
pub struct Worker {
    idx: u16,
    pod: u16,
    gen: u32,
    phase: Phase,
    incarnation: u32,
    started_at: SimTime,
    engine: Engine,
    inflight: Vec<(u64, u16)>,
    wake: Option<(EventKey, SimTime)>,
    start_pending: bool,
    times: WorkerTimes,
    frontends: u16,
    rng: SimRng,
}

impl Worker {
    /// A worker (not started) for worker index `idx` in pod slot `pod`.
    pub fn new(
        idx: u16,
        pod: u16,
        engine: Engine,
        times: WorkerTimes,
        frontends: u16,
        rng: SimRng,
    ) -> Self {
        Worker {
            idx,
            pod,
            gen: 0,
            phase: Phase::Down,
            incarnation: 0,
            started_at: SimTime::ZERO,
            engine,
            inflight: Vec::new(),
            wake: None,
            start_pending: false,
            times,
            frontends,
            rng,
        }
    }

    /// Whether its endpoint is served (`/health`, and so readiness).
    pub fn serving(&self) -> bool {
        self.phase == Phase::Serving
    }

    fn instance(&self) -> Instance {
        Instance {
            slot: self.idx,
            incarnation: self.incarnation,
        }
    }

    fn sync_wake(&mut self, ctx: &mut Context<Event>) {
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

    /// Breaks every stream in flight (the frontends see it at once) and empties the engine.
    fn drop_inflight(&mut self, ctx: &mut Context<Event>) {
        let instance = self.instance();
        let _ = self.engine.kill();
        self.start_pending = false;
        for (attempt, fe) in self.inflight.drain(..) {
            stream_error(ctx, fe, attempt, instance);
        }
        if let Some((k, _)) = self.wake.take() {
            ctx.cancel(k);
        }
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
                self.started_at = ctx.now();
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
                notify_watchers(ctx, self.frontends, self.times.watch_delay, w);
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
                let inst = self.instance();
                for &o in self.engine.wakeup(now) {
                    match o {
                        Output::FirstToken(id) => log.first_token(id, now),
                        Output::Finished(id) => {
                            if let Some(i) = self.inflight.iter().position(|x| x.0 == id) {
                                let (attempt, fe) = self.inflight.swap_remove(i);
                                log.served(attempt, (inst.slot, inst.incarnation), now);
                                ctx.schedule_now(Event::Frontend(
                                    fe,
                                    FrontendEvent::WorkerDone { attempt },
                                ));
                            }
                        }
                    }
                }
                self.engine.start_step(now);
                self.sync_wake(ctx);
            }
            WorkerEvent::StartStep { gen } => {
                if gen != self.gen {
                    return;
                }
                self.start_pending = false;
                if self.phase == Phase::Serving {
                    self.engine.start_step(ctx.now());
                    self.sync_wake(ctx);
                }
            }
            WorkerEvent::Generate {
                attempt,
                fe,
                incarnation,
                prompt,
                output,
            } => {
                match self.phase {
                    Phase::Serving
                        if incarnation == self.incarnation
                            && self.engine.submit(ctx.now(), attempt, prompt, output) =>
                    {
                        self.inflight.push((attempt, fe));
                        self.sync_wake(ctx);
                        return;
                    }
                    // A dead engine whose death nobody noticed: the request hangs.
                    Phase::EngineDead if incarnation == self.incarnation && !self.times.monitor => {
                        self.inflight.push((attempt, fe));
                        return;
                    }
                    _ => {}
                }
                // Nobody serves that instance any more ("no responders").
                let instance = Instance {
                    slot: self.idx,
                    incarnation,
                };
                stream_error(ctx, fe, attempt, instance);
            }
            WorkerEvent::Cancel {
                attempt,
                incarnation,
            } => {
                if incarnation == self.incarnation {
                    if let Some(i) = self.inflight.iter().position(|x| x.0 == attempt) {
                        self.inflight.swap_remove(i);
                        if self.phase == Phase::Serving {
                            self.engine.abort(ctx.now(), attempt);
                            self.sync_wake(ctx);
                        }
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
                        self.drop_inflight(ctx);
                        self.exit(ctx, log);
                    }
                    Sig::Term | Sig::Int => self.shutdown(ctx, etcd),
                }
            }
            WorkerEvent::KillEngineCore { gen } => {
                if gen != self.gen || self.phase != Phase::Serving {
                    return;
                }
                self.phase = Phase::EngineDead;
                if let Some((k, _)) = self.wake.take() {
                    ctx.cancel(k);
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
                    Phase::EngineDead => self.shutdown(ctx, etcd),
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

    /// Runtime shutdown: the lease is revoked, streams end, the process exits shortly after.
    fn shutdown(&mut self, ctx: &mut Context<Event>, etcd: &mut Etcd) {
        if matches!(self.phase, Phase::Serving | Phase::EngineDead) {
            if let Some(w) = etcd.remove(self.instance()) {
                notify_watchers(ctx, self.frontends, self.times.watch_delay, w);
            }
        }
        self.drop_inflight(ctx);
        self.phase = Phase::Stopping;
        let gen = self.gen;
        ctx.schedule_in(
            self.times.shutdown,
            Event::Worker(self.idx, WorkerEvent::Exit { gen }),
        );
    }

    fn exit(&mut self, ctx: &mut Context<Event>, log: &mut RunLog) {
        if let Some(rec) = log
            .incarnations
            .iter_mut()
            .rev()
            .find(|r| r.0 == self.idx && r.1 == self.incarnation && r.3.is_none())
        {
            rec.3 = Some(ctx.now());
        }
        self.phase = Phase::Down;
        ctx.schedule_now(Event::Kube(KubeEvent::ContainerExited {
            pod: self.pod,
            gen: self.gen,
        }));
    }
}
