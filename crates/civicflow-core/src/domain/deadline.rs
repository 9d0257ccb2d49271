//! Deadlines and their escalation ladder, shared by cases and directive parts.
//!
//! Entering a stage with a deadline sets one ([`DeadlineSet`], with every step's time
//! computed then, in working time); leaving in time meets it ([`DeadlineMet`]), leaving late
//! misses it ([`DeadlineMissed`]). In between, the scheduler takes the ladder's steps when they
//! fall due: remind the responsible unit (催办), escalate to the unit one tier up (督办), and
//! count a breach. Each step is taken once: deciding a step refuses one already taken.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::context::Context;
use super::org::roles;
use super::rejection::Rejection;
use super::workflow::DeadlineRule;
use crate::calendar::Span;
use crate::clock::Timestamp;
use crate::ids::{Role, UnitId};

/// A step of a deadline's escalation ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LadderStep {
    /// 催办: remind the responsible unit before the deadline.
    Remind,
    /// 督办: at the deadline, the unit one tier up takes over the urging.
    Escalate,
    /// The deadline is breached: counted against the unit.
    Breach,
}

impl LadderStep {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            LadderStep::Remind => "remind",
            LadderStep::Escalate => "escalate",
            LadderStep::Breach => "breach",
        }
    }
}

/// The deadline of the stage a case is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveDeadline {
    /// Its number within the case (1, 2, …).
    pub seq: u32,
    /// The stage it belongs to.
    pub stage: String,
    /// When it was set.
    pub set_at: Timestamp,
    /// When the stage must be left.
    pub due_at: Timestamp,
    /// When to remind, if at all.
    pub remind_at: Option<Timestamp>,
    /// Whether to escalate at the deadline.
    pub escalate: bool,
    /// When it counts as breached, if at all.
    pub breach_at: Option<Timestamp>,
    /// The steps already taken.
    pub reached: BTreeSet<LadderStep>,
    /// What its times were computed from (`None`: a deadline set before deadlines recorded
    /// it).
    pub basis: Option<DeadlineBasis>,
}

impl ActiveDeadline {
    /// Whether its times were computed on plain weekdays for a year the calendar did not
    /// cover yet (`docs/engine.md`, "Calendar years").
    pub fn is_provisional(&self) -> bool {
        self.basis
            .as_ref()
            .is_some_and(|b| b.calendar.is_provisional())
    }

    /// The steps still to come, with their times, earliest first.
    pub fn pending_steps(&self) -> Vec<(LadderStep, Timestamp)> {
        let mut steps = Vec::new();
        if let Some(at) = self.remind_at {
            steps.push((LadderStep::Remind, at));
        }
        if self.escalate {
            steps.push((LadderStep::Escalate, self.due_at));
        }
        if let Some(at) = self.breach_at {
            steps.push((LadderStep::Breach, at));
        }
        steps.retain(|(step, _)| !self.reached.contains(step));
        steps.sort_by_key(|(step, at)| (*at, *step));
        steps
    }

    /// When a step is due, if the ladder has it.
    pub fn step_time(&self, step: LadderStep) -> Option<Timestamp> {
        match step {
            LadderStep::Remind => self.remind_at,
            LadderStep::Escalate => self.escalate.then_some(self.due_at),
            LadderStep::Breach => self.breach_at,
        }
    }
}

/// A deadline was set on entering a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineSet {
    /// Its number within the case.
    pub seq: u32,
    /// The stage.
    pub stage: String,
    /// When it was set.
    pub set_at: Timestamp,
    /// When the stage must be left.
    pub due_at: Timestamp,
    /// When to remind.
    pub remind_at: Option<Timestamp>,
    /// Whether to escalate at the deadline.
    pub escalate: bool,
    /// When it counts as breached.
    pub breach_at: Option<Timestamp>,
    /// What the times were computed from: the spans and the calendar (`None` in version 1).
    pub basis: Option<DeadlineBasis>,
}

/// [`DeadlineSet`] as released at version 1, without its basis. Never written again; kept so
/// that logs holding version 1 still read ([`DeadlineSet::from_v1`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineSetV1 {
    /// Its number within the case.
    pub seq: u32,
    /// The stage.
    pub stage: String,
    /// When it was set.
    pub set_at: Timestamp,
    /// When the stage must be left.
    pub due_at: Timestamp,
    /// When to remind.
    pub remind_at: Option<Timestamp>,
    /// Whether to escalate at the deadline.
    pub escalate: bool,
    /// When it counts as breached.
    pub breach_at: Option<Timestamp>,
}

impl DeadlineSet {
    /// A version-1 deadline: its basis is unknown (it was computed with the calendar compiled
    /// into the release that wrote it, which the event did not record), so it is never
    /// provisional and never recomputed.
    pub fn from_v1(old: DeadlineSetV1) -> Self {
        Self {
            seq: old.seq,
            stage: old.stage,
            set_at: old.set_at,
            due_at: old.due_at,
            remind_at: old.remind_at,
            escalate: old.escalate,
            breach_at: old.breach_at,
            basis: None,
        }
    }
}

