//! Backup and restore: the exact stored records out of a log, and back into an empty one.
//!
//! An export reads each record's stored bytes and stored hash as they are ([`StoredRecord`]),
//! and the idempotency records as their stored bytes ([`StoredIdempotency`]). A restore
//! writes them back without encoding anything again, so every position, stream version,
//! record byte and chain hash is the one exported. On the way it checks each record as
//! `verify` does (position, the record's own position field, the stream's next version, the
//! hash recomputed from the bytes and both links), and at the end that the head is the one
//! exported. Only then does the restored log become visible to readers, in one step.
//!
//! How records are grouped into chunks and how the stream index is split into keys are
//! storage details and may differ from the original store; nothing that a reader or the
//! chain sees does.
//!
//! Into a log that seals (decision 0013) a restore writes no record into sled: the records go
//! straight into segment files, as a seal would write them (blocks as the records come; the
//! stream index entries, gathered in a memtable, when the segment closes at `seal_events`
//! records or at the end), and the idempotency records into segments of their own. sled only
//! names the segments. Passing through sled cost the import of a million events 389 MB and
//! 7 s, and the removal after each seal held most of it (docs/benchmarks.md). Into a log that
//! never seals (format 1), records go to sled in batches.

use std::sync::MutexGuard;

use super::seal::SEALED_VALUE_BYTES;
use super::segments::SegmentWriter;
use super::writer::Writer;
use super::{keys, lock, read, storage, Shared, WriteSet};
use crate::chain::{ChainHash, ChainHead};
use crate::codec::{self, ChunkBuilder};
use crate::error::{ReadError, RestoreError};
use crate::ids::{IdempotencyKey, Position, StreamId, Version};
use crate::store::backend::RestoreCheck;
use crate::store::{RestoreSink, StoredIdempotency, StoredRecord};

use super::index::Memtable;

/// A restore writes its batch to sled after this many records (or bytes), so that memory
/// stays flat on any log size.
const BATCH_RECORDS: usize = 4096;
const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// A restore into a log that never seals flushes sled after this many record bytes (nothing
/// is promised durable before the end).
const FLUSH_BYTES: usize = 16 * 1024 * 1024;
/// A log that seals gets a restore's idempotency records in segments of their own of at most
/// `seal_events` records or this many bytes (see `Restore::push_idempotency`).
const IDEMPOTENCY_SEGMENT_BYTES: usize = 16 * 1024 * 1024;

/// See [`crate::EventStore::stored_records`].
pub(super) fn stored_records(
    shared: &Shared,
    from: Position,
    max: usize,
) -> Result<Vec<StoredRecord>, ReadError> {
    shared.ensure_open()?;
    let mut out = Vec::with_capacity(max.min(4096));
    let Some(head) = Position::new(shared.signal.head()) else {
        return Ok(out);
    };
    if max == 0 {
        return Ok(out);
    }
    read::for_each_record(shared.stored(), from, head, |position, entry| {
        out.push(StoredRecord {
            position,
            hash: entry.hash,
            bytes: entry.record.to_vec(),
        });
        Ok(out.len() < max)
    })?;
    Ok(out)
}

