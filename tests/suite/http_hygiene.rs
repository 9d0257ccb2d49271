//! Input hygiene and the one error format (issue 13), over a real socket: control
//! characters in free texts are refused naming the field (and write nothing), and every error
//! the service answers is its JSON error (or an Open311 error under `/open311/v2`), including
//! the ones axum answers itself: an undecodable path, a method a path does not take, a body
//! cut by the size limit, a body that never arrives (the request timeout).
//!
//! Guards against a text that reaches the log with an escape sequence, a NUL or a
//! bidirectional override in it, and against a client that gets `text/plain` or an empty body
//! where the documentation promises `{"error": {"code", "message", "field"}}`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::service::DemoService;
use crate::common::socket::{raw, request, Response, Served};

/// The texts every check below sends: NUL, ESC (an escape sequence), a bidirectional
/// override, DEL and a C1 control, each somewhere inside otherwise ordinary text.
const BAD: [(&str, &str); 5] = [
    ("NUL", "路灯\u{0}坏了"),
    ("ESC", "路灯\u{1b}[2J坏了"),
    ("RLO", "路灯\u{202E}坏了"),
    ("DEL", "路灯\u{7f}坏了"),
    ("CSI", "路灯\u{9b}坏了"),
];

fn header(response: &Response, name: &str) -> String {
    response.head.header(name).unwrap_or("").to_owned()
}

