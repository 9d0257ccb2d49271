//! The service's settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use civicflow_core::vault::MasterKey;

use crate::limits::RateLimit;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The store's directory (the engine's log, vault and read models live under it).
    pub data_dir: PathBuf,
    /// Where to listen.
    pub addr: SocketAddr,
    /// The master key of the personal-data vault.
    pub master_key: MasterKey,
    /// The per-token rate limit.
    pub rate_limit: RateLimit,
    /// How long a request may take before it is answered 503 (SSE streams are exempt).
    pub request_timeout: Duration,
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
    /// The default Open311 `jurisdiction_id`: the Tonghui community of Yiwu.
    pub const DEFAULT_OPEN311_JURISDICTION: &'static str = "tonghui.yiwu";
    /// The default of [`ServiceConfig::stream_replay_max`]: a few seconds of reading at most.
    pub const DEFAULT_STREAM_REPLAY_MAX: usize = 10_000;
    /// The default of [`ServiceConfig::stream_history_window`].
    pub const DEFAULT_STREAM_HISTORY_WINDOW: u64 = 1_000_000;
    /// The default of [`ServiceConfig::stream_replays_per_token`].
    pub const DEFAULT_STREAM_REPLAYS_PER_TOKEN: usize = 2;

    /// Defaults: `127.0.0.1:8080`, 30-second requests, 10-second grace, the default caches
    /// and rate limit above, the Open311 jurisdiction `tonghui.yiwu`, the stream limits above.
    pub fn new(data_dir: impl Into<PathBuf>, master_key: MasterKey) -> Self {
        Self {
            data_dir: data_dir.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            master_key,
            rate_limit: RateLimit::default(),
            request_timeout: Duration::from_secs(30),
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
