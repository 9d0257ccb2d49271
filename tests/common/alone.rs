//! A test alone in a process of its own, for a test that must change what is global to its
//! process (a global `tracing` subscriber): the tests of a test binary share one process, and
//! such a change would reach every test running beside it, or be refused because an earlier
//! test made it first.

use std::process::Command;

/// Set in the child's environment to the full name of the one test it runs.
const ALONE_ENV: &str = "CIVICFLOW_TEST_ALONE";

/// Runs the calling test alone in a child process of this test binary, and says whether the
/// caller is that child.
///
/// `module` is the caller's `module_path!()` and `function` its name. In the test binary's
/// own process this runs the binary again with only that test (`--exact`, one thread), waits,
/// prints the child's output, panics unless exactly that one test ran and passed, and returns
/// `false`: the caller returns. In the child it returns `true`: the caller goes on with the
/// test's body.
pub fn in_own_process(module: &str, function: &str) -> bool {
    // `module_path!()` starts with the crate (`suite::http_limits`); the harness names tests
    // without it (`http_limits::the_test`).
    let name = match module.split_once("::") {
        Some((_, path)) => format!("{path}::{function}"),
        None => function.to_owned(),
    };
    if std::env::var_os(ALONE_ENV).is_some_and(|v| v == name.as_str()) {
        return true;
    }
    let binary = std::env::current_exe().expect("the test binary's path");
    let output = Command::new(&binary)
        .args([name.as_str(), "--exact", "--test-threads=1", "--nocapture"])
        .env(ALONE_ENV, &name)
        .output()
        .expect("the test binary runs again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(
        output.status.success() && stdout.contains("test result: ok. 1 passed;"),
        "{name}, run alone in a process of its own ({}), did not pass as the one test run \
         ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        binary.display(),
        output.status
    );
    false
}
