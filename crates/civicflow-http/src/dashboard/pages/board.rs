//! The case board (the landing page of everyone who acts for a unit): the caller's open
//! cases in scope, what is due first at the top, overdue and escalated ones marked; filters
//! in the URL; pages; the same selection as CSV.
//!
//! The cases come from the case-board read model through the same scope as
//! `GET /api/v1/cases` (the caller's subtree, or a unit of it); which deadlines were escalated
//! from the overdue read model, as `GET /api/v1/units/{id}/overdue` reports them.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use civicflow_core::domain::org::roles;
use civicflow_core::domain::workflow::WorkflowId;
use civicflow_core::{CaseId, Timestamp, UnitId};
use civicflow_projections::models::case_board::{self, CaseFilter, CaseRow, CaseStatus};
use civicflow_projections::models::overdue::{self, OverdueKind};
use civicflow_projections::models::page::{Page as PageRequest, PAGE_MAX};
use civicflow_projections::models::unit_inbox::Subject;
use maud::{html, Markup};
use serde_json::{json, Value};

use crate::dashboard::render::labels::{self, bi, named};
use crate::dashboard::render::{Page, PageError};
use crate::dashboard::session::Viewer;
use crate::error::{ApiError, ApiResult};
use crate::policy::Policy;
use crate::routes::reports::{
    fresh_view, projection_error, query_param, unit_in_scope, QueryParams,
};
use crate::routes::{Content, RouteSpec};
use crate::state::AppState;

/// Rows on a page of the board.
pub(crate) const ROWS_PER_PAGE: usize = 50;

/// The query parameters of the board and its CSV.
const PARAMS: &[&str] = &["stage", "workflow", "unit", "overdue", "page"];

/// The routes of the board.
pub(crate) fn routes() -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            method: Method::GET,
            path: "/board",
            policy: Policy::Roles(roles::ACT_FOR_UNITS),
            summary: "The case board page: the caller's open cases in scope (its subtree), what is due first at the top, overdue and escalated ones marked. Filters in the query: stage, workflow, unit (a unit of the caller's subtree), overdue (true|false); page (from 1, 50 rows each).",
            tag: "dashboard",
            request: None,
            params: Some(board_params),
            response: None,
            content: Content::Html,
            status: 200,
            also: &[],
            errors: &[400, 404, 503],
            handler: get(board_page),
        },
        RouteSpec {
            method: Method::GET,
            path: "/board.csv",
            policy: Policy::Roles(roles::ACT_FOR_UNITS),
            summary: "The case board's selection as CSV (UTF-8 with a byte-order mark, for spreadsheets): every row the same filters select, in the board's order, every page. Takes the board's query parameters (page is ignored).",
            tag: "dashboard",
            request: None,
            params: Some(board_params),
            response: None,
            content: Content::Csv,
            status: 200,
            also: &[],
            errors: &[400, 404, 503],
            handler: get(board_csv),
        },
    ]
}

fn board_params() -> Value {
    json!([
        query_param(
            "stage",
            false,
            json!({"type": "string"}),
            "only cases at this stage (its id)"
        ),
        query_param(
            "workflow",
            false,
            json!({"type": "string"}),
            "only cases of this workflow (its id)"
        ),
        query_param(
            "unit",
            false,
            json!({"type": "string"}),
            "only cases of this unit's subtree (a unit of the caller's subtree)"
        ),
        query_param(
            "overdue",
            false,
            json!({"type": "string", "enum": ["true", "false", ""]}),
            "true: only cases past their deadline or escalated"
        ),
        query_param(
            "page",
            false,
            json!({"type": "string", "pattern": "^[0-9]*$"}),
            "the page, from 1"
        ),
    ])
}

/// The board's filters, as the query gives them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filters {
    /// Only this stage.
    pub stage: Option<String>,
    /// Only this workflow.
    pub workflow: Option<WorkflowId>,
    /// Only this unit's subtree (in the caller's scope).
    pub unit: Option<UnitId>,
    /// Only overdue or escalated cases.
    pub overdue: bool,
    /// The page, from 1.
    pub page: usize,
}

