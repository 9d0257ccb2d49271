//! Concurrency tests of the event log: many writers, async callers and a live subscriber at
//! once, through the public API only.
//!
//! They guard against the races group commit can hide: two writers both winning the same
//! expected version, an acknowledged append that is missing or lands elsewhere than it was
//! told, the events of one atomic append split apart, gaps or repeats in positions or
//! versions, a subscriber that skips, repeats or reorders events while the log grows, and
//! concurrent retries of one keyed request writing it more than once.

mod common;

use civicflow::core::EventStore as _;
use common::TempDir;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::Duration;

use civicflow::core::{
    Actor, AppendError, AppendRequest, Appended, CorrelationId, EventType, ExpectedVersion,
    IdempotencyKey, NewEvent, Position, RecordedEvent, SledLog, SledLogConfig, StreamId,
    StreamWrite, Version,
};
use uuid::Uuid;

/// Opens a fresh store. A small `index_flush_events` makes the stream index move from its
/// memtable to disk often, while other threads read it.
fn open(dir: &TempDir, index_flush_events: usize) -> SledLog {
    SledLogConfig::new(dir.path())
        .index_flush_events(index_flush_events)
        .open()
        .expect("opening a fresh store in the test's directory")
}

fn stream(name: &str) -> StreamId {
    StreamId::new(name).expect("the test's stream ids are valid")
}

fn actor() -> Actor {
    Actor::parse("li.wei", "grid_worker", "tonghui/grid-1").expect("a valid actor")
}

fn event(payload: &[u8]) -> NewEvent {
    NewEvent::new(
        EventType::new("NoteAdded").expect("a valid event type"),
        1,
        payload.to_vec(),
    )
}

/// A correlation id no other request of the test has.
fn correlation() -> CorrelationId {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    CorrelationId::from_uuid(Uuid::from_u128(u128::from(
        NEXT.fetch_add(1, Ordering::Relaxed),
    )))
}

fn expect_version(current: Option<Version>) -> ExpectedVersion {
    match current {
        None => ExpectedVersion::NoStream,
        Some(v) => ExpectedVersion::Exact(v),
    }
}

fn version_number(v: Option<Version>) -> u64 {
    v.map_or(0, Version::get)
}

/// The whole log, checked to hold positions 1..=n without gaps, and a verified chain.
fn read_whole_log(log: &SledLog, n: u64) -> Vec<RecordedEvent> {
    let all = log
        .read_all(Position::FIRST, usize::MAX)
        .expect("read_all of the whole log");
    assert_eq!(all.len() as u64, n, "events in the log");
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position.get(), i as u64 + 1, "positions have no gaps");
    }
    assert_eq!(
        log.head().map(|h| h.position.get()),
        (n > 0).then_some(n),
        "the head is the last position"
    );
    let report = log.verify().expect("verify");
    assert!(
        report.is_intact(),
        "the chain is broken: {:?}",
        report.first_break
    );
    assert_eq!(report.events_checked, n, "events verified");
    all
}

/// Checks that `stream` holds versions 1..=k without gaps, and returns them.
fn read_whole_stream(log: &SledLog, stream: &StreamId) -> Vec<RecordedEvent> {
    let events = log
        .read_stream(stream, Version::FIRST, usize::MAX)
        .expect("read_stream of a whole stream");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e.version.get(),
            i as u64 + 1,
            "versions of {stream} have no gaps"
        );
        assert_eq!(&e.stream, stream, "read_stream returns only its stream");
    }
    for pair in events.windows(2) {
        assert!(
            pair[0].position < pair[1].position,
            "positions of {stream} increase with versions"
        );
    }
    assert_eq!(
        log.stream_version(stream).expect("stream_version"),
        Version::new(events.len() as u64),
        "stream_version of {stream}"
    );
    let report = log.verify_stream(stream).expect("verify_stream");
    assert!(
        report.is_intact(),
        "the chain of {stream} is broken: {:?}",
        report.first_break
    );
    assert_eq!(report.events_checked, events.len() as u64);
    events
}

/// One won append of test (a): the version it got and what it wrote.
#[derive(Debug)]
struct Win {
    version: u64,
    position: Position,
    payload: Vec<u8>,
}

