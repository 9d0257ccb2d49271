//! The OpenAPI document describes what the service really answers: for every JSON route of
//! the typed groups (`TYPED_TAGS`), real answers from the Tonghui demo validate, with a real
//! JSON Schema validator, against the schema the document gives for that route and status.
//! Those schemas are built from the Rust types the handlers serialize
//! (`openapi::answer_schema_of`), so this holds by construction; the test proves it, and fails
//! when a type's schema and its serialization part (a hand-written `Serialize`, a `#[serde]`
//! attribute schemars does not follow, a route that names the wrong type). The org and
//! workflow reads are probed too.

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::common::service::DemoService;

/// The route groups (OpenAPI tags) whose every JSON route must have a probe here.
const TYPED_TAGS: &[&str] = &[
    "reports",
    "directives",
    "cases",
    "tokens",
    "calendar",
    "operations",
    "open311",
];

/// One real request and the route of the document that describes its answer.
struct Probe {
    method: Method,
    /// The route's path as the document names it (`/api/v1/units/{id}/inbox`).
    route: &'static str,
    /// The request's path and query; `{case}` and `{directive}` stand for the ids that
    /// earlier probes created.
    path: String,
    actor: &'static str,
    body: Option<Body>,
    status: StatusCode,
    /// The name under which the answer's `id` is kept for later paths.
    keeps: Option<&'static str>,
}

/// A request's body.
enum Body {
    /// JSON, for the native API.
    Json(Value),
    /// An Open311 filing's form, to which the actor's token is added as its `api_key`.
    Form(&'static str),
}

impl Probe {
    /// Keeps the answer's `id` as `{name}` for later paths.
    fn keeps(mut self, name: &'static str) -> Self {
        self.keeps = Some(name);
        self
    }

