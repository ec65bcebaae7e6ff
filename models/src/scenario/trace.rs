//! Replay traces in the Mooncake format: one JSON object per line with `timestamp` [ms],
//! `input_length` and `output_length` [tokens] and `hash_ids` (one id per 512-token block;
//! requests sharing leading ids share those prompt tokens). Every malformed line is an error
//! naming the file and the line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::request::Traces;

/// A trace read from its file.
#[derive(Clone, Debug, Default)]
pub struct TraceData {
    /// Arrival of each request [ms], in file order (non-decreasing).
    pub timestamps_ms: Vec<f64>,
    /// Prompt tokens.
    pub input: Vec<u32>,
    /// Output tokens.
    pub output: Vec<u32>,
    /// The requests' block ids.
    pub blocks: Arc<Traces>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    timestamp: f64,
    input_length: u32,
    output_length: u32,
    #[serde(default)]
    hash_ids: Vec<u64>,
}

/// What is wrong with a trace.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct TraceError {
    /// The trace file.
    pub path: PathBuf,
    /// 1-based line (0 when the file cannot be read).
    pub line: usize,
    /// What was expected.
    pub message: String,
}

/// Reads a trace whose blocks are `block_tokens` tokens long.
pub fn read(path: &Path, block_tokens: u32) -> Result<TraceData, TraceError> {
    let e = |line: usize, message: String| TraceError {
        path: path.to_owned(),
        line,
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|x| e(0, format!("cannot read: {x}")))?;
    let mut t = TraceData::default();
    let mut hash_ids = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let l: Line =
            serde_json::from_str(raw).map_err(|x| e(n, format!("not a trace record: {x}")))?;
        if !l.timestamp.is_finite() || l.timestamp < 0.0 {
            return Err(e(
                n,
                "field `timestamp`: expected a non-negative time [ms]".into(),
            ));
        }
        if t.timestamps_ms
            .last()
            .is_some_and(|&last| l.timestamp < last)
        {
            return Err(e(
                n,
                "field `timestamp`: expected timestamps in non-decreasing order".into(),
            ));
        }
        let most = super::limits::TOKENS;
        if [l.input_length, l.output_length]
            .iter()
            .any(|&x| x == 0 || x > most)
        {
            return Err(e(
                n,
                format!("fields `input_length`, `output_length`: expected 1 to {most} tokens"),
            ));
        }
        if (l.hash_ids.len() as u64) * u64::from(block_tokens)
            > u64::from(l.input_length) + u64::from(block_tokens)
        {
            return Err(e(
                n,
                format!(
                    "field `hash_ids`: expected at most one id per {block_tokens} prompt tokens"
                ),
            ));
        }
        // Only full blocks are shared: the last id of a prompt that ends inside its block is
        // the request's own.
        let full = (l.input_length / block_tokens) as usize;
        let mut ids = l.hash_ids;
        ids.truncate(full);
        t.timestamps_ms.push(l.timestamp);
        t.input.push(l.input_length);
        t.output.push(l.output_length);
        hash_ids.push(ids);
    }
    if t.input.is_empty() {
        return Err(e(1, "expected at least one trace record".into()));
    }
    t.blocks = Arc::new(Traces {
        block_tokens,
        hash_ids,
    });
    Ok(t)
}
