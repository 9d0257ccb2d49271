//! Subscriptions: catch up from a position, then follow the log live.
//!
//! A subscription pulls: it reads a batch from the store, hands the events out one by one,
//! and when it has caught up it waits on the store's [`CommitSignal`](super::CommitSignal)
//! until the durable head moves. The writer never waits for it and never buffers for it, so a
//! slow subscriber only falls behind; it cannot slow anyone else down.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::EventStore;
use crate::error::ReadError;
use crate::event::RecordedEvent;
use crate::ids::{Position, StreamId, Version};

/// How many events a subscription reads at once.
const BATCH_LEN: usize = 512;

/// Follows the whole log from a position on. Made by [`super::EventLog::subscribe`] or
/// [`Subscription::new`].
#[derive(Debug)]
pub struct Subscription {
    store: Arc<dyn EventStore>,
    next: Position,
    buffer: VecDeque<RecordedEvent>,
}

impl Subscription {
    /// A subscription to `store` whose first event is the one at `from`.
    pub fn new(store: Arc<dyn EventStore>, from: Position) -> Self {
        Self {
            store,
            next: from,
            buffer: VecDeque::new(),
        }
    }

    /// The position of the next event this subscription will return.
    pub fn next_position(&self) -> Position {
        self.buffer.front().map_or(self.next, |e| e.position)
    }

    /// The next event if one is durable already, without waiting.
    ///
    /// # Errors
    /// [`ReadError`] when the store fails or a record is corrupted.
    pub fn try_next(&mut self) -> Result<Option<RecordedEvent>, ReadError> {
        if self.buffer.is_empty() {
            self.refill(self.store.read_all(self.next, BATCH_LEN)?);
        }
        Ok(self.buffer.pop_front())
    }

    /// The next event, waiting for it to commit.
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
            if let Some(event) = self.try_next()? {
                return Ok(Some(event));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let signal = self.store.commit_signal();
            if !signal.wait_for(self.next, Some(left)) {
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
            let batch = self.store.read_all_async(self.next, BATCH_LEN).await?;
            self.refill(batch);
            if self.buffer.is_empty() && !self.store.commit_signal().reached(self.next).await {
                return Err(ReadError::Closed);
            }
        }
    }

    fn refill(&mut self, batch: Vec<RecordedEvent>) {
        if let Some(last) = batch.last() {
            self.next = last.position.next();
        }
        self.buffer.extend(batch);
    }
}

/// Follows one stream from a version on. Made by [`super::EventLog::subscribe_stream`] or
/// [`StreamSubscription::new`].
#[derive(Debug)]
pub struct StreamSubscription {
    store: Arc<dyn EventStore>,
    stream: StreamId,
    next: Version,
    buffer: VecDeque<RecordedEvent>,
}

impl StreamSubscription {
    /// A subscription to `stream` whose first event is the one at version `from`.
    pub fn new(store: Arc<dyn EventStore>, stream: StreamId, from: Version) -> Self {
        Self {
            store,
            stream,
            next: from,
            buffer: VecDeque::new(),
        }
    }

    /// The next event if one is durable already, without waiting.
    ///
    /// # Errors
    /// [`ReadError`] when the store fails or a record is corrupted.
    pub fn try_next(&mut self) -> Result<Option<RecordedEvent>, ReadError> {
        if self.buffer.is_empty() {
            let batch = self.store.read_stream(&self.stream, self.next, BATCH_LEN)?;
            self.refill(batch);
        }
        Ok(self.buffer.pop_front())
    }

    /// The next event, waiting at most `timeout`; `None` when none committed in time.
    ///
    /// # Errors
    /// [`ReadError::Closed`] when the store closes while waiting, or any read error.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<RecordedEvent>, ReadError> {
        let deadline = Instant::now() + timeout;
        loop {
            // Read the head before the stream: if nothing new is found, anything that
            // commits later moves the head past it, and the wait below sees that.
            let seen = self.store.commit_signal().head();
            if let Some(event) = self.try_next()? {
                return Ok(Some(event));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let signal = self.store.commit_signal();
            let beyond = Position::new(seen + 1).unwrap_or(Position::FIRST);
            if !signal.wait_for(beyond, Some(left)) {
                if signal.is_closed() {
                    return Err(ReadError::Closed);
                }
                if Instant::now() >= deadline {
                    return Ok(None);
                }
            }
        }
    }

    /// The next event, for async callers.
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
                .store
                .read_stream_async(self.stream.clone(), self.next, BATCH_LEN)
                .await?;
            self.refill(batch);
            let beyond = Position::new(seen + 1).unwrap_or(Position::FIRST);
            if self.buffer.is_empty() && !self.store.commit_signal().reached(beyond).await {
                return Err(ReadError::Closed);
            }
        }
    }

    fn refill(&mut self, batch: Vec<RecordedEvent>) {
        if let Some(last) = batch.last() {
            self.next = last.version.next();
        }
        self.buffer.extend(batch);
    }
}
