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

use super::filter::KeyHash;
use super::keys;
use super::{lock, Shared, WriteSet};
use crate::chain::{ChainHash, ChainHead};
use crate::clock::Timestamp;
use crate::codec::ChunkBuilder;
use crate::error::{AppendError, ReadError};
use crate::event::{AppendRequest, Appended};
use crate::ids::{IdempotencyKey, Position, StreamId, Version};
use crate::sled::support::describe;
use crate::store::backend::{
    decode_idempotency, prepare, GroupPlan, GroupSink, GroupSource, PreparedAppend, StreamHead,
};
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

/// Everything one group will write to sled, built before anything is written: the shared
/// plan ([`GroupPlan`]) and the sled batch its records and keys go into.
struct SledGroup {
    plan: GroupPlan,
    batch: WriteSet,
    chunk: ChunkBuilder,
    chunk_first: Position,
    /// New stream index entries: (stream, version, position).
    index_additions: Vec<(StreamId, Version, Position)>,
}

impl GroupSink for SledGroupWrites<'_> {
    fn record(
        &mut self,
        stream: &StreamId,
        version: Version,
        position: Position,
        hash: &ChainHash,
        record: Vec<u8>,
    ) {
        if self.chunk.is_full_for(record.len()) {
            let full = std::mem::replace(self.chunk, ChunkBuilder::new());
            self.batch
                .insert(keys::chunk(*self.chunk_first), full.finish());
            *self.chunk_first = position;
        }
        if self.chunk.is_empty() {
            *self.chunk_first = position;
        }
        self.chunk.push(hash, &record);
        self.index_additions
            .push((stream.clone(), version, position));
    }

    fn idempotency(&mut self, key: &IdempotencyKey, _last_position: Position, record: Vec<u8>) {
        self.batch.insert(keys::idempotency(key), record);
    }
}

/// The parts of a [`SledGroup`] its records go into (borrowed apart from the plan).
struct SledGroupWrites<'a> {
    batch: &'a mut WriteSet,
    chunk: &'a mut ChunkBuilder,
    chunk_first: &'a mut Position,
    index_additions: &'a mut Vec<(StreamId, Version, Position)>,
}

impl SledGroup {
    fn finish_chunk(&mut self) {
        if !self.chunk.is_empty() {
            let last = std::mem::replace(&mut self.chunk, ChunkBuilder::new());
            self.batch
                .insert(keys::chunk(self.chunk_first), last.finish());
        }
    }
}

/// What a sled group looks up: the leader's cache of stream heads, then the index.
struct SledSource<'a> {
    shared: &'a Shared,
    writer: &'a mut Writer,
}

impl GroupSource for SledSource<'_> {
    fn stream_head(&mut self, stream: &StreamId) -> Result<Option<StreamHead>, AppendError> {
        if let Some(head) = self.writer.streams.get(stream) {
            return Ok(Some(*head));
        }
        let durable = self.writer.head.map_or(0, |h| h.position.get());
        let Some((version, position)) = self.shared.stream_last(stream, durable)? else {
            return Ok(None);
        };
        let hash = self.shared.hash_at(position)?;
        let head = StreamHead { version, hash };
        if self.writer.streams.len() >= STREAM_CACHE_MAX {
            self.writer.streams.clear();
        }
        self.writer.streams.insert(stream.clone(), head);
        Ok(Some(head))
    }

    fn idempotency(
        &mut self,
        key: &IdempotencyKey,
    ) -> Result<Option<([u8; 32], Appended)>, ReadError> {
        self.shared.stored_idempotency(key)
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
        if !plan.plan.writes() {
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
    fn plan_group(&self, writer: &mut Writer, group: &[Pending]) -> (SledGroup, Vec<AppendResult>) {
        let recorded_at = self.clock.now().max(writer.last_recorded_at);
        let mut sled_group = SledGroup {
            plan: GroupPlan::new(writer.head, recorded_at),
            batch: WriteSet::default(),
            chunk: ChunkBuilder::new(),
            chunk_first: Position::FIRST,
            index_additions: Vec::new(),
        };
        let SledGroup {
            plan,
            batch,
            chunk,
            chunk_first,
            index_additions,
        } = &mut sled_group;
        let mut writes = SledGroupWrites {
            batch,
            chunk,
            chunk_first,
            index_additions,
        };
        let mut source = SledSource {
            shared: self,
            writer,
        };
        let outcomes = group
            .iter()
            .map(|pending| plan.plan_append(&pending.append, &mut source, &mut writes))
            .collect();
        sled_group.finish_chunk();
        (sled_group, outcomes)
    }

    pub(super) fn stored_idempotency(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<([u8; 32], Appended)>, ReadError> {
        let stored_key = keys::idempotency(key);
        if let Some(bytes) = self.tree.get(&stored_key).map_err(super::storage)? {
            return decode_idempotency(key, &bytes).map(Some);
        }
        // Then the sealed segments, newest first (the table taken after the tail's read).
        let table = self.sealed();
        if table.is_empty() {
            return Ok(None);
        }
        let hash = KeyHash::of(&stored_key);
        for segment in table.iter().rev().filter(|segment| segment.may_hold(hash)) {
            let mut found = None;
            segment.pairs_with_prefix(&stored_key, &stored_key, |stored, value| {
                if stored == stored_key.as_slice() {
                    found = Some(decode_idempotency(key, value)?);
                }
                Ok(false)
            })?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Writes the planned batch, flushes, syncs, and only then publishes and answers. On
    /// failure hands the group back with the reason, for the caller to poison the log.
    fn write_durably(
        &self,
        writer: &mut Writer,
        mut plan: SledGroup,
        group: Vec<Pending>,
        outcomes: Vec<AppendResult>,
    ) -> Result<(), (String, Vec<Pending>)> {
        let head = plan.plan.head().expect("a group that writes has a head");
        let last = head.position;

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
    fn publish(&self, writer: &mut Writer, plan: &SledGroup, head: ChainHead, index_flushed: bool) {
        writer.head = Some(head);
        writer.last_recorded_at = plan.plan.recorded_at();
        if writer.streams.len() + plan.index_additions.len() > STREAM_CACHE_MAX {
            writer.streams.clear();
        }
        for (stream, stream_head) in plan.plan.stream_heads() {
            writer.streams.insert(stream.clone(), *stream_head);
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
        if index_flushed && self.seal_events > 0 {
            // Everything through `head` is in the stream index on disk: a seal may end here.
            self.sealer.flushed(head.position);
        }
    }
}
