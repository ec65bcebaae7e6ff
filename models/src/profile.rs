//! Parameter profiles: one per hardware/deployment kind, shared by every fault row.
//!
//! Each default names its source: `model-facts.md` (§ numbers) and the Dynamo / Kubernetes
//! source files read for it. Nothing here is tuned per table row. The values no source gives
//! are either *fitted once*, each to a regime many rows share, and used unchanged by every
//! row — the engine's per-step overhead (the baseline latency), the client's pod list and
//! refresh (the requests before the fault, dp-1 against dp-2), the API's read point (the
//! clients lost in `frontend_pod` runs), the port-forward tunnel (the failure rate while no
//! worker serves), the KV read rate and hand-off (the disaggregated latencies), the NIXL
//! connection set-up (the first 30 s of the disaggregated rows) — or *estimates* of short
//! steps that only shift a time by their length. Each says which.

use serde::Deserialize;
use sim_core::SimDuration;

use crate::engine::timing::Timing;

/// A readiness (or startup) probe as the kubelet runs it.
#[derive(Clone, Debug)]
pub struct ProbeSpec {
    /// `initialDelaySeconds` [ns].
    pub initial_delay: SimDuration,
    /// `periodSeconds` [ns].
    pub period: SimDuration,
    /// Time from probe start to its result reaching the pod status. Estimate: an exec'd
    /// `curl | jq` (frontend) or an HTTP GET (worker) inside the pod [ns].
    pub latency: SimDuration,
}

/// Kubernetes behaviour.
#[derive(Clone, Debug)]
pub struct KubeProfile {
    /// Frontend readiness probe: exec `curl /health | jq .status=="healthy"`, 60 s initial delay,
    /// 60 s period (operator `component_frontend.go`, 0.4–0.6 era; later releases use 10/10).
    /// `model-facts.md` §3's period 10 s is Kubernetes' default, for probes that set none.
    pub frontend_readiness: ProbeSpec,
    /// Worker readiness: `/health` every 10 s, no initial delay; a startup probe on `/live`
    /// every 10 s gates it (operator `component_worker.go`, mid-2025).
    pub worker_readiness: ProbeSpec,
    /// Pod worker resync interval: a pod is synced again this long after its last sync
    /// (kubelet `--sync-frequency`, 1 min), and each sync triggers a not-ready container's
    /// readiness probe at once (kubelet `prober_manager.go` `UpdatePodStatus` manual trigger) [ns].
    pub resync: SimDuration,
    /// Jitter factor on the resync: the interval is drawn from `resync × [1, 1 + f)`
    /// (kubelet `workerResyncIntervalJitterFactor` 0.5).
    pub resync_jitter: f64,
    /// From a container's exit to the pod showing NotReady: PLEG relists every 1 s (kubelet
    /// `genericPlegRelistPeriod`) plus the status update [ns].
    pub exit_to_not_ready: SimDuration,
    /// Back-off before restarting a crashed container again: 10 s doubling to 300 s
    /// (`model-facts.md` §3). The first restart has none: kubelet `doBackOff` finds no
    /// back-off entry for the container yet and only starts one, as the `frontend` rows'
    /// recovery (the process back ~3.4–4.4 s after the kill) shows [ns].
    pub restart_backoff: SimDuration,
    /// Back-off cap [ns].
    pub restart_backoff_cap: SimDuration,
    /// Minimum grace a force-deleted pod's containers get before SIGKILL (kubelet
    /// `minimumGracePeriodInSeconds` = 2) [ns].
    pub force_delete_grace: SimDuration,
    /// A replacement pod: ReplicaSet reaction + scheduling + sandbox and container creation
    /// with the image cached. Estimate: the `frontend_pod` rows recover 0.9–2.0 s later than
    /// the `frontend` rows (5.2–5.5 s against 3.4–4.4 s, the pod's log collection before the
    /// delete included); the worker pod rows lie within the worker rows' own spread [ns].
    pub pod_create: SimDuration,
    /// The last part of a pod's creation: from the kubelet's `SyncPod` registering the pod's
    /// probe workers (`probeManager.AddPod`, called just before `containerRuntime.SyncPod`) to
    /// the container running — sandbox with its network, container create and start, image
    /// cached. Drawn uniformly from `[sandbox_start_min, sandbox_start_max]`. Not published;
    /// CRI sandbox and container start take hundreds of milliseconds [ns].
    pub sandbox_start_min: SimDuration,
    /// Upper end of the sandbox start [ns].
    pub sandbox_start_max: SimDuration,
    /// Container start for a restart in the same pod (create and start, image present).
    /// Estimate [ns].
    pub container_restart: SimDuration,
    /// First pod creation at deployment start, up to the kubelet's `SyncPod` registering the
    /// pod — its probe workers start then (`probeManager.AddPod` comes before
    /// `containerRuntime.SyncPod`, which creates the sandbox and pulls the image): the
    /// operator's reconcile, the ReplicaSet, the scheduler. The suite's startup rows cluster
    /// at 181–182 s (21 of 30): the frontend's probe ticker (60 s period, the first tick after
    /// the workers register passes) started about 1 s after the deployment was applied [ns].
    pub first_pod_register: SimDuration,
    /// First pod creation at deployment start, up to the container running: registration,
    /// sandbox, image pull on a warm node (the suite's startup rows, 161–182 s: the earliest,
    /// 161 s, is a frontend probed right after the workers registered, so the workers were
    /// serving ~160 s after the deployment was applied, their load taking ~152 s) [ns].
    pub first_pod_create: SimDuration,
}

