//! The stream index: which positions hold a stream's versions.
//!
//! Writing one index key per event would double sled's work per event. Instead the newest
//! entries live in a memtable (per stream, the positions of its newest versions), which the
//! leader writes out as a few `'S'` keys, in the same batch as a commit, once it holds
//! `index_flush_events` events; `M index-through` records how far the keys on disk reach.
//! After a crash the memtable is rebuilt from the log past that point.
//!
//! A reader takes versions below a stream's memtable run from disk and the rest from the
//! memtable, never both, so an index flush racing with a read cannot duplicate or drop a
//! version. Every read stops at the durable head it read first.

use std::collections::HashMap;
use std::sync::PoisonError;

use super::filter::KeyHash;
use super::{keys, read, storage, Shared, WriteSet};
use crate::codec::{self, INDEX_ENTRY_VERSIONS_MAX};
use crate::error::ReadError;
use crate::ids::{Position, StreamId, Version};

/// The positions of one stream's newest, consecutive versions.
#[derive(Debug, Clone)]
struct StreamTail {
    first_version: Version,
    positions: Vec<Position>,
}

impl StreamTail {
    fn last(&self) -> Option<(Version, Position)> {
        let last = self.positions.last()?;
        Some((
            self.first_version.plus(self.positions.len() as u64 - 1),
            *last,
        ))
    }
}

/// Index entries not yet written to disk.
#[derive(Debug, Clone, Default)]
pub(super) struct Memtable {
    streams: HashMap<StreamId, StreamTail>,
    events: usize,
}

impl Memtable {
    pub(super) fn events(&self) -> usize {
        self.events
    }

    pub(super) fn add(&mut self, stream: &StreamId, version: Version, position: Position) {
        match self.streams.get_mut(stream) {
            Some(tail) => {
                debug_assert_eq!(tail.last().map(|(v, _)| v.next()), Some(version));
                tail.positions.push(position);
            }
            None => {
                self.streams.insert(
                    stream.clone(),
                    StreamTail {
                        first_version: version,
                        positions: vec![position],
                    },
                );
            }
        }
        self.events += 1;
    }

    pub(super) fn clear(&mut self) {
        self.streams.clear();
        self.events = 0;
    }

    /// Adds the memtable's entries to `batch`, and `M index-through = through`.
    pub(super) fn write_to(&self, batch: &mut WriteSet, through: Option<Position>) {
        for (stream, tail) in &self.streams {
            for (i, positions) in tail.positions.chunks(INDEX_ENTRY_VERSIONS_MAX).enumerate() {
                let first = tail
                    .first_version
                    .plus((i * INDEX_ENTRY_VERSIONS_MAX) as u64);
                batch.insert(
                    keys::stream_entry(stream, first),
                    codec::encode_index_entry(positions),
                );
            }
        }
        if let Some(through) = through {
            batch.insert(keys::META_INDEX_THROUGH, through.get().to_be_bytes());
        }
    }
}

/// Rebuilds the memtable on open from the events after `M index-through`.
pub(super) fn rebuild_memtable(
    stored: read::Stored<'_>,
    head: Option<Position>,
) -> Result<Memtable, ReadError> {
    let mut memtable = Memtable::default();
    let Some(head) = head else {
        return Ok(memtable);
    };
    let through = match stored.tree.get(keys::META_INDEX_THROUGH).map_err(storage)? {
        Some(bytes) => <[u8; 8]>::try_from(bytes.as_ref())
            .map(u64::from_be_bytes)
            .map_err(|_| ReadError::CorruptedIndex {
                what: "meta index-through".into(),
                reason: format!("{} bytes", bytes.len()),
            })?,
        None => 0,
    };
    let Some(from) = Position::new(through + 1) else {
        return Ok(memtable);
    };
    read::for_each_record(stored, from, head, |position, entry| {
        let fields = codec::decode_record_key_fields(entry.record)
            .map_err(|e| ReadError::corrupted(position, &e))?;
        let stream = StreamId::new(fields.stream).map_err(|e| ReadError::Corrupted {
            position,
            reason: e.to_string(),
        })?;
        let version = Version::new(fields.version).ok_or_else(|| ReadError::Corrupted {
            position,
            reason: "version 0".into(),
        })?;
        memtable.add(&stream, version, position);
        Ok(true)
    })?;
    Ok(memtable)
}

