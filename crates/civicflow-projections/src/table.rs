//! Typed tables over the read-model store: what projections write in a transaction and what
//! readers read.
//!
//! A [`Table`] is a name and a row type. Inside a [`Tx`] a row is decoded once, changed in
//! memory as many times as a batch of events needs, and encoded once when the batch commits,
//! together with the checkpoint. A [`View`] reads committed rows.

use std::any::Any;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use civicflow_core::payload;
use civicflow_core::readmodel::{Namespace, ReadModelError, ReadModelStore};
use civicflow_core::Position;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A row type: what a table stores, encoded with the log's codec.
pub trait Row: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> Row for T {}

/// A table: a name (a few lowercase letters) and a row type.
#[derive(Debug)]
pub struct Table<R> {
    name: &'static str,
    row: PhantomData<fn() -> R>,
}

impl<R> Clone for Table<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Table<R> {}

impl<R: Row> Table<R> {
    /// A table named `name` (it must not contain the byte 0).
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            row: PhantomData,
        }
    }

    /// The table's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn key(&self, key: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.name.len() + 1 + key.len());
        full.extend_from_slice(self.name.as_bytes());
        full.push(0);
        full.extend_from_slice(key);
        full
    }

    fn prefix_len(&self) -> usize {
        self.name.len() + 1
    }
}

