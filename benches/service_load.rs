//! The service under load on loopback, against the log's own group-commit rate in the same
//! run.
//!
//! Run: `cargo bench --bench service_load` (`-- --quick` for a smoke run on a small store).
//! `CIVICFLOW_BENCH_WRAP="heaptrack"` runs the service under a tool.
//! `CIVICFLOW_BENCH_SECONDS=N` sets how long each load runs (8 s; longer under a tool).
//! `CIVICFLOW_BENCH_KEEP=DIR` keeps the generated store (a million events take a few minutes
//! to generate) and reuses it; `CIVICFLOW_BENCH_EVENTS=N` sets the store's size.
//! `CIVICFLOW_BENCH_BACKEND=postgres` runs the same on the PostgreSQL backend (below).
//!
//! 1. A store of N events (default 1,000,000): the Tonghui demo's org chart and random
//!    commands through the real engine, as a running district makes them: about 2,000
//!    requests in their loop at any time, each worked on until its loop is done
//!    (`run_steady_commands` in `tests/common/history.rs`), so that a larger store is a
//!    longer history, not a bigger backlog.
//! 2. The log's own rate: 64 async writers on a two-thread runtime, each appending one event
//!    at a time to a fresh log with the default durability (fsync), for a few seconds.
//! 3. The service, in a child process (this binary with `--serve`), on that store; its
//!    memory is read from `/proc/PID/status`.
//! 4. The ceiling: 64 keep-alive connections asking `GET /healthz` (no token, no store) for
//!    a few seconds: what the HTTP stack and this load generator do on these cores.
//! 5. Durable case creation: 64 keep-alive connections posting `POST /api/v1/cases` for a few
//!    seconds. Then case reads: 64 connections `GET /api/v1/cases/{id}` over the cases just
//!    made. Throughput and latency percentiles from every request's own timing.
//!
//! 6. The store itself, as the service left it: bytes on disk per event, the time to open the
//!    log, a replay of every record, and the latency of lone durable appends (for comparing
//!    stores of different sizes: `CIVICFLOW_BENCH_EVENTS=10000000`).
//!
//! On PostgreSQL (`CIVICFLOW_BENCH_BACKEND=postgres`) the same store is generated (or reused)
//! on sled, then moved as a deployment moves it: `civicflow export-log`, `civicflow
//! import-log --store URL` into a throwaway cluster the bench starts (`testing::Cluster`:
//! fsync on, a free loopback port), `civicflow rebuild --store URL`. The log's own rate is
//! `PgLog`'s (64 async writers on a fresh schema of the same cluster), the service is the real
//! `civicflow serve --store URL`, and the store's figures are the log's tables on the server
//! (`pg_total_relation_size`, with their indexes and TOAST) and the instance's read models.
//! The server's own processes are not in the service's memory figure.
//!
//! The load generator is in this file (a minimal HTTP/1.1 client on tokio), so the bench
//! needs nothing installed.

#[path = "common/load.rs"]
mod load;

#[path = "../tests/common/history.rs"]
#[allow(dead_code)]
mod history;

use civicflow::core::EventStore;
use civicflow_postgres::testing::Cluster;
use civicflow_postgres::{Database, PgLog};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use civicflow::core::domain::access::AccessCommand;
use civicflow::core::domain::org::Acting;
use civicflow::core::engine::Command;
use civicflow::core::vault::MasterKey;
use civicflow::core::{
    Actor, AppendRequest, CorrelationId, EventType, ExpectedVersion, ManualClock, NewEvent,
    SledLog, SledLogConfig, StreamId, UnitId,
};
use civicflow::demo;
use civicflow::http::{Service, ServiceConfig, TokenSecret};
use history::{open_engine, run_steady_commands, Rng};
use load::{load_create, load_health, load_read, wait_ready, CONNECTIONS};

/// Requests in their loop at any time in the generated store (a street office's backlog).
const IN_FLIGHT: usize = 2_000;

