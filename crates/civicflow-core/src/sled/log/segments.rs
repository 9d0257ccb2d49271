//! The sealed segments of the log (decision 0013): files beside sled, and the lookups that
//! reach into them.
//!
//! A segment file holds a range of positions: its records in blocks of about 16 KiB (the
//! chunk encoding), its stream index entries and idempotency records as sorted pieces (the
//! exact keys and values they had in sled), a filter of the streams and keys it holds, and
//! at its end an index of where each part is, with each part's CRC-32:
//!
//! ```text
//! file   = header | block* | piece* | filter | index | footer
//! header = "civicflow-seg\0" (14 B) | version u8 = 1 | 0u8
//! footer = index offset u64 | index length u32 | index CRC-32 u32 | "cfsealed"   (LE)
//! ```
//!
//! A file is written whole under a temporary name, synced and renamed before sled names it
//! (`'F' | segment`, with its length and its index's CRC), so sled never names a file that
//! is not complete; a file sled does not name is what a crash left and is removed on open.
//!
//! Reads use `pread`: the operating system's page cache holds what was read, not the
//! process. In memory a segment costs its index (a block's first position and place, a
//! piece's first key and place) and its filter.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};

use super::filter::{Filter, KeyHash};
use super::{keys, storage, Shared};
use crate::codec::{self, PartV1, SegmentIndexV1, SegmentV1};
use crate::error::ReadError;
use crate::ids::Position;

const MAGIC: &[u8; 14] = b"civicflow-seg\0";
const VERSION: u8 = 1;
const HEADER_BYTES: u64 = 16;
const FOOTER_MAGIC: &[u8; 8] = b"cfsealed";
const FOOTER_BYTES: u64 = 24;

/// The directory of a log's segment files.
pub(super) fn directory(log: &Path) -> PathBuf {
    log.join("sealed")
}

fn file_name(number: u32) -> String {
    format!("{number:08}.seg")
}

/// One sealed segment, as the table in memory holds it.
#[derive(Debug)]
pub(super) struct Segment {
    pub(super) number: u32,
    pub(super) first: Position,
    pub(super) last: Position,
    path: PathBuf,
    file: File,
    /// Each block's first position and place.
    blocks: Vec<(Position, PartV1)>,
    /// Each piece's first key and place.
    pieces: Vec<(Vec<u8>, PartV1)>,
    filter: Filter,
}

/// The sealed segments, oldest first. Readers take a snapshot (a clone of the `Arc`).
pub(super) type SegmentTable = Arc<Vec<Arc<Segment>>>;

impl Segment {
    /// Opens segment `number`'s file and checks it against sled's description of it.
    pub(super) fn open(
        directory: &Path,
        number: u32,
        description: &SegmentV1,
    ) -> Result<Self, ReadError> {
        let path = directory.join(file_name(number));
        let damaged = |reason: String| ReadError::CorruptedIndex {
            what: format!("sealed segment file {}", path.display()),
            reason,
        };
        let file = File::open(&path).map_err(|e| damaged(e.to_string()))?;
        let len = file.metadata().map_err(|e| damaged(e.to_string()))?.len();
        if len != description.file_len {
            return Err(damaged(format!(
                "{len} bytes, the log says {}",
                description.file_len
            )));
        }
        if len < HEADER_BYTES + FOOTER_BYTES {
            return Err(damaged("shorter than a header and a footer".into()));
        }
        let mut header = [0u8; HEADER_BYTES as usize];
        file.read_exact_at(&mut header, 0)
            .map_err(|e| damaged(e.to_string()))?;
        if &header[..14] != MAGIC || header[14] != VERSION {
            return Err(damaged("not a segment file of version 1".into()));
        }
        let mut footer = [0u8; FOOTER_BYTES as usize];
        file.read_exact_at(&mut footer, len - FOOTER_BYTES)
            .map_err(|e| damaged(e.to_string()))?;
        if &footer[16..] != FOOTER_MAGIC {
            return Err(damaged(
                "its footer is missing (the file was cut short)".into(),
            ));
        }
        let word = |at: usize| u32::from_le_bytes(footer[at..at + 4].try_into().expect("4"));
        let index_offset = u64::from_le_bytes(footer[..8].try_into().expect("8"));
        let index = PartV1 {
            offset: index_offset,
            len: word(8),
            crc: word(12),
        };
        if index.crc != description.index_crc {
            return Err(damaged("its index is not the one the log names".into()));
        }
        let bytes = read_part(&file, index, len - FOOTER_BYTES)
            .map_err(|reason| damaged(format!("its index: {reason}")))?;
        let index = codec::decode_segment_index(&bytes).map_err(|e| damaged(e.to_string()))?;
        let segment = Self::from_index(number, path.clone(), file, index, len)?;
        if (segment.first.get(), segment.last.get())
            != (description.first_position, description.last_position)
        {
            return Err(damaged("its range is not the one the log names".into()));
        }
        Ok(segment)
    }

