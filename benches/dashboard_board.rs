//! The dashboard's case board for a caller with 10,000 open cases in scope, against the JSON
//! board's first page in the same run (issue 16; decision 0012, "Measured": under 100 ms of
//! server time).
//!
//! Run: `cargo bench --bench dashboard_board` (`-- --quick` for a smoke run with 2,000
//! cases). `CIVICFLOW_BENCH_CASES=N` sets the number of open cases.
//!
//! 1. A sled store: the Tonghui demo's org chart, then N service requests opened at grid 1 by
//!    its grid worker through the engine (`Engine::submit`, the log flushed but not fsynced
//!    per append, as the other benches build their stores), a second apart from 09:00 on a
//!    Monday, so that each has its own deadline; a token for that grid worker.
//! 2. The real service (`Service::with_engine`, the engine's clock held where the cases
//!    stop, so that no deadline falls due while measuring) serving on loopback, its read
//!    models caught up.
//! 3. One keep-alive connection, with the grid worker's bearer token, alternating
//!    `GET /board` (the first page, due first) and the JSON board's first page
//!    `GET /api/v1/cases?status=open&limit=50`, after a warm-up: each request's round trip
//!    (on loopback, with nothing else running, the server's time plus a fraction of a
//!    millisecond), p50 and p99, and the bytes of each answer. Then `GET /board.csv` once.
//!
//! The bench never asserts a timing; `docs/benchmarks.md` ("Dashboard (issue 16)") records
//! the figures.

#[path = "common/load.rs"]
#[allow(dead_code)]
mod load;

#[path = "../tests/common/history.rs"]
#[allow(dead_code)]
mod history;

use std::sync::Arc;
use std::time::{Duration, Instant};

use civicflow::core::domain::access::AccessCommand;
use civicflow::core::domain::case::Channel;
use civicflow::core::domain::fields::{FieldValue, Fields};
use civicflow::core::domain::org::Acting;
use civicflow::core::domain::workflow::WorkflowId;
use civicflow::core::engine::Command;
use civicflow::core::vault::MasterKey;
use civicflow::core::{ManualClock, UnitId};
use civicflow::demo;
use civicflow::http::{Service, ServiceConfig, TokenSecret};
use load::{wait_ready, Connection};

