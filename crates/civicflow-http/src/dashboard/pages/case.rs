//! A case's page: its facts (the requester masked as the API masks them), its whole timeline
//! from the case's audit with the chain checked again, its deadlines met or missed, and one
//! form per action the caller may take now, generated from the workflow's fields. The
//! timeline, the facts and the forms follow the case's event stream live (`dashboard.js`
//! swaps in `GET /cases/{id}/timeline`, the same section rendered by the same function).
//!
//! Every read is the API's: the case as `GET /api/v1/cases/{id}` reads it (`Engine::case`,
//! 404 outside the caller's scope, then [`CaseAnswer`] for the masked requester), the audit
//! as `GET /api/v1/cases/{id}/audit` computes it ([`cases::case_audit`]), the events as
//! `GET /api/v1/cases/{id}/history` lists them ([`cases::case_history`]). Every action is
//! `POST /api/v1/cases/{id}/actions`' ([`cases::act_on`]); a refusal is its `ApiError`,
//! shown beside the field it names.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use civicflow_core::calendar::Zone;
use civicflow_core::domain::case::{CaseEvent, Channel};
use civicflow_core::domain::org::{OrgChart, Tier};
use civicflow_core::domain::workflow::{Action, Definition};
use civicflow_core::engine::{CaseAudit, CaseView, DeadlineOutcome, HistoryEntry};
use civicflow_core::{CaseId, Timestamp, UnitId};
use maud::{html, Markup};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::dashboard::render::form::{self, Names, UnitChoices, RATING_WORDS};
use crate::dashboard::render::labels::{self, bi, named};
use crate::dashboard::render::{self, Page, PageError};
use crate::dashboard::session::{PageForm, Viewer};
use crate::error::{ApiError, ApiResult};
use crate::path::Path;
use crate::policy::Policy;
use crate::request_id::WriteOptions;
use crate::routes::cases::{self, act_on, case_id, ActInput, CaseAnswer, RequesterAnswer};
use crate::routes::reports::QueryParams;
use crate::routes::{Content, RouteSpec};
use crate::state::AppState;

/// The id of the section that follows the case live.
pub(crate) const LIVE_ID: &str = "case-live";

/// The routes of a case's page.
pub(crate) fn routes() -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            method: Method::GET,
            path: "/cases/{id}",
            policy: Policy::Authenticated,
            summary: "A case's page: its facts (the requester masked), its timeline from its audit (each step's actor, role, unit, tier, time and the stage after it; deadlines met or missed; the chain checked again), and a form for each action the caller may take now. Follows the case's event stream live. 404 outside the caller's scope, as GET /api/v1/cases/{id}.",
            tag: "dashboard",
            request: None,
            params: None,
            response: None,
            content: Content::Html,
            status: 200,
            also: &[],
            errors: &[400, 404, 503],
            handler: get(case_page),
        },
        RouteSpec {
            method: Method::GET,
            path: "/cases/{id}/timeline",
            policy: Policy::Authenticated,
            summary: "The live section of a case's page as an HTML fragment (what the page swaps in when the case's event stream sends an event): the facts, the action forms and the timeline. 404 outside the caller's scope.",
            tag: "dashboard",
            request: None,
            params: None,
            response: None,
            content: Content::Html,
            status: 200,
            also: &[],
            errors: &[400, 404, 503],
            handler: get(timeline_fragment),
        },
        RouteSpec {
            method: Method::POST,
            path: "/cases/{id}/actions/{action}",
            policy: Policy::Authenticated,
            summary: "Take an action on a case from its page (a form: csrf, expected_version, and the action's fields by name; a datetime-local value is read in the calendar's time zone). The engine command of POST /api/v1/cases/{id}/actions: 303 back to the case's page; a refusal shows the page again with the message beside the field at fault, with the API's status (403, 409 on a stale expected_version, 422). 404 outside the caller's scope.",
            tag: "dashboard",
            request: Some(crate::openapi::schema_of::<ActionForm>),
            params: None,
            response: None,
            content: Content::Html,
            status: 303,
            also: &[],
            errors: &[404, 409, 415, 422, 503],
            handler: post(act_page),
        },
    ]
}

