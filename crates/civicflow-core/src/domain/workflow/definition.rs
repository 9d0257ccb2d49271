//! The shape of a workflow definition: stages, actions, who may take them, the fields they
//! need, deadlines with their escalation ladder, terminal stages. Written in TOML or built in
//! Rust with these same types; [`Definition::validate`] checks either.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use crate::calendar::Span;
use crate::domain::fields::FieldSpec;
use crate::ids::{InvalidValue, Role};

/// A workflow's id: a slug such as `service-request`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkflowId(String);

impl WorkflowId {
    /// Validates a workflow id: 1 to 64 lowercase letters, digits and `-`.
    ///
    /// # Errors
    /// [`InvalidValue`] naming the rule.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidValue> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(id))
        } else {
            Err(InvalidValue::new(
                "workflow id",
                &id,
                "must be 1 to 64 lowercase letters, digits and -",
            ))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for WorkflowId {
    type Error = InvalidValue;
    fn try_from(id: String) -> Result<Self, InvalidValue> {
        Self::new(id)
    }
}

impl From<WorkflowId> for String {
    fn from(id: WorkflowId) -> String {
        id.0
    }
}

impl fmt::Display for WorkflowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A definition and version, as a case pins it: `service-request@1`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DefinitionRef {
    /// The workflow.
    pub id: WorkflowId,
    /// The version.
    pub version: u32,
}

impl fmt::Display for DefinitionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.version)
    }
}

/// The deadline of a stage and its escalation ladder: remind, escalate one tier up at the
/// deadline, breach after a grace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlineRule {
    /// How long the stage may take, from entering it.
    pub within: Span,
    /// When to remind the responsible unit (催办), counted from entering the stage; must come
    /// before the deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remind_after: Option<Span>,
    /// Whether to escalate one tier up (督办) at the deadline. On unless set false.
    #[serde(default = "yes")]
    pub escalate: bool,
    /// When the deadline counts as breached, counted from the deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breach_after: Option<Span>,
}

fn yes() -> bool {
    true
}

/// A stage of a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// Its id (a slug).
    pub id: String,
    /// Its name for people.
    #[serde(default)]
    pub name: String,
    /// Whether the case is closed in this stage.
    #[serde(default)]
    pub terminal: bool,
    /// The deadline for leaving it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DeadlineRule>,
}

/// Which units may take an action, relative to the case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Any unit (intake from the public, departments called in).
    Any,
    /// The case's lead unit or a unit above it.
    Subtree,
    /// Exactly the lead unit.
    Lead,
    /// The lead unit or a co-handling unit (主办 or 协办).
    Handler,
    /// The person who asked (acting as a resident).
    Requester,
}

impl Scope {
    /// What the scope means, in words (for refusals).
    pub fn describe(self) -> &'static str {
        match self {
            Scope::Any => "any unit",
            Scope::Subtree => "the lead unit or a unit above it",
            Scope::Lead => "the lead unit itself",
            Scope::Handler => "the lead unit or a co-handling unit",
            Scope::Requester => "the person who asked",
        }
    }
}

/// What an action does besides moving the stage, beyond what the definition's stages say.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// The unit in this field becomes the lead (派单 dispatch, 改派 reassign).
    AssignLead(String),
    /// The unit in this field joins as a co-handling unit (协办).
    AddCoHandler(String),
    /// The case goes back to the unit that dispatched it (退单 send back).
    ReturnToSender,
    /// The rating in this field is the requester's satisfaction (评价).
    Rate(String),
    /// The case is a duplicate of the case in this field (并单 merge).
    MergeInto(String),
    /// The case is opened again (the requester was not satisfied).
    Reopen,
    /// The acting unit becomes the lead (a volunteer or grid worker takes the case on).
    TakeLead,
}

/// A transition between stages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// Its id (a slug), what commands name.
    pub id: String,
    /// Its name for people.
    #[serde(default)]
    pub name: String,
    /// The stages it can be taken in.
    pub from: Vec<String>,
    /// The stage it leads to.
    pub to: String,
    /// The roles that may take it.
    pub roles: Vec<Role>,
    /// Which units may take it.
    pub scope: Scope,
    /// The fields it takes.
    #[serde(default)]
    pub fields: Vec<FieldSpec>,
    /// What else it does.
    #[serde(default)]
    pub effects: Vec<Effect>,
}

