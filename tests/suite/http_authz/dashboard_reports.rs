//! The directive and report pages' probes. A page has the policy of its API twin and answers
//! what the twin answers: the same scope rules judge it (a directive's sight, a unit in the
//! caller's subtree, the engine's refusals of a part's acknowledgement or report), with a
//! form's 303 for the twin's success.

use super::*;

/// A form body, as `send` sends a JSON string.
fn form(pairs: &[(&str, &str)]) -> Value {
    Value::String(
        pairs
            .iter()
            .map(|(k, v)| {
                let value: String = v
                    .bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                            (b as char).to_string()
                        }
                        _ => format!("%{b:02X}"),
                    })
                    .collect();
                format!("{k}={value}")
            })
            .collect::<Vec<_>>()
            .join("&"),
    )
}

/// Reporting a part of a directive whose every part has reported already: 404 when the
/// caller sees nothing of it, 422 when their unit has no part, 403 when their role may not
/// respond, 422 otherwise (reported already). By the time these probes run, the API's report
/// probes (each responder of a unit with a part reports it) have reported every part of grid
/// 1's directive: Yiwu Heart's liaison and the owners of its two shops.
fn report_again(directive: &str) -> Judge {
    let directive = directive.to_owned();
    Box::new(move |world, who| {
        if world.sight(who, &directive) == Sight::Nothing {
            return Want::NotFound;
        }
        if !world.directives[&directive]
            .parts
            .iter()
            .any(|p| p == who.unit)
        {
            return Want::Unprocessable;
        }
        if !RESPONDERS.contains(&who.role) {
            return Want::Forbidden;
        }
        Want::Unprocessable
    })
}

/// Probes of the directive and report pages: grid 2's directive (`ids.d3`) is acknowledged
/// and reported through the forms only, by the responders of Intime and its shops.
pub(super) fn probes(ids: &Ids) -> Vec<Probe> {
    let issue_form = |unit: &str| {
        form(&[
            ("title", "authz matrix: 消防检查 (page)"),
            ("kind", "staff_training"),
            ("within", "3 working days"),
            ("unit_id", unit),
        ])
    };
    let mut probes = vec![
        get("/directives", "/directives", always()),
        get("/directives/new", "/directives/new", always()),
        post("/directives", "/directives", issue_form(""), issue(None)),
        post(
            "/directives",
            "/directives",
            issue_form("grid-3"),
            issue(Some("grid-3")),
        ),
        get("/reports", "/reports", always()),
        get("/reports", "/reports?month=2026-04", always()),
        get("/reports/standing", "/reports/standing", always()),
        get(
            "/reports/standing",
            "/reports/standing?month=2026-04&quarter=2026Q2",
            always(),
        ),
        get("/reports/lists", "/reports/lists", always()),
        get("/reports/lists", "/reports/lists?retired=true", always()),
        get("/reports/overdue", "/reports/overdue", always()),
        get(
            "/directives/{id}",
            "/directives/not-a-directive",
            directive_read(NO_SUCH_ID),
        ),
    ];
    for unit in [OWN, "grid-1", "shop-xt-012", "no-such-unit"] {
        probes.push(get(
            "/reports/overdue",
            format!("/reports/overdue?unit={unit}"),
            unit_read(unit),
        ));
    }
    let note = form(&[("note", "authz matrix: 收到 (page)")]);
    for id in [
        ids.d1.as_str(),
        ids.d2.as_str(),
        ids.d3.as_str(),
        NO_SUCH_ID,
    ] {
        probes.push(get(
            "/directives/{id}",
            format!("/directives/{id}"),
            directive_read(id),
        ));
        probes.push(post(
            "/directives/{id}/acknowledge",
            format!("/directives/{id}/acknowledge"),
            note.clone(),
            directive_part(id, false),
        ));
        let judge = if id == ids.d2 {
            report_again(id)
        } else {
            directive_part(id, true)
        };
        probes.push(post(
            "/directives/{id}/report",
            format!("/directives/{id}/report"),
            note.clone(),
            judge,
        ));
    }
    probes
}
