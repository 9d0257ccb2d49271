//! The key file, `DIR/keys.bin`: the wrapped person keys and phone tags
//! ([`WrappedKey`]s), in fixed-size slots that are overwritten in place. Erasing a person
//! overwrites their slot with zeros and `fdatasync`s the file before returning, which is why
//! the keys are here and not in the sled database beside it: sled is log-structured and
//! would keep a deleted value in its old segments, at a time we do not control
//! ([`VaultStore::destroy_key`](crate::vault::VaultStore::destroy_key) promises no copy is
//! left).
//!
//! ```text
//! header, 128 bytes
//!  0          8     9          16                        48                          128
//!  +----------+-----+----------+-------------------------+---------------------------+
//!  | CFVKEYS\0| fmt | 0 (7 B)  | key check (32 B)        | 0 (80 B)                  |
//!  +----------+-----+----------+-------------------------+---------------------------+
//!                =1             HMAC-SHA-256(master, "civicflow-vault/1 key check")
//!
//! slot i at byte 128 + 128 × i, 128 bytes
//!  0     1              17            41                        89    90              122   128
//!  +-----+--------------+-------------+-------------------------+-----+---------------+-----+
//!  |state| person (16 B)| nonce (24 B)| wrapped key (32 + 16 B) |phone| phone tag     | 0   |
//!  +-----+--------------+-------------+-------------------------+-----+---------------+-----+
//!   1 = used                             XChaCha20-Poly1305      0/1   HMAC-SHA-256   (6 B)
//!   a free or erased slot is 128 zero bytes
//! ```
//!
//! Header and slots are 128 bytes, so no slot straddles a 512-byte sector. The file grows
//! by 64 zeroed slots at a time (`set_len` and a sync), so writing a slot never extends the
//! file; freed slots are reused, lowest first.
//!
//! A slot holds a key exactly when its nonce and wrapped key (bytes 17..89) are not all
//! zero: a real nonce is 24 random bytes. Erasing zeroes those 72 bytes first and syncs,
//! then zeroes the whole slot and syncs, so a crash in the middle leaves either a slot that
//! still names its (erased) person, which opening erases again, or one without key bytes,
//! which opening zeroes. A bit flip cannot turn a used slot into a free one.
//!
//! The wrapped key is bound to the person id only, not to the phone tag: a new phone number
//! rewrites the slot with the same key bytes, so a torn write can damage the tag but never
//! the key.
//!
//! Opening reads and locks the file but checks no master key: [`KeyFile::bind`] does, when
//! the vault binds the store ([`VaultStore::bind`](crate::vault::VaultStore::bind)), and
//! nothing is written before it succeeded.

use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::vault::{constant_time_eq, sync_dir, PersonId, VaultError, WrappedKey, CHECK_VALUE_LEN};

const NONCE_LEN: usize = WrappedKey::NONCE_LEN;
const WRAPPED_LEN: usize = WrappedKey::WRAPPED_LEN;
const PHONE_TAG_LEN: usize = WrappedKey::PHONE_TAG_LEN;

/// The key file's name in the vault directory.
pub(super) const FILE_NAME: &str = "keys.bin";
/// The first 8 bytes of a key file.
pub(super) const MAGIC: [u8; 8] = *b"CFVKEYS\0";
/// The format byte this build reads and writes.
pub(super) const FORMAT: u8 = 1;
/// Bytes in the header.
pub(super) const HEADER_LEN: usize = 128;
/// Bytes in a slot.
pub(super) const SLOT_LEN: usize = 128;
/// Slots added when the file grows.
const GROW_SLOTS: u64 = 64;

const STATE_USED: u8 = 1;
const OFF_PERSON: usize = 1;
const OFF_NONCE: usize = OFF_PERSON + 16;
const OFF_WRAPPED: usize = OFF_NONCE + NONCE_LEN;
const OFF_PHONE: usize = OFF_WRAPPED + WRAPPED_LEN;
const OFF_TAG: usize = OFF_PHONE + 1;
const OFF_RESERVED: usize = OFF_TAG + PHONE_TAG_LEN;

