//! [`SledLog`]: the event log on sled, the embedded implementation of [`EventStore`].
//!
//! - `keys.rs`: the key layout of the log's one sled tree.
//! - `writer.rs`: group commit: the queue, the leader, the durable commit of a group.
//! - `index.rs`: the stream index: a memtable of the newest versions over sled entries.
//! - `read.rs`: reading chunks, records and hashes, never past the durable head.
//! - `seal.rs`, `segments.rs`, `filter.rs`: sealed history (decision 0013): the oldest part
//!   of the tail moved into a few large values, so that sled's memory does not grow with it.
//! - `verify.rs`: recomputing the hash chain.
//! - `readers.rs`: the small thread pool that serves async reads.
//! - `restore.rs`: the exact stored records out (export) and back into an empty log.
//! - `closed_head.rs`: the head a clean close leaves beside sled's files, checked on open.
//!
//! The format and the guarantees are in `docs/design.md`.

mod closed_head;
mod filter;
mod index;
mod keys;
mod read;
mod readers;
mod restore;
mod seal;
mod segments;
mod verify;
mod writer;

use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;

use crate::chain::{ChainHead, VerifyReport};
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::error::{CloseError, OpenError, ReadError, RestoreError};
use crate::event::{AppendRequest, RecordedEvent};
use crate::ids::{IdempotencyKey, Position, StreamId, Version};
use crate::store::{
    AppendResult, CommitSignal, Completion, Durability, EventStore, IdempotencyRecord, LogStats,
    RestoreSink, StoredIdempotency, StoredRecord,
};

use index::Memtable;
use readers::ReaderPool;
use seal::Sealer;
use segments::SegmentTable;
use writer::{Queue, Writer};

/// sled segment size for new stores. sled writes any value bigger than a quarter of a
/// segment to a separate blob file that it never fsyncs; with 8 MiB segments that threshold
/// is 2 MiB, far above our largest node (chunks are at most 64 KiB of records).
const SEGMENT_BYTES: usize = 8 * 1024 * 1024;

/// Faults to inject on purpose, to prove that the crash and poisoning tests catch them.
/// Only with the `fault-injection` feature; never in a real build.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultInjection {
    /// Answer appends after writing to sled's memory, without flushing (sled writes its
    /// buffer out only when it fills): a crash then loses acknowledged events.
    pub ack_before_flush: bool,
    /// Fail every sync after this many have succeeded.
    pub fail_sync_after: Option<u64>,
    /// Stop every seal after it is published, before the tail's copies are removed: the
    /// state a crash inside a seal leaves, for opening to finish (decision 0013).
    pub seal_stops_before_removal: bool,
}

#[cfg(feature = "fault-injection")]
impl FaultInjection {
    /// Set in a process's environment (to `1`), makes every log it opens acknowledge before
    /// flushing: how the service crash test proves, against the real `civicflow` binary (built
    /// with this feature only by `cargo test`), that it catches acknowledged writes lost.
    pub const ACK_BEFORE_FLUSH_ENV: &'static str = "CIVICFLOW_FAULT_ACK_BEFORE_FLUSH";

    /// The faults the environment asks for (none unless [`Self::ACK_BEFORE_FLUSH_ENV`] is `1`).
    pub fn from_env() -> Self {
        Self {
            ack_before_flush: std::env::var(Self::ACK_BEFORE_FLUSH_ENV).is_ok_and(|v| v == "1"),
            fail_sync_after: None,
            seal_stops_before_removal: false,
        }
    }
}

#[derive(Debug, Default)]
struct StatsCounters {
    commit_groups: AtomicU64,
    appends: AtomicU64,
    events: AtomicU64,
    largest_group: AtomicU64,
}

impl StatsCounters {
    fn record_group(&self, appends: u64, events: u64) {
        self.commit_groups.fetch_add(1, Ordering::Relaxed);
        self.appends.fetch_add(appends, Ordering::Relaxed);
        self.events.fetch_add(events, Ordering::Relaxed);
        self.largest_group.fetch_max(appends, Ordering::Relaxed);
    }

    fn snapshot(&self) -> LogStats {
        LogStats::new(
            self.commit_groups.load(Ordering::Relaxed),
            self.appends.load(Ordering::Relaxed),
            self.events.load(Ordering::Relaxed),
            self.largest_group.load(Ordering::Relaxed),
        )
    }
}

