//! # civicflow-http
//!
//! The thin HTTP service of civicflow: a JSON API over the engine and the read models, live
//! feedback as server-sent events, audits. It authenticates (bearer tokens whose grants are
//! events in the log), authorizes by route, translates JSON to commands and answers to JSON,
//! and streams; every domain rule stays in `civicflow-core`. The design is in
//! `docs/service.md` of the repository.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use civicflow_core::vault::MasterKey;
//! use civicflow_http::{Service, ServiceConfig};
//!
//! let config = ServiceConfig::new("./civicflow-data", MasterKey::generate()?);
//! let service = Service::open(config)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! service.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

pub mod audit;
mod auth;
mod calendar_watch;
mod client;
mod config;
mod connections;
mod dashboard;
pub mod demo;
mod error;
mod fields;
mod idempotency;
mod json;
mod layers;
mod limits;
mod metrics;
pub mod open311;
mod openapi;
mod path;
mod policy;
mod request_id;
pub mod routes;
mod state;
mod tls;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use civicflow_core::domain::access::TokenId;
use civicflow_core::domain::org::Acting;
use civicflow_core::engine::{Engine, EngineConfig, EngineError, SubmitError};
use civicflow_core::readmodel::{ReadModelError, ReadModelStore};
use civicflow_core::SledReadModels;
use civicflow_projections::{ProjectionError, Runner};
use tokio::sync::watch;

pub use auth::{hash_token, TokenIndex, TokenSecret, TOKEN_PREFIX};
pub use client::{ClientAddr, IpNet, IpNetError};
pub use config::ServiceConfig;
pub use error::ApiError;
pub use limits::RateLimit;
pub use policy::Policy;
pub use state::AppState;
pub use tls::{TlsConfig, TlsError, TlsReloader};

