//! What a run records (the suite's log lines and the client's per-attempt rows) and the
//! suite's parser over them (`model-facts.md` §1, `tests/fault_tolerance/deploy/parse_results.py`).

use sim_core::{SimDuration, SimTime};

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Still running (only while the simulation runs).
    Pending,
    /// HTTP 200 with enough content.
    Success,
    /// No Ready frontend pod, or the port-forward could not be opened: the request went to
    /// `localhost:0` and failed at once.
    NoFrontend,
    /// The connection was refused or reset (frontend process not listening or died).
    ConnectionError,
    /// HTTP 404: the frontend has no worker registered for the model.
    ModelNotFound,
    /// HTTP 500: no live instance, or the worker's stream ended early.
    ServerError,
    /// No answer within the per-attempt timeout.
    Timeout,
    /// HTTP 200 with less content than the success rule asks.
    ShortContent,
}

impl Outcome {
    /// The error kind as written in the attempt CSV.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Success => "ok",
            Outcome::NoFrontend => "no_ready_frontend",
            Outcome::ConnectionError => "connection_error",
            Outcome::ModelNotFound => "http_404",
            Outcome::ServerError => "http_500",
            Outcome::Timeout => "timeout",
            Outcome::ShortContent => "short_content",
        }
    }
}

/// One attempt, as the client logs it.
#[derive(Clone, Debug)]
pub struct AttemptRecord {
    /// Client index.
    pub client: u16,
    /// Request index within the client.
    pub request: u32,
    /// Attempt number within the request (0-based).
    pub attempt: u32,
    /// When the HTTP request was sent.
    pub start: SimTime,
    /// When it ended.
    pub end: SimTime,
    /// The request-level log time: after all attempts and sleeps (the row's timestamp).
    pub logged: SimTime,
    /// How it ended.
    pub outcome: Outcome,
    /// When the engine sampled its first token, if it got that far.
    pub first_token: Option<SimTime>,
    /// Output tokens requested.
    pub output_tokens: u32,
    /// The worker (slot, incarnation) that generated the answer, and when it finished.
    pub served_by: Option<((u16, u32), SimTime)>,
    /// Remote prefills sent for it, and KV transfers that completed a prefill for it.
    pub remote_prefills: u16,
    /// KV transfers sent to a decode worker for it.
    pub kv_transfers: u16,
    /// Prompt tokens prefilled for it and how many were prefix-cache hits (first admission).
    pub prefill: Option<(u32, u32)>,
    /// Whether a frontend routed it by its fallback router (no KV router answered).
    pub fallback_routed: bool,
}

/// A line a component logs that the parser reads for recovery ("added model" from a
/// frontend, "... has been initialized" from a worker).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadyLine {
    /// When it was logged.
    pub at: SimTime,
    /// Whether a frontend (else a worker) logged it.
    pub frontend: bool,
}

/// Everything a run writes down.
#[derive(Clone, Debug, Default)]
pub struct RunLog {
    /// Wall-clock offset of simulated time zero within its second [ns], so that the suite's
    /// 1-second timestamps fall as they would.
    pub clock_offset: SimDuration,
    /// "Starting Deployment".
    pub deploy_started: SimTime,
    /// "Deployment ... is ready".
    pub deploy_ready: Option<SimTime>,
    /// "Injecting failure for: ...".
    pub fault_logged: Option<SimTime>,
    /// Every attempt, in the order they were sent.
    pub attempts: Vec<AttemptRecord>,
    /// Ready lines of all pods and containers.
    pub ready_lines: Vec<ReadyLine>,
    /// Clients that ended early on an unexpected exception.
    pub dead_clients: u32,
    /// Work served by a process while it was dead (must stay 0; checked by tests).
    pub zombie_work: u32,
    /// Requests a decode worker prefilled locally because no prefill worker was available.
    pub fallbacks: u64,
    /// Requests a frontend migrated to another worker after a broken stream.
    pub migrations: u64,
    /// Attempts closed a second time (must stay 0; checked by tests).
    pub double_closes: u32,
    /// Routing decisions as the chosen worker received them: (when, slot, incarnation).
    pub picks: Vec<(SimTime, u16, u32)>,
    /// Workers leaving discovery (lease expired or revoked): (when, slot, incarnation).
    pub departures: Vec<(SimTime, u16, u32)>,
    /// Worker incarnations: (slot, incarnation, serving from, serving until — its engine's
    /// death, its shutdown or its exit, whichever came first).
    pub incarnations: Vec<(u16, u32, SimTime, Option<SimTime>)>,
    /// Pods turning Ready (their readiness probe passed): (when, pod slot).
    pub pods_ready: Vec<(SimTime, u16)>,
}

