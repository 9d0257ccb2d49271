//! Recomputing the hash chain from the stored bytes.
//!
//! `verify` walks the whole log in position order. For each event it recomputes the hash from
//! the previous event's hash, the previous hash of the same stream and the exact stored record
//! bytes, and checks positions and versions on the way. The previous hash of each stream is
//! kept in a map that is bounded: when it is full it is emptied, and a stream missing from it
//! is looked up in the index, so memory stays flat on any log size.

use std::collections::HashMap;

use super::read::{for_each_record, ChunkCursor};
use super::Shared;
use crate::chain::{ChainBreak, ChainBreakReason, ChainHash, ChainHead, VerifyReport};
use crate::codec;
use crate::error::ReadError;
use crate::ids::{Position, StreamId, Version};

/// How many streams' last hashes `verify` keeps in memory at once.
const STREAM_HASHES_MAX: usize = 1_000_000;

/// Ends a walk: the first break found.
struct Broken(ChainBreak);

impl Shared {
    pub(super) fn verify(&self) -> Result<VerifyReport, ReadError> {
        self.ensure_open()?;
        let mut report = VerifyReport {
            events_checked: 0,
            last_good: None,
            first_break: None,
        };
        let Some(head) = Position::new(self.signal.head()) else {
            return Ok(report);
        };
        let mut expected = Position::FIRST;
        let mut prev_log = ChainHash::GENESIS;
        let mut streams: HashMap<String, (Version, ChainHash)> = HashMap::new();
        let mut broken = None;
        let walked = for_each_record(&self.tree, Position::FIRST, head, |position, entry| {
            let check = || -> Result<Result<(String, Version), ChainBreakReason>, ReadError> {
                if position != expected {
                    return Ok(Err(ChainBreakReason::PositionGap { expected }));
                }
                let fields = match codec::decode_record_key_fields(entry.record) {
                    Ok(fields) => fields,
                    Err(e) => {
                        return Ok(Err(ChainBreakReason::Undecodable {
                            reason: e.to_string(),
                        }))
                    }
                };
                if fields.position != position.get() {
                    return Ok(Err(ChainBreakReason::PositionMismatch {
                        recorded: fields.position,
                    }));
                }
                let Some(version) = Version::new(fields.version) else {
                    return Ok(Err(ChainBreakReason::Undecodable {
                        reason: "version 0".into(),
                    }));
                };
                let prev_stream =
                    match self.previous_in_stream(&streams, &fields.stream, version, position)? {
                        Ok(hash) => hash,
                        Err(reason) => return Ok(Err(reason)),
                    };
                let computed = ChainHash::link(&prev_log, &prev_stream, entry.record);
                if computed != entry.hash {
                    return Ok(Err(ChainBreakReason::HashMismatch {
                        stored: entry.hash,
                        computed,
                    }));
                }
                Ok(Ok((fields.stream, version)))
            };
            match check()? {
                Ok((stream, version)) => {
                    if streams.len() >= STREAM_HASHES_MAX {
                        streams.clear();
                    }
                    streams.insert(stream, (version, entry.hash));
                    prev_log = entry.hash;
                    expected = position.next();
                    report.events_checked += 1;
                    report.last_good = Some(ChainHead {
                        position,
                        hash: entry.hash,
                    });
                    Ok(true)
                }
                Err(reason) => {
                    broken = Some(ChainBreak { position, reason });
                    Ok(false)
                }
            }
        });
        match walked {
            Ok(()) => {}
            // A chunk that does not decode is a break at its position, not a failure of verify.
            Err(ReadError::Corrupted { position, reason }) => {
                broken = Some(ChainBreak {
                    position,
                    reason: ChainBreakReason::Undecodable { reason },
                });
            }
            Err(other) => return Err(other),
        }
        if broken.is_none() && expected <= head {
            broken = Some(ChainBreak {
                position: expected,
                reason: ChainBreakReason::PositionGap { expected },
            });
        }
        report.first_break = broken;
        Ok(report)
    }

