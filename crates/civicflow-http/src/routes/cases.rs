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
use civicflow_core::domain::workflow::{Definition, WorkflowId};
use civicflow_core::engine::{AsOf, CaseView, Command, Contact, Outcome, Requester};
use civicflow_core::vault::ContactDetails;
use civicflow_core::{CaseId, IdempotencyKey, UnitId, Version};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::reports::{query_param, QueryParams};
use super::{Content, RouteSpec};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::fields;
use crate::idempotency;
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
            path: "/api/v1/cases",
            policy: Policy::Authenticated,
            summary: "Open a case (a request) in a workflow at a unit. With an Idempotency-Key (or the body's idempotency_key) a retry answers the first answer and opens nothing.",
            tag: "cases",
            request: Some(create_schema),
            params: Some(crate::idempotency::header_param),
            response: Some(created_schema),
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
            response: Some(case_schema),
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
            request: Some(act_schema),
            params: Some(crate::idempotency::header_param),
            response: Some(created_schema),
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
            response: Some(history_schema),
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
            response: Some(|| json!({"type": "object"})),
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateCase {
    workflow: String,
    #[serde(default)]
    workflow_version: Option<u32>,
    unit_id: String,
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(default)]
    fields: Map<String, Value>,
    #[serde(default)]
    requester: Option<RequesterBody>,
    #[serde(default)]
    place: Option<PlaceBody>,
}

/// Where the case is about (public; the engine checks it and names the field at fault).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaceBody {
    #[serde(default)]
    lat: Option<f64>,
    #[serde(default)]
    long: Option<f64>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    address_id: Option<String>,
    #[serde(default)]
    media_url: Option<String>,
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

/// The place as the API shows it.
fn place_json(place: &Place) -> Value {
    json!({
        "lat": place.lat, "long": place.long, "address": place.address,
        "address_id": place.address_id, "media_url": place.media_url,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequesterBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    address: Option<String>,
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

fn create_schema() -> Value {
    json!({
        "type": "object",
        "required": ["workflow", "unit_id", "title"],
        "additionalProperties": false,
        "properties": {
            "workflow": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": NOT_BLANK, "description": "a workflow id, e.g. service-request (GET /api/v1/workflows)"},
            "workflow_version": {"type": "integer", "minimum": 1, "description": "default: the newest"},
            "unit_id": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": NOT_BLANK, "description": "the unit it is filed at"},
            "title": {"type": "string", "minLength": 1, "maxLength": TITLE_MAX, "pattern": NOT_BLANK},
            "description": {"type": "string", "maxLength": DESCRIPTION_MAX},
            "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": NOT_BLANK, "description": "the Idempotency-Key header's older spelling: a retry with the same key and request answers the first answer"},
            "fields": {"type": "object", "description": "the workflow's intake fields"},
            "requester": {"type": "object", "additionalProperties": false, "properties": {
                "name": {"type": "string", "maxLength": 200},
                "phone": {"type": "string", "maxLength": 200},
                "email": {"type": "string", "maxLength": 200},
                "address": {"type": "string", "maxLength": 200}
            }, "description": "contact data: kept encrypted in the vault, never in the log"},
            "place": place_schema()
        }
    })
}

fn place_schema() -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": {
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        "long": {"type": "number", "minimum": -180, "maximum": 180},
        "address": {"type": "string", "maxLength": ADDRESS_CHARS_MAX},
        "address_id": {"type": "string", "maxLength": ADDRESS_ID_CHARS_MAX},
        "media_url": {"type": "string", "maxLength": MEDIA_URL_CHARS_MAX}
    }, "description": "where the case is about (public): lat and long together, an address, the client's address id, a photo's http(s) URL"})
}

fn created_schema() -> Value {
    json!({
        "type": "object",
        "required": ["id", "stage", "version", "status"],
        "properties": {
            "id": {"type": "string"},
            "workflow": {"type": "string"},
            "stage": {"type": "string"},
            "status": {"type": "string", "enum": ["open", "closed"]},
            "version": {"type": "integer"}
        }
    })
}

