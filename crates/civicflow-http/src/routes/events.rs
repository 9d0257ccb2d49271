//! Live feedback (实时反馈): server-sent events for one case and for a unit's subtree.
//!
//! Both streams first replay what the log already holds after the client's `Last-Event-ID`,
//! then follow the log as events commit. Without one, a case stream replays the case's whole
//! history (small, and read through the case's own stream), and a unit stream starts at the
//! head unless `since` asks for history (a scan of the log, so asked for explicitly, at most
//! [`ServiceConfig::stream_history_window`] positions back). A connection replays at most
//! [`ServiceConfig::stream_replay_max`] events (read, for a unit stream, not sent), then sends
//! `event: resume` with the id to reconnect with and ends; a token may have at most
//! [`ServiceConfig::stream_replays_per_token`] unit streams replaying at once (429 beyond).
//!
//! They read through the log's async subscriptions (`next_async`), so a connection never
//! blocks a runtime thread while it waits; the one engine call that reads a whole case runs on
//! the blocking pool. A stream ends when the service shuts down (the shutdown signal of
//! [`AppState::shutdown_signal`]), when the caller's token is revoked (each stream watches the
//! token index, which follows the log: `auth::TokenFollower`), when the org chart
//! takes the caller's scope away (below), when the client goes away, or when the log closes.
//! A comment line every 15 seconds keeps idle connections (and proxies) alive.
//!
//! [`ServiceConfig::stream_history_window`]: crate::ServiceConfig::stream_history_window
//! [`ServiceConfig::stream_replay_max`]: crate::ServiceConfig::stream_replay_max
//! [`ServiceConfig::stream_replays_per_token`]: crate::ServiceConfig::stream_replays_per_token
//!
//! Why end rather than go quiet when the caller's right goes: a filtered stream looks like a
//! quiet one, so the client would wait forever on it; an ended one makes it reconnect and get
//! the answer a new connection gets (401, 404), and nothing has to be filtered right for the
//! rest of the connection's life.
//!
//! Every event is sent as `id:` (see below), `event:` (the event's type, e.g. `ActionTaken`)
//! and `data:`, one JSON object with `position`, `version`, `stream`, `type`,
//! `schema_version`, `recorded_at`, `actor` {`id`, `role`, `unit_id`}, `event_id`,
//! `correlation_id` and `hash`; a case event also has `case` and `lead_unit_id` (the lead
//! after the event, when the stream has folded it), a directive event `directive`,
//! `unit_id`, a one-line `summary` and, for a part, `part`. When a stream cannot go on (the
//! store fails), it sends one `event: error` without an id and ends; the client reconnects
//! with its last id.
//!
//! # `GET /api/v1/cases/{id}/events`
//!
//! The case's events with their stream version as the id: those after `Last-Event-ID` (a
//! version), then each new one. The caller must be allowed to see the case when connecting
//! (404 otherwise, as for `GET /api/v1/cases/{id}`), and then sees its whole history, as
//! `/history` shows it. Each new event is folded into the case's state, and when the caller
//! may no longer see the case after it (it was handed to a unit outside their scope), that
//! event is the last one sent and the stream ends. The connection also follows the org
//! chart's stream and judges the case's `may_see` again at every change of the chart: when
//! the caller may no longer see the case (their grant was taken away, the case's units moved
//! out of their subtree), the stream ends at once, without another event.
//!
//! # `GET /api/v1/units/{id}/events`
//!
//! The events that concern the unit's subtree (the unit and every unit below it), with the
//! log position as the id: from the head on, or those after `Last-Event-ID` or `since` (a
//! position; the header wins, since a reconnecting EventSource sends it with its first URL),
//! then each new one. The unit must exist, be the caller's unit or lie below it, and the
//! caller's grant must hold (404 otherwise).
//!
//! An event *concerns* the subtree of unit `U` when:
//!
//! - it is an event of a case (stream `case-<id>`) and, just before it or just after it, the
//!   case's filing unit, its lead unit or one of its co-handling units lies in `U`'s subtree;
//!   and the caller may see the case at that same point (the case's `may_see`: for staff
//!   this follows from the subtree, a resident sees only the cases they filed). "Before or
//!   after" means the event that hands a case over is seen both by the units it leaves and by
//!   the units it reaches, and later events only by the units that still have it;
//! - it is an event of a directive part (stream `directive-<id>.<n>`) whose part's unit (the
//!   unit of its `PartAssigned`, which never changes) lies in `U`'s subtree;
//! - it is a directive's own `DirectiveIssued` (stream `directive-<id>`) whose issuing unit
//!   lies in `U`'s subtree.
//!
//! Directive events are sent only while the caller's grant holds in the org chart (the
//! engine has no finer rule for reading directives).
//!
//! No other stream (the org chart, tokens, people, lists, standings) is sent. "In the
//! subtree" is judged on the org chart as it is now: each connection folds the org chart's
//! stream when it connects and keeps folding the org events it passes, so a unit moved in the
//! chart moves its cases with it. After each org event it asks again whether the caller may
//! follow the unit at all (`OrgChart::in_scope` and `OrgChart::check_acting`, as when
//! connecting), and ends the stream when not.
//!
//! Each connection keeps the state of every case it has passed (the case's own fold,
//! `Aggregate::apply`, with title, description and field values dropped: a few hundred bytes a
//! case), so deciding an event costs a map lookup and a few ancestor walks. A case first met
//! in the middle of its stream (a resumed connection) is loaded once through the engine, as of
//! the version before the event; a directive part first met after its `PartAssigned` reads
//! that one event.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use civicflow_core::calendar::Zone;
use civicflow_core::domain::access::TokenId;
use civicflow_core::domain::aggregate::{Aggregate, Fold};
use civicflow_core::domain::case::{self, Case, CaseEvent, CaseState};
use civicflow_core::domain::directive::{self, DirectiveEvent, PartEvent};
use civicflow_core::domain::org::{self, Acting, Org, OrgChart, OrgEvent};
use civicflow_core::engine::summarize;
use civicflow_core::{
    CaseId, DirectiveId, Position, ReadError, RecordedEvent, StreamId, StreamSubscription,
    Subscription, UnitId, Version,
};
use futures_util::stream;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::reports::{query_param, QueryParams};
use super::{Content, RouteSpec};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::policy::Policy;
use crate::state::AppState;

