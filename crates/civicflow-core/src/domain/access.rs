//! Access tokens in the log: who may call the service as whom. Issuing and revoking a token
//! are events of one stream, `access-tokens`; the secret never is. The log holds the token's
//! SHA-256 hash, so a leaked log grants nothing, and every grant and revocation is audited
//! like any other step.
//!
//! A token is an actor acting in one role at one unit (an [`Acting`]): the service hands the
//! engine exactly that, and the engine checks every command against it as usual. Generating
//! the secret and hashing it happen at the edges (the service, the command), never here.
//!
//! The same stream records the end of a dashboard session (`SessionEnded`): the dashboard's
//! session cookie is stateless (the token's id, a random [`SessionNonce`] and an expiry,
//! signed), so signing out is written here, where every instance sharing the log learns it
//! as it learns a revocation (`docs/decisions/0012-operators-dashboard.md`, "Sessions").
//! Ended sessions are kept only until they would have expired anyway.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::aggregate::{Aggregate, Decision, Fold};
use super::context::Context;
use super::events::domain_events;
use super::org::{roles, Acting, OrgChart};
use super::rejection::Rejection;
use crate::clock::Timestamp;
use crate::ids::{ActorId, Role, StreamId, UnitId, Version};

/// The stream of every token's issue and revocation.
pub const ACCESS_STREAM: &str = "access-tokens";

/// The most characters of a revocation's reason (trimmed).
pub const REVOKE_REASON_CHARS_MAX: usize = 500;

/// How far after the moment of ending it a session's expiry may lie. The dashboard's
/// sessions last 8 hours; the bound leaves room for another instance's clock, and keeps what
/// [`AccessState`] remembers of ended sessions to the ones of the last day.
pub const SESSION_EXPIRY_AHEAD_MAX: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The stream id of [`ACCESS_STREAM`].
pub fn access_stream() -> StreamId {
    StreamId::new(ACCESS_STREAM).expect("a valid stream id")
}

/// A token's id: the first 16 hex digits of its hash. Printable, safe to log and to revoke
/// by; it says nothing of the secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TokenId(String);

impl TokenId {
    /// The id of the token with this SHA-256 hash.
    pub fn of_hash(hash: &TokenHash) -> Self {
        Self(hash.to_hex()[..16].to_owned())
    }

    /// Parses an id (16 lowercase hex digits).
    ///
    /// # Errors
    /// [`Rejection::Invalid`] naming the field otherwise.
    pub fn parse(text: &str) -> Result<Self, Rejection> {
        if text.len() == 16
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(text.to_owned()))
        } else {
            Err(Rejection::Invalid {
                field: "token".into(),
                reason: "a token id is 16 lowercase hex digits".into(),
            })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TokenId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The SHA-256 hash of a token's secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the id: a hash is not the secret, but there is no reason to print it whole.
        write!(f, "TokenHash({}…)", &self.to_hex()[..16])
    }
}

/// A dashboard session's nonce: 16 random bytes drawn when the session begins (at the edge,
/// from the operating system's random source), which the signed session cookie carries
/// beside the token's id. It tells one session of a token from another, so that signing out
/// ends that session and no other. Written as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionNonce(pub [u8; 16]);

impl SessionNonce {
    /// Bytes in a nonce.
    pub const LEN: usize = 16;

    /// Lowercase hex (32 digits).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 32 lowercase hex digits.
    ///
    /// # Errors
    /// [`Rejection::Invalid`] naming the field `session` otherwise.
    pub fn parse(text: &str) -> Result<Self, Rejection> {
        let invalid = || Rejection::Invalid {
            field: "session".into(),
            reason: "a session nonce is 32 lowercase hex digits".into(),
        };
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let text = text.as_bytes();
        if text.len() != 2 * Self::LEN {
            return Err(invalid());
        }
        let mut bytes = [0u8; Self::LEN];
        for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
            let (Some(high), Some(low)) = (digit(pair[0]), digit(pair[1])) else {
                return Err(invalid());
            };
            *byte = (high << 4) | low;
        }
        Ok(Self(bytes))
    }
}

impl std::fmt::Display for SessionNonce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::fmt::Debug for SessionNonce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionNonce({})", self.to_hex())
    }
}