impl RunLog {
    /// Opens an attempt record; its index is the attempt's id.
    pub fn open_attempt(
        &mut self,
        client: u16,
        request: u32,
        attempt: u32,
        start: SimTime,
        output_tokens: u32,
    ) -> u64 {
        self.attempts.push(AttemptRecord {
            client,
            request,
            attempt,
            start,
            end: start,
            logged: start,
            outcome: Outcome::Pending,
            first_token: None,
            output_tokens,
            served_by: None,
            remote_prefills: 0,
            kv_transfers: 0,
            prefill: None,
            fallback_routed: false,
        });
        (self.attempts.len() - 1) as u64
    }

    /// Closes an attempt; returns false if it was already closed (a late answer).
    pub fn close_attempt(&mut self, id: u64, end: SimTime, outcome: Outcome) -> bool {
        let a = &mut self.attempts[id as usize];
        if a.outcome != Outcome::Pending {
            self.double_closes += 1;
            return false;
        }
        a.end = end;
        a.outcome = outcome;
        true
    }

    /// Whether an attempt is still open.
    pub fn is_open(&self, id: u64) -> bool {
        self.attempts
            .get(id as usize)
            .is_some_and(|a| a.outcome == Outcome::Pending)
    }

    /// The engine sampled the attempt's first token.
    pub fn first_token(&mut self, id: u64, at: SimTime) {
        if let Some(a) = self.attempts.get_mut(id as usize) {
            a.first_token.get_or_insert(at);
        }
    }

    /// A decode worker sent the attempt's prefill to a prefill worker.
    pub fn remote_prefill(&mut self, id: u64) {
        if let Some(a) = self.attempts.get_mut(id as usize) {
            a.remote_prefills += 1;
        }
    }

    /// An engine admitted the attempt's prompt, `cached` of its tokens from the prefix cache.
    pub fn admitted(&mut self, id: u64, prompt: u32, cached: u32) {
        if let Some(a) = self.attempts.get_mut(id as usize) {
            a.prefill.get_or_insert((prompt, cached));
        }
    }

    /// A frontend routed the attempt by its fallback router.
    pub fn fallback_routed(&mut self, id: u64) {
        if let Some(a) = self.attempts.get_mut(id as usize) {
            a.fallback_routed = true;
        }
    }

    /// A prefill worker sent the attempt's KV to its decode worker.
    pub fn kv_transfer(&mut self, id: u64) {
        if let Some(a) = self.attempts.get_mut(id as usize) {
            a.kv_transfers += 1;
        }
    }

    /// A worker incarnation generated the attempt's last token at `at`.
    pub fn served(&mut self, id: u64, by: (u16, u32), at: SimTime) {
        if let Some(a) = self.attempts.get_mut(id as usize) {
            a.served_by = Some((by, at));
        }
    }

    /// Seconds of the suite's 1-second wall-clock timestamp for `t`.
    fn stamp(&self, t: SimTime) -> u64 {
        (t.as_nanos() + self.clock_offset.as_nanos()) / 1_000_000_000
    }

    /// Wall-clock seconds (fractional) for `t`, as pod logs keep them.
    fn precise(&self, t: SimTime) -> f64 {
        (t.as_nanos() + self.clock_offset.as_nanos()) as f64 / 1e9
    }
}

