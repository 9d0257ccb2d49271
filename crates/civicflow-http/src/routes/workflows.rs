//! Workflow definitions over HTTP: reading them (any valid token: a client shows which
//! actions exist), publishing one (a top unit's community administrators: an event in the
//! log, so every restart and every instance knows it with no file at hand), and moving a case
//! to another version of its workflow. The rules (versions only go up, a published version
//! never changes, the roles a definition names must exist) are the core's
//! (`domain/workflow/published.rs`).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use civicflow_core::domain::fields::{FieldKind, FieldSpec};
use civicflow_core::domain::org::roles;
use civicflow_core::domain::workflow::{DeadlineRule, Definition, WorkflowId};
use civicflow_core::domain::Rejection;
use civicflow_core::engine::{Command, Outcome, WorkflowOrigin};
use civicflow_core::{CaseId, Role};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Content, RouteSpec};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::json::{StrictJson, Validate};
use crate::openapi::schema_of;
use crate::path::Path;
use crate::policy::Policy;
use crate::request_id::WriteOptions;
use crate::state::AppState;

/// The largest definition read, in bytes (the core's own limit is higher; a body over this is
/// refused before it is read whole).
const BODY_MAX: usize = 256 * 1024;

/// The routes of this module.
pub fn routes() -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/workflows",
            policy: Policy::Authenticated,
            summary: "The workflow definitions in force, every version (the built-in ones and those published in the store): stages (with the terminal flag and deadline), actions (from, to, roles, scope, fields) and the fields asked when a case is opened.",
            tag: "workflows",
            request: None,
            params: None,
            response: Some(schema_of::<WorkflowsAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[],
            handler: get(workflows),
        },
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/workflows",
            policy: Policy::Roles(&[roles::COMMUNITY_ADMIN]),
            summary: "Publish a workflow definition (community administrators of a top unit): its TOML (`Content-Type: application/toml`, the format of the files in docs/workflows.md) or the same as JSON. A new version of an id must be higher than every one in force; the same definition again changes nothing (200). A definition that does not validate is 422 naming the key at fault (`initial_stage`, `actions.<id>.roles`). Cases already open stay on their version.",
            tag: "workflows",
            request: Some(definition_body_schema),
            params: Some(crate::idempotency::header_param),
            response: Some(schema_of::<PublishedAnswer>),
            content: Content::Json,
            status: 201,
            also: &[200],
            errors: &[403, 413, 415, 422, 503],
            handler: post(publish),
        },
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/workflows/{id}",
            policy: Policy::Authenticated,
            summary: "A workflow's newest version (what new cases get). 404 for an id no definition has.",
            tag: "workflows",
            request: None,
            params: None,
            response: Some(schema_of::<WorkflowAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[404, 503],
            handler: get(workflow),
        },
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/workflows/{id}/versions",
            policy: Policy::Authenticated,
            summary: "Every version of a workflow, oldest first, each with where it comes from (configured: built in or loaded by the embedder; published: in the store's log, when and by whom) and whether it is the newest.",
            tag: "workflows",
            request: None,
            params: None,
            response: Some(schema_of::<VersionsAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[404, 503],
            handler: get(versions),
        },
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/cases/{id}/migrate",
            policy: Policy::Roles(&[roles::COMMUNITY_ADMIN]),
            summary: "Move a case to another version of its workflow (community administrators over the case's lead unit): a `CaseMigrated` event in its history. Refused (422) when its stage does not exist in that version. 404 for a case the caller cannot see.",
            tag: "workflows",
            request: Some(schema_of::<MigrateBody>),
            params: Some(crate::idempotency::header_param),
            response: Some(schema_of::<MigratedAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[403, 404, 409, 422, 503],
            handler: post(migrate),
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// Bodies

/// Every definition in force.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WorkflowsAnswer {
    /// By id, then version.
    pub workflows: Vec<WorkflowAnswer>,
}

