//! The case commands that are not workflow actions: opening, migrating, ladder steps,
//! contact views and accepting a duplicate. Same helper, same style.

use std::sync::OnceLock;

use civicflow_core::domain::case::{
    CaseCommand, CaseEvent, CaseMigrated, CaseOpened, Channel, ContactViewed, DeadlineStepReached,
    DuplicateMerged, LadderStep, OpenCase,
};
use civicflow_core::domain::fields::{FieldValue, Fields};
use civicflow_core::domain::org::Acting;
use civicflow_core::domain::workflow::{Action, DefinitionRegistry, Scope};
use civicflow_core::domain::Rejection;

use super::fixture::*;
use super::scenario::*;
use super::{consumer_dispute as cd, one_stop_errand as os, service_request as sr};

// Open ----------------------------------------------------------------------------------------

fn open(workflow_id: &str, at_unit: &str, title: &str, given: Fields) -> CaseCommand {
    CaseCommand::Open(OpenCase {
        case: case_id(),
        workflow: workflow(workflow_id),
        version: None,
        unit: unit(at_unit),
        title: title.to_owned(),
        description: "  三天没亮了 out for three nights  ".to_owned(),
        fields: given,
        requester: Some(person()),
        channel: Channel::Door,
        place: None,
        new_requester: false,
    })
}

fn open_version(workflow_id: &str, version: u32) -> CaseCommand {
    match open(workflow_id, "tonghui", "路灯不亮", intake(workflow_id)) {
        CaseCommand::Open(mut o) => {
            o.version = Some(version);
            CaseCommand::Open(o)
        }
        _ => unreachable!("open builds an Open command"),
    }
}

fn opened(workflow_id: &str, at_unit: &str, title: &str, given: Fields, by: &Acting) -> CaseEvent {
    CaseEvent::Opened(CaseOpened {
        case: case_id(),
        workflow: reference(workflow_id, 1),
        stage: built_in()
            .latest(&workflow(workflow_id))
            .expect("built in")
            .initial_stage
            .clone(),
        unit: unit(at_unit),
        title: title.to_owned(),
        description: "三天没亮了 out for three nights".to_owned(),
        fields: given,
        requester: Some(person()),
        filed_by: by.actor.clone(),
        filed_as: by.role.clone(),
        channel: Channel::Door,
        at: at(NOW),
    })
}

/// Why a unit may not file at a sibling or a cousin.
const SIBLING_RULE: &str = "a unit files a case at itself, a unit below it or a unit above it, never at a sibling or a cousin";

