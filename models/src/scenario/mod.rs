//! The scenario file: a deployment description a Dynamo user would recognise (backend, agg,
//! TP/DP, frontends, hardware profile), the load, the policies, the SLA, the seeds, and a matrix
//! of failures that `sweep` expands against the deployments.
//!
//! Parsing is strict: unknown fields, missing fields, malformed RON and impossible values all give
//! one [`ScenarioError`] naming the file, line:column and field.

mod locate;
pub mod trace;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use locate::Seg;

/// Everything that can be wrong with a scenario file. All are the user's to fix (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid RON for the scenario schema.
    #[error("{path}:{line}:{col}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What the parser expected.
        message: String,
    },
    /// A replay trace is malformed.
    #[error(transparent)]
    Trace(#[from] trace::TraceError),
    /// The file parsed but a value is impossible.
    #[error("{path}:{line}:{col}: field `{field}`: expected {expected}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// Dotted path of the field, e.g. `deployments[1].dp`.
        field: String,
        /// What a valid value looks like.
        expected: String,
    },
}

/// The serving backend. It changes process names and which engine-process failures exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// vLLM (`dynamo.vllm`, `VLLM::EngineCore`).
    Vllm,
    /// SGLang (`dynamo.sglang`, scheduler and detokenizer processes).
    Sglang,
    /// TensorRT-LLM (`dynamo.trtllm`, engine core).
    Trtllm,
}

/// How prefill and decode are placed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Aggregated: each worker prefills and decodes.
    #[default]
    Agg,
    /// Disaggregated: a decode pool and a prefill pool; decode workers send remote
    /// prefills and fall back to local prefill when no prefill worker is available.
    Disagg,
}

/// One deployment of the matrix (a Dynamo graph as the suite deploys it).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "Deployment")]
pub struct DeploymentSpec {
    /// Name in the tables; derived as `{mode}-tp-{tp}-dp-{dp}` when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Serving backend.
    pub backend: Backend,
    /// Aggregated or disaggregated.
    #[serde(default)]
    pub mode: Mode,
    /// Tensor-parallel GPUs per worker.
    #[serde(default = "one")]
    pub tp: u32,
    /// Data-parallel worker replicas (decode pool size).
    pub dp: u32,
    /// Frontend pod replicas. The suite deploys as many frontends as decode replicas
    /// (`ft-test-suite-k8s-a100.md`, dp-2 diagrams), which is the default here.
    #[serde(default)]
    pub frontends: Option<u32>,
    /// Prefill worker replicas of a disaggregated deployment (default: `dp`, as the suite
    /// deploys them).
    #[serde(default)]
    pub prefill_dp: Option<u32>,
    /// Tensor-parallel GPUs per prefill worker (default: `tp`).
    #[serde(default)]
    pub prefill_tp: Option<u32>,
    /// The frontends' router for this deployment (default: `policies.router`), so that one
    /// file can compare routers side by side.
    #[serde(default)]
    pub router: Option<RouterMode>,
    /// Standalone KV router replicas (`router: kv` only). 0: each frontend embeds its own KV
    /// router. With standalone routers the frontends ask one for every request and fall
    /// back to round-robin while none answers (REQ 7).
    #[serde(default)]
    pub routers: u32,
    /// Processors between the frontends and the workers (Dynamo's older graph, DEP
    /// scenarios 1–4); 0 for none. Requests and responses pass through one, round-robin.
    #[serde(default)]
    pub processors: u32,
    /// GPUs per node: workers (decode, then prefill, in order) fill nodes of this many GPUs,
    /// and KV transfers between workers on one node cross no NIC. Unset: each worker on a
    /// node of its own.
    #[serde(default)]
    pub gpus_per_node: Option<u32>,
}

impl DeploymentSpec {
    /// The router of this deployment's frontends.
    pub fn router_mode(&self, policies: &Policies) -> RouterMode {
        self.router.unwrap_or(policies.router)
    }

