//! Reading chunks and records, never past the durable head.
//!
//! sled shows a batch to readers as soon as it is applied, before it is flushed; a reader that
//! followed sled alone could act on an event a crash then takes back. Every read here first
//! takes the durable head from the commit signal and stops there.

use std::sync::{PoisonError, RwLock};

use super::segments::{self, SegmentTable};
use super::{keys, storage, Shared};
use crate::chain::{ChainHash, ChainHead};
use crate::clock::Timestamp;
use crate::codec::{self, ChunkEntry};
use crate::error::{OpenError, ReadError};
use crate::event::RecordedEvent;
use crate::ids::{Position, StreamId, Version};

/// Where records are: the tail's chunks in sled and the sealed segments' blocks. Reads take
/// the table of segments again wherever a seal may have moved records meanwhile.
#[derive(Clone, Copy)]
pub(super) struct Stored<'a> {
    pub(super) tree: &'a sled::Tree,
    pub(super) segments: &'a RwLock<SegmentTable>,
}

impl Stored<'_> {
    fn table(&self) -> SegmentTable {
        self.segments
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What opening learns from the newest chunk.
pub(super) struct Recovered {
    pub(super) head: Option<ChainHead>,
    pub(super) last_recorded_at: Option<Timestamp>,
}

/// Finds the head of the log from its last chunk (in the tail, or the last sealed block when
/// the tail holds none). Positions continue from here: they come from what is stored, never
/// from a counter that could skip.
pub(super) fn recover_head(stored: Stored<'_>) -> Result<Recovered, OpenError> {
    let last = stored
        .tree
        .scan_prefix([keys::LOG])
        .next_back()
        .transpose()
        .map_err(|e| OpenError::Corrupted(storage(e)))?;
    let (first, value) = match last {
        Some((key, value)) => {
            let first = keys::chunk_position(&key).ok_or_else(|| {
                OpenError::Corrupted(ReadError::CorruptedIndex {
                    what: "log chunk key".into(),
                    reason: format!("{key:?}"),
                })
            })?;
            (first, value.to_vec())
        }
        None => {
            let table = stored.table();
            let Some(segment) = table.iter().rev().find(|s| s.first <= s.last) else {
                return Ok(Recovered {
                    head: None,
                    last_recorded_at: None,
                });
            };
            segment
                .block_for(segment.last)
                .map_err(OpenError::Corrupted)?
        }
    };
    let entries = codec::decode_chunk(&value)
        .map_err(|e| OpenError::Corrupted(ReadError::corrupted(first, &e)))?;
    let count = entries.len() as u64;
    let last_entry = entries.last().expect("decode_chunk refuses empty chunks");
    let position = first.plus(count - 1);
    let event = codec::decode_record(last_entry.record, last_entry.hash)
        .map_err(|e| OpenError::Corrupted(ReadError::corrupted(position, &e)))?;
    if event.position != position {
        return Err(OpenError::Corrupted(ReadError::Corrupted {
            position,
            reason: format!("the record says it is at position {}", event.position),
        }));
    }
    Ok(Recovered {
        head: Some(ChainHead {
            position,
            hash: last_entry.hash,
        }),
        last_recorded_at: Some(event.recorded_at),
    })
}

/// Calls `visit` with every stored record from `from` to `through`, in order, until it
/// returns `Ok(false)`: from the sealed segments, then from the tail.
///
/// A seal running meanwhile moves the tail's oldest chunks into a segment: a scan of the
/// tail that finds no chunk where the next position should be takes the table of segments
/// again before it calls it a gap.
pub(super) fn for_each_record(
    stored: Stored<'_>,
    from: Position,
    through: Position,
    mut visit: impl FnMut(Position, ChunkEntry<'_>) -> Result<bool, ReadError>,
) -> Result<(), ReadError> {
    let tree = stored.tree;
    let mut next = from;
    // Where the scan last sought again: a gap found twice at one place is in the stored log
    // itself, and its records after the gap are visited (verify reports the gap).
    let mut sought_at = None;
    while next <= through {
        let table = stored.table();
        if let Some(segment) = segments::holding(&table, next) {
            let last = segment.last.min(through);
            let mut stopped = false;
            segment.for_each_record(next, last, &mut |position, entry| {
                if !visit(position, entry)? {
                    stopped = true;
                    return Ok(false);
                }
                next = position.next();
                Ok(true)
            })?;
            if stopped {
                return Ok(());
            }
            if next <= last {
                return Err(ReadError::Corrupted {
                    position: next,
                    reason: format!("sealed segment {} holds no record here", segment.number),
                });
            }
            continue;
        }
        let start = tree
            .range(..=keys::chunk(next))
            .next_back()
            .transpose()
            .map_err(storage)?
            .and_then(|(key, _)| keys::chunk_position(&key))
            .unwrap_or(next);
        let gap_seen_before = sought_at == Some(next);
        sought_at = Some(next);
        for item in tree.range(keys::chunk(start)..) {
            let (key, value) = item.map_err(storage)?;
            let Some(first) = keys::chunk_position(&key) else {
                break;
            };
            if first > through || (first > next && !gap_seen_before) {
                break;
            }
            let entries =
                codec::decode_chunk(&value).map_err(|e| ReadError::corrupted(first, &e))?;
            for (i, entry) in entries.into_iter().enumerate() {
                let position = first.plus(i as u64);
                if position < next {
                    continue;
                }
                if position > through || !visit(position, entry)? {
                    return Ok(());
                }
                next = position.next();
            }
        }
        if gap_seen_before {
            // Sought twice from one position: what the log stores ends there.
            return Ok(());
        }
    }
    Ok(())
}

/// Decodes a record and checks that it is the one expected at `position`.
fn decode_at(position: Position, entry: ChunkEntry<'_>) -> Result<RecordedEvent, ReadError> {
    let event = codec::decode_record(entry.record, entry.hash)
        .map_err(|e| ReadError::corrupted(position, &e))?;
    if event.position != position {
        return Err(ReadError::Corrupted {
            position,
            reason: format!(
                "the record stored at position {position} says it is at {}",
                event.position
            ),
        });
    }
    Ok(event)
}

/// The last chunk or block read, so that consecutive lookups in it read it once.
#[derive(Default)]
pub(super) struct ChunkCursor {
    first: Option<Position>,
    bytes: sled::IVec,
}

impl ChunkCursor {
    /// The entry at `position`: its stored hash and record bytes (copied).
    pub(super) fn entry(
        &mut self,
        stored: Stored<'_>,
        position: Position,
    ) -> Result<(ChainHash, Vec<u8>), ReadError> {
        if let Some(found) = self.cached(position)? {
            return Ok(found);
        }
        // The tail first, then the segments (taken after: a seal may have moved the chunk).
        let in_tail = stored
            .tree
            .range(..=keys::chunk(position))
            .next_back()
            .transpose()
            .map_err(storage)?;
        if let Some((key, bytes)) = in_tail {
            self.first = keys::chunk_position(&key);
            self.bytes = bytes;
            if let Some(found) = self.cached(position)? {
                return Ok(found);
            }
        }
        let table = stored.table();
        let segment = segments::holding(&table, position).ok_or(ReadError::Corrupted {
            position,
            reason: "no chunk holds this position".into(),
        })?;
        let (first, bytes) = segment.block_for(position)?;
        self.first = Some(first);
        self.bytes = sled::IVec::from(bytes);
        self.cached(position)?.ok_or(ReadError::Corrupted {
            position,
            reason: "no stored record at this position".into(),
        })
    }

    fn cached(&self, position: Position) -> Result<Option<(ChainHash, Vec<u8>)>, ReadError> {
        let Some(first) = self.first else {
            return Ok(None);
        };
        if first > position {
            return Ok(None);
        }
        let entries =
            codec::decode_chunk(&self.bytes).map_err(|e| ReadError::corrupted(first, &e))?;
        let index = usize::try_from(position.get() - first.get()).unwrap_or(usize::MAX);
        Ok(entries
            .get(index)
            .map(|entry| (entry.hash, entry.record.to_vec())))
    }
}

impl Shared {
    pub(super) fn stored(&self) -> Stored<'_> {
        Stored {
            tree: &self.tree,
            segments: &self.segments,
        }
    }

    pub(super) fn read_all(
        &self,
        from: Position,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.ensure_open()?;
        let Some(head) = Position::new(self.signal.head()) else {
            return Ok(Vec::new());
        };
        let mut events = Vec::with_capacity(max.min(1024));
        if max == 0 {
            return Ok(events);
        }
        for_each_record(self.stored(), from, head, |position, entry| {
            events.push(decode_at(position, entry)?);
            Ok(events.len() < max)
        })?;
        Ok(events)
    }

    pub(super) fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.ensure_open()?;
        let head = self.signal.head();
        let positions = self.stream_positions(stream, from, max, head)?;
        let mut cursor = ChunkCursor::default();
        let mut events = Vec::with_capacity(positions.len());
        for (version, position) in positions {
            let (hash, record) = cursor.entry(self.stored(), position)?;
            let event = decode_at(
                position,
                ChunkEntry {
                    hash,
                    record: &record,
                },
            )?;
            if &event.stream != stream || event.version != version {
                return Err(ReadError::Corrupted {
                    position,
                    reason: format!(
                        "the stream index says {stream} version {version}, the record is {} version {}",
                        event.stream, event.version
                    ),
                });
            }
            events.push(event);
        }
        Ok(events)
    }

    /// The stored chain hash of the event at `position`.
    pub(super) fn hash_at(&self, position: Position) -> Result<ChainHash, ReadError> {
        Ok(ChunkCursor::default().entry(self.stored(), position)?.0)
    }
}