pub fn open_table() -> Vec<Row> {
    let street_light = fields([
        ("category", choice("public_facilities")),
        ("location", text("新马路印象")),
    ]);
    let refund = fields([
        ("kind", choice("refund")),
        ("shop", unit_f("shop-yh-101")),
        ("amount", FieldValue::Number(199.0)),
    ]);
    let errand = fields([("errand", choice("business_licence"))]);
    let need = fields([("need", choice("activity"))]);
    let longest = "灯".repeat(200);
    vec![
        // Title and description are trimmed; the first stage's deadline is set.
        allowed(
            Scenario::new("service-request").when(
                requester(),
                open("service-request", "tonghui", "  路灯不亮  ", street_light.clone()),
            ),
            vec![
                opened(
                    "service-request",
                    "tonghui",
                    "路灯不亮",
                    street_light.clone(),
                    &requester(),
                ),
                set(
                    1,
                    "received",
                    "2026-09-28 11:00",
                    Some("2026-09-28 09:00"),
                    Some("2026-09-28 16:30"),
                ),
            ],
        ),
        // A title of exactly 200 characters.
        allowed(
            Scenario::new("service-request").when(
                grid1(),
                open("service-request", "grid-1", &longest, street_light.clone()),
            ),
            vec![
                opened(
                    "service-request",
                    "grid-1",
                    &longest,
                    street_light.clone(),
                    &grid1(),
                ),
                set(
                    1,
                    "received",
                    "2026-09-28 11:00",
                    Some("2026-09-28 09:00"),
                    Some("2026-09-28 16:30"),
                ),
            ],
        ),
        // The monthly joint meeting: 30 wall-clock days, reminded after 21, breached 15 later.
        allowed(
            Scenario::new("district-affairs").when(
                party_member(),
                open("district-affairs", "grid-1", "骑手驿站 a rest stop for riders", need.clone()),
            ),
            vec![
                opened(
                    "district-affairs",
                    "grid-1",
                    "骑手驿站 a rest stop for riders",
                    need.clone(),
                    &party_member(),
                ),
                set(
                    1,
                    "collected",
                    "2026-10-24 16:00",
                    Some("2026-10-15 16:00"),
                    Some("2026-11-08 16:00"),
                ),
            ],
        ),
        allowed(
            Scenario::new("consumer-dispute").when(
                open311(),
                open("consumer-dispute", "grid-1", "拒绝退款 refused a refund", refund.clone()),
            ),
            vec![
                opened(
                    "consumer-dispute",
                    "grid-1",
                    "拒绝退款 refused a refund",
                    refund.clone(),
                    &open311(),
                ),
                set(
                    1,
                    "accepted",
                    "2026-09-28 17:30",
                    Some("2026-09-28 11:00"),
                    Some("2026-09-29 17:30"),
                ),
            ],
        ),
        allowed(
            Scenario::new("one-stop-errand").when(
                shop101(),
                open("one-stop-errand", "shop-yh-101", "营业执照 a business licence", errand.clone()),
            ),
            vec![
                opened(
                    "one-stop-errand",
                    "shop-yh-101",
                    "营业执照 a business licence",
                    errand.clone(),
                    &shop101(),
                ),
                set(
                    1,
                    "requested",
                    "2026-09-28 17:30",
                    None,
                    Some("2026-09-29 17:30"),
                ),
            ],
        ),
        // A unit files at itself, below or above it; never at a sibling or a cousin. A
        // resident anywhere (the allowed rows above: at the community, at grid 1).
        refused(
            Scenario::new("service-request").when(
                shop101(),
                open("service-request", "shop-yh-102", "噪音 noise", street_light.clone()),
            ),
            out_of_reach(&shop101(), "unit", "shop-yh-102", SIBLING_RULE),
        ),
        refused(
            Scenario::new("service-request").when(
                grid1(),
                open("service-request", "shop-it-201", "油烟 fumes", street_light.clone()),
            ),
            out_of_reach(&grid1(), "unit", "shop-it-201", SIBLING_RULE),
        ),
        refused(
            Scenario::new("service-request").when(
                shop101(),
                open("service-request", "market-regulation", "价格 prices", street_light.clone()),
            ),
            out_of_reach(&shop101(), "unit", "market-regulation", SIBLING_RULE),
        ),
        allowed(
            Scenario::new("service-request").when(
                shop101(),
                open("service-request", "grid-1", "路灯不亮", street_light.clone()),
            ),
            vec![
                opened("service-request", "grid-1", "路灯不亮", street_light.clone(), &shop101()),
                set(
                    1,
                    "received",
                    "2026-09-28 11:00",
                    Some("2026-09-28 09:00"),
                    Some("2026-09-28 16:30"),
                ),
            ],
        ),
        allowed(
            Scenario::new("service-request").when(
                neighbour(),
                open("service-request", "shop-it-201", "油烟 fumes", street_light.clone()),
            ),
            vec![
                opened("service-request", "shop-it-201", "油烟 fumes", street_light.clone(), &neighbour()),
                set(
                    1,
                    "received",
                    "2026-09-28 11:00",
                    Some("2026-09-28 09:00"),
                    Some("2026-09-28 16:30"),
                ),
            ],
        ),
        refused(
            Scenario::new("service-request").when(
                requester(),
                open("street-cleaning", "tonghui", "扫街", no_fields()),
            ),
            Rejection::UnknownWorkflow {
                workflow: "street-cleaning".into(),
            },
        ),
        refused(
            Scenario::new("service-request").when(requester(), open_version("service-request", 9)),
            Rejection::UnknownWorkflow {
                workflow: "service-request@9".into(),
            },
        ),
        refused(
            Scenario::new("service-request").when(
                auditor(),
                open("service-request", "tonghui", "路灯不亮", street_light.clone()),
            ),
            role_not_allowed(
                &auditor(),
                "open a service-request case",
                &[
                    "resident",
                    "grid_worker",
                    "community_admin",
                    "enterprise_liaison",
                    "shop_owner",
                    "liaison_officer",
                    "open311_client",
                ],
            ),
        ),
        refused(
            Scenario::new("district-affairs").when(
                officer(),
                open("district-affairs", "tonghui", "培训", need.clone()),
            ),
            role_not_allowed(
                &officer(),
                "open a district-affairs case",
                &[
                    "community_admin",
                    "grid_worker",
                    "enterprise_liaison",
                    "shop_owner",
                    "liaison_officer",
                    "party_member",
                    "resident",
                    "social_organizer",
                ],
            ),
        ),
        // A shop does not file consumer complaints (against itself or its neighbours).
        refused(
            Scenario::new("consumer-dispute").when(
                shop101(),
                open("consumer-dispute", "grid-1", "退款", refund.clone()),
            ),
            role_not_allowed(
                &shop101(),
                "open a consumer-dispute case",
                &[
                    "resident",
                    "grid_worker",
                    "liaison_officer",
                    "open311_client",
                    "community_admin",
                ],
            ),
        ),
        refused(
            Scenario::new("one-stop-errand").when(
                volunteer(),
                open("one-stop-errand", "tonghui", "营业执照", errand.clone()),
            ),
            role_not_allowed(
                &volunteer(),
                "open a one-stop-errand case",
                &[
                    "resident",
                    "shop_owner",
                    "grid_worker",
                    "community_admin",
                    "open311_client",
                ],
            ),
        ),
        refused(
            Scenario::new("service-request").when(
                requester(),
                open(
                    "service-request",
                    "tonghui",
                    "路灯不亮",
                    fields([("location", text("新马路印象"))]),
                ),
            ),
            field_missing("open", "category"),
        ),
        refused(
            Scenario::new("district-affairs").when(
                requester(),
                open("district-affairs", "tonghui", "培训", no_fields()),
            ),
            field_missing("open", "need"),
        ),
        refused(
            Scenario::new("consumer-dispute").when(
                requester(),
                open("consumer-dispute", "grid-1", "退款", fields([("shop", unit_f("shop-yh-101"))])),
            ),
            field_missing("open", "kind"),
        ),
        refused(
            Scenario::new("one-stop-errand").when(
                requester(),
                open("one-stop-errand", "tonghui", "营业执照", no_fields()),
            ),
            field_missing("open", "errand"),
        ),
        refused(
            Scenario::new("service-request").when(
                requester(),
                open(
                    "service-request",
                    "tonghui",
                    &"灯".repeat(201),
                    street_light.clone(),
                ),
            ),
            field_invalid("title", "201 characters; at most 200"),
        ),
        refused(
            Scenario::new("service-request").when(
                requester(),
                open("service-request", "tonghui", "   ", street_light.clone()),
            ),
            field_missing("open", "title"),
        ),
        refused(
            Scenario::new("service-request").when(
                requester(),
                open(
                    "service-request",
                    "tonghui",
                    "路灯不亮",
                    fields([("category", choice("weather"))]),
                ),
            ),
            field_invalid(
                "category",
                "\"weather\" is not one of: public_facilities, environment, neighbourhood, business_environment, safety, consumer, other",
            ),
        ),
        refused(
            Scenario::new("service-request").when(
                requester(),
                open("service-request", "grid-9", "路灯不亮", street_light.clone()),
            ),
            Rejection::NotFound {
                what: "unit",
                id: "grid-9".into(),
            },
        ),
        refused(
            Scenario::new("service-request").when(
                Acting::new(actor("wu.resident"), role("grid_worker"), unit("grid-1")),
                open("service-request", "tonghui", "路灯不亮", street_light.clone()),
            ),
            Rejection::NotGranted {
                actor: actor("wu.resident"),
                role: role("grid_worker"),
                unit: unit("grid-1"),
            },
        ),
        refused(
            Scenario::new("service-request")
                .given(sr::received())
                .when(
                    requester(),
                    open("service-request", "tonghui", "路灯不亮", street_light.clone()),
                ),
            Rejection::AlreadyExists {
                what: "case",
                id: case_id().to_string(),
            },
        ),
        refused(
            Scenario::new("service-request").when(admin(), act("dispatch", no_fields())),
            Rejection::NotFound {
                what: "case",
                id: case_id().to_string(),
            },
        ),
    ]
}

