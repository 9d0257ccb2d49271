//! The route table: every route with its method, path, policy, summary and schemas. The
//! router, the OpenAPI document and the authorization tests are all built from it, so a
//! route cannot exist without a policy.

use std::collections::BTreeMap;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Router;
use serde_json::Value;

use crate::auth::{bearer, Caller};
use crate::error::ApiError;
use crate::policy::Policy;
use crate::state::AppState;

pub mod cases;
pub mod contact;
pub mod directives;
pub mod events;
pub mod ops;
pub mod org;
pub mod reports;
pub mod tokens;

/// A JSON Schema, built when the OpenAPI document is.
pub type Schema = fn() -> Value;

/// One route.
pub struct RouteSpec {
    /// Its method.
    pub method: Method,
    /// Its path, in axum's syntax (`/api/v1/cases/{id}`), which is also OpenAPI's.
    pub path: &'static str,
    /// Who may call it.
    pub policy: Policy,
    /// What it does, in one line.
    pub summary: &'static str,
    /// Its group in the OpenAPI document.
    pub tag: &'static str,
    /// The JSON body it takes, if any.
    pub request: Option<Schema>,
    /// Its parameters as OpenAPI parameter objects (a JSON array), beyond a plain string for
    /// each path segment: the query parameters it takes (any other is 400), the request
    /// headers it reads beyond the usual ones (an event stream's `Last-Event-ID`), and path
    /// parameters with a narrower schema (replacing the plain one of the same name).
    pub params: Option<Schema>,
    /// The JSON schema of a success's body (`None`: not JSON, or not described).
    pub response: Option<Schema>,
    /// The media type of a success, which also says in which format errors come.
    pub content: Content,
    /// The success status.
    pub status: u16,
    /// Other statuses that answer with the success's body (a not-ready 503).
    pub also: &'static [u16],
    /// The error statuses the handler itself answers, beyond those its policy implies (401,
    /// 403, 429 when it needs a token) and its JSON body implies (400, 413). The OpenAPI
    /// document declares each, so a status not listed here is a bug in the table or in the
    /// handler (`.ci/schemathesis` checks every answer against the document).
    pub errors: &'static [u16],
    /// The handler.
    pub handler: MethodRouter<AppState>,
}

/// What a route answers: the media type of a success and the format of its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// `application/json` with the schema `response`; errors are the native JSON error.
    Json,
    /// Prometheus text (`text/plain`); errors are the native JSON error.
    Text,
    /// Server-sent events (`text/event-stream`); errors are the native JSON error.
    EventStream,
    /// Open311 XML (`text/xml`); errors are Open311 error lists in XML.
    Open311Xml,
    /// Open311 JSON (`application/json` with the schema `response`); errors are Open311
    /// error lists in JSON.
    Open311Json,
    /// Open311 in the format the last path segment's suffix names (`.xml` or `.json`; an
    /// unknown suffix answers XML): either of the two above.
    Open311Either,
}

impl std::fmt::Debug for RouteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteSpec")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Every route of the service.
pub fn all() -> Vec<RouteSpec> {
    let mut routes = Vec::new();
    routes.extend(ops::routes());
    routes.extend(cases::routes());
    routes.extend(contact::routes());
    routes.extend(directives::routes());
    routes.extend(org::routes());
    routes.extend(tokens::routes());
    routes.extend(reports::routes());
    routes.extend(events::routes());
    routes.extend(crate::open311::routes());
    routes
}

/// The router of `routes`: each route behind its policy.
pub fn router(routes: Vec<RouteSpec>, state: &AppState) -> Router<AppState> {
    let mut by_path: BTreeMap<&'static str, MethodRouter<AppState>> = BTreeMap::new();
    for route in routes {
        let guarded = route.handler.route_layer(middleware::from_fn_with_state(
            (state.clone(), route.policy),
            enforce,
        ));
        let merged = match by_path.remove(route.path) {
            Some(existing) => existing.merge(guarded),
            None => guarded,
        };
        by_path.insert(route.path, merged);
    }
    let router = by_path
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| {
            router.route(path, methods)
        });
    // Open311 clients get Open311 errors under its base path, never the native fallback.
    crate::open311::with_fallback(router)
}

/// Authenticates, rate-limits and authorizes a request before its handler runs; a handler
/// behind a policy that needs a token finds the [`Caller`] in the request's extensions.
async fn enforce(
    State((state, policy)): State<(AppState, Policy)>,
    mut request: Request,
    next: Next,
) -> Response {
    if !policy.needs_token() {
        return next.run(request).await;
    }
    let token = match bearer(request.headers()) {
        Ok(Some(token)) => token,
        Ok(None) => {
            return ApiError::unauthorized("this route needs Authorization: Bearer <token>")
                .into_response()
        }
        Err(e) => return e.into_response(),
    };
    let Some((id, acting)) = state.tokens().lookup(token) else {
        return ApiError::unauthorized("unknown or revoked token").into_response();
    };
    if let Err(wait) = state.0.limiter.take(&id) {
        let mut error = ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests for this token; slow down",
        );
        // Whole seconds, rounded up: a client that waits as long as it says is let in.
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        error.retry_after = Some(seconds.max(1));
        return error.into_response();
    }
    if !policy.allows(Some(&acting)) {
        return ApiError::forbidden(format!(
            "the role {} may not call this route (it is for {})",
            acting.role,
            policy.describe()
        ))
        .into_response();
    }
    request
        .extensions_mut()
        .insert(Caller { token: id, acting });
    next.run(request).await
}
