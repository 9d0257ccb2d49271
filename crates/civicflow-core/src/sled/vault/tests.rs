//! The embedded store's files: what is in them, damaged key files, torn erasures, growing
//! and reusing slots, locking. The vault's behaviour on this store (and on any other) is
//! tested in `crate::vault`'s tests, whose helpers these share.

use std::path::{Path, PathBuf};

use super::keyfile::{FILE_NAME, HEADER_LEN, SLOT_LEN};
use super::SledVaultStore;
use crate::vault::tests::{
    all_files, contains_bytes, data_key_bytes, files_containing, master, person, present, sample,
    storage, TestDir,
};
use crate::vault::{
    ContactDetails, MasterKey, PersonData, PersonId, Vault, VaultError, VaultStore,
};

#[test]
fn files_hold_ciphertext_only_and_nothing_of_an_erased_person() {
    let dir = TestDir::new("raw-bytes");
    let vault = Vault::open(dir.path(), master()).expect("open");
    let (alice, bob) = (person(), person());
    let (a, b) = (sample(), sample());
    vault.store(alice, &a.details).expect("store alice");
    vault.store(bob, &b.details).expect("store bob");

    let key = data_key_bytes(&vault, alice).expect("alice's key");
    let slot = storage(&vault)
        .key(alice)
        .expect("readable")
        .expect("a slot");
    let tag = slot.phone_tag.expect("a phone tag");
    let record = storage(&vault)
        .record(alice)
        .expect("read")
        .expect("a record");
    let d = &a.details;
    let plaintexts: Vec<(&str, Vec<u8>)> = vec![
        ("name", d.name().expect("name").as_bytes().to_vec()),
        ("phone", d.phone().expect("phone").as_bytes().to_vec()),
        ("national phone", a.national_phone.as_bytes().to_vec()),
        ("email", d.email().expect("email").as_bytes().to_vec()),
        ("address", d.address().expect("address").as_bytes().to_vec()),
    ];

    // Before erasing: ciphertext and wrapped key are on disk (so the search sees the
    // files), the plaintext and the data key are not.
    let files = all_files(dir.path());
    assert!(!files_containing(&files, &record[1 + 24..]).is_empty());
    assert_eq!(
        files_containing(&files, &slot.wrapped),
        vec![dir.path().join(FILE_NAME)]
    );
    for (what, bytes) in &plaintexts {
        assert!(
            files_containing(&files, bytes).is_empty(),
            "{what} in plaintext"
        );
    }
    assert!(files_containing(&files, &key).is_empty());

    vault.erase(alice).expect("erase");
    let after = |files: &[(PathBuf, Vec<u8>)]| {
        for (what, bytes) in &plaintexts {
            assert!(
                files_containing(files, bytes).is_empty(),
                "{what} after erase"
            );
        }
        for (what, bytes) in [
            ("data key", &key[..]),
            ("wrapped key", &slot.wrapped[..]),
            ("nonce", &slot.nonce[..]),
            ("phone tag", &tag[..]),
        ] {
            assert!(
                files_containing(files, bytes).is_empty(),
                "{what} after erase"
            );
        }
    };
    after(&all_files(dir.path()));
    drop(vault);
    after(&all_files(dir.path()));

    // Bob's details are untouched.
    let vault = Vault::open(dir.path(), master()).expect("reopen");
    assert_eq!(present(&vault, bob), b.details);
}

/// Runs `damage` on the closed vault's key file, reopens and reads every person.
fn with_damaged_key_file(
    dir: &Path,
    people: &[PersonId],
    damage: impl FnOnce(&mut Vec<u8>),
) -> Result<Vec<Result<PersonData, VaultError>>, VaultError> {
    let path = dir.join(FILE_NAME);
    let original = std::fs::read(&path).expect("read the key file");
    let mut bytes = original.clone();
    damage(&mut bytes);
    std::fs::write(&path, &bytes).expect("write the damaged key file");
    let result = Vault::open(dir, master())
        .map(|vault| people.iter().map(|&p| vault.read(p)).collect::<Vec<_>>());
    std::fs::write(&path, &original).expect("restore the key file");
    result
}

