//! Directives (指令层层下达): issue one to every unit of the chain below a unit, acknowledge and
//! report the caller's unit's part, follow the progress as it rolls back up.
//!
//! Who may issue, acknowledge or report is the engine's decision; its refusals are mapped as
//! everywhere else (403 for a role or a unit that may not, 422 for a part that cannot take
//! it). A directive the caller's unit neither issued nor lies above, and has no part in or
//! above, is 404 as if it did not exist; auditors see every directive. A unit that sees a
//! directive only through its part (and the parts below it) sees that part of the tree.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::{get, post};
use axum::{Extension, Json};
use civicflow_core::calendar::{Span, Zone};
use civicflow_core::domain::directive::{sight, DirectiveKind, PartProgress, Sight};
use civicflow_core::domain::org::{roles, Acting, OrgChart};
use civicflow_core::engine::{Command, Outcome, SubmitOptions};
use civicflow_core::{DirectiveId, UnitId};
use civicflow_projections::models::directive_progress::{
    self, DirectiveSummary, DirectiveTree, PartDetail,
};
use civicflow_projections::models::page::Page;
use civicflow_projections::{ProjectionError, View};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cases::NOT_BLANK;
use super::reports::{fresh_view, page_params, projection_error, PageAnswer, QueryParams};
use super::{Content, RouteSpec};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::json::{cap, required, StrictJson, Validate};
use crate::openapi::{answer_schema_of, schema_of};
use crate::path::Path;
use crate::policy::Policy;
use crate::request_id::WriteOptions;
use crate::state::AppState;

/// The routes of this module.
pub fn routes() -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/directives",
            policy: Policy::Authenticated,
            summary: "Issue a directive at a unit (default: the caller's) to every unit of the chain below it, each with `within` to report done. The engine decides who may: 403 for a role or a unit outside the caller's scope, 422 when no unit lies below.",
            tag: "directives",
            request: Some(schema_of::<IssueBody>),
            params: Some(crate::idempotency::header_param),
            response: Some(answer_schema_of::<IssuedAnswer>),
            content: Content::Json,
            status: 201,
            also: &[],
            errors: &[404, 409, 422, 503],
            handler: post(issue),
        },
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/directives",
            policy: Policy::Roles(roles::ACT_FOR_UNITS),
            summary: "Directives the caller's unit may see, newest first, with their totals. Query: after (cursor), limit (1-1000); a page may be short and still have a next cursor. Not for residents or civic apps.",
            tag: "directives",
            request: None,
            params: Some(|| Value::Array(page_params())),
            response: Some(answer_schema_of::<PageAnswer<DirectiveSummaryAnswer>>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[400, 503],
            handler: get(list),
        },
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/directives/{id}",
            policy: Policy::Roles(roles::ACT_FOR_UNITS),
            summary: "A directive's progress: its tree of unit parts, each with its acknowledgement, report, deadline and escalation, rolled up (complete when it and every part below reported). 404 when the caller's unit neither issued it, lies above the issuer, nor has a part in it or below.",
            tag: "directives",
            request: None,
            params: None,
            response: Some(answer_schema_of::<DirectiveTreeAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[400, 404, 503],
            handler: get(read),
        },
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/directives/{id}/acknowledge",
            policy: Policy::Authenticated,
            summary: "Acknowledge the caller's unit's part of a directive; body {} or {\"note\"} (acknowledging again changes nothing). 403 when the role may not respond, 422 when the unit has no part.",
            tag: "directives",
            request: Some(schema_of::<AcknowledgeBody>),
            params: Some(crate::idempotency::header_param),
            response: Some(answer_schema_of::<PartOutcomeAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[404, 409, 422, 503],
            handler: post(acknowledge),
        },
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/directives/{id}/report",
            policy: Policy::Authenticated,
            summary: "Report the caller's unit's part of a directive done, with a note (acknowledges it too if needed). 403 when the role may not respond, 422 when the unit has no part or reported already.",
            tag: "directives",
            request: Some(schema_of::<ReportBody>),
            params: Some(crate::idempotency::header_param),
            response: Some(answer_schema_of::<PartOutcomeAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[404, 409, 422, 503],
            handler: post(report),
        },
    ]
}

/// The most characters of a directive's title.
pub const TITLE_MAX: usize = 200;
/// The most characters of a directive's body or of a note.
pub const TEXT_MAX: usize = 4000;

