//! 红色代办 one-stop errand (最多跑一次): every action allowed and refused.

use civicflow_core::domain::case::CaseEvent;

use super::fixture::*;
use super::scenario::*;

fn os() -> Scenario {
    Scenario::new("one-stop-errand")
}

// Histories -----------------------------------------------------------------------------------

/// Requested at the community: deadline 1 (requested) runs.
pub fn requested() -> History {
    History::opened("one-stop-errand", "tonghui")
}

/// Taken on by the volunteer team, which now leads: deadline 2 (collecting) runs.
pub fn collecting() -> History {
    requested()
        .act("take_on")
        .lead_by("silver-glow", "silver-glow")
}

/// Submitted to market regulation (co-handling): deadline 3 (submitted) runs.
pub fn submitted() -> History {
    collecting().act("submit").co("market-regulation")
}

/// Submitted to the tax office instead.
pub fn submitted_to_tax() -> History {
    collecting().act("submit").co("tax-office")
}

/// Market regulation asked for more materials: deadline 4 (collecting) runs.
pub fn asked_for_more() -> History {
    submitted().act("ask_for_more")
}

/// Approved: deadline 4 (approved) runs.
pub fn approved() -> History {
    submitted().act("approve")
}

/// Withdrawn (closed).
pub fn withdrawn() -> History {
    requested().act("withdraw")
}

/// Requested by liu.shop101 as the shop owner, at the shop.
fn filed_by_shop_owner() -> History {
    History::opened("one-stop-errand", "shop-yh-101").filed_by(&shop101())
}

/// liu.shop101 acting as a resident of the community.
fn liu_as_resident() -> civicflow_core::domain::org::Acting {
    who_as("liu.shop101", "resident", "tonghui")
}

/// Requested by liu.shop101 as a resident, at the community.
fn filed_by_liu_as_resident() -> History {
    requested().filed_by(&liu_as_resident())
}

const DOERS: &[&str] = &["grid_worker", "party_member", "volunteer"];
const OFFICER: &[&str] = &["department_officer"];

const IN_REQUESTED: &[&str] = &["take_on", "withdraw"];
const IN_COLLECTING: &[&str] = &["submit", "withdraw"];
const IN_SUBMITTED: &[&str] = &["approve", "ask_for_more"];
const IN_APPROVED: &[&str] = &["deliver"];

/// 收取材料: 3 working days (28, 29, 30 September), remind after 2.
fn collecting_deadline(seq: u32) -> CaseEvent {
    set(
        seq,
        "collecting",
        "2026-09-30 17:30",
        Some("2026-09-29 17:30"),
        None,
    )
}

/// 已递交: 5 working days (to Friday 9 October), remind after 3, breach 2 working days later
/// (Saturday 10 October is a 调休 working day, so Monday 12 October).
fn submitted_deadline(seq: u32) -> CaseEvent {
    set(
        seq,
        "submitted",
        "2026-10-09 17:30",
        Some("2026-09-30 17:30"),
        Some("2026-10-12 17:30"),
    )
}

fn approved_deadline(seq: u32) -> CaseEvent {
    set(seq, "approved", "2026-09-28 17:30", None, None)
}

pub fn table() -> Vec<Row> {
    let mut rows = Vec::new();
    rows.extend(take_on());
    rows.extend(submit());
    rows.extend(approve());
    rows.extend(ask_for_more());
    rows.extend(deliver());
    rows.extend(withdraw());
    rows
}

