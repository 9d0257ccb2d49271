//! `POST requests.{fmt}`: a civic app files a service request, and it becomes a case
//! (decision 0007, `docs/open311.md` "Filing a request").
//!
//! The body is a form (`application/x-www-form-urlencoded; charset=utf-8`), read strictly
//! ([`super::form`]). The route is public in the route table: Open311 authenticates by the
//! body's `api_key` (a civicflow token), checked here. In order:
//!
//! 1. the content type and the body (400; a body over 64 KiB is 413);
//! 2. `jurisdiction_id`, in the query or the body: empty or ours (404);
//! 3. `api_key`: missing, unknown or revoked (403); its rate limit (429);
//! 4. `service_code`: missing (400), not a listed service (404); the key's role must be one
//!    the workflow lets open a case (403);
//! 5. the location, the description, the attributes, the requester's details (400, naming
//!    the parameter): each read into the engine's types. The attributes are read by the
//!    domain's one field parser, as the native API's fields are;
//! 6. routing chooses the unit ([`super::routing`]); the engine opens the case as the key's
//!    actor and checks the rules: required attributes, list values, units of the chart, the
//!    place's ranges. Its refusals are 403 (the key may not) or 400 (naming the parameter).
//!
//! The answer is the spec's one-element list: `service_request_id` (the case id),
//! `service_notice` (the first stage's deadline, in words), `account_id` (echoed).

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use civicflow_core::domain::case::{Channel, Place, TITLE_CHARS_MAX};
use civicflow_core::domain::fields::{parse_decimal, parse_fields, FieldInput, Fields};
use civicflow_core::domain::workflow::Definition;
use civicflow_core::domain::Rejection;
use civicflow_core::engine::{Command, Outcome, Requester, SubmitError};
use civicflow_core::vault::ContactDetails;
use civicflow_core::CaseId;
use schemars::JsonSchema;
use serde::Serialize;

use super::errors::{echo, Open311Error};
use super::format::{Document, Format};
use super::{check_jurisdiction, form, services};
use crate::error::ApiError;
use crate::json::BODY_MAX_BYTES;
use crate::state::AppState;

/// The most characters of a request's `description` (the spec's limit).
pub const DESCRIPTION_CHARS_MAX: usize = 4000;

/// The most characters of the description a case title repeats.
pub const TITLE_SNIPPET_CHARS: usize = 60;

/// `POST requests.xml`.
pub async fn create_xml(State(state): State<AppState>, request: Request) -> Response {
    create(state, request, Format::Xml)
        .await
        .unwrap_or_else(|response| response)
}

/// `POST requests.json`.
pub async fn create_json(State(state): State<AppState>, request: Request) -> Response {
    create(state, request, Format::Json)
        .await
        .unwrap_or_else(|response| response)
}