/// What a directive is about, as the API names it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DirectiveKindName {
    /// 疫情防控.
    EpidemicPrevention,
    /// 党群服务.
    PartyService,
    /// 消费维权.
    ConsumerProtection,
    /// 员工培训.
    StaffTraining,
    /// 社会稳定.
    SocialStability,
    /// Anything else.
    Other,
}

impl From<DirectiveKind> for DirectiveKindName {
    fn from(kind: DirectiveKind) -> Self {
        match kind {
            DirectiveKind::EpidemicPrevention => DirectiveKindName::EpidemicPrevention,
            DirectiveKind::PartyService => DirectiveKindName::PartyService,
            DirectiveKind::ConsumerProtection => DirectiveKindName::ConsumerProtection,
            DirectiveKind::StaffTraining => DirectiveKindName::StaffTraining,
            DirectiveKind::SocialStability => DirectiveKindName::SocialStability,
            DirectiveKind::Other => DirectiveKindName::Other,
        }
    }
}

impl From<DirectiveKindName> for DirectiveKind {
    fn from(kind: DirectiveKindName) -> Self {
        match kind {
            DirectiveKindName::EpidemicPrevention => DirectiveKind::EpidemicPrevention,
            DirectiveKindName::PartyService => DirectiveKind::PartyService,
            DirectiveKindName::ConsumerProtection => DirectiveKind::ConsumerProtection,
            DirectiveKindName::StaffTraining => DirectiveKind::StaffTraining,
            DirectiveKindName::SocialStability => DirectiveKind::SocialStability,
            DirectiveKindName::Other => DirectiveKind::Other,
        }
    }
}

/// A directive to issue (`POST /api/v1/directives`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssueBody {
    /// Its title.
    #[schemars(length(min = 1, max = TITLE_MAX), pattern(NOT_BLANK))]
    title: String,
    /// What to do.
    #[serde(default)]
    #[schemars(length(max = TEXT_MAX))]
    body: String,
    /// What it is about.
    kind: DirectiveKindName,
    /// The issuing unit: the caller's (default) or one below it.
    #[serde(default)]
    #[schemars(length(min = 1, max = 64), pattern(NOT_BLANK))]
    unit_id: Option<String>,
    /// How long each unit has to report done: `3 working days`, `8 working hours`,
    /// `48 hours`; more than zero and at most a year (366 days, 260 working days, 2080
    /// working hours, 124800 working minutes), else 400.
    #[schemars(length(min = 1, max = 64), pattern(NOT_BLANK))]
    within: String,
}

impl Validate for IssueBody {
    fn validate(&self) -> Result<(), ApiError> {
        required("title", &self.title)?;
        cap("title", &self.title, TITLE_MAX)?;
        cap("body", &self.body, TEXT_MAX)?;
        if let Some(unit) = &self.unit_id {
            required("unit_id", unit)?;
            cap("unit_id", unit, 64)?;
        }
        required("within", &self.within)?;
        cap("within", &self.within, 64)
    }
}

/// An acknowledgement of the caller's unit's part (`POST /api/v1/directives/{id}/acknowledge`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcknowledgeBody {
    /// A note with it.
    #[serde(default)]
    #[schemars(length(max = TEXT_MAX))]
    note: String,
}

impl Validate for AcknowledgeBody {
    fn validate(&self) -> Result<(), ApiError> {
        cap("note", &self.note, TEXT_MAX)
    }
}

/// The report that the caller's unit's part is done (`POST /api/v1/directives/{id}/report`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportBody {
    /// What was done.
    #[schemars(length(min = 1, max = TEXT_MAX), pattern(NOT_BLANK))]
    note: String,
}

impl Validate for ReportBody {
    fn validate(&self) -> Result<(), ApiError> {
        required("note", &self.note)?;
        cap("note", &self.note, TEXT_MAX)
    }
}

/// A directive issued.
#[derive(Debug, Serialize, JsonSchema)]
pub struct IssuedAnswer {
    /// The directive.
    pub id: String,
    /// The issuing unit.
    pub issued_by: String,
    /// The units reached.
    pub parts: usize,
    /// How long each has to report done, as the service reads it.
    pub within: String,
}

/// The caller's unit's part, acknowledged or reported.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PartOutcomeAnswer {
    /// The directive.
    pub id: String,
    /// The caller's unit.
    pub unit_id: String,
    /// The part's number; null when the unit has no part.
    pub index: Option<u32>,
}

