//! Tokens on a running service: list, issue and revoke, for community administrators over
//! the units at or below their own. Without these an operator had to stop the service to
//! revoke a leaked token (`civicflow token revoke` needs the store to itself). Issuing and
//! revoking are events decided by the core (`domain/access.rs`); the token index follows
//! before the answer, so a revoked token is refused from the very next request.

use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use civicflow_core::calendar::Zone;
use civicflow_core::domain::access::{grant_visible, Grant, TokenId};
use civicflow_core::domain::org::{roles, Acting};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Content, RouteSpec};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::idempotency::HEADER;
use crate::json::{cap, required, StrictJson, Validate};
use crate::openapi::{answer_schema_of, schema_of};
use crate::path::Path;
use crate::policy::Policy;
use crate::request_id::WriteOptions;
use crate::state::AppState;
use crate::ServiceError;
use civicflow_core::engine::SubmitOptions;

/// Who manages tokens: the core's issuers (`domain/access.rs`), over their own subtree. The
/// dashboard's token pages have the same policy.
pub(crate) const ADMINS: Policy = Policy::Roles(roles::MANAGE_TOKENS);

/// The routes of this module.
pub fn routes() -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/tokens",
            policy: ADMINS,
            summary: "The tokens acting at the caller's unit or below it: id, actor, role, unit, name, when issued and revoked. Never a secret or a hash.",
            tag: "tokens",
            request: None,
            params: None,
            response: Some(answer_schema_of::<TokensAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[503],
            handler: get(list),
        },
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/tokens",
            policy: ADMINS,
            summary: "Issue a token acting as {actor, role, unit_id} (a grant the actor holds, at or below the caller's unit), named for what it is for. The secret is in this answer only (Cache-Control: no-store); the log keeps its hash.",
            tag: "tokens",
            request: Some(schema_of::<IssueBody>),
            params: None,
            response: Some(answer_schema_of::<IssuedTokenAnswer>),
            content: Content::Json,
            status: 201,
            also: &[],
            errors: &[404, 409, 422, 503],
            handler: post(issue),
        },
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/tokens/{id}/revoke",
            policy: ADMINS,
            summary: "Revoke a token, with an optional reason: refused from the very next request. Revoking a revoked token changes nothing. 404 for a token outside the caller's subtree.",
            tag: "tokens",
            request: Some(schema_of::<RevokeBody>),
            params: Some(crate::idempotency::header_param),
            response: Some(answer_schema_of::<GrantAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[404, 422, 503],
            handler: post(revoke),
        },
    ]
}

/// The most characters of a token's name (the core's own limit).
pub const NAME_MAX: usize = 100;
/// The most characters of a revocation's reason (the core's own limit).
pub const REASON_MAX: usize = civicflow_core::domain::access::REVOKE_REASON_CHARS_MAX;

/// A token as listed: never its secret, never its hash.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantAnswer {
    /// The token's id.
    pub id: String,
    /// The actor it acts as.
    pub actor: String,
    /// The role it acts in.
    pub role: String,
    /// The unit it acts for.
    pub unit_id: String,
    /// What it is for.
    pub name: String,
    /// When it was issued.
    pub issued_at: String,
    /// When it was revoked; null: it is valid.
    pub revoked_at: Option<String>,
}

impl GrantAnswer {
    /// `grant`, its times written in `zone`.
    fn new(grant: &Grant, zone: &Zone) -> Self {
        Self {
            id: grant.token.to_string(),
            actor: grant.acting.actor.as_str().to_owned(),
            role: grant.acting.role.as_str().to_owned(),
            unit_id: grant.acting.unit.as_str().to_owned(),
            name: grant.name.clone(),
            issued_at: zone.format(grant.issued_at),
            revoked_at: grant.revoked_at.map(|at| zone.format(at)),
        }
    }
}

/// The tokens acting at the caller's unit or below it (`GET /api/v1/tokens`).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokensAnswer {
    /// The tokens.
    pub tokens: Vec<GrantAnswer>,
}

/// A token issued, with its secret (`POST /api/v1/tokens`).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuedTokenAnswer {
    /// The token.
    #[serde(flatten)]
    pub grant: GrantAnswer,
    /// The secret: shown in this answer only.
    pub token: String,
}

/// What the service's token calls fail with, as the API says it.
fn service_error(error: ServiceError) -> ApiError {
    match error {
        ServiceError::Submit(e) => e.into(),
        ServiceError::Engine(e) => e.into(),
        ServiceError::Random(_) => {
            ApiError::unavailable("no randomness from the operating system for a secret")
        }
        other => {
            tracing::error!(error = %other, "token call failed");
            ApiError::internal("the token call failed; the error is in the service's log")
        }
    }
}

/// The grant `id` names, if the caller administers its unit; 404 otherwise, as for a case
/// outside the caller's scope (the ids of other units' tokens are not theirs to learn).
fn grant_in_scope(state: &AppState, caller: &Acting, id: &str) -> ApiResult<Grant> {
    let id = TokenId::parse(id.trim()).map_err(|_| ApiError::not_found("token").field("id"))?;
    let tokens = state.engine().tokens()?;
    let org = state.engine().org();
    tokens
        .tokens
        .get(&id)
        .filter(|grant| grant_visible(grant, caller, &org))
        .cloned()
        .ok_or_else(|| ApiError::not_found("token"))
}

