//! `civicflow serve --store postgres://…`: two real service processes on one real database.
//! The demo loads once; a token issued through one instance works on the other; a case
//! opened through one is readable through the other within a second; `/readyz` reports the
//! database, and a database that goes away answers 503 with the reason and recovers by itself.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::serve::{Launch, ServeProcess};
use crate::common::socket;
use crate::common::TempDir;
use civicflow_postgres::testing::Cluster;

fn bearer(token: &str) -> Vec<(String, String)> {
    vec![("Authorization".to_owned(), format!("Bearer {token}"))]
}

/// One JSON request; the status and the body (`null` when it is not JSON).
async fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let bytes = body.map(|b| serde_json::to_vec(b).expect("JSON"));
    let response = socket::request(
        addr,
        method,
        path,
        &bearer(token),
        bytes.as_deref().map(|b| ("application/json", b)),
    )
    .await
    .expect("an answer");
    let value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response.status, value)
}

/// The demo token of `role` at `unit`, from an instance's `demo-tokens.json`.
fn demo_token(data: &Path, role: &str, unit: &str) -> String {
    let text = std::fs::read_to_string(data.join("demo-tokens.json")).expect("demo tokens");
    let all: Value = serde_json::from_str(&text).expect("JSON");
    all.as_array()
        .expect("a list")
        .iter()
        .find(|t| t["role"] == role && t["unit_id"] == unit)
        .and_then(|t| t["token"].as_str())
        .unwrap_or_else(|| panic!("no {role} token at {unit}"))
        .to_owned()
}

