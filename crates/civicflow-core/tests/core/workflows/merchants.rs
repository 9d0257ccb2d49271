//! Merchants' standing: the twelve-point system, flags, monthly and quarterly assessments.

use civicflow_core::domain::aggregate::{fold, Aggregate};
use civicflow_core::domain::merchants::{
    self, FlagAwarded, FlagColour, FlagRevoked, MonthlyAssessed, PointsDeducted, PointsRestored,
    QuarterlyRated, ScoreCycleStarted, StandingCommand, StandingEvent, StandingState,
};
use civicflow_core::domain::{Context, Rejection};
use civicflow_core::UnitId;

use super::fixture::*;
use super::scenario::{field_invalid, invalid, role_not_allowed};
use super::spec::*;

/// A unit's standing; a command names the unit it is about.
pub struct Standing;

impl Table for Standing {
    type State = Option<StandingState>;
    type Command = (UnitId, StandingCommand);
    type Event = StandingEvent;

    fn fold(events: &[StandingEvent]) -> Option<StandingState> {
        fold::<merchants::Standing>(events, built_in())
    }

    fn decide(
        state: &Option<StandingState>,
        (of, command): &(UnitId, StandingCommand),
        ctx: &Context<'_>,
    ) -> Result<Vec<StandingEvent>, Rejection> {
        merchants::Standing::decide(of, state, command, ctx).map(|d| d.events)
    }
}

const SHOP: &str = "shop-yh-101";
const VIOLATION: &str = "占道经营 goods on the pavement";

fn on(of: &str, command: StandingCommand) -> (UnitId, StandingCommand) {
    (unit(of), command)
}

fn started(cycle: &str) -> StandingEvent {
    StandingEvent::CycleStarted(ScoreCycleStarted {
        unit: unit(SHOP),
        cycle: cycle.into(),
        points: 12,
        at: at(T0),
    })
}

fn deducted(points: u8, left: u8) -> StandingEvent {
    StandingEvent::Deducted(PointsDeducted {
        unit: unit(SHOP),
        cycle: "2026".into(),
        points,
        left,
        reason: VIOLATION.into(),
        at: at(NOW),
    })
}

fn deduct(points: u8) -> StandingCommand {
    StandingCommand::Deduct {
        points,
        reason: VIOLATION.into(),
    }
}

fn restore(points: u8) -> StandingCommand {
    StandingCommand::Restore {
        points,
        reason: "已整改 put right".into(),
    }
}

fn flag(period: &str) -> StandingCommand {
    StandingCommand::AwardFlag {
        colour: FlagColour::Red,
        period: period.into(),
        reason: "诚信经营 honest trading".into(),
    }
}

fn yellow_flag(period: &str) -> StandingCommand {
    StandingCommand::AwardFlag {
        colour: FlagColour::Yellow,
        period: period.into(),
        reason: "投诉较多 many complaints".into(),
    }
}

fn red_flag() -> StandingEvent {
    red_flag_for("2026-09")
}

fn red_flag_for(period: &str) -> StandingEvent {
    StandingEvent::FlagAwarded(FlagAwarded {
        unit: unit(SHOP),
        colour: FlagColour::Red,
        period: period.into(),
        reason: "诚信经营 honest trading".into(),
        at: Some(at(NOW)),
    })
}

fn red_flag_revoked() -> StandingEvent {
    StandingEvent::FlagRevoked(FlagRevoked {
        unit: unit(SHOP),
        period: "2026-09".into(),
        reason: "投诉属实 a complaint upheld".into(),
    })
}

fn no_unit(of: &str) -> Rejection {
    Rejection::NotFound {
        what: "unit",
        id: of.into(),
    }
}

fn started_at(cycle: &str, when: &str) -> StandingEvent {
    StandingEvent::CycleStarted(ScoreCycleStarted {
        unit: unit(SHOP),
        cycle: cycle.into(),
        points: 12,
        at: at(when),
    })
}

fn deducted_at(points: u8, left: u8, when: &str) -> StandingEvent {
    StandingEvent::Deducted(PointsDeducted {
        unit: unit(SHOP),
        cycle: "2026".into(),
        points,
        left,
        reason: VIOLATION.into(),
        at: at(when),
    })
}

fn restored_at(points: u8, left: u8, when: &str) -> StandingEvent {
    StandingEvent::Restored(PointsRestored {
        unit: unit(SHOP),
        cycle: "2026".into(),
        points,
        left,
        reason: "已整改 put right".into(),
        at: at(when),
    })
}

