//! The processor of Dynamo's older graph (frontend → processor → router → workers; DEP
//! scenario 4): requests and their responses pass through it, so its death breaks the
//! streams it carries. The workers then cancel those requests (the client side of their
//! stream is gone) but keep their KV blocks cached; the frontends restart the requests
//! through another processor when migration allows, or fail them.

use sim_core::{Context, SimDuration};

use crate::cluster::{Event, Sig};
use crate::discovery::etcd::Instance;
use crate::frontend::FrontendEvent;
use crate::k8s::kubelet::{KubeEvent, ProcessSignal};
use crate::metrics::{ReadyLine, RunLog};
use crate::request::Prefix;
use crate::worker::{cancel_at, WorkerEvent};

/// Events handled by a processor.
#[derive(Clone, Copy, Debug)]
pub enum ProcessorEvent {
    /// From the kubelet: the container started, or a signal.
    Process(ProcessSignal),
    /// Start-up done: serving.
    Up {
        /// Container generation.
        gen: u32,
    },
    /// A frontend hands it a request for worker `to`.
    Forward {
        /// Attempt id.
        attempt: u64,
        /// The frontend.
        fe: u16,
        /// The worker instance chosen.
        to: Instance,
        /// Prompt tokens.
        prompt: u32,
        /// Tokens to generate.
        output: u32,
        /// The prompt's shared prefix.
        prefix: Prefix,
    },
    /// The frontend closed the stream of `attempt` (its client went, or it died): the
    /// processor closes its own to the worker, which cancels the request.
    Cancel {
        /// Attempt id.
        attempt: u64,
    },
    /// A worker's answer on its way back to frontend `fe`.
    Relay {
        /// The frontend.
        fe: u16,
        /// The answer.
        event: FrontendEvent,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Down,
    Starting,
    Serving,
}

/// One processor process.
pub struct Processor {
    idx: u16,
    pod: u16,
    gen: u32,
    phase: Phase,
    start: SimDuration,
    /// Requests it carries: (attempt, frontend, worker).
    carried: Vec<(u64, u16, Instance)>,
}

impl Processor {
    /// Processor `idx` in pod slot `pod`, up `start` after its container starts.
    pub fn new(idx: u16, pod: u16, start: SimDuration) -> Self {
        Processor {
            idx,
            pod,
            gen: 0,
            phase: Phase::Down,
            start,
            carried: Vec::new(),
        }
    }

    /// Whether it serves (`/health`, and so readiness).
    pub fn serving(&self) -> bool {
        self.phase == Phase::Serving
    }

    /// Handles an event.
    pub fn handle(&mut self, ev: ProcessorEvent, ctx: &mut Context<Event>, log: &mut RunLog) {
        match ev {
            ProcessorEvent::Process(ProcessSignal::Start { gen }) => {
                self.gen = gen;
                self.phase = Phase::Starting;
                ctx.schedule_in(
                    self.start,
                    Event::Processor(self.idx, ProcessorEvent::Up { gen }),
                );
            }
            ProcessorEvent::Process(ProcessSignal::Signal { gen, sig }) => {
                if gen != self.gen || self.phase == Phase::Down || sig == Sig::Term {
                    return; // SIGTERM does not reach it (`/bin/sh -c` PID 1)
                }
                self.phase = Phase::Down;
                for (attempt, fe, to) in self.carried.drain(..) {
                    let lost = FrontendEvent::ProcessorLost {
                        attempt,
                        processor: self.idx,
                    };
                    ctx.schedule_now(Event::Frontend(fe, lost));
                    ctx.schedule_now(cancel_at(to, attempt));
                }
                ctx.schedule_now(Event::Kube(KubeEvent::ContainerExited {
                    pod: self.pod,
                    gen: self.gen,
                }));
            }
            ProcessorEvent::Up { gen } => {
                if gen == self.gen && self.phase == Phase::Starting {
                    self.phase = Phase::Serving;
                    log.ready_lines.push(ReadyLine {
                        at: ctx.now(),
                        frontend: true,
                    });
                }
            }
            ProcessorEvent::Forward {
                attempt,
                fe,
                to,
                prompt,
                output,
                prefix,
            } => {
                if self.phase != Phase::Serving {
                    // Nobody answers on its endpoint.
                    let lost = FrontendEvent::ProcessorLost {
                        attempt,
                        processor: self.idx,
                    };
                    ctx.schedule_now(Event::Frontend(fe, lost));
                    return;
                }
                self.carried.push((attempt, fe, to));
                let e = WorkerEvent::Generate {
                    attempt,
                    fe,
                    incarnation: to.incarnation,
                    prompt,
                    output,
                    prefix,
                    via: Some(self.idx),
                };
                ctx.schedule_now(Event::Worker(to.slot, e));
            }
            ProcessorEvent::Cancel { attempt } => {
                if let Some(i) = self.carried.iter().position(|c| c.0 == attempt) {
                    let (_, _, to) = self.carried.swap_remove(i);
                    ctx.schedule_now(cancel_at(to, attempt));
                }
            }
            ProcessorEvent::Relay { fe, event } => {
                if self.phase != Phase::Serving {
                    return;
                }
                let attempt = match event {
                    FrontendEvent::WorkerDone { attempt }
                    | FrontendEvent::StreamError { attempt, .. } => attempt,
                    _ => return,
                };
                if let Some(i) = self.carried.iter().position(|c| c.0 == attempt) {
                    self.carried.swap_remove(i);
                    ctx.schedule_now(Event::Frontend(fe, event));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use sim_core::{Limits, Model, SimTime, Simulation};

    use super::*;

    /// A processor alone; what it sends to workers and frontends is recorded.
    struct Bench {
        p: Processor,
        log: RunLog,
        sent: Vec<Event>,
    }

    impl Model for Bench {
        type Event = Event;
        fn handle(&mut self, ev: Event, ctx: &mut Context<Event>) {
            match ev {
                Event::Processor(_, e) => self.p.handle(e, ctx, &mut self.log),
                other => self.sent.push(other),
            }
        }
    }

    #[test]
    fn a_request_its_frontend_drops_is_cancelled_at_the_worker_and_forgotten() {
        let mut sim = Simulation::new(Bench {
            p: Processor::new(0, 0, SimDuration::ZERO),
            log: RunLog::default(),
            sent: Vec::new(),
        });
        let to = Instance {
            slot: 3,
            incarnation: 1,
            prefill: false,
        };
        let at = |ms| SimTime::ZERO + SimDuration::from_millis(ms);
        let p = |e| Event::Processor(0, e);
        sim.schedule_at(
            at(0),
            p(ProcessorEvent::Process(ProcessSignal::Start { gen: 1 })),
        );
        let forward = |attempt| ProcessorEvent::Forward {
            attempt,
            fe: 0,
            to,
            prompt: 10,
            output: 10,
            prefix: Prefix::None,
        };
        sim.schedule_at(at(1), p(forward(7)));
        sim.schedule_at(at(1), p(forward(8)));
        sim.schedule_at(at(2), p(ProcessorEvent::Cancel { attempt: 7 }));
        sim.run(Limits::default());
        let b = sim.into_model();
        let cancels: Vec<u64> = b
            .sent
            .iter()
            .filter_map(|e| match e {
                Event::Worker(3, WorkerEvent::Cancel { attempt, .. }) => Some(*attempt),
                _ => None,
            })
            .collect();
        assert_eq!(
            cancels,
            [7],
            "the dropped request is cancelled at its worker"
        );
        let carried: Vec<u64> = b.p.carried.iter().map(|c| c.0).collect();
        assert_eq!(carried, [8], "and no longer carried");
    }
}
