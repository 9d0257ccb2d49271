//! Access tokens in the log: who may call the service as whom. Issuing and revoking a token
//! are events of one stream, `access-tokens`; the secret never is. The log holds the token's
//! SHA-256 hash, so a leaked log grants nothing, and every grant and revocation is audited
//! like any other step.
//!
//! A token is an actor acting in one role at one unit (an [`Acting`]): the service hands the
//! engine exactly that, and the engine checks every command against it as usual. Generating
//! the secret and hashing it happen at the edges (the service, the command), never here.

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

domain_events! {
    /// The events of the access stream.
    pub enum AccessEvent {
        /// Issued.
        Issued(TokenIssued) = "TokenIssued" v 1,
        /// Revoked.
        Revoked(TokenRevoked) = "TokenRevoked" v 1,
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

/// Every token ever issued, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessState {
    /// The tokens.
    pub tokens: BTreeMap<TokenId, Grant>,
    /// The stream's version.
    pub version: Option<Version>,
}

impl AccessState {
    /// The valid (not revoked) grants.
    pub fn valid(&self) -> impl Iterator<Item = &Grant> {
        self.tokens.values().filter(|g| g.revoked_at.is_none())
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
    }
}

/// Every token's issue and revocation: the one stream `access-tokens`.
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
    /// hold, an empty or overlong name, a hash already issued, an unknown token. Revoking a
    /// revoked token changes nothing.
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
            }
        }
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

/// Whether `viewer` may see (and manage) the token of `grant`: the system, and whoever acts
/// at the token's unit or above it. Anyone else is told it does not exist.
pub fn grant_visible(grant: &Grant, viewer: &Acting, org: &OrgChart) -> bool {
    viewer.is_system() || org.is_within(&grant.acting.unit, &viewer.unit)
}
