//! The fault-tolerance suite's client process (`tests/fault_tolerance/deploy/client.py`,
//! mid-2025; `model-facts.md` §1): closed-loop, one request at a time.
//!
//! Before every request it lists the frontend pods, refreshes each (`pod.ready()`, a GET per
//! pod: Ready and ContainersReady), stops the cached port-forward of any pod seen not ready, and
//! picks `ready[i % len(ready)]` by request index. A pod without a cached forward gets a new
//! one (0.5 s back-off, then a checked HEAD; three tries). No Ready pod, or no forward, sends the
//! request to `localhost:0`: it fails at once. Each attempt has a 30 s timeout and is followed,
//! if it failed, by a 1 s sleep; a request is padded to `1 / max_request_rate`. A pod that
//! vanishes between the list and its refresh raises kr8s' NotFoundError, which the loop does
//! not catch: that client ends early (the 270 requests missing from agg-tp-1-dp-1
//! `frontend_pod`).

use rand::RngExt;
use sim_core::{Context, EventKey, SimDuration, SimRng};

use crate::cluster::{Event, RunnerEvent};
use crate::frontend::FrontendEvent;
use crate::k8s::kubelet::{Kube, PodRole};
use crate::metrics::{Outcome, RunLog};
use crate::request::Prefix;

/// Events handled by a client.
#[derive(Clone, Copy, Debug)]
pub enum ClientEvent {
    /// Start the next request (list the frontend pods).
    Begin,
    /// The pod list came back.
    Listed,
    /// The API server reads the `k`-th listed pod for its refresh.
    Got {
        /// Index in the listing.
        k: u16,
    },
    /// The last refresh came back: choose a pod.
    Checked,
    /// A port-forward's HEAD check, try `n`.
    Forward {
        /// Try number (0-based).
        n: u8,
    },
    /// A frontend's answer.
    Answer {
        /// Attempt id.
        attempt: u64,
        /// How it ended.
        outcome: Outcome,
    },
    /// The attempt's timeout.
    Timeout {
        /// Attempt id.
        attempt: u64,
    },
    /// The sleep after a failed attempt is over.
    Slept,
    /// The rate-limit padding is over.
    Padded,
}

/// The client's load and environment.
#[derive(Clone, Copy, Debug)]
pub struct ClientParams {
    /// Requests to make.
    pub requests: u32,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Output tokens.
    pub output_tokens: u32,
    /// Attempts per request.
    pub attempts: u32,
    /// Per-attempt timeout [ns].
    pub timeout: SimDuration,
    /// Sleep after a failed attempt [ns].
    pub retry_sleep: SimDuration,
    /// Minimum request period [ns].
    pub min_period: SimDuration,
    /// Pod list call [ns].
    pub pod_list: SimDuration,
    /// Pod refresh call [ns].
    pub pod_get: SimDuration,
    /// Where in an API call the server reads the state, as a fraction of the call's duration.
    pub api_read_fraction: f64,
    /// Port-forward open (back-off + HEAD) [ns].
    pub forward_open: SimDuration,
    /// A request to `localhost:0` (no forward) refused at once [ns].
    pub refused: SimDuration,
    /// A request's way in through a port-forward: a new tunnel per connection [ns].
    pub tunnel: SimDuration,
    /// An error's way back through the tunnel [ns].
    pub error_back: SimDuration,
    /// Whether the runner counts finished requests (for `after_requests` triggers).
    pub report_requests: bool,
    /// Characters of content a 200 needs to count as a success (the suite's parser: 100).
    pub min_content_chars: u32,
    /// Shared-prefix workload: (groups, prefix tokens); each request draws its group.
    pub prefix: Option<(u32, u32)>,
}

/// Characters per generated token, at least: a token decodes to one character or more, so
/// `output_tokens` characters is what a 200 is sure to carry.
const MIN_CHARS_PER_TOKEN: u32 = 1;

/// One client process.
pub struct Client {
    idx: u16,
    p: ClientParams,
    request: u32,
    attempt: u32,
    /// Listed frontend pods: (slot, uid).
    listed: Vec<(u16, u32)>,
    ready: Vec<(u16, u32)>,
    /// Pods with an open port-forward.
    forwards: Vec<(u16, u32)>,
    target: Option<(u16, u32)>,
    current: Option<u64>,
    timeout: Option<EventKey>,
    request_start: sim_core::SimTime,
    first_attempt_id: usize,
    done: bool,
    /// The current request's shared prefix.
    prefix: Prefix,
    rng: SimRng,
}

