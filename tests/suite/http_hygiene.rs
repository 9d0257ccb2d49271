//! Input hygiene (issue 13), over a real socket: control characters in free texts are refused
//! naming the field (and write nothing).
//!
//! Guards against a text that reaches the log with an escape sequence, a NUL or a
//! bidirectional override in it.

use serde_json::{json, Value};

use crate::common::service::DemoService;
use crate::common::socket::{request, Response, Served};

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
