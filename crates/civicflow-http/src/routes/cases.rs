//! Cases: open, read, act, history, audit. The engine decides everything; these handlers
//! translate.

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::{get, post};
use axum::{Extension, Json};
use civicflow_core::calendar::{parse_rfc3339, Zone};
use civicflow_core::domain::case::{
    Channel, Place, ADDRESS_CHARS_MAX, ADDRESS_ID_CHARS_MAX, MEDIA_URL_CHARS_MAX,
};
use civicflow_core::domain::org::Acting;
use civicflow_core::domain::workflow::{Definition, WorkflowId};
use civicflow_core::engine::{
    AsOf, CaseAudit, CaseView, Command, Contact, HistoryEntry, Outcome, Requester, SubmitOptions,
};
use civicflow_core::vault::ContactDetails;
use civicflow_core::{CaseId, IdempotencyKey, UnitId, Version};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::reports::{query_param, CaseStatusName, ChannelName, QueryParams};
use super::workflows::FieldAnswer;
use super::{Content, RouteSpec};
use crate::audit::{ActorAnswer, AuditAnswer};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::fields;
use crate::idempotency;
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
            path: "/api/v1/cases",
            policy: Policy::Authenticated,
            summary: "Open a case (a request) in a workflow at a unit. With an Idempotency-Key (or the body's idempotency_key) a retry answers the first answer and opens nothing.",
            tag: "cases",
            request: Some(schema_of::<CreateCase>),
            params: Some(crate::idempotency::header_param),
            response: Some(answer_schema_of::<CaseStepAnswer>),
            content: Content::Json,
            status: 201,
            also: &[],
            errors: &[404, 409, 422, 503],
            handler: post(create),
        },
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/cases/{id}",
            policy: Policy::Authenticated,
            summary: "A case as the caller may see it, with the actions the caller may take now (404 outside the caller's scope). With as_of (RFC 3339) or version, the case as it was then, with no actions: 404 before it was opened, 422 for a version past its current one.",
            tag: "cases",
            request: None,
            params: Some(read_params),
            response: Some(answer_schema_of::<CaseAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[400, 404, 422],
            handler: get(read),
        },
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/cases/{id}/actions",
            policy: Policy::Authenticated,
            summary: "Take an action on a case: {\"action\", \"expected_version\"?, ...fields}. 403 when the caller's role may not, 409 on a stale expected_version, 422 when the action is not possible now or a field is missing.",
            tag: "cases",
            request: Some(schema_of::<ActBody>),
            params: Some(crate::idempotency::header_param),
            response: Some(answer_schema_of::<CaseStepAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[404, 409, 422, 503],
            handler: post(act),
        },
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/cases/{id}/history",
            policy: Policy::Authenticated,
            summary: "The case's events, each with its log position, version, type, time, actor and chain hash.",
            tag: "cases",
            request: None,
            params: None,
            response: Some(answer_schema_of::<HistoryAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[404],
            handler: get(history),
        },
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/cases/{id}/audit",
            policy: Policy::Authenticated,
            summary: "The case's audit: every step with actor, role, unit, tier, time and stage after it; deadlines met or missed; the stream's chain verified.",
            tag: "cases",
            request: None,
            params: None,
            response: Some(answer_schema_of::<AuditAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[404],
            handler: get(audit),
        },
    ]
}

/// A JSON Schema pattern for a string the service refuses when it is empty or blank
/// ([`required`]).
pub(crate) const NOT_BLANK: &str = "\\S";

/// The most characters of a title.
pub const TITLE_MAX: usize = 200;
/// The most characters of a description.
pub const DESCRIPTION_MAX: usize = 5000;