/// Who may open a case of this workflow and what they must give.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenRule {
    /// The roles that may open one.
    pub roles: Vec<Role>,
    /// `any` (the public) or `subtree` (a unit for itself or a unit below it).
    pub scope: Scope,
    /// The fields asked at intake, besides title and description (Open311 attributes).
    #[serde(default)]
    pub fields: Vec<FieldSpec>,
}

/// A workflow definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// Its id.
    pub id: WorkflowId,
    /// Its version; a new version affects new cases only.
    pub version: u32,
    /// Its name for people.
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Whether the public may file requests of this workflow (Open311 services).
    #[serde(default)]
    pub public: bool,
    /// Opening a case.
    pub open: OpenRule,
    /// The stage a case starts in.
    pub initial_stage: String,
    /// The roles that may see requesters' contact data unmasked.
    #[serde(default)]
    pub contact_roles: Vec<Role>,
    /// The stages.
    pub stages: Vec<Stage>,
    /// The actions.
    pub actions: Vec<Action>,
}

impl Definition {
    /// `id@version`.
    pub fn reference(&self) -> DefinitionRef {
        DefinitionRef {
            id: self.id.clone(),
            version: self.version,
        }
    }

    /// A stage by id.
    pub fn stage(&self, id: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.id == id)
    }

    /// Whether Open311's civic apps may file requests of it: its opening rule lets the
    /// `open311_client` role open a case (then it is served as an Open311 service).
    pub fn open_to_open311(&self) -> bool {
        self.open
            .roles
            .iter()
            .any(|r| r.as_str() == crate::domain::org::roles::OPEN311_CLIENT)
    }

    /// An action by id.
    pub fn action(&self, id: &str) -> Option<&Action> {
        self.actions.iter().find(|a| a.id == id)
    }

    /// The actions that can be taken in `stage`.
    pub fn actions_from<'a>(&'a self, stage: &str) -> impl Iterator<Item = &'a Action> + 'a {
        let stage = stage.to_owned();
        self.actions.iter().filter(move |a| a.from.contains(&stage))
    }

    /// Whether `stage` is terminal.
    pub fn is_terminal(&self, stage: &str) -> bool {
        self.stage(stage).is_some_and(|s| s.terminal)
    }

    /// Parses a definition from TOML and validates it against the known roles.
    ///
    /// # Errors
    /// [`DefinitionError`] naming the workflow (when known) and the problem.
    pub fn from_toml(text: &str, known_roles: &[&str]) -> Result<Self, DefinitionError> {
        let definition: Definition = toml::from_str(text).map_err(|e| DefinitionError {
            workflow: workflow_name_hint(text),
            problem: e.to_string().trim().to_owned(),
            key: key_of_parse_error(e.message()),
        })?;
        definition.validate(known_roles)?;
        Ok(definition)
    }

    /// The definition as TOML (what [`Definition::from_toml`] reads).
    ///
    /// # Errors
    /// [`DefinitionError`] if serialization fails (it does not for valid definitions).
    pub fn to_toml(&self) -> Result<String, DefinitionError> {
        toml::to_string(self).map_err(|e| DefinitionError {
            workflow: self.reference().to_string(),
            problem: e.to_string(),
            key: None,
        })
    }
}

/// What is wrong with a definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("workflow {workflow}: {problem}")]
pub struct DefinitionError {
    /// `id@version`, or what could be read of it.
    pub workflow: String,
    /// The problem, naming the stage, action, role or field.
    pub problem: String,
    /// The key at fault as the TOML writes it (`version`, `stages.<id>.deadline`,
    /// `actions.<id>.roles`), when the problem is one key's.
    pub key: Option<String>,
}

/// The key a parse error names (`missing field `name``, `unknown field `stage``), when it
/// names one.
fn key_of_parse_error(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    let key = &message[start..end];
    (!key.is_empty() && message.contains("field")).then(|| key.to_owned())
}

/// The id and version from TOML that does not parse as a definition, for the error message.
fn workflow_name_hint(text: &str) -> String {
    let value: Result<toml::Table, _> = text.parse();
    match value {
        Ok(table) => {
            let id = table
                .get("id")
                .and_then(|v| v.as_str())
                .unwrap_or("(no id)");
            match table.get("version").and_then(toml::Value::as_integer) {
                Some(v) => format!("{id}@{v}"),
                None => id.to_owned(),
            }
        }
        Err(_) => "(unreadable TOML)".to_owned(),
    }
}
