//! Directive progress (`directive_progress`): every directive with its tree of unit parts,
//! each part's acknowledgement, report, deadline, miss and escalation, rolled up the tree.
//!
//! # Figures
//!
//! - A part is **acknowledged** when its unit acknowledged it (`PartAcknowledged`; a report
//!   without an acknowledgement brings one), **reported** when the unit reported it done
//!   (`PartReported`), **complete** when it is reported and every part below it is complete.
//!   The roll-up is [`civicflow_core::domain::directive::progress`] itself, run on the
//!   directive and part states this model rebuilds from its rows, so the read model and the
//!   engine cannot disagree.
//! - A directive's totals: `units` (parts), `acknowledged` and `reported` (parts that have
//!   been), `missed` (parts whose deadline was missed: reported after it), and `complete`
//!   (every part reported, which is the same as every part complete).
//!
//! # Tables and keys
//!
//! | table | key | row |
//! |---|---|---|
//! | `d` | directive id (16 bytes) | [`DirectiveRow`]: title, kind, issuer, time, counters |
//! | `p` | directive id (16) · part index (u32 BE) | [`PartRow`]: one unit's part |
//! | `t` | issued time (8, order-preserving) · directive id (16) | `()`: the newest-first index |
//!
//! An acknowledgement or a report touches two small rows (its part and the directive's
//! counters); deadline events touch the part only. Events of other streams are skipped on the
//! stream name, before anything is decoded.

use std::collections::BTreeMap;

use civicflow_core::domain::directive::{
    self, DirectiveEvent, DirectiveKind, DirectiveState, LadderStep, PartEvent, PartInfo,
    PartState, Progress,
};
use civicflow_core::{DirectiveId, Timestamp, UnitId, Version};
use serde::{Deserialize, Serialize};

use super::page::{Page, Paged};
use super::time_key;
use crate::{Decoded, Event, Projection, ProjectionError, Table, Tx, View};

/// The projection's name.
pub const NAME: &str = "directive_progress";

/// How many parts [`tree`] reads per scan.
const PARTS_CHUNK: usize = 500;

/// A directive's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectiveRow {
    /// Title.
    pub title: String,
    /// Kind.
    pub kind: DirectiveKind,
    /// The issuing unit (`None` until `DirectiveIssued` is applied: part events that came
    /// first only counted).
    pub issued_by: Option<UnitId>,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// Parts in all.
    pub units: u32,
    /// Parts acknowledged.
    pub acknowledged: u32,
    /// Parts reported done.
    pub reported: u32,
    /// Parts whose deadline was missed.
    pub missed: u32,
}

impl DirectiveRow {
    fn placeholder() -> Self {
        Self {
            title: String::new(),
            kind: DirectiveKind::Other,
            issued_by: None,
            issued_at: Timestamp::EPOCH,
            units: 0,
            acknowledged: 0,
            reported: 0,
            missed: 0,
        }
    }
}

/// One unit's part of a directive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRow {
    /// The unit.
    pub unit: UnitId,
    /// The part above it (`None` right below the issuer).
    pub parent: Option<u32>,
    /// When the unit acknowledged.
    pub acknowledged_at: Option<Timestamp>,
    /// When the unit reported done.
    pub reported_at: Option<Timestamp>,
    /// What it reported.
    pub report: Option<String>,
    /// When its (latest) deadline fell due.
    pub due_at: Option<Timestamp>,
    /// Whether the deadline was missed.
    pub missed: bool,
    /// The unit supervising after an escalation (督办).
    pub escalated_to: Option<UnitId>,
}

const DIRECTIVES: Table<DirectiveRow> = Table::new("d");
const PARTS: Table<PartRow> = Table::new("p");
const BY_TIME: Table<()> = Table::new("t");

// ---------------------------------------------------------------------------------------------
// The projection

/// The directive progress projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct DirectiveProgress;

fn part_key(id: &DirectiveId, index: u32) -> [u8; 20] {
    let mut key = [0u8; 20];
    key[..16].copy_from_slice(id.as_bytes());
    key[16..].copy_from_slice(&index.to_be_bytes());
    key
}

fn time_index_key(at: Timestamp, id: &DirectiveId) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..8].copy_from_slice(&time_key(at).to_be_bytes());
    key[8..].copy_from_slice(id.as_bytes());
    key
}

