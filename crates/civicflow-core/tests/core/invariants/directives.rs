//! Directives, pure domain: random org trees, a directive issued at a random unit, random
//! acknowledgements, reports and deadline steps; progress must always be the sum of its parts.

use std::collections::BTreeMap;
use std::time::Duration;

use civicflow_core::calendar::{BusinessCalendar, Span};
use civicflow_core::domain::deadline::LadderStep;
use civicflow_core::domain::directive::{
    self, Directive, DirectiveCommand, DirectiveKind, DirectiveState, Part, PartEvent, PartState,
};
use civicflow_core::domain::org::{roles, Acting, ActorKind, Org, OrgChart, OrgCommand, Tier};
use civicflow_core::domain::{Context, Rejection};
use civicflow_core::{DirectiveId, Timestamp, UnitId, Version};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::common::*;

/// The roles that may issue a directive, and those that answer for a unit's part.
const ISSUERS: &[&str] = &[
    roles::COMMUNITY_ADMIN,
    roles::GRID_WORKER,
    roles::ENTERPRISE_LIAISON,
];
const RESPONDERS: &[&str] = &[
    roles::COMMUNITY_ADMIN,
    roles::GRID_WORKER,
    roles::ENTERPRISE_LIAISON,
    roles::SHOP_OWNER,
    roles::PARTY_MEMBER,
];
/// The roles every unit of a random tree has someone for (responders and not).
const TREE_ROLES: &[&str] = &[
    roles::COMMUNITY_ADMIN,
    roles::GRID_WORKER,
    roles::ENTERPRISE_LIAISON,
    roles::SHOP_OWNER,
    roles::PARTY_MEMBER,
    roles::VOLUNTEER,
    roles::RESIDENT,
];

/// A random org tree: communities with grids, enterprises and shops, units outside the chain
/// under a community, and free-standing outside units.
#[derive(Debug, Clone)]
pub struct TreeSpec {
    /// Per community: per grid, the number of shops of each enterprise; then the tiers of
    /// the outside units under it.
    communities: Vec<(Vec<Vec<u8>>, Vec<u8>)>,
    free_outside: u8,
}

fn tree() -> impl Strategy<Value = TreeSpec> {
    let grid = prop::collection::vec(0u8..4, 0..4);
    let community = (
        prop::collection::vec(grid, 0..4),
        prop::collection::vec(0u8..3, 0..3),
    );
    (prop::collection::vec(community, 1..3), 0u8..3).prop_map(|(communities, free_outside)| {
        TreeSpec {
            communities,
            free_outside,
        }
    })
}

fn outside_tier(n: u8) -> Tier {
    match n % 3 {
        0 => Tier::Department,
        1 => Tier::SocialOrganization,
        _ => Tier::VolunteerTeam,
    }
}

/// A built tree: the chart, its units, and who may act.
struct Tree {
    org: OrgChart,
    units: Vec<UnitId>,
    pool: Vec<Acting>,
}