/// Starts an instance on `url` with its own data directory and the shared key file.
fn instance(data: &Path, url: &str, key_file: &Path, demo: bool) -> ServeProcess {
    ServeProcess::start(
        data,
        Launch {
            demo,
            args: vec![
                "--store",
                url,
                "--key-file",
                key_file.to_str().expect("UTF-8 path"),
            ],
            ..Launch::default()
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_log_tokens_and_cases() {
    let cluster = Cluster::shared();
    let url = cluster.fresh_store_url();
    let (dir_a, dir_b) = (TempDir::new("pg-serve-a"), TempDir::new("pg-serve-b"));
    let key_file = dir_a.path().join("master.key");

    // The first instance loads the demo into the empty database and writes its tokens.
    let mut a = instance(dir_a.path(), &url, &key_file, true);
    a.wait_ready(Duration::from_secs(120)).await;
    assert!(
        a.stderr().contains("loading the Tonghui demo"),
        "{}",
        a.stderr()
    );
    let grid = demo_token(dir_a.path(), "grid_worker", "grid-1");
    let admin = demo_token(dir_a.path(), "community_admin", "tonghui");

    // The second, with --demo too, finds the database not empty and loads nothing again.
    let mut b = instance(dir_b.path(), &url, &key_file, true);
    b.wait_ready(Duration::from_secs(120)).await;
    assert!(
        b.stderr()
            .contains("is not empty; the demo is not loaded again"),
        "{}",
        b.stderr()
    );
    assert!(!dir_b.path().join("demo-tokens.json").exists());
    let (addr_a, addr_b) = (a.addr(), b.addr());

    // /readyz names the log's state on both.
    for addr in [addr_a, addr_b] {
        let ready = socket::request(addr, "GET", "/readyz", &[], None)
            .await
            .expect("answer");
        assert_eq!(ready.status, 200);
        let body: Value = serde_json::from_slice(&ready.body).expect("JSON");
        assert_eq!(body["log"], "writable", "{body}");
    }

    // A token issued through A works on B at once (it is an event in the shared log).
    let (status, issued) = call(
        addr_a,
        "POST",
        "/api/v1/tokens",
        &admin,
        Some(&json!({"actor": "li.grid1", "role": "grid_worker", "unit_id": "grid-1", "name": "tablet issued through A"})),
    )
    .await;
    assert_eq!(status, 201, "{issued}");
    let fresh_token = issued["token"].as_str().expect("a secret").to_owned();
    let (status, body) = call(addr_b, "GET", "/api/v1/cases?limit=1", &fresh_token, None).await;
    assert_eq!(status, 200, "a token issued on A works on B: {body}");

    // A case opened through A is readable through B within a second.
    let (status, opened) = call(
        addr_a,
        "POST",
        "/api/v1/cases",
        &grid,
        Some(&json!({
            "workflow": "service-request",
            "unit_id": "grid-1",
            "title": "streetlight out, opened through A",
            "fields": {"category": "public_facilities"},
        })),
    )
    .await;
    assert!(status == 201 || status == 200, "{status} {opened}");
    let id = opened["id"].as_str().expect("an id").to_owned();
    let acknowledged = Instant::now();
    let seen = loop {
        let (status, body) = call(addr_b, "GET", &format!("/api/v1/cases/{id}"), &grid, None).await;
        if status == 200 {
            break body;
        }
        assert!(
            acknowledged.elapsed() < Duration::from_secs(1),
            "the case opened through A was not readable through B within a second (last: {status} {body})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(seen["title"], "streetlight out, opened through A");

    // An action through B on the case A opened, read back through A.
    let (status, _) = call(
        addr_b,
        "GET",
        &format!("/api/v1/cases/{id}/audit"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200);

    let (status, _) = a.stop();
    assert!(status.success());
    let (status, _) = b.stop();
    assert!(status.success());
    cluster.drop_store(&url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_goes_away_answers_503_with_the_reason_and_recovers_by_itself() {
    // A cluster of this test's own: it is stopped and started again.
    let cluster = Cluster::start();
    let url = cluster.fresh_store_url();
    let dir = TempDir::new("pg-serve-outage");
    let key_file = dir.path().join("master.key");
    let mut server = instance(dir.path(), &url, &key_file, true);
    server.wait_ready(Duration::from_secs(120)).await;
    let addr = server.addr();
    let grid = demo_token(dir.path(), "grid_worker", "grid-1");
    let open = |title: &str| {
        json!({
            "workflow": "service-request",
            "unit_id": "grid-1",
            "title": title,
            "fields": {"category": "public_facilities"},
        })
    };
    let (status, before) = call(
        addr,
        "POST",
        "/api/v1/cases",
        &grid,
        Some(&open("before the outage")),
    )
    .await;
    assert!(status == 201 || status == 200, "{status} {before}");

    cluster.stop();
    // Readiness says why.
    let ready = socket::request(addr, "GET", "/readyz", &[], None)
        .await
        .expect("an answer while the database is down");
    assert_eq!(ready.status, 503);
    let body: Value = serde_json::from_slice(&ready.body).expect("JSON");
    assert!(
        body["log"]
            .as_str()
            .unwrap_or("")
            .starts_with("database unreachable"),
        "{body}"
    );
    // A write answers 503 with the reason, not a hang and not a 500.
    let started = Instant::now();
    let (status, refused) = call(
        addr,
        "POST",
        "/api/v1/cases",
        &grid,
        Some(&open("during the outage")),
    )
    .await;
    assert_eq!(status, 503, "{refused}");
    assert!(refused.to_string().contains("database"), "{refused}");
    assert!(started.elapsed() < Duration::from_secs(60));

    cluster.start_again();
    // It recovers by itself: the same process writes and reads again.
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let (status, body) = call(
            addr,
            "POST",
            "/api/v1/cases",
            &grid,
            Some(&open("after the outage")),
        )
        .await;
        if status == 201 || status == 200 {
            break body;
        }
        assert!(Instant::now() < deadline, "not recovered: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let id = after["id"].as_str().expect("an id");
    let (status, _) = call(addr, "GET", &format!("/api/v1/cases/{id}"), &grid, None).await;
    assert_eq!(status, 200);
    // What was acknowledged before the outage is still there.
    let before_id = before["id"].as_str().expect("an id");
    let (status, _) = call(
        addr,
        "GET",
        &format!("/api/v1/cases/{before_id}"),
        &grid,
        None,
    )
    .await;
    assert_eq!(status, 200);
    server.wait_ready(Duration::from_secs(30)).await;
    let (status, _) = server.stop();
    assert!(status.success());
}