/// A case to open (`POST /api/v1/cases`; the dashboard's new-case form fills the same).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateCase {
    /// A workflow id, e.g. service-request (GET /api/v1/workflows).
    #[schemars(length(min = 1, max = 64), pattern(NOT_BLANK))]
    pub(crate) workflow: String,
    /// The workflow's version; default: the newest.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub(crate) workflow_version: Option<u32>,
    /// The unit it is filed at.
    #[schemars(length(min = 1, max = 64), pattern(NOT_BLANK))]
    pub(crate) unit_id: String,
    /// Its title.
    #[schemars(length(min = 1, max = TITLE_MAX), pattern(NOT_BLANK))]
    pub(crate) title: String,
    /// What it is about.
    #[serde(default)]
    #[schemars(length(max = DESCRIPTION_MAX))]
    pub(crate) description: String,
    /// The Idempotency-Key header's older spelling: a retry with the same key and request
    /// answers the first answer.
    #[serde(default)]
    #[schemars(length(min = 1, max = 64), pattern(NOT_BLANK))]
    pub(crate) idempotency_key: Option<String>,
    /// The workflow's intake fields.
    #[serde(default)]
    pub(crate) fields: Map<String, Value>,
    /// Contact data: kept encrypted in the vault, never in the log.
    #[serde(default)]
    pub(crate) requester: Option<RequesterBody>,
    /// Where the case is about (public).
    #[serde(default)]
    pub(crate) place: Option<PlaceBody>,
}

/// Where a case is about (public; the engine checks it and names the field at fault): lat
/// and long together, an address, the client's address id, a photo's http(s) URL.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceBody {
    /// Latitude, WGS 84 degrees.
    #[serde(default)]
    #[schemars(range(min = -90.0, max = 90.0))]
    pub lat: Option<f64>,
    /// Longitude, WGS 84 degrees.
    #[serde(default)]
    #[schemars(range(min = -180.0, max = 180.0))]
    pub long: Option<f64>,
    /// A street address.
    #[serde(default)]
    #[schemars(length(max = ADDRESS_CHARS_MAX))]
    pub address: Option<String>,
    /// The client's own id of the address.
    #[serde(default)]
    #[schemars(length(max = ADDRESS_ID_CHARS_MAX))]
    pub address_id: Option<String>,
    /// A photo's http(s) URL.
    #[serde(default)]
    #[schemars(length(max = MEDIA_URL_CHARS_MAX))]
    pub media_url: Option<String>,
}

impl From<PlaceBody> for Place {
    fn from(body: PlaceBody) -> Self {
        Place {
            lat: body.lat,
            long: body.long,
            address: body.address,
            address_id: body.address_id,
            media_url: body.media_url,
        }
    }
}

impl From<&Place> for PlaceBody {
    fn from(place: &Place) -> Self {
        PlaceBody {
            lat: place.lat,
            long: place.long,
            address: place.address.clone(),
            address_id: place.address_id.clone(),
            media_url: place.media_url.clone(),
        }
    }
}

/// A requester's contact details.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequesterBody {
    /// Their name.
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub(crate) name: Option<String>,
    /// Their phone number.
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub(crate) phone: Option<String>,
    /// Their e-mail address.
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub(crate) email: Option<String>,
    /// Their street address.
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub(crate) address: Option<String>,
}

impl Validate for CreateCase {
    fn validate(&self) -> Result<(), ApiError> {
        required("workflow", &self.workflow)?;
        cap("workflow", &self.workflow, 64)?;
        required("unit_id", &self.unit_id)?;
        cap("unit_id", &self.unit_id, 64)?;
        required("title", &self.title)?;
        cap("title", &self.title, TITLE_MAX)?;
        cap("description", &self.description, DESCRIPTION_MAX)?;
        if let Some(place) = &self.place {
            // The engine checks the rest; the caps keep big strings out of it.
            for (field, text, max) in [
                ("place.address", &place.address, ADDRESS_CHARS_MAX),
                ("place.address_id", &place.address_id, ADDRESS_ID_CHARS_MAX),
                ("place.media_url", &place.media_url, MEDIA_URL_CHARS_MAX),
            ] {
                if let Some(text) = text {
                    cap(field, text, max)?;
                }
            }
        }
        if let Some(key) = &self.idempotency_key {
            required("idempotency_key", key)?;
            cap("idempotency_key", key, 64)?;
        }
        if let Some(r) = &self.requester {
            for (field, value) in [
                ("requester.name", &r.name),
                ("requester.phone", &r.phone),
                ("requester.email", &r.email),
                ("requester.address", &r.address),
            ] {
                if let Some(value) = value {
                    cap(field, value, 200)?;
                }
            }
        }
        Ok(())
    }
}

