//! `verify` over any backend: the whole log walked in position order, each event's hash
//! recomputed from the previous event's hash, the previous hash of the same stream and the
//! exact stored record bytes, with positions and versions checked on the way.
//!
//! The previous hash of each stream is kept in a bounded map: when it is full it is emptied,
//! and a stream missing from it is looked up in the backend's stream index, so memory stays
//! flat on any log size.

use std::collections::HashMap;

use crate::chain::{ChainBreak, ChainBreakReason, ChainHash, ChainHead, VerifyReport};
use crate::codec;
use crate::error::ReadError;
use crate::ids::{Position, StreamId, Version};

/// How many streams' last hashes a walk keeps in memory at once. A million took about 190 MB
/// on a ten-million-event store (`civicflow verify` at 671 MB resident); a hundred thousand
/// keeps it under 20 MB and the walk was no slower (478 MB, 14.1 s instead of 17.7 s; on a
/// million events 141 MB and 1.6 s instead of 189 MB and 2.2 s): a stream missing from the
/// map is one read of the stream index (issue 17, docs/benchmarks.md).
const STREAM_HASHES_MAX: usize = 100_000;

/// How a walk finds the stored hash of a stream's event at a version, stored before a
/// position, when it no longer holds it in memory: the backend's stream index.
pub type PreviousInStream<'a> =
    &'a mut dyn FnMut(&StreamId, Version, Position) -> Result<Option<ChainHash>, ReadError>;

/// A walk of the whole log, one stored record at a time.
#[derive(Debug)]
pub struct ChainWalk {
    expected: Position,
    prev_log: ChainHash,
    streams: HashMap<String, (Version, ChainHash)>,
    report: VerifyReport,
}

impl Default for ChainWalk {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainWalk {
    /// A walk from the first position.
    pub fn new() -> Self {
        Self {
            expected: Position::FIRST,
            prev_log: ChainHash::GENESIS,
            streams: HashMap::new(),
            report: VerifyReport {
                events_checked: 0,
                last_good: None,
                first_break: None,
            },
        }
    }

    /// Checks the stored record at `position`. `previous_in_stream(stream, version, before)`
    /// finds the stored hash of `stream`'s event at `version` (at a position before `before`)
    /// when the walk no longer holds it in memory. Returns whether to go on: `false` once the
    /// chain is broken (the break is in the report).
    ///
    /// # Errors
    /// What `previous_in_stream` returns.
    pub fn step(
        &mut self,
        position: Position,
        hash: ChainHash,
        record: &[u8],
        previous_in_stream: PreviousInStream<'_>,
    ) -> Result<bool, ReadError> {
        match self.check(position, hash, record, previous_in_stream)? {
            Ok((stream, version)) => {
                if self.streams.len() >= STREAM_HASHES_MAX {
                    self.streams.clear();
                }
                self.streams.insert(stream, (version, hash));
                self.prev_log = hash;
                self.expected = position.next();
                self.report.events_checked += 1;
                self.report.last_good = Some(ChainHead { position, hash });
                Ok(true)
            }
            Err(reason) => {
                self.report.first_break = Some(ChainBreak { position, reason });
                Ok(false)
            }
        }
    }

    /// Records a break found by the backend itself (a record that does not decode where it is
    /// stored, say).
    pub fn broken(&mut self, position: Position, reason: ChainBreakReason) {
        if self.report.first_break.is_none() {
            self.report.first_break = Some(ChainBreak { position, reason });
        }
    }

    /// The report, once the walk reached `head` (the durable head when it started) or broke:
    /// a walk that stopped short of `head` without a break is a gap at the next position.
    pub fn finish(mut self, head: Option<Position>) -> VerifyReport {
        if self.report.first_break.is_none() && head.is_some_and(|head| self.expected <= head) {
            self.report.first_break = Some(ChainBreak {
                position: self.expected,
                reason: ChainBreakReason::PositionGap {
                    expected: self.expected,
                },
            });
        }
        self.report
    }

    fn check(
        &self,
        position: Position,
        hash: ChainHash,
        record: &[u8],
        previous_in_stream: PreviousInStream<'_>,
    ) -> Result<Result<(String, Version), ChainBreakReason>, ReadError> {
        if position != self.expected {
            return Ok(Err(ChainBreakReason::PositionGap {
                expected: self.expected,
            }));
        }
        let fields = match codec::decode_record_key_fields(record) {
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
            match self.previous(&fields.stream, version, position, previous_in_stream)? {
                Ok(hash) => hash,
                Err(reason) => return Ok(Err(reason)),
            };
        let computed = ChainHash::link(&self.prev_log, &prev_stream, record);
        if computed != hash {
            return Ok(Err(ChainBreakReason::HashMismatch {
                stored: hash,
                computed,
            }));
        }
        Ok(Ok((fields.stream, version)))
    }

    /// The hash of the event before `version` in `stream`, or why the chain is broken there.
    fn previous(
        &self,
        stream: &str,
        version: Version,
        position: Position,
        previous_in_stream: PreviousInStream<'_>,
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
            return Ok(match self.streams.get(stream) {
                None => Ok(ChainHash::GENESIS),
                Some((last, _)) => Err(ChainBreakReason::VersionGap {
                    stream: stream_id,
                    expected: last.next(),
                    found: version,
                }),
            });
        };
        if let Some((last, hash)) = self.streams.get(stream) {
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
        // Not in memory (evicted): the backend's stream index.
        Ok(match previous_in_stream(&stream_id, previous, position)? {
            Some(hash) => Ok(hash),
            None => Err(ChainBreakReason::VersionGap {
                stream: stream_id,
                expected: Version::FIRST,
                found: version,
            }),
        })
    }
}

/// Checks one stored event of a stream's walk (`verify_stream`): the record is the stream's
/// event at `version`, stored at `position`, and its hash links from the log's previous hash
/// (`prev_log`, the hash at the position before) and the stream's (`prev_stream`). Returns
/// its hash, or why the chain is broken there.
pub fn check_stream_record(
    stream: &StreamId,
    version: Version,
    position: Position,
    prev_log: ChainHash,
    prev_stream: ChainHash,
    stored: ChainHash,
    record: &[u8],
) -> Result<ChainHash, ChainBreakReason> {
    let fields =
        codec::decode_record_key_fields(record).map_err(|e| ChainBreakReason::Undecodable {
            reason: e.to_string(),
        })?;
    if fields.stream != stream.as_str() || fields.version != version.get() {
        return Err(ChainBreakReason::IndexMismatch {
            detail: format!(
                "the index has {stream} version {version} here, the record is {} version {}",
                fields.stream, fields.version
            ),
        });
    }
    if fields.position != position.get() {
        return Err(ChainBreakReason::PositionMismatch {
            recorded: fields.position,
        });
    }
    let computed = ChainHash::link(&prev_log, &prev_stream, record);
    if computed != stored {
        return Err(ChainBreakReason::HashMismatch { stored, computed });
    }
    Ok(stored)
}
