//! Crash test of the event log. It guards against two bugs: an acknowledged append (one that
//! returned `Ok(Ok(_))`) lost or torn by a crash, and an append visible in part after a crash
//! (some of its events stored, others not; or one stream of an atomic two-stream append without
//! the other).
//!
//! The same binary is parent and child (`harness = false`). With `CIVICFLOW_CRASH_CHILD=DIR` in
//! its environment it is the child: it opens the log in DIR (sealing its history every 256
//! events, so that kills also land inside seals) and lets four threads append for ever,
//! printing one line per acknowledged append. The parent runs rounds on one directory
//! (the log grows across rounds): it starts the child, kills it with SIGKILL after a random
//! 20-200 ms, reopens the log and checks every append the child ever acknowledged, that every
//! stored append is whole, that positions and versions have no gaps, and that the chain
//! verifies.
//!
//! Then it proves the check can fail: the same rounds and the same check against a child that
//! opens the log with `FaultInjection { ack_before_flush: true }` must report lost acknowledged
//! appends within a few rounds, or this test fails.
//!
//! Environment: `CIVICFLOW_CRASH_ROUNDS` (default 50) sets the number of rounds,
//! `CIVICFLOW_CRASH_SEED` replays a run (the seed is printed at the start).

use civicflow_core::EventStore as _;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use civicflow_core::{
    Actor, AppendRequest, CorrelationId, EventType, ExpectedVersion, FaultInjection,
    IdempotencyKey, NewEvent, Position, RecordedEvent, SledLog, SledLogConfig, StreamId,
    StreamWrite, Timestamp, Version,
};

/// Set in the child's environment: the store's directory. Its presence makes a child.
const CHILD_DIR_ENV: &str = "CIVICFLOW_CRASH_CHILD";
/// Set in the child's environment: a tag that makes its idempotency keys unique in the log.
const CHILD_TAG_ENV: &str = "CIVICFLOW_CRASH_CHILD_TAG";
/// Set to `ack_before_flush` in the child's environment to inject that fault.
const CHILD_FAULT_ENV: &str = "CIVICFLOW_CRASH_CHILD_FAULT";
const ROUNDS_ENV: &str = "CIVICFLOW_CRASH_ROUNDS";
const SEED_ENV: &str = "CIVICFLOW_CRASH_SEED";

const DEFAULT_ROUNDS: u64 = 50;
/// The faulty child must be caught within this many rounds.
const VARIANT_MAX_ROUNDS: u64 = 20;
const CHILD_THREADS: usize = 4;
/// Each child writer pauses a random 1-3 ms after an acknowledged append. This bounds how
/// fast the log grows (at most about 2000 appends a second whatever the machine), and so the
/// cost of re-reading and verifying the whole log after every round; the threads still
/// overlap, so commit groups still form.
const WRITER_PAUSE_MICROS: (u64, u64) = (1_000, 3_000);
/// How long the child may take to open the log before the round counts as failed.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The streams the child writes to; few, so that threads share streams.
const STREAMS: [&str; 6] = [
    "case-a",
    "case-b",
    "case-c",
    "unit-grid1",
    "unit-grid2",
    "unit-shop7",
];
const EVENT_TYPE: &str = "CrashProbe";
const READ_PAGE: usize = 4096;

// ---------------------------------------------------------------------------------------------
// Randomness without a dependency, and the deterministic shape of every append.
// ---------------------------------------------------------------------------------------------

/// xorshift64*, seeded through splitmix64 so that any seed (0 included) works.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn between(&mut self, low: u64, high_inclusive: u64) -> u64 {
        low + self.below(high_inclusive - low + 1)
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The writes of the append with idempotency key `key`: (stream, number of events), in
/// order. One stream with 1-3 events, or (one time in three) two streams with 2-3 events in
/// all. Derived from the key alone, so the parent recomputes it for any stored event.
fn plan(key: &str) -> Vec<(&'static str, u64)> {
    let mut rng = Rng::new(fnv1a(key.as_bytes()));
    let first = rng.below(STREAMS.len() as u64);
    if rng.below(3) == 0 {
        let second = (first + 1 + rng.below(STREAMS.len() as u64 - 1)) % STREAMS.len() as u64;
        let total = rng.between(2, 3);
        let in_first = rng.between(1, total - 1);
        vec![
            (STREAMS[first as usize], in_first),
            (STREAMS[second as usize], total - in_first),
        ]
    } else {
        vec![(STREAMS[first as usize], rng.between(1, 3))]
    }
}