impl Shared {
    /// A stream's last version and its position, as of durable head `head`.
    pub(super) fn stream_last(
        &self,
        stream: &StreamId,
        head: u64,
    ) -> Result<Option<(Version, Position)>, ReadError> {
        let memtable = self.memtable.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(tail) = memtable.streams.get(stream) {
            // Walk back over entries not yet durable (only during the commit that adds them).
            for (i, position) in tail.positions.iter().enumerate().rev() {
                if position.get() <= head {
                    return Ok(Some((tail.first_version.plus(i as u64), *position)));
                }
            }
        }
        let prefix = keys::stream_prefix(stream);
        for item in self.tree.scan_prefix(&prefix).rev() {
            let (key, value) = item.map_err(storage)?;
            let (first, positions) = decode_entry(stream, &prefix, &key, &value)?;
            for (i, position) in positions.iter().enumerate().rev() {
                if position.get() <= head {
                    return Ok(Some((first.plus(i as u64), *position)));
                }
            }
        }
        // Sealed positions are all durable: the tail's were read first (see `seal.rs`).
        let table = self.sealed();
        if table.is_empty() {
            return Ok(None); // no hash to compute on a log that has never sealed
        }
        let hash = KeyHash::of(&prefix);
        for segment in table.iter().rev().filter(|segment| segment.may_hold(hash)) {
            let mut last = None;
            segment.pairs_with_prefix(&prefix, &prefix, |key, value| {
                last = Some(decode_entry(stream, &prefix, key, value)?);
                Ok(true)
            })?;
            if let Some((first, positions)) = last {
                // Past the head only while a restore is sealing what it has not published.
                if let Some(position) = positions.last().filter(|p| p.get() <= head) {
                    return Ok(Some((first.plus(positions.len() as u64 - 1), *position)));
                }
            }
        }
        Ok(None)
    }

    /// Up to `max` (version, position) pairs of `stream` from version `from`, as of durable
    /// head `head`.
    pub(super) fn stream_positions(
        &self,
        stream: &StreamId,
        from: Version,
        max: usize,
        head: u64,
    ) -> Result<Vec<(Version, Position)>, ReadError> {
        let mut disk = Vec::new();
        let memtable = self.memtable.read().unwrap_or_else(PoisonError::into_inner);
        let tail = memtable.streams.get(stream);
        let disk_below = tail.map(|t| t.first_version);
        let prefix = keys::stream_prefix(stream);
        if disk_below.is_none_or(|below| from < below) {
            // Start at the entry that holds `from`: the last key at or before it.
            let start = self
                .tree
                .range(prefix.clone()..=keys::stream_entry(stream, from))
                .next_back()
                .transpose()
                .map_err(storage)?
                .map_or_else(|| prefix.clone(), |(key, _)| key.to_vec());
            'entries: for item in self.tree.range(start..) {
                let (key, value) = item.map_err(storage)?;
                if !key.starts_with(&prefix) {
                    break;
                }
                let (first, positions) = decode_entry(stream, &prefix, &key, &value)?;
                for (i, position) in positions.into_iter().enumerate() {
                    let version = first.plus(i as u64);
                    if version < from {
                        continue;
                    }
                    if disk_below.is_some_and(|below| version >= below)
                        || position.get() > head
                        || disk.len() >= max
                    {
                        break 'entries;
                    }
                    disk.push((version, position));
                }
            }
        }
        // Versions below the tail's are sealed. The table is taken after the tail was read,
        // so a seal that removed tail entries meanwhile has published their segment.
        let below = disk.first().map(|(version, _)| *version).or(disk_below);
        let mut out = if below.is_none_or(|below| from < below) {
            self.sealed_stream_positions(stream, &prefix, (from, below), max, head)?
        } else {
            Vec::new()
        };
        out.extend(disk);
        out.truncate(max);
        if let Some(tail) = tail {
            for (i, position) in tail.positions.iter().enumerate() {
                let version = tail.first_version.plus(i as u64);
                if version < from {
                    continue;
                }
                if position.get() > head || out.len() >= max {
                    break;
                }
                out.push((version, *position));
            }
        }
        Ok(out)
    }
}

impl Shared {
    /// Up to `max` (version, position) pairs of `stream` from version `from` and below
    /// `below`, from the sealed segments.
    fn sealed_stream_positions(
        &self,
        stream: &StreamId,
        prefix: &[u8],
        (from, below): (Version, Option<Version>),
        max: usize,
        head: u64,
    ) -> Result<Vec<(Version, Position)>, ReadError> {
        let mut out = Vec::new();
        let table = self.sealed();
        if table.is_empty() {
            return Ok(out);
        }
        let hash = KeyHash::of(prefix);
        for segment in table.iter().filter(|segment| segment.may_hold(hash)) {
            if out.len() >= max {
                break;
            }
            segment.pairs_with_prefix(prefix, prefix, |key, value| {
                let (first, positions) = decode_entry(stream, prefix, key, value)?;
                for (i, position) in positions.into_iter().enumerate() {
                    let version = first.plus(i as u64);
                    if version < from {
                        continue;
                    }
                    if below.is_some_and(|below| version >= below)
                        || position.get() > head
                        || out.len() >= max
                    {
                        return Ok(false);
                    }
                    out.push((version, position));
                }
                Ok(true)
            })?;
        }
        Ok(out)
    }
}

fn decode_entry(
    stream: &StreamId,
    prefix: &[u8],
    key: &[u8],
    value: &[u8],
) -> Result<(Version, Vec<Position>), ReadError> {
    let corrupted = |reason: String| ReadError::CorruptedIndex {
        what: format!("stream index entry of {stream}"),
        reason,
    };
    let first =
        keys::stream_entry_version(prefix, key).ok_or_else(|| corrupted("malformed key".into()))?;
    let positions = codec::decode_index_entry(value).map_err(|e| corrupted(e.to_string()))?;
    Ok((first, positions))
}