/// What a deadline's times were computed from, so that they can be computed again: the
/// spans of its rule and the calendar it was computed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineBasis {
    /// The stage's limit, from the moment it was set.
    pub within: Span,
    /// The reminder's span from the same moment.
    pub remind_after: Option<Span>,
    /// The breach's span after the due time.
    pub breach_after: Option<Span>,
    /// The calendar.
    pub calendar: CalendarStamp,
}

/// The calendar a deadline was computed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarStamp {
    /// The calendar's revision: how many events its stream held (0: only the years the
    /// release carries).
    pub revision: u32,
    /// Its time zone (an IANA name, `Asia/Shanghai`).
    pub zone: String,
    /// The years between the setting and the last step that the calendar had no official
    /// data for: their days were counted as plain weekdays (Monday to Friday), so the times
    /// are provisional and are computed again when such a year is published. Empty: final.
    pub missing_years: Vec<i32>,
}

impl CalendarStamp {
    /// Whether some day was counted on plain weekdays for want of the year's data.
    pub fn is_provisional(&self) -> bool {
        !self.missing_years.is_empty()
    }
}

/// A running deadline's times, computed again with a calendar that now covers what it did
/// not (a year was published). Steps already taken stay taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineRecomputed {
    /// Which deadline.
    pub seq: u32,
    /// The due time it had.
    pub was_due_at: Timestamp,
    /// When the stage must be left now.
    pub due_at: Timestamp,
    /// When to remind now.
    pub remind_at: Option<Timestamp>,
    /// When it counts as breached now.
    pub breach_at: Option<Timestamp>,
    /// The calendar it was computed with now.
    pub calendar: CalendarStamp,
}

/// The stage was left in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineMet {
    /// Which deadline.
    pub seq: u32,
    /// When the stage was left.
    pub at: Timestamp,
}

/// The stage was left after its deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineMissed {
    /// Which deadline.
    pub seq: u32,
    /// When the stage was left.
    pub at: Timestamp,
    /// It was due at.
    pub due_at: Timestamp,
}

/// A step of the escalation ladder was reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineStepReached {
    /// Which deadline.
    pub seq: u32,
    /// Which step.
    pub step: LadderStep,
    /// The unit that must act on it: the lead for a reminder, the unit one tier up for an
    /// escalation or a breach.
    pub unit: UnitId,
    /// When the step was due.
    pub due: Timestamp,
    /// When it was taken (later than `due` if the engine was down).
    pub at: Timestamp,
}

/// The deadline set on entering `stage` at `now`, if the stage has one.
pub(crate) fn deadline_for(
    rule: Option<&DeadlineRule>,
    seq: u32,
    stage: &str,
    ctx: &Context<'_>,
) -> Option<DeadlineSet> {
    let rule = rule?;
    let times = compute_times(
        rule.within,
        rule.remind_after,
        rule.breach_after,
        ctx.now,
        ctx,
    );
    Some(DeadlineSet {
        seq,
        stage: stage.to_owned(),
        set_at: ctx.now,
        due_at: times.due_at,
        remind_at: times.remind_at,
        escalate: rule.escalate,
        breach_at: times.breach_at,
        basis: Some(DeadlineBasis {
            within: rule.within,
            remind_after: rule.remind_after,
            breach_after: rule.breach_after,
            calendar: times.calendar,
        }),
    })
}

/// A deadline's times from its spans, set at `set_at`, with the calendar in `ctx`.
pub(crate) struct Times {
    pub(crate) due_at: Timestamp,
    pub(crate) remind_at: Option<Timestamp>,
    pub(crate) breach_at: Option<Timestamp>,
    pub(crate) calendar: CalendarStamp,
}

pub(crate) fn compute_times(
    within: Span,
    remind_after: Option<Span>,
    breach_after: Option<Span>,
    set_at: Timestamp,
    ctx: &Context<'_>,
) -> Times {
    let due_at = ctx.time.add(set_at, within);
    let remind_at = remind_after.map(|limit| ctx.time.add(set_at, limit));
    let breach_at = breach_after.map(|limit| ctx.time.add(due_at, limit));
    let last = [Some(due_at), remind_at, breach_at]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(due_at);
    // Wall-clock spans need no calendar data: only a deadline counted in working time can
    // be provisional.
    let working = [Some(within), remind_after, breach_after]
        .into_iter()
        .flatten()
        .any(|span| !matches!(span, Span::Calendar(_)));
    let mut calendar = ctx.time.stamp(set_at, last);
    if !working {
        calendar.missing_years.clear();
    }
    Times {
        due_at,
        remind_at,
        breach_at,
        calendar,
    }
}

