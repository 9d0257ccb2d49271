//! `discovery.{xml,json}`: who runs this endpoint, how to get a key, and the one endpoint
//! (this one), in the layout of the Open311 Service Discovery spec.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Serialize;

use super::format::{Document, Format};
use super::{base_url, check_jurisdiction};
use crate::state::AppState;

/// When what this endpoint serves (the resources, their layout) last changed: a fixed date
/// of this build of the API, with its zone. Clients refresh cached service lists and
/// definitions when it moves, so change it with them.
pub const CHANGESET: &str = "2026-11-27T00:00:00+08:00";

/// The spec this endpoint implements, as discovery names it.
pub const SPECIFICATION: &str = "http://wiki.open311.org/GeoReport_v2";

/// How to reach the people behind this endpoint.
pub const CONTACT: &str = "Tonghui community service centre (通惠社区服务中心), Yiwu: ask at the service desk or through the community's 12345 hotline for help with this API or to report a bug.";

/// How to get an `api_key`.
pub const KEY_SERVICE: &str = "Reading needs no key. To file requests, a civic app asks the Tonghui community administrator for an api_key: an access token in the role open311_client.";

/// The formats every resource is served in, as MIME types.
const FORMATS: [&str; 2] = ["text/xml", "application/json"];

/// The discovery document (`discovery.{xml,json}`).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename = "discovery", deny_unknown_fields)]
pub struct DiscoveryAnswer {
    /// When what this endpoint serves last changed.
    pub changeset: String,
    /// How to reach the people behind it.
    pub contact: String,
    /// How to get an `api_key`.
    pub key_service: String,
    /// The endpoints: this one.
    pub endpoints: Vec<EndpointAnswer>,
}

/// An endpoint of the discovery document.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename = "endpoint", deny_unknown_fields)]
pub struct EndpointAnswer {
    /// The spec it implements.
    pub specification: String,
    /// Its URL, as the client reached it.
    pub url: String,
    /// When it last changed.
    pub changeset: String,
    /// Production or test.
    #[serde(rename = "type")]
    pub kind: EndpointKind,
    /// The formats it serves, as MIME types.
    pub formats: Vec<MediaType>,
}

/// What an endpoint is for.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    /// Real requests.
    Production,
}

/// A format, as a MIME type (`format` in XML).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename = "format")]
pub struct MediaType(pub String);

/// The discovery document for a client that reached this endpoint at `url`.
pub fn document(url: String) -> Document {
    let endpoint = EndpointAnswer {
        specification: SPECIFICATION.to_owned(),
        url,
        changeset: CHANGESET.to_owned(),
        kind: EndpointKind::Production,
        formats: FORMATS.iter().map(|f| MediaType((*f).to_owned())).collect(),
    };
    Document::of(
        "discovery",
        &DiscoveryAnswer {
            changeset: CHANGESET.to_owned(),
            contact: CONTACT.to_owned(),
            key_service: KEY_SERVICE.to_owned(),
            endpoints: vec![endpoint],
        },
    )
}

fn answer(state: &AppState, uri: &Uri, headers: &HeaderMap, format: Format) -> Response {
    if let Err(error) = check_jurisdiction(state, uri, format) {
        return error.into_response();
    }
    document(base_url(state, headers)).respond(format, StatusCode::OK)
}

/// `GET discovery.xml`.
pub async fn xml(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    answer(&state, &uri, &headers, Format::Xml)
}

/// `GET discovery.json`.
pub async fn json(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    answer(&state, &uri, &headers, Format::Json)
}
