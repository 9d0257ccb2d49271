//! Checking a definition before anything runs on it.
//!
//! Loading refuses a definition that could strand a case or that names something that does
//! not exist, and says which stage, action, role or field is at fault.

use std::collections::{BTreeSet, VecDeque};

use super::definition::{Action, Definition, DefinitionError, Effect, Scope, Span};
use crate::domain::fields::{FieldKind, FieldSpec};

fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl Definition {
    /// Checks the definition: ids, stages and actions that exist, every stage reachable from
    /// the initial one, a terminal stage reachable from every stage, only reopen actions out
    /// of terminal stages, known roles, fields that the effects need, and sane deadlines.
    ///
    /// # Errors
    /// [`DefinitionError`] naming the workflow and the first problem found.
    pub fn validate(&self, known_roles: &[&str]) -> Result<(), DefinitionError> {
        // Each problem names the key at fault, as the TOML writes it (`stages.<id>`,
        // `actions.<id>.roles`), so that a refusal can point at it.
        let at = |key: String, problem: String| DefinitionError {
            workflow: self.reference().to_string(),
            problem,
            key: Some(key),
        };
        if self.version == 0 {
            return Err(at("version".into(), "versions start at 1".into()));
        }
        if self.name.trim().is_empty() {
            return Err(at("name".into(), "the name is empty".into()));
        }

        // Stages.
        let mut stage_ids = BTreeSet::new();
        for stage in &self.stages {
            let key = format!("stages.{}", stage.id);
            if !is_slug(&stage.id) {
                return Err(at(
                    key,
                    format!("stage id {:?} is not a slug (a-z, 0-9, _ and -)", stage.id),
                ));
            }
            if !stage_ids.insert(stage.id.as_str()) {
                return Err(at(key, format!("stage {} is declared twice", stage.id)));
            }
            if stage.terminal && stage.deadline.is_some() {
                return Err(at(
                    format!("{key}.deadline"),
                    format!(
                        "terminal stage {} has a deadline; a closed case has none",
                        stage.id
                    ),
                ));
            }
            if let Some(rule) = &stage.deadline {
                // Zero would run the ladder the moment the stage is entered; past a year the
                // moments land beyond what a time can hold (`Span::check_deadline`).
                for (key, span) in [
                    ("within", Some(rule.within)),
                    ("remind_after", rule.remind_after),
                    ("breach_after", rule.breach_after),
                ] {
                    if let Some(Err(e)) = span.map(Span::check_deadline) {
                        return Err(at(
                            format!("stages.{}.deadline.{key}", stage.id),
                            format!("stage {}: {key} {e}", stage.id),
                        ));
                    }
                }
                if let Some(remind) = rule.remind_after {
                    if !before(remind, rule.within) {
                        return Err(at(
                            format!("{key}.deadline.remind_after"),
                            format!(
                            "stage {}: the reminder ({remind}) must come before the deadline ({})",
                            stage.id, rule.within
                        ),
                        ));
                    }
                }
            }
        }
        if !stage_ids.contains(self.initial_stage.as_str()) {
            return Err(at(
                "initial_stage".into(),
                format!("the initial stage {} is not declared", self.initial_stage),
            ));
        }
        if self.is_terminal(&self.initial_stage) {
            return Err(at(
                "initial_stage".into(),
                format!("the initial stage {} is terminal", self.initial_stage),
            ));
        }
        if !self.stages.iter().any(|s| s.terminal) {
            return Err(at(
                "stages".into(),
                "no stage is terminal: a case could never close".into(),
            ));
        }

        // Roles.
        let check_roles =
            |key: String, what: &str, roles: &[crate::ids::Role]| -> Result<(), DefinitionError> {
                if roles.is_empty() {
                    return Err(at(key, format!("{what} names no role")));
                }
                if let Some(unknown) = roles.iter().find(|r| !known_roles.contains(&r.as_str())) {
                    return Err(at(
                        key,
                        format!(
                            "{what} names the unknown role {unknown}; known: {}",
                            known_roles.join(", ")
                        ),
                    ));
                }
                Ok(())
            };
        check_roles("open.roles".into(), "open", &self.open.roles)?;
        if !matches!(self.open.scope, Scope::Any | Scope::Subtree) {
            return Err(at(
                "open.scope".into(),
                format!(
                    "open: the scope must be any or subtree, not {:?}",
                    self.open.scope
                ),
            ));
        }
        check_field_specs("open", &self.open.fields, &[])
            .map_err(|p| at("open.fields".into(), p))?;
        if let Some(unknown) = self
            .contact_roles
            .iter()
            .find(|r| !known_roles.contains(&r.as_str()))
        {
            return Err(at(
                "contact_roles".into(),
                format!("contact_roles names the unknown role {unknown}"),
            ));
        }

        // Actions.
        let mut action_ids = BTreeSet::new();
        for action in &self.actions {
            let what = format!("action {}", action.id);
            let key = format!("actions.{}", action.id);
            if !is_slug(&action.id) {
                return Err(at(
                    key,
                    format!(
                        "action id {:?} is not a slug (a-z, 0-9, _ and -)",
                        action.id
                    ),
                ));
            }
            if !action_ids.insert(action.id.as_str()) {
                return Err(at(key, format!("action {} is declared twice", action.id)));
            }
            if action.from.is_empty() {
                return Err(at(
                    format!("{key}.from"),
                    format!("{what} can be taken from no stage"),
                ));
            }
            for from in &action.from {
                if !stage_ids.contains(from.as_str()) {
                    return Err(at(
                        format!("{key}.from"),
                        format!("{what} starts from the unknown stage {from}"),
                    ));
                }
            }
            if !stage_ids.contains(action.to.as_str()) {
                return Err(at(
                    format!("{key}.to"),
                    format!("{what} leads to the unknown stage {}", action.to),
                ));
            }
            check_roles(format!("{key}.roles"), &what, &action.roles)?;
            check_field_specs(&what, &action.fields, &action.effects)
                .map_err(|p| at(format!("{key}.fields"), p))?;
            check_effects(action)
                .map_err(|p| at(format!("{key}.effects"), format!("{what}: {p}")))?;
            let from_terminal = action.from.iter().any(|s| self.is_terminal(s));
            let reopens = action.effects.contains(&Effect::Reopen);
            if from_terminal && !reopens {
                return Err(at(format!("{key}.from"), format!("{what} starts from a terminal stage but does not reopen: a closed case takes no action but reopen")));
            }
            if reopens && (!from_terminal || self.is_terminal(&action.to)) {
                return Err(at(
                    format!("{key}.effects"),
                    format!("{what} reopens, so it must lead from a terminal stage to an open one"),
                ));
            }
        }

        // Every stage reachable from the initial one, and a terminal stage from every stage.
        let reachable = self.reachable_from(&self.initial_stage);
        if let Some(stranded) = self
            .stages
            .iter()
            .find(|s| !reachable.contains(s.id.as_str()))
        {
            return Err(at(
                format!("stages.{}", stranded.id),
                format!(
                    "stage {} is unreachable from the initial stage {}",
                    stranded.id, self.initial_stage
                ),
            ));
        }
        for stage in self.stages.iter().filter(|s| !s.terminal) {
            let onward = self.reachable_from(&stage.id);
            if !onward.iter().any(|s| self.is_terminal(s)) {
                return Err(at(format!("stages.{}", stage.id), format!("no terminal stage can be reached from stage {}: a case there could never close", stage.id)));
            }
        }
        Ok(())
    }

    fn reachable_from<'a>(&'a self, start: &'a str) -> BTreeSet<&'a str> {
        let mut seen = BTreeSet::from([start]);
        let mut queue = VecDeque::from([start]);
        while let Some(stage) = queue.pop_front() {
            for action in self.actions_from(stage) {
                if seen.insert(action.to.as_str()) {
                    queue.push_back(action.to.as_str());
                }
            }
        }
        seen
    }
}

