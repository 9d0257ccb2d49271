//! The PostgreSQL log (`civicflow_postgres::PgLog`, issue 15) against PostgreSQL used
//! directly, measured in the same run on the same throwaway cluster, reported as ratios.
//!
//! Run: `cargo bench --bench postgres_log` (add `-- --quick` for a short smoke run, `-- --only N`
//! for one scenario). The bench starts its own cluster (`testing::Cluster`: the machine's
//! PostgreSQL binaries, a temporary directory, a free loopback port, `fsync` and
//! `synchronous_commit` on) and stops it at the end. Results and the machine they came from
//! are recorded in `docs/benchmarks.md`.
//!
//! Every baseline is tokio-postgres talking to the server with **no civicflow code**, writing
//! exactly the rows `PgLog` writes (position, stream, version, chain hash, record bytes: taken
//! from a store `PgLog` filled at the start of the run) into a plain table of the same shape,
//! so a ratio measures what the log adds: the committer and its hand-offs, the head row, the
//! lookups, the notification, planning and encoding.
//!
//! Scenarios (median of several rounds each, fewer with `--quick`):
//! 1. durable appends from 64 threads, one event per append, each to its own stream with exact
//!    expected versions, vs one raw client inserting the same rows 100 per transaction
//!    (`BEGIN; INSERT … SELECT FROM unnest(arrays); COMMIT`, pipelined); for reference also the
//!    raw variant that updates a one-row head table first in each transaction, raw with 64 rows
//!    per transaction (the most one commit group of 64 single-event writers can hold), and 64
//!    async tasks on a two-worker tokio runtime through `append_async` (target: at least 0.5);
//! 2. a lone writer's sequential durable appends (median and p99), vs one row per transaction
//!    through one raw client: `BEGIN; INSERT; COMMIT` pipelined in one round trip (as `PgLog`
//!    sends its writes), and the same as three sequential round trips (target: at most 1.5x);
//! 3. catch-up replay of the whole log with `read_all` pages of 4096, decoding every event, vs
//!    one raw `SELECT position, hash, record … ORDER BY position` over the same table with the
//!    same decode (and, for reference, raw keyset pages of 4096);
//! 4. two `PgLog` instances (two `Database::connect` of one store URL) with 32 writers each vs
//!    one with 64; and the lag from an append acknowledged on instance A to its arrival at a
//!    live subscription on instance B;
//! 5. message-db (github.com/message-db/message-db), if `CIVICFLOW_MESSAGE_DB_DIR` names a
//!    checkout of it (the repository, or its `database` directory): its SQL files are
//!    installed into a database of the bench's cluster at run time, and 64 writers call
//!    `message_store.write_message` on streams of one category. Nothing of message-db is in
//!    this repository.
//!
//! The bench never asserts timings: it prints them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use civicflow::core::{
    Actor, AppendRequest, ChainHash, CorrelationId, EventStore, EventType, ExpectedVersion,
    NewEvent, Position, RecordedEvent, StreamId, Timestamp,
};
use civicflow_postgres::testing::Cluster;
use civicflow_postgres::{Database, PgLog};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};

/// How big the workloads are.
struct Sizes {
    rounds: usize,
    writers: usize,
    appends_per_writer: usize,
    single_appends: usize,
    replay_events: usize,
    lag_samples: usize,
    message_db_rounds: usize,
    message_db_per_writer: usize,
}

const FULL: Sizes = Sizes {
    rounds: 5,
    writers: 64,
    appends_per_writer: 500,
    single_appends: 1000,
    replay_events: 200_000,
    lag_samples: 500,
    message_db_rounds: 3,
    message_db_per_writer: 100,
};
const QUICK: Sizes = Sizes {
    rounds: 2,
    writers: 64,
    appends_per_writer: 20,
    single_appends: 100,
    replay_events: 20_000,
    lag_samples: 50,
    message_db_rounds: 1,
    message_db_per_writer: 5,
};

/// Rows per transaction of the raw batch baseline.
const RAW_BATCH: usize = 100;

/// Events per page of the replay.
const PAGE: usize = 4096;

/// The lag scenario's pace: one append on instance A every this often.
const LAG_EVERY: Duration = Duration::from_millis(5);

/// A payload the size of a typical case event (about 200 bytes of JSON-like text); the same
/// as `benches/log_vs_sled.rs`, so records are the same 284 bytes.
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

