//! Damaged stored bytes are reported, never served and never a panic.
//!
//! Guards against: a decoder that panics or returns garbage on a damaged record, an altered
//! record that reads back as valid, and errors that do not say where the damage is.
//!
//! These tests open the closed store with sled directly and change bytes under the log's keys
//! (the layout is in `docs/design.md`), below sled's own checksums, which is what a bug, a bad
//! restore or a deliberate edit would do.

use civicflow_core::EventStore as _;
use std::path::{Path, PathBuf};

use civicflow_core::{
    Actor, AppendRequest, ChainBreakReason, CorrelationId, EventType, ExpectedVersion, NewEvent,
    Position, ReadError, SledLog, StreamId, Timestamp, Version, MAX_EVENT_BYTES,
};

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "civicflow-corruption-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn actor() -> Actor {
    Actor::parse("auditor-1", "auditor", "tonghui").expect("valid actor")
}

fn events(n: usize, tag: &str) -> Vec<NewEvent> {
    (0..n)
        .map(|i| {
            NewEvent::new(
                EventType::new("NoteAdded").expect("valid"),
                1,
                format!("{tag} note {i}").into_bytes(),
            )
        })
        .collect()
}

/// Positions 1..=5 in one chunk (one append of five events to `case-a`), then 6..=7 in
/// another (`case-b`), then 8 (`case-a` again).
fn fill(path: &Path) {
    let log = SledLog::open(path).expect("open");
    let a = StreamId::new("case-a").expect("valid");
    let b = StreamId::new("case-b").expect("valid");
    for (stream, n, tag) in [(&a, 5, "first"), (&b, 2, "second"), (&a, 1, "third")] {
        let request = AppendRequest::to_stream(
            stream.clone(),
            ExpectedVersion::Any,
            events(n, tag),
            actor(),
            CorrelationId::new_v7(Timestamp::EPOCH),
        );
        log.append(request).expect("append").expect("no conflict");
    }
    log.close().expect("close");
}

/// Opens the closed store with sled itself (same segment size as the log uses).
fn raw_tree(path: &Path) -> (sled::Db, sled::Tree) {
    let db = sled::Config::new()
        .path(path)
        .segment_size(8 * 1024 * 1024)
        .flush_every_ms(None)
        .open()
        .expect("sled opens the closed store");
    let tree = db.open_tree("civicflow-log").expect("the log's tree");
    (db, tree)
}

fn chunk_key(first: u64) -> Vec<u8> {
    let mut key = vec![b'L'];
    key.extend_from_slice(&first.to_be_bytes());
    key
}

/// The byte range of entry `index`'s record inside a chunk value.
fn record_range(chunk: &[u8], index: usize) -> std::ops::Range<usize> {
    let mut at = 3; // format byte and u16 count
    for i in 0.. {
        let len = u32::from_le_bytes(chunk[at + 32..at + 36].try_into().expect("4 bytes")) as usize;
        let start = at + 36;
        if i == index {
            return start..start + len;
        }
        at = start + len;
    }
    unreachable!()
}

/// Rewrites the chunk that starts at `first`.
fn damage_chunk(path: &Path, first: u64, damage: impl FnOnce(&mut Vec<u8>)) {
    let (db, tree) = raw_tree(path);
    let mut chunk = tree
        .get(chunk_key(first))
        .expect("read")
        .expect("the chunk exists")
        .to_vec();
    damage(&mut chunk);
    tree.insert(chunk_key(first), chunk).expect("write");
    db.flush().expect("flush");
}

fn position(p: u64) -> Position {
    Position::new(p).expect("not zero")
}

#[test]
fn an_undecodable_record_is_corrupted_at_its_position() {
    let scratch = Scratch::new("undecodable");
    fill(&scratch.0);
    // Position 3 is the third entry of the first chunk: give its record an unknown format.
    damage_chunk(&scratch.0, 1, |chunk| {
        let range = record_range(chunk, 2);
        chunk[range.start] = 0x7f;
    });
    let log = SledLog::open(&scratch.0).expect("the newest chunk is intact, so the store opens");

    match log.read_all(Position::FIRST, 100) {
        Err(ReadError::Corrupted {
            position: p,
            reason,
        }) => {
            assert_eq!(p, position(3));
            assert!(reason.contains("unknown format byte 127"), "{reason}");
        }
        other => panic!("expected Corrupted at position 3, got {other:?}"),
    }
    // Reads that do not touch it still work.
    assert_eq!(
        log.read_all(position(4), 100)
            .expect("after the damage")
            .len(),
        5
    );
    assert_eq!(
        log.read_all(Position::FIRST, 2)
            .expect("before the damage")
            .len(),
        2
    );
    let stream = StreamId::new("case-a").expect("valid");
    match log.read_stream(&stream, Version::FIRST, 100) {
        Err(ReadError::Corrupted { position: p, .. }) => assert_eq!(p, position(3)),
        other => panic!("expected Corrupted at position 3, got {other:?}"),
    }
    let report = log.verify().expect("verify runs");
    let broken = report.first_break.expect("verify finds the damage");
    assert_eq!(broken.position, position(3));
    assert!(
        matches!(broken.reason, ChainBreakReason::Undecodable { .. }),
        "{broken}"
    );
    assert_eq!(report.events_checked, 2);
    let stream_report = log.verify_stream(&stream).expect("verify_stream runs");
    assert_eq!(
        stream_report.first_break.map(|b| b.position),
        Some(position(3))
    );
}