fn take_on() -> Vec<Row> {
    vec![
        allowed(
            os().given(requested())
                .when(volunteer(), act("take_on", no_fields())),
            vec![
                met(1),
                taken("take_on", "requested", "collecting", no_fields()),
                lead("silver-glow", "tonghui", "silver-glow"),
                collecting_deadline(2),
            ],
        ),
        // Scope `any`: a party member of grid 1 takes on an errand filed at the community.
        allowed(
            os().given(requested())
                .when(party_member(), act("take_on", no_fields())),
            vec![
                met(1),
                taken("take_on", "requested", "collecting", no_fields()),
                lead("grid-1", "tonghui", "grid-1"),
                collecting_deadline(2),
            ],
        ),
        // The unit that leads takes it on: no new lead.
        allowed(
            os().given(History::opened("one-stop-errand", "grid-1"))
                .when(grid1(), act("take_on", no_fields())),
            vec![
                met(1),
                taken("take_on", "requested", "collecting", no_fields()),
                collecting_deadline(2),
            ],
        ),
        refused(
            os().given(requested())
                .when(shop101(), act("take_on", no_fields())),
            role_not_allowed(&shop101(), "take_on", DOERS),
        ),
        refused(
            os().given(collecting())
                .when(volunteer(), act("take_on", no_fields())),
            not_in_stage("take_on", "collecting", IN_COLLECTING),
        ),
        refused(
            os().given(requested())
                .when(volunteer(), act_seen("take_on", no_fields(), 1)),
            stale(1, requested().version()),
        ),
        refused(
            os().given(withdrawn())
                .when(volunteer(), act("take_on", no_fields())),
            case_closed(),
        ),
    ]
}

fn submit() -> Vec<Row> {
    let to_market = fields([
        ("department", unit_f("market-regulation")),
        ("materials", text("身份证、租赁合同 ID card, lease")),
    ]);
    vec![
        allowed(
            os().given(collecting())
                .when(volunteer(), act("submit", to_market.clone())),
            vec![
                met(2),
                taken("submit", "collecting", "submitted", to_market.clone()),
                co("market-regulation"),
                submitted_deadline(3),
            ],
        ),
        // 补正: resubmitted to the same department after it asked for more materials. The
        // department already co-handles the case, so it is not added again.
        allowed(
            os().given(asked_for_more())
                .when(volunteer(), act("submit", to_market.clone())),
            vec![
                met(4),
                taken("submit", "collecting", "submitted", to_market.clone()),
                submitted_deadline(5),
            ],
        ),
        // Resubmitted to another department: that one joins too.
        allowed(
            os().given(asked_for_more()).when(
                volunteer(),
                act(
                    "submit",
                    fields([
                        ("department", unit_f("tax-office")),
                        ("materials", text("税务登记表 the tax form")),
                    ]),
                ),
            ),
            vec![
                met(4),
                taken(
                    "submit",
                    "collecting",
                    "submitted",
                    fields([
                        ("department", unit_f("tax-office")),
                        ("materials", text("税务登记表 the tax form")),
                    ]),
                ),
                co("tax-office"),
                submitted_deadline(5),
            ],
        ),
        // The unit that leads the errand cannot also co-handle it.
        refused(
            os().given(collecting()).when(
                volunteer(),
                act(
                    "submit",
                    fields([
                        ("department", unit_f("silver-glow")),
                        ("materials", text("身份证 ID card")),
                    ]),
                ),
            ),
            field_invalid(
                "department",
                "silver-glow leads this case; it cannot also co-handle it",
            ),
        ),
        refused(
            os().given(collecting())
                .when(officer(), act("submit", to_market.clone())),
            role_not_allowed(&officer(), "submit", DOERS),
        ),
        refused(
            os().given(collecting())
                .when(grid1(), act("submit", to_market.clone())),
            out_of_scope(&grid1(), "submit", LEAD, "silver-glow"),
        ),
        refused(
            os().given(requested())
                .when(volunteer(), act("submit", to_market.clone())),
            not_in_stage("submit", "requested", IN_REQUESTED),
        ),
        refused(
            os().given(collecting()).when(
                volunteer(),
                act(
                    "submit",
                    fields([("department", unit_f("market-regulation"))]),
                ),
            ),
            field_missing("submit", "materials"),
        ),
        refused(
            os().given(collecting())
                .when(volunteer(), act_seen("submit", to_market.clone(), 2)),
            stale(2, collecting().version()),
        ),
        refused(
            os().given(withdrawn())
                .when(volunteer(), act("submit", to_market.clone())),
            case_closed(),
        ),
    ]
}

