//! The case board (`case_board`): one row per case, listed in the order cases were opened,
//! with filters and stable pagination.
//!
//! # What a row says
//!
//! A [`CaseRow`] holds the case's workflow (`id@version`, as pinned, or as migrated to), title,
//! stage, whether it is closed (its stage is terminal in its pinned definition), the unit it was
//! filed at, the lead unit (主办) and the co-handling units (协办), the due time of the running
//! deadline, the requester's [`PersonId`] (never their contact data: the caller masks it), the
//! channel, the rating, and three times.
//!
//! **Times.** Every time on the board is the `recorded_at` of the log record that caused it
//! (when the log committed the event), never a time from a payload: not every case event
//! carries one, and `recorded_at` never goes back in the log, so a case opened later always
//! sorts later. `opened_at` is the record of `CaseOpened`; `updated_at` the record of the last
//! event that changed the row; `closed_at` the record of the last action that moved the case
//! into a terminal stage (kept after a reopen, as in the core's `CaseState`).
//!
//! # Keys
//!
//! | table | key | row |
//! |---|---|---|
//! | [`BOARD`] `board` | `opened_at` (`time_key`, 8 bytes big-endian) · case id (16 bytes) | [`CaseRow`] |
//! | [`OPENED`] `opened` | case id (16 bytes) | `opened_at` (`time_key`) |
//! | [`FILED`] `filed` | the filer's actor id · `0` · `opened_at` (8 bytes) · case id (16 bytes) | `()` |
//!
//! The board table is itself the ordered index: listing is a scan in key order, so pages are
//! ordered by opened time, then case id. Each event of a case reads the tiny `opened` row
//! (once per batch) to find the board key, and rewrites one board row: one row written per
//! event, the fewest possible. The opaque [`Cursor`](super::page::Cursor) of a page is the last key looked at, so
//! a page never shifts when cases are added: a new case lands at its own key, after every case
//! recorded before it.

use std::collections::BTreeSet;

use civicflow_core::domain::case::{CaseEvent, Channel};
use civicflow_core::domain::workflow::{DefinitionRef, Definitions, WorkflowId};
use civicflow_core::{ActorId, CaseId, PersonId, Timestamp, UnitId};
use serde::{Deserialize, Serialize};

use super::page::{scan_filtered, Page, Paged, Step};
use super::{follow_deadline, follow_handlers, time_key};
use crate::{Decoded, Event, Projection, ProjectionError, Table, Tx, View};

/// The projection's name.
pub const NAME: &str = "case_board";

/// The board: `opened_at` (u64 BE micros) · case id → [`CaseRow`].
pub const BOARD: Table<CaseRow> = Table::new("board");

/// Where a case sits on the board: case id → `opened_at` (micros).
pub const OPENED: Table<u64> = Table::new("opened");

/// Who filed which case: actor id · `0` · `opened_at` (u64 BE micros) · case id → nothing.
/// What "my requests" lists (a person's own cases, newest first) without reading every case;
/// an actor id never holds a zero byte, so one actor's keys are one prefix.
pub const FILED: Table<()> = Table::new("filed");

/// One case on the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseRow {
    /// The case.
    pub id: CaseId,
    /// The workflow and version it runs on.
    pub workflow: DefinitionRef,
    /// Title.
    pub title: String,
    /// Its stage.
    pub stage: String,
    /// Whether it is closed (its stage is terminal in its definition).
    pub closed: bool,
    /// The unit it was filed at.
    pub unit: UnitId,
    /// The lead unit (主办).
    pub lead: UnitId,
    /// The co-handling units (协办), in id order.
    pub co_handlers: Vec<UnitId>,
    /// When the running deadline falls due (`None`: no deadline runs).
    pub due_at: Option<Timestamp>,
    /// The number of the running deadline within the case (0: none).
    pub deadline_seq: u32,
    /// Who asked, if known: an id only, the caller masks or resolves it.
    pub requester: Option<PersonId>,
    /// How it came in.
    pub channel: Channel,
    /// The requester's satisfaction (1 to 5), if rated since the last reopen.
    pub rating: Option<u8>,
    /// The case it was merged into as a duplicate.
    pub merged_into: Option<CaseId>,
    /// When it was opened (`recorded_at` of `CaseOpened`).
    pub opened_at: Timestamp,
    /// When the row last changed (`recorded_at` of that event).
    pub updated_at: Timestamp,
    /// When it was last closed (`recorded_at`).
    pub closed_at: Option<Timestamp>,
}

/// The case board projection. It needs the workflow definitions to know which stages are
/// terminal.
#[derive(Debug, Clone)]
pub struct CaseBoard {
    definitions: Definitions,
}

