//! The case: one request handled by one workflow, from intake to close.
//!
//! [`Case`] is the aggregate: its `decide` turns a command into events or a [`Rejection`],
//! its `apply` folds an event into [`CaseState`]. Both are pure. The rules that are the same for every workflow live here
//! (who may act, what a closed case accepts, how deadlines are set, met, missed and escalated);
//! what differs between workflows comes from the pinned [`Definition`].

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::aggregate::{Aggregate, Decision, Fold};
use super::context::Context;
use super::deadline::{close_deadline, deadline_for, reach_step};
pub use super::deadline::{
    ActiveDeadline, DeadlineMet, DeadlineMissed, DeadlineRecomputed, DeadlineSet, DeadlineSetV1,
    DeadlineStepReached, LadderStep,
};
use super::events::domain_events;
use super::fields::{check_fields, check_units, FieldValue, Fields};
use super::org::{roles, Acting, OrgChart};
use super::rejection::Rejection;
use super::workflow::{Action, Definition, DefinitionRef, Effect, Scope, WorkflowId};
use crate::clock::Timestamp;
use crate::ids::{ActorId, CaseId, PersonId, UnitId, Version};

/// The roles that ask for themselves: a case filed in one of them has its filer as requester.
pub const SELF_FILING: &[&str] = &[roles::RESIDENT, roles::SHOP_OWNER];

/// The longest title, in characters.
pub const TITLE_CHARS_MAX: usize = 200;
/// The longest description, in characters (as Open311's).
pub const DESCRIPTION_CHARS_MAX: usize = 4000;

/// How a request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// 上门受理: at the door, by a grid worker.
    Door,
    /// The 12345 hotline or the community's phone.
    Hotline,
    /// A civic app through Open311.
    Open311,
    /// The native API or an embedding system.
    Api,
    /// Raised by staff themselves (a patrol, a monitoring point).
    Staff,
}

/// Where a request is about, as a civic app (Open311) or a client gives it: a point, an
/// address, an address id of the client's own system, and the URL of a photo. Public, like the
/// request itself (personal data is the requester's contact, kept in the vault).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Place {
    /// Latitude, WGS 84 degrees (−90 to 90); given with `long` or not at all.
    pub lat: Option<f64>,
    /// Longitude, WGS 84 degrees (−180 to 180).
    pub long: Option<f64>,
    /// A human-readable address.
    pub address: Option<String>,
    /// The client's own id of the address.
    pub address_id: Option<String>,
    /// A photo or other media, by URL.
    pub media_url: Option<String>,
}

/// The longest address, in characters.
pub const ADDRESS_CHARS_MAX: usize = 500;
/// The longest address id, in characters.
pub const ADDRESS_ID_CHARS_MAX: usize = 200;
/// The longest media URL, in characters.
pub const MEDIA_URL_CHARS_MAX: usize = 2000;

impl Place {
    /// Whether it says nothing.
    pub fn is_empty(&self) -> bool {
        self.lat.is_none()
            && self.long.is_none()
            && self.address.is_none()
            && self.address_id.is_none()
            && self.media_url.is_none()
    }

    /// Checks the place, naming the field at fault (`place.lat`, …).
    ///
    /// # Errors
    /// [`Rejection::FieldInvalid`] for a lone coordinate, one out of range or not finite, an
    /// empty or overlong text, or a media URL that is not `http(s)://`.
    pub fn check(&self) -> Result<(), Rejection> {
        let invalid = |field: &str, reason: String| Rejection::FieldInvalid {
            field: format!("place.{field}"),
            reason,
        };
        match (self.lat, self.long) {
            (Some(lat), Some(long)) => {
                if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
                    return Err(invalid(
                        "lat",
                        format!("{lat} is not a latitude (-90 to 90)"),
                    ));
                }
                if !long.is_finite() || !(-180.0..=180.0).contains(&long) {
                    return Err(invalid(
                        "long",
                        format!("{long} is not a longitude (-180 to 180)"),
                    ));
                }
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(invalid(
                    "long",
                    "missing: give lat and long together".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(invalid("lat", "missing: give lat and long together".into()))
            }
        }
        for (field, text, max) in [
            ("address", &self.address, ADDRESS_CHARS_MAX),
            ("address_id", &self.address_id, ADDRESS_ID_CHARS_MAX),
            ("media_url", &self.media_url, MEDIA_URL_CHARS_MAX),
        ] {
            if let Some(text) = text {
                let chars = text.chars().count();
                super::text::check(&format!("place.{field}"), text, super::text::Lines::One)?;
                if super::text::is_blank(text) {
                    return Err(invalid(field, "empty: leave it out instead".into()));
                }
                if chars > max {
                    return Err(invalid(field, format!("{chars} characters; at most {max}")));
                }
            }
        }
        if let Some(url) = &self.media_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(invalid("media_url", "not an http(s) URL".into()));
            }
        }
        Ok(())
    }
}