/// Any other method on `requests.{fmt}`: `GET` when reading requests is not in the route
/// table is an unknown resource (404); any other method is 405, with `Allow` naming the
/// methods the table has for the path. Both are Open311 errors in the format the path names.
pub async fn other_method(method: Method, request: Request) -> Response {
    let path = request.uri().path();
    let format = Format::guess(path);
    let allow = allowed(path);
    if (method == Method::GET || method == Method::HEAD) && !allow.contains("GET") {
        return Open311Error::not_found(
            format,
            "reading requests is not served; POST requests.xml or requests.json files one",
        )
        .into_response();
    }
    let mut response = Open311Error::with_status(
        format,
        StatusCode::METHOD_NOT_ALLOWED,
        format!("requests takes {allow}, not {}", echo(method.as_str())),
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// The methods the route table has for an Open311 path (`GET, HEAD, POST`), read once.
fn allowed(path: &str) -> String {
    static ALLOWED: OnceLock<HashMap<&'static str, String>> = OnceLock::new();
    let table = ALLOWED.get_or_init(|| {
        let mut methods: HashMap<&'static str, Vec<String>> = HashMap::new();
        for route in super::routes() {
            let names = methods.entry(route.path).or_default();
            if route.method == Method::GET {
                names.extend(["GET".to_owned(), "HEAD".to_owned()]);
            } else {
                names.push(route.method.as_str().to_owned());
            }
        }
        methods
            .into_iter()
            .map(|(path, mut names)| {
                names.sort_unstable();
                names.dedup();
                (path, names.join(", "))
            })
            .collect()
    });
    table
        .get(path)
        .cloned()
        .unwrap_or_else(|| "POST".to_owned())
}

/// A multi-value list's values (`attribute[CODE][]`) or one value (`attribute[CODE]`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Given {
    One(String),
    Many(Vec<String>),
}

/// The parameters of a request, as sent (values not yet checked).
#[derive(Debug, Default)]
struct Params {
    api_key: Option<String>,
    jurisdiction_id: Option<String>,
    service_code: Option<String>,
    lat: Option<String>,
    long: Option<String>,
    address_string: Option<String>,
    address_id: Option<String>,
    email: Option<String>,
    device_id: Option<String>,
    account_id: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    phone: Option<String>,
    description: Option<String>,
    media_url: Option<String>,
    /// By code, in the order first given.
    attributes: Vec<(String, Given)>,
}

impl Params {
    /// The parameters of a form's pairs. A parameter the spec does not define is ignored (as
    /// Open311 servers do); one it defines may be given once, except `attribute[CODE][]`.
    fn from_pairs(pairs: Vec<(String, String)>) -> Result<Params, String> {
        let mut params = Params::default();
        for (name, value) in pairs {
            if let Some(rest) = name.strip_prefix("attribute[") {
                params.attribute(&name, rest, value)?;
                continue;
            }
            let slot = match name.as_str() {
                "api_key" => &mut params.api_key,
                "jurisdiction_id" => &mut params.jurisdiction_id,
                "service_code" => &mut params.service_code,
                "lat" => &mut params.lat,
                "long" => &mut params.long,
                "address_string" => &mut params.address_string,
                "address_id" => &mut params.address_id,
                "email" => &mut params.email,
                "device_id" => &mut params.device_id,
                "account_id" => &mut params.account_id,
                "first_name" => &mut params.first_name,
                "last_name" => &mut params.last_name,
                "phone" => &mut params.phone,
                "description" => &mut params.description,
                "media_url" => &mut params.media_url,
                _ => continue,
            };
            if slot.is_some() {
                return Err(format!(
                    "{name} is given more than once; give it once (only attribute[CODE][] repeats)"
                ));
            }
            *slot = Some(value);
        }
        Ok(params)
    }

    /// `attribute[CODE]` (`rest` is what follows `attribute[`) or `attribute[CODE][]`.
    fn attribute(&mut self, name: &str, rest: &str, value: String) -> Result<(), String> {
        let malformed = || {
            format!(
                "{} is not an attribute parameter: use attribute[CODE]=value, or attribute[CODE][]=value for each value of a multivaluelist",
                echo(name)
            )
        };
        let (code, tail) = rest.split_once(']').ok_or_else(malformed)?;
        let many = match tail {
            "" => false,
            "[]" => true,
            _ => return Err(malformed()),
        };
        if code.is_empty() {
            return Err(malformed());
        }
        match self.attributes.iter_mut().find(|(c, _)| c == code) {
            None => {
                let given = if many {
                    Given::Many(vec![value])
                } else {
                    Given::One(value)
                };
                self.attributes.push((code.to_owned(), given));
            }
            Some((_, Given::Many(values))) if many => values.push(value),
            Some(_) => {
                return Err(format!(
                    "attribute[{}] is given more than once; only a multivaluelist repeats, as attribute[CODE][]",
                    echo(code)
                ))
            }
        }
        Ok(())
    }
}

/// An optional parameter's value: empty (or blank) is the same as absent (the spec).
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.trim().is_empty())
}