fn case_schema() -> Value {
    json!({
        "type": "object",
        "required": ["id", "workflow", "stage", "status", "version", "unit_id", "available_actions"],
        "properties": {
            "id": {"type": "string"},
            "workflow": {"type": "string"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "stage": {"type": "string"},
            "status": {"type": "string", "enum": ["open", "closed"]},
            "version": {"type": "integer"},
            "unit_id": {"type": "string"},
            "lead_unit_id": {"type": "string"},
            "co_handlers": {"type": "array", "items": {"type": "string"}},
            "place": {"oneOf": [{"type": "null"}, place_schema()]},
            "requester": {"oneOf": [
                {"type": "null", "description": "the case has no requester"},
                {"type": "object", "additionalProperties": false, "required": ["person_id", "erased"], "properties": {
                    "person_id": {"type": "string", "description": "the person, to erase them by (POST /api/v1/persons/{id}/erase)"},
                    "erased": {"type": "boolean", "enum": [true], "description": "the person was erased: their details can never be read again"}
                }},
                {"type": "object", "additionalProperties": false, "required": ["person_id", "name", "phone", "email", "address"], "properties": {
                    "person_id": {"type": "string", "description": "the person, to erase them by (POST /api/v1/persons/{id}/erase)"},
                    "name": {"type": ["string", "null"]},
                    "phone": {"type": ["string", "null"]},
                    "email": {"type": ["string", "null"]},
                    "address": {"type": ["string", "null"]}
                }, "description": "the requester's contact details, masked (138****5678); POST /api/v1/cases/{id}/contact shows them whole"}
            ]},
            "as_of": {"type": "object", "required": ["version", "time", "current_version"], "properties": {
                "version": {"type": "integer", "minimum": 1, "description": "the version of the case's stream this state is as of"},
                "time": {"type": ["string", "null"], "description": "the moment asked for (as_of), in Asia/Shanghai; null when a version was asked for"},
                "current_version": {"type": "integer", "minimum": 1, "description": "the case's version now"}
            }, "description": "only when as_of or version was given: which past state this is (available_actions is then empty)"},
            "available_actions": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "string"}, "name": {"type": "string"}, "to": {"type": "string"},
                "fields": {"type": "array"}
            }}}
        }
    })
}

fn act_schema() -> Value {
    json!({
        "type": "object",
        "required": ["action"],
        "properties": {
            "action": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": NOT_BLANK, "description": "one of the case's available_actions"},
            "expected_version": {"type": "integer", "minimum": 1, "description": "refused with 409 if the case has moved on"}
        },
        "additionalProperties": {"description": "the action's fields, as its definition declares them"}
    })
}

fn history_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"events": {"type": "array", "items": {"type": "object",
            "required": ["position", "version", "type", "recorded_at", "actor", "hash"],
            "properties": {
                "position": {"type": "integer"}, "version": {"type": "integer"},
                "type": {"type": "string"}, "recorded_at": {"type": "string"},
                "actor": {"type": "object", "properties": {
                    "id": {"type": "string"}, "role": {"type": "string"}, "unit_id": {"type": "string"}
                }},
                "hash": {"type": "string"}, "summary": {"type": "string"},
                "correlation_id": {"type": "string", "description": "the request that wrote it (X-Request-Id, traceparent)"},
                "causation_id": {"type": ["string", "null"], "description": "the event that caused it, if one did"}
            }}}}
    })
}

/// Parses a case id from the path.
///
/// # Errors
/// 404: a malformed id names no case.
pub fn case_id(text: &str) -> ApiResult<CaseId> {
    CaseId::parse(text).map_err(|_| ApiError::not_found("case").field("id"))
}

fn definition_for(
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

fn status_of(definition: &Definition, stage: &str) -> &'static str {
    if definition.is_terminal(stage) {
        "closed"
    } else {
        "open"
    }
}

async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    StrictJson(body): StrictJson<CreateCase>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let definition = definition_for(&state, &body.workflow, body.workflow_version)?;
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
    let acting = caller.acting.clone();
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
    // A retry with the idempotency key answers exactly the first answer, 201 included.
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": case.to_string(),
            "workflow": definition.reference().to_string(),
            "stage": stage,
            "status": status_of(&definition, &stage),
            "version": version.map_or(0, Version::get),
        })),
    ))
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