/// The header a reconnecting client names its last event with.
pub const LAST_EVENT_ID: &str = "Last-Event-ID";

/// How often an idle stream sends a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How many events one read of the org chart's stream takes.
const ORG_PAGE: usize = 512;

/// The routes of this module.
pub fn routes() -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/cases/{id}/events",
            policy: Policy::Authenticated,
            summary: "Live feedback for a case (text/event-stream): its events after Last-Event-ID (a stream version; none: the case's whole history, from the first), then each new one as it commits. id = stream version, event = the event type, data = JSON. A replay sends at most a capped number of events, then `event: resume` with the id to reconnect with, and ends. 404 outside the caller's scope; 400 for an unknown query parameter, or a Last-Event-ID that is malformed, sent twice or past the case's newest version.",
            tag: "events",
            request: None,
            params: Some(case_params),
            response: None,
            content: Content::EventStream,
            status: 200,
            also: &[],
            errors: &[400, 404],
            handler: get(case_events),
        },
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/units/{id}/events",
            policy: Policy::Authenticated,
            summary: "Live feedback for a unit's subtree (text/event-stream): the events of the cases and directive parts that concern the unit or a unit below it, from the head of the log on (only what commits after connecting), or, when asked for history, after Last-Event-ID or `since` (a log position; the header wins), then each new one. id = log position. A replay reads at most a capped number of events, then sends `event: resume` with the id to reconnect with, and ends. 404 unless the unit is the caller's or lies below it; 400 for an unknown query parameter, or a Last-Event-ID or since that is malformed, past the head or further back than the history window; 429 when the token has too many streams replaying.",
            tag: "events",
            request: None,
            params: Some(unit_params),
            response: None,
            content: Content::EventStream,
            status: 200,
            also: &[],
            errors: &[400, 404],
            handler: get(unit_events),
        },
    ]
}

/// `Last-Event-ID`, as the OpenAPI document declares it: `what` says what the id is.
fn last_event_id_param(what: &str) -> Value {
    json!({
        "name": LAST_EVENT_ID,
        "in": "header",
        "required": false,
        "schema": {"type": "string", "pattern": "^ *[0-9]{0,20} *$"},
        "description": format!("resume after this event: {what}, as the stream sent it; empty counts as absent; malformed, sent twice or past the newest is 400"),
    })
}

/// The parameters of the case stream: no query parameter (any is 400), `Last-Event-ID`.
fn case_params() -> Value {
    json!([last_event_id_param("a version of the case's stream")])
}

/// The parameters of the unit stream: `since` (any other query parameter is 400),
/// `Last-Event-ID`.
fn unit_params() -> Value {
    json!([
        query_param(
            "since",
            false,
            json!({"type": "integer", "minimum": 0}),
            "ask for history: the events after this log position (0: from the first), as far back as the service's history window (1,000,000 positions by default); Last-Event-ID, when sent, wins",
        ),
        last_event_id_param("a log position"),
    ])
}

// ---------------------------------------------------------------------------------------------
// Handlers

async fn case_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    // Strict like every route: a parameter it does not take is a mistake to report, not to
    // ignore (a client that thinks it filters or starts somewhere would be silently wrong).
    QueryParams::parse(&uri, &[])?;
    let id = super::cases::case_id(&id)?;
    let after = last_event_id(&headers)?;
    let from = match after {
        None => Version::FIRST,
        Some(after) => after
            .checked_add(1)
            .and_then(Version::new)
            .ok_or_else(|| out_of_range("version"))?,
    };
    // The chart first, then the case: the chart is then no newer than the case's scope check,
    // and any org change after it reaches the feed through its org subscription.
    let (org, org_version) = load_org(&state).await?;
    // The scope check, and the case as of now (404 outside the caller's scope).
    let acting = caller.acting.clone();
    let view = state
        .blocking(move |engine| engine.case(&acting, id))
        .await??;
    // An id past the case's newest version was never sent by this stream: a stream started
    // after it would wait, silently, for events the client believes it has already seen.
    let newest = view.state.version.map_or(0, Version::get);
    if let Some(after) = after.filter(|after| *after > newest) {
        return Err(ApiError::bad_request(format!(
            "{LAST_EVENT_ID} {after} is past the case's newest version ({newest}): no stream of this case sent it; connect without it to replay the case's history"
        ))
        .field(LAST_EVENT_ID));
    }
    let log = state.engine().log().clone();
    let subscription = StreamSubscription::new(log.clone(), id.stream(), from);
    let org_subscription = StreamSubscription::new(
        log,
        org::org_stream(),
        org_version.map_or(Version::FIRST, Version::next),
    );
    // A case's history is read through its own stream (not a scan of the log) and is small:
    // it is replayed by default, capped like any replay.
    let replay = view
        .state
        .version
        .filter(|newest| *newest >= from)
        .map(|newest| Replay::new(&state, newest.get(), None));
    let feed = CaseFeed {
        state: state.clone(),
        acting: caller.acting,
        case: id,
        current: Some(view.state),
        subscription,
        replay,
        org,
        org_version,
        org_subscription,
        ended: false,
    };
    Ok(respond(feed, Guard::new(&state, caller.token)))
}

