//! [`VaultStore`]: what the vault needs of storage, and nothing else.
//!
//! The vault's logic (the cryptography, phone tags, masking, the per-person locks, refusing
//! writes after a failed one) is in [`Vault`](super::Vault) and the same for every backend.
//! A backend only keeps bytes it cannot read: per person, a data key wrapped under the
//! master key with the person's phone tag beside it (a [`WrappedKey`]), and a ciphertext
//! record; and the ids of erased people. The embedded backend is the crate's
//! `SledVaultStore` (a slot file beside a database of its own); a database backend keeps the
//! same things in its tables.
//!
//! What a backend must guarantee is on [`VaultStore`].

use std::fmt;
use std::sync::Arc;

use super::crypto::{NONCE_LEN, PHONE_TAG_LEN, WRAPPED_LEN};
use super::error::VaultError;
use super::person::PersonId;

/// Bytes of the check value of a master key (see [`VaultStore::bind`]).
pub const CHECK_VALUE_LEN: usize = 32;

/// One person's key as a store keeps it: their data key wrapped under the master key
/// (XChaCha20-Poly1305, with the person id as associated data, so a key moved to another
/// person does not unwrap), and the keyed hash of their phone number for search.
///
/// None of it is readable without the master key. The phone tag sits with the key so that
/// destroying the key destroys the tag with it.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// Whose key it is.
    pub person: PersonId,
    /// The wrapping nonce: random, never all zeros.
    pub nonce: [u8; WrappedKey::NONCE_LEN],
    /// The data key encrypted under the wrapping key, with its authentication tag.
    pub wrapped: [u8; WrappedKey::WRAPPED_LEN],
    /// HMAC-SHA-256 of their phone number under the search key; `None` without a phone.
    pub phone_tag: Option<[u8; WrappedKey::PHONE_TAG_LEN]>,
}

impl WrappedKey {
    /// Bytes of [`WrappedKey::nonce`].
    pub const NONCE_LEN: usize = NONCE_LEN;
    /// Bytes of [`WrappedKey::wrapped`].
    pub const WRAPPED_LEN: usize = WRAPPED_LEN;
    /// Bytes of [`WrappedKey::phone_tag`].
    pub const PHONE_TAG_LEN: usize = PHONE_TAG_LEN;
}

