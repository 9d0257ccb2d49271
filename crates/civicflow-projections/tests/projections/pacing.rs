//! Workers keeping pace through the shared feed: during a rebuild the log is read once however
//! far the fast models would run ahead of the slow ones; a model that stops holds no one back;
//! a live model is never held back by a new version rebuilding far behind it.
//!
//! Guards against the regression the rebuild bench found (the fast models running more than
//! the feed's cache ahead, so that the slow ones read the whole log again), and against the
//! pacing coupling models that must stay independent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use civicflow_core::readmodel::ReadModelStore;
use civicflow_core::testkit::{Intercept, Intercepted};
use civicflow_core::{
    Actor, AppendRequest, CorrelationId, EventStore, EventType, ExpectedVersion, NewEvent,
    Position, ReadError, RecordedEvent, SledLog, SledReadModels, StreamId, Timestamp,
};
use civicflow_projections::{
    Event, FreshnessError, Phase, Projection, ProjectionError, Runner, RunnerOptions, Table, Tx,
};

use crate::common::Scratch;

const COUNTS: Table<u64> = Table::new("count");

/// Positions per chunk of the runner's feed, and the chunks it caches (`feed.rs`).
const CHUNK: u64 = 1024;
const CACHED_CHUNKS: u64 = 16;

/// A log long enough that a model running ahead would push out of the feed's cache every
/// chunk a slow one has yet to read, twice over.
const EVENTS: u64 = 3 * CACHED_CHUNKS * CHUNK;

const WAIT: Duration = Duration::from_secs(60);

/// The log, counting the events workers read from it.
#[derive(Debug)]
struct Counting {
    log: SledLog,
    read: AtomicU64,
}

impl Intercept for Counting {
    fn inner(&self) -> &dyn EventStore {
        &self.log
    }
    fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, ReadError> {
        let events = self.log.read_all(from, max)?;
        self.read.fetch_add(events.len() as u64, Ordering::Relaxed);
        Ok(events)
    }
}

/// A log of `count` events (`poison_at` with the payload `poison`), counted as it is read,
/// and an empty read-model store.
fn setup(
    scratch: &Scratch,
    count: u64,
    poison_at: Option<u64>,
) -> (Arc<Intercepted<Counting>>, Arc<SledReadModels>) {
    let log = SledLog::open(scratch.0.join("log")).expect("log");
    fill(&log, count, poison_at);
    let counting = Arc::new(Intercepted(Counting {
        log,
        read: AtomicU64::new(0),
    }));
    let store = Arc::new(SledReadModels::open(scratch.0.join("rm")).expect("store"));
    (counting, store)
}

/// Counts events; `pause` makes it slow (a sleep every 64 events), `poison` fails at the
/// event with that payload.
struct Model {
    name: &'static str,
    version: u32,
    pause: Option<Duration>,
    poison: Option<&'static [u8]>,
}

impl Model {
    fn fast(name: &'static str) -> Self {
        Self {
            name,
            version: 1,
            pause: None,
            poison: None,
        }
    }

    fn slow(name: &'static str, version: u32, pause: Duration) -> Self {
        Self {
            name,
            version,
            pause: Some(pause),
            poison: None,
        }
    }
}

impl Projection for Model {
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
        if let Some(pause) = self
            .pause
            .filter(|_| event.position.get().is_multiple_of(64))
        {
            std::thread::sleep(pause);
        }
        *tx.entry(&COUNTS, b"*")?.or_insert_with(|| 0) += 1;
        Ok(())
    }
}

/// Appends `count` events, `per_append` at a time, to one stream; `poison_at` gets the
/// payload `poison`.
fn fill(log: &SledLog, count: u64, poison_at: Option<u64>) {
    let mut written = log.head().map_or(0, |h| h.position.get());
    let end = written + count;
    while written < end {
        let n = (end - written).min(512);
        let events = (written + 1..=written + n)
            .map(|position| {
                let payload = if Some(position) == poison_at {
                    b"poison".to_vec()
                } else {
                    b"x".to_vec()
                };
                NewEvent::new(EventType::new("Noted").expect("valid"), 1, payload)
            })
            .collect();
        let request = AppendRequest::to_stream(
            StreamId::new("case-a").expect("valid"),
            ExpectedVersion::Any,
            events,
            Actor::parse("a", "r", "u").expect("valid"),
            CorrelationId::new_v7(Timestamp::EPOCH),
        );
        log.append(request).expect("append").expect("any");
        written += n;
    }
}

