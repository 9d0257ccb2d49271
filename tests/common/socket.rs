//! The demo service on a real socket (`Served`), and a minimal HTTP/1.1 client for it that
//! reads responses whole or, for server-sent events, incrementally (chunked transfer coding
//! included). The client uses only `TcpStream`'s readiness API, so it needs no more of tokio
//! than the service does.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use civicflow::core::engine::Engine;
use civicflow::demo::DemoRun;
use civicflow::http::{AppState, ServiceError};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::service::DemoService;
use super::TempDir;

/// The demo service serving on `127.0.0.1`, on a port of its own.
pub struct Served {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Token by demo actor id.
    pub tokens: BTreeMap<&'static str, String>,
    /// The demo's run: the cases and directive it made.
    pub run: DemoRun,
    /// The engine behind the service (for reading the log's head, …).
    pub engine: Arc<Engine>,
    /// The service's shared state (its token index, for revoking while it serves).
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServiceError>>>,
    _dir: TempDir,
}

impl Served {
    /// Serves `demo` on a fresh port until [`Served::shutdown`] (or drop).
    pub async fn start(demo: DemoService) -> Self {
        let DemoService {
            service,
            tokens,
            run,
            dir,
            ..
        } = demo;
        let engine = service.engine().clone();
        let state = service.state().clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("an address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(service.serve(listener, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            tokens,
            run,
            engine,
            state,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    /// The token of a demo actor.
    pub fn token(&self, actor: &str) -> &str {
        self.tokens
            .get(actor)
            .unwrap_or_else(|| panic!("no demo actor {actor}"))
    }

    /// The log's head position now (0 for an empty log).
    pub fn head(&self) -> u64 {
        self.engine.log().head().map_or(0, |h| h.position.get())
    }

    /// A request answered whole: `(status, JSON body or Null)`.
    pub async fn json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let body = body.map(Value::to_string);
        let response = request(
            self.addr,
            method,
            path,
            &auth(token),
            body.as_deref().map(|b| ("application/json", b.as_bytes())),
        )
        .await
        .expect("a response");
        let value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        (response.status, value)
    }

    /// Opens an event stream at `path`, with `Last-Event-ID` when given.
    pub async fn events(
        &self,
        path: &str,
        token: Option<&str>,
        last_event_id: Option<&str>,
    ) -> EventStream {
        let mut headers = auth(token);
        headers.push(("Accept".into(), "text/event-stream".into()));
        if let Some(id) = last_event_id {
            headers.push(("Last-Event-ID".into(), id.into()));
        }
        open_events(self.addr, path, &headers)
            .await
            .expect("a response")
    }

    /// Completes the shutdown future and waits up to `within` for the service to stop:
    /// `Ok(how long it took)`, or `Err` when it did not stop in time.
    pub async fn shutdown(mut self, within: Duration) -> Result<Duration, String> {
        let started = Instant::now();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(task) = self.task.take() else {
            return Ok(Duration::ZERO);
        };
        match tokio::time::timeout(within, task).await {
            Ok(Ok(Ok(()))) => Ok(started.elapsed()),
            Ok(Ok(Err(e))) => Err(format!("serve failed: {e}")),
            Ok(Err(e)) => Err(format!("the serve task failed: {e}")),
            Err(_) => Err(format!("the service did not stop within {within:?}")),
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn auth(token: Option<&str>) -> Vec<(String, String)> {
    token
        .map(|t| vec![("Authorization".to_owned(), format!("Bearer {t}"))])
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The client

/// A connection with a read buffer.
pub struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        Ok(Self {
            stream: TcpStream::connect(addr).await?,
            buffer: Vec::new(),
        })
    }

    /// Writes every byte.
    pub async fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            self.stream.writable().await?;
            match self.stream.try_write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads more into the buffer; `false` at the end of the stream.
    async fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0_u8; 8192];
        loop {
            self.stream.readable().await?;
            match self.stream.try_read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buffer.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// A line ending in CRLF (or LF), without it.
    async fn read_line(&mut self) -> io::Result<String> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return String::from_utf8(line)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
            }
            if !self.fill().await? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Exactly `n` bytes.
    async fn read_exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buffer.len() < n {
            if !self.fill().await? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.buffer.drain(..n).collect())
    }

    /// Whatever is buffered, or the next bytes to arrive; `None` at the end of the stream.
    async fn read_some(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        if self.buffer.is_empty() && !self.fill().await? {
            return Ok(None);
        }
        let n = self.buffer.len().min(max);
        Ok(Some(self.buffer.drain(..n).collect()))
    }
}

/// A response's status line and headers.
#[derive(Debug, Clone)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// The headers, names in lowercase, in order.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response read whole.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The status line and headers.
    pub head: Head,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

/// How a body is delimited.
#[derive(Debug)]
enum Framing {
    /// Chunked transfer coding; `true` once the last chunk was read.
    Chunked(bool),
    /// `Content-Length` bytes left.
    Length(usize),
    /// Until the connection closes.
    UntilClose,
}

/// A response body read piece by piece.
pub struct Body {
    connection: Connection,
    framing: Framing,
}

impl Body {
    /// The next piece of the body (a chunk, or what arrived); `None` at its end.
    pub async fn next(&mut self) -> io::Result<Option<Vec<u8>>> {
        match &mut self.framing {
            Framing::Chunked(true) => Ok(None),
            Framing::Chunked(done) => {
                let line = self.connection.read_line().await?;
                let size = line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size, 16).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("chunk size {line:?}: {e}"),
                    )
                })?;
                if size == 0 {
                    // Trailers, up to the empty line.
                    while !self.connection.read_line().await?.is_empty() {}
                    *done = true;
                    return Ok(None);
                }
                let data = self.connection.read_exact(size).await?;
                let end = self.connection.read_line().await?;
                if !end.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a chunk does not end with CRLF",
                    ));
                }
                Ok(Some(data))
            }
            Framing::Length(0) => Ok(None),
            Framing::Length(left) => {
                let Some(data) = self.connection.read_some(*left).await? else {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                };
                *left -= data.len();
                Ok(Some(data))
            }
            Framing::UntilClose => self.connection.read_some(usize::MAX).await,
        }
    }

    /// The rest of the body.
    pub async fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        let mut all = Vec::new();
        while let Some(piece) = self.next().await? {
            all.extend(piece);
        }
        Ok(all)
    }
}