/// The `civicflow` command's allocator (the service runs in this binary).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        serve_child(Path::new(&args[i + 1]), &args[i + 2]);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let target: u64 = std::env::var("CIVICFLOW_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 30_000 } else { 1_000_000 });
    let seconds = std::env::var("CIVICFLOW_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 2 } else { 8 });
    let keep = std::env::var_os("CIVICFLOW_BENCH_KEEP").map(PathBuf::from);
    let base = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("civicflow-bench-service-{}", std::process::id()))
    });
    let pristine = base.join("store");
    let (key_hex, token, events) = prepare_store(&pristine, target);
    // Each run works on a copy, so that every run starts from the same store (the load adds
    // cases to it).
    let store = base.join("run");
    let _ = std::fs::remove_dir_all(&store);
    let postgres = match std::env::var("CIVICFLOW_BENCH_BACKEND").as_deref() {
        Ok("postgres") => Some(move_to_postgres(&pristine, &base, &store)),
        Ok("sled") | Err(_) => {
            copy_dir(&pristine, &store);
            None
        }
        Ok(other) => panic!("CIVICFLOW_BENCH_BACKEND={other}: `sled` or `postgres`"),
    };
    println!(
        "store: {events} events, read models caught up (a copy of {}{})",
        pristine.display(),
        if postgres.is_some() {
            ", moved to PostgreSQL"
        } else {
            ""
        }
    );

    let period = Duration::from_secs(seconds);
    let log_rate = match &postgres {
        Some(pg) => log_group_commit_rate(open_pg_log(&pg.cluster.fresh_store_url()), period),
        None => {
            let dir = base.join("rawlog");
            let _ = std::fs::remove_dir_all(&dir);
            let rate = log_group_commit_rate(
                Arc::new(SledLogConfig::new(&dir).open().expect("log")),
                period,
            );
            let _ = std::fs::remove_dir_all(&dir);
            rate
        }
    };
    println!("log, 64 async writers, fsync: {log_rate:.0} events/s");

    let port = free_port();
    let started = Instant::now();
    // CIVICFLOW_BENCH_WRAP runs the service under a tool (`heaptrack`, `valgrind --tool=massif`).
    let program = match postgres {
        Some(_) => PathBuf::from(env!("CARGO_BIN_EXE_civicflow")),
        None => std::env::current_exe().expect("this binary"),
    };
    let wrap = std::env::var("CIVICFLOW_BENCH_WRAP").ok();
    let mut command = match wrap.as_deref().map(str::split_whitespace) {
        Some(mut words) => {
            let mut command = std::process::Command::new(words.next().expect("a tool"));
            command.args(words).arg(&program);
            command
        }
        None => std::process::Command::new(&program),
    };
    match &postgres {
        Some(pg) => command
            .args(["serve", "--store", &pg.url, "--data"])
            .arg(&store)
            .args(["--addr", &format!("127.0.0.1:{port}")])
            // One token sending as fast as it can, as the sled child lifts it.
            .args(["--rate-limit", "1000000000"])
            .env("CIVICFLOW_LOG", "warn"),
        None => command.args(["--serve", &store.display().to_string(), &port.to_string()]),
    };
    let mut child = command
        .env("CIVICFLOW_MASTER_KEY", &key_hex)
        .spawn()
        .expect("the service starts");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let addr = format!("127.0.0.1:{port}");
    runtime.block_on(wait_ready(&addr));
    println!(
        "service ready in {:.1?} (read models caught up with {events} events)",
        started.elapsed()
    );
    let rss_ready = memory(child.id());
    if std::env::var_os("CIVICFLOW_BENCH_PAUSE").is_some() {
        // Time to attach a profiler: `perf record -p PID`.
        eprintln!("service pid {}; loading in 5 s", child.id());
        std::thread::sleep(Duration::from_secs(5));
    }

    // The ceiling: what the HTTP stack and the load generator do on these cores when the
    // service does nothing else; no route can go faster in this run.
    let health = runtime.block_on(load_health(&addr, Duration::from_secs(seconds)));
    let (create, ids) = runtime.block_on(load_create(
        &addr,
        &token,
        Duration::from_secs(seconds),
        CONNECTIONS,
    ));
    let rss_created = memory(child.id());
    let read = runtime.block_on(load_read(&addr, &token, &ids, Duration::from_secs(seconds)));
    let rss_after = memory(child.id());
    // Memory freed by the load returns to the system with a delay (jemalloc's decay, sled's
    // epoch-based reclamation): the figure once the load has stopped for a while.
    std::thread::sleep(Duration::from_secs(15));
    let rss_rested = memory(child.id());
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let stopped = child.wait().expect("the service stops");

    let backend = if postgres.is_some() {
        "PostgreSQL"
    } else {
        "sled"
    };
    println!("\n## the service on a store of {events} events on {backend} ({CONNECTIONS} connections, {seconds} s each)");
    println!("| what | figure | target |");
    println!("|---|---|---|");
    println!(
        "| durable case creation | {:.0}/s, p50 {:.1} ms, p99 {:.1} ms, {} errors; **{:.2}** of the log's own rate ({log_rate:.0} events/s) | ≥ 0.25 of the log's rate |",
        create.rate,
        create.p50_ms,
        create.p99_ms,
        create.errors,
        create.rate / log_rate
    );
    println!(
        "| the HTTP ceiling: `GET /healthz` | {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {} errors; **{:.2}** of the log's own rate; creation is {:.2} of it | |",
        health.rate,
        health.p50_ms,
        health.p99_ms,
        health.errors,
        health.rate / log_rate,
        create.rate / health.rate
    );
    println!(
        "| case reads | **{:.0}/s**, p50 {:.2} ms, p99 {:.2} ms, {} errors | ≥ 20,000/s |",
        read.rate, read.p50_ms, read.p99_ms, read.errors
    );
    println!(
        "| server memory | ready: {} MB resident; after creating {} cases: {} MB; after the reads: {} MB; 15 s later: {} MB; peak {} MB | < 300 MB |",
        rss_ready.0 / 1024,
        ids.len(),
        rss_created.0 / 1024,
        rss_after.0 / 1024,
        rss_rested.0 / 1024,
        rss_rested.1 / 1024
    );
    println!("service exit after SIGTERM: {stopped}");

    // The store itself, as the service left it (cleanly closed), for the flatness check: a
    // bigger store must cost no more per event or per append.
    let figures = match &postgres {
        Some(pg) => store_figures(
            &|| open_pg_log(&pg.url),
            pg.log_bytes(),
            bytes_under(&store.join("readmodels")),
        ),
        None => store_figures(
            &|| Arc::new(SledLog::open(store.join("log")).expect("the log opens")),
            bytes_under(&store.join("log")),
            bytes_under(&store.join("readmodels")),
        ),
    };
    println!("\n## the store itself on {backend} ({events} events before the load)");
    println!("| what | figure |");
    println!("|---|---|");
    println!(
        "| bytes on disk per event | log {:.0}, read models {:.0} ({} events: log {:.1} MB, read models {:.1} MB) |",
        figures.log_bytes as f64 / figures.events as f64,
        figures.read_model_bytes as f64 / figures.events as f64,
        figures.events,
        figures.log_bytes as f64 / 1e6,
        figures.read_model_bytes as f64 / 1e6
    );
    println!(
        "| opening the cleanly closed log | {:.2} s |",
        figures.open.as_secs_f64()
    );
    println!(
        "| replay: every record read and decoded, in position order | {:.0} events/s ({:.1} s) |",
        figures.events as f64 / figures.replay.as_secs_f64(),
        figures.replay.as_secs_f64()
    );
    println!(
        "| a lone durable append (one writer, one event, fsync), {LONE_APPENDS} in a row | p50 {:.2} ms, p99 {:.2} ms |",
        figures.lone_p50.as_secs_f64() * 1e3,
        figures.lone_p99.as_secs_f64() * 1e3
    );
    let _ = std::fs::remove_dir_all(&store);
    drop(postgres); // stops the cluster, which removes its directory
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&base);
    }
}

