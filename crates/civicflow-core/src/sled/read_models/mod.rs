//! [`SledReadModels`]: the read-model store ([`ReadModelStore`]) on a sled database of its own.
//!
//! Rows are stored packed in pages of about 2 KiB, one sled value per page (see `page.rs`,
//! decision record 0006): sled's cost is per key, so a rebuild writes a page per dozen rows
//! instead of a key per row. Callers see rows; pages are this module's business. sled's flush
//! runs every second and on [`ReadModelStore::flush`] and close; commits are not fsynced.

mod compact;
mod keys;
mod page;

pub use compact::Compaction;

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::ids::Position;
use crate::readmodel::{Namespace, ReadModelError, ReadModelStore, Rows};
use crate::sled::support;
use page::Page;

/// The format marker of a read-model store.
const FORMAT_KEY: &[u8] = b"Fformat";
const FORMAT_NAME: &str = "civicflow-readmodels/3";
/// The second format (pages under raw keys, which sled's reverse iteration could loop on:
/// `keys.rs`): emptied and rebuilt like the first.
const FORMAT_RAW_KEYS: &str = "civicflow-readmodels/2";
/// The first format (a sled key per row): read models are derived, so a store in it is
/// emptied and rebuilt from the log rather than refused.
const FORMAT_ROWS: &str = "civicflow-readmodels/1";

/// The sled tree that holds everything.
const TREE: &str = "civicflow-readmodels";

/// A page is rewritten as pages of about this many bytes when it grows past twice as much.
const PAGE_TARGET: usize = 2048;

/// Keyspaces (first byte): data pages (keyed by the lowest key they may hold), checkpoints,
/// active versions.
const DATA: u8 = b'D';
const CHECKPOINT: u8 = b'C';
const ACTIVE: u8 = b'A';

fn storage(e: sled::Error) -> ReadModelError {
    ReadModelError::Storage(support::describe(&e))
}

/// The read-model store on sled.
pub struct SledReadModels {
    path: PathBuf,
    /// `None` only while being dropped.
    sled: Option<Sled>,
    /// The size pages are cut to (small in tests, to exercise splits).
    page_target: usize,
    /// One writer per namespace at a time: a commit reads pages, merges and rewrites them.
    writers: Mutex<HashMap<Namespace, Arc<Mutex<()>>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Sled {
    db: sled::Db,
    tree: sled::Tree,
}

impl std::fmt::Debug for SledReadModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledReadModels")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Drop for SledReadModels {
    fn drop(&mut self) {
        if let Some(Sled { db, tree }) = self.sled.take() {
            drop(tree);
            let _ = db.flush();
            support::close(db, &self.path);
        }
    }
}