/// One person's slot: their wrapped key and phone tag.
fn encode_slot(key: &WrappedKey) -> [u8; SLOT_LEN] {
    let mut out = [0u8; SLOT_LEN];
    out[0] = STATE_USED;
    out[OFF_PERSON..OFF_NONCE].copy_from_slice(key.person.as_bytes());
    out[OFF_NONCE..OFF_WRAPPED].copy_from_slice(&key.nonce);
    out[OFF_WRAPPED..OFF_PHONE].copy_from_slice(&key.wrapped);
    if let Some(tag) = &key.phone_tag {
        out[OFF_PHONE] = 1;
        out[OFF_TAG..OFF_RESERVED].copy_from_slice(tag);
    }
    out
}

/// `Ok(None)` for a slot that holds no key (free, erased, or erased half-way).
fn decode_slot(bytes: &[u8; SLOT_LEN]) -> Result<Option<WrappedKey>, &'static str> {
    if bytes[OFF_NONCE..OFF_PHONE].iter().all(|&b| b == 0) {
        return Ok(None);
    }
    if bytes[0] != STATE_USED {
        return Err("it holds key bytes but its state byte is not 1 (used)");
    }
    if bytes[OFF_RESERVED..].iter().any(|&b| b != 0) {
        return Err("its reserved bytes are not zero");
    }
    let phone_tag = match bytes[OFF_PHONE] {
        0 => None,
        1 => Some(copy_array(&bytes[OFF_TAG..OFF_RESERVED])),
        _ => return Err("its phone marker is neither 0 nor 1"),
    };
    Ok(Some(WrappedKey {
        person: PersonId::from_bytes(copy_array(&bytes[OFF_PERSON..OFF_NONCE])),
        nonce: copy_array(&bytes[OFF_NONCE..OFF_WRAPPED]),
        wrapped: copy_array(&bytes[OFF_WRAPPED..OFF_PHONE]),
        phone_tag,
    }))
}

/// Copies a slice of known length into an array (the ranges above are constants).
fn copy_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = bytes.len().min(N);
    out[..n].copy_from_slice(&bytes[..n]);
    out
}

fn encode_header(check: &[u8; CHECK_VALUE_LEN]) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(&MAGIC);
    header[8] = FORMAT;
    header[16..48].copy_from_slice(check);
    header
}

/// Where a person's slot is, and their phone tag (kept in memory for search).
#[derive(Debug, Clone, Copy)]
struct Entry {
    index: u64,
    phone_tag: Option<[u8; PHONE_TAG_LEN]>,
}

/// The open key file: the file (locked), and in memory where each person's slot is, the
/// phone-tag index and the free slots.
#[derive(Debug)]
pub(super) struct KeyFile {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    /// The header's check value, compared by [`KeyFile::bind`].
    check: [u8; CHECK_VALUE_LEN],
    /// Whether [`KeyFile::bind`] accepted a master key; nothing is written before.
    bound: bool,
    /// Slots a crash left erased half-way (key bytes gone, person still named), zeroed by
    /// [`KeyFile::bind`].
    half_erased: Vec<u64>,
    entries: HashMap<PersonId, Entry>,
    by_phone: HashMap<[u8; PHONE_TAG_LEN], Vec<PersonId>>,
    free: BTreeSet<u64>,
    slots: u64,
}

fn slot_offset(index: u64) -> u64 {
    (HEADER_LEN as u64).saturating_add(index.saturating_mul(SLOT_LEN as u64))
}