/// Process start-up and shutdown times.
#[derive(Clone, Debug)]
pub struct ProcessProfile {
    /// Frontend process: from container start to "added model" once a worker is registered.
    /// With the kill's `kubectl exec` (0.8 s), the exit (0.3 s), PLEG's notice (≤ 1 s) and the
    /// restart (0.5 s) it gives the ~4.1 s mean of the `frontend` rows' recovery (3.4–4.4 s)
    /// [ns].
    pub frontend_start: SimDuration,
    /// Worker (`dynamo.vllm`) from container start to "has been initialized" and serving:
    /// import, model load, engine init and CUDA graphs (recovery of the worker rows:
    /// 152.5–157.5 s, and one run of 174 s) [ns]; drawn normal with `worker_start_sd`.
    pub worker_start: SimDuration,
    /// Standard deviation of the worker start: the spread of those rows [ns].
    pub worker_start_sd: SimDuration,
    /// Whether SIGTERM reaches the component processes. In the suite's deployment YAMLs each
    /// component runs as `args: "python3 -m dynamo.<component> ... | tee /tmp/vllm.log"`,
    /// i.e. under `/bin/sh -c` as PID 1 (`components/backends/vllm/deploy/disagg.yaml`,
    /// 0.3.x): the shell neither handles nor forwards SIGTERM, so a deleted pod's processes
    /// keep running until the kubelet's SIGKILL. `false` here.
    pub sigterm_reaches_process: bool,
    /// Frontend exit after SIGINT (no signal handler before Dynamo PR #3481: Python's
    /// KeyboardInterrupt ends it promptly). Estimate [ns].
    pub frontend_sigint_exit: SimDuration,
    /// Runtime shutdown to process exit after SIGTERM or a detected engine death: lease
    /// revoke, endpoint stop, engine clean-up. No published figure; an estimate that only
    /// shifts the restart by its length [ns].
    pub worker_shutdown: SimDuration,
    /// Engine monitor polling period: a dead EngineCore is noticed within this, then the
    /// worker shuts down and exits 1 (`engine_monitor.py` `HEALTH_CHECK_INTERVAL` = 2) [ns].
    pub engine_monitor_period: SimDuration,
    /// etcd lease TTL (`lib/runtime/src/transports/etcd.rs`, 10 s, §3) [ns].
    pub lease_ttl: SimDuration,
    /// etcd lease keep-alive period (TTL/2, §3) [ns].
    pub lease_keepalive: SimDuration,
    /// etcd's lessor looks for expired leases every 500 ms and revokes them then
    /// (`server/lease/lessor.go` `runLoop`, etcd 3.4–3.6): a crashed holder's key vanishes at
    /// the first check after its lease ran out [ns].
    pub lease_check: SimDuration,
    /// Watch event delivery from etcd to a frontend. Estimate: one message over the
    /// cluster network [ns].
    pub watch_delay: SimDuration,
    /// KV event delivery from an engine to the routers over the event plane (NATS).
    /// Estimate, as `watch_delay` [ns].
    pub kv_event_delay: SimDuration,
}

