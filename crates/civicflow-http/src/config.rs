//! The service's settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use civicflow_core::calendar::Zone;
use civicflow_core::vault::MasterKey;
use civicflow_projections::RunnerOptions;

use crate::client::IpNet;
use crate::limits::RateLimit;
use crate::tls::TlsConfig;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The store's directory (the engine's log, vault and read models live under it).
    pub data_dir: PathBuf,
    /// Where to listen.
    pub addr: SocketAddr,
    /// Serve TLS with this certificate and key (PEM files, read and checked when the service
    /// opens); `None`, the default: plain HTTP, for loopback or behind a reverse proxy that
    /// terminates TLS (`docs/service.md`, "TLS").
    pub tls: Option<TlsConfig>,
    /// The master key of the personal-data vault.
    pub master_key: MasterKey,
    /// The business calendar's time zone (`civicflow serve --time-zone`): working time is
    /// counted in it and every time in an answer is written in it. `None`: the store's
    /// recorded zone (Asia/Shanghai for a store that never recorded one); a zone given is
    /// recorded by a store without one and refused by a store that keeps another
    /// ([`civicflow_core::engine::EngineConfig::time_zone`]). Used by
    /// [`Service::open`](crate::Service::open); an engine given to
    /// [`Service::with_engine`](crate::Service::with_engine) keeps its own calendar's.
    pub time_zone: Option<Zone>,
    /// The per-token rate limit.
    pub rate_limit: RateLimit,
    /// The rate limit of one client address (an IPv6 client by its /64) for what no valid
    /// token pays for: anonymous reads (Open311's, `/metrics`, the OpenAPI document; not the
    /// health probes) and requests with a missing or unknown token or `api_key`.
    pub address_rate_limit: RateLimit,
    /// The most client addresses with a bucket of their own; beyond it (addresses whose
    /// buckets have refilled are dropped first) new addresses share one bucket. About 100
    /// bytes each.
    pub address_buckets_max: usize,
    /// How long a request may take before it is answered 503 (SSE streams are exempt).
    pub request_timeout: Duration,
    /// How long a connection may take to deliver a whole request head, counted from when the
    /// server starts waiting for one: on a new connection, and again after each answer, so an
    /// idle keep-alive connection is closed after it too. A silent socket, or one trickling
    /// header bytes, is closed when it runs out. With TLS the handshake must also finish
    /// within it (then the first request head gets its own).
    pub header_timeout: Duration,
    /// Open connections in all; a new one over it is closed at once. Keep it under the
    /// process's open-file limit (`civicflow serve` does: `docs/service.md`, "Connections").
    pub max_connections: usize,
    /// Open connections from one client address (an IPv6 client by its /64); a new one over
    /// it is closed at once. Connections from trusted proxies count only in all.
    pub max_connections_per_address: usize,
    /// The proxies whose `X-Forwarded-For` names the client (addresses or networks); none by
    /// default, so the socket's peer is the client.
    pub trusted_proxies: Vec<IpNet>,
    /// How long requests in flight may run on after a shutdown signal.
    pub shutdown_grace: Duration,
    /// The embedded read-model store's page cache, in bytes (memory is bounded by it).
    pub read_model_cache_bytes: u64,
    /// The embedded log's page cache, in bytes.
    pub log_cache_bytes: u64,
    /// The most rows each read model keeps decoded in memory between commits, live and
    /// while it catches up (eight read models do at once after an upgrade or a lost
    /// read-model store); the offline `civicflow rebuild` uses more, for speed.
    pub projection_rows_in_memory: usize,
    /// The Open311 `jurisdiction_id` this endpoint serves: a request naming another one is
    /// answered 404 (`docs/open311.md`).
    pub open311_jurisdiction: String,
    /// The most events one event-stream connection replays (history, before it follows
    /// live): a unit stream reads at most this many events of the log, a case stream sends
    /// at most this many of the case's; then it sends `event: resume` with the id to
    /// reconnect with and ends (`docs/service.md`, "Live feedback"). At least 1.
    pub stream_replay_max: usize,
    /// How far behind the log's head a unit stream may start (`since` or `Last-Event-ID`), in
    /// log positions: further back is refused 400.
    pub stream_history_window: u64,
    /// How many unit streams of one token may be replaying history at once; another one is
    /// refused 429 until one of them reaches the head or ends.
    pub stream_replays_per_token: usize,
}