    fn from_index(
        number: u32,
        path: PathBuf,
        file: File,
        index: SegmentIndexV1,
        len: u64,
    ) -> Result<Self, ReadError> {
        let damaged = |reason: String| ReadError::CorruptedIndex {
            what: format!("sealed segment file {}", path.display()),
            reason,
        };
        let (Some(first), Some(last)) = (
            Position::new(index.first_position),
            Position::new(index.last_position),
        ) else {
            // Seals follow records: even a segment of idempotency records alone ends at one.
            return Err(damaged("position 0".into()));
        };
        // Empty only for a restore's segment of idempotency records alone (`seal.rs`).
        if first > last.next() {
            return Err(damaged(format!("its range {first}..={last} is reversed")));
        }
        let data_end = len - FOOTER_BYTES;
        let filter = read_part(&file, index.filter, data_end)
            .ok()
            .and_then(Filter::from_bytes)
            .ok_or_else(|| damaged("its filter is damaged".into()))?;
        let mut blocks = Vec::with_capacity(index.blocks.len());
        for (block_first, part) in index.blocks {
            let block_first = Position::new(block_first)
                .filter(|p| *p >= first && *p <= last)
                .ok_or_else(|| damaged(format!("a block at {block_first}")))?;
            if blocks
                .last()
                .is_some_and(|(previous, _)| *previous >= block_first)
            {
                return Err(damaged("its blocks are out of order".into()));
            }
            blocks.push((block_first, part));
        }
        if index.pieces.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
            return Err(damaged("its pieces are out of order".into()));
        }
        Ok(Self {
            number,
            first,
            last,
            path,
            file,
            blocks,
            pieces: index.pieces,
            filter,
        })
    }

    pub(super) fn may_hold(&self, hash: KeyHash) -> bool {
        self.filter.may_hold(hash)
    }

    pub(super) fn holds_position(&self, position: Position) -> bool {
        self.first <= position && position <= self.last
    }

    fn damaged(&self, part: String, reason: String) -> ReadError {
        ReadError::CorruptedIndex {
            what: format!("sealed segment file {} {part}", self.path.display()),
            reason,
        }
    }

    /// The block that holds `position` (in this segment): its first position and bytes.
    pub(super) fn block_for(&self, position: Position) -> Result<(Position, Vec<u8>), ReadError> {
        let index = self
            .blocks
            .partition_point(|(first, _)| *first <= position)
            .checked_sub(1)
            .ok_or_else(|| self.damaged(format!("at {position}"), "no block holds it".into()))?;
        self.block(index)
    }

    fn block(&self, index: usize) -> Result<(Position, Vec<u8>), ReadError> {
        let (first, part) = self.blocks[index];
        let bytes = read_part(&self.file, part, u64::MAX)
            .map_err(|reason| self.damaged(format!("block {index}"), reason))?;
        Ok((first, bytes))
    }

    /// Calls `visit` with the records from `from` (in this segment) through the segment's
    /// end or `through`, until it returns `Ok(false)`; `Ok(false)` if it did.
    pub(super) fn for_each_record(
        &self,
        from: Position,
        through: Position,
        visit: &mut dyn FnMut(Position, codec::ChunkEntry<'_>) -> Result<bool, ReadError>,
    ) -> Result<bool, ReadError> {
        let start = self
            .blocks
            .partition_point(|(first, _)| *first <= from)
            .saturating_sub(1);
        for index in start..self.blocks.len() {
            let (first, bytes) = self.block(index)?;
            if first > through {
                break;
            }
            let entries =
                codec::decode_chunk(&bytes).map_err(|e| ReadError::corrupted(first, &e))?;
            for (i, entry) in entries.into_iter().enumerate() {
                let position = first.plus(i as u64);
                if position < from {
                    continue;
                }
                if position > through || !visit(position, entry)? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Calls `visit` with the segment's pairs whose key starts with `prefix`, from the first
    /// at or after `from` (which starts with `prefix`), in key order, until it returns
    /// `Ok(false)`.
    pub(super) fn pairs_with_prefix(
        &self,
        prefix: &[u8],
        from: &[u8],
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<bool, ReadError>,
    ) -> Result<(), ReadError> {
        // The last piece that starts at or before `from` may hold it; later pieces follow.
        let mut index = self
            .pieces
            .partition_point(|(first, _)| first.as_slice() <= from)
            .saturating_sub(1);
        while let Some((first, part)) = self.pieces.get(index) {
            if first.as_slice() > from && !first.starts_with(prefix) {
                return Ok(());
            }
            let bytes = read_part(&self.file, *part, u64::MAX)
                .map_err(|reason| self.damaged(format!("piece {index}"), reason))?;
            let pairs = codec::decode_piece(&bytes)
                .map_err(|e| self.damaged(format!("piece {index}"), e.to_string()))?;
            for (key, value) in pairs {
                if key < from {
                    continue;
                }
                if !key.starts_with(prefix) || !visit(key, value)? {
                    return Ok(());
                }
            }
            index += 1;
        }
        Ok(())
    }
}

/// Reads a part and checks its CRC-32 (and that it ends before `end`).
fn read_part(file: &File, part: PartV1, end: u64) -> Result<Vec<u8>, String> {
    let part_end = part.offset.saturating_add(u64::from(part.len));
    if part.offset < HEADER_BYTES || part_end > end {
        return Err(format!(
            "it claims bytes {}..{part_end}, outside the file's data",
            part.offset
        ));
    }
    let mut bytes = vec![0; part.len as usize];
    file.read_exact_at(&mut bytes, part.offset)
        .map_err(|e| format!("reading {} bytes at {}: {e}", part.len, part.offset))?;
    let crc = crc32fast::hash(&bytes);
    if crc != part.crc {
        return Err(format!(
            "its CRC-32 is {crc:08x}, the index says {:08x}",
            part.crc
        ));
    }
    Ok(bytes)
}

/// Writes a segment file part by part, then its index and footer.
pub(super) struct SegmentWriter {
    temporary: PathBuf,
    out: BufWriter<File>,
    offset: u64,
    blocks: Vec<(u64, PartV1)>,
    pieces: Vec<(Vec<u8>, PartV1)>,
}

impl SegmentWriter {
    /// Starts the file of segment `number` under a temporary name.
    pub(super) fn create(directory: &Path, number: u32) -> std::io::Result<Self> {
        crate::private_fs::create_dir_all(directory)?;
        let temporary = directory.join(format!("{}.partial", file_name(number)));
        // Owner-only, as every file of the store (case titles and descriptions are personal).
        let file = crate::private_fs::create_file(&temporary)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(MAGIC)?;
        out.write_all(&[VERSION, 0])?;
        Ok(Self {
            temporary,
            out,
            offset: HEADER_BYTES,
            blocks: Vec::new(),
            pieces: Vec::new(),
        })
    }

    fn part(&mut self, bytes: &[u8]) -> std::io::Result<PartV1> {
        let len = u32::try_from(bytes.len())
            .map_err(|_| std::io::Error::other("a part of a segment file over 4 GiB"))?;
        self.out.write_all(bytes)?;
        let part = PartV1 {
            offset: self.offset,
            len,
            crc: crc32fast::hash(bytes),
        };
        self.offset += u64::from(len);
        Ok(part)
    }

    pub(super) fn block(&mut self, first: Position, bytes: &[u8]) -> std::io::Result<()> {
        let part = self.part(bytes)?;
        self.blocks.push((first.get(), part));
        Ok(())
    }

    pub(super) fn piece(&mut self, first_key: Vec<u8>, bytes: &[u8]) -> std::io::Result<()> {
        let part = self.part(bytes)?;
        self.pieces.push((first_key, part));
        Ok(())
    }

    /// Writes the filter, the index and the footer, syncs the file and gives it its name;
    /// returns sled's description of it.
    pub(super) fn finish(
        mut self,
        (first, last): (Position, Position),
        filter: &Filter,
        directory: &Path,
        number: u32,
    ) -> std::io::Result<SegmentV1> {
        let filter = self.part(filter.as_bytes())?;
        let index = codec::encode_segment_index(&SegmentIndexV1 {
            first_position: first.get(),
            last_position: last.get(),
            blocks: std::mem::take(&mut self.blocks),
            pieces: std::mem::take(&mut self.pieces),
            filter,
        });
        let index = self.part(&index)?;
        self.out.write_all(&index.offset.to_le_bytes())?;
        self.out.write_all(&index.len.to_le_bytes())?;
        self.out.write_all(&index.crc.to_le_bytes())?;
        self.out.write_all(FOOTER_MAGIC)?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        let file_len = file.metadata()?.len();
        drop(file);
        std::fs::rename(&self.temporary, directory.join(file_name(number)))?;
        File::open(directory)?.sync_all()?;
        Ok(SegmentV1 {
            first_position: first.get(),
            last_position: last.get(),
            file_len,
            index_crc: index.crc,
        })
    }
}

/// Opens every segment sled names (on open), and removes the files it does not name: what a
/// crash before a seal's description left.
pub(super) fn load(tree: &sled::Tree, log: &Path) -> Result<Vec<Arc<Segment>>, ReadError> {
    let directory = directory(log);
    let mut segments: Vec<Arc<Segment>> = Vec::new();
    for item in tree.scan_prefix([keys::SEGMENT]) {
        let (key, value) = item.map_err(storage)?;
        let expected = u32::try_from(segments.len()).unwrap_or(u32::MAX);
        let number = keys::segment_of(&key)
            .filter(|n| *n == expected)
            .ok_or_else(|| ReadError::CorruptedIndex {
                what: "sealed segments".into(),
                reason: format!("expected segment {expected}, found the key {key:?}"),
            })?;
        let description = codec::decode_segment(&value).map_err(|e| ReadError::CorruptedIndex {
            what: format!("sealed segment {number}"),
            reason: e.to_string(),
        })?;
        let segment = Segment::open(&directory, number, &description)?;
        if let Some(previous) = segments.last() {
            if previous.last.next() != segment.first {
                return Err(ReadError::CorruptedIndex {
                    what: format!("sealed segment {number}"),
                    reason: format!(
                        "it starts at {} but segment {} ends at {}",
                        segment.first, previous.number, previous.last
                    ),
                });
            }
        }
        segments.push(Arc::new(segment));
    }
    remove_unnamed(&directory, segments.len())
        .map_err(|e| ReadError::Storage(format!("{}: {e}", directory.display())))?;
    Ok(segments)
}

/// Removes files of segments numbered `named` and above, and temporary files.
fn remove_unnamed(directory: &Path, named: usize) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(directory) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let named_file = name
            .strip_suffix(".seg")
            .and_then(|number| number.parse::<usize>().ok())
            .is_some_and(|number| number < named);
        if !named_file {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Removes every segment file (a failed restore).
pub(super) fn remove_all(log: &Path) -> std::io::Result<()> {
    remove_unnamed(&directory(log), 0)
}

impl Shared {
    /// The sealed segments as they are now. Take it after reading the tail.
    pub(super) fn sealed(&self) -> SegmentTable {
        self.segments
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The segment of `table` that holds `position`, if one does.
pub(super) fn holding(table: &SegmentTable, position: Position) -> Option<&Arc<Segment>> {
    let index = table.partition_point(|segment| segment.last < position);
    table
        .get(index)
        .filter(|segment| segment.holds_position(position))
}
