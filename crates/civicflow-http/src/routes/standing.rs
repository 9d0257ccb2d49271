//! Writing the three lists (三张清单) and merchants' standing (十二分制, 红黄旗, monthly
//! assessments, quarterly recommended merchants): transport only. Which role may, which unit
//! or item the caller reaches, what a derived month scores and what a quarter's proposal is
//! are the domain's (`domain::lists`, `domain::merchants`); these handlers parse, call the
//! engine and translate its answer. Their reads are in `reports.rs`, but for a quarter's
//! proposal, which is the domain's derivation from the standing.
//!
//! A unit whose standing the caller may not see, and a list item of another community, are
//! 404 exactly like missing ones; a list item the caller sees but may not edit is 403. Every
//! write takes an `Idempotency-Key`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::{get, patch, post, MethodRouter};
use axum::{Extension, Json};
use civicflow_core::calendar::Zone;
use civicflow_core::domain::lists::{self, ListCommand, ListItemState, ListKind};
use civicflow_core::domain::merchants::{
    self, FlagColour, QuarterProposal, StandingCommand, StandingState,
};
use civicflow_core::domain::org::roles;
use civicflow_core::engine::{Command, Outcome, SubmitOptions};
use civicflow_core::{CaseId, ListItemId, UnitId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::reports::QueryParams;
use super::{Content, RouteSpec};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::json::{StrictJson, Validate};
use crate::openapi::schema_of;
use crate::path::Path;
use crate::policy::Policy;
use crate::request_id::WriteOptions;
use crate::state::AppState;

/// The routes of this module.
pub fn routes() -> Vec<RouteSpec> {
    // The writes differ only in these: each takes and answers JSON, an Idempotency-Key (and
    // the path parameters `params` narrows), and may answer 404 (outside the caller's sight,
    // or nothing there), 409 (exists already, or a concurrent write), 422 (the domain's
    // refusals) and 503 (the log cannot write).
    let write = |method: Method,
                 path: &'static str,
                 policy: Policy,
                 summary: &'static str,
                 request: fn() -> Value,
                 params: fn() -> Value,
                 response: fn() -> Value,
                 status: u16,
                 handler: MethodRouter<AppState>| RouteSpec {
        method,
        path,
        policy,
        summary,
        tag: if path.starts_with("/api/v1/lists") {
            "lists"
        } else {
            "standing"
        },
        request: Some(request),
        params: Some(params),
        response: Some(response),
        content: Content::Json,
        status,
        also: &[],
        errors: &[404, 409, 422, 503],
        handler,
    };
    let stewards = Policy::Roles(merchants::STEWARDS);
    vec![
        // The three lists.
        write(
            Method::POST,
            "/api/v1/lists/{kind}",
            Policy::Roles(lists::EDITORS),
            "Add an item to one of the three lists (kind: resources, needs, projects) for a unit: the caller's (default) or one below it (403 otherwise). 404 for another kind or a unit that does not exist.",
            schema_of::<NewListItem>,
            kind_params,
            schema_of::<ListItemAnswer>,
            201,
            post(add_item),
        ),
        write(
            Method::PATCH,
            "/api/v1/lists/{kind}/{id}",
            Policy::Roles(lists::EDITORS),
            "Change a list item's title, description or both (a field left out keeps its text; the same text again changes nothing). 404 for an item of another community or list; 403 for one of a unit outside the caller's; 422 once retired.",
            schema_of::<ListItemChange>,
            kind_params,
            schema_of::<ListItemAnswer>,
            200,
            patch(change_item),
        ),
        write(
            Method::POST,
            "/api/v1/lists/{kind}/{id}/link",
            Policy::Roles(lists::EDITORS),
            "Link a case to a list item (a joint-meeting resolution, an activity; linking it again changes nothing). A case the caller may not see is 422 as if it did not exist.",
            schema_of::<ListItemLink>,
            kind_params,
            schema_of::<ListItemAnswer>,
            200,
            post(link_item),
        ),
        write(
            Method::POST,
            "/api/v1/lists/{kind}/{id}/retire",
            Policy::Roles(lists::EDITORS),
            "Retire a list item, with the reason (retiring it again changes nothing). It stays readable with GET /api/v1/lists/{kind}?retired=true.",
            schema_of::<Reason>,
            kind_params,
            schema_of::<ListItemAnswer>,
            200,
            post(retire_item),
        ),
        // Merchants' standing.
        write(
            Method::POST,
            "/api/v1/units/{id}/standing/cycle",
            stewards,
            "Start a shop's twelve-point cycle (e.g. 2026) at 12 points; a new cycle replaces the running one (409 when it is the same). For units below the caller's; 404 outside it; 422 for a unit that is not a shop.",
            schema_of::<CycleStart>,
            crate::idempotency::header_param,
            schema_of::<StandingAnswer>,
            200,
            post(start_cycle),
        ),
        write(
            Method::POST,
            "/api/v1/units/{id}/standing/deductions",
            Policy::Roles(merchants::DEDUCTORS),
            "Deduct 1 to 12 points for a violation (never below zero): community administrators and the patrols (grid workers, liaison officers) above the shop. 404 outside the caller's unit; 422 without a running cycle.",
            schema_of::<PointsBody>,
            crate::idempotency::header_param,
            schema_of::<StandingAnswer>,
            200,
            post(deduct),
        ),
        write(
            Method::POST,
            "/api/v1/units/{id}/standing/restorations",
            stewards,
            "Restore 1 to 12 points once a rectification was verified (never above 12; 422 when all 12 are there).",
            schema_of::<PointsBody>,
            crate::idempotency::header_param,
            schema_of::<StandingAnswer>,
            200,
            post(restore),
        ),
        write(
            Method::POST,
            "/api/v1/units/{id}/standing/flags",
            stewards,
            "Award a red or yellow flag (红黄旗) for a month (YYYY-MM); one flag per month (422 while one is held: revoke it first).",
            schema_of::<FlagAward>,
            crate::idempotency::header_param,
            schema_of::<StandingAnswer>,
            200,
            post(award_flag),
        ),
        write(
            Method::POST,
            "/api/v1/units/{id}/standing/flags/{period}/revoke",
            stewards,
            "Take back the flag held for a month (YYYY-MM), with the reason; 404 when none is held.",
            schema_of::<Reason>,
            period_params,
            schema_of::<StandingAnswer>,
            200,
            post(revoke_flag),
        ),
        write(
            Method::POST,
            "/api/v1/units/{id}/standing/months/{month}",
            stewards,
            "Record a month's assessment (YYYY-MM) with a score of 0 to 100 and notes; a later assessment of the month replaces it.",
            schema_of::<MonthAssessment>,
            month_params,
            schema_of::<StandingAnswer>,
            200,
            post(assess_month),
        ),
        write(
            Method::POST,
            "/api/v1/units/{id}/standing/months/{month}/derive",
            stewards,
            "Record a month's assessment derived from the standing: the points kept at the month's end out of 12 scaled to 100, plus 10 for a red flag or minus 20 for a yellow one that month, kept within 0 to 100 (docs/engine.md, \"Merchants' standing\"); the notes say so. 422 for a month that is not over, or one before any cycle.",
            schema_of::<NoFields>,
            month_params,
            schema_of::<StandingAnswer>,
            200,
            post(derive_month),
        ),
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/units/{id}/standing/quarters/{quarter}/proposal",
            policy: Policy::Roles(roles::ACT_FOR_UNITS),
            summary: "A quarter's proposal (YYYYQn), derived from its three monthly scores: their mean rounded, and recommended (联盟推荐商户) for a shop at 90 or above with no yellow flag in the quarter; no score and no recommendation while a month is not assessed. Not official until confirmed. The caller's unit or one below it (404 otherwise).",
            tag: "standing",
            request: None,
            params: Some(|| json!([quarter_param()])),
            response: Some(schema_of::<ProposalAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[404, 422, 503],
            handler: get(proposal),
        },
        write(
            Method::POST,
            "/api/v1/units/{id}/standing/quarters/{quarter}/confirm",
            stewards,
            "Make a quarter's rating official (the QuarterlyRated event): recommended and score as given, each left out as proposed (422 naming it when there is no proposal: a month is not assessed). Community administrators above the shop.",
            schema_of::<QuarterConfirmation>,
            quarter_params,
            schema_of::<StandingAnswer>,
            200,
            post(confirm_quarter),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Parameters

fn kind_params() -> Value {
    let mut params = crate::idempotency::header_param();
    if let Some(list) = params.as_array_mut() {
        list.push(json!({
            "name": "kind", "in": "path", "required": true,
            "schema": {"type": "string", "enum": ["resources", "needs", "projects"]},
            "description": "the list (资源清单, 需求清单, 项目清单); any other is 404"
        }));
    }
    params
}

fn month_param(name: &str) -> Value {
    json!({
        "name": name, "in": "path", "required": true,
        "schema": {"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"},
        "description": "a month, YYYY-MM; another shape is 422"
    })
}

fn quarter_param() -> Value {
    json!({
        "name": "quarter", "in": "path", "required": true,
        "schema": {"type": "string", "pattern": "^[0-9]{4}Q[1-4]$"},
        "description": "a quarter, YYYYQn (2026Q2); another shape is 422"
    })
}

fn with_header(param: Value) -> Value {
    let mut params = crate::idempotency::header_param();
    if let Some(list) = params.as_array_mut() {
        list.push(param);
    }
    params
}

fn period_params() -> Value {
    with_header(month_param("period"))
}

fn month_params() -> Value {
    with_header(month_param("month"))
}

fn quarter_params() -> Value {
    with_header(quarter_param())
}

// ---------------------------------------------------------------------------------------------
// Bodies

/// A new list item.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewListItem {
    /// One line.
    #[schemars(length(min = 1, max = 200))]
    pub title: String,
    /// Details, several lines.
    #[serde(default)]
    #[schemars(length(max = 4000))]
    pub description: String,
    /// The unit that offers, needs or runs it: the caller's (default) or one below it.
    #[serde(default)]
    #[schemars(length(min = 1, max = 64))]
    pub unit_id: Option<String>,
}

/// A change to a list item: what is left out (or null) keeps its text.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListItemChange {
    /// The new title, one line.
    #[serde(default)]
    #[schemars(length(min = 1, max = 200))]
    pub title: Option<String>,
    /// The new details.
    #[serde(default)]
    #[schemars(length(max = 4000))]
    pub description: Option<String>,
}

/// A case to link to a list item.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListItemLink {
    /// The case (one the caller may see).
    #[schemars(length(min = 1, max = 64))]
    pub case_id: String,
}

/// Why: retiring a list item, revoking a flag.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    /// One line, 1 to 1000 characters.
    #[schemars(length(min = 1, max = 1000))]
    pub reason: String,
}

