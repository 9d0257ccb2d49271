//! Open311 service requests (`open311_requests`): per case, what a GeoReport v2
//! `GET requests` answers, with the indexes its filters need (decision 0007).
//!
//! # What a row says
//!
//! A [`RequestRow`] holds the case id (`service_request_id`), the workflow id as
//! `service_code` (and the pinned version, to tell closed from open), the stage, whether the
//! case is closed (its stage is terminal in its pinned definition, as on the case board), the
//! `status_notes`, the lead unit as `agency_responsible`, the description (the title when the
//! description is empty), the place recorded with the opening (`lat`, `long`, `address`,
//! `address_id`, `media_url`, each optional), and three times:
//!
//! - `requested_at`: the `recorded_at` of `CaseOpened` (as the case board's times: when the
//!   log committed it, never a time from a payload);
//! - `updated_at`: the `recorded_at` of the last event that changed any other field of the
//!   row (an action that moves the stage, a new lead, a deadline set or ended, a note, a
//!   migration); events that change nothing shown here (a co-handler joining, a rating, an
//!   urge that leaves the stage as it was, a contact view) leave it;
//! - `expected_at`: when the running deadline falls due (`expected_datetime`), `None` when no
//!   deadline runs.
//!
//! # `status_notes`: the rule
//!
//! The status notes are the text of the latest action that answers the requester, from a
//! fixed list of (action, field) pairs, [`FEEDBACK`], matched in every workflow:
//!
//! | action | field | in the built-in workflows |
//! |---|---|---|
//! | `reply` | `result` | service-request 答复: 答复内容, the reply to the requester |
//! | `return_visit` | `comment` | service-request 回访: 回访记录, the note of the return visit |
//!
//! Only a text value that is not blank counts: a return visit without a comment keeps the
//! reply's text. A reopen (`CaseReopened`) clears the notes: the old answer no longer
//! describes the request, which is being handled again. Nothing else ever goes there: not
//! the intake fields, not the requester's own comments (`rate`, `request_reopen`), not the
//! internal notes of a dispatch, an urge or a send-back, and never contact data (which the log
//! does not hold: it is in the vault). The other built-in services (consumer-dispute,
//! one-stop-errand) have no reply or return-visit action, so their notes stay `None`.
//!
//! # Keys
//!
//! | table | key | row |
//! |---|---|---|
//! | [`REQUESTS`] `requests` | `requested_at` (`time_key`, 8 bytes big-endian) · case id (16 bytes) | [`RequestRow`] |
//! | [`IDS`] `ids` | case id (16 bytes) | `requested_at` (`time_key`) |
//! | [`SERVICES`] `services` | `service_code` · `0x00` · `requested_at` (8 bytes) · case id (16 bytes) | `()` |
//!
//! As on the case board, the requests table is itself the time index: a date window is a
//! range of keys, and newest first is a backward scan. Each event of a case reads the tiny
//! `ids` row (once per batch) to find the row, and rewrites that one row; `requested_at`
//! never changes, so neither does the key. The service index gets one entry per case, at the
//! opening (moved only if a migration ever changed the workflow id), so a `service_code`
//! filter is a backward range scan per code, merged by time.
//!
//! # Reading
//!
//! [`get`] finds one request; [`list`] pages through a [`Query`] newest first with a cursor;
//! [`list_numbered`] serves Open311's `page`/`page_size` extension (page numbers from 1).

use std::collections::{HashSet, VecDeque};

use civicflow_core::domain::case::CaseEvent;
use civicflow_core::domain::fields::{FieldValue, Fields};
use civicflow_core::domain::workflow::{DefinitionRef, Definitions, WorkflowId};
use civicflow_core::{CaseId, Timestamp, UnitId};
use serde::{Deserialize, Serialize};

use super::page::{Cursor, Page, Paged, LOOK_AT_MAX, PAGE_MAX};
use super::{follow_deadline, time_key};
use crate::{Decoded, Event, Projection, ProjectionError, Table, Tx, View};

/// The projection's name.
pub const NAME: &str = "open311_requests";

/// The requests: `requested_at` (u64 BE micros) · case id → [`RequestRow`].
pub const REQUESTS: Table<RequestRow> = Table::new("requests");

