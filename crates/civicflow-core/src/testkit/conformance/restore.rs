//! Export the exact stored records of a log and restore them into an empty store of the
//! same backend.
//!
//! Guards against a restore that re-encodes (different bytes or hashes), loses stream
//! versions, the stream index or idempotency records, accepts a changed export, writes into
//! a log that holds something, or leaves half a log behind when it refuses.
//!
//! Moved from `crates/civicflow-core/tests/restore.rs`, where it ran against sled alone (with
//! `index_flush_events` 50, the tuning here, so that the source's index is split over several
//! flushes).

use std::sync::Arc;
use std::time::Duration;

use super::support::{run, system_clock};
use super::Backend;
use crate::{
    Actor, AppendRequest, ChainHash, ChainHead, CorrelationId, EventStore, EventType,
    ExpectedVersion, IdempotencyKey, NewEvent, Position, RecordedEvent, RestoreError,
    StoredIdempotency, StoredRecord, StreamId, StreamWrite, Subscription, Timestamp, Version,
};

/// The tuning every store of these checks is opened with: small, so that the source's
/// stream index is split over several moves to storage.
const TUNING: u8 = 50;

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
fn fill(log: &dyn EventStore) {
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
    head: Option<ChainHead>,
}

fn export(log: &dyn EventStore) -> Export {
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

fn read_everything(log: &dyn EventStore) -> Vec<RecordedEvent> {
    log.read_all(Position::FIRST, usize::MAX).expect("read all")
}

/// A log exported with `stored_records` and `stored_idempotency_records` (in pages) and
/// restored into an empty store of the backend is the same log: the same head, the same
/// events read and the same stored records (bytes and hashes) and idempotency records
/// exported again, `verify` intact up to the head, the same stream versions, stream reads
/// and intact `verify_stream` for every stream (single and multi-stream appends, keyed
/// appends); a keyed retry is answered from the restored record and writes nothing; appends
/// and a subscription go on at the next position; and all of it after a reopen.
///
/// # Panics
/// When the restored log differs, names what differs and the stores.
pub fn a_restored_log_is_the_exported_one_byte_for_byte<B: Backend>(backend: &B) {
    run(
        backend,
        "a_restored_log_is_the_exported_one_byte_for_byte",
        |check| {
            let source_place = check.place();
            let source = check.open_empty(&source_place, system_clock(), TUNING);
            fill(&source);
            let exported = export(&source);
            let head = exported.head.expect("a head");
            assert_eq!(exported.records.len() as u64, head.position.get());
            assert_eq!(exported.keys.len(), 40);

            let target_place = check.place();
            let target = check.open_empty(&target_place, system_clock(), TUNING);
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
            let mut subscription = Subscription::new(Arc::clone(&target), head.position);
            let appended = target
                .append(AppendRequest::to_stream(
                    stream(0),
                    ExpectedVersion::Exact(
                        source.stream_version(&stream(0)).expect("v").expect("v"),
                    ),
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
            check.close(source);

            // And after reopening.
            let reopened = check.reopen(&target_place, target, system_clock(), TUNING);
            assert_eq!(
                reopened.head().map(|h| h.position),
                Some(head.position.next())
            );
            assert!(reopened.verify().expect("verify").is_intact());
            check.close(reopened);
        },
    );
}

/// A restore of a changed export is refused, naming where, and leaves the store empty: one
/// changed byte of a record (`HashMismatch` at its position, named in the message), a
/// changed hash, a dropped record (`OutOfOrder`), a cut-off export with or without its
/// idempotency records (`Idempotency` or `HeadMismatch`), a damaged idempotency record
/// (`Idempotency`). After all of them the store is empty and verifies, and the real export
/// goes in.
///
/// # Panics
/// When a changed export is accepted, refused for another reason, or leaves anything.
pub fn a_changed_export_is_refused_naming_the_position_and_leaves_the_log_empty<B: Backend>(
    backend: &B,
) {
    run(
        backend,
        "a_changed_export_is_refused_naming_the_position_and_leaves_the_log_empty",
        |check| {
            let source_place = check.place();
            let source = check.open_empty(&source_place, system_clock(), TUNING);
            fill(&source);
            let exported = export(&source);

            // One byte of one record's payload (the last byte of the record).
            let at = 123;
            let mut records = exported.records.clone();
            let last = records[at].bytes.len() - 1;
            records[at].bytes[last] ^= 0x01;
            let target_place = check.place();
            let target = check.open_empty(&target_place, system_clock(), TUNING);
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
            check.close(source);
            check.close(target);
        },
    );
}

/// A restore only fills an empty store: into a store holding one append it is refused with
/// `NotEmpty` (saying "not empty"), changing nothing; a store filled by a restore refuses a
/// second one; an empty export restores an empty log.
///
/// # Panics
/// When a restore writes into a store that holds something.
pub fn a_log_that_holds_anything_is_refused<B: Backend>(backend: &B) {
    run(backend, "a_log_that_holds_anything_is_refused", |check| {
        let source_place = check.place();
        let source = check.open_empty(&source_place, system_clock(), TUNING);
        fill(&source);
        let exported = export(&source);

        let target_place = check.place();
        let target = check.open_empty(&target_place, system_clock(), TUNING);
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
        let other_place = check.place();
        let other = check.open_empty(&other_place, system_clock(), TUNING);
        other
            .restore(exported.records.clone(), Vec::new(), exported.head)
            .expect("restore");
        assert!(matches!(
            other.restore(exported.records, Vec::new(), exported.head),
            Err(RestoreError::NotEmpty { .. })
        ));
        // An empty export restores an empty log.
        let empty_place = check.place();
        let empty = check.open_empty(&empty_place, system_clock(), TUNING);
        assert_eq!(
            empty.restore(Vec::new(), Vec::new(), None).expect("empty"),
            None
        );
        for log in [source, target, other, empty] {
            check.close(log);
        }
    });
}

/// A restore refused late, at position 5500 of 6000 (after the backend has written
/// thousands of records: sled writes them in batches of 4096), removes everything it wrote:
/// the store is empty, not poisoned, and stays empty after a reopen, and the real export then
/// goes in and reads as the source.
///
/// # Panics
/// When anything of the refused restore is left, before or after the reopen.
pub fn a_restore_refused_after_writing_batches_removes_them<B: Backend>(backend: &B) {
    run(
        backend,
        "a_restore_refused_after_writing_batches_removes_them",
        |check| {
            let source_place = check.place();
            let source = check.open_empty(&source_place, system_clock(), TUNING);
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

            // Refused at position 5500, after thousands of records were written (sled writes
            // them in batches of 4096).
            let mut records = exported.records.clone();
            records[5499].bytes[0] = 2;
            let target_place = check.place();
            let target = check.open_empty(&target_place, system_clock(), TUNING);
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

            // Nothing of it survives a reopen either, and the real export goes in.
            let target = check.reopen(&target_place, target, system_clock(), TUNING);
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
            check.close(source);
            check.close(target);
        },
    );
}
