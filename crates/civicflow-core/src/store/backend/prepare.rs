//! Preparing an append: validation, the idempotency fingerprint, and the caller's part of
//! each record, done before the append waits for a commit.

use sha2::{Digest, Sha256};

use crate::clock::Timestamp;
use crate::codec::{self, PreparedEvent};
use crate::error::AppendError;
use crate::event::{AppendRequest, MAX_EVENT_BYTES};
use crate::ids::{EventId, ExpectedVersion, IdempotencyKey, StreamId};

/// An append after validation and encoding, ready for a commit group ([`prepare`]).
#[derive(Debug)]
pub struct PreparedAppend {
    pub(super) writes: Vec<PreparedWrite>,
    pub(super) idempotency_key: Option<IdempotencyKey>,
    /// SHA-256 of the request's content (only computed when there is a key).
    pub(super) fingerprint: [u8; 32],
}

impl PreparedAppend {
    /// The append's idempotency key, if it has one.
    pub fn idempotency_key(&self) -> Option<&IdempotencyKey> {
        self.idempotency_key.as_ref()
    }

    /// The streams it writes, in order.
    pub fn streams(&self) -> impl Iterator<Item = &StreamId> {
        self.writes.iter().map(|w| &w.stream)
    }

    /// How many events it writes.
    pub fn event_count(&self) -> usize {
        self.writes.iter().map(|w| w.events.len()).sum()
    }
}

#[derive(Debug)]
pub(super) struct PreparedWrite {
    pub(super) stream: StreamId,
    pub(super) expected: ExpectedVersion,
    pub(super) events: Vec<PreparedEvent>,
}

/// Validates and encodes an append on the caller's thread, before it is queued: what is left
/// for the commit is assigning positions, versions and the recorded time.
///
/// # Errors
/// [`AppendError::Invalid`] for a malformed request, [`AppendError::EventTooLarge`] for an
/// event whose record would pass [`MAX_EVENT_BYTES`].
pub fn prepare(request: AppendRequest, now: Timestamp) -> Result<PreparedAppend, AppendError> {
    request.validate()?;
    let fingerprint = match (&request.idempotency_key, request.fingerprint) {
        (Some(_), Some(given)) => given,
        (Some(_), None) => fingerprint(&request),
        (None, _) => [0; 32],
    };
    let AppendRequest {
        writes,
        actor,
        correlation_id,
        causation_id,
        idempotency_key,
        fingerprint: _,
    } = request;
    let mut prepared_writes = Vec::with_capacity(writes.len());
    for write in writes {
        let mut events = Vec::with_capacity(write.events.len());
        for (index, event) in write.events.iter().enumerate() {
            let event_id = event.event_id.unwrap_or_else(|| EventId::new_v7(now));
            let prepared = codec::prepare_event(
                &write.stream,
                event_id,
                &event.event_type,
                event.schema_version,
                &actor,
                correlation_id,
                event.causation_id.or(causation_id),
                &event.payload,
            );
            let size = codec::record_len_max(&prepared);
            if size > MAX_EVENT_BYTES {
                return Err(AppendError::EventTooLarge {
                    stream: write.stream.clone(),
                    index,
                    size,
                    max: MAX_EVENT_BYTES,
                });
            }
            events.push(prepared);
        }
        prepared_writes.push(PreparedWrite {
            stream: write.stream,
            expected: write.expected,
            events,
        });
    }
    Ok(PreparedAppend {
        writes: prepared_writes,
        idempotency_key,
        fingerprint,
    })
}

/// What makes two appends "the same request" for idempotency: who, which streams with which
/// expectations, and the events' types and payloads. Event ids, correlation and causation are
/// left out: a retry may make new ones.
fn fingerprint(request: &AppendRequest) -> [u8; 32] {
    fn field(hasher: &mut Sha256, bytes: &[u8]) {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
    let mut hasher = Sha256::new();
    field(&mut hasher, b"civicflow-idempotency-v1");
    field(&mut hasher, request.actor.id.as_str().as_bytes());
    field(&mut hasher, request.actor.role.as_str().as_bytes());
    field(&mut hasher, request.actor.unit.as_str().as_bytes());
    for write in &request.writes {
        field(&mut hasher, write.stream.as_str().as_bytes());
        let expected = match write.expected {
            ExpectedVersion::Any => [0u8; 9],
            ExpectedVersion::NoStream => [1; 9],
            ExpectedVersion::Exact(v) => {
                let mut bytes = [2u8; 9];
                bytes[1..].copy_from_slice(&v.get().to_le_bytes());
                bytes
            }
        };
        field(&mut hasher, &expected);
        for event in &write.events {
            field(&mut hasher, event.event_type.as_str().as_bytes());
            field(&mut hasher, &event.schema_version.to_le_bytes());
            field(&mut hasher, &event.payload);
        }
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::NewEvent;
    use crate::ids::{Actor, CorrelationId, EventType};

    fn request(payload: &[u8]) -> AppendRequest {
        AppendRequest::to_stream(
            StreamId::new("case-1").expect("valid"),
            ExpectedVersion::Any,
            vec![NewEvent::new(
                EventType::new("Noted").expect("valid"),
                1,
                payload.to_vec(),
            )],
            Actor::parse("a", "r", "u").expect("valid"),
            CorrelationId::new_v7(Timestamp::EPOCH),
        )
    }

    #[test]
    fn fingerprints_ignore_ids_but_not_content() {
        let a = request(b"x");
        let mut b = request(b"x");
        b.correlation_id = CorrelationId::new_v7(Timestamp::from_unix_seconds(99));
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&request(b"y")));
    }

    #[test]
    fn an_event_over_64_kib_is_refused_with_its_size() {
        let err =
            prepare(request(&vec![0; MAX_EVENT_BYTES]), Timestamp::EPOCH).expect_err("too large");
        match err {
            AppendError::EventTooLarge {
                index: 0,
                size,
                max,
                ..
            } => {
                assert!(size > max);
                assert_eq!(max, 64 * 1024);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