/// Where a request sits: case id → `requested_at` (micros, as a key component).
pub const IDS: Table<u64> = Table::new("ids");

/// Requests by service: `service_code` · 0 · `requested_at` · case id → ().
pub const SERVICES: Table<()> = Table::new("services");

/// The (action, field) pairs whose text is an answer to the requester: the source of
/// `status_notes` (see the module documentation).
pub const FEEDBACK: &[(&str, &str)] = &[("reply", "result"), ("return_visit", "comment")];

/// The most rows one [`list_numbered`] call looks at, skipped pages included.
pub const NUMBERED_LOOK_AT_MAX: usize = 10 * LOOK_AT_MAX;

/// One request, as Open311 shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRow {
    /// The case (`service_request_id`).
    pub id: CaseId,
    /// The workflow id (`service_code`).
    pub service_code: WorkflowId,
    /// The version of the workflow the case is pinned to.
    pub workflow_version: u32,
    /// The case's stage.
    pub stage: String,
    /// Closed: the stage is terminal in the pinned definition.
    pub closed: bool,
    /// The latest answer to the requester ([`FEEDBACK`]), since the last reopen.
    pub status_notes: Option<String>,
    /// The lead unit (`agency_responsible`).
    pub agency_responsible: UnitId,
    /// The description, or the title when the description is empty.
    pub description: String,
    /// `recorded_at` of `CaseOpened` (`requested_datetime`).
    pub requested_at: Timestamp,
    /// `recorded_at` of the last event that changed the row (`updated_datetime`).
    pub updated_at: Timestamp,
    /// When the running deadline falls due (`expected_datetime`); `None`: none runs.
    pub expected_at: Option<Timestamp>,
    /// The number of the running deadline within the case (0: none).
    pub deadline_seq: u32,
    /// Latitude (WGS 84), when the opening gave a point.
    pub lat: Option<f64>,
    /// Longitude (WGS 84).
    pub long: Option<f64>,
    /// The address as given.
    pub address: Option<String>,
    /// The client's id of the address.
    pub address_id: Option<String>,
    /// A photo or other media, by URL.
    pub media_url: Option<String>,
}

impl RequestRow {
    /// Open or closed.
    pub fn status(&self) -> RequestStatus {
        if self.closed {
            RequestStatus::Closed
        } else {
            RequestStatus::Open
        }
    }

    /// The workflow and version the case is pinned to.
    pub fn workflow(&self) -> DefinitionRef {
        DefinitionRef {
            id: self.service_code.clone(),
            version: self.workflow_version,
        }
    }
}

/// The Open311 request status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Not in a terminal stage.
    Open,
    /// In a terminal stage.
    Closed,
}

impl RequestStatus {
    /// `open` or `closed`, as Open311 spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

/// The projection. It needs the workflow definitions to know which stages are terminal.
#[derive(Debug, Clone)]
pub struct Open311Requests {
    definitions: Definitions,
}

impl Open311Requests {
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

fn request_key(requested: u64, case: &CaseId) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..8].copy_from_slice(&requested.to_be_bytes());
    key[8..].copy_from_slice(case.as_bytes());
    key
}

fn service_prefix(code: &str) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(code.len() + 25);
    prefix.extend_from_slice(code.as_bytes());
    prefix.push(0);
    prefix
}

fn service_key(code: &WorkflowId, requested: u64, case: &CaseId) -> Vec<u8> {
    let mut key = service_prefix(code.as_str());
    key.extend_from_slice(&request_key(requested, case));
    key
}

/// The answer to the requester an action carries, if any ([`FEEDBACK`]).
fn feedback<'f>(action: &str, fields: &'f Fields) -> Option<&'f str> {
    FEEDBACK
        .iter()
        .filter(|(a, _)| *a == action)
        .find_map(|(_, field)| match fields.get(*field) {
            Some(FieldValue::Text(text)) if !text.trim().is_empty() => Some(text.as_str()),
            _ => None,
        })
}

/// Whether a case event changes nothing in a request (decided on the type name alone, before
/// decoding).
fn ignored(event_type: &str) -> bool {
    matches!(
        event_type,
        "ContactViewed"
            | "DeadlineStepReached"
            | "DuplicateMerged"
            | "CoHandlerAdded"
            | "SatisfactionRated"
            | "MergedInto"
    )
}

