//! `civicflow serve`: the service, and with `--demo` the Tonghui demo's data and tokens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use civicflow::core::calendar::Zone;
use civicflow::core::domain::org::Acting;
use civicflow::core::engine::{Engine, Storage};
use civicflow::core::vault::MasterKey;
use civicflow::core::{ManualClock, UnitId};
use civicflow::demo;
use civicflow::http::demo::{DemoToken, DEMO_OPEN311_ROUTING};
use civicflow::http::open311::routing::ROUTING_FILE;
use civicflow::http::{IpNet, Service, ServiceConfig, TlsConfig};

use super::backend::StoreArgs;

/// The service's worker threads on a shared store (see where the runtime is built).
const SHARED_STORE_WORKERS: usize = 16;

/// The file `--demo` writes its tokens to.
pub const DEMO_TOKENS: &str = "demo-tokens.json";

/// The master key: `CIVICFLOW_MASTER_KEY` (64 hex digits), else the key file (created with
/// a new key when missing).
pub fn master_key(key_file: &Path) -> Result<MasterKey, String> {
    if let Some(key) = MasterKey::from_env().map_err(|e| e.to_string())? {
        return Ok(key);
    }
    let existed = key_file.exists();
    let key = MasterKey::load_or_create(key_file).map_err(|e| e.to_string())?;
    if !existed {
        eprintln!(
            "civicflow: created a new master key in {} (keep a copy elsewhere: without it the personal data in the vault cannot be read; see docs/decisions/0004-personal-data.md)",
            key_file.display()
        );
    }
    Ok(key)
}

/// Loads the Tonghui demo into an empty store: the org chart and a run of every loop, on a
/// clock that starts at the demo's date (the service then runs on the system clock, later),
/// and writes its Open311 routing rules to `DIR/open311-routing.toml`.
fn load_demo(store: &StoreArgs, key: &MasterKey, zone: Option<&Zone>) -> Result<(), String> {
    let clock = ManualClock::new(demo::START);
    let mut config = store.engine_config(key.clone(), Some(Arc::new(clock.clone())))?;
    if let Some(zone) = zone {
        config = config.time_zone(zone.clone());
    }
    let engine = Engine::open(config).map_err(|e| e.to_string())?;
    demo::build_org(&engine).map_err(|e| e.to_string())?;
    demo::run_loops(&engine, &clock).map_err(|e| e.to_string())?;
    Ok(())
}

/// The demo's Open311 routing, read when the service opens: written by the instance that
/// loaded the demo, and by every other instance of a shared store started with `--demo`
/// (the routing file is the instance's, the demo's units are in the shared log).
/// Owner-only like everything else in the data directory.
fn write_demo_routing(data: &Path) -> Result<(), String> {
    let path = data.join(ROUTING_FILE);
    if path.exists() {
        return Ok(());
    }
    write_private(&path, DEMO_OPEN311_ROUTING)
}

/// A token for every demo actor, written to `DIR/demo-tokens.json`.
fn issue_demo_tokens(service: &Service, data: &Path) -> Result<usize, String> {
    let system = Acting::system(UnitId::new("tonghui").map_err(|e| e.to_string())?);
    let mut tokens = Vec::new();
    for (actor, name, role, unit) in demo::ACTORS {
        let acting = demo::acting(actor);
        let (_, secret) = service
            .issue_token(&system, acting, &format!("demo: {name}"))
            .map_err(|e| e.to_string())?;
        tokens.push(DemoToken {
            token: secret.expose().to_owned(),
            role: (*role).to_owned(),
            unit_id: (*unit).to_owned(),
            name: (*name).to_owned(),
        });
    }
    let path = data.join(DEMO_TOKENS);
    let text = serde_json::to_string_pretty(&tokens).map_err(|e| e.to_string())?;
    write_private(&path, &text)?;
    Ok(tokens.len())
}

