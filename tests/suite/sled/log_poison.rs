//! A failed flush or sync poisons the event log. Guards against a log that keeps writing (or
//! acknowledges) after a failed `fdatasync`, shows readers events that never became durable,
//! or loses or tears acknowledged appends when the store is reopened.
//!
//! The failure is injected with `FaultInjection { fail_sync_after: Some(n) }`: the first `n`
//! syncs succeed, every later one fails.

use crate::common::TempDir;
use civicflow_core::EventStore as _;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};

use civicflow_core::{
    Actor, AppendError, AppendRequest, Appended, CorrelationId, EventType, ExpectedVersion,
    FaultInjection, IdempotencyKey, NewEvent, Position, RecordedEvent, SledLog, SledLogConfig,
    StreamId, StreamWrite, Timestamp, Version,
};

/// Reopening right after `close` must work: `close` consumed the only handle, so nothing
/// holds the store any more (`OpenError::Locked` here means `close` returned before the
/// storage engine let go of the directory lock).
const REOPEN: &str = "the store reopens without faults right after close";

fn open_failing_after(path: &Path, syncs: u64) -> SledLog {
    let mut config = SledLogConfig::new(path);
    config.faults = FaultInjection {
        fail_sync_after: Some(syncs),
        ..FaultInjection::default()
    };
    config
        .open()
        .expect("a new store opens with fault injection")
}

fn stream(name: &str) -> StreamId {
    StreamId::new(name).expect("a valid stream id")
}

/// The payload of event `index` of the append with key `key`: the parent finds the append of
/// every stored event from it.
fn payload(key: &str, index: usize) -> Vec<u8> {
    format!("{key}/{index}/poison-test").into_bytes()
}

fn key_of(event: &RecordedEvent) -> (String, usize) {
    let text = std::str::from_utf8(&event.payload).expect("the test writes UTF-8 payloads");
    let mut parts = text.split('/');
    let key = parts.next().expect("a key").to_owned();
    let index = parts
        .next()
        .and_then(|i| i.parse().ok())
        .expect("an index after the key");
    (key, index)
}

/// An append with idempotency key `key`: `counts[i]` events to `streams[i]`, in order.
fn request(key: &str, writes: &[(&str, ExpectedVersion, usize)]) -> AppendRequest {
    let event_type = EventType::new("PoisonProbe").expect("a valid event type");
    let mut index = 0;
    let writes = writes
        .iter()
        .map(|(name, expected, count)| {
            let events = (0..*count)
                .map(|_| {
                    index += 1;
                    NewEvent::new(event_type.clone(), 1, payload(key, index - 1))
                })
                .collect();
            StreamWrite::new(stream(name), *expected, events)
        })
        .collect();
    AppendRequest::to_streams(
        writes,
        Actor::parse("poison-writer", "tester", "lab/poison").expect("a valid actor"),
        CorrelationId::new_v7(Timestamp::EPOCH),
    )
    .with_idempotency_key(IdempotencyKey::new(key).expect("a valid idempotency key"))
}

/// The request of acknowledged append number `i` of [`poison_after`]: to `case-p`, and every
/// other one atomically to `unit-q` too.
fn acked_request(i: u64) -> AppendRequest {
    let key = format!("ok-{i}");
    if i % 2 == 1 {
        request(
            &key,
            &[
                ("case-p", ExpectedVersion::Any, 1),
                ("unit-q", ExpectedVersion::Any, 2),
            ],
        )
    } else {
        request(
            &key,
            &[("case-p", ExpectedVersion::Any, 1 + (i as usize % 3))],
        )
    }
}

/// The append that hits the failing sync: to `case-p` and to a new stream.
fn failing_request() -> AppendRequest {
    request(
        "failed",
        &[
            ("case-p", ExpectedVersion::Any, 1),
            ("case-failed", ExpectedVersion::NoStream, 2),
        ],
    )
}

fn read_everything(log: &SledLog) -> Vec<RecordedEvent> {
    let mut events: Vec<RecordedEvent> = Vec::new();
    loop {
        let from = Position::new(events.len() as u64 + 1).expect("not zero");
        let page = log.read_all(from, 1000).expect("read_all works");
        if page.is_empty() {
            return events;
        }
        assert_eq!(
            page[0].position, from,
            "read_all from {from} starts at {from}"
        );
        events.extend(page);
    }
}

