//! What an auditor asks of a case: every step with who took it (actor, role, unit, tier),
//! when, the state after it, which deadlines were met or missed, and proof that the record
//! was not altered (the case's hash chain, checked again).

use std::fmt;

use super::load::{self, FoldAlong, Loaded};
use super::{Engine, EngineError, SubmitError};
use crate::calendar::Zone;
use crate::chain::{ChainHash, VerifyReport};
use crate::clock::Timestamp;
use crate::domain::aggregate::{Aggregate, Fold};
use crate::domain::case::{Case, CaseEvent, CaseState, LadderStep};
use crate::domain::org::{Acting, Org, Tier};
use crate::domain::workflow::{DefinitionRef, DefinitionRegistry};
use crate::domain::Rejection;
use crate::event::RecordedEvent;
use crate::ids::{Actor, CaseId, CausationId, CorrelationId, EventId, Position, UnitId, Version};
use crate::store::EventStore;

/// One event of a case, decoded, with its log metadata.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    /// The stored event (position, version, time, actor, hash, …).
    pub recorded: RecordedEvent,
    /// The domain event.
    pub event: CaseEvent,
    /// What happened, in words.
    pub summary: String,
}

/// One step of an audit: an event and the state it left.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditStep {
    /// Position in the log.
    pub position: Position,
    /// Version in the case's stream.
    pub version: Version,
    /// When it was recorded.
    pub recorded_at: Timestamp,
    /// The event's type.
    pub event_type: String,
    /// Who did it.
    pub actor: Actor,
    /// The tier of the unit they acted for (`None`: not a unit of the chart, e.g. the system).
    pub tier: Option<Tier>,
    /// What happened, in words.
    pub summary: String,
    /// The stage after it.
    pub stage_after: String,
    /// Whether the case was closed after it.
    pub closed_after: bool,
    /// The lead unit after it.
    pub lead_after: UnitId,
    /// The event's chain hash.
    pub hash: ChainHash,
    /// The request it belongs to: every step of one request has the same (the service takes
    /// the caller's `X-Request-Id` or `traceparent`).
    pub correlation_id: CorrelationId,
    /// What caused it, when that was an event: the deadline an escalation step came from,
    /// the merge the other case's `DuplicateMerged` came from.
    pub caused_by: Option<CausationId>,
    /// The version of the earlier step of this case that caused it, when the cause is one.
    pub caused_by_version: Option<Version>,
}

/// How a deadline ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineOutcome {
    /// Still running.
    Running,
    /// The stage was left in time.
    Met {
        /// When.
        at: Timestamp,
    },
    /// The stage was left late.
    Missed {
        /// When.
        at: Timestamp,
    },
    /// Replaced without being met or missed (the case was migrated or reopened).
    Superseded,
}

/// A deadline of the case and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadlineReport {
    /// Its number.
    pub seq: u32,
    /// The stage.
    pub stage: String,
    /// When it was due (as last recomputed).
    pub due_at: Timestamp,
    /// Whether it was computed without a year's calendar data and not recomputed since.
    pub provisional: bool,
    /// How it ended.
    pub outcome: DeadlineOutcome,
    /// The ladder steps taken: step, the unit it went to, when.
    pub steps: Vec<(LadderStep, UnitId, Timestamp)>,
}

/// A case's audit.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseAudit {
    /// The case.
    pub case: CaseId,
    /// The workflow it ran on (the version pinned at its last step).
    pub workflow: DefinitionRef,
    /// Its title.
    pub title: String,
    /// Every step, in order.
    pub steps: Vec<AuditStep>,
    /// Every deadline.
    pub deadlines: Vec<DeadlineReport>,
    /// The case's hash chain, checked again now: the whole stream, also for an audit up to
    /// a moment, so that it proves the record as the log holds it today.
    pub chain: VerifyReport,
    /// The time zone its times are written in (the calendar's), by its `Display` and in the
    /// steps' summaries.
    pub zone: Zone,
}