/// A definition as the API shows it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WorkflowAnswer {
    /// Its id.
    pub id: String,
    /// Its version.
    pub version: u32,
    /// `id@version`.
    pub reference: String,
    /// The newest version of its workflow (what new cases get).
    pub latest: bool,
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Whether Open311 clients may file it.
    pub public: bool,
    /// Where a case starts.
    pub initial_stage: String,
    /// Who opens a case, where, with which fields.
    pub open: OpenAnswer,
    /// Its stages.
    pub stages: Vec<StageAnswer>,
    /// Its actions.
    pub actions: Vec<ActionAnswer>,
}

/// Who opens a case.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OpenAnswer {
    /// The roles that may.
    pub roles: Vec<String>,
    /// `any` or `subtree`.
    pub scope: String,
    /// The fields asked.
    pub fields: Vec<FieldAnswer>,
}

/// A field of an opening or an action.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FieldAnswer {
    /// Its name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Whether it must be given.
    pub required: bool,
    /// Its label for people.
    pub label: String,
    /// The values a `choice` or `choices` field takes.
    pub choices: Vec<String>,
    /// Unit fields only: which units the action may hand the case to (docs/workflows.md,
    /// Reach).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reach: Option<ReachName>,
}

/// A field's type.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum FieldType {
    Text,
    Number,
    Integer,
    Bool,
    Datetime,
    Unit,
    Choice,
    Choices,
    Rating,
    Case,
}

impl From<FieldKind> for FieldType {
    fn from(kind: FieldKind) -> Self {
        match kind {
            FieldKind::Text => FieldType::Text,
            FieldKind::Number => FieldType::Number,
            FieldKind::Integer => FieldType::Integer,
            FieldKind::Bool => FieldType::Bool,
            FieldKind::Datetime => FieldType::Datetime,
            FieldKind::Unit => FieldType::Unit,
            FieldKind::Choice => FieldType::Choice,
            FieldKind::Choices => FieldType::Choices,
            FieldKind::Rating => FieldType::Rating,
            FieldKind::Case => FieldType::Case,
        }
    }
}

/// How far a unit field reaches.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReachName {
    /// The acting unit's subtree.
    Subtree,
    /// Also units outside the chain (a department, legal aid).
    OutsideChain,
}

/// A stage.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StageAnswer {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Whether a case there is closed.
    pub terminal: bool,
    /// Its deadline, if it has one.
    #[schemars(required, extend("nullable" = true))]
    pub deadline: Option<DeadlineAnswer>,
}

/// A stage's deadline.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DeadlineAnswer {
    /// The limit (`5 working days`).
    pub within: String,
    /// When to remind.
    #[schemars(required, extend("nullable" = true))]
    pub remind_after: Option<String>,
    /// Whether missing it escalates to the supervising unit.
    pub escalate: bool,
    /// How long after the limit it counts as breached.
    #[schemars(required, extend("nullable" = true))]
    pub breach_after: Option<String>,
}

/// An action.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ActionAnswer {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The stages it is taken from.
    pub from: Vec<String>,
    /// The stage it leads to.
    pub to: String,
    /// The roles that may take it.
    pub roles: Vec<String>,
    /// Which units may take it, relative to the case.
    pub scope: ScopeName,
    /// Its fields.
    pub fields: Vec<FieldAnswer>,
}

/// Which units may take an action.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScopeName {
    /// Any unit.
    Any,
    /// The lead unit or a unit above it.
    Subtree,
    /// The lead unit itself.
    Lead,
    /// The lead or a co-handling unit.
    Handler,
    /// The person who asked.
    Requester,
}

fn scope_name(scope: civicflow_core::domain::workflow::Scope) -> ScopeName {
    use civicflow_core::domain::workflow::Scope;
    match scope {
        Scope::Any => ScopeName::Any,
        Scope::Subtree => ScopeName::Subtree,
        Scope::Lead => ScopeName::Lead,
        Scope::Handler => ScopeName::Handler,
        Scope::Requester => ScopeName::Requester,
    }
}