#[test]
fn opening_a_case() {
    run("open", &open_table());
}

// Migrate -------------------------------------------------------------------------------------

/// The built-in definitions plus three later versions of service-request: @2 the same but
/// renamed, @3 without the `returned` stage, @4 with `withdrawn` no longer terminal.
fn versions() -> &'static DefinitionRegistry {
    static REGISTRY: OnceLock<DefinitionRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut registry = DefinitionRegistry::built_in();
        let v1 = (**registry
            .get(&reference("service-request", 1))
            .expect("built in"))
        .clone();

        let mut v2 = v1.clone();
        v2.version = 2;
        v2.name = "有事找社区 service request (2027)".into();
        registry.add(v2).expect("v2 is valid");

        let mut v3 = v1.clone();
        v3.version = 3;
        v3.stages.retain(|s| s.id != "returned");
        v3.actions.retain(|a| a.id != "send_back");
        for action in &mut v3.actions {
            action.from.retain(|s| s != "returned");
        }
        registry.add(v3).expect("v3 is valid");

        let mut v4 = v1;
        v4.version = 4;
        for stage in &mut v4.stages {
            if stage.id == "withdrawn" {
                stage.terminal = false;
            }
        }
        v4.actions.push(Action {
            id: "archive".into(),
            name: "归档 archive".into(),
            from: vec!["withdrawn".into()],
            to: "closed".into(),
            roles: roles(&["community_admin"]),
            scope: Scope::Subtree,
            fields: Vec::new(),
            effects: Vec::new(),
        });
        registry.add(v4).expect("v4 is valid");
        registry
    })
}

