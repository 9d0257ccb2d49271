//! Merchants' standing: the boutique street's twelve-point system (精品街区十二分制: a shop
//! starts each cycle with 12 points and violations deduct), the red and yellow flag
//! competition (红黄旗竞赛), the monthly assessment, and the quarterly rating of recommended
//! merchants (联盟推荐商户), who get priority access to the alliance's resources.
//!
//! Each unit's standing is a stream `merchant-<unit>`.
//!
//! What can be derived is derived here, by pure functions whose rules their doc comments
//! state (and `docs/engine.md`, "Merchants' standing"): a month's score from the points kept
//! at its end and its flag ([`monthly_score`], [`derive_month`]), a quarter's proposal from
//! its three monthly scores ([`propose_quarter`]). A derived month is recorded as the
//! assessment it is (`MonthlyAssessed`, its notes saying what it was derived from); a
//! proposal becomes official only when a community administrator confirms it
//! ([`StandingCommand::ConfirmQuarter`], which records `QuarterlyRated`).

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

/// What a red flag for a month adds to the month's derived score ([`monthly_score`]).
pub const RED_FLAG_BONUS: u8 = 10;

/// What a yellow flag for a month takes from the month's derived score ([`monthly_score`]).
pub const YELLOW_FLAG_PENALTY: u8 = 20;

/// The least mean of a quarter's monthly scores that proposes a shop as a recommended
/// merchant ([`propose_quarter`]).
pub const RECOMMEND_AT: u8 = 90;

/// The roles that may deduct points: the community's administrators and the patrols (grid
/// workers, the liaison officers of the monitoring points), for shops below their unit.
pub const DEDUCTORS: &[&str] = &[
    roles::COMMUNITY_ADMIN,
    roles::GRID_WORKER,
    roles::LIAISON_OFFICER,
];

/// The roles that may do everything else to a standing (start a cycle, restore points, award
/// and revoke flags, assess a month, rate or confirm a quarter): the community's
/// administrators, for units below their own.
pub const STEWARDS: &[&str] = &[roles::COMMUNITY_ADMIN];

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
    /// The notes of each month's assessment (for a derived one, what it was derived from).
    pub monthly_notes: BTreeMap<String, String>,
    /// Every change of the points in stream order (a cycle's start, a deduction, a
    /// restoration) with its moment: what a month's points at its end are read from
    /// ([`StandingState::points_at_end_of`]).
    pub points_history: Vec<PointsChange>,
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
            monthly_notes: BTreeMap::new(),
            points_history: Vec::new(),
            quarterly: BTreeMap::new(),
            version: None,
        }
    }

    /// The current points, if a cycle runs.
    pub fn points(&self) -> Option<u8> {
        self.cycle.as_ref().map(|(_, points)| *points)
    }

    /// Records that the points of `cycle` are `left` from `at` on.
    fn points_changed(&mut self, at: Timestamp, cycle: &str, left: u8) {
        self.cycle = Some((cycle.to_owned(), left));
        self.points_history.push(PointsChange {
            at,
            cycle: cycle.to_owned(),
            left,
        });
    }

    /// The points as they stood at the end of `month` (`YYYY-MM`): the last change recorded
    /// in that month or before it, each change's month read by `month_of` (the calendar's
    /// zone, [`super::WorkingTime::month_of`]). `None` when no cycle had started by then.
    pub fn points_at_end_of(
        &self,
        month: &str,
        month_of: impl Fn(Timestamp) -> String,
    ) -> Option<&PointsChange> {
        self.points_history
            .iter()
            .rev()
            .find(|change| month_of(change.at).as_str() <= month)
    }
}