impl SledReadModels {
    /// Opens (or creates) the store in `dir`.
    ///
    /// # Errors
    /// [`ReadModelError::Locked`] when it is open elsewhere, [`ReadModelError::UnsupportedFormat`]
    /// for a directory that holds something else, [`ReadModelError::Storage`] otherwise.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, ReadModelError> {
        Self::open_with_cache(dir, 128 * 1024 * 1024)
    }

    /// [`SledReadModels::open`] with sled's page cache set to `cache_bytes` (memory grows with
    /// the store up to it).
    ///
    /// # Errors
    /// As [`SledReadModels::open`].
    pub fn open_with_cache(
        dir: impl AsRef<Path>,
        cache_bytes: u64,
    ) -> Result<Self, ReadModelError> {
        let path = dir.as_ref().to_owned();
        compact::recover(&path)?;
        crate::private_fs::create_dir_all(&path)
            .map_err(|e| ReadModelError::Storage(format!("create {}: {e}", path.display())))?;
        let config = sled::Config::new()
            .path(&path)
            .cache_capacity(cache_bytes)
            .flush_every_ms(Some(1000));
        let db = match support::open(&config) {
            Ok(db) => db,
            Err(support::OpenFailure::Locked) => return Err(ReadModelError::Locked { path }),
            Err(support::OpenFailure::Failed(reason)) => {
                return Err(ReadModelError::Storage(reason))
            }
        };
        let tree = db.open_tree(TREE).map_err(storage)?;
        let keyed = keys::Keyed(&tree);
        match (
            keyed.get(FORMAT_KEY)?,
            tree.get(FORMAT_KEY).map_err(storage)?,
        ) {
            (Some(found), _) if found.as_ref() == FORMAT_NAME.as_bytes() => {}
            (None, Some(found))
                if found.as_ref() == FORMAT_ROWS.as_bytes()
                    || found.as_ref() == FORMAT_RAW_KEYS.as_bytes() =>
            {
                tree.clear().map_err(storage)?;
                keyed.insert(FORMAT_KEY, FORMAT_NAME.as_bytes())?;
            }
            (Some(found), _) | (None, Some(found)) => {
                return Err(ReadModelError::UnsupportedFormat {
                    path,
                    found: String::from_utf8_lossy(&found).into_owned(),
                })
            }
            (None, None) if tree.first().map_err(storage)?.is_some() => {
                return Err(ReadModelError::UnsupportedFormat {
                    path,
                    found: "(no format marker)".into(),
                })
            }
            (None, None) => keyed.insert(FORMAT_KEY, FORMAT_NAME.as_bytes())?,
        }
        Ok(Self {
            path,
            sled: Some(Sled { db, tree }),
            page_target: PAGE_TARGET,
            writers: Mutex::new(HashMap::new()),
        })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn tree(&self) -> &sled::Tree {
        &self
            .sled
            .as_ref()
            .expect("the store is open until it is dropped")
            .tree
    }

    /// The tree through the key encoding (`keys.rs`): every access but compaction's.
    fn keyed(&self) -> keys::Keyed<'_> {
        keys::Keyed(self.tree())
    }

    /// The page that holds `key` (the one with the greatest bound at or below it): its bound
    /// and bytes.
    fn page_at(
        &self,
        data: &[u8],
        key: &[u8],
    ) -> Result<Option<(Vec<u8>, sled::IVec)>, ReadModelError> {
        match self
            .keyed()
            .range(Bound::Included(data), Bound::Included(&page_key(data, key)))
            .next_back()
        {
            None => Ok(None),
            Some(item) => {
                let (full, bytes) = item?;
                Ok(Some((full[data.len()..].to_vec(), bytes)))
            }
        }
    }

    /// The bound of the first page after the one bounded by `bound`.
    fn page_after(&self, data: &[u8], bound: &[u8]) -> Result<Option<Vec<u8>>, ReadModelError> {
        let from = page_key(data, bound);
        match self
            .keyed()
            .range(Bound::Excluded(&from), Bound::Unbounded)
            .next()
        {
            None => Ok(None),
            Some(item) => {
                let (full, _) = item?;
                Ok(full.starts_with(data).then(|| full[data.len()..].to_vec()))
            }
        }
    }
}

impl ReadModelStore for SledReadModels {
    fn checkpoint(&self, ns: &Namespace) -> Result<Option<Position>, ReadModelError> {
        match self.keyed().get(&ns.prefix(CHECKPOINT))? {
            None => Ok(None),
            Some(bytes) => {
                let raw = <[u8; 8]>::try_from(bytes.as_ref()).map_err(|_| {
                    ReadModelError::Corrupted(format!(
                        "checkpoint of {ns} has {} bytes",
                        bytes.len()
                    ))
                })?;
                Ok(Position::new(u64::from_be_bytes(raw)))
            }
        }
    }

