//! Every byte format the log stores, and the only module that knows bincode.
//!
//! Each stored value starts with a format byte (today always [`FORMAT_V1`]); a later codec adds
//! a new byte and keeps decoding the old one, so nothing stored is ever rewritten
//! (`docs/decisions/0002-bincode-and-format-byte.md`). The layouts are drawn in
//! `docs/design.md`. Decoding never panics and never allocates more than the input's size:
//! every length is checked against the bytes that are actually there.

use bincode::Options;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use uuid::Uuid;

use crate::chain::ChainHash;
use crate::clock::Timestamp;
use crate::event::{RecordedEvent, MAX_EVENT_BYTES};
use crate::ids::{
    Actor, ActorId, CausationId, CorrelationId, EventId, EventType, Position, Role, StreamId,
    UnitId, Version,
};

/// The first byte of every value stored in format 1.
pub const FORMAT_V1: u8 = 1;

/// Stored bytes that are not a valid value of the format they claim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct DecodeError {
    /// What was being decoded (`event record`, `chunk`, …).
    pub what: &'static str,
    /// Why it failed.
    pub reason: String,
}

impl DecodeError {
    fn new(what: &'static str, reason: impl Into<String>) -> Self {
        Self {
            what,
            reason: reason.into(),
        }
    }
}

/// bincode 1.3.3 with the options every stored value uses: varint integers, little-endian,
/// and a limit of `limit` bytes, so that a corrupted length can never make a decoder allocate
/// more than the input holds.
fn bincode_options(limit: usize) -> impl Options + Copy {
    bincode::DefaultOptions::new()
        .with_varint_encoding()
        .with_little_endian()
        .with_limit(u64::try_from(limit).unwrap_or(u64::MAX))
        .allow_trailing_bytes()
}

// ---------------------------------------------------------------------------------------------
// Event records

/// The part of a record the log assigns at commit. Fields are never reordered or changed:
/// format 1 is frozen.
#[derive(Serialize, Deserialize)]
struct RecordCommitV1 {
    position: u64,
    version: u64,
    recorded_at: i64,
}

/// The part of a record the caller decides, before the payload, as written. Field order is
/// the format: [`RecordEventV1`] must list the same fields in the same order.
#[derive(Serialize)]
struct RecordEventV1Ref<'a> {
    stream: &'a str,
    event_id: [u8; 16],
    event_type: &'a str,
    schema_version: u16,
    actor_id: &'a str,
    actor_role: &'a str,
    actor_unit: &'a str,
    correlation_id: [u8; 16],
    causation_id: Option<[u8; 16]>,
}

/// The part of a record the caller decides, as read back.
#[derive(Deserialize)]
struct RecordEventV1 {
    stream: String,
    event_id: [u8; 16],
    event_type: String,
    schema_version: u16,
    actor_id: String,
    actor_role: String,
    actor_unit: String,
    correlation_id: [u8; 16],
    causation_id: Option<[u8; 16]>,
}

/// The caller's part of an event, encoded before the event commits: everything after the
/// commit fields. Encoding it on the caller's thread keeps the group-commit leader's work short.
#[derive(Debug, Clone)]
pub(crate) struct PreparedEvent {
    /// Encoded [`RecordEventV1`] followed by the payload.
    pub(crate) tail: Vec<u8>,
}

/// Encodes the caller's part of a record.
#[allow(clippy::too_many_arguments)]
pub(crate) fn prepare_event(
    stream: &StreamId,
    event_id: EventId,
    event_type: &EventType,
    schema_version: u16,
    actor: &Actor,
    correlation_id: CorrelationId,
    causation_id: Option<CausationId>,
    payload: &[u8],
) -> PreparedEvent {
    let head = RecordEventV1Ref {
        stream: stream.as_str(),
        event_id: *event_id.as_bytes(),
        event_type: event_type.as_str(),
        schema_version,
        actor_id: actor.id.as_str(),
        actor_role: actor.role.as_str(),
        actor_unit: actor.unit.as_str(),
        correlation_id: *correlation_id.as_bytes(),
        causation_id: causation_id.map(|c| *c.as_bytes()),
    };
    let mut tail = bincode_options(usize::MAX)
        .serialize(&head)
        .expect("a struct of strings, arrays and integers always encodes");
    tail.extend_from_slice(payload);
    PreparedEvent { tail }
}

