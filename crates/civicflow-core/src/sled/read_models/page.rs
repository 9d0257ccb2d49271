//! Pages: a namespace's rows, packed many to a sled value.
//!
//! Writing rows one sled key each costs about 4 µs a row on the reference machine (sled's
//! per-key tree work, under its process-wide batch lock), which made a rebuild spend most of
//! its time writing. Packed about 2 KiB to a page, the same rows cost a fraction of that,
//! and a scan reads a page per dozen rows.
//!
//! A page holds the rows of one key range, sorted, in this layout (integers little-endian):
//!
//! ```text
//! u8 layout (1) | u32 count | u32 offset × count | entries
//! entry: u32 key length | key | u32 value length | value
//! ```
//!
//! The offsets make a page searchable in place: a point read decodes one entry, not the page.
//! [`Page::parse`] checks every offset and length once, so the accessors never fail.

use super::ReadModelError;

const LAYOUT: u8 = 1;
const HEADER: usize = 5;

/// A page's bytes, checked.
pub(crate) struct Page<'a> {
    bytes: &'a [u8],
    /// Where each entry starts.
    offsets: Vec<usize>,
}

fn corrupted(what: &str) -> ReadModelError {
    ReadModelError::Corrupted(format!("read-model page: {what}"))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let raw = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(raw.try_into().ok()?))
}

/// Where an entry's key and value lie: `(key start, key end, value end)`.
fn entry_bounds(bytes: &[u8], at: usize) -> Option<(usize, usize, usize)> {
    let key_len = usize::try_from(read_u32(bytes, at)?).ok()?;
    let key_start = at.checked_add(4)?;
    let key_end = key_start.checked_add(key_len)?;
    let value_len = usize::try_from(read_u32(bytes, key_end)?).ok()?;
    let value_end = key_end.checked_add(4)?.checked_add(value_len)?;
    (value_end <= bytes.len()).then_some((key_start, key_end, value_end))
}

impl<'a> Page<'a> {
    /// Checks `bytes` as a page.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, ReadModelError> {
        if bytes.first() != Some(&LAYOUT) {
            return Err(corrupted("unknown layout"));
        }
        let count = usize::try_from(read_u32(bytes, 1).ok_or_else(|| corrupted("no header"))?)
            .map_err(|_| corrupted("count"))?;
        let table_end = count
            .checked_mul(4)
            .and_then(|n| n.checked_add(HEADER))
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| corrupted("offset table past the end"))?;
        let mut offsets = Vec::with_capacity(count);
        let mut expected = table_end;
        for i in 0..count {
            let offset = read_u32(bytes, HEADER + 4 * i).ok_or_else(|| corrupted("offset"))?;
            let at = usize::try_from(offset).map_err(|_| corrupted("offset"))?;
            if at != expected {
                return Err(corrupted("entries out of place"));
            }
            let (_, _, end) = entry_bounds(bytes, at).ok_or_else(|| corrupted("entry"))?;
            expected = end;
            offsets.push(at);
        }
        if expected != bytes.len() {
            return Err(corrupted("trailing bytes"));
        }
        let page = Self { bytes, offsets };
        if (1..count).any(|i| page.key(i - 1) >= page.key(i)) {
            return Err(corrupted("keys out of order"));
        }
        Ok(page)
    }

    /// How many rows.
    pub(crate) fn len(&self) -> usize {
        self.offsets.len()
    }

    /// `(key start, key end, value end)` of row `i`; `parse` checked them all.
    fn bounds(&self, i: usize) -> (usize, usize, usize) {
        let at = self.offsets.get(i).copied().unwrap_or(self.bytes.len());
        entry_bounds(self.bytes, at).unwrap_or((at, at, at))
    }

    /// The key of row `i` (`i < len`).
    pub(crate) fn key(&self, i: usize) -> &'a [u8] {
        let (start, end, _) = self.bounds(i);
        self.bytes.get(start..end).unwrap_or_default()
    }

    /// The value of row `i` (`i < len`).
    pub(crate) fn value(&self, i: usize) -> &'a [u8] {
        let (_, key_end, end) = self.bounds(i);
        self.bytes.get(key_end + 4..end).unwrap_or_default()
    }

    /// The index of `key`, or where it would go.
    pub(crate) fn search(&self, key: &[u8]) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.key(mid).cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    /// The first index whose key is at least `key`.
    pub(crate) fn lower_bound(&self, key: &[u8]) -> usize {
        self.search(key).unwrap_or_else(|i| i)
    }

    /// Every row.
    pub(crate) fn rows(&self) -> Vec<(&'a [u8], &'a [u8])> {
        (0..self.len())
            .map(|i| (self.key(i), self.value(i)))
            .collect()
    }
}

