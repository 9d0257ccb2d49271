//! What goes into the log and what comes out of it.
//!
//! An [`AppendRequest`] carries one or more [`StreamWrite`]s (events for one stream, with the
//! version the caller expects), who is acting, and the ids that tie it to its cause. What comes
//! back is an [`Appended`] (positions and versions), or a [`Conflict`] when a stream was not at
//! the expected version. Reads return [`RecordedEvent`]s: the event with everything the log
//! assigned to it.
//!
//! Payloads are bytes to the log. Typed events implement [`DomainEvent`]: each released
//! `(event_type, schema_version)` is a fixed shape that is never edited, and older versions are
//! upcast to the current one when read.

use serde::{de::DeserializeOwned, Serialize};

use crate::chain::ChainHash;
use crate::clock::Timestamp;
use crate::codec;
use crate::ids::{
    Actor, CausationId, CorrelationId, EventId, EventType, ExpectedVersion, IdempotencyKey,
    InvalidValue, Position, StreamId, Version,
};

/// The largest event record the log accepts: 64 KiB (header and payload together).
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// An event to append: its type, schema version and encoded payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Set by the caller to choose the id, or by the log (UUID v7) when appended.
    pub event_id: Option<EventId>,
    /// The event's type name.
    pub event_type: EventType,
    /// The version of the type's shape, starting at 1.
    pub schema_version: u16,
    /// The encoded payload.
    pub payload: Vec<u8>,
    /// What caused this event, when that is not what caused the whole append (a directive's
    /// parts are caused by its issuing, in the same append). `None`: the append's
    /// [`AppendRequest::causation_id`].
    pub causation_id: Option<CausationId>,
}

impl NewEvent {
    /// An event from already encoded parts.
    pub fn new(event_type: EventType, schema_version: u16, payload: Vec<u8>) -> Self {
        Self {
            event_id: None,
            event_type,
            schema_version,
            payload,
            causation_id: None,
        }
    }

    /// Encodes a typed event.
    ///
    /// # Errors
    /// [`PayloadError`] when the event cannot be encoded.
    pub fn from_domain<E: DomainEvent>(event: &E) -> Result<Self, PayloadError> {
        let event_type =
            EventType::new(event.event_type()).map_err(|e| PayloadError::Malformed {
                event_type: event.event_type().to_owned(),
                schema_version: event.schema_version(),
                reason: e.to_string(),
            })?;
        Ok(Self::new(
            event_type,
            event.schema_version(),
            event.to_payload()?,
        ))
    }

    /// Sets the event id instead of letting the log make one.
    pub fn with_id(mut self, event_id: EventId) -> Self {
        self.event_id = Some(event_id);
        self
    }

    /// Sets what caused this event, instead of what caused the append.
    pub fn caused_by(mut self, cause: CausationId) -> Self {
        self.causation_id = Some(cause);
        self
    }
}

/// Events for one stream, with the version the stream is expected to be at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamWrite {
    /// The stream.
    pub stream: StreamId,
    /// What its current version must be for the write to go ahead.
    pub expected: ExpectedVersion,
    /// The events, in order; at least one.
    pub events: Vec<NewEvent>,
}

impl StreamWrite {
    /// A write to `stream`.
    pub fn new(stream: StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> Self {
        Self {
            stream,
            expected,
            events,
        }
    }
}

/// One atomic append: every write commits, or none does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendRequest {
    /// One write per stream, each stream at most once.
    pub writes: Vec<StreamWrite>,
    /// Who is acting.
    pub actor: Actor,
    /// The request this append belongs to.
    pub correlation_id: CorrelationId,
    /// What caused it, when that is a known command or event.
    pub causation_id: Option<CausationId>,
    /// Makes retries safe: a second append with the same key returns the first's result.
    pub idempotency_key: Option<IdempotencyKey>,
    /// What makes two keyed appends "the same request", as the caller sees it (the engine:
    /// a digest of the command, whose retry may decide other events). `None`: the log
    /// computes one from the append's actor, streams, expectations and events.
    pub fingerprint: Option<[u8; 32]>,
}

impl AppendRequest {
    /// An append of `events` to one stream.
    pub fn to_stream(
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        actor: Actor,
        correlation_id: CorrelationId,
    ) -> Self {
        Self {
            writes: vec![StreamWrite::new(stream, expected, events)],
            actor,
            correlation_id,
            causation_id: None,
            idempotency_key: None,
            fingerprint: None,
        }
    }

    /// An append to several streams at once.
    pub fn to_streams(
        writes: Vec<StreamWrite>,
        actor: Actor,
        correlation_id: CorrelationId,
    ) -> Self {
        Self {
            writes,
            actor,
            correlation_id,
            causation_id: None,
            idempotency_key: None,
            fingerprint: None,
        }
    }

    /// Sets what caused this append.
    pub fn caused_by(mut self, causation_id: CausationId) -> Self {
        self.causation_id = Some(causation_id);
        self
    }

