//! Directives: 指令层层下达, 一竿到底. A unit issues a directive (epidemic prevention,
//! consumer protection, training, …); it reaches every unit of the chain below, down to the
//! shops, in one atomic append; each unit acknowledges and reports done on its own part;
//! progress rolls back up (上下联动): a unit's part is complete when it reported done and every
//! part below it is complete.
//!
//! The directive itself is one stream; each unit's part is a stream of its own, so that
//! hundreds of shops acknowledging at once never contend.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::aggregate::{Aggregate, Decision, Fold};
use super::context::Context;
use super::deadline::{close_deadline, compute_times, reach_step, recompute};
pub use super::deadline::{
    ActiveDeadline, DeadlineBasis, DeadlineMet, DeadlineMissed, DeadlineRecomputed, DeadlineSet,
    DeadlineSetV1, DeadlineStepReached, LadderStep,
};
use super::events::domain_events;
use super::org::{roles, Acting, OrgChart, Tier};
use super::rejection::Rejection;
use super::workflow::Span;
use crate::clock::Timestamp;
use crate::ids::{DirectiveId, Role, StreamId, UnitId, Version};

/// What a directive is about (the seed's examples).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectiveKind {
    /// 疫情防控.
    EpidemicPrevention,
    /// 党群服务.
    PartyService,
    /// 消费维权.
    ConsumerProtection,
    /// 员工培训.
    StaffTraining,
    /// 社会稳定.
    SocialStability,
    /// Anything else.
    Other,
}

/// One unit's place in a directive's tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartInfo {
    /// Its number (its stream is `directive-<id>.<index>`).
    pub index: u32,
    /// The unit.
    pub unit: UnitId,
    /// The part of the unit above it, `None` for the units right below the issuer.
    pub parent: Option<u32>,
}

/// A directive as issued.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectiveState {
    /// The directive.
    pub id: DirectiveId,
    /// Title.
    pub title: String,
    /// What to do.
    pub body: String,
    /// Kind.
    pub kind: DirectiveKind,
    /// The issuing unit.
    pub issued_by: UnitId,
    /// When.
    pub issued_at: Timestamp,
    /// Every part, in index order (parents before children).
    pub parts: Vec<PartInfo>,
}

impl DirectiveState {
    /// The part of a unit.
    pub fn part_of(&self, unit: &UnitId) -> Option<&PartInfo> {
        self.parts.iter().find(|p| &p.unit == unit)
    }
}

/// One unit's share of a directive.
#[derive(Debug, Clone, PartialEq)]
pub struct PartState {
    /// The directive.
    pub directive: DirectiveId,
    /// Its number.
    pub index: u32,
    /// The unit.
    pub unit: UnitId,
    /// The part above it.
    pub parent: Option<u32>,
    /// When the unit acknowledged.
    pub acknowledged_at: Option<Timestamp>,
    /// When the unit reported done.
    pub reported_at: Option<Timestamp>,
    /// What the unit reported.
    pub report: Option<String>,
    /// The running deadline (until reported).
    pub deadline: Option<ActiveDeadline>,
    /// Whether the deadline was missed.
    pub missed: bool,
    /// The unit supervising after an escalation (督办), until the deadline is met or missed.
    pub escalated_to: Option<UnitId>,
    /// The version of the part's stream this state is as of.
    pub version: Option<Version>,
}

/// A command about a directive.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DirectiveCommand {
    /// Issue a directive at `unit` to every chain unit below it.
    Issue {
        /// The new directive's id (minted by the engine).
        directive: DirectiveId,
        /// Title.
        title: String,
        /// What to do.
        body: String,
        /// Kind.
        kind: DirectiveKind,
        /// The issuing unit.
        unit: UnitId,
        /// How long each unit has to report done.
        within: Span,
    },
    /// The acting unit acknowledges its part.
    Acknowledge {
        /// A note.
        note: String,
    },
    /// The acting unit reports its part done.
    Report {
        /// What was done.
        note: String,
    },
    /// Take the next ladder step of the part's deadline (the scheduler does this).
    ReachDeadlineStep {
        /// Which deadline.
        seq: u32,
        /// Which step.
        step: LadderStep,
    },
    /// Compute the part's provisional running deadline again with the calendar now in force
    /// (the engine does this when a year is published).
    RecomputeDeadline {
        /// Which deadline.
        seq: u32,
    },
}