async fn unit_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let params = QueryParams::parse(&uri, &["since"])?;
    let unit = UnitId::new(id.as_str()).map_err(|_| ApiError::not_found("unit").field("id"))?;
    // Where to start: at the head, unless the client asks for history. A reconnecting
    // EventSource sends Last-Event-ID with the URL it first used, `since` included: the
    // header is the newer word.
    let head = state.engine().log().head().map_or(0, |h| h.position.get());
    let asked = match last_event_id(&headers)? {
        Some(after) => Some((after, LAST_EVENT_ID)),
        None => since(&params)?.map(|after| (after, "since")),
    };
    let after = match asked {
        None => head,
        Some((after, field)) => {
            within_history(after, head, state.0.config.stream_history_window, field)?;
            after
        }
    };
    let from = Position::new(after + 1).ok_or_else(|| out_of_range("position"))?;
    let (chart, org_version) = load_org(&state).await?;
    if !may_follow(&chart, &caller.acting, &unit) {
        return Err(ApiError::not_found("unit").field("id"));
    }
    // History to replay: what the log held when the client connected, after `after`.
    let replay = if after < head {
        let permit = ReplayPermit::take(&state, &caller.token)?;
        Some(Replay::new(&state, head, Some(permit)))
    } else {
        None
    };
    let subscription = Subscription::new(state.engine().log().clone(), from);
    let feed = UnitFeed {
        state: state.clone(),
        acting: caller.acting,
        root: unit,
        org: chart,
        org_version,
        subscription,
        cases: HashMap::new(),
        parts: HashMap::new(),
        replay,
        ended: false,
    };
    Ok(respond(feed, Guard::new(&state, caller.token)))
}

/// Whether `acting` may follow the feed of `unit`'s subtree on `chart`: the unit exists and
/// lies in their scope, and their grant holds (`OrgChart::in_scope`, `OrgChart::check_acting`).
/// Asked when a unit stream connects and again after every org change it passes.
fn may_follow(chart: &OrgChart, acting: &Acting, unit: &UnitId) -> bool {
    chart.in_scope(acting, unit) && chart.check_acting(acting).is_ok()
}

/// The client's `Last-Event-ID`: `None` when absent or empty.
///
/// # Errors
/// 400 naming the header when it is not a decimal number.
fn last_event_id(headers: &HeaderMap) -> ApiResult<Option<u64>> {
    let mut values = headers.get_all(LAST_EVENT_ID).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(
            ApiError::bad_request(format!("{LAST_EVENT_ID} was sent more than once"))
                .field(LAST_EVENT_ID),
        );
    }
    let malformed = || {
        ApiError::bad_request(format!(
            "{LAST_EVENT_ID} must be the decimal id of an event this stream sent"
        ))
        .field(LAST_EVENT_ID)
    };
    let text = value.to_str().map_err(|_| malformed())?.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    text.parse::<u64>().map(Some).map_err(|_| malformed())
}

/// The `since` query parameter: a log position, as a decimal number.
///
/// # Errors
/// 400 naming `since` otherwise.
fn since(params: &QueryParams) -> ApiResult<Option<u64>> {
    let Some(text) = params.get("since") else {
        return Ok(None);
    };
    if text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(format!(
            "since must be a log position (a whole number, 0 for the first event), not {text:?}"
        ))
        .field("since"));
    }
    text.parse::<u64>().map(Some).map_err(|_| {
        ApiError::bad_request(format!("since {text} is past the last possible position"))
            .field("since")
    })
}

/// Checks that history after log position `after` (from `field`) can be replayed: it is not
/// past the log's head (no stream sent such an id) nor further back than `window`.
///
/// # Errors
/// 400 naming `field`, saying where the head and the window are.
fn within_history(after: u64, head: u64, window: u64, field: &str) -> ApiResult<()> {
    if after > head {
        return Err(ApiError::bad_request(format!(
            "{field} {after} is past the head of the log ({head}): no stream sent it; connect without it to start at the head"
        ))
        .field(field));
    }
    if head - after > window {
        return Err(ApiError::bad_request(format!(
            "{field} {after} is further back than a stream may replay: at most {window} positions behind the head ({head}), so from {} on; read older history from the case and report routes",
            head - window
        ))
        .field(field));
    }
    Ok(())
}

fn out_of_range(what: &str) -> ApiError {
    ApiError::bad_request(format!("{LAST_EVENT_ID} is past the last possible {what}"))
        .field(LAST_EVENT_ID)
}

/// The org chart folded from its stream, and the stream's version, read without blocking.
async fn load_org(state: &AppState) -> ApiResult<(OrgChart, Option<Version>)> {
    let mut chart = OrgChart::default();
    let mut version = None;
    fold_org(state, &mut chart, &mut version).await?;
    Ok((chart, version))
}