/// One row of the results table (the suite's columns plus dynsim's).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RowMetrics {
    /// "Startup" [s].
    pub startup_s: Option<f64>,
    /// Successful rows logged at or before the fault second.
    pub success_before: u64,
    /// Failed rows logged at or before the fault second.
    pub failed_before: u64,
    /// Successful rows after it (None for the baseline).
    pub success_after: Option<u64>,
    /// Failed rows after it.
    pub failed_after: Option<u64>,
    /// Mean latency of successes before [s].
    pub latency_before_s: Option<f64>,
    /// Mean latency of successes after [s].
    pub latency_after_s: Option<f64>,
    /// Time-averaged number of attempts in flight before the fault.
    pub pending_before: Option<f64>,
    /// Time-averaged number of attempts in flight after the fault.
    pub pending_after: Option<f64>,
    /// Successes slower than the SLA, before.
    pub violations_before: Option<u64>,
    /// Successes slower than the SLA, after.
    pub violations_after: Option<u64>,
    /// Latest ready line minus the fault time [s].
    pub recovery_s: Option<f64>,
    /// Latency percentiles of all successes [s].
    pub latency_p50_s: Option<f64>,
    /// 90th percentile.
    pub latency_p90_s: Option<f64>,
    /// 99th percentile.
    pub latency_p99_s: Option<f64>,
    /// Mean time to first token of successes, server side [s].
    pub ttft_mean_s: Option<f64>,
    /// 99th percentile of the time to first token [s].
    pub ttft_p99_s: Option<f64>,
    /// Share of prefilled prompt tokens found in a prefix cache (filled in by the run, which
    /// knows the engines).
    pub prefix_hit_rate: Option<f64>,
    /// Mean inter-token latency of successes [s].
    pub itl_mean_s: Option<f64>,
    /// Successful requests per second of client activity.
    pub throughput_rps: Option<f64>,
    /// Clients that ended early.
    pub dead_clients: u32,
    /// Attempts in all.
    pub attempts: u64,
    /// Decode-only fallbacks (local prefills for want of a prefill worker).
    pub fallbacks: u64,
    /// Migrations of in-flight requests to another worker.
    pub migrations: u64,
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (n, s) = xs.fold((0u64, 0.0), |(n, s), x| (n + 1, s + x));
    (n > 0).then(|| s / n as f64)
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    Some(sorted[rank.min(sorted.len() - 1)])
}

/// Time-averaged number of attempts in flight over `[from, to)`.
fn pending(attempts: &[AttemptRecord], from: SimTime, to: SimTime) -> Option<f64> {
    if to <= from {
        return None;
    }
    let busy: u64 = attempts
        .iter()
        .map(|a| {
            let s = a.start.max(from);
            let e = a.end.min(to);
            e.as_nanos().saturating_sub(s.as_nanos())
        })
        .sum();
    Some(busy as f64 / (to - from).as_nanos() as f64)
}

