//! Limits and faults of the service: per-token rate limits (429 with `Retry-After`, one
//! token's bucket never throttles another, the default lets a busy client through), and the
//! Authorization header never reaching the logs, whatever the header holds and however the
//! request arrives. (A handler's panic becoming a 500 is tested in the service crate's
//! `layers` module, which can add a panicking route behind the real layers.)
//!
//! The log test installs a global `tracing` subscriber that captures every line of its
//! process at TRACE, so it runs alone in a process of its own (`common::alone`): in the
//! shared test binary that subscriber would capture every other test's logs as well (and
//! slow them all down), and its checks would read their lines as its own.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::common::alone;
use crate::common::service::DemoService;
use crate::common::socket::{self, Served};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use civicflow::core::vault::MasterKey;
use civicflow::http::{RateLimit, ServiceConfig};
use tower::ServiceExt;

/// A cheap route any valid token may call.
const ROUTE: &str = "/api/v1/workflows";

#[tokio::test]
async fn a_token_over_its_limit_gets_429_with_retry_after_and_other_tokens_do_not() {
    // One request every two seconds after a burst of five: slow enough that the five quick
    // requests below cannot earn a sixth on even a very slow machine.
    let demo = DemoService::start_with("http-limits-rate", |config| {
        config.rate_limit = RateLimit {
            per_second: 0.5,
            burst: 5.0,
        };
    });
    let busy = format!("Bearer {}", demo.token("li.grid1"));
    let other = format!("Bearer {}", demo.token("zhao.grid2"));
    let call = |authorization: &str| {
        let authorization = authorization.to_owned();
        let demo = &demo;
        async move {
            demo.call_with_headers(Method::GET, ROUTE, &[("authorization", &authorization)])
                .await
        }
    };

    for n in 1..=5 {
        let (status, _, body) = call(&busy).await;
        assert_eq!(status, StatusCode::OK, "request {n} of the burst: {body}");
    }
    let (status, headers, body) = call(&busy).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "the sixth: {body}");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    let retry_after: u64 = headers
        .get(header::RETRY_AFTER)
        .expect("a Retry-After header on a 429")
        .to_str()
        .expect("text")
        .parse()
        .expect("whole seconds");
    assert!(
        (1..=2).contains(&retry_after),
        "one request every 2 s: Retry-After {retry_after}"
    );

    // The same moment, another token: its own full bucket.
    for n in 1..=5 {
        let (status, _, body) = call(&other).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the other token, request {n}: {body}"
        );
    }
    let (status, _, body) = call(&busy).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the busy token is still empty: {body}"
    );

    // Coming back when Retry-After says works (a little slack for the clock's granularity;
    // far less than the whole second a truncated Retry-After would be short by).
    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(100)).await;
    let (status, _, body) = call(&busy).await;
    assert_eq!(status, StatusCode::OK, "after Retry-After: {body}");
    // One request was earned, not a new burst.
    let (status, _, body) = call(&busy).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
}

#[tokio::test]
async fn the_default_limit_lets_one_busy_client_make_800_requests_at_once() {
    let key = MasterKey::generate().expect("randomness");
    let defaults = ServiceConfig::new("unused", key).rate_limit;
    assert_eq!(defaults, RateLimit::default(), "the service's default");
    assert!(
        defaults.burst >= 800.0,
        "the default burst is {}",
        defaults.burst
    );

    let demo = DemoService::start("http-limits-default");
    let authorization = format!("Bearer {}", demo.token("li.grid1"));
    let router = demo.service.router();
    // Eight connections' worth of requests, interleaved, with one token.
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let router = router.clone();
        let authorization = authorization.clone();
        workers.spawn(async move {
            let mut statuses = Vec::with_capacity(100);
            for _ in 0..100 {
                let request = Request::get(ROUTE)
                    .header(header::AUTHORIZATION, &authorization)
                    .body(Body::empty())
                    .expect("request");
                let response = router.clone().oneshot(request).await.expect("answer");
                statuses.push(response.status());
            }
            statuses
        });
    }
    let mut answered = 0;
    while let Some(statuses) = workers.join_next().await {
        for status in statuses.expect("a worker") {
            assert_eq!(status, StatusCode::OK, "after {answered} requests");
            answered += 1;
        }
    }
    assert_eq!(answered, 800);
}

// ---------------------------------------------------------------------------------------------
// The Authorization header and the logs

