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
//! Read models are derived data: commits need not be synced one by one ([`ReadModelStore::flush`]
//! and closing do that). A crash may take back the newest commits; the checkpoint goes back
//! with them, and the projection processes those events again.
//!
//! [`ReadModelStore`] is the seam: the projections hold an `Arc<dyn ReadModelStore>`. The
//! embedded implementation is the crate's `SledReadModels` (rows packed in pages, decision
//! record 0006). Read models stay local to each service instance whatever the log's backend.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::ids::Position;

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
    /// Changes given as sorted are not.
    #[error("changes out of key order at index {index}")]
    Unsorted {
        /// The first change out of order.
        index: usize,
    },
    /// Stored bytes do not decode.
    #[error("corrupted read-model store: {0}")]
    Corrupted(String),
    /// The storage underneath failed.
    #[error("read-model storage: {0}")]
    Storage(String),
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

    /// `kind | name | 0x00 | version (BE)`: a prefix that tells this namespace's keys of a
    /// kind apart from every other namespace's (for backends that keep all in one keyspace).
    pub fn prefix(&self, kind: u8) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.name.len() + 6);
        key.push(kind);
        key.extend_from_slice(self.name.as_bytes());
        key.push(0);
        key.extend_from_slice(&self.version.to_be_bytes());
        key
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
///
/// Of several changes to one key, the last counts.
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

/// Where read models keep their rows: namespaces of ordered keys, each committed atomically
/// together with the log position it reflects.
///
/// Every implementation keeps: a commit's changes and its checkpoint are visible together or
/// not at all; a namespace has one writer at a time (its projection), while reads go on; a
/// scan that runs during commits sees each row either as it was or as it is, never twice;
/// keys come back in byte order.
pub trait ReadModelStore: Send + Sync + fmt::Debug {
    /// The position up to which `ns` reflects the log (`None`: nothing yet).
    ///
    /// # Errors
    /// [`ReadModelError`] when storage fails or the checkpoint does not decode.
    fn checkpoint(&self, ns: &Namespace) -> Result<Option<Position>, ReadModelError>;

    /// Applies changes in strictly increasing key order (`None` removes) to `ns` and sets its
    /// checkpoint, atomically. The changes are borrowed: nothing need be copied but into
    /// what is written.
    ///
    /// # Errors
    /// [`ReadModelError::Unsorted`] when the keys are not in strictly increasing order (then
    /// nothing is applied); [`ReadModelError::Storage`], [`ReadModelError::Corrupted`].
    fn commit_sorted(
        &self,
        ns: &Namespace,
        changes: &[(&[u8], Option<&[u8]>)],
        checkpoint: Position,
    ) -> Result<(), ReadModelError>;

    /// Applies `changes` to `ns` and sets its checkpoint to `checkpoint`, atomically. Of
    /// several changes to one key, the last counts.
    ///
    /// # Errors
    /// As [`ReadModelStore::commit_sorted`].
    fn commit(
        &self,
        ns: &Namespace,
        changes: Changes,
        checkpoint: Position,
    ) -> Result<(), ReadModelError> {
        let mut writes = changes.writes;
        if !writes.windows(2).all(|w| w[0].0 < w[1].0) {
            let last: BTreeMap<Vec<u8>, Option<Vec<u8>>> = writes.into_iter().collect();
            writes = last.into_iter().collect();
        }
        let sorted: Vec<(&[u8], Option<&[u8]>)> = writes
            .iter()
            .map(|(key, value)| (key.as_slice(), value.as_deref()))
            .collect();
        self.commit_sorted(ns, &sorted, checkpoint)
    }

    /// A row of `ns`.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`], [`ReadModelError::Corrupted`].
    fn get(&self, ns: &Namespace, key: &[u8]) -> Result<Option<Vec<u8>>, ReadModelError>;

    /// Up to `limit` rows of `ns` whose keys start with `prefix`, from the first key after
    /// `after` (or from the start of the prefix), in key order. Keys are returned without the
    /// namespace. This is the basis of stable pagination: pass the last key seen as `after`.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`], [`ReadModelError::Corrupted`].
    fn scan(
        &self,
        ns: &Namespace,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Rows, ReadModelError>;

    /// Up to `limit` rows of `ns` whose keys start with `prefix`, backwards from the last key
    /// before `before` (or from the end of the prefix).
    ///
    /// # Errors
    /// As [`ReadModelStore::scan`].
    fn scan_back(
        &self,
        ns: &Namespace,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Rows, ReadModelError>;

    /// The version a projection name answers reads with (`None`: none yet).
    ///
    /// # Errors
    /// [`ReadModelError`] when storage fails or the value does not decode.
    fn active(&self, name: &str) -> Result<Option<u32>, ReadModelError>;

    /// Makes `ns` the version its name answers reads with, in one write.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`].
    fn activate(&self, ns: &Namespace) -> Result<(), ReadModelError>;

    /// Removes every row and the checkpoint of `ns` (an old version after a switch, or a
    /// rebuild starting over). A crash midway leaves a namespace that is simply cleared again.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`].
    fn clear(&self, ns: &Namespace) -> Result<(), ReadModelError>;

    /// Every namespace that has a checkpoint (finished or half-built versions).
    ///
    /// # Errors
    /// [`ReadModelError`] when storage fails.
    fn namespaces(&self) -> Result<Vec<Namespace>, ReadModelError>;

    /// Makes the commits so far durable (they need not be, one by one).
    ///
    /// # Errors
    /// [`ReadModelError::Storage`].
    fn flush(&self) -> Result<(), ReadModelError>;
}

/// A shared store is a store: `&Arc<SledReadModels>` passes where `&dyn ReadModelStore` is
/// asked.
impl<T: ReadModelStore + ?Sized> ReadModelStore for std::sync::Arc<T> {
    fn checkpoint(&self, ns: &Namespace) -> Result<Option<Position>, ReadModelError> {
        (**self).checkpoint(ns)
    }
    fn commit_sorted(
        &self,
        ns: &Namespace,
        changes: &[(&[u8], Option<&[u8]>)],
        checkpoint: Position,
    ) -> Result<(), ReadModelError> {
        (**self).commit_sorted(ns, changes, checkpoint)
    }
    fn get(&self, ns: &Namespace, key: &[u8]) -> Result<Option<Vec<u8>>, ReadModelError> {
        (**self).get(ns, key)
    }
    fn scan(
        &self,
        ns: &Namespace,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Rows, ReadModelError> {
        (**self).scan(ns, prefix, after, limit)
    }
    fn scan_back(
        &self,
        ns: &Namespace,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Rows, ReadModelError> {
        (**self).scan_back(ns, prefix, before, limit)
    }
    fn active(&self, name: &str) -> Result<Option<u32>, ReadModelError> {
        (**self).active(name)
    }
    fn activate(&self, ns: &Namespace) -> Result<(), ReadModelError> {
        (**self).activate(ns)
    }
    fn clear(&self, ns: &Namespace) -> Result<(), ReadModelError> {
        (**self).clear(ns)
    }
    fn namespaces(&self) -> Result<Vec<Namespace>, ReadModelError> {
        (**self).namespaces()
    }
    fn flush(&self) -> Result<(), ReadModelError> {
        (**self).flush()
    }
}