    /// The name used in the tables.
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let mode = match self.mode {
                Mode::Agg => "agg",
                Mode::Disagg => "disagg",
            };
            format!("{mode}-tp-{}-dp-{}", self.tp, self.dp)
        })
    }
    /// Frontend replicas.
    pub fn frontend_count(&self) -> u32 {
        self.frontends.unwrap_or(self.dp)
    }

    /// Prefill worker replicas (0 for an aggregated deployment).
    pub fn prefill_count(&self) -> u32 {
        match self.mode {
            Mode::Agg => 0,
            Mode::Disagg => self.prefill_dp.unwrap_or(self.dp),
        }
    }

    /// Tensor-parallel GPUs per prefill worker.
    pub fn prefill_tp(&self) -> u32 {
        self.prefill_tp.unwrap_or(self.tp)
    }

    /// The node of each worker (decode workers, then prefill workers): filled in order,
    /// `gpus_per_node` GPUs per node, a worker never split over two.
    pub(crate) fn worker_hosts(&self) -> Vec<u16> {
        let gpus = (0..self.dp)
            .map(|_| self.tp)
            .chain((0..self.prefill_count()).map(|_| self.prefill_tp()));
        let Some(per_node) = self.gpus_per_node else {
            return (0..self.dp + self.prefill_count())
                .map(|i| i as u16)
                .collect();
        };
        let (mut node, mut used) = (0u16, 0u32);
        gpus.map(|g| {
            if used > 0 && used + g > per_node {
                node += 1;
                used = 0;
            }
            used += g;
            node
        })
        .collect()
    }
}

/// The suite's closed-loop test client (`model-facts.md` §1).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "Harness")]
pub struct HarnessLoad {
    /// Client processes (§1: 10).
    pub clients: u32,
    /// Requests per client (§1: 150).
    pub requests_per_client: u32,
    /// Prompt length [tokens] (§1: 100).
    pub input_tokens: u32,
    /// Generated tokens per request, `min_tokens = max_tokens` with `ignore_eos` (§1: 100).
    pub output_tokens: u32,
    /// Per-client rate cap [requests/s]: a request is padded to 1/rate (§1: 1).
    #[serde(default = "one_f")]
    pub max_request_rate: f64,
    /// Attempts per request (§1: 1 in the tables' client; 1 + max_retries in later ones).
    #[serde(default = "one")]
    pub attempts: u32,
    /// Per-attempt HTTP timeout [s] (§1: 30).
    #[serde(default = "thirty")]
    pub attempt_timeout_s: f64,
    /// Sleep after every failed attempt [s] (§1: 1).
    #[serde(default = "one_f")]
    pub retry_sleep_s: f64,
    /// Characters of content a success needs (§1: 100).
    #[serde(default = "hundred")]
    pub min_content_chars: u32,
    /// How the parser makes rows: one per attempt, the only mode (with the suite's one
    /// attempt per request that is one per request, as in the tables).
    #[serde(default)]
    pub rows: RowMode,
    /// Shared-prefix workload: number of prefix groups (each request draws one uniformly);
    /// 0 for prompts with no shared prefix.
    #[serde(default)]
    pub prefix_groups: u32,
    /// Length of each group's shared prefix at the start of the prompt [tokens].
    #[serde(default)]
    pub prefix_tokens: u32,
}

/// How the parser turns a client's log into rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowMode {
    /// One row per attempt: with one attempt per request, one per request (the tables).
    #[default]
    PerAttempt,
}

/// The offered load.
#[derive(Clone, Debug, Deserialize)]
pub enum Load {
    /// The fault-tolerance suite's client processes.
    Harness(HarnessLoad),
    /// Open-loop replay of a Mooncake-style trace.
    Trace(TraceLoad),
}

/// Open-loop replay of a trace: each record is sent at its timestamp to a Ready frontend
/// (round-robin over the Ready frontend pods, as a Kubernetes Service spreads connections).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "Trace")]
pub struct TraceLoad {
    /// The JSONL trace, relative to the scenario file.
    pub file: String,
    /// Tokens per trace block (`hash_ids` granularity; Mooncake: 512).
    #[serde(default = "five_twelve")]
    pub block_tokens: u32,
    /// Replay speed: timestamps are divided by it.
    #[serde(default = "one_f")]
    pub speedup: f64,
    /// Per-request HTTP timeout [s].
    #[serde(default = "thirty")]
    pub timeout_s: f64,
    /// The trace, read at load time.
    #[serde(skip)]
    pub data: std::sync::Arc<trace::TraceData>,
}

fn five_twelve() -> u32 {
    512
}

/// The request router inside each frontend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouterMode {
    /// Round-robin over live instances (Dynamo's default, §2).
    #[default]
    RoundRobin,
    /// Uniformly random instance.
    Random,
    /// The less loaded (fewer requests in flight) of two random instances.
    PowerOfTwo,
    /// KV-aware: the worker with the lowest `overlap_weight × prefill blocks + decode
    /// blocks`, from the engines' KV events (§2).
    Kv,
}

impl RouterMode {
    /// The mode's name in files and tables.
    pub fn name(self) -> &'static str {
        match self {
            RouterMode::RoundRobin => "round_robin",
            RouterMode::Random => "random",
            RouterMode::PowerOfTwo => "power_of_two",
            RouterMode::Kv => "kv",
        }
    }
}

