//! Why a command was refused.
//!
//! A refusal is an expected outcome of a command, not a failure of the engine: it is returned
//! as a value that says which actor, role, unit, stage or field is at fault and why, so that a
//! service can show it to the person who tried, and an auditor can see why nothing happened.

use std::fmt;

use crate::ids::{ActorId, Role, UnitId, Version};

/// A command the domain refused; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The actor does not hold this role at this unit.
    #[error("actor {actor} does not hold the role {role} at unit {unit}")]
    NotGranted {
        /// Who tried.
        actor: ActorId,
        /// The role they claimed.
        role: Role,
        /// The unit they claimed to act for.
        unit: UnitId,
    },
    /// The role may not take this action.
    #[error("the role {role} may not {action}; allowed: {}", list(allowed))]
    RoleNotAllowed {
        /// The role that tried.
        role: Role,
        /// The action.
        action: String,
        /// The roles that may.
        allowed: Vec<Role>,
    },
    /// The acting unit is outside the scope the action requires.
    #[error("unit {unit} may not {action} here: the action requires {scope}, and the case is with {target}")]
    OutOfScope {
        /// The unit the actor acts for.
        unit: UnitId,
        /// The action.
        action: String,
        /// What the action requires, in words.
        scope: String,
        /// The unit the case (or directive part) is with.
        target: UnitId,
    },
    /// A unit a command names (where to file a case, whom to hand it to) lies outside what
    /// the acting unit may reach.
    #[error("field {field}: {target} is out of reach of unit {unit}: {rule}")]
    OutOfReach {
        /// The unit the actor acts for.
        unit: UnitId,
        /// The field that names the unit.
        field: String,
        /// The unit named.
        target: UnitId,
        /// The rule, in words.
        rule: String,
    },
    /// The action is not valid in the current stage.
    #[error(
        "{action} is not possible in stage {stage}; possible now: {}",
        list(possible)
    )]
    ActionNotInStage {
        /// The action.
        action: String,
        /// The current stage.
        stage: String,
        /// The actions possible in this stage.
        possible: Vec<String>,
    },
    /// The workflow has no such action.
    #[error("workflow {workflow} has no action {action}")]
    UnknownAction {
        /// The workflow (`id@version`).
        workflow: String,
        /// The action.
        action: String,
    },
    /// A required field is missing.
    #[error("{action} needs the field {field}")]
    FieldMissing {
        /// The action (or `open`).
        action: String,
        /// The field.
        field: String,
    },
    /// A field is present but not acceptable.
    #[error("field {field}: {reason}")]
    FieldInvalid {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
    /// The caller worked from an older version of the aggregate.
    #[error("stale version: expected version {}, the current version is {}", show(*expected), show(*actual))]
    StaleVersion {
        /// The version the caller expected.
        expected: Option<Version>,
        /// The version now.
        actual: Option<Version>,
    },
    /// The case is closed; only reopening is possible.
    #[error("case {case} is closed; only a reopen action is possible")]
    CaseClosed {
        /// The case.
        case: String,
    },
    /// No workflow definition with this id (and version).
    #[error("unknown workflow {workflow}")]
    UnknownWorkflow {
        /// `id` or `id@version`.
        workflow: String,
    },
    /// Something the command refers to does not exist.
    #[error("{what} {id} does not exist")]
    NotFound {
        /// What kind of thing (`case`, `unit`, `actor`, `directive`, …).
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// Something the command would create exists already.
    #[error("{what} {id} exists already")]
    AlreadyExists {
        /// What kind of thing.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// The idempotency key was used before, by the same actor, for another request.
    #[error("idempotency key {key} was used before for another request; use a new key for a new request")]
    IdempotencyKeyReused {
        /// The key, as the caller gave it.
        key: String,
    },
    /// The command is not valid for another reason, named here.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field or subject at fault.
        field: String,
        /// Why.
        reason: String,
    },
}

impl Rejection {
    /// A generic refusal of `field` for `reason`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<crate::ids::InvalidValue> for Rejection {
    fn from(e: crate::ids::InvalidValue) -> Self {
        Self::FieldInvalid {
            field: e.field.to_owned(),
            reason: format!("{:?} {}", e.value, e.rule),
        }
    }
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "none".to_owned();
    }
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn show(version: Option<Version>) -> String {
    version.map_or_else(|| "none (no stream)".to_owned(), |v| v.to_string())
}