fn migrate(to_version: u32) -> CaseCommand {
    CaseCommand::Migrate { to_version }
}

fn migrated(from: u32, to: u32) -> CaseEvent {
    CaseEvent::Migrated(CaseMigrated {
        from: reference("service-request", from),
        to: reference("service-request", to),
    })
}

pub fn migrate_table() -> Vec<Row> {
    let v = || Scenario::new("service-request").definitions(versions());
    vec![
        allowed(
            v().given(sr::received()).when(admin(), migrate(2)),
            vec![migrated(1, 2)],
        ),
        allowed(
            v().given(sr::in_progress()).when(system(), migrate(2)),
            vec![migrated(1, 2)],
        ),
        // A closed case moves to a version where its stage is terminal too.
        allowed(
            v().given(sr::closed()).when(admin(), migrate(3)),
            vec![migrated(1, 3)],
        ),
        // Already there: nothing to do.
        allowed(v().given(sr::received()).when(admin(), migrate(1)), vec![]),
        // After migrating, the case runs on the new version: @3 has no send_back.
        refused(
            v().given(sr::dispatched())
                .given([migrated(1, 3)])
                .when(grid1(), act("send_back", fields([("reason", text("?"))]))),
            Rejection::UnknownAction {
                workflow: "service-request@3".into(),
                action: "send_back".into(),
            },
        ),
        refused(
            v().given(sr::received()).when(grid1(), migrate(2)),
            role_not_allowed(&grid1(), "migrate a case", &["community_admin"]),
        ),
        refused(
            v().given(sr::received()).when(other_admin(), migrate(2)),
            out_of_scope(&other_admin(), "migrate a case", SUBTREE, "tonghui"),
        ),
        refused(
            v().given(sr::received()).when(admin(), migrate(9)),
            Rejection::UnknownWorkflow {
                workflow: "service-request@9".into(),
            },
        ),
        refused(
            v().given(sr::returned()).when(admin(), migrate(3)),
            invalid(
                "to_version",
                "service-request@3 has no stage returned; a case moves only to a version that has its current stage",
            ),
        ),
        // Withdrawn is terminal in @1 and open in @4.
        refused(
            v().given(sr::received().act("withdraw"))
                .when(admin(), migrate(4)),
            invalid("to_version", "stage withdrawn is open in service-request@4"),
        ),
    ]
}

