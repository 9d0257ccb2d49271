//! The runner on a real log and store: catch-up then live, freshness waits, a failing (or
//! panicking) projection stopping alone, and a version change rebuilt blue/green while the old version
//! keeps answering.
//!
//! Guards against skipped events, views lost between commit and update, a failure that stops
//! every projection, and rebuilds that take the reads down.

use civicflow_core::{EventStore as _, SledReadModels};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::Scratch;
use civicflow_core::readmodel::ReadModelStore;
use civicflow_core::{
    Actor, AppendRequest, CorrelationId, EventType, ExpectedVersion, NewEvent, Position, SledLog,
    StreamId, Timestamp,
};
use civicflow_projections::{
    Event, FreshnessError, Phase, Projection, ProjectionError, Runner, RunnerOptions, Table, Tx,
    View,
};

const COUNTS: Table<u64> = Table::new("count");

/// Panics on a payload, as a projection's bug (or its store's) would.
struct Panicky;

impl Projection for Panicky {
    fn name(&self) -> &'static str {
        "panicky"
    }

    fn version(&self) -> u32 {
        1
    }

    fn apply(&self, event: &Event, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        assert!(event.payload.as_slice() != b"poison", "a bug met its event");
        *tx.entry(&COUNTS, b"*")?.or_insert_with(|| 0) += 1;
        Ok(())
    }
}

/// Counts events per stream; version and a poison payload are configurable.
struct Counter {
    version: u32,
    name: &'static str,
    poison: Option<&'static [u8]>,
}

impl Projection for Counter {
    fn name(&self) -> &'static str {
        self.name
    }

    fn version(&self) -> u32 {
        self.version
    }

    fn apply(&self, event: &Event, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        if Some(event.payload.as_slice()) == self.poison {
            return Err(ProjectionError::event("poisoned payload"));
        }
        // A multiplier makes versions distinguishable: version 2 counts double.
        let step = u64::from(self.version);
        *tx.entry(&COUNTS, event.stream.as_str().as_bytes())?
            .or_insert_with(|| 0) += step;
        *tx.entry(&COUNTS, b"*")?.or_insert_with(|| 0) += step;
        Ok(())
    }
}

fn append(log: &SledLog, stream: &str, payload: &[u8]) -> Position {
    let request = AppendRequest::to_stream(
        StreamId::new(stream).expect("valid"),
        ExpectedVersion::Any,
        vec![NewEvent::new(
            EventType::new("Noted").expect("valid"),
            1,
            payload.to_vec(),
        )],
        Actor::parse("a", "r", "u").expect("valid"),
        CorrelationId::new_v7(Timestamp::EPOCH),
    );
    log.append(request)
        .expect("append")
        .expect("any")
        .last_position
}

fn total(runner: &Runner, name: &str) -> Option<u64> {
    runner
        .view(name)
        .expect("view")
        .get(&COUNTS, b"*")
        .expect("read")
}

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn catches_up_then_follows_live_and_readers_see_their_writes() {
    let scratch = Scratch::new("live");
    let log = SledLog::open(scratch.0.join("log")).expect("log");
    for i in 0..500 {
        append(&log, if i % 2 == 0 { "case-a" } else { "case-b" }, b"x");
    }
    let store = Arc::new(SledReadModels::open(scratch.0.join("rm")).expect("store"));
    let runner = Runner::start(
        Arc::new(log.clone()),
        store,
        vec![Box::new(Counter {
            version: 1,
            name: "counter",
            poison: None,
        })],
        RunnerOptions {
            batch_events_max: 64,
            ..RunnerOptions::default()
        },
    )
    .expect("start");
    runner.wait_until_caught_up(WAIT).expect("caught up");
    assert_eq!(total(&runner, "counter"), Some(500));
    // A client writes and asks for a view that includes its write.
    for i in 0..50 {
        let position = append(&log, "case-c", b"x");
        let view = runner
            .view_at_least("counter", position, WAIT)
            .expect("fresh");
        assert!(view.checkpoint() >= Some(position));
        assert_eq!(view.get(&COUNTS, b"case-c").expect("read"), Some(i + 1));
    }
    assert!(matches!(runner.status()[0].phase, Phase::Live));
}

#[test]
fn a_failing_projection_stops_at_its_event_and_the_others_go_on() {
    let scratch = Scratch::new("failure");
    let log = SledLog::open(scratch.0.join("log")).expect("log");
    for _ in 0..10 {
        append(&log, "case-a", b"ok");
    }
    let bad = append(&log, "case-a", b"poison");
    for _ in 0..10 {
        append(&log, "case-a", b"ok");
    }
    let store = Arc::new(SledReadModels::open(scratch.0.join("rm")).expect("store"));
    let runner = Runner::start(
        Arc::new(log.clone()),
        store,
        vec![
            Box::new(Counter {
                version: 1,
                name: "fragile",
                poison: Some(b"poison"),
            }),
            Box::new(Counter {
                version: 1,
                name: "sturdy",
                poison: None,
            }),
        ],
        RunnerOptions::default(),
    )
    .expect("start");
    let head = log.head().expect("not empty").position;
    runner
        .wait_for("sturdy", head, WAIT)
        .expect("the sturdy one catches up");
    match runner.wait_for("fragile", head, WAIT) {
        Err(FreshnessError::Failed { position, .. }) => assert_eq!(position, bad),
        other => panic!("expected the failure at {bad}, got {other:?}"),
    }
    // It kept everything before the failing event, and nothing of it or after.
    let view = runner.view("fragile").expect("view");
    assert_eq!(view.checkpoint(), bad.prev());
    assert_eq!(view.get(&COUNTS, b"*").expect("read"), Some(10));
    assert_eq!(total(&runner, "sturdy"), Some(21));
    let status = runner.status();
    assert!(
        matches!(&status[0].phase, Phase::Failed { position, .. } if *position == bad),
        "{status:?}"
    );
}