/// A directive and its totals (`GET /api/v1/directives`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct DirectiveSummaryAnswer {
    /// The directive.
    pub id: String,
    /// Its title.
    pub title: String,
    /// What it is about.
    pub kind: DirectiveKindName,
    /// The issuing unit.
    pub issued_by: String,
    /// When it was issued.
    pub issued_at: String,
    /// Parts (units reached).
    pub units: u32,
    /// Parts acknowledged.
    pub acknowledged: u32,
    /// Parts reported done.
    pub reported: u32,
    /// Parts whose deadline was missed.
    pub missed: u32,
    /// Whether every part is complete (it and every part below it reported done).
    pub complete: bool,
}

/// A directive's progress (`GET /api/v1/directives/{id}`): its totals (of the parts the
/// caller sees) and its tree of parts.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DirectiveTreeAnswer {
    /// The directive and its totals.
    #[serde(flatten)]
    pub summary: DirectiveSummaryAnswer,
    /// What the caller sees.
    pub view: SightName,
    /// The parts the caller sees, parents before children.
    pub parts: Vec<PartAnswer>,
}

/// How much of a directive the caller sees.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SightName {
    /// Every part.
    Full,
    /// Its own part and the parts below it; the totals are theirs.
    Subtree,
}

/// One unit's part of a directive.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PartAnswer {
    /// The part's number.
    pub index: u32,
    /// The unit.
    pub unit_id: String,
    /// The part above; null right below the issuer.
    pub parent: Option<u32>,
    /// Whether the unit acknowledged.
    pub acknowledged: bool,
    /// When it acknowledged; null: not yet.
    pub acknowledged_at: Option<String>,
    /// Whether the unit reported done.
    pub reported: bool,
    /// When it reported done; null: not yet.
    pub reported_at: Option<String>,
    /// What it reported; null: not yet.
    pub report: Option<String>,
    /// When its (latest) deadline fell due.
    pub due_at: Option<String>,
    /// Whether the deadline was missed.
    pub missed: bool,
    /// The unit supervising after an escalation (督办); null: not escalated.
    pub escalated_to: Option<String>,
    /// It and every part below reported.
    pub complete: bool,
    /// Units in this part's subtree (itself included).
    pub subtree_units: u32,
    /// Of those, how many reported done.
    pub subtree_reported: u32,
}

/// Parses a directive id from the path.
///
/// # Errors
/// 404: a malformed id names no directive.
fn directive_id(text: &str) -> ApiResult<DirectiveId> {
    DirectiveId::parse(text).map_err(|_| ApiError::not_found("directive").field("id"))
}

fn not_found() -> ApiError {
    ApiError::not_found("directive").field("id")
}

async fn issue(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    StrictJson(body): StrictJson<IssueBody>,
) -> ApiResult<(StatusCode, Json<IssuedAnswer>)> {
    let issued = issue_directive(&state, &caller, body, options).await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// Issues the directive `body` describes as `caller` (`POST /api/v1/directives` and the
/// dashboard's form): the span checked first, then the engine's decision.
///
/// # Errors
/// 400 naming `within` or `unit_id`; the engine's refusals (403, 404, 422), `unit` named
/// `unit_id`.
pub(crate) async fn issue_directive(
    state: &AppState,
    caller: &Caller,
    body: IssueBody,
    options: SubmitOptions,
) -> ApiResult<IssuedAnswer> {
    let within = Span::parse(body.within.trim()).map_err(|e| {
        ApiError::bad_request(format!(
            "within: {e} (e.g. `3 working days`, `8 working hours`, `48 hours`)"
        ))
        .field("within")
    })?;
    // The domain's bound, asked here too so that a span the route cannot take is refused
    // like a malformed one (400), before anything else is decided.
    within
        .check_deadline()
        .map_err(|e| ApiError::bad_request(format!("within {e}")).field("within"))?;
    let unit = match &body.unit_id {
        Some(id) => UnitId::new(id.as_str())
            .map_err(|e| ApiError::bad_request(e.to_string()).field("unit_id"))?,
        None => caller.acting.unit.clone(),
    };
    let command = Command::IssueDirective {
        title: body.title,
        body: body.body,
        kind: body.kind.into(),
        unit: unit.clone(),
        within,
    };
    let acting = caller.acting.clone();
    let outcome = state
        .blocking(move |engine| engine.submit_with(&acting, command, options))
        .await?
        .map_err(|e| {
            let mut error = ApiError::from(e);
            if error.field.as_deref() == Some("unit") {
                error.field = Some("unit_id".into());
            }
            error
        })?;
    let Outcome::Directive {
        directive, parts, ..
    } = outcome
    else {
        return Err(ApiError::internal(
            "issuing a directive answered another outcome",
        ));
    };
    Ok(IssuedAnswer {
        id: directive.to_string(),
        issued_by: unit.as_str().to_owned(),
        parts,
        within: within.to_string(),
    })
}

impl DirectiveSummaryAnswer {
    fn new(summary: &DirectiveSummary, zone: &Zone) -> Self {
        Self {
            id: summary.id.to_string(),
            title: summary.title.clone(),
            kind: summary.kind.into(),
            issued_by: summary.issued_by.as_str().to_owned(),
            issued_at: zone.format(summary.issued_at),
            units: summary.units,
            acknowledged: summary.acknowledged,
            reported: summary.reported,
            missed: summary.missed,
            complete: summary.complete,
        }
    }
}

/// Whether the caller sees `summary`'s directive, reading its parts only when the issuer
/// alone does not decide it.
fn sees(
    view: &View<'_>,
    acting: &Acting,
    org: &OrgChart,
    summary: &DirectiveSummary,
) -> Result<bool, ProjectionError> {
    if sight(acting, org, &summary.issued_by, std::iter::empty()) == Sight::Full {
        return Ok(true);
    }
    Ok(match directive_progress::directive(view, summary.id)? {
        Some(tree) => {
            sight(
                acting,
                org,
                &tree.summary.issued_by,
                tree.parts.iter().map(|p| &p.row.unit),
            ) != Sight::None
        }
        None => false,
    })
}

async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
) -> ApiResult<Json<PageAnswer<DirectiveSummaryAnswer>>> {
    let params = QueryParams::parse(&uri, &["after", "limit"])?;
    let page = params.page()?;
    Ok(Json(visible(&state, &caller, &page).await?))
}