/// A token was issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenIssued {
    /// Its id.
    pub token: TokenId,
    /// The SHA-256 hash of its secret.
    pub hash: TokenHash,
    /// The actor it acts as.
    pub actor: ActorId,
    /// In this role.
    pub role: Role,
    /// At this unit.
    pub unit: UnitId,
    /// What it is for ("grid-1 tablet", "Open311 gateway").
    pub name: String,
    /// When.
    pub at: Timestamp,
}

/// A token was revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRevoked {
    /// Its id.
    pub token: TokenId,
    /// Why.
    pub reason: String,
    /// When.
    pub at: Timestamp,
}

/// A dashboard session of a token was ended (its holder signed out): a cookie of that
/// session is refused from then on, by every instance sharing the log, until it would have
/// expired anyway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEnded {
    /// The token the session signed in with.
    pub token: TokenId,
    /// The session's nonce.
    pub session: SessionNonce,
    /// When the session would have expired: after that, nothing needs to remember its end.
    pub expires_at: Timestamp,
    /// When.
    pub at: Timestamp,
}

domain_events! {
    /// The events of the access stream.
    pub enum AccessEvent {
        /// Issued.
        Issued(TokenIssued) = "TokenIssued" v 1,
        /// Revoked.
        Revoked(TokenRevoked) = "TokenRevoked" v 1,
        /// A session ended.
        Ended(SessionEnded) = "SessionEnded" v 1,
    }
}

/// What a token lets its holder do: act as an actor in a role at a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Its id.
    pub token: TokenId,
    /// The SHA-256 hash of its secret.
    pub hash: TokenHash,
    /// Acting as.
    pub acting: Acting,
    /// What it is for.
    pub name: String,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// When it was revoked (`None`: valid).
    pub revoked_at: Option<Timestamp>,
}

/// Every token ever issued, by id, and the sessions of valid tokens that were ended and
/// have not expired yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessState {
    /// The tokens.
    pub tokens: BTreeMap<TokenId, Grant>,
    /// The ended sessions of valid tokens, with when each would have expired. Kept small:
    /// every event of the stream drops the sessions that expired before it, and a
    /// revocation drops its token's (the token ends them all).
    pub ended: BTreeMap<TokenId, BTreeMap<SessionNonce, Timestamp>>,
    /// The stream's version.
    pub version: Option<Version>,
}

impl AccessState {
    /// The valid (not revoked) grants.
    pub fn valid(&self) -> impl Iterator<Item = &Grant> {
        self.tokens.values().filter(|g| g.revoked_at.is_none())
    }

    /// Whether `session` of `token` was ended (and was not yet expired at the stream's last
    /// event). Only that: a session of a revoked or unknown token is not listed here, so a
    /// caller checks the token's validity too (as it does for every request).
    pub fn session_ended(&self, token: &TokenId, session: &SessionNonce) -> bool {
        self.ended
            .get(token)
            .is_some_and(|sessions| sessions.contains_key(session))
    }

    /// Forgets the ended sessions that expired before `at`.
    fn prune_ended(&mut self, at: Timestamp) {
        self.ended.retain(|_, sessions| {
            sessions.retain(|_, expires_at| *expires_at >= at);
            !sessions.is_empty()
        });
    }
}

/// What may be done with tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessCommand {
    /// Issue a token for `acting` (a grant the actor holds), whose secret hashes to `hash`.
    Issue {
        /// The hash of the secret (made at the edge, from the OS's random source).
        hash: TokenHash,
        /// Who it acts as.
        acting: Acting,
        /// What it is for.
        name: String,
    },
    /// Revoke a token.
    Revoke {
        /// Its id.
        token: TokenId,
        /// Why.
        reason: String,
    },
    /// End a dashboard session of a token (its holder signs out): by the token's own grant
    /// (the same actor, role and unit), a community administrator over the token's unit, or
    /// the system.
    EndSession {
        /// The token the session signed in with.
        token: TokenId,
        /// The session's nonce (from its cookie).
        session: SessionNonce,
        /// When the session expires (from its cookie): at most
        /// [`SESSION_EXPIRY_AHEAD_MAX`] after now.
        expires_at: Timestamp,
    },
}

/// Only the system, or a community administrator over the token's unit, issues and revokes
/// tokens.
const ISSUERS: &[&str] = roles::MANAGE_TOKENS;

