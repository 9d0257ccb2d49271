//! The vault's behaviour through its API, on every backend: the embedded store in a
//! directory ([`Vault::open`]) and the in-memory store of `tests/memory.rs`
//! ([`Vault::with_store`]). Tests of the embedded store's files (damaged key files, torn
//! erasures, locking) are with `SledVaultStore`, in the embedded backend's module; they share
//! the helpers here.

mod memory;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::crypto::{fill_random, open_record, Secret32, KEY_LEN};
use super::*;
use crate::clock::Timestamp;
use memory::MemoryVaultStore;

/// A fresh directory under the system's temporary directory, removed when dropped.
pub(crate) struct TestDir(PathBuf);

impl TestDir {
    pub(crate) fn new(name: &str) -> Self {
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

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn master() -> MasterKey {
    MasterKey::from_bytes([0x5A; 32])
}

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill_random(&mut out).expect("the test needs randomness");
    out
}

pub(crate) fn person() -> PersonId {
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
pub(crate) struct Sample {
    pub(crate) details: ContactDetails,
    pub(crate) national_phone: String,
}

pub(crate) fn sample() -> Sample {
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

pub(crate) fn present(vault: &Vault, person: PersonId) -> ContactDetails {
    match vault.read(person).expect("readable") {
        PersonData::Present(details) => details,
        other => panic!("expected details for {person}, got {other:?}"),
    }
}

/// The bytes of every file under `dir`.
pub(crate) fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
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

pub(crate) fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
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
pub(crate) fn files_containing(files: &[(PathBuf, Vec<u8>)], needle: &[u8]) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|(_, bytes)| contains_bytes(bytes, needle))
        .map(|(path, _)| path.clone())
        .collect()
}

/// The vault's store, to look inside it or to change it behind the vault's back.
pub(crate) fn storage(vault: &Vault) -> &dyn VaultStore {
    &*vault.storage
}

fn data_key(vault: &Vault, person: PersonId) -> Option<Secret32> {
    let slot = storage(vault).key(person).expect("readable slot")?;
    vault.keys.unwrap_key(person, &slot.nonce, &slot.wrapped)
}

/// The bytes of the person's data key, unwrapped (to look for them in files).
pub(crate) fn data_key_bytes(vault: &Vault, person: PersonId) -> Option<[u8; KEY_LEN]> {
    data_key(vault, person).map(|key| *key.as_bytes())
}

/// Where a test's vault lives. Dropping the vault and opening the home again is a restart.
pub(crate) enum Home {
    /// The embedded store in a directory, through [`Vault::open`].
    Dir(TestDir),
    /// The in-memory store, through [`Vault::with_store`]; it outlives the vaults opened on
    /// it as a directory does.
    Memory(Arc<MemoryVaultStore>),
}

impl Home {
    pub(crate) fn open(&self, master: MasterKey) -> Result<Vault, VaultError> {
        match self {
            Self::Dir(dir) => Vault::open(dir.path(), master),
            Self::Memory(store) => Vault::with_store(Arc::clone(store), master),
        }
    }

