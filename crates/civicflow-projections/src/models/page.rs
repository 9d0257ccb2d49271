//! Pages, shared by every model that lists: the opaque [`Cursor`], the [`Page`] a caller asks
//! for, the [`Paged`] result, and the scan that fills a page through a filter.
//!
//! A cursor is the key of the last row a page looked at. Lists are scans in key order and a
//! new row lands at its own key, so a page never shifts when rows are added between calls:
//! nothing is skipped or repeated. A cursor prints as lowercase hex, so it can travel in a
//! URL, and parses back ([`FromStr`]); a cursor that does not parse, or one from another list,
//! is a [`ProjectionError::Query`] on the `cursor` field.

use std::fmt;
use std::str::FromStr;

use crate::{ProjectionError, Row, Table, View};

/// The most items one page holds; a larger `limit` is read as this, 0 as 1.
pub const PAGE_MAX: usize = 1000;

/// The most rows one filtered list call looks at before it returns what it found with a
/// cursor to go on from (so that a filter matching little cannot make one call scan
/// everything).
pub const LOOK_AT_MAX: usize = 10_000;

/// The longest cursor accepted, in bytes of key.
const CURSOR_BYTES_MAX: usize = 512;

/// Where a page ended: the key of the last row looked at, opaque to callers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor(Vec<u8>);

