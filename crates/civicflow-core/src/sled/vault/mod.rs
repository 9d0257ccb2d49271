//! [`SledVaultStore`]: the vault's embedded store ([`VaultStore`]), in one directory:
//!
//! ```text
//! DIR/keys.bin   the wrapped person keys and phone tags, fixed-size slots (keyfile.rs)
//! DIR/data/      a sled database: ciphertexts and erasure markers (data.rs)
//! ```
//!
//! Why two files: destroying a key must leave no copy behind
//! ([`VaultStore::destroy_key`]), and sled is log-structured: a removed value stays in old
//! segments of its files until its garbage collection gets to it, at a time we do not
//! control. So the keys live in a file of fixed-size slots that erasing overwrites in place
//! and syncs; the ciphertexts, which are noise without their keys, live in sled.
//!
//! Also here: [`Vault::open`], the vault on this store in a directory.

mod data;
mod keyfile;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use crate::vault::{
    MasterKey, PersonId, Vault, VaultError, VaultStore, WrappedKey, CHECK_VALUE_LEN,
};
use data::DataStore;
use keyfile::KeyFile;

/// The vault's store on local files: the key file `DIR/keys.bin` beside a sled database
/// of the vault's own in `DIR/data/` (the module's documentation says why two).
///
/// Opening locks the key file: a second store on the same directory, in this process or
/// another, fails with [`VaultError::Locked`]. Opening checks no master key; binding does
/// ([`VaultStore::bind`], which [`Vault::with_store`] calls), and nothing is written before it
/// succeeded. Every change is synced before it returns.
///
/// ```
/// use civicflow_core::vault::{MasterKey, Vault};
/// use civicflow_core::SledVaultStore;
///
/// let dir = std::env::temp_dir().join(format!("civicflow-vault-store-doc-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// let vault = Vault::with_store(SledVaultStore::open(&dir)?, MasterKey::generate()?)?;
/// assert!(vault.is_empty()?);
/// # vault.close()?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SledVaultStore {
    dir: PathBuf,
    // Field order is drop order: sled lets go of its files first (leaving its clean-close
    // fingerprint), then the key file's lock goes, so whoever takes the lock next can open
    // both.
    /// The data store, opened when the store is bound.
    data: OnceLock<DataStore>,
    /// The key file; `None` until a new store is bound and creates it.
    keys: Mutex<Option<KeyFile>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl std::fmt::Debug for SledVaultStore {
    // Where, and how many keys: never the slots or the phone-tag index.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledVaultStore")
            .field("dir", &self.dir)
            .field("bound", &self.data.get().is_some())
            .field("keys", &lock(&self.keys).as_ref().map_or(0, KeyFile::len))
            .finish_non_exhaustive()
    }
}

impl SledVaultStore {
    /// Opens the store in `dir`, creating the directory when missing. An existing key file
    /// is locked and read (its format checked, every slot decoded); the data store is
    /// opened, and a new key file created, when the store is bound.
    ///
    /// # Errors
    /// [`VaultError::Locked`] when another store has the key file;
    /// [`VaultError::DamagedKeyFile`], [`VaultError::UnsupportedFormat`], [`VaultError::Io`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, VaultError> {
        let dir = dir.as_ref().to_owned();
        crate::private_fs::create_dir_all(&dir).map_err(|e| VaultError::io("create", &dir, e))?;
        // The key file of a store made before files were owner-only.
        crate::private_fs::tighten(&dir).map_err(|e| VaultError::io("restrict", &dir, e))?;
        let key_path = dir.join(keyfile::FILE_NAME);
        let keys = if exists(&key_path)? {
            Some(KeyFile::open(&dir)?)
        } else {
            None
        };
        Ok(Self {
            dir,
            data: OnceLock::new(),
            keys: Mutex::new(keys),
        })
    }

    /// The directory the store is in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn not_bound(&self) -> VaultError {
        VaultError::Storage {
            path: self.dir.clone(),
            reason: "the store is not bound to a master key yet (Vault::with_store binds it)"
                .into(),
        }
    }

    fn data(&self) -> Result<&DataStore, VaultError> {
        self.data.get().ok_or_else(|| self.not_bound())
    }

    /// Runs `f` on the key file of a bound store.
    fn with_keys<T>(
        &self,
        f: impl FnOnce(&mut KeyFile) -> Result<T, VaultError>,
    ) -> Result<T, VaultError> {
        let mut keys = lock(&self.keys);
        match keys.as_mut() {
            Some(key_file) if self.data.get().is_some() => f(key_file),
            _ => Err(self.not_bound()),
        }
    }
}

fn exists(path: &Path) -> Result<bool, VaultError> {
    path.try_exists()
        .map_err(|e| VaultError::io("inspect", path, e))
}