/// The suite's client environment (`model-facts.md` §1; `tests/fault_tolerance/deploy/client.py`).
#[derive(Clone, Debug)]
pub struct HarnessProfile {
    /// From `Process.start()` to the client's first pod list: spawn, imports, Kubernetes
    /// client set-up. Estimate; with `pod_list`, `pod_get` and the port-forward it sets how
    /// many requests end before the fault (the tables' ~80–150) [ns].
    pub client_start: SimDuration,
    /// Spread of client start (uniform ± this). Estimate [ns].
    pub client_start_spread: SimDuration,
    /// One kr8s pod list call from the client, made before every request. Fitted once, with
    /// `pod_get`, to the requests before the fault with one frontend (dp-1) and two (dp-2,
    /// one refresh more per request): 0.62 s and 0.10 s. Today's model gives dp-2 ~6 % more
    /// of them than measured; moving 0.115 s from the list to the refresh fits all four
    /// deployments but doubles the window of `api_read_fraction` and with it the lost
    /// clients, so the split stays as fitted [ns].
    pub pod_list: SimDuration,
    /// One kr8s `pod.ready()` refresh (a GET per listed pod, before every request); fitted
    /// with `pod_list` [ns].
    pub pod_get: SimDuration,
    /// Where within an API call the server reads the state, as a fraction of the call's
    /// client-side duration. It sets the window in which a pod deleted between the list and
    /// its refresh kills a client. Not measured: 1.0 (the read at the end of each call, so
    /// the window is the refresh, ~0.1 s) gives ~0.5 lost clients per `frontend_pod` run, as
    /// the four published `frontend_pod` runs show (two clients lost in 40: both in one
    /// single-frontend run).
    pub api_read_fraction: f64,
    /// Opening a port-forward: 0.5 s sleep then a checked HEAD request
    /// (`managed_deployment.py` `port_forward`) [ns].
    pub port_forward_open: SimDuration,
    /// A request's way in through a port-forward. kr8s' `PortForward` opens a new websocket
    /// to the API server (which connects through the kubelet to the pod's port) for every TCP
    /// connection it accepts (`kr8s/_portforward.py` `_sync_sockets` → `_connect_websocket`),
    /// and `requests.post` opens a new connection for every request: each request, answered
    /// or failed, waits for that tunnel. Not published: fitted ONCE to the failure rate while
    /// no worker serves — the seven dp-1 rows that lose their only decode worker fail 836–858
    /// requests over the ~155 s restart (85 per client, one every 1.81 s of list, refresh,
    /// answer and the 1 s sleep), where an answer in 20 ms gave 88 per client — with the
    /// engine's per-step overhead refitted so that answered requests keep their latency [ns].
    pub tunnel: SimDuration,
    /// A response's way back to the client through the open tunnel. Estimate [ns].
    pub request_overhead: SimDuration,
    /// An error answer's way back through the open tunnel (404/500 from the frontend).
    /// Estimate [ns].
    pub error_answer: SimDuration,
    /// A request to `localhost:0` (no Ready frontend pod, so no forward): refused by the local
    /// kernel, raised by `requests`. Estimate [ns].
    pub refused: SimDuration,
    /// Delay from the "Injecting failure" log line to the fault taking effect: `ps` and `kill`
    /// through `kubectl exec` for process kills (two exec round trips). Estimate [ns].
    pub exec_kill_delay: SimDuration,
    /// As `exec_kill_delay`, for pod deletion: the pod's logs are saved first. Estimate [ns].
    pub delete_delay: SimDuration,
    /// The test polls the DynamoGraphDeployment for readiness every second
    /// (`managed_deployment.py` `_wait_for_ready`, sleep 1) [ns].
    pub ready_poll: SimDuration,
}