/// A projection could not apply an event, a query was malformed, or storage failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// The event is not what the projection can handle (its payload does not decode, a row
    /// it needs is missing, …).
    #[error("{0}")]
    Event(String),
    /// A query is malformed: a page cursor that does not parse or belongs to another list.
    /// The caller's input is at fault, not the read model.
    #[error("invalid {field}: {reason}")]
    Query {
        /// The query field at fault (`cursor`, …).
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A stored row does not decode.
    #[error("row {table}/{key} does not decode: {reason}")]
    Row {
        /// The table.
        table: &'static str,
        /// The key, printed.
        key: String,
        /// Why.
        reason: String,
    },
    /// The read-model store failed.
    #[error(transparent)]
    Store(#[from] ReadModelError),
}

impl ProjectionError {
    /// An error about the event being applied.
    pub fn event(reason: impl Into<String>) -> Self {
        Self::Event(reason.into())
    }

    /// An error about a query's `field`.
    pub fn query(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Query {
            field,
            reason: reason.into(),
        }
    }
}

fn printable(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

fn decode_row<R: Row>(table: &'static str, key: &[u8], bytes: &[u8]) -> Result<R, ProjectionError> {
    payload::decode::<R>(table, 1, bytes).map_err(|e| ProjectionError::Row {
        table,
        key: printable(key),
        reason: e.to_string(),
    })
}

/// One row in a transaction's memory.
struct Slot {
    value: Option<Box<dyn Any + Send>>,
    /// Changed since the last commit.
    dirty: bool,
    /// The store may hold the row (so removing it must be written).
    stored: bool,
    encode: Encode,
}

/// Appends a row's encoding to a buffer.
type Encode = fn(&(dyn Any + Send), &mut Vec<u8>) -> Result<(), String>;

fn encode_any<R: Row>(value: &(dyn Any + Send), out: &mut Vec<u8>) -> Result<(), String> {
    let row = value
        .downcast_ref::<R>()
        .ok_or("a row of another type under the same key")?;
    payload::encode_into(row, out).map_err(|e| e.to_string())
}

/// The rows a projection's events change, kept decoded in memory: read from the store once,
/// changed as many times as the events need, encoded and written once per commit, together
/// with the checkpoint.
///
/// A transaction outlives its commits: rows stay in memory as a cache (the projection is the
/// only writer of its namespace, so the cache is never stale) until the runner trims it. A
/// transaction that starts on an empty namespace knows every row there is, so a rebuild reads
/// nothing back from the store.
pub struct Tx<'a> {
    store: &'a dyn ReadModelStore,
    ns: &'a Namespace,
    /// Rows by table (a projection has a handful), each keyed by the row's own key: a row
    /// already in memory is found without building its full key.
    tables: Vec<TableRows>,
    /// Every row of the namespace is in memory (a missing key is a missing row).
    complete: bool,
}

struct TableRows {
    name: &'static str,
    rows: HashMap<Vec<u8>, Slot, foldhash::fast::RandomState>,
}

impl<'a> Tx<'a> {
    /// A transaction on `ns`. `empty`: the namespace holds no rows (it has no checkpoint).
    pub(crate) fn new(store: &'a dyn ReadModelStore, ns: &'a Namespace, empty: bool) -> Self {
        Self {
            store,
            ns,
            tables: Vec::new(),
            complete: empty,
        }
    }

    /// The rows of table `name`.
    fn rows(
        &mut self,
        name: &'static str,
    ) -> &mut HashMap<Vec<u8>, Slot, foldhash::fast::RandomState> {
        let index = match self.tables.iter().position(|t| t.name == name) {
            Some(index) => index,
            None => {
                self.tables.push(TableRows {
                    name,
                    rows: HashMap::default(),
                });
                self.tables.len() - 1
            }
        };
        &mut self.tables[index].rows
    }

    fn load<R: Row>(&mut self, table: &Table<R>, key: &[u8]) -> Result<&mut Slot, ProjectionError> {
        let (store, ns, complete) = (self.store, self.ns, self.complete);
        let rows = self.rows(table.name);
        if !rows.contains_key(key) {
            let value =
                if complete {
                    None
                } else {
                    match store.get(ns, &table.key(key))? {
                        Some(bytes) => Some(Box::new(decode_row::<R>(table.name, key, &bytes)?)
                            as Box<dyn Any + Send>),
                        None => None,
                    }
                };
            rows.insert(
                key.to_vec(),
                Slot {
                    stored: value.is_some(),
                    value,
                    dirty: false,
                    encode: encode_any::<R>,
                },
            );
        }
        Ok(rows.get_mut(key).expect("present: found or inserted above"))
    }

    /// A row, as the events applied so far have left it.
    ///
    /// # Errors
    /// [`ProjectionError`] when the stored row does not decode or storage fails.
    pub fn get<R: Row>(
        &mut self,
        table: &Table<R>,
        key: &[u8],
    ) -> Result<Option<&R>, ProjectionError> {
        let slot = self.load(table, key)?;
        Ok(slot.value.as_ref().and_then(|v| v.downcast_ref::<R>()))
    }

    /// A row to change in place (`None`: no such row; set it to create one). The row is
    /// written at the next commit.
    ///
    /// # Errors
    /// [`ProjectionError`] when the stored row does not decode or storage fails.
    pub fn entry<R: Row>(
        &mut self,
        table: &Table<R>,
        key: &[u8],
    ) -> Result<RowEntry<'_, R>, ProjectionError> {
        let slot = self.load(table, key)?;
        slot.dirty = true;
        slot.encode = encode_any::<R>;
        Ok(RowEntry {
            slot,
            row: PhantomData,
        })
    }

    /// Sets a row.
    ///
    /// # Errors
    /// [`ProjectionError`] when storage fails.
    pub fn put<R: Row>(
        &mut self,
        table: &Table<R>,
        key: &[u8],
        row: R,
    ) -> Result<(), ProjectionError> {
        self.set(table.name, key, Some(Box::new(row)), encode_any::<R>);
        Ok(())
    }

    /// Removes a row.
    pub fn delete<R: Row>(&mut self, table: &Table<R>, key: &[u8]) {
        self.set(table.name, key, None, encode_any::<R>);
    }

    fn set(
        &mut self,
        name: &'static str,
        key: &[u8],
        value: Option<Box<dyn Any + Send>>,
        encode: Encode,
    ) {
        let complete = self.complete;
        let rows = self.rows(name);
        if let Some(slot) = rows.get_mut(key) {
            slot.value = value;
            slot.dirty = true;
            slot.encode = encode;
        } else {
            rows.insert(
                key.to_vec(),
                Slot {
                    value,
                    dirty: true,
                    // Unknown: the store may hold it, unless it holds nothing this
                    // transaction has not seen.
                    stored: !complete,
                    encode,
                },
            );
        }
    }

    /// How many rows the transaction holds in memory.
    pub fn rows_in_memory(&self) -> usize {
        self.tables.iter().map(|t| t.rows.len()).sum()
    }

    /// Writes the changed rows and `checkpoint` in one atomic batch; the rows stay in memory,
    /// unchanged from now on. After an error the transaction is unusable (the runner drops
    /// it and starts again from the committed checkpoint).
    pub(crate) fn commit(&mut self, checkpoint: Position) -> Result<(), ProjectionError> {
        // Full keys and values, each written into one buffer; the changes borrow them. In key
        // order: tables by name (a name ends with the byte 0, which no name contains, so
        // tables do not interleave), rows by key.
        self.tables.sort_unstable_by(|a, b| a.name.cmp(b.name));
        let (mut keys, mut values) = (Vec::new(), Vec::new());
        let mut spans = Vec::new();
        for table in &mut self.tables {
            let mut dirty: Vec<(&Vec<u8>, &mut Slot)> = table
                .rows
                .iter_mut()
                .filter(|(_, slot)| slot.dirty)
                .collect();
            dirty.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for (key, slot) in dirty {
                slot.dirty = false;
                let stored = std::mem::replace(&mut slot.stored, slot.value.is_some());
                let value = match &slot.value {
                    Some(value) => {
                        let start = values.len();
                        (slot.encode)(value.as_ref(), &mut values).map_err(|reason| {
                            ProjectionError::Row {
                                table: table.name,
                                key: printable(key),
                                reason,
                            }
                        })?;
                        Some(start..values.len())
                    }
                    // A row created and removed since the last commit was never written.
                    None if stored => None,
                    None => continue,
                };
                let start = keys.len();
                keys.extend_from_slice(table.name.as_bytes());
                keys.push(0);
                keys.extend_from_slice(key);
                spans.push((start..keys.len(), value));
            }
        }
        let changes: Vec<(&[u8], Option<&[u8]>)> = spans
            .into_iter()
            .map(|(key, value)| {
                (
                    keys.get(key).unwrap_or_default(),
                    value.and_then(|value| values.get(value)),
                )
            })
            .collect();
        self.store.commit_sorted(self.ns, &changes, checkpoint)?;
        if self.complete {
            // Absent rows need no remembering when every row there is is in memory.
            for table in &mut self.tables {
                table.rows.retain(|_, slot| slot.value.is_some());
            }
        }
        Ok(())
    }

    /// Forgets every row if more than `max` are in memory (call it right after a commit:
    /// rows not yet written would be lost).
    pub(crate) fn trim(&mut self, max: usize) {
        if self.rows_in_memory() > max {
            for table in &mut self.tables {
                table.rows.retain(|_, slot| slot.dirty);
            }
            self.complete = false;
        }
    }
}

