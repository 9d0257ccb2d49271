//! What every user of sled in this crate needs the same way: opening without letting a panic
//! out and without tripping over a store that is just closing, and waiting on close until
//! sled has let go of its files. The log (`sled_log/`) and the vault (`vault/data.rs`) use it.

use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long opening waits for a lock that another, closing, handle still holds.
const LOCK_WAIT_MAX: Duration = Duration::from_secs(2);

/// How long closing waits for sled to let go of its files.
const RELEASE_WAIT_MAX: Duration = Duration::from_secs(10);

/// Why sled did not open.
pub(crate) enum OpenFailure {
    /// Another handle, in this process or another, holds the store.
    Locked,
    /// sled refused the files or panicked on them; the words say which.
    Failed(String),
}

/// Opens sled as `config` says. sled can panic on damaged files: that is contained and
/// reported. A lock held by a store that was just closed (sled's threads let go of the file a
/// moment after it is dropped) is waited for briefly.
pub(crate) fn open(config: &sled::Config) -> Result<sled::Db, OpenFailure> {
    let locked_until = Instant::now() + LOCK_WAIT_MAX;
    loop {
        match catch_unwind(AssertUnwindSafe(|| config.open())) {
            Ok(Ok(db)) => return Ok(db),
            Ok(Err(sled::Error::Io(e))) if e.to_string().contains("could not acquire lock") => {
                if Instant::now() >= locked_until {
                    return Err(OpenFailure::Locked);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(Err(e)) => return Err(OpenFailure::Failed(e.to_string())),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".into());
                return Err(OpenFailure::Failed(format!(
                    "sled panicked while opening: {message}"
                )));
            }
        }
    }
}

/// Drops a database without letting a panic out (sled's own drop flushes and unwraps an
/// fsync: a failing disk must not turn closing into a panic), then waits until its lock on
/// `path/db` is gone, so the store can be opened again at once.
pub(crate) fn close(db: sled::Db, path: &Path) {
    let _ = catch_unwind(AssertUnwindSafe(|| drop(db)));
    wait_until_released(path);
}

/// Waits until sled's lock on `path/db` is gone (sled's threads can hold the file for a moment
/// after the last handle to the database is dropped).
pub(crate) fn wait_until_released(path: &Path) {
    let deadline = Instant::now() + RELEASE_WAIT_MAX;
    while Instant::now() < deadline {
        let Ok(file) = File::open(path.join("db")) else {
            return;
        };
        match file.try_lock() {
            Ok(()) => {
                let _ = file.unlock();
                return;
            }
            Err(std::fs::TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(1)),
            Err(std::fs::TryLockError::Error(_)) => return,
        }
    }
}