#[test]
fn a_damaged_key_file_is_an_error_never_a_panic() {
    let dir = TestDir::new("damaged-keys");
    let (alice, bob) = (person(), person());
    {
        let vault = Vault::open(dir.path(), master()).expect("open");
        vault.store(alice, &sample().details).expect("store");
        vault.store(bob, &sample().details).expect("store");
    }
    let people = [alice, bob];
    let slot = |i: usize| HEADER_LEN + SLOT_LEN * i;

    // A flipped bit in alice's wrapped key: the clear per-person error; bob is fine.
    let reads =
        with_damaged_key_file(dir.path(), &people, |b| b[slot(0) + 50] ^= 0x10).expect("opens");
    let err = reads[0].as_ref().expect_err("alice's key is damaged");
    assert_eq!(
        err.to_string(),
        format!("cannot unwrap the key of person {alice}: wrong master key or damaged key file")
    );
    assert!(matches!(reads[1], Ok(PersonData::Present(_))));

    // Structural damage is refused when opening, naming what is wrong.
    let open_err = |damage: &dyn Fn(&mut Vec<u8>)| {
        with_damaged_key_file(dir.path(), &people, |b| damage(b)).expect_err("refused")
    };
    let err = open_err(&|b| b[slot(0)] = 7);
    assert!(
        matches!(&err, VaultError::DamagedKeyFile { reason, .. } if reason.contains("slot 0")),
        "{err}"
    );
    let err = open_err(&|b| b.truncate(slot(1) + 40));
    assert!(
        matches!(&err, VaultError::DamagedKeyFile { reason, .. } if reason.contains("truncated")),
        "{err}"
    );
    let err = open_err(&|b| b.truncate(60));
    assert!(matches!(err, VaultError::DamagedKeyFile { .. }), "{err}");
    let err = open_err(&|b| b[0] = b'X');
    assert!(matches!(err, VaultError::UnsupportedFormat { .. }), "{err}");
    let err = open_err(&|b| b[8] = 2);
    assert!(matches!(err, VaultError::UnsupportedFormat { .. }), "{err}");
    let err = open_err(&|b| b[20] ^= 1);
    assert!(matches!(err, VaultError::WrongMasterKey { .. }), "{err}");
    let err = open_err(&|b| {
        let first: Vec<u8> = b[slot(0)..slot(1)].to_vec();
        b[slot(1)..slot(2)].copy_from_slice(&first);
    });
    assert!(
        matches!(&err, VaultError::DamagedKeyFile { reason, .. } if reason.contains("both hold")),
        "{err}"
    );

    // Cut after alice's slot: bob's record has no key any more.
    let reads = with_damaged_key_file(dir.path(), &people, |b| b.truncate(slot(1)))
        .expect("a whole number of slots opens");
    assert!(matches!(reads[0], Ok(PersonData::Present(_))));
    assert!(matches!(reads[1], Err(VaultError::KeyMissing { person }) if person == bob));

    // Any single flipped byte in the header or the two used slots: an error or a read,
    // never a panic.
    let mut positions: Vec<usize> = vec![0, 7, 8, 9, 15, 16, 47, 48, 127];
    for s in 0..2 {
        positions.extend([0, 1, 16, 17, 40, 41, 88, 89, 90, 121, 122, 127].map(|o| slot(s) + o));
    }
    for at in positions {
        let _ = with_damaged_key_file(dir.path(), &people, |b| b[at] ^= 0x01);
    }
    for len in [
        0,
        1,
        HEADER_LEN - 1,
        HEADER_LEN,
        slot(0) + 1,
        slot(1) - 1,
        slot(2) + 3,
    ] {
        let _ = with_damaged_key_file(dir.path(), &people, |b| b.truncate(len));
    }

    // Undamaged again, everything reads.
    let vault = Vault::open(dir.path(), master()).expect("restored");
    assert!(matches!(vault.read(alice), Ok(PersonData::Present(_))));
    assert!(matches!(vault.read(bob), Ok(PersonData::Present(_))));
}