/// A case as of some version of its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseState {
    /// The case.
    pub id: CaseId,
    /// The workflow and version it runs on.
    pub workflow: DefinitionRef,
    /// Its stage.
    pub stage: String,
    /// Whether it is closed (in a terminal stage).
    pub closed: bool,
    /// The unit it was filed at.
    pub unit: UnitId,
    /// The lead unit (主办).
    pub lead: UnitId,
    /// Co-handling units (协办).
    pub co_handlers: BTreeSet<UnitId>,
    /// The unit that dispatched it to the lead (a send-back returns it there).
    pub dispatched_by: Option<UnitId>,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// The latest value of every field given so far (intake and actions).
    pub fields: Fields,
    /// The person who asked, if known (their data is in the vault).
    pub requester: Option<PersonId>,
    /// Where the request is about, when the opening said.
    pub place: Option<Place>,
    /// The actor who filed it.
    pub filed_by: ActorId,
    /// The role they filed it in: when that is a role that asks for itself (a resident, a
    /// shop owner), the filer is the requester and may take the requester's actions.
    pub filed_as: crate::ids::Role,
    /// How it came in.
    pub channel: Channel,
    /// When it was opened.
    pub opened_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// When it was closed (the last time).
    pub closed_at: Option<Timestamp>,
    /// The requester's satisfaction (1 to 5), if rated.
    pub rating: Option<u8>,
    /// The case this one was merged into, as a duplicate.
    pub merged_into: Option<CaseId>,
    /// Cases merged into this one.
    pub duplicates: Vec<CaseId>,
    /// The current stage's deadline.
    pub deadline: Option<ActiveDeadline>,
    /// How many deadlines were set so far.
    pub deadlines_set: u32,
    /// How many deadlines were missed so far.
    pub deadlines_missed: u32,
    /// The unit supervising after an escalation (督办), until the stage is left.
    pub escalated_to: Option<UnitId>,
    /// How many times it was reopened.
    pub reopened: u32,
    /// The version of its stream this state is as of.
    pub version: Option<Version>,
}

/// Opens a case.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenCase {
    /// The new case's id (minted by the engine, UUID v7).
    pub case: CaseId,
    /// The workflow.
    pub workflow: WorkflowId,
    /// Its version; `None` for the newest.
    pub version: Option<u32>,
    /// The unit it is filed at (and first led by).
    pub unit: UnitId,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Intake fields.
    pub fields: Fields,
    /// The person who asks, if any.
    pub requester: Option<PersonId>,
    /// How it came in.
    pub channel: Channel,
    /// Where it is about, if the client said (boxed: most openings have none).
    pub place: Option<Box<Place>>,
    /// The requester is new: the opening registers them ([`super::person::Person`]) in the
    /// same append. Whoever may open the case may record who asks.
    pub new_requester: bool,
}

/// A command to a case.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CaseCommand {
    /// Open a new case.
    Open(OpenCase),
    /// Take an action of the workflow.
    Act {
        /// The action's id.
        action: String,
        /// Its fields.
        fields: Fields,
        /// The version the caller saw; a different current version refuses the action.
        expected_version: Option<Version>,
    },
    /// Move a running case to another version of its workflow.
    Migrate {
        /// The version to move to.
        to_version: u32,
    },
    /// Take the next step of the deadline ladder (the scheduler does this).
    ReachDeadlineStep {
        /// Which deadline.
        seq: u32,
        /// Which step.
        step: LadderStep,
    },
    /// Compute a provisional running deadline again with the calendar now in force (the
    /// engine does this when a year is published).
    RecomputeDeadline {
        /// Which deadline.
        seq: u32,
    },
    /// Record that the requester's contact data was shown unmasked.
    RecordContactView {
        /// Why it was looked at.
        purpose: String,
    },
    /// Accept another case as a duplicate of this one (the other half of a merge).
    AcceptDuplicate {
        /// The duplicate.
        duplicate: CaseId,
    },
}

// ---------------------------------------------------------------------------------------------
// Events

/// A case was opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseOpened {
    /// The case.
    pub case: CaseId,
    /// The workflow and version it runs on.
    pub workflow: DefinitionRef,
    /// Its first stage.
    pub stage: String,
    /// The unit it is filed at and first led by.
    pub unit: UnitId,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Intake fields.
    pub fields: Fields,
    /// The person who asks.
    pub requester: Option<PersonId>,
    /// The actor who filed it.
    pub filed_by: ActorId,
    /// The role they filed it in.
    pub filed_as: crate::ids::Role,
    /// How it came in.
    pub channel: Channel,
    /// When.
    pub at: Timestamp,
}

/// An action of the workflow was taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionTaken {
    /// The action.
    pub action: String,
    /// The stage before.
    pub from: String,
    /// The stage after.
    pub to: String,
    /// The fields given.
    pub fields: Fields,
    /// When.
    pub at: Timestamp,
}

/// A unit became the lead (派单, 改派, taking the case on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadAssigned {
    /// The new lead.
    pub unit: UnitId,
    /// The lead before.
    pub previous: UnitId,
    /// The unit that assigned it.
    pub by: UnitId,
}

/// A co-handling unit joined (协办).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoHandlerAdded {
    /// The unit.
    pub unit: UnitId,
}

/// The lead sent the case back to the unit that dispatched it (退单).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnedToSender {
    /// The lead that sent it back.
    pub from: UnitId,
    /// The unit that gets it back.
    pub to: UnitId,
}

/// The requester's satisfaction was recorded (评价).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SatisfactionRated {
    /// 1 (very dissatisfied) to 5 (very satisfied).
    pub rating: u8,
}

