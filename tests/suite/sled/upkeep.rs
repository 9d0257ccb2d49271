//! The log's upkeep failing, seen from outside: a seal that cannot write its file (a file
//! stands where the segments' directory goes) is reported by `GET /readyz`'s `upkeep` and by
//! `civicflow_log_upkeep_failing` in `/metrics`, while the service stays ready and writable.
//! Guards against a sealer that fails silently: the log would keep its whole history in sled
//! and its memory would grow back with it (decision 0013). That the report clears once a seal
//! succeeds is the core's `a_failing_seal_is_reported_…` (`sled/log/seal.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use civicflow::core::calendar::Zone;
use civicflow::core::engine::{Engine, EngineConfig, Storage};
use civicflow::core::vault::{MasterKey, Vault};
use civicflow::core::{ManualClock, SledLogConfig};
use civicflow::demo;
use civicflow::http::{Service, ServiceConfig};
use serde_json::Value;
use tower::ServiceExt;

use crate::common::TempDir;

async fn get(service: &Service, path: &str) -> (StatusCode, Vec<u8>) {
    let request = Request::builder()
        .uri(path)
        .body(Body::empty())
        .expect("a request");
    let response = service.router().oneshot(request).await.expect("an answer");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the body");
    (status, body.to_vec())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seal_that_cannot_write_is_reported_by_readyz_and_metrics_and_the_service_stays_ready() {
    let dir = TempDir::new("upkeep");
    let key = MasterKey::generate().expect("randomness");
    let clock = ManualClock::new(demo::START);
    let log_dir = dir.path().join("log");
    // A seal every 64 events (the demo writes hundreds), the segments' directory blocked.
    let log = SledLogConfig::new(&log_dir)
        .clock(Arc::new(clock.clone()))
        .index_flush_events(16)
        .seal_after_events(64)
        .open()
        .expect("the log opens");
    std::fs::write(log_dir.join("sealed"), b"in the way").expect("a file in the way");
    let vault = Vault::open(dir.path().join("vault"), key.clone()).expect("the vault opens");
    let engine = Arc::new(
        Engine::open(
            EngineConfig::new(dir.path())
                .clock(Arc::new(clock.clone()))
                .master_key(key.clone())
                .time_zone(Zone::shanghai())
                .storage(Storage {
                    log: Arc::new(log),
                    vault,
                }),
        )
        .expect("the engine opens"),
    );
    demo::build_org(&engine).expect("demo org");
    demo::run_loops(&engine, &clock).expect("the demo's loops run: the log takes writes");
    let service =
        Service::with_engine(engine, ServiceConfig::new(dir.path(), key)).expect("service");

    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        let (status, body) = get(&service, "/readyz").await;
        let answer: Value = serde_json::from_slice(&body).expect("JSON");
        if status == StatusCode::OK && !answer["upkeep"].is_null() {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "no upkeep failure reported: {status} {answer}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["log"], "writable", "{ready}");
    let upkeep = ready["upkeep"].as_str().expect("a reason");
    assert!(
        upkeep.starts_with("sealing failed: ")
            && upkeep.contains("writing sealed segment 0 in ")
            && upkeep.contains("File exists"),
        "{upkeep}"
    );

    let (status, body) = get(&service, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body).expect("text");
    assert!(
        text.lines().any(|l| l == "civicflow_log_upkeep_failing 1"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l == "civicflow_log_sealed_segments 0"),
        "{text}"
    );
}
