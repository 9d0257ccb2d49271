//! Damaged files of a closed store: opening fails, or `verify` fails, or nothing changed.
//! Altered or lost data is never served as valid, and a panic inside sled never escapes.
//!
//! Guards against what a bad disk or a bad copy does to a stopped store's files (sled's `db`,
//! `conf` and `snap.*` files of the log, the vault, the read models, the master key file, the
//! deadline index's snapshot), below every API: bits flipped, bytes set or zeroed, files cut
//! short or missing. core's `sled::corruption` (`crates/civicflow-core/tests/core/`) damages values *through*
//! sled; this file damages the files sled reads. What it found: sled recovers a damaged log
//! by cutting it off at the first bad checksum, which silently dropped the newest events of a
//! closed log (the shorter chain still verified) and the people stored last in the vault (they
//! read as never stored). A clean close now leaves `closed-head` (the log) and `clean-close`
//! (the vault), and opening refuses files that hold less (`docs/design.md`, "sled's limits").
//!
//! Each round copies one Tonghui demo store, damages one to three files, and judges what the
//! log (and every other component hit) serves; a third of the rounds also run the real
//! `civicflow verify`. The seed is printed first; a failure names it and the round. A control
//! first proves the judge flags a silently shortened log. Run longer, replay, or see what the
//! log's check prevents:
//!
//! ```text
//! CIVICFLOW_DAMAGE_ROUNDS=500 cargo test --test suite sled::damaged_files -- --nocapture
//! CIVICFLOW_DAMAGE_SEED=1234 cargo test --test suite sled::damaged_files -- --nocapture
//! CIVICFLOW_DAMAGE_WITHOUT_CLOSED_HEAD=1 CIVICFLOW_DAMAGE_ROUNDS=200 cargo test --test suite sled::damaged_files
//! ```

use crate::common;

use civicflow::core::{EventStore as _, SledReadModels};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use civicflow::core::engine::{Engine, EngineConfig};
use civicflow::core::readmodel::{Namespace, ReadModelStore};
use civicflow::core::vault::{ContactDetails, MasterKey, PersonData, PersonId, Vault};
use civicflow::core::ManualClock;
use civicflow::core::{
    ChainHead, Position, RecordedEvent, SledLog, StoredRecord, StreamId, Timestamp, Version,
};

use crate::common::cli::{civicflow_status, path};
use crate::common::TempDir;

/// Rounds when `CIVICFLOW_DAMAGE_ROUNDS` is not set: a few seconds in a debug build.
const DEFAULT_ROUNDS: u64 = 48;

/// A round that takes longer than this is a hang (sled looping on damaged files).
const ROUND_TIMEOUT: Duration = Duration::from_secs(60);

/// Every how many rounds the real `civicflow verify` runs on the damaged store too.
const BINARY_EVERY: u64 = 3;

// ---------------------------------------------------------------------------------------------
// A small deterministic generator, so a seed replays a run exactly.

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// SplitMix64.
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a whole number")),
    )
}

// ---------------------------------------------------------------------------------------------
// The store, built once, and what it held when it was closed.

/// A stopped store with the Tonghui demo, three people in the vault, and rebuilt read models.
struct Built {
    _dir: TempDir,
    store: PathBuf,
    original: Original,
}

/// What the closed store held: the judge compares every damaged copy with this.
struct Original {
    records: Vec<StoredRecord>,
    events: Vec<RecordedEvent>,
    head: ChainHead,
    streams: BTreeMap<StreamId, Vec<RecordedEvent>>,
    last_recorded_at: Timestamp,
    people: Vec<(PersonId, ContactDetails)>,
    read_models: ReadModelContents,
}