/// Fault-tolerance policies.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policies {
    /// Frontend router mode.
    #[serde(default)]
    pub router: RouterMode,
    /// Extra attempts the frontend makes on another worker when a stream fails
    /// (`--migration-limit`, default 0, §4).
    #[serde(default)]
    pub migration_limit: u32,
    /// Whether the vLLM worker's engine monitor detects an engine sub-process death (2 s
    /// polling, §3). `false` models the older releases where requests hang until the client
    /// timeout. SGLang and TensorRT-LLM workers have none in the releases modelled.
    #[serde(default = "yes")]
    pub engine_monitor: bool,
    /// KV router: weight of the prefill blocks against the decode blocks (§2: 1.0).
    #[serde(default = "one_f")]
    pub kv_overlap_weight: f64,
    /// KV router: softmax temperature; 0 picks the lowest cost (§2: 0).
    #[serde(default)]
    pub kv_temperature: f64,
    /// KV router: whether engines publish KV events (§2: on). `false` is Dynamo's
    /// `--no-kv-events`: the router predicts cached blocks from its own decisions (TTL 120 s).
    #[serde(default = "yes")]
    pub kv_events: bool,
    /// Standalone KV router replicas share their active-block state (Dynamo
    /// `--router-replica-sync`, off by default).
    #[serde(default)]
    pub router_replica_sync: bool,
}

impl Default for Policies {
    fn default() -> Self {
        Policies {
            router: RouterMode::RoundRobin,
            migration_limit: 0,
            engine_monitor: true,
            kv_overlap_weight: 1.0,
            kv_temperature: 0.0,
            kv_events: true,
            router_replica_sync: false,
        }
    }
}

/// The failure kinds of the suite (`ft-test-suite-k8s-a100.md`, Failures).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// No failure (baseline).
    None,
    /// SIGINT to the frontend process.
    Frontend,
    /// Force-delete the frontend pod.
    FrontendPod,
    /// SIGKILL to `dynamo.<backend>` in a decode worker pod.
    DecodeWorker,
    /// Force-delete a decode worker pod.
    DecodeWorkerPod,
    /// SIGKILL to `dynamo.<backend>` in a prefill worker pod.
    PrefillWorker,
    /// Force-delete a prefill worker pod.
    PrefillWorkerPod,
    /// SIGKILL to vLLM's `EngineCore` of a decode worker.
    VllmDecodeEngineCore,
    /// SIGKILL to vLLM's `EngineCore` of a prefill worker.
    VllmPrefillEngineCore,
    /// SIGKILL to SGLang's decode scheduler (`sglang::scheduler`). Nothing notices: SGLang
    /// checks its sub-processes only at launch, a SIGKILLed child sends no SIGQUIT to the
    /// parent, the TokenizerManager waits on in a 4-s loop, and Dynamo's SGLang worker has no
    /// engine monitor (sglang 0.4.10–0.5.3 `engine.py`, `tokenizer_manager.py`; Dynamo
    /// 0.4–0.6 `components/backends/sglang`). The worker stays registered and requests to it
    /// hang until the client's timeout.
    SglangDecodeScheduler,
    /// SIGKILL to SGLang's decode detokenizer (`sglang::detokenizer`). No effect on traffic:
    /// Dynamo runs SGLang with `skip_tokenizer_init = True`, so the scheduler sends its output
    /// straight to the TokenizerManager and the detokenizer is bypassed (Dynamo sglang
    /// `args.py`, sglang `scheduler.py`).
    SglangDecodeDetokenizer,
    /// SIGKILL to SGLang's prefill scheduler (as the decode scheduler).
    SglangPrefillScheduler,
    /// SIGKILL to SGLang's prefill detokenizer (as the decode detokenizer: no effect).
    SglangPrefillDetokenizer,
    /// SIGKILL to the process matching `TRTLLM::EngineCore`. No effect: TensorRT-LLM sets no
    /// process title (its executor workers run as `python -m mpi4py.futures.server`), so the
    /// suite's `ps -aux` match finds nothing to kill. Inferred from TensorRT-LLM 1.0–1.1's
    /// source, not observed.
    TrtllmDecodeEngineCore,
    /// SIGKILL to `TRTLLM::EngineCore` in a prefill worker (as the decode one: no effect).
    TrtllmPrefillEngineCore,
    /// SIGKILL to the standalone KV router process (DEP scenario 3).
    Router,
    /// Force-delete the standalone KV router pod.
    RouterPod,
    /// SIGKILL to a processor process (DEP scenario 4).
    Processor,
    /// Force-delete a processor pod.
    ProcessorPod,
}

