//! The vault's behaviour through its API, and its files' bytes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::crypto::{fill_random, open_record, Secret32, KEY_LEN};
use super::keyfile::{FILE_NAME, HEADER_LEN, SLOT_LEN};
use super::*;
use crate::clock::Timestamp;

/// A fresh directory under the system's temporary directory, removed when dropped.
pub(super) struct TestDir(PathBuf);

impl TestDir {
    pub(super) fn new(name: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let mut random = [0u8; 8];
        fill_random(&mut random).expect("the test needs randomness");
        let path = std::env::temp_dir().join(format!(
            "civicflow-vault-{name}-{}-{}-{:016x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            u64::from_le_bytes(random)
        ));
        std::fs::create_dir_all(&path).expect("create the test directory");
        Self(path)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn master() -> MasterKey {
    MasterKey::from_bytes([0x5A; 32])
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill_random(&mut out).expect("the test needs randomness");
    out
}

fn person() -> PersonId {
    PersonId::new_v7(Timestamp::from_unix_seconds(1_767_225_600))
}

/// Random CJK characters, so that the value occurs nowhere by chance.
fn random_cjk(n: usize) -> String {
    random_bytes::<32>()
        .chunks_exact(2)
        .take(n)
        .map(|pair| {
            let offset = u32::from(u16::from_le_bytes([pair[0], pair[1]]) % 0x4000);
            char::from_u32(0x4E00 + offset).expect("inside the CJK block")
        })
        .collect()
}

fn random_digits(n: usize) -> String {
    random_bytes::<32>()
        .iter()
        .take(n)
        .map(|b| char::from(b'0' + b % 10))
        .collect()
}

/// Contact details made of random values, and the national form of the phone number.
struct Sample {
    details: ContactDetails,
    national_phone: String,
}

fn sample() -> Sample {
    let national_phone = format!("139{}", random_digits(8));
    let typed_phone = format!(
        "{} {} {}",
        &national_phone[..3],
        &national_phone[3..7],
        &national_phone[7..]
    );
    let details = ContactDetails::new(
        Some(&format!("王{}", random_cjk(5))),
        Some(&typed_phone),
        Some(&format!("u{}@example.com", random_digits(12))),
        Some(&format!("北京市通州区{}号", random_cjk(8))),
    )
    .expect("valid sample");
    Sample {
        details,
        national_phone,
    }
}

fn present(vault: &Vault, person: PersonId) -> ContactDetails {
    match vault.read(person).expect("readable") {
        PersonData::Present(details) => details,
        other => panic!("expected details for {person}, got {other:?}"),
    }
}

/// The bytes of every file under `dir`.
fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("list the vault directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read a vault file");
                out.push((path, bytes));
            }
        }
    }
    out
}

pub(super) fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let mut from = 0;
    while let Some(i) = haystack[from..].iter().position(|&b| b == first) {
        let at = from + i;
        if haystack[at + 1..].starts_with(rest) {
            return true;
        }
        from = at + 1;
    }
    false
}

/// The files under `dir` that contain `needle`.
fn files_containing(files: &[(PathBuf, Vec<u8>)], needle: &[u8]) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|(_, bytes)| contains_bytes(bytes, needle))
        .map(|(path, _)| path.clone())
        .collect()
}

fn data_key(vault: &Vault, person: PersonId) -> Option<Secret32> {
    let slot = lock(&vault.key_file).get(person).expect("readable slot")?;
    vault.keys.unwrap_key(person, &slot.nonce, &slot.wrapped)
}

