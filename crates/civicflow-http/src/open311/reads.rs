//! Following requests (`docs/open311.md`, "Following requests"): `GET requests.{fmt}` with the
//! spec's filters and the `page`/`page_size` and `extensions=true` extensions,
//! `GET requests/{id}.{fmt}`, and mySociety's updates feed `GET servicerequestupdates.{fmt}`.
//!
//! Everything is read from the `open311_requests` read model (decision 0007), after waiting
//! briefly for it to reach the log's head (as the native reports do), so a client reads its
//! own POSTs. Only the cases of Open311 services (the workflows civic apps may open,
//! [`services::services`]) are requests here: a case of another workflow is not found.
//!
//! Personal data is never shown: the read model holds none (the requester is in the vault),
//! and the `notes` of `extensions=true` and the updates' descriptions are worded here from
//! the event type, the workflow's action and stage names and the org chart's unit names,
//! never from field values, titles, descriptions, places or the purposes of contact views
//! (see [`note`]).

use std::collections::HashSet;

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use civicflow_core::calendar::{parse_rfc3339, Zone};
use civicflow_core::domain::case::CaseEvent;
use civicflow_core::domain::fields::FieldValue;
use civicflow_core::domain::org::{Acting, OrgChart};
use civicflow_core::domain::workflow::{Definition, DefinitionRef, DefinitionRegistry};
use civicflow_core::engine::HistoryEntry;
use civicflow_core::{CaseId, Timestamp, UnitId};
use civicflow_projections::models::open311_requests::{
    self, Query, RequestRow, RequestStatus, FEEDBACK, NUMBERED_LOOK_AT_MAX,
};
use civicflow_projections::models::page::{Page, PAGE_MAX};
use civicflow_projections::ProjectionError;
use schemars::JsonSchema;
use serde::Serialize;

use super::errors::{echo, Open311Error};
use super::format::{Document, Format};
use super::{check_jurisdiction, decode, query_pairs, services};
use crate::error::ApiError;
use crate::openapi::answer_schema_of;
use crate::routes::reports::{fresh_view, projection_error, CaseStatusName};
use crate::routes::{Content, RouteSpec};
use crate::state::AppState;

/// The widest `start_date`..`end_date` window of `GET requests` and of the updates feed, and
/// the default window of `GET requests`: 90 days (the spec's).
pub const WINDOW_MAX_MICROS: i64 = 90 * DAY_MICROS;

/// The default window of the updates feed: the last 24 hours.
pub const UPDATES_DEFAULT_MICROS: i64 = DAY_MICROS;

/// The page size when `page_size` is not given: the spec's default limit of 1000, which is
/// also the largest `page_size`.
pub const DEFAULT_LIMIT: usize = PAGE_MAX;

/// The most ids one `service_request_id` may list.
pub const IDS_MAX: usize = PAGE_MAX;

/// The most request rows one updates call looks at (newest requested first).
pub const UPDATES_ROWS_MAX: usize = 10_000;

/// The most case histories one updates call (or one `extensions=true` page) reads.
pub const HISTORIES_MAX: usize = PAGE_MAX;

/// The most updates one updates call answers (the earliest ones of the window).
pub const UPDATES_MAX: usize = PAGE_MAX;

const DAY_MICROS: i64 = 86_400 * 1_000_000;

/// The routes: `GET requests.{xml,json}` (the same paths as `POST requests`: the router merges
/// the methods of one path), `GET requests/{id}.{fmt}`, `GET servicerequestupdates.{fmt}`.
pub fn routes() -> Vec<RouteSpec> {
    // 400 a bad query parameter, 404 an unknown jurisdiction or request, 503 a read model
    // that cannot answer.
    let route = |path, summary, response, content, handler| {
        super::route(
            Method::GET,
            path,
            summary,
            response,
            content,
            &[400, 404, 503],
            handler,
        )
    };
    vec![
        route(
            "/open311/v2/requests.xml",
            LIST_SUMMARY_XML,
            None,
            Content::Open311Xml,
            get(list_xml),
        ),
        route(
            "/open311/v2/requests.json",
            LIST_SUMMARY_JSON,
            Some(answer_schema_of::<Vec<ServiceRequestAnswer>>),
            Content::Open311Json,
            get(list_json),
        ),
        route(
            "/open311/v2/requests/{service_request_id}",
            "Open311: one service request, `{service_request_id}` being SERVICE_REQUEST_ID.xml or .json; a list of one request (404 Open311 error for an unknown or malformed id or suffix). Query: extensions=true adds its notes.",
            Some(answer_schema_of::<Vec<ServiceRequestAnswer>>),
            Content::Open311Either,
            get(single),
        ),
        route(
            "/open311/v2/servicerequestupdates.xml",
            UPDATES_SUMMARY,
            None,
            Content::Open311Xml,
            get(updates_xml),
        ),
        route(
            "/open311/v2/servicerequestupdates.json",
            UPDATES_SUMMARY,
            Some(answer_schema_of::<Vec<RequestUpdateAnswer>>),
            Content::Open311Json,
            get(updates_json),
        ),
    ]
}

