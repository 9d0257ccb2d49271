//! Concurrent writers and a live projection: every event is applied exactly once, in order.
//!
//! Guards against the bug class of Marten #1629/#3321 and Eventuous #222: a reader that follows
//! positions skips an event whose commit lands after a later position was already read. Here
//! many threads append while the projection follows live; the projection records every
//! position it applies and refuses one that is not the next, so a skip or a repeat stops it
//! with an error at that position.

use civicflow_core::{EventStore as _, SledReadModels};
use std::sync::Arc;
use std::time::Duration;

use civicflow_core::{
    Actor, AppendRequest, CorrelationId, EventType, ExpectedVersion, NewEvent, SledLog, StreamId,
    StreamWrite, Timestamp,
};
use civicflow_projections::{
    Event, Phase, Projection, ProjectionError, Runner, RunnerOptions, Table, Tx,
};

const SEEN: Table<u64> = Table::new("seen");
const LAST: Table<u64> = Table::new("last");

/// Records each position and insists that it is the one after the last.
struct Sequencer;

impl Projection for Sequencer {
    fn name(&self) -> &'static str {
        "sequencer"
    }

    fn version(&self) -> u32 {
        1
    }

    fn apply(&self, event: &Event, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        let position = event.position.get();
        let last = tx.entry(&LAST, b"")?;
        let previous = last.get().copied().unwrap_or(0);
        if position != previous + 1 {
            return Err(ProjectionError::event(format!(
                "position {position} after {previous}: a skip or a repeat"
            )));
        }
        last.set(Some(position));
        tx.put(
            &SEEN,
            &position.to_be_bytes(),
            event.stream.as_str().len() as u64,
        )?;
        Ok(())
    }
}

#[test]
fn concurrent_writers_and_a_live_projection_skip_nothing() {
    let dir = std::env::temp_dir().join(format!("civicflow-no-skips-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let log = SledLog::open(dir.join("log")).expect("log");
    let store = Arc::new(SledReadModels::open(dir.join("rm")).expect("store"));
    let runner = Runner::start(
        Arc::new(log.clone()),
        store,
        vec![Box::new(Sequencer)],
        RunnerOptions {
            batch_events_max: 7,
            idle_wait: Duration::from_millis(5),
            ..RunnerOptions::default()
        },
    )
    .expect("start");

    let writers: Vec<_> = (0..8)
        .map(|w| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..150 {
                    let event = || {
                        NewEvent::new(
                            EventType::new("Noted").expect("valid"),
                            1,
                            vec![w, (i % 256) as u8],
                        )
                    };
                    // Some appends write two streams at once: their events are consecutive.
                    let mut writes = vec![StreamWrite::new(
                        StreamId::new(format!("case-{w}")).expect("valid"),
                        ExpectedVersion::Any,
                        vec![event()],
                    )];
                    if i % 3 == 0 {
                        writes.push(StreamWrite::new(
                            StreamId::new("unit-shared").expect("valid"),
                            ExpectedVersion::Any,
                            vec![event(), event()],
                        ));
                    }
                    let request = AppendRequest::to_streams(
                        writes,
                        Actor::parse("w", "r", "u").expect("valid"),
                        CorrelationId::new_v7(Timestamp::EPOCH),
                    );
                    log.append(request).expect("append").expect("any");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("writer");
    }
    let head = log.head().expect("not empty").position;
    runner
        .wait_for("sequencer", head, Duration::from_secs(60))
        .expect("the projection reaches the head without a skip");
    let view = runner.view("sequencer").expect("view");
    let seen = view.scan(&SEEN, b"", None, usize::MAX).expect("scan");
    let positions: Vec<u64> = seen
        .iter()
        .map(|(key, _)| u64::from_be_bytes(key.as_slice().try_into().expect("8 bytes")))
        .collect();
    assert_eq!(
        positions,
        (1..=head.get()).collect::<Vec<_>>(),
        "every position exactly once"
    );
    assert!(matches!(runner.status()[0].phase, Phase::Live));
    drop(runner);
    let _ = std::fs::remove_dir_all(&dir);
}