#[test]
fn details_round_trip_and_a_second_store_replaces_them() {
    let dir = TestDir::new("round-trip");
    let vault = Vault::open(dir.path(), master()).expect("open");
    let (alice, bob) = (person(), person());
    let first = ContactDetails::new(
        Some("李伟"),
        Some("138 1234 5678"),
        Some("li.wei@example.com"),
        Some("北京市通州区通惠社区12号楼"),
    )
    .expect("valid");
    vault.store(alice, &first).expect("store");
    assert_eq!(present(&vault, alice), first);
    assert_eq!(vault.read(bob).expect("read"), PersonData::Unknown);
    assert!(!vault.is_erased(alice).expect("is_erased"));
    assert_eq!(vault.len(), 1);

    // Only a name: the other fields are gone, and so is the old phone's search entry.
    let second = ContactDetails::default()
        .with_name("Li Wei")
        .expect("valid");
    vault.store(alice, &second).expect("store again");
    assert_eq!(present(&vault, alice), second);
    assert!(vault.find_by_phone("13812345678").expect("find").is_empty());
    let key_before = data_key(&vault, alice).expect("a key");
    let third = second
        .clone()
        .with_phone("+86 139 0000 1111")
        .expect("valid");
    vault.store(alice, &third).expect("store a third time");
    // A new phone number keeps the person's key.
    let key_after = data_key(&vault, alice).expect("a key");
    assert_eq!(key_before.as_bytes(), key_after.as_bytes());
    assert_eq!(
        vault.find_by_phone("13900001111").expect("find"),
        vec![alice]
    );
    assert_eq!(
        vault.read(alice).expect("read").masked(),
        Some(MaskedContact {
            name: Some("Li W***".into()),
            phone: Some("139****1111".into()),
            email: None,
            address: None,
        })
    );
    assert_eq!(vault.len(), 1);
    vault.close().expect("close");
}

#[test]
fn erasing_makes_the_data_unreadable_and_the_person_stays_erased() {
    let dir = TestDir::new("erase");
    let vault = Vault::open(dir.path(), master()).expect("open");
    let (alice, bob, never) = (person(), person(), person());
    let (a, b) = (sample(), sample());
    vault.store(alice, &a.details).expect("store alice");
    vault.store(bob, &b.details).expect("store bob");
    let record = vault.data.record(alice).expect("read").expect("a record");

    vault.erase(alice).expect("erase");
    assert_eq!(vault.read(alice).expect("read"), PersonData::Erased);
    assert!(vault.is_erased(alice).expect("is_erased"));
    assert!(vault
        .find_by_phone(&a.national_phone)
        .expect("find")
        .is_empty());
    assert!(matches!(
        vault.store(alice, &a.details),
        Err(VaultError::Erased { person }) if person == alice
    ));
    vault.erase(alice).expect("erasing again is fine");
    vault
        .erase(never)
        .expect("erasing someone never stored is fine");
    assert_eq!(vault.read(never).expect("read"), PersonData::Erased);
    assert_eq!(present(&vault, bob), b.details);
    drop(vault);

    // Reopened with the right master key: still erased, no key for alice, and no key the
    // vault holds decrypts her old record.
    let vault = Vault::open(dir.path(), master()).expect("reopen");
    assert_eq!(vault.read(alice).expect("read"), PersonData::Erased);
    assert!(data_key(&vault, alice).is_none());
    assert!(!lock(&vault.key_file).contains(alice));
    let bob_key = data_key(&vault, bob).expect("bob's key");
    assert!(open_record(alice, &bob_key, &record).is_err());
    assert!(open_record(bob, &bob_key, &record).is_err());
    assert_eq!(present(&vault, bob), b.details);
}

