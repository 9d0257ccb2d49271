//! Directive progress, shop standing, the three lists and community statistics on a real log
//! and read-model store, driven through the engine (or, for the percentile, with domain
//! events appended directly), each projection run by a `Runner`.
//!
//! Guards against read models that disagree with the engine (a directive roll-up that is not
//! the core's, a standing that is not the core's fold), figures that are not what the events
//! imply (counted twice on reopening, in the UTC year instead of Shanghai's, in the wrong
//! community), a percentile off by one rank, and pages that skip or repeat items when items
//! arrive between two pages.

use civicflow_core::{EventStore as _, SledReadModels};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{acting, unit, Scratch};
use civicflow_core::calendar::{LocalDate, Span, Zone};
use civicflow_core::domain::case::{ActionTaken, CaseEvent, CaseOpened, Channel};
use civicflow_core::domain::directive::DirectiveKind;
use civicflow_core::domain::fields::{FieldValue, Fields};
use civicflow_core::domain::lists::{ListCommand, ListKind};
use civicflow_core::domain::merchants::{self, FlagColour, StandingCommand};
use civicflow_core::domain::org::{Acting, ActorKind, OrgCommand, Tier};
use civicflow_core::domain::workflow::{DefinitionRef, WorkflowId};
use civicflow_core::engine::{Command, Engine, EngineConfig, Outcome};
use civicflow_core::readmodel::ReadModelStore;
use civicflow_core::vault::MasterKey;
use civicflow_core::{
    Actor, ActorId, AppendRequest, CaseId, Clock, CorrelationId, DirectiveId, DomainEvent,
    Durability, EventType, ExpectedVersion, ListItemId, ManualClock, NewEvent, Role, SledLog,
    SledLogConfig, Timestamp,
};
use civicflow_projections::models::community_stats::{
    self, CommunityStats, OrgFigures, Stats, WorkflowStats,
};
use civicflow_projections::models::directive_progress::{self, DirectiveProgress};
use civicflow_projections::models::lists::{self, Lists};
use civicflow_projections::models::page::{Cursor, Page};
use civicflow_projections::models::shop_standing::{self, PointChange, ShopStanding};
use civicflow_projections::ProjectionError;
use civicflow_projections::{Projection, Runner, RunnerOptions};

const WAIT: Duration = Duration::from_secs(30);

