//! The tokens page: the tokens acting at the caller's unit or below it (`GET /api/v1/tokens`),
//! a form to issue one (`POST /api/v1/tokens`: the answer is a page that shows the secret,
//! once) and a button to revoke each (`POST /api/v1/tokens/{id}/revoke`: refused from the next
//! request, its dashboard sessions with it).

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::html;
use schemars::JsonSchema;
use serde::Deserialize;

use super::actors::{actor_list, role_choices, unit_choices};
use super::{
    area_page, back, csrf, optional, select_field, suggest_field, text, text_field, when, Form,
    Refused,
};
use crate::dashboard::render::labels;
use crate::dashboard::render::{self, bi, Page, PageError};
use crate::dashboard::session::{PageForm, Viewer};
use crate::json::Validate;
use crate::path::Path;
use crate::request_id::WriteOptions;
use crate::routes::tokens::{
    self, IssueBody, IssuedTokenAnswer, RevokeBody, ADMINS, NAME_MAX, REASON_MAX,
};
use crate::routes::{Content, RouteSpec};
use crate::state::AppState;

const PAGE: &str = "/admin/tokens";

/// The routes of the tokens page.
pub(crate) fn routes() -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            method: Method::GET,
            path: PAGE,
            policy: ADMINS,
            summary: "The tokens page (community administrators): the tokens acting at the caller's unit or below it (name, actor, role, unit, issued, revoked; never a secret), with a form to issue one and a button to revoke each.",
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
            summary: "Issue a token (a form: actor, role, unit_id, name), as POST /api/v1/tokens: 201 with a page that shows its secret once (Cache-Control: no-store; nothing keeps it); a refusal is the tokens page again with the API's status and its message beside the field.",
            tag: "dashboard",
            request: Some(crate::openapi::schema_of::<IssueForm>),
            params: None,
            response: None,
            content: Content::Html,
            status: 201,
            also: &[],
            errors: &[403, 404, 409, 415, 422, 503],
            handler: post(issue),
        },
        RouteSpec {
            method: Method::POST,
            path: "/admin/tokens/{id}/revoke",
            policy: ADMINS,
            summary: "Revoke a token (a form: reason, optional), as POST /api/v1/tokens/{id}/revoke: refused from the very next request, its dashboard sessions too. 303 to the tokens page; 404 for a token outside the caller's subtree.",
            tag: "dashboard",
            request: Some(crate::openapi::schema_of::<RevokeForm>),
            params: None,
            response: None,
            content: Content::Html,
            status: 303,
            also: &[],
            errors: &[404, 415, 422, 503],
            handler: post(revoke),
        },
    ]
}

/// The form that issues a token.
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)] // Read as form pairs; the type describes the form in the OpenAPI document.
pub(crate) struct IssueForm {
    /// The page's CSRF token (with the session cookie).
    #[serde(default)]
    csrf: Option<String>,
    /// An actor of the org chart.
    #[schemars(length(min = 1, max = 64))]
    actor: String,
    /// A role the actor holds at the unit.
    #[schemars(length(min = 1, max = 64))]
    role: String,
    /// The unit it acts for.
    #[schemars(length(min = 1, max = 64))]
    unit_id: String,
    /// What the token is for.
    #[schemars(length(min = 1, max = NAME_MAX))]
    name: String,
}

/// The form that revokes a token.
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)] // Read as form pairs; the type describes the form in the OpenAPI document.
pub(crate) struct RevokeForm {
    /// The page's CSRF token (with the session cookie).
    #[serde(default)]
    csrf: Option<String>,
    /// Why (kept in the log); default: who revoked it on the dashboard.
    #[serde(default)]
    #[schemars(length(max = REASON_MAX))]
    reason: Option<String>,
}

async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    render(&state, &viewer, None).map_err(|e| PageError::from(e).viewer(&viewer))
}