#[test]
fn migrating_a_case() {
    run("migrate", &migrate_table());
}

// Ladder steps ---------------------------------------------------------------------------------

fn step(seq: u32, step: LadderStep) -> CaseCommand {
    CaseCommand::ReachDeadlineStep { seq, step }
}

fn reached(seq: u32, step: LadderStep, to: &str, due: &str, local: &str) -> CaseEvent {
    CaseEvent::DeadlineStepReached(DeadlineStepReached {
        seq,
        step,
        unit: unit(to),
        due: at(due),
        at: at(local),
    })
}

/// The received deadline set at T0 (Thursday 15:00): remind two working hours later at 17:00,
/// due after four (2.5 on Thursday, 1.5 on Monday) at Monday 10:00, breached four working
/// hours after that at Monday 15:30.
pub fn step_table() -> Vec<Row> {
    let s = || Scenario::new("service-request");
    vec![
        allowed(
            s().given(sr::received())
                .at("2026-09-24 17:00")
                .when(system(), step(1, LadderStep::Remind)),
            vec![reached(
                1,
                LadderStep::Remind,
                "tonghui",
                "2026-09-24 17:00",
                "2026-09-24 17:00",
            )],
        ),
        // The reminder goes to the lead; the escalation one tier up (督办).
        allowed(
            s().given(sr::received_at_grid1())
                .at("2026-09-28 08:30")
                .when(system(), step(1, LadderStep::Remind)),
            vec![reached(
                1,
                LadderStep::Remind,
                "grid-1",
                "2026-09-24 17:00",
                "2026-09-28 08:30",
            )],
        ),
        allowed(
            s().given(sr::received_at_grid1())
                .at("2026-09-28 10:30")
                .when(system(), step(1, LadderStep::Escalate)),
            vec![reached(
                1,
                LadderStep::Escalate,
                "tonghui",
                "2026-09-28 10:00",
                "2026-09-28 10:30",
            )],
        ),
        // Exactly at the breach time; a community has no one above it and keeps it.
        allowed(
            s().given(sr::received())
                .at("2026-09-28 15:30")
                .when(system(), step(1, LadderStep::Breach)),
            vec![reached(
                1,
                LadderStep::Breach,
                "tonghui",
                "2026-09-28 15:30",
                "2026-09-28 15:30",
            )],
        ),
        // Escalated, then the lead leaves the stage late: the deadline is missed.
        allowed(
            s().given(sr::received_at_grid1().and(reached(
                1,
                LadderStep::Escalate,
                "tonghui",
                "2026-09-28 10:00",
                "2026-09-28 10:30",
            )))
            .at("2026-09-28 11:00")
            .when(
                grid1(),
                act("dispatch", fields([("unit", unit_f("yiwu-heart"))])),
            ),
            vec![
                missed_at(1, "2026-09-28 10:00", "2026-09-28 11:00"),
                taken_at(
                    "dispatch",
                    "received",
                    "dispatched",
                    fields([("unit", unit_f("yiwu-heart"))]),
                    "2026-09-28 11:00",
                ),
                lead("yiwu-heart", "grid-1", "grid-1"),
                set_at(
                    2,
                    "dispatched",
                    "2026-09-28 11:00",
                    "2026-09-28 14:30",
                    Some("2026-09-28 12:00"),
                    Some("2026-09-28 16:30"),
                ),
            ],
        ),
        refused(
            s().given(sr::received())
                .at("2026-09-24 17:00")
                .when(admin(), step(1, LadderStep::Remind)),
            role_not_allowed(&admin(), "take a deadline step", &["system"]),
        ),
        refused(
            s().given(sr::received())
                .when(system(), step(1, LadderStep::Remind)),
            invalid(
                "deadline",
                // In the calendar's zone, with its offset (not UTC).
                "step remind of deadline 1 is due at 2026-09-24T17:00:00+08:00, not yet",
            ),
        ),
        refused(
            s().given(sr::received())
                .at("2026-09-28 09:59")
                .when(system(), step(1, LadderStep::Escalate)),
            invalid(
                "deadline",
                // In the calendar's zone, with its offset (not UTC).
                "step escalate of deadline 1 is due at 2026-09-28T10:00:00+08:00, not yet",
            ),
        ),
        refused(
            s().given(sr::received().and(reached(
                1,
                LadderStep::Remind,
                "tonghui",
                "2026-09-24 17:00",
                "2026-09-24 17:00",
            )))
            .at("2026-09-24 17:05")
            .when(system(), step(1, LadderStep::Remind)),
            invalid("deadline", "step remind of deadline 1 was already taken"),
        ),
        refused(
            s().given(sr::dispatched())
                .at("2026-09-28 09:00")
                .when(system(), step(1, LadderStep::Escalate)),
            invalid("deadline", "deadline 1 is not the running one"),
        ),
        // The returned stage has no reminder.
        refused(
            s().given(sr::returned())
                .at("2026-09-28 09:00")
                .when(system(), step(3, LadderStep::Remind)),
            invalid("deadline", "deadline 3 has no remind step"),
        ),
        refused(
            s().given(sr::closed())
                .at("2026-10-30 09:00")
                .when(system(), step(5, LadderStep::Breach)),
            invalid("deadline", "deadline 5 is not the running one"),
        ),
    ]
}