/// A scoring cycle to start.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CycleStart {
    /// Its name (2026), one line of 1 to 32 characters.
    #[schemars(length(min = 1, max = 32))]
    pub cycle: String,
}

/// Points deducted or restored.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PointsBody {
    /// 1 to 12.
    #[schemars(range(min = 1, max = 12))]
    pub points: u8,
    /// The violation, or why they are restored: one line, 1 to 1000 characters.
    #[schemars(length(min = 1, max = 1000))]
    pub reason: String,
}

/// A flag's colour, as the API names it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Colour {
    /// 红旗: an example to follow.
    Red,
    /// 黄旗: a warning to improve.
    Yellow,
}

impl From<Colour> for FlagColour {
    fn from(colour: Colour) -> Self {
        match colour {
            Colour::Red => FlagColour::Red,
            Colour::Yellow => FlagColour::Yellow,
        }
    }
}

impl From<FlagColour> for Colour {
    fn from(colour: FlagColour) -> Self {
        match colour {
            FlagColour::Red => Colour::Red,
            FlagColour::Yellow => Colour::Yellow,
        }
    }
}

/// A flag to award.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagAward {
    /// Red or yellow.
    pub colour: Colour,
    /// The month it is for, YYYY-MM.
    #[schemars(regex(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])$"))]
    pub period: String,
    /// Why: one line, 1 to 1000 characters.
    #[schemars(length(min = 1, max = 1000))]
    pub reason: String,
}