/// Writes a file readable by its owner only (it holds secrets).
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Runs the service until SIGTERM or Ctrl-C.
/// `civicflow serve`'s options.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// The store (its directory is created if missing).
    #[command(flatten)]
    pub store: StoreArgs,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// The business calendar's time zone, an IANA name (Europe/Berlin, America/New_York):
    /// working days and hours are local there, and every time in an answer is written in it
    /// (RFC 3339 with its offset). A store records the first zone it is given and keeps it
    /// (another is refused); without this flag, the store's zone (Asia/Shanghai if none was
    /// ever given).
    #[arg(long = "time-zone", value_name = "NAME", value_parser = super::parse_zone)]
    pub time_zone: Option<Zone>,
    /// On an empty store, load the Tonghui demo, write its Open311 routing rules to
    /// DIR/open311-routing.toml and a token for every demo actor to DIR/demo-tokens.json.
    #[arg(long)]
    pub demo: bool,
    /// Publish the workflow definitions of DIR (its `*.toml` files, docs/workflows.md) into
    /// the store at start: a file the store has already changes nothing; a changed one must
    /// carry a higher version; a file the engine refuses stops the start, naming the file and
    /// the key at fault. Once published, a definition lives in the store's log: later starts
    /// need the files no more.
    #[arg(long, value_name = "DIR")]
    pub workflows: Option<PathBuf>,
    /// The master key file of the personal-data vault (created when missing), unless
    /// CIVICFLOW_MASTER_KEY is set. Default: DIR/master.key.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// The embedded log's page cache, in MiB (the store keeps more than it counts: see
    /// docs/benchmarks.md).
    #[arg(long, default_value_t = ServiceConfig::DEFAULT_LOG_CACHE_MIB, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub log_cache_mib: u64,
    /// The embedded read-model store's page cache, in MiB.
    #[arg(long, default_value_t = ServiceConfig::DEFAULT_READ_MODEL_CACHE_MIB, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub read_model_cache_mib: u64,
    /// Requests per second allowed to one token (sustained; bursts up to twice this).
    #[arg(long, default_value_t = ServiceConfig::DEFAULT_RATE_PER_SECOND, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit: u32,
    /// Requests per second allowed to one client address (sustained; bursts up to twice this)
    /// for what no valid token pays for: anonymous reads (Open311, /metrics; not /healthz or
    /// /readyz) and requests with a missing or unknown token or api_key.
    #[arg(long, value_name = "N", default_value_t = ServiceConfig::DEFAULT_ADDRESS_RATE_PER_SECOND, value_parser = clap::value_parser!(u32).range(1..))]
    pub address_rate_limit: u32,
    /// Seconds a connection may take to send a whole request head, counted from when it opens
    /// and again after each answer (so an idle keep-alive connection is closed after it too).
    /// With TLS, the handshake must finish within it as well.
    #[arg(long, value_name = "SECS", default_value_t = ServiceConfig::DEFAULT_HEADER_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub header_timeout: u64,
    /// Open connections in all; more are closed at once. Default: 1024, or less when the
    /// open-file limit (ulimit -n) leaves less room.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: Option<u64>,
    /// Open connections from one client address (an IPv6 client by its /64); more are closed
    /// at once. Trusted proxies count only in all.
    #[arg(long, value_name = "N", default_value_t = ServiceConfig::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS as u64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections_per_address: u64,
    /// A reverse proxy whose X-Forwarded-For names the client (an address or a network,
    /// ADDRESS/PREFIX); repeat for several. Default: none, the socket's peer is the client.
    #[arg(long = "trusted-proxy", value_name = "ADDRESS[/PREFIX]")]
    pub trusted_proxies: Vec<IpNet>,
    /// Serve HTTPS with this certificate chain (PEM: the server's certificate first, then any
    /// intermediates). Needs --tls-key. Read at start and again on SIGHUP.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM, unencrypted: PKCS#8, RSA or EC). Needs --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Listen on an address other than loopback over plain HTTP. Without it (or TLS) `serve`
    /// refuses to: bearer tokens and personal details would cross the network in the clear.
    /// Serve TLS with --tls-cert and --tls-key, or put a reverse proxy that terminates TLS in
    /// front instead (docs/service.md).
    #[arg(long, conflicts_with = "tls_cert")]
    pub insecure_http: bool,
}

