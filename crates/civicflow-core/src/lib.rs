//! # civicflow-core
//!
//! The foundation of civicflow: an append-only, hash-chained event log on sled, and the types
//! every other part of civicflow speaks.
//!
//! - Streams of events with versions 1, 2, 3, … and one global position per event, both
//!   without gaps, assigned at commit.
//! - Atomic appends to one or several streams with expected versions; a conflict is a
//!   [`Conflict`] value, not an error. Idempotency keys make retries safe.
//! - Group commit: an append returns after its data is flushed and fsynced.
//! - Subscriptions that catch up and then follow the log live, for threads and async code.
//! - A SHA-256 chain over the exact stored bytes, checked by [`EventStore::verify`].
//!
//! The storage sits behind [`EventStore`]; the embedded backend is [`SledLog`].
//! The format and guarantees are in `docs/design.md` of the repository.
//!
//! ```
//! use civicflow_core::{Actor, AppendRequest, CorrelationId, EventStore, EventType,
//!     ExpectedVersion, NewEvent, Position, SledLog, StreamId, Timestamp, Version};
//!
//! let dir = std::env::temp_dir().join(format!("civicflow-core-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let log = SledLog::open(&dir)?;
//! let case = StreamId::new("case-42")?;
//! let actor = Actor::parse("li.wei", "grid_worker", "tonghui/grid-1")?;
//! let opened = NewEvent::new(EventType::new("CaseOpened")?, 1, b"{...}".to_vec());
//!
//! // Append, expecting the stream not to exist yet.
//! let request = AppendRequest::to_stream(case.clone(), ExpectedVersion::NoStream,
//!     vec![opened.clone()], actor.clone(), CorrelationId::new_v7(Timestamp::EPOCH));
//! let appended = log.append(request)?.expect("a new stream");
//! assert_eq!(appended.streams[0].last_version, Version::FIRST);
//!
//! // The same expectation again is a conflict, not an error.
//! let again = AppendRequest::to_stream(case.clone(), ExpectedVersion::NoStream,
//!     vec![opened], actor, CorrelationId::new_v7(Timestamp::EPOCH));
//! let conflict = log.append(again)?.unwrap_err();
//! assert_eq!(conflict.actual, Some(Version::FIRST));
//!
//! // Follow the log from the start.
//! let mut subscription = log.subscribe(Position::FIRST);
//! assert_eq!(subscription.next_blocking()?.stream, case);
//! # drop(subscription);
//! # log.close()?;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod bundle;
pub mod calendar;
mod chain;
mod clock;
mod codec;
#[cfg(test)]
mod codec_fuzz;
pub mod domain;
pub mod engine;
mod error;
mod event;
mod ids;
pub mod readmodel;
mod sled;
mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod vault;

#[cfg(feature = "fault-injection")]
pub use self::sled::FaultInjection;
pub use self::sled::{SledLog, SledLogConfig, SledReadModels, SledVaultStore};
pub use chain::{ChainBreak, ChainBreakReason, ChainHash, ChainHead, VerifyReport};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use codec::DecodeError;
pub use error::{AppendError, CloseError, Error, OpenError, ReadError, RestoreError};
pub use event::{
    payload, AppendRequest, Appended, Conflict, DomainEvent, NewEvent, PayloadError, RecordedEvent,
    StreamAppended, StreamWrite, MAX_EVENT_BYTES,
};
pub use ids::{
    Actor, ActorId, CaseId, CausationId, CorrelationId, DirectiveId, EventId, EventType,
    ExpectedVersion, IdempotencyKey, InvalidValue, ListItemId, PersonId, Position, Role, StreamId,
    UnitId, Version,
};
pub use store::{
    AllFrom, AppendResult, CommitSignal, Completion, Cursor, Durability, EventStore, Follow,
    LogStats, RestoreSink, StoredIdempotency, StoredRecord, StreamFrom, StreamSubscription,
    Subscription,
};
