//! The administration pages' probes: the hub and each area's page, and every form, with the
//! expected answers of their API twins (the policy of the twin's writes; the same 404s and
//! refusals). A form is sent as a form (`Value::String`) with the caller's bearer token; a
//! success is the page's own status (303 back to the page, 201 for an issued token's page).
//!
//! The forms write what the API twins' probes write under other names, so that neither
//! changes the other's answers: a role, a grid, an actor of their own, a token, the release's
//! 2026 again (which changes nothing), and one-stop-errand's version 2 (the API's probes
//! publish service-request's).

use super::*;

/// A form body's value, percent-encoded (`application/x-www-form-urlencoded`).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A form of `pairs`.
fn form(pairs: &[(&str, &str)]) -> Value {
    Value::String(
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&"),
    )
}

/// The built-in one-stop errand as version 2, as TOML.
fn errand_v2() -> String {
    let text = civicflow_core::domain::workflow::BUILT_IN
        .iter()
        .find(|(file, _)| *file == "one-stop-errand.toml")
        .expect("the built-in one-stop errand")
        .1;
    assert!(text.contains("\nversion = 1\n"), "the errand is version 1");
    text.replace("\nversion = 1\n", "\nversion = 2\n")
}

/// 2026 as the release carries it, as the TOML table the calendar file holds.
fn release_2026_toml() -> String {
    let year = release_2026();
    let off: Vec<String> = year["off"]
        .as_array()
        .expect("off")
        .iter()
        .map(|r| format!("[{}, {}]", r[0], r[1]))
        .collect();
    format!(
        "source = {}\noff = [{}]\nwork = {}\n",
        year["source"],
        off.join(", "),
        year["work"]
    )
}

/// Probes of every administration page and form.
pub(super) fn probes(ids: &Ids) -> Vec<Probe> {
    let mut probes = vec![
        get("/admin", "/admin", always()),
        get("/admin/units", "/admin/units", always()),
        get("/admin/actors", "/admin/actors", always()),
        get("/admin/roles", "/admin/roles", always()),
        get("/admin/tokens", "/admin/tokens", always()),
        get("/admin/workflows", "/admin/workflows", always()),
        get("/admin/calendar", "/admin/calendar", always()),
        // Roles: defined (303), defined again with the same name (303, nothing written).
        post(
            "/admin/roles",
            "/admin/roles",
            form(&[
                ("id", "authz_page_role"),
                ("name", "授权矩阵页面 authz page role"),
            ]),
            always(),
        ),
        post(
            "/admin/roles",
            "/admin/roles",
            form(&[("id", "Not A Role"), ("name", "bad")]),
            wanting(Want::Unprocessable),
        ),
        // Units: a grid under the community; a shop under a unit that does not exist (404).
        post(
            "/admin/units",
            "/admin/units",
            form(&[
                ("id", "authz-page-grid"),
                ("name", "授权矩阵页面网格 authz page grid"),
                ("tier", "grid"),
                ("parent", "tonghui"),
            ]),
            always(),
        ),
        post(
            "/admin/units",
            "/admin/units",
            form(&[
                ("id", "authz-page-shop"),
                ("name", "shop"),
                ("tier", "shop"),
                ("parent", "no-such-unit"),
            ]),
            wanting(Want::NotFound),
        ),
        post(
            "/admin/units/change",
            "/admin/units/change",
            form(&[
                ("id", "authz-page-grid"),
                ("name", "授权矩阵页面网格二 renamed"),
            ]),
            always(),
        ),
        post(
            "/admin/units/change",
            "/admin/units/change",
            form(&[("id", "no-such-unit"), ("name", "无")]),
            wanting(Want::NotFound),
        ),
    ];
    for (unit, want) in [
        ("authz-page-grid", Want::Ok),
        // Grid 1 has units below it and leads open cases.
        ("grid-1", Want::Unprocessable),
        ("no-such-unit", Want::NotFound),
    ] {
        probes.push(post(
            "/admin/units/{id}/retire",
            format!("/admin/units/{unit}/retire"),
            Value::String(String::new()),
            wanting(want),
        ));
    }
    // Actors: registered; a role granted and revoked; an actor that does not exist (404).
    probes.push(post(
        "/admin/actors",
        "/admin/actors",
        form(&[
            ("id", "authz.page.actor"),
            ("name", "授权矩阵页面 authz page actor"),
        ]),
        always(),
    ));
    for route in ["/admin/actors/grant", "/admin/actors/revoke"] {
        for (actor, want) in [
            ("authz.page.actor", Want::Ok),
            ("no.such.actor", Want::NotFound),
        ] {
            probes.push(post(
                route,
                route,
                form(&[
                    ("actor", actor),
                    ("role", "volunteer"),
                    ("unit_id", "grid-1"),
                ]),
                wanting(want),
            ));
        }
    }
    // Tokens: issued (201, the secret's page); the spare token revoked (revoked already by
    // the API's probe: 303, nothing written); an id that names no token (404).
    probes.push(post(
        "/admin/tokens",
        "/admin/tokens",
        form(&[
            ("actor", "sun.grid3"),
            ("role", "grid_worker"),
            ("unit_id", "grid-3"),
            ("name", "authz matrix page"),
        ]),
        always(),
    ));
    probes.push(post(
        "/admin/tokens",
        "/admin/tokens",
        form(&[
            ("actor", "sun.grid3"),
            ("role", "auditor"),
            ("unit_id", "grid-3"),
            ("name", "authz matrix page: a role not held"),
        ]),
        wanting(Want::Forbidden),
    ));
    probes.push(post(
        "/admin/tokens/{id}/revoke",
        format!("/admin/tokens/{}/revoke", ids.spare_token),
        form(&[("reason", "authz matrix page")]),
        token_revoke(true),
    ));
    probes.push(post(
        "/admin/tokens/{id}/revoke",
        "/admin/tokens/0123456789abcdef/revoke",
        Value::String(String::new()),
        token_revoke(false),
    ));
    // Workflows: the errand's version 2 (a top unit's administrator); a definition that does
    // not validate (422).
    probes.push(post(
        "/admin/workflows",
        "/admin/workflows",
        form(&[("definition", &errand_v2())]),
        publish_calendar(),
    ));
    probes.push(post(
        "/admin/workflows",
        "/admin/workflows",
        form(&[("definition", "id = \"authz-page\"\nversion = 1\n")]),
        wanting(Want::Unprocessable),
    ));
    // The calendar: the release's 2026 again (changes nothing), a year that is not one (404).
    probes.push(post(
        "/admin/calendar",
        "/admin/calendar",
        form(&[("year", "2026"), ("table", &release_2026_toml())]),
        publish_calendar(),
    ));
    probes.push(post(
        "/admin/calendar",
        "/admin/calendar",
        form(&[("year", "20x6"), ("table", &release_2026_toml())]),
        wanting(Want::NotFound),
    ));
    probes
}
