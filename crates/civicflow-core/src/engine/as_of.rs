//! A case as it was: after a version of its stream, or as of a moment. What an auditor asks
//! when a step is questioned ("what did the case look like when the grid worker signed for
//! it?"). Read by folding a prefix of the case's stream; nothing is written.

use super::load::{self, Loaded};
use super::{read, CaseView, Engine, SubmitError};
use crate::calendar::Zone;
use crate::clock::Timestamp;
use crate::domain::aggregate::Aggregate;
use crate::domain::case::{Case, CaseState};
use crate::domain::org::Acting;
use crate::domain::Rejection;
use crate::ids::{CaseId, Version};

/// Which past state of a case to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// After the event at this version of the case's stream.
    Version(Version),
    /// After the events recorded at or before this moment.
    Time(Timestamp),
}

/// A case as it was, as a caller sees it ([`Engine::case_as_of`]).
#[derive(Debug, Clone)]
pub struct CaseThen {
    /// The case then. Its `available_actions` is empty: nobody acts on a past state, and
    /// what the caller may do now is the current case's to say.
    pub view: CaseView,
    /// The case's version now, so a reader can tell a past state from the present one.
    pub current_version: Version,
}

impl Engine {
    /// A case as it was after a version of its stream, or as of a moment, as `acting` sees
    /// it: the state then, the definition it ran on then, and the requester's contact data
    /// masked as it is now (the vault keeps no history; an erased person stays erased).
    ///
    /// Whether `acting` sees the case at all is decided on the case as it is *now*, whatever
    /// moment is asked for: a unit that once led a case and no longer does may not read its
    /// past through this door, and a caller who may see it now sees its whole past, as its
    /// history shows them anyway.
    ///
    /// # Errors
    /// [`SubmitError::Rejected`] with `NotFound` for a case `acting` may not see now, or for a
    /// moment before the case was opened (the case did not exist yet); with `Invalid` on
    /// `version` for a version past the case's current one (no such state has existed).
    pub fn case_as_of(
        &self,
        acting: &Acting,
        id: CaseId,
        as_of: AsOf,
    ) -> Result<CaseThen, SubmitError> {
        let (state, current_version) = self.state_then(acting, id, as_of)?;
        let definition = self
            .definitions
            .current()
            .get(&state.workflow)
            .cloned()
            .ok_or_else(|| Rejection::UnknownWorkflow {
                workflow: state.workflow.to_string(),
            })?;
        let contact = self.masked_contact(state.requester)?;
        Ok(CaseThen {
            view: CaseView {
                state,
                definition,
                available_actions: Vec::new(),
                contact,
            },
            current_version,
        })
    }

    /// A case's state as of a version of its stream, as `acting` sees it.
    ///
    /// # Errors
    /// As [`Engine::case_as_of`].
    pub fn case_at_version(
        &self,
        acting: &Acting,
        id: CaseId,
        version: Version,
    ) -> Result<CaseState, SubmitError> {
        Ok(self.state_then(acting, id, AsOf::Version(version))?.0)
    }

    /// A case's state as of a moment (the events recorded at or before it), as `acting` sees
    /// it.
    ///
    /// # Errors
    /// As [`Engine::case_as_of`].
    pub fn case_at_time(
        &self,
        acting: &Acting,
        id: CaseId,
        at: Timestamp,
    ) -> Result<CaseState, SubmitError> {
        Ok(self.state_then(acting, id, AsOf::Time(at))?.0)
    }

    /// The case's state as of `as_of` and its version now.
    fn state_then(
        &self,
        acting: &Acting,
        id: CaseId,
        as_of: AsOf,
    ) -> Result<(CaseState, Version), SubmitError> {
        let stream = id.stream();
        let now = load::load::<Case>(&*self.log, &self.definitions.current(), &stream)?;
        let current = now
            .version
            .filter(|_| Case::may_see(&now.state, acting, &read(&self.org).state))
            .ok_or_else(|| Rejection::NotFound {
                what: "case",
                id: id.to_string(),
            })?;
        if let AsOf::Version(version) = as_of {
            // Folding would stop at the last event and answer today's state as if it were
            // the one asked for; a version that never existed is the caller's mistake.
            if version > current {
                return Err(Rejection::invalid(
                    "version",
                    format!(
                        "case {id} is at version {current}; ask for a version from 1 to {current}"
                    ),
                )
                .into());
            }
            if version == current {
                return now
                    .state
                    .map(|state| (state, current))
                    .ok_or_else(|| not_opened(id, as_of, self.calendar().zone()).into());
            }
        }
        let mut then = Loaded::<Case>::default();
        // A prefix of the stream: the fold ends at the first event after the moment. The log
        // never stamps backwards, so that is every event recorded at or before it; and were
        // a stored time ever out of order, a prefix is still a state the case really had.
        load::fold_into(
            &*self.log,
            &self.definitions.current(),
            &stream,
            &mut then,
            |recorded, _| match as_of {
                AsOf::Version(version) => recorded.version <= version,
                AsOf::Time(at) => recorded.recorded_at <= at,
            },
        )?;
        then.state
            .map(|state| (state, current))
            .ok_or_else(|| not_opened(id, as_of, self.calendar().zone()).into())
    }
}

/// A moment before the case's first event: it did not exist yet (the moment written in
/// `zone`, the calendar's).
fn not_opened(id: CaseId, as_of: AsOf, zone: &Zone) -> Rejection {
    Rejection::NotFound {
        what: "case",
        id: match as_of {
            AsOf::Time(at) => format!("{id} as of {}", zone.format(at)),
            AsOf::Version(version) => format!("{id} at version {version}"),
        },
    }
}
