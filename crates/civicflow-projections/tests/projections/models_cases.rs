//! The case board, unit inboxes, the overdue report and the 三率 on a real log and read-model
//! store: driven through the engine (or, where exact times matter, with domain events appended
//! directly), run by a `Runner`, and checked against what the events imply.
//!
//! Guards against pages that skip or repeat rows when cases arrive, filters that leak other
//! subtrees, inbox entries left behind when a case moves on, overdue deadlines the report
//! misses, and rates counted for the wrong unit or the wrong (UTC instead of Shanghai) month.

use crate::common;
use civicflow_core::{EventStore as _, SledReadModels};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{acting, role, unit, Scratch};
use civicflow_core::calendar::{Span, Zone};
use civicflow_core::domain::case::{
    ActionTaken, CaseEvent, CaseOpened, Channel, DeadlineMet, DeadlineMissed, LeadAssigned,
    SatisfactionRated,
};
use civicflow_core::domain::directive::{DirectiveKind, PartEvent};
use civicflow_core::domain::fields::{FieldKind, FieldSpec, FieldValue, Fields};
use civicflow_core::domain::org::{roles, Acting, Tier};
use civicflow_core::domain::workflow::{
    Action, Definition, DefinitionRef, DefinitionRegistry, OpenRule, Scope, Stage, WorkflowId,
};
use civicflow_core::engine::{Command, Engine, EngineConfig, Outcome, Requester};
use civicflow_core::vault::{ContactDetails, MasterKey};
use civicflow_core::{
    Actor, ActorId, AppendRequest, CaseId, Clock, CorrelationId, DirectiveId, Durability,
    ExpectedVersion, ManualClock, NewEvent, Role, SledLog, SledLogConfig, Timestamp, UnitId,
    Version,
};
use civicflow_projections::models::case_board::{self, CaseBoard, CaseFilter, CaseRow, CaseStatus};
use civicflow_projections::models::overdue::{self, OverdueKind, OverdueReports};
use civicflow_projections::models::page::{Cursor, Page};
use civicflow_projections::models::rates::{self, Rates};
use civicflow_projections::models::unit_inbox::{self, Relation, Subject, UnitInbox};
use civicflow_projections::ProjectionError;
use civicflow_projections::{Projection, Runner, RunnerOptions, View};

const WAIT: Duration = Duration::from_secs(30);