impl Projection for Open311Requests {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        1
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
            let requested = time_key(at);
            tx.put(&IDS, id.as_bytes(), requested)?;
            tx.put(&SERVICES, &service_key(&e.workflow.id, requested, id), ())?;
            let description = if e.description.trim().is_empty() {
                e.title.clone()
            } else {
                e.description.clone()
            };
            let row = RequestRow {
                id: *id,
                service_code: e.workflow.id.clone(),
                workflow_version: e.workflow.version,
                closed: self.is_terminal(&e.workflow, &e.stage),
                stage: e.stage.clone(),
                status_notes: None,
                agency_responsible: e.unit.clone(),
                description,
                requested_at: at,
                updated_at: at,
                expected_at: None,
                deadline_seq: 0,
                lat: None,
                long: None,
                address: None,
                address_id: None,
                media_url: None,
            };
            return tx.put(&REQUESTS, &request_key(requested, id), row);
        }
        // An event of a case whose opening was never seen has nothing to change.
        let Some(requested) = tx.get(&IDS, id.as_bytes())?.copied() else {
            return Ok(());
        };
        let mut entry = tx.entry(&REQUESTS, &request_key(requested, id))?;
        let Some(row) = entry.get_mut() else {
            return Ok(());
        };
        // A migration to another workflow id moves the service index entry (after the row).
        let mut moved: Option<(WorkflowId, WorkflowId)> = None;
        let changed = match case_event {
            CaseEvent::ActionTaken(e) => {
                let mut changed = false;
                if row.stage != e.to {
                    row.stage.clone_from(&e.to);
                    changed = true;
                }
                let closed = self.is_terminal(&row.workflow(), &e.to);
                if closed != row.closed {
                    row.closed = closed;
                    changed = true;
                }
                if let Some(text) = feedback(&e.action, &e.fields) {
                    if row.status_notes.as_deref() != Some(text) {
                        row.status_notes = Some(text.to_owned());
                        changed = true;
                    }
                }
                changed
            }
            CaseEvent::LeadAssigned(e) => set(&mut row.agency_responsible, &e.unit),
            CaseEvent::ReturnedToSender(e) => set(&mut row.agency_responsible, &e.to),
            CaseEvent::Reopened(e) => {
                let notes = row.status_notes.take().is_some();
                set(&mut row.agency_responsible, &e.lead) | notes
            }
            CaseEvent::Migrated(e) => {
                if row.service_code != e.to.id {
                    moved = Some((row.service_code.clone(), e.to.id.clone()));
                }
                row.service_code.clone_from(&e.to.id);
                row.workflow_version = e.to.version;
                row.closed = self.is_terminal(&e.to, &row.stage);
                true
            }
            CaseEvent::PlaceRecorded(e) => {
                let place = &e.place;
                row.lat = place.lat;
                row.long = place.long;
                row.address.clone_from(&place.address);
                row.address_id.clone_from(&place.address_id);
                row.media_url.clone_from(&place.media_url);
                true
            }
            other => follow_deadline(other, &mut row.expected_at, &mut row.deadline_seq),
        };
        if changed {
            row.updated_at = at;
        }
        if let Some((from, to)) = moved {
            tx.delete(&SERVICES, &service_key(&from, requested, id));
            tx.put(&SERVICES, &service_key(&to, requested, id), ())?;
        }
        Ok(())
    }
}

/// Sets `slot` to `value`; whether it changed.
fn set(slot: &mut UnitId, value: &UnitId) -> bool {
    if slot == value {
        false
    } else {
        slot.clone_from(value);
        true
    }
}

// ---------------------------------------------------------------------------------------------
// Queries

/// Which requests [`list`] returns: Open311's `GET requests` filters. Every filter that is set
/// must match, except `ids`, which overrides them all.
///
/// The caller applies Open311's defaults (the last 90 days when no date is given, a span of
/// at most 90 days): this query takes the window as given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// `service_request_id`: when given, these requests in this order (unknown ids and
    /// repeats skipped), and every other filter is ignored.
    pub ids: Option<Vec<CaseId>>,
    /// `service_code`: requests of one of these services (empty: every service). A code that
    /// is not a workflow id matches nothing.
    pub service_codes: Vec<String>,
    /// `start_date`: requests made at or after this time (inclusive).
    pub start: Option<Timestamp>,
    /// `end_date`: requests made at or before this time (inclusive, as Open311's "latest
    /// datetime to include").
    pub end: Option<Timestamp>,
    /// `status`: only open or only closed requests.
    pub status: Option<RequestStatus>,
}

