//! The roles page: the roles in force (`GET /api/v1/roles`) and a form to define one
//! (`POST /api/v1/roles`).

use axum::extract::State;
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post};
use maud::html;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{area_page, back, csrf, text, text_field, Form, Refused};
use crate::dashboard::render::labels::named;
use crate::dashboard::render::{self, bi, PageError};
use crate::dashboard::session::{PageForm, Viewer};
use crate::json::Validate;
use crate::request_id::WriteOptions;
use crate::routes::org::{self, NewRole, ADMINS};
use crate::routes::{Content, RouteSpec};
use crate::state::AppState;

const PAGE: &str = "/admin/roles";

/// The routes of the roles page.
pub(crate) fn routes() -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            method: Method::GET,
            path: PAGE,
            policy: ADMINS,
            summary: "The roles page (community administrators): the built-in roles and those defined in the store, with a form to define one.",
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
            summary: "Define a role (a form: id, name), as POST /api/v1/roles: 303 to the roles page (also when it was defined already with that name); a refusal is the page again with the API's status and its message beside the field.",
            tag: "dashboard",
            request: Some(crate::openapi::schema_of::<DefineForm>),
            params: None,
            response: None,
            content: Content::Html,
            status: 303,
            also: &[],
            errors: &[409, 415, 422, 503],
            handler: post(define),
        },
    ]
}

/// The form that defines a role.
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)] // Read as form pairs; the type describes the form in the OpenAPI document.
pub(crate) struct DefineForm {
    /// The page's CSRF token (with the session cookie).
    #[serde(default)]
    csrf: Option<String>,
    /// Its id: a lowercase letter, then lowercase letters, digits and `_` (at most 64).
    #[schemars(length(min = 1, max = 64))]
    id: String,
    /// Its name.
    #[schemars(length(min = 1, max = 200))]
    name: String,
}

async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    Ok(render(&state, &viewer, None))
}

fn render(state: &AppState, viewer: &Viewer, refused: Option<&Refused>) -> Response {
    let roles = org::roles_answer(state).roles;
    let define = Form::new("role-add", &["id", "name"], refused);
    let body = html! {
        (back())
        h1 { (bi("角色", "Roles")) }
        section aria-labelledby="roles-title" {
            h2 #roles-title { (bi("现有角色", "Roles in force")) }
            div.table-wrap {
                table {
                    thead {
                        tr {
                            th scope="col" { (bi("编号", "Id")) }
                            th scope="col" { (bi("名称", "Name")) }
                            th scope="col" { (bi("来源", "Origin")) }
                        }
                    }
                    tbody {
                        @for role in &roles {
                            tr {
                                th scope="row" { code { (role.id) } }
                                td { (named(&role.name)) }
                                td {
                                    @if role.built_in { (bi("内置", "built in")) }
                                    @else { (bi("自定义", "defined")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="role-add-title" {
            h2 #role-add-title { (bi("定义角色", "Define a role")) }
            form method="post" action=(PAGE) {
                (csrf(viewer))
                (define.alert())
                (text_field(&define, "id", bi("编号", "Id"), true, 64,
                    Some(bi("小写字母开头，只含小写字母、数字和 _", "a lowercase letter, then lowercase letters, digits and _"))))
                (text_field(&define, "name", bi("名称", "Name"), true, 200,
                    Some(bi("中文在前，英文在后", "Chinese first, English beside it"))))
                button type="submit" { (bi("定义", "Define")) }
            }
        }
    };
    area_page(viewer, "角色 Roles", body, refused)
}

async fn define(
    State(state): State<AppState>,
    viewer: Viewer,
    WriteOptions(options): WriteOptions,
    form: PageForm,
) -> Result<Response, PageError> {
    let result = async {
        let body = NewRole {
            id: text(&form, "id"),
            name: text(&form, "name"),
        };
        body.validate()?;
        org::define_role_as(&state, &viewer.caller, body, options).await
    }
    .await;
    Ok(match result {
        Ok(_) => render::see_other(PAGE, None),
        Err(error) => render(
            &state,
            &viewer,
            Some(&Refused::new("role-add", error, form)),
        ),
    })
}