impl Filters {
    /// The filters of `uri`, the unit checked against the caller's scope.
    ///
    /// # Errors
    /// 400 naming the parameter; 404 for a unit outside the caller's scope.
    pub(crate) fn parse(state: &AppState, viewer: &Viewer, uri: &Uri) -> ApiResult<Self> {
        let params = QueryParams::parse(uri, PARAMS)?;
        let unit = params
            .get("unit")
            .map(|u| unit_in_scope(&state.engine().org(), &viewer.caller, u, "unit"))
            .transpose()?;
        let workflow = params
            .get("workflow")
            .map(|w| {
                WorkflowId::new(w)
                    .map_err(|e| ApiError::bad_request(format!("workflow: {e}")).field("workflow"))
            })
            .transpose()?;
        let page = match params.get("page") {
            None => 1,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|p| (1..=1_000_000).contains(p))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "page must be a whole number from 1, not {text:?}"
                    ))
                    .field("page")
                })?,
        };
        Ok(Self {
            stage: params.get("stage").map(str::to_owned),
            workflow,
            unit,
            overdue: params.flag("overdue")?,
            page,
        })
    }

    /// The query string of these filters at `page` (for links that keep them).
    fn query(&self, page: usize) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(stage) = &self.stage {
            pairs.push(("stage", stage.clone()));
        }
        if let Some(workflow) = &self.workflow {
            pairs.push(("workflow", workflow.as_str().to_owned()));
        }
        if let Some(unit) = &self.unit {
            pairs.push(("unit", unit.as_str().to_owned()));
        }
        if self.overdue {
            pairs.push(("overdue", "true".into()));
        }
        if page > 1 {
            pairs.push(("page", page.to_string()));
        }
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Percent-encodes a query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A case on the board.
#[derive(Debug, Clone)]
pub(crate) struct BoardRow {
    /// The case-board row.
    pub row: CaseRow,
    /// Its running deadline is past due.
    pub overdue: bool,
    /// Its running deadline was escalated (or breached) to the supervising unit.
    pub escalated: bool,
}

/// The selection: every open case in scope that passes the filters, due first (cases with no
/// running deadline last, oldest first), and which of them are overdue or escalated.
///
/// Linear in the cases in scope: the board reads the case-board model's rows of the scope
/// once (`docs/benchmarks.md`, "Dashboard": 10,000 open cases in scope).
pub(crate) async fn select(
    state: &AppState,
    viewer: &Viewer,
    filters: &Filters,
) -> ApiResult<Vec<BoardRow>> {
    let org = state.engine().org();
    let root = filters
        .unit
        .clone()
        .unwrap_or_else(|| viewer.acting().unit.clone());
    let units = org.subtree(&root);
    let mut filter = CaseFilter::all()
        .status(CaseStatus::Open)
        .within(units.iter().cloned());
    if let Some(workflow) = &filters.workflow {
        filter = filter.workflow(workflow.clone());
    }
    let now = state.engine().now();
    let escalated = escalated_cases(state, &units, now).await?;
    let view = fresh_view(state, case_board::NAME).await?;
    let mut rows = Vec::new();
    let mut page = PageRequest::first(PAGE_MAX);
    loop {
        let listed = case_board::list(&view, &filter, &page).map_err(projection_error)?;
        for row in listed.items {
            if filters.stage.as_ref().is_some_and(|s| *s != row.stage) {
                continue;
            }
            let overdue = row.due_at.is_some_and(|due| due < now);
            let escalated = escalated
                .get(&row.id)
                .is_some_and(|seqs| seqs.contains(&row.deadline_seq));
            if filters.overdue && !(overdue || escalated) {
                continue;
            }
            rows.push(BoardRow {
                row,
                overdue,
                escalated,
            });
        }
        match listed.next {
            Some(next) => page = PageRequest::after(next, PAGE_MAX),
            None => break,
        }
    }
    rows.sort_by(|a, b| {
        let due = |r: &BoardRow| r.row.due_at.map_or(i64::MAX, Timestamp::as_unix_micros);
        due(a)
            .cmp(&due(b))
            .then(a.row.opened_at.cmp(&b.row.opened_at))
            .then(a.row.id.cmp(&b.row.id))
    });
    Ok(rows)
}

