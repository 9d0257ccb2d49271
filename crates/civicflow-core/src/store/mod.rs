//! Storage of the log: the one interface everything above storage uses.
//!
//! The engine, audits, audit bundles, the deadline scheduler, the command's offline tools and
//! the projections hold an `Arc<dyn EventStore>` and nothing else of the log. A backend
//! implements [`EventStore`] (and, for restores, [`RestoreSink`]) and runs the conformance
//! kit (`testkit::conformance`, behind the `testkit` feature) to prove it keeps the
//! guarantees of `docs/design.md`. The embedded backend is the crate's `SledLog`.
//!
//! Subscriptions and the commit signal are written against the trait, so every backend gets
//! them. `dyn` rather than a type parameter: measured in the log's benchmark (scenario 5), a virtual
//! call is lost in the cost of the I/O behind it (`docs/decisions/0008-…`).

pub mod backend;
mod signal;
mod subscription;

use std::fmt;
use std::time::Duration;

pub use signal::{CommitSignal, Completer, Completion, Reached};
pub use subscription::{AllFrom, Cursor, Follow, StreamFrom, StreamSubscription, Subscription};

use crate::chain::{ChainHash, ChainHead, VerifyReport};
use crate::error::{AppendError, CloseError, ReadError, RestoreError};
use crate::event::{AppendRequest, Appended, Conflict, RecordedEvent};
use crate::ids::{IdempotencyKey, Position, StreamId, Version};

/// The result of an append: `Ok(Ok(_))` committed and durable, `Ok(Err(conflict))` a stream
/// was not at the expected version and nothing was written, `Err(_)` a failure.
pub type AppendResult = Result<Result<Appended, Conflict>, AppendError>;

/// How durable an acknowledged append is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Synced to stable storage before the answer: an acknowledged append survives a process
    /// crash, a kernel crash and a power cut. The default.
    #[default]
    Fsync,
    /// Handed to the operating system before the answer: survives a process crash, but not
    /// necessarily a power cut or a kernel crash. For tests and measurements.
    Flush,
}

/// Counters of a log's work since it was opened, for operators and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogStats {
    /// Commit groups made durable (one flush and sync each).
    pub commit_groups: u64,
    /// Appends in those groups (including conflicts and idempotent replays answered with them).
    pub appends: u64,
    /// Events written.
    pub events: u64,
    /// The most appends one group carried.
    pub largest_group: u64,
    /// Sealed segments the log holds (sled, decision 0013); 0 on a backend that does not seal.
    pub sealed_segments: u64,
}

impl LogStats {
    /// Counters with these values (for backends; the fields are public to read).
    pub fn new(commit_groups: u64, appends: u64, events: u64, largest_group: u64) -> Self {
        Self {
            commit_groups,
            appends,
            events,
            largest_group,
            sealed_segments: 0,
        }
    }
}

/// One event exactly as the log stores it: its position, its chain hash and the record
/// bytes the hash covers (an opaque, versioned encoding; see `docs/design.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// The event's position.
    pub position: Position,
    /// Its stored chain hash.
    pub hash: ChainHash,
    /// The stored record bytes.
    pub bytes: Vec<u8>,
}

/// What a keyed append left for its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// What made it that request: [`crate::AppendRequest::fingerprint`], or the one the log
    /// computed from the append.
    pub fingerprint: [u8; 32],
    /// What it got (`deduplicated` set).
    pub appended: Appended,
}

/// An idempotency record exactly as the log stores it: the key and its stored value (an
/// opaque, versioned encoding of what the keyed append got).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredIdempotency {
    /// The append's idempotency key.
    pub key: IdempotencyKey,
    /// The stored value.
    pub bytes: Vec<u8>,
}

/// An append-only, hash-chained event log.
///
/// Every implementation keeps the guarantees in `docs/design.md`: positions and versions
/// without gaps, atomic appends to one or several streams, idempotent retries, an answer only
/// after the data is durable, reads that never see past the durable head, a failed write
/// that poisons the log (it refuses every later write, with the reason) rather than
/// guessing what reached the disk.
pub trait EventStore: Send + Sync + fmt::Debug {
    /// Appends atomically and returns once the events are durable.
    ///
    /// # Errors
    /// [`AppendError`] when the request is invalid, an event is too large, the idempotency
    /// key was used for another request, or the store failed (then it is poisoned).
    fn append(&self, request: AppendRequest) -> AppendResult;

