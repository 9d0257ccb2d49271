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
}

impl ActiveDeadline {
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
    let due_at = ctx.time.add(ctx.now, rule.within);
    Some(DeadlineSet {
        seq,
        stage: stage.to_owned(),
        set_at: ctx.now,
        due_at,
        remind_at: rule.remind_after.map(|limit| ctx.time.add(ctx.now, limit)),
        escalate: rule.escalate,
        breach_at: rule.breach_after.map(|limit| ctx.time.add(due_at, limit)),
    })
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
        }
    }
}
