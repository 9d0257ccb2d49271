//! What can be wrong with a date, working hours, a span or a holiday table.

use std::fmt;

use super::date::Weekday;

/// A value the calendar refuses, with what was wrong and where.
///
/// Holiday data errors ([`CalendarError::Data`]) name the year table, the field inside it
/// (`off[2]`, `work[0]`, `source`) and the value as written, so that whoever maintains the file
/// can find the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CalendarError {
    /// The holiday data is not TOML at all.
    #[error("holiday data is not valid TOML: {message}")]
    Syntax {
        /// The TOML parser's message, with line and column.
        message: String,
    },
    /// A top-level key of the holiday data is not a year (`[2027]`).
    #[error("holiday data: `[{key}]` is not a year table: {reason}")]
    NotAYear {
        /// The key as written.
        key: String,
        /// Why it is not accepted.
        reason: &'static str,
    },
    /// A field of one year's table is missing, of the wrong shape or wrong.
    #[error("holiday data [{year}] {field} = {value}: {problem}")]
    Data {
        /// The year table at fault.
        year: i32,
        /// The field inside it, with the index of the entry: `off[2]`, `work[0]`, `source`.
        field: String,
        /// The value as written (TOML syntax), or `(missing)`.
        value: String,
        /// What is wrong with it.
        problem: Problem,
    },
    /// A year is already loaded with different days.
    #[error("holiday data [{year}] is already loaded with different days; a year is loaded once")]
    YearAlreadyLoaded {
        /// The year.
        year: i32,
    },
    /// A date that does not exist or is not written `YYYY-MM-DD`.
    #[error("`{value}` is not a date: {reason}")]
    InvalidDate {
        /// The value as given.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Working hours that are empty, out of order or not `HH:MM-HH:MM`.
    #[error("`{value}` are not working hours: {reason}")]
    InvalidHours {
        /// The value as given.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A span that is not written like `7 working days` or `24 hours`.
    #[error("`{value}` is not a span: {reason}")]
    InvalidSpan {
        /// The value as given.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A time zone name the time zone database does not have.
    #[error(
        "`{name}` is not a time zone in the time zone database: give an IANA name such as \
         Asia/Shanghai, Europe/Berlin or America/New_York"
    )]
    UnknownZone {
        /// The name as given.
        name: String,
    },
    /// A time whose local date is outside the years 0001..=9999 that a [`super::LocalDate`]
    /// can hold.
    #[error("{micros} µs since the Unix epoch is outside the years 0001..=9999")]
    OutOfRange {
        /// The time, in microseconds since the Unix epoch.
        micros: i64,
    },
}

/// What is wrong with one field of a year's holiday table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The year's value is not a table of `source`, `off` and `work`.
    NotATable,
    /// A field the format does not have (a typo such as `wrok` would otherwise be ignored).
    UnknownField,
    /// A required field is absent.
    Missing,
    /// The value has the wrong TOML type.
    WrongType {
        /// What was expected.
        expected: &'static str,
    },
    /// A required list or text is empty.
    Empty,
    /// A date is not a valid `YYYY-MM-DD`.
    MalformedDate {
        /// Why.
        reason: &'static str,
    },
    /// A date outside the table's year (December of the previous year is allowed).
    OutsideYear,
    /// An `off` range whose end is before its start.
    EndBeforeStart,
    /// A `work` day that is a weekday: only weekend days are turned into working days.
    NotAWeekend {
        /// The day of the week it falls on.
        weekday: Weekday,
    },
    /// A day listed both as `off` and as `work`.
    OffAndWork {
        /// The conflicting day.
        date: String,
        /// The year table that lists it the other way (the same year or a neighbour).
        other_year: i32,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotATable => {
                f.write_str("a year must be a table with `source`, `off` and `work`")
            }
            Self::UnknownField => {
                f.write_str("unknown field (the fields are `source`, `off` and `work`)")
            }
            Self::Missing => f.write_str("required field is missing"),
            Self::WrongType { expected } => write!(f, "expected {expected}"),
            Self::Empty => f.write_str("must not be empty"),
            Self::MalformedDate { reason } => write!(f, "not a date: {reason}"),
            Self::OutsideYear => f.write_str(
                "the date is outside the table's year (only December of the previous year may \
                 appear besides the year itself)",
            ),
            Self::EndBeforeStart => f.write_str("the range ends before it starts"),
            Self::NotAWeekend { weekday } => write!(
                f,
                "a `work` day must be a Saturday or Sunday made a working day, but this is a \
                 {weekday}"
            ),
            Self::OffAndWork { date, other_year } => write!(
                f,
                "{date} is listed both as a day off and as a working day (the other listing is \
                 in [{other_year}])"
            ),
        }
    }
}
