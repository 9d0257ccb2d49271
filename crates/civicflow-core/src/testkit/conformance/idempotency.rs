//! Idempotency keys: a keyed append is written once, however often and however
//! concurrently it is retried, also after the store was closed and opened again; a key
//! reused for another request is refused, also across a reopen; a refused append stores no
//! result for its key.
//!
//! `concurrent_retries_of_one_keyed_request_write_it_once` moved from the workspace's
//! `tests/log_concurrency.rs`, where it ran against sled alone; the checks across reopen are
//! new (the model test reaches them only by chance).

use std::sync::Barrier;
use std::thread;

use super::support::{
    actor, correlation, event, joined, read_whole_log, run, stream, system_clock,
};
use super::Backend;
use crate::{
    Actor, AppendError, AppendRequest, Appended, CausationId, EventStore, EventType,
    ExpectedVersion, IdempotencyKey, Position, RecordedEvent, StreamWrite, Version,
};

/// Concurrent retries: in each round several threads send the same keyed request at
/// once, and one thread sends other content under the same key. Exactly one append of the
/// round is written; the identical ones get its result back, deduplicated; the different
/// content gets `IdempotencyKeyReused` (or, when it came first, the identical ones do).
pub fn concurrent_retries_of_one_keyed_request_write_it_once<B: Backend>(backend: &B) {
    run(
        backend,
        "concurrent_retries_of_one_keyed_request_write_it_once",
        |check| {
            const ROUNDS: usize = 40;
            const SAME: usize = 6;
            let place = check.place();
            let log = check.open_empty(&place, system_clock(), 4);
            let mut written_events = 0u64;
            for round in 0..ROUNDS {
                let key = IdempotencyKey::new(format!("retry-{round}")).expect("a valid key");
                let target = stream(&format!("case-retry-{}", round % 3));
                let request = |content: &str| {
                    AppendRequest::to_stream(
                        target.clone(),
                        ExpectedVersion::Any,
                        vec![event(content.as_bytes()), event(b"second")],
                        actor(),
                        correlation(),
                    )
                    .with_idempotency_key(key.clone())
                };
                let barrier = Barrier::new(SAME + 1);
                let (same, other) = thread::scope(|scope| {
                    let same: Vec<_> = (0..SAME)
                        .map(|_| {
                            let request = request("the request");
                            let (log, barrier) = (&log, &barrier);
                            scope.spawn(move || {
                                barrier.wait();
                                log.append(request)
                            })
                        })
                        .collect();
                    let other = {
                        let request = request("other content");
                        let (log, barrier) = (&log, &barrier);
                        scope.spawn(move || {
                            barrier.wait();
                            log.append(request)
                        })
                    };
                    let same: Vec<_> = same.into_iter().map(|h| joined(h.join())).collect();
                    (same, joined(other.join()))
                });

                let mut written = Vec::new();
                let mut deduplicated = Vec::new();
                let mut reused = 0;
                for result in same.iter().chain(std::iter::once(&other)) {
                    match result {
                        Ok(Ok(a)) if a.deduplicated => deduplicated.push(a.clone()),
                        Ok(Ok(a)) => written.push(a.clone()),
                        Ok(Err(conflict)) => panic!("ExpectedVersion::Any conflicted: {conflict}"),
                        Err(AppendError::IdempotencyKeyReused { key: k }) => {
                            assert_eq!(k, &key, "the reused key");
                            reused += 1;
                        }
                        Err(e) => panic!("round {round}: append failed: {e}"),
                    }
                }
                assert_eq!(
                    written.len(),
                    1,
                    "round {round}: exactly one append writes, got {written:?}"
                );
                let original = &written[0];
                for d in &deduplicated {
                    let mut d = d.clone();
                    d.deduplicated = false;
                    assert_eq!(&d, original, "round {round}: a retry got another result");
                }
                let other_won = matches!(&other, Ok(Ok(a)) if !a.deduplicated);
                if other_won {
                    assert_eq!(
                        reused, SAME,
                        "round {round}: every identical retry is refused"
                    );
                } else {
                    assert_eq!(deduplicated.len(), SAME - 1, "round {round}: dedup count");
                    assert_eq!(reused, 1, "round {round}: the other content is refused");
                }
                written_events += 2;
                let stored = log
                    .read_all(original.first_position, usize::MAX)
                    .expect("read_all from the written append");
                assert_eq!(
                    stored.len(),
                    2,
                    "round {round}: nothing after the written append"
                );
                let winner: &[u8] = if other_won {
                    b"other content"
                } else {
                    b"the request"
                };
                assert_eq!(
                    stored[0].payload, winner,
                    "round {round}: the written payload"
                );
            }
            read_whole_log(&log, written_events);
            check.close(log);
        },
    );
}