/// The payload of event `index` (counted over the whole append) of the append `key` with
/// `total` events: `key/index/total/` and filler bytes derived from key and index.
fn payload(key: &str, index: u64, total: u64) -> Vec<u8> {
    let mut bytes = format!("{key}/{index}/{total}/").into_bytes();
    let mut rng = Rng::new(fnv1a(key.as_bytes()) ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let len = rng.between(8, 160);
    bytes.extend((0..len).map(|_| b'a' + (rng.below(26) as u8)));
    bytes
}

/// Key, index and total from a payload made by [`payload`]; `None` for anything else.
fn parse_payload(bytes: &[u8]) -> Option<(String, u64, u64)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut parts = text.splitn(4, '/');
    let key = parts.next()?.to_owned();
    let index = parts.next()?.parse().ok()?;
    let total = parts.next()?.parse().ok()?;
    parts.next()?;
    Some((key, index, total))
}

fn actor() -> Actor {
    Actor::parse("crash-writer", "tester", "lab/crash").expect("a valid actor")
}

/// The append for `key`. The child sends it; the parent sends it again to check that a retry
/// with the same key is answered from what is stored.
fn build_request(key: &str) -> AppendRequest {
    let writes = plan(key);
    let total: u64 = writes.iter().map(|(_, n)| n).sum();
    let event_type = EventType::new(EVENT_TYPE).expect("a valid event type");
    let mut index = 0;
    let writes = writes
        .into_iter()
        .map(|(stream, count)| {
            let events = (0..count)
                .map(|_| {
                    let event = NewEvent::new(event_type.clone(), 1, payload(key, index, total));
                    index += 1;
                    event
                })
                .collect();
            StreamWrite::new(
                StreamId::new(stream).expect("a valid stream id"),
                ExpectedVersion::Any,
                events,
            )
        })
        .collect();
    AppendRequest::to_streams(writes, actor(), CorrelationId::new_v7(Timestamp::EPOCH))
        .with_idempotency_key(IdempotencyKey::new(key).expect("a valid idempotency key"))
}

// ---------------------------------------------------------------------------------------------
// What the child reports: one line per acknowledged append.
// ---------------------------------------------------------------------------------------------

/// An acknowledged append as the child printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ack {
    key: String,
    first: u64,
    last: u64,
    /// (stream, first version, last version), in the order of the request's writes.
    streams: Vec<(String, u64, u64)>,
}

impl Ack {
    /// `ack KEY FIRST LAST STREAM:FIRST:LAST [STREAM:FIRST:LAST] .`
    fn to_line(&self) -> String {
        let mut line = format!("ack {} {} {}", self.key, self.first, self.last);
        for (stream, first, last) in &self.streams {
            line.push_str(&format!(" {stream}:{first}:{last}"));
        }
        line.push_str(" .\n");
        line
    }

