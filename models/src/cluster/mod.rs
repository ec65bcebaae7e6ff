//! One simulated run: a deployment of the scenario under one failure row and one seed.
//!
//! The world owns the components and routes each event to its owner. Components talk only
//! through events; where a component asks another for information the real system answers
//! by a call (the client's Kubernetes API calls, the kubelet's probes, a frontend reading
//! etcd), the handler gets a read-only view of the answering component at that instant.

use std::hash::{Hash, Hasher};

use rand::RngExt;
use sim_core::{
    Context, Limits, Model, RngStreams, SimDuration, SimTime, Simulation, StableHasher, StopReason,
    TraceWord,
};

use std::sync::Arc;

use crate::client::open_loop::{OpenLoop, OPEN_LOOP};
use crate::client::{Client, ClientEvent, ClientParams};
use crate::discovery::client::DiscoveryClient;
use crate::discovery::etcd::{notify_watchers, Etcd, EtcdEvent, Instance, Watchers};
use crate::engine::Engine;
use crate::fabric::{Fabric, FabricEvent};
use crate::fault::inject::Runner;
pub use crate::fault::inject::RunnerEvent;
use crate::frontend::{Frontend, FrontendEvent, FrontendTimes, Upstream};
use crate::k8s::kubelet::{Kube, KubeEvent, PodRole};
use crate::metrics::{RowMetrics, RunLog};
use crate::processor::{Processor, ProcessorEvent};
use crate::profile::Profile;
use crate::request::Traces;
use crate::router::kv::{KvRouter, APPROX_TTL};
use crate::router::power_of_two::PowerOfTwo;
use crate::router::service::{ReplicaSync, RouterEvent, RouterService};
use crate::router::{Random, RoundRobin, Router};
use crate::scenario::{Backend, DeploymentSpec, FailureSpec, Load, Role, RouterMode, Scenario};
use crate::worker::{Worker, WorkerEvent, WorkerTimes};

/// A signal sent to a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sig {
    /// SIGINT.
    Int,
    /// SIGTERM.
    Term,
    /// SIGKILL.
    Kill,
}

/// Every event of the world, addressed to its component.
#[derive(Clone, Copy, Debug)]
pub enum Event {
    /// The test runner (deployment, client spawn, fault injection).
    Runner(RunnerEvent),
    /// The kubelet and API server.
    Kube(KubeEvent),
    /// Frontend `i`.
    Frontend(u16, FrontendEvent),
    /// Worker `i`.
    Worker(u16, WorkerEvent),
    /// etcd.
    Etcd(EtcdEvent),
    /// Client `i`.
    Client(u16, ClientEvent),
    /// Standalone router `i`.
    Router(u16, RouterEvent),
    /// Processor `i`.
    Processor(u16, ProcessorEvent),
    /// The network KV transfers cross.
    Fabric(FabricEvent),
}

impl TraceWord for Event {
    fn trace_word(&self) -> u64 {
        // Component kind and index, and the variant of its event: enough to tell two runs
        // apart, cheap, and with no floating-point payload in it.
        let mut h = StableHasher::default();
        match self {
            Event::Runner(e) => (1u8, 0u16, std::mem::discriminant(e)).hash(&mut h),
            Event::Kube(e) => (2u8, 0u16, std::mem::discriminant(e)).hash(&mut h),
            Event::Frontend(i, e) => (3u8, *i, std::mem::discriminant(e)).hash(&mut h),
            Event::Worker(i, e) => (4u8, *i, std::mem::discriminant(e)).hash(&mut h),
            Event::Etcd(e) => (5u8, 0u16, std::mem::discriminant(e)).hash(&mut h),
            Event::Client(i, e) => (6u8, *i, std::mem::discriminant(e)).hash(&mut h),
            Event::Router(i, e) => (7u8, *i, std::mem::discriminant(e)).hash(&mut h),
            Event::Processor(i, e) => (8u8, *i, std::mem::discriminant(e)).hash(&mut h),
            Event::Fabric(e) => (9u8, 0u16, std::mem::discriminant(e)).hash(&mut h),
        }
        h.finish()
    }
}

