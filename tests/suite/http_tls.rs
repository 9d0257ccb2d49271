//! TLS on a real socket (issue 13: "Tokens cross the network in the clear"): the service
//! answers over TLS with the certificate it was given and nothing in clear; a client that opens
//! a socket and never says hello, or trickles its hello, is closed after the header timeout;
//! the connection caps apply before the handshake; `civicflow serve --tls-cert --tls-key`
//! listens off loopback without `--insecure-http` and takes a renewed certificate on SIGHUP.
//!
//! Certificates are made in the test (rcgen, self-signed for 127.0.0.1 and localhost); the
//! client is rustls trusting that certificate alone. As in `http_connections`, a connection is
//! only asserted closed within a generous bound, never how fast.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use civicflow::http::TlsConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, pki_types::CertificateDer, pki_types::ServerName};
use tokio_rustls::TlsConnector;

use crate::common::serve::{assert_no_panic, Launch, ServeProcess};
use crate::common::service::DemoService;
use crate::common::socket::Served;
use crate::common::TempDir;
use crate::http_connections::{closed_within, connect_from};

/// Far above any timeout set here: only a connection that is never closed (or an answer that
/// never comes) fails a test.
const GENEROUS: Duration = Duration::from_secs(20);

/// A self-signed certificate for 127.0.0.1 and localhost and its key, written as PEM files.
pub(crate) struct TestCert {
    /// The certificate, PEM.
    pub cert_file: PathBuf,
    /// Its private key, PEM (PKCS#8).
    pub key_file: PathBuf,
    der: CertificateDer<'static>,
}

impl TestCert {
    /// A new one, written into `dir` (created if missing) as `NAME.crt` and `NAME.key`.
    pub(crate) fn new(dir: &Path, name: &str) -> Self {
        let certified = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
        ])
        .expect("a certificate");
        std::fs::create_dir_all(dir).expect("a directory for certificates");
        let cert_file = dir.join(format!("{name}.crt"));
        let key_file = dir.join(format!("{name}.key"));
        std::fs::write(&cert_file, certified.cert.pem()).expect("write the certificate");
        std::fs::write(&key_file, certified.signing_key.serialize_pem()).expect("write the key");
        Self {
            cert_file,
            key_file,
            der: certified.cert.der().clone(),
        }
    }

    /// The service's configuration for it.
    fn config(&self) -> TlsConfig {
        TlsConfig::new(&self.cert_file, &self.key_file)
    }

    /// Its two paths, as command-line arguments.
    pub(crate) fn args(&self) -> [&str; 4] {
        [
            "--tls-cert",
            self.cert_file.to_str().expect("a UTF-8 path"),
            "--tls-key",
            self.key_file.to_str().expect("a UTF-8 path"),
        ]
    }
}

/// A TLS client that trusts `cert` alone and offers the application protocols `alpn`.
fn client(cert: &TestCert, alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).expect("a trust anchor");
    // The server's provider (crates/civicflow-http/src/tls.rs says why it is ring).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

/// A TLS connection to `addr`, checking the server's certificate for `localhost`.
async fn connect_tls(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("a server name");
    tokio::time::timeout(GENEROUS, connector.connect(name, tcp))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no handshake in time"))?
}

/// `GET path` on `stream` (kept alive), and its answer: the status and the body (which has a
/// Content-Length).
async fn get<S>(stream: &mut S, path: &str) -> io::Result<(u16, String)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await?;
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + GENEROUS;
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
            if bytes.len() >= end + 4 + length {
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("a status line in {head:?}"));
                let body = String::from_utf8_lossy(&bytes[end + 4..end + 4 + length]);
                return Ok((status, body.into_owned()));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, stream.read(&mut buffer))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer in time"))??;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        bytes.extend_from_slice(&buffer[..n]);
    }
}

/// `GET /healthz` over a new TLS connection trusting `cert` alone: the status, or why not.
async fn healthz(addr: SocketAddr, cert: &TestCert) -> io::Result<u16> {
    let mut stream = connect_tls(addr, &client(cert, &[])).await?;
    let (status, _) = get(&mut stream, "/healthz").await?;
    Ok(status)
}

#[tokio::test]
async fn healthz_is_answered_over_tls_and_plain_http_gets_no_answer() {
    let certs = TempDir::new("tls-certs");
    let cert = TestCert::new(certs.path(), "server");
    let served = Served::start(DemoService::start_with("tls-healthz", |config| {
        config.tls = Some(cert.config());
    }))
    .await;

    // A client offering HTTP/2 and HTTP/1.1 gets HTTP/1.1, and two answers on one connection.
    let mut stream = connect_tls(served.addr, &client(&cert, &[b"h2", b"http/1.1"]))
        .await
        .expect("a handshake with the server's certificate");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    for n in 1..=2 {
        let (status, body) = get(&mut stream, "/healthz").await.expect("an answer");
        assert_eq!(status, 200, "request {n}: {body}");
        assert!(body.contains("\"ok\""), "{body}");
    }
    // A token's request too, as over plain HTTP.
    let token = served.token("li.grid1");
    stream
        .write_all(
            format!("GET /api/v1/units HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("write");
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).await.expect("an answer");
    assert_eq!(&first, b"HTTP/1.1 200", "an authenticated read over TLS");
    drop(stream);

    // Open311's discovery names the endpoint by the scheme it was reached with.
    let mut stream = connect_tls(served.addr, &client(&cert, &[]))
        .await
        .expect("a handshake");
    let (status, body) = get(&mut stream, "/open311/v2/discovery.json")
        .await
        .expect("an answer");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"url\":\"https://localhost/open311/v2\""),
        "{body}"
    );
    drop(stream);

    // The certificate presented is the one configured: a client trusting another refuses it.
    let other = TestCert::new(certs.path(), "other");
    assert!(
        connect_tls(served.addr, &client(&other, &[]))
            .await
            .is_err(),
        "a client trusting another certificate completed a handshake"
    );

    // Plain HTTP to the TLS port: no answer in clear, and the connection closed.
    let mut plain = connect_from(1, served.addr).await;
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: civicflow\r\nConnection: close\r\n\r\n")
        .await
        .expect("write the request");
    let mut bytes = Vec::new();
    // A reset is as good as an end here: either way nothing was answered in clear.
    let _ = tokio::time::timeout(GENEROUS, plain.read_to_end(&mut bytes))
        .await
        .expect("the connection is closed in time");
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        !text.contains("HTTP/") && !text.contains("ok"),
        "an answer in clear: {text:?}"
    );

    served
        .shutdown(Duration::from_secs(10))
        .await
        .expect("a clean shutdown");
}