/// The service could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The engine failed to open.
    #[error("the engine: {0}")]
    Engine(#[from] EngineError),
    /// A command was refused or failed.
    #[error("{0}")]
    Submit(#[from] SubmitError),
    /// The read-model store failed to open.
    #[error("the read models: {0}")]
    ReadModels(#[from] ReadModelError),
    /// The projections failed to start.
    #[error("the projections: {0}")]
    Projections(#[from] ProjectionError),
    /// The network failed.
    #[error("the network: {0}")]
    Io(#[from] std::io::Error),
    /// The Open311 routing file (`open311-routing.toml` in the data directory) is not valid,
    /// or names a unit the org chart does not have.
    #[error("the Open311 routing: {0}")]
    Open311Routing(#[from] open311::routing::RoutingError),
    /// No randomness for a token.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// The TLS certificate or key ([`ServiceConfig::tls`]) cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
}

/// The service: the engine, the projections and the token index, ready to serve.
pub struct Service {
    state: AppState,
    shutdown: watch::Sender<bool>,
    /// Dropping it stops the deadline scheduler.
    scheduler: Option<civicflow_core::engine::SchedulerHandle>,
    /// Keeps the token index following the log; dropping it stops and joins its thread.
    tokens_follower: Option<auth::TokenFollower>,
    /// The certificate and key in use, when the service serves TLS.
    tls: Option<tls::Tls>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").finish_non_exhaustive()
    }
}

impl Service {
    /// Reads the TLS certificate and key when there are some ([`ServiceConfig::tls`]), opens
    /// the store in `config.data_dir` (creating it if missing), starts the projections
    /// and the deadline scheduler, and loads the tokens and the Open311 routing rules
    /// (`open311-routing.toml` in the data directory, when there is one).
    ///
    /// # Errors
    /// [`ServiceError`] when the certificate or key cannot be used, the store cannot be opened
    /// (locked, damaged), the projections cannot start, or the routing file is not valid or
    /// names a unit that does not exist.
    pub fn open(config: ServiceConfig) -> Result<Self, ServiceError> {
        // First: a bad certificate fails the start before the store is touched.
        let tls = config.tls.clone().map(tls::Tls::load).transpose()?;
        let mut engine_config = EngineConfig::new(&config.data_dir)
            .master_key(config.master_key.clone())
            .log_cache_bytes(config.log_cache_bytes);
        if let Some(zone) = &config.time_zone {
            engine_config = engine_config.time_zone(zone.clone());
        }
        let engine = Arc::new(Engine::open(engine_config)?);
        Self::build(engine, config, tls)
    }

    /// A service over an engine opened by the caller (tests, embedding).
    ///
    /// # Errors
    /// As [`Service::open`].
    pub fn with_engine(engine: Arc<Engine>, config: ServiceConfig) -> Result<Self, ServiceError> {
        let tls = config.tls.clone().map(tls::Tls::load).transpose()?;
        Self::build(engine, config, tls)
    }

    fn build(
        engine: Arc<Engine>,
        config: ServiceConfig,
        tls: Option<tls::Tls>,
    ) -> Result<Self, ServiceError> {
        // Checked before anything starts: a bad routing file fails the start, naming itself.
        let open311_routing = open311::routing::Routing::load(&config.data_dir)?;
        open311_routing.check_units(&engine.org())?;
        let store: Arc<dyn ReadModelStore> = Arc::new(SledReadModels::open_with_cache(
            config.data_dir.join("readmodels"),
            config.read_model_cache_bytes,
        )?);
        let runner = Arc::new(Runner::beside(
            &engine,
            store,
            ServiceConfig::runner_options(config.projection_rows_in_memory),
        )?);
        let tokens = auth::TokenIndex::from_state(&engine.tokens()?);
        let scheduler = engine.spawn_scheduler(Duration::from_secs(1));
        calendar_watch::spawn(&engine)?;
        let (shutdown, watch_shutdown) = watch::channel(false);
        let state = AppState(Arc::new(state::Inner {
            engine,
            runner,
            tokens,
            metrics: metrics::Metrics::default(),
            limiter: limits::RateLimiter::new(config.rate_limit),
            address_limiter: limits::AddressLimiter::new(
                config.address_rate_limit,
                config.address_buckets_max,
            ),
            session_key: dashboard::session::SessionKey::derive(&config.master_key),
            config,
            open311_routing,
            caught_up: std::sync::atomic::AtomicBool::new(false),
            shutdown: watch_shutdown,
            replays: routes::events::Replays::default(),
        }));
        // Ready once every projection has caught up with the log as it is now.
        let watcher = state.clone();
        std::thread::Builder::new()
            .name("civicflow-readiness".into())
            .spawn(move || {
                if watcher
                    .runner()
                    .wait_until_caught_up(Duration::from_secs(24 * 3600))
                    .is_ok()
                {
                    watcher.0.caught_up.store(true, Ordering::Release);
                }
            })?;
        let tokens_follower = auth::TokenFollower::start(state.clone())?;
        Ok(Self {
            state,
            shutdown,
            scheduler: Some(scheduler),
            tokens_follower: Some(tokens_follower),
            tls,
        })
    }

    /// Reads the certificate and key files again on request (a renewed certificate, served
    /// without a restart), when the service serves TLS; usable while it serves.
    pub fn tls_reloader(&self) -> Option<TlsReloader> {
        self.tls.clone().map(TlsReloader)
    }

    /// The shared state (the engine, the projections).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        self.state.engine()
    }

    /// Issues a token acting as `acting`, by `by` (the system or a community administrator
    /// over the unit): the event goes to the log, the secret to the caller, once.
    ///
    /// # Errors
    /// [`ServiceError::Submit`] when the engine refuses (a grant the actor does not hold, a
    /// caller who may not issue tokens there).
    pub fn issue_token(
        &self,
        by: &Acting,
        acting: Acting,
        name: &str,
    ) -> Result<(TokenId, TokenSecret), ServiceError> {
        self.state.issue_token(by, acting, name, Default::default())
    }

    /// Revokes a token (see [`AppState::revoke_token`]): refused from the very next request.
    ///
    /// # Errors
    /// As [`AppState::revoke_token`].
    pub fn revoke_token(
        &self,
        by: &Acting,
        token: TokenId,
        reason: &str,
    ) -> Result<(), ServiceError> {
        self.state
            .revoke_token(by, token, reason, Default::default())
    }

    /// Whether every read model has caught up with the log since the service started (what
    /// `GET /readyz` reports, with the log's health).
    pub fn is_caught_up(&self) -> bool {
        self.state.caught_up()
    }

    /// The router: every route of [`routes::all`] behind its policy, with the limits,
    /// metrics and logging layers.
    pub fn router(&self) -> Router {
        layers::with_layers(routes::router(routes::all(), &self.state), &self.state)
    }

    /// Serves on `listener` until `signal` completes, then shuts down gracefully: stops
    /// accepting, ends live streams, lets requests in flight finish (up to the configured
    /// grace), stops the projections and flushes.
    ///
    /// Every connection is held to the configured caps (in all and per client address) and
    /// header timeout, which also closes idle keep-alive connections (`connections.rs`). With
    /// [`ServiceConfig::tls`] every connection is TLS, its handshake bounded by the header
    /// timeout too.
    ///
    /// # Errors
    /// [`ServiceError::Io`] when serving fails.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServiceError> {
        let app = self.router();
        let shutdown = self.shutdown.clone();
        let config = &self.state.0.config;
        let grace = config.shutdown_grace;
        let settings = connections::Settings {
            max_connections: config.max_connections,
            max_connections_per_address: config.max_connections_per_address,
            header_timeout: config.header_timeout,
            trusted_proxies: config.trusted_proxies.clone().into(),
            tls: self.tls.clone(),
        };
        let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
        let server = connections::serve(listener, app, settings, async move {
            signal.await;
            tracing::info!("shutting down: no new connections; live streams end");
            let _ = shutdown.send(true);
            let _ = signalled_tx.send(());
        });
        let server = tokio::spawn(server);
        let mut server = server;
        tokio::select! {
            result = &mut server => {
                result.map_err(|e| std::io::Error::other(e.to_string()))??;
            }
            _ = async {
                let _ = signalled_rx.await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(?grace, "requests still in flight after the grace period; stopping");
                server.abort();
            }
        }
        self.stop();
        Ok(())
    }

    /// Stops the scheduler, the live streams and (with the last handle) the projections and
    /// the engine; also what dropping does.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // Every acknowledged write is durable already (the log fsyncs before answering);
        // stopping ends the live streams and the scheduler, and the engine and projections
        // close when the last handle on them goes.
        let _ = self.shutdown.send(true);
        drop(self.scheduler.take());
        drop(self.tokens_follower.take());
    }
}