async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<TokensAnswer>> {
    Ok(Json(tokens_answer(&state, &caller)?))
}

/// The tokens acting at the caller's unit or below it (`GET /api/v1/tokens`).
///
/// # Errors
/// When the log cannot be read.
pub(crate) fn tokens_answer(state: &AppState, caller: &Caller) -> ApiResult<TokensAnswer> {
    let tokens = state.engine().tokens()?;
    let org = state.engine().org();
    let listed = tokens
        .tokens
        .values()
        .filter(|grant| grant_visible(grant, &caller.acting, &org))
        .map(|grant| GrantAnswer::new(grant, &state.zone()))
        .collect();
    Ok(TokensAnswer { tokens: listed })
}

/// A token to issue.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssueBody {
    /// An actor of the org chart.
    #[schemars(length(min = 1, max = 64))]
    pub(crate) actor: String,
    /// A role the actor holds at the unit.
    #[schemars(length(min = 1, max = 64))]
    pub(crate) role: String,
    /// The unit it acts for.
    #[schemars(length(min = 1, max = 64))]
    pub(crate) unit_id: String,
    /// What the token is for.
    #[schemars(length(min = 1, max = NAME_MAX))]
    pub(crate) name: String,
}

impl Validate for IssueBody {
    fn validate(&self) -> Result<(), ApiError> {
        for (field, value) in [
            ("actor", &self.actor),
            ("role", &self.role),
            ("unit_id", &self.unit_id),
        ] {
            required(field, value)?;
            cap(field, value, 64)?;
        }
        required("name", &self.name)?;
        cap("name", &self.name, NAME_MAX)
    }
}

async fn issue(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    StrictJson(body): StrictJson<IssueBody>,
) -> ApiResult<Response> {
    let answer = issue_as(&state, &caller, body, options).await?;
    let mut response = (StatusCode::CREATED, Json(answer)).into_response();
    // The secret is in this answer only: no cache keeps it.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Issues a token as `caller` (`POST /api/v1/tokens`): the token with its secret, which
/// nothing keeps (the log has its hash).
///
/// # Errors
/// 400 for an `Idempotency-Key`; the core's refusals.
pub(crate) async fn issue_as(
    state: &AppState,
    caller: &Caller,
    body: IssueBody,
    options: SubmitOptions,
) -> ApiResult<IssuedTokenAnswer> {
    // The one native write without retries by key: its answer holds the secret, which is
    // never stored, so a retry could not answer it again; a second token would be a second
    // credential nobody asked for.
    if options.idempotency_key.is_some() {
        return Err(ApiError::bad_request(format!(
            "{HEADER} is not taken here: a token's secret is shown once and never stored, so a retry could not answer it again; if an answer was lost, list the tokens (GET /api/v1/tokens), revoke the one you did not receive and issue another"
        ))
        .field(HEADER));
    }
    let acting = Acting::parse(&body.actor, &body.role, &body.unit_id).map_err(ApiError::from)?;
    let by = caller.acting.clone();
    let name = body.name.clone();
    // Issuing appends and refreshes the token index: blocking work, off the async threads.
    let issuer = state.clone();
    let issued = state
        .blocking(move |_| issuer.issue_token(&by, acting, &name, options))
        .await?;
    let (id, secret) = issued.map_err(service_error)?;
    let tokens = state.engine().tokens()?;
    let grant = tokens
        .tokens
        .get(&id)
        .ok_or_else(|| ApiError::internal("an issued token is not in the log"))?;
    Ok(IssuedTokenAnswer {
        grant: GrantAnswer::new(grant, &state.zone()),
        token: secret.expose().to_owned(),
    })
}

/// A revocation.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeBody {
    /// Why (kept in the log); default: who revoked it through the API.
    #[serde(default)]
    #[schemars(length(max = REASON_MAX))]
    pub(crate) reason: Option<String>,
}

impl Validate for RevokeBody {
    fn validate(&self) -> Result<(), ApiError> {
        cap("reason", self.reason.as_deref().unwrap_or(""), REASON_MAX)
    }
}

async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<RevokeBody>,
) -> ApiResult<Json<GrantAnswer>> {
    Ok(Json(revoke_as(&state, &caller, &id, body, options).await?))
}

/// Revokes token `id` as `caller` (`POST /api/v1/tokens/{id}/revoke`): refused from the very
/// next request (the token index follows before this returns), its dashboard sessions too.
///
/// # Errors
/// 404 for a token outside the caller's subtree; the core's refusals.
pub(crate) async fn revoke_as(
    state: &AppState,
    caller: &Caller,
    id: &str,
    body: RevokeBody,
    options: SubmitOptions,
) -> ApiResult<GrantAnswer> {
    let grant = grant_in_scope(state, &caller.acting, id)?;
    let reason = body
        .reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| format!("revoked through the API by {}", caller.acting.actor));
    let by = caller.acting.clone();
    let token = grant.token.clone();
    let revoker = state.clone();
    let revoked = state
        .blocking(move |_| revoker.revoke_token(&by, token, &reason, options))
        .await?;
    revoked.map_err(service_error)?;
    let tokens = state.engine().tokens()?;
    let grant = tokens
        .tokens
        .get(&grant.token)
        .ok_or_else(|| ApiError::internal("a revoked token is not in the log"))?;
    Ok(GrantAnswer::new(grant, &state.zone()))
}
