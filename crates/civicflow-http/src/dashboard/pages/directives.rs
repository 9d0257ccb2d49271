//! Directives (指令层层下达) as pages: the directives the caller may see with their progress,
//! one directive's roll-up down the chain (community → grid → enterprise → shop) as a nested
//! tree, the forms to acknowledge and report the caller's unit's part, and the form to issue
//! a new one.
//!
//! Every read is the API's own answer (`routes::directives::visible` and `progress`, with the
//! directive's sight), every write the API's engine command (`issue_directive`,
//! `acknowledge_part`, `report_part`): a form's fields are read as the JSON body of the API
//! twin would be, with the same checks, and a refusal is the API's error, shown beside the
//! field it names.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use civicflow_core::calendar::parse_rfc3339;
use civicflow_core::domain::directive::RESPONDERS;
use civicflow_core::domain::org::{roles, OrgChart};
use civicflow_core::{Timestamp, UnitId};
use civicflow_projections::models::page::{Cursor, Page as PageRequest, PAGE_MAX};
use maud::{html, Markup};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::dashboard::render::{self, bi, see_other, Page, PageError};
use crate::dashboard::session::{PageForm, Viewer};
use crate::error::{ApiError, ApiResult};
use crate::json::Validate;
use crate::path::Path;
use crate::policy::Policy;
use crate::request_id::WriteOptions;
use crate::routes::directives::{
    self as api, AcknowledgeBody, DirectiveKindName, DirectiveSummaryAnswer, DirectiveTreeAnswer,
    IssueBody, PartAnswer, ReportBody, SightName, TEXT_MAX, TITLE_MAX,
};
use crate::routes::reports::{projection_error, QueryParams};
use crate::routes::{Content, RouteSpec};
use crate::state::AppState;