#[tokio::test]
async fn a_client_that_never_says_hello_is_closed_after_the_header_timeout() {
    let certs = TempDir::new("tls-certs");
    let cert = TestCert::new(certs.path(), "server");
    let served = Served::start(DemoService::start_with("tls-silent", |config| {
        config.tls = Some(cert.config());
        config.header_timeout = Duration::from_secs(1);
    }))
    .await;

    // Opens the socket and sends nothing.
    let mut silent = connect_from(1, served.addr).await;
    assert!(
        closed_within(&mut silent, GENEROUS).await,
        "a client that never says hello is closed"
    );

    // Starts a ClientHello record announcing 512 bytes, then sends one byte every 100 ms: bytes
    // keep coming, the hello never completes in time.
    let mut slow = connect_from(1, served.addr).await;
    slow.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .expect("a record header");
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < GENEROUS {
        if slow.write_all(&[0]).await.is_err()
            || closed_within(&mut slow, Duration::from_millis(100)).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "a client trickling its hello is closed");

    // A prompt client is served as ever.
    assert_eq!(healthz(served.addr, &cert).await.expect("an answer"), 200);
    served
        .shutdown(Duration::from_secs(10))
        .await
        .expect("a clean shutdown");
}

#[tokio::test]
async fn the_connection_caps_close_a_tls_connection_before_its_handshake() {
    // The header timeout is long: only the cap may close a silent socket here.
    let certs = TempDir::new("tls-certs");
    let cert = TestCert::new(certs.path(), "server");
    let served = Served::start(DemoService::start_with("tls-cap", |config| {
        config.tls = Some(cert.config());
        config.max_connections_per_address = 2;
        config.header_timeout = Duration::from_secs(120);
    }))
    .await;
    let mut held = vec![
        connect_from(3, served.addr).await,
        connect_from(3, served.addr).await,
    ];
    // A third from the same address, silent too: closed at once, not after a handshake that
    // never comes.
    let mut third = connect_from(3, served.addr).await;
    assert!(
        closed_within(&mut third, GENEROUS).await,
        "over the cap before the handshake"
    );
    for stream in &mut held {
        assert!(
            !closed_within(stream, Duration::from_millis(100)).await,
            "the two admitted ones wait for their hello"
        );
    }
    // Another address is served (the test's client connects from 127.0.0.1).
    assert_eq!(healthz(served.addr, &cert).await.expect("an answer"), 200);
    served
        .shutdown(Duration::from_secs(10))
        .await
        .expect("a clean shutdown");
}

/// Waits until `server`'s stderr holds `text`; panics with it after `within`.
fn wait_for_stderr(server: &ServeProcess, text: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let stderr = server.stderr();
        if stderr.contains(text) {
            return stderr;
        }
        assert!(
            Instant::now() < deadline,
            "no {text:?} within {within:?}:\n{stderr}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[tokio::test]
async fn serve_with_tls_listens_off_loopback_without_insecure_http_and_reloads_on_sighup() {
    let scratch = TempDir::new("tls-serve");
    let data = scratch.path().join("data");
    let certs = scratch.path().join("certs");
    let first = TestCert::new(&certs, "server");
    let mut server = ServeProcess::start(
        &data,
        Launch {
            addr: Some("0.0.0.0:0"),
            args: first.args().to_vec(),
            ..Launch::default()
        },
    );
    let bound = server.wait_listening(Duration::from_secs(60));
    assert!(bound.ip().is_unspecified(), "{bound}");
    assert!(
        server.stderr().contains(&format!(" on https://{bound}")),
        "{}",
        server.stderr()
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], bound.port()));
    assert_eq!(healthz(addr, &first).await.expect("an answer"), 200);

    // A renewed certificate whose key is not in place yet: SIGHUP is refused, saying why, and
    // the certificate in use stays.
    let renewed = TestCert::new(&certs, "renewed");
    std::fs::copy(&renewed.cert_file, &first.cert_file).expect("the new certificate");
    server.signal("HUP");
    let stderr = wait_for_stderr(&server, "were not reloaded", GENEROUS);
    assert!(
        stderr.contains("does not belong to the certificate"),
        "{stderr}"
    );
    assert_eq!(healthz(addr, &first).await.expect("still the first"), 200);

    // With its key: the next SIGHUP takes both, for new connections.
    std::fs::copy(&renewed.key_file, &first.key_file).expect("the new key");
    server.signal("HUP");
    let deadline = Instant::now() + GENEROUS;
    while healthz(addr, &renewed).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not served:\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        healthz(addr, &first).await.is_err(),
        "the old certificate is no longer served"
    );

    let (status, stderr) = server.stop();
    assert!(status.success(), "{status}: {stderr}");
    assert_no_panic(&stderr, "civicflow serve with TLS");
}
