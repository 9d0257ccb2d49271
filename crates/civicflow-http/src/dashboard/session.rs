//! Signing in and out of the dashboard: the session cookie, and the checks that keep another
//! site from using it (decision 0012, "Sessions" and "Cross-site requests").
//!
//! The cookie is stateless and signed, so that every instance on a shared store accepts it
//! without shared session state and a restart signs nobody out:
//! `cf_session=v1.<token id>.<session nonce, 32 hex>.<expires, unix seconds>.<HMAC, 64 hex>`,
//! the HMAC-SHA-256 of everything before it under a key derived from the vault's master key.
//! The token's secret never goes in the cookie. Every request with the cookie checks that the
//! token is still valid and that the session was not ended (`SessionEnded` in the log, which
//! every instance learns as it learns a revocation).
//!
//! A form posted with the cookie carries a CSRF token, the HMAC of the session's nonce under
//! the same key, and its `Origin` (when the browser sends one, as every current browser does
//! on a POST) must be the service's own; `SameSite=Strict` is the third fence.

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use civicflow_core::domain::access::TokenId;
use civicflow_core::domain::org::Acting;
use civicflow_core::vault::MasterKey;
use hmac::{Hmac, Mac};
use maud::html;
use schemars::JsonSchema;
use serde::Deserialize;
use sha2::Sha256;

use super::render::{self, bi, Page, PageError};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::policy::Policy;
use crate::routes::{Content, RouteSpec};
use crate::state::AppState;

/// The cookie's name.
pub(crate) const COOKIE: &str = "cf_session";
/// How long a session lives.
pub(crate) const LIFETIME_SECS: u64 = 8 * 3600;
/// The form field that carries the CSRF token.
pub(crate) const CSRF_FIELD: &str = "csrf";

/// The routes of signing in and out.
pub(crate) fn routes() -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            method: Method::GET,
            path: "/",
            policy: Policy::Public,
            summary: "The dashboard's sign-in page: one field for the caller's access token.",
            tag: "dashboard",
            request: None,
            params: None,
            response: None,
            content: Content::Html,
            status: 200,
            also: &[],
            errors: &[],
            handler: get(sign_in_page),
        },
        RouteSpec {
            method: Method::POST,
            path: "/session",
            policy: Policy::Public,
            summary: "Sign in to the dashboard with an access token (a form: token). Sets the session cookie cf_session (HttpOnly, SameSite=Strict, Secure over TLS, 8 hours) and answers 303 to the caller's landing page; an unknown or revoked token is 401 with the form again. A failed sign-in is charged to the client's address like any request without a valid token (429 when over).",
            tag: "dashboard",
            request: Some(crate::openapi::schema_of::<SignInForm>),
            params: None,
            response: None,
            content: Content::Html,
            status: 303,
            also: &[],
            errors: &[400, 401, 403, 415, 429],
            handler: post(sign_in),
        },
        RouteSpec {
            method: Method::POST,
            path: "/session/end",
            policy: Policy::Authenticated,
            summary: "Sign out (a form: csrf). Records the end of the session in the log, so that a copy of the cookie is refused by every instance, clears the cookie and answers 303 to the sign-in page.",
            tag: "dashboard",
            request: Some(crate::openapi::schema_of::<CsrfForm>),
            params: None,
            response: None,
            content: Content::Html,
            status: 303,
            also: &[],
            errors: &[415, 503],
            handler: post(sign_out),
        },
    ]
}

/// The key that signs session cookies and CSRF tokens: derived from the vault's master key,
/// so every instance of a store has it and rotating the master key signs everyone out.
#[derive(Clone)]
pub(crate) struct SessionKey([u8; 32]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(<redacted>)")
    }
}