/// A case opened or moved by an action.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CaseStepAnswer {
    /// The case.
    pub id: String,
    /// Its workflow, id@version.
    pub workflow: String,
    /// Its stage now.
    pub stage: String,
    /// Open or closed.
    pub status: CaseStatusName,
    /// Its version now (pass as `expected_version`).
    pub version: u64,
}

/// A case as the caller may see it (`GET /api/v1/cases/{id}`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct CaseAnswer {
    /// The case.
    pub id: String,
    /// Its workflow, id@version.
    pub workflow: String,
    /// Its title.
    pub title: String,
    /// What it is about.
    pub description: String,
    /// Its stage.
    pub stage: String,
    /// Open or closed.
    pub status: CaseStatusName,
    /// Its version (pass as `expected_version`).
    pub version: u64,
    /// The unit it was filed at.
    pub unit_id: String,
    /// The unit that leads it.
    pub lead_unit_id: String,
    /// The units that co-handle it.
    pub co_handlers: Vec<String>,
    /// How it came in.
    pub channel: ChannelName,
    /// Its fields, as its workflow's actions declare them.
    pub fields: Map<String, Value>,
    /// When it was opened.
    pub opened_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// When it was closed; null: open.
    pub closed_at: Option<String>,
    /// The requester's rating, 1 (very dissatisfied) to 5 (very satisfied); null: not rated.
    #[schemars(range(min = 1, max = 5))]
    pub rating: Option<u8>,
    /// The case it was merged into; null: not merged.
    pub merged_into: Option<String>,
    /// The running deadline; null: none runs.
    pub deadline: Option<CaseDeadlineAnswer>,
    /// The requester's contact, masked; null: the case has no requester.
    pub requester: Option<RequesterAnswer>,
    /// Where it is about; null: not given.
    pub place: Option<PlaceBody>,
    /// Only when as_of or version was given: which past state this is (available_actions is
    /// then empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<AsOfAnswer>,
    /// The actions the caller may take now.
    pub available_actions: Vec<AvailableActionAnswer>,
}

/// A case's running deadline.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CaseDeadlineAnswer {
    /// Its number within the case.
    pub seq: u32,
    /// The stage it was set for.
    pub stage: String,
    /// When it falls due.
    pub due_at: String,
    /// Counted on plain weekdays for a year the calendar has no data for yet; computed again
    /// when the year is published.
    pub provisional: bool,
}

/// A requester's contact as the caller may see it.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum RequesterAnswer {
    /// The requester's contact details, masked (`李*`, `138****5678`); POST
    /// /api/v1/cases/{id}/contact shows them whole.
    Masked {
        /// The person, to erase them by (POST /api/v1/persons/{id}/erase).
        person_id: String,
        /// The masked name.
        name: Option<String>,
        /// The masked phone number.
        phone: Option<String>,
        /// The masked e-mail address.
        email: Option<String>,
        /// The masked street address.
        address: Option<String>,
    },
    /// The person was erased: their details can never be read again.
    Erased {
        /// The person, to erase them by (POST /api/v1/persons/{id}/erase).
        person_id: String,
        /// Always true.
        #[schemars(extend("enum" = [true]))]
        erased: bool,
    },
}

/// Which past state of a case an answer is.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AsOfAnswer {
    /// The version of the case's stream this state is as of.
    #[schemars(range(min = 1))]
    pub version: u64,
    /// The moment asked for (as_of), in the calendar's zone; null when a version was asked for.
    pub time: Option<String>,
    /// The case's version now.
    #[schemars(range(min = 1))]
    pub current_version: u64,
}

/// An action the caller may take on a case now.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AvailableActionAnswer {
    /// The action (POST it to /api/v1/cases/{id}/actions).
    pub id: String,
    /// Its name for people.
    pub name: String,
    /// The stage it leads to.
    pub to: String,
    /// The fields it asks for (without `reach`: a case's actions have never shown it).
    pub fields: Vec<FieldAnswer>,
}

/// A case's events (`GET /api/v1/cases/{id}/history`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct HistoryAnswer {
    /// The case.
    pub case: String,
    /// Its events, in order.
    pub events: Vec<HistoryEventAnswer>,
}