impl Cursor {
    /// A cursor from the key bytes it holds.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The key, checked to be `len` bytes long and to start with `prefix` (the list it
    /// belongs to).
    pub(crate) fn key_in(&self, prefix: &[u8], len: usize) -> Result<&[u8], ProjectionError> {
        if self.0.len() != len || !self.0.starts_with(prefix) {
            return Err(ProjectionError::query(
                "cursor",
                "not a cursor of this list (pass back the `next` of one of its pages)",
            ));
        }
        Ok(&self.0)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// A cursor that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor: {0}")]
pub struct InvalidCursor(String);

impl From<InvalidCursor> for ProjectionError {
    fn from(e: InvalidCursor) -> Self {
        ProjectionError::query("cursor", e.0)
    }
}

impl FromStr for Cursor {
    type Err = InvalidCursor;

    fn from_str(text: &str) -> Result<Self, InvalidCursor> {
        if !text.len().is_multiple_of(2) || text.len() > 2 * CURSOR_BYTES_MAX {
            return Err(InvalidCursor(format!(
                "expected an even number of hex digits, at most {}",
                2 * CURSOR_BYTES_MAX
            )));
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        text.as_bytes()
            .chunks_exact(2)
            .enumerate()
            .map(|(i, pair)| match (nibble(pair[0]), nibble(pair[1])) {
                (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
                _ => Err(InvalidCursor(format!(
                    "not lowercase hex at character {}",
                    2 * i
                ))),
            })
            .collect::<Result<Vec<u8>, _>>()
            .map(Cursor)
    }
}

/// Which page to read: after a cursor (`None`: from the start), at most `limit` items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The cursor a previous page returned.
    pub after: Option<Cursor>,
    /// The most items to return (1 to [`PAGE_MAX`]; 0 is read as 1, more as [`PAGE_MAX`]).
    pub limit: usize,
}

impl Page {
    /// The first page.
    pub fn first(limit: usize) -> Self {
        Self { after: None, limit }
    }

    /// The page after `cursor`.
    pub fn after(cursor: Cursor, limit: usize) -> Self {
        Self {
            after: Some(cursor),
            limit,
        }
    }

    /// The limit, within 1 ..= [`PAGE_MAX`].
    pub fn clamped_limit(&self) -> usize {
        self.limit.clamp(1, PAGE_MAX)
    }
}

/// A page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Paged<T> {
    /// The items, in list order.
    pub items: Vec<T>,
    /// The cursor to ask for the next page; `None` when the list ended (nothing more now).
    pub next: Option<Cursor>,
}

impl<T> Paged<T> {
    /// A page of `items` read from keys `keys` (in list order) with `limit` asked for: a full
    /// page has a next cursor, the last key; a short one ends the list.
    pub(crate) fn from_keys<V>(items: Vec<T>, keys: &[(Vec<u8>, V)], limit: usize) -> Self {
        let next = (keys.len() == limit)
            .then(|| keys.last().map(|(key, _)| Cursor(key.clone())))
            .flatten();
        Self { items, next }
    }
}

/// What a filtered scan does with a row.
pub(crate) enum Step<T> {
    /// The key is past the end of the range: stop, with no cursor.
    Stop,
    /// Not wanted; go on.
    Skip,
    /// Wanted.
    Keep(T),
}

/// Scans `table` under `prefix` after `start` (exclusive), deciding for each row with
/// `step`, until `limit` rows are kept, the range or the prefix ends, or [`LOOK_AT_MAX`] rows
/// were looked at. `selective` says whether many rows may be skipped (it sizes the chunks).
pub(crate) fn scan_filtered<R: Row, T>(
    view: &View<'_>,
    table: &Table<R>,
    prefix: &[u8],
    start: Option<Vec<u8>>,
    (limit, selective): (usize, bool),
    mut step: impl FnMut(&[u8], R) -> Step<T>,
) -> Result<Paged<T>, ProjectionError> {
    let limit = limit.clamp(1, PAGE_MAX);
    let mut items = Vec::new();
    let mut after = start;
    let mut looked = 0usize;
    loop {
        let wanted = limit - items.len();
        // Without a filter exactly what is needed; with one, chunks big enough to be worth a
        // scan.
        let chunk = if selective {
            wanted.clamp(64, 1024)
        } else {
            wanted.min(1024)
        };
        let rows = view.scan(table, prefix, after.as_deref(), chunk)?;
        let exhausted = rows.len() < chunk;
        for (key, row) in rows {
            looked += 1;
            match step(&key, row) {
                Step::Stop => return Ok(Paged { items, next: None }),
                Step::Skip => {}
                Step::Keep(item) => {
                    items.push(item);
                    if items.len() == limit {
                        return Ok(Paged {
                            items,
                            next: Some(Cursor(key)),
                        });
                    }
                }
            }
            after = Some(key);
            if looked >= LOOK_AT_MAX {
                return Ok(Paged {
                    items,
                    next: after.map(Cursor),
                });
            }
        }
        if exhausted {
            return Ok(Paged { items, next: None });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_cursor_prints_and_parses_back(key in proptest::collection::vec(any::<u8>(), 0..=CURSOR_BYTES_MAX)) {
            let cursor = Cursor::from_bytes(key);
            prop_assert_eq!(cursor.to_string().parse::<Cursor>(), Ok(cursor));
        }

        #[test]
        fn any_text_parses_or_is_refused_without_panicking(text in "\\PC{0,40}") {
            let _ = text.parse::<Cursor>();
        }
    }

    #[test]
    fn malformed_cursors_are_refused_with_the_reason() {
        for (text, why) in [
            ("abc", "even number"),
            ("AB", "lowercase hex at character 0"),
            ("00zz", "lowercase hex at character 2"),
            ("é", "lowercase hex at character 0"),
        ] {
            let e = text.parse::<Cursor>().expect_err(text);
            assert!(e.to_string().contains(why), "{text}: {e}");
        }
        let too_long = "00".repeat(CURSOR_BYTES_MAX + 1);
        assert!(too_long.parse::<Cursor>().is_err());
        assert!(matches!(
            ProjectionError::from("x".parse::<Cursor>().expect_err("odd")),
            ProjectionError::Query {
                field: "cursor",
                ..
            }
        ));
    }

    #[test]
    fn a_limit_is_read_within_one_and_the_maximum() {
        assert_eq!(Page::first(0).clamped_limit(), 1);
        assert_eq!(Page::first(7).clamped_limit(), 7);
        assert_eq!(Page::first(usize::MAX).clamped_limit(), PAGE_MAX);
    }
}
