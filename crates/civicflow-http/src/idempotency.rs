//! The `Idempotency-Key` header of the native API's writes (`docs/service.md`, "Retries").
//!
//! Transport only: the header is read and checked here, and handed to the engine, which
//! scopes the key to the caller's actor, compares the whole request and answers a retry with
//! the first answer (`Engine::submit_with_key`, `docs/engine.md`, "Retries").

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use civicflow_core::IdempotencyKey;
use serde_json::{json, Value};

use crate::error::ApiError;

/// The header's name, as OpenAPI and the errors spell it.
pub const HEADER: &str = "Idempotency-Key";

/// The `Idempotency-Key` header of a request, checked: absent, or one valid key.
#[derive(Debug, Clone)]
pub struct IdempotencyKeyHeader(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all(HEADER).iter();
        let Some(value) = values.next() else {
            return Ok(Self(None));
        };
        let bad = |why: String| ApiError::bad_request(format!("{HEADER}: {why}")).field(HEADER);
        if values.next().is_some() {
            return Err(bad("given more than once; send one key".into()));
        }
        let text = value
            .to_str()
            .map_err(|_| bad("must be ASCII text".into()))?;
        IdempotencyKey::new(text.trim())
            .map(|key| Self(Some(key)))
            .map_err(|e| bad(e.to_string()))
    }
}

/// The header as an OpenAPI parameter list, for a route's `params`.
pub fn header_param() -> Value {
    json!([{
        "name": HEADER,
        "in": "header",
        "required": false,
        "description": "Makes a retry safe: the same key with the same request answers the first answer and does nothing again; the same key with another request is 422 idempotency_key_reused. Keys are the caller's actor's, kept as long as the log.",
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": 128,
            "pattern": "^[A-Za-z0-9._:@/+=-]+$"
        }
    }])
}
