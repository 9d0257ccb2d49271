//! Event versions: a golden fixture of every domain event payload at every version the
//! `domain_events!` declarations read, and old payloads read through the engine.
//!
//! Guards against an edit to a released payload struct (a field added, removed, reordered or
//! retyped, a variant moved, a serde attribute changed) that would make the log's old events
//! unreadable or read them as something else, and against a declared event or version that no
//! fixture covers. The fixtures are `tests/fixtures/events/<Type>.v<N>.bin` (the payload's
//! exact bytes, as the log stores them) and `<Type>.v<N>.json` (the same value as JSON, as
//! audit bundles and the service render it). They are frozen: a shape change is a new version
//! with fixtures of its own (`docs/engine.md`, "Changing an event's shape").
//!
//! `CIVICFLOW_BLESS_FIXTURES=1 cargo test -p civicflow-core --test core event_versions`
//! writes the fixtures that are missing and never touches one that exists.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::{Path, PathBuf};

use civicflow_core::calendar::{LocalDate, Span, YearSchedule};
use civicflow_core::domain::access::{
    AccessEvent, SessionEnded, SessionNonce, TokenHash, TokenId, TokenIssued, TokenRevoked,
};
use civicflow_core::domain::calendar_years::{
    CalendarEvent, CalendarYearPublished, CalendarZoneSet,
};
use civicflow_core::domain::case::{
    ActionTaken, CaseEvent, CaseMigrated, CaseOpened, CaseReopened, Channel, CoHandlerAdded,
    ContactViewed, DuplicateMerged, LeadAssigned, MergedInto, Place, PlaceRecorded,
    ReturnedToSender, SatisfactionRated,
};
use civicflow_core::domain::deadline::{
    CalendarStamp, DeadlineBasis, DeadlineMet, DeadlineMissed, DeadlineRecomputed, DeadlineSet,
    DeadlineSetV1, DeadlineStepReached, LadderStep,
};
use civicflow_core::domain::directive::{
    DirectiveEvent, DirectiveIssued, DirectiveKind, PartAcknowledged, PartAssigned, PartEvent,
    PartInfo, PartReported,
};
use civicflow_core::domain::fields::{FieldValue, Fields};
use civicflow_core::domain::lists::{
    ListEvent, ListItemAdded, ListItemLinked, ListItemRetired, ListItemUpdated, ListKind,
};
use civicflow_core::domain::merchants::{
    FlagAwarded, FlagAwardedV1, FlagColour, FlagRevoked, MonthlyAssessed, PointsDeducted,
    PointsRestored, QuarterlyRated, ScoreCycleStarted, StandingEvent,
};
use civicflow_core::domain::org::{
    ActorKind, ActorRegistered, ActorRegisteredV1, OrgEvent, RoleDefined, RoleGranted, RoleRevoked,
    Tier, UnitCreated, UnitMoved, UnitRenamed, UnitRetired,
};
use civicflow_core::domain::person::{PersonErased, PersonEvent, PersonRegistered};
use civicflow_core::domain::workflow::published::{WorkflowEvent, WorkflowPublished};
use civicflow_core::domain::workflow::{DefinitionRef, WorkflowId};
use civicflow_core::{
    ActorId, CaseId, DirectiveId, DomainEvent, ListItemId, PayloadError, PersonId, Role, Timestamp,
    UnitId,
};
use serde::Serialize;

// ---------------------------------------------------------------------------------------------
// The fixtures

/// Decodes stored bytes with today's code; `Err` says how the result differs from the value
/// expected.
type Check = Box<dyn Fn(&[u8]) -> Result<(), String>>;

/// One `(type, version)`: the sample encoded now with that version's struct, and how today's
/// code must read it back.
struct Fixture {
    event_type: &'static str,
    version: u16,
    /// The sample encoded with the struct of its version.
    bytes: Vec<u8>,
    /// The sample as JSON (pretty, with a final newline).
    json: String,
    /// Reads stored bytes: they must decode to the sample itself, or for an old version to
    /// the sample upcast.
    check: Check,
}

impl Fixture {
    fn name(&self) -> String {
        format!("{}.v{}", self.event_type, self.version)
    }
}

fn json_of<T: Serialize>(value: &T) -> String {
    let mut json = serde_json::to_string_pretty(value).expect("a payload renders as JSON");
    json.push('\n');
    json
}

