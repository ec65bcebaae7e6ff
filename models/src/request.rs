//! What travels with a request between components besides its sizes: the shared prompt
//! prefix it starts with, from which every component derives the same block hashes.

use crate::engine::chain_hash;

/// A prompt's shared prefix: `tokens` leading tokens common to every request of `group`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// Prefix group (requests of a group share the prefix).
    pub group: u32,
    /// Length of the shared prefix [tokens]; 0 for none.
    pub tokens: u32,
}

impl Prefix {
    /// Chained hashes of the prefix's full KV blocks of `block_size` tokens: equal for every
    /// request of the group, different between groups.
    pub fn block_hashes(&self, block_size: u32) -> Vec<u64> {
        let mut out: Vec<u64> = Vec::with_capacity((self.tokens / block_size) as usize);
        for k in 0..self.tokens / block_size {
            let content = (u64::from(self.group) << 32) | u64::from(k);
            out.push(chain_hash(out.last().copied(), content));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_share_hashes_and_differ_from_each_other() {
        let a = Prefix {
            group: 1,
            tokens: 200,
        }
        .block_hashes(64);
        let b = Prefix {
            group: 1,
            tokens: 130,
        }
        .block_hashes(64);
        let c = Prefix {
            group: 2,
            tokens: 200,
        }
        .block_hashes(64);
        assert_eq!(a.len(), 3);
        assert_eq!(&a[..2], &b[..]);
        assert!(a.iter().all(|h| !c.contains(h)));
        assert!(Prefix::default().block_hashes(64).is_empty());
    }
}