#[test]
fn reopening_keeps_everything_and_the_key_file_grows_and_reuses_slots() {
    let dir = TestDir::new("reopen");
    let people: Vec<(PersonId, ContactDetails)> =
        (0..70).map(|_| (person(), sample().details)).collect();
    {
        let vault = Vault::open(dir.path(), master()).expect("open");
        for (p, d) in &people {
            vault.store(*p, d).expect("store");
        }
        vault.erase(people[3].0).expect("erase");
        vault.close().expect("close");
    }
    let key_file = dir.path().join(FILE_NAME);
    let grown = std::fs::metadata(&key_file).expect("metadata").len();
    assert_eq!(grown, (HEADER_LEN + SLOT_LEN * 128) as u64);

    let vault = Vault::open(dir.path(), master()).expect("reopen");
    assert_eq!(vault.len().expect("len"), 69);
    for (i, (p, d)) in people.iter().enumerate() {
        if i == 3 {
            assert_eq!(vault.read(*p).expect("read"), PersonData::Erased);
        } else {
            assert_eq!(&present(&vault, *p), d);
            let phone = d.phone().expect("a phone");
            assert!(vault.find_by_phone(phone).expect("find").contains(p));
        }
    }
    // The erased person's slot is reused; the file does not grow.
    let newcomer = person();
    vault.store(newcomer, &sample().details).expect("store");
    assert_eq!(std::fs::metadata(&key_file).expect("metadata").len(), grown);
    assert_eq!(vault.len().expect("len"), 70);
}

#[test]
fn a_second_open_is_locked_out() {
    let dir = TestDir::new("locked");
    let vault = Vault::open(dir.path(), master()).expect("open");
    let err = Vault::open(dir.path(), master()).expect_err("locked");
    assert!(matches!(err, VaultError::Locked { .. }), "{err}");
    drop(vault);
    Vault::open(dir.path(), master()).expect("free again after drop");
}

#[test]
fn data_without_its_key_file_is_refused_not_replaced() {
    let dir = TestDir::new("key-file-missing");
    let alice = person();
    {
        let vault = Vault::open(dir.path(), master()).expect("open");
        vault.store(alice, &sample().details).expect("store");
    }
    let key_file = dir.path().join(FILE_NAME);
    let saved = std::fs::read(&key_file).expect("read");
    std::fs::remove_file(&key_file).expect("remove");
    let err = Vault::open(dir.path(), master()).expect_err("refused");
    assert!(matches!(err, VaultError::KeyFileMissing { .. }), "{err}");
    assert!(!key_file.exists(), "no new key file was made");
    std::fs::write(&key_file, saved).expect("restore");
    let vault = Vault::open(dir.path(), master()).expect("open");
    assert!(matches!(vault.read(alice), Ok(PersonData::Present(_))));
}

#[test]
fn erasures_are_reapplied_to_a_key_file_restored_from_backup() {
    let dir = TestDir::new("backup");
    let (alice, bob) = (person(), person());
    let key_file = dir.path().join(FILE_NAME);
    let backup = {
        let vault = Vault::open(dir.path(), master()).expect("open");
        vault.store(alice, &sample().details).expect("store");
        vault.store(bob, &sample().details).expect("store");
        let backup = std::fs::read(&key_file).expect("back up the key file");
        vault.erase(alice).expect("erase");
        backup
    };
    // Restoring the old key file brings alice's wrapped key back…
    std::fs::write(&key_file, &backup).expect("restore the backup");
    let vault = Vault::open(dir.path(), master()).expect("open");
    // …and opening erases it again, because the data store remembers the erasure.
    assert!(storage(&vault).key(alice).expect("readable").is_none());
    assert_eq!(vault.read(alice).expect("read"), PersonData::Erased);
    assert!(matches!(vault.read(bob), Ok(PersonData::Present(_))));
    drop(vault);
    let on_disk = std::fs::read(&key_file).expect("read");
    assert!(!contains_bytes(&on_disk, alice.as_bytes()));
    assert!(contains_bytes(&on_disk, bob.as_bytes()));
}