    /// Expects `status` instead of the usual 200 (GET) or 201 (POST).
    fn answers(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

fn get(route: &'static str, path: &str, actor: &'static str) -> Probe {
    Probe {
        method: Method::GET,
        route,
        path: path.to_owned(),
        actor,
        body: None,
        status: StatusCode::OK,
        keeps: None,
    }
}

fn post(route: &'static str, path: &str, actor: &'static str, body: Value) -> Probe {
    Probe {
        method: Method::POST,
        route,
        path: path.to_owned(),
        actor,
        body: Some(Body::Json(body)),
        status: StatusCode::CREATED,
        keeps: None,
    }
}

/// Requests, in order, with answers that fill every part of their schema the demo can fill:
/// lists with items, a filter given and not (a value and a null). The demo's own cases are
/// closed by its end, so the first requests open a case and issue a directive, for the inboxes.
fn probes(demo: &DemoService) -> Vec<Probe> {
    let inbox = "/api/v1/units/{id}/inbox";
    let overdue = "/api/v1/units/{id}/overdue";
    let rates = "/api/v1/reports/rates";
    let stats = "/api/v1/reports/stats";
    let lists = "/api/v1/lists/{kind}";
    let case = json!({
        "workflow": "service-request",
        "unit_id": "grid-1",
        "title": "井盖松动 loose manhole cover",
        "fields": {"category": "public_facilities"},
    });
    let with_everything = json!({
        "workflow": "service-request",
        "unit_id": "grid-1",
        "title": "路灯不亮 street light out",
        "description": "The light by building 3 is out.",
        "fields": {"category": "public_facilities", "location": "3 幢"},
        "requester": {"name": "李小明", "phone": "13812345678"},
        "place": {"lat": 29.3069, "long": 120.0751, "address": "稠城街道通惠社区 3 幢"},
    });
    let one_case = "/api/v1/cases/{id}";
    let escalated = format!("/api/v1/cases/{}", demo.run.escalated_case);
    let merged = format!("/api/v1/cases/{}", demo.run.duplicate_case);
    let directive = json!({
        "title": "消防通道检查 fire lanes",
        "body": "Check that every fire lane is clear.",
        "kind": "social_stability",
        "within": "2 working days",
    });
    let tree = "/api/v1/directives/{id}";
    let acknowledge = "/api/v1/directives/{id}/acknowledge";
    let report = "/api/v1/directives/{id}/report";
    let demo_directive = format!("/api/v1/directives/{}", demo.run.directive);
    vec![
        post("/api/v1/cases", "/api/v1/cases", "li.grid1", case),
        post(
            "/api/v1/cases",
            "/api/v1/cases",
            "li.grid1",
            with_everything,
        )
        .keeps("case"),
        get(one_case, "/api/v1/cases/{case}", "li.grid1"),
        post(
            "/api/v1/cases/{id}/actions",
            "/api/v1/cases/{case}/actions",
            "li.grid1",
            json!({"action": "dispatch", "unit": "yiwu-heart"}),
        )
        .answers(StatusCode::OK),
        get(one_case, "/api/v1/cases/{case}", "chen.yiwuheart"),
        get(one_case, "/api/v1/cases/{case}?version=1", "li.grid1"),
        get(
            one_case,
            "/api/v1/cases/{case}?as_of=2030-01-01T00:00:00%2B08:00",
            "li.grid1",
        ),
        post(
            "/api/v1/cases/{id}/contact",
            "/api/v1/cases/{case}/contact",
            "li.grid1",
            json!({"purpose": "to call back about the light"}),
        )
        .answers(StatusCode::OK),
        get(
            "/api/v1/cases/{id}/history",
            "/api/v1/cases/{case}/history",
            "li.grid1",
        ),
        get(
            "/api/v1/cases/{id}/audit",
            "/api/v1/cases/{case}/audit",
            "li.grid1",
        ),
        get(one_case, &escalated, "wang.secretary"),
        get(one_case, &merged, "wang.secretary"),
        get(
            "/api/v1/cases/{id}/history",
            &format!("{escalated}/history"),
            "wang.secretary",
        ),
        get(
            "/api/v1/cases/{id}/audit",
            &format!("{escalated}/audit"),
            "wang.secretary",
        ),
        post(
            "/api/v1/directives",
            "/api/v1/directives",
            "li.grid1",
            directive,
        )
        .keeps("directive"),
        get(tree, "/api/v1/directives/{directive}", "li.grid1"),
        get(tree, "/api/v1/directives/{directive}", "chen.yiwuheart"),
        post(
            acknowledge,
            "/api/v1/directives/{directive}/acknowledge",
            "chen.yiwuheart",
            json!({}),
        )
        .answers(StatusCode::OK),
        post(
            report,
            "/api/v1/directives/{directive}/report",
            "chen.yiwuheart",
            json!({"note": "all clear"}),
        )
        .answers(StatusCode::OK),
        get(tree, "/api/v1/directives/{directive}", "chen.yiwuheart"),
        get(tree, &demo_directive, "wang.secretary"),
        get("/api/v1/directives", "/api/v1/directives", "wang.secretary"),
        get(
            "/api/v1/directives",
            "/api/v1/directives?limit=1",
            "zhao.grid2",
        ),
        get(inbox, "/api/v1/units/grid-1/inbox", "li.grid1"),
        get(inbox, "/api/v1/units/yiwu-heart/inbox", "chen.yiwuheart"),
        get(
            inbox,
            "/api/v1/units/grid-1/inbox?role=grid_worker&limit=1",
            "li.grid1",
        ),
        get("/api/v1/cases", "/api/v1/cases", "wang.secretary"),
        get(
            "/api/v1/cases",
            "/api/v1/cases?status=closed&limit=2",
            "wang.secretary",
        ),
        get(
            overdue,
            "/api/v1/units/tonghui/overdue?now=2026-12-31",
            "wang.secretary",
        ),
        get(overdue, "/api/v1/units/tonghui/overdue", "wang.secretary"),
        get(
            rates,
            "/api/v1/reports/rates?month=2026-04",
            "wang.secretary",
        ),
        get(
            rates,
            "/api/v1/reports/rates?month=2026-04&tier=enterprise",
            "wang.secretary",
        ),
        get(stats, "/api/v1/reports/stats", "wang.secretary"),
        get(
            stats,
            "/api/v1/reports/stats?year=2026&community=tonghui",
            "li.grid1",
        ),
        get(lists, "/api/v1/lists/projects", "wang.secretary"),
        get(lists, "/api/v1/lists/needs?retired=true", "wang.secretary"),
        get(lists, "/api/v1/lists/resources?limit=1", "wang.secretary"),
        get(
            "/api/v1/units/{id}/standing",
            "/api/v1/units/shop-xt-033/standing",
            "wu.xintiandi",
        ),
        get(
            "/api/v1/units/{id}/standing",
            "/api/v1/units/shop-yh-101/standing",
            "zheng.tea",
        ),
        get(
            "/api/v1/reports/recommended",
            "/api/v1/reports/recommended?quarter=2026Q2",
            "ma.consumer",
        ),
        get(
            "/api/v1/reports/flags",
            "/api/v1/reports/flags?period=2026-04",
            "zheng.tea",
        ),
        get("/api/v1/tokens", "/api/v1/tokens", "wang.secretary"),
        post(
            "/api/v1/tokens",
            "/api/v1/tokens",
            "wang.secretary",
            json!({"actor": "sun.grid3", "role": "grid_worker", "unit_id": "grid-3", "name": "schema probe"}),
        )
        .keeps("token"),
        post(
            "/api/v1/tokens/{id}/revoke",
            "/api/v1/tokens/{token}/revoke",
            "wang.secretary",
            json!({"reason": "the probe is done"}),
        )
        .answers(StatusCode::OK),
        get("/api/v1/tokens", "/api/v1/tokens", "wang.secretary"),
        Probe {
            method: Method::PUT,
            route: "/api/v1/calendar/{year}",
            path: "/api/v1/calendar/2027".to_owned(),
            actor: "wang.secretary",
            body: Some(Body::Json(json!({
                "source": "test schedule for 2027 (not the State Council's notice)",
                "off": [["2027-01-01", "2027-01-03"]],
                "work": ["2027-01-09"],
            }))),
            status: StatusCode::OK,
            keeps: None,
        },
        get("/api/v1/calendar", "/api/v1/calendar", "ma.consumer"),
        get("/open311/v2/discovery.json", "/open311/v2/discovery.json", "fixmystreet"),
        get("/open311/v2/services.json", "/open311/v2/services.json", "fixmystreet"),
        get(
            "/open311/v2/services/{code}",
            "/open311/v2/services/service-request.json",
            "fixmystreet",
        ),
        get("/open311/v2/requests.json", "/open311/v2/requests.json", "fixmystreet"),
        get(
            "/open311/v2/requests.json",
            "/open311/v2/requests.json?extensions=true",
            "fixmystreet",
        ),
        get(
            "/open311/v2/requests/{service_request_id}",
            &format!("/open311/v2/requests/{}.json", demo.run.smooth_case),
            "fixmystreet",
        ),
        Probe {
            method: Method::POST,
            route: "/open311/v2/requests.json",
            path: "/open311/v2/requests.json".to_owned(),
            actor: "fixmystreet",
            body: Some(Body::Form(
                "service_code=service-request&attribute%5Bcategory%5D=safety&address_string=%E9%80%9A%E6%83%A0%E7%A4%BE%E5%8C%BA&account_id=app-42",
            )),
            status: StatusCode::OK,
            keeps: None,
        },
        get(
            "/open311/v2/servicerequestupdates.json",
            "/open311/v2/servicerequestupdates.json",
            "fixmystreet",
        ),
        get("/api/v1/units", "/api/v1/units", "wang.secretary"),
        get("/api/v1/actors", "/api/v1/actors", "wang.secretary"),
        get("/api/v1/roles", "/api/v1/roles", "wang.secretary"),
        get("/api/v1/workflows", "/api/v1/workflows", "ma.consumer"),
        get("/api/v1/workflows/{id}", "/api/v1/workflows/service-request", "ma.consumer"),
        get("/api/v1/workflows/{id}/versions", "/api/v1/workflows/service-request/versions", "ma.consumer"),
        get("/healthz", "/healthz", "ma.consumer"),
        // Errors, native and Open311's, validate against their components.
        get(one_case, "/api/v1/cases/not-a-case", "li.grid1").answers(StatusCode::NOT_FOUND),
        get("/api/v1/reports/flags", "/api/v1/reports/flags", "zheng.tea")
            .answers(StatusCode::BAD_REQUEST),
        get(
            "/open311/v2/services/{code}",
            "/open311/v2/services/no-such-service.json",
            "fixmystreet",
        )
        .answers(StatusCode::NOT_FOUND),
        get("/readyz", "/readyz", "ma.consumer"),
        get("/api/openapi.json", "/api/openapi.json", "ma.consumer"),
    ]
}

/// An OpenAPI 3.0 schema as plain JSON Schema (draft 4, which OpenAPI 3.0's schemas extend):
/// `nullable: true` becomes "this, or null".
fn json_schema(openapi: &Value) -> Value {
    match openapi {
        Value::Object(object) => {
            let mut converted: Map<String, Value> = object
                .iter()
                .filter(|(key, value)| !(key.as_str() == "nullable" && value.is_boolean()))
                .map(|(key, value)| (key.clone(), json_schema(value)))
                .collect();
            if object.get("nullable") == Some(&Value::Bool(true)) {
                let description = converted.remove("description");
                converted = Map::from_iter([(
                    "anyOf".to_owned(),
                    json!([Value::Object(converted), {"type": "null"}]),
                )]);
                if let Some(description) = description {
                    converted.insert("description".to_owned(), description);
                }
            }
            Value::Object(converted)
        }
        Value::Array(items) => Value::Array(items.iter().map(json_schema).collect()),
        other => other.clone(),
    }
}

/// The schema the document gives for a JSON answer of `route` with `status`.
fn answer_schema(document: &Value, method: &Method, route: &str, status: StatusCode) -> Value {
    let operation = &document["paths"][route][method.as_str().to_lowercase()];
    let mut schema = &operation["responses"][status.as_u16().to_string()]["content"]
        ["application/json"]["schema"];
    // An error's body is one of the document's components.
    if let Some(name) = schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        schema = &document["components"]["schemas"][name];
    }
    assert!(
        schema.is_object(),
        "the document has no JSON schema for {method} {route} {status}"
    );
    json_schema(schema)
}

/// What `schema` finds wrong with `answer` (empty: it is valid).
fn violations(schema: &Value, answer: &Value) -> Vec<String> {
    let validator = jsonschema::draft4::new(schema).expect("the document's schema compiles");
    validator
        .iter_errors(answer)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Counts the array items in `value`, at any depth: a route whose answers hold none would have
/// its items' schema unchecked.
fn items_in(value: &Value) -> usize {
    match value {
        Value::Array(items) => items.len() + items.iter().map(items_in).sum::<usize>(),
        Value::Object(object) => object.values().map(items_in).sum(),
        _ => 0,
    }
}

/// Whether `schema` describes a list anywhere.
fn has_lists(schema: &Value) -> bool {
    match schema {
        Value::Object(object) => {
            object.get("type") == Some(&json!("array")) || object.values().any(has_lists)
        }
        Value::Array(items) => items.iter().any(has_lists),
        _ => false,
    }
}

#[tokio::test]
async fn real_answers_validate_against_the_openapi_document() {
    let demo = DemoService::start("http-schemas");
    let (status, document) = demo
        .call(Method::GET, "/api/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let probes = probes(&demo);

    // Every route of the typed groups that answers JSON has a probe.
    for (route, operations) in document["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().expect("operations") {
            let tag = operation["tags"][0].as_str().expect("a tag");
            let answers_json = operation["responses"]
                .as_object()
                .expect("responses")
                .iter()
                .any(|(status, response)| {
                    status.starts_with('2')
                        && response["content"]["application/json"]["schema"].is_object()
                });
            if !TYPED_TAGS.contains(&tag) || !answers_json {
                continue;
            }
            let probed = probes
                .iter()
                .any(|p| p.route == route && p.method.as_str().eq_ignore_ascii_case(method));
            assert!(probed, "{method} {route} ({tag}) has no probe in probes()");
        }
    }

    // Per route: whether its schema has lists, and how many items its answers held.
    let mut items: BTreeMap<(&str, &str), (bool, usize)> = BTreeMap::new();
    let mut kept: BTreeMap<&str, String> = BTreeMap::new();
    for probe in &probes {
        let path = kept.iter().fold(probe.path.clone(), |path, (name, id)| {
            path.replace(&format!("{{{name}}}"), id)
        });
        let shown = format!("{} {} as {}", probe.method, path, probe.actor);
        let token = demo.token(probe.actor);
        let (status, answer) = match &probe.body {
            Some(Body::Form(form)) => {
                let form = format!("api_key={token}&{form}");
                let headers = [("content-type", "application/x-www-form-urlencoded")];
                let (status, _, bytes) = demo
                    .call_bytes(probe.method.clone(), &path, &headers, form.into_bytes())
                    .await;
                (
                    status,
                    serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                )
            }
            Some(Body::Json(body)) => {
                demo.call(probe.method.clone(), &path, Some(token), Some(body.clone()))
                    .await
            }
            None => {
                demo.call(probe.method.clone(), &path, Some(token), None)
                    .await
            }
        };
        assert_eq!(status, probe.status, "{shown}: {answer}");
        let schema = answer_schema(&document, &probe.method, probe.route, status);
        let wrong = violations(&schema, &answer);
        assert!(wrong.is_empty(), "{shown}: {wrong:#?}\n{answer:#}");
        if let Some(name) = probe.keeps {
            let id = answer["id"].as_str().expect("an id to keep");
            kept.insert(name, id.to_owned());
        }
        let seen = items
            .entry((probe.method.as_str(), probe.route))
            .or_default();
        seen.0 |= has_lists(&schema);
        seen.1 += items_in(&answer);
    }
    for ((method, route), (lists, count)) in items {
        assert!(
            !lists || count > 0,
            "no answer of {method} {route} holds a list item"
        );
    }
}

/// The check above can fail: the schemas are strict enough that an answer with a field
/// missing, a field of the wrong type, a null where none is allowed or a value outside an
/// enumeration does not validate.
#[tokio::test]
async fn a_wrong_answer_does_not_validate() {
    let demo = DemoService::start("http-schemas-wrong");
    let (_, document) = demo
        .call(Method::GET, "/api/openapi.json", None, None)
        .await;
    let route = "/api/v1/units/{id}/standing";
    let schema = answer_schema(&document, &Method::GET, route, StatusCode::OK);
    let (status, standing) = demo
        .call(
            Method::GET,
            "/api/v1/units/shop-xt-033/standing",
            Some(demo.token("wu.xintiandi")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{standing}");
    assert_eq!(violations(&schema, &standing), Vec::<String>::new());

    let wrong = |change: &dyn Fn(&mut Value)| {
        let mut answer = standing.clone();
        change(&mut answer);
        answer
    };
    let cases: Vec<(&str, Value)> = vec![
        (
            "a required field missing",
            wrong(&|a| {
                a.as_object_mut().expect("object").remove("deducted");
            }),
        ),
        (
            "an always-present null left out",
            wrong(&|a| {
                a.as_object_mut().expect("object").remove("cycle");
            }),
        ),
        (
            "a string for a number",
            wrong(&|a| a["points"] = json!("ten")),
        ),
        (
            "a null where none is allowed",
            wrong(&|a| a["deducted"] = Value::Null),
        ),
        (
            "a flag of no colour",
            wrong(&|a| a["flags"]["2026-04"] = json!("green")),
        ),
        (
            "a history entry without its reason",
            wrong(&|a| {
                a["history"][0]
                    .as_object_mut()
                    .expect("an entry")
                    .remove("reason");
            }),
        ),
    ];
    for (what, answer) in cases {
        assert!(
            !violations(&schema, &answer).is_empty(),
            "{what} validates: {answer}"
        );
    }
}
