//! The dashboard's case pages in-process, with bearer tokens (a page takes one as it takes the
//! session cookie): a case's page and its live fragment, its action forms, the new-request
//! form and "my requests". What a page shows is checked against what the JSON API answers for
//! the same caller; what a form does, through the API afterwards.

use crate::common::pages::{form, head};
use crate::common::service::DemoService;
use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

/// A page (GET) as an actor: `(status, HTML)`.
async fn page(demo: &DemoService, actor: &str, path: &str) -> (StatusCode, String) {
    let auth = format!("Bearer {}", demo.token(actor));
    let (status, headers, body) = demo
        .call_bytes(Method::GET, path, &[("authorization", &auth)], Vec::new())
        .await;
    let html = String::from_utf8(body).expect("UTF-8");
    if status.is_success() {
        assert!(
            content_type(&headers).starts_with("text/html"),
            "GET {path}: {}",
            content_type(&headers)
        );
    }
    (status, html)
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A form posted as an actor: `(status, Location, HTML)`.
async fn post_form(
    demo: &DemoService,
    actor: &str,
    path: &str,
    pairs: &[(&str, &str)],
) -> (StatusCode, String, String) {
    let auth = format!("Bearer {}", demo.token(actor));
    let (status, headers, body) = demo
        .call_bytes(
            Method::POST,
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            form(pairs).into_bytes(),
        )
        .await;
    let location = headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, location, String::from_utf8(body).expect("UTF-8"))
}

/// A JSON call that must succeed.
async fn api(
    demo: &DemoService,
    actor: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let (status, answer) = demo.call(method, path, Some(demo.token(actor)), body).await;
    assert!(status.is_success(), "{actor} {path}: {status} {answer}");
    answer
}

/// Opens a service request at the community through the API as `actor` (a grid worker asks
/// upwards; the community then dispatches it).
async fn open(demo: &DemoService, actor: &str, title: &str, requester: Option<Value>) -> String {
    let mut body = json!({
        "workflow": "service-request",
        "unit_id": "tonghui",
        "title": title,
        "description": "路灯不亮 the street light is out",
        "fields": {"category": "public_facilities"},
    });
    if let Some(requester) = requester {
        body["requester"] = requester;
    }
    api(demo, actor, Method::POST, "/api/v1/cases", Some(body)).await["id"]
        .as_str()
        .expect("an id")
        .to_owned()
}

/// The case as the API shows it to `actor`.
async fn case(demo: &DemoService, actor: &str, id: &str) -> Value {
    api(
        demo,
        actor,
        Method::GET,
        &format!("/api/v1/cases/{id}"),
        None,
    )
    .await
}

/// The value of attribute `name` on the element whose `id` is `id`, in `html`.
fn attribute<'h>(html: &'h str, id: &str, name: &str) -> Option<&'h str> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    let element = &html[start..end];
    let key = format!("{name}=\"");
    let from = element.find(&key)? + key.len();
    let to = from + element[from..].find('"')?;
    Some(&element[from..to])
}

