//! The log as the runner's workers read it: in chunks of [`CHUNK_LEN`] positions, each event
//! read and decoded once and shared by every worker that passes over it.
//!
//! Without it, eight projections read (and decode) the log eight times: most of a rebuild
//! was spent there, and under a live load every new event was read and decoded eight times
//! too. A worker finds its events in the feed or reads them itself; the only coupling is
//! the pacing below, bounded so that a stopped projection, or one rebuilding far behind,
//! holds no one up.
//!
//! - Complete chunks are cached (the oldest go first when the cache is full, since workers
//!   only move forward), and only while some worker has yet to read them.
//! - The chunk at the head, still growing, is the *tail*: the events of it read so far. A
//!   worker that needs newer events reads just those and appends them for the others; a
//!   worker behind the newest reader takes them from the tail.
//! - Workers behind the head keep pace ([`Feed::pace`]): one that would read from the log a
//!   chunk that pushes out of the cache a chunk another worker close behind it still needs
//!   waits for that worker first. Without it, during a rebuild the fast models ran more than
//!   the cache ahead of the slow ones, and the slow ones read much of the log again
//!   (`civicflow rebuild` on a million-event store: 10.4 to 10.8 s of building without it,
//!   7.1 to 7.9 s with it; `docs/benchmarks.md`).

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use civicflow_core::{EventStore, Position, ReadError};

use crate::Event;

/// Positions per chunk.
pub(crate) const CHUNK_LEN: u64 = 1024;

/// Complete chunks kept. Workers further apart than this keep pace or read on their own.
const CACHED_CHUNKS: u64 = 16;

/// How far (in chunks) a worker waits for one behind it: beyond this the one behind is
/// rebuilding from much further back (a new version beside live ones), and waiting would
/// stall the one ahead for most of that rebuild.
const PACE_REACH: u64 = 2 * CACHED_CHUNKS;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Events from some position on (to the end of its chunk, as far as the log has them).
pub(crate) struct Slice {
    events: Arc<[Arc<Event>]>,
    start: usize,
}

impl Slice {
    pub(crate) fn events(&self) -> &[Arc<Event>] {
        &self.events[self.start..]
    }
}

/// The growing chunk at the head: its index and its events read so far, from its first
/// position.
#[derive(Default)]
struct Tail {
    index: u64,
    events: Vec<Arc<Event>>,
}

pub(crate) struct Feed {
    log: Arc<dyn EventStore>,
    /// Complete chunks by index (chunk `i` holds positions `i·CHUNK_LEN + 1 ..= (i+1)·CHUNK_LEN`).
    cache: Mutex<BTreeMap<u64, Arc<[Arc<Event>]>>>,
    tail: Mutex<Tail>,
    /// Held while the log is read, so that workers missing the same events read them once:
    /// the others wait, then find them in the cache or the tail.
    reading: Mutex<()>,
    /// The chunk each worker reads next (`None`: the worker has stopped), for [`Feed::pace`].
    next_chunks: Mutex<Vec<Option<u64>>>,
    /// Notified when a worker moves to another chunk or stops.
    moved: Condvar,
}

impl Feed {
    /// A feed for workers numbered from 0, each reading first from its entry in `firsts`
    /// (known from the start, so that none runs ahead before the others have begun).
    pub(crate) fn new(log: Arc<dyn EventStore>, firsts: &[Position]) -> Self {
        Self {
            log,
            cache: Mutex::new(BTreeMap::new()),
            tail: Mutex::new(Tail::default()),
            reading: Mutex::new(()),
            next_chunks: Mutex::new(firsts.iter().map(|&p| Some(chunk_index(p))).collect()),
            moved: Condvar::new(),
        }
    }

