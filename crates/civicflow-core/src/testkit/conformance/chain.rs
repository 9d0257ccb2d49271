//! The hash chain: `verify` and `verify_stream` are intact over a history, and the stored
//! hashes chain as `docs/design.md` defines them.
//!
//! The model test runs `verify` and `verify_stream` after every step of small random
//! histories; these checks do it over one larger history (many streams, atomic appends to
//! several, events large enough to fill a storage unit each) and across a reopen, and they
//! recompute every stored hash from the stored record bytes, which no other check does.
//! Guards against a backend that stores other bytes than it hashed, links an event to the
//! wrong predecessor in the log or in its stream, reports a head that is not the last hash,
//! or whose `verify` passes a chain it did not walk.

use std::collections::HashMap;
use std::sync::Arc;

use super::support::{actor, correlation, event, run, stream, system_clock};
use super::Backend;
use crate::{
    AppendRequest, ChainHash, EventStore, ExpectedVersion, NewEvent, Position, RecordedEvent,
    StreamId, StreamWrite,
};

/// Streams of the history.
const STREAMS: usize = 7;

/// Appends a history of `rounds` rounds to `log`: to each stream one to three events, an
/// atomic append to two streams, and every fifth round three events of 60 kB each.
fn append_history(log: &dyn EventStore, rounds: usize, label: &str) {
    for round in 0..rounds {
        for s in 0..STREAMS {
            let events: Vec<NewEvent> = (0..1 + (round + s) % 3)
                .map(|i| event(format!("{label} round {round} stream {s} event {i}").as_bytes()))
                .collect();
            let request = AppendRequest::to_stream(
                stream(&format!("case-chain-{s}")),
                ExpectedVersion::Any,
                events,
                actor(),
                correlation(),
            );
            log.append(request)
                .expect("append")
                .expect("ExpectedVersion::Any never conflicts");
        }
        let pair = AppendRequest::to_streams(
            vec![
                StreamWrite::new(
                    stream(&format!("case-chain-{}", round % STREAMS)),
                    ExpectedVersion::Any,
                    vec![event(format!("{label} pair {round} a").as_bytes())],
                ),
                StreamWrite::new(
                    stream(&format!("unit-chain-{}", round % 3)),
                    ExpectedVersion::Any,
                    vec![event(format!("{label} pair {round} b").as_bytes())],
                ),
            ],
            actor(),
            correlation(),
        );
        log.append(pair)
            .expect("append")
            .expect("ExpectedVersion::Any never conflicts");
        if round % 5 == 0 {
            let large = (0..3)
                .map(|i| {
                    event(
                        &(0..60_000)
                            .map(|b| (b as u64 ^ (round as u64 * 31 + i)) as u8)
                            .collect::<Vec<u8>>(),
                    )
                })
                .collect();
            let request = AppendRequest::to_stream(
                stream("case-chain-large"),
                ExpectedVersion::Any,
                large,
                actor(),
                correlation(),
            );
            log.append(request)
                .expect("append")
                .expect("ExpectedVersion::Any never conflicts");
        }
    }
}

/// Every stream the history wrote.
fn streams(all: &[RecordedEvent]) -> Vec<StreamId> {
    let mut streams: Vec<StreamId> = all.iter().map(|e| e.stream.clone()).collect();
    streams.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    streams.dedup();
    streams
}

/// Checks `verify` over the whole log and `verify_stream` of every stream.
fn check_verify(log: &dyn EventStore, when: &str) {
    let all = log
        .read_all(Position::FIRST, usize::MAX)
        .expect("read_all of the whole log");
    let head = log.head();
    assert_eq!(
        head.map(|h| (h.position, h.hash)),
        all.last().map(|e| (e.position, e.hash)),
        "{when}: the head is not the last event's position and hash"
    );
    let report = log.verify().expect("verify");
    assert!(
        report.is_intact(),
        "{when}: verify found {:?}",
        report.first_break
    );
    assert_eq!(
        report.events_checked,
        all.len() as u64,
        "{when}: verify checked another number of events than the log holds"
    );
    assert_eq!(
        report.last_good, head,
        "{when}: verify's last good is not the head"
    );
    for id in streams(&all) {
        let events: Vec<&RecordedEvent> = all.iter().filter(|e| e.stream == id).collect();
        let report = log.verify_stream(&id).expect("verify_stream");
        assert!(
            report.is_intact(),
            "{when}: verify_stream({id}) found {:?}",
            report.first_break
        );
        assert_eq!(
            report.events_checked,
            events.len() as u64,
            "{when}: verify_stream({id}) checked another number of events than it holds"
        );
        assert_eq!(
            report.last_good.map(|h| (h.position, h.hash)),
            events.last().map(|e| (e.position, e.hash)),
            "{when}: verify_stream({id})'s last good is not the stream's last event"
        );
    }
    let unknown = stream("case-chain-never-written");
    let report = log.verify_stream(&unknown).expect("verify_stream");
    assert!(
        report.is_intact() && report.events_checked == 0 && report.last_good.is_none(),
        "{when}: verify_stream of a stream without events reported {report:?}"
    );
}