/// One event of a case.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HistoryEventAnswer {
    /// Its position in the log.
    pub position: u64,
    /// The case's version after it.
    pub version: u64,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The version of its payload's schema.
    pub schema_version: u16,
    /// When it was recorded.
    pub recorded_at: String,
    /// Who wrote it.
    pub actor: ActorAnswer,
    /// The event.
    pub event_id: String,
    /// The request that wrote it (X-Request-Id, traceparent).
    pub correlation_id: String,
    /// The event that caused it; null: none did.
    pub causation_id: Option<String>,
    /// Its chain hash (hex).
    pub hash: String,
    /// What happened, in one line.
    pub summary: String,
}

/// Parses a case id from the path.
///
/// # Errors
/// 404: a malformed id names no case.
pub fn case_id(text: &str) -> ApiResult<CaseId> {
    CaseId::parse(text).map_err(|_| ApiError::not_found("case").field("id"))
}

/// The definition of `workflow` (at `version`, or the newest).
///
/// # Errors
/// 422 naming `workflow` when there is no such workflow (or version).
pub(crate) fn definition_for(
    state: &AppState,
    workflow: &str,
    version: Option<u32>,
) -> ApiResult<std::sync::Arc<Definition>> {
    let id = WorkflowId::new(workflow).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            e.to_string(),
        )
        .field("workflow")
    })?;
    let registry = state.engine().definitions();
    let found = match version {
        Some(version) => registry
            .get(&civicflow_core::domain::workflow::DefinitionRef {
                id: id.clone(),
                version,
            })
            .cloned(),
        None => registry.latest(&id).cloned(),
    };
    found.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            format!("no workflow {workflow}; GET /api/v1/workflows lists them"),
        )
        .field("workflow")
    })
}

fn status_of(definition: &Definition, stage: &str) -> CaseStatusName {
    CaseStatusName::of(definition.is_terminal(stage))
}

