//! Merchants' standing: the boutique street's twelve-point system (精品街区十二分制: a shop
//! starts each cycle with 12 points and violations deduct), the red and yellow flag
//! competition (红黄旗竞赛), the monthly assessment, and the quarterly rating of recommended
//! merchants (联盟推荐商户), who get priority access to the alliance's resources.
//!
//! Each unit's standing is a stream `merchant-<unit>`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::aggregate::{Aggregate, Decision, Fold};
use super::context::Context;
use super::events::domain_events;
use super::org::{roles, Acting, OrgChart, Tier};
use super::rejection::Rejection;
use crate::clock::Timestamp;
use crate::ids::{Role, StreamId, UnitId, Version};

/// The points a shop starts a cycle with.
pub const FULL_POINTS: u8 = 12;

/// The stream of a unit's standing.
///
/// # Errors
/// [`Rejection::FieldInvalid`] when the unit id is not a slug.
pub fn merchant_stream(unit: &UnitId) -> Result<StreamId, Rejection> {
    if !unit.is_slug() {
        return Err(Rejection::FieldInvalid {
            field: "unit".into(),
            reason: format!("{unit} is not a slug, so it cannot name a stream"),
        });
    }
    Ok(StreamId::new(format!("merchant-{unit}"))?)
}

/// A flag's colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagColour {
    /// 红旗: an example to follow.
    Red,
    /// 黄旗: a warning to improve.
    Yellow,
}

impl std::fmt::Display for FlagColour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FlagColour::Red => "red",
            FlagColour::Yellow => "yellow",
        })
    }
}

/// A unit's standing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandingState {
    /// The unit.
    pub unit: UnitId,
    /// The current scoring cycle (for example `2026`) and its points.
    pub cycle: Option<(String, u8)>,
    /// Flags held, by period, with their colour.
    pub flags: BTreeMap<String, FlagColour>,
    /// Monthly assessments: month (`2026-04`) → score 0-100.
    pub monthly: BTreeMap<String, u8>,
    /// Quarterly ratings: quarter (`2026Q2`) → recommended or not, with score.
    pub quarterly: BTreeMap<String, (bool, u8)>,
    /// The version of its stream this state is as of.
    pub version: Option<Version>,
}

impl StandingState {
    fn new(unit: UnitId) -> Self {
        Self {
            unit,
            cycle: None,
            flags: BTreeMap::new(),
            monthly: BTreeMap::new(),
            quarterly: BTreeMap::new(),
            version: None,
        }
    }

    /// The current points, if a cycle runs.
    pub fn points(&self) -> Option<u8> {
        self.cycle.as_ref().map(|(_, points)| *points)
    }
}

/// A command about a unit's standing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StandingCommand {
    /// Start a scoring cycle at 12 points (a shop).
    StartCycle {
        /// The cycle's name (`2026`).
        cycle: String,
    },
    /// Deduct points for a violation.
    Deduct {
        /// How many (1 to 12).
        points: u8,
        /// The violation.
        reason: String,
    },
    /// Restore points (a rectification was verified).
    Restore {
        /// How many.
        points: u8,
        /// Why.
        reason: String,
    },
    /// Award a flag for a period.
    AwardFlag {
        /// Red or yellow.
        colour: FlagColour,
        /// The period (`2026-04`).
        period: String,
        /// Why.
        reason: String,
    },
    /// Take a flag back.
    RevokeFlag {
        /// The period.
        period: String,
        /// Why.
        reason: String,
    },
    /// Record the monthly assessment.
    AssessMonth {
        /// `YYYY-MM`.
        month: String,
        /// 0 to 100.
        score: u8,
        /// Notes.
        notes: String,
    },
    /// Record the quarterly rating.
    RateQuarter {
        /// `YYYYQn`.
        quarter: String,
        /// Whether the shop is a recommended merchant (联盟推荐商户) this quarter.
        recommended: bool,
        /// 0 to 100.
        score: u8,
    },
}

/// A scoring cycle started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreCycleStarted {
    /// The unit.
    pub unit: UnitId,
    /// The cycle.
    pub cycle: String,
    /// The starting points.
    pub points: u8,
    /// When.
    pub at: Timestamp,
}

/// Points were deducted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointsDeducted {
    /// The unit.
    pub unit: UnitId,
    /// The cycle.
    pub cycle: String,
    /// How many were deducted (never below zero).
    pub points: u8,
    /// The points left.
    pub left: u8,
    /// The violation.
    pub reason: String,
    /// When.
    pub at: Timestamp,
}

/// Points were restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointsRestored {
    /// The unit.
    pub unit: UnitId,
    /// The cycle.
    pub cycle: String,
    /// How many were restored (never above 12).
    pub points: u8,
    /// The points now.
    pub left: u8,
    /// Why.
    pub reason: String,
    /// When.
    pub at: Timestamp,
}

