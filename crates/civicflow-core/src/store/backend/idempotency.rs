//! Idempotency records as every backend stores them: the same bytes on sled and PostgreSQL,
//! so an export from one restores into the other.

use crate::codec::{self, IdempotencyRecordV1};
use crate::error::ReadError;
use crate::event::{Appended, StreamAppended};
use crate::ids::{IdempotencyKey, Position, StreamId, Version};

/// The stored bytes of a keyed append's record: what made it that request (`fingerprint`)
/// and what it got.
pub fn encode_idempotency(fingerprint: [u8; 32], appended: &Appended) -> Vec<u8> {
    codec::encode_idempotency(&IdempotencyRecordV1 {
        fingerprint,
        first_position: appended.first_position.get(),
        last_position: appended.last_position.get(),
        streams: appended
            .streams
            .iter()
            .map(|s| {
                (
                    s.stream.as_str().to_owned(),
                    s.first_version.get(),
                    s.last_version.get(),
                )
            })
            .collect(),
    })
}

/// Decodes the stored record of `key`: its fingerprint and what the append got, marked
/// `deduplicated` (it is always read to answer a retry).
///
/// # Errors
/// [`ReadError::CorruptedIndex`] naming the key when the bytes do not decode.
pub fn decode_idempotency(
    key: &IdempotencyKey,
    bytes: &[u8],
) -> Result<([u8; 32], Appended), ReadError> {
    let corrupted = |reason: String| ReadError::CorruptedIndex {
        what: format!("idempotency record {key}"),
        reason,
    };
    let record = codec::decode_idempotency(bytes).map_err(|e| corrupted(e.to_string()))?;
    let position = |p: u64| Position::new(p).ok_or_else(|| corrupted("position 0".into()));
    let mut streams = Vec::with_capacity(record.streams.len());
    for (stream, first, last) in record.streams {
        streams.push(StreamAppended {
            stream: StreamId::new(stream).map_err(|e| corrupted(e.to_string()))?,
            first_version: Version::new(first).ok_or_else(|| corrupted("version 0".into()))?,
            last_version: Version::new(last).ok_or_else(|| corrupted("version 0".into()))?,
        });
    }
    let appended = Appended {
        streams,
        first_position: position(record.first_position)?,
        last_position: position(record.last_position)?,
        deduplicated: true,
    };
    Ok((record.fingerprint, appended))
}
