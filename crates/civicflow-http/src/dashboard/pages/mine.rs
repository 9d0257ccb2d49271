//! "My requests": the cases the caller filed, newest first, each with its stage, its rating
//! and what it waits for from the caller, linked to its page (where a resident follows it
//! live until it is closed, and rates it).
//!
//! Which cases are the caller's is the engine's rule, not a new one: a case is read as the
//! caller (`Engine::read`, so `case_visible` decides what they may see: a resident, or the
//! civic app filing for them, sees exactly the cases they filed), and it is theirs when they
//! filed it (`CaseState::filed_by`, the rule by which `case_visible` shows a person their
//! cases). The candidates come from the case board's `filed` index (who filed which case,
//! newest first, at most [`MINE_MAX`]), each then read as the caller from its stream: the
//! cost is the caller's own cases, not the store's.

use axum::extract::State;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use civicflow_core::domain::case::{self, Case, CaseState};
use civicflow_core::CaseId;
use civicflow_projections::models::case_board;
use maud::html;

use super::case::rating_words;
use crate::dashboard::render::labels::{self, bi, named};
use crate::dashboard::render::{Page, PageError};
use crate::dashboard::session::Viewer;
use crate::error::{ApiError, ApiResult};
use crate::policy::Policy;
use crate::routes::reports::{fresh_view, projection_error, QueryParams};
use crate::routes::{Content, RouteSpec};
use crate::state::AppState;

/// The routes of "my requests".
pub(crate) fn routes() -> Vec<RouteSpec> {
    vec![RouteSpec {
        method: Method::GET,
        path: "/mine",
        policy: Policy::Authenticated,
        summary: "My requests: the cases the caller filed (as the engine's case_visible shows a resident the cases they filed), newest first, each with its stage, its rating and the actions waiting for the caller, linked to its page.",
        tag: "dashboard",
        request: None,
        params: None,
        response: None,
        content: Content::Html,
        status: 200,
        also: &[],
        errors: &[400, 503],
        handler: get(mine_page),
    }]
}

/// The most requests the page lists (the newest).
pub(crate) const MINE_MAX: usize = 500;

/// A case the caller filed, and the actions they may take on it now.
pub(crate) struct Mine {
    /// The case.
    pub state: CaseState,
    /// The names of the actions waiting for the caller.
    pub waiting: Vec<String>,
}

/// The cases `viewer` filed, newest first.
///
/// # Errors
/// 503 when the read model or the log cannot be read.
pub(crate) async fn filed(state: &AppState, viewer: &Viewer) -> ApiResult<Vec<Mine>> {
    let view = fresh_view(state, case_board::NAME).await?;
    let ids: Vec<CaseId> =
        case_board::filed_by(&view, &viewer.acting().actor, MINE_MAX).map_err(projection_error)?;
    drop(view);
    let acting = viewer.acting().clone();
    state
        .blocking(move |engine| {
            let org = engine.org();
            let definitions = engine.definitions();
            let mut mine = Vec::new();
            // Newest first, as the index gives them.
            for id in ids {
                let state = match engine.read::<Case>(&acting, &id) {
                    Ok(Some(state)) => state,
                    // Not the caller's to see (or gone): not theirs.
                    Ok(None) | Err(civicflow_core::engine::SubmitError::Rejected(_)) => continue,
                    Err(e) => return Err(ApiError::from(e)),
                };
                if state.filed_by != acting.actor {
                    continue;
                }
                let waiting = definitions
                    .get(&state.workflow)
                    .map(|definition| {
                        case::available_actions(&state, definition, &acting, &org)
                            .into_iter()
                            .map(|a| {
                                if a.name.trim().is_empty() {
                                    a.id.clone()
                                } else {
                                    a.name.clone()
                                }
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                mine.push(Mine { state, waiting });
            }
            Ok(mine)
        })
        .await?
}

async fn mine_page(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
) -> Result<Response, PageError> {
    let with_nav = |e: ApiError| PageError::from(e).viewer(&viewer);
    QueryParams::parse(&uri, &[]).map_err(with_nav)?;
    let mine = filed(&state, &viewer).await.map_err(with_nav)?;
    let registry = state.engine().definitions();
    let zone = state.zone();
    let workflow_name = |m: &Mine| {
        registry.get(&m.state.workflow).map_or_else(
            || html! { (m.state.workflow.id.as_str()) },
            |d| named(&d.name),
        )
    };
    let stage_name = |m: &Mine| {
        registry
            .get(&m.state.workflow)
            .and_then(|d| d.stage(&m.state.stage))
            .map_or_else(|| html! { (m.state.stage) }, |s| named(&s.name))
    };
    let body = html! {
        h1 { (bi("我的诉求", "My requests")) }
        p.note {
            (mine.len()) " " (bi("件由您提交", "filed by you")) " · "
            a href="/cases/new" { (bi("新建诉求", "File a new request")) }
        }
        div.table-wrap tabindex="0" role="region" aria-label="我的诉求列表 My requests, as a table" {
            table {
                caption { (bi("最新提交的在上；点标题查看办理进度、评价", "Newest first; open one to follow it and rate it")) }
                thead {
                    tr {
                        th scope="col" { (bi("标题", "Title")) }
                        th scope="col" { (bi("流程", "Workflow")) }
                        th scope="col" { (bi("环节", "Stage")) }
                        th scope="col" { (bi("提交时间", "Filed")) }
                        th scope="col" { (bi("满意度", "Rating")) }
                    }
                }
                tbody {
                    @for m in &mine {
                        tr {
                            td {
                                a href={ "/cases/" (m.state.id) } { (m.state.title) }
                                @if !m.waiting.is_empty() {
                                    br;
                                    span.badge.waiting {
                                        (bi("您可办理", "you may")) ": "
                                        @for (i, name) in m.waiting.iter().enumerate() {
                                            @if i > 0 { "、" }
                                            (named(name))
                                        }
                                    }
                                }
                            }
                            td { (workflow_name(m)) }
                            td {
                                (stage_name(m))
                                @if m.state.closed { " " span.badge.closed { (bi("已结束", "closed")) } }
                            }
                            td { (labels::time(&zone, m.state.opened_at)) }
                            td {
                                @if let Some(r) = m.state.rating { (rating_words(r)) } @else { "—" }
                            }
                        }
                    }
                    @if mine.is_empty() {
                        tr { td colspan="5" { (bi("您还没有提交过诉求。", "You have not filed a request yet.")) } }
                    }
                }
            }
        }
    };
    Ok(Page::for_viewer(&viewer, "我的诉求 My requests", body).into_response())
}