/// Disaggregated serving: the KV hand-over from prefill to decode workers.
#[derive(Clone, Debug)]
pub struct DisaggProfile {
    /// KV cache per prompt token [bytes] (the served model's; see `Timing`).
    pub kv_bytes_per_token: f64,
    /// Rate at which a decode worker reads a prompt's KV from a prefill worker over ONE
    /// connection [bytes/s]. Reads over one connection (one prefill process to one decode
    /// process: one NIXL agent pair, one UCX endpoint) go one at a time; reads from different
    /// prefill processes run side by side. In the suite's pods there is no RDMA: NIXL's UCX
    /// backend runs over TCP and a 100-token prompt is ~400 block descriptors (vLLM block 16 ×
    /// 28 layers × K and V), each a round trip, so this is an effective rate, far below the
    /// wire's (the mocker's 64 GB/s, `model-facts.md` §2, is an RDMA figure). Not published:
    /// fitted ONCE, with `handoff`, to the disaggregated regimes the A100 tables show — one
    /// decode fed by one prefill worker 1.99 s (the dp-1 baseline), by two ≈1.75 s (the dp-2
    /// decode-failure rows while one decode worker is left), two decodes fed by one or two
    /// ≈1.43–1.47 s. Only a per-connection serial read explains why a second PREFILL worker
    /// speeds up one decode worker (1.99 → 1.75 s) while a second DECODE worker fed by the
    /// same single prefill worker is as fast as with two (1.44 vs 1.43 s). 11.5 MB per
    /// 100-token prompt in 0.27 s.
    pub kv_bandwidth: f64,
    /// Bandwidth of a host's NIC, each way, that the KV transfers between hosts share
    /// (`fabric.rs`) [bytes/s].
    pub nic_bandwidth: f64,
    /// Fixed set-up of one transfer: the prefill's answer carrying the transfer parameters
    /// back to the decode worker (`model-facts.md` §2: 0.5–2 ms) [ns].
    pub kv_setup: SimDuration,
    /// Serial work on the decode worker to take in one remote prefill (transfer descriptors,
    /// polling the reads, re-admission of the request), one request at a time, done while its
    /// KV read runs: a request is in when both are over. vLLM 0.10's NIXL connector posts and
    /// polls every transfer on the decode engine's own thread (`start_load_kv` before,
    /// `get_finished` after each forward pass; NIXL's UCX backend progresses the worker until
    /// idle inside both); the ready request then waits one to three steps and recomputes its
    /// last prompt token. A later vLLM measurement puts the decode-side hand-over at
    /// ~200–260 ms p50 (vLLM RFC #50913). Fitted once with `kv_bandwidth` (see there): it is
    /// what bounds one decode worker fed by two prefill workers (≈1.75 s) [ns].
    pub handoff: SimDuration,
    /// The first KV transfer between a decode process and a prefill process waits for the
    /// connection set-up (the NIXL handshake: agent metadata exchange over the side channel
    /// and memory registration). vLLM 0.9.2 and later run it on a background thread, one
    /// handshake at a time (`_background_nixl_handshake`, `ThreadPoolExecutor(max_workers=1)`):
    /// the requests from that prefill process wait for it, the hand-off of others goes on. Not
    /// published: fitted, by least squares, to the latency of the first 30 s of the
    /// disaggregated rows, pooled over each deployment's fault rows (2.21 s dp-1, 1.77 s dp-2,
    /// against whole-run baselines of 1.99 s and 1.47 s), and shared by every row: 2.3 s gives
    /// 2.22 s and 1.75 s. (Taken inside the serial hand-off instead, as an earlier version had
    /// it, no value matched both: 1.8 s gave 2.16 s and 1.78 s.) [ns].
    pub first_transfer: SimDuration,
    /// Whether a prefill engine's death takes down a decode engine reading KV from it
    /// (`ft-test-suite-k8s-a100.md`: "Prefill worker engine failure causes decode engine
    /// failure").
    pub prefill_death_kills_reader: bool,
}

/// Engine limits: the Dynamo mocker's defaults (`model-facts.md` §2), which the vLLM engine
/// model uses too. Its 64-token block is the mocker's; vLLM's default is 16, which the KV
/// read's descriptor count (`DisaggProfile::kv_bandwidth`) uses.
#[derive(Clone, Debug)]
pub struct EngineLimits {
    /// KV cache blocks per worker (16,384).
    pub num_gpu_blocks: u32,
    /// Tokens per block (64).
    pub block_size: u32,
    /// Maximum running sequences (256).
    pub max_num_seqs: u32,
    /// Token budget per step (8,192).
    pub max_num_batched_tokens: u32,
    /// Chunked prefill on.
    pub chunked_prefill: bool,
}

impl Default for EngineLimits {
    fn default() -> Self {
        EngineLimits {
            num_gpu_blocks: 16_384,
            block_size: 64,
            max_num_seqs: 256,
            max_num_batched_tokens: 8_192,
            chunked_prefill: true,
        }
    }
}

