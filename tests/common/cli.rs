//! The `civicflow` command run as a user runs it, and the stopped demo store its offline
//! tools work on.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use civicflow::core::engine::{Engine, EngineConfig};
use civicflow::core::vault::MasterKey;
use civicflow::core::ManualClock;
use civicflow::demo::{self, DemoRun};

/// Runs `civicflow ARGS` (no `CIVICFLOW_MASTER_KEY`: the key file in the data directory):
/// its exit code (`None`: killed by a signal), stdout and stderr.
pub fn civicflow_status(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_civicflow"))
        .args(args)
        .env_remove("CIVICFLOW_MASTER_KEY")
        .output()
        .expect("the civicflow binary runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// [`civicflow_status`] of a run that must end by itself (not by a signal).
pub fn civicflow(args: &[&str]) -> (i32, String, String) {
    let (code, stdout, stderr) = civicflow_status(args);
    (code.expect("exited normally"), stdout, stderr)
}

/// A path as a command-line argument.
pub fn path(dir: &Path) -> &str {
    dir.to_str().expect("utf-8 path")
}

/// A stopped store in `dir` with the Tonghui demo, its master key in `DIR/master.key`, as
/// `civicflow serve --demo` leaves it (without the read models and tokens).
pub fn demo_store(dir: &Path) -> DemoRun {
    let key = MasterKey::load_or_create(dir.join("master.key")).expect("key");
    let clock = ManualClock::new(demo::START);
    let engine = Engine::open(
        EngineConfig::new(dir)
            .clock(Arc::new(clock.clone()))
            .master_key(key),
    )
    .expect("open");
    demo::build_org(&engine).expect("org");
    let run = demo::run_loops(&engine, &clock).expect("loops");
    drop(engine);
    run
}