impl fmt::Debug for WrappedKey {
    // Key bytes and tags stay out of logs, wrapped or not: a tag identifies a phone number
    // to whoever holds the master key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("person", &self.person)
            .field("phone_tag", &self.phone_tag.map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// The vault's storage: wrapped person keys with their phone tags, ciphertext records, and
/// erasure markers. Object-safe; the vault holds it as `Box<dyn VaultStore>`. Every
/// method's own contract is on it; what holds for all of them is here.
///
/// # What a backend must guarantee
///
/// - **Durable on return.** Every method that changes something returns only once the
///   change survives a crash (an `fsync`, a committed transaction). The vault answers its
///   callers on that basis, and it records an erasure in the log only after
///   [`VaultStore::destroy_key`] returned.
/// - **Destroying a key leaves no copy the store controls.** Not in a free list, an old
///   version of a row, a log-structured segment awaiting compaction, a write-ahead log it
///   keeps, or a cache: that is what makes erasing a person (crypto-shredding) real. What the
///   store does not control (the disk's firmware, the filesystem's journal, snapshots,
///   backups) is listed in `docs/decisions/0004-personal-data.md`. This is the one rule that
///   rules out "just put the keys in a table": a backend whose deletes leave old versions
///   behind must overwrite in place, or keep the keys somewhere that does. The one exception
///   is a database server the store does not run (PostgreSQL): it makes the old version
///   unreachable (deleted and vacuumed: no query, index or replica reaches it), and what the
///   server keeps beyond that (page free space until reused, its WAL until recycled,
///   archives and backups until they age out) is written down for the operator, with what
///   bounds it (`docs/postgres.md`, "Personal data erasure on PostgreSQL").
/// - **Records and erasure markers may linger** in old versions, because without their key
///   they are noise.
/// - **One vault at a time, unless changes are serialized per person.** An embedded backend
///   serves one [`Vault`](super::Vault) in one process and refuses a second user
///   ([`VaultError::Locked`]). A shared database backend may serve several vaults at once (one
///   per service instance) provided that it serializes the changes to each person across them
///   (`put_key`, `put_record`, `destroy_key` and `mark_erased` of one person never
///   interleave) and refuses a key or record for a person already marked erased
///   ([`VaultError::Erased`]), checked atomically with the write, so that no write lands
///   after an erasure made through another vault. Within one vault, calls come from many
///   threads at once, but never two at a time for the same person except reads; calls from
///   different vaults may.
/// - [`VaultStore::bind`] is called first, before any other method; a backend may refuse
///   other calls until it was.
///
/// The errors are [`VaultError`]s: [`VaultError::Storage`] or [`VaultError::Io`] for a
/// failing backend, naming where; never a panic, whatever the stored bytes.
pub trait VaultStore: Send + Sync + fmt::Debug {
    /// Where the store keeps its data, for messages (a directory; a database without its
    /// credentials).
    fn location(&self) -> String;

    /// Binds the store to the master key whose check value is `check`. A store that holds
    /// no check value yet records it, durably, before returning; one that holds a check
    /// value must hold exactly `check` (compared in constant time). Called once, first.
    ///
    /// A store that holds no check value but holds people ([`VaultStore::holds_people`])
    /// has lost its keys: it must refuse rather than record a new check value over records
    /// no key opens any more.
    ///
    /// # Errors
    /// [`VaultError::WrongMasterKey`] when the store was bound to another check value (and
    /// then nothing is written); [`VaultError::KeyFileMissing`] when it holds people but no
    /// keys; [`VaultError::Storage`], [`VaultError::Io`].
    fn bind(&self, check: &[u8; CHECK_VALUE_LEN]) -> Result<(), VaultError>;

    /// The person's wrapped key, `None` when they have none (never stored, or destroyed).
    ///
    /// # Errors
    /// [`VaultError::DamagedKeyFile`] when the stored key is damaged so that it no longer
    /// names the person; [`VaultError::Storage`], [`VaultError::Io`].
    fn key(&self, person: PersonId) -> Result<Option<WrappedKey>, VaultError>;

    /// Stores `key` as its person's key, replacing the one they had. Durable when it
    /// returns. The vault replaces a key only to change its phone tag (same key bytes), so
    /// a crash during the call must leave an existing key's bytes readable (at worst the
    /// tag stale or damaged, until the next store); a new key cut short may be left
    /// damaged, which the vault replaces, as no record depends on it yet.
    ///
    /// # Errors
    /// [`VaultError::Storage`], [`VaultError::Io`].
    fn put_key(&self, key: &WrappedKey) -> Result<(), VaultError>;

    /// Stores `key` as its person's first key, unless they have one already, and returns the
    /// key the person has when it returns: `key`, or the one stored before it. Durable when it
    /// returns. The vault creates a person's first key with it, so that two vaults of a shared
    /// store creating the same person's key at the same moment agree on one (the other's
    /// record would otherwise be sealed with a key that was then replaced). The default,
    /// [`VaultStore::key`] then [`VaultStore::put_key`], is right for a store one vault uses
    /// (the vault holds the person's lock across both); a shared store does both atomically.
    ///
    /// # Errors
    /// As [`VaultStore::key`] and [`VaultStore::put_key`].
    fn insert_key(&self, key: &WrappedKey) -> Result<WrappedKey, VaultError> {
        if let Some(existing) = self.key(key.person)? {
            return Ok(existing);
        }
        self.put_key(key)?;
        Ok(key.clone())
    }

    /// Destroys the person's key and phone tag. When it returns, the store holds no copy of
    /// either, anywhere it controls (overwritten in place and synced, not merely marked
    /// deleted): the person's record can never be decrypted again. `false` when they had
    /// no key. A crash during the call leaves the key whole or gone; if whole, the next
    /// [`Vault`](super::Vault) opened on the store destroys it (the erasure marker is written
    /// first).
    ///
    /// # Errors
    /// [`VaultError::Storage`], [`VaultError::Io`].
    fn destroy_key(&self, person: PersonId) -> Result<bool, VaultError>;

    /// The people whose key carries the phone tag `tag`, in any order.
    ///
    /// # Errors
    /// [`VaultError::Storage`], [`VaultError::Io`].
    fn find_by_phone_tag(
        &self,
        tag: &[u8; WrappedKey::PHONE_TAG_LEN],
    ) -> Result<Vec<PersonId>, VaultError>;

    /// How many people have a key.
    ///
    /// # Errors
    /// [`VaultError::Storage`], [`VaultError::Io`].
    fn key_count(&self) -> Result<usize, VaultError>;

    /// The person's ciphertext record, `None` when they have none.
    ///
    /// # Errors
    /// [`VaultError::Storage`], [`VaultError::Io`].
    fn record(&self, person: PersonId) -> Result<Option<Vec<u8>>, VaultError>;

    /// Stores (or replaces) the person's ciphertext record. Durable when it returns.
    ///
    /// # Errors
    /// [`VaultError::Storage`], [`VaultError::Io`].
    fn put_record(&self, person: PersonId, record: &[u8]) -> Result<(), VaultError>;

    /// Whether the person has a record.
    ///
    /// # Errors
    /// [`VaultError::Storage`], [`VaultError::Io`].
    fn has_record(&self, person: PersonId) -> Result<bool, VaultError>;

    /// Marks the person erased and removes their record, atomically (both or neither).
    /// Durable when it returns. The marker is kept forever: an erased id never holds data
    /// again, and the marker is how an interrupted erasure is finished.
    ///
    /// # Errors
    /// [`VaultError::Storage`], [`VaultError::Io`].
    fn mark_erased(&self, person: PersonId) -> Result<(), VaultError>;

    /// Whether the person is marked erased.
    ///
    /// # Errors
    /// [`VaultError::Storage`], [`VaultError::Io`].
    fn is_erased(&self, person: PersonId) -> Result<bool, VaultError>;

    /// Every person marked erased, in any order. The vault destroys their keys again when it
    /// opens: that finishes an erasure a crash interrupted, and re-applies erasures to keys
    /// restored from a backup older than them.
    ///
    /// # Errors
    /// [`VaultError::Storage`], [`VaultError::Io`].
    fn erased(&self) -> Result<Vec<PersonId>, VaultError>;

    /// Whether any person has a record or an erasure marker: the store is in use. This is
    /// what [`VaultStore::bind`] consults before recording a check value in a store that
    /// holds none.
    ///
    /// # Errors
    /// [`VaultError::Storage`], [`VaultError::Io`].
    fn holds_people(&self) -> Result<bool, VaultError>;

    /// Whether a failed write leaves the store as it was or as if the write succeeded, never
    /// in between or in doubt (a database transaction), so that the vault may go on writing
    /// after one: a shared database that was unreachable for a moment. `false` (the default)
    /// for a store whose failed sync may have lost data already acknowledged: the vault then
    /// refuses every later write (fail-stop).
    fn survives_failed_writes(&self) -> bool {
        false
    }

    /// Makes everything durable. Every change already was when it returned; the vault calls
    /// this when it is closed, to report a failure that dropping the store would swallow.
    /// Dropping the store lets go of its files or connections.
    ///
    /// # Errors
    /// [`VaultError::Storage`], [`VaultError::Io`].
    fn sync(&self) -> Result<(), VaultError>;
}

macro_rules! forward_vault_store {
    ($wrapper:ident) => {
        impl<T: VaultStore + ?Sized> VaultStore for $wrapper<T> {
            fn location(&self) -> String {
                (**self).location()
            }
            fn bind(&self, check: &[u8; CHECK_VALUE_LEN]) -> Result<(), VaultError> {
                (**self).bind(check)
            }
            fn key(&self, person: PersonId) -> Result<Option<WrappedKey>, VaultError> {
                (**self).key(person)
            }
            fn put_key(&self, key: &WrappedKey) -> Result<(), VaultError> {
                (**self).put_key(key)
            }
            fn destroy_key(&self, person: PersonId) -> Result<bool, VaultError> {
                (**self).destroy_key(person)
            }
            fn insert_key(&self, key: &WrappedKey) -> Result<WrappedKey, VaultError> {
                (**self).insert_key(key)
            }
            fn find_by_phone_tag(
                &self,
                tag: &[u8; WrappedKey::PHONE_TAG_LEN],
            ) -> Result<Vec<PersonId>, VaultError> {
                (**self).find_by_phone_tag(tag)
            }
            fn key_count(&self) -> Result<usize, VaultError> {
                (**self).key_count()
            }
            fn record(&self, person: PersonId) -> Result<Option<Vec<u8>>, VaultError> {
                (**self).record(person)
            }
            fn put_record(&self, person: PersonId, record: &[u8]) -> Result<(), VaultError> {
                (**self).put_record(person, record)
            }
            fn has_record(&self, person: PersonId) -> Result<bool, VaultError> {
                (**self).has_record(person)
            }
            fn mark_erased(&self, person: PersonId) -> Result<(), VaultError> {
                (**self).mark_erased(person)
            }
            fn is_erased(&self, person: PersonId) -> Result<bool, VaultError> {
                (**self).is_erased(person)
            }
            fn erased(&self) -> Result<Vec<PersonId>, VaultError> {
                (**self).erased()
            }
            fn holds_people(&self) -> Result<bool, VaultError> {
                (**self).holds_people()
            }
            fn sync(&self) -> Result<(), VaultError> {
                (**self).sync()
            }
            fn survives_failed_writes(&self) -> bool {
                (**self).survives_failed_writes()
            }
        }
    };
}

// A store shared with its opener (tests keep a handle to look inside), or boxed already.
forward_vault_store!(Arc);
forward_vault_store!(Box);