#[test]
fn files_hold_ciphertext_only_and_nothing_of_an_erased_person() {
    let dir = TestDir::new("raw-bytes");
    let vault = Vault::open(dir.path(), master()).expect("open");
    let (alice, bob) = (person(), person());
    let (a, b) = (sample(), sample());
    vault.store(alice, &a.details).expect("store alice");
    vault.store(bob, &b.details).expect("store bob");

    let key = data_key(&vault, alice).expect("alice's key");
    let slot = lock(&vault.key_file)
        .get(alice)
        .expect("readable")
        .expect("a slot");
    let tag = slot.phone_tag.expect("a phone tag");
    let record = vault.data.record(alice).expect("read").expect("a record");
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
    assert!(files_containing(&files, key.as_bytes()).is_empty());

    vault.erase(alice).expect("erase");
    let after = |files: &[(PathBuf, Vec<u8>)]| {
        for (what, bytes) in &plaintexts {
            assert!(
                files_containing(files, bytes).is_empty(),
                "{what} after erase"
            );
        }
        for (what, bytes) in [
            ("data key", &key.as_bytes()[..]),
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

#[test]
fn phone_search_finds_every_spelling_and_nothing_after_erase() {
    let dir = TestDir::new("phone");
    let vault = Vault::open(dir.path(), master()).expect("open");
    let (alice, bob, carol) = (person(), person(), person());
    let shared = ContactDetails::default()
        .with_phone("138 1234 5678")
        .expect("valid");
    vault.store(alice, &shared).expect("store");
    vault
        .store(bob, &shared.clone().with_name("张三").expect("valid"))
        .expect("store");
    vault
        .store(
            carol,
            &ContactDetails::default()
                .with_phone("13812345679")
                .expect("valid"),
        )
        .expect("store");
    let mut both = vec![alice, bob];
    both.sort();
    for spelling in [
        "13812345678",
        "+86 138 1234 5678",
        "+86-138-1234-5678",
        "0086 13812345678",
        "86 138 1234 5678",
        "(138) 1234 5678",
        "１３８ １２３４ ５６７８",
    ] {
        assert_eq!(
            vault.find_by_phone(spelling).expect("find"),
            both,
            "{spelling}"
        );
    }
    assert_eq!(
        vault.find_by_phone("138-1234-5679").expect("find"),
        vec![carol]
    );
    assert!(vault.find_by_phone("13800000000").expect("find").is_empty());
    assert!(matches!(
        vault.find_by_phone("not a phone"),
        Err(VaultError::InvalidSearch(InvalidContact {
            field: "phone",
            ..
        }))
    ));
    vault.erase(alice).expect("erase");
    assert_eq!(
        vault.find_by_phone("+8613812345678").expect("find"),
        vec![bob]
    );
    vault.erase(bob).expect("erase");
    assert!(vault.find_by_phone("13812345678").expect("find").is_empty());
    drop(vault);
    let vault = Vault::open(dir.path(), master()).expect("reopen");
    assert!(vault.find_by_phone("13812345678").expect("find").is_empty());
    assert_eq!(
        vault.find_by_phone("13812345679").expect("find"),
        vec![carol]
    );
}

#[test]
fn a_wrong_master_key_is_refused_clearly() {
    let dir = TestDir::new("wrong-key");
    let alice = person();
    {
        let vault = Vault::open(dir.path(), master()).expect("open");
        vault.store(alice, &sample().details).expect("store");
    }
    let err = Vault::open(dir.path(), MasterKey::from_bytes([0xA5; 32])).expect_err("wrong key");
    assert!(matches!(err, VaultError::WrongMasterKey { .. }), "{err}");
    assert!(err.to_string().contains("wrong master key"), "{err}");
    // The right key still opens it: nothing was changed by the failed open.
    let vault = Vault::open(dir.path(), master()).expect("right key");
    assert!(matches!(vault.read(alice), Ok(PersonData::Present(_))));
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
fn a_damaged_data_record_is_an_error_never_a_panic() {
    let dir = TestDir::new("damaged-record");
    let vault = Vault::open(dir.path(), master()).expect("open");
    let (alice, bob) = (person(), person());
    let a = sample();
    vault.store(alice, &a.details).expect("store");
    vault.store(bob, &sample().details).expect("store");
    let record = vault.data.record(alice).expect("read").expect("a record");
    let bobs = vault.data.record(bob).expect("read").expect("a record");

    let mut cases: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![1],
        record[..20].to_vec(),
        record[..record.len() - 1].to_vec(),
        bobs.clone(),
    ];
    let mut wrong_format = record.clone();
    wrong_format[0] = 9;
    cases.push(wrong_format);
    for at in [1, 24, 25, record.len() / 2, record.len() - 1] {
        let mut flipped = record.clone();
        flipped[at] ^= 0x04;
        cases.push(flipped);
    }
    for damaged in cases {
        vault.data.put_raw_record(alice, &damaged).expect("damage");
        let err = vault.read(alice).expect_err("damaged");
        assert!(
            matches!(err, VaultError::DamagedRecord { person, .. } if person == alice),
            "{err}"
        );
        assert!(err.to_string().contains(&alice.to_string()), "{err}");
    }
    vault.data.put_raw_record(alice, &record).expect("restore");
    assert_eq!(present(&vault, alice), a.details);
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
    assert_eq!(vault.len(), 69);
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
    assert_eq!(vault.len(), 70);
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
    assert!(!lock(&vault.key_file).contains(alice));
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
        vault.data.mark_erased(alice).expect("mark");
        assert_eq!(vault.read(alice).expect("read"), PersonData::Erased);
        assert!(lock(&vault.key_file).contains(alice));
    }
    let vault = Vault::open(dir.path(), master()).expect("open");
    assert!(!lock(&vault.key_file).contains(alice));
    assert!(vault.is_empty());

    // Interrupted later: the key bytes were zeroed and synced, the rest of the slot was not.
    let bob = person();
    vault.store(bob, &sample().details).expect("store");
    vault.data.mark_erased(bob).expect("mark");
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
    assert!(vault.is_empty());
    assert_eq!(vault.read(bob).expect("read"), PersonData::Erased);
    drop(vault);
    let bytes = std::fs::read(&key_file).expect("read");
    assert!(
        bytes[HEADER_LEN..].iter().all(|&b| b == 0),
        "every slot is zero"
    );
}

#[test]
fn concurrent_stores_reads_and_erases_are_consistent() {
    let dir = TestDir::new("concurrent");
    let vault = Arc::new(Vault::open(dir.path(), master()).expect("open"));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let vault = Arc::clone(&vault);
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..12 {
                    let p = person();
                    let details = ContactDetails::default()
                        .with_name(&format!("线程{t}号{i}"))
                        .and_then(|d| d.with_phone(&format!("1390000{t:02}{i:02}")))
                        .expect("valid");
                    vault.store(p, &details).expect("store");
                    // Store again, read back, sometimes erase: all on this person.
                    vault.store(p, &details).expect("store again");
                    assert_eq!(present(&vault, p), details);
                    let erased = i % 4 == 0;
                    if erased {
                        vault.erase(p).expect("erase");
                    }
                    mine.push((p, details, erased));
                }
                mine
            })
        })
        .collect();
    let mut all = Vec::new();
    for thread in threads {
        all.extend(thread.join().expect("a writer thread"));
    }
    // Readers and a writer racing on one person.
    let contested = person();
    let details = sample().details;
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..20 {
                    let _ = vault.read(contested).expect("never an error");
                }
            });
        }
        s.spawn(|| {
            for _ in 0..10 {
                vault.store(contested, &details).expect("store");
            }
            vault.erase(contested).expect("erase");
        });
    });
    assert_eq!(vault.read(contested).expect("read"), PersonData::Erased);

    let check = |vault: &Vault| {
        for (p, details, erased) in &all {
            let phone = details.phone().expect("phone");
            if *erased {
                assert_eq!(vault.read(*p).expect("read"), PersonData::Erased);
                assert!(vault.find_by_phone(phone).expect("find").is_empty());
            } else {
                assert_eq!(&present(vault, *p), details);
                assert_eq!(vault.find_by_phone(phone).expect("find"), vec![*p]);
            }
        }
        assert_eq!(vault.len(), all.iter().filter(|(_, _, e)| !e).count());
    };
    check(&vault);
    let vault = Arc::try_unwrap(vault).expect("the only handle");
    drop(vault);
    check(&Vault::open(dir.path(), master()).expect("reopen"));
}

#[test]
fn the_vault_is_send_and_sync_and_its_debug_shows_no_secrets() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Vault>();
    let dir = TestDir::new("debug");
    let vault = Vault::open(dir.path(), MasterKey::from_bytes([0x11; KEY_LEN])).expect("open");
    let debug = format!("{vault:?}");
    assert!(debug.contains("Vault"), "{debug}");
    assert!(!debug.contains("17, 17"), "{debug}");
    assert!(!debug.to_lowercase().contains("1111111111"), "{debug}");
}