/// The child: the service on `dir`, listening on `port`, until SIGTERM.
fn serve_child(dir: &Path, port: &str) {
    let key = MasterKey::from_env()
        .expect("a valid key")
        .expect("CIVICFLOW_MASTER_KEY is set");
    let mut config = ServiceConfig::new(dir, key);
    config.addr = format!("127.0.0.1:{port}").parse().expect("an address");
    // The load generator is one token sending as fast as it can: not what the per-token
    // limit is for (the tests check the limit).
    config.rate_limit = civicflow::http::RateLimit {
        per_second: 1e9,
        burst: 1e9,
    };
    if let Some(mib) = std::env::var("CIVICFLOW_BENCH_LOG_CACHE_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        config.log_cache_bytes = mib << 20;
    }
    if let Some(mib) = std::env::var("CIVICFLOW_BENCH_READ_MODEL_CACHE_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        config.read_model_cache_bytes = mib << 20;
    }
    if let Some(rows) = std::env::var("CIVICFLOW_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.projection_rows_in_memory = rows;
    }
    let service = Service::open(config.clone()).expect("the service opens");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .expect("listen");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal");
        service
            .serve(listener, async move {
                term.recv().await;
            })
            .await
            .expect("serve");
    });
}

/// Builds (or reuses) the store; returns the master key (hex), a grid worker's token, and the
/// number of events.
fn prepare_store(store: &Path, target: u64) -> (String, String, u64) {
    let key_file = store.join("bench-key.hex");
    let token_file = store.join("bench-token.txt");
    if key_file.exists() && token_file.exists() {
        let key_hex = std::fs::read_to_string(&key_file).expect("key");
        let token = std::fs::read_to_string(&token_file).expect("token");
        if !store.join("deadline-index.snapshot").exists() {
            // As a cleanly stopped service leaves it: the engine's close writes the snapshot.
            let key = MasterKey::from_hex(key_hex.trim()).expect("key");
            drop(open_engine(store, &ManualClock::new(demo::START), &key));
        }
        let log = SledLog::open(store.join("log")).expect("log");
        let events = log.head().map_or(0, |h| h.position.get());
        return (key_hex, token, events);
    }
    let _ = std::fs::remove_dir_all(store);
    std::fs::create_dir_all(store).expect("store dir");
    let mut bytes = [0u8; 32];
    getrandom_bytes(&mut bytes);
    let key_hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let key = MasterKey::from_hex(&key_hex).expect("key");
    let clock = ManualClock::new(demo::START);
    let engine = open_engine(store, &clock, &key);
    demo::build_org(&engine).expect("demo org");
    let mut rng = Rng::new(20_261_127);
    let mut cases = Vec::new();
    let started = Instant::now();
    loop {
        let head = engine.log().head().map_or(0, |h| h.position.get());
        if head >= target {
            break;
        }
        run_steady_commands(&engine, &clock, &mut rng, 5_000, &mut cases, IN_FLIGHT);
        eprint!(
            "\rgenerating: {head} of {target} events ({:.0?})",
            started.elapsed()
        );
    }
    eprintln!();
    let secret = TokenSecret::generate().expect("randomness");
    engine
        .submit(
            &Acting::system(UnitId::new("tonghui").expect("valid")),
            Command::Access(AccessCommand::Issue {
                hash: secret.hash(),
                acting: demo::acting("li.grid1"),
                name: "load generator".into(),
            }),
        )
        .expect("token");
    let events = engine.log().head().map_or(0, |h| h.position.get());
    drop(engine);
    // The read models, caught up (as a running service keeps them): a service started on
    // the store serves at once.
    eprintln!("building the read models");
    let service = Service::open(ServiceConfig::new(store, key.clone())).expect("service");
    while !service.is_caught_up() {
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(service);
    std::fs::write(&key_file, &key_hex).expect("key file");
    std::fs::write(&token_file, secret.expose()).expect("token file");
    (key_hex, secret.expose().to_owned(), events)
}

fn getrandom_bytes(bytes: &mut [u8]) {
    let secret = TokenSecret::generate().expect("randomness");
    // A token secret is 64 hex digits of OS randomness: reuse it as the key's source.
    let hex = &secret.expose()[4..];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
    }
}

