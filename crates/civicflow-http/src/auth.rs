//! Bearer tokens. A token is `cft_` and 64 lowercase hex digits (256 random bits); the
//! service keeps only SHA-256 hashes, in an index folded from the log's `access-tokens`
//! stream, and compares hashes in constant time.
//!
//! The index follows the log: the service's own token routes refresh it before they answer,
//! and [`TokenFollower`] refreshes it whenever the `access-tokens` stream grows by any other
//! path (an embedder submitting to the engine directly). Every refresh is announced on a
//! watch channel, so that what outlives one request (a live event stream) can see at once
//! that its token is gone.
//!
//! The index also keeps the dashboard sessions that were ended (`SessionEnded` events of the
//! same stream, [`TokenIndex::session_ended`]): a session cookie is stateless, so signing out
//! on one instance reaches every other the way a revocation does.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::http::{header, HeaderMap};
use civicflow_core::domain::access::{
    access_stream, AccessState, Grant, SessionNonce, TokenHash, TokenId,
};
use civicflow_core::domain::org::Acting;
use civicflow_core::{ReadError, StreamSubscription, Timestamp, Version};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::error::ApiError;

/// The prefix of every token (so that a leaked one is easy to find in a repository scan).
pub const TOKEN_PREFIX: &str = "cft_";

/// A token's secret, as handed to its holder once.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSecret(…)")
    }
}

impl TokenSecret {
    /// A new secret from the operating system's random source.
    ///
    /// # Errors
    /// When the operating system gives no randomness.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes)?;
        Ok(Self(format!("{TOKEN_PREFIX}{}", hex(&bytes))))
    }

    /// The text to give the holder.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its hash, as the log stores it.
    pub fn hash(&self) -> TokenHash {
        hash_token(&self.0)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 hash of a presented token.
pub fn hash_token(token: &str) -> TokenHash {
    TokenHash(Sha256::digest(token.as_bytes()).into())
}

/// Whether two hashes are equal, in time that does not depend on where they differ
/// (`subtle`'s comparison, which keeps the compiler from turning it into an early exit).
fn same(a: &TokenHash, b: &TokenHash) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.0.ct_eq(&b.0))
}

/// The valid tokens, by the id their hash gives (lookups never branch on the secret itself),
/// and the ended sessions of each.
#[derive(Debug)]
pub struct TokenIndex {
    grants: RwLock<Grants>,
    /// Bumped after every refresh: live streams wait on it to re-check their token.
    changes: watch::Sender<u64>,
    /// When an unknown token last made the index read a shared log (see
    /// [`TokenIndex::may_refresh_for_unknown`]).
    unknown_refreshed: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How often, at most, unknown tokens make the index read a shared log.
const UNKNOWN_REFRESH_EVERY: Duration = Duration::from_millis(100);

/// The valid grants, their ended sessions, and the version of the `access-tokens` stream
/// they were folded from.
#[derive(Debug, Default)]
struct Grants {
    by_id: HashMap<TokenId, Grant>,
    /// As [`AccessState::ended`]: the ended sessions of valid tokens, until they expire.
    ended: BTreeMap<TokenId, BTreeMap<SessionNonce, Timestamp>>,
    version: Option<Version>,
}

impl Default for TokenIndex {
    fn default() -> Self {
        Self {
            grants: RwLock::default(),
            changes: watch::channel(0).0,
            unknown_refreshed: std::sync::Mutex::new(None),
        }
    }
}

impl TokenIndex {
    /// The index of the valid tokens of `state`.
    pub fn from_state(state: &AccessState) -> Self {
        let index = Self::default();
        index.replace(state);
        index
    }

