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
pub mod published;
mod validate;

pub use definition::{
    Action, DeadlineRule, Definition, DefinitionError, DefinitionRef, Effect, OpenRule, Scope,
    Span, Stage, WorkflowId,
};

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

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

    /// Accepts `role` in the definitions added from now on: a role defined in the org chart
    /// (`RoleDefined`), which a workflow may name like a built-in one.
    pub fn allow_role(&mut self, role: &str) {
        if !self.known_roles.iter().any(|r| r == role) {
            self.known_roles.push(role.to_owned());
        }
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
                    key: Some("version".into()),
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

/// The registry in force, shared by the engine and the read models: the base (the built-in
/// definitions and those an embedder loads) with every definition published in the log's
/// `workflows` stream on top. A publication replaces the shared registry with a copy that has
/// one more definition (the copy shares every definition's `Arc`), so that a reader holds a
/// consistent registry for as long as it keeps the one [`Definitions::current`] gave it.
#[derive(Debug, Clone, Default)]
pub struct Definitions(Arc<RwLock<Arc<DefinitionRegistry>>>);

impl Definitions {
    /// A shared registry starting from `registry`.
    pub fn new(registry: DefinitionRegistry) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(registry))))
    }

    /// The registry now.
    pub fn current(&self) -> Arc<DefinitionRegistry> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Changes the registry with `change` (applied to a copy, which replaces it when `change`
    /// succeeds; a failed change leaves the registry as it was).
    ///
    /// # Errors
    /// What `change` returns.
    pub fn update<T, E>(
        &self,
        change: impl FnOnce(&mut DefinitionRegistry) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut shared = self.0.write().unwrap_or_else(PoisonError::into_inner);
        let mut copy = DefinitionRegistry::clone(&shared);
        let out = change(&mut copy)?;
        *shared = Arc::new(copy);
        Ok(out)
    }
}

impl From<DefinitionRegistry> for Definitions {
    fn from(registry: DefinitionRegistry) -> Self {
        Self::new(registry)
    }
}

