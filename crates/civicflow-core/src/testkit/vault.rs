//! The vault's conformance kit: what every [`VaultStore`] must do, written once against the
//! trait and [`Vault::with_store`], for every storage backend.
//!
//! The vault's logic (the cryptography, phone tags, the per-person locks) is the same on
//! every backend; these checks prove that a backend keeps what the vault relies on: keys,
//! tags, records and erasure markers come back as stored, across a reopen; a destroyed key
//! and an erased record are gone; the master key's check value is recorded once and then
//! guards the store; calls from many threads at once are kept apart. The embedded store
//! (`SledVaultStore`) and an in-memory test double run the kit in civicflow-core's own tests,
//! `PgVaultStore` in civicflow-postgres's.
//!
//! What no shared check can see stays in each backend's own tests: that a destroyed key's
//! bytes are gone from the files or pages (the embedded store looks in its files), torn
//! writes, locking, several processes on one store.
//!
//! # Running it
//!
//! A [`VaultBackend`] makes fresh places and opens the store at a place;
//! [`vault_store_conformance!`](crate::vault_store_conformance) turns every check into a
//! `#[test]`:
//!
//! ```
//! use std::path::PathBuf;
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! use civicflow_core::testkit::vault::VaultBackend;
//! use civicflow_core::vault::{VaultError, VaultStore};
//! use civicflow_core::SledVaultStore;
//!
//! /// Embedded vault stores in fresh directories.
//! struct EmbeddedVaults;
//!
//! /// A directory, removed when dropped.
//! struct Dir(PathBuf);
//!
//! impl Drop for Dir {
//!     fn drop(&mut self) {
//!         let _ = std::fs::remove_dir_all(&self.0);
//!     }
//! }
//!
//! impl VaultBackend for EmbeddedVaults {
//!     type Place = Dir;
//!
//!     fn place(&self) -> Dir {
//!         static NEXT: AtomicU64 = AtomicU64::new(0);
//!         let n = NEXT.fetch_add(1, Ordering::Relaxed);
//!         Dir(std::env::temp_dir().join(format!("doc-vault-kit-{}-{n}", std::process::id())))
//!     }
//!
//!     fn open(&self, place: &Dir) -> Result<Box<dyn VaultStore>, VaultError> {
//!         Ok(Box::new(SledVaultStore::open(&place.0)?))
//!     }
//!
//!     fn lose_keys(&self, place: &Dir) {
//!         // The key file holds the check value and every key.
//!         std::fs::remove_file(place.0.join("keys.bin")).expect("remove the key file");
//!     }
//! }
//!
//! civicflow_core::vault_store_conformance!(EmbeddedVaults);
//! # fn main() {}
//! ```
//!
//! Each check is also a public function generic over the backend. A failing check panics
//! with a message naming the check, the backend and where its stores are
//! ([`VaultStore::location`]).
//!
//! # The checks
//!
//! - [`stored_details_read_back_and_survive_a_reopen`]: a fresh store is empty; details
//!   stored read back as stored, the store holds only ciphertext, and a vault opened again
//!   on the store with the same master key reads everything.
//! - [`a_phone_tag_finds_everyone_who_holds_it`]: `find_by_phone_tag` returns exactly the
//!   people whose key carries the tag, also after a reopen; a key without a phone has none.
//! - [`key_count_counts_the_people_with_a_key`]: one per person, whatever the stores, minus
//!   the erased, also after a reopen.
//! - [`a_new_phone_number_keeps_the_key_bytes`]: replacing a key to change its tag keeps
//!   the wrapped key and nonce byte for byte; the old tag finds no one.
//! - [`a_destroyed_key_is_gone_for_good`]: after `destroy_key` the key and its tag are gone
//!   (also after a reopen), the record can no longer be read, and destroying again answers
//!   `false`.
//! - [`marking_erased_removes_the_record_and_keeps_the_marker`]: `mark_erased` removes the
//!   record and lists the person in `is_erased` and `erased`, idempotently and across a
//!   reopen; an erased person cannot be stored again.
//! - [`another_master_key_is_refused_and_changes_nothing`]: binding with another master key
//!   fails with [`VaultError::WrongMasterKey`] and writes nothing: keys, records, counts and
//!   markers are as before, and the right key still opens the store.
//! - [`a_store_with_people_but_no_check_value_refuses_to_bind`]: records or markers without
//!   a check value and keys ([`VaultBackend::lose_keys`]): binding fails with
//!   [`VaultError::KeyFileMissing`] for any master key, and records no check value.
//! - [`opening_a_vault_destroys_the_keys_of_erased_people`]: a person marked erased whose
//!   key survived (an erasure a crash interrupted) loses the key when a vault opens.
//! - [`concurrent_stores_of_different_people_are_all_readable`]: many threads storing,
//!   reading and erasing different people at once: everyone reads as stored or erased, by
//!   id and by phone, before and after a reopen.

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError};