fn render(
    state: &AppState,
    viewer: &Viewer,
    refused: Option<&Refused>,
) -> Result<Response, crate::error::ApiError> {
    let mut listed = tokens::tokens_answer(state, &viewer.caller)?.tokens;
    // The newest first; those in force before the revoked.
    listed.sort_by(|a, b| {
        a.revoked_at
            .is_some()
            .cmp(&b.revoked_at.is_some())
            .then_with(|| b.issued_at.cmp(&a.issued_at))
    });
    let roles = role_choices(state);
    let units = unit_choices(state, viewer);
    let issue = Form::new("token-add", &["actor", "role", "unit_id", "name"], refused);
    let revoke = Form::new("token-revoke", &[], refused);
    let body = html! {
        (back())
        h1 { (bi("访问令牌", "Access tokens")) }
        section aria-labelledby="token-add-title" {
            h2 #token-add-title { (bi("发放令牌", "Issue a token")) }
            form method="post" action=(PAGE) {
                (csrf(viewer))
                (issue.alert())
                (suggest_field(&issue, "actor", bi("人员编号", "Actor"), "token-actor-ids", 64))
                (actor_list(state, viewer, "token-actor-ids"))
                (select_field(&issue, "role", bi("角色", "Role"), true, Some(html! { "—" }), &roles))
                (select_field(&issue, "unit_id", bi("单位", "Unit"), true, Some(html! { "—" }), &units))
                (text_field(&issue, "name", bi("用途", "What it is for"), true, NAME_MAX,
                    Some(bi("如“李网格员的手机”", "such as \u{201c}Li's phone\u{201d}"))))
                p.hint { (bi("该人员须在该单位担任该角色。密钥只显示一次。", "The actor must hold the role at the unit. The secret is shown once.")) }
                button type="submit" { (bi("发放", "Issue")) }
            }
        }
        section aria-labelledby="tokens-title" {
            h2 #tokens-title { (bi("本单位及下级的令牌", "Tokens at your unit and below")) }
            (revoke.alert())
            div.table-wrap {
                table {
                    thead {
                        tr {
                            th scope="col" { (bi("用途", "Name")) }
                            th scope="col" { (bi("人员", "Actor")) }
                            th scope="col" { (bi("角色", "Role")) }
                            th scope="col" { (bi("单位", "Unit")) }
                            th scope="col" { (bi("发放时间", "Issued")) }
                            th scope="col" { (bi("撤销", "Revoked")) }
                        }
                    }
                    tbody {
                        @for token in &listed {
                            tr {
                                th scope="row" { (token.name) }
                                td { code { (token.actor) } }
                                td { (labels::role(&token.role)) }
                                td { code { (token.unit_id) } }
                                td { (when(&token.issued_at)) }
                                td {
                                    @if let Some(at) = &token.revoked_at {
                                        span.badge.revoked { (bi("已撤销", "revoked")) } " " (when(at))
                                    } @else {
                                        form.inline method="post" action={ "/admin/tokens/" (token.id) "/revoke" } {
                                            (csrf(viewer))
                                            button.secondary type="submit"
                                                aria-label={ "撤销 Revoke " (token.name) " (" (token.id) ")" } {
                                                (bi("撤销", "Revoke"))
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        @if listed.is_empty() {
                            tr { td colspan="6" { (bi("没有令牌。", "No tokens.")) } }
                        }
                    }
                }
            }
        }
    };
    Ok(area_page(viewer, "访问令牌 Access tokens", body, refused))
}

/// The page again with `refused`, or an error page when even that fails.
fn refuse(state: &AppState, viewer: &Viewer, refused: Refused) -> Response {
    render(state, viewer, Some(&refused))
        .unwrap_or_else(|e| PageError::from(e).viewer(viewer).into_response())
}

async fn issue(
    State(state): State<AppState>,
    viewer: Viewer,
    WriteOptions(options): WriteOptions,
    form: PageForm,
) -> Result<Response, PageError> {
    let result = async {
        let body = IssueBody {
            actor: text(&form, "actor"),
            role: text(&form, "role"),
            unit_id: text(&form, "unit_id"),
            name: text(&form, "name"),
        };
        body.validate()?;
        tokens::issue_as(&state, &viewer.caller, body, options).await
    }
    .await;
    match result {
        Ok(issued) => Ok(issued_page(&viewer, &issued)),
        Err(error) => Ok(refuse(
            &state,
            &viewer,
            Refused::new("token-add", error, form),
        )),
    }
}

/// The answer to issuing: the token, and its secret, shown this once.
fn issued_page(viewer: &Viewer, issued: &IssuedTokenAnswer) -> Response {
    let grant = &issued.grant;
    let body = html! {
        (back())
        h1 { (bi("令牌已发放", "Token issued")) }
        div.secret role="status" {
            p.warning {
                strong { (bi("请立即复制并妥善交给持有人：此密钥不会再次显示。", "Copy it now and hand it over safely: it is not shown again.")) }
            }
            label for="token-secret" { (bi("密钥", "Secret")) }
            input #token-secret type="text" readonly value=(issued.token) autocomplete="off" spellcheck="false";
        }
        dl.facts {
            dt { (bi("用途", "Name")) } dd { (grant.name) }
            dt { (bi("人员", "Actor")) } dd { code { (grant.actor) } }
            dt { (bi("角色", "Role")) } dd { (labels::role(&grant.role)) }
            dt { (bi("单位", "Unit")) } dd { code { (grant.unit_id) } }
            dt { (bi("发放时间", "Issued")) } dd { (when(&grant.issued_at)) }
            dt { (bi("令牌编号", "Token id")) } dd { code { (grant.id) } }
        }
        p { a href=(PAGE) { (bi("返回令牌列表", "Back to the tokens")) } }
    };
    Page::for_viewer(viewer, "令牌已发放 Token issued", body)
        .status(StatusCode::CREATED)
        .into_response()
}

async fn revoke(
    State(state): State<AppState>,
    viewer: Viewer,
    WriteOptions(options): WriteOptions,
    Path(id): Path<String>,
    form: PageForm,
) -> Result<Response, PageError> {
    let result = async {
        let reason = optional(&form, "reason").unwrap_or_else(|| {
            format!("revoked on the dashboard by {}", viewer.caller.acting.actor)
        });
        let body = RevokeBody {
            reason: Some(reason),
        };
        body.validate()?;
        tokens::revoke_as(&state, &viewer.caller, &id, body, options).await
    }
    .await;
    match result {
        Ok(_) => Ok(render::see_other(PAGE, None)),
        Err(error) => Ok(refuse(
            &state,
            &viewer,
            Refused::new("token-revoke", error, form),
        )),
    }
}
