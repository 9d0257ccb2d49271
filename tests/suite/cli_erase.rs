//! `civicflow erase` with the real binary on a stopped demo store: a requester's contact
//! details, readable through the vault before, are readable nowhere after. The proof reads
//! the bytes of every file of the data directory (as `security::erased_contact_data_is_in_no
//! _file_and_reads_as_erased` does for the engine's erasure): no plaintext in any file before
//! or after; the person's key slot in `vault/keys.bin` (its state byte and the person's id,
//! found there before: the positive control) in no file after; and the store's own master key
//! then opens nothing for them. Malformed input and unknown persons are refused, naming what
//! is wrong, and erase no one.

use std::path::Path;
use std::sync::Arc;

use civicflow::core::domain::case::Channel;
use civicflow::core::domain::fields::{FieldValue, Fields};
use civicflow::core::domain::org::Acting;
use civicflow::core::domain::person::Person;
use civicflow::core::domain::workflow::{DefinitionRegistry, WorkflowId};
use civicflow::core::engine::{self, Command, Contact, Engine, EngineConfig, Outcome, Requester};
use civicflow::core::vault::{ContactDetails, MasterKey, PersonData, Vault};
use civicflow::core::{CaseId, EventStore as _, PersonId, SledLog, SystemClock, UnitId};
use civicflow::demo;

use crate::common::cli::{civicflow, demo_store, path};
use crate::common::TempDir;
use crate::security::{files_containing, leaks, ADDRESS, EMAIL, MARKER, NAME, PHONE};

/// The store's own master key (`DIR/master.key`, as the demo store keeps it).
fn master_key(dir: &Path) -> MasterKey {
    MasterKey::load(dir.join("master.key")).expect("the store's master key")
}

/// Opens a case at grid 1 titled `MARKER` whose requester is the plaintexts of `security`, as
/// grid 1's worker taking it at the door; the case and its requester.
fn open_with_requester(dir: &Path) -> (CaseId, PersonId) {
    let engine = Engine::open(
        EngineConfig::new(dir)
            .clock(Arc::new(SystemClock))
            .master_key(master_key(dir)),
    )
    .expect("open the demo store");
    let details = ContactDetails::new(Some(NAME), Some(PHONE), Some(EMAIL), Some(ADDRESS))
        .expect("valid details");
    let outcome = engine
        .submit(
            &demo::acting("li.grid1"),
            Command::OpenCase {
                workflow: WorkflowId::new("service-request").expect("valid"),
                version: None,
                unit: UnitId::new("grid-1").expect("valid"),
                title: MARKER.into(),
                description: "The bench by the fountain is broken.".into(),
                fields: Fields::from([(
                    "category".to_owned(),
                    FieldValue::Choice("public_facilities".into()),
                )]),
                requester: Some(Requester::New(details)),
                channel: Channel::Door,
                place: None,
            },
        )
        .expect("opened");
    let Outcome::Case { case, .. } = outcome else {
        panic!("not a case: {outcome:?}")
    };
    let person = engine
        .case(&system(), case)
        .expect("the case")
        .state
        .requester
        .expect("a requester");
    (case, person)
}

fn system() -> Acting {
    Acting::system(UnitId::new("tonghui").expect("valid"))
}

/// What a used key slot of `vault/keys.bin` starts with: its state byte (1) and the person's
/// id (`sled/vault/keyfile.rs`). An erased slot is zeros.
fn key_slot_of(person: PersonId) -> Vec<u8> {
    let mut slot = vec![1u8];
    slot.extend_from_slice(person.as_bytes());
    slot
}

/// The person's state as the log has it (read only, no engine), and their stream's version.
fn in_the_log(dir: &Path, person: PersonId) -> (civicflow::core::domain::person::PersonState, u64) {
    let log = SledLog::open(dir.join("log")).expect("open the log");
    let state = engine::read_from_log::<Person>(&log, &DefinitionRegistry::built_in(), &person)
        .expect("the person's stream");
    let version = log
        .stream_version(&person.stream())
        .expect("read")
        .map_or(0, |v| v.get());
    log.close().expect("close");
    (state, version)
}

