//! The business calendar over a real socket (issue 13, "Time that stays right after 2026";
//! docs/service.md, "Calendar"): a deadline reaching past the calendar's data is provisional
//! in the case's answer; a top unit's administrator publishes the year (JSON or the calendar
//! file's TOML), which makes it final before the answer; anyone else is refused; a bad year
//! is refused naming the field; `GET /api/v1/calendar` and `/metrics` say where coverage ends.

use crate::common::service::DemoService;
use crate::common::socket::{request, Served};
use civicflow::core::calendar::{LocalDate, Zone};
use serde_json::{json, Value};

async fn call(
    served: &Served,
    method: &str,
    path: &str,
    token: &str,
    body: Option<(&str, String)>,
) -> (u16, Value) {
    let headers = vec![("Authorization".to_owned(), format!("Bearer {token}"))];
    let response = request(
        served.addr,
        method,
        path,
        &headers,
        body.as_ref().map(|(media, text)| (*media, text.as_bytes())),
    )
    .await
    .expect("a response");
    let value = serde_json::from_slice(&response.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&response.body).into_owned()));
    (response.status, value)
}

/// How long a read model may take to follow the log (a bound for a busy machine, not a
/// figure the test checks).
const READ_MODELS_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The case's item in grid 1's inbox once `wanted` holds of it (the read models follow the
/// log a moment after the answer).
async fn inbox_item(
    served: &Served,
    token: &str,
    case: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    let give_up = std::time::Instant::now() + READ_MODELS_WAIT;
    while std::time::Instant::now() < give_up {
        let (status, inbox) = call(served, "GET", "/api/v1/units/grid-1/inbox", token, None).await;
        assert_eq!(status, 200, "{inbox}");
        if let Some(item) = inbox["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|item| item["subject"]["case_id"] == case)
        {
            if wanted(item) {
                return item.clone();
            }
            last = item.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the inbox never showed the case as wanted; last: {last}");
}

/// Waits until grid 1's overdue report at `now` lists (or no longer lists) the case as a
/// running deadline past due.
async fn overdue_until(served: &Served, token: &str, case: &str, now: &str, listed: bool) {
    let path = format!("/api/v1/units/grid-1/overdue?now={now}");
    let mut last = Value::Null;
    let give_up = std::time::Instant::now() + READ_MODELS_WAIT;
    while std::time::Instant::now() < give_up {
        let (status, report) = call(served, "GET", &path, token, None).await;
        assert_eq!(status, 200, "{report}");
        let found = report["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|item| item["kind"] == "running_overdue" && item["subject"]["case_id"] == case);
        if found == listed {
            return;
        }
        last = report;
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!(
        "the overdue report at {now} never {}listed the case: {last}",
        if listed { "" } else { "un" }
    );
}

fn json_body(value: Value) -> Option<(&'static str, String)> {
    Some(("application/json", value.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_year_makes_provisional_deadlines_final() {
    let demo = DemoService::start("http-calendar");
    // Thursday 31 December 2026, 10:00 in Asia/Shanghai: the release's data ends tonight.
    demo.clock.set(
        Zone::shanghai()
            .from_local(LocalDate::parse("2026-12-31").expect("a date"), 600)
            .expect("a time"),
    );
    let served = Served::start(demo).await;
    let grid = served.token("li.grid1").to_owned();
    let admin = served.token("wang.secretary").to_owned();

    let (status, calendar) = call(&served, "GET", "/api/v1/calendar", &grid, None).await;
    assert_eq!(status, 200, "{calendar}");
    assert_eq!(calendar["zone"], "Asia/Shanghai");
    assert_eq!(calendar["covered_through"], 2026);
    let years: Vec<i64> = calendar["years"]
        .as_array()
        .expect("years")
        .iter()
        .map(|y| y["year"].as_i64().expect("a year"))
        .collect();
    assert_eq!(years, [2025, 2026]);
    assert_eq!(calendar["years"][1]["origin"], "release");

    // A consumer dispute accepted now: one working day, counted without 2027's data.
    let (status, opened) = call(
        &served,
        "POST",
        "/api/v1/cases",
        &grid,
        json_body(json!({
            "workflow": "consumer-dispute",
            "unit_id": "grid-1",
            "title": "退款纠纷 a refund refused",
            "fields": {"kind": "refund"},
        })),
    )
    .await;
    assert_eq!(status, 201, "{opened}");
    let case = format!("/api/v1/cases/{}", opened["id"].as_str().expect("an id"));
    let (_, before) = call(&served, "GET", &case, &grid, None).await;
    assert_eq!(before["deadline"]["provisional"], true, "{before}");
    assert!(before["deadline"]["due_at"]
        .as_str()
        .expect("a due time")
        .starts_with("2027-01-01T17:30"));

    let case_id = opened["id"].as_str().expect("an id").to_owned();
    let in_inbox = inbox_item(&served, &grid, &case_id, |item| item["provisional"] == true).await;
    assert!(in_inbox["due_at"]
        .as_str()
        .expect("a due time")
        .starts_with("2027-01-01T17:30"));

    // The overdue report counts it overdue on 2 January, at its provisional due time.
    overdue_until(&served, &grid, &case_id, "2027-01-02", true).await;

    let year = json!({
        "source": "test schedule for 2027 (not the State Council's notice)",
        "off": [["2027-01-01", "2027-01-03"]],
    });
    // Only a top unit's community administrator publishes.
    let (status, refused) = call(
        &served,
        "PUT",
        "/api/v1/calendar/2027",
        &grid,
        json_body(year.clone()),
    )
    .await;
    assert_eq!(status, 403, "{refused}");

    let (status, published) = call(
        &served,
        "PUT",
        "/api/v1/calendar/2027",
        &admin,
        json_body(year),
    )
    .await;
    assert_eq!(status, 200, "{published}");
    assert_eq!(published["changed"], true);
    assert_eq!(published["revision"], 1);
    assert!(published["recomputed"].as_u64().expect("a count") >= 1);
    let (_, after) = call(&served, "GET", &case, &grid, None).await;
    assert_eq!(after["deadline"]["provisional"], false, "{after}");
    assert!(after["deadline"]["due_at"]
        .as_str()
        .expect("a due time")
        .starts_with("2027-01-04T17:30"));

    // The grid's inbox (a read model) follows the recomputation.
    let in_inbox = inbox_item(&served, &grid, &case_id, |item| {
        item["provisional"] == false
    })
    .await;
    assert!(in_inbox["due_at"]
        .as_str()
        .expect("a due time")
        .starts_with("2027-01-04T17:30"));

    // The overdue report's running deadline moved with it: not overdue on 2 January any
    // more, overdue on 5 January.
    overdue_until(&served, &grid, &case_id, "2027-01-02", false).await;
    overdue_until(&served, &grid, &case_id, "2027-01-05", true).await;

    // The same days as the calendar file's TOML (the table without its header) change nothing.
    let toml = "source = \"the same days, as TOML\"\noff = [[\"2027-01-01\", \"2027-01-03\"]]\n";
    let (status, again) = call(
        &served,
        "PUT",
        "/api/v1/calendar/2027",
        &admin,
        Some(("application/toml", toml.to_owned())),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["changed"], false);

    // A bad year is refused naming the field; so is a body for another year.
    let (status, bad) = call(
        &served,
        "PUT",
        "/api/v1/calendar/2027",
        &admin,
        json_body(json!({"source": "x", "off": [["2028-01-01", "2028-01-02"]]})),
    )
    .await;
    assert_eq!(status, 422, "{bad}");
    assert_eq!(bad["error"]["field"], "off[0]", "{bad}");
    let (status, other) = call(
        &served,
        "PUT",
        "/api/v1/calendar/2028",
        &admin,
        Some(("application/toml", format!("[2027]\n{toml}"))),
    )
    .await;
    assert_eq!(status, 422, "{other}");
    assert_eq!(other["error"]["field"], "year", "{other}");
    let (status, _) = call(
        &served,
        "PUT",
        "/api/v1/calendar/27",
        &admin,
        json_body(json!({})),
    )
    .await;
    assert_eq!(status, 404);

    let (_, calendar) = call(&served, "GET", "/api/v1/calendar", &grid, None).await;
    assert_eq!(calendar["covered_through"], 2027, "{calendar}");
    let published = &calendar["years"][2];
    assert_eq!(
        (
            published["year"].as_i64(),
            published["origin"].as_str(),
            published["revision"].as_i64()
        ),
        (Some(2027), Some("published"), Some(1))
    );
    let (status, metrics) = call(&served, "GET", "/metrics", &grid, None).await;
    assert_eq!(status, 200);
    let text = metrics.as_str().expect("text");
    // 2028-01-01T00:00:00+08:00.
    assert!(
        text.contains("civicflow_calendar_covered_until_seconds 1830268800"),
        "{text}"
    );
}