/// The encoded size of one row.
pub(crate) fn row_size(key: &[u8], value: &[u8]) -> usize {
    12 + key.len() + value.len()
}

/// Encodes sorted rows as a page.
///
/// # Panics
/// Never for rows the store accepts: keys and values are bounded well below 4 GiB by sled.
pub(crate) fn encode(rows: &[(&[u8], &[u8])]) -> Vec<u8> {
    let size = HEADER + rows.iter().map(|(k, v)| row_size(k, v)).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.push(LAYOUT);
    out.extend_from_slice(&len_u32(rows.len()).to_le_bytes());
    let mut at = HEADER + 4 * rows.len();
    for (key, value) in rows {
        out.extend_from_slice(&len_u32(at).to_le_bytes());
        at += 8 + key.len() + value.len();
    }
    for (key, value) in rows {
        out.extend_from_slice(&len_u32(key.len()).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&len_u32(value.len()).to_le_bytes());
        out.extend_from_slice(value);
    }
    out
}

fn len_u32(n: usize) -> u32 {
    u32::try_from(n).expect("a read-model page under 4 GiB")
}

/// Cuts sorted rows into runs of about `target` encoded bytes (a row larger than that is a run
/// of its own).
pub(crate) fn split<'r, 'a>(
    rows: &'r [(&'a [u8], &'a [u8])],
    target: usize,
) -> Vec<&'r [(&'a [u8], &'a [u8])]> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut size = HEADER;
    for (i, (key, value)) in rows.iter().enumerate() {
        let row = row_size(key, value);
        if i > start && size + row > target {
            runs.push(&rows[start..i]);
            start = i;
            size = HEADER;
        }
        size += row;
    }
    if start < rows.len() {
        runs.push(&rows[start..]);
    }
    runs
}

/// The encoded size of sorted rows as one page.
pub(crate) fn encoded_size(rows: &[(&[u8], &[u8])]) -> usize {
    HEADER + rows.iter().map(|(k, v)| row_size(k, v)).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_page_reads_back_what_was_encoded(
            rows in proptest::collection::btree_map(
                proptest::collection::vec(any::<u8>(), 0..12),
                proptest::collection::vec(any::<u8>(), 0..40),
                0..30,
            )
        ) {
            let rows: Vec<(&[u8], &[u8])> = rows.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
            let bytes = encode(&rows);
            prop_assert_eq!(bytes.len(), encoded_size(&rows));
            let page = Page::parse(&bytes).expect("a page");
            prop_assert_eq!(page.rows(), rows.clone());
            for (i, (key, _)) in rows.iter().enumerate() {
                prop_assert_eq!(page.search(key), Ok(i));
            }
        }

        #[test]
        fn any_bytes_parse_or_are_refused_without_panicking(
            bytes in proptest::collection::vec(any::<u8>(), 0..200)
        ) {
            if let Ok(page) = Page::parse(&bytes) {
                for i in 0..page.len() {
                    let _ = (page.key(i), page.value(i));
                }
            }
        }

        #[test]
        fn every_truncation_of_a_page_is_refused(
            rows in proptest::collection::btree_map(
                proptest::collection::vec(any::<u8>(), 1..6),
                proptest::collection::vec(any::<u8>(), 0..9),
                1..6,
            )
        ) {
            let rows: Vec<(&[u8], &[u8])> = rows.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
            let bytes = encode(&rows);
            for cut in 0..bytes.len() {
                prop_assert!(Page::parse(&bytes[..cut]).is_err());
            }
        }
    }

    #[test]
    fn split_keeps_every_row_in_order_and_near_the_target() {
        let keys: Vec<[u8; 2]> = (0u16..100).map(u16::to_be_bytes).collect();
        let value = [7u8; 30];
        let rows: Vec<(&[u8], &[u8])> = keys
            .iter()
            .map(|k| (k.as_slice(), value.as_slice()))
            .collect();
        let runs = split(&rows, 256);
        assert!(runs.len() > 1);
        assert!(runs.iter().all(|run| encoded_size(run) <= 256));
        assert_eq!(runs.concat(), rows);
        // A row larger than the target is a page of its own.
        let (big, small) = ([0u8; 1000], [0u8; 10]);
        let rows: Vec<(&[u8], &[u8])> = vec![(&[1], &big), (&[2], &small)];
        assert_eq!(split(&rows, 256).len(), 2);
    }
}
