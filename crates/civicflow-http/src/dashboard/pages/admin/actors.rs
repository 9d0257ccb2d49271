//! The actors page: the actors of the caller's community with the roles they hold in it
//! (`GET /api/v1/actors`); forms to register an actor (`POST /api/v1/actors`), grant a role at
//! a unit (`POST /api/v1/actors/{id}/roles`) and revoke one
//! (`POST /api/v1/actors/{id}/roles/revoke`, which revokes the role's tokens with it).

use axum::extract::State;
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post};
use civicflow_core::domain::org::roles as built_in;
use maud::{html, Markup};
use schemars::JsonSchema;
use serde::Deserialize;

use super::{
    area_page, back, choice, csrf, select_field, suggest_field, text, text_field, Form, Refused,
};
use crate::dashboard::render::labels::{self, named};
use crate::dashboard::render::{self, bi, PageError};
use crate::dashboard::session::{PageForm, Viewer};
use crate::error::ApiError;
use crate::json::Validate;
use crate::request_id::WriteOptions;
use crate::routes::org::{self, ActorKindName, GrantBody, NewActor, ADMINS};
use crate::routes::{Content, RouteSpec};
use crate::state::AppState;

const PAGE: &str = "/admin/actors";

/// The routes of the actors page.
pub(crate) fn routes() -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            method: Method::GET,
            path: PAGE,
            policy: ADMINS,
            summary: "The actors page (community administrators): the actors of the caller's community with the roles they hold in it, with forms to register an actor and to grant and revoke roles.",
            tag: "dashboard",
            request: None,
            params: None,
            response: None,
            content: Content::Html,
            status: 200,
            also: &[],
            errors: &[503],
            handler: get(page),
        },
        RouteSpec {
            method: Method::POST,
            path: PAGE,
            policy: ADMINS,
            summary: "Register an actor (a form: id, name, kind: person or system), as POST /api/v1/actors: 303 to the actors page; a refusal is the page again with the API's status and its message beside the field.",
            tag: "dashboard",
            request: Some(crate::openapi::schema_of::<RegisterForm>),
            params: None,
            response: None,
            content: Content::Html,
            status: 303,
            also: &[],
            errors: &[409, 415, 422, 503],
            handler: post(register),
        },
        RouteSpec {
            method: Method::POST,
            path: "/admin/actors/grant",
            policy: ADMINS,
            summary: "Grant an actor a role at a unit of the caller's subtree (a form: actor, role, unit_id), as POST /api/v1/actors/{id}/roles: 303 to the actors page; 404 for an actor or unit the caller cannot see.",
            tag: "dashboard",
            request: Some(crate::openapi::schema_of::<GrantForm>),
            params: None,
            response: None,
            content: Content::Html,
            status: 303,
            also: &[],
            errors: &[403, 404, 415, 422, 503],
            handler: post(grant),
        },
        RouteSpec {
            method: Method::POST,
            path: "/admin/actors/revoke",
            policy: ADMINS,
            summary: "Revoke a role an actor holds at a unit of the caller's subtree (a form: actor, role, unit_id), as POST /api/v1/actors/{id}/roles/revoke: every token issued for it is revoked with it, and their dashboard sessions end. 303 to the actors page.",
            tag: "dashboard",
            request: Some(crate::openapi::schema_of::<GrantForm>),
            params: None,
            response: None,
            content: Content::Html,
            status: 303,
            also: &[],
            errors: &[403, 404, 415, 422, 503],
            handler: post(revoke),
        },
    ]
}

/// The form that registers an actor.
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)] // Read as form pairs; the type describes the form in the OpenAPI document.
pub(crate) struct RegisterForm {
    /// The page's CSRF token (with the session cookie).
    #[serde(default)]
    csrf: Option<String>,
    /// Their id, unique in the store.
    #[schemars(length(min = 1, max = 64))]
    id: String,
    /// Their display name.
    #[schemars(length(min = 1, max = 200))]
    name: String,
    /// A person (the default) or a system.
    #[serde(default)]
    kind: Option<ActorKindName>,
}