/// `verify` and `verify_stream` of every stream are intact over a history of 30 rounds
/// (seven streams, atomic appends to two, 60 kB events), each checking exactly the events
/// there are and ending at the head (or the stream's last event); the same after a reopen
/// and after more appends; and on an empty store, intact with nothing checked.
///
/// # Panics
/// When a report is broken or counts or ends elsewhere: names when and the stream.
pub fn verify_and_verify_stream_are_intact_over_a_history<B: Backend>(backend: &B) {
    run(
        backend,
        "verify_and_verify_stream_are_intact_over_a_history",
        |check| {
            let place = check.place();
            let log = check.open_empty(&place, system_clock(), 4);
            let report = log.verify().expect("verify of an empty store");
            assert!(
                report.is_intact() && report.events_checked == 0 && report.last_good.is_none(),
                "verify of an empty store reported {report:?}"
            );
            append_history(&*log, 30, "first");
            check_verify(&*log, "after the history");
            let log = check.reopen(&place, log, system_clock(), 0);
            check_verify(&*log, "after a reopen");
            append_history(&*log, 10, "second");
            check_verify(&*log, "after more appends");
            check.close(log);
        },
    );
}

/// Checks every stored record against the chain's definition and against `read_all`.
fn check_stored_hashes(log: &dyn EventStore, when: &str) {
    let all = log
        .read_all(Position::FIRST, usize::MAX)
        .expect("read_all of the whole log");
    let mut records = Vec::new();
    let mut from = Position::FIRST;
    loop {
        let page = log.stored_records(from, 97).expect("stored_records");
        let Some(last) = page.last() else { break };
        from = last.position.next();
        records.extend(page);
    }
    assert_eq!(
        records.len(),
        all.len(),
        "{when}: stored_records and read_all hold different numbers of events"
    );
    let mut prev_log = ChainHash::GENESIS;
    let mut prev_stream: HashMap<StreamId, ChainHash> = HashMap::new();
    for (record, read) in records.iter().zip(&all) {
        let at = read.position;
        assert_eq!(
            record.position, at,
            "{when}: stored_records skipped to {}",
            record.position
        );
        assert_eq!(
            record.hash, read.hash,
            "{when}: position {at}: the stored hash and read_all's differ"
        );
        let decoded =
            RecordedEvent::from_record_bytes(&record.bytes, record.hash).unwrap_or_else(|e| {
                panic!("{when}: position {at}: the stored bytes do not decode: {e}")
            });
        assert_eq!(
            &decoded, read,
            "{when}: position {at}: the stored bytes are not the event read_all returns"
        );
        let previous_in_stream = prev_stream
            .get(&read.stream)
            .copied()
            .unwrap_or(ChainHash::GENESIS);
        let expected = ChainHash::link(&prev_log, &previous_in_stream, &record.bytes);
        assert_eq!(
            record.hash, expected,
            "{when}: position {at} ({} version {}): the stored hash is not SHA-256 over the \
             previous event's hash, the stream's previous hash and the stored bytes",
            read.stream, read.version
        );
        prev_log = record.hash;
        prev_stream.insert(read.stream.clone(), record.hash);
    }
    assert_eq!(
        log.head().map(|h| h.hash),
        records.last().map(|r| r.hash),
        "{when}: the head's hash is not the last stored hash"
    );
}

/// The stored hashes chain: every record `stored_records` exports is, recomputed from its
/// bytes, `SHA-256("civicflow-chain-v1" | previous event's hash | the stream's previous
/// hash | bytes)` (`ChainHash::link`), equals the hash `read_all` returns, and its bytes
/// decode to exactly the event `read_all` returns; the head's hash is the last one. Over a
/// history of 20 rounds, after a reopen, and after more appends.
///
/// # Panics
/// When a hash does not chain or bytes differ: names when, the position and the stream.
pub fn stored_hashes_chain<B: Backend>(backend: &B) {
    run(backend, "stored_hashes_chain", |check| {
        let place = check.place();
        let log = check.open_empty(&place, system_clock(), 2);
        append_history(&*log, 20, "first");
        check_stored_hashes(&*log, "after the history");
        let log: Arc<dyn EventStore> = check.reopen(&place, log, system_clock(), 0);
        check_stored_hashes(&*log, "after a reopen");
        append_history(&*log, 5, "second");
        check_stored_hashes(&*log, "after more appends");
        check.close(log);
    });
}
