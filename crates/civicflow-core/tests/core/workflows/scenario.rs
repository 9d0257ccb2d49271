//! The one helper for case tests: given events, when a command, then events or a rejection.
//!
//! ```ignore
//! Scenario::new("service-request")
//!     .given(sr::received())
//!     .when(admin(), act("dispatch", fields([("unit", unit_f("grid-1"))])))
//!     .then(vec![met(1), taken(..), lead(..), set(..)]);
//! ```
//!
//! It is the test kit's `Scenario<Case>` (`civicflow_core::testkit`) in the fixture's world:
//! `given` events are folded with the case's `apply`; `when` decides with a `Context` whose
//! moment is fixed ([`NOW`] unless `.at(..)` says otherwise) and whose working time is the
//! real Chinese business calendar; `then` compares the exact events, `then_rejected` the
//! exact `Rejection`. The same `When` can be put in a table as a [`Row`] and run later.

use std::fmt::Debug;

use civicflow_core::domain::case::{
    self, ActionTaken, Case, CaseCommand, CaseEvent, CaseOpened, CaseReopened, Channel,
    CoHandlerAdded, DeadlineMet, DeadlineMissed, DeadlineSet, LeadAssigned, MergedInto,
    ReturnedToSender, SatisfactionRated,
};
use civicflow_core::domain::deadline::{CalendarStamp, DeadlineBasis};
use civicflow_core::domain::fields::Fields;
use civicflow_core::domain::org::Acting;
use civicflow_core::domain::workflow::{DefinitionRef, DefinitionRegistry, Effect};
use civicflow_core::domain::Rejection;
use civicflow_core::testkit;
use civicflow_core::Version;

use super::fixture::{
    at, built_in, calendar, case_id, choice, fields, no_fields, person, requester, roles,
    shared_built_in, shared_chart, unit, workflow, NOW, T0,
};

/// A case scenario: a workflow, the events so far and the moment of the decision, over the
/// test kit's [`testkit::Scenario`] in the fixture's world.
#[derive(Clone)]
pub struct Scenario {
    workflow: &'static str,
    inner: testkit::Scenario<Case>,
}

impl Scenario {
    /// A case of `workflow` (built-in definitions) that does not exist yet, decided at [`NOW`].
    pub fn new(workflow: &'static str) -> Self {
        Self {
            workflow,
            inner: testkit::Scenario::<Case>::new(case_id())
                .org(shared_chart().clone())
                .definitions(shared_built_in().clone())
                .working_time(calendar().clone())
                .at(at(NOW)),
        }
    }

    /// Decide with these definitions instead of the built-in ones.
    pub fn definitions(mut self, definitions: &'static DefinitionRegistry) -> Self {
        self.inner = self.inner.definitions(definitions.clone());
        self
    }

    /// The case's events so far.
    pub fn given(mut self, events: impl IntoIterator<Item = CaseEvent>) -> Self {
        self.inner = self.inner.given(events);
        self
    }

    /// Decide at this local moment instead of [`NOW`].
    pub fn at(mut self, local: &str) -> Self {
        self.inner = self.inner.at(at(local));
        self
    }

    /// The case's state after the given events (`None`: no events), as `decide` sees it.
    pub fn state(&self) -> Option<case::CaseState> {
        self.inner.state()
    }

    /// The command and who submits it.
    pub fn when(self, acting: Acting, command: CaseCommand) -> When {
        When {
            workflow: self.workflow,
            inner: self.inner.when(acting, command),
        }
    }
}

/// A scenario with its command, not yet decided.
#[derive(Clone)]
pub struct When {
    workflow: &'static str,
    inner: testkit::When<Case>,
}

/// What a command should come to.
pub type Then = testkit::Then<Case>;

impl When {
    /// Folds the given events and decides the command: the case's own events.
    pub fn decide(&self) -> Result<Vec<CaseEvent>, Rejection> {
        self.inner.decide().map(|decision| decision.events)
    }

    /// Checks the outcome; `Err` holds a message with given, when, expected and actual.
    pub fn check(&self, expected: &Then) -> Result<(), String> {
        self.inner
            .check(expected)
            .map_err(|mismatch| format!("scenario {}: {mismatch}", self.workflow))
    }