fn build_store() -> Built {
    let dir = TempDir::new("damaged-files");
    let store = dir.path().join("store");
    common::cli::demo_store(&store);
    let key = MasterKey::load_or_create(store.join("master.key")).expect("key");

    let vault = Vault::open(store.join("vault"), key).expect("vault");
    let people: Vec<(PersonId, ContactDetails)> = (0..3)
        .map(|i| {
            let person = PersonId::new_v7(Timestamp::from_unix_seconds(1_700_000_000 + i));
            let details = ContactDetails::new(
                Some(&format!("Resident {i}")),
                Some(&format!("1380013800{i}")),
                Some(&format!("resident{i}@example.org")),
                Some(&format!("{i} Tonghui Road")),
            )
            .expect("valid contact");
            vault.store(person, &details).expect("store");
            (person, details)
        })
        .collect();
    vault.close().expect("close the vault");

    let (code, _, stderr) = civicflow_status(&["rebuild", "--data", path(&store)]);
    assert_eq!(code, Some(0), "civicflow rebuild: {stderr}");

    let log = SledLog::open(store.join("log")).expect("reopen the log");
    let records = log
        .stored_records(Position::FIRST, usize::MAX)
        .expect("records");
    let events = log.read_all(Position::FIRST, usize::MAX).expect("events");
    let head = log.head().expect("the demo wrote events");
    let mut streams: BTreeMap<StreamId, Vec<RecordedEvent>> = BTreeMap::new();
    for event in &events {
        streams
            .entry(event.stream.clone())
            .or_default()
            .push(event.clone());
    }
    let last_recorded_at = events.last().expect("events").recorded_at;
    assert!(log.verify().expect("verify").is_intact());
    log.close().expect("close");

    let read_models =
        read_model_contents(&store.join("readmodels")).expect("the rebuilt read models read back");
    assert!(!read_models.is_empty(), "rebuild wrote read models");

    Built {
        _dir: dir,
        store,
        original: Original {
            records,
            events,
            head,
            streams,
            last_recorded_at,
            people,
            read_models,
        },
    }
}

type ReadModelContents = BTreeMap<Namespace, (Option<Position>, Vec<(Vec<u8>, Vec<u8>)>)>;