/// The fixture of an event at the version written today.
fn written<E>(event: E) -> Fixture
where
    E: DomainEvent + Serialize + PartialEq + Debug + 'static,
{
    let (event_type, version) = (event.event_type(), event.schema_version());
    Fixture {
        event_type,
        version,
        bytes: event.to_payload().expect("the sample encodes"),
        json: json_of(&event),
        check: Box::new(move |bytes| {
            let read = E::from_payload(event_type, version, bytes).map_err(|e| e.to_string())?;
            if read == event {
                Ok(())
            } else {
                Err(format!("decodes to {read:#?}\nnot to {event:#?}"))
            }
        }),
    }
}

/// The fixture of an older version: `old` as it was written (its own struct), and `upcast`,
/// the event today's code must make of it.
fn upcast<O, E>(old: O, version: u16, upcast: E) -> Fixture
where
    O: Serialize,
    E: DomainEvent + PartialEq + Debug + 'static,
{
    let event_type = upcast.event_type();
    assert!(
        version < upcast.schema_version(),
        "{event_type} v{version} is not older than v{}",
        upcast.schema_version()
    );
    Fixture {
        event_type,
        version,
        bytes: civicflow_core::payload::encode(&old).expect("the sample encodes"),
        json: json_of(&old),
        check: Box::new(move |bytes| {
            let read = E::from_payload(event_type, version, bytes).map_err(|e| e.to_string())?;
            if read == upcast {
                Ok(())
            } else {
                Err(format!("upcasts to {read:#?}\nnot to {upcast:#?}"))
            }
        }),
    }
}

/// An enum of domain events with every `(type, version)` it declares and the fixtures that
/// cover them.
struct Reader {
    name: &'static str,
    known: &'static [(&'static str, u16)],
    fixtures: Vec<Fixture>,
}

/// Every enum `domain_events!` declares (`every_domain_events_declaration_has_a_reader_here`
/// finds a new one), with its fixtures.
fn readers() -> Vec<Reader> {
    vec![
        Reader {
            name: "CaseEvent",
            known: CaseEvent::KNOWN,
            fixtures: case_events(),
        },
        Reader {
            name: "DirectiveEvent",
            known: DirectiveEvent::KNOWN,
            fixtures: directive_events(),
        },
        Reader {
            name: "PartEvent",
            known: PartEvent::KNOWN,
            fixtures: part_events(),
        },
        Reader {
            name: "OrgEvent",
            known: OrgEvent::KNOWN,
            fixtures: org_events(),
        },
        Reader {
            name: "ListEvent",
            known: ListEvent::KNOWN,
            fixtures: list_events(),
        },
        Reader {
            name: "StandingEvent",
            known: StandingEvent::KNOWN,
            fixtures: standing_events(),
        },
        Reader {
            name: "PersonEvent",
            known: PersonEvent::KNOWN,
            fixtures: person_events(),
        },
        Reader {
            name: "AccessEvent",
            known: AccessEvent::KNOWN,
            fixtures: access_events(),
        },
        Reader {
            name: "CalendarEvent",
            known: CalendarEvent::KNOWN,
            fixtures: calendar_events(),
        },
        Reader {
            name: "WorkflowEvent",
            known: WorkflowEvent::KNOWN,
            fixtures: workflow_events(),
        },
    ]
}

// Sample values: every optional field set, every list and map non-empty, enums at a variant
// other than the first where there is one (so that a reordered enum changes the bytes), text
// with characters beyond ASCII.

/// Wednesday 2026-04-01 09:30:00.123456 in Asia/Shanghai, plus `micros`.
fn at(micros: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_775_007_000_123_456 + micros)
}

fn unit(id: &str) -> UnitId {
    UnitId::new(id).expect("a valid unit id")
}

fn actor(id: &str) -> ActorId {
    ActorId::new(id).expect("a valid actor id")
}

fn role(name: &str) -> Role {
    Role::new(name).expect("a valid role")
}

fn case_id(n: u8) -> CaseId {
    CaseId::from_bytes(uuid_bytes(n))
}

fn person() -> PersonId {
    PersonId::from_bytes(uuid_bytes(0x50))
}

fn directive() -> DirectiveId {
    DirectiveId::from_bytes(uuid_bytes(0xd1))
}

/// The bytes of a UUID v7 whose last byte is `n`.
fn uuid_bytes(n: u8) -> [u8; 16] {
    [
        0x01, 0x9d, 0x46, 0x2b, 0x8f, 0x40, 0x70, 0x00, 0x80, 0x00, 0, 0, 0, 0, 0, n,
    ]
}

fn workflow(version: u32) -> DefinitionRef {
    DefinitionRef {
        id: WorkflowId::new("service-request").expect("a valid workflow id"),
        version,
    }
}

