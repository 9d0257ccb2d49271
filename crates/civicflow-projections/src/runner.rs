//! The runner: one worker per projection, from its checkpoint to the head of the log and then
//! live.
//!
//! - A worker reads the log from its projection's checkpoint, applies a batch of events to a
//!   transaction, and commits the rows with the batch's last position as the new checkpoint,
//!   atomically. After a crash it starts again from the checkpoint: no event's effect is lost
//!   or repeated.
//! - It follows the log through a subscription, which only ever sees durable events in order,
//!   so no event committed later can be skipped.
//! - A projection whose stored active version differs from its code's version is rebuilt into a
//!   new namespace while the old one keeps answering reads; when the rebuild has caught up with
//!   the log, the name switches to the new version in one write and the old rows are cleared.
//! - If applying an event fails, the worker commits the events before it, stops at it, and
//!   reports the position and the error; the other workers go on.
//! - Readers can wait until a projection is at least as fresh as a position, so a client that
//!   has just written sees its own write.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use civicflow_core::engine::Engine;
use civicflow_core::readmodel::{Namespace, ReadModelStore};
use civicflow_core::{EventStore, Position, ReadError};

use crate::feed::Feed;

/// How long a worker waits before reading a shared store's log again after a storage error.
const SHARED_READ_RETRY: Duration = Duration::from_millis(500);
use crate::table::{ProjectionError, Tx, View};
use crate::Event;

/// A read model: folds log events into rows of its own tables.
pub trait Projection: Send + Sync + 'static {
    /// Its name (`a-z 0-9 _ -`), stable across versions.
    fn name(&self) -> &'static str;

    /// Its version. Changing it rebuilds the projection from the start of the log on the next
    /// start, while the old version keeps answering reads.
    fn version(&self) -> u32;

    /// Applies one event. Events come in log order, each exactly once per version.
    ///
    /// # Errors
    /// [`ProjectionError`] stops the projection at this event (nothing of it is kept).
    fn apply(&self, event: &Event, tx: &mut Tx<'_>) -> Result<(), ProjectionError>;
}

/// What a projection's worker is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Not started yet.
    Starting,
    /// Building a new version from the start of the log; `serving` is the version that
    /// answers reads meanwhile (`None`: the first build).
    Rebuilding {
        /// The version answering reads.
        serving: Option<u32>,
    },
    /// Caught up, following the log.
    Live,
    /// Stopped at an event it could not apply.
    Failed {
        /// The event's position.
        position: Position,
        /// The error.
        error: String,
    },
    /// Stopped by the runner.
    Stopped,
}

/// A projection's state, for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The name.
    pub name: &'static str,
    /// The version the code runs.
    pub version: u32,
    /// The last position applied by the running version.
    pub checkpoint: Option<Position>,
    /// What the worker is doing.
    pub phase: Phase,
}

/// Why a reader could not get a fresh enough view.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FreshnessError {
    /// No projection of that name runs.
    #[error("no projection named {0}")]
    Unknown(String),
    /// The projection stopped at an event it could not apply.
    #[error("projection {name} stopped at position {position}: {error}")]
    Failed {
        /// The projection.
        name: String,
        /// Where it stopped.
        position: Position,
        /// Why.
        error: String,
    },
    /// It did not reach the position in time.
    #[error("projection {name} is at {reached:?}, not yet at {wanted} (waited {waited_ms} ms)")]
    Timeout {
        /// The projection.
        name: String,
        /// The position asked for.
        wanted: Position,
        /// The position it is at.
        reached: Option<Position>,
        /// How long it waited.
        waited_ms: u128,
    },
    /// The store failed.
    #[error("read-model store: {0}")]
    Store(String),
}

/// How the runner works.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// The most events one commit carries.
    pub batch_events_max: usize,
    /// The most rows a projection keeps decoded in memory: past it, it commits and forgets
    /// them (they are read back from the store when needed again).
    pub rows_in_memory_max: usize,
    /// While catching up, the longest a projection goes without committing (live, it commits
    /// each time it reaches the head).
    pub commit_interval: Duration,
    /// Live, the least time between two commits: a lone event is committed at once, a burst
    /// is gathered into commits this far apart (readers waiting for a position wait at most
    /// this much longer).
    pub live_commit_interval: Duration,
    /// How long a live worker waits for new events before looking at its stop flag again.
    pub idle_wait: Duration,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            batch_events_max: 65_536,
            rows_in_memory_max: 50_000,
            commit_interval: Duration::from_secs(1),
            live_commit_interval: Duration::from_millis(20),
            idle_wait: Duration::from_millis(200),
        }
    }
}