fn role_names(roles: &[Role]) -> Vec<String> {
    roles.iter().map(ToString::to_string).collect()
}

fn field_answers(fields: &[FieldSpec]) -> Vec<FieldAnswer> {
    fields
        .iter()
        .map(|f| FieldAnswer {
            name: f.name.clone(),
            kind: f.kind.into(),
            required: f.required,
            label: f.label.clone(),
            choices: f.choices.clone(),
            reach: (f.kind == FieldKind::Unit).then(|| match f.reach.as_str() {
                "outside_chain" => ReachName::OutsideChain,
                _ => ReachName::Subtree,
            }),
        })
        .collect()
}

fn deadline_answer(rule: &DeadlineRule) -> DeadlineAnswer {
    DeadlineAnswer {
        within: rule.within.to_string(),
        remind_after: rule.remind_after.map(|s| s.to_string()),
        escalate: rule.escalate,
        breach_after: rule.breach_after.map(|s| s.to_string()),
    }
}

/// A definition as the API shows it.
pub fn workflow_answer(definition: &Definition, latest: bool) -> WorkflowAnswer {
    WorkflowAnswer {
        id: definition.id.to_string(),
        version: definition.version,
        reference: definition.reference().to_string(),
        latest,
        name: definition.name.clone(),
        description: definition.description.clone(),
        public: definition.public,
        initial_stage: definition.initial_stage.clone(),
        open: OpenAnswer {
            roles: role_names(&definition.open.roles),
            scope: match scope_name(definition.open.scope) {
                ScopeName::Subtree => "subtree".into(),
                _ => "any".into(),
            },
            fields: field_answers(&definition.open.fields),
        },
        stages: definition
            .stages
            .iter()
            .map(|stage| StageAnswer {
                id: stage.id.clone(),
                name: stage.name.clone(),
                terminal: stage.terminal,
                deadline: stage.deadline.as_ref().map(deadline_answer),
            })
            .collect(),
        actions: definition
            .actions
            .iter()
            .map(|action| ActionAnswer {
                id: action.id.clone(),
                name: action.name.clone(),
                from: action.from.clone(),
                to: action.to.clone(),
                roles: role_names(&action.roles),
                scope: scope_name(action.scope),
                fields: field_answers(&action.fields),
            })
            .collect(),
    }
}

/// What publishing answers.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PublishedAnswer {
    /// The workflow.
    pub id: String,
    /// The version published.
    pub version: u32,
    /// False: the store had this very definition already.
    pub changed: bool,
}

/// A workflow's versions.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VersionsAnswer {
    /// Oldest first.
    pub versions: Vec<VersionAnswer>,
}

/// One version, with where it comes from.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VersionAnswer {
    /// `configured` (built in, or loaded by the embedder) or `published` (in the log).
    pub origin: OriginName,
    /// When it was published (RFC 3339 in the calendar's zone); null for a configured one.
    #[schemars(required, extend("nullable" = true))]
    pub published_at: Option<String>,
    /// Who published it; null for a configured one.
    #[schemars(required, extend("nullable" = true))]
    pub published_by: Option<PublishedBy>,
    /// The definition.
    pub definition: WorkflowAnswer,
}

/// Who published a version, as the log records it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PublishedBy {
    /// The actor (`system` for `civicflow serve --workflows` and `init --config`).
    pub actor: String,
    /// The role they acted in.
    pub role: String,
    /// The unit they acted for.
    pub unit_id: String,
}

/// Where a version comes from.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OriginName {
    /// Built in, or loaded by the embedder.
    Configured,
    /// Published in the store's log.
    Published,
}

/// The version to move a case to.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateBody {
    /// A version of the case's workflow.
    #[schemars(range(min = 1))]
    pub version: u32,
}

impl Validate for MigrateBody {
    fn validate(&self) -> Result<(), ApiError> {
        if self.version == 0 {
            return Err(ApiError::bad_request("versions start at 1").field("version"));
        }
        Ok(())
    }
}

