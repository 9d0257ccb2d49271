//! Limits and faults of the service: per-token rate limits (429 with `Retry-After`, one
//! token's bucket never throttles another, the default lets a busy client through), per-address
//! limits for what no valid token pays for and the client address behind trusted proxies (on a
//! real socket, from several loopback addresses), and the
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

// ---------------------------------------------------------------------------------------------
// Per-address limits, on a real socket (issue 13): what no valid token pays for

use crate::http_connections::{closed_within, connect_from, request_from, Answer};

/// A limit of three at once, then one every two seconds: the quick requests below cannot
/// earn a fourth on even a very slow machine.
fn three_then_slow() -> RateLimit {
    RateLimit {
        per_second: 0.5,
        burst: 3.0,
    }
}

/// A native 429: `rate_limited`, with a whole-second `Retry-After` of one or two seconds.
fn assert_native_429(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 429, "{what}: {}", answer.body);
    let body: serde_json::Value = serde_json::from_str(&answer.body).expect("a JSON error");
    assert_eq!(body["error"]["code"], "rate_limited", "{what}: {body}");
    assert!(body["error"]["message"].is_string(), "{what}: {body}");
    let retry: u64 = answer
        .header("retry-after")
        .unwrap_or_else(|| panic!("{what}: a Retry-After header"))
        .parse()
        .expect("whole seconds");
    assert!((1..=2).contains(&retry), "{what}: Retry-After {retry}");
}

/// An Open311 429 in JSON: `[{"code": 429, "description": …}]`, with `Retry-After`.
fn assert_open311_429(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 429, "{what}: {}", answer.body);
    let body: serde_json::Value = serde_json::from_str(&answer.body).expect("an Open311 list");
    assert_eq!(body[0]["code"], 429, "{what}: {body}");
    assert!(body[0]["description"].is_string(), "{what}: {body}");
    assert!(
        answer.header("retry-after").is_some(),
        "{what}: Retry-After"
    );
}

