//! `civicflow export-log` and `civicflow import-log`: the restore drill. The whole log out as
//! its exact stored records, and back into an empty store with the same chain head.
//!
//! The file format (`docs/design.md`, "Backup and restore") is binary: the records are bytes
//! (the format byte and bincode the chain hashes cover), which a text format would have to
//! re-encode (base64 or hex) and the reader decode again; length-prefixed frames stream in
//! constant memory and are read by a few lines of code in any language.
//!
//! ```text
//! file    = magic "civicflow-log\0" | version u8 (1) | head | entry* | end
//! head    = 0u8                                   (an empty log)
//!         | 1u8 | position u64 | hash [32]
//! entry   = 'R' | position u64 | hash [32] | length u32 | record bytes     (position order)
//!         | 'K' | key length u8 | key (UTF-8) | length u32 | value bytes  (after every 'R')
//! end     = 'E' | records u64 | keys u64                                  (nothing after it)
//! ```
//!
//! Integers are big-endian. Read models and the vault are not in the file.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use civicflow::core::{
    ChainHash, ChainHead, EventStore, IdempotencyKey, OpenError, Position, RestoreError,
    SledLogConfig, StoredIdempotency, StoredRecord,
};

use super::backend::StoreArgs;
use super::store::{close, emit, in_use, OFFLINE_LOG_CACHE_BYTES};

/// The first bytes of an export file.
const MAGIC: &[u8; 14] = b"civicflow-log\0";
/// The version of the layout after the magic.
const VERSION: u8 = 1;
const TAG_RECORD: u8 = b'R';
const TAG_KEY: u8 = b'K';
const TAG_END: u8 = b'E';
/// No stored record or idempotency value comes near this; a larger length is damage.
const VALUE_MAX: u32 = 1024 * 1024;
/// Records read from the log per page while exporting.
const PAGE: usize = 1024;

macro_rules! out {
    ($($arg:tt)*) => {
        emit(format_args!($($arg)*))?
    };
}

fn progress(len: u64, verb: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
        "{verb} [{{wide_bar}}] {{pos}}/{{len}} events ({{eta}} left)"
    )) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

const NOT_INCLUDED: &str = "not in the log, so not in the export: the read models (after an import, run `civicflow rebuild --data DIR`) and the vault with the personal-data keys (DIR/vault) and the master key (DIR/master.key), which are backed up separately";

// ---------------------------------------------------------------------------------------------
// export-log

/// `civicflow export-log`: the whole log of a stopped store to `out`, through a temporary
/// file beside it.
///
/// # Errors
/// No store, a store in use, a read failure, a file that cannot be written.
pub fn export_log(store: &StoreArgs, out: &Path) -> Result<ExitCode, String> {
    let log = store.open_log()?;
    let result = write_export(&log, out);
    close(log)?;
    let (head, records, keys, seconds) = result?;
    match head {
        Some(head) => out!(
            "exported the log of {}: {records} events and {keys} idempotency records to {} in {seconds:.1} s; head position {} hash {}",
            store.describe(),
            out.display(),
            head.position,
            head.hash
        ),
        None => out!(
            "exported the log of {}: empty, to {}",
            store.describe(),
            out.display()
        ),
    }
    out!("{NOT_INCLUDED}");
    Ok(ExitCode::SUCCESS)
}

fn temporary_beside(path: &Path, what: &str) -> Result<PathBuf, String> {
    let file_name = path
        .file_name()
        .ok_or_else(|| format!("{what} {} is not a file name", path.display()))?;
    let mut name = std::ffi::OsString::from(".");
    name.push(file_name);
    name.push(".partial");
    Ok(path.with_file_name(name))
}

