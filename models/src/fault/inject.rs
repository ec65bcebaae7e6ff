//! The suite's test runner (`tests/fault_tolerance/deploy/test_deployment.py`): it deploys
//! the graph and waits until it is ready, spawns the client processes, and injects the
//! failure a fixed time after spawning them (30 s, `scenarios.py`) or after a number of
//! finished requests.
//!
//! It logs "Injecting failure for: ..." first; a process kill then finds the process with
//! `ps` and signals it through `kubectl exec`, a pod deletion first saves the pod's logs:
//! both take a moment, during which requests still finish and count as after the fault.
//! The target is the first listed pod of the role (`pods[x % num_pods]`, x = 0).

use rand::RngExt;
use sim_core::{Context, SimDuration, SimRng};

use crate::client::ClientEvent;
use crate::cluster::{Event, Sig};
use crate::frontend::FrontendEvent;
use crate::k8s::kubelet::{Kube, KubeEvent, PodRole, ProcessSignal};
use crate::metrics::RunLog;
use crate::processor::ProcessorEvent;
use crate::profile::HarnessProfile;
use crate::router::service::RouterEvent;
use crate::scenario::{DeploymentSpec, FailureAction, FailureSpec, Role, Trigger};
use crate::worker::WorkerEvent;

/// Events handled by the test runner.
#[derive(Clone, Copy, Debug)]
pub enum RunnerEvent {
    /// Create the deployment.
    Deploy,
    /// Check whether the deployment is ready.
    Poll,
    /// Log the fault line.
    Inject,
    /// Carry the fault out.
    Apply,
    /// A client process ended.
    ClientDone,
    /// A client finished a request.
    RequestDone,
}

/// The test runner.
pub struct Runner {
    harness: HarnessProfile,
    failure: FailureSpec,
    /// What the failure hits and does on this deployment.
    target: Option<(Role, FailureAction)>,
    clients: u16,
    /// Whether the load is one open-loop source rather than client processes.
    open_loop: bool,
    clients_done: u16,
    requests_done: u32,
    injected: bool,
    /// The test is over (`end`): a fault not yet carried out is not (the simulation runs on
    /// to settle in-flight messages).
    ended: bool,
    rng: SimRng,
}

impl Runner {
    /// A runner for one failure row.
    pub fn new(
        harness: HarnessProfile,
        failure: &FailureSpec,
        deployment: &DeploymentSpec,
        clients: u16,
        open_loop: bool,
        rng: SimRng,
    ) -> Self {
        Runner {
            harness,
            failure: failure.clone(),
            target: failure.kind.target_in(deployment),
            clients,
            open_loop,
            clients_done: 0,
            requests_done: 0,
            injected: false,
            ended: false,
            rng,
        }
    }

    /// The test is over (however the run stopped): a fault not yet carried out is not.
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// The `index`-th pod of the role in the API's list order (by name): the suite hits
    /// `pods[x % num_pods]` of `get_pods`.
    fn pod_slot(&self, kube: &Kube, role: Role, index: u32) -> Option<u16> {
        let mut pods = Vec::new();
        kube.list(role, &mut pods);
        pods.get(index as usize).map(|&(slot, _)| slot)
    }

