//! [`PgLog`]: the event log on PostgreSQL, shared by every service instance on the database.
//!
//! - Appends go through one committer per process ([`commit`]), which batches every append
//!   waiting into one transaction: the database's commit (its WAL flush) is shared by the
//!   group, as sled's fsync is. Positions are taken under the lock of the one `log_head` row,
//!   which every append transaction updates, so commits are ordered and positions follow
//!   commit order without gaps (`docs/design.md`, "Positions on a shared database").
//! - Reads are plain queries on a pool ([`read`]); everything they see is committed.
//! - Other instances' commits are learnt from `LISTEN` and a poll ([`follow`]); a lost
//!   notification only delays a subscriber.
//! - Restores fill an empty store in one transaction ([`restore`]); `verify` walks the stored
//!   bytes with the same checks as on sled ([`verify`]).

mod commit;
mod follow;
mod read;
mod restore;
mod verify;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use civicflow_core::{
    AppendError, AppendRequest, AppendResult, ChainHash, ChainHead, Clock, CloseError,
    CommitSignal, Completion, EventStore, IdempotencyKey, IdempotencyRecord, LogStats, OpenError,
    Position, ReadError, RecordedEvent, RestoreError, RestoreSink, StoredIdempotency, StoredRecord,
    StreamId, SystemClock, Timestamp, VerifyReport, Version,
};

use crate::database::{describe, Database};

/// How long `health` waits for the database.
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// A log on PostgreSQL. Cheap to clone: clones share the committer and the follower; the
/// connections are let go when the last clone (and subscription) is dropped.
#[derive(Clone)]
pub struct PgLog {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PgLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLog")
            .field("location", &self.shared.db.location())
            .field("head", &self.head())
            .finish()
    }
}

pub(crate) struct Shared {
    pub(crate) db: Database,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) signal: CommitSignal,
    /// The newest head this process knows: its own commits and other instances' it learnt.
    known_head: Mutex<Option<ChainHead>>,
    pub(crate) committer: commit::CommitterHandle,
    closed: AtomicBool,
    /// Whether another process listens for this store's commits (another instance's
    /// follower): the committer notifies only then. A lone instance would only wake itself.
    /// Checked by the follower every second; `true` until known.
    pub(crate) others_listening: AtomicBool,
    pub(crate) stats: Stats,
    /// How many streams a restore's check keeps in memory (`PgLog::restore_streams_in_memory`).
    pub(crate) restore_streams_in_memory: std::sync::atomic::AtomicUsize,
    /// Stops the follower when the last handle goes.
    follower: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(task) = self
            .follower
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

/// Counters of the committer's work.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) groups: AtomicU64,
    pub(crate) appends: AtomicU64,
    pub(crate) events: AtomicU64,
    pub(crate) largest: AtomicU64,
}

impl Shared {
    /// Learns a head (its own commit's or another instance's): kept if newer, and published
    /// to subscribers.
    pub(crate) fn learn_head(&self, head: ChainHead) {
        let mut known = self
            .known_head
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if known.is_none_or(|k| k.position < head.position) {
            *known = Some(head);
            drop(known);
            self.signal.publish(head.position);
        }
    }

    pub(crate) fn known_head(&self) -> Option<ChainHead> {
        *self
            .known_head
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn ensure_open(&self) -> Result<(), ReadError> {
        if self.closed.load(Ordering::Acquire) {
            Err(ReadError::Closed)
        } else {
            Ok(())
        }
    }
}

impl PgLog {
    /// Opens the log of the store on `database` with the system clock.
    ///
    /// # Errors
    /// [`OpenError::Storage`] naming the database when the head cannot be read.
    pub fn open(database: &Database) -> Result<Self, OpenError> {
        Self::open_with_clock(database, Arc::new(SystemClock))
    }

