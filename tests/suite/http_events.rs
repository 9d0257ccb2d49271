//! Live feedback over a real socket: the case stream replays, follows and resumes after
//! `Last-Event-ID`; it ends when the case leaves the caller's scope; the unit stream carries
//! the events of its subtree and nothing else; the error statuses; a service with open
//! streams stops promptly at shutdown; and a stream ends at once when its token is revoked
//! (through the API or straight in the log) or the org chart takes the caller's scope away.

use std::time::Duration;

use crate::common::service::DemoService;
use crate::common::socket::{open_events, EventStream, Served, SseEvent};
use civicflow::core::domain::access::{AccessCommand, SessionNonce, TokenId};
use civicflow::core::domain::org::{Acting, OrgCommand};
use civicflow::core::engine::Command;
use civicflow::core::UnitId;
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

    // History asked for from the first event (Last-Event-ID 0; without it the stream starts
    // at the head): the shop's own part, from its assignment to its report.
    let mut stream = served.events(path, Some(shop), Some("0")).await;
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

    // The community that issued it sees the issue itself (history asked for with `since`).
    let mut community = served
        .events(
            "/api/v1/units/tonghui/events?since=0",
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

// ---------------------------------------------------------------------------------------------
// Streams end when the caller loses the right to read them (issue 13)

/// How long a stream may take to end once the caller lost the right to read it: generous,
/// for a loaded machine; without the fix the stream never ends and this wait fails.
const END_WAIT: Duration = Duration::from_secs(10);

/// A fresh token for `actor` (a grid worker at grid 1), issued by the community's secretary
/// through the API: `(id, secret)`.
async fn issue_grid_token(served: &Served) -> (String, String) {
    let (status, issued) = served
        .json(
            "POST",
            "/api/v1/tokens",
            Some(served.token("wang.secretary")),
            Some(&json!({
                "actor": "li.grid1",
                "role": "grid_worker",
                "unit_id": "grid-1",
                "name": "a token to revoke",
            })),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    (
        issued["id"].as_str().expect("an id").to_owned(),
        issued["token"].as_str().expect("a secret").to_owned(),
    )
}

/// Reads `stream` until it ends, within [`END_WAIT`]: every event it still sent must be one
/// committed at or before log position `cutoff` (written before the caller lost the right).
async fn ends_without_events_after(stream: &mut EventStream, cutoff: u64, what: &str) {
    loop {
        match stream.next_within(END_WAIT).await {
            Ok(Some(event)) => {
                let position = event.json()["position"].as_u64().unwrap_or(u64::MAX);
                assert!(
                    position <= cutoff,
                    "{what}: an event written after the caller lost the right went out: {event:?}"
                );
            }
            Ok(None) => return,
            Err(e) => panic!("{what}: the stream did not end: {e}"),
        }
    }
}

/// The system, for changes the API does not offer (the org chart) or that bypass it.
fn system() -> Acting {
    Acting::system(UnitId::new("tonghui").expect("a unit id"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_through_the_api_ends_its_open_streams() {
    let served = Served::start(DemoService::start("sse-revoke-api")).await;
    let (id, secret) = issue_grid_token(&served).await;
    let case = open_case(&served, "li.grid1", "grid-1", "长椅坏了").await;
    let mut case_stream = served
        .events(&format!("/api/v1/cases/{case}/events"), Some(&secret), None)
        .await;
    assert_eq!(case_stream.status(), 200);
    assert_eq!(kind(&next(&mut case_stream).await), "CaseOpened");
    let head = served.head().to_string();
    let mut unit_stream = served
        .events("/api/v1/units/grid-1/events", Some(&secret), Some(&head))
        .await;
    assert_eq!(unit_stream.status(), 200);
    // Both are live: an action arrives on each.
    act(
        &served,
        "li.grid1",
        &case,
        json!({"action": "dispatch", "unit": "yiwu-heart"}),
    )
    .await;
    for stream in [&mut case_stream, &mut unit_stream] {
        stream
            .until(WAIT, |e| kind(e) == "ActionTaken")
            .await
            .expect("the dispatch, live");
    }

    let (status, revoked) = served
        .json(
            "POST",
            &format!("/api/v1/tokens/{id}/revoke"),
            Some(served.token("wang.secretary")),
            Some(&json!({"reason": "lost phone"})),
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    let cutoff = served.head();
    // Written after the revoke: must reach neither stream.
    act(
        &served,
        "chen.yiwuheart",
        &case,
        json!({"action": "sign_for"}),
    )
    .await;
    assert!(served.head() > cutoff);
    ends_without_events_after(&mut case_stream, cutoff, "the case stream").await;
    ends_without_events_after(&mut unit_stream, cutoff, "the unit stream").await;
    let again = served
        .events(&format!("/api/v1/cases/{case}/events"), Some(&secret), None)
        .await;
    assert_eq!(again.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_that_reaches_the_log_another_way_ends_streams_too() {
    let served = Served::start(DemoService::start("sse-revoke-log")).await;
    let (id, secret) = issue_grid_token(&served).await;
    let head = served.head().to_string();
    let mut stream = served
        .events("/api/v1/units/grid-1/events", Some(&secret), Some(&head))
        .await;
    assert_eq!(stream.status(), 200);
    // Straight to the engine, past the service's token routes (an embedder's own code): the
    // service learns it from the log.
    let token = TokenId::parse(&id).expect("a token id");
    let engine = served.engine.clone();
    tokio::task::spawn_blocking(move || {
        engine
            .submit(
                &system(),
                Command::Access(AccessCommand::Revoke {
                    token,
                    reason: "revoked by an embedder".into(),
                }),
            )
            .expect("revoked")
    })
    .await
    .expect("the revoke ran");
    let cutoff = served.head();
    open_case(&served, "li.grid1", "grid-1", "after the revoke").await;
    ends_without_events_after(&mut stream, cutoff, "the unit stream").await;
    // The index has followed: an ordinary request with the token is refused as well.
    let (status, body) = served
        .json("GET", "/api/v1/units/grid-1/inbox", Some(&secret), None)
        .await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_in_the_log_another_way_reaches_the_token_index() {
    let served = Served::start(DemoService::start("session-ended-log")).await;
    let (id, _secret) = issue_grid_token(&served).await;
    let token = TokenId::parse(&id).expect("a token id");
    let session = SessionNonce([0x42; 16]);
    assert!(!served.state.tokens().session_ended(&token, &session));
    // Straight to the engine, past the service (another instance sharing the log, or an
    // embedder's own code): the service learns it from the log, through its follower.
    let engine = served.engine.clone();
    let ending = token.clone();
    tokio::task::spawn_blocking(move || {
        let expires_at = engine.now().saturating_add(Duration::from_secs(8 * 3600));
        engine
            .submit(
                &system(),
                Command::Access(AccessCommand::EndSession {
                    token: ending,
                    session,
                    expires_at,
                }),
            )
            .expect("ended")
    })
    .await
    .expect("the ending ran");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !served.state.tokens().session_ended(&token, &session) {
        assert!(
            std::time::Instant::now() < deadline,
            "the token index did not learn the ended session within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Only that session: the token itself still works.
    assert!(served.state.tokens().holds(&token));
    assert!(!served
        .state
        .tokens()
        .session_ended(&token, &SessionNonce([0x43; 16])));
}

/// Submits an org change as the system, off the runtime's threads.
async fn change_org(served: &Served, command: OrgCommand) {
    let engine = served.engine.clone();
    tokio::task::spawn_blocking(move || {
        engine
            .submit(&system(), Command::Org(command))
            .expect("the org change")
    })
    .await
    .expect("the change ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_when_the_org_chart_takes_the_callers_scope_away() {
    let served = Served::start(DemoService::start("sse-org")).await;
    let grid = served.token("li.grid1");
    let case = open_case(&served, "li.grid1", "grid-1", "长椅坏了").await;
    let head = served.head().to_string();
    let mut enterprise = served
        .events("/api/v1/units/yiwu-heart/events", Some(grid), Some(&head))
        .await;
    assert_eq!(enterprise.status(), 200);
    let mut own = served
        .events("/api/v1/units/grid-1/events", Some(grid), Some(&head))
        .await;
    assert_eq!(own.status(), 200);
    let mut case_stream = served
        .events(&format!("/api/v1/cases/{case}/events"), Some(grid), None)
        .await;
    assert_eq!(kind(&next(&mut case_stream).await), "CaseOpened");

    // Yiwu Heart moves to grid 2: out of grid 1's subtree. Its stream ends; grid 1's own
    // stream and the case (filed at grid 1) are still grid 1's.
    change_org(
        &served,
        OrgCommand::MoveUnit {
            id: UnitId::new("yiwu-heart").expect("id"),
            parent: UnitId::new("grid-2").expect("id"),
        },
    )
    .await;
    let cutoff = served.head();
    let later = open_case(&served, "li.grid1", "grid-1", "after the move").await;
    ends_without_events_after(&mut enterprise, cutoff, "the moved unit's stream").await;
    let (_, opened) = own
        .until(WAIT, |e| e.json()["case"] == later.as_str())
        .await
        .expect("grid 1's stream goes on");
    assert_eq!(kind(&opened), "CaseOpened");
    let refused = served
        .events("/api/v1/units/yiwu-heart/events", Some(grid), None)
        .await;
    assert_eq!(refused.status(), 404);

    // The grid worker's grant is taken away: every stream of theirs ends at once, with no
    // case event needed to notice.
    let acting = Acting::parse("li.grid1", "grid_worker", "grid-1").expect("a grant");
    change_org(
        &served,
        OrgCommand::RevokeRole {
            actor: acting.actor,
            role: acting.role,
            unit: acting.unit,
        },
    )
    .await;
    let cutoff = served.head();
    ends_without_events_after(&mut case_stream, cutoff, "the case stream").await;
    open_case(&served, "wang.secretary", "grid-1", "after the grant went").await;
    ends_without_events_after(&mut own, cutoff, "grid 1's stream").await;
}

// ---------------------------------------------------------------------------------------------
// Where a stream starts, and how much history one connection replays (issue 13)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_stream_starts_at_the_head_unless_history_is_asked_for() {
    let served = Served::start(DemoService::start("sse-head")).await;
    let admin = served.token("wang.secretary");
    let head = served.head();
    assert!(head > 10, "the demo has history: {head}");

    // No Last-Event-ID, no `since`: the first event is one that commits after connecting.
    let mut live = served
        .events("/api/v1/units/tonghui/events", Some(admin), None)
        .await;
    assert_eq!(live.status(), 200);
    let case = open_case(&served, "li.grid1", "grid-1", "长椅坏了").await;
    let first = next(&mut live).await;
    assert!(first.id_number() > head, "history was replayed: {first:?}");
    assert_eq!(first.json()["case"], case.as_str());

    // `since`: the events after that position, then live.
    let mut history = served
        .events("/api/v1/units/tonghui/events?since=0", Some(admin), None)
        .await;
    assert_eq!(history.status(), 200);
    assert!(next(&mut history).await.id_number() <= head);

    // A reconnecting EventSource sends Last-Event-ID with its first URL: the header wins.
    let mut resumed = served
        .events(
            "/api/v1/units/tonghui/events?since=0",
            Some(admin),
            Some(&first.id_number().to_string()),
        )
        .await;
    assert_eq!(resumed.status(), 200);
    let later = open_case(&served, "li.grid1", "grid-1", "井盖松动").await;
    let (skipped, hit) = resumed
        .until(WAIT, |e| e.json()["case"] == later.as_str())
        .await
        .expect("the later case");
    for event in skipped.iter().chain([&hit]) {
        assert!(event.id_number() > first.id_number(), "{event:?}");
    }

    // `since` past the head, malformed, or given twice: 400 naming it.
    let past = served.head() + 5;
    for query in [
        format!("since={past}"),
        "since=abc".to_owned(),
        "since=-1".to_owned(),
        "since=1&since=2".to_owned(),
    ] {
        let refused = served
            .events(
                &format!("/api/v1/units/tonghui/events?{query}"),
                Some(admin),
                None,
            )
            .await;
        assert_eq!(refused.status(), 400, "{query}");
        let error = refused.body_json().await;
        assert_eq!(error["error"]["field"], "since", "{query}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_further_back_than_the_window_is_refused() {
    let served = Served::start(DemoService::start_with("sse-window", |config| {
        config.stream_history_window = 10;
    }))
    .await;
    let admin = served.token("wang.secretary");
    let head = served.head();
    for (query, header, field) in [
        ("?since=0", None, "since"),
        ("", Some("0".to_owned()), "Last-Event-ID"),
    ] {
        let refused = served
            .events(
                &format!("/api/v1/units/tonghui/events{query}"),
                Some(admin),
                header.as_deref(),
            )
            .await;
        assert_eq!(refused.status(), 400, "{query} {header:?}");
        let error = refused.body_json().await;
        assert_eq!(error["error"]["field"], field, "{error}");
        let message = error["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(&(head - 10).to_string()), "{message}");
    }
    // At the window's edge: accepted (the last positions are the demo's tokens, which no
    // unit stream carries, so only the status says so).
    let stream = served
        .events(
            &format!("/api/v1/units/tonghui/events?since={}", head - 10),
            Some(admin),
            None,
        )
        .await;
    assert_eq!(stream.status(), 200);
}

/// Every event a unit stream replays from the first event to `head`, connection after
/// connection, each resumed with the id of the last event the one before sent: the events,
/// how many connections it took, and the most events one connection sent.
async fn replay_all(
    served: &Served,
    path: &str,
    token: &str,
    head: u64,
) -> (Vec<SseEvent>, usize, usize) {
    let mut all: Vec<SseEvent> = Vec::new();
    let mut connections = 0;
    let mut most = 0;
    let mut last = "0".to_owned();
    loop {
        connections += 1;
        assert!(connections < 1000, "the replay does not get anywhere");
        let mut stream = served.events(path, Some(token), Some(&last)).await;
        assert_eq!(stream.status(), 200, "after {last}");
        let mut sent = 0;
        loop {
            let event = match stream.next_within(WAIT).await {
                Ok(Some(event)) => event,
                Ok(None) => break,
                // Caught up and following live: the replay is over.
                Err(_) => return (all, connections, most),
            };
            last = event.id.clone().expect("every event has an id");
            if kind(&event) == "resume" {
                let data = event.json();
                assert_eq!(data["resume_after"].as_u64(), Some(event.id_number()));
                assert_eq!(data["history_until"].as_u64(), Some(head));
                continue;
            }
            if let Some(previous) = all.last() {
                assert!(event.id_number() > previous.id_number(), "{event:?}");
            }
            sent += 1;
            all.push(event);
        }
        most = most.max(sent);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_is_capped_per_connection_and_resumes_where_it_stopped() {
    // The same demo twice: one service replays without a cap that matters, one reads at most
    // 7 events of the log per connection.
    let whole = Served::start(DemoService::start("sse-replay-whole")).await;
    let capped = Served::start(DemoService::start_with("sse-replay-capped", |config| {
        config.stream_replay_max = 7;
    }))
    .await;
    assert_eq!(whole.head(), capped.head(), "the demo is the same");
    let head = capped.head();
    let path = "/api/v1/units/grid-1/events";
    let (expected, one, _) = replay_all(&whole, path, whole.token("li.grid1"), head).await;
    assert_eq!(one, 1, "uncapped, one connection replays it all");
    let (got, connections, most) = replay_all(&capped, path, capped.token("li.grid1"), head).await;
    assert!(most <= 7, "a connection sent {most} events");
    // The cap counts events read: the whole log, 7 at a time.
    assert!(
        connections as u64 >= head / 7,
        "{connections} connections for {head} events"
    );
    let shape = |events: &[SseEvent]| -> Vec<(u64, String)> {
        events
            .iter()
            .map(|e| (e.id_number(), kind(e).to_owned()))
            .collect()
    };
    assert!(!expected.is_empty());
    assert_eq!(
        shape(&got),
        shape(&expected),
        "capped replays lose or repeat nothing"
    );

    // The case stream replays a case's history by default, capped the same way.
    let case = capped.run.smooth_case.to_string();
    let path = format!("/api/v1/cases/{case}/events");
    let mut stream = capped
        .events(&path, Some(capped.token("wang.secretary")), None)
        .await;
    let mut ids = Vec::new();
    let resume = loop {
        let event = next(&mut stream).await;
        if kind(&event) == "resume" {
            break event;
        }
        ids.push(event.id_number());
    };
    assert_eq!(ids, (1..=7).collect::<Vec<u64>>());
    assert_eq!(resume.id_number(), 7);
    assert!(
        matches!(stream.next_within(WAIT).await, Ok(None)),
        "it ends"
    );
    let mut resumed = capped
        .events(&path, Some(capped.token("wang.secretary")), Some("7"))
        .await;
    assert_eq!(next(&mut resumed).await.id_number(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_over_its_replaying_streams_is_refused_429_and_live_streams_are_not_counted() {
    // No replay allowed at once: every request for history is over the cap.
    let served = Served::start(DemoService::start_with("sse-replays", |config| {
        config.stream_replays_per_token = 0;
    }))
    .await;
    let admin = served.token("wang.secretary");
    let refused = served
        .events("/api/v1/units/tonghui/events?since=0", Some(admin), None)
        .await;
    assert_eq!(refused.status(), 429);
    assert!(refused.head.header("retry-after").is_some());
    let error = refused.body_json().await;
    assert_eq!(error["error"]["code"], "rate_limited", "{error}");
    // Starting at the head replays nothing, so it is not counted.
    let live = served
        .events("/api/v1/units/tonghui/events", Some(admin), None)
        .await;
    assert_eq!(live.status(), 200);
}

// ---------------------------------------------------------------------------------------------
// Strict query and headers (issue 13)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_refuse_unknown_query_parameters_and_ids_past_the_newest_event() {
    let served = Served::start(DemoService::start("sse-strict")).await;
    let admin = served.token("wang.secretary");
    let case = served.run.smooth_case.to_string();
    let case_path = format!("/api/v1/cases/{case}/events");
    let unit_path = "/api/v1/units/tonghui/events".to_owned();

    // Unknown query parameters: 400 naming them, on both streams.
    for (path, param) in [
        (format!("{case_path}?since=0"), "since"),
        (format!("{case_path}?from=1"), "from"),
        (format!("{unit_path}?after=3"), "after"),
        (format!("{unit_path}?since=0&verbose=true"), "verbose"),
    ] {
        let refused = served.events(&path, Some(admin), None).await;
        assert_eq!(refused.status(), 400, "{path}");
        let error = refused.body_json().await;
        assert_eq!(error["error"]["code"], "bad_request", "{path}: {error}");
        assert_eq!(error["error"]["field"], param, "{path}: {error}");
    }

    // Past the newest event: the case's newest version, the log's head.
    let (status, history) = served
        .json(
            "GET",
            &format!("/api/v1/cases/{case}/history"),
            Some(admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{history}");
    let newest = history["events"]
        .as_array()
        .and_then(|events| events.last())
        .and_then(|event| event["version"].as_u64())
        .expect("the case's newest version");
    let head = served.head();
    for (path, past) in [(&case_path, newest + 1), (&unit_path, head + 1)] {
        let refused = served
            .events(path, Some(admin), Some(&past.to_string()))
            .await;
        assert_eq!(refused.status(), 400, "{path} {past}");
        let error = refused.body_json().await;
        assert_eq!(error["error"]["field"], "Last-Event-ID", "{error}");
        let message = error["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains("past"), "{message}");
    }
    // The newest itself is fine: the stream follows from there.
    for (path, id) in [(&case_path, newest), (&unit_path, head)] {
        let stream = served
            .events(path, Some(admin), Some(&id.to_string()))
            .await;
        assert_eq!(stream.status(), 200, "{path} {id}");
    }

    // Sent twice: 400, whichever stream.
    for path in [&case_path, &unit_path] {
        let headers = vec![
            ("Authorization".to_owned(), format!("Bearer {admin}")),
            ("Last-Event-ID".to_owned(), "1".to_owned()),
            ("Last-Event-ID".to_owned(), "2".to_owned()),
        ];
        let refused = open_events(served.addr, path, &headers)
            .await
            .expect("an answer");
        assert_eq!(refused.status(), 400, "{path}");
        let error = refused.body_json().await;
        assert_eq!(error["error"]["field"], "Last-Event-ID", "{error}");
    }
}
