//! The log as the runner's workers read it: in chunks of [`CHUNK_LEN`] positions, each chunk
//! read and decoded once and shared by every worker that passes over it.
//!
//! Without it, eight projections rebuilding together read (and decode) the log eight times;
//! most of a rebuild was spent there. Sharing is opportunistic and never couples the workers:
//! a worker finds its chunk in the cache or reads it itself, so a slow or stopped projection
//! holds no one up. Only complete chunks are cached (a chunk at the head is still growing);
//! the oldest go first when the cache is full, since workers only move forward.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use civicflow_core::{EventLog, Position, ReadError};

use crate::Event;

/// Positions per chunk.
pub(crate) const CHUNK_LEN: u64 = 1024;

/// Complete chunks kept. Workers further apart than this read on their own.
const CACHED_CHUNKS: usize = 64;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Events from some position to the end of its chunk (as far as the log has them).
pub(crate) struct Slice {
    chunk: Arc<[Event]>,
    start: usize,
}

impl Slice {
    pub(crate) fn events(&self) -> &[Event] {
        &self.chunk[self.start..]
    }
}

pub(crate) struct Feed {
    log: EventLog,
    /// Complete chunks by index (chunk `i` holds positions `i·CHUNK_LEN + 1 ..= (i+1)·CHUNK_LEN`).
    cache: Mutex<BTreeMap<u64, Arc<[Event]>>>,
    /// Held while a complete chunk is read, so that workers missing the same chunk read it
    /// once: the others wait, then find it cached.
    reading: Mutex<()>,
}

impl Feed {
    pub(crate) fn new(log: EventLog) -> Self {
        Self {
            log,
            cache: Mutex::new(BTreeMap::new()),
            reading: Mutex::new(()),
        }
    }

    /// The durable events from `from` to the end of its chunk; empty when `from` is not
    /// durable yet.
    pub(crate) fn read(&self, from: Position) -> Result<Slice, ReadError> {
        let index = (from.get() - 1) / CHUNK_LEN;
        if let Some(slice) = self.cached(index, from) {
            return Ok(slice);
        }
        let first = index * CHUNK_LEN + 1;
        let last = first + CHUNK_LEN - 1;
        let complete = self.log.head().is_some_and(|h| h.position.get() >= last);
        if !complete {
            // At the head: read just what is new, uncached (it is little, and still growing).
            let max = usize::try_from(last + 1 - from.get()).unwrap_or(usize::MAX);
            let chunk: Arc<[Event]> = self
                .log
                .read_all(from, max)?
                .into_iter()
                .map(Event::new)
                .collect();
            return Ok(Slice { chunk, start: 0 });
        }
        let _reading = lock(&self.reading);
        if let Some(slice) = self.cached(index, from) {
            return Ok(slice);
        }
        let first = Position::new(first).unwrap_or(Position::FIRST);
        let len = usize::try_from(CHUNK_LEN).unwrap_or(usize::MAX);
        let chunk: Arc<[Event]> = self
            .log
            .read_all(first, len)?
            .into_iter()
            .map(Event::new)
            .collect();
        let mut cache = lock(&self.cache);
        cache.insert(index, chunk.clone());
        while cache.len() > CACHED_CHUNKS {
            cache.pop_first();
        }
        drop(cache);
        Ok(slice_from(chunk, from))
    }

    fn cached(&self, index: u64, from: Position) -> Option<Slice> {
        let chunk = lock(&self.cache).get(&index).cloned()?;
        Some(slice_from(chunk, from))
    }

    /// Sleeps until the event at `position` is durable or `timeout` passes.
    pub(crate) fn wait_for(&self, position: Position, timeout: Duration) {
        self.log.wait_for(position, timeout);
    }
}

/// The part of `chunk` from `from` on (found by position, so a chunk is read right even if
/// positions had gaps).
fn slice_from(chunk: Arc<[Event]>, from: Position) -> Slice {
    let start = chunk.partition_point(|e| e.position < from);
    Slice { chunk, start }
}
