//! The event log against raw sled, measured in the same run, reported as ratios.
//!
//! Run: `cargo bench --bench log_vs_sled` (add `-- --quick` for a short smoke run, `-- --only N`
//! for one scenario, `CIVICFLOW_BENCH_VERBOSE=1` for commit-group sizes).
//! Results and the machine they came from are recorded in `docs/benchmarks.md`.
//!
//! Each raw-sled baseline stores exactly the bytes our log stores for the same events (one
//! record per key, keyed by position), decoded with the same decoder, so a ratio measures what
//! the log adds: group commit, chunks, the stream index, the chain, idempotency checks.
//!
//! Scenarios (median of several rounds each):
//! 1. durable appends from 64 concurrent writers, vs raw sled inserting with a flush every 100
//!    records (target: at least 0.6);
//! 2. one writer's durable append, vs one raw insert + flush (target: at most 1.3x the time);
//! 3. replay of the whole log with decode, vs a raw scan + decode (target: at least 0.7);
//! 4. bytes on disk per event, vs raw sled (target: at most 1.3).
//! 5. the cost of the storage seam: the engine's calls (a lone append, a short stream read,
//!    a replay batch) through `&dyn EventStore` against the same calls on the concrete
//!    `SledLog`, alternating, on one store: the measurement behind choosing `dyn` over a
//!    type parameter (`docs/decisions/0008-one-command-path-and-storage-seam.md`).
//!
//! Raw sled's `flush` does not make data power-safe (sled #1452); our log adds an `fdatasync`
//! per commit group. So scenarios 1 and 2 are also reported against raw sled + `fdatasync`
//! (the same durability) and with our log in `Durability::Flush` (sled's own durability).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use civicflow::core::{
    Actor, AppendRequest, CorrelationId, Durability, EventStore, EventType, ExpectedVersion,
    NewEvent, Position, RecordedEvent, SledLog, SledLogConfig, StreamId, Timestamp, Version,
};

/// How big the workloads are.
struct Sizes {
    rounds: usize,
    writers: usize,
    appends_per_writer: usize,
    single_appends: usize,
    replay_events: usize,
    disk_events: usize,
}

const FULL: Sizes = Sizes {
    rounds: 5,
    writers: 64,
    appends_per_writer: 500,
    single_appends: 2000,
    replay_events: 200_000,
    disk_events: 100_000,
};
const QUICK: Sizes = Sizes {
    rounds: 2,
    writers: 64,
    appends_per_writer: 50,
    single_appends: 200,
    replay_events: 20_000,
    disk_events: 10_000,
};

/// A payload the size of a typical case event (about 200 bytes of JSON-like text).
fn payload(i: usize) -> Vec<u8> {
    format!(
        "{{\"case\":\"{i:08}\",\"title\":\"Street light out at Xinmalu Impression\",\"unit\":\"tonghui/grid-3\",\
         \"note\":\"Resident reported at the door; grid worker to contact the enterprise liaison today.\"}}"
    )
    .into_bytes()
}

fn actor() -> Actor {
    Actor::parse("li.wei", "grid_worker", "tonghui/grid-3").expect("a valid actor")
}

fn event_type() -> EventType {
    EventType::new("NoteAdded").expect("a valid event type")
}

/// An append of `n` events to `stream`, with the payloads numbered from `first`.
fn notes(stream: &StreamId, expected: ExpectedVersion, first: usize, n: usize) -> AppendRequest {
    AppendRequest::to_stream(
        stream.clone(),
        expected,
        (first..first + n)
            .map(|i| NewEvent::new(event_type(), 1, payload(i)))
            .collect(),
        actor(),
        CorrelationId::new_v7(Timestamp::EPOCH),
    )
}