    /// [`EventStore::append`] for async callers: the returned [`Completion`] is a future, and
    /// no thread of the caller's runtime blocks while the append waits for its commit.
    fn append_async(&self, request: AppendRequest) -> Completion<AppendResult>;

    /// Up to `max` events of `stream`, from version `from` on.
    ///
    /// # Errors
    /// [`ReadError::Corrupted`] with the position of bytes that do not decode.
    fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError>;

    /// Up to `max` events of the whole log, from position `from` on.
    ///
    /// # Errors
    /// [`ReadError::Corrupted`] with the position of bytes that do not decode.
    fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, ReadError>;

    /// [`EventStore::read_stream`] without blocking an async runtime's thread.
    fn read_stream_async(
        &self,
        stream: StreamId,
        from: Version,
        max: usize,
    ) -> Completion<Result<Vec<RecordedEvent>, ReadError>>;

    /// [`EventStore::read_all`] without blocking an async runtime's thread.
    fn read_all_async(
        &self,
        from: Position,
        max: usize,
    ) -> Completion<Result<Vec<RecordedEvent>, ReadError>>;

    /// The stream's current version, `None` when it has no events.
    ///
    /// # Errors
    /// [`ReadError`] when the index does not decode or storage fails.
    fn stream_version(&self, stream: &StreamId) -> Result<Option<Version>, ReadError>;