fn flag_for(colour: FlagColour, period: &str) -> StandingEvent {
    StandingEvent::FlagAwarded(FlagAwarded {
        unit: unit(SHOP),
        colour,
        period: period.into(),
        reason: "月度评比 monthly review".into(),
        at: Some(at(T0)),
    })
}

fn assessed(month: &str, score: u8, notes: &str) -> StandingEvent {
    StandingEvent::MonthlyAssessed(MonthlyAssessed {
        unit: unit(SHOP),
        month: month.into(),
        score,
        notes: notes.into(),
    })
}

fn derive(month: &str) -> StandingCommand {
    StandingCommand::DeriveMonth {
        month: month.into(),
    }
}

fn confirm(quarter: &str, recommended: Option<bool>, score: Option<u8>) -> StandingCommand {
    StandingCommand::ConfirmQuarter {
        quarter: quarter.into(),
        recommended,
        score,
    }
}

fn rated(quarter: &str, recommended: bool, score: u8) -> StandingEvent {
    StandingEvent::QuarterlyRated(QuarterlyRated {
        unit: unit(SHOP),
        quarter: quarter.into(),
        recommended,
        score,
    })
}

/// A third quarter of 2026 (it is 24 September now, in Asia/Shanghai): the cycle from 2 July
/// (12), a deduction on 20 July (11), two on 10 August (9), one restored on 1 September just
/// after midnight local time (10; still 31 August in UTC), a red flag for August.
fn summer() -> Vec<StandingEvent> {
    vec![
        started_at("2026", "2026-07-02 09:00"),
        deducted_at(1, 11, "2026-07-20 10:00"),
        deducted_at(2, 9, "2026-08-10 10:00"),
        restored_at(1, 10, "2026-09-01 00:30"),
        flag_for(FlagColour::Red, "2026-08"),
    ]
}

/// What a derived month's notes say.
fn derived_notes(points: u8, month: &str, base: u8, flag: &str, score: u8) -> String {
    format!(
        "derived from the standing: {points} of 12 points kept at the end of {month} (cycle 2026) give {base}; {flag}; score {score} (kept within 0 to 100)"
    )
}

fn outside(acting: &civicflow_core::domain::org::Acting, of: &str) -> Rejection {
    Rejection::OutOfScope {
        unit: acting.unit.clone(),
        action: "change a merchant's standing".into(),
        scope: "a unit above the merchant".into(),
        target: unit(of),
    }
}

/// The three months of 2026Q3 assessed: 92, 85, 95.
fn quarter_assessed() -> Vec<StandingEvent> {
    vec![
        assessed("2026-07", 92, ""),
        assessed("2026-08", 85, ""),
        assessed("2026-09", 95, ""),
    ]
}

const CHANGE: &str = "change a merchant's standing";
const PATROLS: &[&str] = &["community_admin", "grid_worker", "liaison_officer"];
const ADMIN: &[&str] = &["community_admin"];