    /// Notes that `worker` reads from `from` next and says whether it may read now: `false`
    /// when, after waiting up to `timeout`, its read would still push out of the cache a
    /// chunk that a worker close behind it (within [`PACE_REACH`] chunks) has yet to read.
    /// Only reads of whole chunks behind the head wait: a worker at the head never does, so
    /// live models are never held up by one rebuilding far behind them.
    pub(crate) fn pace(&self, worker: usize, from: Position, timeout: Duration) -> bool {
        let index = chunk_index(from);
        let mut next = lock(&self.next_chunks);
        if let Some(at) = next.get_mut(worker) {
            if *at != Some(index) {
                *at = Some(index);
                self.forget_passed(&next);
                self.moved.notify_all();
            }
        }
        let behind_the_head = self
            .log
            .head()
            .is_some_and(|h| h.position.get() >= (index + 1) * CHUNK_LEN);
        if !behind_the_head {
            return true;
        }
        let deadline = Instant::now() + timeout;
        loop {
            let would_push_out = |(w, at): (usize, &Option<u64>)| {
                w != worker
                    && at.is_some_and(|at| at + CACHED_CHUNKS <= index && at + PACE_REACH > index)
            };
            if self.shared(index, from).is_some() || !next.iter().enumerate().any(would_push_out) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            next = self
                .moved
                .wait_timeout(next, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// `worker` has stopped: no one waits for it any more.
    pub(crate) fn leave(&self, worker: usize) {
        let mut next = lock(&self.next_chunks);
        if let Some(at) = next.get_mut(worker) {
            *at = None;
        }
        self.forget_passed(&next);
        drop(next);
        self.moved.notify_all();
    }

    /// Drops the cached chunks every worker has read past (`next`: where each reads next).
    /// Live workers all read at the head, so the cache empties instead of holding the last
    /// 16 chunks, about 15 MB of decoded events under load, that no one will read again.
    fn forget_passed(&self, next: &[Option<u64>]) {
        let needed = next.iter().flatten().min().copied().unwrap_or(u64::MAX);
        let mut cache = lock(&self.cache);
        while cache
            .first_key_value()
            .is_some_and(|(index, _)| *index < needed)
        {
            cache.pop_first();
        }
    }

    /// The durable events from `from` on, to the end of its chunk; empty when `from` is not
    /// durable yet.
    pub(crate) fn read(&self, from: Position) -> Result<Slice, ReadError> {
        let index = chunk_index(from);
        if let Some(slice) = self.shared(index, from) {
            return Ok(slice);
        }
        let _reading = lock(&self.reading);
        if let Some(slice) = self.shared(index, from) {
            return Ok(slice);
        }
        let first = index * CHUNK_LEN + 1;
        let last = first + CHUNK_LEN - 1;
        let tail_index = lock(&self.tail).index;
        let complete = self.log.head().is_some_and(|h| h.position.get() >= last);
        if complete && index != tail_index {
            // A whole chunk behind the head (a rebuild, or a worker far behind): read it whole.
            let chunk =
                self.read_events(Position::new(first).unwrap_or(Position::FIRST), CHUNK_LEN)?;
            let chunk: Arc<[Arc<Event>]> = chunk.into();
            self.keep(index, chunk.clone());
            return Ok(slice_from(chunk, from));
        }
        // The chunk the tail holds (or a new tail): read what follows its events.
        let have = {
            let mut tail = lock(&self.tail);
            if tail.index != index {
                *tail = Tail {
                    index,
                    events: Vec::new(),
                };
            }
            tail.events.len() as u64
        };
        let next = Position::new(first + have).unwrap_or(Position::FIRST);
        let new = self.read_events(next, CHUNK_LEN - have)?;
        let mut tail = lock(&self.tail);
        tail.events.extend(new);
        if tail.events.len() as u64 >= CHUNK_LEN {
            // The tail is complete: it becomes a cached chunk, and the next chunk the tail.
            let chunk: Arc<[Arc<Event>]> = std::mem::take(&mut tail.events).into();
            tail.index = index + 1;
            drop(tail);
            self.keep(index, chunk.clone());
            return Ok(slice_from(chunk, from));
        }
        // Only what the caller asked for (positions are dense: the log has no gaps).
        let offset = usize::try_from(from.get() - first)
            .unwrap_or(usize::MAX)
            .min(tail.events.len());
        Ok(Slice {
            events: tail.events[offset..].to_vec().into(),
            start: 0,
        })
    }

    fn read_events(&self, from: Position, max: u64) -> Result<Vec<Arc<Event>>, ReadError> {
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        Ok(self
            .log
            .read_all(from, max)?
            .into_iter()
            .map(|record| Arc::new(Event::new(record)))
            .collect())
    }

    fn keep(&self, index: u64, chunk: Arc<[Arc<Event>]>) {
        let mut cache = lock(&self.cache);
        cache.insert(index, chunk);
        while cache.len() as u64 > CACHED_CHUNKS {
            cache.pop_first();
        }
    }

    /// The events from `from` on that some worker has read already, if any.
    fn shared(&self, index: u64, from: Position) -> Option<Slice> {
        if let Some(chunk) = lock(&self.cache).get(&index).cloned() {
            return Some(slice_from(chunk, from));
        }
        let tail = lock(&self.tail);
        let offset = usize::try_from(from.get() - (index * CHUNK_LEN + 1)).ok()?;
        (tail.index == index && offset < tail.events.len()).then(|| Slice {
            events: tail.events[offset..].to_vec().into(),
            start: 0,
        })
    }

    /// Sleeps until the event at `position` is durable or `timeout` passes.
    pub(crate) fn wait_for(&self, position: Position, timeout: Duration) {
        self.log.wait_for(position, timeout);
    }
}

/// The index of the chunk that holds `position`.
fn chunk_index(position: Position) -> u64 {
    (position.get() - 1) / CHUNK_LEN
}

/// The part of `chunk` from `from` on (found by position, so a chunk is read right even if
/// positions had gaps).
fn slice_from(chunk: Arc<[Arc<Event>]>, from: Position) -> Slice {
    let start = chunk.partition_point(|e| e.position < from);
    Slice {
        events: chunk,
        start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use civicflow_core::{
        Actor, AppendRequest, CorrelationId, EventType, ExpectedVersion, NewEvent, SledLog,
        StreamId, Timestamp,
    };

    fn log_of(dir: &std::path::Path, events: u64) -> SledLog {
        let log = SledLog::open(dir).expect("log");
        for _ in 0..events / 512 {
            let request = AppendRequest::to_stream(
                StreamId::new("case-a").expect("valid"),
                ExpectedVersion::Any,
                (0..512)
                    .map(|_| NewEvent::new(EventType::new("Noted").expect("valid"), 1, vec![1]))
                    .collect(),
                Actor::parse("a", "r", "u").expect("valid"),
                CorrelationId::new_v7(Timestamp::EPOCH),
            );
            log.append(request).expect("append").expect("any");
        }
        log
    }

    /// Reads everything from `from` on as `worker` does, returning where it stops.
    fn read_through(feed: &Feed, worker: usize, mut from: Position, chunks: u64) -> Position {
        for _ in 0..chunks {
            assert!(
                feed.pace(worker, from, Duration::ZERO),
                "no one to wait for"
            );
            let slice = feed.read(from).expect("read");
            from = slice
                .events()
                .last()
                .expect("a whole chunk")
                .position
                .next();
        }
        assert!(feed.pace(worker, from, Duration::ZERO));
        from
    }

    fn cached(feed: &Feed) -> Vec<u64> {
        lock(&feed.cache).keys().copied().collect()
    }

    /// Guards against the cache holding chunks no worker will read again (the service's
    /// workers all read at the head), and against it dropping one a worker still needs.
    #[test]
    fn the_cache_keeps_only_chunks_a_worker_has_yet_to_read() {
        let dir = std::env::temp_dir().join(format!("civicflow-feed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let log = log_of(&dir, 5 * CHUNK_LEN);
        let feed = Feed::new(Arc::new(log), &[Position::FIRST, Position::FIRST]);
        read_through(&feed, 0, Position::FIRST, 5);
        assert_eq!(
            cached(&feed),
            vec![0, 1, 2, 3, 4],
            "worker 1 has read none yet"
        );
        let at = read_through(&feed, 1, Position::FIRST, 2);
        assert_eq!(
            cached(&feed),
            vec![2, 3, 4],
            "both have read chunks 0 and 1"
        );
        read_through(&feed, 1, at, 3);
        assert_eq!(cached(&feed), Vec::<u64>::new(), "both are at the head");
        // A worker behind that stops no longer keeps chunks for itself.
        let feed = Feed::new(feed.log.clone(), &[Position::FIRST, Position::FIRST]);
        read_through(&feed, 0, Position::FIRST, 5);
        assert_eq!(cached(&feed).len(), 5);
        feed.leave(1);
        assert_eq!(cached(&feed), Vec::<u64>::new());
        drop(feed);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
