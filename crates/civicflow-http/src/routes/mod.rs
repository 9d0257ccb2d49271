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

pub mod calendar;
pub mod cases;
pub mod contact;
pub mod directives;
pub mod events;
pub mod ops;
pub mod org;
pub mod persons;
pub mod reports;
pub mod standing;
pub mod tokens;
pub mod workflows;

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
    /// A dashboard page (`text/html`), or a 303 to one after a form; the request body, if
    /// any, is a form (`application/x-www-form-urlencoded`) described by `request`. Errors
    /// are pages with the same status and words, but for those of the service's layers (a
    /// time limit, a body too large), which stay the JSON error. The route takes the session
    /// cookie as well as a bearer token (`dashboard/session.rs`).
    Html,
    /// A CSV download (`text/csv`) of a dashboard selection; errors are the JSON error.
    Csv,
    /// A static file of the dashboard (`text/css` or `text/javascript`); errors are the JSON
    /// error.
    Asset,
}

impl Content {
    /// Whether a route answering this takes the dashboard's session cookie in place of a
    /// bearer token: its pages, and the event streams a page listens to (GETs that change
    /// nothing). The JSON API does not: a cookie there would make every write route
    /// reachable from a forged form.
    fn takes_session_cookie(self, method: &Method) -> bool {
        match self {
            Content::Html | Content::Csv => true,
            Content::EventStream => method == Method::GET,
            _ => false,
        }
    }
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
    routes.extend(workflows::routes());
    routes.extend(calendar::routes());
    routes.extend(tokens::routes());
    routes.extend(persons::routes());
    routes.extend(reports::routes());
    routes.extend(standing::routes());
    routes.extend(events::routes());
    routes.extend(crate::open311::routes());
    routes.extend(crate::dashboard::routes());
    routes
}

