//! The probes of the case pages: a case's page and its live fragment, the action forms, the
//! new-request page and form, and "my requests". Each page route has the policy of its API
//! twin and answers as it does (a case outside the caller's scope is 404; a form's refusal
//! has the API's status), so the judges are the API routes' own; a form's success is 303.

use super::*;

/// An action form's body: a form (a JSON string is sent as one by `send`).
fn form(text: &str) -> Value {
    Value::String(text.to_owned())
}

/// Probes of the case pages, on the matrix's cases.
pub(super) fn probes(ids: &Ids) -> Vec<Probe> {
    let mut probes = Vec::new();
    let mut case_ids: Vec<&str> = ids.cases.iter().map(|(_, id)| id.as_str()).collect();
    case_ids.extend([NO_SUCH_ID, "not-a-case"]);
    for id in &case_ids {
        probes.push(get("/cases/{id}", format!("/cases/{id}"), case_read(id)));
        probes.push(get(
            "/cases/{id}/timeline",
            format!("/cases/{id}/timeline"),
            case_read(id),
        ));
    }

    // The action forms: the same judges as the API's action probes.
    let route = "/cases/{id}/actions/{action}";
    let urge = form("note=authz%20matrix%3A%20%E8%AF%B7%E5%B0%BD%E5%BF%AB%E5%A4%84%E7%90%86");
    for (case, action, body, judge) in [
        (
            &ids.f1,
            "urge",
            urge.clone(),
            act(&ids.f1, "urge", Want::Ok),
        ),
        (
            &ids.f2,
            "urge",
            urge.clone(),
            act(&ids.f2, "urge", Want::Ok),
        ),
        // A reply without its required fields: 403 for those who see the case but do not
        // handle it, 422 for its handler; never a write.
        (
            &ids.f2,
            "reply",
            form(""),
            act(&ids.f2, "reply", Want::Unprocessable),
        ),
        // A closed case: 422 for everyone who sees it.
        (
            &ids.smooth,
            "urge",
            urge.clone(),
            act(&ids.smooth, "urge", Want::Ok),
        ),
    ] {
        probes.push(post(
            route,
            format!("/cases/{case}/actions/{action}"),
            body,
            judge,
        ));
    }
    // An action the workflow does not have: 422 naming it for whoever sees the case.
    let f1 = ids.f1.clone();
    probes.push(post(
        route,
        format!("/cases/{}/actions/fly", ids.f1),
        form(""),
        Box::new(move |world: &World, who: &Who| {
            if world.sees_case(who, &f1) {
                Want::Unprocessable
            } else {
                Want::NotFound
            }
        }),
    ));
    for id in [NO_SUCH_ID, "not-a-case"] {
        probes.push(post(
            route,
            format!("/cases/{id}/actions/urge"),
            urge.clone(),
            wanting(Want::NotFound),
        ));
    }

    // The new-request page: everyone sees it; a workflow's form only for its open roles.
    probes.push(get("/cases/new", "/cases/new", always()));
    probes.push(get(
        "/cases/new",
        "/cases/new?workflow=service-request",
        Box::new(|world: &World, who: &Who| {
            if world.open_roles.iter().any(|r| r == who.role) {
                Want::Ok
            } else {
                Want::Forbidden
            }
        }),
    ));
    // Filing from the form: the API's judge (the workflow's open roles, the opening's reach,
    // 422 without the required category), at the community, a grid and a shop.
    for unit in ["tonghui", "grid-3", "shop-xt-012"] {
        let fields = format!(
            "workflow=service-request&unit_id={unit}&title=authz%20matrix%3A%20%E8%B7%AF%E7%81%AF&place.address=%E6%96%B0%E9%A9%AC%E8%B7%AF"
        );
        probes.push(post(
            "/cases",
            "/cases",
            form(&format!("{fields}&fields.category=public_facilities")),
            open_case(unit, true),
        ));
        probes.push(post(
            "/cases",
            "/cases",
            form(&format!("{fields}&fields.category=")),
            open_case(unit, false),
        ));
    }

    // My requests: everyone's own.
    probes.push(get("/mine", "/mine", always()));
    probes
}
