//! Every unit and case a command names is checked against the caller's scope, not only the
//! case it acts on (issue 13; the rules are in docs/engine.md, "The org chart").
//!
//! Each test replays a probe that got through before: a grid worker merging into a case it
//! cannot see, a shop owner filing at a sibling shop and at another grid, a grid worker
//! dispatching to another grid, an enterprise's liaison bringing in another enterprise's shop.
//! A refused command writes nothing (the log's head does not move), and a hidden case is
//! refused with exactly the answer of a missing one.

use crate::common::service::DemoService;
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

/// A well-formed case id that names nothing.
const NO_SUCH_ID: &str = "0192f3a0-0000-7000-8000-00000000dead";

fn head(demo: &DemoService) -> Option<u64> {
    demo.service.engine().log().head().map(|h| h.position.get())
}

async fn open(demo: &DemoService, actor: &str, unit: &str) -> (StatusCode, Value) {
    demo.call(
        Method::POST,
        "/api/v1/cases",
        Some(demo.token(actor)),
        Some(json!({
            "workflow": "service-request",
            "unit_id": unit,
            "title": "scope probe: 垃圾未清运",
            "fields": {"category": "environment"},
        })),
    )
    .await
}

async fn opened(demo: &DemoService, actor: &str, unit: &str) -> String {
    let (status, body) = open(demo, actor, unit).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{actor} opens at {unit}: {body}"
    );
    body["id"].as_str().expect("an id").to_owned()
}

async fn act(demo: &DemoService, actor: &str, case: &str, body: Value) -> (StatusCode, Value) {
    demo.call(
        Method::POST,
        &format!("/api/v1/cases/{case}/actions"),
        Some(demo.token(actor)),
        Some(body),
    )
    .await
}

async fn acted(demo: &DemoService, actor: &str, case: &str, body: Value) {
    let (status, answer) = act(demo, actor, case, body.clone()).await;
    assert!(
        status.is_success(),
        "{actor} {body} on {case}: {status} {answer}"
    );
}

/// The event types of a case's history, as the system sees it.
fn history(demo: &DemoService, case: &str) -> Vec<String> {
    let id = civicflow::core::CaseId::parse(case).expect("a case id");
    let log = demo.service.engine().log();
    log.read_stream(&id.stream(), civicflow::core::Version::FIRST, 1000)
        .expect("the case's stream")
        .into_iter()
        .map(|e| e.event_type.to_string())
        .collect()
}

