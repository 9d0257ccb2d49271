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
pub mod directives;
pub mod events;
pub mod ops;
pub mod org;
pub mod reports;

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
    /// What a success answers with (`None`: not JSON, e.g. an event stream or text).
    pub response: Option<Schema>,
    /// The success status.
    pub status: u16,
    /// The handler.
    pub handler: MethodRouter<AppState>,
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
    routes.extend(directives::routes());
    routes.extend(org::routes());
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