/// A directive was issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectiveIssued {
    /// The directive.
    pub directive: DirectiveId,
    /// Title.
    pub title: String,
    /// What to do.
    pub body: String,
    /// Kind.
    pub kind: DirectiveKind,
    /// The issuing unit.
    pub issued_by: UnitId,
    /// Every part.
    pub parts: Vec<PartInfo>,
    /// When.
    pub at: Timestamp,
}

/// A unit received its part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartAssigned {
    /// The directive.
    pub directive: DirectiveId,
    /// The part.
    pub part: PartInfo,
}

/// A unit acknowledged its part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartAcknowledged {
    /// A note.
    pub note: String,
    /// When.
    pub at: Timestamp,
}

/// A unit reported its part done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartReported {
    /// What was done.
    pub note: String,
    /// When.
    pub at: Timestamp,
}

domain_events! {
    /// The events of a directive's own stream.
    pub enum DirectiveEvent {
        /// Issued.
        Issued(DirectiveIssued) = "DirectiveIssued" v 1,
    }
}

domain_events! {
    /// The events of one unit's part of a directive.
    pub enum PartEvent {
        /// Assigned.
        Assigned(PartAssigned) = "PartAssigned" v 1,
        /// Acknowledged.
        Acknowledged(PartAcknowledged) = "PartAcknowledged" v 1,
        /// Reported done.
        Reported(PartReported) = "PartReported" v 1,
        /// Its deadline was set.
        DeadlineSet(DeadlineSet) = "DeadlineSet" v 2 {
            v 1 => DeadlineSetV1 via DeadlineSet::from_v1,
        },
        /// Its deadline was computed again (its year's calendar was published).
        DeadlineRecomputed(DeadlineRecomputed) = "DeadlineRecomputed" v 1,
        /// Reported in time.
        DeadlineMet(DeadlineMet) = "DeadlineMet" v 1,
        /// Reported late.
        DeadlineMissed(DeadlineMissed) = "DeadlineMissed" v 1,
        /// A ladder step was reached.
        DeadlineStepReached(DeadlineStepReached) = "DeadlineStepReached" v 1,
    }
}

/// What issuing a directive writes: its own event and one batch per part.
#[derive(Debug, Clone, PartialEq)]
struct Issued {
    /// For the directive's stream.
    directive: DirectiveEvent,
    /// For each part's stream, by index.
    parts: Vec<(u32, Vec<PartEvent>)>,
}

/// The roles that may issue directives (to their own subtree).
const ISSUERS: &[&str] = &[
    roles::COMMUNITY_ADMIN,
    roles::GRID_WORKER,
    roles::ENTERPRISE_LIAISON,
];
/// The roles that act on a unit's part (acknowledge it, report on it).
pub const RESPONDERS: &[&str] = &[
    roles::COMMUNITY_ADMIN,
    roles::GRID_WORKER,
    roles::ENTERPRISE_LIAISON,
    roles::SHOP_OWNER,
    roles::PARTY_MEMBER,
];

fn role_list(names: &[&str]) -> Vec<Role> {
    names
        .iter()
        .map(|r| Role::new(*r).expect("built-in roles are valid"))
        .collect()
}