/// An action's form (`POST /cases/{id}/actions/{action}`).
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)] // Read as form pairs; the type describes the form in the OpenAPI document.
pub(crate) struct ActionForm {
    /// The CSRF token of the page the form is on (needed with the session cookie only).
    #[serde(default)]
    #[schemars(length(max = 64))]
    csrf: Option<String>,
    /// The case's version the page showed: refused with 409 if the case has moved on.
    #[serde(default)]
    #[schemars(regex(pattern = "^[0-9]*$"))]
    expected_version: Option<String>,
    /// The action's fields, by name, as its definition declares them (GET
    /// /api/v1/cases/{id} lists them under available_actions).
    #[serde(flatten)]
    fields: BTreeMap<String, String>,
}

/// What the page shows of a case: the API's reads of it.
pub(crate) struct CaseData {
    /// The case as the caller sees it, with the actions they may take now.
    pub view: CaseView,
    /// The same as the API answers it (the requester masked).
    pub answer: CaseAnswer,
    /// Its audit.
    pub audit: CaseAudit,
    /// Its events (the action each step took).
    pub history: Vec<HistoryEntry>,
}

/// The case `id` as `viewer` may see it, read as the API reads it.
///
/// # Errors
/// 404 outside the caller's scope; 503 when the log cannot be read.
pub(crate) async fn load(state: &AppState, viewer: &Viewer, id: CaseId) -> ApiResult<CaseData> {
    let acting = viewer.acting();
    let view = state.engine().case(acting, id)?;
    let answer = CaseAnswer::new(&view, &state.zone());
    let audit = cases::case_audit(state, acting, id).await?;
    let history = cases::case_history(state, acting, id)?;
    Ok(CaseData {
        view,
        answer,
        audit,
        history,
    })
}

/// A refused action: which form, the API's error, and the values posted (shown again).
pub(crate) struct Refusal {
    /// The action's id.
    pub action: String,
    /// What the API answered.
    pub error: ApiError,
    /// The form as posted.
    pub pairs: Vec<(String, String)>,
}

async fn case_page(
    State(state): State<AppState>,
    viewer: Viewer,
    path: Result<Path<String>, ApiError>,
    uri: Uri,
) -> Result<Response, PageError> {
    let with_nav = |e: ApiError| PageError::from(e).viewer(&viewer);
    let Path(id) = path.map_err(with_nav)?;
    QueryParams::parse(&uri, &[]).map_err(with_nav)?;
    let id = case_id(&id).map_err(with_nav)?;
    let data = load(&state, &viewer, id).await.map_err(with_nav)?;
    Ok(page(&state, &viewer, &data).into_response())
}

async fn timeline_fragment(
    State(state): State<AppState>,
    viewer: Viewer,
    path: Result<Path<String>, ApiError>,
    uri: Uri,
) -> Result<Response, PageError> {
    let with_nav = |e: ApiError| PageError::from(e).viewer(&viewer);
    let Path(id) = path.map_err(with_nav)?;
    QueryParams::parse(&uri, &[]).map_err(with_nav)?;
    let id = case_id(&id).map_err(with_nav)?;
    let data = load(&state, &viewer, id).await.map_err(with_nav)?;
    Ok(render::fragment(live_section(&state, &viewer, &data, None)))
}

async fn act_page(
    State(state): State<AppState>,
    viewer: Viewer,
    options: Result<WriteOptions, ApiError>,
    path: Result<Path<(String, String)>, ApiError>,
    form: PageForm,
) -> Result<Response, PageError> {
    let with_nav = |e: ApiError| PageError::from(e).viewer(&viewer);
    let Path((id, action)) = path.map_err(with_nav)?;
    let id = case_id(&id).map_err(with_nav)?;
    let WriteOptions(options) = options.map_err(with_nav)?;
    // As the API's body is checked (`ActBody`'s `Validate`).
    crate::json::cap("action", &action, 64).map_err(with_nav)?;
    // The action's fields, from the case as the caller sees it (404 outside their scope): a
    // form's texts become the JSON values the API reads. An action the workflow does not
    // have has no fields; `act_on` then refuses it by name.
    let view = state
        .engine()
        .case(viewer.acting(), id)
        .map_err(|e| with_nav(e.into()))?;
    let specs = view
        .definition
        .action(&action)
        .map(|a| a.fields.clone())
        .unwrap_or_default();
    let result = match read_form(&form, &specs, &state.zone()) {
        Ok((expected_version, fields)) => {
            let input = ActInput {
                action: action.clone(),
                expected_version,
                fields,
            };
            act_on(&state, viewer.acting(), id, input, options).await
        }
        Err(error) => Err(error),
    };
    match result {
        Ok(_) => Ok(render::see_other(&format!("/cases/{id}"), None)),
        Err(error) if error.status == StatusCode::NOT_FOUND => Err(with_nav(error)),
        Err(error) => {
            let data = load(&state, &viewer, id).await.map_err(with_nav)?;
            let refusal = Refusal {
                action,
                error,
                pairs: form.0,
            };
            let (title, body) = page_body(&state, &viewer, &data, Some(&refusal));
            Ok(render::refused_page(
                Some(&viewer),
                &title,
                body,
                &refusal.error,
            ))
        }
    }
}