/// (a) Many threads race for the next version of one stream with exact expected versions:
/// each version must be won exactly once, and the stream must hold exactly the winners.
#[test]
fn racing_writers_win_each_version_of_one_stream_exactly_once() {
    const THREADS: usize = 16;
    const EVENTS: u64 = 400;
    let dir = TempDir::new("concurrency-one-stream");
    let log = open(&dir, 5);
    let case = stream("case-contended");

    let (wins, conflicts) = thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let log = &log;
                let case = &case;
                scope.spawn(move || {
                    let mut wins = Vec::new();
                    let mut conflicts = 0u64;
                    let mut attempt = 0u64;
                    loop {
                        let current = log.stream_version(case).expect("stream_version");
                        if version_number(current) >= EVENTS {
                            break;
                        }
                        attempt += 1;
                        let expected = expect_version(current);
                        let payload = format!("thread {t} attempt {attempt}").into_bytes();
                        let request = AppendRequest::to_stream(
                            case.clone(),
                            expected,
                            vec![event(&payload)],
                            actor(),
                            correlation(),
                        );
                        match log
                            .append(request)
                            .expect("an append fails only by conflict")
                        {
                            Ok(appended) => {
                                let version = version_number(current) + 1;
                                assert!(!appended.deduplicated, "nothing is deduplicated");
                                assert_eq!(appended.streams.len(), 1);
                                assert_eq!(appended.streams[0].first_version.get(), version);
                                assert_eq!(appended.streams[0].last_version.get(), version);
                                assert_eq!(appended.first_position, appended.last_position);
                                wins.push(Win {
                                    version,
                                    position: appended.first_position,
                                    payload,
                                });
                            }
                            Err(conflict) => {
                                assert_eq!(conflict.stream, *case, "the conflict's stream");
                                assert_eq!(conflict.expected, expected, "the conflict's expected");
                                assert!(
                                    version_number(conflict.actual) > version_number(current),
                                    "thread {t} expected {expected} and lost, but the conflict \
                                     says the stream is at {:?}",
                                    conflict.actual
                                );
                                conflicts += 1;
                            }
                        }
                    }
                    (wins, conflicts)
                })
            })
            .collect();
        let mut wins = Vec::new();
        let mut conflicts = 0;
        for handle in handles {
            let (w, c) = handle.join().expect("a writer thread panicked");
            wins.extend(w);
            conflicts += c;
        }
        (wins, conflicts)
    });

    assert_eq!(
        wins.len() as u64,
        EVENTS,
        "exactly {EVENTS} appends must succeed, one per version"
    );
    let mut by_version: BTreeMap<u64, Win> = BTreeMap::new();
    for win in wins {
        let version = win.version;
        if let Some(earlier) = by_version.insert(version, win) {
            panic!(
                "version {version} was won twice (one by {:?})",
                earlier.payload
            );
        }
    }
    assert_eq!(
        by_version.keys().copied().collect::<Vec<_>>(),
        (1..=EVENTS).collect::<Vec<_>>(),
        "every version 1..={EVENTS} was won"
    );
    assert!(
        conflicts > 0,
        "{THREADS} threads racing for {EVENTS} versions never conflicted: the test did not race"
    );

    let events = read_whole_stream(&log, &case);
    assert_eq!(events.len() as u64, EVENTS);
    for e in &events {
        let win = &by_version[&e.version.get()];
        assert_eq!(
            e.payload, win.payload,
            "version {} holds another payload than its acknowledged winner",
            e.version
        );
        assert_eq!(e.position, win.position, "version {} position", e.version);
    }
    let all = read_whole_log(&log, EVENTS);
    assert_eq!(all, events, "the log holds this stream only");
    log.close().expect("closing the log");
}

/// One acknowledged two-stream append of test (b).
#[derive(Debug)]
struct PairAck {
    appended: Appended,
    correlation: CorrelationId,
    writes: [(StreamId, Vec<u8>); 2],
}