impl VaultStore for SledVaultStore {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    /// An existing key file's header must hold `check`; then half-erased slots are zeroed
    /// and the data store is opened (which checks it against its clean-close fingerprint).
    /// Without a key file, the data store must hold no one ([`VaultError::KeyFileMissing`]
    /// otherwise: a new key file would make every record unreadable), and a key file
    /// holding `check` is created durably.
    fn bind(&self, check: &[u8; CHECK_VALUE_LEN]) -> Result<(), VaultError> {
        let mut keys = lock(&self.keys);
        if self.data.get().is_some() {
            // Bound already: only the same master key is accepted again.
            return match keys.as_mut() {
                Some(key_file) => key_file.bind(check),
                None => Err(self.not_bound()),
            };
        }
        let data_path = self.dir.join(data::DIR_NAME);
        let data = match keys.as_mut() {
            Some(key_file) => {
                // The master key is checked before anything is written.
                key_file.bind(check)?;
                DataStore::open(&data_path)?
            }
            None => {
                let data = DataStore::open(&data_path)?;
                if data.holds_people()? {
                    return Err(VaultError::KeyFileMissing {
                        path: self.dir.clone(),
                    });
                }
                KeyFile::create(&self.dir, check)?;
                let mut key_file = KeyFile::open(&self.dir)?;
                key_file.bind(check)?;
                *keys = Some(key_file);
                data
            }
        };
        // Holding the key-file lock, no other bind can have set it.
        if self.data.set(data).is_err() {
            return Err(VaultError::Storage {
                path: self.dir.clone(),
                reason: "the store was bound twice at once".into(),
            });
        }
        Ok(())
    }

    fn key(&self, person: PersonId) -> Result<Option<WrappedKey>, VaultError> {
        self.with_keys(|keys| keys.get(person))
    }

    /// Writes the person's slot (their own, or a free one) and `fdatasync`s the key file.
    fn put_key(&self, key: &WrappedKey) -> Result<(), VaultError> {
        self.with_keys(|keys| keys.put(key))
    }

    /// Overwrites the person's slot with zeros in place (the key bytes first, then the whole
    /// slot, each followed by `fdatasync`): no copy is left in the file.
    fn destroy_key(&self, person: PersonId) -> Result<bool, VaultError> {
        self.with_keys(|keys| keys.erase(person))
    }

    fn find_by_phone_tag(
        &self,
        tag: &[u8; WrappedKey::PHONE_TAG_LEN],
    ) -> Result<Vec<PersonId>, VaultError> {
        self.with_keys(|keys| Ok(keys.find(tag)))
    }

    fn key_count(&self) -> Result<usize, VaultError> {
        self.with_keys(|keys| Ok(keys.len()))
    }

    fn record(&self, person: PersonId) -> Result<Option<Vec<u8>>, VaultError> {
        self.data()?.record(person)
    }

    /// Inserts the record, flushes sled and `fdatasync`s its data file.
    fn put_record(&self, person: PersonId, record: &[u8]) -> Result<(), VaultError> {
        self.data()?.put_record(person, record)
    }

    fn has_record(&self, person: PersonId) -> Result<bool, VaultError> {
        self.data()?.has_record(person)
    }

    /// One sled batch (marker in, record out), flushed and synced.
    fn mark_erased(&self, person: PersonId) -> Result<(), VaultError> {
        self.data()?.mark_erased(person)
    }

    fn is_erased(&self, person: PersonId) -> Result<bool, VaultError> {
        self.data()?.is_erased(person)
    }

    fn erased(&self) -> Result<Vec<PersonId>, VaultError> {
        self.data()?.erased()
    }

    fn holds_people(&self) -> Result<bool, VaultError> {
        self.data()?.holds_people()
    }

    /// sled's flush, then `fdatasync` of its data file (the key file is synced on every
    /// write). Dropping the store closes sled, leaving the fingerprint of its contents that
    /// the next open checks, then unlocks the key file.
    fn sync(&self) -> Result<(), VaultError> {
        self.data()?.sync()
    }
}

impl Vault {
    /// Opens the vault in `dir` on the embedded store ([`SledVaultStore`]), creating it when
    /// the directory holds none.
    ///
    /// A new vault's key file records a check value of `master`; every later open must
    /// present the same master key. Opening also finishes erasures that a crash interrupted
    /// and re-applies erasures to a key file restored from a backup older than them.
    ///
    /// # Errors
    /// [`VaultError::WrongMasterKey`], [`VaultError::Locked`],
    /// [`VaultError::DamagedKeyFile`], [`VaultError::KeyFileMissing`] (data but no key file),
    /// [`VaultError::UnsupportedFormat`], [`VaultError::Storage`], [`VaultError::Io`].
    pub fn open(dir: impl AsRef<Path>, master: MasterKey) -> Result<Self, VaultError> {
        Self::with_store(SledVaultStore::open(dir)?, master)
    }
}
