//! The personal-data vault: requesters' contact details, kept out of the event log and
//! encrypted with a key of each person's own, so that erasing a person (crypto-shredding)
//! destroys their key and leaves the log and its hash chain untouched.
//!
//! - Events carry a [`PersonId`] and nothing else about the person. Their
//!   [`ContactDetails`] (name, phone, e-mail, address) live in the [`Vault`].
//! - Each person has a random 256-bit data key. Their details are encrypted with it
//!   (XChaCha20-Poly1305, random nonce, the person id as associated data).
//! - Data keys are stored only *wrapped* with a key derived from the [`MasterKey`].
//!   [`Vault::erase`] marks the person erased and has the store destroy their key for good
//!   before returning; their ciphertext can then never be decrypted again.
//! - [`Vault::find_by_phone`] goes through an HMAC-SHA-256 keyed with a secret derived from
//!   the master key (never a plain hash, which anyone could compute for every number).
//!   The tags are stored with the keys, so erasing a person removes their tag as well.
//! - Display goes through [`mask`] unless the caller's role may see the details; the engine
//!   decides that and records every unmasked view as an event (`docs/engine.md`).
//!
//! Storage is behind [`VaultStore`] (`store.rs`: what a backend keeps and must guarantee);
//! everything else (the cryptography, the search tags, the per-person locks, refusing writes
//! after a failed one) is here, the same for every backend. [`Vault::with_store`] opens a
//! vault on any store; [`Vault::open`] on the embedded one in a directory (the crate's
//! `SledVaultStore`: the wrapped keys in a file of fixed-size slots, `DIR/keys.bin`,
//! overwritten in place on erasure; the ciphertexts in a database of the vault's own,
//! `DIR/data/`).
//!
//! The formats and the reasons, including what erasing cannot guarantee (SSDs, journals,
//! backups) and where the master key lives: `docs/decisions/0004-personal-data.md`.
//!
//! ```
//! use civicflow_core::vault::{ContactDetails, MasterKey, PersonData, PersonId, Vault};
//! use civicflow_core::Timestamp;
//!
//! let dir = std::env::temp_dir().join(format!("civicflow-vault-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let vault = Vault::open(&dir, MasterKey::generate()?)?;
//! let person = PersonId::new_v7(Timestamp::from_unix_seconds(1_767_225_600));
//! let details = ContactDetails::default().with_name("李伟")?.with_phone("138 1234 5678")?;
//!
//! vault.store(person, &details)?;
//! assert_eq!(vault.find_by_phone("+86 138-1234-5678")?, vec![person]);
//! let PersonData::Present(read) = vault.read(person)? else { panic!("stored") };
//! assert_eq!(read.masked().name.as_deref(), Some("李*"));
//!
//! vault.erase(person)?;
//! assert_eq!(vault.read(person)?, PersonData::Erased);
//! assert!(vault.find_by_phone("13812345678")?.is_empty());
//! # vault.close()?;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod contact;
mod crypto;
mod error;
mod master_key;
mod person;
mod store;
#[cfg(test)]
pub(crate) mod tests;

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

pub use contact::{
    mask, normalize_phone, ContactDetails, MaskedContact, ADDRESS_MAX_CHARS, EMAIL_MAX_CHARS,
    NAME_MAX_CHARS, PHONE_MAX_DIGITS, PHONE_MIN_DIGITS,
};
pub use error::{InvalidContact, VaultError};
pub use master_key::MasterKey;
pub use person::PersonId;
pub use store::{VaultStore, WrappedKey, CHECK_VALUE_LEN};

// For the backends in this crate (`SledVaultStore`, and later ones): checking a master key's
// check value and syncing directories are theirs to do, with the vault's own helpers.
pub(crate) use crypto::constant_time_eq;
pub(crate) use master_key::sync_dir;

use crypto::{Secret32, VaultKeys, PHONE_TAG_LEN};

/// What the vault holds for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersonData {
    /// Their contact details, decrypted.
    Present(ContactDetails),
    /// They were erased: their key is destroyed and their data unreadable.
    Erased,
    /// The vault has never stored anything for them.
    Unknown,
}