/// A flag was awarded (schema version 2: with the moment of the award).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagAwarded {
    /// The unit.
    pub unit: UnitId,
    /// Red or yellow.
    pub colour: FlagColour,
    /// The period.
    pub period: String,
    /// Why.
    pub reason: String,
    /// When it was awarded. `None` for a flag awarded at version 1, which did not record it
    /// (the record's `recorded_at` still says when it was written).
    pub at: Option<Timestamp>,
}

/// [`FlagAwarded`] as released at version 1, without its moment. Never written again; kept so
/// that logs holding version 1 still read (`FlagAwarded::from_v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagAwardedV1 {
    /// The unit.
    pub unit: UnitId,
    /// Red or yellow.
    pub colour: FlagColour,
    /// The period.
    pub period: String,
    /// Why.
    pub reason: String,
}

impl FlagAwarded {
    /// Version 1 as version 2: the same award, its moment unknown.
    fn from_v1(old: FlagAwardedV1) -> Self {
        Self {
            unit: old.unit,
            colour: old.colour,
            period: old.period,
            reason: old.reason,
            at: None,
        }
    }
}

/// A flag was taken back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagRevoked {
    /// The unit.
    pub unit: UnitId,
    /// The period.
    pub period: String,
    /// Why.
    pub reason: String,
}

/// The monthly assessment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthlyAssessed {
    /// The unit.
    pub unit: UnitId,
    /// `YYYY-MM`.
    pub month: String,
    /// 0 to 100.
    pub score: u8,
    /// Notes.
    pub notes: String,
}

/// The quarterly rating.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarterlyRated {
    /// The unit.
    pub unit: UnitId,
    /// `YYYYQn`.
    pub quarter: String,
    /// Whether recommended.
    pub recommended: bool,
    /// 0 to 100.
    pub score: u8,
}

domain_events! {
    /// The events of a unit's standing.
    pub enum StandingEvent {
        /// A cycle started.
        CycleStarted(ScoreCycleStarted) = "ScoreCycleStarted" v 1,
        /// Points deducted.
        Deducted(PointsDeducted) = "PointsDeducted" v 1,
        /// Points restored.
        Restored(PointsRestored) = "PointsRestored" v 1,
        /// A flag awarded.
        FlagAwarded(FlagAwarded) = "FlagAwarded" v 2 {
            v 1 => FlagAwardedV1 via FlagAwarded::from_v1,
        },
        /// A flag revoked.
        FlagRevoked(FlagRevoked) = "FlagRevoked" v 1,
        /// Assessed for a month.
        MonthlyAssessed(MonthlyAssessed) = "MonthlyAssessed" v 1,
        /// Rated for a quarter.
        QuarterlyRated(QuarterlyRated) = "QuarterlyRated" v 1,
    }
}

/// Who may do what: patrols deduct, the community restores, awards and rates.
fn allowed(command: &StandingCommand) -> &'static [&'static str] {
    match command {
        StandingCommand::Deduct { .. } => &[
            roles::COMMUNITY_ADMIN,
            roles::GRID_WORKER,
            roles::LIAISON_OFFICER,
        ],
        _ => &[roles::COMMUNITY_ADMIN],
    }
}

fn check_period(field: &str, text: &str, quarter: bool) -> Result<(), Rejection> {
    let bytes = text.as_bytes();
    let ok = if quarter {
        bytes.len() == 6
            && bytes[..4].iter().all(u8::is_ascii_digit)
            && bytes[4] == b'Q'
            && (b'1'..=b'4').contains(&bytes[5])
    } else {
        bytes.len() == 7
            && bytes[..4].iter().all(u8::is_ascii_digit)
            && bytes[4] == b'-'
            && text[5..].parse::<u8>().is_ok_and(|m| (1..=12).contains(&m))
    };
    if ok {
        Ok(())
    } else {
        Err(Rejection::FieldInvalid {
            field: field.into(),
            reason: format!(
                "{text:?} must look like {}",
                if quarter { "2026Q2" } else { "2026-04" }
            ),
        })
    }
}

fn check_reason(reason: &str) -> Result<(), Rejection> {
    super::text::check("reason", reason, super::text::Lines::One)?;
    if super::text::is_blank(reason) || reason.chars().count() > 1000 {
        return Err(Rejection::FieldInvalid {
            field: "reason".into(),
            reason: "must be 1 to 1000 characters".into(),
        });
    }
    Ok(())
}