/// One change of a shop's points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointsChange {
    /// When it was recorded.
    pub at: Timestamp,
    /// The cycle it counts in.
    pub cycle: String,
    /// The points after it.
    pub left: u8,
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
    /// Record a month's assessment derived from the standing ([`derive_month`]): the score
    /// [`monthly_score`] gives for the points kept at the month's end and the month's flag,
    /// with notes saying so. Only for a month that is over, in which a cycle ran.
    DeriveMonth {
        /// `YYYY-MM`.
        month: String,
    },
    /// Make a quarter's rating official: record `QuarterlyRated` with the values given, each
    /// one left out taken from the quarter's proposal ([`propose_quarter`]); refused, naming
    /// the field, when the proposal has none (a month of the quarter is not assessed).
    ConfirmQuarter {
        /// `YYYYQn`.
        quarter: String,
        /// Whether recommended; `None`: as proposed.
        recommended: Option<bool>,
        /// 0 to 100; `None`: as proposed.
        score: Option<u8>,
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

/// Who may do what: patrols deduct ([`DEDUCTORS`]); the community starts cycles, restores,
/// awards, assesses, rates and confirms ([`STEWARDS`]).
pub fn allowed(command: &StandingCommand) -> &'static [&'static str] {
    match command {
        StandingCommand::Deduct { .. } => DEDUCTORS,
        _ => STEWARDS,
    }
}

/// Whether `viewer` may see (and so address) the standing of `unit`: the system, and a unit
/// that is `unit` or lies above it ([`OrgChart::in_scope`]). Whoever may not is told the unit
/// does not exist, by reads and writes alike.
pub fn standing_visible(unit: &UnitId, viewer: &Acting, org: &OrgChart) -> bool {
    viewer.is_system() || org.in_scope(viewer, unit)
}

/// The score of a month derived from a shop's standing, 0 to 100:
///
/// - the points kept at the month's end, out of [`FULL_POINTS`] (12), scaled to 100 and
///   rounded half up: 12 → 100, 11 → 92, 10 → 83, 9 → 75, 6 → 50, 0 → 0;
/// - plus [`RED_FLAG_BONUS`] (10) when the shop holds a red flag for the month, minus
///   [`YELLOW_FLAG_PENALTY`] (20) when it holds a yellow one;
/// - kept within 0 to 100 (11 points and a red flag: 100; 1 point and a yellow flag: 0).
pub fn monthly_score(points: u8, flag: Option<FlagColour>) -> u8 {
    let base = points_score(points);
    match flag {
        Some(FlagColour::Red) => base.saturating_add(RED_FLAG_BONUS).min(100),
        Some(FlagColour::Yellow) => base.saturating_sub(YELLOW_FLAG_PENALTY),
        None => base,
    }
}

/// `points` of [`FULL_POINTS`] scaled to 100, rounded half up (points above 12 count as 12).
fn points_score(points: u8) -> u8 {
    let points = u16::from(points.min(FULL_POINTS));
    let full = u16::from(FULL_POINTS);
    u8::try_from((points * 100 + full / 2) / full).expect("at most 100")
}

/// What a month's derived assessment was derived from, and its score ([`derive_month`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthDerivation {
    /// `YYYY-MM`.
    pub month: String,
    /// The cycle the points counted in at the month's end.
    pub cycle: String,
    /// The points kept at the month's end.
    pub points: u8,
    /// The flag held for the month.
    pub flag: Option<FlagColour>,
    /// [`monthly_score`] of the two.
    pub score: u8,
}

impl MonthDerivation {
    /// The assessment's notes: that it was derived, and from what.
    pub fn notes(&self) -> String {
        let base = points_score(self.points);
        let flag = match self.flag {
            Some(FlagColour::Red) => format!("a red flag for the month adds {RED_FLAG_BONUS}"),
            Some(FlagColour::Yellow) => {
                format!("a yellow flag for the month takes {YELLOW_FLAG_PENALTY}")
            }
            None => "no flag for the month".to_owned(),
        };
        format!(
            "derived from the standing: {} of {FULL_POINTS} points kept at the end of {} (cycle {}) give {base}; {flag}; score {} (kept within 0 to 100)",
            self.points, self.month, self.cycle, self.score
        )
    }
}