fn stream(name: String) -> StreamId {
    StreamId::new(name).expect("a valid stream id")
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The value below which `q` (0..1) of `values` lie (nearest rank).
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// `/proc/loadavg`'s first three figures (other builds may share the machine).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

/// A single-threaded runtime for one raw client: no hand-off between threads at all.
fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A raw connection (its connection task spawned on the current runtime).
async fn raw_client(config: &tokio_postgres::Config) -> Client {
    let (client, connection) = config.connect(NoTls).await.expect("a raw connection");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// The driver's settings for `url` (a store URL's `?schema=` is civicflow's, not the driver's:
/// raw queries name the schema themselves).
fn config_of(url: &str) -> tokio_postgres::Config {
    let base = url.split_once('?').map_or(url, |(base, _)| base);
    base.parse().expect("the cluster's URL parses")
}

/// A schema name never used before in this run, for a raw baseline's tables.
fn fresh_raw_schema() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "raw_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates `schema` with a plain table of the log's shape (and a one-row head table).
async fn create_raw_tables(client: &Client, schema: &str) {
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.events (
                 position bigint PRIMARY KEY,
                 stream text NOT NULL,
                 version bigint NOT NULL,
                 hash bytea NOT NULL,
                 record bytea NOT NULL,
                 UNIQUE (stream, version));
             CREATE TABLE {schema}.head (
                 one boolean PRIMARY KEY DEFAULT true CHECK (one),
                 position bigint NOT NULL);
             INSERT INTO {schema}.head VALUES (true, 0);"
        ))
        .await
        .expect("the raw tables");
}

async fn drop_raw_schema(client: &Client, schema: &str) {
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop the raw schema");
}

/// The server's checkpoints so far (a checkpoint in a measurement makes its commits slower:
/// the data files are flushed to the same disk, and the pages changed next are written whole
/// to the WAL again).
fn checkpoints(cluster: &Cluster) -> String {
    let counts = cluster.sql("SELECT checkpoints_timed, checkpoints_req FROM pg_stat_bgwriter");
    let (timed, requested) = counts.trim().split_once('|').unwrap_or(("?", "?"));
    format!("(checkpoints so far: {timed} timed, {requested} requested)")
}

/// The rows of a store, column by column, as `PgLog` wrote them.
struct Rows {
    positions: Vec<i64>,
    streams: Vec<String>,
    versions: Vec<i64>,
    hashes: Vec<Vec<u8>>,
    records: Vec<Vec<u8>>,
}

impl Rows {
    fn len(&self) -> usize {
        self.positions.len()
    }
}

/// A fresh store on the cluster: its URL and its log.
fn open_store(cluster: &Cluster) -> (String, PgLog) {
    let url = cluster.fresh_store_url();
    let database = Database::connect(&url).expect("the store connects");
    let log = PgLog::open(&database).expect("the log opens");
    (url, log)
}

/// Closes the log, lets its connections go, and drops the store's schema.
fn close_store(cluster: &Cluster, url: &str, log: PgLog) {
    log.close().expect("the log closes");
    drop(log);
    cluster.drop_store(url);
}

/// The schema in a store URL (`…?schema=NAME`).
fn schema_of(url: &str) -> String {
    url.split_once("?schema=")
        .map(|(_, schema)| schema.to_owned())
        .expect("a store URL names its schema")
}