/// A refusal that must not write: `(status, error code, field)` and the head unchanged.
async fn refused(
    demo: &DemoService,
    what: &str,
    call: impl std::future::Future<Output = (StatusCode, Value)>,
) -> Value {
    let before = head(demo);
    let (status, body) = call.await;
    assert!(
        status.is_client_error(),
        "{what}: expected a refusal, got {status} {body}"
    );
    assert_eq!(head(demo), before, "{what}: a refused command wrote");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_into_a_hidden_case_is_refused_exactly_like_one_into_a_missing_case() {
    let demo = DemoService::start("scope-merge");
    // A resident's request filed at the community: grid 1's worker cannot see it.
    let hidden_open = opened(&demo, "tang.resident", "tonghui").await;
    // One the resident withdrew: closed, and hidden from grid 1 too.
    let hidden_closed = opened(&demo, "tang.resident", "tonghui").await;
    acted(
        &demo,
        "tang.resident",
        &hidden_closed,
        json!({"action": "withdraw"}),
    )
    .await;
    let (status, _) = demo
        .call(
            Method::GET,
            &format!("/api/v1/cases/{hidden_open}"),
            Some(demo.token("li.grid1")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the grid cannot read it");

    let own = opened(&demo, "li.grid1", "grid-1").await;
    let mut answers = Vec::new();
    for target in [hidden_open.as_str(), hidden_closed.as_str(), NO_SUCH_ID] {
        let body = refused(
            &demo,
            &format!("merge into {target}"),
            act(
                &demo,
                "li.grid1",
                &own,
                json!({"action": "merge", "into": target}),
            ),
        )
        .await;
        // The same answer whatever the target is, once its id is taken out.
        let shown = body.to_string().replace(target, "<target>");
        answers.push(shown);
    }
    assert_eq!(answers[0], answers[2], "hidden open vs missing");
    assert_eq!(answers[1], answers[2], "hidden closed vs missing");
    let body: Value = serde_json::from_str(&answers[2]).expect("JSON");
    assert_eq!(body["error"]["field"], "into", "{body}");
    assert_eq!(body["error"]["code"], "unprocessable", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("case <target> does not exist")),
        "{body}"
    );
    assert!(
        !history(&demo, &hidden_open).contains(&"DuplicateMerged".to_owned()),
        "the resident's case records no merge"
    );

    // Into a case the grid can see: the merge goes through, both halves in the log.
    let visible = opened(&demo, "li.grid1", "grid-1").await;
    acted(
        &demo,
        "li.grid1",
        &own,
        json!({"action": "merge", "into": visible}),
    )
    .await;
    assert!(history(&demo, &own).contains(&"MergedInto".to_owned()));
    assert!(history(&demo, &visible).contains(&"DuplicateMerged".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_files_at_itself_below_or_above_it_and_persons_anywhere() {
    let demo = DemoService::start("scope-open");
    // zheng.tea owns shop-yh-101 (Yiwu Heart, grid 1).
    for unit in ["shop-yh-215", "shop-it-108", "grid-2", "market-regulation"] {
        let body = refused(
            &demo,
            &format!("a shop owner files at {unit}"),
            open(&demo, "zheng.tea", unit),
        )
        .await;
        assert_eq!(body["error"]["code"], "forbidden", "{unit}: {body}");
        assert_eq!(body["error"]["field"], "unit", "{unit}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("never at a sibling or a cousin")),
            "{unit}: {body}"
        );
    }
    for unit in ["shop-yh-101", "yiwu-heart", "grid-1", "tonghui"] {
        opened(&demo, "zheng.tea", unit).await;
    }
    // A grid worker files in its grid and upwards, not at another grid's units.
    opened(&demo, "li.grid1", "shop-yh-215").await;
    refused(
        &demo,
        "grid 1 files at grid 2",
        open(&demo, "li.grid1", "grid-2"),
    )
    .await;
    // Residents and civic apps address any unit.
    for unit in ["shop-it-108", "market-regulation", "grid-3"] {
        opened(&demo, "tang.resident", unit).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_and_co_handling_stay_in_the_subtree_unless_the_step_crosses_the_tree() {
    let demo = DemoService::start("scope-handover");
    let case = opened(&demo, "li.grid1", "grid-1").await;
    let body = refused(
        &demo,
        "grid 1 dispatches to grid 2",
        act(
            &demo,
            "li.grid1",
            &case,
            json!({"action": "dispatch", "unit": "grid-2"}),
        ),
    )
    .await;
    assert_eq!(body["error"]["code"], "forbidden", "{body}");
    assert_eq!(body["error"]["field"], "unit", "{body}");
    refused(
        &demo,
        "grid 1 dispatches to a shop of grid 2",
        act(
            &demo,
            "li.grid1",
            &case,
            json!({"action": "dispatch", "unit": "shop-it-108"}),
        ),
    )
    .await;
    // Down its own subtree: to Yiwu Heart, whose liaison signs for it.
    acted(
        &demo,
        "li.grid1",
        &case,
        json!({"action": "dispatch", "unit": "yiwu-heart"}),
    )
    .await;
    acted(
        &demo,
        "chen.yiwuheart",
        &case,
        json!({"action": "sign_for"}),
    )
    .await;
    // The liaison brings in a shop of its own enterprise, not one of Intime's.
    let body = refused(
        &demo,
        "Yiwu Heart brings in an Intime shop",
        act(
            &demo,
            "chen.yiwuheart",
            &case,
            json!({"action": "add_co_handler", "unit": "shop-it-108"}),
        ),
    )
    .await;
    assert_eq!(body["error"]["field"], "unit", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("out of reach of unit yiwu-heart")),
        "{body}"
    );
    acted(
        &demo,
        "chen.yiwuheart",
        &case,
        json!({"action": "add_co_handler", "unit": "shop-yh-215"}),
    )
    .await;
    // Co-handling reaches outside the chain by design (the workflow's `reach`): a department
    // of the community.
    acted(
        &demo,
        "chen.yiwuheart",
        &case,
        json!({"action": "add_co_handler", "unit": "market-regulation"}),
    )
    .await;
    assert_eq!(
        history(&demo, &case)
            .iter()
            .filter(|t| *t == "CoHandlerAdded")
            .count(),
        2
    );
}
