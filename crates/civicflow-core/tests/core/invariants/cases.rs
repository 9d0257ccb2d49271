//! Cases, pure domain: random commands through `case::decide` and `case::apply`.

use std::collections::BTreeSet;

use civicflow_core::calendar::BusinessCalendar;
use civicflow_core::domain::case::{Case, CaseCommand, CaseEvent, CaseState, Channel, OpenCase};
use civicflow_core::domain::deadline::LadderStep;
use civicflow_core::domain::fields::{FieldValue, Fields};
use civicflow_core::domain::org::{roles, Acting};
use civicflow_core::domain::workflow::{DefinitionRef, Effect, WorkflowId};
use civicflow_core::domain::{Context, Rejection};
use civicflow_core::{CaseId, PersonId, Timestamp, Version};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::common::*;

/// Who takes a deadline step: the scheduler, the system for the lead, or anyone.
#[derive(Debug, Clone, Copy)]
pub enum StepActor {
    Scheduler,
    SystemAtLead,
    Anyone(Pick),
}

#[derive(Debug, Clone)]
pub enum Op {
    Open {
        workflow: usize,
        version: u8,
        acting: Pick,
        unit: usize,
        fields: FieldPlan,
        title: u8,
        requester: bool,
    },
    Act {
        action: ActionPick,
        acting: Pick,
        fields: FieldPlan,
        expected: u8,
    },
    Migrate {
        to_version: u32,
        acting: Pick,
    },
    Step {
        seq: u8,
        step: LadderStep,
        acting: StepActor,
    },
    /// Take every step that is due, as the scheduler does: each must be accepted.
    Scheduler,
    ContactView {
        acting: Pick,
        purpose: u8,
    },
    AcceptDuplicate {
        duplicate: u8,
    },
    Advance {
        minutes: u32,
    },
}

pub fn open_op() -> impl Strategy<Value = Op> {
    (
        0usize..4,
        0u8..6,
        pick(),
        0usize..100,
        field_plan(),
        0u8..12,
        prop::bool::weighted(0.8),
    )
        .prop_map(
            |(workflow, version, acting, unit, fields, title, requester)| Op::Open {
                workflow,
                version,
                acting,
                unit,
                fields,
                title,
                requester,
            },
        )
}

fn step_actor() -> impl Strategy<Value = StepActor> {
    prop_oneof![
        5 => Just(StepActor::Scheduler),
        2 => Just(StepActor::SystemAtLead),
        3 => pick().prop_map(StepActor::Anyone),
    ]
}

pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (action_pick(), pick(), field_plan(), 0u8..12).prop_map(
            |(action, acting, fields, expected)| Op::Act { action, acting, fields, expected }
        ),
        5 => minutes().prop_map(|minutes| Op::Advance { minutes }),
        3 => Just(Op::Scheduler),
        3 => (0u8..4, ladder_step(), step_actor())
            .prop_map(|(seq, step, acting)| Op::Step { seq, step, acting }),
        1 => (0u32..5, pick()).prop_map(|(to_version, acting)| Op::Migrate { to_version, acting }),
        1 => (pick(), 0u8..6).prop_map(|(acting, purpose)| Op::ContactView { acting, purpose }),
        1 => (0u8..4).prop_map(|duplicate| Op::AcceptDuplicate { duplicate }),
        1 => open_op(),
    ]
}

/// One case's life: the state, the time, and the independent bookkeeping.
pub struct CaseRun {
    fx: &'static Fixture,
    calendar: BusinessCalendar,
    pub now: Timestamp,
    id: CaseId,
    others: Vec<CaseId>,
    pub state: Option<CaseState>,
    events: u64,
    ledger: Ledger,
    pub trace: Vec<String>,
}

enum Decided {
    Refused(Rejection),
    Accepted(Vec<CaseEvent>),
}

impl CaseRun {
    pub fn new() -> Self {
        Self {
            fx: Fixture::get(),
            calendar: BusinessCalendar::china(),
            now: monday_morning(),
            id: case_id(1),
            others: vec![case_id(2), case_id(3), case_id(4)],
            state: None,
            events: 0,
            ledger: Ledger::default(),
            trace: Vec::new(),
        }
    }

