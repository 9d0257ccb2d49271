//! The model-based property test of the log, and reopening at once.
//!
//! Random sequences of appends (one stream or several at once, with right and wrong expected
//! versions, with and without idempotency keys), reads, a live subscription, clock moves and
//! close-and-reopen steps run against a store of the backend and against a plain in-memory
//! model. After every step the whole log is compared with the model. It guards against the
//! bugs an event log must never have: lost, duplicated or reordered events, gaps in positions
//! or versions, a conflict or an idempotent replay that writes something, a wrong version
//! check, a stream index (whatever the backend keeps in memory, its move to storage, its
//! rebuild on open: the backend's `tuning` is varied between reopenings) that disagrees with
//! the log, a subscription that skips or repeats, `recorded_at` going backwards, and a hash
//! chain that does not verify. A second check repeats the reopen step alone many times:
//! closing or dropping every handle must release the store so that it opens again at once.
//!
//! Moved from the workspace's `tests/log_model.rs`, where it ran against sled alone.

use std::collections::{HashMap, HashSet};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use uuid::Uuid;

use super::support::{panic_text, proptest_cases, proptest_seed, run, Check};
use super::Backend;
use crate::{
    Actor, AppendError, AppendRequest, Appended, CausationId, Clock, Conflict, CorrelationId,
    EventId, EventStore, EventType, ExpectedVersion, IdempotencyKey, ManualClock, NewEvent,
    Position, ReadError, RecordedEvent, StreamAppended, StreamId, StreamWrite, Subscription,
    Timestamp, Version,
};

/// Cases run when `CIVICFLOW_PROPTEST_CASES` is not set.
const DEFAULT_CASES: u32 = 24;
/// The pool of streams: small, so that appends collide.
const STREAMS: [&str; 4] = ["case-1", "case-2", "unit-grid-1", "unit-shop-7"];
/// The pool of idempotency keys: small, so that keys are reused.
const KEYS: [&str; 3] = ["req-a", "req-b", "req-c"];
const EVENT_TYPES: [&str; 3] = ["CaseOpened", "NoteAdded", "CaseClosed"];
/// The backend tunings a case opens its store with (sled: `index_flush_events`, 0 its default
/// of 4096); most are tiny so that what the backend keeps in memory moves to storage often.
const TUNINGS: [u8; 5] = [1, 2, 3, 5, 0];
/// The events a tuning keeps in memory at most, for the coverage count (sled's numbers).
const TUNING_EVENTS: [usize; 5] = [1, 2, 3, 5, 4096];

fn stream(i: usize) -> StreamId {
    StreamId::new(STREAMS[i]).expect("the pool's stream ids are valid")
}

fn key(i: usize) -> IdempotencyKey {
    IdempotencyKey::new(KEYS[i]).expect("the pool's keys are valid")
}

fn actor(i: usize) -> Actor {
    match i % 2 {
        0 => Actor::parse("li.wei", "grid_worker", "tonghui/grid-1"),
        _ => Actor::parse("王芳", "community_officer", "通惠社区"),
    }
    .expect("the pool's actors are valid")
}

fn event_type(i: usize) -> EventType {
    EventType::new(EVENT_TYPES[i]).expect("the pool's event types are valid")
}

// ---------------------------------------------------------------------------------------------
// Operations

/// An expected version, resolved against the model when the step runs.
#[derive(Debug, Clone)]
enum Expect {
    Any,
    NoStream,
    /// The stream's actual version (`NoStream` when it has none).
    Right,
    /// `Exact` of a version the stream is not at.
    Wrong(u8),
}

#[derive(Debug, Clone)]
struct EventSpec {
    event_type: usize,
    schema_version: u16,
    payload: Vec<u8>,
    /// Whether the caller chooses the event id.
    with_id: bool,
}

#[derive(Debug, Clone)]
struct WriteSpec {
    stream: usize,
    expect: Expect,
    events: Vec<EventSpec>,
}

