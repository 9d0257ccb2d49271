//! Workflow definitions: the closed loops as data.
//!
//! A definition is stages, actions, roles and scopes, fields, deadlines and terminal stages
//! (see [`Definition`]). The [`DefinitionRegistry`] holds every version of every workflow the
//! engine knows; the built-in ones (the four loops of the seed) are TOML files compiled into
//! the crate from `crates/civicflow-core/workflows/`, and more can be loaded at start
//! (`engine::load_workflows`).
//!
//! The same definition can be built in Rust:
//!
//! ```
//! use civicflow_core::domain::fields::{FieldKind, FieldSpec};
//! use civicflow_core::domain::org::roles;
//! use civicflow_core::domain::workflow::*;
//! use civicflow_core::Role;
//!
//! let role = |r: &str| Role::new(r).expect("valid");
//! let definition = Definition {
//!     id: WorkflowId::new("lost-and-found")?,
//!     version: 1,
//!     name: "失物招领 lost and found".into(),
//!     description: String::new(),
//!     public: true,
//!     open: OpenRule { roles: vec![role(roles::RESIDENT)], scope: Scope::Any, fields: vec![] },
//!     initial_stage: "reported".into(),
//!     contact_roles: vec![role(roles::GRID_WORKER)],
//!     stages: vec![
//!         Stage { id: "reported".into(), name: String::new(), terminal: false,
//!                 deadline: Some(DeadlineRule { within: "3 working days".parse()?, remind_after: None,
//!                                               escalate: true, breach_after: None }) },
//!         Stage { id: "returned".into(), name: String::new(), terminal: true, deadline: None },
//!     ],
//!     actions: vec![Action {
//!         id: "hand_back".into(), name: String::new(), from: vec!["reported".into()],
//!         to: "returned".into(), roles: vec![role(roles::GRID_WORKER)], scope: Scope::Subtree,
//!         fields: vec![FieldSpec::new("note", FieldKind::Text, true)], effects: vec![],
//!     }],
//! };
//! let mut registry = DefinitionRegistry::built_in();
//! assert_eq!(registry.add(definition)?.to_string(), "lost-and-found@1");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod definition;
mod validate;

pub use definition::{
    Action, DeadlineRule, Definition, DefinitionError, DefinitionRef, Effect, OpenRule, Scope,
    Span, Stage, WorkflowId,
};

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::ids::Role;

/// The built-in workflows, as TOML, by file name.
pub const BUILT_IN: &[(&str, &str)] = &[
    (
        "service-request.toml",
        include_str!("../../../workflows/service-request.toml"),
    ),
    (
        "district-affairs.toml",
        include_str!("../../../workflows/district-affairs.toml"),
    ),
    (
        "consumer-dispute.toml",
        include_str!("../../../workflows/consumer-dispute.toml"),
    ),
    (
        "one-stop-errand.toml",
        include_str!("../../../workflows/one-stop-errand.toml"),
    ),
];

/// Every version of every workflow the engine knows.
#[derive(Debug, Clone, Default)]
pub struct DefinitionRegistry {
    definitions: BTreeMap<(WorkflowId, u32), Arc<Definition>>,
    known_roles: Vec<String>,
}