    /// Runs the ops, then says what happened if an invariant broke.
    pub fn run(&mut self, open: &Op, ops: &[Op]) -> Result<(), TestCaseError> {
        let result = self.run_inner(open, ops);
        result.map_err(|e| {
            TestCaseError::fail(format!(
                "{e}\n-- what happened --\n{}",
                self.trace.join("\n")
            ))
        })
    }

    fn run_inner(&mut self, open: &Op, ops: &[Op]) -> Result<(), TestCaseError> {
        self.apply_op(open)?;
        if self.state.is_none() {
            // Make sure there is a case: a resident files one properly.
            let workflow = match open {
                Op::Open { workflow, .. } => *workflow,
                _ => 0,
            };
            let acting = Acting::new(
                actor("resident@tonghui"),
                role(roles::RESIDENT),
                unit("tonghui"),
            );
            let command = self.open_command(
                workflow,
                0,
                0,
                FieldPlan {
                    mutation: 0,
                    seed: 0,
                },
                99,
                true,
            );
            match self.submit(&acting, &command)? {
                Decided::Accepted(_) => {}
                Decided::Refused(r) => prop_assert!(false, "a proper open was refused: {r}"),
            }
        }
        for op in ops {
            self.apply_op(op)?;
        }
        Ok(())
    }

    fn ctx<'a>(&'a self, acting: &'a Acting) -> Context<'a> {
        Context {
            acting,
            org: &self.fx.org,
            definitions: registry(),
            time: &self.calendar,
            now: self.now,
        }
    }

    fn open_command(
        &self,
        workflow: usize,
        version: u8,
        unit_index: usize,
        plan: FieldPlan,
        title: u8,
        requester: bool,
    ) -> CaseCommand {
        let id = WorkflowId::new(WORKFLOWS[workflow % WORKFLOWS.len()]).expect("valid");
        let version = match version {
            0 | 1 => None,
            2 => Some(1),
            3 => Some(2),
            4 => Some(3),
            _ => Some(9),
        };
        let definition = match version {
            Some(v) => registry().get(&DefinitionRef {
                id: id.clone(),
                version: v,
            }),
            None => registry().latest(&id),
        }
        .or_else(|| registry().latest(&id))
        .expect("a built-in workflow");
        let world = FieldWorld {
            units: &self.fx.units,
            cases: &self.others,
            this_case: Some(self.id),
            now: self.now,
        };
        CaseCommand::Open(OpenCase {
            case: self.id,
            workflow: id,
            version,
            unit: self.fx.units[unit_index % self.fx.units.len()].clone(),
            title: match title {
                0 => "   ".into(),
                1 => "长".repeat(201),
                _ => "路灯不亮 street light out".into(),
            },
            description: "三个晚上了 three nights now".into(),
            fields: make_fields(&definition.open.fields, plan, &world),
            requester: requester.then(|| PersonId::parse(&format!("{:032x}", 77)).expect("uuid")),
            channel: Channel::Door,
            place: None,
            new_requester: false,
        })
    }

