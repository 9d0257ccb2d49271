//! The restore drill with the real binary on a store holding the Tonghui demo:
//! `civicflow export-log`, then `civicflow import-log` into a fresh directory gives the same
//! head, a log that verifies, read models that rebuild, and an engine that opens on it.
//!
//! Guards against an export that loses or re-encodes records, an import that accepts a
//! changed or cut-off file or writes into a store that holds something, and an import that
//! leaves half a store behind when it refuses.

use std::path::Path;
use std::sync::Arc;

use crate::common::cli::{civicflow, demo_store, path};
use crate::common::TempDir;
use civicflow::core::engine::{Engine, EngineConfig};
use civicflow::core::vault::MasterKey;
use civicflow::core::ManualClock;
use civicflow::demo;

/// What an import that refused must leave: no log, no temporary directory.
fn assert_nothing_imported(dir: &Path) {
    assert!(!dir.exists(), "{} was created", dir.display());
    assert!(!dir.join("log").exists(), "{}", dir.display());
    assert!(
        !dir.join(".log-import.partial").exists(),
        "{}",
        dir.display()
    );
}

#[test]
fn an_exported_log_imports_into_a_fresh_store_with_the_same_head() {
    let scratch = TempDir::new("restore-drill");
    let source = scratch.path().join("source");
    demo_store(&source);
    let export = scratch.path().join("tonghui.cflog");

    let (code, head_before, err) = civicflow(&["head", "--data", path(&source)]);
    assert_eq!(code, 0, "{err}");
    let hash = head_before.split_whitespace().last().expect("a hash");
    let (code, text, err) = civicflow(&[
        "export-log",
        "--data",
        path(&source),
        "--out",
        path(&export),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("exported the log"), "{text}");
    assert!(text.contains(hash), "{text}");
    assert!(text.contains("civicflow rebuild"), "{text}");
    assert!(text.contains("vault"), "{text}");
    assert!(!scratch.path().join(".tonghui.cflog.partial").exists());

    let restored = scratch.path().join("restored");
    let (code, text, err) = civicflow(&[
        "import-log",
        "--data",
        path(&restored),
        "--in",
        path(&export),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("imported"), "{text}");
    assert!(text.contains(hash), "{text}");
    assert!(text.contains("civicflow rebuild"), "{text}");
    assert!(text.contains("vault"), "{text}");
    assert!(!restored.join(".log-import.partial").exists());

    let (code, head_after, err) = civicflow(&["head", "--data", path(&restored)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(head_after, head_before);
    let (code, text, err) = civicflow(&["verify", "--data", path(&restored)]);
    assert_eq!(code, 0, "{text}{err}");
    assert!(text.contains("intact"), "{text}");

    // Exporting the restored store gives the same file, byte for byte.
    let again = scratch.path().join("again.cflog");
    let (code, _, err) = civicflow(&[
        "export-log",
        "--data",
        path(&restored),
        "--out",
        path(&again),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(&again).expect("read"),
        std::fs::read(&export).expect("read")
    );

    // The read models rebuild from it, and the engine opens on it (with a new master key and
    // an empty vault: personal data is not in the log, by design).
    let (code, text, err) = civicflow(&["rebuild", "--data", path(&restored)]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("rebuilt"), "{text}");
    let key = MasterKey::load_or_create(restored.join("master.key")).expect("key");
    let engine = Engine::open(
        EngineConfig::new(&restored)
            .clock(Arc::new(ManualClock::new(demo::START)))
            .master_key(key),
    )
    .expect("the engine opens on the restored store");
    drop(engine);
}

/// Where the record at `position` (1-based) starts in an export file. Header: magic 14,
/// version 1, head 1 + 8 + 32; a record: tag 1, position 8, hash 32, length 4, bytes.
fn record_offset(bytes: &[u8], position: u64) -> (usize, usize) {
    let mut at = 14 + 1 + 1 + 8 + 32;
    loop {
        assert_eq!(bytes[at], b'R');
        let len = u32::from_be_bytes(bytes[at + 41..at + 45].try_into().expect("4")) as usize;
        if u64::from_be_bytes(bytes[at + 1..at + 9].try_into().expect("8")) == position {
            return (at, len);
        }
        at += 45 + len;
    }
}

#[test]
fn import_refuses_a_changed_file_a_cut_file_and_a_store_that_is_not_empty() {
    let scratch = TempDir::new("restore-refusals");
    let source = scratch.path().join("source");
    demo_store(&source);
    let export = scratch.path().join("log.cflog");
    let (code, _, err) = civicflow(&[
        "export-log",
        "--data",
        path(&source),
        "--out",
        path(&export),
    ]);
    assert_eq!(code, 0, "{err}");
    let bytes = std::fs::read(&export).expect("read");
    let import = |target: &Path, file: &Path| {
        civicflow(&["import-log", "--data", path(target), "--in", path(file)])
    };

    // Into the source itself: not empty.
    let (code, _, err) = import(&source, &export);
    assert_eq!(code, 2);
    assert!(err.contains("not empty"), "{err}");
    assert!(!source.join(".log-import.partial").exists());

    // The last byte of the third record changed: refused, naming position 3.
    let mut changed = bytes.clone();
    let (at, len) = record_offset(&changed, 3);
    changed[at + 45 + len - 1] ^= 0x01;
    let file = scratch.path().join("changed.cflog");
    std::fs::write(&file, &changed).expect("write");
    let target = scratch.path().join("changed");
    let (code, _, err) = import(&target, &file);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("position 3"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert_nothing_imported(&target);

    // Cut off before the end.
    let file = scratch.path().join("cut.cflog");
    std::fs::write(&file, &bytes[..bytes.len() / 2]).expect("write");
    let target = scratch.path().join("cut");
    let (code, _, err) = import(&target, &file);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("incomplete"), "{err}");
    assert_nothing_imported(&target);

    // Not an export at all.
    let file = scratch.path().join("other.cflog");
    std::fs::write(&file, b"{\"not\": \"an export\"}").expect("write");
    let target = scratch.path().join("other");
    let (code, _, err) = import(&target, &file);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a log export"), "{err}");
    assert_nothing_imported(&target);

    // The real file still imports, once.
    let target = scratch.path().join("fine");
    let (code, _, err) = import(&target, &export);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = import(&target, &export);
    assert_eq!(code, 2);
    assert!(err.contains("not empty"), "{err}");
}
