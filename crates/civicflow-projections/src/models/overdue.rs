//! The overdue and escalation report (`overdue`): per unit, the deadlines it missed, the
//! escalations (督办) and breaches of its deadlines, and its running deadlines, so that a
//! report at any time `now` also lists the deadlines past due that the scheduler has not
//! escalated yet.
//!
//! # What counts, and against whom
//!
//! Deadlines of cases and of directive parts both count. A deadline is the **responsible
//! unit**'s: the case's lead when the deadline was set (the engine ends a deadline whenever the
//! case changes hands, so the lead does not change while one runs), or the part's unit.
//!
//! - **missed**: `DeadlineMissed`, the stage was left (the part reported) after the due time;
//! - **escalated**: `DeadlineStepReached` with step `escalate`: the scheduler handed the urging
//!   to the supervising unit (`to` in the item) at the due time;
//! - **breached**: `DeadlineStepReached` with step `breach`, after the grace (`to`: the
//!   supervising unit the breach is reported to);
//! - **running overdue**: a deadline still running at `now` whose due time is before `now`
//!   and that has not been escalated (the scheduler is behind, or the rule does not
//!   escalate).
//!
//! Each item is listed under the responsible unit (an escalation also names the unit it went
//! to), so a report over a unit's subtree shows its own deadlines and those of every unit
//! below it. Reminders (`remind`) are not listed. Times are the `recorded_at` of the events'
//! records (as on the case board); due times are the deadlines' own.
//!
//! # Keys
//!
//! | table | key | row |
//! |---|---|---|
//! | [`EVENTS`] `event` | unit · `0x00` · at (u64 BE micros) · subject · seq (u32 BE) · kind (1 missed, 2 escalated, 3 breached) | [`OverdueItem`] |
//! | [`RUNNING`] `running` | unit · `0x00` · due (u64 BE micros) · subject | [`OverdueItem`] of kind running (`at`: `None`), while the deadline runs and is not escalated |
//! | [`SUBJECTS`] `subject` | subject (see [`Subject::key_bytes`]) | [`Tracked`]: responsible unit and running deadline |
//!
//! A report scans, for each unit, its `event` prefix up to `now` and its `running` prefix up
//! to `now` (due order): it never reads a deadline that is not overdue.

use std::collections::{BTreeMap, BTreeSet};

use civicflow_core::domain::case::CaseEvent;
use civicflow_core::domain::deadline::{
    DeadlineMissed, DeadlineRecomputed, DeadlineSet, DeadlineStepReached, LadderStep,
};
use civicflow_core::domain::directive::PartEvent;
use civicflow_core::{Timestamp, UnitId};
use serde::{Deserialize, Serialize};

use super::time_key;
pub use super::unit_inbox::Subject;
use crate::{Decoded, Event, Projection, ProjectionError, Table, Tx, View};

/// The projection's name.
pub const NAME: &str = "overdue";

/// Missed, escalated and breached deadlines: unit · 0 · at · subject · seq · kind → item.
pub const EVENTS: Table<OverdueItem> = Table::new("event");
/// Running deadlines not escalated: unit · 0 · due · subject → item (kind running, `at`
/// `None`). An escalation removes the entry; closing the deadline too.
pub const RUNNING: Table<OverdueItem> = Table::new("running");
/// Cases and parts: subject → [`Tracked`].
pub const SUBJECTS: Table<Tracked> = Table::new("subject");

/// What an item records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverdueKind {
    /// The stage was left after the deadline.
    Missed,
    /// The deadline was escalated to the supervising unit.
    Escalated,
    /// The deadline was breached.
    Breached,
    /// Running and past due at the report's `now`, not escalated.
    RunningOverdue,
}

impl OverdueKind {
    fn key_byte(self) -> u8 {
        match self {
            OverdueKind::Missed => 1,
            OverdueKind::Escalated => 2,
            OverdueKind::Breached => 3,
            OverdueKind::RunningOverdue => 4,
        }
    }
}

/// One missed, escalated, breached or overdue deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverdueItem {
    /// What happened.
    pub kind: OverdueKind,
    /// The case or directive part.
    pub subject: Subject,
    /// The deadline's number within the case or part.
    pub seq: u32,
    /// The unit responsible for the deadline.
    pub unit: UnitId,
    /// The stage the deadline belongs to (`report` for a directive part).
    pub stage: String,
    /// When the deadline fell (falls) due.
    pub due_at: Timestamp,
    /// When it happened (`recorded_at`); `None` for a running deadline.
    pub at: Option<Timestamp>,
    /// The supervising unit an escalation or a breach went to.
    pub to: Option<UnitId>,
    /// Whether the due time was provisional (counted without a year's calendar data).
    pub provisional: bool,
}