impl Client {
    /// Client `idx`.
    pub fn new(idx: u16, p: ClientParams, rng: SimRng) -> Self {
        Client {
            rng,
            prefix: Prefix::None,
            idx,
            p,
            request: 0,
            attempt: 0,
            listed: Vec::new(),
            ready: Vec::new(),
            forwards: Vec::new(),
            target: None,
            current: None,
            timeout: None,
            request_start: sim_core::SimTime::ZERO,
            first_attempt_id: 0,
            done: false,
        }
    }

    /// The part of an API call before (`before`) or after the server reads the state.
    fn part(&self, call: SimDuration, before: bool) -> SimDuration {
        let pre = SimDuration::from_secs_f64(call.as_secs_f64() * self.p.api_read_fraction);
        if before {
            pre
        } else {
            SimDuration::from_nanos(call.as_nanos() - pre.as_nanos().min(call.as_nanos()))
        }
    }

    fn ev(&self, e: ClientEvent) -> Event {
        Event::Client(self.idx, e)
    }

    fn finish(&mut self, ctx: &mut Context<Event>) {
        self.done = true;
        ctx.schedule_now(Event::Runner(RunnerEvent::ClientDone));
    }

    /// Handles an event; `kube` is what the Kubernetes API answers now, `frontend_listening`
    /// whether a frontend's HTTP server accepts connections.
    pub fn handle(
        &mut self,
        ev: ClientEvent,
        ctx: &mut Context<Event>,
        kube: &Kube,
        frontend_listening: impl Fn(u16) -> bool,
        log: &mut RunLog,
    ) {
        if self.done {
            return;
        }
        match ev {
            ClientEvent::Begin => {
                if self.request >= self.p.requests {
                    self.finish(ctx);
                    return;
                }
                self.attempt = 0;
                if let Some((groups, tokens)) = self.p.prefix {
                    self.prefix = Prefix::Group {
                        group: self.rng.random_range(0..groups),
                        tokens,
                    };
                }
                ctx.schedule_in(
                    self.part(self.p.pod_list, true),
                    self.ev(ClientEvent::Listed),
                );
            }
            ClientEvent::Listed => {
                // The API lists existing frontend pods by name (a random suffix per pod).
                kube.list(crate::scenario::Role::Frontend, &mut self.listed);
                self.ready.clear();
                let rest = self.part(self.p.pod_list, false);
                if self.listed.is_empty() {
                    ctx.schedule_in(rest, self.ev(ClientEvent::Checked));
                } else {
                    let first = rest + self.part(self.p.pod_get, true);
                    ctx.schedule_in(first, self.ev(ClientEvent::Got { k: 0 }));
                }
            }
            ClientEvent::Got { k } => {
                let (slot, uid) = self.listed[k as usize];
                let pod = kube.pod(slot);
                if !pod.exists || pod.uid != uid {
                    // kr8s NotFoundError escapes the loop: the client process ends.
                    log.dead_clients += 1;
                    self.finish(ctx);
                    return;
                }
                if pod.ready && pod.running {
                    self.ready.push((slot, uid));
                } else {
                    self.forwards.retain(|f| *f != (slot, uid));
                }
                if (k as usize) + 1 < self.listed.len() {
                    ctx.schedule_in(self.p.pod_get, self.ev(ClientEvent::Got { k: k + 1 }));
                } else {
                    ctx.schedule_in(
                        self.part(self.p.pod_get, false),
                        self.ev(ClientEvent::Checked),
                    );
                }
            }
            ClientEvent::Checked => self.choose(ctx, kube, &frontend_listening, log),
            ClientEvent::Forward { n } => {
                let Some((slot, uid)) = self.target else {
                    return;
                };
                let pod = kube.pod(slot);
                let fe = match pod.role {
                    PodRole::Frontend(i) => i,
                    PodRole::Worker(_) | PodRole::Router(_) | PodRole::Processor(_) => {
                        unreachable!("clients only forward to frontends")
                    }
                };
                if pod.exists && pod.uid == uid && frontend_listening(fe) {
                    self.forwards.push((slot, uid));
                    self.send(ctx, kube, &frontend_listening, log);
                } else if n < 2 {
                    // `port_forward`: back-off 0.5 s ×1.5 per try, then HEAD again.
                    let backoff = self.p.forward_open.as_secs_f64() * 1.5f64.powi(i32::from(n) + 1);
                    ctx.schedule_in(
                        SimDuration::from_secs_f64(backoff),
                        self.ev(ClientEvent::Forward { n: n + 1 }),
                    );
                } else {
                    self.target = None;
                    self.send(ctx, kube, &frontend_listening, log);
                }
            }
            ClientEvent::Answer { attempt, outcome } => {
                if self.current == Some(attempt) {
                    let short =
                        self.p.output_tokens * MIN_CHARS_PER_TOKEN < self.p.min_content_chars;
                    let outcome = if outcome == Outcome::Success && short {
                        Outcome::ShortContent
                    } else {
                        outcome
                    };
                    self.end_attempt(ctx, outcome, log);
                }
            }
            ClientEvent::Timeout { attempt } => {
                if self.current == Some(attempt) {
                    self.timeout = None;
                    if let Some((slot, _)) = self.target {
                        if let PodRole::Frontend(fe) = kube.pod(slot).role {
                            ctx.schedule_now(Event::Frontend(
                                fe,
                                FrontendEvent::ClientGone { attempt },
                            ));
                        }
                    }
                    self.end_attempt(ctx, Outcome::Timeout, log);
                }
            }
            ClientEvent::Slept => {
                if self.attempt + 1 < self.p.attempts {
                    self.attempt += 1;
                    self.send(ctx, kube, &frontend_listening, log);
                } else {
                    self.end_request(ctx, log);
                }
            }
            ClientEvent::Padded => {
                self.request += 1;
                ctx.schedule_now(self.ev(ClientEvent::Begin));
            }
        }
    }