/// One value of every field kind.
fn all_field_kinds() -> Fields {
    let values = [
        ("category", FieldValue::Choice("路灯 street light".into())),
        (
            "checks",
            FieldValue::Choices(vec!["photo".into(), "visit".into()]),
        ),
        ("count", FieldValue::Integer(-3)),
        ("due", FieldValue::Datetime(at(60_000_000))),
        ("duplicate_of", FieldValue::Case(case_id(9))),
        ("length_m", FieldValue::Number(12.75)),
        ("note", FieldValue::Text("灯不亮 the lamp is out".into())),
        ("rating", FieldValue::Rating(4)),
        ("to", FieldValue::Unit(unit("grid-1"))),
        ("urgent", FieldValue::Bool(true)),
    ];
    values
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

fn stamp(provisional: bool) -> CalendarStamp {
    CalendarStamp {
        revision: 3,
        zone: "Asia/Shanghai".into(),
        missing_years: if provisional { vec![2027] } else { Vec::new() },
    }
}

fn deadline_events<E: DomainEvent + Serialize + PartialEq + Debug + 'static>(
    wrap_set: fn(DeadlineSet) -> E,
    wrap_recomputed: fn(DeadlineRecomputed) -> E,
    wrap_met: fn(DeadlineMet) -> E,
    wrap_missed: fn(DeadlineMissed) -> E,
    wrap_step: fn(DeadlineStepReached) -> E,
) -> Vec<Fixture> {
    vec![
        written(wrap_set(DeadlineSet {
            seq: 2,
            stage: "dispatched".into(),
            set_at: at(0),
            due_at: at(7_200_000_000),
            remind_at: Some(at(3_600_000_000)),
            escalate: true,
            breach_at: Some(at(14_400_000_000)),
            basis: Some(DeadlineBasis {
                within: Span::WorkingDays(3),
                remind_after: Some(Span::WorkingHours(4)),
                breach_after: Some(Span::Calendar(std::time::Duration::from_secs(86_400))),
                calendar: stamp(true),
            }),
        })),
        // Version 1 recorded no basis: it reads as version 2 without one (never provisional).
        upcast(
            DeadlineSetV1 {
                seq: 2,
                stage: "dispatched".into(),
                set_at: at(0),
                due_at: at(7_200_000_000),
                remind_at: Some(at(3_600_000_000)),
                escalate: true,
                breach_at: Some(at(14_400_000_000)),
            },
            1,
            wrap_set(DeadlineSet {
                seq: 2,
                stage: "dispatched".into(),
                set_at: at(0),
                due_at: at(7_200_000_000),
                remind_at: Some(at(3_600_000_000)),
                escalate: true,
                breach_at: Some(at(14_400_000_000)),
                basis: None,
            }),
        ),
        written(wrap_recomputed(DeadlineRecomputed {
            seq: 2,
            was_due_at: at(7_200_000_000),
            due_at: at(9_000_000_000),
            remind_at: Some(at(3_600_000_000)),
            breach_at: None,
            calendar: stamp(false),
        })),
        written(wrap_met(DeadlineMet {
            seq: 2,
            at: at(1_000),
        })),
        written(wrap_missed(DeadlineMissed {
            seq: 3,
            at: at(9_000_000_000),
            due_at: at(7_200_000_000),
        })),
        written(wrap_step(DeadlineStepReached {
            seq: 3,
            step: LadderStep::Escalate,
            unit: unit("tonghui"),
            due: at(7_200_000_000),
            at: at(7_200_500_000),
        })),
    ]
}

