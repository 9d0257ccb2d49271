//! Storage for read models (projections), beside the log: keys and values in namespaces, each
//! namespace with a checkpoint written in the same atomic batch as its changes.
//!
//! A projection (crate `civicflow-projections`) folds log events into rows; this store keeps
//! its rows and the log position they reflect. Because a namespace's changes and its
//! checkpoint commit together, a crash at any moment leaves rows that reflect exactly the
//! events up to the checkpoint: the projection resumes after it and neither loses nor repeats
//! an event's effect.
//!
//! A namespace is a projection's name and version. Rebuilding a projection (a new version)
//! fills a new namespace while the active one keeps answering reads; [`ReadModelStore::activate`]
//! then switches the name to the new version in one write (blue/green), and the old namespace
//! is cleared.
//!
//! Read models are derived data: commits are not fsynced one by one (sled's flush is called by
//! [`ReadModelStore::flush`], and on close). A crash may take back the newest commits; the
//! checkpoint goes back with them, and the projection processes those events again.

use std::path::{Path, PathBuf};

use crate::ids::Position;
use crate::store::sled_support;

/// The format marker of a read-model store.
const FORMAT_KEY: &[u8] = b"Fformat";
const FORMAT_NAME: &str = "civicflow-readmodels/1";

/// Keyspaces (first byte): data rows, checkpoints, active versions.
const DATA: u8 = b'D';
const CHECKPOINT: u8 = b'C';
const ACTIVE: u8 = b'A';

/// A read-model store failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ReadModelError {
    /// Another handle holds the store.
    #[error("the read-model store at {path} is open elsewhere")]
    Locked {
        /// The directory.
        path: PathBuf,
    },
    /// The directory holds something else.
    #[error("{path} is not a civicflow read-model store (format {found:?})")]
    UnsupportedFormat {
        /// The directory.
        path: PathBuf,
        /// What it says it is.
        found: String,
    },
    /// A name is not acceptable.
    #[error("invalid namespace name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// Stored bytes do not decode.
    #[error("corrupted read-model store: {0}")]
    Corrupted(String),
    /// sled failed.
    #[error("read-model storage: {0}")]
    Storage(String),
}

fn storage(e: sled::Error) -> ReadModelError {
    ReadModelError::Storage(e.to_string())
}

/// A projection's name and version: where its rows live.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace {
    name: String,
    version: u32,
}

impl Namespace {
    /// A namespace; the name is 1 to 64 characters of `a-z 0-9 _ -`.
    ///
    /// # Errors
    /// [`ReadModelError::InvalidName`] otherwise.
    pub fn new(name: &str, version: u32) -> Result<Self, ReadModelError> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ok {
            return Err(ReadModelError::InvalidName {
                name: name.to_owned(),
                reason: "use 1 to 64 of a-z 0-9 _ -",
            });
        }
        Ok(Self {
            name: name.to_owned(),
            version,
        })
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// `kind | name | 0x00 | version (BE)`: the prefix of this namespace's keys of a kind.
    fn prefix(&self, kind: u8) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.name.len() + 6);
        key.push(kind);
        key.extend_from_slice(self.name.as_bytes());
        key.push(0);
        key.extend_from_slice(&self.version.to_be_bytes());
        key
    }

    fn data_key(&self, key: &[u8]) -> Vec<u8> {
        let mut full = self.prefix(DATA);
        full.extend_from_slice(key);
        full
    }
}

impl std::fmt::Display for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// Rows as read: key (without the namespace) and value.
pub type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Changes to one namespace, committed together with a checkpoint.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Changes {
    /// No changes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.push((key, Some(value)));
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.push((key, None));
    }

    /// How many writes.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

/// The read-model store.
pub struct ReadModelStore {
    path: PathBuf,
    /// `None` only while being dropped.
    sled: Option<Sled>,
}

struct Sled {
    db: sled::Db,
    tree: sled::Tree,
}

impl std::fmt::Debug for ReadModelStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadModelStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Drop for ReadModelStore {
    fn drop(&mut self) {
        if let Some(Sled { db, tree }) = self.sled.take() {
            drop(tree);
            let _ = db.flush();
            sled_support::close(db, &self.path);
        }
    }
}