/// The routes of the directive pages.
pub(crate) fn routes() -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            method: Method::GET,
            path: "/directives",
            policy: Policy::Roles(roles::ACT_FOR_UNITS),
            summary: "The directives page: the directives the caller's unit may see (as GET /api/v1/directives), newest first, each with its issuer, kind and progress, linking to each.",
            tag: "dashboard",
            request: None,
            params: None,
            response: None,
            content: Content::Html,
            status: 200,
            also: &[],
            errors: &[400, 503],
            handler: get(list_page),
        },
        RouteSpec {
            method: Method::GET,
            path: "/directives/new",
            policy: Policy::Authenticated,
            summary: "The form to issue a directive (POST /directives). Who may issue is the engine's decision when the form is sent, as for POST /api/v1/directives.",
            tag: "dashboard",
            request: None,
            params: None,
            response: None,
            content: Content::Html,
            status: 200,
            also: &[],
            errors: &[400],
            handler: get(new_page),
        },
        RouteSpec {
            method: Method::POST,
            path: "/directives",
            policy: Policy::Authenticated,
            summary: "Issue a directive (a form: csrf, title, kind, within, body, unit_id): the same command as POST /api/v1/directives. 303 to the directive's page; a refusal is the form again with the API's status and the error beside the field it names.",
            tag: "dashboard",
            request: Some(crate::openapi::schema_of::<IssueForm>),
            params: None,
            response: None,
            content: Content::Html,
            status: 303,
            also: &[],
            errors: &[400, 404, 409, 413, 415, 422, 503],
            handler: post(issue),
        },
        RouteSpec {
            method: Method::GET,
            path: "/directives/{id}",
            policy: Policy::Roles(roles::ACT_FOR_UNITS),
            summary: "A directive's page: its roll-up down the chain as a nested tree of the parts the caller sees (as GET /api/v1/directives/{id}), each unit with its state (acknowledged, reported, overdue) and its subtree's counts; the forms to acknowledge and report the caller's unit's part. 404 as the API.",
            tag: "dashboard",
            request: None,
            params: None,
            response: None,
            content: Content::Html,
            status: 200,
            also: &[],
            errors: &[400, 404, 503],
            handler: get(directive_page),
        },
        RouteSpec {
            method: Method::POST,
            path: "/directives/{id}/acknowledge",
            policy: Policy::Authenticated,
            summary: "Acknowledge the caller's unit's part of a directive (a form: csrf, note): the same command as POST /api/v1/directives/{id}/acknowledge. 303 to the directive's page; a refusal is the page again with the API's status and the error beside the form.",
            tag: "dashboard",
            request: Some(crate::openapi::schema_of::<AcknowledgeForm>),
            params: None,
            response: None,
            content: Content::Html,
            status: 303,
            also: &[],
            errors: &[400, 404, 409, 413, 415, 422, 503],
            handler: post(acknowledge),
        },
        RouteSpec {
            method: Method::POST,
            path: "/directives/{id}/report",
            policy: Policy::Authenticated,
            summary: "Report the caller's unit's part of a directive done (a form: csrf, note): the same command as POST /api/v1/directives/{id}/report. 303 to the directive's page; a refusal is the page again with the API's status and the error beside the note.",
            tag: "dashboard",
            request: Some(crate::openapi::schema_of::<ReportForm>),
            params: None,
            response: None,
            content: Content::Html,
            status: 303,
            also: &[],
            errors: &[400, 404, 409, 413, 415, 422, 503],
            handler: post(report),
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// The forms, as the OpenAPI document describes them

/// The form that issues a directive (`POST /directives`).
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)] // Read as form pairs; the type describes the form in the OpenAPI document.
pub(crate) struct IssueForm {
    /// The CSRF token of the page the form is on (needed with the session cookie only).
    #[serde(default)]
    #[schemars(length(max = 64))]
    csrf: Option<String>,
    /// Its title.
    #[schemars(length(min = 1, max = TITLE_MAX))]
    title: String,
    /// What it is about.
    kind: DirectiveKindName,
    /// How long each unit has to report done (`3 working days`, `8 working hours`, `48 hours`).
    #[schemars(length(min = 1, max = 64))]
    within: String,
    /// What to do.
    #[serde(default)]
    #[schemars(length(max = TEXT_MAX))]
    body: Option<String>,
    /// The issuing unit: the caller's (empty or left out) or one below it.
    #[serde(default)]
    #[schemars(length(max = 64))]
    unit_id: Option<String>,
}

/// The form that acknowledges the caller's unit's part.
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)] // Read as form pairs; the type describes the form in the OpenAPI document.
pub(crate) struct AcknowledgeForm {
    /// The CSRF token of the page the form is on (needed with the session cookie only).
    #[serde(default)]
    #[schemars(length(max = 64))]
    csrf: Option<String>,
    /// A note with it.
    #[serde(default)]
    #[schemars(length(max = TEXT_MAX))]
    note: Option<String>,
}

/// The form that reports the caller's unit's part done.
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)] // Read as form pairs; the type describes the form in the OpenAPI document.
pub(crate) struct ReportForm {
    /// The CSRF token of the page the form is on (needed with the session cookie only).
    #[serde(default)]
    #[schemars(length(max = 64))]
    csrf: Option<String>,
    /// What was done.
    #[schemars(length(min = 1, max = TEXT_MAX))]
    note: String,
}

/// A form's fields read as the API twin's JSON body: each field a string, those in
/// `optional` left out when empty, a field given twice refused; then the body's own checks.
///
/// # Errors
/// 400 naming the field at fault, as the API would for the same body.
pub(crate) fn typed<T: DeserializeOwned + Validate>(
    form: &PageForm,
    optional: &[&str],
) -> ApiResult<T> {
    let mut object = Map::new();
    for (name, value) in &form.0 {
        if object.contains_key(name) {
            return Err(
                ApiError::bad_request(format!("the form gives {name} twice")).field(name.clone()),
            );
        }
        if value.is_empty() && optional.contains(&name.as_str()) {
            continue;
        }
        object.insert(name.clone(), Value::String(value.clone()));
    }
    let bytes = serde_json::to_vec(&Value::Object(object))
        .map_err(|e| ApiError::internal(format!("a form as JSON: {e}")))?;
    let body: T = crate::json::parse(&bytes)?;
    body.validate()?;
    Ok(body)
}

