//! The `civicflow` command on real stores: exit codes and messages of `verify` and `head`.
//!
//! Guards against a verify that says "intact" about a damaged store, or fails without saying
//! where.

use crate::common::TempDir;
use civicflow::core::EventStore as _;
use std::path::Path;
use std::process::Command;

use civicflow::core::{
    Actor, AppendRequest, CorrelationId, EventType, ExpectedVersion, NewEvent, SledLog, StreamId,
    Timestamp,
};

fn civicflow(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_civicflow"))
        .args(args)
        .output()
        .expect("the civicflow binary runs");
    (
        output.status.code().expect("exited normally"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn fill(path: &Path) -> String {
    let log = SledLog::open(path).expect("open");
    for i in 0..3 {
        let request = AppendRequest::to_stream(
            StreamId::new("case-1").expect("valid"),
            ExpectedVersion::Any,
            vec![NewEvent::new(
                EventType::new("NoteAdded").expect("valid"),
                1,
                format!("note {i}").into_bytes(),
            )],
            Actor::parse("w", "grid_worker", "grid-1").expect("valid"),
            CorrelationId::new_v7(Timestamp::EPOCH),
        );
        log.append(request).expect("append").expect("no conflict");
    }
    let head = log.head().expect("not empty");
    log.close().expect("close");
    format!("{} {}", head.position, head.hash)
}

#[test]
fn verify_and_head_report_an_intact_store() {
    let scratch = TempDir::new("cli-intact");
    let head = fill(scratch.path());
    let data = scratch.path().to_str().expect("utf-8 path");
    let (code, out, _) = civicflow(&["verify", "--data", data]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("log intact: 3 events"), "{out}");
    let (code, out, _) = civicflow(&["verify", "--data", data, "--stream", "case-1"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("stream case-1 intact: 3 events"), "{out}");
    let (code, out, _) = civicflow(&["head", "--data", data]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), head);
}

#[test]
fn verify_names_the_first_broken_position() {
    let scratch = TempDir::new("cli-broken");
    fill(scratch.path());
    {
        // Flip the last payload byte of position 2 (its own chunk: each append above was a
        // group of one), below sled's checksums.
        let db = sled::Config::new()
            .path(scratch.path())
            .segment_size(8 * 1024 * 1024)
            .open()
            .expect("sled opens the stopped store");
        let tree = db.open_tree("civicflow-log").expect("tree");
        let mut key = vec![b'L'];
        key.extend_from_slice(&2u64.to_be_bytes());
        let mut chunk = tree.get(&key).expect("read").expect("chunk at 2").to_vec();
        let last = chunk.len() - 1;
        chunk[last] ^= 0x20;
        tree.insert(&key, chunk).expect("write");
        db.flush().expect("flush");
    }
    let (code, out, _) = civicflow(&["verify", "--data", scratch.path().to_str().expect("utf-8")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN after 1 good events"), "{out}");
    assert!(out.contains("position 2"), "{out}");
}

#[test]
fn a_missing_store_is_a_clear_error() {
    let scratch = TempDir::new("cli-missing");
    let (code, _, err) = civicflow(&["verify", "--data", scratch.path().to_str().expect("utf-8")]);
    assert_eq!(code, 2);
    assert!(err.contains("no store at"), "{err}");
    assert!(!scratch.path().exists(), "verify must not create a store");
}
