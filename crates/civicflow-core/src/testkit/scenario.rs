//! Given / when / then for any [`Aggregate`]: given its events so far, when an actor submits
//! a command, then exactly these events (or exactly this refusal). Pure: no store, no engine,
//! a fixed moment, the real business calendar unless told otherwise.

use std::fmt::Debug;
use std::sync::Arc;

use crate::calendar::{BusinessCalendar, Zone};
use crate::clock::Timestamp;
use crate::domain::aggregate::{fold, Aggregate, Decision};
use crate::domain::org::{Acting, Org, OrgChart, OrgCommand};
use crate::domain::workflow::DefinitionRegistry;
use crate::domain::{Context, Rejection, WorkingTime};
use crate::ids::UnitId;

/// A scenario for one instance of aggregate `A`: the world it is decided in (org chart,
/// workflow definitions, working time, the moment) and its events so far.
///
/// ```
/// use civicflow_core::domain::case::{Case, CaseCommand, Channel, OpenCase};
/// use civicflow_core::domain::org::{Acting, ActorKind, OrgCommand, Tier};
/// use civicflow_core::domain::workflow::{DefinitionRegistry, WorkflowId};
/// use civicflow_core::domain::{fields::Fields, Rejection};
/// use civicflow_core::testkit::{org_chart, Scenario};
/// use civicflow_core::{ActorId, CaseId, Role, Timestamp, UnitId};
///
/// // A workflow of our own: a repair is reported, then fixed.
/// let mut definitions = DefinitionRegistry::built_in();
/// definitions.load_toml(r#"
///     id = "repair"
///     version = 1
///     name = "Repair"
///     initial_stage = "reported"
///     [open]
///     roles = ["grid_worker"]
///     scope = "subtree"
///     [[stages]]
///     id = "reported"
///     [[stages]]
///     id = "fixed"
///     terminal = true
///     [[actions]]
///     id = "fix"
///     name = "Fix"
///     from = ["reported"]
///     to = "fixed"
///     roles = ["grid_worker"]
///     scope = "lead"
/// "#)?;
///
/// let unit = |id: &str| UnitId::new(id).expect("a unit id");
/// let worker = ActorId::new("wang")?;
/// let org = org_chart([
///     OrgCommand::CreateUnit { id: unit("tonghui"), name: "通惠社区".into(),
///                              tier: Tier::Community, parent: None },
///     OrgCommand::CreateUnit { id: unit("grid-1"), name: "第一网格".into(),
///                              tier: Tier::Grid, parent: Some(unit("tonghui")) },
///     OrgCommand::RegisterActor { id: worker.clone(), name: "王".into(), kind: ActorKind::Person },
///     OrgCommand::GrantRole { actor: worker.clone(), role: Role::new("grid_worker")?,
///                             unit: unit("grid-1") },
/// ])?;
/// let acting = Acting::new(worker, Role::new("grid_worker")?, unit("grid-1"));
/// let case = CaseId::new_v7(Timestamp::from_unix_seconds(1_790_000_000));
/// let open = CaseCommand::Open(OpenCase {
///     case, workflow: WorkflowId::new("repair")?, version: None, unit: unit("grid-1"),
///     title: "路灯不亮".into(), description: String::new(), fields: Fields::new(),
///     requester: None, channel: Channel::Door, place: None, new_requester: false });
///
/// let scenario = Scenario::<Case>::new(case).org(org).definitions(definitions);
/// // Opening it: the case is reported.
/// let opened = scenario.clone().when(acting.clone(), open).decide()?.events;
/// // Given it was opened, fixing it closes it; fixing it again is refused.
/// let fixed = scenario.clone().given(opened.clone())
///     .when(acting.clone(), CaseCommand::Act { action: "fix".into(), fields: Fields::new(),
///                                              expected_version: None })
///     .decide()?.events;
/// let after = scenario.clone().given(opened.iter().chain(&fixed).cloned()).state();
/// assert!(after.expect("a case").closed);
/// scenario.given(opened.into_iter().chain(fixed))
///     .when(acting, CaseCommand::Act { action: "fix".into(), fields: Fields::new(),
///                                      expected_version: None })
///     .then_rejected(Rejection::CaseClosed { case: case.to_string() });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Scenario<A: Aggregate> {
    id: A::Id,
    org: Arc<OrgChart>,
    definitions: Arc<DefinitionRegistry>,
    time: Arc<dyn WorkingTime>,
    now: Timestamp,
    given: Vec<A::Event>,
}

impl<A: Aggregate> Clone for Scenario<A> {
    fn clone(&self) -> Self {
        Self {
            id: self.id.clone(),
            org: self.org.clone(),
            definitions: self.definitions.clone(),
            time: self.time.clone(),
            now: self.now,
            given: self.given.clone(),
        }
    }
}