    fn apply_op(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let fx = self.fx;
        match *op {
            Op::Open {
                workflow,
                version,
                acting,
                unit: unit_index,
                fields,
                title,
                requester,
            } => {
                let command =
                    self.open_command(workflow, version, unit_index, fields, title, requester);
                let CaseCommand::Open(open) = &command else {
                    unreachable!("an open command")
                };
                let definition = match open.version {
                    Some(v) => registry().get(&DefinitionRef {
                        id: open.workflow.clone(),
                        version: v,
                    }),
                    None => registry().latest(&open.workflow),
                }
                .cloned();
                let acting = acting.choose(&fx.pool, |a| {
                    fx.granted(a)
                        && definition
                            .as_ref()
                            .is_some_and(|d| a.is_system() || d.open.roles.contains(&a.role))
                });
                let before = self.state.clone();
                match self.submit(&acting, &command)? {
                    Decided::Refused(r) => {
                        if before.is_some() {
                            prop_assert!(
                                matches!(r, Rejection::AlreadyExists { .. }),
                                "opening an existing case: {r}"
                            );
                        }
                    }
                    Decided::Accepted(events) => {
                        prop_assert!(before.is_none(), "a case was opened twice");
                        let definition = definition.expect("accepted, so the workflow exists");
                        let after = self.state.as_ref().expect("opened");
                        prop_assert!(fx.granted(&acting), "opened by {acting:?}, not a grant");
                        prop_assert!(
                            acting.is_system() || definition.open.roles.contains(&acting.role)
                        );
                        prop_assert_eq!(&after.stage, &definition.initial_stage);
                        prop_assert_eq!(&after.lead, &open.unit);
                        prop_assert_eq!(&after.workflow, &definition.reference());
                        prop_assert_eq!(&after.filed_by, &acting.actor);
                        prop_assert!(matches!(events.first(), Some(CaseEvent::Opened(_))));
                        let has_rule = definition
                            .stage(&definition.initial_stage)
                            .is_some_and(|s| s.deadline.is_some());
                        prop_assert_eq!(
                            has_rule,
                            matches!(events.get(1), Some(CaseEvent::DeadlineSet(d)) if d.seq == 1),
                            "the first stage's deadline is deadline 1"
                        );
                    }
                }
            }
            Op::Act {
                action,
                acting,
                fields,
                expected,
            } => {
                let Some(state) = self.state.clone() else {
                    return self.expect_not_found(&CaseCommand::Act {
                        action: "dispatch".into(),
                        fields: Fields::new(),
                        expected_version: None,
                    });
                };
                let definition = registry()
                    .get(&state.workflow)
                    .expect("the pinned definition exists")
                    .clone();
                let action_id = action.choose(&definition, &state.stage);
                let spec = definition.action(&action_id).cloned();
                let world = FieldWorld {
                    units: &fx.units,
                    cases: &self.others,
                    this_case: Some(self.id),
                    now: self.now,
                };
                let given = make_fields(
                    spec.as_ref().map_or(&[][..], |a| a.fields.as_slice()),
                    fields,
                    &world,
                );
                let acting = acting.choose(&fx.pool, |a| {
                    spec.as_ref().is_some_and(|s| {
                        civicflow_core::domain::case::check_authority(&state, s, a, &fx.org).is_ok()
                    })
                });
                let expected_version = match expected {
                    10 => state.version,
                    11 => Version::new(self.events + 3),
                    _ => None,
                };
                let command = CaseCommand::Act {
                    action: action_id.clone(),
                    fields: given.clone(),
                    expected_version,
                };
                if let Decided::Accepted(events) = self.submit(&acting, &command)? {
                    let action = spec.expect("accepted, so the action exists");
                    let after = self.state.clone().expect("a case");
                    prop_assert!(
                        expected_version.is_none() || expected_version == state.version,
                        "accepted with a stale expected version"
                    );
                    prop_assert!(
                        action.from.contains(&state.stage),
                        "{action_id} accepted in stage {}",
                        state.stage
                    );
                    prop_assert!(
                        fx.granted(&acting)
                            && (acting.is_system()
                                || (action.roles.contains(&acting.role)
                                    && fx.in_scope(action.scope, &acting, &state))),
                        "{action_id} accepted from {acting:?}, who may not take it"
                    );
                    for spec in action.fields.iter().filter(|f| f.required) {
                        prop_assert!(given.contains_key(&spec.name), "{} missing", spec.name);
                    }
                    for name in given.keys() {
                        prop_assert!(
                            action.fields.iter().any(|f| &f.name == name),
                            "undeclared field {name} accepted"
                        );
                    }
                    let taken: Vec<_> = events
                        .iter()
                        .filter_map(|e| match e {
                            CaseEvent::ActionTaken(t) => Some(t),
                            _ => None,
                        })
                        .collect();
                    prop_assert_eq!(taken.len(), 1, "one ActionTaken per action");
                    prop_assert_eq!(&taken[0].from, &state.stage);
                    prop_assert_eq!(&taken[0].to, &action.to);
                    prop_assert_eq!(&after.stage, &action.to);
                    // Leaving the stage, or handing the case to another unit within it (a
                    // reassignment, a send-back, taking it on), closes the running deadline
                    // and starts the stage's deadline afresh for the unit now responsible.
                    let hands_over = action.effects.iter().any(|e| {
                        matches!(
                            e,
                            Effect::AssignLead(_) | Effect::ReturnToSender | Effect::TakeLead
                        )
                    });
                    let leaving = action.to != state.stage || hands_over;
                    prop_assert_eq!(
                        leaving && state.deadline.is_some(),
                        matches!(
                            events.first(),
                            Some(CaseEvent::DeadlineMet(_) | CaseEvent::DeadlineMissed(_))
                        ),
                        "leaving a stage closes its deadline first"
                    );
                    let rule = definition
                        .stage(&action.to)
                        .and_then(|s| s.deadline.as_ref());
                    prop_assert_eq!(
                        leaving && rule.is_some(),
                        matches!(events.last(), Some(CaseEvent::DeadlineSet(_))),
                        "entering a stage with a deadline sets it"
                    );
                    if !leaving {
                        prop_assert_eq!(
                            &after.deadline,
                            &state.deadline,
                            "staying in the stage with the same unit keeps its deadline"
                        );
                    }
                    for effect in &action.effects {
                        match effect {
                            Effect::Reopen => {
                                prop_assert!(!after.closed);
                                prop_assert_eq!(after.reopened, state.reopened + 1);
                            }
                            Effect::AssignLead(field) => {
                                prop_assert_eq!(
                                    given.get(field),
                                    Some(&FieldValue::Unit(after.lead.clone()))
                                );
                            }
                            Effect::TakeLead => prop_assert_eq!(&after.lead, &acting.unit),
                            Effect::Rate(field) => match given.get(field) {
                                Some(rating) => prop_assert_eq!(
                                    Some(rating.clone()),
                                    after.rating.map(FieldValue::Rating)
                                ),
                                None => prop_assert_eq!(after.rating, state.rating),
                            },
                            Effect::MergeInto(field) => {
                                prop_assert_eq!(
                                    given.get(field).cloned(),
                                    after.merged_into.map(FieldValue::Case)
                                );
                                prop_assert!(after.merged_into != Some(self.id));
                            }
                            Effect::ReturnToSender => {
                                prop_assert_eq!(Some(&after.lead), state.dispatched_by.as_ref());
                            }
                            _ => {}
                        }
                    }
                }
            }
            Op::Migrate { to_version, acting } => {
                let Some(state) = self.state.clone() else {
                    return self.expect_not_found(&CaseCommand::Migrate { to_version });
                };
                let acting = acting.choose(&fx.pool, |a| {
                    fx.granted(a)
                        && (a.is_system()
                            || (a.role.as_str() == roles::COMMUNITY_ADMIN
                                && fx.within(&state.lead, &a.unit)))
                });
                let command = CaseCommand::Migrate { to_version };
                if let Decided::Accepted(events) = self.submit(&acting, &command)? {
                    let after = self.state.as_ref().expect("a case");
                    let to = DefinitionRef {
                        id: state.workflow.id.clone(),
                        version: to_version,
                    };
                    prop_assert_eq!(&after.workflow, &to);
                    prop_assert_eq!(events.is_empty(), to == state.workflow);
                    prop_assert_eq!(&after.stage, &state.stage);
                    prop_assert_eq!(after.closed, state.closed);
                    prop_assert_eq!(
                        &after.deadline,
                        &state.deadline,
                        "a migration keeps the running deadline"
                    );
                    prop_assert!(
                        acting.is_system()
                            || (acting.role.as_str() == roles::COMMUNITY_ADMIN
                                && fx.within(&state.lead, &acting.unit)),
                        "migrated by {acting:?}"
                    );
                }
            }
            Op::Step { seq, step, acting } => {
                let Some(state) = self.state.clone() else {
                    return self.expect_not_found(&CaseCommand::ReachDeadlineStep { seq: 1, step });
                };
                let running = state
                    .deadline
                    .as_ref()
                    .map(|d| d.seq)
                    .or(self.ledger.last().map(|d| d.seq))
                    .unwrap_or(1);
                let seq = match seq {
                    0 => running,
                    1 => running + 1,
                    2 => running.saturating_sub(1),
                    _ => 0,
                };
                let acting = match acting {
                    StepActor::Scheduler => scheduler(),
                    StepActor::SystemAtLead => Acting::system(state.lead.clone()),
                    StepActor::Anyone(p) => p.choose(&fx.pool, |_| true),
                };
                let due = self
                    .ledger
                    .due_now(self.now)
                    .iter()
                    .any(|(s, st, _)| *s == seq && *st == step);
                let command = CaseCommand::ReachDeadlineStep { seq, step };
                match self.submit(&acting, &command)? {
                    Decided::Accepted(events) => {
                        prop_assert!(acting.is_system(), "a step taken by {acting:?}");
                        prop_assert_eq!(events.len(), 1);
                        let CaseEvent::DeadlineStepReached(e) = &events[0] else {
                            return Err(TestCaseError::fail("a step is a DeadlineStepReached"));
                        };
                        let expected_unit = match e.step {
                            LadderStep::Remind => state.lead.clone(),
                            _ => fx.up(&state.lead).unwrap_or(state.lead.clone()),
                        };
                        prop_assert_eq!(&e.unit, &expected_unit, "the step goes to the right unit");
                    }
                    Decided::Refused(r) => {
                        prop_assert!(
                            !(due && acting.is_system()),
                            "the system may take a due step, but was refused: {r}"
                        );
                    }
                }
            }
            Op::Scheduler => {
                for (seq, step, _) in self.ledger.due_now(self.now) {
                    let command = CaseCommand::ReachDeadlineStep { seq, step };
                    if let Decided::Refused(r) = self.submit(&scheduler(), &command)? {
                        prop_assert!(false, "a due step {seq}/{step:?} was refused: {r}");
                    }
                }
                prop_assert!(
                    self.ledger.due_now(self.now).is_empty(),
                    "nothing due is left after the scheduler ran"
                );
            }
            Op::ContactView { acting, purpose } => {
                let purpose = match purpose {
                    0 => String::new(),
                    1 => "长".repeat(201),
                    _ => "回访 return visit call".into(),
                };
                let command = CaseCommand::RecordContactView {
                    purpose: purpose.clone(),
                };
                let Some(state) = self.state.clone() else {
                    return self.expect_not_found(&command);
                };
                let definition = registry().get(&state.workflow).expect("pinned").clone();
                let acting = acting.choose(&fx.pool, |a| {
                    fx.granted(a)
                        && (a.is_system()
                            || (definition.contact_roles.contains(&a.role)
                                && (fx.within(&state.lead, &a.unit) || a.unit == state.unit)))
                });
                if let Decided::Accepted(events) = self.submit(&acting, &command)? {
                    prop_assert!(state.requester.is_some());
                    prop_assert!(
                        acting.is_system()
                            || (fx.granted(&acting)
                                && definition.contact_roles.contains(&acting.role)),
                        "contact data shown to {acting:?}"
                    );
                    let viewed = matches!(
                        &events[..],
                        [CaseEvent::ContactViewed(v)]
                            if Some(v.person) == state.requester && v.purpose == purpose
                    );
                    prop_assert!(
                        viewed,
                        "a contact view records one ContactViewed: {events:?}"
                    );
                    let mut after = self.state.clone().expect("a case");
                    after.version = state.version;
                    prop_assert_eq!(
                        &after,
                        &state,
                        "a contact view changes nothing but the version"
                    );
                }
            }
            Op::AcceptDuplicate { duplicate } => {
                let duplicate = match duplicate {
                    0 => self.id,
                    n => self.others[usize::from(n - 1) % self.others.len()],
                };
                let command = CaseCommand::AcceptDuplicate { duplicate };
                let Some(state) = self.state.clone() else {
                    return self.expect_not_found(&command);
                };
                let acting = Acting::system(state.lead.clone());
                if let Decided::Accepted(events) = self.submit(&acting, &command)? {
                    prop_assert!(
                        duplicate != self.id,
                        "a case accepted itself as a duplicate"
                    );
                    prop_assert_eq!(events.is_empty(), state.duplicates.contains(&duplicate));
                    let after = self.state.as_ref().expect("a case");
                    prop_assert!(after.duplicates.contains(&duplicate));
                }
            }
            Op::Advance { minutes } => {
                self.now = after_minutes(self.now, minutes);
                self.trace
                    .push(format!("… {minutes} minutes later: {}", self.now));
            }
        }
        self.check_state()
    }