    /// The hash of the event before `version` in `stream`, or why the chain is broken there.
    fn previous_in_stream(
        &self,
        streams: &HashMap<String, (Version, ChainHash)>,
        stream: &str,
        version: Version,
        position: Position,
    ) -> Result<Result<ChainHash, ChainBreakReason>, ReadError> {
        let stream_id = match StreamId::new(stream) {
            Ok(id) => id,
            Err(e) => {
                return Ok(Err(ChainBreakReason::Undecodable {
                    reason: e.to_string(),
                }))
            }
        };
        let Some(previous) = version.prev() else {
            return Ok(match streams.get(stream) {
                None => Ok(ChainHash::GENESIS),
                Some((last, _)) => Err(ChainBreakReason::VersionGap {
                    stream: stream_id,
                    expected: last.next(),
                    found: version,
                }),
            });
        };
        if let Some((last, hash)) = streams.get(stream) {
            return Ok(if *last == previous {
                Ok(*hash)
            } else {
                Err(ChainBreakReason::VersionGap {
                    stream: stream_id,
                    expected: last.next(),
                    found: version,
                })
            });
        }
        // Not in memory (evicted): find the previous version through the index.
        let before = position.get().saturating_sub(1);
        let found = self.stream_positions(&stream_id, previous, 1, before)?;
        match found.first() {
            Some((v, p)) if *v == previous => {
                Ok(Ok(ChunkCursor::default().entry(&self.tree, *p)?.0))
            }
            _ => Ok(Err(ChainBreakReason::VersionGap {
                stream: stream_id,
                expected: Version::FIRST,
                found: version,
            })),
        }
    }

    pub(super) fn verify_stream(&self, stream: &StreamId) -> Result<VerifyReport, ReadError> {
        self.ensure_open()?;
        let head = self.signal.head();
        let mut report = VerifyReport {
            events_checked: 0,
            last_good: None,
            first_break: None,
        };
        let mut cursor = ChunkCursor::default();
        let mut prev_cursor = ChunkCursor::default();
        let mut prev_stream = ChainHash::GENESIS;
        let mut next_version = Version::FIRST;
        loop {
            let page = self.stream_positions(stream, next_version, 1024, head)?;
            if page.is_empty() {
                return Ok(report);
            }
            for (version, position) in page {
                match self.check_stream_event(
                    stream,
                    version,
                    position,
                    prev_stream,
                    &mut cursor,
                    &mut prev_cursor,
                )? {
                    Ok(hash) => {
                        prev_stream = hash;
                        next_version = version.next();
                        report.events_checked += 1;
                        report.last_good = Some(ChainHead { position, hash });
                    }
                    Err(Broken(chain_break)) => {
                        report.first_break = Some(chain_break);
                        return Ok(report);
                    }
                }
            }
        }
    }

    fn check_stream_event(
        &self,
        stream: &StreamId,
        version: Version,
        position: Position,
        prev_stream: ChainHash,
        cursor: &mut ChunkCursor,
        prev_cursor: &mut ChunkCursor,
    ) -> Result<Result<ChainHash, Broken>, ReadError> {
        let broken = |reason| Ok(Err(Broken(ChainBreak { position, reason })));
        let (stored, record) = match cursor.entry(&self.tree, position) {
            Ok(found) => found,
            Err(ReadError::Corrupted { reason, .. }) => {
                return broken(ChainBreakReason::Undecodable { reason })
            }
            Err(other) => return Err(other),
        };
        let fields = match codec::decode_record_key_fields(&record) {
            Ok(fields) => fields,
            Err(e) => {
                return broken(ChainBreakReason::Undecodable {
                    reason: e.to_string(),
                })
            }
        };
        if fields.stream != stream.as_str() || fields.version != version.get() {
            return broken(ChainBreakReason::IndexMismatch {
                detail: format!(
                    "the index has {stream} version {version} here, the record is {} version {}",
                    fields.stream, fields.version
                ),
            });
        }
        if fields.position != position.get() {
            return broken(ChainBreakReason::PositionMismatch {
                recorded: fields.position,
            });
        }
        let prev_log = match position.prev() {
            None => ChainHash::GENESIS,
            Some(before) => match prev_cursor.entry(&self.tree, before) {
                Ok((hash, _)) => hash,
                Err(ReadError::Corrupted { reason, .. }) => {
                    return broken(ChainBreakReason::Undecodable { reason })
                }
                Err(other) => return Err(other),
            },
        };
        let computed = ChainHash::link(&prev_log, &prev_stream, &record);
        if computed != stored {
            return broken(ChainBreakReason::HashMismatch { stored, computed });
        }
        Ok(Ok(stored))
    }
}