/// The case was merged into another as a duplicate (并单).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergedInto {
    /// The case that carries on.
    pub target: CaseId,
}

/// Another case was merged into this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicateMerged {
    /// The duplicate.
    pub duplicate: CaseId,
}

/// The case was reopened: it goes back to the unit it was filed at, to be handled again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseReopened {
    /// How many times it has been reopened now.
    pub count: u32,
    /// The unit that leads it again (the unit it was filed at).
    pub lead: UnitId,
}

/// The case moved to another version of its workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseMigrated {
    /// The version before.
    pub from: DefinitionRef,
    /// The version after.
    pub to: DefinitionRef,
}

/// The requester's contact data was shown unmasked to the acting actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactViewed {
    /// Whose data.
    pub person: PersonId,
    /// Why.
    pub purpose: String,
    /// When.
    pub at: Timestamp,
}

/// Where a case is about, recorded with its opening.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaceRecorded {
    /// The place.
    pub place: Place,
    /// When.
    pub at: Timestamp,
}

domain_events! {
    /// The events of a case.
    pub enum CaseEvent {
        /// Opened.
        Opened(CaseOpened) = "CaseOpened" v 1,
        /// An action was taken.
        ActionTaken(ActionTaken) = "ActionTaken" v 1,
        /// A lead was assigned.
        LeadAssigned(LeadAssigned) = "LeadAssigned" v 1,
        /// A co-handler joined.
        CoHandlerAdded(CoHandlerAdded) = "CoHandlerAdded" v 1,
        /// Sent back.
        ReturnedToSender(ReturnedToSender) = "ReturnedToSender" v 1,
        /// Rated.
        SatisfactionRated(SatisfactionRated) = "SatisfactionRated" v 1,
        /// Merged into another case.
        MergedInto(MergedInto) = "MergedInto" v 1,
        /// A duplicate was merged in.
        DuplicateMerged(DuplicateMerged) = "DuplicateMerged" v 1,
        /// Reopened.
        Reopened(CaseReopened) = "CaseReopened" v 1,
        /// Migrated to another version.
        Migrated(CaseMigrated) = "CaseMigrated" v 1,
        /// A deadline was set.
        DeadlineSet(DeadlineSet) = "DeadlineSet" v 2 {
            v 1 => DeadlineSetV1 via DeadlineSet::from_v1,
        },
        /// A running deadline was computed again (its year's calendar was published).
        DeadlineRecomputed(DeadlineRecomputed) = "DeadlineRecomputed" v 1,
        /// A deadline was met.
        DeadlineMet(DeadlineMet) = "DeadlineMet" v 1,
        /// A deadline was missed.
        DeadlineMissed(DeadlineMissed) = "DeadlineMissed" v 1,
        /// A ladder step was reached.
        DeadlineStepReached(DeadlineStepReached) = "DeadlineStepReached" v 1,
        /// Contact data was viewed.
        ContactViewed(ContactViewed) = "ContactViewed" v 1,
        /// Where the case is about.
        PlaceRecorded(PlaceRecorded) = "PlaceRecorded" v 1,
    }
}

// ---------------------------------------------------------------------------------------------
// Deciding

fn definition_of<'a>(ctx: &Context<'a>, state: &CaseState) -> Result<&'a Definition, Rejection> {
    ctx.definitions
        .get(&state.workflow)
        .map(|d| d.as_ref())
        .ok_or_else(|| Rejection::UnknownWorkflow {
            workflow: state.workflow.to_string(),
        })
}

/// Whether `acting` may take `action` on `state` by role and scope (not by stage).
///
/// # Errors
/// [`Rejection::NotGranted`], [`Rejection::RoleNotAllowed`] or [`Rejection::OutOfScope`].
pub fn check_authority(
    state: &CaseState,
    action: &Action,
    acting: &Acting,
    org: &OrgChart,
) -> Result<(), Rejection> {
    org.check_acting(acting)?;
    if acting.is_system() {
        return Ok(());
    }
    if !action.roles.contains(&acting.role) {
        return Err(Rejection::RoleNotAllowed {
            role: acting.role.clone(),
            action: action.id.clone(),
            allowed: action.roles.clone(),
        });
    }
    let in_scope = match action.scope {
        Scope::Any => true,
        Scope::Subtree => org.is_within(&state.lead, &acting.unit),
        Scope::Lead => acting.unit == state.lead,
        Scope::Handler => acting.unit == state.lead || state.co_handlers.contains(&acting.unit),
        Scope::Requester => {
            SELF_FILING.contains(&state.filed_as.as_str())
                && acting.actor == state.filed_by
                && acting.role == state.filed_as
        }
    };
    if !in_scope {
        return Err(Rejection::OutOfScope {
            unit: acting.unit.clone(),
            action: action.id.clone(),
            scope: action.scope.describe().to_owned(),
            target: state.lead.clone(),
        });
    }
    Ok(())
}

/// The actions `acting` may take on the case now (right stage, role and scope).
pub fn available_actions<'d>(
    state: &CaseState,
    definition: &'d Definition,
    acting: &Acting,
    org: &OrgChart,
) -> Vec<&'d Action> {
    definition
        .actions_from(&state.stage)
        .filter(|action| check_authority(state, action, acting, org).is_ok())
        .collect()
}

