//! A [`VaultStore`] in memory, to show the vault's logic is the same on any backend and to
//! make a store fail on purpose. A test double, not a backend: memory it frees is not
//! wiped, so destroying a key here does not meet the trait's "no copy left" rule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::{master, person, sample, storage};
use crate::vault::{
    constant_time_eq, lock, MasterKey, PersonData, PersonId, Vault, VaultError, VaultStore,
    WrappedKey, CHECK_VALUE_LEN,
};

#[derive(Default)]
struct Contents {
    check: Option<[u8; CHECK_VALUE_LEN]>,
    keys: BTreeMap<PersonId, WrappedKey>,
    records: BTreeMap<PersonId, Vec<u8>>,
    erased: BTreeSet<PersonId>,
}

/// Everything in one `Mutex<BTreeMap…>`s; every change is "durable" at once.
#[derive(Default)]
pub(crate) struct MemoryVaultStore {
    contents: Mutex<Contents>,
    /// While set, every change fails as a full disk would.
    fail_writes: AtomicBool,
}

impl std::fmt::Debug for MemoryVaultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryVaultStore")
            .field("keys", &lock(&self.contents).keys.len())
            .finish_non_exhaustive()
    }
}

const LOCATION: &str = "memory";

impl MemoryVaultStore {
    fn fail_writes(&self, fail: bool) {
        self.fail_writes.store(fail, Ordering::SeqCst);
    }

    fn write(&self) -> Result<std::sync::MutexGuard<'_, Contents>, VaultError> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(VaultError::Storage {
                path: PathBuf::from(LOCATION),
                reason: "no space left (a test's failure)".into(),
            });
        }
        Ok(lock(&self.contents))
    }
}

impl VaultStore for MemoryVaultStore {
    fn location(&self) -> String {
        LOCATION.into()
    }

    fn bind(&self, check: &[u8; CHECK_VALUE_LEN]) -> Result<(), VaultError> {
        let mut contents = lock(&self.contents);
        match &contents.check {
            Some(held) if constant_time_eq(held, check) => Ok(()),
            Some(_) => Err(VaultError::WrongMasterKey {
                path: PathBuf::from(LOCATION),
            }),
            None if !contents.records.is_empty() || !contents.erased.is_empty() => {
                Err(VaultError::KeyFileMissing {
                    path: PathBuf::from(LOCATION),
                })
            }
            None => {
                contents.check = Some(*check);
                Ok(())
            }
        }
    }

    fn key(&self, person: PersonId) -> Result<Option<WrappedKey>, VaultError> {
        Ok(lock(&self.contents).keys.get(&person).cloned())
    }

    fn put_key(&self, key: &WrappedKey) -> Result<(), VaultError> {
        self.write()?.keys.insert(key.person, key.clone());
        Ok(())
    }

    fn destroy_key(&self, person: PersonId) -> Result<bool, VaultError> {
        Ok(self.write()?.keys.remove(&person).is_some())
    }

    fn find_by_phone_tag(
        &self,
        tag: &[u8; WrappedKey::PHONE_TAG_LEN],
    ) -> Result<Vec<PersonId>, VaultError> {
        Ok(lock(&self.contents)
            .keys
            .values()
            .filter(|key| key.phone_tag.as_ref() == Some(tag))
            .map(|key| key.person)
            .collect())
    }

    fn key_count(&self) -> Result<usize, VaultError> {
        Ok(lock(&self.contents).keys.len())
    }

    fn record(&self, person: PersonId) -> Result<Option<Vec<u8>>, VaultError> {
        Ok(lock(&self.contents).records.get(&person).cloned())
    }

    fn put_record(&self, person: PersonId, record: &[u8]) -> Result<(), VaultError> {
        self.write()?.records.insert(person, record.to_vec());
        Ok(())
    }

    fn has_record(&self, person: PersonId) -> Result<bool, VaultError> {
        Ok(lock(&self.contents).records.contains_key(&person))
    }

