//! Audit bundles: what the log holds for one case, in a form that can be checked without the
//! store.
//!
//! A bundle (format [`BUNDLE_FORMAT`]) carries, for each event of the case's stream in version
//! order: its position and version, its record (the exact stored bytes, in hex), the two
//! links its chain hash covers (`prev_log_hash`: the hash of the event at the position before,
//! `prev_stream_hash`: the hash of the stream's previous event; 32 zero bytes where there is
//! none), its hash, and the record decoded (`decoded`: type, schema version, time, actor, ids
//! and the payload). It also carries the log's head at export time. The layout is in
//! `docs/service.md` ("Audit bundles").
//!
//! [`verify`] recomputes every hash from the record bytes and its two links, checks that the
//! stream's links run from version 1 without a gap, that the log links agree wherever two
//! events of the bundle are neighbours in the log, decodes every record again and has it
//! compared with `decoded`, and checks that the head is at or after the last event. So no
//! value of a bundle can change without the check failing. What a bundle alone cannot show
//! is that its last events were cut off, or that every hash was computed again over altered
//! records: for that, check that it holds a hash of the case kept elsewhere, such as a step's
//! hash from an earlier audit (`civicflow verify-bundle --anchor`).
//!
//! # What is here and what the `civicflow` command does
//!
//! Everything that needs the codec or the chain is here, because only this crate knows how
//! records are encoded: building a bundle from a log ([`export`]), and checking one
//! ([`verify`]). This crate does not read or write JSON text (it does not depend on
//! `serde_json`). A [`Bundle`] is a plain serde type, generic over how `decoded` is held:
//!
//! - [`export`] gives a `Bundle<Decoded>`: `decoded` is typed, the payload a [`CaseEvent`]
//!   (which serializes as its payload struct), and the command writes it with `serde_json`.
//! - To check a file, the command reads it as a bundle whose `decoded` is a JSON value, and
//!   [`verify`] hands it each record decoded again here, as a typed [`Decoded`], to compare
//!   with the file's value. The command renders the typed value as JSON and compares the two
//!   trees for equality.
//!
//! The comparison is of rendered values rather than of typed values on purpose: reading
//! `decoded` back into types would accept a file with an added field (serde skips unknown
//! fields) and could not tell apart payloads of the same shape (an untagged enum guesses its
//! variant), while comparing the rendered trees refuses any changed, added or removed value.
//! Every other part of a bundle is typed and checked here; unknown fields there are refused
//! when reading (`deny_unknown_fields`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::chain::{hex_digit, ChainHash, ChainHead};
use crate::domain::case::CaseEvent;
use crate::error::ReadError;
use crate::event::{PayloadError, RecordedEvent};
use crate::ids::{CaseId, Position, Version};
use crate::store::EventStore;

/// The value of a bundle's `format` field.
pub const BUNDLE_FORMAT: &str = "civicflow-audit-bundle/1";

/// How many events one read of the log takes.
const PAGE: usize = 1024;

/// An audit bundle: one case's events, with what is needed to check them offline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle<D> {
    /// Always [`BUNDLE_FORMAT`].
    pub format: String,
    /// The case's id (hyphenated UUID).
    pub case: String,
    /// The case's stream (`case-<uuid>`).
    pub stream: String,
    /// The log's head when the bundle was made.
    pub head: BundleHead,
    /// The stream's events, in version order from 1.
    pub events: Vec<BundleEvent<D>>,
}

/// The log's head in a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleHead {
    /// Position of the newest event of the whole log.
    pub position: u64,
    /// Its chain hash (64 lowercase hex digits).
    pub hash: String,
}

/// One event of a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleEvent<D> {
    /// Its place in the whole log.
    pub position: u64,
    /// Its place in the stream.
    pub version: u64,
    /// The exact stored bytes, lowercase hex.
    pub record: String,
    /// The hash of the event at `position - 1` (zeros for position 1).
    pub prev_log_hash: String,
    /// The hash of the stream's event at `version - 1` (zeros for version 1).
    pub prev_stream_hash: String,
    /// Its chain hash: SHA-256 of the domain, the two links and the record.
    pub hash: String,
    /// The record decoded.
    pub decoded: D,
}

