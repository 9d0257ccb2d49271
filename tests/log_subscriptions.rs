//! Subscriptions against a live log: a stream subscription sees exactly its stream, and a
//! subscriber that stops reading holds up no writer.
//!
//! Guards against subscribers that miss or repeat events of their stream while other streams
//! interleave, and against the class of bug where a slow consumer blocks commits (sled's own
//! `watch_prefix` blocks the writer once its subscriber's buffer is full).

mod common;

use civicflow::core::EventStore as _;
use std::sync::mpsc;
use std::time::Duration;

use common::TempDir;

use civicflow::core::{
    Actor, AppendRequest, CorrelationId, EventType, ExpectedVersion, NewEvent, Position, ReadError,
    SledLog, StreamId, Timestamp, Version,
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

#[test]
fn a_stream_subscription_sees_its_stream_only_in_order_and_live() {
    let dir = TempDir::new("subscriptions-stream");
    let log = SledLog::open(dir.path()).expect("open");
    let watched = StreamId::new("case-watched").expect("valid");
    // Some history before the subscription starts, then it catches up from version 2.
    for i in 0..3 {
        log.append(note(&watched, format!("before {i}")))
            .expect("append")
            .expect("any");
    }
    let mut subscription = log.subscribe_stream(watched.clone(), Version::new(2).expect("nz"));
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
        writer.join().expect("writer");
    }
    let seen = seen_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the follower finishes");
    follower.join().expect("follower");
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
}

#[test]
fn a_subscriber_that_stops_reading_holds_up_no_writer() {
    let dir = TempDir::new("subscriptions-stalled");
    let log = SledLog::open(dir.path()).expect("open");
    let stream = StreamId::new("case-busy").expect("valid");
    let mut stalled = log.subscribe(Position::FIRST);
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
    done_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("writers finish while a subscriber is stalled");
    writer.join().expect("writer");

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
    match waiter.join().expect("waiter") {
        Err(ReadError::Closed) => {}
        other => panic!("a subscriber waiting on a closed log gets Closed, got {other:?}"),
    }
}