/// The events of a command about `unit`'s standing (`state` is `None` before its first event).
fn decide_events(
    unit: &UnitId,
    state: Option<&StandingState>,
    command: &StandingCommand,
    ctx: &Context<'_>,
) -> Result<Vec<StandingEvent>, Rejection> {
    let info = ctx.org.unit(unit).ok_or_else(|| Rejection::NotFound {
        what: "unit",
        id: unit.to_string(),
    })?;
    ctx.org.check_acting(ctx.acting)?;
    if !ctx.acting.is_system() {
        let roles_allowed = allowed(command);
        if !roles_allowed.contains(&ctx.acting.role.as_str()) {
            return Err(Rejection::RoleNotAllowed {
                role: ctx.acting.role.clone(),
                action: "change a merchant's standing".into(),
                allowed: roles_allowed
                    .iter()
                    .map(|r| Role::new(*r).expect("valid"))
                    .collect(),
            });
        }
        if !ctx.org.is_within(unit, &ctx.acting.unit) || ctx.acting.unit == *unit {
            return Err(Rejection::OutOfScope {
                unit: ctx.acting.unit.clone(),
                action: "change a merchant's standing".into(),
                scope: "a unit above the merchant".into(),
                target: unit.clone(),
            });
        }
    }
    let fresh = StandingState::new(unit.clone());
    let state = state.unwrap_or(&fresh);
    let scored = matches!(
        command,
        StandingCommand::StartCycle { .. }
            | StandingCommand::Deduct { .. }
            | StandingCommand::Restore { .. }
    );
    if scored && info.tier != Tier::Shop {
        return Err(Rejection::invalid(
            "unit",
            format!(
                "the twelve-point system scores shops; {unit} is {}",
                info.tier.with_article()
            ),
        ));
    }
    let cycle = || {
        state.cycle.clone().ok_or_else(|| {
            Rejection::invalid(
                "cycle",
                format!("no scoring cycle runs for {unit}; start one first"),
            )
        })
    };
    let event = match command {
        StandingCommand::StartCycle { cycle } => {
            super::text::check("cycle", cycle, super::text::Lines::One)?;
            if super::text::is_blank(cycle) || cycle.len() > 32 {
                return Err(Rejection::FieldInvalid {
                    field: "cycle".into(),
                    reason: "must be 1 to 32 characters".into(),
                });
            }
            if state.cycle.as_ref().is_some_and(|(c, _)| c == cycle) {
                return Err(Rejection::AlreadyExists {
                    what: "scoring cycle",
                    id: cycle.clone(),
                });
            }
            StandingEvent::CycleStarted(ScoreCycleStarted {
                unit: unit.clone(),
                cycle: cycle.clone(),
                points: FULL_POINTS,
                at: ctx.now,
            })
        }
        StandingCommand::Deduct { points, reason } => {
            check_reason(reason)?;
            if !(1..=FULL_POINTS).contains(points) {
                return Err(Rejection::FieldInvalid {
                    field: "points".into(),
                    reason: "must be 1 to 12".into(),
                });
            }
            let (cycle, left) = cycle()?;
            let taken = (*points).min(left);
            StandingEvent::Deducted(PointsDeducted {
                unit: unit.clone(),
                cycle,
                points: taken,
                left: left - taken,
                reason: reason.clone(),
                at: ctx.now,
            })
        }
        StandingCommand::Restore { points, reason } => {
            check_reason(reason)?;
            if !(1..=FULL_POINTS).contains(points) {
                return Err(Rejection::FieldInvalid {
                    field: "points".into(),
                    reason: "must be 1 to 12".into(),
                });
            }
            let (cycle, left) = cycle()?;
            let given = (*points).min(FULL_POINTS - left);
            if given == 0 {
                return Err(Rejection::invalid(
                    "points",
                    format!("{unit} already has all {FULL_POINTS} points"),
                ));
            }
            StandingEvent::Restored(PointsRestored {
                unit: unit.clone(),
                cycle,
                points: given,
                left: left + given,
                reason: reason.clone(),
                at: ctx.now,
            })
        }
        StandingCommand::AwardFlag {
            colour,
            period,
            reason,
        } => {
            check_period("period", period, false)?;
            check_reason(reason)?;
            if let Some(held) = state.flags.get(period) {
                return Err(Rejection::invalid(
                    "period",
                    format!("{unit} already holds a {held} flag for {period}; revoke it first"),
                ));
            }
            StandingEvent::FlagAwarded(FlagAwarded {
                unit: unit.clone(),
                colour: *colour,
                period: period.clone(),
                reason: reason.clone(),
                at: Some(ctx.now),
            })
        }
        StandingCommand::RevokeFlag { period, reason } => {
            check_reason(reason)?;
            if !state.flags.contains_key(period) {
                return Err(Rejection::NotFound {
                    what: "flag for period",
                    id: period.clone(),
                });
            }
            StandingEvent::FlagRevoked(FlagRevoked {
                unit: unit.clone(),
                period: period.clone(),
                reason: reason.clone(),
            })
        }
        StandingCommand::AssessMonth {
            month,
            score,
            notes,
        } => {
            check_period("month", month, false)?;
            if *score > 100 {
                return Err(Rejection::FieldInvalid {
                    field: "score".into(),
                    reason: "must be 0 to 100".into(),
                });
            }
            super::text::check("notes", notes, super::text::Lines::Many)?;
            if notes.chars().count() > 4000 {
                return Err(Rejection::FieldInvalid {
                    field: "notes".into(),
                    reason: "at most 4000 characters".into(),
                });
            }
            StandingEvent::MonthlyAssessed(MonthlyAssessed {
                unit: unit.clone(),
                month: month.clone(),
                score: *score,
                notes: notes.clone(),
            })
        }
        StandingCommand::RateQuarter {
            quarter,
            recommended,
            score,
        } => {
            check_period("quarter", quarter, true)?;
            if *score > 100 {
                return Err(Rejection::FieldInvalid {
                    field: "score".into(),
                    reason: "must be 0 to 100".into(),
                });
            }
            if *recommended && info.tier != Tier::Shop {
                return Err(Rejection::invalid(
                    "unit",
                    format!(
                        "recommended merchants are shops; {unit} is {}",
                        info.tier.with_article()
                    ),
                ));
            }
            StandingEvent::QuarterlyRated(QuarterlyRated {
                unit: unit.clone(),
                quarter: quarter.clone(),
                recommended: *recommended,
                score: *score,
            })
        }
    };
    Ok(vec![event])
}