fn start(
    log: &Arc<Intercepted<Counting>>,
    store: &Arc<SledReadModels>,
    models: Vec<Model>,
) -> Runner {
    Runner::start(
        log.clone(),
        store.clone(),
        models
            .into_iter()
            .map(|m| Box::new(m) as Box<dyn Projection>)
            .collect(),
        RunnerOptions::default(),
    )
    .expect("start")
}

fn counted(runner: &Runner, name: &str) -> Option<u64> {
    runner
        .view(name)
        .expect("view")
        .get(&COUNTS, b"*")
        .expect("read")
}

#[test]
fn a_rebuild_reads_the_log_once_however_far_the_fast_models_could_run_ahead() {
    let scratch = Scratch::new("pace-once");
    let (counting, store) = setup(&scratch, EVENTS, None);
    // The slow one takes a millisecond every 64 events (about a second in all); the fast
    // ones would be through the whole log long before it is a third of the way.
    let runner = start(
        &counting,
        &store,
        vec![
            Model::fast("fast_a"),
            Model::slow("slow", 1, Duration::from_millis(1)),
            Model::fast("fast_b"),
        ],
    );
    runner.wait_until_caught_up(WAIT).expect("caught up");
    for name in ["fast_a", "slow", "fast_b"] {
        assert_eq!(counted(&runner, name), Some(EVENTS), "{name}");
    }
    let read = counting.0.read.load(Ordering::Relaxed);
    assert_eq!(
        read, EVENTS,
        "every event read from the log exactly once, for all three models"
    );
}

/// Without the feed forgetting a stopped worker, the others would wait for it forever at the
/// edge of the cache.
#[test]
fn a_model_that_stops_early_holds_no_one_back() {
    let scratch = Scratch::new("pace-failed");
    let (counting, store) = setup(&scratch, EVENTS, Some(100));
    let failing = Model {
        name: "failing",
        version: 1,
        pause: None,
        poison: Some(b"poison"),
    };
    let runner = start(&counting, &store, vec![failing, Model::fast("sturdy")]);
    let head = counting.head().expect("not empty").position;
    runner
        .wait_for("sturdy", head, WAIT)
        .expect("the sturdy one reaches the head");
    assert!(matches!(
        runner.wait_for("failing", head, WAIT),
        Err(FreshnessError::Failed { position, .. }) if position.get() == 100
    ));
    assert_eq!(counted(&runner, "sturdy"), Some(EVENTS));
}

/// A new version rebuilding from the first event must not slow the live models down to its
/// pace, even when they have a whole chunk behind the head to read.
#[test]
fn a_live_model_is_not_held_back_by_a_new_version_rebuilding_far_behind() {
    let scratch = Scratch::new("pace-live");
    let (counting, store) = setup(&scratch, EVENTS, None);
    {
        let first = start(
            &counting,
            &store,
            vec![Model::fast("live"), Model::fast("renewed")],
        );
        first.wait_until_caught_up(WAIT).expect("first run");
    }
    // The second run: `renewed` comes back in version 2, slow, and rebuilds from the start
    // (about three seconds: a pause of 4 ms every 64 events); `live` resumes at the head.
    let slow = Model::slow("renewed", 2, Duration::from_millis(4));
    // Two whole chunks came while the service was stopped: `live` reads them as chunks
    // behind the head, which is where a worker may wait for another.
    fill(&counting.0.log, 2 * CHUNK, None);
    let head = counting.head().expect("not empty").position;
    let runner = start(&counting, &store, vec![Model::fast("live"), slow]);
    runner
        .wait_for("live", head, WAIT)
        .expect("the live model reaches the head");
    let renewed = runner
        .status()
        .into_iter()
        .find(|s| s.name == "renewed")
        .expect("renewed runs");
    assert!(
        matches!(renewed.phase, Phase::Rebuilding { serving: Some(1) }),
        "the live model got there while the new version was still rebuilding: {renewed:?}"
    );
    assert!(
        renewed.checkpoint.is_none_or(|c| c.get() < EVENTS / 2),
        "{renewed:?}"
    );
    assert_eq!(counted(&runner, "live"), Some(EVENTS + 2 * CHUNK));
    let _ = store.flush();
}