/// A whole profile.
#[derive(Clone, Debug)]
pub struct Profile {
    /// Profile name.
    pub name: &'static str,
    /// Engine step-time model.
    pub timing: Timing,
    /// Engine limits.
    pub engine: EngineLimits,
    /// Kubernetes.
    pub kube: KubeProfile,
    /// Processes, discovery.
    pub process: ProcessProfile,
    /// The test harness.
    pub harness: HarnessProfile,
    /// Disaggregated serving.
    pub disagg: DisaggProfile,
}

const fn s(x: u64) -> SimDuration {
    SimDuration::from_secs(x)
}
const fn ms(x: u64) -> SimDuration {
    SimDuration::from_millis(x)
}

impl Profile {
    /// Names of the built-in profiles.
    pub const BUILTIN: &'static [&'static str] = &["a100-k8s"];

    /// A built-in profile by name.
    pub fn builtin(name: &str) -> Option<Profile> {
        match name {
            "a100-k8s" => Some(Self::a100_k8s()),
            _ => None,
        }
    }

    /// Dynamo 0.4–0.6 on Kubernetes with A100 GPUs, as behind the published tables
    /// (`ft-test-suite-k8s-a100.md`), serving the suite's default model (Qwen3-0.6B, stock
    /// `agg.yaml`).
    pub fn a100_k8s() -> Profile {
        Profile {
            name: "a100-k8s",
            timing: Timing::a100_qwen3_0_6b(),
            engine: EngineLimits::default(),
            kube: KubeProfile {
                frontend_readiness: ProbeSpec {
                    initial_delay: s(60),
                    period: s(60),
                    latency: ms(100),
                },
                worker_readiness: ProbeSpec {
                    initial_delay: s(0),
                    period: s(10),
                    latency: ms(50),
                },
                resync: s(60),
                resync_jitter: 0.5,
                exit_to_not_ready: ms(1_000),
                restart_backoff: s(10),
                restart_backoff_cap: s(300),
                force_delete_grace: s(2),
                pod_create: ms(2_000),
                sandbox_start_min: ms(300),
                sandbox_start_max: ms(1_000),
                container_restart: ms(500),
                first_pod_register: s(1),
                first_pod_create: s(8),
            },
            process: ProcessProfile {
                frontend_start: ms(1_500),
                worker_start: s(152),
                worker_start_sd: ms(1_500),
                sigterm_reaches_process: false,
                frontend_sigint_exit: ms(300),
                worker_shutdown: ms(500),
                engine_monitor_period: s(2),
                lease_ttl: s(10),
                lease_keepalive: s(5),
                lease_check: ms(500),
                watch_delay: ms(20),
                kv_event_delay: ms(2),
            },
            harness: HarnessProfile {
                client_start: ms(2_500),
                client_start_spread: ms(1_000),
                pod_list: ms(620),
                pod_get: ms(100),
                api_read_fraction: 1.0,
                port_forward_open: ms(600),
                tunnel: ms(85),
                request_overhead: ms(5),
                error_answer: ms(5),
                refused: ms(2),
                exec_kill_delay: ms(800),
                delete_delay: ms(1_500),
                ready_poll: s(1),
            },
            disagg: DisaggProfile {
                kv_bytes_per_token: 114_688.0,
                // 100 tokens × 114,688 B in 269 ms (+1 ms set-up): 270 ms per read.
                kv_bandwidth: 42.6e6,
                // DGX A100: two dual-port ConnectX-6 200 Gb/s Ethernet adapters carry the
                // in-band (pod) network; the eight 200 Gb/s InfiniBand ports are for RDMA,
                // which the suite's UCX/TCP transfers do not use (DGX A100 datasheet). One
                // port: 25 GB/s. Far above the 42.6 MB/s a connection reaches: never binds here.
                nic_bandwidth: 25e9,
                kv_setup: ms(1),
                handoff: ms(245),
                first_transfer: ms(2_300),
                prefill_death_kills_reader: true,
            },
        }
    }
}

