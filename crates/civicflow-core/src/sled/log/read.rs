//! Reading chunks and records, never past the durable head.
//!
//! sled shows a batch to readers as soon as it is applied, before it is flushed; a reader that
//! followed sled alone could act on an event a crash then takes back. Every read here first
//! takes the durable head from the commit signal and stops there.

use super::{keys, storage, Shared};
use crate::chain::{ChainHash, ChainHead};
use crate::clock::Timestamp;
use crate::codec::{self, ChunkEntry};
use crate::error::{OpenError, ReadError};
use crate::event::RecordedEvent;
use crate::ids::{Position, StreamId, Version};

/// What opening learns from the newest chunk.
pub(super) struct Recovered {
    pub(super) head: Option<ChainHead>,
    pub(super) last_recorded_at: Option<Timestamp>,
}

/// Finds the head of the log from its last chunk. Positions continue from here: they come
/// from what is stored, never from a counter that could skip.
pub(super) fn recover_head(tree: &sled::Tree) -> Result<Recovered, OpenError> {
    let last = tree
        .scan_prefix([keys::LOG])
        .next_back()
        .transpose()
        .map_err(|e| OpenError::Corrupted(storage(e)))?;
    let Some((key, value)) = last else {
        return Ok(Recovered {
            head: None,
            last_recorded_at: None,
        });
    };
    let first = keys::chunk_position(&key).ok_or_else(|| {
        OpenError::Corrupted(ReadError::CorruptedIndex {
            what: "log chunk key".into(),
            reason: format!("{key:?}"),
        })
    })?;
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
/// returns `Ok(false)`.
///
/// A seal running meanwhile replaces chunks by blocks (`seal.rs`): a chunk met after a block
/// that already held its records is skipped, and when the next key starts past the next
/// position (its chunk was replaced behind the iterator) the scan seeks that position again.
pub(super) fn for_each_record(
    tree: &sled::Tree,
    from: Position,
    through: Position,
    mut visit: impl FnMut(Position, ChunkEntry<'_>) -> Result<bool, ReadError>,
) -> Result<(), ReadError> {
    let mut next = from;
    // Where the scan last sought again: a gap found twice at one place is in the stored log
    // itself, and its records after the gap are visited (verify reports the gap).
    let mut sought_at = None;
    while next <= through {
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

/// The last decoded chunk, so that consecutive lookups in one chunk decode it once.
#[derive(Default)]
pub(super) struct ChunkCursor {
    first: Option<Position>,
    bytes: Option<sled::IVec>,
}

impl ChunkCursor {
    /// The entry at `position`: its stored hash and record bytes (copied).
    pub(super) fn entry(
        &mut self,
        tree: &sled::Tree,
        position: Position,
    ) -> Result<(ChainHash, Vec<u8>), ReadError> {
        if let Some(found) = self.cached(position)? {
            return Ok(found);
        }
        let (key, bytes) = tree
            .range(..=keys::chunk(position))
            .next_back()
            .transpose()
            .map_err(storage)?
            .ok_or(ReadError::Corrupted {
                position,
                reason: "no chunk holds this position".into(),
            })?;
        self.first = keys::chunk_position(&key);
        self.bytes = Some(bytes);
        self.cached(position)?.ok_or(ReadError::Corrupted {
            position,
            reason: "no stored record at this position".into(),
        })
    }

    fn cached(&self, position: Position) -> Result<Option<(ChainHash, Vec<u8>)>, ReadError> {
        let (Some(first), Some(bytes)) = (self.first, &self.bytes) else {
            return Ok(None);
        };
        if first > position {
            return Ok(None);
        }
        let entries = codec::decode_chunk(bytes).map_err(|e| ReadError::corrupted(first, &e))?;
        let index = usize::try_from(position.get() - first.get()).unwrap_or(usize::MAX);
        Ok(entries
            .get(index)
            .map(|entry| (entry.hash, entry.record.to_vec())))
    }
}

impl Shared {
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
        for_each_record(&self.tree, from, head, |position, entry| {
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
            let (hash, record) = cursor.entry(&self.tree, position)?;
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
        Ok(ChunkCursor::default().entry(&self.tree, position)?.0)
    }
}