/// (b) Threads append atomically to overlapping pairs of streams with exact expected
/// versions: every stream's versions stay contiguous, and the two events of each
/// acknowledged append are neighbours in the log.
#[test]
fn atomic_pair_appends_stay_whole_and_contiguous() {
    const THREADS: usize = 8;
    const APPENDS_PER_THREAD: usize = 30;
    const STREAMS: usize = 6;
    let dir = TempDir::new("concurrency-pairs");
    let log = open(&dir, 3);
    let streams: Vec<StreamId> = (0..STREAMS)
        .map(|i| stream(&format!("unit-grid-{i}")))
        .collect();

    let (acks, conflicts) = thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let log = &log;
                let streams = &streams;
                scope.spawn(move || {
                    let mut acks = Vec::new();
                    let mut conflicts = 0u64;
                    let mut attempt = 0u64;
                    while acks.len() < APPENDS_PER_THREAD {
                        attempt += 1;
                        // Overlapping pairs: (p, p+1), and every other time in reverse order.
                        let p = (t + acks.len()) % STREAMS;
                        let (a, b) = (p, (p + 1) % STREAMS);
                        let (a, b) = if attempt.is_multiple_of(2) {
                            (b, a)
                        } else {
                            (a, b)
                        };
                        let mut writes = Vec::new();
                        let mut expected = Vec::new();
                        for s in [a, b] {
                            let current = log.stream_version(&streams[s]).expect("stream_version");
                            let payload =
                                format!("thread {t} attempt {attempt} {}", streams[s]).into_bytes();
                            expected.push(expect_version(current));
                            writes.push((streams[s].clone(), payload));
                        }
                        let correlation = correlation();
                        let request = AppendRequest::to_streams(
                            writes
                                .iter()
                                .zip(&expected)
                                .map(|((s, payload), expected)| {
                                    StreamWrite::new(s.clone(), *expected, vec![event(payload)])
                                })
                                .collect(),
                            actor(),
                            correlation,
                        );
                        match log
                            .append(request)
                            .expect("an append fails only by conflict")
                        {
                            Ok(appended) => {
                                let [first, second]: [(StreamId, Vec<u8>); 2] =
                                    writes.try_into().expect("two writes per append");
                                acks.push(PairAck {
                                    appended,
                                    correlation,
                                    writes: [first, second],
                                });
                            }
                            Err(conflict) => {
                                let index = writes
                                    .iter()
                                    .position(|(s, _)| *s == conflict.stream)
                                    .expect("the conflict names a stream of the request");
                                assert_eq!(conflict.expected, expected[index]);
                                assert!(
                                    !conflict.expected.matches(conflict.actual),
                                    "a conflict whose actual version matches: {conflict:?}"
                                );
                                conflicts += 1;
                            }
                        }
                    }
                    (acks, conflicts)
                })
            })
            .collect();
        let mut acks = Vec::new();
        let mut conflicts = 0;
        for handle in handles {
            let (a, c) = handle.join().expect("a writer thread panicked");
            acks.extend(a);
            conflicts += c;
        }
        (acks, conflicts)
    });
    assert_eq!(acks.len(), THREADS * APPENDS_PER_THREAD);
    println!(
        "pair appends: {} acknowledged, {conflicts} conflicts",
        acks.len()
    );

    let n = 2 * acks.len() as u64;
    let all = read_whole_log(&log, n);
    let mut claimed: HashSet<(StreamId, Version)> = HashSet::new();
    let mut per_stream: HashMap<StreamId, u64> = HashMap::new();
    for ack in &acks {
        let appended = &ack.appended;
        assert!(!appended.deduplicated);
        assert_eq!(
            appended.last_position.get(),
            appended.first_position.get() + 1,
            "the two events of one append are at consecutive positions: {appended:?}"
        );
        assert_eq!(appended.streams.len(), 2);
        for (i, ((s, payload), got)) in ack.writes.iter().zip(&appended.streams).enumerate() {
            assert_eq!(&got.stream, s, "Appended lists streams in request order");
            assert_eq!(got.first_version, got.last_version);
            assert!(
                claimed.insert((s.clone(), got.first_version)),
                "{s} version {} was acknowledged to two appends",
                got.first_version
            );
            *per_stream.entry(s.clone()).or_default() += 1;
            let position = appended.first_position.get() + i as u64;
            let e = &all[position as usize - 1];
            assert_eq!(&e.stream, s, "stream at position {position}");
            assert_eq!(
                e.version, got.first_version,
                "version at position {position}"
            );
            assert_eq!(&e.payload, payload, "payload at position {position}");
            assert_eq!(
                e.correlation_id, ack.correlation,
                "correlation at {position}"
            );
        }
    }
    for s in &streams {
        let events = read_whole_stream(&log, s);
        assert_eq!(
            events.len() as u64,
            per_stream.get(s).copied().unwrap_or(0),
            "{s} holds exactly its acknowledged events"
        );
    }
    log.close().expect("closing the log");
}