impl ReadModelStore {
    /// Opens (or creates) the store in `dir`.
    ///
    /// # Errors
    /// [`ReadModelError::Locked`] when it is open elsewhere, [`ReadModelError::UnsupportedFormat`]
    /// for a directory that holds something else, [`ReadModelError::Storage`] otherwise.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, ReadModelError> {
        let path = dir.as_ref().to_owned();
        std::fs::create_dir_all(&path)
            .map_err(|e| ReadModelError::Storage(format!("create {}: {e}", path.display())))?;
        let config = sled::Config::new()
            .path(&path)
            .cache_capacity(128 * 1024 * 1024)
            .flush_every_ms(Some(1000));
        let db = match sled_support::open(&config) {
            Ok(db) => db,
            Err(sled_support::OpenFailure::Locked) => return Err(ReadModelError::Locked { path }),
            Err(sled_support::OpenFailure::Failed(reason)) => {
                return Err(ReadModelError::Storage(reason))
            }
        };
        let tree = db.open_tree("civicflow-readmodels").map_err(storage)?;
        match tree.get(FORMAT_KEY).map_err(storage)? {
            Some(found) if found.as_ref() == FORMAT_NAME.as_bytes() => {}
            Some(found) => {
                return Err(ReadModelError::UnsupportedFormat {
                    path,
                    found: String::from_utf8_lossy(&found).into_owned(),
                })
            }
            None if tree.first().map_err(storage)?.is_some() => {
                return Err(ReadModelError::UnsupportedFormat {
                    path,
                    found: "(no format marker)".into(),
                })
            }
            None => {
                tree.insert(FORMAT_KEY, FORMAT_NAME.as_bytes())
                    .map_err(storage)?;
            }
        }
        Ok(Self {
            path,
            sled: Some(Sled { db, tree }),
        })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn tree(&self) -> &sled::Tree {
        &self
            .sled
            .as_ref()
            .expect("the store is open until it is dropped")
            .tree
    }

    /// The position up to which `ns` reflects the log (`None`: nothing yet).
    ///
    /// # Errors
    /// [`ReadModelError`] when storage fails or the checkpoint does not decode.
    pub fn checkpoint(&self, ns: &Namespace) -> Result<Option<Position>, ReadModelError> {
        match self.tree().get(ns.prefix(CHECKPOINT)).map_err(storage)? {
            None => Ok(None),
            Some(bytes) => {
                let raw = <[u8; 8]>::try_from(bytes.as_ref()).map_err(|_| {
                    ReadModelError::Corrupted(format!(
                        "checkpoint of {ns} has {} bytes",
                        bytes.len()
                    ))
                })?;
                Ok(Position::new(u64::from_be_bytes(raw)))
            }
        }
    }

    /// Applies `changes` to `ns` and sets its checkpoint to `checkpoint`, atomically.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails (then nothing of it is applied).
    pub fn commit(
        &self,
        ns: &Namespace,
        changes: Changes,
        checkpoint: Position,
    ) -> Result<(), ReadModelError> {
        let mut batch = sled::Batch::default();
        for (key, value) in changes.writes {
            let key = ns.data_key(&key);
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        batch.insert(ns.prefix(CHECKPOINT), &checkpoint.get().to_be_bytes());
        self.tree().apply_batch(batch).map_err(storage)
    }

    /// A row of `ns`.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    pub fn get(&self, ns: &Namespace, key: &[u8]) -> Result<Option<Vec<u8>>, ReadModelError> {
        Ok(self
            .tree()
            .get(ns.data_key(key))
            .map_err(storage)?
            .map(|v| v.to_vec()))
    }

    /// Up to `limit` rows of `ns` whose keys start with `prefix`, from the first key after
    /// `after` (or from the start of the prefix), in key order. Keys are returned without the
    /// namespace. This is the basis of stable pagination: pass the last key seen as `after`.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    pub fn scan(
        &self,
        ns: &Namespace,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Rows, ReadModelError> {
        let base = ns.data_key(&[]);
        let full_prefix = ns.data_key(prefix);
        let start = match after {
            Some(after) => {
                let mut key = ns.data_key(after);
                key.push(0); // the first key strictly after `after`
                key
            }
            None => full_prefix.clone(),
        };
        let mut rows = Vec::new();
        for item in self.tree().range(start..) {
            if rows.len() >= limit {
                break;
            }
            let (key, value) = item.map_err(storage)?;
            if !key.starts_with(&full_prefix) {
                break;
            }
            rows.push((key[base.len()..].to_vec(), value.to_vec()));
        }
        Ok(rows)
    }

    /// Up to `limit` rows of `ns` whose keys start with `prefix`, backwards from the last key
    /// before `before` (or from the end of the prefix).
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    pub fn scan_back(
        &self,
        ns: &Namespace,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Rows, ReadModelError> {
        let base = ns.data_key(&[]);
        let full_prefix = ns.data_key(prefix);
        let iter = match before {
            Some(before) => self.tree().range(full_prefix.clone()..ns.data_key(before)),
            None => self.tree().scan_prefix(full_prefix.clone()),
        };
        let mut rows = Vec::new();
        for item in iter.rev() {
            if rows.len() >= limit {
                break;
            }
            let (key, value) = item.map_err(storage)?;
            if !key.starts_with(&full_prefix) {
                break;
            }
            rows.push((key[base.len()..].to_vec(), value.to_vec()));
        }
        Ok(rows)
    }

    /// The version a projection name answers reads with (`None`: none yet).
    ///
    /// # Errors
    /// [`ReadModelError`] when storage fails or the value does not decode.
    pub fn active(&self, name: &str) -> Result<Option<u32>, ReadModelError> {
        let key = active_key(name)?;
        match self.tree().get(key).map_err(storage)? {
            None => Ok(None),
            Some(bytes) => <[u8; 4]>::try_from(bytes.as_ref())
                .map(|raw| Some(u32::from_be_bytes(raw)))
                .map_err(|_| ReadModelError::Corrupted(format!("active version of {name}"))),
        }
    }

    /// Makes `ns` the version its name answers reads with, in one write.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    pub fn activate(&self, ns: &Namespace) -> Result<(), ReadModelError> {
        self.tree()
            .insert(active_key(&ns.name)?, &ns.version.to_be_bytes())
            .map_err(storage)?;
        Ok(())
    }

