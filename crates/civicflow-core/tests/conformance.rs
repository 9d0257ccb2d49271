//! The event log's conformance kit (`civicflow_core::testkit::conformance`) against the
//! embedded backend, `SledLog`: every check of the kit is a test here.
//!
//! `cargo test -p civicflow-core --test conformance`; `CIVICFLOW_PROPTEST_CASES=1000` runs
//! the model test longer (in a release build: `--release`), `CIVICFLOW_PROPTEST_SEED=N`
//! replays the seed a failure named. What only sled does is tested beside it: failed syncs
//! (`tests/log_poison.rs`), SIGKILL during appends (`tests/log_crash.rs`), damaged bytes
//! (`tests/corruption.rs` here, `tests/damaged_files.rs`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use civicflow_core::testkit::conformance::Backend;
use civicflow_core::{Clock, EventStore, OpenError, SledLogConfig};

/// sled stores in directories under the system's temporary directory, with sled's default
/// durability (every acknowledged append fsynced). The kit's tuning, when not 0, is sled's
/// `index_flush_events`: how many events the stream index keeps in memory before it writes
/// them to disk.
#[derive(Debug, Default)]
pub struct SledBackend;

impl SledBackend {
    /// The backend.
    pub fn new() -> Self {
        Self
    }
}

/// A directory for one store, not yet created. Removed when dropped, unless the test is
/// panicking: then it stays, for a look at what went wrong (the failure names it).
pub struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Backend for SledBackend {
    type Place = TempDir;

    fn place(&self) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "civicflow-conformance-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        // A directory left by an earlier run of a process with the same id.
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }

    fn open(
        &self,
        place: &TempDir,
        clock: Arc<dyn Clock>,
        tuning: u8,
    ) -> Result<Arc<dyn EventStore>, OpenError> {
        let mut config = SledLogConfig::new(&place.0).clock(clock);
        if tuning > 0 {
            config = config.index_flush_events(usize::from(tuning));
        }
        Ok(Arc::new(config.open()?))
    }

    fn name(&self) -> String {
        "sled (SledLog)".to_owned()
    }
}

civicflow_core::event_store_conformance!(crate::SledBackend::new());