impl KeyFile {
    /// Creates a key file holding only the header for `check`, durably (written to a
    /// temporary file, synced, renamed, directory synced).
    pub(super) fn create(dir: &Path, check: &[u8; CHECK_VALUE_LEN]) -> Result<(), VaultError> {
        let path = dir.join(FILE_NAME);
        let temp = dir.join(format!("{FILE_NAME}.new"));
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(&temp)
            .map_err(|e| VaultError::io("create", &temp, e))?;
        file.write_all(&encode_header(check))
            .and_then(|()| file.sync_all())
            .map_err(|e| VaultError::io("write", &temp, e))?;
        drop(file);
        std::fs::rename(&temp, &path).map_err(|e| VaultError::io("rename", &temp, e))?;
        sync_dir(dir).map_err(|e| VaultError::io("sync", dir, e))
    }

    /// Opens and locks the key file in `dir`, checks its header's format and reads every
    /// slot. Writes nothing: the master key is checked by [`KeyFile::bind`].
    pub(super) fn open(dir: &Path) -> Result<Self, VaultError> {
        let path = dir.join(FILE_NAME);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| VaultError::io("open", &path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(VaultError::Locked {
                    path: dir.to_owned(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(VaultError::io("lock", &path, e)),
        }
        let damaged = |reason: String| VaultError::DamagedKeyFile {
            path: path.clone(),
            reason,
        };
        let len = file
            .metadata()
            .map_err(|e| VaultError::io("inspect", &path, e))?
            .len();
        let mut reader = BufReader::with_capacity(64 * 1024, &file);
        let mut header = [0u8; HEADER_LEN];
        let got =
            read_up_to(&mut reader, &mut header).map_err(|e| VaultError::io("read", &path, e))?;
        if got < HEADER_LEN {
            return Err(damaged(format!(
                "it is {len} bytes, shorter than its {HEADER_LEN}-byte header"
            )));
        }
        if header[..8] != MAGIC {
            return Err(VaultError::UnsupportedFormat {
                path,
                found: "not a civicflow key file (unknown magic bytes)".into(),
                expected: "civicflow key file, format 1",
            });
        }
        if header[8] != FORMAT {
            return Err(VaultError::UnsupportedFormat {
                path,
                found: format!("civicflow key file, format {}", header[8]),
                expected: "civicflow key file, format 1",
            });
        }
        if header[9..16].iter().chain(&header[48..]).any(|&b| b != 0) {
            return Err(damaged("its header's reserved bytes are not zero".into()));
        }

        let mut key_file = Self {
            dir: dir.to_owned(),
            path: path.clone(),
            file: file
                .try_clone()
                .map_err(|e| VaultError::io("open", &path, e))?,
            check: copy_array(&header[16..48]),
            bound: false,
            half_erased: Vec::new(),
            entries: HashMap::new(),
            by_phone: HashMap::new(),
            free: BTreeSet::new(),
            slots: 0,
        };
        let mut bytes = [0u8; SLOT_LEN];
        loop {
            let got = read_up_to(&mut reader, &mut bytes)
                .map_err(|e| VaultError::io("read", &path, e))?;
            if got == 0 {
                break;
            }
            let index = key_file.slots;
            if got < SLOT_LEN {
                // A growth interrupted by a crash can leave a partial run of zeros; the next
                // growth rounds it up. Anything else is a cut-off slot.
                if bytes[..got].iter().all(|&b| b == 0) {
                    break;
                }
                return Err(damaged(format!(
                    "it is truncated: slot {index} (byte {}) has only {got} of {SLOT_LEN} bytes",
                    slot_offset(index)
                )));
            }
            key_file.slots += 1;
            match decode_slot(&bytes) {
                Ok(None) => {
                    if bytes.iter().any(|&b| b != 0) {
                        key_file.half_erased.push(index);
                    }
                    key_file.free.insert(index);
                }
                Ok(Some(slot)) => {
                    if let Some(first) = key_file.entries.get(&slot.person) {
                        return Err(damaged(format!(
                            "slots {} and {index} both hold a key for person {}",
                            first.index, slot.person
                        )));
                    }
                    key_file.index(slot.person, index, slot.phone_tag);
                }
                Err(reason) => {
                    return Err(damaged(format!(
                        "slot {index} (byte {}) is damaged: {reason}",
                        slot_offset(index)
                    )))
                }
            }
        }
        drop(reader);
        drop(file);
        Ok(key_file)
    }

    /// Accepts the master key whose check value is `check` if the header holds it (compared
    /// in constant time), then finishes the erasures a crash interrupted after the key bytes
    /// were gone. Binding again with the same value is fine.
    pub(super) fn bind(&mut self, check: &[u8; CHECK_VALUE_LEN]) -> Result<(), VaultError> {
        if !constant_time_eq(&self.check, check) {
            return Err(VaultError::WrongMasterKey {
                path: self.dir.clone(),
            });
        }
        self.bound = true;
        for index in std::mem::take(&mut self.half_erased) {
            self.write_at(slot_offset(index), &[0u8; SLOT_LEN])?;
        }
        Ok(())
    }

    /// Refuses writes before [`KeyFile::bind`]: a slot wrapped under an unchecked master
    /// key would be unreadable.
    fn check_bound(&self) -> Result<(), VaultError> {
        if self.bound {
            Ok(())
        } else {
            Err(VaultError::Storage {
                path: self.dir.clone(),
                reason:
                    "the key file is not bound to a master key yet (Vault::with_store binds it)"
                        .into(),
            })
        }
    }

    fn index(&mut self, person: PersonId, index: u64, phone_tag: Option<[u8; PHONE_TAG_LEN]>) {
        self.entries.insert(person, Entry { index, phone_tag });
        if let Some(tag) = phone_tag {
            self.by_phone.entry(tag).or_default().push(person);
        }
    }

    fn unindex(&mut self, person: PersonId) -> Option<Entry> {
        let entry = self.entries.remove(&person)?;
        if let Some(tag) = entry.phone_tag {
            if let Some(people) = self.by_phone.get_mut(&tag) {
                people.retain(|p| *p != person);
                if people.is_empty() {
                    self.by_phone.remove(&tag);
                }
            }
        }
        Some(entry)
    }

    /// How many people have a key.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The people whose phone tag is `tag`.
    pub(super) fn find(&self, tag: &[u8; PHONE_TAG_LEN]) -> Vec<PersonId> {
        self.by_phone.get(tag).cloned().unwrap_or_default()
    }

    /// Reads `person`'s slot from the file; `None` when they have none.
    pub(super) fn get(&self, person: PersonId) -> Result<Option<WrappedKey>, VaultError> {
        let Some(entry) = self.entries.get(&person) else {
            return Ok(None);
        };
        let mut bytes = [0u8; SLOT_LEN];
        let offset = slot_offset(entry.index);
        (&self.file)
            .seek(SeekFrom::Start(offset))
            .and_then(|_| (&self.file).read_exact(&mut bytes))
            .map_err(|e| VaultError::io("read", &self.path, e))?;
        match decode_slot(&bytes) {
            Ok(Some(slot)) if slot.person == person => Ok(Some(slot)),
            Ok(_) => Err(VaultError::DamagedKeyFile {
                path: self.path.clone(),
                reason: format!(
                    "slot {} (byte {offset}) no longer holds the key of person {person}",
                    entry.index
                ),
            }),
            Err(reason) => Err(VaultError::DamagedKeyFile {
                path: self.path.clone(),
                reason: format!("slot {} (byte {offset}) is damaged: {reason}", entry.index),
            }),
        }
    }

    /// Writes `slot` (into the person's slot, or a free one) and syncs before returning.
    pub(super) fn put(&mut self, slot: &WrappedKey) -> Result<(), VaultError> {
        self.check_bound()?;
        let index = match self.entries.get(&slot.person) {
            Some(entry) => entry.index,
            None => self.allocate()?,
        };
        self.write_at(slot_offset(index), &encode_slot(slot))?;
        self.unindex(slot.person);
        self.free.remove(&index);
        self.index(slot.person, index, slot.phone_tag);
        Ok(())
    }

    /// Overwrites `person`'s slot with zeros and syncs before returning. `false` when they
    /// had no slot.
    pub(super) fn erase(&mut self, person: PersonId) -> Result<bool, VaultError> {
        self.check_bound()?;
        let Some(entry) = self.entries.get(&person).copied() else {
            return Ok(false);
        };
        let offset = slot_offset(entry.index);
        // The key bytes first, then the rest (see the module's documentation).
        self.write_at(offset + OFF_NONCE as u64, &[0u8; OFF_PHONE - OFF_NONCE])?;
        self.write_at(offset, &[0u8; SLOT_LEN])?;
        self.unindex(person);
        self.free.insert(entry.index);
        Ok(true)
    }

    /// A free slot's index, growing the file when there is none.
    fn allocate(&mut self) -> Result<u64, VaultError> {
        if let Some(&index) = self.free.first() {
            return Ok(index);
        }
        let grown = self.slots.saturating_add(GROW_SLOTS);
        self.file
            .set_len(slot_offset(grown))
            .and_then(|()| self.file.sync_all())
            .map_err(|e| VaultError::io("grow", &self.path, e))?;
        self.free.extend(self.slots..grown);
        let index = self.slots;
        self.slots = grown;
        Ok(index)
    }

    /// Writes `bytes` at `offset` and syncs.
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), VaultError> {
        (&self.file)
            .seek(SeekFrom::Start(offset))
            .and_then(|_| (&self.file).write_all(bytes))
            .map_err(|e| VaultError::io("write", &self.path, e))?;
        self.file
            .sync_data()
            .map_err(|e| VaultError::io("sync", &self.path, e))
    }
}

/// Reads until `buf` is full or the end of the file; returns how many bytes were read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;

    fn slot(seconds: i64, tag: Option<[u8; 32]>) -> WrappedKey {
        WrappedKey {
            person: PersonId::new_v7(Timestamp::from_unix_seconds(seconds)),
            nonce: [3; NONCE_LEN],
            wrapped: [4; WRAPPED_LEN],
            phone_tag: tag,
        }
    }

    #[test]
    fn slots_round_trip_and_free_slots_are_zero() {
        for s in [slot(1, None), slot(2, Some([9; 32]))] {
            let bytes = encode_slot(&s);
            assert_eq!(bytes.len(), SLOT_LEN);
            assert_eq!(decode_slot(&bytes), Ok(Some(s.clone())));
        }
        assert_eq!(decode_slot(&[0; SLOT_LEN]), Ok(None));
        // Erased half-way: the key bytes are gone, so it holds no key.
        let mut half = encode_slot(&slot(3, Some([9; 32])));
        half[OFF_NONCE..OFF_PHONE].fill(0);
        assert_eq!(decode_slot(&half), Ok(None));
        assert_eq!(OFF_RESERVED, 122);
    }

    #[test]
    fn every_damaged_slot_byte_is_an_error_or_another_slot_never_a_panic() {
        let bytes = encode_slot(&slot(1, Some([9; 32])));
        for i in 0..SLOT_LEN {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut damaged = bytes;
                damaged[i] ^= flip;
                let decoded = decode_slot(&damaged);
                // State, phone marker and reserved bytes are checked; other bytes are caught
                // by the AEAD when the key is unwrapped. No flip makes the slot free.
                if i == 0 || i >= OFF_RESERVED || (i == OFF_PHONE && damaged[i] > 1) {
                    assert!(decoded.is_err(), "byte {i}");
                } else {
                    assert!(matches!(decoded, Ok(Some(_))), "byte {i}");
                }
            }
        }
    }
}