/// Single-event durable appends from 64 async writers on a 2-thread runtime to a fresh
/// `log`, for `period`.
fn log_group_commit_rate(log: Arc<dyn EventStore>, period: Duration) -> f64 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let payload = vec![b'x'; 185];
    let events = runtime.block_on(async {
        let deadline = Instant::now() + period;
        let mut tasks = Vec::new();
        for writer in 0..64 {
            let log = log.clone();
            let payload = payload.clone();
            tasks.push(tokio::spawn(async move {
                let mut count = 0u64;
                let stream = StreamId::new(format!("bench-{writer}")).expect("stream");
                while Instant::now() < deadline {
                    let event =
                        NewEvent::new(EventType::new("Benched").expect("type"), 1, payload.clone());
                    let request = AppendRequest::to_stream(
                        stream.clone(),
                        ExpectedVersion::Any,
                        vec![event],
                        Actor::new(
                            civicflow::core::ActorId::new("bench").expect("actor"),
                            civicflow::core::Role::new("system").expect("role"),
                            UnitId::new("tonghui").expect("unit"),
                        ),
                        CorrelationId::new_v7(civicflow::core::Timestamp::from_unix_seconds(0)),
                    );
                    if matches!(log.append_async(request).await, Ok(Ok(_))) {
                        count += 1;
                    }
                }
                count
            }));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await.unwrap_or(0);
        }
        total
    });
    drop(log);
    events as f64 / period.as_secs_f64()
}

