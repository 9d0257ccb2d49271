//! A unit's administrative history: every change of the org chart that concerns it (created,
//! renamed, moved, retired, roles granted and revoked there), each with who made it (actor,
//! role, unit), when, and where it sits in the log. What an auditor asks of the chart, as the
//! case audit answers for a case.

use super::load::{self, Loaded};
use super::{read, Engine, SubmitError};
use crate::domain::org::{org_stream, roles, Acting, Org, OrgEvent};
use crate::domain::Rejection;
use crate::event::RecordedEvent;
use crate::ids::UnitId;

/// One change of the org chart, decoded, with its log metadata.
#[derive(Debug, Clone)]
pub struct OrgHistoryEntry {
    /// The stored event (position, version, time, actor, hash, …).
    pub recorded: RecordedEvent,
    /// The change.
    pub event: OrgEvent,
    /// What happened, in words.
    pub summary: String,
}

/// Whether `event` concerns `unit`.
fn concerns(event: &OrgEvent, unit: &UnitId) -> bool {
    match event {
        OrgEvent::UnitCreated(e) => &e.unit == unit || e.parent.as_ref() == Some(unit),
        OrgEvent::UnitRenamed(e) => &e.unit == unit,
        OrgEvent::UnitMoved(e) => &e.unit == unit || &e.to == unit || e.from.as_ref() == Some(unit),
        OrgEvent::UnitRetired(e) => &e.unit == unit,
        OrgEvent::RoleGranted(e) => &e.unit == unit,
        OrgEvent::RoleRevoked(e) => &e.unit == unit,
        OrgEvent::ActorRegistered(_) | OrgEvent::RoleDefined(_) => false,
    }
}

/// A change in words.
fn summarize(event: &OrgEvent) -> String {
    match event {
        OrgEvent::UnitCreated(e) => match &e.parent {
            Some(parent) => format!(
                "{} {} created ({}) under {parent}",
                e.unit,
                e.name,
                e.tier.as_str()
            ),
            None => format!(
                "{} {} created ({}) at the top",
                e.unit,
                e.name,
                e.tier.as_str()
            ),
        },
        OrgEvent::UnitRenamed(e) => format!("{} renamed {} → {}", e.unit, e.from, e.to),
        OrgEvent::UnitMoved(e) => format!(
            "{} moved from {} to {}",
            e.unit,
            e.from.as_ref().map_or("the top", UnitId::as_str),
            e.to
        ),
        OrgEvent::UnitRetired(e) => format!("{} retired", e.unit),
        OrgEvent::RoleGranted(e) => format!("{} granted {} at {}", e.actor, e.role, e.unit),
        OrgEvent::RoleRevoked(e) => format!("{} no longer {} at {}", e.actor, e.role, e.unit),
        OrgEvent::ActorRegistered(e) => format!("{} registered ({})", e.actor, e.name),
        OrgEvent::RoleDefined(e) => format!("role {} defined ({})", e.role, e.name),
    }
}

impl Engine {
    /// The changes of the org chart that concern `unit` (it, its children's creation and
    /// moves, the roles granted and revoked there), oldest first, as `acting` may see them:
    /// administrators of the unit or a unit above it, and auditors.
    ///
    /// # Errors
    /// [`SubmitError::Rejected`] with `NotFound` for an unknown unit or one outside `acting`'s
    /// scope; [`SubmitError::Engine`] when the log cannot be read.
    pub fn unit_history(
        &self,
        acting: &Acting,
        unit: &UnitId,
    ) -> Result<Vec<OrgHistoryEntry>, SubmitError> {
        {
            let org = &read(&self.org).state;
            let auditor =
                acting.role.as_str() == roles::AUDITOR && org.check_acting(acting).is_ok();
            let sees = org.unit(unit).is_some()
                && (acting.is_system()
                    || auditor
                    || (org.check_acting(acting).is_ok() && org.in_scope(acting, unit)));
            if !sees {
                return Err(Rejection::NotFound {
                    what: "unit",
                    id: unit.to_string(),
                }
                .into());
            }
        }
        let mut entries = Vec::new();
        let mut loaded = Loaded::<Org>::default();
        load::fold_into(
            &*self.log,
            &self.definitions.current(),
            &org_stream(),
            &mut loaded,
            |recorded, event: &OrgEvent| {
                if concerns(event, unit) {
                    entries.push(OrgHistoryEntry {
                        recorded: recorded.clone(),
                        event: event.clone(),
                        summary: summarize(event),
                    });
                }
                true
            },
        )?;
        Ok(entries)
    }
}