/// A record decoded: its metadata and its payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decoded {
    /// The event's type name.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The version of its shape.
    pub schema_version: u16,
    /// When the log committed it (RFC 3339, UTC, microseconds).
    pub recorded_at: String,
    /// Who acted.
    pub actor: DecodedActor,
    /// The event's id.
    pub event_id: String,
    /// The request it belongs to.
    pub correlation_id: String,
    /// What caused it.
    pub causation_id: Option<String>,
    /// The payload (it serializes as the payload's struct alone).
    pub payload: CaseEvent,
}

/// Who acted, as a bundle shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecodedActor {
    /// The actor.
    pub id: String,
    /// The role they acted in.
    pub role: String,
    /// The unit they acted for.
    pub unit: String,
}

impl Decoded {
    /// Decodes a case event's metadata and payload.
    ///
    /// # Errors
    /// [`PayloadError`] when the payload is not a case event of a known type and version.
    pub fn of(event: &RecordedEvent) -> Result<Self, PayloadError> {
        Ok(Self {
            event_type: event.event_type.as_str().to_owned(),
            schema_version: event.schema_version,
            recorded_at: event.recorded_at.to_string(),
            actor: DecodedActor {
                id: event.actor.id.as_str().to_owned(),
                role: event.actor.role.as_str().to_owned(),
                unit: event.actor.unit.as_str().to_owned(),
            },
            event_id: event.event_id.to_string(),
            correlation_id: event.correlation_id.to_string(),
            causation_id: event.causation_id.map(|c| c.to_string()),
            payload: event.decode::<CaseEvent>()?,
        })
    }
}

/// A bundle could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The log holds no event of the case.
    #[error("no case {case} in the log")]
    NotFound {
        /// The case.
        case: CaseId,
    },
    /// Reading the log failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// An event of the case does not hash to its stored hash: the log is damaged.
    #[error("the chain is broken at position {position}: the event does not hash to its stored hash (run `civicflow verify`)")]
    Broken {
        /// The event's position.
        position: Position,
    },
    /// An event's payload does not decode as a case event.
    #[error("the event at position {position} does not decode: {reason}")]
    Undecodable {
        /// The event's position.
        position: Position,
        /// Why.
        reason: String,
    },
}

/// Makes the bundle of case `case`: every event of its stream with its record, links, hash
/// and decoding, and the log's head (read after the events, so it is at or after them).
///
/// # Errors
/// [`ExportError::NotFound`] for a case without events, [`ExportError::Broken`] when an
/// event does not hash to its stored hash, [`ExportError::Undecodable`] when a payload is
/// not a case event, [`ExportError::Read`] when the log cannot be read.
pub fn export(log: &dyn EventStore, case: CaseId) -> Result<Bundle<Decoded>, ExportError> {
    let stream = case.stream();
    let mut recorded = Vec::new();
    let mut from = Version::FIRST;
    loop {
        let page = log.read_stream(&stream, from, PAGE)?;
        let Some(last) = page.last() else { break };
        from = last.version.next();
        let full = page.len() == PAGE;
        recorded.extend(page);
        if !full {
            break;
        }
    }
    if recorded.is_empty() {
        return Err(ExportError::NotFound { case });
    }
    let mut events = Vec::with_capacity(recorded.len());
    let mut prev_stream = ChainHash::GENESIS;
    for event in &recorded {
        let prev_log = match event.position.prev() {
            None => ChainHash::GENESIS,
            Some(before) => log
                .read_all(before, 1)?
                .first()
                .filter(|e| e.position == before)
                .map(|e| e.hash)
                .ok_or(ExportError::Broken { position: before })?,
        };
        let record = event.to_record_bytes();
        if ChainHash::link(&prev_log, &prev_stream, &record) != event.hash {
            return Err(ExportError::Broken {
                position: event.position,
            });
        }
        let decoded = Decoded::of(event).map_err(|e| ExportError::Undecodable {
            position: event.position,
            reason: e.to_string(),
        })?;
        events.push(BundleEvent {
            position: event.position.get(),
            version: event.version.get(),
            record: to_hex(&record),
            prev_log_hash: prev_log.to_hex(),
            prev_stream_hash: prev_stream.to_hex(),
            hash: event.hash.to_hex(),
            decoded,
        });
        prev_stream = event.hash;
    }
    // Every event read is durable, so the head read now is at or after the last of them.
    let head = log.head().ok_or(ExportError::NotFound { case })?;
    Ok(Bundle {
        format: BUNDLE_FORMAT.to_owned(),
        case: case.to_string(),
        stream: stream.as_str().to_owned(),
        head: BundleHead {
            position: head.position.get(),
            hash: head.hash.to_hex(),
        },
        events,
    })
}