impl SessionKey {
    /// The session key of `master`.
    pub(crate) fn derive(master: &MasterKey) -> Self {
        Self(master.derive_subkey("dashboard sessions"))
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        // A key of any length is accepted by HMAC: this cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// The cookie value of `session`.
    pub(crate) fn seal(&self, session: &Session) -> String {
        let body = session.body();
        format!("{body}.{}", hex(&self.mac(&[b"session", body.as_bytes()])))
    }

    /// The session of a cookie value this key sealed, unless it expired before `now` (unix
    /// seconds). Anything else (a forged, altered or truncated value) is `None`.
    pub(crate) fn open(&self, value: &str, now: u64) -> Option<Session> {
        let (body, mac) = value.rsplit_once('.')?;
        let expected = hex(&self.mac(&[b"session", body.as_bytes()]));
        if !constant_time_eq(expected.as_bytes(), mac.as_bytes()) {
            return None;
        }
        let mut parts = body.split('.');
        let (Some("v1"), Some(token), Some(nonce), Some(expires), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let session = Session {
            token: TokenId::parse(token).ok()?,
            nonce: unhex16(nonce)?,
            expires: expires.parse().ok()?,
        };
        (session.expires > now).then_some(session)
    }

    /// The CSRF token of `session`: what its forms carry.
    pub(crate) fn csrf(&self, session: &Session) -> String {
        hex(&self.mac(&[b"csrf", &session.nonce]))
    }
}

/// A signed-in browser's session: the token it acts with, its own nonce, when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    /// The token's id.
    pub token: TokenId,
    /// This session's random nonce (what ending it names).
    pub nonce: [u8; 16],
    /// When it expires, unix seconds.
    pub expires: u64,
}

impl Session {
    fn body(&self) -> String {
        format!(
            "v1.{}.{}.{}",
            self.token.as_str(),
            hex(&self.nonce),
            self.expires
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex16(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Now, in unix seconds (the engine's clock, which tests may move).
fn unix_now(state: &AppState) -> u64 {
    (state.engine().now().as_unix_micros() / 1_000_000).max(0) as u64
}

/// The value of cookie `name` in `headers`.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// The valid session of a request's cookie, if it has one: signed by this service, not
/// expired, not ended. (Whether its token is still valid is the caller's check.)
pub(crate) fn from_cookie(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    let value = cookie(headers, COOKIE)?;
    let session = state.0.session_key.open(value, unix_now(state))?;
    (!state.tokens().session_ended(
        &session.token,
        &civicflow_core::domain::access::SessionNonce(session.nonce),
    ))
    .then_some(session)
}

/// Whether a request that came with the session cookie may change anything: its `Origin`,
/// when there is one, must be this service's own (the `Host` it was sent to). A browser sends
/// `Origin` with every POST; a request without one is from a tool, not a forged page.
///
/// # Errors
/// 403 in words.
pub(crate) fn check_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    match (origin_host, host) {
        (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => Ok(()),
        _ => Err(ApiError::forbidden(
            "cross-site request refused: this form was not sent from the dashboard's own pages",
        )),
    }
}

/// What a page handler knows of its caller: who they are and, when they came with the
/// session cookie (not a bearer token), the session and the CSRF token its forms carry.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    /// The caller.
    pub caller: Caller,
    /// The session, for a browser signed in with the cookie.
    pub session: Option<Session>,
    /// The CSRF token to put in forms (empty for a bearer caller, who needs none).
    pub csrf: String,
}

impl Viewer {
    /// Who the caller acts as.
    pub fn acting(&self) -> &Acting {
        &self.caller.acting
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| PageError::from(ApiError::unauthorized("sign in first")))?;
        let session = parts.extensions.get::<Session>().cloned();
        let csrf = session
            .as_ref()
            .map(|s| state.0.session_key.csrf(s))
            .unwrap_or_default();
        Ok(Self {
            caller,
            session,
            csrf,
        })
    }
}

/// A posted form, read strictly (`application/x-www-form-urlencoded`, UTF-8), whose CSRF
/// token was checked when it came with the session cookie: the pairs in order, `csrf`
/// removed.
#[derive(Debug, Clone, Default)]
pub(crate) struct PageForm(pub Vec<(String, String)>);

impl PageForm {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl FromRequest<AppState> for PageForm {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, PageError> {
        let session = request.extensions().get::<Session>().cloned();
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = axum::body::to_bytes(request.into_body(), crate::json::BODY_MAX_BYTES)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    "the form is over 64 KiB",
                )
            })?;
        // An empty body is an empty form, whatever it says it is (a button without fields).
        let pairs = if bytes.is_empty() {
            Vec::new()
        } else {
            crate::open311::form::check_content_type(content_type.as_deref()).map_err(|e| {
                ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    e.0,
                )
            })?;
            crate::open311::form::parse(&bytes)
                .map_err(|e| ApiError::bad_request(format!("the form: {}", e.0)))?
        };
        let csrf = pairs
            .iter()
            .find(|(n, _)| n == CSRF_FIELD)
            .map(|(_, v)| v.clone());
        if let Some(session) = session {
            let expected = state.0.session_key.csrf(&session);
            let given = csrf.unwrap_or_default();
            if !constant_time_eq(expected.as_bytes(), given.as_bytes()) {
                return Err(ApiError::forbidden(
                    "cross-site request refused: the form's CSRF token is missing or wrong; reload the page and send it again",
                )
                .field(CSRF_FIELD)
                .into());
            }
        }
        Ok(Self(
            pairs.into_iter().filter(|(n, _)| n != CSRF_FIELD).collect(),
        ))
    }
}

/// The sign-in form (`POST /session`).
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)] // Read as form pairs; the type describes the form in the OpenAPI document.
pub(crate) struct SignInForm {
    /// An access token (cft_ and 64 hex digits).
    #[schemars(length(min = 1, max = 200))]
    token: String,
}