fn fields(pairs: &[(&str, FieldValue)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn workflow(id: &str) -> WorkflowId {
    WorkflowId::new(id).expect("valid workflow id")
}

/// Monday 2026-03-02 09:00 in Asia/Shanghai: a plain working day.
fn monday_morning() -> Timestamp {
    Timestamp::from_unix_seconds(1_772_413_200)
}

/// A workflow with a stage that has no deadline, for the "no deadline sorts last" rule.
fn lost_and_found() -> Definition {
    Definition {
        id: workflow("lost-and-found"),
        version: 1,
        name: "失物招领 lost and found".into(),
        description: String::new(),
        public: true,
        open: OpenRule {
            roles: vec![role(roles::GRID_WORKER)],
            scope: Scope::Any,
            fields: vec![],
        },
        initial_stage: "reported".into(),
        contact_roles: vec![],
        stages: vec![
            Stage {
                id: "reported".into(),
                name: String::new(),
                terminal: false,
                deadline: None,
            },
            Stage {
                id: "returned".into(),
                name: String::new(),
                terminal: true,
                deadline: None,
            },
        ],
        actions: vec![Action {
            id: "hand_back".into(),
            name: String::new(),
            from: vec!["reported".into()],
            to: "returned".into(),
            roles: vec![role(roles::GRID_WORKER)],
            scope: Scope::Subtree,
            fields: vec![FieldSpec::new("note", FieldKind::Text, true)],
            effects: vec![],
        }],
    }
}

fn registry() -> DefinitionRegistry {
    let mut registry = DefinitionRegistry::built_in();
    registry.add(lost_and_found()).expect("valid definition");
    registry
}

/// An engine on a manual clock with the org chart of the tests, a runner with the four
/// models on its log, and the store they write.
struct Rig {
    _scratch: Scratch,
    clock: ManualClock,
    engine: Engine,
    runner: Runner,
}

impl Rig {
    fn new(name: &str) -> Self {
        let scratch = Scratch::new(name);
        let clock = ManualClock::new(monday_morning());
        let engine = Engine::open(
            EngineConfig::new(scratch.0.join("engine"))
                .clock(Arc::new(clock.clone()))
                .master_key(MasterKey::generate().expect("randomness"))
                .definitions(registry())
                .durability(Durability::Flush),
        )
        .expect("engine opens");
        build_chart(&engine);
        let definitions = Arc::new(registry());
        let store = Arc::new(SledReadModels::open(scratch.0.join("rm")).expect("store"));
        let projections: Vec<Box<dyn Projection>> = vec![
            Box::new(CaseBoard::new(definitions.clone())),
            Box::new(UnitInbox::new(definitions)),
            Box::new(OverdueReports::new()),
            Box::new(Rates::new(Zone::shanghai())),
        ];
        let runner = Runner::start(
            engine.log().clone(),
            store,
            projections,
            RunnerOptions::default(),
        )
        .expect("runner starts");
        Self {
            _scratch: scratch,
            clock,
            engine,
            runner,
        }
    }

    fn view(&self, name: &str) -> View<'_> {
        self.runner.wait_until_caught_up(WAIT).expect("caught up");
        self.runner.view(name).expect("view")
    }

    fn open(&self, who: &Acting, workflow_id: &str, at: &str, title: &str) -> CaseId {
        let field = match workflow_id {
            "service-request" => vec![("category", FieldValue::Choice("other".into()))],
            "consumer-dispute" => vec![("kind", FieldValue::Choice("quality".into()))],
            _ => vec![],
        };
        let requester = (who.role.as_str() == roles::RESIDENT).then(|| {
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
                    description: String::new(),
                    fields: fields(&field),
                    requester,
                    channel: Channel::Door,
                    place: None,
                },
            )
            .expect("opened")
        else {
            panic!("a case outcome")
        };
        case
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

    fn state(&self, case: CaseId) -> civicflow_core::domain::case::CaseState {
        self.engine.case(&admin(), case).expect("case").state
    }

    fn advance_minutes(&self, minutes: u64) {
        self.clock.advance(Duration::from_secs(minutes * 60));
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
fn liaison() -> Acting {
    acting("chen.liaison", "enterprise_liaison", "yiwu-heart")
}
fn intime() -> Acting {
    acting("zhou.intime", "enterprise_liaison", "intime")
}
fn resident() -> Acting {
    acting("zhou.resident", "resident", "tonghui")
}

fn build_chart(engine: &Engine) {
    let units = [
        ("tonghui", "通惠社区", Tier::Community, None),
        ("grid-1", "第一网格", Tier::Grid, Some("tonghui")),
        ("grid-2", "第二网格", Tier::Grid, Some("tonghui")),
        ("yiwu-heart", "义乌之心", Tier::Enterprise, Some("grid-1")),
        ("intime", "银泰百货", Tier::Enterprise, Some("grid-2")),
        ("shop-yh-101", "101 茶饮", Tier::Shop, Some("yiwu-heart")),
        ("shop-it-201", "201 服饰", Tier::Shop, Some("intime")),
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
        ("chen.liaison", "enterprise_liaison", "yiwu-heart"),
        ("zhou.intime", "enterprise_liaison", "intime"),
        ("liu.shop101", "shop_owner", "shop-yh-101"),
        ("sun.shop201", "shop_owner", "shop-it-201"),
        ("zhou.resident", "resident", "tonghui"),
        ("qian.officer", "department_officer", "market-regulation"),
    ];
    common::build_org(engine, &units, &people);
}

fn ids(rows: &[CaseRow]) -> Vec<CaseId> {
    rows.iter().map(|r| r.id).collect()
}

fn list_all(view: &View<'_>, filter: &CaseFilter) -> Vec<CaseId> {
    let page = case_board::list(view, filter, &Page::first(100)).expect("list");
    assert!(page.next.is_none(), "everything fits in one page");
    ids(&page.items)
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

#[test]
fn the_board_shows_each_case_as_the_engine_has_it_and_filters_by_subtree() {
    let rig = Rig::new("board");
    // A: the whole loop, led by grid 1 with Yiwu Heart co-handling, rated 5 and closed.
    let a = rig.open(&resident(), "service-request", "tonghui", "路灯不亮");
    rig.advance_minutes(10);
    rig.dispatch(&admin(), a, "grid-1");
    rig.act(&grid1(), a, "sign_for", &[]);
    rig.act(
        &grid1(),
        a,
        "add_co_handler",
        &[("unit", FieldValue::Unit(unit("yiwu-heart")))],
    );
    rig.act(
        &liaison(),
        a,
        "reply",
        &[
            ("outcome", FieldValue::Choice("resolved".into())),
            ("result", FieldValue::Text("修好了".into())),
        ],
    );
    rig.act(&resident(), a, "rate", &[("rating", FieldValue::Rating(5))]);
    rig.act(&grid1(), a, "close", &[]);
    // B: filed at grid 2, dispatched to Intime, waiting to be signed for.
    rig.advance_minutes(10);
    let b = rig.open(&grid2(), "service-request", "grid-2", "占道经营");
    rig.dispatch(&grid2(), b, "intime");
    // C: a consumer dispute accepted at grid 1.
    rig.advance_minutes(10);
    let c = rig.open(&grid1(), "consumer-dispute", "grid-1", "退货纠纷");
    // D: received at the community, not dispatched.
    rig.advance_minutes(10);
    let d = rig.open(&admin(), "service-request", "tonghui", "噪音");

    let view = rig.view(case_board::NAME);
    for case in [a, b, c, d] {
        let state = rig.state(case);
        let row = case_board::get(&view, case)
            .expect("read")
            .expect("on the board");
        assert_eq!(row.id, case);
        assert_eq!(row.workflow, state.workflow);
        assert_eq!(row.title, state.title);
        assert_eq!(row.stage, state.stage);
        assert_eq!(row.closed, state.closed);
        assert_eq!(row.unit, state.unit);
        assert_eq!(row.lead, state.lead);
        assert_eq!(
            row.co_handlers,
            state.co_handlers.iter().cloned().collect::<Vec<_>>()
        );
        assert_eq!(row.due_at, state.deadline.as_ref().map(|d| d.due_at));
        assert_eq!(row.requester, state.requester);
        assert_eq!(row.channel, state.channel);
        assert_eq!(row.rating, state.rating);
        assert_eq!(row.opened_at, opened_at(&rig.engine, case));
        assert_eq!(row.closed_at.is_some(), state.closed);
    }
    let row_a = case_board::get(&view, a).expect("read").expect("a");
    assert!(row_a.closed && row_a.rating == Some(5) && row_a.due_at.is_none());
    assert_eq!(row_a.co_handlers, [unit("yiwu-heart")]);
    assert!(
        row_a.requester.is_some(),
        "the requester's id, never their data"
    );
    let row_b = case_board::get(&view, b).expect("read").expect("b");
    assert_eq!(
        (row_b.stage.as_str(), row_b.lead.as_str()),
        ("dispatched", "intime")
    );
    assert!(row_b.due_at.is_some() && row_b.updated_at >= row_b.opened_at);
    assert_eq!(
        case_board::get(&view, CaseId::from_bytes([7; 16])).expect("read"),
        None
    );

    // Ordered by opened time; filters.
    assert_eq!(list_all(&view, &CaseFilter::all()), [a, b, c, d]);
    assert_eq!(
        list_all(&view, &CaseFilter::all().status(CaseStatus::Open)),
        [b, c, d]
    );
    assert_eq!(
        list_all(&view, &CaseFilter::all().status(CaseStatus::Closed)),
        [a]
    );
    assert_eq!(
        list_all(
            &view,
            &CaseFilter::all().workflow(workflow("consumer-dispute"))
        ),
        [c]
    );
    let org = rig.engine.org();
    let subtree = |root: &str| CaseFilter::all().within(org.subtree(&unit(root)));
    // Grid 1's subtree: A (led by grid 1) and C (filed at grid 1); not B (grid 2's).
    assert_eq!(list_all(&view, &subtree("grid-1")), [a, c]);
    assert_eq!(list_all(&view, &subtree("grid-2")), [b]);
    // Intime leads B; Yiwu Heart co-handles A.
    assert_eq!(list_all(&view, &subtree("intime")), [b]);
    assert_eq!(list_all(&view, &subtree("yiwu-heart")), [a]);
    assert_eq!(
        list_all(&view, &subtree("shop-it-201")),
        Vec::<CaseId>::new()
    );
    assert_eq!(list_all(&view, &subtree("tonghui")), [a, b, c, d]);
    assert_eq!(
        list_all(
            &view,
            &subtree("grid-1")
                .status(CaseStatus::Open)
                .workflow(workflow("consumer-dispute"))
        ),
        [c]
    );
    // Opened in [B, D): B and C.
    let (tb, td) = (opened_at(&rig.engine, b), opened_at(&rig.engine, d));
    assert_eq!(
        list_all(&view, &CaseFilter::all().opened_between(tb, td)),
        [b, c]
    );
    assert_eq!(
        list_all(
            &view,
            &CaseFilter::all().opened_between(tb, Timestamp::from_unix_micros(i64::MAX))
        ),
        [b, c, d]
    );
    // A date range and a cursor together: the later of the two wins.
    let first = case_board::list(&view, &CaseFilter::all(), &Page::first(1)).expect("list");
    assert_eq!(ids(&first.items), [a]);
    let cursor = first.next.expect("more to come");
    let again = case_board::list(
        &view,
        &CaseFilter::all().opened_between(Timestamp::EPOCH, td),
        &Page::after(cursor, 10),
    )
    .expect("list");
    assert_eq!(ids(&again.items), [b, c]);
    // Who filed what, newest first, at most as many as asked for.
    let filed =
        |who: &Acting, limit| case_board::filed_by(&view, &who.actor, limit).expect("filed");
    assert_eq!(filed(&resident(), 10), [a]);
    assert_eq!(filed(&grid2(), 10), [b]);
    assert_eq!(filed(&grid1(), 10), [c]);
    assert_eq!(filed(&admin(), 10), [d]);
    assert!(filed(&intime(), 10).is_empty(), "filed nothing");
    let more = rig.open(&resident(), "service-request", "grid-1", "又一件");
    let view = rig.view(case_board::NAME);
    assert_eq!(
        case_board::filed_by(&view, &resident().actor, 10).expect("filed"),
        [more, a],
        "newest first"
    );
    assert_eq!(
        case_board::filed_by(&view, &resident().actor, 1).expect("filed"),
        [more]
    );
}

// ---------------------------------------------------------------------------------------------
// Direct appends

fn raw_log(dir: &std::path::Path, clock: &ManualClock) -> SledLog {
    SledLogConfig::new(dir)
        .clock(Arc::new(clock.clone()))
        .durability(Durability::Flush)
        .open()
        .expect("log opens")
}

fn append(log: &SledLog, case: CaseId, events: &[CaseEvent]) {
    let request = AppendRequest::to_stream(
        case.stream(),
        ExpectedVersion::Any,
        events
            .iter()
            .map(|e| NewEvent::from_domain(e).expect("encodes"))
            .collect(),
        Actor::parse("li.grid1", "grid_worker", "grid-1").expect("valid"),
        CorrelationId::new_v7(Timestamp::EPOCH),
    );
    log.append(request).expect("append").expect("no conflict");
}

fn opened(case: CaseId, at_unit: &str, at: Timestamp) -> CaseEvent {
    CaseEvent::Opened(CaseOpened {
        case,
        workflow: DefinitionRef {
            id: workflow("service-request"),
            version: 1,
        },
        stage: "received".into(),
        unit: unit(at_unit),
        title: format!("case {case}"),
        description: String::new(),
        fields: Fields::new(),
        requester: None,
        filed_by: ActorId::new("li.grid1").expect("valid"),
        filed_as: role(roles::GRID_WORKER),
        channel: Channel::Staff,
        at,
    })
}

fn start_runner(log: &SledLog, dir: &std::path::Path) -> Runner {
    start_runner_in(log, dir, Zone::shanghai())
}

/// [`start_runner`] with the rates counted in `zone`.
fn start_runner_in(log: &SledLog, dir: &std::path::Path, zone: Zone) -> Runner {
    let definitions = Arc::new(registry());
    let store = Arc::new(SledReadModels::open(dir).expect("store"));
    Runner::start(
        Arc::new(log.clone()),
        store,
        vec![
            Box::new(CaseBoard::new(definitions)),
            Box::new(Rates::new(zone)),
        ],
        RunnerOptions {
            batch_events_max: 7,
            ..RunnerOptions::default()
        },
    )
    .expect("runner starts")
}

#[test]
fn pages_neither_skip_nor_repeat_when_cases_arrive_between_them() {
    let scratch = Scratch::new("pages");
    // The clock stands still: every case has the same opened time, so the order is the case
    // id and new cases land before and after the cursor.
    let clock = ManualClock::new(monday_morning());
    let log = raw_log(&scratch.0.join("log"), &clock);
    let case = |b: u8| CaseId::from_bytes([b; 16]);
    let initial: Vec<u8> = (1..=20).map(|i| i * 10).collect();
    for b in &initial {
        append(&log, case(*b), &[opened(case(*b), "grid-1", clock.now())]);
    }
    let runner = start_runner(&log, &scratch.0.join("rm"));
    runner.wait_until_caught_up(WAIT).expect("caught up");
    // The filed index is in the store: every case of li.grid1, newest first (the same time:
    // case id order, backwards).
    {
        let view = runner.view(case_board::NAME).expect("view");
        let filed = case_board::filed_by(&view, &ActorId::new("li.grid1").expect("valid"), 100)
            .expect("filed");
        let mut expected: Vec<CaseId> = initial.iter().map(|b| case(*b)).collect();
        expected.reverse();
        assert_eq!(filed, expected);
    }
    // And after a restart, from the store alone (no row cached in memory).
    drop(runner);
    let runner = start_runner(&log, &scratch.0.join("rm"));
    runner.wait_until_caught_up(WAIT).expect("caught up");
    {
        let view = runner.view(case_board::NAME).expect("view");
        let filed = case_board::filed_by(&view, &ActorId::new("li.grid1").expect("valid"), 100)
            .expect("filed");
        assert_eq!(
            filed.len(),
            initial.len(),
            "the filed index after a restart"
        );
    }

    let mut seen: Vec<CaseId> = Vec::new();
    let mut cursor: Option<Cursor> = None;
    let mut round = 0u8;
    loop {
        let view = runner.view(case_board::NAME).expect("view");
        let page = case_board::list(
            &view,
            &CaseFilter::all(),
            &Page {
                after: cursor.clone(),
                limit: 6,
            },
        )
        .expect("list");
        assert!(page.items.len() <= 6);
        seen.extend(ids(&page.items));
        // The cursor survives a trip through text.
        cursor = match page.next {
            Some(c) => Some(c.to_string().parse().expect("cursor parses")),
            None => break,
        };
        // Between pages: cases that sort before the cursor, after it, and at the very end.
        round += 1;
        for b in [round, 100 + round * 2 + 1, 250 - round] {
            append(&log, case(b), &[opened(case(b), "grid-2", clock.now())]);
        }
        runner.wait_until_caught_up(WAIT).expect("caught up");
    }
    assert!(round >= 3, "several pages were read");
    // Every case present from the start is there exactly once, in order, and nothing repeats.
    let unique: BTreeSet<CaseId> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no case repeated: {seen:?}");
    for b in &initial {
        assert!(unique.contains(&case(*b)), "case {b} skipped");
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "in key order");
    // Cases added behind the cursor are not seen on this pass; those ahead of it are.
    assert!(!unique.contains(&case(1)), "added before the first cursor");
    assert!(unique.contains(&case(249)), "added at the end");

    // With the clock moving, as in real life, a new case always comes after every page read.
    clock.advance(Duration::from_secs(60));
    let first = case_board::list(
        &runner.view(case_board::NAME).expect("view"),
        &CaseFilter::all(),
        &Page::first(5),
    )
    .expect("list");
    let late = CaseId::from_bytes([0; 16]);
    append(&log, late, &[opened(late, "grid-1", clock.now())]);
    runner.wait_until_caught_up(WAIT).expect("caught up");
    let view = runner.view(case_board::NAME).expect("view");
    let mut rest = Vec::new();
    let mut next = first.next.clone();
    while let Some(c) = next {
        let page = case_board::list(&view, &CaseFilter::all(), &Page::after(c, 7)).expect("list");
        rest.extend(ids(&page.items));
        next = page.next;
    }
    let all = list_all_pages(&view);
    let mut together = ids(&first.items);
    together.extend(rest);
    assert_eq!(together, all, "first page + the rest = everything, once");
    assert_eq!(all.last(), Some(&late), "the newest case comes last");

    // A selective filter still pages without skipping: grid 2's cases, two at a time.
    let grid2: Vec<CaseId> = all
        .iter()
        .copied()
        .filter(|c| {
            case_board::get(&view, *c)
                .expect("read")
                .is_some_and(|r| r.unit == unit("grid-2"))
        })
        .collect();
    let filter = CaseFilter::all().within([unit("grid-2")]);
    let mut paged = Vec::new();
    let mut page = Page::first(2);
    loop {
        let got = case_board::list(&view, &filter, &page).expect("list");
        paged.extend(ids(&got.items));
        match got.next {
            Some(c) => page = Page::after(c, 2),
            None => break,
        }
    }
    assert!(!grid2.is_empty());
    assert_eq!(paged, grid2);
}

fn list_all_pages(view: &View<'_>) -> Vec<CaseId> {
    let mut out = Vec::new();
    let mut page = Page::first(1000);
    loop {
        let got = case_board::list(view, &CaseFilter::all(), &page).expect("list");
        out.extend(ids(&got.items));
        match got.next {
            Some(c) => page = Page::after(c, 1000),
            None => return out,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inbox

fn inbox_subjects(view: &View<'_>, unit_id: &str, role_name: Option<&str>) -> Vec<Subject> {
    let r = role_name.map(role);
    let page =
        unit_inbox::inbox(view, &unit(unit_id), r.as_ref(), &Page::first(100)).expect("inbox");
    assert!(page.next.is_none());
    page.items.iter().map(|i| i.subject).collect()
}

/// The due times of a directive part, from its stream.
fn part_due(engine: &Engine, directive: DirectiveId, index: u32) -> Timestamp {
    engine
        .log()
        .read_stream(&directive.part_stream(index), Version::FIRST, 10)
        .expect("read")
        .iter()
        .find_map(|e| match e.decode::<PartEvent>() {
            Ok(PartEvent::DeadlineSet(set)) => Some(set.due_at),
            _ => None,
        })
        .expect("a deadline")
}

fn part_index(engine: &Engine, directive: DirectiveId, unit_id: &str) -> u32 {
    let state = engine
        .directive(&Acting::system(unit("tonghui")), directive)
        .expect("directive")
        .state;
    state.part_of(&unit(unit_id)).expect("a part").index
}

#[test]
fn a_unit_inbox_is_ordered_by_deadline_and_filtered_by_role() {
    let rig = Rig::new("inbox");
    // P and Q dispatched to grid 1; Q later opened but dispatched first, so due first.
    let p = rig.open(&admin(), "service-request", "tonghui", "P");
    rig.advance_minutes(5);
    let q = rig.open(&admin(), "service-request", "tonghui", "Q");
    rig.advance_minutes(5);
    rig.dispatch(&admin(), q, "grid-1");
    rig.advance_minutes(5);
    rig.dispatch(&admin(), p, "grid-1");
    // R: signed for by grid 1, market regulation co-handles it; five working days.
    let r = rig.open(&admin(), "service-request", "tonghui", "R");
    rig.dispatch(&admin(), r, "grid-1");
    rig.act(&grid1(), r, "sign_for", &[]);
    rig.act(
        &grid1(),
        r,
        "add_co_handler",
        &[("unit", FieldValue::Unit(unit("market-regulation")))],
    );
    // L: a lost-and-found case at grid 1, whose stage has no deadline.
    let l = rig.open(&grid1(), "lost-and-found", "grid-1", "L");
    // A directive from the community: grid 1 has a part, due in 3 working days.
    let Outcome::Directive { directive, .. } = rig
        .engine
        .submit(
            &admin(),
            Command::IssueDirective {
                title: "消费维权宣传".into(),
                body: "Put up the notice.".into(),
                kind: DirectiveKind::ConsumerProtection,
                unit: unit("tonghui"),
                within: Span::WorkingDays(3),
            },
        )
        .expect("issued")
    else {
        panic!("a directive")
    };
    let index = part_index(&rig.engine, directive, "grid-1");
    let part = Subject::Part { directive, index };

    let view = rig.view(unit_inbox::NAME);
    let page = unit_inbox::inbox(&view, &unit("grid-1"), None, &Page::first(100)).expect("inbox");
    let subjects: Vec<Subject> = page.items.iter().map(|i| i.subject).collect();
    // Due order, computed from the engine's own deadlines; L (no deadline) last.
    let due = |case: CaseId| rig.state(case).deadline.expect("running").due_at;
    let mut expected = vec![
        (due(q), Subject::Case(q)),
        (due(p), Subject::Case(p)),
        (due(r), Subject::Case(r)),
        (part_due(&rig.engine, directive, index), part),
    ];
    expected.sort();
    let mut expected: Vec<Subject> = expected.into_iter().map(|(_, s)| s).collect();
    expected.push(Subject::Case(l));
    assert_eq!(subjects, expected);
    assert_eq!(subjects[0], Subject::Case(q), "Q falls due first");
    let items = &page.items;
    assert_eq!(items[0].due_at, Some(due(q)));
    assert_eq!(items.last().map(|i| i.due_at), Some(None));
    // The lead's actions in `dispatched`, with their roles; not the requester's `withdraw`.
    let q_item = &items[0];
    assert_eq!(q_item.relation, Relation::Lead);
    assert_eq!(q_item.stage, "dispatched");
    assert_eq!(q_item.title, "Q");
    let actions: Vec<&str> = q_item.actions.ids().collect();
    assert_eq!(
        actions,
        [
            "sign_for",
            "send_back",
            "reassign",
            "urge_sign_for",
            "merge"
        ]
    );
    let reassign: BTreeSet<&Role> = q_item.actions.roles_of("reassign").into_iter().collect();
    assert_eq!(
        reassign,
        BTreeSet::from([&role(roles::COMMUNITY_ADMIN), &role(roles::GRID_WORKER)])
    );
    let expanded = q_item.actions.expanded();
    assert_eq!(expanded.len(), 5);
    assert_eq!(expanded[0].action, "sign_for");
    assert!(expanded[0].roles.contains(&role(roles::SHOP_OWNER)));
    assert!(
        !expanded[2].roles.contains(&role(roles::SHOP_OWNER)),
        "reassign"
    );
    let part_item = items.iter().find(|i| i.subject == part).expect("part");
    assert_eq!(part_item.title, "消费维权宣传");
    assert_eq!(
        part_item.actions.ids().collect::<Vec<_>>(),
        ["acknowledge", "report"]
    );

    // Role filter: a shop owner could sign for P and Q and reply on R and report the
    // directive, but not hand back L; a department officer has no directive to answer;
    // a volunteer nothing at all.
    let without_l: Vec<Subject> = expected[..4].to_vec();
    assert_eq!(
        inbox_subjects(&view, "grid-1", Some(roles::SHOP_OWNER)),
        without_l
    );
    assert_eq!(
        inbox_subjects(&view, "grid-1", Some(roles::DEPARTMENT_OFFICER)),
        without_l
            .iter()
            .copied()
            .filter(|s| *s != part)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        inbox_subjects(&view, "grid-1", Some(roles::GRID_WORKER)),
        expected
    );
    assert!(inbox_subjects(&view, "grid-1", Some(roles::VOLUNTEER)).is_empty());

    // The co-handler sees R with the `handler` actions only.
    let market = unit_inbox::inbox(&view, &unit("market-regulation"), None, &Page::first(10))
        .expect("inbox");
    assert_eq!(market.items.len(), 1);
    assert_eq!(market.items[0].subject, Subject::Case(r));
    assert_eq!(market.items[0].relation, Relation::CoHandler);
    assert_eq!(
        market.items[0].actions.ids().collect::<Vec<_>>(),
        ["add_co_handler", "reply"]
    );
    // "grid-1" is not a prefix of another unit's inbox, nor the reverse.
    assert!(inbox_subjects(&view, "grid", None).is_empty());

    // Paging two at a time gives the same list.
    let mut paged = Vec::new();
    let mut page = Page::first(2);
    loop {
        let got = unit_inbox::inbox(&view, &unit("grid-1"), None, &page).expect("inbox");
        paged.extend(got.items.iter().map(|i| i.subject));
        match got.next {
            Some(c) => page = Page::after(c, 2),
            None => break,
        }
    }
    assert_eq!(paged, expected);
    // A cursor from another unit's inbox is refused.
    let foreign = unit_inbox::inbox(&view, &unit("grid-1"), None, &Page::first(1))
        .expect("inbox")
        .next
        .expect("more");
    assert!(matches!(
        unit_inbox::inbox(&view, &unit("grid-2"), None, &Page::after(foreign, 1)),
        Err(ProjectionError::Query {
            field: "cursor",
            ..
        })
    ));

    // The cases move on: Q is signed for (new deadline, five working days), P goes to
    // Intime, L is handed back; grid 1 acknowledges the directive.
    rig.act(&grid1(), q, "sign_for", &[]);
    rig.act(
        &admin(),
        p,
        "reassign",
        &[
            ("unit", FieldValue::Unit(unit("intime"))),
            ("reason", FieldValue::Text("their floor".into())),
        ],
    );
    rig.act(
        &grid1(),
        l,
        "hand_back",
        &[("note", FieldValue::Text("ok".into()))],
    );
    rig.engine
        .submit(
            &grid1(),
            Command::AcknowledgeDirective {
                directive,
                note: String::new(),
            },
        )
        .expect("acknowledged");
    let view = rig.view(unit_inbox::NAME);
    let page = unit_inbox::inbox(&view, &unit("grid-1"), None, &Page::first(100)).expect("inbox");
    let mut expected = [
        (due(q), Subject::Case(q)),
        (due(r), Subject::Case(r)),
        (part_due(&rig.engine, directive, index), part),
    ];
    expected.sort();
    assert_eq!(
        page.items.iter().map(|i| i.subject).collect::<Vec<_>>(),
        expected.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        "no entry left behind at an old due time, P gone, L closed"
    );
    let q_item = page
        .items
        .iter()
        .find(|i| i.subject == Subject::Case(q))
        .expect("q");
    assert_eq!(
        (q_item.stage.as_str(), q_item.due_at),
        ("in_progress", Some(due(q)))
    );
    let part_item = page.items.iter().find(|i| i.subject == part).expect("part");
    assert_eq!(part_item.stage, "acknowledged");
    assert_eq!(part_item.actions.ids().collect::<Vec<_>>(), ["report"]);
    // P is Intime's now, before its own part of the directive.
    assert_eq!(
        inbox_subjects(&view, "intime", None),
        [
            Subject::Case(p),
            Subject::Part {
                directive,
                index: part_index(&rig.engine, directive, "intime")
            }
        ]
    );
    // Reporting the part and closing R's loop empty grid 1's list of those.
    rig.engine
        .submit(
            &grid1(),
            Command::ReportDirective {
                directive,
                note: "done".into(),
            },
        )
        .expect("reported");
    rig.act(
        &grid1(),
        r,
        "reply",
        &[
            ("outcome", FieldValue::Choice("resolved".into())),
            ("result", FieldValue::Text("ok".into())),
        ],
    );
    let view = rig.view(unit_inbox::NAME);
    // R is replied (due in a working day, before Q's five): the lead may visit the requester.
    assert!(due(r) < due(q));
    let page = unit_inbox::inbox(&view, &unit("grid-1"), None, &Page::first(100)).expect("inbox");
    assert_eq!(
        page.items.iter().map(|i| i.subject).collect::<Vec<_>>(),
        [Subject::Case(r), Subject::Case(q)]
    );
    assert_eq!(
        page.items[0].actions.ids().collect::<Vec<_>>(),
        ["return_visit"]
    );
    // The co-handler has nothing left to do on R, but it still co-handles it.
    let market = unit_inbox::inbox(&view, &unit("market-regulation"), None, &Page::first(10))
        .expect("inbox");
    assert_eq!(market.items.len(), 1);
    assert_eq!(market.items[0].stage, "replied");
    assert!(market.items[0].actions.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Overdue

#[test]
fn the_overdue_report_lists_misses_escalations_breaches_and_late_running_deadlines() {
    let rig = Rig::new("overdue");
    // E to Yiwu Heart, G to Intime: neither signs for in time.
    let e = rig.open(&grid1(), "service-request", "grid-1", "E");
    rig.dispatch(&grid1(), e, "yiwu-heart");
    let g = rig.open(&grid2(), "service-request", "grid-2", "G");
    rig.dispatch(&grid2(), g, "intime");
    let e_deadline = rig.state(e).deadline.expect("running");
    let g_deadline = rig.state(g).deadline.expect("running");
    let breach = g_deadline.breach_at.expect("a breach step");
    // The scheduler runs after both breaches: remind, escalate and breach each.
    rig.clock.set(Timestamp::from_unix_micros(
        breach
            .as_unix_micros()
            .max(e_deadline.breach_at.expect("b").as_unix_micros())
            + 60_000_000,
    ));
    let taken = rig.engine.run_due_deadlines().expect("runs");
    assert_eq!(taken.len(), 6, "{taken:?}");
    // Yiwu Heart signs for late: missed.
    rig.act(&liaison(), e, "sign_for", &[]);
    // F to a shop; its deadline passes while the scheduler does not run.
    let f = rig.open(&grid1(), "service-request", "grid-1", "F");
    rig.dispatch(&grid1(), f, "shop-yh-101");
    let f_due = rig.state(f).deadline.expect("running").due_at;
    // A directive from grid 2: Intime and its shop have a part each, due in a working day.
    let Outcome::Directive { directive, .. } = rig
        .engine
        .submit(
            &grid2(),
            Command::IssueDirective {
                title: "安全检查".into(),
                body: "Check the exits.".into(),
                kind: DirectiveKind::SocialStability,
                unit: unit("grid-2"),
                within: Span::WorkingDays(1),
            },
        )
        .expect("issued")
    else {
        panic!("a directive")
    };
    let intime_part = part_index(&rig.engine, directive, "intime");
    let shop_part = part_index(&rig.engine, directive, "shop-it-201");
    let part_due_at = part_due(&rig.engine, directive, intime_part);
    let before_f = Timestamp::from_unix_micros(f_due.as_unix_micros() - 1);
    let after_all = Timestamp::from_unix_micros(
        f_due.as_unix_micros().max(part_due_at.as_unix_micros()) + 60_000_000,
    );
    rig.clock.set(after_all);
    // Intime reports its part late.
    rig.engine
        .submit(
            &intime(),
            Command::ReportDirective {
                directive,
                note: "done".into(),
            },
        )
        .expect("reported");

    let view = rig.view(overdue::NAME);
    let everyone: Vec<UnitId> = rig.engine.org().subtree(&unit("tonghui"));
    let report = overdue::report(&view, &everyone, after_all).expect("report");
    let count = |u: &str| report.counts.get(&unit(u)).copied().expect("counted");
    let c = count("yiwu-heart");
    assert_eq!(
        (c.missed, c.escalated, c.breached, c.running_overdue),
        (1, 1, 1, 0)
    );
    let c = count("intime");
    assert_eq!(
        (c.missed, c.escalated, c.breached, c.running_overdue),
        (1, 1, 1, 0),
        "G escalated and breached (not listed as running); its part missed"
    );
    let c = count("shop-yh-101");
    assert_eq!(
        (c.missed, c.escalated, c.breached, c.running_overdue),
        (0, 0, 0, 1)
    );
    let c = count("shop-it-201");
    assert_eq!(
        (c.missed, c.escalated, c.breached, c.running_overdue),
        (0, 0, 0, 1)
    );
    for quiet in ["tonghui", "grid-1", "grid-2", "market-regulation"] {
        assert_eq!(count(quiet), overdue::OverdueCounts::default(), "{quiet}");
    }
    assert_eq!(report.items.len(), 8, "{:#?}", report.items);
    let item = |kind: OverdueKind, subject: Subject| {
        report
            .items
            .iter()
            .find(|i| i.kind == kind && i.subject == subject)
            .unwrap_or_else(|| panic!("{kind:?} of {subject:?} in {:#?}", report.items))
    };
    let escalated = item(OverdueKind::Escalated, Subject::Case(e));
    assert_eq!(escalated.unit, unit("yiwu-heart"));
    assert_eq!(escalated.to, Some(unit("grid-1")), "escalated one tier up");
    assert_eq!(escalated.stage, "dispatched");
    assert_eq!(escalated.due_at, e_deadline.due_at);
    let breached = item(OverdueKind::Breached, Subject::Case(g));
    assert_eq!(breached.to, Some(unit("grid-2")));
    let missed = item(OverdueKind::Missed, Subject::Case(e));
    assert_eq!(
        (missed.stage.as_str(), missed.due_at),
        ("dispatched", e_deadline.due_at)
    );
    let running = item(OverdueKind::RunningOverdue, Subject::Case(f));
    assert_eq!(
        (running.unit.as_str(), running.due_at, running.at),
        ("shop-yh-101", f_due, None)
    );
    item(
        OverdueKind::Missed,
        Subject::Part {
            directive,
            index: intime_part,
        },
    );
    item(
        OverdueKind::RunningOverdue,
        Subject::Part {
            directive,
            index: shop_part,
        },
    );
    let whens: Vec<Timestamp> = report
        .items
        .iter()
        .map(|i| i.at.unwrap_or(i.due_at))
        .collect();
    assert!(whens.windows(2).all(|w| w[0] <= w[1]), "in time order");

    // Grid 1's subtree: Yiwu Heart and the shop, nothing of grid 2's.
    let grid1_units = rig.engine.org().subtree(&unit("grid-1"));
    let report = overdue::report(&view, &grid1_units, after_all).expect("report");
    assert_eq!(report.items.len(), 4);
    assert!(report
        .items
        .iter()
        .all(|i| i.unit == unit("yiwu-heart") || i.unit == unit("shop-yh-101")));
    // Before F fell due, F is not overdue.
    let report = overdue::report(&view, &grid1_units, before_f).expect("report");
    assert!(report
        .items
        .iter()
        .all(|i| i.kind != OverdueKind::RunningOverdue));
    // Once the scheduler escalates F, it is an escalation, no longer "running overdue".
    rig.engine.run_due_deadlines().expect("runs");
    let view = rig.view(overdue::NAME);
    let report = overdue::report(&view, &grid1_units, after_all).expect("report");
    let shop = report.counts[&unit("shop-yh-101")];
    assert_eq!((shop.escalated, shop.running_overdue), (1, 0));
}

// ---------------------------------------------------------------------------------------------
// Rates

/// A moment in Asia/Shanghai (UTC+8).
fn shanghai(y: i32, mo: u32, d: u32, h: i64, mi: i64) -> Timestamp {
    let date = civicflow_core::calendar::LocalDate::new(y, mo, d).expect("valid date");
    Timestamp::from_unix_seconds(date.days_since_epoch() * 86_400 + h * 3600 + mi * 60 - 8 * 3600)
}

fn action_with_outcome(action: &str, outcome: &str, at: Timestamp) -> CaseEvent {
    CaseEvent::ActionTaken(ActionTaken {
        action: action.into(),
        from: "in_progress".into(),
        to: "replied".into(),
        fields: fields(&[
            ("outcome", FieldValue::Choice(outcome.into())),
            ("result", FieldValue::Text("…".into())),
        ]),
        at,
    })
}

fn met(seq: u32, at: Timestamp) -> CaseEvent {
    CaseEvent::DeadlineMet(DeadlineMet { seq, at })
}

fn missed(seq: u32, at: Timestamp) -> CaseEvent {
    CaseEvent::DeadlineMissed(DeadlineMissed {
        seq,
        at,
        due_at: at,
    })
}

fn lead(to: &str, from: &str) -> CaseEvent {
    CaseEvent::LeadAssigned(LeadAssigned {
        unit: unit(to),
        previous: unit(from),
        by: unit(from),
    })
}

fn rated(rating: u8) -> CaseEvent {
    CaseEvent::SatisfactionRated(SatisfactionRated { rating })
}

#[test]
fn rates_count_months_in_the_zone_they_are_given() {
    // 2026-04-01 04:00 in Shanghai is 2026-03-31 16:00 in New York: April in one, March in
    // the other.
    let t = shanghai(2026, 4, 1, 4, 0);
    for (zone, month, other) in [
        (Zone::shanghai(), "2026-04", "2026-03"),
        (
            Zone::named("America/New_York").expect("a zone"),
            "2026-03",
            "2026-04",
        ),
    ] {
        let scratch = Scratch::new("rates-zone");
        let clock = ManualClock::new(t);
        let log = raw_log(&scratch.0.join("log"), &clock);
        let case = CaseId::from_bytes([9; 16]);
        append(&log, case, &[opened(case, "grid-1", t), missed(1, t)]);
        let runner = start_runner_in(&log, &scratch.0.join("rm"), zone.clone());
        runner.wait_until_caught_up(WAIT).expect("caught up");
        let view = runner.view(rates::NAME).expect("view");
        let counted = rates::month(&view, month).expect("month");
        assert_eq!(counted.len(), 1, "{zone}: {counted:#?}");
        assert_eq!(counted[0].counts.missed, 1, "{zone}");
        assert!(
            rates::month(&view, other).expect("month").is_empty(),
            "{zone}"
        );
    }
}

#[test]
fn rates_count_for_the_lead_of_the_moment_in_shanghai_months_and_rank() {
    let scratch = Scratch::new("rates");
    let clock = ManualClock::new(shanghai(2026, 4, 1, 4, 0));
    let log = raw_log(&scratch.0.join("log"), &clock);
    let at = |t: Timestamp, log: &SledLog, case: CaseId, events: &[CaseEvent]| {
        clock.set(t);
        append(log, case, events);
    };
    let [c1, c2, c3, c4] = [1u8, 2, 3, 4].map(|b| CaseId::from_bytes([b; 16]));

    // Case 4 at a shop: a deadline missed at 2026-04-01 04:00 Shanghai, which is still
    // March 31 in UTC: it counts in April.
    let t = shanghai(2026, 4, 1, 4, 0);
    at(t, &log, c4, &[opened(c4, "shop-x", t), missed(1, t)]);
    // Case 1, filed at grid 1: grid 1 meets its deadline and answers "cannot resolve"; then
    // Intime leads, misses, resolves, and is rated 5.
    let t = shanghai(2026, 4, 10, 10, 0);
    at(
        t,
        &log,
        c1,
        &[
            opened(c1, "grid-1", t),
            met(1, t),
            action_with_outcome("reply", "cannot_resolve", t),
            // An action without an outcome counts nowhere.
            CaseEvent::ActionTaken(ActionTaken {
                action: "dispatch".into(),
                from: "received".into(),
                to: "dispatched".into(),
                fields: fields(&[("unit", FieldValue::Unit(unit("intime")))]),
                at: t,
            }),
            lead("intime", "grid-1"),
        ],
    );
    let t = shanghai(2026, 4, 11, 10, 0);
    at(
        t,
        &log,
        c1,
        &[
            missed(2, t),
            action_with_outcome("reply", "resolved", t),
            rated(5),
        ],
    );
    // Case 2, filed at grid 2, led by Intime: met, "explained", rated 3.
    let t = shanghai(2026, 4, 12, 10, 0);
    at(
        t,
        &log,
        c2,
        &[
            opened(c2, "grid-2", t),
            lead("intime", "grid-2"),
            met(1, t),
            action_with_outcome("reply", "explained", t),
            rated(3),
        ],
    );
    // Case 3 at grid 2: met at 23:50 on April 30 (April), mediated to an agreement at 00:10
    // on May 1 in Shanghai (still April 30 in UTC): May.
    let t = shanghai(2026, 4, 30, 23, 50);
    at(t, &log, c3, &[opened(c3, "grid-2", t), met(1, t)]);
    let t = shanghai(2026, 5, 1, 0, 10);
    at(
        t,
        &log,
        c3,
        &[action_with_outcome("record_mediation", "agreement", t)],
    );

    let runner = start_runner(&log, &scratch.0.join("rm"));
    runner.wait_until_caught_up(WAIT).expect("caught up");
    let view = runner.view(rates::NAME).expect("view");

    let april = rates::month(&view, "2026-04").expect("april");
    let by_unit = |u: &str| {
        april
            .iter()
            .find(|r| r.unit == unit(u))
            .unwrap_or_else(|| panic!("{u} in {april:#?}"))
            .clone()
    };
    assert_eq!(
        april.iter().map(|r| r.unit.as_str()).collect::<Vec<_>>(),
        ["grid-1", "grid-2", "intime", "shop-x"]
    );
    let g1 = by_unit("grid-1");
    assert_eq!(
        g1.counts,
        rates::RateCounts {
            met: 1,
            missed: 0,
            outcomes: 1,
            resolved: 0,
            ratings: 0,
            satisfied: 0
        }
    );
    assert_eq!(
        (
            g1.response_rate,
            g1.resolution_rate,
            g1.satisfaction_rate,
            g1.mean
        ),
        (Some(1.0), Some(0.0), None, Some(0.5))
    );
    let it = by_unit("intime");
    assert_eq!(
        it.counts,
        rates::RateCounts {
            met: 1,
            missed: 1,
            outcomes: 2,
            resolved: 1,
            ratings: 2,
            satisfied: 1
        }
    );
    assert_eq!(
        (
            it.response_rate,
            it.resolution_rate,
            it.satisfaction_rate,
            it.mean
        ),
        (Some(0.5), Some(0.5), Some(0.5), Some(0.5))
    );
    let g2 = by_unit("grid-2");
    assert_eq!((g2.counts.met, g2.counts.outcomes), (1, 0));
    assert_eq!(
        (g2.response_rate, g2.resolution_rate, g2.mean),
        (Some(1.0), None, Some(1.0))
    );
    let shop = by_unit("shop-x");
    assert_eq!(
        (shop.counts.missed, shop.response_rate, shop.mean),
        (1, Some(0.0), Some(0.0))
    );

    let may = rates::month(&view, "2026-05").expect("may");
    assert_eq!(may.len(), 1);
    assert_eq!(may[0].unit, unit("grid-2"));
    assert_eq!((may[0].counts.outcomes, may[0].counts.resolved), (1, 1));
    assert_eq!(may[0].resolution_rate, Some(1.0));
    assert!(
        rates::month(&view, "2026-03").expect("march").is_empty(),
        "months are Shanghai months, not UTC ones"
    );

    // Ranking: grid 2 (1.0); grid 1 and Intime tie at 0.5, by unit id; the shop (0.0).
    let ranking = rates::ranking(&view, "2026-04").expect("ranking");
    assert_eq!(
        ranking
            .iter()
            .map(|r| (r.rank, r.rates.unit.as_str()))
            .collect::<Vec<_>>(),
        [(1, "grid-2"), (2, "grid-1"), (3, "intime"), (4, "shop-x")]
    );
    // Among chosen units, one without figures comes last.
    let among = rates::ranking_among(
        &view,
        "2026-04",
        &[
            unit("grid-3"),
            unit("shop-x"),
            unit("grid-2"),
            unit("grid-1"),
        ],
    )
    .expect("ranking");
    assert_eq!(
        among
            .iter()
            .map(|r| (r.rates.unit.as_str(), r.rates.mean))
            .collect::<Vec<_>>(),
        [
            ("grid-2", Some(1.0)),
            ("grid-1", Some(0.5)),
            ("shop-x", Some(0.0)),
            ("grid-3", None)
        ]
    );
    assert!(rates::month(&view, "2026-4").is_err());
    assert!(rates::month(&view, "2026-13").is_err());

    // The board saw the same cases, each led by whom the events say.
    let board = runner.view(case_board::NAME).expect("view");
    let row = case_board::get(&board, c1).expect("read").expect("c1");
    assert_eq!((row.lead.as_str(), row.rating), ("intime", Some(5)));
}

#[test]
fn the_rates_follow_the_engine_through_a_whole_loop() {
    let rig = Rig::new("rates-engine");
    // A service request: accepted at the community (deadline met by the dispatch), dispatched
    // to grid 1 (met by the sign-for), handled (met by the reply, resolved), rated 4.
    let a = rig.open(&resident(), "service-request", "tonghui", "路灯");
    rig.advance_minutes(10);
    rig.dispatch(&admin(), a, "grid-1");
    rig.advance_minutes(10);
    rig.act(&grid1(), a, "sign_for", &[]);
    rig.advance_minutes(10);
    rig.act(
        &grid1(),
        a,
        "reply",
        &[
            ("outcome", FieldValue::Choice("resolved".into())),
            ("result", FieldValue::Text("ok".into())),
        ],
    );
    rig.act(&resident(), a, "rate", &[("rating", FieldValue::Rating(4))]);
    let view = rig.view(rates::NAME);
    let march = rates::month(&view, "2026-03").expect("march");
    let get = |u: &str| {
        march
            .iter()
            .find(|r| r.unit == unit(u))
            .unwrap_or_else(|| panic!("{u} in {march:#?}"))
            .counts
    };
    // The community's acceptance deadline; grid 1's sign-for, handling and reply deadlines
    // (the reply left `in_progress`, and `replied` was left by the rating).
    assert_eq!(
        get("tonghui"),
        rates::RateCounts {
            met: 1,
            ..Default::default()
        }
    );
    assert_eq!(
        get("grid-1"),
        rates::RateCounts {
            met: 3,
            missed: 0,
            outcomes: 1,
            resolved: 1,
            ratings: 1,
            satisfied: 1
        }
    );
    assert_eq!(march.len(), 2);
}
