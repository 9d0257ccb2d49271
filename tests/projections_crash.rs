//! Read models survive SIGKILL: a child process runs every projection (tiny batches, so a kill
//! lands mid-work) and is killed at random moments while the history grows between rounds;
//! afterwards the read models, brought to the head, equal a rebuild from scratch.
//!
//! Guards against an event's effect lost or applied twice by a crash: rows and checkpoint not
//! committed together, a checkpoint written before its rows, a rebuild's switch torn.
//!
//! The same binary is parent and child (`harness = false`): with `CIVICFLOW_PROJECTIONS_CHILD=DIR`
//! it is the child. `CIVICFLOW_CRASH_ROUNDS` (default 12) sets the rounds,
//! `CIVICFLOW_CRASH_SEED` replays a run.

mod common;

use civicflow::core::{EventStore, SledReadModels};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use civicflow::core::vault::MasterKey;
use civicflow::core::{ManualClock, SledLog};
use civicflow::demo;
use civicflow::projections::{models, Runner, RunnerOptions};
use common::history::{open_engine, run_random_commands, Rng};
use common::readmodels::{run_to_head, snapshot};

const CHILD: &str = "CIVICFLOW_PROJECTIONS_CHILD";

fn child(dir: &Path) {
    let log = SledLog::open(dir.join("data").join("log")).expect("the child opens the log");
    let definitions = Arc::new(civicflow::core::domain::workflow::DefinitionRegistry::built_in());
    let store =
        Arc::new(SledReadModels::open(dir.join("readmodels")).expect("the child opens the store"));
    let runner = Runner::start(
        Arc::new(log),
        store,
        models::all(definitions, civicflow::core::calendar::Zone::shanghai()),
        RunnerOptions {
            batch_events_max: 3,
            rows_in_memory_max: 40,
            idle_wait: Duration::from_millis(5),
            ..RunnerOptions::default()
        },
    )
    .expect("start");
    println!("ready");
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let _ = runner.status();
    }
}

fn main() {
    if let Some(dir) = std::env::var_os(CHILD) {
        child(Path::new(&dir));
        return;
    }
    // Behave like a test binary for `cargo test -- --list` and name filters.
    if std::env::args().any(|a| a == "--list") {
        println!("projections_crash: test");
        return;
    }
    let rounds: usize = std::env::var("CIVICFLOW_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let seed: u64 = std::env::var("CIVICFLOW_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!(
        "projections_crash: seed {seed} (replay with CIVICFLOW_CRASH_SEED={seed}), {rounds} rounds"
    );
    let dir = common::TempDir::new("projections-crash");
    let clock = ManualClock::new(demo::START);
    let key = MasterKey::generate().expect("randomness");
    let mut rng = Rng::new(seed);
    let mut cases = Vec::new();
    {
        let engine = open_engine(&dir.path().join("data"), &clock, &key);
        demo::build_org(&engine).expect("the demo chart");
        run_random_commands(&engine, &clock, &mut rng, 300, &mut cases);
    }
    let exe = std::env::current_exe().expect("own path");
    for round in 0..rounds {
        let mut process = Command::new(&exe)
            .env(CHILD, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the child");
        std::thread::sleep(Duration::from_millis(10 + rng.below(250) as u64));
        process.kill().expect("SIGKILL");
        let status = process.wait().expect("reap");
        assert!(!status.success(), "round {round}: the child was killed");
        // The history grows between kills, so the next child has new events to catch up on.
        let engine = open_engine(&dir.path().join("data"), &clock, &key);
        let commands = 20 + rng.below(60);
        run_random_commands(&engine, &clock, &mut rng, commands, &mut cases);
    }
    let log = SledLog::open(dir.path().join("data").join("log")).expect("log");
    let definitions = Arc::new(civicflow::core::domain::workflow::DefinitionRegistry::built_in());
    let survived = Arc::new(SledReadModels::open(dir.path().join("readmodels")).expect("store"));
    run_to_head(
        &(Arc::new(log.clone()) as Arc<dyn EventStore>),
        survived.clone(),
        &definitions,
        512,
    );
    let rebuilt = Arc::new(SledReadModels::open(dir.path().join("rebuilt")).expect("store"));
    run_to_head(
        &(Arc::new(log.clone()) as Arc<dyn EventStore>),
        rebuilt.clone(),
        &definitions,
        512,
    );
    let (a, b) = (snapshot(&survived), snapshot(&rebuilt));
    for ((name, rows_a), (_, rows_b)) in a.iter().zip(&b) {
        assert_eq!(
            rows_a.len(),
            rows_b.len(),
            "model {name}: the killed-and-resumed rows differ in number from a rebuild"
        );
        assert!(
            rows_a == rows_b,
            "model {name}: the killed-and-resumed rows differ from a rebuild"
        );
    }
    let events = log.head().map_or(0, |h| h.position.get());
    println!(
        "projections_crash: ok: {rounds} kills over {events} events; every model equals a rebuild"
    );
}
