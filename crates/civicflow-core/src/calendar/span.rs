//! How long a deadline gives.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::CalendarError;

/// An amount of time from a start to a deadline. See the module documentation for exactly
/// where each kind lands.
///
/// Written (and (de)serialised) as text: `2 working hours`, `30 working minutes`,
/// `7 working days`, and for wall-clock spans `24 hours`, `90 minutes`, `3 days`, `10 seconds`
/// (a wall-clock day is 24 hours). Singular and plural are both accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Span {
    /// Wall-clock time: nights, weekends and holidays count. Urgent limits ("dispatch within
    /// 1 hour") are usually of this kind.
    Calendar(Duration),
    /// Minutes counted only inside the working periods of working days.
    WorkingMinutes(u32),
    /// Hours counted only inside the working periods of working days; exactly
    /// `WorkingMinutes(60 * n)`, so an hour may straddle the lunch break or a night.
    WorkingHours(u32),
    /// Ends at the close of the n-th working day after the start's day.
    WorkingDays(u32),
}

const CALENDAR_UNITS: [(&str, &str, u128); 7] = [
    ("day", "days", 86_400_000_000_000),
    ("hour", "hours", 3_600_000_000_000),
    ("minute", "minutes", 60_000_000_000),
    ("second", "seconds", 1_000_000_000),
    ("millisecond", "milliseconds", 1_000_000),
    ("microsecond", "microseconds", 1_000),
    ("nanosecond", "nanoseconds", 1),
];

/// The longest wall-clock span a deadline may give: 366 days, a year whatever the year.
pub const DEADLINE_MAX_DAYS: u32 = 366;
/// The most working days a deadline may give: about a year of them (52 weeks of 5).
pub const DEADLINE_MAX_WORKING_DAYS: u32 = 260;
/// The most working hours a deadline may give: 260 working days of 8 hours.
pub const DEADLINE_MAX_WORKING_HOURS: u32 = DEADLINE_MAX_WORKING_DAYS * 8;
/// The most working minutes a deadline may give: as many as [`DEADLINE_MAX_WORKING_HOURS`].
pub const DEADLINE_MAX_WORKING_MINUTES: u32 = DEADLINE_MAX_WORKING_HOURS * 60;

/// Why a span cannot be a deadline's ([`Span::check_deadline`]). Its message reads after the
/// name of the field it came from (`within must be more than zero …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeadlineSpanError {
    /// Zero: the deadline would fall due the moment it is set, and its ladder (escalation,
    /// breach) would run at once.
    #[error("must be more than zero (a deadline of zero falls due at once)")]
    Zero,
    /// Longer than a year: no civic deadline runs that long, and a span near the numbers'
    /// limit lands past the last moment a time can hold (year 294247), which no client reads.
    #[error(
        "must be at most a year: {DEADLINE_MAX_DAYS} days, {DEADLINE_MAX_WORKING_DAYS} working days, \
         {DEADLINE_MAX_WORKING_HOURS} working hours or {DEADLINE_MAX_WORKING_MINUTES} working \
         minutes ({0} is longer)"
    )]
    TooLong(Span),
}

impl Span {
    /// Whether the span can be a deadline's (a workflow stage's `within`, `remind_after` and
    /// `breach_after`, a directive's `within`): more than zero and at most a year of its kind
    /// (the `DEADLINE_MAX_*` constants). Parsing does not check it, so that spans stored before
    /// the bound still read; what enters a deadline does.
    ///
    /// # Errors
    /// [`DeadlineSpanError`] saying which bound it breaks.
    pub fn check_deadline(self) -> Result<(), DeadlineSpanError> {
        let (zero, too_long) = match self {
            Self::Calendar(duration) => (
                duration.is_zero(),
                duration > Duration::from_secs(u64::from(DEADLINE_MAX_DAYS) * 86_400),
            ),
            Self::WorkingMinutes(n) => (n == 0, n > DEADLINE_MAX_WORKING_MINUTES),
            Self::WorkingHours(n) => (n == 0, n > DEADLINE_MAX_WORKING_HOURS),
            Self::WorkingDays(n) => (n == 0, n > DEADLINE_MAX_WORKING_DAYS),
        };
        if zero {
            Err(DeadlineSpanError::Zero)
        } else if too_long {
            Err(DeadlineSpanError::TooLong(self))
        } else {
            Ok(())
        }
    }

    /// Parses the written form (see [`Span`]).
    ///
    /// # Errors
    ///
    /// [`CalendarError::InvalidSpan`] if the text is not a whole number followed by a known
    /// unit, or the number does not fit.
    pub fn parse(text: &str) -> Result<Self, CalendarError> {
        let invalid = |reason| CalendarError::InvalidSpan {
            value: text.to_owned(),
            reason,
        };
        let mut words = text.split_whitespace();
        let number = words.next().ok_or_else(|| invalid("empty"))?;
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(
                "expected a whole number first, e.g. `7 working days`",
            ));
        }
        let unit: Vec<&str> = words.collect();
        let working = |n: &str| {
            n.parse::<u32>()
                .map_err(|_| invalid("a number of working units must fit in 32 bits"))
        };
        match unit.as_slice() {
            ["working", "minute" | "minutes"] => Ok(Self::WorkingMinutes(working(number)?)),
            ["working", "hour" | "hours"] => Ok(Self::WorkingHours(working(number)?)),
            ["working", "day" | "days"] => Ok(Self::WorkingDays(working(number)?)),
            [unit] => {
                let nanos_per_unit = CALENDAR_UNITS
                    .iter()
                    .find(|(one, many, _)| unit == one || unit == many)
                    .map(|(_, _, nanos)| *nanos)
                    .ok_or_else(|| {
                        invalid(
                            "unknown unit: use working minutes, working hours, working days, \
                             or days, hours, minutes, seconds",
                        )
                    })?;
                let count: u128 = number
                    .parse()
                    .map_err(|_| invalid("the number is too large"))?;
                let nanos = count
                    .checked_mul(nanos_per_unit)
                    .ok_or_else(|| invalid("the span is too long"))?;
                let seconds = u64::try_from(nanos / 1_000_000_000)
                    .map_err(|_| invalid("the span is too long"))?;
                let subsec = u32::try_from(nanos % 1_000_000_000)
                    .expect("a remainder of 10^9 fits in a u32");
                Ok(Self::Calendar(Duration::new(seconds, subsec)))
            }
            _ => Err(invalid(
                "expected a number and a unit, e.g. `7 working days`, `2 working hours`, \
                 `24 hours`",
            )),
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: u128, one: &'static str, many: &'static str| {
            if n == 1 {
                one
            } else {
                many
            }
        };
        match *self {
            Self::WorkingMinutes(n) => {
                write!(f, "{n} working {}", plural(n.into(), "minute", "minutes"))
            }
            Self::WorkingHours(n) => {
                write!(f, "{n} working {}", plural(n.into(), "hour", "hours"))
            }
            Self::WorkingDays(n) => write!(f, "{n} working {}", plural(n.into(), "day", "days")),
            Self::Calendar(duration) => {
                let nanos = duration.as_nanos();
                let (one, many, per) = CALENDAR_UNITS
                    .iter()
                    .copied()
                    .find(|(_, _, per)| nanos % per == 0)
                    .unwrap_or(("nanosecond", "nanoseconds", 1));
                let count = nanos / per;
                write!(f, "{count} {}", plural(count, one, many))
            }
        }
    }
}

impl FromStr for Span {
    type Err = CalendarError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<String> for Span {
    type Error = CalendarError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<Span> for String {
    fn from(span: Span) -> Self {
        span.to_string()
    }
}