    /// Handles an event; `kube` is the Kubernetes API as the runner sees it.
    pub fn handle(
        &mut self,
        ev: RunnerEvent,
        ctx: &mut Context<Event>,
        kube: &mut Kube,
        log: &mut RunLog,
    ) {
        match ev {
            RunnerEvent::Deploy => {
                log.deploy_started = ctx.now();
                for slot in 0..kube.pods().len() as u16 {
                    kube.deploy_pod(slot, ctx);
                }
                ctx.schedule_in(self.harness.ready_poll, Event::Runner(RunnerEvent::Poll));
            }
            RunnerEvent::Poll => {
                if !kube.all_ready() {
                    ctx.schedule_in(self.harness.ready_poll, Event::Runner(RunnerEvent::Poll));
                    return;
                }
                log.deploy_ready = Some(ctx.now());
                // Client processes are spawned together; each needs a moment to start.
                let spread = self.harness.client_start_spread.as_nanos();
                if self.open_loop {
                    let e = Event::Client(crate::client::open_loop::OPEN_LOOP, ClientEvent::Begin);
                    ctx.schedule_in(self.harness.client_start, e);
                }
                for c in 0..self.clients * u16::from(!self.open_loop) {
                    let jitter = self.rng.random_range(0..=2 * spread);
                    let d = SimDuration::from_nanos(
                        self.harness.client_start.as_nanos() + jitter
                            - spread.min(self.harness.client_start.as_nanos()),
                    );
                    ctx.schedule_in(d, Event::Client(c, ClientEvent::Begin));
                }
                match self.failure.trigger() {
                    _ if self.target.is_none() => {}
                    Trigger::AtSecs(s) => {
                        ctx.schedule_in(
                            SimDuration::from_secs_f64(s),
                            Event::Runner(RunnerEvent::Inject),
                        );
                    }
                    Trigger::AfterRequests(0) => {
                        ctx.schedule_now(Event::Runner(RunnerEvent::Inject));
                    }
                    Trigger::AfterRequests(_) => {}
                }
            }
            RunnerEvent::RequestDone => {
                self.requests_done += 1;
                if let Trigger::AfterRequests(n) = self.failure.trigger() {
                    if self.requests_done == n && !self.injected && self.target.is_some() {
                        ctx.schedule_now(Event::Runner(RunnerEvent::Inject));
                    }
                }
            }
            RunnerEvent::Inject => {
                if self.injected || self.ended {
                    return;
                }
                self.injected = true;
                log.fault_logged = Some(ctx.now());
                let delay = match self.target {
                    Some((_, FailureAction::DeletePod)) => self.harness.delete_delay,
                    _ => self.harness.exec_kill_delay,
                };
                ctx.schedule_in(delay, Event::Runner(RunnerEvent::Apply));
            }
            RunnerEvent::Apply => {
                let Some((role, action)) = self.target.filter(|_| !self.ended) else {
                    return;
                };
                for k in 0..self.failure.count {
                    let Some(slot) = self.pod_slot(kube, role, self.failure.index + k) else {
                        continue;
                    };
                    let pod = kube.pod(slot);
                    let gen = pod.gen;
                    match (action, pod.role) {
                        (FailureAction::DeletePod, _) => {
                            ctx.schedule_now(Event::Kube(KubeEvent::DeletePod { pod: slot }));
                        }
                        (FailureAction::KillProcess { graceful }, PodRole::Frontend(i)) => {
                            let sig = if graceful { Sig::Int } else { Sig::Kill };
                            ctx.schedule_now(Event::Frontend(
                                i,
                                FrontendEvent::Process(ProcessSignal::Signal { gen, sig }),
                            ));
                        }
                        (FailureAction::KillProcess { graceful }, PodRole::Worker(i)) => {
                            let sig = if graceful { Sig::Int } else { Sig::Kill };
                            ctx.schedule_now(Event::Worker(
                                i,
                                WorkerEvent::Process(ProcessSignal::Signal { gen, sig }),
                            ));
                        }
                        (FailureAction::KillEngineCore, PodRole::Worker(i)) => {
                            ctx.schedule_now(Event::Worker(i, WorkerEvent::KillEngineCore { gen }));
                        }
                        (FailureAction::KillProcess { .. }, PodRole::Router(i)) => {
                            let sig = Sig::Kill;
                            ctx.schedule_now(Event::Router(
                                i,
                                RouterEvent::Process(ProcessSignal::Signal { gen, sig }),
                            ));
                        }
                        (FailureAction::KillProcess { .. }, PodRole::Processor(i)) => {
                            let sig = Sig::Kill;
                            ctx.schedule_now(Event::Processor(
                                i,
                                ProcessorEvent::Process(ProcessSignal::Signal { gen, sig }),
                            ));
                        }
                        (
                            FailureAction::KillEngineCore,
                            PodRole::Frontend(_) | PodRole::Router(_) | PodRole::Processor(_),
                        )
                        | (FailureAction::NoEffect, _) => {}
                    }
                }
            }
            RunnerEvent::ClientDone => {
                self.clients_done += 1;
                if self.clients_done == self.clients {
                    ctx.stop();
                }
            }
        }
    }
}