/// Which part of the deployment a failure hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Frontend pods.
    Frontend,
    /// Decode (aggregated) worker pods.
    Decode,
    /// Prefill worker pods.
    Prefill,
    /// Standalone KV router pods.
    Router,
    /// Processor pods (the older graph).
    Processor,
}

/// What a failure does to its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureAction {
    /// Kill the main process with a signal; `graceful` is SIGINT/SIGTERM, otherwise SIGKILL.
    KillProcess {
        /// Whether the process gets to shut down gracefully.
        graceful: bool,
    },
    /// Kill the engine sub-process only. Whether anybody notices depends on the backend:
    /// the vLLM worker's engine monitor does (`policies.engine_monitor`); nothing does for
    /// SGLang's scheduler.
    KillEngineCore,
    /// Force-delete the pod.
    DeletePod,
    /// A kill that does not touch serving: the process is not on the request path, or the
    /// suite's process pattern matches none.
    NoEffect,
}

impl FailureKind {
    /// The suite's name for the kind.
    pub fn name(self) -> &'static str {
        use FailureKind::*;
        match self {
            None => "none",
            Frontend => "frontend",
            FrontendPod => "frontend_pod",
            DecodeWorker => "decode_worker",
            DecodeWorkerPod => "decode_worker_pod",
            PrefillWorker => "prefill_worker",
            PrefillWorkerPod => "prefill_worker_pod",
            VllmDecodeEngineCore => "vllm_decode_engine_core",
            VllmPrefillEngineCore => "vllm_prefill_engine_core",
            SglangDecodeScheduler => "sglang_decode_scheduler",
            SglangDecodeDetokenizer => "sglang_decode_detokenizer",
            SglangPrefillScheduler => "sglang_prefill_scheduler",
            SglangPrefillDetokenizer => "sglang_prefill_detokenizer",
            TrtllmDecodeEngineCore => "trtllm_decode_engine_core",
            TrtllmPrefillEngineCore => "trtllm_prefill_engine_core",
            Router => "router",
            RouterPod => "router_pod",
            Processor => "processor",
            ProcessorPod => "processor_pod",
        }
    }

    /// The role hit and the action, or `None` for the baseline.
    pub fn target(self) -> Option<(Role, FailureAction)> {
        use FailureAction::*;
        use FailureKind as K;
        Some(match self {
            K::None => return None,
            K::Frontend => (Role::Frontend, KillProcess { graceful: true }),
            K::FrontendPod => (Role::Frontend, DeletePod),
            K::DecodeWorker => (Role::Decode, KillProcess { graceful: false }),
            K::DecodeWorkerPod => (Role::Decode, DeletePod),
            K::PrefillWorker => (Role::Prefill, KillProcess { graceful: false }),
            K::PrefillWorkerPod => (Role::Prefill, DeletePod),
            K::Router => (Role::Router, KillProcess { graceful: false }),
            K::RouterPod => (Role::Router, DeletePod),
            K::Processor => (Role::Processor, KillProcess { graceful: false }),
            K::ProcessorPod => (Role::Processor, DeletePod),
            K::VllmDecodeEngineCore | K::SglangDecodeScheduler => (Role::Decode, KillEngineCore),
            K::VllmPrefillEngineCore | K::SglangPrefillScheduler => (Role::Prefill, KillEngineCore),
            K::SglangDecodeDetokenizer | K::TrtllmDecodeEngineCore => (Role::Decode, NoEffect),
            K::SglangPrefillDetokenizer | K::TrtllmPrefillEngineCore => (Role::Prefill, NoEffect),
        })
    }

    /// The role hit and the action on `deployment`. As `target`, except that an SGLang
    /// scheduler kill on a tensor-parallel worker ends the whole worker process: the
    /// surviving ranks' next broadcast from the dead rank 0 fails at once, their exception
    /// handler sends SIGQUIT to the parent, and its handler kills the process tree
    /// (`kill_process_tree`; sglang 0.4.10–0.5.3 `scheduler.py` `run_scheduler_process`,
    /// `engine.py`) — the suite's kills of the other ranks come one `kubectl exec` later.
    /// Inferred from the source, not observed.
    pub fn target_in(self, deployment: &DeploymentSpec) -> Option<(Role, FailureAction)> {
        let (role, action) = self.target()?;
        let tp = match role {
            Role::Prefill => deployment.prefill_tp(),
            _ => deployment.tp,
        };
        let scheduler = matches!(
            self,
            FailureKind::SglangDecodeScheduler | FailureKind::SglangPrefillScheduler
        );
        Some(if scheduler && tp > 1 {
            (role, FailureAction::KillProcess { graceful: false })
        } else {
            (role, action)
        })
    }

    /// The backend an engine-process kind belongs to, if it is backend-specific.
    pub fn backend(self) -> Option<Backend> {
        use FailureKind::*;
        match self {
            VllmDecodeEngineCore | VllmPrefillEngineCore => Some(Backend::Vllm),
            SglangDecodeScheduler
            | SglangDecodeDetokenizer
            | SglangPrefillScheduler
            | SglangPrefillDetokenizer => Some(Backend::Sglang),
            TrtllmDecodeEngineCore | TrtllmPrefillEngineCore => Some(Backend::Trtllm),
            _ => Option::None,
        }
    }
}