/// A request with an exact body (or none) and optional bearer token, answered whole.
async fn call(
    served: &Served,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> Response {
    let headers: Vec<(String, String)> = token
        .map(|t| vec![("Authorization".to_owned(), format!("Bearer {t}"))])
        .unwrap_or_default();
    request(
        served.addr,
        method,
        path,
        &headers,
        body.map(|b| ("application/json", b)),
    )
    .await
    .expect("a response")
}

/// Asserts that `response` is the service's JSON error with `status` and `code` (and `field`,
/// when given); its body.
fn assert_json_error(
    response: &Response,
    status: u16,
    code: &str,
    field: Option<&str>,
    what: &str,
) -> Value {
    let text = String::from_utf8_lossy(&response.body);
    assert_eq!(response.status, status, "{what}: {text}");
    assert!(
        header(response, "content-type").starts_with("application/json"),
        "{what}: content-type {:?}: {text}",
        header(response, "content-type")
    );
    let body: Value = serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
    if let Some(field) = field {
        assert_eq!(body["error"]["field"], field, "{what}: {body}");
    }
    body
}

fn open_body(title: &str, description: &str) -> Value {
    json!({
        "workflow": "service-request",
        "unit_id": "grid-1",
        "title": title,
        "description": description,
        "fields": {"category": "public_facilities"},
        "requester": {"name": "张三", "phone": "13812345678"},
    })
}

/// NUL, ESC, a bidirectional override, DEL and C1 in a title, a description, an action's
/// note, a directive's note, a contact view's purpose and a token's name: each a 422 naming
/// the field and the character, and nothing written. A line break is refused in a title and
/// accepted in a description; a purpose of a NUL alone is not a purpose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_in_free_texts_are_refused_naming_the_field() {
    let served = Served::start(DemoService::start("hygiene-texts")).await;
    let grid = served.token("li.grid1").to_owned();
    let admin = served.token("wang.secretary").to_owned();

    // A case with a line break in its description opens; a title may not hold one.
    let (status, created) = served
        .json(
            "POST",
            "/api/v1/cases",
            Some(&grid),
            Some(&open_body("长椅坏了", "第一行\n第二行\r\n\t第三行")),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let case = created["id"].as_str().expect("id").to_owned();
    let (_, read) = served
        .json("GET", &format!("/api/v1/cases/{case}"), Some(&grid), None)
        .await;
    assert_eq!(read["description"], "第一行\n第二行\r\n\t第三行", "{read}");

    let mut refusals: Vec<(String, String, Value, &str)> = Vec::new();
    for (name, bad) in BAD {
        refusals.push((
            format!("a title with {name}"),
            "/api/v1/cases".to_owned(),
            open_body(bad, "ok"),
            "title",
        ));
        refusals.push((
            format!("a description with {name}"),
            "/api/v1/cases".to_owned(),
            open_body("ok", bad),
            "description",
        ));
        refusals.push((
            format!("an action's note with {name}"),
            format!("/api/v1/cases/{case}/actions"),
            json!({"action": "dispatch", "unit": "grid-1", "note": bad}),
            "note",
        ));
        refusals.push((
            format!("a purpose with {name}"),
            format!("/api/v1/cases/{case}/contact"),
            json!({"purpose": bad}),
            "purpose",
        ));
    }
    refusals.push((
        "a title of two lines".to_owned(),
        "/api/v1/cases".to_owned(),
        open_body("第一行\n第二行", "ok"),
        "title",
    ));
    for (what, path, body, field) in &refusals {
        let before = served.head();
        let bytes = body.to_string();
        let response = call(&served, "POST", path, Some(&grid), Some(bytes.as_bytes())).await;
        let error = assert_json_error(&response, 422, "unprocessable", Some(field), what);
        let message = error["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains("U+") && message.contains("at character"),
            "{what}: the message names the character and where: {message}"
        );
        assert_eq!(served.head(), before, "{what}: a refusal wrote to the log");
    }

    // A purpose that is nothing but a NUL (or invisible characters) is not a purpose: the
    // NUL is refused as a character, the zero-width space as blank (missing).
    let response = call(
        &served,
        "POST",
        &format!("/api/v1/cases/{case}/contact"),
        Some(&grid),
        Some(br#"{"purpose": "\u0000"}"#),
    )
    .await;
    assert_json_error(
        &response,
        422,
        "unprocessable",
        Some("purpose"),
        "NUL purpose",
    );
    let response = call(
        &served,
        "POST",
        &format!("/api/v1/cases/{case}/contact"),
        Some(&grid),
        Some(br#"{"purpose": "\u200b "}"#),
    )
    .await;
    assert_json_error(
        &response,
        422,
        "unprocessable",
        Some("purpose"),
        "blank purpose",
    );

    // A directive's note (the acknowledging unit's), and a token's name.
    let (status, issued) = served
        .json(
            "POST",
            "/api/v1/directives",
            Some(&admin),
            Some(
                &json!({"title": "消防检查", "kind": "staff_training", "within": "3 working days"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    let directive = issued["id"].as_str().expect("id").to_owned();
    for (name, bad) in BAD {
        let body = json!({ "note": bad }).to_string();
        let response = call(
            &served,
            "POST",
            &format!("/api/v1/directives/{directive}/acknowledge"),
            Some(&grid),
            Some(body.as_bytes()),
        )
        .await;
        assert_json_error(
            &response,
            422,
            "unprocessable",
            Some("note"),
            &format!("a directive note with {name}"),
        );
        let body =
            json!({"actor": "li.grid1", "role": "grid_worker", "unit_id": "grid-1", "name": bad})
                .to_string();
        let response = call(
            &served,
            "POST",
            "/api/v1/tokens",
            Some(&admin),
            Some(body.as_bytes()),
        )
        .await;
        assert_json_error(
            &response,
            422,
            "unprocessable",
            Some("name"),
            &format!("a token name with {name}"),
        );
    }
    // A note of several lines is a note.
    let body = json!({"note": "收到\n明天检查"}).to_string();
    let response = call(
        &served,
        "POST",
        &format!("/api/v1/directives/{directive}/acknowledge"),
        Some(&grid),
        Some(body.as_bytes()),
    )
    .await;
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
}

/// Every error is the JSON error: an undecodable path segment, a method a path does not take
/// (with `Allow`), malformed and truncated bodies, a body over the limit without a
/// Content-Length, `limit=0` on every paged list; under `/open311/v2` the same are Open311
/// errors. A revocation needs no body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_the_services_error_format() {
    let served = Served::start(DemoService::start("hygiene-errors")).await;
    let admin = served.token("wang.secretary").to_owned();

    // A path segment that is not UTF-8 once percent-decoded (it was text/plain).
    for path in [
        "/api/v1/cases/%FF%FE",
        "/api/v1/directives/%C3%28",
        "/api/v1/units/%FF/inbox",
    ] {
        let response = call(&served, "GET", path, Some(&admin), None).await;
        assert_json_error(&response, 400, "bad_request", None, path);
    }
    let response = call(&served, "GET", "/api/v1/cases/%FF%FE", Some(&admin), None).await;
    assert_json_error(
        &response,
        400,
        "bad_request",
        Some("id"),
        "the field is named",
    );

    // 405 (it had an empty body), keeping Allow.
    for (method, path, allow) in [
        ("DELETE", "/api/v1/cases", "GET,HEAD,POST"),
        ("PUT", "/api/v1/cases/x", "GET,HEAD"),
        ("PATCH", "/healthz", "GET,HEAD"),
    ] {
        let what = format!("{method} {path}");
        let response = call(&served, method, path, Some(&admin), None).await;
        let body = assert_json_error(&response, 405, "method_not_allowed", None, &what);
        let mut allowed: Vec<String> = header(&response, "allow")
            .split(',')
            .map(|m| m.trim().to_owned())
            .collect();
        allowed.sort();
        let mut expected: Vec<&str> = allow.split(',').collect();
        expected.sort_unstable();
        assert_eq!(allowed, expected, "{what}: Allow");
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(method), "{what}: {message}");
    }
    // Under the Open311 base path a 405 is an Open311 error in the path's format.
    let response = call(&served, "POST", "/open311/v2/services.json", None, None).await;
    assert_eq!(response.status, 405);
    assert!(header(&response, "content-type").starts_with("application/json"));
    assert!(header(&response, "allow").contains("GET"));
    let errors: Value = serde_json::from_slice(&response.body).expect("JSON");
    assert_eq!(errors[0]["code"], 405, "{errors}");
    let response = call(&served, "DELETE", "/open311/v2/services.xml", None, None).await;
    assert_eq!(response.status, 405);
    assert!(header(&response, "content-type").starts_with("text/xml"));
    assert!(String::from_utf8_lossy(&response.body).contains("<code>405</code>"));

    // Bodies: malformed JSON, a wrong type, trailing bytes, an unknown field.
    for (what, body) in [
        ("malformed JSON", &b"{\"workflow\": "[..]),
        (
            "a wrong type",
            &b"{\"workflow\": 1, \"unit_id\": \"grid-1\", \"title\": \"x\"}"[..],
        ),
        ("trailing bytes", &b"{} {}"[..]),
        ("not UTF-8", &b"{\"title\": \"\xff\"}"[..]),
    ] {
        let response = call(&served, "POST", "/api/v1/cases", Some(&admin), Some(body)).await;
        assert_json_error(&response, 400, "bad_request", None, what);
    }
    // No body where fields are required: the first missing one is named.
    let response = call(&served, "POST", "/api/v1/cases", Some(&admin), None).await;
    let body = assert_json_error(&response, 400, "bad_request", None, "no body");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("missing field")),
        "{body}"
    );

    // A chunked body over the limit (no Content-Length to refuse it by): 413 from the read.
    let chunk = vec![b'x'; 70 * 1024];
    let mut bytes = format!(
        "POST /api/v1/cases HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        served.addr,
        chunk.len()
    )
    .into_bytes();
    bytes.extend_from_slice(&chunk);
    bytes.extend_from_slice(b"\r\n0\r\n\r\n");
    let response = raw(served.addr, &bytes).await.expect("a response");
    assert_json_error(
        &response,
        413,
        "too_large",
        None,
        "a chunked body over 64 KiB",
    );

    // limit=0 on every paged list: refused naming limit (it was read as 1).
    for path in [
        "/api/v1/cases?limit=0",
        "/api/v1/directives?limit=00",
        "/api/v1/units/tonghui/inbox?limit=0",
        "/api/v1/lists/needs?limit=0",
    ] {
        let response = call(&served, "GET", path, Some(&admin), None).await;
        assert_json_error(&response, 400, "bad_request", Some("limit"), path);
    }
    let response = call(&served, "GET", "/api/v1/cases?limit=1", Some(&admin), None).await;
    assert_eq!(response.status, 200, "limit=1 is a page of one");

    // A revocation needs no body: it is documented with an optional reason.
    let body = json!({"actor": "li.grid1", "role": "grid_worker", "unit_id": "grid-1", "name": "hygiene probe"})
        .to_string();
    let response = call(
        &served,
        "POST",
        "/api/v1/tokens",
        Some(&admin),
        Some(body.as_bytes()),
    )
    .await;
    assert_eq!(
        response.status,
        201,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    let issued: Value = serde_json::from_slice(&response.body).expect("JSON");
    let id = issued["id"].as_str().expect("id");
    let response = call(
        &served,
        "POST",
        &format!("/api/v1/tokens/{id}/revoke"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    let revoked: Value = serde_json::from_slice(&response.body).expect("JSON");
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    // A reason with a control character is refused like any text.
    let response = call(
        &served,
        "POST",
        &format!("/api/v1/tokens/{id}/revoke"),
        Some(&admin),
        Some(br#"{"reason": "gone\u001b[2J"}"#),
    )
    .await;
    assert_json_error(
        &response,
        422,
        "unprocessable",
        Some("reason"),
        "revoke reason",
    );
}

/// A body announced and never sent: the request timeout answers 503 `timeout` as JSON (the
/// code the error table lists), and an Open311 error under `/open311/v2`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_is_a_json_503_timeout() {
    let demo = DemoService::start_with("hygiene-timeout", |config| {
        config.request_timeout = Duration::from_secs(1);
    });
    let served = Served::start(demo).await;
    let admin = served.token("wang.secretary").to_owned();
    let bytes = format!(
        "POST /api/v1/cases HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"title\":",
        served.addr
    );
    let response =
        tokio::time::timeout(Duration::from_secs(20), raw(served.addr, bytes.as_bytes()))
            .await
            .expect("answered before the test's own timeout")
            .expect("a response");
    assert_json_error(&response, 503, "timeout", None, "a slow body");
    // Under the Open311 base path, the same is an Open311 error in the path's format.
    let bytes = format!(
        "POST /open311/v2/requests.json HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\napi_key=",
        served.addr
    );
    let response =
        tokio::time::timeout(Duration::from_secs(20), raw(served.addr, bytes.as_bytes()))
            .await
            .expect("answered before the test's own timeout")
            .expect("a response");
    assert_eq!(response.status, 503);
    assert!(header(&response, "content-type").starts_with("application/json"));
    let errors: Value = serde_json::from_slice(&response.body).expect("JSON");
    assert_eq!(errors[0]["code"], 503, "{errors}");
}