/// Folds into `chart` (as of `version` of the org stream) every org event after `version`
/// the log holds now, without blocking.
async fn fold_org(
    state: &AppState,
    chart: &mut OrgChart,
    version: &mut Option<Version>,
) -> ApiResult<()> {
    let log = state.engine().log();
    let stream = org::org_stream();
    let mut from = version.map_or(Version::FIRST, Version::next);
    loop {
        let page = log
            .read_stream_async(stream.clone(), from, ORG_PAGE)
            .await
            .map_err(read_failed)?;
        let full = page.len() == ORG_PAGE;
        for recorded in &page {
            let event: OrgEvent = recorded.decode().map_err(|e| {
                tracing::error!(position = %recorded.position, error = %e, "an org event does not decode");
                ApiError::internal("the org chart does not decode; the error is in the service's log")
            })?;
            Org::apply(
                chart,
                &event,
                &Fold {
                    version: recorded.version,
                    definitions: &state.engine().definitions(),
                },
            );
            *version = Some(recorded.version);
        }
        match page.last() {
            Some(last) if full => from = last.version.next(),
            _ => break,
        }
    }
    Ok(())
}

fn read_failed(error: ReadError) -> ApiError {
    match error {
        ReadError::Closed => ApiError::unavailable("the service is shutting down"),
        other => {
            tracing::error!(error = %other, "reading the log failed");
            ApiError::internal("reading the log failed; the error is in the service's log")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Streaming

/// A source of events for one connection.
trait Feed: Send + 'static {
    /// The next event to send; `None` ends the stream.
    fn next(&mut self) -> impl Future<Output = Option<Event>> + Send;
}

/// What ends a stream from outside its feed: the service shutting down, or the caller's token
/// being revoked (the stream is the token's: a revoked token reads nothing more, on an open
/// connection no more than on a new one).
struct Guard {
    state: AppState,
    token: TokenId,
    shutdown: watch::Receiver<bool>,
    tokens: watch::Receiver<u64>,
}

impl Guard {
    fn new(state: &AppState, token: TokenId) -> Self {
        Self {
            state: state.clone(),
            token,
            shutdown: state.shutdown_signal(),
            tokens: state.tokens().changes(),
        }
    }

    /// Whether the stream may go on: no shutdown, and the token still valid.
    fn holds(&self) -> bool {
        !*self.shutdown.borrow() && self.state.tokens().holds(&self.token)
    }

    /// Resolves once the stream must end.
    async fn ended(&mut self) {
        loop {
            // Marked seen before looking, so a change after the look wakes the wait below.
            self.shutdown.borrow_and_update();
            self.tokens.borrow_and_update();
            if !self.holds() {
                return;
            }
            let gone = tokio::select! {
                changed = self.shutdown.changed() => changed.is_err(),
                changed = self.tokens.changed() => changed.is_err(),
            };
            if gone {
                return;
            }
        }
    }
}

/// The `text/event-stream` response of `feed`, which ends when `guard` says so.
fn respond<F: Feed>(feed: F, guard: Guard) -> Response {
    let events = stream::unfold((feed, guard), |(mut feed, mut guard)| async move {
        let next = tokio::select! {
            biased;
            () = guard.ended() => None,
            event = feed.next() => event,
        };
        // Asked again once the event is in hand: a revocation that landed while the feed was
        // reading must keep what was written after it from going out, also when the token
        // index's follower has not seen it yet (the index is caught up with the log first).
        if next.is_some() {
            crate::auth::catch_up_tokens(&guard.state).await;
        }
        next.filter(|_| guard.holds())
            .map(|event| (Ok::<Event, Infallible>(event), (feed, guard)))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response();
    // Tell buffering proxies (nginx) to pass events on as they come.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// What to do with a failed read of the subscription: end quietly when the log closed,
/// otherwise tell the client once and end.
fn read_error(error: &ReadError) -> Option<Event> {
    if matches!(error, ReadError::Closed) {
        return None;
    }
    tracing::error!(%error, "a live stream could not read the log");
    Some(error_event("reading the log failed; reconnect to resume"))
}

/// The one `event: error` (without an id) a stream sends before it ends on a failure.
fn error_event(message: &str) -> Event {
    Event::default()
        .event("error")
        .data(json!({"code": "internal", "message": message}).to_string())
}

/// The JSON of a recorded event (without its payload), its time written in `zone` (the
/// calendar's).
fn event_json(r: &RecordedEvent, zone: &Zone) -> Value {
    json!({
        "position": r.position.get(),
        "version": r.version.get(),
        "stream": r.stream.as_str(),
        "type": r.event_type.as_str(),
        "schema_version": r.schema_version,
        "recorded_at": zone.format(r.recorded_at),
        "actor": {
            "id": r.actor.id.as_str(),
            "role": r.actor.role.as_str(),
            "unit_id": r.actor.unit.as_str(),
        },
        "event_id": r.event_id.to_string(),
        "correlation_id": r.correlation_id.to_string(),
        "hash": r.hash.to_hex(),
    })
}

/// An SSE event: `id`, `event` = the type, `data` = `data`.
fn sse_event(id: u64, recorded: &RecordedEvent, data: &Value) -> Event {
    Event::default()
        .id(id.to_string())
        .event(recorded.event_type.as_str())
        .data(data.to_string())
}

// ---------------------------------------------------------------------------------------------
// Replays: capped per connection, and per token at once

/// How long a client should wait before it reconnects after `event: resume` (the SSE `retry`
/// field, which an EventSource obeys): it paces a long replay.
const RESUME_RETRY: Duration = Duration::from_secs(1);

/// A replay yields the runtime thread after this many events read, so that one connection
/// catching up cannot hold a thread others need.
const REPLAY_YIELD_EVERY: usize = 256;

/// The history a connection replays before it follows live: the events up to `until` (the
/// head, or the case's version, when it connected), of which it may read `left` more.
struct Replay {
    until: u64,
    left: usize,
    max: usize,
    /// The id of the last event read: where the client resumes when the cap is reached.
    last: u64,
    read: usize,
    /// Held while replaying (unit streams): counts against the token's replays.
    _permit: Option<ReplayPermit>,
}

impl Replay {
    fn new(state: &AppState, until: u64, permit: Option<ReplayPermit>) -> Self {
        let max = state.0.config.stream_replay_max.max(1);
        Self {
            until,
            left: max,
            max,
            last: 0,
            read: 0,
            _permit: permit,
        }
    }

    /// Whether the connection has read all it may before reaching `until`.
    fn capped(&self) -> bool {
        self.left == 0
    }

    /// Counts the event with id `id` as read; `true` when it was the last of the history.
    async fn read(&mut self, id: u64) -> bool {
        self.left = self.left.saturating_sub(1);
        self.last = id;
        self.read += 1;
        if self.read.is_multiple_of(REPLAY_YIELD_EVERY) {
            tokio::task::yield_now().await;
        }
        id >= self.until
    }

    /// The last event of a capped connection: its id is where to resume (the client's
    /// EventSource keeps it as the Last-Event-ID it reconnects with, after `retry`).
    fn resume_event(&self) -> Event {
        Event::default()
            .event("resume")
            .id(self.last.to_string())
            .retry(RESUME_RETRY)
            .data(
                json!({
                    "resume_after": self.last,
                    "history_until": self.until,
                    "message": format!(
                        "this connection replayed {} events, the most one may; reconnect with Last-Event-ID: {} to go on",
                        self.max, self.last
                    ),
                })
                .to_string(),
            )
    }
}

/// How many unit streams of each token are replaying history now.
#[derive(Debug, Default)]
pub(crate) struct Replays {
    running: Mutex<HashMap<TokenId, usize>>,
}

impl Replays {
    /// Counts one more replay of `token` unless it has `max` running.
    fn start(&self, token: &TokenId, max: usize) -> bool {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let count = running.entry(token.clone()).or_insert(0);
        if *count >= max {
            return false;
        }
        *count += 1;
        true
    }

    fn finish(&self, token: &TokenId) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = running.get_mut(token) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                running.remove(token);
            }
        }
    }
}

/// One running replay of a token; counted until dropped (the replay reached the head, or the
/// stream ended).
struct ReplayPermit {
    state: AppState,
    token: TokenId,
}

impl ReplayPermit {
    /// # Errors
    /// 429 when the token has as many replays running as the service allows.
    fn take(state: &AppState, token: &TokenId) -> ApiResult<Self> {
        let max = state.0.config.stream_replays_per_token;
        if !state.0.replays.start(token, max) {
            let mut error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("this token has {max} event streams replaying history already; wait until one reaches the head, or connect without history"),
            );
            error.retry_after = Some(RESUME_RETRY.as_secs().max(1));
            return Err(error);
        }
        Ok(Self {
            state: state.clone(),
            token: token.clone(),
        })
    }
}

impl Drop for ReplayPermit {
    fn drop(&mut self) {
        self.state.0.replays.finish(&self.token);
    }
}

// ---------------------------------------------------------------------------------------------
// One case

struct CaseFeed {
    state: AppState,
    acting: Acting,
    case: CaseId,
    /// The case's state as of the newest event folded (at connection: as the engine had it).
    current: Option<CaseState>,
    subscription: StreamSubscription,
    /// The history still to replay, if any.
    replay: Option<Replay>,
    /// The org chart as of `org_version` of its stream: who may see the case is judged on it.
    org: OrgChart,
    org_version: Option<Version>,
    /// The org stream after `org_version`: a change of the chart is judged when it commits,
    /// not only when the case next moves.
    org_subscription: StreamSubscription,
    ended: bool,
}

/// What a case feed waits for.
enum CaseNext {
    Case(Result<RecordedEvent, ReadError>),
    Org(Result<RecordedEvent, ReadError>),
}

impl Feed for CaseFeed {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if self.ended {
                return None;
            }
            if let Some(replay) = self.replay.as_ref().filter(|r| r.capped()) {
                self.ended = true;
                return Some(replay.resume_event());
            }
            // Org changes first: when both are ready, the chart is brought up to date before
            // a case event is judged on it.
            let next = tokio::select! {
                biased;
                org = self.org_subscription.next_async() => CaseNext::Org(org),
                case = self.subscription.next_async() => CaseNext::Case(case),
            };
            match next {
                CaseNext::Org(Ok(recorded)) => {
                    self.fold_org(&recorded);
                    if !self.visible() {
                        // The chart changed under the caller (their grant was taken away, the
                        // case's units moved out of their subtree): nothing more goes out.
                        self.ended = true;
                    }
                }
                CaseNext::Org(Err(error)) | CaseNext::Case(Err(error)) => {
                    self.ended = true;
                    return read_error(&error);
                }
                CaseNext::Case(Ok(recorded)) => {
                    if let Some(replay) = &mut self.replay {
                        if replay.read(recorded.version.get()).await {
                            self.replay = None;
                        }
                    }
                    return self.case_event(&recorded).await;
                }
            }
        }
    }
}