/// One failure row of the matrix.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "Failure")]
pub struct FailureSpec {
    /// What to break.
    pub kind: FailureKind,
    /// First replica of the role to hit (the suite hits the first listed pod: 0).
    #[serde(default)]
    pub index: u32,
    /// How many replicas to hit, from `index` on.
    #[serde(default = "one")]
    pub count: u32,
    /// Seconds after the client processes are spawned (§1: 30). Exclusive with
    /// `after_requests`.
    #[serde(default)]
    pub at_s: Option<f64>,
    /// Inject once this many requests have finished, instead of at a time.
    #[serde(default)]
    pub after_requests: Option<u32>,
}

/// When a failure is injected.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Trigger {
    /// Seconds after the client processes are spawned.
    AtSecs(f64),
    /// Once this many requests have finished.
    AfterRequests(u32),
}

impl FailureSpec {
    /// When to inject (default: 30 s after the clients are spawned, `model-facts.md` §1).
    pub fn trigger(&self) -> Trigger {
        match (self.at_s, self.after_requests) {
            (_, Some(n)) => Trigger::AfterRequests(n),
            (Some(s), None) => Trigger::AtSecs(s),
            (None, None) => Trigger::AtSecs(30.0),
        }
    }
}

/// A scenario file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Scenario name (first column of results.csv).
    pub name: String,
    /// Free text for the reader.
    #[serde(default)]
    pub description: String,
    /// Built-in hardware/deployment profile, e.g. `"a100-k8s"` (see `profile`).
    pub profile: String,
    /// Changes to that profile's hardware and platform parameters, for every row alike.
    #[serde(default)]
    pub profile_overrides: crate::profile::Overrides,
    /// First seed.
    #[serde(default = "one_u64")]
    pub seed: u64,
    /// Number of seeds (`seed`, `seed + 1`, ...); `sweep --seeds` overrides it.
    #[serde(default = "one")]
    pub seeds: u32,
    /// The deployments of the matrix.
    pub deployments: Vec<DeploymentSpec>,
    /// The offered load.
    pub load: Load,
    /// Fault-tolerance policies.
    #[serde(default)]
    pub policies: Policies,
    /// Latency SLA [s]: successes slower than this are violations.
    #[serde(default)]
    pub sla_s: Option<f64>,
    /// The failure rows of the matrix (each is run against every deployment).
    pub failures: Vec<FailureSpec>,
    /// Simulated time after which a run is cut off [s] (a guard against a hung scenario).
    #[serde(default = "max_sim_s")]
    pub max_sim_s: f64,
}

/// Bounds that keep a run's counts inside the simulator's index types (pods, workers and
/// clients are `u16` slots; `u16::MAX` is the open-loop source) and its sums and clock from
/// overflowing — far above any deployment or study a scenario describes.
pub mod limits {
    /// Replicas of one pool: frontends, decode or prefill workers, routers, processors.
    pub const POOL: u32 = 10_000;
    /// GPUs per worker (TP) and per node.
    pub const GPUS: u32 = 1_024;
    /// Harness clients.
    pub const CLIENTS: u32 = 60_000;
    /// Tokens of one prompt or one answer (the two sum within `u32`).
    pub const TOKENS: u32 = 10_000_000;
    /// Seeds of one file (and of `sweep --seeds`).
    pub const SEEDS: u32 = 1_000_000;
    /// Simulated seconds of one run (the nanosecond clock holds ~584 years).
    pub const SIM_S: f64 = 1e9;
}

/// Whether `name` can name files and CSV cells: ASCII letters, digits, `-`, `_`, `.` and
/// `+`, starting with a letter or digit, at most 100 characters.
pub fn is_file_name(name: &str) -> bool {
    name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'))
}

impl Scenario {
    /// The error for the file at `path` when an earlier file of the same sweep (`first`,
    /// perhaps the same file listed twice) names its scenario `name` too: their runs would
    /// write the same files and rows.
    pub fn name_taken(path: &Path, first: &Path, name: &str) -> ScenarioError {
        let src = std::fs::read_to_string(path).unwrap_or_default();
        let (line, col) = locate::locate(&src, &[Seg::Key("name")]);
        ScenarioError::Invalid {
            path: path.to_owned(),
            line,
            col,
            field: "name".into(),
            expected: format!(
                "a scenario name no other file of the sweep has: `{}` is `{name}` too, and \
                 their runs would write the same files",
                first.display()
            ),
        }
    }