/// A scenario's changes to its profile's hardware and platform parameters, to study what
/// they cost (`profile_overrides` in a scenario file). Every field is optional; each applies
/// to every row of the scenario alike. Units are in the names.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename = "profile_overrides")]
pub struct Overrides {
    /// A host NIC's bandwidth each way (`DisaggProfile::nic_bandwidth`) [Gbit/s].
    pub nic_gbit_s: Option<f64>,
    /// One prefill→decode connection's KV read rate (`DisaggProfile::kv_bandwidth`) [MB/s].
    pub kv_connection_mbyte_s: Option<f64>,
    /// The decode worker's serial hand-off of one remote prefill [s].
    pub kv_handoff_s: Option<f64>,
    /// Connection set-up before the first read from a prefill process [s].
    pub kv_first_transfer_s: Option<f64>,
    /// Per-step host overhead of the engine (roofline `c0`) [ms].
    pub step_overhead_ms: Option<f64>,
    /// Mean worker start, container start to serving [s] (its spread stays the profile's).
    pub worker_start_s: Option<f64>,
    /// etcd lease time-to-live [s].
    pub lease_ttl_s: Option<f64>,
    /// Lease keep-alive interval [s].
    pub lease_keepalive_s: Option<f64>,
    /// Frontend readiness probe: initial delay [s].
    pub frontend_probe_delay_s: Option<f64>,
    /// Frontend readiness probe: period [s].
    pub frontend_probe_period_s: Option<f64>,
}

