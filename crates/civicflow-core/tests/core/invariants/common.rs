//! What the three properties share: the case count, the fixture org chart, the workflow
//! registry with extra versions to migrate between, random choices of actor and fields, and
//! the two independent checkers (the deadline ledger and directive progress).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::time::Duration;

use civicflow_core::calendar::Span;
use civicflow_core::domain::aggregate::{Aggregate, Fold};
use civicflow_core::domain::case::{Case, CaseCommand, CaseEvent};
use civicflow_core::domain::case::{CaseState, SELF_FILING};
use civicflow_core::domain::deadline::{
    ActiveDeadline, DeadlineMet, DeadlineMissed, DeadlineSet, DeadlineStepReached, LadderStep,
};
use civicflow_core::domain::directive::{
    Directive, DirectiveCommand, DirectiveEvent, Part, PartEvent,
};
use civicflow_core::domain::directive::{DirectiveState, PartState, Progress};
use civicflow_core::domain::fields::{FieldKind, FieldSpec, FieldValue, Fields};
use civicflow_core::domain::org::{roles, Acting, ActorKind, OrgChart, OrgCommand, Tier};
use civicflow_core::domain::org::{Org, OrgEvent};
use civicflow_core::domain::workflow::{
    Action, DeadlineRule, Definition, DefinitionRegistry, Scope, BUILT_IN,
};
use civicflow_core::domain::{Context, Rejection, WallClockOnly};
use civicflow_core::{ActorId, CaseId, DirectiveId, Role, Timestamp, UnitId, Version};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};

/// The environment variable that raises the number of cases of every property.
pub const CASES_ENV: &str = "CIVICFLOW_PROPTEST_CASES";

