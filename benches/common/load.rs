//! The load generator the service benches share: a minimal keep-alive HTTP/1.1 client on
//! tokio (so a bench needs nothing installed), readiness, and the figures of a run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Concurrent connections of a load run.
pub const CONNECTIONS: usize = 64;

/// A keep-alive HTTP/1.1 connection.
pub struct Connection {
    stream: BufReader<TcpStream>,
}

impl Connection {
    /// Connects.
    pub async fn open(addr: &str) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(stream),
        })
    }

    /// Sends one request and reads its answer: status and body.
    pub async fn send(&mut self, request: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        self.stream.get_mut().write_all(request).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok((status, body))
    }
}

/// Waits until `/readyz` answers 200.
pub async fn wait_ready(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Ok(mut c) = Connection::open(addr).await {
            let request = format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
            if let Ok((200, _)) = c.send(request.as_bytes()).await {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the service never became ready");
        // Often enough for the start-up time to be a figure (target 4 compares it), not a
        // multiple of the wait.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Throughput and latency of a run.
pub struct Figures {
    /// Requests answered successfully per second.
    pub rate: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
    /// Requests that failed.
    pub errors: u64,
}

/// The figures of successful requests' latencies over `period`.
pub fn figures(mut latencies: Vec<Duration>, errors: u64, period: Duration) -> Figures {
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Figures {
        rate: latencies.len() as f64 / period.as_secs_f64(),
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        errors,
    }
}

/// `connections` keep-alive connections creating cases at grid 1 for `period`: the figures
/// and the ids made.
pub async fn load_create(
    addr: &str,
    token: &str,
    period: Duration,
    connections: usize,
) -> (Figures, Vec<String>) {
    let deadline = Instant::now() + period;
    let mut tasks = Vec::new();
    for connection in 0..connections {
        let (addr, token) = (addr.to_owned(), token.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut c = Connection::open(&addr).await.expect("connect");
            let (mut latencies, mut ids, mut errors) = (Vec::new(), Vec::new(), 0u64);
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let body = format!(
                    r#"{{"workflow":"service-request","unit_id":"grid-1","title":"load {connection}-{n}","fields":{{"category":"public_facilities"}}}}"#
                );
                let request = format!(
                    "POST /api/v1/cases HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let sent = Instant::now();
                match c.send(request.as_bytes()).await {
                    Ok((201, body)) => {
                        latencies.push(sent.elapsed());
                        if let Some(id) = serde_json::from_slice::<serde_json::Value>(&body)
                            .ok()
                            .and_then(|v| v["id"].as_str().map(str::to_owned))
                        {
                            ids.push(id);
                        }
                    }
                    Ok((status, body)) => {
                        errors += 1;
                        if errors == 1 {
                            eprintln!("create: {status} {}", String::from_utf8_lossy(&body));
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        c = Connection::open(&addr).await.expect("reconnect");
                    }
                }
            }
            (latencies, ids, errors)
        }));
    }
    let (mut latencies, mut ids, mut errors) = (Vec::new(), Vec::new(), 0);
    for task in tasks {
        let (l, i, e) = task.await.expect("task");
        latencies.extend(l);
        ids.extend(i);
        errors += e;
    }
    (figures(latencies, errors, period), ids)
}

/// `CONNECTIONS` keep-alive connections reading the cases `ids` for `period`.
pub async fn load_read(addr: &str, token: &str, ids: &[String], period: Duration) -> Figures {
    if ids.is_empty() {
        return figures(Vec::new(), 0, period);
    }
    let (ids, auth) = (
        Arc::new(ids.to_vec()),
        format!("Authorization: Bearer {token}\r\n"),
    );
    load_gets(addr, period, move |connection, n| {
        let id = &ids[(connection + 7 * n) % ids.len()];
        (format!("/api/v1/cases/{id}"), auth.clone())
    })
    .await
}

/// `CONNECTIONS` keep-alive connections asking `GET /healthz` for `period`: what the HTTP
/// stack and this load generator do on this machine when the service does nothing else, the
/// ceiling of any route's rate in the same run.
pub async fn load_health(addr: &str, period: Duration) -> Figures {
    load_gets(addr, period, |_, _| ("/healthz".to_owned(), String::new())).await
}

/// `CONNECTIONS` keep-alive connections each sending `GET path` with `headers` from
/// `request(connection, n)` for its n-th request, for `period`; a 200 counts.
async fn load_gets<F>(addr: &str, period: Duration, request: F) -> Figures
where
    F: Fn(usize, usize) -> (String, String) + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let deadline = Instant::now() + period;
    let mut tasks = Vec::new();
    for connection in 0..CONNECTIONS {
        let (addr, request) = (addr.to_owned(), request.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Connection::open(&addr).await.expect("connect");
            let (mut latencies, mut errors) = (Vec::new(), 0u64);
            let mut n = 0;
            while Instant::now() < deadline {
                let (path, headers) = request(connection, n);
                n += 1;
                let bytes = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}\r\n");
                let sent = Instant::now();
                match c.send(bytes.as_bytes()).await {
                    Ok((200, _)) => latencies.push(sent.elapsed()),
                    Ok((status, body)) => {
                        errors += 1;
                        if errors == 1 {
                            eprintln!("GET {path}: {status} {}", String::from_utf8_lossy(&body));
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        c = Connection::open(&addr).await.expect("reconnect");
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for task in tasks {
        let (l, e) = task.await.expect("task");
        latencies.extend(l);
        errors += e;
    }
    figures(latencies, errors, period)
}
