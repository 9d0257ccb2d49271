//! The request's id, for tracing it through the log (`docs/service.md`, "Tracing a request").
//!
//! A caller's `X-Request-Id`, or the trace id of a W3C `traceparent`, becomes the correlation
//! id of every event the request writes; without either the service makes one (UUID v7). The
//! answer carries `X-Request-Id` back: the caller's own, or the one made. Transport only: the
//! engine takes the correlation id through `SubmitOptions`.

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use civicflow_core::engine::SubmitOptions;
use civicflow_core::{Clock, CorrelationId, SystemClock, Timestamp};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;
use crate::idempotency::IdempotencyKeyHeader;

/// The request-id header.
pub const X_REQUEST_ID: &str = "x-request-id";
/// The W3C trace context header.
const TRACEPARENT: &str = "traceparent";
/// The longest `X-Request-Id` taken.
const REQUEST_ID_MAX: usize = 200;

/// The id of the request being served.
#[derive(Debug, Clone)]
pub struct RequestId {
    /// What the answer's `X-Request-Id` says.
    pub shown: String,
    /// The correlation id of the events the request writes.
    pub correlation: CorrelationId,
}

impl RequestId {
    /// The id of a request with these headers.
    ///
    /// # Errors
    /// 400 naming `X-Request-Id` when it is given more than once, empty, too long or not
    /// printable ASCII. A malformed `traceparent` is ignored, as W3C Trace Context says (a
    /// new trace starts).
    fn of(headers: &axum::http::HeaderMap, now: Timestamp) -> Result<Self, ApiError> {
        let mut given = headers.get_all(X_REQUEST_ID).iter();
        if let Some(value) = given.next() {
            let bad = |why: &str| {
                ApiError::bad_request(format!("X-Request-Id: {why}")).field("X-Request-Id")
            };
            if given.next().is_some() {
                return Err(bad("given more than once; send one id"));
            }
            let text = value
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|t| !t.is_empty() && t.len() <= REQUEST_ID_MAX)
                .filter(|t| t.bytes().all(|b| b.is_ascii_graphic()))
                .ok_or_else(|| bad("must be 1 to 200 printable ASCII characters without spaces"))?;
            return Ok(Self {
                shown: text.to_owned(),
                correlation: correlation_of(text),
            });
        }
        if let Some(trace) = headers
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(trace_id)
        {
            let correlation = CorrelationId::from_uuid(Uuid::from_u128(trace));
            return Ok(Self {
                shown: correlation.to_string(),
                correlation,
            });
        }
        let correlation = CorrelationId::new_v7(now);
        Ok(Self {
            shown: correlation.to_string(),
            correlation,
        })
    }
}

/// A caller's request id as a correlation id: itself when it is a UUID, otherwise the first
/// 16 bytes of its SHA-256 (the same id always gives the same correlation id).
fn correlation_of(text: &str) -> CorrelationId {
    if let Ok(uuid) = Uuid::parse_str(text) {
        return CorrelationId::from_uuid(uuid);
    }
    let digest = Sha256::digest(text.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    CorrelationId::from_uuid(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}

/// The trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), when it is well
/// formed and not all zeros.
fn trace_id(value: &str) -> Option<u128> {
    let mut parts = value.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    if version == "ff" || !hex(version, 2) || !hex(trace, 32) || !hex(parent, 16) || !hex(flags, 2)
    {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    u128::from_str_radix(trace, 16).ok().filter(|id| *id != 0)
}

/// The layer: reads the request's id, keeps it in the request's extensions for the
/// handlers, and answers with `X-Request-Id`.
pub(crate) async fn with_request_id(mut request: Request, next: Next) -> Response {
    let id = match RequestId::of(request.headers(), SystemClock.now()) {
        Ok(id) => id,
        Err(error) => return error.into_response(),
    };
    let shown = HeaderValue::from_str(&id.shown).ok();
    request.extensions_mut().insert(id);
    let mut response = next.run(request).await;
    if let Some(shown) = shown {
        response
            .headers_mut()
            .insert(HeaderName::from_static(X_REQUEST_ID), shown);
    }
    response
}

/// How a write is submitted: its `Idempotency-Key` and the request's correlation id.
#[derive(Debug, Clone)]
pub struct WriteOptions(pub SubmitOptions);

impl<S: Send + Sync> FromRequestParts<S> for WriteOptions {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let IdempotencyKeyHeader(key) =
            IdempotencyKeyHeader::from_request_parts(parts, state).await?;
        let mut options = SubmitOptions::default().with_key(key);
        if let Some(id) = parts.extensions.get::<RequestId>() {
            options = options.correlated(id.correlation);
        }
        Ok(Self(options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_gives_its_trace_id_and_a_malformed_one_nothing() {
        assert_eq!(
            trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736)
        );
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert_eq!(trace_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_request_id_is_kept_as_a_uuid_or_digested_the_same_way_every_time() {
        let uuid = "0192f3a0-0000-7000-8000-000000000001";
        assert_eq!(correlation_of(uuid).to_string(), uuid);
        assert_eq!(correlation_of("req-42"), correlation_of("req-42"));
        assert_ne!(correlation_of("req-42"), correlation_of("req-43"));
    }
}