/// A case as the API shows it, its times written in `zone` (the calendar's).
pub fn case_json(view: &CaseView, zone: &Zone) -> Value {
    let state = &view.state;
    let actions: Vec<Value> = view
        .available_actions
        .iter()
        .map(|action| {
            json!({
                "id": action.id,
                "name": action.name,
                "to": action.to,
                "fields": action.fields.iter().map(|f| json!({
                    "name": f.name,
                    "type": f.kind.as_str(),
                    "required": f.required,
                    "label": f.label,
                    "choices": f.choices,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    // The person's id goes with their details: it is what an administrator erases them by
    // (`POST /api/v1/persons/{id}/erase`). It says nothing about them without the vault.
    let person_id = state.requester.map(|p| p.to_string());
    let requester = match &view.contact {
        Contact::None => Value::Null,
        Contact::Erased => json!({"erased": true, "person_id": person_id}),
        Contact::Masked(m) => json!({
            "person_id": person_id,
            "name": m.name, "phone": m.phone, "email": m.email, "address": m.address
        }),
        #[allow(unreachable_patterns)]
        _ => Value::Null,
    };
    json!({
        "id": state.id.to_string(),
        "workflow": state.workflow.to_string(),
        "title": state.title,
        "description": state.description,
        "stage": state.stage,
        "status": if state.closed { "closed" } else { "open" },
        "version": state.version.map_or(0, Version::get),
        "unit_id": state.unit.as_str(),
        "lead_unit_id": state.lead.as_str(),
        "co_handlers": state.co_handlers.iter().map(UnitId::as_str).collect::<Vec<_>>(),
        "channel": format!("{:?}", state.channel).to_lowercase(),
        "fields": state.fields.iter().map(|(k, v)| (k.clone(), fields::to_json(v, zone))).collect::<Map<_, _>>(),
        "opened_at": zone.format(state.opened_at),
        "updated_at": zone.format(state.updated_at),
        "closed_at": state.closed_at.map(|at| zone.format(at)),
        "rating": state.rating,
        "merged_into": state.merged_into.map(|c| c.to_string()),
        "deadline": state.deadline.as_ref().map(|d| json!({
            "seq": d.seq,
            "stage": d.stage,
            "due_at": zone.format(d.due_at),
            // Counted on plain weekdays for a year the calendar has no data for yet; computed
            // again when the year is published.
            "provisional": d.is_provisional(),
        })),
        "requester": requester,
        "place": state.place.as_ref().map_or(Value::Null, place_json),
        "available_actions": actions,
    })
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
) -> ApiResult<Json<Value>> {
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
        return Ok(Json(case_json(&view, &zone)));
    };
    let then = state.engine().case_as_of(&caller.acting, id, as_of)?;
    let mut body = case_json(&then.view, &zone);
    if let Value::Object(fields) = &mut body {
        fields.insert(
            "as_of".to_owned(),
            json!({
                "version": then.view.state.version.map_or(0, Version::get),
                "time": match as_of {
                    AsOf::Time(at) => Value::String(zone.format(at)),
                    AsOf::Version(_) => Value::Null,
                },
                "current_version": then.current_version.get(),
            }),
        );
    }
    Ok(Json(body))
}

/// The body of an action: `action`, `expected_version`, and the action's fields.
#[derive(Debug)]
struct ActBody {
    action: String,
    expected_version: Option<u64>,
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
) -> ApiResult<Json<Value>> {
    let id = case_id(&id)?;
    // The case as the caller sees it (404 outside their scope), for its definition.
    let view = state.engine().case(&caller.acting, id)?;
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
    let acting = caller.acting.clone();
    let outcome = state
        .blocking(move |engine| engine.submit_with(&acting, command, options))
        .await??;
    let Outcome::Case { stage, version, .. } = outcome else {
        return Err(ApiError::internal("an action answered another outcome"));
    };
    Ok(Json(json!({
        "id": id.to_string(),
        "workflow": view.definition.reference().to_string(),
        "stage": stage,
        "status": status_of(&view.definition, &stage),
        "version": version.map_or(0, Version::get),
    })))
}

async fn history(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = case_id(&id)?;
    let entries = state.engine().history(&caller.acting, id)?;
    let zone = state.zone();
    let events: Vec<Value> = entries
        .iter()
        .map(|entry| {
            let r = &entry.recorded;
            json!({
                "position": r.position.get(),
                "version": r.version.get(),
                "type": r.event_type.as_str(),
                "schema_version": r.schema_version,
                "recorded_at": zone.format(r.recorded_at),
                "actor": {
                    "id": r.actor.id.as_str(),
                    "role": r.actor.role.as_str(),
                    "unit_id": r.actor.unit.as_str(),
                },
                "event_id": r.event_id.to_string(),
                "correlation_id": r.correlation_id.to_string(),
                "causation_id": r.causation_id.map(|c| c.to_string()),
                "hash": r.hash.to_hex(),
                "summary": entry.summary,
            })
        })
        .collect();
    Ok(Json(json!({ "case": id.to_string(), "events": events })))
}

async fn audit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = case_id(&id)?;
    let acting = caller.acting.clone();
    let audit = state
        .blocking(move |engine| engine.audit(&acting, id))
        .await??;
    Ok(Json(crate::audit::to_json(&audit)))
}
