//! Pods of one deployment and the kubelet's handling of them: container start and restart with
//! back-off, readiness probing, force deletion and replacement.
//!
//! Readiness (kubelet `pkg/kubelet/prober/worker.go`, `prober_manager.go`): each pod has a
//! probe worker, started when `SyncPod` first registers the pod (`probeManager.AddPod`, just
//! before the runtime creates the sandbox and container), that probes at once and then every
//! period on one ticker kept for the pod's life — a restarted container does not reset it. A
//! new container resets readiness to false, and probes are skipped while
//! `int32(time.Since(StartedAt).Seconds()) < initialDelaySeconds`, where `StartedAt` is the
//! status manager's copy, truncated to whole seconds (`status_manager.go` `normalizeStatus`,
//! `Rfc3339Copy`). While a container is not ready, every pod sync triggers a probe at once
//! (`UpdatePodStatus`, kubelet 1.21 and later, PR #97126).
//! Pods sync on container events and again after the resync interval (1 min, jittered up to
//! 1.5 min). This is what makes a restarted Dynamo frontend (60 s initial delay, 60 s period)
//! stay out of the clients' Ready list for one to one and a half minutes although its process
//! is back in ~3 s — the hundreds of failures of the `frontend` rows with one frontend. A
//! replacement pod's ticker starts a fraction of a second before its container, so its tick at
//! 60 s passes the truncated initial-delay check when the container started in the same
//! wall-clock second as the worker (a third of the time with the profile's 0.3–1 s sandbox
//! start): replacement pods are often Ready
//! ~60 s after creation, restarted containers ~75 s after the restart on average.
//!
//! At a deployment's first start the kubelet registers each pod (its probe workers start)
//! before it pulls the image, so the frontend's 60 s ticker runs from ~1 s after the
//! deployment is applied: the suite's startup rows cluster at 181–182 s, a tick, with the
//! earlier ones (161–175 s) probes triggered by pod syncs once the workers had registered.
//! The same ticker, kept across a later restart, then keeps its phase to the test's clock.

use rand::RngExt;
use sim_core::{Context, SimDuration, SimRng, SimTime};

use crate::cluster::{Event, Sig};
use crate::metrics::RunLog;
use crate::profile::{KubeProfile, ProbeSpec};
use crate::scenario::Role;

const NS_PER_S: u64 = 1_000_000_000;

/// Events handled by the kubelet (and the API server's pod registry).
#[derive(Clone, Copy, Debug)]
pub enum KubeEvent {
    /// The pod's container is created and started.
    ContainerStart {
        /// Pod slot.
        pod: u16,
        /// Pod incarnation.
        uid: u32,
    },
    /// The container's main process exited.
    ContainerExited {
        /// Pod slot.
        pod: u16,
        /// Container generation.
        gen: u32,
    },
    /// PLEG relist noticed the exit.
    ExitNoticed {
        /// Pod slot.
        pod: u16,
        /// Container generation.
        gen: u32,
    },
    /// Periodic probe tick of the pod's probe worker.
    ProbeTick {
        /// Pod slot.
        pod: u16,
        /// Pod incarnation.
        uid: u32,
    },
    /// Periodic pod resync.
    Resync {
        /// Pod slot.
        pod: u16,
        /// Sync sequence number (older ones are stale).
        sync: u32,
    },
    /// A probe runs against the process.
    ProbeStart {
        /// Pod slot.
        pod: u16,
        /// Container generation.
        gen: u32,
    },
    /// A probe's result arrives.
    ProbeDone {
        /// Pod slot.
        pod: u16,
        /// Container generation.
        gen: u32,
        /// Whether the probe passed.
        ok: bool,
    },
    /// Force-delete the pod (grace period 0).
    DeletePod {
        /// Pod slot.
        pod: u16,
    },
    /// The minimum grace of a force-deleted pod's container is over: SIGKILL.
    GraceOver {
        /// Pod slot.
        pod: u16,
        /// Container generation.
        gen: u32,
    },
}

/// Which process a pod runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodRole {
    /// A frontend (index among frontends).
    Frontend(u16),
    /// A worker (index among workers).
    Worker(u16),
    /// A standalone router (index among routers).
    Router(u16),
    /// A processor (index among processors).
    Processor(u16),
}