#[test]
fn deadline_ladder_steps() {
    run("reach deadline step", &step_table());
}

// Contact views -------------------------------------------------------------------------------

fn view(purpose: &str) -> CaseCommand {
    CaseCommand::RecordContactView {
        purpose: purpose.to_owned(),
    }
}

fn viewed(purpose: &str) -> CaseEvent {
    CaseEvent::ContactViewed(ContactViewed {
        person: person(),
        purpose: purpose.to_owned(),
        at: at(NOW),
    })
}

const SEE_CONTACT: &str = "see the requester's contact data";

pub fn contact_table() -> Vec<Row> {
    let s = || Scenario::new("service-request");
    vec![
        allowed(
            s().given(sr::dispatched())
                .when(grid1(), view("回访 return visit")),
            vec![viewed("回访 return visit")],
        ),
        allowed(
            s().given(sr::dispatched())
                .when(admin(), view("督办 supervision")),
            vec![viewed("督办 supervision")],
        ),
        allowed(
            s().given(sr::closed()).when(system(), view("export")),
            vec![viewed("export")],
        ),
        // The grid that accepted the dispute still reaches its requester after referring it.
        allowed(
            Scenario::new("consumer-dispute")
                .given(cd::intervening())
                .when(grid1(), view("回访 return visit")),
            vec![viewed("回访 return visit")],
        ),
        allowed(
            Scenario::new("consumer-dispute")
                .given(cd::intervening())
                .when(officer(), view("调解 mediation")),
            vec![viewed("调解 mediation")],
        ),
        refused(
            s().given(sr::dispatched()).when(shop101(), view("curious")),
            role_not_allowed(&shop101(), SEE_CONTACT, &["community_admin", "grid_worker"]),
        ),
        refused(
            Scenario::new("one-stop-errand")
                .given(os::collecting())
                .when(volunteer(), view("代办 errand")),
            role_not_allowed(
                &volunteer(),
                SEE_CONTACT,
                &["grid_worker", "party_member", "community_admin"],
            ),
        ),
        refused(
            s().given(sr::dispatched()).when(grid2(), view("curious")),
            out_of_scope(&grid2(), SEE_CONTACT, SUBTREE, "grid-1"),
        ),
        refused(
            s().given(sr::received().anonymous())
                .when(admin(), view("回访 return visit")),
            invalid("requester", "the case has no requester"),
        ),
        refused(
            s().given(sr::dispatched()).when(grid1(), view("  ")),
            field_missing(SEE_CONTACT, "purpose"),
        ),
        refused(
            s().given(sr::dispatched())
                .when(grid1(), view(&"查".repeat(201))),
            field_invalid("purpose", "201 characters; at most 200"),
        ),
        refused(
            s().given(sr::dispatched()).when(
                Acting::new(actor("li.grid1"), role("grid_worker"), unit("grid-2")),
                view("回访"),
            ),
            Rejection::NotGranted {
                actor: actor("li.grid1"),
                role: role("grid_worker"),
                unit: unit("grid-2"),
            },
        ),
    ]
}