struct Slot {
    projection: Box<dyn Projection>,
    progress: Mutex<Progress>,
    changed: Condvar,
}

#[derive(Debug, Clone)]
struct Progress {
    checkpoint: Option<Position>,
    phase: Phase,
    /// The namespace that answers reads.
    serving: Option<Namespace>,
    /// Cloned into every view of `serving`: while a clone lives, a retired version is kept.
    lease: Arc<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Shared {
    log: Arc<dyn EventStore>,
    /// The log as the workers read it, chunks shared between them.
    feed: Feed,
    store: Arc<dyn ReadModelStore>,
    slots: Vec<Arc<Slot>>,
    stop: AtomicBool,
    options: RunnerOptions,
}

/// Runs projections; dropping it stops them.
pub struct Runner {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("projections", &self.status())
            .finish()
    }
}

impl Runner {
    /// Runs every read model of [`models::all`](crate::models::all) on `store`, following
    /// `engine`'s log with `engine`'s workflow definitions and its calendar's time zone: the
    /// one call that runs the read models beside an engine. Each resumes from its checkpoint (or builds from the first
    /// event) and then follows the log live.
    ///
    /// # Errors
    /// As [`Runner::start`].
    pub fn beside(
        engine: &Engine,
        store: Arc<dyn ReadModelStore>,
        options: RunnerOptions,
    ) -> Result<Self, ProjectionError> {
        Self::start(
            engine.log().clone(),
            store,
            crate::models::all(
                engine.shared_definitions().clone(),
                engine.calendar().zone().clone(),
            ),
            options,
        )
    }

    /// Starts one worker per projection.
    ///
    /// # Errors
    /// [`ProjectionError`] when a name is invalid, two projections share a name, or the store
    /// cannot be read.
    pub fn start(
        log: Arc<dyn EventStore>,
        store: Arc<dyn ReadModelStore>,
        projections: Vec<Box<dyn Projection>>,
        options: RunnerOptions,
    ) -> Result<Self, ProjectionError> {
        let mut slots = Vec::new();
        for projection in projections {
            if slots
                .iter()
                .any(|s: &Arc<Slot>| s.projection.name() == projection.name())
            {
                return Err(ProjectionError::event(format!(
                    "two projections are named {}",
                    projection.name()
                )));
            }
            let ns = Namespace::new(projection.name(), projection.version())?;
            let active = store.active(projection.name())?;
            let serving = match active {
                Some(version) => Some(Namespace::new(projection.name(), version)?),
                None => None,
            };
            let checkpoint = store.checkpoint(&ns)?;
            slots.push(Arc::new(Slot {
                projection,
                progress: Mutex::new(Progress {
                    checkpoint,
                    phase: Phase::Starting,
                    serving,
                    lease: Arc::new(()),
                }),
                changed: Condvar::new(),
            }));
        }
        let firsts: Vec<Position> = slots
            .iter()
            .map(|slot| {
                // The checkpoint of the version the code runs (none yet for a new one).
                lock(&slot.progress)
                    .checkpoint
                    .map_or(Position::FIRST, Position::next)
            })
            .collect();
        let shared = Arc::new(Shared {
            feed: Feed::new(log.clone(), &firsts),
            log,
            store,
            slots,
            stop: AtomicBool::new(false),
            options,
        });
        let mut workers = Vec::new();
        for (i, slot) in shared.slots.iter().enumerate() {
            let shared_for_worker = shared.clone();
            let name = format!("civicflow-projection-{}", slot.projection.name());
            let handle = std::thread::Builder::new()
                .name(name)
                .spawn(move || run_worker(&shared_for_worker, i))
                .map_err(|e| {
                    ProjectionError::event(format!("cannot start a worker thread: {e}"))
                })?;
            workers.push(handle);
        }
        Ok(Self { shared, workers })
    }

