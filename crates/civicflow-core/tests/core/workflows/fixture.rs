//! The fixed world every scenario runs in: the org chart (built by applying `OrgEvent`s), the
//! actors and their grants, the built-in definitions, the business calendar, and the moments
//! at which the given events happened and the command is decided.

use std::sync::{Arc, OnceLock};

use civicflow_core::calendar::{BusinessCalendar, LocalDate, Zone};
use civicflow_core::domain::aggregate::fold;
use civicflow_core::domain::fields::{FieldValue, Fields};
use civicflow_core::domain::org::{
    Acting, ActorKind, ActorRegistered, Org, OrgChart, OrgEvent, RoleGranted, Tier, UnitCreated,
};
use civicflow_core::domain::workflow::{DefinitionRegistry, WorkflowId};
use civicflow_core::{ActorId, CaseId, PersonId, Role, Timestamp, UnitId};

/// A moment in Asia/Shanghai local time, written `2026-09-24 15:00`.
pub fn at(local: &str) -> Timestamp {
    let (date, time) = local.split_once(' ').expect("`YYYY-MM-DD HH:MM`");
    let (hours, minutes) = time.split_once(':').expect("`HH:MM`");
    let minute = hours.parse::<u16>().expect("hours") * 60 + minutes.parse::<u16>().expect("min");
    Zone::shanghai()
        .from_local(LocalDate::parse(date).expect("a date"), minute)
        .expect("a local time")
}

/// When the given events happened: Thursday 2026-09-24 15:00, the day before the Mid-Autumn
/// holiday (Friday 25 to Sunday 27 September), a week before the National Day holiday
/// (1 to 7 October, with Saturday 10 October a 调休 working day). Deadlines counted in
/// working time from here must skip all of that.
pub const T0: &str = "2026-09-24 15:00";
/// When the command is decided, unless a scenario says otherwise: an hour later.
pub const NOW: &str = "2026-09-24 16:00";

/// The case every case scenario is about.
pub fn case_id() -> CaseId {
    CaseId::parse("01923a7e-0000-7000-8000-000000000001").expect("a UUID")
}

/// Another case (the one a duplicate is merged into).
pub fn other_case() -> CaseId {
    CaseId::parse("01923a7e-0000-7000-8000-000000000002").expect("a UUID")
}

/// The requester of the cases (their data would be in the vault).
pub fn person() -> PersonId {
    PersonId::from_bytes([
        0x01, 0x92, 0x3a, 0x7e, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 0x99,
    ])
}

pub fn unit(id: &str) -> UnitId {
    UnitId::new(id).expect("a valid unit id")
}

pub fn role(name: &str) -> Role {
    Role::new(name).expect("a valid role")
}

pub fn roles(names: &[&str]) -> Vec<Role> {
    names.iter().map(|r| role(r)).collect()
}

pub fn actor(id: &str) -> ActorId {
    ActorId::new(id).expect("a valid actor id")
}

pub fn workflow(id: &str) -> WorkflowId {
    WorkflowId::new(id).expect("a valid workflow id")
}

/// The units: `(id, name, tier, parent)`.
const UNITS: &[(&str, &str, Tier, Option<&str>)] = &[
    ("tonghui", "通惠社区", Tier::Community, None),
    ("beimen", "北门社区", Tier::Community, None),
    ("grid-1", "第一网格", Tier::Grid, Some("tonghui")),
    ("grid-2", "第二网格", Tier::Grid, Some("tonghui")),
    ("grid-b1", "北门第一网格", Tier::Grid, Some("beimen")),
    ("yiwu-heart", "义乌之心", Tier::Enterprise, Some("grid-1")),
    ("intime", "银泰百货", Tier::Enterprise, Some("grid-2")),
    (
        "shop-yh-101",
        "义乌之心 101 茶饮",
        Tier::Shop,
        Some("yiwu-heart"),
    ),
    (
        "shop-yh-102",
        "义乌之心 102 书店",
        Tier::Shop,
        Some("yiwu-heart"),
    ),
    ("shop-it-201", "银泰 201 服饰", Tier::Shop, Some("intime")),
    (
        "market-regulation",
        "市场监管所",
        Tier::Department,
        Some("tonghui"),
    ),
    (
        "legal-aid",
        "法律援助工作站",
        Tier::Department,
        Some("tonghui"),
    ),
    (
        "lotus-social",
        "荷花芯社会组织联合会",
        Tier::SocialOrganization,
        Some("tonghui"),
    ),
    (
        "silver-glow",
        "银耀干部志愿服务队",
        Tier::VolunteerTeam,
        Some("tonghui"),
    ),
    ("tax-office", "税务分局", Tier::Department, None),
];

/// The actors' grants: `(id, role, unit)`; every role but `system` is held by someone. An
/// actor's first grant is the one [`who`] acts in; liu.shop101 also lives in the community
/// and may ask for things as a resident ([`who_as`]).
const GRANTS: &[(&str, &str, &str)] = &[
    ("wang.admin", "community_admin", "tonghui"),
    ("zhang.admin", "community_admin", "beimen"),
    ("li.grid1", "grid_worker", "grid-1"),
    ("zhao.grid2", "grid_worker", "grid-2"),
    ("chen.liaison", "enterprise_liaison", "yiwu-heart"),
    ("liu.shop101", "shop_owner", "shop-yh-101"),
    ("he.shop102", "shop_owner", "shop-yh-102"),
    ("zhou.resident", "resident", "tonghui"),
    ("wu.resident", "resident", "tonghui"),
    ("qian.officer", "department_officer", "market-regulation"),
    ("feng.lawyer", "legal_aid", "legal-aid"),
    ("ma.volunteer", "volunteer", "silver-glow"),
    ("dang.member", "party_member", "grid-1"),
    ("sun.organizer", "social_organizer", "lotus-social"),
    ("gao.monitor", "liaison_officer", "grid-1"),
    ("he.auditor", "auditor", "tonghui"),
    ("app.open311", "open311_client", "tonghui"),
    ("liu.shop101", "resident", "tonghui"),
];