/// Sends a request (`Connection: close`) and reads its status line and headers, leaving the
/// body to read.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<(&str, &[u8])>,
) -> io::Result<(Head, Body)> {
    let mut connection = Connection::connect(addr).await?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some((content_type, bytes)) = body {
        request.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            bytes.len()
        ));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    if let Some((_, body)) = body {
        bytes.extend_from_slice(body);
    }
    connection.write_all(&bytes).await?;
    read_head(connection).await
}

/// Sends `bytes` exactly as given (a whole request: request line, headers of the caller's
/// choosing, body) and reads the whole response; for requests `send` cannot write, such as
/// another `Host` or an HTTP/1.0 request without one.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> io::Result<Response> {
    let mut connection = Connection::connect(addr).await?;
    connection.write_all(bytes).await?;
    let (head, mut body) = read_head(connection).await?;
    let body = body.read_to_end().await?;
    Ok(Response {
        status: head.status,
        head,
        body,
    })
}

/// Reads a response's status line and headers from `connection`, leaving the body to read.
async fn read_head(mut connection: Connection) -> io::Result<(Head, Body)> {
    let status_line = connection.read_line().await?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("status line {status_line:?}"),
            )
        })?;
    let mut response_headers = Vec::new();
    loop {
        let line = connection.read_line().await?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("header {line:?}"))
        })?;
        response_headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let head = Head {
        status,
        headers: response_headers,
    };
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let framing = if chunked {
        Framing::Chunked(false)
    } else if let Some(length) = head.header("content-length") {
        Framing::Length(length.parse().map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("content-length: {e}"))
        })?)
    } else {
        Framing::UntilClose
    };
    Ok((
        head,
        Body {
            connection,
            framing,
        },
    ))
}