/// A proptest configuration with `default_cases` cases (more if [`CASES_ENV`] asks for
/// more) and no failure-persistence files (a failure prints its minimal input instead).
pub fn config(default_cases: u32) -> Config {
    let cases = std::env::var(CASES_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .map_or(default_cases, |n| n.max(default_cases));
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Monday 2026-03-02 09:00 in Asia/Shanghai (01:00 UTC): a plain working day.
pub fn monday_morning() -> Timestamp {
    Timestamp::from_unix_seconds(1_772_413_200)
}

pub fn unit(id: &str) -> UnitId {
    UnitId::new(id).expect("a valid unit id")
}

pub fn role(name: &str) -> Role {
    Role::new(name).expect("a valid role")
}

pub fn actor(id: &str) -> ActorId {
    ActorId::new(id).expect("a valid actor id")
}

/// A case id from a number, deterministic (proptest inputs must replay exactly).
pub fn case_id(n: u128) -> CaseId {
    CaseId::parse(&format!("{n:032x}")).expect("32 hex digits are a UUID")
}

/// The unit the scheduler acts for (`Engine::run_due_deadlines` uses it); not in any chart.
pub fn scheduler() -> Acting {
    Acting::system(unit("system"))
}

// ---------------------------------------------------------------------------------------------
// The fixture org chart

/// Two communities, every tier of the chain, and units outside it (under a community and
/// free-standing).
pub const UNITS: &[(&str, &str, Tier, Option<&str>)] = &[
    ("tonghui", "通惠社区", Tier::Community, None),
    ("grid-1", "第一网格", Tier::Grid, Some("tonghui")),
    ("grid-2", "第二网格", Tier::Grid, Some("tonghui")),
    ("yiwu-heart", "义乌之心", Tier::Enterprise, Some("grid-1")),
    ("intime", "银泰百货", Tier::Enterprise, Some("grid-2")),
    ("shop-yh-101", "101 茶饮", Tier::Shop, Some("yiwu-heart")),
    ("shop-yh-102", "102 书店", Tier::Shop, Some("yiwu-heart")),
    ("shop-it-201", "201 服饰", Tier::Shop, Some("intime")),
    (
        "market-regulation",
        "市场监管所",
        Tier::Department,
        Some("tonghui"),
    ),
    (
        "legal-aid-centre",
        "法律援助中心",
        Tier::SocialOrganization,
        Some("tonghui"),
    ),
    (
        "red-volunteers",
        "红色志愿队",
        Tier::VolunteerTeam,
        Some("tonghui"),
    ),
    ("city-bureau", "市局", Tier::Department, None),
    ("xinma", "新马社区", Tier::Community, None),
    ("xm-grid-1", "新马一网格", Tier::Grid, Some("xinma")),
    ("xm-mall", "新马商场", Tier::Enterprise, Some("xm-grid-1")),
    ("xm-shop-1", "新马 1 号店", Tier::Shop, Some("xm-mall")),
];

/// The actor who holds several roles at once (a resident who is also staff elsewhere).
const MULTI: &[(&str, &str)] = &[
    (roles::RESIDENT, "tonghui"),
    (roles::GRID_WORKER, "grid-1"),
    (roles::SHOP_OWNER, "shop-yh-101"),
    (roles::COMMUNITY_ADMIN, "xinma"),
];

/// The org commands that build the fixture: every unit; for every unit every role but the
/// system's, held by an actor of its own (`role@unit`); an actor with several roles; and a
/// registered actor with no role at all.
pub fn fixture_commands() -> Vec<OrgCommand> {
    let mut commands = Vec::new();
    for (id, name, tier, parent) in UNITS {
        commands.push(OrgCommand::CreateUnit {
            id: unit(id),
            name: (*name).to_owned(),
            tier: *tier,
            parent: parent.map(unit),
        });
    }
    let mut register = |id: &str| {
        commands.push(OrgCommand::RegisterActor {
            id: actor(id),
            name: id.to_owned(),
            kind: ActorKind::Person,
        });
    };
    for (id, ..) in UNITS {
        for r in roles::ALL.iter().filter(|r| **r != roles::SYSTEM) {
            register(&format!("{r}@{id}"));
        }
    }
    register("multi");
    register("nobody");
    for (id, ..) in UNITS {
        for r in roles::ALL.iter().filter(|r| **r != roles::SYSTEM) {
            commands.push(OrgCommand::GrantRole {
                actor: actor(&format!("{r}@{id}")),
                role: role(r),
                unit: unit(id),
            });
        }
    }
    for (r, u) in MULTI {
        commands.push(OrgCommand::GrantRole {
            actor: actor("multi"),
            role: role(r),
            unit: unit(u),
        });
    }
    commands
}

/// Who may act: every real grant, the system at every unit and at the scheduler's unit, and
/// outsiders (an unregistered actor, an actor without roles, an actor claiming a role they do
/// not hold, a unit that does not exist).
pub fn acting_pool(units: &[UnitId]) -> Vec<Acting> {
    let mut pool = Vec::new();
    for u in units {
        for r in roles::ALL.iter().filter(|r| **r != roles::SYSTEM) {
            pool.push(Acting::new(actor(&format!("{r}@{u}")), role(r), u.clone()));
        }
    }
    for (r, u) in MULTI {
        pool.push(Acting::new(actor("multi"), role(r), unit(u)));
    }
    for u in units {
        pool.push(Acting::system(u.clone()));
    }
    pool.push(scheduler());
    pool.push(Acting::new(
        actor("ghost"),
        role(roles::COMMUNITY_ADMIN),
        unit("tonghui"),
    ));
    pool.push(Acting::new(
        actor("nobody"),
        role(roles::RESIDENT),
        unit("tonghui"),
    ));
    pool.push(Acting::new(
        actor("grid_worker@grid-1"),
        role(roles::COMMUNITY_ADMIN),
        unit("tonghui"),
    ));
    pool.push(Acting::new(
        actor("community_admin@tonghui"),
        role(roles::COMMUNITY_ADMIN),
        unit("nowhere"),
    ));
    pool
}

/// The fixture, built through the pure org `decide` and `apply`.
pub struct Fixture {
    /// The chart.
    pub org: OrgChart,
    /// Every unit, in fixture order.
    pub units: Vec<UnitId>,
    /// Each unit's parent, kept apart from the chart (an independent oracle for scopes).
    pub parent: BTreeMap<UnitId, Option<UnitId>>,
    /// Every acting to draw from.
    pub pool: Vec<Acting>,
}

impl Fixture {
    fn build() -> Self {
        let mut org = OrgChart::default();
        let system = Acting::system(unit("tonghui"));
        for command in fixture_commands() {
            let events = decide_org(&org, &command, &system).expect("the fixture is valid");
            for event in &events {
                apply_event::<Org>(&mut org, event, Version::FIRST);
            }
        }
        let units: Vec<UnitId> = UNITS.iter().map(|(id, ..)| unit(id)).collect();
        let parent = UNITS
            .iter()
            .map(|(id, _, _, p)| (unit(id), p.map(unit)))
            .collect();
        let pool = acting_pool(&units);
        Self {
            org,
            units,
            parent,
            pool,
        }
    }

    /// The shared fixture.
    pub fn get() -> &'static Fixture {
        static FIXTURE: OnceLock<Fixture> = OnceLock::new();
        FIXTURE.get_or_init(Fixture::build)
    }

    /// Whether `u` is `ancestor` or lies below it, by the fixture's own parent table.
    pub fn within(&self, u: &UnitId, ancestor: &UnitId) -> bool {
        let mut current = Some(u.clone());
        while let Some(id) = current {
            if &id == ancestor {
                return true;
            }
            current = self.parent.get(&id).cloned().flatten();
        }
        false
    }

    /// The unit one tier up, by the fixture's own table.
    pub fn up(&self, u: &UnitId) -> Option<UnitId> {
        self.parent.get(u).cloned().flatten()
    }

    /// Whether `acting` is a real grant (or the system).
    pub fn granted(&self, acting: &Acting) -> bool {
        acting.is_system() || self.org.holds(&acting.actor, &acting.role, &acting.unit)
    }

    /// Whether `acting` is within `scope` of the case `state`: the rule of `docs/engine.md`
    /// and `case.rs`, written again here (the requester is the actor who filed the case in a
    /// self-filing role, acting in that role).
    pub fn in_scope(&self, scope: Scope, acting: &Acting, state: &CaseState) -> bool {
        match scope {
            Scope::Any => true,
            Scope::Subtree => self.within(&state.lead, &acting.unit),
            Scope::Lead => acting.unit == state.lead,
            Scope::Handler => acting.unit == state.lead || state.co_handlers.contains(&acting.unit),
            Scope::Requester => {
                SELF_FILING.contains(&state.filed_as.as_str())
                    && acting.actor == state.filed_by
                    && acting.role == state.filed_as
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Workflows: the built-in ones, a version 2 of each, and a version 3 of service-request

/// The built-in workflows.
pub const WORKFLOWS: &[&str] = &[
    "service-request",
    "district-affairs",
    "consumer-dispute",
    "one-stop-errand",
];

fn built_in(id: &str) -> Definition {
    let (_, text) = BUILT_IN
        .iter()
        .find(|(file, _)| file.trim_end_matches(".toml") == id)
        .expect("a built-in workflow");
    Definition::from_toml(text, roles::ALL).expect("the built-in workflows are valid")
}

fn build_registry() -> DefinitionRegistry {
    let mut registry = DefinitionRegistry::built_in();
    // Version 2 of each: the same stages, another ladder (no reminder, a breach an hour after
    // the deadline), so a migrated case keeps the deadline it is running.
    for id in WORKFLOWS {
        let mut d = built_in(id);
        d.version = 2;
        for stage in &mut d.stages {
            if let Some(rule) = &mut stage.deadline {
                rule.remind_after = None;
                rule.breach_after = Some(Span::WorkingHours(1));
            }
        }
        registry.add(d).expect("version 2 is valid");
    }
    // service-request@3: no `returned` stage (a case there cannot move to it), and
    // `withdrawn` is open with a deadline and a way on to `closed` (a case closed in
    // `withdrawn` cannot move to it, nor back from it).
    let mut d = built_in("service-request");
    d.version = 3;
    d.stages.retain(|s| s.id != "returned");
    d.actions.retain(|a| a.id != "send_back");
    for action in &mut d.actions {
        action.from.retain(|s| s != "returned");
    }
    let withdrawn = d
        .stages
        .iter_mut()
        .find(|s| s.id == "withdrawn")
        .expect("service-request has withdrawn");
    withdrawn.terminal = false;
    withdrawn.deadline = Some(DeadlineRule {
        within: Span::WorkingDays(2),
        remind_after: Some(Span::WorkingDays(1)),
        escalate: true,
        breach_after: Some(Span::Calendar(Duration::from_secs(3600))),
    });
    d.actions.push(Action {
        id: "archive".into(),
        name: "归档 archive".into(),
        from: vec!["withdrawn".into()],
        to: "closed".into(),
        roles: vec![role(roles::COMMUNITY_ADMIN), role(roles::GRID_WORKER)],
        scope: Scope::Subtree,
        fields: Vec::new(),
        effects: Vec::new(),
    });
    registry.add(d).expect("version 3 is valid");
    registry
}

/// The shared registry.
pub fn registry() -> &'static DefinitionRegistry {
    static REGISTRY: OnceLock<DefinitionRegistry> = OnceLock::new();
    REGISTRY.get_or_init(build_registry)
}

// ---------------------------------------------------------------------------------------------
// Random choices

/// Who acts: `smart` draws from those the command would allow (when there are any), so that
/// sequences get deep into the workflows; otherwise anyone at all.
#[derive(Debug, Clone, Copy)]
pub struct Pick {
    pub smart: bool,
    pub index: usize,
}

pub fn pick() -> impl Strategy<Value = Pick> {
    (prop::bool::weighted(0.75), 0usize..10_000).prop_map(|(smart, index)| Pick { smart, index })
}

impl Pick {
    pub fn choose(self, pool: &[Acting], allowed: impl Fn(&Acting) -> bool) -> Acting {
        if self.smart {
            let candidates: Vec<&Acting> = pool.iter().filter(|a| allowed(a)).collect();
            if !candidates.is_empty() {
                return candidates[self.index % candidates.len()].clone();
            }
        }
        pool[self.index % pool.len()].clone()
    }
}

/// Which action: mostly one of the current stage that leads to an open stage (so that cases
/// get deep into their workflow instead of being withdrawn at once), sometimes any of the
/// stage or of the workflow, rarely one the workflow does not have.
#[derive(Debug, Clone, Copy)]
pub struct ActionPick {
    pub kind: u8,
    pub index: usize,
}

pub fn action_pick() -> impl Strategy<Value = ActionPick> {
    (0u8..25, 0usize..1000).prop_map(|(kind, index)| ActionPick { kind, index })
}

impl ActionPick {
    pub fn choose(self, definition: &Definition, stage: &str) -> String {
        let any = &definition.actions[self.index % definition.actions.len()];
        let here: Vec<&Action> = definition.actions_from(stage).collect();
        let onward: Vec<&Action> = here
            .iter()
            .copied()
            .filter(|a| !definition.is_terminal(&a.to))
            .collect();
        match self.kind {
            0 => "teleport".to_owned(),
            1 | 2 => any.id.clone(),
            3..=5 if !here.is_empty() => here[self.index % here.len()].id.clone(),
            _ if !onward.is_empty() => onward[self.index % onward.len()].id.clone(),
            _ if !here.is_empty() => here[self.index % here.len()].id.clone(),
            _ => any.id.clone(),
        }
    }
}

/// How to fill an action's fields: `mutation` below 8 gives valid values; above, one thing
/// is wrong (a required field missing, a wrong kind, a bad choice or rating, an unknown
/// field, an unknown unit, a text too long, the case itself as a merge target).
#[derive(Debug, Clone, Copy)]
pub struct FieldPlan {
    pub mutation: u8,
    pub seed: u32,
}

pub fn field_plan() -> impl Strategy<Value = FieldPlan> {
    (0u8..16, 0u32..1000).prop_map(|(mutation, seed)| FieldPlan { mutation, seed })
}

/// What field values may refer to.
pub struct FieldWorld<'a> {
    pub units: &'a [UnitId],
    pub cases: &'a [CaseId],
    pub this_case: Option<CaseId>,
    pub now: Timestamp,
}

fn valid_value(spec: &FieldSpec, seed: u32, world: &FieldWorld<'_>) -> FieldValue {
    let s = seed as usize;
    match spec.kind {
        FieldKind::Text => FieldValue::Text(format!("说明 note {seed}")),
        FieldKind::Number => FieldValue::Number(f64::from(seed) / 4.0),
        FieldKind::Integer => FieldValue::Integer(i64::from(seed % 50)),
        FieldKind::Bool => FieldValue::Bool(seed.is_multiple_of(2)),
        FieldKind::Datetime => FieldValue::Datetime(world.now),
        FieldKind::Unit => FieldValue::Unit(world.units[s % world.units.len()].clone()),
        FieldKind::Choice => FieldValue::Choice(spec.choices[s % spec.choices.len()].clone()),
        FieldKind::Choices => {
            FieldValue::Choices(vec![spec.choices[s % spec.choices.len()].clone()])
        }
        FieldKind::Rating => FieldValue::Rating(1 + (seed % 5) as u8),
        FieldKind::Case => match (world.cases.is_empty(), world.this_case) {
            (false, _) => FieldValue::Case(world.cases[s % world.cases.len()]),
            (true, Some(this)) => FieldValue::Case(this),
            (true, None) => FieldValue::Case(case_id(0xdead)),
        },
    }
}

fn wrong_kind(spec: &FieldSpec) -> FieldValue {
    match spec.kind {
        FieldKind::Text => FieldValue::Integer(7),
        _ => FieldValue::Text("7".into()),
    }
}

/// Fields for `specs` following `plan`.
pub fn make_fields(specs: &[FieldSpec], plan: FieldPlan, world: &FieldWorld<'_>) -> Fields {
    let mut fields = Fields::new();
    for (i, spec) in specs.iter().enumerate() {
        let include = spec.required || (plan.seed >> (i % 16)) & 1 == 1;
        if include {
            fields.insert(
                spec.name.clone(),
                valid_value(spec, plan.seed.wrapping_add(i as u32), world),
            );
        }
    }
    if plan.mutation < 8 {
        return fields;
    }
    let target = (!specs.is_empty()).then(|| &specs[plan.seed as usize % specs.len()]);
    match (plan.mutation, target) {
        (8, _) => {
            if let Some(required) = specs.iter().find(|s| s.required) {
                fields.remove(&required.name);
            }
        }
        (9, Some(spec)) => {
            fields.insert(spec.name.clone(), wrong_kind(spec));
        }
        (10, Some(spec)) => {
            let bad = match spec.kind {
                FieldKind::Choice => FieldValue::Choice("not-a-choice".into()),
                FieldKind::Choices => FieldValue::Choices(vec!["not-a-choice".into()]),
                FieldKind::Rating => {
                    FieldValue::Rating(if plan.seed.is_multiple_of(2) { 0 } else { 6 })
                }
                FieldKind::Text => FieldValue::Text("   ".into()),
                FieldKind::Number => FieldValue::Number(f64::NAN),
                _ => wrong_kind(spec),
            };
            fields.insert(spec.name.clone(), bad);
        }
        (12, Some(spec)) if spec.kind == FieldKind::Unit => {
            fields.insert(spec.name.clone(), FieldValue::Unit(unit("nowhere")));
        }
        (13, Some(spec)) if spec.kind == FieldKind::Text => {
            fields.insert(spec.name.clone(), FieldValue::Text("长".repeat(4001)));
        }
        (14 | 15, _) => {
            if let (Some(spec), Some(this)) = (
                specs.iter().find(|s| s.kind == FieldKind::Case),
                world.this_case,
            ) {
                fields.insert(spec.name.clone(), FieldValue::Case(this));
            }
        }
        _ => {
            fields.insert("bogus".into(), FieldValue::Text("?".into()));
        }
    }
    fields
}

/// A time advance: mostly minutes, sometimes hours to days, rarely weeks.
pub fn minutes() -> impl Strategy<Value = u32> {
    prop_oneof![
        6 => 1u32..120,
        3 => 120u32..(3 * 24 * 60),
        1 => (3 * 24 * 60u32)..(20 * 24 * 60),
    ]
}

pub fn ladder_step() -> impl Strategy<Value = LadderStep> {
    prop_oneof![
        Just(LadderStep::Remind),
        Just(LadderStep::Escalate),
        Just(LadderStep::Breach),
    ]
}

pub fn after_minutes(at: Timestamp, minutes: u32) -> Timestamp {
    at.saturating_add(Duration::from_secs(u64::from(minutes) * 60))
}

// ---------------------------------------------------------------------------------------------
// The deadline ledger

/// A deadline event, of a case or of a directive's part.
pub enum DeadlineEvent<'a> {
    Set(&'a DeadlineSet),
    Met(&'a DeadlineMet),
    Missed(&'a DeadlineMissed),
    Step(&'a DeadlineStepReached),
}

/// Everything one stream's deadlines did, kept apart from the aggregate's own state: which
/// were set (with their ladder), which were met or missed, which steps were taken.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    set: BTreeMap<u32, DeadlineSet>,
    closed: BTreeSet<u32>,
    steps: BTreeSet<(u32, LadderStep)>,
}

impl Ledger {
    /// Checks one deadline event against what came before and records it. `running` is the
    /// aggregate's running deadline just before the event, `now` the moment of the decision.
    pub fn note(
        &mut self,
        what: &str,
        running: Option<&ActiveDeadline>,
        event: DeadlineEvent<'_>,
        now: Timestamp,
    ) -> Result<(), TestCaseError> {
        match event {
            DeadlineEvent::Set(e) => {
                let last = self.set.keys().next_back().copied();
                prop_assert!(
                    last.is_none_or(|last| e.seq > last),
                    "{what}: deadline {} set after deadline {last:?}: a number is reused",
                    e.seq
                );
                prop_assert_eq!(e.set_at, now, "{}: set_at is the decision's moment", what);
                prop_assert!(e.due_at >= e.set_at, "{what}: due before it was set: {e:?}");
                if let Some(at) = e.remind_at {
                    prop_assert!(at >= e.set_at, "{what}: reminder before set: {e:?}");
                }
                if let Some(at) = e.breach_at {
                    prop_assert!(at >= e.due_at, "{what}: breach before due: {e:?}");
                }
                self.set.insert(e.seq, e.clone());
            }
            DeadlineEvent::Met(e) => {
                let due = self.closing(what, running, e.seq)?;
                prop_assert!(
                    e.at <= due,
                    "{what}: deadline {} met at {} after due {due}",
                    e.seq,
                    e.at
                );
                prop_assert_eq!(e.at, now, "{}: met at the decision's moment", what);
            }
            DeadlineEvent::Missed(e) => {
                let due = self.closing(what, running, e.seq)?;
                prop_assert!(
                    e.at > due,
                    "{what}: deadline {} missed at {} before due {due}",
                    e.seq,
                    e.at
                );
                prop_assert_eq!(e.due_at, due, "{}: missed names the due time set", what);
                prop_assert_eq!(e.at, now, "{}: missed at the decision's moment", what);
            }
            DeadlineEvent::Step(e) => {
                prop_assert_eq!(
                    running.map(|d| d.seq),
                    Some(e.seq),
                    "{}: step {:?} of deadline {}, which is not the running one",
                    what,
                    e.step,
                    e.seq
                );
                prop_assert!(
                    !self.closed.contains(&e.seq),
                    "{what}: step {:?} of deadline {}, which was already met or missed",
                    e.step,
                    e.seq
                );
                let set = self.set.get(&e.seq);
                prop_assert!(
                    set.is_some(),
                    "{what}: step of deadline {} never set",
                    e.seq
                );
                let due = set.and_then(|set| ladder_time(set, e.step));
                prop_assert_eq!(
                    Some(e.due),
                    due,
                    "{}: step {:?} of deadline {} names a due time its ladder does not have",
                    what,
                    e.step,
                    e.seq
                );
                prop_assert!(
                    e.at >= e.due,
                    "{what}: step {:?} of deadline {} taken at {} before it was due at {}",
                    e.step,
                    e.seq,
                    e.at,
                    e.due
                );
                prop_assert_eq!(e.at, now, "{}: step taken at the decision's moment", what);
                prop_assert!(
                    self.steps.insert((e.seq, e.step)),
                    "{what}: step {:?} of deadline {} fired twice",
                    e.step,
                    e.seq
                );
            }
        }
        Ok(())
    }

    fn closing(
        &mut self,
        what: &str,
        running: Option<&ActiveDeadline>,
        seq: u32,
    ) -> Result<Timestamp, TestCaseError> {
        prop_assert_eq!(
            running.map(|d| d.seq),
            Some(seq),
            "{}: deadline {} closed while not running",
            what,
            seq
        );
        prop_assert!(
            self.closed.insert(seq),
            "{what}: deadline {seq} met or missed twice"
        );
        let set = self.set.get(&seq);
        prop_assert!(set.is_some(), "{what}: deadline {seq} closed, never set");
        Ok(set.map(|s| s.due_at).unwrap_or(Timestamp::EPOCH))
    }

    /// The newest deadline set, if any.
    pub fn last(&self) -> Option<&DeadlineSet> {
        self.set.values().next_back()
    }

    /// Whether `seq` was met or missed.
    pub fn is_closed(&self, seq: u32) -> bool {
        self.closed.contains(&seq)
    }

    /// The steps taken of `seq`.
    pub fn steps_of(&self, seq: u32) -> BTreeSet<LadderStep> {
        self.steps
            .iter()
            .filter(|(s, _)| *s == seq)
            .map(|(_, step)| *step)
            .collect()
    }

    /// How many steps were taken in all.
    pub fn step_count(&self) -> usize {
        self.steps.len()
    }

    /// The steps of the newest deadline, still open, that are due at `now` and not taken,
    /// earliest first: what a scheduler must be able to take now.
    pub fn due_now(&self, now: Timestamp) -> Vec<(u32, LadderStep, Timestamp)> {
        let Some(set) = self.last() else {
            return Vec::new();
        };
        if self.is_closed(set.seq) {
            return Vec::new();
        }
        let taken = self.steps_of(set.seq);
        let mut due: Vec<_> = [LadderStep::Remind, LadderStep::Escalate, LadderStep::Breach]
            .into_iter()
            .filter(|step| !taken.contains(step))
            .filter_map(|step| ladder_time(set, step).map(|at| (set.seq, step, at)))
            .filter(|(_, _, at)| *at <= now)
            .collect();
        due.sort_by_key(|(_, step, at)| (*at, *step));
        due
    }
}

/// When a step of a deadline's ladder falls due, from the `DeadlineSet` alone.
pub fn ladder_time(set: &DeadlineSet, step: LadderStep) -> Option<Timestamp> {
    match step {
        LadderStep::Remind => set.remind_at,
        LadderStep::Escalate => set.escalate.then_some(set.due_at),
        LadderStep::Breach => set.breach_at,
    }
}

// ---------------------------------------------------------------------------------------------
// Directive progress

/// Whether `u` is `ancestor` or below it, by the chart's parent links.
pub fn chart_within(org: &OrgChart, u: &UnitId, ancestor: &UnitId) -> bool {
    let mut current = Some(u.clone());
    let mut steps = 0;
    while let Some(id) = current {
        if &id == ancestor {
            return true;
        }
        steps += 1;
        if steps > 1000 {
            return false;
        }
        current = org.unit(&id).and_then(|info| info.parent.clone());
    }
    false
}

/// The chain units strictly below `root`: what a directive issued there must reach.
pub fn chain_units_below(org: &OrgChart, root: &UnitId) -> BTreeSet<UnitId> {
    org.units()
        .filter(|info| matches!(info.tier, Tier::Grid | Tier::Enterprise | Tier::Shop))
        .filter(|info| &info.id != root && chart_within(org, &info.id, root))
        .map(|info| info.id.clone())
        .collect()
}

/// A directive's progress is the sum of its parts: each row says what its part's state says,
/// each row's counts are the counts over its subtree, complete means every part of the
/// subtree reported, the totals add up, and the parts are exactly the chain units strictly
/// below the issuing unit, linked to their parents.
pub fn check_progress(
    org: &OrgChart,
    directive: &DirectiveState,
    parts: &BTreeMap<u32, PartState>,
    progress: &Progress,
) -> Result<(), TestCaseError> {
    let expected = chain_units_below(org, &directive.issued_by);
    let units: BTreeSet<UnitId> = directive.parts.iter().map(|p| p.unit.clone()).collect();
    prop_assert_eq!(
        &units,
        &expected,
        "the parts are the chain units below {}",
        &directive.issued_by
    );
    prop_assert_eq!(units.len(), directive.parts.len(), "one part per unit");
    let index_unit: BTreeMap<u32, UnitId> = directive
        .parts
        .iter()
        .map(|p| (p.index, p.unit.clone()))
        .collect();
    prop_assert_eq!(
        index_unit.len(),
        directive.parts.len(),
        "part indexes are unique"
    );
    for part in &directive.parts {
        let chart_parent = org.unit(&part.unit).and_then(|u| u.parent.clone());
        match part.parent {
            None => prop_assert_eq!(
                chart_parent.as_ref(),
                Some(&directive.issued_by),
                "part {} has no parent part, so it lies right below the issuer",
                &part.unit
            ),
            Some(parent) => prop_assert_eq!(
                index_unit.get(&parent),
                chart_parent.as_ref(),
                "part {}'s parent part is its parent unit",
                &part.unit
            ),
        }
    }
    prop_assert_eq!(progress.parts.len(), directive.parts.len());
    let reported = |index: u32| parts.get(&index).is_some_and(|p| p.reported_at.is_some());
    for (row, info) in progress.parts.iter().zip(&directive.parts) {
        prop_assert_eq!(row.index, info.index);
        prop_assert_eq!(&row.unit, &info.unit);
        prop_assert_eq!(row.parent, info.parent);
        let state = parts.get(&info.index);
        prop_assert_eq!(
            row.reported,
            reported(info.index),
            "row {} reported",
            &row.unit
        );
        prop_assert_eq!(
            row.acknowledged,
            state.is_some_and(|p| p.acknowledged_at.is_some()),
            "row {} acknowledged",
            &row.unit
        );
        prop_assert!(
            !row.reported || row.acknowledged,
            "{} reported without acknowledging",
            &row.unit
        );
        prop_assert_eq!(row.missed, state.is_some_and(|p| p.missed));
        let subtree: Vec<u32> = directive
            .parts
            .iter()
            .filter(|p| chart_within(org, &p.unit, &info.unit))
            .map(|p| p.index)
            .collect();
        let done = subtree.iter().filter(|i| reported(**i)).count();
        prop_assert_eq!(row.units as usize, subtree.len(), "{} units", &row.unit);
        prop_assert_eq!(row.units_reported as usize, done, "{} reported", &row.unit);
        prop_assert_eq!(
            row.complete,
            done == subtree.len(),
            "{} complete exactly when its whole subtree reported",
            &row.unit
        );
    }
    let all_reported = directive.parts.iter().filter(|p| reported(p.index)).count();
    let all_acknowledged = directive
        .parts
        .iter()
        .filter(|p| {
            parts
                .get(&p.index)
                .is_some_and(|s| s.acknowledged_at.is_some())
        })
        .count();
    prop_assert_eq!(progress.units as usize, directive.parts.len());
    prop_assert_eq!(progress.reported as usize, all_reported);
    prop_assert_eq!(progress.acknowledged as usize, all_acknowledged);
    prop_assert_eq!(progress.complete, all_reported == directive.parts.len());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Deciding and folding through each aggregate's one `Aggregate` impl

/// Folds one event (version `version` of its stream) into an aggregate's state.
pub fn apply_event<A: Aggregate>(state: &mut A::State, event: &A::Event, version: Version) {
    A::apply(
        state,
        event,
        &Fold {
            version,
            definitions: registry(),
        },
    );
}

/// What a command does to a case's own stream (a case that does not exist yet is asked as
/// the case its opening names, or a placeholder id).
pub fn decide_case(
    state: &Option<CaseState>,
    command: &CaseCommand,
    ctx: &Context<'_>,
) -> Result<Vec<CaseEvent>, Rejection> {
    let id = match (state, command) {
        (Some(state), _) => state.id,
        (None, CaseCommand::Open(open)) => open.case,
        (None, _) => CaseId::parse("01923a7e-0000-7000-8000-00000000ffff").expect("a UUID"),
    };
    Case::decide(&id, state, command, ctx).map(|decision| decision.events)
}

/// What a command does to the org chart, decided by `acting` at the Unix epoch.
pub fn decide_org(
    org: &OrgChart,
    command: &OrgCommand,
    acting: &Acting,
) -> Result<Vec<OrgEvent>, Rejection> {
    let ctx = Context {
        acting,
        org,
        definitions: registry(),
        time: &WallClockOnly,
        now: Timestamp::EPOCH,
    };
    Org::decide(&(), org, command, &ctx).map(|decision| decision.events)
}

/// What issuing writes: the directive's own event, and each part's events by index.
pub type Issued = (DirectiveEvent, Vec<(u32, Vec<PartEvent>)>);

/// Decides issuing directive `id`.
pub fn decide_issue(
    id: DirectiveId,
    command: &DirectiveCommand,
    ctx: &Context<'_>,
) -> Result<Issued, Rejection> {
    let decision = Directive::decide(&id, &None, command, ctx)?;
    let [issued] = <[DirectiveEvent; 1]>::try_from(decision.events).map_err(|events| {
        Rejection::invalid("test", format!("{} directive events", events.len()))
    })?;
    let parts = decision
        .creates
        .iter()
        .map(|create| {
            let (_, index) = DirectiveId::of_part_stream(&create.stream)
                .expect("a directive creates part streams");
            let events = create
                .events_as::<PartEvent>()
                .expect("parts open with part events")
                .into_iter()
                .cloned()
                .collect();
            (index, events)
        })
        .collect();
    Ok((issued, parts))
}

/// What a command does to one part.
pub fn decide_part(
    part: &PartState,
    command: &DirectiveCommand,
    ctx: &Context<'_>,
) -> Result<Vec<PartEvent>, Rejection> {
    Part::decide(
        &(part.directive, part.index),
        &Some(part.clone()),
        command,
        ctx,
    )
    .map(|decision| decision.events)
}
