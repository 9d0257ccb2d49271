//! Tracing a request through the log over a real socket (issue 13; docs/service.md,
//! "Tracing a request"): the caller's `X-Request-Id` (or a W3C `traceparent`'s trace id)
//! is the correlation id of every event the request writes and comes back in the answer;
//! without one the service makes one and says which; a malformed `X-Request-Id` is 400.

use crate::common::service::DemoService;
use crate::common::socket::{request, Served};
use serde_json::{json, Value};

/// `(status, X-Request-Id answered, JSON body)` of a request with extra headers.
async fn call(
    served: &Served,
    method: &str,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, Option<String>, Value) {
    let mut all = vec![("Authorization".to_owned(), format!("Bearer {token}"))];
    all.extend(
        headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let text = body.map(Value::to_string);
    let response = request(
        served.addr,
        method,
        path,
        &all,
        text.as_deref().map(|t| ("application/json", t.as_bytes())),
    )
    .await
    .expect("a response");
    let id = response.head.header("x-request-id").map(str::to_owned);
    let value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response.status, id, value)
}

/// The correlation ids of a case's events, from its history.
async fn correlations(served: &Served, token: &str, case: &str) -> Vec<String> {
    let (status, _, history) = call(
        served,
        "GET",
        &format!("/api/v1/cases/{case}/history"),
        token,
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200, "{history}");
    history["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            e["correlation_id"]
                .as_str()
                .expect("a correlation id")
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_is_echoed_and_carried_by_every_event_the_request_writes() {
    let served = Served::start(DemoService::start("http-tracing")).await;
    let grid = served.token("li.grid1").to_owned();
    let open = json!({
        "workflow": "service-request",
        "unit_id": "grid-1",
        "title": "追踪: 路灯不亮",
        "fields": {"category": "public_facilities"},
    });

    // A UUID request id is the correlation id itself.
    let uuid = "0192f3a0-1111-7000-8000-000000000042";
    let (status, echoed, created) = call(
        &served,
        "POST",
        "/api/v1/cases",
        &grid,
        &[("X-Request-Id", uuid)],
        Some(&open),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(echoed.as_deref(), Some(uuid), "the caller's id comes back");
    let case = created["id"].as_str().expect("an id").to_owned();
    let ids = correlations(&served, &grid, &case).await;
    assert!(ids.len() >= 2 && ids.iter().all(|c| c == uuid), "{ids:?}");

    // Any other request id is echoed as given, and one id always maps to one correlation.
    let act = json!({"action": "dispatch", "unit": "yiwu-heart"});
    let (status, echoed, answer) = call(
        &served,
        "POST",
        &format!("/api/v1/cases/{case}/actions"),
        &grid,
        &[("X-Request-Id", "tablet-7/req-0042")],
        Some(&act),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(echoed.as_deref(), Some("tablet-7/req-0042"));
    let after = correlations(&served, &grid, &case).await;
    let dispatched: Vec<&String> = after[ids.len()..].iter().collect();
    assert!(!dispatched.is_empty());
    assert!(
        dispatched.iter().all(|c| *c == dispatched[0]),
        "{dispatched:?}"
    );
    assert_ne!(dispatched[0], uuid, "another request, another id");

    // A traceparent's trace id is the correlation id.
    let (status, echoed, created) = call(
        &served,
        "POST",
        "/api/v1/cases",
        &grid,
        &[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )],
        Some(&open),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let trace = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736";
    assert_eq!(echoed.as_deref(), Some(trace));
    let traced = correlations(&served, &grid, created["id"].as_str().expect("id")).await;
    assert!(traced.iter().all(|c| c == trace), "{traced:?}");

    // Without either, the service makes one and says which.
    let (status, echoed, created) =
        call(&served, "POST", "/api/v1/cases", &grid, &[], Some(&open)).await;
    assert_eq!(status, 201, "{created}");
    let made = echoed.expect("an X-Request-Id is always answered");
    let own = correlations(&served, &grid, created["id"].as_str().expect("id")).await;
    assert!(own.iter().all(|c| *c == made), "{own:?} vs {made}");

    // A malformed id is refused before anything is done, in the JSON error format.
    let head = served.head();
    for bad in ["has space", &"x".repeat(201)] {
        let (status, _, error) = call(
            &served,
            "POST",
            "/api/v1/cases",
            &grid,
            &[("X-Request-Id", bad)],
            Some(&open),
        )
        .await;
        assert_eq!(status, 400, "{bad:?}: {error}");
        assert_eq!(error["error"]["field"], "X-Request-Id", "{error}");
    }
    assert_eq!(served.head(), head, "a refused request wrote");
}