const LIST_SUMMARY_XML: &str = "Open311: service requests (XML), newest first. Query: service_request_id (comma list; overrides every other filter), service_code (comma list), start_date, end_date (ISO 8601 with a zone; at most 90 days apart; default the last 90 days), status (open, closed or both, comma list), page (from 1), page_size (1-1000, default 1000), extensions=true (adds notes). Keyless.";
const LIST_SUMMARY_JSON: &str = "Open311: service requests (JSON, a top-level array), newest first. Query: service_request_id (comma list; overrides every other filter), service_code (comma list), start_date, end_date (ISO 8601 with a zone; at most 90 days apart; default the last 90 days), status (open, closed or both, comma list), page (from 1), page_size (1-1000, default 1000), extensions=true (adds notes). Keyless.";
const UPDATES_SUMMARY: &str = "mySociety's Open311 updates feed: the status changes and answers of service requests recorded between start_date and end_date (ISO 8601 with a zone; at most 90 days apart; default the last 24 hours), oldest first, at most 1000: update_id, service_request_id, status, updated_datetime, description, media_url. Keyless.";

// ---------------------------------------------------------------------------------------------
// Handlers

/// `GET requests.xml`.
pub async fn list_xml(State(state): State<AppState>, uri: Uri) -> Response {
    list(&state, &uri, Format::Xml)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET requests.json`.
pub async fn list_json(State(state): State<AppState>, uri: Uri) -> Response {
    list(&state, &uri, Format::Json)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET requests/{id}.{fmt}`. The segment is read from the URI itself (as service
/// definitions are), so no segment can turn into anything but an Open311 answer.
pub async fn single(State(state): State<AppState>, uri: Uri) -> Response {
    let segment = decode(uri.path().rsplit('/').next().unwrap_or(""), false);
    let Some((id, format)) = Format::split(&segment) else {
        return Open311Error::not_found(
            Format::Xml,
            format!(
                "no such Open311 resource requests/{}: a request is requests/SERVICE_REQUEST_ID.xml or .json",
                echo(&segment)
            ),
        )
        .into_response();
    };
    one(&state, &uri, id, format)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET servicerequestupdates.xml`.
pub async fn updates_xml(State(state): State<AppState>, uri: Uri) -> Response {
    updates(&state, &uri, Format::Xml)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET servicerequestupdates.json`.
pub async fn updates_json(State(state): State<AppState>, uri: Uri) -> Response {
    updates(&state, &uri, Format::Json)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn list(state: &AppState, uri: &Uri, format: Format) -> Result<Response, Open311Error> {
    check_jurisdiction(state, uri, format)?;
    let params = Params::new(uri, format);
    // Every parameter is checked, even those the ids override: a malformed value is an error.
    let extensions = params.extensions()?;
    let (page, size) = params.paging()?;
    let dates = params.dates()?;
    let status = params.status()?;
    let codes: Vec<String> = services::services(state)
        .iter()
        .map(|d| d.id.as_str().to_owned())
        .collect();
    let rows = if let Some(ids) = params.ids()? {
        // The ids override every other filter (the spec); the paging still applies.
        let view = fresh_view(state, open311_requests::NAME)
            .await
            .map_err(|e| server_error(format, e))?;
        let mut rows = Vec::new();
        for id in ids {
            if let Some(row) = open311_requests::get(&view, id)
                .map_err(|e| query_error(format, e))?
                .filter(|row| is_service(&codes, row))
            {
                rows.push(row);
            }
        }
        rows.sort_by_key(|row| std::cmp::Reverse((row.requested_at, row.id)));
        rows.into_iter()
            .skip((page - 1).saturating_mul(size))
            .take(size)
            .collect()
    } else {
        let now = state.engine().now();
        let (start, end) = params.window(dates, now, WindowRule::Requests, &state.zone())?;
        let wanted = params.service_codes();
        let services: Vec<String> = if wanted.is_empty() {
            codes
        } else {
            // A code that is not an Open311 service names no request.
            codes.into_iter().filter(|c| wanted.contains(c)).collect()
        };
        if services.is_empty() {
            Vec::new()
        } else {
            let mut query = Query::all()
                .services(services)
                .between(Some(start), Some(end));
            query.status = status;
            let view = fresh_view(state, open311_requests::NAME)
                .await
                .map_err(|e| server_error(format, e))?;
            // A page past the most rows one call looks at is empty or too deep either way; a
            // smaller number keeps the read model's arithmetic in range.
            let deepest = NUMBERED_LOOK_AT_MAX / size + 2;
            match open311_requests::list_numbered(&view, &query, page.min(deepest), size) {
                Ok(paged) => paged.items,
                Err(ProjectionError::Query { field: "page", .. }) => {
                    return Err(params.bad(format!(
                        "page {page} lies beyond the {NUMBERED_LOOK_AT_MAX} requests one call \
                         looks at; narrow the filters or the window"
                    )))
                }
                Err(e) => return Err(query_error(format, e)),
            }
        }
    };
    let notes = if extensions {
        Some(histories(state, format, rows.iter().map(|r| r.id).collect()).await?)
    } else {
        None
    };
    Ok(requests_answer(state, &rows, notes.as_deref(), format))
}

async fn one(
    state: &AppState,
    uri: &Uri,
    id: &str,
    format: Format,
) -> Result<Response, Open311Error> {
    check_jurisdiction(state, uri, format)?;
    let extensions = Params::new(uri, format).extensions()?;
    let not_found = || {
        Open311Error::not_found(
            format,
            format!("service_request_id '{}' not found", echo(id)),
        )
    };
    let case = CaseId::parse(id).map_err(|_| not_found())?;
    let codes: Vec<String> = services::services(state)
        .iter()
        .map(|d| d.id.as_str().to_owned())
        .collect();
    let row = {
        let view = fresh_view(state, open311_requests::NAME)
            .await
            .map_err(|e| server_error(format, e))?;
        open311_requests::get(&view, case)
            .map_err(|e| query_error(format, e))?
            .filter(|row| is_service(&codes, row))
            .ok_or_else(not_found)?
    };
    let notes = if extensions {
        Some(histories(state, format, vec![row.id]).await?)
    } else {
        None
    };
    Ok(requests_answer(
        state,
        std::slice::from_ref(&row),
        notes.as_deref(),
        format,
    ))
}

async fn updates(state: &AppState, uri: &Uri, format: Format) -> Result<Response, Open311Error> {
    check_jurisdiction(state, uri, format)?;
    let params = Params::new(uri, format);
    let now = state.engine().now();
    let zone = state.zone();
    let (start, end) = params.window(params.dates()?, now, WindowRule::Updates, &zone)?;
    let codes: Vec<String> = services::services(state)
        .iter()
        .map(|d| d.id.as_str().to_owned())
        .collect();
    // The requests that may have an update in the window: made by its end, changed since its
    // start (every update changes the row, so `updated_at` is at least the update's time).
    let mut candidates: Vec<CaseId> = Vec::new();
    if !codes.is_empty() {
        let view = fresh_view(state, open311_requests::NAME)
            .await
            .map_err(|e| server_error(format, e))?;
        let query = Query::all().services(codes).between(None, Some(end));
        let mut page = Page::first(PAGE_MAX);
        let mut looked = 0;
        loop {
            let paged =
                open311_requests::list(&view, &query, &page).map_err(|e| query_error(format, e))?;
            looked += paged.items.len().max(1);
            candidates.extend(
                paged
                    .items
                    .iter()
                    .filter(|row| row.updated_at >= start)
                    .map(|row| row.id),
            );
            match paged.next {
                Some(next) if looked < UPDATES_ROWS_MAX && candidates.len() < HISTORIES_MAX => {
                    page = Page::after(next, PAGE_MAX);
                }
                _ => break,
            }
        }
        candidates.truncate(HISTORIES_MAX);
    }
    let found = state
        .blocking(move |engine| {
            let definitions = engine.definitions();
            let org = engine.org();
            let mut found: Vec<Update> = Vec::new();
            for case in candidates {
                // A case whose history cannot be read is left out, not a failed feed.
                let Ok(history) = engine.history(&open311_reader(), case) else {
                    continue;
                };
                found.extend(
                    case_updates(case, &history, &definitions, &org, engine.calendar().zone())
                        .into_iter()
                        .filter(|u| u.at >= start && u.at <= end),
                );
            }
            found.sort_by_key(|u| (u.at, u.position));
            found.truncate(UPDATES_MAX);
            found
        })
        .await
        .map_err(|e| server_error(format, e))?;
    let items: Vec<RequestUpdateAnswer> = found.iter().map(|update| update.answer(&zone)).collect();
    Ok(Document::of("service_request_updates", &items).respond(format, StatusCode::OK))
}

/// Whether a row is a request of an Open311 service.
fn is_service(codes: &[String], row: &RequestRow) -> bool {
    codes.iter().any(|c| c == row.service_code.as_str())
}

/// The notes of each case (in the order given), from its history.
async fn histories(
    state: &AppState,
    format: Format,
    cases: Vec<CaseId>,
) -> Result<Vec<Vec<Note>>, Open311Error> {
    state
        .blocking(move |engine| {
            let org = engine.org();
            cases
                .into_iter()
                .take(HISTORIES_MAX)
                .map(|case| {
                    engine
                        .history(&open311_reader(), case)
                        .map(|history| {
                            notes(
                                &history,
                                &engine.definitions(),
                                &org,
                                engine.calendar().zone(),
                            )
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .await
        .map_err(|e| server_error(format, e))
}

/// A failure that is not the request's (the read model is stopped, the store fails), with
/// the status the native API gives it, as an Open311 error.
fn server_error(format: Format, error: ApiError) -> Open311Error {
    Open311Error::with_status(format, error.status, error.message)
}

/// A failed query: 400 naming the parameter (a page too deep), else as the native API.
fn query_error(format: Format, error: ProjectionError) -> Open311Error {
    match error {
        ProjectionError::Query { field, reason } => {
            Open311Error::bad_request(format, format!("invalid {field}: {reason}"))
        }
        other => server_error(format, projection_error(other)),
    }
}

// ---------------------------------------------------------------------------------------------
// Parameters

/// The query's parameters, decoded leniently (as every Open311 resource does). An empty value
/// is the same as an absent one; a parameter not named here is ignored.
struct Params {
    pairs: Vec<(String, String)>,
    format: Format,
}

/// How a window with one bound (or none) is completed.
#[derive(Clone, Copy)]
enum WindowRule {
    /// `GET requests`: none: the last 90 days; only `start_date`: the 90 days from it; only
    /// `end_date`: the 90 days up to it.
    Requests,
    /// The updates feed: none: the last 24 hours; only `start_date`: from it until now; only
    /// `end_date`: the 24 hours up to it.
    Updates,
}

impl Params {
    fn new(uri: &Uri, format: Format) -> Self {
        Self {
            pairs: query_pairs(uri.query().unwrap_or("")),
            format,
        }
    }

    fn bad(&self, description: String) -> Open311Error {
        Open311Error::bad_request(self.format, description)
    }

    /// The non-empty values of `name`.
    fn values<'p>(&'p self, name: &'p str) -> impl Iterator<Item = &'p str> + 'p {
        self.pairs
            .iter()
            .filter(move |(n, v)| n == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim())
    }

    /// A parameter that takes one value: given twice with different values is an error.
    fn single<'p>(&'p self, name: &'p str) -> Result<Option<&'p str>, Open311Error> {
        let mut values = self.values(name);
        let first = values.next();
        if let Some(other) = values.find(|v| Some(*v) != first) {
            return Err(self.bad(format!(
                "{name} is given twice, as '{}' and '{}'",
                echo(first.unwrap_or("")),
                echo(other)
            )));
        }
        Ok(first)
    }

    /// A comma list, which may also be given several times: the items, trimmed, without
    /// empty ones.
    fn list(&self, name: &str) -> Vec<String> {
        self.values(name)
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// `service_request_id`: the ids, without repeats; `None` when not given.
    fn ids(&self) -> Result<Option<Vec<CaseId>>, Open311Error> {
        let items = self.list("service_request_id");
        if items.is_empty() {
            return Ok(None);
        }
        let mut seen = HashSet::new();
        let mut ids = Vec::new();
        for item in items {
            let id = CaseId::parse(&item).map_err(|_| {
                self.bad(format!(
                    "service_request_id: '{}' is not a service request id (a UUID)",
                    echo(&item)
                ))
            })?;
            if seen.insert(id) {
                ids.push(id);
            }
        }
        if ids.len() > IDS_MAX {
            return Err(self.bad(format!(
                "service_request_id: at most {IDS_MAX} ids at once, not {}",
                ids.len()
            )));
        }
        Ok(Some(ids))
    }

    fn service_codes(&self) -> Vec<String> {
        self.list("service_code")
    }

    /// `status`: `open`, `closed`, or both (any case); `None` for every status.
    fn status(&self) -> Result<Option<RequestStatus>, Open311Error> {
        let (mut open, mut closed) = (false, false);
        for item in self.list("status") {
            match item.to_ascii_lowercase().as_str() {
                "open" => open = true,
                "closed" => closed = true,
                _ => {
                    return Err(self.bad(format!(
                        "status must be open, closed or a comma list of them, not '{}'",
                        echo(&item)
                    )))
                }
            }
        }
        Ok(match (open, closed) {
            (true, false) => Some(RequestStatus::Open),
            (false, true) => Some(RequestStatus::Closed),
            _ => None,
        })
    }

    /// `extensions`: `true` or `false` (any case).
    fn extensions(&self) -> Result<bool, Open311Error> {
        match self.single("extensions")? {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(self.bad(format!(
                "extensions must be true or false, not '{}'",
                echo(v)
            ))),
        }
    }

    /// `page` (from 1, default 1) and `page_size` (1 to 1000, default 1000).
    fn paging(&self) -> Result<(usize, usize), Open311Error> {
        let number = |name: &str, max: usize, default: usize| -> Result<usize, Open311Error> {
            let Some(text) = self.single(name)? else {
                return Ok(default);
            };
            match text.parse::<usize>() {
                Ok(n) if n >= 1 && n <= max && text.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
                _ => Err(self.bad(format!(
                    "{name} must be a whole number from 1{}, not '{}'",
                    if max == usize::MAX {
                        String::new()
                    } else {
                        format!(" to {max}")
                    },
                    echo(text)
                ))),
            }
        };
        Ok((
            number("page", usize::MAX, 1)?,
            number("page_size", PAGE_MAX, DEFAULT_LIMIT)?,
        ))
    }

    /// A datetime parameter.
    fn datetime(&self, name: &str) -> Result<Option<Timestamp>, Open311Error> {
        let Some(text) = self.single(name)? else {
            return Ok(None);
        };
        parse_datetime(text).map(Some).map_err(|reason| {
            self.bad(format!(
                "{name} must be an ISO 8601 date and time with a zone (W3C format), e.g. \
                 2026-04-01T09:30:00+08:00 or 2026-04-01T01:30:00Z, not '{}': {reason}",
                echo(text)
            ))
        })
    }

    /// `start_date` and `end_date`, each when given.
    fn dates(&self) -> Result<(Option<Timestamp>, Option<Timestamp>), Open311Error> {
        Ok((self.datetime("start_date")?, self.datetime("end_date")?))
    }

    /// The window `[start, end]` (both inclusive) of `dates`, completed by `rule`, at most
    /// [`WINDOW_MAX_MICROS`] wide (a refusal writes the times in `zone`).
    fn window(
        &self,
        (start, end): (Option<Timestamp>, Option<Timestamp>),
        now: Timestamp,
        rule: WindowRule,
        zone: &Zone,
    ) -> Result<(Timestamp, Timestamp), Open311Error> {
        let max = WINDOW_MAX_MICROS;
        let shift = |at: Timestamp, by: i64| {
            Timestamp::from_unix_micros(at.as_unix_micros().saturating_add(by))
        };
        let default = match rule {
            WindowRule::Requests => max,
            WindowRule::Updates => UPDATES_DEFAULT_MICROS,
        };
        let (start, end) = match (start, end) {
            (Some(start), Some(end)) => (start, end),
            (Some(start), None) => match rule {
                WindowRule::Requests => (start, shift(start, max)),
                WindowRule::Updates => (start, now.max(start)),
            },
            (None, Some(end)) => (shift(end, -default), end),
            (None, None) => (shift(now, -default), now),
        };
        if end < start {
            return Err(self.bad(format!(
                "end_date ({}) is before start_date ({})",
                zone.format(end),
                zone.format(start)
            )));
        }
        if end.as_unix_micros().saturating_sub(start.as_unix_micros()) > max {
            return Err(self.bad(format!(
                "start_date and end_date may not span more than 90 days ({} to {})",
                zone.format(start),
                zone.format(end)
            )));
        }
        Ok((start, end))
    }
}

/// Parses an ISO 8601 date and time with a zone, the W3C profile the spec asks for:
/// `YYYY-MM-DDThh:mm[:ss[.s]]` then `Z` or `±hh:mm`. A `+` of the zone that arrived as a
/// space (an unescaped `+` in a query string is a space) is read as `+`.
fn parse_datetime(text: &str) -> Result<Timestamp, String> {
    let mut text = text.trim().to_owned();
    if text.len() < 16 || !text.is_char_boundary(10) || !text.is_char_boundary(16) {
        return Err("a date and a time are both required".to_owned());
    }
    // ` 08:00` at the end: the `+` became a space.
    if let Some(i) = text.rfind(' ') {
        let zone = &text[i + 1..];
        if i > 16 && zone.len() == 5 && zone.as_bytes()[2] == b':' {
            text.replace_range(i..=i, "+");
        }
    }
    // `hh:mm` without seconds.
    if matches!(text.as_bytes().get(16), Some(b'Z' | b'z' | b'+' | b'-')) {
        text.insert_str(16, ":00");
    }
    parse_rfc3339(&text).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Requests

/// The answer: a list of requests, each with its notes when `notes` is given.
fn requests_answer(
    state: &AppState,
    rows: &[RequestRow],
    notes: Option<&[Vec<Note>]>,
    format: Format,
) -> Response {
    let engine = state.engine();
    let org = engine.org();
    let items: Vec<ServiceRequestAnswer> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let notes = notes.map(|all| all.get(i).map(Vec::as_slice).unwrap_or_default());
            ServiceRequestAnswer::new(
                row,
                &engine.definitions(),
                &org,
                notes,
                engine.calendar().zone(),
            )
        })
        .collect();
    Document::of("service_requests", &items).respond(format, StatusCode::OK)
}

/// A unit as the public sees it: its name in the org chart, else its id.
fn unit_name(org: &OrgChart, unit: &UnitId) -> String {
    org.unit(unit)
        .map(|u| u.name.trim())
        .filter(|name| !name.is_empty())
        .map_or_else(|| unit.as_str().to_owned(), str::to_owned)
}

/// A service request as Open311 shows it (`requests.{fmt}`, `requests/{id}.{fmt}`), its
/// elements in the spec's order. What a request does not have is empty text, but for the
/// coordinates, which are null.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename = "request", deny_unknown_fields)]
pub struct ServiceRequestAnswer {
    /// The case.
    pub service_request_id: String,
    /// Open or closed.
    pub status: CaseStatusName,
    /// The answer to the requester, once given.
    pub status_notes: String,
    /// The service's name.
    pub service_name: String,
    /// The service (the workflow's id).
    pub service_code: String,
    /// What the request says.
    pub description: String,
    /// The unit leading the case.
    pub agency_responsible: String,
    /// The expected handling time.
    pub service_notice: String,
    /// When it was filed.
    pub requested_datetime: String,
    /// When it last changed.
    pub updated_datetime: String,
    /// When it is due.
    pub expected_datetime: String,
    /// Where it is about.
    pub address: String,
    /// The client's own id of the address.
    pub address_id: String,
    /// Always empty.
    pub zipcode: String,
    /// Latitude, WGS 84 degrees.
    pub lat: Option<f64>,
    /// Longitude, WGS 84 degrees.
    pub long: Option<f64>,
    /// A photo's URL.
    pub media_url: String,
    /// Its history in public words: only with extensions=true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<Vec<NoteAnswer>>,
}

impl ServiceRequestAnswer {
    /// `row`, with its notes when `notes` is given; times written in `zone`.
    fn new(
        row: &RequestRow,
        definitions: &DefinitionRegistry,
        org: &OrgChart,
        notes: Option<&[Note]>,
        zone: &Zone,
    ) -> Self {
        let definition = definitions
            .get(&row.workflow())
            .or_else(|| definitions.latest(&row.service_code));
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
        let time = |at: Option<Timestamp>| at.map(|at| zone.format(at)).unwrap_or_default();
        Self {
            service_request_id: row.id.to_string(),
            status: CaseStatusName::of(row.closed),
            status_notes: text(&row.status_notes),
            service_name: definition
                .map_or_else(|| row.service_code.to_string(), |d| d.name.clone()),
            service_code: row.service_code.as_str().to_owned(),
            description: row.description.clone(),
            agency_responsible: unit_name(org, &row.agency_responsible),
            service_notice: definition.map(|d| notice(d)).unwrap_or_default(),
            requested_datetime: time(Some(row.requested_at)),
            updated_datetime: time(Some(row.updated_at)),
            expected_datetime: time(row.expected_at),
            address: text(&row.address),
            address_id: text(&row.address_id),
            zipcode: String::new(),
            lat: row.lat,
            long: row.long,
            media_url: text(&row.media_url),
            notes: notes.map(|notes| notes.iter().map(|note| note.answer(zone)).collect()),
        }
    }
}

/// A note of a request's history.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename = "note", deny_unknown_fields)]
pub struct NoteAnswer {
    /// When it was recorded.
    pub datetime: String,
    /// What happened, in public words.
    pub description: String,
    /// The kind.
    #[serde(rename = "type")]
    pub kind: String,
}

/// The `service_notice`: the same words `POST requests` answers (the deadline of the stage
/// a new case starts in).
fn notice(definition: &Definition) -> String {
    super::requests::service_notice(definition)
}

// ---------------------------------------------------------------------------------------------
// Notes

/// One note of a request's history (`extensions=true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// When it was recorded.
    pub at: Timestamp,
    /// What happened, in public words ([`note`]).
    pub description: String,
    /// The kind ([`note`]).
    pub kind: &'static str,
}

impl Note {
    fn answer(&self, zone: &Zone) -> NoteAnswer {
        NoteAnswer {
            datetime: zone.format(self.at),
            description: self.description.clone(),
            kind: self.kind.to_owned(),
        }
    }
}

/// The notes of a case's history, in order, times in them written in `zone` (the
/// calendar's).
pub fn notes(
    history: &[HistoryEntry],
    definitions: &DefinitionRegistry,
    org: &OrgChart,
    zone: &Zone,
) -> Vec<Note> {
    let mut workflow: Option<DefinitionRef> = None;
    let mut out = Vec::new();
    for entry in history {
        match &entry.event {
            CaseEvent::Opened(e) => workflow = Some(e.workflow.clone()),
            CaseEvent::Migrated(e) => workflow = Some(e.to.clone()),
            _ => {}
        }
        let definition = workflow.as_ref().and_then(|w| definitions.get(w));
        if let Some((kind, description)) =
            note(&entry.event, definition.map(AsRef::as_ref), org, zone)
        {
            out.push(Note {
                at: entry.recorded.recorded_at,
                description,
                kind,
            });
        }
    }
    out
}

/// A stage's name in `definition`, else its id.
fn stage_name(definition: Option<&Definition>, stage: &str) -> String {
    definition
        .and_then(|d| d.stage(stage))
        .map_or_else(|| stage.to_owned(), |s| s.name.clone())
}

/// The note of one event: `(type, description)`, or `None` for the events that are not shown.
///
/// The rule: a description is worded here from the event's type, the workflow's action and
/// stage names, the org chart's unit names, request ids and times. It never holds a field
/// value (an action's fields may be free text about a person), a case's title or
/// description, a place, a rating's value, or the purpose of a contact view; the contact
/// views (`ContactViewed`) and the place (`PlaceRecorded`, already in the request's fields)
/// are not notes at all. The history's own summaries are not used, since they quote field
/// values and titles.
pub fn note(
    event: &CaseEvent,
    definition: Option<&Definition>,
    org: &OrgChart,
    zone: &Zone,
) -> Option<(&'static str, String)> {
    let unit = |u: &UnitId| unit_name(org, u);
    Some(match event {
        CaseEvent::Opened(e) => (
            "opened",
            format!(
                "received by {}: {}",
                unit(&e.unit),
                stage_name(definition, &e.stage)
            ),
        ),
        CaseEvent::ActionTaken(e) => {
            let action = definition
                .and_then(|d| d.action(&e.action))
                .map_or_else(|| e.action.clone(), |a| a.name.clone());
            let closed = definition.is_some_and(|d| d.is_terminal(&e.to));
            let description = if e.from == e.to {
                action
            } else {
                format!(
                    "{action}: {} → {}",
                    stage_name(definition, &e.from),
                    stage_name(definition, &e.to)
                )
            };
            (if closed { "closed" } else { "action" }, description)
        }
        CaseEvent::LeadAssigned(e) => ("assigned", format!("now handled by {}", unit(&e.unit))),
        CaseEvent::CoHandlerAdded(e) => (
            "co_handler_added",
            format!("{} helps to handle it", unit(&e.unit)),
        ),
        CaseEvent::ReturnedToSender(e) => ("sent_back", format!("sent back to {}", unit(&e.to))),
        CaseEvent::SatisfactionRated(_) => ("rated", "the requester rated the handling".to_owned()),
        CaseEvent::MergedInto(e) => ("merged", format!("merged into request {}", e.target)),
        CaseEvent::DuplicateMerged(e) => (
            "duplicate_merged",
            format!("duplicate request {} merged into this one", e.duplicate),
        ),
        CaseEvent::Reopened(_) => ("reopened", "reopened".to_owned()),
        CaseEvent::Migrated(e) => (
            "migrated",
            format!("moved to version {} of the service", e.to.version),
        ),
        CaseEvent::DeadlineSet(e) => (
            "deadline_set",
            format!(
                "{}: expected by {}",
                stage_name(definition, &e.stage),
                zone.format(e.due_at)
            ),
        ),
        CaseEvent::DeadlineMet(_) => ("deadline_met", "handled in time".to_owned()),
        CaseEvent::DeadlineMissed(e) => (
            "deadline_missed",
            format!("not handled in time (due {})", zone.format(e.due_at)),
        ),
        CaseEvent::DeadlineStepReached(e) => (
            "deadline_step",
            format!(
                "deadline {}: {} (due {})",
                e.step.as_str(),
                unit(&e.unit),
                zone.format(e.due)
            ),
        ),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Updates

/// One update of the feed.
#[derive(Debug, Clone, PartialEq)]
struct Update {
    id: String,
    case: CaseId,
    closed: bool,
    at: Timestamp,
    position: u64,
    description: String,
}

/// An update of the feed (`servicerequestupdates.{fmt}`).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename = "request_update", deny_unknown_fields)]
pub struct RequestUpdateAnswer {
    /// The update.
    pub update_id: String,
    /// The case.
    pub service_request_id: String,
    /// Open or closed, after it.
    pub status: CaseStatusName,
    /// When it happened.
    pub updated_datetime: String,
    /// The answer to the requester, or the action's note.
    pub description: String,
    /// Always empty.
    pub media_url: String,
}

impl Update {
    fn answer(&self, zone: &Zone) -> RequestUpdateAnswer {
        RequestUpdateAnswer {
            update_id: self.id.clone(),
            service_request_id: self.case.to_string(),
            status: CaseStatusName::of(self.closed),
            updated_datetime: zone.format(self.at),
            description: self.description.clone(),
            media_url: String::new(),
        }
    }
}

/// The updates of a case: every action that moved its stage or answered the requester. The
/// description is the answer ([`FEEDBACK`], the request's `status_notes`) when the action
/// carries one, else the action's note ([`note`]); the status is the one after the action.
fn case_updates(
    case: CaseId,
    history: &[HistoryEntry],
    definitions: &DefinitionRegistry,
    org: &OrgChart,
    zone: &Zone,
) -> Vec<Update> {
    let mut workflow: Option<DefinitionRef> = None;
    let mut out = Vec::new();
    for entry in history {
        match &entry.event {
            CaseEvent::Opened(e) => workflow = Some(e.workflow.clone()),
            CaseEvent::Migrated(e) => workflow = Some(e.to.clone()),
            CaseEvent::ActionTaken(e) => {
                let definition = workflow.as_ref().and_then(|w| definitions.get(w));
                let answer = FEEDBACK
                    .iter()
                    .filter(|(action, _)| *action == e.action)
                    .find_map(|(_, field)| match e.fields.get(*field) {
                        Some(FieldValue::Text(text)) if !text.trim().is_empty() => {
                            Some(text.clone())
                        }
                        _ => None,
                    });
                if e.from == e.to && answer.is_none() {
                    continue;
                }
                let description = answer.unwrap_or_else(|| {
                    note(&entry.event, definition.map(AsRef::as_ref), org, zone)
                        .map(|(_, d)| d)
                        .unwrap_or_default()
                });
                out.push(Update {
                    id: entry.recorded.event_id.to_string(),
                    case,
                    closed: definition.is_some_and(|d| d.is_terminal(&e.to)),
                    at: entry.recorded.recorded_at,
                    position: entry.recorded.position.get(),
                    description,
                });
            }
            _ => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Rendering

/// Who reads a request's history for Open311's public views: the system, since GeoReport
/// makes every request's status notes public; what is shown of them is chosen by `notes` and
/// `case_updates` (no contact data, no internal fields).
fn open311_reader() -> Acting {
    Acting::system(UnitId::new("open311").expect("a valid unit id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_need_a_zone_and_forgive_a_lost_plus() {
        let shanghai = Zone::shanghai();
        let at = |text: &str| parse_datetime(text).map(|at| shanghai.format(at));
        assert_eq!(
            at("2026-04-01T09:30:00+08:00").as_deref(),
            Ok("2026-04-01T09:30:00+08:00")
        );
        assert_eq!(
            at("2026-04-01T01:30:00Z").as_deref(),
            Ok("2026-04-01T09:30:00+08:00")
        );
        assert_eq!(
            at("2026-04-01T09:30:00 08:00").as_deref(),
            Ok("2026-04-01T09:30:00+08:00")
        );
        assert_eq!(
            at("2026-04-01T09:30+08:00").as_deref(),
            Ok("2026-04-01T09:30:00+08:00")
        );
        // Any offset, and a lost `+` of another zone's offset too.
        assert_eq!(
            at("2026-04-01T03:30:00 02:00").as_deref(),
            Ok("2026-04-01T09:30:00+08:00")
        );
        assert_eq!(
            at("2026-03-31T21:30-04:00").as_deref(),
            Ok("2026-04-01T09:30:00+08:00")
        );
        for bad in [
            "2026-04-01",
            "2026-04-01T09:30:00",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "中中中中中中中中中中中",
            "",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad}");
        }
    }
}
