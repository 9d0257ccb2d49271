//! The embedded vault store's data: its own sled database in `DIR/data/`, one tree
//! (`civicflow-vault`).
//!
//! It holds only what is useless without the key file: ciphertexts, and the ids of erased
//! people. sled keeps deleted values in old segments until it collects them, which is
//! harmless here because the keys that open them are gone (the keys are in the slot file,
//! `keyfile.rs`, for exactly that reason).
//!
//! ```text
//!  'F'                      -> "civicflow-vault/1"     format marker
//!  'D' | person id (16 B)   -> data record             fmt=1 | nonce | ciphertext (crypto.rs)
//!  'X' | person id (16 B)   -> fmt=1                   the person was erased (kept forever)
//! ```

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::vault::{sync_dir, PersonId, VaultError};

/// The data store's directory inside the vault's.
pub(super) const DIR_NAME: &str = "data";
const TREE: &str = "civicflow-vault";
const FORMAT_KEY: &[u8] = b"F";
/// The format marker this build reads and writes.
const FORMAT_NAME: &str = "civicflow-vault/1";
const RECORD: u8 = b'D';
const ERASED: u8 = b'X';
const ERASED_VALUE: [u8; 1] = [1];
/// Small values only: no node comes near sled's blob threshold (a quarter of a segment).
const SEGMENT_BYTES: usize = 8 * 1024 * 1024;
const CACHE_BYTES: u64 = 16 * 1024 * 1024;

fn key(prefix: u8, person: PersonId) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = prefix;
    key[1..].copy_from_slice(person.as_bytes());
    key
}

struct Sled {
    db: sled::Db,
    tree: sled::Tree,
}

pub(super) struct DataStore {
    path: PathBuf,
    /// `None` only while being dropped.
    sled: Option<Sled>,
    /// sled's data file, opened again to `fdatasync` it after sled's flush (sled's own flush
    /// ends in `sync_file_range`, sled #1452).
    data_file: File,
}

impl std::fmt::Debug for DataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataStore")
            .field("path", &self.path)
            .finish()
    }
}

impl DataStore {
    /// Opens (or creates) the data store in `path`.
    pub(super) fn open(path: &Path) -> Result<Self, VaultError> {
        let storage = |reason: String| VaultError::Storage {
            path: path.to_owned(),
            reason,
        };
        let existed = path.join("db").exists();
        crate::private_fs::create_dir_all(path).map_err(|e| VaultError::io("create", path, e))?;
        let config = sled::Config::new()
            .path(path)
            .segment_size(SEGMENT_BYTES)
            .cache_capacity(CACHE_BYTES)
            .flush_every_ms(None);
        let db = match crate::sled::support::open(&config) {
            Ok(db) => db,
            Err(crate::sled::support::OpenFailure::Locked) => {
                return Err(VaultError::Locked {
                    path: path.parent().unwrap_or(path).to_owned(),
                })
            }
            Err(crate::sled::support::OpenFailure::Failed(reason)) => return Err(storage(reason)),
        };
        // A closed vault's files damaged so that sled drops its newest writes would make the
        // people stored last read as never stored: refuse that instead.
        crate::sled::support::check_clean_close(&db, path).map_err(storage)?;
        let tree = db.open_tree(TREE).map_err(|e| storage(e.to_string()))?;
        match tree.get(FORMAT_KEY).map_err(|e| storage(e.to_string()))? {
            Some(found) if found.as_ref() == FORMAT_NAME.as_bytes() => {}
            Some(found) => {
                return Err(VaultError::UnsupportedFormat {
                    path: path.to_owned(),
                    found: String::from_utf8_lossy(&found).into_owned(),
                    expected: FORMAT_NAME,
                })
            }
            None if tree.first().map_err(|e| storage(e.to_string()))?.is_some() => {
                return Err(VaultError::UnsupportedFormat {
                    path: path.to_owned(),
                    found: "(no format marker)".into(),
                    expected: FORMAT_NAME,
                })
            }
            None => {
                tree.insert(FORMAT_KEY, FORMAT_NAME.as_bytes())
                    .map_err(|e| storage(e.to_string()))?;
            }
        }
        let data_file = std::fs::OpenOptions::new()
            .write(true)
            .open(path.join("db"))
            .map_err(|e| VaultError::io("open", path.join("db"), e))?;
        let store = Self {
            path: path.to_owned(),
            sled: Some(Sled { db, tree }),
            data_file,
        };
        store.sync()?;
        if !existed {
            sync_dir(path).map_err(|e| VaultError::io("sync", path, e))?;
        }
        Ok(store)
    }