    /// Says which backend the test is on (shown when it fails).
    fn announce(&self) {
        match self {
            Self::Dir(dir) => println!("backend: embedded store in {}", dir.path().display()),
            Self::Memory(_) => println!("backend: in-memory store"),
        }
    }
}

/// Every backend, for a behaviour test named `name`.
fn homes(name: &str) -> [Home; 2] {
    [
        Home::Dir(TestDir::new(name)),
        Home::Memory(Arc::new(MemoryVaultStore::default())),
    ]
}

#[test]
fn details_round_trip_and_a_second_store_replaces_them() {
    for home in homes("round-trip") {
        home.announce();
        let vault = home.open(master()).expect("open");
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
        assert_eq!(vault.len().expect("len"), 1);

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
        assert_eq!(vault.len().expect("len"), 1);
        vault.close().expect("close");
    }
}

#[test]
fn erasing_makes_the_data_unreadable_and_the_person_stays_erased() {
    for home in homes("erase") {
        home.announce();
        let vault = home.open(master()).expect("open");
        let (alice, bob, never) = (person(), person(), person());
        let (a, b) = (sample(), sample());
        vault.store(alice, &a.details).expect("store alice");
        vault.store(bob, &b.details).expect("store bob");
        let record = storage(&vault)
            .record(alice)
            .expect("read")
            .expect("a record");

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
        let vault = home.open(master()).expect("reopen");
        assert_eq!(vault.read(alice).expect("read"), PersonData::Erased);
        assert!(data_key(&vault, alice).is_none());
        assert!(storage(&vault).key(alice).expect("readable").is_none());
        let bob_key = data_key(&vault, bob).expect("bob's key");
        assert!(open_record(alice, &bob_key, &record).is_err());
        assert!(open_record(bob, &bob_key, &record).is_err());
        assert_eq!(present(&vault, bob), b.details);
    }
}

#[test]
fn phone_search_finds_every_spelling_and_nothing_after_erase() {
    for home in homes("phone") {
        home.announce();
        let vault = home.open(master()).expect("open");
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
        let vault = home.open(master()).expect("reopen");
        assert!(vault.find_by_phone("13812345678").expect("find").is_empty());
        assert_eq!(
            vault.find_by_phone("13812345679").expect("find"),
            vec![carol]
        );
    }
}

#[test]
fn a_wrong_master_key_is_refused_clearly() {
    for home in homes("wrong-key") {
        home.announce();
        let alice = person();
        {
            let vault = home.open(master()).expect("open");
            vault.store(alice, &sample().details).expect("store");
        }
        let err = home
            .open(MasterKey::from_bytes([0xA5; 32]))
            .expect_err("wrong key");
        assert!(matches!(err, VaultError::WrongMasterKey { .. }), "{err}");
        assert!(err.to_string().contains("wrong master key"), "{err}");
        // The right key still opens it: nothing was changed by the failed open.
        let vault = home.open(master()).expect("right key");
        assert!(matches!(vault.read(alice), Ok(PersonData::Present(_))));
    }
}

/// Runs `damage` on the closed vault's key file, reopens and reads every person.
#[test]
fn a_damaged_data_record_is_an_error_never_a_panic() {
    for home in homes("damaged-record") {
        home.announce();
        let vault = home.open(master()).expect("open");
        let (alice, bob) = (person(), person());
        let a = sample();
        vault.store(alice, &a.details).expect("store");
        vault.store(bob, &sample().details).expect("store");
        let record = storage(&vault)
            .record(alice)
            .expect("read")
            .expect("a record");
        let bobs = storage(&vault)
            .record(bob)
            .expect("read")
            .expect("a record");

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
            storage(&vault).put_record(alice, &damaged).expect("damage");
            let err = vault.read(alice).expect_err("damaged");
            assert!(
                matches!(err, VaultError::DamagedRecord { person, .. } if person == alice),
                "{err}"
            );
            assert!(err.to_string().contains(&alice.to_string()), "{err}");
        }
        storage(&vault).put_record(alice, &record).expect("restore");
        assert_eq!(present(&vault, alice), a.details);
    }
}

#[test]
fn concurrent_stores_reads_and_erases_are_consistent() {
    for home in homes("concurrent") {
        home.announce();
        let vault = Arc::new(home.open(master()).expect("open"));
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
            assert_eq!(
                vault.len().expect("len"),
                all.iter().filter(|(_, _, e)| !e).count()
            );
        };
        check(&vault);
        let vault = Arc::try_unwrap(vault).expect("the only handle");
        drop(vault);
        check(&home.open(master()).expect("reopen"));
    }
}

#[test]
fn the_vault_is_send_and_sync_and_its_debug_shows_no_secrets() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Vault>();
    for home in homes("debug") {
        home.announce();
        let vault = home
            .open(MasterKey::from_bytes([0x11; KEY_LEN]))
            .expect("open");
        vault.store(person(), &sample().details).expect("store");
        let debug = format!("{vault:?}");
        assert!(debug.contains("Vault"), "{debug}");
        assert!(!debug.contains("17, 17"), "{debug}");
        assert!(!debug.to_lowercase().contains("1111111111"), "{debug}");
    }
}
