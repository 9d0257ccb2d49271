//! The layers every route runs behind: the panic catcher, the body limits, and the metrics
//! and log line of each request (never the Authorization header). [`with_layers`] wraps the
//! route table's router in them; tests wrap extra routes the same way.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;

use crate::error::ApiError;
use crate::json;
use crate::open311::errors::Open311Error;
use crate::open311::format::Format;
use crate::open311::BASE_PATH;
use crate::state::AppState;

/// `router` (the route table's, or a test's) with the 404 fallback and the layers.
pub(crate) fn with_layers(router: Router<AppState>, state: &AppState) -> Router {
    router
        .fallback(|| async { ApiError::not_found("route") })
        // Inside `observe`, so that a handler's panic is counted and logged as the 500 it
        // answers (outside it, the panic unwound past `observe` and went unrecorded).
        .layer(CatchPanicLayer::custom(panicked))
        .layer(axum::extract::DefaultBodyLimit::max(json::BODY_MAX_BYTES))
        .layer(RequestBodyLimitLayer::new(json::BODY_MAX_BYTES))
        // Outside the limit layer, which would answer an announced oversized body in plain
        // text; inside `observe`, so the 413 is counted and logged like any answer.
        .layer(middleware::from_fn(refuse_announced_oversize))
        // The request's id (X-Request-Id, traceparent) for the handlers' writes and the
        // answer; inside `observe`, so a refused id is counted like any answer.
        .layer(middleware::from_fn(crate::request_id::with_request_id))
        // Outside everything that can answer an error of axum's own (a 405, a rejection, the
        // limit layer's 413), so no error leaves in another format than the route's.
        .layer(middleware::from_fn(errors_in_route_format))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        // The last resort, for a panic in the layers themselves.
        .layer(CatchPanicLayer::custom(panicked))
        .with_state(state.clone())
}

/// A body whose Content-Length is over the limit, refused before it is read: 413 in the
/// route's own error format (the native JSON error, or an Open311 error under its base path).
/// A body without a Content-Length is cut by the limit layer while it is read, and the
/// extractor answers the same 413.
async fn refuse_announced_oversize(request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if announced.is_none_or(|length| length <= json::BODY_MAX_BYTES as u64) {
        return next.run(request).await;
    }
    let message = format!("the body is over {} bytes", json::BODY_MAX_BYTES);
    let path = request.uri().path();
    if path == BASE_PATH || path.starts_with(&format!("{BASE_PATH}/")) {
        Open311Error::with_status(Format::guess(path), StatusCode::PAYLOAD_TOO_LARGE, message)
            .into_response()
    } else {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message).into_response()
    }
}

/// An error answer that is not in the service's formats (axum's own: a 405 with an empty
/// body, a `text/plain` rejection) rewritten as the route's error: the native JSON error, or
/// an Open311 error under its base path. The status and the headers (`Allow` on a 405) stay;
/// an answer that is JSON or XML already passes untouched, and so does every success.
async fn errors_in_route_format(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    let formatted = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            let value = value.to_ascii_lowercase();
            // A dashboard page's errors are pages (`dashboard/render`).
            value.starts_with("application/json")
                || value.starts_with("text/xml")
                || value.starts_with("text/html")
        });
    if !(status.is_client_error() || status.is_server_error()) || formatted {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let message = if status == StatusCode::METHOD_NOT_ALLOWED {
        let allow = parts
            .headers
            .get(header::ALLOW)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned();
        // axum adds `Allow` outside this layer on some paths: the header then says it.
        if allow.is_empty() {
            format!("this path does not take {method}; the Allow header lists what it takes")
        } else {
            format!("this path takes {allow}, not {method}")
        }
    } else {
        // axum's rejection says what was wrong in a line of text (a few hundred bytes).
        let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&text).trim().to_owned();
        if text.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("the request failed")
                .to_owned()
        } else {
            text
        }
    };
    let rewritten = if path == BASE_PATH || path.starts_with(&format!("{BASE_PATH}/")) {
        Open311Error::with_status(Format::guess(&path), status, message).into_response()
    } else {
        ApiError::new(status, error_code(status), message).into_response()
    };
    let (new_parts, body) = rewritten.into_parts();
    // The new body's type and length; every other header of the original answer stays.
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in &new_parts.headers {
        parts.headers.insert(name.clone(), value.clone());
    }
    Response::from_parts(parts, body)
}