/// Sends a request and reads the whole response.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<(&str, &[u8])>,
) -> io::Result<Response> {
    let (head, mut body) = send(addr, method, path, headers, body).await?;
    let body = body.read_to_end().await?;
    Ok(Response {
        status: head.status,
        head,
        body,
    })
}

/// Opens `GET path` as an event stream.
pub async fn open_events(
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
) -> io::Result<EventStream> {
    let (head, body) = send(addr, "GET", path, headers, None).await?;
    Ok(EventStream {
        head,
        body,
        pending: String::new(),
        comments: 0,
        ended: false,
    })
}

/// One server-sent event.
#[derive(Debug, Clone, Default)]
pub struct SseEvent {
    /// `id:`.
    pub id: Option<String>,
    /// `event:`.
    pub event: Option<String>,
    /// `data:` lines, joined with newlines.
    pub data: String,
}

impl SseEvent {
    /// The data as JSON (`Null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }

    /// The id as a number.
    pub fn id_number(&self) -> u64 {
        self.id
            .as_deref()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("an event without a numeric id: {self:?}"))
    }
}

/// An open `text/event-stream` response, read event by event.
pub struct EventStream {
    /// The status line and headers.
    pub head: Head,
    body: Body,
    pending: String,
    /// How many comment lines (keep-alives) arrived so far.
    pub comments: usize,
    ended: bool,
}

impl EventStream {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.head.status
    }

    /// The rest of the body (for an error answer).
    pub async fn body_json(mut self) -> Value {
        let mut bytes = self.pending.into_bytes();
        bytes.extend(self.body.read_to_end().await.unwrap_or_default());
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }

    /// The next event; `None` when the stream ended.
    pub async fn next(&mut self) -> io::Result<Option<SseEvent>> {
        loop {
            if let Some(event) = self.take_event() {
                return Ok(Some(event));
            }
            if self.ended {
                return Ok(None);
            }
            match self.body.next().await? {
                Some(bytes) => {
                    let text = String::from_utf8(bytes)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    self.pending.push_str(&text.replace("\r\n", "\n"));
                }
                None => self.ended = true,
            }
        }
    }

    /// The next event if one arrives within `timeout`: `Ok(None)` when the stream ended,
    /// `Err` on a timeout or a broken stream.
    pub async fn next_within(&mut self, timeout: Duration) -> Result<Option<SseEvent>, String> {
        match tokio::time::timeout(timeout, self.next()).await {
            Ok(Ok(event)) => Ok(event),
            Ok(Err(e)) => Err(format!("the stream broke: {e}")),
            Err(_) => Err(format!("no event within {timeout:?}")),
        }
    }

    /// Events until one matches `wanted`, within `timeout` overall: the skipped ones and the
    /// match.
    pub async fn until(
        &mut self,
        timeout: Duration,
        wanted: impl Fn(&SseEvent) -> bool,
    ) -> Result<(Vec<SseEvent>, SseEvent), String> {
        let deadline = Instant::now() + timeout;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_within(left).await {
                Ok(Some(event)) if wanted(&event) => return Ok((skipped, event)),
                Ok(Some(event)) => skipped.push(event),
                Ok(None) => {
                    return Err(format!(
                        "the stream ended before the event wanted; it sent {skipped:?}"
                    ))
                }
                Err(e) => return Err(format!("{e}; it sent {skipped:?}")),
            }
        }
    }

    /// Parses one complete event out of what arrived, skipping comment-only blocks.
    fn take_event(&mut self) -> Option<SseEvent> {
        loop {
            let end = self.pending.find("\n\n")?;
            let block: String = self.pending.drain(..end + 2).collect();
            let mut event = SseEvent::default();
            let mut has_field = false;
            let mut data: Vec<&str> = Vec::new();
            for line in block.lines() {
                if line.is_empty() {
                    continue;
                }
                if line.starts_with(':') {
                    self.comments += 1;
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                has_field = true;
                match field {
                    "id" => event.id = Some(value.to_owned()),
                    "event" => event.event = Some(value.to_owned()),
                    "data" => data.push(value),
                    _ => {}
                }
            }
            if has_field {
                event.data = data.join("\n");
                return Some(event);
            }
        }
    }
}