    fn parse(line: &str) -> Option<Self> {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        if tokens.len() < 6 || tokens[0] != "ack" || tokens.last() != Some(&".") {
            return None;
        }
        let mut streams = Vec::new();
        for token in &tokens[4..tokens.len() - 1] {
            let mut parts = token.split(':');
            let stream = parts.next()?.to_owned();
            let first = parts.next()?.parse().ok()?;
            let last = parts.next()?.parse().ok()?;
            if parts.next().is_some() {
                return None;
            }
            streams.push((stream, first, last));
        }
        Some(Self {
            key: tokens[1].to_owned(),
            first: tokens[2].parse().ok()?,
            last: tokens[3].parse().ok()?,
            streams,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The child.
// ---------------------------------------------------------------------------------------------

fn child_main(dir: PathBuf) -> ! {
    let tag = std::env::var(CHILD_TAG_ENV).expect("the parent sets the child's key tag");
    let ack_before_flush = std::env::var(CHILD_FAULT_ENV).is_ok_and(|f| f == "ack_before_flush");
    // A small index threshold so that index flushes (and their replay on open) happen often,
    // and a seal every four flushes, so that kills land inside seals too (decision 0013).
    let mut config = SledLogConfig::new(&dir)
        .index_flush_events(64)
        .seal_after_events(256);
    config.faults = FaultInjection {
        ack_before_flush,
        ..FaultInjection::default()
    };
    let log = config.open().expect("the child opens the log");
    let out = Arc::new(Mutex::new(std::io::stdout()));
    {
        let mut out = out.lock().expect("stdout lock");
        out.write_all(b"ready\n").expect("write to the parent");
        out.flush().expect("flush to the parent");
    }
    let writers: Vec<_> = (0..CHILD_THREADS)
        .map(|thread| {
            let log = log.clone();
            let out = out.clone();
            let tag = tag.clone();
            std::thread::spawn(move || {
                let mut rng = Rng::new(fnv1a(tag.as_bytes()) ^ thread as u64);
                for i in 0u64.. {
                    let key = format!("{tag}.t{thread}.{i}");
                    let appended = log
                        .append(build_request(&key))
                        .expect("the child's append does not fail")
                        .expect("an append expecting any version never conflicts");
                    let ack = Ack {
                        key,
                        first: appended.first_position.get(),
                        last: appended.last_position.get(),
                        streams: appended
                            .streams
                            .iter()
                            .map(|s| {
                                (
                                    s.stream.to_string(),
                                    s.first_version.get(),
                                    s.last_version.get(),
                                )
                            })
                            .collect(),
                    };
                    let line = ack.to_line();
                    {
                        let mut out = out.lock().expect("stdout lock");
                        out.write_all(line.as_bytes()).expect("write to the parent");
                        out.flush().expect("flush to the parent");
                    }
                    std::thread::sleep(Duration::from_micros(
                        rng.between(WRITER_PAUSE_MICROS.0, WRITER_PAUSE_MICROS.1),
                    ));
                }
            })
        })
        .collect();
    for writer in writers {
        if writer.join().is_err() {
            eprintln!("child: a writer thread panicked");
            std::process::exit(2);
        }
    }
    eprintln!("child: the writers stopped, which they never should");
    std::process::exit(3)
}

// ---------------------------------------------------------------------------------------------
// The parent: one crash round.
// ---------------------------------------------------------------------------------------------

enum KillAt {
    /// After the child has opened the log and printed `ready`, this much later.
    AfterReady(Duration),
    /// This long after starting the child, which may still be opening (and recovering).
    AfterSpawn(Duration),
}

struct RoundRun {
    acks: Vec<Ack>,
    /// Whether the kill came before the child had opened the log.
    killed_before_ready: bool,
}

#[cfg(unix)]
fn killed_by_sigkill(status: &ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

#[cfg(not(unix))]
fn killed_by_sigkill(status: &ExitStatus) -> bool {
    !status.success()
}

/// Starts the child on `dir`, kills it, and returns what it acknowledged.
fn crash_round(
    dir: &Path,
    ack_before_flush: bool,
    tag: &str,
    kill: KillAt,
) -> Result<RoundRun, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the test binary: {e}"))?;
    let mut command = Command::new(exe);
    command
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_TAG_ENV, tag)
        .env_remove(CHILD_FAULT_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if ack_before_flush {
        command.env(CHILD_FAULT_ENV, "ack_before_flush");
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start the child: {e}"))?;
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let mut stderr = child.stderr.take().expect("the child's stderr is piped");

    // Complete lines (`Ok`) and a cut-off last line (`Err`) arrive through a channel, so the
    // parent can wait for `ready` and still collect everything.
    let (lines_tx, lines) = mpsc::channel::<Result<String, Vec<u8>>>();
    let stdout_reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if line.ends_with(b"\n") => {
                    let text = String::from_utf8_lossy(&line).into_owned();
                    if lines_tx.send(Ok(text)).is_err() {
                        break;
                    }
                }
                Ok(_) => {
                    let _ = lines_tx.send(Err(line));
                    break;
                }
            }
        }
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let mut received = Vec::new();
    match kill {
        KillAt::AfterReady(delay) => match lines.recv_timeout(READY_TIMEOUT) {
            Ok(Ok(line)) if line == "ready\n" => {
                std::thread::sleep(delay);
            }
            other => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = stderr_reader.join().unwrap_or_default();
                return Err(format!(
                    "the child did not report `ready` (got {other:?}); its stderr:\n{stderr}"
                ));
            }
        },
        KillAt::AfterSpawn(delay) => {
            std::thread::sleep(delay);
        }
    }
    child
        .kill()
        .map_err(|e| format!("cannot kill the child: {e}"))?;
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for the child: {e}"))?;
    stdout_reader
        .join()
        .map_err(|_| "the stdout reader panicked".to_owned())?;
    let stderr = stderr_reader
        .join()
        .map_err(|_| "the stderr reader panicked".to_owned())?;
    received.extend(lines.try_iter());
    if !killed_by_sigkill(&status) {
        return Err(format!(
            "the child ended by itself ({status}) instead of being killed; its stderr:\n{stderr}"
        ));
    }

    let mut acks = Vec::new();
    let mut saw_ready = matches!(kill, KillAt::AfterReady(_));
    for line in received {
        // A cut-off last line (`Err`) is an append the child could not finish reporting.
        let Ok(line) = line else { continue };
        if line == "ready\n" && !saw_ready {
            saw_ready = true;
            continue;
        }
        let ack = Ack::parse(&line)
            .ok_or_else(|| format!("the child printed a line that is no ack: {line:?}"))?;
        acks.push(ack);
    }
    Ok(RoundRun {
        acks,
        killed_before_ready: !saw_ready,
    })
}

// ---------------------------------------------------------------------------------------------
// The parent: the check after a crash.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    OpenFailed,
    ReadFailed,
    PositionGap,
    VersionGap,
    HeadMismatch,
    ForeignEvent,
    PayloadMismatch,
    PartialAppend,
    /// An acknowledged append is not in the log at all.
    LostAck,
    /// An acknowledged append is in the log, but not where its acknowledgement said.
    AckMismatch,
    StreamReadMismatch,
    VerifyFailed,
    ReplayMismatch,
    CloseFailed,
}

#[derive(Debug)]
struct Finding {
    kind: Kind,
    detail: String,
}

#[derive(Debug, Default)]
struct Check {
    findings: Vec<Finding>,
    events: u64,
    stored_appends: usize,
    acks_checked: usize,
    unacknowledged_stored: usize,
}

impl Check {
    fn find(&mut self, kind: Kind, detail: String) {
        self.findings.push(Finding { kind, detail });
    }

