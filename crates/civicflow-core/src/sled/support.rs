//! What every user of sled in this crate needs the same way: opening without letting a panic
//! out and without tripping over a store that is just closing, and waiting on close until
//! sled has let go of its files. The log (`sled/log/`), the vault's store (`sled/vault/`)
//! and the read models (`sled/read_models/`) use it.
//!
//! And, for a store that wants it (the vault), a fingerprint of its whole contents at a clean
//! close, checked and removed on the next open: sled recovers a damaged log by cutting it
//! short at the first bad checksum, which silently drops the newest writes of a closed store.
//! The event log has a finer check of its own (`sled/log/closed_head.rs`).

use std::fs::File;
use std::io::Write;
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
            Ok(Ok(db)) => {
                // sled made its files with the umask; nobody else may read them.
                crate::private_fs::tighten(&config.get_path()).map_err(|e| {
                    OpenFailure::Failed(format!("cannot make its files owner-only: {e}"))
                })?;
                return Ok(db);
            }
            Ok(Err(sled::Error::Io(e))) if e.to_string().contains("could not acquire lock") => {
                if Instant::now() >= locked_until {
                    return Err(OpenFailure::Locked);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(Err(e)) => return Err(OpenFailure::Failed(describe(&e))),
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

/// sled's error in words an operator can act on. sled's own text for damaged files is "Read
/// corrupted data at file offset None backtrace ()", which says neither what nor what to do.
pub(crate) fn describe(error: &sled::Error) -> String {
    match error {
        sled::Error::Corruption { at, .. } => format!(
            "its files are damaged: sled found data that fails its checksum{} (changed on disk or by a bad copy); restore the store from a backup",
            at.map(|at| format!(" at {at}")).unwrap_or_default()
        ),
        // sled's own text is the error's Debug form ("IO error: Os { code: 27, kind:
        // FileTooLarge, .. }"), and its copies of a stored error carry only the kind: say what
        // happened and what the operator has to do (tests/suite/sled/disk_full.rs).
        sled::Error::Io(e) => match e.kind() {
            std::io::ErrorKind::StorageFull => "the disk refused the write: no space left on the device (ENOSPC); make room and restart".to_owned(),
            std::io::ErrorKind::QuotaExceeded => "the disk refused the write: the disk quota is used up (EDQUOT); make room and restart".to_owned(),
            std::io::ErrorKind::FileTooLarge => "the disk refused the write: a file reached the file-size limit (EFBIG: RLIMIT_FSIZE or the filesystem's own); raise it and restart".to_owned(),
            _ => format!("I/O error: {e}"),
        },
        other => other.to_string(),
    }
}

/// Drops a database without letting a panic out (sled's own drop flushes and unwraps an
/// fsync: a failing disk must not turn closing into a panic), then waits until its lock on
/// `path/db` is gone, so the store can be opened again at once.
pub(crate) fn close(db: sled::Db, path: &Path) {
    let _ = catch_unwind(AssertUnwindSafe(|| drop(db)));
    wait_until_released(path);
    // Snapshots sled wrote while open, made with the umask (the directory guards them anyway).
    let _ = crate::private_fs::tighten(path);
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

/// The file a clean close leaves with the fingerprint of the store's contents.
pub(crate) const CLEAN_CLOSE_FILE: &str = "clean-close";

const CLEAN_CLOSE_MAGIC: &str = "civicflow-clean-close/1";

fn clean_close_text(checksum: u32) -> String {
    use sha2::{Digest, Sha256};
    let body = format!("{CLEAN_CLOSE_MAGIC}\ncontents-crc32 {checksum:08x}\n");
    let digest = Sha256::digest(body.as_bytes());
    let check: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{body}check {check}\n")
}

fn parse_clean_close(text: &str) -> Option<u32> {
    let checksum = text
        .strip_prefix(CLEAN_CLOSE_MAGIC)?
        .strip_prefix("\ncontents-crc32 ")?
        .get(..8)?;
    let checksum = u32::from_str_radix(checksum, 16).ok()?;
    (clean_close_text(checksum) == text).then_some(checksum)
}

/// Checks an opened store against the fingerprint its last clean close left, then removes it
/// (the store changes from now on, and a crash must not leave a stale one behind). No file (a
/// crash, or a store from before) checks nothing.
///
/// # Errors
/// Words naming the store: the contents differ from the fingerprint (writes made before the
/// close are missing or changed), the file is damaged, or it cannot be read or removed.
pub(crate) fn check_clean_close(db: &sled::Db, path: &Path) -> Result<(), String> {
    let file = path.join(CLEAN_CLOSE_FILE);
    let text = match std::fs::read(&file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
    };
    let Some(expected) = std::str::from_utf8(&text).ok().and_then(parse_clean_close) else {
        return Err(format!(
            "its {CLEAN_CLOSE_FILE} file ({}) is damaged; it fingerprints the contents at the last clean close, so they cannot be checked against it. Restore the store from a backup, or move the file away to open without this check",
            file.display()
        ));
    };
    let found = db.checksum().map_err(|e| describe(&e))?;
    if found != expected {
        return Err(format!(
            "its contents differ from those it was closed with (checksum {found:08x}, closed with {expected:08x}): writes made before its last clean close are missing or changed (damaged or partly copied files); restore the store from a backup"
        ));
    }
    std::fs::remove_file(&file)
        .and_then(|()| File::open(path)?.sync_all())
        .map_err(|e| format!("cannot remove {}: {e}", file.display()))
}

/// [`close`], leaving the fingerprint of the contents for [`check_clean_close`]. Written only
/// once the data file is synced, so it never claims contents the disk does not hold; if
/// anything fails, no fingerprint is left (the next open checks nothing, as after a crash).
pub(crate) fn close_recording_contents(db: sled::Db, path: &Path) {
    let checksum = catch_unwind(AssertUnwindSafe(|| {
        db.flush().ok()?;
        db.checksum().ok()
    }))
    .ok()
    .flatten();
    close(db, path);
    let Some(checksum) = checksum else {
        return;
    };
    let partial = path.join(format!(".{CLEAN_CLOSE_FILE}.partial"));
    let written = (|| -> std::io::Result<()> {
        File::options()
            .write(true)
            .open(path.join("db"))?
            .sync_data()?;
        let mut file = crate::private_fs::create_file(&partial)?;
        file.write_all(clean_close_text(checksum).as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&partial, path.join(CLEAN_CLOSE_FILE))?;
        File::open(path)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(path: &Path) -> sled::Config {
        sled::Config::new().path(path).flush_every_ms(None)
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "civicflow-sled-support-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        path
    }

    #[test]
    fn the_fingerprint_text_refuses_any_change() {
        let text = clean_close_text(0xdead_beef);
        assert_eq!(parse_clean_close(&text), Some(0xdead_beef));
        for at in 0..text.len() {
            let mut bytes = text.clone().into_bytes();
            bytes[at] ^= 0x01;
            if let Ok(changed) = String::from_utf8(bytes) {
                assert_eq!(parse_clean_close(&changed), None, "byte {at}");
            }
        }
    }

    #[test]
    fn a_store_that_lost_a_write_after_a_clean_close_is_refused_once_then_not_checked() {
        let path = scratch("lost-write");
        let Ok(db) = open(&config(&path)) else {
            panic!("open")
        };
        db.insert(b"a", b"1".to_vec()).expect("insert");
        db.insert(b"b", b"2".to_vec()).expect("insert");
        close_recording_contents(db, &path);
        assert!(path.join(CLEAN_CLOSE_FILE).exists());

        // Untouched: the check passes and removes the file.
        let Ok(db) = open(&config(&path)) else {
            panic!("reopen")
        };
        check_clean_close(&db, &path).expect("unchanged contents pass");
        assert!(!path.join(CLEAN_CLOSE_FILE).exists());
        close_recording_contents(db, &path);

        // A write lost behind the fingerprint's back (what sled's truncating recovery does).
        let db = config(&path).open().expect("raw sled");
        db.remove(b"b").expect("remove");
        db.flush().expect("flush");
        close(db, &path);
        let Ok(db) = open(&config(&path)) else {
            panic!("reopen")
        };
        let error = check_clean_close(&db, &path).expect_err("a lost write is refused");
        assert!(
            error.contains("writes made before its last clean close"),
            "{error}"
        );
        close(db, &path);
        let _ = std::fs::remove_dir_all(&path);
    }
}