/// How to open an [`SledLog`].
#[derive(Debug, Clone)]
pub struct SledLogConfig {
    /// The store's directory (created if missing).
    pub path: PathBuf,
    /// Where `recorded_at` comes from.
    pub clock: Arc<dyn Clock>,
    /// How durable an acknowledgement is.
    pub durability: Durability,
    /// sled's page cache size in bytes.
    pub cache_capacity_bytes: u64,
    /// Write the stream index's memtable to disk when it holds this many events. Larger
    /// means fewer index writes and a longer replay when opening after a crash.
    pub index_flush_events: usize,
    /// Threads that serve async reads.
    pub reader_threads: usize,
    /// Seal the oldest part of the log once this many events lie past the last seal
    /// (decision 0013); 0 never seals. Stores written before sealing are never sealed.
    pub seal_events: u64,
    /// How many streams a restore's check keeps in memory; the others it looks up in what
    /// the restore has written (`RestoreCheck`).
    pub restore_streams_in_memory: usize,
    /// Faults to inject (tests only).
    #[cfg(feature = "fault-injection")]
    pub faults: FaultInjection,
}

impl SledLogConfig {
    /// The defaults for a store at `path`: system clock, fsync, 256 MiB cache.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            clock: Arc::new(SystemClock),
            durability: Durability::Fsync,
            cache_capacity_bytes: 256 * 1024 * 1024,
            index_flush_events: 4096,
            reader_threads: 2,
            seal_events: 65_536,
            restore_streams_in_memory: crate::store::backend::RESTORE_STREAMS_IN_MEMORY,
            #[cfg(feature = "fault-injection")]
            faults: FaultInjection::from_env(),
        }
    }

    /// Sets how many events past the last seal start the next one (0: never seal).
    pub fn seal_after_events(mut self, events: u64) -> Self {
        self.seal_events = events;
        self
    }

    /// Sets how many streams a restore keeps in memory (tests make it small, so that the
    /// restore looks streams up in what it wrote).
    pub fn restore_streams_in_memory(mut self, streams: usize) -> Self {
        self.restore_streams_in_memory = streams.max(1);
        self
    }

    /// Uses `clock` for `recorded_at`.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the durability of acknowledgements.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets sled's page cache size (memory use grows with the store up to this bound).
    pub fn cache_capacity_bytes(mut self, bytes: u64) -> Self {
        self.cache_capacity_bytes = bytes;
        self
    }

    /// Sets when the stream index memtable is written out.
    pub fn index_flush_events(mut self, events: usize) -> Self {
        self.index_flush_events = events.max(1);
        self
    }

    /// Opens the log.
    ///
    /// # Errors
    /// See [`SledLog::open_with`].
    pub fn open(self) -> Result<SledLog, OpenError> {
        SledLog::open_with(self)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Our critical sections leave their data consistent even if a panic unwinds through
    // them (a panic inside sled is caught and poisons the log instead), so a poisoned mutex
    // is still safe to use.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn storage(error: sled::Error) -> ReadError {
    ReadError::Storage(super::support::describe(&error))
}

/// What every handle, the committer thread and the reader pool share.
pub(super) struct Shared {
    path: PathBuf,
    db: sled::Db,
    tree: sled::Tree,
    /// sled's data file, opened again to `fdatasync` it after sled's flush.
    data_file: File,
    clock: Arc<dyn Clock>,
    durability: Durability,
    index_flush_events: usize,
    #[cfg(feature = "fault-injection")]
    faults: FaultInjection,
    queue: Mutex<Queue>,
    committer_wake: Condvar,
    writer: Mutex<Writer>,
    memtable: RwLock<Memtable>,
    signal: CommitSignal,
    durable_head: Mutex<Option<ChainHead>>,
    poison: Mutex<Option<String>>,
    closed: AtomicBool,
    readers: ReaderPool,
    stats: StatsCounters,
    /// How many appends the last commit group carried (see `writer::gather`).
    last_group_appends: std::sync::atomic::AtomicUsize,
    /// Events past the last seal that start the next one; 0 for a store that never seals.
    seal_events: u64,
    /// See [`SledLogConfig::restore_streams_in_memory`].
    restore_streams_in_memory: usize,
    sealer: Sealer,
    /// Held by a seal: one at a time (the sealer thread, a restore).
    sealing: Mutex<()>,
    /// `M sealed-through`, as the readers' table reaches.
    sealed_through: AtomicU64,
    segments: RwLock<SegmentTable>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledLog")
            .field("path", &self.path)
            .field("head", &self.signal.head())
            .finish()
    }
}