    fn commit_sorted(
        &self,
        ns: &Namespace,
        changes: &[(&[u8], Option<&[u8]>)],
        checkpoint: Position,
    ) -> Result<(), ReadModelError> {
        if let Some(i) = (1..changes.len()).find(|&i| changes[i - 1].0 >= changes[i].0) {
            return Err(ReadModelError::Unsorted { index: i });
        }
        let writer = lock(&self.writers).entry(ns.clone()).or_default().clone();
        let _writing = lock(&writer);
        let data = ns.prefix(DATA);
        let mut batch = keys::Batch::default();
        let mut rest = changes;
        // Page by page: the page holding the next changed key takes every change below the
        // next page's bound, is merged with them and rewritten (split if it grew, removed if
        // it emptied).
        while let Some(&(first, _)) = rest.first() {
            let found = self.page_at(&data, first)?;
            let bound = found.as_ref().map(|(bound, _)| bound.as_slice());
            let next = self.page_after(&data, bound.unwrap_or(&[]))?;
            let mine = next.as_deref().map_or(rest.len(), |next| {
                rest.partition_point(|(key, _)| *key < next)
            });
            let (now, later) = rest.split_at(mine);
            rest = later;
            let merged = match &found {
                Some((_, bytes)) => merge(&Page::parse(bytes)?.rows(), now),
                None => merge(&[], now),
            };
            if let Some(bound) = bound {
                batch.remove(&page_key(&data, bound));
            }
            let runs: Vec<&[(&[u8], &[u8])]> = if merged.is_empty() {
                Vec::new()
            } else if page::encoded_size(&merged) > 2 * self.page_target {
                page::split(&merged, self.page_target)
            } else {
                vec![&merged]
            };
            for (i, run) in runs.iter().enumerate() {
                // The first run keeps the page's bound (the lowest key it may hold); the
                // others start at their first key, inside this page's range.
                let lowest: &[u8] = match i {
                    0 => bound.unwrap_or(&[]),
                    _ => run.first().map_or(&[], |(key, _)| key),
                };
                batch.insert(&page_key(&data, lowest), &page::encode(run));
            }
        }
        batch.insert(&ns.prefix(CHECKPOINT), &checkpoint.get().to_be_bytes());
        self.keyed().apply(batch)
    }

    fn get(&self, ns: &Namespace, key: &[u8]) -> Result<Option<Vec<u8>>, ReadModelError> {
        let Some((_, bytes)) = self.page_at(&ns.prefix(DATA), key)? else {
            return Ok(None);
        };
        let page = Page::parse(&bytes)?;
        Ok(page.search(key).ok().map(|i| page.value(i).to_vec()))
    }