impl<A: Aggregate> Scenario<A> {
    /// Instance `id` with no events yet, in an empty org chart, with the built-in workflows
    /// and China's business calendar, decided at the Unix epoch (set the moment with
    /// [`Scenario::at`]).
    pub fn new(id: A::Id) -> Self {
        Self {
            id,
            org: Arc::new(OrgChart::default()),
            definitions: Arc::new(DefinitionRegistry::built_in()),
            time: Arc::new(BusinessCalendar::china()),
            now: Timestamp::EPOCH,
            given: Vec::new(),
        }
    }

    /// Decides in this org chart.
    #[must_use]
    pub fn org(mut self, org: impl Into<Arc<OrgChart>>) -> Self {
        self.org = org.into();
        self
    }

    /// Decides with these workflow definitions.
    #[must_use]
    pub fn definitions(mut self, definitions: impl Into<Arc<DefinitionRegistry>>) -> Self {
        self.definitions = definitions.into();
        self
    }

    /// Counts deadlines in this working time (a calendar of other holidays, or wall-clock
    /// time: `WallClockOnly`).
    #[must_use]
    pub fn working_time(mut self, time: impl WorkingTime + 'static) -> Self {
        self.time = Arc::new(time);
        self
    }

    /// Decides at this moment.
    #[must_use]
    pub fn at(mut self, now: Timestamp) -> Self {
        self.now = now;
        self
    }

    /// The instance's events so far (versions 1, 2, … of its stream).
    #[must_use]
    pub fn given(mut self, events: impl IntoIterator<Item = A::Event>) -> Self {
        self.given.extend(events);
        self
    }

    /// The state the given events fold into, as `decide` sees it.
    pub fn state(&self) -> A::State {
        fold::<A>(&self.given, &self.definitions)
    }

    /// The org chart the scenario decides in.
    pub fn org_chart(&self) -> &OrgChart {
        &self.org
    }

    /// The moment of the decision.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The given events.
    pub fn events(&self) -> &[A::Event] {
        &self.given
    }

    /// The command and who submits it.
    pub fn when(self, acting: Acting, command: A::Command) -> When<A> {
        When {
            scenario: self,
            acting,
            command,
        }
    }
}

/// A scenario with its command, not decided yet.
pub struct When<A: Aggregate> {
    scenario: Scenario<A>,
    acting: Acting,
    command: A::Command,
}

impl<A: Aggregate> Clone for When<A> {
    fn clone(&self) -> Self {
        Self {
            scenario: self.scenario.clone(),
            acting: self.acting.clone(),
            command: self.command.clone(),
        }
    }
}

/// What a command should come to.
pub enum Then<A: Aggregate> {
    /// Exactly these events for the aggregate's own stream.
    Events(Vec<A::Event>),
    /// Exactly this refusal.
    Rejected(Rejection),
}

impl<A: Aggregate> Clone for Then<A> {
    fn clone(&self) -> Self {
        match self {
            Then::Events(events) => Then::Events(events.clone()),
            Then::Rejected(rejection) => Then::Rejected(rejection.clone()),
        }
    }
}

impl<A: Aggregate> PartialEq for Then<A> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Then::Events(a), Then::Events(b)) => a == b,
            (Then::Rejected(a), Then::Rejected(b)) => a == b,
            _ => false,
        }
    }
}

impl<A: Aggregate> Debug for Then<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Then::Events(events) => f.debug_tuple("Events").field(events).finish(),
            Then::Rejected(rejection) => f.debug_tuple("Rejected").field(rejection).finish(),
        }
    }
}

impl<A: Aggregate> When<A> {
    /// Folds the given events and decides the command: the whole decision, with the other
    /// streams it opens and the follow-ups it sets off.
    ///
    /// # Errors
    /// The [`Rejection`] the aggregate answers.
    pub fn decide(&self) -> Result<Decision<A>, Rejection> {
        let s = &self.scenario;
        let state = s.state();
        let ctx = Context {
            acting: &self.acting,
            org: &s.org,
            definitions: &s.definitions,
            time: &*s.time,
            now: s.now,
        };
        A::decide(&s.id, &state, &self.command, &ctx)
    }