impl From<Arc<DefinitionRegistry>> for Definitions {
    fn from(registry: Arc<DefinitionRegistry>) -> Self {
        Self(Arc::new(RwLock::new(registry)))
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

/// `docs/workflows.md` is true: its examples load, its refused examples are refused with the
/// error it gives, the messages of its "Refused with" columns are the ones loading produces
/// (all of them), and its Rust example is the one run here.
#[cfg(test)]
mod page {
    use super::*;

    const PAGE: &str = include_str!("../../../../../docs/workflows.md");

    /// The page's fenced code blocks: the info string and the text.
    fn blocks() -> Vec<(String, String)> {
        let mut blocks = Vec::new();
        let mut open: Option<(String, String)> = None;
        for line in PAGE.lines() {
            let fence = line.strip_prefix("```");
            match open.take() {
                None => {
                    if let Some(info) = fence {
                        open = Some((info.trim().to_owned(), String::new()));
                    }
                }
                Some(block) if fence == Some("") => blocks.push(block),
                Some((info, mut text)) => {
                    text.push_str(line);
                    text.push('\n');
                    open = Some((info, text));
                }
            }
        }
        assert!(open.is_none(), "docs/workflows.md ends inside a code block");
        blocks
    }

    /// The page's complete example.
    fn streetlight() -> String {
        blocks()
            .into_iter()
            .find(|(info, text)| info == "toml" && text.contains("id = \"streetlight-repair\""))
            .map(|(_, text)| text)
            .expect("docs/workflows.md has the streetlight-repair example")
    }

    #[test]
    fn the_page_s_examples_load() {
        let (mut valid, mut invalid) = (0, 0);
        for (info, text) in blocks() {
            match info.as_str() {
                "toml" => {
                    if let Err(e) = DefinitionRegistry::built_in().load_toml(&text) {
                        panic!("a toml block of docs/workflows.md does not load: {e}\n{text}");
                    }
                    valid += 1;
                }
                "toml,invalid" => {
                    let expected = text
                        .lines()
                        .next()
                        .and_then(|line| line.strip_prefix("# refused: "))
                        .unwrap_or_else(|| {
                            panic!("a toml,invalid block starts with `# refused: <error>`:\n{text}")
                        });
                    match DefinitionRegistry::built_in().load_toml(&text) {
                        Ok(r) => panic!("{r} loads, but docs/workflows.md says it is refused"),
                        Err(e) => assert_eq!(e.to_string(), expected, "\n{text}"),
                    }
                    invalid += 1;
                }
                other => assert!(
                    !other.starts_with("toml"),
                    "a ```{other} block: toml blocks are `toml` or `toml,invalid`"
                ),
            }
        }
        assert!(
            valid >= 1 && invalid >= 1,
            "{valid} valid, {invalid} invalid"
        );
        assert!(streetlight().contains("[[actions]]"));
    }

    /// A table row's cells.
    fn cells(row: &str) -> Vec<&str> {
        row.trim()
            .trim_start_matches('|')
            .trim_end_matches('|')
            .split('|')
            .map(str::trim)
            .collect()
    }

    /// The contents of the code spans in `text` (of one or more backticks), trimmed.
    fn code_spans(text: &str) -> Vec<String> {
        let ticks_at = |s: &str| s.len() - s.trim_start_matches('`').len();
        let mut spans = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find('`') {
            let ticks = ticks_at(&rest[start..]);
            let after = &rest[start + ticks..];
            // It ends at the next run of exactly as many backticks.
            let mut from = 0;
            let end = loop {
                let at = from
                    + after[from..]
                        .find('`')
                        .unwrap_or_else(|| panic!("an unclosed code span in {text}"));
                let run = ticks_at(&after[at..]);
                if run == ticks {
                    break at;
                }
                from = at + run;
            };
            // No message starts or ends with a space: the spaces are the span's padding.
            spans.push(after[..end].trim().to_owned());
            rest = &after[end + ticks..];
        }
        spans
    }

    /// The messages the "Refused with" columns give, `<…>` standing for any text.
    fn documented() -> Vec<String> {
        let lines: Vec<&str> = PAGE.lines().collect();
        let mut patterns = Vec::new();
        let mut refusing = false;
        for (i, line) in lines.iter().enumerate() {
            if !line.starts_with('|') {
                refusing = false;
            } else if lines
                .get(i + 1)
                .is_some_and(|next| next.starts_with("|---"))
            {
                refusing = cells(line).last() == Some(&"Refused with");
            } else if refusing && !line.starts_with("|---") {
                patterns.extend(
                    cells(line)
                        .last()
                        .map(|cell| code_spans(cell))
                        .unwrap_or_default(),
                );
            }
        }
        patterns
    }

    /// Whether `text` is `pattern` with each `<…>` in it standing for any text.
    fn matches(pattern: &str, text: &str) -> bool {
        let mut pieces = Vec::new();
        let mut rest = pattern;
        while let Some((before, after)) = rest.split_once('<') {
            let Some((_, after)) = after.split_once('>') else {
                break;
            };
            pieces.push(before);
            rest = after;
        }
        pieces.push(rest);
        let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
        if pieces.len() == 1 {
            return pattern == text;
        }
        if text.len() < first.len() + last.len()
            || !text.starts_with(first)
            || !text.ends_with(last)
        {
            return false;
        }
        let mut middle = &text[first.len()..text.len() - last.len()];
        for piece in &pieces[1..pieces.len() - 1] {
            match middle.find(piece) {
                Some(at) => middle = &middle[at + piece.len()..],
                None => return false,
            }
        }
        true
    }

    /// A definition with a bit of everything, for the broken copies below.
    const BASE: &str = r#"
id = "repair"
version = 1
name = "Repair"
initial_stage = "reported"
contact_roles = ["grid_worker"]

[open]
roles = ["grid_worker"]
scope = "subtree"

[[open.fields]]
name = "kind"
type = "choice"
required = true
choices = ["lamp", "pole"]

[[stages]]
id = "reported"
deadline = { within = "3 working days", remind_after = "2 working days" }

[[stages]]
id = "fixed"
terminal = true

[[actions]]
id = "fix"
from = ["reported"]
to = "fixed"
roles = ["grid_worker"]
scope = "lead"
fields = [{ name = "unit", type = "unit", required = true }, { name = "score", type = "rating" }]
effects = [{ assign_lead = "unit" }, { rate = "score" }]

[[actions]]
id = "reopen"
from = ["fixed"]
to = "reported"
roles = ["grid_worker"]
scope = "subtree"
effects = ["reopen"]
"#;

    /// One broken copy of [`BASE`] for every way loading can refuse a definition: each edit
    /// replaces the first occurrence of its text.
    const BROKEN: &[&[(&str, &str)]] = &[
        &[("version = 1\n", "version = 1\ncolour = \"red\"\n")],
        &[("scope = \"subtree\"\n", "scope = \"subtree\"\nwho = 1\n")],
        &[("required = true\nchoices", "required = true\nmax = 3\nchoices")],
        &[("id = \"fixed\"\n", "id = \"fixed\"\ncolour = 1\n")],
        &[("\"2 working days\" }", "\"2 working days\", remind = \"1 day\" }")],
        &[("to = \"fixed\"\n", "to = \"fixed\"\ncolour = 1\n")],
        &[("name = \"Repair\"\n", "")],
        &[("version = 1", "version = \"1\"")],
        &[("version = 1", "version = -1")],
        &[("id = \"repair\"", "id = \"Repair Job\"")],
        &[("version = 1", "version = 0")],
        &[("name = \"Repair\"", "name = \" \"")],
        &[("contact_roles = [\"grid_worker\"]", "contact_roles = [\"wizard\"]")],
        &[("initial_stage = \"reported\"", "initial_stage = \"nowhere\"")],
        &[("initial_stage = \"reported\"", "initial_stage = \"fixed\"")],
        &[("terminal = true", "terminal = false")],
        &[("roles = [\"grid_worker\"]\nscope = \"subtree\"", "roles = []\nscope = \"subtree\"")],
        &[("roles = [\"grid_worker\"]\nscope = \"subtree\"", "roles = [\"wizard\"]\nscope = \"subtree\"")],
        &[("scope = \"subtree\"", "scope = \"lead\"")],
        &[("scope = \"lead\"", "scope = \"everywhere\"")],
        &[("name = \"kind\"", "name = \"kind-of\"")],
        &[("{ name = \"score\"", "{ name = \"unit\"")],
        &[("choices = [\"lamp\", \"pole\"]", "choices = []")],
        &[("type = \"choice\"", "type = \"text\"")],
        &[("type = \"choice\"", "type = \"string\"")],
        &[("id = \"fixed\"", "id = \"Fixed\"")],
        &[("id = \"fixed\"\nterminal = true", "id = \"reported\"\nterminal = true")],
        &[("terminal = true", "terminal = true\ndeadline = { within = \"1 day\" }")],
        &[("remind_after = \"2 working days\"", "remind_after = \"3 working days\"")],
        &[("within = \"3 working days\"", "within = \" \"")],
        &[("within = \"3 working days\"", "within = \"three days\"")],
        &[("within = \"3 working days\"", "within = \"1 week\"")],
        &[("within = \"3 working days\"", "within = \"1 working week\"")],
        &[("within = \"3 working days\"", "within = \"99999999999 working days\"")],
        &[("within = \"3 working days\"", "within = \"1000000000000000000000000000000000000000 days\"")],
        &[("within = \"3 working days\"", "within = \"99999999999999999999999 days\"")],
        &[("within = \"3 working days\"", "within = \"0 working days\"")],
        &[("within = \"3 working days\"", "within = \"99999999 working days\"")],
        &[("remind_after = \"2 working days\"", "remind_after = \"0 minutes\"")],
        &[("remind_after = \"2 working days\"", "remind_after = \"2081 working hours\"")],
        &[("remind_after = \"2 working days\" }", "remind_after = \"2 working days\", breach_after = \"0 hours\" }")],
        &[("remind_after = \"2 working days\" }", "remind_after = \"2 working days\", breach_after = \"367 days\" }")],
        &[("id = \"fix\"", "id = \"Fix it\"")],
        &[("id = \"reopen\"", "id = \"fix\"")],
        &[("from = [\"reported\"]", "from = []")],
        &[("from = [\"reported\"]", "from = [\"nowhere\"]")],
        &[("to = \"fixed\"", "to = \"nowhere\"")],
        &[("roles = [\"grid_worker\"]\nscope = \"lead\"", "roles = []\nscope = \"lead\"")],
        &[("roles = [\"grid_worker\"]\nscope = \"lead\"", "roles = [\"wizard\"]\nscope = \"lead\"")],
        &[("roles = [\"grid_worker\"]\nscope = \"lead\"", "roles = [\"\"]\nscope = \"lead\"")],
        &[("{ assign_lead = \"unit\" }", "{ assign_lead = \"team\" }")],
        &[("{ name = \"score\", type = \"rating\" }", "{ name = \"score\", type = \"rating\", reach = \"outside_chain\" }")],
        &[("type = \"unit\", required = true }", "type = \"unit\", required = true, reach = \"everywhere\" }")],
        &[("type = \"unit\", required = true", "type = \"text\", required = true")],
        &[("type = \"unit\", required = true", "type = \"unit\"")],
        &[("from = [\"reported\"]", "from = [\"reported\", \"fixed\"]")],
        &[("to = \"reported\"", "to = \"fixed\"")],
        &[("{ assign_lead = \"unit\" }", "{ assign = \"unit\" }")],
        &[("{ assign_lead = \"unit\" }", "\"assign_lead\"")],
        &[("effects = [\"reopen\"]", "effects = [{ reopen = true }]")],
        &[("[[stages]]\nid = \"fixed\"", "[[stages]]\nid = \"limbo\"\n\n[[stages]]\nid = \"fixed\"")],
        &[
            ("[[stages]]\nid = \"fixed\"", "[[stages]]\nid = \"stuck\"\n\n[[stages]]\nid = \"fixed\""),
            ("[[actions]]\nid = \"fix\"", "[[actions]]\nid = \"get_stuck\"\nfrom = [\"reported\"]\nto = \"stuck\"\nroles = [\"grid_worker\"]\nscope = \"lead\"\n\n[[actions]]\nid = \"fix\""),
        ],
    ];

    /// What a user sees of a refusal: the problem, or a parse error's last line.
    fn shown(error: &DefinitionError) -> String {
        if error.problem.starts_with("TOML parse error") {
            error.problem.lines().last().unwrap_or_default().to_owned()
        } else {
            error.problem.clone()
        }
    }

    #[test]
    fn the_page_gives_every_message_of_loading_and_no_other() {
        let patterns = documented();
        assert!(patterns.len() > 40, "{patterns:?}");
        DefinitionRegistry::built_in()
            .load_toml(BASE)
            .expect("the base loads");

        let mut messages = Vec::new();
        for edits in BROKEN {
            let mut text = BASE.to_owned();
            for (from, to) in *edits {
                assert!(text.contains(from), "{from:?} is not in the definition");
                text = text.replacen(from, to, 1);
            }
            match DefinitionRegistry::built_in().load_toml(&text) {
                Ok(r) => panic!("{r} loads after {edits:?}"),
                Err(e) => messages.push(shown(&e)),
            }
        }
        let mut registry = DefinitionRegistry::built_in();
        registry.load_toml(BASE).expect("the base loads");
        let changed = BASE.replace("name = \"Repair\"", "name = \"Repair 2\"");
        messages.push(shown(
            &registry.load_toml(&changed).expect_err("changed in place"),
        ));

        for message in &messages {
            assert!(
                patterns.iter().any(|p| matches(p, message)),
                "docs/workflows.md does not give the message {message:?}"
            );
        }
        for pattern in &patterns {
            assert!(
                messages.iter().any(|m| matches(pattern, m)),
                "docs/workflows.md gives {pattern:?}, which no refused definition produces"
            );
        }
    }

    #[test]
    fn patterns_match_as_they_should() {
        assert!(matches(
            "stage <stage> is declared twice",
            "stage a is declared twice"
        ));
        assert!(matches(
            "`<value>` is not a span: empty",
            "`` is not a span: empty"
        ));
        assert!(!matches(
            "stage <stage> is declared twice",
            "stage a is declared"
        ));
        assert!(!matches("versions start at 1", "versions start at 1!"));
        assert_eq!(
            code_spans("`a`; ``b `c` `` and ``` `d` ```"),
            ["a", "b `c`", "`d`"]
        );
    }

    /// Whether the page's Rust example is [`example`]'s code, line by line (with `crate::`
    /// for `civicflow_core::`, and the workflow taken from the page instead of a file).
    #[cfg(feature = "testkit")]
    #[test]
    fn the_page_s_rust_example_is_the_one_run_here() {
        let here = include_str!("mod.rs");
        let (_, code) = blocks()
            .into_iter()
            .find(|(info, text)| info == "rust" && text.contains("#[test]"))
            .expect("docs/workflows.md has a Rust example with a test");
        for line in code.lines().map(str::trim) {
            if line.is_empty() || line.contains("include_str!") {
                continue;
            }
            let line = line.replace("civicflow_core::", "crate::");
            assert!(
                here.lines().any(|l| l.trim() == line),
                "the page's Rust example has a line the test here does not: {line}"
            );
        }
    }

    /// The page's Rust example (kept as written there, so not formatted).
    #[cfg(feature = "testkit")]
    #[rustfmt::skip]
    mod example {
use crate::calendar::{LocalDate, Zone};
use crate::domain::case::{Case, CaseCommand, Channel, OpenCase};
use crate::domain::fields::{FieldValue, Fields};
use crate::domain::org::{Acting, ActorKind, OrgCommand, Tier};
use crate::domain::workflow::{DefinitionRegistry, WorkflowId};
use crate::domain::Rejection;
use crate::testkit::{org_chart, Scenario};
use crate::{CaseId, UnitId};

/// Registers the actor of `acting` and grants the role at the unit.
fn grant(acting: &Acting) -> [OrgCommand; 2] {
    let actor = acting.actor.clone();
    let name = actor.to_string();
    [
        OrgCommand::RegisterActor { id: actor.clone(), name, kind: ActorKind::Person },
        OrgCommand::GrantRole { actor, role: acting.role.clone(), unit: acting.unit.clone() },
    ]
}

/// Takes `action` with `fields`.
fn act(action: &str, fields: &[(&str, FieldValue)]) -> CaseCommand {
    let fields = fields.iter().map(|(name, value)| ((*name).to_owned(), value.clone())).collect();
    CaseCommand::Act { action: action.into(), fields, expected_version: None }
}

#[test]
fn a_dark_streetlight_is_dispatched_repaired_and_rated() -> Result<(), Box<dyn std::error::Error>> {
    let mut definitions = DefinitionRegistry::built_in();
    definitions.load_toml(&super::streetlight())?;

    // A community with a grid and the street-lighting department; a resident and a grid
    // worker of the grid, an officer of the department.
    let unit = |id: &str| UnitId::new(id);
    let resident = Acting::parse("zhang", "resident", "grid-1")?;
    let worker = Acting::parse("wang", "grid_worker", "grid-1")?;
    let officer = Acting::parse("li", "department_officer", "lighting")?;
    let mut chart = vec![
        OrgCommand::CreateUnit { id: unit("tonghui")?, name: "通惠社区".into(), tier: Tier::Community, parent: None },
        OrgCommand::CreateUnit { id: unit("grid-1")?, name: "第一网格".into(), tier: Tier::Grid, parent: Some(unit("tonghui")?) },
        OrgCommand::CreateUnit { id: unit("lighting")?, name: "路灯管理所".into(), tier: Tier::Department, parent: Some(unit("tonghui")?) },
    ];
    for acting in [&resident, &worker, &officer] {
        chart.extend(grant(acting));
    }

    // Friday 2026-03-06 16:30 in Shanghai (the scenario's calendar is China's).
    let shanghai = Zone::shanghai();
    let friday = shanghai.from_local(LocalDate::parse("2026-03-06")?, 16 * 60 + 30)?;
    let case = CaseId::new_v7(friday);
    let scenario = Scenario::<Case>::new(case).org(org_chart(chart)?).definitions(definitions).at(friday);

    // The resident reports it: the case opens in `reported`, to be dispatched within
    // 2 working hours: one on Friday, one on Monday morning.
    let fields = Fields::from([("fault".to_owned(), FieldValue::Choice("out".into()))]);
    let open = OpenCase {
        case, workflow: WorkflowId::new("streetlight-repair")?, version: None, unit: unit("grid-1")?,
        title: "3号楼门口路灯不亮".into(), description: String::new(), fields,
        requester: None, channel: Channel::Api, place: None, new_requester: false,
    };
    let mut history = scenario.clone().when(resident.clone(), CaseCommand::Open(open)).decide()?.events;
    let state = scenario.clone().given(history.clone()).state().ok_or("no case")?;
    let due = state.deadline.ok_or("no deadline")?.due_at;
    assert_eq!(shanghai.to_local(due)?, (LocalDate::parse("2026-03-09")?, 9 * 60 + 30));

    // The grid dispatches it to the department, which signs for it and repairs it.
    for (acting, command) in [
        (&worker, act("dispatch", &[("unit", FieldValue::Unit(unit("lighting")?))])),
        (&officer, act("sign_for", &[])),
        (&officer, act("report_repair", &[("work", FieldValue::Choices(vec!["lamp".into()]))])),
    ] {
        let events = scenario.clone().given(history.clone()).when(acting.clone(), command).decide()?.events;
        history.extend(events);
    }

    // Rating needs a rating; only the resident who asked may rate.
    scenario.clone().given(history.clone()).when(resident.clone(), act("rate", &[]))
        .then_rejected(Rejection::FieldMissing { action: "rate".into(), field: "rating".into() });
    let rated = scenario.clone().given(history.clone())
        .when(resident, act("rate", &[("rating", FieldValue::Rating(5))])).decide()?.events;
    let state = scenario.given(history.into_iter().chain(rated)).state().ok_or("no case")?;
    assert!(state.closed);
    assert_eq!(state.rating, Some(5));
    assert_eq!(state.lead, unit("lighting")?);
    Ok(())
}
    }
}