#[derive(Debug, Clone)]
enum Op {
    /// A new append of one write (single stream) or several (atomic multi-stream).
    Append {
        writes: Vec<WriteSpec>,
        key: Option<usize>,
        actor: usize,
        caused: bool,
    },
    /// A big append to one stream: many events, or a few large ones, so that chunks split,
    /// index entries fill up and subscriptions read in several batches.
    Bulk {
        stream: usize,
        right: bool,
        count: usize,
        payload_len: usize,
        key: Option<usize>,
    },
    /// Sends an earlier keyed request again, unchanged (a real retry).
    Retry {
        pick: Index,
        fresh_correlation: bool,
    },
    /// Sends an earlier keyed request again with different content (key misuse).
    Misuse { pick: Index, how: u8 },
    ReadStream {
        stream: usize,
        from: Index,
        max: Index,
        huge_max: bool,
    },
    ReadAll {
        from: Index,
        max: Index,
        huge_max: bool,
    },
    /// Drains the live subscription with `try_next`.
    Drain,
    /// Replaces the subscription with one from another position.
    Resubscribe { from: Index },
    /// Moves the clock (backwards too).
    Clock { delta_micros: i64 },
    /// Closes (or just drops) the log and opens its place again, with the tuning at this
    /// index of `TUNINGS`.
    Reopen { close: bool, tuning: usize },
}

fn expect_strategy() -> impl Strategy<Value = Expect> {
    prop_oneof![
        3 => Just(Expect::Any),
        1 => Just(Expect::NoStream),
        6 => Just(Expect::Right),
        1 => any::<u8>().prop_map(Expect::Wrong),
    ]
}

fn events_strategy() -> impl Strategy<Value = Vec<EventSpec>> {
    prop::collection::vec(
        (
            0..EVENT_TYPES.len(),
            1u16..=2,
            prop::collection::vec(any::<u8>(), 0..24),
            prop::bool::weighted(0.2),
        )
            .prop_map(|(event_type, schema_version, payload, with_id)| EventSpec {
                event_type,
                schema_version,
                payload,
                with_id,
            }),
        1..=3,
    )
}

fn write_strategy(stream: usize) -> impl Strategy<Value = WriteSpec> {
    (expect_strategy(), events_strategy()).prop_map(move |(expect, events)| WriteSpec {
        stream,
        expect,
        events,
    })
}

fn writes_strategy() -> impl Strategy<Value = Vec<WriteSpec>> {
    prop_oneof![
        3 => (0..STREAMS.len()).prop_flat_map(|s| write_strategy(s).prop_map(|w| vec![w])),
        2 => prop::sample::subsequence((0..STREAMS.len()).collect::<Vec<_>>(), 2..=3)
            .prop_shuffle()
            .prop_flat_map(|streams| {
                streams.into_iter().map(write_strategy).collect::<Vec<_>>()
            }),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (
            writes_strategy(),
            prop::option::weighted(0.3, 0..KEYS.len()),
            0..2usize,
            prop::bool::weighted(0.3),
        )
            .prop_map(|(writes, key, actor, caused)| Op::Append { writes, key, actor, caused }),
        4 => (any::<Index>(), any::<bool>())
            .prop_map(|(pick, fresh_correlation)| Op::Retry { pick, fresh_correlation }),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(pick, how)| Op::Misuse { pick, how }),
        1 => (
            0..STREAMS.len(),
            any::<bool>(),
            prop_oneof![(50usize..=300, 0usize..200), (2usize..=6, 20_000usize..=60_000)],
            prop::option::weighted(0.2, 0..KEYS.len()),
        )
            .prop_map(|(stream, right, (count, payload_len), key)| Op::Bulk {
                stream,
                right,
                count,
                payload_len,
                key,
            }),
        2 => (0..STREAMS.len(), any::<Index>(), any::<Index>(), prop::bool::weighted(0.2))
            .prop_map(|(stream, from, max, huge_max)| Op::ReadStream { stream, from, max, huge_max }),
        2 => (any::<Index>(), any::<Index>(), prop::bool::weighted(0.2))
            .prop_map(|(from, max, huge_max)| Op::ReadAll { from, max, huge_max }),
        3 => Just(Op::Drain),
        1 => any::<Index>().prop_map(|from| Op::Resubscribe { from }),
        2 => (-3_000_000i64..=5_000_000).prop_map(|delta_micros| Op::Clock { delta_micros }),
        2 => (any::<bool>(), 0..TUNINGS.len())
            .prop_map(|(close, tuning)| Op::Reopen { close, tuning }),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    /// An index of `TUNINGS`.
    tuning: usize,
    ops: Vec<Op>,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        0..TUNINGS.len(),
        prop::collection::vec(op_strategy(), 1..80),
    )
        .prop_map(|(tuning, ops)| Case { tuning, ops })
}

// ---------------------------------------------------------------------------------------------
// The model

/// What makes two keyed requests "the same": who, which streams with which expectations, and
/// the events' types, schema versions and payloads (not ids, correlation or causation).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Content {
    actor: Actor,
    writes: Vec<(StreamId, ExpectedVersion, Vec<EventContent>)>,
}

/// An event's type, schema version and payload.
type EventContent = (EventType, u16, Vec<u8>);