/// A month's assessment, given.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MonthAssessment {
    /// 0 to 100.
    #[schemars(range(max = 100))]
    pub score: u8,
    /// Notes, several lines.
    #[serde(default)]
    #[schemars(length(max = 4000))]
    pub notes: String,
}

/// No fields: the request says everything in its path (`{}` or no body).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

/// A quarter's confirmation: what is left out (or null) is as proposed.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuarterConfirmation {
    /// Whether the shop is a recommended merchant (联盟推荐商户) this quarter.
    #[serde(default)]
    pub recommended: Option<bool>,
    /// 0 to 100.
    #[serde(default)]
    #[schemars(range(max = 100))]
    pub score: Option<u8>,
}

/// Bodies the route checks no further than their JSON shape: the texts' rules (one line,
/// blank, length) and the values' ranges are the domain's, the same for every channel, and
/// refused with 422 naming the field.
macro_rules! checked_by_the_domain {
    ($($body:ty),* $(,)?) => {
        $(impl Validate for $body {
            fn validate(&self) -> Result<(), ApiError> {
                Ok(())
            }
        })*
    };
}

checked_by_the_domain!(
    NewListItem,
    ListItemChange,
    ListItemLink,
    Reason,
    CycleStart,
    PointsBody,
    FlagAward,
    MonthAssessment,
    NoFields,
    QuarterConfirmation,
);