    fn scan(
        &self,
        ns: &Namespace,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Rows, ReadModelError> {
        let data = ns.prefix(DATA);
        // Rows from `start` on (`start` itself only when it is not `after`).
        let (start, inclusive) = match after {
            Some(after) if after >= prefix => (after, false),
            _ => (prefix, true),
        };
        let first_page = self
            .page_at(&data, start)?
            .map_or_else(|| data.clone(), |(bound, _)| page_key(&data, &bound));
        let mut rows: Rows = Vec::new();
        if limit == 0 {
            return Ok(rows);
        }
        for item in self
            .keyed()
            .range(Bound::Included(&first_page), Bound::Unbounded)
        {
            let (full, bytes) = item?;
            if !full.starts_with(&data) {
                break;
            }
            let page = Page::parse(&bytes)?;
            for i in page.lower_bound(start)..page.len() {
                let key = page.key(i);
                if (!inclusive && key == start)
                    || rows.last().is_some_and(|(last, _)| key <= last.as_slice())
                {
                    continue; // `after` itself, or seen in an older copy of a split page
                }
                if !key.starts_with(prefix) {
                    return Ok(rows); // past the prefix: keys only grow from here
                }
                rows.push((key.to_vec(), page.value(i).to_vec()));
                if rows.len() >= limit {
                    return Ok(rows);
                }
            }
        }
        Ok(rows)
    }

    fn scan_back(
        &self,
        ns: &Namespace,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Rows, ReadModelError> {
        let data = ns.prefix(DATA);
        // Rows below `end` (`None`: no bound).
        let end: Option<Vec<u8>> = match (before, prefix_end(prefix)) {
            (Some(before), Some(end)) => Some(before.min(&end).to_vec()),
            (Some(before), None) => Some(before.to_vec()),
            (None, end) => end,
        };
        let mut rows: Rows = Vec::new();
        if limit == 0 || end.as_deref().is_some_and(|end| end <= prefix) {
            return Ok(rows);
        }
        let upper = match &end {
            Some(end) => Some((true, page_key(&data, end))),
            None => prefix_end(&data).map(|end| (false, end)),
        };
        let upper = match &upper {
            Some((true, key)) => Bound::Included(key.as_slice()),
            Some((false, key)) => Bound::Excluded(key.as_slice()),
            None => Bound::Unbounded,
        };
        let pages = self.keyed().range(Bound::Included(&data), upper);
        for item in pages.rev() {
            let (full, bytes) = item?;
            if !full.starts_with(&data) {
                continue;
            }
            let page = Page::parse(&bytes)?;
            let top = end
                .as_deref()
                .map_or(page.len(), |end| page.lower_bound(end));
            for i in (0..top).rev() {
                let key = page.key(i);
                if rows.last().is_some_and(|(last, _)| key >= last.as_slice()) {
                    continue; // seen in a newer copy of a split page
                }
                if !key.starts_with(prefix) {
                    if key < prefix {
                        return Ok(rows); // before the prefix: keys only shrink from here
                    }
                    continue;
                }
                rows.push((key.to_vec(), page.value(i).to_vec()));
                if rows.len() >= limit {
                    return Ok(rows);
                }
            }
        }
        Ok(rows)
    }

    fn active(&self, name: &str) -> Result<Option<u32>, ReadModelError> {
        let key = active_key(name)?;
        match self.keyed().get(&key)? {
            None => Ok(None),
            Some(bytes) => <[u8; 4]>::try_from(bytes.as_ref())
                .map(|raw| Some(u32::from_be_bytes(raw)))
                .map_err(|_| ReadModelError::Corrupted(format!("active version of {name}"))),
        }
    }

    fn activate(&self, ns: &Namespace) -> Result<(), ReadModelError> {
        self.keyed()
            .insert(&active_key(ns.name())?, &ns.version().to_be_bytes())
    }

    fn clear(&self, ns: &Namespace) -> Result<(), ReadModelError> {
        let prefix = ns.prefix(DATA);
        loop {
            let mut batch = keys::Batch::default();
            let mut count = 0;
            for item in self.keyed().scan_prefix(&prefix).take(4096) {
                batch.remove(&item?.0);
                count += 1;
            }
            if count == 0 {
                break;
            }
            self.keyed().apply(batch)?;
        }
        self.keyed().remove(&ns.prefix(CHECKPOINT))?;
        Ok(())
    }

    fn namespaces(&self) -> Result<Vec<Namespace>, ReadModelError> {
        let mut out = Vec::new();
        for item in self.keyed().scan_prefix(&[CHECKPOINT]) {
            let (key, _) = item?;
            let rest = &key[1..];
            let zero = rest
                .iter()
                .position(|b| *b == 0)
                .ok_or_else(|| ReadModelError::Corrupted("checkpoint key".into()))?;
            let name = std::str::from_utf8(&rest[..zero])
                .map_err(|_| ReadModelError::Corrupted("checkpoint key".into()))?;
            let version = <[u8; 4]>::try_from(&rest[zero + 1..])
                .map(u32::from_be_bytes)
                .map_err(|_| ReadModelError::Corrupted("checkpoint key".into()))?;
            out.push(Namespace::new(name, version)?);
        }
        Ok(out)
    }

    fn flush(&self) -> Result<(), ReadModelError> {
        if let Some(sled) = &self.sled {
            sled.db.flush().map_err(storage)?;
        }
        Ok(())
    }
}

/// The sled key of the page of `data` bounded by `bound`.
fn page_key(data: &[u8], bound: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(data.len() + bound.len());
    key.extend_from_slice(data);
    key.extend_from_slice(bound);
    key
}

/// The first key after every key that starts with `prefix` (`None`: there is none, the
/// prefix is empty or all `0xff`).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Sorted rows with sorted changes applied (`None` removes).
fn merge<'a>(
    rows: &[(&'a [u8], &'a [u8])],
    changes: &[(&'a [u8], Option<&'a [u8]>)],
) -> Vec<(&'a [u8], &'a [u8])> {
    let mut out = Vec::with_capacity(rows.len() + changes.len());
    let mut rows = rows.iter().copied().peekable();
    for &(key, value) in changes {
        while let Some(&(row_key, _)) = rows.peek() {
            if row_key >= key {
                break;
            }
            out.extend(rows.next());
        }
        if rows.peek().is_some_and(|&(row_key, _)| row_key == key) {
            rows.next();
        }
        if let Some(value) = value {
            out.push((key, value));
        }
    }
    out.extend(rows);
    out
}

fn active_key(name: &str) -> Result<Vec<u8>, ReadModelError> {
    Namespace::new(name, 0)?;
    let mut key = vec![ACTIVE];
    key.extend_from_slice(name.as_bytes());
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readmodel::Changes;
    use std::collections::BTreeMap;

    fn scratch(name: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("civicflow-readmodel-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        path
    }

    #[test]
    fn changes_and_checkpoint_commit_together_and_scan_in_order() {
        let path = scratch("commit");
        let store = SledReadModels::open(&path).expect("open");
        let ns = Namespace::new("board", 1).expect("valid");
        assert_eq!(store.checkpoint(&ns).expect("read"), None);
        let mut changes = Changes::new();
        for i in [3u8, 1, 2] {
            changes.put(vec![b'r', i], vec![i; 3]);
        }
        store
            .commit(&ns, changes, Position::new(7).expect("nz"))
            .expect("commit");
        assert_eq!(store.checkpoint(&ns).expect("read"), Position::new(7));
        let rows = store.scan(&ns, b"r", None, 10).expect("scan");
        assert_eq!(
            rows.iter().map(|(k, _)| k[1]).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        let after = store.scan(&ns, b"r", Some(&[b'r', 1]), 10).expect("scan");
        assert_eq!(after.iter().map(|(k, _)| k[1]).collect::<Vec<_>>(), [2, 3]);
        let back = store
            .scan_back(&ns, b"r", Some(&[b'r', 3]), 10)
            .expect("scan");
        assert_eq!(back.iter().map(|(k, _)| k[1]).collect::<Vec<_>>(), [2, 1]);
        // Another version of the same name is another world.
        let v2 = Namespace::new("board", 2).expect("valid");
        assert!(store.scan(&v2, b"", None, 10).expect("scan").is_empty());
        store.activate(&ns).expect("activate");
        assert_eq!(store.active("board").expect("read"), Some(1));
        assert_eq!(store.namespaces().expect("list"), vec![ns.clone()]);
        store.clear(&ns).expect("clear");
        assert!(store.scan(&ns, b"", None, 10).expect("scan").is_empty());
        assert_eq!(store.checkpoint(&ns).expect("read"), None);
        drop(store);
        let _ = std::fs::remove_dir_all(&path);
    }

    /// One step of the model test: a commit of puts (`Some`) and deletes (`None`).
    type Step = Vec<(Vec<u8>, Option<Vec<u8>>)>;

    fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
        // Few distinct bytes, so that prefixes, neighbours and re-writes are common.
        proptest::collection::vec(0u8..4, 0..5)
    }

    fn step_strategy() -> impl Strategy<Value = Step> {
        proptest::collection::vec(
            (
                key_strategy(),
                proptest::option::weighted(0.7, proptest::collection::vec(any::<u8>(), 0..24)),
            ),
            0..40,
        )
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        /// The paged store behaves as one sorted map, whatever the page size: gets, scans
        /// and backward scans with any prefix, cursor and limit.
        #[test]
        fn pages_behave_as_a_sorted_map(
            steps in proptest::collection::vec(step_strategy(), 1..8),
            page_target in 16usize..300,
            probes in proptest::collection::vec((key_strategy(), key_strategy(), 0usize..12), 12),
        ) {
            let path = scratch(&format!("model-{page_target}-{}", steps.len()));
            let mut store = SledReadModels::open(&path).expect("open");
            store.page_target = page_target;
            let ns = Namespace::new("model", 1).expect("valid");
            let other = Namespace::new("model", 2).expect("valid");
            let mut model = BTreeMap::new();
            let mut other_model = BTreeMap::new();
            for (i, step) in steps.iter().enumerate() {
                let mut changes = Changes::new();
                let mut noise = Changes::new();
                for (key, value) in step {
                    match value {
                        Some(value) => {
                            changes.put(key.clone(), value.clone());
                            noise.put(key.clone(), vec![0xee]);
                            other_model.insert(key.clone(), vec![0xee]);
                            model.insert(key.clone(), value.clone());
                        }
                        None => {
                            changes.delete(key.clone());
                            model.remove(key);
                        }
                    }
                }
                let at = Position::new(i as u64 + 1).expect("nz");
                store.commit(&ns, changes, at).expect("commit");
                // A neighbouring namespace's pages must never leak into this one.
                store.commit(&other, noise, at).expect("commit");
                prop_assert_eq!(store.checkpoint(&ns).expect("read"), Some(at));
            }
            let all: Rows = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(&store.scan(&ns, b"", None, usize::MAX).expect("scan"), &all);
            for (key, _, _) in &probes {
                prop_assert_eq!(store.get(&ns, key).expect("get"), model.get(key).cloned());
            }
            for (prefix, cursor, limit) in &probes {
                let forward: Rows = all
                    .iter()
                    .filter(|(k, _)| k.starts_with(prefix) && k > cursor)
                    .take(*limit)
                    .cloned()
                    .collect();
                prop_assert_eq!(
                    store.scan(&ns, prefix, Some(cursor), *limit).expect("scan"),
                    forward,
                    "scan {:?} after {:?}", prefix, cursor
                );
                let from_start: Rows = all
                    .iter()
                    .filter(|(k, _)| k.starts_with(prefix))
                    .take(*limit)
                    .cloned()
                    .collect();
                prop_assert_eq!(store.scan(&ns, prefix, None, *limit).expect("scan"), from_start);
                let backward: Rows = all
                    .iter()
                    .rev()
                    .filter(|(k, _)| k.starts_with(prefix) && k < cursor)
                    .take(*limit)
                    .cloned()
                    .collect();
                prop_assert_eq!(
                    store.scan_back(&ns, prefix, Some(cursor), *limit).expect("scan"),
                    backward,
                    "scan_back {:?} before {:?}", prefix, cursor
                );
                let from_end: Rows = all
                    .iter()
                    .rev()
                    .filter(|(k, _)| k.starts_with(prefix))
                    .take(*limit)
                    .cloned()
                    .collect();
                prop_assert_eq!(store.scan_back(&ns, prefix, None, *limit).expect("scan"), from_end);
            }
            store.clear(&ns).expect("clear");
            prop_assert!(store.scan(&ns, b"", None, 10).expect("scan").is_empty());
            let other_rows: Rows = other_model.into_iter().collect();
            prop_assert_eq!(store.scan(&other, b"", None, usize::MAX).expect("scan"), other_rows);
            drop(store);
            let _ = std::fs::remove_dir_all(&path);
        }
    }

    /// Readers scanning while pages split and merge under them see every row that stays, in
    /// order, none twice.
    #[test]
    fn scans_during_commits_skip_nothing_and_repeat_nothing() {
        let path = scratch("concurrent");
        let mut store = SledReadModels::open(&path).expect("open");
        store.page_target = 64;
        let store = Arc::new(store);
        let ns = Namespace::new("churn", 1).expect("valid");
        // Stable rows at even keys; the writer adds and removes odd keys around them.
        let stable: Vec<Vec<u8>> = (0u16..200)
            .map(|i| (i * 2).to_be_bytes().to_vec())
            .collect();
        let mut changes = Changes::new();
        for key in &stable {
            changes.put(key.clone(), vec![1; 8]);
        }
        store.commit(&ns, changes, Position::FIRST).expect("commit");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (store, ns, stop) = (store.clone(), ns.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut round = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    round += 1;
                    let mut changes = Changes::new();
                    for i in 0u16..200 {
                        let key = (i * 2 + 1).to_be_bytes().to_vec();
                        if (u64::from(i) + round).is_multiple_of(3) {
                            changes.put(key, vec![2; usize::from(i % 40)]);
                        } else {
                            changes.delete(key);
                        }
                    }
                    store
                        .commit(&ns, changes, Position::new(round + 1).expect("nz"))
                        .expect("commit");
                }
            })
        };
        for _ in 0..300 {
            let forward = store.scan(&ns, b"", None, usize::MAX).expect("scan");
            assert!(
                forward.windows(2).all(|w| w[0].0 < w[1].0),
                "in order, none twice"
            );
            let keys: std::collections::BTreeSet<_> = forward.into_iter().map(|(k, _)| k).collect();
            assert!(
                stable.iter().all(|k| keys.contains(k)),
                "no stable row skipped"
            );
            let backward = store.scan_back(&ns, b"", None, usize::MAX).expect("scan");
            assert!(
                backward.windows(2).all(|w| w[0].0 > w[1].0),
                "in order, none twice"
            );
            let keys: std::collections::BTreeSet<_> =
                backward.into_iter().map(|(k, _)| k).collect();
            assert!(
                stable.iter().all(|k| keys.contains(k)),
                "no stable row skipped"
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().expect("writer");
        drop(store);
        let _ = std::fs::remove_dir_all(&path);
    }

    /// Guards against a store of an older format (a key per row; pages under raw keys) being
    /// read as this one: it is emptied, to be rebuilt from the log.
    #[test]
    fn a_store_in_an_older_format_is_emptied_to_be_rebuilt() {
        for (i, format) in [FORMAT_ROWS, FORMAT_RAW_KEYS].into_iter().enumerate() {
            let path = scratch(&format!("format{}", i + 1));
            {
                let db = sled::open(&path).expect("sled");
                let tree = db.open_tree("civicflow-readmodels").expect("tree");
                tree.insert(FORMAT_KEY, format.as_bytes()).expect("insert");
                tree.insert(b"Dboard\x00\x00\x00\x00\x01row", b"old".as_slice())
                    .expect("insert");
                db.flush().expect("flush");
            }
            let store = SledReadModels::open(&path).expect("open");
            let ns = Namespace::new("board", 1).expect("valid");
            assert!(store.scan(&ns, b"", None, 10).expect("scan").is_empty());
            assert_eq!(store.tree().len(), 1, "only the new format marker");
            assert_eq!(
                store.keyed().get(FORMAT_KEY).expect("read").as_deref(),
                Some(FORMAT_NAME.as_bytes())
            );
            drop(store);
            let _ = std::fs::remove_dir_all(&path);
        }
    }

    #[test]
    fn changes_said_to_be_sorted_must_be() {
        let path = scratch("unsorted");
        let store = SledReadModels::open(&path).expect("open");
        let ns = Namespace::new("sorted", 1).expect("valid");
        let unsorted: Vec<(&[u8], Option<&[u8]>)> = vec![(b"b", Some(b"1")), (b"a", Some(b"2"))];
        assert!(matches!(
            store.commit_sorted(&ns, &unsorted, Position::FIRST),
            Err(ReadModelError::Unsorted { index: 1 })
        ));
        let twice: Vec<(&[u8], Option<&[u8]>)> = vec![(b"a", Some(b"1")), (b"a", None)];
        assert!(store.commit_sorted(&ns, &twice, Position::FIRST).is_err());
        assert_eq!(
            store.checkpoint(&ns).expect("read"),
            None,
            "nothing applied"
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&path);
    }

    #[test]
    fn names_are_checked() {
        assert!(Namespace::new("Case Board", 1).is_err());
        assert!(Namespace::new("", 1).is_err());
        assert!(Namespace::new("case_board", 1).is_ok());
    }
}