use crate::vault::{
    ContactDetails, MasterKey, PersonData, PersonId, Vault, VaultError, VaultStore, WrappedKey,
};
use crate::Timestamp;

/// A vault storage backend under test: makes empty places and opens the store at a place.
///
/// # The contract
///
/// - **Places are fresh and never shared**: every [`VaultBackend::place`] is one no other
///   call returned, in this process or another running at the same time.
/// - **Opening a fresh place gives an empty store**: no check value, no key, record or
///   marker. Creating what the store needs (a directory, tables) is `open`'s job.
/// - **Opening a place again gives the store it held.** The kit opens a place again only
///   after dropping every handle of the store opened before (the embedded store is locked
///   while open).
/// - **The real store**, with its production durability.
/// - **Cleanup**: dropping a place removes what is in it.
pub trait VaultBackend: Sync {
    /// Where one store lives: a directory, a database schema. Dropping it removes the store.
    type Place: Send;

    /// A fresh, empty place, never returned before.
    fn place(&self) -> Self::Place;

    /// Opens the store at `place` (unbound: the kit binds it through
    /// [`Vault::with_store`]).
    ///
    /// # Errors
    /// Whatever the store reports; every check fails on it.
    fn open(&self, place: &Self::Place) -> Result<Box<dyn VaultStore>, VaultError>;

    /// Removes the check value and every wrapped key at `place`, keeping the records and
    /// the erasure markers: what losing the embedded store's key file does. Called with no
    /// store open on `place`.
    ///
    /// # Panics
    /// When it cannot; the check fails.
    fn lose_keys(&self, place: &Self::Place);

    /// The backend's name in failure messages; its type's name unless it says otherwise.
    fn name(&self) -> String {
        std::any::type_name::<Self>().to_owned()
    }
}

/// Turns every check of the vault's conformance kit into a `#[test]` for a backend, in a
/// module of its own (`vault_store_conformance`, or a name given first).
///
/// `$backend` is an expression that makes the backend, evaluated once per test:
/// `vault_store_conformance!(MyVaults::new())`, or `vault_store_conformance!(other_vaults:
/// MyVaults::elsewhere())` for a second backend in the same module. The generated module
/// imports everything of the module it is invoked in (`use super::*`). The
/// [module's example](crate::testkit::vault) defines a backend and runs the kit.
#[macro_export]
macro_rules! vault_store_conformance {
    ($module:ident : $backend:expr $(,)?) => {
        /// The vault's conformance kit (`civicflow_core::testkit::vault`) against this
        /// backend.
        mod $module {
            #[allow(unused_imports)]
            use super::*;

            $crate::vault_store_conformance!(@tests $backend;
                stored_details_read_back_and_survive_a_reopen,
                a_phone_tag_finds_everyone_who_holds_it,
                key_count_counts_the_people_with_a_key,
                a_new_phone_number_keeps_the_key_bytes,
                a_destroyed_key_is_gone_for_good,
                marking_erased_removes_the_record_and_keeps_the_marker,
                another_master_key_is_refused_and_changes_nothing,
                a_store_with_people_but_no_check_value_refuses_to_bind,
                opening_a_vault_destroys_the_keys_of_erased_people,
                concurrent_stores_of_different_people_are_all_readable,
            );
        }
    };
    (@tests $backend:expr; $($check:ident),+ $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::testkit::vault::$check(&$backend);
            }
        )+
    };
    ($backend:expr $(,)?) => {
        $crate::vault_store_conformance!(vault_store_conformance: $backend);
    };
}

