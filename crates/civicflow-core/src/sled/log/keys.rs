//! The key layout of the one sled tree the log uses (drawn in `docs/design.md`).
//!
//! The first byte names the keyspace. Integers are big-endian so that sled's byte order is
//! numeric order. Stream ids never contain NUL, so `'S' | id | 0x00` is an exact prefix.

use crate::ids::{Position, StreamId, Version};

/// Log chunks: `'L' | first position`.
pub(super) const LOG: u8 = b'L';
/// Stream index entries: `'S' | stream id | 0x00 | first version`.
pub(super) const STREAM_INDEX: u8 = b'S';
/// Idempotency records: `'I' | key`.
pub(super) const IDEMPOTENCY: u8 = b'I';
// Meta values are `'M' | name`:

/// A sealed segment's description: `'F' | segment` (u32), naming its file (decision 0013).
pub(super) const SEGMENT: u8 = b'F';

/// `M format`: what the store is; refuse to open anything else.
pub(super) const META_FORMAT: &[u8] = b"Mformat";
/// The value of `M format` for a store that seals its history (every new store).
pub(super) const FORMAT_NAME: &str = "civicflow-log/2";
/// The value of `M format` for a store written before sealing: read as it is, never
/// sealed in place (decision 0013: convert it with `export-log` and `import-log`).
pub(super) const FORMAT_NAME_UNSEALED: &str = "civicflow-log/1";
/// `M index-through`: the stream index on disk covers every position up to this one.
pub(super) const META_INDEX_THROUGH: &[u8] = b"Mindex-through";
/// `M sealed-through`: the sealed segments hold every position up to this one.
pub(super) const META_SEALED_THROUGH: &[u8] = b"Msealed-through";
/// `M seal-pending`: a seal whose tail keys are not all removed yet (finished on open).
pub(super) const META_SEAL_PENDING: &[u8] = b"Mseal-pending";

pub(super) fn chunk(first: Position) -> [u8; 9] {
    let mut key = [LOG; 9];
    key[1..].copy_from_slice(&first.get().to_be_bytes());
    key
}

/// The position in a chunk key, `None` when the key is not a well-formed chunk key.
pub(super) fn chunk_position(key: &[u8]) -> Option<Position> {
    match key {
        [LOG, rest @ ..] => <[u8; 8]>::try_from(rest)
            .ok()
            .map(u64::from_be_bytes)
            .and_then(Position::new),
        _ => None,
    }
}

pub(super) fn stream_prefix(stream: &StreamId) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.as_str().len() + 10);
    key.push(STREAM_INDEX);
    key.extend_from_slice(stream.as_str().as_bytes());
    key.push(0);
    key
}

pub(super) fn stream_entry(stream: &StreamId, first: Version) -> Vec<u8> {
    let mut key = stream_prefix(stream);
    key.extend_from_slice(&first.get().to_be_bytes());
    key
}

/// The first version in a stream index key that starts with `prefix`.
pub(super) fn stream_entry_version(prefix: &[u8], key: &[u8]) -> Option<Version> {
    key.strip_prefix(prefix)
        .and_then(|rest| <[u8; 8]>::try_from(rest).ok())
        .map(u64::from_be_bytes)
        .and_then(Version::new)
}

pub(super) fn segment(segment: u32) -> [u8; 5] {
    let mut key = [SEGMENT; 5];
    key[1..].copy_from_slice(&segment.to_be_bytes());
    key
}

/// The segment number in a key of `'F'`.
pub(super) fn segment_of(key: &[u8]) -> Option<u32> {
    key.get(1..5)
        .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
        .map(u32::from_be_bytes)
}

pub(super) fn idempotency(key: &crate::ids::IdempotencyKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.as_str().len() + 1);
    out.push(IDEMPOTENCY);
    out.extend_from_slice(key.as_str().as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_keys_sort_by_position() {
        let a = chunk(Position::new(255).expect("nz"));
        let b = chunk(Position::new(256).expect("nz"));
        assert!(a < b);
        assert_eq!(chunk_position(&b), Position::new(256));
        assert_eq!(chunk_position(b"Lshort"), None);
    }

    #[test]
    fn one_stream_prefix_never_matches_another_stream() {
        let a = StreamId::new("case-1").expect("valid");
        let b = StreamId::new("case-10").expect("valid");
        let key_b = stream_entry(&b, Version::FIRST);
        assert!(!key_b.starts_with(&stream_prefix(&a)));
        assert_eq!(
            stream_entry_version(&stream_prefix(&b), &key_b),
            Some(Version::FIRST)
        );
    }
}
