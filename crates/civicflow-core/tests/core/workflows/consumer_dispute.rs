//! 诚信消费 consumer dispute mediation: every action allowed and refused.

use civicflow_core::domain::case::CaseEvent;
use civicflow_core::domain::fields::FieldValue;

use super::fixture::*;
use super::scenario::*;

fn cd() -> Scenario {
    Scenario::new("consumer-dispute")
}

// Histories -----------------------------------------------------------------------------------

/// Accepted by grid 1: deadline 1 (accepted) runs.
pub fn accepted() -> History {
    History::opened("consumer-dispute", "grid-1")
}

/// Referred by grid 1 to market regulation: deadline 2 (intervening) runs.
pub fn intervening() -> History {
    accepted().act("refer").lead("market-regulation")
}

/// Legal aid brought in as a co-handler: deadline 3 (legal_aid) runs.
pub fn with_legal_aid() -> History {
    intervening().act("request_legal_aid").co("legal-aid")
}

/// Mediated at the grid: deadline 2 (mediated) runs, grid 1 leads.
pub fn mediated_at_grid() -> History {
    accepted().act("mediate_at_grid")
}

/// Mediated with legal aid: deadline 4 (mediated) runs, market regulation leads.
pub fn mediated() -> History {
    with_legal_aid().act("record_mediation")
}

/// Confirmed by the consumer (closed); four deadlines so far.
pub fn closed() -> History {
    mediated().act("confirm").rated(5)
}

const GRID_ADMIN: &[&str] = &["grid_worker", "community_admin"];
const ADMIN_GRID: &[&str] = &["community_admin", "grid_worker"];
const RESIDENT: &[&str] = &["resident"];

const IN_ACCEPTED: &[&str] = &["refer", "mediate_at_grid", "withdraw"];
const IN_INTERVENING: &[&str] = &["request_legal_aid", "record_mediation", "withdraw"];
const IN_MEDIATED: &[&str] = &["confirm", "close"];

/// 部门介入: 7 working days (28-30 September, 8-10 and 12 October), remind after 5, breach 3
/// working days later.
fn intervening_deadline(seq: u32) -> CaseEvent {
    set(
        seq,
        "intervening",
        "2026-10-12 17:30",
        Some("2026-10-09 17:30"),
        Some("2026-10-15 17:30"),
    )
}

/// 法律援助: 15 working days, remind after 10.
fn legal_aid_deadline(seq: u32) -> CaseEvent {
    set(
        seq,
        "legal_aid",
        "2026-10-22 17:30",
        Some("2026-10-15 17:30"),
        None,
    )
}

/// 调解完成 → 结案: 3 working days.
fn mediated_deadline(seq: u32) -> CaseEvent {
    set(seq, "mediated", "2026-09-30 17:30", None, None)
}

/// 网格受理: 1 working day, remind after 4 working hours, breach 1 working day later.
fn accepted_deadline(seq: u32) -> CaseEvent {
    set(
        seq,
        "accepted",
        "2026-09-28 17:30",
        Some("2026-09-28 11:00"),
        Some("2026-09-29 17:30"),
    )
}

pub fn table() -> Vec<Row> {
    let mut rows = Vec::new();
    rows.extend(refer());
    rows.extend(mediate_at_grid());
    rows.extend(request_legal_aid());
    rows.extend(record_mediation());
    rows.extend(confirm());
    rows.extend(close());
    rows.extend(withdraw());
    rows.extend(reopen());
    rows
}

fn refer() -> Vec<Row> {
    let to_market = fields([
        ("unit", unit_f("market-regulation")),
        ("note", text("涉及价格欺诈 suspected price fraud")),
    ]);
    vec![
        allowed(
            cd().given(accepted())
                .when(grid1(), act("refer", to_market.clone())),
            vec![
                met(1),
                taken("refer", "accepted", "intervening", to_market.clone()),
                lead("market-regulation", "grid-1", "grid-1"),
                intervening_deadline(2),
            ],
        ),
        allowed(
            cd().given(accepted())
                .when(admin(), act("refer", to_market.clone())),
            vec![
                met(1),
                taken("refer", "accepted", "intervening", to_market.clone()),
                lead("market-regulation", "grid-1", "tonghui"),
                intervening_deadline(2),
            ],
        ),
        refused(
            cd().given(accepted())
                .when(officer(), act("refer", to_market.clone())),
            role_not_allowed(&officer(), "refer", GRID_ADMIN),
        ),
        refused(
            cd().given(accepted())
                .when(grid2(), act("refer", to_market.clone())),
            out_of_scope(&grid2(), "refer", SUBTREE, "grid-1"),
        ),
        refused(
            cd().given(intervening())
                .when(admin(), act("refer", to_market.clone())),
            not_in_stage("refer", "intervening", IN_INTERVENING),
        ),
        refused(
            cd().given(accepted())
                .when(grid1(), act("refer", fields([("note", text("?"))]))),
            field_missing("refer", "unit"),
        ),
        refused(
            cd().given(accepted())
                .when(grid1(), act_seen("refer", to_market.clone(), 1)),
            stale(1, accepted().version()),
        ),
        refused(
            cd().given(closed())
                .when(grid1(), act("refer", to_market.clone())),
            case_closed(),
        ),
    ]
}