    /// Makes this append idempotent under `key`.
    pub fn with_idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    /// Makes this append idempotent under `key`, as the same request as every other append
    /// with `fingerprint` (see [`AppendRequest::fingerprint`]).
    pub fn with_idempotency(mut self, key: IdempotencyKey, fingerprint: [u8; 32]) -> Self {
        self.idempotency_key = Some(key);
        self.fingerprint = Some(fingerprint);
        self
    }

    /// How many events the request carries.
    pub fn event_count(&self) -> usize {
        self.writes.iter().map(|w| w.events.len()).sum()
    }

    /// Checks the request's shape: at least one write, no empty write, no stream twice, a
    /// schema version of at least 1.
    ///
    /// # Errors
    /// [`InvalidValue`] naming the field at fault.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        if self.writes.is_empty() {
            return Err(InvalidValue::new(
                "writes",
                "[]",
                "an append needs at least one stream write",
            ));
        }
        for (i, write) in self.writes.iter().enumerate() {
            if write.events.is_empty() {
                return Err(InvalidValue::new(
                    "events",
                    write.stream.as_str(),
                    "a stream write needs at least one event",
                ));
            }
            if self.writes[..i].iter().any(|w| w.stream == write.stream) {
                return Err(InvalidValue::new(
                    "writes",
                    write.stream.as_str(),
                    "a stream may appear only once in an append",
                ));
            }
            if let Some(event) = write.events.iter().find(|e| e.schema_version == 0) {
                return Err(InvalidValue::new(
                    "schema_version",
                    event.event_type.as_str(),
                    "schema versions start at 1",
                ));
            }
        }
        Ok(())
    }
}

/// The versions one stream got from an append.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamAppended {
    /// The stream.
    pub stream: StreamId,
    /// The version of the first event written.
    pub first_version: Version,
    /// The version of the last event written: the stream's version after the append.
    pub last_version: Version,
}

/// A successful append: where its events landed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Appended {
    /// Per stream, in the order of the request's writes.
    pub streams: Vec<StreamAppended>,
    /// The position of the first event (the events of one append are consecutive).
    pub first_position: Position,
    /// The position of the last event.
    pub last_position: Position,
    /// True when this is the stored result of an earlier append with the same idempotency
    /// key, and nothing was written now.
    pub deduplicated: bool,
}

/// A stream was not at the version the append expected; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stream {stream} expected {expected} but is at {}", match actual { Some(v) => format!("version {v}"), None => "no stream".to_owned() })]
pub struct Conflict {
    /// The first stream of the request that did not match.
    pub stream: StreamId,
    /// What the request expected.
    pub expected: ExpectedVersion,
    /// The stream's actual version (`None`: it does not exist).
    pub actual: Option<Version>,
}

/// An event as stored: everything the caller gave plus what the log assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedEvent {
    /// Place in the whole log.
    pub position: Position,
    /// The stream.
    pub stream: StreamId,
    /// Place in the stream.
    pub version: Version,
    /// When the log committed it (from the log's clock; never earlier than the event before).
    pub recorded_at: Timestamp,
    /// Unique id (UUID v7).
    pub event_id: EventId,
    /// Type name.
    pub event_type: EventType,
    /// Shape version of the type.
    pub schema_version: u16,
    /// Who acted.
    pub actor: Actor,
    /// The request it belongs to.
    pub correlation_id: CorrelationId,
    /// What caused it.
    pub causation_id: Option<CausationId>,
    /// The encoded payload.
    pub payload: Vec<u8>,
    /// Its chain hash.
    pub hash: ChainHash,
}

impl RecordedEvent {
    /// Decodes the payload as a typed event, upcasting older schema versions.
    ///
    /// # Errors
    /// [`PayloadError`] for an unknown type or version, or bytes that do not decode.
    pub fn decode<E: DomainEvent>(&self) -> Result<E, PayloadError> {
        E::from_payload(self.event_type.as_str(), self.schema_version, &self.payload)
    }

    /// The exact bytes the log stores for this event (and hashes into the chain).
    pub fn to_record_bytes(&self) -> Vec<u8> {
        codec::encode_record(self)
    }

    /// Decodes stored record bytes; `hash` is the chain hash stored beside them.
    ///
    /// # Errors
    /// [`codec::DecodeError`] when the bytes are not a valid record.
    pub fn from_record_bytes(bytes: &[u8], hash: ChainHash) -> Result<Self, codec::DecodeError> {
        codec::decode_record(bytes, hash)
    }
}