impl CaseBoard {
    /// The projection, reading terminal stages from `definitions` (the engine's registry).
    pub fn new(definitions: impl Into<Definitions>) -> Self {
        Self {
            definitions: definitions.into(),
        }
    }

    fn is_terminal(&self, workflow: &DefinitionRef, stage: &str) -> bool {
        self.definitions
            .current()
            .get(workflow)
            .is_some_and(|d| d.is_terminal(stage))
    }
}

fn filed_prefix(actor: &ActorId) -> Vec<u8> {
    let mut key = Vec::with_capacity(actor.as_str().len() + 1 + 24);
    key.extend_from_slice(actor.as_str().as_bytes());
    key.push(0);
    key
}

fn board_key(opened_at: u64, case: &CaseId) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..8].copy_from_slice(&opened_at.to_be_bytes());
    key[8..].copy_from_slice(case.as_bytes());
    key
}

/// Whether a case event changes nothing on the board (decided on the type name alone, before
/// decoding).
fn ignored(event_type: &str) -> bool {
    matches!(
        event_type,
        "ContactViewed" | "DeadlineStepReached" | "DuplicateMerged"
    )
}

impl Projection for CaseBoard {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        // 2: the `filed` index (who filed which case).
        2
    }

    fn apply(&self, event: &Event, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        if !event.stream.as_str().starts_with("case-") || ignored(event.event_type.as_str()) {
            return Ok(());
        }
        let Decoded::Case(id, case_event) = event.decoded()? else {
            return Ok(());
        };
        let at = event.recorded_at;
        if let CaseEvent::Opened(e) = case_event {
            let opened = time_key(at);
            tx.put(&OPENED, id.as_bytes(), opened)?;
            let mut filed = filed_prefix(&e.filed_by);
            filed.extend_from_slice(&board_key(opened, id));
            tx.put(&FILED, &filed, ())?;
            let row = CaseRow {
                id: *id,
                closed: self.is_terminal(&e.workflow, &e.stage),
                workflow: e.workflow.clone(),
                title: e.title.clone(),
                stage: e.stage.clone(),
                lead: e.unit.clone(),
                unit: e.unit.clone(),
                co_handlers: Vec::new(),
                due_at: None,
                deadline_seq: 0,
                requester: e.requester,
                channel: e.channel,
                rating: None,
                merged_into: None,
                opened_at: at,
                updated_at: at,
                closed_at: None,
            };
            return tx.put(&BOARD, &board_key(opened, id), row);
        }
        // An event of a case whose opening was never seen has nothing to change (the core
        // refuses such events; a foreign writer's would be ignored the same way).
        let Some(opened) = tx.get(&OPENED, id.as_bytes())?.copied() else {
            return Ok(());
        };
        let mut entry = tx.entry(&BOARD, &board_key(opened, id))?;
        let Some(row) = entry.get_mut() else {
            return Ok(());
        };
        match case_event {
            CaseEvent::ActionTaken(e) => {
                let terminal = self.is_terminal(&row.workflow, &e.to);
                if terminal && !row.closed {
                    row.closed_at = Some(at);
                }
                row.closed = terminal;
                row.stage = e.to.clone();
            }
            CaseEvent::SatisfactionRated(e) => row.rating = Some(e.rating),
            CaseEvent::MergedInto(e) => row.merged_into = Some(e.target),
            CaseEvent::Migrated(e) => row.workflow = e.to.clone(),
            other => {
                if follow_handlers(other, &mut row.lead, &mut row.co_handlers).is_some() {
                    if let CaseEvent::Reopened(_) = other {
                        row.closed = false;
                        row.rating = None;
                    }
                } else if !follow_deadline(other, &mut row.due_at, &mut row.deadline_seq) {
                    return Ok(());
                }
            }
        }
        row.updated_at = at;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Queries

/// Open or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// Not in a terminal stage.
    Open,
    /// In a terminal stage.
    Closed,
}

/// Which cases [`list`] returns. Every filter that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseFilter {
    /// Cases of this workflow (any version).
    pub workflow: Option<WorkflowId>,
    /// Open or closed cases.
    pub status: Option<CaseStatus>,
    /// Cases whose lead unit, filing unit or a co-handling unit is one of these (pass
    /// `OrgChart::subtree(unit)` for a unit's subtree; this is what a unit may see).
    pub units: Option<BTreeSet<UnitId>>,
    /// Cases opened at or after this time.
    pub opened_from: Option<Timestamp>,
    /// Cases opened before this time.
    pub opened_until: Option<Timestamp>,
}

impl CaseFilter {
    /// No filter: every case.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only cases of `workflow`.
    pub fn workflow(mut self, workflow: WorkflowId) -> Self {
        self.workflow = Some(workflow);
        self
    }

