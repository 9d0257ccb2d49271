//! Recomputing the hash chain from the stored bytes.
//!
//! `verify` walks the whole log in position order. For each event it recomputes the hash from
//! the previous event's hash, the previous hash of the same stream and the exact stored record
//! bytes, and checks positions and versions on the way. The previous hash of each stream is
//! kept in a map that is bounded: when it is full it is emptied, and a stream missing from it
//! is looked up in the index, so memory stays flat on any log size.

use super::read::{for_each_record, ChunkCursor};
use super::Shared;
use crate::chain::{ChainBreak, ChainBreakReason, ChainHash, ChainHead, VerifyReport};
use crate::error::ReadError;
use crate::ids::{Position, StreamId, Version};
use crate::store::backend::{check_stream_record, ChainWalk};

/// Ends a walk: the first break found.
struct Broken(ChainBreak);

impl Shared {
    pub(super) fn verify(&self) -> Result<VerifyReport, ReadError> {
        self.ensure_open()?;
        let mut walk = ChainWalk::new();
        let Some(head) = Position::new(self.signal.head()) else {
            return Ok(walk.finish(None));
        };
        // A stream evicted from the walk's memory: its previous event through the index.
        let mut previous_in_stream = |stream: &StreamId, previous: Version, before: Position| {
            let found =
                self.stream_positions(stream, previous, 1, before.get().saturating_sub(1))?;
            match found.first() {
                Some((v, p)) if *v == previous => {
                    Ok(Some(ChunkCursor::default().entry(self.stored(), *p)?.0))
                }
                _ => Ok(None),
            }
        };
        let walked = for_each_record(self.stored(), Position::FIRST, head, |position, entry| {
            walk.step(position, entry.hash, entry.record, &mut previous_in_stream)
        });
        match walked {
            Ok(()) => {}
            // A chunk that does not decode is a break at its position, not a failure of verify.
            Err(ReadError::Corrupted { position, reason }) => {
                walk.broken(position, ChainBreakReason::Undecodable { reason });
            }
            Err(other) => return Err(other),
        }
        Ok(walk.finish(Some(head)))
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
        let (stored, record) = match cursor.entry(self.stored(), position) {
            Ok(found) => found,
            Err(ReadError::Corrupted { reason, .. }) => {
                return broken(ChainBreakReason::Undecodable { reason })
            }
            Err(other) => return Err(other),
        };
        let prev_log = match position.prev() {
            None => ChainHash::GENESIS,
            Some(before) => match prev_cursor.entry(self.stored(), before) {
                Ok((hash, _)) => hash,
                Err(ReadError::Corrupted { reason, .. }) => {
                    return broken(ChainBreakReason::Undecodable { reason })
                }
                Err(other) => return Err(other),
            },
        };
        match check_stream_record(
            stream,
            version,
            position,
            prev_log,
            prev_stream,
            stored,
            &record,
        ) {
            Ok(hash) => Ok(Ok(hash)),
            Err(reason) => broken(reason),
        }
    }
}