/// The clones of an [`SledLog`] share one handle; when the last one goes, the log closes.
#[derive(Debug)]
struct Handle {
    /// `None` only while the handle is being dropped.
    shared: Option<Arc<Shared>>,
    committer: Mutex<Option<JoinHandle<()>>>,
    sealer: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // Errors cannot be returned from drop; `SledLog::close` reports them. Everything
        // acknowledged is durable already, so a failed final flush loses nothing.
        let _ = self.close();
        if let Some(shared) = self.shared.take() {
            let path = shared.path.clone();
            let last = Arc::strong_count(&shared) == 1;
            // sled's own drop flushes and unwraps an fsync; a failing disk must not turn
            // dropping the log into a panic.
            let _ = catch_unwind(AssertUnwindSafe(|| drop(shared)));
            if last {
                super::support::wait_until_released(&path);
            }
        }
    }
}

impl Handle {
    fn shared(&self) -> &Arc<Shared> {
        self.shared
            .as_ref()
            .expect("a handle holds the store until it is dropped")
    }

    fn close(&self) -> Result<(), CloseError> {
        let shared = self.shared();
        shared.begin_close();
        if let Some(committer) = lock(&self.committer).take() {
            let _ = committer.join();
        }
        // A seal under way is finished first: its batches are small, and it must not write
        // after the final flush.
        shared.sealer.stop();
        if let Some(sealer) = lock(&self.sealer).take() {
            let _ = sealer.join();
        }
        shared.readers.stop();
        shared.finish_close()
    }
}

/// The civicflow event log on sled.
///
/// Cheap to clone; clones share the store. Opening the same directory twice fails with
/// [`OpenError::Locked`].
///
/// ```
/// use civicflow_core::{Actor, AppendRequest, CorrelationId, EventStore, EventType,
///     ExpectedVersion, NewEvent, Position, SledLog, StreamId};
///
/// let dir = std::env::temp_dir().join(format!("civicflow-doc-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// let log = SledLog::open(&dir)?;
/// let stream = StreamId::new("case-1")?;
/// let actor = Actor::parse("worker-7", "grid_worker", "grid-1")?;
/// let event = NewEvent::new(EventType::new("CaseOpened")?, 1, b"payload".to_vec());
/// let request = AppendRequest::to_stream(stream.clone(), ExpectedVersion::NoStream,
///     vec![event], actor, CorrelationId::new_v7(civicflow_core::Timestamp::EPOCH));
///
/// let appended = log.append(request)?.expect("no conflict on a new stream");
/// assert_eq!(appended.first_position, Position::FIRST);
/// assert_eq!(log.read_all(Position::FIRST, 10)?.len(), 1);
/// assert!(log.verify()?.is_intact());
/// log.close()?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct SledLog {
    handle: Arc<Handle>,
}

impl SledLog {
    /// Opens (or creates) the log in `path` with the default [`SledLogConfig`].
    ///
    /// # Errors
    /// See [`SledLog::open_with`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with(SledLogConfig::new(path.as_ref()))
    }

    /// Opens (or creates) the log as `config` says.
    ///
    /// # Errors
    /// [`OpenError::Locked`] when the store is open elsewhere, [`OpenError::UnsupportedFormat`]
    /// for a directory that holds something else, [`OpenError::Corrupted`] when the newest
    /// records do not decode, [`OpenError::Storage`] when sled fails or panics on its files.
    pub fn open_with(config: SledLogConfig) -> Result<Self, OpenError> {
        let path = config.path.clone();
        let shared = Arc::new(Shared::open(config)?);
        let spawn = |name: &str, run: fn(&Shared)| {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || run(&shared))
                .map_err(|source| OpenError::Io {
                    path: path.clone(),
                    source,
                })
        };
        let committer = spawn("civicflow-committer", Shared::run_committer)?;
        let sealer = if shared.seal_events > 0 {
            Some(spawn("civicflow-sealer", Shared::run_sealer)?)
        } else {
            None
        };
        Ok(Self {
            handle: Arc::new(Handle {
                shared: Some(shared),
                committer: Mutex::new(Some(committer)),
                sealer: Mutex::new(sealer),
            }),
        })
    }

    fn shared(&self) -> &Arc<Shared> {
        self.handle.shared()
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.shared().path
    }

    /// Why the last seal failed, if it did (decision 0013). The log stays whole and correct;
    /// it only stops shrinking its history in sled until a later seal succeeds.
    pub fn seal_failure(&self) -> Option<String> {
        lock(&self.shared().sealer.state).failed.clone()
    }

    /// How many sealed segments the log holds.
    pub fn sealed_segments(&self) -> usize {
        self.shared().sealed().len()
    }

    /// Closes the log ([`EventStore::close`]) and gives up this handle: the files are
    /// released as soon as no other clone or subscription holds them.
    ///
    /// # Errors
    /// [`CloseError`] when the final flush fails (everything acknowledged was durable before).
    pub fn close(self) -> Result<(), CloseError> {
        self.handle.close()
    }
}