// ---------------------------------------------------------------------------------------------
// Words

/// Every kind, in the order the form offers them.
const KINDS: [DirectiveKindName; 6] = [
    DirectiveKindName::EpidemicPrevention,
    DirectiveKindName::PartyService,
    DirectiveKindName::ConsumerProtection,
    DirectiveKindName::StaffTraining,
    DirectiveKindName::SocialStability,
    DirectiveKindName::Other,
];

/// A kind's name in the API, and in words.
fn kind_words(kind: DirectiveKindName) -> (&'static str, &'static str, &'static str) {
    match kind {
        DirectiveKindName::EpidemicPrevention => {
            ("epidemic_prevention", "疫情防控", "epidemic prevention")
        }
        DirectiveKindName::PartyService => ("party_service", "党群服务", "party service"),
        DirectiveKindName::ConsumerProtection => {
            ("consumer_protection", "消费维权", "consumer protection")
        }
        DirectiveKindName::StaffTraining => ("staff_training", "员工培训", "staff training"),
        DirectiveKindName::SocialStability => ("social_stability", "社会稳定", "social stability"),
        DirectiveKindName::Other => ("other", "其他", "other"),
    }
}

fn kind_label(kind: DirectiveKindName) -> Markup {
    let (_, zh, en) = kind_words(kind);
    bi(zh, en)
}

/// A unit's name as the org chart has it (its id when it is no longer there), with its id.
pub(crate) fn unit_label(org: &OrgChart, id: &str) -> Markup {
    let name = UnitId::new(id)
        .ok()
        .and_then(|unit| org.unit(&unit).map(|u| u.name.clone()));
    html! {
        @if let Some(name) = name { (name) " " span.hint { "(" (id) ")" } } @else { (id) }
    }
}

/// A time the API wrote (RFC 3339 in the calendar's zone) as people read it.
pub(crate) fn when(text: &str) -> Markup {
    let short: String = text.chars().take(16).collect::<String>().replace('T', " ");
    html! { time datetime=(text) { (short) } }
}

// ---------------------------------------------------------------------------------------------
// The list

/// Every directive the caller may see, newest first: the API's pages, one after another.
async fn all_visible(state: &AppState, viewer: &Viewer) -> ApiResult<Vec<DirectiveSummaryAnswer>> {
    let mut items = Vec::new();
    let mut page = PageRequest::first(PAGE_MAX);
    loop {
        let answer = api::visible(state, &viewer.caller, &page).await?;
        items.extend(answer.items);
        match answer.next {
            Some(next) => {
                let cursor = next.parse::<Cursor>().map_err(|e| {
                    projection_error(civicflow_projections::ProjectionError::Query {
                        field: "cursor",
                        reason: e.to_string(),
                    })
                })?;
                page = PageRequest::after(cursor, PAGE_MAX);
            }
            None => break,
        }
    }
    Ok(items)
}

async fn list_page(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
) -> Result<Response, PageError> {
    let with_nav = |e: ApiError| PageError::from(e).viewer(&viewer);
    QueryParams::parse(&uri, &[]).map_err(with_nav)?;
    let items = all_visible(&state, &viewer).await.map_err(with_nav)?;
    let org = state.engine().org();
    let body = html! {
        h1 { (bi("督办指令", "Directives")) }
        p { a.button href="/directives/new" { (bi("下达新指令", "Issue a directive")) } }
        div.table-wrap {
            table {
                caption { (bi("本单位可见的指令，最新的在上", "The directives your unit may see, newest first")) }
                thead {
                    tr {
                        th scope="col" { (bi("标题", "Title")) }
                        th scope="col" { (bi("类别", "Kind")) }
                        th scope="col" { (bi("下达单位", "Issued by")) }
                        th scope="col" { (bi("下达时间", "Issued")) }
                        th scope="col" { (bi("进度", "Progress")) }
                    }
                }
                tbody {
                    @for d in &items {
                        tr {
                            td { a href={ "/directives/" (d.id) } { (d.title) } }
                            td { (kind_label(d.kind)) }
                            td { (unit_label(&org, &d.issued_by)) }
                            td { (when(&d.issued_at)) }
                            td { (progress_words(d)) }
                        }
                    }
                    @if items.is_empty() {
                        tr { td colspan="5" { (bi("没有可见的指令。", "No directive to show.")) } }
                    }
                }
            }
        }
    };
    Ok(Page::for_viewer(&viewer, "督办指令 Directives", body).into_response())
}