fn one_event(stream: &StreamId, expected: ExpectedVersion, i: usize) -> AppendRequest {
    notes(stream, expected, i, 1)
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("civicflow-bench-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open_log(path: &Path, durability: Durability) -> SledLog {
    SledLogConfig::new(path)
        .durability(durability)
        .open()
        .expect("the log opens")
}

fn raw_sled(path: &Path) -> sled::Db {
    sled::Config::new()
        .path(path)
        .flush_every_ms(None)
        .open()
        .expect("raw sled opens")
}

fn raw_data_file(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path.join("db"))
        .expect("sled's data file")
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The exact stored records of `count` events like the ones the scenarios append.
fn sample_records(count: usize) -> Vec<Vec<u8>> {
    let scratch = Scratch::new("records");
    let log = open_log(&scratch.0, Durability::Flush);
    let streams: Vec<StreamId> = (0..64)
        .map(|w| StreamId::new(format!("case-{w}")).expect("valid"))
        .collect();
    let mut written = 0;
    while written < count {
        let n = (count - written).min(500);
        let stream = &streams[(written / 500) % streams.len()];
        log.append(notes(stream, ExpectedVersion::Any, written, n))
            .expect("append")
            .expect("no conflict");
        written += n;
    }
    let mut records = Vec::with_capacity(count);
    let mut from = Position::FIRST;
    loop {
        let batch = log.read_all(from, 4096).expect("read");
        let Some(last) = batch.last() else { break };
        from = last.position.next();
        records.extend(batch.iter().map(RecordedEvent::to_record_bytes));
    }
    log.close().expect("close");
    records
}

/// Context for scenario 1: what one thread hand-off (wake a sleeping thread, switch to it)
/// costs on this machine, measured by passing a token back and forth over two channels.
fn thread_handoff_micros() -> f64 {
    use std::sync::mpsc::channel;
    let rounds = 20_000u32;
    let (to_echo, from_main) = channel::<u32>();
    let (to_main, from_echo) = channel::<u32>();
    let echo = std::thread::spawn(move || {
        for token in from_main.iter() {
            if to_main.send(token).is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    for token in 0..rounds {
        to_echo.send(token).expect("echo is alive");
        from_echo.recv().expect("echo answers");
    }
    let elapsed = started.elapsed();
    drop(to_echo);
    echo.join().expect("echo");
    elapsed.as_secs_f64() * 1e6 / f64::from(2 * rounds)
}

/// Scenario 1: `writers` threads, each appending single events to its own stream.
fn concurrent_appends(sizes: &Sizes, durability: Durability) -> f64 {
    let scratch = Scratch::new("concurrent");
    let log = Arc::new(open_log(&scratch.0, durability));
    let started = Instant::now();
    let threads: Vec<_> = (0..sizes.writers)
        .map(|w| {
            let log = log.clone();
            let appends = sizes.appends_per_writer;
            std::thread::spawn(move || {
                let stream = StreamId::new(format!("case-{w}")).expect("valid");
                let mut expected = ExpectedVersion::NoStream;
                for i in 0..appends {
                    let appended = log
                        .append(one_event(&stream, expected, i))
                        .expect("append")
                        .expect("each writer owns its stream");
                    expected = ExpectedVersion::Exact(appended.streams[0].last_version);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("writer");
    }
    let rate = (sizes.writers * sizes.appends_per_writer) as f64 / started.elapsed().as_secs_f64();
    let stats = log.stats();
    if std::env::var_os("CIVICFLOW_BENCH_VERBOSE").is_some() {
        eprintln!(
            "  {durability:?}: {} groups, {:.1} appends per group, largest {}",
            stats.commit_groups,
            stats.appends as f64 / stats.commit_groups.max(1) as f64,
            stats.largest_group
        );
    }
    drop(log);
    rate
}

/// Scenario 1, async: `writers` tasks on a two-worker tokio runtime, awaiting `append_async`.
fn concurrent_async_appends(sizes: &Sizes) -> f64 {
    let scratch = Scratch::new("concurrent-async");
    let log = open_log(&scratch.0, Durability::Fsync);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a tokio runtime");
    let appends = sizes.appends_per_writer;
    let started = Instant::now();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..sizes.writers)
            .map(|w| {
                let log = log.clone();
                tokio::spawn(async move {
                    let stream = StreamId::new(format!("case-{w}")).expect("valid");
                    let mut expected = ExpectedVersion::NoStream;
                    for i in 0..appends {
                        let appended = log
                            .append_async(one_event(&stream, expected, i))
                            .await
                            .expect("append")
                            .expect("each task owns its stream");
                        expected = ExpectedVersion::Exact(appended.streams[0].last_version);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
    });
    (sizes.writers * appends) as f64 / started.elapsed().as_secs_f64()
}

/// Baseline 1: raw sled, one insert per record, a flush (and optionally an fdatasync) every
/// 100 records.
fn raw_batch_flush(records: &[Vec<u8>], fsync: bool) -> f64 {
    let scratch = Scratch::new("raw-batch");
    let db = raw_sled(&scratch.0);
    let tree = db.open_tree("raw").expect("tree");
    let file = raw_data_file(&scratch.0);
    let started = Instant::now();
    for (i, record) in records.iter().enumerate() {
        tree.insert((i as u64 + 1).to_be_bytes(), record.as_slice())
            .expect("insert");
        if i % 100 == 99 || i + 1 == records.len() {
            db.flush().expect("flush");
            if fsync {
                file.sync_data().expect("fdatasync");
            }
        }
    }
    records.len() as f64 / started.elapsed().as_secs_f64()
}

/// Scenario 2: one writer, one event per append; returns seconds per append.
fn single_appends(sizes: &Sizes, durability: Durability) -> f64 {
    let scratch = Scratch::new("single");
    let log = open_log(&scratch.0, durability);
    let stream = StreamId::new("case-single").expect("valid");
    // Warm up: the first appends create files and the stream.
    for i in 0..20 {
        log.append(one_event(&stream, ExpectedVersion::Any, i))
            .expect("append")
            .expect("any");
    }
    let started = Instant::now();
    for i in 0..sizes.single_appends {
        log.append(one_event(&stream, ExpectedVersion::Any, i))
            .expect("append")
            .expect("any");
    }
    started.elapsed().as_secs_f64() / sizes.single_appends as f64
}

/// Baseline 2: raw sled, insert + flush (+ fdatasync) per record; seconds per record.
fn raw_single(records: &[Vec<u8>], fsync: bool) -> f64 {
    let scratch = Scratch::new("raw-single");
    let db = raw_sled(&scratch.0);
    let tree = db.open_tree("raw").expect("tree");
    let file = raw_data_file(&scratch.0);
    for (i, record) in records.iter().take(20).enumerate() {
        tree.insert((i as u64 + 1).to_be_bytes(), record.as_slice())
            .expect("insert");
        db.flush().expect("flush");
    }
    let started = Instant::now();
    for (i, record) in records.iter().enumerate() {
        tree.insert((i as u64 + 100).to_be_bytes(), record.as_slice())
            .expect("insert");
        db.flush().expect("flush");
        if fsync {
            file.sync_data().expect("fdatasync");
        }
    }
    started.elapsed().as_secs_f64() / records.len() as f64
}

/// Fills a log with `count` events from 64 writers in appends of 10, and closes it.
fn fill_log(path: &Path, count: usize) {
    let log = Arc::new(open_log(path, Durability::Flush));
    let per_writer = count / 64;
    let threads: Vec<_> = (0..64)
        .map(|w| {
            let log = log.clone();
            std::thread::spawn(move || {
                let stream = StreamId::new(format!("case-{w}")).expect("valid");
                let mut i = 0;
                while i < per_writer {
                    let n = (per_writer - i).min(10);
                    log.append(notes(&stream, ExpectedVersion::Any, i, n))
                        .expect("append")
                        .expect("any");
                    i += n;
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("writer");
    }
    Arc::try_unwrap(log)
        .expect("writers are done")
        .close()
        .expect("close");
}

/// Scenario 3: replay the whole log with decode; events per second.
fn replay(path: &Path) -> (f64, usize) {
    let log = open_log(path, Durability::Flush);
    let started = Instant::now();
    let mut from = Position::FIRST;
    let mut count = 0usize;
    let mut checksum = 0u64;
    loop {
        let batch = log.read_all(from, 1024).expect("read");
        let Some(last) = batch.last() else { break };
        from = last.position.next();
        count += batch.len();
        checksum = batch
            .iter()
            .fold(checksum, |sum, e| sum.wrapping_add(e.payload.len() as u64));
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    std::hint::black_box(checksum);
    log.close().expect("close");
    (rate, count)
}

/// Writes `records` to raw sled, one key each, flushing every 100, and closes it.
fn fill_raw(path: &Path, records: &[Vec<u8>]) {
    let db = raw_sled(path);
    let tree = db.open_tree("raw").expect("tree");
    for (i, record) in records.iter().enumerate() {
        tree.insert((i as u64 + 1).to_be_bytes(), record.as_slice())
            .expect("insert");
        if i % 100 == 99 {
            db.flush().expect("flush");
        }
    }
    db.flush().expect("flush");
}

/// Baseline 3: raw sled scan + the same decode; events per second.
fn raw_replay(path: &Path) -> f64 {
    let db = raw_sled(path);
    let tree = db.open_tree("raw").expect("tree");
    let started = Instant::now();
    let mut count = 0usize;
    let mut checksum = 0u64;
    for item in tree.iter() {
        let (_, value) = item.expect("read");
        let event = RecordedEvent::from_record_bytes(&value, civicflow::core::ChainHash::GENESIS)
            .expect("decode");
        checksum = checksum.wrapping_add(event.payload.len() as u64);
        count += 1;
    }
    std::hint::black_box(checksum);
    count as f64 / started.elapsed().as_secs_f64()
}

/// Bytes the directory's files occupy: allocated blocks, and file lengths.
fn disk_bytes(path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut allocated = 0;
    let mut apparent = 0;
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let entry = entry.expect("entry");
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                allocated += meta.blocks() * 512;
                apparent += meta.len();
            }
        }
    }
    (allocated, apparent)
}

/// Scenario 5: nanoseconds per call of each workload, through `dyn` and statically, on one
/// store, alternating the two `rounds` times (medians).
fn dispatch(sizes: &Sizes) -> Vec<(&'static str, f64, f64)> {
    /// A call sequence, run against any store (static when `S` is concrete).
    fn appends<S: EventStore + ?Sized>(log: &S, stream: &StreamId, n: usize, from: usize) -> f64 {
        let started = Instant::now();
        for i in from..from + n {
            log.append(one_event(stream, ExpectedVersion::Any, i))
                .expect("append")
                .expect("any");
        }
        started.elapsed().as_secs_f64() * 1e9 / n as f64
    }
    fn short_reads<S: EventStore + ?Sized>(log: &S, streams: &[StreamId], n: usize) -> f64 {
        let started = Instant::now();
        let mut read = 0usize;
        for i in 0..n {
            read += log
                .read_stream(&streams[i % streams.len()], Version::FIRST, 1024)
                .expect("read")
                .len();
        }
        std::hint::black_box(read);
        started.elapsed().as_secs_f64() * 1e9 / n as f64
    }
    fn replays<S: EventStore + ?Sized>(log: &S) -> f64 {
        let started = Instant::now();
        let (mut from, mut batches) = (Position::FIRST, 0usize);
        loop {
            let batch = log.read_all(from, 1024).expect("read");
            let Some(last) = batch.last() else { break };
            from = last.position.next();
            batches += 1;
        }
        started.elapsed().as_secs_f64() * 1e9 / batches.max(1) as f64
    }

    let scratch = Scratch::new("dispatch");
    let log = open_log(&scratch.0, Durability::Flush);
    // A store like the engine's: many short streams (cases of a few events each).
    let streams: Vec<StreamId> = (0..256)
        .map(|i| StreamId::new(format!("case-{i}")).expect("valid"))
        .collect();
    for round in 0..8 {
        for stream in &streams {
            log.append(one_event(stream, ExpectedVersion::Any, round))
                .expect("append")
                .expect("any");
        }
    }
    let dynamic: &dyn EventStore = &log;
    let lone = StreamId::new("case-lone").expect("valid");
    let reads = sizes.single_appends * 20;
    let (mut append_s, mut append_d) = (Vec::new(), Vec::new());
    let (mut read_s, mut read_d) = (Vec::new(), Vec::new());
    let (mut replay_s, mut replay_d) = (Vec::new(), Vec::new());
    for round in 0..sizes.rounds * 2 {
        let from = round * sizes.single_appends;
        // Alternate which goes first, so that warming up favours neither.
        if round % 2 == 0 {
            append_s.push(appends(&log, &lone, sizes.single_appends, from));
            append_d.push(appends(
                dynamic,
                &lone,
                sizes.single_appends,
                from + 1_000_000,
            ));
            read_s.push(short_reads(&log, &streams, reads));
            read_d.push(short_reads(dynamic, &streams, reads));
            replay_s.push(replays(&log));
            replay_d.push(replays(dynamic));
        } else {
            append_d.push(appends(
                dynamic,
                &lone,
                sizes.single_appends,
                from + 1_000_000,
            ));
            append_s.push(appends(&log, &lone, sizes.single_appends, from));
            read_d.push(short_reads(dynamic, &streams, reads));
            read_s.push(short_reads(&log, &streams, reads));
            replay_d.push(replays(dynamic));
            replay_s.push(replays(&log));
        }
    }
    log.close().expect("close");
    vec![
        (
            "a lone append (Durability::Flush)",
            median(append_s),
            median(append_d),
        ),
        (
            "a case's stream read (8 events)",
            median(read_s),
            median(read_d),
        ),
        (
            "a replay batch of 1024 events",
            median(replay_s),
            median(replay_d),
        ),
    ]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // `--only N` runs one scenario (for profiling).
    let only: Option<u32> = std::env::args()
        .skip_while(|a| a != "--only")
        .nth(1)
        .and_then(|n| n.parse().ok());
    let wanted = |n: u32| only.is_none_or(|o| o == n);
    let sizes = if quick { &QUICK } else { &FULL };
    let total_concurrent = sizes.writers * sizes.appends_per_writer;
    let records = sample_records(
        total_concurrent
            .max(sizes.replay_events)
            .max(sizes.disk_events),
    );
    let record_bytes: usize = records.iter().take(1000).map(Vec::len).sum::<usize>() / 1000;
    println!(
        "records: {} bytes each on average (payload {} bytes)",
        record_bytes,
        payload(0).len()
    );

    // 1. Concurrent durable appends.
    if wanted(1) {
        let mut ours = Vec::new();
        let mut ours_flush = Vec::new();
        let mut raw = Vec::new();
        let mut raw_fsync = Vec::new();
        let mut ours_async = Vec::new();
        for _ in 0..sizes.rounds {
            ours_async.push(concurrent_async_appends(sizes));
            ours.push(concurrent_appends(sizes, Durability::Fsync));
            ours_flush.push(concurrent_appends(sizes, Durability::Flush));
            raw.push(raw_batch_flush(&records[..total_concurrent], false));
            raw_fsync.push(raw_batch_flush(&records[..total_concurrent], true));
        }
        let (ours, ours_flush, raw, raw_fsync) = (
            median(ours),
            median(ours_flush),
            median(raw),
            median(raw_fsync),
        );
        println!(
            "\n## 1. durable appends, {} writers x {} single-event appends",
            sizes.writers, sizes.appends_per_writer
        );
        println!("| what | events/s | ratio to raw sled batch+flush |");
        println!("|---|---:|---:|");
        println!("| raw sled, insert x100 + flush | {raw:.0} | 1.00 |");
        println!(
            "| raw sled, insert x100 + flush + fdatasync | {raw_fsync:.0} | {:.2} |",
            raw_fsync / raw
        );
        println!(
            "| civicflow log, Durability::Fsync (default) | {ours:.0} | **{:.2}** |",
            ours / raw
        );
        println!(
            "| civicflow log, Durability::Flush | {ours_flush:.0} | {:.2} |",
            ours_flush / raw
        );
        let ours_async = median(ours_async);
        println!(
            "| civicflow log, Fsync, {} async tasks on 2 tokio workers | {ours_async:.0} | {:.2} |",
            sizes.writers,
            ours_async / raw
        );
        println!(
            "\nOne thread hand-off (wake a sleeping thread and switch to it) costs {:.1} µs here.",
            thread_handoff_micros()
        );
    }

    // 2. One writer.
    if wanted(2) {
        let mut ours = Vec::new();
        let mut ours_flush = Vec::new();
        let mut raw = Vec::new();
        let mut raw_fsync = Vec::new();
        for _ in 0..sizes.rounds {
            ours.push(single_appends(sizes, Durability::Fsync));
            ours_flush.push(single_appends(sizes, Durability::Flush));
            raw.push(raw_single(&records[..sizes.single_appends], false));
            raw_fsync.push(raw_single(&records[..sizes.single_appends], true));
        }
        let (ours, ours_flush, raw, raw_fsync) = (
            median(ours),
            median(ours_flush),
            median(raw),
            median(raw_fsync),
        );
        let us = |s: f64| s * 1e6;
        println!(
            "\n## 2. one writer, {} sequential single-event appends",
            sizes.single_appends
        );
        println!(
            "| what | µs per append | ratio to raw insert+flush | ratio to raw insert+flush+fdatasync |"
        );
        println!("|---|---:|---:|---:|");
        println!(
            "| raw sled, insert + flush | {:.1} | 1.00 | {:.2} |",
            us(raw),
            raw / raw_fsync
        );
        println!(
            "| raw sled, insert + flush + fdatasync | {:.1} | {:.2} | 1.00 |",
            us(raw_fsync),
            raw_fsync / raw
        );
        println!(
            "| civicflow log, Durability::Fsync (default) | {:.1} | {:.2} | **{:.2}** |",
            us(ours),
            ours / raw,
            ours / raw_fsync
        );
        println!(
            "| civicflow log, Durability::Flush | {:.1} | **{:.2}** | {:.2} |",
            us(ours_flush),
            ours_flush / raw,
            ours_flush / raw_fsync
        );
    }

    // 3. Replay.
    if wanted(3) {
        let log_dir = Scratch::new("replay-log");
        let raw_dir = Scratch::new("replay-raw");
        fill_log(&log_dir.0, sizes.replay_events);
        fill_raw(&raw_dir.0, &records[..sizes.replay_events]);
        let mut ours = Vec::new();
        let mut raw = Vec::new();
        let mut replayed = 0;
        for _ in 0..sizes.rounds {
            let (rate, count) = replay(&log_dir.0);
            ours.push(rate);
            replayed = count;
            raw.push(raw_replay(&raw_dir.0));
        }
        let (ours, raw) = (median(ours), median(raw));
        println!("\n## 3. replay of {replayed} events with decode");
        println!("| what | events/s | ratio |");
        println!("|---|---:|---:|");
        println!("| raw sled, scan + decode | {raw:.0} | 1.00 |");
        println!(
            "| civicflow log, read_all in batches of 1024 | {ours:.0} | **{:.2}** |",
            ours / raw
        );
    }

    // 4. Bytes on disk, written the way scenario 1 writes (64 writers, single-event appends).
    if wanted(4) {
        let log_dir = Scratch::new("disk-log");
        let raw_dir = Scratch::new("disk-raw");
        let per_writer = sizes.disk_events / 64;
        {
            let log = Arc::new(open_log(&log_dir.0, Durability::Flush));
            let threads: Vec<_> = (0..64)
                .map(|w| {
                    let log = log.clone();
                    std::thread::spawn(move || {
                        let stream = StreamId::new(format!("case-{w}")).expect("valid");
                        for i in 0..per_writer {
                            log.append(one_event(&stream, ExpectedVersion::Any, i))
                                .expect("append")
                                .expect("any");
                        }
                    })
                })
                .collect();
            for thread in threads {
                thread.join().expect("writer");
            }
            Arc::try_unwrap(log).expect("done").close().expect("close");
        }
        let events = per_writer * 64;
        fill_raw(&raw_dir.0, &records[..events]);
        // Let both settle: reopen and close once, as a restarted service would.
        drop(open_log(&log_dir.0, Durability::Flush));
        drop(raw_sled(&raw_dir.0));
        let (ours_alloc, ours_len) = disk_bytes(&log_dir.0);
        let (raw_alloc, raw_len) = disk_bytes(&raw_dir.0);
        let per_event = |bytes: u64| bytes as f64 / events as f64;
        println!("\n## 4. bytes on disk for {events} events");
        println!("| what | allocated bytes/event | file bytes/event | ratio (allocated) |");
        println!("|---|---:|---:|---:|");
        println!(
            "| raw sled, one key per record | {:.0} | {:.0} | 1.00 |",
            per_event(raw_alloc),
            per_event(raw_len)
        );
        println!(
            "| civicflow log | {:.0} | {:.0} | **{:.2}** |",
            per_event(ours_alloc),
            per_event(ours_len),
            ours_alloc as f64 / raw_alloc as f64
        );
    }

    // 5. The storage seam's cost: the same calls through `dyn EventStore` and statically.
    if wanted(5) {
        println!(
            "\n## 5. the storage seam: calls through `&dyn EventStore` vs the concrete `SledLog`"
        );
        println!("| call | static ns | dyn ns | ratio dyn/static |");
        println!("|---|---:|---:|---:|");
        for (what, static_ns, dyn_ns) in dispatch(sizes) {
            println!(
                "| {what} | {static_ns:.0} | {dyn_ns:.0} | **{:.3}** |",
                dyn_ns / static_ns
            );
        }
    }
}