// ---------------------------------------------------------------------------------------------
// Answers

/// A list, as the API names it.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListName {
    /// 资源清单.
    Resources,
    /// 需求清单.
    Needs,
    /// 项目清单.
    Projects,
}

impl From<ListKind> for ListName {
    fn from(kind: ListKind) -> Self {
        match kind {
            ListKind::Resources => ListName::Resources,
            ListKind::Needs => ListName::Needs,
            ListKind::Projects => ListName::Projects,
        }
    }
}

/// A list item after a write.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ListItemAnswer {
    /// Its id.
    pub id: String,
    /// Its list.
    pub list: ListName,
    /// Its title.
    pub title: String,
    /// Its details.
    pub description: String,
    /// The unit that offers, needs or runs it.
    pub unit_id: String,
    /// The cases linked to it, in the order they were linked.
    pub cases: Vec<String>,
    /// Whether it was retired.
    pub retired: bool,
    /// When it was added (RFC 3339 in the calendar's zone).
    pub added_at: String,
    /// The version of its stream.
    pub version: u64,
}

impl ListItemAnswer {
    fn of(item: &ListItemState, zone: &Zone) -> Self {
        Self {
            id: item.id.to_string(),
            list: item.list.into(),
            title: item.title.clone(),
            description: item.description.clone(),
            unit_id: item.unit.to_string(),
            cases: item.cases.iter().map(ToString::to_string).collect(),
            retired: item.retired,
            added_at: zone.format(item.added_at),
            version: item.version.map_or(0, |v| v.get()),
        }
    }
}

/// A month's assessment.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MonthAnswer {
    /// 0 to 100.
    pub score: u8,
    /// Its notes (a derived one says what it was derived from).
    pub notes: String,
}

/// A quarter's rating.
#[derive(Debug, Serialize, JsonSchema)]
pub struct QuarterAnswer {
    /// Whether a recommended merchant.
    pub recommended: bool,
    /// 0 to 100.
    pub score: u8,
}

/// A unit's standing after a write.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StandingAnswer {
    /// The unit.
    pub unit_id: String,
    /// The running cycle; null before the first.
    #[schemars(required, extend("nullable" = true))]
    pub cycle: Option<String>,
    /// The points left in it; null before the first cycle.
    #[schemars(required, extend("nullable" = true))]
    pub points: Option<u8>,
    /// Flags held, by month.
    pub flags: BTreeMap<String, Colour>,
    /// Monthly assessments, by month.
    pub monthly: BTreeMap<String, MonthAnswer>,
    /// Quarterly ratings, by quarter.
    pub quarterly: BTreeMap<String, QuarterAnswer>,
    /// The version of its stream.
    pub version: u64,
}