impl RunLog {
    /// The suite's parser over this run: rows split on the logged (end) time against the fault
    /// line at 1-second resolution (`time <= fault` is before), startup from the two deployment
    /// lines, recovery as the latest ready line after the fault.
    pub fn parse(&self, sla_s: Option<f64>) -> RowMetrics {
        let fault = self.fault_logged.map(|t| self.stamp(t));
        let latency = |a: &AttemptRecord| (a.end - a.start).as_secs_f64();
        let ok = |a: &AttemptRecord| a.outcome == Outcome::Success;
        let done: Vec<&AttemptRecord> = self
            .attempts
            .iter()
            .filter(|a| a.outcome != Outcome::Pending)
            .collect();
        let (pre, post): (Vec<&AttemptRecord>, Vec<&AttemptRecord>) = done
            .iter()
            .partition(|a| fault.is_none_or(|f| self.stamp(a.logged) <= f));
        let count =
            |v: &[&AttemptRecord], want: bool| v.iter().filter(|a| ok(a) == want).count() as u64;
        let lat = |v: &[&AttemptRecord]| mean(v.iter().filter(|a| ok(a)).map(|a| latency(a)));
        let viol = |v: &[&AttemptRecord]| {
            sla_s.map(|s| v.iter().filter(|a| ok(a) && latency(a) > s).count() as u64)
        };
        let succ: Vec<&AttemptRecord> = done.iter().copied().filter(|a| ok(a)).collect();
        let mut lats: Vec<f64> = succ.iter().map(|a| latency(a)).collect();
        lats.sort_by(f64::total_cmp);
        let mut ttfts: Vec<f64> = succ
            .iter()
            .filter_map(|a| Some((a.first_token? - a.start).as_secs_f64()))
            .collect();
        ttfts.sort_by(f64::total_cmp);
        let first = done.iter().map(|a| a.start).min();
        let last = done.iter().map(|a| a.end).max();
        let fault_t = self.fault_logged;
        let recovery = fault.and_then(|f| {
            self.ready_lines
                .iter()
                .map(|l| self.precise(l.at) - f as f64)
                .filter(|&d| d > 0.0)
                .max_by(f64::total_cmp)
        });
        let after = fault.is_some();
        RowMetrics {
            startup_s: self
                .deploy_ready
                .map(|r| self.stamp(r) as f64 - self.stamp(self.deploy_started) as f64),
            success_before: count(&pre, true),
            failed_before: count(&pre, false),
            success_after: after.then(|| count(&post, true)),
            failed_after: after.then(|| count(&post, false)),
            latency_before_s: lat(&pre),
            latency_after_s: if after { lat(&post) } else { None },
            pending_before: first.and_then(|s| pending(&self.attempts, s, fault_t.or(last)?)),
            pending_after: fault_t.and_then(|f| pending(&self.attempts, f, last?)),
            violations_before: viol(&pre),
            violations_after: if after { viol(&post) } else { None },
            recovery_s: recovery,
            latency_p50_s: percentile(&lats, 0.50),
            latency_p90_s: percentile(&lats, 0.90),
            latency_p99_s: percentile(&lats, 0.99),
            ttft_mean_s: mean(ttfts.iter().copied()),
            ttft_p99_s: percentile(&ttfts, 0.99),
            prefix_hit_rate: None,
            itl_mean_s: mean(succ.iter().filter(|a| a.output_tokens > 1).filter_map(|a| {
                Some((a.end - a.first_token?).as_secs_f64() / f64::from(a.output_tokens - 1))
            })),
            throughput_rps: match (first, last) {
                (Some(s), Some(e)) if e > s => Some(succ.len() as f64 / (e - s).as_secs_f64()),
                _ => None,
            },
            dead_clients: self.dead_clients,
            attempts: done.len() as u64,
            fallbacks: self.fallbacks,
            migrations: self.migrations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: f64) -> SimTime {
        SimTime::ZERO + SimDuration::from_secs_f64(s)
    }

    fn log_with(rows: &[(f64, f64, Outcome)], fault: Option<f64>) -> RunLog {
        let mut log = RunLog {
            fault_logged: fault.map(t),
            ..RunLog::default()
        };
        for (i, &(s, e, o)) in rows.iter().enumerate() {
            let id = log.open_attempt(0, i as u32, 0, t(s), 100);
            log.close_attempt(id, t(e), o);
            log.attempts[id as usize].logged = t(e);
        }
        log
    }

    #[test]
    fn rows_split_on_the_logged_second_and_the_same_second_counts_before() {
        let log = log_with(
            &[
                (0.0, 1.2, Outcome::Success),
                (29.0, 30.9, Outcome::Success), // same second as the fault: before
                (30.0, 31.0, Outcome::NoFrontend),
                (32.0, 34.0, Outcome::Success),
            ],
            Some(30.5),
        );
        let m = log.parse(Some(1.5));
        assert_eq!((m.success_before, m.failed_before), (2, 0));
        assert_eq!((m.success_after, m.failed_after), (Some(1), Some(1)));
        assert!((m.latency_before_s.unwrap() - 1.55).abs() < 1e-9);
        assert_eq!(
            (m.violations_before, m.violations_after),
            (Some(1), Some(1))
        );
    }

    #[test]
    fn baseline_has_no_after_columns_and_recovery_ignores_lines_before_the_fault() {
        let log = log_with(&[(0.0, 1.0, Outcome::Success)], None);
        let m = log.parse(None);
        assert_eq!(m.success_after, None);
        assert_eq!(m.recovery_s, None);
        let mut log = log_with(&[(0.0, 1.0, Outcome::Success)], Some(10.2));
        log.ready_lines.push(ReadyLine {
            at: t(5.0),
            frontend: false,
        });
        // Only a line from before the fault: nothing recovered after it.
        assert_eq!(log.parse(None).recovery_s, None);
        log.ready_lines.push(ReadyLine {
            at: t(13.5),
            frontend: true,
        });
        // The fault line has 1 s resolution: 13.5 − 10 = 3.5.
        assert!((log.parse(None).recovery_s.unwrap() - 3.5).abs() < 1e-9);
    }
}