async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    StrictJson(body): StrictJson<CreateCase>,
) -> ApiResult<(StatusCode, Json<CaseStepAnswer>)> {
    // A retry with the idempotency key answers exactly the first answer, 201 included.
    let answer = open_case(&state, &caller.acting, body, options).await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

/// Opens a case as `acting` (what `POST /api/v1/cases` and the dashboard's new-case form
/// do): the body read against its workflow's intake fields, the engine's `OpenCase`.
/// `body` is assumed checked ([`Validate`]).
///
/// # Errors
/// The API's: 400 naming the field for a malformed value, 422 for an unknown workflow or a
/// refusal, 403 for a role or unit that may not open it, 409, 503.
pub(crate) async fn open_case(
    state: &AppState,
    acting: &Acting,
    body: CreateCase,
    options: SubmitOptions,
) -> ApiResult<CaseStepAnswer> {
    let definition = definition_for(state, &body.workflow, body.workflow_version)?;
    let fields = fields::from_json(&definition.open.fields, &body.fields).map_err(|mut e| {
        e.field = e.field.map(|f| format!("fields.{f}"));
        e
    })?;
    let unit = UnitId::new(body.unit_id.as_str())
        .map_err(|e| ApiError::bad_request(e.to_string()).field("unit_id"))?;
    let requester = body.requester.map(contact).transpose()?;
    let has_requester = requester.is_some();
    // The body's `idempotency_key` is the header's older spelling; the engine scopes either
    // to the caller's actor.
    let body_key = body
        .idempotency_key
        .map(|key| {
            IdempotencyKey::new(key.trim())
                .map_err(|e| ApiError::bad_request(e.to_string()).field("idempotency_key"))
        })
        .transpose()?;
    let key = match (options.idempotency_key.clone(), body_key) {
        (Some(header), Some(body)) if header != body => {
            return Err(ApiError::bad_request(format!(
                "idempotency_key differs from the {} header; give the key once",
                idempotency::HEADER
            ))
            .field("idempotency_key"))
        }
        (header, body) => header.or(body),
    };
    let options = options.with_key(key);
    let command = Command::OpenCase {
        workflow: definition.id.clone(),
        version: Some(definition.version),
        unit,
        title: body.title,
        description: body.description,
        fields,
        requester: requester.map(Requester::New),
        channel: Channel::Api,
        place: body.place.map(|place| Box::new(Place::from(place))),
    };
    let acting = acting.clone();
    let outcome = if has_requester {
        // The vault writes the requester's details (file I/O): on a blocking thread.
        state
            .blocking(move |engine| engine.submit_with(&acting, command, options))
            .await??
    } else {
        // Deciding is pure and quick; the append's wait needs no thread.
        let engine = state.engine().clone();
        engine.open_case_async(&acting, command, options).await?
    };
    let Outcome::Case {
        case,
        stage,
        version,
        ..
    } = outcome
    else {
        return Err(ApiError::internal(
            "opening a case answered another outcome",
        ));
    };
    Ok(CaseStepAnswer {
        id: case.to_string(),
        workflow: definition.reference().to_string(),
        status: status_of(&definition, &stage),
        stage,
        version: version.map_or(0, Version::get),
    })
}

fn contact(body: RequesterBody) -> ApiResult<ContactDetails> {
    let mut details = ContactDetails::default();
    fn field(name: &'static str) -> impl Fn(civicflow_core::vault::InvalidContact) -> ApiError {
        move |e| ApiError::bad_request(e.to_string()).field(format!("requester.{name}"))
    }
    if let Some(name) = &body.name {
        details = details.with_name(name).map_err(field("name"))?;
    }
    if let Some(phone) = &body.phone {
        details = details.with_phone(phone).map_err(field("phone"))?;
    }
    if let Some(email) = &body.email {
        details = details.with_email(email).map_err(field("email"))?;
    }
    if let Some(address) = &body.address {
        details = details.with_address(address).map_err(field("address"))?;
    }
    Ok(details)
}

impl CaseAnswer {
    /// A case as the API shows it, its times written in `zone` (the calendar's).
    pub fn new(view: &CaseView, zone: &Zone) -> Self {
        let state = &view.state;
        let available_actions = view
            .available_actions
            .iter()
            .map(|action| AvailableActionAnswer {
                id: action.id.clone(),
                name: action.name.clone(),
                to: action.to.clone(),
                fields: action
                    .fields
                    .iter()
                    .map(|f| FieldAnswer {
                        name: f.name.clone(),
                        kind: f.kind.into(),
                        required: f.required,
                        label: f.label.clone(),
                        choices: f.choices.clone(),
                        reach: None,
                    })
                    .collect(),
            })
            .collect();
        // The person's id goes with their details: it is what an administrator erases them
        // by (`POST /api/v1/persons/{id}/erase`). It says nothing about them without the vault.
        let requester = match (&view.contact, state.requester) {
            (Contact::None, _) | (_, None) => None,
            (Contact::Erased, Some(person)) => Some(RequesterAnswer::Erased {
                person_id: person.to_string(),
                erased: true,
            }),
            (Contact::Masked(m), Some(person)) => Some(RequesterAnswer::Masked {
                person_id: person.to_string(),
                name: m.name.clone(),
                phone: m.phone.clone(),
                email: m.email.clone(),
                address: m.address.clone(),
            }),
        };
        Self {
            id: state.id.to_string(),
            workflow: state.workflow.to_string(),
            title: state.title.clone(),
            description: state.description.clone(),
            stage: state.stage.clone(),
            status: CaseStatusName::of(state.closed),
            version: state.version.map_or(0, Version::get),
            unit_id: state.unit.as_str().to_owned(),
            lead_unit_id: state.lead.as_str().to_owned(),
            co_handlers: state
                .co_handlers
                .iter()
                .map(|u| u.as_str().to_owned())
                .collect(),
            channel: state.channel.into(),
            fields: state
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), fields::to_json(v, zone)))
                .collect(),
            opened_at: zone.format(state.opened_at),
            updated_at: zone.format(state.updated_at),
            closed_at: state.closed_at.map(|at| zone.format(at)),
            rating: state.rating,
            merged_into: state.merged_into.map(|c| c.to_string()),
            deadline: state.deadline.as_ref().map(|d| CaseDeadlineAnswer {
                seq: d.seq,
                stage: d.stage.clone(),
                due_at: zone.format(d.due_at),
                provisional: d.is_provisional(),
            }),
            requester,
            place: state.place.as_ref().map(PlaceBody::from),
            as_of: None,
            available_actions,
        }
    }
}