/// The size of the record `prepare_event` + `finish_record` will produce, at most: the
/// commit fields take at most 1 + 3 * 9 bytes as varints.
pub(crate) fn record_len_max(prepared: &PreparedEvent) -> usize {
    1 + 27 + prepared.tail.len()
}

/// Completes a record with the fields assigned at commit. The result is the exact stored
/// bytes of the event.
pub(crate) fn finish_record(
    position: Position,
    version: Version,
    recorded_at: Timestamp,
    prepared: &PreparedEvent,
) -> Vec<u8> {
    let commit = RecordCommitV1 {
        position: position.get(),
        version: version.get(),
        recorded_at: recorded_at.as_unix_micros(),
    };
    let mut record = Vec::with_capacity(record_len_max(prepared));
    record.push(FORMAT_V1);
    bincode_options(usize::MAX)
        .serialize_into(&mut record, &commit)
        .expect("integers always encode into a Vec");
    record.extend_from_slice(&prepared.tail);
    record
}

/// The stored bytes of a recorded event.
pub(crate) fn encode_record(event: &RecordedEvent) -> Vec<u8> {
    let prepared = prepare_event(
        &event.stream,
        event.event_id,
        &event.event_type,
        event.schema_version,
        &event.actor,
        event.correlation_id,
        event.causation_id,
        &event.payload,
    );
    finish_record(event.position, event.version, event.recorded_at, &prepared)
}

/// The fields of a record that a stream index rebuild and a verifier need, without copying
/// the payload.
pub(crate) struct RecordKeyFields {
    pub(crate) position: u64,
    pub(crate) version: u64,
    pub(crate) stream: String,
}

fn split_format<'a>(what: &'static str, bytes: &'a [u8]) -> Result<&'a [u8], DecodeError> {
    match bytes.split_first() {
        Some((&FORMAT_V1, rest)) => Ok(rest),
        Some((other, _)) => Err(DecodeError::new(
            what,
            format!("unknown format byte {other}"),
        )),
        None => Err(DecodeError::new(what, "empty")),
    }
}

fn decode_record_parts(
    bytes: &[u8],
) -> Result<(RecordCommitV1, RecordEventV1, &[u8]), DecodeError> {
    const WHAT: &str = "event record";
    let rest = split_format(WHAT, bytes)?;
    let options = bincode_options(rest.len());
    // Reading through `&mut &[u8]` advances the slice, so what is left is the payload.
    let mut cursor = rest;
    let commit: RecordCommitV1 = options
        .deserialize_from(&mut cursor)
        .map_err(|e| DecodeError::new(WHAT, format!("commit fields: {e}")))?;
    let event: RecordEventV1 = options
        .deserialize_from(&mut cursor)
        .map_err(|e| DecodeError::new(WHAT, format!("event fields: {e}")))?;
    Ok((commit, event, cursor))
}

/// Decodes the stored bytes of an event; `hash` is the chain hash stored beside them.
pub(crate) fn decode_record(bytes: &[u8], hash: ChainHash) -> Result<RecordedEvent, DecodeError> {
    const WHAT: &str = "event record";
    let (commit, event, payload) = decode_record_parts(bytes)?;
    let invalid = |e: crate::ids::InvalidValue| DecodeError::new(WHAT, e.to_string());
    let position =
        Position::new(commit.position).ok_or_else(|| DecodeError::new(WHAT, "position 0"))?;
    let version =
        Version::new(commit.version).ok_or_else(|| DecodeError::new(WHAT, "version 0"))?;
    if event.schema_version == 0 {
        return Err(DecodeError::new(WHAT, "schema version 0"));
    }
    Ok(RecordedEvent {
        position,
        stream: StreamId::new(event.stream).map_err(invalid)?,
        version,
        recorded_at: Timestamp::from_unix_micros(commit.recorded_at),
        event_id: EventId::from_uuid(Uuid::from_bytes(event.event_id)),
        event_type: EventType::new(event.event_type).map_err(invalid)?,
        schema_version: event.schema_version,
        actor: Actor {
            id: ActorId::new(event.actor_id).map_err(invalid)?,
            role: Role::new(event.actor_role).map_err(invalid)?,
            unit: UnitId::new(event.actor_unit).map_err(invalid)?,
        },
        correlation_id: CorrelationId::from_uuid(Uuid::from_bytes(event.correlation_id)),
        causation_id: event
            .causation_id
            .map(|c| CausationId::from_uuid(Uuid::from_bytes(c))),
        payload: payload.to_vec(),
        hash,
    })
}

