//! Group commit.
//!
//! Appends are prepared (validated, encoded) on the caller's thread, then queued. One thread
//! at a time leads: a caller that finds nobody leading commits on its own thread (no hand-off
//! for a lone writer); otherwise the log's committer thread takes over and drains the queue
//! group by group. A group is checked, assigned positions and hashes, written as one sled
//! batch, flushed and synced once; only then is anyone answered.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::keys;
use super::{lock, Shared, WriteSet};
use crate::chain::{ChainHash, ChainHead};
use crate::clock::Timestamp;
use crate::codec::{self, ChunkBuilder, IdempotencyRecordV1, PreparedEvent};
use crate::error::{AppendError, ReadError};
use crate::event::{AppendRequest, Appended, Conflict, StreamAppended, MAX_EVENT_BYTES};
use crate::ids::{EventId, ExpectedVersion, IdempotencyKey, Position, StreamId, Version};
use crate::sled::support::describe;
use crate::store::AppendResult;
use crate::store::Durability;
use crate::store::{Completer, Completion};

/// The longest a leader waits for the writers of the last group to come back.
const GATHER_WAIT_MAX: Duration = Duration::from_micros(200);

/// The stream heads the leader remembers between groups; cleared when it grows past this.
const STREAM_CACHE_MAX: usize = 100_000;

/// Who leads the commit now.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Leader {
    #[default]
    Nobody,
    /// A caller commits on its own thread.
    Caller,
    /// The committer thread drains the queue.
    Committer,
}

#[derive(Debug, Default)]
pub(super) struct Queue {
    pending: Vec<Pending>,
    leader: Leader,
    shutdown: bool,
}

#[derive(Debug)]
struct Pending {
    append: PreparedAppend,
    reply: Completer<AppendResult>,
}

/// Answers a group, in order. (Waking a blocked thread is the costly part of a commit on a
/// small virtual machine; relaying the wakes through the woken threads was measured and did
/// not beat waking them from here, so this stays simple.)
fn deliver(answers: impl IntoIterator<Item = (Pending, AppendResult)>) {
    for (pending, outcome) in answers {
        pending.reply.complete(outcome);
    }
}

/// An append after validation and encoding, ready for a leader.
#[derive(Debug)]
struct PreparedAppend {
    writes: Vec<PreparedWrite>,
    idempotency_key: Option<IdempotencyKey>,
    /// SHA-256 of the request's content (only computed when there is a key).
    fingerprint: [u8; 32],
}

#[derive(Debug)]
struct PreparedWrite {
    stream: StreamId,
    expected: ExpectedVersion,
    events: Vec<PreparedEvent>,
}

/// A stream's newest event, as the leader needs it: its version and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StreamHead {
    pub(super) version: Version,
    pub(super) hash: ChainHash,
}

/// State only the leader touches.
#[derive(Debug)]
pub(super) struct Writer {
    pub(super) head: Option<ChainHead>,
    last_recorded_at: Timestamp,
    streams: HashMap<StreamId, StreamHead>,
    pub(super) closed: bool,
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    syncs: u64,
}

impl Writer {
    pub(super) fn new(head: Option<ChainHead>, last_recorded_at: Timestamp) -> Self {
        Self {
            head,
            last_recorded_at,
            streams: HashMap::new(),
            closed: false,
            syncs: 0,
        }
    }

    /// After a restore: the log now ends at `head`, its last event recorded at
    /// `last_recorded_at`.
    pub(super) fn restored(&mut self, head: Option<ChainHead>, last_recorded_at: Timestamp) {
        self.head = head;
        self.last_recorded_at = last_recorded_at;
        self.streams.clear();
    }
}

