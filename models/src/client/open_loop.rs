//! Open-loop traffic: a replayed trace's requests are sent at their timestamps, whatever
//! the answers, to a Ready frontend pod chosen round-robin (a Kubernetes Service spreads
//! connections over its Ready endpoints). Arrivals are generated lazily: handling one
//! arrival schedules the next.

use std::sync::Arc;

use sim_core::{Context, EventKey, SimDuration, SimTime};

use crate::client::ClientEvent;
use crate::cluster::{Event, RunnerEvent};
use crate::frontend::FrontendEvent;
use crate::k8s::kubelet::{Kube, PodRole};
use crate::metrics::{Outcome, RunLog};
use crate::request::Prefix;
use crate::scenario::trace::TraceData;
use crate::scenario::Role;

/// The client id frontends answer the open-loop source on.
pub const OPEN_LOOP: u16 = u16::MAX;

/// The open-loop source.
pub struct OpenLoop {
    trace: Arc<TraceData>,
    speedup: f64,
    timeout: SimDuration,
    instant_fail: SimDuration,
    start: SimTime,
    next: usize,
    rr: usize,
    /// Attempts in flight: (attempt id, its timeout, the frontend it went to).
    inflight: Vec<(u64, EventKey, Option<u16>)>,
    listed: Vec<(u16, u32)>,
    done: bool,
    /// Whether the runner counts finished requests (for `after_requests` triggers).
    report_requests: bool,
}

impl OpenLoop {
    /// A source replaying `trace` at `speedup`; `report_requests` tells the runner of each
    /// finished request.
    pub fn new(
        trace: Arc<TraceData>,
        speedup: f64,
        timeout: SimDuration,
        instant_fail: SimDuration,
        report_requests: bool,
    ) -> Self {
        OpenLoop {
            trace,
            speedup,
            timeout,
            instant_fail,
            start: SimTime::ZERO,
            next: 0,
            rr: 0,
            inflight: Vec::new(),
            listed: Vec::new(),
            done: false,
            report_requests,
        }
    }

    fn arrival(&self, i: usize) -> SimTime {
        self.start + SimDuration::from_secs_f64(self.trace.timestamps_ms[i] / 1000.0 / self.speedup)
    }

    fn maybe_done(&mut self, ctx: &mut Context<Event>) {
        if !self.done && self.next >= self.trace.input.len() && self.inflight.is_empty() {
            self.done = true;
            ctx.schedule_now(Event::Runner(RunnerEvent::ClientDone));
        }
    }

    /// Handles an event addressed to the open-loop source: `Begin` starts the replay (the
    /// trace's time zero), `Slept` is an arrival, `Answer`/`Timeout` end an attempt.
    pub fn handle(
        &mut self,
        ev: ClientEvent,
        ctx: &mut Context<Event>,
        kube: &Kube,
        listening: impl Fn(u16) -> bool,
        log: &mut RunLog,
    ) {
        match ev {
            ClientEvent::Begin => {
                self.start = ctx.now();
                if !self.trace.input.is_empty() {
                    ctx.schedule_at(
                        self.arrival(0),
                        Event::Client(OPEN_LOOP, ClientEvent::Slept),
                    );
                }
            }
            ClientEvent::Slept => {
                let i = self.next;
                self.next += 1;
                if self.next < self.trace.input.len() {
                    ctx.schedule_at(
                        self.arrival(self.next),
                        Event::Client(OPEN_LOOP, ClientEvent::Slept),
                    );
                }
                self.send(ctx, i, kube, &listening, log);
            }
            ClientEvent::Answer { attempt, outcome } => self.end(ctx, attempt, outcome, log),
            ClientEvent::Timeout { attempt } => {
                // The connection is closed: the frontend cancels the request downstream, as
                // for the suite's client.
                if let Some(&(_, _, Some(fe))) = self.inflight.iter().find(|x| x.0 == attempt) {
                    ctx.schedule_now(Event::Frontend(fe, FrontendEvent::ClientGone { attempt }));
                }
                self.end(ctx, attempt, Outcome::Timeout, log)
            }
            _ => {}
        }
    }

    fn send(
        &mut self,
        ctx: &mut Context<Event>,
        i: usize,
        kube: &Kube,
        listening: &impl Fn(u16) -> bool,
        log: &mut RunLog,
    ) {
        let (prompt, output) = (self.trace.input[i], self.trace.output[i]);
        let id = log.open_attempt(0, i as u32, 0, ctx.now(), output);
        let timeout = ctx.schedule_in(
            self.timeout,
            Event::Client(OPEN_LOOP, ClientEvent::Timeout { attempt: id }),
        );
        kube.list(Role::Frontend, &mut self.listed);
        self.listed
            .retain(|&(slot, _)| kube.pod(slot).ready && kube.pod(slot).running);
        let target = (!self.listed.is_empty()).then(|| {
            self.rr = self.rr.wrapping_add(1);
            self.listed[self.rr % self.listed.len()].0
        });
        let fe = target.and_then(|slot| match kube.pod(slot).role {
            PodRole::Frontend(fe) if listening(fe) => Some(fe),
            _ => None,
        });
        self.inflight.push((id, timeout, fe));
        match fe {
            Some(fe) => {
                let prefix = Prefix::Trace { index: i as u32 };
                let e = FrontendEvent::Http {
                    attempt: id,
                    client: OPEN_LOOP,
                    prompt,
                    output,
                    prefix,
                };
                ctx.schedule_now(Event::Frontend(fe, e));
            }
            None => {
                let e = ClientEvent::Answer {
                    attempt: id,
                    outcome: Outcome::NoFrontend,
                };
                ctx.schedule_in(self.instant_fail, Event::Client(OPEN_LOOP, e));
            }
        }
    }

    fn end(&mut self, ctx: &mut Context<Event>, attempt: u64, outcome: Outcome, log: &mut RunLog) {
        let Some(k) = self.inflight.iter().position(|x| x.0 == attempt) else {
            return;
        };
        let (_, timeout, _) = self.inflight.swap_remove(k);
        ctx.cancel(timeout);
        log.close_attempt(attempt, ctx.now(), outcome);
        log.attempts[attempt as usize].logged = ctx.now();
        if self.report_requests {
            ctx.schedule_now(Event::Runner(RunnerEvent::RequestDone));
        }
        self.maybe_done(ctx);
    }
}
