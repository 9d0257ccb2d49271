//! Open311 GeoReport v2 under `/open311/v2`: the interop standard civic apps speak
//! (`docs/open311.md`). Its own formats (XML, and JSON mirroring it) and its own errors: no
//! path under `/open311/v2/` answers the native API's JSON error.
//!
//! This slice serves discovery, the service list, the service definitions (public reads) and
//! filing a request (`POST requests.{fmt}`). Every route is `Public` in the route table:
//! Open311 authenticates a write by its own `api_key` parameter (a civicflow token), which
//! the handler checks (`requests.rs`), not by a bearer header.

use axum::http::{header, HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;

use crate::openapi::answer_schema_of;
use crate::policy::Policy;
use crate::routes::{Content, RouteSpec};
use crate::state::AppState;

pub mod discovery;
pub mod errors;
pub mod form;
pub mod format;
pub mod reads;
pub mod requests;
pub mod routing;
pub mod services;
#[cfg(test)]
mod test_workflow;

use errors::Open311Error;
use format::Format;

/// The base path of every Open311 resource.
pub const BASE_PATH: &str = "/open311/v2";

/// The summary of `POST requests.{fmt}`, for the format `answer` names.
macro_rules! filing_summary {
    ($answer:literal) => {
        concat!(
            "Open311: file a service request (",
            $answer,
            "). The body is a form (application/x-www-form-urlencoded; charset=utf-8) with api_key (a civicflow token: Open311's own authentication, checked by the handler), service_code, a location (lat+long, address_string or address_id), attribute[CODE] / attribute[CODE][], and the optional description, media_url, first_name, last_name, phone, email, device_id, account_id. Answers [{service_request_id, service_notice, account_id}]; Open311 errors: 403 api_key, 404 service_code, 400 anything else."
        )
    };
}

/// The routes of the table (each resource in both formats; a service definition's format is
/// the suffix of its last segment, which the handler parses).
pub fn routes() -> Vec<RouteSpec> {
    // Every read answers 404 for a jurisdiction_id that is not this endpoint's.
    let read = |path, summary, response, content, handler| {
        route(
            Method::GET,
            path,
            summary,
            response,
            content,
            &[404],
            handler,
        )
    };
    // 400 a bad form, 403 the api_key, 404 the service code, 413 a body over the limit, 429
    // the key's rate limit, 503 a log that cannot write.
    let filing = |path, summary, response, content, handler| {
        route(
            Method::POST,
            path,
            summary,
            response,
            content,
            &[400, 403, 404, 413, 429, 503],
            handler,
        )
    };
    vec![
        read(
            "/open311/v2/discovery.xml",
            "Open311 service discovery (XML): changeset, contact, key_service and this endpoint.",
            None,
            Content::Open311Xml,
            get(discovery::xml),
        ),
        read(
            "/open311/v2/discovery.json",
            "Open311 service discovery (JSON): changeset, contact, key_service and this endpoint.",
            Some(answer_schema_of::<discovery::DiscoveryAnswer>),
            Content::Open311Json,
            get(discovery::json),
        ),
        read(
            "/open311/v2/services.xml",
            "Open311 services (XML): one per workflow a civic app (open311_client) may open.",
            None,
            Content::Open311Xml,
            get(services::list_xml),
        ),
        read(
            "/open311/v2/services.json",
            "Open311 services (JSON, a top-level array): one per workflow a civic app (open311_client) may open.",
            Some(answer_schema_of::<Vec<services::ServiceAnswer>>),
            Content::Open311Json,
            get(services::list_json),
        ),
        read(
            "/open311/v2/services/{code}",
            "Open311 service definition: `{code}` is SERVICE_CODE.xml or SERVICE_CODE.json; the attributes a request of the service takes (404 Open311 error for an unknown code or suffix).",
            Some(answer_schema_of::<services::ServiceDefinitionAnswer>),
            Content::Open311Either,
            get(services::definition),
        ),
        filing(
            "/open311/v2/requests.xml",
            filing_summary!("XML answer"),
            None,
            Content::Open311Xml,
            post(requests::create_xml).fallback(requests::other_method),
        ),
        filing(
            "/open311/v2/requests.json",
            filing_summary!("JSON answer, a top-level array"),
            Some(answer_schema_of::<Vec<requests::FiledAnswer>>),
            Content::Open311Json,
            post(requests::create_json).fallback(requests::other_method),
        ),
    ]
    .into_iter()
    .chain(reads::routes())
    .collect()
}

/// An Open311 route of the table: public (Open311's own authentication, a filing's
/// `api_key`, is the handler's to check), tagged `open311`, answering 200; `errors` are the
/// Open311 errors its handler answers.
pub(crate) fn route(
    method: Method,
    path: &'static str,
    summary: &'static str,
    response: Option<crate::routes::Schema>,
    content: Content,
    errors: &'static [u16],
    handler: axum::routing::MethodRouter<AppState>,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        policy: Policy::Public,
        summary,
        tag: "open311",
        request: None,
        params: None,
        response,
        content,
        status: 200,
        also: &[],
        errors,
        handler,
    }
}

