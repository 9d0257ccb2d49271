//! Workflow definitions as data in the log: one stream, `workflows`, where an administrator
//! publishes a definition (TOML, or JSON turned into the same TOML) and every instance of the
//! store learns it, with no file at hand.
//!
//! The definitions the engine is configured with (the built-in loops, files an embedder
//! loads) are the base; a publication adds a version on top. A version is never changed once
//! published or loaded, and a new one must be higher than every version of its id the engine
//! knows, so that "the newest version" means the same on every instance. Cases stay pinned to
//! the version they were opened on; migrating one is a command on the case (`CaseMigrated`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::definition::{Definition, DefinitionError, WorkflowId};
use crate::clock::Timestamp;
use crate::domain::aggregate::{Aggregate, Decision, Fold};
use crate::domain::context::Context;
use crate::domain::events::domain_events;
use crate::domain::org::{roles, Acting, OrgChart};
use crate::domain::rejection::Rejection;
use crate::ids::{Role, StreamId, Version};

/// The stream's name.
pub const WORKFLOWS_STREAM: &str = "workflows";

/// The stream that holds the published definitions.
pub fn workflows_stream() -> StreamId {
    StreamId::new(WORKFLOWS_STREAM).expect("a valid stream id")
}

/// The longest definition a publication takes, in bytes of TOML (the largest built-in one is
/// under 12 KiB).
pub const DEFINITION_BYTES_MAX: usize = 256 * 1024;

/// A definition was published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowPublished {
    /// The workflow.
    pub workflow: WorkflowId,
    /// Its version.
    pub version: u32,
    /// The definition as TOML, exactly what the engine parsed and validated: an auditor reads
    /// what was published, and the format outlives the engine's structs.
    pub definition: String,
    /// When.
    pub at: Timestamp,
}

domain_events! {
    /// The events of the workflows stream.
    pub enum WorkflowEvent {
        /// A definition was published.
        Published(WorkflowPublished) = "WorkflowPublished" v 1,
    }
}

/// The published definitions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishedWorkflows {
    /// Every publication's TOML, by workflow and version, with when it was published.
    pub definitions: BTreeMap<(WorkflowId, u32), (String, Timestamp)>,
    /// The version of the stream this is as of.
    pub version: Option<Version>,
}

/// A command to the workflows stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkflowCommand {
    /// Publishes a definition written in TOML.
    Publish {
        /// The definition.
        toml: String,
    },
}

/// Who publishes definitions: the administrators of a top unit (definitions are the whole
/// store's, like the calendar), and the system (`civicflow serve --workflows DIR`).
const PUBLISHERS: &[&str] = &[roles::COMMUNITY_ADMIN];

fn check_publisher(ctx: &Context<'_>) -> Result<(), Rejection> {
    if ctx.acting.is_system() {
        return Ok(());
    }
    ctx.org.check_acting(ctx.acting)?;
    if !PUBLISHERS.contains(&ctx.acting.role.as_str()) {
        return Err(Rejection::RoleNotAllowed {
            role: ctx.acting.role.clone(),
            action: "publish a workflow".into(),
            allowed: PUBLISHERS
                .iter()
                .filter_map(|r| Role::new(*r).ok())
                .collect(),
        });
    }
    if let Some(parent) = ctx.org.parent(&ctx.acting.unit) {
        return Err(Rejection::OutOfScope {
            unit: ctx.acting.unit.clone(),
            action: "publish a workflow".into(),
            scope: "an administrator of a top unit (workflows are the whole store's)".into(),
            target: parent.clone(),
        });
    }
    Ok(())
}

/// The roles a definition may name: the built-in ones and those defined in the chart.
pub fn roles_in_force(org: &OrgChart) -> Vec<String> {
    org.roles()
        .into_iter()
        .map(|(role, _, _)| role.to_string())
        .collect()
}