/// A page of the directives `caller` may see, newest first (`GET /api/v1/directives` and the
/// dashboard's list): the page of the read model, the ones the caller does not see left out
/// (so a page may be short and still have a next cursor).
///
/// # Errors
/// 400 for a bad cursor; 503 when the read model cannot answer.
pub(crate) async fn visible(
    state: &AppState,
    caller: &Caller,
    page: &Page,
) -> ApiResult<PageAnswer<DirectiveSummaryAnswer>> {
    let org = state.engine().org();
    let view = fresh_view(state, directive_progress::NAME).await?;
    let paged = directive_progress::list(&view, page).map_err(projection_error)?;
    let mut items = Vec::with_capacity(paged.items.len());
    for summary in &paged.items {
        if sees(&view, &caller.acting, &org, summary).map_err(projection_error)? {
            items.push(DirectiveSummaryAnswer::new(summary, &state.zone()));
        }
    }
    Ok(PageAnswer::new(items, paged.next.as_ref()))
}

impl DirectiveTreeAnswer {
    fn new(
        tree: &DirectiveTree,
        sight: Sight,
        acting: &Acting,
        org: &OrgChart,
        zone: &Zone,
    ) -> Self {
        let time = |at: civicflow_core::Timestamp| zone.format(at);
        let rolled: BTreeMap<u32, &PartProgress> =
            tree.progress.parts.iter().map(|p| (p.index, p)).collect();
        let visible: Vec<_> = tree
            .parts
            .iter()
            .filter(|p| sight.shows(&p.row.unit, acting, org))
            .collect();
        let parts = visible
            .iter()
            .map(|part| {
                let row = &part.row;
                let progress = rolled.get(&part.index);
                PartAnswer {
                    index: part.index,
                    unit_id: row.unit.as_str().to_owned(),
                    parent: row.parent,
                    acknowledged: row.acknowledged_at.is_some(),
                    acknowledged_at: row.acknowledged_at.map(time),
                    reported: row.reported_at.is_some(),
                    reported_at: row.reported_at.map(time),
                    report: row.report.clone(),
                    due_at: row.due_at.map(time),
                    missed: row.missed,
                    escalated_to: row.escalated_to.as_ref().map(|u| u.as_str().to_owned()),
                    complete: progress.is_some_and(|p| p.complete),
                    subtree_units: progress.map_or(1, |p| p.units),
                    subtree_reported: progress.map_or(0, |p| p.units_reported),
                }
            })
            .collect();
        let mut summary = DirectiveSummaryAnswer::new(&tree.summary, zone);
        if sight == Sight::Subtree {
            // The totals of what the caller sees (parts of one directive: far fewer than
            // u32::MAX).
            let count = |f: &dyn Fn(&PartDetail) -> bool| {
                u32::try_from(visible.iter().filter(|p| f(p)).count()).unwrap_or(u32::MAX)
            };
            summary.units = count(&|_| true);
            summary.acknowledged = count(&|p| p.row.acknowledged_at.is_some());
            summary.reported = count(&|p| p.row.reported_at.is_some());
            summary.missed = count(&|p| p.row.missed);
            summary.complete = visible.iter().all(|p| p.row.reported_at.is_some());
        }
        Self {
            summary,
            view: match sight {
                Sight::Full => SightName::Full,
                _ => SightName::Subtree,
            },
            parts,
        }
    }
}