async fn create(state: AppState, request: Request, format: Format) -> Result<Response, Response> {
    // Kept for the key check below, after the body is read.
    let client = request.extensions().get::<crate::ClientAddr>().copied();
    let path = request.uri().path().to_owned();
    let bad = |description: String| Open311Error::bad_request(format, description).into_response();
    // 1. The body.
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    form::check_content_type(content_type).map_err(|e| bad(e.0))?;
    check_jurisdiction(&state, request.uri(), format).map_err(IntoResponse::into_response)?;
    let body = axum::body::to_bytes(request.into_body(), BODY_MAX_BYTES)
        .await
        .map_err(|_| {
            Open311Error::with_status(
                format,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is over {BODY_MAX_BYTES} bytes"),
            )
            .into_response()
        })?;
    let pairs = form::parse(&body).map_err(|e| bad(e.0))?;
    let params = Params::from_pairs(pairs).map_err(bad)?;

    // 2. The jurisdiction, when the body names one.
    let ours = state.0.config.open311_jurisdiction.as_str();
    if let Some(id) = given(&params.jurisdiction_id) {
        if id != ours {
            return Err(Open311Error::not_found(
                format,
                format!(
                    "unknown jurisdiction_id '{}'; this endpoint serves '{ours}'",
                    echo(id)
                ),
            )
            .into_response());
        }
    }

    // 3. The key.
    let forbidden =
        |description: &str| Open311Error::forbidden(format, description).into_response();
    // A filing without a valid key is charged to the client's address (`limits.rs`), so
    // that guessing keys is throttled; one with a valid key to its token.
    let keyless = |description: &str| {
        crate::routes::charge_client(&state, client.as_ref(), &path)
            .unwrap_or_else(|| forbidden(description))
    };
    let Some(key) = given(&params.api_key) else {
        return Err(keyless(
            "api_key is required to file a request; ask the community administrator for one",
        ));
    };
    let Some((token, acting)) = state.tokens().lookup(key.trim()) else {
        return Err(keyless("the api_key is unknown or revoked"));
    };
    if let Err(wait) = state.0.limiter.take(&token) {
        let seconds = crate::limits::retry_after_seconds(wait);
        let mut response = Open311Error::with_status(
            format,
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests for this api_key; slow down",
        )
        .into_response();
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Err(response);
    }

    // 4. The service.
    let Some(code) = given(&params.service_code) else {
        return Err(bad("service_code is required".into()));
    };
    let Some(definition) = services::services(&state)
        .into_iter()
        .find(|d| d.id.as_str() == code)
    else {
        return Err(Open311Error::not_found(
            format,
            format!("service_code '{}' not found", echo(code)),
        )
        .into_response());
    };
    if !acting.is_system() && !definition.open.roles.contains(&acting.role) {
        return Err(forbidden(&format!(
            "this api_key (role {}) may not file {} requests",
            acting.role, definition.id
        )));
    }

    // 5. What the request says.
    let place = place(&params).map_err(bad)?;
    let description = given(&params.description).unwrap_or("").trim().to_owned();
    let chars = description.chars().count();
    if chars > DESCRIPTION_CHARS_MAX {
        return Err(bad(format!(
            "description has {chars} characters; at most {DESCRIPTION_CHARS_MAX}"
        )));
    }
    let fields = fields(&definition, &params.attributes).map_err(bad)?;
    let requester = requester(&params).map_err(bad)?;

    // 6. Routing, then the engine.
    let unit = state
        .open311_routing()
        .route(definition.id.as_str(), &place)
        .cloned()
        .unwrap_or_else(|| acting.unit.clone());
    let command = Command::OpenCase {
        workflow: definition.id.clone(),
        version: Some(definition.version),
        unit,
        title: title(&definition, &description),
        description,
        fields,
        requester: requester.map(Requester::New),
        channel: Channel::Open311,
        place: Some(Box::new(place)),
    };
    // The vault writes the requester's details (file I/O): on a blocking thread.
    let outcome = state
        .blocking(move |engine| engine.submit(&acting, command))
        .await
        .map_err(|e| server_error(format, e))?
        .map_err(|e| refused(format, &definition, e))?;
    let Outcome::Case { case, .. } = outcome else {
        return Err(server_error(
            format,
            ApiError::internal("opening a case answered another outcome"),
        ));
    };
    let account_id = given(&params.account_id).unwrap_or("").to_owned();
    Ok(answer(case, &definition, account_id).respond(format, StatusCode::OK))
}

