//! Read models built incrementally, with the runner stopped and restarted at random points and
//! random batch sizes while the history grows, are exactly the read models a rebuild from
//! scratch produces.
//!
//! Guards against projections whose result depends on how the log was cut into batches or
//! where the runner restarted: an effect applied twice or lost at a restart, a checkpoint off
//! by one, state kept in memory across batches, a row written under a key that depends on the
//! batch. (Crashes with SIGKILL are `tests/projections_crash.rs`.)
//!
//! By default 6 cases; `CIVICFLOW_PROPTEST_CASES=50` runs more.

use civicflow::core::SledReadModels;
use std::sync::Arc;
use std::time::Duration;

use crate::common::history::{open_engine, run_random_commands, Rng};
use crate::common::readmodels::{run_to_head, snapshot};
use crate::common::TempDir;
use civicflow::core::vault::MasterKey;
use civicflow::core::ManualClock;
use civicflow::demo;
use civicflow::projections::{models, Runner, RunnerOptions};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn case(seed: u64, chunks: &[(usize, u64, usize, usize)]) -> Result<(), TestCaseError> {
    let dir = TempDir::new("projections-equivalence");
    let clock = ManualClock::new(demo::START);
    let key = MasterKey::generate().expect("randomness");
    let engine = open_engine(&dir.path().join("data"), &clock, &key);
    demo::build_org(&engine).expect("the demo chart");
    let definitions = engine.definitions().clone();
    let log = engine.log().clone();
    let mut rng = Rng::new(seed);
    let mut cases = Vec::new();

    // Incremental: the history grows in chunks; after each, the runner runs for a random
    // while with a random batch size and a random bound on the rows it keeps in memory (small
    // bounds make it forget rows and read them back), and is stopped wherever it is.
    let incremental =
        Arc::new(SledReadModels::open(dir.path().join("incremental")).expect("store"));
    for &(commands, run_ms, batch, rows) in chunks {
        run_random_commands(&engine, &clock, &mut rng, commands, &mut cases);
        let runner = Runner::start(
            log.clone(),
            incremental.clone(),
            models::all(
                definitions.clone(),
                civicflow::core::calendar::Zone::shanghai(),
            ),
            RunnerOptions {
                batch_events_max: batch,
                rows_in_memory_max: rows,
                idle_wait: Duration::from_millis(2),
                ..RunnerOptions::default()
            },
        )
        .expect("start");
        std::thread::sleep(Duration::from_millis(run_ms));
        for status in runner.status() {
            prop_assert!(
                !matches!(status.phase, civicflow::projections::Phase::Failed { .. }),
                "{status:?}"
            );
        }
        drop(runner);
    }
    run_to_head(&log, incremental.clone(), &definitions, 17);

    // From scratch, in one go with big batches.
    let rebuilt = Arc::new(SledReadModels::open(dir.path().join("rebuilt")).expect("store"));
    run_to_head(&log, rebuilt.clone(), &definitions, 8192);

    let a = snapshot(&incremental);
    let b = snapshot(&rebuilt);
    for ((name, rows_a), (_, rows_b)) in a.iter().zip(&b) {
        prop_assert_eq!(
            rows_a.len(),
            rows_b.len(),
            "model {} has a different number of rows",
            name
        );
        for (row_a, row_b) in rows_a.iter().zip(rows_b) {
            prop_assert_eq!(row_a, row_b, "model {} differs", name);
        }
    }
    Ok(())
}

#[test]
fn incremental_read_models_with_restarts_equal_a_rebuild() {
    let cases = std::env::var("CIVICFLOW_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        any::<u64>(),
        proptest::collection::vec((5usize..60, 0u64..15, 1usize..40, 1usize..300), 1..5),
    );
    runner
        .run(&strategy, |(seed, chunks)| case(seed, &chunks))
        .expect("incremental equals rebuild");
}