impl Query {
    /// No filter: every request.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only these requests, in this order.
    pub fn ids(ids: impl IntoIterator<Item = CaseId>) -> Self {
        Self {
            ids: Some(ids.into_iter().collect()),
            ..Self::default()
        }
    }

    /// Only requests of these services.
    pub fn services<S: Into<String>>(mut self, codes: impl IntoIterator<Item = S>) -> Self {
        self.service_codes = codes.into_iter().map(Into::into).collect();
        self
    }

    /// Only requests made in `[start, end]` (both inclusive; `None`: unbounded on that side).
    pub fn between(mut self, start: Option<Timestamp>, end: Option<Timestamp>) -> Self {
        self.start = start;
        self.end = end;
        self
    }

    /// Only open or only closed requests.
    pub fn status(mut self, status: RequestStatus) -> Self {
        self.status = Some(status);
        self
    }

    fn matches(&self, row: &RequestRow) -> bool {
        self.status.is_none_or(|s| s == row.status())
    }
}

/// A request's row.
///
/// # Errors
/// [`ProjectionError`] when a row does not decode or the store fails.
pub fn get(view: &View<'_>, case: CaseId) -> Result<Option<RequestRow>, ProjectionError> {
    let Some(requested) = view.get(&IDS, case.as_bytes())? else {
        return Ok(None);
    };
    view.get(&REQUESTS, &request_key(requested, &case))
}

/// A page of the requests that match `query`, newest first (by `requested_at`, then case id,
/// both descending); with `ids`, in the order given.
///
/// Stable: the cursor is the key of the last row looked at (with `ids`, how many ids were
/// looked at), so asking for the next page never skips or repeats a request, whatever was
/// filed meanwhile (a new request is newer than every one listed, so it lands before the
/// first page, not in a later one). A call looks at most [`LOOK_AT_MAX`] rows (ids); a page
/// may then hold fewer than `page.limit` items and still have a `next` cursor. `next` is
/// `None` only at the end.
///
/// # Errors
/// [`ProjectionError::Query`] on `cursor` for a cursor of another list (a time cursor with
/// `ids`, or the reverse); [`ProjectionError`] when a row does not decode or the store fails.
pub fn list(
    view: &View<'_>,
    query: &Query,
    page: &Page,
) -> Result<Paged<RequestRow>, ProjectionError> {
    let mut take = Take::new(0, page.clamped_limit(), LOOK_AT_MAX);
    run(view, query, page.after.as_ref(), &mut take)
}

/// Page `number` (from 1) of `size` requests (1 ..= [`PAGE_MAX`]) that match `query`, in
/// [`list`]'s order: Open311's `page`/`page_size` extension.
///
/// The pages before it are counted, not returned, so deep pages cost more: a call looks at
/// most [`NUMBERED_LOOK_AT_MAX`] rows in all. A page past the end is empty. The `next` cursor
/// goes on after this page with [`list`] (cursors are faster than page numbers); when the
/// limit on rows looked at cut this page short, it is `Some` even though the page is short.
///
/// # Errors
/// [`ProjectionError::Query`] on `page` for page 0, or for a page so deep that the rows
/// before it exceed [`NUMBERED_LOOK_AT_MAX`] (use the cursor of [`list`] instead);
/// [`ProjectionError`] when a row does not decode or the store fails.
pub fn list_numbered(
    view: &View<'_>,
    query: &Query,
    number: usize,
    size: usize,
) -> Result<Paged<RequestRow>, ProjectionError> {
    if number == 0 {
        return Err(ProjectionError::query("page", "pages are numbered from 1"));
    }
    let size = size.clamp(1, PAGE_MAX);
    let skip = (number - 1).saturating_mul(size);
    let mut take = Take::new(skip, size, NUMBERED_LOOK_AT_MAX);
    let paged = run(view, query, None, &mut take)?;
    if take.skip > 0 {
        if paged.next.is_some() {
            return Err(ProjectionError::query(
                "page",
                format!(
                    "page {number} lies beyond the {NUMBERED_LOOK_AT_MAX} rows one call looks \
                     at; page with the cursor instead"
                ),
            ));
        }
        return Ok(Paged {
            items: Vec::new(),
            next: None,
        });
    }
    Ok(paged)
}