#[test]
fn an_interrupted_erase_is_finished_on_open() {
    let dir = TestDir::new("interrupted-erase");
    let alice = person();
    {
        let vault = Vault::open(dir.path(), master()).expect("open");
        vault.store(alice, &sample().details).expect("store");
        // The first half of an erase, as if the process died before the slot was zeroed.
        storage(&vault).mark_erased(alice).expect("mark");
        assert_eq!(vault.read(alice).expect("read"), PersonData::Erased);
        assert!(storage(&vault).key(alice).expect("readable").is_some());
    }
    let vault = Vault::open(dir.path(), master()).expect("open");
    assert!(storage(&vault).key(alice).expect("readable").is_none());
    assert!(vault.is_empty().expect("is_empty"));

    // Interrupted later: the key bytes were zeroed and synced, the rest of the slot was not.
    let bob = person();
    vault.store(bob, &sample().details).expect("store");
    storage(&vault).mark_erased(bob).expect("mark");
    drop(vault);
    let key_file = dir.path().join(FILE_NAME);
    let mut bytes = std::fs::read(&key_file).expect("read");
    let at = bytes
        .windows(16)
        .position(|w| w == bob.as_bytes())
        .expect("bob's slot");
    bytes[at + 16..at + 16 + 72].fill(0);
    std::fs::write(&key_file, &bytes).expect("write");
    let vault = Vault::open(dir.path(), master()).expect("open");
    assert!(vault.is_empty().expect("is_empty"));
    assert_eq!(vault.read(bob).expect("read"), PersonData::Erased);
    drop(vault);
    let bytes = std::fs::read(&key_file).expect("read");
    assert!(
        bytes[HEADER_LEN..].iter().all(|&b| b == 0),
        "every slot is zero"
    );
}

#[test]
fn a_wrong_master_key_changes_no_byte() {
    let dir = TestDir::new("wrong-key-bytes");
    let alice = person();
    {
        let vault = Vault::open(dir.path(), master()).expect("open");
        vault.store(alice, &sample().details).expect("store");
        vault.close().expect("close");
    }
    let before = all_files(dir.path());
    let err = Vault::open(dir.path(), MasterKey::from_bytes([0xA5; 32])).expect_err("wrong key");
    assert!(matches!(err, VaultError::WrongMasterKey { .. }), "{err}");
    // Not a slot zeroed, not the data store's clean-close fingerprint consumed: the master
    // key is checked before the data store is opened.
    let mut after = all_files(dir.path());
    let mut before = before;
    before.sort();
    after.sort();
    assert_eq!(
        before.iter().map(|(path, _)| path).collect::<Vec<_>>(),
        after.iter().map(|(path, _)| path).collect::<Vec<_>>()
    );
    assert!(before == after, "a file changed");
}

#[test]
fn an_unbound_store_refuses_use_and_creates_no_key_file() {
    let dir = TestDir::new("unbound");
    let store = SledVaultStore::open(dir.path()).expect("open");
    let alice = person();
    let err = store.put_record(alice, b"x").expect_err("not bound");
    assert!(
        matches!(&err, VaultError::Storage { reason, .. } if reason.contains("not bound")),
        "{err}"
    );
    assert!(store.key(alice).is_err());
    assert!(!dir.path().join(FILE_NAME).exists());
    assert_eq!(store.location(), dir.path().display().to_string());
    assert_eq!(store.dir(), dir.path());

    // Bound, it works; bound again, only the same master key is accepted.
    let check = [7u8; 32];
    store.bind(&check).expect("bind");
    assert!(dir.path().join(FILE_NAME).exists());
    store.bind(&check).expect("the same check value again");
    let err = store.bind(&[8u8; 32]).expect_err("another check value");
    assert!(matches!(err, VaultError::WrongMasterKey { .. }), "{err}");
    store.put_record(alice, b"x").expect("bound");
    assert_eq!(store.record(alice).expect("read"), Some(b"x".to_vec()));
}
