//! 商圈事务决策闭环, the district affairs loop: every action allowed and refused.
//!
//! Its deadlines mix wall-clock days (the monthly joint meeting, delivery) with working days.

use civicflow_core::domain::case::CaseEvent;

use super::fixture::*;
use super::scenario::*;

fn da() -> Scenario {
    Scenario::new("district-affairs")
}

// Histories -----------------------------------------------------------------------------------

/// A need collected at the community: deadline 1 (collected) runs.
pub fn collected() -> History {
    History::opened("district-affairs", "tonghui")
}

/// Resolved at the joint meeting: deadline 2 runs.
pub fn resolved() -> History {
    collected().act("resolve")
}

/// Handed to the social organizations' federation: deadline 3 runs.
pub fn delivering() -> History {
    resolved().act("deliver").lead("lotus-social")
}

/// The volunteer team brought in as a partner.
pub fn delivering_with_team() -> History {
    delivering().act("bring_in").co("silver-glow")
}

/// The activity carried out: deadline 4 runs.
pub fn activity_done() -> History {
    delivering_with_team().act("record_activity")
}

/// Declined (closed).
pub fn declined() -> History {
    collected().act("decline")
}

const ADMIN: &[&str] = &["community_admin"];
const BRINGERS: &[&str] = &["community_admin", "enterprise_liaison", "grid_worker"];
const RECORDERS: &[&str] = &[
    "community_admin",
    "grid_worker",
    "social_organizer",
    "volunteer",
    "party_member",
    "enterprise_liaison",
];

const IN_COLLECTED: &[&str] = &["resolve", "decline"];
const IN_RESOLVED: &[&str] = &["deliver"];
const IN_DELIVERING: &[&str] = &["bring_in", "record_activity"];

/// 形成决议 → 清单交付: 10 working days (28-30 September, 8-10 and 12-15 October).
fn resolved_deadline() -> CaseEvent {
    set(
        2,
        "resolved",
        "2026-10-15 17:30",
        Some("2026-10-09 17:30"),
        None,
    )
}

/// 清单交付: 30 days of wall-clock time, reminded after 20.
fn delivering_deadline() -> CaseEvent {
    set(
        3,
        "delivering",
        "2026-10-24 16:00",
        Some("2026-10-14 16:00"),
        None,
    )
}

fn activity_deadline() -> CaseEvent {
    set(4, "activity_done", "2026-10-15 17:30", None, None)
}

pub fn table() -> Vec<Row> {
    let mut rows = Vec::new();
    rows.extend(resolve());
    rows.extend(decline());
    rows.extend(deliver());
    rows.extend(bring_in());
    rows.extend(record_activity());
    rows.extend(review());
    rows
}

fn resolve() -> Vec<Row> {
    let resolution = fields([
        ("meeting", when_f("2026-09-24 14:00")),
        ("resolution", text("中秋游园活动 a Mid-Autumn fair")),
        ("list", choice("projects")),
    ]);
    vec![
        allowed(
            da().given(collected())
                .when(admin(), act("resolve", resolution.clone())),
            vec![
                met(1),
                taken("resolve", "collected", "resolved", resolution.clone()),
                resolved_deadline(),
            ],
        ),
        refused(
            da().given(collected())
                .when(grid1(), act("resolve", resolution.clone())),
            role_not_allowed(&grid1(), "resolve", ADMIN),
        ),
        refused(
            da().given(collected())
                .when(other_admin(), act("resolve", resolution.clone())),
            out_of_scope(&other_admin(), "resolve", SUBTREE, "tonghui"),
        ),
        refused(
            da().given(resolved())
                .when(admin(), act("resolve", resolution.clone())),
            not_in_stage("resolve", "resolved", IN_RESOLVED),
        ),
        refused(
            da().given(collected()).when(
                admin(),
                act(
                    "resolve",
                    fields([
                        ("resolution", text("中秋游园活动")),
                        ("list", choice("projects")),
                    ]),
                ),
            ),
            field_missing("resolve", "meeting"),
        ),
        refused(
            da().given(collected())
                .when(admin(), act_seen("resolve", resolution.clone(), 1)),
            stale(1, collected().version()),
        ),
        refused(
            da().given(declined())
                .when(admin(), act("resolve", resolution.clone())),
            case_closed(),
        ),
    ]
}