/// A migrated case.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MigratedAnswer {
    /// The case.
    pub id: String,
    /// `id@version` it runs on now.
    pub workflow: String,
    /// Its stage.
    pub stage: String,
}

/// The request body of `POST /api/v1/workflows` as JSON: a definition, as the TOML files
/// write it (docs/workflows.md); TOML itself is taken as `application/toml`.
fn definition_body_schema() -> Value {
    json!({
        "type": "object",
        "required": ["id", "version", "name", "initial_stage", "open", "stages", "actions"],
        "description": "a workflow definition, with the keys of the TOML files (docs/workflows.md)",
        "properties": {
            "id": {"type": "string", "minLength": 1, "maxLength": 64},
            "version": {"type": "integer", "minimum": 1},
            "name": {"type": "string", "minLength": 1},
            "description": {"type": "string"},
            "public": {"type": "boolean"},
            "initial_stage": {"type": "string"},
            "contact_roles": {"type": "array", "items": {"type": "string"}},
            "open": {"type": "object"},
            "stages": {"type": "array", "items": {"type": "object"}},
            "actions": {"type": "array", "items": {"type": "object"}}
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Handlers

async fn workflows(State(state): State<AppState>) -> Json<WorkflowsAnswer> {
    Json(workflows_answer(&state))
}

/// Every definition in force, every version (`GET /api/v1/workflows`).
pub(crate) fn workflows_answer(state: &AppState) -> WorkflowsAnswer {
    let registry = state.engine().definitions();
    let workflows = registry
        .all()
        .map(|definition| {
            let latest = registry
                .latest(&definition.id)
                .is_some_and(|l| l.version == definition.version);
            workflow_answer(definition, latest)
        })
        .collect();
    WorkflowsAnswer { workflows }
}

fn workflow_id(id: &str) -> ApiResult<WorkflowId> {
    WorkflowId::new(id).map_err(|_| ApiError::not_found("workflow"))
}

async fn workflow(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<WorkflowAnswer>> {
    let id = workflow_id(&id)?;
    let registry = state.engine().definitions();
    let latest = registry
        .latest(&id)
        .ok_or_else(|| ApiError::not_found("workflow"))?;
    Ok(Json(workflow_answer(latest, true)))
}

async fn versions(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<VersionsAnswer>> {
    Ok(Json(versions_answer(&state, &id).await?))
}

/// Every version of workflow `id`, oldest first, with where each comes from
/// (`GET /api/v1/workflows/{id}/versions`).
///
/// # Errors
/// 404 for an id no definition has.
pub(crate) async fn versions_answer(state: &AppState, id: &str) -> ApiResult<VersionsAnswer> {
    let id = workflow_id(id)?;
    let versions = state
        .blocking(move |engine| engine.workflow_versions(&id))
        .await??;
    if versions.is_empty() {
        return Err(ApiError::not_found("workflow"));
    }
    let zone = state.zone();
    let versions = versions
        .into_iter()
        .map(|v| VersionAnswer {
            origin: match &v.origin {
                WorkflowOrigin::Configured => OriginName::Configured,
                WorkflowOrigin::Published { .. } => OriginName::Published,
            },
            published_at: match &v.origin {
                WorkflowOrigin::Published { at, .. } => Some(zone.format(*at)),
                WorkflowOrigin::Configured => None,
            },
            published_by: match &v.origin {
                WorkflowOrigin::Published { by, .. } => Some(PublishedBy {
                    actor: by.id.to_string(),
                    role: by.role.to_string(),
                    unit_id: by.unit.to_string(),
                }),
                WorkflowOrigin::Configured => None,
            },
            definition: workflow_answer(&v.definition, v.latest),
        })
        .collect();
    Ok(VersionsAnswer { versions })
}

async fn publish(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let media = crate::json::media_type(&headers);
    let (status, answer) = publish_as(&state, &caller, &media, &body, options).await?;
    Ok((status, Json(answer)).into_response())
}

/// Publishes a definition as `caller` (`POST /api/v1/workflows`): `body` in the media type
/// `media` (`application/toml`, or JSON with the same keys; empty: JSON). 201 when it wrote,
/// 200 when the store had this very definition.
///
/// # Errors
/// 413 over the size limit, 415 for another media type, 422 naming the key at fault; the
/// core's refusals (403 for an administrator below the top).
pub(crate) async fn publish_as(
    state: &AppState,
    caller: &Caller,
    media: &str,
    body: &[u8],
    options: civicflow_core::engine::SubmitOptions,
) -> ApiResult<(StatusCode, PublishedAnswer)> {
    if body.len() > BODY_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("a definition is at most {BODY_MAX} bytes"),
        ));
    }
    let definition = definition_toml(media, body)?;
    let acting = caller.acting.clone();
    let outcome = state
        .blocking(move |engine| {
            engine.submit_with(&acting, Command::PublishWorkflow { definition }, options)
        })
        .await??;
    let Outcome::Workflow {
        workflow,
        version,
        events,
        ..
    } = outcome
    else {
        return Err(ApiError::internal(
            "publishing a workflow answered something else",
        ));
    };
    let status = if events > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let answer = PublishedAnswer {
        id: workflow,
        version,
        changed: events > 0,
    };
    Ok((status, answer))
}

/// The definition as TOML: the body itself (`application/toml`), or JSON with the same keys
/// turned into it (the core parses and validates either the same way, so its refusals name the
/// same keys).
fn definition_toml(media: &str, body: &[u8]) -> ApiResult<String> {
    let text = std::str::from_utf8(body).map_err(|_| invalid("body", "is not UTF-8"))?;
    match media {
        "application/toml" => Ok(text.to_owned()),
        "application/json" | "" => {
            let value: Value = if text.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(text)
                    .map_err(|e| ApiError::bad_request(format!("is not JSON: {e}")).field("body"))?
            };
            if !value.is_object() {
                return Err(
                    ApiError::bad_request("must be a JSON object: a workflow definition")
                        .field("body"),
                );
            }
            // Through the definition's own type, so that a wrong key is named by its path.
            let definition: Definition = serde_path_to_error::deserialize(value).map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." { "body".to_owned() } else { path };
                invalid(&field, &e.inner().to_string())
            })?;
            definition
                .to_toml()
                .map_err(|e| invalid("body", &e.to_string()))
        }
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("{other}: send the definition as application/toml or application/json"),
        )),
    }
}