/// A request filed (`POST requests.{fmt}` answers a list of one).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename = "request", deny_unknown_fields)]
pub struct FiledAnswer {
    /// The case opened.
    pub service_request_id: String,
    /// The expected handling time.
    pub service_notice: String,
    /// The requester's account at the client, as given.
    pub account_id: String,
}

/// The answer: the spec's list of one request.
fn answer(case: CaseId, definition: &Definition, account_id: String) -> Document {
    let filed = FiledAnswer {
        service_request_id: case.to_string(),
        service_notice: service_notice(definition),
        account_id,
    };
    Document::of("service_requests", &[filed])
}

/// The expected handling time, from the deadline of the stage a new case starts in:
/// `expected within 4 working hours`; empty when that stage has no deadline.
pub fn service_notice(definition: &Definition) -> String {
    definition
        .stage(&definition.initial_stage)
        .and_then(|stage| stage.deadline.as_ref())
        .map_or_else(String::new, |deadline| {
            format!("expected within {}", deadline.within)
        })
}

/// The case's title: the service's name, then `: ` and the description's first non-blank line
/// (at most [`TITLE_SNIPPET_CHARS`] characters, `…` when cut); the name alone without a
/// description. Never over the engine's title limit.
pub fn title(definition: &Definition, description: &str) -> String {
    let name = definition.name.trim();
    // A tab is allowed in a description (several lines) but not in a title (one line,
    // `domain::text`): in the title it is a space.
    let first = description
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.replace('\t', " "));
    let title = match first.as_deref() {
        Some(line) if line.chars().count() > TITLE_SNIPPET_CHARS => {
            let snippet: String = line.chars().take(TITLE_SNIPPET_CHARS).collect();
            format!("{name}: {}…", snippet.trim_end())
        }
        Some(line) => format!("{name}: {line}"),
        None => name.to_owned(),
    };
    if title.chars().count() > TITLE_CHARS_MAX {
        title.chars().take(TITLE_CHARS_MAX).collect()
    } else {
        title
    }
}

/// The place: the point, the address, the address id, the media URL. At least one location
/// is required (the spec's rule for filing; the native API's place is optional). Only the
/// coordinates are read here, as numbers; that they come in pairs and lie in range, and the
/// texts' limits, are the engine's to check (`Place::check`).
fn place(params: &Params) -> Result<Place, String> {
    let coordinate = |name: &str, value: &Option<String>| -> Result<Option<f64>, String> {
        given(value)
            .map(|text| {
                parse_decimal(text).ok_or_else(|| {
                    format!(
                        "{name} must be a number (WGS 84 degrees), not '{}'",
                        echo(text)
                    )
                })
            })
            .transpose()
    };
    let text = |value: &Option<String>| given(value).map(|v| v.trim().to_owned());
    let place = Place {
        lat: coordinate("lat", &params.lat)?,
        long: coordinate("long", &params.long)?,
        address: text(&params.address_string),
        address_id: text(&params.address_id),
        media_url: text(&params.media_url),
    };
    if place.lat.is_none()
        && place.long.is_none()
        && place.address.is_none()
        && place.address_id.is_none()
    {
        return Err(
            "a location is required: lat and long, address_string, or address_id (none was given)"
                .into(),
        );
    }
    Ok(place)
}

