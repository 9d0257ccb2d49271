//! The Open311 requests model (`open311_requests`) on a real log and read-model store: cases
//! opened (with and without a place) and handled through the engine and the built-in
//! workflows, run by a `Runner`, and checked against the engine's own state of each case.
//!
//! Guards against rows that lag the case (status, notes, agency, deadline, update time),
//! filters that leak (ids, services, the date window's bounds, status), pages that skip or
//! repeat when requests arrive, calls that look at unbounded numbers of rows, and a model whose
//! rebuild differs from what it built incrementally.

use crate::common;
use civicflow_core::{EventStore, SledReadModels};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{acting, role, unit, Scratch};
use civicflow_core::domain::case::{CaseEvent, CaseOpened, CaseState, Channel, Place};
use civicflow_core::domain::fields::{FieldValue, Fields};
use civicflow_core::domain::org::{Acting, Tier};
use civicflow_core::domain::workflow::{DefinitionRef, DefinitionRegistry, WorkflowId};
use civicflow_core::engine::{Command, Engine, EngineConfig, Outcome, Requester};
use civicflow_core::readmodel::{Namespace, ReadModelStore};
use civicflow_core::vault::{ContactDetails, MasterKey};
use civicflow_core::{
    Actor, ActorId, AppendRequest, CaseId, Clock, CorrelationId, Durability, ExpectedVersion,
    ManualClock, NewEvent, SledLogConfig, Timestamp, Version,
};
use civicflow_projections::models::open311_requests::{
    self, Open311Requests, Query, RequestRow, RequestStatus, NUMBERED_LOOK_AT_MAX,
};
use civicflow_projections::models::page::{Cursor, Page, LOOK_AT_MAX};
use civicflow_projections::{models, Projection, ProjectionError, Runner, RunnerOptions, View};

const WAIT: Duration = Duration::from_secs(60);

