//! Which years the calendar has official data for, and what a deadline computed with it
//! records: the years as values ([`YearSchedule`], published into the log one by one), the
//! run of covered years, and the stamp of a deadline ([`CalendarStamp`]).
//!
//! A deadline that reaches into a year without data is still computed (on plain weekdays:
//! Monday to Friday work, no holidays), but its stamp says it is provisional, and the engine
//! computes it again when that year is published (`docs/engine.md`, "Calendar years").

use super::data::{self, YearData};
use super::date::LocalDate;
use super::{BusinessCalendar, CalendarError};
use crate::clock::Timestamp;
use crate::domain::deadline::CalendarStamp;

/// One year's official schedule: the days off and the weekend days worked instead (调休), and
/// the notice they come from. What an administrator publishes for a year.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct YearSchedule {
    /// The year.
    pub year: i32,
    /// The notice the days come from.
    pub source: String,
    /// The days off, as inclusive ranges in the order written.
    pub off: Vec<(LocalDate, LocalDate)>,
    /// The weekend days that are working days, in the order written.
    pub work: Vec<LocalDate>,
}

impl YearSchedule {
    /// Every year of a document in the `cn-public-holidays.toml` format, checked.
    ///
    /// # Errors
    /// As [`BusinessCalendar::from_toml`]: the error names the year, the field and the value.
    pub fn parse_document(text: &str) -> Result<Vec<Self>, CalendarError> {
        Ok(data::parse_document(text)?
            .into_iter()
            .map(|(year, data)| Self::of(year, data))
            .collect())
    }

    /// Whether two schedules declare the same days (whatever the source or the grouping of
    /// ranges).
    pub fn same_days(&self, other: &Self) -> bool {
        self.year == other.year && self.data().same_days(&other.data())
    }

    fn of(year: i32, data: YearData) -> Self {
        Self {
            year,
            source: data.source,
            off: data.off,
            work: data.work,
        }
    }

    fn data(&self) -> YearData {
        YearData {
            source: self.source.clone(),
            off: self.off.clone(),
            work: self.work.clone(),
        }
    }
}

impl BusinessCalendar {
    /// The years of official data, as schedules, in order.
    pub fn schedules(&self) -> Vec<YearSchedule> {
        self.years
            .iter()
            .map(|(&year, data)| YearSchedule::of(year, data.clone()))
            .collect()
    }

    /// The schedule of `year`, if the calendar has it.
    pub fn schedule(&self, year: i32) -> Option<YearSchedule> {
        self.years
            .get(&year)
            .map(|data| YearSchedule::of(year, data.clone()))
    }

    /// This calendar with `schedule` for its year, in place of the one it had (a revision),
    /// and every other year as it was.
    ///
    /// # Errors
    /// [`CalendarError::Data`] when a day of it is listed the other way by a neighbouring
    /// year (a December day of the year before).
    pub fn with_schedule(&self, schedule: &YearSchedule) -> Result<Self, CalendarError> {
        let mut next = Self::weekdays_only()
            .with_hours(self.hours().clone())
            .with_zone(self.zone().clone());
        for (&year, data) in &self.years {
            if year != schedule.year {
                next.add_year(year, data.clone())?;
            }
        }
        next.add_year(schedule.year, schedule.data())?;
        Ok(next)
    }

    /// The last year of the unbroken run of covered years that starts with `year` (`None`
    /// when `year` itself is not covered).
    pub fn covered_through(&self, year: i32) -> Option<i32> {
        let mut last = None;
        let mut next = year;
        while self.covers(next) {
            last = Some(next);
            next += 1;
        }
        last
    }

    /// The local year of `at` in the calendar's zone.
    pub fn year_of(&self, at: Timestamp) -> i32 {
        match self.zone().to_local(at) {
            Ok((date, _)) => date.year(),
            // Outside 0001..=9999: the nearer end.
            Err(_) if at.as_unix_micros() < 0 => 1,
            Err(_) => 9999,
        }
    }

    /// The first instant of `year` in the calendar's zone.
    pub fn start_of_year(&self, year: i32) -> Timestamp {
        LocalDate::new(year.clamp(1, 9999), 1, 1)
            .and_then(|date| self.zone().from_local(date, 0))
            .unwrap_or(Timestamp::from_unix_micros(i64::MAX))
    }

    /// The stamp of a deadline computed with this calendar from `from` to `to` (its last
    /// step), at calendar `revision`.
    pub fn stamp(&self, revision: u32, from: Timestamp, to: Timestamp) -> CalendarStamp {
        let (first, last) = (self.year_of(from), self.year_of(to.max(from)));
        CalendarStamp {
            revision,
            zone: self.zone_name().to_owned(),
            missing_years: (first..=last).filter(|&year| !self.covers(year)).collect(),
        }
    }

    /// The zone's IANA name.
    pub fn zone_name(&self) -> &str {
        self.zone().name()
    }

    /// Adds one year's data, checked against the years already there.
    fn add_year(&mut self, year: i32, data: YearData) -> Result<(), CalendarError> {
        self.load_years(std::iter::once((year, data)).collect())
    }
}