/// Checks a case's free text by the one rule for texts (`domain::text`): its characters, then
/// whether it is given (blank counts as missing), then its length. A case's description is
/// its one text of several lines; a title and a purpose are one line.
fn check_text(
    action: &str,
    field: &str,
    text: &str,
    max: usize,
    required: bool,
) -> Result<(), Rejection> {
    let lines = if field == "description" {
        super::text::Lines::Many
    } else {
        super::text::Lines::One
    };
    super::text::check(field, text, lines)?;
    let chars = text.chars().count();
    if required && super::text::is_blank(text) {
        return Err(Rejection::FieldMissing {
            action: action.into(),
            field: field.into(),
        });
    }
    if chars > max {
        return Err(Rejection::FieldInvalid {
            field: field.into(),
            reason: format!("{chars} characters; at most {max}"),
        });
    }
    Ok(())
}

fn field_unit(fields: &Fields, name: &str) -> Result<UnitId, Rejection> {
    match fields.get(name) {
        Some(FieldValue::Unit(unit)) => Ok(unit.clone()),
        _ => Err(Rejection::FieldMissing {
            action: "effect".into(),
            field: name.into(),
        }),
    }
}

/// The events a command makes on a case (`None`: the case does not exist yet).
fn decide_events(
    state: Option<&CaseState>,
    command: &CaseCommand,
    ctx: &Context<'_>,
) -> Result<Vec<CaseEvent>, Rejection> {
    match (state, command) {
        (None, CaseCommand::Open(open)) => decide_open(open, ctx),
        (Some(state), CaseCommand::Open(_)) => Err(Rejection::AlreadyExists {
            what: "case",
            id: state.id.to_string(),
        }),
        (None, _) => Err(Rejection::NotFound {
            what: "case",
            id: "(none)".into(),
        }),
        (
            Some(state),
            CaseCommand::Act {
                action,
                fields,
                expected_version,
            },
        ) => decide_act(state, action, fields, *expected_version, ctx),
        (Some(state), CaseCommand::Migrate { to_version }) => {
            decide_migrate(state, *to_version, ctx)
        }
        (Some(state), CaseCommand::ReachDeadlineStep { seq, step }) => {
            decide_step(state, *seq, *step, ctx)
        }
        (Some(state), CaseCommand::RecomputeDeadline { seq }) => {
            Ok(
                super::deadline::recompute(state.deadline.as_ref(), *seq, ctx)?
                    .map(CaseEvent::DeadlineRecomputed)
                    .into_iter()
                    .collect(),
            )
        }
        (Some(state), CaseCommand::RecordContactView { purpose }) => {
            ctx.org.check_acting(ctx.acting)?;
            let person = state
                .requester
                .ok_or_else(|| Rejection::invalid("requester", "the case has no requester"))?;
            let definition = definition_of(ctx, state)?;
            if !ctx.acting.is_system() && !definition.contact_roles.contains(&ctx.acting.role) {
                return Err(Rejection::RoleNotAllowed {
                    role: ctx.acting.role.clone(),
                    action: "see the requester's contact data".into(),
                    allowed: definition.contact_roles.clone(),
                });
            }
            if !ctx.acting.is_system()
                && !ctx.org.is_within(&state.lead, &ctx.acting.unit)
                && ctx.acting.unit != state.unit
            {
                return Err(Rejection::OutOfScope {
                    unit: ctx.acting.unit.clone(),
                    action: "see the requester's contact data".into(),
                    scope: Scope::Subtree.describe().into(),
                    target: state.lead.clone(),
                });
            }
            check_text(
                "see the requester's contact data",
                "purpose",
                purpose,
                200,
                true,
            )?;
            Ok(vec![CaseEvent::ContactViewed(ContactViewed {
                person,
                purpose: purpose.clone(),
                at: ctx.now,
            })])
        }
        (Some(state), CaseCommand::AcceptDuplicate { duplicate }) => {
            if !ctx.acting.is_system() {
                // The engine does this as the other half of a merge; nobody else may.
                return Err(Rejection::RoleNotAllowed {
                    role: ctx.acting.role.clone(),
                    action: "accept a duplicate directly (merge the duplicate instead)".into(),
                    allowed: vec![crate::ids::Role::new(roles::SYSTEM).expect("valid")],
                });
            }
            if state.closed {
                return Err(Rejection::CaseClosed {
                    case: state.id.to_string(),
                });
            }
            if *duplicate == state.id {
                return Err(Rejection::invalid(
                    "into",
                    "a case cannot be merged into itself",
                ));
            }
            if state.duplicates.contains(duplicate) {
                return Ok(Vec::new());
            }
            Ok(vec![CaseEvent::DuplicateMerged(DuplicateMerged {
                duplicate: *duplicate,
            })])
        }
    }
}