/// Whether `a` certainly ends before `b` when both start at the same moment. Spans of
/// different kinds (working and wall-clock time) cannot be compared without a calendar, so
/// they are accepted.
fn before(a: Span, b: Span) -> bool {
    let working_minutes = |span: Span| match span {
        Span::WorkingMinutes(m) => Some(u64::from(m)),
        Span::WorkingHours(h) => Some(u64::from(h) * 60),
        _ => None,
    };
    match (a, b) {
        (Span::Calendar(x), Span::Calendar(y)) => x < y,
        (Span::WorkingDays(x), Span::WorkingDays(y)) => x < y,
        _ => match (working_minutes(a), working_minutes(b)) {
            (Some(x), Some(y)) => x < y,
            _ => true,
        },
    }
}

fn check_field_specs(what: &str, fields: &[FieldSpec], effects: &[Effect]) -> Result<(), String> {
    let mut names = BTreeSet::new();
    for field in fields {
        if !is_slug(&field.name) || field.name.contains('-') {
            return Err(format!(
                "{what}: field name {:?} must use a-z, 0-9 and _",
                field.name
            ));
        }
        if !names.insert(field.name.as_str()) {
            return Err(format!("{what}: field {} is declared twice", field.name));
        }
        let lists = matches!(field.kind, FieldKind::Choice | FieldKind::Choices);
        if lists && field.choices.is_empty() {
            return Err(format!(
                "{what}: field {} is a {} without choices",
                field.name, field.kind
            ));
        }
        if !lists && !field.choices.is_empty() {
            return Err(format!(
                "{what}: field {} lists choices but is a {}",
                field.name, field.kind
            ));
        }
        if !field.reach.is_default() {
            // A reach widens whom a case may be handed to: only an effect's unit hands over.
            let hands_over = what != "open"
                && field.kind == FieldKind::Unit
                && effects.iter().any(|e| {
                    matches!(e, Effect::AssignLead(n) | Effect::AddCoHandler(n) if *n == field.name)
                });
            if !hands_over {
                return Err(format!(
                    "{what}: field {} has a reach, but no assign_lead or add_co_handler effect hands the case to it",
                    field.name
                ));
            }
        }
    }
    Ok(())
}

fn check_effects(action: &Action) -> Result<(), String> {
    let field = |name: &str, kind: FieldKind, effect: &str| -> Result<(), String> {
        // A rating may be optional: the effect then applies only when it is given.
        let may_be_optional = effect == "rate";
        match action.fields.iter().find(|f| f.name == name) {
            None => Err(format!(
                "the effect {effect} uses the field {name}, which the action does not declare"
            )),
            Some(f) if f.kind != kind => Err(format!(
                "the effect {effect} needs field {name} to be a {kind}, not a {}",
                f.kind
            )),
            Some(f) if !f.required && !may_be_optional => Err(format!(
                "the effect {effect} needs field {name} to be required"
            )),
            Some(_) => Ok(()),
        }
    };
    for effect in &action.effects {
        match effect {
            Effect::AssignLead(name) => field(name, FieldKind::Unit, "assign_lead")?,
            Effect::AddCoHandler(name) => field(name, FieldKind::Unit, "add_co_handler")?,
            Effect::Rate(name) => field(name, FieldKind::Rating, "rate")?,
            Effect::MergeInto(name) => field(name, FieldKind::Case, "merge_into")?,
            Effect::ReturnToSender | Effect::Reopen | Effect::TakeLead => {}
        }
    }
    Ok(())
}
