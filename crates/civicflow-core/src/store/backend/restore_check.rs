//! The checks a restore makes on every record it is given, whatever stores it: the same as
//! `verify` (position, the record's own position field, the stream's next version, the hash
//! recomputed from the bytes and both links), and at the end that the head is the exported one.
//!
//! Each stream's last version and hash are kept in a bounded map, as `verify`'s walk keeps
//! them: once the backend has written everything checked so far and the map is full, it is
//! emptied, and a stream missing from it is looked up in what the restore has written. So a
//! restore's memory stays flat on any log size (a map of every stream took 48 MB of the heap
//! importing a million events).

use std::collections::HashMap;

use crate::chain::{ChainHash, ChainHead};
use crate::clock::Timestamp;
use crate::codec;
use crate::error::RestoreError;
use crate::event::RecordedEvent;
use crate::ids::{Position, StreamId, Version};
use crate::store::{StoredIdempotency, StoredRecord};

/// How many streams' last versions and hashes a restore's check keeps in memory by default,
/// as `verify`'s walk does (`chain_walk.rs`): about 20 MB at most.
pub const RESTORE_STREAMS_IN_MEMORY: usize = 100_000;

/// How a restore finds the last version and stored hash of a stream its check no longer holds
/// in memory: in the records the restore has written so far (`None`: the stream has none).
pub type LastInStream<'a> =
    &'a mut dyn FnMut(&StreamId) -> Result<Option<(Version, ChainHash)>, RestoreError>;

/// A restore's running check: where the next record must be, and the last version and hash
/// of the streams seen since the map was last emptied.
#[derive(Debug)]
pub struct RestoreCheck {
    next: Position,
    prev_log: ChainHash,
    streams: HashMap<StreamId, (Version, ChainHash)>,
    /// The map is emptied once it holds this many streams and everything is written.
    stream_limit: usize,
    /// Whether the map was ever emptied: until then a stream missing from it has no events.
    forgot: bool,
    last_recorded_at: Timestamp,
}

impl Default for RestoreCheck {
    fn default() -> Self {
        Self::new()
    }
}

impl RestoreCheck {
    /// A check of a restore into an empty log, keeping up to
    /// [`RESTORE_STREAMS_IN_MEMORY`] streams in memory.
    pub fn new() -> Self {
        Self::with_stream_limit(RESTORE_STREAMS_IN_MEMORY)
    }

    /// A check that keeps up to `limit` streams in memory between writes (at least one).
    pub fn with_stream_limit(limit: usize) -> Self {
        Self {
            next: Position::FIRST,
            prev_log: ChainHash::GENESIS,
            streams: HashMap::new(),
            stream_limit: limit.max(1),
            forgot: false,
            last_recorded_at: Timestamp::EPOCH,
        }
    }

    /// Says that every record checked so far is written where the restore's [`LastInStream`]
    /// finds it: the check may forget its streams now (when it holds its limit or more).
    pub fn written(&mut self) {
        if self.streams.len() >= self.stream_limit {
            self.streams.clear();
            self.forgot = true;
        }
    }

    /// How many streams the check keeps in memory between writes.
    pub fn stream_limit(&self) -> usize {
        self.stream_limit
    }

    /// The position the next record must have.
    pub fn next_position(&self) -> Position {
        self.next
    }

    /// The recorded time of the last record checked.
    pub fn last_recorded_at(&self) -> Timestamp {
        self.last_recorded_at
    }

