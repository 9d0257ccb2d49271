//! Domain tests as data: given events, when a command, then events or a rejection, through
//! one helper ([`scenario::Scenario`]); every action of every built-in definition is covered,
//! allowed and refused, and a coverage test fails when a definition gains an action that the
//! tables do not cover. Pure domain only: no store, no engine.

mod case_commands;
mod consumer_dispute;
mod directive;
mod district_affairs;
mod fixture;
mod lists;
mod merchants;
mod one_stop_errand;
mod org;
mod person;
mod scenario;
mod service_request;
mod spec;

use std::collections::{BTreeMap, BTreeSet};

use civicflow_core::domain::case::{CaseCommand, CaseEvent};
use civicflow_core::domain::workflow::{DefinitionRegistry, Effect, Scope};
use civicflow_core::domain::Rejection;

use scenario::{Row, Then};

/// Every row of the four workflow tables and the open table.
fn all_rows() -> Vec<Row> {
    let mut rows = service_request::table();
    rows.extend(district_affairs::table());
    rows.extend(consumer_dispute::table());
    rows.extend(one_stop_errand::table());
    rows.extend(case_commands::open_table());
    rows
}

fn kind(rejection: &Rejection) -> &'static str {
    match rejection {
        Rejection::RoleNotAllowed { .. } => "RoleNotAllowed",
        Rejection::OutOfScope { .. } => "OutOfScope",
        Rejection::ActionNotInStage { .. } => "ActionNotInStage",
        Rejection::FieldMissing { .. } => "FieldMissing",
        Rejection::StaleVersion { .. } => "StaleVersion",
        Rejection::CaseClosed { .. } => "CaseClosed",
        _ => "other",
    }
}

/// Fails when a built-in definition has an action (or a workflow) that the tables do not
/// take, allowed, and refuse in every way that applies to it: a role not allowed, a unit out
/// of scope (unless the scope is `any`), a stage where it is not possible, a required field
/// missing (if it has one), a stale version, and a closed case (unless it reopens).
#[test]
fn every_action_of_every_built_in_definition_is_covered() {
    let mut allowed: BTreeSet<(String, String)> = BTreeSet::new();
    let mut refused: BTreeMap<(String, String), BTreeSet<&'static str>> = BTreeMap::new();
    for row in all_rows() {
        let (workflow, action) = match row.when.command() {
            CaseCommand::Act { action, .. } => (row.when.workflow().to_owned(), action.clone()),
            CaseCommand::Open(open) => (open.workflow.to_string(), "(open)".to_owned()),
            _ => continue,
        };
        match &row.then {
            // An allowed row counts only if it really takes the action (or opens the case).
            Then::Events(events) => {
                let takes_it = events.iter().any(|e| match e {
                    CaseEvent::ActionTaken(t) => t.action == action,
                    CaseEvent::Opened(o) => {
                        action == "(open)" && o.workflow.id.as_str() == workflow
                    }
                    _ => false,
                });
                if takes_it {
                    allowed.insert((workflow, action));
                }
            }
            Then::Rejected(rejection) => {
                refused
                    .entry((workflow, action))
                    .or_default()
                    .insert(kind(rejection));
            }
        }
    }

    let registry = DefinitionRegistry::built_in();
    let mut missing = Vec::new();
    let mut check = |workflow: &str, action: &str, required: Vec<&'static str>| {
        let key = (workflow.to_owned(), action.to_owned());
        if !allowed.contains(&key) {
            missing.push(format!("{workflow} {action}: no allowed row"));
        }
        let have = refused.get(&key).cloned().unwrap_or_default();
        for kind in required {
            if !have.contains(kind) {
                missing.push(format!("{workflow} {action}: no {kind} row"));
            }
        }
    };
    let mut workflows = 0;
    let mut actions = 0;
    for definition in registry.all() {
        workflows += 1;
        let workflow = definition.id.as_str();
        let mut required = vec!["RoleNotAllowed"];
        if definition.open.fields.iter().any(|f| f.required) {
            required.push("FieldMissing");
        }
        check(workflow, "(open)", required);
        for action in &definition.actions {
            actions += 1;
            let mut required = vec!["RoleNotAllowed", "ActionNotInStage", "StaleVersion"];
            if action.scope != Scope::Any {
                required.push("OutOfScope");
            }
            if action.fields.iter().any(|f| f.required) {
                required.push("FieldMissing");
            }
            if !action.effects.contains(&Effect::Reopen) {
                required.push("CaseClosed");
            }
            check(workflow, &action.id, required);
        }
    }
    assert!(
        missing.is_empty(),
        "the tables do not cover:\n  {}",
        missing.join("\n  ")
    );
    // The four built-in workflows and their 35 actions (service-request 15 with urge_sign_for,
    // district-affairs 6, consumer-dispute 8, one-stop-errand 6); a new one must be added to
    // the tables.
    assert_eq!(
        (workflows, actions),
        (4, 35),
        "the built-in definitions changed"
    );
}
