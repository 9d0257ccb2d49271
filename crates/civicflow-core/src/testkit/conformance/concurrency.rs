//! Concurrency: many writers, async callers and a live subscriber at once.
//!
//! They guard against the races group commit (or whatever a backend does instead) can hide:
//! two writers both winning the same expected version, an acknowledged append that is
//! missing or lands elsewhere than it was told, the events of one atomic append split apart,
//! gaps or repeats in positions or versions, a subscriber that skips, repeats or reorders
//! events while the log grows. (Concurrent retries of one keyed request are in
//! `idempotency.rs`.)
//!
//! Moved from the workspace's `tests/log_concurrency.rs`, where they ran against sled alone.
//! The tunings are the `index_flush_events` those tests gave sled: small ones move the
//! stream index from memory to storage often, while other threads read it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::support::{
    actor, correlation, event, expect_version, joined, mixed_request, read_whole_log,
    read_whole_stream, run, stream, system_clock, task_joined, version_number, Written,
};
use super::Backend;
use crate::{
    AppendRequest, Appended, CorrelationId, EventStore, Position, StreamId, StreamWrite,
    Subscription, Version,
};

/// One won append of `racing_writers_win_each_version_of_one_stream_exactly_once`: the version it got and what it wrote.
#[derive(Debug)]
struct Win {
    version: u64,
    position: Position,
    payload: Vec<u8>,
}

/// Many threads race for the next version of one stream with exact expected versions:
/// each version must be won exactly once, and the stream must hold exactly the winners.
pub fn racing_writers_win_each_version_of_one_stream_exactly_once<B: Backend>(backend: &B) {
    run(
        backend,
        "racing_writers_win_each_version_of_one_stream_exactly_once",
        |check| {
            const THREADS: usize = 16;
            const EVENTS: u64 = 400;
            let place = check.place();
            let log = check.open_empty(&place, system_clock(), 5);
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
                                        assert_eq!(
                                            appended.streams[0].first_version.get(),
                                            version
                                        );
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
                                        assert_eq!(
                                            conflict.expected, expected,
                                            "the conflict's expected"
                                        );
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
                    let (w, c) = joined(handle.join());
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
            check.close(log);
        },
    );
}

/// One acknowledged two-stream append of `atomic_pair_appends_stay_whole_and_contiguous`.
#[derive(Debug)]
struct PairAck {
    appended: Appended,
    correlation: CorrelationId,
    writes: [(StreamId, Vec<u8>); 2],
}

/// Threads append atomically to overlapping pairs of streams with exact expected
/// versions: every stream's versions stay contiguous, and the two events of each
/// acknowledged append are neighbours in the log.
pub fn atomic_pair_appends_stay_whole_and_contiguous<B: Backend>(backend: &B) {
    run(
        backend,
        "atomic_pair_appends_stay_whole_and_contiguous",
        |check| {
            const THREADS: usize = 8;
            const APPENDS_PER_THREAD: usize = 30;
            const STREAMS: usize = 6;
            let place = check.place();
            let log = check.open_empty(&place, system_clock(), 3);
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
                                    let current =
                                        log.stream_version(&streams[s]).expect("stream_version");
                                    let payload =
                                        format!("thread {t} attempt {attempt} {}", streams[s])
                                            .into_bytes();
                                    expected.push(expect_version(current));
                                    writes.push((streams[s].clone(), payload));
                                }
                                let correlation = correlation();
                                let request = AppendRequest::to_streams(
                                    writes
                                        .iter()
                                        .zip(&expected)
                                        .map(|((s, payload), expected)| {
                                            StreamWrite::new(
                                                s.clone(),
                                                *expected,
                                                vec![event(payload)],
                                            )
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
                    let (a, c) = joined(handle.join());
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
                for (i, ((s, payload), got)) in ack.writes.iter().zip(&appended.streams).enumerate()
                {
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
            check.close(log);
        },
    );
}

/// One acknowledged append of `async_and_thread_appends_are_all_readable_where_acknowledged` and what it wrote, per stream.
#[derive(Debug)]
struct Ack {
    appended: Appended,
    writes: Written,
}

/// Checks that every acknowledged append is in the log where it was told, and that the acks
/// cover positions 1..=n exactly once.
fn check_acks(log: &dyn EventStore, acks: &[Ack]) {
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

/// Async callers on a multi-thread tokio runtime append concurrently with plain threads;
/// every acknowledged append must be readable where it was told. An async subscriber follows
/// along and must see every position once, in order.
pub fn async_and_thread_appends_are_all_readable_where_acknowledged<B: Backend>(backend: &B) {
    run(
        backend,
        "async_and_thread_appends_are_all_readable_where_acknowledged",
        |check| {
            const TASKS: usize = 200;
            const THREADS: usize = 4;
            const PER_THREAD: usize = 25;
            let place = check.place();
            let log = check.open_empty(&place, system_clock(), 0);
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

            let mut subscription = Subscription::new(Arc::clone(&log), Position::FIRST);
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
                                    let (request, writes) =
                                        mixed_request(&format!("thread {t}"), i);
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
                        acks.push(task_joined(task.await));
                    }
                    acks
                });
                for handle in threads {
                    acks.extend(joined(handle.join()));
                }
                acks
            });
            assert_eq!(acks.len(), TASKS + THREADS * PER_THREAD);
            check_acks(&log, &acks);

            let seen = runtime.block_on(async {
                task_joined(
                    tokio::time::timeout(Duration::from_secs(20), follower)
                        .await
                        .expect("the async subscription did not reach the head within 20 s"),
                )
            });
            let all = log
                .read_all(Position::FIRST, usize::MAX)
                .expect("read_all of the whole log");
            assert_eq!(seen, all, "the async subscription saw exactly the log");
            drop(runtime);
            check.close(log);
        },
    );
}
