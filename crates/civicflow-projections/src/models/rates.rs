//! 三率 (`rates`): the response, resolution and satisfaction rates of each unit per month,
//! and the monthly ranking, as the 12345 process ranks the units that handle requests.
//!
//! # Definitions
//!
//! Every figure is counted for **the unit that led the case when the event happened** (the
//! lead as of the events before it in the case's stream: a deadline closed by a reassignment
//! counts for the unit that had the case, not the one it went to) and for the **calendar month
//! in the calendar's time zone** (Asia/Shanghai by default; [`Rates::new`] takes it) of the
//! event's `recorded_at` (`civicflow_core::calendar::Zone::to_local`).
//! Only case events count; directive parts are not requests.
//!
//! - **Response rate (响应率)** = deadlines closed in time / deadlines closed, that is
//!   `DeadlineMet` / (`DeadlineMet` + `DeadlineMissed`). Every stage deadline counts (accept,
//!   dispatch, sign for, handle, reply, return visit, …): each is a promise to respond within a
//!   time. Deadlines still running do not count yet; they count in the month they close.
//! - **Resolution rate (解决率)** = actions whose `outcome` field is `resolved` or `agreement`
//!   / actions that have an `outcome` field. In the built-in workflows these are the replies
//!   of `service-request` (`resolved`, `explained`, `cannot_resolve`) and the mediations of
//!   `consumer-dispute` (`agreement`, `no_agreement`, `referred_to_court`). The field is read
//!   as a choice or a text.
//! - **Satisfaction rate (满意率)** = ratings of 4 or 5 / ratings, over `SatisfactionRated`
//!   (1 very dissatisfied … 5 very satisfied).
//!
//! A rate whose denominator is zero is `None` (no data), not 0 or 1.
//!
//! **Ranking.** Units are ordered by the mean of the rates they have (`None` rates are left
//! out of the mean), highest first; means equal to within 1e-12 tie, and ties are broken by
//! unit id; units with no rate at all come last, by unit id.
//!
//! # Keys
//!
//! | table | key | row |
//! |---|---|---|
//! | [`MONTHS`] `month` | month `YYYY-MM` (7 bytes) · unit | [`RateCounts`] |
//! | [`LEADS`] `lead` | case id (16 bytes) | the case's lead unit now |
//!
//! A month's figures are one prefix scan. Per event at most one counts row changes; lead
//! changes write the small lead row without reading it.

use std::cmp::Ordering;

use civicflow_core::calendar::Zone;
use civicflow_core::domain::case::CaseEvent;
use civicflow_core::domain::fields::FieldValue;
use civicflow_core::{Timestamp, UnitId};
use serde::{Deserialize, Serialize};

use crate::{Decoded, Event, Projection, ProjectionError, Table, Tx, View};

/// The projection's name.
pub const NAME: &str = "rates";

/// Counts per month and unit: `YYYY-MM` · unit → [`RateCounts`].
pub const MONTHS: Table<RateCounts> = Table::new("month");
/// Each case's lead now: case id → unit.
pub const LEADS: Table<UnitId> = Table::new("lead");

/// The outcomes that count as resolved.
pub const RESOLVED_OUTCOMES: &[&str] = &["resolved", "agreement"];

/// The lowest rating that counts as satisfied.
pub const SATISFIED_FROM: u8 = 4;

/// What a unit's rates are computed from, for one month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateCounts {
    /// Deadlines met (`DeadlineMet`).
    pub met: u32,
    /// Deadlines missed (`DeadlineMissed`).
    pub missed: u32,
    /// Actions with an `outcome` field.
    pub outcomes: u32,
    /// Of those, outcome `resolved` or `agreement`.
    pub resolved: u32,
    /// Ratings given.
    pub ratings: u32,
    /// Of those, 4 or 5.
    pub satisfied: u32,
}

fn ratio(part: u32, whole: u32) -> Option<f64> {
    (whole > 0).then(|| f64::from(part) / f64::from(whole))
}

impl RateCounts {
    /// 响应率: met / (met + missed).
    pub fn response_rate(&self) -> Option<f64> {
        ratio(self.met, self.met.saturating_add(self.missed))
    }

    /// 解决率: resolved / outcomes.
    pub fn resolution_rate(&self) -> Option<f64> {
        ratio(self.resolved, self.outcomes)
    }