impl StandingAnswer {
    fn of(state: &StandingState) -> Self {
        Self {
            unit_id: state.unit.to_string(),
            cycle: state.cycle.as_ref().map(|(cycle, _)| cycle.clone()),
            points: state.points(),
            flags: state
                .flags
                .iter()
                .map(|(period, colour)| (period.clone(), (*colour).into()))
                .collect(),
            monthly: state
                .monthly
                .iter()
                .map(|(month, score)| {
                    let notes = state.monthly_notes.get(month).cloned().unwrap_or_default();
                    (
                        month.clone(),
                        MonthAnswer {
                            score: *score,
                            notes,
                        },
                    )
                })
                .collect(),
            quarterly: state
                .quarterly
                .iter()
                .map(|(quarter, (recommended, score))| {
                    (
                        quarter.clone(),
                        QuarterAnswer {
                            recommended: *recommended,
                            score: *score,
                        },
                    )
                })
                .collect(),
            version: state.version.map_or(0, |v| v.get()),
        }
    }
}

/// One month of a proposal.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProposedMonthAnswer {
    /// YYYY-MM.
    pub month: String,
    /// Its assessed score; null when not assessed.
    #[schemars(required, extend("nullable" = true))]
    pub score: Option<u8>,
    /// The flag held for it; null for none.
    #[schemars(required, extend("nullable" = true))]
    pub flag: Option<Colour>,
}

/// A quarter's proposal.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProposalAnswer {
    /// The unit.
    pub unit_id: String,
    /// YYYYQn.
    pub quarter: String,
    /// Its three months.
    pub months: Vec<ProposedMonthAnswer>,
    /// The mean of the three scores, rounded; null while a month is not assessed.
    #[schemars(required, extend("nullable" = true))]
    pub score: Option<u8>,
    /// Whether proposed as a recommended merchant; null while a month is not assessed.
    #[schemars(required, extend("nullable" = true))]
    pub recommended: Option<bool>,
    /// Why, in words.
    pub reason: String,
    /// The least mean that is recommended.
    pub recommend_at: u8,
    /// Whether the quarter was confirmed already, and as what (a confirmation again
    /// replaces it); null when it was not.
    #[schemars(required, extend("nullable" = true))]
    pub confirmed: Option<QuarterAnswer>,
}

// ---------------------------------------------------------------------------------------------
// Translation

/// The list a path names.
///
/// # Errors
/// 404 naming `kind` for any other.
fn list_kind(kind: &str) -> ApiResult<ListKind> {
    match kind {
        "resources" => Ok(ListKind::Resources),
        "needs" => Ok(ListKind::Needs),
        "projects" => Ok(ListKind::Projects),
        _ => Err(ApiError::not_found(&format!(
            "list {kind} (the lists are resources, needs, projects)"
        ))
        .field("kind")),
    }
}

/// The unit a path names.
///
/// # Errors
/// 404 naming `id` when it cannot be a unit id (so names no unit).
fn unit_of_path(id: &str) -> ApiResult<UnitId> {
    UnitId::new(id).map_err(|_| ApiError::not_found(&format!("unit {id}")).field("id"))
}

/// `error` with the domain's field names as the request spells them (`renames`: domain name,
/// request name).
fn renamed(mut error: ApiError, renames: &[(&str, &str)]) -> ApiError {
    if let Some(field) = &error.field {
        if let Some((_, request)) = renames.iter().find(|(domain, _)| domain == field) {
            error.field = Some((*request).to_owned());
        }
    }
    error
}

/// How the list routes spell the domain's fields.
const ITEM_FIELDS: &[(&str, &str)] = &[
    ("unit", "unit_id"),
    ("list item", "id"),
    ("item", "id"),
    ("case", "case_id"),
];

/// How the standing routes spell the domain's fields: the unit is the path's `id`, a missing
/// flag the path's period.
const STANDING_FIELDS: &[(&str, &str)] = &[("unit", "id"), ("flag for period", "period")];

// ---------------------------------------------------------------------------------------------
// The lists

