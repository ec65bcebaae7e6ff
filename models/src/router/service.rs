//! The standalone KV router (DEP scenario 3, REQ 7): a process of its own, in its own pod,
//! that the frontends ask where each request goes. It watches the decode pool, keeps the
//! workers' cached blocks from their KV events, and counts the active blocks of what it
//! routed. When it dies the frontends get no answer and fall back to round-robin; when it
//! comes back its view is empty and it rebuilds it by asking every worker for the blocks its
//! cache holds.

use sim_core::{Context, SimDuration};

use crate::cluster::{Event, Sig};
use crate::discovery::client::DiscoveryClient;
use crate::discovery::etcd::{Etcd, Instance, WatchEvent};
use crate::frontend::FrontendEvent;
use crate::k8s::kubelet::{KubeEvent, ProcessSignal};
use crate::metrics::{ReadyLine, RunLog};
use std::sync::Arc;

use crate::request::{Prefix, Traces};
use crate::router::RouteRequest;
use crate::worker::WorkerEvent;

/// Events handled by a standalone router.
#[derive(Clone, Copy, Debug)]
pub enum RouterEvent {
    /// From the kubelet: the container started, or a signal.
    Process(ProcessSignal),
    /// Start-up done: serving, discovery read, workers asked for their caches.
    Up {
        /// Container generation.
        gen: u32,
    },
    /// A frontend asks where a request goes.
    Route {
        /// Attempt id.
        attempt: u64,
        /// The asking frontend.
        fe: u16,
        /// Prompt tokens.
        prompt: u32,
        /// Tokens to generate.
        output: u32,
        /// The prompt's shared prefix.
        prefix: Prefix,
    },
    /// A request it routed ended.
    Ended {
        /// Where it went.
        instance: Instance,
        /// Which attempt.
        attempt: u64,
    },
    /// A KV event from a worker's engine (or its cache dump after a restart).
    KvEvent {
        /// The worker instance.
        from: Instance,
        /// Stored (else removed).
        stored: bool,
        /// The block's hash.
        hash: u64,
    },
    /// A discovery watch event of the decode pool.
    Watch(WatchEvent),
    /// Replica sync: another replica sent a request to `instance` (`routed`) or saw it end.
    Peer {
        /// Where the request went.
        instance: Instance,
        /// Which request.
        id: u64,
        /// Sent, with its prompt and output tokens; `None`: ended.
        sent: Option<(u32, u32)>,
    },
}

/// How router replicas share their active-block state (Dynamo `--router-replica-sync`: each
/// replica publishes the requests it routes and their ends on the event plane, so every
/// replica's decode-block counts cover the whole fleet's load; the prefix trees need no sync —
/// every replica receives the same KV events).
#[derive(Clone, Copy, Debug)]
pub struct ReplicaSync {
    /// Router replicas in the deployment.
    pub replicas: u16,
    /// Event-plane delay of one sync message [ns].
    pub delay: SimDuration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Down,
    Starting,
    Serving,
}

/// One standalone router process.
pub struct RouterService {
    idx: u16,
    pod: u16,
    gen: u32,
    phase: Phase,
    workers: DiscoveryClient,
    start: SimDuration,
    block_size: u32,
    decode_workers: u16,
    new_router: Box<dyn FnMut() -> DiscoveryClient>,
    traces: Arc<Traces>,
    /// Replica sync, when on.
    sync: Option<ReplicaSync>,
}

impl RouterService {
    /// Router `idx` in pod slot `pod`; `new_router` makes a fresh (empty) view for each start.
    pub fn new(
        idx: u16,
        pod: u16,
        start: SimDuration,
        block_size: u32,
        decode_workers: u16,
        mut new_router: Box<dyn FnMut() -> DiscoveryClient>,
        traces: Arc<Traces>,
    ) -> Self {
        RouterService {
            idx,
            pod,
            gen: 0,
            phase: Phase::Down,
            workers: new_router(),
            start,
            block_size,
            decode_workers,
            new_router,
            traces,
            sync: None,
        }
    }

    /// Shares its routing decisions with the other replicas.
    pub fn with_sync(mut self, sync: ReplicaSync) -> Self {
        self.sync = Some(sync);
        self
    }

