//! The filter of a sealed segment: which streams and idempotency keys it may hold.
//!
//! A blocked Bloom filter: each key's bits all fall in one 64-byte block, so a test costs one
//! cache miss. Every case created asks whether its new stream exists and every keyed command
//! whether its key was seen, and both answers are "no" for every segment: the test is paid
//! once per segment, and must stay cheap as segments accumulate (decision 0013).
//!
//! The hash is SHA-256 (stable across versions and machines, as a stored filter needs); it is
//! computed once per lookup and tested against every segment.

use sha2::{Digest, Sha256};

/// Bits per key: about one false "maybe" in a thousand tests.
const BITS_PER_KEY: u64 = 16;
/// Bits set per key, all in one block.
const PROBES: u64 = 8;
const BLOCK_BITS: u64 = 512;
/// One block: 64 bytes.
pub(super) const BLOCK_BYTES: usize = 64;

/// A key's hash, computed once and tested against any number of filters.
#[derive(Debug, Clone, Copy)]
pub(super) struct KeyHash {
    block: u64,
    bit: u64,
    step: u64,
}

impl KeyHash {
    pub(super) fn of(key: &[u8]) -> Self {
        let digest = Sha256::digest(key);
        let word = |i: usize| {
            u64::from_le_bytes(
                digest[i * 8..i * 8 + 8]
                    .try_into()
                    .expect("a SHA-256 digest has 32 bytes"),
            )
        };
        Self {
            block: word(0),
            bit: word(1),
            // Odd, so that the probes of one key never repeat within a block.
            step: word(2) | 1,
        }
    }

    fn bits(self) -> impl Iterator<Item = u64> {
        (0..PROBES).map(move |i| self.bit.wrapping_add(i.wrapping_mul(self.step)) % BLOCK_BITS)
    }
}

/// A blocked Bloom filter, as stored: whole blocks of 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Filter {
    bytes: Vec<u8>,
}

impl Filter {
    /// An empty filter sized for `keys` keys.
    pub(super) fn with_capacity(keys: u64) -> Self {
        let blocks = (keys.max(1) * BITS_PER_KEY).div_ceil(BLOCK_BITS);
        Self {
            bytes: vec![0; usize::try_from(blocks).unwrap_or(usize::MAX) * BLOCK_BYTES],
        }
    }

    /// A stored filter: `None` unless it is whole blocks.
    pub(super) fn from_bytes(bytes: Vec<u8>) -> Option<Self> {
        (!bytes.is_empty() && bytes.len().is_multiple_of(BLOCK_BYTES)).then_some(Self { bytes })
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub(super) fn blocks(&self) -> u64 {
        (self.bytes.len() / BLOCK_BYTES) as u64
    }

    fn block_start(&self, hash: KeyHash) -> usize {
        // Lossless: the block count came from a usize.
        (hash.block % self.blocks()) as usize * BLOCK_BYTES
    }

    pub(super) fn insert(&mut self, hash: KeyHash) {
        let start = self.block_start(hash);
        for bit in hash.bits() {
            self.bytes[start + (bit / 8) as usize] |= 1 << (bit % 8);
        }
    }

    /// `false` when the key was certainly never inserted.
    pub(super) fn may_hold(&self, hash: KeyHash) -> bool {
        let start = self.block_start(hash);
        hash.bits()
            .all(|bit| self.bytes[start + (bit / 8) as usize] & (1 << (bit % 8)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_inserted_key_is_held_and_few_others_are() {
        let keys = 20_000u64;
        let mut filter = Filter::with_capacity(keys);
        for i in 0..keys {
            filter.insert(KeyHash::of(format!("Scase-{i}\0").as_bytes()));
        }
        for i in 0..keys {
            assert!(filter.may_hold(KeyHash::of(format!("Scase-{i}\0").as_bytes())));
        }
        let false_maybes = (keys..keys * 6)
            .filter(|i| filter.may_hold(KeyHash::of(format!("Scase-{i}\0").as_bytes())))
            .count();
        // 16 bits per key in blocks of 512: about one in a thousand; allow five.
        assert!(
            false_maybes < 5 * 100,
            "{false_maybes} false answers in 100,000 tests"
        );
    }

    #[test]
    fn a_stored_filter_answers_as_the_one_built() {
        let mut filter = Filter::with_capacity(100);
        filter.insert(KeyHash::of(b"Ia"));
        let stored = Filter::from_bytes(filter.as_bytes().to_vec()).expect("whole blocks");
        assert_eq!(stored, filter);
        assert!(stored.may_hold(KeyHash::of(b"Ia")));
        assert_eq!(Filter::from_bytes(vec![0; 65]), None);
        assert_eq!(Filter::from_bytes(Vec::new()), None);
    }
}
