//! The read models' sled keys: every key is stored nibble by nibble, each half-byte as a
//! byte from 1 to 16, so that no stored key holds a 0x00 or 0xff byte.
//!
//! Why: sled 0.34's reverse iteration (`next_back`, which finds the page that holds a key)
//! steps back from a tree node by seeking `lo` less its last byte with `ff ff ff ff`
//! appended. When a key lies between that seek key and `lo` (one holding a run of 0xff bytes:
//! ours did, `u32::MAX` in a row key), it lands on the node before the one it needs, turns
//! back, and loops until sled panics with "fucked up tree traversal". It happened to a
//! read model's worker while building a ten-million-event store (issue 17). Without 0xff
//! bytes no key lies there, so every step back lands where it should.
//!
//! The encoding keeps order (byte by byte, each byte becomes two that compare as it does) and
//! prefixes (the encoding of a prefix is a prefix of the encoding), so ranges and prefix
//! scans work on encoded keys exactly as on raw ones. Keys take twice the bytes; values are
//! untouched, and there is one key per page of rows.

use std::ops::Bound;

use super::storage;
use crate::readmodel::ReadModelError;

/// `raw` as stored.
pub(super) fn encode(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() * 2);
    for byte in raw {
        out.push((byte >> 4) + 1);
        out.push((byte & 0x0f) + 1);
    }
    out
}

/// A stored key back as it was given.
pub(super) fn decode(stored: &[u8]) -> Result<Vec<u8>, ReadModelError> {
    let corrupted = || ReadModelError::Corrupted(format!("read-model key {stored:?}"));
    if !stored.len().is_multiple_of(2) {
        return Err(corrupted());
    }
    stored
        .chunks_exact(2)
        .map(|pair| match (pair[0], pair[1]) {
            (high @ 1..=16, low @ 1..=16) => Ok(((high - 1) << 4) | (low - 1)),
            _ => Err(corrupted()),
        })
        .collect()
}

fn bound(bound: Bound<&[u8]>) -> Bound<Vec<u8>> {
    match bound {
        Bound::Included(key) => Bound::Included(encode(key)),
        Bound::Excluded(key) => Bound::Excluded(encode(key)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// A stored entry with its key decoded.
type Entry = Result<(Vec<u8>, sled::IVec), ReadModelError>;

fn entry(item: sled::Result<(sled::IVec, sled::IVec)>) -> Entry {
    let (key, value) = item.map_err(storage)?;
    Ok((decode(&key)?, value))
}

/// The read models' tree, given and giving raw keys.
pub(super) struct Keyed<'a>(pub(super) &'a sled::Tree);

impl Keyed<'_> {
    pub(super) fn get(&self, key: &[u8]) -> Result<Option<sled::IVec>, ReadModelError> {
        self.0.get(encode(key)).map_err(storage)
    }

    pub(super) fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), ReadModelError> {
        self.0.insert(encode(key), value).map_err(storage)?;
        Ok(())
    }

    pub(super) fn remove(&self, key: &[u8]) -> Result<(), ReadModelError> {
        self.0.remove(encode(key)).map_err(storage)?;
        Ok(())
    }

    /// The entries with keys between `low` and `high`, in key order (reversible).
    pub(super) fn range(
        &self,
        low: Bound<&[u8]>,
        high: Bound<&[u8]>,
    ) -> impl DoubleEndedIterator<Item = Entry> {
        self.0.range((bound(low), bound(high))).map(entry)
    }

    /// The entries whose keys start with `prefix`, in key order.
    pub(super) fn scan_prefix(&self, prefix: &[u8]) -> impl DoubleEndedIterator<Item = Entry> {
        self.0.scan_prefix(encode(prefix)).map(entry)
    }

    pub(super) fn apply(&self, batch: Batch) -> Result<(), ReadModelError> {
        self.0.apply_batch(batch.0).map_err(storage)
    }
}

/// Writes applied at once, given raw keys.
#[derive(Default)]
pub(super) struct Batch(sled::Batch);

impl Batch {
    pub(super) fn insert(&mut self, key: &[u8], value: &[u8]) {
        self.0.insert(encode(key), value);
    }

    pub(super) fn remove(&mut self, key: &[u8]) {
        self.0.remove(encode(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Guards against an encoding that reorders keys, breaks prefix scans, loses a
        /// byte, or stores a 0x00 or 0xff byte (the sled bug the module's page describes).
        #[test]
        fn encoding_keeps_order_and_prefixes_and_avoids_the_extreme_bytes(
            a in proptest::collection::vec(any::<u8>(), 0..24),
            b in proptest::collection::vec(any::<u8>(), 0..24),
        ) {
            let (ea, eb) = (encode(&a), encode(&b));
            prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
            prop_assert_eq!(a.starts_with(&b), ea.starts_with(&eb));
            prop_assert_eq!(decode(&ea).expect("decodes"), a.clone());
            prop_assert!(ea.iter().all(|byte| (1..=16).contains(byte)));
            // sled's step back from a node starting at `lo`: `lo` less its last byte, that
            // byte less one, then ff ff ff ff. No encoded key lies strictly between.
            if let Some((&last, head)) = ea.split_last() {
                let mut seek = head.to_vec();
                seek.push(last - 1);
                seek.extend_from_slice(&[0xff; 4]);
                prop_assert!(!(seek < eb && eb < ea), "{:?} lies between {:?} and {:?}", eb, seek, ea);
            }
        }
    }

    #[test]
    fn a_key_not_made_by_the_encoding_is_refused_as_corrupted() {
        for stored in [&[1u8][..], &[0, 1], &[1, 17], &[255, 255]] {
            assert!(matches!(decode(stored), Err(ReadModelError::Corrupted(_))));
        }
        assert_eq!(decode(&[]).expect("empty"), Vec::<u8>::new());
    }
}
