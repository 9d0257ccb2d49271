//! The embedded backend for the conformance kit (`testkit::conformance`, feature `testkit`):
//! sled stores in directories of their own, with sled's default durability (every
//! acknowledged append fsynced). The kit's `tuning`, when not 0, is sled's
//! `index_flush_events`: how many events the stream index keeps in memory before it writes
//! them to disk, so the kit crosses that boundary between reopenings; and the log seals every
//! three times that many events, so that reads cross sealed segments too.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{SledLog, SledLogConfig};
use crate::clock::Clock;
use crate::error::OpenError;
use crate::store::EventStore;
use crate::testkit::conformance::Backend;

/// sled stores for the conformance kit: `civicflow_core::event_store_conformance!(SledBackend::new())`.
#[derive(Debug, Default)]
pub struct SledBackend {
    /// Where places go: `None` for the system's temporary directory.
    root: Option<PathBuf>,
}

impl SledBackend {
    /// Places under the system's temporary directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Places under `root` (which the caller removes when it is done).
    pub fn under(root: impl Into<PathBuf>) -> Self {
        Self {
            root: Some(root.into()),
        }
    }

    /// Opens the log at `place` as [`Backend::open`] does, as the concrete type (for
    /// backends that wrap sled's, like the kit's deliberately broken stores).
    ///
    /// # Errors
    /// As [`SledLog::open_with`].
    pub fn open_log(
        &self,
        place: &SledPlace,
        clock: Arc<dyn Clock>,
        tuning: u8,
    ) -> Result<SledLog, OpenError> {
        let mut config = SledLogConfig::new(&place.0).clock(clock);
        if tuning > 0 {
            // A seal every few flushes, so that the kit's reads cross sealed segments, the
            // tail on disk and the memtable (decision 0013).
            // And a restore that keeps a few streams in memory, looking the others up in
            // what it wrote.
            config = config
                .index_flush_events(usize::from(tuning))
                .seal_after_events(3 * u64::from(tuning))
                .restore_streams_in_memory(usize::from(tuning) / 8);
        }
        config.open()
    }
}

/// A directory for one store, not yet created. Removed when dropped, unless the thread is
/// panicking: then it stays, for a look at what went wrong (the failure names it).
#[derive(Debug)]
pub struct SledPlace(PathBuf);

impl SledPlace {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for SledPlace {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Backend for SledBackend {
    type Place = SledPlace;

    fn place(&self) -> SledPlace {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = match &self.root {
            Some(root) => root.join(n.to_string()),
            None => std::env::temp_dir()
                .join(format!("civicflow-conformance-{}-{n}", std::process::id())),
        };
        // A directory left by an earlier run of a process with the same id.
        let _ = std::fs::remove_dir_all(&path);
        SledPlace(path)
    }

    fn open(
        &self,
        place: &SledPlace,
        clock: Arc<dyn Clock>,
        tuning: u8,
    ) -> Result<Arc<dyn EventStore>, OpenError> {
        Ok(Arc::new(self.open_log(place, clock, tuning)?))
    }

    fn name(&self) -> String {
        "sled (SledLog)".to_owned()
    }
}
