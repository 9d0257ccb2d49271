//! The sealed segments of the log (decision 0013), and the lookups that reach into them.
//!
//! A segment holds the stream index entries and idempotency records of a range of positions
//! as sorted pieces (`'P'`), described by `'F'` (its range and each piece's first key) and
//! filtered by `'G'` (which streams and keys it may hold). Its records stay under `'L'`, in
//! chunks merged into blocks of 64 KiB. In memory a segment costs its pieces' first keys and
//! its filter: about 2 bytes per stream and per key it holds, where sled would keep state
//! for every key.
//!
//! Lookups read the tail first and this table after (see `seal.rs` for why that order is
//! safe against a seal running at the same time).

use std::sync::{Arc, PoisonError};

use super::filter::{Filter, KeyHash};
use super::{keys, storage, Shared};
use crate::codec::{self, SegmentV1};
use crate::error::ReadError;
use crate::ids::Position;

/// One sealed segment, as the table in memory holds it.
#[derive(Debug)]
pub(super) struct Segment {
    pub(super) number: u32,
    pub(super) first: Position,
    pub(super) last: Position,
    piece_first_keys: Vec<Vec<u8>>,
    filter: Filter,
}

/// The sealed segments, oldest first. Readers take a snapshot (a clone of the `Arc`).
pub(super) type SegmentTable = Arc<Vec<Arc<Segment>>>;

impl Segment {
    pub(super) fn new(
        number: u32,
        description: SegmentV1,
        filter: Filter,
    ) -> Result<Self, ReadError> {
        let corrupted = |reason: String| ReadError::CorruptedIndex {
            what: format!("sealed segment {number}"),
            reason,
        };
        let (Some(first), Some(last)) = (
            Position::new(description.first_position),
            Position::new(description.last_position),
        ) else {
            return Err(corrupted("position 0".into()));
        };
        // Empty only for a restore's segment of idempotency records alone (`seal.rs`).
        if first > last.next() {
            return Err(corrupted(format!("its range {first}..={last} is reversed")));
        }
        if filter.blocks() != description.filter_blocks {
            return Err(corrupted(format!(
                "its filter has {} blocks, its description says {}",
                filter.blocks(),
                description.filter_blocks
            )));
        }
        if description
            .piece_first_keys
            .windows(2)
            .any(|pair| pair[0] >= pair[1])
        {
            return Err(corrupted("its pieces are out of order".into()));
        }
        Ok(Self {
            number,
            first,
            last,
            piece_first_keys: description.piece_first_keys,
            filter,
        })
    }

    pub(super) fn may_hold(&self, hash: KeyHash) -> bool {
        self.filter.may_hold(hash)
    }

    /// Calls `visit` with the segment's pairs whose key starts with `prefix`, from the first
    /// at or after `from` (which starts with `prefix`), in key order, until it returns
    /// `Ok(false)`.
    pub(super) fn pairs_with_prefix(
        &self,
        tree: &sled::Tree,
        prefix: &[u8],
        from: &[u8],
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<bool, ReadError>,
    ) -> Result<(), ReadError> {
        // The last piece that starts at or before `from` may hold it; later pieces follow.
        let mut index = self
            .piece_first_keys
            .partition_point(|first| first.as_slice() <= from)
            .saturating_sub(1);
        while let Some(first) = self.piece_first_keys.get(index) {
            if first.as_slice() > from && !first.starts_with(prefix) {
                return Ok(());
            }
            let bytes = self.read_piece(tree, index)?;
            let pairs =
                codec::decode_piece(&bytes).map_err(|e| self.damaged(index, e.to_string()))?;
            for (key, value) in pairs {
                if key < from {
                    continue;
                }
                if !key.starts_with(prefix) {
                    return Ok(());
                }
                if !visit(key, value)? {
                    return Ok(());
                }
            }
            index += 1;
        }
        Ok(())
    }

    fn read_piece(&self, tree: &sled::Tree, index: usize) -> Result<sled::IVec, ReadError> {
        let number =
            u32::try_from(index).map_err(|_| self.damaged(index, "too many pieces".into()))?;
        tree.get(keys::piece(self.number, number))
            .map_err(storage)?
            .ok_or_else(|| self.damaged(index, "the piece is missing".into()))
    }

    fn damaged(&self, piece: usize, reason: String) -> ReadError {
        ReadError::CorruptedIndex {
            what: format!("sealed segment {} piece {piece}", self.number),
            reason,
        }
    }
}

/// Reads every segment's description and filter (on open).
pub(super) fn load(tree: &sled::Tree) -> Result<Vec<Arc<Segment>>, ReadError> {
    let mut segments: Vec<Arc<Segment>> = Vec::new();
    for item in tree.scan_prefix([keys::SEGMENT]) {
        let (key, value) = item.map_err(storage)?;
        let expected = u32::try_from(segments.len()).unwrap_or(u32::MAX);
        let number = keys::segment_of(&key)
            .filter(|n| *n == expected)
            .ok_or_else(|| ReadError::CorruptedIndex {
                what: "sealed segments".into(),
                reason: format!("expected segment {expected}, found the key {key:?}"),
            })?;
        let description = codec::decode_segment(&value).map_err(|e| ReadError::CorruptedIndex {
            what: format!("sealed segment {number}"),
            reason: e.to_string(),
        })?;
        let filter = read_filter(tree, number, description.filter_parts)?;
        let segment = Segment::new(number, description, filter)?;
        if let Some(previous) = segments.last() {
            if previous.last.next() != segment.first {
                return Err(ReadError::CorruptedIndex {
                    what: format!("sealed segment {number}"),
                    reason: format!(
                        "it starts at {} but segment {} ends at {}",
                        segment.first, previous.number, previous.last
                    ),
                });
            }
        }
        segments.push(Arc::new(segment));
    }
    Ok(segments)
}

fn read_filter(tree: &sled::Tree, number: u32, parts: u32) -> Result<Filter, ReadError> {
    let mut bytes = Vec::new();
    for part in 0..parts {
        let found = tree
            .get(keys::filter_part(number, part))
            .map_err(storage)?
            .ok_or_else(|| ReadError::CorruptedIndex {
                what: format!("sealed segment {number}"),
                reason: format!("filter part {part} of {parts} is missing"),
            })?;
        bytes.extend_from_slice(&found);
    }
    Filter::from_bytes(bytes).ok_or_else(|| ReadError::CorruptedIndex {
        what: format!("sealed segment {number}"),
        reason: "its filter is not whole blocks".into(),
    })
}

impl Shared {
    /// The sealed segments as they are now. Take it after reading the tail.
    pub(super) fn sealed(&self) -> SegmentTable {
        self.segments
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