/// The form that grants or revokes a role.
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)] // Read as form pairs; the type describes the form in the OpenAPI document.
pub(crate) struct GrantForm {
    /// The page's CSRF token (with the session cookie).
    #[serde(default)]
    csrf: Option<String>,
    /// The actor's id.
    #[schemars(length(min = 1, max = 64))]
    actor: String,
    /// The role.
    #[schemars(length(min = 1, max = 64))]
    role: String,
    /// The unit.
    #[schemars(length(min = 1, max = 64))]
    unit_id: String,
}

/// The roles to choose from (the system's is never granted), in both languages.
pub(crate) fn role_choices(state: &AppState) -> Vec<(String, Markup)> {
    org::roles_answer(state)
        .roles
        .into_iter()
        .filter(|r| r.id != built_in::SYSTEM)
        .map(|r| {
            let words = html! { (named(&r.name)) " (" (r.id) ")" };
            (r.id, words)
        })
        .collect()
}

/// The units the caller sees that are not retired, to choose from.
pub(crate) fn unit_choices(state: &AppState, viewer: &Viewer) -> Vec<(String, Markup)> {
    org::units_answer(state, &viewer.caller)
        .units
        .into_iter()
        .filter(|u| !u.retired)
        .map(|u| {
            let words = html! { (u.name) " (" (u.id) ")" };
            (u.id, words)
        })
        .collect()
}

/// The actors' ids, as a `<datalist>` with `id`.
pub(crate) fn actor_list(state: &AppState, viewer: &Viewer, id: &str) -> Markup {
    let actors = org::actors_answer(state, &viewer.caller).actors;
    html! {
        datalist #(id) {
            @for actor in &actors { option value=(actor.id) { (actor.name) } }
        }
    }
}

async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    Ok(render(&state, &viewer, None))
}