/// See [`crate::EventStore::stored_idempotency_records`].
pub(super) fn stored_idempotency_records(
    shared: &Shared,
    after: Option<&IdempotencyKey>,
    max: usize,
) -> Result<Vec<StoredIdempotency>, ReadError> {
    shared.ensure_open()?;
    let head = shared.signal.head();
    let start = match after {
        Some(key) => {
            let mut start = keys::idempotency(key);
            start.push(0);
            start
        }
        None => vec![keys::IDEMPOTENCY],
    };
    // Up to `max` durable records from the tail and from each sealed segment (the table
    // taken after the tail's read), merged in key order; a key found twice (a seal running
    // meanwhile, or an import given it twice) is taken once, where a lookup finds it: the
    // tail's, else the newest segment's.
    let mut found: Vec<StoredIdempotency> = Vec::new();
    let take = |found: &mut Vec<StoredIdempotency>, key: &[u8], value: &[u8]| {
        let Some(record) = durable_idempotency(key, value, head)? else {
            return Ok(true);
        };
        found.push(record);
        Ok(found.len() < max)
    };
    let mut from_tail = Vec::new();
    if max > 0 {
        for item in shared.tree.range(start.clone()..) {
            let (key, value) = item.map_err(storage)?;
            if !key.starts_with(&[keys::IDEMPOTENCY]) || !take(&mut from_tail, &key, &value)? {
                break;
            }
        }
    }
    found.extend(from_tail);
    for segment in shared.sealed().iter().rev() {
        let mut from_segment = Vec::new();
        if max > 0 {
            segment.pairs_with_prefix(&[keys::IDEMPOTENCY], &start, |key, value| {
                take(&mut from_segment, key, value)
            })?;
        }
        found.extend(from_segment);
    }
    found.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
    found.dedup_by(|a, b| a.key == b.key);
    found.truncate(max);
    Ok(found)
}

/// The stored idempotency record under `key`, if its events are durable.
fn durable_idempotency(
    key: &[u8],
    value: &[u8],
    head: u64,
) -> Result<Option<StoredIdempotency>, ReadError> {
    let rest = key.strip_prefix(&[keys::IDEMPOTENCY]).unwrap_or(key);
    let corrupted = |reason: String| ReadError::CorruptedIndex {
        what: format!("idempotency record {}", String::from_utf8_lossy(rest)),
        reason,
    };
    let text = std::str::from_utf8(rest).map_err(|e| corrupted(e.to_string()))?;
    let key = IdempotencyKey::new(text).map_err(|e| corrupted(e.to_string()))?;
    let record = codec::decode_idempotency(value).map_err(|e| corrupted(e.to_string()))?;
    Ok((record.last_position <= head).then(|| StoredIdempotency {
        key,
        bytes: value.to_vec(),
    }))
}

/// A segment a restore writes its records into (see `Restore::push_to_segment`).
struct OpenSegment {
    number: u32,
    file: SegmentWriter,
    first: Position,
    records: u64,
}

fn segment_error(number: u32, error: &std::io::Error) -> RestoreError {
    RestoreError::Storage(format!("writing sealed segment {number}: {error}"))
}

/// The last version and stored hash of `stream` among the records a restore has written (its
/// stream index entries and chunks are in the tree or in segments, as for any reader).
fn last_restored(
    shared: &Shared,
    stream: &StreamId,
) -> Result<Option<(Version, ChainHash)>, RestoreError> {
    let Some((version, position)) = shared
        .stream_last(stream, u64::MAX)
        .map_err(RestoreError::Read)?
    else {
        return Ok(None);
    };
    let (hash, _) = read::ChunkCursor::default()
        .entry(shared.stored(), position)
        .map_err(RestoreError::Read)?;
    Ok(Some((version, hash)))
}

/// A restore in progress into an empty sled log ([`crate::RestoreSink`]). An error, or
/// dropping the restore unfinished, removes what was written.
pub(super) struct Restore<'a> {
    shared: &'a Shared,
    /// Held for the whole restore: no append can be planned meanwhile.
    writer: MutexGuard<'a, Writer>,
    batch: WriteSet,
    batch_records: usize,
    batch_bytes: usize,
    chunk: ChunkBuilder,
    chunk_first: Position,
    memtable: Memtable,
    /// The checks every backend's restore makes, and where the next record must be.
    check: RestoreCheck,
    /// Whether anything reached sled or a segment file (to be removed if the restore fails).
    written: bool,
    /// On a log that seals, the segment the records go into, straight (no sled in between).
    segment: Option<OpenSegment>,
    /// Idempotency records not yet written (tail key and value), on a log that seals.
    idempotency: Vec<(Vec<u8>, Vec<u8>)>,
    idempotency_bytes: usize,
    /// Bytes of records and idempotency records written since sled's last flush.
    unflushed_bytes: usize,
    finished: bool,
}