fn prepare(request: AppendRequest, now: Timestamp) -> Result<PreparedAppend, AppendError> {
    request.validate()?;
    let fingerprint = match (&request.idempotency_key, request.fingerprint) {
        (Some(_), Some(given)) => given,
        (Some(_), None) => fingerprint(&request),
        (None, _) => [0; 32],
    };
    let AppendRequest {
        writes,
        actor,
        correlation_id,
        causation_id,
        idempotency_key,
        fingerprint: _,
    } = request;
    let mut prepared_writes = Vec::with_capacity(writes.len());
    for write in writes {
        let mut events = Vec::with_capacity(write.events.len());
        for (index, event) in write.events.iter().enumerate() {
            let event_id = event.event_id.unwrap_or_else(|| EventId::new_v7(now));
            let prepared = codec::prepare_event(
                &write.stream,
                event_id,
                &event.event_type,
                event.schema_version,
                &actor,
                correlation_id,
                event.causation_id.or(causation_id),
                &event.payload,
            );
            let size = codec::record_len_max(&prepared);
            if size > MAX_EVENT_BYTES {
                return Err(AppendError::EventTooLarge {
                    stream: write.stream.clone(),
                    index,
                    size,
                    max: MAX_EVENT_BYTES,
                });
            }
            events.push(prepared);
        }
        prepared_writes.push(PreparedWrite {
            stream: write.stream,
            expected: write.expected,
            events,
        });
    }
    Ok(PreparedAppend {
        writes: prepared_writes,
        idempotency_key,
        fingerprint,
    })
}