/// The attributes as the workflow's opening fields, read by the domain's field parser (the
/// native API's too). The form's convention becomes its input: an empty value (or one of
/// only spaces) is absent, `attribute[CODE]=value` is text, `attribute[CODE][]` a list of its
/// non-empty values (absent when none is). Errors name `attribute[CODE]`.
fn fields(definition: &Definition, attributes: &[(String, Given)]) -> Result<Fields, String> {
    let specs = &definition.open.fields;
    let input = attributes
        .iter()
        .map(|(code, given)| (code.clone(), attribute(given)));
    parse_fields(specs, input).map_err(|rejection| match rejection {
        Rejection::FieldInvalid { field, reason } if specs.iter().any(|s| s.name == field) => {
            format!("attribute[{field}] {reason}")
        }
        // A code the definition does not have, said in Open311's words.
        Rejection::FieldInvalid { field, .. } => {
            let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            format!(
                "attribute[{}] is not an attribute of {}; its attributes are: {}",
                echo(&field),
                definition.id,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )
        }
        other => other.to_string(),
    })
}

/// One attribute as the field parser's input.
fn attribute(given: &Given) -> FieldInput {
    let value = |v: &String| (!v.trim().is_empty()).then(|| FieldInput::Text(v.clone()));
    match given {
        Given::One(v) => value(v).unwrap_or(FieldInput::Null),
        Given::Many(values) => {
            let items: Vec<FieldInput> = values.iter().filter_map(value).collect();
            if items.is_empty() {
                FieldInput::Null
            } else {
                FieldInput::List(items)
            }
        }
    }
}

/// The requester's details for the vault: `first_name` and `last_name` make the name,
/// `phone`, `email`; `None` when none is given. The error names the parameter, never its
/// value (personal data stays out of answers and logs).
fn requester(params: &Params) -> Result<Option<ContactDetails>, String> {
    let first = given(&params.first_name).map(str::trim);
    let last = given(&params.last_name).map(str::trim);
    let phone = given(&params.phone);
    let email = given(&params.email);
    let name = full_name(first, last);
    if name.is_none() && phone.is_none() && email.is_none() {
        return Ok(None);
    }
    ContactDetails::new(name.as_deref(), phone, email, None)
        .map(Some)
        .map_err(|e| {
            let parameter = match e.field {
                "name" => "first_name and last_name",
                other => other,
            };
            format!("{parameter}: {}", e.rule)
        })
}

/// The name from its parts: `first last`, or, when either part is written in Chinese (or
/// another CJK script), family name first without a space (`李` + `伟` → `李伟`), as such
/// names are written.
fn full_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    let cjk = |text: &str| {
        text.chars().any(|c| {
            matches!(c, '\u{2E80}'..='\u{9FFF}' | '\u{AC00}'..='\u{D7AF}' | '\u{F900}'..='\u{FAFF}' | '\u{20000}'..='\u{3134F}')
        })
    };
    match (first, last) {
        (Some(first), Some(last)) if cjk(first) || cjk(last) => Some(format!("{last}{first}")),
        (Some(first), Some(last)) => Some(format!("{first} {last}")),
        (Some(one), None) | (None, Some(one)) => Some(one.to_owned()),
        (None, None) => None,
    }
}

/// The Open311 parameter a field the engine names stands for.
fn parameter(definition: &Definition, field: &str) -> String {
    match field {
        "place.lat" => "lat".into(),
        "place.long" => "long".into(),
        "place.address" => "address_string".into(),
        "place.address_id" => "address_id".into(),
        "place.media_url" => "media_url".into(),
        "title" | "description" => "description".into(),
        field if definition.open.fields.iter().any(|f| f.name == field) => {
            format!("attribute[{field}]")
        }
        other => other.into(),
    }
}

/// The engine's refusal as an Open311 error: 403 when the key may not file there, 400 naming
/// the parameter otherwise; a failure of the store is the 5xx it is.
fn refused(format: Format, definition: &Definition, error: SubmitError) -> Response {
    let rejection = match error {
        SubmitError::Rejected(rejection) => rejection,
        SubmitError::Engine(error) => return server_error(format, ApiError::from(error)),
    };
    let error = match &rejection {
        Rejection::NotGranted { .. }
        | Rejection::RoleNotAllowed { .. }
        | Rejection::OutOfScope { .. } => Open311Error::forbidden(
            format,
            format!("this api_key may not file this request: {rejection}"),
        ),
        Rejection::FieldMissing { field, .. } => Open311Error::bad_request(
            format,
            format!("{} is required", parameter(definition, field)),
        ),
        Rejection::FieldInvalid { field, reason } | Rejection::Invalid { field, reason } => {
            Open311Error::bad_request(
                format,
                format!("{}: {reason}", parameter(definition, field)),
            )
        }
        _ => Open311Error::bad_request(format, rejection.to_string()),
    };
    error.into_response()
}