/// A directive's totals in words: acknowledged, reported, missed of its units, and done.
fn progress_words(d: &DirectiveSummaryAnswer) -> Markup {
    html! {
        span.counts {
            (bi("签收", "acknowledged")) " " (d.acknowledged) "/" (d.units) " · "
            (bi("已报告", "reported")) " " (d.reported) "/" (d.units)
        }
        @if d.missed > 0 {
            " " span.badge.overdue { (bi("逾期", "overdue")) " " (d.missed) }
        }
        @if d.complete {
            " " span.badge.ok { (bi("已完成", "complete")) }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Issuing

/// What the issue form shows: the values sent back and the error, if any.
#[derive(Debug, Default)]
struct IssueValues {
    title: String,
    kind: String,
    within: String,
    body: String,
    unit_id: String,
}

impl IssueValues {
    fn of(form: &PageForm) -> Self {
        let get = |name: &str| form.get(name).unwrap_or_default().to_owned();
        Self {
            title: get("title"),
            kind: get("kind"),
            within: get("within"),
            body: get("body"),
            unit_id: get("unit_id"),
        }
    }
}

/// The error beside `field`, if it is the one at fault.
fn error_for<'e>(error: Option<&'e ApiError>, field: &str) -> Option<&'e ApiError> {
    error.filter(|e| e.field.as_deref() == Some(field))
}

/// An error no field of `fields` is named by: shown at the top of its form.
fn general_error<'e>(error: Option<&'e ApiError>, fields: &[&str]) -> Option<&'e ApiError> {
    error.filter(|e| !e.field.as_deref().is_some_and(|f| fields.contains(&f)))
}

fn field_error(id: &str, error: Option<&ApiError>) -> Markup {
    html! {
        @if let Some(error) = error {
            p.error id={ (id) "-error" } role="alert" { (error.message) }
        }
    }
}

fn form_error(error: Option<&ApiError>) -> Markup {
    html! {
        @if let Some(error) = error {
            p.error role="alert" {
                @if let Some(field) = &error.field { strong { (field) } ": " }
                (error.message)
            }
        }
    }
}

const ISSUE_FIELDS: [&str; 5] = ["title", "kind", "within", "body", "unit_id"];