fn decide_open(open: &OpenCase, ctx: &Context<'_>) -> Result<Vec<CaseEvent>, Rejection> {
    ctx.org.check_acting(ctx.acting)?;
    let definition = match open.version {
        Some(version) => ctx.definitions.get(&DefinitionRef {
            id: open.workflow.clone(),
            version,
        }),
        None => ctx.definitions.latest(&open.workflow),
    }
    .ok_or_else(|| Rejection::UnknownWorkflow {
        workflow: match open.version {
            Some(v) => format!("{}@{v}", open.workflow),
            None => open.workflow.to_string(),
        },
    })?;
    if ctx.org.unit(&open.unit).is_none() {
        return Err(Rejection::NotFound {
            what: "unit",
            id: open.unit.to_string(),
        });
    }
    if !ctx.acting.is_system() {
        if !definition.open.roles.contains(&ctx.acting.role) {
            return Err(Rejection::RoleNotAllowed {
                role: ctx.acting.role.clone(),
                action: format!("open a {} case", definition.id),
                allowed: definition.open.roles.clone(),
            });
        }
        if !ctx
            .org
            .may_open_at(ctx.acting, &open.unit, definition.open.scope)
        {
            return Err(Rejection::OutOfReach {
                unit: ctx.acting.unit.clone(),
                field: "unit".into(),
                target: open.unit.clone(),
                rule: match definition.open.scope {
                    Scope::Subtree => "this workflow's cases are filed only at the acting unit or a unit below it",
                    _ => "a unit files a case at itself, a unit below it or a unit above it, never at a sibling or a cousin",
                }
                .into(),
            });
        }
    }
    check_text("open", "title", &open.title, TITLE_CHARS_MAX, true)?;
    check_text(
        "open",
        "description",
        &open.description,
        DESCRIPTION_CHARS_MAX,
        false,
    )?;
    check_fields("open", &definition.open.fields, &open.fields)?;
    // An opening's unit fields are facts about the case (the shop complained of): they must
    // name units of the chart. (An action's effects check the units they hand the case to.)
    check_units(&open.fields, ctx.org)?;
    let place = open.place.clone().filter(|p| !p.is_empty());
    if let Some(place) = &place {
        place.check()?;
    }
    let stage = definition.initial_stage.clone();
    let mut events = vec![CaseEvent::Opened(CaseOpened {
        case: open.case,
        workflow: definition.reference(),
        stage: stage.clone(),
        unit: open.unit.clone(),
        title: open.title.trim().to_owned(),
        description: open.description.trim().to_owned(),
        fields: open.fields.clone(),
        requester: open.requester,
        filed_by: ctx.acting.actor.clone(),
        filed_as: ctx.acting.role.clone(),
        channel: open.channel,
        at: ctx.now,
    })];
    events.extend(place.map(|place| {
        CaseEvent::PlaceRecorded(PlaceRecorded {
            place: *place,
            at: ctx.now,
        })
    }));
    let rule = definition.stage(&stage).and_then(|s| s.deadline.as_ref());
    events.extend(deadline_for(rule, 1, &stage, ctx).map(CaseEvent::DeadlineSet));
    Ok(events)
}

fn decide_act(
    state: &CaseState,
    action_id: &str,
    fields: &Fields,
    expected_version: Option<Version>,
    ctx: &Context<'_>,
) -> Result<Vec<CaseEvent>, Rejection> {
    let definition = definition_of(ctx, state)?;
    let action = definition
        .action(action_id)
        .ok_or_else(|| Rejection::UnknownAction {
            workflow: state.workflow.to_string(),
            action: action_id.to_owned(),
        })?;
    if let Some(expected) = expected_version {
        if Some(expected) != state.version {
            return Err(Rejection::StaleVersion {
                expected: Some(expected),
                actual: state.version,
            });
        }
    }
    if state.closed && !action.effects.contains(&Effect::Reopen) {
        return Err(Rejection::CaseClosed {
            case: state.id.to_string(),
        });
    }
    if !action.from.contains(&state.stage) {
        return Err(Rejection::ActionNotInStage {
            action: action.id.clone(),
            stage: state.stage.clone(),
            possible: definition
                .actions_from(&state.stage)
                .map(|a| a.id.clone())
                .collect(),
        });
    }
    check_authority(state, action, ctx.acting, ctx.org)?;
    check_fields(&action.id, &action.fields, fields)?;

    let mut effects = Vec::new();
    for effect in &action.effects {
        effects.extend(effect_event(state, action, effect, fields, ctx)?);
    }
    // Leaving the stage closes its deadline and starts the next stage's. So does handing the
    // case to another unit within the stage (改派 while dispatched): the new unit gets the
    // full time, and the old unit's deadline ends met or missed. An effect that hands over
    // nothing (a unit taking the lead it already has) restarts nothing.
    let hands_over = effects.iter().any(|e| {
        matches!(
            e,
            CaseEvent::LeadAssigned(_) | CaseEvent::ReturnedToSender(_)
        )
    });
    let leaving = action.to != state.stage || hands_over;
    let mut events = Vec::new();
    if leaving {
        if let Some(deadline) = &state.deadline {
            events.push(match close_deadline(deadline, ctx.now) {
                Ok(met) => CaseEvent::DeadlineMet(met),
                Err(missed) => CaseEvent::DeadlineMissed(missed),
            });
        }
    }
    events.push(CaseEvent::ActionTaken(ActionTaken {
        action: action.id.clone(),
        from: state.stage.clone(),
        to: action.to.clone(),
        fields: fields.clone(),
        at: ctx.now,
    }));
    events.extend(effects);
    if leaving {
        let rule = definition
            .stage(&action.to)
            .and_then(|s| s.deadline.as_ref());
        events.extend(
            deadline_for(rule, state.deadlines_set + 1, &action.to, ctx)
                .map(CaseEvent::DeadlineSet),
        );
    }
    Ok(events)
}