/// Guards against a panicking projection leaving a dead worker that looks alive: readers
/// would wait for it forever and the service would never be ready.
#[test]
fn a_panicking_projection_is_reported_failed_and_the_others_go_on() {
    let scratch = Scratch::new("panic");
    let log = SledLog::open(scratch.0.join("log")).expect("log");
    for _ in 0..10 {
        append(&log, "case-a", b"ok");
    }
    append(&log, "case-a", b"poison");
    let store = Arc::new(SledReadModels::open(scratch.0.join("rm")).expect("store"));
    let runner = Runner::start(
        Arc::new(log.clone()),
        store,
        vec![
            Box::new(Panicky),
            Box::new(Counter {
                version: 1,
                name: "sturdy",
                poison: None,
            }),
        ],
        RunnerOptions::default(),
    )
    .expect("start");
    let head = log.head().expect("not empty").position;
    runner
        .wait_for("sturdy", head, WAIT)
        .expect("the sturdy one catches up");
    match runner.wait_for("panicky", head, WAIT) {
        Err(FreshnessError::Failed { error, .. }) => {
            assert!(error.contains("panicked: a bug met its event"), "{error}");
        }
        other => panic!("expected the panic reported, got {other:?}"),
    }
    assert!(
        matches!(&runner.status()[0].phase, Phase::Failed { .. }),
        "{:?}",
        runner.status()
    );
}

#[test]
fn a_new_version_rebuilds_while_the_old_one_answers_then_switches() {
    let scratch = Scratch::new("rebuild");
    let log = SledLog::open(scratch.0.join("log")).expect("log");
    for _ in 0..2000 {
        append(&log, "case-a", b"x");
    }
    let store = Arc::new(SledReadModels::open(scratch.0.join("rm")).expect("store"));
    {
        let runner = Runner::start(
            Arc::new(log.clone()),
            store.clone(),
            vec![Box::new(Counter {
                version: 1,
                name: "counter",
                poison: None,
            })],
            RunnerOptions::default(),
        )
        .expect("start v1");
        runner.wait_until_caught_up(WAIT).expect("v1 caught up");
        assert_eq!(total(&runner, "counter"), Some(2000));
    }
    assert_eq!(store.active("counter").expect("read"), Some(1));

    // Version 2 starts: until it has caught up, reads come from version 1, never from a
    // half-built version 2; afterwards from version 2, and version 1's rows are gone.
    let runner = Runner::start(
        Arc::new(log.clone()),
        store.clone(),
        vec![Box::new(Counter {
            version: 2,
            name: "counter",
            poison: None,
        })],
        RunnerOptions {
            batch_events_max: 50,
            ..RunnerOptions::default()
        },
    )
    .expect("start v2");
    // A reader that took its view of version 1 before the switch.
    let held = runner.view("counter").expect("view");
    let mut seen = Vec::new();
    loop {
        let view = runner.view("counter").expect("view");
        let value = view.get(&COUNTS, b"*").expect("read");
        seen.push((view.namespace().version(), value));
        if view.namespace().version() == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for (version, value) in &seen {
        match version {
            1 => assert_eq!(*value, Some(2000), "version 1 answers whole"),
            _ => assert_eq!(*value, Some(4000), "version 2 answers only once complete"),
        }
    }
    runner.wait_until_caught_up(WAIT).expect("v2 caught up");
    assert_eq!(store.active("counter").expect("read"), Some(2));

    // Version 1 stays whole while a view of it lives, and is cleared once none does.
    let v1 = civicflow_core::readmodel::Namespace::new("counter", 1).expect("valid");
    if held.namespace().version() == 1 {
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(held.get(&COUNTS, b"*").expect("read"), Some(2000));
        assert!(store.checkpoint(&v1).expect("read").is_some());
    }
    drop(held);
    let deadline = Instant::now() + WAIT;
    while store.checkpoint(&v1).expect("read").is_some() {
        assert!(
            Instant::now() < deadline,
            "the old version was never cleared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        View::of(&store, v1)
            .expect("view")
            .scan(&COUNTS, b"", None, 10)
            .expect("scan")
            .is_empty(),
        "the old version's rows are gone"
    );
}

#[test]
fn a_version_left_behind_by_an_earlier_run_is_cleared_at_start() {
    let scratch = Scratch::new("leftover");
    let log = SledLog::open(scratch.0.join("log")).expect("log");
    append(&log, "case-a", b"x");
    let store = Arc::new(SledReadModels::open(scratch.0.join("rm")).expect("store"));
    let counter = |version| -> Vec<Box<dyn Projection>> {
        vec![Box::new(Counter {
            version,
            name: "counter",
            poison: None,
        })]
    };
    // Version 3 half-built by a run that stopped (its rows and checkpoint are there, it was
    // never activated), then version 1 built and serving.
    let ns = |v| civicflow_core::readmodel::Namespace::new("counter", v).expect("valid");
    let mut changes = civicflow_core::readmodel::Changes::default();
    changes.put(b"\x00stale".to_vec(), b"x".to_vec());
    store
        .commit(&ns(3), changes, civicflow_core::Position::FIRST)
        .expect("commit");
    let runner = Runner::start(
        Arc::new(log.clone()),
        store.clone(),
        counter(1),
        RunnerOptions::default(),
    )
    .expect("start");
    runner.wait_until_caught_up(WAIT).expect("caught up");
    drop(runner);
    assert_eq!(store.checkpoint(&ns(3)).expect("read"), None);
    assert_eq!(store.active("counter").expect("read"), Some(1));
}