/// An action's form as the API's input: `expected_version`, and every other pair a field.
fn read_form(
    form: &PageForm,
    specs: &[civicflow_core::domain::fields::FieldSpec],
    zone: &Zone,
) -> ApiResult<(Option<u64>, serde_json::Map<String, serde_json::Value>)> {
    let expected_version = match form.get("expected_version").map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(
            text.parse::<u64>()
                .ok()
                .filter(|v| *v >= 1)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "expected_version must be a whole number from 1, not {text:?}"
                    ))
                    .field("expected_version")
                })?,
        ),
    };
    let pairs: Vec<(String, String)> = form
        .0
        .iter()
        .filter(|(n, _)| n != "expected_version")
        .cloned()
        .collect();
    let fields = form::values(specs, &pairs, Names { id: "", name: "" }, zone);
    Ok((expected_version, fields))
}

/// The page of a case.
fn page(state: &AppState, viewer: &Viewer, data: &CaseData) -> Page {
    let (title, body) = page_body(state, viewer, data, None);
    Page::for_viewer(viewer, title, body)
}

/// The title and body of a case's page (with a refusal beside its field, when a form was
/// refused).
fn page_body(
    state: &AppState,
    viewer: &Viewer,
    data: &CaseData,
    refusal: Option<&Refusal>,
) -> (String, Markup) {
    let state_ = &data.view.state;
    let body = html! {
        p.crumbs { a href=(back_link(viewer)) { "← " (back_words(viewer)) } }
        h1 { (state_.title) }
        @if refusal.is_some() {
            // A refused form's page does not follow the case: a live update would put a fresh
            // form over the refusal and the values being corrected.
            p #live-status .live-status aria-live="polite" {
                (bi("实时更新已暂停，以免覆盖您的表单。", "Live updates are paused here, so that they do not replace your form."))
                " " a href={ "/cases/" (state_.id) } { (bi("重新载入案件", "Reload the case")) }
            }
        } @else {
            p #live-status .live-status aria-live="polite" { (bi("实时更新连接中…", "Connecting live updates…")) }
        }
        (live_section(state, viewer, data, refusal))
    };
    (format!("{} · 案件 Case", state_.title), body)
}

fn back_link(viewer: &Viewer) -> &'static str {
    crate::dashboard::session::landing(viewer.acting())
}

fn back_words(viewer: &Viewer) -> Markup {
    if back_link(viewer) == "/board" {
        bi("案件看板", "Case board")
    } else {
        bi("我的诉求", "My requests")
    }
}

/// The part of the page that follows the case live: the facts, the action forms, the
/// timeline and the deadlines. The page and `GET /cases/{id}/timeline` both render it here.
pub(crate) fn live_section(
    state: &AppState,
    viewer: &Viewer,
    data: &CaseData,
    refusal: Option<&Refusal>,
) -> Markup {
    let id = data.view.state.id;
    let version = data
        .view
        .state
        .version
        .map_or(0, civicflow_core::Version::get);
    let types = CaseEvent::TYPES.join(" ");
    let org = state.engine().org();
    let zone = state.zone();
    let now = state.engine().now();
    // A refused form's page does not follow the case (see `page_body`).
    let live = refusal.is_none();
    html! {
        section #(LIVE_ID) .case-live aria-label="案件详情 Case details"
            data-live-stream=[live.then(|| format!("/api/v1/cases/{id}/events"))]
            data-live-refresh=[live.then(|| format!("/cases/{id}/timeline"))]
            data-live-types=[live.then_some(types.as_str())]
            data-live-status=[live.then_some("live-status")]
            data-live-version=(version) {
            div.two-columns {
                div {
                    (facts(data, &org, &zone, now))
                    (actions(viewer, data, &org, refusal))
                }
                div {
                    (timeline(data, &org, &zone))
                    (deadlines(&data.audit, &data.view.definition, &zone))
                }
            }
        }
    }
}