    /// The scenario's profile: the built-in one named, with its overrides applied.
    pub fn profile(&self) -> Option<crate::profile::Profile> {
        crate::profile::Profile::builtin(&self.profile).map(|p| self.profile_overrides.apply(p))
    }
}

fn one() -> u32 {
    1
}
fn one_u64() -> u64 {
    1
}
fn one_f() -> f64 {
    1.0
}
fn thirty() -> f64 {
    30.0
}
fn hundred() -> u32 {
    100
}
fn yes() -> bool {
    true
}
fn max_sim_s() -> f64 {
    4.0 * 3600.0
}

impl Scenario {
    /// Reads, parses and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let src = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&src, path)
    }

    /// Parses and validates scenario text; `path` names it in errors.
    pub fn parse(src: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        let opts = ron::Options::default()
            .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
            .with_default_extension(ron::extensions::Extensions::UNWRAP_VARIANT_NEWTYPES);
        let mut scenario: Scenario = opts.from_str(src).map_err(|e| ScenarioError::Parse {
            path: path.to_owned(),
            line: e.span.start.line,
            col: e.span.start.col,
            message: e.code.to_string(),
        })?;
        scenario.validate(src, path)?;
        if let Load::Trace(t) = &mut scenario.load {
            let file = path.parent().unwrap_or(Path::new(".")).join(&t.file);
            t.data = std::sync::Arc::new(trace::read(&file, t.block_tokens)?);
        }
        Ok(scenario)
    }

    fn validate(&self, src: &str, path: &Path) -> Result<(), ScenarioError> {
        use Seg::{Index, Key};
        let err = |segs: &[Seg], expected: &str| {
            let (line, col) = locate::locate(src, segs);
            let field = segs.iter().fold(String::new(), |mut s, seg| {
                match seg {
                    Key(k) if s.is_empty() => s.push_str(k),
                    Key(k) => {
                        s.push('.');
                        s.push_str(k)
                    }
                    Index(i) => s.push_str(&format!("[{i}]")),
                }
                s
            });
            Err(ScenarioError::Invalid {
                path: path.to_owned(),
                line,
                col,
                field,
                expected: expected.to_owned(),
            })
        };
        let positive = |x: f64| x.is_finite() && x > 0.0;
        let non_negative = |x: f64| x.is_finite() && x >= 0.0;

        if crate::profile::Profile::builtin(&self.profile).is_none() {
            let names = crate::profile::Profile::BUILTIN.join(", ");
            return err(
                &[Key("profile")],
                &format!("one of the built-in profiles: {names}"),
            );
        }
        for (name, value) in self.profile_overrides.set() {
            if let Some(expected) = crate::profile::Overrides::invalid(name, value) {
                return err(&[Key("profile_overrides"), Key(name)], &expected);
            }
        }
        if let Some(p) = self.profile() {
            let (ka, ttl) = (p.process.lease_keepalive, p.process.lease_ttl);
            if ka >= ttl {
                let field = if self.profile_overrides.lease_keepalive_s.is_some() {
                    "lease_keepalive_s"
                } else {
                    "lease_ttl_s"
                };
                return err(
                    &[Key("profile_overrides"), Key(field)],
                    &format!(
                        "a lease keep-alive interval shorter than the lease TTL (now {} s and {} s)",
                        ka.as_secs_f64(),
                        ttl.as_secs_f64()
                    ),
                );
            }
            let roofline = matches!(p.timing, crate::engine::timing::Timing::Roofline(_));
            if self.profile_overrides.step_overhead_ms.is_some() && !roofline {
                return err(
                    &[Key("profile_overrides"), Key("step_overhead_ms")],
                    "a profile with a roofline step-time model (this one has none to change)",
                );
            }
        }
        const NAME: &str = "a name of ASCII letters, digits, `-`, `_`, `.` or `+`, starting \
                            with a letter or digit, at most 100 characters (it names files \
                            and CSV cells)";
        if !is_file_name(&self.name) {
            return err(&[Key("name")], NAME);
        }
        if self.seeds == 0 || self.seeds > limits::SEEDS {
            return err(&[Key("seeds")], &format!("1 to {} seeds", limits::SEEDS));
        }
        if self.seed.checked_add(u64::from(self.seeds - 1)).is_none() {
            return err(
                &[Key("seed")],
                "a first seed whose `seeds` successors fit in 64 bits",
            );
        }
        if !(self.max_sim_s.is_finite()
            && self.max_sim_s >= 1e-3
            && self.max_sim_s <= limits::SIM_S)
        {
            return err(
                &[Key("max_sim_s")],
                &format!("1e-3 to {:e} seconds", limits::SIM_S),
            );
        }
        if let Some(sla) = self.sla_s {
            if !positive(sla) {
                return err(&[Key("sla_s")], "a positive number of seconds");
            }
        }
        if self.deployments.is_empty() {
            return err(&[Key("deployments")], "at least one deployment");
        }
        if self.failures.is_empty() {
            return err(
                &[Key("failures")],
                "at least one failure row (use `kind: none` for the baseline)",
            );
        }
        for (i, d) in self.deployments.iter().enumerate() {
            let at = |f: &'static str| [Key("deployments"), Index(i), Key(f)];
            if d.name.as_deref().is_some_and(|n| !is_file_name(n)) {
                return err(&at("name"), NAME);
            }
            let counts = [
                ("tp", Some(d.tp), limits::GPUS),
                ("prefill_tp", d.prefill_tp, limits::GPUS),
                ("gpus_per_node", d.gpus_per_node, limits::GPUS),
                ("dp", Some(d.dp), limits::POOL),
                ("prefill_dp", d.prefill_dp, limits::POOL),
                ("frontends", d.frontends, limits::POOL),
                ("routers", Some(d.routers), limits::POOL),
                ("processors", Some(d.processors), limits::POOL),
            ];
            for (field, value, most) in counts {
                if value.is_some_and(|v| v > most) {
                    return err(&at(field), &format!("at most {most}"));
                }
            }
            if d.tp == 0 {
                return err(&at("tp"), "at least 1 GPU per worker");
            }
            if d.dp == 0 {
                return err(&at("dp"), "at least 1 worker replica");
            }
            if d.frontend_count() == 0 {
                return err(&at("frontends"), "at least 1 frontend");
            }
            if d.routers > 0 && d.router_mode(&self.policies) != RouterMode::Kv {
                return err(&at("routers"), "standalone routers only with `router: kv`");
            }
            if d.mode == Mode::Disagg && d.prefill_count() == 0 {
                return err(
                    &at("prefill_dp"),
                    "at least 1 prefill worker in a disaggregated deployment",
                );
            }
            if d.mode == Mode::Disagg && d.prefill_tp() == 0 {
                return err(&at("prefill_tp"), "at least 1 GPU per prefill worker");
            }
            if let Some(g) = d.gpus_per_node {
                let widest = d.tp.max(if d.mode == Mode::Disagg {
                    d.prefill_tp()
                } else {
                    0
                });
                if g < widest {
                    return err(
                        &at("gpus_per_node"),
                        &format!(
                            "at least {widest} GPUs per node (a worker's TP group fits on one)"
                        ),
                    );
                }
            }
            if d.mode == Mode::Agg && (d.prefill_dp.is_some() || d.prefill_tp.is_some()) {
                let f = if d.prefill_dp.is_some() {
                    "prefill_dp"
                } else {
                    "prefill_tp"
                };
                return err(
                    &at(f),
                    "no prefill pool settings on an aggregated deployment (`mode: disagg` has one)",
                );
            }
        }
        // Rows are keyed by deployment name in the tables, results.csv and `compare`.
        for (i, d) in self.deployments.iter().enumerate() {
            let name = d.display_name();
            if let Some(j) = self.deployments[..i]
                .iter()
                .position(|e| e.display_name() == name)
            {
                return err(
                    &[Key("deployments"), Index(i), Key("name")],
                    &format!(
                        "a name of its own: deployments[{j}] is also `{name}` and their rows \
                         would mix (set `name: \"...\"` on one)"
                    ),
                );
            }
        }
        if !non_negative(self.policies.kv_overlap_weight) {
            return err(
                &[Key("policies"), Key("kv_overlap_weight")],
                "a finite, non-negative weight",
            );
        }
        if !non_negative(self.policies.kv_temperature) {
            return err(
                &[Key("policies"), Key("kv_temperature")],
                "a finite, non-negative temperature",
            );
        }
        let at = |f: &'static str| [Key("load"), Key(f)];
        match &self.load {
            Load::Trace(t) => {
                if t.block_tokens == 0 {
                    return err(&at("block_tokens"), "at least 1 token per trace block");
                }
                if !positive(t.speedup) {
                    return err(&at("speedup"), "a positive replay speed");
                }
                if !positive(t.timeout_s) {
                    return err(&at("timeout_s"), "a positive number of seconds");
                }
            }
            Load::Harness(h) => {
                if h.clients == 0 || h.clients > limits::CLIENTS {
                    return err(&at("clients"), &format!("1 to {} clients", limits::CLIENTS));
                }
                for (field, value) in [
                    ("input_tokens", h.input_tokens),
                    ("output_tokens", h.output_tokens),
                ] {
                    if value > limits::TOKENS {
                        return err(&at(field), &format!("at most {} tokens", limits::TOKENS));
                    }
                }
                if h.requests_per_client == 0 {
                    return err(&at("requests_per_client"), "at least 1 request");
                }
                if h.input_tokens == 0 {
                    return err(&at("input_tokens"), "at least 1 token");
                }
                if h.output_tokens == 0 {
                    return err(&at("output_tokens"), "at least 1 token");
                }
                if h.attempts == 0 {
                    return err(&at("attempts"), "at least 1 attempt per request");
                }
                if !positive(h.max_request_rate) {
                    return err(&at("max_request_rate"), "a positive rate [requests/s]");
                }
                if !positive(h.attempt_timeout_s) {
                    return err(&at("attempt_timeout_s"), "a positive number of seconds");
                }
                if h.prefix_tokens > h.input_tokens {
                    return err(
                        &at("prefix_tokens"),
                        "a prefix no longer than `input_tokens`",
                    );
                }
                if h.prefix_tokens > 0 && h.prefix_groups == 0 {
                    return err(
                        &at("prefix_groups"),
                        "at least 1 prefix group when `prefix_tokens` > 0",
                    );
                }
                if !non_negative(h.retry_sleep_s) {
                    return err(&at("retry_sleep_s"), "a non-negative number of seconds");
                }
            }
        }
        for (i, f) in self.failures.iter().enumerate() {
            let at = |k: &'static str| [Key("failures"), Index(i), Key(k)];
            if f.at_s.is_some() && f.after_requests.is_some() {
                return err(
                    &at("after_requests"),
                    "either `at_s` or `after_requests`, not both",
                );
            }
            if let Some(s) = f.at_s {
                if !non_negative(s) {
                    return err(&at("at_s"), "a non-negative number of seconds");
                }
                if s > self.max_sim_s {
                    return err(
                        &at("at_s"),
                        &format!(
                            "a time within the run (`max_sim_s` is {} s): this fault would never happen",
                            self.max_sim_s
                        ),
                    );
                }
            }
            if f.count == 0 {
                return err(&at("count"), "at least 1 replica to hit");
            }
            let Some((role, _)) = f.kind.target() else {
                continue;
            };
            for (j, d) in self.deployments.iter().enumerate() {
                let name = d.display_name();
                if let Some(b) = f.kind.backend() {
                    if b != d.backend {
                        return err(
                            &at("kind"),
                            &format!(
                                "a failure of the deployment's backend ({:?}); `{}` needs {:?} (deployments[{j}] `{name}`)",
                                d.backend,
                                f.kind.name(),
                                b
                            ),
                        );
                    }
                }
                let replicas = match role {
                    Role::Frontend => d.frontend_count(),
                    Role::Decode => d.dp,
                    Role::Prefill if d.prefill_count() > 0 => d.prefill_count(),
                    Role::Router if d.routers > 0 => d.routers,
                    Role::Processor if d.processors > 0 => d.processors,
                    Role::Processor => {
                        return err(
                            &at("kind"),
                            &format!(
                                "a role the deployment has: `{}` targets processors, which `{name}` (deployments[{j}]) lacks (set `processors`)",
                                f.kind.name()
                            ),
                        )
                    }
                    Role::Router => {
                        return err(
                            &at("kind"),
                            &format!(
                                "a role the deployment has: `{}` targets standalone routers, which `{name}` (deployments[{j}]) lacks (set `routers`)",
                                f.kind.name()
                            ),
                        )
                    }
                    Role::Prefill => {
                        return err(
                            &at("kind"),
                            &format!(
                                "a role the deployment has: `{}` targets prefill workers, which `{name}` (deployments[{j}]) lacks",
                                f.kind.name()
                            ),
                        )
                    }
                };
                if f.index >= replicas {
                    return err(
                        &at("index"),
                        &format!(
                            "a replica index below {replicas}: `{name}` (deployments[{j}]) has {replicas} {role:?} replica(s)"
                        ),
                    );
                }
                if u64::from(f.index) + u64::from(f.count) > u64::from(replicas) {
                    return err(
                        &at("count"),
                        &format!(
                            "at most {replicas} replica(s) from index {} on: `{name}` (deployments[{j}]) has {replicas} {:?} replica(s)",
                            f.index, role
                        ),
                    );
                }
            }
        }
        Ok(())
    }
}