/// Decides issuing a directive: the parts are every unit of the chain below the issuing unit.
fn decide_issue(command: &DirectiveCommand, ctx: &Context<'_>) -> Result<Issued, Rejection> {
    let DirectiveCommand::Issue {
        directive,
        title,
        body,
        kind,
        unit,
        within,
    } = command
    else {
        return Err(Rejection::invalid("command", "not an issue command"));
    };
    ctx.org.check_acting(ctx.acting)?;
    if ctx.org.unit(unit).is_none() {
        return Err(Rejection::NotFound {
            what: "unit",
            id: unit.to_string(),
        });
    }
    if !ctx.acting.is_system() {
        if !ISSUERS.contains(&ctx.acting.role.as_str()) {
            return Err(Rejection::RoleNotAllowed {
                role: ctx.acting.role.clone(),
                action: "issue a directive".into(),
                allowed: role_list(ISSUERS),
            });
        }
        if !ctx.org.is_within(unit, &ctx.acting.unit) {
            return Err(Rejection::OutOfScope {
                unit: ctx.acting.unit.clone(),
                action: "issue a directive".into(),
                scope: "the acting unit or a unit below it".into(),
                target: unit.clone(),
            });
        }
    }
    super::text::check("title", title, super::text::Lines::One)?;
    super::text::check("body", body, super::text::Lines::Many)?;
    let title_chars = title.trim().chars().count();
    if super::text::is_blank(title) || title_chars > 200 {
        return Err(Rejection::FieldInvalid {
            field: "title".into(),
            reason: "must be 1 to 200 characters".into(),
        });
    }
    if body.chars().count() > 4000 {
        return Err(Rejection::FieldInvalid {
            field: "body".into(),
            reason: "at most 4000 characters".into(),
        });
    }
    // A zero span would be due (and escalate) at once; past a year the due time lands
    // beyond what a time can hold.
    within
        .check_deadline()
        .map_err(|e| Rejection::invalid("within", e.to_string()))?;
    let parts = parts_below(ctx.org, unit);
    if parts.is_empty() {
        return Err(Rejection::invalid(
            "unit",
            format!("no unit of the chain lies below {unit}: a directive needs someone to reach"),
        ));
    }
    let times = compute_times(*within, None, None, ctx.now, ctx);
    let part_events = parts
        .iter()
        .map(|part| {
            (
                part.index,
                vec![
                    PartEvent::Assigned(PartAssigned {
                        directive: *directive,
                        part: part.clone(),
                    }),
                    PartEvent::DeadlineSet(DeadlineSet {
                        seq: 1,
                        stage: "report".into(),
                        set_at: ctx.now,
                        due_at: times.due_at,
                        remind_at: None,
                        escalate: true,
                        breach_at: None,
                        basis: Some(DeadlineBasis {
                            within: *within,
                            remind_after: None,
                            breach_after: None,
                            calendar: times.calendar.clone(),
                        }),
                    }),
                ],
            )
        })
        .collect();
    Ok(Issued {
        directive: DirectiveEvent::Issued(DirectiveIssued {
            directive: *directive,
            title: title.trim().to_owned(),
            body: body.trim().to_owned(),
            kind: *kind,
            issued_by: unit.clone(),
            parts,
            at: ctx.now,
        }),
        parts: part_events,
    })
}

/// Every chain unit strictly below `root`, parents before children, numbered from 1.
fn parts_below(org: &OrgChart, root: &UnitId) -> Vec<PartInfo> {
    let mut parts: Vec<PartInfo> = Vec::new();
    let mut index_of: BTreeMap<UnitId, u32> = BTreeMap::new();
    for unit in org.subtree(root).into_iter().skip(1) {
        let Some(info) = org.unit(&unit) else {
            continue;
        };
        if !info.tier.in_chain() || info.tier == Tier::Community {
            continue;
        }
        let parent = info.parent.as_ref().and_then(|p| index_of.get(p).copied());
        let index = u32::try_from(parts.len() + 1).unwrap_or(u32::MAX);
        index_of.insert(unit.clone(), index);
        parts.push(PartInfo {
            index,
            unit,
            parent,
        });
    }
    parts
}

/// Decides an acknowledgement, a report or a deadline step on one part.
fn decide_part(
    part: &PartState,
    command: &DirectiveCommand,
    ctx: &Context<'_>,
) -> Result<Vec<PartEvent>, Rejection> {
    if let DirectiveCommand::ReachDeadlineStep { seq, step } = command {
        let reached = reach_step(part.deadline.as_ref(), *seq, *step, &part.unit, ctx)?;
        return Ok(vec![PartEvent::DeadlineStepReached(reached)]);
    }
    if let DirectiveCommand::RecomputeDeadline { seq } = command {
        return Ok(recompute(part.deadline.as_ref(), *seq, ctx)?
            .map(PartEvent::DeadlineRecomputed)
            .into_iter()
            .collect());
    }
    check_responder(part, ctx.acting, ctx.org)?;
    match command {
        DirectiveCommand::Acknowledge { note } => {
            if part.acknowledged_at.is_some() {
                return Ok(Vec::new());
            }
            check_note(note, false)?;
            Ok(vec![PartEvent::Acknowledged(PartAcknowledged {
                note: note.trim().to_owned(),
                at: ctx.now,
            })])
        }
        DirectiveCommand::Report { note } => {
            if part.reported_at.is_some() {
                return Err(Rejection::invalid(
                    "part",
                    format!("{} already reported done", part.unit),
                ));
            }
            check_note(note, true)?;
            let mut events = Vec::new();
            if part.acknowledged_at.is_none() {
                events.push(PartEvent::Acknowledged(PartAcknowledged {
                    note: String::new(),
                    at: ctx.now,
                }));
            }
            events.push(PartEvent::Reported(PartReported {
                note: note.trim().to_owned(),
                at: ctx.now,
            }));
            if let Some(deadline) = &part.deadline {
                events.push(match close_deadline(deadline, ctx.now) {
                    Ok(met) => PartEvent::DeadlineMet(met),
                    Err(missed) => PartEvent::DeadlineMissed(missed),
                });
            }
            Ok(events)
        }
        _ => Err(Rejection::invalid(
            "command",
            "not a command for a directive's part",
        )),
    }
}

