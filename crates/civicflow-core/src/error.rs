//! Errors, one type per family of operations, because callers react to them differently.
//!
//! A version conflict is not here: it is an expected outcome of an append, returned as
//! [`crate::Conflict`] inside `Ok`, so that `?` can never carry it off by accident.

use std::io;
use std::path::PathBuf;

use crate::codec::DecodeError;
use crate::ids::{IdempotencyKey, InvalidValue, Position, StreamId};

/// The store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Another process (or another `EventLog` in this one) has the store open.
    #[error("the store at {path} is already open in another process or handle; stop it first")]
    Locked {
        /// The store's directory.
        path: PathBuf,
    },
    /// The directory holds something that is not a civicflow log of a format we read.
    #[error("the store at {path} has format {found:?}, expected {expected:?}")]
    UnsupportedFormat {
        /// The store's directory.
        path: PathBuf,
        /// What it says it is.
        found: String,
        /// What this build reads.
        expected: &'static str,
    },
    /// Stored bytes did not decode while opening.
    #[error("corrupted store: {0}")]
    Corrupted(#[from] ReadError),
    /// The storage engine failed or refused the files (it may also have panicked; that is
    /// caught and reported here).
    #[error("cannot open the store at {path}: {reason}")]
    Storage {
        /// The store's directory.
        path: PathBuf,
        /// What the engine said.
        reason: String,
    },
    /// The log no longer reaches the head it had when it was last closed cleanly, or holds
    /// another event there: acknowledged events were lost or changed while it was closed
    /// (damaged or partly copied files; the embedded store cuts a damaged log short when it
    /// opens it).
    #[error("the log at {path} was closed with its head at {closed}, but its files now hold {found}: events acknowledged before that close are missing or changed (damaged or partly copied files); restore the store from a backup")]
    ClosedHeadLost {
        /// The store's directory.
        path: PathBuf,
        /// The head recorded at the last clean close (position and hash).
        closed: String,
        /// What the files hold now: the recovered head, or the event at the closed position.
        found: String,
    },
    /// The operating system refused a file operation.
    #[error("cannot open the store at {path}: {source}")]
    Io {
        /// The store's directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// An append failed. Nothing of it was acknowledged; after a crash it may or may not be in
/// the log, but never in part. Retrying with the same idempotency key is always safe.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The request is malformed (names the field).
    #[error("invalid append: {0}")]
    Invalid(#[from] InvalidValue),
    /// An event is over the size limit.
    #[error("event {index} of stream {stream} is {size} bytes encoded; the limit is {max}")]
    EventTooLarge {
        /// The stream it was for.
        stream: StreamId,
        /// Its index in that stream's write.
        index: usize,
        /// Its encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The idempotency key was used before for a different request.
    #[error("idempotency key {key} was already used for a different append")]
    IdempotencyKeyReused {
        /// The key.
        key: IdempotencyKey,
    },
    /// A flush or sync failed: the log refuses every write from then on.
    #[error("the event log is poisoned and refuses writes ({reason}); nothing after position {durable_head} was acknowledged; reopen the store")]
    Poisoned {
        /// The failure that poisoned it.
        reason: String,
        /// The last durable position (0: none).
        durable_head: u64,
    },
    /// The log has been closed.
    #[error("the event log is closed")]
    Closed,
    /// A shared store could not be reached, or lost the connection while committing: the
    /// append may or may not have been written (never in part). Retrying with the same
    /// idempotency key is safe and finds out; the store recovers by itself when it is back.
    #[error("the event log's database is unavailable ({reason}); the append may or may not have been written: retry with the same idempotency key")]
    Unavailable {
        /// What the connection or the server said.
        reason: String,
    },
    /// Stored state needed for the append did not decode.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// A read failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Stored bytes at this position did not decode.
    #[error("corrupted record at position {position}: {reason}")]
    Corrupted {
        /// The position whose bytes are damaged.
        position: Position,
        /// What is wrong.
        reason: String,
    },
    /// Stored bytes that belong to no single position (an index entry, a meta value) did
    /// not decode.
    #[error("corrupted {what}: {reason}")]
    CorruptedIndex {
        /// What was being read.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The storage engine failed.
    #[error("storage error: {0}")]
    Storage(String),
    /// The log has been closed.
    #[error("the event log is closed")]
    Closed,
}

impl ReadError {
    pub(crate) fn corrupted(position: Position, error: &DecodeError) -> Self {
        Self::Corrupted {
            position,
            reason: error.to_string(),
        }
    }
}

/// A restore into an empty log failed. The log is left empty again (what was written is
/// removed); a crash during a restore can leave a verified prefix, so restore into a fresh
/// directory and move it into place at the end (as `civicflow import-log` does).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The target log already holds something.
    #[error("the log is not empty ({what}); a restore only goes into an empty store: use a new directory")]
    NotEmpty {
        /// What was found.
        what: String,
    },
    /// The records are not in position order without gaps.
    #[error("record at position {found} where position {expected} was expected: the export is out of order or misses records")]
    OutOfOrder {
        /// The position that was expected next.
        expected: Position,
        /// The position given.
        found: Position,
    },
    /// A record's bytes do not decode, or disagree with where they are.
    #[error("record at position {position} is invalid: {reason}")]
    Invalid {
        /// The record's position.
        position: Position,
        /// What is wrong.
        reason: String,
    },
    /// A record's hash recomputed from its bytes and links differs from the exported one.
    #[error("record at position {position}: exported hash {exported} but its bytes and links hash to {computed}: the export was changed or damaged")]
    HashMismatch {
        /// The record's position.
        position: Position,
        /// The hash the export gives.
        exported: crate::chain::ChainHash,
        /// The hash recomputed.
        computed: crate::chain::ChainHash,
    },
    /// An idempotency record does not decode or points outside the restored records.
    #[error("idempotency record {key}: {reason}")]
    Idempotency {
        /// Its key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The restored head is not the head the export was made at.
    #[error(
        "the restored head is {restored} but the export says {expected}: the export is incomplete"
    )]
    HeadMismatch {
        /// The head the export gives (`empty` for none).
        expected: String,
        /// The head the records lead to.
        restored: String,
    },
    /// The log is closed or poisoned.
    #[error("the event log refuses writes: {0}")]
    Refused(String),
    /// The storage engine failed.
    #[error("storage error during the restore: {0}")]
    Storage(String),
    /// Reading the log failed.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Closing failed: the final flush did not reach the disk. Everything acknowledged before
/// was already durable.
#[derive(Debug, thiserror::Error)]
#[error("closing the event log failed: {reason}")]
pub struct CloseError {
    /// What failed.
    pub reason: String,
}