fn issue_markup(
    viewer: &Viewer,
    org: &OrgChart,
    values: &IssueValues,
    error: Option<&ApiError>,
) -> Markup {
    let described = |field: &str| error_for(error, field).map(|_| format!("d-{field}-error"));
    let invalid = |field: &str| error_for(error, field).map(|_| "true");
    let units = org.subtree(&viewer.acting().unit);
    html! {
        h1 { (bi("下达指令", "Issue a directive")) }
        p.hint { (bi("指令下达至所选单位以下的每一级单位，各单位须在期限内报告完成。", "The directive goes to every unit of the chain below the chosen unit; each must report done within the time given.")) }
        form method="post" action="/directives" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            (form_error(general_error(error, &ISSUE_FIELDS)))
            div.field {
                label for="d-title" { (bi("标题", "Title")) " " span.required { (bi("必填", "required")) } }
                input #d-title type="text" name="title" required maxlength=(TITLE_MAX) value=(values.title)
                    aria-describedby=[described("title")] aria-invalid=[invalid("title")];
                (field_error("d-title", error_for(error, "title")))
            }
            div.field {
                label for="d-kind" { (bi("类别", "Kind")) " " span.required { (bi("必填", "required")) } }
                select #d-kind name="kind" required aria-describedby=[described("kind")] aria-invalid=[invalid("kind")] {
                    @for kind in KINDS {
                        @let (value, zh, en) = kind_words(kind);
                        option value=(value) selected[values.kind == value] { (zh) " " (en) }
                    }
                }
                (field_error("d-kind", error_for(error, "kind")))
            }
            div.field {
                label for="d-within" { (bi("完成期限", "Report within")) " " span.required { (bi("必填", "required")) } }
                input #d-within type="text" name="within" required maxlength="64" value=(values.within)
                    placeholder="3 working days"
                    aria-describedby={ "d-within-hint" @if described("within").is_some() { " d-within-error" } }
                    aria-invalid=[invalid("within")];
                p.hint #d-within-hint { (bi("例如 3 working days、8 working hours、48 hours；不超过一年。", "e.g. 3 working days, 8 working hours, 48 hours; at most a year.")) }
                (field_error("d-within", error_for(error, "within")))
            }
            div.field {
                label for="d-unit" { (bi("下达单位", "Issuing unit")) }
                select #d-unit name="unit_id" aria-describedby=[described("unit_id")] aria-invalid=[invalid("unit_id")] {
                    option value="" { (bi("本单位", "my unit")) " (" (viewer.acting().unit.as_str()) ")" }
                    @for unit in units.iter().skip(1) {
                        @let name = org.unit(unit).map(|u| u.name.clone()).unwrap_or_default();
                        option value=(unit.as_str()) selected[values.unit_id == unit.as_str()] { (name) " (" (unit.as_str()) ")" }
                    }
                }
                (field_error("d-unit", error_for(error, "unit_id")))
            }
            div.field {
                label for="d-body" { (bi("内容", "What to do")) }
                textarea #d-body name="body" maxlength=(TEXT_MAX) aria-describedby=[described("body")] aria-invalid=[invalid("body")] { (values.body) }
                (field_error("d-body", error_for(error, "body")))
            }
            button type="submit" { (bi("下达", "Issue")) }
        }
    }
}

async fn new_page(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
) -> Result<Response, PageError> {
    QueryParams::parse(&uri, &[]).map_err(|e| PageError::from(e).viewer(&viewer))?;
    let values = IssueValues {
        kind: "other".into(),
        ..IssueValues::default()
    };
    let body = issue_markup(&viewer, &state.engine().org(), &values, None);
    Ok(Page::for_viewer(&viewer, "下达指令 Issue a directive", body).into_response())
}