    /// The durable append made with idempotency key `key`: what made it that request (its
    /// fingerprint) and what it got (`deduplicated` set); `None` when no durable append used
    /// the key. Like every read, capped at the durable head.
    ///
    /// # Errors
    /// [`ReadError`] when the store fails or the record does not decode.
    fn idempotency_record(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, ReadError>;

    /// What the durable append made with idempotency key `key` got (`deduplicated` set), or
    /// `None` when no durable append used it.
    ///
    /// # Errors
    /// As [`EventStore::idempotency_record`].
    fn idempotent_result(&self, key: &IdempotencyKey) -> Result<Option<Appended>, ReadError> {
        Ok(self.idempotency_record(key)?.map(|record| record.appended))
    }

    /// The newest durable event's position and chain hash, `None` for an empty log.
    fn head(&self) -> Option<ChainHead>;

    /// The signal raised after every durable commit; subscriptions wait on it.
    fn commit_signal(&self) -> &CommitSignal;

    /// Recomputes the chain over the whole log and reports the first break.
    ///
    /// # Errors
    /// [`ReadError::Storage`] when storage fails; broken or undecodable records are reported
    /// in the [`VerifyReport`], not as errors.
    fn verify(&self) -> Result<VerifyReport, ReadError>;

    /// Recomputes the chain links of one stream's events and reports the first break.
    ///
    /// # Errors
    /// As [`EventStore::verify`].
    fn verify_stream(&self, stream: &StreamId) -> Result<VerifyReport, ReadError>;

    /// Why the log refuses writes, when a failed write has poisoned it.
    fn poisoned(&self) -> Option<String>;

    /// Counters of the work done since the log was opened.
    fn stats(&self) -> LogStats;

    /// Why the log's background upkeep keeps failing, if it does (sled: sealing its history
    /// into segment files, decision 0013). The log stays correct and writable; it stops moving
    /// history out of sled, so its memory and files grow until the cause is fixed. `GET
    /// /readyz` and `/metrics` report it. `None` by default.
    fn upkeep_failure(&self) -> Option<String> {
        None
    }

    /// Whether other processes may append to this log too (several service instances on one
    /// database). The engine then catches up what it keeps in memory (the org chart) before
    /// each decision and on each scheduler pass, instead of trusting its own appends.
    fn is_shared(&self) -> bool {
        false
    }

    /// Whether the log can take writes now: `Ok`, or why not (poisoned; a shared store's
    /// database unreachable). What `GET /readyz` reports. It may block for a few seconds while
    /// a shared store's database is asked.
    ///
    /// # Errors
    /// The reason the log cannot write now.
    fn health(&self) -> Result<(), String> {
        match self.poisoned() {
            Some(reason) => Err(format!("poisoned: {reason}")),
            None => Ok(()),
        }
    }

    /// Where the log lives, for messages (a directory, a database without its password).
    fn location(&self) -> String;

    /// Up to `max` stored records from position `from` on, never past the durable head: the
    /// exact bytes and hashes, for an export.
    ///
    /// # Errors
    /// [`ReadError`] when the store fails, a record does not decode, or the log is closed.
    fn stored_records(&self, from: Position, max: usize) -> Result<Vec<StoredRecord>, ReadError>;

    /// Up to `max` stored idempotency records with keys after `after` (from the first when
    /// `None`), in key order; only those of durable appends.
    ///
    /// # Errors
    /// [`ReadError`] when the store fails, a record does not decode, or the log is closed.
    fn stored_idempotency_records(
        &self,
        after: Option<&IdempotencyKey>,
        max: usize,
    ) -> Result<Vec<StoredIdempotency>, ReadError>;

    /// Starts a restore into this log, which must be empty; appends wait until it is
    /// finished or dropped. See [`RestoreSink`].
    ///
    /// # Errors
    /// [`RestoreError::NotEmpty`] when the log holds anything; [`RestoreError::Refused`] when
    /// it is closed or poisoned.
    fn begin_restore(&self) -> Result<Box<dyn RestoreSink + '_>, RestoreError>;

    /// Closes the log for every handle: waits for appends in flight, writes what it keeps in
    /// memory out, flushes and syncs. Later calls fail with `Closed`.
    ///
    /// # Errors
    /// [`CloseError`] when the final flush fails (everything acknowledged was durable before).
    fn close(&self) -> Result<(), CloseError>;

    /// Blocks until the event at `position` is durable, the log closes, or `timeout` passes.
    /// Returns whether it is durable. For readers that poll with [`EventStore::read_all`] and
    /// want to sleep until there is more (a [`Subscription`] does this itself).
    fn wait_for(&self, position: Position, timeout: Duration) -> bool {
        self.commit_signal().wait_for(position, Some(timeout))
    }

    /// The error every append gets now, if the log refuses writes (poisoned): what a writer
    /// checks before it reads anything, so that it says why at once. After a failed write a
    /// backend may fail reads too, with a storage error that does not say the log refuses
    /// writes.
    fn write_refusal(&self) -> Option<AppendError> {
        let reason = self.poisoned()?;
        Some(AppendError::Poisoned {
            reason,
            durable_head: self.head().map_or(0, |h| h.position.get()),
        })
    }

    /// Restores a whole export into this empty log: every record (in position order), then
    /// every idempotency record, then checks that the head is `expected_head`.
    ///
    /// # Errors
    /// See [`RestoreSink`]; on an error the log is left empty.
    fn restore(
        &self,
        records: Vec<StoredRecord>,
        idempotency: Vec<StoredIdempotency>,
        expected_head: Option<ChainHead>,
    ) -> Result<Option<ChainHead>, RestoreError> {
        let mut restore = self.begin_restore()?;
        for record in records {
            restore.push_record(record)?;
        }
        for record in idempotency {
            restore.push_idempotency(record)?;
        }
        restore.finish(expected_head)
    }

    /// Follows the whole log from position `from` on. See [`Subscription`].
    fn subscribe(&self, from: Position) -> Subscription
    where
        Self: Sized + Clone + 'static,
    {
        Subscription::new(std::sync::Arc::new(self.clone()), from)
    }

    /// Follows one stream from version `from` on. See [`StreamSubscription`].
    fn subscribe_stream(&self, stream: StreamId, from: Version) -> StreamSubscription
    where
        Self: Sized + Clone + 'static,
    {
        StreamSubscription::new(std::sync::Arc::new(self.clone()), stream, from)
    }
}

/// A shared store is a store: `&Arc<dyn EventStore>` passes where `&dyn EventStore` is asked.
impl<T: EventStore + ?Sized> EventStore for std::sync::Arc<T> {
    fn append(&self, request: AppendRequest) -> AppendResult {
        (**self).append(request)
    }
    fn append_async(&self, request: AppendRequest) -> Completion<AppendResult> {
        (**self).append_async(request)
    }
    fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        (**self).read_stream(stream, from, max)
    }
    fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, ReadError> {
        (**self).read_all(from, max)
    }
    fn read_stream_async(
        &self,
        stream: StreamId,
        from: Version,
        max: usize,
    ) -> Completion<Result<Vec<RecordedEvent>, ReadError>> {
        (**self).read_stream_async(stream, from, max)
    }
    fn read_all_async(
        &self,
        from: Position,
        max: usize,
    ) -> Completion<Result<Vec<RecordedEvent>, ReadError>> {
        (**self).read_all_async(from, max)
    }
    fn stream_version(&self, stream: &StreamId) -> Result<Option<Version>, ReadError> {
        (**self).stream_version(stream)
    }
    fn idempotency_record(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, ReadError> {
        (**self).idempotency_record(key)
    }
    fn head(&self) -> Option<ChainHead> {
        (**self).head()
    }
    fn commit_signal(&self) -> &CommitSignal {
        (**self).commit_signal()
    }
    fn verify(&self) -> Result<VerifyReport, ReadError> {
        (**self).verify()
    }
    fn verify_stream(&self, stream: &StreamId) -> Result<VerifyReport, ReadError> {
        (**self).verify_stream(stream)
    }
    fn poisoned(&self) -> Option<String> {
        (**self).poisoned()
    }
    fn stats(&self) -> LogStats {
        (**self).stats()
    }
    fn health(&self) -> Result<(), String> {
        (**self).health()
    }
    fn upkeep_failure(&self) -> Option<String> {
        (**self).upkeep_failure()
    }
    fn is_shared(&self) -> bool {
        (**self).is_shared()
    }
    fn location(&self) -> String {
        (**self).location()
    }
    fn stored_records(&self, from: Position, max: usize) -> Result<Vec<StoredRecord>, ReadError> {
        (**self).stored_records(from, max)
    }
    fn stored_idempotency_records(
        &self,
        after: Option<&IdempotencyKey>,
        max: usize,
    ) -> Result<Vec<StoredIdempotency>, ReadError> {
        (**self).stored_idempotency_records(after, max)
    }
    fn begin_restore(&self) -> Result<Box<dyn RestoreSink + '_>, RestoreError> {
        (**self).begin_restore()
    }
    fn close(&self) -> Result<(), CloseError> {
        (**self).close()
    }
}

