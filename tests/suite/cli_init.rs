//! `civicflow init` with the real binary: a new store founded for a community of one's own
//! (its unit, a first administrator, their token), served by `civicflow serve` without the
//! demo, where the printed token works; and refused, changing nothing, on a store that holds
//! any event or for input the domain refuses.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::cli::{civicflow, demo_store, path};
use crate::common::serve::{Launch, ServeProcess};
use crate::common::socket;
use crate::common::TempDir;

/// `civicflow head --data DIR`'s line: the log's head, to compare before and after.
fn head(data: &Path) -> String {
    let (code, out, err) = civicflow(&["head", "--data", path(data)]);
    assert_eq!(code, 0, "{err}");
    out
}

/// `civicflow init` on `data` with `extra` arguments: exit code, stdout, stderr.
fn init(data: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["init", "--data", path(data)];
    args.extend_from_slice(extra);
    civicflow(&args)
}

/// The one JSON object `init` prints, checked for its four fields and nothing else.
fn founded(stdout: &str) -> Value {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line on stdout: {stdout:?}");
    let value: Value = serde_json::from_str(lines[0]).expect("a JSON object");
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["actor", "role", "token", "unit_id"], "{value}");
    value
}

/// A JSON call to the real server with a bearer token: status and body.
async fn call(
    server: &ServeProcess,
    method: &str,
    route: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut headers = vec![("Authorization".to_owned(), format!("Bearer {token}"))];
    let text = body.map(Value::to_string);
    if text.is_some() {
        headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
    }
    let response = socket::request(
        server.addr(),
        method,
        route,
        &headers,
        text.as_deref().map(|t| ("application/json", t.as_bytes())),
    )
    .await
    .expect("a response");
    let value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response.status, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_founds_a_store_that_serve_runs_and_its_token_works() {
    let scratch = TempDir::new("init-serve");
    let data = scratch.path().join("lotus");
    let (code, stdout, stderr) = init(
        &data,
        &[
            "--community",
            "lotus-street",
            "--name",
            "荷花街社区 Lotus Street",
            "--admin",
            "chen.admin",
            "--admin-name",
            "陈主任",
            "--time-zone",
            "Europe/Berlin",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let founded = founded(&stdout);
    assert_eq!(founded["actor"], "chen.admin");
    assert_eq!(founded["role"], "community_admin");
    assert_eq!(founded["unit_id"], "lotus-street");
    let token = founded["token"].as_str().expect("a token").to_owned();
    assert!(
        token.starts_with("cft_") && token.len() == 68,
        "a token: {token}"
    );
    assert!(
        !stderr.contains(&token),
        "the secret goes to stdout only: {stderr}"
    );
    assert!(
        data.join("master.key").exists(),
        "init made the vault's master key"
    );
    // The zone, the unit, the actor, the grant and the token: five events.
    let founded_head = head(&data);
    assert!(founded_head.starts_with("5 "), "{founded_head}");

    // `serve` without --demo runs the store; the printed token is the administrator's.
    let mut server = ServeProcess::start(&data, Launch::default());
    server.wait_ready(Duration::from_secs(60)).await;

    // A tool refuses the store while it is served, and init says so too.
    let (code, _, err) = init(&data, &["--community", "other", "--name", "Other"]);
    assert_eq!(code, 2);
    assert!(err.contains("in use"), "{err}");

    let (status, units) = call(&server, "GET", "/api/v1/units", &token, None).await;
    assert_eq!(status, 200, "{units}");
    assert_eq!(
        units,
        json!({"units": [{
            "id": "lotus-street",
            "name": "荷花街社区 Lotus Street",
            "tier": "community",
            "parent": null,
            "retired": false,
            "in_chain": true,
        }]})
    );
    let (status, tokens) = call(&server, "GET", "/api/v1/tokens", &token, None).await;
    assert_eq!(status, 200, "{tokens}");
    let listed = tokens["tokens"].as_array().expect("tokens");
    assert_eq!(listed.len(), 1, "{tokens}");
    assert_eq!(listed[0]["actor"], "chen.admin");
    assert_eq!(listed[0]["role"], "community_admin");
    assert_eq!(listed[0]["unit_id"], "lotus-street");
    let (status, calendar) = call(&server, "GET", "/api/v1/calendar", &token, None).await;
    assert_eq!(status, 200, "{calendar}");
    assert_eq!(calendar["zone"], "Europe/Berlin");
    for route in ["/api/v1/cases", "/api/v1/workflows", "/api/v1/directives"] {
        let (status, body) = call(&server, "GET", route, &token, None).await;
        assert_eq!(status, 200, "{route}: {body}");
    }
    // The built-in workflows work on the new chart: the administrator files a request at
    // the community and reads it back.
    let (status, opened) = call(
        &server,
        "POST",
        "/api/v1/cases",
        &token,
        Some(&json!({
            "workflow": "service-request",
            "unit_id": "lotus-street",
            "title": "路灯不亮 a street light is out",
            "fields": {"category": "public_facilities"},
        })),
    )
    .await;
    assert_eq!(status, 201, "{opened}");
    let case = opened["id"].as_str().expect("an id");
    let (status, read) = call(
        &server,
        "GET",
        &format!("/api/v1/cases/{case}"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["unit_id"], "lotus-street");
    // Without the token, nothing.
    let nobody = format!("cft_{}", "0".repeat(64));
    let (status, _) = call(&server, "GET", "/api/v1/units", &nobody, None).await;
    assert_eq!(status, 401);

    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
    // A second init still refuses the (now busier) store, and changes nothing.
    let before = head(&data);
    let (code, stdout, err) = init(&data, &["--community", "lotus-street", "--name", "Lotus"]);
    assert_eq!(code, 2, "{stdout}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(err.contains("is not empty"), "{err}");
    assert_eq!(head(&data), before);
}

#[test]
fn init_twice_refuses_the_second_time_and_changes_nothing() {
    let scratch = TempDir::new("init-twice");
    let data = scratch.path().join("store");
    let (code, stdout, err) = init(&data, &["--community", "tonghui", "--name", "通惠社区"]);
    assert_eq!(code, 0, "{err}");
    let first = founded(&stdout);
    // The defaults: the administrator `admin`, no zone recorded (four events).
    assert_eq!(first["actor"], "admin");
    let before = head(&data);
    assert!(before.starts_with("4 "), "{before}");
    let key = std::fs::read(data.join("master.key")).expect("the master key");

    for again in [
        vec!["--community", "tonghui", "--name", "通惠社区"],
        vec![
            "--community",
            "another",
            "--name",
            "Another",
            "--admin",
            "someone",
        ],
        vec![
            "--community",
            "tonghui",
            "--name",
            "通惠社区",
            "--time-zone",
            "Europe/Berlin",
        ],
    ] {
        let (code, stdout, err) = init(&data, &again);
        assert_eq!(code, 2, "{again:?}: {stdout}");
        assert!(stdout.is_empty(), "{again:?}: no token printed: {stdout}");
        assert!(
            err.contains("is not empty") && err.contains("changed nothing"),
            "{again:?}: {err}"
        );
        assert_eq!(head(&data), before, "{again:?}");
    }
    assert_eq!(
        std::fs::read(data.join("master.key")).expect("the master key"),
        key
    );

    // The demo's store is no new store either.
    let demo = TempDir::new("init-demo");
    demo_store(demo.path());
    let before = head(demo.path());
    let (code, _, err) = init(demo.path(), &["--community", "x", "--name", "X"]);
    assert_eq!(code, 2);
    assert!(err.contains("is not empty"), "{err}");
    assert_eq!(head(demo.path()), before);
}

#[test]
fn init_refuses_what_the_domain_refuses_before_it_writes_anything() {
    let scratch = TempDir::new("init-refused");
    let data = scratch.path().join("store");
    let overlong = "荷".repeat(201);
    for (args, names) in [
        // Not an id at all.
        (
            vec!["--community", "", "--name", "Lotus"],
            vec!["--community"],
        ),
        // An id, but not a unit's slug.
        (
            vec!["--community", "Lotus Street", "--name", "Lotus"],
            vec!["--community"],
        ),
        // A blank name, a name with a control character, an overlong one.
        (
            vec!["--community", "lotus", "--name", "   "],
            vec!["--name", "name"],
        ),
        (
            vec!["--community", "lotus", "--name", "Lotus\u{1b}[31m"],
            vec!["--name", "U+001B"],
        ),
        (
            vec!["--community", "lotus", "--name", overlong.as_str()],
            vec!["--name", "200"],
        ),
        (
            vec![
                "--community",
                "lotus",
                "--name",
                "Lotus",
                "--admin-name",
                "\u{202e}evil",
            ],
            vec!["--admin-name", "U+202E"],
        ),
        (
            vec!["--community", "lotus", "--name", "Lotus", "--admin", ""],
            vec!["--admin"],
        ),
    ] {
        let (code, stdout, err) = init(&data, &args);
        assert_eq!(code, 2, "{args:?}: {stdout}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        for name in names {
            assert!(err.contains(name), "{args:?}: {name} not named in {err}");
        }
        // Nothing: not even the directory or the master key.
        assert!(!data.exists(), "{args:?} left {}", data.display());
    }
    // An unknown zone is clap's to refuse.
    let (code, _, err) = init(
        &data,
        &[
            "--community",
            "lotus",
            "--name",
            "Lotus",
            "--time-zone",
            "Mars/Olympus",
        ],
    );
    assert_eq!(code, 2);
    assert!(err.contains("Mars/Olympus"), "{err}");
    assert!(!data.exists());

    // The same directory then takes a good founding.
    let (code, stdout, err) = init(&data, &["--community", "lotus", "--name", "Lotus"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(founded(&stdout)["unit_id"], "lotus");
}