fn effect_event(
    state: &CaseState,
    action: &Action,
    effect: &Effect,
    fields: &Fields,
    ctx: &Context<'_>,
) -> Result<Option<CaseEvent>, Rejection> {
    let known_unit = |unit: &UnitId| {
        if ctx.org.unit(unit).is_some() {
            Ok(())
        } else {
            Err(Rejection::NotFound {
                what: "unit",
                id: unit.to_string(),
            })
        }
    };
    // A hand-over goes down the acting unit's subtree, or where the field's reach allows.
    let reachable = |field: &str, unit: &UnitId| {
        let reach = action
            .fields
            .iter()
            .find(|f| f.name == field)
            .map(|f| f.reach)
            .unwrap_or_default();
        if ctx.org.may_hand_to(ctx.acting, unit, reach) {
            Ok(())
        } else {
            Err(Rejection::OutOfReach {
                unit: ctx.acting.unit.clone(),
                field: field.to_owned(),
                target: unit.clone(),
                rule: reach.describe().into(),
            })
        }
    };
    let event = match effect {
        Effect::AssignLead(field) => {
            let unit = field_unit(fields, field)?;
            known_unit(&unit)?;
            reachable(field, &unit)?;
            if unit == state.lead {
                return Err(Rejection::FieldInvalid {
                    field: field.clone(),
                    reason: format!("{unit} already leads this case"),
                });
            }
            // A send-back returns the case to `by`, so it must be a unit of the chart: when
            // the system assigns (it acts for no unit), the previous lead stands in.
            let by = if ctx.org.unit(&ctx.acting.unit).is_some() {
                ctx.acting.unit.clone()
            } else {
                state.lead.clone()
            };
            CaseEvent::LeadAssigned(LeadAssigned {
                unit,
                previous: state.lead.clone(),
                by,
            })
        }
        Effect::TakeLead => {
            if ctx.acting.unit == state.lead {
                return Ok(None);
            }
            // Only a unit of the chart can lead (the system acts for no unit).
            known_unit(&ctx.acting.unit)?;
            CaseEvent::LeadAssigned(LeadAssigned {
                unit: ctx.acting.unit.clone(),
                previous: state.lead.clone(),
                by: ctx.acting.unit.clone(),
            })
        }
        Effect::AddCoHandler(field) => {
            let unit = field_unit(fields, field)?;
            known_unit(&unit)?;
            reachable(field, &unit)?;
            if unit == state.lead {
                return Err(Rejection::FieldInvalid {
                    field: field.clone(),
                    reason: format!("{unit} leads this case; it cannot also co-handle it"),
                });
            }
            if state.co_handlers.contains(&unit) {
                // Already co-handling (a resubmission to the same department): nothing new.
                return Ok(None);
            }
            CaseEvent::CoHandlerAdded(CoHandlerAdded { unit })
        }
        Effect::ReturnToSender => {
            let to = state.dispatched_by.clone().ok_or_else(|| {
                Rejection::invalid(
                    "case",
                    "it was not dispatched, so there is no one to send it back to",
                )
            })?;
            CaseEvent::ReturnedToSender(ReturnedToSender {
                from: state.lead.clone(),
                to,
            })
        }
        Effect::Rate(field) => match fields.get(field) {
            Some(FieldValue::Rating(rating)) => {
                CaseEvent::SatisfactionRated(SatisfactionRated { rating: *rating })
            }
            // An optional rating that was not given: nothing to record.
            _ => return Ok(None),
        },
        Effect::MergeInto(field) => match fields.get(field) {
            Some(FieldValue::Case(target)) if *target == state.id => {
                return Err(Rejection::FieldInvalid {
                    field: field.clone(),
                    reason: "a case cannot be merged into itself".into(),
                })
            }
            Some(FieldValue::Case(target)) => CaseEvent::MergedInto(MergedInto { target: *target }),
            _ => {
                return Err(Rejection::FieldMissing {
                    action: "merge".into(),
                    field: field.clone(),
                })
            }
        },
        Effect::Reopen => CaseEvent::Reopened(CaseReopened {
            count: state.reopened + 1,
            lead: state.unit.clone(),
        }),
    };
    Ok(Some(event))
}

