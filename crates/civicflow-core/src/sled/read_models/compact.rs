//! Compaction: a stopped read-model store's live pages written once into a fresh store.
//!
//! sled does not give back what rewritten pages leave behind: each commit writes the pages it
//! changed anew, and the old copies stay in sled's segments until a segment is half empty. A
//! store built by a rebuild or by months of live commits holds three to four times its live
//! bytes (the bench's million-event store: 203 MB of pages in a 780 MB file). Copying the live
//! pages in key order into a new store writes each once (297 MB there).
//!
//! The new store is built beside the old one (`<dir>.compacting`), flushed, closed and marked
//! complete; then the old directory is renamed away (`<dir>.replaced`), the new one renamed
//! into place and the old one removed. Whatever step is interrupted, [`recover`] (run by every
//! open) finds either the old store in place, or no store and a complete new one, which it
//! renames into place; leftovers are removed.

use std::path::{Path, PathBuf};

use super::{storage, SledReadModels, TREE};
use crate::readmodel::ReadModelError;
use crate::sled::support;

/// The file that marks a new store as complete (flushed and closed).
const COMPLETE: &str = "COMPACTED";

/// How many page bytes one write of the copy carries.
const BATCH_BYTES: usize = 4 << 20;

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    /// The store's files before, in bytes.
    pub bytes_before: u64,
    /// The store's files after, in bytes.
    pub bytes_after: u64,
    /// The sled entries copied (pages, checkpoints, markers).
    pub entries: u64,
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> ReadModelError {
    ReadModelError::Storage(format!("{what} {}: {e}", path.display()))
}

/// `<dir>.<suffix>`, beside `dir`.
fn beside(dir: &Path, suffix: &str) -> Result<PathBuf, ReadModelError> {
    let name = dir
        .file_name()
        .ok_or_else(|| ReadModelError::Storage(format!("{} names no directory", dir.display())))?;
    let mut name = name.to_os_string();
    name.push(".");
    name.push(suffix);
    Ok(dir.with_file_name(name))
}

/// The bytes of the files under `dir`.
fn bytes_of(dir: &Path) -> Result<u64, ReadModelError> {
    let mut total = 0;
    let entries = std::fs::read_dir(dir).map_err(|e| io_error("read", dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error("read", dir, &e))?;
        let meta = entry
            .metadata()
            .map_err(|e| io_error("read", &entry.path(), &e))?;
        total += if meta.is_dir() {
            bytes_of(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// Makes a rename in `dir`'s parent durable.
fn sync_parent(dir: &Path) -> Result<(), ReadModelError> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_error("sync", parent, &e))
}

/// Finishes or undoes a compaction of `dir` that was interrupted.
///
/// # Errors
/// [`ReadModelError::Storage`] when a directory cannot be renamed or removed.
pub(super) fn recover(dir: &Path) -> Result<(), ReadModelError> {
    let new = beside(dir, "compacting")?;
    let old = beside(dir, "replaced")?;
    if new.exists() {
        if !dir.exists() && new.join(COMPLETE).exists() {
            std::fs::rename(&new, dir).map_err(|e| io_error("rename", &new, &e))?;
            sync_parent(dir)?;
        } else {
            // Unfinished, or the old store is still in place: the copy is not needed.
            std::fs::remove_dir_all(&new).map_err(|e| io_error("remove", &new, &e))?;
        }
    }
    if old.exists() {
        if dir.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| io_error("remove", &old, &e))?;
        } else {
            // Not reached by `compact`'s order of steps; kept so that a store is never lost.
            std::fs::rename(&old, dir).map_err(|e| io_error("rename", &old, &e))?;
            sync_parent(dir)?;
        }
    }
    let marker = dir.join(COMPLETE);
    if marker.exists() {
        std::fs::remove_file(&marker).map_err(|e| io_error("remove", &marker, &e))?;
    }
    Ok(())
}