    /// 满意率: satisfied / ratings.
    pub fn satisfaction_rate(&self) -> Option<f64> {
        ratio(self.satisfied, self.ratings)
    }

    /// The mean of the rates that have data; `None` when none has.
    pub fn mean(&self) -> Option<f64> {
        let rates: Vec<f64> = [
            self.response_rate(),
            self.resolution_rate(),
            self.satisfaction_rate(),
        ]
        .into_iter()
        .flatten()
        .collect();
        if rates.is_empty() {
            return None;
        }
        let n = u32::try_from(rates.len()).unwrap_or(3);
        Some(rates.iter().sum::<f64>() / f64::from(n))
    }
}

/// One unit's month.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitRates {
    /// The unit.
    pub unit: UnitId,
    /// The counts.
    pub counts: RateCounts,
    /// 响应率.
    pub response_rate: Option<f64>,
    /// 解决率.
    pub resolution_rate: Option<f64>,
    /// 满意率.
    pub satisfaction_rate: Option<f64>,
    /// The mean of the rates that have data.
    pub mean: Option<f64>,
}

impl UnitRates {
    fn new(unit: UnitId, counts: RateCounts) -> Self {
        Self {
            unit,
            response_rate: counts.response_rate(),
            resolution_rate: counts.resolution_rate(),
            satisfaction_rate: counts.satisfaction_rate(),
            mean: counts.mean(),
            counts,
        }
    }
}

/// A unit's place in a month's ranking.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    /// 1 for the first.
    pub rank: u32,
    /// Its figures.
    pub rates: UnitRates,
}

/// The 三率 projection.
#[derive(Debug, Clone, Default)]
pub struct Rates {
    /// Where months begin and end: the engine's calendar's zone (Asia/Shanghai by default).
    zone: Zone,
}

impl Rates {
    /// The projection, counting months in `zone` (give it the engine's calendar's).
    pub fn new(zone: Zone) -> Self {
        Self { zone }
    }
}

/// `YYYY-MM` of a moment in `zone`.
fn month_of(zone: &Zone, at: Timestamp) -> Result<[u8; 7], ProjectionError> {
    let (date, _) = zone
        .to_local(at)
        .map_err(|e| ProjectionError::event(e.to_string()))?;
    let text = format!("{:04}-{:02}", date.year(), date.month());
    <[u8; 7]>::try_from(text.as_bytes())
        .map_err(|_| ProjectionError::event(format!("month {text} is not YYYY-MM")))
}

fn month_key(month: &[u8; 7], unit: &UnitId) -> Vec<u8> {
    let mut key = Vec::with_capacity(7 + unit.as_str().len());
    key.extend_from_slice(month);
    key.extend_from_slice(unit.as_str().as_bytes());
    key
}

/// Whether a case event can count (on the type name, before decoding).
fn relevant(event_type: &str) -> bool {
    matches!(
        event_type,
        "CaseOpened"
            | "LeadAssigned"
            | "ReturnedToSender"
            | "CaseReopened"
            | "DeadlineMet"
            | "DeadlineMissed"
            | "ActionTaken"
            | "SatisfactionRated"
    )
}

fn outcome(value: &FieldValue) -> Option<&str> {
    match value {
        FieldValue::Choice(text) | FieldValue::Text(text) => Some(text),
        _ => None,
    }
}