#[tokio::test]
async fn anonymous_reads_are_limited_per_address_but_health_probes_and_tokens_are_not() {
    let served = Served::start(DemoService::start_with("limits-address-reads", |config| {
        config.address_rate_limit = three_then_slow();
    }))
    .await;
    let addr = served.addr;
    for n in 1..=3 {
        let answer = request_from(2, addr, "GET", "/metrics", &[], None).await;
        assert_eq!(answer.status, 200, "read {n}: {}", answer.body);
    }
    assert_native_429(
        &request_from(2, addr, "GET", "/metrics", &[], None).await,
        "/metrics over the limit",
    );
    // Every anonymous read of the address shares the bucket, answered in the route's format.
    assert_open311_429(
        &request_from(2, addr, "GET", "/open311/v2/services.json", &[], None).await,
        "an Open311 read",
    );
    let xml = request_from(2, addr, "GET", "/open311/v2/requests.xml", &[], None).await;
    assert_eq!(xml.status, 429, "{}", xml.body);
    assert!(xml.body.contains("<code>429</code>"), "{}", xml.body);
    assert_native_429(
        &request_from(2, addr, "GET", "/api/openapi.json", &[], None).await,
        "the OpenAPI document",
    );
    // The health probes are never charged.
    for path in ["/healthz", "/readyz"] {
        let answer = request_from(2, addr, "GET", path, &[], None).await;
        assert_ne!(answer.status, 429, "{path}: {}", answer.body);
    }
    // A valid token from the same address pays with its own bucket.
    let bearer = format!("Bearer {}", served.token("li.grid1"));
    let answer = request_from(
        2,
        addr,
        "GET",
        "/api/v1/workflows",
        &[("Authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    // Another address has its own bucket.
    let answer = request_from(3, addr, "GET", "/open311/v2/services.json", &[], None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    served
        .shutdown(Duration::from_secs(10))
        .await
        .expect("a clean shutdown");
}

#[tokio::test]
async fn unknown_tokens_and_api_keys_are_limited_per_address() {
    let served = Served::start(DemoService::start_with("limits-address-tokens", |config| {
        config.address_rate_limit = three_then_slow();
    }))
    .await;
    let addr = served.addr;
    let unknown = format!("Bearer cft_{}", "5a".repeat(32));
    for n in 1..=3 {
        let answer = request_from(
            4,
            addr,
            "GET",
            "/api/v1/units",
            &[("Authorization", &unknown)],
            None,
        )
        .await;
        assert_eq!(answer.status, 401, "guess {n}: {}", answer.body);
    }
    assert_native_429(
        &request_from(
            4,
            addr,
            "GET",
            "/api/v1/units",
            &[("Authorization", &unknown)],
            None,
        )
        .await,
        "a fourth unknown token",
    );
    // No token, a malformed header: the same bucket.
    assert_native_429(
        &request_from(4, addr, "GET", "/api/v1/units", &[], None).await,
        "no token",
    );
    assert_native_429(
        &request_from(
            4,
            addr,
            "GET",
            "/api/v1/units",
            &[("Authorization", "Basic dXNlcjpodW50ZXIy")],
            None,
        )
        .await,
        "a Basic header",
    );
    // An Open311 filing with an unknown or without an api_key.
    let form = "application/x-www-form-urlencoded";
    let unknown_key = format!(
        "api_key=cft_{}&service_code=x&lat=29.3&long=120.1",
        "5a".repeat(32)
    );
    assert_open311_429(
        &request_from(
            4,
            addr,
            "POST",
            "/open311/v2/requests.json",
            &[],
            Some((form, &unknown_key)),
        )
        .await,
        "an unknown api_key",
    );
    // A valid token from the same address is not throttled by the guesses.
    let bearer = format!("Bearer {}", served.token("li.grid1"));
    let answer = request_from(
        4,
        addr,
        "GET",
        "/api/v1/units",
        &[("Authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    // Another address: an unknown api_key is refused 403 as ever (its own bucket).
    let answer = request_from(
        5,
        addr,
        "POST",
        "/open311/v2/requests.json",
        &[],
        Some((form, "service_code=x&lat=29.3&long=120.1")),
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    served
        .shutdown(Duration::from_secs(10))
        .await
        .expect("a clean shutdown");
}

#[tokio::test]
async fn the_default_address_limit_lets_a_busy_anonymous_reader_through() {
    let key = MasterKey::generate().expect("randomness");
    let config = ServiceConfig::new("unused", key);
    assert!(
        config.address_rate_limit.burst >= 100.0 && config.address_rate_limit.per_second >= 50.0,
        "{:?}",
        config.address_rate_limit
    );
    let served = Served::start(DemoService::start("limits-address-default")).await;
    for n in 1..=100 {
        let answer = request_from(
            6,
            served.addr,
            "GET",
            "/open311/v2/services.json",
            &[],
            None,
        )
        .await;
        assert_eq!(answer.status, 200, "read {n}: {}", answer.body);
    }
    served
        .shutdown(Duration::from_secs(10))
        .await
        .expect("a clean shutdown");
}

// ---------------------------------------------------------------------------------------------
// Behind a trusted proxy (issue 13): X-Forwarded-For names the client only from a trusted peer

#[tokio::test]
async fn forwarded_for_is_the_client_only_behind_a_trusted_proxy() {
    let served = Served::start(DemoService::start_with("limits-proxy", |config| {
        config.address_rate_limit = three_then_slow();
        config.trusted_proxies = vec!["127.0.0.7".parse().expect("an address")];
        config.max_connections_per_address = 2;
        config.header_timeout = Duration::from_secs(120);
    }))
    .await;
    let addr = served.addr;
    let read = |host: u8, forwarded: &'static str| async move {
        request_from(
            host,
            addr,
            "GET",
            "/metrics",
            &[("X-Forwarded-For", forwarded)],
            None,
        )
        .await
    };
    // Through the trusted proxy (127.0.0.7): each client its own bucket.
    for n in 1..=3 {
        let answer = read(7, "203.0.113.1").await;
        assert_eq!(answer.status, 200, "client 1, read {n}: {}", answer.body);
    }
    assert_native_429(&read(7, "203.0.113.1").await, "client 1 over its limit");
    // What the client wrote itself, left of the hop the proxy appended, changes nothing.
    assert_native_429(
        &read(7, "198.51.100.9, 203.0.113.1").await,
        "client 1 naming another address",
    );
    let answer = read(7, "203.0.113.2").await;
    assert_eq!(answer.status, 200, "client 2 has its own: {}", answer.body);

    // From an untrusted peer (127.0.0.8) the header is ignored: a new address in it every time
    // does not buy a new bucket.
    for (n, forwarded) in ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
        .into_iter()
        .enumerate()
    {
        let answer = read(8, forwarded).await;
        assert_eq!(answer.status, 200, "read {n}: {}", answer.body);
    }
    assert_native_429(
        &read(8, "192.0.2.4").await,
        "a spoofed header from an untrusted peer",
    );

    // The per-address connection cap (2) holds for an untrusted peer, not for the proxy,
    // which carries many clients (it still counts in all).
    let mut from_proxy = Vec::new();
    let mut from_other = Vec::new();
    for _ in 0..5 {
        from_proxy.push(connect_from(7, addr).await);
        from_other.push(connect_from(9, addr).await);
    }
    let answer = request_from(1, addr, "GET", "/healthz", &[], None).await;
    assert_eq!(
        answer.status, 200,
        "every idle socket decided: {}",
        answer.body
    );
    let mut proxy_open = 0;
    for stream in &mut from_proxy {
        if !closed_within(stream, Duration::from_millis(200)).await {
            proxy_open += 1;
        }
    }
    let mut other_open = 0;
    for stream in &mut from_other {
        if !closed_within(stream, Duration::from_millis(200)).await {
            other_open += 1;
        }
    }
    assert_eq!(proxy_open, 5, "the trusted proxy is not capped per address");
    assert_eq!(other_open, 2, "an untrusted peer is");
    drop((from_proxy, from_other));
    served
        .shutdown(Duration::from_secs(10))
        .await
        .expect("a clean shutdown");
}