/// Decodes only position, version and stream (for index rebuilds and verification).
pub(crate) fn decode_record_key_fields(bytes: &[u8]) -> Result<RecordKeyFields, DecodeError> {
    let (commit, event, _) = decode_record_parts(bytes)?;
    Ok(RecordKeyFields {
        position: commit.position,
        version: commit.version,
        stream: event.stream,
    })
}

// ---------------------------------------------------------------------------------------------
// Chunks: the consecutive events of a commit group under one key

/// The most record bytes a chunk collects before the next record starts a new chunk.
pub(crate) const CHUNK_BYTES_TARGET: usize = 64 * 1024;
/// Per entry: 32 bytes of hash and a 4-byte length.
pub(crate) const CHUNK_ENTRY_OVERHEAD: usize = 36;
/// Format byte and count.
pub(crate) const CHUNK_HEADER: usize = 3;
/// A chunk never holds more entries than this (the count is a u16).
pub(crate) const CHUNK_ENTRIES_MAX: usize = u16::MAX as usize;

/// Builds a chunk value entry by entry.
pub(crate) struct ChunkBuilder {
    bytes: Vec<u8>,
    count: u16,
    target: usize,
}

impl ChunkBuilder {
    pub(crate) fn new() -> Self {
        Self::with_target(CHUNK_BYTES_TARGET)
    }

    /// A builder whose chunks hold about `target` bytes of records.
    pub(crate) fn with_target(target: usize) -> Self {
        let mut bytes = Vec::with_capacity(target.min(CHUNK_BYTES_TARGET / 4));
        bytes.push(FORMAT_V1);
        bytes.extend_from_slice(&0u16.to_le_bytes());
        Self {
            bytes,
            count: 0,
            target,
        }
    }

    /// Whether a record of `len` bytes should go into a new chunk instead.
    pub(crate) fn is_full_for(&self, len: usize) -> bool {
        self.count > 0
            && (self.bytes.len() + CHUNK_ENTRY_OVERHEAD + len > self.target + CHUNK_HEADER
                || usize::from(self.count) >= CHUNK_ENTRIES_MAX)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub(crate) fn push(&mut self, hash: &ChainHash, record: &[u8]) {
        let len = u32::try_from(record.len()).expect("records are at most 64 KiB and a header");
        self.bytes.extend_from_slice(hash.as_bytes());
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes.extend_from_slice(record);
        self.count += 1;
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.bytes[1..3].copy_from_slice(&self.count.to_le_bytes());
        self.bytes
    }
}

/// One entry of a decoded chunk, borrowing the chunk's bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkEntry<'a> {
    pub(crate) hash: ChainHash,
    pub(crate) record: &'a [u8],
}

/// Splits a chunk into its entries.
pub(crate) fn decode_chunk(bytes: &[u8]) -> Result<Vec<ChunkEntry<'_>>, DecodeError> {
    const WHAT: &str = "chunk";
    let rest = split_format(WHAT, bytes)?;
    let (count, mut rest) = take::<2>(WHAT, rest, "count")?;
    let count = u16::from_le_bytes(count);
    if count == 0 {
        return Err(DecodeError::new(WHAT, "no entries"));
    }
    let mut entries = Vec::with_capacity(usize::from(count));
    for i in 0..count {
        let (hash, after_hash) = take::<32>(WHAT, rest, "entry hash")?;
        let (len, after_len) = take::<4>(WHAT, after_hash, "entry length")?;
        let len = usize::try_from(u32::from_le_bytes(len)).unwrap_or(usize::MAX);
        if after_len.len() < len {
            return Err(DecodeError::new(
                WHAT,
                format!(
                    "entry {i} claims {len} bytes but {} remain",
                    after_len.len()
                ),
            ));
        }
        let (record, after_record) = after_len.split_at(len);
        entries.push(ChunkEntry {
            hash: ChainHash::from_bytes(hash),
            record,
        });
        rest = after_record;
    }
    if !rest.is_empty() {
        return Err(DecodeError::new(
            WHAT,
            format!("{} bytes after the last entry", rest.len()),
        ));
    }
    Ok(entries)
}