/// The events that build the fixture chart, in order.
pub fn org_events() -> Vec<OrgEvent> {
    let mut events: Vec<OrgEvent> = UNITS
        .iter()
        .map(|(id, name, tier, parent)| {
            OrgEvent::UnitCreated(UnitCreated {
                unit: unit(id),
                name: (*name).to_owned(),
                tier: *tier,
                parent: parent.map(unit),
            })
        })
        .collect();
    for (i, (id, role_name, unit_id)) in GRANTS.iter().enumerate() {
        // Registered with their first grant.
        if GRANTS[..i].iter().all(|(earlier, _, _)| earlier != id) {
            events.push(OrgEvent::ActorRegistered(ActorRegistered {
                actor: actor(id),
                name: (*id).to_owned(),
                kind: if id.starts_with("app.") {
                    ActorKind::System
                } else {
                    ActorKind::Person
                },
                registered_at: None,
            }));
        }
        events.push(OrgEvent::RoleGranted(RoleGranted {
            actor: actor(id),
            role: role(role_name),
            unit: unit(unit_id),
        }));
    }
    events
}

/// The chart after `events`.
pub fn chart_of(events: &[OrgEvent]) -> OrgChart {
    fold::<Org>(events, built_in())
}

/// The fixture chart, built once.
pub fn chart() -> &'static OrgChart {
    shared_chart()
}

/// The fixture chart, built once, to share.
pub fn shared_chart() -> &'static Arc<OrgChart> {
    static CHART: OnceLock<Arc<OrgChart>> = OnceLock::new();
    CHART.get_or_init(|| Arc::new(chart_of(&org_events())))
}

/// The built-in definitions, loaded once.
pub fn built_in() -> &'static DefinitionRegistry {
    shared_built_in()
}

/// The built-in definitions, loaded once, to share.
pub fn shared_built_in() -> &'static Arc<DefinitionRegistry> {
    static REGISTRY: OnceLock<Arc<DefinitionRegistry>> = OnceLock::new();
    REGISTRY.get_or_init(|| Arc::new(DefinitionRegistry::built_in()))
}

/// The official Chinese business calendar, loaded once.
pub fn calendar() -> &'static BusinessCalendar {
    static CALENDAR: OnceLock<BusinessCalendar> = OnceLock::new();
    CALENDAR.get_or_init(BusinessCalendar::china)
}

/// `actor` acting in the one role they hold in the fixture.
pub fn who(id: &str) -> Acting {
    let (_, role_name, unit_id) = GRANTS
        .iter()
        .find(|(a, _, _)| *a == id)
        .unwrap_or_else(|| panic!("{id} is not a fixture actor"));
    Acting::new(actor(id), role(role_name), unit(unit_id))
}

/// `actor` acting in another role they hold in the fixture.
pub fn who_as(id: &str, role_name: &str, unit_id: &str) -> Acting {
    assert!(
        GRANTS.contains(&(id, role_name, unit_id)),
        "{id} holds no {role_name} at {unit_id} in the fixture"
    );
    Acting::new(actor(id), role(role_name), unit(unit_id))
}

pub fn admin() -> Acting {
    who("wang.admin")
}
pub fn other_admin() -> Acting {
    who("zhang.admin")
}
pub fn grid1() -> Acting {
    who("li.grid1")
}
pub fn grid2() -> Acting {
    who("zhao.grid2")
}
pub fn liaison() -> Acting {
    who("chen.liaison")
}
pub fn shop101() -> Acting {
    who("liu.shop101")
}
pub fn shop102() -> Acting {
    who("he.shop102")
}
/// The resident who filed the cases.
pub fn requester() -> Acting {
    who("zhou.resident")
}
/// A resident who did not file them.
pub fn neighbour() -> Acting {
    who("wu.resident")
}
pub fn officer() -> Acting {
    who("qian.officer")
}
pub fn lawyer() -> Acting {
    who("feng.lawyer")
}
pub fn volunteer() -> Acting {
    who("ma.volunteer")
}
pub fn party_member() -> Acting {
    who("dang.member")
}
pub fn organizer() -> Acting {
    who("sun.organizer")
}
pub fn monitor() -> Acting {
    who("gao.monitor")
}
pub fn auditor() -> Acting {
    who("he.auditor")
}
pub fn open311() -> Acting {
    who("app.open311")
}
pub fn system() -> Acting {
    Acting::system(unit("tonghui"))
}

// ---------------------------------------------------------------------------------------------
// Field values

pub fn fields<const N: usize>(pairs: [(&str, FieldValue); N]) -> Fields {
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

pub fn no_fields() -> Fields {
    Fields::new()
}

pub fn unit_f(id: &str) -> FieldValue {
    FieldValue::Unit(unit(id))
}

pub fn text(t: &str) -> FieldValue {
    FieldValue::Text(t.to_owned())
}

pub fn choice(c: &str) -> FieldValue {
    FieldValue::Choice(c.to_owned())
}

pub fn rating(r: u8) -> FieldValue {
    FieldValue::Rating(r)
}

pub fn int(n: i64) -> FieldValue {
    FieldValue::Integer(n)
}

pub fn when_f(local: &str) -> FieldValue {
    FieldValue::Datetime(at(local))
}
