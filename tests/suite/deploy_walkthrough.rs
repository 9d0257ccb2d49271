//! `docs/deploy.md`, run as written against the real binary: every `sh` block of the page in
//! order, in one scratch directory with the `civicflow` binary on `PATH`. The first block
//! founds a store with `civicflow init`; the test then starts `civicflow serve` on it (the
//! page's "Run it" step) and runs the org chart, the workflow and the case blocks against it
//! (the address substituted, `curl -sf` so that an HTTP error fails the script); after a
//! graceful stop, the deployment-file block founds a second store from one file and applies
//! the same file again, which must change nothing.
//!
//! Guards against a walkthrough that no longer works: a route, a body, a rule or a command
//! that changed under the page. Needs `curl` and `jq` (`.ci/run` installs them).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::serve::{Launch, ServeProcess};
use crate::common::TempDir;

/// The `sh` blocks of docs/deploy.md, in order.
fn blocks() -> Vec<String> {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/deploy.md"))
        .expect("docs/deploy.md");
    let mut blocks = Vec::new();
    let mut rest = page.as_str();
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + "```sh\n".len()..];
        let close = body.find("\n```").expect("the block ends");
        blocks.push(body[..close].to_owned());
        rest = &body[close + 4..];
    }
    blocks
}

/// Runs `script` with bash in `dir`, with the binary's directory first on `PATH`.
fn run(dir: &Path, script: &str) -> String {
    let binary = Path::new(env!("CARGO_BIN_EXE_civicflow"));
    let path = format!(
        "{}:{}",
        binary.parent().expect("the binary's directory").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "a block of docs/deploy.md failed:\n{script}\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn the_deploy_walkthrough_runs_as_written() {
    for tool in ["curl", "jq", "bash"] {
        assert!(
            Command::new(tool).arg("--version").output().is_ok(),
            "{tool} is needed for this test (.ci/run installs it)"
        );
    }
    let blocks = blocks();
    assert_eq!(
        blocks.len(),
        5,
        "found, org chart, workflow, case, deployment file"
    );
    let dir = TempDir::new("deploy-walkthrough");
    std::fs::create_dir_all(dir.path()).expect("a scratch directory");

    // 1. Found the store.
    run(dir.path(), &blocks[0]);
    let read_admin = "ADMIN=$(jq -r .token first-admin.json)";
    assert!(blocks[0].contains(read_admin), "{}", blocks[0]);

    // 2. Run it.
    let mut server = ServeProcess::start(&dir.path().join("lotus"), Launch::default());
    server.wait_ready(Duration::from_secs(60)).await;
    let addr = server.addr().to_string();

    // 3-5. The org chart, the workflow, a request handled to its end: one shell, as a reader
    // at one terminal runs them.
    let script = format!("{read_admin}\n{}\n{}\n{}", blocks[1], blocks[2], blocks[3])
        .replace("localhost:8080", &addr)
        .replace("curl -s ", "curl -sf ");
    let out = run(dir.path(), &script);
    for unit in [
        "lotus-grid-1",
        "lotus-grid-2",
        "yinhe-plaza",
        "yinhe-101",
        "yinhe-102",
    ] {
        assert!(out.contains(unit), "{unit} is not in the chart:\n{out}");
    }
    assert!(out.contains(r#""changed":true"#), "{out}");
    assert!(out.contains(r#""status": "closed""#), "{out}");
    assert!(out.contains(r#""intact": true"#), "{out}");
    assert!(
        out.contains("zhao.electrician (street_electrician)"),
        "{out}"
    );
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");

    // 6. The deployment file: founded from it, then applied again without a change.
    let out = run(dir.path(), &blocks[4]);
    let runs: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&out)
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("two JSON objects");
    assert_eq!(runs.len(), 2, "{out}");
    assert_eq!(runs[0]["founded"], true, "{out}");
    assert!(runs[0]["changes"].as_u64().is_some_and(|n| n > 0), "{out}");
    assert_eq!(runs[1]["founded"], false, "{out}");
    assert_eq!(runs[1]["changes"], 0, "{out}");
}