/// A restore in progress into an empty log (from [`EventStore::begin_restore`]).
///
/// Give it every record in position order ([`RestoreSink::push_record`]), then the
/// idempotency records, then [`RestoreSink::finish`] with the exported head. Each record is
/// checked as it comes: its position is the next one, its bytes decode and name that position
/// and the stream's next version, and its hash recomputed from the bytes and both links is
/// the exported hash. Nothing is visible to readers until `finish` has made everything
/// durable. An error, or dropping the restore unfinished, leaves the log empty.
pub trait RestoreSink: fmt::Debug {
    /// The position the next record must have.
    fn next_position(&self) -> Position;

    /// Checks and writes the next record.
    ///
    /// # Errors
    /// [`RestoreError::OutOfOrder`], [`RestoreError::Invalid`] or
    /// [`RestoreError::HashMismatch`] naming the position; [`RestoreError::Storage`].
    fn push_record(&mut self, record: StoredRecord) -> Result<(), RestoreError>;

    /// Checks and writes an idempotency record (after every event record).
    ///
    /// # Errors
    /// [`RestoreError::Idempotency`] when it does not decode or names positions that were
    /// not restored; [`RestoreError::Storage`].
    fn push_idempotency(&mut self, record: StoredIdempotency) -> Result<(), RestoreError>;

    /// Checks that the head is `expected_head`, makes everything durable and opens the
    /// restored log to readers and appends. Returns the head.
    ///
    /// # Errors
    /// [`RestoreError::HeadMismatch`] when the records lead elsewhere (the export is cut
    /// short); [`RestoreError::Storage`].
    fn finish(
        self: Box<Self>,
        expected_head: Option<ChainHead>,
    ) -> Result<Option<ChainHead>, RestoreError>;
}