fn check_issuer(ctx: &Context<'_>, unit: &UnitId, action: &str) -> Result<(), Rejection> {
    if ctx.acting.is_system() {
        return Ok(());
    }
    ctx.org.check_acting(ctx.acting)?;
    if !ISSUERS.contains(&ctx.acting.role.as_str()) {
        return Err(Rejection::RoleNotAllowed {
            role: ctx.acting.role.clone(),
            action: action.into(),
            allowed: ISSUERS.iter().filter_map(|r| Role::new(*r).ok()).collect(),
        });
    }
    if !ctx.org.is_within(unit, &ctx.acting.unit) {
        return Err(Rejection::OutOfScope {
            unit: ctx.acting.unit.clone(),
            action: action.into(),
            scope: "units at or below the administrator's".into(),
            target: unit.clone(),
        });
    }
    Ok(())
}

/// The events of a token command.
fn decide_events(
    state: &AccessState,
    command: &AccessCommand,
    ctx: &Context<'_>,
) -> Result<Vec<AccessEvent>, Rejection> {
    match command {
        AccessCommand::Issue { hash, acting, name } => {
            // The store's administrators hand a new community's first administrator their
            // token, as they made their grant (`docs/engine.md`, "Administration as data").
            let first_admin = acting.role.as_str() == roles::COMMUNITY_ADMIN
                && ctx
                    .org
                    .unit(&acting.unit)
                    .is_some_and(|u| u.parent.is_none())
                && ctx.org.administers_store(ctx.acting);
            if !first_admin {
                check_issuer(ctx, &acting.unit, "issue a token")?;
            }
            // The token acts as exactly a grant the actor holds: the engine will check every
            // command against it, so a token can never do more than its actor.
            if acting.is_system() {
                return Err(Rejection::Invalid {
                    field: "role".into(),
                    reason: "no token acts as the system".into(),
                });
            }
            ctx.org.check_acting(acting)?;
            super::text::check("name", name, super::text::Lines::One)?;
            let name = name.trim();
            if super::text::is_blank(name) || name.chars().count() > 100 {
                return Err(Rejection::Invalid {
                    field: "name".into(),
                    reason: "say what the token is for, in 1 to 100 characters".into(),
                });
            }
            let token = TokenId::of_hash(hash);
            if state.tokens.contains_key(&token) {
                return Err(Rejection::AlreadyExists {
                    what: "token",
                    id: token.to_string(),
                });
            }
            Ok(vec![AccessEvent::Issued(TokenIssued {
                token,
                hash: *hash,
                actor: acting.actor.clone(),
                role: acting.role.clone(),
                unit: acting.unit.clone(),
                name: name.to_owned(),
                at: ctx.now,
            })])
        }
        AccessCommand::Revoke { token, reason } => {
            let Some(grant) = state.tokens.get(token) else {
                return Err(Rejection::NotFound {
                    what: "token",
                    id: token.to_string(),
                });
            };
            check_issuer(ctx, &grant.acting.unit, "revoke a token")?;
            // The reason is optional (a revocation needs none), but what is given is a text
            // like any other.
            super::text::check("reason", reason, super::text::Lines::One)?;
            let chars = reason.trim().chars().count();
            if chars > REVOKE_REASON_CHARS_MAX {
                return Err(Rejection::FieldInvalid {
                    field: "reason".into(),
                    reason: format!("{chars} characters; at most {REVOKE_REASON_CHARS_MAX}"),
                });
            }
            if grant.revoked_at.is_some() {
                return Ok(Vec::new());
            }
            Ok(vec![AccessEvent::Revoked(TokenRevoked {
                token: token.clone(),
                reason: reason.trim().to_owned(),
                at: ctx.now,
            })])
        }
        AccessCommand::EndSession {
            token,
            session,
            expires_at,
        } => {
            let Some(grant) = state.tokens.get(token) else {
                return Err(Rejection::NotFound {
                    what: "token",
                    id: token.to_string(),
                });
            };
            // Its holder signs out; an administrator over the token (or the system) may end
            // it for them. Anyone else may not.
            if ctx.acting != &grant.acting {
                check_issuer(
                    ctx,
                    &grant.acting.unit,
                    "end a session of another actor's token",
                )?;
            }
            let latest = ctx.now.saturating_add(SESSION_EXPIRY_AHEAD_MAX);
            if *expires_at > latest {
                return Err(Rejection::Invalid {
                    field: "expires_at".into(),
                    reason: format!(
                        "{expires_at} is more than {} hours after now ({}); a session expires sooner",
                        SESSION_EXPIRY_AHEAD_MAX.as_secs() / 3600,
                        ctx.now
                    ),
                });
            }
            // Nothing to end: a revoked token ended all its sessions, an expired session is
            // over, and an ended one stays ended.
            if grant.revoked_at.is_some()
                || *expires_at < ctx.now
                || state.session_ended(token, session)
            {
                return Ok(Vec::new());
            }
            Ok(vec![AccessEvent::Ended(SessionEnded {
                token: token.clone(),
                session: *session,
                expires_at: *expires_at,
                at: ctx.now,
            })])
        }
    }
}

