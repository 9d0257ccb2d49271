//! Hostile request bodies against the service, in-process through the router (issue 7):
//! native JSON bodies (`POST /api/v1/cases`, `POST /api/v1/cases/{id}/actions`) and Open311
//! form bodies (`POST /open311/v2/requests.{xml,json}`).
//!
//! Properties: the status is never 5xx; a refusal is the API's error shape (native:
//! `{"error":{"code","message",…}}`, naming the field when a known field has the wrong
//! type; Open311: an error list in the format of the path's suffix, whose code is the
//! status); and a refused request writes nothing (the log's head is unchanged).
//!
//! Cases per property: 128 by default (about 10 s each in debug); `CIVICFLOW_FUZZ_CASES=N`
//! runs `N` instead: `CIVICFLOW_FUZZ_CASES=5000 cargo test --release --test suite fuzz_http::`.

use crate::common::service::DemoService;
use axum::http::{Method, StatusCode};
use civicflow::http::demo::DEMO_OPEN311_ROUTING;
use civicflow::http::open311::routing::ROUTING_FILE;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

fn cases() -> u32 {
    std::env::var("CIVICFLOW_FUZZ_CASES")
        .ok()
        .map(|n| {
            n.parse()
                .expect("CIVICFLOW_FUZZ_CASES must be a whole number")
        })
        .unwrap_or(128)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn head(demo: &DemoService) -> u64 {
    demo.service
        .engine()
        .log()
        .head()
        .map_or(0, |h| h.position.get())
}

// ---------------------------------------------------------------------------------------------
// JSON bodies

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,30}".prop_map(Value::from),
        proptest::sample::select(vec![
            "service-request",
            "grid-1",
            "tonghui",
            "sign_for",
            "dispatch",
            "public_facilities",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,10}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Raw JSON tokens serde_json may choke on: huge and odd numbers, deep nesting, bad escapes.
fn raw_token() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "1e400",
            "-1e400",
            "123456789012345678901234567890",
            "-0",
            "0.0000000000000000001e-400",
            "18446744073709551616",
            "-9223372036854775809",
            "NaN",
            "Infinity",
            "\"\\ud800\"",
            "\"\\u00\"",
            "\"\\x41\"",
            "01",
            "1.",
            ".5",
            "tru",
            "\"\u{0}\"",
            "\"\\u0000\"",
        ])
        .prop_map(str::to_owned),
        (1usize..400).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n))),
        (1usize..400).prop_map(|n| "{\"a\":".repeat(n) + "1" + &"}".repeat(n)),
        (1usize..4000).prop_map(|n| "[".repeat(n)),
    ]
}

/// A JSON body: a valid one with a field changed (to any value, a raw token, or removed), an
/// unknown field added, any JSON value, any text, or any bytes.
#[derive(Debug, Clone)]
enum JsonBody {
    /// `field` of the valid body set to `value`; remembered so the error can be checked.
    Field {
        field: String,
        value: Value,
    },
    Raw {
        field: String,
        token: String,
    },
    Remove {
        field: String,
    },
    Extra {
        key: String,
        value: Value,
    },
    Value(Value),
    Text(String),
    Bytes(Vec<u8>),
}

const CASE_FIELDS: [&str; 10] = [
    "workflow",
    "workflow_version",
    "unit_id",
    "title",
    "description",
    "idempotency_key",
    "fields",
    "requester",
    "place",
    "fields.category",
];

fn json_body() -> impl Strategy<Value = JsonBody> {
    let field = proptest::sample::select(CASE_FIELDS.to_vec()).prop_map(str::to_owned);
    prop_oneof![
        (field.clone(), json_value()).prop_map(|(field, value)| JsonBody::Field { field, value }),
        (field.clone(), raw_token()).prop_map(|(field, token)| JsonBody::Raw { field, token }),
        field.prop_map(|field| JsonBody::Remove { field }),
        ("[a-z_]{1,12}", json_value()).prop_map(|(key, value)| JsonBody::Extra { key, value }),
        json_value().prop_map(JsonBody::Value),
        ".{0,200}".prop_map(JsonBody::Text),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(JsonBody::Bytes),
    ]
}

fn valid_case() -> Value {
    json!({
        "workflow": "service-request",
        "unit_id": "grid-1",
        "title": "长椅坏了 fuzz",
        "description": "The bench is broken.",
        "fields": {"category": "public_facilities"},
    })
}

/// Sets `field` (`a` or `a.b`) of `body` to `value`.
fn set(body: &mut Value, field: &str, value: Value) {
    match field.split_once('.') {
        Some((outer, inner)) => {
            if !body[outer].is_object() {
                body[outer] = json!({});
            }
            body[outer][inner] = value;
        }
        None => body[field] = value,
    }
}

