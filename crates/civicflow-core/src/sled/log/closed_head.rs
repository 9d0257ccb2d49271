//! `closed-head`: the head a clean close left, kept beside sled's files, checked on open.
//!
//! sled recovers a damaged tail of its log by cutting it off at the first bad checksum (and
//! zeroing the rest of that segment). On a closed store whose files were damaged by a bad
//! disk or a bad copy, that silently drops the newest acknowledged events: the shorter chain
//! still verifies, because nothing in sled's files says how long the log was. This file says
//! it. Opening refuses a log that no longer reaches the closed head, or holds another event
//! there; a log longer than the closed head is fine (the log only grows, and a crash after a
//! reopen leaves the file of the earlier close behind). No file (a store from before this
//! file existed, a log closed empty, a crash before any clean close) checks nothing.
//!
//! The file is text, one field a line, with a SHA-256 check over the lines before it, so
//! damage to the file itself is refused rather than trusted:
//!
//! ```text
//! civicflow-closed-head/1
//! position 1234
//! hash 5f1c…(64 hex digits)
//! check 9a0b…(16 hex digits: the first 8 bytes of SHA-256 of the lines above)
//! ```

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::chain::{ChainHash, ChainHead};
use crate::error::OpenError;
use crate::ids::Position;

/// The file's name in the log's directory.
pub(super) const FILE_NAME: &str = "closed-head";

const MAGIC: &str = "civicflow-closed-head/1";

fn check_of(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn encode(head: ChainHead) -> String {
    let body = format!("{MAGIC}\nposition {}\nhash {}\n", head.position, head.hash);
    let check = check_of(&body);
    format!("{body}check {check}\n")
}

/// Parses the file's text; `Err` says what is wrong with it.
fn decode(text: &str) -> Result<ChainHead, String> {
    let Some(at) = text.rfind("check ") else {
        return Err("it has no check line".into());
    };
    let (body, check_line) = text.split_at(at);
    let check = check_line
        .strip_prefix("check ")
        .and_then(|rest| rest.strip_suffix('\n'))
        .ok_or("its check line is malformed")?;
    if check != check_of(body) {
        return Err("its check value does not match its contents".into());
    }
    let mut lines = body.lines();
    if lines.next() != Some(MAGIC) {
        return Err(format!("its first line is not {MAGIC:?}"));
    }
    let position = lines
        .next()
        .and_then(|line| line.strip_prefix("position "))
        .and_then(|digits| digits.parse::<u64>().ok())
        .and_then(Position::new)
        .ok_or("its position line is malformed")?;
    let hash = lines
        .next()
        .and_then(|line| line.strip_prefix("hash "))
        .and_then(ChainHash::from_hex)
        .ok_or("its hash line is malformed")?;
    if lines.next().is_some() {
        return Err("it has extra lines".into());
    }
    Ok(ChainHead { position, hash })
}

/// The closed head recorded in `dir`, if any.
///
/// # Errors
/// [`OpenError::Storage`] naming the file when it cannot be read or is damaged: a head that
/// cannot be trusted cannot vouch for the log either.
pub(super) fn read(dir: &Path) -> Result<Option<ChainHead>, OpenError> {
    let path = dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(OpenError::Io {
                path: path.clone(),
                source,
            })
        }
    };
    let damaged = |why: String| {
        OpenError::Storage {
        path: dir.to_owned(),
        reason: format!(
            "its {FILE_NAME} file ({}) is damaged: {why}; it records how far the log reached when it was last closed, so the log cannot be checked against it. Restore the store from a backup, or move the file away to open without this check",
            path.display()
        ),
    }
    };
    let text = String::from_utf8(bytes).map_err(|_| damaged("it is not UTF-8 text".into()))?;
    decode(&text).map(Some).map_err(damaged)
}

