//! The dashboard's sessions and their fences, through the router in-process on the demo
//! store (`dashboard/session.rs`, decision 0012): the cookie's attributes, what it is good
//! for and what not, the CSRF token and the `Origin` check on every form that came with it,
//! signing out (a copy of the cookie dies too), revocation, the headers every page carries.

use axum::http::{header, HeaderMap, Method, StatusCode};

use crate::common::pages::head;
use crate::common::service::DemoService;

/// A browser's session: its cookie header and the CSRF token of its pages.
struct Browser {
    cookie: String,
    csrf: String,
}

const HOST: &str = "civicflow.test";
const ORIGIN: &str = "https://civicflow.test";

fn set_cookie(headers: &HeaderMap) -> String {
    headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a Set-Cookie header")
        .to_owned()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Signs in through `POST /session` with `actor`'s token, then reads the CSRF token from the
/// board's sign-out form.
async fn sign_in(demo: &DemoService, actor: &str) -> Browser {
    let form = format!("token={}", demo.token(actor));
    let (status, headers, body) = demo
        .call_bytes(
            Method::POST,
            "/session",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("host", HOST),
                ("origin", ORIGIN),
            ],
            form.into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{}", text(&body));
    let cookie = set_cookie(&headers);
    let pair = cookie.split(';').next().expect("name=value").to_owned();
    let (status, _, page) = demo
        .call_bytes(Method::GET, "/mine", &[("cookie", &pair)], Vec::new())
        .await;
    let page = if status == StatusCode::OK {
        text(&page)
    } else {
        let (_, _, board) = demo
            .call_bytes(Method::GET, "/board", &[("cookie", &pair)], Vec::new())
            .await;
        text(&board)
    };
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF token in the page's forms")
        .to_owned();
    Browser { cookie: pair, csrf }
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_expiring_cookie_and_lands_by_role() {
    let demo = DemoService::start("dashboard-cookie");
    for (actor, lands) in [
        ("wang.secretary", "/board"),
        ("li.grid1", "/board"),
        ("tang.resident", "/mine"),
    ] {
        let (status, headers, _) = demo
            .call_bytes(
                Method::POST,
                "/session",
                &[("content-type", "application/x-www-form-urlencoded")],
                format!("token={}", demo.token(actor)).into_bytes(),
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{actor}");
        assert_eq!(headers[header::LOCATION], lands, "{actor}");
        let cookie = set_cookie(&headers);
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
            assert!(cookie.contains(attribute), "{attribute} in {cookie}");
        }
        assert!(
            !cookie.contains("Secure"),
            "no Secure over plain HTTP: {cookie}"
        );
        assert!(
            !cookie.contains(demo.token(actor)),
            "the token's secret never goes in the cookie"
        );
    }
}

#[tokio::test]
async fn a_bad_token_is_refused_beside_the_field() {
    let demo = DemoService::start("dashboard-bad-token");
    let (status, headers, body) = demo
        .call_bytes(
            Method::POST,
            "/session",
            &[("content-type", "application/x-www-form-urlencoded")],
            b"token=cft_0000".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.contains_key(header::WWW_AUTHENTICATE));
    let page = text(&body);
    assert!(page.contains("id=\"token-error\""), "{page}");
    assert!(page.contains("aria-describedby=\"token-error\""), "{page}");
    assert!(page.contains("unknown or revoked token"), "{page}");
    assert!(
        headers.get(header::SET_COOKIE).is_none(),
        "no cookie for a bad token"
    );
    // An empty form names the field too.
    let (status, _, body) = demo
        .call_bytes(
            Method::POST,
            "/session",
            &[("content-type", "application/x-www-form-urlencoded")],
            b"token=".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(text(&body).contains("enter your access token"));
}

#[tokio::test]
async fn the_cookie_opens_pages_and_event_streams_but_not_the_json_api() {
    let demo = DemoService::start("dashboard-cookie-reach");
    let browser = sign_in(&demo, "wang.secretary").await;
    let cookie = [("cookie", browser.cookie.as_str())];
    let (status, headers, _) = demo
        .call_bytes(Method::GET, "/board", &cookie, Vec::new())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .expect("a text header")
        .starts_with("text/html"));
    let (status, _, _) = demo
        .call_bytes(Method::GET, "/api/v1/cases", &cookie, Vec::new())
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the JSON API takes bearer tokens only"
    );
    // A case page's live updates: the case's event stream, opened with the cookie.
    let stream = format!("/api/v1/cases/{}/events", demo.run.smooth_case);
    let request = axum::http::Request::get(&stream)
        .header("cookie", &browser.cookie)
        .body(axum::body::Body::empty())
        .expect("a request");
    let response = tower::ServiceExt::oneshot(demo.service.router(), request)
        .await
        .expect("an answer");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()[header::CONTENT_TYPE]
        .to_str()
        .expect("a text header")
        .starts_with("text/event-stream"));
    drop(response);
    // An altered cookie is no cookie.
    let altered = format!("{}0000", &browser.cookie[..browser.cookie.len() - 4]);
    let (status, _, body) = demo
        .call_bytes(
            Method::GET,
            "/board",
            &[("cookie", altered.as_str())],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(text(&body).contains("sign in first"), "{}", text(&body));
}

#[tokio::test]
async fn a_form_with_the_cookie_needs_its_csrf_token_and_its_own_origin() {
    let demo = DemoService::start("dashboard-csrf");
    let browser = sign_in(&demo, "wang.secretary").await;
    let before = head(&demo);
    let post = |origin: &'static str, csrf: String| {
        let cookie = browser.cookie.clone();
        let demo = &demo;
        async move {
            demo.call_bytes(
                Method::POST,
                "/session/end",
                &[
                    ("cookie", cookie.as_str()),
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("host", HOST),
                    ("origin", origin),
                ],
                format!("csrf={csrf}").into_bytes(),
            )
            .await
        }
    };
    // No CSRF token, or a wrong one, from our own origin: 403, nothing written.
    for csrf in ["", "00"] {
        let (status, _, body) = post(ORIGIN, csrf.to_owned()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{}", text(&body));
        assert!(text(&body).contains("CSRF token"), "{}", text(&body));
    }
    // The right token from another origin: 403 too.
    let (status, _, body) = post("https://evil.test", browser.csrf.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(text(&body).contains("cross-site request refused"));
    assert_eq!(head(&demo), before, "a refused form writes nothing");
    // Still signed in.
    let (status, _, _) = demo
        .call_bytes(
            Method::GET,
            "/board",
            &[("cookie", &browser.cookie)],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn signing_out_ends_the_session_for_every_copy_of_the_cookie() {
    let demo = DemoService::start("dashboard-sign-out");
    let browser = sign_in(&demo, "li.grid1").await;
    let other = sign_in(&demo, "li.grid1").await;
    let before = head(&demo);
    let (status, headers, _) = demo
        .call_bytes(
            Method::POST,
            "/session/end",
            &[
                ("cookie", &browser.cookie),
                ("content-type", "application/x-www-form-urlencoded"),
                ("host", HOST),
                ("origin", ORIGIN),
            ],
            format!("csrf={}", browser.csrf).into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/");
    assert!(
        set_cookie(&headers).contains("Max-Age=0"),
        "the cookie is cleared"
    );
    assert_eq!(
        head(&demo).map(|h| h - before.unwrap_or(0)),
        Some(1),
        "one SessionEnded event"
    );
    let (status, _, _) = demo
        .call_bytes(
            Method::GET,
            "/board",
            &[("cookie", &browser.cookie)],
            Vec::new(),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a copy of the signed-out cookie"
    );
    let (status, _, _) = demo
        .call_bytes(
            Method::GET,
            "/board",
            &[("cookie", &other.cookie)],
            Vec::new(),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "another session of the same token lives on"
    );
}

#[tokio::test]
async fn revoking_the_token_ends_its_sessions() {
    let demo = DemoService::start("dashboard-revoke");
    let browser = sign_in(&demo, "zhao.grid2").await;
    let (status, body) = demo
        .call(
            Method::GET,
            "/api/v1/tokens",
            Some(demo.token("wang.secretary")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let id = body["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["actor"] == "zhao.grid2")
        .and_then(|t| t["id"].as_str())
        .expect("zhao's token")
        .to_owned();
    let (status, body) = demo
        .call(
            Method::POST,
            &format!("/api/v1/tokens/{id}/revoke"),
            Some(demo.token("wang.secretary")),
            Some(serde_json::json!({"reason": "lost tablet"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = demo
        .call_bytes(
            Method::GET,
            "/board",
            &[("cookie", &browser.cookie)],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_page_carries_a_strict_policy_and_is_never_cached() {
    let demo = DemoService::start("dashboard-headers");
    let token = demo.token("wang.secretary");
    for path in ["/", "/board", "/board?overdue=true"] {
        let (status, headers, body) = demo
            .call_bytes(
                Method::GET,
                path,
                &[("authorization", &format!("Bearer {token}"))],
                Vec::new(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let csp = headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("a text header");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store", "{path}");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        let page = text(&body);
        assert!(
            !page.contains("<script>") && !page.contains(" style="),
            "{path}: inline script or style"
        );
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "{path}: another host"
        );
    }
    // A bad filter is a page that names the parameter.
    let (status, _, body) = demo
        .call_bytes(
            Method::GET,
            "/board?page=zero",
            &[("authorization", &format!("Bearer {token}"))],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text(&body).contains("page"), "{}", text(&body));
}