    fn sled(&self) -> Result<&Sled, VaultError> {
        self.sled.as_ref().ok_or_else(|| VaultError::Storage {
            path: self.path.clone(),
            reason: "the data store is closed".into(),
        })
    }

    fn storage(&self, error: &sled::Error) -> VaultError {
        VaultError::Storage {
            path: self.path.clone(),
            reason: crate::sled::support::describe(error),
        }
    }

    /// sled's flush, then `fdatasync` of its data file.
    pub(super) fn sync(&self) -> Result<(), VaultError> {
        let sled = self.sled()?;
        sled.db.flush().map_err(|e| self.storage(&e))?;
        self.data_file
            .sync_data()
            .map_err(|e| VaultError::io("sync", self.path.join("db"), e))
    }

    /// The person's data record, if any.
    pub(super) fn record(&self, person: PersonId) -> Result<Option<Vec<u8>>, VaultError> {
        let value = self
            .sled()?
            .tree
            .get(key(RECORD, person))
            .map_err(|e| self.storage(&e))?;
        Ok(value.map(|v| v.to_vec()))
    }

    /// Whether the person has a data record.
    pub(super) fn has_record(&self, person: PersonId) -> Result<bool, VaultError> {
        self.sled()?
            .tree
            .contains_key(key(RECORD, person))
            .map_err(|e| self.storage(&e))
    }

    /// Stores (or replaces) the person's data record; durable when it returns.
    pub(super) fn put_record(&self, person: PersonId, record: &[u8]) -> Result<(), VaultError> {
        self.sled()?
            .tree
            .insert(key(RECORD, person), record)
            .map_err(|e| self.storage(&e))?;
        self.sync()
    }

    /// Whether the person was erased.
    pub(super) fn is_erased(&self, person: PersonId) -> Result<bool, VaultError> {
        self.sled()?
            .tree
            .contains_key(key(ERASED, person))
            .map_err(|e| self.storage(&e))
    }

    /// Marks the person erased and removes their record, atomically; durable when it
    /// returns.
    pub(super) fn mark_erased(&self, person: PersonId) -> Result<(), VaultError> {
        let mut batch = sled::Batch::default();
        batch.insert(key(ERASED, person).to_vec(), ERASED_VALUE.to_vec());
        batch.remove(key(RECORD, person).to_vec());
        self.sled()?
            .tree
            .apply_batch(batch)
            .map_err(|e| self.storage(&e))?;
        self.sync()
    }

    /// Every erased person (to finish erasures a crash interrupted, or to re-apply them to
    /// a key file restored from a backup).
    pub(super) fn erased(&self) -> Result<Vec<PersonId>, VaultError> {
        let mut people = Vec::new();
        for item in self.sled()?.tree.scan_prefix([ERASED]) {
            let (k, _) = item.map_err(|e| self.storage(&e))?;
            let id: [u8; 16] = k
                .get(1..)
                .and_then(|id| id.try_into().ok())
                .ok_or_else(|| VaultError::Storage {
                    path: self.path.clone(),
                    reason: "an erasure marker has a malformed key".into(),
                })?;
            people.push(PersonId::from_bytes(id));
        }
        Ok(people)
    }

    /// Whether any person has a record or was erased (that is, the store is in use).
    pub(super) fn holds_people(&self) -> Result<bool, VaultError> {
        let tree = &self.sled()?.tree;
        for prefix in [RECORD, ERASED] {
            if tree
                .scan_prefix([prefix])
                .next()
                .transpose()
                .map_err(|e| self.storage(&e))?
                .is_some()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Drop for DataStore {
    fn drop(&mut self) {
        if let Some(Sled { db, tree }) = self.sled.take() {
            drop(tree);
            crate::sled::support::close_recording_contents(db, &self.path);
        }
    }
}