/// Decides whether the running deadline `seq` is computed again with the calendar now in
/// `ctx` (a year it reached into without data was published): only a provisional deadline,
/// only while it is not yet due, only when the times or the stamp change.
///
/// # Errors
/// A [`Rejection`] for a caller other than the system or a deadline that is not running.
pub(crate) fn recompute(
    deadline: Option<&ActiveDeadline>,
    seq: u32,
    ctx: &Context<'_>,
) -> Result<Option<DeadlineRecomputed>, Rejection> {
    if !ctx.acting.is_system() {
        return Err(Rejection::RoleNotAllowed {
            role: ctx.acting.role.clone(),
            action: "recompute a deadline".into(),
            allowed: vec![Role::new(roles::SYSTEM).expect("valid")],
        });
    }
    let Some(deadline) = deadline.filter(|d| d.seq == seq) else {
        // Closed meanwhile: nothing to move.
        return Ok(None);
    };
    let Some(basis) = deadline
        .basis
        .as_ref()
        .filter(|b| b.calendar.is_provisional())
    else {
        return Ok(None);
    };
    // A deadline already due stays where it was: its steps ran (or are running) on it. The
    // scheduler's index relies on this: it forgets a provisional deadline's mark once the
    // deadline's escalation or breach is reached (`engine/scheduler.rs`).
    if ctx.now >= deadline.due_at {
        return Ok(None);
    }
    let times = compute_times(
        basis.within,
        basis.remind_after,
        basis.breach_after,
        deadline.set_at,
        ctx,
    );
    let unchanged = times.due_at == deadline.due_at
        && times.remind_at == deadline.remind_at
        && times.breach_at == deadline.breach_at
        && times.calendar == basis.calendar;
    if unchanged {
        return Ok(None);
    }
    Ok(Some(DeadlineRecomputed {
        seq,
        was_due_at: deadline.due_at,
        due_at: times.due_at,
        remind_at: times.remind_at,
        breach_at: times.breach_at,
        calendar: times.calendar,
    }))
}

/// Decides a ladder step of the running deadline: only the system takes steps, only of the
/// running deadline, only once, and not before they are due. `responsible` is the unit the
/// deadline is on; escalations and breaches go to the unit above it.
///
/// # Errors
/// A [`Rejection`] saying why the step cannot be taken now.
pub(crate) fn reach_step(
    deadline: Option<&ActiveDeadline>,
    seq: u32,
    step: LadderStep,
    responsible: &UnitId,
    ctx: &Context<'_>,
) -> Result<DeadlineStepReached, Rejection> {
    if !ctx.acting.is_system() {
        return Err(Rejection::RoleNotAllowed {
            role: ctx.acting.role.clone(),
            action: "take a deadline step".into(),
            allowed: vec![Role::new(roles::SYSTEM).expect("valid")],
        });
    }
    let deadline = deadline.filter(|d| d.seq == seq).ok_or_else(|| {
        Rejection::invalid("deadline", format!("deadline {seq} is not the running one"))
    })?;
    if deadline.reached.contains(&step) {
        return Err(Rejection::invalid(
            "deadline",
            format!("step {} of deadline {seq} was already taken", step.as_str()),
        ));
    }
    let due = deadline.step_time(step).ok_or_else(|| {
        Rejection::invalid(
            "deadline",
            format!("deadline {seq} has no {} step", step.as_str()),
        )
    })?;
    if ctx.now < due {
        return Err(Rejection::invalid(
            "deadline",
            format!(
                "step {} of deadline {seq} is due at {}, not yet",
                step.as_str(),
                ctx.time.format_time(due)
            ),
        ));
    }
    let unit = match step {
        LadderStep::Remind => responsible.clone(),
        LadderStep::Escalate | LadderStep::Breach => ctx
            .org
            .supervisor(responsible)
            .cloned()
            .unwrap_or_else(|| responsible.clone()),
    };
    Ok(DeadlineStepReached {
        seq,
        step,
        unit,
        due,
        at: ctx.now,
    })
}

/// The event that closes the running deadline when its stage is left at `now`.
pub(crate) fn close_deadline(
    deadline: &ActiveDeadline,
    now: Timestamp,
) -> Result<DeadlineMet, DeadlineMissed> {
    if now <= deadline.due_at {
        Ok(DeadlineMet {
            seq: deadline.seq,
            at: now,
        })
    } else {
        Err(DeadlineMissed {
            seq: deadline.seq,
            at: now,
            due_at: deadline.due_at,
        })
    }
}

impl ActiveDeadline {
    /// The running deadline a [`DeadlineSet`] starts.
    pub fn from_set(e: &DeadlineSet) -> Self {
        ActiveDeadline {
            seq: e.seq,
            stage: e.stage.clone(),
            set_at: e.set_at,
            due_at: e.due_at,
            remind_at: e.remind_at,
            escalate: e.escalate,
            breach_at: e.breach_at,
            reached: BTreeSet::new(),
            basis: e.basis.clone(),
        }
    }

    /// Folds a recomputation in: new times and stamp, the steps taken stay taken.
    pub fn recomputed(&mut self, e: &DeadlineRecomputed) {
        if e.seq != self.seq {
            return;
        }
        self.due_at = e.due_at;
        self.remind_at = e.remind_at;
        self.breach_at = e.breach_at;
        if let Some(basis) = self.basis.as_mut() {
            basis.calendar = e.calendar.clone();
        }
    }
}
