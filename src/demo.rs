//! The Tonghui demo: the community of the seed article, its grids, the commercial complexes
//! 义乌之心, 银泰百货 and 新天地 with shops under them, the units outside the chain, the people
//! who act, and a run of every closed loop.
//!
//! `examples/tonghui.rs` prints it; `civicflow serve --demo` will load the same data. Grid and
//! shop names are invented (the seed does not name them); the rest is from the seed.

use std::time::Duration;

use civicflow_core::calendar::Span;
use civicflow_core::domain::case::Channel;
use civicflow_core::domain::directive::DirectiveKind;
use civicflow_core::domain::fields::{FieldValue, Fields};
use civicflow_core::domain::lists::{ListCommand, ListKind};
use civicflow_core::domain::merchants::{FlagColour, StandingCommand};
use civicflow_core::domain::org::{roles, Acting, ActorKind, OrgCommand, Tier};
use civicflow_core::domain::workflow::WorkflowId;
use civicflow_core::engine::{Command, Engine, Outcome, Requester, SubmitError};
use civicflow_core::vault::ContactDetails;
use civicflow_core::{
    ActorId, CaseId, DirectiveId, ListItemId, ManualClock, Role, Timestamp, UnitId,
};

/// The demo's starting moment: Monday 2026-04-13, 09:00 in Asia/Shanghai.
pub const START: Timestamp = Timestamp::from_unix_seconds(1_776_042_000);

/// The org units: id, name, tier, parent.
pub const UNITS: &[(&str, &str, Tier, Option<&str>)] = &[
    (
        "tonghui",
        "通惠社区 Tonghui community",
        Tier::Community,
        None,
    ),
    (
        "grid-1",
        "通惠第一网格 grid 1 (新马路)",
        Tier::Grid,
        Some("tonghui"),
    ),
    (
        "grid-2",
        "通惠第二网格 grid 2 (稠州北路)",
        Tier::Grid,
        Some("tonghui"),
    ),
    (
        "grid-3",
        "通惠第三网格 grid 3 (骆宾王公园)",
        Tier::Grid,
        Some("tonghui"),
    ),
    (
        "yiwu-heart",
        "义乌之心 Yiwu Heart",
        Tier::Enterprise,
        Some("grid-1"),
    ),
    (
        "intime",
        "银泰百货 Intime",
        Tier::Enterprise,
        Some("grid-2"),
    ),
    (
        "xintiandi",
        "新天地 Xintiandi",
        Tier::Enterprise,
        Some("grid-3"),
    ),
    (
        "shop-yh-101",
        "义乌之心 1F-101 荷香茶饮",
        Tier::Shop,
        Some("yiwu-heart"),
    ),
    (
        "shop-yh-215",
        "义乌之心 2F-215 童趣玩具",
        Tier::Shop,
        Some("yiwu-heart"),
    ),
    (
        "shop-it-108",
        "银泰 1F-108 锦衣服饰",
        Tier::Shop,
        Some("intime"),
    ),
    (
        "shop-it-302",
        "银泰 3F-302 江南小厨",
        Tier::Shop,
        Some("intime"),
    ),
    (
        "shop-xt-012",
        "新天地 012 新华书店分店",
        Tier::Shop,
        Some("xintiandi"),
    ),
    (
        "shop-xt-033",
        "新天地 033 快修手机",
        Tier::Shop,
        Some("xintiandi"),
    ),
    (
        "market-regulation",
        "稠城市场监管所 market regulation office",
        Tier::Department,
        Some("tonghui"),
    ),
    (
        "legal-aid",
        "稠城法律援助工作站 legal aid station",
        Tier::Department,
        Some("tonghui"),
    ),
    (
        "lotus-social",
        "荷花芯社工服务社 Lotus Heart social work",
        Tier::SocialOrganization,
        Some("tonghui"),
    ),
    (
        "silver-glory",
        "银耀干部志愿服务队 retired-cadre volunteers",
        Tier::VolunteerTeam,
        Some("tonghui"),
    ),
    (
        "red-vanguard",
        "红色先锋模范队 red vanguard team",
        Tier::VolunteerTeam,
        Some("tonghui"),
    ),
];