impl CaseFeed {
    /// Whether the caller may see the case as the feed has it now (the case's `may_see`).
    fn visible(&self) -> bool {
        Case::may_see(&self.current, &self.acting, &self.org)
    }

    /// Folds an org event the chart does not have yet.
    fn fold_org(&mut self, recorded: &RecordedEvent) {
        if self.org_version.is_some_and(|v| recorded.version <= v) {
            return;
        }
        match recorded.decode::<OrgEvent>() {
            Ok(event) => {
                Org::apply(
                    &mut self.org,
                    &event,
                    &Fold {
                        version: recorded.version,
                        definitions: &self.state.engine().definitions(),
                    },
                );
                self.org_version = Some(recorded.version);
            }
            Err(error) => {
                tracing::warn!(position = %recorded.position, %error, "an org event does not decode");
            }
        }
    }

    async fn case_event(&mut self, recorded: &RecordedEvent) -> Option<Event> {
        let event = match recorded.decode::<CaseEvent>() {
            Ok(event) => Some(event),
            Err(error) => {
                tracing::warn!(case = %self.case, position = %recorded.position, %error, "a case event does not decode");
                None
            }
        };
        let known = self.current.as_ref().and_then(|s| s.version);
        if let Some(event) = event
            .as_ref()
            .filter(|_| known.is_none_or(|v| recorded.version > v))
        {
            // An event after the state the scope was checked on. The org subscription may not
            // have read an org change committed before it yet: bring the chart up to the log
            // first, and send nothing if the caller may not see the case even before it.
            if let Err(error) = fold_org(&self.state, &mut self.org, &mut self.org_version).await {
                self.ended = true;
                return Some(error_event(&error.message));
            }
            if !self.visible() {
                self.ended = true;
                return None;
            }
            // Fold it, and end the stream after it if the caller may no longer see the case
            // (a handover: the units it leaves see the event that hands it on).
            let engine = self.state.engine();
            Case::apply(
                &mut self.current,
                event,
                &Fold {
                    version: recorded.version,
                    definitions: &engine.definitions(),
                },
            );
            if !self.visible() {
                self.ended = true;
            }
        }
        let mut data = event_json(recorded, self.state.engine().calendar().zone());
        data["case"] = json!(self.case.to_string());
        if let Some(event) = &event {
            data["summary"] = json!(summarize(event, self.state.engine().calendar().zone()));
        }
        if let Some(state) = &self.current {
            if state.version == Some(recorded.version) {
                data["lead_unit_id"] = json!(state.lead.as_str());
                data["stage"] = json!(state.stage);
            }
        }
        Some(sse_event(recorded.version.get(), recorded, &data))
    }
}

