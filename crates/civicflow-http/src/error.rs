//! Errors as the API answers them: `{"error": {"code", "message", "field"?}}` with a status
//! that says what kind of problem it is. The mapping from the engine's refusals is here and
//! nowhere else.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use civicflow_core::domain::Rejection;
use civicflow_core::engine::{EngineError, SubmitError};
use civicflow_core::vault::VaultError;
use civicflow_core::ReadError;
use schemars::JsonSchema;
use serde::Serialize;

/// The body of every native error (`components/schemas/Error` in the OpenAPI document).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorAnswer {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong, in an error's body.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// Stable: bad_request, unauthorized, forbidden, not_found, conflict, too_large,
    /// unprocessable, rate_limited, unavailable, … (docs/service.md).
    pub code: &'static str,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub field: Option<String>,
    /// What went wrong, for a person.
    pub message: String,
}

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable code (`bad_request`, `not_found`, …).
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// The request field at fault, when there is one.
    pub field: Option<String>,
    /// Seconds to wait before retrying (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// Names the field at fault.
    #[must_use]
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401: no valid token.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: the caller may not.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// What turns an id that does not parse into a 422 naming `field` (for `map_err`).
    pub fn from_invalid(field: &'static str) -> impl Fn(civicflow_core::InvalidValue) -> Self {
        move |e| {
            Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unprocessable",
                format!("{field}: {:?} {}", e.value, e.rule),
            )
            .field(field)
        }
    }

    /// 404: no such thing (or not the caller's to see).
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// 500: a bug.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// 503: the service cannot write now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorAnswer {
            error: ErrorDetail {
                code: self.code,
                field: self.field,
                message: self.message,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"civicflow\""),
            );
        }
        response
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        let message = rejection.to_string();
        match &rejection {
            Rejection::NotGranted { .. } | Rejection::RoleNotAllowed { .. } => {
                Self::forbidden(message)
            }
            // A write outside the caller's scope on something they can see (reads of what they
            // cannot see answer 404 before the engine is asked).
            Rejection::OutOfScope { .. } => Self::new(StatusCode::FORBIDDEN, "forbidden", message),
            // A unit named in the body that the caller's unit may not reach (the org chart is
            // public, so naming the field and the rule reveals nothing).
            Rejection::OutOfReach { field, .. } => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", message).field(field.clone())
            }
            Rejection::StaleVersion { .. } => {
                Self::new(StatusCode::CONFLICT, "conflict", message).field("expected_version")
            }
            Rejection::NotFound { what, .. } => {
                Self::new(StatusCode::NOT_FOUND, "not_found", message).field(match *what {
                    "case" => "id",
                    other => other,
                })
            }
            Rejection::AlreadyExists { .. } => Self::new(StatusCode::CONFLICT, "conflict", message),
            Rejection::UnknownWorkflow { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", message)
                    .field("workflow")
            }
            Rejection::UnknownAction { .. } | Rejection::ActionNotInStage { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", message)
                    .field("action")
            }
            Rejection::FieldMissing { field, .. } | Rejection::FieldInvalid { field, .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", message)
                    .field(field.clone())
            }
            Rejection::Invalid { field, .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", message)
                    .field(field.clone())
            }
            // The same Idempotency-Key for another request (docs/engine.md, "Retries").
            Rejection::IdempotencyKeyReused { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                message,
            )
            .field(crate::idempotency::HEADER),
            Rejection::CaseClosed { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", message)
                    .field("action")
            }
            _ => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", message),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match &error {
            EngineError::Contention { .. } => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{error}; try again"),
            ),
            EngineError::Append(_) => Self::unavailable(format!("the log cannot write: {error}")),
            // The store itself failed (a full disk, a file-size limit, an I/O error): nothing
            // the caller did, and nothing a retry fixes until an operator acts; the message
            // says what the disk said (tests/suite/sled/disk_full.rs).
            EngineError::Read(ReadError::Storage(_)) => {
                tracing::error!(error = %error, "the log's storage failed");
                Self::unavailable(format!("the log cannot be read: {error}"))
            }
            EngineError::Vault(
                VaultError::Poisoned { .. } | VaultError::Storage { .. } | VaultError::Io { .. },
            ) => {
                tracing::error!(error = %error, "the vault's storage failed");
                Self::unavailable(format!("the personal-data vault failed: {error}"))
            }
            _ => {
                tracing::error!(error = %error, "engine error");
                Self::internal("the engine failed; the error is in the service's log")
            }
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(error: SubmitError) -> Self {
        match error {
            SubmitError::Rejected(rejection) => rejection.into(),
            SubmitError::Engine(error) => error.into(),
        }
    }
}

/// A handler's result.
pub type ApiResult<T> = Result<T, ApiError>;