pub fn table() -> Vec<SpecRow<Standing>> {
    let new = Spec::<Standing>::new;
    let running = || Spec::<Standing>::new().given([started("2026")]);
    vec![
        ok(
            new().when(
                admin(),
                on(
                    SHOP,
                    StandingCommand::StartCycle {
                        cycle: "2026".into(),
                    },
                ),
            ),
            vec![StandingEvent::CycleStarted(ScoreCycleStarted {
                unit: unit(SHOP),
                cycle: "2026".into(),
                points: 12,
                at: at(NOW),
            })],
        ),
        // A new cycle replaces the running one.
        ok(
            running().given([deducted(3, 9)]).when(
                admin(),
                on(
                    SHOP,
                    StandingCommand::StartCycle {
                        cycle: "2027".into(),
                    },
                ),
            ),
            vec![StandingEvent::CycleStarted(ScoreCycleStarted {
                unit: unit(SHOP),
                cycle: "2027".into(),
                points: 12,
                at: at(NOW),
            })],
        ),
        no(
            running().when(
                admin(),
                on(
                    SHOP,
                    StandingCommand::StartCycle {
                        cycle: "2026".into(),
                    },
                ),
            ),
            Rejection::AlreadyExists {
                what: "scoring cycle",
                id: "2026".into(),
            },
        ),
        no(
            new().when(
                admin(),
                on(
                    "yiwu-heart",
                    StandingCommand::StartCycle {
                        cycle: "2026".into(),
                    },
                ),
            ),
            invalid(
                "unit",
                "the twelve-point system scores shops; yiwu-heart is an enterprise",
            ),
        ),
        // Patrols deduct: the grid worker and the monitoring-point liaison officer above it.
        ok(
            running().when(grid1(), on(SHOP, deduct(3))),
            vec![deducted(3, 9)],
        ),
        ok(
            running().when(monitor(), on(SHOP, deduct(2))),
            vec![deducted(2, 10)],
        ),
        // Never below zero.
        ok(
            running()
                .given([deducted(10, 2)])
                .when(grid1(), on(SHOP, deduct(5))),
            vec![deducted(2, 0)],
        ),
        no(
            running().when(shop101(), on(SHOP, deduct(3))),
            role_not_allowed(&shop101(), CHANGE, PATROLS),
        ),
        // A shop outside the caller's unit is answered as one that does not exist (as its
        // standing reads do), before the role is judged: grid 2 and another community's
        // administrator.
        no(
            running().when(grid2(), on(SHOP, deduct(3))),
            no_unit(SHOP),
        ),
        no(
            running().when(other_admin(), on(SHOP, restore(1))),
            no_unit(SHOP),
        ),
        no(
            running().when(other_admin(), on(SHOP, derive("2026-08"))),
            no_unit(SHOP),
        ),
        no(
            new().when(grid1(), on(SHOP, deduct(3))),
            invalid(
                "cycle",
                "no scoring cycle runs for shop-yh-101; start one first",
            ),
        ),
        no(
            running().when(grid1(), on(SHOP, deduct(0))),
            field_invalid("points", "must be 1 to 12"),
        ),
        no(
            running().when(grid1(), on(SHOP, deduct(13))),
            field_invalid("points", "must be 1 to 12"),
        ),
        no(
            running().when(
                grid1(),
                on(
                    SHOP,
                    StandingCommand::Deduct {
                        points: 1,
                        reason: " ".into(),
                    },
                ),
            ),
            field_invalid("reason", "must be 1 to 1000 characters"),
        ),
        // Restoring: only the community, never above twelve.
        ok(
            running()
                .given([deducted(3, 9)])
                .when(admin(), on(SHOP, restore(5))),
            vec![StandingEvent::Restored(PointsRestored {
                unit: unit(SHOP),
                cycle: "2026".into(),
                points: 3,
                left: 12,
                reason: "已整改 put right".into(),
                at: at(NOW),
            })],
        ),
        no(
            running().when(admin(), on(SHOP, restore(1))),
            invalid("points", "shop-yh-101 already has all 12 points"),
        ),
        no(
            running()
                .given([deducted(3, 9)])
                .when(grid1(), on(SHOP, restore(3))),
            role_not_allowed(&grid1(), CHANGE, ADMIN),
        ),
        // Flags.
        ok(
            new().when(admin(), on(SHOP, flag("2026-09"))),
            vec![red_flag()],
        ),
        no(
            new().when(admin(), on(SHOP, flag("2026-13"))),
            field_invalid("period", "\"2026-13\" must look like 2026-04"),
        ),
        no(
            new().when(grid1(), on(SHOP, flag("2026-09"))),
            role_not_allowed(&grid1(), CHANGE, ADMIN),
        ),
        ok(
            new().given([red_flag()]).when(
                admin(),
                on(
                    SHOP,
                    StandingCommand::RevokeFlag {
                        period: "2026-09".into(),
                        reason: "投诉属实 a complaint upheld".into(),
                    },
                ),
            ),
            vec![red_flag_revoked()],
        ),
        // One flag per period: a second one (of either colour) is refused until the first
        // is revoked; another period is free.
        no(
            new()
                .given([red_flag()])
                .when(admin(), on(SHOP, flag("2026-09"))),
            invalid(
                "period",
                "shop-yh-101 already holds a red flag for 2026-09; revoke it first",
            ),
        ),
        no(
            new()
                .given([red_flag()])
                .when(admin(), on(SHOP, yellow_flag("2026-09"))),
            invalid(
                "period",
                "shop-yh-101 already holds a red flag for 2026-09; revoke it first",
            ),
        ),
        ok(
            new()
                .given([red_flag(), red_flag_revoked()])
                .when(admin(), on(SHOP, yellow_flag("2026-09"))),
            vec![StandingEvent::FlagAwarded(FlagAwarded {
                unit: unit(SHOP),
                colour: FlagColour::Yellow,
                period: "2026-09".into(),
                reason: "投诉较多 many complaints".into(),
                at: Some(at(NOW)),
            })],
        ),
        ok(
            new()
                .given([red_flag()])
                .when(admin(), on(SHOP, flag("2026-10"))),
            vec![red_flag_for("2026-10")],
        ),
        no(
            new().given([red_flag()]).when(
                admin(),
                on(
                    SHOP,
                    StandingCommand::RevokeFlag {
                        period: "2026-08".into(),
                        reason: "?".into(),
                    },
                ),
            ),
            Rejection::NotFound {
                what: "flag for period",
                id: "2026-08".into(),
            },
        ),
        // Monthly assessment: any unit below the assessor.
        ok(
            new().when(
                admin(),
                on(
                    "yiwu-heart",
                    StandingCommand::AssessMonth {
                        month: "2026-09".into(),
                        score: 88,
                        notes: "良好 good".into(),
                    },
                ),
            ),
            vec![StandingEvent::MonthlyAssessed(MonthlyAssessed {
                unit: unit("yiwu-heart"),
                month: "2026-09".into(),
                score: 88,
                notes: "良好 good".into(),
            })],
        ),
        no(
            new().when(
                admin(),
                on(
                    SHOP,
                    StandingCommand::AssessMonth {
                        month: "2026-09".into(),
                        score: 101,
                        notes: String::new(),
                    },
                ),
            ),
            field_invalid("score", "must be 0 to 100"),
        ),
        // Nobody assesses their own unit.
        no(
            new().when(
                admin(),
                on(
                    "tonghui",
                    StandingCommand::AssessMonth {
                        month: "2026-09".into(),
                        score: 90,
                        notes: String::new(),
                    },
                ),
            ),
            outside(&admin(), "tonghui"),
        ),
        // Quarterly rating: recommended merchants are shops.
        ok(
            new().when(
                admin(),
                on(
                    SHOP,
                    StandingCommand::RateQuarter {
                        quarter: "2026Q3".into(),
                        recommended: true,
                        score: 95,
                    },
                ),
            ),
            vec![StandingEvent::QuarterlyRated(QuarterlyRated {
                unit: unit(SHOP),
                quarter: "2026Q3".into(),
                recommended: true,
                score: 95,
            })],
        ),
        no(
            new().when(
                admin(),
                on(
                    "yiwu-heart",
                    StandingCommand::RateQuarter {
                        quarter: "2026Q3".into(),
                        recommended: true,
                        score: 95,
                    },
                ),
            ),
            invalid(
                "unit",
                "recommended merchants are shops; yiwu-heart is an enterprise",
            ),
        ),
        no(
            new().when(
                admin(),
                on(
                    SHOP,
                    StandingCommand::RateQuarter {
                        quarter: "2026Q5".into(),
                        recommended: false,
                        score: 50,
                    },
                ),
            ),
            field_invalid("quarter", "\"2026Q5\" must look like 2026Q2"),
        ),
        // Revoking names a period of the same shape as awarding.
        no(
            new().given([red_flag()]).when(
                admin(),
                on(
                    SHOP,
                    StandingCommand::RevokeFlag {
                        period: "September".into(),
                        reason: "?".into(),
                    },
                ),
            ),
            field_invalid("period", "\"September\" must look like 2026-04"),
        ),
        // A month derived from the standing: the points kept at its end and its flag.
        ok(
            new().given(summer()).when(admin(), on(SHOP, derive("2026-07"))),
            vec![assessed(
                "2026-07",
                92,
                &derived_notes(11, "2026-07", 92, "no flag for the month", 92),
            )],
        ),
        // August ends with 9 points: the restoration at 00:30 on 1 September local time is
        // September's, though it is still 31 August in UTC (months are the calendar zone's).
        ok(
            new().given(summer()).when(admin(), on(SHOP, derive("2026-08"))),
            vec![assessed(
                "2026-08",
                85,
                &derived_notes(
                    9,
                    "2026-08",
                    75,
                    "a red flag for the month adds 10",
                    85,
                ),
            )],
        ),
        ok(
            new()
                .given(summer())
                .given([flag_for(FlagColour::Yellow, "2026-07")])
                .when(admin(), on(SHOP, derive("2026-07"))),
            vec![assessed(
                "2026-07",
                72,
                &derived_notes(
                    11,
                    "2026-07",
                    92,
                    "a yellow flag for the month takes 20",
                    72,
                ),
            )],
        ),
        // Never a month that is not over, nor one before any cycle.
        no(
            new().given(summer()).when(admin(), on(SHOP, derive("2026-09"))),
            invalid(
                "month",
                "2026-09 is not over (it is 2026-09 now); a month's score is derived once the month has ended",
            ),
        ),
        no(
            new().given(summer()).when(admin(), on(SHOP, derive("2027-01"))),
            invalid(
                "month",
                "2027-01 is not over (it is 2026-09 now); a month's score is derived once the month has ended",
            ),
        ),
        no(
            new().given(summer()).when(admin(), on(SHOP, derive("2026-06"))),
            invalid(
                "month",
                "no scoring cycle of shop-yh-101 had started by the end of 2026-06, so there are no points to derive its score from; assess it with a score instead",
            ),
        ),
        no(
            new().given(summer()).when(admin(), on(SHOP, derive("2026-13"))),
            field_invalid("month", "\"2026-13\" must look like 2026-04"),
        ),
        no(
            new().given(summer()).when(grid1(), on(SHOP, derive("2026-07"))),
            role_not_allowed(&grid1(), CHANGE, ADMIN),
        ),
        // A quarter confirmed: its proposal by default (the mean of 92, 85 and 95 is 91, at
        // least 90, no yellow flag: recommended), or what the administrator gives.
        ok(
            new()
                .given(quarter_assessed())
                .when(admin(), on(SHOP, confirm("2026Q3", None, None))),
            vec![rated("2026Q3", true, 91)],
        ),
        ok(
            new()
                .given(quarter_assessed())
                .when(admin(), on(SHOP, confirm("2026Q3", Some(false), None))),
            vec![rated("2026Q3", false, 91)],
        ),
        ok(
            new()
                .given(quarter_assessed())
                .given([flag_for(FlagColour::Yellow, "2026-09")])
                .when(admin(), on(SHOP, confirm("2026Q3", None, None))),
            vec![rated("2026Q3", false, 91)],
        ),
        ok(
            new()
                .given(quarter_assessed())
                .given([flag_for(FlagColour::Yellow, "2026-09")])
                .when(admin(), on(SHOP, confirm("2026Q3", Some(true), Some(90)))),
            vec![rated("2026Q3", true, 90)],
        ),
        // Without the three months there is nothing to default to.
        no(
            new()
                .given([assessed("2026-07", 92, "")])
                .when(admin(), on(SHOP, confirm("2026Q3", None, None))),
            invalid(
                "score",
                "2026Q3 of shop-yh-101 has no proposal yet: 2026-08, 2026-09 not assessed; give both score and recommended, or assess the months first",
            ),
        ),
        no(
            new()
                .given([assessed("2026-07", 92, "")])
                .when(admin(), on(SHOP, confirm("2026Q3", None, Some(80)))),
            invalid(
                "recommended",
                "2026Q3 of shop-yh-101 has no proposal yet: 2026-08, 2026-09 not assessed; give both score and recommended, or assess the months first",
            ),
        ),
        ok(
            new().when(admin(), on(SHOP, confirm("2026Q3", Some(false), Some(60)))),
            vec![rated("2026Q3", false, 60)],
        ),
        no(
            new().when(admin(), on(SHOP, confirm("2026Q3", Some(false), Some(101)))),
            field_invalid("score", "must be 0 to 100"),
        ),
        no(
            new().when(admin(), on(SHOP, confirm("2026Q0", Some(false), Some(60)))),
            field_invalid("quarter", "\"2026Q0\" must look like 2026Q2"),
        ),
        no(
            new()
                .given(quarter_assessed())
                .when(grid1(), on(SHOP, confirm("2026Q3", None, None))),
            role_not_allowed(&grid1(), CHANGE, ADMIN),
        ),
        no(
            new().when(admin(), on("shop-zz-999", flag("2026-09"))),
            Rejection::NotFound {
                what: "unit",
                id: "shop-zz-999".into(),
            },
        ),
    ]
}

#[test]
fn merchant_standing() {
    run_specs("merchant standing", &table());
}

#[test]
fn a_merchant_stream_needs_a_slug() {
    assert_eq!(
        merchants::merchant_stream(&unit(SHOP)).map(|s| s.as_str().to_owned()),
        Ok("merchant-shop-yh-101".to_owned())
    );
    assert_eq!(
        merchants::merchant_stream(&unit("Shop 101")),
        Err(field_invalid(
            "unit",
            "Shop 101 is not a slug, so it cannot name a stream"
        ))
    );
}