async fn read(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Json<DirectiveTreeAnswer>> {
    QueryParams::parse(&uri, &[])?;
    Ok(Json(progress(&state, &caller, &id).await?))
}

/// Directive `id`'s progress as `caller` sees it (`GET /api/v1/directives/{id}` and the
/// dashboard's tree).
///
/// # Errors
/// 404 naming `id` when it does not exist or the caller sees nothing of it; 503 when the
/// read model cannot answer.
pub(crate) async fn progress(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<DirectiveTreeAnswer> {
    let id = directive_id(id)?;
    let org = state.engine().org();
    let view = fresh_view(state, directive_progress::NAME).await?;
    let tree = directive_progress::directive(&view, id)
        .map_err(projection_error)?
        .ok_or_else(not_found)?;
    let sight = sight(
        &caller.acting,
        &org,
        &tree.summary.issued_by,
        tree.parts.iter().map(|p| &p.row.unit),
    );
    if sight == Sight::None {
        return Err(not_found());
    }
    Ok(DirectiveTreeAnswer::new(
        &tree,
        sight,
        &caller.acting,
        &org,
        &state.zone(),
    ))
}

/// The command on the caller's part, after checking the caller may see the directive (404
/// otherwise, before the engine is asked).
async fn on_part(
    state: &AppState,
    caller: &Caller,
    id: &str,
    options: SubmitOptions,
    command: impl FnOnce(DirectiveId) -> Command + Send + 'static,
) -> ApiResult<PartOutcomeAnswer> {
    let id = directive_id(id)?;
    let acting = caller.acting.clone();
    let outcome = state
        .blocking(move |engine| {
            // Not found for a caller who has no sight of the directive.
            let view = engine.directive(&acting, id)?;
            let index = view.state.part_of(&acting.unit).map(|p| p.index);
            engine
                .submit_with(&acting, command(id), options)
                .map(|outcome| Some((outcome, index)))
        })
        .await?
        .map_err(|e| {
            let error = ApiError::from(e);
            if error.status == StatusCode::NOT_FOUND {
                not_found()
            } else {
                error
            }
        })?;
    let Some((Outcome::Directive { .. }, index)) = outcome else {
        return Err(match outcome {
            None => not_found(),
            Some(_) => ApiError::internal("a directive command answered another outcome"),
        });
    };
    Ok(PartOutcomeAnswer {
        id: id.to_string(),
        unit_id: caller.acting.unit.as_str().to_owned(),
        index,
    })
}

async fn acknowledge(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<AcknowledgeBody>,
) -> ApiResult<Json<PartOutcomeAnswer>> {
    Ok(Json(
        acknowledge_part(&state, &caller, &id, body, options).await?,
    ))
}

/// Acknowledges the caller's unit's part of directive `id` (`POST
/// /api/v1/directives/{id}/acknowledge` and the dashboard's form).
///
/// # Errors
/// 404 naming `id` when the caller sees nothing of it; the engine's refusals.
pub(crate) async fn acknowledge_part(
    state: &AppState,
    caller: &Caller,
    id: &str,
    body: AcknowledgeBody,
    options: SubmitOptions,
) -> ApiResult<PartOutcomeAnswer> {
    on_part(state, caller, id, options, move |directive| {
        Command::AcknowledgeDirective {
            directive,
            note: body.note,
        }
    })
    .await
}

async fn report(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<ReportBody>,
) -> ApiResult<Json<PartOutcomeAnswer>> {
    Ok(Json(
        report_part(&state, &caller, &id, body, options).await?,
    ))
}

/// Reports the caller's unit's part of directive `id` done (`POST
/// /api/v1/directives/{id}/report` and the dashboard's form).
///
/// # Errors
/// 404 naming `id` when the caller sees nothing of it; the engine's refusals.
pub(crate) async fn report_part(
    state: &AppState,
    caller: &Caller,
    id: &str,
    body: ReportBody,
    options: SubmitOptions,
) -> ApiResult<PartOutcomeAnswer> {
    on_part(state, caller, id, options, move |directive| {
        Command::ReportDirective {
            directive,
            note: body.note,
        }
    })
    .await
}