fn read_model_contents(dir: &Path) -> Result<ReadModelContents, String> {
    let store = SledReadModels::open(dir).map_err(|e| format!("open: {e}"))?;
    let mut out = BTreeMap::new();
    for ns in store.namespaces().map_err(|e| format!("namespaces: {e}"))? {
        let checkpoint = store
            .checkpoint(&ns)
            .map_err(|e| format!("checkpoint of {ns:?}: {e}"))?;
        let rows = store
            .scan(&ns, &[], None, usize::MAX)
            .map_err(|e| format!("rows of {ns:?}: {e}"))?;
        out.insert(ns, (checkpoint, rows));
    }
    Ok(out)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("read the store") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

/// Every file under `dir`, relative to it, in a stable order.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).expect("under root").to_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// Damage: what a bad disk or a bad copy does to one file.

#[derive(Debug, Clone)]
enum Damage {
    /// Bits flipped at these offsets (a bad read or a bad cable).
    FlipBits(Vec<(u64, u8)>),
    /// A run of bytes set to one value (a misdirected write).
    Set { at: u64, len: u64, value: u8 },
    /// A sector or a page reads as zeros (a lost write).
    Zero { at: u64, len: u64 },
    /// The file cut short here (a copy that stopped).
    Truncate { at: u64 },
    /// The file is missing (a copy that skipped it).
    Remove,
}

#[derive(Debug, Clone)]
struct Hit {
    file: PathBuf,
    damage: Damage,
}

/// What one round does to a copy: one hit, sometimes two or three (a bad disk rarely stops
/// at one sector; a missing snapshot makes sled replay its whole log, past other damage).
#[derive(Debug, Clone)]
struct Round(Vec<Hit>);

impl Round {
    fn pick(rng: &mut Rng, store: &Path, files: &[PathBuf]) -> Self {
        let hits = match rng.below(10) {
            0..=7 => 1,
            8 => 2,
            _ => 3,
        };
        Self((0..hits).map(|_| pick_hit(rng, store, files)).collect())
    }

    fn apply(&self, store: &Path) {
        for hit in &self.0 {
            hit.apply(store);
        }
    }

    fn touches_log(&self) -> bool {
        self.0.iter().any(|hit| hit.file.starts_with("log"))
    }
}

impl Hit {
    fn apply(&self, store: &Path) {
        let path = store.join(&self.file);
        if let Damage::Remove = self.damage {
            let _ = std::fs::remove_file(&path);
            return;
        }
        let Ok(mut bytes) = std::fs::read(&path) else {
            return; // removed by an earlier hit of the same round
        };
        let len = bytes.len();
        let at = |offset: u64| usize::try_from(offset).expect("fits").min(len);
        match &self.damage {
            Damage::FlipBits(flips) => {
                for (offset, mask) in flips {
                    if let Some(byte) = bytes.get_mut(at(*offset)) {
                        *byte ^= mask;
                    }
                }
            }
            Damage::Set {
                at: start,
                len: n,
                value,
            } => {
                let end = at(start + n);
                bytes[at(*start)..end].fill(*value);
            }
            Damage::Zero { at: start, len: n } => {
                let end = at(start + n);
                bytes[at(*start)..end].fill(0);
            }
            Damage::Truncate { at: cut } => bytes.truncate(at(*cut)),
            Damage::Remove => unreachable!("handled above"),
        }
        std::fs::write(&path, bytes).expect("write the damaged file");
    }
}

/// The part of a file that holds something: sled's `db` is sparse past its last write and
/// zeroed (or filled) at the end of a recovered segment, and damage there changes nothing.
fn live_length(bytes: &[u8]) -> u64 {
    let filler = *bytes.last().unwrap_or(&0);
    let end = bytes
        .iter()
        .rposition(|b| *b != filler)
        .map_or(0, |p| p + 1);
    end as u64
}

fn pick_hit(rng: &mut Rng, store: &Path, files: &[PathBuf]) -> Hit {
    let log_db = PathBuf::from("log/db");
    let others_in_log: Vec<&PathBuf> = files
        .iter()
        .filter(|f| f.starts_with("log") && **f != log_db)
        .collect();
    let elsewhere: Vec<&PathBuf> = files.iter().filter(|f| !f.starts_with("log")).collect();
    let roll = rng.below(100);
    let file = if roll < 60 || others_in_log.is_empty() && roll < 75 {
        log_db.clone()
    } else if roll < 75 {
        others_in_log[rng.below(others_in_log.len() as u64) as usize].clone()
    } else {
        elsewhere[rng.below(elsewhere.len() as u64) as usize].clone()
    };
    let bytes = std::fs::read(store.join(&file)).expect("read");
    let len = bytes.len() as u64;
    let live = live_length(&bytes).max(1);
    // Mostly where the data is, and then mostly near its end, where the newest writes are
    // (past sled's last snapshot: the part it replays, and cuts short at a bad checksum).
    let offset = |rng: &mut Rng| -> u64 {
        match rng.below(10) {
            0 => rng.below(len.max(1)),
            1 | 2 => live.saturating_sub(1 + rng.below(live.min(512))),
            3..=5 => live.saturating_sub(1 + rng.below(live.min(64 * 1024))),
            _ => rng.below(live),
        }
    };
    // Without its snapshot, sled replays its whole log, so damage anywhere in `db` is met.
    let is_snapshot = file
        .file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with("snap."));
    if is_snapshot && rng.below(3) == 0 {
        return Hit {
            file,
            damage: Damage::Remove,
        };
    }
    let damage = match rng.below(10) {
        0..=4 => {
            let base = offset(rng);
            let flips = (0..1 + rng.below(4))
                .map(|i| {
                    let spread = if i == 0 { 0 } else { rng.below(64) };
                    (base + spread, 1u8 << rng.below(8))
                })
                .collect();
            Damage::FlipBits(flips)
        }
        5 | 6 => Damage::Set {
            at: offset(rng),
            len: 1 + rng.below(16),
            value: rng.below(256) as u8,
        },
        7 if rng.below(4) == 0 => Damage::Remove,
        7 => {
            let sector = 512 * (1 + rng.below(8));
            Damage::Zero {
                at: offset(rng) / sector * sector,
                len: sector,
            }
        }
        _ => Damage::Truncate { at: offset(rng) },
    };
    Hit { file, damage }
}

