//! Persons (the requesters whose contact details the vault keeps): erasing one on request,
//! the personal information protection law's deletion right (个人信息保护法 art. 47). The
//! engine destroys the person's key in the vault and records `PersonErased` with the reason;
//! every read of their cases then shows the contact as erased. Who may erase whom is the
//! domain's (`domain::person`): a community administrator, for the people registered at their
//! unit or below it (where their first case was filed). A person the caller may not erase is
//! 404, as a case outside the caller's scope is: a person's id is not theirs to learn of.

use axum::extract::State;
use axum::http::Method;
use axum::routing::post;
use axum::{Extension, Json};
use civicflow_core::domain::org::Acting;
use civicflow_core::domain::person::{self, Person, PersonState};
use civicflow_core::domain::Rejection;
use civicflow_core::engine::{Command, Engine, SubmitError, SubmitOptions};
use civicflow_core::PersonId;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cases::NOT_BLANK;
use super::{Content, RouteSpec};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::json::{cap, required, StrictJson, Validate};
use crate::openapi::schema_of;
use crate::path::Path;
use crate::policy::Policy;
use crate::request_id::WriteOptions;
use crate::state::AppState;

/// Who erases: the domain's erasers (community administrators), over their own subtree.
const ERASERS: Policy = Policy::Roles(person::ERASERS);

/// The routes of this module.
pub fn routes() -> Vec<RouteSpec> {
    vec![RouteSpec {
        method: Method::POST,
        path: "/api/v1/persons/{id}/erase",
        policy: ERASERS,
        summary: "Erase a person on request, with a {reason} kept in the log: their key in the vault is destroyed, so their contact details can never be read again, and every read of their cases shows the requester as {\"erased\": true}. The id is the person_id a case's requester shows. Erasing an erased person changes nothing and answers the erasure in force. 404 for a person not registered at the caller's unit or below it; 400 for a malformed id or a missing or blank reason.",
        tag: "persons",
        request: Some(schema_of::<EraseRequest>),
        params: Some(crate::idempotency::header_param),
        response: Some(schema_of::<ErasedAnswer>),
        content: Content::Json,
        status: 200,
        also: &[],
        errors: &[404, 409, 422, 503],
        handler: post(erase),
    }]
}

/// `POST /api/v1/persons/{id}/erase`'s body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = reason_is_required)]
pub struct EraseRequest {
    /// Why (a request under the personal information protection law, its reference): kept
    /// in the log with the erasure, one line.
    // Left out, it reads as empty, so that the refusal names it (serde's own "missing field"
    // names no field).
    #[serde(default)]
    #[schemars(length(min = 1, max = person::ERASE_REASON_CHARS_MAX), regex(pattern = NOT_BLANK))]
    pub reason: String,
}

/// The document says what the route requires: serde's `default` on `reason` (there only so
/// that a body without it is refused naming it) would make schemars call it optional, with
/// an empty default that the route refuses.
fn reason_is_required(schema: &mut schemars::Schema) {
    if let Some(reason) = schema
        .get_mut("properties")
        .and_then(|properties| properties.get_mut("reason"))
        .and_then(serde_json::Value::as_object_mut)
    {
        reason.remove("default");
    }
    schema.insert("required".to_owned(), serde_json::json!(["reason"]));
}

impl Validate for EraseRequest {
    fn validate(&self) -> Result<(), ApiError> {
        required("reason", &self.reason)?;
        cap("reason", &self.reason, person::ERASE_REASON_CHARS_MAX)
    }
}

/// What an erasure answers: the person and the erasure in force.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErasedAnswer {
    /// The person.
    pub person_id: String,
    /// Always true: their contact details can never be read again.
    pub erased: bool,
    /// The unit that registered them (where their first case was filed).
    pub unit_id: String,
    /// When they were erased (RFC 3339 in the calendar's zone): by this request, or by an
    /// earlier one when they were erased already.
    pub erased_at: String,
    /// The reason recorded with that erasure.
    pub reason: String,
}

/// A person's id from the path: 400 naming `id` when it is not one (a UUID).
fn person_id(text: &str) -> ApiResult<PersonId> {
    PersonId::parse(text.trim()).map_err(|_| {
        ApiError::bad_request(format!(
            "id must be a person's id (a UUID, the person_id a case's requester shows), not {text:?}"
        ))
        .field("id")
    })
}

/// The person `id` as `acting` sees them: 404 naming `id` when they were never registered or
/// lie outside what `acting` may see (one answer for both).
fn person_seen(engine: &Engine, acting: &Acting, id: PersonId) -> ApiResult<PersonState> {
    match engine.read::<Person>(acting, &id) {
        Ok(state) => Ok(state),
        Err(SubmitError::Rejected(Rejection::NotFound { .. })) => {
            Err(ApiError::not_found(&format!("person {id}")).field("id"))
        }
        Err(other) => Err(other.into()),
    }
}

/// Erases the person `id` as `acting`, and answers the erasure in force.
fn erase_person(
    engine: &Engine,
    acting: &Acting,
    id: PersonId,
    reason: String,
    options: SubmitOptions,
) -> ApiResult<PersonState> {
    // Asked first so that a person out of the caller's sight is 404, not the engine's 403
    // for a write out of scope (`docs/service.md`, "Errors").
    person_seen(engine, acting, id)?;
    match engine.submit_with(acting, Command::ErasePerson { person: id, reason }, options) {
        Ok(_) => {}
        Err(SubmitError::Rejected(Rejection::NotFound { .. })) => {
            return Err(ApiError::not_found(&format!("person {id}")).field("id"))
        }
        Err(other) => return Err(other.into()),
    }
    person_seen(engine, acting, id)
}

async fn erase(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<EraseRequest>,
) -> ApiResult<Json<ErasedAnswer>> {
    let id = person_id(&id)?;
    let acting = caller.acting.clone();
    // The vault's key file is overwritten and synced: blocking work, off the async threads.
    let erased = state
        .blocking(move |engine| erase_person(engine, &acting, id, body.reason, options))
        .await??;
    let zone = state.zone();
    let (Some(unit), Some(at), Some(reason)) =
        (erased.unit, erased.erased_at, erased.erasure_reason)
    else {
        return Err(ApiError::internal(
            "an erased person's stream does not say where they were registered, when and why they were erased",
        ));
    };
    Ok(Json(ErasedAnswer {
        person_id: id.to_string(),
        erased: erased.erased,
        unit_id: unit.to_string(),
        erased_at: zone.format(at),
        reason,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The request's schema requires a non-blank reason within the domain's cap and nothing
    /// else, as the route does (and has no default, which the route would refuse).
    #[test]
    fn the_request_schema_requires_the_reason() {
        let schema = schema_of::<EraseRequest>();
        assert_eq!(schema["required"], json!(["reason"]), "{schema}");
        assert_eq!(schema["additionalProperties"], json!(false), "{schema}");
        let reason = &schema["properties"]["reason"];
        assert_eq!(reason["minLength"], json!(1), "{schema}");
        assert_eq!(
            reason["maxLength"],
            json!(person::ERASE_REASON_CHARS_MAX),
            "{schema}"
        );
        assert_eq!(reason["pattern"], json!(NOT_BLANK), "{schema}");
        assert!(reason.get("default").is_none(), "{schema}");
        // The route reads a body without a reason as an empty one, and refuses it naming it.
        let missing: EraseRequest = crate::json::parse(b"{}").expect("parsed");
        assert_eq!(
            missing.validate().expect_err("refused").field.as_deref(),
            Some("reason")
        );
    }
}
