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

fn outside(acting: &civicflow_core::domain::org::Acting, of: &str) -> Rejection {
    Rejection::OutOfScope {
        unit: acting.unit.clone(),
        action: "change a merchant's standing".into(),
        scope: "a unit above the merchant".into(),
        target: unit(of),
    }
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
        no(
            running().when(grid2(), on(SHOP, deduct(3))),
            outside(&grid2(), SHOP),
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