    /// Checks the next record and returns it decoded. `last_in_stream` is asked for a stream
    /// the check has forgotten since it was last told everything is [`written`](Self::written).
    ///
    /// # Errors
    /// [`RestoreError::OutOfOrder`], [`RestoreError::Invalid`] or
    /// [`RestoreError::HashMismatch`] naming the position; what `last_in_stream` returns.
    pub fn record(
        &mut self,
        record: &StoredRecord,
        last_in_stream: LastInStream<'_>,
    ) -> Result<RecordedEvent, RestoreError> {
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
        let last = match self.streams.get(&event.stream) {
            Some(last) => Some(*last),
            None if self.forgot => last_in_stream(&event.stream)?,
            None => None,
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Actor, CorrelationId, EventId, EventType};

    /// A log of `streams` streams written round-robin, `rounds` events each, as a restore
    /// receives it.
    fn export(streams: usize, rounds: usize) -> Vec<StoredRecord> {
        let mut last: HashMap<usize, (Version, ChainHash)> = HashMap::new();
        let mut prev_log = ChainHash::GENESIS;
        let mut out = Vec::new();
        for i in 0..streams * rounds {
            let s = i % streams;
            let (version, prev_stream) = last
                .get(&s)
                .map_or((Version::FIRST, ChainHash::GENESIS), |(v, h)| {
                    (v.next(), *h)
                });
            let position = Position::new(i as u64 + 1).expect("not zero");
            let event = RecordedEvent {
                position,
                stream: StreamId::new(format!("case-{s}")).expect("valid"),
                version,
                recorded_at: Timestamp::from_unix_seconds(i as i64),
                event_id: EventId::new_v7(Timestamp::EPOCH),
                event_type: EventType::new("Noted").expect("valid"),
                schema_version: 1,
                actor: Actor::parse("a", "r", "u").expect("valid"),
                correlation_id: CorrelationId::new_v7(Timestamp::EPOCH),
                causation_id: None,
                payload: vec![i as u8],
                hash: ChainHash::GENESIS,
            };
            let bytes = codec::encode_record(&event);
            let hash = ChainHash::link(&prev_log, &prev_stream, &bytes);
            last.insert(s, (version, hash));
            prev_log = hash;
            out.push(StoredRecord {
                position,
                hash,
                bytes,
            });
        }
        out
    }

    /// Checks `records` as a restore writing a batch every `batch` records would, the
    /// "written" records answering the check's lookups. Returns how many lookups were made.
    fn restore(
        records: &[StoredRecord],
        limit: usize,
        batch: usize,
    ) -> Result<usize, RestoreError> {
        let mut check = RestoreCheck::with_stream_limit(limit);
        let mut written: HashMap<StreamId, (Version, ChainHash)> = HashMap::new();
        let mut pending = Vec::new();
        let mut lookups = 0;
        for (i, record) in records.iter().enumerate() {
            let event = check.record(record, &mut |stream| {
                lookups += 1;
                Ok(written.get(stream).copied())
            })?;
            pending.push((event.stream, (event.version, record.hash)));
            if (i + 1) % batch == 0 {
                written.extend(pending.drain(..));
                check.written();
                assert!(check.streams.len() < limit, "the map was not emptied");
            }
        }
        Ok(lookups)
    }

    #[test]
    fn a_check_that_forgets_streams_looks_them_up_and_accepts_the_same_log() {
        let records = export(40, 5);
        assert_eq!(restore(&records, usize::MAX, 7).expect("intact"), 0);
        let lookups = restore(&records, 6, 7).expect("intact");
        assert!(lookups > 100, "{lookups} lookups");
    }

    #[test]
    fn a_forgotten_stream_is_still_checked_against_what_was_written() {
        // The second round's first record continues case-0, whose first event the check has
        // forgotten by then: a version or hash that does not follow it is refused.
        let records = export(40, 2);
        let mut skipped = records.clone();
        skipped.remove(0);
        let err = restore(&skipped, 6, 7).expect_err("positions");
        assert!(matches!(err, RestoreError::OutOfOrder { .. }), "{err:?}");

        let mut changed = records.clone();
        changed[40].hash = ChainHash::GENESIS;
        let err = restore(&changed, 6, 7).expect_err("changed hash");
        assert!(
            matches!(err, RestoreError::HashMismatch { position, .. } if position.get() == 41),
            "{err:?}"
        );

        // A lookup that answers wrong (a lost event) is caught as a wrong version.
        let mut check = RestoreCheck::with_stream_limit(1);
        check.record(&records[0], &mut |_| Ok(None)).expect("first");
        check.written();
        let err = check
            .record(&records[1], &mut |_| Ok(None))
            .map(|_| ())
            .and_then(|()| {
                check.written();
                (2..=40).try_for_each(|i| check.record(&records[i], &mut |_| Ok(None)).map(|_| ()))
            })
            .expect_err("case-0's first event forgotten and not found");
        assert!(
            matches!(&err, RestoreError::Invalid { position, reason } if position.get() == 41 && reason.contains("version 2")),
            "{err:?}"
        );
    }
}