fn content(request: &AppendRequest) -> Content {
    Content {
        actor: request.actor.clone(),
        writes: request
            .writes
            .iter()
            .map(|w| {
                (
                    w.stream.clone(),
                    w.expected,
                    w.events
                        .iter()
                        .map(|e| (e.event_type.clone(), e.schema_version, e.payload.clone()))
                        .collect(),
                )
            })
            .collect(),
    }
}

#[derive(Debug, Clone)]
struct ModelEvent {
    stream: StreamId,
    version: u64,
    event_id: Option<EventId>,
    event_type: EventType,
    schema_version: u16,
    payload: Vec<u8>,
    actor: Actor,
    correlation_id: CorrelationId,
    causation_id: Option<CausationId>,
    recorded_at: Timestamp,
}

/// What the model says an append must return.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Written(Appended),
    Deduplicated(Appended),
    Conflict(Conflict),
    KeyReused(IdempotencyKey),
}

#[derive(Debug, Default)]
struct Model {
    events: Vec<ModelEvent>,
    versions: HashMap<StreamId, u64>,
    keys: HashMap<IdempotencyKey, (Content, Appended)>,
    last_recorded_at: Option<Timestamp>,
}

impl Model {
    fn version(&self, stream: &StreamId) -> Option<Version> {
        self.versions.get(stream).copied().and_then(Version::new)
    }

    fn head(&self) -> u64 {
        self.events.len() as u64
    }

    /// Applies `request` as the log must, at clock time `now`, and says what it must return.
    fn append(&mut self, request: &AppendRequest, now: Timestamp) -> Outcome {
        if let Some(key) = &request.idempotency_key {
            if let Some((stored, appended)) = self.keys.get(key) {
                if *stored == content(request) {
                    let mut appended = appended.clone();
                    appended.deduplicated = true;
                    return Outcome::Deduplicated(appended);
                }
                return Outcome::KeyReused(key.clone());
            }
        }
        for write in &request.writes {
            let actual = self.version(&write.stream);
            if !write.expected.matches(actual) {
                return Outcome::Conflict(Conflict {
                    stream: write.stream.clone(),
                    expected: write.expected,
                    actual,
                });
            }
        }
        let recorded_at = match self.last_recorded_at {
            Some(last) => now.max(last),
            None => now,
        };
        self.last_recorded_at = Some(recorded_at);
        let first_position = self.head() + 1;
        let mut streams = Vec::new();
        for write in &request.writes {
            let before = self.versions.get(&write.stream).copied().unwrap_or(0);
            for (i, event) in write.events.iter().enumerate() {
                self.events.push(ModelEvent {
                    stream: write.stream.clone(),
                    version: before + 1 + i as u64,
                    event_id: event.event_id,
                    event_type: event.event_type.clone(),
                    schema_version: event.schema_version,
                    payload: event.payload.clone(),
                    actor: request.actor.clone(),
                    correlation_id: request.correlation_id,
                    causation_id: request.causation_id,
                    recorded_at,
                });
            }
            let after = before + write.events.len() as u64;
            self.versions.insert(write.stream.clone(), after);
            streams.push(StreamAppended {
                stream: write.stream.clone(),
                first_version: Version::new(before + 1).expect("versions start at 1"),
                last_version: Version::new(after).expect("a write has an event"),
            });
        }
        let appended = Appended {
            streams,
            first_position: Position::new(first_position).expect("positions start at 1"),
            last_position: Position::new(self.head()).expect("an append has an event"),
            deduplicated: false,
        };
        if let Some(key) = &request.idempotency_key {
            self.keys
                .insert(key.clone(), (content(request), appended.clone()));
        }
        Outcome::Written(appended)
    }
}

// ---------------------------------------------------------------------------------------------
// Running a case

/// How often each interesting thing happened over the whole run, to prove the generator
/// reaches them.
#[derive(Debug, Default, Clone)]
struct Coverage {
    written: u64,
    multi_stream_written: u64,
    conflicts: u64,
    deduplicated: u64,
    key_reused: u64,
    reopened_after_close: u64,
    reopened_after_drop: u64,
    subscription_events: u64,
    /// Cases whose log grew past what their first tuning keeps in memory (for sled: past its
    /// `index_flush_events`, so the memtable was flushed).
    index_flushed: u64,
}

