//! Writing the three lists and merchants' standing over HTTP (issue 14, part 5), in-process
//! on the Tonghui demo with the real store: an item added, changed, linked and retired and
//! seen in `GET /api/v1/lists/{kind}`; points deducted and flags awarded, months derived, a
//! quarter's proposal shown and confirmed, and the shop seen in `GET
//! /api/v1/reports/recommended`; bad input answering 4xx naming the field and writing
//! nothing; a unit or item outside the caller's sight answering 404 like a missing one;
//! retries with an `Idempotency-Key` doing nothing twice.

use crate::common::service::DemoService;
use axum::http::{Method, StatusCode};
use civicflow::core::calendar::{parse_rfc3339, Zone};
use civicflow::core::Clock;
use serde_json::{json, Value};

async fn get(demo: &DemoService, actor: &str, path: &str) -> (StatusCode, Value) {
    demo.call(Method::GET, path, Some(demo.token(actor)), None)
        .await
}

async fn post(demo: &DemoService, actor: &str, path: &str, body: Value) -> (StatusCode, Value) {
    demo.call(Method::POST, path, Some(demo.token(actor)), Some(body))
        .await
}

async fn patch(demo: &DemoService, actor: &str, path: &str, body: Value) -> (StatusCode, Value) {
    demo.call(Method::PATCH, path, Some(demo.token(actor)), Some(body))
        .await
}