// ---------------------------------------------------------------------------------------------
// The judge.

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    /// Opening failed with an error that says what is wrong.
    OpenRefused,
    /// It opened, and `verify` (or a read) reported the damage.
    VerifyRefused,
    /// It opened and serves exactly what was there: the damage hit nothing that mattered.
    Unchanged,
    /// Altered or lost data served as valid, or a panic out of our API. The test fails.
    Violation(String),
}

impl Verdict {
    fn label(&self) -> &'static str {
        match self {
            Verdict::OpenRefused => "open refused",
            Verdict::VerifyRefused => "verify/read refused",
            Verdict::Unchanged => "unchanged",
            Verdict::Violation(_) => "VIOLATION",
        }
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

fn describe(head: ChainHead) -> String {
    format!("position {} hash {}", head.position, head.hash)
}

/// An error message must say what is wrong; an empty or bare one fails the round.
fn wordy(message: &str) -> bool {
    message.split_whitespace().count() >= 4
}

/// Opens the log in `dir` and compares everything it serves with `original`.
fn judge_log(dir: &Path, original: &Original) -> Verdict {
    let opened = catch_unwind(AssertUnwindSafe(|| SledLog::open(dir)));
    let log = match opened {
        Err(panic) => {
            return Verdict::Violation(format!("SledLog::open panicked: {}", panic_text(&panic)))
        }
        Ok(Err(error)) => {
            let message = error.to_string();
            return if wordy(&message) {
                Verdict::OpenRefused
            } else {
                Verdict::Violation(format!("opening failed without words: {message:?}"))
            };
        }
        Ok(Ok(log)) => log,
    };
    let judged = catch_unwind(AssertUnwindSafe(|| judge_open_log(&log, original)));
    let closed = catch_unwind(AssertUnwindSafe(move || log.close()));
    match (judged, closed) {
        (Err(panic), _) => Verdict::Violation(format!("a read panicked: {}", panic_text(&panic))),
        (Ok(_), Err(panic)) => {
            Verdict::Violation(format!("closing panicked: {}", panic_text(&panic)))
        }
        (Ok(verdict), Ok(_)) => verdict,
    }
}

fn judge_open_log(log: &SledLog, original: &Original) -> Verdict {
    let head = log.head();
    let report = match log.verify() {
        Ok(report) => report,
        Err(error) => {
            let message = error.to_string();
            return if wordy(&message) {
                Verdict::VerifyRefused
            } else {
                Verdict::Violation(format!("verify failed without words: {message:?}"))
            };
        }
    };
    // Whatever verify called good must be the original, damaged or not elsewhere.
    let vouched = report.last_good.map_or(0, |good| good.position.get());
    let records = log.stored_records(Position::FIRST, usize::MAX);
    if let Ok(records) = &records {
        for record in records {
            let index = usize::try_from(record.position.get() - 1).expect("fits");
            let same = original.records.get(index) == Some(record);
            if !same && record.position.get() <= vouched {
                return Verdict::Violation(format!(
                    "verify vouches for position {} up to {vouched}, but its record differs from the original",
                    record.position
                ));
            }
        }
    }
    if let Some(broken) = report.first_break {
        let message = broken.to_string();
        return if wordy(&message) && message.contains(&broken.position.to_string()) {
            Verdict::VerifyRefused
        } else {
            Verdict::Violation(format!("verify's break does not say where: {message:?}"))
        };
    }
    // verify says intact: then everything served must be the original, and all of it.
    if head != Some(original.head) {
        return Verdict::Violation(format!(
            "verify is intact but the head is {} where the closed store's was {} (events silently lost or changed)",
            head.map_or_else(|| "empty".to_owned(), describe),
            describe(original.head),
        ));
    }
    let records = match records {
        Ok(records) => records,
        Err(error) => return read_refused(&error.to_string()),
    };
    if records != original.records {
        return Verdict::Violation("verify is intact but the stored records differ".into());
    }
    let events = match log.read_all(Position::FIRST, usize::MAX) {
        Ok(events) => events,
        Err(error) => return read_refused(&error.to_string()),
    };
    if events != original.events {
        return Verdict::Violation("verify is intact but read_all serves other events".into());
    }
    for (stream, expected) in &original.streams {
        match log.read_stream(stream, Version::FIRST, usize::MAX) {
            Ok(served) if &served == expected => {}
            Ok(_) => {
                return Verdict::Violation(format!(
                    "verify is intact but stream {stream} serves other events"
                ))
            }
            Err(error) => return read_refused(&error.to_string()),
        }
    }
    Verdict::Unchanged
}

/// A read that failed while verify passed (a damaged stream index, say): refused, if it says
/// what is wrong.
fn read_refused(message: &str) -> Verdict {
    if wordy(message) {
        Verdict::VerifyRefused
    } else {
        Verdict::Violation(format!("a read failed without words: {message:?}"))
    }
}

/// The vault and the key file: each person reads back as stored, or an error with words.
fn judge_vault(store: &Path, original: &Original) -> Verdict {
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<bool, String> {
        let key = MasterKey::load(store.join("master.key")).map_err(|e| e.to_string())?;
        let vault = Vault::open(store.join("vault"), key).map_err(|e| e.to_string())?;
        let mut all_same = true;
        for (person, details) in &original.people {
            match vault.read(*person) {
                Ok(PersonData::Present(found)) if &found == details => {}
                Ok(other) => {
                    return Err(format!(
                        "VIOLATION: person {person} reads as {:?} instead of their details",
                        other.details().map(ContactDetails::masked)
                    ))
                }
                Err(error) if wordy(&error.to_string()) => all_same = false,
                Err(error) => {
                    return Err(format!(
                        "VIOLATION: a vault read failed without words: {error:?}"
                    ))
                }
            }
        }
        let _ = vault.close();
        Ok(all_same)
    }));
    match outcome {
        Err(panic) => Verdict::Violation(format!("the vault panicked: {}", panic_text(&panic))),
        Ok(Ok(true)) => Verdict::Unchanged,
        Ok(Ok(false)) => Verdict::VerifyRefused,
        Ok(Err(message)) if message.starts_with("VIOLATION") => Verdict::Violation(message),
        Ok(Err(message)) if wordy(&message) => Verdict::OpenRefused,
        Ok(Err(message)) => {
            Verdict::Violation(format!("the vault failed without words: {message:?}"))
        }
    }
}