struct Run<'a, 'c, B: Backend> {
    kit: &'a Check<'c, B>,
    place: &'a B::Place,
    clock: ManualClock,
    /// An index of `TUNINGS`.
    tuning: usize,
    log: Option<Arc<dyn EventStore>>,
    subscription: Option<Subscription>,
    /// The position the subscription must return next.
    subscription_next: u64,
    model: Model,
    /// Every keyed request sent so far, for retries and misuse.
    keyed: Vec<AppendRequest>,
    next_id: u128,
    coverage: &'a mut Coverage,
}

impl<B: Backend> Run<'_, '_, B> {
    fn log(&self) -> &Arc<dyn EventStore> {
        self.log.as_ref().expect("the log is open between steps")
    }

    fn open(&self) -> Arc<dyn EventStore> {
        self.kit.open(
            self.place,
            Arc::new(self.clock.clone()),
            TUNINGS[self.tuning],
        )
    }

    fn fresh_id(&mut self) -> Uuid {
        self.next_id += 1;
        Uuid::from_u128(self.next_id)
    }

    fn resolve(&self, write: &WriteSpec) -> ExpectedVersion {
        let actual = self.model.version(&stream(write.stream));
        match (&write.expect, actual) {
            (Expect::Any, _) => ExpectedVersion::Any,
            (Expect::NoStream, _) | (Expect::Right, None) => ExpectedVersion::NoStream,
            (Expect::Right, Some(v)) => ExpectedVersion::Exact(v),
            (Expect::Wrong(n), None) => {
                ExpectedVersion::Exact(Version::FIRST.plus(u64::from(*n % 3)))
            }
            (Expect::Wrong(n), Some(v)) => {
                let n = u64::from(*n);
                // Below the actual version when there is room and n is even, else above it.
                let wrong = if n % 2 == 0 && v.get() > 1 {
                    1 + (n / 2) % (v.get() - 1)
                } else {
                    v.get() + 1 + (n / 2) % 3
                };
                ExpectedVersion::Exact(Version::new(wrong).expect("a wrong version is at least 1"))
            }
        }
    }

    fn build_request(
        &mut self,
        writes: &[WriteSpec],
        key_index: Option<usize>,
        actor_index: usize,
        caused: bool,
    ) -> AppendRequest {
        let mut stream_writes = Vec::new();
        for write in writes {
            let expected = self.resolve(write);
            let events = write
                .events
                .iter()
                .map(|spec| {
                    let event = NewEvent::new(
                        event_type(spec.event_type),
                        spec.schema_version,
                        spec.payload.clone(),
                    );
                    if spec.with_id {
                        event.with_id(EventId::from_uuid(self.fresh_id()))
                    } else {
                        event
                    }
                })
                .collect();
            stream_writes.push(StreamWrite::new(stream(write.stream), expected, events));
        }
        let correlation = CorrelationId::from_uuid(self.fresh_id());
        let mut request = AppendRequest::to_streams(stream_writes, actor(actor_index), correlation);
        if caused {
            request = request.caused_by(CausationId::from_uuid(self.fresh_id()));
        }
        if let Some(k) = key_index {
            request = request.with_idempotency_key(key(k));
        }
        request
    }

