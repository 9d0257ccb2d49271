//! Storage: the narrow interface the rest of civicflow uses, and its sled implementation.
//!
//! The engine, the projections and the HTTP service see only [`EventStore`]. Today its one
//! implementation is [`EventLog`] on sled (`sled_log/`, the only code that knows sled); a
//! second backend (PostgreSQL, for users who outgrow one machine) implements the same trait
//! and nothing above it changes. Subscriptions and the commit signal are written against the
//! trait, so every backend gets them.

mod signal;
mod sled_log;
pub(crate) mod sled_support;
mod subscription;

use std::fmt;

pub use signal::{CommitSignal, Completion};
#[cfg(feature = "fault-injection")]
pub use sled_log::FaultInjection;
pub use sled_log::{
    Durability, EventLog, LogConfig, LogStats, Restore, StoredIdempotency, StoredRecord,
};
pub use subscription::{AllFrom, Cursor, Follow, StreamFrom, StreamSubscription, Subscription};

use crate::chain::{ChainHead, VerifyReport};
use crate::error::{AppendError, ReadError};
use crate::event::{AppendRequest, Appended, Conflict, RecordedEvent};
use crate::ids::{Position, StreamId, Version};

/// The result of an append: `Ok(Ok(_))` committed and durable, `Ok(Err(conflict))` a stream
/// was not at the expected version and nothing was written, `Err(_)` a failure.
pub type AppendResult = Result<Result<Appended, Conflict>, AppendError>;

/// An append-only, hash-chained event log.
///
/// Every implementation keeps the guarantees in `docs/design.md`: positions and versions
/// without gaps, atomic appends to one or several streams, idempotent retries, an answer only
/// after the data is durable, reads that never see past the durable head.
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
}
