//! The dashboard in a real browser (issue 16): the real `civicflow serve --demo` binary on a
//! loopback port of its own, Debian's Chromium driven by playwright-core through
//! `tests/browser/run.mjs`, every flow of `tests/browser/flows/` (signing in as each kind of
//! actor, scopes, a case around its whole loop through the forms, a live update, a forged
//! cross-site form, directives, reports, administration), axe-core on every page checked.
//!
//! It fails, never skips, when Chromium or Node.js is missing, and says how to install them;
//! the npm packages pinned in `tests/browser/package-lock.json` it installs itself (`npm ci`)
//! when `node_modules` is missing or older than the lock file. Screenshots and the metrics
//! (page weights, the live update's delay) go to `target/dashboard-browser/` (or
//! `CIVICFLOW_BROWSER_OUT`); `CIVICFLOW_BROWSER_ONLY=name` runs one flow.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::serve::{Launch, ServeProcess};
use crate::common::TempDir;

/// Where the browser tests live.
fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Chromium, as Debian installs it (or `CIVICFLOW_CHROMIUM`).
fn chromium() -> PathBuf {
    std::env::var_os("CIVICFLOW_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// `npm ci` in `tests/browser` when its packages are missing or older than the lock file.
fn install_packages(dir: &Path) {
    let installed = dir.join("node_modules/.package-lock.json");
    let lock = dir.join("package-lock.json");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let fresh = matches!((modified(&installed), modified(&lock)), (Some(i), Some(l)) if i >= l);
    if fresh {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .unwrap_or_else(|e| {
            panic!("npm is needed for the browser tests ({e}): apt-get install nodejs npm")
        });
    assert!(
        status.success(),
        "npm ci in {} failed: {status}",
        dir.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser() {
    let chromium = chromium();
    assert!(
        chromium.exists(),
        "the browser tests need Debian's Chromium at {} (apt-get install chromium chromium-driver), or CIVICFLOW_CHROMIUM naming another",
        chromium.display()
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "the browser tests need Node.js 20 or later (apt-get install nodejs npm): {node:?}"
    );
    let dir = browser_dir();
    install_packages(&dir);

    let data = TempDir::new("dashboard-browser");
    let mut server = ServeProcess::start(
        &data.path().join("data"),
        Launch {
            demo: true,
            // Every flow signs in from this one address many times; the per-address limit is
            // tested elsewhere (`http_limits`).
            args: vec!["--address-rate-limit", "100000"],
            ..Launch::default()
        },
    );
    server.wait_ready(Duration::from_secs(120)).await;
    let addr = server.addr();

    let out = std::env::var_os("CIVICFLOW_BROWSER_OUT").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-browser"),
        PathBuf::from,
    );
    let mut command = Command::new("node");
    command
        .arg(dir.join("run.mjs"))
        .args(["--base", &format!("http://{addr}")])
        .arg("--tokens")
        .arg(data.path().join("data/demo-tokens.json"))
        .arg("--out")
        .arg(&out)
        .env("CIVICFLOW_CHROMIUM", &chromium);
    if let Some(only) = std::env::var_os("CIVICFLOW_BROWSER_ONLY") {
        command.arg("--only").arg(only);
    }
    let run = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the browser run joins")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    println!("{stdout}");
    let (status, server_log) = server.stop();
    crate::common::serve::assert_no_panic(&server_log, "the service under the browser tests");
    assert!(
        run.status.success(),
        "the browser flows failed ({}):\n{stdout}\n{stderr}\nthe server said:\n{server_log}\nscreenshots in {}",
        run.status,
        out.display()
    );
    assert!(
        status.success(),
        "the server did not stop cleanly: {status}\n{server_log}"
    );
}
