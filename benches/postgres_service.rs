//! Two service instances on one PostgreSQL store against one, and the lag between them.
//!
//! Run: `cargo bench --bench postgres_service` (`-- --quick` for a smoke run). Starts its own
//! throwaway cluster (`civicflow_postgres::testing::Cluster`) and the real `civicflow serve
//! --store …` processes on loopback, the demo loaded once.
//!
//! 1. Durable case creation through one instance: 64 keep-alive connections posting
//!    `POST /api/v1/cases` for a few seconds (the load generator of `benches/common/load.rs`).
//! 2. The same through two instances at once: 32 connections on each. Reported as the
//!    total, and as a ratio to (1) measured in the same run.
//! 3. The lag from commit on one instance to readable on the other: a case opened through
//!    A (its 201 is after the commit), then `GET /api/v1/cases/{id}` through B until it
//!    answers 200, one case at a time; p50 and p99 over the samples.
//!
//! The bench never asserts a timing; `docs/benchmarks.md` records the figures.

#[path = "common/load.rs"]
#[allow(dead_code)]
mod load;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use civicflow_postgres::testing::Cluster;
use load::{load_create, wait_ready, Connection, Figures};

/// A `civicflow serve` child on the shared store.
struct Instance {
    child: Child,
    addr: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn start(url: &str, data: &Path, key_file: &Path) -> Instance {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_civicflow"))
        .args(["serve", "--demo", "--store", url, "--addr", &addr, "--data"])
        .arg(data)
        .arg("--key-file")
        .arg(key_file)
        // The load is one token's: lift its rate limit, as benches/service_load.rs does.
        .args(["--rate-limit", "1000000"])
        .env("CIVICFLOW_LOG", "warn")
        .env_remove("CIVICFLOW_MASTER_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("civicflow serve starts");
    Instance { child, addr }
}

fn grid_token(data: &Path) -> String {
    let text = std::fs::read_to_string(data.join("demo-tokens.json")).expect("demo tokens");
    let all: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    all.as_array()
        .expect("a list")
        .iter()
        .find(|t| t["role"] == "grid_worker" && t["unit_id"] == "grid-1")
        .and_then(|t| t["token"].as_str())
        .expect("a grid worker's token")
        .to_owned()
}

fn show(what: &str, f: &Figures) {
    println!(
        "{what:<44} {:>9.0} /s   p50 {:>6.2} ms   p99 {:>7.2} ms   errors {}",
        f.rate, f.p50_ms, f.p99_ms, f.errors
    );
}

/// One case opened through `a`, then read through `b` until it answers: the lag.
async fn lag_once(
    a: &mut Connection,
    b: &mut Connection,
    (addr_a, addr_b): (&str, &str),
    token: &str,
    n: usize,
) -> Duration {
    let body = format!(
        r#"{{"workflow":"service-request","unit_id":"grid-1","title":"lag probe {n}","fields":{{"category":"public_facilities"}}}}"#
    );
    let request = format!(
        "POST /api/v1/cases HTTP/1.1\r\nHost: {addr_a}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (status, answer) = a.send(request.as_bytes()).await.expect("POST through A");
    let committed = Instant::now();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
    let id = serde_json::from_slice::<serde_json::Value>(&answer)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        .expect("an id");
    let read = format!(
        "GET /api/v1/cases/{id} HTTP/1.1\r\nHost: {addr_b}\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    loop {
        let (status, _) = b.send(read.as_bytes()).await.expect("GET through B");
        if status == 200 {
            return committed.elapsed();
        }
        assert!(
            committed.elapsed() < Duration::from_secs(30),
            "B never saw the case ({status})"
        );
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let period = Duration::from_secs(if quick { 2 } else { 8 });
    let samples = if quick { 30 } else { 300 };
    let cluster = Cluster::start();
    let url = cluster.fresh_store_url();
    let scratch = std::env::temp_dir().join(format!("civicflow-pg-service-{}", std::process::id()));
    let (dir_a, dir_b) = (scratch.join("a"), scratch.join("b"));
    std::fs::create_dir_all(&scratch).expect("scratch");
    let key_file = scratch.join("master.key");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let a = start(&url, &dir_a, &key_file);
    runtime.block_on(wait_ready(&a.addr));
    let b = start(&url, &dir_b, &key_file);
    runtime.block_on(wait_ready(&b.addr));
    let token = grid_token(&dir_a);
    println!(
        "PostgreSQL at port {} (fsync on), two `civicflow serve --store` instances; {} s per load run",
        cluster.port(),
        period.as_secs()
    );

    // Warm both instances (connections, statements, caches).
    runtime.block_on(load_create(&a.addr, &token, Duration::from_millis(500), 8));
    runtime.block_on(load_create(&b.addr, &token, Duration::from_millis(500), 8));

    let (one, _) = runtime.block_on(load_create(&a.addr, &token, period, 64));
    show("creation through one instance (64 conn.)", &one);
    let (through_a, through_b) = runtime.block_on(async {
        tokio::join!(
            load_create(&a.addr, &token, period, 32),
            load_create(&b.addr, &token, period, 32)
        )
    });
    let both = through_a.0.rate + through_b.0.rate;
    show("  through A while B takes the same", &through_a.0);
    show("  through B while A takes the same", &through_b.0);
    println!(
        "creation through two instances at once     {both:>9.0} /s   ratio to one instance: {:.2}",
        both / one.rate
    );

    let mut lags = runtime.block_on(async {
        let mut on_a = Connection::open(&a.addr).await.expect("connect A");
        let mut on_b = Connection::open(&b.addr).await.expect("connect B");
        let mut lags = Vec::with_capacity(samples);
        for n in 0..samples {
            lags.push(lag_once(&mut on_a, &mut on_b, (&a.addr, &b.addr), &token, n).await);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        lags
    });
    lags.sort();
    let at = |q: f64| {
        lags[((lags.len() as f64 * q) as usize).min(lags.len() - 1)].as_secs_f64() * 1000.0
    };
    println!(
        "lag, commit through A to readable through B: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({samples} cases)",
        at(0.5),
        at(0.99),
        at(1.0)
    );
    drop((a, b));
    let _ = std::fs::remove_dir_all(&scratch);
}