/// A unit's standing (a shop's points, flags, assessments and ratings): one stream
/// `merchant-<unit>` per unit.
#[derive(Debug, Clone, Copy)]
pub struct Standing;

impl Aggregate for Standing {
    type Id = UnitId;
    type State = Option<StandingState>;
    type Command = StandingCommand;
    type Event = StandingEvent;

    const KIND: &'static str = "standing";

    /// Refused when the unit id is not a slug, and so cannot name a stream.
    fn stream(unit: &UnitId) -> Result<StreamId, Rejection> {
        merchant_stream(unit)
    }

    /// Refused with the role, unit or field at fault.
    fn decide(
        unit: &UnitId,
        state: &Option<StandingState>,
        command: &StandingCommand,
        ctx: &Context<'_>,
    ) -> Result<Decision<Self>, Rejection> {
        decide_events(unit, state.as_ref(), command, ctx).map(Decision::events)
    }

    fn apply(state: &mut Option<StandingState>, event: &StandingEvent, fold: &Fold<'_>) {
        *state = Some(apply_event(state.take(), event, fold.version));
    }

    /// The system, and the unit itself and every unit above it.
    fn may_see(state: &Option<StandingState>, viewer: &Acting, org: &OrgChart) -> bool {
        state
            .as_ref()
            .is_some_and(|s| viewer.is_system() || org.in_scope(viewer, &s.unit))
    }
}

/// Folds an event into a unit's standing.
fn apply_event(
    state: Option<StandingState>,
    event: &StandingEvent,
    version: Version,
) -> StandingState {
    let unit = match event {
        StandingEvent::CycleStarted(e) => &e.unit,
        StandingEvent::Deducted(e) => &e.unit,
        StandingEvent::Restored(e) => &e.unit,
        StandingEvent::FlagAwarded(e) => &e.unit,
        StandingEvent::FlagRevoked(e) => &e.unit,
        StandingEvent::MonthlyAssessed(e) => &e.unit,
        StandingEvent::QuarterlyRated(e) => &e.unit,
    };
    let mut state = state.unwrap_or_else(|| StandingState::new(unit.clone()));
    match event {
        StandingEvent::CycleStarted(e) => state.cycle = Some((e.cycle.clone(), e.points)),
        StandingEvent::Deducted(e) => state.cycle = Some((e.cycle.clone(), e.left)),
        StandingEvent::Restored(e) => state.cycle = Some((e.cycle.clone(), e.left)),
        StandingEvent::FlagAwarded(e) => {
            state.flags.insert(e.period.clone(), e.colour);
        }
        StandingEvent::FlagRevoked(e) => {
            state.flags.remove(&e.period);
        }
        StandingEvent::MonthlyAssessed(e) => {
            state.monthly.insert(e.month.clone(), e.score);
        }
        StandingEvent::QuarterlyRated(e) => {
            state
                .quarterly
                .insert(e.quarter.clone(), (e.recommended, e.score));
        }
    }
    state.version = Some(version);
    state
}
