//! Live feedback over a real socket: the case stream replays, follows and resumes after
//! `Last-Event-ID`; it ends when the case leaves the caller's scope; the unit stream carries
//! the events of its subtree and nothing else; the error statuses; and a service with open
//! streams stops promptly at shutdown.

use std::time::Duration;

use crate::common::service::DemoService;
use crate::common::socket::{EventStream, Served, SseEvent};
use serde_json::{json, Value};

/// How long an event may take to arrive.
const WAIT: Duration = Duration::from_secs(5);

async fn open_case(served: &Served, actor: &str, unit: &str, title: &str) -> String {
    let (status, created) = served
        .json(
            "POST",
            "/api/v1/cases",
            Some(served.token(actor)),
            Some(&json!({
                "workflow": "service-request",
                "unit_id": unit,
                "title": title,
                "fields": {"category": "public_facilities"},
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().expect("an id").to_owned()
}

async fn act(served: &Served, actor: &str, case: &str, body: Value) -> Value {
    let (status, acted) = served
        .json(
            "POST",
            &format!("/api/v1/cases/{case}/actions"),
            Some(served.token(actor)),
            Some(&body),
        )
        .await;
    assert_eq!(status, 200, "{acted}");
    acted
}

async fn next(stream: &mut EventStream) -> SseEvent {
    stream
        .next_within(WAIT)
        .await
        .expect("an event in time")
        .expect("the stream goes on")
}

fn kind(event: &SseEvent) -> &str {
    event.event.as_deref().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_stream_replays_follows_and_resumes() {
    let served = Served::start(DemoService::start("sse-case")).await;
    let grid = served.token("li.grid1");
    let case = open_case(&served, "li.grid1", "grid-1", "长椅坏了").await;
    let path = format!("/api/v1/cases/{case}/events");

    let mut stream = served.events(&path, Some(grid), None).await;
    assert_eq!(stream.status(), 200);
    assert!(stream
        .head
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/event-stream")));
    // The replay starts at the first event.
    let opened = next(&mut stream).await;
    assert_eq!(kind(&opened), "CaseOpened");
    assert_eq!(opened.id.as_deref(), Some("1"));
    let data = opened.json();
    for key in [
        "position",
        "version",
        "type",
        "recorded_at",
        "actor",
        "hash",
    ] {
        assert!(data.get(key).is_some(), "{key} missing from {data}");
    }
    assert_eq!(data["version"], 1);
    assert_eq!(data["type"], "CaseOpened");
    assert_eq!(data["case"], case.as_str());
    assert_eq!(data["actor"]["id"], "li.grid1");
    assert_eq!(data["actor"]["role"], "grid_worker");
    assert_eq!(data["actor"]["unit_id"], "grid-1");
    let summary = data["summary"].as_str().expect("a summary");
    assert!(summary.contains("长椅坏了"), "{summary}");

    // An action through the API arrives live.
    let acted = act(
        &served,
        "li.grid1",
        &case,
        json!({"action": "dispatch", "unit": "yiwu-heart"}),
    )
    .await;
    let dispatched = acted["version"].as_u64().expect("a version");
    let (skipped, action) = stream
        .until(WAIT, |e| kind(e) == "ActionTaken")
        .await
        .expect("the action's event");
    let mut last = 1;
    for event in skipped.iter().chain([&action]) {
        assert!(event.id_number() > last, "ids go up: {event:?}");
        last = event.id_number();
    }
    assert_eq!(action.json()["actor"]["id"], "li.grid1");
    let summary = action.json()["summary"].as_str().map(str::to_owned);
    assert!(
        summary.as_deref().is_some_and(|s| s.contains("dispatch")),
        "{summary:?}"
    );
    assert!(action.id_number() <= dispatched);
    let (_, lead) = stream
        .until(WAIT, |e| kind(e) == "LeadAssigned")
        .await
        .expect("the new lead");
    assert_eq!(lead.json()["lead_unit_id"], "yiwu-heart");
    // A live event carries the stage the case is in after it.
    assert!(lead.json()["stage"].is_string(), "{:?}", lead.json());
    drop(stream);

    // Resuming after version 1: the first event is version 2, nothing earlier.
    let mut resumed = served.events(&path, Some(grid), Some("1")).await;
    assert_eq!(resumed.status(), 200);
    assert_eq!(next(&mut resumed).await.id_number(), 2);
    drop(resumed);

    // Resuming at the newest version: only what commits afterwards.
    let mut resumed = served
        .events(&path, Some(grid), Some(&dispatched.to_string()))
        .await;
    assert_eq!(resumed.status(), 200);
    assert!(
        resumed
            .next_within(Duration::from_millis(300))
            .await
            .is_err(),
        "nothing new yet"
    );
    act(
        &served,
        "chen.yiwuheart",
        &case,
        json!({"action": "sign_for"}),
    )
    .await;
    let (skipped, signed) = resumed
        .until(WAIT, |e| kind(e) == "ActionTaken")
        .await
        .expect("the sign-for");
    for event in skipped.iter().chain([&signed]) {
        assert!(event.id_number() > dispatched, "{event:?}");
    }
    assert_eq!(signed.json()["actor"]["id"], "chen.yiwuheart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_stream_ends_when_the_case_leaves_the_callers_scope() {
    let served = Served::start(DemoService::start("sse-scope")).await;
    let case = open_case(&served, "wang.secretary", "tonghui", "路灯不亮").await;
    act(
        &served,
        "wang.secretary",
        &case,
        json!({"action": "dispatch", "unit": "grid-1"}),
    )
    .await;
    // Grid 1 leads it now, so it may follow it (its whole history).
    let path = format!("/api/v1/cases/{case}/events");
    let mut stream = served
        .events(&path, Some(served.token("li.grid1")), None)
        .await;
    assert_eq!(stream.status(), 200);
    assert_eq!(kind(&next(&mut stream).await), "CaseOpened");
    stream
        .until(WAIT, |e| kind(e) == "LeadAssigned")
        .await
        .expect("the dispatch to grid 1");
    // Reassigned to grid 2: grid 1 sees the handover, then the stream ends.
    act(
        &served,
        "wang.secretary",
        &case,
        json!({"action": "reassign", "unit": "grid-2", "reason": "wrong grid"}),
    )
    .await;
    let (_, handover) = stream
        .until(WAIT, |e| kind(e) == "LeadAssigned")
        .await
        .expect("the handover");
    assert_eq!(handover.json()["lead_unit_id"], "grid-2");
    assert!(
        matches!(stream.next_within(WAIT).await, Ok(None)),
        "the stream ends after the handover"
    );
    // And a new connection is refused.
    let again = served
        .events(&path, Some(served.token("li.grid1")), None)
        .await;
    assert_eq!(again.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_stream_carries_its_subtree_only() {
    let served = Served::start(DemoService::start("sse-unit")).await;
    let head = served.head().to_string();
    let mut grid = served
        .events(
            "/api/v1/units/grid-1/events",
            Some(served.token("li.grid1")),
            Some(&head),
        )
        .await;
    assert_eq!(grid.status(), 200);
    let mut community = served
        .events(
            "/api/v1/units/tonghui/events",
            Some(served.token("wang.secretary")),
            Some(&head),
        )
        .await;
    assert_eq!(community.status(), 200);

    let outside = open_case(&served, "zhao.grid2", "grid-2", "井盖松动").await;
    let inside = open_case(&served, "li.grid1", "grid-1", "长椅坏了").await;

    // Grid 1 sees its case, and the other grid's (which committed first) not at all.
    let (skipped, hit) = grid
        .until(WAIT, |e| e.json()["case"] == inside.as_str())
        .await
        .expect("the grid's own case");
    assert_eq!(kind(&hit), "CaseOpened");
    assert_eq!(hit.id_number(), hit.json()["position"].as_u64().expect("n"));
    for event in skipped.iter().chain([&hit]) {
        assert_ne!(event.json()["case"], outside.as_str(), "{event:?}");
        assert!(event.id_number() > head.parse::<u64>().expect("n"));
    }
    // The community above both grids sees both, in log order.
    let (_, first) = community
        .until(WAIT, |e| e.json()["case"] == outside.as_str())
        .await
        .expect("grid 2's case");
    let (_, second) = community
        .until(WAIT, |e| e.json()["case"] == inside.as_str())
        .await
        .expect("grid 1's case");
    assert!(first.id_number() < second.id_number());

    // Resuming after the grid's first event: later events of the subtree only.
    let mut resumed = served
        .events(
            "/api/v1/units/grid-1/events",
            Some(served.token("li.grid1")),
            Some(&hit.id_number().to_string()),
        )
        .await;
    act(
        &served,
        "li.grid1",
        &inside,
        json!({"action": "dispatch", "unit": "yiwu-heart"}),
    )
    .await;
    let (skipped, action) = resumed
        .until(WAIT, |e| kind(e) == "ActionTaken")
        .await
        .expect("the dispatch");
    for event in skipped.iter().chain([&action]) {
        assert!(event.id_number() > hit.id_number());
        assert_eq!(event.json()["case"], inside.as_str());
    }

    // A unit above the caller's, or unknown: not found.
    for unit in ["tonghui", "grid-2", "nowhere"] {
        let refused = served
            .events(
                &format!("/api/v1/units/{unit}/events"),
                Some(served.token("li.grid1")),
                None,
            )
            .await;
        assert_eq!(refused.status(), 404, "{unit}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_stream_carries_the_directive_parts_of_its_subtree() {
    let served = Served::start(DemoService::start("sse-directive")).await;
    let directive = served.run.directive.to_string();
    let shop = served.token("zheng.tea");
    let path = "/api/v1/units/shop-yh-101/events";

    // From the first event: the shop's own part, from its assignment to its report.
    let mut stream = served.events(path, Some(shop), None).await;
    assert_eq!(stream.status(), 200);
    let (skipped, reported) = stream
        .until(WAIT, |e| kind(e) == "PartReported")
        .await
        .expect("the shop's report");
    let parts: Vec<&SseEvent> = skipped
        .iter()
        .chain([&reported])
        .filter(|e| e.json().get("directive").is_some())
        .collect();
    assert_eq!(kind(parts[0]), "PartAssigned", "{parts:?}");
    for event in &parts {
        let data = event.json();
        assert_eq!(data["directive"], directive.as_str(), "{data}");
        assert_eq!(data["unit_id"], "shop-yh-101", "{data}");
        assert!(
            data.get("part").is_some(),
            "only parts, not the issue: {data}"
        );
    }
    let assigned = parts[0].id_number();
    drop(stream);

    // Resumed after the assignment: the part is recognised from its first event.
    let mut resumed = served
        .events(path, Some(shop), Some(&assigned.to_string()))
        .await;
    let (_, part) = resumed
        .until(WAIT, |e| e.json().get("directive").is_some())
        .await
        .expect("the part's next event");
    assert!(part.id_number() > assigned);
    assert_ne!(kind(&part), "PartAssigned");
    assert_eq!(part.json()["unit_id"], "shop-yh-101");

    // The community that issued it sees the issue itself.
    let mut community = served
        .events(
            "/api/v1/units/tonghui/events",
            Some(served.token("wang.secretary")),
            None,
        )
        .await;
    let (_, issued) = community
        .until(WAIT, |e| kind(e) == "DirectiveIssued")
        .await
        .expect("the issue");
    assert_eq!(issued.json()["directive"], directive.as_str());
    assert_eq!(issued.json()["unit_id"], "tonghui");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_answer_404_outside_the_scope_and_400_for_a_bad_last_event_id() {
    let served = Served::start(DemoService::start("sse-errors")).await;
    let other_grid = open_case(&served, "zhao.grid2", "grid-2", "井盖松动").await;
    let grid = served.token("li.grid1");

    let refused = served
        .events(
            &format!("/api/v1/cases/{other_grid}/events"),
            Some(grid),
            None,
        )
        .await;
    assert_eq!(refused.status(), 404);
    let error = refused.body_json().await;
    assert_eq!(error["error"]["code"], "not_found", "{error}");

    let unknown = served
        .events("/api/v1/cases/not-a-case/events", Some(grid), None)
        .await;
    assert_eq!(unknown.status(), 404);

    let unauthenticated = served
        .events(&format!("/api/v1/cases/{other_grid}/events"), None, None)
        .await;
    assert_eq!(unauthenticated.status(), 401);

    let own = served.run.smooth_case.to_string();
    for path in [
        format!("/api/v1/cases/{own}/events"),
        "/api/v1/units/grid-1/events".to_owned(),
    ] {
        for bad in ["abc", "-3", "1e3", "99999999999999999999999"] {
            let refused = served
                .events(&path, Some(served.token("wang.secretary")), Some(bad))
                .await;
            assert_eq!(refused.status(), 400, "{path} {bad}");
            let error = refused.body_json().await;
            assert_eq!(error["error"]["field"], "Last-Event-ID", "{error}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_end_at_shutdown_and_the_service_stops_in_time() {
    let demo = DemoService::start_with("sse-shutdown", |config| {
        config.shutdown_grace = Duration::from_secs(10);
    });
    let served = Served::start(demo).await;
    let admin = served.token("wang.secretary");
    let mut case = served
        .events(
            &format!("/api/v1/cases/{}/events", served.run.smooth_case),
            Some(admin),
            None,
        )
        .await;
    assert_eq!(case.status(), 200);
    next(&mut case).await;
    let mut unit = served
        .events(
            "/api/v1/units/tonghui/events",
            Some(admin),
            Some(&served.head().to_string()),
        )
        .await;
    assert_eq!(unit.status(), 200);

    // Well within the 10-second grace: the streams end, nothing has to be cut off.
    let took = served
        .shutdown(Duration::from_secs(8))
        .await
        .expect("the service stops");
    assert!(took < Duration::from_secs(3), "it took {took:?}");
    for stream in [&mut case, &mut unit] {
        loop {
            match stream.next_within(WAIT).await {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => panic!("the stream did not end cleanly: {e}"),
            }
        }
    }
}