/// What a listing collects: `skip` matches counted and dropped, then up to `limit` kept,
/// looking at no more than `look_max` rows.
struct Take {
    skip: usize,
    limit: usize,
    look_max: usize,
    looked: usize,
    items: Vec<RequestRow>,
}

impl Take {
    fn new(skip: usize, limit: usize, look_max: usize) -> Self {
        Self {
            skip,
            limit,
            look_max,
            looked: 0,
            items: Vec::new(),
        }
    }

    /// How many more matching rows would fill the page (those still to skip included).
    fn wanted(&self) -> usize {
        self.skip
            .saturating_add(self.limit)
            .saturating_sub(self.items.len())
    }

    /// Counts a row looked at and keeps it if it matches; whether the page is full.
    fn offer(&mut self, row: Option<RequestRow>) -> bool {
        self.looked += 1;
        if let Some(row) = row {
            if self.skip > 0 {
                self.skip -= 1;
            } else {
                self.items.push(row);
            }
        }
        self.items.len() >= self.limit
    }

    /// Whether the call has looked at all it may.
    fn spent(&self) -> bool {
        self.looked >= self.look_max
    }

    fn done(&mut self, next: Option<Cursor>) -> Paged<RequestRow> {
        Paged {
            items: std::mem::take(&mut self.items),
            next,
        }
    }
}

fn run(
    view: &View<'_>,
    query: &Query,
    after: Option<&Cursor>,
    take: &mut Take,
) -> Result<Paged<RequestRow>, ProjectionError> {
    if let Some(ids) = &query.ids {
        return by_ids(view, ids, after, take);
    }
    // Newest first: scan back from below the cursor or from just past `end`, whichever is
    // lower, down to `start`.
    let mut before: Option<[u8; 24]> = query
        .end
        .map(time_key)
        .and_then(|end| end.checked_add(1))
        .map(|past_end| {
            let mut key = [0u8; 24];
            key[..8].copy_from_slice(&past_end.to_be_bytes());
            key
        });
    if let Some(cursor) = after {
        let key = <[u8; 24]>::try_from(cursor.key_in(&[], 24)?).unwrap_or([0u8; 24]);
        if before.is_none_or(|b| key < b) {
            before = Some(key);
        }
    }
    let from = query.start.map(time_key).unwrap_or(0);
    if query.service_codes.is_empty() {
        all_services(view, query, before, from, take)
    } else {
        by_services(view, query, before, from, take)
    }
}

/// The time (as a key component) of a 24-byte request key.
fn key_time(key: &[u8]) -> u64 {
    key.get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_be_bytes)
}

/// Chunk sizes of a backward scan: exactly what is wanted without a filter, more with one.
fn chunk(wanted: usize, selective: bool) -> usize {
    if selective {
        wanted.clamp(64, 1024)
    } else {
        wanted.clamp(1, 1024)
    }
}

fn all_services(
    view: &View<'_>,
    query: &Query,
    mut before: Option<[u8; 24]>,
    from: u64,
    take: &mut Take,
) -> Result<Paged<RequestRow>, ProjectionError> {
    let selective = query.status.is_some() || take.skip > 0;
    loop {
        let size = chunk(take.wanted(), selective);
        let rows = view.scan_back(&REQUESTS, &[], before.as_ref().map(|b| &b[..]), size)?;
        let exhausted = rows.len() < size;
        for (key, row) in rows {
            if key_time(&key) < from {
                return Ok(take.done(None));
            }
            let key = <[u8; 24]>::try_from(key.as_slice()).map_err(|_| {
                ProjectionError::event("a request key of the wrong size in the requests table")
            })?;
            before = Some(key);
            let kept = query.matches(&row).then_some(row);
            if take.offer(kept) || take.spent() {
                return Ok(take.done(Some(Cursor::from_bytes(key.to_vec()))));
            }
        }
        if exhausted {
            return Ok(take.done(None));
        }
    }
}