fn take<'a, const N: usize>(
    what: &'static str,
    bytes: &'a [u8],
    field: &str,
) -> Result<([u8; N], &'a [u8]), DecodeError> {
    match bytes.split_first_chunk::<N>() {
        Some((head, rest)) => Ok((*head, rest)),
        None => Err(DecodeError::new(what, format!("cut off in the {field}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Stream index entries: positions of consecutive versions of one stream

/// The most versions one index entry covers.
pub(crate) const INDEX_ENTRY_VERSIONS_MAX: usize = 256;

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn get_varint(what: &'static str, bytes: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes
            .split_first()
            .ok_or_else(|| DecodeError::new(what, "varint cut off"))?;
        *bytes = rest;
        let low = u64::from(byte & 0x7f);
        if shift == 63 && low > 1 {
            return Err(DecodeError::new(what, "varint overflows 64 bits"));
        }
        value |= low << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError::new(what, "varint longer than 10 bytes"))
}

/// Encodes the positions of consecutive versions (strictly increasing positions).
pub(crate) fn encode_index_entry(positions: &[Position]) -> Vec<u8> {
    debug_assert!(!positions.is_empty() && positions.len() <= INDEX_ENTRY_VERSIONS_MAX);
    debug_assert!(positions.windows(2).all(|w| w[0] < w[1]));
    let mut out = Vec::with_capacity(2 + positions.len() * 2);
    out.push(FORMAT_V1);
    put_varint(&mut out, positions.len() as u64);
    let mut previous = 0u64;
    for position in positions {
        put_varint(&mut out, position.get() - previous);
        previous = position.get();
    }
    out
}

/// Decodes an index entry's positions.
pub(crate) fn decode_index_entry(bytes: &[u8]) -> Result<Vec<Position>, DecodeError> {
    const WHAT: &str = "stream index entry";
    let mut rest = split_format(WHAT, bytes)?;
    let count = get_varint(WHAT, &mut rest)?;
    if count == 0 || count > INDEX_ENTRY_VERSIONS_MAX as u64 {
        return Err(DecodeError::new(WHAT, format!("{count} versions")));
    }
    let mut positions = Vec::with_capacity(count as usize);
    let mut previous = 0u64;
    for _ in 0..count {
        let delta = get_varint(WHAT, &mut rest)?;
        let position = previous
            .checked_add(delta)
            .and_then(Position::new)
            .filter(|_| delta > 0)
            .ok_or_else(|| DecodeError::new(WHAT, "positions must increase"))?;
        positions.push(position);
        previous = position.get();
    }
    if !rest.is_empty() {
        return Err(DecodeError::new(WHAT, "trailing bytes"));
    }
    Ok(positions)
}

// ---------------------------------------------------------------------------------------------
// Idempotency records

/// What an idempotent append stored about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IdempotencyRecordV1 {
    /// SHA-256 of the request's content, to refuse a different request under the same key.
    pub(crate) fingerprint: [u8; 32],
    pub(crate) first_position: u64,
    pub(crate) last_position: u64,
    /// Per stream: id, first version, last version.
    pub(crate) streams: Vec<(String, u64, u64)>,
}

pub(crate) fn encode_idempotency(record: &IdempotencyRecordV1) -> Vec<u8> {
    encode_framed(record)
}

pub(crate) fn decode_idempotency(bytes: &[u8]) -> Result<IdempotencyRecordV1, DecodeError> {
    decode_framed("idempotency record", bytes)
}

/// A stored value of format 1 made of one serde value: the format byte, then bincode.
fn encode_framed<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_V1];
    bincode_options(usize::MAX)
        .serialize_into(&mut out, value)
        .expect("strings, vectors and integers always encode into a Vec");
    out
}

/// Reads what [`encode_framed`] wrote, refusing trailing bytes.
fn decode_framed<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, DecodeError> {
    let rest = split_format(what, bytes)?;
    bincode_options(rest.len())
        .reject_trailing_bytes()
        .deserialize(rest)
        .map_err(|e| DecodeError::new(what, e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Sealed segments of the log (decision 0013): pieces of the stream index and idempotency
// records, as the exact keys and values they had in the tail, in key order; and a segment's
// description.

/// Builds a sealed piece pair by pair (keys must come in ascending order).
pub(crate) struct PieceBuilder {
    bytes: Vec<u8>,
    count: u32,
    first_key: Option<Vec<u8>>,
    target: usize,
}

impl PieceBuilder {
    /// A builder whose pieces hold about `target` bytes.
    pub(crate) fn new(target: usize) -> Self {
        let mut bytes = Vec::with_capacity(target + 4096);
        bytes.push(FORMAT_V1);
        bytes.extend_from_slice(&0u32.to_le_bytes());
        Self {
            bytes,
            count: 0,
            first_key: None,
            target,
        }
    }

    /// Whether the piece holds its share: the next pair goes into a new piece.
    pub(crate) fn is_full(&self) -> bool {
        self.bytes.len() >= self.target
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub(crate) fn push(&mut self, key: &[u8], value: &[u8]) {
        let key_len = u32::try_from(key.len()).expect("keys are short");
        let value_len = u32::try_from(value.len()).expect("values are at most a chunk");
        self.bytes.extend_from_slice(&key_len.to_le_bytes());
        self.bytes.extend_from_slice(key);
        self.bytes.extend_from_slice(&value_len.to_le_bytes());
        self.bytes.extend_from_slice(value);
        self.count += 1;
        if self.first_key.is_none() {
            self.first_key = Some(key.to_vec());
        }
    }

    /// The piece's first key and its bytes.
    pub(crate) fn finish(mut self) -> (Vec<u8>, Vec<u8>) {
        self.bytes[1..5].copy_from_slice(&self.count.to_le_bytes());
        (self.first_key.unwrap_or_default(), self.bytes)
    }
}

/// A (key, value) pair of a sealed piece, borrowing the piece's bytes.
pub(crate) type PiecePair<'a> = (&'a [u8], &'a [u8]);

/// The (key, value) pairs of a sealed piece, checked to be in strictly ascending key order.
pub(crate) fn decode_piece(bytes: &[u8]) -> Result<Vec<PiecePair<'_>>, DecodeError> {
    const WHAT: &str = "sealed piece";
    let rest = split_format(WHAT, bytes)?;
    let (count, mut rest) = take::<4>(WHAT, rest, "count")?;
    let count = u32::from_le_bytes(count);
    if count == 0 {
        return Err(DecodeError::new(WHAT, "no pairs"));
    }
    let mut pairs: Vec<PiecePair<'_>> = Vec::with_capacity(count.min(1 << 16) as usize);
    for i in 0..count {
        let (key_len, after) = take::<4>(WHAT, rest, "key length")?;
        let key_len = u32::from_le_bytes(key_len) as usize;
        if after.len() < key_len {
            return Err(DecodeError::new(WHAT, format!("pair {i}: key cut off")));
        }
        let (key, after) = after.split_at(key_len);
        let (value_len, after) = take::<4>(WHAT, after, "value length")?;
        let value_len = u32::from_le_bytes(value_len) as usize;
        if after.len() < value_len {
            return Err(DecodeError::new(WHAT, format!("pair {i}: value cut off")));
        }
        let (value, after) = after.split_at(value_len);
        if pairs.last().is_some_and(|(previous, _)| *previous >= key) {
            return Err(DecodeError::new(
                WHAT,
                format!("pair {i}: keys out of order"),
            ));
        }
        pairs.push((key, value));
        rest = after;
    }
    if !rest.is_empty() {
        return Err(DecodeError::new(
            WHAT,
            format!("{} bytes after the last pair", rest.len()),
        ));
    }
    Ok(pairs)
}

/// A sealed segment as sled names it: its range and the file that holds it (decision 0013).
/// Fields are never reordered or changed: format 1 of the description is frozen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SegmentV1 {
    /// The first and last positions the segment seals (an empty range, first = last + 1,
    /// for a restore's segment of idempotency records alone).
    pub(crate) first_position: u64,
    pub(crate) last_position: u64,
    /// The file's length and its index's CRC-32: a file that is not this one is refused.
    pub(crate) file_len: u64,
    pub(crate) index_crc: u32,
}

/// Where one part of a segment file is, and its CRC-32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartV1 {
    pub(crate) offset: u64,
    pub(crate) len: u32,
    pub(crate) crc: u32,
}

/// The index at the end of a segment file. Frozen like [`SegmentV1`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SegmentIndexV1 {
    pub(crate) first_position: u64,
    pub(crate) last_position: u64,
    /// Each block's first position and place, in position order.
    pub(crate) blocks: Vec<(u64, PartV1)>,
    /// Each piece's first key and place, in key order.
    pub(crate) pieces: Vec<(Vec<u8>, PartV1)>,
    /// The filter (whole 64-byte blocks).
    pub(crate) filter: PartV1,
}

pub(crate) fn encode_segment_index(index: &SegmentIndexV1) -> Vec<u8> {
    encode_framed(index)
}

pub(crate) fn decode_segment_index(bytes: &[u8]) -> Result<SegmentIndexV1, DecodeError> {
    decode_framed("sealed segment index", bytes)
}

pub(crate) fn encode_segment(segment: &SegmentV1) -> Vec<u8> {
    encode_framed(segment)
}

pub(crate) fn decode_segment(bytes: &[u8]) -> Result<SegmentV1, DecodeError> {
    decode_framed("sealed segment", bytes)
}

// ---------------------------------------------------------------------------------------------
// Snapshots of derived state (the engine's deadline index): format byte, bincode, then the
// SHA-256 of both, so that a damaged file is refused rather than misread.

pub(crate) fn encode_snapshot<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    use sha2::{Digest, Sha256};
    let mut bytes = vec![FORMAT_V1];
    bincode_options(0)
        .with_no_limit()
        .serialize_into(&mut bytes, value)
        .map_err(|e| e.to_string())?;
    let digest = Sha256::digest(&bytes);
    bytes.extend_from_slice(&digest);
    Ok(bytes)
}