/// The body's bytes, with the changed field's name when a refusal must name it.
fn render(base: &Value, body: &JsonBody) -> (Vec<u8>, Option<String>) {
    let mut value = base.clone();
    match body {
        JsonBody::Field { field, value: v } => {
            set(&mut value, field, v.clone());
            // Fields that must be strings: any other type is refused naming the field.
            let must_name = matches!(
                field.as_str(),
                "workflow" | "unit_id" | "title" | "description"
            ) && base.get(field.as_str()).is_some()
                && !v.is_string();
            (
                value.to_string().into_bytes(),
                must_name.then(|| field.clone()),
            )
        }
        JsonBody::Raw { field, token } => {
            set(&mut value, field, json!("\u{1}PLACEHOLDER\u{1}"));
            let text = value
                .to_string()
                .replace("\"\\u0001PLACEHOLDER\\u0001\"", token);
            (text.into_bytes(), None)
        }
        JsonBody::Remove { field } => {
            match field.split_once('.') {
                Some((outer, inner)) => {
                    if let Some(map) = value[outer].as_object_mut() {
                        map.remove(inner);
                    }
                }
                None => {
                    if let Some(map) = value.as_object_mut() {
                        map.remove(field.as_str());
                    }
                }
            }
            (value.to_string().into_bytes(), None)
        }
        JsonBody::Extra { key, value: v } => {
            // An unknown field of the create body is refused naming it.
            let unknown = base.get(key.as_str()).is_none() && base.get("workflow").is_some();
            value[key.as_str()] = v.clone();
            (value.to_string().into_bytes(), unknown.then(|| key.clone()))
        }
        JsonBody::Value(v) => (v.to_string().into_bytes(), None),
        JsonBody::Text(t) => (t.clone().into_bytes(), None),
        JsonBody::Bytes(b) => (b.clone(), None),
    }
}

/// Checks one answer to a JSON request: never 5xx; a refusal is the error shape (naming
/// `field` when given) and wrote nothing.
fn check_native(
    status: StatusCode,
    bytes: &[u8],
    before: u64,
    after: u64,
    field: Option<&str>,
    what: &str,
) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(bytes);
    prop_assert!(!status.is_server_error(), "{what}: {status} {text}");
    if status.is_success() {
        return Ok(());
    }
    prop_assert!(status.is_client_error(), "{what}: {status} {text}");
    let body: Value = serde_json::from_slice(bytes).map_err(|e| {
        TestCaseError::fail(format!("{what}: a {status} that is not JSON ({e}): {text}"))
    })?;
    prop_assert!(body["error"]["code"].is_string(), "{what}: {status} {body}");
    prop_assert!(
        body["error"]["message"].is_string(),
        "{what}: {status} {body}"
    );
    prop_assert_eq!(
        before,
        after,
        "{}: a refused request wrote ({} {})",
        what,
        status,
        body
    );
    if let Some(field) = field {
        if status == StatusCode::BAD_REQUEST {
            let named = body["error"]["field"].as_str() == Some(field)
                || body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(field));
            prop_assert!(named, "{what}: the error does not name {field}: {body}");
        }
    }
    Ok(())
}