    fn choose(
        &mut self,
        ctx: &mut Context<Event>,
        kube: &Kube,
        listening: &impl Fn(u16) -> bool,
        log: &mut RunLog,
    ) {
        self.request_start = ctx.now();
        self.first_attempt_id = log.attempts.len();
        if self.ready.is_empty() {
            self.target = None;
            self.send(ctx, kube, listening, log);
            return;
        }
        let pick = self.ready[self.request as usize % self.ready.len()];
        self.target = Some(pick);
        if self.forwards.contains(&pick) {
            self.send(ctx, kube, listening, log);
        } else {
            ctx.schedule_in(self.p.forward_open, self.ev(ClientEvent::Forward { n: 0 }));
        }
    }

    fn send(
        &mut self,
        ctx: &mut Context<Event>,
        kube: &Kube,
        listening: &impl Fn(u16) -> bool,
        log: &mut RunLog,
    ) {
        let now = ctx.now();
        if self.attempt == 0 {
            self.request_start = now;
            self.first_attempt_id = log.attempts.len();
        }
        let id = log.open_attempt(
            self.idx,
            self.request,
            self.attempt,
            now,
            self.p.output_tokens,
        );
        self.current = Some(id);
        let Some((slot, uid)) = self.target else {
            // `localhost:0`: refused at once.
            ctx.schedule_in(
                self.p.refused,
                self.ev(ClientEvent::Answer {
                    attempt: id,
                    outcome: Outcome::NoFrontend,
                }),
            );
            return;
        };
        self.timeout = Some(ctx.schedule_in(
            self.p.timeout,
            self.ev(ClientEvent::Timeout { attempt: id }),
        ));
        let pod = kube.pod(slot);
        let PodRole::Frontend(fe) = pod.role else {
            unreachable!("clients only talk to frontends")
        };
        if !pod.exists || pod.uid != uid {
            // A forward to a force-deleted pod is never cleaned up: nothing answers.
            return;
        }
        if !listening(fe) {
            // The tunnel is set up, then the kubelet's connection to the pod's port is refused.
            let o = Outcome::ConnectionError;
            ctx.schedule_in(
                self.p.tunnel + self.p.error_back,
                self.ev(ClientEvent::Answer {
                    attempt: id,
                    outcome: o,
                }),
            );
            return;
        }
        ctx.schedule_in(
            self.p.tunnel,
            Event::Frontend(
                fe,
                FrontendEvent::Http {
                    attempt: id,
                    client: self.idx,
                    prompt: self.p.input_tokens,
                    output: self.p.output_tokens,
                    prefix: self.prefix,
                },
            ),
        );
    }

    fn end_attempt(&mut self, ctx: &mut Context<Event>, outcome: Outcome, log: &mut RunLog) {
        let id = self.current.take().expect("an attempt is open");
        if let Some(k) = self.timeout.take() {
            ctx.cancel(k);
        }
        log.close_attempt(id, ctx.now(), outcome);
        if outcome == Outcome::Success {
            self.end_request(ctx, log);
        } else {
            ctx.schedule_in(self.p.retry_sleep, self.ev(ClientEvent::Slept));
        }
    }

    fn end_request(&mut self, ctx: &mut Context<Event>, log: &mut RunLog) {
        let now = ctx.now();
        for a in log.attempts[self.first_attempt_id..]
            .iter_mut()
            .filter(|a| a.client == self.idx && a.request == self.request)
        {
            a.logged = now;
        }
        if self.p.report_requests {
            ctx.schedule_now(Event::Runner(RunnerEvent::RequestDone));
        }
        let spent = now.saturating_since(self.request_start);
        let pad = SimDuration::from_nanos(
            self.p
                .min_period
                .as_nanos()
                .saturating_sub(spent.as_nanos()),
        );
        ctx.schedule_in(pad, self.ev(ClientEvent::Padded));
    }
}