/// A row being changed in a transaction.
pub struct RowEntry<'t, R> {
    slot: &'t mut Slot,
    row: PhantomData<R>,
}

impl<'t, R: Row> RowEntry<'t, R> {
    /// The row, if it exists.
    pub fn get(&self) -> Option<&R> {
        self.slot.value.as_ref().and_then(|v| v.downcast_ref::<R>())
    }

    /// The row to change, if it exists.
    pub fn get_mut(&mut self) -> Option<&mut R> {
        self.slot.value.as_mut().and_then(|v| v.downcast_mut::<R>())
    }

    /// The row, created with `make` if it does not exist yet.
    pub fn or_insert_with(self, make: impl FnOnce() -> R) -> &'t mut R {
        let slot = self.slot;
        let missing = slot.value.as_ref().is_none_or(|v| !v.is::<R>());
        if missing {
            slot.value = Some(Box::new(make()));
        }
        slot.value
            .as_mut()
            .and_then(|v| v.downcast_mut::<R>())
            .expect("a row of this type is there now")
    }

    /// Replaces the row (or removes it with `None`).
    pub fn set(self, row: Option<R>) {
        self.slot.value = row.map(|r| Box::new(r) as Box<dyn Any + Send>);
    }
}

/// Committed rows of a projection, for readers.
#[derive(Clone)]
pub struct View<'a> {
    store: &'a dyn ReadModelStore,
    ns: Namespace,
    checkpoint: Option<Position>,
    /// Held while the view lives: the runner clears a retired version only once no view of
    /// it is left, so a reader never sees its rows vanish mid-read.
    _lease: Option<Arc<()>>,
}