/// One acknowledged append of test (c) and what it wrote, per stream.
#[derive(Debug)]
struct Ack {
    appended: Appended,
    writes: Written,
}

/// What one append wrote: per stream, the payloads of its events.
type Written = Vec<(StreamId, Vec<Vec<u8>>)>;

fn mixed_request(label: &str, i: usize) -> (AppendRequest, Written) {
    let streams = 5;
    let events_in = |s: usize| -> Vec<Vec<u8>> {
        (0..1 + (i + s) % 2)
            .map(|k| format!("{label} {i} stream {s} event {k}").into_bytes())
            .collect()
    };
    let mut writes = vec![(stream(&format!("case-mixed-{}", i % streams)), events_in(0))];
    if i.is_multiple_of(5) {
        writes.push((
            stream(&format!("case-mixed-{}", (i + 1) % streams)),
            events_in(1),
        ));
    }
    let request = AppendRequest::to_streams(
        writes
            .iter()
            .map(|(s, payloads)| {
                StreamWrite::new(
                    s.clone(),
                    ExpectedVersion::Any,
                    payloads.iter().map(|p| event(p)).collect(),
                )
            })
            .collect(),
        actor(),
        correlation(),
    );
    (request, writes)
}

/// Checks that every acknowledged append is in the log where it was told, and that the acks
/// cover positions 1..=n exactly once.
fn check_acks(log: &SledLog, acks: &[Ack]) {
    let n: u64 = acks
        .iter()
        .map(|a| a.writes.iter().map(|(_, p)| p.len() as u64).sum::<u64>())
        .sum();
    let all = read_whole_log(log, n);
    let mut covered = vec![false; n as usize];
    for ack in acks {
        let appended = &ack.appended;
        assert!(!appended.deduplicated);
        let count: u64 = ack.writes.iter().map(|(_, p)| p.len() as u64).sum();
        assert_eq!(
            appended.last_position.get() - appended.first_position.get() + 1,
            count,
            "an append's events are consecutive: {appended:?}"
        );
        let mut position = appended.first_position.get();
        for ((s, payloads), got) in ack.writes.iter().zip(&appended.streams) {
            assert_eq!(&got.stream, s);
            assert_eq!(
                got.last_version.get() - got.first_version.get() + 1,
                payloads.len() as u64
            );
            for (k, payload) in payloads.iter().enumerate() {
                let e = &all[position as usize - 1];
                assert!(
                    !std::mem::replace(&mut covered[position as usize - 1], true),
                    "position {position} was acknowledged to two appends"
                );
                assert_eq!(&e.stream, s, "stream at position {position}");
                assert_eq!(
                    e.version.get(),
                    got.first_version.get() + k as u64,
                    "version at position {position}"
                );
                assert_eq!(&e.payload, payload, "payload at position {position}");
                position += 1;
            }
        }
    }
    assert!(
        covered.iter().all(|c| *c),
        "every position belongs to an ack"
    );
    let streams: HashSet<StreamId> = all.iter().map(|e| e.stream.clone()).collect();
    for s in &streams {
        read_whole_stream(log, s);
    }
}