/// The people and systems who act: id, name, role, unit.
pub const ACTORS: &[(&str, &str, &str, &str)] = &[
    (
        "wang.secretary",
        "王书记 (community party committee)",
        roles::COMMUNITY_ADMIN,
        "tonghui",
    ),
    (
        "li.grid1",
        "李网格员 (grid 1)",
        roles::GRID_WORKER,
        "grid-1",
    ),
    (
        "zhao.grid2",
        "赵网格员 (grid 2)",
        roles::GRID_WORKER,
        "grid-2",
    ),
    (
        "sun.grid3",
        "孙网格员 (grid 3)",
        roles::GRID_WORKER,
        "grid-3",
    ),
    (
        "chen.yiwuheart",
        "陈联络员 (Yiwu Heart)",
        roles::ENTERPRISE_LIAISON,
        "yiwu-heart",
    ),
    (
        "zhou.intime",
        "周联络员 (Intime)",
        roles::ENTERPRISE_LIAISON,
        "intime",
    ),
    (
        "wu.xintiandi",
        "吴联络员 (Xintiandi)",
        roles::ENTERPRISE_LIAISON,
        "xintiandi",
    ),
    (
        "zheng.tea",
        "郑老板 (荷香茶饮)",
        roles::SHOP_OWNER,
        "shop-yh-101",
    ),
    (
        "feng.toys",
        "冯老板 (童趣玩具)",
        roles::SHOP_OWNER,
        "shop-yh-215",
    ),
    (
        "xu.fashion",
        "许老板 (锦衣服饰)",
        roles::SHOP_OWNER,
        "shop-it-108",
    ),
    (
        "he.kitchen",
        "何老板 (江南小厨)",
        roles::SHOP_OWNER,
        "shop-it-302",
    ),
    (
        "lu.books",
        "陆店长 (新华书店分店)",
        roles::SHOP_OWNER,
        "shop-xt-012",
    ),
    (
        "shi.repair",
        "施老板 (快修手机)",
        roles::SHOP_OWNER,
        "shop-xt-033",
    ),
    (
        "tang.resident",
        "唐阿姨 (resident)",
        roles::RESIDENT,
        "tonghui",
    ),
    (
        "ma.consumer",
        "马先生 (consumer)",
        roles::RESIDENT,
        "tonghui",
    ),
    (
        "qian.officer",
        "钱科员 (market regulation)",
        roles::DEPARTMENT_OFFICER,
        "market-regulation",
    ),
    (
        "song.lawyer",
        "宋律师 (legal aid)",
        roles::LEGAL_AID,
        "legal-aid",
    ),
    (
        "han.social",
        "韩社工 (social worker)",
        roles::SOCIAL_ORGANIZER,
        "lotus-social",
    ),
    (
        "yang.partymember",
        "杨党员 (red vanguard)",
        roles::PARTY_MEMBER,
        "red-vanguard",
    ),
    (
        "lin.volunteer",
        "林志愿者 (silver glory)",
        roles::VOLUNTEER,
        "silver-glory",
    ),
    (
        "gao.liaison",
        "高联络员 (monitoring point 3)",
        roles::LIAISON_OFFICER,
        "grid-3",
    ),
    (
        "audit.office",
        "审计 (district audit office)",
        roles::AUDITOR,
        "tonghui",
    ),
    (
        "fixmystreet",
        "FixMyStreet-style civic app",
        roles::OPEN311_CLIENT,
        "tonghui",
    ),
];

/// The id of an actor of the demo, in their first role.
///
/// # Panics
/// If `actor` is not in [`ACTORS`] (a bug in the demo itself).
pub fn acting(actor: &str) -> Acting {
    let (id, _, role, unit) = ACTORS
        .iter()
        .find(|a| a.0 == actor)
        .copied()
        .unwrap_or_else(|| panic!("no demo actor {actor}"));
    Acting::new(
        ActorId::new(id).expect("demo ids are valid"),
        Role::new(role).expect("valid"),
        unit_id(unit),
    )
}

fn unit_id(id: &str) -> UnitId {
    UnitId::new(id).expect("demo unit ids are valid")
}

fn workflow(id: &str) -> WorkflowId {
    WorkflowId::new(id).expect("built-in workflow ids are valid")
}