/// A POST with an `Idempotency-Key`.
async fn post_keyed(
    demo: &DemoService,
    actor: &str,
    path: &str,
    key: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let authorization = format!("Bearer {}", demo.token(actor));
    let (status, _, bytes) = demo
        .call_bytes(
            Method::POST,
            path,
            &[
                ("authorization", authorization.as_str()),
                ("content-type", "application/json"),
                ("idempotency-key", key),
            ],
            body.to_string().into_bytes(),
        )
        .await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The log's head position.
fn head(demo: &DemoService) -> Option<u64> {
    demo.service.engine().log().head().map(|h| h.position.get())
}

/// Asserts an error answer with `status` whose `field` is `field` (none for "").
#[track_caller]
fn refused(answer: &(StatusCode, Value), status: StatusCode, field: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    let named = if field.is_empty() {
        Value::Null
    } else {
        json!(field)
    };
    assert_eq!(answer.1["error"]["field"], named, "{}", answer.1);
}

/// Sets the engine's clock to a local time in Asia/Shanghai (`2026-07-02T09:00:00`), and
/// takes the deadline steps of the demo's cases that fell due meanwhile here, before the
/// service's scheduler would: afterwards nothing but this test's requests moves the log's
/// head (every step is taken once, whoever takes it).
fn at(demo: &DemoService, local: &str) {
    let moment = parse_rfc3339(&format!("{local}+08:00")).expect("a time");
    assert!(moment > demo.clock.now(), "the clock only moves on");
    demo.clock.set(moment);
    demo.service
        .engine()
        .run_due_deadlines()
        .expect("the deadline steps");
}

/// The ids of a list page.
fn item_ids(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_str().expect("an id"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_item_is_added_changed_linked_and_retired_by_its_editors() {
    let demo = DemoService::start("http-standing-lists");

    // Added by the community for Yiwu Heart; the answer is the item.
    let (status, item) = post(
        &demo,
        "wang.secretary",
        "/api/v1/lists/resources",
        json!({"title": " 共享会议室 a meeting room ", "unit_id": "yiwu-heart"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    assert_eq!(item["list"], "resources");
    assert_eq!(item["title"], "共享会议室 a meeting room");
    assert_eq!(item["description"], "");
    assert_eq!(item["unit_id"], "yiwu-heart");
    assert_eq!(item["retired"], false);
    assert_eq!(item["version"], 1);
    let id = item["id"].as_str().expect("an id").to_owned();
    let path = format!("/api/v1/lists/resources/{id}");
    let (status, page) = get(&demo, "li.grid1", "/api/v1/lists/resources").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(item_ids(&page), [id.as_str()]);

    // Grid 1's worker (Yiwu Heart lies below grid 1) changes the description; the title
    // left out stays.
    let (status, changed) = patch(
        &demo,
        "li.grid1",
        &path,
        json!({"description": "可容纳 30 人 seats 30"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["title"], "共享会议室 a meeting room");
    assert_eq!(changed["description"], "可容纳 30 人 seats 30");
    assert_eq!(changed["version"], 2);
    // The same text again changes nothing.
    let (status, same) = patch(
        &demo,
        "li.grid1",
        &path,
        json!({"description": "可容纳 30 人 seats 30"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{same}");
    assert_eq!(same["version"], 2);

    // Grid 2's worker sees the item (the lists are the community's) but may not edit it; an
    // item of the wrong list, or none, is 404.
    let before = head(&demo);
    refused(
        &patch(&demo, "zhao.grid2", &path, json!({"title": "会议室"})).await,
        StatusCode::FORBIDDEN,
        "",
    );
    refused(
        &patch(
            &demo,
            "li.grid1",
            &format!("/api/v1/lists/needs/{id}"),
            json!({"title": "会议室"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "id",
    );
    refused(
        &patch(
            &demo,
            "li.grid1",
            "/api/v1/lists/resources/0192f3a0-0000-7000-8000-00000000dead",
            json!({"title": "会议室"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "id",
    );
    refused(
        &patch(
            &demo,
            "li.grid1",
            "/api/v1/lists/resources/not-an-id",
            json!({}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "id",
    );
    refused(
        &patch(&demo, "li.grid1", &path, json!({"title": "  "})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "title",
    );
    refused(
        &patch(&demo, "li.grid1", &path, json!({"title": "a\u{1b}[31m"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "title",
    );
    assert_eq!(head(&demo), before, "a refused write wrote");

    // Linking a case the worker may see, twice (the second changes nothing); a case it may
    // not see is refused as if it did not exist.
    let smooth = demo.run.smooth_case.to_string();
    let (status, linked) = post(
        &demo,
        "li.grid1",
        &format!("{path}/link"),
        json!({"case_id": smooth}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{linked}");
    assert_eq!(linked["cases"], json!([smooth]));
    let (status, again) = post(
        &demo,
        "li.grid1",
        &format!("{path}/link"),
        json!({"case_id": smooth}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["version"], linked["version"]);
    let hidden = demo.run.dispute_case.to_string();
    let (status, _) = get(&demo, "li.grid1", &format!("/api/v1/cases/{hidden}")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "grid 1 must not see the dispute"
    );
    let before = head(&demo);
    refused(
        &post(
            &demo,
            "li.grid1",
            &format!("{path}/link"),
            json!({"case_id": hidden}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "case_id",
    );
    refused(
        &post(
            &demo,
            "li.grid1",
            &format!("{path}/link"),
            json!({"case_id": "case-1"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "case_id",
    );
    assert_eq!(head(&demo), before, "a refused link wrote");

    // Retired, and retired again (nothing changes); then it is only listed with retired
    // items, and no longer changes.
    let (status, retired) = post(
        &demo,
        "li.grid1",
        &format!("{path}/retire"),
        json!({"reason": "已拆除 removed"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{retired}");
    assert_eq!(retired["retired"], true);
    let (status, again) = post(
        &demo,
        "wang.secretary",
        &format!("{path}/retire"),
        json!({"reason": "又一次 once more"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["version"], retired["version"]);
    let (_, page) = get(&demo, "li.grid1", "/api/v1/lists/resources").await;
    assert!(item_ids(&page).is_empty(), "{page}");
    let (_, page) = get(&demo, "li.grid1", "/api/v1/lists/resources?retired=true").await;
    assert_eq!(item_ids(&page), [id.as_str()]);
    assert_eq!(page["items"][0]["retired_reason"], "已拆除 removed");
    assert_eq!(page["items"][0]["cases"], json!([smooth]));
    refused(
        &patch(&demo, "li.grid1", &path, json!({"title": "会议室"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "id",
    );

    // Adding: the caller's own unit by default; bad input names the field and writes
    // nothing.
    let before = head(&demo);
    for (actor, kind, body, status, field) in [
        (
            "li.grid1",
            "wishes",
            json!({"title": "愿望"}),
            StatusCode::NOT_FOUND,
            "kind",
        ),
        (
            "li.grid1",
            "needs",
            json!({"description": "no title"}),
            StatusCode::BAD_REQUEST,
            "title",
        ),
        (
            "li.grid1",
            "needs",
            json!({"title": "\t"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "title",
        ),
        (
            "li.grid1",
            "needs",
            json!({"title": "标题".repeat(101)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "title",
        ),
        (
            "li.grid1",
            "needs",
            json!({"title": "骑手休息点", "unit_id": "atlantis"}),
            StatusCode::NOT_FOUND,
            "unit_id",
        ),
        (
            "li.grid1",
            "needs",
            json!({"title": "骑手休息点", "unit_id": "grid\u{7}1"}),
            StatusCode::BAD_REQUEST,
            "unit_id",
        ),
        (
            "li.grid1",
            "needs",
            json!({"title": "骑手休息点", "colour": "red"}),
            StatusCode::BAD_REQUEST,
            "",
        ),
    ] {
        let answer = post(&demo, actor, &format!("/api/v1/lists/{kind}"), body).await;
        assert_eq!(answer.0, status, "{kind}: {}", answer.1);
        if !field.is_empty() {
            assert_eq!(answer.1["error"]["field"], field, "{kind}: {}", answer.1);
        }
    }
    // A unit outside the worker's grid: the chart is public, so this is a 403, not a 404.
    let answer = post(
        &demo,
        "li.grid1",
        "/api/v1/lists/needs",
        json!({"title": "骑手休息点", "unit_id": "grid-3"}),
    )
    .await;
    assert_eq!(answer.0, StatusCode::FORBIDDEN, "{}", answer.1);
    let answer = post(
        &demo,
        "tang.resident",
        "/api/v1/lists/needs",
        json!({"title": "骑手休息点"}),
    )
    .await;
    assert_eq!(answer.0, StatusCode::FORBIDDEN, "{}", answer.1);
    assert_eq!(head(&demo), before, "a refused addition wrote");
    let (status, own) = post(
        &demo,
        "li.grid1",
        "/api/v1/lists/needs",
        json!({"title": "骑手休息点 a rest stop for riders"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{own}");
    assert_eq!(own["unit_id"], "grid-1");

    // A retried addition adds once and answers the same.
    let body = json!({"title": "共享停车位 shared parking", "unit_id": "yiwu-heart"});
    let first = post_keyed(&demo, "li.grid1", "/api/v1/lists/projects", "add-1", &body).await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    let before = head(&demo);
    let second = post_keyed(&demo, "li.grid1", "/api/v1/lists/projects", "add-1", &body).await;
    assert_eq!(second, first);
    assert_eq!(head(&demo), before, "a retry wrote");
    let other = json!({"title": "另一个 another", "unit_id": "yiwu-heart"});
    refused(
        &post_keyed(&demo, "li.grid1", "/api/v1/lists/projects", "add-1", &other).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Idempotency-Key",
    );
    let (_, page) = get(&demo, "li.grid1", "/api/v1/lists/projects").await;
    let shared = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|item| item["title"] == "共享停车位 shared parking")
        .count();
    assert_eq!(shared, 1, "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn months_are_derived_and_a_quarters_proposal_is_confirmed_by_the_community() {
    let demo = DemoService::start("http-standing-quarter");
    let zone = Zone::shanghai();
    assert!(
        zone.format(demo.clock.now()).starts_with("2026-05"),
        "the demo's run ends in May 2026, after April (this test derives April)"
    );

    // April, from the demo: Xintiandi's phone repair shop kept its 12 points to the end of
    // April (the deduction came on 1 May) and holds a yellow flag for April: 100 - 20.
    let (status, standing) = post(
        &demo,
        "wang.secretary",
        "/api/v1/units/shop-xt-033/standing/months/2026-04/derive",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{standing}");
    let april = &standing["monthly"]["2026-04"];
    assert_eq!(april["score"], 80, "{standing}");
    assert_eq!(
        april["notes"],
        "derived from the standing: 12 of 12 points kept at the end of 2026-04 (cycle 2026) give 100; a yellow flag for the month takes 20; score 80 (kept within 0 to 100)"
    );
    assert_eq!(standing["points"], 10, "the points now are May's");
    // May is not over yet.
    refused(
        &post(
            &demo,
            "wang.secretary",
            "/api/v1/units/shop-xt-033/standing/months/2026-05/derive",
            json!({}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "month",
    );

    // The third quarter at Intime's clothes shop: a cycle from 2 July, a red flag for July, a
    // deduction by grid 2's worker on 20 July (11 left) and another on 10 August (10 left),
    // a red flag for September.
    let shop = "/api/v1/units/shop-it-108/standing";
    at(&demo, "2026-07-02T09:00:00");
    let (status, started) = post(
        &demo,
        "wang.secretary",
        &format!("{shop}/cycle"),
        json!({"cycle": "2026"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    assert_eq!(started["points"], 12);
    assert_eq!(started["cycle"], "2026");
    let (status, flagged) = post(
        &demo,
        "wang.secretary",
        &format!("{shop}/flags"),
        json!({"colour": "red", "period": "2026-07", "reason": "诚信经营 honest trading"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{flagged}");
    assert_eq!(flagged["flags"]["2026-07"], "red");
    at(&demo, "2026-07-20T10:00:00");
    let deduction = json!({"points": 1, "reason": "占道经营 goods on the pavement"});
    let first = post_keyed(
        &demo,
        "zhao.grid2",
        &format!("{shop}/deductions"),
        "patrol-0720",
        &deduction,
    )
    .await;
    assert_eq!(first.0, StatusCode::OK, "{}", first.1);
    assert_eq!(first.1["points"], 11);
    // A retry deducts nothing more and answers the same.
    let second = post_keyed(
        &demo,
        "zhao.grid2",
        &format!("{shop}/deductions"),
        "patrol-0720",
        &deduction,
    )
    .await;
    assert_eq!(second, first);

    at(&demo, "2026-08-10T10:00:00");
    let (status, derived) = post(
        &demo,
        "wang.secretary",
        &format!("{shop}/months/2026-07/derive"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{derived}");
    assert_eq!(
        derived["monthly"]["2026-07"]["score"], 100,
        "92 + 10, at most 100"
    );
    let (status, deducted) = post(
        &demo,
        "zhao.grid2",
        &format!("{shop}/deductions"),
        deduction.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{deducted}");
    assert_eq!(deducted["points"], 10);

    at(&demo, "2026-09-03T10:00:00");
    let (status, derived) = post(
        &demo,
        "wang.secretary",
        &format!("{shop}/months/2026-08/derive"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{derived}");
    assert_eq!(derived["monthly"]["2026-08"]["score"], 83);
    let (status, _) = post(
        &demo,
        "wang.secretary",
        &format!("{shop}/flags"),
        json!({"colour": "red", "period": "2026-09", "reason": "服务之星 service star"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // No proposal while September is not assessed, so nothing to confirm by default.
    let proposal_path = format!("{shop}/quarters/2026Q3/proposal");
    let (status, proposal) = get(&demo, "zhao.grid2", &proposal_path).await;
    assert_eq!(status, StatusCode::OK, "{proposal}");
    assert_eq!(proposal["score"], Value::Null);
    assert_eq!(proposal["recommended"], Value::Null);
    assert_eq!(proposal["confirmed"], Value::Null);
    assert_eq!(proposal["reason"], "no proposal yet: 2026-09 not assessed");
    assert_eq!(
        proposal["months"],
        json!([
            {"month": "2026-07", "score": 100, "flag": "red"},
            {"month": "2026-08", "score": 83, "flag": null},
            {"month": "2026-09", "score": null, "flag": "red"},
        ])
    );
    let before = head(&demo);
    refused(
        &post(
            &demo,
            "wang.secretary",
            &format!("{shop}/quarters/2026Q3/confirm"),
            json!({}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "score",
    );
    assert_eq!(head(&demo), before, "a refused confirmation wrote");

    // In October, September is derived (10 points: 83, + 10 for the red flag); the mean of
    // 100, 83 and 93 is 92: recommended.
    at(&demo, "2026-10-09T10:00:00");
    let (status, derived) = post(
        &demo,
        "wang.secretary",
        &format!("{shop}/months/2026-09/derive"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{derived}");
    assert_eq!(derived["monthly"]["2026-09"]["score"], 93);
    for actor in ["zhao.grid2", "xu.fashion", "audit.office", "wang.secretary"] {
        let (status, proposal) = get(&demo, actor, &proposal_path).await;
        assert_eq!(status, StatusCode::OK, "{actor}: {proposal}");
        assert_eq!(proposal["score"], 92, "{proposal}");
        assert_eq!(proposal["recommended"], true, "{proposal}");
        assert_eq!(proposal["recommend_at"], 90);
        assert_eq!(
            proposal["reason"],
            "the mean of 100, 83, 93 is 92: at least 90, with no yellow flag in the quarter, so recommended"
        );
    }
    // Not official yet.
    let (status, recommended) = get(
        &demo,
        "ma.consumer",
        "/api/v1/reports/recommended?quarter=2026Q3",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{recommended}");
    assert_eq!(recommended["merchants"], json!([]));
    // Outside the caller's unit: 404 as for a unit that does not exist; a resident: 403.
    let (status, error) = get(&demo, "li.grid1", &proposal_path).await;
    refused(&(status, error), StatusCode::NOT_FOUND, "id");
    let (status, error) = get(
        &demo,
        "li.grid1",
        "/api/v1/units/atlantis/standing/quarters/2026Q3/proposal",
    )
    .await;
    refused(&(status, error), StatusCode::NOT_FOUND, "id");
    let (status, _) = get(&demo, "tang.resident", &proposal_path).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Only the community confirms; its confirmation is the rating.
    let (status, _) = post(
        &demo,
        "zhao.grid2",
        &format!("{shop}/quarters/2026Q3/confirm"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, confirmed) = post(
        &demo,
        "wang.secretary",
        &format!("{shop}/quarters/2026Q3/confirm"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    assert_eq!(
        confirmed["quarterly"]["2026Q3"],
        json!({"recommended": true, "score": 92})
    );
    let (_, proposal) = get(&demo, "zhao.grid2", &proposal_path).await;
    assert_eq!(
        proposal["confirmed"],
        json!({"recommended": true, "score": 92})
    );
    let (status, recommended) = get(
        &demo,
        "ma.consumer",
        "/api/v1/reports/recommended?quarter=2026Q3",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{recommended}");
    assert_eq!(recommended["merchants"][0]["unit_id"], "shop-it-108");
    assert_eq!(recommended["merchants"][0]["score"], 92);

    // Intime's kitchen: three months of 95, but a yellow flag for August keeps it out; the
    // administrator may still decide otherwise, with values of their own.
    let kitchen = "/api/v1/units/shop-it-302/standing";
    for month in ["2026-07", "2026-08", "2026-09"] {
        let (status, body) = post(
            &demo,
            "wang.secretary",
            &format!("{kitchen}/months/{month}"),
            json!({"score": 95, "notes": "月度检查 monthly check"}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["monthly"][month]["notes"], "月度检查 monthly check");
    }
    let (status, _) = post(
        &demo,
        "wang.secretary",
        &format!("{kitchen}/flags"),
        json!({"colour": "yellow", "period": "2026-08", "reason": "卫生不达标 hygiene"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, proposal) = get(
        &demo,
        "zhou.intime",
        &format!("{kitchen}/quarters/2026Q3/proposal"),
    )
    .await;
    assert_eq!(proposal["score"], 95, "{proposal}");
    assert_eq!(proposal["recommended"], false, "{proposal}");
    assert_eq!(
        proposal["reason"],
        "the mean of 95, 95, 95 is 95: at least 90, but a yellow flag for 2026-08, so not recommended"
    );
    let (status, confirmed) = post(
        &demo,
        "wang.secretary",
        &format!("{kitchen}/quarters/2026Q3/confirm"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    assert_eq!(
        confirmed["quarterly"]["2026Q3"],
        json!({"recommended": false, "score": 95})
    );
    let (_, recommended) = get(
        &demo,
        "ma.consumer",
        "/api/v1/reports/recommended?quarter=2026Q3",
    )
    .await;
    let merchants: Vec<&str> = recommended["merchants"]
        .as_array()
        .expect("merchants")
        .iter()
        .map(|m| m["unit_id"].as_str().expect("an id"))
        .collect();
    assert_eq!(merchants, ["shop-it-108"]);

    // Bad input names the field and writes nothing; a unit outside the caller's is 404 like
    // one that does not exist.
    let before = head(&demo);
    let cases: Vec<(&str, String, Value, StatusCode, &str)> = vec![
        (
            "zhao.grid2",
            format!("{shop}/deductions"),
            json!({"points": 0, "reason": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "points",
        ),
        (
            "zhao.grid2",
            format!("{shop}/deductions"),
            json!({"points": 13, "reason": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "points",
        ),
        (
            "zhao.grid2",
            format!("{shop}/deductions"),
            json!({"points": 300, "reason": "x"}),
            StatusCode::BAD_REQUEST,
            "points",
        ),
        (
            "zhao.grid2",
            format!("{shop}/deductions"),
            json!({"points": 1, "reason": " "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason",
        ),
        (
            "zhao.grid2",
            format!("{shop}/deductions"),
            json!({"points": 1}),
            StatusCode::BAD_REQUEST,
            "reason",
        ),
        (
            "li.grid1",
            format!("{shop}/deductions"),
            json!({"points": 1, "reason": "x"}),
            StatusCode::NOT_FOUND,
            "id",
        ),
        (
            "li.grid1",
            "/api/v1/units/atlantis/standing/deductions".to_owned(),
            json!({"points": 1, "reason": "x"}),
            StatusCode::NOT_FOUND,
            "id",
        ),
        (
            "wang.secretary",
            format!("{shop}/months/2026-13"),
            json!({"score": 80}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "month",
        ),
        (
            "wang.secretary",
            format!("{shop}/months/2026-13/derive"),
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "month",
        ),
        (
            "wang.secretary",
            format!("{shop}/months/2026-10/derive"),
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "month",
        ),
        (
            "wang.secretary",
            format!("{shop}/months/2026-06/derive"),
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "month",
        ),
        (
            "wang.secretary",
            format!("{shop}/months/2026-07"),
            json!({"score": 101}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "score",
        ),
        (
            "wang.secretary",
            format!("{shop}/months/2026-07/derive"),
            json!({"score": 80}),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            "wang.secretary",
            format!("{shop}/flags"),
            json!({"colour": "green", "period": "2026-10", "reason": "x"}),
            StatusCode::BAD_REQUEST,
            "colour",
        ),
        (
            "wang.secretary",
            format!("{shop}/flags"),
            json!({"colour": "red", "period": "2026-07", "reason": "again"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "period",
        ),
        (
            "wang.secretary",
            format!("{shop}/flags/2026-08/revoke"),
            json!({"reason": "no flag"}),
            StatusCode::NOT_FOUND,
            "period",
        ),
        (
            "wang.secretary",
            format!("{shop}/flags/August/revoke"),
            json!({"reason": "no flag"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "period",
        ),
        (
            "wang.secretary",
            format!("{shop}/quarters/2026Q5/confirm"),
            json!({"recommended": true, "score": 90}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "quarter",
        ),
        (
            "wang.secretary",
            "/api/v1/units/intime/standing/cycle".to_owned(),
            json!({"cycle": "2026"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "id",
        ),
        (
            "wang.secretary",
            "/api/v1/units/intime/standing/quarters/2026Q3/confirm".to_owned(),
            json!({"recommended": true, "score": 95}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "id",
        ),
        (
            "wang.secretary",
            format!("{shop}/cycle"),
            json!({"cycle": "2026"}),
            StatusCode::CONFLICT,
            "",
        ),
        (
            "wang.secretary",
            "/api/v1/units/tonghui/standing/months/2026-07".to_owned(),
            json!({"score": 90}),
            StatusCode::FORBIDDEN,
            "",
        ),
        (
            "gao.liaison",
            format!("{shop}/restorations"),
            json!({"points": 1, "reason": "x"}),
            StatusCode::FORBIDDEN,
            "",
        ),
    ];
    for (actor, path, body, status, field) in cases {
        let answer = post(&demo, actor, &path, body.clone()).await;
        assert_eq!(answer.0, status, "{actor} {path} {body}: {}", answer.1);
        if !field.is_empty() {
            assert_eq!(
                answer.1["error"]["field"], field,
                "{actor} {path} {body}: {}",
                answer.1
            );
        }
    }
    let (status, error) = get(
        &demo,
        "wang.secretary",
        &format!("{shop}/quarters/2026Q5/proposal"),
    )
    .await;
    refused(
        &(status, error),
        StatusCode::UNPROCESSABLE_ENTITY,
        "quarter",
    );
    let (status, error) = get(&demo, "wang.secretary", &format!("{proposal_path}?x=1")).await;
    refused(&(status, error), StatusCode::BAD_REQUEST, "x");
    assert_eq!(head(&demo), before, "a refused write wrote");

    // The same refusal for a unit outside the caller's and one that does not exist.
    let outside = post(
        &demo,
        "li.grid1",
        &format!("{shop}/deductions"),
        json!({"points": 1, "reason": "x"}),
    )
    .await;
    let missing = post(
        &demo,
        "li.grid1",
        "/api/v1/units/shop-it-999/standing/deductions",
        json!({"points": 1, "reason": "x"}),
    )
    .await;
    assert_eq!(
        outside.1["error"]["message"]
            .as_str()
            .map(|m| m.replace("shop-it-108", "shop-it-999")),
        missing.1["error"]["message"].as_str().map(str::to_owned)
    );
}