async fn issue(
    State(state): State<AppState>,
    viewer: Viewer,
    options: Result<WriteOptions, ApiError>,
    form: PageForm,
) -> Result<Response, PageError> {
    let WriteOptions(options) = options.map_err(|e| PageError::from(e).viewer(&viewer))?;
    let outcome = match typed::<IssueBody>(&form, &["body", "unit_id"]) {
        Ok(body) => api::issue_directive(&state, &viewer.caller, body, options).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(issued) => Ok(see_other(&format!("/directives/{}", issued.id), None)),
        Err(error) => {
            let body = issue_markup(
                &viewer,
                &state.engine().org(),
                &IssueValues::of(&form),
                Some(&error),
            );
            Ok(render::refused_page(
                Some(&viewer),
                "下达指令 Issue a directive",
                body,
                &error,
            ))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One directive

/// Which of a part's forms was refused, and why.
struct Refusal<'e> {
    form: PartForm,
    error: &'e ApiError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartForm {
    Acknowledge,
    Report,
}

/// Whether a part not reported is overdue at `now`: its deadline was missed or escalated
/// (督办), or it fell due.
fn overdue(part: &PartAnswer, now: Timestamp) -> bool {
    let past_due = part
        .due_at
        .as_deref()
        .and_then(|due| parse_rfc3339(due).ok())
        .is_some_and(|due| due < now);
    !part.reported && (part.missed || part.escalated_to.is_some() || past_due)
}

/// A part's state as the roll-up says it at `now`.
fn part_state(part: &PartAnswer, now: Timestamp) -> Markup {
    html! {
        @if part.reported {
            span.badge.ok { (bi("已报告", "reported")) }
        } @else if overdue(part, now) {
            span.badge.overdue { (bi("逾期", "overdue")) }
        } @else if part.acknowledged {
            span.badge.acknowledged { (bi("已签收", "acknowledged")) }
        } @else {
            span.badge.pending { (bi("待签收", "not acknowledged yet")) }
        }
        @if part.reported && part.missed {
            " " span.badge.missed { (bi("曾逾期", "was overdue")) }
        }
    }
}

/// The parts below `parent` (the top: `None`), and what lies below each, as nested lists.
fn subtree(
    org: &OrgChart,
    now: Timestamp,
    children: &BTreeMap<Option<u32>, Vec<&PartAnswer>>,
    parent: Option<u32>,
) -> Markup {
    let Some(parts) = children.get(&parent) else {
        return html! {};
    };
    html! {
        ul {
            @for part in parts {
                li data-unit=(part.unit_id) {
                    strong { (unit_label(org, &part.unit_id)) } " "
                    (part_state(part, now)) " "
                    span.counts {
                        (bi("本级及以下已报告", "reported in this subtree")) " "
                        (part.subtree_reported) "/" (part.subtree_units)
                    }
                    @if let Some(due) = &part.due_at {
                        " · " (bi("期限", "due")) " " (when(due))
                    }
                    @if let Some(to) = &part.escalated_to {
                        " · " span.badge.escalated { (bi("已升级至", "escalated to")) " " (to) }
                    }
                    @if let Some(report) = &part.report {
                        p.hint { (bi("报告：", "Report: ")) (report) }
                    }
                    (subtree(org, now, children, Some(part.index)))
                }
            }
        }
    }
}

fn tree_markup(org: &OrgChart, now: Timestamp, tree: &DirectiveTreeAnswer) -> Markup {
    let shown: std::collections::BTreeSet<u32> = tree.parts.iter().map(|p| p.index).collect();
    // A part whose parent the caller does not see stands at the top of what they see.
    let mut children: BTreeMap<Option<u32>, Vec<&PartAnswer>> = BTreeMap::new();
    for part in &tree.parts {
        let parent = part.parent.filter(|p| shown.contains(p));
        children.entry(parent).or_default().push(part);
    }
    html! {
        div.tree {
            @match tree.view {
                SightName::Full => {
                    ul {
                        li data-unit=(tree.summary.issued_by) {
                            strong { (unit_label(org, &tree.summary.issued_by)) } " "
                            span.badge { (bi("下达单位", "issuer")) } " "
                            span.counts {
                                (bi("已报告", "reported")) " " (tree.summary.reported) "/" (tree.summary.units)
                            }
                            (subtree(org, now, &children, None))
                        }
                    }
                }
                SightName::Subtree => { (subtree(org, now, &children, None)) }
            }
        }
    }
}

fn part_forms(
    viewer: &Viewer,
    now: Timestamp,
    tree: &DirectiveTreeAnswer,
    refused: Option<&Refusal<'_>>,
    note: &str,
) -> Markup {
    let own = tree
        .parts
        .iter()
        .find(|p| p.unit_id == viewer.acting().unit.as_str());
    let responds = RESPONDERS.contains(&viewer.acting().role.as_str());
    let error_of = |form: PartForm| refused.filter(|r| r.form == form).map(|r| r.error);
    let id = &tree.summary.id;
    // A refusal with no form to show it beside (a unit without a part, a role that may not
    // respond) stands at the top of the section.
    let with_forms = responds && own.is_some_and(|p| !p.reported);
    html! {
        section.actions aria-labelledby="own-part" {
            h2 #own-part { (bi("本单位的任务", "Your unit's part")) }
            @if !with_forms { (form_error(refused.map(|r| r.error))) }
            @match own {
                None => p { (bi("本单位在此指令中没有任务。", "Your unit has no part in this directive.")) }
                Some(part) if part.reported => {
                    p { (part_state(part, now)) " " (bi("本单位已报告完成。", "Your unit reported its part done.")) }
                }
                Some(_) if !responds => {
                    p { (bi("你的角色不能签收或报告。", "Your role may not acknowledge or report.")) }
                }
                Some(part) => {
                    p { (part_state(part, now)) }
                    @if !part.acknowledged {
                        @let error = error_of(PartForm::Acknowledge);
                        @let at_note = error_for(error, "note");
                        form method="post" action={ "/directives/" (id) "/acknowledge" } aria-label="签收 Acknowledge" {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            (form_error(general_error(error, &["note"])))
                            div.field {
                                label for="ack-note" { (bi("签收备注", "Note")) }
                                input #ack-note type="text" name="note" maxlength=(TEXT_MAX)
                                    value=(if error.is_some() { note } else { "" })
                                    aria-describedby=[at_note.map(|_| "ack-note-error")]
                                    aria-invalid=[at_note.map(|_| "true")];
                                (field_error("ack-note", at_note))
                            }
                            button type="submit" { (bi("签收", "Acknowledge")) }
                        }
                    }
                    @let error = error_of(PartForm::Report);
                    @let at_note = error_for(error, "note");
                    form method="post" action={ "/directives/" (id) "/report" } aria-label="报告完成 Report done" {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        (form_error(general_error(error, &["note"])))
                        div.field {
                            label for="report-note" { (bi("完成情况", "What was done")) " " span.required { (bi("必填", "required")) } }
                            textarea #report-note name="note" required maxlength=(TEXT_MAX)
                                aria-describedby=[at_note.map(|_| "report-note-error")]
                                aria-invalid=[at_note.map(|_| "true")] {
                                @if error.is_some() { (note) }
                            }
                            (field_error("report-note", at_note))
                        }
                        button type="submit" { (bi("报告完成", "Report done")) }
                    }
                }
            }
        }
    }
}

fn directive_markup(
    viewer: &Viewer,
    org: &OrgChart,
    now: Timestamp,
    tree: &DirectiveTreeAnswer,
    refused: Option<&Refusal<'_>>,
    note: &str,
) -> Markup {
    let s = &tree.summary;
    html! {
        p { a href="/directives" { "← " (bi("全部指令", "All directives")) } }
        h1 { (s.title) }
        dl.facts {
            dt { (bi("类别", "Kind")) } dd { (kind_label(s.kind)) }
            dt { (bi("下达单位", "Issued by")) } dd { (unit_label(org, &s.issued_by)) }
            dt { (bi("下达时间", "Issued")) } dd { (when(&s.issued_at)) }
            dt { (bi("进度", "Progress")) } dd { (progress_words(s)) }
            @if matches!(tree.view, SightName::Subtree) {
                dt { (bi("可见范围", "What you see")) }
                dd { (bi("本单位及以下各级", "your unit's part and the parts below it")) }
            }
        }
        (part_forms(viewer, now, tree, refused, note))
        section aria-labelledby="rollup" {
            h2 #rollup { (bi("逐级进度", "Progress down the chain")) }
            (tree_markup(org, now, tree))
        }
    }
}

async fn directive_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, PageError> {
    let with_nav = |e: ApiError| PageError::from(e).viewer(&viewer);
    QueryParams::parse(&uri, &[]).map_err(with_nav)?;
    let tree = api::progress(&state, &viewer.caller, &id)
        .await
        .map_err(with_nav)?;
    let body = directive_markup(
        &viewer,
        &state.engine().org(),
        state.engine().now(),
        &tree,
        None,
        "",
    );
    let title = format!("{} · 督办指令 Directive", tree.summary.title);
    Ok(Page::for_viewer(&viewer, title, body).into_response())
}

/// The directive's page again, with `error` beside the form that was refused.
async fn refused_page(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    form: PartForm,
    note: &str,
    error: ApiError,
) -> Result<Response, PageError> {
    // A directive the caller cannot see (or that does not exist) is the API's 404 as a page.
    if error.status == StatusCode::NOT_FOUND {
        return Err(PageError::from(error).viewer(viewer));
    }
    let tree = api::progress(state, &viewer.caller, id)
        .await
        .map_err(|e| PageError::from(e).viewer(viewer))?;
    let refused = Refusal {
        form,
        error: &error,
    };
    let body = directive_markup(
        viewer,
        &state.engine().org(),
        state.engine().now(),
        &tree,
        Some(&refused),
        note,
    );
    let title = format!("{} · 督办指令 Directive", tree.summary.title);
    Ok(render::refused_page(Some(viewer), &title, body, &error))
}

async fn acknowledge(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    options: Result<WriteOptions, ApiError>,
    form: PageForm,
) -> Result<Response, PageError> {
    let WriteOptions(options) = options.map_err(|e| PageError::from(e).viewer(&viewer))?;
    let outcome = match typed::<AcknowledgeBody>(&form, &["note"]) {
        Ok(body) => api::acknowledge_part(&state, &viewer.caller, &id, body, options).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(done) => Ok(see_other(&format!("/directives/{}", done.id), None)),
        Err(error) => {
            let note = form.get("note").unwrap_or_default();
            refused_page(&state, &viewer, &id, PartForm::Acknowledge, note, error).await
        }
    }
}

async fn report(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    options: Result<WriteOptions, ApiError>,
    form: PageForm,
) -> Result<Response, PageError> {
    let WriteOptions(options) = options.map_err(|e| PageError::from(e).viewer(&viewer))?;
    let outcome = match typed::<ReportBody>(&form, &[]) {
        Ok(body) => api::report_part(&state, &viewer.caller, &id, body, options).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(done) => Ok(see_other(&format!("/directives/{}", done.id), None)),
        Err(error) => {
            let note = form.get("note").unwrap_or_default();
            refused_page(&state, &viewer, &id, PartForm::Report, note, error).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_is_read_as_the_api_body() {
        let form = PageForm(vec![
            ("title".into(), "消防检查".into()),
            ("kind".into(), "staff_training".into()),
            ("within".into(), "3 working days".into()),
            ("unit_id".into(), String::new()),
        ]);
        assert!(typed::<IssueBody>(&form, &["body", "unit_id"]).is_ok());
        let twice = PageForm(vec![
            ("note".into(), "a".into()),
            ("note".into(), "b".into()),
        ]);
        let e = typed::<ReportBody>(&twice, &[]).expect_err("refused");
        assert_eq!(e.field.as_deref(), Some("note"));
        let blank = PageForm(vec![("note".into(), "  ".into())]);
        let e = typed::<ReportBody>(&blank, &[]).expect_err("refused");
        assert_eq!(e.field.as_deref(), Some("note"));
        let missing = PageForm(vec![("title".into(), "x".into())]);
        let e = typed::<IssueBody>(&missing, &["body", "unit_id"]).expect_err("refused");
        assert!(e.field.is_some(), "{}", e.message);
        let bad_kind = PageForm(vec![
            ("title".into(), "x".into()),
            ("kind".into(), "nonsense".into()),
            ("within".into(), "3 working days".into()),
        ]);
        let e = typed::<IssueBody>(&bad_kind, &["body", "unit_id"]).expect_err("refused");
        assert_eq!(e.field.as_deref(), Some("kind"), "{}", e.message);
    }

    #[test]
    fn every_kind_has_its_api_name() {
        for kind in KINDS {
            let (name, _, _) = kind_words(kind);
            assert_eq!(
                serde_json::to_value(kind).expect("a kind as JSON"),
                Value::String(name.into())
            );
        }
    }
}