    fn append(&mut self, request: AppendRequest) {
        let now = self.clock.now();
        let expected = self.model.append(&request, now);
        let result = self.log().append(request.clone());
        let got = match result {
            Ok(Ok(appended)) if appended.deduplicated => Outcome::Deduplicated(appended),
            Ok(Ok(appended)) => Outcome::Written(appended),
            Ok(Err(conflict)) => Outcome::Conflict(conflict),
            Err(AppendError::IdempotencyKeyReused { key }) => Outcome::KeyReused(key),
            Err(other) => panic!("append of {request:?} failed: {other}"),
        };
        assert_eq!(
            got, expected,
            "append of {request:?}: the log's answer differs from the model's"
        );
        match &expected {
            Outcome::Written(appended) => {
                self.coverage.written += 1;
                if appended.streams.len() > 1 {
                    self.coverage.multi_stream_written += 1;
                }
            }
            Outcome::Deduplicated(_) => self.coverage.deduplicated += 1,
            Outcome::Conflict(_) => self.coverage.conflicts += 1,
            Outcome::KeyReused(_) => self.coverage.key_reused += 1,
        }
        if request.idempotency_key.is_some() {
            self.keyed.push(request);
        }
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Append {
                writes,
                key,
                actor,
                caused,
            } => {
                let request = self.build_request(writes, *key, *actor, *caused);
                self.append(request);
            }
            Op::Bulk {
                stream,
                right,
                count,
                payload_len,
                key,
            } => {
                let events = (0..*count)
                    .map(|i| EventSpec {
                        event_type: i % EVENT_TYPES.len(),
                        schema_version: 1,
                        payload: (0..*payload_len)
                            .map(|b| (b as u64 ^ (i as u64 * 7919) ^ self.next_id as u64) as u8)
                            .collect(),
                        with_id: false,
                    })
                    .collect();
                let write = WriteSpec {
                    stream: *stream,
                    expect: if *right { Expect::Right } else { Expect::Any },
                    events,
                };
                let request = self.build_request(&[write], *key, 0, false);
                self.append(request);
            }
            Op::Retry {
                pick,
                fresh_correlation,
            } => {
                if self.keyed.is_empty() {
                    return;
                }
                let mut request = self.keyed[pick.index(self.keyed.len())].clone();
                if *fresh_correlation {
                    // A client that retries may make a new request id; it is not content.
                    request.correlation_id = CorrelationId::from_uuid(self.fresh_id());
                }
                self.append(request);
            }
            Op::Misuse { pick, how } => {
                if self.keyed.is_empty() {
                    return;
                }
                let mut request = self.keyed[pick.index(self.keyed.len())].clone();
                match how % 3 {
                    0 => request.writes[0].events[0]
                        .payload
                        .push(how.wrapping_add(1)),
                    1 => {
                        let other = if request.actor == actor(0) { 1 } else { 0 };
                        request.actor = actor(other);
                    }
                    _ => {
                        request.writes[0].expected = match request.writes[0].expected {
                            ExpectedVersion::Any => ExpectedVersion::NoStream,
                            _ => ExpectedVersion::Any,
                        }
                    }
                }
                self.append(request);
            }
            Op::ReadStream {
                stream: s,
                from,
                max,
                huge_max,
            } => {
                let id = stream(*s);
                let k = self.model.versions.get(&id).copied().unwrap_or(0);
                let from = 1 + from.index(k as usize + 2) as u64;
                let max = if *huge_max {
                    usize::MAX
                } else {
                    max.index(k as usize + 3)
                };
                let got = self
                    .log()
                    .read_stream(&id, Version::new(from).expect("from is at least 1"), max)
                    .expect("read_stream");
                let want: Vec<(u64, &ModelEvent)> = self
                    .model
                    .events
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.stream == id && e.version >= from)
                    .take(max)
                    .map(|(i, e)| (i as u64 + 1, e))
                    .collect();
                assert_eq!(
                    got.len(),
                    want.len(),
                    "read_stream({id}, from {from}, max {max}) returned {} events, the model has {}",
                    got.len(),
                    want.len()
                );
                for (event, (position, model)) in got.iter().zip(want) {
                    check_event(event, position, model, "read_stream");
                }
            }
            Op::ReadAll {
                from,
                max,
                huge_max,
            } => {
                let n = self.model.head() as usize;
                let from = 1 + from.index(n + 2) as u64;
                let max = if *huge_max {
                    usize::MAX
                } else {
                    max.index(n + 3)
                };
                let got = self
                    .log()
                    .read_all(Position::new(from).expect("from is at least 1"), max)
                    .expect("read_all");
                let want = n.saturating_sub(from as usize - 1).min(max);
                assert_eq!(
                    got.len(),
                    want,
                    "read_all(from {from}, max {max}) on a log of {n} events"
                );
                for (i, event) in got.iter().enumerate() {
                    let position = from + i as u64;
                    check_event(
                        event,
                        position,
                        &self.model.events[position as usize - 1],
                        "read_all",
                    );
                }
            }
            Op::Drain => self.drain(),
            Op::Resubscribe { from } => {
                let from = 1 + from.index(self.model.events.len() + 1) as u64;
                self.subscription = None;
                self.subscription = Some(Subscription::new(
                    Arc::clone(self.log()),
                    Position::new(from).expect("from is at least 1"),
                ));
                self.subscription_next = from;
            }
            Op::Clock { delta_micros } => {
                let now = self.clock.now().as_unix_micros();
                self.clock
                    .set(Timestamp::from_unix_micros(now + delta_micros));
            }
            Op::Reopen { close, tuning } => self.reopen(*close, *tuning),
        }
    }

    fn drain(&mut self) {
        let mut subscription = self
            .subscription
            .take()
            .expect("a subscription is kept between steps");
        let limit = self.model.events.len() + 1;
        for _ in 0..limit {
            let next = subscription
                .try_next()
                .expect("the subscription reads the log");
            let Some(event) = next else { break };
            let position = self.subscription_next;
            let model = self
                .model
                .events
                .get(position as usize - 1)
                .unwrap_or_else(|| {
                    panic!(
                        "the subscription returned position {} past the log's end {}",
                        event.position,
                        self.model.events.len()
                    )
                });
            check_event(&event, position, model, "subscription");
            self.subscription_next += 1;
            self.coverage.subscription_events += 1;
        }
        let end = self.model.head() + 1;
        assert_eq!(
            self.subscription_next,
            end,
            "the subscription stopped before position {} though the log holds events up to {}",
            self.subscription_next,
            end - 1
        );
        assert_eq!(
            subscription.next_position().get(),
            self.subscription_next,
            "next_position of a drained subscription"
        );
        let waited = subscription
            .next_timeout(Duration::from_millis(1))
            .expect("waiting on a caught-up subscription");
        assert!(
            waited.is_none(),
            "a caught-up subscription returned {waited:?} though nothing was appended"
        );
        self.subscription = Some(subscription);
    }

    fn reopen(&mut self, close: bool, tuning: usize) {
        let mut subscription = self
            .subscription
            .take()
            .expect("a subscription is kept between steps");
        let from = subscription.next_position();
        assert_eq!(
            from.get(),
            self.subscription_next,
            "the subscription's next_position"
        );
        let log = self.log.take().expect("the log is open between steps");
        if close {
            let spare = Arc::clone(&log);
            log.close().expect("closing the log");
            drop(log);
            match subscription.try_next() {
                Err(ReadError::Closed) => {}
                other => panic!("a subscription of a closed log returned {other:?}"),
            }
            match spare.read_all(Position::FIRST, 10) {
                Err(ReadError::Closed) => {}
                other => panic!("read_all on another handle of a closed log returned {other:?}"),
            }
            let request = self.build_request(
                &[WriteSpec {
                    stream: 0,
                    expect: Expect::Any,
                    events: vec![EventSpec {
                        event_type: 0,
                        schema_version: 1,
                        payload: b"after close".to_vec(),
                        with_id: false,
                    }],
                }],
                None,
                0,
                false,
            );
            match spare.append(request) {
                Err(AppendError::Closed) => {}
                other => panic!("append on another handle of a closed log returned {other:?}"),
            }
            drop(spare);
            self.coverage.reopened_after_close += 1;
        } else {
            drop(log);
            self.coverage.reopened_after_drop += 1;
        }
        drop(subscription);
        self.tuning = tuning;
        let log = self.open();
        self.subscription = Some(Subscription::new(Arc::clone(&log), from));
        self.log = Some(log);
    }

    /// Everything that must hold after every step.
    fn check(&self, step: usize) {
        let log = self.log();
        let n = self.model.head();
        let all = log
            .read_all(Position::FIRST, usize::MAX)
            .expect("read_all of the whole log");
        assert_eq!(
            all.len() as u64,
            n,
            "after step {step}: the log holds {} events, the model {n}",
            all.len()
        );
        let mut ids = HashSet::new();
        let mut last_recorded_at = None;
        for (i, event) in all.iter().enumerate() {
            let position = i as u64 + 1;
            check_event(event, position, &self.model.events[i], "read_all");
            assert!(
                ids.insert(event.event_id),
                "event id {} at position {position} is also used earlier",
                event.event_id
            );
            if let Some(last) = last_recorded_at {
                assert!(
                    event.recorded_at >= last,
                    "recorded_at goes backwards at position {position}: {} after {last}",
                    event.recorded_at
                );
            }
            last_recorded_at = Some(event.recorded_at);
        }
        let head = log.head();
        match (head, all.last()) {
            (None, None) => {}
            (Some(head), Some(last)) => {
                assert_eq!(head.position.get(), n, "after step {step}: head position");
                assert_eq!(head.hash, last.hash, "after step {step}: head hash");
            }
            (head, last) => panic!(
                "after step {step}: head {head:?} but the last event is {:?}",
                last.map(|e| e.position)
            ),
        }

        let report = log.verify().expect("verify");
        assert!(
            report.is_intact(),
            "after step {step}: verify found {:?}",
            report.first_break
        );
        assert_eq!(
            report.events_checked, n,
            "after step {step}: events verified"
        );
        assert_eq!(
            report.last_good, head,
            "after step {step}: verify's last good"
        );

        for i in 0..STREAMS.len() {
            let id = stream(i);
            let want = self.model.version(&id);
            let got = log.stream_version(&id).expect("stream_version");
            assert_eq!(got, want, "after step {step}: stream_version({id})");

            let events = log
                .read_stream(&id, Version::FIRST, usize::MAX)
                .expect("read_stream of a whole stream");
            let k = want.map_or(0, Version::get);
            assert_eq!(
                events.len() as u64,
                k,
                "after step {step}: read_stream({id}) length"
            );
            for (j, event) in events.iter().enumerate() {
                assert_eq!(event.version.get(), j as u64 + 1, "versions of {id}");
                let in_log = &all[event.position.get() as usize - 1];
                assert_eq!(
                    event, in_log,
                    "after step {step}: read_stream({id}) and read_all differ at position {}",
                    event.position
                );
            }

            let report = log.verify_stream(&id).expect("verify_stream");
            assert!(
                report.is_intact(),
                "after step {step}: verify_stream({id}) found {:?}",
                report.first_break
            );
            assert_eq!(
                report.events_checked, k,
                "after step {step}: events of {id} verified"
            );
            assert_eq!(
                report.last_good.map(|h| (h.position, h.hash)),
                events.last().map(|e| (e.position, e.hash)),
                "after step {step}: verify_stream({id}) last good"
            );
        }
    }
}