#[test]
fn erase_on_a_stopped_store_leaves_the_persons_details_readable_nowhere() {
    let scratch = TempDir::new("cli-erase");
    let dir = scratch.path();
    demo_store(dir);
    let (case, person) = open_with_requester(dir);
    let id = person.to_string();
    let slot = key_slot_of(person);

    // Before: the vault encrypts, so no file holds a plaintext; the person's key is in its
    // slot of the key file, and the title's marker in the log (the scan reads both).
    assert_eq!(leaks(dir), Vec::<(&str, String)>::new(), "plaintext before");
    assert_eq!(files_containing(dir, &slot), ["vault/keys.bin"]);
    assert!(
        files_containing(dir, MARKER.as_bytes())
            .iter()
            .any(|f| f.starts_with("log")),
        "the scan reads the log"
    );
    let vault = Vault::open(dir.join("vault"), master_key(dir)).expect("the vault");
    assert!(matches!(vault.read(person), Ok(PersonData::Present(_))));
    drop(vault);

    // Refused, naming what is wrong; nobody is erased.
    let data = path(dir);
    let unknown = "0196a000-0000-7000-8000-000000000000";
    for (args, says) in [
        (
            vec!["erase", "--data", data, "not-a-person", "--reason", "PIPL"],
            "is not a person id",
        ),
        (
            vec!["erase", "--data", data, &id, "--reason", ""],
            "--reason",
        ),
        (
            vec!["erase", "--data", data, &id, "--reason", "   "],
            "--reason",
        ),
        (
            vec!["erase", "--data", data, &id, "--reason", "PIPL\u{1b}[2J"],
            "U+001B",
        ),
        (
            vec!["erase", "--data", data, unknown, "--reason", "PIPL"],
            "no person 0196a000-0000-7000-8000-000000000000",
        ),
    ] {
        let (code, out, err) = civicflow(&args);
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(err.contains(says), "{args:?}: {says:?} not in {err}");
    }
    let missing = scratch.path().join("nothing-here");
    let (code, _, err) = civicflow(&["erase", "--data", path(&missing), &id, "--reason", "PIPL"]);
    assert_eq!(code, 2);
    assert!(err.contains("no store at"), "{err}");
    assert_eq!(files_containing(dir, &slot), ["vault/keys.bin"]);
    let (state, _) = in_the_log(dir, person);
    assert!(state.registered && !state.erased, "{state:?}");

    // Erased on request.
    let reason = "个人信息保护法第四十七条 deletion request of 2026-05-02";
    let (code, out, err) = civicflow(&["erase", "--data", data, &id, "--reason", reason]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("person {id} (registered at grid-1) erased at ")),
        "{out}"
    );

    // After: the key slot is in no file, no plaintext is in any, and the store's own master
    // key opens nothing for them.
    assert_eq!(files_containing(dir, &slot), Vec::<String>::new());
    assert_eq!(leaks(dir), Vec::<(&str, String)>::new(), "plaintext after");
    assert!(files_containing(dir, MARKER.as_bytes())
        .iter()
        .any(|f| f.starts_with("log")));
    let vault = Vault::open(dir.join("vault"), master_key(dir)).expect("the vault");
    assert!(matches!(vault.read(person), Ok(PersonData::Erased)));
    assert_eq!(vault.find_by_phone(PHONE).expect("search"), Vec::new());
    drop(vault);

    // The log keeps the erasure with its reason, and its chain holds.
    let (state, version) = in_the_log(dir, person);
    assert!(state.erased, "{state:?}");
    assert_eq!(state.erasure_reason.as_deref(), Some(reason));
    let (code, out, err) = civicflow(&["verify", "--data", data]);
    assert_eq!(code, 0, "{out}{err}");

    // The case reads its requester as erased.
    let engine = Engine::open(EngineConfig::new(dir).master_key(master_key(dir))).expect("open");
    assert_eq!(
        engine.case(&system(), case).expect("the case").contact,
        Contact::Erased
    );
    drop(engine);

    // Again: nothing changes, and it says so.
    let (code, out, err) = civicflow(&["erase", "--data", data, &id, "--reason", "again"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("was erased already"), "{out}");
    assert!(out.contains(reason), "the erasure in force: {out}");
    let (state, again) = in_the_log(dir, person);
    assert_eq!(again, version, "a second erasure wrote nothing");
    assert_eq!(state.erasure_reason.as_deref(), Some(reason));
}
