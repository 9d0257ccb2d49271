//! What every check shares: the run that names the check, the backend and its stores in a
//! failure; opening, reopening and closing stores; the proptest knobs.

use std::any::Any;
use std::hash::{BuildHasher, Hasher};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError};

use super::Backend;
use std::sync::atomic::{AtomicU64, Ordering};

use uuid::Uuid;

use crate::{
    Actor, AppendRequest, Clock, CorrelationId, EventStore, EventType, ExpectedVersion, NewEvent,
    OpenError, Position, RecordedEvent, StreamId, StreamWrite, SystemClock, Version,
};

/// One check running against one backend: opens its stores and remembers where they are,
/// so that a failure names them.
pub(super) struct Check<'a, B: Backend> {
    backend: &'a B,
    name: &'static str,
    /// `location()` of every store opened, least recently opened first.
    opened: Mutex<Vec<String>>,
}

/// Runs check `name` on `backend`. A panic inside `body` (an assertion, or a thread of the
/// check whose panic was passed on with [`joined`]) is raised again with a message that
/// names the check, the backend and where its stores are.
pub(super) fn run<B: Backend, T>(
    backend: &B,
    name: &'static str,
    body: impl FnOnce(&Check<'_, B>) -> T,
) -> T {
    let check = Check {
        backend,
        name,
        opened: Mutex::new(Vec::new()),
    };
    match panic::catch_unwind(AssertUnwindSafe(|| body(&check))) {
        Ok(value) => value,
        Err(payload) => panic!("{}", check.failure(&panic_text(&*payload))),
    }
}

impl<B: Backend> Check<'_, B> {
    /// The message of a failed check.
    fn failure(&self, message: &str) -> String {
        let opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        // The newest few: a model run opens a store per case, and the last is the one
        // that failed.
        let shown: Vec<&str> = opened
            .iter()
            .rev()
            .take(4)
            .rev()
            .map(String::as_str)
            .collect();
        let stores = match opened.len() {
            0 => "no store opened".to_owned(),
            n if n == shown.len() => format!("stores at {}", shown.join(", ")),
            n => format!("{n} stores opened, the newest at {}", shown.join(", ")),
        };
        format!(
            "conformance check `{}` failed on backend {} ({stores}): {message}",
            self.name,
            self.backend.name()
        )
    }

    /// A fresh, empty place of the backend.
    pub(super) fn place(&self) -> B::Place {
        self.backend.place()
    }

    /// Opens the store at `place`, or says why not.
    pub(super) fn try_open(
        &self,
        place: &B::Place,
        clock: Arc<dyn Clock>,
        tuning: u8,
    ) -> Result<Arc<dyn EventStore>, OpenError> {
        let store = self.backend.open(place, clock, tuning)?;
        let location = store.location();
        let mut opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        // A store opened again moves to the end: the newest are shown in a failure.
        opened.retain(|earlier| *earlier != location);
        opened.push(location);
        Ok(store)
    }

    /// Opens the store at `place`.
    pub(super) fn open(
        &self,
        place: &B::Place,
        clock: Arc<dyn Clock>,
        tuning: u8,
    ) -> Arc<dyn EventStore> {
        self.try_open(place, clock, tuning)
            .unwrap_or_else(|e| panic!("opening a store (tuning {tuning}) failed: {e}"))
    }

    /// Opens the store at a fresh `place` and checks that it is empty, as the backend's
    /// contract says.
    pub(super) fn open_empty(
        &self,
        place: &B::Place,
        clock: Arc<dyn Clock>,
        tuning: u8,
    ) -> Arc<dyn EventStore> {
        let store = self.open(place, clock, tuning);
        let at = store.location();
        assert_eq!(
            store.head(),
            None,
            "a store opened on a fresh place must be empty, but the one at {at} has a head"
        );
        let events = store
            .read_all(Position::FIRST, 1)
            .unwrap_or_else(|e| panic!("read_all of the fresh store at {at} failed: {e}"));
        assert!(
            events.is_empty(),
            "a store opened on a fresh place must be empty, but the one at {at} holds {events:?}"
        );
        store
    }

    /// Closes `store`, lets go of it (the caller must hold no other handle) and opens its
    /// place again.
    pub(super) fn reopen(
        &self,
        place: &B::Place,
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
        tuning: u8,
    ) -> Arc<dyn EventStore> {
        self.close(store);
        self.open(place, clock, tuning)
    }

    /// Closes `store` and lets go of it; the caller must hold no other handle.
    pub(super) fn close(&self, store: Arc<dyn EventStore>) {
        let at = store.location();
        store
            .close()
            .unwrap_or_else(|e| panic!("closing the store at {at} failed: {e}"));
        assert_eq!(
            Arc::strong_count(&store),
            1,
            "(a bug of the kit) another handle of the store at {at} is held after closing"
        );
        drop(store);
    }
}

