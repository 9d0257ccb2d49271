//! Subscriptions against a live log: a subscriber sees every position once and in order
//! while writers append, a stream subscription sees exactly its stream, and a subscriber
//! that stops reading holds up no writer.
//!
//! Guards against subscribers that skip, miss or repeat events (of the log, or of their
//! stream while other streams interleave), and against the class of bug where a slow
//! consumer blocks commits (sled's own `watch_prefix` blocks the writer once its
//! subscriber's buffer is full).
//!
//! Moved from the workspace's `tests/log_subscriptions.rs` and (the live subscriber among
//! writers) `tests/log_concurrency.rs`, where they ran against sled alone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use super::support::{
    joined, mixed_request, read_whole_log, run, stream, system_clock, version_number,
};
use super::Backend;
use crate::{
    Actor, AppendRequest, CorrelationId, EventStore, EventType, ExpectedVersion, NewEvent,
    Position, ReadError, RecordedEvent, StreamId, StreamSubscription, Subscription, Timestamp,
    Version,
};

fn note(stream: &StreamId, text: String) -> AppendRequest {
    AppendRequest::to_stream(
        stream.clone(),
        ExpectedVersion::Any,
        vec![NewEvent::new(
            EventType::new("NoteAdded").expect("valid"),
            1,
            text.into_bytes(),
        )],
        Actor::parse("w", "grid_worker", "grid-1").expect("valid"),
        CorrelationId::new_v7(Timestamp::EPOCH),
    )
}

/// A stream subscription started at version 2 of a stream with history catches up, then
/// follows live while four writers interleave 200 more events of the stream with 200 of
/// other streams: it sees only its stream, every version from 2 to 203 once and in order,
/// with the payloads `read_stream` returns.
///
/// # Panics
/// When the subscription misses, repeats or reorders a version, or sees another stream.
pub fn a_stream_subscription_sees_its_stream_only_in_order_and_live<B: Backend>(backend: &B) {
    run(
        backend,
        "a_stream_subscription_sees_its_stream_only_in_order_and_live",
        |check| {
            let place = check.place();
            let log = check.open_empty(&place, system_clock(), 0);
            let watched = StreamId::new("case-watched").expect("valid");
            // Some history before the subscription starts, then it catches up from version 2.
            for i in 0..3 {
                log.append(note(&watched, format!("before {i}")))
                    .expect("append")
                    .expect("any");
            }
            let mut subscription = StreamSubscription::new(
                Arc::clone(&log),
                watched.clone(),
                Version::new(2).expect("nz"),
            );
            let (seen_tx, seen_rx) = mpsc::channel();
            let follower = std::thread::spawn(move || {
                let mut seen = Vec::new();
                while seen.len() < 2 + 200 {
                    let event = subscription
                        .next_timeout(Duration::from_secs(30))
                        .expect("reads")
                        .expect("the writers append 200 more events to the watched stream");
                    seen.push((event.stream.to_string(), event.version.get(), event.payload));
                }
                seen_tx.send(seen).expect("the test waits for this");
            });
            let writers: Vec<_> = (0..4)
                .map(|w| {
                    let log = log.clone();
                    let watched = watched.clone();
                    std::thread::spawn(move || {
                        let other = StreamId::new(format!("case-other-{w}")).expect("valid");
                        for i in 0..50 {
                            log.append(note(&other, format!("noise {w} {i}")))
                                .expect("append")
                                .expect("any");
                            log.append(note(&watched, format!("live {w} {i}")))
                                .expect("append")
                                .expect("any");
                        }
                    })
                })
                .collect();
            for writer in writers {
                joined(writer.join());
            }
            let seen = match seen_rx.recv_timeout(Duration::from_secs(60)) {
                Ok(seen) => seen,
                Err(e) => {
                    // A follower that failed is reported with its own message.
                    if follower.is_finished() {
                        joined(follower.join());
                    }
                    panic!("the follower did not see its 202 events within 60 s ({e})");
                }
            };
            joined(follower.join());
            assert!(seen.iter().all(|(stream, _, _)| stream == "case-watched"));
            let versions: Vec<u64> = seen.iter().map(|(_, v, _)| *v).collect();
            assert_eq!(
                versions,
                (2..=203).collect::<Vec<_>>(),
                "every version from 2, once, in order"
            );
            assert_eq!(seen[0].2, b"before 1".to_vec());
            let stored = log
                .read_stream(&watched, Version::new(2).expect("nz"), usize::MAX)
                .expect("read");
            assert_eq!(
                stored.iter().map(|e| e.payload.clone()).collect::<Vec<_>>(),
                seen.iter().map(|(_, _, p)| p.clone()).collect::<Vec<_>>()
            );
            check.close(log);
        },
    );
}