/// Whether listening on `addr` keeps tokens off the network in the clear: TLS does, and over
/// plain HTTP only a loopback address does (`--insecure-http` overrides, saying so).
fn check_plain_http(addr: SocketAddr, tls: bool, insecure_http: bool) -> Result<(), String> {
    if tls || addr.ip().is_loopback() {
        return Ok(());
    }
    if insecure_http {
        eprintln!(
            "civicflow: warning: serving plain HTTP on {addr} (--insecure-http): bearer tokens and personal details cross the network unencrypted"
        );
        return Ok(());
    }
    Err(format!(
        "refusing to listen on {addr} over plain HTTP: bearer tokens and the personal details in cases would cross the network unencrypted. Serve TLS with --tls-cert FILE --tls-key FILE (docs/service.md, \"TLS\"), or listen on 127.0.0.1 behind a reverse proxy that terminates TLS (nginx, Caddy; pass it with --trusted-proxy: docs/service.md, \"Behind a reverse proxy\"), or pass --insecure-http if every hop of the network is trusted"
    ))
}

/// Open files `serve` keeps for itself beyond connections: the stores' files (three sled
/// databases, the vault's key file, snapshots), the runtime's, standard streams, with room.
const RESERVED_FILES: u64 = 64;

/// The connection cap: `asked` (or the default), checked against the open-file limit `limit`
/// (`None`: unknown or unlimited). An explicit cap the limit cannot hold is refused, saying
/// why; the default is lowered to fit, with a note.
fn connection_cap(asked: Option<u64>, limit: Option<u64>) -> Result<usize, String> {
    let room = limit.map(|limit| limit.saturating_sub(RESERVED_FILES));
    match (asked, room) {
        (_, Some(0)) => Err(format!(
            "the open-file limit ({} files, ulimit -n) leaves no room for connections: civicflow keeps {RESERVED_FILES} for itself; raise the limit",
            limit.unwrap_or_default()
        )),
        (Some(asked), Some(room)) if asked > room => Err(format!(
            "--max-connections {asked} is more than the open-file limit allows ({} files, ulimit -n, less {RESERVED_FILES} civicflow keeps for itself: at most {room}); raise the limit or lower --max-connections",
            limit.unwrap_or_default()
        )),
        (Some(asked), _) => usize::try_from(asked).map_err(|_| format!("--max-connections {asked} is too large for this machine")),
        (None, Some(room)) if room < ServiceConfig::DEFAULT_MAX_CONNECTIONS as u64 => {
            eprintln!(
                "civicflow: at most {room} connections (the open-file limit is {} files; raise ulimit -n for more)",
                limit.unwrap_or_default()
            );
            Ok(usize::try_from(room).unwrap_or(ServiceConfig::DEFAULT_MAX_CONNECTIONS))
        }
        (None, _) => Ok(ServiceConfig::DEFAULT_MAX_CONNECTIONS),
    }
}

/// The process's open-file limit (the soft one, what `accept` runs into), when there is one.
#[cfg(unix)]
fn open_file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

#[cfg(not(unix))]
fn open_file_limit() -> Option<u64> {
    None
}