/// One service's index entries, newest first, fetched a chunk at a time.
struct Source {
    prefix: Vec<u8>,
    /// Request keys (time · case id) fetched and not yet merged.
    buffer: VecDeque<[u8; 24]>,
    /// Scan below this full index key next (`None`: from the top of the window).
    before: Option<Vec<u8>>,
    exhausted: bool,
}

impl Source {
    fn refill(&mut self, view: &View<'_>, size: usize) -> Result<(), ProjectionError> {
        if !self.buffer.is_empty() || self.exhausted {
            return Ok(());
        }
        let keys = view.scan_back(&SERVICES, &self.prefix, self.before.as_deref(), size)?;
        self.exhausted = keys.len() < size;
        for (key, ()) in keys {
            let request = key
                .get(self.prefix.len()..)
                .and_then(|k| <[u8; 24]>::try_from(k).ok())
                .ok_or_else(|| ProjectionError::event("a service index key of the wrong size"))?;
            self.buffer.push_back(request);
            self.before = Some(key);
        }
        Ok(())
    }
}

fn by_services(
    view: &View<'_>,
    query: &Query,
    before: Option<[u8; 24]>,
    from: u64,
    take: &mut Take,
) -> Result<Paged<RequestRow>, ProjectionError> {
    // Valid, distinct codes (a code that is no workflow id names no service).
    let mut codes: Vec<&str> = query
        .service_codes
        .iter()
        .map(String::as_str)
        .filter(|c| WorkflowId::new(*c).is_ok())
        .collect();
    codes.sort_unstable();
    codes.dedup();
    let mut sources: Vec<Source> = codes
        .iter()
        .map(|code| {
            let prefix = service_prefix(code);
            let start = before.map(|b| {
                let mut key = prefix.clone();
                key.extend_from_slice(&b);
                key
            });
            Source {
                prefix,
                buffer: VecDeque::new(),
                before: start,
                exhausted: false,
            }
        })
        .collect();
    let selective = query.status.is_some() || sources.len() > 1 || take.skip > 0;
    loop {
        let size = chunk(take.wanted(), selective).min(256);
        for source in &mut sources {
            source.refill(view, size)?;
        }
        // The newest key at the front of any source.
        let Some(newest) = sources
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.buffer.front().map(|k| (i, *k)))
            .max_by_key(|(_, k)| *k)
            .map(|(i, _)| i)
        else {
            return Ok(take.done(None));
        };
        let key = sources[newest]
            .buffer
            .pop_front()
            .expect("the front was just seen");
        if key_time(&key) < from {
            return Ok(take.done(None));
        }
        let row = view.get(&REQUESTS, &key)?.filter(|row| query.matches(row));
        if take.offer(row) || take.spent() {
            return Ok(take.done(Some(Cursor::from_bytes(key.to_vec()))));
        }
    }
}

fn by_ids(
    view: &View<'_>,
    ids: &[CaseId],
    after: Option<&Cursor>,
    take: &mut Take,
) -> Result<Paged<RequestRow>, ProjectionError> {
    let start = match after {
        Some(cursor) => {
            let raw = <[u8; 4]>::try_from(cursor.key_in(&[], 4)?).unwrap_or([0u8; 4]);
            usize::try_from(u32::from_be_bytes(raw)).unwrap_or(usize::MAX)
        }
        None => 0,
    };
    let mut seen: HashSet<CaseId> = ids.iter().take(start).copied().collect();
    for (index, id) in ids.iter().enumerate().skip(start) {
        let row = if seen.insert(*id) {
            get(view, *id)?
        } else {
            None
        };
        let full = take.offer(row);
        let looked = index + 1;
        if (full || take.spent()) && looked < ids.len() {
            let next = u32::try_from(looked).map_err(|_| {
                ProjectionError::query("service_request_id", "more ids than a list can page")
            })?;
            return Ok(take.done(Some(Cursor::from_bytes(next.to_be_bytes().to_vec()))));
        }
        if full {
            break;
        }
    }
    Ok(take.done(None))
}