/// Every token's issue and revocation, and every dashboard session's end: the one stream
/// `access-tokens`.
#[derive(Debug, Clone, Copy)]
pub struct Access;

impl Aggregate for Access {
    type Id = ();
    type State = AccessState;
    type Command = AccessCommand;
    type Event = AccessEvent;

    const KIND: &'static str = "access tokens";

    fn stream(_: &()) -> Result<StreamId, Rejection> {
        Ok(access_stream())
    }

    /// Refused: a caller who may not manage tokens for that unit, a grant the actor does not
    /// hold, an empty or overlong name, a hash already issued, an unknown token; ending a
    /// session of another's token without managing tokens for its unit, or with an expiry
    /// more than [`SESSION_EXPIRY_AHEAD_MAX`] ahead. Revoking a revoked token, and ending a
    /// session that is ended, expired, or of a revoked token, change nothing.
    fn decide(
        _: &(),
        state: &AccessState,
        command: &AccessCommand,
        ctx: &Context<'_>,
    ) -> Result<Decision<Self>, Rejection> {
        decide_events(state, command, ctx).map(Decision::events)
    }

    fn apply(state: &mut AccessState, event: &AccessEvent, fold: &Fold<'_>) {
        match event {
            AccessEvent::Issued(e) => {
                state.tokens.insert(
                    e.token.clone(),
                    Grant {
                        token: e.token.clone(),
                        hash: e.hash,
                        acting: Acting::new(e.actor.clone(), e.role.clone(), e.unit.clone()),
                        name: e.name.clone(),
                        issued_at: e.at,
                        revoked_at: None,
                    },
                );
            }
            AccessEvent::Revoked(e) => {
                if let Some(grant) = state.tokens.get_mut(&e.token) {
                    grant.revoked_at = Some(e.at);
                }
                // The token ends every session of it: nothing to remember of them.
                state.ended.remove(&e.token);
            }
            AccessEvent::Ended(e) => {
                if state
                    .tokens
                    .get(&e.token)
                    .is_some_and(|grant| grant.revoked_at.is_none())
                {
                    state
                        .ended
                        .entry(e.token.clone())
                        .or_default()
                        .insert(e.session, e.expires_at);
                }
            }
        }
        state.prune_ended(event_at(event));
        state.version = Some(fold.version);
    }

    /// The system and community administrators ([`roles::MANAGE_TOKENS`]); which tokens
    /// each sees is [`grant_visible`].
    fn may_see(_: &AccessState, viewer: &Acting, org: &OrgChart) -> bool {
        viewer.is_system()
            || (roles::MANAGE_TOKENS.contains(&viewer.role.as_str())
                && org.check_acting(viewer).is_ok())
    }
}

/// When an event of the stream happened.
fn event_at(event: &AccessEvent) -> Timestamp {
    match event {
        AccessEvent::Issued(e) => e.at,
        AccessEvent::Revoked(e) => e.at,
        AccessEvent::Ended(e) => e.at,
    }
}