/// One keyed append of the checks below: the request and what it got the first time.
struct Keyed {
    request: AppendRequest,
    appended: Appended,
}

/// A history with keyed appends among unkeyed ones: a keyed append of three events to a new
/// stream, a keyed atomic append to two streams with exact expected versions, and a keyed
/// append refused for a wrong expected version (which stores nothing for its key).
fn keyed_history(log: &dyn EventStore) -> (Vec<Keyed>, AppendRequest) {
    let unkeyed = |name: &str, text: &str| {
        let request = AppendRequest::to_stream(
            stream(name),
            ExpectedVersion::Any,
            vec![event(text.as_bytes())],
            actor(),
            correlation(),
        );
        log.append(request)
            .expect("an unkeyed append")
            .expect("ExpectedVersion::Any never conflicts");
    };
    let mut keyed = Vec::new();
    let mut send = |request: AppendRequest| {
        let appended = log
            .append(request.clone())
            .expect("a keyed append")
            .unwrap_or_else(|c| {
                panic!("a keyed append with the right expectation conflicted: {c}")
            });
        assert!(
            !appended.deduplicated,
            "the first append with key {:?} was answered as a retry: {appended:?}",
            request.idempotency_key
        );
        keyed.push(Keyed { request, appended });
    };

    unkeyed("case-idem-other", "before");
    send(
        AppendRequest::to_stream(
            stream("case-idem-1"),
            ExpectedVersion::NoStream,
            vec![event(b"one"), event(b"two"), event(b"three")],
            actor(),
            correlation(),
        )
        .with_idempotency_key(key("open-case-1")),
    );
    unkeyed("case-idem-other", "between");
    send(
        AppendRequest::to_streams(
            vec![
                StreamWrite::new(
                    stream("case-idem-1"),
                    ExpectedVersion::Exact(Version::new(3).expect("3 is a version")),
                    vec![event(b"merged into case-idem-2")],
                ),
                StreamWrite::new(
                    stream("case-idem-2"),
                    ExpectedVersion::NoStream,
                    vec![event(b"accepts case-idem-1"), event(b"second")],
                ),
            ],
            actor(),
            correlation(),
        )
        .caused_by(CausationId::from_uuid(uuid::Uuid::from_u128(77)))
        .with_idempotency_key(key("merge-1-into-2")),
    );
    unkeyed("case-idem-1", "after");

    let refused = AppendRequest::to_stream(
        stream("case-idem-1"),
        ExpectedVersion::NoStream,
        vec![event(b"refused")],
        actor(),
        correlation(),
    )
    .with_idempotency_key(key("refused-1"));
    match log.append(refused.clone()) {
        Ok(Err(conflict)) => assert_eq!(conflict.stream, stream("case-idem-1")),
        other => panic!("a keyed append expecting no stream of an existing one got {other:?}"),
    }
    assert_eq!(
        log.idempotent_result(&key("refused-1"))
            .expect("idempotent_result"),
        None,
        "a keyed append refused by a conflict must store no result for its key"
    );
    (keyed, refused)
}

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::new(text).expect("the kit's keys are valid")
}

/// Retries every keyed append of `keyed` (as sent, with a new correlation and causation id,
/// and through `append_async`) and checks that each answers its first result, deduplicated,
/// and that nothing is written; the refused one is refused again.
fn retry_all(log: &dyn EventStore, keyed: &[Keyed], refused: &AppendRequest, when: &str) {
    let before = log
        .read_all(Position::FIRST, usize::MAX)
        .expect("read_all before the retries");
    let head = log.head();
    for Keyed { request, appended } in keyed {
        let key = request.idempotency_key.clone().expect("a keyed request");
        let mut expected = appended.clone();
        expected.deduplicated = true;
        assert_eq!(
            log.idempotent_result(&key).expect("idempotent_result"),
            Some(expected.clone()),
            "{when}: idempotent_result({key}) must be the first append's result"
        );
        let mut fresh = request.clone();
        fresh.correlation_id = correlation();
        fresh.causation_id = Some(CausationId::from_uuid(uuid::Uuid::from_u128(99)));
        for (how, retry) in [("as sent", request.clone()), ("with new ids", fresh)] {
            match log.append(retry.clone()) {
                Ok(Ok(got)) => assert_eq!(
                    got, expected,
                    "{when}: a retry of {key} ({how}) must answer the first result, deduplicated"
                ),
                other => panic!(
                    "{when}: a retry of {key} ({how}) must answer the first result even though \
                     its expected versions no longer hold, got {other:?}"
                ),
            }
            let got = log.append_async(retry).wait();
            assert_eq!(
                got.ok().and_then(Result::ok),
                Some(expected.clone()),
                "{when}: an async retry of {key} ({how}) must answer the first result"
            );
        }
    }
    match log.append(refused.clone()) {
        Ok(Err(_)) => {}
        other => panic!(
            "{when}: a keyed append refused by a conflict, sent again, must be checked afresh \
             (and conflict again), got {other:?}"
        ),
    }
    assert_eq!(log.head(), head, "{when}: the retries moved the head");
    let after = log
        .read_all(Position::FIRST, usize::MAX)
        .expect("read_all after the retries");
    assert_eq!(after, before, "{when}: the retries wrote something");
}