/// The master key the checks open their vaults with.
fn master() -> MasterKey {
    MasterKey::from_bytes([0x5A; 32])
}

/// A master key other than [`master`].
fn other_master() -> MasterKey {
    MasterKey::from_bytes([0xA5; 32])
}

/// A new person id (UUID v7: its random bits make it unique).
fn person() -> PersonId {
    PersonId::new_v7(Timestamp::from_unix_seconds(1_767_225_600))
}

/// Details with a name and, when given, a phone number (national form, 11 digits).
fn details(name: &str, phone: Option<&str>) -> ContactDetails {
    let details = ContactDetails::default()
        .with_name(name)
        .expect("the kit's names are valid");
    match phone {
        Some(phone) => details
            .with_phone(phone)
            .expect("the kit's phone numbers are valid"),
        None => details,
    }
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

fn sorted(mut people: Vec<PersonId>) -> Vec<PersonId> {
    people.sort_unstable();
    people
}

/// One check on one backend: opens vaults on its places and remembers where the stores
/// are, so that a failure names them.
struct Check<'a, B: VaultBackend> {
    backend: &'a B,
    name: &'static str,
    opened: Mutex<Vec<String>>,
}

/// Runs check `name` on `backend`; a panic in `body` is raised again naming the check, the
/// backend and the stores.
fn run<B: VaultBackend>(backend: &B, name: &'static str, body: impl FnOnce(&Check<'_, B>)) {
    let check = Check {
        backend,
        name,
        opened: Mutex::new(Vec::new()),
    };
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| body(&check))) {
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("(a panic without a message)");
        let opened = check.opened.lock().unwrap_or_else(PoisonError::into_inner);
        panic!(
            "vault conformance check `{}` failed on backend {} (stores at {}): {message}",
            check.name,
            check.backend.name(),
            opened.join(", ")
        );
    }
}

/// A vault and a handle on its store, to look inside it or change it behind the vault's
/// back. Drop both before opening the place again.
struct Opened {
    vault: Vault,
    store: Arc<dyn VaultStore>,
}

impl<B: VaultBackend> Check<'_, B> {
    fn try_open(&self, place: &B::Place, master: MasterKey) -> Result<Opened, VaultError> {
        let store: Arc<dyn VaultStore> = Arc::from(self.backend.open(place)?);
        let location = store.location();
        {
            let mut opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
            if !opened.contains(&location) {
                opened.push(location);
            }
        }
        let vault = Vault::with_store(Arc::clone(&store), master)?;
        Ok(Opened { vault, store })
    }

    fn open(&self, place: &B::Place) -> Opened {
        self.try_open(place, master())
            .unwrap_or_else(|e| panic!("opening a vault with the right master key failed: {e}"))
    }

    /// A vault on a fresh place, checked to be empty.
    fn open_fresh(&self, place: &B::Place) -> Opened {
        let opened = self.open(place);
        let store = &opened.store;
        assert_eq!(
            store.key_count().expect("key_count"),
            0,
            "a fresh store has keys"
        );
        assert!(
            !store.holds_people().expect("holds_people"),
            "a fresh store holds people"
        );
        assert!(
            store.erased().expect("erased").is_empty(),
            "a fresh store has erasure markers"
        );
        opened
    }
}

fn present(vault: &Vault, person: PersonId) -> ContactDetails {
    match vault.read(person) {
        Ok(PersonData::Present(details)) => details,
        other => panic!("person {person} should read as stored, but reads {other:?}"),
    }
}

fn stored_key(store: &dyn VaultStore, person: PersonId) -> WrappedKey {
    store
        .key(person)
        .unwrap_or_else(|e| panic!("reading the key of {person} failed: {e}"))
        .unwrap_or_else(|| panic!("person {person} should have a key"))
}