    /// Only open or only closed cases.
    pub fn status(mut self, status: CaseStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only cases touching one of `units` (a subtree).
    pub fn within(mut self, units: impl IntoIterator<Item = UnitId>) -> Self {
        self.units = Some(units.into_iter().collect());
        self
    }

    /// Only cases opened in `[from, until)`.
    pub fn opened_between(mut self, from: Timestamp, until: Timestamp) -> Self {
        self.opened_from = Some(from);
        self.opened_until = Some(until);
        self
    }

    /// Whether the row passes the filters other than the date range (which the scan bounds).
    pub fn matches(&self, row: &CaseRow) -> bool {
        if self
            .workflow
            .as_ref()
            .is_some_and(|w| w != &row.workflow.id)
        {
            return false;
        }
        match self.status {
            Some(CaseStatus::Open) if row.closed => return false,
            Some(CaseStatus::Closed) if !row.closed => return false,
            _ => {}
        }
        if let Some(units) = &self.units {
            let touches = units.contains(&row.lead)
                || units.contains(&row.unit)
                || row.co_handlers.iter().any(|u| units.contains(u));
            if !touches {
                return false;
            }
        }
        true
    }

    fn selective(&self) -> bool {
        self.workflow.is_some() || self.status.is_some() || self.units.is_some()
    }
}

/// A case's row.
///
/// # Errors
/// [`ProjectionError`] when a row does not decode or the store fails.
pub fn get(view: &View<'_>, case: CaseId) -> Result<Option<CaseRow>, ProjectionError> {
    let Some(opened) = view.get(&OPENED, case.as_bytes())? else {
        return Ok(None);
    };
    view.get(&BOARD, &board_key(opened, &case))
}

/// A page of the cases that match `filter`, ordered by opened time then case id.
///
/// Stable: the cursor is the key of the last row looked at, so asking for the next page
/// never skips or repeats a case, whatever was opened or changed meanwhile (a case opened
/// after the first page was read comes after every case recorded before it). A page may hold
/// fewer than `limit` rows and still have a `next` cursor when a selective filter made the
/// call look at `LOOK_AT_MAX` rows; `next` is `None` only at the end.
///
/// # Errors
/// [`ProjectionError`] when a row does not decode or the store fails.
pub fn list(
    view: &View<'_>,
    filter: &CaseFilter,
    page: &Page,
) -> Result<Paged<CaseRow>, ProjectionError> {
    // Start after the cursor, or just before `opened_from`, whichever is later.
    let mut start = page.after.as_ref().map(|c| c.as_bytes().to_vec());
    if let Some(from) = filter.opened_from.map(time_key).filter(|f| *f > 0) {
        let mut before_from = (from - 1).to_be_bytes().to_vec();
        before_from.extend_from_slice(&[0xff; 16]);
        if start.as_ref().is_none_or(|s| *s < before_from) {
            start = Some(before_from);
        }
    }
    let until = filter.opened_until.map(time_key);
    scan_filtered(
        view,
        &BOARD,
        &[],
        start,
        (page.clamped_limit(), filter.selective()),
        |key, row| {
            let opened = key
                .get(..8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_be_bytes);
            if until.is_some_and(|until| opened >= until) {
                Step::Stop
            } else if filter.matches(&row) {
                Step::Keep(row)
            } else {
                Step::Skip
            }
        },
    )
}

/// How many rows one read of [`filed_by`] takes.
const FILED_CHUNK: usize = 1_000;

/// The cases `actor` filed, newest first (by opening time, then case id, backwards), at most
/// `limit`.
///
/// # Errors
/// [`ProjectionError`] when a key does not decode or the store fails.
pub fn filed_by(
    view: &View<'_>,
    actor: &ActorId,
    limit: usize,
) -> Result<Vec<CaseId>, ProjectionError> {
    let prefix = filed_prefix(actor);
    let mut cases = Vec::new();
    let mut before: Option<Vec<u8>> = None;
    while cases.len() < limit {
        let rows = view.scan_back(&FILED, &prefix, before.as_deref(), FILED_CHUNK)?;
        let exhausted = rows.len() < FILED_CHUNK;
        for (key, ()) in &rows {
            let id = key
                .get(key.len().saturating_sub(16)..)
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .map(CaseId::from_bytes)
                .ok_or_else(|| ProjectionError::Query {
                    field: "filed",
                    reason: "a key of the filed index is too short".into(),
                })?;
            cases.push(id);
            if cases.len() == limit {
                break;
            }
        }
        match rows.last() {
            Some((key, ())) if !exhausted => before = Some(key.clone()),
            _ => break,
        }
    }
    Ok(cases)
}
