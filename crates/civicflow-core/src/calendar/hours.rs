//! The periods of a working day.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::date::{MICROS_PER_MINUTE, MINUTES_PER_DAY};
use super::error::CalendarError;

/// One period of work in a day, from `start` to `end` in minutes after local midnight
/// (`end` may be 1440, midnight at the end of the day). Written `08:30-12:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period {
    start: u16,
    end: u16,
}

impl Period {
    /// The period from minute `start` to minute `end` of the day.
    ///
    /// # Errors
    ///
    /// [`CalendarError::InvalidHours`] unless `start < end <= 1440`.
    pub fn new(start: u16, end: u16) -> Result<Self, CalendarError> {
        if end > MINUTES_PER_DAY {
            return Err(CalendarError::InvalidHours {
                value: format!("{}-{}", clock(start), clock(end)),
                reason: "a period ends at 24:00 at the latest",
            });
        }
        if start >= end {
            return Err(CalendarError::InvalidHours {
                value: format!("{}-{}", clock(start), clock(end)),
                reason: "a period must end after it starts",
            });
        }
        Ok(Self { start, end })
    }

    /// Minutes after midnight at which the period starts.
    pub const fn start(self) -> u16 {
        self.start
    }

    /// Minutes after midnight at which the period ends.
    pub const fn end(self) -> u16 {
        self.end
    }

    /// Its length in minutes.
    pub const fn minutes(self) -> u16 {
        self.end - self.start
    }

    fn start_micros(self) -> i64 {
        i64::from(self.start) * MICROS_PER_MINUTE
    }

    fn end_micros(self) -> i64 {
        i64::from(self.end) * MICROS_PER_MINUTE
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", clock(self.start), clock(self.end))
    }
}

fn clock(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// The periods of a working day, in local time, the same on every working day.
///
/// The default, 08:30-12:00 and 13:30-17:30 (7.5 hours), is a common government office day
/// in China; offices with other hours configure theirs. Written and (de)serialised as
/// `08:30-12:00, 13:30-17:30`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkingHours {
    periods: Vec<Period>,
}

impl WorkingHours {
    /// Working hours made of `periods`.
    ///
    /// # Errors
    ///
    /// [`CalendarError::InvalidHours`] if there is no period, or the periods are not in order
    /// or overlap (one may start exactly where the previous one ends).
    pub fn new(periods: impl IntoIterator<Item = Period>) -> Result<Self, CalendarError> {
        let periods: Vec<Period> = periods.into_iter().collect();
        let value = || {
            periods
                .iter()
                .map(Period::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if periods.is_empty() {
            return Err(CalendarError::InvalidHours {
                value: value(),
                reason: "a working day needs at least one period",
            });
        }
        if periods.windows(2).any(|pair| pair[0].end > pair[1].start) {
            return Err(CalendarError::InvalidHours {
                value: value(),
                reason: "periods must be in order of time and must not overlap",
            });
        }
        Ok(Self { periods })
    }

    /// Parses `HH:MM-HH:MM` periods separated by commas, e.g. `08:30-12:00, 13:30-17:30`.
    ///
    /// # Errors
    ///
    /// [`CalendarError::InvalidHours`] if the text is not in that form or the periods are not
    /// valid working hours (see [`WorkingHours::new`]).
    pub fn parse(text: &str) -> Result<Self, CalendarError> {
        let invalid = |reason| CalendarError::InvalidHours {
            value: text.to_owned(),
            reason,
        };
        let mut periods = Vec::new();
        for part in text.split(',') {
            let (start, end) = part
                .trim()
                .split_once('-')
                .ok_or_else(|| invalid("expected periods such as 08:30-12:00, 13:30-17:30"))?;
            let start = parse_clock(start.trim())
                .ok_or_else(|| invalid("a time of day is written HH:MM, 00:00 to 24:00"))?;
            let end = parse_clock(end.trim())
                .ok_or_else(|| invalid("a time of day is written HH:MM, 00:00 to 24:00"))?;
            periods.push(Period::new(start, end).map_err(|error| match error {
                CalendarError::InvalidHours { reason, .. } => invalid(reason),
                other => other,
            })?);
        }
        Self::new(periods).map_err(|error| match error {
            CalendarError::InvalidHours { reason, .. } => invalid(reason),
            other => other,
        })
    }

    /// The periods, in order.
    pub fn periods(&self) -> &[Period] {
        &self.periods
    }

    /// Working minutes in one working day (450 for the default).
    pub fn minutes_per_day(&self) -> u32 {
        self.periods.iter().map(|p| u32::from(p.minutes())).sum()
    }

    /// Minutes after midnight at which the working day ends (17:30 by default).
    pub fn end_of_day(&self) -> u16 {
        self.periods.last().map_or(0, |p| p.end)
    }

    /// Working microseconds in one working day.
    pub(crate) fn micros_per_day(&self) -> i64 {
        i64::from(self.minutes_per_day()) * MICROS_PER_MINUTE
    }

    /// Working microseconds in `[00:00, time)` of a working day, `time` in microseconds.
    pub(crate) fn worked_before(&self, time: i64) -> i64 {
        self.periods
            .iter()
            .map(|p| (time.min(p.end_micros()) - p.start_micros()).max(0))
            .sum()
    }

    /// The earliest time of a working day at which `worked` microseconds of work have been
    /// done since midnight, for `0 < worked <= micros_per_day()`: a period's end rather than
    /// the next period's start when the work runs out exactly at a break.
    pub(crate) fn time_after_working(&self, worked: i64) -> i64 {
        let mut left = worked;
        for period in &self.periods {
            let length = period.end_micros() - period.start_micros();
            if left <= length {
                return period.start_micros() + left;
            }
            left -= length;
        }
        self.periods.last().map_or(0, |p| p.end_micros())
    }

    /// Microseconds after midnight at which the working day ends.
    pub(crate) fn end_of_day_micros(&self) -> i64 {
        i64::from(self.end_of_day()) * MICROS_PER_MINUTE
    }
}

fn parse_clock(text: &str) -> Option<u16> {
    let (hours, minutes) = text.split_once(':')?;
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(hours) || !two_digits(minutes) {
        return None;
    }
    let hours: u16 = hours.parse().ok()?;
    let minutes: u16 = minutes.parse().ok()?;
    if minutes >= 60 || hours * 60 + minutes > MINUTES_PER_DAY {
        return None;
    }
    Some(hours * 60 + minutes)
}

impl Default for WorkingHours {
    /// 08:30-12:00 and 13:30-17:30.
    fn default() -> Self {
        Self {
            periods: vec![
                Period {
                    start: 8 * 60 + 30,
                    end: 12 * 60,
                },
                Period {
                    start: 13 * 60 + 30,
                    end: 17 * 60 + 30,
                },
            ],
        }
    }
}

impl fmt::Display for WorkingHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, period) in self.periods.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{period}")?;
        }
        Ok(())
    }
}

impl FromStr for WorkingHours {
    type Err = CalendarError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<String> for WorkingHours {
    type Error = CalendarError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<WorkingHours> for String {
    fn from(hours: WorkingHours) -> Self {
        hours.to_string()
    }
}