    /// Every projection's state.
    pub fn status(&self) -> Vec<Status> {
        self.shared
            .slots
            .iter()
            .map(|slot| {
                let progress = lock(&slot.progress).clone();
                Status {
                    name: slot.projection.name(),
                    version: slot.projection.version(),
                    checkpoint: progress.checkpoint,
                    phase: progress.phase,
                }
            })
            .collect()
    }

    fn slot(&self, name: &str) -> Result<&Arc<Slot>, FreshnessError> {
        self.shared
            .slots
            .iter()
            .find(|s| s.projection.name() == name)
            .ok_or_else(|| FreshnessError::Unknown(name.to_owned()))
    }

    /// Waits until the projection `name` has applied every event up to `position` (and
    /// answers reads with the version that did), for at most `timeout`.
    ///
    /// # Errors
    /// [`FreshnessError`] when it failed, is unknown, or did not get there in time.
    pub fn wait_for(
        &self,
        name: &str,
        position: Position,
        timeout: Duration,
    ) -> Result<(), FreshnessError> {
        let slot = self.slot(name)?;
        let started = Instant::now();
        let mut progress = lock(&slot.progress);
        loop {
            let serving_is_current = progress
                .serving
                .as_ref()
                .is_some_and(|ns| ns.version() == slot.projection.version());
            if serving_is_current && progress.checkpoint.is_some_and(|c| c >= position) {
                return Ok(());
            }
            if let Phase::Failed {
                position: at,
                error,
            } = &progress.phase
            {
                return Err(FreshnessError::Failed {
                    name: name.to_owned(),
                    position: *at,
                    error: error.clone(),
                });
            }
            let waited = started.elapsed();
            if waited >= timeout {
                return Err(FreshnessError::Timeout {
                    name: name.to_owned(),
                    wanted: position,
                    reached: progress.checkpoint,
                    waited_ms: waited.as_millis(),
                });
            }
            progress = slot
                .changed
                .wait_timeout(progress, timeout - waited)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The rows of projection `name` that answer reads now: the active version, or during the
    /// very first build the rows built so far.
    ///
    /// # Errors
    /// [`FreshnessError::Unknown`] for an unknown name, [`FreshnessError::Store`] when the
    /// store fails.
    pub fn view(&self, name: &str) -> Result<View<'_>, FreshnessError> {
        let slot = self.slot(name)?;
        let (serving, lease) = {
            let progress = lock(&slot.progress);
            (progress.serving.clone(), progress.lease.clone())
        };
        let ns = match serving {
            Some(ns) => ns,
            None => Namespace::new(slot.projection.name(), slot.projection.version())
                .map_err(|e| FreshnessError::Store(e.to_string()))?,
        };
        View::of(&*self.shared.store, ns)
            .map(|view| view.leased(lease))
            .map_err(|e| FreshnessError::Store(e.to_string()))
    }

    /// [`Runner::wait_for`] `position`, then [`Runner::view`]: a view that includes every
    /// event up to `position`.
    ///
    /// # Errors
    /// As [`Runner::wait_for`] and [`Runner::view`].
    pub fn view_at_least(
        &self,
        name: &str,
        position: Position,
        timeout: Duration,
    ) -> Result<View<'_>, FreshnessError> {
        self.wait_for(name, position, timeout)?;
        self.view(name)
    }

    /// Waits until every projection is live (or failed) and at the log's head as it is now.
    ///
    /// # Errors
    /// The first [`FreshnessError`] met.
    pub fn wait_until_caught_up(&self, timeout: Duration) -> Result<(), FreshnessError> {
        let Some(head) = self.shared.log.head() else {
            return Ok(());
        };
        for slot in &self.shared.slots {
            self.wait_for(slot.projection.name(), head.position, timeout)?;
        }
        Ok(())
    }

    /// Stops the workers (they finish the batch they are on) and flushes the store.
    pub fn stop(mut self) {
        self.stop_workers();
    }