impl EventStore for SledLog {
    fn append(&self, request: AppendRequest) -> AppendResult {
        self.shared().append(request)
    }

    fn append_async(&self, request: AppendRequest) -> Completion<AppendResult> {
        Shared::append_async(self.shared(), request)
    }

    fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.shared().read_stream(stream, from, max)
    }

    fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, ReadError> {
        self.shared().read_all(from, max)
    }

    fn read_stream_async(
        &self,
        stream: StreamId,
        from: Version,
        max: usize,
    ) -> Completion<Result<Vec<RecordedEvent>, ReadError>> {
        let shared = self.shared().clone();
        self.shared()
            .readers
            .run(move || shared.read_stream(&stream, from, max))
    }

    fn read_all_async(
        &self,
        from: Position,
        max: usize,
    ) -> Completion<Result<Vec<RecordedEvent>, ReadError>> {
        let shared = self.shared().clone();
        self.shared()
            .readers
            .run(move || shared.read_all(from, max))
    }

    fn stream_version(&self, stream: &StreamId) -> Result<Option<Version>, ReadError> {
        self.shared().stream_version(stream)
    }

    /// An append still being made durable is not seen (its record is in sled's tree before
    /// its events can be read). An append with the same key made after this answers `None`
    /// is planned only once that one is durable, so it gets the original result or
    /// `IdempotencyKeyReused`.
    fn idempotency_record(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, ReadError> {
        let Some((fingerprint, appended)) = self.shared().stored_idempotency(key)? else {
            return Ok(None);
        };
        let durable = self
            .head()
            .is_some_and(|head| appended.last_position <= head.position);
        Ok(durable.then_some(IdempotencyRecord {
            fingerprint,
            appended,
        }))
    }

    fn head(&self) -> Option<ChainHead> {
        *lock(&self.shared().durable_head)
    }

    fn commit_signal(&self) -> &CommitSignal {
        &self.shared().signal
    }

    fn verify(&self) -> Result<VerifyReport, ReadError> {
        self.shared().verify()
    }

    fn verify_stream(&self, stream: &StreamId) -> Result<VerifyReport, ReadError> {
        self.shared().verify_stream(stream)
    }

    fn poisoned(&self) -> Option<String> {
        lock(&self.shared().poison).clone()
    }

    fn stats(&self) -> LogStats {
        let mut stats = self.shared().stats.snapshot();
        stats.sealed_segments = self.sealed_segments() as u64;
        stats
    }

    fn upkeep_failure(&self) -> Option<String> {
        self.seal_failure()
            .map(|reason| format!("sealing failed: {reason}"))
    }

    fn location(&self) -> String {
        self.path().display().to_string()
    }

    fn stored_records(&self, from: Position, max: usize) -> Result<Vec<StoredRecord>, ReadError> {
        restore::stored_records(self.shared(), from, max)
    }

    fn stored_idempotency_records(
        &self,
        after: Option<&IdempotencyKey>,
        max: usize,
    ) -> Result<Vec<StoredIdempotency>, ReadError> {
        restore::stored_idempotency_records(self.shared(), after, max)
    }

    fn begin_restore(&self) -> Result<Box<dyn RestoreSink + '_>, RestoreError> {
        Ok(Box::new(restore::Restore::begin(self.shared())?))
    }

    /// Closes the log for every clone. The files are released when the last clone (and
    /// subscription) is dropped.
    fn close(&self) -> Result<(), CloseError> {
        self.handle.close()
    }
}