/// The router of `routes`: each route behind its policy.
pub fn router(routes: Vec<RouteSpec>, state: &AppState) -> Router<AppState> {
    let mut by_path: BTreeMap<&'static str, MethodRouter<AppState>> = BTreeMap::new();
    for route in routes {
        let guarded = route.handler.route_layer(middleware::from_fn_with_state(
            (state.clone(), route.policy, route.path, route.content),
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
///
/// A valid token is charged to its own bucket; a public read, and a request whose token is
/// missing, malformed, unknown or revoked, to its client's address (`limits.rs`): so that
/// guessing tokens or scraping anonymously is throttled like any other traffic.
async fn enforce(
    State((state, policy, path, content)): State<(AppState, Policy, &'static str, Content)>,
    mut request: Request,
    next: Next,
) -> Response {
    // A page's errors are pages; every other route's are the JSON error.
    let answer = |error: ApiError| -> Response {
        if content == Content::Html {
            crate::dashboard::render::error_page(&error, None)
        } else {
            error.into_response()
        }
    };
    if !policy.needs_token() {
        if crate::limits::metered_by_address(request.method(), path, policy) {
            if let Some(limited) = charge_address(&state, &request) {
                return limited;
            }
        }
        return next.run(request).await;
    }
    let refused =
        |error: ApiError| charge_address(&state, &request).unwrap_or_else(|| answer(error));
    // Owned: the borrow of the request must not be held across the await below.
    let credential = match bearer(request.headers()) {
        Ok(Some(token)) => Credential::Bearer(token.to_owned()),
        Ok(None) if content.takes_session_cookie(request.method()) => {
            match crate::dashboard::session::from_cookie(&state, request.headers()) {
                Some(session) => Credential::Session(session),
                None => return refused(ApiError::unauthorized(
                    "sign in first (this page needs a session, or Authorization: Bearer <token>)",
                )),
            }
        }
        Ok(None) => {
            return refused(ApiError::unauthorized(
                "this route needs Authorization: Bearer <token>",
            ))
        }
        Err(e) => return refused(e),
    };
    let found = match &credential {
        Credential::Bearer(token) => find_token(&state, token).await,
        Credential::Session(session) => state
            .tokens()
            .lookup_id(&session.token)
            .map(|acting| (session.token.clone(), acting)),
    };
    // Again: the first closure's borrow of the request ended before the await.
    let refused =
        |error: ApiError| charge_address(&state, &request).unwrap_or_else(|| answer(error));
    let Some((id, acting)) = found else {
        return refused(ApiError::unauthorized("unknown or revoked token"));
    };
    // A token is worth its grant: once the role it acts in is revoked, it is refused, even
    // before its own revocation reaches the token index (`engine/grants.rs`).
    if !state.engine().holds(&acting) {
        return refused(ApiError::unauthorized(
            "the role this token acts in was revoked",
        ));
    }
    if let Err(wait) = state.0.limiter.take(&id) {
        let mut error = ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests for this token; slow down",
        );
        error.retry_after = Some(crate::limits::retry_after_seconds(wait));
        return answer(error);
    }
    if !policy.allows(Some(&acting)) {
        return answer(ApiError::forbidden(format!(
            "the role {} may not call this route (it is for {})",
            acting.role,
            policy.describe()
        )));
    }
    if let Credential::Session(session) = credential {
        // A browser's cookie goes with every request to this host, forged ones included:
        // what changes anything must come from the dashboard's own pages (the form's CSRF
        // token is checked where the form is read, `PageForm`).
        let safe = matches!(*request.method(), Method::GET | Method::HEAD);
        if !safe {
            if let Err(error) = crate::dashboard::session::check_origin(request.headers()) {
                return answer(error);
            }
        }
        request.extensions_mut().insert(session);
    }
    request
        .extensions_mut()
        .insert(Caller { token: id, acting });
    next.run(request).await
}

/// How a request said who it is.
enum Credential {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// The dashboard's session cookie.
    Session(crate::dashboard::session::Session),
}

/// The valid token `token` and who it acts as. On a shared log, a token the index does not
/// know may have been issued through another instance a moment ago: the index then reads the
/// tokens from the log once (at most every 100 ms, `TokenIndex::may_refresh_for_unknown`).
pub(crate) async fn find_token(
    state: &AppState,
    token: &str,
) -> Option<(
    civicflow_core::domain::access::TokenId,
    civicflow_core::domain::org::Acting,
)> {
    let found = state.tokens().lookup(token);
    if found.is_some()
        || !state.engine().log().is_shared()
        || !state.tokens().may_refresh_for_unknown()
    {
        return found;
    }
    let engine = state.engine().clone();
    if let Ok(Ok(tokens)) = tokio::task::spawn_blocking(move || engine.tokens()).await {
        state.tokens().replace(&tokens);
    }
    state.tokens().lookup(token)
}

/// Charges `request` to the bucket of its client's address (see [`charge_client`]).
fn charge_address(state: &AppState, request: &Request) -> Option<Response> {
    charge_client(
        state,
        request.extensions().get::<crate::ClientAddr>(),
        request.uri().path(),
    )
}

/// Charges one request to `path` to the bucket of its client's address (none for a request
/// without one: the router called in-process). `Some` is the 429 to answer, in the route's
/// format: the JSON error, or an Open311 error under Open311's base path.
pub(crate) fn charge_client(
    state: &AppState,
    client: Option<&crate::ClientAddr>,
    path: &str,
) -> Option<Response> {
    let client = client?;
    let wait = state.0.address_limiter.take(client.ip).err()?;
    let seconds = crate::limits::retry_after_seconds(wait);
    let message = "too many requests from this address without a valid token; slow down";
    let open311 = crate::open311::BASE_PATH;
    if path == open311 || path.starts_with(&format!("{open311}/")) {
        let format = crate::open311::format::Format::guess(path);
        let mut response = crate::open311::errors::Open311Error::with_status(
            format,
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            message,
        )
        .into_response();
        if let Ok(value) = axum::http::HeaderValue::from_str(&seconds.to_string()) {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, value);
        }
        Some(response)
    } else {
        let mut error = ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            message,
        );
        error.retry_after = Some(seconds);
        Some(error.into_response())
    }
}