fn phone_tag(store: &dyn VaultStore, person: PersonId) -> [u8; WrappedKey::PHONE_TAG_LEN] {
    stored_key(store, person)
        .phone_tag
        .unwrap_or_else(|| panic!("the key of {person} should carry a phone tag"))
}

/// A fresh store is empty; details stored read back as stored, the store holds only
/// ciphertext, and a vault opened again with the same master key reads everything.
pub fn stored_details_read_back_and_survive_a_reopen<B: VaultBackend>(backend: &B) {
    run(
        backend,
        "stored_details_read_back_and_survive_a_reopen",
        |check| {
            let place = check.backend.place();
            let Opened { vault, store } = check.open_fresh(&place);
            let (alice, bob, never) = (person(), person(), person());
            let alices = details("欧阳明月测试", Some("13912345601"))
                .with_email("ouyang@example.com")
                .and_then(|d| d.with_address("北京市通州区运河东大街55号"))
                .expect("valid details");
            let bobs = details("Bob Example", None);
            vault.store(alice, &alices).expect("store alice");
            vault.store(bob, &bobs).expect("store bob");
            assert_eq!(present(&vault, alice), alices);
            assert_eq!(present(&vault, bob), bobs);
            assert_eq!(vault.read(never).expect("read"), PersonData::Unknown);
            assert_eq!(vault.len().expect("len"), 2);
            assert!(store.holds_people().expect("holds_people"));
            assert!(store.has_record(alice).expect("has_record"));
            assert!(!store.has_record(never).expect("has_record"));
            assert_eq!(store.record(never).expect("record"), None);
            assert_eq!(store.key(never).expect("key"), None);
            assert!(!store.is_erased(alice).expect("is_erased"));

            // What the store keeps is ciphertext.
            let record = store.record(alice).expect("record").expect("a record");
            for plain in [
                "欧阳明月测试",
                "13912345601",
                "ouyang@example.com",
                "运河东大街",
            ] {
                assert!(
                    !contains(&record, plain.as_bytes()),
                    "the stored record holds {plain:?} in the clear"
                );
            }
            let key = stored_key(&*store, alice);
            assert_eq!(key.person, alice);
            assert_ne!(key.nonce, [0; WrappedKey::NONCE_LEN]);

            vault.close().expect("close");
            drop(store);
            let Opened { vault, store } = check.open(&place);
            assert_eq!(present(&vault, alice), alices);
            assert_eq!(present(&vault, bob), bobs);
            assert_eq!(vault.read(never).expect("read"), PersonData::Unknown);
            assert_eq!(vault.len().expect("len"), 2);
            assert_eq!(stored_key(&*store, alice), key);
            assert_eq!(store.record(alice).expect("record"), Some(record));
        },
    );
}

/// `find_by_phone_tag` returns exactly the people whose key carries the tag, also after a
/// reopen; a key stored without a phone carries none.
pub fn a_phone_tag_finds_everyone_who_holds_it<B: VaultBackend>(backend: &B) {
    run(
        backend,
        "a_phone_tag_finds_everyone_who_holds_it",
        |check| {
            let place = check.backend.place();
            let Opened { vault, store } = check.open_fresh(&place);
            let (alice, bob, carol, dave) = (person(), person(), person(), person());
            vault
                .store(alice, &details("甲", Some("13800000001")))
                .expect("store");
            vault
                .store(bob, &details("乙", Some("138 0000 0001")))
                .expect("store");
            vault
                .store(carol, &details("丙", Some("13800000002")))
                .expect("store");
            vault.store(dave, &details("丁", None)).expect("store");

            let shared = phone_tag(&*store, alice);
            assert_eq!(phone_tag(&*store, bob), shared, "one number, one tag");
            let carols = phone_tag(&*store, carol);
            assert_ne!(carols, shared);
            assert_eq!(stored_key(&*store, dave).phone_tag, None);
            let find =
                |store: &dyn VaultStore, tag| sorted(store.find_by_phone_tag(tag).expect("find"));
            assert_eq!(find(&*store, &shared), sorted(vec![alice, bob]));
            assert_eq!(find(&*store, &carols), vec![carol]);
            assert!(find(&*store, &[0x42; WrappedKey::PHONE_TAG_LEN]).is_empty());
            assert_eq!(
                vault.find_by_phone("+86 138-0000-0001").expect("find"),
                sorted(vec![alice, bob])
            );

            drop((vault, store));
            let Opened { vault, store } = check.open(&place);
            assert_eq!(find(&*store, &shared), sorted(vec![alice, bob]));
            assert_eq!(find(&*store, &carols), vec![carol]);
            assert_eq!(
                vault.find_by_phone("13800000002").expect("find"),
                vec![carol]
            );
        },
    );
}