fn render(state: &AppState, viewer: &Viewer, refused: Option<&Refused>) -> Response {
    let actors = org::actors_answer(state, &viewer.caller).actors;
    let roles = role_choices(state);
    let units = unit_choices(state, viewer);
    let kinds = vec![
        ("person".to_owned(), bi("个人", "person")),
        ("system".to_owned(), bi("系统", "system")),
    ];
    let register = Form::new("actor-add", &["id", "name", "kind"], refused);
    let grant = Form::new("actor-grant", &["actor", "role", "unit_id"], refused);
    let revoke = Form::new("actor-revoke", &[], refused);
    let body = html! {
        (back())
        h1 { (bi("人员", "Actors")) }
        section aria-labelledby="actors-title" {
            h2 #actors-title { (bi("本社区人员及其角色", "Actors of the community and their roles")) }
            (revoke.alert())
            div.table-wrap {
                table {
                    thead {
                        tr {
                            th scope="col" { (bi("编号", "Id")) }
                            th scope="col" { (bi("名称", "Name")) }
                            th scope="col" { (bi("类型", "Kind")) }
                            th scope="col" { (bi("角色 @ 单位", "Roles @ unit")) }
                        }
                    }
                    tbody {
                        @for actor in &actors {
                            tr {
                                th scope="row" { code { (actor.id) } }
                                td { (actor.name) }
                                td {
                                    @match actor.kind {
                                        ActorKindName::Person => (bi("个人", "person")),
                                        ActorKindName::System => (bi("系统", "system")),
                                    }
                                }
                                td {
                                    @if actor.roles.is_empty() { "—" }
                                    ul.grants {
                                        @for g in &actor.roles {
                                            li {
                                                (labels::role(&g.role)) " @ " code { (g.unit_id) } " "
                                                form.inline method="post" action="/admin/actors/revoke" {
                                                    (csrf(viewer))
                                                    input type="hidden" name="actor" value=(actor.id);
                                                    input type="hidden" name="role" value=(g.role);
                                                    input type="hidden" name="unit_id" value=(g.unit_id);
                                                    button.secondary type="submit"
                                                        aria-label={ "收回 Revoke " (g.role) " @ " (g.unit_id) " — " (actor.id) } {
                                                        (bi("收回", "Revoke"))
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="actor-add-title" {
            h2 #actor-add-title { (bi("登记人员", "Register an actor")) }
            form method="post" action=(PAGE) {
                (csrf(viewer))
                (register.alert())
                (text_field(&register, "id", bi("编号", "Id"), true, 64,
                    Some(bi("全库唯一，如 zhang.grid1", "unique in the store, such as zhang.grid1"))))
                (text_field(&register, "name", bi("名称", "Name"), true, 200, None))
                (select_field(&register, "kind", bi("类型", "Kind"), true, None, &kinds))
                button type="submit" { (bi("登记", "Register")) }
            }
        }
        section aria-labelledby="actor-grant-title" {
            h2 #actor-grant-title { (bi("授予角色", "Grant a role")) }
            form method="post" action="/admin/actors/grant" {
                (csrf(viewer))
                (grant.alert())
                (suggest_field(&grant, "actor", bi("人员编号", "Actor"), "actor-ids", 64))
                (actor_list(state, viewer, "actor-ids"))
                (select_field(&grant, "role", bi("角色", "Role"), true, Some(html! { "—" }), &roles))
                (select_field(&grant, "unit_id", bi("单位", "Unit"), true, Some(html! { "—" }), &units))
                button type="submit" { (bi("授予", "Grant")) }
            }
        }
    };
    area_page(viewer, "人员 Actors", body, refused)
}

async fn register(
    State(state): State<AppState>,
    viewer: Viewer,
    WriteOptions(options): WriteOptions,
    form: PageForm,
) -> Result<Response, PageError> {
    let result = async {
        let body = NewActor {
            id: text(&form, "id"),
            name: text(&form, "name"),
            kind: choice(&form, "kind", Some(ActorKindName::Person))?,
        };
        body.validate()?;
        org::register_actor_as(&state, &viewer.caller, body, options)
            .await
            .map(|_| ())
    }
    .await;
    Ok(answer(&state, &viewer, result, "actor-add", form))
}

async fn grant(
    State(state): State<AppState>,
    viewer: Viewer,
    WriteOptions(options): WriteOptions,
    form: PageForm,
) -> Result<Response, PageError> {
    let result = change(&state, &viewer, options, &form, true).await;
    Ok(answer(&state, &viewer, result, "actor-grant", form))
}

async fn revoke(
    State(state): State<AppState>,
    viewer: Viewer,
    WriteOptions(options): WriteOptions,
    form: PageForm,
) -> Result<Response, PageError> {
    let result = change(&state, &viewer, options, &form, false).await;
    Ok(answer(&state, &viewer, result, "actor-revoke", form))
}

async fn change(
    state: &AppState,
    viewer: &Viewer,
    options: civicflow_core::engine::SubmitOptions,
    form: &PageForm,
    granting: bool,
) -> Result<(), ApiError> {
    let body = GrantBody {
        role: text(form, "role"),
        unit_id: text(form, "unit_id"),
    };
    body.validate()?;
    let actor = text(form, "actor");
    org::change_grant(state, &viewer.caller, options, &actor, body, granting)
        .await
        .map(|_| ())
        // The one 404 without a field is the actor's: beside the actor's field.
        .map_err(|e| {
            if e.status == axum::http::StatusCode::NOT_FOUND && e.field.is_none() {
                e.field("actor")
            } else {
                e
            }
        })
}

/// 303 back to the page, or the page again with the refusal.
fn answer(
    state: &AppState,
    viewer: &Viewer,
    result: Result<(), ApiError>,
    name: &'static str,
    form: PageForm,
) -> Response {
    match result {
        Ok(()) => render::see_other(PAGE, None),
        Err(error) => render(state, viewer, Some(&Refused::new(name, error, form))),
    }
}