impl Overrides {
    /// Every field as (name, value, least valid value), in declaration order. Below its
    /// least value a field would round to nothing: rates, the worker start and the lease
    /// keep-alive stay at least 0.001 (a link that never moves a byte, a keep-alive loop that
    /// never waits), the probe period and the lease TTL at least 1 s (`periodSeconds` and etcd
    /// lease TTLs are whole seconds); the hand-off, the connection set-up, the step overhead
    /// and the probe delay may be 0.
    fn fields(&self) -> [(&'static str, Option<f64>, f64); 10] {
        [
            ("nic_gbit_s", self.nic_gbit_s, 0.001),
            ("kv_connection_mbyte_s", self.kv_connection_mbyte_s, 0.001),
            ("kv_handoff_s", self.kv_handoff_s, 0.0),
            ("kv_first_transfer_s", self.kv_first_transfer_s, 0.0),
            ("step_overhead_ms", self.step_overhead_ms, 0.0),
            ("worker_start_s", self.worker_start_s, 0.001),
            ("lease_ttl_s", self.lease_ttl_s, 1.0),
            ("lease_keepalive_s", self.lease_keepalive_s, 0.001),
            ("frontend_probe_delay_s", self.frontend_probe_delay_s, 0.0),
            ("frontend_probe_period_s", self.frontend_probe_period_s, 1.0),
        ]
    }

    /// The set fields as (name, value), in declaration order.
    pub(crate) fn set(&self) -> Vec<(&'static str, f64)> {
        self.fields()
            .into_iter()
            .filter_map(|(k, v, _)| v.map(|v| (k, v)))
            .collect()
    }

    /// What a valid value of field `name` looks like, if `value` is not one: from the field's
    /// least value (`fields`) to a million (seconds, Gbit/s, MB/s, ms) — beyond, it is a typo,
    /// and durations of that order would overflow the nanosecond clock once added up.
    pub(crate) fn invalid(name: &str, value: f64) -> Option<String> {
        let Some((_, _, min)) = Overrides::default()
            .fields()
            .into_iter()
            .find(|f| f.0 == name)
        else {
            return Some("a known override".to_owned());
        };
        let max = 1e6;
        (!(value.is_finite() && (min..=max).contains(&value)))
            .then(|| format!("a number from {min} to 1,000,000"))
    }

    /// `profile` with these changes.
    pub(crate) fn apply(&self, mut profile: Profile) -> Profile {
        let secs = SimDuration::from_secs_f64;
        if let Some(x) = self.nic_gbit_s {
            profile.disagg.nic_bandwidth = x * 1e9 / 8.0;
        }
        if let Some(x) = self.kv_connection_mbyte_s {
            profile.disagg.kv_bandwidth = x * 1e6;
        }
        if let Some(x) = self.kv_handoff_s {
            profile.disagg.handoff = secs(x);
        }
        if let Some(x) = self.kv_first_transfer_s {
            profile.disagg.first_transfer = secs(x);
        }
        if let (Some(x), Timing::Roofline(r)) = (self.step_overhead_ms, &mut profile.timing) {
            r.c0_ns = secs(x / 1e3).as_nanos();
        }
        if let Some(x) = self.worker_start_s {
            profile.process.worker_start = secs(x);
        }
        if let Some(x) = self.lease_ttl_s {
            profile.process.lease_ttl = secs(x);
        }
        if let Some(x) = self.lease_keepalive_s {
            profile.process.lease_keepalive = secs(x);
        }
        if let Some(x) = self.frontend_probe_delay_s {
            profile.kube.frontend_readiness.initial_delay = secs(x);
        }
        if let Some(x) = self.frontend_probe_period_s {
            profile.kube.frontend_readiness.period = secs(x);
        }
        profile
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_hold_together() {
        for name in Profile::BUILTIN {
            let p = Profile::builtin(name).unwrap();
            let k = &p.kube;
            // The sandbox start is drawn from a range, within the pod's creation.
            assert!(k.sandbox_start_min <= k.sandbox_start_max, "{name}");
            assert!(k.sandbox_start_max <= k.pod_create, "{name}");
            assert!(k.sandbox_start_max <= k.first_pod_create, "{name}");
            // A first pod is registered (probe workers started) before its container runs.
            assert!(
                k.first_pod_register + k.sandbox_start_max <= k.first_pod_create,
                "{name}"
            );
            assert!(k.restart_backoff <= k.restart_backoff_cap, "{name}");
            // The fabric's links and connections move bytes.
            assert!(
                p.disagg.nic_bandwidth > 0.0 && p.disagg.kv_bandwidth > 0.0,
                "{name}"
            );
            assert!(p.process.lease_keepalive < p.process.lease_ttl, "{name}");
            assert!(p.harness.api_read_fraction >= 0.0 && p.harness.api_read_fraction <= 1.0);
        }
    }

    #[test]
    fn each_override_replaces_its_own_value() {
        let base = Profile::a100_k8s();
        let o = Overrides {
            nic_gbit_s: Some(8.0),
            kv_connection_mbyte_s: Some(2.0),
            kv_handoff_s: Some(0.003),
            kv_first_transfer_s: Some(0.004),
            step_overhead_ms: Some(5.0),
            worker_start_s: Some(6.0),
            lease_ttl_s: Some(7.0),
            lease_keepalive_s: Some(0.5),
            frontend_probe_delay_s: Some(9.0),
            frontend_probe_period_s: Some(11.0),
        };
        assert_eq!(o.set().len(), 10, "every field is listed");
        let p = o.apply(base.clone());
        let ms = |x: SimDuration| x.as_nanos() / 1_000_000;
        assert_eq!(p.disagg.nic_bandwidth, 1e9);
        assert_eq!(p.disagg.kv_bandwidth, 2e6);
        assert_eq!(ms(p.disagg.handoff), 3);
        assert_eq!(ms(p.disagg.first_transfer), 4);
        let Timing::Roofline(r) = p.timing else {
            panic!("the A100 profile is a roofline")
        };
        assert_eq!(r.c0_ns, 5_000_000);
        assert_eq!(ms(p.process.worker_start), 6_000);
        assert_eq!(ms(p.process.lease_ttl), 7_000);
        assert_eq!(ms(p.process.lease_keepalive), 500);
        assert_eq!(ms(p.kube.frontend_readiness.initial_delay), 9_000);
        assert_eq!(ms(p.kube.frontend_readiness.period), 11_000);
        // Nothing else moves: each field alone changes one value of the whole profile.
        let lines =
            |p: &Profile| -> Vec<String> { format!("{p:#?}").lines().map(str::to_owned).collect() };
        let before = lines(&base);
        for (name, value) in o.set() {
            let one: Overrides = ron::Options::default()
                .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
                .from_str(&format!("({name}: {value:?})"))
                .unwrap();
            let after = lines(&one.apply(base.clone()));
            assert_eq!(after.len(), before.len(), "{name}");
            let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
            assert_eq!(moved, 1, "{name} changes exactly one value");
        }
        // No override: the profile as built in.
        assert_eq!(lines(&Overrides::default().apply(base.clone())), before);
    }

    #[test]
    fn override_values_that_round_to_nothing_or_overflow_are_refused() {
        assert!(Overrides::invalid("frontend_probe_period_s", 1e-12).is_some());
        assert!(Overrides::invalid("frontend_probe_period_s", 1.0).is_none());
        assert!(Overrides::invalid("nic_gbit_s", 1e-300).is_some());
        assert!(Overrides::invalid("lease_ttl_s", 1e300).is_some());
        assert!(Overrides::invalid("kv_handoff_s", 0.0).is_none());
        assert!(Overrides::invalid("worker_start_s", f64::NAN).is_some());
    }
}