// ---------------------------------------------------------------------------------------------
// A unit's subtree

struct UnitFeed {
    state: AppState,
    acting: Acting,
    /// The subtree's root.
    root: UnitId,
    /// The org chart as of `org_version` of its stream.
    org: OrgChart,
    org_version: Option<Version>,
    subscription: Subscription,
    /// Every case passed so far, as of the last of its events passed (slimmed).
    cases: HashMap<CaseId, CaseState>,
    /// The unit of every directive part passed so far.
    parts: HashMap<StreamId, UnitId>,
    /// The history still to replay, if the client asked for any.
    replay: Option<Replay>,
    ended: bool,
}

/// What a stream id names.
enum StreamKind {
    Case(CaseId),
    Directive(DirectiveId),
    Part(DirectiveId, u32),
    Org,
    Other,
}

fn kind_of(stream: &StreamId) -> StreamKind {
    if let Some(id) = CaseId::of_stream(stream) {
        StreamKind::Case(id)
    } else if let Some((id, index)) = DirectiveId::of_part_stream(stream) {
        StreamKind::Part(id, index)
    } else if let Some(id) = DirectiveId::of_stream(stream) {
        StreamKind::Directive(id)
    } else if *stream == org::org_stream() {
        StreamKind::Org
    } else {
        StreamKind::Other
    }
}

/// A case's state without what deciding an event never needs (title, description, field
/// values, merged duplicates), to keep a connection's memory small.
fn slim(mut state: CaseState) -> CaseState {
    state.title = String::new();
    state.description = String::new();
    state.fields.clear();
    state.duplicates = Vec::new();
    state
}

impl Feed for UnitFeed {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if self.ended {
                return None;
            }
            // The cap counts events read, not sent: a quiet unit on a long log costs the same
            // scan as a busy one.
            if let Some(replay) = self.replay.as_ref().filter(|r| r.capped()) {
                self.ended = true;
                return Some(replay.resume_event());
            }
            let recorded = match self.subscription.next_async().await {
                Ok(recorded) => recorded,
                Err(error) => {
                    self.ended = true;
                    return read_error(&error);
                }
            };
            if let Some(replay) = &mut self.replay {
                if replay.read(recorded.position.get()).await {
                    // Caught up: live from here, and no longer counted as a replay.
                    self.replay = None;
                }
            }
            if let Some(data) = self.decide(&recorded).await {
                return Some(sse_event(recorded.position.get(), &recorded, &data));
            }
        }
    }
}