fn write_export(
    log: &dyn EventStore,
    out: &Path,
) -> Result<(Option<ChainHead>, u64, u64, f64), String> {
    let started = Instant::now();
    let temporary = temporary_beside(out, "--out")?;
    let failed = |e: std::io::Error| {
        format!(
            "cannot write {}: {e} (choose another --out FILE)",
            out.display()
        )
    };
    let file = File::create(&temporary).map_err(failed)?;
    let written = (|| {
        let mut writer = BufWriter::with_capacity(1 << 20, file);
        let head = log.head();
        writer.write_all(MAGIC).map_err(failed)?;
        writer.write_all(&[VERSION]).map_err(failed)?;
        match head {
            None => writer.write_all(&[0]).map_err(failed)?,
            Some(head) => {
                writer.write_all(&[1]).map_err(failed)?;
                writer
                    .write_all(&head.position.get().to_be_bytes())
                    .map_err(failed)?;
                writer.write_all(head.hash.as_bytes()).map_err(failed)?;
            }
        }
        let bar = progress(head.map_or(0, |h| h.position.get()), "exporting");
        let mut records = 0u64;
        let mut from = Position::FIRST;
        loop {
            let page = log.stored_records(from, PAGE).map_err(|e| {
                format!("cannot read the log: {e} (check it with `civicflow verify`)")
            })?;
            let Some(last) = page.last() else { break };
            from = last.position.next();
            for record in &page {
                writer.write_all(&[TAG_RECORD]).map_err(failed)?;
                writer
                    .write_all(&record.position.get().to_be_bytes())
                    .map_err(failed)?;
                writer.write_all(record.hash.as_bytes()).map_err(failed)?;
                write_value(&mut writer, &record.bytes).map_err(failed)?;
            }
            records += page.len() as u64;
            bar.set_position(records);
        }
        bar.finish_and_clear();
        let mut keys = 0u64;
        let mut after: Option<IdempotencyKey> = None;
        loop {
            let page = log
                .stored_idempotency_records(after.as_ref(), PAGE)
                .map_err(|e| format!("cannot read the idempotency records: {e}"))?;
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            for record in &page {
                let key = record.key.as_str().as_bytes();
                let key_len = u8::try_from(key.len())
                    .map_err(|_| format!("idempotency key {} is too long", record.key))?;
                writer.write_all(&[TAG_KEY, key_len]).map_err(failed)?;
                writer.write_all(key).map_err(failed)?;
                write_value(&mut writer, &record.bytes).map_err(failed)?;
            }
            keys += page.len() as u64;
        }
        writer.write_all(&[TAG_END]).map_err(failed)?;
        writer.write_all(&records.to_be_bytes()).map_err(failed)?;
        writer.write_all(&keys.to_be_bytes()).map_err(failed)?;
        let file = writer.into_inner().map_err(|e| failed(e.into_error()))?;
        file.sync_all().map_err(failed)?;
        Ok((head, records, keys))
    })();
    let (head, records, keys) = match written {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&temporary);
            return Err(e);
        }
    };
    std::fs::rename(&temporary, out).map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        failed(e)
    })?;
    Ok((head, records, keys, started.elapsed().as_secs_f64()))
}

fn write_value(writer: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
    writer.write_all(&len.to_be_bytes())?;
    writer.write_all(bytes)
}

// ---------------------------------------------------------------------------------------------
// import-log

/// `civicflow import-log`: an export into the empty store at `data`, built in a temporary
/// directory beside the log and moved into place only once every record checked out.
///
/// # Errors
/// A store that is not empty or in use, a file that is not an export, a record whose hash
/// does not hold (naming its position), a head that differs from the export's.
pub fn import_log(store: &StoreArgs, input: &Path) -> Result<ExitCode, String> {
    if store.shared().is_some() {
        return import_log_shared(store, input);
    }
    let data = store.data();
    if data.join("db").exists() {
        return Err(format!(
            "{} holds a log directly (a bare log, not a store): import-log only fills an empty store; choose a new --data directory",
            data.display()
        ));
    }
    let target = data.join("log");
    let empty_log_exists = if target.join("db").exists() {
        let log = store.open_log()?;
        let empty = log.begin_restore().map(drop);
        close(log)?;
        match empty {
            Ok(()) => true,
            Err(RestoreError::NotEmpty { what }) => {
                return Err(format!(
                    "the store at {} is not empty ({what}): import-log only fills an empty store; choose a new --data directory",
                    data.display()
                ))
            }
            Err(e) => return Err(format!("cannot import into {}: {e}", data.display())),
        }
    } else if target.exists() {
        return Err(format!(
            "{} exists and is not a log: import-log only fills an empty store; choose a new --data directory",
            target.display()
        ));
    } else {
        false
    };
    let file = File::open(input).map_err(|e| {
        format!(
            "cannot read {}: {e} (give the file `civicflow export-log` wrote)",
            input.display()
        )
    })?;
    let created = !data.exists();
    // Owner-only, as the store keeps it (case titles and descriptions are personal details).
    civicflow::core::engine::Storage::create_data_dir(data)
        .map_err(|e| format!("cannot create {}: {e}", data.display()))?;
    let temporary = data.join(".log-import.partial");
    if temporary.exists() {
        // What an interrupted import left: never a store anybody uses.
        std::fs::remove_dir_all(&temporary)
            .map_err(|e| format!("cannot remove {}: {e}", temporary.display()))?;
    }
    let started = Instant::now();
    let imported = import_into(&temporary, input, BufReader::with_capacity(1 << 20, file));
    let (head, records, keys) = match imported {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&temporary);
            if created {
                // Only if still empty: never anything but what this import made.
                let _ = std::fs::remove_dir(data);
            }
            return Err(format!(
                "cannot import {}: {e} (nothing was written to {})",
                input.display(),
                data.display()
            ));
        }
    };
    let moved = (|| {
        if empty_log_exists {
            std::fs::remove_dir_all(&target)?;
        }
        std::fs::rename(&temporary, &target)?;
        File::open(data)?.sync_all()
    })();
    if let Err(e) = moved {
        let _ = std::fs::remove_dir_all(&temporary);
        return Err(format!(
            "cannot move the imported log into {}: {e}",
            target.display()
        ));
    }
    report_import(
        input,
        &target.display().to_string(),
        head,
        (records, keys),
        started,
    )
}

