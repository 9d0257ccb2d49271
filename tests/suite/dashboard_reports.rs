//! The directive and report pages in-process, on the Tonghui demo: each page answers whom its
//! API twin answers and refuses whom it refuses; the directive tree shows each unit as the
//! API's roll-up says; the forms reach the engine (checked through the API) and a refusal
//! shows beside its field; the 三率 chart has a bar per unit with the API's numbers; a bad
//! month is an error naming `month`.

use crate::common::pages::{encode, head};
use crate::common::service::DemoService;
use axum::http::{header, HeaderMap, Method, StatusCode};
use civicflow::core::calendar::parse_rfc3339;
use civicflow::core::Clock;
use serde_json::{json, Value};

/// A well-formed directive id that names nothing.
const NO_SUCH_ID: &str = "0192f3a0-0000-7000-8000-00000000dead";

/// The page's HTML (an error page, or a form sent back with its errors, is HTML too).
fn html_of(headers: &HeaderMap, bytes: &[u8]) -> String {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("text/html") || bytes.is_empty(),
        "a page answered {content_type}: {}",
        String::from_utf8_lossy(bytes)
    );
    String::from_utf8_lossy(bytes).into_owned()
}

/// GETs the page `path` as `actor` (with their bearer token, as good as the session cookie on
/// a page): its status and HTML.
async fn page(demo: &DemoService, actor: &str, path: &str) -> (StatusCode, String) {
    let auth = format!("Bearer {}", demo.token(actor));
    let (status, headers, bytes) = demo
        .call_bytes(Method::GET, path, &[("authorization", &auth)], Vec::new())
        .await;
    (status, html_of(&headers, &bytes))
}

/// GETs the API's `path` as `actor`.
async fn api(demo: &DemoService, actor: &str, path: &str) -> (StatusCode, Value) {
    demo.call(Method::GET, path, Some(demo.token(actor)), None)
        .await
}

/// POSTs a form to `path` as `actor`: status, the `Location` of a 303, and the page's HTML.
async fn post_form(
    demo: &DemoService,
    actor: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, Option<String>, String) {
    let auth = format!("Bearer {}", demo.token(actor));
    let body = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let (status, headers, bytes) = demo
        .call_bytes(
            Method::POST,
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            body.into_bytes(),
        )
        .await;
    let location = headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, location, html_of(&headers, &bytes))
}