/// Compares an event read from the log with the model's event at `position`.
fn check_event(event: &RecordedEvent, position: u64, model: &ModelEvent, via: &str) {
    let at = format!("{via}, position {position}");
    assert_eq!(event.position.get(), position, "{at}: position");
    assert_eq!(event.stream, model.stream, "{at}: stream");
    assert_eq!(event.version.get(), model.version, "{at}: version");
    assert_eq!(event.event_type, model.event_type, "{at}: event type");
    assert_eq!(
        event.schema_version, model.schema_version,
        "{at}: schema version"
    );
    assert_eq!(event.payload, model.payload, "{at}: payload");
    assert_eq!(event.actor, model.actor, "{at}: actor");
    assert_eq!(
        event.correlation_id, model.correlation_id,
        "{at}: correlation id"
    );
    assert_eq!(event.causation_id, model.causation_id, "{at}: causation id");
    assert_eq!(event.recorded_at, model.recorded_at, "{at}: recorded_at");
    if let Some(id) = model.event_id {
        assert_eq!(event.event_id, id, "{at}: the event id the caller chose");
    }
}

/// Runs one case on a fresh place of the backend. A failing step panics naming the step,
/// the operation and the store.
fn run_case<B: Backend>(check: &Check<'_, B>, case: &Case, coverage: &mut Coverage) {
    let place = check.place();
    let clock = ManualClock::new(Timestamp::from_unix_seconds(1_775_007_000));
    let log = check.open_empty(&place, Arc::new(clock.clone()), TUNINGS[case.tuning]);
    let mut run = Run {
        kit: check,
        place: &place,
        clock,
        tuning: case.tuning,
        log: None,
        subscription: Some(Subscription::new(Arc::clone(&log), Position::FIRST)),
        subscription_next: 1,
        model: Model::default(),
        keyed: Vec::new(),
        next_id: 0,
        coverage,
    };
    run.log = Some(log);
    run.check(0);
    let steps = case.ops.len();
    for (i, op) in case.ops.iter().enumerate() {
        let step = i + 1;
        let done = panic::catch_unwind(AssertUnwindSafe(|| {
            run.step(op);
            run.check(step);
        }));
        if let Err(payload) = done {
            let at = run.log.as_ref().map_or_else(
                || "a store being reopened".to_owned(),
                |log| format!("the store at {}", log.location()),
            );
            panic!(
                "step {step} of {steps} ({op:?}) on {at}: {}",
                panic_text(&*payload)
            );
        }
    }
    run.drain();
    if run.model.events.len() > TUNING_EVENTS[case.tuning] {
        run.coverage.index_flushed += 1;
    }
    drop(run.subscription.take());
    let log = run.log.take().expect("the log is open at the end");
    drop(run);
    check.close(log);
    drop(place);
}

