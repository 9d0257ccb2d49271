//! The checks a restore makes on every record it is given, whatever stores it: the same as
//! `verify` (position, the record's own position field, the stream's next version, the hash
//! recomputed from the bytes and both links), and at the end that the head is the exported one.

use std::collections::HashMap;

use crate::chain::{ChainHash, ChainHead};
use crate::clock::Timestamp;
use crate::codec;
use crate::error::RestoreError;
use crate::event::RecordedEvent;
use crate::ids::{Position, StreamId, Version};
use crate::store::{StoredIdempotency, StoredRecord};

/// A restore's running check: where the next record must be, and each stream's last version
/// and hash so far.
#[derive(Debug)]
pub struct RestoreCheck {
    next: Position,
    prev_log: ChainHash,
    streams: HashMap<StreamId, (Version, ChainHash)>,
    last_recorded_at: Timestamp,
}

impl Default for RestoreCheck {
    fn default() -> Self {
        Self::new()
    }
}

impl RestoreCheck {
    /// A check of a restore into an empty log.
    pub fn new() -> Self {
        Self {
            next: Position::FIRST,
            prev_log: ChainHash::GENESIS,
            streams: HashMap::new(),
            last_recorded_at: Timestamp::EPOCH,
        }
    }

    /// The position the next record must have.
    pub fn next_position(&self) -> Position {
        self.next
    }

    /// The recorded time of the last record checked.
    pub fn last_recorded_at(&self) -> Timestamp {
        self.last_recorded_at
    }

    /// Checks the next record and returns it decoded.
    ///
    /// # Errors
    /// [`RestoreError::OutOfOrder`], [`RestoreError::Invalid`] or
    /// [`RestoreError::HashMismatch`] naming the position.
    pub fn record(&mut self, record: &StoredRecord) -> Result<RecordedEvent, RestoreError> {
        let position = record.position;
        let expected = self.next_position();
        if position != expected {
            return Err(RestoreError::OutOfOrder {
                expected,
                found: position,
            });
        }
        let invalid = |reason: String| RestoreError::Invalid { position, reason };
        let event =
            codec::decode_record(&record.bytes, record.hash).map_err(|e| invalid(e.to_string()))?;
        if event.position != position {
            return Err(invalid(format!(
                "the record says it is at position {}",
                event.position
            )));
        }
        let last = self.streams.get(&event.stream).copied();
        let expected_version = last.map_or(Version::FIRST, |(v, _)| v.next());
        if event.version != expected_version {
            return Err(invalid(format!(
                "stream {} has version {} where version {expected_version} was expected",
                event.stream, event.version
            )));
        }
        let prev_stream = last.map_or(ChainHash::GENESIS, |(_, hash)| hash);
        let computed = ChainHash::link(&self.prev_log, &prev_stream, &record.bytes);
        if computed != record.hash {
            return Err(RestoreError::HashMismatch {
                position,
                exported: record.hash,
                computed,
            });
        }
        self.streams
            .insert(event.stream.clone(), (event.version, record.hash));
        self.prev_log = record.hash;
        self.last_recorded_at = event.recorded_at;
        self.next = position.next();
        Ok(event)
    }

    /// Checks an idempotency record (given after every event record): it decodes and names
    /// only restored positions. Returns its last position.
    ///
    /// # Errors
    /// [`RestoreError::Idempotency`] naming the key.
    pub fn idempotency(&self, record: &StoredIdempotency) -> Result<Position, RestoreError> {
        let invalid = |reason: String| RestoreError::Idempotency {
            key: record.key.to_string(),
            reason,
        };
        let decoded =
            codec::decode_idempotency(&record.bytes).map_err(|e| invalid(e.to_string()))?;
        let restored = self.next_position().get() - 1;
        if decoded.first_position == 0
            || decoded.first_position > decoded.last_position
            || decoded.last_position > restored
        {
            return Err(invalid(format!(
                "it names positions {}-{} but the restored log ends at {restored} (give the idempotency records after every record)",
                decoded.first_position, decoded.last_position
            )));
        }
        Position::new(decoded.last_position).ok_or_else(|| invalid("it names position 0".into()))
    }

    /// The restored head, checked against the exported one.
    ///
    /// # Errors
    /// [`RestoreError::HeadMismatch`] when the records lead elsewhere (the export is cut
    /// short).
    pub fn head(
        &self,
        expected_head: Option<ChainHead>,
    ) -> Result<Option<ChainHead>, RestoreError> {
        let head = self.next_position().prev().map(|position| ChainHead {
            position,
            hash: self.prev_log,
        });
        if head != expected_head {
            let show = |h: Option<ChainHead>| {
                h.map_or_else(
                    || "empty".to_owned(),
                    |h| format!("position {} hash {}", h.position, h.hash),
                )
            };
            return Err(RestoreError::HeadMismatch {
                expected: show(expected_head),
                restored: show(head),
            });
        }
        Ok(head)
    }
}