    /// Expects exactly these events.
    #[track_caller]
    pub fn then(self, expected: Vec<CaseEvent>) {
        if let Err(message) = self.check(&Then::Events(expected)) {
            panic!("{message}");
        }
    }

    /// Expects exactly this refusal.
    #[track_caller]
    pub fn then_rejected(self, expected: Rejection) {
        if let Err(message) = self.check(&Then::Rejected(expected)) {
            panic!("{message}");
        }
    }

    /// The command.
    pub fn command(&self) -> &CaseCommand {
        self.inner.command()
    }

    pub fn workflow(&self) -> &'static str {
        self.workflow
    }
}

pub use civicflow_core::testkit::readable;

/// A row of a table: a scenario with its command and what it must come to.
pub struct Row {
    pub when: When,
    pub then: Then,
}

/// An allowed command and its exact events.
pub fn allowed(when: When, events: Vec<CaseEvent>) -> Row {
    Row {
        when,
        then: Then::Events(events),
    }
}

/// A refused command and its exact rejection.
pub fn refused(when: When, rejection: Rejection) -> Row {
    Row {
        when,
        then: Then::Rejected(rejection),
    }
}

/// Runs every row and fails with all the rows that did not come out as expected.
#[track_caller]
pub fn run(table: &str, rows: &[Row]) {
    let failures: Vec<String> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, row)| {
            row.when
                .check(&row.then)
                .err()
                .map(|m| format!("--- {table} row {i} ---\n{m}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} rows of {table} failed:\n\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Commands

/// Take `action` with `fields`.
pub fn act(action: &str, fields: Fields) -> CaseCommand {
    CaseCommand::Act {
        action: action.to_owned(),
        fields,
        expected_version: None,
    }
}

/// Take `action` with `fields`, having seen version `seen` of the case.
pub fn act_seen(action: &str, fields: Fields, seen: u64) -> CaseCommand {
    CaseCommand::Act {
        action: action.to_owned(),
        fields,
        expected_version: Some(Version::new(seen).expect("not zero")),
    }
}

// ---------------------------------------------------------------------------------------------
// Given: a case's history, built stage by stage at T0 as the engine would have written it.

/// A case's events so far. Every event happened at [`T0`]; each stage entered sets the
/// deadline its definition asks for (computed with the business calendar), each stage left
/// meets it, and so does handing the case over within a stage (an action with an
/// `assign_lead`, `return_to_sender` or `take_lead` effect). An action's effects are added
/// right after it (`.lead(..)`, `.co(..)`, …), before the next deadline, in the order
/// `decide` writes them.
#[derive(Debug, Clone)]
pub struct History {
    workflow: &'static str,
    events: Vec<CaseEvent>,
    stage: String,
    /// The unit it was filed at (a reopened case goes back to it).
    filed_at: String,
    lead: String,
    dispatched_by: Option<String>,
    running: Option<u32>,
    deadlines: u32,
    reopened: u32,
    entering: Option<String>,
}

impl History {
    /// Opened at `unit` by the requester (zhou.resident, filing as a resident), with the
    /// intake fields the workflow needs.
    pub fn opened(workflow_id: &'static str, at_unit: &str) -> Self {
        let definition = built_in()
            .latest(&workflow(workflow_id))
            .expect("a built-in workflow");
        let mut history = Self {
            workflow: workflow_id,
            events: vec![CaseEvent::Opened(CaseOpened {
                case: case_id(),
                workflow: definition.reference(),
                stage: definition.initial_stage.clone(),
                unit: unit(at_unit),
                title: "路灯不亮 street light out".to_owned(),
                description: String::new(),
                fields: intake(workflow_id),
                requester: Some(person()),
                filed_by: requester().actor,
                filed_as: requester().role,
                channel: Channel::Door,
                at: at(T0),
            })],
            stage: definition.initial_stage.clone(),
            filed_at: at_unit.to_owned(),
            lead: at_unit.to_owned(),
            dispatched_by: None,
            running: None,
            deadlines: 0,
            reopened: 0,
            entering: Some(definition.initial_stage.clone()),
        };
        history.flush();
        history
    }

    /// The same, filed by someone else, in the role they act in.
    pub fn filed_by(mut self, acting: &Acting) -> Self {
        if let Some(CaseEvent::Opened(opened)) = self.events.first_mut() {
            opened.filed_by = acting.actor.clone();
            opened.filed_as = acting.role.clone();
        }
        self
    }

    /// Without a requester.
    pub fn anonymous(mut self) -> Self {
        if let Some(CaseEvent::Opened(opened)) = self.events.first_mut() {
            opened.requester = None;
        }
        self
    }

    /// Sets the deadline of the stage being entered, if it has one.
    fn flush(&mut self) {
        let Some(stage) = self.entering.take() else {
            return;
        };
        let definition = built_in()
            .latest(&workflow(self.workflow))
            .expect("a built-in workflow");
        let Some(rule) = definition.stage(&stage).and_then(|s| s.deadline.clone()) else {
            return;
        };
        self.deadlines += 1;
        self.running = Some(self.deadlines);
        let start = at(T0);
        let due_at = calendar().add(start, rule.within);
        self.events.push(CaseEvent::DeadlineSet(DeadlineSet {
            seq: self.deadlines,
            stage,
            set_at: start,
            due_at,
            remind_at: rule.remind_after.map(|span| calendar().add(start, span)),
            escalate: rule.escalate,
            breach_at: rule.breach_after.map(|span| calendar().add(due_at, span)),
            // The scenarios run in 2026, which the release's data covers.
            basis: Some(DeadlineBasis {
                within: rule.within,
                remind_after: rule.remind_after,
                breach_after: rule.breach_after,
                calendar: covered_2026(),
            }),
        }));
    }

    /// `action` was taken (without fields).
    pub fn act(self, action: &str) -> Self {
        self.act_with(action, no_fields())
    }

    /// `action` was taken with `fields`: meets the running deadline if the stage is left or
    /// the case is handed to another unit within it.
    pub fn act_with(mut self, action: &str, given: Fields) -> Self {
        self.flush();
        let definition = built_in()
            .latest(&workflow(self.workflow))
            .expect("a built-in workflow");
        let taken = definition
            .action(action)
            .unwrap_or_else(|| panic!("{} has no action {action}", self.workflow));
        let to = taken.to.clone();
        let hands_over = taken.effects.iter().any(|e| {
            matches!(
                e,
                Effect::AssignLead(_) | Effect::ReturnToSender | Effect::TakeLead
            )
        });
        let leaving = to != self.stage || hands_over;
        if leaving {
            if let Some(seq) = self.running.take() {
                self.events
                    .push(CaseEvent::DeadlineMet(DeadlineMet { seq, at: at(T0) }));
            }
        }
        self.events.push(CaseEvent::ActionTaken(ActionTaken {
            action: action.to_owned(),
            from: self.stage.clone(),
            to: to.clone(),
            fields: given,
            at: at(T0),
        }));
        if leaving {
            self.entering = Some(to.clone());
        }
        self.stage = to;
        self
    }

    /// The effect: `to` became the lead, assigned by the lead before.
    pub fn lead(self, to: &str) -> Self {
        let by = self.lead.clone();
        self.lead_by(to, &by)
    }

    /// The effect: `to` became the lead, assigned by `by`.
    pub fn lead_by(mut self, to: &str, by: &str) -> Self {
        self.events.push(CaseEvent::LeadAssigned(LeadAssigned {
            unit: unit(to),
            previous: unit(&self.lead),
            by: unit(by),
        }));
        self.lead = to.to_owned();
        self.dispatched_by = Some(by.to_owned());
        self
    }

    /// The effect: `to` joined as a co-handling unit.
    pub fn co(mut self, to: &str) -> Self {
        self.events
            .push(CaseEvent::CoHandlerAdded(CoHandlerAdded { unit: unit(to) }));
        self
    }

    /// The effect: sent back to the unit that dispatched it.
    pub fn sent_back(mut self) -> Self {
        let to = self.dispatched_by.take().expect("it was dispatched");
        self.events
            .push(CaseEvent::ReturnedToSender(ReturnedToSender {
                from: unit(&self.lead),
                to: unit(&to),
            }));
        self.lead = to;
        self
    }

    /// The effect: rated.
    pub fn rated(mut self, rating: u8) -> Self {
        self.events
            .push(CaseEvent::SatisfactionRated(SatisfactionRated { rating }));
        self
    }

    /// The effect: reopened, led again by the unit it was filed at, with no co-handlers and
    /// no one to send it back to.
    pub fn reopened(mut self) -> Self {
        self.reopened += 1;
        self.events.push(CaseEvent::Reopened(CaseReopened {
            count: self.reopened,
            lead: unit(&self.filed_at),
        }));
        self.lead = self.filed_at.clone();
        self.dispatched_by = None;
        self
    }

    /// Any other event (a ladder step, …).
    pub fn and(mut self, event: CaseEvent) -> Self {
        self.flush();
        self.events.push(event);
        self
    }

    /// How many events there are (the case's version).
    pub fn version(&self) -> u64 {
        let mut copy = self.clone();
        copy.flush();
        copy.events.len() as u64
    }
}

impl IntoIterator for History {
    type Item = CaseEvent;
    type IntoIter = std::vec::IntoIter<CaseEvent>;

    fn into_iter(mut self) -> Self::IntoIter {
        self.flush();
        self.events.into_iter()
    }
}

/// The intake fields a workflow asks for.
pub fn intake(workflow_id: &str) -> Fields {
    match workflow_id {
        "service-request" => fields([("category", choice("public_facilities"))]),
        "district-affairs" => fields([("need", choice("activity"))]),
        "consumer-dispute" => fields([("kind", choice("refund"))]),
        "one-stop-errand" => fields([("errand", choice("business_licence"))]),
        _ => no_fields(),
    }
}

// ---------------------------------------------------------------------------------------------
// Then: the events a decision writes at the scenario's moment.

/// The running deadline `seq` was met, at [`NOW`].
pub fn met(seq: u32) -> CaseEvent {
    met_at(seq, NOW)
}

/// The running deadline `seq` was met, at `local`.
pub fn met_at(seq: u32, local: &str) -> CaseEvent {
    CaseEvent::DeadlineMet(DeadlineMet { seq, at: at(local) })
}

/// The running deadline `seq`, due at `due`, was missed at `local`.
pub fn missed_at(seq: u32, due: &str, local: &str) -> CaseEvent {
    CaseEvent::DeadlineMissed(DeadlineMissed {
        seq,
        at: at(local),
        due_at: at(due),
    })
}

/// `action` moved the case from `from` to `to` with `fields`, at [`NOW`].
pub fn taken(action: &str, from: &str, to: &str, fields: Fields) -> CaseEvent {
    taken_at(action, from, to, fields, NOW)
}

/// The same at `local`.
pub fn taken_at(action: &str, from: &str, to: &str, fields: Fields, local: &str) -> CaseEvent {
    CaseEvent::ActionTaken(ActionTaken {
        action: action.to_owned(),
        from: from.to_owned(),
        to: to.to_owned(),
        fields,
        at: at(local),
    })
}

/// `to` became the lead after `previous`, assigned by `by`.
pub fn lead(to: &str, previous: &str, by: &str) -> CaseEvent {
    CaseEvent::LeadAssigned(LeadAssigned {
        unit: unit(to),
        previous: unit(previous),
        by: unit(by),
    })
}

/// `to` joined as a co-handling unit.
pub fn co(to: &str) -> CaseEvent {
    CaseEvent::CoHandlerAdded(CoHandlerAdded { unit: unit(to) })
}

/// Sent back from `from` to `to`.
pub fn sent_back(from: &str, to: &str) -> CaseEvent {
    CaseEvent::ReturnedToSender(ReturnedToSender {
        from: unit(from),
        to: unit(to),
    })
}

pub fn rated(rating: u8) -> CaseEvent {
    CaseEvent::SatisfactionRated(SatisfactionRated { rating })
}

pub fn merged_into(target: civicflow_core::CaseId) -> CaseEvent {
    CaseEvent::MergedInto(MergedInto { target })
}

/// Reopened for the `count`th time, led again by `lead` (the unit it was filed at).
pub fn reopened(count: u32, lead: &str) -> CaseEvent {
    CaseEvent::Reopened(CaseReopened {
        count,
        lead: unit(lead),
    })
}

/// Deadline `seq` set on entering `stage` at [`NOW`], due at `due`, with a reminder and a
/// breach at those local times (`None`: the ladder has no such step). Every built-in stage
/// escalates at the deadline.
pub fn set(
    seq: u32,
    stage: &str,
    due: &str,
    remind: Option<&str>,
    breach: Option<&str>,
) -> CaseEvent {
    set_at(seq, stage, NOW, due, remind, breach)
}

/// The same, set at `local`.
pub fn set_at(
    seq: u32,
    stage: &str,
    local: &str,
    due: &str,
    remind: Option<&str>,
    breach: Option<&str>,
) -> CaseEvent {
    CaseEvent::DeadlineSet(DeadlineSet {
        seq,
        stage: stage.to_owned(),
        set_at: at(local),
        due_at: at(due),
        remind_at: remind.map(at),
        escalate: true,
        breach_at: breach.map(at),
        basis: Some(basis_of(stage)),
    })
}

/// What a deadline set on entering `stage` records: the spans of the built-in stage of that
/// id (stage ids are unique across the built-in workflows) and the 2026 data the release
/// carries.
pub fn basis_of(stage: &str) -> DeadlineBasis {
    let mut rules = built_in()
        .all()
        .filter_map(|definition| definition.stage(stage))
        .filter_map(|stage| stage.deadline.clone());
    let rule = rules.next().expect("a built-in stage with a deadline");
    assert!(
        rules.all(|other| other == rule),
        "stage {stage} has different deadlines in different built-in workflows"
    );
    DeadlineBasis {
        within: rule.within,
        remind_after: rule.remind_after,
        breach_after: rule.breach_after,
        calendar: covered_2026(),
    }
}

/// The calendar of a deadline set in 2026: the release's data, not provisional.
pub fn covered_2026() -> CalendarStamp {
    CalendarStamp {
        revision: 0,
        zone: "Asia/Shanghai".into(),
        missing_years: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Then: refusals.

/// What each scope says in a refusal.
pub const SUBTREE: &str = "the lead unit or a unit above it";
pub const LEAD: &str = "the lead unit itself";
pub const HANDLER: &str = "the lead unit or a co-handling unit";
pub const REQUESTER: &str = "the person who asked";

pub fn role_not_allowed(acting: &Acting, action: &str, allowed: &[&str]) -> Rejection {
    Rejection::RoleNotAllowed {
        role: acting.role.clone(),
        action: action.to_owned(),
        allowed: roles(allowed),
    }
}

pub fn out_of_scope(acting: &Acting, action: &str, scope: &str, target: &str) -> Rejection {
    Rejection::OutOfScope {
        unit: acting.unit.clone(),
        action: action.to_owned(),
        scope: scope.to_owned(),
        target: unit(target),
    }
}

/// The unit in `field` is out of `acting`'s reach (`rule`: `Reach::describe`, or an
/// opening's rule).
pub fn out_of_reach(acting: &Acting, field: &str, target: &str, rule: &str) -> Rejection {
    Rejection::OutOfReach {
        unit: acting.unit.clone(),
        field: field.to_owned(),
        target: unit(target),
        rule: rule.to_owned(),
    }
}

pub fn not_in_stage(action: &str, stage: &str, possible: &[&str]) -> Rejection {
    Rejection::ActionNotInStage {
        action: action.to_owned(),
        stage: stage.to_owned(),
        possible: possible.iter().map(|p| (*p).to_owned()).collect(),
    }
}

pub fn field_missing(action: &str, field: &str) -> Rejection {
    Rejection::FieldMissing {
        action: action.to_owned(),
        field: field.to_owned(),
    }
}

pub fn field_invalid(field: &str, reason: &str) -> Rejection {
    Rejection::FieldInvalid {
        field: field.to_owned(),
        reason: reason.to_owned(),
    }
}

pub fn invalid(field: &str, reason: &str) -> Rejection {
    Rejection::Invalid {
        field: field.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The caller saw version `seen`; the case is at `actual`.
pub fn stale(seen: u64, actual: u64) -> Rejection {
    Rejection::StaleVersion {
        expected: Version::new(seen),
        actual: Version::new(actual),
    }
}

/// The case is closed.
pub fn case_closed() -> Rejection {
    Rejection::CaseClosed {
        case: case_id().to_string(),
    }
}

/// `workflow@version`.
pub fn reference(workflow_id: &str, version: u32) -> DefinitionRef {
    DefinitionRef {
        id: workflow(workflow_id),
        version,
    }
}
