//! Planning a commit group: the rules every backend applies to the appends of one group, in
//! order, once it holds what orders commits (sled's writer lock, PostgreSQL's head row).
//!
//! For each append: a retry of a keyed append answers the stored result and writes nothing;
//! a stream not at the expected version is a conflict and writes nothing; otherwise the
//! append gets the next positions and stream versions, its records are finished with the
//! group's recorded time and chained (log and stream links), and a keyed append leaves its
//! idempotency record in the same group. Where the records and records go is the backend's
//! ([`GroupSink`]); where stream heads and stored keys are looked up too ([`GroupSource`]).

use std::collections::HashMap;

use super::idempotency::encode_idempotency;
use super::prepare::PreparedAppend;
use crate::chain::{ChainHash, ChainHead};
use crate::clock::Timestamp;
use crate::codec;
use crate::error::{AppendError, ReadError};
use crate::event::{Appended, Conflict, StreamAppended};
use crate::ids::{IdempotencyKey, Position, StreamId, Version};
use crate::store::AppendResult;

/// A stream's newest event, as a commit needs it: its version and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamHead {
    /// The stream's version.
    pub version: Version,
    /// The chain hash of its newest event.
    pub hash: ChainHash,
}

/// Where a group's plan looks up what is already stored.
pub trait GroupSource {
    /// The stored head of `stream` (before this group), `None` when it has no events.
    ///
    /// # Errors
    /// [`AppendError`] when storage fails.
    fn stream_head(&mut self, stream: &StreamId) -> Result<Option<StreamHead>, AppendError>;

    /// The stored record of a keyed append: its fingerprint and what it got.
    ///
    /// # Errors
    /// [`ReadError`] when storage fails or the record does not decode.
    fn idempotency(
        &mut self,
        key: &IdempotencyKey,
    ) -> Result<Option<([u8; 32], Appended)>, ReadError>;
}

/// Where a group's plan puts what it will write.
pub trait GroupSink {
    /// The finished record of one event, in position order.
    fn record(
        &mut self,
        stream: &StreamId,
        version: Version,
        position: Position,
        hash: &ChainHash,
        record: Vec<u8>,
    );

    /// The idempotency record of a keyed append that writes (after its event records).
    fn idempotency(&mut self, key: &IdempotencyKey, last_position: Position, record: Vec<u8>);
}

/// One commit group being planned: the log's head as the group will leave it so far, the
/// streams it touched, and the keys it wrote.
#[derive(Debug)]
pub struct GroupPlan {
    next_position: Position,
    prev_log_hash: ChainHash,
    recorded_at: Timestamp,
    /// Stream heads as they will be after the appends planned so far.
    overlay: HashMap<StreamId, StreamHead>,
    /// Idempotency keys written by this group.
    keys_in_group: HashMap<IdempotencyKey, ([u8; 32], Appended)>,
    events: u64,
}

impl GroupPlan {
    /// A group after the log's `head` (`None`: an empty log), stamped `recorded_at` (the
    /// caller keeps it from going backwards).
    pub fn new(head: Option<ChainHead>, recorded_at: Timestamp) -> Self {
        Self {
            next_position: head.map_or(Position::FIRST, |h| h.position.next()),
            prev_log_hash: head.map_or(ChainHash::GENESIS, |h| h.hash),
            recorded_at,
            overlay: HashMap::new(),
            keys_in_group: HashMap::new(),
            events: 0,
        }
    }

    /// The group's recorded time.
    pub fn recorded_at(&self) -> Timestamp {
        self.recorded_at
    }

    /// Whether the group writes anything (not only conflicts and replays).
    pub fn writes(&self) -> bool {
        self.events > 0
    }

    /// How many events the group writes.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The log's head once the group is written (`None` while it writes nothing and the log
    /// was empty).
    pub fn head(&self) -> Option<ChainHead> {
        self.next_position.prev().map(|position| ChainHead {
            position,
            hash: self.prev_log_hash,
        })
    }

    /// The heads of the streams the group writes, as it leaves them.
    pub fn stream_heads(&self) -> impl Iterator<Item = (&StreamId, &StreamHead)> {
        self.overlay.iter()
    }

    /// Checks one append against the stored state and the appends planned before it, and
    /// plans its writes into `sink` when it goes ahead. The answer is the append's, to be
    /// delivered once the group is durable.
    pub fn plan_append(
        &mut self,
        append: &PreparedAppend,
        source: &mut dyn GroupSource,
        sink: &mut dyn GroupSink,
    ) -> AppendResult {
        // 1. A retry of an append with the same key: answer what it got, write nothing.
        if let Some(key) = &append.idempotency_key {
            let earlier = match self.keys_in_group.get(key) {
                Some(found) => Some(found.clone()),
                None => source.idempotency(key)?,
            };
            if let Some((fingerprint, mut appended)) = earlier {
                if fingerprint != append.fingerprint {
                    return Err(AppendError::IdempotencyKeyReused { key: key.clone() });
                }
                appended.deduplicated = true;
                return Ok(Ok(appended));
            }
        }
        // 2. Every stream must be where the append expects it; look them all up before
        // planning anything, so a failed lookup leaves the plan untouched.
        let mut heads = Vec::with_capacity(append.writes.len());
        for write in &append.writes {
            let head = match self.overlay.get(&write.stream) {
                Some(head) => Some(*head),
                None => source.stream_head(&write.stream)?,
            };
            let actual = head.map(|h| h.version);
            if !write.expected.matches(actual) {
                return Ok(Err(Conflict {
                    stream: write.stream.clone(),
                    expected: write.expected,
                    actual,
                }));
            }
            heads.push(head);
        }
        // 3. Assign positions, versions and hashes.
        let first_position = self.next_position;
        let mut streams = Vec::with_capacity(append.writes.len());
        for (write, head) in append.writes.iter().zip(heads) {
            let mut stream_hash = head.map_or(ChainHash::GENESIS, |h| h.hash);
            let mut version = head.map_or(Version::FIRST, |h| h.version.next());
            let first_version = version;
            for (i, event) in write.events.iter().enumerate() {
                if i > 0 {
                    version = version.next();
                }
                let position = self.next_position;
                let record = codec::finish_record(position, version, self.recorded_at, event);
                let hash = ChainHash::link(&self.prev_log_hash, &stream_hash, &record);
                sink.record(&write.stream, version, position, &hash, record);
                self.prev_log_hash = hash;
                stream_hash = hash;
                self.next_position = position.next();
                self.events += 1;
            }
            self.overlay.insert(
                write.stream.clone(),
                StreamHead {
                    version,
                    hash: stream_hash,
                },
            );
            streams.push(StreamAppended {
                stream: write.stream.clone(),
                first_version,
                last_version: version,
            });
        }
        let appended = Appended {
            streams,
            first_position,
            last_position: self
                .next_position
                .prev()
                .expect("an append has at least one event"),
            deduplicated: false,
        };
        // 4. Remember the key in the same group.
        if let Some(key) = &append.idempotency_key {
            sink.idempotency(
                key,
                appended.last_position,
                encode_idempotency(append.fingerprint, &appended),
            );
            self.keys_in_group
                .insert(key.clone(), (append.fingerprint, appended.clone()));
        }
        Ok(Ok(appended))
    }
}