/// How many lone appends [`store_figures`] times.
const LONE_APPENDS: usize = 1_000;

/// What [`store_figures`] measured.
struct StoreFigures {
    events: u64,
    log_bytes: u64,
    read_model_bytes: u64,
    open: Duration,
    replay: Duration,
    lone_p50: Duration,
    lone_p99: Duration,
}

/// The bytes of the files under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|entry| match entry.metadata() {
                Ok(meta) if meta.is_dir() => bytes_under(&entry.path()),
                Ok(meta) => meta.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

/// The stopped store: its size (given), the time to open its log, to replay it, and the
/// latency of lone durable appends to it.
fn store_figures(
    open: &dyn Fn() -> Arc<dyn EventStore>,
    log_bytes: u64,
    read_model_bytes: u64,
) -> StoreFigures {
    let started = Instant::now();
    let log = open();
    let open = started.elapsed();
    let events = log.head().map_or(0, |h| h.position.get());
    let started = Instant::now();
    let mut from = civicflow::core::Position::FIRST;
    loop {
        let batch = log.read_all(from, 4_096).expect("the log reads");
        let Some(last) = batch.last() else { break };
        from = last.position.next();
    }
    let replay = started.elapsed();
    let mut latencies = Vec::with_capacity(LONE_APPENDS);
    for n in 0..LONE_APPENDS {
        let request = AppendRequest::to_stream(
            StreamId::new(format!("bench-lone-{n}")).expect("stream"),
            ExpectedVersion::NoStream,
            vec![NewEvent::new(
                EventType::new("Benched").expect("type"),
                1,
                vec![b'x'; 185],
            )],
            Actor::new(
                civicflow::core::ActorId::new("bench").expect("actor"),
                civicflow::core::Role::new("system").expect("role"),
                UnitId::new("tonghui").expect("unit"),
            ),
            CorrelationId::new_v7(civicflow::core::Timestamp::from_unix_seconds(0)),
        );
        let sent = Instant::now();
        log.append(request).expect("appended").expect("no conflict");
        latencies.push(sent.elapsed());
    }
    latencies.sort();
    drop(log);
    StoreFigures {
        events,
        log_bytes,
        read_model_bytes,
        open,
        replay,
        lone_p50: latencies[LONE_APPENDS / 2],
        lone_p99: latencies[LONE_APPENDS * 99 / 100],
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Resident and peak resident memory of a process, in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `cp -a from to`, then `sync`: the copy's writes reach the disk before the service starts,
/// so that its start is that of a store at rest (at ten million events the 6 GB still being
/// written back made the start wait on the disk: ready in 1.0 s against 0.3–0.5 s at rest).
fn copy_dir(from: &Path, to: &Path) {
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp runs");
    assert!(copied.success(), "copying the store failed");
    let synced = std::process::Command::new("sync")
        .arg("--file-system")
        .arg(to)
        .status()
        .expect("sync runs");
    assert!(synced.success(), "syncing the copy failed");
}

/// The store moved to PostgreSQL, and the cluster it lives on (stopped and removed when this
/// is dropped).
struct OnPostgres {
    cluster: Cluster,
    url: String,
}

impl OnPostgres {
    /// The bytes of the store's tables on the server, with their indexes and TOAST.
    fn log_bytes(&self) -> u64 {
        let schema = self
            .url
            .split_once("?schema=")
            .map(|(_, schema)| schema.to_owned())
            .expect("a fresh store URL names its schema");
        let sql = format!(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = '{schema}' AND c.relkind = 'r'"
        );
        let answer = self.cluster.sql(&sql);
        answer
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("a size, not {answer:?}"))
    }
}

/// Moves the sled store in `pristine` to a fresh cluster as a deployment would: `civicflow
/// export-log`, `import-log --store URL`, `rebuild --store URL --data INSTANCE` (the
/// instance's read models in `instance`). The vault is not moved (as `import-log` says): the
/// load's cases put their contacts in the server's vault under the same master key.
fn move_to_postgres(pristine: &Path, base: &Path, instance: &Path) -> OnPostgres {
    let cluster = Cluster::start();
    let url = cluster.fresh_store_url();
    let export = base.join("log.export");
    let civicflow = |args: &[&std::ffi::OsStr]| {
        let started = Instant::now();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_civicflow"))
            .args(args)
            .output()
            .expect("civicflow runs");
        assert!(
            output.status.success(),
            "civicflow {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!(
            "civicflow {} in {:.1?}",
            args[0].to_string_lossy(),
            started.elapsed()
        );
    };
    let os = |s: &str| std::ffi::OsString::from(s);
    civicflow(&[
        &os("export-log"),
        &os("--data"),
        pristine.as_os_str(),
        &os("--out"),
        export.as_os_str(),
    ]);
    let store_args = [
        os("--store"),
        os(&url),
        os("--data"),
        instance.as_os_str().to_owned(),
    ];
    let with_store = |command: &str, extra: &[std::ffi::OsString]| {
        let mut args = vec![os(command)];
        args.extend(store_args.iter().cloned());
        args.extend(extra.iter().cloned());
        civicflow(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>());
    };
    with_store("import-log", &[os("--in"), export.as_os_str().to_owned()]);
    let _ = std::fs::remove_file(&export);
    with_store("rebuild", &[]);
    OnPostgres { cluster, url }
}

/// A `PgLog` on the store at `url`.
fn open_pg_log(url: &str) -> Arc<dyn EventStore> {
    let database = Database::connect(url).expect("the store connects");
    Arc::new(PgLog::open(&database).expect("the log opens"))
}