/// The `civicflow` command's allocator (the service runs in this process).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The target of decision 0012: the board's server time.
const TARGET_MS: f64 = 100.0;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let cases: usize = std::env::var("CIVICFLOW_BENCH_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 2_000 } else { 10_000 });
    let rounds = if quick { 30 } else { 200 };
    let dir = std::env::temp_dir().join(format!("civicflow-bench-board-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    // 1. The store.
    let key = MasterKey::generate().expect("randomness");
    let clock = ManualClock::new(demo::START);
    let engine = history::open_engine(&dir, &clock, &key);
    demo::build_org(&engine).expect("the demo's org chart");
    let grid_worker = demo::acting("li.grid1");
    let started = Instant::now();
    for n in 0..cases {
        clock.advance(Duration::from_secs(1));
        let mut fields = Fields::new();
        fields.insert(
            "category".into(),
            FieldValue::Choice("public_facilities".into()),
        );
        engine
            .submit(
                &grid_worker,
                Command::OpenCase {
                    workflow: WorkflowId::new("service-request").expect("valid"),
                    version: None,
                    unit: UnitId::new("grid-1").expect("valid"),
                    title: format!("路灯不亮 a street light is out, no. {n}"),
                    description: String::new(),
                    fields,
                    requester: None,
                    channel: Channel::Door,
                    place: None,
                },
            )
            .expect("a case opens");
        if n % 1000 == 999 {
            eprint!("\ropening cases: {} of {cases}", n + 1);
        }
    }
    eprintln!();
    let opened = started.elapsed();
    let secret = TokenSecret::generate().expect("randomness");
    engine
        .submit(
            &Acting::system(UnitId::new("tonghui").expect("valid")),
            Command::Access(AccessCommand::Issue {
                hash: secret.hash(),
                acting: grid_worker,
                name: "board bench".into(),
            }),
        )
        .expect("a token");
    let events = engine.log().head().map_or(0, |h| h.position.get());
    println!(
        "store: {cases} open cases at grid 1 ({events} events), opened in {:.1?} ({:.0}/s)",
        opened,
        cases as f64 / opened.as_secs_f64()
    );

    // 2. The service on loopback.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut config = ServiceConfig::new(&dir, key);
    // One token sending as fast as it can: not what the per-token limit is for.
    config.rate_limit = civicflow::http::RateLimit {
        per_second: 1e9,
        burst: 1e9,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let (addr, serving) = server.block_on(async {
        let service = Service::with_engine(Arc::new(engine), config).expect("the service");
        while !service.is_caught_up() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen");
        let addr = listener.local_addr().expect("an address").to_string();
        let serving = tokio::spawn(service.serve(listener, async {
            let _ = stopped.await;
        }));
        (addr, serving)
    });
    println!(
        "service ready in {:.1?} (read models caught up)",
        started.elapsed()
    );

    // 3. The board against the JSON board, on one connection.
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let token = secret.expose().to_owned();
    let figures = client.block_on(async {
        wait_ready(&addr).await;
        let mut c = Connection::open(&addr).await.expect("connect");
        let get = |path: &str| {
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n")
                .into_bytes()
        };
        let board = get("/board");
        let json = get("/api/v1/cases?status=open&limit=50");
        let csv = get("/board.csv");
        for _ in 0..5 {
            timed(&mut c, &board).await;
            timed(&mut c, &json).await;
        }
        let (mut boards, mut jsons) = (Vec::new(), Vec::new());
        let (mut board_bytes, mut json_bytes, mut rows) = (0, 0, 0);
        for _ in 0..rounds {
            let (took, body) = timed(&mut c, &board).await;
            boards.push(took);
            board_bytes = body.len();
            rows = String::from_utf8_lossy(&body)
                .matches("<td><a href=\"/cases/")
                .count();
            let (took, body) = timed(&mut c, &json).await;
            jsons.push(took);
            json_bytes = body.len();
        }
        let (csv_took, csv_body) = timed(&mut c, &csv).await;
        let csv_rows = csv_body
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            .saturating_sub(1);
        Figures {
            board: percentiles(boards),
            json: percentiles(jsons),
            board_bytes,
            json_bytes,
            rows,
            csv_ms: csv_took.as_secs_f64() * 1000.0,
            csv_bytes: csv_body.len(),
            csv_rows,
        }
    });
    let _ = stop.send(());
    let _ = server.block_on(serving);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);

    let Figures {
        board,
        json,
        board_bytes,
        json_bytes,
        rows,
        csv_ms,
        csv_bytes,
        csv_rows,
    } = figures;
    println!("\n## the case board with {cases} open cases in scope ({rounds} requests each, one connection)");
    println!("| what | p50 | p99 | bytes | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| `GET /board` (first page, {rows} rows, due first) | **{:.1} ms** | {:.1} ms | {board_bytes} | < {TARGET_MS:.0} ms: {} |",
        board.0,
        board.1,
        if board.1 < TARGET_MS { "met" } else { "**missed**" }
    );
    println!(
        "| `GET /api/v1/cases?status=open&limit=50` (the JSON board's first page) | {:.2} ms | {:.2} ms | {json_bytes} | |",
        json.0, json.1
    );
    println!(
        "| ratio, board / JSON | {:.1}x | {:.1}x | | |",
        board.0 / json.0,
        board.1 / json.1
    );
    println!(
        "| `GET /board.csv` (every row, once) | {csv_ms:.1} ms | | {csv_bytes} ({csv_rows} rows) | |"
    );
}

/// Sends `request` on `c`: its round trip and its body, which must be a 200's.
async fn timed(c: &mut Connection, request: &[u8]) -> (Duration, Vec<u8>) {
    let sent = Instant::now();
    let (status, body) = c.send(request).await.expect("an answer");
    let took = sent.elapsed();
    assert_eq!(
        status,
        200,
        "{}",
        String::from_utf8_lossy(&body[..body.len().min(400)])
    );
    (took, body)
}

/// The figures of a run.
struct Figures {
    board: (f64, f64),
    json: (f64, f64),
    board_bytes: usize,
    json_bytes: usize,
    rows: usize,
    csv_ms: f64,
    csv_bytes: usize,
    csv_rows: usize,
}

/// p50 and p99 of `times`, in milliseconds.
fn percentiles(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let at = |q: f64| {
        times
            .get(((times.len() as f64 * q) as usize).min(times.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    (at(0.50), at(0.99))
}
