//! Connections on a real socket (issue 13, "Sessions and connections"): idle and slow-header
//! connections are closed after the header timeout, connections over the per-address and total
//! caps are closed at once, and `/healthz` stays answered while one address holds more idle
//! sockets than its cap. The service runs in this process (`Served`); each test sets small caps
//! and timeouts, and asserts only that a connection is closed within a generous bound, never
//! how fast.
//!
//! Clients bind source addresses of their own in 127.0.0.0/8 (every address there is the
//! loopback interface on Linux), so that "another client" is another address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::service::DemoService;
use crate::common::socket::Served;

/// How long a connection the server must close may take to be seen closed: far above any
/// timeout set here, so that only a connection that is never closed fails the test.
const GENEROUS: Duration = Duration::from_secs(20);

/// A connection to `server` from the loopback address `127.0.0.{host}`.
pub(crate) async fn connect_from(host: u8, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)),
            0,
        ))
        .expect("a loopback source address");
    socket.connect(server).await.expect("connect")
}

/// Whether the server has closed `stream`: reads (discarding any answer) until end of stream
/// or an error (`true`), or until `within` passes with the connection still open (`false`).
pub(crate) async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buffer = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Reads one HTTP/1.1 answer with a Content-Length body from `stream`: its status and body.
async fn read_answer(stream: &mut TcpStream) -> (u16, String) {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or_else(|| panic!("a Content-Length in {head:?}"));
            while bytes.len() < end + 4 + length {
                let n = stream.read(&mut buffer).await.expect("the body");
                assert!(n > 0, "the connection closed inside the body");
                bytes.extend_from_slice(&buffer[..n]);
            }
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("a status line in {head:?}"));
            let body = String::from_utf8_lossy(&bytes[end + 4..end + 4 + length]).into_owned();
            return (status, body);
        }
        let n = tokio::time::timeout(GENEROUS, stream.read(&mut buffer))
            .await
            .expect("an answer in time")
            .expect("read an answer");
        assert!(n > 0, "the connection closed before an answer");
        bytes.extend_from_slice(&buffer[..n]);
    }
}

/// An answer: its status, its head (lowercase) and its body.
pub(crate) struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    /// The value of header `name` (lowercase), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, value) = line.split_once(':')?;
            (n.trim() == name).then(|| value.trim())
        })
    }
}

/// One request from `127.0.0.{host}` on a connection of its own (`Connection: close`), with
/// `headers` and an optional `(content type, body)`, read whole.
pub(crate) async fn request_from(
    host: u8,
    server: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> Answer {
    let mut stream = connect_from(host, server).await;
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: civicflow\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some((content_type, body)) = body {
        request.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        request.push_str("\r\n");
    }
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write the request");
    let mut bytes = Vec::new();
    tokio::time::timeout(GENEROUS, stream.read_to_end(&mut bytes))
        .await
        .expect("an answer in time")
        .expect("read the answer");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("a head and a body: {text:?}"));
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "this client reads whole bodies only: {head}"
    );
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line in {head:?}"));
    Answer {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

/// `GET /healthz` on a new connection from `127.0.0.{host}`, closed after the answer.
async fn healthz_from(host: u8, server: SocketAddr) -> (u16, String) {
    let mut stream = connect_from(host, server).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: civicflow\r\nConnection: close\r\n\r\n")
        .await
        .expect("write the request");
    read_answer(&mut stream).await
}

/// Whether a new connection from `127.0.0.{host}` is answered `GET /healthz` (200), trying
/// again until `within` passes: the server frees a closed connection's place when it reads the
/// close, which may come after it accepts the next one.
async fn healthz_answered_within(host: u8, server: SocketAddr, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let mut stream = connect_from(host, server).await;
        let request = b"GET /healthz HTTP/1.1\r\nHost: civicflow\r\nConnection: close\r\n\r\n";
        let mut answer = Vec::new();
        if stream.write_all(request).await.is_ok()
            && tokio::time::timeout(GENEROUS, stream.read_to_end(&mut answer))
                .await
                .is_ok_and(|read| read.is_ok())
            && answer.starts_with(b"HTTP/1.1 200 ")
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn more_idle_sockets_than_the_cap_from_one_address_leave_healthz_answered() {
    // The header timeout is long here: the idle sockets must stay for the whole test, so that
    // only the caps decide which are closed.
    let served = Served::start(DemoService::start_with("conn-cap-address", |config| {
        config.max_connections_per_address = 4;
        config.max_connections = 64;
        config.header_timeout = Duration::from_secs(120);
    }))
    .await;
    // 260 idle sockets (what used up the open-file limit of 256 before): from one address.
    let mut idle = Vec::new();
    for _ in 0..260 {
        idle.push(connect_from(2, served.addr).await);
    }
    // Another client is answered. The server accepts in order, so by now it has decided on
    // every idle socket above.
    let (status, body) = healthz_from(1, served.addr).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ok\""), "{body}");

    // Exactly the cap's worth of the idle sockets is open; the rest were closed at once.
    let mut open = 0;
    for stream in &mut idle {
        if !closed_within(stream, Duration::from_millis(200)).await {
            open += 1;
        }
    }
    assert_eq!(open, 4, "the per-address cap holds 4 of the 260");

    // The address at its cap is refused again; closing one of its sockets makes room.
    let mut over = connect_from(2, served.addr).await;
    assert!(closed_within(&mut over, GENEROUS).await, "over the cap");
    idle.clear();
    assert!(
        healthz_answered_within(2, served.addr, GENEROUS).await,
        "room again once its sockets closed"
    );

    served
        .shutdown(Duration::from_secs(10))
        .await
        .expect("a clean shutdown");
}