/// A keyed append retried after the store was closed and opened again (and after every
/// handle was dropped without closing) answers its stored result, `deduplicated`, and writes
/// nothing: also when sent with new correlation and causation ids, through `append_async`,
/// and when its expected versions no longer hold. `idempotent_result` answers the same. A
/// keyed append refused by a conflict stores nothing for its key, so sending it again is
/// checked afresh. New appends go on at the next position.
///
/// # Panics
/// When a retry writes, conflicts or answers another result: names when (before or after
/// which reopen), the key and the store.
pub fn a_keyed_append_retried_after_reopen_answers_the_stored_result_and_writes_nothing<
    B: Backend,
>(
    backend: &B,
) {
    run(
        backend,
        "a_keyed_append_retried_after_reopen_answers_the_stored_result_and_writes_nothing",
        |check| {
            let place = check.place();
            let log = check.open_empty(&place, system_clock(), 1);
            let (keyed, refused) = keyed_history(&*log);
            retry_all(&*log, &keyed, &refused, "before any reopen");

            let log = check.reopen(&place, log, system_clock(), 0);
            retry_all(&*log, &keyed, &refused, "after close and reopen");

            // Every handle dropped without a close.
            drop(log);
            let log = check.open(&place, system_clock(), 2);
            retry_all(
                &*log,
                &keyed,
                &refused,
                "after dropping every handle and reopening",
            );

            let head = log.head().expect("a head").position;
            let appended = log
                .append(AppendRequest::to_stream(
                    stream("case-idem-2"),
                    ExpectedVersion::Exact(Version::new(2).expect("2 is a version")),
                    vec![event(b"after the retries")],
                    actor(),
                    correlation(),
                ))
                .expect("append")
                .expect("case-idem-2 is at version 2");
            assert_eq!(
                appended.first_position,
                head.next(),
                "an append after the retries goes at the next position"
            );
            check.close(log);
        },
    );
}

/// Requests that reuse `request`'s key for something else: another payload, event type,
/// schema version, actor, expected version, stream, one event more or one less.
fn misuses(request: &AppendRequest) -> Vec<(&'static str, AppendRequest)> {
    let mut out = Vec::new();
    let mut other = request.clone();
    other.writes[0].events[0].payload.push(b'!');
    out.push(("another payload", other));
    let mut other = request.clone();
    other.writes[0].events[0].event_type =
        EventType::new("CaseClosed").expect("a valid event type");
    out.push(("another event type", other));
    let mut other = request.clone();
    other.writes[0].events[0].schema_version += 1;
    out.push(("another schema version", other));
    let mut other = request.clone();
    other.actor = Actor::parse("王芳", "community_officer", "通惠社区").expect("a valid actor");
    out.push(("another actor", other));
    let mut other = request.clone();
    other.writes[0].expected = ExpectedVersion::Any;
    out.push(("another expected version", other));
    let mut other = request.clone();
    other.writes[0].stream = stream("case-idem-elsewhere");
    out.push(("another stream", other));
    let mut other = request.clone();
    other.writes[0].events.push(event(b"one more"));
    out.push(("one event more", other));
    if request.writes[0].events.len() > 1 {
        let mut other = request.clone();
        other.writes[0].events.pop();
        out.push(("one event less", other));
    }
    out
}

/// Sends every misuse of every keyed append and checks each is refused with
/// `IdempotencyKeyReused` naming the key, and that nothing is written.
fn misuse_all(log: &dyn EventStore, keyed: &[Keyed], when: &str) {
    let before: Vec<RecordedEvent> = log
        .read_all(Position::FIRST, usize::MAX)
        .expect("read_all before the misuses");
    for Keyed { request, appended } in keyed {
        let key = request.idempotency_key.clone().expect("a keyed request");
        for (how, misuse) in misuses(request) {
            match log.append(misuse) {
                Err(AppendError::IdempotencyKeyReused { key: named }) => assert_eq!(
                    named, key,
                    "{when}: the refusal of {key} reused with {how} names another key"
                ),
                other => panic!(
                    "{when}: key {key} reused with {how} must be refused with \
                     IdempotencyKeyReused, got {other:?}"
                ),
            }
        }
        let mut expected = appended.clone();
        expected.deduplicated = true;
        assert_eq!(
            log.idempotent_result(&key).expect("idempotent_result"),
            Some(expected),
            "{when}: a refused reuse of {key} changed its stored result"
        );
    }
    let after = log
        .read_all(Position::FIRST, usize::MAX)
        .expect("read_all after the misuses");
    assert_eq!(
        after, before,
        "{when}: a refused reuse of a key wrote something"
    );
}