/// Runs the service until SIGTERM or Ctrl-C.
///
/// # Errors
/// A store that does not open, an address in use, a missing master key, a TLS certificate or
/// key that cannot be used: each says what to do.
pub fn run(args: ServeArgs) -> Result<ExitCode, String> {
    let ServeArgs {
        store,
        addr,
        time_zone,
        demo,
        workflows,
        key_file,
        log_cache_mib,
        read_model_cache_mib,
        rate_limit,
        address_rate_limit,
        header_timeout,
        max_connections,
        max_connections_per_address,
        trusted_proxies,
        tls_cert,
        tls_key,
        insecure_http,
    } = args;
    // clap lets through both or neither.
    let tls = tls_cert
        .zip(tls_key)
        .map(|(cert, key)| TlsConfig::new(cert, key));
    check_plain_http(addr, tls.is_some(), insecure_http)?;
    // Before anything is created: a bad certificate or key is refused naming the file.
    if let Some(tls) = &tls {
        tls.check().map_err(|e| format!("cannot serve TLS: {e}"))?;
    }
    let max_connections = connection_cap(max_connections, open_file_limit())?;
    init_logging();
    // The runtime first: the SIGXFSZ handler below needs it, and must be in place before the
    // first write (loading the demo writes).
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if store.shared().is_some() {
        // The engine's reads are synchronous: on a shared store each is a round trip to the
        // database that holds its worker thread meanwhile. More workers than cores keep the
        // service answering while some wait (benches/postgres_service.rs).
        builder.worker_threads(SHARED_STORE_WORKERS);
    }
    let runtime = builder
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let _entered = runtime.enter();
    survive_file_size_limit()?;
    let data = store.data().to_owned();
    // Owner-only before anything is written into it (the master key, the demo's files).
    Storage::create_data_dir(&data)
        .map_err(|e| format!("cannot create {}: {e}", data.display()))?;
    let empty = store.is_empty()?;
    let key_file = key_file.unwrap_or_else(|| data.join("master.key"));
    if store.shared().is_some()
        && !empty
        && !key_file.exists()
        && std::env::var_os("CIVICFLOW_MASTER_KEY").is_none()
    {
        // A new key here would not open the shared vault: say so before making one.
        return Err(format!(
            "no master key for the shared store {}: {} does not exist and CIVICFLOW_MASTER_KEY is not set; every instance uses the key the first one made (pass --key-file FILE or set CIVICFLOW_MASTER_KEY)",
            store.describe(),
            key_file.display()
        ));
    }
    let key = master_key(&key_file)?;
    let load = demo && empty;
    if load {
        eprintln!(
            "civicflow: loading the Tonghui demo into {}",
            store.describe()
        );
        load_demo(&store, &key, time_zone.as_ref())?;
    } else if demo {
        eprintln!(
            "civicflow: {} is not empty; the demo is not loaded again (its tokens are in {} of the instance that loaded it)",
            store.describe(),
            DEMO_TOKENS
        );
    }
    if load || (demo && store.shared().is_some()) {
        write_demo_routing(&data)?;
    }
    let mut config = ServiceConfig::new(&data, key.clone());
    config.addr = addr;
    config.time_zone = time_zone.clone();
    config.log_cache_bytes = log_cache_mib * 1024 * 1024;
    config.read_model_cache_bytes = read_model_cache_mib * 1024 * 1024;
    config.rate_limit = civicflow::http::RateLimit::per_second(rate_limit);
    config.address_rate_limit = civicflow::http::RateLimit::per_second(address_rate_limit);
    config.header_timeout = std::time::Duration::from_secs(header_timeout);
    config.max_connections = max_connections;
    config.max_connections_per_address = usize::try_from(max_connections_per_address)
        .map_err(|_| "--max-connections-per-address is too large for this machine".to_owned())?;
    config.trusted_proxies = trusted_proxies;
    config.tls = tls;
    let service = match store.shared() {
        None => Service::open(config),
        Some(_) => {
            // A shared store: the engine on the database's log and vault, the read models
            // (the service's own part) in the data directory.
            let mut engine_config = store.engine_config(key, None)?;
            if let Some(zone) = &time_zone {
                engine_config = engine_config.time_zone(zone.clone());
            }
            let engine = Engine::open(engine_config)
                .map_err(|e| format!("cannot open the store {}: {e}", store.describe()))?;
            Service::with_engine(Arc::new(engine), config)
        }
    }
    .map_err(|e| e.to_string())?;
    if let Some(dir) = &workflows {
        for published in super::workflows::publish_dir(service.engine(), dir)? {
            eprintln!(
                "civicflow: workflow {} from {}: {}",
                published.reference,
                published.file.display(),
                if published.changed {
                    "published"
                } else {
                    "in the store already"
                }
            );
        }
    }
    let scheme = match service.tls_reloader() {
        Some(reloader) => {
            reload_on_sighup(reloader)?;
            "https"
        }
        None => "http",
    };
    if load {
        let count = issue_demo_tokens(&service, &data)?;
        eprintln!(
            "civicflow: {count} demo tokens written to {}",
            data.join(DEMO_TOKENS).display()
        );
    }
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        eprintln!(
            "civicflow: serving {} on {scheme}://{bound}",
            store.describe()
        );
        let zone = service.engine().calendar().zone().clone();
        tracing::info!(%bound, data = %data.display(), time_zone = %zone, "serving");
        service
            .serve(listener, shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    })?;
    eprintln!("civicflow: stopped");
    Ok(ExitCode::SUCCESS)
}