fn check_note(note: &str, required: bool) -> Result<(), Rejection> {
    super::text::check("note", note, super::text::Lines::Many)?;
    if required && super::text::is_blank(note) {
        return Err(Rejection::FieldMissing {
            action: "report".into(),
            field: "note".into(),
        });
    }
    if note.chars().count() > 4000 {
        return Err(Rejection::FieldInvalid {
            field: "note".into(),
            reason: "at most 4000 characters".into(),
        });
    }
    Ok(())
}

fn check_responder(part: &PartState, acting: &Acting, org: &OrgChart) -> Result<(), Rejection> {
    org.check_acting(acting)?;
    if acting.is_system() {
        return Ok(());
    }
    if !RESPONDERS.contains(&acting.role.as_str()) {
        return Err(Rejection::RoleNotAllowed {
            role: acting.role.clone(),
            action: "respond to a directive".into(),
            allowed: role_list(RESPONDERS),
        });
    }
    if acting.unit != part.unit {
        return Err(Rejection::OutOfScope {
            unit: acting.unit.clone(),
            action: "respond to a directive".into(),
            scope: "the unit the part is for".into(),
            target: part.unit.clone(),
        });
    }
    Ok(())
}

/// Folds an event into a directive's state.
fn apply_directive(
    state: Option<DirectiveState>,
    event: &DirectiveEvent,
) -> Option<DirectiveState> {
    match event {
        DirectiveEvent::Issued(e) => Some(DirectiveState {
            id: e.directive,
            title: e.title.clone(),
            body: e.body.clone(),
            kind: e.kind,
            issued_by: e.issued_by.clone(),
            issued_at: e.at,
            parts: e.parts.clone(),
        }),
        #[allow(unreachable_patterns)]
        _ => state,
    }
}

/// Folds an event into a part's state; `version` is the event's version in the part's stream.
fn apply_part(state: Option<PartState>, event: &PartEvent, version: Version) -> Option<PartState> {
    let mut state = match (state, event) {
        (None, PartEvent::Assigned(e)) => PartState {
            directive: e.directive,
            index: e.part.index,
            unit: e.part.unit.clone(),
            parent: e.part.parent,
            acknowledged_at: None,
            reported_at: None,
            report: None,
            deadline: None,
            missed: false,
            escalated_to: None,
            version: Some(version),
        },
        (None, _) => return None,
        (Some(state), _) => state,
    };
    match event {
        PartEvent::Assigned(_) => {}
        PartEvent::Acknowledged(e) => state.acknowledged_at = Some(e.at),
        PartEvent::Reported(e) => {
            state.reported_at = Some(e.at);
            state.report = Some(e.note.clone());
        }
        PartEvent::DeadlineSet(e) => state.deadline = Some(ActiveDeadline::from_set(e)),
        PartEvent::DeadlineRecomputed(e) => {
            if let Some(deadline) = state.deadline.as_mut() {
                deadline.recomputed(e);
            }
        }
        // An escalation supervises until the deadline resolves, as for a case.
        PartEvent::DeadlineMet(_) => {
            state.deadline = None;
            state.escalated_to = None;
        }
        PartEvent::DeadlineMissed(_) => {
            state.deadline = None;
            state.missed = true;
            state.escalated_to = None;
        }
        PartEvent::DeadlineStepReached(e) => {
            if let Some(deadline) = state.deadline.as_mut().filter(|d| d.seq == e.seq) {
                deadline.reached.insert(e.step);
            }
            if e.step == LadderStep::Escalate {
                state.escalated_to = Some(e.unit.clone());
            }
        }
    }
    state.version = Some(version);
    Some(state)
}