/// The read models: each either reads back as it was, or from an earlier checkpoint (the
/// runner catches it up from the log), or fails with words.
fn judge_read_models(store: &Path, original: &Original) -> Verdict {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        read_model_contents(&store.join("readmodels"))
    }));
    match outcome {
        Err(panic) => Verdict::Violation(format!(
            "the read-model store panicked: {}",
            panic_text(&panic)
        )),
        Ok(Err(message)) if wordy(&message) => Verdict::OpenRefused,
        Ok(Err(message)) => {
            Verdict::Violation(format!("the read models failed without words: {message:?}"))
        }
        Ok(Ok(found)) if found == original.read_models => Verdict::Unchanged,
        Ok(Ok(found)) => {
            for (ns, (checkpoint, rows)) in &found {
                let Some((was_checkpoint, was_rows)) = original.read_models.get(ns) else {
                    return Verdict::Violation(format!("a read model appeared: {ns:?}"));
                };
                if checkpoint == was_checkpoint && rows != was_rows {
                    return Verdict::Violation(format!(
                        "read model {ns:?} has other rows at the same checkpoint {checkpoint:?}"
                    ));
                }
                if checkpoint > was_checkpoint {
                    return Verdict::Violation(format!(
                        "read model {ns:?} is at checkpoint {checkpoint:?}, past the original {was_checkpoint:?}"
                    ));
                }
            }
            // Older checkpoints (or a namespace gone): rebuilt or caught up from the log.
            Verdict::VerifyRefused
        }
    }
}

