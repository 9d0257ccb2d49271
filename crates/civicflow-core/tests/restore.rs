//! Export the exact stored records of a log and restore them into an empty one.
//!
//! Guards against a restore that re-encodes (different bytes or hashes), loses stream
//! versions, the stream index or idempotency records, accepts a changed export, writes into
//! a log that holds something, or leaves half a log behind when it refuses.

use civicflow_core::EventStore as _;
use std::path::PathBuf;
use std::time::Duration;

use civicflow_core::{
    Actor, AppendRequest, ChainHash, CorrelationId, Durability, EventType, ExpectedVersion,
    IdempotencyKey, NewEvent, Position, RestoreError, SledLog, SledLogConfig, StoredIdempotency,
    StoredRecord, StreamId, StreamWrite, Timestamp, Version,
};

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("civicflow-restore-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }

    fn open(&self, sub: &str) -> SledLog {
        SledLogConfig::new(self.0.join(sub))
            .durability(Durability::Flush)
            // Small, so that the source's index is split over several flushes.
            .index_flush_events(50)
            .open()
            .expect("open")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn actor() -> Actor {
    Actor::parse("li.wei", "grid_worker", "tonghui/grid-1").expect("valid actor")
}

fn event(tag: &str, i: usize) -> NewEvent {
    NewEvent::new(
        EventType::new("NoteAdded").expect("valid"),
        1,
        format!("{tag} note {i} {}", "x".repeat(i % 300)).into_bytes(),
    )
}

fn stream(i: usize) -> StreamId {
    StreamId::new(format!("case-{i}")).expect("valid")
}

fn key(i: usize) -> IdempotencyKey {
    IdempotencyKey::new(format!("retry-{i}")).expect("valid")
}

fn keyed_request(i: usize) -> AppendRequest {
    AppendRequest::to_stream(
        stream(1000 + i),
        ExpectedVersion::Any,
        vec![event("keyed", i)],
        actor(),
        CorrelationId::new_v7(Timestamp::EPOCH),
    )
    .with_idempotency_key(key(i))
}

/// Many streams, single and multi-stream appends, keyed appends.
fn fill(log: &SledLog) {
    for round in 0..40 {
        for s in 0..12 {
            let request = AppendRequest::to_stream(
                stream(s),
                ExpectedVersion::Any,
                (0..(1 + (round + s) % 4))
                    .map(|i| event("single", round * 10 + i))
                    .collect(),
                actor(),
                CorrelationId::new_v7(Timestamp::EPOCH),
            );
            log.append(request).expect("append").expect("no conflict");
        }
        let multi = AppendRequest::to_streams(
            vec![
                StreamWrite::new(
                    stream(round % 12),
                    ExpectedVersion::Any,
                    vec![event("m", 1)],
                ),
                StreamWrite::new(
                    stream(100 + round),
                    ExpectedVersion::NoStream,
                    vec![event("m", 2), event("m", 3)],
                ),
            ],
            actor(),
            CorrelationId::new_v7(Timestamp::EPOCH),
        );
        log.append(multi).expect("append").expect("no conflict");
        log.append(keyed_request(round))
            .expect("append")
            .expect("no conflict");
    }
}

struct Export {
    records: Vec<StoredRecord>,
    keys: Vec<StoredIdempotency>,
    head: Option<civicflow_core::ChainHead>,
}

fn export(log: &SledLog) -> Export {
    let mut records = Vec::new();
    let mut from = Position::FIRST;
    loop {
        let page = log.stored_records(from, 97).expect("stored records");
        let Some(last) = page.last() else { break };
        from = last.position.next();
        records.extend(page);
    }
    let mut keys = Vec::new();
    loop {
        let after = keys.last().map(|k: &StoredIdempotency| k.key.clone());
        let page = log
            .stored_idempotency_records(after.as_ref(), 7)
            .expect("idempotency records");
        if page.is_empty() {
            break;
        }
        keys.extend(page);
    }
    Export {
        records,
        keys,
        head: log.head(),
    }
}

fn read_everything(log: &SledLog) -> Vec<civicflow_core::RecordedEvent> {
    log.read_all(Position::FIRST, usize::MAX).expect("read all")
}

#[test]
fn a_restored_log_is_the_exported_one_byte_for_byte() {
    let scratch = Scratch::new("same");
    let source = scratch.open("source");
    fill(&source);
    let exported = export(&source);
    let head = exported.head.expect("a head");
    assert_eq!(exported.records.len() as u64, head.position.get());
    assert_eq!(exported.keys.len(), 40);

    let target = scratch.open("target");
    let restored = target
        .restore(
            exported.records.clone(),
            exported.keys.clone(),
            exported.head,
        )
        .expect("restore");
    assert_eq!(restored, Some(head));
    assert_eq!(target.head(), Some(head));

    // Every record, decoded and as stored bytes, with its hash.
    assert_eq!(read_everything(&target), read_everything(&source));
    assert_eq!(export(&target).records, exported.records);
    assert_eq!(export(&target).keys, exported.keys);
    let report = target.verify().expect("verify");
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.last_good, Some(head));

    // Streams: versions, reads and per-stream verification through the restored index.
    for s in (0..12).chain(100..140).chain(1000..1040) {
        let id = stream(s);
        assert_eq!(
            target.stream_version(&id).expect("version"),
            source.stream_version(&id).expect("version"),
            "{id}"
        );
        assert_eq!(
            target
                .read_stream(&id, Version::FIRST, usize::MAX)
                .expect("read"),
            source
                .read_stream(&id, Version::FIRST, usize::MAX)
                .expect("read"),
            "{id}"
        );
        assert!(target.verify_stream(&id).expect("verify").is_intact());
    }

    // Idempotency survives: a retry is answered, not written again.
    let retried = target
        .append(keyed_request(3))
        .expect("append")
        .expect("no conflict");
    assert!(retried.deduplicated);
    assert_eq!(target.head(), Some(head));

    // Appends and subscriptions go on normally after the restore.
    let mut subscription = target.subscribe(head.position);
    let appended = target
        .append(AppendRequest::to_stream(
            stream(0),
            ExpectedVersion::Exact(source.stream_version(&stream(0)).expect("v").expect("v")),
            vec![event("after", 1)],
            actor(),
            CorrelationId::new_v7(Timestamp::EPOCH),
        ))
        .expect("append")
        .expect("no conflict");
    assert_eq!(appended.first_position, head.position.next());
    let seen = subscription
        .next_timeout(Duration::from_secs(5))
        .expect("read")
        .expect("the restored head");
    assert_eq!(seen.position, head.position);
    let seen = subscription
        .next_timeout(Duration::from_secs(5))
        .expect("read")
        .expect("the new event");
    assert_eq!(seen.position, head.position.next());
    drop(subscription);
    assert!(target.verify().expect("verify").is_intact());
    source.close().expect("close");
    target.close().expect("close");

    // And after reopening.
    let reopened = scratch.open("target");
    assert_eq!(
        reopened.head().map(|h| h.position),
        Some(head.position.next())
    );
    assert!(reopened.verify().expect("verify").is_intact());
    reopened.close().expect("close");
}

#[test]
fn a_changed_export_is_refused_naming_the_position_and_leaves_the_log_empty() {
    let scratch = Scratch::new("tampered");
    let source = scratch.open("source");
    fill(&source);
    let exported = export(&source);

    // One byte of one record's payload (the last byte of the record).
    let at = 123;
    let mut records = exported.records.clone();
    let last = records[at].bytes.len() - 1;
    records[at].bytes[last] ^= 0x01;
    let target = scratch.open("target");
    let err = target
        .restore(records, Vec::new(), exported.head)
        .expect_err("a changed byte");
    let position = exported.records[at].position;
    match &err {
        RestoreError::HashMismatch { position: p, .. } => assert_eq!(*p, position),
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        err.to_string().contains(&format!("position {position}")),
        "{err}"
    );
    // Nothing of it is left: the log is empty and a full restore goes in afterwards.
    assert_eq!(target.head(), None);
    assert!(target
        .read_all(Position::FIRST, 10)
        .expect("read")
        .is_empty());
    assert!(target.stream_version(&stream(0)).expect("v").is_none());

    // A changed hash, a dropped record, a record's own position field, a cut-off export.
    let mut records = exported.records.clone();
    records[10].hash = ChainHash::from_bytes([7; 32]);
    assert!(matches!(
        target.restore(records, Vec::new(), exported.head),
        Err(RestoreError::HashMismatch { position, .. }) if position.get() == 11
    ));
    let mut records = exported.records.clone();
    records.remove(20);
    assert!(matches!(
        target.restore(records, Vec::new(), exported.head),
        Err(RestoreError::OutOfOrder { expected, .. }) if expected.get() == 21
    ));
    let mut records = exported.records.clone();
    records.pop();
    assert!(matches!(
        target.restore(records, exported.keys.clone(), exported.head),
        Err(RestoreError::Idempotency { .. } | RestoreError::HeadMismatch { .. })
    ));
    let records: Vec<_> = exported.records[..50].to_vec();
    assert!(matches!(
        target.restore(records, Vec::new(), exported.head),
        Err(RestoreError::HeadMismatch { .. })
    ));
    let mut keys = exported.keys.clone();
    keys[0].bytes[0] = 9;
    assert!(matches!(
        target.restore(exported.records.clone(), keys, exported.head),
        Err(RestoreError::Idempotency { .. })
    ));
    assert_eq!(target.head(), None);
    assert!(target.verify().expect("verify").is_intact());

    target
        .restore(exported.records, exported.keys, exported.head)
        .expect("the real export");
    assert_eq!(target.head(), exported.head);
    source.close().expect("close");
    target.close().expect("close");
}

#[test]
fn a_log_that_holds_anything_is_refused() {
    let scratch = Scratch::new("nonempty");
    let source = scratch.open("source");
    fill(&source);
    let exported = export(&source);

    let target = scratch.open("target");
    target
        .append(keyed_request(0))
        .expect("append")
        .expect("no conflict");
    let before = target.head();
    let err = target
        .restore(exported.records.clone(), exported.keys, exported.head)
        .expect_err("not empty");
    assert!(matches!(err, RestoreError::NotEmpty { .. }), "{err:?}");
    assert!(err.to_string().contains("not empty"), "{err}");
    assert_eq!(target.head(), before);
    assert!(target.verify().expect("verify").is_intact());

    // A restored log is no longer empty either.
    let other = scratch.open("other");
    other
        .restore(exported.records.clone(), Vec::new(), exported.head)
        .expect("restore");
    assert!(matches!(
        other.restore(exported.records, Vec::new(), exported.head),
        Err(RestoreError::NotEmpty { .. })
    ));
    // An empty export restores an empty log.
    let empty = scratch.open("empty");
    assert_eq!(
        empty.restore(Vec::new(), Vec::new(), None).expect("empty"),
        None
    );
    for log in [source, target, other, empty] {
        log.close().expect("close");
    }
}

#[test]
fn a_restore_refused_after_writing_batches_removes_them() {
    let scratch = Scratch::new("undo");
    let source = scratch.open("source");
    for round in 0..10 {
        let request = AppendRequest::to_stream(
            stream(round % 3),
            ExpectedVersion::Any,
            (0..600).map(|i| event("bulk", i)).collect(),
            actor(),
            CorrelationId::new_v7(Timestamp::EPOCH),
        );
        source
            .append(request)
            .expect("append")
            .expect("no conflict");
    }
    let exported = export(&source);
    assert_eq!(exported.records.len(), 6000);

    // Refused at position 5500, after the first 4096 records were written to sled.
    let mut records = exported.records.clone();
    records[5499].bytes[0] = 2;
    let target = scratch.open("target");
    let err = target
        .restore(records, Vec::new(), exported.head)
        .expect_err("refused");
    assert!(
        matches!(err, RestoreError::Invalid { position, .. } if position.get() == 5500),
        "{err:?}"
    );
    assert!(target.poisoned().is_none());
    assert_eq!(target.head(), None);
    assert!(target.stream_version(&stream(0)).expect("v").is_none());
    target.close().expect("close");

    // Nothing of it survives a reopen either, and the real export goes in.
    let target = scratch.open("target");
    assert_eq!(target.head(), None);
    assert!(target
        .read_all(Position::FIRST, 1)
        .expect("read")
        .is_empty());
    target
        .restore(exported.records, exported.keys, exported.head)
        .expect("restore");
    assert!(target.verify().expect("verify").is_intact());
    assert_eq!(read_everything(&target), read_everything(&source));
    source.close().expect("close");
    target.close().expect("close");
}