fn fields(pairs: &[(&str, FieldValue)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn text(t: &str) -> FieldValue {
    FieldValue::Text(t.to_owned())
}

/// An instant given in Asia/Shanghai local time.
fn local(year: i32, month: u32, day: u32, minute: u16) -> Timestamp {
    Zone::shanghai()
        .from_local(
            LocalDate::new(year, month, day).expect("a valid date"),
            minute,
        )
        .expect("a valid minute")
}

/// An engine on a manual clock, and a read-model store beside it. Fields drop in order: the
/// engine closes before the directory goes.
struct World {
    clock: ManualClock,
    engine: Engine,
    store: Arc<dyn ReadModelStore>,
    _scratch: Scratch,
}

impl World {
    fn new(name: &str, start: Timestamp) -> Self {
        let scratch = Scratch::new(name);
        let clock = ManualClock::new(start);
        let key = MasterKey::generate().expect("randomness");
        let engine = Engine::open(
            EngineConfig::new(scratch.0.join("engine"))
                .clock(Arc::new(clock.clone()))
                .master_key(key),
        )
        .expect("the engine opens");
        let store =
            Arc::new(SledReadModels::open(scratch.0.join("readmodels")).expect("the store opens"));
        Self {
            clock,
            engine,
            store,
            _scratch: scratch,
        }
    }

    fn system() -> Acting {
        Acting::system(unit("tonghui"))
    }

    fn units(&self, units: &[(&str, Tier, Option<&str>)]) {
        for (id, tier, parent) in units {
            self.engine
                .submit(
                    &Self::system(),
                    Command::Org(OrgCommand::CreateUnit {
                        id: unit(id),
                        name: format!("{id} 单位"),
                        tier: *tier,
                        parent: parent.map(unit),
                    }),
                )
                .unwrap_or_else(|e| panic!("unit {id}: {e:?}"));
        }
    }

    fn grant(&self, actor: &str, role: &str, at: &str) -> Acting {
        let id = ActorId::new(actor).expect("valid actor id");
        if self.engine.org().actor(&id).is_none() {
            self.engine
                .submit(
                    &Self::system(),
                    Command::Org(OrgCommand::RegisterActor {
                        id: id.clone(),
                        name: actor.to_owned(),
                        kind: ActorKind::Person,
                    }),
                )
                .expect("actor registered");
        }
        self.engine
            .submit(
                &Self::system(),
                Command::Org(OrgCommand::GrantRole {
                    actor: id,
                    role: Role::new(role).expect("valid role"),
                    unit: unit(at),
                }),
            )
            .unwrap_or_else(|e| panic!("grant {role} to {actor} at {at}: {e:?}"));
        acting(actor, role, at)
    }

    fn revoke(&self, actor: &str, role: &str, at: &str) {
        self.engine
            .submit(
                &Self::system(),
                Command::Org(OrgCommand::RevokeRole {
                    actor: ActorId::new(actor).expect("valid actor id"),
                    role: Role::new(role).expect("valid role"),
                    unit: unit(at),
                }),
            )
            .expect("role revoked");
    }

    fn advance(&self, minutes: u64) {
        self.clock.advance(Duration::from_secs(minutes * 60));
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn open(&self, who: &Acting, workflow: &str, at: &str, intake: Fields) -> CaseId {
        match self
            .engine
            .submit(
                who,
                Command::OpenCase {
                    workflow: WorkflowId::new(workflow).expect("valid workflow id"),
                    version: None,
                    unit: unit(at),
                    title: format!("{workflow} 工单"),
                    description: String::new(),
                    fields: intake,
                    requester: None,
                    channel: Channel::Door,
                    place: None,
                },
            )
            .unwrap_or_else(|e| panic!("open {workflow}: {e:?}"))
        {
            Outcome::Case { case, .. } => case,
            other => panic!("expected a case, got {other:?}"),
        }
    }

    fn act(&self, who: &Acting, case: CaseId, action: &str, given: Fields) {
        self.engine
            .submit(
                who,
                Command::Act {
                    case,
                    action: action.to_owned(),
                    fields: given,
                    expected_version: None,
                },
            )
            .unwrap_or_else(|e| panic!("{action} refused: {e:?}"));
    }

    fn run(&self, projection: Box<dyn Projection>, batch_events_max: usize) -> Runner {
        let runner = Runner::start(
            self.engine.log().clone(),
            self.store.clone(),
            vec![projection],
            RunnerOptions {
                batch_events_max,
                ..RunnerOptions::default()
            },
        )
        .expect("the runner starts");
        runner.wait_until_caught_up(WAIT).expect("caught up");
        runner
    }
}

/// The chain of the engine's own tests, with someone to act at every unit.
const CHAIN: &[(&str, Tier, Option<&str>)] = &[
    ("tonghui", Tier::Community, None),
    ("grid-1", Tier::Grid, Some("tonghui")),
    ("grid-2", Tier::Grid, Some("tonghui")),
    ("yiwu-heart", Tier::Enterprise, Some("grid-1")),
    ("intime", Tier::Enterprise, Some("grid-2")),
    ("shop-yh-101", Tier::Shop, Some("yiwu-heart")),
    ("shop-yh-102", Tier::Shop, Some("yiwu-heart")),
    ("shop-it-201", Tier::Shop, Some("intime")),
];

/// The chain and, by unit, who responds there.
fn chain_world(name: &str, start: Timestamp) -> (World, BTreeMap<&'static str, Acting>) {
    let world = World::new(name, start);
    world.units(CHAIN);
    let mut at = BTreeMap::new();
    for (actor, role, unit_id) in [
        ("wang.admin", "community_admin", "tonghui"),
        ("li.grid1", "grid_worker", "grid-1"),
        ("zhao.grid2", "grid_worker", "grid-2"),
        ("chen.yh", "enterprise_liaison", "yiwu-heart"),
        ("zhou.it", "enterprise_liaison", "intime"),
        ("liu.101", "shop_owner", "shop-yh-101"),
        ("he.102", "shop_owner", "shop-yh-102"),
        ("sun.201", "shop_owner", "shop-it-201"),
    ] {
        at.insert(unit_id, world.grant(actor, role, unit_id));
    }
    (world, at)
}

// ---------------------------------------------------------------------------------------------
// Directive progress

fn issue(world: &World, who: &Acting, at: &str, title: &str) -> (DirectiveId, usize) {
    match world
        .engine
        .submit(
            who,
            Command::IssueDirective {
                title: title.to_owned(),
                body: "张贴诚信消费公示，检查明码标价，培训员工".into(),
                kind: DirectiveKind::ConsumerProtection,
                unit: unit(at),
                within: Span::WorkingDays(1),
            },
        )
        .expect("issued")
    {
        Outcome::Directive {
            directive, parts, ..
        } => (directive, parts),
        other => panic!("expected a directive, got {other:?}"),
    }
}

fn acknowledge(world: &World, who: &Acting, directive: DirectiveId) {
    world
        .engine
        .submit(
            who,
            Command::AcknowledgeDirective {
                directive,
                note: "收到".into(),
            },
        )
        .expect("acknowledged");
}

fn report(world: &World, who: &Acting, directive: DirectiveId) {
    world
        .engine
        .submit(
            who,
            Command::ReportDirective {
                directive,
                note: format!("{} 已完成", who.unit),
            },
        )
        .expect("reported");
}

#[test]
fn directive_progress_rolls_up_exactly_as_the_core_does() {
    // Monday 2026-03-02 09:00: one working day means due Tuesday 17:30.
    let (world, at) = chain_world("directive", local(2026, 3, 2, 9 * 60));
    let (id, parts) = issue(&world, &at["tonghui"], "tonghui", "3·15 消费维权宣传");
    assert_eq!(
        parts, 7,
        "every grid, enterprise and shop below the community"
    );
    // Small batches: rows are carried from one batch to the next through the store.
    let runner = world.run(Box::new(DirectiveProgress), 3);

    world.advance(60);
    acknowledge(&world, &at["shop-yh-101"], id);
    let reported_101 = world.now();
    report(&world, &at["shop-yh-101"], id);
    acknowledge(&world, &at["shop-yh-102"], id);
    report(&world, &at["yiwu-heart"], id); // acknowledges on the way
    acknowledge(&world, &at["grid-1"], id);
    runner.wait_until_caught_up(WAIT).expect("caught up");

    let check = |expect: (u32, u32, u32, bool)| {
        let view = runner.view(directive_progress::NAME).expect("view");
        let tree = directive_progress::directive(&view, id)
            .expect("read")
            .expect("the directive is known");
        let core = world
            .engine
            .directive(&World::system(), id)
            .expect("the engine's roll-up")
            .progress;
        assert_eq!(tree.progress, core, "the read model rolls up as the core");
        let s = &tree.summary;
        assert_eq!(
            (s.units, s.acknowledged, s.reported, s.missed, s.complete),
            (7, expect.0, expect.1, expect.2, expect.3)
        );
        assert_eq!(tree.progress.acknowledged, expect.0);
        assert_eq!(tree.progress.reported, expect.1);
        assert_eq!(tree.progress.complete, expect.3);
        assert_eq!(s.issued_by, unit("tonghui"));
        assert_eq!(s.kind, DirectiveKind::ConsumerProtection);
        assert_eq!(s.title, "3·15 消费维权宣传");
        assert_eq!(tree.parts.len(), 7);
        tree
    };

    let tree = check((4, 2, 0, false));
    let index_of = |u: &str| {
        tree.parts
            .iter()
            .position(|p| p.row.unit == unit(u))
            .expect("a part of the unit")
    };
    let heart = &tree.progress.parts[index_of("yiwu-heart")];
    assert!(
        heart.reported && !heart.complete,
        "one of its shops has not reported"
    );
    assert_eq!((heart.units, heart.units_reported), (3, 2));
    let shop = &tree.parts[index_of("shop-yh-101")].row;
    assert_eq!(shop.acknowledged_at, Some(reported_101));
    assert_eq!(shop.reported_at, Some(reported_101));
    assert_eq!(shop.report.as_deref(), Some("shop-yh-101 已完成"));
    assert_eq!(
        shop.parent,
        Some(tree.parts[index_of("yiwu-heart")].index),
        "a shop's part hangs under its enterprise's part"
    );
    assert!(shop.due_at.is_some());

    // Wednesday: the deadline passed; the scheduler escalates every unreported part one tier
    // up, and a report now misses the deadline.
    world.clock.set(local(2026, 3, 4, 9 * 60));
    world.engine.run_due_deadlines().expect("scheduler tick");
    report(&world, &at["shop-yh-102"], id);
    runner.wait_until_caught_up(WAIT).expect("caught up");
    let tree = check((4, 3, 1, false));
    let row = |u: &str| {
        tree.parts
            .iter()
            .find(|p| p.row.unit == unit(u))
            .map(|p| p.row.clone())
            .expect("a part of the unit")
    };
    // Reported late: missed, and no longer supervised (the escalation ends with the deadline).
    assert!(row("shop-yh-102").missed);
    assert_eq!(row("shop-yh-102").escalated_to, None);
    assert_eq!(row("grid-2").escalated_to, Some(unit("tonghui")));
    assert!(!row("grid-2").missed, "not reported yet: not missed yet");
    assert!(!row("shop-yh-101").missed && row("shop-yh-101").escalated_to.is_none());

    for u in ["grid-1", "grid-2", "intime", "shop-it-201"] {
        report(&world, &at[u], id);
    }
    runner.wait_until_caught_up(WAIT).expect("caught up");
    let tree = check((7, 7, 5, true));
    assert!(tree.progress.parts.iter().all(|p| p.complete));

    let view = runner.view(directive_progress::NAME).expect("view");
    let unknown = DirectiveId::new_v7(world.now());
    assert_eq!(
        directive_progress::directive(&view, unknown).expect("read"),
        None
    );
}

#[test]
fn directives_page_newest_first_without_skips_or_repeats() {
    let (world, at) = chain_world("directive-pages", local(2026, 3, 2, 9 * 60));
    let runner = world.run(Box::new(DirectiveProgress), 8192);
    let grid = at["grid-1"].clone();
    let issue_one = |n: usize| {
        world.advance(1);
        let (id, parts) = issue(&world, &grid, "grid-1", &format!("指令 {n}"));
        assert_eq!(parts, 3, "yiwu-heart and its two shops");
        id
    };
    let first: Vec<DirectiveId> = (0..5).map(issue_one).collect();
    runner.wait_until_caught_up(WAIT).expect("caught up");
    let view = runner.view(directive_progress::NAME).expect("view");
    let page1 = directive_progress::list(&view, &Page::first(2)).expect("page 1");

    // Two more arrive between pages.
    let later: Vec<DirectiveId> = (5..7).map(issue_one).collect();
    runner.wait_until_caught_up(WAIT).expect("caught up");
    let view = runner.view(directive_progress::NAME).expect("view");
    let cursor = page1.next.clone().expect("more after page 1");
    let page2 = directive_progress::list(&view, &Page::after(cursor, 2)).expect("page 2");
    let cursor = page2.next.clone().expect("more after page 2");
    let page3 = directive_progress::list(&view, &Page::after(cursor, 2)).expect("page 3");
    assert!(page3.next.is_none(), "page 3 is the last");

    let seen: Vec<DirectiveId> = [&page1, &page2, &page3]
        .iter()
        .flat_map(|p| p.items.iter().map(|s| s.id))
        .collect();
    let expected: Vec<DirectiveId> = first.iter().rev().copied().collect();
    assert_eq!(seen, expected, "newest first, each once, none skipped");

    let fresh = directive_progress::list(&view, &Page::first(100)).expect("all");
    let everything: Vec<DirectiveId> = later
        .iter()
        .rev()
        .chain(first.iter().rev())
        .copied()
        .collect();
    assert_eq!(
        fresh.items.iter().map(|s| s.id).collect::<Vec<_>>(),
        everything
    );
    assert!(fresh.next.is_none());
    for s in &fresh.items {
        assert_eq!(
            (s.units, s.acknowledged, s.reported, s.complete),
            (3, 0, 0, false)
        );
        assert_eq!(s.issued_by, unit("grid-1"));
    }
    assert_eq!(fresh.items[0].title, "指令 6");

    // Acknowledgements show in the list's totals.
    acknowledge(&world, &at["shop-yh-101"], later[1]);
    report(&world, &at["shop-yh-101"], later[1]);
    runner.wait_until_caught_up(WAIT).expect("caught up");
    let view = runner.view(directive_progress::NAME).expect("view");
    let top = directive_progress::list(&view, &Page::first(1)).expect("top");
    assert_eq!(top.items[0].id, later[1]);
    assert_eq!((top.items[0].acknowledged, top.items[0].reported), (1, 1));
    assert!("not-a-cursor".parse::<Cursor>().is_err());
    // A cursor that parses but is no key of this list is refused, naming the field.
    let foreign: Cursor = "0102".parse().expect("hex");
    assert!(matches!(
        directive_progress::list(&view, &Page::after(foreign, 2)),
        Err(ProjectionError::Query {
            field: "cursor",
            ..
        })
    ));
}

// ---------------------------------------------------------------------------------------------
// Shop standing

fn standing(world: &World, who: &Acting, shop: &str, command: StandingCommand) {
    world
        .engine
        .submit(
            who,
            Command::Standing {
                unit: unit(shop),
                command,
            },
        )
        .unwrap_or_else(|e| panic!("standing of {shop}: {e:?}"));
}

fn deduct(points: u8, reason: &str) -> StandingCommand {
    StandingCommand::Deduct {
        points,
        reason: reason.into(),
    }
}

fn award(colour: FlagColour, period: &str) -> StandingCommand {
    StandingCommand::AwardFlag {
        colour,
        period: period.into(),
        reason: "月度评比".into(),
    }
}

fn rate(quarter: &str, recommended: bool, score: u8) -> StandingCommand {
    StandingCommand::RateQuarter {
        quarter: quarter.into(),
        recommended,
        score,
    }
}

#[test]
fn shop_standing_points_flags_assessments_and_recommended_merchants() {
    let (world, at) = chain_world("standing", local(2026, 4, 1, 9 * 60));
    let admin = at["tonghui"].clone();
    let cycle = |c: &str| StandingCommand::StartCycle { cycle: c.into() };
    for shop in ["shop-yh-101", "shop-yh-102", "shop-it-201"] {
        standing(&world, &admin, shop, cycle("2026"));
    }
    world.advance(10);
    let deducted_at = world.now();
    standing(&world, &admin, "shop-yh-101", deduct(3, "明码标价缺失"));
    world.advance(10);
    let restored_at = world.now();
    standing(
        &world,
        &admin,
        "shop-yh-101",
        StandingCommand::Restore {
            points: 1,
            reason: "整改到位".into(),
        },
    );
    for n in 1..=11 {
        standing(
            &world,
            &admin,
            "shop-yh-102",
            deduct(1, &format!("违规 {n}")),
        );
    }
    standing(&world, &admin, "shop-it-201", deduct(12, "严重违规"));
    standing(&world, &admin, "shop-it-201", cycle("2027"));

    standing(
        &world,
        &admin,
        "shop-yh-101",
        award(FlagColour::Red, "2026-04"),
    );
    standing(
        &world,
        &admin,
        "shop-yh-102",
        award(FlagColour::Yellow, "2026-04"),
    );
    standing(
        &world,
        &admin,
        "shop-it-201",
        award(FlagColour::Red, "2026-04"),
    );
    standing(
        &world,
        &admin,
        "shop-it-201",
        StandingCommand::RevokeFlag {
            period: "2026-04".into(),
            reason: "复核不符".into(),
        },
    );
    standing(
        &world,
        &admin,
        "shop-it-201",
        award(FlagColour::Yellow, "2026-04"),
    );
    standing(&world, &admin, "grid-1", award(FlagColour::Red, "2026-04"));
    standing(
        &world,
        &admin,
        "shop-yh-101",
        award(FlagColour::Yellow, "2026-05"),
    );

    let assess = |month: &str, score: u8| StandingCommand::AssessMonth {
        month: month.into(),
        score,
        notes: String::new(),
    };
    standing(&world, &admin, "shop-yh-101", assess("2026-04", 96));
    standing(&world, &admin, "shop-yh-101", assess("2026-04", 90));
    standing(&world, &admin, "shop-yh-101", assess("2026-05", 88));

    standing(&world, &admin, "shop-yh-101", rate("2026Q2", true, 95));
    standing(&world, &admin, "shop-yh-102", rate("2026Q2", true, 80));
    standing(&world, &admin, "shop-it-201", rate("2026Q2", true, 85));
    standing(&world, &admin, "shop-yh-102", rate("2026Q2", false, 60));
    standing(&world, &admin, "shop-it-201", rate("2026Q2", true, 99));
    standing(&world, &admin, "shop-yh-102", rate("2026Q1", true, 70));
    standing(&world, &admin, "shop-yh-101", rate("2026Q1", true, 70));

    let runner = world.run(Box::new(ShopStanding), 4);
    let view = runner.view(shop_standing::NAME).expect("view");

    // The same standing as the core's fold.
    for shop in ["shop-yh-101", "shop-yh-102", "shop-it-201", "grid-1"] {
        let row = shop_standing::standing(&view, &unit(shop))
            .expect("read")
            .expect("recorded");
        let core = world
            .engine
            .standing(&World::system(), &unit(shop))
            .expect("the engine reads");
        assert_eq!(row.cycle, core.cycle, "{shop}");
        assert_eq!(row.flags, core.flags, "{shop}");
        assert_eq!(row.monthly, core.monthly, "{shop}");
        assert_eq!(row.quarterly, core.quarterly, "{shop}");
    }

    let yh101 = shop_standing::standing(&view, &unit("shop-yh-101"))
        .expect("read")
        .expect("recorded");
    assert_eq!(yh101.points(), Some(10));
    assert_eq!((yh101.deducted, yh101.restored), (3, 1));
    assert_eq!(
        yh101.history,
        vec![
            PointChange {
                at: deducted_at,
                change: -3,
                left: 9,
                reason: "明码标价缺失".into()
            },
            PointChange {
                at: restored_at,
                change: 1,
                left: 10,
                reason: "整改到位".into()
            },
        ]
    );
    assert_eq!(
        yh101.monthly.get("2026-04"),
        Some(&90),
        "the latest assessment"
    );

    let yh102 = shop_standing::standing(&view, &unit("shop-yh-102"))
        .expect("read")
        .expect("recorded");
    assert_eq!(yh102.points(), Some(1));
    assert_eq!(yh102.deducted, 11);
    assert_eq!(yh102.history.len(), shop_standing::HISTORY_MAX);
    assert_eq!(yh102.history[0].reason, "违规 2", "the oldest change went");
    assert_eq!(
        yh102.history.iter().map(|c| c.left).collect::<Vec<_>>(),
        (1..=10).rev().collect::<Vec<u8>>()
    );

    let it201 = shop_standing::standing(&view, &unit("shop-it-201"))
        .expect("read")
        .expect("recorded");
    assert_eq!(it201.cycle, Some(("2027".to_owned(), 12)));
    assert_eq!((it201.deducted, it201.restored), (0, 0));
    assert!(it201.history.is_empty(), "a new cycle starts afresh");

    let recommended = |quarter: &str| {
        shop_standing::recommended(&view, quarter)
            .expect("read")
            .into_iter()
            .map(|r| (r.unit.to_string(), r.score))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        recommended("2026Q2"),
        vec![("shop-it-201".into(), 99), ("shop-yh-101".into(), 95)],
        "re-rated: 85 → 99 moves up, 80 → not recommended drops out"
    );
    assert_eq!(
        recommended("2026Q1"),
        vec![("shop-yh-101".into(), 70), ("shop-yh-102".into(), 70)],
        "a tie goes by unit id"
    );
    assert!(recommended("2026Q3").is_empty());

    let april = shop_standing::flags(&view, "2026-04").expect("read");
    assert_eq!(april.red, vec![unit("grid-1"), unit("shop-yh-101")]);
    assert_eq!(april.yellow, vec![unit("shop-it-201"), unit("shop-yh-102")]);
    let may = shop_standing::flags(&view, "2026-05").expect("read");
    assert!(may.red.is_empty());
    assert_eq!(may.yellow, vec![unit("shop-yh-101")]);
    assert_eq!(
        shop_standing::standing(&view, &unit("shop-xx-999")).expect("read"),
        None
    );
}

/// A log written before `FlagAwarded` became version 2 holds version 1 payloads (here the
/// golden fixture's very bytes): the read model reads them through the upcast, beside awards
/// written today, and agrees with the core's fold.
#[test]
fn shop_standing_reads_flags_awarded_at_version_1_beside_version_2() {
    let (world, at) = chain_world("standing-v1", local(2026, 5, 6, 9 * 60));
    let admin = at["tonghui"].clone();
    let v1 = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/events/FlagAwarded.v1.bin"),
    )
    .expect("the v1 fixture");
    let shop = unit("shop-yh-101");
    world
        .engine
        .log()
        .append(AppendRequest::to_stream(
            merchants::merchant_stream(&shop).expect("a slug"),
            ExpectedVersion::NoStream,
            vec![NewEvent::new(
                EventType::new("FlagAwarded").expect("valid type"),
                1,
                v1,
            )],
            Actor::parse("wang.admin", "community_admin", "tonghui").expect("valid"),
            CorrelationId::new_v7(world.now()),
        ))
        .expect("appended")
        .expect("no conflict");
    standing(
        &world,
        &admin,
        "shop-yh-101",
        award(FlagColour::Red, "2026-05"),
    );

    let runner = world.run(Box::new(ShopStanding), 4);
    let view = runner.view(shop_standing::NAME).expect("view");
    let row = shop_standing::standing(&view, &shop)
        .expect("read")
        .expect("recorded");
    assert_eq!(
        row.flags
            .iter()
            .map(|(p, c)| (p.as_str(), *c))
            .collect::<Vec<_>>(),
        vec![
            ("2026-04", FlagColour::Yellow),
            ("2026-05", FlagColour::Red)
        ]
    );
    let core = world
        .engine
        .standing(&World::system(), &shop)
        .expect("the engine reads");
    assert_eq!(row.flags, core.flags);
    let april = shop_standing::flags(&view, "2026-04").expect("read");
    assert_eq!(april.yellow, vec![shop.clone()]);
    let may = shop_standing::flags(&view, "2026-05").expect("read");
    assert_eq!(may.red, vec![shop]);
}

// ---------------------------------------------------------------------------------------------
// The three lists

fn add_item(world: &World, who: &Acting, list: ListKind, title: &str, at: &str) -> ListItemId {
    world.advance(1);
    match world
        .engine
        .submit(
            who,
            Command::AddListItem {
                list,
                title: title.to_owned(),
                description: format!("{title} 的说明"),
                unit: unit(at),
            },
        )
        .expect("added")
    {
        Outcome::ListItem { item, .. } => item,
        other => panic!("expected a list item, got {other:?}"),
    }
}

fn change_item(world: &World, who: &Acting, item: ListItemId, command: ListCommand) {
    world
        .engine
        .submit(who, Command::ListItem { item, command })
        .expect("list item changed");
}

#[test]
fn the_three_lists_in_order_with_links_and_retirement() {
    let (world, at) = chain_world("lists", local(2026, 4, 1, 9 * 60));
    let admin = at["tonghui"].clone();
    let r1 = add_item(&world, &admin, ListKind::Resources, "会议室", "yiwu-heart");
    let p1 = add_item(&world, &admin, ListKind::Projects, "童趣市集", "tonghui");
    let r2 = add_item(&world, &admin, ListKind::Resources, "志愿者队伍", "grid-1");
    let p2 = add_item(&world, &admin, ListKind::Projects, "骑手驿站", "grid-2");
    let p3 = add_item(&world, &admin, ListKind::Projects, "法律讲堂", "tonghui");
    // Linked cases must exist and be visible to the editor (issue 13).
    let category = || fields(&[("category", FieldValue::Choice("public_facilities".into()))]);
    let case_a = world.open(&admin, "service-request", "tonghui", category());
    let case_b = world.open(&admin, "service-request", "grid-1", category());
    change_item(
        &world,
        &admin,
        p1,
        ListCommand::Update {
            title: Some("童趣市集（每月）".into()),
            description: Some("每月第二个周六".into()),
        },
    );
    change_item(&world, &admin, p1, ListCommand::Link { case: case_a });
    change_item(&world, &admin, p1, ListCommand::Link { case: case_b });
    world.advance(5);
    change_item(
        &world,
        &admin,
        p2,
        ListCommand::Retire {
            reason: "已建成".into(),
        },
    );
    let runner = world.run(Box::new(Lists), 2);

    // Needs arrive between pages.
    let grid = at["grid-1"].clone();
    let mut needs: Vec<ListItemId> = (1..=5)
        .map(|n| {
            add_item(
                &world,
                &grid,
                ListKind::Needs,
                &format!("需求 {n}"),
                "grid-1",
            )
        })
        .collect();
    runner.wait_until_caught_up(WAIT).expect("caught up");
    let view = runner.view(lists::NAME).expect("view");

    let ids = |page: &civicflow_projections::models::page::Paged<lists::ListItem>| {
        page.items.iter().map(|i| i.id).collect::<Vec<_>>()
    };
    let all = |kind, retired| lists::list(&view, kind, retired, &Page::first(100)).expect("read");
    assert_eq!(ids(&all(ListKind::Projects, false)), vec![p1, p3]);
    assert_eq!(ids(&all(ListKind::Projects, true)), vec![p1, p2, p3]);
    assert_eq!(ids(&all(ListKind::Resources, false)), vec![r1, r2]);

    let item = lists::item(&view, p1).expect("read").expect("known");
    let core = world
        .engine
        .list_item(&World::system(), p1)
        .expect("the engine reads");
    assert_eq!(item.title, core.title);
    assert_eq!(item.title, "童趣市集（每月）");
    assert_eq!(item.description, core.description);
    assert_eq!(item.unit, core.unit);
    assert_eq!(item.cases, core.cases);
    assert_eq!(item.cases, vec![case_a, case_b]);
    assert_eq!(item.list, ListKind::Projects);
    assert_eq!(item.added_at, core.added_at);
    assert!(!item.is_retired());
    let retired = lists::item(&view, p2).expect("read").expect("known");
    assert_eq!(retired.retired.as_deref(), Some("已建成"));
    assert!(
        world
            .engine
            .list_item(&World::system(), p2)
            .expect("read")
            .retired
    );

    let page1 = lists::list(&view, ListKind::Needs, false, &Page::first(2)).expect("page 1");
    assert_eq!(ids(&page1), needs[..2].to_vec());
    // Two more needs, and one of the first page retired, between pages.
    needs.extend((6..=7).map(|n| {
        add_item(
            &world,
            &grid,
            ListKind::Needs,
            &format!("需求 {n}"),
            "grid-1",
        )
    }));
    change_item(
        &world,
        &admin,
        needs[0],
        ListCommand::Retire {
            reason: "已满足".into(),
        },
    );
    runner.wait_until_caught_up(WAIT).expect("caught up");
    let view = runner.view(lists::NAME).expect("view");
    let mut seen = ids(&page1);
    let mut next = page1.next.clone();
    while let Some(cursor) = next {
        let page =
            lists::list(&view, ListKind::Needs, false, &Page::after(cursor, 2)).expect("next page");
        seen.extend(ids(&page));
        next = page.next;
    }
    assert_eq!(
        seen, needs,
        "every need once, in the order added, none skipped"
    );
    let live = lists::list(&view, ListKind::Needs, false, &Page::first(100)).expect("read");
    assert_eq!(
        ids(&live),
        needs[1..].to_vec(),
        "the retired need left the live list"
    );
    let with_retired = lists::list(&view, ListKind::Needs, true, &Page::first(100)).expect("read");
    assert_eq!(ids(&with_retired), needs);

    // A cursor of one list does not page another.
    let resources = lists::list(&view, ListKind::Resources, true, &Page::first(1)).expect("read");
    let cursor = resources.next.expect("a second resource");
    assert!(matches!(
        lists::list(&view, ListKind::Needs, true, &Page::after(cursor, 1)),
        Err(ProjectionError::Query {
            field: "cursor",
            ..
        })
    ));
    assert_eq!(
        lists::item(&view, ListItemId::new_v7(world.now())).expect("read"),
        None
    );
}

// ---------------------------------------------------------------------------------------------
// Community statistics

fn workflow_stats(
    opened: u64,
    closed: u64,
    reopened: u64,
    outcomes: &[(&str, u64)],
    mean: Option<u64>,
    p90: Option<u64>,
) -> WorkflowStats {
    WorkflowStats {
        opened,
        closed,
        reopened,
        outcomes: outcomes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect(),
        mean_close_seconds: mean,
        p90_close_seconds: p90,
    }
}

fn outcomes(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn tiers(pairs: &[(Tier, u64)]) -> BTreeMap<Tier, u64> {
    pairs.iter().copied().collect()
}

#[test]
fn community_statistics_are_what_the_events_imply() {
    // Monday 2025-12-01 09:00 in Shanghai.
    let world = World::new("stats", local(2025, 12, 1, 9 * 60));
    world.units(&[
        ("tonghui", Tier::Community, None),
        ("grid-1", Tier::Grid, Some("tonghui")),
        ("grid-2", Tier::Grid, Some("tonghui")),
        ("grid-3", Tier::Grid, Some("tonghui")),
        ("yiwu-heart", Tier::Enterprise, Some("grid-1")),
        ("shop-1", Tier::Shop, Some("yiwu-heart")),
        ("market-regulation", Tier::Department, Some("tonghui")),
        ("silver-glory", Tier::VolunteerTeam, Some("tonghui")),
        ("beiyuan", Tier::Community, None),
        ("by-grid-1", Tier::Grid, Some("beiyuan")),
        ("free-dept", Tier::Department, None),
    ]);
    let admin = world.grant("wang.admin", "community_admin", "tonghui");
    let by_admin = world.grant("zhang.admin", "community_admin", "beiyuan");
    let grid1 = world.grant("li.grid1", "grid_worker", "grid-1");
    world.grant("zhao.grid2", "grid_worker", "grid-2");
    world.grant("by.grid", "grid_worker", "by-grid-1");
    let liaison = world.grant("chen.liaison", "enterprise_liaison", "yiwu-heart");
    let resident = world.grant("zhou.resident", "resident", "tonghui");
    world.grant("pm.a", "party_member", "silver-glory");
    world.grant("pm.a", "party_member", "grid-1");
    world.grant("pm.b", "party_member", "grid-2");
    world.grant("pm.c", "party_member", "by-grid-1");
    world.grant("vol.a", "volunteer", "silver-glory");
    world.grant("vol.b", "volunteer", "silver-glory");
    world.grant("lo.a", "liaison_officer", "grid-3");
    world.grant("lo.b", "liaison_officer", "grid-3");
    world.grant("lo.c", "liaison_officer", "grid-1");
    world.grant("lo.d", "liaison_officer", "by-grid-1");
    world.revoke("vol.b", "volunteer", "silver-glory");

    let category = || fields(&[("category", FieldValue::Choice("public_facilities".into()))]);
    let none = Fields::new;

    // 2025: a service request through the whole loop in 2 hours, reopened, closed again.
    let r = world.open(&grid1, "service-request", "grid-1", category());
    world.advance(10);
    world.act(
        &grid1,
        r,
        "dispatch",
        fields(&[("unit", FieldValue::Unit(unit("yiwu-heart")))]),
    );
    world.advance(10);
    world.act(&liaison, r, "sign_for", none());
    world.advance(40);
    let reply = || {
        fields(&[
            ("outcome", FieldValue::Choice("resolved".into())),
            ("result", text("已修复")),
        ])
    };
    world.act(&liaison, r, "reply", reply());
    world.advance(30);
    world.act(
        &grid1,
        r,
        "return_visit",
        fields(&[("rating", FieldValue::Rating(5))]),
    );
    world.advance(30);
    world.act(&grid1, r, "close", none());
    world.advance(30);
    world.act(&grid1, r, "reopen", fields(&[("reason", text("又坏了"))]));
    world.advance(10);
    world.act(
        &grid1,
        r,
        "dispatch",
        fields(&[("unit", FieldValue::Unit(unit("yiwu-heart")))]),
    );
    world.act(&liaison, r, "sign_for", none());
    world.act(&liaison, r, "reply", reply());
    world.act(
        &grid1,
        r,
        "return_visit",
        fields(&[("rating", FieldValue::Rating(4))]),
    );
    world.act(&grid1, r, "close", none());

    // New Year's Eve: a dispute opened at 23:00 and withdrawn at 00:20 on 1 January in
    // Shanghai, which is still 31 December in UTC: it closes in 2026.
    world.clock.set(local(2025, 12, 31, 23 * 60));
    let y1 = world.open(
        &resident,
        "consumer-dispute",
        "grid-3",
        fields(&[("kind", FieldValue::Choice("price".into()))]),
    );
    world.advance(50);
    world.open(&resident, "service-request", "tonghui", category()); // stays open
    world.clock.set(local(2026, 1, 1, 20));
    world.act(&resident, y1, "withdraw", none());

    // March 2026: ten requests withdrawn after 1, 2, …, 10 minutes.
    world.clock.set(local(2026, 3, 2, 9 * 60));
    for minutes in 1..=10 {
        let case = world.open(&resident, "service-request", "tonghui", category());
        world.advance(minutes);
        world.act(&resident, case, "withdraw", none());
        world.advance(1);
    }
    // In the other community, a duplicate merged after 30 minutes.
    let b1 = world.open(&by_admin, "service-request", "beiyuan", category());
    let b2 = world.open(&by_admin, "service-request", "beiyuan", category());
    world.advance(30);
    world.act(
        &by_admin,
        b2,
        "merge",
        fields(&[("into", FieldValue::Case(b1))]),
    );

    // District affairs: one need through to review in 4 hours, with its activity; one whose
    // activity was held in December 2025; one declined after an hour.
    let need = || fields(&[("need", FieldValue::Choice("activity".into()))]);
    let resolve = |world: &World, case| {
        world.act(
            &admin,
            case,
            "resolve",
            fields(&[
                ("meeting", FieldValue::Datetime(world.now())),
                ("resolution", text("联席会议决议")),
                ("list", FieldValue::Choice("projects".into())),
            ]),
        );
    };
    let d1 = world.open(&admin, "district-affairs", "tonghui", need());
    world.advance(60);
    resolve(&world, d1);
    world.advance(60);
    world.act(
        &admin,
        d1,
        "deliver",
        fields(&[("unit", FieldValue::Unit(unit("grid-1")))]),
    );
    world.advance(60);
    world.act(
        &grid1,
        d1,
        "record_activity",
        fields(&[
            ("activity", text("童心向党，快乐公益 童趣市集")),
            ("held_on", FieldValue::Datetime(world.now())),
            ("participants", FieldValue::Integer(86)),
            ("beneficiaries", FieldValue::Integer(420)),
            ("volunteers", FieldValue::Integer(32)),
        ]),
    );
    world.advance(60);
    world.act(
        &admin,
        d1,
        "review",
        fields(&[("summary", text("办成公益品牌"))]),
    );
    let d2 = world.open(&admin, "district-affairs", "tonghui", need());
    resolve(&world, d2);
    world.act(
        &admin,
        d2,
        "deliver",
        fields(&[("unit", FieldValue::Unit(unit("grid-1")))]),
    );
    world.act(
        &grid1,
        d2,
        "record_activity",
        fields(&[
            ("activity", text("冬日送温暖")),
            (
                "held_on",
                FieldValue::Datetime(local(2025, 12, 20, 10 * 60)),
            ),
            ("participants", FieldValue::Integer(10)),
            ("beneficiaries", FieldValue::Integer(100)),
        ]),
    );
    let d3 = world.open(&admin, "district-affairs", "tonghui", need());
    world.advance(60);
    world.act(
        &admin,
        d3,
        "decline",
        fields(&[("reason", text("不属于商圈事务"))]),
    );

    let runner = world.run(Box::new(CommunityStats::default()), 5);
    let view = runner.view(community_stats::NAME).expect("view");
    let org_all = OrgFigures {
        party_members: 3,
        volunteers: 1,
        grid_workers: 3,
        liaison_officers: 4,
        monitoring_points: 3,
        units: tiers(&[
            (Tier::Community, 2),
            (Tier::Grid, 4),
            (Tier::Enterprise, 1),
            (Tier::Shop, 1),
            (Tier::Department, 2),
            (Tier::VolunteerTeam, 1),
        ]),
    };
    let org_tonghui = OrgFigures {
        party_members: 2,
        volunteers: 1,
        grid_workers: 2,
        liaison_officers: 3,
        monitoring_points: 2,
        units: tiers(&[
            (Tier::Community, 1),
            (Tier::Grid, 3),
            (Tier::Enterprise, 1),
            (Tier::Shop, 1),
            (Tier::Department, 1),
            (Tier::VolunteerTeam, 1),
        ]),
    };
    let org_beiyuan = OrgFigures {
        party_members: 1,
        volunteers: 0,
        grid_workers: 1,
        liaison_officers: 1,
        monitoring_points: 1,
        units: tiers(&[(Tier::Community, 1), (Tier::Grid, 1)]),
    };
    // The overall org figures agree with the engine's own chart.
    let chart = world.engine.org();
    let holders = |role: &str| {
        chart
            .actors()
            .filter(|a| a.grants.iter().any(|(r, _)| r.as_str() == role))
            .count() as u64
    };
    assert_eq!(
        (
            holders("party_member"),
            holders("volunteer"),
            holders("grid_worker"),
            holders("liaison_officer")
        ),
        (
            org_all.party_members,
            org_all.volunteers,
            org_all.grid_workers,
            org_all.liaison_officers
        )
    );

    let sr = "service-request";
    let cd = "consumer-dispute";
    let da = "district-affairs";
    let expected_2026 = Stats {
        community: None,
        year: Some(2026),
        activities: 1,
        participants: 86,
        beneficiaries: 420,
        activity_volunteers: 32,
        opened: 15,
        closed: 14,
        reopened: 0,
        outcomes: outcomes(&[
            ("withdrawn", 11),
            ("merged", 1),
            ("reviewed", 1),
            ("declined", 1),
        ]),
        workflows: [
            // Ten of 60…600 s and the merge's 1800 s: mean 5100/11 = 463.6, p90 the 10th of 11.
            (
                sr,
                workflow_stats(
                    12,
                    11,
                    0,
                    &[("withdrawn", 10), ("merged", 1)],
                    Some(464),
                    Some(600),
                ),
            ),
            (
                cd,
                workflow_stats(0, 1, 0, &[("withdrawn", 1)], Some(4800), Some(4800)),
            ),
            (
                da,
                workflow_stats(
                    3,
                    2,
                    0,
                    &[("reviewed", 1), ("declined", 1)],
                    Some(9000),
                    Some(14_400),
                ),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
        org: org_all.clone(),
    };
    assert_eq!(
        community_stats::stats(&view, Some(2026)).expect("read"),
        expected_2026
    );

    let expected_2025 = Stats {
        community: None,
        year: Some(2025),
        activities: 1,
        participants: 10,
        beneficiaries: 100,
        activity_volunteers: 0,
        opened: 3,
        closed: 1,
        reopened: 1,
        outcomes: outcomes(&[("closed", 1)]),
        workflows: [
            (
                sr,
                workflow_stats(2, 1, 1, &[("closed", 1)], Some(7200), Some(7200)),
            ),
            (cd, workflow_stats(1, 0, 0, &[], None, None)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
        org: org_all.clone(),
    };
    assert_eq!(
        community_stats::stats(&view, Some(2025)).expect("read"),
        expected_2025
    );

    let expected_all = Stats {
        community: None,
        year: None,
        activities: 2,
        participants: 96,
        beneficiaries: 520,
        activity_volunteers: 32,
        opened: 18,
        closed: 15,
        reopened: 1,
        outcomes: outcomes(&[
            ("closed", 1),
            ("withdrawn", 11),
            ("merged", 1),
            ("reviewed", 1),
            ("declined", 1),
        ]),
        workflows: [
            // 60…600, 1800, 7200: mean 12300/12 = 1025; p90 the 11th of 12.
            (
                sr,
                workflow_stats(
                    14,
                    12,
                    1,
                    &[("closed", 1), ("withdrawn", 10), ("merged", 1)],
                    Some(1025),
                    Some(1800),
                ),
            ),
            (
                cd,
                workflow_stats(1, 1, 0, &[("withdrawn", 1)], Some(4800), Some(4800)),
            ),
            (
                da,
                workflow_stats(
                    3,
                    2,
                    0,
                    &[("reviewed", 1), ("declined", 1)],
                    Some(9000),
                    Some(14_400),
                ),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
        org: org_all.clone(),
    };
    assert_eq!(
        community_stats::stats(&view, None).expect("read"),
        expected_all
    );

    // Tonghui in 2026: the ten withdrawals alone, 60…600 s: mean 330, p90 the 9th of 10.
    let tonghui =
        community_stats::community_stats(&view, &unit("tonghui"), Some(2026)).expect("read");
    assert_eq!(tonghui.community, Some(unit("tonghui")));
    assert_eq!(
        tonghui.workflows[sr],
        workflow_stats(10, 10, 0, &[("withdrawn", 10)], Some(330), Some(540))
    );
    assert_eq!(tonghui.workflows[cd], expected_2026.workflows[cd]);
    assert_eq!(tonghui.workflows[da], expected_2026.workflows[da]);
    assert_eq!(
        (
            tonghui.activities,
            tonghui.participants,
            tonghui.beneficiaries,
            tonghui.activity_volunteers
        ),
        (1, 86, 420, 32)
    );
    assert_eq!(tonghui.org, org_tonghui);
    let tonghui_all =
        community_stats::community_stats(&view, &unit("tonghui"), None).expect("read");
    assert_eq!(
        tonghui_all.workflows[sr],
        workflow_stats(
            12,
            11,
            1,
            &[("closed", 1), ("withdrawn", 10)],
            Some(955), // (3300 + 7200) / 11 = 954.5, rounded
            Some(600)
        )
    );
    assert_eq!(
        (tonghui_all.activities, tonghui_all.beneficiaries),
        (2, 520)
    );

    let beiyuan =
        community_stats::community_stats(&view, &unit("beiyuan"), Some(2026)).expect("read");
    assert_eq!(
        beiyuan.workflows.into_iter().collect::<Vec<_>>(),
        vec![(
            sr.to_owned(),
            workflow_stats(2, 1, 0, &[("merged", 1)], Some(1800), Some(1800))
        )]
    );
    assert_eq!(beiyuan.activities, 0);
    assert_eq!(beiyuan.org, org_beiyuan);
    let beiyuan_2025 =
        community_stats::community_stats(&view, &unit("beiyuan"), Some(2025)).expect("read");
    assert!(beiyuan_2025.workflows.is_empty() && beiyuan_2025.opened == 0);

    assert_eq!(
        community_stats::years(&view, None).expect("read"),
        vec![2025, 2026]
    );
    assert_eq!(
        community_stats::years(&view, Some(&unit("beiyuan"))).expect("read"),
        vec![2026]
    );

    // The chart changes: a grid moves to Tonghui. Org figures follow the chart as it stands;
    // cases stay with the community they were opened in.
    world
        .engine
        .submit(
            &World::system(),
            Command::Org(OrgCommand::MoveUnit {
                id: unit("by-grid-1"),
                parent: unit("tonghui"),
            }),
        )
        .expect("moved");
    runner.wait_until_caught_up(WAIT).expect("caught up");
    let view = runner.view(community_stats::NAME).expect("view");
    let tonghui =
        community_stats::community_stats(&view, &unit("tonghui"), Some(2026)).expect("read");
    assert_eq!(
        (
            tonghui.org.party_members,
            tonghui.org.grid_workers,
            tonghui.org.liaison_officers,
            tonghui.org.monitoring_points,
            tonghui.org.units[&Tier::Grid]
        ),
        (3, 3, 4, 3, 4)
    );
    let beiyuan =
        community_stats::community_stats(&view, &unit("beiyuan"), Some(2026)).expect("read");
    assert_eq!(
        beiyuan.org,
        OrgFigures {
            units: tiers(&[(Tier::Community, 1)]),
            ..OrgFigures::default()
        }
    );
    assert_eq!(beiyuan.opened, 2, "the cases stay where they were opened");
}

/// Appends domain events to a case's stream, as the engine would.
fn append_case(log: &SledLog, case: CaseId, events: &[CaseEvent]) {
    let new: Vec<NewEvent> = events
        .iter()
        .map(|e| {
            NewEvent::new(
                EventType::new(e.event_type()).expect("valid type"),
                e.schema_version(),
                e.to_payload().expect("encodes"),
            )
        })
        .collect();
    log.append(AppendRequest::to_stream(
        case.stream(),
        ExpectedVersion::Any,
        new,
        Actor::parse("zhou.resident", "resident", "tonghui").expect("valid"),
        CorrelationId::new_v7(Timestamp::EPOCH),
    ))
    .expect("appended")
    .expect("no conflict");
}

fn opened(case: CaseId, workflow: &str, at: Timestamp) -> CaseEvent {
    CaseEvent::Opened(CaseOpened {
        case,
        workflow: DefinitionRef {
            id: WorkflowId::new(workflow).expect("valid"),
            version: 1,
        },
        stage: "received".into(),
        unit: unit("tonghui"),
        title: "路灯".into(),
        description: String::new(),
        fields: Fields::new(),
        requester: None,
        filed_by: ActorId::new("zhou.resident").expect("valid"),
        filed_as: Role::new("resident").expect("valid"),
        channel: Channel::Api,
        at,
    })
}

fn withdrawn(at: Timestamp) -> CaseEvent {
    CaseEvent::ActionTaken(ActionTaken {
        action: "withdraw".into(),
        from: "received".into(),
        to: "withdrawn".into(),
        fields: Fields::new(),
        at,
    })
}

#[test]
fn community_years_are_counted_in_the_zone_given() {
    // 2026-01-01 02:00 in Shanghai is still 2025-12-31 (13:00) in New York.
    let at = local(2026, 1, 1, 2 * 60);
    for (zone, year, other) in [
        (Zone::shanghai(), 2026, 2025),
        (Zone::named("America/New_York").expect("a zone"), 2025, 2026),
    ] {
        let scratch = Scratch::new("stats-zone");
        let log = SledLogConfig::new(scratch.0.join("log"))
            .durability(Durability::Flush)
            .open()
            .expect("log");
        let store = Arc::new(SledReadModels::open(scratch.0.join("rm")).expect("store"));
        let case = CaseId::new_v7(at);
        append_case(
            &log,
            case,
            &[opened(case, "service-request", at), withdrawn(at)],
        );
        let runner = Runner::start(
            Arc::new(log.clone()),
            store,
            vec![Box::new(CommunityStats::new(
                Arc::new(civicflow_core::domain::workflow::DefinitionRegistry::built_in()),
                zone.clone(),
            ))],
            RunnerOptions::default(),
        )
        .expect("start");
        runner.wait_until_caught_up(WAIT).expect("caught up");
        let view = runner.view(community_stats::NAME).expect("view");
        let opened_in = |year| {
            community_stats::stats(&view, Some(year))
                .expect("read")
                .workflows
                .get("service-request")
                .map_or(0, |w| w.opened)
        };
        assert_eq!((opened_in(year), opened_in(other)), (1, 0), "{zone}");
    }
}

#[test]
fn the_90th_percentile_is_the_nearest_rank_of_the_durations() {
    let scratch = Scratch::new("p90");
    let log = SledLogConfig::new(scratch.0.join("log"))
        .durability(Durability::Flush)
        .open()
        .expect("log");
    let store = Arc::new(SledReadModels::open(scratch.0.join("rm")).expect("store"));
    let base = local(2026, 6, 1, 9 * 60);
    let plus =
        |seconds: i64| Timestamp::from_unix_micros(base.as_unix_micros() + seconds * 1_000_000);
    // Durations 1, 2, …, 100 seconds, appended in a shuffled order.
    let mut order: Vec<i64> = (1..=100).collect();
    order.sort_by_key(|d| (d * 37) % 101);
    for d in &order {
        let case = CaseId::new_v7(base);
        append_case(
            &log,
            case,
            &[opened(case, "service-request", base), withdrawn(plus(*d))],
        );
    }
    // Not counted: a workflow nobody defined, a case never opened, a second close.
    let stray = CaseId::new_v7(base);
    append_case(
        &log,
        stray,
        &[opened(stray, "lost-and-found", base), withdrawn(plus(5))],
    );
    append_case(&log, CaseId::new_v7(base), &[withdrawn(plus(7))]);
    let twice = CaseId::new_v7(base);
    append_case(&log, twice, &[opened(twice, "service-request", base)]);

    let runner = Runner::start(
        Arc::new(log.clone()),
        store,
        vec![Box::new(CommunityStats::default())],
        RunnerOptions {
            batch_events_max: 16,
            ..RunnerOptions::default()
        },
    )
    .expect("start");
    runner.wait_until_caught_up(WAIT).expect("caught up");
    let read = |year| {
        let view = runner.view(community_stats::NAME).expect("view");
        community_stats::stats(&view, year)
            .expect("read")
            .workflows
            .get("service-request")
            .cloned()
            .expect("service requests counted")
    };
    let w = read(Some(2026));
    assert_eq!((w.opened, w.closed), (101, 100));
    assert_eq!(w.p90_close_seconds, Some(90), "the 90th of 100");
    assert_eq!(
        w.mean_close_seconds,
        Some(51),
        "5050 / 100 = 50.5, rounded half up"
    );
    // One more, long: 101 durations, the 91st smallest (⌈90.9⌉) is 91.
    append_case(&log, twice, &[withdrawn(plus(1000)), withdrawn(plus(2000))]);
    runner.wait_until_caught_up(WAIT).expect("caught up");
    let w = read(Some(2026));
    assert_eq!((w.opened, w.closed), (101, 101), "a case closes once");
    assert_eq!(w.p90_close_seconds, Some(91));
    assert_eq!(w.mean_close_seconds, Some(60), "6050 / 101 = 59.9");
    assert_eq!(read(None), w, "one year: all years are the same");
    let all = community_stats::stats(&runner.view(community_stats::NAME).expect("view"), None)
        .expect("read");
    let total: BTreeSet<&String> = all.workflows.keys().collect();
    assert_eq!(
        total,
        BTreeSet::from([&"lost-and-found".to_owned(), &"service-request".to_owned()]),
        "the unknown workflow's opening counts, its close cannot"
    );
    assert_eq!(all.workflows["lost-and-found"].closed, 0);

    // 500 durations from seconds to weeks, many sharing buckets: the percentile is still the
    // exact nearest rank, the mean the rounded exact mean.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut durations = Vec::new();
    for i in 0..500 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Half of them within a few minutes of 1000 s (shared buckets), the rest spread wide.
        let d = if i % 2 == 0 {
            1000 + seed % 300
        } else {
            1 + seed % (40 * 86_400)
        };
        durations.push(d);
        let case = CaseId::new_v7(base);
        append_case(
            &log,
            case,
            &[
                opened(case, "consumer-dispute", base),
                withdrawn(plus(i64::try_from(d).expect("small"))),
            ],
        );
    }
    runner.wait_until_caught_up(WAIT).expect("caught up");
    durations.sort_unstable();
    let sum: u64 = durations.iter().sum();
    let view = runner.view(community_stats::NAME).expect("view");
    let w = community_stats::stats(&view, Some(2026))
        .expect("read")
        .workflows
        .get("consumer-dispute")
        .cloned()
        .expect("counted");
    assert_eq!(w.closed, 500);
    assert_eq!(
        w.p90_close_seconds,
        Some(durations[449]),
        "the 450th of 500"
    );
    assert_eq!(w.mean_close_seconds, Some((sum + 250) / 500));
}

#[test]
fn duration_buckets_keep_order_and_are_exact_for_short_times() {
    use community_stats::bucket_of;
    for s in 0..16 {
        assert_eq!(u64::from(bucket_of(s)), s);
    }
    let mut previous = bucket_of(0);
    for s in (0..2_000_000u64).step_by(7).chain([u64::MAX / 2, u64::MAX]) {
        let b = bucket_of(s);
        assert!(b >= previous, "bucket of {s} goes back");
        previous = b;
    }
    // 16 buckets per power of two: 1024..=1087 is one bucket, 1088 the next.
    assert_eq!(bucket_of(1024), bucket_of(1087));
    assert_eq!(bucket_of(1088), bucket_of(1024) + 1);
}