/// One pod slot of the deployment (a replica); `uid` changes when the pod is replaced.
#[derive(Clone, Debug)]
pub struct Pod {
    /// What it runs.
    pub role: PodRole,
    /// Its deployment role (frontend, decode or prefill), as the pods are labelled.
    pub kind: Role,
    /// Incarnation of the pod in this slot (a replacement pod has a new one).
    pub uid: u32,
    /// Whether the API server lists it.
    pub exists: bool,
    /// Container generation (global to the slot, so that a replacement's container differs).
    pub gen: u32,
    /// Whether the container is running.
    pub running: bool,
    /// When the current container started.
    pub started_at: SimTime,
    /// The pod's Ready condition.
    pub ready: bool,
    /// Restarts of the container in this pod.
    pub restarts: u32,
    created: SimTime,
    name_key: u32,
    sync: u32,
    /// The container being killed after a deletion (its generation), if any.
    terminating: Option<u32>,
}

/// The pods of the deployment.
pub struct Kube {
    cfg: KubeProfile,
    pods: Vec<Pod>,
    rng: SimRng,
    /// Wall-clock time of simulated time zero within its second: where the whole seconds
    /// that `StartedAt` is truncated to fall [ns].
    wall_phase: u64,
}

impl Kube {
    /// Pods for `roles`, none created yet; simulated time zero is `clock_offset` into a
    /// wall-clock second.
    pub fn new(
        cfg: KubeProfile,
        roles: &[(PodRole, Role)],
        rng: SimRng,
        clock_offset: SimDuration,
    ) -> Self {
        let pods = roles
            .iter()
            .map(|&(role, kind)| Pod {
                role,
                kind,
                uid: 0,
                exists: false,
                gen: 0,
                running: false,
                started_at: SimTime::ZERO,
                ready: false,
                restarts: 0,
                created: SimTime::ZERO,
                name_key: 0,
                sync: 0,
                terminating: None,
            })
            .collect();
        Kube {
            cfg,
            pods,
            rng,
            wall_phase: clock_offset.as_nanos(),
        }
    }

    /// All pod slots.
    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    /// The pod in a slot.
    pub fn pod(&self, slot: u16) -> &Pod {
        &self.pods[slot as usize]
    }

    /// Sort key of a pod's name (pods get a random suffix), for listing order.
    pub fn name_key(&self, slot: u16, uid: u32) -> (u32, u16, u32) {
        (self.pods[slot as usize].name_key, slot, uid)
    }

    /// The existing pods of a deployment role, as the API server lists them (by name):
    /// (slot, uid).
    pub fn list(&self, kind: Role, out: &mut Vec<(u16, u32)>) {
        out.clear();
        for (slot, pod) in self.pods.iter().enumerate() {
            if pod.exists && pod.kind == kind {
                out.push((slot as u16, pod.uid));
            }
        }
        out.sort_by_key(|&(slot, uid)| self.name_key(slot, uid));
    }

    /// Whether every pod is Ready.
    pub fn all_ready(&self) -> bool {
        self.pods.iter().all(|p| p.exists && p.ready)
    }

    fn probe_spec(&self, pod: u16) -> &ProbeSpec {
        match self.pods[pod as usize].role {
            PodRole::Frontend(_) => &self.cfg.frontend_readiness,
            PodRole::Worker(_) | PodRole::Router(_) | PodRole::Processor(_) => {
                &self.cfg.worker_readiness
            }
        }
    }

    /// Creates the pod in `slot` (a new incarnation) whose container starts after `delay`.
    pub fn create_pod(&mut self, slot: u16, delay: SimDuration, ctx: &mut Context<Event>) {
        let sandbox = SimDuration::from_nanos(self.rng.random_range(
            self.cfg.sandbox_start_min.as_nanos()..=self.cfg.sandbox_start_max.as_nanos(),
        ));
        // The probe worker starts when `SyncPod` registers the pod, just before the sandbox
        // (the image is cached).
        let worker_start =
            SimDuration::from_nanos(delay.as_nanos().saturating_sub(sandbox.as_nanos()));
        self.create(slot, worker_start, delay, ctx);
    }