/// `as_of` and `version`, the read's query parameters.
fn read_params() -> Value {
    json!([
        query_param(
            "as_of",
            false,
            json!({"type": "string", "format": "date-time"}),
            "the case as it was at this moment (RFC 3339 with an offset, e.g. 2026-04-14T09:30:00+08:00): after the events recorded at or before it; not with version",
        ),
        query_param(
            "version",
            false,
            json!({"type": "integer", "minimum": 1}),
            "the case as it was right after this version of its stream (1 is its opening); not with as_of",
        ),
    ])
}

async fn read(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Json<CaseAnswer>> {
    let params = QueryParams::parse(&uri, &["as_of", "version"])?;
    let id = case_id(&id)?;
    let as_of =
        match (params.get("as_of"), params.get("version")) {
            (None, None) => None,
            (Some(_), Some(_)) => return Err(ApiError::bad_request(
                "as_of and version each say which past state to read: give one of them, not both",
            )
            .field("version")),
            (Some(text), None) => Some(AsOf::Time(parse_rfc3339(text).map_err(|e| {
                ApiError::bad_request(format!(
                "as_of must be an RFC 3339 time with an offset (2026-04-14T09:30:00+08:00): {e}"
            ))
                .field("as_of")
            })?)),
            (None, Some(text)) => Some(AsOf::Version(
                text.parse::<u64>()
                    .ok()
                    .and_then(Version::new)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                        "version must be a whole number from 1 (the case's opening), not {text:?}"
                    ))
                        .field("version")
                    })?,
            )),
        };
    let zone = state.zone();
    let Some(as_of) = as_of else {
        let view = state.engine().case(&caller.acting, id)?;
        return Ok(Json(CaseAnswer::new(&view, &zone)));
    };
    let then = state.engine().case_as_of(&caller.acting, id, as_of)?;
    let mut body = CaseAnswer::new(&then.view, &zone);
    body.as_of = Some(AsOfAnswer {
        version: then.view.state.version.map_or(0, Version::get),
        time: match as_of {
            AsOf::Time(at) => Some(zone.format(at)),
            AsOf::Version(_) => None,
        },
        current_version: then.current_version.get(),
    });
    Ok(Json(body))
}

/// The body of an action: `action`, `expected_version`, and the action's fields.
#[derive(Debug, JsonSchema)]
struct ActBody {
    /// One of the case's available_actions.
    #[schemars(length(min = 1, max = 64), pattern(NOT_BLANK))]
    action: String,
    /// Refused with 409 if the case has moved on.
    #[schemars(range(min = 1))]
    expected_version: Option<u64>,
    /// The action's fields, as its definition declares them.
    #[serde(flatten)]
    fields: Map<String, Value>,
}

impl<'de> Deserialize<'de> for ActBody {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut map = Map::<String, Value>::deserialize(deserializer)?;
        let action = match map.remove("action") {
            Some(Value::String(action)) => action,
            Some(_) => return Err(D::Error::custom("action must be a string")),
            None => return Err(D::Error::missing_field("action")),
        };
        let expected_version =
            match map.remove("expected_version") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().filter(|v| *v >= 1).ok_or_else(|| {
                    D::Error::custom("expected_version must be a positive integer")
                })?),
            };
        Ok(Self {
            action,
            expected_version,
            fields: map,
        })
    }
}

impl Validate for ActBody {
    fn validate(&self) -> Result<(), ApiError> {
        required("action", &self.action)?;
        cap("action", &self.action, 64)
    }
}

async fn act(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<ActBody>,
) -> ApiResult<Json<CaseStepAnswer>> {
    let id = case_id(&id)?;
    let input = ActInput {
        action: body.action,
        expected_version: body.expected_version,
        fields: body.fields,
    };
    Ok(Json(
        act_on(&state, &caller.acting, id, input, options).await?,
    ))
}