/// One key per person, whatever the stores, minus the erased; also after a reopen.
pub fn key_count_counts_the_people_with_a_key<B: VaultBackend>(backend: &B) {
    run(backend, "key_count_counts_the_people_with_a_key", |check| {
        let place = check.backend.place();
        let Opened { vault, store } = check.open_fresh(&place);
        let people: Vec<PersonId> = (0..3).map(|_| person()).collect();
        for (i, p) in people.iter().enumerate() {
            vault
                .store(*p, &details("计数", Some(&format!("1370000000{i}"))))
                .expect("store");
        }
        assert_eq!(store.key_count().expect("key_count"), 3);
        vault
            .store(people[0], &details("计数二", Some("13700000009")))
            .expect("store again");
        assert_eq!(
            store.key_count().expect("key_count"),
            3,
            "a second store adds no key"
        );
        vault.erase(people[1]).expect("erase");
        assert_eq!(store.key_count().expect("key_count"), 2);
        assert!(
            !store.destroy_key(people[1]).expect("destroy again"),
            "an erased person's key was destroyed already"
        );
        assert_eq!(vault.len().expect("len"), 2);
        drop((vault, store));
        let Opened { store, .. } = check.open(&place);
        assert_eq!(store.key_count().expect("key_count"), 2);
    });
}

/// Replacing a key to change its phone tag keeps the wrapped key and nonce byte for byte;
/// the old tag finds no one.
pub fn a_new_phone_number_keeps_the_key_bytes<B: VaultBackend>(backend: &B) {
    run(backend, "a_new_phone_number_keeps_the_key_bytes", |check| {
        let place = check.backend.place();
        let Opened { vault, store } = check.open_fresh(&place);
        let alice = person();
        vault
            .store(alice, &details("换号", Some("13600000001")))
            .expect("store");
        let first = stored_key(&*store, alice);
        let first_tag = first.phone_tag.expect("a tag");

        let moved = details("换号", Some("13600000002"));
        vault.store(alice, &moved).expect("store a new number");
        let second = stored_key(&*store, alice);
        assert_eq!(second.nonce, first.nonce, "the key's nonce changed");
        assert_eq!(second.wrapped, first.wrapped, "the wrapped key changed");
        let second_tag = second.phone_tag.expect("a tag");
        assert_ne!(second_tag, first_tag);
        assert!(store
            .find_by_phone_tag(&first_tag)
            .expect("find")
            .is_empty());
        assert_eq!(
            store.find_by_phone_tag(&second_tag).expect("find"),
            vec![alice]
        );
        assert!(vault.find_by_phone("13600000001").expect("find").is_empty());
        assert_eq!(present(&vault, alice), moved);

        let no_phone = details("换号", None);
        vault
            .store(alice, &no_phone)
            .expect("store without a phone");
        let third = stored_key(&*store, alice);
        assert_eq!((third.nonce, third.wrapped), (first.nonce, first.wrapped));
        assert_eq!(third.phone_tag, None);
        assert!(store
            .find_by_phone_tag(&second_tag)
            .expect("find")
            .is_empty());
        assert_eq!(store.key_count().expect("key_count"), 1);

        drop((vault, store));
        let Opened { vault, store } = check.open(&place);
        assert_eq!(stored_key(&*store, alice), third);
        assert_eq!(present(&vault, alice), no_phone);
    });
}