impl std::fmt::Debug for Restore<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restore")
            .field("next", &self.check.next_position())
            .finish_non_exhaustive()
    }
}

impl<'a> Restore<'a> {
    /// Starts a restore into the log, which must be empty. Appends wait until the restore
    /// is finished or dropped.
    ///
    /// # Errors
    /// [`RestoreError::NotEmpty`] when the log holds anything; [`RestoreError::Refused`] when
    /// it is closed or poisoned.
    pub(super) fn begin(shared: &'a Shared) -> Result<Self, RestoreError> {
        shared.ensure_open().map_err(RestoreError::Read)?;
        let writer = lock(&shared.writer);
        if writer.closed {
            return Err(RestoreError::Refused("the event log is closed".into()));
        }
        if let Some(reason) = lock(&shared.poison).clone() {
            return Err(RestoreError::Refused(format!("poisoned: {reason}")));
        }
        if let Some(head) = writer.head {
            return Err(RestoreError::NotEmpty {
                what: format!("its head is position {} hash {}", head.position, head.hash),
            });
        }
        for (prefix, what) in [
            (keys::LOG, "it holds log records"),
            (keys::STREAM_INDEX, "it holds stream index entries"),
            (keys::IDEMPOTENCY, "it holds idempotency records"),
            (keys::SEGMENT, "it holds sealed segments"),
        ] {
            if shared
                .tree
                .scan_prefix([prefix])
                .next()
                .transpose()
                .map_err(|e| RestoreError::Storage(e.to_string()))?
                .is_some()
            {
                return Err(RestoreError::NotEmpty { what: what.into() });
            }
        }
        Ok(Self {
            shared,
            writer,
            batch: WriteSet::default(),
            batch_records: 0,
            batch_bytes: 0,
            chunk: ChunkBuilder::new(),
            chunk_first: Position::FIRST,
            memtable: Memtable::default(),
            check: RestoreCheck::with_stream_limit(shared.restore_streams_in_memory),
            written: false,
            segment: None,
            idempotency: Vec::new(),
            idempotency_bytes: 0,
            unflushed_bytes: 0,
            finished: false,
        })
    }

    fn finish_chunk(&mut self) {
        if !self.chunk.is_empty() {
            let full = std::mem::replace(&mut self.chunk, ChunkBuilder::new());
            self.batch
                .insert(keys::chunk(self.chunk_first), full.finish());
        }
    }

    /// A record into the open segment (opened at its position if there is none): its block,
    /// and its stream's entry in the memtable; the segment closes once it holds `seal_events`.
    fn push_to_segment(
        &mut self,
        record: &StoredRecord,
        stream: &StreamId,
        version: Version,
    ) -> Result<(), RestoreError> {
        let position = record.position;
        if self.segment.is_none() {
            let (number, file) = self
                .shared
                .next_segment_file()
                .map_err(RestoreError::Read)?;
            self.written = true;
            self.chunk = ChunkBuilder::with_target(SEALED_VALUE_BYTES);
            self.segment = Some(OpenSegment {
                number,
                file,
                first: position,
                records: 0,
            });
        }
        if self.chunk.is_full_for(record.bytes.len()) {
            self.write_block()?;
        }
        if self.chunk.is_empty() {
            self.chunk_first = position;
        }
        self.chunk.push(&record.hash, &record.bytes);
        self.memtable.add(stream, version, position);
        let segment = self.segment.as_mut().expect("opened above");
        segment.records += 1;
        if segment.records >= self.shared.seal_events {
            self.close_segment()?;
        }
        Ok(())
    }

    /// The records gathered so far as the open segment's next block.
    fn write_block(&mut self) -> Result<(), RestoreError> {
        let Some(segment) = self.segment.as_mut() else {
            return Ok(());
        };
        if self.chunk.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(
            &mut self.chunk,
            ChunkBuilder::with_target(SEALED_VALUE_BYTES),
        );
        segment
            .file
            .block(self.chunk_first, &full.finish())
            .map_err(|e| segment_error(segment.number, &e))
    }

