//! A tour of the event log: several threads append to their own streams and to a shared one,
//! a subscriber follows live, the store is closed and reopened, and the chain is verified.
//!
//! Run with `cargo run --release --example event_log [DIR]`. With DIR the store is kept there
//! (inspect it with `civicflow verify --data DIR`); without, a temporary one is removed.

use civicflow::core::EventStore as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use civicflow::core::{
    Actor, AppendRequest, CorrelationId, EventType, ExpectedVersion, NewEvent, Position, SledLog,
    StreamId, StreamWrite, Timestamp,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keep = std::env::args().nth(1);
    let dir = keep
        .clone()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("civicflow-tour-{}", std::process::id()))
        });
    if keep.is_some() && dir.exists() {
        return Err(format!("{} exists; give the tour a new directory", dir.display()).into());
    }
    let log = SledLog::open(&dir)?;
    println!("store: {}", dir.display());

    // A subscriber that follows the log live from the first position.
    let follower = {
        let mut subscription = log.subscribe(Position::FIRST);
        std::thread::spawn(move || {
            let mut seen = 0u64;
            while let Ok(Some(event)) = subscription.next_timeout(Duration::from_secs(2)) {
                seen += 1;
                assert_eq!(
                    event.position.get(),
                    seen,
                    "positions arrive in order without gaps"
                );
            }
            seen
        })
    };

    let threads = 8;
    let per_thread = 200;
    let started = Instant::now();
    let log = Arc::new(log);
    let writers: Vec<_> = (0..threads)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || -> Result<(), String> {
                let actor = Actor::parse(&format!("worker-{t}"), "grid_worker", "tonghui/grid-1")
                    .map_err(|e| e.to_string())?;
                let own = StreamId::new(format!("case-{t}")).map_err(|e| e.to_string())?;
                let shared = StreamId::new("unit-tonghui").map_err(|e| e.to_string())?;
                let noted = EventType::new("NoteAdded").map_err(|e| e.to_string())?;
                for i in 0..per_thread {
                    let event =
                        NewEvent::new(noted.clone(), 1, format!("note {i} from {t}").into_bytes());
                    // Each append goes to the thread's own case and, atomically, to the unit.
                    let request = AppendRequest::to_streams(
                        vec![
                            StreamWrite::new(
                                own.clone(),
                                ExpectedVersion::Any,
                                vec![event.clone()],
                            ),
                            StreamWrite::new(shared.clone(), ExpectedVersion::Any, vec![event]),
                        ],
                        actor.clone(),
                        CorrelationId::new_v7(Timestamp::EPOCH),
                    );
                    log.append(request)
                        .map_err(|e| e.to_string())?
                        .map_err(|c| c.to_string())?;
                }
                Ok(())
            })
        })
        .collect();
    for writer in writers {
        writer.join().map_err(|_| "a writer panicked")??;
    }
    let elapsed = started.elapsed();
    let events = (threads * per_thread * 2) as f64;
    println!(
        "{} durable appends ({} events) in {:.2?}: {:.0} events/s",
        threads * per_thread,
        events,
        elapsed,
        events / elapsed.as_secs_f64()
    );
    let head = log.head().ok_or("the log is empty")?;
    println!("head: position {} hash {}", head.position, head.hash);
    println!(
        "follower saw {} events",
        follower.join().map_err(|_| "the follower panicked")?
    );

    let log = Arc::try_unwrap(log).map_err(|_| "the log is still shared")?;
    log.close()?;
    let reopened = SledLog::open(&dir)?;
    let report = reopened.verify()?;
    println!(
        "after reopening: {} events verified, intact: {}",
        report.events_checked,
        report.is_intact()
    );
    assert_eq!(reopened.head(), Some(head));
    let unit = reopened.read_stream(
        &StreamId::new("unit-tonghui")?,
        civicflow::core::Version::FIRST,
        usize::MAX,
    )?;
    println!("stream unit-tonghui has {} events", unit.len());
    reopened.close()?;
    if keep.is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