/// After `destroy_key` the key and its tag are gone, also after a reopen; the record can no
/// longer be read; destroying again answers `false`.
pub fn a_destroyed_key_is_gone_for_good<B: VaultBackend>(backend: &B) {
    run(backend, "a_destroyed_key_is_gone_for_good", |check| {
        let place = check.backend.place();
        let Opened { vault, store } = check.open_fresh(&place);
        let (alice, bob) = (person(), person());
        let bobs = details("乙", Some("13500000001"));
        vault
            .store(alice, &details("甲", Some("13500000001")))
            .expect("store");
        vault.store(bob, &bobs).expect("store");
        let tag = phone_tag(&*store, alice);

        assert!(
            store.destroy_key(alice).expect("destroy_key"),
            "alice had a key"
        );
        assert_eq!(store.key(alice).expect("key"), None);
        assert_eq!(store.find_by_phone_tag(&tag).expect("find"), vec![bob]);
        assert_eq!(store.key_count().expect("key_count"), 1);
        // Her record is still there, but nothing opens it.
        match vault.read(alice) {
            Err(VaultError::KeyMissing { person }) if person == alice => {}
            other => panic!("a record whose key was destroyed read as {other:?}"),
        }
        assert!(
            !store.destroy_key(alice).expect("destroy_key again"),
            "a destroyed key was destroyed again"
        );
        assert_eq!(present(&vault, bob), bobs);

        drop((vault, store));
        let Opened { vault, store } = check.open(&place);
        assert_eq!(store.key(alice).expect("key"), None);
        assert_eq!(store.find_by_phone_tag(&tag).expect("find"), vec![bob]);
        assert!(matches!(
            vault.read(alice),
            Err(VaultError::KeyMissing { .. })
        ));
        assert_eq!(present(&vault, bob), bobs);
    });
}

/// `mark_erased` removes the record and lists the person in `is_erased` and `erased`,
/// idempotently and across a reopen; an erased person cannot be stored again.
pub fn marking_erased_removes_the_record_and_keeps_the_marker<B: VaultBackend>(backend: &B) {
    run(
        backend,
        "marking_erased_removes_the_record_and_keeps_the_marker",
        |check| {
            let place = check.backend.place();
            let Opened { vault, store } = check.open_fresh(&place);
            let (alice, bob, carol, never) = (person(), person(), person(), person());
            for (p, phone) in [
                (alice, "13400000001"),
                (bob, "13400000002"),
                (carol, "13400000003"),
            ] {
                vault
                    .store(p, &details("标记", Some(phone)))
                    .expect("store");
            }

            store.mark_erased(alice).expect("mark_erased");
            assert_eq!(store.record(alice).expect("record"), None);
            assert!(!store.has_record(alice).expect("has_record"));
            assert!(store.is_erased(alice).expect("is_erased"));
            assert!(!store.is_erased(bob).expect("is_erased"));
            assert_eq!(store.erased().expect("erased"), vec![alice]);
            assert_eq!(vault.read(alice).expect("read"), PersonData::Erased);
            store.mark_erased(alice).expect("marking again is fine");
            assert_eq!(store.erased().expect("erased"), vec![alice]);

            // Through the vault: marker, record and key.
            vault.erase(bob).expect("erase");
            vault.erase(never).expect("erasing someone never stored");
            assert_eq!(
                sorted(store.erased().expect("erased")),
                sorted(vec![alice, bob, never])
            );
            assert!(store.holds_people().expect("holds_people"));
            match vault.store(bob, &details("复活", None)) {
                Err(VaultError::Erased { person }) if person == bob => {}
                other => panic!("storing an erased person answered {other:?}"),
            }
            assert_eq!(store.record(bob).expect("record"), None);
            assert!(store.has_record(carol).expect("has_record"));

            drop((vault, store));
            let Opened { vault, store } = check.open(&place);
            assert_eq!(
                sorted(store.erased().expect("erased")),
                sorted(vec![alice, bob, never])
            );
            for p in [alice, bob, never] {
                assert_eq!(vault.read(p).expect("read"), PersonData::Erased);
                assert!(store.is_erased(p).expect("is_erased"));
                assert_eq!(store.record(p).expect("record"), None);
            }
            assert!(matches!(vault.read(carol), Ok(PersonData::Present(_))));
        },
    );
}