    /// Creates the deployment's pod in `slot` at the start of a test: the kubelet registers
    /// it (its probe workers start) `first_pod_register` after the deployment is applied,
    /// then pulls the image and starts the container, `first_pod_create` after it.
    pub fn deploy_pod(&mut self, slot: u16, ctx: &mut Context<Event>) {
        let register = self.cfg.first_pod_register.min(self.cfg.first_pod_create);
        self.create(slot, register, self.cfg.first_pod_create, ctx);
    }

    /// A pod whose probe workers start in `worker_start` and whose container starts in
    /// `delay`.
    fn create(
        &mut self,
        slot: u16,
        worker_start: SimDuration,
        delay: SimDuration,
        ctx: &mut Context<Event>,
    ) {
        let now = ctx.now();
        let period = self.probe_spec(slot).period;
        let key = self.rng.random();
        let p = &mut self.pods[slot as usize];
        p.uid += 1;
        p.exists = true;
        p.running = false;
        p.ready = false;
        p.restarts = 0;
        p.created = now;
        p.name_key = key;
        let uid = p.uid;
        ctx.schedule_in(
            delay,
            Event::Kube(KubeEvent::ContainerStart { pod: slot, uid }),
        );
        // The probe worker probes at once (nothing to probe yet) and then every period
        // (`worker.go` `run`).
        ctx.schedule_in(
            worker_start + period,
            Event::Kube(KubeEvent::ProbeTick { pod: slot, uid }),
        );
        self.sync(slot, ctx);
    }

    /// A pod sync: triggers a readiness probe of a not-ready running container
    /// (`prober_manager.go` `UpdatePodStatus`) and re-arms the resync timer.
    fn sync(&mut self, slot: u16, ctx: &mut Context<Event>) {
        self.maybe_probe(slot, ctx);
        let jitter = 1.0 + self.rng.random::<f64>() * self.cfg.resync_jitter;
        let delay = SimDuration::from_secs_f64(self.cfg.resync.as_secs_f64() * jitter);
        let p = &mut self.pods[slot as usize];
        p.sync += 1;
        let sync = p.sync;
        ctx.schedule_in(delay, Event::Kube(KubeEvent::Resync { pod: slot, sync }));
    }

    fn maybe_probe(&mut self, slot: u16, ctx: &mut Context<Event>) {
        let spec = self.probe_spec(slot).clone();
        let p = &self.pods[slot as usize];
        // `worker.go` `doProbe`: nothing before the container runs or within the initial
        // delay, counted in whole seconds from `StartedAt` truncated to its wall-clock second.
        let wall = |t: SimTime| t.as_nanos() + self.wall_phase;
        let started = wall(p.started_at) / NS_PER_S * NS_PER_S;
        let since = wall(ctx.now()).saturating_sub(started) / NS_PER_S;
        if !p.exists || !p.running || p.ready || since < spec.initial_delay.as_nanos() / NS_PER_S {
            return;
        }
        let gen = p.gen;
        ctx.schedule_in(
            spec.latency,
            Event::Kube(KubeEvent::ProbeStart { pod: slot, gen }),
        );
    }