fn case_events() -> Vec<Fixture> {
    let mut fixtures = vec![
        written(CaseEvent::Opened(CaseOpened {
            case: case_id(1),
            workflow: workflow(2),
            stage: "received".into(),
            unit: unit("grid-1"),
            title: "路灯不亮 street light out".into(),
            description: "通惠路 12 号门口的路灯三天没亮了".into(),
            fields: all_field_kinds(),
            requester: Some(person()),
            filed_by: actor("li.grid1"),
            filed_as: role("grid_worker"),
            channel: Channel::Open311,
            at: at(0),
        })),
        written(CaseEvent::ActionTaken(ActionTaken {
            action: "dispatch".into(),
            from: "received".into(),
            to: "dispatched".into(),
            fields: all_field_kinds(),
            at: at(5_000),
        })),
        written(CaseEvent::LeadAssigned(LeadAssigned {
            unit: unit("market-regulation"),
            previous: unit("grid-1"),
            by: unit("tonghui"),
        })),
        written(CaseEvent::CoHandlerAdded(CoHandlerAdded {
            unit: unit("yiwu-heart"),
        })),
        written(CaseEvent::ReturnedToSender(ReturnedToSender {
            from: unit("market-regulation"),
            to: unit("tonghui"),
        })),
        written(CaseEvent::SatisfactionRated(SatisfactionRated {
            rating: 5,
        })),
        written(CaseEvent::MergedInto(MergedInto { target: case_id(2) })),
        written(CaseEvent::DuplicateMerged(DuplicateMerged {
            duplicate: case_id(3),
        })),
        written(CaseEvent::Reopened(CaseReopened {
            count: 2,
            lead: unit("grid-1"),
        })),
        written(CaseEvent::Migrated(CaseMigrated {
            from: workflow(1),
            to: workflow(2),
        })),
        written(CaseEvent::ContactViewed(ContactViewed {
            person: person(),
            purpose: "回访 return visit".into(),
            at: at(86_400_000_000),
        })),
        written(CaseEvent::PlaceRecorded(PlaceRecorded {
            place: Place {
                lat: Some(29.3069),
                long: Some(120.0751),
                address: Some("义乌市通惠路 12 号".into()),
                address_id: Some("addr-0042".into()),
                media_url: Some("https://photos.example/lamp.jpg".into()),
            },
            at: at(0),
        })),
    ];
    fixtures.extend(deadline_events(
        CaseEvent::DeadlineSet,
        CaseEvent::DeadlineRecomputed,
        CaseEvent::DeadlineMet,
        CaseEvent::DeadlineMissed,
        CaseEvent::DeadlineStepReached,
    ));
    fixtures
}

fn directive_events() -> Vec<Fixture> {
    vec![written(DirectiveEvent::Issued(DirectiveIssued {
        directive: directive(),
        title: "诚信消费月 honest trading month".into(),
        body: "每家商户张贴明码标价 every shop shows its prices".into(),
        kind: DirectiveKind::ConsumerProtection,
        issued_by: unit("tonghui"),
        parts: vec![
            PartInfo {
                index: 1,
                unit: unit("grid-1"),
                parent: None,
            },
            PartInfo {
                index: 2,
                unit: unit("yiwu-heart"),
                parent: Some(1),
            },
        ],
        at: at(0),
    }))]
}

fn part_events() -> Vec<Fixture> {
    let mut fixtures = vec![
        written(PartEvent::Assigned(PartAssigned {
            directive: directive(),
            part: PartInfo {
                index: 2,
                unit: unit("yiwu-heart"),
                parent: Some(1),
            },
        })),
        written(PartEvent::Acknowledged(PartAcknowledged {
            note: "收到 received".into(),
            at: at(60_000_000),
        })),
        written(PartEvent::Reported(PartReported {
            note: "已完成 done: 24 shops".into(),
            at: at(172_800_000_000),
        })),
    ];
    // The same deadline events as a case's: one fixture each, read by both enums.
    fixtures.extend(deadline_events(
        PartEvent::DeadlineSet,
        PartEvent::DeadlineRecomputed,
        PartEvent::DeadlineMet,
        PartEvent::DeadlineMissed,
        PartEvent::DeadlineStepReached,
    ));
    fixtures
}

fn org_events() -> Vec<Fixture> {
    vec![
        written(OrgEvent::UnitCreated(UnitCreated {
            unit: unit("shop-yh-101"),
            name: "义乌之心 101 茶饮".into(),
            tier: Tier::Shop,
            parent: Some(unit("yiwu-heart")),
        })),
        written(OrgEvent::UnitRenamed(UnitRenamed {
            unit: unit("shop-yh-101"),
            from: "101 茶饮".into(),
            to: "义乌之心 101 茶饮".into(),
        })),
        written(OrgEvent::UnitMoved(UnitMoved {
            unit: unit("intime"),
            from: Some(unit("grid-1")),
            to: unit("grid-2"),
        })),
        // Version 1 did not record who registered the actor: it reads as registered by the
        // system (seen where the actor holds a role).
        upcast(
            ActorRegisteredV1 {
                actor: actor("scheduler"),
                name: "截止时间调度 deadline scheduler".into(),
                kind: ActorKind::System,
            },
            1,
            OrgEvent::ActorRegistered(ActorRegistered {
                actor: actor("scheduler"),
                name: "截止时间调度 deadline scheduler".into(),
                kind: ActorKind::System,
                registered_at: None,
            }),
        ),
        written(OrgEvent::ActorRegistered(ActorRegistered {
            actor: actor("wang.staff"),
            name: "王 staff".into(),
            kind: ActorKind::Person,
            registered_at: Some(unit("tonghui")),
        })),
        written(OrgEvent::RoleDefined(RoleDefined {
            role: role("street_sweeper"),
            name: "保洁员 street sweeper".into(),
        })),
        written(OrgEvent::UnitRetired(UnitRetired {
            unit: unit("shop-yh-101"),
        })),
        written(OrgEvent::RoleGranted(RoleGranted {
            actor: actor("li.grid1"),
            role: role("grid_worker"),
            unit: unit("grid-1"),
        })),
        written(OrgEvent::RoleRevoked(RoleRevoked {
            actor: actor("li.grid1"),
            role: role("grid_worker"),
            unit: unit("grid-2"),
        })),
    ]
}