async fn add_item(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path(kind): Path<String>,
    StrictJson(body): StrictJson<NewListItem>,
) -> ApiResult<(StatusCode, Json<ListItemAnswer>)> {
    let list = list_kind(&kind)?;
    let unit = match &body.unit_id {
        Some(id) => UnitId::new(id.as_str())
            .map_err(|e| ApiError::bad_request(e.to_string()).field("unit_id"))?,
        None => caller.acting.unit.clone(),
    };
    let command = Command::AddListItem {
        list,
        title: body.title,
        description: body.description,
        unit,
    };
    let acting = caller.acting.clone();
    let outcome = state
        .blocking(move |engine| engine.submit_with(&acting, command, options))
        .await?
        .map_err(|e| renamed(e.into(), ITEM_FIELDS))?;
    Ok((StatusCode::CREATED, Json(item_answer(outcome, &state)?)))
}

/// The list and the item a path names.
///
/// # Errors
/// 404 naming `kind` for an unknown list, `id` for a malformed id (which names no item).
fn item_of_path(kind: &str, id: &str) -> ApiResult<(ListKind, ListItemId)> {
    let list = list_kind(kind)?;
    let item = ListItemId::parse(id).map_err(|_| ApiError::not_found("list item").field("id"))?;
    Ok((list, item))
}

/// Runs `command` on the item of the path, after checking that the caller sees it in that
/// list (404 otherwise, as for a missing one).
async fn on_item(
    state: &AppState,
    caller: &Caller,
    (kind, id): (String, String),
    options: SubmitOptions,
    command: ListCommand,
) -> ApiResult<Json<ListItemAnswer>> {
    let (list, item) = item_of_path(&kind, &id)?;
    let acting = caller.acting.clone();
    let outcome = state
        .blocking(move |engine| {
            let seen = engine.list_item(&acting, item)?;
            if seen.list != list {
                return Ok(None);
            }
            engine
                .submit_with(&acting, Command::ListItem { item, command }, options)
                .map(Some)
        })
        .await?
        .map_err(|e| renamed(e.into(), ITEM_FIELDS))?
        .ok_or_else(|| {
            ApiError::not_found(&format!("list item {item} in the list {kind}")).field("id")
        })?;
    Ok(Json(item_answer(outcome, state)?))
}

fn item_answer(outcome: Outcome, state: &AppState) -> ApiResult<ListItemAnswer> {
    match outcome {
        Outcome::ListItem {
            state: Some(item), ..
        } => Ok(ListItemAnswer::of(&item, &state.zone())),
        _ => Err(ApiError::internal(
            "a list item's command answered another outcome",
        )),
    }
}

async fn change_item(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path(path): Path<(String, String)>,
    StrictJson(body): StrictJson<ListItemChange>,
) -> ApiResult<Json<ListItemAnswer>> {
    let command = ListCommand::Update {
        title: body.title,
        description: body.description,
    };
    on_item(&state, &caller, path, options, command).await
}

async fn link_item(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path(path): Path<(String, String)>,
    StrictJson(body): StrictJson<ListItemLink>,
) -> ApiResult<Json<ListItemAnswer>> {
    let case = CaseId::parse(body.case_id.trim()).map_err(|_| {
        ApiError::bad_request(format!(
            "case_id must be a case's id (a UUID), not {:?}",
            body.case_id
        ))
        .field("case_id")
    })?;
    on_item(&state, &caller, path, options, ListCommand::Link { case }).await
}

async fn retire_item(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path(path): Path<(String, String)>,
    StrictJson(body): StrictJson<Reason>,
) -> ApiResult<Json<ListItemAnswer>> {
    let command = ListCommand::Retire {
        reason: body.reason,
    };
    on_item(&state, &caller, path, options, command).await
}

// ---------------------------------------------------------------------------------------------
// Standing

/// Runs `command` on the standing of the unit the path names.
async fn on_standing(
    state: &AppState,
    caller: &Caller,
    id: &str,
    options: SubmitOptions,
    command: StandingCommand,
) -> ApiResult<Json<StandingAnswer>> {
    let unit = unit_of_path(id)?;
    let acting = caller.acting.clone();
    let outcome = state
        .blocking(move |engine| {
            engine.submit_with(&acting, Command::Standing { unit, command }, options)
        })
        .await?
        .map_err(|e| renamed(e.into(), STANDING_FIELDS))?;
    match outcome {
        Outcome::Standing {
            state: Some(standing),
            ..
        } => Ok(Json(StandingAnswer::of(&standing))),
        _ => Err(ApiError::internal(
            "a standing's command answered another outcome",
        )),
    }
}