#[tokio::test]
async fn connections_over_the_total_cap_are_closed_at_once_and_room_comes_back() {
    let served = Served::start(DemoService::start_with("conn-cap-total", |config| {
        config.max_connections_per_address = 3;
        config.max_connections = 9;
        config.header_timeout = Duration::from_secs(120);
    }))
    .await;
    // Three addresses, each at its own cap: nine in all.
    let mut idle = Vec::new();
    for host in 10..13 {
        for _ in 0..3 {
            idle.push(connect_from(host, served.addr).await);
        }
    }
    // A tenth, from an address with none open: over the total, closed at once.
    let mut tenth = connect_from(1, served.addr).await;
    assert!(
        closed_within(&mut tenth, GENEROUS).await,
        "a connection over the total cap is closed"
    );
    for stream in &mut idle {
        assert!(
            !closed_within(stream, Duration::from_millis(100)).await,
            "the nine admitted ones stay open"
        );
    }
    drop(idle.pop());
    assert!(
        healthz_answered_within(1, served.addr, GENEROUS).await,
        "one closed, one place free"
    );
    served
        .shutdown(Duration::from_secs(10))
        .await
        .expect("a clean shutdown");
}

#[tokio::test]
async fn silent_and_slow_header_connections_are_closed_after_the_header_timeout() {
    let served = Served::start(DemoService::start_with("conn-slow-header", |config| {
        config.header_timeout = Duration::from_secs(1);
    }))
    .await;

    // Connects and sends nothing.
    let mut silent = connect_from(1, served.addr).await;
    assert!(
        closed_within(&mut silent, GENEROUS).await,
        "a silent connection is closed"
    );

    // Sends a request head one byte every 100 ms: it never completes in time, although bytes
    // keep coming.
    let mut slow = connect_from(1, served.addr).await;
    let head = b"GET /healthz HTTP/1.1\r\nHost: civicflow\r\nX-Padding: ";
    let started = Instant::now();
    let mut sent = 0usize;
    let mut closed = false;
    while started.elapsed() < GENEROUS {
        let byte = head.get(sent).copied().unwrap_or(b'a');
        if slow.write_all(&[byte]).await.is_err() {
            closed = true;
            break;
        }
        sent += 1;
        if closed_within(&mut slow, Duration::from_millis(100)).await {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "a slow-header connection is closed ({sent} bytes sent)"
    );

    // A prompt client is served as ever.
    let (status, body) = healthz_from(1, served.addr).await;
    assert_eq!(status, 200, "{body}");
    served
        .shutdown(Duration::from_secs(10))
        .await
        .expect("a clean shutdown");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_timeout_and_used_before_it() {
    let served = Served::start(DemoService::start_with("conn-keep-alive", |config| {
        config.header_timeout = Duration::from_secs(1);
    }))
    .await;
    let mut stream = connect_from(1, served.addr).await;
    // Keep-alive works: two requests on the one connection, each answered.
    for n in 1..=2 {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: civicflow\r\n\r\n")
            .await
            .expect("write a request");
        let (status, body) = read_answer(&mut stream).await;
        assert_eq!(
            status, 200,
            "request {n} on the kept-alive connection: {body}"
        );
    }
    // Then nothing: the server closes it.
    assert!(
        closed_within(&mut stream, GENEROUS).await,
        "an idle keep-alive connection is closed"
    );
    served
        .shutdown(Duration::from_secs(10))
        .await
        .expect("a clean shutdown");
}

#[tokio::test]
async fn a_shutdown_closes_idle_connections_and_does_not_wait_for_them() {
    // Idle connections that would be kept for two minutes must not hold the shutdown.
    let served = Served::start(DemoService::start_with("conn-shutdown", |config| {
        config.header_timeout = Duration::from_secs(120);
        config.shutdown_grace = Duration::from_secs(60);
    }))
    .await;
    let mut fresh = connect_from(1, served.addr).await;
    let mut kept = connect_from(1, served.addr).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: civicflow\r\n\r\n")
        .await
        .expect("write a request");
    let (status, _) = read_answer(&mut kept).await;
    assert_eq!(status, 200);
    // Within 10 s, far less than the grace of 60 s it would take if the idle ones were waited
    // for.
    served
        .shutdown(Duration::from_secs(10))
        .await
        .expect("a shutdown that does not wait for idle connections");
    assert!(
        closed_within(&mut fresh, GENEROUS).await,
        "closed at shutdown"
    );
    assert!(
        closed_within(&mut kept, GENEROUS).await,
        "closed at shutdown"
    );
}