/// `import-log` into a shared store: the restore fills the database's empty log in one
/// transaction, so an export that does not check out leaves it empty, as it was.
fn import_log_shared(store: &StoreArgs, input: &Path) -> Result<ExitCode, String> {
    let file = File::open(input).map_err(|e| {
        format!(
            "cannot read {}: {e} (give the file `civicflow export-log` wrote)",
            input.display()
        )
    })?;
    let log = store.open_log()?;
    let started = Instant::now();
    // Closes the log when done.
    let imported = restore_from(&*log, input, BufReader::with_capacity(1 << 20, file));
    let (head, records, keys) = imported.map_err(|e| {
        format!(
            "cannot import {}: {e} (nothing was written to {})",
            input.display(),
            store.describe()
        )
    })?;
    report_import(input, &store.describe(), head, (records, keys), started)
}

/// What an import says when it is done.
fn report_import(
    input: &Path,
    into: &str,
    head: Option<ChainHead>,
    (records, keys): (u64, u64),
    started: Instant,
) -> Result<ExitCode, String> {
    match head {
        Some(head) => out!(
            "imported {records} events and {keys} idempotency records from {} into {into} in {:.1} s; every hash checked; head position {} hash {} (the export's head)",
            input.display(),
            started.elapsed().as_secs_f64(),
            head.position,
            head.hash
        ),
        None => out!("imported an empty log from {} into {into}", input.display()),
    }
    out!("{NOT_INCLUDED}");
    Ok(ExitCode::SUCCESS)
}

fn import_into(
    temporary: &Path,
    input: &Path,
    reader: impl Read,
) -> Result<(Option<ChainHead>, u64, u64), String> {
    // The offline tools' cache, not sled's default 256 MiB (see `store::open_log`).
    let log = SledLogConfig::new(temporary)
        .cache_capacity_bytes(OFFLINE_LOG_CACHE_BYTES)
        .open()
        .map_err(|e| match e {
            OpenError::Locked { .. } => in_use(temporary),
            other => format!("cannot create a log in {}: {other}", temporary.display()),
        })?;
    restore_from(&log, input, reader)
}

/// Restores the export read from `reader` into the empty `log`, checking every record, and
/// closes it.
fn restore_from(
    log: &dyn EventStore,
    input: &Path,
    mut reader: impl Read,
) -> Result<(Option<ChainHead>, u64, u64), String> {
    let mut file = ExportReader {
        reader: &mut reader,
        after: None,
    };
    let head = file.header(input)?;
    let restored = (|| {
        let mut restore = log.begin_restore().map_err(|e| e.to_string())?;
        let bar = progress(head.map_or(0, |h| h.position.get()), "importing");
        let (mut records, mut keys) = (0u64, 0u64);
        let end = loop {
            match file.entry()? {
                Entry::Record(record) => {
                    if keys > 0 {
                        return Err(format!(
                            "a record at position {} after the idempotency records: not an export of this format",
                            record.position
                        ));
                    }
                    restore.push_record(record).map_err(|e| e.to_string())?;
                    records += 1;
                    if records % 1024 == 0 {
                        bar.set_position(records);
                    }
                }
                Entry::Key(record) => {
                    restore
                        .push_idempotency(record)
                        .map_err(|e| e.to_string())?;
                    keys += 1;
                }
                Entry::End { records, keys } => break (records, keys),
            }
        };
        bar.finish_and_clear();
        if end != (records, keys) {
            return Err(format!(
                "the file says it holds {} events and {} idempotency records, but holds {records} and {keys}",
                end.0, end.1
            ));
        }
        file.expect_eof()?;
        let head = restore.finish(head).map_err(|e| e.to_string())?;
        Ok((head, records, keys))
    })();
    let closed = log
        .close()
        .map_err(|e| format!("closing the imported log failed: {e}"));
    let done = restored?;
    closed?;
    Ok(done)
}

