//! What travels with a request between components besides its sizes: the shared prompt
//! prefix it starts with, from which every component derives the same block hashes.

use std::sync::Arc;

use crate::engine::chain_hash;

/// A prompt's shared content.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Prefix {
    /// Nothing shared with other requests.
    #[default]
    None,
    /// `tokens` leading tokens common to every request of `group`.
    Group {
        /// Prefix group.
        group: u32,
        /// Length of the shared prefix [tokens].
        tokens: u32,
    },
    /// The blocks a replayed trace request lists (Mooncake `hash_ids`).
    Trace {
        /// Index of the request in the trace.
        index: u32,
    },
}

/// The block ids of a replayed trace's requests (Mooncake traces: one id per
/// `block_tokens`-token block; requests sharing leading ids share those tokens).
#[derive(Clone, Debug, Default)]
pub struct Traces {
    /// Tokens per trace block (Mooncake: 512).
    pub block_tokens: u32,
    /// Per request, its block ids.
    pub hash_ids: Vec<Vec<u64>>,
}

impl Prefix {
    /// Chained hashes of the shared full KV blocks of `block_size` tokens: equal for requests
    /// sharing that content, different otherwise.
    pub fn block_hashes(&self, block_size: u32, traces: &Arc<Traces>) -> Vec<u64> {
        match *self {
            Prefix::None => Vec::new(),
            Prefix::Group { group, tokens } => {
                let mut out: Vec<u64> = Vec::with_capacity((tokens / block_size) as usize);
                for k in 0..tokens / block_size {
                    let content = (u64::from(group) << 32) | u64::from(k);
                    out.push(chain_hash(out.last().copied(), content));
                }
                out
            }
            Prefix::Trace { index } => {
                // Each trace block covers `block_tokens` tokens: engine block k lies in trace
                // block k·bs / block_tokens, and its content is that id and its place in it.
                let ids = &traces.hash_ids[index as usize];
                let per = traces.block_tokens.max(block_size) / block_size;
                let mut out: Vec<u64> = Vec::with_capacity(ids.len() * per as usize);
                for (j, &id) in ids.iter().enumerate() {
                    for k in 0..per {
                        let content = id.wrapping_mul(0x9e37_79b9_7f4a_7c15)
                            ^ u64::from(k)
                            ^ ((j as u64) << 48);
                        out.push(chain_hash(out.last().copied(), content));
                    }
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_share_hashes_and_differ_from_each_other() {
        let t = Arc::new(Traces::default());
        let a = Prefix::Group {
            group: 1,
            tokens: 200,
        }
        .block_hashes(64, &t);
        let b = Prefix::Group {
            group: 1,
            tokens: 130,
        }
        .block_hashes(64, &t);
        let c = Prefix::Group {
            group: 2,
            tokens: 200,
        }
        .block_hashes(64, &t);
        assert_eq!(a.len(), 3);
        assert_eq!(&a[..2], &b[..]);
        assert!(a.iter().all(|h| !c.contains(h)));
        assert!(Prefix::None.block_hashes(64, &t).is_empty());
    }

    #[test]
    fn trace_requests_sharing_leading_ids_share_blocks() {
        let t = Arc::new(Traces {
            block_tokens: 512,
            hash_ids: vec![vec![1, 2, 3], vec![1, 2, 9], vec![7]],
        });
        let h = |i| Prefix::Trace { index: i }.block_hashes(64, &t);
        let (a, b, c) = (h(0), h(1), h(2));
        assert_eq!(a.len(), 24, "8 engine blocks per 512-token trace block");
        assert_eq!(&a[..16], &b[..16]);
        assert_ne!(a[16], b[16]);
        assert!(c.iter().all(|x| !a.contains(x)));
    }
}