    /// Closes the open segment, if any: its stream index entries (the memtable's, in key
    /// order) follow its blocks, and it is named and published as a seal's would be. The
    /// check may forget its streams then: readers find them in the segment.
    fn close_segment(&mut self) -> Result<(), RestoreError> {
        self.write_block()?;
        let Some(segment) = self.segment.take() else {
            return Ok(());
        };
        let through = self
            .check
            .next_position()
            .prev()
            .ok_or_else(|| RestoreError::Storage("a segment with no record".into()))?;
        let mut entries = WriteSet::default();
        self.memtable.write_to(&mut entries, None);
        self.memtable.clear();
        self.shared
            .publish_restored_segment(
                segment.file,
                segment.number,
                (segment.first, through),
                &entries.into_sorted(),
            )
            .map_err(RestoreError::Read)?;
        self.check.written();
        Ok(())
    }

    /// Writes the records so far (whole chunks) and their stream index entries to sled: the
    /// path of a log that never seals (format 1); a sealing log's restore writes segments.
    fn write_batch(&mut self) -> Result<(), RestoreError> {
        self.finish_chunk();
        if self.memtable.events() > 0 {
            self.memtable.write_to(&mut self.batch, None);
            self.memtable.clear();
        }
        let batch = std::mem::take(&mut self.batch);
        let bytes = self.batch_bytes;
        self.batch_records = 0;
        self.batch_bytes = 0;
        if batch.is_empty() {
            return Ok(());
        }
        self.written = true;
        batch
            .apply(&self.shared.tree)
            .map_err(|e| RestoreError::Storage(e.to_string()))?;
        // Every record so far is in the tree: the check may forget streams.
        self.check.written();
        self.unflushed_bytes += bytes;
        if self.unflushed_bytes >= FLUSH_BYTES {
            // Nothing else flushes a restore before its end.
            self.unflushed_bytes = 0;
            self.shared
                .db
                .flush()
                .map_err(|e| RestoreError::Storage(format!("flush failed: {e}")))?;
        }
        Ok(())
    }

    /// Writes the idempotency records held so far into a segment of their own, once every
    /// record restored so far is written and sealed (the segment's range is empty, just past
    /// the last seal). Sorted by key (an export gives them so); a key given twice keeps its
    /// last record, as the tail would.
    fn seal_idempotency(&mut self) -> Result<(), RestoreError> {
        self.close_segment()?;
        let restored =
            self.check.next_position().prev().ok_or_else(|| {
                RestoreError::Storage("idempotency records before any record".into())
            })?;
        let mut records = std::mem::take(&mut self.idempotency);
        self.idempotency_bytes = 0;
        records.reverse(); // the last of equal keys first: the stable sort keeps it first
        records.sort_by(|a, b| a.0.cmp(&b.0));
        records.dedup_by(|later, kept| later.0 == kept.0);
        let (number, file) = self
            .shared
            .next_segment_file()
            .map_err(RestoreError::Read)?;
        self.written = true;
        // No positions: the range is empty, just past the last seal (every record's).
        self.shared
            .publish_restored_segment(file, number, (restored.next(), restored), &records)
            .map_err(RestoreError::Read)
    }

    /// Removes everything written so far: the log is empty again.
    fn undo(&self) -> sled::Result<()> {
        let tree = &self.shared.tree;
        for prefix in [
            keys::LOG,
            keys::STREAM_INDEX,
            keys::IDEMPOTENCY,
            keys::SEGMENT,
        ] {
            for item in tree.scan_prefix([prefix]).keys() {
                tree.remove(item?)?;
            }
        }
        for meta in [
            keys::META_INDEX_THROUGH,
            keys::META_SEALED_THROUGH,
            keys::META_SEAL_PENDING,
        ] {
            tree.remove(meta)?;
        }
        self.shared.forget_segments();
        super::segments::remove_all(&self.shared.path).map_err(|e| {
            sled::Error::Io(std::io::Error::new(
                e.kind(),
                format!("sealed segments: {e}"),
            ))
        })?;
        self.shared.db.flush()?;
        Ok(())
    }
}