#[test]
fn recording_contact_views() {
    run("record contact view", &contact_table());
}

// Accepting a duplicate (the other half of a merge; the engine submits it) -----------------

fn accept(duplicate: civicflow_core::CaseId) -> CaseCommand {
    CaseCommand::AcceptDuplicate { duplicate }
}

fn duplicate_merged() -> CaseEvent {
    CaseEvent::DuplicateMerged(DuplicateMerged {
        duplicate: other_case(),
    })
}

pub fn duplicate_table() -> Vec<Row> {
    let s = || Scenario::new("service-request");
    vec![
        allowed(
            s().given(sr::in_progress())
                .when(system(), accept(other_case())),
            vec![duplicate_merged()],
        ),
        // Accepted once only.
        allowed(
            s().given(sr::in_progress().and(duplicate_merged()))
                .when(system(), accept(other_case())),
            vec![],
        ),
        refused(
            s().given(sr::in_progress())
                .when(system(), accept(case_id())),
            invalid("into", "a case cannot be merged into itself"),
        ),
        refused(
            s().given(sr::closed()).when(system(), accept(other_case())),
            case_closed(),
        ),
        // Only the engine (the system) accepts a duplicate, as the other half of a merge;
        // a person merges the duplicate instead. Refused before anything else is looked at.
        refused(
            s().given(sr::in_progress())
                .when(admin(), accept(other_case())),
            role_not_allowed(&admin(), ACCEPT_DIRECTLY, &["system"]),
        ),
        refused(
            s().given(sr::in_progress())
                .when(grid1(), accept(other_case())),
            role_not_allowed(&grid1(), ACCEPT_DIRECTLY, &["system"]),
        ),
        refused(
            s().given(sr::closed()).when(admin(), accept(case_id())),
            role_not_allowed(&admin(), ACCEPT_DIRECTLY, &["system"]),
        ),
    ]
}

const ACCEPT_DIRECTLY: &str = "accept a duplicate directly (merge the duplicate instead)";

#[test]
fn accepting_a_duplicate() {
    run("accept duplicate", &duplicate_table());
}