/// The simulated world of one run.
pub struct World {
    runner: Runner,
    kube: Kube,
    frontends: Vec<Frontend>,
    workers: Vec<Worker>,
    etcd: Etcd,
    clients: Vec<Client>,
    open_loop: Option<OpenLoop>,
    routers: Vec<RouterService>,
    processors: Vec<Processor>,
    fabric: Fabric,
    log: RunLog,
    watchers: Watchers,
}

impl Model for World {
    type Event = Event;

    fn handle(&mut self, ev: Event, ctx: &mut Context<Event>) {
        match ev {
            Event::Runner(e) => self.runner.handle(e, ctx, &mut self.kube, &mut self.log),
            Event::Kube(e) => {
                let (frontends, workers, routers, processors) = (
                    &self.frontends,
                    &self.workers,
                    &self.routers,
                    &self.processors,
                );
                self.kube.handle(e, ctx, &mut self.log, |role| match role {
                    PodRole::Frontend(i) => frontends[i as usize].healthy(),
                    PodRole::Worker(i) => workers[i as usize].serving(),
                    PodRole::Router(i) => routers[i as usize].serving(),
                    PodRole::Processor(i) => processors[i as usize].serving(),
                });
            }
            Event::Frontend(i, e) => {
                self.frontends[i as usize].handle(e, ctx, &self.etcd, &mut self.log)
            }
            Event::Worker(i, e) => {
                self.workers[i as usize].handle(e, ctx, &mut self.etcd, &mut self.log)
            }
            Event::Router(i, e) => {
                self.routers[i as usize].handle(e, ctx, &self.etcd, &mut self.log)
            }
            Event::Processor(i, e) => self.processors[i as usize].handle(e, ctx, &mut self.log),
            Event::Fabric(e) => self.fabric.handle(e, ctx),
            Event::Etcd(EtcdEvent::LeaseExpired(inst)) => {
                if let Some(w) = self.etcd.remove(inst) {
                    self.log
                        .departures
                        .push((ctx.now(), inst.slot, inst.incarnation));
                    notify_watchers(ctx, self.watchers, w);
                }
            }
            Event::Client(OPEN_LOOP, e) => {
                let frontends = &self.frontends;
                if let Some(o) = &mut self.open_loop {
                    o.handle(
                        e,
                        ctx,
                        &self.kube,
                        |fe| frontends[fe as usize].listening(),
                        &mut self.log,
                    );
                }
            }
            Event::Client(i, e) => {
                let frontends = &self.frontends;
                self.clients[i as usize].handle(
                    e,
                    ctx,
                    &self.kube,
                    |fe| frontends[fe as usize].listening(),
                    &mut self.log,
                )
            }
        }
    }
}

impl World {
    /// Hashes some KV router believes a worker holds that it does not (a dead worker's view
    /// stays until it leaves discovery; after that it must be gone).
    fn kv_view_errors(&self) -> u64 {
        let caches: Vec<(Instance, Vec<u64>)> =
            self.workers.iter().filter_map(Worker::cache).collect();
        let views = self
            .frontends
            .iter()
            .map(Frontend::kv_view)
            .chain(self.routers.iter().map(RouterService::kv_view));
        let mut errors = 0u64;
        for view in views {
            for (inst, hashes) in view {
                match caches.iter().find(|c| c.0 == inst) {
                    Some((_, held)) => {
                        errors += hashes
                            .iter()
                            .filter(|h| held.binary_search(h).is_err())
                            .count() as u64
                    }
                    None if self.etcd.instances().any(|i| i == inst) => {} // death not detected yet
                    None => errors += hashes.len() as u64,
                }
            }
        }
        errors
    }
}