fn fields(pairs: Vec<(&str, FieldValue)>) -> Fields {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn text(t: &str) -> FieldValue {
    FieldValue::Text(t.to_owned())
}

/// Creates the org chart and the actors (as the system), on an empty store.
///
/// # Errors
/// [`SubmitError`] if the store already holds a different chart or storage fails.
pub fn build_org(engine: &Engine) -> Result<(), SubmitError> {
    let system = Acting::system(unit_id("tonghui"));
    for (id, name, tier, parent) in UNITS {
        engine.submit(
            &system,
            Command::Org(OrgCommand::CreateUnit {
                id: unit_id(id),
                name: (*name).to_owned(),
                tier: *tier,
                parent: parent.map(unit_id),
            }),
        )?;
    }
    for (id, name, role, unit) in ACTORS {
        let actor = ActorId::new(*id).expect("demo ids are valid");
        let kind = if *role == roles::OPEN311_CLIENT {
            ActorKind::System
        } else {
            ActorKind::Person
        };
        engine.submit(
            &system,
            Command::Org(OrgCommand::RegisterActor {
                id: actor.clone(),
                name: (*name).to_owned(),
                kind,
            }),
        )?;
        engine.submit(
            &system,
            Command::Org(OrgCommand::GrantRole {
                actor,
                role: Role::new(*role).expect("valid"),
                unit: unit_id(unit),
            }),
        )?;
    }
    Ok(())
}

/// What the demo run produced, to look at afterwards.
#[derive(Debug, Clone)]
pub struct DemoRun {
    /// The service request that escalated (its audit is the interesting one).
    pub escalated_case: CaseId,
    /// A service request that went the whole way in time.
    pub smooth_case: CaseId,
    /// A duplicate merged into the smooth case.
    pub duplicate_case: CaseId,
    /// The district-affairs need, from collection to review.
    pub district_case: CaseId,
    /// The consumer dispute.
    pub dispute_case: CaseId,
    /// The business-licence errand.
    pub errand_case: CaseId,
    /// The directive that reached every shop.
    pub directive: DirectiveId,
    /// The project on the projects list.
    pub project: ListItemId,
}

fn case_of(outcome: Outcome) -> CaseId {
    match outcome {
        Outcome::Case { case, .. } => case,
        other => panic!("expected a case outcome, got {other:?}"),
    }
}

/// Runs every loop of the seed once, moving `clock` along: a smooth service request, one
/// whose sign-for is late and escalates, a merged duplicate, the district-affairs loop, a
/// consumer dispute with a department and legal aid, a one-stop errand, a directive to every
/// shop, the lists, and the merchants' standing.
///
/// # Errors
/// [`SubmitError`] if any step is refused or storage fails (a bug in the demo).
pub fn run_loops(engine: &Engine, clock: &ManualClock) -> Result<DemoRun, SubmitError> {
    let minutes = |m: u64| clock.advance(Duration::from_secs(m * 60));
    let act = |who: &str, case: CaseId, action: &str, f: Fields| {
        engine.submit(
            &acting(who),
            Command::Act {
                case,
                action: action.to_owned(),
                fields: f,
                expected_version: None,
            },
        )
    };

    // 0. The twelve-point cycle of three shops starts on the first day, so that the month it
    // starts in (April) has points at its end when the run is over (in May): a month's score
    // can be derived from them.
    for shop in ["shop-yh-101", "shop-it-302", "shop-xt-033"] {
        engine.submit(
            &acting("wang.secretary"),
            Command::Standing {
                unit: unit_id(shop),
                command: StandingCommand::StartCycle {
                    cycle: "2026".into(),
                },
            },
        )?;
    }

    // 1. 有事找社区: a resident brings a problem to the door; it is handled in time.
    let tang = ContactDetails::default()
        .with_name("唐秀英")
        .and_then(|d| d.with_phone("+86 139 5791 2468"))
        .and_then(|d| d.with_address("稠城街道新马路 18 号 3 单元"))
        .map_err(|e| civicflow_core::domain::Rejection::invalid("contact", e.to_string()))?;
    let smooth_case = case_of(engine.submit(
        &acting("li.grid1"),
        Command::OpenCase {
            workflow: workflow("service-request"),
            version: None,
            unit: unit_id("tonghui"),
            title: "新马路印象路灯不亮 street light out at Xinmalu Impression".into(),
            description:
                "唐阿姨 reports the lamp by the crossing has been dark for three nights.".into(),
            fields: fields(vec![
                ("category", FieldValue::Choice("public_facilities".into())),
                ("location", text("新马路印象 crossing")),
            ]),
            requester: Some(Requester::New(tang)),
            channel: Channel::Door,
            place: None,
        },
    )?);
    minutes(40);
    act(
        "wang.secretary",
        smooth_case,
        "dispatch",
        fields(vec![("unit", FieldValue::Unit(unit_id("grid-1")))]),
    )?;
    minutes(30);
    act("li.grid1", smooth_case, "sign_for", Fields::new())?;
    act(
        "li.grid1",
        smooth_case,
        "add_co_handler",
        fields(vec![("unit", FieldValue::Unit(unit_id("yiwu-heart")))]),
    )?;

    // A second report of the same lamp arrives through a civic app and is merged (并单).
    let duplicate_case = case_of(engine.submit(
        &acting("fixmystreet"),
        Command::OpenCase {
            workflow: workflow("service-request"),
            version: None,
            unit: unit_id("tonghui"),
            title: "Street lamp broken near Yiwu Heart".into(),
            description: "Reported through a civic app.".into(),
            fields: fields(vec![(
                "category",
                FieldValue::Choice("public_facilities".into()),
            )]),
            requester: None,
            channel: Channel::Open311,
            place: None,
        },
    )?);
    act(
        "wang.secretary",
        duplicate_case,
        "merge",
        fields(vec![("into", FieldValue::Case(smooth_case))]),
    )?;

    minutes(180);
    act(
        "chen.yiwuheart",
        smooth_case,
        "reply",
        fields(vec![
            ("outcome", FieldValue::Choice("resolved".into())),
            (
                "result",
                text("物业已更换灯具 the property team replaced the lamp"),
            ),
        ]),
    )?;
    minutes(60 * 20);
    act(
        "li.grid1",
        smooth_case,
        "return_visit",
        fields(vec![
            ("rating", FieldValue::Rating(5)),
            ("comment", text("很满意")),
        ]),
    )?;
    act("li.grid1", smooth_case, "close", Fields::new())?;

    // 2. A second request: dispatched to Intime, nobody signs for it, it escalates (督办).
    let escalated_case = case_of(engine.submit(
        &acting("zhao.grid2"),
        Command::OpenCase {
            workflow: workflow("service-request"),
            version: None,
            unit: unit_id("grid-2"),
            title: "银泰后门占道经营 stalls blocking the Intime back door".into(),
            description: "Fire lane blocked in the evenings.".into(),
            fields: fields(vec![("category", FieldValue::Choice("safety".into()))]),
            requester: None,
            channel: Channel::Staff,
            place: None,
        },
    )?);
    act(
        "zhao.grid2",
        escalated_case,
        "dispatch",
        fields(vec![("unit", FieldValue::Unit(unit_id("intime")))]),
    )?;
    minutes(150);
    engine.run_due_deadlines().map_err(SubmitError::Engine)?;
    act("zhou.intime", escalated_case, "sign_for", Fields::new())?;
    minutes(60 * 24);
    act(
        "zhou.intime",
        escalated_case,
        "reply",
        fields(vec![
            ("outcome", FieldValue::Choice("resolved".into())),
            ("result", text("已清理并设置隔离桩")),
        ]),
    )?;
    act(
        "zhao.grid2",
        escalated_case,
        "return_visit",
        fields(vec![("rating", FieldValue::Rating(4))]),
    )?;
    act("zhao.grid2", escalated_case, "close", Fields::new())?;

    // 3. 商圈事务决策闭环: a need goes to the joint meeting and becomes a project.
    let project = match engine.submit(
        &acting("wang.secretary"),
        Command::AddListItem {
            list: ListKind::Projects,
            title: "童趣市集 children's market at Xintiandi".into(),
            description:
                "童心向党，快乐公益: a monthly children's market with the alliance's shops.".into(),
            unit: unit_id("xintiandi"),
        },
    )? {
        Outcome::ListItem { item, .. } => item,
        other => panic!("expected a list item, got {other:?}"),
    };
    let district_case = case_of(engine.submit(
        &acting("wu.xintiandi"),
        Command::OpenCase {
            workflow: workflow("district-affairs"),
            version: None,
            unit: unit_id("tonghui"),
            title: "商户希望举办亲子公益市集 shops ask for a family charity market".into(),
            description: "Raised at the alliance's shop owners' meeting.".into(),
            fields: fields(vec![("need", FieldValue::Choice("activity".into()))]),
            requester: None,
            channel: Channel::Staff,
            place: None,
        },
    )?);
    minutes(60 * 24 * 3);
    act(
        "wang.secretary",
        district_case,
        "resolve",
        fields(vec![
            ("meeting", FieldValue::Datetime(clock_now(clock))),
            (
                "resolution",
                text("联席会议决议：7月9日在新天地门口举办童趣市集"),
            ),
            ("list", FieldValue::Choice("projects".into())),
        ]),
    )?;
    engine.submit(
        &acting("wang.secretary"),
        Command::ListItem {
            item: project,
            command: ListCommand::Link {
                case: district_case,
            },
        },
    )?;
    act(
        "wang.secretary",
        district_case,
        "deliver",
        fields(vec![
            ("unit", FieldValue::Unit(unit_id("xintiandi"))),
            ("volunteers_wanted", FieldValue::Integer(30)),
        ]),
    )?;
    act(
        "wu.xintiandi",
        district_case,
        "bring_in",
        fields(vec![("unit", FieldValue::Unit(unit_id("lotus-social")))]),
    )?;
    minutes(60 * 24 * 7);
    act(
        "han.social",
        district_case,
        "record_activity",
        fields(vec![
            ("activity", text("童心向党，快乐公益 童趣市集")),
            ("held_on", FieldValue::Datetime(clock_now(clock))),
            ("participants", FieldValue::Integer(86)),
            ("beneficiaries", FieldValue::Integer(420)),
            ("volunteers", FieldValue::Integer(32)),
        ]),
    )?;
    act(
        "wang.secretary",
        district_case,
        "review",
        fields(vec![(
            "summary",
            text("办成公益品牌：孩子有收获、商家能受益、社区有活力"),
        )]),
    )?;

    // 4. 诚信消费: a consumer dispute mediated with the department and legal aid.
    let ma = ContactDetails::default()
        .with_name("马志强")
        .and_then(|d| d.with_phone("138 6789 0012"))
        .map_err(|e| civicflow_core::domain::Rejection::invalid("contact", e.to_string()))?;
    let dispute_case = case_of(engine.submit(
        &acting("ma.consumer"),
        Command::OpenCase {
            workflow: workflow("consumer-dispute"),
            version: None,
            unit: unit_id("grid-3"),
            title: "手机维修后故障依旧 phone still broken after repair".into(),
            description:
                "Paid 380 yuan at the repair shop; the fault came back the next day.".into(),
            fields: fields(vec![
                ("kind", FieldValue::Choice("service".into())),
                ("shop", FieldValue::Unit(unit_id("shop-xt-033"))),
                ("amount", FieldValue::Number(380.0)),
            ]),
            requester: Some(Requester::New(ma)),
            channel: Channel::Door,
            place: None,
        },
    )?);
    minutes(60);
    act(
        "sun.grid3",
        dispute_case,
        "refer",
        fields(vec![(
            "unit",
            FieldValue::Unit(unit_id("market-regulation")),
        )]),
    )?;
    minutes(60 * 24);
    act(
        "qian.officer",
        dispute_case,
        "request_legal_aid",
        fields(vec![("unit", FieldValue::Unit(unit_id("legal-aid")))]),
    )?;
    minutes(60 * 24 * 2);
    act(
        "song.lawyer",
        dispute_case,
        "record_mediation",
        fields(vec![
            ("outcome", FieldValue::Choice("agreement".into())),
            ("agreement", text("商户免费重修并退还 180 元")),
            ("compensation", FieldValue::Number(180.0)),
        ]),
    )?;
    act(
        "ma.consumer",
        dispute_case,
        "confirm",
        fields(vec![("rating", FieldValue::Rating(4))]),
    )?;

    // 5. 红色代办: a business licence done on a shop owner's behalf.
    let errand_case = case_of(engine.submit(
        &acting("shi.repair"),
        Command::OpenCase {
            workflow: workflow("one-stop-errand"),
            version: None,
            unit: unit_id("tonghui"),
            title: "营业执照变更 change of business licence".into(),
            description: "New legal representative.".into(),
            fields: fields(vec![(
                "errand",
                FieldValue::Choice("business_licence".into()),
            )]),
            requester: None,
            channel: Channel::Door,
            place: None,
        },
    )?);
    act("yang.partymember", errand_case, "take_on", Fields::new())?;
    minutes(60 * 24);
    act(
        "yang.partymember",
        errand_case,
        "submit",
        fields(vec![
            ("department", FieldValue::Unit(unit_id("market-regulation"))),
            ("materials", text("申请书、身份证复印件、股东决议")),
        ]),
    )?;
    minutes(60 * 24 * 2);
    act(
        "qian.officer",
        errand_case,
        "approve",
        fields(vec![("reference", text("91330782MA2EXAMPLE"))]),
    )?;
    act(
        "yang.partymember",
        errand_case,
        "deliver",
        fields(vec![
            ("trips", FieldValue::Integer(0)),
            ("rating", FieldValue::Rating(5)),
        ]),
    )?;

    // 6. A directive from the community to every shop (一竿到底), and the reports back up.
    let directive = match engine.submit(
        &acting("wang.secretary"),
        Command::IssueDirective {
            title: "3·15 消费维权宣传 consumer-rights week".into(),
            body: "Put up the 诚信消费 notice, check price tags, train counter staff.".into(),
            kind: DirectiveKind::ConsumerProtection,
            unit: unit_id("tonghui"),
            within: Span::WorkingDays(3),
        },
    )? {
        Outcome::Directive { directive, .. } => directive,
        other => panic!("expected a directive, got {other:?}"),
    };
    for (actor, unit) in ACTORS.iter().map(|a| (a.0, a.3)) {
        let tier = UNITS.iter().find(|u| u.0 == unit).map(|u| u.2);
        if matches!(tier, Some(Tier::Grid | Tier::Enterprise | Tier::Shop))
            && actor != "gao.liaison"
        {
            engine.submit(
                &acting(actor),
                Command::AcknowledgeDirective {
                    directive,
                    note: "收到".into(),
                },
            )?;
            engine.submit(
                &acting(actor),
                Command::ReportDirective {
                    directive,
                    note: "已完成 done".into(),
                },
            )?;
        }
    }

    // 7. Merchants' standing (the cycles started on the first day, above): a deduction and its
    // restoration, flags, ratings.
    let secretary = acting("wang.secretary");
    engine.submit(
        &acting("gao.liaison"),
        Command::Standing {
            unit: unit_id("shop-xt-033"),
            command: StandingCommand::Deduct {
                points: 3,
                reason: "明码标价缺失 prices not displayed".into(),
            },
        },
    )?;
    engine.submit(
        &secretary,
        Command::Standing {
            unit: unit_id("shop-xt-033"),
            command: StandingCommand::Restore {
                points: 1,
                reason: "整改到位 rectified".into(),
            },
        },
    )?;
    engine.submit(
        &secretary,
        Command::Standing {
            unit: unit_id("shop-yh-101"),
            command: StandingCommand::AwardFlag {
                colour: FlagColour::Red,
                period: "2026-04".into(),
                reason: "诚信经营示范".into(),
            },
        },
    )?;
    engine.submit(
        &secretary,
        Command::Standing {
            unit: unit_id("shop-xt-033"),
            command: StandingCommand::AwardFlag {
                colour: FlagColour::Yellow,
                period: "2026-04".into(),
                reason: "价格标签不规范".into(),
            },
        },
    )?;
    engine.submit(
        &secretary,
        Command::Standing {
            unit: unit_id("shop-yh-101"),
            command: StandingCommand::AssessMonth {
                month: "2026-04".into(),
                score: 96,
                notes: String::new(),
            },
        },
    )?;
    engine.submit(
        &secretary,
        Command::Standing {
            unit: unit_id("shop-yh-101"),
            command: StandingCommand::RateQuarter {
                quarter: "2026Q2".into(),
                recommended: true,
                score: 95,
            },
        },
    )?;
    engine.run_due_deadlines().map_err(SubmitError::Engine)?;

    Ok(DemoRun {
        escalated_case,
        smooth_case,
        duplicate_case,
        district_case,
        dispute_case,
        errand_case,
        directive,
        project,
    })
}

fn clock_now(clock: &ManualClock) -> Timestamp {
    use civicflow_core::Clock;
    clock.now()
}