    fn stop_workers(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
        let _ = self.shared.store.flush();
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

fn set_phase(slot: &Slot, phase: Phase) {
    lock(&slot.progress).phase = phase;
    slot.changed.notify_all();
}

fn run_worker(shared: &Shared, index: usize) {
    let slot = &shared.slots[index];
    // However the worker ends, no other worker waits for it to keep pace.
    let _leave = LeaveFeed {
        feed: &shared.feed,
        worker: index,
    };
    // A panic (a projection's bug, or the storage engine's own: sled 0.34 has panicked inside
    // a reverse scan) must not leave the projection looking alive and never catching up: it
    // stops like a failed event, where readers and `/readyz` see it.
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(shared, index, slot)));
    let (position, error) = match outcome {
        Ok(Ok(())) => return set_phase(slot, Phase::Stopped),
        Ok(Err(WorkError::Apply { position, error })) => (Some(position), error.to_string()),
        Ok(Err(other)) => (None, other.to_string()),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            // sled's messages can dump whole tree nodes: the first line says what happened.
            let first = message.lines().next().unwrap_or_default();
            (None, format!("the worker panicked: {first}"))
        }
    };
    let position = position.unwrap_or_else(|| {
        lock(&slot.progress)
            .checkpoint
            .map_or(Position::FIRST, Position::next)
    });
    set_phase(slot, Phase::Failed { position, error });
}

#[derive(Debug, thiserror::Error)]
enum WorkError {
    #[error("event at position {position}: {error}")]
    Apply {
        position: Position,
        error: ProjectionError,
    },
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Leaves the feed when dropped.
struct LeaveFeed<'a> {
    feed: &'a Feed,
    worker: usize,
}

impl Drop for LeaveFeed<'_> {
    fn drop(&mut self) {
        self.feed.leave(self.worker);
    }
}