/// A running deadline, as a case or part row keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Running {
    /// Its number.
    pub seq: u32,
    /// Its stage.
    pub stage: String,
    /// The responsible unit when it was set (its index entry is under this unit).
    pub unit: UnitId,
    /// Its due time.
    pub due_at: Timestamp,
    /// Whether it was escalated.
    pub escalated: bool,
    /// Whether its due time is provisional.
    pub provisional: bool,
}

/// What the report keeps of a case or a directive part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracked {
    /// The responsible unit now (a case's lead, a part's unit).
    pub unit: UnitId,
    /// The running deadline.
    pub running: Option<Running>,
}

/// Per unit: how many of each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverdueCounts {
    /// Deadlines missed.
    pub missed: u32,
    /// Deadlines escalated.
    pub escalated: u32,
    /// Deadlines breached.
    pub breached: u32,
    /// Running deadlines past due and not escalated at `now`.
    pub running_overdue: u32,
}

/// The report over a set of units at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverdueReport {
    /// The moment.
    pub now: Timestamp,
    /// Every item, ordered by when it happened (a running deadline: its due time), then unit.
    pub items: Vec<OverdueItem>,
    /// Counts for every unit asked about (zeros included).
    pub counts: BTreeMap<UnitId, OverdueCounts>,
}

/// The overdue report projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct OverdueReports;

impl OverdueReports {
    /// The projection.
    pub fn new() -> Self {
        Self
    }
}

fn unit_prefix(unit: &UnitId) -> Vec<u8> {
    let mut key = Vec::with_capacity(unit.as_str().len() + 1 + 8 + 21 + 5);
    key.extend_from_slice(unit.as_str().as_bytes());
    key.push(0);
    key
}

fn running_key(running: &Running, subject: &Subject) -> Vec<u8> {
    let mut key = unit_prefix(&running.unit);
    key.extend_from_slice(&time_key(running.due_at).to_be_bytes());
    key.extend_from_slice(&subject.key_bytes());
    key
}

fn event_key(item: &OverdueItem, at: Timestamp) -> Vec<u8> {
    let mut key = unit_prefix(&item.unit);
    key.extend_from_slice(&time_key(at).to_be_bytes());
    key.extend_from_slice(&item.subject.key_bytes());
    key.extend_from_slice(&item.seq.to_be_bytes());
    key.push(item.kind.key_byte());
    key
}

fn running_item(running: &Running, subject: Subject) -> OverdueItem {
    OverdueItem {
        kind: OverdueKind::RunningOverdue,
        subject,
        seq: running.seq,
        unit: running.unit.clone(),
        stage: running.stage.clone(),
        due_at: running.due_at,
        at: None,
        to: None,
        provisional: running.provisional,
    }
}

