//! Open311 errors: a list of `{code, description}` (XML `<errors><error>…`), in the format the
//! request asked for, never the native API's JSON error. The status says the kind: 404 for an
//! unknown resource, service code or jurisdiction, 403 for a missing or invalid `api_key`,
//! 400 for everything else.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use schemars::JsonSchema;
use serde::Serialize;

use super::format::{Document, Format};

/// The longest piece of the request an error description repeats (a path can be very long).
const ECHO_CHARS_MAX: usize = 100;

/// An Open311 error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open311Error {
    /// The HTTP status, which is also the error's `code`.
    pub status: StatusCode,
    /// What went wrong, for a person.
    pub description: String,
    /// The format to answer in.
    pub format: Format,
}

impl Open311Error {
    /// 404: no such resource, service code or jurisdiction.
    pub fn not_found(format: Format, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            description: description.into(),
            format,
        }
    }

    /// 403: a missing, unknown or revoked `api_key`, or one that may not file the request.
    pub fn forbidden(format: Format, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            description: description.into(),
            format,
        }
    }

    /// 400: anything else wrong with the request.
    pub fn bad_request(format: Format, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            description: description.into(),
            format,
        }
    }

    /// An error with another status, for what the HTTP layer itself says (413 for a body over
    /// the limit, 405 for a method a resource does not take, 429, 5xx when the store fails).
    pub fn with_status(format: Format, status: StatusCode, description: impl Into<String>) -> Self {
        Self {
            status,
            description: description.into(),
            format,
        }
    }

    /// The error as a document: a list of one.
    pub fn document(&self) -> Document {
        let error = Open311ErrorAnswer {
            code: self.status.as_u16(),
            description: self.description.clone(),
        };
        Document::of("errors", &[error])
    }
}

/// An Open311 error, as the list of errors holds it (`components/schemas/Open311Errors`).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename = "error", deny_unknown_fields)]
pub struct Open311ErrorAnswer {
    /// The HTTP status: a number, as the spec's examples write it in both formats (not an
    /// id).
    pub code: u16,
    /// What went wrong.
    pub description: String,
}

impl IntoResponse for Open311Error {
    fn into_response(self) -> Response {
        self.document().respond(self.format, self.status)
    }
}

/// A piece of the request for an error description: at most `ECHO_CHARS_MAX` characters.
pub fn echo(text: &str) -> String {
    if text.chars().count() <= ECHO_CHARS_MAX {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(ECHO_CHARS_MAX).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_in_both_formats() {
        let error = Open311Error::not_found(Format::Xml, "service_code a&b not found");
        assert_eq!(
            error.document().to_xml(),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<errors><error><code>404</code><description>service_code a&amp;b not found</description></error></errors>\n"
        );
        assert_eq!(
            error.document().to_json(),
            r#"[{"code":404,"description":"service_code a&b not found"}]"#
        );
    }

    #[test]
    fn echoes_are_short() {
        assert_eq!(echo("abc"), "abc");
        assert_eq!(echo(&"x".repeat(5000)).chars().count(), ECHO_CHARS_MAX + 1);
    }
}