impl RestoreSink for Restore<'_> {
    fn next_position(&self) -> Position {
        self.check.next_position()
    }

    fn push_record(&mut self, record: StoredRecord) -> Result<(), RestoreError> {
        let shared = self.shared;
        let event = self
            .check
            .record(&record, &mut |stream| last_restored(shared, stream))?;
        if shared.seal_events > 0 {
            return self.push_to_segment(&record, &event.stream, event.version);
        }
        let position = record.position;
        if self.chunk.is_full_for(record.bytes.len()) {
            self.finish_chunk();
        }
        if self.chunk.is_empty() {
            self.chunk_first = position;
        }
        self.chunk.push(&record.hash, &record.bytes);
        self.memtable.add(&event.stream, event.version, position);
        self.batch_records += 1;
        self.batch_bytes += record.bytes.len();
        if self.batch_records >= BATCH_RECORDS || self.batch_bytes >= BATCH_BYTES {
            self.write_batch()?;
        }
        Ok(())
    }

    fn push_idempotency(&mut self, record: StoredIdempotency) -> Result<(), RestoreError> {
        self.check.idempotency(&record)?;
        let key = keys::idempotency(&record.key);
        if self.shared.seal_events > 0 {
            // Held, then sealed straight into a segment of their own (the last of them too,
            // at `finish`).
            self.idempotency_bytes += key.len() + record.bytes.len();
            self.idempotency.push((key, record.bytes));
            if self.idempotency.len() as u64 >= self.shared.seal_events
                || self.idempotency_bytes >= IDEMPOTENCY_SEGMENT_BYTES
            {
                self.seal_idempotency()?;
            }
            return Ok(());
        }
        self.batch_bytes += record.bytes.len();
        self.batch.insert(key, record.bytes);
        self.batch_records += 1;
        if self.batch_records >= BATCH_RECORDS {
            self.write_batch()?;
        }
        Ok(())
    }

    fn finish(
        mut self: Box<Self>,
        expected_head: Option<ChainHead>,
    ) -> Result<Option<ChainHead>, RestoreError> {
        let head = self.check.head(expected_head)?;
        self.close_segment()?;
        // The last of them into a segment too: inserting some 42,000 of them into sled's
        // tail (in batches of 4096) held about 180 MB at the end of an import.
        if !self.idempotency.is_empty() {
            self.seal_idempotency()?;
        }
        self.write_batch()?;
        if let Some(head) = head {
            // The whole stream index is on disk now: record how far it reaches.
            self.shared
                .tree
                .insert(keys::META_INDEX_THROUGH, &head.position.get().to_be_bytes())
                .map_err(|e| RestoreError::Storage(e.to_string()))?;
        }
        let shared = self.shared;
        shared
            .db
            .flush()
            .map_err(|e| RestoreError::Storage(format!("flush failed: {e}")))?;
        shared.data_file.sync_data().map_err(|e| {
            RestoreError::Storage(format!(
                "fdatasync of {} failed: {e}",
                shared.path.join("db").display()
            ))
        })?;
        self.writer.restored(head, self.check.last_recorded_at());
        *lock(&shared.durable_head) = head;
        if let Some(head) = head {
            shared.signal.publish(head.position);
        }
        self.finished = true;
        Ok(head)
    }
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        if !self.finished && self.written {
            if let Err(e) = self.undo() {
                // Nothing is visible (the head was never published), but the records stay
                // in sled: refuse further writes rather than append after them.
                *lock(&self.shared.poison) =
                    Some(format!("a failed restore could not be removed: {e}"));
            }
        }
    }
}