fn mediate_at_grid() -> Vec<Row> {
    let agreement = fields([
        ("outcome", choice("agreement")),
        ("agreement", text("退款 199 元 refund of 199 yuan")),
        ("compensation", FieldValue::Number(199.0)),
    ]);
    vec![
        allowed(
            cd().given(accepted())
                .when(grid1(), act("mediate_at_grid", agreement.clone())),
            vec![
                met(1),
                taken("mediate_at_grid", "accepted", "mediated", agreement.clone()),
                mediated_deadline(2),
            ],
        ),
        refused(
            cd().given(accepted())
                .when(admin(), act("mediate_at_grid", agreement.clone())),
            role_not_allowed(&admin(), "mediate_at_grid", &["grid_worker"]),
        ),
        refused(
            cd().given(accepted())
                .when(grid2(), act("mediate_at_grid", agreement.clone())),
            out_of_scope(&grid2(), "mediate_at_grid", LEAD, "grid-1"),
        ),
        refused(
            cd().given(intervening())
                .when(grid1(), act("mediate_at_grid", agreement.clone())),
            not_in_stage("mediate_at_grid", "intervening", IN_INTERVENING),
        ),
        refused(
            cd().given(accepted()).when(
                grid1(),
                act("mediate_at_grid", fields([("agreement", text("?"))])),
            ),
            field_missing("mediate_at_grid", "outcome"),
        ),
        refused(
            cd().given(accepted())
                .when(grid1(), act_seen("mediate_at_grid", agreement.clone(), 3)),
            stale(3, accepted().version()),
        ),
        refused(
            cd().given(closed())
                .when(grid1(), act("mediate_at_grid", agreement.clone())),
            case_closed(),
        ),
    ]
}

fn request_legal_aid() -> Vec<Row> {
    let legal = fields([("unit", unit_f("legal-aid"))]);
    vec![
        allowed(
            cd().given(intervening())
                .when(officer(), act("request_legal_aid", legal.clone())),
            vec![
                met(2),
                taken(
                    "request_legal_aid",
                    "intervening",
                    "legal_aid",
                    legal.clone(),
                ),
                co("legal-aid"),
                legal_aid_deadline(3),
            ],
        ),
        refused(
            cd().given(intervening())
                .when(lawyer(), act("request_legal_aid", legal.clone())),
            role_not_allowed(
                &lawyer(),
                "request_legal_aid",
                &["department_officer", "grid_worker", "community_admin"],
            ),
        ),
        // The grid that referred the dispute has no say over the department's case.
        refused(
            cd().given(intervening())
                .when(grid1(), act("request_legal_aid", legal.clone())),
            out_of_scope(&grid1(), "request_legal_aid", SUBTREE, "market-regulation"),
        ),
        refused(
            cd().given(accepted())
                .when(admin(), act("request_legal_aid", legal.clone())),
            not_in_stage("request_legal_aid", "accepted", IN_ACCEPTED),
        ),
        refused(
            cd().given(intervening())
                .when(officer(), act("request_legal_aid", no_fields())),
            field_missing("request_legal_aid", "unit"),
        ),
        refused(
            cd().given(intervening())
                .when(officer(), act_seen("request_legal_aid", legal.clone(), 5)),
            stale(5, intervening().version()),
        ),
        refused(
            cd().given(closed())
                .when(officer(), act("request_legal_aid", legal.clone())),
            case_closed(),
        ),
    ]
}