fn approve() -> Vec<Row> {
    let licence = fields([("reference", text("91330782MA2EXAMPLE"))]);
    vec![
        allowed(
            os().given(submitted())
                .when(officer(), act("approve", licence.clone())),
            vec![
                met(3),
                taken("approve", "submitted", "approved", licence.clone()),
                approved_deadline(4),
            ],
        ),
        refused(
            os().given(submitted())
                .when(volunteer(), act("approve", licence.clone())),
            role_not_allowed(&volunteer(), "approve", OFFICER),
        ),
        // Market regulation cannot approve what was submitted to the tax office.
        refused(
            os().given(submitted_to_tax())
                .when(officer(), act("approve", licence.clone())),
            out_of_scope(&officer(), "approve", HANDLER, "silver-glow"),
        ),
        refused(
            os().given(collecting())
                .when(officer(), act("approve", licence.clone())),
            not_in_stage("approve", "collecting", IN_COLLECTING),
        ),
        refused(
            os().given(submitted())
                .when(officer(), act("approve", no_fields())),
            field_missing("approve", "reference"),
        ),
        refused(
            os().given(submitted())
                .when(officer(), act_seen("approve", licence.clone(), 3)),
            stale(3, submitted().version()),
        ),
        refused(
            os().given(withdrawn())
                .when(officer(), act("approve", licence.clone())),
            case_closed(),
        ),
    ]
}

fn ask_for_more() -> Vec<Row> {
    let missing = fields([("missing", text("消防验收意见 the fire inspection"))]);
    vec![
        allowed(
            os().given(submitted())
                .when(officer(), act("ask_for_more", missing.clone())),
            vec![
                met(3),
                taken("ask_for_more", "submitted", "collecting", missing.clone()),
                collecting_deadline(4),
            ],
        ),
        refused(
            os().given(submitted())
                .when(volunteer(), act("ask_for_more", missing.clone())),
            role_not_allowed(&volunteer(), "ask_for_more", OFFICER),
        ),
        refused(
            os().given(submitted_to_tax())
                .when(officer(), act("ask_for_more", missing.clone())),
            out_of_scope(&officer(), "ask_for_more", HANDLER, "silver-glow"),
        ),
        refused(
            os().given(approved())
                .when(officer(), act("ask_for_more", missing.clone())),
            not_in_stage("ask_for_more", "approved", IN_APPROVED),
        ),
        refused(
            os().given(submitted())
                .when(officer(), act("ask_for_more", no_fields())),
            field_missing("ask_for_more", "missing"),
        ),
        refused(
            os().given(submitted())
                .when(officer(), act_seen("ask_for_more", missing.clone(), 1)),
            stale(1, submitted().version()),
        ),
        refused(
            os().given(withdrawn())
                .when(officer(), act("ask_for_more", missing.clone())),
            case_closed(),
        ),
    ]
}

fn deliver() -> Vec<Row> {
    let handed = fields([("trips", int(1)), ("rating", rating(5))]);
    let unrated = fields([("trips", int(1))]);
    vec![
        // The requester's satisfaction, when given, is recorded.
        allowed(
            os().given(approved())
                .when(volunteer(), act("deliver", handed.clone())),
            vec![
                met(4),
                taken("deliver", "approved", "delivered", handed.clone()),
                rated(5),
            ],
        ),
        // The rating is optional: without one, nothing is recorded.
        allowed(
            os().given(approved())
                .when(volunteer(), act("deliver", unrated.clone())),
            vec![
                met(4),
                taken("deliver", "approved", "delivered", unrated.clone()),
            ],
        ),
        refused(
            os().given(approved())
                .when(officer(), act("deliver", handed.clone())),
            role_not_allowed(&officer(), "deliver", DOERS),
        ),
        refused(
            os().given(approved())
                .when(grid1(), act("deliver", handed.clone())),
            out_of_scope(&grid1(), "deliver", LEAD, "silver-glow"),
        ),
        refused(
            os().given(submitted())
                .when(volunteer(), act("deliver", handed.clone())),
            not_in_stage("deliver", "submitted", IN_SUBMITTED),
        ),
        refused(
            os().given(approved())
                .when(volunteer(), act("deliver", fields([("rating", rating(5))]))),
            field_missing("deliver", "trips"),
        ),
        refused(
            os().given(approved())
                .when(volunteer(), act_seen("deliver", handed.clone(), 4)),
            stale(4, approved().version()),
        ),
        refused(
            os().given(withdrawn())
                .when(volunteer(), act("deliver", handed.clone())),
            case_closed(),
        ),
    ]
}