fn decline() -> Vec<Row> {
    let reason = fields([("reason", text("不属于商圈事务 not a district matter"))]);
    vec![
        allowed(
            da().given(collected())
                .when(admin(), act("decline", reason.clone())),
            vec![
                met(1),
                taken("decline", "collected", "declined", reason.clone()),
            ],
        ),
        refused(
            da().given(collected())
                .when(grid1(), act("decline", reason.clone())),
            role_not_allowed(&grid1(), "decline", ADMIN),
        ),
        refused(
            da().given(collected())
                .when(other_admin(), act("decline", reason.clone())),
            out_of_scope(&other_admin(), "decline", SUBTREE, "tonghui"),
        ),
        refused(
            da().given(resolved())
                .when(admin(), act("decline", reason.clone())),
            not_in_stage("decline", "resolved", IN_RESOLVED),
        ),
        refused(
            da().given(collected())
                .when(admin(), act("decline", no_fields())),
            field_missing("decline", "reason"),
        ),
        refused(
            da().given(collected())
                .when(admin(), act_seen("decline", reason.clone(), 3)),
            stale(3, collected().version()),
        ),
        refused(
            da().given(declined())
                .when(admin(), act("decline", reason.clone())),
            case_closed(),
        ),
    ]
}

fn deliver() -> Vec<Row> {
    let hand = fields([
        ("unit", unit_f("lotus-social")),
        ("volunteers_wanted", int(10)),
    ]);
    vec![
        allowed(
            da().given(resolved())
                .when(admin(), act("deliver", hand.clone())),
            vec![
                met(2),
                taken("deliver", "resolved", "delivering", hand.clone()),
                lead("lotus-social", "tonghui", "tonghui"),
                delivering_deadline(),
            ],
        ),
        refused(
            da().given(resolved())
                .when(grid1(), act("deliver", hand.clone())),
            role_not_allowed(&grid1(), "deliver", ADMIN),
        ),
        refused(
            da().given(resolved())
                .when(other_admin(), act("deliver", hand.clone())),
            out_of_scope(&other_admin(), "deliver", SUBTREE, "tonghui"),
        ),
        refused(
            da().given(collected())
                .when(admin(), act("deliver", hand.clone())),
            not_in_stage("deliver", "collected", IN_COLLECTED),
        ),
        refused(
            da().given(resolved()).when(
                admin(),
                act("deliver", fields([("volunteers_wanted", int(10))])),
            ),
            field_missing("deliver", "unit"),
        ),
        refused(
            da().given(resolved()).when(
                admin(),
                act("deliver", fields([("unit", unit_f("tonghui"))])),
            ),
            field_invalid("unit", "tonghui already leads this case"),
        ),
        refused(
            da().given(resolved())
                .when(admin(), act_seen("deliver", hand.clone(), 2)),
            stale(2, resolved().version()),
        ),
        refused(
            da().given(declined())
                .when(admin(), act("deliver", hand.clone())),
            case_closed(),
        ),
    ]
}

fn bring_in() -> Vec<Row> {
    let team = fields([("unit", unit_f("silver-glow"))]);
    let legal = fields([("unit", unit_f("legal-aid"))]);
    vec![
        // The community that handed the need to the federation brings partners in (scope
        // subtree: the lead unit or above it).
        allowed(
            da().given(delivering())
                .when(admin(), act("bring_in", team.clone())),
            vec![
                taken("bring_in", "delivering", "delivering", team.clone()),
                co("silver-glow"),
            ],
        ),
        // Another partner joins the one already there.
        allowed(
            da().given(delivering_with_team())
                .when(admin(), act("bring_in", legal.clone())),
            vec![
                taken("bring_in", "delivering", "delivering", legal.clone()),
                co("legal-aid"),
            ],
        ),
        // Bringing in a partner that is already there changes nothing but the record.
        allowed(
            da().given(delivering_with_team())
                .when(admin(), act("bring_in", team.clone())),
            vec![taken("bring_in", "delivering", "delivering", team.clone())],
        ),
        // The federation leading the delivery does not pick its own partners.
        refused(
            da().given(delivering())
                .when(organizer(), act("bring_in", team.clone())),
            role_not_allowed(&organizer(), "bring_in", BRINGERS),
        ),
        refused(
            da().given(delivering())
                .when(volunteer(), act("bring_in", team.clone())),
            role_not_allowed(&volunteer(), "bring_in", BRINGERS),
        ),
        // A grid, or an enterprise, is not above the federation.
        refused(
            da().given(delivering())
                .when(grid1(), act("bring_in", team.clone())),
            out_of_scope(&grid1(), "bring_in", SUBTREE, "lotus-social"),
        ),
        refused(
            da().given(delivering())
                .when(liaison(), act("bring_in", team.clone())),
            out_of_scope(&liaison(), "bring_in", SUBTREE, "lotus-social"),
        ),
        refused(
            da().given(delivering())
                .when(other_admin(), act("bring_in", team.clone())),
            out_of_scope(&other_admin(), "bring_in", SUBTREE, "lotus-social"),
        ),
        refused(
            da().given(resolved())
                .when(admin(), act("bring_in", team.clone())),
            not_in_stage("bring_in", "resolved", IN_RESOLVED),
        ),
        refused(
            da().given(delivering())
                .when(admin(), act("bring_in", no_fields())),
            field_missing("bring_in", "unit"),
        ),
        refused(
            da().given(delivering()).when(
                admin(),
                act("bring_in", fields([("unit", unit_f("lotus-social"))])),
            ),
            field_invalid(
                "unit",
                "lotus-social leads this case; it cannot also co-handle it",
            ),
        ),
        refused(
            da().given(delivering())
                .when(admin(), act_seen("bring_in", team.clone(), 4)),
            stale(4, delivering().version()),
        ),
        refused(
            da().given(declined())
                .when(admin(), act("bring_in", team.clone())),
            case_closed(),
        ),
    ]
}