fn record_mediation() -> Vec<Row> {
    let outcome = fields([
        ("outcome", choice("agreement")),
        ("agreement", text("商家赔偿 the shop compensates")),
    ]);
    vec![
        // Legal aid, co-handling, records the outcome.
        allowed(
            cd().given(with_legal_aid())
                .when(lawyer(), act("record_mediation", outcome.clone())),
            vec![
                met(3),
                taken("record_mediation", "legal_aid", "mediated", outcome.clone()),
                mediated_deadline(4),
            ],
        ),
        allowed(
            cd().given(intervening())
                .when(officer(), act("record_mediation", outcome.clone())),
            vec![
                met(2),
                taken(
                    "record_mediation",
                    "intervening",
                    "mediated",
                    outcome.clone(),
                ),
                mediated_deadline(3),
            ],
        ),
        refused(
            cd().given(intervening())
                .when(grid1(), act("record_mediation", outcome.clone())),
            role_not_allowed(
                &grid1(),
                "record_mediation",
                &["department_officer", "legal_aid"],
            ),
        ),
        // Legal aid before it was brought in.
        refused(
            cd().given(intervening())
                .when(lawyer(), act("record_mediation", outcome.clone())),
            out_of_scope(&lawyer(), "record_mediation", HANDLER, "market-regulation"),
        ),
        refused(
            cd().given(accepted())
                .when(officer(), act("record_mediation", outcome.clone())),
            not_in_stage("record_mediation", "accepted", IN_ACCEPTED),
        ),
        refused(
            cd().given(intervening()).when(
                officer(),
                act("record_mediation", fields([("agreement", text("?"))])),
            ),
            field_missing("record_mediation", "outcome"),
        ),
        refused(
            cd().given(intervening())
                .when(officer(), act_seen("record_mediation", outcome.clone(), 2)),
            stale(2, intervening().version()),
        ),
        refused(
            cd().given(closed())
                .when(officer(), act("record_mediation", outcome.clone())),
            case_closed(),
        ),
    ]
}

fn confirm() -> Vec<Row> {
    let five = fields([("rating", rating(5))]);
    vec![
        allowed(
            cd().given(mediated())
                .when(requester(), act("confirm", five.clone())),
            vec![
                met(4),
                taken("confirm", "mediated", "closed", five.clone()),
                rated(5),
            ],
        ),
        refused(
            cd().given(mediated())
                .when(grid1(), act("confirm", five.clone())),
            role_not_allowed(&grid1(), "confirm", RESIDENT),
        ),
        refused(
            cd().given(mediated())
                .when(neighbour(), act("confirm", five.clone())),
            out_of_scope(&neighbour(), "confirm", REQUESTER, "market-regulation"),
        ),
        refused(
            cd().given(intervening())
                .when(requester(), act("confirm", five.clone())),
            not_in_stage("confirm", "intervening", IN_INTERVENING),
        ),
        refused(
            cd().given(mediated())
                .when(requester(), act("confirm", no_fields())),
            field_missing("confirm", "rating"),
        ),
        refused(
            cd().given(mediated())
                .when(requester(), act_seen("confirm", five.clone(), 7)),
            stale(7, mediated().version()),
        ),
        refused(
            cd().given(closed())
                .when(requester(), act("confirm", five.clone())),
            case_closed(),
        ),
    ]
}

fn close() -> Vec<Row> {
    let visit = fields([("rating", rating(4))]);
    vec![
        // The rating given at the return visit is recorded.
        allowed(
            cd().given(mediated())
                .when(officer(), act("close", visit.clone())),
            vec![
                met(4),
                taken("close", "mediated", "closed", visit.clone()),
                rated(4),
            ],
        ),
        // The rating is optional: without one, nothing is recorded.
        allowed(
            cd().given(mediated())
                .when(officer(), act("close", no_fields())),
            vec![met(4), taken("close", "mediated", "closed", no_fields())],
        ),
        allowed(
            cd().given(mediated_at_grid())
                .when(grid1(), act("close", no_fields())),
            vec![met(2), taken("close", "mediated", "closed", no_fields())],
        ),
        refused(
            cd().given(mediated())
                .when(lawyer(), act("close", no_fields())),
            role_not_allowed(
                &lawyer(),
                "close",
                &["grid_worker", "community_admin", "department_officer"],
            ),
        ),
        refused(
            cd().given(mediated())
                .when(grid1(), act("close", no_fields())),
            out_of_scope(&grid1(), "close", SUBTREE, "market-regulation"),
        ),
        refused(
            cd().given(intervening())
                .when(officer(), act("close", no_fields())),
            not_in_stage("close", "intervening", IN_INTERVENING),
        ),
        refused(
            cd().given(mediated())
                .when(officer(), act("close", fields([("rating", rating(0))]))),
            field_invalid("rating", "0 is not a rating from 1 to 5"),
        ),
        refused(
            cd().given(mediated())
                .when(officer(), act_seen("close", no_fields(), 1)),
            stale(1, mediated().version()),
        ),
        refused(
            cd().given(closed())
                .when(officer(), act("close", no_fields())),
            case_closed(),
        ),
    ]
}