fn list_events() -> Vec<Fixture> {
    vec![
        written(ListEvent::Added(ListItemAdded {
            item: ListItemId::from_bytes(uuid_bytes(0x11)),
            list: ListKind::Needs,
            title: "老人助餐 meals for the elderly".into(),
            description: "每周三次送餐 three deliveries a week".into(),
            unit: unit("tonghui"),
            at: at(0),
        })),
        written(ListEvent::Updated(ListItemUpdated {
            title: "老人助餐 meals".into(),
            description: "每周五次 five a week".into(),
        })),
        written(ListEvent::Linked(ListItemLinked { case: case_id(4) })),
        written(ListEvent::Retired(ListItemRetired {
            reason: "已满足 met".into(),
        })),
    ]
}

fn standing_events() -> Vec<Fixture> {
    let shop = || unit("shop-yh-101");
    vec![
        written(StandingEvent::CycleStarted(ScoreCycleStarted {
            unit: shop(),
            cycle: "2026".into(),
            points: 12,
            at: at(0),
        })),
        written(StandingEvent::Deducted(PointsDeducted {
            unit: shop(),
            cycle: "2026".into(),
            points: 3,
            left: 9,
            reason: "占道经营 goods on the pavement".into(),
            at: at(1_000),
        })),
        written(StandingEvent::Restored(PointsRestored {
            unit: shop(),
            cycle: "2026".into(),
            points: 1,
            left: 10,
            reason: "整改到位 put right".into(),
            at: at(2_000),
        })),
        written(StandingEvent::FlagAwarded(FlagAwarded {
            unit: shop(),
            colour: FlagColour::Yellow,
            period: "2026-04".into(),
            reason: "投诉较多 many complaints".into(),
            at: Some(at(2_500)),
        })),
        // Version 1 recorded no moment: it reads as version 2 without one.
        upcast(
            FlagAwardedV1 {
                unit: shop(),
                colour: FlagColour::Yellow,
                period: "2026-04".into(),
                reason: "投诉较多 many complaints".into(),
            },
            1,
            StandingEvent::FlagAwarded(FlagAwarded {
                unit: shop(),
                colour: FlagColour::Yellow,
                period: "2026-04".into(),
                reason: "投诉较多 many complaints".into(),
                at: None,
            }),
        ),
        written(StandingEvent::FlagRevoked(FlagRevoked {
            unit: shop(),
            period: "2026-04".into(),
            reason: "复核不符 not upheld".into(),
        })),
        written(StandingEvent::MonthlyAssessed(MonthlyAssessed {
            unit: shop(),
            month: "2026-04".into(),
            score: 96,
            notes: "卫生良好 clean".into(),
        })),
        written(StandingEvent::QuarterlyRated(QuarterlyRated {
            unit: shop(),
            quarter: "2026Q2".into(),
            recommended: true,
            score: 95,
        })),
    ]
}

fn person_events() -> Vec<Fixture> {
    vec![
        written(PersonEvent::Registered(PersonRegistered {
            person: person(),
            unit: unit("grid-1"),
            at: at(0),
        })),
        written(PersonEvent::Erased(PersonErased {
            person: person(),
            reason: "个人信息保护法 erasure request".into(),
            at: at(3_000),
        })),
    ]
}

fn access_events() -> Vec<Fixture> {
    let token = || TokenId::parse("0f1e2d3c4b5a6978").expect("a valid token id");
    vec![
        written(AccessEvent::Issued(TokenIssued {
            token: token(),
            hash: TokenHash([0xa5; 32]),
            actor: actor("wang.admin"),
            role: role("community_admin"),
            unit: unit("tonghui"),
            name: "前台平板 front desk tablet".into(),
            at: at(0),
        })),
        written(AccessEvent::Revoked(TokenRevoked {
            token: token(),
            reason: "设备丢失 lost".into(),
            at: at(4_000),
        })),
        written(AccessEvent::Ended(SessionEnded {
            token: token(),
            session: SessionNonce([
                0x3c, 0x5a, 0x00, 0xff, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x80,
                0x7f, 0xa5,
            ]),
            // The session began an hour before it was ended, for eight hours.
            expires_at: at(7 * 3_600_000_000 + 2_000),
            at: at(2_000),
        })),
    ]
}