fn work(shared: &Shared, worker: usize, slot: &Slot) -> Result<(), WorkError> {
    let projection = slot.projection.as_ref();
    let options = &shared.options;
    let ns =
        Namespace::new(projection.name(), projection.version()).map_err(ProjectionError::from)?;
    let serving = lock(&slot.progress).serving.clone();
    clear_leftovers(shared, &ns, serving.as_ref())?;
    let rebuilding = serving.as_ref().is_none_or(|active| active != &ns);
    if rebuilding {
        set_phase(
            slot,
            Phase::Rebuilding {
                serving: serving.as_ref().map(Namespace::version),
            },
        );
    }
    let mut committed = shared
        .store
        .checkpoint(&ns)
        .map_err(ProjectionError::from)?;
    // One transaction for the worker's life: its rows stay in memory between commits.
    let mut tx = Tx::new(&*shared.store, &ns, committed.is_none());
    let mut applied = committed;
    let mut pending = 0usize;
    let mut last_commit = Instant::now();
    let commit = |tx: &mut Tx<'_>, at: Option<Position>| -> Result<(), WorkError> {
        let Some(at) = at else { return Ok(()) };
        tx.commit(at)?;
        tx.trim(options.rows_in_memory_max);
        lock(&slot.progress).checkpoint = Some(at);
        slot.changed.notify_all();
        Ok(())
    };
    let mut live = !rebuilding;
    if live {
        set_phase(slot, Phase::Live);
    }
    // The version replaced by a finished rebuild, with its lease: cleared once no view of it
    // is left (or, if the runner stops first, at the next start).
    let mut retiring: Option<(Namespace, Arc<()>)> = None;
    while !shared.stop.load(Ordering::Acquire) {
        if retiring
            .as_ref()
            .is_some_and(|(_, lease)| Arc::strong_count(lease) == 1)
        {
            if let Some((old, _)) = retiring.take() {
                shared.store.clear(&old).map_err(ProjectionError::from)?;
            }
        }
        let from = applied.map_or(Position::FIRST, Position::next);
        if !shared.feed.pace(worker, from, options.idle_wait) {
            // Still waiting for a worker close behind: look at the stop flag, then again.
            continue;
        }
        let slice = match shared.feed.read(from) {
            Ok(slice) => slice,
            Err(ReadError::Closed) => break,
            // A shared store's database unreachable for a while: the log is still whole,
            // so wait and read again (an embedded store's storage error is final).
            Err(ReadError::Storage(reason)) if shared.log.is_shared() => {
                tracing::warn!(
                    read_model = %ns.name(),
                    %reason,
                    "the shared log cannot be read; trying again"
                );
                std::thread::sleep(SHARED_READ_RETRY);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for event in slice.events() {
            if let Err(error) = projection.apply(event, &mut tx) {
                drop(tx);
                let kept = recover(shared, projection, &ns, committed, event.position)?;
                if kept != committed {
                    lock(&slot.progress).checkpoint = kept;
                    slot.changed.notify_all();
                }
                return Err(WorkError::Apply {
                    position: event.position,
                    error,
                });
            }
            applied = Some(event.position);
            pending += 1;
            if pending >= options.batch_events_max {
                commit(&mut tx, applied)?;
                (committed, pending, last_commit) = (applied, 0, Instant::now());
            }
        }
        let at_head = slice.events().is_empty() || applied >= shared.log.head().map(|h| h.position);
        // Live: commit at once when the last commit is older than `live_commit_interval`
        // (a lone event is visible immediately), otherwise gather what comes until then (a
        // burst is written in a few commits, not one per event). Catching up: commit in big
        // batches (fewer, larger writes; a row changed by many events is written once),
        // bounded in memory and in time.
        let due = if live {
            last_commit.elapsed() >= options.live_commit_interval
        } else {
            at_head
                || tx.rows_in_memory() > options.rows_in_memory_max
                || last_commit.elapsed() >= options.commit_interval
        };
        if pending > 0 && due {
            commit(&mut tx, applied)?;
            (committed, pending, last_commit) = (applied, 0, Instant::now());
        }
        if !live && at_head {
            // Switch: durably first, then for readers; the old version stays whole for the
            // views still reading it.
            shared.store.activate(&ns).map_err(ProjectionError::from)?;
            let mut progress = lock(&slot.progress);
            let old = progress.serving.replace(ns.clone());
            let old_lease = std::mem::replace(&mut progress.lease, Arc::new(()));
            progress.phase = Phase::Live;
            drop(progress);
            retiring = old.filter(|old| old != &ns).map(|old| (old, old_lease));
            slot.changed.notify_all();
            live = true;
        }
        if slice.events().is_empty() {
            // With events waiting to be committed, wake up in time to commit them.
            let wait = if pending > 0 {
                options
                    .live_commit_interval
                    .saturating_sub(last_commit.elapsed())
                    .max(Duration::from_millis(1))
            } else {
                options.idle_wait
            };
            shared.feed.wait_for(from, wait);
        }
    }
    // Stopping: keep what was applied.
    if pending > 0 {
        commit(&mut tx, applied)?;
    }
    Ok(())
}

/// After `failed` could not be applied: applies the events between the committed checkpoint
/// and it again in a fresh transaction and commits them, so that the projection stops right
/// before the failed event. Returns the checkpoint now committed.
fn recover(
    shared: &Shared,
    projection: &dyn Projection,
    ns: &Namespace,
    committed: Option<Position>,
    failed: Position,
) -> Result<Option<Position>, WorkError> {
    let mut tx = Tx::new(&*shared.store, ns, committed.is_none());
    let mut at = committed;
    'read: loop {
        let from = at.map_or(Position::FIRST, Position::next);
        if from >= failed {
            break;
        }
        let slice = shared.feed.read(from)?;
        if slice.events().is_empty() {
            break;
        }
        for event in slice.events() {
            if event.position >= failed {
                break 'read;
            }
            projection
                .apply(event, &mut tx)
                .map_err(|error| WorkError::Apply {
                    position: event.position,
                    error,
                })?;
            at = Some(event.position);
        }
    }
    if let Some(position) = at.filter(|_| at != committed) {
        tx.commit(position)?;
    }
    Ok(at)
}

/// Clears what earlier runs left of this projection: a version replaced by a rebuild whose
/// views outlived the runner, or a half-built version no longer wanted. Keeps the version that
/// answers reads and the one this runner builds.
fn clear_leftovers(
    shared: &Shared,
    ns: &Namespace,
    serving: Option<&Namespace>,
) -> Result<(), ProjectionError> {
    for other in shared.store.namespaces()? {
        if other.name() == ns.name() && &other != ns && Some(&other) != serving {
            shared.store.clear(&other)?;
        }
    }
    Ok(())
}