/// What a bundle that checks out proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSummary {
    /// The case.
    pub case: CaseId,
    /// How many events (versions 1 to this).
    pub events: usize,
    /// The first event's position.
    pub first_position: Position,
    /// The last event's position.
    pub last_position: Position,
    /// The last event's hash: the case's chain head.
    pub last_hash: ChainHash,
    /// The log's head at export.
    pub head: ChainHead,
}

impl fmt::Display for BundleSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bundle intact: case {}, {} events (versions 1-{}, positions {}-{}), last hash {}; log head at export: position {} hash {}",
            self.case,
            self.events,
            self.events,
            self.first_position,
            self.last_position,
            self.last_hash,
            self.head.position,
            self.head.hash
        )
    }
}

/// The first thing wrong with a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleProblem {
    /// The event at fault: its index in `events` (0-based) and the position it claims;
    /// `None` for the bundle as a whole.
    pub event: Option<(usize, u64)>,
    /// What is wrong.
    pub reason: String,
}

impl BundleProblem {
    fn bundle(reason: impl Into<String>) -> Self {
        Self {
            event: None,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for BundleProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.event {
            Some((index, position)) => write!(
                f,
                "event #{} (position {position}): {}",
                index + 1,
                self.reason
            ),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for BundleProblem {}

/// Checks a bundle without the store (see the module's documentation for what is checked).
/// `same_decoded` compares an event's `decoded` as the bundle holds it with the record
/// decoded again, and says what differs (its error's words become the problem's reason).
///
/// # Errors
/// The first [`BundleProblem`] found, in the order of the events.
pub fn verify<D, E: std::fmt::Display>(
    bundle: &Bundle<D>,
    mut same_decoded: impl FnMut(&D, &Decoded) -> Result<(), E>,
) -> Result<BundleSummary, BundleProblem> {
    if bundle.format != BUNDLE_FORMAT {
        return Err(BundleProblem::bundle(format!(
            "format is {:?}, not {BUNDLE_FORMAT:?}",
            bundle.format
        )));
    }
    let case = CaseId::parse(&bundle.case)
        .ok()
        .filter(|id| id.to_string() == bundle.case)
        .ok_or_else(|| {
            BundleProblem::bundle(format!(
                "case {:?} is not a case id (a hyphenated lowercase UUID)",
                bundle.case
            ))
        })?;
    let stream = case.stream();
    if bundle.stream != stream.as_str() {
        return Err(BundleProblem::bundle(format!(
            "stream is {:?} but case {case}'s stream is {stream}",
            bundle.stream
        )));
    }
    let head = ChainHead {
        position: Position::new(bundle.head.position)
            .ok_or_else(|| BundleProblem::bundle("the head's position is 0"))?,
        hash: ChainHash::from_hex(&bundle.head.hash).ok_or_else(|| {
            BundleProblem::bundle("the head's hash is not 64 lowercase hex digits")
        })?,
    };
    let mut previous: Option<(Position, ChainHash)> = None;
    let mut first_position = None;
    for (index, event) in bundle.events.iter().enumerate() {
        let problem = |reason: String| BundleProblem {
            event: Some((index, event.position)),
            reason,
        };
        let (position, hash) =
            check_event(index, event, previous, &stream, &mut same_decoded).map_err(problem)?;
        first_position.get_or_insert(position);
        previous = Some((position, hash));
    }
    let (Some(first_position), Some((last_position, last_hash))) = (first_position, previous)
    else {
        return Err(BundleProblem::bundle("the bundle holds no events"));
    };
    if head.position < last_position {
        return Err(BundleProblem::bundle(format!(
            "the head (position {}) is before the last event (position {last_position})",
            head.position
        )));
    }
    if head.position == last_position && head.hash != last_hash {
        return Err(BundleProblem::bundle(format!(
            "the head is the last event (position {last_position}) but its hash {} is not the event's {last_hash}",
            head.hash
        )));
    }
    Ok(BundleSummary {
        case,
        events: bundle.events.len(),
        first_position,
        last_position,
        last_hash,
        head,
    })
}

/// Checks one event given the one before it in the bundle; its position and hash.
fn check_event<D, E: std::fmt::Display>(
    index: usize,
    event: &BundleEvent<D>,
    previous: Option<(Position, ChainHash)>,
    stream: &crate::ids::StreamId,
    same_decoded: &mut impl FnMut(&D, &Decoded) -> Result<(), E>,
) -> Result<(Position, ChainHash), String> {
    let expected = u64::try_from(index)
        .ok()
        .and_then(|i| i.checked_add(1))
        .ok_or("too many events")?;
    if event.version != expected {
        return Err(if event.version > expected {
            format!(
                "version {} where {expected} comes next: version {expected} is missing",
                event.version
            )
        } else {
            format!(
                "version {} where {expected} comes next: events are repeated or out of order",
                event.version
            )
        });
    }
    let position = Position::new(event.position).ok_or("position 0")?;
    if let Some((before, _)) = previous {
        if position <= before {
            return Err(format!(
                "position {position} is not after the previous event's {before}: events are out of order"
            ));
        }
    }
    let record =
        from_hex(&event.record).ok_or("the record is not lowercase hex digits in pairs")?;
    let parse = |what: &str, text: &str| {
        ChainHash::from_hex(text).ok_or(format!("{what} is not 64 lowercase hex digits"))
    };
    let hash = parse("hash", &event.hash)?;
    let prev_log = parse("prev_log_hash", &event.prev_log_hash)?;
    let prev_stream = parse("prev_stream_hash", &event.prev_stream_hash)?;
    let computed = ChainHash::link(&prev_log, &prev_stream, &record);
    if computed != hash {
        return Err(format!(
            "the record and its links hash to {computed}, not to the stored hash {hash}"
        ));
    }
    let expected_prev_stream = previous.map_or(ChainHash::GENESIS, |(_, h)| h);
    if prev_stream != expected_prev_stream {
        return Err(format!(
            "prev_stream_hash {prev_stream} is not the hash of the stream's previous event ({})",
            if previous.is_some() {
                format!("version {}: {expected_prev_stream}", index)
            } else {
                "none: zeros".to_owned()
            }
        ));
    }
    match (position.prev(), previous) {
        (None, _) if prev_log != ChainHash::GENESIS => {
            return Err("the log's first event must link to zeros (prev_log_hash)".into());
        }
        (Some(_), _) if prev_log == ChainHash::GENESIS => {
            return Err(format!(
                "prev_log_hash is zeros, but position {position} has an event before it"
            ));
        }
        (Some(before), Some((prev_position, prev_hash)))
            if before == prev_position && prev_log != prev_hash =>
        {
            return Err(format!(
                "prev_log_hash {prev_log} is not the hash of the event at position {before} ({prev_hash})"
            ));
        }
        _ => {}
    }
    let recorded = RecordedEvent::from_record_bytes(&record, hash)
        .map_err(|e| format!("the record does not decode: {e}"))?;
    if recorded.position != position {
        return Err(format!(
            "the record says position {}, the bundle {position}",
            recorded.position
        ));
    }
    if recorded.version.get() != event.version {
        return Err(format!(
            "the record says version {}, the bundle {}",
            recorded.version, event.version
        ));
    }
    if &recorded.stream != stream {
        return Err(format!(
            "the record is of stream {}, not {stream}",
            recorded.stream
        ));
    }
    let decoded =
        Decoded::of(&recorded).map_err(|e| format!("the record's payload does not decode: {e}"))?;
    same_decoded(&event.decoded, &decoded).map_err(|e| format!("decoded: {e}"))?;
    Ok((position, hash))
}

/// Lowercase hex.
fn to_hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// Parses lowercase hex (`None` for anything else, so bytes have one spelling only).
fn from_hex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks_exact(2)
        .map(|pair| Some((hex_digit(pair[0])? << 4) | hex_digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_has_one_spelling() {
        let bytes = vec![0u8, 1, 0x7f, 0x80, 0xff];
        assert_eq!(to_hex(&bytes), "00017f80ff");
        assert_eq!(from_hex("00017f80ff"), Some(bytes));
        assert_eq!(from_hex("00017F80FF"), None);
        assert_eq!(from_hex("0"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex(""), Some(Vec::new()));
    }
}