    fn expect_not_found(&mut self, command: &CaseCommand) -> Result<(), TestCaseError> {
        let acting = scheduler();
        let result = decide_case(&None, command, &self.ctx(&acting));
        prop_assert!(
            matches!(result, Err(Rejection::NotFound { .. })),
            "a command to no case: {result:?}"
        );
        Ok(())
    }

    /// Decides and, when accepted, applies; checks what holds for every command.
    fn submit(&mut self, acting: &Acting, command: &CaseCommand) -> Result<Decided, TestCaseError> {
        let before = self.state.clone();
        let first = decide_case(&self.state, command, &self.ctx(acting));
        let again = decide_case(&self.state, command, &self.ctx(acting));
        prop_assert_eq!(&first, &again, "decide gives the same answer twice");
        prop_assert_eq!(&self.state, &before, "decide changed the state");
        let label = describe(command);
        let events = match first {
            Err(rejection) => {
                self.trace.push(format!(
                    "{label} as {}/{}/{}: refused: {rejection}",
                    acting.actor, acting.role, acting.unit
                ));
                return Ok(Decided::Refused(rejection));
            }
            Ok(events) => events,
        };
        self.trace.push(format!(
            "{label} as {}/{}/{}: {}",
            acting.actor,
            acting.role,
            acting.unit,
            events.iter().map(short).collect::<Vec<_>>().join(", ")
        ));

        // A closed case accepts nothing but an action with the reopen effect. Two commands
        // are not actions and are also accepted on a closed case, by design: recording that
        // the requester's contact data was shown (a read kept for the audit, which changes
        // nothing; the return visit happens after closing), and migrating to a version in
        // which the stage is terminal too (the case stays closed). Deadline steps are never
        // accepted: a terminal stage has no deadline (`validate` refuses one), and entering
        // it closes the running one.
        if before.as_ref().is_some_and(|s| s.closed) && !events.is_empty() {
            let state = before.as_ref().expect("closed, so it exists");
            let allowed = match command {
                CaseCommand::Act { action, .. } => registry()
                    .get(&state.workflow)
                    .and_then(|d| d.action(action))
                    .is_some_and(|a| a.effects.contains(&Effect::Reopen)),
                CaseCommand::RecordContactView { .. } | CaseCommand::Migrate { .. } => true,
                _ => false,
            };
            prop_assert!(
                allowed,
                "a closed case accepted {label} from {acting:?}: {events:?}"
            );
        }
        // Only a no-op may produce no events.
        if events.is_empty() {
            let state = before.as_ref();
            let no_op = match command {
                CaseCommand::Migrate { to_version } => {
                    state.is_some_and(|s| s.workflow.version == *to_version)
                }
                CaseCommand::AcceptDuplicate { duplicate } => {
                    state.is_some_and(|s| s.duplicates.contains(duplicate))
                }
                _ => false,
            };
            prop_assert!(no_op, "{label} was accepted and produced no events");
        }
        if !matches!(command, CaseCommand::ReachDeadlineStep { .. }) {
            prop_assert!(
                !events
                    .iter()
                    .any(|e| matches!(e, CaseEvent::DeadlineStepReached(_))),
                "{label} took a deadline step"
            );
        }

        for event in &events {
            let running = self.state.as_ref().and_then(|s| s.deadline.clone());
            let what = format!("{label} → {}", short(event));
            match event {
                CaseEvent::DeadlineSet(e) => {
                    self.ledger
                        .note(&what, running.as_ref(), DeadlineEvent::Set(e), self.now)?;
                }
                CaseEvent::DeadlineMet(e) => {
                    self.ledger
                        .note(&what, running.as_ref(), DeadlineEvent::Met(e), self.now)?;
                }
                CaseEvent::DeadlineMissed(e) => {
                    self.ledger.note(
                        &what,
                        running.as_ref(),
                        DeadlineEvent::Missed(e),
                        self.now,
                    )?;
                }
                CaseEvent::DeadlineStepReached(e) => {
                    self.ledger
                        .note(&what, running.as_ref(), DeadlineEvent::Step(e), self.now)?;
                }
                _ => {}
            }
            self.events += 1;
            let version = Version::new(self.events).expect("non-zero");
            apply_event::<Case>(&mut self.state, event, version);
            prop_assert!(self.state.is_some(), "{what}: apply lost the case");
        }
        Ok(Decided::Accepted(events))
    }