impl PersonData {
    /// The details, when present.
    pub fn details(&self) -> Option<&ContactDetails> {
        match self {
            Self::Present(details) => Some(details),
            Self::Erased | Self::Unknown => None,
        }
    }

    /// The masked details, when present (see [`mask`]).
    pub fn masked(&self) -> Option<MaskedContact> {
        self.details().map(mask)
    }
}

/// How many locks the people are spread over: operations on one person are serialised,
/// operations on different people mostly are not.
const STRIPES: usize = 64;

/// The personal-data vault over a [`VaultStore`]: [`Vault::open`] for the embedded store in a
/// directory, [`Vault::with_store`] for any other.
///
/// `Send + Sync`: share it with an `Arc`. One vault at a time per store: the embedded store
/// is locked, and a second open fails with [`VaultError::Locked`]. Every write is durable
/// before it returns.
pub struct Vault {
    storage: Box<dyn VaultStore>,
    keys: VaultKeys,
    stripes: Vec<RwLock<()>>,
    poison: Mutex<Option<String>>,
}

impl std::fmt::Debug for Vault {
    // The store's own `Debug` (where it is, how many keys), never key material: `VaultKeys`
    // is left out on purpose.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Vault {
    /// Opens the vault on `store` under `master`.
    ///
    /// Binds the store to `master`'s check value: a new store records it, and every later
    /// vault on the store must present the same master key ([`VaultStore::bind`]). Then
    /// destroys the key of every person the store marks erased, which finishes erasures a
    /// crash interrupted and re-applies erasures to keys restored from a backup older than
    /// them.
    ///
    /// # Errors
    /// [`VaultError::WrongMasterKey`], and whatever the store reports
    /// ([`VaultError::KeyFileMissing`], [`VaultError::Storage`], [`VaultError::Io`], …).
    pub fn with_store(
        store: impl VaultStore + 'static,
        master: MasterKey,
    ) -> Result<Self, VaultError> {
        let keys = VaultKeys::derive(&master);
        drop(master);
        store.bind(keys.check_value())?;
        let vault = Self {
            storage: Box::new(store),
            keys,
            stripes: (0..STRIPES).map(|_| RwLock::new(())).collect(),
            poison: Mutex::new(None),
        };
        vault.finish_erasures()?;
        Ok(vault)
    }

    /// Destroys the key of every erased person that still has one.
    fn finish_erasures(&self) -> Result<(), VaultError> {
        for person in self.storage.erased()? {
            self.storage.destroy_key(person)?;
        }
        Ok(())
    }

    /// Where the vault's store keeps its data (a directory for the embedded store), for
    /// messages.
    pub fn location(&self) -> String {
        self.storage.location()
    }

    /// How many people have a key (stored and not erased).
    ///
    /// # Errors
    /// [`VaultError::Storage`], [`VaultError::Io`] from the store.
    pub fn len(&self) -> Result<usize, VaultError> {
        self.storage.key_count()
    }

    /// Whether no one has a key.
    ///
    /// # Errors
    /// As [`Vault::len`].
    pub fn is_empty(&self) -> Result<bool, VaultError> {
        Ok(self.len()? == 0)
    }

    fn stripe(&self, person: PersonId) -> &RwLock<()> {
        // The last byte of a UUID v7 is random.
        let index = usize::from(person.as_bytes()[15]) % self.stripes.len().max(1);
        &self.stripes[index]
    }