/// The deadlines (case, seq) escalated or breached in `units`.
async fn escalated_cases(
    state: &AppState,
    units: &[UnitId],
    now: Timestamp,
) -> ApiResult<BTreeMap<CaseId, BTreeSet<u32>>> {
    let view = fresh_view(state, overdue::NAME).await?;
    let report = overdue::report(&view, units, now).map_err(projection_error)?;
    let mut escalated: BTreeMap<CaseId, BTreeSet<u32>> = BTreeMap::new();
    for item in report.items {
        if let (OverdueKind::Escalated | OverdueKind::Breached, Subject::Case(case)) =
            (item.kind, &item.subject)
        {
            escalated.entry(*case).or_default().insert(item.seq);
        }
    }
    Ok(escalated)
}

/// The workflows' names and stages' names, for labels and the filter's choices.
struct Names {
    workflows: BTreeMap<String, String>,
    stages: BTreeMap<String, String>,
}

fn names(state: &AppState) -> Names {
    let registry = state.engine().definitions();
    let mut workflows = BTreeMap::new();
    let mut stages = BTreeMap::new();
    for definition in registry.latest_all() {
        workflows.insert(definition.id.as_str().to_owned(), definition.name.clone());
        for stage in &definition.stages {
            stages
                .entry(stage.id.clone())
                .or_insert_with(|| stage.name.clone());
        }
    }
    Names { workflows, stages }
}

async fn board_page(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
) -> Result<Response, PageError> {
    let with_nav = |e: ApiError| PageError::from(e).viewer(&viewer);
    let filters = Filters::parse(&state, &viewer, &uri).map_err(with_nav)?;
    let rows = select(&state, &viewer, &filters).await.map_err(with_nav)?;
    let names = names(&state);
    let zone = state.zone();
    let pages = rows.len().div_ceil(ROWS_PER_PAGE).max(1);
    let page = filters.page.min(pages);
    let shown = rows
        .iter()
        .skip((page - 1) * ROWS_PER_PAGE)
        .take(ROWS_PER_PAGE);
    let overdue_count = rows.iter().filter(|r| r.overdue || r.escalated).count();
    let units = state.engine().org().subtree(&viewer.acting().unit);
    let csv_query = filters.query(1);
    let body = html! {
        h1 { (bi("案件看板", "Case board")) }
        p.note {
            (rows.len()) " " (bi("件在办", "open cases")) " · "
            (overdue_count) " " (bi("件逾期或已升级", "overdue or escalated"))
        }
        form.filters method="get" action="/board" aria-label="筛选 Filters" {
            div.field {
                label for="f-stage" { (bi("环节", "Stage")) }
                select #f-stage name="stage" {
                    option value="" { "—" }
                    @for (id, name) in &names.stages {
                        option value=(id) selected[filters.stage.as_deref() == Some(id.as_str())] { (name) }
                    }
                }
            }
            div.field {
                label for="f-workflow" { (bi("流程", "Workflow")) }
                select #f-workflow name="workflow" {
                    option value="" { "—" }
                    @for (id, name) in &names.workflows {
                        option value=(id) selected[filters.workflow.as_ref().is_some_and(|w| w.as_str() == id)] { (name) }
                    }
                }
            }
            div.field {
                label for="f-unit" { (bi("单位", "Unit")) }
                select #f-unit name="unit" {
                    option value="" { "—" }
                    @for unit in &units {
                        option value=(unit.as_str()) selected[filters.unit.as_ref() == Some(unit)] { (unit.as_str()) }
                    }
                }
            }
            div.field {
                label for="f-overdue" { (bi("只看逾期", "Overdue only")) }
                select #f-overdue name="overdue" {
                    option value="" { "—" }
                    option value="true" selected[filters.overdue] { (bi("是", "yes")) }
                }
            }
            button type="submit" { (bi("筛选", "Filter")) }
            a.button href={ "/board.csv" @if !csv_query.is_empty() { "?" (csv_query) } } download {
                (bi("导出 CSV", "Export CSV"))
            }
        }
        div.table-wrap {
            table {
                caption { (bi("按期限排序，最先到期的在上", "Sorted by deadline, what is due first at the top")) }
                thead {
                    tr {
                        th scope="col" { (bi("标题", "Title")) }
                        th scope="col" { (bi("流程", "Workflow")) }
                        th scope="col" { (bi("环节", "Stage")) }
                        th scope="col" { (bi("主办单位", "Lead unit")) }
                        th scope="col" { (bi("期限", "Deadline")) }
                    }
                }
                tbody {
                    @for r in shown {
                        tr {
                            td { a href={ "/cases/" (r.row.id) } { (r.row.title) } }
                            td { (workflow_name(&names, &r.row)) }
                            td { (stage_name(&names, &r.row.stage)) }
                            td { (r.row.lead.as_str()) }
                            td {
                                @if let Some(due) = r.row.due_at {
                                    (labels::time(&zone, due))
                                } @else { "—" }
                                @if r.overdue { " " span.badge.overdue { (bi("逾期", "overdue")) } }
                                @if r.escalated { " " span.badge.escalated { (bi("已升级", "escalated")) } }
                            }
                        }
                    }
                    @if rows.is_empty() {
                        tr { td colspan="5" { (bi("没有符合条件的在办案件。", "No open case matches.")) } }
                    }
                }
            }
        }
        (pager(&filters, page, pages))
    };
    Ok(Page::for_viewer(&viewer, "案件看板 Case board", body).into_response())
}