/// The text of a panic's payload.
pub(super) fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else {
        "a panic without a message".to_owned()
    }
}

/// The value of a joined thread, or its panic raised again here with its own message (not
/// "a thread panicked"), so that [`run`] reports what went wrong.
pub(super) fn joined<T>(result: std::thread::Result<T>) -> T {
    result.unwrap_or_else(|payload| panic::resume_unwind(payload))
}

/// The value of an async task, or its panic raised again here with its own message.
pub(super) fn task_joined<T>(result: Result<T, tokio::task::JoinError>) -> T {
    match result {
        Ok(value) => value,
        Err(e) if e.is_panic() => panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("an async task of the check did not finish: {e}"),
    }
}

/// The real clock, shared.
pub(super) fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// Proptest cases to run: `CIVICFLOW_PROPTEST_CASES`, or `default`.
pub(super) fn proptest_cases(default: u32) -> u32 {
    match std::env::var("CIVICFLOW_PROPTEST_CASES") {
        Ok(text) => text
            .trim()
            .parse()
            .expect("CIVICFLOW_PROPTEST_CASES must be a whole number of cases"),
        Err(_) => default,
    }
}

/// The seed of a proptest run: `CIVICFLOW_PROPTEST_SEED` (to replay a failure), or a fresh
/// random one.
pub(super) fn proptest_seed() -> u64 {
    match std::env::var("CIVICFLOW_PROPTEST_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .expect("CIVICFLOW_PROPTEST_SEED must be a whole number"),
        Err(_) => {
            // std's randomly keyed hasher is randomness enough for a test seed.
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u32(std::process::id());
            hasher.finish()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Requests and whole-log reads shared by the checks

/// A stream id the kit chose.
pub(super) fn stream(name: &str) -> StreamId {
    StreamId::new(name).expect("the test's stream ids are valid")
}

/// The actor of the concurrency, idempotency and chain checks.
pub(super) fn actor() -> Actor {
    Actor::parse("li.wei", "grid_worker", "tonghui/grid-1").expect("a valid actor")
}

/// A `NoteAdded` event with `payload`.
pub(super) fn event(payload: &[u8]) -> NewEvent {
    NewEvent::new(
        EventType::new("NoteAdded").expect("a valid event type"),
        1,
        payload.to_vec(),
    )
}

/// A correlation id no other request of the test has.
pub(super) fn correlation() -> CorrelationId {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    CorrelationId::from_uuid(Uuid::from_u128(u128::from(
        NEXT.fetch_add(1, Ordering::Relaxed),
    )))
}

/// The expected version of a stream now at `current`.
pub(super) fn expect_version(current: Option<Version>) -> ExpectedVersion {
    match current {
        None => ExpectedVersion::NoStream,
        Some(v) => ExpectedVersion::Exact(v),
    }
}

/// A version as a number, 0 for no stream.
pub(super) fn version_number(v: Option<Version>) -> u64 {
    v.map_or(0, Version::get)
}

/// The whole log, checked to hold positions 1..=n without gaps, and a verified chain.
pub(super) fn read_whole_log(log: &dyn EventStore, n: u64) -> Vec<RecordedEvent> {
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
pub(super) fn read_whole_stream(log: &dyn EventStore, stream: &StreamId) -> Vec<RecordedEvent> {
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

/// What one append wrote: per stream, the payloads of its events.
pub(super) type Written = Vec<(StreamId, Vec<Vec<u8>>)>;

/// Append `i` of a writer labelled `label`: one or two events to one of five streams, and
/// every fifth also to the next stream, all with `ExpectedVersion::Any`; with what it writes.
pub(super) fn mixed_request(label: &str, i: usize) -> (AppendRequest, Written) {
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