/// Fills `log` with about `count` events from 64 writers (streams `case-0` … `case-63`), in
/// appends of up to `per_append` events.
fn fill(log: &PgLog, count: usize, per_append: usize) {
    let per_writer = count.div_ceil(64);
    let threads: Vec<_> = (0..64)
        .map(|w| {
            let log = log.clone();
            std::thread::spawn(move || {
                let stream = stream(format!("case-{w}"));
                let mut i = 0;
                while i < per_writer {
                    let n = (per_writer - i).min(per_append);
                    log.append(notes(&stream, ExpectedVersion::Any, i, n))
                        .expect("append")
                        .expect("any version");
                    i += n;
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a fill writer");
    }
}

/// The first `count` rows of the store at `url`, read raw.
fn read_rows(url: &str, count: usize) -> Rows {
    let schema = schema_of(url);
    client_runtime().block_on(async {
        let client = raw_client(&config_of(url)).await;
        let limit = i64::try_from(count).expect("a row count");
        let rows = client
            .query(
                &format!(
                    "SELECT position, stream, version, hash, record FROM \"{schema}\".events \
                     ORDER BY position LIMIT $1"
                ),
                &[&limit],
            )
            .await
            .expect("read the rows");
        let mut out = Rows {
            positions: Vec::with_capacity(rows.len()),
            streams: Vec::with_capacity(rows.len()),
            versions: Vec::with_capacity(rows.len()),
            hashes: Vec::with_capacity(rows.len()),
            records: Vec::with_capacity(rows.len()),
        };
        for row in rows {
            out.positions.push(row.get(0));
            out.streams.push(row.get(1));
            out.versions.push(row.get(2));
            out.hashes.push(row.get(3));
            out.records.push(row.get(4));
        }
        out
    })
}

/// Commit-group figures of a log, for the notes under a table.
fn group_note(log: &PgLog) -> String {
    let stats = log.stats();
    format!(
        "{} groups, {:.1} appends per group, largest {}",
        stats.commit_groups,
        stats.appends as f64 / stats.commit_groups.max(1) as f64,
        stats.largest_group
    )
}

/// One thread per `(log, stream)`, each appending `per_writer` single events to its stream
/// with exact expected versions, all released together; events per second.
fn threaded_writers(writers: &[(PgLog, StreamId)], per_writer: usize) -> f64 {
    let barrier = Arc::new(Barrier::new(writers.len() + 1));
    let threads: Vec<_> = writers
        .iter()
        .map(|(log, stream)| {
            let (log, stream, barrier) = (log.clone(), stream.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let mut expected = ExpectedVersion::NoStream;
                for i in 0..per_writer {
                    let appended = log
                        .append(one_event(&stream, expected, i))
                        .expect("append")
                        .expect("each writer owns its stream");
                    expected = ExpectedVersion::Exact(appended.streams[0].last_version);
                }
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    for thread in threads {
        thread.join().expect("a writer");
    }
    (writers.len() * per_writer) as f64 / started.elapsed().as_secs_f64()
}

/// What one thread hand-off (wake a sleeping thread, switch to it) costs on this machine,
/// measured by passing a token back and forth over two channels (as `log_vs_sled` does).
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

/// One append to a stream of its own, so that the committer's connection is made (and its
/// statements prepared) before the clock starts.
fn warm_up(log: &PgLog) {
    log.append(one_event(
        &stream("warm-up".into()),
        ExpectedVersion::Any,
        0,
    ))
    .expect("append")
    .expect("any version");
}

/// Scenario 1 (and 4's single instance): one fresh `PgLog`, `writers` threads.
fn one_instance(cluster: &Cluster, sizes: &Sizes) -> (f64, String) {
    let (url, log) = open_store(cluster);
    warm_up(&log);
    let writers: Vec<_> = (0..sizes.writers)
        .map(|w| (log.clone(), stream(format!("case-{w}"))))
        .collect();
    let rate = threaded_writers(&writers, sizes.appends_per_writer);
    drop(writers);
    // Time per commit group (the warm-up's group left out).
    let events = sizes.writers * sizes.appends_per_writer;
    let groups = log.stats().commit_groups.saturating_sub(1).max(1);
    let note = format!(
        "{}, {:.2} ms per group",
        group_note(&log),
        events as f64 / rate * 1e3 / groups as f64
    );
    close_store(cluster, &url, log);
    (rate, note)
}

/// Scenario 1, async: `writers` tasks on a two-worker tokio runtime awaiting `append_async`.
fn one_instance_async(cluster: &Cluster, sizes: &Sizes) -> f64 {
    let (url, log) = open_store(cluster);
    warm_up(&log);
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
                    let stream = stream(format!("case-{w}"));
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
            task.await.expect("a writer task");
        }
    });
    let rate = (sizes.writers * appends) as f64 / started.elapsed().as_secs_f64();
    drop(runtime);
    close_store(cluster, &url, log);
    rate
}

/// Baseline 1: one raw client inserting `rows[..n]` into a plain table, `batch` rows per
/// transaction (`BEGIN; [UPDATE head;] INSERT … unnest; COMMIT`, pipelined in one round
/// trip); events per second.
fn raw_batches(cluster: &Cluster, rows: &Rows, n: usize, batch: usize, head_first: bool) -> f64 {
    client_runtime().block_on(async {
        let client = raw_client(&config_of(&cluster.url())).await;
        let schema = fresh_raw_schema();
        create_raw_tables(&client, &schema).await;
        let insert = client
            .prepare(&format!(
                "INSERT INTO {schema}.events (position, stream, version, hash, record)
                 SELECT * FROM unnest($1::int8[], $2::text[], $3::int8[], $4::bytea[], $5::bytea[])"
            ))
            .await
            .expect("prepare the insert");
        let update = client
            .prepare(&format!("UPDATE {schema}.head SET position = $1"))
            .await
            .expect("prepare the update");
        let started = Instant::now();
        for start in (0..n).step_by(batch) {
            let end = (start + batch).min(n);
            let (p, s, v, h, r) = (
                &rows.positions[start..end],
                &rows.streams[start..end],
                &rows.versions[start..end],
                &rows.hashes[start..end],
                &rows.records[start..end],
            );
            let params: [&(dyn ToSql + Sync); 5] = [&p, &s, &v, &h, &r];
            if head_first {
                let last = rows.positions[end - 1];
                let head: [&(dyn ToSql + Sync); 1] = [&last];
                tokio::try_join!(
                    client.batch_execute("BEGIN"),
                    client.execute(&update, &head),
                    client.execute(&insert, &params),
                    client.batch_execute("COMMIT"),
                )
                .expect("a raw transaction");
            } else {
                tokio::try_join!(
                    client.batch_execute("BEGIN"),
                    client.execute(&insert, &params),
                    client.batch_execute("COMMIT"),
                )
                .expect("a raw transaction");
            }
        }
        let rate = n as f64 / started.elapsed().as_secs_f64();
        drop_raw_schema(&client, &schema).await;
        rate
    })
}

/// Scenario 2: one writer's sequential single-event appends; microseconds each.
fn lone_appends(cluster: &Cluster, n: usize) -> Vec<f64> {
    let (url, log) = open_store(cluster);
    let stream = stream("case-single".into());
    // Warm up: the committer's connection, the stream's first lookup.
    for i in 0..20 {
        log.append(one_event(&stream, ExpectedVersion::Any, i))
            .expect("append")
            .expect("any version");
    }
    let mut micros = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        log.append(one_event(&stream, ExpectedVersion::Any, i))
            .expect("append")
            .expect("any version");
        micros.push(started.elapsed().as_secs_f64() * 1e6);
    }
    close_store(cluster, &url, log);
    micros
}

/// How the raw lone-row baseline talks to the server.
#[derive(Clone, Copy)]
enum RawLone {
    /// `BEGIN`, `INSERT`, `COMMIT` sent together, one round trip (as `PgLog` writes).
    Pipelined,
    /// Each statement awaited before the next: three round trips.
    Sequential,
}

/// Baseline 2: one row per transaction through one raw client; microseconds each.
fn raw_lone(cluster: &Cluster, rows: &Rows, n: usize, how: RawLone) -> Vec<f64> {
    client_runtime().block_on(async {
        let client = raw_client(&config_of(&cluster.url())).await;
        let schema = fresh_raw_schema();
        create_raw_tables(&client, &schema).await;
        let insert = client
            .prepare(&format!(
                "INSERT INTO {schema}.events (position, stream, version, hash, record)
                 VALUES ($1, $2, $3, $4, $5)"
            ))
            .await
            .expect("prepare the insert");
        let mut micros = Vec::with_capacity(n);
        for i in 0..n + 20 {
            let params: [&(dyn ToSql + Sync); 5] = [
                &rows.positions[i],
                &rows.streams[i],
                &rows.versions[i],
                &rows.hashes[i],
                &rows.records[i],
            ];
            let started = Instant::now();
            match how {
                RawLone::Pipelined => {
                    tokio::try_join!(
                        client.batch_execute("BEGIN"),
                        client.execute(&insert, &params),
                        client.batch_execute("COMMIT"),
                    )
                    .expect("a raw transaction");
                }
                RawLone::Sequential => {
                    client.batch_execute("BEGIN").await.expect("BEGIN");
                    client.execute(&insert, &params).await.expect("INSERT");
                    client.batch_execute("COMMIT").await.expect("COMMIT");
                }
            }
            // The first 20 warm up, as for the log.
            if i >= 20 {
                micros.push(started.elapsed().as_secs_f64() * 1e6);
            }
        }
        drop_raw_schema(&client, &schema).await;
        micros
    })
}

/// Scenario 3: the whole log through `read_all` pages of 4096 (decoded by the log); events
/// per second and the count.
fn replay(url: &str) -> (f64, usize) {
    let database = Database::connect(url).expect("the store connects");
    let log = PgLog::open(&database).expect("the log opens");
    let started = Instant::now();
    let mut from = Position::FIRST;
    let (mut count, mut checksum) = (0usize, 0u64);
    loop {
        let page = log.read_all(from, PAGE).expect("read a page");
        let Some(last) = page.last() else { break };
        from = last.position.next();
        count += page.len();
        checksum = page
            .iter()
            .fold(checksum, |sum, e| sum.wrapping_add(e.payload.len() as u64));
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    std::hint::black_box(checksum);
    log.close().expect("the log closes");
    (rate, count)
}

/// The same decode as the log's: the stored hash and record into a `RecordedEvent`.
fn decode_row(row: &tokio_postgres::Row) -> RecordedEvent {
    let position: i64 = row.get(0);
    std::hint::black_box(position);
    let hash: &[u8] = row.get(1);
    let hash = ChainHash::from_bytes(<[u8; 32]>::try_from(hash).expect("a 32-byte hash"));
    let record: &[u8] = row.get(2);
    RecordedEvent::from_record_bytes(record, hash).expect("a record that decodes")
}

/// Baseline 3: one raw `SELECT … ORDER BY position` of the whole table, every row decoded.
fn raw_replay(url: &str) -> f64 {
    let schema = schema_of(url);
    client_runtime().block_on(async {
        let client = raw_client(&config_of(url)).await;
        let started = Instant::now();
        let rows = client
            .query(
                &format!(
                    "SELECT position, hash, record FROM \"{schema}\".events ORDER BY position"
                ),
                &[],
            )
            .await
            .expect("the raw select");
        let checksum = rows.iter().fold(0u64, |sum, row| {
            sum.wrapping_add(decode_row(row).payload.len() as u64)
        });
        let rate = rows.len() as f64 / started.elapsed().as_secs_f64();
        std::hint::black_box(checksum);
        rate
    })
}

/// Baseline 3, paged like the log: raw keyset pages of 4096 (`WHERE position >= $1 … LIMIT`).
fn raw_replay_pages(url: &str) -> f64 {
    let schema = schema_of(url);
    client_runtime().block_on(async {
        let client = raw_client(&config_of(url)).await;
        let page = client
            .prepare(&format!(
                "SELECT position, hash, record FROM \"{schema}\".events \
                 WHERE position >= $1 ORDER BY position LIMIT $2"
            ))
            .await
            .expect("prepare the page");
        let limit = i64::try_from(PAGE).expect("a page size");
        let started = Instant::now();
        let (mut from, mut count, mut checksum) = (1i64, 0usize, 0u64);
        loop {
            let rows = client
                .query(&page, &[&from, &limit])
                .await
                .expect("a raw page");
            let Some(last) = rows.last() else { break };
            from = last.get::<_, i64>(0) + 1;
            count += rows.len();
            checksum = rows.iter().fold(checksum, |sum, row| {
                sum.wrapping_add(decode_row(row).payload.len() as u64)
            });
        }
        std::hint::black_box(checksum);
        count as f64 / started.elapsed().as_secs_f64()
    })
}

/// Scenario 4: two `PgLog`s on two `Database::connect` of one store URL, `writers / 2`
/// threads on each; total events per second.
fn two_instances(cluster: &Cluster, sizes: &Sizes) -> (f64, String) {
    let url = cluster.fresh_store_url();
    let log_a = PgLog::open(&Database::connect(&url).expect("instance A connects")).expect("A");
    let log_b = PgLog::open(&Database::connect(&url).expect("instance B connects")).expect("B");
    warm_up(&log_a);
    warm_up(&log_b);
    let half = sizes.writers / 2;
    let writers: Vec<_> = (0..half)
        .map(|w| (log_a.clone(), stream(format!("case-a{w}"))))
        .chain((0..half).map(|w| (log_b.clone(), stream(format!("case-b{w}")))))
        .collect();
    let rate = threaded_writers(&writers, sizes.appends_per_writer);
    drop(writers);
    let note = format!("A: {}; B: {}", group_note(&log_a), group_note(&log_b));
    log_a.close().expect("A closes");
    log_b.close().expect("B closes");
    drop((log_a, log_b));
    cluster.drop_store(&url);
    (rate, note)
}

/// Scenario 4, lag: instance A appends one event every `LAG_EVERY`; a live subscription on
/// instance B notes when each arrives. Milliseconds from A's acknowledgement to B's arrival
/// (negative when B had it before A's caller was answered).
fn lag(cluster: &Cluster, samples: usize) -> Vec<f64> {
    const WARM_UP: usize = 5;
    let url = cluster.fresh_store_url();
    let log_a = PgLog::open(&Database::connect(&url).expect("instance A connects")).expect("A");
    let log_b = PgLog::open(&Database::connect(&url).expect("instance B connects")).expect("B");
    let lag_stream = stream("case-lag".into());
    for i in 0..WARM_UP {
        log_a
            .append(one_event(&lag_stream, ExpectedVersion::Any, i))
            .expect("append")
            .expect("any version");
    }
    let total = WARM_UP + samples;
    let mut subscription = log_b.subscribe(Position::FIRST);
    let reader = std::thread::spawn(move || {
        let mut arrivals: Vec<Option<Instant>> = vec![None; total + 1];
        let mut received = 0;
        while received < total {
            match subscription.next_timeout(Duration::from_secs(10)) {
                Ok(Some(event)) => {
                    let at = Instant::now();
                    let index = usize::try_from(event.position.get()).expect("a small position");
                    if let Some(slot) = arrivals.get_mut(index) {
                        *slot = Some(at);
                    }
                    received += 1;
                }
                Ok(None) => {
                    eprintln!("lag: nothing arrived on instance B for 10 s; giving up");
                    break;
                }
                Err(e) => panic!("the subscription on instance B failed: {e}"),
            }
        }
        arrivals
    });
    let mut acks = Vec::with_capacity(samples);
    let started = Instant::now();
    for i in 0..samples {
        let due = started + LAG_EVERY * u32::try_from(i).expect("a small sample count");
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let appended = log_a
            .append(one_event(&lag_stream, ExpectedVersion::Any, WARM_UP + i))
            .expect("append")
            .expect("any version");
        acks.push((appended.last_position, Instant::now()));
    }
    let arrivals = reader.join().expect("the reader on instance B");
    log_a.close().expect("A closes");
    log_b.close().expect("B closes");
    drop((log_a, log_b));
    cluster.drop_store(&url);
    acks.iter()
        .filter_map(|(position, acked)| {
            let index = usize::try_from(position.get()).expect("a small position");
            let arrived = arrivals.get(index).copied().flatten()?;
            Some(match arrived.checked_duration_since(*acked) {
                Some(after) => after.as_secs_f64() * 1e3,
                None => -(acked.duration_since(arrived).as_secs_f64() * 1e3),
            })
        })
        .collect()
}

/// message-db's SQL files, in the order its install scripts run them (the role, views and
/// privileges are left out: the bench connects as the cluster's superuser).
const MESSAGE_DB_FILES: &[&str] = &[
    "schema/message-store.sql",
    "extensions/pgcrypto.sql",
    "tables/messages.sql",
    "types/message.sql",
    "functions/message-store-version.sql",
    "functions/hash-64.sql",
    "functions/acquire-lock.sql",
    "functions/category.sql",
    "functions/is-category.sql",
    "functions/id.sql",
    "functions/cardinal-id.sql",
    "functions/stream-version.sql",
    "functions/write-message.sql",
    "functions/get-stream-messages.sql",
    "functions/get-category-messages.sql",
    "functions/get-last-stream-message.sql",
    "indexes/messages-id.sql",
    "indexes/messages-stream.sql",
    "indexes/messages-category.sql",
];

/// The database the bench installs message-db into.
const MESSAGE_DB_DATABASE: &str = "message_store_bench";

/// message-db's `database` directory, from `CIVICFLOW_MESSAGE_DB_DIR` (the checkout or the
/// directory itself); `Err` says why not.
fn message_db_dir() -> Result<PathBuf, String> {
    let dir = std::env::var_os("CIVICFLOW_MESSAGE_DB_DIR").ok_or_else(|| {
        "skipped: set CIVICFLOW_MESSAGE_DB_DIR to a checkout of github.com/message-db/message-db \
         (or its database/ directory) to measure it"
            .to_owned()
    })?;
    let dir = PathBuf::from(dir);
    [dir.join("database"), dir.clone()]
        .into_iter()
        .find(|candidate| candidate.join("functions/write-message.sql").is_file())
        .ok_or_else(|| {
            format!(
                "skipped: {} holds no functions/write-message.sql (nor database/functions/…)",
                dir.display()
            )
        })
}

/// The connection settings of message-db's database: its functions name its tables without
/// a schema, as its own role's default search path allows.
fn message_db_config(cluster: &Cluster) -> tokio_postgres::Config {
    let mut config = config_of(&cluster.url());
    config.dbname(MESSAGE_DB_DATABASE);
    config.options("-c search_path=message_store,public");
    config
}

/// Installs message-db's SQL from `dir` into a database of its own on the cluster.
fn install_message_db(cluster: &Cluster, dir: &Path) {
    cluster.sql(&format!("CREATE DATABASE {MESSAGE_DB_DATABASE}"));
    let config = message_db_config(cluster);
    client_runtime().block_on(async {
        let client = raw_client(&config).await;
        for file in MESSAGE_DB_FILES {
            let path = dir.join(file);
            let sql = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            client
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("message-db's {file} failed: {e}"));
        }
        let version = client
            .query_one("SELECT message_store.message_store_version()", &[])
            .await
            .expect("message-db answers its version");
        println!("message-db {} installed", version.get::<_, String>(0));
    });
}

/// Scenario 5: `writers` connections on a two-worker runtime, each writing
/// `per_writer` messages with `write_message` to its own stream of category `case`, with
/// exact expected versions; events per second.
fn message_db_writes(cluster: &Cluster, writers: usize, per_writer: usize, round: usize) -> f64 {
    let config = message_db_config(cluster);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let admin = raw_client(&config).await;
        admin
            .batch_execute("TRUNCATE message_store.messages")
            .await
            .expect("empty the messages");
        let mut clients = Vec::with_capacity(writers);
        for _ in 0..writers {
            let client = raw_client(&config).await;
            let write = client
                .prepare(
                    "SELECT message_store.write_message($1, $2, $3, $4::text::jsonb, $5::text::jsonb, $6)",
                )
                .await
                .expect("prepare write_message");
            clients.push((client, write));
        }
        let started = Instant::now();
        let tasks: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(w, (client, write))| {
                tokio::spawn(async move {
                    let stream_name = format!("case-{w}");
                    for i in 0..per_writer {
                        let id = format!("{round:08x}-{w:04x}-4000-8000-{i:012x}");
                        let data = String::from_utf8(payload(i)).expect("a UTF-8 payload");
                        let metadata = format!(
                            "{{\"actor\":\"li.wei\",\"role\":\"grid_worker\",\"unit\":\"tonghui/grid-3\",\
                             \"correlationId\":\"{id}\",\"schemaVersion\":1}}"
                        );
                        let expected = i64::try_from(i).expect("a small count") - 1;
                        client
                            .query_one(
                                &write,
                                &[&id, &stream_name, &"NoteAdded", &data, &metadata, &expected],
                            )
                            .await
                            .expect("write_message");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("a message-db writer");
        }
        (writers * per_writer) as f64 / started.elapsed().as_secs_f64()
    })
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
    println!("load average at start: {}", load_average());

    let cluster = Cluster::start();
    let version = cluster.sql("SHOW server_version");
    let settings = cluster.sql(
        "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings \
         WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'shared_buffers', 'commit_delay')",
    );
    println!(
        "PostgreSQL {} on 127.0.0.1:{} ({})",
        version.trim(),
        cluster.port(),
        settings.trim()
    );

    // The sample store: events written by PgLog, the rows every baseline writes and the log
    // scenario 3 replays.
    let sample_count = sizes
        .replay_events
        .max(total_concurrent)
        .max(sizes.single_appends + 20);
    let (sample_url, sample_log) = open_store(&cluster);
    let filling = Instant::now();
    fill(&sample_log, sample_count, 100);
    println!(
        "sample store: {} events by 64 writers in appends of 100, in {:.1} s ({})",
        sample_log.head().map_or(0, |h| h.position.get()),
        filling.elapsed().as_secs_f64(),
        group_note(&sample_log)
    );
    sample_log.close().expect("the sample log closes");
    drop(sample_log);
    let rows = read_rows(&sample_url, total_concurrent.max(sizes.single_appends + 20));
    let record_bytes = rows.records.iter().take(1000).map(Vec::len).sum::<usize>() / 1000;
    println!(
        "records: {record_bytes} bytes each on average (payload {} bytes), {} sample rows",
        payload(0).len(),
        rows.len()
    );

    // Scenario 5 compares with scenario 1's figures when both ran.
    let mut concurrent_figures: Option<(f64, f64)> = None;

    // 1. Concurrent durable appends.
    if wanted(1) {
        let (mut ours, mut ours_async, mut raw, mut raw_head, mut raw_writers) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut notes = Vec::new();
        for _ in 0..sizes.rounds {
            let (rate, note) = one_instance(&cluster, sizes);
            ours.push(rate);
            notes.push(note);
            ours_async.push(one_instance_async(&cluster, sizes));
            raw.push(raw_batches(
                &cluster,
                &rows,
                total_concurrent,
                RAW_BATCH,
                false,
            ));
            raw_head.push(raw_batches(
                &cluster,
                &rows,
                total_concurrent,
                RAW_BATCH,
                true,
            ));
            raw_writers.push(raw_batches(
                &cluster,
                &rows,
                total_concurrent,
                sizes.writers,
                false,
            ));
        }
        let round_figures = format!("rounds, events/s: PgLog {:.0?}; raw x100 {:.0?}", ours, raw);
        let (ours, ours_async, raw, raw_head, raw_writers) = (
            median(ours),
            median(ours_async),
            median(raw),
            median(raw_head),
            median(raw_writers),
        );
        concurrent_figures = Some((ours, raw));
        println!(
            "\n## 1. durable appends, {} writers x {} single-event appends",
            sizes.writers, sizes.appends_per_writer
        );
        println!("| what | events/s | ratio to raw x100 |");
        println!("|---|---:|---:|");
        println!("| raw, one client, 100 rows per transaction (BEGIN; INSERT unnest; COMMIT pipelined) | {raw:.0} | 1.00 |");
        println!(
            "| raw, the same with the head row updated first in each transaction | {raw_head:.0} | {:.2} |",
            raw_head / raw
        );
        println!(
            "| raw, {} rows per transaction (the most one group of {} single-event writers holds) | {raw_writers:.0} | {:.2} |",
            sizes.writers,
            sizes.writers,
            raw_writers / raw
        );
        println!(
            "| PgLog, {} threads (target >= 0.5) | {ours:.0} | **{:.2}** |",
            sizes.writers,
            ours / raw
        );
        println!(
            "| PgLog, {} async tasks on 2 tokio workers | {ours_async:.0} | {:.2} |",
            sizes.writers,
            ours_async / raw
        );
        println!(
            "\nraw x100: {:.2} ms per transaction of {RAW_BATCH} rows (median round); \
             one thread hand-off (wake a sleeping thread and switch to it) costs {:.1} µs here",
            RAW_BATCH as f64 / raw * 1e3,
            thread_handoff_micros()
        );
        println!("{round_figures}");
        println!(
            "PgLog commit groups per round (threads): {}",
            notes.join(" | ")
        );
        println!("{}", checkpoints(&cluster));
    }

    // 2. One writer.
    if wanted(2) {
        let n = sizes.single_appends;
        let (mut ours, mut pipelined, mut sequential) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..sizes.rounds {
            ours.push(lone_appends(&cluster, n));
            pipelined.push(raw_lone(&cluster, &rows, n, RawLone::Pipelined));
            sequential.push(raw_lone(&cluster, &rows, n, RawLone::Sequential));
        }
        // Per round its median and p99; the table shows the median of those over the rounds.
        let summary = |runs: &[Vec<f64>]| {
            (
                median(runs.iter().map(|r| quantile(r, 0.5)).collect()),
                median(runs.iter().map(|r| quantile(r, 0.99)).collect()),
            )
        };
        let (ours_p50, ours_p99) = summary(&ours);
        let (pipe_p50, pipe_p99) = summary(&pipelined);
        let (seq_p50, seq_p99) = summary(&sequential);
        println!("\n## 2. one writer, {n} sequential single-event durable appends");
        println!(
            "| what | median µs | p99 µs | median ratio to raw pipelined | median ratio to raw sequential |"
        );
        println!("|---|---:|---:|---:|---:|");
        println!(
            "| raw, BEGIN; INSERT one row; COMMIT pipelined (one round trip) | {pipe_p50:.0} | {pipe_p99:.0} | 1.00 | {:.2} |",
            pipe_p50 / seq_p50
        );
        println!(
            "| raw, BEGIN / INSERT / COMMIT sequential (three round trips) | {seq_p50:.0} | {seq_p99:.0} | {:.2} | 1.00 |",
            seq_p50 / pipe_p50
        );
        println!(
            "| PgLog append (target <= 1.5x) | {ours_p50:.0} | {ours_p99:.0} | **{:.2}** | {:.2} |",
            ours_p50 / pipe_p50,
            ours_p50 / seq_p50
        );
        println!("{}", checkpoints(&cluster));
    }

    // 3. Catch-up replay.
    if wanted(3) {
        let (mut ours, mut raw, mut raw_pages) = (Vec::new(), Vec::new(), Vec::new());
        let mut replayed = 0;
        for _ in 0..sizes.rounds {
            let (rate, count) = replay(&sample_url);
            ours.push(rate);
            replayed = count;
            raw.push(raw_replay(&sample_url));
            raw_pages.push(raw_replay_pages(&sample_url));
        }
        let (ours, raw, raw_pages) = (median(ours), median(raw), median(raw_pages));
        println!("\n## 3. catch-up replay of {replayed} events with decode");
        println!("| what | events/s | ratio to raw select |");
        println!("|---|---:|---:|");
        println!("| raw, one SELECT … ORDER BY position, every row decoded | {raw:.0} | 1.00 |");
        println!(
            "| raw, keyset pages of {PAGE}, every row decoded | {raw_pages:.0} | {:.2} |",
            raw_pages / raw
        );
        println!(
            "| PgLog read_all, pages of {PAGE} | {ours:.0} | **{:.2}** |",
            ours / raw
        );
        println!("{}", checkpoints(&cluster));
    }

    // 4. Two instances on one store.
    if wanted(4) {
        let (mut one, mut two) = (Vec::new(), Vec::new());
        let mut notes = Vec::new();
        for _ in 0..sizes.rounds {
            one.push(one_instance(&cluster, sizes).0);
            let (rate, note) = two_instances(&cluster, sizes);
            two.push(rate);
            notes.push(note);
        }
        let round_figures = format!("rounds, events/s: one {:.0?}; two {:.0?}", one, two);
        let (one, two) = (median(one), median(two));
        println!(
            "\n## 4. two instances on one store, {} writers in all x {} single-event appends",
            sizes.writers, sizes.appends_per_writer
        );
        println!("| what | events/s | ratio |");
        println!("|---|---:|---:|");
        println!("| one PgLog, {} threads | {one:.0} | 1.00 |", sizes.writers);
        println!(
            "| two PgLogs (two Database::connect), {} threads each | {two:.0} | **{:.2}** |",
            sizes.writers / 2,
            two / one
        );
        println!("\n{round_figures}");
        println!(
            "commit groups per round (two instances): {}",
            notes.join(" | ")
        );

        let lags = lag(&cluster, sizes.lag_samples);
        if lags.is_empty() {
            println!("\nlag: no append of instance A arrived on instance B");
        } else {
            println!(
                "\nlag from A's acknowledged append to arrival on B's live subscription: {} of {} \
                 appends arrived (one every {} ms); p50 {:.2} ms, p99 {:.2} ms, min {:.2} ms, \
                 max {:.2} ms",
                lags.len(),
                sizes.lag_samples,
                LAG_EVERY.as_millis(),
                quantile(&lags, 0.5),
                quantile(&lags, 0.99),
                quantile(&lags, 0.0),
                quantile(&lags, 1.0),
            );
        }
        println!("{}", checkpoints(&cluster));
    }

    // 5. message-db.
    if wanted(5) {
        println!(
            "\n## 5. message-db, {} writers on one category",
            sizes.writers
        );
        match message_db_dir() {
            Err(reason) => println!("message-db {reason}"),
            Ok(dir) => {
                install_message_db(&cluster, &dir);
                let mut rates = Vec::new();
                for round in 0..sizes.message_db_rounds {
                    rates.push(message_db_writes(
                        &cluster,
                        sizes.writers,
                        sizes.message_db_per_writer,
                        round,
                    ));
                }
                let round_figures = format!("rounds, events/s: {:.0?}", rates);
                let rate = median(rates);
                println!(
                    "| what | events/s | ratio to raw x100 | ratio to PgLog, {} threads |",
                    sizes.writers
                );
                println!("|---|---:|---:|---:|");
                match concurrent_figures {
                    Some((ours, raw)) => println!(
                        "| message_store.write_message, {} connections x {} messages, one category | {rate:.0} | {:.3} | {:.3} |",
                        sizes.writers,
                        sizes.message_db_per_writer,
                        rate / raw,
                        rate / ours
                    ),
                    None => println!(
                        "| message_store.write_message, {} connections x {} messages, one category | {rate:.0} | (run scenario 1) | (run scenario 1) |",
                        sizes.writers, sizes.message_db_per_writer
                    ),
                }
                println!("\n{round_figures}");
                println!("{}", checkpoints(&cluster));
            }
        }
    }

    cluster.drop_store(&sample_url);
    drop(cluster);
    println!("\nload average at the end: {}", load_average());
}