impl ServiceConfig {
    /// The default page cache of the embedded log, in MiB (the store keeps more than its
    /// cache counts; `docs/benchmarks.md` has the server's measured memory).
    pub const DEFAULT_LOG_CACHE_MIB: u64 = 16;
    /// The default page cache of the embedded read-model store, in MiB.
    pub const DEFAULT_READ_MODEL_CACHE_MIB: u64 = 16;
    /// The default of [`ServiceConfig::projection_rows_in_memory`].
    pub const DEFAULT_PROJECTION_ROWS_IN_MEMORY: usize = 2_000;
    /// The default sustained requests per second of one token (bursts up to twice this).
    pub const DEFAULT_RATE_PER_SECOND: u32 = 500;
    /// The default sustained requests per second of one client address for what no valid
    /// token pays for (bursts up to twice this): a page of a civic app makes a handful.
    pub const DEFAULT_ADDRESS_RATE_PER_SECOND: u32 = 50;
    /// The default of [`ServiceConfig::address_buckets_max`] (a few MB at most).
    pub const DEFAULT_ADDRESS_BUCKETS_MAX: usize = 50_000;
    /// The default of [`ServiceConfig::header_timeout`], in seconds: far more than any client
    /// needs to send a request head, far less than the minutes a slow-header attack needs.
    pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 20;
    /// The default of [`ServiceConfig::max_connections`].
    pub const DEFAULT_MAX_CONNECTIONS: usize = 1_024;
    /// The default of [`ServiceConfig::max_connections_per_address`]: browsers open about six
    /// connections each, and a street office's thirty desks behind one NAT address near two
    /// hundred (64, the first default, cut off a single 64-connection client's next
    /// connection while its readiness probe's was still counted).
    pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 256;
    /// The default Open311 `jurisdiction_id`: the Tonghui community of Yiwu.
    pub const DEFAULT_OPEN311_JURISDICTION: &'static str = "tonghui.yiwu";
    /// The default of [`ServiceConfig::stream_replay_max`]: a few seconds of reading at most.
    pub const DEFAULT_STREAM_REPLAY_MAX: usize = 10_000;
    /// The default of [`ServiceConfig::stream_history_window`].
    pub const DEFAULT_STREAM_HISTORY_WINDOW: u64 = 1_000_000;
    /// The default of [`ServiceConfig::stream_replays_per_token`].
    pub const DEFAULT_STREAM_REPLAYS_PER_TOKEN: usize = 2;

    /// The read models' runner options with `rows_in_memory` rows per model kept between
    /// commits: the service's (with [`ServiceConfig::projection_rows_in_memory`]), and
    /// `civicflow rebuild`'s (with the default), so that both run the models alike.
    pub fn runner_options(rows_in_memory: usize) -> RunnerOptions {
        RunnerOptions {
            rows_in_memory_max: rows_in_memory,
            ..RunnerOptions::default()
        }
    }

    /// Defaults: `127.0.0.1:8080` over plain HTTP, Asia/Shanghai, 30-second requests, 10-second grace, the default caches,
    /// connection caps, header timeout and rate limits above, no trusted proxies, the Open311
    /// jurisdiction `tonghui.yiwu`, the stream limits above.
    pub fn new(data_dir: impl Into<PathBuf>, master_key: MasterKey) -> Self {
        Self {
            data_dir: data_dir.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls: None,
            master_key,
            time_zone: None,
            rate_limit: RateLimit::default(),
            address_rate_limit: RateLimit::per_second(Self::DEFAULT_ADDRESS_RATE_PER_SECOND),
            address_buckets_max: Self::DEFAULT_ADDRESS_BUCKETS_MAX,
            request_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(Self::DEFAULT_HEADER_TIMEOUT_SECS),
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: Self::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            trusted_proxies: Vec::new(),
            shutdown_grace: Duration::from_secs(10),
            read_model_cache_bytes: Self::DEFAULT_READ_MODEL_CACHE_MIB * 1024 * 1024,
            log_cache_bytes: Self::DEFAULT_LOG_CACHE_MIB * 1024 * 1024,
            projection_rows_in_memory: Self::DEFAULT_PROJECTION_ROWS_IN_MEMORY,
            open311_jurisdiction: Self::DEFAULT_OPEN311_JURISDICTION.to_owned(),
            stream_replay_max: Self::DEFAULT_STREAM_REPLAY_MAX,
            stream_history_window: Self::DEFAULT_STREAM_HISTORY_WINDOW,
            stream_replays_per_token: Self::DEFAULT_STREAM_REPLAYS_PER_TOKEN,
        }
    }
}