fn unit_name(org: &OrgChart, unit: &UnitId) -> Markup {
    match org.unit(unit) {
        Some(u) => html! { (u.name) " " span.unit-id { "(" (unit.as_str()) ")" } },
        None => html! { (unit.as_str()) },
    }
}

fn stage_name(definition: &Definition, stage: &str) -> Markup {
    definition
        .stage(stage)
        .map_or_else(|| html! { (stage) }, |s| named(&s.name))
}

fn action_name(action: &Action) -> Markup {
    if action.name.trim().is_empty() {
        html! { (action.id) }
    } else {
        named(&action.name)
    }
}

fn channel_words(channel: Channel) -> Markup {
    match channel {
        Channel::Door => bi("上门受理", "at the door"),
        Channel::Hotline => bi("热线", "hotline"),
        Channel::Open311 => bi("市民应用", "civic app (Open311)"),
        Channel::Api => bi("系统接口", "API"),
        Channel::Staff => bi("工作人员发现", "raised by staff"),
        #[allow(unreachable_patterns)]
        _ => html! { "—" },
    }
}

/// A rating as words: `4/5 满意 satisfied`.
pub(crate) fn rating_words(rating: u8) -> Markup {
    let words = usize::from(rating)
        .checked_sub(1)
        .and_then(|i| RATING_WORDS.get(i));
    html! {
        (rating) "/5"
        @if let Some((zh, en)) = words { " " (bi(zh, en)) }
    }
}