impl Projection for Rates {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn apply(&self, event: &Event, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        if !event.stream.as_str().starts_with("case-") || !relevant(event.event_type.as_str()) {
            return Ok(());
        }
        let Decoded::Case(id, case_event) = event.decoded()? else {
            return Ok(());
        };
        let count: fn(&mut RateCounts) = match &case_event {
            CaseEvent::Opened(e) => return tx.put(&LEADS, id.as_bytes(), e.unit.clone()),
            CaseEvent::LeadAssigned(e) => return tx.put(&LEADS, id.as_bytes(), e.unit.clone()),
            CaseEvent::ReturnedToSender(e) => return tx.put(&LEADS, id.as_bytes(), e.to.clone()),
            CaseEvent::Reopened(e) => return tx.put(&LEADS, id.as_bytes(), e.lead.clone()),
            CaseEvent::DeadlineMet(_) => |c| c.met += 1,
            CaseEvent::DeadlineMissed(_) => |c| c.missed += 1,
            CaseEvent::ActionTaken(e) => match e.fields.get("outcome").and_then(outcome) {
                Some(o) if RESOLVED_OUTCOMES.contains(&o) => |c| {
                    c.outcomes += 1;
                    c.resolved += 1;
                },
                Some(_) => |c| c.outcomes += 1,
                None => return Ok(()),
            },
            CaseEvent::SatisfactionRated(e) if e.rating >= SATISFIED_FROM => |c| {
                c.ratings += 1;
                c.satisfied += 1;
            },
            CaseEvent::SatisfactionRated(_) => |c| c.ratings += 1,
            _ => return Ok(()),
        };
        // A case whose opening was never seen has no lead to count for.
        let Some(lead) = tx.get(&LEADS, id.as_bytes())?.cloned() else {
            return Ok(());
        };
        let key = month_key(&month_of(&self.zone, event.recorded_at)?, &lead);
        count(tx.entry(&MONTHS, &key)?.or_insert_with(RateCounts::default));
        Ok(())
    }
}

fn parse_month(month: &str) -> Result<[u8; 7], ProjectionError> {
    let bytes = month.as_bytes();
    let valid = bytes.len() == 7
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[5..].iter().all(u8::is_ascii_digit)
        && matches!(month[5..].parse::<u8>(), Ok(1..=12));
    if !valid {
        return Err(ProjectionError::event(format!(
            "month {month:?} is not YYYY-MM"
        )));
    }
    <[u8; 7]>::try_from(bytes).map_err(|_| ProjectionError::event("month is not YYYY-MM"))
}

/// Every unit with figures in `month` (`YYYY-MM`, Asia/Shanghai), in unit id order.
///
/// # Errors
/// [`ProjectionError::Event`] when `month` is not `YYYY-MM`; otherwise [`ProjectionError`]
/// when a row does not decode or the store fails.
pub fn month(view: &View<'_>, month: &str) -> Result<Vec<UnitRates>, ProjectionError> {
    let prefix = parse_month(month)?;
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let rows = view.scan(&MONTHS, &prefix, after.as_deref(), 512)?;
        let exhausted = rows.len() < 512;
        for (key, counts) in rows {
            let unit = std::str::from_utf8(&key[prefix.len()..])
                .ok()
                .and_then(|u| UnitId::new(u).ok())
                .ok_or_else(|| ProjectionError::event("a counts row without a unit id"))?;
            out.push(UnitRates::new(unit, counts));
            after = Some(key);
        }
        if exhausted {
            return Ok(out);
        }
    }
}

fn by_rank(a: &UnitRates, b: &UnitRates) -> Ordering {
    match (a.mean, b.mean) {
        (Some(x), Some(y)) if (x - y).abs() > 1e-12 => y.total_cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        _ => Ordering::Equal,
    }
    .then_with(|| a.unit.cmp(&b.unit))
}

fn ranked(mut rates: Vec<UnitRates>) -> Vec<Ranked> {
    rates.sort_by(by_rank);
    rates
        .into_iter()
        .zip(1u32..)
        .map(|(rates, rank)| Ranked { rank, rates })
        .collect()
}

/// The ranking of `month` over the units that have figures: by the mean of their available
/// rates, highest first, ties by unit id.
///
/// # Errors
/// As [`month()`].
pub fn ranking(view: &View<'_>, month_text: &str) -> Result<Vec<Ranked>, ProjectionError> {
    Ok(ranked(month(view, month_text)?))
}

/// The ranking of `month` over `units` (say, every grid), units without figures last.
///
/// # Errors
/// As [`month()`].
pub fn ranking_among(
    view: &View<'_>,
    month_text: &str,
    units: &[UnitId],
) -> Result<Vec<Ranked>, ProjectionError> {
    let prefix = parse_month(month_text)?;
    let mut rates = Vec::with_capacity(units.len());
    let mut seen = std::collections::BTreeSet::new();
    for unit in units {
        if !seen.insert(unit) {
            continue;
        }
        let counts = view
            .get(&MONTHS, &month_key(&prefix, unit))?
            .unwrap_or_default();
        rates.push(UnitRates::new(unit.clone(), counts));
    }
    Ok(ranked(rates))
}
