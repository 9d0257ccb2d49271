//! A case's audit as JSON: what `GET /api/v1/cases/{id}/audit` answers and
//! `civicflow audit --json` prints (one type, so the two never differ).

use civicflow_core::domain::deadline::LadderStep;
use civicflow_core::engine::{CaseAudit, DeadlineOutcome};
use civicflow_core::Actor;
use civicflow_core::Version;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::routes::org::TierName;

/// The audit of a case: each step with actor, role, unit, tier, time, the stage after it and
/// its chain hash; each deadline, met or missed; and whether the stream's chain verifies.
/// Times are written in the audit's zone (the calendar's).
#[derive(Debug, Serialize, JsonSchema)]
pub struct AuditAnswer {
    /// The case.
    pub case: String,
    /// The workflow it ran on, id@version (the version pinned at its last step).
    pub workflow: String,
    /// Its title.
    pub title: String,
    /// Every step, in order.
    pub steps: Vec<AuditStepAnswer>,
    /// Every deadline.
    pub deadlines: Vec<AuditDeadlineAnswer>,
    /// The case's hash chain, checked again now.
    pub chain: ChainAnswer,
}

/// Who wrote an event.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ActorAnswer {
    /// The actor.
    pub id: String,
    /// The role it acted in.
    pub role: String,
    /// The unit it acted for.
    pub unit_id: String,
}

impl From<&Actor> for ActorAnswer {
    fn from(actor: &Actor) -> Self {
        Self {
            id: actor.id.as_str().to_owned(),
            role: actor.role.as_str().to_owned(),
            unit_id: actor.unit.as_str().to_owned(),
        }
    }
}

/// Who took a step, and the tier of their unit.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AuditActorAnswer {
    /// The actor, its role and unit.
    #[serde(flatten)]
    pub actor: ActorAnswer,
    /// The tier of its unit; null when the unit is not in the org chart.
    pub tier: Option<TierName>,
}

/// One step of a case.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AuditStepAnswer {
    /// Its position in the log.
    pub position: u64,
    /// The case's version after it.
    pub version: u64,
    /// When it was recorded.
    pub recorded_at: String,
    /// The event's type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Who took it.
    pub actor: AuditActorAnswer,
    /// What happened, in one line.
    pub summary: String,
    /// The stage after it.
    pub stage_after: String,
    /// Whether the case was closed after it.
    pub closed_after: bool,
    /// The unit leading the case after it.
    pub lead_after: String,
    /// Its chain hash (hex).
    pub hash: String,
    /// The request that wrote it.
    pub correlation_id: String,
    /// The event that caused it; null: none did.
    pub caused_by: Option<String>,
    /// The version of the case that caused it; null: none did.
    pub caused_by_version: Option<u64>,
}

/// One deadline of a case, and what became of it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AuditDeadlineAnswer {
    /// Its number within the case.
    pub seq: u32,
    /// The stage it was set for.
    pub stage: String,
    /// When it fell (falls) due.
    pub due_at: String,
    /// The due time was counted without a year's calendar data.
    pub provisional: bool,
    /// What became of it.
    pub outcome: DeadlineOutcomeName,
    /// When it was met or missed; null while running or once superseded.
    pub at: Option<String>,
    /// The reminders, escalations and breaches it took.
    pub steps: Vec<LadderStepAnswer>,
}

/// What became of a deadline.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineOutcomeName {
    /// Still running.
    Running,
    /// The stage was left in time.
    Met,
    /// The stage was left late.
    Missed,
    /// Replaced without being met or missed (the case was migrated or reopened).
    Superseded,
}

/// A reminder, escalation or breach of a deadline.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LadderStepAnswer {
    /// Which.
    pub step: LadderStepName,
    /// The unit it went to.
    pub unit_id: String,
    /// When.
    pub at: String,
}

/// A rung of a deadline's ladder.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LadderStepName {
    /// A reminder.
    Remind,
    /// An escalation to the supervising unit.
    Escalate,
    /// A breach.
    Breach,
}

impl From<LadderStep> for LadderStepName {
    fn from(step: LadderStep) -> Self {
        match step {
            LadderStep::Remind => LadderStepName::Remind,
            LadderStep::Escalate => LadderStepName::Escalate,
            LadderStep::Breach => LadderStepName::Breach,
        }
    }
}

/// A case's hash chain, checked.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ChainAnswer {
    /// Whether it verifies.
    pub intact: bool,
    /// The events checked.
    pub events_checked: u64,
    /// Where and why it broke; null when intact.
    pub first_break: Option<String>,
}

impl AuditAnswer {
    /// The answer for `audit`.
    pub fn new(audit: &CaseAudit) -> Self {
        let zone = &audit.zone;
        let steps = audit
            .steps
            .iter()
            .map(|step| AuditStepAnswer {
                position: step.position.get(),
                version: step.version.get(),
                recorded_at: zone.format(step.recorded_at),
                event_type: step.event_type.clone(),
                actor: AuditActorAnswer {
                    actor: (&step.actor).into(),
                    tier: step.tier.map(TierName::from),
                },
                summary: step.summary.clone(),
                stage_after: step.stage_after.clone(),
                closed_after: step.closed_after,
                lead_after: step.lead_after.as_str().to_owned(),
                hash: step.hash.to_hex(),
                correlation_id: step.correlation_id.to_string(),
                caused_by: step.caused_by.map(|c| c.to_string()),
                caused_by_version: step.caused_by_version.map(Version::get),
            })
            .collect();
        let deadlines = audit
            .deadlines
            .iter()
            .map(|d| {
                let (outcome, at) = match &d.outcome {
                    DeadlineOutcome::Running => (DeadlineOutcomeName::Running, None),
                    DeadlineOutcome::Met { at } => (DeadlineOutcomeName::Met, Some(*at)),
                    DeadlineOutcome::Missed { at } => (DeadlineOutcomeName::Missed, Some(*at)),
                    DeadlineOutcome::Superseded => (DeadlineOutcomeName::Superseded, None),
                };
                AuditDeadlineAnswer {
                    seq: d.seq,
                    stage: d.stage.clone(),
                    due_at: zone.format(d.due_at),
                    provisional: d.provisional,
                    outcome,
                    at: at.map(|at| zone.format(at)),
                    steps: d
                        .steps
                        .iter()
                        .map(|(step, unit, at)| LadderStepAnswer {
                            step: (*step).into(),
                            unit_id: unit.as_str().to_owned(),
                            at: zone.format(*at),
                        })
                        .collect(),
                }
            })
            .collect();
        Self {
            case: audit.case.to_string(),
            workflow: audit.workflow.to_string(),
            title: audit.title.clone(),
            steps,
            deadlines,
            chain: ChainAnswer {
                intact: audit.chain.is_intact(),
                events_checked: audit.chain.events_checked,
                first_break: audit.chain.first_break.as_ref().map(|b| format!("{b:?}")),
            },
        }
    }
}

/// The audit of a case as a JSON value ([`AuditAnswer`]), for `civicflow audit --json`.
pub fn to_json(audit: &CaseAudit) -> Value {
    // Strings, numbers and structs with string keys only: serializing cannot fail.
    serde_json::to_value(AuditAnswer::new(audit)).unwrap_or(Value::Null)
}
