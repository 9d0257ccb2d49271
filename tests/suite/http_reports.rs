//! The org, directive and report routes in-process, on the Tonghui demo: the shape of each
//! answer, 404 outside the caller's scope, 403 for a role a route's policy leaves out, 400
//! naming a bad query parameter, and pages that follow their cursor without skipping or
//! repeating.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::service::DemoService;
use axum::http::{Method, StatusCode};
use civicflow::core::Clock;
use serde_json::{json, Value};

/// GETs `path` as `actor`.
async fn get(demo: &DemoService, actor: &str, path: &str) -> (StatusCode, Value) {
    demo.call(Method::GET, path, Some(demo.token(actor)), None)
        .await
}

/// POSTs `body` to `path` as `actor`.
async fn post(demo: &DemoService, actor: &str, path: &str, body: Value) -> (StatusCode, Value) {
    demo.call(Method::POST, path, Some(demo.token(actor)), Some(body))
        .await
}

/// Asserts a 400 that names `field`.
fn bad_request(status: StatusCode, body: &Value, field: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], field, "{body}");
}

fn ids(page: &Value, key: &str) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item[key].as_str().expect("id").to_owned())
        .collect()
}

/// Follows `path` page by page (`limit` items each), returning every id seen.
async fn walk(demo: &DemoService, actor: &str, path: &str, limit: usize) -> Vec<String> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..100 {
        let url = match &after {
            Some(cursor) => format!("{path}{sep}limit={limit}&after={cursor}"),
            None => format!("{path}{sep}limit={limit}"),
        };
        let (status, page) = get(demo, actor, &url).await;
        assert_eq!(status, StatusCode::OK, "{url}: {page}");
        assert!(page["items"].as_array().expect("items").len() <= limit);
        seen.extend(ids(&page, "id"));
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return seen,
        }
    }
    panic!("{path} did not end");
}