enum Entry {
    Record(StoredRecord),
    Key(StoredIdempotency),
    End { records: u64, keys: u64 },
}

struct ExportReader<'a, R: Read> {
    reader: &'a mut R,
    /// The last record's position, to say where a damaged file stops making sense.
    after: Option<Position>,
}

impl<R: Read> ExportReader<'_, R> {
    fn where_(&self) -> String {
        self.after.map_or_else(
            || "at the start".to_owned(),
            |p| format!("after position {p}"),
        )
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut buffer = [0u8; N];
        self.reader.read_exact(&mut buffer).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                format!(
                    "the file ends {} before its end marker: the export is incomplete",
                    self.where_()
                )
            } else {
                format!("cannot read the file: {e}")
            }
        })?;
        Ok(buffer)
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.bytes()?))
    }

    fn value(&mut self, what: &str) -> Result<Vec<u8>, String> {
        let len = u32::from_be_bytes(self.bytes()?);
        if len > VALUE_MAX {
            return Err(format!(
                "{what} {} claims {len} bytes: the file is damaged",
                self.where_()
            ));
        }
        let mut buffer = vec![0u8; len as usize];
        self.reader.read_exact(&mut buffer).map_err(|e| {
            format!(
                "cannot read {what} {}: {e} (the export is incomplete)",
                self.where_()
            )
        })?;
        Ok(buffer)
    }

    fn header(&mut self, input: &Path) -> Result<Option<ChainHead>, String> {
        let not_export = || {
            format!(
                "{} is not a log export (written by `civicflow export-log`)",
                input.display()
            )
        };
        let magic: [u8; 14] = self.bytes().map_err(|_| not_export())?;
        if &magic != MAGIC {
            return Err(not_export());
        }
        let [version] = self.bytes()?;
        if version != VERSION {
            return Err(format!(
                "{} is a log export of format version {version}; this civicflow reads version {VERSION} (use the civicflow that wrote it, or a newer one)",
                input.display()
            ));
        }
        match self.bytes::<1>()? {
            [0] => Ok(None),
            [1] => {
                let position = Position::new(self.u64()?).ok_or_else(|| {
                    "the file's head is position 0: the file is damaged".to_owned()
                })?;
                let hash = ChainHash::from_bytes(self.bytes()?);
                Ok(Some(ChainHead { position, hash }))
            }
            [other] => Err(format!(
                "the file's head marker is {other}, not 0 or 1: the file is damaged"
            )),
        }
    }

    fn entry(&mut self) -> Result<Entry, String> {
        match self.bytes::<1>()? {
            [TAG_RECORD] => {
                let raw = self.u64()?;
                let position = Position::new(raw).ok_or_else(|| {
                    format!(
                        "a record {} at position 0: the file is damaged",
                        self.where_()
                    )
                })?;
                let hash = ChainHash::from_bytes(self.bytes()?);
                self.after = Some(position);
                let bytes = self.value("the record")?;
                Ok(Entry::Record(StoredRecord {
                    position,
                    hash,
                    bytes,
                }))
            }
            [TAG_KEY] => {
                let [len] = self.bytes()?;
                let mut key = vec![0u8; usize::from(len)];
                self.reader
                    .read_exact(&mut key)
                    .map_err(|e| format!("cannot read an idempotency key: {e}"))?;
                let key = String::from_utf8(key)
                    .ok()
                    .and_then(|k| IdempotencyKey::new(k).ok())
                    .ok_or_else(|| {
                        "an idempotency key is not valid: the file is damaged".to_owned()
                    })?;
                let bytes = self.value("the idempotency record")?;
                Ok(Entry::Key(StoredIdempotency { key, bytes }))
            }
            [TAG_END] => Ok(Entry::End {
                records: self.u64()?,
                keys: self.u64()?,
            }),
            [other] => Err(format!(
                "unknown entry tag {other} {}: the file is damaged",
                self.where_()
            )),
        }
    }

    fn expect_eof(&mut self) -> Result<(), String> {
        let mut extra = [0u8; 1];
        match self.reader.read(&mut extra) {
            Ok(0) => Ok(()),
            Ok(_) => Err("bytes after the end marker: the file is damaged".into()),
            Err(e) => Err(format!("cannot read the file: {e}")),
        }
    }
}