impl Shared {
    fn open(config: SledLogConfig) -> Result<Self, OpenError> {
        let path = config.path.clone();
        let storage_error = |reason: String| OpenError::Storage {
            path: path.clone(),
            reason,
        };
        let io_error = |source: std::io::Error| OpenError::Io {
            path: path.clone(),
            source,
        };

        let existed = path.join("db").exists();
        crate::private_fs::create_dir_all(&path).map_err(io_error)?;
        let sled_config = sled::Config::new()
            .path(&path)
            .segment_size(SEGMENT_BYTES)
            .cache_capacity(config.cache_capacity_bytes)
            .flush_every_ms(None);
        let db = match super::support::open(&sled_config) {
            Ok(db) => db,
            Err(super::support::OpenFailure::Locked) => return Err(OpenError::Locked { path }),
            Err(super::support::OpenFailure::Failed(reason)) => return Err(storage_error(reason)),
        };
        let tree = db
            .open_tree("civicflow-log")
            .map_err(|e| storage_error(super::support::describe(&e)))?;
        let seals = check_or_write_format(&tree, &path)?;
        if !existed {
            // sled created files in the directory; make their directory entries durable.
            File::open(&path)
                .and_then(|dir| dir.sync_all())
                .map_err(io_error)?;
        }
        let data_file = std::fs::OpenOptions::new()
            .write(true)
            .open(path.join("db"))
            .map_err(io_error)?;

        let sealed = segments::load(&tree, &path).map_err(OpenError::Corrupted)?;
        let sealed_through = sealed.last().map_or(0, |segment| segment.last.get());
        let segments = RwLock::new(Arc::new(sealed));
        let stored = read::Stored {
            tree: &tree,
            segments: &segments,
        };
        let recovered = read::recover_head(stored)?;
        check_closed_head(stored, &path, recovered.head)?;
        let memtable = index::rebuild_memtable(stored, recovered.head.map(|h| h.position))?;
        let head_position = recovered.head.map_or(0, |h| h.position.get());
        let shared = Self {
            db,
            tree,
            data_file,
            clock: config.clock,
            durability: config.durability,
            index_flush_events: config.index_flush_events.max(1),
            #[cfg(feature = "fault-injection")]
            faults: config.faults,
            queue: Mutex::new(Queue::default()),
            committer_wake: Condvar::new(),
            writer: Mutex::new(Writer::new(
                recovered.head,
                recovered.last_recorded_at.unwrap_or(Timestamp::EPOCH),
            )),
            memtable: RwLock::new(memtable),
            signal: CommitSignal::new(head_position),
            durable_head: Mutex::new(recovered.head),
            poison: Mutex::new(None),
            closed: AtomicBool::new(false),
            readers: ReaderPool::new(config.reader_threads),
            stats: StatsCounters::default(),
            last_group_appends: std::sync::atomic::AtomicUsize::new(0),
            seal_events: if seals { config.seal_events } else { 0 },
            restore_streams_in_memory: config.restore_streams_in_memory,
            sealer: Sealer::default(),
            sealing: Mutex::new(()),
            sealed_through: AtomicU64::new(sealed_through),
            segments,
            path,
        };
        // A crash inside a seal's removal: finished now (`seal.rs`).
        shared.finish_pending_seal().map_err(OpenError::Corrupted)?;
        Ok(shared)
    }

    /// After a failed restore: no segment is left.
    fn forget_segments(&self) {
        *self
            .segments
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::default();
        self.sealed_through.store(0, Ordering::Release);
    }

    fn ensure_open(&self) -> Result<(), ReadError> {
        if self.closed.load(Ordering::Acquire) {
            Err(ReadError::Closed)
        } else {
            Ok(())
        }
    }

    fn stream_version(&self, stream: &StreamId) -> Result<Option<Version>, ReadError> {
        self.ensure_open()?;
        Ok(self
            .stream_last(stream, self.signal.head())?
            .map(|(version, _)| version))
    }