    /// Tells the other replicas of a request sent (or ended).
    fn publish(
        &self,
        ctx: &mut Context<Event>,
        instance: Instance,
        id: u64,
        sent: Option<(u32, u32)>,
    ) {
        let Some(s) = self.sync else { return };
        for r in (0..s.replicas).filter(|&r| r != self.idx) {
            let e = RouterEvent::Peer { instance, id, sent };
            ctx.schedule_in(s.delay, Event::Router(r, e));
        }
    }

    /// Its view of the workers' caches.
    pub fn kv_view(&self) -> Vec<(Instance, Vec<u64>)> {
        if self.phase == Phase::Serving {
            self.workers.view()
        } else {
            Vec::new()
        }
    }

    /// Whether it answers (`/health`, and so readiness).
    pub fn serving(&self) -> bool {
        self.phase == Phase::Serving
    }

    /// Handles an event.
    pub fn handle(
        &mut self,
        ev: RouterEvent,
        ctx: &mut Context<Event>,
        etcd: &Etcd,
        log: &mut RunLog,
    ) {
        match ev {
            RouterEvent::Process(ProcessSignal::Start { gen }) => {
                self.gen = gen;
                self.phase = Phase::Starting;
                self.workers = (self.new_router)();
                ctx.schedule_in(self.start, Event::Router(self.idx, RouterEvent::Up { gen }));
            }
            RouterEvent::Process(ProcessSignal::Signal { gen, sig }) => {
                if gen != self.gen || self.phase == Phase::Down || sig == Sig::Term {
                    return; // SIGTERM does not reach it (`/bin/sh -c` PID 1)
                }
                self.phase = Phase::Down;
                self.workers.clear();
                ctx.schedule_now(Event::Kube(KubeEvent::ContainerExited {
                    pod: self.pod,
                    gen: self.gen,
                }));
            }
            RouterEvent::Up { gen } => {
                if gen != self.gen || self.phase != Phase::Starting {
                    return;
                }
                self.phase = Phase::Serving;
                self.workers.reset(etcd);
                log.ready_lines.push(ReadyLine {
                    at: ctx.now(),
                    frontend: true,
                });
                // Rebuild the view from the workers' caches.
                for w in 0..self.decode_workers {
                    ctx.schedule_now(Event::Worker(w, WorkerEvent::DumpKv { router: self.idx }));
                }
            }
            RouterEvent::Route {
                attempt,
                fe,
                prompt,
                output,
                prefix,
            } => {
                let answer = if self.phase == Phase::Serving {
                    let hashes = prefix.block_hashes(self.block_size, &self.traces);
                    let req = RouteRequest {
                        id: attempt,
                        now: ctx.now(),
                        prompt,
                        output,
                        hashes: &hashes,
                    };
                    let to = self.workers.pick(&req);
                    if let Some(i) = to {
                        self.publish(ctx, i, attempt, Some((prompt, output)));
                    }
                    FrontendEvent::Routed { attempt, to }
                } else {
                    FrontendEvent::RouteFailed { attempt } // no responders
                };
                ctx.schedule_now(Event::Frontend(fe, answer));
            }
            RouterEvent::Ended { instance, attempt } => {
                if self.phase == Phase::Serving {
                    self.workers.ended(instance, attempt);
                    self.publish(ctx, instance, attempt, None);
                }
            }
            RouterEvent::KvEvent { from, stored, hash } => {
                if self.phase == Phase::Serving {
                    self.workers.kv_event(from, stored, hash);
                }
            }
            RouterEvent::Watch(w) => {
                if self.phase == Phase::Serving {
                    self.workers.watch(w);
                }
            }
            RouterEvent::Peer { instance, id, sent } => {
                if self.phase != Phase::Serving {
                    return;
                }
                match sent {
                    Some((prompt, output)) => {
                        let req = RouteRequest {
                            id,
                            now: ctx.now(),
                            prompt,
                            output,
                            hashes: &[],
                        };
                        self.workers.routed(instance, &req);
                    }
                    None => self.workers.ended(instance, id),
                }
            }
        }
    }
}
