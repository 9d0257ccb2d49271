//! Calendar dates, days of the week, and RFC 3339 parsing. (Local time in a zone is in
//! `zone.rs`.)

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::CalendarError;
use crate::clock::{civil_from_days, Timestamp};

pub(crate) const MICROS_PER_MINUTE: i64 = 60_000_000;
pub(crate) const MICROS_PER_DAY: i64 = 86_400_000_000;
/// Minutes in a day.
pub const MINUTES_PER_DAY: u16 = 1440;

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weekday {
    /// 星期一.
    Monday,
    /// 星期二.
    Tuesday,
    /// 星期三.
    Wednesday,
    /// 星期四.
    Thursday,
    /// 星期五.
    Friday,
    /// 星期六.
    Saturday,
    /// 星期日.
    Sunday,
}

impl Weekday {
    /// Saturday or Sunday.
    pub const fn is_weekend(self) -> bool {
        matches!(self, Self::Saturday | Self::Sunday)
    }

    /// The weekday of a day counted from 1970-01-01 (a Thursday).
    pub(crate) fn of_day_number(days: i64) -> Self {
        match (days + 3).rem_euclid(7) {
            0 => Self::Monday,
            1 => Self::Tuesday,
            2 => Self::Wednesday,
            3 => Self::Thursday,
            4 => Self::Friday,
            5 => Self::Saturday,
            _ => Self::Sunday,
        }
    }
}

impl fmt::Display for Weekday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Monday => "Monday",
            Self::Tuesday => "Tuesday",
            Self::Wednesday => "Wednesday",
            Self::Thursday => "Thursday",
            Self::Friday => "Friday",
            Self::Saturday => "Saturday",
            Self::Sunday => "Sunday",
        })
    }
}

/// A calendar date (proleptic Gregorian), years 0001 to 9999, without a time zone of its own;
/// in civicflow it is a date in the business calendar's [`Zone`](super::Zone).
///
/// Ordered chronologically; written and parsed as `YYYY-MM-DD`, and (de)serialised as that
/// string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LocalDate {
    // Field order matters: the derived ordering is year, then month, then day.
    year: i32,
    month: u8,
    day: u8,
}

impl LocalDate {
    /// The first date a `LocalDate` can hold, 0001-01-01.
    pub const MIN: Self = Self {
        year: 1,
        month: 1,
        day: 1,
    };
    /// The last date a `LocalDate` can hold, 9999-12-31.
    pub const MAX: Self = Self {
        year: 9999,
        month: 12,
        day: 31,
    };

    /// The date `year-month-day`.
    ///
    /// # Errors
    ///
    /// [`CalendarError::InvalidDate`] if the year is outside 1..=9999, the month outside 1..=12,
    /// or the day does not exist in that month (2025-02-29 does not, 2024-02-29 does).
    pub fn new(year: i32, month: u32, day: u32) -> Result<Self, CalendarError> {
        let invalid = |reason| CalendarError::InvalidDate {
            value: format!("{year:04}-{month:02}-{day:02}"),
            reason,
        };
        if !(1..=9999).contains(&year) {
            return Err(invalid("the year must be between 0001 and 9999"));
        }
        if !(1..=12).contains(&month) {
            return Err(invalid("the month must be between 01 and 12"));
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(invalid("that day does not exist in that month"));
        }
        Ok(Self {
            year,
            month: u8::try_from(month).expect("checked to be 1..=12"),
            day: u8::try_from(day).expect("checked to be 1..=31"),
        })
    }

    /// Parses `YYYY-MM-DD` (exactly: four-digit year, two-digit month and day).
    ///
    /// # Errors
    ///
    /// [`CalendarError::InvalidDate`] if the text is not in that form or the date does not
    /// exist.
    pub fn parse(text: &str) -> Result<Self, CalendarError> {
        let invalid = |reason| CalendarError::InvalidDate {
            value: text.to_owned(),
            reason,
        };
        let bytes = text.as_bytes();
        let shape_ok = bytes.len() == 10
            && bytes[4] == b'-'
            && bytes[7] == b'-'
            && bytes
                .iter()
                .enumerate()
                .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
        if !shape_ok {
            return Err(invalid("expected YYYY-MM-DD"));
        }
        let number = |range: std::ops::Range<usize>| {
            bytes[range]
                .iter()
                .fold(0u32, |n, b| n * 10 + u32::from(b - b'0'))
        };
        let year = i32::try_from(number(0..4)).expect("four digits fit in an i32");
        Self::new(year, number(5..7), number(8..10)).map_err(|error| match error {
            CalendarError::InvalidDate { reason, .. } => invalid(reason),
            other => other,
        })
    }

    /// The year, 1..=9999.
    pub const fn year(self) -> i32 {
        self.year
    }

    /// The month, 1..=12.
    pub const fn month(self) -> u32 {
        self.month as u32
    }

    /// The day of the month, 1..=31.
    pub const fn day(self) -> u32 {
        self.day as u32
    }

    /// The day of the week.
    pub fn weekday(self) -> Weekday {
        Weekday::of_day_number(self.days_since_epoch())
    }

    /// The next day, or `None` after 9999-12-31.
    pub fn next_day(self) -> Option<Self> {
        Self::from_days_since_epoch(self.days_since_epoch() + 1)
    }

    /// The previous day, or `None` before 0001-01-01.
    pub fn previous_day(self) -> Option<Self> {
        Self::from_days_since_epoch(self.days_since_epoch() - 1)
    }

    /// Days since 1970-01-01 (negative before it).
    pub fn days_since_epoch(self) -> i64 {
        days_from_civil(i64::from(self.year), self.month(), self.day())
    }