impl std::fmt::Debug for View<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("ns", &self.ns)
            .field("checkpoint", &self.checkpoint)
            .finish()
    }
}

impl<'a> View<'a> {
    /// A view of one namespace of `store` as it is now (for tools and tests; services read
    /// through the runner, which picks the active version).
    ///
    /// # Errors
    /// [`ProjectionError`] when storage fails.
    pub fn of(store: &'a dyn ReadModelStore, ns: Namespace) -> Result<Self, ProjectionError> {
        let checkpoint = store.checkpoint(&ns)?;
        Ok(Self {
            store,
            ns,
            checkpoint,
            _lease: None,
        })
    }

    /// The view holding `lease` until it (and every clone) is dropped.
    pub(crate) fn leased(mut self, lease: Arc<()>) -> Self {
        self._lease = Some(lease);
        self
    }

    /// The namespace (projection name and version) this view reads.
    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    /// The log position the rows reflect (every event up to it, none after).
    pub fn checkpoint(&self) -> Option<Position> {
        self.checkpoint
    }

    /// A row.
    ///
    /// # Errors
    /// [`ProjectionError`] when the row does not decode or storage fails.
    pub fn get<R: Row>(&self, table: &Table<R>, key: &[u8]) -> Result<Option<R>, ProjectionError> {
        match self.store.get(&self.ns, &table.key(key))? {
            Some(bytes) => Ok(Some(decode_row::<R>(table.name, key, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Up to `limit` rows whose keys start with `prefix`, in key order, after the key `after`
    /// (stable pagination: pass the last key of the previous page).
    ///
    /// # Errors
    /// [`ProjectionError`] when a row does not decode or storage fails.
    pub fn scan<R: Row>(
        &self,
        table: &Table<R>,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, R)>, ProjectionError> {
        let after = after.map(|a| table.key(a));
        let rows = self
            .store
            .scan(&self.ns, &table.key(prefix), after.as_deref(), limit)?;
        decode_rows(table, rows)
    }

    /// Like [`View::scan`], backwards from the key `before`.
    ///
    /// # Errors
    /// [`ProjectionError`] when a row does not decode or storage fails.
    pub fn scan_back<R: Row>(
        &self,
        table: &Table<R>,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, R)>, ProjectionError> {
        let before = before.map(|b| table.key(b));
        let rows = self
            .store
            .scan_back(&self.ns, &table.key(prefix), before.as_deref(), limit)?;
        decode_rows(table, rows)
    }
}

/// Stored rows of `table` (full keys) as the table's keys and rows.
fn decode_rows<R: Row>(
    table: &Table<R>,
    rows: civicflow_core::readmodel::Rows,
) -> Result<Vec<(Vec<u8>, R)>, ProjectionError> {
    rows.into_iter()
        .map(|(mut key, bytes)| {
            key.drain(..table.prefix_len());
            let row = decode_row::<R>(table.name, &key, &bytes)?;
            Ok((key, row))
        })
        .collect()
}
