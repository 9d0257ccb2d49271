//! Subscriptions: catch up from a position (or a stream version), then follow the log live.
//!
//! A subscription pulls: it reads a batch from the store, hands the events out one by one,
//! and when it has caught up it waits on the store's [`CommitSignal`](super::CommitSignal)
//! until the durable head moves. The writer never waits for it and never buffers for it, so a
//! slow subscriber only falls behind; it cannot slow anyone else down.
//!
//! One type does the following for both kinds; a [`Cursor`] says where to read next: the
//! whole log from a position ([`Subscription`]) or one stream from a version
//! ([`StreamSubscription`]).

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Completion, EventStore};
use crate::error::ReadError;
use crate::event::RecordedEvent;
use crate::ids::{Position, StreamId, Version};

/// How many events a subscription reads at once.
const BATCH_LEN: usize = 512;

mod sealed {
    /// Seals [`super::Cursor`]: only this module's cursors exist, so it cannot be named
    /// outside on purpose.
    #[allow(unnameable_types)]
    pub trait Sealed {}
}

/// Where a subscription reads next. Implemented by [`AllFrom`] and [`StreamFrom`] only.
pub trait Cursor: sealed::Sealed + fmt::Debug + Send {
    /// Reads up to `max` events from the cursor on.
    ///
    /// # Errors
    /// Any read error of the store.
    fn read(&self, store: &dyn EventStore, max: usize) -> Result<Vec<RecordedEvent>, ReadError>;

    /// [`Cursor::read`] off the caller's thread.
    fn read_async(
        &self,
        store: &dyn EventStore,
        max: usize,
    ) -> Completion<Result<Vec<RecordedEvent>, ReadError>>;

    /// Moves past `last`.
    fn advance(&mut self, last: &RecordedEvent);
}

/// The whole log from a position on.
#[derive(Debug, Clone, Copy)]
pub struct AllFrom(Position);

impl sealed::Sealed for AllFrom {}

impl Cursor for AllFrom {
    fn read(&self, store: &dyn EventStore, max: usize) -> Result<Vec<RecordedEvent>, ReadError> {
        store.read_all(self.0, max)
    }

    fn read_async(
        &self,
        store: &dyn EventStore,
        max: usize,
    ) -> Completion<Result<Vec<RecordedEvent>, ReadError>> {
        store.read_all_async(self.0, max)
    }

    fn advance(&mut self, last: &RecordedEvent) {
        self.0 = last.position.next();
    }
}

/// One stream from a version on.
#[derive(Debug, Clone)]
pub struct StreamFrom {
    stream: StreamId,
    next: Version,
}

impl sealed::Sealed for StreamFrom {}

impl Cursor for StreamFrom {
    fn read(&self, store: &dyn EventStore, max: usize) -> Result<Vec<RecordedEvent>, ReadError> {
        store.read_stream(&self.stream, self.next, max)
    }

    fn read_async(
        &self,
        store: &dyn EventStore,
        max: usize,
    ) -> Completion<Result<Vec<RecordedEvent>, ReadError>> {
        store.read_stream_async(self.stream.clone(), self.next, max)
    }

    fn advance(&mut self, last: &RecordedEvent) {
        self.next = last.version.next();
    }
}

/// Follows the whole log: made by [`EventStore::subscribe`](super::EventStore::subscribe) or [`Subscription::new`].
pub type Subscription = Follow<AllFrom>;

/// Follows one stream: made by [`EventStore::subscribe_stream`](super::EventStore::subscribe_stream) or
/// [`StreamSubscription::new`].
pub type StreamSubscription = Follow<StreamFrom>;

/// A subscription: catches up from its cursor, then follows live.
#[derive(Debug)]
pub struct Follow<C: Cursor> {
    store: Arc<dyn EventStore>,
    cursor: C,
    buffer: VecDeque<RecordedEvent>,
}

impl Follow<AllFrom> {
    /// A subscription to `store` whose first event is the one at `from`.
    pub fn new(store: Arc<dyn EventStore>, from: Position) -> Self {
        Self {
            store,
            cursor: AllFrom(from),
            buffer: VecDeque::new(),
        }
    }

    /// The position of the next event this subscription will return.
    pub fn next_position(&self) -> Position {
        self.buffer.front().map_or(self.cursor.0, |e| e.position)
    }
}

impl Follow<StreamFrom> {
    /// A subscription to `stream` whose first event is the one at version `from`.
    pub fn new(store: Arc<dyn EventStore>, stream: StreamId, from: Version) -> Self {
        Self {
            store,
            cursor: StreamFrom { stream, next: from },
            buffer: VecDeque::new(),
        }
    }

    /// The version of the next event this subscription will return.
    pub fn next_version(&self) -> Version {
        self.buffer.front().map_or(self.cursor.next, |e| e.version)
    }
}

impl<C: Cursor> Follow<C> {
    /// The next event if one is durable already, without waiting.
    ///
    /// # Errors
    /// [`ReadError`] when the store fails or a record is corrupted.
    pub fn try_next(&mut self) -> Result<Option<RecordedEvent>, ReadError> {
        if self.buffer.is_empty() {
            let batch = self.cursor.read(self.store.as_ref(), BATCH_LEN)?;
            self.refill(batch);
        }
        Ok(self.buffer.pop_front())
    }

    /// The next event, waiting as long as it takes for one to commit.
    ///
    /// # Errors
    /// [`ReadError::Closed`] when the store closes while waiting, or any read error.
    pub fn next_blocking(&mut self) -> Result<RecordedEvent, ReadError> {
        loop {
            if let Some(event) = self.next_timeout(Duration::from_secs(3600))? {
                return Ok(event);
            }
        }
    }

    /// The next event, waiting at most `timeout`; `None` when none committed in time.
    ///
    /// # Errors
    /// [`ReadError::Closed`] when the store closes while waiting, or any read error.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<RecordedEvent>, ReadError> {
        let deadline = Instant::now() + timeout;
        loop {
            // Note the head before reading: if the read finds nothing, anything that commits
            // later moves the head past it, and the wait below sees that.
            let seen = self.store.commit_signal().head();
            if let Some(event) = self.try_next()? {
                return Ok(Some(event));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let signal = self.store.commit_signal();
            if !signal.wait_for(beyond(seen), Some(left)) {
                if signal.is_closed() {
                    return Err(ReadError::Closed);
                }
                if Instant::now() >= deadline {
                    return Ok(None);
                }
            }
        }
    }

    /// The next event, for async callers: waits on the commit signal without blocking a
    /// thread, and reads off the caller's runtime.
    ///
    /// # Errors
    /// [`ReadError::Closed`] when the store closes while waiting, or any read error.
    pub async fn next_async(&mut self) -> Result<RecordedEvent, ReadError> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Ok(event);
            }
            let seen = self.store.commit_signal().head();
            let batch = self
                .cursor
                .read_async(self.store.as_ref(), BATCH_LEN)
                .await?;
            self.refill(batch);
            if self.buffer.is_empty() && !self.store.commit_signal().reached(beyond(seen)).await {
                return Err(ReadError::Closed);
            }
        }
    }

    fn refill(&mut self, batch: Vec<RecordedEvent>) {
        if let Some(last) = batch.last() {
            self.cursor.advance(last);
        }
        self.buffer.extend(batch);
    }
}

/// The first position after `head`.
fn beyond(head: u64) -> Position {
    Position::new(head.saturating_add(1)).unwrap_or(Position::FIRST)
}
