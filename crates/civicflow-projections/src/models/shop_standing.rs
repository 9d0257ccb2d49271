//! Shop standing (`shop_standing`): each unit's twelve-point cycle (精品街区十二分制), its
//! recent deductions and restorations, its red and yellow flags (红黄旗竞赛), monthly
//! assessments and quarterly ratings; the recommended merchants (联盟推荐商户) of a quarter by
//! score; the flags of a month.
//!
//! # Figures
//!
//! - `cycle` and its points are exactly what the core's fold
//!   (the `apply` of [`civicflow_core::domain::merchants::Standing`]) holds, and so are `flags`, `monthly` and
//!   `quarterly`: a re-rated quarter or re-assessed month keeps the latest, a revoked flag is
//!   gone.
//! - `deducted` and `restored` are the points taken and given back in the current cycle;
//!   `history` holds the current cycle's last [`HISTORY_MAX`] changes (the log has all).
//!   A new cycle starts them afresh.
//! - The **recommended merchants** of a quarter are the units whose latest rating of that
//!   quarter says recommended, ordered by that rating's score (highest first), then unit id.
//! - The **flags** of a month are the flags held for that period (awarded and not revoked).
//!
//! # Tables and keys
//!
//! | table | key | row |
//! |---|---|---|
//! | `s` | unit id | [`StandingRow`] |
//! | `r` | quarter · 0 · (255 − score) · unit | `()`: recommended merchants, best first |
//! | `f` | period · 0 · colour (0 red, 1 yellow) · unit | `()`: flags of a period |
//!
//! The standing row remembers the rating and flag behind each index entry, so a re-rating or
//! a revocation removes the old entry. Every event touches its unit's row and at most two
//! index entries; events of other streams are skipped on the stream name.

use std::collections::BTreeMap;

use civicflow_core::domain::merchants::{FlagColour, StandingEvent};
use civicflow_core::{Timestamp, UnitId};
use serde::{Deserialize, Serialize};

use crate::{Decoded, Event, Projection, ProjectionError, Table, Tx, View};

/// The projection's name.
pub const NAME: &str = "shop_standing";

/// How many point changes a standing row keeps.
pub const HISTORY_MAX: usize = 10;

/// A deduction (negative) or a restoration (positive) of points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointChange {
    /// When.
    pub at: Timestamp,
    /// Points: negative deducted, positive restored.
    pub change: i8,
    /// The points left after it.
    pub left: u8,
    /// The violation or the reason for restoring.
    pub reason: String,
}

/// A unit's standing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StandingRow {
    /// The running cycle (`2026`) and its points now.
    pub cycle: Option<(String, u8)>,
    /// Points deducted in the running cycle.
    pub deducted: u16,
    /// Points restored in the running cycle.
    pub restored: u16,
    /// The running cycle's latest changes, oldest first (at most [`HISTORY_MAX`]).
    pub history: Vec<PointChange>,
    /// Flags held, by period (`2026-04`).
    pub flags: BTreeMap<String, FlagColour>,
    /// Monthly assessments: month → score (0-100).
    pub monthly: BTreeMap<String, u8>,
    /// Quarterly ratings: quarter (`2026Q2`) → (recommended, score).
    pub quarterly: BTreeMap<String, (bool, u8)>,
}

impl StandingRow {
    /// The points now, if a cycle runs.
    pub fn points(&self) -> Option<u8> {
        self.cycle.as_ref().map(|(_, points)| *points)
    }

    fn record(&mut self, change: PointChange) {
        if self.history.len() >= HISTORY_MAX {
            self.history.remove(0);
        }
        self.history.push(change);
    }
}

const STANDINGS: Table<StandingRow> = Table::new("s");
const RECOMMENDED: Table<()> = Table::new("r");
const FLAGS: Table<()> = Table::new("f");

fn recommended_key(quarter: &str, score: u8, unit: &UnitId) -> Vec<u8> {
    let mut key = Vec::with_capacity(quarter.len() + 2 + unit.as_str().len());
    key.extend_from_slice(quarter.as_bytes());
    key.push(0);
    key.push(255 - score);
    key.extend_from_slice(unit.as_str().as_bytes());
    key
}

fn colour_byte(colour: FlagColour) -> u8 {
    match colour {
        FlagColour::Red => 0,
        FlagColour::Yellow => 1,
    }
}

fn flag_key(period: &str, colour: FlagColour, unit: &UnitId) -> Vec<u8> {
    let mut key = Vec::with_capacity(period.len() + 2 + unit.as_str().len());
    key.extend_from_slice(period.as_bytes());
    key.push(0);
    key.push(colour_byte(colour));
    key.extend_from_slice(unit.as_str().as_bytes());
    key
}

/// The shop standing projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShopStanding;