    /// Checks the outcome for the aggregate's own stream.
    ///
    /// # Errors
    /// A [`Mismatch`] showing the given events, the command, what was expected and what
    /// came, when the outcome is not `expected`.
    pub fn check(&self, expected: &Then<A>) -> Result<(), Mismatch> {
        let actual = match self.decide() {
            Ok(decision) => Then::Events(decision.events),
            Err(rejection) => Then::Rejected(rejection),
        };
        if &actual == expected {
            return Ok(());
        }
        Err(Mismatch {
            report: format!(
                "{}\nthen (expected):\n{}\nactual:\n{}",
                self.describe(),
                show_then(expected),
                show_then(&actual),
            ),
        })
    }

    /// Expects exactly these events.
    ///
    /// # Panics
    /// With the scenario, the expected and the actual outcome, when they differ.
    #[track_caller]
    pub fn then(self, expected: Vec<A::Event>) {
        if let Err(message) = self.check(&Then::Events(expected)) {
            panic!("{message}");
        }
    }

    /// Expects exactly this refusal.
    ///
    /// # Panics
    /// With the scenario, the expected and the actual outcome, when they differ.
    #[track_caller]
    pub fn then_rejected(self, expected: Rejection) {
        if let Err(message) = self.check(&Then::Rejected(expected)) {
            panic!("{message}");
        }
    }

    /// The command.
    pub fn command(&self) -> &A::Command {
        &self.command
    }

    /// Who submits it.
    pub fn acting(&self) -> &Acting {
        &self.acting
    }

    /// The scenario.
    pub fn scenario(&self) -> &Scenario<A> {
        &self.scenario
    }

    fn describe(&self) -> String {
        let s = &self.scenario;
        format!(
            "{} {:?} at {}\ngiven:\n{}\nwhen {} as {} at {}:\n    {}",
            A::KIND,
            s.id,
            readable(&format!("Timestamp({})", s.now.as_unix_micros())),
            list(&s.given),
            self.acting.actor,
            self.acting.role,
            self.acting.unit,
            readable(&format!("{:?}", self.command)),
        )
    }
}

/// A scenario that did not come out as expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{report}")]
pub struct Mismatch {
    /// The given events, the command and who gave it, what was expected and what came, with
    /// every moment in local time.
    pub report: String,
}

/// An org chart made by the system deciding `commands` in order (units, actors, grants):
/// the world a scenario decides in.
///
/// # Errors
/// The first [`Rejection`] (a unit whose parent does not exist, say), naming the command.
pub fn org_chart(commands: impl IntoIterator<Item = OrgCommand>) -> Result<OrgChart, Rejection> {
    let system = Acting::system(UnitId::new("system")?);
    let definitions = DefinitionRegistry::built_in();
    let calendar = BusinessCalendar::china();
    let mut events = Vec::new();
    for command in commands {
        let chart = fold::<Org>(&events, &definitions);
        let ctx = Context {
            acting: &system,
            org: &chart,
            definitions: &definitions,
            time: &calendar,
            now: Timestamp::EPOCH,
        };
        events.extend(Org::decide(&(), &chart, &command, &ctx)?.events);
    }
    Ok(fold::<Org>(&events, &definitions))
}

fn list<T: Debug>(items: &[T]) -> String {
    if items.is_empty() {
        return "    (nothing)".to_owned();
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| format!("    {}. {}", i + 1, readable(&format!("{item:?}"))))
        .collect::<Vec<_>>()
        .join("\n")
}

fn show_then<A: Aggregate>(then: &Then<A>) -> String {
    match then {
        Then::Events(events) => list(events),
        Then::Rejected(rejection) => format!(
            "    rejected: {}\n    ({rejection})",
            readable(&format!("{rejection:?}"))
        ),
    }
}

/// Debug output with every `Timestamp(micros)` shown as local time in Asia/Shanghai, the
/// zone of the calendar scenarios decide with by default (`2026-09-24 16:00`); see
/// [`readable_in`] for another zone.
pub fn readable(debug: &str) -> String {
    readable_in(debug, &Zone::shanghai())
}

/// Debug output with every `Timestamp(micros)` shown as local time in `zone`
/// (`2026-09-24 16:00`).
pub fn readable_in(debug: &str, zone: &Zone) -> String {
    let mut out = String::new();
    let mut rest = debug;
    while let Some(start) = rest.find("Timestamp(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "Timestamp(".len()..];
        let digits = after
            .find(|c: char| !(c.is_ascii_digit() || c == '-'))
            .unwrap_or(after.len());
        match after[..digits]
            .parse::<i64>()
            .ok()
            .and_then(|micros| zone.to_local(Timestamp::from_unix_micros(micros)).ok())
        {
            Some((date, minute)) if after[digits..].starts_with(')') => {
                out.push_str(&format!("{date} {:02}:{:02}", minute / 60, minute % 60));
                rest = &after[digits + 1..];
            }
            _ => {
                out.push_str("Timestamp(");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}
