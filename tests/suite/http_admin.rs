//! Administration over HTTP on the demo (issue 14): the org chart (units created, renamed and
//! moved, retired only when they lead no open case), actors and their roles (a revoked role's
//! token refused from the next request, and listed as revoked), roles as data, workflow
//! definitions published as TOML or JSON (versions only go up, the key at fault named), and a
//! second community in the same store whose administrator sees and changes only their own.
//!
//! Every refusal is checked for its status, its field, and that it wrote nothing.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::service::DemoService;

const ADMIN: &str = "wang.secretary";

fn head(demo: &DemoService) -> Option<u64> {
    demo.service.engine().log().head().map(|h| h.position.get())
}

/// A refusal: its status and field, and nothing written.
async fn refused(
    demo: &DemoService,
    method: Method,
    path: &str,
    token: &str,
    body: Value,
    status: StatusCode,
    field: &str,
) -> Value {
    let before = head(demo);
    let (got, answer) = demo.call(method, path, Some(token), Some(body)).await;
    assert_eq!(got, status, "{path}: {answer}");
    if field.is_empty() {
        assert!(answer["error"]["field"].is_null(), "{path}: {answer}");
    } else {
        assert_eq!(answer["error"]["field"], field, "{path}: {answer}");
    }
    assert_eq!(head(demo), before, "{path}: a refusal wrote");
    answer
}