/// An action to take on a case: its id, the version the caller saw, its fields as JSON
/// values (a form's texts are JSON strings).
#[derive(Debug, Clone)]
pub(crate) struct ActInput {
    /// The action's id.
    pub(crate) action: String,
    /// Refused with 409 if the case has moved on.
    pub(crate) expected_version: Option<u64>,
    /// The action's fields.
    pub(crate) fields: Map<String, Value>,
}

/// Takes an action on case `id` as `acting` (what `POST /api/v1/cases/{id}/actions` and the
/// dashboard's action forms do): the engine's `Act`.
///
/// # Errors
/// The API's: 404 outside the caller's scope, 400 naming a malformed field, 403, 409 on a
/// stale `expected_version`, 422 naming the action or the field at fault, 503.
pub(crate) async fn act_on(
    state: &AppState,
    acting: &Acting,
    id: CaseId,
    body: ActInput,
    options: SubmitOptions,
) -> ApiResult<CaseStepAnswer> {
    // The case as the caller sees it (404 outside their scope), for its definition.
    let view = state.engine().case(acting, id)?;
    let Some(spec) = view.definition.action(&body.action) else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            format!(
                "workflow {} has no action {}; the case's available_actions lists what the caller may do now",
                view.definition.reference(),
                body.action
            ),
        )
        .field("action"));
    };
    let fields = fields::from_json(&spec.fields, &body.fields)?;
    let expected_version = body
        .expected_version
        .map(|v| {
            Version::new(v).ok_or_else(|| {
                ApiError::bad_request("expected_version must be positive").field("expected_version")
            })
        })
        .transpose()?;
    let command = Command::Act {
        case: id,
        action: body.action,
        fields,
        expected_version,
    };
    let acting = acting.clone();
    let outcome = state
        .blocking(move |engine| engine.submit_with(&acting, command, options))
        .await??;
    let Outcome::Case { stage, version, .. } = outcome else {
        return Err(ApiError::internal("an action answered another outcome"));
    };
    Ok(CaseStepAnswer {
        id: id.to_string(),
        workflow: view.definition.reference().to_string(),
        status: status_of(&view.definition, &stage),
        stage,
        version: version.map_or(0, Version::get),
    })
}

async fn history(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<HistoryAnswer>> {
    let id = case_id(&id)?;
    let entries = case_history(&state, &caller.acting, id)?;
    let zone = state.zone();
    let events = entries
        .iter()
        .map(|entry| {
            let r = &entry.recorded;
            HistoryEventAnswer {
                position: r.position.get(),
                version: r.version.get(),
                event_type: r.event_type.as_str().to_owned(),
                schema_version: r.schema_version,
                recorded_at: zone.format(r.recorded_at),
                actor: (&r.actor).into(),
                event_id: r.event_id.to_string(),
                correlation_id: r.correlation_id.to_string(),
                causation_id: r.causation_id.map(|c| c.to_string()),
                hash: r.hash.to_hex(),
                summary: entry.summary.clone(),
            }
        })
        .collect();
    Ok(Json(HistoryAnswer {
        case: id.to_string(),
        events,
    }))
}

/// A case's events as `acting` sees them (what `GET /api/v1/cases/{id}/history` lists).
///
/// # Errors
/// 404 outside the caller's scope.
pub(crate) fn case_history(
    state: &AppState,
    acting: &Acting,
    id: CaseId,
) -> ApiResult<Vec<HistoryEntry>> {
    Ok(state.engine().history(acting, id)?)
}

async fn audit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<AuditAnswer>> {
    let id = case_id(&id)?;
    let audit = case_audit(&state, &caller.acting, id).await?;
    Ok(Json(AuditAnswer::new(&audit)))
}

/// A case's audit as `acting` sees it (what `GET /api/v1/cases/{id}/audit` answers, and the
/// dashboard's case page shows): every step with actor, role, unit, tier, time and the
/// stage after it, the deadlines met or missed, the chain checked again.
///
/// # Errors
/// 404 outside the caller's scope; 503 when the log cannot be read.
pub(crate) async fn case_audit(
    state: &AppState,
    acting: &Acting,
    id: CaseId,
) -> ApiResult<CaseAudit> {
    let acting = acting.clone();
    Ok(state
        .blocking(move |engine| engine.audit(&acting, id))
        .await??)
}