fn workflow_name(names: &Names, row: &CaseRow) -> Markup {
    names
        .workflows
        .get(row.workflow.id.as_str())
        .map_or_else(|| html! { (row.workflow.id.as_str()) }, |n| named(n))
}

fn stage_name(names: &Names, stage: &str) -> Markup {
    names
        .stages
        .get(stage)
        .map_or_else(|| html! { (stage) }, |n| named(n))
}

fn pager(filters: &Filters, page: usize, pages: usize) -> Markup {
    html! {
        nav.pager aria-label="分页 Pages" {
            @if page > 1 {
                a href={ "/board?" (filters.query(page - 1)) } rel="prev" { (bi("上一页", "Previous")) }
            }
            span { (bi("第", "Page")) " " (page) " / " (pages) }
            @if page < pages {
                a href={ "/board?" (filters.query(page + 1)) } rel="next" { (bi("下一页", "Next")) }
            }
        }
    }
}

async fn board_csv(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
) -> Result<Response, ApiError> {
    let filters = Filters::parse(&state, &viewer, &uri)?;
    let rows = select(&state, &viewer, &filters).await?;
    let zone = state.zone();
    // A byte-order mark, so that spreadsheets read the Chinese as UTF-8.
    let mut out =
        String::from("\u{feff}id,title,workflow,stage,lead_unit,due_at,overdue,escalated\r\n");
    for r in &rows {
        let fields = [
            r.row.id.to_string(),
            r.row.title.clone(),
            r.row.workflow.to_string(),
            r.row.stage.clone(),
            r.row.lead.as_str().to_owned(),
            r.row.due_at.map(|d| zone.format(d)).unwrap_or_default(),
            r.overdue.to_string(),
            r.escalated.to_string(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    let mut response = (StatusCode::OK, out).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"civicflow-board.csv\""),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break; a text
/// a spreadsheet would read as a formula (`=`, `+`, `-`, `@` first) gets a leading `'`.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=1+1"), "'=1+1");
        assert_eq!(csv_field("-2,3"), "\"'-2,3\"");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
    }

    #[test]
    fn query_values_are_encoded() {
        let filters = Filters {
            stage: Some("in progress&x=1".into()),
            overdue: true,
            page: 1,
            ..Filters::default()
        };
        assert_eq!(
            filters.query(2),
            "stage=in%20progress%26x%3D1&overdue=true&page=2"
        );
    }
}