    fn check_poison(&self) -> Result<(), VaultError> {
        match lock(&self.poison).as_ref() {
            Some(reason) => Err(VaultError::Poisoned {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Records a failed write: the vault refuses stores from now on (fail-stop, as the log
    /// does: after a failed sync the kernel may have dropped the data, and a later sync that
    /// succeeds proves nothing). Not for a refusal (the person was erased, on another
    /// instance of a shared store), nor on a store whose failed writes are all-or-nothing
    /// transactions ([`VaultStore::survives_failed_writes`]): it goes on once it is back.
    fn poisoned_by(&self, error: VaultError) -> VaultError {
        let refusal = matches!(error, VaultError::Erased { .. });
        if !refusal && !self.storage.survives_failed_writes() {
            lock(&self.poison).get_or_insert_with(|| error.to_string());
        }
        error
    }

    /// Stores `details` for `person`, replacing what was stored before. The person's key is
    /// created on their first store. Durable when it returns.
    ///
    /// # Errors
    /// [`VaultError::Erased`] when the person was erased; [`VaultError::KeyUnwrap`] when their
    /// existing key does not decrypt; [`VaultError::Poisoned`] after a failed write;
    /// [`VaultError::Randomness`], [`VaultError::Storage`], [`VaultError::Io`].
    pub fn store(&self, person: PersonId, details: &ContactDetails) -> Result<(), VaultError> {
        self.check_poison()?;
        let _guard = self
            .stripe(person)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if self.storage.is_erased(person)? {
            return Err(VaultError::Erased { person });
        }
        let tag = details.phone().map(|phone| self.keys.phone_tag(phone));
        let data_key = self.key_for_store(person, tag)?;
        let record = crypto::seal_record(person, &data_key, details)?;
        drop(data_key);
        self.storage
            .put_record(person, &record)
            .map_err(|e| self.poisoned_by(e))
    }

    /// The person's data key for a store: their existing one (with the stored phone tag
    /// updated when the number changed), or a new one. The caller holds the person's stripe
    /// for writing, so reading the key and putting it back is not raced by another write.
    fn key_for_store(
        &self,
        person: PersonId,
        tag: Option<[u8; PHONE_TAG_LEN]>,
    ) -> Result<Secret32, VaultError> {
        let mut damaged = false;
        if let Some(stored) = self.storage.key(person)? {
            match self.keys.unwrap_key(person, &stored.nonce, &stored.wrapped) {
                Some(key) => {
                    if stored.phone_tag != tag {
                        let retagged = WrappedKey {
                            phone_tag: tag,
                            ..stored
                        };
                        self.storage
                            .put_key(&retagged)
                            .map_err(|e| self.poisoned_by(e))?;
                    }
                    return Ok(key);
                }
                // A damaged key that protects no record (a first store that a crash cut
                // short): nothing is lost by replacing it.
                None if !self.storage.has_record(person)? => damaged = true,
                None => return Err(VaultError::KeyUnwrap { person }),
            }
        }
        let data_key = Secret32::random()?;
        let (nonce, wrapped) = self.keys.wrap(person, &data_key)?;
        let key = WrappedKey {
            person,
            nonce,
            wrapped,
            phone_tag: tag,
        };
        if damaged {
            self.storage
                .put_key(&key)
                .map_err(|e| self.poisoned_by(e))?;
            return Ok(data_key);
        }
        let kept = self
            .storage
            .insert_key(&key)
            .map_err(|e| self.poisoned_by(e))?;
        if kept == key {
            return Ok(data_key);
        }
        // Another vault of a shared store made this person's first key a moment before: use
        // that one (with this store's phone tag), so that both records open with it.
        let existing = self
            .keys
            .unwrap_key(person, &kept.nonce, &kept.wrapped)
            .ok_or(VaultError::KeyUnwrap { person })?;
        if kept.phone_tag != tag {
            self.storage
                .put_key(&WrappedKey {
                    phone_tag: tag,
                    ..kept
                })
                .map_err(|e| self.poisoned_by(e))?;
        }
        Ok(existing)
    }

    /// What the vault holds for `person`.
    ///
    /// # Errors
    /// [`VaultError::KeyUnwrap`] when their key does not decrypt (a damaged slot),
    /// [`VaultError::KeyMissing`] when their record has no key, [`VaultError::RecordMissing`]
    /// when their key has no record (and they were not erased), [`VaultError::DamagedRecord`]
    /// when the record does not decode or decrypt, [`VaultError::DamagedKeyFile`],
    /// [`VaultError::Storage`], [`VaultError::Io`]. Never a panic.
    pub fn read(&self, person: PersonId) -> Result<PersonData, VaultError> {
        let _guard = self
            .stripe(person)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if self.storage.is_erased(person)? {
            return Ok(PersonData::Erased);
        }
        let Some(record) = self.storage.record(person)? else {
            // A key is written before its record, and a record is only ever removed after the
            // erasure marker: a key without a record is either a first store a crash cut short
            // (never acknowledged, so no event names the person) or a record the files lost.
            // Whoever reads a person got the id from the log, so it is the second: say so,
            // rather than answer that the person left no details.
            if self.storage.key(person)?.is_some() {
                return Err(VaultError::RecordMissing { person });
            }
            return Ok(PersonData::Unknown);
        };
        let Some(stored) = self.storage.key(person)? else {
            return Err(VaultError::KeyMissing { person });
        };
        let key = self
            .keys
            .unwrap_key(person, &stored.nonce, &stored.wrapped)
            .ok_or(VaultError::KeyUnwrap { person })?;
        crypto::open_record(person, &key, &record).map(PersonData::Present)
    }

    /// Erases `person`: marks them erased and removes their record (durably), then has the
    /// store destroy their key and phone tag ([`VaultStore::destroy_key`]: for the embedded
    /// store, their key slot overwritten with zeros and synced). When it returns, their data
    /// can never be decrypted again, by anyone, with any master key. Erasing again, or
    /// erasing someone never stored, is fine; either way they read as [`PersonData::Erased`]
    /// after.
    ///
    /// Works on a poisoned vault too: destroying a key is always attempted.
    ///
    /// # Errors
    /// [`VaultError::Storage`], [`VaultError::Io`]. If the marker was written but the key was
    /// not destroyed, the person already reads as erased, and the key is destroyed by the
    /// next `erase` of them or the next vault opened on the store ([`Vault::with_store`],
    /// [`Vault::open`]).
    pub fn erase(&self, person: PersonId) -> Result<(), VaultError> {
        let _guard = self
            .stripe(person)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        self.storage
            .mark_erased(person)
            .map_err(|e| self.poisoned_by(e))?;
        self.storage
            .destroy_key(person)
            .map_err(|e| self.poisoned_by(e))?;
        Ok(())
    }

    /// Whether `person` was erased.
    ///
    /// # Errors
    /// [`VaultError::Storage`], [`VaultError::Io`].
    pub fn is_erased(&self, person: PersonId) -> Result<bool, VaultError> {
        self.storage.is_erased(person)
    }

    /// A digest of `parts` keyed with a secret derived from the master key (HMAC-SHA-256):
    /// what the engine stores with an idempotency key to recognise a retry of the same
    /// request, which may hold contact details, without making them testable by anyone who
    /// reads the log.
    pub fn request_digest(&self, parts: &[&[u8]]) -> [u8; 32] {
        self.keys.request_digest(parts)
    }

    /// The people whose stored phone number is `phone`, in any spelling ([`normalize_phone`]:
    /// spaces, dashes, `+86`, `0086`, full-width digits), oldest id first. Erased people are
    /// never found.
    ///
    /// # Errors
    /// [`VaultError::InvalidSearch`] when `phone` is not a phone number; [`VaultError::Storage`],
    /// [`VaultError::Io`].
    pub fn find_by_phone(&self, phone: &str) -> Result<Vec<PersonId>, VaultError> {
        let normalized = normalize_phone(phone)?;
        let tag = self.keys.phone_tag(&normalized);
        let mut bytes = normalized.into_bytes();
        crypto::wipe(&mut bytes);
        let candidates = self.storage.find_by_phone_tag(&tag)?;
        let mut people = Vec::with_capacity(candidates.len());
        for person in candidates {
            // A key whose record was never written (a store cut short) finds no one.
            if self.storage.has_record(person)? {
                people.push(person);
            }
        }
        people.sort_unstable();
        Ok(people)
    }

    /// Syncs the store ([`VaultStore::sync`]) and closes the vault, letting go of the store.
    /// Every store and erase was durable already; this reports a failure that dropping would
    /// swallow.
    ///
    /// # Errors
    /// [`VaultError::Storage`], [`VaultError::Io`].
    pub fn close(self) -> Result<(), VaultError> {
        self.storage.sync()
    }
}
