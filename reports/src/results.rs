//! `results.csv`: one row per (scenario, deployment, failure, seed), and the per-attempt CSV.

use models::metrics::{RowMetrics, RunLog};

/// The columns of `results.csv`, in order (documented in the README).
pub const COLUMNS: &[&str] = &[
    "scenario",
    "deployment",
    "failure",
    "seed",
    "router",
    "startup_s",
    "success_before",
    "failed_before",
    "success_after",
    "failed_after",
    "latency_before_s",
    "latency_after_s",
    "pending_before",
    "pending_after",
    "violations_before",
    "violations_after",
    "recovery_s",
    "latency_p50_s",
    "latency_p90_s",
    "latency_p99_s",
    "ttft_mean_s",
    "ttft_p99_s",
    "itl_mean_s",
    "throughput_rps",
    "prefix_hit_rate",
    "fallbacks",
    "migrations",
    "dead_clients",
    "attempts",
    "events",
    "trace_hash",
];

/// The numeric columns (summarised across seeds): all but the run's keys, its router and
/// its hash.
pub fn numeric_columns() -> &'static [&'static str] {
    &COLUMNS[5..COLUMNS.len() - 1]
}

/// One finished run, ready to be written (and read back whole by a resumed sweep).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResultRow {
    /// Scenario name.
    pub scenario: String,
    /// Deployment name (`agg-tp-1-dp-2`).
    pub deployment: String,
    /// Failure kind name (`decode_worker_pod`).
    pub failure: String,
    /// Seed.
    pub seed: u64,
    /// Router mode of the frontends.
    pub router: String,
    /// The parsed metrics.
    pub metrics: RowMetrics,
    /// Events simulated.
    pub events: u64,
    /// Trace hash of the run.
    pub trace_hash: u64,
}

fn f(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.4}")).unwrap_or_default()
}
fn u(x: Option<u64>) -> String {
    x.map(|v| v.to_string()).unwrap_or_default()
}

impl ResultRow {
    /// The run's id, used for its file names.
    pub fn id(&self) -> String {
        run_id(&self.scenario, &self.deployment, &self.failure, self.seed)
    }

    /// The CSV line (no newline), columns as [`COLUMNS`]; empty cells are N/A.
    pub fn csv(&self) -> String {
        let m = &self.metrics;
        [
            self.scenario.clone(),
            self.deployment.clone(),
            self.failure.clone(),
            self.seed.to_string(),
            self.router.clone(),
            f(m.startup_s),
            m.success_before.to_string(),
            m.failed_before.to_string(),
            u(m.success_after),
            u(m.failed_after),
            f(m.latency_before_s),
            f(m.latency_after_s),
            f(m.pending_before),
            f(m.pending_after),
            u(m.violations_before),
            u(m.violations_after),
            f(m.recovery_s),
            f(m.latency_p50_s),
            f(m.latency_p90_s),
            f(m.latency_p99_s),
            f(m.ttft_mean_s),
            f(m.ttft_p99_s),
            f(m.itl_mean_s),
            f(m.throughput_rps),
            f(m.prefix_hit_rate),
            m.fallbacks.to_string(),
            m.migrations.to_string(),
            m.dead_clients.to_string(),
            m.attempts.to_string(),
            self.events.to_string(),
            format!("{:016x}", self.trace_hash),
        ]
        .join(",")
    }

    /// A value of a numeric column by name (None for N/A or a text column).
    pub fn value(&self, column: &str) -> Option<f64> {
        let m = &self.metrics;
        let c = |x: u64| Some(x as f64);
        match column {
            "startup_s" => m.startup_s,
            "success_before" => c(m.success_before),
            "failed_before" => c(m.failed_before),
            "success_after" => m.success_after.map(|x| x as f64),
            "failed_after" => m.failed_after.map(|x| x as f64),
            "latency_before_s" => m.latency_before_s,
            "latency_after_s" => m.latency_after_s,
            "pending_before" => m.pending_before,
            "pending_after" => m.pending_after,
            "violations_before" => m.violations_before.map(|x| x as f64),
            "violations_after" => m.violations_after.map(|x| x as f64),
            "recovery_s" => m.recovery_s,
            "latency_p50_s" => m.latency_p50_s,
            "latency_p90_s" => m.latency_p90_s,
            "latency_p99_s" => m.latency_p99_s,
            "ttft_mean_s" => m.ttft_mean_s,
            "ttft_p99_s" => m.ttft_p99_s,
            "prefix_hit_rate" => m.prefix_hit_rate,
            "fallbacks" => c(m.fallbacks),
            "migrations" => c(m.migrations),
            "itl_mean_s" => m.itl_mean_s,
            "throughput_rps" => m.throughput_rps,
            "dead_clients" => Some(f64::from(m.dead_clients)),
            "attempts" => c(m.attempts),
            "events" => c(self.events),
            _ => None,
        }
    }
}