/// An index change the event implies, done after the row is released.
enum IndexChange {
    Put(&'static Table<()>, Vec<u8>),
    Delete(&'static Table<()>, Vec<u8>),
}

impl Projection for ShopStanding {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn apply(&self, event: &Event, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        if !event.stream.as_str().starts_with("merchant-") {
            return Ok(());
        }
        let Decoded::Standing(unit, event) = event.decoded()? else {
            return Ok(());
        };
        let mut changes: Vec<IndexChange> = Vec::new();
        let row = tx
            .entry(&STANDINGS, unit.as_str().as_bytes())?
            .or_insert_with(StandingRow::default);
        match &event {
            StandingEvent::CycleStarted(e) => {
                row.cycle = Some((e.cycle.clone(), e.points));
                row.deducted = 0;
                row.restored = 0;
                row.history.clear();
            }
            StandingEvent::Deducted(e) => {
                row.cycle = Some((e.cycle.clone(), e.left));
                row.deducted = row.deducted.saturating_add(u16::from(e.points));
                row.record(PointChange {
                    at: e.at,
                    change: i8::try_from(e.points).map_or(i8::MIN, |p| -p),
                    left: e.left,
                    reason: e.reason.clone(),
                });
            }
            StandingEvent::Restored(e) => {
                row.cycle = Some((e.cycle.clone(), e.left));
                row.restored = row.restored.saturating_add(u16::from(e.points));
                row.record(PointChange {
                    at: e.at,
                    change: i8::try_from(e.points).unwrap_or(i8::MAX),
                    left: e.left,
                    reason: e.reason.clone(),
                });
            }
            StandingEvent::FlagAwarded(e) => {
                if let Some(old) = row.flags.insert(e.period.clone(), e.colour) {
                    changes.push(IndexChange::Delete(&FLAGS, flag_key(&e.period, old, unit)));
                }
                changes.push(IndexChange::Put(
                    &FLAGS,
                    flag_key(&e.period, e.colour, unit),
                ));
            }
            StandingEvent::FlagRevoked(e) => {
                if let Some(old) = row.flags.remove(&e.period) {
                    changes.push(IndexChange::Delete(&FLAGS, flag_key(&e.period, old, unit)));
                }
            }
            StandingEvent::MonthlyAssessed(e) => {
                row.monthly.insert(e.month.clone(), e.score);
            }
            StandingEvent::QuarterlyRated(e) => {
                let old = row
                    .quarterly
                    .insert(e.quarter.clone(), (e.recommended, e.score));
                if let Some((true, score)) = old {
                    changes.push(IndexChange::Delete(
                        &RECOMMENDED,
                        recommended_key(&e.quarter, score, unit),
                    ));
                }
                if e.recommended {
                    changes.push(IndexChange::Put(
                        &RECOMMENDED,
                        recommended_key(&e.quarter, e.score, unit),
                    ));
                }
            }
            _ => {}
        }
        // Deletions first: a re-award of the same colour puts back what it deleted.
        for change in &changes {
            if let IndexChange::Delete(table, key) = change {
                tx.delete(*table, key);
            }
        }
        for change in changes {
            if let IndexChange::Put(table, key) = change {
                tx.put(table, &key, ())?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Queries

/// A unit's standing (`None`: nothing was ever recorded for it).
///
/// # Errors
/// [`ProjectionError`] when the row does not decode or storage fails.
pub fn standing(view: &View<'_>, unit: &UnitId) -> Result<Option<StandingRow>, ProjectionError> {
    view.get(&STANDINGS, unit.as_str().as_bytes())
}

/// A recommended merchant of a quarter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recommended {
    /// The unit (a shop).
    pub unit: UnitId,
    /// Its rating's score.
    pub score: u8,
}

fn scan_all(
    view: &View<'_>,
    table: &Table<()>,
    prefix: &[u8],
) -> Result<Vec<Vec<u8>>, ProjectionError> {
    const CHUNK: usize = 1024;
    let mut keys = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let rows = view.scan(table, prefix, after.as_deref(), CHUNK)?;
        let full = rows.len() == CHUNK;
        after = rows.last().map(|(key, ())| key.clone());
        keys.extend(rows.into_iter().map(|(key, ())| key));
        if !full {
            return Ok(keys);
        }
    }
}

fn unit_of(bytes: &[u8]) -> Result<UnitId, ProjectionError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ProjectionError::event("an index key with a unit id that is not UTF-8"))?;
    UnitId::new(text).map_err(|e| ProjectionError::event(e.to_string()))
}

/// The recommended merchants of `quarter` (`2026Q2`): highest score first, then by unit id.
///
/// # Errors
/// [`ProjectionError`] when a key does not decode or storage fails.
pub fn recommended(view: &View<'_>, quarter: &str) -> Result<Vec<Recommended>, ProjectionError> {
    let mut prefix = quarter.as_bytes().to_vec();
    prefix.push(0);
    scan_all(view, &RECOMMENDED, &prefix)?
        .into_iter()
        .map(|key| {
            let rest = &key[prefix.len()..];
            let (&inverse, unit) = rest
                .split_first()
                .ok_or_else(|| ProjectionError::event("a recommendation key without a score"))?;
            Ok(Recommended {
                unit: unit_of(unit)?,
                score: 255 - inverse,
            })
        })
        .collect()
}

/// The flags held for a period.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct PeriodFlags {
    /// Units holding a red flag (红旗), by unit id.
    pub red: Vec<UnitId>,
    /// Units holding a yellow flag (黄旗), by unit id.
    pub yellow: Vec<UnitId>,
}

/// The red and yellow flags held for `period` (`2026-04`).
///
/// # Errors
/// [`ProjectionError`] when a key does not decode or storage fails.
pub fn flags(view: &View<'_>, period: &str) -> Result<PeriodFlags, ProjectionError> {
    let mut prefix = period.as_bytes().to_vec();
    prefix.push(0);
    let mut out = PeriodFlags::default();
    for key in scan_all(view, &FLAGS, &prefix)? {
        let rest = &key[prefix.len()..];
        match rest.split_first() {
            Some((0, unit)) => out.red.push(unit_of(unit)?),
            Some((1, unit)) => out.yellow.push(unit_of(unit)?),
            _ => return Err(ProjectionError::event("a flag key without a colour")),
        }
    }
    Ok(out)
}
