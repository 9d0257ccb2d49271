//! The dashboard's probes: signing in and out, the assets, the case board and its CSV. A page
//! route has the policy of its API twin, and a bearer token is as good as the session cookie
//! there (the cookie's own rules are tested in `dashboard_sessions`).

use sha2::{Digest, Sha256};

use super::*;

/// The served name of the dashboard's stylesheet: `style.<first 16 hex digits of its
/// SHA-256>.css`, as `docs/dashboard.md` documents asset names.
pub(super) fn stylesheet() -> String {
    let bytes = include_bytes!("../../../crates/civicflow-http/src/dashboard/assets/style.css");
    let hash: String = Sha256::digest(bytes)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("/assets/style.{hash}.css")
}

/// Probes of the sign-in, the assets and the board.
pub(super) fn probes() -> Vec<Probe> {
    let mut probes = vec![
        get("/", "/", always()),
        // A valid token in the form signs in, whoever sends it: 303 to the landing page.
        post(
            "/session",
            "/session",
            Value::String(format!("token={OPEN311_API_KEY}")),
            always(),
        ),
        // With a bearer token there is no session to end: 303 all the same.
        post(
            "/session/end",
            "/session/end",
            Value::String(String::new()),
            always(),
        ),
        get("/assets/{file}", stylesheet(), always()),
        get(
            "/assets/{file}",
            "/assets/style.0000000000000000.css",
            wanting(Want::NotFound),
        ),
        get("/board", "/board", always()),
        get("/board", "/board?overdue=true&page=2", always()),
        get("/board.csv", "/board.csv", always()),
    ];
    for unit in [OWN, "grid-1", "shop-xt-012", "no-such-unit"] {
        probes.push(get(
            "/board",
            format!("/board?unit={unit}"),
            unit_read(unit),
        ));
        probes.push(get(
            "/board.csv",
            format!("/board.csv?unit={unit}&workflow=service-request"),
            unit_read(unit),
        ));
    }
    probes
}