#[test]
fn json_bodies_never_answer_5xx_and_refusals_write_nothing() {
    let rt = runtime();
    let demo = DemoService::start("fuzz-json");
    let grid = demo.token("li.grid1").to_owned();
    let auth = format!("Bearer {grid}");
    let case = rt.block_on(async {
        let (status, created) = demo
            .call(
                Method::POST,
                "/api/v1/cases",
                Some(&grid),
                Some(valid_case()),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["id"].as_str().expect("id").to_owned()
    });
    let actions = format!("/api/v1/cases/{case}/actions");
    let action_base = json!({"action": "sign_for", "fields": {}});
    let seen = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u32>::new());
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::with_cases(cases())
    });
    runner
        .run(
            &(json_body(), any::<bool>(), any::<bool>()),
            |(body, on_actions, with_type)| {
                let (path, base) = if on_actions {
                    (actions.as_str(), &action_base)
                } else {
                    ("/api/v1/cases", &valid_case())
                };
                let (bytes, field) = render(base, &body);
                // Field naming is promised for the create body's string fields.
                let field = if on_actions { None } else { field };
                let mut headers = vec![("authorization", auth.as_str())];
                if with_type {
                    headers.push(("content-type", "application/json"));
                }
                let before = head(&demo);
                let (status, _, answer) =
                    rt.block_on(demo.call_bytes(Method::POST, path, &headers, bytes));
                *seen
                    .lock()
                    .expect("lock")
                    .entry(status.as_u16())
                    .or_insert(0) += 1;
                check_native(status, &answer, before, head(&demo), field.as_deref(), path)
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    report(&seen);
}

// ---------------------------------------------------------------------------------------------
// Open311 form bodies

/// How one name or value is written into the body.
#[derive(Debug, Clone, Copy)]
enum Encoding {
    /// Percent-encoded properly.
    Proper,
    /// As it is (`&`, `=`, `%` and non-ASCII bytes included).
    Raw,
    /// Proper, with a broken escape (`%`, `%4`, `%zz`, a lone UTF-8 lead byte) spliced in.
    Broken(usize, u8),
}

fn encode(text: &str, how: Encoding) -> Vec<u8> {
    let proper = || {
        let mut out = Vec::new();
        for byte in text.bytes() {
            match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    out.push(byte)
                }
                b' ' => out.push(b'+'),
                _ => out.extend_from_slice(format!("%{byte:02X}").as_bytes()),
            }
        }
        out
    };
    match how {
        Encoding::Proper => proper(),
        Encoding::Raw => text.as_bytes().to_vec(),
        Encoding::Broken(at, kind) => {
            let mut out = proper();
            let bad: &[u8] = match kind % 6 {
                0 => b"%",
                1 => b"%4",
                2 => b"%zz",
                3 => b"%E4%B8",
                4 => b"%FF",
                _ => b"\xff\xfe",
            };
            let at = at % (out.len() + 1);
            out.splice(at..at, bad.iter().copied());
            out
        }
    }
}

fn encoding() -> impl Strategy<Value = Encoding> {
    prop_oneof![
        6 => Just(Encoding::Proper),
        1 => Just(Encoding::Raw),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(a, k)| Encoding::Broken(a, k)),
    ]
}

fn form_name() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "api_key",
            "service_code",
            "lat",
            "long",
            "address_string",
            "address_id",
            "description",
            "media_url",
            "email",
            "phone",
            "first_name",
            "last_name",
            "device_id",
            "account_id",
            "jurisdiction_id",
            "attribute[category]",
            "attribute[category][]",
            "attribute[]",
            "attribute[",
            "attribute[[x]]",
        ])
        .prop_map(str::to_owned),
        "attribute\\[[a-z_]{0,10}\\](\\[\\])?",
        ".{0,12}",
    ]
}

/// A value; `KEY` stands for the demo app's valid api_key.
fn form_value() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "KEY",
            "KEY",
            "service-request",
            "consumer-dispute",
            "public_facilities",
            "safety",
            "29.3130",
            "120.0780",
            "NaN",
            "-NaN",
            "inf",
            "-inf",
            "1e400",
            "-1e400",
            "1e-400",
            "90.0000001",
            "-180.5",
            "0x1p3",
            "",
            " ",
            "29,31",
            "１２",
            "9999999999999999999999",
            "tonghui.yiwu",
            "https://example.org/a.jpg",
            "javascript:alert(1)",
            "a@b",
        ])
        .prop_map(str::to_owned),
        any::<f64>().prop_map(|f| f.to_string()),
        ".{0,40}",
        (1usize..3000).prop_map(|n| "x".repeat(n)),
    ]
}

#[derive(Debug, Clone)]
enum FormBody {
    Pairs(Vec<((String, Encoding), (String, Encoding))>),
    Bytes(Vec<u8>),
}

fn form_body() -> impl Strategy<Value = FormBody> {
    prop_oneof![
        8 => proptest::collection::vec(
            ((form_name(), encoding()), (form_value(), encoding())),
            0..12,
        )
        .prop_map(FormBody::Pairs),
        1 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(FormBody::Bytes),
    ]
}

fn render_form(body: &FormBody, key: &str, complete: bool) -> Vec<u8> {
    match body {
        FormBody::Bytes(bytes) => bytes.clone(),
        FormBody::Pairs(pairs) => {
            let mut pieces: Vec<Vec<u8>> = Vec::new();
            if complete {
                // A complete request first, so later pairs change a request that could file.
                for (n, v) in [
                    ("api_key", key),
                    ("service_code", "service-request"),
                    ("attribute[category]", "public_facilities"),
                    ("address_string", "通惠社区 somewhere"),
                ] {
                    let mut piece = encode(n, Encoding::Proper);
                    piece.push(b'=');
                    piece.extend(encode(v, Encoding::Proper));
                    pieces.push(piece);
                }
            }
            for ((name, how_name), (value, how_value)) in pairs {
                let value = if value == "KEY" { key } else { value.as_str() };
                let mut piece = encode(name, *how_name);
                piece.push(b'=');
                piece.extend(encode(value, *how_value));
                pieces.push(piece);
            }
            pieces.join(&b'&')
        }
    }
}