/// The deadline events both kinds of stream share.
enum DeadlineEvent<'e> {
    Set(&'e DeadlineSet),
    Recomputed(&'e DeadlineRecomputed),
    Closed {
        seq: u32,
        missed: Option<&'e DeadlineMissed>,
    },
    Step(&'e DeadlineStepReached),
}

impl<'e> DeadlineEvent<'e> {
    fn of_case(event: &'e CaseEvent) -> Option<Self> {
        Some(match event {
            CaseEvent::DeadlineSet(e) => Self::Set(e),
            CaseEvent::DeadlineRecomputed(e) => Self::Recomputed(e),
            CaseEvent::DeadlineMet(e) => Self::Closed {
                seq: e.seq,
                missed: None,
            },
            CaseEvent::DeadlineMissed(e) => Self::Closed {
                seq: e.seq,
                missed: Some(e),
            },
            CaseEvent::DeadlineStepReached(e) => Self::Step(e),
            _ => return None,
        })
    }

    fn of_part(event: &'e PartEvent) -> Option<Self> {
        Some(match event {
            PartEvent::DeadlineSet(e) => Self::Set(e),
            PartEvent::DeadlineRecomputed(e) => Self::Recomputed(e),
            PartEvent::DeadlineMet(e) => Self::Closed {
                seq: e.seq,
                missed: None,
            },
            PartEvent::DeadlineMissed(e) => Self::Closed {
                seq: e.seq,
                missed: Some(e),
            },
            PartEvent::DeadlineStepReached(e) => Self::Step(e),
            _ => return None,
        })
    }
}

/// Whether a case or part event can change the report (on the type name, before decoding).
fn relevant(event_type: &str) -> bool {
    matches!(
        event_type,
        "CaseOpened"
            | "LeadAssigned"
            | "ReturnedToSender"
            | "CaseReopened"
            | "PartAssigned"
            | "DeadlineSet"
            | "DeadlineRecomputed"
            | "DeadlineMet"
            | "DeadlineMissed"
            | "DeadlineStepReached"
    )
}

impl OverdueReports {
    fn apply_deadline(
        subject: Subject,
        event: DeadlineEvent<'_>,
        at: Timestamp,
        tx: &mut Tx<'_>,
    ) -> Result<(), ProjectionError> {
        let subject_key = subject.key_bytes();
        // What to write once the subject row is released.
        let mut remove_running = None;
        let mut put_running = None;
        let mut record = None;
        {
            let mut entry = tx.entry(&SUBJECTS, &subject_key)?;
            let Some(tracked) = entry.get_mut() else {
                return Ok(());
            };
            match event {
                DeadlineEvent::Set(e) => {
                    if let Some(old) = tracked.running.take() {
                        remove_running = Some(running_key(&old, &subject));
                    }
                    let running = Running {
                        seq: e.seq,
                        stage: e.stage.clone(),
                        unit: tracked.unit.clone(),
                        due_at: e.due_at,
                        escalated: false,
                        provisional: e
                            .basis
                            .as_ref()
                            .is_some_and(|b| b.calendar.is_provisional()),
                    };
                    put_running = Some((
                        running_key(&running, &subject),
                        running_item(&running, subject),
                    ));
                    tracked.running = Some(running);
                }
                DeadlineEvent::Recomputed(e) => {
                    let Some(running) = tracked.running.as_mut().filter(|r| r.seq == e.seq) else {
                        return Ok(());
                    };
                    // Its place in the unit's index is by due time: it moves with it.
                    if !running.escalated {
                        remove_running = Some(running_key(running, &subject));
                    }
                    running.due_at = e.due_at;
                    running.provisional = e.calendar.is_provisional();
                    if !running.escalated {
                        put_running = Some((
                            running_key(running, &subject),
                            running_item(running, subject),
                        ));
                    }
                }
                DeadlineEvent::Closed { seq, missed } => {
                    let running = match tracked.running.take() {
                        Some(r) if r.seq == seq => Some(r),
                        other => {
                            tracked.running = other;
                            None
                        }
                    };
                    if let Some(running) = &running {
                        remove_running = Some(running_key(running, &subject));
                    }
                    if let Some(missed) = missed {
                        let (unit, stage, provisional) = match running {
                            Some(r) => (r.unit, r.stage, r.provisional),
                            None => (tracked.unit.clone(), String::new(), false),
                        };
                        record = Some(OverdueItem {
                            kind: OverdueKind::Missed,
                            subject,
                            seq: missed.seq,
                            unit,
                            stage,
                            due_at: missed.due_at,
                            at: Some(at),
                            to: None,
                            provisional,
                        });
                    }
                }
                DeadlineEvent::Step(e) => {
                    let kind = match e.step {
                        LadderStep::Escalate => OverdueKind::Escalated,
                        LadderStep::Breach => OverdueKind::Breached,
                        LadderStep::Remind => return Ok(()),
                    };
                    let (unit, stage, due_at, provisional) = match tracked.running.as_mut() {
                        Some(running) if running.seq == e.seq => {
                            if kind == OverdueKind::Escalated && !running.escalated {
                                // Escalated: no longer "overdue, not escalated yet".
                                running.escalated = true;
                                remove_running = Some(running_key(running, &subject));
                            }
                            (
                                running.unit.clone(),
                                running.stage.clone(),
                                running.due_at,
                                running.provisional,
                            )
                        }
                        _ => (tracked.unit.clone(), String::new(), e.due, false),
                    };
                    record = Some(OverdueItem {
                        kind,
                        subject,
                        seq: e.seq,
                        unit,
                        stage,
                        due_at,
                        at: Some(at),
                        to: Some(e.unit.clone()),
                        provisional,
                    });
                }
            }
        }
        if let Some(key) = remove_running {
            if put_running.as_ref().is_none_or(|(k, _)| *k != key) {
                tx.delete(&RUNNING, &key);
            }
        }
        if let Some((key, item)) = put_running {
            tx.put(&RUNNING, &key, item)?;
        }
        if let Some(item) = record {
            tx.put(&EVENTS, &event_key(&item, at), item)?;
        }
        Ok(())
    }

    fn set_unit(subject: Subject, unit: UnitId, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        if let Some(tracked) = tx.entry(&SUBJECTS, &subject.key_bytes())?.get_mut() {
            tracked.unit = unit;
        }
        Ok(())
    }
}

impl Projection for OverdueReports {
    fn name(&self) -> &'static str {
        NAME
    }

    /// 2: items say whether a due time is provisional, and running deadlines follow
    /// recomputations.
    fn version(&self) -> u32 {
        2
    }

    fn apply(&self, event: &Event, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        let stream = event.stream.as_str();
        let ours = stream.starts_with("case-")
            || (stream.starts_with("directive-") && stream.contains('.'));
        if !ours || !relevant(event.event_type.as_str()) {
            return Ok(());
        }
        let at = event.recorded_at;
        match event.decoded()? {
            Decoded::Case(id, e) => {
                let subject = Subject::Case(*id);
                match e {
                    CaseEvent::Opened(e) => tx.put(
                        &SUBJECTS,
                        &subject.key_bytes(),
                        Tracked {
                            unit: e.unit.clone(),
                            running: None,
                        },
                    ),
                    CaseEvent::LeadAssigned(e) => Self::set_unit(subject, e.unit.clone(), tx),
                    CaseEvent::ReturnedToSender(e) => Self::set_unit(subject, e.to.clone(), tx),
                    CaseEvent::Reopened(e) => Self::set_unit(subject, e.lead.clone(), tx),
                    other => match DeadlineEvent::of_case(other) {
                        Some(deadline) => Self::apply_deadline(subject, deadline, at, tx),
                        None => Ok(()),
                    },
                }
            }
            Decoded::Part(directive, index, e) => {
                let subject = Subject::Part {
                    directive: *directive,
                    index: *index,
                };
                match e {
                    PartEvent::Assigned(e) => tx.put(
                        &SUBJECTS,
                        &subject.key_bytes(),
                        Tracked {
                            unit: e.part.unit.clone(),
                            running: None,
                        },
                    ),
                    other => match DeadlineEvent::of_part(other) {
                        Some(deadline) => Self::apply_deadline(subject, deadline, at, tx),
                        None => Ok(()),
                    },
                }
            }
            _ => Ok(()),
        }
    }
}

const CHUNK: usize = 512;

/// Reads every row of `table` under `prefix` whose 8 bytes after the prefix (a time) are at
/// most `until`.
fn scan_until(
    view: &View<'_>,
    table: &crate::Table<OverdueItem>,
    prefix: &[u8],
    until: u64,
    mut each: impl FnMut(OverdueItem),
) -> Result<(), ProjectionError> {
    let mut after: Option<Vec<u8>> = None;
    loop {
        let rows = view.scan(table, prefix, after.as_deref(), CHUNK)?;
        let exhausted = rows.len() < CHUNK;
        for (key, item) in rows {
            let time = key
                .get(prefix.len()..prefix.len() + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(u64::MAX, u64::from_be_bytes);
            if time > until {
                return Ok(());
            }
            each(item);
            after = Some(key);
        }
        if exhausted {
            return Ok(());
        }
    }
}

/// The report over `units` (a unit's subtree: `OrgChart::subtree`) at `now`: every missed,
/// escalated and breached deadline of those units recorded up to `now`, and every running
/// deadline of theirs due before `now` that was not escalated; with counts per unit.
///
/// # Errors
/// [`ProjectionError`] when a row does not decode or the store fails.
pub fn report(
    view: &View<'_>,
    units: &[UnitId],
    now: Timestamp,
) -> Result<OverdueReport, ProjectionError> {
    let units: BTreeSet<&UnitId> = units.iter().collect();
    let mut items = Vec::new();
    let mut counts = BTreeMap::new();
    let now_key = time_key(now);
    for unit in units {
        let prefix = unit_prefix(unit);
        let mut count = OverdueCounts::default();
        scan_until(view, &EVENTS, &prefix, now_key, |item| {
            match item.kind {
                OverdueKind::Missed => count.missed += 1,
                OverdueKind::Escalated => count.escalated += 1,
                OverdueKind::Breached => count.breached += 1,
                OverdueKind::RunningOverdue => {}
            }
            items.push(item);
        })?;
        // Due strictly before `now`: a stage left exactly at its due time meets it.
        scan_until(view, &RUNNING, &prefix, now_key.saturating_sub(1), |item| {
            count.running_overdue += 1;
            items.push(item);
        })?;
        counts.insert(unit.clone(), count);
    }
    items.sort_by(|a, b| {
        let when = |i: &OverdueItem| i.at.unwrap_or(i.due_at);
        when(a)
            .cmp(&when(b))
            .then_with(|| a.unit.cmp(&b.unit))
            .then_with(|| a.kind.cmp(&b.kind))
            .then_with(|| a.subject.cmp(&b.subject))
    });
    Ok(OverdueReport { now, items, counts })
}