fn fields(pairs: &[(&str, FieldValue)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn text(s: &str) -> FieldValue {
    FieldValue::Text(s.into())
}

fn workflow(id: &str) -> WorkflowId {
    WorkflowId::new(id).expect("valid workflow id")
}

/// Monday 2026-03-02 09:00 in Asia/Shanghai: a plain working day.
fn monday_morning() -> Timestamp {
    Timestamp::from_unix_seconds(1_772_413_200)
}

fn runner_on(
    log: &Arc<dyn EventStore>,
    store: Arc<dyn ReadModelStore>,
    batch: usize,
    rows_in_memory: usize,
) -> Runner {
    let definitions = Arc::new(DefinitionRegistry::built_in());
    Runner::start(
        log.clone(),
        store,
        vec![Box::new(Open311Requests::new(definitions)) as Box<dyn Projection>],
        RunnerOptions {
            batch_events_max: batch,
            rows_in_memory_max: rows_in_memory,
            idle_wait: Duration::from_millis(5),
            ..RunnerOptions::default()
        },
    )
    .expect("runner starts")
}

/// An engine on a manual clock with a small org chart, and a runner with the model.
struct Rig {
    scratch: Scratch,
    clock: ManualClock,
    engine: Engine,
    store: Arc<dyn ReadModelStore>,
    runner: Option<Runner>,
}

impl Rig {
    fn new(name: &str) -> Self {
        let scratch = Scratch::new(&format!("open311-{name}"));
        let clock = ManualClock::new(monday_morning());
        let engine = Engine::open(
            EngineConfig::new(scratch.0.join("engine"))
                .clock(Arc::new(clock.clone()))
                .master_key(MasterKey::generate().expect("randomness"))
                .definitions(DefinitionRegistry::built_in())
                .durability(Durability::Flush),
        )
        .expect("engine opens");
        build_chart(&engine);
        let store = Arc::new(SledReadModels::open(scratch.0.join("rm")).expect("store"));
        let runner = Some(runner_on(
            engine.log(),
            store.clone(),
            RunnerOptions::default().batch_events_max,
            RunnerOptions::default().rows_in_memory_max,
        ));
        Self {
            scratch,
            clock,
            engine,
            store,
            runner,
        }
    }

    fn runner(&self) -> &Runner {
        self.runner.as_ref().expect("a runner runs")
    }

    fn view(&self) -> View<'_> {
        self.runner().wait_until_caught_up(WAIT).expect("caught up");
        self.runner().view(open311_requests::NAME).expect("view")
    }

    fn row(&self, case: CaseId) -> RequestRow {
        open311_requests::get(&self.view(), case)
            .expect("read")
            .expect("a request row")
    }

    fn open_with(
        &self,
        who: &Acting,
        workflow_id: &str,
        at: &str,
        title: &str,
        description: &str,
        place: Option<Place>,
    ) -> CaseId {
        let field = match workflow_id {
            "service-request" => vec![("category", FieldValue::Choice("other".into()))],
            "consumer-dispute" => vec![("kind", FieldValue::Choice("quality".into()))],
            "one-stop-errand" => vec![("errand", FieldValue::Choice("business_licence".into()))],
            _ => vec![],
        };
        let requester = (who.role.as_str() == "resident").then(|| {
            Requester::New(
                ContactDetails::default()
                    .with_name("周敏")
                    .expect("valid")
                    .with_phone("138 0000 1234")
                    .expect("valid"),
            )
        });
        let Outcome::Case { case, .. } = self
            .engine
            .submit(
                who,
                Command::OpenCase {
                    workflow: workflow(workflow_id),
                    version: None,
                    unit: unit(at),
                    title: title.into(),
                    description: description.into(),
                    fields: fields(&field),
                    requester,
                    channel: Channel::Open311,
                    place: place.map(Box::new),
                },
            )
            .unwrap_or_else(|e| panic!("open {workflow_id}: {e}"))
        else {
            panic!("a case outcome")
        };
        case
    }

    fn open(&self, who: &Acting, workflow_id: &str, at: &str, title: &str) -> CaseId {
        self.open_with(who, workflow_id, at, title, "", None)
    }

    fn act(&self, who: &Acting, case: CaseId, action: &str, f: &[(&str, FieldValue)]) {
        self.engine
            .submit(
                who,
                Command::Act {
                    case,
                    action: action.into(),
                    fields: fields(f),
                    expected_version: None,
                },
            )
            .unwrap_or_else(|e| panic!("{action} on {case}: {e}"));
    }

    fn dispatch(&self, who: &Acting, case: CaseId, to: &str) {
        self.act(
            who,
            case,
            "dispatch",
            &[("unit", FieldValue::Unit(unit(to)))],
        );
    }

    fn reply(&self, who: &Acting, case: CaseId, result: &str) {
        self.act(
            who,
            case,
            "reply",
            &[
                ("outcome", FieldValue::Choice("resolved".into())),
                ("result", text(result)),
            ],
        );
    }

    fn state(&self, case: CaseId) -> CaseState {
        self.engine.case(&admin(), case).expect("case").state
    }

    fn advance_minutes(&self, minutes: u64) {
        self.clock.advance(Duration::from_secs(minutes * 60));
    }

    /// The row agrees with the engine's state of the case.
    fn assert_follows(&self, case: CaseId) -> RequestRow {
        let row = self.row(case);
        let state = self.state(case);
        assert_eq!(row.id, case);
        assert_eq!(row.service_code, state.workflow.id);
        assert_eq!(row.workflow(), state.workflow);
        assert_eq!(row.stage, state.stage, "stage of {case}");
        assert_eq!(row.closed, state.closed, "status of {case}");
        assert_eq!(row.agency_responsible, state.lead, "agency of {case}");
        assert_eq!(
            row.expected_at,
            state.deadline.as_ref().map(|d| d.due_at),
            "expected_at of {case}"
        );
        assert_eq!(row.requested_at, opened_at(&self.engine, case));
        let place = state.place.unwrap_or_default();
        assert_eq!(
            (
                row.lat,
                row.long,
                &row.address,
                &row.address_id,
                &row.media_url
            ),
            (
                place.lat,
                place.long,
                &place.address,
                &place.address_id,
                &place.media_url
            )
        );
        row
    }
}

fn admin() -> Acting {
    acting("wang.admin", "community_admin", "tonghui")
}
fn grid1() -> Acting {
    acting("li.grid1", "grid_worker", "grid-1")
}
fn grid2() -> Acting {
    acting("zhao.grid2", "grid_worker", "grid-2")
}
fn resident() -> Acting {
    acting("zhou.resident", "resident", "tonghui")
}

fn build_chart(engine: &Engine) {
    let units = [
        ("tonghui", "通惠社区", Tier::Community, None),
        ("grid-1", "第一网格", Tier::Grid, Some("tonghui")),
        ("grid-2", "第二网格", Tier::Grid, Some("tonghui")),
        (
            "market-regulation",
            "市场监管所",
            Tier::Department,
            Some("tonghui"),
        ),
    ];
    let people = [
        ("wang.admin", "community_admin", "tonghui"),
        ("li.grid1", "grid_worker", "grid-1"),
        ("zhao.grid2", "grid_worker", "grid-2"),
        ("zhou.resident", "resident", "tonghui"),
    ];
    common::build_org(engine, &units, &people);
}

/// The `recorded_at` of a case's first event.
fn opened_at(engine: &Engine, case: CaseId) -> Timestamp {
    engine
        .log()
        .read_stream(&case.stream(), Version::FIRST, 1)
        .expect("read")
        .first()
        .expect("opened")
        .recorded_at
}

fn ids(rows: &[RequestRow]) -> Vec<CaseId> {
    rows.iter().map(|r| r.id).collect()
}

/// Every request `query` lists, following cursors, `limit` at a time.
fn list_all(view: &View<'_>, query: &Query, limit: usize) -> Vec<CaseId> {
    let mut out = Vec::new();
    let mut page = Page::first(limit);
    loop {
        let got = open311_requests::list(view, query, &page).expect("list");
        assert!(got.items.len() <= limit);
        out.extend(ids(&got.items));
        match got.next {
            Some(c) => page = Page::after(c.to_string().parse().expect("cursor parses"), limit),
            None => return out,
        }
    }
}

fn place() -> Place {
    Place {
        lat: Some(29.306_6),
        long: Some(120.075_1),
        address: Some("义乌市稠城街道通惠社区东门".into()),
        address_id: Some("yw-th-0001".into()),
        media_url: Some("https://photos.example.org/lamp.jpg".into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Rows

#[test]
fn a_request_row_follows_the_case_through_the_loop() {
    let rig = Rig::new("loop");
    let a = rig.open_with(
        &resident(),
        "service-request",
        "tonghui",
        "路灯不亮",
        "小区东门的路灯坏了三天",
        Some(place()),
    );
    let row = rig.assert_follows(a);
    assert_eq!(row.service_code.as_str(), "service-request");
    assert_eq!(row.status(), RequestStatus::Open);
    assert_eq!(row.status().as_str(), "open");
    assert_eq!(row.status_notes, None);
    assert_eq!(row.agency_responsible, unit("tonghui"));
    assert_eq!(row.description, "小区东门的路灯坏了三天");
    assert_eq!(row.updated_at, row.requested_at);
    assert!(row.expected_at.is_some(), "the received stage's deadline");
    assert_eq!(row.lat, Some(29.306_6));
    assert_eq!(
        row.media_url.as_deref(),
        Some("https://photos.example.org/lamp.jpg")
    );
    let due_received = row.expected_at;

    // Dispatched: grid 1 is responsible, the dispatched stage's deadline runs.
    rig.advance_minutes(10);
    rig.dispatch(&admin(), a, "grid-1");
    let row = rig.assert_follows(a);
    assert_eq!(row.agency_responsible, unit("grid-1"));
    assert_ne!(row.expected_at, due_received, "the deadline moved on");
    assert_eq!(row.updated_at, rig.clock.now());

    rig.advance_minutes(10);
    rig.act(&grid1(), a, "sign_for", &[]);
    let signed = rig.assert_follows(a);
    assert_eq!(signed.updated_at, rig.clock.now());

    // An urge is internal: no note, and nothing shown changes.
    rig.advance_minutes(10);
    rig.act(&admin(), a, "urge", &[("note", text("请尽快处理"))]);
    let row = rig.assert_follows(a);
    assert_eq!(row.status_notes, None);
    assert_eq!(
        row, signed,
        "an urge changes nothing shown, not even updated_at"
    );

    // The reply is the first answer to the requester.
    rig.advance_minutes(10);
    rig.reply(&grid1(), a, "路灯已更换");
    let row = rig.assert_follows(a);
    assert_eq!(row.status_notes.as_deref(), Some("路灯已更换"));
    assert_eq!(row.updated_at, rig.clock.now());

    // The return visit's note replaces it.
    rig.advance_minutes(10);
    rig.act(
        &admin(),
        a,
        "return_visit",
        &[
            ("rating", FieldValue::Rating(5)),
            ("comment", text("已回访，居民满意")),
        ],
    );
    let row = rig.assert_follows(a);
    assert_eq!(row.status_notes.as_deref(), Some("已回访，居民满意"));

    // Closed: no deadline runs, the notes stay.
    rig.advance_minutes(10);
    rig.act(&grid1(), a, "close", &[]);
    let row = rig.assert_follows(a);
    assert_eq!(row.status(), RequestStatus::Closed);
    assert_eq!(row.status().as_str(), "closed");
    assert_eq!(row.expected_at, None);
    assert_eq!(row.updated_at, rig.clock.now());
    assert_eq!(row.status_notes.as_deref(), Some("已回访，居民满意"));

    // Reopened: open again, back at the community, the old answer gone.
    rig.advance_minutes(10);
    rig.act(&admin(), a, "reopen", &[("reason", text("灯又坏了"))]);
    let row = rig.assert_follows(a);
    assert_eq!(row.status(), RequestStatus::Open);
    assert_eq!(row.agency_responsible, unit("tonghui"));
    assert_eq!(row.status_notes, None);
    assert!(row.expected_at.is_some());
    assert_eq!(row.updated_at, rig.clock.now());
    // The place and description never change.
    assert_eq!(row.address.as_deref(), place().address.as_deref());
    assert_eq!(row.description, "小区东门的路灯坏了三天");
}

#[test]
fn rows_without_a_place_a_description_or_a_reply_action() {
    let rig = Rig::new("plain");
    // A consumer dispute without a description or a place: the title stands in, no notes
    // ever (the workflow has no reply action; its notes and agreements are not answers).
    let d = rig.open(&grid1(), "consumer-dispute", "grid-1", "退货纠纷");
    let row = rig.assert_follows(d);
    assert_eq!(row.description, "退货纠纷");
    assert_eq!(
        (
            row.lat,
            row.long,
            row.address,
            row.address_id,
            row.media_url
        ),
        (None, None, None, None, None)
    );
    rig.advance_minutes(5);
    rig.act(
        &grid1(),
        d,
        "mediate_at_grid",
        &[
            ("outcome", FieldValue::Choice("agreement".into())),
            ("agreement", text("商家退款")),
        ],
    );
    rig.advance_minutes(5);
    rig.act(&grid1(), d, "close", &[("rating", FieldValue::Rating(4))]);
    let row = rig.assert_follows(d);
    assert!(row.closed);
    assert_eq!(row.status_notes, None);
    assert_eq!(row.updated_at, rig.clock.now());

    // A place without coordinates: an address only.
    let s = rig.open_with(
        &admin(),
        "service-request",
        "tonghui",
        "井盖松动",
        "   ",
        Some(Place {
            address: Some("工人北路 12 号".into()),
            ..Place::default()
        }),
    );
    let row = rig.assert_follows(s);
    assert_eq!(row.description, "井盖松动", "a blank description is empty");
    assert_eq!((row.lat, row.long), (None, None));
    assert_eq!(row.address.as_deref(), Some("工人北路 12 号"));

    // A return visit without a comment keeps the reply's text.
    rig.dispatch(&admin(), s, "grid-2");
    rig.act(&grid2(), s, "sign_for", &[]);
    rig.reply(&grid2(), s, "已加固");
    rig.act(
        &grid2(),
        s,
        "return_visit",
        &[("rating", FieldValue::Rating(3))],
    );
    let row = rig.assert_follows(s);
    assert_eq!(row.status_notes.as_deref(), Some("已加固"));
    assert_eq!(
        open311_requests::get(&rig.view(), CaseId::from_bytes([7; 16])).expect("read"),
        None
    );
}

// ---------------------------------------------------------------------------------------------
// Filters

#[test]
fn every_filter_of_get_requests() {
    let rig = Rig::new("filters");
    let s1 = rig.open(&admin(), "service-request", "tonghui", "s1");
    rig.advance_minutes(10);
    let d1 = rig.open(&grid1(), "consumer-dispute", "grid-1", "d1");
    rig.advance_minutes(10);
    let s2 = rig.open(&resident(), "service-request", "tonghui", "s2");
    rig.advance_minutes(10);
    let e1 = rig.open(&grid1(), "one-stop-errand", "grid-1", "e1");
    rig.advance_minutes(10);
    let d2 = rig.open(&resident(), "consumer-dispute", "tonghui", "d2");
    rig.advance_minutes(10);
    let s3 = rig.open(&grid2(), "service-request", "grid-2", "s3");
    rig.advance_minutes(10);
    rig.act(&resident(), s2, "withdraw", &[]);
    rig.act(&resident(), d2, "withdraw", &[]);
    let view = rig.view();
    let all = |q: &Query| list_all(&view, q, 1000);
    let t = |c: CaseId| opened_at(&rig.engine, c);
    let micros = |ts: Timestamp, d: i64| Timestamp::from_unix_micros(ts.as_unix_micros() + d);

    // Newest first.
    assert_eq!(all(&Query::all()), [s3, d2, e1, s2, d1, s1]);

    // Ids override every other filter, in the order given, unknown ids and repeats skipped.
    let unknown = CaseId::from_bytes([9; 16]);
    let by_ids = Query {
        ids: Some(vec![d1, unknown, s3, d1, s1]),
        service_codes: vec!["one-stop-errand".into()],
        start: Some(t(e1)),
        end: Some(t(e1)),
        status: Some(RequestStatus::Closed),
    };
    assert_eq!(all(&by_ids), [d1, s3, s1]);
    assert_eq!(all(&Query::ids([])), Vec::<CaseId>::new());

    // Service codes: one, several (merged by time), unknown, not a code at all, repeated.
    assert_eq!(all(&Query::all().services(["consumer-dispute"])), [d2, d1]);
    assert_eq!(
        all(&Query::all().services(["service-request", "one-stop-errand"])),
        [s3, e1, s2, s1]
    );
    assert_eq!(
        all(&Query::all().services(["parking"])),
        Vec::<CaseId>::new()
    );
    assert_eq!(
        all(&Query::all().services(["Not A Code\0"])),
        Vec::<CaseId>::new()
    );
    assert_eq!(
        all(&Query::all().services(["service-request", "service-request", "nope"])),
        [s3, s2, s1]
    );

    // Status.
    assert_eq!(
        all(&Query::all().status(RequestStatus::Open)),
        [s3, e1, d1, s1]
    );
    assert_eq!(all(&Query::all().status(RequestStatus::Closed)), [d2, s2]);
    assert_eq!(
        all(&Query::all()
            .services(["service-request", "one-stop-errand"])
            .status(RequestStatus::Closed)),
        [s2]
    );

    // The date window: both ends inclusive, to the microsecond.
    let window = |start, end| all(&Query::all().between(start, end));
    assert_eq!(window(Some(t(s2)), Some(t(d2))), [d2, e1, s2]);
    assert_eq!(window(Some(micros(t(s2), 1)), Some(t(d2))), [d2, e1]);
    assert_eq!(window(Some(t(s2)), Some(micros(t(d2), -1))), [e1, s2]);
    assert_eq!(window(Some(t(s2)), None), [s3, d2, e1, s2]);
    assert_eq!(window(None, Some(t(d1))), [d1, s1]);
    assert_eq!(window(Some(micros(t(s3), 1)), None), Vec::<CaseId>::new());
    assert_eq!(window(None, Some(micros(t(s1), -1))), Vec::<CaseId>::new());
    assert_eq!(
        window(
            Some(Timestamp::from_unix_micros(i64::MIN)),
            Some(Timestamp::from_unix_micros(i64::MAX))
        ),
        [s3, d2, e1, s2, d1, s1]
    );
    // Window, services and status together.
    assert_eq!(
        all(&Query::all()
            .services(["service-request", "consumer-dispute"])
            .between(Some(t(d1)), Some(t(s3)))
            .status(RequestStatus::Open)),
        [s3, d1]
    );
    assert_eq!(
        all(&Query::all()
            .services(["service-request"])
            .between(Some(t(s1)), Some(t(s2)))),
        [s2, s1]
    );

    // The limit.
    let first = open311_requests::list(&view, &Query::all(), &Page::first(2)).expect("list");
    assert_eq!(ids(&first.items), [s3, d2]);
    assert!(first.next.is_some());
    let zero = open311_requests::list(&view, &Query::all(), &Page::first(0)).expect("list");
    assert_eq!(ids(&zero.items), [s3], "a limit of 0 is read as 1");
}

#[test]
fn requests_made_at_the_same_time_are_ordered_by_id() {
    let rig = Rig::new("ties");
    // The clock stands still: the same requested_at for all, newest first by id, descending.
    let mut cases: Vec<CaseId> = (0..5)
        .map(|i| rig.open(&admin(), "service-request", "tonghui", &format!("t{i}")))
        .collect();
    cases.sort();
    cases.reverse();
    let view = rig.view();
    assert_eq!(list_all(&view, &Query::all(), 1000), cases);
    assert_eq!(list_all(&view, &Query::all(), 2), cases);
    assert_eq!(
        list_all(&view, &Query::all().services(["service-request"]), 2),
        cases
    );
    let t = opened_at(&rig.engine, cases[0]);
    assert_eq!(
        list_all(&view, &Query::all().between(Some(t), Some(t)), 3),
        cases
    );
}

// ---------------------------------------------------------------------------------------------
// Pages

#[test]
fn pages_are_stable_when_requests_arrive_and_page_numbers_match_cursors() {
    let rig = Rig::new("pages");
    let services = ["service-request", "consumer-dispute", "one-stop-errand"];
    let mut opened = Vec::new();
    for i in 0..9 {
        let who = if i % 3 == 1 { grid1() } else { admin() };
        let at = if i % 3 == 1 { "grid-1" } else { "tonghui" };
        opened.push(rig.open(&who, services[i % 3], at, &format!("r{i}")));
        rig.advance_minutes(3);
    }
    let newest_first: Vec<CaseId> = opened.iter().rev().copied().collect();
    let view = rig.view();
    assert_eq!(list_all(&view, &Query::all(), 1000), newest_first);

    // Cursor paging, with requests filed between the pages: they are newer than everything
    // listed, so later pages neither repeat nor skip anything.
    for query in [
        Query::all(),
        Query::all().services(["service-request", "consumer-dispute"]),
        Query::all()
            .services(["consumer-dispute", "one-stop-errand"])
            .status(RequestStatus::Open),
    ] {
        let before = list_all(&rig.view(), &query, 1000);
        let mut seen = Vec::new();
        let mut page = Page::first(2);
        loop {
            let got = open311_requests::list(&rig.view(), &query, &page).expect("list");
            seen.extend(ids(&got.items));
            let Some(next) = got.next else { break };
            rig.advance_minutes(1);
            rig.open(&admin(), "service-request", "tonghui", "late");
            rig.open(&grid1(), "consumer-dispute", "grid-1", "late");
            page = Page::after(next, 2);
        }
        assert_eq!(seen, before, "{query:?}");
        let unique: BTreeSet<CaseId> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len());
    }

    // Page numbers give the same slices as cursors (a fixed snapshot of the rows).
    let view = rig.view();
    for query in [
        Query::all(),
        Query::all().services(["service-request", "one-stop-errand"]),
        Query::all().status(RequestStatus::Open),
        Query::ids(opened.iter().copied()),
    ] {
        let everything = list_all(&view, &query, 1000);
        for size in [1, 2, 4, 1000] {
            let mut number = 1;
            let mut pages = Vec::new();
            loop {
                let got =
                    open311_requests::list_numbered(&view, &query, number, size).expect("page");
                if got.items.is_empty() {
                    assert_eq!(got.next, None);
                    break;
                }
                let expected: Vec<CaseId> = everything
                    .iter()
                    .skip((number - 1) * size)
                    .take(size)
                    .copied()
                    .collect();
                assert_eq!(ids(&got.items), expected, "page {number} of {size}");
                // The cursor of a numbered page goes on with the next page.
                if let Some(next) = got.next.clone() {
                    let after = open311_requests::list(&view, &query, &Page::after(next, size))
                        .expect("list");
                    let following: Vec<CaseId> = everything
                        .iter()
                        .skip(number * size)
                        .take(size)
                        .copied()
                        .collect();
                    assert_eq!(ids(&after.items), following);
                }
                pages.extend(ids(&got.items));
                number += 1;
            }
            assert_eq!(pages, everything, "{query:?} in pages of {size}");
        }
    }
    assert!(matches!(
        open311_requests::list_numbered(&view, &Query::all(), 0, 10),
        Err(ProjectionError::Query { field: "page", .. })
    ));
    let past = open311_requests::list_numbered(&view, &Query::all(), 1000, 1000).expect("page");
    assert!(past.items.is_empty() && past.next.is_none());
    // An absurd page number is an answer, never an overflow (also filtered by services).
    for query in [Query::all(), Query::all().services(["service-request"])] {
        match open311_requests::list_numbered(&view, &query, usize::MAX, usize::MAX) {
            Ok(page) => assert!(page.items.is_empty()),
            Err(ProjectionError::Query { field, .. }) => assert_eq!(field, "page"),
            Err(other) => panic!("{other}"),
        }
    }

    // Ids page in the order given.
    let some: Vec<CaseId> = vec![opened[4], opened[0], opened[7], opened[2], opened[5]];
    assert_eq!(list_all(&view, &Query::ids(some.clone()), 2), some);

    // A cursor of another kind of list is refused.
    let time_cursor = open311_requests::list(&view, &Query::all(), &Page::first(1))
        .expect("list")
        .next
        .expect("more");
    let id_cursor = open311_requests::list(&view, &Query::ids(some.clone()), &Page::first(1))
        .expect("list")
        .next
        .expect("more");
    for (query, cursor) in [
        (Query::ids(some), time_cursor),
        (Query::all(), id_cursor.clone()),
        (Query::all().services(["service-request"]), id_cursor),
        (Query::all(), Cursor::from_bytes(vec![1, 2, 3])),
    ] {
        assert!(matches!(
            open311_requests::list(&view, &query, &Page::after(cursor, 5)),
            Err(ProjectionError::Query {
                field: "cursor",
                ..
            })
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Bounded work

fn opened_event(case: CaseId, at: Timestamp) -> CaseEvent {
    CaseEvent::Opened(CaseOpened {
        case,
        workflow: DefinitionRef {
            id: workflow("service-request"),
            version: 1,
        },
        stage: "received".into(),
        unit: unit("tonghui"),
        title: format!("case {case}"),
        description: String::new(),
        fields: Fields::new(),
        requester: None,
        filed_by: ActorId::new("li.grid1").expect("valid"),
        filed_as: role("grid_worker"),
        channel: Channel::Staff,
        at,
    })
}

#[test]
fn a_call_looks_at_a_bounded_number_of_rows() {
    let scratch = Scratch::new("open311-bounded");
    let clock = ManualClock::new(monday_morning());
    let log = SledLogConfig::new(scratch.0.join("log"))
        .clock(Arc::new(clock.clone()))
        .durability(Durability::Flush)
        .open()
        .expect("log opens");
    // More open requests than one call looks at, and one closed... which never comes: a
    // status filter that matches nothing still returns, with a cursor, and the cursors lead
    // to the end.
    let count = LOOK_AT_MAX + 50;
    let completions: Vec<_> = (0..count)
        .map(|i| {
            let n = u32::try_from(i).expect("small");
            let mut raw = [0u8; 16];
            raw[..4].copy_from_slice(&n.to_be_bytes());
            let case = CaseId::from_bytes(raw);
            log.append_async(AppendRequest::to_stream(
                case.stream(),
                ExpectedVersion::Any,
                vec![NewEvent::from_domain(&opened_event(case, clock.now())).expect("encodes")],
                Actor::parse("li.grid1", "grid_worker", "grid-1").expect("valid"),
                CorrelationId::new_v7(Timestamp::EPOCH),
            ))
        })
        .collect();
    for completion in completions {
        completion.wait().expect("append").expect("no conflict");
    }
    let store = Arc::new(SledReadModels::open(scratch.0.join("rm")).expect("store"));
    let runner = runner_on(
        &(Arc::new(log.clone()) as Arc<dyn EventStore>),
        store,
        65_536,
        50_000,
    );
    runner.wait_until_caught_up(WAIT).expect("caught up");
    let view = runner.view(open311_requests::NAME).expect("view");

    for query in [
        Query::all().status(RequestStatus::Closed),
        Query::all()
            .services(["service-request"])
            .status(RequestStatus::Closed),
    ] {
        let first = open311_requests::list(&view, &query, &Page::first(10)).expect("list");
        assert!(first.items.is_empty());
        let cursor = first.next.expect("cut short, with a cursor");
        let second = open311_requests::list(&view, &query, &Page::after(cursor, 10)).expect("list");
        assert!(second.items.is_empty());
        assert_eq!(second.next, None, "the rest fits in one call");
    }
    // Unfiltered, a full page at once.
    let page = open311_requests::list(&view, &Query::all(), &Page::first(1000)).expect("list");
    assert_eq!(page.items.len(), 1000);
    assert!(page.next.is_some());
    // A numbered page deeper than a call may look is refused; one within is served.
    let deep = NUMBERED_LOOK_AT_MAX / 1000 + 1;
    assert!(
        deep * 1000 > count,
        "the test needs fewer rows than the numbered cap"
    );
    let last = open311_requests::list_numbered(&view, &Query::all(), count / 1000 + 1, 1000)
        .expect("the last page");
    assert_eq!(last.items.len(), count % 1000);
    assert!(matches!(
        open311_requests::list_numbered(
            &view,
            &Query::all().status(RequestStatus::Closed),
            1,
            10
        ),
        Ok(ref p) if p.items.is_empty() && p.next.is_none()
    ));

    // Ids: more unknown ids than a call looks at, then a known one.
    let mut many: Vec<CaseId> = (0..LOOK_AT_MAX + 5)
        .map(|i| {
            let mut raw = [0xffu8; 16];
            raw[..8].copy_from_slice(&(i as u64).to_be_bytes());
            CaseId::from_bytes(raw)
        })
        .collect();
    let known = CaseId::from_bytes([0; 16]);
    many.push(known);
    let query = Query::ids(many);
    let first = open311_requests::list(&view, &query, &Page::first(10)).expect("list");
    assert!(first.items.is_empty());
    let second = open311_requests::list(
        &view,
        &query,
        &Page::after(first.next.expect("cut short"), 10),
    )
    .expect("list");
    assert_eq!(ids(&second.items), [known]);
    assert_eq!(second.next, None);
}

// ---------------------------------------------------------------------------------------------
// Rebuild

fn rows_of(store: &dyn ReadModelStore) -> Vec<(Vec<u8>, Vec<u8>)> {
    let ns = Namespace::new(open311_requests::NAME, 1).expect("valid");
    store.scan(&ns, b"", None, usize::MAX).expect("scan")
}

#[test]
fn a_rebuild_equals_the_model_built_incrementally() {
    let mut rig = Rig::new("rebuild");
    // Small batches and a tiny memory bound, restarted between chunks of history.
    rig.runner = Some(runner_on(rig.engine.log(), rig.store.clone(), 3, 4));
    let mut cases = Vec::new();
    for round in 0..4 {
        let a = rig.open_with(
            &resident(),
            "service-request",
            "tonghui",
            &format!("a{round}"),
            "描述",
            Some(place()),
        );
        let b = rig.open(&grid1(), "consumer-dispute", "grid-1", &format!("b{round}"));
        rig.advance_minutes(7);
        rig.dispatch(
            &admin(),
            a,
            if round % 2 == 0 { "grid-1" } else { "grid-2" },
        );
        let handler = if round % 2 == 0 { grid1() } else { grid2() };
        rig.act(&handler, a, "sign_for", &[]);
        if round % 2 == 1 {
            rig.reply(&handler, a, "已处理");
            rig.act(
                &admin(),
                a,
                "return_visit",
                &[("rating", FieldValue::Rating(4))],
            );
            rig.act(&admin(), a, "close", &[]);
        }
        if round == 3 {
            rig.act(&admin(), a, "reopen", &[("reason", text("不满意"))]);
        }
        // A referral crosses the tree to a department (the field's `reach`); grid 2, a
        // sibling, is out of grid 1's reach since issue 13.
        rig.act(
            &grid1(),
            b,
            "refer",
            &[("unit", FieldValue::Unit(unit("market-regulation")))],
        );
        rig.advance_minutes(11);
        cases.extend([a, b]);
        // Stop wherever the runner is and start it again.
        rig.runner = None;
        rig.runner = Some(runner_on(rig.engine.log(), rig.store.clone(), 1 + round, 4));
    }
    rig.runner().wait_until_caught_up(WAIT).expect("caught up");
    for case in &cases {
        rig.assert_follows(*case);
    }
    let incremental = rows_of(&rig.store);
    // Three rows per case: the request, its id and its service entry.
    assert_eq!(incremental.len(), 3 * cases.len());

    let rebuilt = Arc::new(SledReadModels::open(rig.scratch.0.join("rebuilt")).expect("store"));
    let runner = runner_on(rig.engine.log(), rebuilt.clone(), 8192, 50_000);
    runner.wait_until_caught_up(WAIT).expect("caught up");
    assert_eq!(
        rows_of(&rebuilt),
        incremental,
        "a rebuild writes the same rows"
    );
}

#[test]
fn the_model_is_registered_with_the_others() {
    let names = models::names();
    let all = models::all(
        Arc::new(DefinitionRegistry::built_in()),
        civicflow_core::calendar::Zone::shanghai(),
    );
    assert_eq!(names.len(), all.len());
    let index = names
        .iter()
        .position(|n| *n == open311_requests::NAME)
        .expect("named");
    assert_eq!(all[index].name(), open311_requests::NAME);
    assert_eq!(all[index].version(), 1);
}