/// (c) Async callers on a multi-thread tokio runtime append concurrently with plain threads;
/// every acknowledged append must be readable where it was told. An async subscriber follows
/// along and must see every position once, in order.
#[test]
fn async_and_thread_appends_are_all_readable_where_acknowledged() {
    const TASKS: usize = 200;
    const THREADS: usize = 4;
    const PER_THREAD: usize = 25;
    let dir = TempDir::new("concurrency-async");
    let log = open(&dir, 4096);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("building a tokio runtime");

    // Every append uses ExpectedVersion::Any, so the total is known in advance.
    let events_of = |label: &str, count: usize| -> u64 {
        (0..count)
            .map(|i| {
                let (request, _) = mixed_request(label, i);
                request.event_count() as u64
            })
            .sum()
    };
    let total = events_of("task", TASKS) + THREADS as u64 * events_of("thread", PER_THREAD);

    let mut subscription = log.subscribe(Position::FIRST);
    let follower = runtime.spawn(async move {
        let mut seen = Vec::new();
        for expected in 1..=total {
            let e = subscription
                .next_async()
                .await
                .expect("the async subscription reads the log");
            assert_eq!(
                e.position.get(),
                expected,
                "the async subscription skipped or repeated"
            );
            seen.push(e);
        }
        seen
    });

    let acks = thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let log = &log;
                scope.spawn(move || {
                    (0..PER_THREAD)
                        .map(|i| {
                            let (request, writes) = mixed_request(&format!("thread {t}"), i);
                            let appended = log
                                .append(request)
                                .expect("append")
                                .expect("ExpectedVersion::Any never conflicts");
                            Ack { appended, writes }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let tasks: Vec<_> = (0..TASKS)
            .map(|i| {
                let log = log.clone();
                runtime.spawn(async move {
                    let (request, writes) = mixed_request("task", i);
                    let appended = log
                        .append_async(request)
                        .await
                        .expect("append_async")
                        .expect("ExpectedVersion::Any never conflicts");
                    Ack { appended, writes }
                })
            })
            .collect();
        let mut acks = runtime.block_on(async {
            let mut acks = Vec::new();
            for task in tasks {
                acks.push(task.await.expect("an async append task panicked"));
            }
            acks
        });
        for handle in threads {
            acks.extend(handle.join().expect("a writer thread panicked"));
        }
        acks
    });
    assert_eq!(acks.len(), TASKS + THREADS * PER_THREAD);
    check_acks(&log, &acks);

    let seen = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), follower)
            .await
            .expect("the async subscription did not reach the head within 20 s")
            .expect("the async subscription task panicked")
    });
    let all = log
        .read_all(Position::FIRST, usize::MAX)
        .expect("read_all of the whole log");
    assert_eq!(seen, all, "the async subscription saw exactly the log");
    drop(runtime);
    log.close().expect("closing the log");
}

/// (d) A subscriber thread follows the log live while writers append: it must see every
/// position 1..=n exactly once, in order, and end with the full count. Meanwhile a reader
/// thread reads the streams, whose index is flushed to disk every few events: every read
/// must be a gap-free prefix of the stream that never shrinks.
#[test]
fn a_live_subscriber_sees_every_position_once_in_order() {
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 100;
    let dir = TempDir::new("concurrency-subscriber");
    let log = open(&dir, 4);
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

    let mut subscription = log.subscribe(Position::FIRST);
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
                    let before = version_number(log.stream_version(&s).expect("stream_version"));
                    let events = log
                        .read_stream(&s, Version::FIRST, usize::MAX)
                        .expect("read_stream while writers append");
                    for (k, e) in events.iter().enumerate() {
                        assert_eq!(e.version.get(), k as u64 + 1, "a read of {s} has a gap");
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
            acks.extend(writer.join().expect("a writer thread panicked"));
        }
        done.store(true, Ordering::Release);
        let reads = reader.join().expect("the stream reader thread panicked");
        assert!(reads > 0, "the stream reader ran");
        (
            follower.join().expect("the subscriber thread panicked"),
            acks,
        )
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
    log.close().expect("closing the log");
}

/// (e) Concurrent retries: in each round several threads send the same keyed request at
/// once, and one thread sends other content under the same key. Exactly one append of the
/// round is written; the identical ones get its result back, deduplicated; the different
/// content gets `IdempotencyKeyReused` (or, when it came first, the identical ones do).
#[test]
fn concurrent_retries_of_one_keyed_request_write_it_once() {
    const ROUNDS: usize = 40;
    const SAME: usize = 6;
    let dir = TempDir::new("concurrency-retries");
    let log = open(&dir, 4);
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
            let same: Vec<_> = same
                .into_iter()
                .map(|h| h.join().expect("a retrying thread panicked"))
                .collect();
            (same, other.join().expect("the misusing thread panicked"))
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
    log.close().expect("closing the log");
}