/// Adds the Open311 fallback to `router`: any other path under `/open311/v2/` (and the base
/// path itself), with any method, answers an Open311 404 in the format its suffix names.
/// The native fallback stays for every other path.
pub fn with_fallback(router: Router<AppState>) -> Router<AppState> {
    router
        .route(BASE_PATH, any(unknown_resource))
        .route("/open311/v2/", any(unknown_resource))
        .route("/open311/v2/{*rest}", any(unknown_resource))
}

/// An Open311 404 for a path that names no resource.
async fn unknown_resource(uri: Uri) -> Response {
    Open311Error::not_found(
        Format::guess(uri.path()),
        "no such Open311 resource; there are discovery, services, services/{service_code}, requests (GET and POST), requests/{service_request_id} and servicerequestupdates, each .xml or .json",
    )
    .into_response()
}

/// What every Open311 read checks first: the query's `jurisdiction_id`, when given and not
/// empty, must be this endpoint's (spec: 404 for a `jurisdiction_id` not found). Any other
/// query parameter is ignored, as Open311 servers do.
pub(crate) fn check_jurisdiction(
    state: &AppState,
    uri: &Uri,
    format: Format,
) -> Result<(), Open311Error> {
    let ours = state.0.config.open311_jurisdiction.as_str();
    for (name, value) in query_pairs(uri.query().unwrap_or("")) {
        if name == "jurisdiction_id" && !value.is_empty() && value != ours {
            return Err(Open311Error::not_found(
                format,
                format!(
                    "unknown jurisdiction_id '{}'; this endpoint serves '{ours}'",
                    errors::echo(&value)
                ),
            ));
        }
    }
    Ok(())
}

/// The pairs of a query string (`application/x-www-form-urlencoded`), decoded leniently: a
/// malformed escape stays as it is and invalid UTF-8 becomes U+FFFD, so no query is an
/// error in itself.
pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name, true), decode(value, true))
        })
        .collect()
}

/// Percent-decodes `text` (and `+` as a space in a query), leniently (see [`query_pairs`]).
pub(crate) fn decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        let hex = |b: u8| (b as char).to_digit(16);
        match byte {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(byte),
            },
            b'+' if plus_is_space => out.push(b' '),
            _ => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// This endpoint's URL as the client reached it: `https://` when the service serves TLS itself
/// or the proxy in front says so in `X-Forwarded-Proto`, else `http://`; the `Host` header; and
/// the base path. A missing or malformed `Host` falls back to the address the service listens
/// on.
pub(crate) fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    let https = state.0.config.tls.is_some()
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    let scheme = if https { "https" } else { "http" };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|host| is_authority(host))
        .map_or_else(|| state.0.config.addr.to_string(), str::to_owned);
    format!("{scheme}://{host}{BASE_PATH}")
}

/// A host and optional port, as a `Host` header may hold: letters, digits, `.-_:` and the
/// brackets of an IPv6 literal; nothing that could change the URL's meaning.
fn is_authority(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_is_lenient() {
        assert_eq!(decode("a%20b+c", true), "a b c");
        assert_eq!(decode("a+b", false), "a+b");
        assert_eq!(decode("%E4%B8%AD", false), "中");
        assert_eq!(decode("%", false), "%");
        assert_eq!(decode("%4", false), "%4");
        assert_eq!(decode("%zz", false), "%zz");
        assert_eq!(decode("%FF", false), "\u{FFFD}");
        assert_eq!(
            query_pairs("jurisdiction_id=a%2Eb&x&=y&&z=1"),
            vec![
                ("jurisdiction_id".to_owned(), "a.b".to_owned()),
                ("x".to_owned(), String::new()),
                (String::new(), "y".to_owned()),
                ("z".to_owned(), "1".to_owned()),
            ]
        );
    }

    #[test]
    fn hosts() {
        assert!(is_authority("example.org:8080"));
        assert!(is_authority("[::1]:80"));
        assert!(!is_authority("evil.org/path"));
        assert!(!is_authority("a b"));
        assert!(!is_authority(""));
    }
}
