//! The service's own accept loop: every connection is counted against a cap per client
//! address and a cap in all, must deliver each request head within a time limit (which also
//! closes idle keep-alive connections), and is shut down gracefully with the service.
//!
//! `axum::serve` has none of this: it keeps a silent socket, or one sending a header byte every
//! few seconds, for as long as the client likes, so a few hundred idle sockets used up the
//! process's file descriptors and `/healthz` stopped answering for everyone. Here hyper's
//! HTTP/1 connection is driven directly, with its header-read timer (`header_read_timeout`,
//! which hyper starts whenever it waits for a request head: on a new connection and again after
//! each answer on a kept-alive one), and a connection over a cap is closed at once, before a
//! byte is read: refusing costs nothing but the `accept`, so a client that opens sockets faster
//! than it is refused gains nothing (`docs/service.md`, "Connections").
//!
//! With TLS (`tls.rs`) the handshake happens in the connection's task, after the caps, and must
//! finish within the header timeout too: a client that opens a socket and never says hello, or
//! trickles its handshake, is closed like a silent plain one. The request heads that follow
//! are then timed by hyper as above.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::client::{self, IpNet};
use crate::tls::Tls;

/// The caps and timeouts of connections (from [`crate::ServiceConfig`]).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Open connections in all.
    pub max_connections: usize,
    /// Open connections from one client address (trusted proxies are exempt).
    pub max_connections_per_address: usize,
    /// How long a request head may take, counted from when the server waits for it; with TLS,
    /// also how long the handshake may take.
    pub header_timeout: Duration,
    /// Whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<[IpNet]>,
    /// TLS on every connection, or plain HTTP.
    pub tls: Option<Tls>,
}

/// Why a connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Total,
    Address,
}

/// The open connections, in all and by address.
#[derive(Debug)]
struct Counter {
    max_total: usize,
    max_per_address: usize,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    // Only addresses with open connections are here (an entry goes with its last connection),
    // so it holds at most `max_total` entries.
    by_address: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
struct Slot {
    counter: Arc<Counter>,
    address: Option<IpAddr>,
}

impl Counter {
    /// Admits a connection from `address` (`None`: a trusted proxy, capped only in all).
    fn admit(self: &Arc<Self>, address: Option<IpAddr>) -> Result<Slot, Refusal> {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if counts.total >= self.max_total {
            return Err(Refusal::Total);
        }
        if let Some(address) = address {
            let open = counts.by_address.entry(address).or_insert(0);
            if *open >= self.max_per_address {
                return Err(Refusal::Address);
            }
            *open += 1;
        }
        counts.total += 1;
        Ok(Slot {
            counter: self.clone(),
            address,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .counter
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(address) = self.address {
            if let Some(open) = counts.by_address.get_mut(&address) {
                *open -= 1;
                if *open == 0 {
                    counts.by_address.remove(&address);
                }
            }
        }
    }
}

/// Errors of `accept` that concern only the one connection (it was gone before it was
/// accepted): the loop goes on at once.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// One admitted connection's HTTP side.
struct Connection {
    peer: std::net::SocketAddr,
    app: Router,
    trusted: Arc<[IpNet]>,
    header_timeout: Duration,
    stopping: watch::Receiver<bool>,
}

impl Connection {
    /// Serves HTTP/1 on `stream` (a TCP socket, or a TLS stream over one) until the client
    /// closes, the header timeout runs out, or the shutdown: then it finishes the answer it is
    /// writing and closes.
    async fn serve<S>(self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            peer,
            app,
            trusted,
            header_timeout,
            mut stopping,
        } = self;
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            let client = client::resolve(peer, request.headers(), &trusted);
            request.extensions_mut().insert(client);
            let app = app.clone();
            async move { app.oneshot(request).await }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .keep_alive(true);
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "connection closed");
                }
            }
            _ = async { stopping.wait_for(|stopping| *stopping).await.map(|_| ()) } => {
                connection.as_mut().graceful_shutdown();
                if let Err(error) = connection.await {
                    tracing::debug!(%peer, %error, "connection closed at shutdown");
                }
            }
        }
    }
}

/// Serves `app` on `listener` until `signal` completes; then stops accepting, asks every
/// connection to finish the request it is answering and close (an idle one closes at once),
/// and returns when they all have. Aborting the returned future's task drops every connection.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    settings: Settings,
    signal: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // Turns true when the signal came: every connection then shuts down gracefully.
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(signal);
    let counter = Arc::new(Counter {
        max_total: settings.max_connections.max(1),
        max_per_address: settings.max_connections_per_address.max(1),
        counts: Mutex::new(Counts::default()),
    });
    let mut connections = JoinSet::new();
    loop {
        // Finished connections' results, so the set holds only open ones.
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut signal => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                // Out of file descriptors, most likely: a connection closing frees one. Waiting
                // a little keeps this loop from spinning on the error meanwhile.
                tracing::error!(%error, "cannot accept a connection; trying again in 100 ms");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    () = &mut signal => break,
                }
            }
        };
        let address = (!client::is_trusted(&settings.trusted_proxies, peer.ip()))
            .then(|| client::limit_key(peer.ip()));
        let slot = match counter.admit(address) {
            Ok(slot) => slot,
            Err(refusal) => {
                // Closed before a byte is read. Logged at debug only: a flood of these must not
                // become a flood of log lines.
                tracing::debug!(%peer, ?refusal, "connection refused: over the cap");
                drop(stream);
                continue;
            }
        };
        // Answers are written whole or streamed as events; Nagle's delay helps neither.
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            peer,
            app: app.clone(),
            trusted: settings.trusted_proxies.clone(),
            header_timeout: settings.header_timeout,
            stopping: stopping.clone(),
        };
        let tls = settings.tls.as_ref().map(Tls::acceptor);
        connections.spawn(async move {
            let _slot = slot;
            match tls {
                None => connection.serve(stream).await,
                Some(acceptor) => {
                    let mut stopping = connection.stopping.clone();
                    let handshake =
                        tokio::time::timeout(connection.header_timeout, acceptor.accept(stream));
                    let stream = tokio::select! {
                        result = handshake => match result {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(error)) => {
                                tracing::debug!(%peer, %error, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        },
                        // Nothing was asked yet: closed at once.
                        _ = stopping.wait_for(|stopping| *stopping) => return,
                    };
                    connection.serve(stream).await;
                }
            }
        });
    }
    // The loop ends only when the signal came (never polled again after that).
    drop(listener);
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_per_address_and_in_all_and_free_on_drop() {
        let counter = Arc::new(Counter {
            max_total: 3,
            max_per_address: 2,
            counts: Mutex::new(Counts::default()),
        });
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let first = counter.admit(Some(a)).expect("first of a");
        let second = counter.admit(Some(a)).expect("second of a");
        assert_eq!(
            counter.admit(Some(a)).expect_err("third of a"),
            Refusal::Address
        );
        let third = counter.admit(Some(b)).expect("b has its own");
        assert_eq!(counter.admit(Some(b)).expect_err("full"), Refusal::Total);
        assert_eq!(counter.admit(None).expect_err("full"), Refusal::Total);
        drop(first);
        let again = counter.admit(Some(a)).expect("a's place is free again");
        drop((second, third, again));
        let counts = counter.counts.lock().expect("lock");
        assert_eq!(counts.total, 0);
        assert!(
            counts.by_address.is_empty(),
            "no entry outlives its connections"
        );
    }
}