/// The part of `html` from the element carrying `marker` up to the next element that carries
/// an attribute of the same name (or the end of `within`'s closing tag).
fn section<'h>(html: &'h str, marker: &str, attribute: &str) -> &'h str {
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in the page:\n{html}"));
    let rest = &html[start + marker.len()..];
    let end = rest.find(attribute).unwrap_or(rest.len());
    &html[start..start + marker.len() + end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_answers_as_its_api_twin() {
    let demo = DemoService::start("dashboard-reports-twins");
    let directive = demo.run.directive.to_string();
    for actor in [
        "wang.secretary",
        "li.grid1",
        "chen.yiwuheart",
        "zheng.tea",
        "qian.officer",
        "lin.volunteer",
        "audit.office",
        "tang.resident",
        "fixmystreet",
    ] {
        let own = civicflow::demo::ACTORS
            .iter()
            .find(|a| a.0 == actor)
            .expect("a demo actor")
            .3;
        for (page_path, api_path) in [
            ("/directives".to_owned(), "/api/v1/directives".to_owned()),
            (
                format!("/directives/{directive}"),
                format!("/api/v1/directives/{directive}"),
            ),
            (
                format!("/directives/{NO_SUCH_ID}"),
                format!("/api/v1/directives/{NO_SUCH_ID}"),
            ),
            (
                "/reports?month=2026-04".to_owned(),
                "/api/v1/reports/rates?month=2026-04".to_owned(),
            ),
            (
                "/reports/lists".to_owned(),
                "/api/v1/lists/needs".to_owned(),
            ),
            (
                "/reports/overdue".to_owned(),
                format!("/api/v1/units/{own}/overdue"),
            ),
            (
                "/reports/overdue?unit=grid-1".to_owned(),
                "/api/v1/units/grid-1/overdue".to_owned(),
            ),
            (
                "/reports/overdue?unit=no-such-unit".to_owned(),
                "/api/v1/units/no-such-unit/overdue".to_owned(),
            ),
            (
                "/reports/standing".to_owned(),
                format!("/api/v1/units/{own}/standing"),
            ),
        ] {
            let (api_status, api_body) = api(&demo, actor, &api_path).await;
            let (page_status, html) = page(&demo, actor, &page_path).await;
            assert_eq!(
                page_status, api_status,
                "{page_path} as {actor} (the API's {api_path}: {api_body}):\n{html}"
            );
            if page_status == StatusCode::OK {
                assert!(html.starts_with("<!DOCTYPE html>"), "{page_path}: {html}");
                assert_eq!(html.matches("<h1").count(), 1, "{page_path}: one h1");
            }
        }
        // Anyone may open the form; the engine decides when it is sent.
        let (status, html) = page(&demo, actor, "/directives/new").await;
        assert_eq!(status, StatusCode::OK, "{actor}: {html}");
        assert!(html.contains(r#"name="within""#), "{html}");
    }
}

/// Asserts that the directive page shows `actor` the tree the API answers them: every part
/// they see and no other, each with its state and its subtree's counts, nested under its
/// parent. Returns the tree's HTML.
async fn assert_tree_as_api(demo: &DemoService, actor: &str, id: &str) -> String {
    let (status, tree) = api(demo, actor, &format!("/api/v1/directives/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{tree}");
    let (status, html) = page(demo, actor, &format!("/directives/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let parts = tree["parts"].as_array().expect("parts");
    let tree_html = &html[html.find(r#"<div class="tree">"#).expect("the tree")..];
    // Every part the API shows, and no other unit.
    assert_eq!(
        tree_html.matches("<li data-unit=").count(),
        parts.len() + usize::from(tree["view"] == "full"),
        "{actor}: {tree_html}"
    );
    let depth_of = |unit: &str| {
        let at = tree_html
            .find(&format!(r#"<li data-unit="{unit}">"#))
            .unwrap_or_else(|| panic!("{actor}: no {unit} in {tree_html}"));
        let before = &tree_html[..at];
        before.matches("<ul>").count() - before.matches("</ul>").count()
    };
    for part in parts {
        let unit = part["unit_id"].as_str().expect("a unit");
        let li = section(
            tree_html,
            &format!(r#"<li data-unit="{unit}">"#),
            "<li data-unit=",
        );
        let past_due = part["due_at"]
            .as_str()
            .is_some_and(|due| parse_rfc3339(due).expect("a time") < demo.clock.now());
        let badge = if part["reported"] == true {
            "badge ok"
        } else if part["missed"] == true || !part["escalated_to"].is_null() || past_due {
            "badge overdue"
        } else if part["acknowledged"] == true {
            "badge acknowledged"
        } else {
            "badge pending"
        };
        assert!(
            li.contains(badge),
            "{actor}: {unit} should be {badge}: {li}"
        );
        let counts = format!("{}/{}", part["subtree_reported"], part["subtree_units"]);
        assert!(li.contains(&counts), "{actor}: {unit} {counts}: {li}");
        // Nested: one level below its parent (or at the top of what the caller sees).
        let parent = parts
            .iter()
            .find(|p| p["index"] == part["parent"])
            .map(|p| p["unit_id"].as_str().expect("a unit"));
        let expected = match (parent, tree["view"].as_str()) {
            (Some(parent), _) => depth_of(parent) + 1,
            (None, Some("full")) => 2,
            (None, _) => 1,
        };
        assert_eq!(depth_of(unit), expected, "{actor}: {unit} in {tree_html}");
    }
    tree_html.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_shows_each_unit_as_the_roll_up_says() {
    let demo = DemoService::start("dashboard-reports-tree");
    // Grid 1's directive to Yiwu Heart and its two shops: the enterprise acknowledges, one
    // shop reports, the other does nothing.
    let (status, issued) = demo
        .call(
            Method::POST,
            "/api/v1/directives",
            Some(demo.token("li.grid1")),
            Some(json!({"title": "网格安全巡查 safety walk", "kind": "other", "within": "2 working days"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let id = issued["id"].as_str().expect("an id").to_owned();
    for (actor, what, body) in [
        ("chen.yiwuheart", "acknowledge", json!({"note": "收到"})),
        ("zheng.tea", "report", json!({"note": "已检查灭火器"})),
    ] {
        let (status, body) = demo
            .call(
                Method::POST,
                &format!("/api/v1/directives/{id}/{what}"),
                Some(demo.token(actor)),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{actor} {what}: {body}");
    }
    for actor in ["li.grid1", "wang.secretary", "chen.yiwuheart", "zheng.tea"] {
        let tree_html = assert_tree_as_api(&demo, actor, &id).await;
        let tree_html = tree_html.as_str();
        let states = |unit: &str| {
            section(
                tree_html,
                &format!(r#"<li data-unit="{unit}">"#),
                "<li data-unit=",
            )
            .to_owned()
        };
        if actor != "zheng.tea" {
            assert!(states("yiwu-heart").contains("badge acknowledged"));
            assert!(states("shop-yh-215").contains("badge pending"));
        }
        assert!(states("shop-yh-101").contains("已检查灭火器"));
    }
    // A shop owner sees their own part only, and the forms are gone once reported.
    let (_, html) = page(&demo, "zheng.tea", &format!("/directives/{id}")).await;
    assert!(!html.contains(r#"data-unit="shop-yh-215""#), "{html}");
    assert!(!html.contains(r#"action="/directives/"#), "{html}");
    // The shop that has not reported has both forms.
    let (_, html) = page(&demo, "feng.toys", &format!("/directives/{id}")).await;
    assert!(
        html.contains(&format!(r#"action="/directives/{id}/acknowledge""#)),
        "{html}"
    );
    assert!(
        html.contains(&format!(r#"action="/directives/{id}/report""#)),
        "{html}"
    );
    // The list links to it, with its totals.
    let (status, html) = page(&demo, "li.grid1", "/directives").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(&format!(r#"href="/directives/{id}""#)),
        "{html}"
    );
    assert!(html.contains("网格安全巡查 safety walk"), "{html}");
    // Grid 2 sees nothing of it.
    let (_, html) = page(&demo, "zhao.grid2", "/directives").await;
    assert!(
        !html.contains(&format!(r#"href="/directives/{id}""#)),
        "{html}"
    );

    // Past the deadline: every part not reported is overdue (escalated), as the roll-up says.
    demo.clock
        .advance(std::time::Duration::from_secs(10 * 24 * 3600));
    demo.service
        .engine()
        .run_due_deadlines()
        .expect("the deadline steps");
    let (_, tree) = api(&demo, "li.grid1", &format!("/api/v1/directives/{id}")).await;
    let missed = tree["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .filter(|p| p["reported"] == false)
        .count();
    assert!(missed > 0, "{tree}");
    let tree_html = assert_tree_as_api(&demo, "li.grid1", &id).await;
    assert_eq!(
        tree_html.matches("badge overdue").count(),
        missed,
        "{tree_html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forms_issue_acknowledge_and_report_through_the_engine() {
    let demo = DemoService::start("dashboard-reports-forms");
    let (status, location, html) = post_form(
        &demo,
        "wang.secretary",
        "/directives",
        &[
            ("csrf", ""),
            ("title", "消防检查 fire safety check"),
            ("kind", "staff_training"),
            ("within", "3 working days"),
            ("body", "检查灭火器 <b>now</b>"),
            ("unit_id", ""),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
    let location = location.expect("a Location");
    let id = location
        .strip_prefix("/directives/")
        .expect("to the directive's page")
        .to_owned();
    let (status, tree) = api(&demo, "wang.secretary", &format!("/api/v1/directives/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{tree}");
    assert_eq!(tree["title"], "消防检查 fire safety check");
    assert_eq!(tree["kind"], "staff_training");
    assert_eq!(tree["issued_by"], "tonghui");
    let part = |tree: &Value, unit: &str| {
        tree["parts"]
            .as_array()
            .expect("parts")
            .iter()
            .find(|p| p["unit_id"] == unit)
            .cloned()
            .unwrap_or_else(|| panic!("no part of {unit}: {tree}"))
    };
    assert_eq!(part(&tree, "grid-1")["acknowledged"], false);

    // Grid 1 acknowledges, then reports, through the page's forms.
    let (status, location, html) = post_form(
        &demo,
        "li.grid1",
        &format!("/directives/{id}/acknowledge"),
        &[("csrf", ""), ("note", "收到")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
    assert_eq!(location.as_deref(), Some(location_of(&id).as_str()));
    let (_, tree) = api(&demo, "wang.secretary", &format!("/api/v1/directives/{id}")).await;
    assert_eq!(part(&tree, "grid-1")["acknowledged"], true, "{tree}");
    assert_eq!(part(&tree, "grid-1")["reported"], false, "{tree}");
    let (status, _, html) = post_form(
        &demo,
        "li.grid1",
        &format!("/directives/{id}/report"),
        &[("csrf", ""), ("note", "已完成 done")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
    let (_, tree) = api(&demo, "wang.secretary", &format!("/api/v1/directives/{id}")).await;
    assert_eq!(part(&tree, "grid-1")["reported"], true, "{tree}");
    assert_eq!(part(&tree, "grid-1")["report"], "已完成 done", "{tree}");
    // The page shows it, escaped where it is text.
    let (_, html) = page(&demo, "wang.secretary", &format!("/directives/{id}")).await;
    assert!(html.contains("已完成 done"), "{html}");
    let (_, html) = page(&demo, "li.grid1", &format!("/directives/{id}")).await;
    assert!(
        !html.contains(&format!(r#"action="/directives/{id}/report""#)),
        "reported: no form any more: {html}"
    );
}

fn location_of(id: &str) -> String {
    format!("/directives/{id}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_shows_beside_its_field_and_writes_nothing() {
    let demo = DemoService::start("dashboard-reports-refusals");
    let issue = |within: &'static str, title: &'static str| {
        vec![
            ("csrf", ""),
            ("title", title),
            ("kind", "other"),
            ("within", within),
        ]
    };
    let before = head(&demo);
    // A span the service cannot take: 400 naming within, beside the field, the values kept.
    let (status, location, html) = post_form(
        &demo,
        "wang.secretary",
        "/directives",
        &issue("99999999 working days", "太长的期限"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert_eq!(location, None);
    assert!(html.contains(r#"id="d-within-error""#), "{html}");
    assert!(
        html.contains(r#"aria-describedby="d-within-hint d-within-error""#),
        "{html}"
    );
    assert!(
        section(&html, r#"id="d-within-error""#, "</p>").contains("within"),
        "{html}"
    );
    assert!(
        html.contains(r#"value="太长的期限""#),
        "the title is kept: {html}"
    );
    // A blank title: 400 beside the title.
    let (status, _, html) = post_form(
        &demo,
        "wang.secretary",
        "/directives",
        &issue("3 working days", " "),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(html.contains(r#"id="d-title-error""#), "{html}");
    assert!(
        html.contains(r#"aria-describedby="d-title-error""#),
        "{html}"
    );
    // A role that may not issue: the engine's 403, at the top of the form.
    let (status, _, html) = post_form(
        &demo,
        "lin.volunteer",
        "/directives",
        &issue("3 working days", "志愿者不能下达"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    assert!(html.contains(r#"role="alert""#), "{html}");
    assert!(
        html.contains(r#"<meta name="civicflow-error" content="forbidden">"#),
        "the API's code, as on error pages: {html}"
    );
    assert!(
        html.contains(r#"action="/directives""#),
        "the form again: {html}"
    );
    assert_eq!(head(&demo), before, "refused forms wrote nothing");

    // A report without a note: 400 beside the note of the report form.
    let (status, issued) = demo
        .call(
            Method::POST,
            "/api/v1/directives",
            Some(demo.token("li.grid1")),
            Some(json!({"title": "网格安全巡查", "kind": "other", "within": "2 working days"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let id = issued["id"].as_str().expect("an id");
    let before = head(&demo);
    let (status, _, html) = post_form(
        &demo,
        "chen.yiwuheart",
        &format!("/directives/{id}/report"),
        &[("csrf", ""), ("note", "")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(html.contains(r#"id="report-note-error""#), "{html}");
    assert!(
        html.contains(r#"aria-describedby="report-note-error""#),
        "{html}"
    );
    assert!(
        section(&html, r#"id="report-note-error""#, "</p>").contains("note"),
        "{html}"
    );
    // A unit without a part: the engine's 422, at the top of the form.
    let (status, _, html) = post_form(
        &demo,
        "zhao.grid2",
        &format!("/directives/{id}/acknowledge"),
        &[("csrf", ""), ("note", "")],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "grid 2 sees nothing of it: {html}"
    );
    let (status, _, html) = post_form(
        &demo,
        "li.grid1",
        &format!("/directives/{id}/acknowledge"),
        &[("csrf", ""), ("note", "")],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the issuer has no part: {html}"
    );
    assert!(html.contains(r#"role="alert""#), "{html}");
    assert_eq!(head(&demo), before, "refused forms wrote nothing");
    // And the API agrees nothing was reported.
    let (_, tree) = api(&demo, "li.grid1", &format!("/api/v1/directives/{id}")).await;
    assert_eq!(tree["reported"], 0, "{tree}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rates_chart_has_a_bar_per_unit_with_the_api_numbers() {
    let demo = DemoService::start("dashboard-reports-rates");
    let (status, rates) = api(
        &demo,
        "wang.secretary",
        "/api/v1/reports/rates?month=2026-04",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rates}");
    let ranking = rates["ranking"].as_array().expect("ranking");
    assert!(!ranking.is_empty(), "the demo has rates in April: {rates}");
    let (status, html) = page(&demo, "wang.secretary", "/reports?month=2026-04").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    for (key, field) in [
        ("response", "response_rate"),
        ("resolution", "resolution_rate"),
        ("satisfaction", "satisfaction_rate"),
    ] {
        let svg = section(
            &html,
            &format!(r#"<svg class="chart" id="rate-{key}""#),
            "</svg>",
        );
        assert!(svg.contains(r#"role="img""#), "{svg}");
        assert!(
            svg.contains(&format!(
                r#"aria-labelledby="rate-{key}-title rate-{key}-desc""#
            )),
            "{svg}"
        );
        assert!(
            svg.contains(&format!(r#"<title id="rate-{key}-title">"#)),
            "{svg}"
        );
        assert!(
            svg.contains(&format!(r#"<desc id="rate-{key}-desc">"#)),
            "{svg}"
        );
        assert!(!svg.contains("style="), "{svg}");
        assert_eq!(
            svg.matches(r#"<g class="bar""#).count(),
            ranking.len(),
            "a bar per unit: {svg}"
        );
        let with_data = ranking.iter().filter(|u| u[field].is_f64()).count();
        assert_eq!(svg.matches("<rect").count(), with_data, "{svg}");
        for unit in ranking {
            let id = unit["unit_id"].as_str().expect("a unit");
            let bar = section(svg, &format!(r#"data-key="{id}""#), "</g>");
            match unit[field].as_f64() {
                Some(rate) => {
                    let text = format!("{:.1}%", rate * 100.0);
                    assert!(bar.contains(&text), "{key} of {id}: {text} in {bar}");
                    let width =
                        format!(r#"width="{:.1}""#, (rate.clamp(0.0, 1.0) * 520.0).max(1.0));
                    assert!(bar.contains(&width), "{key} of {id}: {width} in {bar}");
                }
                None => assert!(bar.contains("no data"), "{bar}"),
            }
            if let Some(name) = unit["unit_name"].as_str() {
                assert!(bar.contains(name), "{bar}");
            }
        }
        // The data table beside it, for screen readers.
        let table = section(
            &html,
            &format!(r#"<svg class="chart" id="rate-{key}""#),
            "</table>",
        );
        assert_eq!(
            table.matches(r#"<th scope="row">"#).count(),
            ranking.len(),
            "{table}"
        );
    }
    // The community's statistics for the month's year, as the API counts them.
    let (_, stats) = api(
        &demo,
        "wang.secretary",
        "/api/v1/reports/stats?year=2026&community=tonghui",
    )
    .await;
    let opened = format!("<dd>{}</dd>", stats["opened"]);
    assert!(html.contains(&opened), "{opened}: {html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_month_or_quarter_is_an_error_naming_it() {
    let demo = DemoService::start("dashboard-reports-months");
    for (path, field) in [
        ("/reports?month=2026-13", "month"),
        ("/reports?month=April", "month"),
        ("/reports?month=2026-4", "month"),
        ("/reports/standing?month=2026-00", "month"),
        ("/reports/standing?quarter=2026Q5", "quarter"),
        ("/reports?tier=grid", "tier"),
        ("/reports/lists?retired=maybe", "retired"),
        ("/directives?after=x", "after"),
    ] {
        let (status, html) = page(&demo, "wang.secretary", path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {html}");
        assert!(
            html.contains(&format!("<strong>{field}</strong>")),
            "{path}: the error names {field}: {html}"
        );
    }
    // An empty month is no month: this month's report.
    let (status, html) = page(&demo, "wang.secretary", "/reports?month=").await;
    assert_eq!(status, StatusCode::OK, "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_reports_show_what_the_api_answers() {
    let demo = DemoService::start("dashboard-reports-others");
    // 督办: the units with anything overdue and every item, linking the case.
    let (_, overdue) = api(&demo, "wang.secretary", "/api/v1/units/tonghui/overdue").await;
    let (status, html) = page(&demo, "wang.secretary", "/reports/overdue").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let items = overdue["items"].as_array().expect("items");
    assert!(!items.is_empty(), "the demo escalated a case: {overdue}");
    assert!(html.contains(&format!("({})", items.len())), "{html}");
    for (unit, counts) in overdue["counts"].as_object().expect("counts") {
        let total: u64 = ["missed", "escalated", "breached", "running_overdue"]
            .iter()
            .map(|k| counts[k].as_u64().expect("a count"))
            .sum();
        assert_eq!(
            html.contains(&format!(r#"<tr data-unit="{unit}">"#)),
            total > 0,
            "{unit}: {counts}"
        );
    }
    assert!(
        html.contains(&format!(r#"href="/cases/{}""#, demo.run.escalated_case)),
        "{html}"
    );
    // A grid worker's report is their grid's.
    let (_, grid) = api(&demo, "li.grid1", "/api/v1/units/grid-1/overdue").await;
    let (_, html) = page(&demo, "li.grid1", "/reports/overdue").await;
    assert!(
        html.contains(&format!(
            "({})",
            grid["items"].as_array().expect("items").len()
        )),
        "{html}"
    );

    // The three lists: the demo's project, and every item the API lists.
    let (status, html) = page(&demo, "wang.secretary", "/reports/lists").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    for kind in ["needs", "resources", "projects"] {
        let (_, list) = api(&demo, "wang.secretary", &format!("/api/v1/lists/{kind}")).await;
        let section = section(&html, &format!(r#"id="list-{kind}""#), "</table>");
        for item in list["items"].as_array().expect("items") {
            let title = item["title"].as_str().expect("a title");
            let escaped = title
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            assert!(section.contains(&escaped), "{kind}: {title} in {section}");
        }
    }

    // Standing: each shop's points as the API has them, the month's flags, the quarter's
    // recommended merchants.
    let (status, html) = page(
        &demo,
        "wang.secretary",
        "/reports/standing?month=2026-04&quarter=2026Q2",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    for shop in ["shop-yh-101", "shop-xt-033", "shop-it-108"] {
        let (_, standing) = api(
            &demo,
            "wang.secretary",
            &format!("/api/v1/units/{shop}/standing"),
        )
        .await;
        let bar = section(&html, &format!(r#"data-key="{shop}""#), "</g>");
        match standing["points"].as_u64() {
            Some(points) => assert!(bar.contains(&format!("{points}/12")), "{shop}: {bar}"),
            None => assert!(bar.contains("no cycle"), "{shop}: {bar}"),
        }
    }
    let (_, flags) = api(
        &demo,
        "wang.secretary",
        "/api/v1/reports/flags?period=2026-04",
    )
    .await;
    let flags_html = section(&html, r#"id="flags-h""#, "</dl>");
    for unit in flags["yellow"]
        .as_array()
        .expect("yellow")
        .iter()
        .chain(flags["red"].as_array().expect("red"))
    {
        assert!(
            flags_html.contains(unit.as_str().expect("a unit")),
            "{unit}: {flags_html}"
        );
    }
    let (_, recommended) = api(
        &demo,
        "wang.secretary",
        "/api/v1/reports/recommended?quarter=2026Q2",
    )
    .await;
    let recommended_html = section(&html, r#"id="recommended-h""#, "</table>");
    for merchant in recommended["merchants"].as_array().expect("merchants") {
        let name = merchant["unit_name"].as_str().expect("a name");
        assert!(
            recommended_html.contains(name),
            "{name}: {recommended_html}"
        );
    }
    // A shop owner sees their own shop only.
    let (status, html) = page(&demo, "zheng.tea", "/reports/standing").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains(r#"data-key="shop-yh-101""#), "{html}");
    assert!(!html.contains(r#"data-key="shop-xt-033""#), "{html}");
}