    fn has(&self, kind: Kind) -> bool {
        self.findings.iter().any(|f| f.kind == kind)
    }

    fn report(&self) -> String {
        let mut text = String::new();
        for finding in self.findings.iter().take(15) {
            text.push_str(&format!("  {:?}: {}\n", finding.kind, finding.detail));
        }
        if self.findings.len() > 15 {
            text.push_str(&format!("  … and {} more\n", self.findings.len() - 15));
        }
        text
    }
}

/// Every event of the log, page by page.
fn read_everything(log: &SledLog) -> Result<Vec<RecordedEvent>, String> {
    let mut events = Vec::new();
    loop {
        let from = Position::new(events.len() as u64 + 1).expect("not zero");
        let page = log
            .read_all(from, READ_PAGE)
            .map_err(|e| format!("read_all from {from}: {e}"))?;
        if page.is_empty() {
            return Ok(events);
        }
        if page[0].position != from {
            // Positions are checked below; stop here rather than loop for ever.
            events.extend(page);
            return Ok(events);
        }
        events.extend(page);
    }
}

/// Every event of one stream, page by page.
fn read_whole_stream(log: &SledLog, stream: &StreamId) -> Result<Vec<RecordedEvent>, String> {
    let mut events: Vec<RecordedEvent> = Vec::new();
    loop {
        let from = Version::new(events.len() as u64 + 1).expect("not zero");
        let page = log
            .read_stream(stream, from, READ_PAGE)
            .map_err(|e| format!("read_stream {stream} from {from}: {e}"))?;
        if page.is_empty() {
            return Ok(events);
        }
        let stalled = page[0].version != from;
        events.extend(page);
        if stalled {
            return Ok(events);
        }
    }
}

/// Which streams get `verify_stream` (the whole log gets `verify` every time; checking every
/// stream's chain too every round would double the run time).
#[derive(Clone, Copy)]
enum StreamVerify {
    /// Only the stream with this index among the stored streams (rotating over rounds).
    One(usize),
    All,
}

/// Reopens the log in `dir` and checks it against every acknowledged append in `acked`.
/// `replay` names acknowledged keys to send again (an idempotent retry must be answered from
/// what is stored and write nothing).
fn check_log(
    dir: &Path,
    acked: &BTreeMap<String, Ack>,
    replay: &[String],
    stream_verify: StreamVerify,
) -> Check {
    let mut check = Check::default();
    let log = match SledLog::open(dir) {
        Ok(log) => log,
        Err(e) => {
            check.find(Kind::OpenFailed, format!("reopening the log: {e}"));
            return check;
        }
    };
    check_open_log(&log, acked, replay, stream_verify, &mut check);
    if let Err(e) = log.close() {
        check.find(Kind::CloseFailed, e.to_string());
    }
    check
}

fn check_open_log(
    log: &SledLog,
    acked: &BTreeMap<String, Ack>,
    replay: &[String],
    stream_verify: StreamVerify,
    check: &mut Check,
) {
    let events = match read_everything(log) {
        Ok(events) => events,
        Err(e) => {
            check.find(Kind::ReadFailed, e);
            return;
        }
    };
    check.events = events.len() as u64;

    // Positions 1, 2, 3, … and per stream versions 1, 2, 3, … without gaps.
    let mut stream_positions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (i, event) in events.iter().enumerate() {
        let expected = i as u64 + 1;
        if event.position.get() != expected {
            check.find(
                Kind::PositionGap,
                format!(
                    "event {i} of read_all has position {} instead of {expected}",
                    event.position
                ),
            );
            break;
        }
        let positions = stream_positions
            .entry(event.stream.to_string())
            .or_default();
        let expected_version = positions.len() as u64 + 1;
        if event.version.get() != expected_version {
            check.find(
                Kind::VersionGap,
                format!(
                    "position {}: stream {} version {} where version {expected_version} was due",
                    event.position, event.stream, event.version
                ),
            );
        }
        positions.push(event.position.get());
    }
    match (log.head(), events.last()) {
        (None, None) => {}
        (Some(head), Some(last)) if head.position == last.position && head.hash == last.hash => {}
        (head, last) => check.find(
            Kind::HeadMismatch,
            format!(
                "head {:?} but the last event read is {:?}",
                head.map(|h| h.position),
                last.map(|e| (e.position, e.hash))
            ),
        ),
    }

    // Every event belongs to an append of the child and carries exactly its payload; group
    // the events by the append's key.
    let mut by_key: HashMap<String, Vec<(u64, &RecordedEvent)>> = HashMap::new();
    for event in &events {
        let Some((key, index, total)) = parse_payload(&event.payload) else {
            check.find(
                Kind::ForeignEvent,
                format!("position {}: a payload no child wrote", event.position),
            );
            continue;
        };
        if event.payload != payload(&key, index, total)
            || event.event_type.as_str() != EVENT_TYPE
            || event.schema_version != 1
            || event.actor != actor()
        {
            check.find(
                Kind::PayloadMismatch,
                format!(
                    "position {}: event {index} of {key} is not what was written",
                    event.position
                ),
            );
        }
        by_key.entry(key).or_default().push((index, event));
    }
    check.stored_appends = by_key.len();

    // Every stored append is whole: all its events, in order, at consecutive positions, in
    // the streams its plan names, with consecutive versions per stream.
    let mut stored: HashMap<String, Ack> = HashMap::new();
    for (key, parts) in &mut by_key {
        parts.sort_by_key(|(index, _)| *index);
        let writes = plan(key);
        let total: u64 = writes.iter().map(|(_, n)| n).sum();
        let indices: Vec<u64> = parts.iter().map(|(index, _)| *index).collect();
        if indices != (0..total).collect::<Vec<_>>() {
            check.find(
                Kind::PartialAppend,
                format!(
                    "append {key} has {total} events but the log holds only its events {indices:?} (positions {:?})",
                    parts.iter().map(|(_, e)| e.position.get()).collect::<Vec<_>>()
                ),
            );
            continue;
        }
        let first = parts[0].1.position.get();
        let mut streams = Vec::new();
        let mut at = 0usize;
        let mut whole = true;
        for (stream, count) in &writes {
            let slice = &parts[at..at + *count as usize];
            at += *count as usize;
            let first_version = slice[0].1.version.get();
            for (j, (index, event)) in slice.iter().enumerate() {
                if event.position.get() != first + index
                    || event.stream.as_str() != *stream
                    || event.version.get() != first_version + j as u64
                {
                    whole = false;
                }
            }
            streams.push((
                (*stream).to_owned(),
                first_version,
                first_version + count - 1,
            ));
        }
        if !whole {
            check.find(
                Kind::PartialAppend,
                format!(
                    "append {key} is torn: its events are at {:?}",
                    parts
                        .iter()
                        .map(|(i, e)| format!("#{i}@{} {}v{}", e.position, e.stream, e.version))
                        .collect::<Vec<_>>()
                ),
            );
            continue;
        }
        stored.insert(
            key.clone(),
            Ack {
                key: key.clone(),
                first,
                last: first + total - 1,
                streams,
            },
        );
    }

    // Every acknowledged append is there, exactly where its acknowledgement said.
    for (key, ack) in acked {
        check.acks_checked += 1;
        match stored.get(key) {
            None if by_key.contains_key(key) => {} // reported above as partial
            None => check.find(
                Kind::LostAck,
                format!(
                    "acknowledged append {key} (positions {}..={}) is not in the log of {} events",
                    ack.first,
                    ack.last,
                    events.len()
                ),
            ),
            Some(found) if found != ack => check.find(
                Kind::AckMismatch,
                format!("append {key} was acknowledged as {ack:?} but is stored as {found:?}"),
            ),
            Some(_) => {}
        }
    }
    check.unacknowledged_stored = stored.keys().filter(|k| !acked.contains_key(*k)).count();

    // The stream index agrees with the log.
    let stream_count = stream_positions.len().max(1);
    for (n, (stream, positions)) in stream_positions.iter().enumerate() {
        let id = StreamId::new(stream.as_str()).expect("a stored stream id is valid");
        match read_whole_stream(log, &id) {
            Ok(read) => {
                let read: Vec<u64> = read.iter().map(|e| e.position.get()).collect();
                if &read != positions {
                    check.find(
                        Kind::StreamReadMismatch,
                        format!(
                            "read_stream {stream} gives {} events, read_all {} (first difference at index {:?})",
                            read.len(),
                            positions.len(),
                            read.iter().zip(positions).position(|(a, b)| a != b)
                        ),
                    );
                }
            }
            Err(e) => check.find(Kind::ReadFailed, e),
        }
        match log.stream_version(&id) {
            Ok(version) if version.map(Version::get) == Some(positions.len() as u64) => {}
            other => check.find(
                Kind::StreamReadMismatch,
                format!(
                    "stream_version({stream}) is {other:?}, read_all has {} events",
                    positions.len()
                ),
            ),
        }
        let verify_this = match stream_verify {
            StreamVerify::All => true,
            StreamVerify::One(i) => i % stream_count == n,
        };
        if !verify_this {
            continue;
        }
        match log.verify_stream(&id) {
            Ok(report) if report.is_intact() => {}
            Ok(report) => check.find(
                Kind::VerifyFailed,
                format!("verify_stream {stream}: {report:?}"),
            ),
            Err(e) => check.find(Kind::VerifyFailed, format!("verify_stream {stream}: {e}")),
        }
    }

    match log.verify() {
        Ok(report) if report.is_intact() && report.events_checked == events.len() as u64 => {}
        Ok(report) => check.find(
            Kind::VerifyFailed,
            format!("verify over {} events: {report:?}", events.len()),
        ),
        Err(e) => check.find(Kind::VerifyFailed, format!("verify: {e}")),
    }

    // A retry of an acknowledged append is answered from the stored idempotency record and
    // writes nothing.
    let head = log.head();
    for key in replay {
        let (Some(ack), Some(_)) = (acked.get(key), stored.get(key)) else {
            continue;
        };
        match log.append(build_request(key)) {
            Ok(Ok(appended))
                if appended.deduplicated
                    && appended.first_position.get() == ack.first
                    && appended.last_position.get() == ack.last => {}
            other => check.find(
                Kind::ReplayMismatch,
                format!("retrying acknowledged append {key} ({ack:?}) gave {other:?}"),
            ),
        }
    }
    if log.head() != head {
        check.find(
            Kind::ReplayMismatch,
            format!(
                "retries of stored appends moved the head from {head:?} to {:?}",
                log.head()
            ),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The parent: rounds, the variant, the summary.
// ---------------------------------------------------------------------------------------------

fn env_u64(name: &str) -> Result<Option<u64>, String> {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .map(Some)
            .map_err(|e| format!("{name}={value:?} is not a number: {e}")),
        Err(_) => Ok(None),
    }
}

/// Picks a few acknowledged keys to retry: the newest of the round and one older at random.
fn replay_sample(round_acks: &[Ack], acked: &BTreeMap<String, Ack>, rng: &mut Rng) -> Vec<String> {
    let mut keys: Vec<String> = round_acks
        .iter()
        .rev()
        .take(2)
        .map(|a| a.key.clone())
        .collect();
    if !acked.is_empty() {
        let pick = rng.below(acked.len() as u64) as usize;
        if let Some(key) = acked.keys().nth(pick) {
            keys.push(key.clone());
        }
    }
    keys
}

fn add_acks(acked: &mut BTreeMap<String, Ack>, acks: &[Ack]) -> Result<(), String> {
    for ack in acks {
        if let Some(earlier) = acked.insert(ack.key.clone(), ack.clone()) {
            return Err(format!(
                "the key {} was acknowledged twice: {earlier:?} and {ack:?}",
                ack.key
            ));
        }
    }
    Ok(())
}

struct Summary {
    rounds: u64,
    killed_before_ready: u64,
    acked: usize,
    acks_checked: usize,
    events: u64,
    stored_appends: usize,
    unacknowledged_stored: usize,
    variant_caught_in: u64,
    variant_finding: String,
    check_time: Duration,
}

fn run(base: &Path, seed: u64, rounds: u64) -> Result<Summary, String> {
    let mut rng = Rng::new(seed);

    // The real log: every round crashes it; nothing acknowledged may be lost or torn.
    let dir = base.join("log");
    let mut acked = BTreeMap::new();
    let mut last = Check::default();
    let mut acks_checked = 0;
    let mut killed_before_ready = 0;
    let mut check_time = Duration::ZERO;
    for round in 1..=rounds {
        // One round in eight kills the child early, possibly while it opens and recovers.
        let kill = if rng.below(8) == 0 {
            KillAt::AfterSpawn(Duration::from_millis(rng.between(0, 150)))
        } else {
            KillAt::AfterReady(Duration::from_millis(rng.between(20, 200)))
        };
        let run = crash_round(&dir, false, &format!("m{round}"), kill)
            .map_err(|e| format!("round {round}: {e}"))?;
        killed_before_ready += u64::from(run.killed_before_ready);
        add_acks(&mut acked, &run.acks).map_err(|e| format!("round {round}: {e}"))?;
        let replay = replay_sample(&run.acks, &acked, &mut rng);
        let check_started = Instant::now();
        let stream_verify = if round == rounds {
            StreamVerify::All
        } else {
            StreamVerify::One(round as usize)
        };
        let check = check_log(&dir, &acked, &replay, stream_verify);
        check_time += check_started.elapsed();
        if !check.findings.is_empty() {
            return Err(format!(
                "round {round}: the log lost or tore acknowledged data ({} acknowledged appends, {} events stored):\n{}",
                acked.len(),
                check.events,
                check.report()
            ));
        }
        acks_checked += check.acks_checked;
        last = check;
    }

    // The variant: a child that acknowledges before flushing. The same rounds and the same
    // check must notice lost acknowledged appends, or the check proves nothing.
    let variant_dir = base.join("variant");
    let mut variant_acked = BTreeMap::new();
    let mut caught = None;
    for round in 1..=VARIANT_MAX_ROUNDS {
        let kill = KillAt::AfterReady(Duration::from_millis(rng.between(20, 200)));
        let run = crash_round(&variant_dir, true, &format!("v{round}"), kill)
            .map_err(|e| format!("variant round {round}: {e}"))?;
        add_acks(&mut variant_acked, &run.acks)
            .map_err(|e| format!("variant round {round}: {e}"))?;
        let replay = replay_sample(&run.acks, &variant_acked, &mut rng);
        let check = check_log(
            &variant_dir,
            &variant_acked,
            &replay,
            StreamVerify::One(round as usize),
        );
        if !check.findings.is_empty() {
            if !check.has(Kind::LostAck) {
                return Err(format!(
                    "variant round {round}: the check failed, but without naming a lost acknowledged append:\n{}",
                    check.report()
                ));
            }
            let lost = check
                .findings
                .iter()
                .filter(|f| f.kind == Kind::LostAck)
                .count();
            let first = check
                .findings
                .iter()
                .find(|f| f.kind == Kind::LostAck)
                .map(|f| f.detail.clone())
                .unwrap_or_default();
            caught = Some((
                round,
                format!(
                    "{lost} of {} acknowledged appends lost; first: {first}",
                    variant_acked.len()
                ),
            ));
            break;
        }
    }
    let Some((variant_caught_in, variant_finding)) = caught else {
        return Err(format!(
            "the check never noticed that a child acknowledging before flushing lost acknowledged appends ({VARIANT_MAX_ROUNDS} rounds, {} acknowledged appends): it cannot fail, so it proves nothing",
            variant_acked.len()
        ));
    };

    Ok(Summary {
        rounds,
        killed_before_ready,
        acked: acked.len(),
        acks_checked,
        events: last.events,
        stored_appends: last.stored_appends,
        unacknowledged_stored: last.unacknowledged_stored,
        variant_caught_in,
        variant_finding,
        check_time,
    })
}

fn main() {
    if let Some(dir) = std::env::var_os(CHILD_DIR_ENV) {
        child_main(PathBuf::from(dir));
    }
    // Behave like a libtest binary towards `cargo test` arguments: list the one test, and
    // skip it when a name filter is given that it does not match.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("log_crash: test");
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| "log_crash".contains(f.as_str())) {
        println!("log_crash: skipped, no filter matches it ({filters:?})");
        return;
    }
    let started = Instant::now();
    let parsed = (|| -> Result<(u64, u64), String> {
        let seed = match env_u64(SEED_ENV)? {
            Some(seed) => seed,
            None => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_err(|e| format!("the clock is before 1970: {e}"))?;
                (now.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32)
            }
        };
        let rounds = env_u64(ROUNDS_ENV)?.unwrap_or(DEFAULT_ROUNDS).max(1);
        Ok((seed, rounds))
    })();
    let (seed, rounds) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("log_crash: {e}");
            std::process::exit(1);
        }
    };
    let base =
        std::env::temp_dir().join(format!("civicflow-log-crash-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    println!(
        "log_crash: seed {seed} (replay with {SEED_ENV}={seed}), {rounds} rounds, store in {}",
        base.display()
    );

    match run(&base, seed, rounds) {
        Ok(summary) => {
            println!(
                "log_crash: {} crash rounds ({} killed before the log was open): {} acknowledged appends, {} acknowledgement checks, all present and whole; the log holds {} events of {} appends ({} stored but never acknowledged)",
                summary.rounds,
                summary.killed_before_ready,
                summary.acked,
                summary.acks_checked,
                summary.events,
                summary.stored_appends,
                summary.unacknowledged_stored
            );
            println!(
                "log_crash: variant ack_before_flush caught in round {} of at most {VARIANT_MAX_ROUNDS}: {}",
                summary.variant_caught_in, summary.variant_finding
            );
            println!(
                "log_crash: ok in {:.1} s ({:.1} s of it checking the reopened log)",
                started.elapsed().as_secs_f64(),
                summary.check_time.as_secs_f64()
            );
            let _ = std::fs::remove_dir_all(&base);
        }
        Err(e) => {
            eprintln!("log_crash: FAILED (seed {seed}; replay with {SEED_ENV}={seed}; the store is kept in {}):\n{e}", base.display());
            std::process::exit(1);
        }
    }
}