/// What one run produced.
pub struct RunOutput {
    /// The parsed row.
    pub metrics: RowMetrics,
    /// The raw log (attempts, ready lines).
    pub log: RunLog,
    /// Events processed.
    pub events: u64,
    /// Rolling hash of the processed events.
    pub trace_hash: u64,
    /// Simulated time at the end [s].
    pub sim_end_s: f64,
    /// Why the run stopped.
    pub stop: StopReason,
    /// Whether every processed event's time was at or after the previous one's.
    pub time_monotonic: bool,
    /// After the run, with the KV events in flight delivered: block hashes a KV router
    /// believes a worker caches that the worker does not hold (or believes of a worker that
    /// is gone). Must be 0.
    pub kv_view_errors: u64,
}

/// Runs `deployment` of `scenario` under `failure` with `seed`.
pub fn run(
    scenario: &Scenario,
    deployment: &DeploymentSpec,
    failure: &FailureSpec,
    seed: u64,
) -> RunOutput {
    let profile = scenario
        .profile()
        .expect("profile validated with the scenario");
    run_with(&profile, scenario, deployment, failure, seed)
}

/// Runs `deployment` of `scenario` under `failure` with `seed` on `profile` instead of the
/// scenario's built-in one (to study a hardware parameter).
pub fn run_with(
    profile: &Profile,
    scenario: &Scenario,
    deployment: &DeploymentSpec,
    failure: &FailureSpec,
    seed: u64,
) -> RunOutput {
    let streams = RngStreams::new(seed);
    let n_fe = deployment.frontend_count() as u16;
    let n_decode = deployment.dp as u16;
    let n_prefill = deployment.prefill_count() as u16;
    let n_w = n_decode + n_prefill;
    let n_routers = deployment.routers as u16;
    let n_proc = deployment.processors as u16;
    // Pods: frontends, then decode workers, then prefill workers (worker slot i has pod
    // n_fe + i).
    let roles: Vec<(PodRole, Role)> = (0..n_fe)
        .map(|i| (PodRole::Frontend(i), Role::Frontend))
        .chain((0..n_w).map(|i| {
            (
                PodRole::Worker(i),
                if i < n_decode {
                    Role::Decode
                } else {
                    Role::Prefill
                },
            )
        }))
        .chain((0..n_routers).map(|i| (PodRole::Router(i), Role::Router)))
        .chain((0..n_proc).map(|i| (PodRole::Processor(i), Role::Processor)))
        .collect();
    // One wall clock for the harness's 1-s timestamps and the kubelet's truncated `StartedAt`
    // (NTP-synced machines).
    let clock_offset = SimDuration::from_nanos(
        streams
            .stream("harness/clock")
            .random_range(0..1_000_000_000),
    );
    // etcd's lessor ticker started with etcd, long before the run: a random phase.
    let check = profile.process.lease_check.as_nanos();
    let lessor_phase = SimDuration::from_nanos(if check == 0 {
        0
    } else {
        streams.stream("etcd/lessor").random_range(0..check)
    });
    let kube = Kube::new(
        profile.kube.clone(),
        &roles,
        streams.stream("kube"),
        clock_offset,
    );
    let fe_times = FrontendTimes {
        start: profile.process.frontend_start,
        sigint_exit: profile.process.frontend_sigint_exit,
        error_answer: profile.harness.error_answer,
        response: profile.harness.request_overhead,
        watch_delay: profile.process.watch_delay,
        block_size: profile.engine.block_size,
    };
    let traces = match &scenario.load {
        Load::Trace(t) => t.data.blocks.clone(),
        Load::Harness(_) => Arc::new(Traces::default()),
    };
    let router_mode = deployment.router_mode(&scenario.policies);
    let frontends = (0..n_fe)
        .map(|i| {
            let rng = streams.stream(&format!("router/{i}"));
            let router: Box<dyn Router> = match router_mode {
                RouterMode::RoundRobin => Box::new(RoundRobin::default()),
                RouterMode::Random => Box::new(Random::new(rng)),
                RouterMode::PowerOfTwo => Box::new(PowerOfTwo::new(rng)),
                // With standalone routers the frontend's own router is the fallback.
                RouterMode::Kv if n_routers > 0 => Box::new(RoundRobin::default()),
                RouterMode::Kv => Box::new(kv_router(
                    profile.engine.block_size,
                    &scenario.policies,
                    rng,
                )),
            };
            let upstream = Upstream {
                routers: n_routers,
                processors: n_proc,
                migration_limit: scenario.policies.migration_limit,
            };
            Frontend::new(i, i, router, upstream, fe_times, traces.clone())
        })
        .collect();
    let d = &profile.disagg;
    let w_times = WorkerTimes {
        start: profile.process.worker_start,
        start_sd: profile.process.worker_start_sd,
        monitor_period: profile.process.engine_monitor_period,
        // Only Dynamo's vLLM worker watches its engine process (`engine_monitor.py`).
        monitor: scenario.policies.engine_monitor && deployment.backend == Backend::Vllm,
        shutdown: profile.process.worker_shutdown,
        kv_bytes_per_token: d.kv_bytes_per_token,
        kv_bandwidth: d.kv_bandwidth,
        kv_setup: d.kv_setup,
        handoff: d.handoff,
        first_transfer: d.first_transfer,
        // vLLM 0.9–0.10's NIXL connector: an uncaught `check_xfer_state` error on a read from a
        // dead prefill engine kills the decode engine. Not SGLang's.
        prefill_death_kills_reader: d.prefill_death_kills_reader
            && deployment.backend == Backend::Vllm,
        sigterm_reaches_process: profile.process.sigterm_reaches_process,
        block_size: profile.engine.block_size,
        kv_events: (router_mode == RouterMode::Kv && scenario.policies.kv_events)
            .then_some(profile.process.kv_event_delay),
    };
    let watchers = Watchers {
        frontends: n_fe,
        decode_workers: n_decode,
        routers: n_routers,
        delay: profile.process.watch_delay,
    };
    let routers = (0..n_routers)
        .map(|i| {
            let (bs, policies) = (profile.engine.block_size, scenario.policies.clone());
            let mut starts = 0u32;
            // Each start of the process begins with an empty view and its own stream.
            let new_view = move || {
                starts += 1;
                let rng = RngStreams::new(seed).stream(&format!("router-service/{i}/{starts}"));
                DiscoveryClient::new(false, Box::new(kv_router(bs, &policies, rng)))
            };
            let service = RouterService::new(
                i,
                n_fe + n_w + i,
                profile.process.frontend_start,
                bs,
                n_decode,
                Box::new(new_view),
                traces.clone(),
            );
            if scenario.policies.router_replica_sync {
                service.with_sync(ReplicaSync {
                    replicas: n_routers,
                    delay: profile.process.kv_event_delay,
                })
            } else {
                service
            }
        })
        .collect();
    let disagg = n_prefill > 0;
    let workers = (0..n_w)
        .map(|i| {
            let prefill = i >= n_decode;
            let tp = if prefill {
                deployment.prefill_tp()
            } else {
                deployment.tp
            };
            let engine = Engine::new(profile.engine.clone(), profile.timing.with_tp(tp));
            let rng = streams.stream(&format!("worker/{i}"));
            Worker::new(
                i,
                n_fe + i,
                prefill,
                disagg,
                engine,
                w_times,
                watchers,
                rng,
                traces.clone(),
            )
        })
        .collect();
    let (clients, open_loop, n_clients) = match &scenario.load {
        Load::Harness(h) => {
            let params = ClientParams {
                requests: h.requests_per_client,
                input_tokens: h.input_tokens,
                output_tokens: h.output_tokens,
                attempts: h.attempts,
                timeout: SimDuration::from_secs_f64(h.attempt_timeout_s),
                retry_sleep: SimDuration::from_secs_f64(h.retry_sleep_s),
                min_period: SimDuration::from_secs_f64(1.0 / h.max_request_rate),
                pod_list: profile.harness.pod_list,
                pod_get: profile.harness.pod_get,
                api_read_fraction: profile.harness.api_read_fraction,
                forward_open: profile.harness.port_forward_open,
                refused: profile.harness.refused,
                tunnel: profile.harness.tunnel,
                error_back: profile.harness.error_answer,
                report_requests: failure.after_requests.is_some(),
                min_content_chars: h.min_content_chars,
                prefix: (h.prefix_tokens > 0).then_some((h.prefix_groups, h.prefix_tokens)),
            };
            let clients: Vec<Client> = (0..h.clients as u16)
                .map(|i| Client::new(i, params, streams.stream(&format!("client/{i}"))))
                .collect();
            (clients, None, h.clients as u16)
        }
        Load::Trace(t) => {
            let timeout = SimDuration::from_secs_f64(t.timeout_s);
            let source = OpenLoop::new(
                t.data.clone(),
                t.speedup,
                timeout,
                profile.harness.refused,
                failure.after_requests.is_some(),
            );
            (Vec::new(), Some(source), 1)
        }
    };
    let log = RunLog {
        clock_offset,
        ..RunLog::default()
    };
    let runner = Runner::new(
        profile.harness.clone(),
        failure,
        deployment,
        n_clients,
        open_loop.is_some(),
        streams.stream("harness/clients"),
    );
    let world = World {
        runner,
        kube,
        frontends,
        workers,
        etcd: Etcd::new(
            profile.process.lease_ttl,
            profile.process.lease_keepalive,
            profile.process.lease_check,
            lessor_phase,
        ),
        clients,
        open_loop,
        routers,
        processors: (0..n_proc)
            .map(|i| {
                Processor::new(
                    i,
                    n_fe + n_w + n_routers + i,
                    profile.process.frontend_start,
                )
            })
            .collect(),
        fabric: Fabric::star(deployment.worker_hosts(), d.nic_bandwidth),
        log,
        watchers,
    };
    let mut sim = Simulation::new(world);
    sim.schedule_at(SimTime::ZERO, Event::Runner(RunnerEvent::Deploy));
    let limits = Limits {
        until: SimTime::ZERO + SimDuration::from_secs_f64(scenario.max_sim_s),
        max_events: u64::MAX,
    };
    let (mut last, mut monotonic) = (SimTime::ZERO, true);
    let stop = sim.run_observed(limits, |t, _| {
        monotonic &= t >= last;
        last = t;
    });
    let events = sim.events_processed();
    let trace_hash = sim.trace_hash().value();
    let sim_end_s = sim.now().as_secs_f64();
    let mut metrics = sim.model().log.parse(scenario.sla_s);
    let (prompt, cached) = sim
        .model()
        .workers
        .iter()
        .map(Worker::prefix_stats)
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    metrics.prefix_hit_rate = (prompt > 0).then(|| cached as f64 / prompt as f64);
    let log = sim.model().log.clone();
    // Deliver the KV events still in flight and let the leases of dead workers run out, then
    // compare every KV router's view with the workers' caches. The results above are fixed
    // before this, and the test is over: nothing more is injected.
    sim.model_mut().runner.end();
    let until = sim.now() + profile.process.lease_ttl + SimDuration::from_secs(1);
    sim.run(Limits {
        until,
        max_events: u64::MAX,
    });
    let kv_view_errors = sim.model().kv_view_errors();
    RunOutput {
        metrics,
        log,
        events,
        trace_hash,
        sim_end_s,
        stop,
        time_monotonic: monotonic,
        kv_view_errors,
    }
}

/// A KV router as the policies ask for: event-driven, or predicting (`kv_events: false`).
fn kv_router(
    block_size: u32,
    policies: &crate::scenario::Policies,
    rng: sim_core::SimRng,
) -> KvRouter {
    let r = KvRouter::new(
        block_size,
        policies.kv_overlap_weight,
        policies.kv_temperature,
        rng,
    );
    if policies.kv_events {
        r
    } else {
        r.approximate(APPROX_TTL)
    }
}