/// A typed event that encodes itself and reads every released version of itself.
///
/// Each `(event_type, schema_version)` that was ever released is a fixed shape. To change an
/// event, add a new schema version (a new struct), make it the one written, and keep decoding
/// the old ones by upcasting them in [`DomainEvent::from_payload`]. civicflow's own event
/// enums get this impl from the `domain_events!` declaration, which lists each event's older
/// versions with their upcasts (`docs/engine.md`, "Changing an event's shape"); an embedder's
/// own event writes it by hand, as here.
///
/// ```
/// use civicflow_core::{payload, DomainEvent, PayloadError};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct NoteAddedV1 { text: String }
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// struct NoteAdded { text: String, pinned: bool }
///
/// impl DomainEvent for NoteAdded {
///     fn event_type(&self) -> &'static str { "NoteAdded" }
///     fn schema_version(&self) -> u16 { 2 }
///     fn to_payload(&self) -> Result<Vec<u8>, PayloadError> { payload::encode(self) }
///     fn from_payload(event_type: &str, version: u16, bytes: &[u8]) -> Result<Self, PayloadError> {
///         match (event_type, version) {
///             ("NoteAdded", 1) => {
///                 let old: NoteAddedV1 = payload::decode(event_type, version, bytes)?;
///                 Ok(NoteAdded { text: old.text, pinned: false })
///             }
///             ("NoteAdded", 2) => payload::decode(event_type, version, bytes),
///             _ => Err(PayloadError::unknown(event_type, version)),
///         }
///     }
/// }
///
/// let v1 = payload::encode(&NoteAddedV1 { text: "hi".into() }).unwrap();
/// let upcast = NoteAdded::from_payload("NoteAdded", 1, &v1).unwrap();
/// assert_eq!(upcast, NoteAdded { text: "hi".into(), pinned: false });
/// ```
pub trait DomainEvent: Sized {
    /// The type name written with the event.
    fn event_type(&self) -> &'static str;
    /// The schema version written with the event (the current one).
    fn schema_version(&self) -> u16;
    /// Encodes the event, usually with [`crate::payload::encode`].
    ///
    /// # Errors
    /// [`PayloadError`] when it cannot be encoded.
    fn to_payload(&self) -> Result<Vec<u8>, PayloadError>;
    /// Decodes any released version of any type this enum or struct covers.
    ///
    /// # Errors
    /// [`PayloadError::Newer`] for a known type at a version newer than it reads,
    /// [`PayloadError::Unknown`] for another type or version it does not know,
    /// [`PayloadError::Malformed`] for bytes that do not decode.
    fn from_payload(
        event_type: &str,
        schema_version: u16,
        payload: &[u8],
    ) -> Result<Self, PayloadError>;
}

/// A payload could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// No decoder for this type and version.
    #[error("unknown event type {event_type} version {schema_version}")]
    Unknown {
        /// The type name.
        event_type: String,
        /// The schema version.
        schema_version: u16,
    },
    /// A known type at a schema version newer than any this build reads: the log was
    /// written by a newer civicflow. Nothing is guessed; upgrade before reading the log.
    #[error("event type {event_type} version {schema_version} is newer than this civicflow reads (up to version {newest}): upgrade civicflow to read this log")]
    Newer {
        /// The type name.
        event_type: String,
        /// The schema version found.
        schema_version: u16,
        /// The newest version this build reads.
        newest: u16,
    },
    /// The bytes do not decode as this type and version (or the value does not encode).
    #[error("payload of {event_type} version {schema_version} is malformed: {reason}")]
    Malformed {
        /// The type name.
        event_type: String,
        /// The schema version.
        schema_version: u16,
        /// What went wrong.
        reason: String,
    },
}

impl PayloadError {
    /// The error for a type or version no decoder knows.
    pub fn unknown(event_type: &str, schema_version: u16) -> Self {
        Self::Unknown {
            event_type: event_type.to_owned(),
            schema_version,
        }
    }

    /// The error for a known type at a version newer than `newest`, the newest one read.
    pub fn newer(event_type: &str, schema_version: u16, newest: u16) -> Self {
        Self::Newer {
            event_type: event_type.to_owned(),
            schema_version,
            newest,
        }
    }
}

/// Encoding and decoding of event payloads with the log's codec.
///
/// Use these in [`DomainEvent`] implementations so that every payload in the log is encoded
/// the same way, and no crate but the core names the codec.
pub mod payload {
    use super::*;

    /// Encodes a payload.
    ///
    /// # Errors
    /// [`PayloadError::Malformed`] when serde refuses the value (a map with non-string keys
    /// is fine; an infinite or self-referencing structure is not).
    pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, PayloadError> {
        codec::encode_payload(value).map_err(|reason| PayloadError::Malformed {
            event_type: std::any::type_name::<T>().to_owned(),
            schema_version: 0,
            reason,
        })
    }

    /// Appends the encoding of `value` to `out` (the same bytes as [`encode`]), in one pass:
    /// for many values written together, such as read-model rows.
    ///
    /// # Errors
    /// As [`encode`]; `out` may then hold part of the value.
    pub fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), PayloadError> {
        codec::encode_payload_into(value, out).map_err(|reason| PayloadError::Malformed {
            event_type: std::any::type_name::<T>().to_owned(),
            schema_version: 0,
            reason,
        })
    }

    /// Decodes a payload that must fill `bytes` exactly.
    ///
    /// # Errors
    /// [`PayloadError::Malformed`] naming the type and version when the bytes do not decode.
    pub fn decode<T: DeserializeOwned>(
        event_type: &str,
        schema_version: u16,
        bytes: &[u8],
    ) -> Result<T, PayloadError> {
        codec::decode_payload(bytes).map_err(|reason| PayloadError::Malformed {
            event_type: event_type.to_owned(),
            schema_version,
            reason,
        })
    }
}