    /// Final step of closing, after the committer has stopped: write the stream index out,
    /// flush, sync.
    fn finish_close(&self) -> Result<(), CloseError> {
        let mut writer = lock(&self.writer);
        if writer.closed {
            return Ok(());
        }
        writer.closed = true;
        if lock(&self.poison).is_some() {
            // Nothing more may be written after a failed flush.
            return Ok(());
        }
        let fail = |reason: String| CloseError { reason };
        let mut batch = WriteSet::default();
        {
            let mut memtable = self
                .memtable
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if memtable.events() > 0 {
                memtable.write_to(&mut batch, writer.head.map(|h| h.position));
                batch.apply(&self.tree).map_err(|e| fail(e.to_string()))?;
                memtable.clear();
            }
        }
        self.db.flush().map_err(|e| fail(e.to_string()))?;
        self.data_file
            .sync_data()
            .map_err(|e| fail(e.to_string()))?;
        // Only after the sync: the file must never claim a head the disk does not hold.
        if let Some(head) = writer.head {
            closed_head::write(&self.path, head).map_err(fail)?;
        }
        Ok(())
    }
}

/// Refuses a log that no longer reaches the head its last clean close recorded, or holds
/// another event there (see `closed_head.rs`).
fn check_closed_head(
    stored: read::Stored<'_>,
    path: &Path,
    recovered: Option<ChainHead>,
) -> Result<(), OpenError> {
    let Some(closed) = closed_head::read(path)? else {
        return Ok(());
    };
    let describe = |head: ChainHead| format!("position {} hash {}", head.position, head.hash);
    let lost = |found: String| OpenError::ClosedHeadLost {
        path: path.to_owned(),
        closed: describe(closed),
        found,
    };
    let Some(recovered) = recovered.filter(|head| head.position >= closed.position) else {
        return Err(lost(match recovered {
            Some(head) => format!("only up to {}", describe(head)),
            None => "no events at all".into(),
        }));
    };
    let stored = read::ChunkCursor::default()
        .entry(stored, closed.position)
        .map_err(OpenError::Corrupted)?
        .0;
    if stored != closed.hash {
        return Err(lost(format!(
            "hash {stored} at position {} (head {})",
            closed.position,
            describe(recovered)
        )));
    }
    Ok(())
}

/// The keys one commit writes, applied atomically.
///
/// A lone key is written with `Tree::insert`, which is atomic by itself; sled's `apply_batch`
/// costs about 50 µs more per call here (it also logs a batch manifest), which a lone writer
/// would pay on every append.
#[derive(Default)]
pub(super) struct WriteSet(Vec<(Vec<u8>, Vec<u8>)>);

impl WriteSet {
    pub(super) fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.0.push((key.into(), value.into()));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The writes in key order (for a segment's pieces).
    pub(super) fn into_sorted(mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.0.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.0
    }

    pub(super) fn apply(self, tree: &sled::Tree) -> sled::Result<()> {
        let mut writes = self.0;
        if writes.len() == 1 {
            let (key, value) = writes.pop().expect("one write");
            tree.insert(key, value)?;
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (key, value) in writes {
            batch.insert(key, value);
        }
        tree.apply_batch(batch)
    }
}

/// The format check: a new store gets `M format`; an existing one must have ours. Whether
/// the store seals: a store written before sealing is read as it is and never sealed.
fn check_or_write_format(tree: &sled::Tree, path: &Path) -> Result<bool, OpenError> {
    let storage_error = |e: sled::Error| OpenError::Storage {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    match tree.get(keys::META_FORMAT).map_err(storage_error)? {
        Some(found) if found.as_ref() == keys::FORMAT_NAME.as_bytes() => Ok(true),
        Some(found) if found.as_ref() == keys::FORMAT_NAME_UNSEALED.as_bytes() => Ok(false),
        Some(found) => Err(OpenError::UnsupportedFormat {
            path: path.to_owned(),
            found: String::from_utf8_lossy(&found).into_owned(),
            expected: keys::FORMAT_NAME,
        }),
        None if tree.first().map_err(storage_error)?.is_some() => {
            Err(OpenError::UnsupportedFormat {
                path: path.to_owned(),
                found: "(no format marker)".into(),
                expected: keys::FORMAT_NAME,
            })
        }
        None => {
            tree.insert(keys::META_FORMAT, keys::FORMAT_NAME.as_bytes())
                .map_err(storage_error)?;
            Ok(true)
        }
    }
}

pub(super) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}