/// A subscriber that stops reading holds up no writer: 2000 appends commit while it reads
/// nothing (within 120 seconds), it then catches up on all of them in order, and a
/// subscriber waiting when the log closes gets `Closed` instead of hanging.
///
/// # Panics
/// When the writer is held up, the catch-up skips, or the waiting subscriber is not woken.
pub fn a_subscriber_that_stops_reading_holds_up_no_writer<B: Backend>(backend: &B) {
    run(
        backend,
        "a_subscriber_that_stops_reading_holds_up_no_writer",
        |check| {
            let place = check.place();
            let log = check.open_empty(&place, system_clock(), 0);
            let stream = StreamId::new("case-busy").expect("valid");
            let mut stalled = Subscription::new(Arc::clone(&log), Position::FIRST);
            log.append(note(&stream, "first".into()))
                .expect("append")
                .expect("any");
            assert_eq!(
                stalled
                    .next_timeout(Duration::from_secs(10))
                    .expect("reads")
                    .map(|e| e.version),
                Some(Version::FIRST)
            );

            // The subscriber now reads nothing while 2000 more events commit. If commits waited for
            // it, the writer would never finish and the watchdog below would fail the test.
            let (done_tx, done_rx) = mpsc::channel();
            let writer = {
                let log = log.clone();
                let stream = stream.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        log.append(note(&stream, format!("busy {i}")))
                            .expect("append")
                            .expect("any");
                    }
                    done_tx.send(()).expect("the test waits for this");
                })
            };
            if let Err(e) = done_rx.recv_timeout(Duration::from_secs(120)) {
                // A writer that failed is reported with its own message.
                if writer.is_finished() {
                    joined(writer.join());
                }
                panic!("the writer did not finish 2000 appends within 120 s while a subscriber was stalled ({e})");
            }
            joined(writer.join());

            // It then catches up on everything, in order.
            let mut next = 2;
            while let Some(event) = stalled.try_next().expect("reads") {
                assert_eq!(event.position.get(), next);
                next += 1;
            }
            assert_eq!(next, 2002);

            // Closing the log wakes a waiting subscriber with `Closed` instead of leaving it hanging.
            let waiter = std::thread::spawn(move || stalled.next_timeout(Duration::from_secs(60)));
            std::thread::sleep(Duration::from_millis(50));
            log.close().expect("close");
            match joined(waiter.join()) {
                Err(ReadError::Closed) => {}
                other => panic!("a subscriber waiting on a closed log gets Closed, got {other:?}"),
            }
        },
    );
}