/// Whether `viewer` may see (and manage) the token of `grant`: the system, and whoever acts
/// at the token's unit or above it. Anyone else is told it does not exist.
pub fn grant_visible(grant: &Grant, viewer: &Acting, org: &OrgChart) -> bool {
    viewer.is_system() || org.is_within(&grant.acting.unit, &viewer.unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::aggregate::{fold, Fold};
    use crate::domain::context::WallClockOnly;
    use crate::domain::org::{ActorKind, Org, OrgCommand, Tier};
    use crate::domain::workflow::DefinitionRegistry;

    const HOUR: i64 = 3_600_000_000;

    fn at(hours: i64) -> Timestamp {
        Timestamp::from_unix_micros(1_775_000_000_000_000 + hours * HOUR)
    }

    fn acting(actor: &str, role: &str, unit: &str) -> Acting {
        Acting::parse(actor, role, unit).expect("a valid acting")
    }

    fn unit(id: &str) -> UnitId {
        UnitId::new(id).expect("a slug")
    }

    fn nonce(byte: u8) -> SessionNonce {
        SessionNonce([byte; 16])
    }

    /// 通惠 with grids 1 and 2, and another community, 华夏: an administrator of each
    /// community and a grid worker of each grid.
    fn chart() -> OrgChart {
        let definitions = DefinitionRegistry::built_in();
        let system = Acting::system(unit("tonghui"));
        let mut commands = vec![
            OrgCommand::CreateUnit {
                id: unit("tonghui"),
                name: "通惠社区".into(),
                tier: Tier::Community,
                parent: None,
            },
            OrgCommand::CreateUnit {
                id: unit("huaxia"),
                name: "华夏社区".into(),
                tier: Tier::Community,
                parent: None,
            },
        ];
        for grid in ["grid-1", "grid-2"] {
            commands.push(OrgCommand::CreateUnit {
                id: unit(grid),
                name: grid.into(),
                tier: Tier::Grid,
                parent: Some(unit("tonghui")),
            });
        }
        for who in [admin(), other_admin(), worker(), other_worker()] {
            commands.push(OrgCommand::RegisterActor {
                id: who.actor.clone(),
                name: who.actor.to_string(),
                kind: ActorKind::Person,
            });
            commands.push(OrgCommand::GrantRole {
                actor: who.actor.clone(),
                role: who.role.clone(),
                unit: who.unit.clone(),
            });
        }
        let mut events = Vec::new();
        for command in commands {
            let org = fold::<Org>(&events, &definitions);
            let ctx = Context {
                acting: &system,
                org: &org,
                definitions: &definitions,
                time: &WallClockOnly,
                now: at(0),
            };
            events.extend(
                Org::decide(&(), &org, &command, &ctx)
                    .expect("the chart builds")
                    .events,
            );
        }
        fold::<Org>(&events, &definitions)
    }

    fn admin() -> Acting {
        acting("wang.admin", "community_admin", "tonghui")
    }

    fn other_admin() -> Acting {
        acting("zhao.admin", "community_admin", "huaxia")
    }

    fn worker() -> Acting {
        acting("li.grid1", "grid_worker", "grid-1")
    }

    fn other_worker() -> Acting {
        acting("chen.grid2", "grid_worker", "grid-2")
    }

    /// The access stream, folded as the engine folds it, decided on at a moment.
    struct Stream {
        org: OrgChart,
        definitions: DefinitionRegistry,
        events: Vec<AccessEvent>,
        state: AccessState,
    }

    impl Stream {
        fn new() -> Self {
            Self {
                org: chart(),
                definitions: DefinitionRegistry::built_in(),
                events: Vec::new(),
                state: AccessState::default(),
            }
        }

        /// Decides `command` by `by` at `now` and applies what it decides.
        fn run(
            &mut self,
            by: &Acting,
            command: &AccessCommand,
            now: Timestamp,
        ) -> Result<Vec<AccessEvent>, Rejection> {
            let ctx = Context {
                acting: by,
                org: &self.org,
                definitions: &self.definitions,
                time: &WallClockOnly,
                now,
            };
            let events = Access::decide(&(), &self.state, command, &ctx)?.events;
            for event in &events {
                self.events.push(event.clone());
                let version = Version::FIRST.plus(self.events.len() as u64 - 1);
                Access::apply(
                    &mut self.state,
                    event,
                    &Fold {
                        version,
                        definitions: &self.definitions,
                    },
                );
            }
            Ok(events)
        }

        /// The worker's token, issued by the administrator at hour 0.
        fn with_token() -> (Self, TokenId) {
            let mut stream = Self::new();
            let hash = TokenHash([7; 32]);
            stream
                .run(
                    &admin(),
                    &AccessCommand::Issue {
                        hash,
                        acting: worker(),
                        name: "grid-1 tablet".into(),
                    },
                    at(0),
                )
                .expect("issued");
            (stream, TokenId::of_hash(&hash))
        }
    }

    fn end(token: &TokenId, session: SessionNonce, expires_at: Timestamp) -> AccessCommand {
        AccessCommand::EndSession {
            token: token.clone(),
            session,
            expires_at,
        }
    }

    #[test]
    fn a_holder_ends_their_own_session_and_only_that_one() {
        let (mut stream, token) = Stream::with_token();
        let events = stream
            .run(&worker(), &end(&token, nonce(1), at(9)), at(1))
            .expect("ended");
        assert_eq!(
            events,
            [AccessEvent::Ended(SessionEnded {
                token: token.clone(),
                session: nonce(1),
                expires_at: at(9),
                at: at(1),
            })]
        );
        assert!(stream.state.session_ended(&token, &nonce(1)));
        assert!(!stream.state.session_ended(&token, &nonce(2)));
        let other = TokenId::parse("0123456789abcdef").expect("an id");
        assert!(!stream.state.session_ended(&other, &nonce(1)));
        // The fold of the stream from its events is the same state.
        assert_eq!(
            fold::<Access>(&stream.events, &stream.definitions),
            stream.state
        );
    }

    #[test]
    fn ending_an_ended_session_writes_nothing() {
        let (mut stream, token) = Stream::with_token();
        stream
            .run(&worker(), &end(&token, nonce(1), at(9)), at(1))
            .expect("ended");
        let again = stream
            .run(&worker(), &end(&token, nonce(1), at(9)), at(2))
            .expect("still fine");
        assert_eq!(again, []);
        // By an administrator too.
        let again = stream
            .run(&admin(), &end(&token, nonce(1), at(9)), at(2))
            .expect("still fine");
        assert_eq!(again, []);
        assert_eq!(stream.events.len(), 2, "issued and one ending");
    }

    #[test]
    fn someone_elses_session_is_ended_only_by_an_administrator_over_the_token() {
        let (mut stream, token) = Stream::with_token();
        let command = end(&token, nonce(1), at(9));

        // Another grid worker: not their token, and not an administrator.
        let refused = stream
            .run(&other_worker(), &command, at(1))
            .expect_err("not theirs");
        assert!(
            matches!(&refused, Rejection::RoleNotAllowed { role, action, .. }
                if role.as_str() == "grid_worker" && action.contains("another actor's token")),
            "{refused}"
        );
        // The same actor acting elsewhere is another grant (and not one they hold).
        let refused = stream
            .run(
                &acting("li.grid1", "grid_worker", "grid-2"),
                &command,
                at(1),
            )
            .expect_err("another grant");
        assert!(matches!(refused, Rejection::NotGranted { .. }), "{refused}");
        // An administrator of another community.
        let refused = stream
            .run(&other_admin(), &command, at(1))
            .expect_err("out of scope");
        assert!(
            matches!(&refused, Rejection::OutOfScope { target, .. } if target.as_str() == "grid-1"),
            "{refused}"
        );
        assert!(!stream.state.session_ended(&token, &nonce(1)));
        assert_eq!(stream.events.len(), 1, "nothing written");

        // The administrator over the token's unit, and the system, may.
        assert_eq!(stream.run(&admin(), &command, at(1)).expect("ok").len(), 1);
        let system = Acting::system(unit("tonghui"));
        assert_eq!(
            stream
                .run(&system, &end(&token, nonce(2), at(9)), at(1))
                .expect("ok")
                .len(),
            1
        );
        assert!(stream.state.session_ended(&token, &nonce(1)));
        assert!(stream.state.session_ended(&token, &nonce(2)));
    }

    #[test]
    fn an_unknown_token_is_not_found() {
        let mut stream = Stream::new();
        let token = TokenId::parse("0123456789abcdef").expect("an id");
        let refused = stream
            .run(&worker(), &end(&token, nonce(1), at(9)), at(1))
            .expect_err("unknown");
        assert!(
            matches!(&refused, Rejection::NotFound { what: "token", id } if id == "0123456789abcdef"),
            "{refused}"
        );
    }

    #[test]
    fn a_session_of_a_revoked_token_or_an_expired_one_has_nothing_to_end() {
        let (mut stream, token) = Stream::with_token();
        // Expired an hour ago.
        assert_eq!(
            stream
                .run(&worker(), &end(&token, nonce(1), at(1)), at(2))
                .expect("nothing to end"),
            []
        );
        stream
            .run(
                &admin(),
                &AccessCommand::Revoke {
                    token: token.clone(),
                    reason: String::new(),
                },
                at(3),
            )
            .expect("revoked");
        assert_eq!(
            stream
                .run(&worker(), &end(&token, nonce(1), at(9)), at(4))
                .expect("nothing to end"),
            []
        );
        assert!(stream.state.ended.is_empty());
        assert_eq!(stream.events.len(), 2, "issued and revoked");
    }

    #[test]
    fn an_expiry_too_far_ahead_is_refused_naming_the_field() {
        let (mut stream, token) = Stream::with_token();
        // 24 hours ahead is the limit; a microsecond more is refused.
        let limit = at(1).saturating_add(SESSION_EXPIRY_AHEAD_MAX);
        let refused = stream
            .run(
                &worker(),
                &end(
                    &token,
                    nonce(1),
                    Timestamp::from_unix_micros(limit.as_unix_micros() + 1),
                ),
                at(1),
            )
            .expect_err("too far");
        assert!(
            matches!(&refused, Rejection::Invalid { field, .. } if field == "expires_at"),
            "{refused}"
        );
        assert!(refused.to_string().contains("24 hours"), "{refused}");
        assert_eq!(
            stream
                .run(&worker(), &end(&token, nonce(1), limit), at(1))
                .expect("at the limit")
                .len(),
            1
        );
    }

    #[test]
    fn ended_sessions_are_forgotten_once_expired() {
        let (mut stream, token) = Stream::with_token();
        stream
            .run(&worker(), &end(&token, nonce(1), at(3)), at(1))
            .expect("ended");
        stream
            .run(&worker(), &end(&token, nonce(2), at(9)), at(2))
            .expect("ended");
        // Both kept while neither has expired; at hour 3 exactly the first is still kept.
        stream
            .run(&worker(), &end(&token, nonce(3), at(10)), at(3))
            .expect("ended");
        assert_eq!(stream.state.ended[&token].len(), 3);
        // Past hour 3, any event of the stream forgets the first.
        stream
            .run(&worker(), &end(&token, nonce(4), at(10)), at(4))
            .expect("ended");
        assert!(!stream.state.session_ended(&token, &nonce(1)));
        assert!(stream.state.session_ended(&token, &nonce(2)));
        assert_eq!(stream.state.ended[&token].len(), 3);
        // An issue at hour 11 is past every expiry: the token's entry goes entirely.
        stream
            .run(
                &admin(),
                &AccessCommand::Issue {
                    hash: TokenHash([8; 32]),
                    acting: other_worker(),
                    name: "grid-2 tablet".into(),
                },
                at(11),
            )
            .expect("issued");
        assert!(stream.state.ended.is_empty(), "{:?}", stream.state.ended);
    }

    #[test]
    fn a_revocation_drops_its_tokens_ended_sessions_only() {
        let (mut stream, token) = Stream::with_token();
        let hash = TokenHash([8; 32]);
        let other = TokenId::of_hash(&hash);
        stream
            .run(
                &admin(),
                &AccessCommand::Issue {
                    hash,
                    acting: other_worker(),
                    name: "grid-2 tablet".into(),
                },
                at(0),
            )
            .expect("issued");
        stream
            .run(&worker(), &end(&token, nonce(1), at(9)), at(1))
            .expect("ended");
        stream
            .run(&other_worker(), &end(&other, nonce(1), at(9)), at(1))
            .expect("ended");
        stream
            .run(
                &admin(),
                &AccessCommand::Revoke {
                    token: token.clone(),
                    reason: "tablet lost".into(),
                },
                at(2),
            )
            .expect("revoked");
        assert!(!stream.state.ended.contains_key(&token));
        assert!(!stream.state.session_ended(&token, &nonce(1)));
        assert!(stream.state.session_ended(&other, &nonce(1)));
    }

    #[test]
    fn a_session_nonce_reads_back_from_its_hex_and_nothing_else() {
        let session = SessionNonce([
            0x00, 0x01, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ]);
        let hex = session.to_string();
        assert_eq!(hex, "00012233445566778899aabbccddeeff");
        assert_eq!(SessionNonce::parse(&hex).expect("parses"), session);
        assert_eq!(format!("{session:?}"), format!("SessionNonce({hex})"));
        for bad in [
            "",
            &hex[..30],
            &format!("{hex}00"),
            &hex.to_uppercase(),
            "zz01223344556677 8899aabbccddeeff",
            "é01223344556677889 9aabbccddeeff",
        ] {
            let refused = SessionNonce::parse(bad).expect_err(bad);
            assert!(
                matches!(&refused, Rejection::Invalid { field, .. } if field == "session"),
                "{bad:?}: {refused}"
            );
        }
    }
}