async fn start_cycle(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<CycleStart>,
) -> ApiResult<Json<StandingAnswer>> {
    let command = StandingCommand::StartCycle { cycle: body.cycle };
    on_standing(&state, &caller, &id, options, command).await
}

async fn deduct(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<PointsBody>,
) -> ApiResult<Json<StandingAnswer>> {
    let command = StandingCommand::Deduct {
        points: body.points,
        reason: body.reason,
    };
    on_standing(&state, &caller, &id, options, command).await
}

async fn restore(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<PointsBody>,
) -> ApiResult<Json<StandingAnswer>> {
    let command = StandingCommand::Restore {
        points: body.points,
        reason: body.reason,
    };
    on_standing(&state, &caller, &id, options, command).await
}

async fn award_flag(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<FlagAward>,
) -> ApiResult<Json<StandingAnswer>> {
    let command = StandingCommand::AwardFlag {
        colour: body.colour.into(),
        period: body.period,
        reason: body.reason,
    };
    on_standing(&state, &caller, &id, options, command).await
}

async fn revoke_flag(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path((id, period)): Path<(String, String)>,
    StrictJson(body): StrictJson<Reason>,
) -> ApiResult<Json<StandingAnswer>> {
    let command = StandingCommand::RevokeFlag {
        period,
        reason: body.reason,
    };
    on_standing(&state, &caller, &id, options, command).await
}

async fn assess_month(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path((id, month)): Path<(String, String)>,
    StrictJson(body): StrictJson<MonthAssessment>,
) -> ApiResult<Json<StandingAnswer>> {
    let command = StandingCommand::AssessMonth {
        month,
        score: body.score,
        notes: body.notes,
    };
    on_standing(&state, &caller, &id, options, command).await
}

async fn derive_month(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path((id, month)): Path<(String, String)>,
    StrictJson(NoFields {}): StrictJson<NoFields>,
) -> ApiResult<Json<StandingAnswer>> {
    let command = StandingCommand::DeriveMonth { month };
    on_standing(&state, &caller, &id, options, command).await
}

async fn proposal(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, quarter)): Path<(String, String)>,
    uri: Uri,
) -> ApiResult<Json<ProposalAnswer>> {
    QueryParams::parse(&uri, &[])?;
    let unit = unit_of_path(&id)?;
    let acting = caller.acting.clone();
    let asked = unit.clone();
    let proposal = state
        .blocking(move |engine| engine.quarter_proposal(&acting, &asked, &quarter))
        .await?
        .map_err(|e| renamed(e.into(), STANDING_FIELDS))?;
    Ok(Json(proposal_answer(&unit, proposal)))
}

fn proposal_answer(unit: &UnitId, proposal: QuarterProposal) -> ProposalAnswer {
    ProposalAnswer {
        unit_id: unit.to_string(),
        quarter: proposal.quarter,
        months: proposal
            .months
            .into_iter()
            .map(|m| ProposedMonthAnswer {
                month: m.month,
                score: m.score,
                flag: m.flag.map(Into::into),
            })
            .collect(),
        score: proposal.score,
        recommended: proposal.recommended,
        reason: proposal.reason,
        recommend_at: merchants::RECOMMEND_AT,
        confirmed: proposal
            .confirmed
            .map(|(recommended, score)| QuarterAnswer { recommended, score }),
    }
}

async fn confirm_quarter(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path((id, quarter)): Path<(String, String)>,
    StrictJson(body): StrictJson<QuarterConfirmation>,
) -> ApiResult<Json<StandingAnswer>> {
    let command = StandingCommand::ConfirmQuarter {
        quarter,
        recommended: body.recommended,
        score: body.score,
    };
    on_standing(&state, &caller, &id, options, command).await
}