/// Binding with another master key fails with [`VaultError::WrongMasterKey`] and writes
/// nothing; the right key still opens the store.
pub fn another_master_key_is_refused_and_changes_nothing<B: VaultBackend>(backend: &B) {
    run(
        backend,
        "another_master_key_is_refused_and_changes_nothing",
        |check| {
            let place = check.backend.place();
            let Opened { vault, store } = check.open_fresh(&place);
            let (alice, bob) = (person(), person());
            let alices = details("甲", Some("13300000001"));
            vault.store(alice, &alices).expect("store");
            vault
                .store(bob, &details("乙", Some("13300000002")))
                .expect("store");
            vault.erase(bob).expect("erase");
            let key = stored_key(&*store, alice);
            let record = store.record(alice).expect("record");
            drop((vault, store));

            // Twice: a refused bind must not have recorded the other key's check value.
            for attempt in 1..=2 {
                match check.try_open(&place, other_master()) {
                    Err(VaultError::WrongMasterKey { .. }) => {}
                    Err(other) => {
                        panic!("another master key (attempt {attempt}) failed with: {other}")
                    }
                    Ok(_) => panic!("another master key (attempt {attempt}) opened the vault"),
                }
            }

            let Opened { vault, store } = check.open(&place);
            assert_eq!(stored_key(&*store, alice), key);
            assert_eq!(store.record(alice).expect("record"), record);
            assert_eq!(store.key_count().expect("key_count"), 1);
            assert_eq!(store.erased().expect("erased"), vec![bob]);
            assert_eq!(present(&vault, alice), alices);
            assert_eq!(vault.read(bob).expect("read"), PersonData::Erased);
        },
    );
}

/// Records or erasure markers without a check value and keys ([`VaultBackend::lose_keys`]):
/// binding fails with [`VaultError::KeyFileMissing`] for any master key, and records no
/// check value.
pub fn a_store_with_people_but_no_check_value_refuses_to_bind<B: VaultBackend>(backend: &B) {
    run(
        backend,
        "a_store_with_people_but_no_check_value_refuses_to_bind",
        |check| {
            let expect_refusal = |place: &B::Place, what: &str| {
                // Twice, with different master keys: a refused bind records no check value,
                // so the second is refused the same way, not as a wrong master key.
                for (attempt, master) in [master(), other_master()].into_iter().enumerate() {
                    match check.try_open(place, master) {
                        Err(VaultError::KeyFileMissing { .. }) => {}
                        Err(other) => panic!(
                            "a store holding {what} but no keys (attempt {}) failed with: {other}",
                            attempt + 1
                        ),
                        Ok(_) => panic!(
                            "a store holding {what} but no keys (attempt {}) was bound to a new master key",
                            attempt + 1
                        ),
                    }
                }
            };

            // Records.
            let with_records = check.backend.place();
            let Opened { vault, store } = check.open_fresh(&with_records);
            vault
                .store(person(), &details("甲", Some("13200000001")))
                .expect("store");
            drop((vault, store));
            check.backend.lose_keys(&with_records);
            expect_refusal(&with_records, "records");

            // Only an erasure marker: the store is in use all the same.
            let with_marker = check.backend.place();
            let Opened { vault, store } = check.open_fresh(&with_marker);
            vault.erase(person()).expect("erase");
            drop((vault, store));
            check.backend.lose_keys(&with_marker);
            expect_refusal(&with_marker, "an erasure marker");

            // Keys lost from a store that held no one yet: nothing is lost, it binds anew.
            let unused = check.backend.place();
            drop(check.open_fresh(&unused));
            check.backend.lose_keys(&unused);
            let Opened { vault, .. } =
                check.try_open(&unused, other_master()).unwrap_or_else(|e| {
                    panic!("a store that held no one refused a new master key: {e}")
                });
            assert!(vault.is_empty().expect("is_empty"));
        },
    );
}