pub(crate) fn decode_snapshot<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    use sha2::{Digest, Sha256};
    const WHAT: &str = "snapshot";
    let Some(body_len) = bytes.len().checked_sub(32) else {
        return Err(DecodeError::new(WHAT, "shorter than its checksum"));
    };
    let (body, digest) = bytes.split_at(body_len);
    if Sha256::digest(body).as_slice() != digest {
        return Err(DecodeError::new(WHAT, "checksum mismatch"));
    }
    let rest = split_format(WHAT, body)?;
    bincode_options(rest.len())
        .reject_trailing_bytes()
        .deserialize(rest)
        .map_err(|e| DecodeError::new(WHAT, e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Payloads

pub(crate) fn encode_payload<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    bincode_options(MAX_EVENT_BYTES)
        .serialize(value)
        .map_err(|e| e.to_string())
}

/// Appends the encoding of `value` to `out`, in one pass (no size limit: for values the
/// caller made, not for input).
pub(crate) fn encode_payload_into<T: Serialize>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    bincode_options(0)
        .with_no_limit()
        .serialize_into(out, value)
        .map_err(|e| e.to_string())
}

pub(crate) fn decode_payload<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    bincode_options(bytes.len())
        .reject_trailing_bytes()
        .deserialize(bytes)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn sample_event() -> RecordedEvent {
        RecordedEvent {
            position: Position::new(42).expect("not zero"),
            stream: StreamId::new("case-0192f3a4").expect("valid"),
            version: Version::new(3).expect("not zero"),
            recorded_at: Timestamp::from_unix_micros(1_775_007_000_123_456),
            event_id: EventId::from_uuid(Uuid::from_u128(
                0x0192_f3a4_0000_7000_8000_0000_0000_0001,
            )),
            event_type: EventType::new("CaseOpened").expect("valid"),
            schema_version: 2,
            actor: Actor::parse("worker-7", "grid_worker", "通惠社区/grid-1").expect("valid"),
            correlation_id: CorrelationId::from_uuid(Uuid::from_u128(7)),
            causation_id: Some(CausationId::from_uuid(Uuid::from_u128(8))),
            payload: b"\x05hello".to_vec(),
            hash: ChainHash::from_bytes([9; 32]),
        }
    }

    #[test]
    fn record_round_trips() {
        let event = sample_event();
        let bytes = encode_record(&event);
        assert_eq!(bytes[0], FORMAT_V1);
        assert_eq!(decode_record(&bytes, event.hash), Ok(event));
    }

    #[test]
    fn an_unknown_format_byte_is_named() {
        let mut bytes = encode_record(&sample_event());
        bytes[0] = 7;
        let err = decode_record(&bytes, ChainHash::GENESIS).expect_err("format 7 is unknown");
        assert!(err.reason.contains("unknown format byte 7"), "{err}");
    }

    #[test]
    fn chunks_round_trip_and_refuse_truncation() {
        let mut builder = ChunkBuilder::new();
        builder.push(&ChainHash::from_bytes([1; 32]), b"one");
        builder.push(&ChainHash::from_bytes([2; 32]), b"three");
        let bytes = builder.finish();
        let entries = decode_chunk(&bytes).expect("decodes");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].record, b"three");
        assert_eq!(entries[1].hash, ChainHash::from_bytes([2; 32]));
        for cut in 0..bytes.len() {
            assert!(decode_chunk(&bytes[..cut]).is_err(), "cut at {cut} decoded");
        }
    }

    #[test]
    fn index_entries_round_trip() {
        let positions: Vec<Position> = [1u64, 2, 300, 301, 1 << 40]
            .iter()
            .map(|&p| Position::new(p).expect("nz"))
            .collect();
        assert_eq!(
            decode_index_entry(&encode_index_entry(&positions)),
            Ok(positions)
        );
        assert!(
            decode_index_entry(&[FORMAT_V1, 2, 5, 0]).is_err(),
            "a zero delta repeats a position"
        );
        assert!(decode_index_entry(&[
            FORMAT_V1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f
        ])
        .is_err());
    }

    /// Golden fixtures: bytes written by format 1 must decode to the same values and encode
    /// back to the same bytes forever. `CIVICFLOW_BLESS_FIXTURES=1` writes a missing fixture
    /// (never an existing one); commit it.
    fn golden(name: &str, fresh: &[u8]) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures")
            .join(name);
        match std::fs::read(&path) {
            Ok(stored) => stored,
            Err(_) if std::env::var_os("CIVICFLOW_BLESS_FIXTURES").is_some() => {
                std::fs::write(&path, fresh).expect("write the new fixture");
                fresh.to_vec()
            }
            Err(e) => panic!(
                "missing golden fixture {} ({e}); if this is a new format, run with CIVICFLOW_BLESS_FIXTURES=1 and commit it",
                path.display()
            ),
        }
    }

    fn sample_without_causation() -> RecordedEvent {
        let mut event = sample_event();
        event.causation_id = None;
        event.payload = Vec::new();
        event.position = Position::new(1 << 40).expect("nz");
        event.version = Version::FIRST;
        event.recorded_at = Timestamp::from_unix_micros(-5);
        event
    }

    #[test]
    fn golden_records_decode_forever() {
        for (name, event) in [
            ("record-v1.bin", sample_event()),
            ("record-v1-minimal.bin", sample_without_causation()),
        ] {
            let fresh = encode_record(&event);
            let stored = golden(name, &fresh);
            assert_eq!(
                decode_record(&stored, event.hash).as_ref(),
                Ok(&event),
                "{name} decodes to its value"
            );
            assert_eq!(
                fresh, stored,
                "{name}: encoding the value gives the stored bytes"
            );
            let fields = decode_record_key_fields(&stored).expect("key fields decode");
            assert_eq!(
                (fields.position, fields.version, fields.stream.as_str()),
                (
                    event.position.get(),
                    event.version.get(),
                    event.stream.as_str()
                )
            );
        }
    }

    #[test]
    fn golden_chunk_decodes_forever() {
        let records = [
            encode_record(&sample_event()),
            encode_record(&sample_without_causation()),
        ];
        let hashes = [
            ChainHash::from_bytes([0xab; 32]),
            ChainHash::from_bytes([0xcd; 32]),
        ];
        let mut builder = ChunkBuilder::new();
        for (hash, record) in hashes.iter().zip(&records) {
            builder.push(hash, record);
        }
        let fresh = builder.finish();
        let stored = golden("chunk-v1.bin", &fresh);
        assert_eq!(fresh, stored);
        let entries = decode_chunk(&stored).expect("decodes");
        assert_eq!(entries.len(), 2);
        for (entry, (hash, record)) in entries.iter().zip(hashes.iter().zip(&records)) {
            assert_eq!(&entry.hash, hash);
            assert_eq!(entry.record, record.as_slice());
        }
    }

    #[test]
    fn golden_index_entry_and_idempotency_record_decode_forever() {
        let positions: Vec<Position> = [1u64, 2, 300, 301, 1 << 40]
            .iter()
            .map(|&p| Position::new(p).expect("nz"))
            .collect();
        let fresh = encode_index_entry(&positions);
        let stored = golden("index-entry-v1.bin", &fresh);
        assert_eq!(fresh, stored);
        assert_eq!(decode_index_entry(&stored), Ok(positions));

        let record = IdempotencyRecordV1 {
            fingerprint: [7; 32],
            first_position: 10,
            last_position: 12,
            streams: vec![("case-1".into(), 1, 2), ("unit-通惠".into(), 5, 5)],
        };
        let fresh = encode_idempotency(&record);
        let stored = golden("idempotency-v1.bin", &fresh);
        assert_eq!(fresh, stored);
        assert_eq!(decode_idempotency(&stored), Ok(record));
    }

    /// The payload codec is frozen too: every typed event in the log is encoded with it.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Outcome {
        Resolved { note: String },
        Escalated(u8),
        Withdrawn,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct PayloadSample {
        title: String,
        count: u64,
        signed: i32,
        ratio: f64,
        tags: Vec<String>,
        deadline: Option<i64>,
        outcome: Outcome,
        outcomes: Vec<Outcome>,
        flag: bool,
    }

    #[test]
    fn golden_payload_decodes_forever() {
        let value = PayloadSample {
            title: "路灯不亮 street light out".into(),
            count: 300,
            signed: -2,
            ratio: 0.75,
            tags: vec!["grid-3".into(), "urgent".into()],
            deadline: Some(1_775_007_000_000_000),
            outcome: Outcome::Resolved {
                note: "fixed".into(),
            },
            outcomes: vec![Outcome::Escalated(2), Outcome::Withdrawn],
            flag: true,
        };
        let fresh = encode_payload(&value).expect("encodes");
        let stored = golden("payload-v1.bin", &fresh);
        assert_eq!(fresh, stored);
        // Appending writes the same bytes.
        let mut appended = vec![0xaa];
        encode_payload_into(&value, &mut appended).expect("encodes");
        assert_eq!(appended[1..], stored[..]);
        assert_eq!(decode_payload::<PayloadSample>(&stored), Ok(value));
        assert!(decode_payload::<PayloadSample>(&stored[..stored.len() - 1]).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_a_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_record(&bytes, ChainHash::GENESIS);
            let _ = decode_chunk(&bytes);
            let _ = decode_index_entry(&bytes);
            let _ = decode_idempotency(&bytes);
            let _ = decode_record_key_fields(&bytes);
        }

        #[test]
        fn flipping_any_byte_of_a_record_never_panics(index in 0usize..200, bit in 0u8..8) {
            let mut bytes = encode_record(&sample_event());
            let index = index % bytes.len();
            bytes[index] ^= 1 << bit;
            let _ = decode_record(&bytes, ChainHash::GENESIS);
        }
    }
}