fn calendar_events() -> Vec<Fixture> {
    let date = |text: &str| LocalDate::parse(text).expect("a date");
    vec![
        written(CalendarEvent::YearPublished(CalendarYearPublished {
            schedule: YearSchedule {
                year: 2027,
                source: "国务院办公厅关于2027年部分节假日安排的通知 (sample)".into(),
                off: vec![
                    (date("2027-01-01"), date("2027-01-03")),
                    (date("2027-02-06"), date("2027-02-13")),
                ],
                work: vec![date("2027-02-14")],
            },
            revision: 2,
            at: at(5_000),
        })),
        written(CalendarEvent::ZoneSet(CalendarZoneSet {
            zone: "Europe/Berlin".into(),
            at: at(6_000),
        })),
    ]
}

fn workflow_events() -> Vec<Fixture> {
    vec![written(WorkflowEvent::Published(WorkflowPublished {
        workflow: WorkflowId::new("street-lighting").expect("an id"),
        version: 2,
        definition: "id = \"street-lighting\"\nversion = 2\nname = \"路灯报修 street lighting\"\n"
            .into(),
        at: at(7_000),
    }))]
}

// ---------------------------------------------------------------------------------------------
// The files

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/events")
}

fn blessing() -> bool {
    std::env::var_os("CIVICFLOW_BLESS_FIXTURES").is_some()
}

/// The stored fixture `file`; when it is missing and fixtures are being blessed, `fresh` is
/// written first. An existing file is never written: a released version is frozen.
fn stored(file: &str, fresh: &[u8]) -> Result<Vec<u8>, String> {
    let path = fixtures_dir().join(file);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && blessing() => {
            std::fs::create_dir_all(fixtures_dir()).map_err(|e| e.to_string())?;
            std::fs::write(&path, fresh).map_err(|e| format!("writing {file}: {e}"))?;
            Ok(fresh.to_vec())
        }
        Err(e) => Err(format!(
            "{file}: {e}; a new event or version needs its fixtures: run `CIVICFLOW_BLESS_FIXTURES=1 cargo test -p civicflow-core --test core event_versions` and commit them"
        )),
    }
}

