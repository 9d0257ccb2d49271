//! The dashboard's administration pages (issue 16, item 7) on the demo, in-process: each page
//! is for community administrators exactly as its API twin's writes; every form reaches the
//! engine (checked through the API afterwards); a refusal is the page again with the API's
//! status and its message beside the field it names; an issued token's secret is shown once
//! and works; revoking a token through its page ends its sessions at once; a form posted with
//! the session cookie needs the page's CSRF token.

use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use crate::common::pages::{form, head};
use crate::common::service::DemoService;

const ADMIN: &str = "wang.secretary";

/// Every page of the administration.
const PAGES: &[&str] = &[
    "/admin",
    "/admin/units",
    "/admin/actors",
    "/admin/roles",
    "/admin/tokens",
    "/admin/workflows",
    "/admin/calendar",
];

/// A page as `token`'s bearer: status, headers, HTML.
async fn get(demo: &DemoService, token: &str, path: &str) -> (StatusCode, HeaderMap, String) {
    let auth = format!("Bearer {token}");
    let (status, headers, body) = demo
        .call_bytes(Method::GET, path, &[("authorization", &auth)], Vec::new())
        .await;
    (status, headers, String::from_utf8(body).expect("UTF-8"))
}

/// A form posted with `token`'s bearer: status, headers, HTML.
async fn post(
    demo: &DemoService,
    token: &str,
    path: &str,
    pairs: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    let auth = format!("Bearer {token}");
    let (status, headers, body) = demo
        .call_bytes(
            Method::POST,
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            form(pairs).into_bytes(),
        )
        .await;
    (status, headers, String::from_utf8(body).expect("UTF-8"))
}

/// A form that succeeds: 303 back to `back`.
async fn posted(demo: &DemoService, path: &str, pairs: &[(&str, &str)], back: &str) {
    let (status, headers, body) = post(demo, demo.token(ADMIN), path, pairs).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{path}: {body}");
    assert_eq!(headers["location"], back, "{path}");
}

