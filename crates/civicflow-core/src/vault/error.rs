//! What can go wrong in the vault. No message ever carries personal data or key bytes: a
//! failed contact field names the field and the rule, never the value.

use std::io;
use std::path::PathBuf;

use super::person::PersonId;

/// A contact field that failed validation: which field and the rule it broke.
///
/// Unlike [`crate::InvalidValue`], it does not carry the offending value, because the value
/// is personal data and error messages end up in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {rule}")]
pub struct InvalidContact {
    /// `name`, `phone`, `email` or `address`.
    pub field: &'static str,
    /// The rule it broke.
    pub rule: &'static str,
}

impl InvalidContact {
    pub(super) const fn new(field: &'static str, rule: &'static str) -> Self {
        Self { field, rule }
    }
}

/// A vault operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The master key does not match the one the vault was created with (checked against
    /// the check value its store holds, in the embedded store the key file's header, when
    /// the vault opens: [`crate::vault::VaultStore::bind`]).
    #[error("the master key does not open the vault at {path}: wrong master key, or a damaged key-file header")]
    WrongMasterKey {
        /// Where the store is (the vault's directory for the embedded store).
        path: PathBuf,
    },
    /// One person's key did not decrypt: the key file's slot is damaged (or was written
    /// with another master key).
    #[error("cannot unwrap the key of person {person}: wrong master key or damaged key file")]
    KeyUnwrap {
        /// The person.
        person: PersonId,
    },
    /// The person has a data record but no key in the key file (it was damaged or replaced).
    #[error("the key of person {person} is missing from the key file, although their data record exists: damaged or replaced key file")]
    KeyMissing {
        /// The person.
        person: PersonId,
    },
    /// The person has a key but no data record, and was not erased: the record was lost
    /// (damaged or partly restored files).
    #[error("the data record of person {person} is missing although their key exists and they were not erased: the vault's files lost it (damaged or partly restored); restore the vault from its backup")]
    RecordMissing {
        /// The person.
        person: PersonId,
    },
    /// The person's data record is damaged: it does not decode or does not decrypt.
    #[error("the data record of person {person} is damaged: {reason}")]
    DamagedRecord {
        /// The person.
        person: PersonId,
        /// What is wrong.
        reason: &'static str,
    },
    /// The stored keys are damaged: the embedded store's key file (truncated, an invalid
    /// slot, a duplicate person), or a database row of the wrong shape.
    #[error("the vault's keys at {path} are damaged: {reason}")]
    DamagedKeyFile {
        /// The key file, or the database (without a password).
        path: PathBuf,
        /// What is wrong, with the slot or byte offset.
        reason: String,
    },
    /// The store holds data records but none of the keys that open them (the embedded
    /// store's key file `keys.bin` is missing; a database's key check value is gone): opening
    /// would start a new, empty set of keys and make every stored record unreadable, so the
    /// vault refuses.
    #[error("the vault at {path} has data records but not the keys that open them (on the embedded store: its key file keys.bin is missing); restore the keys from a backup (and re-apply erasures made since)")]
    KeyFileMissing {
        /// The vault's directory.
        path: PathBuf,
    },
    /// The files are not a vault of a format this build reads.
    #[error("{path} has format {found:?}, expected {expected:?}")]
    UnsupportedFormat {
        /// The file or directory.
        path: PathBuf,
        /// What it says it is.
        found: String,
        /// What this build reads.
        expected: &'static str,
    },
    /// Another process (or another `Vault` in this one) has the vault open.
    #[error("the vault at {path} is already open in another process or handle")]
    Locked {
        /// The vault's directory.
        path: PathBuf,
    },
    /// The person was erased; their id cannot hold data again.
    #[error("person {person} was erased; an erased person cannot be stored again")]
    Erased {
        /// The person.
        person: PersonId,
    },
    /// A phone number given to search with is not a phone number.
    #[error("cannot search: {0}")]
    InvalidSearch(#[from] InvalidContact),
    /// A master key given as text (hex) is malformed. The text itself is never shown.
    #[error("invalid master key from {origin}: {rule}")]
    InvalidMasterKey {
        /// Where it came from (for example the environment variable's name).
        origin: String,
        /// The rule it broke.
        rule: &'static str,
    },
    /// A master key file is refused: wrong length, permissions too open, not a file.
    #[error("master key file {path}: {reason}")]
    MasterKeyFile {
        /// The file.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {reason}")]
    Randomness {
        /// What it said.
        reason: String,
    },
    /// Encrypting failed (it cannot for the sizes the vault uses; reported, never a panic).
    #[error("encryption failed: {reason}")]
    Encryption {
        /// What failed.
        reason: &'static str,
    },
    /// An earlier flush or sync failed, so the vault refuses further stores until it is
    /// reopened (after a failed sync, the kernel may have dropped the data). Erasing still
    /// works.
    #[error("the vault refuses writes after a failed sync ({reason}); reopen it")]
    Poisoned {
        /// The failure.
        reason: String,
    },
    /// The vault's store failed (for the embedded store, its database).
    #[error("vault storage at {path} failed: {reason}")]
    Storage {
        /// Where the store is (for the embedded store, its data directory).
        path: PathBuf,
        /// What it said.
        reason: String,
    },
    /// The operating system refused a file operation.
    #[error("cannot {operation} {path}: {source}")]
    Io {
        /// What was being done (`read`, `write`, `sync`, …).
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl VaultError {
    pub(crate) fn io(operation: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            operation,
            path: path.into(),
            source,
        }
    }
}