    /// Replaces the index with the valid tokens of `state` and their ended sessions, unless
    /// the index already holds a later version of the stream: two refreshes that race (a
    /// revoke through the API and the follower, say) must not put back a token the later one
    /// dropped, nor forget a session it ended.
    pub fn replace(&self, state: &AccessState) {
        let by_id = state
            .valid()
            .map(|grant| (grant.token.clone(), grant.clone()))
            .collect();
        // The state holds the ended sessions of valid tokens only (a revocation drops its
        // token's), and only until they expire: the copy is small too.
        let ended = state.ended.clone();
        {
            let mut grants = self
                .grants
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if state.version < grants.version {
                return;
            }
            *grants = Grants {
                by_id,
                ended,
                version: state.version,
            };
        }
        // After the write lock is released: whoever wakes reads the new grants.
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Whether token `id` is valid (issued and not revoked) as of the last refresh.
    pub fn holds(&self, id: &TokenId) -> bool {
        self.grants
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .by_id
            .contains_key(id)
    }

    /// Whether `session` of token `token` was ended (its holder signed out) as of the last
    /// refresh, on this instance or any other sharing the log. Only that: a session of a
    /// revoked or unknown token is not listed, so ask [`TokenIndex::holds`] (or
    /// [`TokenIndex::lookup`]) too; and an ended session is forgotten once its expiry has
    /// passed, so check the cookie's expiry too.
    pub fn session_ended(&self, token: &TokenId, session: &SessionNonce) -> bool {
        self.grants
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ended
            .get(token)
            .is_some_and(|sessions| sessions.contains_key(session))
    }

    /// A receiver that sees every refresh of the index (then ask [`TokenIndex::holds`]).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The version of the `access-tokens` stream the index was folded from.
    pub(crate) fn version(&self) -> Option<Version> {
        self.grants
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .version
    }

    /// Who a presented token acts as, with its id.
    pub fn lookup(&self, token: &str) -> Option<(TokenId, Acting)> {
        let hash = hash_token(token);
        let id = TokenId::of_hash(&hash);
        let grants = self
            .grants
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let grant = grants.by_id.get(&id)?;
        same(&grant.hash, &hash).then(|| (id, grant.acting.clone()))
    }

    /// Who the valid token with id `id` acts as (a signed session cookie names its token by
    /// id, never by secret: `dashboard/session.rs`).
    pub fn lookup_id(&self, id: &TokenId) -> Option<Acting> {
        let grants = self
            .grants
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        grants.by_id.get(id).map(|grant| grant.acting.clone())
    }

    /// Whether an unknown token may make the index read the log now. On a shared store a
    /// token issued through another instance a moment ago may not have reached this index
    /// (its follower learns it within a poll); reading the log once before refusing makes it
    /// work at once. At most once per 100 ms (`UNKNOWN_REFRESH_EVERY`), so that made-up tokens
    /// cannot make the service read the log at will.
    pub fn may_refresh_for_unknown(&self) -> bool {
        let mut last = self
            .unknown_refreshed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < UNKNOWN_REFRESH_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// How many valid tokens there are.
    pub fn len(&self) -> usize {
        self.grants
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .by_id
            .len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Brings `state`'s token index up to the log's `access-tokens` stream when it is behind.
/// A live stream calls it before an event goes out: a revocation committed before that event
/// (by any path: the API, the engine directly, another instance) is then in the index even if
/// the follower has not woken yet, so nothing written after the revocation is sent.
pub(crate) async fn catch_up_tokens(state: &crate::state::AppState) {
    let engine = state.engine().clone();
    let held = state.tokens().version();
    let newer = tokio::task::spawn_blocking(move || {
        let logged = engine.log().stream_version(&access_stream()).ok().flatten();
        if logged > held {
            engine.tokens().ok()
        } else {
            None
        }
    })
    .await
    .ok()
    .flatten();
    if let Some(tokens) = newer {
        state.tokens().replace(&tokens);
    }
}

/// How long the follower waits for the log before it looks at its stop flag again (what
/// stopping the service may wait for it).
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// A thread that refreshes a service's token index whenever the log's `access-tokens` stream
/// grows, whoever appended to it: a revocation that reaches the log by any path is refused
/// (and ends the token's live streams) as soon as it is durable. Stopped and joined when
/// dropped, so it never keeps the store open after the service.
#[derive(Debug)]
pub(crate) struct TokenFollower {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TokenFollower {
    /// Starts following the stream after the version the index holds.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub(crate) fn start(state: crate::state::AppState) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let from = state
            .tokens()
            .version()
            .map_or(Version::FIRST, Version::next);
        let thread = std::thread::Builder::new()
            .name("civicflow-tokens".into())
            .spawn(move || {
                let mut subscription =
                    StreamSubscription::new(state.engine().log().clone(), access_stream(), from);
                while !stopped.load(Ordering::Acquire) {
                    match subscription.next_timeout(FOLLOW_POLL) {
                        Ok(Some(_)) => {
                            // One refresh for whatever has committed meanwhile.
                            while let Ok(Some(_)) = subscription.try_next() {}
                            match state.engine().tokens() {
                                Ok(tokens) => state.tokens().replace(&tokens),
                                Err(error) => {
                                    tracing::error!(%error, "the token index could not be refreshed from the log");
                                }
                            }
                        }
                        Ok(None) => {}
                        Err(ReadError::Closed) => break,
                        Err(error) => {
                            tracing::error!(%error, "the token follower could not read the log");
                            std::thread::sleep(FOLLOW_POLL);
                        }
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for TokenFollower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The caller of a request: who their token acts as.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's id (never the secret): what a live stream is tied to, so that revoking
    /// the token ends it. (Idempotency keys are the actor's, not the token's.)
    pub token: TokenId,
    /// Who it acts as.
    pub acting: Acting,
}

/// The token of a request's `Authorization: Bearer …` header (`Ok(None)`: no header).
///
/// # Errors
/// 401 for a header that is not a bearer token.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
    let (scheme, token) = text
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("use Authorization: Bearer <token>"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthorized("use Authorization: Bearer <token>"));
    }
    Ok(Some(token.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_prefixed_hex_of_256_bits_and_only_its_hash_is_kept() {
        let secret = TokenSecret::generate().expect("randomness");
        let text = secret.expose();
        assert!(text.starts_with(TOKEN_PREFIX));
        assert_eq!(text.len(), TOKEN_PREFIX.len() + 64);
        assert_ne!(TokenSecret::generate().expect("randomness"), secret);
        assert_eq!(secret.hash(), hash_token(text));
        assert!(!format!("{secret:?}").contains(&text[4..]));
    }

    /// The stream's state after its first `n` events, folded as the engine folds it: the
    /// grid worker's tablet token and the administrator's own, issued at hour 0; a session of
    /// the tablet's ended at hour 1 (expiring at hour 8); the tablet revoked at hour 2.
    fn stream_after(n: usize) -> (AccessState, TokenId, TokenId) {
        use civicflow_core::domain::access::{
            Access, AccessEvent, SessionEnded, TokenIssued, TokenRevoked,
        };
        use civicflow_core::domain::aggregate::fold;
        use civicflow_core::domain::workflow::DefinitionRegistry;
        let hour = |h: i64| Timestamp::from_unix_micros(1_775_000_000_000_000 + h * 3_600_000_000);
        let issued = |secret: &str, actor: &str, role: &str, unit: &str| {
            let hash = hash_token(secret);
            AccessEvent::Issued(TokenIssued {
                token: TokenId::of_hash(&hash),
                hash,
                actor: civicflow_core::ActorId::new(actor).expect("an actor id"),
                role: civicflow_core::Role::new(role).expect("a role"),
                unit: civicflow_core::UnitId::new(unit).expect("a unit id"),
                name: "a token".into(),
                at: hour(0),
            })
        };
        let tablet = TokenId::of_hash(&hash_token("cft_tablet"));
        let own = TokenId::of_hash(&hash_token("cft_admin"));
        let events = [
            issued("cft_tablet", "li.grid1", "grid_worker", "grid-1"),
            issued("cft_admin", "wang.admin", "community_admin", "tonghui"),
            AccessEvent::Ended(SessionEnded {
                token: tablet.clone(),
                session: SessionNonce([1; 16]),
                expires_at: hour(8),
                at: hour(1),
            }),
            AccessEvent::Revoked(TokenRevoked {
                token: tablet.clone(),
                reason: "lost".into(),
                at: hour(2),
            }),
        ];
        let state = fold::<Access>(&events[..n], &DefinitionRegistry::built_in());
        (state, tablet, own)
    }

    #[test]
    fn the_index_keeps_ended_sessions_and_never_goes_back_to_an_older_fold() {
        let (issued, tablet, own) = stream_after(2);
        let (ended, ..) = stream_after(3);
        let (revoked, ..) = stream_after(4);
        let session = SessionNonce([1; 16]);

        let index = TokenIndex::from_state(&issued);
        assert!(index.holds(&tablet));
        assert!(!index.session_ended(&tablet, &session));

        let changes = index.changes();
        index.replace(&ended);
        assert!(changes.has_changed().expect("the index lives"));
        assert!(index.session_ended(&tablet, &session));
        assert!(index.holds(&tablet), "the token itself stays valid");
        assert!(!index.session_ended(&tablet, &SessionNonce([2; 16])));
        assert!(!index.session_ended(&own, &session), "another token's");

        // An older fold (a refresh that lost a race) does not bring the session back.
        index.replace(&issued);
        assert!(index.session_ended(&tablet, &session));
        assert_eq!(index.version(), ended.version);

        // Revoked: the token is gone, and so is what the index kept of its sessions.
        index.replace(&revoked);
        assert!(!index.holds(&tablet));
        assert!(!index.session_ended(&tablet, &session));
        assert!(index.holds(&own));
    }

    #[test]
    fn hashes_compare_equal_only_when_equal() {
        let a = hash_token("cft_a");
        let mut b = a;
        assert!(same(&a, &b));
        b.0[31] ^= 1;
        assert!(!same(&a, &b));
    }
}
