//! A requester's lifecycle in the log: registered, erased. Never their data: that is in the
//! vault, encrypted with a key of their own (see `vault`). Erasing a person destroys the key
//! and records the erasure here, so audits show the data as erased and the chain still
//! verifies.

use serde::{Deserialize, Serialize};

use super::aggregate::{Aggregate, Decision, Fold};
use super::context::Context;
use super::events::domain_events;
use super::org::{roles, Acting, OrgChart};
use super::rejection::Rejection;
use crate::clock::Timestamp;
use crate::ids::{PersonId, Role, UnitId};

/// A person was registered (their contact data went into the vault).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonRegistered {
    /// The person.
    pub person: PersonId,
    /// The unit that registered them (erasing them is for administrators at or above it).
    pub unit: UnitId,
    /// When.
    pub at: Timestamp,
}

/// A person was erased (their key destroyed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonErased {
    /// The person.
    pub person: PersonId,
    /// Why (a request under the personal information protection law, …).
    pub reason: String,
    /// When.
    pub at: Timestamp,
}

domain_events! {
    /// The events of a person's stream.
    pub enum PersonEvent {
        /// Registered.
        Registered(PersonRegistered) = "PersonRegistered" v 1,
        /// Erased.
        Erased(PersonErased) = "PersonErased" v 1,
    }
}

/// Whether a person exists and was erased, as far as their stream says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PersonState {
    /// Registered.
    pub registered: bool,
    /// The unit that registered them.
    pub unit: Option<UnitId>,
    /// Erased.
    pub erased: bool,
    /// When they were erased (the first erasure: erasing again changes nothing).
    pub erased_at: Option<Timestamp>,
    /// Why they were erased, as recorded.
    pub erasure_reason: Option<String>,
}

/// The roles that may register people (taking a request at the door, on the phone, by app).
pub const REGISTRARS: &[&str] = &[
    roles::COMMUNITY_ADMIN,
    roles::GRID_WORKER,
    roles::RESIDENT,
    roles::OPEN311_CLIENT,
    roles::LIAISON_OFFICER,
    roles::ENTERPRISE_LIAISON,
    roles::SHOP_OWNER,
];

/// The roles that erase people (with the system): a community administrator, for the people
/// registered at their unit or below it. Erasing is the personal information protection law's
/// deletion right (个人信息保护法 art. 47), exercised for a community by its administrators.
pub const ERASERS: &[&str] = &[roles::COMMUNITY_ADMIN];

/// The most characters of an erasure's reason (trimmed).
pub const ERASE_REASON_CHARS_MAX: usize = 1000;

/// Checks an erasure's reason: one line of text (`domain::text`), 1 to
/// [`ERASE_REASON_CHARS_MAX`] characters once trimmed, not blank. Erasing checks it; an edge
/// may ask it first, before it opens anything (`civicflow erase`).
///
/// # Errors
/// [`Rejection::FieldInvalid`] (or the text rule's refusal) naming `reason`.
pub fn check_erase_reason(reason: &str) -> Result<(), Rejection> {
    super::text::check("reason", reason, super::text::Lines::One)?;
    if super::text::is_blank(reason) || reason.trim().chars().count() > ERASE_REASON_CHARS_MAX {
        return Err(Rejection::FieldInvalid {
            field: "reason".into(),
            reason: format!("must be 1 to {ERASE_REASON_CHARS_MAX} characters"),
        });
    }
    Ok(())
}

/// Decides registering a person.
fn decide_register(
    person: PersonId,
    state: &PersonState,
    ctx: &Context<'_>,
) -> Result<Vec<PersonEvent>, Rejection> {
    ctx.org.check_acting(ctx.acting)?;
    if !ctx.acting.is_system() && !REGISTRARS.contains(&ctx.acting.role.as_str()) {
        return Err(Rejection::RoleNotAllowed {
            role: ctx.acting.role.clone(),
            action: "register a person".into(),
            allowed: REGISTRARS
                .iter()
                .map(|r| Role::new(*r).expect("valid"))
                .collect(),
        });
    }
    if state.registered {
        return Err(Rejection::AlreadyExists {
            what: "person",
            id: person.to_string(),
        });
    }
    Ok(vec![PersonEvent::Registered(PersonRegistered {
        person,
        unit: ctx.acting.unit.clone(),
        at: ctx.now,
    })])
}