/// The id of the run of `scenario` × `deployment` × `failure` with `seed`: the stem of its
/// files under `runs/` and `attempts/`.
pub fn run_id(scenario: &str, deployment: &str, failure: &str, seed: u64) -> String {
    format!("{scenario}__{deployment}__{failure}__seed{seed}")
}

/// The whole `results.csv` text for `rows`.
pub fn results_csv(rows: &[ResultRow]) -> String {
    let mut s = COLUMNS.join(",");
    s.push('\n');
    for r in rows {
        s.push_str(&r.csv());
        s.push('\n');
    }
    s
}

/// The per-attempt CSV of one run.
pub fn attempts_csv(log: &RunLog) -> String {
    let mut s = String::from(
        "client,request,attempt,start_s,end_s,logged_s,outcome,latency_s,first_token_s\n",
    );
    for a in &log.attempts {
        let ft = a
            .first_token
            .map(|t| format!("{:.6}", t.as_secs_f64()))
            .unwrap_or_default();
        s.push_str(&format!(
            "{},{},{},{:.6},{:.6},{:.6},{},{:.6},{}\n",
            a.client,
            a.request,
            a.attempt,
            a.start.as_secs_f64(),
            a.end.as_secs_f64(),
            a.logged.as_secs_f64(),
            a.outcome.name(),
            (a.end - a.start).as_secs_f64(),
            ft
        ));
    }
    s
}

/// A row of a CSV table read back: its text key columns and its numeric cells by column
/// (`None` for an empty or `N/A` cell).
#[derive(Clone, Debug)]
pub struct CsvRow {
    /// The key columns' text, in the order asked for.
    pub keys: Vec<String>,
    /// Every other column's value, except the ignored ones.
    pub values: std::collections::BTreeMap<String, Option<f64>>,
}

/// Reads a CSV table with a header line: `keys` must be columns and are kept as text,
/// `ignore` columns are skipped, every other cell must be a number, empty or `N/A`. Errors
/// name the line (and column).
pub fn read_csv(text: &str, keys: &[&str], ignore: &[&str]) -> Result<Vec<CsvRow>, String> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or("line 1: empty file")?
        .split(',')
        .map(str::trim)
        .collect();
    let key_at: Vec<usize> = keys
        .iter()
        .map(|k| {
            header
                .iter()
                .position(|h| h == k)
                .ok_or(format!("line 1: the header has no `{k}` column"))
        })
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != header.len() {
            return Err(format!(
                "line {}: {} cells, the header has {}",
                i + 2,
                cells.len(),
                header.len()
            ));
        }
        let mut values = std::collections::BTreeMap::new();
        for (j, (h, c)) in header.iter().zip(&cells).enumerate() {
            if key_at.contains(&j) || ignore.contains(h) {
                continue;
            }
            let v = match *c {
                "" | "N/A" => None,
                t => Some(
                    t.parse::<f64>()
                        .map_err(|_| format!("line {}: `{h}` is not a number: `{t}`", i + 2))?,
                ),
            };
            values.insert(h.to_string(), v);
        }
        rows.push(CsvRow {
            keys: key_at.iter().map(|&j| cells[j].to_string()).collect(),
            values,
        });
    }
    Ok(rows)
}

/// Reads a `results.csv` back (for `compare`): keys scenario, deployment, failure.
pub fn parse_results_csv(text: &str) -> Result<Vec<CsvRow>, String> {
    read_csv(
        text,
        &["scenario", "deployment", "failure"],
        &["trace_hash", "router"],
    )
}