/// A form with nothing but its CSRF token.
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)] // Read as form pairs; the type describes the form in the OpenAPI document.
pub(crate) struct CsrfForm {
    /// The CSRF token of the page the form is on (needed with the session cookie only).
    #[serde(default)]
    #[schemars(length(max = 64))]
    csrf: Option<String>,
}

/// Where a caller lands after signing in: the case board for those who act for units, their
/// own requests for residents (and the civic apps that file for them).
pub(crate) fn landing(acting: &Acting) -> &'static str {
    if civicflow_core::domain::org::roles::ACT_FOR_UNITS.contains(&acting.role.as_str()) {
        "/board"
    } else {
        "/mine"
    }
}

fn sign_in_markup(error: Option<&str>, signed_in: Option<&Acting>) -> maud::Markup {
    html! {
        section.sign-in {
            h1 { (bi("登录", "Sign in")) }
            @if let Some(acting) = signed_in {
                p.note {
                    (bi("已登录：", "Signed in as ")) (acting.actor.as_str()) " · " (acting.role.as_str())
                    " · " (acting.unit.as_str()) " — "
                    a href=(landing(acting)) { (bi("继续", "continue")) }
                }
            }
            form method="post" action="/session" {
                div.field {
                    label for="token" { (bi("访问令牌", "Access token")) " " span.required { (bi("必填", "required")) } }
                    input #token type="password" name="token" required autocomplete="off"
                        spellcheck="false" aria-describedby=[error.map(|_| "token-error")]
                        aria-invalid=[error.map(|_| "true")];
                    @if let Some(error) = error {
                        p.error #token-error role="alert" { (error) }
                    }
                    p.hint { (bi("由社区管理员发放，以 cft_ 开头。", "Issued by your community administrator; it starts with cft_.")) }
                }
                button type="submit" { (bi("登录", "Sign in")) }
            }
        }
    }
}

async fn sign_in_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let signed_in =
        from_cookie(&state, &headers).and_then(|session| state.tokens().lookup_id(&session.token));
    Page::new("登录 Sign in", sign_in_markup(None, signed_in.as_ref())).into_response()
}