/// What is wrong with one fixture, if anything.
fn check_fixture(fixture: &Fixture) -> Vec<String> {
    let name = fixture.name();
    let mut problems = Vec::new();
    match stored(&format!("{name}.bin"), &fixture.bytes) {
        Err(e) => problems.push(e),
        Ok(bytes) => {
            // Old bytes still decode, to the value expected.
            if let Err(e) = (fixture.check)(&bytes) {
                problems.push(format!("{name}.bin does not read back: {e}"));
            }
            // The struct still writes these bytes: a changed shape changes them.
            if bytes != fixture.bytes {
                problems.push(format!(
                    "{name}: the sample now encodes as\n  {}\nnot as the fixture's\n  {}\n(a released payload struct changed: make a new version instead, docs/engine.md)",
                    hex(&fixture.bytes),
                    hex(&bytes)
                ));
            }
        }
    }
    match stored(&format!("{name}.json"), fixture.json.as_bytes()) {
        Err(e) => problems.push(e),
        Ok(json) if json != fixture.json.as_bytes() => problems.push(format!(
            "{name}: the sample now renders as\n{}\nnot as {name}.json:\n{}\n(a field renamed or retyped changes what bundles and the service show)",
            fixture.json,
            String::from_utf8_lossy(&json)
        )),
        Ok(_) => {}
    }
    problems
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn every_fixture_decodes_to_its_value_and_its_value_encodes_to_it() {
    let mut problems = Vec::new();
    // A fixture shared by two enums (the deadline events) is checked with each.
    for reader in readers() {
        for fixture in &reader.fixtures {
            problems.extend(
                check_fixture(fixture)
                    .into_iter()
                    .map(|p| format!("{}: {p}", reader.name)),
            );
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n\n"));
}

#[test]
fn every_declared_event_and_version_has_a_fixture_and_every_fixture_is_still_read() {
    let mut problems = Vec::new();
    let mut expected_files = BTreeSet::new();
    for reader in readers() {
        let covered: BTreeMap<(&str, u16), usize> =
            reader
                .fixtures
                .iter()
                .fold(BTreeMap::new(), |mut counts, fixture| {
                    *counts
                        .entry((fixture.event_type, fixture.version))
                        .or_default() += 1;
                    counts
                });
        for &(event_type, version) in reader.known {
            match covered.get(&(event_type, version)) {
                None => problems.push(format!(
                    "{}: {event_type} v{version} is declared but has no fixture: add a sample to this file",
                    reader.name
                )),
                Some(1) => {}
                Some(n) => problems.push(format!(
                    "{}: {event_type} v{version} has {n} samples; one file holds one",
                    reader.name
                )),
            }
        }
        for &(event_type, version) in covered.keys() {
            if !reader.known.contains(&(event_type, version)) {
                problems.push(format!(
                    "{}: the fixture {event_type}.v{version} is no longer declared: old logs hold it, so keep reading it (declare it with its upcast)",
                    reader.name
                ));
            }
            expected_files.insert(format!("{event_type}.v{version}.bin"));
            expected_files.insert(format!("{event_type}.v{version}.json"));
        }
    }
    // A file no sample stands for is a version that was dropped from this test.
    if let Ok(entries) = std::fs::read_dir(fixtures_dir()) {
        for entry in entries {
            let name = entry
                .expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            if !expected_files.contains(&name) {
                problems.push(format!(
                    "tests/fixtures/events/{name} belongs to no sample: a released version must stay covered"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The enums are listed by hand in `readers`; this finds one that is not.
#[test]
fn every_domain_events_declaration_has_a_reader_here() {
    let listed: BTreeSet<&str> = readers().iter().map(|r| r.name).collect();
    let domain = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/domain");
    let mut declared = BTreeSet::new();
    for entry in std::fs::read_dir(&domain).expect("src/domain is readable") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("a source file");
        for declaration in source.split("\ndomain_events! {").skip(1) {
            let name = declaration
                .split_once("pub enum ")
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or_else(|| panic!("{}: a declaration without an enum", path.display()));
            declared.insert(name.to_owned());
        }
    }
    assert!(
        declared.len() >= 8,
        "found only {declared:?} in {}",
        domain.display()
    );
    let missing: Vec<_> = declared
        .iter()
        .filter(|d| !listed.contains(d.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "declared with domain_events! but without fixtures here: {missing:?}"
    );
}

/// Bad bytes are errors naming the type and version, never a panic nor a wrong value.
#[test]
fn damaged_or_unknown_payloads_are_errors_naming_type_and_version() {
    for reader in readers() {
        for fixture in &reader.fixtures {
            let name = fixture.name();
            for cut in 0..fixture.bytes.len() {
                let problem = (fixture.check)(&fixture.bytes[..cut])
                    .expect_err(&format!("{name} cut to {cut} bytes decoded"));
                assert!(
                    problem.contains(&format!(
                        "payload of {} version {} is malformed",
                        fixture.event_type, fixture.version
                    )),
                    "{name} cut to {cut}: {problem}"
                );
            }
            let mut longer = fixture.bytes.clone();
            longer.push(0);
            assert!(
                (fixture.check)(&longer).is_err(),
                "{name} with a byte more decoded"
            );
        }
    }
    let newest = |event_type: &str| {
        StandingEvent::KNOWN
            .iter()
            .filter(|(t, _)| *t == event_type)
            .map(|&(_, v)| v)
            .max()
            .expect("declared")
    };
    let next = newest("FlagRevoked") + 1;
    assert_eq!(
        StandingEvent::from_payload("FlagRevoked", next, &[]),
        Err(PayloadError::Newer {
            event_type: "FlagRevoked".into(),
            schema_version: next,
            newest: next - 1,
        })
    );
    assert_eq!(
        StandingEvent::from_payload("CaseOpened", 1, &[]),
        Err(PayloadError::unknown("CaseOpened", 1)),
        "a case event is not a standing event"
    );
}

// ---------------------------------------------------------------------------------------------
// A log written before an upgrade

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "civicflow-event-versions-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A shop's standing holds a flag awarded by an older civicflow: the log has `FlagAwarded` at
/// version 1 (the fixture's very bytes). The engine folds it into the standing, decides on it,
/// writes new awards at version 2 beside it, and reads both again after a restart.
#[test]
fn the_engine_reads_a_log_written_at_version_1_and_writes_version_2_beside_it() {
    use std::sync::Arc;

    use civicflow_core::domain::merchants::{merchant_stream, StandingCommand};
    use civicflow_core::domain::org::{Acting, OrgCommand};
    use civicflow_core::domain::Rejection;
    use civicflow_core::engine::{Command, Engine, EngineConfig, SubmitError};
    use civicflow_core::vault::MasterKey;
    use civicflow_core::{
        Actor, AppendRequest, CorrelationId, EventType, ExpectedVersion, ManualClock, NewEvent,
        Version,
    };

    let scratch = Scratch::new("engine");
    let key = MasterKey::generate().expect("randomness");
    let now = Timestamp::from_unix_seconds(1_775_007_000);
    let clock = ManualClock::new(now);
    let open = || {
        Engine::open(
            EngineConfig::new(&scratch.0)
                .clock(Arc::new(clock.clone()))
                .master_key(key.clone()),
        )
        .expect("the engine opens")
    };
    let system = Acting::system(unit("tonghui"));
    let shop = unit("shop-yh-101");
    let engine = open();
    for (id, tier, parent) in [
        ("tonghui", Tier::Community, None),
        ("grid-1", Tier::Grid, Some("tonghui")),
        ("yiwu-heart", Tier::Enterprise, Some("grid-1")),
        ("shop-yh-101", Tier::Shop, Some("yiwu-heart")),
    ] {
        engine
            .submit(
                &system,
                Command::Org(OrgCommand::CreateUnit {
                    id: unit(id),
                    name: id.into(),
                    tier,
                    parent: parent.map(unit),
                }),
            )
            .expect("unit created");
    }

    // What an older civicflow wrote: the v1 fixture, appended as it was stored.
    let v1 = std::fs::read(fixtures_dir().join("FlagAwarded.v1.bin")).expect("the v1 fixture");
    let stream = merchant_stream(&shop).expect("a slug");
    engine
        .log()
        .append(AppendRequest::to_stream(
            stream.clone(),
            ExpectedVersion::NoStream,
            vec![NewEvent::new(
                EventType::new("FlagAwarded").expect("valid"),
                1,
                v1,
            )],
            Actor::parse("wang.admin", "community_admin", "tonghui").expect("valid"),
            CorrelationId::new_v7(now),
        ))
        .expect("appended")
        .expect("no conflict");

    let standing = engine.standing(&system, &shop).expect("the engine reads");
    assert_eq!(
        standing.flags.into_iter().collect::<Vec<_>>(),
        vec![("2026-04".to_owned(), FlagColour::Yellow)],
        "the v1 award is in the fold"
    );

    // Decided on the upcast state: the April flag is held, so it can be revoked, not re-awarded.
    let award = |period: &str| Command::Standing {
        unit: shop.clone(),
        command: StandingCommand::AwardFlag {
            colour: FlagColour::Red,
            period: period.into(),
            reason: "诚信经营 honest trading".into(),
        },
    };
    match engine.submit(&system, award("2026-04")) {
        Err(SubmitError::Rejected(Rejection::Invalid { field, reason })) => assert_eq!(
            (field.as_str(), reason.as_str()),
            (
                "period",
                "shop-yh-101 already holds a yellow flag for 2026-04; revoke it first"
            )
        ),
        other => panic!("the v1 flag is held: {other:?}"),
    }
    engine
        .submit(
            &system,
            Command::Standing {
                unit: shop.clone(),
                command: StandingCommand::RevokeFlag {
                    period: "2026-04".into(),
                    reason: "复核不符 not upheld".into(),
                },
            },
        )
        .expect("the v1 flag is revoked");
    engine
        .submit(&system, award("2026-05"))
        .expect("a new award");
    drop(engine);

    let engine = open();
    let stored = engine
        .log()
        .read_stream(&stream, Version::FIRST, 10)
        .expect("the stream reads");
    let read: Vec<(u16, StandingEvent)> = stored
        .iter()
        .map(|e| (e.schema_version, e.decode().expect("every version decodes")))
        .collect();
    assert_eq!(read.len(), 3);
    assert_eq!(
        read[0],
        (
            1,
            StandingEvent::FlagAwarded(FlagAwarded {
                unit: shop.clone(),
                colour: FlagColour::Yellow,
                period: "2026-04".into(),
                reason: "投诉较多 many complaints".into(),
                at: None,
            })
        ),
        "stored at v1, read as v2 without a moment"
    );
    assert_eq!(
        read[2],
        (
            2,
            StandingEvent::FlagAwarded(FlagAwarded {
                unit: shop.clone(),
                colour: FlagColour::Red,
                period: "2026-05".into(),
                reason: "诚信经营 honest trading".into(),
                at: Some(now),
            })
        ),
        "written today at v2, with its moment"
    );
    let standing = engine.standing(&system, &shop).expect("the engine reads");
    assert_eq!(
        standing.flags.into_iter().collect::<Vec<_>>(),
        vec![("2026-05".to_owned(), FlagColour::Red)]
    );
    assert_eq!(standing.version, Version::new(3));
}