/// Checks an Open311 answer: never 5xx; a refusal is one error in the suffix's format whose
/// code is the status, and wrote nothing.
fn check_open311(
    format: &str,
    status: StatusCode,
    content_type: &str,
    bytes: &[u8],
    before: u64,
    after: u64,
) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(bytes).into_owned();
    prop_assert!(!status.is_server_error(), "{format}: {status} {text}");
    if status.is_success() {
        return Ok(());
    }
    prop_assert_eq!(
        before,
        after,
        "{}: a refused request wrote ({} {})",
        format,
        status,
        text
    );
    let code = status.as_u16().to_string();
    if format == "xml" {
        prop_assert_eq!(
            content_type,
            "text/xml; charset=utf-8",
            "{} {}",
            status,
            text
        );
        let document = roxmltree::Document::parse(&text)
            .map_err(|e| TestCaseError::fail(format!("not XML ({e}): {text}")))?;
        let root = document.root_element();
        prop_assert_eq!(root.tag_name().name(), "errors", "{}", text);
        let errors: Vec<_> = root.children().filter(|c| c.is_element()).collect();
        prop_assert!(!errors.is_empty(), "{text}");
        for error in errors {
            let parts: Vec<_> = error.children().filter(|c| c.is_element()).collect();
            let names: Vec<&str> = parts.iter().map(|p| p.tag_name().name()).collect();
            prop_assert_eq!(names, vec!["code", "description"], "{}", text);
            prop_assert_eq!(parts[0].text(), Some(code.as_str()), "{}", text);
            prop_assert!(!parts[1].text().unwrap_or("").is_empty(), "{text}");
        }
    } else {
        prop_assert_eq!(
            content_type,
            "application/json; charset=utf-8",
            "{} {}",
            status,
            text
        );
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| TestCaseError::fail(format!("not JSON ({e}): {text}")))?;
        let errors = json
            .as_array()
            .ok_or_else(|| TestCaseError::fail(format!("not a list: {json}")))?;
        prop_assert!(!errors.is_empty(), "{json}");
        for error in errors {
            prop_assert_eq!(&error["code"], &json!(status.as_u16()), "{}", json);
            prop_assert!(
                error["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{json}"
            );
            prop_assert_eq!(error.as_object().map(|o| o.len()), Some(2), "{}", json);
        }
    }
    Ok(())
}

#[test]
fn open311_form_bodies_never_answer_5xx_and_refuse_in_their_format() {
    let rt = runtime();
    let demo = DemoService::start_with("fuzz-open311", |config| {
        std::fs::write(config.data_dir.join(ROUTING_FILE), DEMO_OPEN311_ROUTING)
            .expect("write the rules");
    });
    let key = demo.token("fixmystreet").to_owned();
    let content_type = prop_oneof![
        8 => Just(Some(FORM)),
        1 => Just(Some("application/x-www-form-urlencoded")),
        1 => Just(None),
        1 => Just(Some("application/json")),
        1 => Just(Some("application/x-www-form-urlencoded; charset=latin1")),
    ];
    let seen = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u32>::new());
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::with_cases(cases())
    });
    runner
        .run(
            &(form_body(), any::<bool>(), any::<bool>(), content_type),
            |(body, xml, complete, content_type)| {
                let format = if xml { "xml" } else { "json" };
                let path = format!("/open311/v2/requests.{format}");
                let bytes = render_form(&body, &key, complete);
                let headers: Vec<(&str, &str)> = content_type
                    .map(|t| ("content-type", t))
                    .into_iter()
                    .collect();
                let before = head(&demo);
                let (status, answer_headers, answer) =
                    rt.block_on(demo.call_bytes(Method::POST, &path, &headers, bytes));
                *seen
                    .lock()
                    .expect("lock")
                    .entry(status.as_u16())
                    .or_insert(0) += 1;
                let answer_type = answer_headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                check_open311(format, status, answer_type, &answer, before, head(&demo))
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    report(&seen);
}

/// Prints the statuses seen (`--nocapture`) and checks that the bodies reached the decoders:
/// refusals for the body (400) and some requests that were accepted.
fn report(seen: &std::sync::Mutex<std::collections::BTreeMap<u16, u32>>) {
    let seen = seen.lock().expect("lock");
    eprintln!("statuses: {seen:?}");
    assert!(
        seen.contains_key(&400),
        "no body was refused as malformed: {seen:?}"
    );
}