    /// What holds after every command, accepted or not.
    fn check_state(&self) -> Result<(), TestCaseError> {
        let Some(state) = &self.state else {
            prop_assert_eq!(self.events, 0);
            return Ok(());
        };
        let definition = registry().get(&state.workflow);
        prop_assert!(
            definition.is_some(),
            "pinned to unknown {}",
            &state.workflow
        );
        let definition = definition.expect("checked");
        let stage = definition.stage(&state.stage);
        prop_assert!(
            stage.is_some(),
            "stage {} is not a stage of {}",
            &state.stage,
            &state.workflow
        );
        prop_assert_eq!(
            state.closed,
            stage.is_some_and(|s| s.terminal),
            "closed must equal 'the stage {} is terminal'",
            &state.stage
        );
        prop_assert!(
            self.fx.org.unit(&state.lead).is_some(),
            "the lead {} is not a unit of the chart",
            &state.lead
        );
        for co in &state.co_handlers {
            prop_assert!(
                self.fx.org.unit(co).is_some(),
                "co-handler {co} is not a unit"
            );
        }
        prop_assert!(
            !state.co_handlers.contains(&state.lead),
            "the lead {} is also listed as a co-handler",
            &state.lead
        );
        prop_assert_eq!(state.version, Version::new(self.events));
        if state.closed {
            prop_assert!(
                state.deadline.is_none(),
                "a closed case has a running deadline"
            );
        }
        if let Some(deadline) = &state.deadline {
            prop_assert_eq!(&deadline.stage, &state.stage, "the deadline is the stage's");
            prop_assert_eq!(Some(deadline.seq), self.ledger.last().map(|d| d.seq));
            prop_assert!(!self.ledger.is_closed(deadline.seq));
            prop_assert_eq!(&deadline.reached, &self.ledger.steps_of(deadline.seq));
        }
        Ok(())
    }
}