fn invalid(field: &str, reason: &str) -> ApiError {
    ApiError::from(Rejection::invalid(field, reason))
}

async fn migrate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<MigrateBody>,
) -> ApiResult<Json<MigratedAnswer>> {
    let case: CaseId = id.parse().map_err(|_| ApiError::not_found("case"))?;
    let acting = caller.acting.clone();
    let outcome = state
        .blocking(move |engine| {
            // A case the caller cannot see answers as one that does not exist.
            engine.case(&acting, case)?;
            engine.submit_with(
                &acting,
                Command::MigrateCase {
                    case,
                    to_version: body.version,
                },
                options,
            )
        })
        .await?
        // The core names the version `to_version`; this body calls it `version`.
        .map_err(|e| match e {
            civicflow_core::engine::SubmitError::Rejected(Rejection::Invalid { field, reason })
                if field == "to_version" =>
            {
                ApiError::from(Rejection::invalid("version", reason))
            }
            other => ApiError::from(other),
        })?;
    let Outcome::Case { case, stage, .. } = outcome else {
        return Err(ApiError::internal(
            "migrating a case answered something else",
        ));
    };
    let acting = caller.acting.clone();
    let view = state
        .blocking(move |engine| engine.case(&acting, case))
        .await??;
    Ok(Json(MigratedAnswer {
        id: case.to_string(),
        workflow: view.state.workflow.to_string(),
        stage,
    }))
}