fn record_activity() -> Vec<Row> {
    let activity = fields([
        ("activity", text("中秋游园 Mid-Autumn fair at 骆宾王公园")),
        ("held_on", when_f("2026-09-24 09:00")),
        ("participants", int(40)),
        ("beneficiaries", int(320)),
        ("volunteers", int(12)),
    ]);
    vec![
        // The volunteer team, a co-handling unit, records it.
        allowed(
            da().given(delivering_with_team())
                .when(volunteer(), act("record_activity", activity.clone())),
            vec![
                met(3),
                taken(
                    "record_activity",
                    "delivering",
                    "activity_done",
                    activity.clone(),
                ),
                activity_deadline(),
            ],
        ),
        refused(
            da().given(delivering_with_team())
                .when(shop101(), act("record_activity", activity.clone())),
            role_not_allowed(&shop101(), "record_activity", RECORDERS),
        ),
        refused(
            da().given(delivering_with_team())
                .when(grid1(), act("record_activity", activity.clone())),
            out_of_scope(&grid1(), "record_activity", HANDLER, "lotus-social"),
        ),
        refused(
            da().given(resolved())
                .when(admin(), act("record_activity", activity.clone())),
            not_in_stage("record_activity", "resolved", IN_RESOLVED),
        ),
        refused(
            da().given(delivering_with_team()).when(
                volunteer(),
                act(
                    "record_activity",
                    fields([
                        ("activity", text("中秋游园")),
                        ("held_on", when_f("2026-09-24 09:00")),
                        ("beneficiaries", int(320)),
                    ]),
                ),
            ),
            field_missing("record_activity", "participants"),
        ),
        refused(
            da().given(delivering_with_team()).when(
                volunteer(),
                act_seen("record_activity", activity.clone(), 2),
            ),
            stale(2, delivering_with_team().version()),
        ),
        refused(
            da().given(declined())
                .when(volunteer(), act("record_activity", activity.clone())),
            case_closed(),
        ),
    ]
}

fn review() -> Vec<Row> {
    let summary = fields([
        ("summary", text("参与踊跃 well attended")),
        ("improvements", text("提前招募 recruit earlier")),
    ]);
    vec![
        // The community reviews what the federation it handed the need to delivered.
        allowed(
            da().given(activity_done())
                .when(admin(), act("review", summary.clone())),
            vec![
                met(4),
                taken("review", "activity_done", "reviewed", summary.clone()),
            ],
        ),
        refused(
            da().given(activity_done())
                .when(organizer(), act("review", summary.clone())),
            role_not_allowed(&organizer(), "review", ADMIN),
        ),
        refused(
            da().given(activity_done())
                .when(other_admin(), act("review", summary.clone())),
            out_of_scope(&other_admin(), "review", SUBTREE, "lotus-social"),
        ),
        refused(
            da().given(delivering())
                .when(admin(), act("review", summary.clone())),
            not_in_stage("review", "delivering", IN_DELIVERING),
        ),
        refused(
            da().given(activity_done()).when(
                admin(),
                act("review", fields([("improvements", text("more"))])),
            ),
            field_missing("review", "summary"),
        ),
        refused(
            da().given(activity_done())
                .when(admin(), act_seen("review", summary.clone(), 5)),
            stale(5, activity_done().version()),
        ),
        refused(
            da().given(declined())
                .when(admin(), act("review", summary.clone())),
            case_closed(),
        ),
    ]
}

#[test]
fn district_affairs_actions() {
    run("district-affairs", &table());
}