    /// Opens the log, stamping `recorded_at` from `clock` (never backwards).
    ///
    /// # Errors
    /// As [`PgLog::open`].
    pub fn open_with_clock(database: &Database, clock: Arc<dyn Clock>) -> Result<Self, OpenError> {
        let db = database.clone();
        let head_db = db.clone();
        let stored = db
            .run(async move { read::stored_head(&head_db).await })
            .map_err(|e| OpenError::Storage {
                path: database.location().into(),
                reason: e.to_string(),
            })?;
        let head = stored.map(|(head, _)| head);
        let recorded_at = stored.map_or(Timestamp::EPOCH, |(_, at)| at);
        let shared = Arc::new_cyclic(|weak| Shared {
            committer: commit::CommitterHandle::start(&db, weak.clone(), head, recorded_at),
            signal: CommitSignal::new(head.map_or(0, |h| h.position.get())),
            known_head: Mutex::new(head),
            clock,
            closed: AtomicBool::new(false),
            others_listening: AtomicBool::new(true),
            stats: Stats::default(),
            restore_streams_in_memory: std::sync::atomic::AtomicUsize::new(
                civicflow_core::backend::RESTORE_STREAMS_IN_MEMORY,
            ),
            follower: Mutex::new(None),
            db,
        });
        let follower = follow::start(&shared);
        *shared
            .follower
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(follower);
        Ok(Self { shared })
    }

    /// Sets how many streams a restore keeps in memory; it looks the others up in its own
    /// transaction (tests make it small, so that it does).
    #[must_use]
    pub fn restore_streams_in_memory(self, streams: usize) -> Self {
        self.shared
            .restore_streams_in_memory
            .store(streams.max(1), std::sync::atomic::Ordering::Relaxed);
        self
    }

    /// The database underneath (the vault of the same store shares it).
    pub fn database(&self) -> &Database {
        &self.shared.db
    }

    /// Reads the head from the database now (not the newest this process knows), and
    /// publishes it if it is newer: for tools that must see every instance's commits.
    ///
    /// # Errors
    /// [`ReadError::Storage`] when the database cannot be read.
    pub fn refresh_head(&self) -> Result<Option<ChainHead>, ReadError> {
        self.shared.ensure_open()?;
        let db = self.shared.db.clone();
        let stored = self
            .shared
            .db
            .run(async move { read::stored_head(&db).await })?;
        if let Some((head, _)) = stored {
            self.shared.learn_head(head);
        }
        Ok(self.shared.known_head())
    }
}

impl EventStore for PgLog {
    fn append(&self, request: AppendRequest) -> AppendResult {
        self.append_async(request).wait()
    }

