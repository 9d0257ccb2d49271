//! The README's quickstart, run as written against the real binary: `civicflow serve --demo`
//! on a fresh store, every curl command of the quickstart (with the address and the data
//! directory substituted, and `-f` so that an HTTP error fails), then SIGTERM: the server
//! must stop gracefully and exit 0.
//!
//! Needs `curl` and `jq` (`.ci/run` installs them when missing).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::serve::{Launch, ServeProcess};
use crate::common::TempDir;

/// The quickstart's shell block.
fn quickstart() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find("## Quickstart with curl")
        .expect("a quickstart section");
    let block = &readme[start..];
    let open = block.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let close = block[open..].find("```").expect("the block ends") + open;
    block[open..close].to_owned()
}

#[test]
fn the_readme_quickstart_runs_against_the_demo_service() {
    for tool in ["curl", "jq", "bash"] {
        assert!(
            Command::new(tool).arg("--version").output().is_ok(),
            "{tool} is needed for this test (.ci/run installs it)"
        );
    }
    let dir = TempDir::new("readme");
    let data = dir.path().join("civicflow-data");
    // `civicflow serve --demo --addr 127.0.0.1:0 --data DIR`: on a port it picks (see
    // `common::serve`), with `CIVICFLOW_LOG=warn`.
    let mut server = ServeProcess::start(
        &data,
        Launch {
            demo: true,
            ..Launch::default()
        },
    );
    // Ready when /readyz answers 200.
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = server.wait_listening(Duration::from_secs(60));
    loop {
        let ready = Command::new("curl")
            .args(["-sf", &format!("http://{addr}/readyz")])
            .output()
            .is_ok_and(|o| o.status.success());
        if ready {
            break;
        }
        if let Some(status) = server.try_wait() {
            panic!("the server exited early ({status}): {}", server.stderr());
        }
        assert!(Instant::now() < deadline, "the server never became ready");
        std::thread::sleep(Duration::from_millis(200));
    }

    let script = quickstart()
        .replace("localhost:8080", &addr.to_string())
        .replace("civicflow-data/", &format!("{}/", data.display()))
        .replace("curl -s ", "curl -sf ");
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the quickstart failed:\n{script}\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("\"available_actions\""), "{stdout}");
    assert!(stdout.contains("\"openapi\""), "{stdout}");

    // SIGTERM: a graceful stop, exit 0.
    let pid = server.pid().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(killed.is_ok_and(|s| s.success()), "kill -TERM");
    let (status, stderr) = server.wait_exit(Duration::from_secs(30));
    assert!(
        status.success(),
        "a graceful stop exits 0, not {status}:\n{stderr}"
    );
}