    /// Removes every row and the checkpoint of `ns` (an old version after a switch, or a
    /// rebuild starting over). Rows go in batches, so a crash midway leaves a namespace that
    /// is simply cleared again.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    pub fn clear(&self, ns: &Namespace) -> Result<(), ReadModelError> {
        let prefix = ns.prefix(DATA);
        loop {
            let mut batch = sled::Batch::default();
            let mut count = 0;
            for item in self.tree().scan_prefix(&prefix).keys().take(4096) {
                batch.remove(item.map_err(storage)?);
                count += 1;
            }
            if count == 0 {
                break;
            }
            self.tree().apply_batch(batch).map_err(storage)?;
        }
        self.tree().remove(ns.prefix(CHECKPOINT)).map_err(storage)?;
        Ok(())
    }

    /// Every namespace that has a checkpoint (finished or half-built versions).
    ///
    /// # Errors
    /// [`ReadModelError`] when storage fails.
    pub fn namespaces(&self) -> Result<Vec<Namespace>, ReadModelError> {
        let mut out = Vec::new();
        for item in self.tree().scan_prefix([CHECKPOINT]).keys() {
            let key = item.map_err(storage)?;
            let rest = &key[1..];
            let zero = rest
                .iter()
                .position(|b| *b == 0)
                .ok_or_else(|| ReadModelError::Corrupted("checkpoint key".into()))?;
            let name = std::str::from_utf8(&rest[..zero])
                .map_err(|_| ReadModelError::Corrupted("checkpoint key".into()))?;
            let version = <[u8; 4]>::try_from(&rest[zero + 1..])
                .map(u32::from_be_bytes)
                .map_err(|_| ReadModelError::Corrupted("checkpoint key".into()))?;
            out.push(Namespace::new(name, version)?);
        }
        Ok(out)
    }

    /// Flushes sled's buffers to the file (read models are not fsynced per commit).
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    pub fn flush(&self) -> Result<(), ReadModelError> {
        if let Some(sled) = &self.sled {
            sled.db.flush().map_err(storage)?;
        }
        Ok(())
    }
}

fn active_key(name: &str) -> Result<Vec<u8>, ReadModelError> {
    Namespace::new(name, 0)?;
    let mut key = vec![ACTIVE];
    key.extend_from_slice(name.as_bytes());
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("civicflow-readmodel-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        path
    }

    #[test]
    fn changes_and_checkpoint_commit_together_and_scan_in_order() {
        let path = scratch("commit");
        let store = ReadModelStore::open(&path).expect("open");
        let ns = Namespace::new("board", 1).expect("valid");
        assert_eq!(store.checkpoint(&ns).expect("read"), None);
        let mut changes = Changes::new();
        for i in [3u8, 1, 2] {
            changes.put(vec![b'r', i], vec![i; 3]);
        }
        store
            .commit(&ns, changes, Position::new(7).expect("nz"))
            .expect("commit");
        assert_eq!(store.checkpoint(&ns).expect("read"), Position::new(7));
        let rows = store.scan(&ns, b"r", None, 10).expect("scan");
        assert_eq!(
            rows.iter().map(|(k, _)| k[1]).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        let after = store.scan(&ns, b"r", Some(&[b'r', 1]), 10).expect("scan");
        assert_eq!(after.iter().map(|(k, _)| k[1]).collect::<Vec<_>>(), [2, 3]);
        let back = store
            .scan_back(&ns, b"r", Some(&[b'r', 3]), 10)
            .expect("scan");
        assert_eq!(back.iter().map(|(k, _)| k[1]).collect::<Vec<_>>(), [2, 1]);
        // Another version of the same name is another world.
        let v2 = Namespace::new("board", 2).expect("valid");
        assert!(store.scan(&v2, b"", None, 10).expect("scan").is_empty());
        store.activate(&ns).expect("activate");
        assert_eq!(store.active("board").expect("read"), Some(1));
        assert_eq!(store.namespaces().expect("list"), vec![ns.clone()]);
        store.clear(&ns).expect("clear");
        assert!(store.scan(&ns, b"", None, 10).expect("scan").is_empty());
        assert_eq!(store.checkpoint(&ns).expect("read"), None);
        drop(store);
        let _ = std::fs::remove_dir_all(&path);
    }

    #[test]
    fn names_are_checked() {
        assert!(Namespace::new("Case Board", 1).is_err());
        assert!(Namespace::new("", 1).is_err());
        assert!(Namespace::new("case_board", 1).is_ok());
    }
}