    fn mark_erased(&self, person: PersonId) -> Result<(), VaultError> {
        let mut contents = self.write()?;
        contents.erased.insert(person);
        contents.records.remove(&person);
        Ok(())
    }

    fn is_erased(&self, person: PersonId) -> Result<bool, VaultError> {
        Ok(lock(&self.contents).erased.contains(&person))
    }

    fn erased(&self) -> Result<Vec<PersonId>, VaultError> {
        Ok(lock(&self.contents).erased.iter().copied().collect())
    }

    fn holds_people(&self) -> Result<bool, VaultError> {
        let contents = lock(&self.contents);
        Ok(!contents.records.is_empty() || !contents.erased.is_empty())
    }

    fn sync(&self) -> Result<(), VaultError> {
        Ok(())
    }
}

/// The vault's conformance kit (`testkit::vault`) on the in-memory store: the kit's checks
/// hold for this double as for a real backend, so the behaviour tests here and the kit agree.
#[cfg(feature = "testkit")]
mod conformance {
    use std::sync::Arc;

    use super::MemoryVaultStore;
    use crate::testkit::vault::VaultBackend;
    use crate::vault::{lock, VaultError, VaultStore};

    /// Each place is a store of its own, kept alive by the place as a directory would be.
    struct MemoryVaults;

    impl VaultBackend for MemoryVaults {
        type Place = Arc<MemoryVaultStore>;

        fn place(&self) -> Arc<MemoryVaultStore> {
            Arc::default()
        }

        fn open(&self, place: &Arc<MemoryVaultStore>) -> Result<Box<dyn VaultStore>, VaultError> {
            Ok(Box::new(Arc::clone(place)))
        }

        fn lose_keys(&self, place: &Arc<MemoryVaultStore>) {
            let mut contents = lock(&place.contents);
            contents.check = None;
            contents.keys.clear();
        }

        fn name(&self) -> String {
            "in-memory test double (MemoryVaultStore)".to_owned()
        }
    }

    crate::vault_store_conformance!(MemoryVaults);
}

#[test]
fn the_vault_works_over_a_store_other_than_the_embedded_one() {
    let store = Arc::new(MemoryVaultStore::default());
    let vault = Vault::with_store(Arc::clone(&store), master()).expect("open");
    assert_eq!(vault.location(), "memory");
    let (alice, bob) = (person(), person());
    let a = sample();
    vault.store(alice, &a.details).expect("store alice");
    vault.store(bob, &sample().details).expect("store bob");

    // Read, masked.
    let read = vault.read(alice).expect("read");
    assert_eq!(read.details(), Some(&a.details));
    let masked = read.masked().expect("present");
    let phone = masked.phone.expect("a masked phone");
    assert!(phone.contains("****"), "{phone}");
    assert_ne!(Some(phone.as_str()), a.details.phone());

    // Found by phone, in another spelling.
    let spelled = format!("+86 {}", a.national_phone);
    assert_eq!(vault.find_by_phone(&spelled).expect("find"), vec![alice]);

    // The store holds ciphertext, never the details.
    let record = store.record(alice).expect("read").expect("a record");
    let name = a.details.name().expect("a name").as_bytes();
    assert!(!super::contains_bytes(&record, name));

    // Erased: reads as erased, not found by phone, its key gone from the store.
    vault.erase(alice).expect("erase");
    assert_eq!(vault.read(alice).expect("read"), PersonData::Erased);
    assert!(vault.find_by_phone(&spelled).expect("find").is_empty());
    assert_eq!(store.key(alice).expect("read"), None);
    assert_eq!(store.record(alice).expect("read"), None);
    assert_eq!(vault.len().expect("len"), 1);
    vault.close().expect("close");

    // Another master key is refused; the right one opens it again.
    let err = Vault::with_store(Arc::clone(&store), MasterKey::from_bytes([0xA5; 32]))
        .expect_err("wrong key");
    assert!(matches!(err, VaultError::WrongMasterKey { .. }), "{err}");
    let vault = Vault::with_store(Arc::clone(&store), master()).expect("right key");
    assert_eq!(vault.read(alice).expect("read"), PersonData::Erased);
    assert!(matches!(vault.read(bob), Ok(PersonData::Present(_))));
}

