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
use civicflow_projections::{ProjectionError, View};
use serde::Deserialize;
use serde_json::{json, Value};

use super::cases::NOT_BLANK;
use super::reports::{
    fresh_view, page_json, page_params, page_schema, projection_error, QueryParams,
};
use super::{Content, RouteSpec};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::json::{cap, required, StrictJson, Validate};
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
            request: Some(issue_schema),
            params: Some(crate::idempotency::header_param),
            response: Some(issued_schema),
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
            response: Some(list_schema),
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
            response: Some(tree_schema),
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
            request: Some(acknowledge_schema),
            params: Some(crate::idempotency::header_param),
            response: Some(part_outcome_schema),
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
            request: Some(report_schema),
            params: Some(crate::idempotency::header_param),
            response: Some(part_outcome_schema),
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

const KINDS: [&str; 6] = [
    "epidemic_prevention",
    "party_service",
    "consumer_protection",
    "staff_training",
    "social_stability",
    "other",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueBody {
    title: String,
    #[serde(default)]
    body: String,
    kind: DirectiveKind,
    #[serde(default)]
    unit_id: Option<String>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AcknowledgeBody {
    #[serde(default)]
    note: String,
}

impl Validate for AcknowledgeBody {
    fn validate(&self) -> Result<(), ApiError> {
        cap("note", &self.note, TEXT_MAX)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    note: String,
}

impl Validate for ReportBody {
    fn validate(&self) -> Result<(), ApiError> {
        required("note", &self.note)?;
        cap("note", &self.note, TEXT_MAX)
    }
}

fn issue_schema() -> Value {
    json!({
        "type": "object",
        "required": ["title", "kind", "within"],
        "additionalProperties": false,
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": TITLE_MAX, "pattern": NOT_BLANK},
            "body": {"type": "string", "maxLength": TEXT_MAX, "description": "what to do"},
            "kind": {"type": "string", "enum": KINDS},
            "unit_id": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": NOT_BLANK, "description": "the issuing unit: the caller's (default) or one below it"},
            "within": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": NOT_BLANK, "description": "how long each unit has to report done: `3 working days`, `8 working hours`, `48 hours`; more than zero and at most a year (366 days, 260 working days, 2080 working hours, 124800 working minutes), else 400"}
        }
    })
}

fn issued_schema() -> Value {
    json!({
        "type": "object",
        "required": ["id", "issued_by", "parts"],
        "properties": {
            "id": {"type": "string"},
            "issued_by": {"type": "string"},
            "parts": {"type": "integer", "description": "units reached"},
            "within": {"type": "string"}
        }
    })
}

fn acknowledge_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {"note": {"type": "string", "maxLength": TEXT_MAX}}
    })
}

fn report_schema() -> Value {
    json!({
        "type": "object",
        "required": ["note"],
        "additionalProperties": false,
        "properties": {"note": {"type": "string", "minLength": 1, "maxLength": TEXT_MAX, "pattern": NOT_BLANK, "description": "what was done"}}
    })
}

fn part_outcome_schema() -> Value {
    json!({
        "type": "object",
        "required": ["id", "unit_id", "index"],
        "properties": {
            "id": {"type": "string"},
            "unit_id": {"type": "string"},
            "index": {"type": ["integer", "null"], "description": "the part's number"}
        }
    })
}

fn summary_schema() -> Value {
    json!({
        "type": "object",
        "required": ["id", "title", "kind", "issued_by", "issued_at", "units", "acknowledged", "reported", "complete"],
        "properties": {
            "id": {"type": "string"},
            "title": {"type": "string"},
            "kind": {"type": "string", "enum": KINDS},
            "issued_by": {"type": "string"},
            "issued_at": {"type": "string"},
            "units": {"type": "integer", "description": "parts (units reached)"},
            "acknowledged": {"type": "integer"},
            "reported": {"type": "integer"},
            "missed": {"type": "integer"},
            "complete": {"type": "boolean"}
        }
    })
}

fn list_schema() -> Value {
    page_schema(summary_schema())
}

fn tree_schema() -> Value {
    let mut schema = summary_schema();
    schema["required"] = json!([
        "id",
        "title",
        "issued_by",
        "view",
        "parts",
        "units",
        "complete"
    ]);
    schema["properties"]["view"] = json!({"type": "string", "enum": ["full", "subtree"],
        "description": "subtree: the caller sees its own part and the parts below it, and the totals are theirs"});
    schema["properties"]["parts"] = json!({"type": "array", "items": {"type": "object",
    "required": ["index", "unit_id", "parent", "acknowledged", "reported", "complete"],
    "properties": {
        "index": {"type": "integer"},
        "unit_id": {"type": "string"},
        "parent": {"type": ["integer", "null"], "description": "the part above; null right below the issuer"},
        "acknowledged": {"type": "boolean"},
        "acknowledged_at": {"type": ["string", "null"]},
        "reported": {"type": "boolean"},
        "reported_at": {"type": ["string", "null"]},
        "report": {"type": ["string", "null"]},
        "due_at": {"type": ["string", "null"]},
        "missed": {"type": "boolean"},
        "escalated_to": {"type": ["string", "null"]},
        "complete": {"type": "boolean", "description": "it and every part below reported"},
        "subtree_units": {"type": "integer"},
        "subtree_reported": {"type": "integer"}
    }}});
    schema
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
) -> ApiResult<(StatusCode, Json<Value>)> {
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
        kind: body.kind,
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
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": directive.to_string(),
            "issued_by": unit.as_str(),
            "parts": parts,
            "within": within.to_string(),
        })),
    ))
}

