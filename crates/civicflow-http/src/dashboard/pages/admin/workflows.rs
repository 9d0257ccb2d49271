//! The workflow versions page: every workflow and its versions, with where each comes from
//! (`GET /api/v1/workflows/{id}/versions`), and a form to upload a new version as TOML text
//! (`POST /api/v1/workflows` with `application/toml`).

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post};
use civicflow_core::domain::org::roles;
use maud::html;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{area_page, back, csrf, text_area, when, Form, Refused};
use crate::dashboard::render::labels::named;
use crate::dashboard::render::{self, bi, PageError};
use crate::dashboard::session::{PageForm, Viewer};
use crate::error::ApiResult;
use crate::policy::Policy;
use crate::request_id::WriteOptions;
use crate::routes::workflows::{self, OriginName, VersionAnswer};
use crate::routes::{Content, RouteSpec};
use crate::state::AppState;

const PAGE: &str = "/admin/workflows";

/// Who publishes a definition: as `POST /api/v1/workflows` (the core checks the top unit).
const PUBLISHERS: Policy = Policy::Roles(&[roles::COMMUNITY_ADMIN]);

/// The routes of the workflow versions page.
pub(crate) fn routes() -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            method: Method::GET,
            path: PAGE,
            policy: PUBLISHERS,
            summary: "The workflow versions page (community administrators): every workflow and its versions, where each comes from (configured, or published: when and by whom) and which is the newest, with a form to upload a new version as TOML.",
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
            policy: PUBLISHERS,
            summary: "Publish a workflow definition (a form: definition, its TOML as in docs/workflows.md), as POST /api/v1/workflows with application/toml (community administrators of a top unit): 303 to the page (also when the store had this very definition); a definition that does not validate is the page again, 422, with the key at fault beside the text.",
            tag: "dashboard",
            request: Some(crate::openapi::schema_of::<PublishForm>),
            params: None,
            response: None,
            content: Content::Html,
            status: 303,
            also: &[],
            errors: &[403, 413, 415, 422, 503],
            handler: post(publish),
        },
    ]
}

/// The form that publishes a definition.
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)] // Read as form pairs; the type describes the form in the OpenAPI document.
pub(crate) struct PublishForm {
    /// The page's CSRF token (with the session cookie).
    #[serde(default)]
    csrf: Option<String>,
    /// The definition as TOML (docs/workflows.md).
    #[schemars(length(min = 1))]
    definition: String,
}

async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    render(&state, &viewer, None)
        .await
        .map_err(|e| PageError::from(e).viewer(&viewer))
}

/// Every version of every workflow, oldest first, by workflow.
async fn versions(state: &AppState) -> ApiResult<Vec<(String, Vec<VersionAnswer>)>> {
    let ids: BTreeSet<String> = workflows::workflows_answer(state)
        .workflows
        .into_iter()
        .map(|w| w.id)
        .collect();
    let mut all = Vec::new();
    for id in ids {
        let versions = workflows::versions_answer(state, &id).await?.versions;
        all.push((id, versions));
    }
    Ok(all)
}

async fn render(
    state: &AppState,
    viewer: &Viewer,
    refused: Option<&Refused>,
) -> ApiResult<Response> {
    let all = versions(state).await?;
    let publish = Form::new("workflow-add", &["definition"], refused).rest("definition");
    let body = html! {
        (back())
        h1 { (bi("流程版本", "Workflow versions")) }
        section aria-labelledby="workflows-title" {
            h2 #workflows-title { (bi("流程及版本", "Workflows and their versions")) }
            div.table-wrap {
                table {
                    thead {
                        tr {
                            th scope="col" { (bi("流程", "Workflow")) }
                            th scope="col" { (bi("版本", "Version")) }
                            th scope="col" { (bi("名称", "Name")) }
                            th scope="col" { (bi("来源", "Origin")) }
                            th scope="col" { (bi("状态", "Status")) }
                        }
                    }
                    tbody {
                        @for (id, versions) in &all {
                            @for v in versions {
                                tr {
                                    th scope="row" { code { (id) } }
                                    td { (v.definition.version) }
                                    td { (named(&v.definition.name)) }
                                    td {
                                        @match v.origin {
                                            OriginName::Configured => (bi("内置或配置", "configured")),
                                            OriginName::Published => {
                                                (bi("已发布", "published"))
                                                @if let Some(at) = &v.published_at { " " (when(at)) }
                                                @if let Some(by) = &v.published_by {
                                                    " · " code { (by.actor) }
                                                }
                                            }
                                        }
                                    }
                                    td {
                                        @if v.definition.latest {
                                            span.badge.ok { (bi("最新", "newest")) }
                                        } @else { "—" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p.hint { (bi("新建案件使用最新版本；在办案件保留原版本。", "New cases get the newest version; open cases stay on theirs.")) }
        }
        section aria-labelledby="workflow-add-title" {
            h2 #workflow-add-title { (bi("上传新版本", "Upload a new version")) }
            form method="post" action=(PAGE) {
                (csrf(viewer))
                (text_area(&publish, "definition", bi("流程定义（TOML）", "Definition (TOML)"), 18,
                    bi("格式见 docs/workflows.md；同一流程的新版本号须高于现有各版本。",
                       "The format of docs/workflows.md; a new version of a workflow must be higher than every one in force.")))
                button type="submit" { (bi("发布", "Publish")) }
            }
        }
    };
    Ok(area_page(
        viewer,
        "流程版本 Workflow versions",
        body,
        refused,
    ))
}

async fn publish(
    State(state): State<AppState>,
    viewer: Viewer,
    WriteOptions(options): WriteOptions,
    form: PageForm,
) -> Result<Response, PageError> {
    // The text as typed (a TOML document's whitespace is its own).
    let definition = form.get("definition").unwrap_or_default().to_owned();
    let result = workflows::publish_as(
        &state,
        &viewer.caller,
        "application/toml",
        definition.as_bytes(),
        options,
    )
    .await;
    match result {
        Ok(_) => Ok(render::see_other(PAGE, None)),
        Err(error) => render(
            &state,
            &viewer,
            Some(&Refused::new("workflow-add", error, form)),
        )
        .await
        .map_err(|e| PageError::from(e).viewer(&viewer)),
    }
}