/// Records `head` as the closed head in `dir`: written beside, synced, renamed into place and
/// the directory synced, so the file is the old one or the new one, never half of either.
///
/// # Errors
/// The failed file operation, with the file's path.
pub(super) fn write(dir: &Path, head: ChainHead) -> Result<(), String> {
    let partial: PathBuf = dir.join(format!(".{FILE_NAME}.partial"));
    let path = dir.join(FILE_NAME);
    let failed = |what: &str, file: &Path, e: std::io::Error| {
        format!("cannot {what} {}: {e}", file.display())
    };
    let mut file =
        crate::private_fs::create_file(&partial).map_err(|e| failed("create", &partial, e))?;
    file.write_all(encode(head).as_bytes())
        .map_err(|e| failed("write", &partial, e))?;
    file.sync_all().map_err(|e| failed("sync", &partial, e))?;
    drop(file);
    std::fs::rename(&partial, &path).map_err(|e| failed("rename into", &path, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| failed("sync the directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::OpenError;
    use crate::event::{AppendRequest, NewEvent};
    use crate::ids::{Actor, CorrelationId, EventType, ExpectedVersion, StreamId};
    use crate::store::EventStore;
    use crate::{SledLog, Timestamp};

    fn append(log: &SledLog, n: usize) {
        let request = AppendRequest::to_stream(
            StreamId::new("case-1").expect("valid"),
            ExpectedVersion::Any,
            (0..n)
                .map(|i| NewEvent::new(EventType::new("Noted").expect("valid"), 1, vec![i as u8]))
                .collect(),
            Actor::parse("worker-1", "grid_worker", "grid-1").expect("valid"),
            CorrelationId::new_v7(Timestamp::EPOCH),
        );
        log.append(request).expect("append").expect("no conflict");
    }

    /// Removes the newest chunk with sled itself, as sled's recovery does to a damaged tail.
    fn drop_newest_chunk(path: &Path) {
        let db = sled::Config::new()
            .path(path)
            .segment_size(super::super::SEGMENT_BYTES)
            .flush_every_ms(None)
            .open()
            .expect("raw sled");
        let tree = db.open_tree("civicflow-log").expect("tree");
        let (key, _) = tree
            .scan_prefix([super::super::keys::LOG])
            .next_back()
            .expect("a chunk")
            .expect("read");
        tree.remove(key).expect("remove");
        db.flush().expect("flush");
        drop(tree);
        crate::sled::support::close(db, path);
    }

    #[test]
    fn a_log_cut_short_after_a_clean_close_is_refused_naming_both_heads() {
        let path =
            std::env::temp_dir().join(format!("civicflow-closed-head-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let log = SledLog::open(&path).expect("open");
        append(&log, 3);
        append(&log, 2);
        let closed = log.head().expect("a head");
        log.close().expect("close");
        let kept = std::fs::read(path.join(FILE_NAME)).expect("a clean close writes the file");

        // Longer than the closed head (a crash after a reopen left the older file): fine.
        let log = SledLog::open(&path).expect("reopen");
        append(&log, 1);
        log.close().expect("close");
        std::fs::write(path.join(FILE_NAME), &kept).expect("the older file back");
        let log = SledLog::open(&path).expect("a log longer than its closed head opens");
        log.close().expect("close");
        std::fs::write(path.join(FILE_NAME), &kept).expect("the older file back");

        // Cut back below the closed head: refused, naming both heads.
        drop_newest_chunk(&path);
        drop_newest_chunk(&path);
        match SledLog::open(&path) {
            Err(error @ OpenError::ClosedHeadLost { .. }) => {
                let message = error.to_string();
                assert!(
                    message.contains(&format!("position 5 hash {}", closed.hash)),
                    "{message}"
                );
                assert!(message.contains("only up to position 3 hash"), "{message}");
            }
            other => panic!("expected ClosedHeadLost, got {other:?}"),
        }

        // No file (a store from before it existed, or never closed cleanly): not checked.
        std::fs::remove_file(path.join(FILE_NAME)).expect("remove");
        let log = SledLog::open(&path).expect("opens without the file");
        assert_eq!(log.head().map(|h| h.position.get()), Some(3));
        log.close().expect("close");
        let _ = std::fs::remove_dir_all(&path);
    }

    fn head() -> ChainHead {
        ChainHead {
            position: Position::new(1234).expect("not zero"),
            hash: ChainHash::from_bytes([0xab; 32]),
        }
    }

    #[test]
    fn a_written_head_reads_back() {
        assert_eq!(decode(&encode(head())), Ok(head()));
    }

    #[test]
    fn any_changed_byte_is_refused() {
        let text = encode(head());
        for at in 0..text.len() {
            let mut bytes = text.clone().into_bytes();
            bytes[at] ^= 0x01;
            if let Ok(changed) = String::from_utf8(bytes) {
                assert!(decode(&changed).is_err(), "byte {at} changed: {changed:?}");
            }
        }
        for cut in 0..text.len() {
            assert!(decode(&text[..cut]).is_err(), "cut at {cut}");
        }
    }
}
