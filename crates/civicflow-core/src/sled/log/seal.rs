//! Sealing: the oldest part of the log's tail becomes a sealed segment file (decision 0013).
//!
//! sled keeps state in memory for every key of a tree, so a log that kept a key per chunk,
//! per stream index entry and per idempotency record would cost memory in proportion to its
//! history. A seal takes the positions from the last seal up to a stream-index flush and
//! moves them into a file (`segments.rs`):
//!
//! 1. the range's chunks are written to the file as blocks of about 16 KiB;
//! 2. the range's stream index entries and idempotency records follow, in key order, as
//!    pieces of about 16 KiB, then the filter and the index; the file is synced and renamed;
//! 3. one sled batch names the file (`'F'`) with `M sealed-through` and `M seal-pending`;
//!    sled is flushed;
//! 4. the segment is published in the table readers use;
//! 5. the range's chunks, entries and records are removed from sled, and last
//!    `M seal-pending`.
//!
//! Until step 3 nothing refers to the file (a crash leaves a file that sled does not name,
//! removed on open). Between 3 and the end of 5 both copies exist, and readers take a
//! version or a record found twice once; a crash there is finished on open.
//!
//! Readers need no lock: they read the tail first and take the table after. A key removed
//! while a reader scans the tail belongs to a segment already published (step 4 comes before
//! step 5), so the reader finds it there.
//!
//! A seal ends at or before a stream-index flush (every position it takes has its entries
//! in sled) and at the end of a chunk; it takes at most `seal_events` events, so a long tail
//! is sealed in turn. A stream index entry that reaches past its end is split: its versions
//! up to the end go into the segment, the rest stays under the key of its first version
//! after the end, written in the batch that removes the old key. The seal runs on its own
//! thread; the leader never writes a key of the sealed range again, and the rest of a split
//! entry is a key the leader's memtable never writes (its versions are already on disk).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use super::filter::{Filter, KeyHash};
use super::segments::{self, Segment, SegmentWriter};
use super::{keys, lock, storage, Shared};
use crate::codec::{self, ChunkBuilder, PieceBuilder};
use crate::error::ReadError;
use crate::ids::Position;

/// The record bytes of a block and the bytes of a piece: a point read of an old case reads
/// one of each, and the file's index holds one entry per 16 KiB.
pub(super) const SEALED_VALUE_BYTES: usize = 16 * 1024;

/// What the leader asks of the sealer thread.
#[derive(Debug, Default)]
pub(super) struct SealerState {
    /// The newest stream-index flush: a seal may end there.
    flushed_through: Option<Position>,
    stop: bool,
    /// Why sealing stopped, if it failed (the log stays correct; it only stops shrinking).
    pub(super) failed: Option<String>,
}

#[derive(Debug, Default)]
pub(super) struct Sealer {
    pub(super) state: Mutex<SealerState>,
    wake: Condvar,
}

impl Sealer {
    /// Called by the leader after a stream-index flush through `through` is durable.
    pub(super) fn flushed(&self, through: Position) {
        lock(&self.state).flushed_through = Some(through);
        self.wake.notify_one();
    }

    pub(super) fn stop(&self) {
        lock(&self.state).stop = true;
        self.wake.notify_one();
    }
}

/// Whether a tail key (`'S'` entry or `'I'` record) belongs to the range sealed through
/// `through`: its first position does (an entry that reaches past it is split).
fn is_sealed(key: &[u8], value: &[u8], through: Position) -> Result<bool, ReadError> {
    let first = match key.first() {
        Some(&keys::STREAM_INDEX) => codec::decode_index_entry(value)
            .map_err(|e| ReadError::CorruptedIndex {
                what: "stream index entry".into(),
                reason: e.to_string(),
            })?
            .first()
            .map_or(0, |p| p.get()),
        Some(&keys::IDEMPOTENCY) => {
            codec::decode_idempotency(value)
                .map_err(|e| ReadError::CorruptedIndex {
                    what: "idempotency record".into(),
                    reason: e.to_string(),
                })?
                .first_position
        }
        _ => return Ok(false),
    };
    Ok(first <= through.get())
}

/// The value a sealed tail key puts into its segment, and the key and value of what stays.
type Split = (Vec<u8>, Option<(Vec<u8>, Vec<u8>)>);