/// What makes two appends "the same request" for idempotency: who, which streams with which
/// expectations, and the events' types and payloads. Event ids, correlation and causation are
/// left out: a retry may make new ones.
fn fingerprint(request: &AppendRequest) -> [u8; 32] {
    fn field(hasher: &mut Sha256, bytes: &[u8]) {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
    let mut hasher = Sha256::new();
    field(&mut hasher, b"civicflow-idempotency-v1");
    field(&mut hasher, request.actor.id.as_str().as_bytes());
    field(&mut hasher, request.actor.role.as_str().as_bytes());
    field(&mut hasher, request.actor.unit.as_str().as_bytes());
    for write in &request.writes {
        field(&mut hasher, write.stream.as_str().as_bytes());
        let expected = match write.expected {
            ExpectedVersion::Any => [0u8; 9],
            ExpectedVersion::NoStream => [1; 9],
            ExpectedVersion::Exact(v) => {
                let mut bytes = [2u8; 9];
                bytes[1..].copy_from_slice(&v.get().to_le_bytes());
                bytes
            }
        };
        field(&mut hasher, &expected);
        for event in &write.events {
            field(&mut hasher, event.event_type.as_str().as_bytes());
            field(&mut hasher, &event.schema_version.to_le_bytes());
            field(&mut hasher, &event.payload);
        }
    }
    hasher.finalize().into()
}

/// Everything one group will write, built before anything is written.
struct GroupPlan {
    batch: WriteSet,
    next_position: Position,
    prev_log_hash: ChainHash,
    chunk: ChunkBuilder,
    chunk_first: Position,
    recorded_at: Timestamp,
    /// Stream heads as they will be after the appends planned so far.
    overlay: HashMap<StreamId, Option<StreamHead>>,
    /// New stream index entries: (stream, version, position).
    index_additions: Vec<(StreamId, Version, Position)>,
    /// Idempotency keys written by this group.
    keys_in_group: HashMap<IdempotencyKey, ([u8; 32], Appended)>,
    writes: bool,
}

impl GroupPlan {
    fn push_record(&mut self, hash: &ChainHash, record: &[u8], position: Position) {
        if self.chunk.is_full_for(record.len()) {
            let full = std::mem::replace(&mut self.chunk, ChunkBuilder::new());
            self.batch
                .insert(keys::chunk(self.chunk_first), full.finish());
            self.chunk_first = position;
        }
        if self.chunk.is_empty() {
            self.chunk_first = position;
        }
        self.chunk.push(hash, record);
    }

    fn finish_chunk(&mut self) {
        if !self.chunk.is_empty() {
            let last = std::mem::replace(&mut self.chunk, ChunkBuilder::new());
            self.batch
                .insert(keys::chunk(self.chunk_first), last.finish());
        }
    }

    fn last_position(&self) -> Option<Position> {
        self.next_position.prev()
    }
}

impl Shared {
    pub(super) fn append(&self, request: AppendRequest) -> AppendResult {
        let prepared = prepare(request, self.clock.now())?;
        let (completion, completer) = Completion::new();
        let lead = {
            let mut queue = lock(&self.queue);
            if queue.shutdown {
                return Err(AppendError::Closed);
            }
            queue.pending.push(Pending {
                append: prepared,
                reply: completer,
            });
            if queue.leader == Leader::Nobody {
                queue.leader = Leader::Caller;
                true
            } else {
                false
            }
        };
        if lead {
            self.lead_once();
        }
        completion.wait()
    }

    pub(super) fn append_async(
        self: &Arc<Self>,
        request: AppendRequest,
    ) -> Completion<AppendResult> {
        let prepared = match prepare(request, self.clock.now()) {
            Ok(prepared) => prepared,
            Err(e) => return Completion::ready(Err(e)),
        };
        let (completion, completer) = Completion::new();
        let mut queue = lock(&self.queue);
        if queue.shutdown {
            return Completion::ready(Err(AppendError::Closed));
        }
        queue.pending.push(Pending {
            append: prepared,
            reply: completer,
        });
        if queue.leader == Leader::Nobody {
            // An async caller never commits on its own thread: that would block its runtime.
            queue.leader = Leader::Committer;
            self.committer_wake.notify_one();
        }
        completion
    }

    /// A caller's turn as leader: commit everything queued (its own append included), then
    /// hand whatever arrived meanwhile to the committer thread.
    fn lead_once(&self) {
        let group = self.gather(lock(&self.queue));
        self.commit_group(group);
        let mut queue = lock(&self.queue);
        if queue.pending.is_empty() {
            queue.leader = Leader::Nobody;
            if queue.shutdown {
                // The committer may be waiting for the last leader to finish.
                self.committer_wake.notify_one();
            }
        } else {
            // Appends arrived while we committed: the committer thread takes over, so this
            // caller can return now. (Waking a thread only when there is work: a lone writer
            // costs no context switch.)
            queue.leader = Leader::Committer;
            self.committer_wake.notify_one();
        }
    }

    /// Takes the next commit group from the queue. When the last group was bigger than what
    /// is queued now, its writers are probably on their way back (being woken, preparing
    /// their next append): wait for them a little, yielding the core to them, so that one
    /// flush and sync serves them all. A lone writer (last group of one) never waits.
    fn gather<'a>(&'a self, mut queue: MutexGuard<'a, Queue>) -> Vec<Pending> {
        let expected = self.last_group_appends.load(Ordering::Relaxed);
        if queue.pending.len() < expected && !queue.shutdown {
            let deadline = Instant::now() + GATHER_WAIT_MAX;
            while queue.pending.len() < expected && !queue.shutdown && Instant::now() < deadline {
                drop(queue);
                std::thread::yield_now();
                queue = lock(&self.queue);
            }
        }
        let group = std::mem::take(&mut queue.pending);
        self.last_group_appends
            .store(group.len(), Ordering::Relaxed);
        group
    }

    /// The committer thread: leads whenever leadership is handed to it, until shutdown.
    pub(super) fn run_committer(&self) {
        loop {
            let group = {
                let mut queue = lock(&self.queue);
                loop {
                    if queue.leader == Leader::Committer {
                        if queue.pending.is_empty() {
                            queue.leader = Leader::Nobody;
                            continue;
                        }
                        break self.gather(queue);
                    }
                    if queue.shutdown && queue.leader == Leader::Nobody && queue.pending.is_empty()
                    {
                        return;
                    }
                    if queue.shutdown && queue.leader == Leader::Nobody {
                        queue.leader = Leader::Committer;
                        continue;
                    }
                    queue = self
                        .committer_wake
                        .wait(queue)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            };
            self.commit_group(group);
        }
    }

    /// Stops accepting appends; the committer drains what is queued and exits.
    pub(super) fn begin_close(&self) {
        let mut queue = lock(&self.queue);
        queue.shutdown = true;
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.committer_wake.notify_all();
        drop(queue);
        self.signal.close();
    }

    fn commit_group(&self, group: Vec<Pending>) {
        if group.is_empty() {
            return;
        }
        let mut writer = lock(&self.writer);
        if let Some(error) = self.refusal(&writer) {
            deliver(
                group
                    .into_iter()
                    .map(|pending| (pending, Err(error.clone()))),
            );
            return;
        }
        let (plan, outcomes) = self.plan_group(&mut writer, &group);
        if !plan.writes {
            // Only conflicts, refusals and replays of durable appends: nothing to make durable.
            deliver(group.into_iter().zip(outcomes));
            return;
        }
        match self.write_durably(&mut writer, plan, group, outcomes) {
            Ok(()) => {}
            Err((reason, group)) => {
                let error = self.poison_with(&writer, reason);
                deliver(
                    group
                        .into_iter()
                        .map(|pending| (pending, Err(error.clone()))),
                );
            }
        }
    }

    /// Why a group cannot be committed at all, if it cannot.
    fn refusal(&self, writer: &Writer) -> Option<AppendError> {
        if writer.closed {
            return Some(AppendError::Closed);
        }
        let reason = lock(&self.poison).clone()?;
        Some(AppendError::Poisoned {
            reason,
            durable_head: writer.head.map_or(0, |h| h.position.get()),
        })
    }

    /// Poisons the log: from now on every append is refused with this reason.
    fn poison_with(&self, writer: &Writer, reason: String) -> AppendError {
        *lock(&self.poison) = Some(reason.clone());
        AppendError::Poisoned {
            reason,
            durable_head: writer.head.map_or(0, |h| h.position.get()),
        }
    }

    /// Checks every append of the group and plans the writes of those that go ahead.
    fn plan_group(&self, writer: &mut Writer, group: &[Pending]) -> (GroupPlan, Vec<AppendResult>) {
        let recorded_at = self.clock.now().max(writer.last_recorded_at);
        let mut plan = GroupPlan {
            batch: WriteSet::default(),
            next_position: writer.head.map_or(Position::FIRST, |h| h.position.next()),
            prev_log_hash: writer.head.map_or(ChainHash::GENESIS, |h| h.hash),
            chunk: ChunkBuilder::new(),
            chunk_first: Position::FIRST,
            recorded_at,
            overlay: HashMap::new(),
            index_additions: Vec::new(),
            keys_in_group: HashMap::new(),
            writes: false,
        };
        let outcomes = group
            .iter()
            .map(|pending| self.plan_append(writer, &mut plan, &pending.append))
            .collect();
        plan.finish_chunk();
        (plan, outcomes)
    }

    fn plan_append(
        &self,
        writer: &mut Writer,
        plan: &mut GroupPlan,
        append: &PreparedAppend,
    ) -> AppendResult {
        // 1. A retry of an append with the same key: answer what it got, write nothing.
        if let Some(key) = &append.idempotency_key {
            let earlier = match plan.keys_in_group.get(key) {
                Some(found) => Some(found.clone()),
                None => self.stored_idempotency(key)?,
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
            let head = self.planned_stream_head(writer, plan, &write.stream)?;
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
        let first_position = plan.next_position;
        let mut streams = Vec::with_capacity(append.writes.len());
        for (write, head) in append.writes.iter().zip(heads) {
            let mut stream_hash = head.map_or(ChainHash::GENESIS, |h| h.hash);
            let mut version = head.map_or(Version::FIRST, |h| h.version.next());
            let first_version = version;
            for (i, event) in write.events.iter().enumerate() {
                if i > 0 {
                    version = version.next();
                }
                let position = plan.next_position;
                let record = codec::finish_record(position, version, plan.recorded_at, event);
                let hash = ChainHash::link(&plan.prev_log_hash, &stream_hash, &record);
                plan.push_record(&hash, &record, position);
                plan.index_additions
                    .push((write.stream.clone(), version, position));
                plan.prev_log_hash = hash;
                stream_hash = hash;
                plan.next_position = position.next();
            }
            plan.overlay.insert(
                write.stream.clone(),
                Some(StreamHead {
                    version,
                    hash: stream_hash,
                }),
            );
            streams.push(StreamAppended {
                stream: write.stream.clone(),
                first_version,
                last_version: version,
            });
        }
        plan.writes = true;
        let appended = Appended {
            streams,
            first_position,
            last_position: plan
                .last_position()
                .expect("an append has at least one event"),
            deduplicated: false,
        };
        // 4. Remember the key in the same batch.
        if let Some(key) = &append.idempotency_key {
            let record = IdempotencyRecordV1 {
                fingerprint: append.fingerprint,
                first_position: appended.first_position.get(),
                last_position: appended.last_position.get(),
                streams: appended
                    .streams
                    .iter()
                    .map(|s| {
                        (
                            s.stream.as_str().to_owned(),
                            s.first_version.get(),
                            s.last_version.get(),
                        )
                    })
                    .collect(),
            };
            plan.batch
                .insert(keys::idempotency(key), codec::encode_idempotency(&record));
            plan.keys_in_group
                .insert(key.clone(), (append.fingerprint, appended.clone()));
        }
        Ok(Ok(appended))
    }

    /// A stream's head as the group will leave it so far: the plan's overlay, then the
    /// leader's cache, then the index.
    fn planned_stream_head(
        &self,
        writer: &mut Writer,
        plan: &GroupPlan,
        stream: &StreamId,
    ) -> Result<Option<StreamHead>, AppendError> {
        if let Some(head) = plan.overlay.get(stream) {
            return Ok(*head);
        }
        if let Some(head) = writer.streams.get(stream) {
            return Ok(Some(*head));
        }
        let durable = writer.head.map_or(0, |h| h.position.get());
        let Some((version, position)) = self.stream_last(stream, durable)? else {
            return Ok(None);
        };
        let hash = self.hash_at(position)?;
        let head = StreamHead { version, hash };
        if writer.streams.len() >= STREAM_CACHE_MAX {
            writer.streams.clear();
        }
        writer.streams.insert(stream.clone(), head);
        Ok(Some(head))
    }

    pub(super) fn stored_idempotency(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<([u8; 32], Appended)>, ReadError> {
        let Some(bytes) = self
            .tree
            .get(keys::idempotency(key))
            .map_err(super::storage)?
        else {
            return Ok(None);
        };
        let corrupted = |reason: String| ReadError::CorruptedIndex {
            what: format!("idempotency record {key}"),
            reason,
        };
        let record = codec::decode_idempotency(&bytes).map_err(|e| corrupted(e.to_string()))?;
        let position = |p: u64| Position::new(p).ok_or_else(|| corrupted("position 0".into()));
        let mut streams = Vec::with_capacity(record.streams.len());
        for (stream, first, last) in record.streams {
            streams.push(StreamAppended {
                stream: StreamId::new(stream).map_err(|e| corrupted(e.to_string()))?,
                first_version: Version::new(first).ok_or_else(|| corrupted("version 0".into()))?,
                last_version: Version::new(last).ok_or_else(|| corrupted("version 0".into()))?,
            });
        }
        let appended = Appended {
            streams,
            first_position: position(record.first_position)?,
            last_position: position(record.last_position)?,
            deduplicated: true,
        };
        Ok(Some((record.fingerprint, appended)))
    }

    /// Writes the planned batch, flushes, syncs, and only then publishes and answers. On
    /// failure hands the group back with the reason, for the caller to poison the log.
    fn write_durably(
        &self,
        writer: &mut Writer,
        mut plan: GroupPlan,
        group: Vec<Pending>,
        outcomes: Vec<AppendResult>,
    ) -> Result<(), (String, Vec<Pending>)> {
        let last = plan
            .last_position()
            .expect("a group that writes has a last position");
        let head = ChainHead {
            position: last,
            hash: plan.prev_log_hash,
        };

        let flush_index = {
            let memtable = self.memtable.read().unwrap_or_else(PoisonError::into_inner);
            memtable.events() + plan.index_additions.len() >= self.index_flush_events
        };
        if flush_index {
            let memtable = self.memtable.read().unwrap_or_else(PoisonError::into_inner);
            let mut combined = memtable.clone();
            drop(memtable);
            for (stream, version, position) in &plan.index_additions {
                combined.add(stream, *version, *position);
            }
            combined.write_to(&mut plan.batch, Some(last));
        }

        let batch = std::mem::take(&mut plan.batch);
        let applied =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| batch.apply(&self.tree)));
        match applied {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err((format!("writing the batch failed: {}", describe(&e)), group))
            }
            Err(panic) => {
                return Err((
                    format!(
                        "sled panicked writing the batch: {}",
                        super::panic_message(&panic)
                    ),
                    group,
                ))
            }
        }

        #[cfg(feature = "fault-injection")]
        if self.faults.ack_before_flush {
            // Deliberately wrong: answer without flushing; the data reaches the disk only when
            // sled's own buffer fills. The crash test must catch the loss.
            self.publish(writer, &plan, head, flush_index);
            deliver(group.into_iter().zip(outcomes));
            return Ok(());
        }

        if let Err(reason) = self.make_durable(writer) {
            return Err((reason, group));
        }
        self.stats
            .record_group(group.len() as u64, plan.index_additions.len() as u64);
        self.publish(writer, &plan, head, flush_index);
        deliver(group.into_iter().zip(outcomes));
        Ok(())
    }

    /// sled's flush, then (by default) `fdatasync` of its data file.
    fn make_durable(&self, writer: &mut Writer) -> Result<(), String> {
        let flushed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.db.flush()));
        match flushed {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("flush failed: {}", describe(&e))),
            Err(panic) => {
                return Err(format!(
                    "sled panicked while flushing: {}",
                    super::panic_message(&panic)
                ))
            }
        }
        if self.durability == Durability::Fsync {
            #[cfg(feature = "fault-injection")]
            if self
                .faults
                .fail_sync_after
                .is_some_and(|n| writer.syncs >= n)
            {
                return Err("fdatasync failed: injected fault".into());
            }
            self.data_file.sync_data().map_err(|e| {
                format!(
                    "fdatasync of {} failed: {e}",
                    self.path.join("db").display()
                )
            })?;
        }
        writer.syncs += 1;
        Ok(())
    }

    /// After the group is durable: the leader's state, the memtable, then the head that
    /// readers see (in that order, so a reader that sees the new head sees its index too).
    fn publish(&self, writer: &mut Writer, plan: &GroupPlan, head: ChainHead, index_flushed: bool) {
        writer.head = Some(head);
        writer.last_recorded_at = plan.recorded_at;
        if writer.streams.len() + plan.overlay.len() > STREAM_CACHE_MAX {
            writer.streams.clear();
        }
        for (stream, stream_head) in &plan.overlay {
            if let Some(stream_head) = stream_head {
                writer.streams.insert(stream.clone(), *stream_head);
            }
        }
        {
            let mut memtable = self
                .memtable
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if index_flushed {
                memtable.clear();
            } else {
                for (stream, version, position) in &plan.index_additions {
                    memtable.add(stream, *version, *position);
                }
            }
        }
        *lock(&self.durable_head) = Some(head);
        self.signal.publish(head.position);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::NewEvent;
    use crate::ids::{Actor, CorrelationId, EventType};

    fn request(payload: &[u8]) -> AppendRequest {
        AppendRequest::to_stream(
            StreamId::new("case-1").expect("valid"),
            ExpectedVersion::Any,
            vec![NewEvent::new(
                EventType::new("Noted").expect("valid"),
                1,
                payload.to_vec(),
            )],
            Actor::parse("a", "r", "u").expect("valid"),
            CorrelationId::new_v7(Timestamp::EPOCH),
        )
    }

    #[test]
    fn fingerprints_ignore_ids_but_not_content() {
        let a = request(b"x");
        let mut b = request(b"x");
        b.correlation_id = CorrelationId::new_v7(Timestamp::from_unix_seconds(99));
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&request(b"y")));
    }

    #[test]
    fn an_event_over_64_kib_is_refused_with_its_size() {
        let err =
            prepare(request(&vec![0; MAX_EVENT_BYTES]), Timestamp::EPOCH).expect_err("too large");
        match err {
            AppendError::EventTooLarge {
                index: 0,
                size,
                max,
                ..
            } => {
                assert!(size > max);
                assert_eq!(max, 64 * 1024);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