/// A directive: one stream `directive-<uuid>` with what was issued, to whom.
#[derive(Debug, Clone, Copy)]
pub struct Directive;

impl Aggregate for Directive {
    type Id = DirectiveId;
    type State = Option<DirectiveState>;
    type Command = DirectiveCommand;
    type Event = DirectiveEvent;

    const KIND: &'static str = "directive";

    fn stream(id: &DirectiveId) -> Result<StreamId, Rejection> {
        Ok(id.stream())
    }

    /// Issuing opens the directive's stream and, in the same append, one stream per unit of
    /// the chain below the issuing unit ([`Part`]). The other commands are a part's.
    fn decide(
        id: &DirectiveId,
        state: &Option<DirectiveState>,
        command: &DirectiveCommand,
        ctx: &Context<'_>,
    ) -> Result<Decision<Self>, Rejection> {
        if let Some(state) = state {
            return Err(Rejection::AlreadyExists {
                what: "directive",
                id: state.id.to_string(),
            });
        }
        let issued = decide_issue(command, ctx)?;
        let mut decision = Decision::events(vec![issued.directive]);
        for (index, events) in issued.parts {
            decision = decision.creating(id.part_stream(index), events);
        }
        Ok(decision)
    }

    fn apply(state: &mut Option<DirectiveState>, event: &DirectiveEvent, _fold: &Fold<'_>) {
        *state = apply_directive(state.take(), event);
    }

    /// Whoever has some [`Sight`] of it.
    fn may_see(state: &Option<DirectiveState>, viewer: &Acting, org: &OrgChart) -> bool {
        state.as_ref().is_some_and(|directive| {
            sight(
                viewer,
                org,
                &directive.issued_by,
                directive.parts.iter().map(|p| &p.unit),
            ) != Sight::None
        })
    }
}

/// One unit's part of a directive: one stream `directive-<uuid>.<index>` per unit, so that
/// hundreds of shops acknowledging at once never contend.
#[derive(Debug, Clone, Copy)]
pub struct Part;

impl Aggregate for Part {
    /// The directive and the part's index.
    type Id = (DirectiveId, u32);
    type State = Option<PartState>;
    type Command = DirectiveCommand;
    type Event = PartEvent;

    const KIND: &'static str = "directive part";

    fn stream((directive, index): &(DirectiveId, u32)) -> Result<StreamId, Rejection> {
        Ok(directive.part_stream(*index))
    }

    /// Refused when the acting unit is not the part's unit, the role may not respond, or the
    /// part is not in a state to take it.
    fn decide(
        (directive, index): &(DirectiveId, u32),
        state: &Option<PartState>,
        command: &DirectiveCommand,
        ctx: &Context<'_>,
    ) -> Result<Decision<Self>, Rejection> {
        let part = state.as_ref().ok_or_else(|| Rejection::NotFound {
            what: "directive part",
            id: format!("{directive}.{index}"),
        })?;
        decide_part(part, command, ctx).map(Decision::events)
    }

    fn apply(state: &mut Option<PartState>, event: &PartEvent, fold: &Fold<'_>) {
        *state = apply_part(state.take(), event, fold.version);
    }

    /// The system and auditors, the part's unit and every unit above it.
    fn may_see(state: &Option<PartState>, viewer: &Acting, org: &OrgChart) -> bool {
        state.as_ref().is_some_and(|part| {
            viewer.is_system()
                || viewer.role.as_str() == roles::AUDITOR
                || org.is_within(&part.unit, &viewer.unit)
        })
    }
}

/// How much of a directive a viewer sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sight {
    /// Every part: the system, auditors, the issuing unit and the units above it.
    Full,
    /// The parts in the viewer's subtree: a unit the directive reached, or one above such a
    /// unit.
    Subtree,
    /// Nothing: to this viewer the directive does not exist.
    None,
}

impl Sight {
    /// Whether a viewer with this sight sees the part of `unit`: every part with
    /// [`Sight::Full`], the parts in the viewer's subtree with [`Sight::Subtree`].
    pub fn shows(self, unit: &UnitId, viewer: &Acting, org: &OrgChart) -> bool {
        match self {
            Sight::Full => true,
            Sight::Subtree => org.is_within(unit, &viewer.unit),
            Sight::None => false,
        }
    }
}