/// A month's score derived from `state` (see [`monthly_score`]): the points kept at the end
/// of `month` ([`StandingState::points_at_end_of`], each change's month read by `month_of`)
/// and the flag held for it. `current` is the month it is now: only a month that is over is
/// derived, since points may still change in a month that is not.
///
/// # Errors
/// [`Rejection::FieldInvalid`] on `month` when it is malformed; [`Rejection::Invalid`] on
/// `month` when it is not over yet, or when no cycle had started by its end.
pub fn derive_month(
    state: &StandingState,
    month: &str,
    current: &str,
    month_of: impl Fn(Timestamp) -> String,
) -> Result<MonthDerivation, Rejection> {
    check_period("month", month, false)?;
    if month >= current {
        return Err(Rejection::invalid(
            "month",
            format!(
                "{month} is not over (it is {current} now); a month's score is derived once the month has ended"
            ),
        ));
    }
    let change = state.points_at_end_of(month, month_of).ok_or_else(|| {
        Rejection::invalid(
            "month",
            format!(
                "no scoring cycle of {} had started by the end of {month}, so there are no points to derive its score from; assess it with a score instead",
                state.unit
            ),
        )
    })?;
    let flag = state.flags.get(month).copied();
    Ok(MonthDerivation {
        month: month.to_owned(),
        cycle: change.cycle.clone(),
        points: change.left,
        flag,
        score: monthly_score(change.left, flag),
    })
}

/// The three months of a quarter (`2026Q2` → `2026-04`, `2026-05`, `2026-06`).
///
/// # Errors
/// [`Rejection::FieldInvalid`] on `quarter` when it is malformed.
pub fn quarter_months(quarter: &str) -> Result<[String; 3], Rejection> {
    check_period("quarter", quarter, true)?;
    let year = &quarter[..4];
    let first = (quarter.as_bytes()[5] - b'1') * 3 + 1;
    Ok([0, 1, 2].map(|i| format!("{year}-{:02}", first + i)))
}

/// One month of a quarter's proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposedMonth {
    /// `YYYY-MM`.
    pub month: String,
    /// Its assessed score, if it was assessed.
    pub score: Option<u8>,
    /// The flag held for it.
    pub flag: Option<FlagColour>,
}

/// What a quarter's rating would be, derived from its monthly scores ([`propose_quarter`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarterProposal {
    /// `YYYYQn`.
    pub quarter: String,
    /// Its three months.
    pub months: Vec<ProposedMonth>,
    /// The proposed score; `None` while a month is not assessed.
    pub score: Option<u8>,
    /// Whether the unit is proposed as a recommended merchant; `None` while a month is not
    /// assessed.
    pub recommended: Option<bool>,
    /// Why, in words.
    pub reason: String,
    /// The rating confirmed for the quarter already (recommended, score), if any: a
    /// confirmation again replaces it.
    pub confirmed: Option<(bool, u8)>,
}