/// Decides erasing a person: a community administrator at or above the unit that registered
/// them (or the system) does it, with a reason.
///
/// The unit that registered a person is the unit their first case was filed at (an opening
/// with a new requester registers them there), so an administrator erases the people who
/// first filed in their community: not a person another community registered, even one who
/// later filed in theirs too as a known requester. The reason is checked every time, also
/// for a person erased already (whose erasure stays as it was): a blank one is never taken.
fn decide_erase(
    person: PersonId,
    state: &PersonState,
    reason: &str,
    ctx: &Context<'_>,
) -> Result<Vec<PersonEvent>, Rejection> {
    ctx.org.check_acting(ctx.acting)?;
    if !ctx.acting.is_system() && !ERASERS.contains(&ctx.acting.role.as_str()) {
        return Err(Rejection::RoleNotAllowed {
            role: ctx.acting.role.clone(),
            action: "erase a person".into(),
            allowed: ERASERS
                .iter()
                .map(|r| Role::new(*r).expect("valid"))
                .collect(),
        });
    }
    if !state.registered {
        return Err(Rejection::NotFound {
            what: "person",
            id: person.to_string(),
        });
    }
    if let Some(unit) = state.unit.as_ref().filter(|_| !ctx.acting.is_system()) {
        if !ctx.org.is_within(unit, &ctx.acting.unit) {
            return Err(Rejection::OutOfScope {
                unit: ctx.acting.unit.clone(),
                action: "erase a person".into(),
                scope: "the unit that registered them or a unit above it".into(),
                target: unit.clone(),
            });
        }
    }
    check_erase_reason(reason)?;
    if state.erased {
        return Ok(Vec::new());
    }
    Ok(vec![PersonEvent::Erased(PersonErased {
        person,
        reason: reason.trim().to_owned(),
        at: ctx.now,
    })])
}

/// What may be asked of a person's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersonCommand {
    /// Register them (their contact data goes into the vault).
    Register,
    /// Erase them (their key is destroyed).
    Erase {
        /// Why.
        reason: String,
    },
}

/// A requester's lifecycle: one stream `person-<uuid>` per person.
#[derive(Debug, Clone, Copy)]
pub struct Person;

impl Aggregate for Person {
    type Id = PersonId;
    type State = PersonState;
    type Command = PersonCommand;
    type Event = PersonEvent;

    const KIND: &'static str = "person";

    fn stream(id: &PersonId) -> Result<crate::ids::StreamId, Rejection> {
        Ok(id.stream())
    }

    /// Registering is for the roles that take requests; erasing for a community
    /// administrator at or above the unit that registered them (or the system), with a
    /// reason. Erasing an erased person changes nothing.
    fn decide(
        id: &PersonId,
        state: &PersonState,
        command: &PersonCommand,
        ctx: &Context<'_>,
    ) -> Result<Decision<Self>, Rejection> {
        let events = match command {
            PersonCommand::Register => decide_register(*id, state, ctx)?,
            PersonCommand::Erase { reason } => decide_erase(*id, state, reason, ctx)?,
        };
        Ok(Decision::events(events))
    }

    fn apply(state: &mut PersonState, event: &PersonEvent, _fold: &Fold<'_>) {
        match event {
            PersonEvent::Registered(e) => {
                state.registered = true;
                state.unit = Some(e.unit.clone());
            }
            PersonEvent::Erased(e) => {
                // The first erasure is the one in force. Erasing an erased person writes
                // nothing, so a second event comes only from a log written otherwise.
                if !state.erased {
                    state.erased_at = Some(e.at);
                    state.erasure_reason = Some(e.reason.clone());
                }
                state.erased = true;
            }
        }
    }

    /// The system, and community administrators at or above the unit that registered them
    /// (who may erase them: [`ERASERS`]).
    fn may_see(state: &PersonState, viewer: &Acting, org: &OrgChart) -> bool {
        viewer.is_system()
            || (ERASERS.contains(&viewer.role.as_str())
                && org.check_acting(viewer).is_ok()
                && state
                    .unit
                    .as_ref()
                    .is_some_and(|unit| org.is_within(unit, &viewer.unit)))
    }
}