/// How much of a directive issued by `issued_by` to the units of `parts` a viewer sees.
pub fn sight<'u>(
    viewer: &Acting,
    org: &OrgChart,
    issued_by: &UnitId,
    mut parts: impl Iterator<Item = &'u UnitId>,
) -> Sight {
    if viewer.is_system()
        || viewer.role.as_str() == roles::AUDITOR
        || org.is_within(issued_by, &viewer.unit)
    {
        Sight::Full
    } else if parts.any(|unit| org.is_within(unit, &viewer.unit)) {
        Sight::Subtree
    } else {
        Sight::None
    }
}

/// Whether a directive event about `unit` (a part's unit, or the issuing unit) belongs in the
/// live feed of `root`'s subtree for `viewer`: the unit lies in the subtree and the viewer's
/// grant holds.
pub fn concerns_subtree(unit: &UnitId, root: &UnitId, viewer: &Acting, org: &OrgChart) -> bool {
    org.is_within(unit, root) && org.check_acting(viewer).is_ok()
}

/// A directive's progress as `viewer` may see it: with [`Sight::Full`] every part, with
/// [`Sight::Subtree`] the parts in the viewer's subtree (each rolled up over the whole tree).
pub fn progress_seen_by(
    directive: &DirectiveState,
    parts: &BTreeMap<u32, PartState>,
    viewer: &Acting,
    org: &OrgChart,
) -> Option<(Sight, Progress)> {
    let seen = sight(
        viewer,
        org,
        &directive.issued_by,
        directive.parts.iter().map(|p| &p.unit),
    );
    if seen == Sight::None {
        return None;
    }
    let mut rolled = progress(directive, parts);
    rolled.parts.retain(|p| seen.shows(&p.unit, viewer, org));
    Some((seen, rolled))
}

/// One unit's progress, rolled up over everything below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartProgress {
    /// The part.
    pub index: u32,
    /// The unit.
    pub unit: UnitId,
    /// The part above.
    pub parent: Option<u32>,
    /// Whether the unit acknowledged.
    pub acknowledged: bool,
    /// Whether the unit reported done.
    pub reported: bool,
    /// Whether the unit and every unit below it reported done.
    pub complete: bool,
    /// Units in this part's subtree (itself included).
    pub units: u32,
    /// Of those, how many reported done.
    pub units_reported: u32,
    /// Whether its deadline was missed.
    pub missed: bool,
}

/// A directive's progress: every part rolled up, and the totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Per part, in index order.
    pub parts: Vec<PartProgress>,
    /// Parts in all.
    pub units: u32,
    /// Parts acknowledged.
    pub acknowledged: u32,
    /// Parts reported done.
    pub reported: u32,
    /// Whether every part is complete.
    pub complete: bool,
}

/// Rolls the parts' states up the directive's tree. A part missing from `parts` counts as
/// not acknowledged.
pub fn progress(directive: &DirectiveState, parts: &BTreeMap<u32, PartState>) -> Progress {
    let mut rows: Vec<PartProgress> = directive
        .parts
        .iter()
        .map(|info| {
            let state = parts.get(&info.index);
            let reported = state.is_some_and(|s| s.reported_at.is_some());
            PartProgress {
                index: info.index,
                unit: info.unit.clone(),
                parent: info.parent,
                acknowledged: state.is_some_and(|s| s.acknowledged_at.is_some()),
                reported,
                complete: reported,
                units: 1,
                units_reported: u32::from(reported),
                missed: state.is_some_and(|s| s.missed),
            }
        })
        .collect();
    // Parents come before children, so walking backwards folds every child into its parent
    // after the child has received its own children.
    let position: BTreeMap<u32, usize> =
        rows.iter().enumerate().map(|(i, r)| (r.index, i)).collect();
    for i in (0..rows.len()).rev() {
        let (complete, units, reported) = (rows[i].complete, rows[i].units, rows[i].units_reported);
        if let Some(&p) = rows[i].parent.and_then(|parent| position.get(&parent)) {
            rows[p].complete &= complete;
            rows[p].units += units;
            rows[p].units_reported += reported;
        }
    }
    let count = |f: fn(&PartProgress) -> bool| {
        u32::try_from(rows.iter().filter(|r| f(r)).count()).unwrap_or(u32::MAX)
    };
    Progress {
        units: u32::try_from(rows.len()).unwrap_or(u32::MAX),
        acknowledged: count(|r| r.acknowledged),
        reported: count(|r| r.reported),
        complete: rows.iter().all(|r| r.complete),
        parts: rows,
    }
}