impl UnitFeed {
    /// The event's JSON when it concerns the subtree; `None` to skip it.
    async fn decide(&mut self, recorded: &RecordedEvent) -> Option<Value> {
        match kind_of(&recorded.stream) {
            // Directives go to the roles the directive routes serve, as those routes do.
            StreamKind::Part(..) | StreamKind::Directive(_)
                if !Policy::Roles(org::roles::ACT_FOR_UNITS).allows(Some(&self.acting)) =>
            {
                None
            }
            StreamKind::Case(id) => self.case_event(id, recorded).await,
            StreamKind::Part(id, index) => self.part_event(id, index, recorded).await,
            StreamKind::Directive(id) => self.directive_event(id, recorded),
            StreamKind::Org => {
                self.org_event(recorded);
                if !may_follow(&self.org, &self.acting, &self.root) {
                    // The unit left the caller's scope, or their grant went: the stream is no
                    // longer theirs to read, and ends (a new connection is refused 404).
                    self.ended = true;
                }
                None
            }
            StreamKind::Other => None,
        }
    }

    /// Whether the case, as `state` has it, concerns the subtree and the caller may see it.
    fn case_concerns(&self, state: &CaseState) -> bool {
        case::concerns_subtree(state, &self.root, &self.org)
            && case::case_visible(state, &self.acting, &self.org)
    }

    async fn case_event(&mut self, id: CaseId, recorded: &RecordedEvent) -> Option<Value> {
        let event = match recorded.decode::<CaseEvent>() {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(case = %id, position = %recorded.position, %error, "a case event does not decode; not sent");
                return None;
            }
        };
        let before = match self.cases.remove(&id) {
            Some(state) => Some(state),
            None => match recorded.version.prev() {
                None => None,
                // First met in the middle of its stream: its state before this event.
                Some(prev) => {
                    // Read as the system: whether the caller sees it is this feed's own
                    // judgement, event by event, below.
                    let system = Acting::system(self.root.clone());
                    let loaded = self
                        .state
                        .blocking(move |engine| engine.case_at_version(&system, id, prev))
                        .await;
                    match loaded {
                        Ok(Ok(state)) => Some(slim(state)),
                        Ok(Err(error)) => {
                            tracing::warn!(case = %id, %error, "a case could not be loaded; its event is not sent");
                            return None;
                        }
                        Err(error) => {
                            tracing::warn!(case = %id, error = %error.message, "a case could not be loaded; its event is not sent");
                            return None;
                        }
                    }
                }
            },
        };
        let concerned_before = before.as_ref().is_some_and(|s| self.case_concerns(s));
        let mut after = before;
        Case::apply(
            &mut after,
            &event,
            &Fold {
                version: recorded.version,
                definitions: &self.state.engine().definitions(),
            },
        );
        let after = after.map(slim);
        let concerned_after = after.as_ref().is_some_and(|s| self.case_concerns(s));
        let lead = after.as_ref().map(|s| s.lead.as_str().to_owned());
        if let Some(after) = after {
            self.cases.insert(id, after);
        }
        if !(concerned_before || concerned_after) {
            return None;
        }
        let mut data = event_json(recorded, self.state.engine().calendar().zone());
        data["case"] = json!(id.to_string());
        data["summary"] = json!(summarize(&event, self.state.engine().calendar().zone()));
        if let Some(lead) = lead {
            data["lead_unit_id"] = json!(lead);
        }
        Some(data)
    }

    async fn part_event(
        &mut self,
        id: DirectiveId,
        index: u32,
        recorded: &RecordedEvent,
    ) -> Option<Value> {
        let event = match recorded.decode::<PartEvent>() {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(directive = %id, position = %recorded.position, %error, "a directive part event does not decode; not sent");
                return None;
            }
        };
        let unit = match (self.parts.get(&recorded.stream), &event) {
            (Some(unit), _) => unit.clone(),
            (None, PartEvent::Assigned(assigned)) => assigned.part.unit.clone(),
            // First met after its PartAssigned: read that one event.
            (None, _) => self.part_unit(&recorded.stream).await?,
        };
        self.parts.insert(recorded.stream.clone(), unit.clone());
        if !directive::concerns_subtree(&unit, &self.root, &self.acting, &self.org) {
            return None;
        }
        let mut data = event_json(recorded, self.state.engine().calendar().zone());
        data["directive"] = json!(id.to_string());
        data["part"] = json!(index);
        data["unit_id"] = json!(unit.as_str());
        if let Some(summary) = part_summary(&event, self.state.engine().calendar().zone()) {
            data["summary"] = json!(summary);
        }
        Some(data)
    }

    /// The unit of a directive part, from the `PartAssigned` that opens its stream.
    async fn part_unit(&self, stream: &StreamId) -> Option<UnitId> {
        let first = self
            .state
            .engine()
            .log()
            .read_stream_async(stream.clone(), Version::FIRST, 1)
            .await;
        let first = match first {
            Ok(mut events) if !events.is_empty() => events.swap_remove(0),
            Ok(_) => return None,
            Err(error) => {
                tracing::warn!(%stream, %error, "a directive part could not be read; its event is not sent");
                return None;
            }
        };
        match first.decode::<PartEvent>() {
            Ok(PartEvent::Assigned(assigned)) => Some(assigned.part.unit),
            _ => {
                tracing::warn!(%stream, "a directive part does not open with PartAssigned; its events are not sent");
                None
            }
        }
    }

    fn directive_event(&self, id: DirectiveId, recorded: &RecordedEvent) -> Option<Value> {
        let Ok(DirectiveEvent::Issued(issued)) = recorded.decode::<DirectiveEvent>() else {
            return None;
        };
        if !directive::concerns_subtree(&issued.issued_by, &self.root, &self.acting, &self.org) {
            return None;
        }
        let mut data = event_json(recorded, self.state.engine().calendar().zone());
        data["directive"] = json!(id.to_string());
        data["unit_id"] = json!(issued.issued_by.as_str());
        data["summary"] = json!(format!(
            "directive issued at {} to {} units: {}",
            issued.issued_by,
            issued.parts.len(),
            issued.title
        ));
        Some(data)
    }

    /// Keeps the org chart current: folds an org event the chart does not have yet.
    fn org_event(&mut self, recorded: &RecordedEvent) {
        if self.org_version.is_some_and(|v| recorded.version <= v) {
            return;
        }
        match recorded.decode::<OrgEvent>() {
            Ok(event) => {
                Org::apply(
                    &mut self.org,
                    &event,
                    &Fold {
                        version: recorded.version,
                        definitions: &self.state.engine().definitions(),
                    },
                );
                self.org_version = Some(recorded.version);
            }
            Err(error) => {
                tracing::warn!(position = %recorded.position, %error, "an org event does not decode");
            }
        }
    }
}

