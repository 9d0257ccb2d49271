//! What every handler shares.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use civicflow_core::calendar::Zone;
use civicflow_core::engine::Engine;
use civicflow_projections::Runner;
use tokio::sync::watch;

use crate::auth::TokenIndex;
use crate::config::ServiceConfig;
use crate::limits::{AddressLimiter, RateLimiter};
use crate::metrics::Metrics;
use crate::open311::routing::Routing;

/// The state shared by handlers (cheap to clone).
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub engine: Arc<Engine>,
    pub runner: Arc<Runner>,
    pub tokens: TokenIndex,
    pub metrics: Metrics,
    pub limiter: RateLimiter,
    /// What no valid token pays for is charged to the client's address.
    pub address_limiter: AddressLimiter,
    pub config: ServiceConfig,
    /// Signs the dashboard's session cookies and CSRF tokens (derived from the master key).
    pub session_key: crate::dashboard::session::SessionKey,
    /// Which unit an Open311 request is filed at (`open311-routing.toml`, read at start).
    pub open311_routing: Routing,
    /// Every projection has caught up with the log as it was at start.
    pub caught_up: AtomicBool,
    /// Turns true when the service shuts down: live streams end.
    pub shutdown: watch::Receiver<bool>,
    /// The unit streams replaying history now, per token.
    pub replays: crate::routes::events::Replays,
}

impl AppState {
    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.0.engine
    }

    /// The time zone every time in an answer is written in: the engine's calendar's (a
    /// clone: cheap, the zone's rules are shared).
    pub fn zone(&self) -> Zone {
        self.0.engine.calendar().zone().clone()
    }

    /// The projections.
    pub fn runner(&self) -> &Runner {
        &self.0.runner
    }

    /// The token index.
    pub fn tokens(&self) -> &TokenIndex {
        &self.0.tokens
    }

    /// Issues a token acting as `acting`, by `by` (the system or a community administrator
    /// over the unit): the event goes to the log and the token index learns the token before
    /// this returns; the secret goes to the caller, once, and is kept nowhere.
    ///
    /// # Errors
    /// [`crate::ServiceError::Submit`] when the engine refuses (a grant the actor does not
    /// hold, a caller who may not issue tokens there, a bad name);
    /// [`crate::ServiceError::Random`] without randomness for the secret.
    pub fn issue_token(
        &self,
        by: &civicflow_core::domain::org::Acting,
        acting: civicflow_core::domain::org::Acting,
        name: &str,
        options: civicflow_core::engine::SubmitOptions,
    ) -> Result<
        (
            civicflow_core::domain::access::TokenId,
            crate::auth::TokenSecret,
        ),
        crate::ServiceError,
    > {
        use civicflow_core::domain::access::AccessCommand;
        use civicflow_core::engine::{Command, EngineError, Outcome};
        let secret = crate::auth::TokenSecret::generate()
            .map_err(|e| crate::ServiceError::Random(e.to_string()))?;
        let outcome = self.0.engine.submit_with(
            by,
            Command::Access(AccessCommand::Issue {
                hash: secret.hash(),
                acting,
                name: name.to_owned(),
            }),
            options,
        )?;
        self.0.tokens.replace(&self.0.engine.tokens()?);
        let Outcome::Token { token, .. } = outcome else {
            return Err(crate::ServiceError::Engine(EngineError::Config(
                "the engine answered a token command with another outcome".into(),
            )));
        };
        Ok((token, secret))
    }

    /// Revokes a token, by `by` (the system or a community administrator over its unit): the
    /// event goes to the log, and the token index drops the token before this returns, so the
    /// very next request with it is refused (no restart).
    ///
    /// # Errors
    /// [`crate::ServiceError::Submit`] when the engine refuses (an unknown token, a caller who
    /// may not revoke it).
    pub fn revoke_token(
        &self,
        by: &civicflow_core::domain::org::Acting,
        token: civicflow_core::domain::access::TokenId,
        reason: &str,
        options: civicflow_core::engine::SubmitOptions,
    ) -> Result<(), crate::ServiceError> {
        let command = civicflow_core::engine::Command::Access(
            civicflow_core::domain::access::AccessCommand::Revoke {
                token,
                reason: reason.to_owned(),
            },
        );
        let result = self.0.engine.submit_with(by, command, options);
        // Refreshed even when the submit failed: the index follows the log, whatever it holds.
        self.0.tokens.replace(&self.0.engine.tokens()?);
        result?;
        Ok(())
    }

    /// The Open311 routing rules, as read when the service started.
    pub fn open311_routing(&self) -> &Routing {
        &self.0.open311_routing
    }

    /// Whether the projections have caught up since start.
    pub fn caught_up(&self) -> bool {
        self.0.caught_up.load(Ordering::Acquire)
    }

    /// A receiver that turns true at shutdown.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.0.shutdown.clone()
    }

    /// Runs blocking engine work off the async threads.
    ///
    /// # Errors
    /// 500 when the work panicked.
    pub async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Engine) -> T + Send + 'static,
    ) -> Result<T, crate::error::ApiError> {
        let engine = self.0.engine.clone();
        tokio::task::spawn_blocking(move || work(&engine))
            .await
            .map_err(|e| crate::error::ApiError::internal(format!("the work failed: {e}")))
    }
}