/// A person marked erased whose key survived (an erasure a crash interrupted between the
/// marker and the key) loses the key when a vault opens.
pub fn opening_a_vault_destroys_the_keys_of_erased_people<B: VaultBackend>(backend: &B) {
    run(
        backend,
        "opening_a_vault_destroys_the_keys_of_erased_people",
        |check| {
            let place = check.backend.place();
            let Opened { vault, store } = check.open_fresh(&place);
            let (alice, bob) = (person(), person());
            vault
                .store(alice, &details("甲", Some("13100000001")))
                .expect("store");
            vault
                .store(bob, &details("乙", Some("13100000002")))
                .expect("store");
            let tag = phone_tag(&*store, alice);
            // The marker without the key's destruction.
            store.mark_erased(alice).expect("mark_erased");
            assert!(store.key(alice).expect("key").is_some());
            assert_eq!(vault.read(alice).expect("read"), PersonData::Erased);
            assert!(vault.find_by_phone("13100000001").expect("find").is_empty());
            drop((vault, store));

            let Opened { vault, store } = check.open(&place);
            assert_eq!(
                store.key(alice).expect("key"),
                None,
                "the key survived the open"
            );
            assert!(store.find_by_phone_tag(&tag).expect("find").is_empty());
            assert_eq!(vault.len().expect("len"), 1);
            assert_eq!(vault.read(alice).expect("read"), PersonData::Erased);
            assert!(matches!(vault.read(bob), Ok(PersonData::Present(_))));
        },
    );
}

/// Many threads storing, reading and erasing different people at once: everyone reads as
/// stored or erased, by id and by phone, before and after a reopen.
pub fn concurrent_stores_of_different_people_are_all_readable<B: VaultBackend>(backend: &B) {
    const THREADS: usize = 8;
    const EACH: usize = 10;
    run(
        backend,
        "concurrent_stores_of_different_people_are_all_readable",
        |check| {
            let place = check.backend.place();
            let Opened { vault, store } = check.open_fresh(&place);
            let all: Vec<(PersonId, ContactDetails, bool)> = std::thread::scope(|scope| {
                let threads: Vec<_> = (0..THREADS)
                    .map(|t| {
                        let vault = &vault;
                        scope.spawn(move || {
                            let mut mine = Vec::new();
                            for i in 0..EACH {
                                let p = person();
                                let stored = details(
                                    &format!("线程{t}号{i}"),
                                    Some(&format!("130{t:04}{i:04}")),
                                );
                                vault.store(p, &stored).expect("store");
                                assert_eq!(present(vault, p), stored);
                                let erased = i % 5 == 0;
                                if erased {
                                    vault.erase(p).expect("erase");
                                }
                                mine.push((p, stored, erased));
                            }
                            mine
                        })
                    })
                    .collect();
                threads
                    .into_iter()
                    .flat_map(|thread| {
                        thread
                            .join()
                            .unwrap_or_else(|payload| panic::resume_unwind(payload))
                    })
                    .collect()
            });
            let kept = all.iter().filter(|(_, _, erased)| !erased).count();
            let verify = |vault: &Vault, store: &dyn VaultStore| {
                for (p, stored, erased) in &all {
                    let phone = stored.phone().expect("a phone");
                    if *erased {
                        assert_eq!(vault.read(*p).expect("read"), PersonData::Erased);
                        assert!(vault.find_by_phone(phone).expect("find").is_empty());
                        assert_eq!(store.key(*p).expect("key"), None);
                    } else {
                        assert_eq!(&present(vault, *p), stored);
                        assert_eq!(vault.find_by_phone(phone).expect("find"), vec![*p]);
                    }
                }
                assert_eq!(store.key_count().expect("key_count"), kept);
                assert_eq!(store.erased().expect("erased").len(), all.len() - kept);
            };
            verify(&vault, &*store);
            drop((vault, store));
            let Opened { vault, store } = check.open(&place);
            verify(&vault, &*store);
        },
    );
}