fn withdraw() -> Vec<Row> {
    vec![
        allowed(
            os().given(requested())
                .when(requester(), act("withdraw", no_fields())),
            vec![
                met(1),
                taken("withdraw", "requested", "withdrawn", no_fields()),
            ],
        ),
        allowed(
            os().given(collecting())
                .when(requester(), act("withdraw", no_fields())),
            vec![
                met(2),
                taken("withdraw", "collecting", "withdrawn", no_fields()),
            ],
        ),
        // A shop owner asked for a licence errand for their shop (a shop owner asks for
        // itself) and withdraws it, as the shop owner.
        allowed(
            os().given(filed_by_shop_owner())
                .when(shop101(), act("withdraw", no_fields())),
            vec![
                met(1),
                taken("withdraw", "requested", "withdrawn", no_fields()),
            ],
        ),
        // The same person asked as a resident and withdraws as a resident.
        allowed(
            os().given(filed_by_liu_as_resident())
                .when(liu_as_resident(), act("withdraw", no_fields())),
            vec![
                met(1),
                taken("withdraw", "requested", "withdrawn", no_fields()),
            ],
        ),
        refused(
            os().given(requested())
                .when(grid1(), act("withdraw", no_fields())),
            role_not_allowed(&grid1(), "withdraw", &["resident", "shop_owner"]),
        ),
        refused(
            os().given(collecting())
                .when(neighbour(), act("withdraw", no_fields())),
            out_of_scope(&neighbour(), "withdraw", REQUESTER, "silver-glow"),
        ),
        // The shop next door did not ask.
        refused(
            os().given(filed_by_shop_owner())
                .when(shop102(), act("withdraw", no_fields())),
            out_of_scope(&shop102(), "withdraw", REQUESTER, "shop-yh-101"),
        ),
        // The filer must act in the role they filed in: asked as the shop owner, not as a
        // resident, and the other way round.
        refused(
            os().given(filed_by_shop_owner())
                .when(liu_as_resident(), act("withdraw", no_fields())),
            out_of_scope(&liu_as_resident(), "withdraw", REQUESTER, "shop-yh-101"),
        ),
        refused(
            os().given(filed_by_liu_as_resident())
                .when(shop101(), act("withdraw", no_fields())),
            out_of_scope(&shop101(), "withdraw", REQUESTER, "tonghui"),
        ),
        // Filed at the door by the grid worker for the resident: the grid worker is not a
        // role that asks for itself, so nobody acts as the requester of this case.
        refused(
            os().given(History::opened("one-stop-errand", "grid-1").filed_by(&grid1()))
                .when(requester(), act("withdraw", no_fields())),
            out_of_scope(&requester(), "withdraw", REQUESTER, "grid-1"),
        ),
        refused(
            os().given(submitted())
                .when(requester(), act("withdraw", no_fields())),
            not_in_stage("withdraw", "submitted", IN_SUBMITTED),
        ),
        refused(
            os().given(requested())
                .when(requester(), act_seen("withdraw", no_fields(), 1)),
            stale(1, requested().version()),
        ),
        refused(
            os().given(withdrawn())
                .when(requester(), act("withdraw", no_fields())),
            case_closed(),
        ),
    ]
}

#[test]
fn one_stop_errand_actions() {
    run("one-stop-errand", &table());
}