impl Projection for DirectiveProgress {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn apply(&self, event: &Event, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        if !event.stream.as_str().starts_with("directive-") {
            return Ok(());
        }
        match event.decoded()? {
            Decoded::Directive(id, DirectiveEvent::Issued(e)) => {
                let key = id.as_bytes();
                let entry = tx.entry(&DIRECTIVES, key)?;
                // A directive is issued once (its stream is created with it); should it come
                // again, its old place in the time index goes.
                let previous = entry
                    .get()
                    .filter(|row| row.issued_by.is_some())
                    .map(|row| row.issued_at);
                let row = entry.or_insert_with(DirectiveRow::placeholder);
                row.title.clone_from(&e.title);
                row.kind = e.kind;
                row.issued_by = Some(e.issued_by.clone());
                row.issued_at = e.at;
                row.units = u32::try_from(e.parts.len()).unwrap_or(u32::MAX);
                if let Some(at) = previous {
                    tx.delete(&BY_TIME, &time_index_key(at, id));
                }
                tx.put(&BY_TIME, &time_index_key(e.at, id), ())?;
            }
            Decoded::Part(id, index, e) => {
                apply_part(tx, id, *index, e, event.version == Version::FIRST)?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Which counter of the directive a part event moves.
enum Count {
    Acknowledged,
    Reported,
    Missed,
}

fn apply_part(
    tx: &mut Tx<'_>,
    id: &DirectiveId,
    index: u32,
    event: &PartEvent,
    first: bool,
) -> Result<(), ProjectionError> {
    let key = part_key(id, index);
    if let PartEvent::Assigned(e) = event {
        // The assignment opens the part's stream (the engine creates it so): written without
        // reading what is not there.
        if first {
            tx.put(
                &PARTS,
                &key,
                PartRow {
                    unit: e.part.unit.clone(),
                    parent: e.part.parent,
                    acknowledged_at: None,
                    reported_at: None,
                    report: None,
                    due_at: None,
                    missed: false,
                    escalated_to: None,
                },
            )?;
        }
        return Ok(());
    }
    let mut counts: Vec<Count> = Vec::new();
    {
        let mut entry = tx.entry(&PARTS, &key)?;
        // Any other event of a part that was never assigned changes nothing (as the core's).
        let Some(part) = entry.get_mut() else {
            return Ok(());
        };
        match event {
            PartEvent::Acknowledged(e) => {
                if part.acknowledged_at.is_none() {
                    counts.push(Count::Acknowledged);
                }
                part.acknowledged_at = Some(e.at);
            }
            PartEvent::Reported(e) => {
                if part.reported_at.is_none() {
                    counts.push(Count::Reported);
                }
                part.reported_at = Some(e.at);
                part.report = Some(e.note.clone());
            }
            PartEvent::DeadlineSet(e) => part.due_at = Some(e.due_at),
            PartEvent::DeadlineRecomputed(e) => part.due_at = Some(e.due_at),
            PartEvent::DeadlineMissed(_) => {
                if !part.missed {
                    counts.push(Count::Missed);
                }
                part.missed = true;
                part.escalated_to = None;
            }
            // As in the core: an escalation supervises until the deadline resolves.
            PartEvent::DeadlineMet(_) => part.escalated_to = None,
            PartEvent::DeadlineStepReached(e) if e.step == LadderStep::Escalate => {
                part.escalated_to = Some(e.unit.clone());
            }
            // Assigned is handled above; a reminder or a breach changes nothing shown here.
            _ => {}
        }
    }
    if !counts.is_empty() {
        let row = tx
            .entry(&DIRECTIVES, id.as_bytes())?
            .or_insert_with(DirectiveRow::placeholder);
        for count in counts {
            match count {
                Count::Acknowledged => row.acknowledged += 1,
                Count::Reported => row.reported += 1,
                Count::Missed => row.missed += 1,
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Queries

/// A directive with its totals, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectiveSummary {
    /// The directive.
    pub id: DirectiveId,
    /// Title.
    pub title: String,
    /// Kind.
    pub kind: DirectiveKind,
    /// The issuing unit.
    pub issued_by: UnitId,
    /// When.
    pub issued_at: Timestamp,
    /// Parts (units reached).
    pub units: u32,
    /// Parts acknowledged.
    pub acknowledged: u32,
    /// Parts reported done.
    pub reported: u32,
    /// Parts whose deadline was missed.
    pub missed: u32,
    /// Whether every part is complete.
    pub complete: bool,
}

fn summary(id: DirectiveId, row: DirectiveRow) -> Option<DirectiveSummary> {
    Some(DirectiveSummary {
        id,
        complete: row.reported >= row.units,
        issued_by: row.issued_by?,
        title: row.title,
        kind: row.kind,
        issued_at: row.issued_at,
        units: row.units,
        acknowledged: row.acknowledged,
        reported: row.reported,
        missed: row.missed,
    })
}

/// One part of a directive's tree, with what its unit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartDetail {
    /// The part's number.
    pub index: u32,
    /// Its row.
    pub row: PartRow,
}

/// A directive's tree, rolled up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectiveTree {
    /// The directive and its totals.
    pub summary: DirectiveSummary,
    /// Every part in index order (parents before children).
    pub parts: Vec<PartDetail>,
    /// The roll-up, exactly as [`civicflow_core::domain::directive::progress`] computes it
    /// (`progress.parts[i]` is `parts[i]` rolled up over its subtree).
    pub progress: Progress,
}

/// A directive's tree with each part rolled up (`None`: no such directive).
///
/// # Errors
/// [`ProjectionError`] when a row does not decode or storage fails.
pub fn directive(
    view: &View<'_>,
    id: DirectiveId,
) -> Result<Option<DirectiveTree>, ProjectionError> {
    let Some(row) = view.get(&DIRECTIVES, id.as_bytes())? else {
        return Ok(None);
    };
    let Some(summary) = summary(id, row) else {
        return Ok(None);
    };
    let mut parts = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let rows = view.scan(&PARTS, id.as_bytes(), after.as_deref(), PARTS_CHUNK)?;
        let full = rows.len() == PARTS_CHUNK;
        after = rows.last().map(|(key, _)| key.clone());
        for (key, row) in rows {
            let index = key
                .get(16..20)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes)
                .ok_or_else(|| ProjectionError::event("a part key without an index"))?;
            parts.push(PartDetail { index, row });
        }
        if !full {
            break;
        }
    }
    let state = DirectiveState {
        id,
        title: summary.title.clone(),
        body: String::new(),
        kind: summary.kind,
        issued_by: summary.issued_by.clone(),
        issued_at: summary.issued_at,
        parts: parts
            .iter()
            .map(|p| PartInfo {
                index: p.index,
                unit: p.row.unit.clone(),
                parent: p.row.parent,
            })
            .collect(),
    };
    let states: BTreeMap<u32, PartState> = parts
        .iter()
        .map(|p| {
            (
                p.index,
                PartState {
                    directive: id,
                    index: p.index,
                    unit: p.row.unit.clone(),
                    parent: p.row.parent,
                    acknowledged_at: p.row.acknowledged_at,
                    reported_at: p.row.reported_at,
                    report: p.row.report.clone(),
                    deadline: None,
                    missed: p.row.missed,
                    escalated_to: p.row.escalated_to.clone(),
                    version: None,
                },
            )
        })
        .collect();
    let progress = directive::progress(&state, &states);
    Ok(Some(DirectiveTree {
        summary,
        parts,
        progress,
    }))
}

/// Directives, newest first (by issue time, then id), a page at a time. The cursor is the
/// position of the last item returned: directives issued after the first page was read do
/// not shift later pages, so nothing is skipped or repeated.
///
/// # Errors
/// [`ProjectionError`] for a malformed cursor, a row that does not decode, or a storage
/// failure.
pub fn list(view: &View<'_>, page: &Page) -> Result<Paged<DirectiveSummary>, ProjectionError> {
    let limit = page.clamped_limit();
    let before = page.after.as_ref().map(|c| c.key_in(&[], 24)).transpose()?;
    let keys = view.scan_back(&BY_TIME, &[], before, limit)?;
    let mut items = Vec::with_capacity(keys.len());
    for (key, ()) in &keys {
        let raw = key
            .get(8..24)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .ok_or_else(|| ProjectionError::event("a directive index key of the wrong size"))?;
        let id = DirectiveId::from_bytes(raw);
        if let Some(row) = view.get(&DIRECTIVES, &raw)? {
            items.extend(summary(id, row));
        }
    }
    Ok(Paged::from_keys(items, &keys, limit))
}