fn decide_migrate(
    state: &CaseState,
    to_version: u32,
    ctx: &Context<'_>,
) -> Result<Vec<CaseEvent>, Rejection> {
    ctx.org.check_acting(ctx.acting)?;
    if !ctx.acting.is_system() && ctx.acting.role.as_str() != roles::COMMUNITY_ADMIN {
        return Err(Rejection::RoleNotAllowed {
            role: ctx.acting.role.clone(),
            action: "migrate a case".into(),
            allowed: vec![crate::ids::Role::new(roles::COMMUNITY_ADMIN).expect("valid")],
        });
    }
    if !ctx.acting.is_system() && !ctx.org.is_within(&state.lead, &ctx.acting.unit) {
        return Err(Rejection::OutOfScope {
            unit: ctx.acting.unit.clone(),
            action: "migrate a case".into(),
            scope: Scope::Subtree.describe().into(),
            target: state.lead.clone(),
        });
    }
    let to = DefinitionRef {
        id: state.workflow.id.clone(),
        version: to_version,
    };
    if to == state.workflow {
        return Ok(Vec::new());
    }
    let target = ctx
        .definitions
        .get(&to)
        .ok_or_else(|| Rejection::UnknownWorkflow {
            workflow: to.to_string(),
        })?;
    let Some(stage) = target.stage(&state.stage) else {
        return Err(Rejection::invalid(
            "to_version",
            format!(
                "{to} has no stage {}; a case moves only to a version that has its current stage",
                state.stage
            ),
        ));
    };
    if stage.terminal != state.closed {
        return Err(Rejection::invalid(
            "to_version",
            format!(
                "stage {} is {} in {to}",
                stage.id,
                if stage.terminal { "terminal" } else { "open" }
            ),
        ));
    }
    Ok(vec![CaseEvent::Migrated(CaseMigrated {
        from: state.workflow.clone(),
        to,
    })])
}

fn decide_step(
    state: &CaseState,
    seq: u32,
    step: LadderStep,
    ctx: &Context<'_>,
) -> Result<Vec<CaseEvent>, Rejection> {
    let reached = reach_step(state.deadline.as_ref(), seq, step, &state.lead, ctx)?;
    Ok(vec![CaseEvent::DeadlineStepReached(reached)])
}

/// The case aggregate: one stream `case-<uuid>` per case.
#[derive(Debug, Clone, Copy)]
pub struct Case;

impl Aggregate for Case {
    type Id = CaseId;
    type State = Option<CaseState>;
    type Command = CaseCommand;
    type Event = CaseEvent;

    const KIND: &'static str = "case";

    fn stream(id: &CaseId) -> Result<crate::ids::StreamId, Rejection> {
        Ok(id.stream())
    }

    /// An opening of a new requester also registers them; a merge also has the case it joins
    /// accept the duplicate.
    fn decide(
        id: &CaseId,
        state: &Option<CaseState>,
        command: &CaseCommand,
        ctx: &Context<'_>,
    ) -> Result<Decision<Self>, Rejection> {
        if state.is_none() && !matches!(command, CaseCommand::Open(_)) {
            return Err(Rejection::NotFound {
                what: "case",
                id: id.to_string(),
            });
        }
        let events = decide_events(state.as_ref(), command, ctx)?;
        let merged_into = events.iter().find_map(|event| match event {
            CaseEvent::MergedInto(merge) => Some(merge.target),
            _ => None,
        });
        let mut decision = Decision::events(events);
        if let CaseCommand::Open(open) = command {
            if let (true, Some(person)) = (open.new_requester, open.requester) {
                decision = decision.creating(
                    person.stream(),
                    vec![super::person::PersonEvent::Registered(
                        super::person::PersonRegistered {
                            person,
                            unit: open.unit.clone(),
                            at: ctx.now,
                        },
                    )],
                );
            }
        }
        if let Some(target) = merged_into {
            decision = decision.following(target, CaseCommand::AcceptDuplicate { duplicate: *id });
        }
        Ok(decision)
    }

    fn apply(state: &mut Option<CaseState>, event: &CaseEvent, fold: &Fold<'_>) {
        *state = apply_event(state.take(), event, fold.definitions, fold.version);
    }

    /// A merge's other half is caused by the `MergedInto`, not by the deadline it closes.
    fn cause_of_consequences(events: &[CaseEvent]) -> usize {
        events
            .iter()
            .position(|e| matches!(e, CaseEvent::MergedInto(_)))
            .unwrap_or(0)
    }

    /// The `case` fields of an opening or an action (a merge's target).
    fn cases_named(command: &CaseCommand) -> Vec<(String, CaseId)> {
        let fields = match command {
            CaseCommand::Open(open) => &open.fields,
            CaseCommand::Act { fields, .. } => fields,
            _ => return Vec::new(),
        };
        fields
            .iter()
            .filter_map(|(name, value)| match value {
                FieldValue::Case(case) => Some((name.clone(), *case)),
                _ => None,
            })
            .collect()
    }

    /// See [`case_visible`].
    fn may_see(state: &Option<CaseState>, viewer: &Acting, org: &OrgChart) -> bool {
        state
            .as_ref()
            .is_some_and(|state| case_visible(state, viewer, org))
    }
}

/// Whether a case in `state` concerns the subtree of `root`: its filing unit, its lead unit
/// or one of its co-handling units lies in it (what a unit's live feed and inbox follow).
pub fn concerns_subtree(state: &CaseState, root: &UnitId, org: &OrgChart) -> bool {
    org.is_within(&state.unit, root)
        || org.is_within(&state.lead, root)
        || state.co_handlers.iter().any(|u| org.is_within(u, root))
}

