//! `POST /api/v1/persons/{id}/erase` on the demo service: a resident files a request with
//! their contact details, the community's administrator erases them on request, and every
//! read of the case shows the requester as erased; erasing again changes nothing. Who may
//! erase whom is the domain's rule (an administrator, for the people registered at their
//! unit or below it), checked here with a second community and its own administrator; bad
//! input names the field and writes nothing.

use axum::http::{Method, StatusCode};
use civicflow::core::domain::org::{Acting, ActorKind, OrgCommand, Tier};
use civicflow::core::engine::Command;
use civicflow::core::{ActorId, Role, UnitId};
use serde_json::{json, Value};

use crate::common::service::DemoService;

const NAME: &str = "ERASE-ME-Zhang";
const PHONE: &str = "13800002468";
const EMAIL: &str = "erase-me@example.org";

/// The log's head position (0: empty).
fn head(demo: &DemoService) -> u64 {
    demo.service
        .engine()
        .log()
        .head()
        .map_or(0, |h| h.position.get())
}

/// Opens a service request at `unit` as `token`'s caller, with the test's requester; the
/// case's id.
async fn file_with_requester(demo: &DemoService, token: &str, unit: &str) -> String {
    let (status, created) = demo
        .call(
            Method::POST,
            "/api/v1/cases",
            Some(token),
            Some(json!({
                "workflow": "service-request",
                "unit_id": unit,
                "title": "楼道灯坏了 the stairwell light is broken",
                "fields": {"category": "public_facilities"},
                "requester": {"name": NAME, "phone": PHONE, "email": EMAIL},
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_str().expect("an id").to_owned()
}

/// The case as `token`'s caller reads it.
async fn read_case(demo: &DemoService, token: &str, case: &str) -> Value {
    let (status, body) = demo
        .call(
            Method::GET,
            &format!("/api/v1/cases/{case}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// `POST /api/v1/persons/{person}/erase` with `body` as `token`'s caller.
async fn erase(demo: &DemoService, token: &str, person: &str, body: Value) -> (StatusCode, Value) {
    demo.call(
        Method::POST,
        &format!("/api/v1/persons/{person}/erase"),
        Some(token),
        Some(body),
    )
    .await
}

/// A second community, `lotus`, with a grid and its own administrator `lin.admin`; the
/// administrator's token.
fn second_community(demo: &DemoService) -> String {
    let engine = demo.service.engine();
    let lotus = UnitId::new("lotus").expect("valid");
    let system = Acting::system(lotus.clone());
    let admin = ActorId::new("lin.admin").expect("valid");
    for command in [
        OrgCommand::CreateUnit {
            id: lotus.clone(),
            name: "荷花社区 Lotus".into(),
            tier: Tier::Community,
            parent: None,
        },
        OrgCommand::CreateUnit {
            id: UnitId::new("lotus-grid-1").expect("valid"),
            name: "荷花第一网格".into(),
            tier: Tier::Grid,
            parent: Some(lotus.clone()),
        },
        OrgCommand::RegisterActor {
            id: admin.clone(),
            name: "林主任".into(),
            kind: ActorKind::Person,
        },
        OrgCommand::GrantRole {
            actor: admin.clone(),
            role: Role::new("community_admin").expect("valid"),
            unit: lotus.clone(),
        },
    ] {
        engine
            .submit(&system, Command::Org(command))
            .expect("the second community");
    }
    let acting = Acting::new(admin, Role::new("community_admin").expect("valid"), lotus);
    let (_, secret) = demo
        .service
        .issue_token(&system, acting, "http_persons: Lotus's administrator")
        .expect("a token");
    secret.expose().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_erases_a_resident_on_request_and_their_cases_read_erased() {
    let demo = DemoService::start("http-persons-erase");
    let resident = demo.token("tang.resident").to_owned();
    let admin = demo.token("wang.secretary").to_owned();
    let grid = demo.token("li.grid1").to_owned();
    let case = file_with_requester(&demo, &resident, "grid-1").await;

    // Every read of the case shows the requester masked, with the person's id: what the
    // administrator erases them by.
    let before = read_case(&demo, &admin, &case).await;
    let requester = &before["requester"];
    let person = requester["person_id"]
        .as_str()
        .expect("a person id")
        .to_owned();
    assert!(
        requester["phone"].as_str().expect("a phone").contains('*'),
        "{requester}"
    );
    for token in [&resident, &grid] {
        assert_eq!(
            read_case(&demo, token, &case).await["requester"]["person_id"],
            person
        );
    }
    assert_eq!(
        demo.service
            .engine()
            .find_people_by_phone(PHONE)
            .expect("search")
            .len(),
        1
    );

    // Erased: one event, and the answer says who, where registered, when and why.
    let written = head(&demo);
    let reason = "个人信息保护法第四十七条 deletion request, letter of 2026-05-02";
    let (status, erased) = erase(&demo, &admin, &person, json!({"reason": reason})).await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert_eq!(head(&demo), written + 1, "one PersonErased");
    assert_eq!(erased["person_id"], person);
    assert_eq!(erased["erased"], true);
    assert_eq!(
        erased["unit_id"], "grid-1",
        "registered where the case was filed"
    );
    assert_eq!(erased["reason"], reason);
    let erased_at = erased["erased_at"].as_str().expect("a time").to_owned();
    assert!(
        erased_at.ends_with("+08:00"),
        "in the calendar's zone: {erased_at}"
    );

    // Every read of the case now says erased, for everyone who sees it, and nothing else.
    for token in [&admin, &resident, &grid] {
        assert_eq!(
            read_case(&demo, token, &case).await["requester"],
            json!({"erased": true, "person_id": person})
        );
    }
    let (status, contact) = demo
        .call(
            Method::POST,
            &format!("/api/v1/cases/{case}/contact"),
            Some(&admin),
            Some(json!({"purpose": "call back"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{contact}");
    assert_eq!(contact, json!({"case": case, "erased": true}));
    assert!(demo
        .service
        .engine()
        .find_people_by_phone(PHONE)
        .expect("search")
        .is_empty());
    let (status, history) = demo
        .call(
            Method::GET,
            &format!("/api/v1/cases/{case}/history"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for plaintext in [NAME, PHONE, EMAIL] {
        assert!(!history.to_string().contains(plaintext), "{history}");
    }

    // Again, with another reason: the erasure in force, nothing written.
    let written = head(&demo);
    let (status, again) = erase(&demo, &admin, &person, json!({"reason": "asked twice"})).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, erased);
    assert_eq!(head(&demo), written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_is_for_the_administrators_over_the_person_and_bad_input_writes_nothing() {
    let demo = DemoService::start("http-persons-refused");
    let resident = demo.token("tang.resident").to_owned();
    let admin = demo.token("wang.secretary").to_owned();
    let case = file_with_requester(&demo, &resident, "grid-1").await;
    let ours = read_case(&demo, &admin, &case).await["requester"]["person_id"]
        .as_str()
        .expect("a person id")
        .to_owned();
    // A second community, where the resident (who may file anywhere) files too: that
    // person is registered there, outside Tonghui.
    let lotus_admin = second_community(&demo);
    let theirs_case = file_with_requester(&demo, &resident, "lotus-grid-1").await;
    let theirs = read_case(&demo, &lotus_admin, &theirs_case).await["requester"]["person_id"]
        .as_str()
        .expect("a person id")
        .to_owned();
    let reason = json!({"reason": "PIPL art. 47"});
    let unknown = "0196a000-0000-7000-8000-000000000000";

    let written = head(&demo);
    let refusals: Vec<(&str, &str, Value, StatusCode, Option<&str>)> = vec![
        // Roles the policy leaves out.
        (
            demo.token("li.grid1"),
            &ours,
            reason.clone(),
            StatusCode::FORBIDDEN,
            None,
        ),
        (
            &resident,
            &ours,
            reason.clone(),
            StatusCode::FORBIDDEN,
            None,
        ),
        (
            demo.token("audit.office"),
            &ours,
            reason.clone(),
            StatusCode::FORBIDDEN,
            None,
        ),
        // Another community's person, and ours for theirs: as if they did not exist.
        (
            &admin,
            &theirs,
            reason.clone(),
            StatusCode::NOT_FOUND,
            Some("id"),
        ),
        (
            &lotus_admin,
            &ours,
            reason.clone(),
            StatusCode::NOT_FOUND,
            Some("id"),
        ),
        // Nobody, and not an id.
        (
            &admin,
            unknown,
            reason.clone(),
            StatusCode::NOT_FOUND,
            Some("id"),
        ),
        (
            &admin,
            "not-a-person",
            reason.clone(),
            StatusCode::BAD_REQUEST,
            Some("id"),
        ),
        // No reason, an empty or blank one, one too long, one with a control character,
        // and a field the body does not have.
        (
            &admin,
            &ours,
            json!({}),
            StatusCode::BAD_REQUEST,
            Some("reason"),
        ),
        (
            &admin,
            &ours,
            json!({"reason": ""}),
            StatusCode::BAD_REQUEST,
            Some("reason"),
        ),
        (
            &admin,
            &ours,
            json!({"reason": " \t "}),
            StatusCode::BAD_REQUEST,
            Some("reason"),
        ),
        (
            &admin,
            &ours,
            json!({"reason": "x".repeat(1001)}),
            StatusCode::BAD_REQUEST,
            Some("reason"),
        ),
        (
            &admin,
            &ours,
            json!({"reason": "PIPL\u{1b}[2J"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("reason"),
        ),
        (
            &admin,
            &ours,
            json!({"reason": "PIPL", "person": "x"}),
            StatusCode::BAD_REQUEST,
            None,
        ),
    ];
    for (token, person, body, status, field) in refusals {
        let (got, answer) = erase(&demo, token, person, body.clone()).await;
        assert_eq!(got, status, "{person} {body}: {answer}");
        if let Some(field) = field {
            assert_eq!(answer["error"]["field"], field, "{person} {body}: {answer}");
        }
        assert_eq!(head(&demo), written, "{person} {body} wrote");
    }
    // Nobody was erased.
    for (token, case) in [(&admin, &case), (&lotus_admin, &theirs_case)] {
        assert!(
            read_case(&demo, token, case).await["requester"]["phone"].is_string(),
            "{case}"
        );
    }

    // Each community's administrator erases their own.
    let (status, answer) = erase(&demo, &lotus_admin, &theirs, reason.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["unit_id"], "lotus-grid-1");
    let (status, answer) = erase(&demo, &admin, &ours, reason).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["unit_id"], "grid-1");
}

/// An `Idempotency-Key` makes a retry answer the first answer, as on every native write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_erasure_answers_the_first_answer() {
    let demo = DemoService::start("http-persons-retry");
    let resident = demo.token("tang.resident").to_owned();
    let admin = demo.token("wang.secretary").to_owned();
    let case = file_with_requester(&demo, &resident, "grid-1").await;
    let person = read_case(&demo, &admin, &case).await["requester"]["person_id"]
        .as_str()
        .expect("a person id")
        .to_owned();
    let path = format!("/api/v1/persons/{person}/erase");
    let body = json!({"reason": "PIPL art. 47"}).to_string();
    let auth = format!("Bearer {admin}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("idempotency-key", "erase-once-1"),
    ];
    let (status, _, first) = demo
        .call_bytes(Method::POST, &path, &headers, body.clone().into_bytes())
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&first)
    );
    let written = head(&demo);
    let (status, _, again) = demo
        .call_bytes(Method::POST, &path, &headers, body.into_bytes())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, first);
    assert_eq!(head(&demo), written);
    // The same key for another request is refused.
    let (status, _, other) = demo
        .call_bytes(
            Method::POST,
            &path,
            &headers,
            json!({"reason": "another"}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let other: Value = serde_json::from_slice(&other).expect("JSON");
    assert_eq!(other["error"]["code"], "idempotency_key_reused", "{other}");
}