fn facts(data: &CaseData, org: &OrgChart, zone: &Zone, now: Timestamp) -> Markup {
    let s = &data.view.state;
    let definition = &data.view.definition;
    let overdue = s.deadline.as_ref().is_some_and(|d| d.due_at < now) && !s.closed;
    html! {
        section aria-labelledby="facts-h" {
            h2 #facts-h { (bi("概况", "Facts")) }
            dl.facts {
                dt { (bi("编号", "Case id")) }
                dd { code { (s.id) } }
                dt { (bi("流程", "Workflow")) }
                dd { (named(&definition.name)) " " span.unit-id { "(" (s.workflow) ")" } }
                dt { (bi("环节", "Stage")) }
                dd {
                    (stage_name(definition, &s.stage)) " "
                    @if s.closed {
                        span.badge.closed { (bi("已结束", "closed")) }
                    } @else {
                        span.badge.open { (bi("在办", "open")) }
                    }
                }
                dt { (bi("受理单位", "Filed at")) }
                dd { (unit_name(org, &s.unit)) }
                dt { (bi("主办单位", "Lead unit")) }
                dd { (unit_name(org, &s.lead)) }
                dt { (bi("协办单位", "Co-handling units")) }
                dd {
                    @if s.co_handlers.is_empty() { "—" }
                    @for (i, unit) in s.co_handlers.iter().enumerate() {
                        @if i > 0 { "、" }
                        (unit_name(org, unit))
                    }
                }
                dt { (bi("办理期限", "Deadline")) }
                dd {
                    @if let Some(d) = &s.deadline {
                        (labels::time(zone, d.due_at)) " "
                        span.hint-inline { (bi("（按工作日历）", "(business calendar)")) }
                        @if d.is_provisional() {
                            " " span.badge.provisional { (bi("暂定", "provisional")) }
                        }
                        @if overdue { " " span.badge.overdue { (bi("逾期", "overdue")) } }
                    } @else { "—" }
                }
                dt { (bi("渠道", "Channel")) }
                dd { (channel_words(s.channel)) }
                dt { (bi("满意度", "Rating")) }
                dd {
                    @if let Some(r) = s.rating { (rating_words(r)) } @else { (bi("未评价", "not rated")) }
                }
                dt { (bi("诉求人", "Requester")) }
                dd { (requester(&data.answer)) }
                @if let Some(place) = &s.place {
                    dt { (bi("地点", "Place")) }
                    dd {
                        @if let Some(address) = &place.address { (address) }
                        @if let (Some(lat), Some(long)) = (place.lat, place.long) { " (" (lat) ", " (long) ")" }
                        @if let Some(url) = &place.media_url { " " span { (bi("照片", "photo")) ": " (url) } }
                    }
                }
                dt { (bi("受理时间", "Opened")) }
                dd { (labels::time(zone, s.opened_at)) }
                dt { (bi("最近更新", "Last change")) }
                dd { (labels::time(zone, s.updated_at)) }
                @if let Some(closed) = s.closed_at {
                    dt { (bi("结束时间", "Closed")) }
                    dd { (labels::time(zone, closed)) }
                }
                @if let Some(into) = s.merged_into {
                    dt { (bi("并入", "Merged into")) }
                    dd { a href={ "/cases/" (into) } { code { (into) } } }
                }
            }
            @if !s.description.is_empty() {
                h3 { (bi("描述", "Description")) }
                p.description { (s.description) }
            }
            @if !s.fields.is_empty() {
                h3 { (bi("填写内容", "Fields")) }
                dl.facts {
                    @for (name, value) in &s.fields {
                        dt { (field_label(definition, name)) }
                        dd {
                            @match value {
                                civicflow_core::domain::fields::FieldValue::Unit(u) => (unit_name(org, u)),
                                civicflow_core::domain::fields::FieldValue::Rating(r) => (rating_words(*r)),
                                civicflow_core::domain::fields::FieldValue::Datetime(at) => (labels::time(zone, *at)),
                                civicflow_core::domain::fields::FieldValue::Choice(c) => (form::choice_words(c)),
                                civicflow_core::domain::fields::FieldValue::Case(c) => a href={ "/cases/" (c) } { code { (c) } },
                                other => (other.display(zone)),
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A field's label from the definition (its intake fields, then its actions').
fn field_label(definition: &Definition, name: &str) -> Markup {
    definition
        .open
        .fields
        .iter()
        .chain(definition.actions.iter().flat_map(|a| a.fields.iter()))
        .find(|f| f.name == name)
        .map_or_else(|| html! { (name) }, form::label_of)
}

/// The requester as the API shows them: masked (`李*`, `138****5678`), or erased.
fn requester(answer: &CaseAnswer) -> Markup {
    match &answer.requester {
        None => html! { "—" },
        Some(RequesterAnswer::Erased { .. }) => {
            html! { (bi("已删除（个人信息已依法删除）", "erased (their details were erased)")) }
        }
        Some(RequesterAnswer::Masked {
            name,
            phone,
            email,
            address,
            ..
        }) => {
            let parts: Vec<&String> = [name, phone, email, address]
                .into_iter()
                .flatten()
                .collect();
            html! {
                span.masked { (parts.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(" · ")) }
                " " span.hint-inline { (bi("（已脱敏）", "(masked)")) }
            }
        }
    }
}

fn actions(viewer: &Viewer, data: &CaseData, org: &OrgChart, refusal: Option<&Refusal>) -> Markup {
    let available = &data.view.available_actions;
    // A refusal of a form no longer shown (the case moved on): said above the forms.
    let stray = refusal.filter(|r| !available.iter().any(|a| a.id == r.action));
    html! {
        section.actions aria-labelledby="actions-h" {
            h2 #actions-h { (bi("办理", "Actions")) }
            @if let Some(r) = stray {
                p.error #actions-error role="alert" {
                    (refusal_heading(&r.error)) " " (r.error.message)
                }
            }
            @if available.is_empty() {
                p.note { (bi("您现在没有可办理的操作。", "There is no action you may take now.")) }
            }
            @for action in available {
                (action_form(viewer, data, action, org, refusal.filter(|r| r.action == action.id)))
            }
        }
    }
}

/// What kind of refusal it is, in words.
fn refusal_heading(error: &ApiError) -> Markup {
    match error.status.as_u16() {
        403 => bi("无权办理：", "Not allowed:"),
        409 => bi(
            "案件已被他人更改，页面已刷新，请核对后重新提交：",
            "The case was changed by someone else; the page shows it now, check and send again:",
        ),
        400 | 422 => bi("无法办理：", "Refused:"),
        _ => bi("出错了：", "Something went wrong:"),
    }
}

fn action_form(
    viewer: &Viewer,
    data: &CaseData,
    action: &Action,
    org: &OrgChart,
    refusal: Option<&Refusal>,
) -> Markup {
    let s = &data.view.state;
    let form_id = format!("act-{}", action.id.replace('_', "-"));
    let names = Names {
        id: &form_id,
        name: "",
    };
    // The refusal's field, when it is one of this form's; otherwise it is said at the top.
    let at_field = refusal
        .and_then(|r| r.error.field.as_deref())
        .filter(|f| action.fields.iter().any(|spec| spec.name == *f));
    let general = refusal.filter(|_| at_field.is_none());
    let version = s.version.map_or(0, civicflow_core::Version::get);
    let general_id = format!("{form_id}-error");
    let zone_units = UnitChoices::HandTo(org, viewer.acting());
    html! {
        form.action-form #(form_id) method="post"
            action={ "/cases/" (s.id) "/actions/" (action.id) }
            aria-labelledby={ (form_id) "-h" }
            aria-describedby=[general.map(|_| general_id.as_str())] {
            h3 #{ (form_id) "-h" } {
                (action_name(action))
                @if action.to != s.stage {
                    " " span.to { "→ " (stage_name(&data.view.definition, &action.to)) }
                }
            }
            input type="hidden" name="csrf" value=(viewer.csrf);
            input type="hidden" name="expected_version" value=(version);
            @if let Some(r) = general {
                p.error id=(general_id) role="alert" {
                    (refusal_heading(&r.error)) " " (r.error.message)
                }
            }
            @for spec in &action.fields {
                @let values = refusal.map(|r| form::posted(&r.pairs, &spec.name)).unwrap_or_default();
                @let error = refusal.filter(|_| at_field == Some(spec.name.as_str())).map(|r| r.error.message.as_str());
                (form::field(spec, names, &values, error, zone_units, true))
            }
            button type="submit" { (action_name(action)) }
        }
    }
}

/// The bilingual name of an event type.
fn event_words(event_type: &str) -> Markup {
    let (zh, en) = match event_type {
        "CaseOpened" => ("受理", "opened"),
        "ActionTaken" => ("办理", "action"),
        "LeadAssigned" => ("主办单位变更", "lead unit assigned"),
        "CoHandlerAdded" => ("增加协办单位", "co-handling unit added"),
        "ReturnedToSender" => ("退回派单单位", "returned to the sender"),
        "SatisfactionRated" => ("满意度评价", "satisfaction rated"),
        "MergedInto" => ("并入他案", "merged into another case"),
        "DuplicateMerged" => ("并入重复件", "duplicate merged in"),
        "CaseReopened" => ("重办", "reopened"),
        "CaseMigrated" => ("流程版本迁移", "moved to another workflow version"),
        "DeadlineSet" => ("设定期限", "deadline set"),
        "DeadlineRecomputed" => ("期限重算", "deadline recomputed"),
        "DeadlineMet" => ("按期完成", "deadline met"),
        "DeadlineMissed" => ("超期", "deadline missed"),
        "DeadlineStepReached" => ("催办督办", "deadline reminder or escalation"),
        "ContactViewed" => ("查看诉求人联系方式", "requester's contact viewed"),
        "PlaceRecorded" => ("记录地点", "place recorded"),
        other => return html! { (other) },
    };
    bi(zh, en)
}

fn tier_words(tier: Option<Tier>) -> Markup {
    match tier {
        None => bi("系统", "system"),
        Some(Tier::Community) => bi("社区", "community"),
        Some(Tier::Grid) => bi("网格", "grid"),
        Some(Tier::Enterprise) => bi("企业", "enterprise"),
        Some(Tier::Shop) => bi("商铺", "shop"),
        Some(Tier::Department) => bi("部门", "department"),
        Some(Tier::SocialOrganization) => bi("社会组织", "social organization"),
        Some(Tier::VolunteerTeam) => bi("志愿队", "volunteer team"),
        #[allow(unreachable_patterns)]
        Some(other) => html! { (other.as_str()) },
    }
}

fn timeline(data: &CaseData, org: &OrgChart, zone: &Zone) -> Markup {
    let audit = &data.audit;
    let definition = &data.view.definition;
    // The action each step took, from the case's events.
    let actions: BTreeMap<u64, &str> = data
        .history
        .iter()
        .filter_map(|entry| match &entry.event {
            CaseEvent::ActionTaken(e) => Some((entry.recorded.version.get(), e.action.as_str())),
            _ => None,
        })
        .collect();
    // The stage after a step, said where it changed.
    let changed: Vec<bool> = audit
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| i == 0 || audit.steps[i - 1].stage_after != step.stage_after)
        .collect();
    html! {
        section aria-labelledby="timeline-h" {
            h2 #timeline-h { (bi("时间线", "Timeline")) }
            @if audit.chain.is_intact() {
                p.chain {
                    span.badge.verified { (bi("哈希链已校验", "chain verified")) }
                    " " (audit.chain.events_checked) " " (bi("条记录核对无误", "events checked, intact"))
                }
            } @else {
                p.chain.broken role="alert" {
                    span.badge.breached { (bi("哈希链校验失败", "chain NOT verified")) }
                    " " (bi("记录可能被篡改：", "the record may have been altered: "))
                    @if let Some(b) = &audit.chain.first_break { (format!("{b:?}")) }
                }
            }
            ol.timeline {
                @for (step, stage_changed) in audit.steps.iter().zip(changed) {
                    @let version = step.version.get();
                    li #{ "step-" (version) } {
                        p.step {
                            strong {
                                @if let Some(action) = actions.get(&version).and_then(|a| definition.action(a)) {
                                    (action_name(action))
                                } @else {
                                    (event_words(&step.event_type))
                                }
                            }
                            " " span.meta { "#" (version) }
                        }
                        p.summary { (step.summary) }
                        p.meta {
                            (labels::time(zone, step.recorded_at)) " · "
                            (step.actor.id.as_str()) " · " (labels::role(step.actor.role.as_str())) " · "
                            (unit_name(org, &step.actor.unit)) " · " (tier_words(step.tier))
                        }
                        @if stage_changed {
                            p.meta {
                                (bi("之后环节", "Stage after")) ": " (stage_name(definition, &step.stage_after))
                                @if step.closed_after { " " span.badge.closed { (bi("已结束", "closed")) } }
                            }
                        }
                        @if let Some(cause) = step.caused_by_version {
                            p.meta {
                                (bi("起因", "Because of")) ": "
                                a href={ "#step-" (cause.get()) } { (bi(&format!("第 {} 步", cause.get()), &format!("step {}", cause.get()))) }
                            }
                        } @else if let Some(cause) = step.caused_by {
                            p.meta { (bi("起因", "Because of")) ": " (bi("事件", "event")) " " code { (cause) } }
                        }
                    }
                }
            }
        }
    }
}

fn deadlines(audit: &CaseAudit, definition: &Definition, zone: &Zone) -> Markup {
    html! {
        section aria-labelledby="deadlines-h" {
            h2 #deadlines-h { (bi("期限", "Deadlines")) }
            @if audit.deadlines.is_empty() {
                p.note { (bi("没有期限。", "No deadlines.")) }
            } @else {
                div.table-wrap tabindex="0" role="region" aria-labelledby="deadlines-h" {
                    table {
                        caption { (bi("每个环节的办理期限及结果", "Each stage's deadline and what became of it")) }
                        thead {
                            tr {
                                th scope="col" { (bi("序号", "No.")) }
                                th scope="col" { (bi("环节", "Stage")) }
                                th scope="col" { (bi("到期", "Due")) }
                                th scope="col" { (bi("结果", "Outcome")) }
                                th scope="col" { (bi("催办督办", "Reminders and escalations")) }
                            }
                        }
                        tbody {
                            @for d in &audit.deadlines {
                                tr {
                                    td { (d.seq) }
                                    td { (stage_name(definition, &d.stage)) }
                                    td {
                                        (labels::time(zone, d.due_at))
                                        @if d.provisional { " " span.badge.provisional { (bi("暂定", "provisional")) } }
                                    }
                                    td {
                                        @match d.outcome {
                                            DeadlineOutcome::Running => span.badge.running { (bi("进行中", "running")) },
                                            DeadlineOutcome::Met { at } => { span.badge.met { (bi("按期", "met")) } " " (labels::time(zone, at)) },
                                            DeadlineOutcome::Missed { at } => { span.badge.missed { (bi("超期", "missed")) } " " (labels::time(zone, at)) },
                                            DeadlineOutcome::Superseded => span.badge.superseded { (bi("已作废", "superseded")) },
                                        }
                                    }
                                    td {
                                        @if d.steps.is_empty() { "—" }
                                        @for (i, (step, unit, at)) in d.steps.iter().enumerate() {
                                            @if i > 0 { br; }
                                            (match step {
                                                civicflow_core::domain::case::LadderStep::Remind => bi("催办", "reminder"),
                                                civicflow_core::domain::case::LadderStep::Escalate => bi("督办升级", "escalated"),
                                                civicflow_core::domain::case::LadderStep::Breach => bi("违约", "breached"),
                                            })
                                            " → " (unit.as_str()) " " (labels::time(zone, *at))
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