    /// The date `days` days after 1970-01-01, or `None` outside 0001-01-01..=9999-12-31.
    pub fn from_days_since_epoch(days: i64) -> Option<Self> {
        if days < Self::MIN.days_since_epoch() || days > Self::MAX.days_since_epoch() {
            return None;
        }
        let (year, month, day) = civil_from_days(days);
        Some(Self {
            year: i32::try_from(year).ok()?,
            month: u8::try_from(month).ok()?,
            day: u8::try_from(day).ok()?,
        })
    }
}

impl fmt::Display for LocalDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl FromStr for LocalDate {
    type Err = CalendarError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<String> for LocalDate {
    type Error = CalendarError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<LocalDate> for String {
    fn from(date: LocalDate) -> Self {
        date.to_string()
    }
}

fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// A proleptic Gregorian date to days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an RFC 3339 date-time with an offset, any offset (`2026-04-14T09:30:00+08:00`,
/// `2026-03-29T03:00:00+02:00`, `2026-04-14T01:30:00.25Z`): what APIs send. The instant does
/// not depend on a zone, so this needs none. Fractions beyond microseconds are refused
/// rather than rounded; leap seconds (`:60`) and offsets without a colon are refused.
///
/// # Errors
/// [`CalendarError`] naming what is wrong.
pub fn parse_rfc3339(text: &str) -> Result<Timestamp, CalendarError> {
    let bad = |why: &'static str| CalendarError::InvalidDate {
        value: text.to_owned(),
        reason: why,
    };
    let (date, rest) = text
        .split_at_checked(10)
        .ok_or_else(|| bad("RFC 3339 date-time: too short"))?;
    let date = LocalDate::parse(date)
        .map_err(|_| bad("RFC 3339 date-time: the date is not YYYY-MM-DD"))?;
    let rest = rest
        .strip_prefix(['T', 't', ' '])
        .ok_or_else(|| bad("RFC 3339 date-time: no T between the date and the time"))?;
    let (time, offset) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => rest.split_at(i),
        None => return Err(bad("RFC 3339 date-time: no offset (Z or ±HH:MM)")),
    };
    let number = |part: &str, max: u32| -> Result<u32, CalendarError> {
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(
                "RFC 3339 date-time: hours, minutes and seconds take two digits each",
            ));
        }
        let value: u32 = part
            .parse()
            .map_err(|_| bad("RFC 3339 date-time: not a number"))?;
        if value > max {
            return Err(bad("RFC 3339 date-time: a time part is out of range"));
        }
        Ok(value)
    };
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut parts = clock.split(':');
    let (Some(h), Some(m), Some(sec), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("RFC 3339 date-time: the time is not HH:MM:SS"));
    };
    let (h, m, sec) = (number(h, 23)?, number(m, 59)?, number(sec, 59)?);
    if fraction.len() > 6 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("RFC 3339 date-time: at most six digits of fraction"));
    }
    let micros_part: i32 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<6}")
            .parse()
            .map_err(|_| bad("RFC 3339 date-time: fraction"))?
    };
    let offset_seconds: i32 = match offset {
        "Z" | "z" => 0,
        _ => {
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            let (oh, om) = offset[1..]
                .split_once(':')
                .ok_or_else(|| bad("RFC 3339 date-time: the offset is not ±HH:MM"))?;
            let seconds = number(oh, 23)? * 3600 + number(om, 59)? * 60;
            sign * i32::try_from(seconds).expect("an offset below 24 hours fits in an i32")
        }
    };
    // The grammar is checked above (jiff's parser takes a wider ISO 8601 / Temporal form);
    // jiff turns the checked parts into the instant.
    let small = |n: u32| i8::try_from(n).expect("checked to be below 60");
    let datetime = jiff::civil::DateTime::new(
        i16::try_from(date.year()).expect("a LocalDate's year is 1..=9999"),
        small(date.month()),
        small(date.day()),
        small(h),
        small(m),
        small(sec),
        micros_part * 1_000,
    )
    .map_err(|_| bad("RFC 3339 date-time: not a valid date and time"))?;
    let instant = jiff::tz::Offset::from_seconds(offset_seconds)
        .and_then(|offset| offset.to_timestamp(datetime))
        .map_err(|_| bad("RFC 3339 date-time: outside the range of times"))?;
    Ok(Timestamp::from_unix_micros(instant.as_microsecond()))
}

#[cfg(test)]
mod rfc3339_tests {
    use super::*;

    #[test]
    fn rfc3339_reads_offsets_and_fractions() {
        let at = parse_rfc3339("2026-04-14T09:30:00+08:00").expect("valid");
        assert_eq!(at.to_string(), "2026-04-14T01:30:00.000000Z");
        assert_eq!(
            super::super::Zone::shanghai().format(at),
            "2026-04-14T09:30:00+08:00"
        );
        let z = parse_rfc3339("2026-04-14T01:30:00.25Z").expect("valid");
        assert_eq!(z.as_unix_micros() - at.as_unix_micros(), 250_000);
        assert_eq!(
            parse_rfc3339("1969-12-31T23:59:59-00:30")
                .expect("valid")
                .as_unix_micros(),
            1_799 * 1_000_000
        );
        for bad in [
            "2026-04-14",
            "2026-04-14T09:30:00",
            "2026-04-14T9:30:00Z",
            "2026-04-14T24:00:00Z",
            "2026-02-30T09:30:00Z",
            "2026-04-14T09:30:00.1234567Z",
            "2026-04-14T09:30:00+0800",
            "路灯",
            "",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }
}