/// A JSON read through the API as the administrator.
async fn api(demo: &DemoService, path: &str) -> Value {
    let (status, body) = demo
        .call(Method::GET, path, Some(demo.token(ADMIN)), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

/// A form refused: its status, the message beside `field` in the form `form` (the error's
/// element tied to its control by `aria-describedby`), and nothing written. `field` empty:
/// the message at the top of the form.
async fn refused(
    demo: &DemoService,
    path: &str,
    pairs: &[(&str, &str)],
    status: StatusCode,
    form: &str,
    field: &str,
) -> String {
    let before = head(demo);
    let (got, headers, body) = post(demo, demo.token(ADMIN), path, pairs).await;
    assert_eq!(got, status, "{path}: {body}");
    assert!(
        headers["content-type"]
            .to_str()
            .expect("as the test set it up")
            .starts_with("text/html"),
        "{path}: a refusal is a page"
    );
    // It carries the API's error code, as the error page does.
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::CONFLICT => "conflict",
        _ => "unprocessable",
    };
    assert!(
        body.contains(&format!(
            "<meta name=\"civicflow-error\" content=\"{code}\">"
        )),
        "{path}: no error code {code}"
    );
    if field.is_empty() {
        assert!(
            body.contains(&format!("id=\"{form}-error\" role=\"alert\"")),
            "{path}: no message at the top of {form}: {body}"
        );
    } else {
        let id = format!("{form}-{}", field.replace('_', "-"));
        let error = format!("{id}-error");
        assert!(
            body.contains(&format!("id=\"{error}\" role=\"alert\"")),
            "{path}: no message beside {id}: {body}"
        );
        // The control names its message, and is marked invalid.
        let control = body
            .split(&format!("id=\"{id}\""))
            .nth(1)
            .and_then(|rest| rest.split('>').next())
            .unwrap_or_else(|| panic!("{path}: no control {id}"));
        assert!(
            control.contains(&error),
            "{path}: {id} does not name {error}: {control}"
        );
        assert!(
            control.contains("aria-invalid=\"true\""),
            "{path}: {control}"
        );
    }
    assert_eq!(head(demo), before, "{path}: a refusal wrote");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_are_for_community_administrators_as_their_api_twins() {
    let demo = DemoService::start("dashboard-admin-policy");
    // The API twins' writes: what a non-administrator is answered there, the pages answer.
    let twins = [
        (Method::POST, "/api/v1/units"),
        (Method::POST, "/api/v1/actors"),
        (Method::POST, "/api/v1/roles"),
        (Method::POST, "/api/v1/tokens"),
        (Method::POST, "/api/v1/workflows"),
    ];
    let forms = [
        "/admin/units",
        "/admin/units/change",
        "/admin/units/grid-1/retire",
        "/admin/actors",
        "/admin/actors/grant",
        "/admin/actors/revoke",
        "/admin/roles",
        "/admin/tokens",
        "/admin/tokens/0123456789abcdef/revoke",
        "/admin/workflows",
        "/admin/calendar",
    ];
    for (actor, _, role, _) in civicflow::demo::ACTORS {
        let token = demo.token(actor);
        let admin = *role == "community_admin";
        let before = head(&demo);
        for (method, path) in &twins {
            let (status, body) = demo
                .call(method.clone(), path, Some(token), Some(json!({})))
                .await;
            if !admin {
                assert_eq!(status, StatusCode::FORBIDDEN, "{actor} {path}: {body}");
            }
        }
        for page in PAGES {
            let (status, headers, body) = get(&demo, token, page).await;
            let want = if admin {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(status, want, "{actor} GET {page}");
            assert!(
                headers["content-type"]
                    .to_str()
                    .expect("as the test set it up")
                    .starts_with("text/html"),
                "{actor} GET {page}: {body}"
            );
        }
        if !admin {
            for path in forms {
                let (status, _, body) = post(&demo, token, path, &[("id", "x")]).await;
                assert_eq!(status, StatusCode::FORBIDDEN, "{actor} POST {path}: {body}");
            }
            assert_eq!(head(&demo), before, "{actor}: a refused form wrote");
        }
    }
    // The navigation shows the administration to administrators only.
    let (_, _, board) = get(&demo, demo.token(ADMIN), "/board").await;
    assert!(board.contains("href=\"/admin\""));
    let (_, _, board) = get(&demo, demo.token("li.grid1"), "/board").await;
    assert!(!board.contains("href=\"/admin\""));
    // Without a token: 401, the sign-in's way.
    let (status, _, _) = demo
        .call_bytes(Method::GET, "/admin/tokens", &[], Vec::new())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_form_reaches_the_engine() {
    let demo = DemoService::start("dashboard-admin-forms");
    // Every page lists what the API lists.
    let (_, _, units) = get(&demo, demo.token(ADMIN), "/admin/units").await;
    for unit in api(&demo, "/api/v1/units").await["units"]
        .as_array()
        .expect("as the test set it up")
    {
        let id = unit["id"].as_str().expect("as the test set it up");
        assert!(units.contains(&format!("<code>{id}</code>")), "{id}");
    }
    // Roles.
    posted(
        &demo,
        "/admin/roles",
        &[("id", "night_watch"), ("name", "夜间巡查 night watch")],
        "/admin/roles",
    )
    .await;
    let roles = api(&demo, "/api/v1/roles").await;
    assert!(
        roles["roles"]
            .as_array()
            .expect("as the test set it up")
            .iter()
            .any(|r| r["id"] == "night_watch"
                && r["name"] == "夜间巡查 night watch"
                && r["built_in"] == false),
        "{roles}"
    );
    let (_, _, page) = get(&demo, demo.token(ADMIN), "/admin/roles").await;
    assert!(page.contains("night_watch"));
    // Units: added, renamed and moved, retired.
    posted(
        &demo,
        "/admin/units",
        &[
            ("id", "grid-9"),
            ("name", "第九网格 grid 9"),
            ("tier", "grid"),
            ("parent", "tonghui"),
        ],
        "/admin/units",
    )
    .await;
    posted(
        &demo,
        "/admin/units",
        &[
            ("id", "grid-9-mall"),
            ("name", "九号商场 mall 9"),
            ("tier", "enterprise"),
            ("parent", "grid-9"),
        ],
        "/admin/units",
    )
    .await;
    posted(
        &demo,
        "/admin/units/change",
        &[
            ("id", "grid-9-mall"),
            ("name", "九号广场 plaza 9"),
            ("parent", "grid-1"),
        ],
        "/admin/units",
    )
    .await;
    posted(&demo, "/admin/units/grid-9/retire", &[], "/admin/units").await;
    let units = api(&demo, "/api/v1/units").await;
    let unit = |id: &str| {
        units["units"]
            .as_array()
            .expect("as the test set it up")
            .iter()
            .find(|u| u["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} in {units}"))
    };
    assert_eq!(unit("grid-9")["retired"], true);
    assert_eq!(unit("grid-9-mall")["name"], "九号广场 plaza 9");
    assert_eq!(unit("grid-9-mall")["parent"], "grid-1");
    // The tree: the plaza under grid 1 now.
    let (_, _, page) = get(&demo, demo.token(ADMIN), "/admin/units").await;
    let grid_1 = page.split("<code>grid-1</code>").nth(1).expect("grid 1");
    let grid_2 = grid_1
        .split("<code>grid-2</code>")
        .next()
        .expect("as the test set it up");
    assert!(grid_2.contains("<code>grid-9-mall</code>"), "under grid 1");
    // Actors: registered, granted, revoked.
    posted(
        &demo,
        "/admin/actors",
        &[
            ("id", "qian.grid9"),
            ("name", "钱网格员"),
            ("kind", "person"),
        ],
        "/admin/actors",
    )
    .await;
    for (path, holds) in [
        ("/admin/actors/grant", true),
        ("/admin/actors/revoke", false),
    ] {
        posted(
            &demo,
            path,
            &[
                ("actor", "qian.grid9"),
                ("role", "grid_worker"),
                ("unit_id", "grid-3"),
            ],
            "/admin/actors",
        )
        .await;
        let actors = api(&demo, "/api/v1/actors").await;
        let actor = actors["actors"]
            .as_array()
            .expect("as the test set it up")
            .iter()
            .find(|a| a["id"] == "qian.grid9")
            .cloned()
            .expect("registered");
        assert_eq!(actor["name"], "钱网格员");
        assert_eq!(
            actor["roles"] == json!([{"role": "grid_worker", "unit_id": "grid-3"}]),
            holds,
            "{actor}"
        );
    }
    // Workflows: the errand's version 2 as TOML text.
    let errand = civicflow_core::domain::workflow::BUILT_IN
        .iter()
        .find(|(file, _)| *file == "one-stop-errand.toml")
        .expect("as the test set it up")
        .1
        .replace("\nversion = 1\n", "\nversion = 2\n");
    posted(
        &demo,
        "/admin/workflows",
        &[("definition", &errand)],
        "/admin/workflows",
    )
    .await;
    let versions = api(&demo, "/api/v1/workflows/one-stop-errand/versions").await;
    let last = versions["versions"]
        .as_array()
        .expect("as the test set it up")
        .last()
        .cloned()
        .expect("as the test set it up");
    assert_eq!(last["definition"]["version"], 2, "{versions}");
    assert_eq!(last["origin"], "published");
    assert_eq!(last["published_by"]["actor"], ADMIN);
    let (_, _, page) = get(&demo, demo.token(ADMIN), "/admin/workflows").await;
    assert!(page.contains("one-stop-errand"));
    // The calendar: 2027 published.
    posted(
        &demo,
        "/admin/calendar",
        &[
            ("year", "2027"),
            (
                "table",
                "source = \"test schedule for 2027\"\noff = [[\"2027-01-01\", \"2027-01-03\"]]\nwork = []\n",
            ),
        ],
        "/admin/calendar",
    )
    .await;
    let calendar = api(&demo, "/api/v1/calendar").await;
    let year = calendar["years"]
        .as_array()
        .expect("as the test set it up")
        .iter()
        .find(|y| y["year"] == 2027)
        .cloned()
        .unwrap_or_else(|| panic!("2027 in {calendar}"));
    assert_eq!(year["origin"], "published");
    assert_eq!(year["source"], "test schedule for 2027");
    let (_, _, page) = get(&demo, demo.token(ADMIN), "/admin/calendar").await;
    assert!(page.contains("test schedule for 2027"));
    assert!(page.contains("2027-01-01–2027-01-03"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_shows_beside_its_field() {
    let demo = DemoService::start("dashboard-admin-refusals");
    // A unit id the core refuses: 422 beside the id, the values sent kept.
    let body = refused(
        &demo,
        "/admin/units",
        &[
            ("id", "Bad Id"),
            ("name", "<b>坏</b>"),
            ("tier", "grid"),
            ("parent", "tonghui"),
        ],
        StatusCode::UNPROCESSABLE_ENTITY,
        "unit-add",
        "id",
    )
    .await;
    assert!(body.contains("value=\"Bad Id\""), "the id sent, again");
    assert!(body.contains("value=\"&lt;b&gt;坏&lt;/b&gt;\""), "escaped");
    assert!(!body.contains("<b>坏</b>"));
    // A parent that does not exist: 404 beside the parent.
    refused(
        &demo,
        "/admin/units",
        &[
            ("id", "grid-x"),
            ("name", "x"),
            ("tier", "grid"),
            ("parent", "nowhere"),
        ],
        StatusCode::NOT_FOUND,
        "unit-add",
        "parent",
    )
    .await;
    // A tier that is none: 400 beside the tier.
    refused(
        &demo,
        "/admin/units",
        &[
            ("id", "grid-x"),
            ("name", "x"),
            ("tier", "castle"),
            ("parent", "tonghui"),
        ],
        StatusCode::BAD_REQUEST,
        "unit-add",
        "tier",
    )
    .await;
    // Retiring a unit that leads open cases: 422, above the chart.
    refused(
        &demo,
        "/admin/units/grid-1/retire",
        &[],
        StatusCode::UNPROCESSABLE_ENTITY,
        "unit-retire",
        "",
    )
    .await;
    // An actor id taken: 409 at the top of the form.
    refused(
        &demo,
        "/admin/actors",
        &[("id", "li.grid1"), ("name", "另一个李")],
        StatusCode::CONFLICT,
        "actor-add",
        "",
    )
    .await;
    // A grant to nobody: 404 beside the actor; at a unit that does not exist: beside the unit.
    refused(
        &demo,
        "/admin/actors/grant",
        &[
            ("actor", "nobody.here"),
            ("role", "volunteer"),
            ("unit_id", "grid-1"),
        ],
        StatusCode::NOT_FOUND,
        "actor-grant",
        "actor",
    )
    .await;
    refused(
        &demo,
        "/admin/actors/grant",
        &[
            ("actor", "li.grid1"),
            ("role", "volunteer"),
            ("unit_id", "nowhere"),
        ],
        StatusCode::NOT_FOUND,
        "actor-grant",
        "unit_id",
    )
    .await;
    // A role id the core refuses.
    refused(
        &demo,
        "/admin/roles",
        &[("id", "Night Watch"), ("name", "x")],
        StatusCode::UNPROCESSABLE_ENTITY,
        "role-add",
        "id",
    )
    .await;
    // A token name over the limit: 400 beside the name.
    refused(
        &demo,
        "/admin/tokens",
        &[
            ("actor", "li.grid1"),
            ("role", "grid_worker"),
            ("unit_id", "grid-1"),
            ("name", &"x".repeat(101)),
        ],
        StatusCode::BAD_REQUEST,
        "token-add",
        "name",
    )
    .await;
    // A definition that does not validate: 422, the key at fault beside the text.
    let body = refused(
        &demo,
        "/admin/workflows",
        &[("definition", "id = \"x\"\nversion = 1\nname = \"x\"\n")],
        StatusCode::UNPROCESSABLE_ENTITY,
        "workflow-add",
        "definition",
    )
    .await;
    assert!(body.contains("version = 1"), "the text sent, again");
    // A year that is not one: 404 beside the year; a day outside it: 422 beside the table.
    let table = "source = \"x\"\noff = [[\"2028-01-01\", \"2028-01-02\"]]\n";
    refused(
        &demo,
        "/admin/calendar",
        &[("year", "20x7"), ("table", table)],
        StatusCode::NOT_FOUND,
        "year-add",
        "year",
    )
    .await;
    let body = refused(
        &demo,
        "/admin/calendar",
        &[("year", "2027"), ("table", table)],
        StatusCode::UNPROCESSABLE_ENTITY,
        "year-add",
        "table",
    )
    .await;
    let error = body
        .split("id=\"year-add-table-error\" role=\"alert\">")
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .expect("the error beside the table");
    assert!(
        error.contains("off[0]"),
        "the field as in the file: {error}"
    );
}

/// The token id of the token named `name`, through the API.
async fn token_id(demo: &DemoService, name: &str) -> String {
    let tokens = api(demo, "/api/v1/tokens").await;
    tokens["tokens"]
        .as_array()
        .expect("as the test set it up")
        .iter()
        .find(|t| t["name"] == name)
        .and_then(|t| t["id"].as_str())
        .unwrap_or_else(|| panic!("{name} in {tokens}"))
        .to_owned()
}

/// Signs in with `token` through the sign-in form: the session cookie (`name=value`).
async fn sign_in(demo: &DemoService, token: &str) -> String {
    let (status, headers, _) = demo
        .call_bytes(
            Method::POST,
            "/session",
            &[("content-type", "application/x-www-form-urlencoded")],
            form(&[("token", token)]).into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    headers["set-cookie"]
        .to_str()
        .expect("as the test set it up")
        .split(';')
        .next()
        .expect("as the test set it up")
        .to_owned()
}

/// A page with the session cookie.
async fn get_with(demo: &DemoService, cookie: &str, path: &str) -> (StatusCode, String) {
    let (status, _, body) = demo
        .call_bytes(Method::GET, path, &[("cookie", cookie)], Vec::new())
        .await;
    (
        status,
        String::from_utf8(body).expect("as the test set it up"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issued_token_is_shown_once_works_and_ends_its_sessions_when_revoked_on_its_page() {
    let demo = DemoService::start("dashboard-admin-tokens");
    let name = "孙网格员的平板 Sun's tablet";
    let before = head(&demo);
    let (status, headers, page) = post(
        &demo,
        demo.token(ADMIN),
        "/admin/tokens",
        &[
            ("actor", "sun.grid3"),
            ("role", "grid_worker"),
            ("unit_id", "grid-3"),
            ("name", name),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{page}");
    assert_ne!(head(&demo), before, "issued");
    assert_eq!(headers["cache-control"], "no-store");
    let secret = page
        .split("id=\"token-secret\"")
        .nth(1)
        .and_then(|rest| rest.split("value=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("the secret on the page")
        .to_owned();
    assert!(secret.starts_with("cft_") && secret.len() == 68, "{secret}");
    assert!(page.contains("it is not shown again"));
    // It works, as the actor it was issued for.
    let (status, cases) = demo
        .call(Method::GET, "/api/v1/cases", Some(&secret), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{cases}");
    // Shown once: the list names it, never its secret.
    let (_, _, list) = get(&demo, demo.token(ADMIN), "/admin/tokens").await;
    assert!(
        list.contains("Sun&#39;s tablet") || list.contains("Sun's tablet"),
        "{list}"
    );
    assert!(!list.contains(&secret));
    assert!(!list.contains(&secret[4..]));

    // Signed in with it, in a browser's way.
    let cookie = sign_in(&demo, &secret).await;
    let (status, _) = get_with(&demo, &cookie, "/board").await;
    assert_eq!(status, StatusCode::OK);
    // Revoked on its page: refused at once, its session and its bearer alike.
    let id = token_id(&demo, name).await;
    let (status, headers, body) = post(
        &demo,
        demo.token(ADMIN),
        &format!("/admin/tokens/{id}/revoke"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(headers["location"], "/admin/tokens");
    let (status, body) = get_with(&demo, &cookie, "/board").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("href=\"/\""), "the way to sign in again");
    let (status, _) = demo
        .call(Method::GET, "/api/v1/cases", Some(&secret), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let tokens = api(&demo, "/api/v1/tokens").await;
    let listed = tokens["tokens"]
        .as_array()
        .expect("as the test set it up")
        .iter()
        .find(|t| t["id"] == id.as_str())
        .cloned()
        .expect("as the test set it up");
    assert!(listed["revoked_at"].is_string(), "{listed}");
    // The list shows it revoked; revoking again changes nothing; an unknown id is 404.
    let (_, _, list) = get(&demo, demo.token(ADMIN), "/admin/tokens").await;
    assert!(!list.contains(&format!("/admin/tokens/{id}/revoke")));
    let before = head(&demo);
    let (status, _, _) = post(
        &demo,
        demo.token(ADMIN),
        &format!("/admin/tokens/{id}/revoke"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(head(&demo), before);
    refused(
        &demo,
        "/admin/tokens/0123456789abcdef/revoke",
        &[],
        StatusCode::NOT_FOUND,
        "token-revoke",
        "",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tokens_page_shows_only_the_callers_subtree() {
    let demo = DemoService::start("dashboard-admin-subtree");
    // An administrator of grid 1 (below the community), with a token.
    posted(
        &demo,
        "/admin/actors",
        &[("id", "admin.grid1"), ("name", "网格一管理员")],
        "/admin/actors",
    )
    .await;
    posted(
        &demo,
        "/admin/actors/grant",
        &[
            ("actor", "admin.grid1"),
            ("role", "community_admin"),
            ("unit_id", "grid-1"),
        ],
        "/admin/actors",
    )
    .await;
    let (status, _, page) = post(
        &demo,
        demo.token(ADMIN),
        "/admin/tokens",
        &[
            ("actor", "admin.grid1"),
            ("role", "community_admin"),
            ("unit_id", "grid-1"),
            ("name", "grid 1 admin"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let secret = page
        .split("id=\"token-secret\"")
        .nth(1)
        .and_then(|rest| rest.split("value=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("as the test set it up")
        .to_owned();
    // Their list is the API's: grid 1 and below, not the community's own tokens.
    let (status, _, list) = get(&demo, &secret, "/admin/tokens").await;
    assert_eq!(status, StatusCode::OK);
    let (_, api_list) = demo
        .call(Method::GET, "/api/v1/tokens", Some(&secret), None)
        .await;
    let api_list = api_list["tokens"]
        .as_array()
        .expect("as the test set it up")
        .clone();
    assert!(!api_list.is_empty());
    for token in &api_list {
        let id = token["id"].as_str().expect("as the test set it up");
        if token["revoked_at"].is_null() {
            assert!(list.contains(&format!("/admin/tokens/{id}/revoke")), "{id}");
        }
    }
    assert!(list.contains("<code>li.grid1</code>"));
    assert!(
        !list.contains("<code>wang.secretary</code>"),
        "the community's token"
    );
    assert!(!list.contains("<code>zhao.grid2</code>"), "grid 2's token");
    // A token of the community is not theirs to revoke: 404, as through the API.
    let wang = token_id(&demo, "王书记 (community party committee)").await;
    let before = head(&demo);
    let (status, _, _) = post(&demo, &secret, &format!("/admin/tokens/{wang}/revoke"), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(head(&demo), before);
    // Publishing a calendar year is for a top unit's administrators: 403 from the core.
    let (status, _, _) = post(
        &demo,
        &secret,
        "/admin/calendar",
        &[
            ("year", "2027"),
            (
                "table",
                "source = \"x\"\noff = [[\"2027-01-01\", \"2027-01-01\"]]\n",
            ),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_posted_with_the_session_cookie_needs_its_csrf_token() {
    let demo = DemoService::start("dashboard-admin-csrf");
    let cookie = sign_in(&demo, demo.token(ADMIN)).await;
    let (status, page) = get_with(&demo, &cookie, "/admin/roles").await;
    assert_eq!(status, StatusCode::OK);
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form's CSRF token")
        .to_owned();
    assert_eq!(csrf.len(), 64);
    let send = |pairs: Vec<(&'static str, String)>, origin: &'static str| {
        let cookie = cookie.clone();
        let demo = &demo;
        async move {
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (status, _, body) = demo
                .call_bytes(
                    Method::POST,
                    "/admin/roles",
                    &[
                        ("cookie", &cookie),
                        ("content-type", "application/x-www-form-urlencoded"),
                        ("host", "dashboard.test"),
                        ("origin", origin),
                    ],
                    form(&pairs).into_bytes(),
                )
                .await;
            (
                status,
                String::from_utf8(body).expect("as the test set it up"),
            )
        }
    };
    let before = head(&demo);
    // Without the token, with another's, from another site: 403, nothing written.
    for (pairs, origin) in [
        (
            vec![("id", "forged_role".to_owned()), ("name", "x".to_owned())],
            "http://dashboard.test",
        ),
        (
            vec![
                ("csrf", "0".repeat(64)),
                ("id", "forged_role".to_owned()),
                ("name", "x".to_owned()),
            ],
            "http://dashboard.test",
        ),
        (
            vec![
                ("csrf", csrf.clone()),
                ("id", "forged_role".to_owned()),
                ("name", "x".to_owned()),
            ],
            "http://evil.test",
        ),
    ] {
        let (status, body) = send(pairs, origin).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    assert_eq!(head(&demo), before);
    // With it, from the page's own site: defined.
    let (status, body) = send(
        vec![
            ("csrf", csrf.clone()),
            ("id", "lamp_keeper".to_owned()),
            ("name", "路灯管理员 lamp keeper".to_owned()),
        ],
        "http://dashboard.test",
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let roles = api(&demo, "/api/v1/roles").await;
    assert!(roles["roles"]
        .as_array()
        .expect("as the test set it up")
        .iter()
        .any(|r| r["id"] == "lamp_keeper"));
    // A refusal with the cookie is the page again, its forms carrying the token.
    let (status, body) = send(
        vec![
            ("csrf", csrf.clone()),
            ("id", "Bad".to_owned()),
            ("name", "x".to_owned()),
        ],
        "http://dashboard.test",
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains(&format!("name=\"csrf\" value=\"{csrf}\"")));
}
