//! The workflow definitions in force: the configuration's (the built-in loops and files an
//! embedder loads) with every definition published in the log's `workflows` stream on top.
//!
//! Like the calendar in force (`calendar.rs`), the engine keeps the stream folded and the
//! registry built from it, and catches both up whenever the stream is loaded: on a
//! publication, on open, on every scheduler pass (so an instance learns what another
//! published on a shared log), and before a case names a workflow this instance does not know
//! yet. The registry is shared with the read models ([`Definitions`]), which fold cases with
//! it.

use std::sync::RwLock;

use super::execute::{Executed, How, Stored, Target};
use super::load::Loaded;
use super::{Engine, EngineError, Outcome, SubmitError};
use crate::clock::Timestamp;
use crate::domain::org::{Acting, OrgChart};
use crate::domain::workflow::published::{
    workflows_stream, PublishedWorkflows, WorkflowCommand, Workflows,
};
use crate::domain::workflow::{Definition, DefinitionRef, Definitions, WorkflowId};

/// The engine's copy of the workflows stream.
#[derive(Debug, Default)]
pub(super) struct WorkflowsCache {
    pub(super) stream: RwLock<Loaded<Workflows>>,
}

/// Where a version of a workflow comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkflowOrigin {
    /// The engine's configuration: built in, or loaded from a file by the embedder.
    Configured,
    /// Published in the log.
    Published {
        /// When.
        at: Timestamp,
        /// Who published it (actor, role, unit), from the event's metadata.
        by: crate::ids::Actor,
    },
}

/// One version of a workflow, as [`Engine::workflow_versions`] lists it.
#[derive(Debug, Clone)]
pub struct WorkflowVersion {
    /// The definition.
    pub definition: std::sync::Arc<Definition>,
    /// Where it comes from.
    pub origin: WorkflowOrigin,
    /// Whether new cases get it (the highest version of its id).
    pub latest: bool,
}

/// Teaches `definitions` what the stream holds that it does not know yet, with the roles the
/// chart defines. A publication that no longer parses or validates (which the engine refused
/// before publishing) is left out rather than stopping the engine; `Err` names it for the
/// caller that wants to know.
pub(super) fn learn(
    definitions: &Definitions,
    org: &OrgChart,
    published: &PublishedWorkflows,
) -> Result<(), String> {
    let current = definitions.current();
    let new: Vec<(&(WorkflowId, u32), &String)> = published
        .definitions
        .iter()
        .filter(|((id, version), _)| {
            current
                .get(&DefinitionRef {
                    id: id.clone(),
                    version: *version,
                })
                .is_none()
        })
        .map(|(key, (toml, _))| (key, toml))
        .collect();
    if new.is_empty() {
        return Ok(());
    }
    let mut problems = Vec::new();
    definitions
        .update(|registry| -> Result<(), ()> {
            for role in org.defined_roles() {
                registry.allow_role(role.as_str());
            }
            for ((id, version), toml) in &new {
                if let Err(e) = registry.load_toml(toml) {
                    problems.push(format!("{id}@{version}: {e}"));
                }
            }
            Ok(())
        })
        .ok();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

impl Engine {
    /// Reads what the workflows stream gained since the engine last looked, and learns the
    /// definitions it did not know.
    pub(super) fn refresh_workflows(&self) -> Result<(), EngineError> {
        let loaded = self.load::<Workflows>(&workflows_stream())?;
        let org = self.org();
        // A definition that no longer validates was refused before it was published; it is
        // left out (its cases answer `UnknownWorkflow`) rather than stopping every command.
        let _ = learn(&self.definitions, &org, &loaded.state);
        Ok(())
    }

    /// Publishes a workflow definition written in TOML.
    pub(super) fn publish_workflow(
        &self,
        acting: &Acting,
        toml: String,
        how: &How,
    ) -> Result<Outcome, SubmitError> {
        self.refresh_workflows()?;
        let command = WorkflowCommand::Publish { toml };
        let done: Executed<Workflows> =
            self.execute::<Workflows>(acting, Target::Existing(()), &command, how, None)?;
        let _ = learn(&self.definitions, &self.org(), &done.state);
        Ok(done.outcome(&command))
    }

    /// Every version of the workflow `id` the engine knows, oldest first, with where each
    /// comes from; empty when it knows none.
    ///
    /// # Errors
    /// [`EngineError`] when the workflows stream cannot be read.
    pub fn workflow_versions(&self, id: &WorkflowId) -> Result<Vec<WorkflowVersion>, EngineError> {
        self.refresh_workflows()?;
        // Who published each version: the events' metadata (the stream is small: one event
        // per publication).
        let mut by = std::collections::BTreeMap::new();
        let mut loaded = Loaded::<Workflows>::default();
        super::load::fold_into(
            &*self.log,
            &self.definitions.current(),
            &workflows_stream(),
            &mut loaded,
            |recorded, event: &crate::domain::workflow::published::WorkflowEvent| {
                let crate::domain::workflow::published::WorkflowEvent::Published(e) = event;
                by.insert(
                    (e.workflow.clone(), e.version),
                    (e.at, recorded.actor.clone()),
                );
                true
            },
        )?;
        let registry = self.definitions.current();
        let latest = registry.latest(id).map(|d| d.version);
        Ok(registry
            .all()
            .filter(|d| &d.id == id)
            .map(|definition| WorkflowVersion {
                origin: by.get(&(definition.id.clone(), definition.version)).map_or(
                    WorkflowOrigin::Configured,
                    |(at, actor)| WorkflowOrigin::Published {
                        at: *at,
                        by: actor.clone(),
                    },
                ),
                latest: latest == Some(definition.version),
                definition: definition.clone(),
            })
            .collect())
    }
}

impl Stored for Workflows {
    fn cache(engine: &Engine) -> Option<&RwLock<Loaded<Self>>> {
        Some(&engine.workflows.stream)
    }

    fn outcome(done: &Executed<Self>, command: &WorkflowCommand) -> Outcome {
        let WorkflowCommand::Publish { toml } = command;
        // The id and version the command named (it parsed, or it would have been refused).
        let (workflow, version) = toml::from_str::<Definition>(toml)
            .map(|d| (d.id.to_string(), d.version))
            .unwrap_or_default();
        Outcome::Workflow {
            workflow,
            version,
            events: done.events,
            position: done.position,
        }
    }
}

/// The definitions in force in a stopped store: `base` (the configuration's) with every
/// definition published in its log, for tools that fold cases without opening an engine
/// (`civicflow audit`, `civicflow rebuild`).
///
/// # Errors
/// [`EngineError`] when the log cannot be read, or a published definition does not load.
pub fn definitions_in_force(
    log: &dyn crate::store::EventStore,
    base: crate::domain::workflow::DefinitionRegistry,
) -> Result<crate::domain::workflow::DefinitionRegistry, EngineError> {
    let org = super::load::load::<crate::domain::org::Org>(
        log,
        &base,
        &crate::domain::org::org_stream(),
    )?;
    let published = super::load::load::<Workflows>(log, &base, &workflows_stream())?;
    let definitions = Definitions::new(base);
    learn(&definitions, &org.state, &published.state).map_err(|problem| {
        EngineError::Config(format!(
            "a workflow definition published in the log does not load: {problem}"
        ))
    })?;
    Ok(crate::domain::workflow::DefinitionRegistry::clone(
        &definitions.current(),
    ))
}