impl DefinitionRegistry {
    /// An empty registry that accepts the given roles (usually [`crate::domain::org::roles::ALL`]).
    pub fn new(known_roles: &[&str]) -> Self {
        Self {
            definitions: BTreeMap::new(),
            known_roles: known_roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    /// A registry with the built-in workflows and the built-in roles.
    ///
    /// # Panics
    /// Never: the built-in definitions are checked by the crate's tests.
    pub fn built_in() -> Self {
        let mut registry = Self::new(crate::domain::org::roles::ALL);
        for (file, text) in BUILT_IN {
            if let Err(e) = registry.load_toml(text) {
                panic!("built-in workflow {file} is invalid: {e}");
            }
        }
        registry
    }

    fn roles(&self) -> Vec<&str> {
        self.known_roles.iter().map(String::as_str).collect()
    }

    /// Parses, validates and adds a definition written in TOML.
    ///
    /// # Errors
    /// [`DefinitionError`] when it does not parse or validate, or when that version of the
    /// workflow is already loaded with different content.
    pub fn load_toml(&mut self, text: &str) -> Result<DefinitionRef, DefinitionError> {
        let definition = Definition::from_toml(text, &self.roles())?;
        self.add(definition)
    }

    /// Validates and adds a definition built in Rust.
    ///
    /// # Errors
    /// As [`DefinitionRegistry::load_toml`].
    pub fn add(&mut self, definition: Definition) -> Result<DefinitionRef, DefinitionError> {
        definition.validate(&self.roles())?;
        let reference = definition.reference();
        let key = (definition.id.clone(), definition.version);
        if let Some(existing) = self.definitions.get(&key) {
            if **existing != definition {
                return Err(DefinitionError {
                    workflow: reference.to_string(),
                    problem: "this version is already loaded with different content; a released version is never changed, give the new one a new version number".into(),
                });
            }
            return Ok(reference);
        }
        self.definitions.insert(key, Arc::new(definition));
        Ok(reference)
    }

    /// A definition by id and version.
    pub fn get(&self, reference: &DefinitionRef) -> Option<&Arc<Definition>> {
        self.definitions
            .get(&(reference.id.clone(), reference.version))
    }

    /// The newest version of a workflow.
    pub fn latest(&self, id: &WorkflowId) -> Option<&Arc<Definition>> {
        self.definitions
            .range((id.clone(), 0)..=(id.clone(), u32::MAX))
            .next_back()
            .map(|(_, d)| d)
    }

    /// The newest version of every workflow.
    pub fn latest_all(&self) -> Vec<&Arc<Definition>> {
        let mut out: Vec<&Arc<Definition>> = Vec::new();
        for ((id, _), definition) in &self.definitions {
            match out.last() {
                Some(last) if &last.id == id => {
                    out.pop();
                    out.push(definition);
                }
                _ => out.push(definition),
            }
        }
        out
    }

    /// Every loaded definition, every version.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Definition>> {
        self.definitions.values()
    }

    /// Whether `role` means anything here: a built-in role, or one a loaded definition lets
    /// open a case or take an action.
    pub fn knows_role(&self, role: &Role) -> bool {
        crate::domain::org::roles::ALL.contains(&role.as_str())
            || self.all().any(|d| {
                d.open.roles.contains(role) || d.actions.iter().any(|a| a.roles.contains(role))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::org::roles;

    #[test]
    fn the_built_in_workflows_load() {
        let registry = DefinitionRegistry::built_in();
        let ids: Vec<String> = registry
            .latest_all()
            .iter()
            .map(|d| d.reference().to_string())
            .collect();
        assert_eq!(
            ids,
            [
                "consumer-dispute@1",
                "district-affairs@1",
                "one-stop-errand@1",
                "service-request@1"
            ]
        );
        let service = registry
            .latest(&WorkflowId::new("service-request").expect("valid"))
            .expect("loaded");
        assert!(service.public);
        assert_eq!(service.initial_stage, "received");
    }

    #[test]
    fn definitions_survive_a_toml_round_trip() {
        for (file, text) in BUILT_IN {
            let definition = Definition::from_toml(text, roles::ALL).expect(file);
            let again =
                Definition::from_toml(&definition.to_toml().expect(file), roles::ALL).expect(file);
            assert_eq!(definition, again, "{file}");
        }
    }

    fn service_request() -> Definition {
        Definition::from_toml(BUILT_IN[0].1, roles::ALL).expect("valid")
    }

    fn problem(definition: &Definition) -> String {
        definition
            .validate(roles::ALL)
            .expect_err("invalid")
            .to_string()
    }

    #[test]
    fn validation_names_the_problem() {
        let mut d = service_request();
        d.stages.push(Stage {
            id: "limbo".into(),
            name: String::new(),
            terminal: false,
            deadline: None,
        });
        assert!(
            problem(&d).contains("stage limbo is unreachable from the initial stage received"),
            "{}",
            problem(&d)
        );

        let mut d = service_request();
        for stage in &mut d.stages {
            stage.terminal = false;
        }
        d.actions.retain(|a| !a.effects.contains(&Effect::Reopen));
        assert!(
            problem(&d).contains("no stage is terminal"),
            "{}",
            problem(&d)
        );

        let mut d = service_request();
        d.actions[0]
            .roles
            .push(crate::ids::Role::new("wizard").expect("valid"));
        assert!(
            problem(&d).contains("unknown role wizard"),
            "{}",
            problem(&d)
        );

        let mut d = service_request();
        d.actions[0].effects = vec![Effect::AssignLead("team".into())];
        assert!(
            problem(&d).contains("uses the field team, which the action does not declare"),
            "{}",
            problem(&d)
        );

        let mut d = service_request();
        d.actions[0].to = "nowhere".into();
        assert!(
            problem(&d).contains("leads to the unknown stage nowhere"),
            "{}",
            problem(&d)
        );

        let mut d = service_request();
        d.stages.push(Stage {
            id: "stuck".into(),
            name: String::new(),
            terminal: false,
            deadline: None,
        });
        let mut trap = d.actions[0].clone();
        trap.id = "get_stuck".into();
        trap.to = "stuck".into();
        d.actions.push(trap);
        assert!(
            problem(&d).contains("no terminal stage can be reached from stage stuck"),
            "{}",
            problem(&d)
        );

        let mut d = service_request();
        let reopen = d
            .actions
            .iter_mut()
            .find(|a| a.id == "reopen")
            .expect("reopen");
        reopen.effects.clear();
        assert!(
            problem(&d).contains("closed case takes no action but reopen"),
            "{}",
            problem(&d)
        );

        let mut d = service_request();
        d.stages[0].deadline.as_mut().expect("has one").remind_after =
            Some(Span::WorkingMinutes(600));
        assert!(problem(&d).contains("reminder"), "{}", problem(&d));
    }

    #[test]
    fn toml_errors_name_the_workflow() {
        let text = BUILT_IN[0]
            .1
            .replace("scope = \"lead\"", "scope = \"everywhere\"");
        let err = Definition::from_toml(&text, roles::ALL).expect_err("bad scope");
        assert!(
            err.to_string().starts_with("workflow service-request@1:"),
            "{err}"
        );
        assert!(err.to_string().contains("everywhere"), "{err}");
    }

    #[test]
    fn a_released_version_cannot_change() {
        let mut registry = DefinitionRegistry::built_in();
        let mut changed = service_request();
        changed.name = "changed".into();
        let err = registry
            .add(changed.clone())
            .expect_err("same version, other content");
        assert!(err.problem.contains("never changed"), "{err}");
        changed.version = 2;
        assert_eq!(
            registry.add(changed).map(|r| r.to_string()),
            Ok("service-request@2".to_owned())
        );
        let id = WorkflowId::new("service-request").expect("valid");
        assert_eq!(registry.latest(&id).map(|d| d.version), Some(2));
    }
}