impl SledReadModels {
    /// Rewrites the stopped store in `dir` with only its live pages (see the module's page in
    /// the source: `sled/read_models/compact.rs`), with sled's page cache at `cache_bytes`
    /// for each of the two stores. Rows, checkpoints and active versions are unchanged.
    ///
    /// # Errors
    /// As [`SledReadModels::open`] ([`ReadModelError::Locked`] while a service has the store
    /// open); [`ReadModelError::Storage`] when the copy or a rename fails, the old store then
    /// still in place.
    pub fn compact(dir: impl AsRef<Path>, cache_bytes: u64) -> Result<Compaction, ReadModelError> {
        let dir = dir.as_ref();
        let source = Self::open_with_cache(dir, cache_bytes)?;
        let bytes_before = bytes_of(dir)?;
        let new = beside(dir, "compacting")?;
        if new.exists() {
            std::fs::remove_dir_all(&new).map_err(|e| io_error("remove", &new, &e))?;
        }
        crate::private_fs::create_dir_all(&new).map_err(|e| io_error("create", &new, &e))?;
        let config = sled::Config::new().path(&new).cache_capacity(cache_bytes);
        let open_new = || {
            support::open(&config).map_err(|failure| match failure {
                support::OpenFailure::Locked => ReadModelError::Locked { path: new.clone() },
                support::OpenFailure::Failed(reason) => ReadModelError::Storage(reason),
            })
        };
        let db = open_new()?;
        let target = db.open_tree(TREE).map_err(storage)?;
        let mut entries = 0u64;
        let (mut batch, mut batched) = (sled::Batch::default(), 0usize);
        for item in source.tree().iter() {
            let (key, value) = item.map_err(storage)?;
            batched += key.len() + value.len();
            batch.insert(key, value);
            entries += 1;
            if batched >= BATCH_BYTES {
                target
                    .apply_batch(std::mem::take(&mut batch))
                    .map_err(storage)?;
                batched = 0;
            }
        }
        target.apply_batch(batch).map_err(storage)?;
        db.flush().map_err(storage)?;
        drop(target);
        support::close(db, &new);
        // Opened once more, so that sled writes its snapshot: sled 0.34 writes one only when
        // it opens a store, and without it the next open (the service's first start) reads
        // the whole file again (2.3 s of a 2.8 GB store at ten million events; 0.4 s after).
        support::close(open_new()?, &new);
        drop(source);
        let marker = new.join(COMPLETE);
        std::fs::File::create(&marker)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_error("write", &marker, &e))?;
        sync_parent(&marker)?;
        let old = beside(dir, "replaced")?;
        std::fs::rename(dir, &old).map_err(|e| io_error("rename", dir, &e))?;
        std::fs::rename(&new, dir).map_err(|e| io_error("rename", &new, &e))?;
        sync_parent(dir)?;
        recover(dir)?;
        Ok(Compaction {
            bytes_before,
            bytes_after: bytes_of(dir)?,
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Position;
    use crate::readmodel::{Changes, Namespace, ReadModelStore, Rows};

    fn scratch(name: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("civicflow-compact-{}-{name}", std::process::id()));
        for leftover in [
            path.clone(),
            beside(&path, "compacting").expect("a name"),
            beside(&path, "replaced").expect("a name"),
        ] {
            let _ = std::fs::remove_dir_all(leftover);
        }
        path
    }

    /// Everything a reader can see: each namespace's checkpoint and rows, and the active
    /// versions.
    fn contents(store: &SledReadModels) -> Vec<(Namespace, Option<Position>, Rows, Option<u32>)> {
        let mut all = Vec::new();
        for ns in store.namespaces().expect("namespaces") {
            let checkpoint = store.checkpoint(&ns).expect("checkpoint");
            let rows = store.scan(&ns, b"", None, usize::MAX).expect("scan");
            let active = store.active(ns.name()).expect("active");
            all.push((ns, checkpoint, rows, active));
        }
        all
    }

    /// A store whose pages were rewritten many times: two namespaces, 400 rows each, every
    /// row rewritten in each of 60 commits, some removed, one version active.
    fn fragmented(path: &Path) {
        let mut store = SledReadModels::open(path).expect("open");
        store.page_target = 256;
        for (name, version) in [("board", 1), ("inbox", 3)] {
            let ns = Namespace::new(name, version).expect("valid");
            for round in 1..=60u64 {
                let mut changes = Changes::new();
                for row in 0..400u32 {
                    let key = row.to_be_bytes().to_vec();
                    if round == 60 && row % 7 == 0 {
                        changes.delete(key);
                    } else {
                        changes.put(key, vec![u8::try_from(round).expect("small"); 120]);
                    }
                }
                store
                    .commit(&ns, changes, Position::new(round).expect("not zero"))
                    .expect("commit");
            }
        }
        store
            .activate(&Namespace::new("inbox", 3).expect("valid"))
            .expect("activate");
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("create");
        for entry in std::fs::read_dir(from).expect("read") {
            let entry = entry.expect("entry");
            let target = to.join(entry.file_name());
            if entry.file_type().expect("type").is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).expect("copy");
            }
        }
    }

    /// Guards against a compaction that loses or changes a row, a checkpoint or an active
    /// version, or that does not shrink what rewrites left behind.
    #[test]
    fn compaction_keeps_every_row_checkpoint_and_version_and_gives_back_the_rewrites() {
        let path = scratch("keeps");
        fragmented(&path);
        let before = contents(&SledReadModels::open(&path).expect("open"));
        assert_eq!(before.len(), 2);
        assert_eq!(before[0].2.len(), 400 - 58, "rows 0, 7, … 399 were removed");
        let done = SledReadModels::compact(&path, 4 << 20).expect("compact");
        assert_eq!(bytes_of(&path).expect("size"), done.bytes_after);
        // sled's snapshot is written (it writes one only on open): the service's first start
        // does not read the whole store again.
        let snapshots = std::fs::read_dir(&path)
            .expect("list")
            .filter(|entry| {
                entry
                    .as_ref()
                    .is_ok_and(|entry| entry.file_name().to_string_lossy().starts_with("snap."))
            })
            .count();
        assert_eq!(snapshots, 1, "sled's snapshot of the compacted store");
        let after = contents(&SledReadModels::open(&path).expect("open"));
        assert_eq!(after, before);
        assert!(
            done.bytes_after * 2 < done.bytes_before,
            "compaction kept most of the files: {done:?}"
        );
        assert!(!beside(&path, "compacting").expect("name").exists());
        assert!(!beside(&path, "replaced").expect("name").exists());
        assert!(!path.join(COMPLETE).exists());
        let _ = std::fs::remove_dir_all(&path);
    }

    /// Guards against a crash between the renames losing the store: with the old store
    /// renamed away and the new one complete beside it, the next open takes the new one.
    #[test]
    fn an_open_after_a_crash_between_the_renames_finds_the_complete_copy() {
        let path = scratch("swap");
        fragmented(&path);
        let before = contents(&SledReadModels::open(&path).expect("open"));
        let (new, old) = (
            beside(&path, "compacting").expect("name"),
            beside(&path, "replaced").expect("name"),
        );
        copy_dir(&path, &new);
        std::fs::File::create(new.join(COMPLETE)).expect("marker");
        std::fs::rename(&path, &old).expect("rename");
        let store = SledReadModels::open(&path).expect("open");
        assert_eq!(contents(&store), before);
        assert!(!new.exists() && !old.exists(), "leftovers removed");
        assert!(!path.join(COMPLETE).exists());
        drop(store);
        let _ = std::fs::remove_dir_all(&path);
    }

    /// Guards against an unfinished copy being taken for the store, or kept forever.
    #[test]
    fn an_unfinished_copy_is_dropped_and_the_old_store_kept() {
        let path = scratch("unfinished");
        fragmented(&path);
        let before = contents(&SledReadModels::open(&path).expect("open"));
        let new = beside(&path, "compacting").expect("name");
        std::fs::create_dir_all(&new).expect("create");
        std::fs::write(new.join("db"), b"half a copy").expect("write");
        let store = SledReadModels::open(&path).expect("open");
        assert_eq!(contents(&store), before);
        assert!(!new.exists());
        // A copy complete but with the old store still in place is not needed either.
        drop(store);
        copy_dir(&path, &new);
        std::fs::File::create(new.join(COMPLETE)).expect("marker");
        let store = SledReadModels::open(&path).expect("open");
        assert_eq!(contents(&store), before);
        assert!(!new.exists());
        drop(store);
        let _ = std::fs::remove_dir_all(&path);
    }

    /// Guards against compacting under a running service.
    #[test]
    fn a_store_in_use_is_not_compacted() {
        let path = scratch("in-use");
        fragmented(&path);
        let store = SledReadModels::open(&path).expect("open");
        let refused = SledReadModels::compact(&path, 4 << 20).expect_err("in use");
        assert!(
            matches!(refused, ReadModelError::Locked { .. }),
            "{refused:?}"
        );
        assert!(!beside(&path, "compacting").expect("name").exists());
        drop(store);
        let _ = std::fs::remove_dir_all(&path);
    }
}