/// A subscriber thread follows the log live while writers append: it must see every
/// position 1..=n exactly once, in order, and end with the full count. Meanwhile a reader
/// thread reads the streams, whose index is flushed to disk every few events: every read
/// must be a gap-free prefix of the stream that never shrinks.
pub fn a_live_subscriber_sees_every_position_once_in_order<B: Backend>(backend: &B) {
    run(
        backend,
        "a_live_subscriber_sees_every_position_once_in_order",
        |check| {
            const WRITERS: usize = 4;
            const PER_WRITER: usize = 100;
            let place = check.place();
            let log = check.open_empty(&place, system_clock(), 4);
            let requests = |w: usize| -> Vec<AppendRequest> {
                (0..PER_WRITER)
                    .map(|i| mixed_request(&format!("writer {w}"), i).0)
                    .collect()
            };
            let total: u64 = (0..WRITERS)
                .map(|w| {
                    requests(w)
                        .iter()
                        .map(|r| r.event_count() as u64)
                        .sum::<u64>()
                })
                .sum();

            let mut subscription = Subscription::new(Arc::clone(&log), Position::FIRST);
            let done = AtomicBool::new(false);
            let (seen, acks) = thread::scope(|scope| {
                let follower = scope.spawn(move || {
                    let mut seen: Vec<RecordedEvent> = Vec::new();
                    while (seen.len() as u64) < total {
                        let next = subscription
                            .next_timeout(Duration::from_secs(20))
                            .expect("the subscription reads the log");
                        let Some(e) = next else {
                            panic!(
                                "the subscriber waited 20 s after position {} of {total}",
                                seen.len()
                            );
                        };
                        assert_eq!(
                            e.position.get(),
                            seen.len() as u64 + 1,
                            "the subscriber skipped or repeated a position"
                        );
                        seen.push(e);
                    }
                    let extra = subscription
                        .next_timeout(Duration::from_millis(50))
                        .expect("the subscription reads the log");
                    assert!(
                        extra.is_none(),
                        "the subscriber got an event past the last one: {extra:?}"
                    );
                    seen
                });
                let done = &done;
                let log = &log;
                let reader = scope.spawn(move || {
                    let mut lengths = [0u64; 5];
                    let mut reads = 0u64;
                    loop {
                        let finished = done.load(Ordering::Acquire);
                        for (i, length) in lengths.iter_mut().enumerate() {
                            let s = stream(&format!("case-mixed-{i}"));
                            let before =
                                version_number(log.stream_version(&s).expect("stream_version"));
                            let events = log
                                .read_stream(&s, Version::FIRST, usize::MAX)
                                .expect("read_stream while writers append");
                            for (k, e) in events.iter().enumerate() {
                                assert_eq!(
                                    e.version.get(),
                                    k as u64 + 1,
                                    "a read of {s} has a gap"
                                );
                                assert_eq!(e.stream, s, "a read of {s} returned another stream");
                            }
                            let got = events.len() as u64;
                            assert!(
                                got >= before && got >= *length,
                                "a read of {s} returned {got} events after stream_version said \
                         {before} and an earlier read {length}"
                            );
                            *length = got;
                            // A read from the middle must continue the same versions.
                            if got > 2 {
                                let from = got / 2;
                                let tail = log
                                    .read_stream(
                                        &s,
                                        Version::new(from).expect("from is at least 1"),
                                        usize::MAX,
                                    )
                                    .expect("read_stream from the middle");
                                assert!(tail.len() as u64 > got - from, "a later read is shorter");
                                for (k, e) in tail.iter().enumerate() {
                                    assert_eq!(e.version.get(), from + k as u64, "{s} from {from}");
                                }
                                for (a, b) in tail.iter().zip(&events[from as usize - 1..]) {
                                    assert_eq!(a, b, "two reads of {s} disagree");
                                }
                            }
                            reads += 1;
                        }
                        if finished {
                            return reads;
                        }
                    }
                });
                let writers: Vec<_> = (0..WRITERS)
                    .map(|w| {
                        let requests = requests(w);
                        scope.spawn(move || {
                            requests
                                .into_iter()
                                .map(|request| {
                                    log.append(request)
                                        .expect("append")
                                        .expect("ExpectedVersion::Any never conflicts")
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                let mut acks = Vec::new();
                for writer in writers {
                    acks.extend(joined(writer.join()));
                }
                done.store(true, Ordering::Release);
                let reads = joined(reader.join());
                assert!(reads > 0, "the stream reader ran");
                (joined(follower.join()), acks)
            });
            assert_eq!(
                seen.len() as u64,
                total,
                "the subscriber ends with the full count"
            );
            let acknowledged: u64 = acks
                .iter()
                .map(|a| a.last_position.get() - a.first_position.get() + 1)
                .sum();
            assert_eq!(acknowledged, total, "every append was acknowledged");
            let all = read_whole_log(&log, total);
            assert_eq!(
                seen, all,
                "the subscriber saw exactly the log, event for event"
            );
            check.close(log);
        },
    );
}