/// The log behaves like a plain in-memory model under random appends (one stream or several
/// at once; right, wrong and `Any` expected versions; new, retried and misused idempotency
/// keys; bulk appends of many or large events), reads of streams and of the whole log from
/// random places, a live subscription, clock moves (backwards too) and reopenings (after
/// `close` or after dropping every handle, with another tuning). After every step: every
/// event is where the model says, with its stream, version, type, schema version, payload,
/// actor, correlation, causation and `recorded_at`; event ids are unique; `recorded_at`
/// never goes backwards; the head is the last event; `verify`, and `verify_stream` of every
/// stream, are intact over everything; `stream_version` and `read_stream` agree with
/// `read_all`; the subscription returns every position once, in order, and nothing more.
/// After `close`, every handle and subscription gets `Closed`.
///
/// Runs `CIVICFLOW_PROPTEST_CASES` cases (24 by default, about 10 to 15 seconds on sled in a
/// debug build); `CIVICFLOW_PROPTEST_SEED` replays the seed a failure names.
///
/// # Panics
/// When the backend differs from the model: names the step, the operation, the store, and
/// the seed with the smallest failing case proptest found.
pub fn model<B: Backend>(backend: &B) {
    model_with(backend, proptest_cases(DEFAULT_CASES), true);
}

