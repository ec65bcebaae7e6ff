//! A stable hash: the same value on every platform, release and run.

use std::hash::Hasher;

/// FNV-1a, 64-bit: fixed and unseeded, for stream ids, trace words and fingerprints (never
/// for tables keyed by untrusted input). Bytes given to [`Hasher::write`] hash the same
/// everywhere; the `Hash` impls of integers feed native-endian bytes.
#[derive(Clone, Copy, Debug)]
pub struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for StableHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Formatted text hashes as its bytes, with nothing allocated (`write!(h, "{x:?}")`).
impl std::fmt::Write for StableHasher {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        Hasher::write(self, s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write;
    use std::hash::Hasher;

    use super::StableHasher;

    #[test]
    fn known_fnv1a_values_and_text_as_bytes() {
        // FNV-1a 64 test vectors (Fowler, Noll, Vo): "" and "a".
        assert_eq!(StableHasher::default().finish(), 0xcbf2_9ce4_8422_2325);
        let mut a = StableHasher::default();
        a.write(b"a");
        assert_eq!(a.finish(), 0xaf63_dc4c_8601_ec8c);
        let mut t = StableHasher::default();
        let (x, y) = ("foo", 0xba_u32);
        write!(t, "{x}{y:x}r").unwrap();
        let mut b = StableHasher::default();
        b.write(b"foobar");
        assert_eq!(t.finish(), b.finish());
        assert_eq!(b.finish(), 0x8594_4171_f739_67e8);
    }
}