/// The deadline index's snapshot: a damaged one is ignored and the index rebuilt, so the
/// engine opens on the log as it was.
fn judge_engine(store: &Path, original: &Original) -> Verdict {
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
        let key = MasterKey::load(store.join("master.key")).map_err(|e| e.to_string())?;
        let engine = Engine::open(
            EngineConfig::new(store)
                .clock(Arc::new(ManualClock::new(original.last_recorded_at)))
                .master_key(key),
        )
        .map_err(|e| e.to_string())?;
        let served = engine
            .log()
            .stored_records(Position::FIRST, original.records.len())
            .map_err(|e| e.to_string())?;
        drop(engine);
        if served == original.records {
            Ok(())
        } else {
            Err("VIOLATION: the engine's log differs from the original".into())
        }
    }));
    match outcome {
        Err(panic) => Verdict::Violation(format!("the engine panicked: {}", panic_text(&panic))),
        Ok(Ok(())) => Verdict::Unchanged,
        Ok(Err(message)) if message.starts_with("VIOLATION") => Verdict::Violation(message),
        Ok(Err(message)) if wordy(&message) => Verdict::OpenRefused,
        Ok(Err(message)) => {
            Verdict::Violation(format!("the engine failed without words: {message:?}"))
        }
    }
}

/// What a round came to: the log's verdict alone (what `civicflow verify` must agree with)
/// and the verdict over every component the round damaged.
struct Judged {
    log: Verdict,
    overall: Verdict,
}

/// Judges the log and every other component the round damaged. Damage outside the log must
/// not change what the log serves.
fn judge(store: &Path, round: &Round, original: &Original) -> Judged {
    let log = judge_log(&store.join("log"), original);
    Judged {
        overall: judge_components(store, round, original, log.clone()),
        log,
    }
}

fn judge_components(store: &Path, round: &Round, original: &Original, log: Verdict) -> Verdict {
    if matches!(log, Verdict::Violation(_)) {
        return log;
    }
    if !round.touches_log() && log != Verdict::Unchanged {
        return Verdict::Violation(format!(
            "damage outside the log changed what the log serves: {log:?}"
        ));
    }
    let mut verdicts = vec![log];
    let hit = |prefix: &str| round.0.iter().any(|h| h.file.starts_with(prefix));
    if hit("vault") || hit("master.key") {
        verdicts.push(judge_vault(store, original));
    }
    if hit("readmodels") {
        verdicts.push(judge_read_models(store, original));
    }
    if hit("deadline-index.snapshot") && !matches!(verdicts[0], Verdict::OpenRefused) {
        verdicts.push(judge_engine(store, original));
    }
    if let Some(violation) = verdicts.iter().find(|v| matches!(v, Verdict::Violation(_))) {
        return violation.clone();
    }
    verdicts.into_iter().min().expect("the log's verdict")
}