#[tokio::test]
async fn the_case_page_shows_the_facts_the_timeline_and_the_requester_masked() {
    let demo = DemoService::start("dashboard-cases-page");
    let id = open(
        &demo,
        "li.grid1",
        "路灯不亮 a street light is out",
        Some(json!({"name": "李四海", "phone": "13812345678"})),
    )
    .await;
    let answer = case(&demo, "wang.secretary", &id).await;
    let masked_phone = answer["requester"]["phone"]
        .as_str()
        .expect("a masked phone");
    let masked_name = answer["requester"]["name"].as_str().expect("a masked name");
    assert_ne!(masked_phone, "13812345678");

    let (status, html) = page(&demo, "wang.secretary", &format!("/cases/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains(masked_phone),
        "the masked phone {masked_phone}"
    );
    assert!(html.contains(masked_name), "the masked name {masked_name}");
    assert!(
        !html.contains("13812345678"),
        "the raw phone is on the page"
    );
    assert!(!html.contains("李四海"), "the raw name is on the page");
    for text in [
        "路灯不亮 a street light is out",
        "有事找社区",
        "受理",
        "哈希链已校验",
        "chain verified",
        // The first deadline's due time, by the business calendar.
        "business calendar",
        // The opening step: who, in which role and unit.
        "li.grid1",
        // The forms of the actions the community may take now: dispatch, merge, urge…
        "action=\"/cases/",
        "/actions/dispatch\"",
        "name=\"expected_version\"",
    ] {
        assert!(html.contains(text), "{text} missing from the page");
    }
    // The live section: the stream, the refresh, the types of case events.
    assert_eq!(
        attribute(&html, "case-live", "data-live-stream"),
        Some(format!("/api/v1/cases/{id}/events").as_str())
    );
    assert_eq!(
        attribute(&html, "case-live", "data-live-refresh"),
        Some(format!("/cases/{id}/timeline").as_str())
    );
    let types = attribute(&html, "case-live", "data-live-types").expect("types");
    for t in [
        "CaseOpened",
        "ActionTaken",
        "DeadlineSet",
        "SatisfactionRated",
    ] {
        assert!(types.split(' ').any(|x| x == t), "{t} not in {types}");
    }
    assert_eq!(
        attribute(&html, "case-live", "data-live-status"),
        Some("live-status")
    );
    // The version it shows: the stream's replay of it is not fetched again.
    assert_eq!(
        attribute(&html, "case-live", "data-live-version"),
        Some(answer["version"].to_string().as_str())
    );
    assert_eq!(attribute(&html, "live-status", "aria-live"), Some("polite"));
    // The dispatch form's unit field: a labelled select of the units of the community,
    // required, marked so in words.
    assert!(html.contains("<select id=\"act-dispatch-unit\" name=\"unit\" required"));
    assert!(html.contains("for=\"act-dispatch-unit\""));
    assert!(
        html.contains("value=\"grid-3\""),
        "grid 3 is in the community's subtree"
    );
    assert!(html.contains("必填"));

    // The fragment is the same section, alone.
    let (status, fragment) = page(&demo, "wang.secretary", &format!("/cases/{id}/timeline")).await;
    assert_eq!(status, StatusCode::OK, "{fragment}");
    assert!(fragment.starts_with("<section "), "{fragment}");
    assert_eq!(
        attribute(&fragment, "case-live", "data-live-refresh"),
        Some(format!("/cases/{id}/timeline").as_str())
    );
    assert!(!fragment.contains("<html"), "a fragment, not a page");
    assert!(fragment.contains("哈希链已校验"));
    assert!(fragment.contains(masked_phone));
}

#[tokio::test]
async fn a_form_moves_the_case_and_a_refusal_stands_beside_its_field() {
    let demo = DemoService::start("dashboard-cases-act");
    let id = open(&demo, "li.grid1", "井盖松动 a loose manhole cover", None).await;
    let version = case(&demo, "wang.secretary", &id).await["version"]
        .as_u64()
        .expect("a version")
        .to_string();

    // Dispatch to grid 1 from the page: 303 back to the case; the API sees it moved.
    let (status, location, body) = post_form(
        &demo,
        "wang.secretary",
        &format!("/cases/{id}/actions/dispatch"),
        &[
            ("expected_version", &version),
            ("unit", "grid-1"),
            ("note", "请尽快处理"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(location, format!("/cases/{id}"));
    let moved = case(&demo, "li.grid1", &id).await;
    assert_eq!(moved["stage"], "dispatched");
    assert_eq!(moved["lead_unit_id"], "grid-1");

    // The same form again, with the version the page showed before: 409, in words.
    let before = head(&demo);
    let (status, _, html) = post_form(
        &demo,
        "wang.secretary",
        &format!("/cases/{id}/actions/reassign"),
        &[
            ("expected_version", &version),
            ("unit", "grid-1"),
            ("reason", "再派"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{html}");
    assert!(html.contains("已被他人更改"), "{html}");
    assert_eq!(head(&demo), before, "a refusal writes nothing");

    // Signed for, then a reply without its required text: 422, the message beside the field.
    let (status, _, body) = post_form(
        &demo,
        "li.grid1",
        &format!("/cases/{id}/actions/sign_for"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let before = head(&demo);
    let (status, _, html) = post_form(
        &demo,
        "li.grid1",
        &format!("/cases/{id}/actions/reply"),
        &[("outcome", "resolved"), ("result", "")],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert_eq!(head(&demo), before, "a refusal writes nothing");
    assert_eq!(
        attribute(&html, "act-reply-result", "aria-describedby"),
        Some("act-reply-result-error")
    );
    assert_eq!(
        attribute(&html, "act-reply-result", "aria-invalid"),
        Some("true")
    );
    let error_at = html
        .find("id=\"act-reply-result-error\"")
        .expect("the error beside result");
    assert!(
        html[error_at..]
            .split("</p>")
            .next()
            .unwrap_or("")
            .contains("result"),
        "the message names the field: {}",
        &html[error_at..error_at + 300]
    );
    // The refused page says what the API's code is, and does not follow the case live (a
    // live update would put a fresh form over the refusal).
    assert!(html.contains("<meta name=\"civicflow-error\" content=\"unprocessable\">"));
    assert!(
        !html.contains("data-live-stream"),
        "a refused form's page follows the case"
    );
    // The choice the form was sent with is kept.
    assert!(
        html.contains("<option value=\"resolved\" selected"),
        "the posted choice"
    );
    // An action the case cannot take now: 422 naming it, above the forms.
    let (status, _, html) = post_form(
        &demo,
        "li.grid1",
        &format!("/cases/{id}/actions/close"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("id=\"actions-error\""), "{html}");
    // Complete: the case is replied.
    let (status, _, body) = post_form(
        &demo,
        "li.grid1",
        &format!("/cases/{id}/actions/reply"),
        &[
            ("outcome", "resolved"),
            ("result", "已更换井盖 the cover was replaced"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(case(&demo, "li.grid1", &id).await["stage"], "replied");
}

#[tokio::test]
async fn a_case_outside_the_scope_is_not_found_on_every_page() {
    let demo = DemoService::start("dashboard-cases-scope");
    let id = open(&demo, "li.grid1", "噪音扰民 noise at night", None).await;
    let before = head(&demo);
    for path in [format!("/cases/{id}"), format!("/cases/{id}/timeline")] {
        let (status, html) = page(&demo, "zhao.grid2", &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "GET {path}");
        assert!(!html.contains("噪音扰民"), "GET {path} shows the case");
    }
    let (status, _, html) = post_form(
        &demo,
        "zhao.grid2",
        &format!("/cases/{id}/actions/urge"),
        &[("note", "催一下")],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{html}");
    assert!(!html.contains("噪音扰民"));
    assert_eq!(head(&demo), before);
    // A malformed id, and one that names nothing.
    for path in [
        "/cases/not-a-case",
        "/cases/0192f3a0-0000-7000-8000-00000000dead",
    ] {
        let (status, _) = page(&demo, "wang.secretary", path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "GET {path}");
    }
}

#[tokio::test]
async fn residents_file_through_the_form_and_see_only_their_own_requests() {
    let demo = DemoService::start("dashboard-cases-mine");
    // The form: the workflows a resident may open, then the intake of one.
    let (status, html) = page(&demo, "tang.resident", "/cases/new").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("/cases/new?workflow=service-request"));
    let (status, html) = page(
        &demo,
        "tang.resident",
        "/cases/new?workflow=service-request",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("name=\"fields.category\" required"), "{html}");
    assert!(html.contains("name=\"idempotency_key\""));
    // A resident may file at any unit.
    assert!(html.contains("value=\"shop-xt-012\""));

    let mut filed = Vec::new();
    for (resident, title) in [
        ("tang.resident", "楼道灯坏了 the stairwell light is broken"),
        ("ma.consumer", "买到过期食品 expired food sold to me"),
    ] {
        let (status, location, body) = post_form(
            &demo,
            resident,
            "/cases",
            &[
                ("workflow", "service-request"),
                ("title", title),
                ("description", "请处理"),
                ("unit_id", "tonghui"),
                ("fields.category", "neighbourhood"),
                ("place.address", "新马路 5 号"),
                ("idempotency_key", &format!("dashboard-cases-{resident}")),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        let id = location
            .strip_prefix("/cases/")
            .expect("to the case")
            .to_owned();
        let answer = case(&demo, resident, &id).await;
        assert_eq!(answer["title"], title);
        assert_eq!(answer["place"]["address"], "新马路 5 号");
        filed.push((resident, title, id));
    }
    // The same form sent twice opens one case.
    let before = head(&demo);
    let (status, location, _) = post_form(
        &demo,
        "tang.resident",
        "/cases",
        &[
            ("workflow", "service-request"),
            ("title", filed[0].1),
            ("description", "请处理"),
            ("unit_id", "tonghui"),
            ("fields.category", "neighbourhood"),
            ("place.address", "新马路 5 号"),
            ("idempotency_key", "dashboard-cases-tang.resident"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, format!("/cases/{}", filed[0].2));
    assert_eq!(head(&demo), before, "a retry opens nothing");

    for (me, title, id) in &filed {
        let (status, html) = page(&demo, me, "/mine").await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(html.contains(title), "{me} sees their request");
        assert!(html.contains(&format!("/cases/{id}")));
        for (other, other_title, other_id) in &filed {
            if other == me {
                continue;
            }
            assert!(
                !html.contains(other_title),
                "{me} sees {other}'s request on /mine"
            );
            assert!(!html.contains(other_id.as_str()));
            for path in [
                format!("/cases/{other_id}"),
                format!("/cases/{other_id}/timeline"),
            ] {
                let (status, html) = page(&demo, me, &path).await;
                assert_eq!(status, StatusCode::NOT_FOUND, "{me} GET {path}");
                assert!(!html.contains(other_title));
            }
        }
    }
    // The demo's consumer dispute was filed by ma.consumer: theirs, newest last; not tang's.
    let (_, html) = page(&demo, "ma.consumer", "/mine").await;
    let dispute = html
        .find("手机维修后故障依旧")
        .expect("ma.consumer's dispute");
    let newer = html.find(filed[1].1).expect("ma.consumer's request");
    assert!(newer < dispute, "newest first");
    let (_, html) = page(&demo, "tang.resident", "/mine").await;
    assert!(!html.contains("手机维修后故障依旧"));
}

#[tokio::test]
async fn a_refused_intake_stands_beside_its_field_and_roles_that_may_not_open_are_told() {
    let demo = DemoService::start("dashboard-cases-new");
    let before = head(&demo);
    // No category: the engine's 422, beside the category's select.
    let (status, _, html) = post_form(
        &demo,
        "li.grid1",
        "/cases",
        &[
            ("workflow", "service-request"),
            ("title", "垃圾未清运 rubbish not collected"),
            ("unit_id", "grid-1"),
            ("fields.category", ""),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert_eq!(
        attribute(&html, "nc-category", "aria-describedby"),
        Some("nc-category-error")
    );
    assert!(html.contains("id=\"nc-category-error\""));
    // The title as posted is kept.
    assert!(html.contains("value=\"垃圾未清运 rubbish not collected\""));
    // A sibling grid is out of reach for a grid worker: 403 beside the unit.
    let (status, _, html) = post_form(
        &demo,
        "li.grid1",
        "/cases",
        &[
            ("workflow", "service-request"),
            ("title", "垃圾未清运"),
            ("unit_id", "grid-3"),
            ("fields.category", "environment"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    assert!(html.contains("id=\"nc-unit-id-error\""), "{html}");
    // No title: the API's 400, beside the title.
    let (status, _, html) = post_form(
        &demo,
        "li.grid1",
        "/cases",
        &[
            ("workflow", "service-request"),
            ("title", " "),
            ("unit_id", "grid-1"),
            ("fields.category", "environment"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(html.contains("id=\"nc-title-error\""), "{html}");
    // A field the form does not have: 400 naming it.
    let (status, _, html) = post_form(
        &demo,
        "li.grid1",
        "/cases",
        &[("workflow", "service-request"), ("colour", "red")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(html.contains("colour"));
    assert_eq!(head(&demo), before, "refusals write nothing");
    // An auditor may open nothing: told so, and 403 for a workflow they ask for.
    let (status, html) = page(&demo, "audit.office", "/cases/new").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("/cases/new?workflow="), "{html}");
    let (status, html) = page(&demo, "audit.office", "/cases/new?workflow=service-request").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    assert!(html.contains("id=\"workflow-error\""));
    let (status, _) = page(&demo, "li.grid1", "/cases/new?workflow=no-such-workflow").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_resident_rates_a_replied_request_from_its_page() {
    let demo = DemoService::start("dashboard-cases-rate");
    let id = open(&demo, "tang.resident", "下水道堵塞 a blocked drain", None).await;
    let act = |actor: &'static str, body: Value| {
        let demo = &demo;
        let id = id.clone();
        async move {
            api(
                demo,
                actor,
                Method::POST,
                &format!("/api/v1/cases/{id}/actions"),
                Some(body),
            )
            .await
        }
    };
    act(
        "wang.secretary",
        json!({"action": "dispatch", "unit": "grid-1"}),
    )
    .await;
    act("li.grid1", json!({"action": "sign_for"})).await;
    act(
        "li.grid1",
        json!({"action": "reply", "outcome": "resolved", "result": "已疏通 cleared"}),
    )
    .await;
    // The resident's page offers the rating: a select 1–5 with words.
    let (status, html) = page(&demo, "tang.resident", &format!("/cases/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("/actions/rate\""), "{html}");
    assert!(html.contains("<select id=\"act-rate-rating\" name=\"rating\" required"));
    assert!(html.contains("非常满意"));
    let (status, html) = page(&demo, "tang.resident", "/mine").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("您可办理") && html.contains("<span lang=\"en\">rate</span>"),
        "the rating waits for them: {html}"
    );
    let (status, _, body) = post_form(
        &demo,
        "tang.resident",
        &format!("/cases/{id}/actions/rate"),
        &[("rating", "5"), ("comment", "很及时")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let rated = case(&demo, "tang.resident", &id).await;
    assert_eq!(rated["rating"], 5);
    assert_eq!(rated["stage"], "visited");
    let (_, html) = page(&demo, "tang.resident", "/mine").await;
    assert!(html.contains("5/5"), "{html}");
}