    /// Handles a kubelet event. `healthy(role)` answers a probe against the process now.
    pub fn handle(
        &mut self,
        ev: KubeEvent,
        ctx: &mut Context<Event>,
        log: &mut RunLog,
        healthy: impl Fn(PodRole) -> bool,
    ) {
        match ev {
            KubeEvent::ContainerStart { pod, uid } => {
                let p = &mut self.pods[pod as usize];
                if !p.exists || p.uid != uid || p.running {
                    return;
                }
                p.gen += 1;
                p.running = true;
                p.ready = false;
                p.started_at = ctx.now();
                let (gen, role) = (p.gen, p.role);
                ctx.schedule_now(process_event(role, ProcessSignal::Start { gen }));
                self.sync(pod, ctx);
            }
            KubeEvent::ContainerExited { pod, gen } => {
                let p = &self.pods[pod as usize];
                if p.gen != gen || !p.running {
                    return;
                }
                // PLEG relists every second.
                let d = SimDuration::from_nanos(
                    self.rng
                        .random_range(0..=self.cfg.exit_to_not_ready.as_nanos()),
                );
                ctx.schedule_in(d, Event::Kube(KubeEvent::ExitNoticed { pod, gen }));
            }
            KubeEvent::ExitNoticed { pod, gen } => {
                let p = &mut self.pods[pod as usize];
                if p.gen != gen || !p.running {
                    return;
                }
                p.running = false;
                p.ready = false;
                if p.terminating == Some(gen) || !p.exists {
                    return; // a deleted pod's container is not restarted
                }
                // First restart immediately, then 10 s doubling (kubelet `doBackOff`).
                let backoff = if p.restarts == 0 {
                    SimDuration::ZERO
                } else {
                    let k = (p.restarts - 1).min(16);
                    SimDuration::from_nanos(
                        (self.cfg.restart_backoff.as_nanos() << k)
                            .min(self.cfg.restart_backoff_cap.as_nanos()),
                    )
                };
                p.restarts += 1;
                let uid = p.uid;
                ctx.schedule_in(
                    backoff + self.cfg.container_restart,
                    Event::Kube(KubeEvent::ContainerStart { pod, uid }),
                );
                self.sync(pod, ctx);
            }
            KubeEvent::ProbeTick { pod, uid } => {
                let p = &self.pods[pod as usize];
                if !p.exists || p.uid != uid {
                    return;
                }
                self.maybe_probe(pod, ctx);
                let period = self.probe_spec(pod).period;
                ctx.schedule_in(period, Event::Kube(KubeEvent::ProbeTick { pod, uid }));
            }
            KubeEvent::Resync { pod, sync } => {
                if self.pods[pod as usize].sync == sync && self.pods[pod as usize].exists {
                    self.sync(pod, ctx);
                }
            }
            KubeEvent::ProbeStart { pod, gen } => {
                let p = &self.pods[pod as usize];
                if p.gen != gen || !p.running {
                    return;
                }
                let ok = healthy(p.role);
                ctx.schedule_now(Event::Kube(KubeEvent::ProbeDone { pod, gen, ok }));
            }
            KubeEvent::ProbeDone { pod, gen, ok } => {
                let p = &mut self.pods[pod as usize];
                if p.gen == gen && p.running && p.exists && ok && !p.ready {
                    p.ready = true;
                    log.pods_ready.push((ctx.now(), pod));
                }
            }
            KubeEvent::DeletePod { pod } => {
                let p = &mut self.pods[pod as usize];
                if !p.exists {
                    return;
                }
                // The API server forgets the pod at once; its container gets SIGTERM and,
                // after the kubelet's minimum grace, SIGKILL.
                p.exists = false;
                p.ready = false;
                let (gen, role) = (p.gen, p.role);
                if p.running {
                    p.terminating = Some(gen);
                    ctx.schedule_now(process_event(
                        role,
                        ProcessSignal::Signal {
                            gen,
                            sig: Sig::Term,
                        },
                    ));
                    ctx.schedule_in(
                        self.cfg.force_delete_grace,
                        Event::Kube(KubeEvent::GraceOver { pod, gen }),
                    );
                }
                // The ReplicaSet replaces it. dynsim keeps one process per slot, so the
                // replacement's container starts no earlier than the old one is killed (the
                // suite's replacement takes longer than the 2 s grace anyway).
                let delay = self.cfg.pod_create.max(self.cfg.force_delete_grace);
                self.create_pod(pod, delay, ctx);
            }
            KubeEvent::GraceOver { pod, gen } => {
                let role = self.pods[pod as usize].role;
                ctx.schedule_now(process_event(
                    role,
                    ProcessSignal::Signal {
                        gen,
                        sig: Sig::Kill,
                    },
                ));
            }
        }
    }
}

/// Lifecycle messages from the kubelet to a pod's process.
#[derive(Clone, Copy, Debug)]
pub enum ProcessSignal {
    /// A container started: the process begins.
    Start {
        /// Container generation.
        gen: u32,
    },
    /// A signal to the container's process.
    Signal {
        /// Container generation.
        gen: u32,
        /// Which signal.
        sig: Sig,
    },
}

fn process_event(role: PodRole, s: ProcessSignal) -> Event {
    match role {
        PodRole::Frontend(i) => Event::Frontend(i, crate::frontend::FrontendEvent::Process(s)),
        PodRole::Worker(i) => Event::Worker(i, crate::worker::WorkerEvent::Process(s)),
        PodRole::Router(i) => Event::Router(i, crate::router::service::RouterEvent::Process(s)),
        PodRole::Processor(i) => Event::Processor(i, crate::processor::ProcessorEvent::Process(s)),
    }
}