fn build(spec: &TreeSpec) -> Result<Tree, TestCaseError> {
    let mut commands = Vec::new();
    let mut create = |id: String, tier: Tier, parent: Option<&str>| {
        commands.push(OrgCommand::CreateUnit {
            id: unit(&id),
            name: format!("单位 {id}"),
            tier,
            parent: parent.map(unit),
        });
        id
    };
    for (c, (grids, outside)) in spec.communities.iter().enumerate() {
        let community = create(format!("c{c}"), Tier::Community, None);
        for (g, enterprises) in grids.iter().enumerate() {
            let grid = create(format!("c{c}-g{g}"), Tier::Grid, Some(&community));
            for (e, shops) in enterprises.iter().enumerate() {
                let enterprise = create(format!("c{c}-g{g}-e{e}"), Tier::Enterprise, Some(&grid));
                for s in 0..*shops {
                    create(
                        format!("c{c}-g{g}-e{e}-s{s}"),
                        Tier::Shop,
                        Some(&enterprise),
                    );
                }
            }
        }
        for (o, tier) in outside.iter().enumerate() {
            create(
                format!("c{c}-out{o}"),
                outside_tier(*tier),
                Some(&community),
            );
        }
    }
    for o in 0..spec.free_outside {
        create(format!("free-out{o}"), outside_tier(o), None);
    }
    let units: Vec<UnitId> = commands
        .iter()
        .filter_map(|c| match c {
            OrgCommand::CreateUnit { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect();
    let mut pool = Vec::new();
    for u in &units {
        for r in TREE_ROLES {
            let id = actor(&format!("{r}@{u}"));
            commands.push(OrgCommand::RegisterActor {
                id: id.clone(),
                name: id.to_string(),
                kind: ActorKind::Person,
            });
            commands.push(OrgCommand::GrantRole {
                actor: id.clone(),
                role: role(r),
                unit: u.clone(),
            });
            pool.push(Acting::new(id, role(r), u.clone()));
        }
        pool.push(Acting::system(u.clone()));
    }
    pool.push(scheduler());
    pool.push(Acting::new(
        actor("ghost"),
        role(roles::SHOP_OWNER),
        units[0].clone(),
    ));
    let mut org = OrgChart::default();
    let system = Acting::system(units[0].clone());
    for command in &commands {
        let events = decide_org(&org, command, &system);
        prop_assert!(events.is_ok(), "the tree builds: {command:?}: {events:?}");
        for event in &events.expect("checked") {
            apply_event::<Org>(&mut org, event, Version::FIRST);
        }
    }
    Ok(Tree { org, units, pool })
}

#[derive(Debug, Clone)]
pub struct IssueSpec {
    unit: usize,
    acting: Pick,
    within: u8,
    title: u8,
}

fn issue() -> impl Strategy<Value = IssueSpec> {
    (0usize..200, pick(), 0u8..4, 0u8..10).prop_map(|(unit, acting, within, title)| IssueSpec {
        unit,
        acting,
        within,
        title,
    })
}

#[derive(Debug, Clone)]
pub enum DOp {
    Acknowledge {
        part: usize,
        acting: Pick,
        note: u8,
    },
    Report {
        part: usize,
        acting: Pick,
        note: u8,
    },
    Step {
        part: usize,
        seq: u8,
        step: LadderStep,
        anyone: Option<Pick>,
    },
    Scheduler,
    Advance {
        minutes: u32,
    },
}

fn dop() -> impl Strategy<Value = DOp> {
    prop_oneof![
        3 => (0usize..200, pick(), 0u8..8)
            .prop_map(|(part, acting, note)| DOp::Acknowledge { part, acting, note }),
        5 => (0usize..200, pick(), 0u8..8)
            .prop_map(|(part, acting, note)| DOp::Report { part, acting, note }),
        2 => (0usize..200, 0u8..3, ladder_step(), prop::option::weighted(0.3, pick()))
            .prop_map(|(part, seq, step, anyone)| DOp::Step { part, seq, step, anyone }),
        1 => Just(DOp::Scheduler),
        2 => minutes().prop_map(|minutes| DOp::Advance { minutes }),
    ]
}

fn note(n: u8) -> String {
    match n {
        0 => String::new(),
        1 => "  ".into(),
        2 => "长".repeat(4001),
        _ => "已张贴告示 notice posted".into(),
    }
}

struct DirectiveRun {
    tree: Tree,
    calendar: BusinessCalendar,
    now: Timestamp,
    directive: Option<DirectiveState>,
    parts: BTreeMap<u32, PartState>,
    ledgers: BTreeMap<u32, Ledger>,
    trace: Vec<String>,
}

impl DirectiveRun {
    fn ctx<'a>(&'a self, acting: &'a Acting) -> Context<'a> {
        Context {
            acting,
            org: &self.tree.org,
            definitions: registry(),
            time: &self.calendar,
            now: self.now,
        }
    }

    fn may_issue(&self, acting: &Acting, at: &UnitId) -> bool {
        acting.is_system()
            || (self
                .tree
                .org
                .holds(&acting.actor, &acting.role, &acting.unit)
                && ISSUERS.contains(&acting.role.as_str())
                && chart_within(&self.tree.org, at, &acting.unit))
    }

    fn may_respond(&self, acting: &Acting, part: &PartState) -> bool {
        acting.is_system()
            || (self
                .tree
                .org
                .holds(&acting.actor, &acting.role, &acting.unit)
                && RESPONDERS.contains(&acting.role.as_str())
                && acting.unit == part.unit)
    }

    fn issue(&mut self, spec: &IssueSpec) -> Result<(), TestCaseError> {
        let at = self.tree.units[spec.unit % self.tree.units.len()].clone();
        let acting = spec
            .acting
            .choose(&self.tree.pool, |a| self.may_issue(a, &at));
        self.issue_as(at, acting, spec)
    }

    fn issue_as(
        &mut self,
        at: UnitId,
        acting: Acting,
        spec: &IssueSpec,
    ) -> Result<(), TestCaseError> {
        let title = match spec.title {
            0 => " ".to_owned(),
            1 => "长".repeat(201),
            _ => "消费维权宣传 consumer-rights week".to_owned(),
        };
        let within = match spec.within {
            0 => Span::WorkingDays(1),
            1 => Span::WorkingHours(3),
            2 => Span::Calendar(Duration::from_secs(2 * 86_400)),
            // Zero is refused: a deadline of zero would be due, and escalate, at once.
            _ => Span::WorkingDays(0),
        };
        let within_ok = spec.within < 3;
        let expected = chain_units_below(&self.tree.org, &at);
        let should =
            self.may_issue(&acting, &at) && spec.title >= 2 && within_ok && !expected.is_empty();
        let directive_id = DirectiveId::parse(&format!("{:032x}", 5)).expect("uuid");
        let command = DirectiveCommand::Issue {
            directive: directive_id,
            title,
            body: "张贴告示，培训员工 put up the notice, train the staff".into(),
            kind: DirectiveKind::ConsumerProtection,
            unit: at.clone(),
            within,
        };
        let result = decide_issue(directive_id, &command, &self.ctx(&acting));
        self.trace.push(format!(
            "issue at {at} as {}/{}/{}: {}",
            acting.actor,
            acting.role,
            acting.unit,
            match &result {
                Ok((_, parts)) => format!("{} parts", parts.len()),
                Err(r) => format!("refused: {r}"),
            }
        ));
        prop_assert_eq!(
            result.is_ok(),
            should,
            "issuing at {} as {:?} ({} chain units below): {:?}",
            &at,
            &acting,
            expected.len(),
            result.as_ref().err()
        );
        if let Err(Rejection::Invalid { field, .. }) = &result {
            if self.may_issue(&acting, &at) && spec.title >= 2 {
                if within_ok {
                    prop_assert_eq!(field.as_str(), "unit", "refused for having no one below");
                } else {
                    prop_assert_eq!(field.as_str(), "within", "refused for a span of zero");
                }
            }
        }
        let Ok((issued, parts)) = result else {
            return Ok(());
        };
        let directive::DirectiveEvent::Issued(e) = &issued else {
            return Err(TestCaseError::fail("an Issued event"));
        };
        let mut state = None;
        apply_event::<Directive>(&mut state, &issued, Version::FIRST);
        let state = state.expect("issued");
        prop_assert_eq!(&state.issued_by, &at);
        prop_assert_eq!(&e.parts, &state.parts);
        prop_assert_eq!(parts.len(), state.parts.len(), "one batch per part");
        for (index, events) in &parts {
            let mut part = None;
            let mut ledger = Ledger::default();
            for (i, event) in events.iter().enumerate() {
                if let PartEvent::DeadlineSet(set) = event {
                    let running = part.as_ref().and_then(|p: &PartState| p.deadline.clone());
                    ledger.note(
                        &format!("part {index} issued"),
                        running.as_ref(),
                        DeadlineEvent::Set(set),
                        self.now,
                    )?;
                }
                apply_event::<Part>(&mut part, event, Version::FIRST.plus(i as u64));
            }
            let part = part.expect("assigned");
            prop_assert_eq!(part.index, *index);
            prop_assert!(part.deadline.is_some(), "every part has a deadline");
            self.parts.insert(*index, part);
            self.ledgers.insert(*index, ledger);
        }
        self.directive = Some(state);
        Ok(())
    }

    fn part_index(&self, n: usize) -> u32 {
        let parts = &self.directive.as_ref().expect("issued").parts;
        parts[n % parts.len()].index
    }

    fn submit(
        &mut self,
        index: u32,
        acting: &Acting,
        command: &DirectiveCommand,
    ) -> Result<Result<Vec<PartEvent>, Rejection>, TestCaseError> {
        let part = self.parts.get(&index).expect("a part").clone();
        let first = decide_part(&part, command, &self.ctx(acting));
        let again = decide_part(&part, command, &self.ctx(acting));
        prop_assert_eq!(&first, &again, "decide_part gives the same answer twice");
        self.trace.push(format!(
            "{} on part {index} ({}) as {}/{}/{}: {}",
            match command {
                DirectiveCommand::Acknowledge { .. } => "acknowledge".to_owned(),
                DirectiveCommand::Report { .. } => "report".to_owned(),
                DirectiveCommand::ReachDeadlineStep { seq, step } =>
                    format!("step {seq}/{}", step.as_str()),
                _ => "?".to_owned(),
            },
            part.unit,
            acting.actor,
            acting.role,
            acting.unit,
            match &first {
                Ok(events) => format!("{} events", events.len()),
                Err(r) => format!("refused: {r}"),
            }
        ));
        let Ok(events) = &first else {
            return Ok(first);
        };
        let mut state = Some(part.clone());
        let mut version = part.version.expect("a version");
        let ledger = self.ledgers.get_mut(&index).expect("a ledger");
        for event in events {
            let running = state.as_ref().and_then(|p| p.deadline.clone());
            let what = format!("part {index}");
            match event {
                PartEvent::DeadlineSet(e) => {
                    ledger.note(&what, running.as_ref(), DeadlineEvent::Set(e), self.now)?;
                }
                PartEvent::DeadlineMet(e) => {
                    ledger.note(&what, running.as_ref(), DeadlineEvent::Met(e), self.now)?;
                }
                PartEvent::DeadlineMissed(e) => {
                    ledger.note(&what, running.as_ref(), DeadlineEvent::Missed(e), self.now)?;
                }
                PartEvent::DeadlineStepReached(e) => {
                    ledger.note(&what, running.as_ref(), DeadlineEvent::Step(e), self.now)?;
                    let up = self
                        .tree
                        .org
                        .unit(&part.unit)
                        .and_then(|u| u.parent.clone())
                        .unwrap_or(part.unit.clone());
                    prop_assert_eq!(&e.unit, &up, "a part's escalation goes one tier up");
                }
                _ => {}
            }
            version = version.next();
            apply_event::<Part>(&mut state, event, version);
        }
        self.parts.insert(index, state.expect("a part"));
        Ok(first)
    }

    fn apply_op(&mut self, op: &DOp) -> Result<(), TestCaseError> {
        match *op {
            DOp::Acknowledge {
                part,
                acting,
                note: n,
            }
            | DOp::Report {
                part,
                acting,
                note: n,
            } => {
                let reporting = matches!(op, DOp::Report { .. });
                let index = self.part_index(part);
                let before = self.parts[&index].clone();
                let acting = acting.choose(&self.tree.pool, |a| self.may_respond(a, &before));
                let note = note(n);
                let command = if reporting {
                    DirectiveCommand::Report { note: note.clone() }
                } else {
                    DirectiveCommand::Acknowledge { note: note.clone() }
                };
                let note_ok =
                    note.chars().count() <= 4000 && (!reporting || !note.trim().is_empty());
                let result = self.submit(index, &acting, &command)?;
                let after = &self.parts[&index];
                let may = self.may_respond(&acting, &before);
                if reporting {
                    let should = may && before.reported_at.is_none() && note_ok;
                    prop_assert_eq!(result.is_ok(), should, "report: {:?}", result);
                    if should {
                        prop_assert!(
                            after.reported_at.is_some() && after.acknowledged_at.is_some()
                        );
                        prop_assert!(after.deadline.is_none(), "reporting closes the deadline");
                    }
                } else {
                    let should = may && (before.acknowledged_at.is_some() || note_ok);
                    prop_assert_eq!(result.is_ok(), should, "acknowledge: {:?}", result);
                    if let Ok(events) = &result {
                        prop_assert_eq!(events.is_empty(), before.acknowledged_at.is_some());
                        prop_assert!(after.acknowledged_at.is_some());
                    }
                }
            }
            DOp::Step {
                part,
                seq,
                step,
                anyone,
            } => {
                let index = self.part_index(part);
                let acting = match anyone {
                    Some(p) => p.choose(&self.tree.pool, |_| true),
                    None => scheduler(),
                };
                let seq = u32::from(seq);
                let due = self.ledgers[&index]
                    .due_now(self.now)
                    .iter()
                    .any(|(s, st, _)| *s == seq && *st == step);
                let result = self.submit(
                    index,
                    &acting,
                    &DirectiveCommand::ReachDeadlineStep { seq, step },
                )?;
                if result.is_ok() {
                    prop_assert!(acting.is_system(), "a step taken by {acting:?}");
                }
                prop_assert!(
                    !(due && acting.is_system()) || result.is_ok(),
                    "a due step was refused to the system: {result:?}"
                );
            }
            DOp::Scheduler => {
                let indexes: Vec<u32> = self.parts.keys().copied().collect();
                for index in indexes {
                    for (seq, step, _) in self.ledgers[&index].due_now(self.now) {
                        let result = self.submit(
                            index,
                            &scheduler(),
                            &DirectiveCommand::ReachDeadlineStep { seq, step },
                        )?;
                        prop_assert!(result.is_ok(), "a due step was refused: {result:?}");
                    }
                }
            }
            DOp::Advance { minutes } => {
                self.now = after_minutes(self.now, minutes);
                self.trace.push(format!("… {minutes} minutes later"));
            }
        }
        self.check()
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let directive = self.directive.as_ref().expect("issued");
        let progress = directive::progress(directive, &self.parts);
        check_progress(&self.tree.org, directive, &self.parts, &progress)?;
        for (index, part) in &self.parts {
            let ledger = &self.ledgers[index];
            if let Some(deadline) = &part.deadline {
                prop_assert!(part.reported_at.is_none(), "a reported part has a deadline");
                prop_assert!(!ledger.is_closed(deadline.seq));
                prop_assert_eq!(&deadline.reached, &ledger.steps_of(deadline.seq));
            } else {
                prop_assert!(
                    part.reported_at.is_some(),
                    "a part lost its deadline unreported"
                );
            }
        }
        Ok(())
    }
}

fn run(spec: &TreeSpec, issue_spec: &IssueSpec, ops: &[DOp]) -> Result<(), TestCaseError> {
    let mut run = DirectiveRun {
        tree: build(spec)?,
        calendar: BusinessCalendar::china(),
        now: monday_morning(),
        directive: None,
        parts: BTreeMap::new(),
        ledgers: BTreeMap::new(),
        trace: Vec::new(),
    };
    let result = (|| {
        run.issue(issue_spec)?;
        if run.directive.is_none() {
            // Issue it properly where someone is below, if anywhere.
            let Some(at) = run
                .tree
                .units
                .iter()
                .position(|u| !chain_units_below(&run.tree.org, u).is_empty())
            else {
                return Ok(());
            };
            // A good title, and the span kept unless it is the zero the domain refuses.
            let fallback = IssueSpec {
                title: 9,
                within: issue_spec.within % 3,
                ..issue_spec.clone()
            };
            let at = run.tree.units[at].clone();
            run.issue_as(at.clone(), Acting::system(at), &fallback)?;
            prop_assert!(
                run.directive.is_some(),
                "the system issues where there are parts"
            );
        }
        run.check()?;
        for op in ops {
            run.apply_op(op)?;
        }
        Ok(())
    })();
    result.map_err(|e| {
        TestCaseError::fail(format!(
            "{e}\n-- what happened --\n{}",
            run.trace.join("\n")
        ))
    })
}

proptest! {
    #![proptest_config(config(256))]

    /// A directive's progress is always the sum of its parts.
    #[test]
    fn directive_progress_is_the_sum_of_its_parts(
        spec in tree(),
        issue_spec in issue(),
        ops in prop::collection::vec(dop(), 0..50),
    ) {
        run(&spec, &issue_spec, &ops)?;
    }
}