/// A one-line description of a directive part's event, a time written in `zone`.
fn part_summary(event: &PartEvent, zone: &Zone) -> Option<String> {
    Some(match event {
        PartEvent::Assigned(e) => format!("part {} assigned to {}", e.part.index, e.part.unit),
        PartEvent::Acknowledged(e) if e.note.is_empty() => "acknowledged".to_owned(),
        PartEvent::Acknowledged(e) => format!("acknowledged: {}", e.note),
        PartEvent::Reported(e) => format!("reported done: {}", e.note),
        PartEvent::DeadlineSet(e) => format!(
            "deadline {} set: report by {}",
            e.seq,
            zone.format(e.due_at)
        ),
        PartEvent::DeadlineMet(e) => format!("deadline {} met", e.seq),
        PartEvent::DeadlineMissed(e) => format!("deadline {} MISSED", e.seq),
        PartEvent::DeadlineStepReached(e) => {
            format!("deadline {}: {} → {}", e.seq, e.step.as_str(), e.unit)
        }
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            LAST_EVENT_ID,
            HeaderValue::from_str(value).expect("a header value"),
        );
        headers
    }

    #[test]
    fn last_event_id_is_a_decimal_number_or_absent() {
        assert_eq!(last_event_id(&HeaderMap::new()).ok(), Some(None));
        assert_eq!(last_event_id(&headers("")).ok(), Some(None));
        assert_eq!(last_event_id(&headers(" 42 ")).ok(), Some(Some(42)));
        assert_eq!(last_event_id(&headers("0")).ok(), Some(Some(0)));
        for bad in ["abc", "-1", "+1", "1.5", "99999999999999999999999", "0x10"] {
            let error = last_event_id(&headers(bad)).expect_err(bad);
            assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST);
            assert_eq!(error.field.as_deref(), Some(LAST_EVENT_ID));
        }
    }

    #[test]
    fn replays_are_counted_per_token_and_released() {
        let replays = Replays::default();
        let a = TokenId::of_hash(&crate::auth::hash_token("cft_a"));
        let b = TokenId::of_hash(&crate::auth::hash_token("cft_b"));
        assert!(replays.start(&a, 2));
        assert!(replays.start(&a, 2));
        assert!(!replays.start(&a, 2), "a third at once is over the cap");
        assert!(replays.start(&b, 2), "another token has its own count");
        replays.finish(&a);
        assert!(replays.start(&a, 2), "a finished replay frees its place");
        assert!(!replays.start(&a, 2));
    }

    #[test]
    fn history_is_bounded_by_the_head_and_the_window() {
        assert!(within_history(0, 0, 10, "since").is_ok());
        assert!(within_history(5, 20, 15, "since").is_ok());
        let past = within_history(21, 20, 100, "since").expect_err("past the head");
        assert_eq!(past.field.as_deref(), Some("since"));
        let back = within_history(4, 20, 15, LAST_EVENT_ID).expect_err("too far back");
        assert_eq!(back.field.as_deref(), Some(LAST_EVENT_ID));
        assert!(back.message.contains("from 5 on"), "{}", back.message);
    }

    #[test]
    fn stream_ids_are_told_apart() {
        let case = CaseId::parse("0192f3a0-0000-7000-8000-000000000001").expect("uuid");
        assert!(matches!(kind_of(&case.stream()), StreamKind::Case(c) if c == case));
        let directive = DirectiveId::parse("0192f3a0-0000-7000-8000-000000000002").expect("uuid");
        assert!(matches!(
            kind_of(&directive.stream()),
            StreamKind::Directive(d) if d == directive
        ));
        assert!(matches!(
            kind_of(&directive.part_stream(7)),
            StreamKind::Part(d, 7) if d == directive
        ));
        assert!(matches!(kind_of(&org::org_stream()), StreamKind::Org));
        let other = StreamId::new("list-x").expect("valid");
        assert!(matches!(kind_of(&other), StreamKind::Other));
    }
}