/// Whether `viewer` may see a case in `state`: the system and auditors every case; a unit
/// the cases it leads, co-handles, lies above or filed; a resident (or the civic app filing
/// for them) the cases they filed. Anyone else is told the case does not exist.
pub fn case_visible(state: &CaseState, viewer: &Acting, org: &OrgChart) -> bool {
    {
        if viewer.is_system()
            || (viewer.role.as_str() == roles::AUDITOR && org.check_acting(viewer).is_ok())
        {
            return true;
        }
        if org.check_acting(viewer).is_err() {
            return false;
        }
        // Residents, and the civic apps that file for them, act as persons: their unit is
        // where they live, not what they answer for. They see the cases they filed.
        if matches!(
            viewer.role.as_str(),
            roles::RESIDENT | roles::OPEN311_CLIENT
        ) {
            return viewer.actor == state.filed_by;
        }
        org.is_within(&state.lead, &viewer.unit)
            || org.is_within(&state.unit, &viewer.unit)
            || state
                .co_handlers
                .iter()
                .any(|u| org.is_within(u, &viewer.unit))
            || viewer.actor == state.filed_by
    }
}

// ---------------------------------------------------------------------------------------------
// Applying

/// Folds an event into the state (`None` before the case's first event). `version` is the
/// event's version in the case's stream.
fn apply_event(
    state: Option<CaseState>,
    event: &CaseEvent,
    definitions: &super::workflow::DefinitionRegistry,
    version: Version,
) -> Option<CaseState> {
    let mut state = match (state, event) {
        (None, CaseEvent::Opened(e)) => CaseState {
            id: e.case,
            workflow: e.workflow.clone(),
            stage: e.stage.clone(),
            closed: false,
            unit: e.unit.clone(),
            lead: e.unit.clone(),
            co_handlers: BTreeSet::new(),
            dispatched_by: None,
            title: e.title.clone(),
            description: e.description.clone(),
            fields: e.fields.clone(),
            requester: e.requester,
            place: None,
            filed_by: e.filed_by.clone(),
            filed_as: e.filed_as.clone(),
            channel: e.channel,
            opened_at: e.at,
            updated_at: e.at,
            closed_at: None,
            rating: None,
            merged_into: None,
            duplicates: Vec::new(),
            deadline: None,
            deadlines_set: 0,
            deadlines_missed: 0,
            escalated_to: None,
            reopened: 0,
            version: Some(version),
        },
        (None, _) => return None,
        (Some(state), _) => state,
    };
    match event {
        CaseEvent::Opened(_) => {}
        CaseEvent::ActionTaken(e) => {
            state.stage = e.to.clone();
            for (name, value) in &e.fields {
                state.fields.insert(name.clone(), value.clone());
            }
            state.updated_at = e.at;
            let terminal = definitions
                .get(&state.workflow)
                .is_some_and(|d| d.is_terminal(&e.to));
            if terminal && !state.closed {
                state.closed_at = Some(e.at);
            }
            state.closed = terminal;
            if e.from != e.to {
                state.escalated_to = None;
            }
        }
        CaseEvent::LeadAssigned(e) => {
            state.dispatched_by = Some(e.by.clone());
            state.co_handlers.remove(&e.unit);
            state.lead = e.unit.clone();
        }
        CaseEvent::CoHandlerAdded(e) => {
            state.co_handlers.insert(e.unit.clone());
        }
        CaseEvent::ReturnedToSender(e) => {
            state.co_handlers.remove(&e.to);
            state.lead = e.to.clone();
            state.dispatched_by = None;
        }
        CaseEvent::SatisfactionRated(e) => state.rating = Some(e.rating),
        CaseEvent::MergedInto(e) => state.merged_into = Some(e.target),
        CaseEvent::DuplicateMerged(e) => {
            if !state.duplicates.contains(&e.duplicate) {
                state.duplicates.push(e.duplicate);
            }
        }
        CaseEvent::Reopened(e) => {
            state.reopened = e.count;
            state.closed = false;
            state.rating = None;
            state.lead = e.lead.clone();
            state.co_handlers.clear();
            state.dispatched_by = None;
            state.escalated_to = None;
        }
        CaseEvent::Migrated(e) => state.workflow = e.to.clone(),
        CaseEvent::DeadlineSet(e) => {
            state.deadlines_set = state.deadlines_set.max(e.seq);
            state.deadline = Some(ActiveDeadline::from_set(e));
        }
        CaseEvent::DeadlineRecomputed(e) => {
            if let Some(deadline) = state.deadline.as_mut() {
                deadline.recomputed(e);
            }
        }
        CaseEvent::DeadlineMet(e) => {
            if state.deadline.as_ref().is_some_and(|d| d.seq == e.seq) {
                state.deadline = None;
                state.escalated_to = None;
            }
        }
        CaseEvent::DeadlineMissed(e) => {
            state.deadlines_missed += 1;
            if state.deadline.as_ref().is_some_and(|d| d.seq == e.seq) {
                state.deadline = None;
                state.escalated_to = None;
            }
        }
        CaseEvent::DeadlineStepReached(e) => {
            if let Some(deadline) = state.deadline.as_mut().filter(|d| d.seq == e.seq) {
                deadline.reached.insert(e.step);
            }
            if e.step == LadderStep::Escalate {
                state.escalated_to = Some(e.unit.clone());
            }
        }
        CaseEvent::ContactViewed(_) => {}
        CaseEvent::PlaceRecorded(e) => state.place = Some(e.place.clone()),
    }
    state.version = Some(version);
    Some(state)
}