fn assert_poisoned(result: Result<(), AppendError>, durable_head: u64, what: &str) -> String {
    match result {
        Err(AppendError::Poisoned {
            reason,
            durable_head: head,
        }) => {
            assert_eq!(
                head, durable_head,
                "{what}: Poisoned names the last durable position"
            );
            reason
        }
        other => panic!("{what}: expected AppendError::Poisoned, got {other:?}"),
    }
}

/// Drops the `Ok` payload so results of sync and async appends compare alike.
fn outcome(result: civicflow_core::AppendResult) -> Result<(), AppendError> {
    match result {
        Ok(Ok(appended)) => panic!("an append on a poisoned log was acknowledged: {appended:?}"),
        Ok(Err(conflict)) => panic!("an append on a poisoned log got a conflict: {conflict}"),
        Err(e) => Err(e),
    }
}

/// `n` appends succeed, the next hits a failed sync; the log refuses writes, serves reads of
/// exactly the `n` appends, and after reopening holds them intact and takes appends again.
fn poison_after(n: u64) {
    let store = TempDir::new(&format!("log-poison-after-{n}"));
    let log = open_failing_after(store.path(), n);

    // 1. n acknowledged appends (each a group of its own: one writer, one sync per append).
    let mut acked: Vec<Appended> = Vec::new();
    for i in 0..n {
        let appended = log
            .append(acked_request(i))
            .expect("the first n syncs succeed")
            .expect("no conflict with ExpectedVersion::Any");
        let expected_first = acked.last().map_or(1, |a| a.last_position.get() + 1);
        assert_eq!(
            appended.first_position.get(),
            expected_first,
            "append {i} continues the positions"
        );
        acked.push(appended);
    }
    let head = acked.last().map_or(0, |a| a.last_position.get());
    let acked_events = read_everything(&log);
    assert_eq!(
        acked_events.len() as u64,
        head,
        "every acknowledged event is readable"
    );

    // 2. The next append hits the failing sync.
    let failed = log.append(failing_request());
    let message = match &failed {
        Err(e @ AppendError::Poisoned { .. }) => e.to_string(),
        other => panic!("the append whose sync fails must be Poisoned, got {other:?}"),
    };
    let reason = assert_poisoned(failed.map(|_| ()), head, "the append whose sync fails");
    assert!(
        message.contains("poisoned") && message.contains("reopen"),
        "the message says the log is poisoned and that the store must be reopened: {message}"
    );
    assert!(
        message.contains(&reason),
        "the message names the cause ({reason}): {message}"
    );
    assert_eq!(
        log.poisoned().as_deref(),
        Some(reason.as_str()),
        "poisoned() reports why"
    );

    // 3. Every later append is refused, whatever it is: new, a retry of an acknowledged
    // append, a retry of the failed one, one that would conflict, sync or async.
    let fresh = || request("later", &[("case-later", ExpectedVersion::Any, 1)]);
    assert_poisoned(outcome(log.append(fresh())), head, "a later sync append");
    assert_poisoned(
        outcome(log.append(failing_request())),
        head,
        "a retry of the failed append",
    );
    if n > 0 {
        assert_poisoned(
            outcome(log.append(acked_request(0))),
            head,
            "a retry of an acknowledged append",
        );
    }
    assert_poisoned(
        outcome(log.append(request(
            "conflict",
            &[(
                "case-p",
                ExpectedVersion::Exact(Version::new(999).expect("not zero")),
                1,
            )],
        ))),
        head,
        "an append that would conflict",
    );
    assert_poisoned(
        outcome(log.append_async(fresh()).wait()),
        head,
        "a later async append, waited on a thread",
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    assert_poisoned(
        outcome(runtime.block_on(log.append_async(fresh()))),
        head,
        "a later async append, awaited",
    );
    assert_eq!(
        log.poisoned().as_deref(),
        Some(reason.as_str()),
        "the reason stays the first failure"
    );

    // 4. Reads keep working and show exactly the n acknowledged appends.
    assert_eq!(
        read_everything(&log),
        acked_events,
        "read_all shows exactly the acknowledged events, nothing of the failed append"
    );
    match (log.head(), acked_events.last()) {
        (None, None) => {}
        (Some(h), Some(last)) => {
            assert_eq!(
                h.position, last.position,
                "head is the last acknowledged event"
            );
            assert_eq!(
                h.hash, last.hash,
                "head hash is the last acknowledged event's"
            );
        }
        (h, last) => panic!("head {h:?} but the last readable event is {last:?}"),
    }
    let case_p = log
        .read_stream(&stream("case-p"), Version::FIRST, 1000)
        .expect("read_stream works on a poisoned log");
    let acked_in_case_p: Vec<&RecordedEvent> = acked_events
        .iter()
        .filter(|e| e.stream.as_str() == "case-p")
        .collect();
    assert_eq!(
        case_p.iter().collect::<Vec<_>>(),
        acked_in_case_p,
        "read_stream case-p shows exactly its acknowledged events"
    );
    assert_eq!(
        log.stream_version(&stream("case-p"))
            .expect("stream_version works"),
        Version::new(acked_in_case_p.len() as u64),
        "case-p is at its last acknowledged version"
    );
    assert!(
        log.read_stream(&stream("case-failed"), Version::FIRST, 1000)
            .expect("read_stream works on a poisoned log")
            .is_empty(),
        "the failed append's new stream is invisible"
    );
    assert_eq!(
        log.stream_version(&stream("case-failed"))
            .expect("stream_version works"),
        None,
        "the failed append's new stream does not exist for readers"
    );
    let report = log.verify().expect("verify works on a poisoned log");
    assert!(report.is_intact(), "the chain is intact: {report:?}");
    assert_eq!(
        report.events_checked, head,
        "verify checks exactly the acknowledged events"
    );
    let report = log
        .verify_stream(&stream("case-p"))
        .expect("verify_stream works on a poisoned log");
    assert!(report.is_intact(), "case-p's chain is intact: {report:?}");

    let closed = log.close();
    println!("close after poisoning: {closed:?}");

    // 5. Reopened without faults: the acknowledged appends are intact, the failed one is whole
    // or absent, and appends work again without gaps.
    let log = SledLog::open(store.path()).expect(REOPEN);
    let events = read_everything(&log);
    assert!(
        events.len() as u64 >= head,
        "all {head} acknowledged events survive, found {}",
        events.len()
    );
    assert_eq!(
        &events[..head as usize],
        &acked_events[..],
        "the acknowledged events are unchanged after reopening"
    );
    let rest = &events[head as usize..];
    let failed_survived = !rest.is_empty();
    if failed_survived {
        let version_p = acked_in_case_p.len() as u64;
        let shape: Vec<(String, usize, u64, &str, u64)> = rest
            .iter()
            .map(|e| {
                let (key, index) = key_of(e);
                (
                    key,
                    index,
                    e.position.get(),
                    e.stream.as_str(),
                    e.version.get(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                ("failed".to_owned(), 0, head + 1, "case-p", version_p + 1),
                ("failed".to_owned(), 1, head + 2, "case-failed", 1),
                ("failed".to_owned(), 2, head + 3, "case-failed", 2),
            ],
            "after the acknowledged events the log holds the failed append whole, or nothing"
        );
    }
    println!("poison_after({n}): the failed append survived the reopen: {failed_survived}");
    let report = log.verify().expect("verify works");
    assert!(
        report.is_intact(),
        "the reopened chain is intact: {report:?}"
    );
    assert_eq!(report.events_checked, events.len() as u64);

    // A retry of the failed append is safe: answered from the log if it survived, written now
    // if not; either way it lands right after the acknowledged events, once.
    let retried = log
        .append(failing_request())
        .expect("appends work after reopening")
        .expect("the retry does not conflict");
    assert_eq!(
        retried.deduplicated, failed_survived,
        "the retry is deduplicated exactly when the failed append survived"
    );
    assert_eq!(
        (retried.first_position.get(), retried.last_position.get()),
        (head + 1, head + 3),
        "the failed append, retried, sits right after the acknowledged events"
    );
    if let Some(first) = acked.first() {
        let replay = log
            .append(acked_request(0))
            .expect("a retry of an acknowledged append works")
            .expect("no conflict");
        assert!(
            replay.deduplicated,
            "an acknowledged append is not written twice"
        );
        assert_eq!(replay.first_position, first.first_position);
        assert_eq!(replay.last_position, first.last_position);
    }
    let next = log
        .append(request(
            "after-reopen",
            &[("case-p", ExpectedVersion::Any, 1)],
        ))
        .expect("appends work after reopening")
        .expect("no conflict");
    assert_eq!(
        next.first_position.get(),
        head + 4,
        "positions continue without gaps"
    );
    assert_eq!(
        next.streams[0].first_version.get(),
        acked_in_case_p.len() as u64 + 2,
        "case-p's versions continue without gaps"
    );
    let events = read_everything(&log);
    assert_eq!(
        events.len() as u64,
        head + 4,
        "no event twice, none missing"
    );
    let report = log.verify().expect("verify works");
    assert!(
        report.is_intact(),
        "the chain is intact at the end: {report:?}"
    );
    log.close().expect("the log closes");
}

#[test]
fn a_failed_sync_after_five_appends_poisons_the_log() {
    poison_after(5);
}

#[test]
fn a_failed_first_sync_poisons_an_empty_log() {
    poison_after(0);
}

/// What one writer thread saw.
#[derive(Debug, Default)]
struct Seen {
    acked: BTreeMap<String, Appended>,
    refused: BTreeMap<String, AppendError>,
}

/// The request of writer `t`'s append number `i`: to its own case, every third one atomically
/// to a shared unit too.
fn writer_request(t: usize, i: usize) -> AppendRequest {
    let key = format!("w{t}-{i}");
    let own = format!("case-w{t}");
    if i.is_multiple_of(3) {
        request(
            &key,
            &[
                (own.as_str(), ExpectedVersion::Any, 1),
                ("unit-shared", ExpectedVersion::Any, 1),
            ],
        )
    } else {
        request(&key, &[(own.as_str(), ExpectedVersion::Any, 1 + i % 2)])
    }
}

#[test]
fn no_writer_of_the_failed_group_is_acknowledged() {
    const SYNC_WRITERS: usize = 6;
    const ASYNC_BURST: usize = 8;
    const GOOD_SYNCS: u64 = 12;

    let store = TempDir::new("log-poison-concurrent");
    let log = open_failing_after(store.path(), GOOD_SYNCS);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let start = Arc::new(Barrier::new(SYNC_WRITERS + 1));

    // Sync writers append until refused; while one group syncs the others queue up, so the
    // group whose sync fails holds several of them.
    let mut threads: Vec<_> = (0..SYNC_WRITERS)
        .map(|t| {
            let log = log.clone();
            let seen = seen.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                for i in 0.. {
                    let key = format!("w{t}-{i}");
                    match log.append(writer_request(t, i)) {
                        Ok(Ok(appended)) => {
                            seen.lock().expect("lock").acked.insert(key, appended);
                        }
                        Ok(Err(conflict)) => panic!("{key}: a conflict with Any: {conflict}"),
                        Err(e) => {
                            seen.lock().expect("lock").refused.insert(key, e);
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    // One more writer sends bursts of async appends, which queue together.
    {
        let log = log.clone();
        let seen = seen.clone();
        let start = start.clone();
        threads.push(std::thread::spawn(move || {
            start.wait();
            let t = SYNC_WRITERS;
            for burst in 0.. {
                let pending: Vec<_> = (0..ASYNC_BURST)
                    .map(|j| {
                        let i = burst * ASYNC_BURST + j;
                        (format!("w{t}-{i}"), log.append_async(writer_request(t, i)))
                    })
                    .collect();
                let mut refused = false;
                for (key, completion) in pending {
                    match completion.wait() {
                        Ok(Ok(appended)) => {
                            seen.lock().expect("lock").acked.insert(key, appended);
                        }
                        Ok(Err(conflict)) => panic!("{key}: a conflict with Any: {conflict}"),
                        Err(e) => {
                            refused = true;
                            seen.lock().expect("lock").refused.insert(key, e);
                        }
                    }
                }
                if refused {
                    return;
                }
            }
        }));
    }
    for thread in threads {
        thread.join().expect("a writer thread panicked");
    }
    let seen = Arc::try_unwrap(seen)
        .expect("the writers are done")
        .into_inner()
        .expect("lock");

    // Every refusal is Poisoned and names the same durable head: the last acknowledged event.
    let head = log.head().map_or(0, |h| h.position.get());
    assert!(
        seen.acked.len() as u64 >= GOOD_SYNCS,
        "{GOOD_SYNCS} groups were synced, so at least as many appends were acknowledged: {}",
        seen.acked.len()
    );
    assert!(
        seen.refused.len() > SYNC_WRITERS,
        "every writer was refused at least once: {} refusals",
        seen.refused.len()
    );
    for (key, error) in &seen.refused {
        match error {
            AppendError::Poisoned { durable_head, .. } => assert_eq!(
                *durable_head, head,
                "{key}: Poisoned names the durable head"
            ),
            other => panic!("{key}: expected Poisoned, got {other:?}"),
        }
    }
    assert!(
        log.poisoned().is_some(),
        "the log reports that it is poisoned"
    );

    // Exactly the acknowledged appends are visible, at the positions they were told. A writer
    // of the failed group that got Ok would be acknowledged but beyond the durable head.
    let events = read_everything(&log);
    assert_eq!(
        events.len() as u64,
        head,
        "read_all reaches the durable head"
    );
    let visible = group_by_key(&events);
    for (key, appended) in &seen.acked {
        let positions = visible.get(key).unwrap_or_else(|| {
            panic!("{key} was acknowledged ({appended:?}) but is not visible up to the durable head {head}")
        });
        assert_eq!(
            (positions[0], *positions.last().expect("not empty")),
            (appended.first_position.get(), appended.last_position.get()),
            "{key} is where its acknowledgement said"
        );
    }
    let acked_keys: BTreeSet<&String> = seen.acked.keys().collect();
    let visible_keys: BTreeSet<&String> = visible.keys().collect();
    assert_eq!(
        visible_keys, acked_keys,
        "readers see exactly the acknowledged appends"
    );
    let report = log.verify().expect("verify works on a poisoned log");
    assert!(report.is_intact(), "the chain is intact: {report:?}");
    assert_eq!(report.events_checked, head);
    let closed = log.close();
    println!("close after poisoning: {closed:?}");

    // Reopened without faults: the acknowledged appends are intact; anything after them
    // belongs to refused appends, each whole; appends work again without gaps.
    let log = SledLog::open(store.path()).expect(REOPEN);
    let reopened = read_everything(&log);
    assert!(
        reopened.len() as u64 >= head,
        "no acknowledged event is lost"
    );
    assert_eq!(
        &reopened[..head as usize],
        &events[..],
        "the acknowledged events are unchanged"
    );
    let survivors = group_by_key(&reopened[head as usize..]);
    for (key, positions) in &survivors {
        assert!(
            seen.refused.contains_key(key),
            "{key} is stored after the durable head, so it must have been refused, not acknowledged"
        );
        let expected = writer_request_for_key(key).event_count();
        assert_eq!(
            positions.len(),
            expected,
            "{key} survived the failed sync, so it must be whole"
        );
        assert!(
            positions.windows(2).all(|w| w[1] == w[0] + 1),
            "{key}'s events are consecutive: {positions:?}"
        );
    }
    println!(
        "{} appends acknowledged, {} refused; {} refused appends of the failed group survived the reopen",
        seen.acked.len(),
        seen.refused.len(),
        survivors.len()
    );
    let report = log.verify().expect("verify works");
    assert!(
        report.is_intact(),
        "the reopened chain is intact: {report:?}"
    );
    assert_eq!(report.events_checked, reopened.len() as u64);
    let next = log
        .append(request(
            "after-reopen",
            &[("unit-shared", ExpectedVersion::Any, 1)],
        ))
        .expect("appends work after reopening")
        .expect("no conflict");
    assert_eq!(
        next.first_position.get(),
        reopened.len() as u64 + 1,
        "positions continue without gaps"
    );
    log.close().expect("the log closes");
}

/// The positions of every append's events, by idempotency key, in event order.
fn group_by_key(events: &[RecordedEvent]) -> BTreeMap<String, Vec<u64>> {
    let mut by_key: BTreeMap<String, Vec<(usize, u64)>> = BTreeMap::new();
    for event in events {
        let (key, index) = key_of(event);
        by_key
            .entry(key)
            .or_default()
            .push((index, event.position.get()));
    }
    by_key
        .into_iter()
        .map(|(key, mut parts)| {
            parts.sort_unstable();
            let indices: Vec<usize> = parts.iter().map(|(i, _)| *i).collect();
            assert_eq!(
                indices,
                (0..parts.len()).collect::<Vec<_>>(),
                "{key}: each event of the append once"
            );
            (key, parts.into_iter().map(|(_, p)| p).collect())
        })
        .collect()
}

/// The request a writer thread sent for `key` (`w{t}-{i}`).
fn writer_request_for_key(key: &str) -> AppendRequest {
    let (t, i) = key
        .strip_prefix('w')
        .and_then(|rest| rest.split_once('-'))
        .and_then(|(t, i)| Some((t.parse().ok()?, i.parse().ok()?)))
        .unwrap_or_else(|| panic!("{key} is no writer key"));
    writer_request(t, i)
}