/// What a sealed tail key puts into its segment, and what of it stays in the tail: a stream
/// index entry that reaches past the seal's end is split, its versions through the end
/// sealed and the rest kept under the key of its first version after the end.
fn split_at_seal(key: &[u8], value: &[u8], through: Position) -> Result<Split, ReadError> {
    if key.first() != Some(&keys::STREAM_INDEX) {
        return Ok((value.to_vec(), None));
    }
    let damaged = |reason: String| ReadError::CorruptedIndex {
        what: "stream index entry".into(),
        reason,
    };
    let positions = codec::decode_index_entry(value).map_err(|e| damaged(e.to_string()))?;
    let sealed = positions.partition_point(|p| *p <= through);
    if sealed == positions.len() {
        return Ok((value.to_vec(), None));
    }
    let (prefix, version) = key.split_at(key.len().saturating_sub(8));
    let first = <[u8; 8]>::try_from(version)
        .map(u64::from_be_bytes)
        .map_err(|_| damaged(format!("malformed key {key:?}")))?;
    let mut rest_key = prefix.to_vec();
    rest_key.extend_from_slice(&(first + sealed as u64).to_be_bytes());
    Ok((
        codec::encode_index_entry(&positions[..sealed]),
        Some((rest_key, codec::encode_index_entry(&positions[sealed..]))),
    ))
}

/// Pairs a scan reads before it lets go of sled's iterator.
const WINDOW: usize = 1024;

/// Calls `visit` with the pairs from `start` on while `within` holds, in key order, reading
/// them in windows with no sled iterator open while `visit` runs: the removal of a seal's
/// tail keys removes from the tree it scans.
fn for_each_in_windows(
    tree: &sled::Tree,
    mut start: Vec<u8>,
    within: impl Fn(&[u8]) -> bool,
    mut visit: impl FnMut(&[u8], &[u8]) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    loop {
        let mut window = Vec::with_capacity(WINDOW);
        for item in tree.range(start.clone()..) {
            let (key, value) = item.map_err(storage)?;
            if !within(&key) {
                break;
            }
            window.push((key, value));
            if window.len() == WINDOW {
                break;
            }
        }
        let Some((last, _)) = window.last() else {
            return Ok(());
        };
        // The next window starts just after the last key read.
        start = last.to_vec();
        start.push(0);
        let full = window.len() == WINDOW;
        for (key, value) in &window {
            visit(key, value)?;
        }
        if !full {
            return Ok(());
        }
    }
}

/// Calls `visit` with every tail key of the sealed range, `'I'` before `'S'` (key order).
fn for_each_sealed_tail_key(
    tree: &sled::Tree,
    through: Position,
    mut visit: impl FnMut(&[u8], &[u8]) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    for prefix in [keys::IDEMPOTENCY, keys::STREAM_INDEX] {
        for_each_in_windows(
            tree,
            vec![prefix],
            |key| key.first() == Some(&prefix),
            |key, value| {
                if is_sealed(key, value, through)? {
                    visit(key, value)?;
                }
                Ok(())
            },
        )?;
    }
    Ok(())
}

/// Calls `visit` with each chunk of the tail from `first` through `through`: its first
/// position and its bytes.
fn for_each_chunk(
    tree: &sled::Tree,
    first: Position,
    through: Position,
    mut visit: impl FnMut(Position, &[u8]) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    if first > through {
        return Ok(()); // a segment of idempotency records alone
    }
    let last = keys::chunk(through);
    for_each_in_windows(
        tree,
        keys::chunk(first).to_vec(),
        |key| key <= last.as_slice(),
        |key, value| {
            let start = keys::chunk_position(key).ok_or_else(|| ReadError::CorruptedIndex {
                what: "log chunk key".into(),
                reason: format!("{key:?}"),
            })?;
            visit(start, value)
        },
    )
}