#[test]
fn opening_destroys_the_keys_of_people_marked_erased() {
    // An erasure interrupted after its marker, or keys restored from a backup older than
    // the marker: the next vault on the store destroys the key.
    let store = Arc::new(MemoryVaultStore::default());
    let alice = person();
    {
        let vault = Vault::with_store(Arc::clone(&store), master()).expect("open");
        vault.store(alice, &sample().details).expect("store");
        storage(&vault).mark_erased(alice).expect("mark");
        assert_eq!(vault.read(alice).expect("read"), PersonData::Erased);
        assert!(store.key(alice).expect("read").is_some());
    }
    let vault = Vault::with_store(Arc::clone(&store), master()).expect("reopen");
    assert!(store.key(alice).expect("read").is_none());
    assert!(vault.is_empty().expect("is_empty"));
}

#[test]
fn a_failed_write_poisons_the_vault_and_erasing_still_works() {
    let store = Arc::new(MemoryVaultStore::default());
    let vault = Vault::with_store(Arc::clone(&store), master()).expect("open");
    let (alice, bob) = (person(), person());
    vault.store(alice, &sample().details).expect("store");

    store.fail_writes(true);
    let err = vault
        .store(bob, &sample().details)
        .expect_err("the write fails");
    assert!(matches!(err, VaultError::Storage { .. }), "{err}");
    store.fail_writes(false);

    // The disk works again, but the vault refuses stores until it is reopened.
    let err = vault.store(bob, &sample().details).expect_err("poisoned");
    assert!(matches!(err, VaultError::Poisoned { .. }), "{err}");
    assert!(err.to_string().contains("no space left"), "{err}");
    // Reading and erasing still work.
    assert!(matches!(vault.read(alice), Ok(PersonData::Present(_))));
    vault.erase(alice).expect("erase");
    assert_eq!(vault.read(alice).expect("read"), PersonData::Erased);
    drop(vault);

    let vault = Vault::with_store(store, master()).expect("reopen");
    vault
        .store(bob, &sample().details)
        .expect("a new vault stores");
}

#[test]
fn a_store_that_holds_people_but_no_check_value_is_not_rebound() {
    let store = Arc::new(MemoryVaultStore::default());
    let alice = person();
    {
        let vault = Vault::with_store(Arc::clone(&store), master()).expect("open");
        vault.store(alice, &sample().details).expect("store");
    }
    // The keys and the check value lost, the records kept.
    {
        let mut contents = lock(&store.contents);
        contents.check = None;
        contents.keys.clear();
    }
    let err = Vault::with_store(Arc::clone(&store), master()).expect_err("refused");
    assert!(matches!(err, VaultError::KeyFileMissing { .. }), "{err}");
    assert!(
        lock(&store.contents).check.is_none(),
        "no check value recorded"
    );
}

#[test]
fn a_record_the_files_lost_is_an_error_not_a_person_without_details() {
    let store = Arc::new(MemoryVaultStore::default());
    let vault = Vault::with_store(Arc::clone(&store), master()).expect("open");
    let (kept, lost, never) = (person(), person(), person());
    vault.store(kept, &sample().details).expect("store");
    vault.store(lost, &sample().details).expect("store");
    // The files lose one record (a damaged page sled drops on recovery): its key stays.
    store
        .contents
        .lock()
        .expect("not poisoned")
        .records
        .remove(&lost);
    let err = vault.read(lost).expect_err("refused");
    assert!(
        matches!(err, VaultError::RecordMissing { person } if person == lost),
        "{err}"
    );
    assert!(err.to_string().contains("restore the vault"), "{err}");
    // Someone never stored is unknown, as before; the other person reads as stored.
    assert_eq!(vault.read(never).expect("read"), PersonData::Unknown);
    assert!(matches!(vault.read(kept), Ok(PersonData::Present(_))));
}