#[tokio::test]
async fn the_org_chart_is_administered_over_http() {
    let demo = DemoService::start("http-admin-units");
    let admin = demo.token(ADMIN).to_owned();
    let ok = |status: StatusCode, answer: &Value| {
        assert!(status.is_success(), "{status} {answer}");
    };

    let (status, unit) = demo
        .call(
            Method::POST,
            "/api/v1/units",
            Some(&admin),
            Some(json!({"id": "grid-9", "name": "第九网格 grid 9", "tier": "grid", "parent": "tonghui"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{unit}");
    assert_eq!(unit["parent"], "tonghui");
    assert_eq!(unit["retired"], false);
    // The tier rules, an unknown parent, an existing id, a malformed id.
    refused(
        &demo,
        Method::POST,
        "/api/v1/units",
        &admin,
        json!({"id": "shop-x", "name": "商铺", "tier": "shop", "parent": "grid-9"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "parent",
    )
    .await;
    refused(
        &demo,
        Method::POST,
        "/api/v1/units",
        &admin,
        json!({"id": "grid-10", "name": "网格", "tier": "grid", "parent": "nowhere"}),
        StatusCode::NOT_FOUND,
        "parent",
    )
    .await;
    refused(
        &demo,
        Method::POST,
        "/api/v1/units",
        &admin,
        json!({"id": "grid-9", "name": "again", "tier": "grid", "parent": "tonghui"}),
        StatusCode::CONFLICT,
        "",
    )
    .await;
    refused(
        &demo,
        Method::POST,
        "/api/v1/units",
        &admin,
        json!({"id": "Grid Nine", "name": "网格", "tier": "grid", "parent": "tonghui"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "id",
    )
    .await;
    refused(
        &demo,
        Method::POST,
        "/api/v1/units",
        &admin,
        json!({"id": "grid-11", "name": "网格", "tier": "district", "parent": "tonghui"}),
        StatusCode::BAD_REQUEST,
        "tier",
    )
    .await;

    // An enterprise under it, renamed and moved to grid 2 in one request.
    let (status, answer) = demo
        .call(Method::POST, "/api/v1/units", Some(&admin),
            Some(json!({"id": "plaza-9", "name": "九号广场", "tier": "enterprise", "parent": "grid-9"})))
        .await;
    ok(status, &answer);
    let (status, moved) = demo
        .call(
            Method::PATCH,
            "/api/v1/units/plaza-9",
            Some(&admin),
            Some(json!({"name": "九号广场 Plaza 9", "parent": "grid-2"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(
        (moved["name"].as_str(), moved["parent"].as_str()),
        (Some("九号广场 Plaza 9"), Some("grid-2"))
    );
    // Both or neither: a rename with an impossible move writes nothing.
    refused(
        &demo,
        Method::PATCH,
        "/api/v1/units/plaza-9",
        &admin,
        json!({"name": "改名", "parent": "tonghui"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "parent",
    )
    .await;
    refused(
        &demo,
        Method::PATCH,
        "/api/v1/units/plaza-9",
        &admin,
        json!({}),
        StatusCode::BAD_REQUEST,
        "name",
    )
    .await;
    refused(
        &demo,
        Method::PATCH,
        "/api/v1/units/no-such-unit",
        &admin,
        json!({"name": "无"}),
        StatusCode::NOT_FOUND,
        "",
    )
    .await;

    // Retiring: refused for a unit that leads open cases, naming them; then done for one
    // that leads none, which then takes no case.
    let (status, case) = demo
        .call(
            Method::POST,
            "/api/v1/cases",
            Some(&admin),
            Some(json!({
            "workflow": "service-request", "unit_id": "grid-9",
            "title": "admin test: 路灯", "fields": {"category": "public_facilities"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{case}");
    let case_id = case["id"].as_str().expect("an id").to_owned();
    let answer = refused(
        &demo,
        Method::POST,
        "/api/v1/units/grid-9/retire",
        &admin,
        json!({}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "id",
    )
    .await;
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&case_id)),
        "{answer}"
    );
    let (status, retired) = demo
        .call(
            Method::POST,
            "/api/v1/units/plaza-9/retire",
            Some(&admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{retired}");
    assert_eq!(retired["retired"], true);
    let (status, answer) = demo
        .call(
            Method::POST,
            "/api/v1/cases",
            Some(&admin),
            Some(json!({
            "workflow": "service-request", "unit_id": "plaza-9",
            "title": "admin test", "fields": {"category": "other"}})),
        )
        .await;
    assert!(status.is_client_error(), "{status} {answer}");

    // The unit's administrative history: who did what, in order.
    let (status, history) = demo
        .call(
            Method::GET,
            "/api/v1/units/plaza-9/history",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let changes: Vec<(&str, &str)> = history["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap_or(""),
                c["actor"]["id"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("UnitCreated", ADMIN),
            ("UnitRenamed", ADMIN),
            ("UnitMoved", ADMIN),
            ("UnitRetired", ADMIN)
        ],
        "{history}"
    );
    let grid = demo.token("li.grid1").to_owned();
    let (status, _) = demo
        .call(
            Method::GET,
            "/api/v1/units/plaza-9/history",
            Some(&grid),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a grid worker reads no history"
    );

    // Only community administrators: a grid worker is refused by the policy.
    let (status, _) = demo
        .call(
            Method::POST,
            "/api/v1/units",
            Some(&grid),
            Some(json!({"id": "x", "name": "x", "tier": "enterprise", "parent": "grid-1"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_revoked_role_takes_its_tokens_with_it() {
    let demo = DemoService::start("http-admin-grants");
    let admin = demo.token(ADMIN).to_owned();
    let (status, actor) = demo
        .call(
            Method::POST,
            "/api/v1/actors",
            Some(&admin),
            Some(json!({"id": "xu.volunteer", "name": "徐志愿 volunteer Xu"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{actor}");
    refused(
        &demo,
        Method::POST,
        "/api/v1/actors",
        &admin,
        json!({"id": "xu.volunteer", "name": "again"}),
        StatusCode::CONFLICT,
        "",
    )
    .await;
    let (status, actor) = demo
        .call(
            Method::POST,
            "/api/v1/actors/xu.volunteer/roles",
            Some(&admin),
            Some(json!({"role": "volunteer", "unit_id": "grid-1"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{actor}");
    assert_eq!(
        actor["roles"],
        json!([{"role": "volunteer", "unit_id": "grid-1"}])
    );
    refused(
        &demo,
        Method::POST,
        "/api/v1/actors/xu.volunteer/roles",
        &admin,
        json!({"role": "night_watch", "unit_id": "grid-1"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "role",
    )
    .await;
    refused(
        &demo,
        Method::POST,
        "/api/v1/actors/nobody/roles",
        &admin,
        json!({"role": "volunteer", "unit_id": "grid-1"}),
        StatusCode::NOT_FOUND,
        "",
    )
    .await;
    let (status, listed) = demo
        .call(Method::GET, "/api/v1/actors", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(listed["actors"]
        .as_array()
        .expect("actors")
        .iter()
        .any(|a| a["id"] == "xu.volunteer"));

    // A token for the grant works until the role is revoked, then not at all.
    let (status, issued) = demo
        .call(Method::POST, "/api/v1/tokens", Some(&admin), Some(json!({
            "actor": "xu.volunteer", "role": "volunteer", "unit_id": "grid-1", "name": "Xu's phone"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let token = issued["token"].as_str().expect("a secret").to_owned();
    let (status, _) = demo
        .call(Method::GET, "/api/v1/units", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, actor) = demo
        .call(
            Method::POST,
            "/api/v1/actors/xu.volunteer/roles/revoke",
            Some(&admin),
            Some(json!({"role": "volunteer", "unit_id": "grid-1"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{actor}");
    assert_eq!(actor["roles"], json!([]));
    let (status, answer) = demo
        .call(Method::GET, "/api/v1/units", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let (_, tokens) = demo
        .call(Method::GET, "/api/v1/tokens", Some(&admin), None)
        .await;
    let listed = tokens["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["id"] == issued["id"])
        .cloned()
        .expect("listed");
    assert!(listed["revoked_at"].is_string(), "{listed}");
    // Granted again, the old token stays revoked.
    demo.call(
        Method::POST,
        "/api/v1/actors/xu.volunteer/roles",
        Some(&admin),
        Some(json!({"role": "volunteer", "unit_id": "grid-1"})),
    )
    .await;
    let (status, _) = demo
        .call(Method::GET, "/api/v1/units", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

fn lighting(version: u32, role: &str) -> String {
    format!(
        r#"
id = "street-lighting"
version = {version}
name = "路灯报修 street lighting"
initial_stage = "reported"

[open]
roles = ["resident", "grid_worker"]
scope = "any"

[[stages]]
id = "reported"
name = "已报修"

[[stages]]
id = "repaired"
name = "已修复"
terminal = true

[[actions]]
id = "repair"
name = "修复"
from = ["reported"]
to = "repaired"
roles = ["{role}"]
scope = "subtree"
"#
    )
}

async fn publish(
    demo: &DemoService,
    token: &str,
    media: &str,
    body: String,
) -> (StatusCode, Value) {
    let auth = format!("Bearer {token}");
    let (status, _, bytes) = demo
        .call_bytes(
            Method::POST,
            "/api/v1/workflows",
            &[("authorization", &auth), ("content-type", media)],
            body.into_bytes(),
        )
        .await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn roles_and_workflows_are_data_published_over_http() {
    let demo = DemoService::start("http-admin-workflows");
    let admin = demo.token(ADMIN).to_owned();
    // A role nobody defined: the key at fault, nothing written.
    let before = head(&demo);
    let (status, answer) = publish(
        &demo,
        &admin,
        "application/toml",
        lighting(1, "street_electrician"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["field"], "actions.repair.roles");
    assert_eq!(head(&demo), before);
    let (status, role) = demo
        .call(
            Method::POST,
            "/api/v1/roles",
            Some(&admin),
            Some(json!({"id": "street_electrician", "name": "电工 street electrician"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{role}");
    let (status, again) = demo
        .call(
            Method::POST,
            "/api/v1/roles",
            Some(&admin),
            Some(json!({"id": "street_electrician", "name": "电工 street electrician"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    refused(
        &demo,
        Method::POST,
        "/api/v1/roles",
        &admin,
        json!({"id": "grid_worker", "name": "网格员"}),
        StatusCode::CONFLICT,
        "",
    )
    .await;
    let (_, roles) = demo
        .call(Method::GET, "/api/v1/roles", Some(&admin), None)
        .await;
    let roles = roles["roles"].as_array().expect("roles");
    assert!(roles
        .iter()
        .any(|r| r["id"] == "street_electrician" && r["built_in"] == false));
    assert_eq!(
        roles.iter().filter(|r| r["built_in"] == true).count(),
        14,
        "13 and the system"
    );

    // Published as TOML; the same again is 200 unchanged; JSON for the next version.
    let (status, answer) = publish(
        &demo,
        &admin,
        "application/toml",
        lighting(1, "street_electrician"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(
        answer,
        json!({"id": "street-lighting", "version": 1, "changed": true})
    );
    let (status, answer) = publish(
        &demo,
        &admin,
        "application/toml",
        lighting(1, "street_electrician"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["changed"], false);
    let (status, answer) = publish(
        &demo,
        &admin,
        "application/toml",
        lighting(1, "grid_worker"),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("version")),
        "{answer}"
    );
    let definition: toml::Value = toml::from_str(&lighting(2, "grid_worker")).expect("TOML");
    let as_json = serde_json::to_string(&definition).expect("JSON");
    let (status, answer) = publish(&demo, &admin, "application/json", as_json).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["version"], 2);
    let (status, answer) = publish(
        &demo,
        &admin,
        "application/json",
        r#"{"id": "x", "version": "two"}"#.into(),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("version")),
        "{answer}"
    );
    let (status, _) = publish(&demo, &admin, "text/plain", lighting(3, "grid_worker")).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let grid = demo.token("li.grid1").to_owned();
    let (status, _) = publish(&demo, &grid, "application/toml", lighting(3, "grid_worker")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, latest) = demo
        .call(
            Method::GET,
            "/api/v1/workflows/street-lighting",
            Some(&grid),
            None,
        )
        .await;
    assert_eq!(
        (status, latest["version"].as_u64()),
        (StatusCode::OK, Some(2)),
        "{latest}"
    );
    let (status, versions) = demo
        .call(
            Method::GET,
            "/api/v1/workflows/street-lighting/versions",
            Some(&grid),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let origins: Vec<(u64, &str)> = versions["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            (
                v["definition"]["version"].as_u64().unwrap_or(0),
                v["origin"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(origins, [(1, "published"), (2, "published")]);
    assert_eq!(
        versions["versions"][0]["published_by"],
        json!({"actor": ADMIN, "role": "community_admin", "unit_id": "tonghui"}),
        "{versions}"
    );
    let (status, _) = demo
        .call(
            Method::GET,
            "/api/v1/workflows/no-such/versions",
            Some(&grid),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A case on version 1 moves to 2.
    let (status, case) = demo
        .call(Method::POST, "/api/v1/cases", Some(&grid), Some(json!({
            "workflow": "street-lighting", "workflow_version": 1, "unit_id": "grid-1", "title": "路灯不亮"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{case}");
    let path = format!(
        "/api/v1/cases/{}/migrate",
        case["id"].as_str().expect("an id")
    );
    let (status, migrated) = demo
        .call(
            Method::POST,
            &path,
            Some(&admin),
            Some(json!({"version": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{migrated}");
    assert_eq!(migrated["workflow"], "street-lighting@2");
}

#[tokio::test]
async fn a_second_community_is_its_own_administrators_alone() {
    let demo = DemoService::start("http-admin-communities");
    let store_admin = demo.token(ADMIN).to_owned();
    for (path, body) in [
        (
            "/api/v1/units",
            json!({"id": "jade-river", "name": "玉河社区 Jade River", "tier": "community"}),
        ),
        (
            "/api/v1/actors",
            json!({"id": "sun.admin", "name": "孙主任"}),
        ),
        (
            "/api/v1/actors/sun.admin/roles",
            json!({"role": "community_admin", "unit_id": "jade-river"}),
        ),
    ] {
        let (status, answer) = demo
            .call(Method::POST, path, Some(&store_admin), Some(body))
            .await;
        assert!(status.is_success(), "{path}: {status} {answer}");
    }
    let (status, issued) = demo
        .call(Method::POST, "/api/v1/tokens", Some(&store_admin), Some(json!({
            "actor": "sun.admin", "role": "community_admin", "unit_id": "jade-river", "name": "Sun"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let sun = issued["token"].as_str().expect("a secret").to_owned();

    // Sun builds Jade River and sees only it.
    let (status, answer) = demo
        .call(Method::POST, "/api/v1/units", Some(&sun),
            Some(json!({"id": "jade-grid-1", "name": "玉河第一网格", "tier": "grid", "parent": "jade-river"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (_, units) = demo
        .call(Method::GET, "/api/v1/units", Some(&sun), None)
        .await;
    let ids: Vec<&str> = units["units"]
        .as_array()
        .expect("units")
        .iter()
        .filter_map(|u| u["id"].as_str())
        .collect();
    assert_eq!(ids, ["jade-river", "jade-grid-1"]);
    // Tonghui is not theirs: as if it did not exist.
    refused(
        &demo,
        Method::PATCH,
        "/api/v1/units/grid-1",
        &sun,
        json!({"name": "x"}),
        StatusCode::NOT_FOUND,
        "",
    )
    .await;
    refused(
        &demo,
        Method::POST,
        "/api/v1/units",
        &sun,
        json!({"id": "x-grid", "name": "x", "tier": "grid", "parent": "tonghui"}),
        StatusCode::NOT_FOUND,
        "parent",
    )
    .await;
    // Nor may Sun add communities: that is the store's administrators'.
    let (status, _) = demo
        .call(
            Method::POST,
            "/api/v1/units",
            Some(&sun),
            Some(json!({"id": "other", "name": "其他社区", "tier": "community"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // And Tonghui's administrator does not run Jade River.
    refused(
        &demo,
        Method::PATCH,
        "/api/v1/units/jade-grid-1",
        &store_admin,
        json!({"name": "x"}),
        StatusCode::NOT_FOUND,
        "",
    )
    .await;
    let (_, actors) = demo
        .call(Method::GET, "/api/v1/actors", Some(&sun), None)
        .await;
    let ids: Vec<&str> = actors["actors"]
        .as_array()
        .expect("actors")
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(ids, ["sun.admin"], "{actors}");
}
