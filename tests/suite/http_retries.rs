//! `Idempotency-Key` on the native API's writes (issue 13; docs/service.md, "Retries"): a
//! retry with the same key and the same request answers exactly the first answer (status and
//! body) and writes nothing; the same key with another request is 422
//! `idempotency_key_reused`; a malformed key, two keys, or a key on the token issuing route is
//! a 400 naming the header. Through a real socket.

use crate::common::service::DemoService;
use crate::common::socket::{request, Served};
use serde_json::{json, Value};

/// `(status, JSON body)` of a POST with each of `keys` as an `Idempotency-Key` header.
async fn post_keys(
    served: &Served,
    token: &str,
    path: &str,
    keys: &[&str],
    body: &Value,
) -> (u16, Value) {
    let mut headers = vec![("Authorization".to_owned(), format!("Bearer {token}"))];
    for key in keys {
        headers.push(("Idempotency-Key".to_owned(), (*key).to_owned()));
    }
    let text = body.to_string();
    let response = request(
        served.addr,
        "POST",
        path,
        &headers,
        Some(("application/json", text.as_bytes())),
    )
    .await
    .expect("a response");
    let body = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response.status, body)
}

/// `(status, JSON body)` of a POST with an `Idempotency-Key` when given.
async fn post(
    served: &Served,
    token: &str,
    path: &str,
    key: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    post_keys(served, token, path, key.as_slice(), body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_write_answers_its_first_answer_and_another_request_is_refused() {
    let served = Served::start(DemoService::start("http-retries")).await;
    let grid = served.token("li.grid1").to_owned();
    let admin = served.token("wang.secretary").to_owned();

    // An opening with the header; the same again; then the body's older spelling agrees.
    let open = json!({
        "workflow": "service-request",
        "unit_id": "grid-1",
        "title": "重试: 路灯不亮",
        "fields": {"category": "public_facilities"},
    });
    let first = post(
        &served,
        &grid,
        "/api/v1/cases",
        Some("tablet-7/0001"),
        &open,
    )
    .await;
    assert_eq!(first.0, 201, "{}", first.1);
    let before = served.head();
    let again = post(
        &served,
        &grid,
        "/api/v1/cases",
        Some("tablet-7/0001"),
        &open,
    )
    .await;
    assert_eq!(again, first, "a retry answers the first answer");
    assert_eq!(served.head(), before, "a retry wrote");
    let mut aliased = open.clone();
    aliased["idempotency_key"] = json!("tablet-7/0001");
    let alias = post(&served, &grid, "/api/v1/cases", None, &aliased).await;
    assert_eq!(alias, first, "the body's idempotency_key is the same key");
    let both = post(
        &served,
        &grid,
        "/api/v1/cases",
        Some("tablet-7/0002"),
        &aliased,
    )
    .await;
    assert_eq!(both.0, 400, "{}", both.1);
    assert_eq!(both.1["error"]["field"], "idempotency_key", "{}", both.1);
    let case = first.1["id"].as_str().expect("an id").to_owned();

    // An action: retried once, then the same key for another action.
    let actions = format!("/api/v1/cases/{case}/actions");
    let dispatch = json!({"action": "dispatch", "unit": "yiwu-heart"});
    let first = post(&served, &grid, &actions, Some("act-1"), &dispatch).await;
    assert_eq!(first.0, 200, "{}", first.1);
    let before = served.head();
    let again = post(&served, &grid, &actions, Some("act-1"), &dispatch).await;
    assert_eq!(again, first, "a retried action answers the first answer");
    assert_eq!(served.head(), before, "a retried action wrote");
    let urge = json!({"action": "urge_sign_for", "note": "请尽快签收"});
    let reused = post(&served, &grid, &actions, Some("act-1"), &urge).await;
    assert_eq!(reused.0, 422, "{}", reused.1);
    assert_eq!(
        reused.1["error"]["code"], "idempotency_key_reused",
        "{}",
        reused.1
    );
    assert_eq!(
        reused.1["error"]["field"], "Idempotency-Key",
        "{}",
        reused.1
    );
    assert_eq!(served.head(), before, "a refused reuse wrote");
    // Without a key the urging is a new request, and it goes through.
    let urged = post(&served, &grid, &actions, None, &urge).await;
    assert_eq!(urged.0, 200, "{}", urged.1);

    // A directive: issued once.
    let directive =
        json!({"title": "重试: 消防检查", "kind": "staff_training", "within": "2 working days"});
    let first = post(
        &served,
        &grid,
        "/api/v1/directives",
        Some("dir-1"),
        &directive,
    )
    .await;
    assert_eq!(first.0, 201, "{}", first.1);
    let before = served.head();
    let again = post(
        &served,
        &grid,
        "/api/v1/directives",
        Some("dir-1"),
        &directive,
    )
    .await;
    assert_eq!(again, first, "a retried directive answers the first answer");
    assert_eq!(served.head(), before, "a retried directive wrote");

    // Keys are the actor's: the administrator's dir-1 is another key.
    let theirs = post(
        &served,
        &admin,
        "/api/v1/directives",
        Some("dir-1"),
        &directive,
    )
    .await;
    assert_eq!(theirs.0, 201, "{}", theirs.1);
    assert_ne!(
        theirs.1["id"], first.1["id"],
        "another actor's key is another key"
    );

    // Malformed keys and two keys are 400 naming the header; nothing is written.
    let before = served.head();
    for bad in ["", "has space", &"k".repeat(129), "钥匙"] {
        let answer = post(&served, &grid, &actions, Some(bad), &urge).await;
        assert_eq!(answer.0, 400, "{bad:?}: {}", answer.1);
        assert_eq!(
            answer.1["error"]["field"], "Idempotency-Key",
            "{bad:?}: {}",
            answer.1
        );
    }
    let two = post_keys(&served, &grid, &actions, &["a", "b"], &urge).await;
    assert_eq!(two.0, 400, "two keys: {}", two.1);
    assert_eq!(served.head(), before, "a refused key wrote");

    // Issuing a token takes no key: its secret could not be answered again.
    let issue =
        json!({"actor": "sun.grid3", "role": "grid_worker", "unit_id": "grid-3", "name": "重试"});
    let refused = post(&served, &admin, "/api/v1/tokens", Some("tok-1"), &issue).await;
    assert_eq!(refused.0, 400, "{}", refused.1);
    assert_eq!(
        refused.1["error"]["field"], "Idempotency-Key",
        "{}",
        refused.1
    );
    assert_eq!(served.head(), before, "a refused issue wrote");
}