async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: Option<axum::Extension<crate::ClientAddr>>,
    form: PageForm,
) -> Result<Response, PageError> {
    check_origin(&headers)?;
    let refused = |message: &str| {
        if let Some(limited) = crate::routes::charge_client(&state, client.as_deref(), "/session") {
            return limited;
        }
        let mut page = Page::new("登录 Sign in", sign_in_markup(Some(message), None))
            .status(StatusCode::UNAUTHORIZED)
            .into_response();
        page.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"civicflow\""),
        );
        page
    };
    let Some(token) = form.get("token").map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(refused("token: enter your access token"));
    };
    let Some((id, acting)) = crate::routes::find_token(&state, token).await else {
        return Ok(refused("token: unknown or revoked token"));
    };
    if !state.engine().holds(&acting) {
        return Ok(refused("token: the role this token acts in was revoked"));
    }
    let mut nonce = [0u8; 16];
    getrandom::getrandom(&mut nonce)
        .map_err(|e| ApiError::internal(format!("no randomness for a session: {e}")))?;
    let session = Session {
        token: id,
        nonce,
        expires: unix_now(&state) + LIFETIME_SECS,
    };
    let secure = if state.0.config.tls.is_some() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={LIFETIME_SECS}{secure}",
        state.0.session_key.seal(&session)
    );
    Ok(render::see_other(landing(&acting), Some(cookie)))
}

async fn sign_out(
    State(state): State<AppState>,
    viewer: Viewer,
    form: PageForm,
) -> Result<Response, PageError> {
    let _ = form;
    if let Some(session) = &viewer.session {
        let by = viewer.caller.acting.clone();
        let command = civicflow_core::engine::Command::Access(
            civicflow_core::domain::access::AccessCommand::EndSession {
                token: session.token.clone(),
                session: civicflow_core::domain::access::SessionNonce(session.nonce),
                expires_at: civicflow_core::Timestamp::from_unix_seconds(session.expires as i64),
            },
        );
        state
            .blocking(move |engine| engine.submit(&by, command))
            .await?
            .map_err(crate::error::ApiError::from)?;
        let tokens = state.blocking(|engine| engine.tokens()).await?;
        if let Ok(tokens) = tokens {
            state.tokens().replace(&tokens);
        }
    }
    let secure = if state.0.config.tls.is_some() {
        "; Secure"
    } else {
        ""
    };
    Ok(render::see_other(
        "/",
        Some(format!(
            "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
        )),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SessionKey {
        SessionKey::derive(&MasterKey::from_bytes([7; 32]))
    }

    fn session() -> Session {
        Session {
            token: TokenId::parse("0123456789abcdef").expect("a valid id"),
            nonce: [9; 16],
            expires: 1_000,
        }
    }

    #[test]
    fn a_sealed_session_opens_until_it_expires() {
        let key = key();
        let value = key.seal(&session());
        assert_eq!(key.open(&value, 999), Some(session()));
        assert_eq!(key.open(&value, 1_000), None, "expired at its second");
    }

    #[test]
    fn an_altered_or_foreign_cookie_does_not_open() {
        let key = key();
        let value = key.seal(&session());
        let later = value.replace(".1000.", ".9999999999.");
        assert_ne!(later, value);
        assert_eq!(
            key.open(&later, 0),
            None,
            "a changed expiry breaks the seal"
        );
        let other = SessionKey::derive(&MasterKey::from_bytes([8; 32]));
        assert_eq!(other.open(&value, 0), None, "another store's key");
        for bad in ["", "v1", "v1.x.y.z.w", &value[..value.len() - 1]] {
            assert_eq!(key.open(bad, 0), None, "{bad:?}");
        }
    }

    #[test]
    fn csrf_tokens_differ_per_session() {
        let key = key();
        let mut other = session();
        other.nonce = [10; 16];
        assert_ne!(key.csrf(&session()), key.csrf(&other));
        assert_eq!(key.csrf(&session()).len(), 64);
    }

    #[test]
    fn the_origin_must_be_the_host() {
        let mut headers = HeaderMap::new();
        assert!(
            check_origin(&headers).is_ok(),
            "no Origin: not a browser form"
        );
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(check_origin(&headers).is_ok());
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:9090"),
        );
        assert!(check_origin(&headers).is_err());
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(check_origin(&headers).is_err());
    }
}