/// [`model`] with `cases` cases, shrinking a failure or not (the kit's own tests do not).
pub(super) fn model_with<B: Backend>(backend: &B, cases: u32, shrink: bool) {
    run(backend, "model", |check| {
        let seed = proptest_seed();
        let defaults = Config::default();
        let config = Config {
            cases,
            // Failures are reported with the shrunk case; nothing is written next to the test.
            failure_persistence: None,
            max_shrink_time: 120_000,
            max_shrink_iters: if shrink { defaults.max_shrink_iters } else { 0 },
            rng_seed: RngSeed::Fixed(seed),
            ..defaults
        };
        let coverage = Mutex::new(Coverage::default());
        let mut runner = TestRunner::new(config);
        let result = runner.run(&case_strategy(), |case| {
            let mut total = coverage
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            run_case(check, &case, &mut total);
            Ok(())
        });
        if let Err(failure) = result {
            panic!("seed {seed} (CIVICFLOW_PROPTEST_SEED={seed} replays it): {failure}");
        }
        let coverage = coverage
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        println!("coverage over {cases} cases (seed {seed}): {coverage:?}");
        if cases >= DEFAULT_CASES {
            // With this many cases each of these is all but certain; zero means the generator
            // stopped reaching it.
            assert!(coverage.written > 0, "{coverage:?}");
            assert!(coverage.multi_stream_written > 0, "{coverage:?}");
            assert!(coverage.conflicts > 0, "{coverage:?}");
            assert!(coverage.deduplicated > 0, "{coverage:?}");
            assert!(coverage.key_reused > 0, "{coverage:?}");
            assert!(coverage.reopened_after_close > 0, "{coverage:?}");
            assert!(coverage.reopened_after_drop > 0, "{coverage:?}");
            assert!(coverage.subscription_events > 0, "{coverage:?}");
            assert!(coverage.index_flushed > 0, "{coverage:?}");
        }
    });
}

/// The model's reopen steps, isolated and repeated 300 times: after `close()` (or without
/// it) and dropping every handle and subscription, the store has let go of its place, so
/// opening the same place again right away succeeds (never "locked" or "in use") and holds
/// every event appended before.
///
/// # Panics
/// When a reopen fails or loses events: names the cycle and the store.
pub fn reopening_right_after_the_last_handle_is_gone_is_never_locked<B: Backend>(backend: &B) {
    run(
        backend,
        "reopening_right_after_the_last_handle_is_gone_is_never_locked",
        |check| {
            const CYCLES: u64 = 300;
            let place = check.place();
            let clock = ManualClock::new(Timestamp::from_unix_seconds(1_775_007_000));
            let open = || check.try_open(&place, Arc::new(clock.clone()), 3);
            let mut log = open().expect("opening a fresh store");
            for cycle in 0..CYCLES {
                let request = AppendRequest::to_stream(
                    stream((cycle % 4) as usize),
                    ExpectedVersion::Any,
                    vec![NewEvent::new(
                        event_type(0),
                        1,
                        cycle.to_le_bytes().to_vec(),
                    )],
                    actor(0),
                    CorrelationId::from_uuid(Uuid::from_u128(u128::from(cycle) + 1)),
                );
                let appended = log
                    .append(request)
                    .expect("append")
                    .expect("ExpectedVersion::Any never conflicts");
                assert_eq!(appended.last_position.get(), cycle + 1);
                let subscription = Subscription::new(Arc::clone(&log), Position::FIRST);
                let how = if cycle % 2 == 0 { "close()" } else { "drop" };
                if cycle % 2 == 0 {
                    let spare = Arc::clone(&log);
                    log.close().expect("closing the log");
                    drop(spare);
                }
                drop(log);
                drop(subscription);
                log = match open() {
                    Ok(log) => log,
                    Err(e) => panic!(
                        "reopen {} of {CYCLES} (after {how} of every handle) failed: {e}",
                        cycle + 1
                    ),
                };
                assert_eq!(
                    log.head().map(|h| h.position.get()),
                    Some(cycle + 1),
                    "head after reopen {}",
                    cycle + 1
                );
            }
            let report = log.verify().expect("verify");
            assert!(report.is_intact(), "{:?}", report.first_break);
            check.close(log);
        },
    );
}