impl Shared {
    /// The sealer thread: seals whenever enough has been flushed since the last seal.
    pub(super) fn run_sealer(&self) {
        loop {
            let through = {
                let mut state = lock(&self.sealer.state);
                loop {
                    if state.stop {
                        return;
                    }
                    if let Some(through) = state.flushed_through.take() {
                        break through;
                    }
                    state = self
                        .sealer
                        .wake
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            };
            // A seal takes at most `seal_events` events: a tail that grew past several of them
            // (after a restart, an import) is sealed in turn, each part removed before the
            // next is read, so that what sled pages in for a seal stays small.
            while through.get() - self.sealed_through.load(Ordering::Acquire) >= self.seal_events {
                if lock(&self.sealer.state).stop {
                    return;
                }
                // A failed seal leaves the log whole (see above); the next flush tries again,
                // and the failure stays visible (`SledLog::seal_failure`) until one succeeds.
                let outcome = self.seal(through);
                let failed = outcome.is_err();
                lock(&self.sealer.state).failed = outcome.err().map(|error| error.to_string());
                if failed {
                    break;
                }
            }
        }
    }

    /// Seals every position after the last seal through `through` (a stream-index flush),
    /// at most `seal_events` of them.
    pub(super) fn seal(&self, through: Position) -> Result<(), ReadError> {
        let _one_at_a_time = lock(&self.sealing);
        // A seal whose removal did not finish (it failed, or the process died) first.
        self.finish_pending_seal()?;
        let sealed = self.sealed_through.load(Ordering::Acquire);
        let first = Position::FIRST.plus(sealed);
        if first > through {
            return Ok(());
        }
        let through = self.capped(first, through)?;
        let (number, mut file) = self.next_segment_file()?;
        let file_error = segment_file_error(&self.path, number);

        // 1. Blocks, from the tail's chunks.
        let mut block = ChunkBuilder::with_target(SEALED_VALUE_BYTES);
        let mut block_first = first;
        let mut next = first;
        for_each_chunk(&self.tree, first, through, |start, value| {
            let entries =
                codec::decode_chunk(value).map_err(|e| ReadError::corrupted(start, &e))?;
            for (i, entry) in entries.iter().enumerate() {
                let position = start.plus(i as u64);
                if position != next {
                    return Err(ReadError::Corrupted {
                        position: next,
                        reason: format!("sealing through {through}, found {position} instead"),
                    });
                }
                if block.is_full_for(entry.record.len()) {
                    let full = std::mem::replace(
                        &mut block,
                        ChunkBuilder::with_target(SEALED_VALUE_BYTES),
                    );
                    file.block(block_first, &full.finish())
                        .map_err(&file_error)?;
                }
                if block.is_empty() {
                    block_first = position;
                }
                block.push(&entry.hash, entry.record);
                next = position.next();
            }
            Ok(())
        })?;
        if next != through.next() {
            return Err(ReadError::Corrupted {
                position: next,
                reason: format!("sealing through {through}, no stored record here"),
            });
        }
        if !block.is_empty() {
            file.block(block_first, &block.finish())
                .map_err(&file_error)?;
        }

        // 2 to 4. The range's tail keys in pieces, the file named and published.
        let segment = self.close_and_publish(file, number, (first, through), true, |visit| {
            for_each_sealed_tail_key(&self.tree, through, |key, value| {
                visit(key, &split_at_seal(key, value, through)?.0)
            })
        })?;

        #[cfg(feature = "fault-injection")]
        if self.faults.seal_stops_before_removal {
            return Ok(());
        }
        // 5. The tail's copies go.
        self.remove_sealed_tail(&segment)
    }

    /// A segment a restore wrote (its blocks, if any, already in `file`): `pairs` (tail keys
    /// and their values, in key order) close it, and it is named and published as a seal's
    /// is. A restore starts from an empty log: no seal is pending, no tail copy to remove.
    pub(super) fn publish_restored_segment(
        &self,
        file: SegmentWriter,
        number: u32,
        range: (Position, Position),
        pairs: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), ReadError> {
        let _one_at_a_time = lock(&self.sealing);
        self.close_and_publish(file, number, range, false, |visit| {
            pairs.iter().try_for_each(|(key, value)| visit(key, value))
        })
        .map(drop)
    }

    /// The next segment's number and its file, created under its temporary name.
    pub(super) fn next_segment_file(&self) -> Result<(u32, SegmentWriter), ReadError> {
        let number = u32::try_from(self.sealed().len()).map_err(|_| ReadError::CorruptedIndex {
            what: "sealed segments".into(),
            reason: "too many".into(),
        })?;
        let file = SegmentWriter::create(&segments::directory(&self.path), number)
            .map_err(segment_file_error(&self.path, number))?;
        Ok((number, file))
    }

    /// Steps 2 to 4 of a seal: `pairs` (tail keys with the values to seal, in key order) as
    /// pieces; the filter and the index close the file (synced, then named); one sled batch
    /// names it with `M sealed-through` (and `M seal-pending` when tail copies are to be
    /// removed) and is flushed; then readers are given the segment.
    fn close_and_publish(
        &self,
        mut file: SegmentWriter,
        number: u32,
        (first, through): (Position, Position),
        tail_copies: bool,
        pairs: impl FnOnce(
            &mut dyn FnMut(&[u8], &[u8]) -> Result<(), ReadError>,
        ) -> Result<(), ReadError>,
    ) -> Result<Arc<Segment>, ReadError> {
        let directory = segments::directory(&self.path);
        let file_error = segment_file_error(&self.path, number);
        let mut hashes = Vec::new();
        let mut piece = PieceBuilder::new(SEALED_VALUE_BYTES);
        let mut previous_filter_key: Vec<u8> = Vec::new();
        pairs(&mut |key, value| {
            if piece.is_full() {
                let (first_key, bytes) =
                    std::mem::replace(&mut piece, PieceBuilder::new(SEALED_VALUE_BYTES)).finish();
                file.piece(first_key, &bytes).map_err(&file_error)?;
            }
            piece.push(key, value);
            let filter_key = filter_key(key);
            if filter_key != previous_filter_key.as_slice() {
                hashes.push(KeyHash::of(filter_key));
                previous_filter_key = filter_key.to_vec();
            }
            Ok(())
        })?;
        if !piece.is_empty() {
            let (first_key, bytes) = piece.finish();
            file.piece(first_key, &bytes).map_err(&file_error)?;
        }

        let mut filter = Filter::with_capacity(hashes.len() as u64);
        for hash in hashes {
            filter.insert(hash);
        }
        let description = file
            .finish((first, through), &filter, &directory, number)
            .map_err(&file_error)?;
        let mut marks = sled::Batch::default();
        marks.insert(&keys::segment(number), codec::encode_segment(&description));
        marks.insert(keys::META_SEALED_THROUGH, &through.get().to_be_bytes());
        if tail_copies {
            marks.insert(keys::META_SEAL_PENDING, &number.to_be_bytes());
        }
        self.tree.apply_batch(marks).map_err(storage)?;
        self.db.flush().map_err(storage)?;

        // Published: from here readers find the range in the segment.
        let segment = Arc::new(Segment::open(&directory, number, &description)?);
        {
            let mut table = self
                .segments
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let mut list = table.as_ref().clone();
            list.push(segment.clone());
            *table = Arc::new(list);
        }
        self.sealed_through.store(through.get(), Ordering::Release);
        Ok(segment)
    }

    /// Where a seal from `first` that may reach `through` ends: `through`, or, past
    /// `seal_events` events, the end of the last chunk that fits (a chunk is never split).
    fn capped(&self, first: Position, through: Position) -> Result<Position, ReadError> {
        let cap = self.seal_events.max(1);
        let limit = first.plus(cap - 1);
        if through <= limit {
            return Ok(through);
        }
        let next_chunk = self
            .tree
            .range(..=keys::chunk(limit.next()))
            .next_back()
            .transpose()
            .map_err(storage)?
            .and_then(|(key, _)| keys::chunk_position(&key));
        Ok(match next_chunk.and_then(Position::prev) {
            Some(end) if end >= first => end,
            // One chunk larger than the cap, or nothing in the tail there: the whole range.
            _ => through,
        })
    }

    /// Step 5 of the seal `M seal-pending` names, if there is one: how a seal after a failed
    /// one, and opening after a crash inside one, finish it.
    pub(super) fn finish_pending_seal(&self) -> Result<(), ReadError> {
        let Some(pending) = self.tree.get(keys::META_SEAL_PENDING).map_err(storage)? else {
            return Ok(());
        };
        let segment = <[u8; 4]>::try_from(pending.as_ref())
            .ok()
            .map(u32::from_be_bytes)
            .and_then(|number| self.sealed().get(number as usize).cloned())
            .ok_or_else(|| ReadError::CorruptedIndex {
                what: "meta seal-pending".into(),
                reason: format!("{pending:?} names no sealed segment"),
            })?;
        self.remove_sealed_tail(&segment)
    }

    /// Removes what `segment` sealed from the tail, then `M seal-pending`.
    fn remove_sealed_tail(&self, segment: &Segment) -> Result<(), ReadError> {
        // One key at a time, not in batches: under a full write load, batches of 4096
        // removals raised the process's memory by 75 to 100 MB while they ran (sled frees
        // what a batch replaced only after it), single removals by 0 to 37 MB.
        let mut chunk_keys = Vec::new();
        for_each_chunk(&self.tree, segment.first, segment.last, |start, _| {
            chunk_keys.push(keys::chunk(start));
            Ok(())
        })?;
        for key in chunk_keys {
            self.tree.remove(key).map_err(storage)?;
        }
        for_each_sealed_tail_key(&self.tree, segment.last, |key, value| {
            match split_at_seal(key, value, segment.last)?.1 {
                None => self.tree.remove(key).map_err(storage).map(drop),
                // The part past the seal's end stays, under its own first version, in the
                // same atomic batch that removes the whole entry.
                Some((rest_key, rest_value)) => {
                    let mut split = sled::Batch::default();
                    split.insert(rest_key, rest_value);
                    split.remove(key);
                    self.tree.apply_batch(split).map_err(storage)
                }
            }
        })?;
        self.tree.remove(keys::META_SEAL_PENDING).map_err(storage)?;
        Ok(())
    }
}

/// How a failure to write segment `number` of the log at `path` reads.
fn segment_file_error(path: &std::path::Path, number: u32) -> impl Fn(std::io::Error) -> ReadError {
    let directory = segments::directory(path);
    move |e| {
        ReadError::Storage(format!(
            "writing sealed segment {number} in {}: {e}",
            directory.display()
        ))
    }
}

/// What the filter holds for a tail key: a stream index entry's stream (`'S' | id | 0`), an
/// idempotency record's whole key.
pub(super) fn filter_key(key: &[u8]) -> &[u8] {
    match key.first() {
        Some(&keys::STREAM_INDEX) => &key[..key.len().saturating_sub(8)],
        _ => key,
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::super::{keys, SledLog, SledLogConfig};
    use crate::clock::{ManualClock, Timestamp};
    use crate::event::{AppendRequest, NewEvent};
    use crate::ids::{
        Actor, CorrelationId, EventId, EventType, ExpectedVersion, IdempotencyKey, Position,
        StreamId, Version,
    };
    use crate::store::EventStore;

    /// A store's directory, removed when the test is done with it.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Self {
            let path =
                std::env::temp_dir().join(format!("civicflow-seal-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            Self(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    /// Small thresholds: a flush every 16 events, a seal every 64.
    fn sealing(path: &Path, clock: &ManualClock) -> SledLogConfig {
        SledLogConfig::new(path)
            .clock(Arc::new(clock.clone()))
            .index_flush_events(16)
            .seal_after_events(64)
            .restore_streams_in_memory(5)
    }

    fn never_sealing(path: &Path, clock: &ManualClock) -> SledLogConfig {
        sealing(path, clock).seal_after_events(0)
    }

    fn stream(i: usize) -> StreamId {
        StreamId::new(format!("case-{}", i % 23)).expect("valid")
    }

    fn key(n: usize) -> IdempotencyKey {
        IdempotencyKey::new(format!("req-{n}")).expect("valid")
    }

    /// The same appends, byte for byte, to every log: 23 streams, one to three events each,
    /// an idempotency key on every third.
    fn append(logs: &[&SledLog], appends: std::ops::Range<usize>) {
        for n in appends {
            let events = (0..1 + n % 3)
                .map(|i| {
                    NewEvent::new(
                        EventType::new("Noted").expect("valid"),
                        1,
                        vec![n as u8; 40],
                    )
                    .with_id(EventId::from_uuid(uuid::Uuid::from_u128(
                        (n as u128) << 8 | i as u128,
                    )))
                })
                .collect();
            let mut request = AppendRequest::to_stream(
                stream(n),
                ExpectedVersion::Any,
                events,
                Actor::parse("worker-1", "grid_worker", "grid-1").expect("valid"),
                CorrelationId::from_uuid(uuid::Uuid::from_u128(n as u128)),
            );
            if n % 3 == 0 {
                request = request.with_idempotency_key(key(n));
            }
            for log in logs {
                log.append(request.clone())
                    .expect("append")
                    .expect("no conflict");
            }
        }
    }

    fn wait_for_segments(log: &SledLog, at_least: usize) {
        let started = Instant::now();
        while log.sealed_segments() < at_least {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{} segments after a minute, waiting for {at_least}; failure: {:?}",
                log.sealed_segments(),
                log.seal_failure()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every read a caller can make answers the same on both logs.
    fn assert_same_answers(sealed: &SledLog, reference: &SledLog, appends: usize) {
        let all = |log: &SledLog| log.read_all(Position::FIRST, usize::MAX).expect("read_all");
        assert_eq!(all(sealed), all(reference), "read_all");
        for i in 0..23 {
            let stream = stream(i);
            let expected = reference
                .read_stream(&stream, Version::FIRST, usize::MAX)
                .expect("read");
            assert_eq!(
                sealed
                    .read_stream(&stream, Version::FIRST, usize::MAX)
                    .expect("read"),
                expected,
                "{stream}"
            );
            for from in 1..=expected.len() as u64 + 1 {
                let from = Version::new(from).expect("not zero");
                for max in [1, 3, 7] {
                    assert_eq!(
                        sealed.read_stream(&stream, from, max).expect("read"),
                        reference.read_stream(&stream, from, max).expect("read"),
                        "{stream} from {from} max {max}"
                    );
                }
            }
            assert_eq!(
                sealed.stream_version(&stream).expect("version"),
                reference.stream_version(&stream).expect("version"),
                "{stream}"
            );
            assert!(sealed.verify_stream(&stream).expect("verify").is_intact());
        }
        assert_eq!(
            sealed
                .stream_version(&StreamId::new("case-none").expect("valid"))
                .expect("v"),
            None
        );
        for n in (0..appends + 30).step_by(3) {
            assert_eq!(
                sealed.idempotency_record(&key(n)).expect("lookup"),
                reference.idempotency_record(&key(n)).expect("lookup"),
                "{}",
                key(n)
            );
        }
        let export = |log: &SledLog| {
            let mut out = Vec::new();
            loop {
                let page = log
                    .stored_idempotency_records(
                        out.last().map(|r: &crate::StoredIdempotency| &r.key),
                        7,
                    )
                    .expect("export");
                if page.is_empty() {
                    return out;
                }
                out.extend(page);
            }
        };
        assert_eq!(
            export(sealed),
            export(reference),
            "exported idempotency records"
        );
        assert_eq!(
            sealed.verify().expect("verify"),
            reference.verify().expect("verify")
        );
    }

    /// The tail keys a sealed log still holds at or below its last seal, and its chunk keys
    /// there: none once its removals are done.
    fn sealed_range_keys(log: &SledLog) -> (usize, usize) {
        let shared = log.shared();
        let through = shared
            .sealed_through
            .load(std::sync::atomic::Ordering::Acquire);
        let through = Position::new(through).expect("sealed");
        let mut tail = 0;
        super::for_each_sealed_tail_key(&shared.tree, through, |_, _| {
            tail += 1;
            Ok(())
        })
        .expect("scan");
        let chunks = shared
            .tree
            .range(keys::chunk(Position::FIRST)..=keys::chunk(through))
            .count();
        (tail, chunks)
    }

    #[test]
    fn an_entry_reaching_past_the_seal_is_split_at_its_end() {
        let stream = StreamId::new("case-1").expect("valid");
        let key = keys::stream_entry(&stream, Version::new(5).expect("nz"));
        let at = |p: u64| Position::new(p).expect("nz");
        let value = crate::codec::encode_index_entry(&[at(10), at(11), at(12), at(13)]);
        let (sealed, rest) = super::split_at_seal(&key, &value, at(11)).expect("split");
        assert_eq!(
            crate::codec::decode_index_entry(&sealed).expect("decodes"),
            vec![at(10), at(11)]
        );
        let (rest_key, rest_value) = rest.expect("a rest");
        assert_eq!(
            rest_key,
            keys::stream_entry(&stream, Version::new(7).expect("nz"))
        );
        assert_eq!(
            crate::codec::decode_index_entry(&rest_value).expect("decodes"),
            vec![at(12), at(13)]
        );
        // Wholly inside the seal: unchanged, nothing stays.
        let (whole, none) = super::split_at_seal(&key, &value, at(13)).expect("split");
        assert_eq!((whole, none), (value.clone(), None));
    }

    #[test]
    fn a_sealed_log_answers_every_read_as_one_that_never_seals() {
        let clock = ManualClock::new(Timestamp::EPOCH);
        let (dir, reference_dir) = (Dir::new("answers"), Dir::new("answers-reference"));
        let log = sealing(&dir.0, &clock).open().expect("open");
        let reference = never_sealing(&reference_dir.0, &clock)
            .open()
            .expect("open");
        append(&[&log, &reference], 0..400);
        wait_for_segments(&log, 4);
        assert_eq!(reference.sealed_segments(), 0);
        assert_same_answers(&log, &reference, 400);
        let segments = log.sealed_segments();
        log.close().expect("close");

        let log = sealing(&dir.0, &clock).open().expect("reopen");
        assert_eq!(
            log.sealed_segments(),
            segments,
            "segments are read back on open"
        );
        assert_eq!(
            sealed_range_keys(&log),
            (0, 0),
            "the sealed range's keys in sled"
        );
        assert_same_answers(&log, &reference, 400);
        // Appends after a reopen: streams continue from their sealed versions.
        append(&[&log, &reference], 400..500);
        wait_for_segments(&log, segments + 1);
        assert_same_answers(&log, &reference, 500);
        assert_eq!(log.seal_failure(), None);
    }

    #[test]
    fn an_import_seals_as_it_goes_and_reads_as_the_original() {
        let clock = ManualClock::new(Timestamp::EPOCH);
        let (dir, original_dir) = (Dir::new("import"), Dir::new("import-original"));
        let original = never_sealing(&original_dir.0, &clock).open().expect("open");
        append(&[&original], 0..400);
        let records = original
            .stored_records(Position::FIRST, usize::MAX)
            .expect("export");
        let idempotency = original
            .stored_idempotency_records(None, usize::MAX)
            .expect("export");
        assert_eq!(idempotency.len(), 134);

        let log = sealing(&dir.0, &clock).open().expect("open");
        let head = log
            .restore(records, idempotency, original.head())
            .expect("restore");
        assert_eq!(head, original.head());
        // Segments of records (some 700 events, 64 each), then of the idempotency records
        // alone (134, 64 each), all written by the import itself.
        assert!(
            log.sealed_segments() >= 12,
            "{} segments",
            log.sealed_segments()
        );
        // An import writes straight into segments: nothing of it in sled's tail.
        assert_eq!(sealed_range_keys(&log), (0, 0), "the import's keys in sled");
        assert_eq!(
            log.shared()
                .sealed_through
                .load(std::sync::atomic::Ordering::Acquire),
            original.head().expect("head").position.get()
        );
        assert_same_answers(&log, &original, 400);
        append(&[&log, &original], 400..450);
        assert_same_answers(&log, &original, 450);
    }

    #[test]
    fn an_import_seals_idempotency_records_given_in_any_order_keeping_the_last_of_a_key() {
        let clock = ManualClock::new(Timestamp::EPOCH);
        let (dir, original_dir) = (Dir::new("import-keys"), Dir::new("import-keys-original"));
        let original = never_sealing(&original_dir.0, &clock).open().expect("open");
        append(&[&original], 0..400);
        let records = original
            .stored_records(Position::FIRST, usize::MAX)
            .expect("export");
        let mut idempotency = original
            .stored_idempotency_records(None, usize::MAX)
            .expect("export");
        // Backwards, and two keys given twice, first with another key's record (which the
        // restore must not keep), then with their own: one in the same segment's worth, one
        // a segment apart.
        idempotency.reverse();
        let own = idempotency.last().expect("records").clone();
        let near = idempotency[5].clone();
        for (at, key) in [(5, &near.key), (0, &own.key)] {
            let mut wrong = idempotency[at + 1].clone();
            wrong.key = key.clone();
            idempotency.insert(at, wrong);
        }

        let log = sealing(&dir.0, &clock).open().expect("open");
        log.restore(records, idempotency, original.head())
            .expect("restore");
        // 136 records, in segments of their own of at most 64.
        assert_eq!(sealed_range_keys(&log), (0, 0), "the import's keys in sled");
        assert_same_answers(&log, &original, 400);
        log.close().expect("close");
        let log = sealing(&dir.0, &clock).open().expect("reopen");
        assert_same_answers(&log, &original, 400);
        for key in [&own.key, &near.key] {
            assert_eq!(
                log.idempotency_record(key).expect("lookup"),
                original.idempotency_record(key).expect("lookup")
            );
        }
    }

    #[test]
    fn a_store_written_before_sealing_is_read_as_it_is_and_never_sealed() {
        let clock = ManualClock::new(Timestamp::EPOCH);
        let (dir, reference_dir) = (Dir::new("format1"), Dir::new("format1-reference"));
        let log = never_sealing(&dir.0, &clock).open().expect("open");
        let reference = never_sealing(&reference_dir.0, &clock)
            .open()
            .expect("open");
        append(&[&log, &reference], 0..100);
        log.shared()
            .tree
            .insert(keys::META_FORMAT, keys::FORMAT_NAME_UNSEALED.as_bytes())
            .expect("mark");
        log.close().expect("close");

        let log = sealing(&dir.0, &clock)
            .open()
            .expect("a format 1 store opens");
        append(&[&log, &reference], 100..400);
        log.close().expect("close");
        let log = sealing(&dir.0, &clock).open().expect("reopen");
        assert_eq!(log.sealed_segments(), 0);
        assert_same_answers(&log, &reference, 400);
    }

    #[test]
    fn a_damaged_segment_file_is_refused_naming_the_file_and_the_part() {
        let clock = ManualClock::new(Timestamp::EPOCH);
        let dir = Dir::new("damaged");
        let log = sealing(&dir.0, &clock).open().expect("open");
        append(&[&log], 0..100);
        wait_for_segments(&log, 1);
        log.close().expect("close");
        let file = dir.0.join("sealed").join("00000000.seg");
        let bytes = std::fs::read(&file).expect("the first segment's file");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file)
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "a segment file is owner-only");
        }

        // A byte flipped in the first block: reads that need it fail and say where.
        let mut flipped = bytes.clone();
        flipped[20] ^= 0x40;
        std::fs::write(&file, &flipped).expect("write");
        let log = sealing(&dir.0, &clock)
            .open()
            .expect("blocks are read when needed");
        let failed = log
            .read_all(Position::FIRST, 10)
            .expect_err("the first block is damaged");
        let message = failed.to_string();
        assert!(
            message.contains("00000000.seg") && message.contains("block 0"),
            "{message}"
        );
        assert!(message.contains("CRC-32"), "{message}");
        log.close().expect("close");

        // Cut short: refused on open, naming the file.
        std::fs::write(&file, &bytes[..bytes.len() - 5]).expect("write");
        let refused = sealing(&dir.0, &clock).open().expect_err("refused");
        let message = refused.to_string();
        assert!(message.contains("00000000.seg"), "{message}");

        // Whole again: opens and verifies.
        std::fs::write(&file, &bytes).expect("write");
        let log = sealing(&dir.0, &clock).open().expect("open");
        assert!(log.verify().expect("verify").is_intact());
    }

    #[test]
    fn a_failing_seal_is_reported_as_the_logs_upkeep_failure_until_one_succeeds() {
        let clock = ManualClock::new(Timestamp::EPOCH);
        let (dir, reference_dir) = (Dir::new("failing"), Dir::new("failing-reference"));
        let log = sealing(&dir.0, &clock).open().expect("open");
        let reference = never_sealing(&reference_dir.0, &clock)
            .open()
            .expect("open");
        assert_eq!(log.upkeep_failure(), None);
        // The segments' directory cannot be made: a file stands where it would be.
        let blocker = super::segments::directory(&dir.0);
        std::fs::write(&blocker, b"not a directory").expect("a file in the way");
        append(&[&log, &reference], 0..100);
        let deadline = Instant::now() + Duration::from_secs(60);
        let failure = loop {
            if let Some(failure) = log.upkeep_failure() {
                break failure;
            }
            assert!(Instant::now() < deadline, "no failure reported");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(
            failure.starts_with("sealing failed: ") && failure.contains("sealed segment 0"),
            "{failure}"
        );
        assert_eq!(log.stats().sealed_segments, 0);
        // Still correct and writable meanwhile.
        assert!(log.health().is_ok());
        assert_same_answers(&log, &reference, 100);

        // The cause gone, the next flush seals, and the report clears.
        std::fs::remove_file(&blocker).expect("remove");
        append(&[&log, &reference], 100..200);
        wait_for_segments(&log, 1);
        let deadline = Instant::now() + Duration::from_secs(60);
        while log.upkeep_failure().is_some() {
            assert!(Instant::now() < deadline, "the failure stayed reported");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(log.stats().sealed_segments >= 1);
        assert_same_answers(&log, &reference, 200);
    }

    #[test]
    fn a_segment_file_the_log_does_not_name_is_removed_on_open() {
        let clock = ManualClock::new(Timestamp::EPOCH);
        let dir = Dir::new("unnamed");
        let log = sealing(&dir.0, &clock).open().expect("open");
        append(&[&log], 0..100);
        wait_for_segments(&log, 1);
        log.close().expect("close");
        // What a crash between a file's rename and sled's batch leaves, and a partial file.
        let sealed = dir.0.join("sealed");
        let segments = std::fs::read_dir(&sealed)
            .expect("the segments' directory")
            .count();
        let orphan = sealed.join(format!("{segments:08}.seg"));
        let partial = sealed.join(format!("{:08}.seg.partial", segments + 1));
        std::fs::write(&orphan, b"left by a crash").expect("write");
        std::fs::write(&partial, b"left by a crash").expect("write");
        let log = sealing(&dir.0, &clock).open().expect("open");
        assert!(!orphan.exists() && !partial.exists());
        assert_eq!(log.sealed_segments(), segments);
        assert!(log.verify().expect("verify").is_intact());
    }

    #[cfg(feature = "fault-injection")]
    #[test]
    fn a_seal_stopped_before_its_removal_is_answered_from_both_copies_and_finished_on_open() {
        let clock = ManualClock::new(Timestamp::EPOCH);
        let (dir, reference_dir) = (Dir::new("stopped"), Dir::new("stopped-reference"));
        let mut config = sealing(&dir.0, &clock);
        config.faults.seal_stops_before_removal = true;
        let log = config.open().expect("open");
        let reference = never_sealing(&reference_dir.0, &clock)
            .open()
            .expect("open");
        append(&[&log, &reference], 0..300);
        wait_for_segments(&log, 3);
        // The last seal's tail copies are still there, and every answer is the same.
        let (tail, _) = sealed_range_keys(&log);
        assert!(tail > 0, "the stopped seal left its tail keys");
        assert!(log
            .shared()
            .tree
            .get(keys::META_SEAL_PENDING)
            .expect("read")
            .is_some());
        assert_same_answers(&log, &reference, 300);
        log.close().expect("close");

        let log = sealing(&dir.0, &clock).open().expect("reopen");
        assert!(log
            .shared()
            .tree
            .get(keys::META_SEAL_PENDING)
            .expect("read")
            .is_none());
        assert_eq!(sealed_range_keys(&log).0, 0, "opening finished the removal");
        assert_same_answers(&log, &reference, 300);
    }
}