/// Years as text: `2027`, `2027, 2028`.
fn years(years: &[i32]) -> String {
    years
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A one-line description of a case event, its times written in `zone` (the calendar's: RFC
/// 3339 with the offset, as every answer writes them).
pub fn summarize(event: &CaseEvent, zone: &Zone) -> String {
    match event {
        CaseEvent::Opened(e) => format!("opened as {} at {}: {}", e.workflow, e.unit, e.title),
        CaseEvent::ActionTaken(e) => {
            let fields: Vec<String> = e
                .fields
                .iter()
                .map(|(k, v)| format!("{k}={}", v.display(zone)))
                .collect();
            let fields = if fields.is_empty() {
                String::new()
            } else {
                format!(" ({})", fields.join(", "))
            };
            if e.from == e.to {
                format!("{} in {}{fields}", e.action, e.from)
            } else {
                format!("{}: {} → {}{fields}", e.action, e.from, e.to)
            }
        }
        CaseEvent::LeadAssigned(e) => format!("lead {} → {} (by {})", e.previous, e.unit, e.by),
        CaseEvent::CoHandlerAdded(e) => format!("co-handling unit {} added", e.unit),
        CaseEvent::ReturnedToSender(e) => format!("sent back by {} to {}", e.from, e.to),
        CaseEvent::SatisfactionRated(e) => format!("satisfaction {}/5", e.rating),
        CaseEvent::MergedInto(e) => format!("merged into case {}", e.target),
        CaseEvent::DuplicateMerged(e) => format!("duplicate case {} merged in", e.duplicate),
        CaseEvent::Reopened(e) => format!("reopened (time {})", e.count),
        CaseEvent::Migrated(e) => format!("migrated {} → {}", e.from, e.to),
        CaseEvent::DeadlineSet(e) => {
            let provisional = e
                .basis
                .as_ref()
                .map(|b| &b.calendar)
                .filter(|c| c.is_provisional())
                .map(|c| {
                    format!(
                        " (provisional: no calendar data for {})",
                        years(&c.missing_years)
                    )
                })
                .unwrap_or_default();
            format!(
                "deadline {} set: leave {} by {}{provisional}",
                e.seq,
                e.stage,
                zone.format(e.due_at)
            )
        }
        CaseEvent::DeadlineRecomputed(e) => format!(
            "deadline {} recomputed with calendar revision {}: due {} (was {}){}",
            e.seq,
            e.calendar.revision,
            zone.format(e.due_at),
            zone.format(e.was_due_at),
            if e.calendar.is_provisional() {
                format!(
                    ", still provisional for {}",
                    years(&e.calendar.missing_years)
                )
            } else {
                String::new()
            }
        ),
        CaseEvent::DeadlineMet(e) => format!("deadline {} met", e.seq),
        CaseEvent::DeadlineMissed(e) => {
            format!("deadline {} MISSED (due {})", e.seq, zone.format(e.due_at))
        }
        CaseEvent::DeadlineStepReached(e) => {
            format!(
                "deadline {}: {} → {} (due {})",
                e.seq,
                e.step.as_str(),
                e.unit,
                zone.format(e.due)
            )
        }
        CaseEvent::ContactViewed(e) => format!("requester's contact data viewed: {}", e.purpose),
        CaseEvent::PlaceRecorded(e) => {
            let mut parts = Vec::new();
            if let (Some(lat), Some(long)) = (e.place.lat, e.place.long) {
                parts.push(format!("{lat}, {long}"));
            }
            parts.extend(e.place.address.iter().cloned());
            parts.extend(
                e.place
                    .address_id
                    .iter()
                    .map(|id| format!("address id {id}")),
            );
            parts.extend(e.place.media_url.iter().map(|url| format!("media {url}")));
            format!("place: {}", parts.join("; "))
        }
        #[allow(unreachable_patterns)]
        _ => "event".to_owned(),
    }
}

impl Engine {
    /// A case's events, decoded, with their log metadata, as `acting` sees it.
    ///
    /// # Errors
    /// [`SubmitError::Rejected`] with `NotFound` for an unknown case or one `acting` may not
    /// see.
    pub fn history(&self, acting: &Acting, id: CaseId) -> Result<Vec<HistoryEntry>, SubmitError> {
        self.case(acting, id)?;
        Ok(case_events(&**self.log(), &self.definitions(), id)?
            .into_iter()
            .map(|(recorded, event)| HistoryEntry {
                summary: summarize(&event, self.calendar().zone()),
                recorded,
                event,
            })
            .collect())
    }

    /// A case's audit, as `acting` sees it: each step with actor, role, unit, tier, time and
    /// the state after it; every deadline and how it ended; and the case's hash chain checked
    /// again.
    ///
    /// # Errors
    /// [`SubmitError::Rejected`] with `NotFound` for an unknown case or one `acting` may not
    /// see.
    pub fn audit(&self, acting: &Acting, id: CaseId) -> Result<CaseAudit, SubmitError> {
        self.case(acting, id)?;
        audit_with(
            &**self.log(),
            &self.definitions(),
            self.calendar().zone(),
            id,
            None,
        )
    }

    /// [`Engine::audit`] up to a moment: the steps recorded at or before `at`, the deadlines
    /// as they stood then. Whether `acting` may see the case is judged on the case now.
    ///
    /// # Errors
    /// As [`Engine::audit`]; `NotFound` also for a moment before the case was opened.
    pub fn audit_as_of(
        &self,
        acting: &Acting,
        id: CaseId,
        at: Timestamp,
    ) -> Result<CaseAudit, SubmitError> {
        self.case(acting, id)?;
        audit_with(
            &**self.log(),
            &self.definitions(),
            self.calendar().zone(),
            id,
            Some(at),
        )
    }
}

/// A case's events, decoded.
fn case_events(
    log: &dyn EventStore,
    definitions: &DefinitionRegistry,
    id: CaseId,
) -> Result<Vec<(RecordedEvent, CaseEvent)>, EngineError> {
    let mut events = Vec::new();
    let mut loaded = Loaded::<Case>::default();
    load::fold_into(
        log,
        definitions,
        &id.stream(),
        &mut loaded,
        |recorded, event| {
            events.push((recorded.clone(), event.clone()));
            true
        },
    )?;
    Ok(events)
}

/// A case's audit read straight from a log, without an [`Engine`]: the same as
/// [`Engine::audit`], with the org chart as the log holds it, its times written in `zone`
/// (give it the calendar's). For tools on a stopped store: opening an engine takes the
/// deadline steps that fell due meanwhile (it writes), this only reads.
///
/// # Errors
/// [`SubmitError::Rejected`] with `NotFound` for an unknown case; [`SubmitError::Engine`] when
/// the log cannot be read or an event does not decode.
pub fn audit_log(
    log: &dyn EventStore,
    definitions: &DefinitionRegistry,
    zone: &Zone,
    id: CaseId,
) -> Result<CaseAudit, SubmitError> {
    audit_with(log, definitions, zone, id, None)
}

/// [`audit_log`] up to a moment: the steps recorded at or before `at`, the deadlines as they
/// stood then (what [`Engine::audit_as_of`] answers, for tools on a stopped store).
///
/// # Errors
/// As [`audit_log`]; `NotFound` also for a moment before the case was opened.
pub fn audit_log_as_of(
    log: &dyn EventStore,
    definitions: &DefinitionRegistry,
    zone: &Zone,
    id: CaseId,
    at: Timestamp,
) -> Result<CaseAudit, SubmitError> {
    audit_with(log, definitions, zone, id, Some(at))
}

/// The audit of the case's events recorded up to `until` (all of them for `None`). Each
/// step's tier is read from the org chart as it stood when the step was written: the chart is
/// folded along the log up to the step's position, so a unit created (or given an id once
/// free) after the step does not lend the step a tier it did not have then.
fn audit_with(
    log: &dyn EventStore,
    definitions: &DefinitionRegistry,
    zone: &Zone,
    id: CaseId,
    until: Option<Timestamp>,
) -> Result<CaseAudit, SubmitError> {
    let mut events = case_events(log, definitions, id)?;
    if events.is_empty() {
        return Err(Rejection::NotFound {
            what: "case",
            id: id.to_string(),
        }
        .into());
    }
    if let Some(until) = until {
        // A prefix, as `Engine::case_at_time` reads one: up to the first event after it.
        let kept = events
            .iter()
            .take_while(|(recorded, _)| recorded.recorded_at <= until)
            .count();
        events.truncate(kept);
        if events.is_empty() {
            return Err(Rejection::NotFound {
                what: "case",
                id: format!("{id} as of {}", zone.format(until)),
            }
            .into());
        }
    }
    let mut org = FoldAlong::<Org>::new(log, definitions, Org::stream(&())?);
    let mut state: Option<CaseState> = None;
    let mut steps = Vec::with_capacity(events.len());
    // Which version of this case each event id is, to name a cause that is an earlier step.
    let mut versions: std::collections::HashMap<EventId, Version> =
        std::collections::HashMap::new();
    let mut deadlines: Vec<DeadlineReport> = Vec::new();
    for (recorded, event) in &events {
        Case::apply(
            &mut state,
            event,
            &Fold {
                version: recorded.version,
                definitions,
            },
        );
        let Some(after) = &state else { continue };
        match event {
            CaseEvent::DeadlineSet(e) => {
                for report in deadlines
                    .iter_mut()
                    .filter(|d| d.outcome == DeadlineOutcome::Running)
                {
                    report.outcome = DeadlineOutcome::Superseded;
                }
                deadlines.push(DeadlineReport {
                    seq: e.seq,
                    stage: e.stage.clone(),
                    due_at: e.due_at,
                    provisional: e
                        .basis
                        .as_ref()
                        .is_some_and(|b| b.calendar.is_provisional()),
                    outcome: DeadlineOutcome::Running,
                    steps: Vec::new(),
                });
            }
            CaseEvent::DeadlineRecomputed(e) => {
                if let Some(report) = deadlines.iter_mut().find(|d| d.seq == e.seq) {
                    report.due_at = e.due_at;
                    report.provisional = e.calendar.is_provisional();
                }
            }
            CaseEvent::DeadlineMet(e) => {
                if let Some(report) = deadlines.iter_mut().find(|d| d.seq == e.seq) {
                    report.outcome = DeadlineOutcome::Met { at: e.at };
                }
            }
            CaseEvent::DeadlineMissed(e) => {
                if let Some(report) = deadlines.iter_mut().find(|d| d.seq == e.seq) {
                    report.outcome = DeadlineOutcome::Missed { at: e.at };
                }
            }
            CaseEvent::DeadlineStepReached(e) => {
                if let Some(report) = deadlines.iter_mut().find(|d| d.seq == e.seq) {
                    report.steps.push((e.step, e.unit.clone(), e.at));
                }
            }
            _ => {}
        }
        versions.insert(recorded.event_id, recorded.version);
        let caused_by_version = recorded
            .causation_id
            .and_then(|cause| versions.get(&EventId::from_uuid(*cause.as_uuid())).copied());
        steps.push(AuditStep {
            position: recorded.position,
            version: recorded.version,
            recorded_at: recorded.recorded_at,
            event_type: recorded.event_type.to_string(),
            actor: recorded.actor.clone(),
            tier: org
                .before(recorded.position)?
                .unit(&recorded.actor.unit)
                .map(|u| u.tier),
            summary: summarize(event, zone),
            stage_after: after.stage.clone(),
            closed_after: after.closed,
            lead_after: after.lead.clone(),
            hash: recorded.hash,
            correlation_id: recorded.correlation_id,
            caused_by: recorded.causation_id,
            caused_by_version,
        });
    }
    let chain = log
        .verify_stream(&id.stream())
        .map_err(super::EngineError::from)?;
    let last: CaseState = state.ok_or_else(|| Rejection::NotFound {
        what: "case",
        id: id.to_string(),
    })?;
    Ok(CaseAudit {
        case: id,
        workflow: last.workflow,
        title: last.title,
        steps,
        deadlines,
        chain,
        zone: zone.clone(),
    })
}

/// The timeline as text for a terminal, a line per step. Stored texts (the title, what a step
/// says: fields, a purpose) are escaped by `domain::text::escape`: an old log may hold
/// control characters the rule for texts refuses now, which would otherwise reach the
/// terminal raw (an escape sequence, a line break forging a step).
impl fmt::Display for CaseAudit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::domain::text::escape;
        writeln!(
            f,
            "case {} ({}): {}",
            self.case,
            self.workflow,
            escape(&self.title)
        )?;
        for step in &self.steps {
            let tier = step.tier.map_or_else(|| "-".to_owned(), |t| t.to_string());
            // Why it happened, when an event caused it: the step of this case, or the event's
            // id elsewhere (a merge's other half).
            let why = match (step.caused_by_version, step.caused_by) {
                (Some(version), _) => format!("  (caused by #{version})"),
                (None, Some(cause)) => format!("  (caused by event {cause})"),
                (None, None) => String::new(),
            };
            writeln!(
                f,
                "  #{:<3} {}  {} as {} for {} ({})  {}  → stage {}{}{}  [request {}]",
                step.version,
                self.zone.format(step.recorded_at),
                step.actor.id,
                step.actor.role,
                step.actor.unit,
                tier,
                escape(&step.summary),
                step.stage_after,
                if step.closed_after { " [closed]" } else { "" },
                why,
                step.correlation_id,
            )?;
        }
        writeln!(f, "  deadlines:")?;
        for deadline in &self.deadlines {
            let outcome = match deadline.outcome {
                DeadlineOutcome::Running => "running".to_owned(),
                DeadlineOutcome::Met { at } => format!("met at {}", self.zone.format(at)),
                DeadlineOutcome::Missed { at } => {
                    format!("MISSED, left at {}", self.zone.format(at))
                }
                DeadlineOutcome::Superseded => "superseded".to_owned(),
            };
            write!(
                f,
                "    {} {}: due {}{} — {}",
                deadline.seq,
                deadline.stage,
                self.zone.format(deadline.due_at),
                if deadline.provisional {
                    " (provisional)"
                } else {
                    ""
                },
                outcome
            )?;
            for (step, unit, at) in &deadline.steps {
                write!(
                    f,
                    "; {} → {unit} at {}",
                    step.as_str(),
                    self.zone.format(*at)
                )?;
            }
            writeln!(f)?;
        }
        match &self.chain.first_break {
            None => write!(f, "  chain: intact ({} events)", self.chain.events_checked),
            Some(broken) => write!(f, "  chain: BROKEN — {broken}"),
        }
    }
}