/// The proposal for `quarter` of a unit whose standing is `state` (`None`: nothing recorded
/// yet) and whose tier is `tier`:
///
/// - with each of the quarter's three months assessed (explicitly or derived), the score is
///   their mean, rounded half up;
/// - the unit is proposed as a recommended merchant when it is a shop, that mean is at least
///   [`RECOMMEND_AT`] (90), and it held no yellow flag for any month of the quarter;
/// - with a month not assessed there is no proposal yet: `score` and `recommended` are
///   `None`, and the reason names the months missing.
///
/// A proposal is not a rating: it becomes one when a community administrator confirms it
/// ([`StandingCommand::ConfirmQuarter`]).
///
/// # Errors
/// [`Rejection::FieldInvalid`] on `quarter` when it is malformed.
pub fn propose_quarter(
    state: Option<&StandingState>,
    quarter: &str,
    tier: Tier,
) -> Result<QuarterProposal, Rejection> {
    let months: Vec<ProposedMonth> = quarter_months(quarter)?
        .into_iter()
        .map(|month| ProposedMonth {
            score: state.and_then(|s| s.monthly.get(&month).copied()),
            flag: state.and_then(|s| s.flags.get(&month).copied()),
            month,
        })
        .collect();
    let confirmed = state.and_then(|s| s.quarterly.get(quarter).copied());
    let missing: Vec<&str> = months
        .iter()
        .filter(|m| m.score.is_none())
        .map(|m| m.month.as_str())
        .collect();
    if !missing.is_empty() {
        return Ok(QuarterProposal {
            quarter: quarter.to_owned(),
            reason: format!("no proposal yet: {} not assessed", missing.join(", ")),
            months,
            score: None,
            recommended: None,
            confirmed,
        });
    }
    let scores: Vec<u16> = months
        .iter()
        .filter_map(|m| m.score.map(u16::from))
        .collect();
    // The mean of three whole numbers is never exactly a half: adding one before dividing
    // rounds it to the nearest.
    let score = u8::try_from((scores.iter().sum::<u16>() + 1) / 3).expect("at most 100");
    let listed = scores
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let yellow: Vec<&str> = months
        .iter()
        .filter(|m| m.flag == Some(FlagColour::Yellow))
        .map(|m| m.month.as_str())
        .collect();
    let (recommended, why) = if tier != Tier::Shop {
        (
            false,
            format!(
                "recommended merchants are shops, and this is {}",
                tier.with_article()
            ),
        )
    } else if score < RECOMMEND_AT {
        (false, format!("below {RECOMMEND_AT}"))
    } else if !yellow.is_empty() {
        (
            false,
            format!(
                "at least {RECOMMEND_AT}, but a yellow flag for {}",
                yellow.join(", ")
            ),
        )
    } else {
        (
            true,
            format!("at least {RECOMMEND_AT}, with no yellow flag in the quarter"),
        )
    };
    Ok(QuarterProposal {
        quarter: quarter.to_owned(),
        reason: format!(
            "the mean of {listed} is {score}: {why}, so {}recommended",
            if recommended { "" } else { "not " }
        ),
        months,
        score: Some(score),
        recommended: Some(recommended),
        confirmed,
    })
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
    let not_found = || Rejection::NotFound {
        what: "unit",
        id: unit.to_string(),
    };
    let info = ctx.org.unit(unit).ok_or_else(not_found)?;
    ctx.org.check_acting(ctx.acting)?;
    if !ctx.acting.is_system() {
        // A unit the caller may not see is answered as one that does not exist, before its
        // role is judged: a write tells no more than a read (`standing_visible`).
        if !standing_visible(unit, ctx.acting, ctx.org) {
            return Err(not_found());
        }
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
        // Visible, so the unit is the caller's or lies below it; nobody judges their own.
        if ctx.acting.unit == *unit {
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
            check_period("period", period, false)?;
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
            rated(unit, info.tier, quarter, *recommended, *score)?
        }
        StandingCommand::DeriveMonth { month } => {
            let current = ctx.time.month_of(ctx.now);
            let derived = derive_month(state, month, &current, |at| ctx.time.month_of(at))?;
            StandingEvent::MonthlyAssessed(MonthlyAssessed {
                unit: unit.clone(),
                month: month.clone(),
                score: derived.score,
                notes: derived.notes(),
            })
        }
        StandingCommand::ConfirmQuarter {
            quarter,
            recommended,
            score,
        } => {
            let proposal = propose_quarter(Some(state), quarter, info.tier)?;
            let unproposed = |field: &str| {
                Rejection::invalid(
                    field,
                    format!(
                        "{quarter} of {unit} has {}; give both score and recommended, or assess the months first",
                        proposal.reason
                    ),
                )
            };
            let score = score
                .or(proposal.score)
                .ok_or_else(|| unproposed("score"))?;
            let recommended = recommended
                .or(proposal.recommended)
                .ok_or_else(|| unproposed("recommended"))?;
            rated(unit, info.tier, quarter, recommended, score)?
        }
    };
    Ok(vec![event])
}