#[tokio::test]
async fn the_org_chart_and_the_workflows() {
    let demo = DemoService::start("http-org");
    let (status, body) = get(&demo, "zheng.tea", "/api/v1/units").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let units = body["units"].as_array().expect("units");
    let unit = |id: &str| {
        units
            .iter()
            .find(|u| u["id"] == id)
            .unwrap_or_else(|| panic!("no unit {id} in {body}"))
    };
    assert_eq!(unit("tonghui")["tier"], "community");
    assert_eq!(unit("tonghui")["parent"], Value::Null);
    assert_eq!(unit("grid-1")["parent"], "tonghui");
    assert_eq!(unit("shop-yh-101")["tier"], "shop");
    assert_eq!(unit("market-regulation")["in_chain"], false);
    // Parents before children.
    let at = |id: &str| units.iter().position(|u| u["id"] == id).expect("listed");
    assert!(at("tonghui") < at("grid-1") && at("grid-1") < at("yiwu-heart"));
    assert!(at("yiwu-heart") < at("shop-yh-101"));

    let (status, body) = get(&demo, "ma.consumer", "/api/v1/workflows").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let workflows = body["workflows"].as_array().expect("workflows");
    let service = workflows
        .iter()
        .find(|w| w["id"] == "service-request")
        .expect("service-request");
    assert!(service["version"].as_u64().expect("version") >= 1);
    assert_eq!(service["latest"], true);
    let stages = service["stages"].as_array().expect("stages");
    assert!(stages.iter().any(|s| s["terminal"] == true), "{service}");
    assert!(stages.iter().any(|s| s["terminal"] == false), "{service}");
    let reply = service["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .find(|a| a["id"] == "reply")
        .expect("a reply action");
    for key in ["name", "from", "to", "roles", "fields"] {
        assert!(reply.get(key).is_some(), "{key} missing from {reply}");
    }
    let outcome = reply["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["name"] == "outcome")
        .expect("an outcome field");
    assert_eq!(outcome["type"], "choice");
    assert!(outcome["choices"]
        .as_array()
        .expect("choices")
        .contains(&json!("resolved")));
    assert!(service["open"]["fields"].is_array());

    // A token is needed.
    let (status, _) = demo.call(Method::GET, "/api/v1/units", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The OpenAPI document lists the new routes with their policies.
    let (status, doc) = demo
        .call(Method::GET, "/api/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/api/v1/units",
        "/api/v1/workflows",
        "/api/v1/directives",
        "/api/v1/directives/{id}/report",
        "/api/v1/units/{id}/inbox",
        "/api/v1/reports/rates",
        "/api/v1/lists/{kind}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} not documented");
    }
    assert!(doc["paths"]["/api/v1/reports/rates"]["get"]["x-policy"]
        .as_str()
        .expect("policy")
        .contains("auditor"));
}

#[tokio::test]
async fn a_directive_is_issued_acknowledged_reported_and_followed() {
    let demo = DemoService::start("http-directives");
    // Later than the demo's directive, so that newest-first is well defined.
    demo.clock.advance(Duration::from_secs(60));
    // A grid worker issues to the chain below grid 1: Yiwu Heart and its two shops.
    let (status, issued) = post(
        &demo,
        "li.grid1",
        "/api/v1/directives",
        json!({
            "title": "消防通道检查 fire lanes",
            "body": "Check that every fire lane is clear.",
            "kind": "social_stability",
            "within": "2 working days",
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    assert_eq!(issued["parts"], 3);
    assert_eq!(issued["issued_by"], "grid-1");
    let id = issued["id"].as_str().expect("id").to_owned();
    let path = format!("/api/v1/directives/{id}");

    let (status, tree) = get(&demo, "li.grid1", &path).await;
    assert_eq!(status, StatusCode::OK, "{tree}");
    assert_eq!(tree["view"], "full");
    assert_eq!(tree["units"], 3);
    assert_eq!(tree["complete"], false);
    let parts = tree["parts"].as_array().expect("parts");
    assert_eq!(parts.len(), 3);
    let yiwu = parts
        .iter()
        .find(|p| p["unit_id"] == "yiwu-heart")
        .expect("yiwu-heart's part");
    assert_eq!(yiwu["parent"], Value::Null);
    assert_eq!(yiwu["subtree_units"], 3);
    assert!(yiwu["due_at"].is_string(), "{yiwu}");
    // The community above sees it whole; another grid does not see it at all.
    let (status, above) = get(&demo, "wang.secretary", &path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(above["view"], "full");
    let (status, error) = get(&demo, "zhao.grid2", &path).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    // A resident is not a unit's staff.
    let (status, _) = get(&demo, "ma.consumer", &path).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A shop sees its own part; acknowledges, then reports.
    let (status, mine) = get(&demo, "zheng.tea", &path).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine["view"], "subtree");
    assert_eq!(mine["parts"].as_array().expect("parts").len(), 1);
    let (status, acked) = post(
        &demo,
        "zheng.tea",
        &format!("{path}/acknowledge"),
        json!({"note": "收到"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!(acked["unit_id"], "shop-yh-101");
    let (status, reported) = post(
        &demo,
        "zheng.tea",
        &format!("{path}/report"),
        json!({"note": "通道已清理"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reported}");
    // Reporting twice is the engine's refusal: 422.
    let (status, again) = post(
        &demo,
        "zheng.tea",
        &format!("{path}/report"),
        json!({"note": "again"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{again}");
    // The progress shows it at once (the read waits for the projection).
    let (_, tree) = get(&demo, "li.grid1", &path).await;
    let shop = tree["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .find(|p| p["unit_id"] == "shop-yh-101")
        .expect("the shop's part")
        .clone();
    assert_eq!(shop["acknowledged"], true);
    assert_eq!(shop["reported"], true);
    assert_eq!(shop["report"], "通道已清理");
    assert_eq!(shop["complete"], true);
    assert_eq!(tree["reported"], 1);
    assert_eq!(tree["acknowledged"], 1);

    // A shop of another enterprise: 404 before the engine is asked.
    let (status, error) = post(&demo, "lu.books", &format!("{path}/acknowledge"), json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    // The community sees it but has no part of it: the engine's 422, naming the unit.
    let (status, error) = post(
        &demo,
        "wang.secretary",
        &format!("{path}/acknowledge"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    // An unknown or malformed id.
    let (status, _) = get(
        &demo,
        "li.grid1",
        "/api/v1/directives/00000000-0000-7000-8000-000000000000",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&demo, "li.grid1", "/api/v1/directives/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Who may issue is the engine's decision: a shop owner may not (403), nor a grid worker
    // at another grid's unit.
    let body = json!({"title": "x", "kind": "other", "within": "1 working day"});
    let (status, error) = post(&demo, "zheng.tea", "/api/v1/directives", body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{error}");
    let mut elsewhere = body.clone();
    elsewhere["unit_id"] = json!("grid-2");
    let (status, error) = post(&demo, "li.grid1", "/api/v1/directives", elsewhere).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{error}");
    // Malformed bodies: 400 naming the field.
    let mut bad = body.clone();
    bad["kind"] = json!("party");
    let (status, error) = post(&demo, "li.grid1", "/api/v1/directives", bad).await;
    bad_request(status, &error, "kind");
    let mut bad = body.clone();
    bad["within"] = json!("soon");
    let (status, error) = post(&demo, "li.grid1", "/api/v1/directives", bad).await;
    bad_request(status, &error, "within");
    // A span of zero (due, and escalated, at once) or longer than a year of its kind (near
    // the numbers' limit it would be due in the year 294247): 400 like a malformed one,
    // naming within and the bound. Nothing is issued.
    let head = demo.service.engine().log().head();
    for (within, says) in [
        ("0 hours", "more than zero"),
        ("0 working days", "more than zero"),
        ("99999999 working days", "(99999999 working days is longer)"),
        ("261 working days", "(261 working days is longer)"),
        ("367 days", "(367 days is longer)"),
        ("2081 working hours", "(2081 working hours is longer)"),
    ] {
        let mut bad = body.clone();
        bad["within"] = json!(within);
        bad["unit_id"] = json!("grid-1");
        let (status, error) = post(&demo, "li.grid1", "/api/v1/directives", bad).await;
        bad_request(status, &error, "within");
        let message = error["error"]["message"].as_str().expect("message");
        assert!(
            message.starts_with("within must be") && message.contains(says),
            "{within}: {message}"
        );
        if within != "0 hours" && within != "0 working days" {
            assert!(
                message.contains(
                    "366 days, 260 working days, 2080 working hours or 124800 working minutes"
                ),
                "{message}"
            );
        }
    }
    assert_eq!(
        demo.service.engine().log().head(),
        head,
        "nothing was issued"
    );
    let mut bad = body.clone();
    bad["title"] = json!("路".repeat(201));
    let (status, error) = post(&demo, "li.grid1", "/api/v1/directives", bad).await;
    bad_request(status, &error, "title");
    let mut bad = body.clone();
    bad["colour"] = json!("red");
    let (status, error) = post(&demo, "li.grid1", "/api/v1/directives", bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    let (status, error) = post(
        &demo,
        "zheng.tea",
        &format!("{path}/report"),
        json!({"note": "  "}),
    )
    .await;
    bad_request(status, &error, "note");

    // The list: newest first, a page at a time, only what the caller may see.
    let (status, page) = get(&demo, "wang.secretary", "/api/v1/directives?limit=1").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(ids(&page, "id"), vec![id.clone()]);
    let all = walk(&demo, "wang.secretary", "/api/v1/directives", 1).await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0], id);
    assert_eq!(all[1], demo.run.directive.to_string());
    // Grid 2 sees the community's directive (it has a part) but not grid 1's.
    let theirs = walk(&demo, "zhao.grid2", "/api/v1/directives", 10).await;
    assert_eq!(theirs, vec![demo.run.directive.to_string()]);
    let (status, error) = get(&demo, "wang.secretary", "/api/v1/directives?after=xyz").await;
    bad_request(status, &error, "after");
    let (status, error) = get(&demo, "wang.secretary", "/api/v1/directives?page=2").await;
    bad_request(status, &error, "page");
}

#[tokio::test]
async fn inboxes_the_case_board_and_overdue_reports_keep_to_the_callers_scope() {
    let demo = DemoService::start("http-board");
    // An open case at grid 1 lands in its inbox.
    let (status, created) = post(
        &demo,
        "li.grid1",
        "/api/v1/cases",
        json!({
            "workflow": "service-request",
            "unit_id": "grid-1",
            "title": "井盖松动 loose manhole cover",
            "fields": {"category": "public_facilities"},
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let case = created["id"].as_str().expect("id").to_owned();

    let (status, inbox) = get(&demo, "li.grid1", "/api/v1/units/grid-1/inbox").await;
    assert_eq!(status, StatusCode::OK, "{inbox}");
    assert_eq!(inbox["unit_id"], "grid-1");
    let item = inbox["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["subject"]["case_id"] == case.as_str())
        .unwrap_or_else(|| panic!("the new case is not in {inbox}"));
    assert_eq!(item["subject"]["type"], "case");
    assert_eq!(item["relation"], "lead");
    assert!(item["actions"].is_array());
    // The community above may look; another grid, a shop below, a resident may not.
    let (status, _) = get(&demo, "wang.secretary", "/api/v1/units/grid-1/inbox").await;
    assert_eq!(status, StatusCode::OK);
    let (status, error) = get(&demo, "zhao.grid2", "/api/v1/units/grid-1/inbox").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    let (status, _) = get(&demo, "zheng.tea", "/api/v1/units/grid-1/inbox").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&demo, "li.grid1", "/api/v1/units/no-such-unit/inbox").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&demo, "ma.consumer", "/api/v1/units/tonghui/inbox").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Filtered by a role that can act on nothing there: empty.
    let (status, none) = get(
        &demo,
        "li.grid1",
        "/api/v1/units/grid-1/inbox?role=legal_aid",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{none}");
    assert!(
        none["items"].as_array().expect("items").is_empty(),
        "{none}"
    );
    // Bad parameters, each named.
    for (query, field) in [
        ("colour=red", "colour"),
        ("limit=ten", "limit"),
        ("limit=-1", "limit"),
        ("after=zz", "after"),
        ("role=Not%20A%20Role", "role"),
        ("limit=1&limit=2", "limit"),
    ] {
        let (status, error) = get(
            &demo,
            "li.grid1",
            &format!("/api/v1/units/grid-1/inbox?{query}"),
        )
        .await;
        bad_request(status, &error, field);
    }
    // A cursor of another list is refused, naming `after`.
    let (_, board_page) = get(&demo, "wang.secretary", "/api/v1/cases?limit=1").await;
    let foreign = board_page["next"].as_str().expect("a next cursor");
    let (status, error) = get(
        &demo,
        "li.grid1",
        &format!("/api/v1/units/grid-1/inbox?after={foreign}"),
    )
    .await;
    bad_request(status, &error, "after");

    // The case board: the community sees every case, a page at a time, nothing twice.
    let (status, everything) = get(&demo, "wang.secretary", "/api/v1/cases?limit=1000").await;
    assert_eq!(status, StatusCode::OK, "{everything}");
    let all = ids(&everything, "id");
    assert!(all.len() >= 7, "{everything}");
    assert!(all.contains(&case));
    let row = &everything["items"][0];
    for key in [
        "id",
        "workflow",
        "title",
        "stage",
        "status",
        "unit_id",
        "lead_unit_id",
        "opened_at",
    ] {
        assert!(row.get(key).is_some(), "{key} missing from {row}");
    }
    let paged = walk(&demo, "wang.secretary", "/api/v1/cases", 2).await;
    assert_eq!(paged, all);
    assert_eq!(paged.iter().collect::<BTreeSet<_>>().len(), paged.len());
    // Grid 1 sees only what touches its subtree; grid 3 the dispute filed there.
    let grid1 = walk(&demo, "li.grid1", "/api/v1/cases", 1000).await;
    assert!(grid1.contains(&case));
    assert!(grid1.contains(&demo.run.smooth_case.to_string()));
    assert!(!grid1.contains(&demo.run.dispute_case.to_string()));
    let (_, grid3) = get(
        &demo,
        "sun.grid3",
        "/api/v1/cases?workflow=consumer-dispute",
    )
    .await;
    assert_eq!(ids(&grid3, "id"), vec![demo.run.dispute_case.to_string()]);
    // Filters.
    let (_, open) = get(&demo, "wang.secretary", "/api/v1/cases?status=open").await;
    assert!(open["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|c| c["status"] == "open"));
    assert!(ids(&open, "id").contains(&case));
    let (_, closed) = get(
        &demo,
        "wang.secretary",
        "/api/v1/cases?status=closed&unit=grid-2",
    )
    .await;
    assert_eq!(
        ids(&closed, "id"),
        vec![demo.run.escalated_case.to_string()]
    );
    let (_, early) = get(
        &demo,
        "wang.secretary",
        "/api/v1/cases?opened_until=2026-04-01",
    )
    .await;
    assert!(early["items"].as_array().expect("items").is_empty());
    let (_, later) = get(
        &demo,
        "wang.secretary",
        "/api/v1/cases?opened_from=2026-04-01T00:00:00%2B08:00",
    )
    .await;
    assert_eq!(ids(&later, "id").len(), all.len());
    for (query, field) in [
        ("status=pending", "status"),
        ("opened_from=yesterday", "opened_from"),
        ("workflow=Bad%20Id", "workflow"),
        ("sort=title", "sort"),
    ] {
        let (status, error) = get(&demo, "wang.secretary", &format!("/api/v1/cases?{query}")).await;
        bad_request(status, &error, field);
    }
    // A unit outside the caller's scope: 404; a resident or civic app: 403.
    let (status, error) = get(&demo, "li.grid1", "/api/v1/cases?unit=grid-2").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    assert_eq!(error["error"]["field"], "unit");
    let (status, _) = get(&demo, "tang.resident", "/api/v1/cases").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = get(&demo, "fixmystreet", "/api/v1/cases").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The overdue report: the late sign-for at Intime was escalated (督办).
    let (status, report) = get(
        &demo,
        "wang.secretary",
        "/api/v1/units/tonghui/overdue?now=2026-12-31",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert!(
        report["totals"]["escalated"].as_u64().expect("count") >= 1,
        "{report}"
    );
    assert!(report["counts"]["intime"].is_object(), "{report}");
    let escalated = report["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["kind"] == "escalated")
        .expect("an escalation");
    assert_eq!(escalated["unit_id"], "intime");
    assert_eq!(
        escalated["subject"]["case_id"],
        demo.run.escalated_case.to_string()
    );
    // Without `now`, the report is as of the engine's clock (the demo's, here), not the
    // machine's.
    let (status, default) = get(&demo, "wang.secretary", "/api/v1/units/tonghui/overdue").await;
    assert_eq!(status, StatusCode::OK, "{default}");
    assert_eq!(
        default["now"],
        demo.service
            .engine()
            .calendar()
            .zone()
            .format(demo.clock.now()),
        "{default}"
    );
    let (status, grid) = get(
        &demo,
        "zhao.grid2",
        "/api/v1/units/grid-2/overdue?now=2026-12-31",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{grid}");
    assert!(grid["counts"].get("grid-1").is_none());
    let (status, _) = get(&demo, "li.grid1", "/api/v1/units/grid-2/overdue").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, error) = get(&demo, "zhao.grid2", "/api/v1/units/grid-2/overdue?now=soon").await;
    bad_request(status, &error, "now");
}

#[tokio::test]
async fn staff_reports_lists_and_standing() {
    let demo = DemoService::start("http-reports");
    // 三率 for April 2026: staff only.
    let (status, rates) = get(
        &demo,
        "wang.secretary",
        "/api/v1/reports/rates?month=2026-04",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rates}");
    assert_eq!(rates["community"], "tonghui");
    let ranking = rates["ranking"].as_array().expect("ranking");
    assert!(!ranking.is_empty(), "{rates}");
    assert_eq!(ranking[0]["rank"], 1);
    assert!(ranking.iter().any(|r| r["unit_id"] == "grid-1"), "{rates}");
    let first = &ranking[0];
    for key in [
        "response_rate",
        "resolution_rate",
        "satisfaction_rate",
        "mean",
        "counts",
    ] {
        assert!(first.get(key).is_some(), "{key} missing from {first}");
    }
    let (status, shops) = get(
        &demo,
        "audit.office",
        "/api/v1/reports/rates?month=2026-04&tier=enterprise",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{shops}");
    assert!(shops["ranking"]
        .as_array()
        .expect("ranking")
        .iter()
        .all(|r| ["yiwu-heart", "intime", "xintiandi"]
            .contains(&r["unit_id"].as_str().unwrap_or(""))));
    let (status, error) = get(&demo, "zheng.tea", "/api/v1/reports/rates?month=2026-04").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{error}");
    let (status, _) = get(&demo, "ma.consumer", "/api/v1/reports/rates?month=2026-04").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (query, field) in [
        ("month=2026-13", "month"),
        ("", "month"),
        ("month=2026-04&tier=planet", "tier"),
        ("month=2026-04&unit=grid-1", "unit"),
    ] {
        let (status, error) = get(
            &demo,
            "wang.secretary",
            &format!("/api/v1/reports/rates?{query}"),
        )
        .await;
        bad_request(status, &error, field);
    }

    // Community statistics.
    let (status, stats) = get(&demo, "wang.secretary", "/api/v1/reports/stats?year=2026").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["year"], 2026);
    assert_eq!(stats["activities"], 1);
    assert_eq!(stats["beneficiaries"], 420);
    assert!(
        stats["workflows"]["service-request"]["opened"]
            .as_u64()
            .expect("opened")
            >= 2
    );
    assert!(stats["years"]
        .as_array()
        .expect("years")
        .contains(&json!(2026)));
    let (status, tonghui) = get(&demo, "li.grid1", "/api/v1/reports/stats?community=tonghui").await;
    assert_eq!(status, StatusCode::OK, "{tonghui}");
    assert_eq!(tonghui["community"], "tonghui");
    assert_eq!(tonghui["year"], Value::Null);
    let (status, error) = get(
        &demo,
        "wang.secretary",
        "/api/v1/reports/stats?community=grid-1",
    )
    .await;
    bad_request(status, &error, "community");
    let (status, error) = get(
        &demo,
        "wang.secretary",
        "/api/v1/reports/stats?community=atlantis",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    let (status, error) = get(&demo, "wang.secretary", "/api/v1/reports/stats?year=twenty").await;
    bad_request(status, &error, "year");
    let (status, _) = get(&demo, "chen.yiwuheart", "/api/v1/reports/stats").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The three lists.
    let (status, projects) = get(&demo, "wang.secretary", "/api/v1/lists/projects").await;
    assert_eq!(status, StatusCode::OK, "{projects}");
    assert_eq!(ids(&projects, "id"), vec![demo.run.project.to_string()]);
    let project = &projects["items"][0];
    assert_eq!(project["unit_id"], "xintiandi");
    assert_eq!(project["retired"], false);
    assert_eq!(
        project["cases"],
        json!([demo.run.district_case.to_string()])
    );
    let (status, needs) = get(&demo, "wang.secretary", "/api/v1/lists/needs?retired=true").await;
    assert_eq!(status, StatusCode::OK);
    assert!(needs["items"].as_array().expect("items").is_empty());
    let (status, _) = get(&demo, "wang.secretary", "/api/v1/lists/wishes").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, error) = get(
        &demo,
        "wang.secretary",
        "/api/v1/lists/projects?retired=maybe",
    )
    .await;
    bad_request(status, &error, "retired");
    let (status, error) = get(&demo, "wang.secretary", "/api/v1/lists/projects?after=0").await;
    bad_request(status, &error, "after");
    let (status, _) = get(&demo, "tang.resident", "/api/v1/lists/projects").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Shop standing: twelve points, three deducted, one restored, a yellow flag.
    let (status, standing) = get(&demo, "wu.xintiandi", "/api/v1/units/shop-xt-033/standing").await;
    assert_eq!(status, StatusCode::OK, "{standing}");
    assert_eq!(standing["cycle"], "2026");
    assert_eq!(standing["points"], 10);
    assert_eq!(standing["deducted"], 3);
    assert_eq!(standing["restored"], 1);
    assert_eq!(standing["flags"]["2026-04"], "yellow");
    assert_eq!(standing["history"].as_array().expect("history").len(), 2);
    let (status, own) = get(&demo, "zheng.tea", "/api/v1/units/shop-yh-101/standing").await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(own["quarterly"]["2026Q2"]["recommended"], true);
    assert_eq!(own["monthly"]["2026-04"], 96);
    let (status, _) = get(&demo, "zheng.tea", "/api/v1/units/shop-xt-033/standing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, error) = get(&demo, "zheng.tea", "/api/v1/units/shop-yh-101/standing?x=1").await;
    bad_request(status, &error, "x");

    // Recommended merchants and flags, for everyone in the community.
    let (status, recommended) = get(
        &demo,
        "ma.consumer",
        "/api/v1/reports/recommended?quarter=2026Q2",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{recommended}");
    assert_eq!(recommended["merchants"][0]["unit_id"], "shop-yh-101");
    assert_eq!(recommended["merchants"][0]["score"], 95);
    let (status, error) = get(
        &demo,
        "ma.consumer",
        "/api/v1/reports/recommended?quarter=2026Q5",
    )
    .await;
    bad_request(status, &error, "quarter");
    let (status, flags) = get(&demo, "zheng.tea", "/api/v1/reports/flags?period=2026-04").await;
    assert_eq!(status, StatusCode::OK, "{flags}");
    assert_eq!(flags["red"], json!(["shop-yh-101"]));
    assert_eq!(flags["yellow"], json!(["shop-xt-033"]));
    let (status, error) = get(&demo, "zheng.tea", "/api/v1/reports/flags").await;
    bad_request(status, &error, "period");
}