/// Parses and validates `toml` against the roles in force.
///
/// # Errors
/// [`Rejection::Invalid`] naming the key at fault (`definition` when the problem is not
/// one key's).
pub fn parse(toml: &str, org: &OrgChart) -> Result<Definition, Rejection> {
    if toml.len() > DEFINITION_BYTES_MAX {
        return Err(Rejection::invalid(
            "definition",
            format!("a definition is at most {DEFINITION_BYTES_MAX} bytes of TOML"),
        ));
    }
    let roles = roles_in_force(org);
    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
    Definition::from_toml(toml, &roles).map_err(|e| definition_rejection(&e))
}

/// A definition's problem as a refusal naming the key at fault.
pub fn definition_rejection(error: &DefinitionError) -> Rejection {
    Rejection::invalid(
        error.key.clone().unwrap_or_else(|| "definition".to_owned()),
        format!("workflow {}: {}", error.workflow, error.problem),
    )
}

fn decide_events(
    state: &PublishedWorkflows,
    command: &WorkflowCommand,
    ctx: &Context<'_>,
) -> Result<Vec<WorkflowEvent>, Rejection> {
    match command {
        WorkflowCommand::Publish { toml } => {
            check_publisher(ctx)?;
            let definition = parse(toml, ctx.org)?;
            let reference = definition.reference();
            // The same version again: nothing to do when it is the same definition (a file
            // published at every start), refused when it differs.
            if let Some(known) = ctx.definitions.get(&reference) {
                if **known == definition {
                    return Ok(Vec::new());
                }
                return Err(Rejection::invalid(
                    "version",
                    format!(
                        "{reference} exists with other content; a published version never changes: give this one a higher version"
                    ),
                ));
            }
            let newest = ctx
                .definitions
                .latest(&definition.id)
                .map(|d| d.version)
                .into_iter()
                .chain(
                    state
                        .definitions
                        .keys()
                        .filter(|(id, _)| *id == definition.id)
                        .map(|(_, version)| *version),
                )
                .max();
            if let Some(newest) = newest.filter(|n| *n >= definition.version) {
                return Err(Rejection::invalid(
                    "version",
                    format!(
                        "{} is at version {newest}; a new version must be higher, not {}",
                        definition.id, definition.version
                    ),
                ));
            }
            let canonical = definition.to_toml().map_err(|e| definition_rejection(&e))?;
            Ok(vec![WorkflowEvent::Published(WorkflowPublished {
                workflow: definition.id.clone(),
                version: definition.version,
                definition: canonical,
                at: ctx.now,
            })])
        }
    }
}

/// The workflows stream.
#[derive(Debug, Clone, Copy)]
pub struct Workflows;

impl Aggregate for Workflows {
    type Id = ();
    type State = PublishedWorkflows;
    type Command = WorkflowCommand;
    type Event = WorkflowEvent;

    const KIND: &'static str = "workflows";

    fn stream(_: &()) -> Result<StreamId, Rejection> {
        Ok(workflows_stream())
    }

    /// Refused with the key at fault; the same definition published again changes nothing.
    fn decide(
        _: &(),
        state: &PublishedWorkflows,
        command: &WorkflowCommand,
        ctx: &Context<'_>,
    ) -> Result<Decision<Self>, Rejection> {
        decide_events(state, command, ctx).map(Decision::events)
    }

    fn apply(state: &mut PublishedWorkflows, event: &WorkflowEvent, fold: &Fold<'_>) {
        match event {
            WorkflowEvent::Published(e) => {
                state.definitions.insert(
                    (e.workflow.clone(), e.version),
                    (e.definition.clone(), e.at),
                );
            }
        }
        state.version = Some(fold.version);
    }

    /// Definitions are public to every valid grant, like `GET /api/v1/workflows`.
    fn may_see(_: &PublishedWorkflows, viewer: &Acting, org: &OrgChart) -> bool {
        org.check_acting(viewer).is_ok()
    }
}
