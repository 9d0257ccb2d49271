//! The strict JSON body extractor: bodies are capped (64 KiB, by a layer: 413), unknown
//! fields are refused (the request types say `deny_unknown_fields`), strings are capped in
//! characters, and every error names the field at fault. An empty body reads as `{}`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest body accepted.
pub const BODY_MAX_BYTES: usize = 64 * 1024;

/// A request body checked beyond its JSON shape (string lengths, ranges).
pub trait Validate {
    /// Checks the value.
    ///
    /// # Errors
    /// 400 naming the field at fault.
    fn validate(&self) -> Result<(), ApiError>;
}

/// Refuses `value` when it has more than `max` characters.
///
/// # Errors
/// 400 naming `field`.
pub fn cap(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    let count = value.chars().count();
    if count > max {
        return Err(ApiError::bad_request(format!(
            "{field} has {count} characters; at most {max} are accepted"
        ))
        .field(field));
    }
    Ok(())
}

/// Refuses an empty (or blank) `value`.
///
/// # Errors
/// 400 naming `field`.
pub fn required(field: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::bad_request(format!("{field} must not be empty")).field(field));
    }
    Ok(())
}

/// The media type a request's `Content-Type` names, lowercase, without its parameters
/// (`application/toml; charset=utf-8` → `application/toml`); empty when there is none. For
/// the routes that take TOML or JSON (a calendar year, a workflow definition).
pub fn media_type(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// A JSON body, parsed strictly and validated.
#[derive(Debug, Clone)]
pub struct StrictJson<T>(pub T);

/// Parses `bytes` as a `T`, naming the field of any error.
///
/// # Errors
/// 400 for malformed JSON, a wrong type, an unknown or missing field, trailing bytes.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let error = ApiError::bad_request(format!("invalid JSON body: {inner}"));
        let at = (path != "." && !path.is_empty()).then_some(path);
        // A missing field's path is the object that lacks it; the field is the one at fault
        // (serde's message for it is always "missing field `NAME`").
        let missing = inner
            .to_string()
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, _)| name.to_owned());
        match (at, missing) {
            (Some(at), Some(name)) => error.field(format!("{at}.{name}")),
            (None, Some(name)) => error.field(name),
            (Some(at), None) => error.field(at),
            (None, None) => error,
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    Ok(value)
}

impl<T, S> FromRequest<S> for StrictJson<T>
where
    T: DeserializeOwned + Validate,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("the body is over {BODY_MAX_BYTES} bytes"),
                )
            } else {
                ApiError::bad_request(format!("cannot read the body: {e}"))
            }
        })?;
        // No body at all is the empty object: a route whose fields are all optional (a token's
        // revocation, a part's acknowledgement) needs none, and one with a required field
        // names it as missing instead of saying the JSON ended early.
        let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
        let value: T = parse(bytes)?;
        value.validate()?;
        Ok(Self(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        title: String,
        #[allow(dead_code)]
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        count: u32,
    }

    #[test]
    fn errors_name_the_field() {
        let e =
            parse::<Sample>(br#"{"title": "x", "inner": {"count": "many"}}"#).expect_err("refused");
        assert_eq!(e.field.as_deref(), Some("inner.count"));
        let e = parse::<Sample>(br#"{"inner": {"count": 1}}"#).expect_err("refused");
        assert_eq!(e.field.as_deref(), Some("title"), "{}", e.message);
        let e = parse::<Sample>(br#"{"title": "x", "inner": {}}"#).expect_err("refused");
        assert_eq!(e.field.as_deref(), Some("inner.count"), "{}", e.message);
        let e = parse::<Sample>(br#"{"title": "x", "extra": 1}"#).expect_err("refused");
        assert!(e.message.contains("extra"), "{}", e.message);
        let e = parse::<Sample>(br#"{"title": "x"} trailing"#).expect_err("refused");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            parse::<Sample>(r#"{"title": "路灯"}"#.as_bytes())
                .map(|s| s.title)
                .ok(),
            Some("路灯".into())
        );
    }

    #[test]
    fn caps_count_characters_not_bytes() {
        assert!(cap("title", &"路".repeat(10), 10).is_ok());
        let e = cap("title", &"路".repeat(11), 10).expect_err("refused");
        assert_eq!(e.field.as_deref(), Some("title"));
    }
}