/// The rating of `quarter` (checked already), refused when the score is out of range or a
/// unit that is not a shop would be recommended.
fn rated(
    unit: &UnitId,
    tier: Tier,
    quarter: &str,
    recommended: bool,
    score: u8,
) -> Result<StandingEvent, Rejection> {
    if score > 100 {
        return Err(Rejection::FieldInvalid {
            field: "score".into(),
            reason: "must be 0 to 100".into(),
        });
    }
    if recommended && tier != Tier::Shop {
        return Err(Rejection::invalid(
            "unit",
            format!(
                "recommended merchants are shops; {unit} is {}",
                tier.with_article()
            ),
        ));
    }
    Ok(StandingEvent::QuarterlyRated(QuarterlyRated {
        unit: unit.clone(),
        quarter: quarter.to_owned(),
        recommended,
        score,
    }))
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

    /// The system, and the unit itself and every unit above it ([`standing_visible`]).
    fn may_see(state: &Option<StandingState>, viewer: &Acting, org: &OrgChart) -> bool {
        state
            .as_ref()
            .is_some_and(|s| standing_visible(&s.unit, viewer, org))
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
        StandingEvent::CycleStarted(e) => state.points_changed(e.at, &e.cycle, e.points),
        StandingEvent::Deducted(e) => state.points_changed(e.at, &e.cycle, e.left),
        StandingEvent::Restored(e) => state.points_changed(e.at, &e.cycle, e.left),
        StandingEvent::FlagAwarded(e) => {
            state.flags.insert(e.period.clone(), e.colour);
        }
        StandingEvent::FlagRevoked(e) => {
            state.flags.remove(&e.period);
        }
        StandingEvent::MonthlyAssessed(e) => {
            state.monthly.insert(e.month.clone(), e.score);
            state.monthly_notes.insert(e.month.clone(), e.notes.clone());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn shop() -> UnitId {
        UnitId::new("shop-1").expect("a slug")
    }

    fn assessed(months: &[(&str, u8)], flags: &[(&str, FlagColour)]) -> StandingState {
        let mut state = StandingState::new(shop());
        for (month, score) in months {
            state.monthly.insert((*month).to_owned(), *score);
        }
        for (period, colour) in flags {
            state.flags.insert((*period).to_owned(), *colour);
        }
        state
    }

    #[test]
    fn a_months_score_is_its_points_out_of_twelve_with_its_flag_kept_within_0_to_100() {
        let red = Some(FlagColour::Red);
        let yellow = Some(FlagColour::Yellow);
        for (points, flag, score) in [
            (12, None, 100),
            (11, None, 92),
            (10, None, 83),
            (9, None, 75),
            (6, None, 50),
            (1, None, 8),
            (0, None, 0),
            // A red flag adds 10, never past 100.
            (10, red, 93),
            (11, red, 100),
            (12, red, 100),
            // A yellow flag takes 20, never below 0.
            (12, yellow, 80),
            (9, yellow, 55),
            (2, yellow, 0),
            (0, yellow, 0),
            // Points past twelve (no event carries them) count as twelve.
            (13, None, 100),
        ] {
            assert_eq!(
                monthly_score(points, flag),
                score,
                "{points} points, {flag:?}"
            );
        }
    }

    #[test]
    fn the_points_at_a_months_end_are_the_last_change_recorded_by_then() {
        let mut state = StandingState::new(shop());
        for (at, cycle, left) in [
            (1, "2026", 12),
            (2, "2026", 9),
            (5, "2026", 11),
            (7, "2027", 12),
        ] {
            state.points_changed(Timestamp::from_unix_seconds(at), cycle, left);
        }
        // A month's changes by a stand-in for the calendar: second 1-2 in January, 5 in
        // March, 7 in May.
        let month_of = |at: Timestamp| match at.as_unix_micros() / 1_000_000 {
            1 | 2 => "2026-01".to_owned(),
            5 => "2026-03".to_owned(),
            _ => "2026-05".to_owned(),
        };
        let at_end = |month: &str| {
            state
                .points_at_end_of(month, month_of)
                .map(|c| (c.cycle.clone(), c.left))
        };
        assert_eq!(at_end("2025-12"), None);
        assert_eq!(at_end("2026-01"), Some(("2026".into(), 9)));
        assert_eq!(at_end("2026-02"), Some(("2026".into(), 9)));
        assert_eq!(at_end("2026-03"), Some(("2026".into(), 11)));
        assert_eq!(at_end("2026-05"), Some(("2027".into(), 12)));
    }

    #[test]
    fn a_month_is_derived_once_over_and_says_what_from() {
        let mut state = StandingState::new(shop());
        state.points_changed(Timestamp::from_unix_seconds(1), "2026", 12);
        state.points_changed(Timestamp::from_unix_seconds(2), "2026", 7);
        state.flags.insert("2026-04".to_owned(), FlagColour::Yellow);
        let april = |_| "2026-04".to_owned();
        let derived = derive_month(&state, "2026-04", "2026-05", april).expect("derived");
        assert_eq!(
            (derived.points, derived.flag, derived.score),
            (7, Some(FlagColour::Yellow), 38)
        );
        assert_eq!(
            derived.notes(),
            "derived from the standing: 7 of 12 points kept at the end of 2026-04 (cycle 2026) give 58; a yellow flag for the month takes 20; score 38 (kept within 0 to 100)"
        );
        for (month, current, field) in [
            ("2026-04", "2026-04", "month"),
            ("2026-05", "2026-04", "month"),
            ("2026-03", "2026-05", "month"),
            ("2026-4", "2026-05", "month"),
        ] {
            let refused = derive_month(&state, month, current, april).expect_err(month);
            assert!(
                matches!(&refused, Rejection::Invalid { field: f, .. } | Rejection::FieldInvalid { field: f, .. } if f == field),
                "{month} in {current}: {refused}"
            );
        }
    }

    #[test]
    fn a_quarter_has_three_months() {
        assert_eq!(
            quarter_months("2026Q1").expect("valid"),
            ["2026-01", "2026-02", "2026-03"]
        );
        assert_eq!(
            quarter_months("2026Q4").expect("valid"),
            ["2026-10", "2026-11", "2026-12"]
        );
        for bad in ["2026Q5", "2026Q0", "2026-Q1", "26Q1", ""] {
            assert!(quarter_months(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_quarter_is_proposed_from_the_mean_of_its_months_without_a_yellow_flag() {
        let propose = |state: &StandingState, tier| {
            let p = propose_quarter(Some(state), "2026Q2", tier).expect("a valid quarter");
            (p.score, p.recommended)
        };
        let months = |a, b, c| [("2026-04", a), ("2026-05", b), ("2026-06", c)];
        // The mean rounded to the nearest: 89.67 is 90, recommended; 89.33 is 89, not.
        assert_eq!(
            propose(&assessed(&months(90, 90, 89), &[]), Tier::Shop),
            (Some(90), Some(true))
        );
        assert_eq!(
            propose(&assessed(&months(90, 89, 89), &[]), Tier::Shop),
            (Some(89), Some(false))
        );
        assert_eq!(
            propose(&assessed(&months(100, 100, 100), &[]), Tier::Shop),
            (Some(100), Some(true))
        );
        // A yellow flag in any month of the quarter keeps a shop out, a red one does not
        // matter, a flag of another quarter neither.
        let yellow = FlagColour::Yellow;
        assert_eq!(
            propose(
                &assessed(&months(100, 100, 100), &[("2026-05", yellow)]),
                Tier::Shop
            ),
            (Some(100), Some(false))
        );
        assert_eq!(
            propose(
                &assessed(
                    &months(95, 95, 95),
                    &[("2026-04", FlagColour::Red), ("2026-07", yellow)]
                ),
                Tier::Shop
            ),
            (Some(95), Some(true))
        );
        // Only shops are recommended merchants.
        assert_eq!(
            propose(&assessed(&months(95, 95, 95), &[]), Tier::Enterprise),
            (Some(95), Some(false))
        );
        // A month not assessed: no proposal, and the reason names it.
        let partial = propose_quarter(
            Some(&assessed(&[("2026-04", 95), ("2026-06", 95)], &[])),
            "2026Q2",
            Tier::Shop,
        )
        .expect("valid");
        assert_eq!((partial.score, partial.recommended), (None, None));
        assert_eq!(partial.reason, "no proposal yet: 2026-05 not assessed");
        let nothing = propose_quarter(None, "2026Q2", Tier::Shop).expect("valid");
        assert_eq!(nothing.months.len(), 3);
        assert_eq!(
            nothing.reason,
            "no proposal yet: 2026-04, 2026-05, 2026-06 not assessed"
        );
        let full = propose_quarter(
            Some(&assessed(&months(92, 85, 95), &[])),
            "2026Q2",
            Tier::Shop,
        )
        .expect("valid");
        assert_eq!(
            full.reason,
            "the mean of 92, 85, 95 is 91: at least 90, with no yellow flag in the quarter, so recommended"
        );
        assert!(propose_quarter(None, "2026Q9", Tier::Shop).is_err());
    }
}