/// The real `civicflow verify` on a damaged copy: 0 only when the log is unchanged, 1 naming
/// the break, 2 saying why it could not open; never a panic (101).
fn judge_binary(store: &Path, library: &Verdict) -> Result<(), String> {
    let (code, stdout, stderr) = civicflow_status(&["verify", "--data", path(store)]);
    let log_unchanged = *library == Verdict::Unchanged;
    match code {
        Some(0) if log_unchanged => Ok(()),
        Some(0) => Err(format!(
            "`civicflow verify` exited 0, but the library judged {library:?}: {stdout}"
        )),
        Some(1) if stdout.contains("BROKEN") && stdout.contains("position") => Ok(()),
        Some(2) if stderr.starts_with("civicflow: ") && wordy(&stderr) => Ok(()),
        Some(101) => Err(format!("`civicflow verify` panicked: {stderr}")),
        other => Err(format!(
            "`civicflow verify` exited {other:?} without saying why: stdout {stdout:?} stderr {stderr:?}"
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// The control: the judge can fail.

/// Removes the log's newest chunk below the API, with sled itself: exactly what sled's
/// recovery does when it cuts a damaged tail off. The shorter chain is a valid chain, so
/// `verify` passes; only knowing the closed head tells. Returns the new head position.
fn drop_newest_chunk(log_dir: &Path) -> u64 {
    let db = sled::Config::new()
        .path(log_dir)
        .segment_size(8 * 1024 * 1024)
        .flush_every_ms(None)
        .open()
        .expect("sled opens the closed log");
    let tree = db.open_tree("civicflow-log").expect("the log's tree");
    let (key, _) = tree
        .scan_prefix(b"L")
        .next_back()
        .expect("a chunk")
        .expect("read");
    tree.remove(&key).expect("remove");
    db.flush().expect("flush");
    drop(db);
    u64::from_be_bytes(key[1..].try_into().expect("8 bytes")) - 1
}

/// A silently shortened log is a violation to the judge when nothing records the closed
/// head (a store closed before `closed-head` existed), and opening refuses it, naming both
/// heads, when the file is there.
fn the_judge_catches_a_silently_shortened_log(built: &Built, scratch: &Path) {
    let with_file = scratch.join("control");
    copy_dir(&built.store, &with_file);
    let shortened_to = drop_newest_chunk(&with_file.join("log"));
    let without_file = scratch.join("control-without-closed-head");
    copy_dir(&with_file, &without_file);
    std::fs::remove_file(without_file.join("log/closed-head"))
        .expect("a clean close wrote log/closed-head");

    match judge_log(&without_file.join("log"), &built.original) {
        Verdict::Violation(what) => {
            assert!(what.contains("verify is intact but the head is"), "{what}");
            println!("control: without closed-head the judge flags it: {what}");
        }
        other => panic!("the judge let a log that lost its newest events pass: {other:?}"),
    }
    match SledLog::open(with_file.join("log")) {
        Err(error) => {
            let message = error.to_string();
            let closed = format!(
                "position {} hash {}",
                built.original.head.position, built.original.head.hash
            );
            assert!(message.contains(&closed), "{message}");
            assert!(
                message.contains(&format!("only up to position {shortened_to} ")),
                "{message}"
            );
            println!("control: with closed-head opening refuses: {message}");
        }
        Ok(_) => panic!("a log that lost its newest events opened"),
    }
    let (code, _, stderr) = civicflow_status(&["verify", "--data", path(&with_file)]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("closed with its head at"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// The rounds.

#[test]
fn damaged_files_are_refused_or_change_nothing() {
    let seed = env_u64("CIVICFLOW_DAMAGE_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let rounds = env_u64("CIVICFLOW_DAMAGE_ROUNDS").unwrap_or(DEFAULT_ROUNDS);
    // Shows what the `closed-head` check prevents: a store without it (closed before it
    // existed) is open to silent truncation, and this run should find that.
    let without_closed_head = std::env::var_os("CIVICFLOW_DAMAGE_WITHOUT_CLOSED_HEAD").is_some();
    println!(
        "damaged_files: seed {seed}, {rounds} rounds (replay with CIVICFLOW_DAMAGE_SEED={seed})"
    );
    let started = Instant::now();
    let built = Arc::new(build_store());
    let files: Vec<PathBuf> = files_under(&built.store)
        .into_iter()
        .filter(|f| !(without_closed_head && f == Path::new("log/closed-head")))
        .collect();
    println!(
        "store: {} events, head position {}, {} files, built in {:.1?}",
        built.original.records.len(),
        built.original.head.position,
        files.len(),
        started.elapsed()
    );
    for file in &files {
        let bytes = std::fs::read(built.store.join(file)).expect("read");
        println!(
            "  {}: {} bytes, {} live",
            file.display(),
            bytes.len(),
            live_length(&bytes)
        );
    }
    let scratch = TempDir::new("damaged-files-rounds");
    the_judge_catches_a_silently_shortened_log(&built, scratch.path());
    let mut rng = Rng::new(seed);
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut by_file: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
    let mut open_messages: BTreeMap<String, u64> = BTreeMap::new();
    let mut violations: Vec<String> = Vec::new();
    for round in 0..rounds {
        let damage = Round::pick(&mut rng, &built.store, &files);
        let copy = scratch.path().join(format!("round-{round}"));
        copy_dir(&built.store, &copy);
        if without_closed_head {
            let _ = std::fs::remove_file(copy.join("log/closed-head"));
        }
        damage.apply(&copy);
        let Judged {
            log,
            overall: verdict,
        } = {
            let (send, receive) = mpsc::channel();
            let (built, judged, copy) = (built.clone(), damage.clone(), copy.clone());
            std::thread::spawn(move || {
                let _ = send.send(judge(&copy, &judged, &built.original));
            });
            receive.recv_timeout(ROUND_TIMEOUT).unwrap_or_else(|_| {
                panic!("seed {seed} round {round}: no answer in {ROUND_TIMEOUT:?} (a hang, or a panic in a thread): {damage:?}")
            })
        };
        if let Verdict::Violation(what) = &verdict {
            violations.push(format!("round {round}: {what}\n    damage: {damage:?}"));
        }
        if verdict == Verdict::OpenRefused && damage.touches_log() {
            // How opening refused, in words (the copy's path left out, so they can be counted).
            let second = scratch.path().join(format!("round-{round}-message"));
            copy_dir(&built.store, &second);
            if without_closed_head {
                let _ = std::fs::remove_file(second.join("log/closed-head"));
            }
            damage.apply(&second);
            if let Ok(Err(error)) =
                catch_unwind(AssertUnwindSafe(|| SledLog::open(second.join("log"))))
            {
                let message = error.to_string().replace(path(&second.join("log")), "LOG");
                let kind: String = message.chars().take(110).collect();
                *open_messages.entry(kind).or_default() += 1;
            }
            let _ = std::fs::remove_dir_all(&second);
        }
        if round % BINARY_EVERY == 0 {
            let second = scratch.path().join(format!("round-{round}-binary"));
            copy_dir(&built.store, &second);
            if without_closed_head {
                let _ = std::fs::remove_file(second.join("log/closed-head"));
            }
            damage.apply(&second);
            if let Err(what) = judge_binary(&second, &log) {
                violations.push(format!("round {round}: {what}\n    damage: {damage:?}"));
            }
            let _ = std::fs::remove_dir_all(&second);
        }
        *counts.entry(verdict.label()).or_default() += 1;
        let first = &damage.0[0].file;
        let area = if damage.0.len() > 1 {
            "several files".to_owned()
        } else if first.starts_with("log") {
            first.display().to_string()
        } else {
            first
                .components()
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        *by_file
            .entry(area)
            .or_default()
            .entry(verdict.label())
            .or_default() += 1;
        let _ = std::fs::remove_dir_all(&copy);
    }
    println!("{rounds} rounds in {:.1?}: {counts:?}", started.elapsed());
    for (area, outcomes) in &by_file {
        println!("  {area}: {outcomes:?}");
    }
    for (message, n) in &open_messages {
        println!("  open refused {n}x: {message}");
    }
    assert!(
        violations.is_empty(),
        "seed {seed}: {} violations (replay with CIVICFLOW_DAMAGE_SEED={seed}):\n  {}",
        violations.len(),
        violations.join("\n  ")
    );
}
