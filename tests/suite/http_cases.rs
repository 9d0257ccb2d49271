//! The case routes in-process: open, read, act, history, audit, and the error statuses each
//! promises (401, 403, 404 outside the scope, 409 on a stale version, 422, 400 naming the
//! field, 413).

use crate::common::service::DemoService;
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

fn open_body(title: &str) -> Value {
    json!({
        "workflow": "service-request",
        "unit_id": "grid-1",
        "title": title,
        "description": "The bench by the fountain is broken.",
        "fields": {"category": "public_facilities"},
    })
}

#[tokio::test]
async fn a_case_is_opened_read_acted_on_and_audited() {
    let demo = DemoService::start("http-cases");
    let grid = demo.token("li.grid1");
    let (status, created) = demo
        .call(
            Method::POST,
            "/api/v1/cases",
            Some(grid),
            Some(open_body("长椅坏了")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["status"], "open");
    assert!(created["version"].as_u64().expect("version") >= 1);

    let (status, case) = demo
        .call(
            Method::GET,
            &format!("/api/v1/cases/{id}"),
            Some(grid),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{case}");
    for key in [
        "id",
        "workflow",
        "stage",
        "status",
        "version",
        "unit_id",
        "available_actions",
    ] {
        assert!(case.get(key).is_some(), "{key} missing from {case}");
    }
    let actions: Vec<&str> = case["available_actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert!(!actions.is_empty(), "{case}");

    // A stale expected_version: 409.
    let (status, error) = demo
        .call(
            Method::POST,
            &format!("/api/v1/cases/{id}/actions"),
            Some(grid),
            Some(json!({"action": actions[0], "expected_version": 1_000})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert_eq!(error["error"]["field"], "expected_version");

    // An action that does not exist: 422 naming the field.
    let (status, error) = demo
        .call(
            Method::POST,
            &format!("/api/v1/cases/{id}/actions"),
            Some(grid),
            Some(json!({"action": "teleport"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"]["field"], "action");

    let (status, history) = demo
        .call(
            Method::GET,
            &format!("/api/v1/cases/{id}/history"),
            Some(grid),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let first = &history["events"][0];
    for key in [
        "position",
        "version",
        "type",
        "recorded_at",
        "actor",
        "hash",
    ] {
        assert!(first.get(key).is_some(), "{key} missing from {first}");
    }
    assert_eq!(first["actor"]["role"], "grid_worker");
    assert_eq!(first["actor"]["unit_id"], "grid-1");

    let (status, audit) = demo
        .call(
            Method::GET,
            &format!("/api/v1/cases/{id}/audit"),
            Some(grid),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(audit["chain"]["intact"], true);
}

#[tokio::test]
async fn errors_say_what_and_which_field() {
    let demo = DemoService::start("http-errors");
    let grid = demo.token("li.grid1");
    // No token, a bad token.
    let path = format!("/api/v1/cases/{}", demo.run.smooth_case);
    let (status, error) = demo.call(Method::GET, &path, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{error}");
    let (status, _) = demo
        .call(
            Method::POST,
            "/api/v1/cases",
            Some("cft_nope"),
            Some(open_body("x")),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // An unknown field, a wrong type, a title too long, a body too large.
    let mut body = open_body("x");
    body["colour"] = json!("red");
    let (status, error) = demo
        .call(Method::POST, "/api/v1/cases", Some(grid), Some(body))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(error["error"]["message"]
        .as_str()
        .expect("message")
        .contains("colour"));
    let mut body = open_body("x");
    body["fields"]["category"] = json!(7);
    let (status, error) = demo
        .call(Method::POST, "/api/v1/cases", Some(grid), Some(body))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["error"]["field"], "fields.category");
    let (status, error) = demo
        .call(
            Method::POST,
            "/api/v1/cases",
            Some(grid),
            Some(open_body(&"路".repeat(201))),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["error"]["field"], "title");
    let huge = json!({"workflow": "service-request", "unit_id": "grid-1", "title": "x", "description": "x".repeat(70_000)});
    let (status, error) = demo
        .call(Method::POST, "/api/v1/cases", Some(grid), Some(huge))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // The API's JSON error, not the limit layer's plain text (found by .ci/schemathesis).
    assert_eq!(error["error"]["code"], "too_large", "{error}");
    // Malformed JSON.
    let (status, _) = demo
        .call_raw(
            Method::POST,
            "/api/v1/cases",
            Some(grid),
            Some("{\"title\":".into()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // An unknown workflow: 422 naming it.
    let mut body = open_body("x");
    body["workflow"] = json!("time-travel");
    let (status, error) = demo
        .call(Method::POST, "/api/v1/cases", Some(grid), Some(body))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"]["field"], "workflow");
}

#[tokio::test]
async fn a_case_outside_the_callers_scope_is_not_found() {
    let demo = DemoService::start("http-scope");
    let case = demo.run.smooth_case.to_string();
    // A shop owner of another enterprise does not see it; a community admin does.
    let (status, _) = demo
        .call(
            Method::GET,
            &format!("/api/v1/cases/{case}"),
            Some(demo.token("lu.books")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = demo
        .call(
            Method::GET,
            &format!("/api/v1/cases/{case}"),
            Some(demo.token("wang.secretary")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // A malformed id is no case either.
    let (status, _) = demo
        .call(
            Method::GET,
            "/api/v1/cases/not-a-uuid",
            Some(demo.token("wang.secretary")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_opening_retried_with_its_key_answers_the_same_case() {
    let demo = DemoService::start("http-idempotent");
    let grid = demo.token("li.grid1");
    let mut body = open_body("重复提交");
    body["idempotency_key"] = json!("tablet-7-0001");
    let (first_status, first) = demo
        .call(
            Method::POST,
            "/api/v1/cases",
            Some(grid),
            Some(body.clone()),
        )
        .await;
    let (again_status, again) = demo
        .call(Method::POST, "/api/v1/cases", Some(grid), Some(body))
        .await;
    // The first answer again: the same status and the same body.
    assert_eq!(first_status, StatusCode::CREATED);
    assert_eq!(again_status, StatusCode::CREATED);
    assert_eq!(first, again);
}

#[tokio::test]
async fn a_case_can_say_where_it_is_about() {
    let demo = DemoService::start("http-cases-place");
    let grid = demo.token("li.grid1");
    let mut body = open_body("路灯不亮");
    body["place"] = json!({
        "lat": 29.3069, "long": 120.0751, "address": "稠城街道通惠社区 3 幢",
        "media_url": "https://example.org/photo.jpg"
    });
    let (status, created) = demo
        .call(Method::POST, "/api/v1/cases", Some(grid), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let (status, case) = demo
        .call(
            Method::GET,
            &format!("/api/v1/cases/{id}"),
            Some(grid),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{case}");
    assert_eq!(case["place"]["lat"], 29.3069);
    assert_eq!(case["place"]["long"], 120.0751);
    assert_eq!(case["place"]["address"], "稠城街道通惠社区 3 幢");
    assert_eq!(case["place"]["address_id"], Value::Null);
    let (_, history) = demo
        .call(
            Method::GET,
            &format!("/api/v1/cases/{id}/history"),
            Some(grid),
            None,
        )
        .await;
    assert_eq!(history["events"][1]["type"], "PlaceRecorded", "{history}");

    // Without a place, `place` is null.
    let (_, created) = demo
        .call(
            Method::POST,
            "/api/v1/cases",
            Some(grid),
            Some(open_body("x")),
        )
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    let (_, case) = demo
        .call(
            Method::GET,
            &format!("/api/v1/cases/{id}"),
            Some(grid),
            None,
        )
        .await;
    assert_eq!(case["place"], Value::Null);

    // A bad place names its field; nothing is opened.
    for (place, status, field) in [
        (
            json!({"lat": 95.0, "long": 120.0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "place.lat",
        ),
        (
            json!({"lat": 29.0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "place.long",
        ),
        (
            json!({"media_url": "ftp://x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "place.media_url",
        ),
        (
            json!({"address": "街".repeat(501)}),
            StatusCode::BAD_REQUEST,
            "place.address",
        ),
    ] {
        let mut body = open_body("bad place");
        body["place"] = place.clone();
        let (got, error) = demo
            .call(Method::POST, "/api/v1/cases", Some(grid), Some(body))
            .await;
        assert_eq!(got, status, "{place}: {error}");
        assert_eq!(error["error"]["field"], field, "{place}: {error}");
    }
    let mut body = open_body("bad place");
    body["place"] = json!({"altitude": 3});
    let (got, error) = demo
        .call(Method::POST, "/api/v1/cases", Some(grid), Some(body))
        .await;
    assert_eq!(got, StatusCode::BAD_REQUEST, "{error}");
    assert!(error["error"]["message"]
        .as_str()
        .expect("message")
        .contains("altitude"));
}

#[tokio::test]
async fn a_case_reads_as_of_a_version_or_a_moment() {
    let demo = DemoService::start("http-as-of");
    let admin = demo.token("wang.secretary");
    let case = demo.run.smooth_case.to_string();
    // The case read with `query` (its audit with `/audit`), as `token`.
    let get = |query: String, token: &str| {
        let path = format!("/api/v1/cases/{case}{query}");
        let token = token.to_owned();
        let demo = &demo;
        async move { demo.call(Method::GET, &path, Some(&token), None).await }
    };
    let (status, now) = get(String::new(), admin).await;
    assert_eq!(status, StatusCode::OK, "{now}");
    assert!(now.get("as_of").is_none(), "{now}");
    let current = now["version"].as_u64().expect("version");
    let (_, audit) = get("/audit".to_owned(), admin).await;
    let steps = audit["steps"].as_array().expect("steps");
    assert_eq!(steps.len() as u64, current);

    // Every version: the stage and lead right after it, no actions, and which version it is.
    for step in steps {
        let version = step["version"].as_u64().expect("version");
        let (status, then) = get(format!("?version={version}"), admin).await;
        assert_eq!(status, StatusCode::OK, "{then}");
        assert_eq!(then["version"], version);
        assert_eq!(then["stage"], step["stage_after"], "version {version}");
        assert_eq!(
            then["lead_unit_id"], step["lead_after"],
            "version {version}"
        );
        assert_eq!(then["available_actions"], json!([]));
        assert_eq!(then["id"], now["id"]);
        assert_eq!(
            then["as_of"],
            json!({"version": version, "time": null, "current_version": current})
        );
    }
    // A moment: each step's own time (its `+08:00` encoded) includes it and every step
    // recorded by then.
    for step in steps {
        let at = step["recorded_at"].as_str().expect("time");
        let (status, then) = get(format!("?as_of={}", at.replace('+', "%2B")), admin).await;
        assert_eq!(status, StatusCode::OK, "{then}");
        let reached = steps
            .iter()
            .take_while(|s| s["recorded_at"].as_str() <= Some(at))
            .count();
        assert_eq!(then["version"], reached, "as of {at}");
        assert_eq!(then["as_of"]["time"], at);
        assert_eq!(then["as_of"]["current_version"], current);
    }
    // The same moment in UTC reads the same state.
    let (status, utc) = get("?as_of=2100-01-01T00:00:00Z".to_owned(), admin).await;
    assert_eq!(status, StatusCode::OK, "{utc}");
    assert_eq!(utc["version"], current);

    // Before the case was opened: it did not exist yet, 404 saying as of when.
    let (status, error) = get("?as_of=2000-01-01T00:00:00Z".to_owned(), admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .expect("message")
            .contains("as of 2000-01-01"),
        "{error}"
    );
    // Past the current version: 422 naming version and the range there is.
    let (status, error) = get(format!("?version={}", current + 1), admin).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"]["field"], "version");
    assert!(
        error["error"]["message"]
            .as_str()
            .expect("message")
            .contains(&format!("from 1 to {current}")),
        "{error}"
    );
    // Malformed values, both at once, an unknown parameter: 400 naming the parameter.
    for (query, field) in [
        ("?version=0", "version"),
        ("?version=-1", "version"),
        ("?version=two", "version"),
        ("?version=99999999999999999999999", "version"),
        ("?as_of=yesterday", "as_of"),
        ("?as_of=2026-04-14", "as_of"),
        ("?as_of=2026-04-14T09:30:00", "as_of"),
        ("?as_of=2026-04-14T09:30:00+08:00", "as_of"),
        ("?version=1&as_of=2100-01-01T00:00:00Z", "version"),
        ("?version=1&version=2", "version"),
        ("?at=1", "at"),
    ] {
        let (status, error) = get(query.to_owned(), admin).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {error}");
        assert_eq!(error["error"]["field"], field, "{query}: {error}");
    }
    // Who may not see the case now does not see its past: the same 404 as today's read.
    let outsider = demo.token("lu.books");
    for query in ["", "?version=1", "?as_of=2100-01-01T00:00:00Z"] {
        let (status, error) = get(query.to_owned(), outsider).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{query}: {error}");
        assert_eq!(error["error"]["field"], "id", "{query}: {error}");
    }
}

/// Every string of `value` (recursively).
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(fields) => fields.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// Whether `text` is an RFC 3339 time as the service writes one: `YYYY-MM-DDTHH:MM:SS±HH:MM`.
fn is_time(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 25
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 | 22 => *c == b':',
            19 => *c == b'+' || *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

#[tokio::test]
async fn every_time_in_an_answer_is_in_the_calendars_zone() {
    // The demo with its calendar in New York: April 2026 is daylight saving time there.
    let zone = civicflow::core::calendar::Zone::named("America/New_York").expect("a zone");
    let demo = DemoService::start_in("http-zone", zone, |_| {});
    let admin = demo.token("wang.secretary");
    let case = demo.run.escalated_case;
    let mut answers = Vec::new();
    for path in [
        format!("/api/v1/cases/{case}"),
        format!("/api/v1/cases/{case}/history"),
        format!("/api/v1/cases/{case}/audit"),
        // A moment given in UTC: the answer writes it in New York.
        format!("/api/v1/cases/{case}?as_of={}", demo.service.engine().now()),
        "/api/v1/cases".to_owned(),
        "/api/v1/cases?opened_from=2026-04-12".to_owned(),
        "/api/v1/units/tonghui/overdue".to_owned(),
        "/api/v1/units/grid-2/inbox".to_owned(),
        "/api/v1/directives".to_owned(),
        format!("/api/v1/directives/{}", demo.run.directive),
        "/api/v1/tokens".to_owned(),
        "/api/v1/lists/projects".to_owned(),
    ] {
        let (status, body) = demo.call(Method::GET, &path, Some(admin), None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        answers.push((path, body));
    }
    // A refusal names the moment in New York too.
    let (status, refused) = demo
        .call(
            Method::GET,
            &format!("/api/v1/cases/{case}?as_of=2026-04-13T01:00:00Z"),
            Some(admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("as of 2026-04-12T21:00:00-04:00")),
        "{refused}"
    );
    let mut times = 0;
    let mut in_words = 0;
    for (path, body) in &answers {
        let mut texts = Vec::new();
        strings(body, &mut texts);
        for text in texts {
            if is_time(&text) {
                times += 1;
                assert!(
                    text.ends_with("-04:00"),
                    "{path}: {text} is not New York's summer time"
                );
            } else {
                // Times inside words (summaries, notes) too: never Shanghai's, never UTC.
                assert!(!text.contains("+08:00"), "{path}: {text}");
                assert!(!text.contains("000000Z"), "{path}: {text}");
                in_words += usize::from(text.contains("-04:00"));
            }
        }
    }
    assert!(times > 20, "{times} times in {answers:#?}");
    assert!(in_words > 0, "no summary names a time: {answers:#?}");
    // `opened_from` as a date is that date's midnight in New York.
    let (_, board) = demo
        .call(
            Method::GET,
            "/api/v1/cases?opened_from=2026-04-13",
            Some(admin),
            None,
        )
        .await;
    let (_, all) = demo
        .call(Method::GET, "/api/v1/cases", Some(admin), None)
        .await;
    let opened = |page: &Value| {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|c| c["opened_at"].as_str().expect("a time").to_owned())
            .collect::<Vec<_>>()
    };
    assert!(
        opened(&all).iter().any(|at| at.starts_with("2026-04-12T")),
        "{all}"
    );
    assert!(
        opened(&board)
            .iter()
            .all(|at| at.as_str() >= "2026-04-13T00:00:00-04:00"),
        "{board}"
    );
}