    fn append_async(&self, request: AppendRequest) -> Completion<AppendResult> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Completion::ready(Err(AppendError::Closed));
        }
        let prepared = match civicflow_core::backend::prepare(request, self.shared.clock.now()) {
            Ok(prepared) => prepared,
            Err(e) => return Completion::ready(Err(e)),
        };
        self.shared.committer.submit(prepared)
    }

    fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.read_stream_async(stream.clone(), from, max).wait()
    }

    fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, ReadError> {
        self.read_all_async(from, max).wait()
    }

    fn read_stream_async(
        &self,
        stream: StreamId,
        from: Version,
        max: usize,
    ) -> Completion<Result<Vec<RecordedEvent>, ReadError>> {
        if let Err(e) = self.shared.ensure_open() {
            return Completion::ready(Err(e));
        }
        let db = self.shared.db.clone();
        self.shared
            .db
            .complete(async move { read::stream(&db, &stream, from, max).await })
    }

    fn read_all_async(
        &self,
        from: Position,
        max: usize,
    ) -> Completion<Result<Vec<RecordedEvent>, ReadError>> {
        if let Err(e) = self.shared.ensure_open() {
            return Completion::ready(Err(e));
        }
        let db = self.shared.db.clone();
        self.shared
            .db
            .complete(async move { read::all(&db, from, max).await })
    }

    fn stream_version(&self, stream: &StreamId) -> Result<Option<Version>, ReadError> {
        self.shared.ensure_open()?;
        let db = self.shared.db.clone();
        let stream = stream.clone();
        self.shared
            .db
            .run(async move { read::stream_head(&db, &stream).await })
            .map(|head| head.map(|h| h.version))
    }

    fn idempotency_record(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, ReadError> {
        self.shared.ensure_open()?;
        let db = self.shared.db.clone();
        let key = key.clone();
        let found = self
            .shared
            .db
            .run(async move { read::idempotency(&db, &key).await })?;
        Ok(found.map(|(fingerprint, appended)| IdempotencyRecord {
            fingerprint,
            appended,
        }))
    }

    fn head(&self) -> Option<ChainHead> {
        self.shared.known_head()
    }

    fn commit_signal(&self) -> &CommitSignal {
        &self.shared.signal
    }

    fn verify(&self) -> Result<VerifyReport, ReadError> {
        self.shared.ensure_open()?;
        verify::log(&self.shared)
    }

    fn verify_stream(&self, stream: &StreamId) -> Result<VerifyReport, ReadError> {
        self.shared.ensure_open()?;
        verify::stream(&self.shared, stream)
    }

    fn poisoned(&self) -> Option<String> {
        // A failed commit does not poison a shared log: the database decides what committed,
        // and the next group starts from what it holds (see `commit`).
        None
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn health(&self) -> Result<(), String> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err("closed".into());
        }
        let db = self.shared.db.clone();
        self.shared.db.run(async move {
            let answer = tokio::time::timeout(HEALTH_TIMEOUT, async {
                let client = db.client().await?;
                client
                    .query_one("SELECT 1", &[])
                    .await
                    .map(drop)
                    .map_err(|e| describe(&e))
            })
            .await;
            match answer {
                Ok(Ok(())) => Ok(()),
                Ok(Err(reason)) => Err(format!("database unreachable: {reason}")),
                Err(_) => Err(format!(
                    "database unreachable: {} did not answer within {} s",
                    db.location(),
                    HEALTH_TIMEOUT.as_secs()
                )),
            }
        })
    }

    fn stats(&self) -> LogStats {
        let s = &self.shared.stats;
        LogStats::new(
            s.groups.load(Ordering::Relaxed),
            s.appends.load(Ordering::Relaxed),
            s.events.load(Ordering::Relaxed),
            s.largest.load(Ordering::Relaxed),
        )
    }

    fn location(&self) -> String {
        self.shared.db.location()
    }

    fn stored_records(&self, from: Position, max: usize) -> Result<Vec<StoredRecord>, ReadError> {
        self.shared.ensure_open()?;
        let db = self.shared.db.clone();
        self.shared
            .db
            .run(async move { read::stored_records(&db, from, max).await })
    }

    fn stored_idempotency_records(
        &self,
        after: Option<&IdempotencyKey>,
        max: usize,
    ) -> Result<Vec<StoredIdempotency>, ReadError> {
        self.shared.ensure_open()?;
        let db = self.shared.db.clone();
        let after = after.cloned();
        self.shared
            .db
            .run(async move { read::stored_idempotency(&db, after.as_ref(), max).await })
    }

    fn begin_restore(&self) -> Result<Box<dyn RestoreSink + '_>, RestoreError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(RestoreError::Refused("the event log is closed".into()));
        }
        Ok(Box::new(restore::PgRestore::begin(&self.shared)?))
    }

    fn close(&self) -> Result<(), CloseError> {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Appends already queued are committed (and answered) before the committer stops.
        self.shared.committer.close();
        self.shared.signal.close();
        Ok(())
    }
}

/// A storage failure of a read, naming the database.
pub(crate) fn storage(db: &Database, error: &tokio_postgres::Error) -> ReadError {
    ReadError::Storage(format!("{}: {}", db.location(), describe(error)))
}

/// Decodes a stored hash column.
pub(crate) fn hash_of(bytes: &[u8], position: Position) -> Result<ChainHash, ReadError> {
    <[u8; 32]>::try_from(bytes)
        .map(ChainHash::from_bytes)
        .map_err(|_| ReadError::Corrupted {
            position,
            reason: format!("a stored hash of {} bytes", bytes.len()),
        })
}

/// A stored position or version column as the core's type (they are never 0 or negative).
pub(crate) fn position_of(value: i64) -> Result<Position, ReadError> {
    u64::try_from(value)
        .ok()
        .and_then(Position::new)
        .ok_or_else(|| ReadError::CorruptedIndex {
            what: "a stored position".into(),
            reason: format!("{value} is not a position"),
        })
}

/// A position as a database integer (positions stay far below `i64::MAX`).
pub(crate) fn sql_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