fn describe(command: &CaseCommand) -> String {
    match command {
        CaseCommand::Open(o) => format!("open {}@{:?} at {}", o.workflow, o.version, o.unit),
        CaseCommand::Act {
            action,
            fields,
            expected_version,
        } => format!(
            "act {action} {:?}{}",
            fields.keys().collect::<BTreeSet<_>>(),
            expected_version.map_or(String::new(), |v| format!(" expecting v{v}"))
        ),
        CaseCommand::Migrate { to_version } => format!("migrate to v{to_version}"),
        CaseCommand::ReachDeadlineStep { seq, step } => format!("step {seq}/{}", step.as_str()),
        CaseCommand::RecordContactView { .. } => "view contact".into(),
        CaseCommand::AcceptDuplicate { duplicate } => format!("accept duplicate {duplicate}"),
        _ => format!("{command:?}"),
    }
}

fn short(event: &CaseEvent) -> String {
    match event {
        CaseEvent::Opened(e) => format!("Opened({} at {})", e.stage, e.unit),
        CaseEvent::ActionTaken(e) => format!("ActionTaken({}: {}→{})", e.action, e.from, e.to),
        CaseEvent::LeadAssigned(e) => {
            format!("LeadAssigned({}→{} by {})", e.previous, e.unit, e.by)
        }
        CaseEvent::CoHandlerAdded(e) => format!("CoHandlerAdded({})", e.unit),
        CaseEvent::ReturnedToSender(e) => format!("ReturnedToSender({}→{})", e.from, e.to),
        CaseEvent::DeadlineSet(e) => format!("DeadlineSet({} {} due {})", e.seq, e.stage, e.due_at),
        CaseEvent::DeadlineMet(e) => format!("DeadlineMet({})", e.seq),
        CaseEvent::DeadlineMissed(e) => format!("DeadlineMissed({})", e.seq),
        CaseEvent::DeadlineStepReached(e) => {
            format!("Step({} {} → {})", e.seq, e.step.as_str(), e.unit)
        }
        other => {
            let text = format!("{other:?}");
            text.split('(').next().unwrap_or("event").to_owned()
        }
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// Random commands from random actors never break a case's invariants.
    #[test]
    fn case_commands_keep_the_invariants(
        open in open_op(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        CaseRun::new().run(&open, &ops)?;
    }
}