/// Everything every subscriber of this process logs, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs, once for this process, a global subscriber at TRACE for every target (hyper,
/// axum, tower_http, the embedded store through `log`, the service) writing into memory.
/// Only in the process of its own that the test below runs in (`common::alone`).
fn captured_logs() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("the only global subscriber of this process");
        captured
    })
}

/// How many request lines for `route` the log holds.
fn request_lines(logs: &str, route: &str) -> usize {
    let field = format!("route={route} ");
    logs.lines()
        .filter(|line| line.contains(" request ") && line.contains(&field))
        .count()
}

#[tokio::test]
async fn the_authorization_header_never_reaches_the_logs() {
    // A global subscriber at TRACE would capture (and slow down) every test running beside
    // this one, and reads their log lines as this test's: the test runs alone.
    if !alone::in_own_process(
        module_path!(),
        "the_authorization_header_never_reaches_the_logs",
    ) {
        return;
    }
    let logs = captured_logs();
    let demo = DemoService::start("http-limits-logs");
    let valid = demo.token("li.grid1").to_owned();
    // A well-formed token nobody issued, and a password in a Basic header.
    let unknown = format!("cft_{}", "5a".repeat(32));
    let basic = "dXNlcjpodW50ZXIy"; // user:hunter2
    let headers: Vec<(String, StatusCode)> = vec![
        (format!("Bearer {valid}"), StatusCode::OK),
        (format!("bearer {valid}"), StatusCode::OK),
        (format!("Bearer {unknown}"), StatusCode::UNAUTHORIZED),
        (
            format!("Bearer {valid} {unknown}"),
            StatusCode::UNAUTHORIZED,
        ),
        (format!("Token {valid}"), StatusCode::UNAUTHORIZED),
        (valid.clone(), StatusCode::UNAUTHORIZED),
        (format!("Basic {basic}"), StatusCode::UNAUTHORIZED),
        ("Bearer".to_owned(), StatusCode::UNAUTHORIZED),
        // Not text (bytes over 0x7f): the header cannot even be read as a string.
        (format!("Bearer {valid}é"), StatusCode::UNAUTHORIZED),
    ];
    let route = "/api/v1/units";

    // In-process.
    for (authorization, expected) in &headers {
        let (status, _, body) = demo
            .call_with_headers(Method::GET, route, &[("authorization", authorization)])
            .await;
        assert_eq!(status, *expected, "{authorization:?}: {body}");
    }
    // The header on public and unknown routes too (nothing reads it there).
    for path in ["/healthz", "/nowhere"] {
        demo.call_with_headers(
            Method::GET,
            path,
            &[("authorization", &format!("Bearer {valid}"))],
        )
        .await;
    }
    let in_process = request_lines(&logs.text(), route);
    assert!(
        in_process >= headers.len(),
        "a request line for each in-process request ({in_process}):\n{}",
        logs.text()
    );

    // On a real socket, through hyper.
    let served = Served::start(demo).await;
    for (authorization, expected) in &headers {
        let response = socket::request(
            served.addr,
            "GET",
            route,
            &[("Authorization".to_owned(), authorization.clone())],
            None,
        )
        .await
        .expect("a response");
        assert_eq!(
            response.status,
            expected.as_u16(),
            "{authorization:?} on the socket: {}",
            String::from_utf8_lossy(&response.body)
        );
    }
    served
        .shutdown(Duration::from_secs(10))
        .await
        .expect("a clean shutdown");

    let text = logs.text();
    let total = request_lines(&text, route);
    assert!(
        total >= in_process + headers.len(),
        "a request line for each request on the socket ({total} in all):\n{text}"
    );
    assert!(text.contains("status=401") && text.contains("status=200"));
    for secret in [
        valid.as_str(),
        &valid[4..],
        unknown.as_str(),
        &unknown[4..],
        basic,
    ] {
        assert!(
            !text.contains(secret),
            "a secret in the logs: {}",
            text.lines()
                .find(|l| l.contains(secret))
                .unwrap_or_default()
        );
    }
    assert!(
        !text.to_ascii_lowercase().contains("bearer"),
        "an Authorization header in the logs: {}",
        text.lines()
            .find(|l| l.to_ascii_lowercase().contains("bearer"))
            .unwrap_or_default()
    );
    assert!(
        !text.contains("cft_"),
        "a token (of any test here) in the logs: {}",
        text.lines()
            .find(|l| l.contains("cft_"))
            .unwrap_or_default()
    );
}