fn summary_json(summary: &DirectiveSummary, zone: &Zone) -> Value {
    json!({
        "id": summary.id.to_string(),
        "title": summary.title,
        "kind": summary.kind,
        "issued_by": summary.issued_by.as_str(),
        "issued_at": zone.format(summary.issued_at),
        "units": summary.units,
        "acknowledged": summary.acknowledged,
        "reported": summary.reported,
        "missed": summary.missed,
        "complete": summary.complete,
    })
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
) -> ApiResult<Json<Value>> {
    let params = QueryParams::parse(&uri, &["after", "limit"])?;
    let page = params.page()?;
    let org = state.engine().org();
    let view = fresh_view(&state, directive_progress::NAME).await?;
    let paged = directive_progress::list(&view, &page).map_err(projection_error)?;
    let mut items = Vec::with_capacity(paged.items.len());
    for summary in &paged.items {
        if sees(&view, &caller.acting, &org, summary).map_err(projection_error)? {
            items.push(summary_json(summary, &state.zone()));
        }
    }
    Ok(Json(page_json(items, paged.next.as_ref())))
}

fn tree_json(
    tree: &DirectiveTree,
    sight: Sight,
    acting: &Acting,
    org: &OrgChart,
    zone: &Zone,
) -> Value {
    let time = |at: civicflow_core::Timestamp| zone.format(at);
    let rolled: BTreeMap<u32, &PartProgress> =
        tree.progress.parts.iter().map(|p| (p.index, p)).collect();
    let visible: Vec<_> = tree
        .parts
        .iter()
        .filter(|p| sight.shows(&p.row.unit, acting, org))
        .collect();
    let parts: Vec<Value> = visible
        .iter()
        .map(|part| {
            let row = &part.row;
            let progress = rolled.get(&part.index);
            json!({
                "index": part.index,
                "unit_id": row.unit.as_str(),
                "parent": row.parent,
                "acknowledged": row.acknowledged_at.is_some(),
                "acknowledged_at": row.acknowledged_at.map(time),
                "reported": row.reported_at.is_some(),
                "reported_at": row.reported_at.map(time),
                "report": row.report,
                "due_at": row.due_at.map(time),
                "missed": row.missed,
                "escalated_to": row.escalated_to.as_ref().map(UnitId::as_str),
                "complete": progress.is_some_and(|p| p.complete),
                "subtree_units": progress.map_or(1, |p| p.units),
                "subtree_reported": progress.map_or(0, |p| p.units_reported),
            })
        })
        .collect();
    let mut body = summary_json(&tree.summary, zone);
    if sight == Sight::Subtree {
        // The totals of what the caller sees.
        let count = |f: &dyn Fn(&PartDetail) -> bool| visible.iter().filter(|p| f(p)).count();
        body["units"] = json!(visible.len());
        body["acknowledged"] = json!(count(&|p| p.row.acknowledged_at.is_some()));
        body["reported"] = json!(count(&|p| p.row.reported_at.is_some()));
        body["missed"] = json!(count(&|p| p.row.missed));
        body["complete"] = json!(visible.iter().all(|p| p.row.reported_at.is_some()));
    }
    body["view"] = json!(match sight {
        Sight::Full => "full",
        _ => "subtree",
    });
    body["parts"] = json!(parts);
    body
}

async fn read(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Json<Value>> {
    QueryParams::parse(&uri, &[])?;
    let id = directive_id(&id)?;
    let org = state.engine().org();
    let view = fresh_view(&state, directive_progress::NAME).await?;
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
    Ok(Json(tree_json(
        &tree,
        sight,
        &caller.acting,
        &org,
        &state.zone(),
    )))
}

/// The command on the caller's part, after checking the caller may see the directive (404
/// otherwise, before the engine is asked).
async fn on_part(
    state: &AppState,
    caller: &Caller,
    id: &str,
    options: SubmitOptions,
    command: impl FnOnce(DirectiveId) -> Command + Send + 'static,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(json!({
        "id": id.to_string(),
        "unit_id": caller.acting.unit.as_str(),
        "index": index,
    })))
}

async fn acknowledge(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<AcknowledgeBody>,
) -> ApiResult<Json<Value>> {
    on_part(&state, &caller, &id, options, move |directive| {
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
) -> ApiResult<Json<Value>> {
    on_part(&state, &caller, &id, options, move |directive| {
        Command::ReportDirective {
            directive,
            note: body.note,
        }
    })
    .await
}