/// A failure that is not the request's (the store, a bug), with the status the native API
/// gives it, as an Open311 error.
fn server_error(format: Format, error: ApiError) -> Response {
    Open311Error::with_status(format, error.status, error.message).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn definition() -> Definition {
        super::super::test_workflow::with_fields(
            "测试 test request",
            r#"
[[open.fields]]
name = "kind"
type = "choice"
required = true
choices = ["a", "b"]
[[open.fields]]
name = "tags"
type = "choices"
choices = ["x", "y", "z"]
[[open.fields]]
name = "count"
type = "integer"
[[open.fields]]
name = "amount"
type = "number"
[[open.fields]]
name = "ok"
type = "bool"
[[open.fields]]
name = "when"
type = "datetime"
"#,
        )
    }

    #[test]
    fn parameters_repeat_only_as_multivaluelists() {
        let params = Params::from_pairs(pairs(&[
            ("api_key", "k"),
            ("attribute[tags][]", "x"),
            ("attribute[tags][]", "y"),
            ("attribute[kind]", "a"),
            ("unknown", "1"),
            ("unknown", "2"),
        ]))
        .expect("valid");
        assert_eq!(params.api_key.as_deref(), Some("k"));
        assert_eq!(
            params.attributes,
            vec![
                ("tags".to_owned(), Given::Many(vec!["x".into(), "y".into()])),
                ("kind".to_owned(), Given::One("a".into())),
            ]
        );
        for bad in [
            &[("lat", "1"), ("lat", "1")][..],
            &[("attribute[kind]", "a"), ("attribute[kind]", "b")],
            &[("attribute[tags][]", "x"), ("attribute[tags]", "y")],
            &[("attribute[kind]", "a"), ("attribute[kind][]", "b")],
            &[("attribute[]", "a")],
            &[("attribute[a][b]", "a")],
            &[("attribute[a", "a")],
        ] {
            assert!(Params::from_pairs(pairs(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn attributes_map_to_fields_by_the_advertised_datatypes() {
        use civicflow_core::domain::fields::FieldValue;
        let definition = definition();
        let got = fields(
            &definition,
            &[
                ("kind".into(), Given::One("a".into())),
                (
                    "tags".into(),
                    Given::Many(vec!["z".into(), "x".into(), "z".into(), String::new()]),
                ),
                ("count".into(), Given::One("12.0".into())),
                ("amount".into(), Given::One(" 3.5 ".into())),
                ("ok".into(), Given::One("false".into())),
                (
                    "when".into(),
                    Given::One("2026-04-01T09:30:00+08:00".into()),
                ),
            ],
        )
        .expect("valid");
        assert_eq!(got["kind"], FieldValue::Choice("a".into()));
        assert_eq!(
            got["tags"],
            FieldValue::Choices(vec!["z".into(), "x".into()])
        );
        assert_eq!(got["count"], FieldValue::Integer(12));
        assert_eq!(got["amount"], FieldValue::Number(3.5));
        assert_eq!(got["ok"], FieldValue::Bool(false));
        assert!(matches!(got["when"], FieldValue::Datetime(_)));
        // Empty values are absent; required attributes and list values are the engine's to
        // check (tests/suite/open311_post.rs sees its refusals).
        let got = fields(
            &definition,
            &[
                ("kind".into(), Given::One(" ".into())),
                ("tags".into(), Given::Many(vec![String::new()])),
                ("count".into(), Given::One(String::new())),
            ],
        )
        .expect("all absent");
        assert!(got.is_empty(), "{got:?}");
        assert_eq!(
            fields(&definition, &[("kind".into(), Given::One("c".into()))]).map(|f| f.len()),
            Ok(1)
        );
        for (attributes, says) in [
            (
                vec![("kind", Given::Many(vec!["a".into()]))],
                "attribute[kind] takes one value, not a list",
            ),
            (
                vec![("nope", Given::One("1".into()))],
                "attribute[nope] is not an attribute of test-request; its attributes are: kind, tags, count, amount, ok, when",
            ),
            (
                vec![("nope", Given::One(String::new()))],
                "attribute[nope] is not an attribute of test-request",
            ),
            (
                vec![("amount", Given::One("NaN".into()))],
                "attribute[amount] must be a decimal number, not \"NaN\"",
            ),
            (
                vec![("amount", Given::One("1e999".into()))],
                "attribute[amount] must be a decimal number",
            ),
            (
                vec![("count", Given::One("1.5".into()))],
                "attribute[count] must be a whole number",
            ),
            (
                vec![("ok", Given::One("yes".into()))],
                "attribute[ok] must be true or false, not \"yes\"",
            ),
            (
                vec![("when", Given::One("1775007000000000".into()))],
                "attribute[when] must be an RFC 3339 date and time with an offset",
            ),
        ] {
            let attributes: Vec<(String, Given)> = attributes
                .into_iter()
                .map(|(c, g)| (c.to_owned(), g))
                .collect();
            let error = fields(&definition, &attributes).expect_err(says);
            assert!(error.contains(says), "{error} (wanted {says})");
        }
    }

    #[test]
    fn titles_notices_and_names() {
        let definition = definition();
        assert_eq!(title(&definition, ""), "测试 test request");
        assert_eq!(
            title(&definition, "\n  路灯不亮 \nsecond line"),
            "测试 test request: 路灯不亮"
        );
        // A title is one line (`domain::text`): a description's tab is a space in it.
        assert_eq!(
            title(&definition, "路灯\t不亮\r\n第二行"),
            "测试 test request: 路灯 不亮"
        );
        let long = "长".repeat(100);
        let cut = title(&definition, &long);
        assert!(cut.ends_with('…'), "{cut}");
        assert_eq!(
            cut.chars().count(),
            "测试 test request: ".chars().count() + TITLE_SNIPPET_CHARS + 1
        );
        assert_eq!(service_notice(&definition), "expected within 1 working day");
        assert_eq!(full_name(Some("伟"), Some("李")).as_deref(), Some("李伟"));
        assert_eq!(
            full_name(Some("Ada"), Some("Lovelace")).as_deref(),
            Some("Ada Lovelace")
        );
        assert_eq!(
            full_name(None, Some("Lovelace")).as_deref(),
            Some("Lovelace")
        );
        assert_eq!(full_name(None, None), None);
    }

    #[test]
    fn a_location_is_required_and_checked() {
        let with = |list: &[(&str, &str)]| {
            Params::from_pairs(pairs(list))
                .map_err(|e| e.to_string())
                .and_then(|p| place(&p))
        };
        assert!(with(&[])
            .expect_err("none")
            .contains("a location is required"));
        assert!(with(&[("lat", ""), ("long", "")]).is_err());
        for bad in ["NaN", "inf", "1e999", "abc", "0x10"] {
            let error = with(&[("lat", bad), ("long", "120")]).expect_err(bad);
            assert!(error.contains("lat must be a number"), "{error}");
        }
        // A lone coordinate and one out of range are places the engine refuses (Place::check).
        let place = with(&[("lat", "91")]).expect("read");
        assert_eq!((place.lat, place.long), (Some(91.0), None));
        let place = with(&[("long", "180.5")]).expect("read");
        assert_eq!((place.lat, place.long), (None, Some(180.5)));
        let place = with(&[("lat", " 29.306 "), ("long", "120.078")]).expect("a point");
        assert_eq!((place.lat, place.long), (Some(29.306), Some(120.078)));
        let place = with(&[("address_id", "g1-7"), ("media_url", " ")]).expect("an id");
        assert_eq!(place.address_id.as_deref(), Some("g1-7"));
        assert_eq!(place.media_url, None);
    }
}