/// Makes a write past the file-size limit (`RLIMIT_FSIZE`, `ulimit -f`) fail instead of
/// killing the server. The kernel sends SIGXFSZ to a thread whose write would cross the limit,
/// and its default action terminates the process (with a core dump): every request in flight
/// would be cut off and nothing would say why. With a handler installed the write fails with
/// `EFBIG` instead, like a full disk: the store that got it poisons itself and says so, reads
/// keep working, and the operator sees the reason (tests/suite/sled/disk_full.rs). tokio's handler stays
/// installed for the life of the process, for every thread (the embedded store writes on
/// threads of its own);
/// the task only logs each signal.
///
/// # Errors
/// The handler cannot be installed.
#[cfg(unix)]
fn survive_file_size_limit() -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut signals = signal(SignalKind::from_raw(libc::SIGXFSZ))
        .map_err(|e| format!("cannot install the SIGXFSZ handler: {e}"))?;
    tokio::spawn(async move {
        while signals.recv().await.is_some() {
            tracing::error!(
                "a write went past the file-size limit (SIGXFSZ, RLIMIT_FSIZE): it failed with EFBIG and the store that made it refuses writes until a restart with room"
            );
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn survive_file_size_limit() -> Result<(), String> {
    Ok(())
}

/// Reads the TLS certificate and key again on each SIGHUP (a renewed certificate is served
/// without a restart: new connections get it, open ones keep theirs). Files that cannot be used
/// are logged, and the ones in use stay.
///
/// # Errors
/// The handler cannot be installed.
#[cfg(unix)]
fn reload_on_sighup(reloader: civicflow::http::TlsReloader) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = signal(SignalKind::hangup())
        .map_err(|e| format!("cannot install the SIGHUP handler: {e}"))?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match reloader.reload() {
                Ok(()) => tracing::info!(
                    cert = %reloader.config().cert_file.display(),
                    "SIGHUP: the TLS certificate and key were read again; new connections use them"
                ),
                Err(error) => tracing::error!(
                    %error,
                    "SIGHUP: the TLS certificate and key were not reloaded; the ones in use stay"
                ),
            }
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn reload_on_sighup(_reloader: civicflow::http::TlsReloader) -> Result<(), String> {
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("CIVICFLOW_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_off_loopback_needs_the_flag() {
        let at = |text: &str| text.parse::<SocketAddr>().expect("an address");
        assert_eq!(check_plain_http(at("127.0.0.1:8080"), false, false), Ok(()));
        assert_eq!(check_plain_http(at("[::1]:8080"), false, false), Ok(()));
        for addr in ["0.0.0.0:8080", "192.0.2.7:443", "[::]:8080"] {
            let refused = check_plain_http(at(addr), false, false).expect_err(addr);
            assert!(
                refused.contains("--insecure-http")
                    && refused.contains("--tls-cert FILE --tls-key FILE")
                    && refused.contains("unencrypted"),
                "{refused}"
            );
            assert_eq!(check_plain_http(at(addr), false, true), Ok(()));
            assert_eq!(check_plain_http(at(addr), true, false), Ok(()), "with TLS");
        }
    }

    #[test]
    fn the_connection_cap_fits_the_open_file_limit() {
        let default = ServiceConfig::DEFAULT_MAX_CONNECTIONS;
        assert_eq!(connection_cap(None, None), Ok(default));
        assert_eq!(connection_cap(None, Some(1_048_576)), Ok(default));
        assert_eq!(connection_cap(None, Some(256)), Ok(192), "lowered to fit");
        assert_eq!(connection_cap(Some(100), Some(256)), Ok(100));
        let refused = connection_cap(Some(500), Some(256)).expect_err("over the limit");
        assert!(
            refused.contains("--max-connections 500") && refused.contains("at most 192"),
            "{refused}"
        );
        let none = connection_cap(None, Some(40)).expect_err("no room");
        assert!(none.contains("40 files"), "{none}");
    }
}
