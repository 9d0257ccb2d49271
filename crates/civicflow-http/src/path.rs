//! The path extractor of the native routes: axum's `Path`, whose refusals (a segment that is
//! not valid UTF-8 once percent-decoded, a value of the wrong type) answer the service's JSON
//! error naming the parameter, not axum's `text/plain`.

use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Path parameters, deserialized as axum's `Path` does.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(refused(rejection)),
        }
    }
}

/// A refused path as the API answers it: 400 naming the parameter when there is one; a
/// mismatch between a route and its handler (a bug) is a 500.
fn refused(rejection: PathRejection) -> ApiError {
    let PathRejection::FailedToDeserializePathParams(error) = rejection else {
        tracing::error!(%rejection, "a handler's path parameters do not match its route");
        return ApiError::internal("the route's path parameters are wrong; a bug");
    };
    match error.into_kind() {
        ErrorKind::InvalidUtf8InPathParam { key } => ApiError::bad_request(format!(
            "the path segment {key} is not valid UTF-8 once percent-decoded"
        ))
        .field(key),
        ErrorKind::ParseErrorAtKey {
            key,
            value,
            expected_type,
        } => ApiError::bad_request(format!(
            "the path segment {key} must be {expected_type}, not {value:?}"
        ))
        .field(key),
        ErrorKind::DeserializeError {
            key,
            value,
            message,
        } => ApiError::bad_request(format!(
            "the path segment {key} ({value:?}) is not valid: {message}"
        ))
        .field(key),
        ErrorKind::UnsupportedType { .. } | ErrorKind::WrongNumberOfParameters { .. } => {
            tracing::error!("a handler's path parameters do not match its route");
            ApiError::internal("the route's path parameters are wrong; a bug")
        }
        other => ApiError::bad_request(format!("malformed path: {other}")),
    }
}