fn withdraw() -> Vec<Row> {
    vec![
        allowed(
            cd().given(accepted())
                .when(requester(), act("withdraw", no_fields())),
            vec![
                met(1),
                taken("withdraw", "accepted", "withdrawn", no_fields()),
            ],
        ),
        allowed(
            cd().given(intervening())
                .when(requester(), act("withdraw", no_fields())),
            vec![
                met(2),
                taken("withdraw", "intervening", "withdrawn", no_fields()),
            ],
        ),
        refused(
            cd().given(accepted())
                .when(grid1(), act("withdraw", no_fields())),
            role_not_allowed(&grid1(), "withdraw", RESIDENT),
        ),
        refused(
            cd().given(accepted())
                .when(neighbour(), act("withdraw", no_fields())),
            out_of_scope(&neighbour(), "withdraw", REQUESTER, "grid-1"),
        ),
        // Filed through the Open311 app, or at the door by the grid worker: neither files
        // for itself, so the resident is not the requester of the case.
        refused(
            cd().given(accepted().filed_by(&open311()))
                .when(requester(), act("withdraw", no_fields())),
            out_of_scope(&requester(), "withdraw", REQUESTER, "grid-1"),
        ),
        refused(
            cd().given(accepted().filed_by(&grid1()))
                .when(requester(), act("withdraw", no_fields())),
            out_of_scope(&requester(), "withdraw", REQUESTER, "grid-1"),
        ),
        refused(
            cd().given(mediated())
                .when(requester(), act("withdraw", no_fields())),
            not_in_stage("withdraw", "mediated", IN_MEDIATED),
        ),
        refused(
            cd().given(accepted())
                .when(requester(), act_seen("withdraw", no_fields(), 1)),
            stale(1, accepted().version()),
        ),
        refused(
            cd().given(closed())
                .when(requester(), act("withdraw", no_fields())),
            case_closed(),
        ),
    ]
}

fn reopen() -> Vec<Row> {
    let reason = fields([("reason", text("商家未履行协议 the shop did not pay"))]);
    vec![
        // Closed while market regulation led it (legal aid co-handling): reopened, it goes
        // back to grid 1, where it was filed, to be accepted again.
        allowed(
            cd().given(closed())
                .when(admin(), act("reopen", reason.clone())),
            vec![
                taken("reopen", "closed", "accepted", reason.clone()),
                reopened(1, "grid-1"),
                accepted_deadline(5),
            ],
        ),
        refused(
            cd().given(closed())
                .when(officer(), act("reopen", reason.clone())),
            role_not_allowed(&officer(), "reopen", ADMIN_GRID),
        ),
        refused(
            cd().given(closed())
                .when(grid1(), act("reopen", reason.clone())),
            out_of_scope(&grid1(), "reopen", SUBTREE, "market-regulation"),
        ),
        refused(
            cd().given(mediated())
                .when(admin(), act("reopen", reason.clone())),
            not_in_stage("reopen", "mediated", IN_MEDIATED),
        ),
        refused(
            cd().given(closed())
                .when(admin(), act("reopen", no_fields())),
            field_missing("reopen", "reason"),
        ),
        refused(
            cd().given(closed())
                .when(admin(), act_seen("reopen", reason.clone(), 3)),
            stale(3, closed().version()),
        ),
    ]
}

#[test]
fn consumer_dispute_actions() {
    run("consumer-dispute", &table());
}

/// Closed while market regulation led it with legal aid co-handling, then reopened: grid 1
/// (where it was filed) leads again, nobody co-handles.
fn reopened_case() -> History {
    closed().act("reopen").reopened()
}

#[test]
fn a_reopened_dispute_goes_back_to_the_grid_that_accepted_it() {
    let agreement = fields([
        ("outcome", choice("agreement")),
        ("agreement", text("补足退款 the rest of the refund")),
    ]);
    // Grid 1 leads again (mediating at the grid is for the lead unit itself) ...
    cd().given(reopened_case())
        .when(grid1(), act("mediate_at_grid", agreement.clone()))
        .then(vec![
            met(5),
            taken("mediate_at_grid", "accepted", "mediated", agreement.clone()),
            mediated_deadline(6),
        ]);
    // ... or refers it to market regulation again, as the unit that now leads.
    let to_market = fields([("unit", unit_f("market-regulation"))]);
    cd().given(reopened_case())
        .when(grid1(), act("refer", to_market.clone()))
        .then(vec![
            met(5),
            taken("refer", "accepted", "intervening", to_market),
            lead("market-regulation", "grid-1", "grid-1"),
            intervening_deadline(6),
        ]);
    // Legal aid co-handled it before; after the reopen and a new referral it does not.
    cd().given(reopened_case().act("refer").lead("market-regulation"))
        .when(lawyer(), act("record_mediation", agreement))
        .then_rejected(out_of_scope(
            &lawyer(),
            "record_mediation",
            HANDLER,
            "market-regulation",
        ));
}