#[test]
fn an_altered_payload_breaks_the_chain_at_its_position() {
    let scratch = Scratch::new("altered");
    fill(&scratch.0);
    // Change one letter of the payload of position 7 (second entry of the chunk at 6): the
    // record still decodes, so only the chain can tell.
    damage_chunk(&scratch.0, 6, |chunk| {
        let range = record_range(chunk, 1);
        let last = range.end - 1;
        chunk[last] ^= 0x01;
    });
    let log = SledLog::open(&scratch.0).expect("open");
    let report = log.verify().expect("verify runs");
    let broken = report.first_break.expect("the chain is broken");
    assert_eq!(broken.position, position(7), "{broken}");
    assert!(
        matches!(broken.reason, ChainBreakReason::HashMismatch { .. }),
        "{broken}"
    );
    assert_eq!(report.events_checked, 6);
    assert_eq!(report.last_good.map(|h| h.position), Some(position(6)));

    let b = StreamId::new("case-b").expect("valid");
    let stream_report = log.verify_stream(&b).expect("verify_stream runs");
    assert_eq!(
        stream_report.first_break.map(|b| b.position),
        Some(position(7))
    );
    // Checking case-a alone compares its records with the stored hashes of their
    // neighbours, which are untouched: only the whole-log walk recomputes position 7.
    let a = StreamId::new("case-a").expect("valid");
    assert!(log.verify_stream(&a).expect("runs").is_intact());
}

#[test]
fn a_truncated_chunk_is_corrupted_at_its_first_position() {
    let scratch = Scratch::new("truncated");
    fill(&scratch.0);
    damage_chunk(&scratch.0, 6, |chunk| chunk.truncate(chunk.len() - 10));
    let log = SledLog::open(&scratch.0).expect("open");
    match log.read_all(position(6), 10) {
        Err(ReadError::Corrupted {
            position: p,
            reason,
        }) => {
            assert_eq!(p, position(6));
            assert!(reason.contains("chunk"), "{reason}");
        }
        other => panic!("expected Corrupted at position 6, got {other:?}"),
    }
    let broken = log.verify().expect("runs").first_break.expect("broken");
    assert_eq!(broken.position, position(6));
}

#[test]
fn a_swapped_hash_is_caught_where_it_was_swapped() {
    let scratch = Scratch::new("swapped");
    fill(&scratch.0);
    // Replace the stored hash of position 2 with the one of position 1.
    damage_chunk(&scratch.0, 1, |chunk| {
        let first_hash: [u8; 32] = chunk[3..35].try_into().expect("32 bytes");
        let second = record_range(chunk, 0).end;
        chunk[second..second + 32].copy_from_slice(&first_hash);
    });
    let log = SledLog::open(&scratch.0).expect("open");
    let broken = log.verify().expect("runs").first_break.expect("broken");
    assert_eq!(broken.position, position(2));
}

#[test]
fn damage_to_the_newest_chunk_makes_opening_fail_with_its_position() {
    let scratch = Scratch::new("newest");
    fill(&scratch.0);
    damage_chunk(&scratch.0, 8, |chunk| chunk[1] = 9); // the count no longer matches
    match SledLog::open(&scratch.0) {
        Err(error) => {
            let message = error.to_string();
            assert!(message.contains("position 8"), "{message}");
        }
        Ok(_) => panic!("a store whose head does not decode must not open"),
    }
}

#[test]
fn a_damaged_stream_index_entry_is_reported_not_followed() {
    let scratch = Scratch::new("index");
    fill(&scratch.0);
    {
        let (db, tree) = raw_tree(&scratch.0);
        let mut key = vec![b'S'];
        key.extend_from_slice(b"case-b");
        key.push(0);
        key.extend_from_slice(&1u64.to_be_bytes());
        // Closing wrote the index out: the entry for case-b exists.
        assert!(
            tree.get(&key).expect("read").is_some(),
            "close writes the stream index"
        );
        tree.insert(&key, vec![1u8, 0]).expect("write"); // zero versions
        db.flush().expect("flush");
    }
    let log = SledLog::open(&scratch.0).expect("open");
    let b = StreamId::new("case-b").expect("valid");
    match log.read_stream(&b, Version::FIRST, 10) {
        Err(ReadError::CorruptedIndex { what, .. }) => assert!(what.contains("case-b"), "{what}"),
        other => panic!("expected CorruptedIndex, got {other:?}"),
    }
    // The log itself is intact; only the index is damaged.
    assert!(log.verify().expect("runs").is_intact());
}

#[test]
fn maximum_size_events_stay_out_of_sleds_unsynced_blob_files() {
    let scratch = Scratch::new("blobs");
    let log = SledLog::open(&scratch.0).expect("open");
    let stream = StreamId::new("case-big").expect("valid");
    // The largest payload that fits the 64 KiB record limit with this header.
    let header = 200;
    let big = vec![b'x'; MAX_EVENT_BYTES - header];
    for i in 0..60 {
        let request = AppendRequest::to_stream(
            stream.clone(),
            ExpectedVersion::Any,
            vec![NewEvent::new(EventType::new("Attachment").expect("valid"), 1, big.clone()); 2],
            actor(),
            CorrelationId::new_v7(Timestamp::from_unix_seconds(i)),
        );
        log.append(request).expect("append").expect("no conflict");
    }
    log.close().expect("close");
    let blobs: Vec<_> = std::fs::read_dir(scratch.0.join("blobs"))
        .map(|dir| dir.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        blobs.is_empty(),
        "sled wrote blob files, which are not fsynced: {blobs:?}"
    );
    let log = SledLog::open(&scratch.0).expect("reopen");
    assert_eq!(
        log.read_stream(&stream, Version::FIRST, 1000)
            .expect("read")
            .len(),
        120
    );
    assert!(log.verify().expect("runs").is_intact());
}