/// A key reused for another request (another payload, event type, schema version, actor,
/// expected version or stream, an event more or less) is refused with
/// `IdempotencyKeyReused` naming the key, writes nothing and leaves the key's stored result
/// as it was: before a reopen, after closing and opening the store again, and after
/// dropping every handle and opening it again. The original request is still answered as a
/// retry afterwards.
///
/// # Panics
/// When a reuse is accepted, refused otherwise, or writes: names when, the key, the change
/// and the store.
pub fn a_key_reused_for_another_request_is_refused_across_reopen<B: Backend>(backend: &B) {
    run(
        backend,
        "a_key_reused_for_another_request_is_refused_across_reopen",
        |check| {
            let place = check.place();
            let log = check.open_empty(&place, system_clock(), 3);
            let (keyed, refused) = keyed_history(&*log);
            misuse_all(&*log, &keyed, "before any reopen");

            let log = check.reopen(&place, log, system_clock(), 0);
            misuse_all(&*log, &keyed, "after close and reopen");

            drop(log);
            let log = check.open(&place, system_clock(), 1);
            misuse_all(&*log, &keyed, "after dropping every handle and reopening");
            retry_all(&*log, &keyed, &refused, "after the misuses");
            check.close(log);
        },
    );
}

/// A keyed append with the caller's own fingerprint (the engine's digest of a command, whose
/// retry may decide other events, with other timestamps): a retry with the same fingerprint
/// is the same request whatever its events, and answers the first result, deduplicated,
/// writing nothing, also after a reopen; another fingerprint under the key is refused as a
/// reuse. `idempotency_record` answers the fingerprint given, and `idempotent_result` the
/// same result.
///
/// # Panics
/// When a retry writes or answers another result, a reuse is accepted, or the record does not
/// keep the fingerprint: names when and the store.
pub fn a_caller_fingerprint_decides_which_retries_are_the_same_request<B: Backend>(backend: &B) {
    run(
        backend,
        "a_caller_fingerprint_decides_which_retries_are_the_same_request",
        |check| {
            let place = check.place();
            let log = check.open_empty(&place, system_clock(), 2);
            let key = key("engine-digest-1");
            let request = |content: &[u8], fingerprint: [u8; 32]| {
                AppendRequest::to_stream(
                    stream("case-fingerprint"),
                    ExpectedVersion::Any,
                    vec![event(content)],
                    actor(),
                    correlation(),
                )
                .with_idempotency(key.clone(), fingerprint)
            };
            let first = log
                .append(request(b"decided at 09:00", [7; 32]))
                .expect("the first keyed append")
                .expect("no conflict");
            assert!(!first.deduplicated, "the first append is not a retry");
            for when in ["the first retry", "the second retry"] {
                let head = log.head();
                let again = log
                    .append(request(b"decided again at 09:05", [7; 32]))
                    .unwrap_or_else(|e| panic!("{when}: the same fingerprint refused: {e}"))
                    .expect("no conflict");
                assert!(again.deduplicated, "{when}: a retry must be deduplicated");
                assert_eq!(
                    Appended {
                        deduplicated: false,
                        ..again.clone()
                    },
                    first,
                    "{when}: a retry must answer the first result"
                );
                assert_eq!(log.head(), head, "{when}: a retry wrote");
                match log.append(request(b"decided at 09:00", [8; 32])) {
                    Err(AppendError::IdempotencyKeyReused { key: reused }) => {
                        assert_eq!(reused, key, "{when}: the refusal names the key");
                    }
                    other => panic!("{when}: another fingerprint must be refused, got {other:?}"),
                }
                assert_eq!(log.head(), head, "{when}: a refused reuse wrote");
                let record = log
                    .idempotency_record(&key)
                    .expect("idempotency_record")
                    .unwrap_or_else(|| panic!("{when}: no record for the key"));
                assert_eq!(record.fingerprint, [7; 32], "{when}: the fingerprint given");
                assert_eq!(
                    Some(record.appended),
                    log.idempotent_result(&key).expect("idempotent_result"),
                    "{when}: idempotent_result answers the record's result"
                );
            }
            let log = check.reopen(&place, log, system_clock(), 0);
            let again = log
                .append(request(b"after reopen", [7; 32]))
                .expect("the same fingerprint after reopen")
                .expect("no conflict");
            assert!(again.deduplicated, "after reopen: deduplicated");
            check.close(log);
        },
    );
}