/// The error code of a status that axum answered itself (`docs/service.md`, "Errors").
fn error_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        status if status.is_client_error() => "bad_request",
        _ => "internal",
    }
}

/// A panic, as the client sees it: 500 `internal`.
fn panicked(_: Box<dyn std::any::Any + Send>) -> Response {
    tracing::error!("a handler panicked");
    ApiError::internal("the server hit a bug; the request was not completed").into_response()
}

/// Times every request, records it in the metrics, and logs one line (route, status,
/// latency; never the Authorization header).
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_owned(), |p| p.as_str().to_owned());
    let timeout = state.0.config.request_timeout;
    let streaming = route.ends_with("/events");
    let response = if streaming {
        next.run(request).await
    } else {
        let path = request.uri().path().to_owned();
        match tokio::time::timeout(timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => {
                let message = format!("the request took over {} seconds", timeout.as_secs());
                // In the route's error format, like every error (`errors_in_route_format`).
                if path == BASE_PATH || path.starts_with(&format!("{BASE_PATH}/")) {
                    let status = StatusCode::SERVICE_UNAVAILABLE;
                    Open311Error::with_status(Format::guess(&path), status, message).into_response()
                } else {
                    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", message)
                        .into_response()
                }
            }
        }
    };
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state.0.metrics.record(&method, &route, status, elapsed);
    tracing::info!(%method, %route, status, latency_ms = elapsed.as_secs_f64() * 1000.0, "request");
    response
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};

    use axum::routing::get;
    use civicflow_core::vault::MasterKey;
    use serde_json::Value;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::{routes, Service, ServiceConfig};

    /// A fresh directory for one store, removed when dropped (kept if the test fails).
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let path = std::env::temp_dir().join(format!(
                "civicflow-http-{tag}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&path);
            Self(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    /// `GET path` on a fresh connection (`Connection: close`): the status and the body.
    async fn get_once(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("write the request");
        let mut bytes = Vec::new();
        stream
            .read_to_end(&mut bytes)
            .await
            .expect("read the response");
        let text = String::from_utf8(bytes).expect("a text response");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
        assert!(
            !head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked"),
            "this client reads whole bodies only: {head}"
        );
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("a status line in {head:?}"));
        (status, body.to_owned())
    }

    /// A handler with a bug.
    async fn boom() -> &'static str {
        panic!("a bug in a handler (on purpose, for this test)")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_the_server_stays_up() {
        let dir = TempDir::new("layers-panic");
        let config = ServiceConfig::new(&dir.0, MasterKey::generate().expect("randomness"));
        let service = Service::open(config).expect("a service on an empty store");
        let state = service.state().clone();
        let table = routes::router(routes::all(), &state).route("/boom", get(boom));
        let app = with_layers(table, &state);

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("an address");
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        for attempt in 1..=2 {
            let (status, body) = get_once(addr, "/boom").await;
            assert_eq!(status, 500, "panic {attempt}: {body}");
            let body: Value = serde_json::from_str(&body).expect("a JSON error body");
            assert_eq!(body["error"]["code"], "internal", "{body}");
            assert!(body["error"]["message"].is_string(), "{body}");

            let (status, body) = get_once(addr, "/healthz").await;
            assert_eq!(status, 200, "after panic {attempt}: {body}");
            let body: Value = serde_json::from_str(&body).expect("JSON");
            assert_eq!(body["status"], "ok");
        }
        assert!(!server.is_finished(), "the server is still serving");

        let (status, metrics) = get_once(addr, "/metrics").await;
        assert_eq!(status, 200, "{metrics}");
        assert!(
            metrics.contains(
                "civicflow_http_requests_total{method=\"GET\",route=\"/boom\",status=\"500\"} 2\n"
            ),
            "both panics are counted as 500s:\n{metrics}"
        );
        assert!(
            metrics.contains(
                "civicflow_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 2\n"
            ),
            "{metrics}"
        );
        server.abort();
        drop(service);
    }
}
