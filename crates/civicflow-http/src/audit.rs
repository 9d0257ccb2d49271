//! A case's audit as JSON: what `GET /api/v1/cases/{id}/audit` answers and
//! `civicflow audit --json` prints (one function, so the two never differ).

use civicflow_core::domain::deadline::LadderStep;
use civicflow_core::engine::{CaseAudit, DeadlineOutcome};
use civicflow_core::Version;
use serde_json::{json, Value};

fn step_name(step: LadderStep) -> &'static str {
    match step {
        LadderStep::Remind => "remind",
        LadderStep::Escalate => "escalate",
        LadderStep::Breach => "breach",
    }
}

/// The audit of a case as JSON: each step with actor, role, unit, tier, time, the stage after
/// it and its chain hash; each deadline, met or missed; and whether the stream's chain
/// verifies. Times are written in the audit's zone (the calendar's).
pub fn to_json(audit: &CaseAudit) -> Value {
    let zone = &audit.zone;
    let steps: Vec<Value> = audit
        .steps
        .iter()
        .map(|step| {
            json!({
                "position": step.position.get(),
                "version": step.version.get(),
                "recorded_at": zone.format(step.recorded_at),
                "type": step.event_type,
                "actor": {
                    "id": step.actor.id.as_str(),
                    "role": step.actor.role.as_str(),
                    "unit_id": step.actor.unit.as_str(),
                    "tier": step.tier.map(|t| t.as_str()),
                },
                "summary": step.summary,
                "stage_after": step.stage_after,
                "closed_after": step.closed_after,
                "lead_after": step.lead_after.as_str(),
                "hash": step.hash.to_hex(),
                "correlation_id": step.correlation_id.to_string(),
                "caused_by": step.caused_by.map(|c| c.to_string()),
                "caused_by_version": step.caused_by_version.map(Version::get),
            })
        })
        .collect();
    let deadlines: Vec<Value> = audit
        .deadlines
        .iter()
        .map(|d| {
            let (outcome, at) = match &d.outcome {
                DeadlineOutcome::Running => ("running", None),
                DeadlineOutcome::Met { at } => ("met", Some(*at)),
                DeadlineOutcome::Missed { at } => ("missed", Some(*at)),
                DeadlineOutcome::Superseded => ("superseded", None),
                #[allow(unreachable_patterns)]
                _ => ("unknown", None),
            };
            json!({
                "seq": d.seq,
                "stage": d.stage,
                "due_at": zone.format(d.due_at),
                "provisional": d.provisional,
                "outcome": outcome,
                "at": at.map(|at| zone.format(at)),
                "steps": d.steps.iter().map(|(step, unit, at)| json!({
                    "step": step_name(*step),
                    "unit_id": unit.as_str(),
                    "at": zone.format(*at),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "case": audit.case.to_string(),
        "workflow": audit.workflow.to_string(),
        "title": audit.title,
        "steps": steps,
        "deadlines": deadlines,
        "chain": {
            "intact": audit.chain.is_intact(),
            "events_checked": audit.chain.events_checked,
            "first_break": audit.chain.first_break.as_ref().map(|b| format!("{b:?}")),
        },
    })
}
