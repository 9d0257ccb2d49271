//! The business calendar: when deadlines fall, counted in working time in the calendar's time
//! zone (Asia/Shanghai by default).
//!
//! # Why a business calendar
//!
//! Chinese administrative limits are mostly counted in working time: the 12345 hotline's
//! "feedback within 7 days", a licence "decided within 20 working days" (行政许可法 counts
//! 工作日, excluding public holidays). A deadline set on a Friday afternoon before a holiday
//! must skip the weekend and the holiday, and it must also count the weekend days that China
//! turns into working days to make a holiday longer (调休): in 2026 the Spring Festival runs
//! from Sunday 15 February to Monday 23 February, and Saturdays 14 and 28 February are working
//! days instead.
//!
//! So a day is a **working day** when:
//!
//! - it is listed as `off` in the official data: never a working day, even on a Monday
//!   (2026-02-16 is not one);
//! - it is listed as `work`: always a working day, although a Saturday or Sunday
//!   (2026-02-14 is one);
//! - otherwise it is a working day from Monday to Friday and not on Saturday or Sunday.
//!
//! # The data, and years without it
//!
//! The General Office of the State Council (国务院办公厅) publishes the next year's holidays
//! and 调休 days each November. civicflow ships 2025 and 2026 (`calendar/cn-public-holidays.toml`
//! in `civicflow-core`, with the notice each year comes from) and users load later years in
//! the same format, without a new release: one table per year, a `source`, the `off` ranges
//! (inclusive) and the `work` days. A table may also list days of December of the previous
//! year (the 2023 New Year holiday began on 2022-12-31). Data is checked when loaded: a range
//! that ends before it starts, a `work` day that is not a weekend day, a day both `off` and
//! `work`, a malformed date, an unknown field are refused, and the error names the year, the
//! field and the value.
//!
//! For a year whose data is not loaded ([`BusinessCalendar::covers`] says which are), the
//! calendar still answers, with the plain rule alone: Monday to Friday work, weekends not,
//! no holidays. Such an answer is a guess (it is wrong around every holiday); the engine can
//! check `covers` before relying on it. A deadline, once computed, is recorded as an instant
//! (`DeadlineSet.due_at`), so loading data later never moves a deadline already set.
//!
//! # Local time
//!
//! Everything is counted in the calendar's time zone, a [`Zone`]: an IANA zone by name
//! (`Asia/Shanghai` by default, `Europe/Berlin`, `America/New_York`), set with
//! [`BusinessCalendar::with_zone`] (`civicflow serve --time-zone NAME`). Working days are
//! local dates there and working periods local wall-clock times, so a city elsewhere gets its
//! deadlines at its own close of business. The zone's rules (offsets, daylight saving time,
//! their history) come from the IANA time zone database through [jiff]: the host's copy
//! (`TZDIR`, else `/usr/share/zoneinfo`), kept current by the operating system when a
//! country changes its rules, or, where the host has none (a container without tzdata),
//! the copy bundled into the binary. A deadline is recorded as an instant once computed, so
//! a later change of the rules never moves it.
//!
//! [`Zone::to_local`] and [`Zone::from_local`] convert between a [`Timestamp`] and a
//! [`LocalDate`] with a minute of the day; a local time that a clock change skips or repeats
//! is resolved the "compatible" way (see [`Zone::from_local`]). [`Zone::format`] writes an
//! instant as RFC 3339 in the zone with its offset at that moment
//! (`2026-04-01T09:30:00+08:00`): every time civicflow shows (HTTP answers, Open311, audits,
//! the command line) is written so. [`parse_rfc3339`] reads RFC 3339 with any offset.
//!
//! Asia/Shanghai has kept UTC+8 all year since 1991; the summers of 1986-1991 were UTC+9,
//! and the database knows it, so local times then are historically exact.
//!
//! **Days when the clocks change.** Working periods are local wall-clock periods on every
//! working day: 08:30-12:00 is 3.5 hours of working time on the day clocks go forward at
//! 02:00 as on any other, and a deadline lands at the local close of business (17:30 by the
//! new clock). Working time is counted on the local wall clock. Clocks change at night
//! (02:00 or 03:00 in Europe and North America, midnight in a few zones), outside any
//! office's periods, so on those days too the working time counted is the real time that
//! passed inside the periods. Only a period that contains the change itself (00:00-24:00 in
//! a zone changing at 02:00) counts its wall-clock length (24 hours on a 23-hour day); a
//! deadline that would fall in a skipped hour is placed the compatible way.
//!
//! [jiff]: https://docs.rs/jiff
//!
//! # Working hours
//!
//! A working day has working periods, the same every working day: by default 08:30-12:00 and
//! 13:30-17:30 (7.5 hours, a common government office day), configurable with
//! [`BusinessCalendar::with_hours`]. Time outside the periods (nights, the lunch break) is not
//! working time.
//!
//! # Spans: where a deadline lands
//!
//! [`BusinessCalendar::add`] turns a start and a [`Span`] into a deadline:
//!
//! - [`Span::Calendar`]: wall-clock time, nights and holidays included (urgent limits such as
//!   "dispatch within 1 hour").
//! - [`Span::WorkingMinutes`] and [`Span::WorkingHours`] (exactly 60 working minutes each): the
//!   deadline is the earliest instant by which that much working time has passed since the
//!   start. A start outside working hours (at night, during lunch, on a holiday) starts
//!   counting at the next working period; a span that runs out exactly at the end of a period
//!   ends there (at 12:00, not at 13:30 when work resumes). For example, 2 working hours from
//!   Friday 2026-09-25 16:30: that Friday is the first day of the Mid-Autumn holiday, the
//!   weekend follows, so counting starts on Monday 2026-09-28 at 08:30 and the deadline is
//!   10:30 that Monday. From Thursday 2026-09-24 16:30 it would be one hour on Thursday and one
//!   on Monday: Monday 09:30.
//! - [`Span::WorkingDays`]: the deadline is the **close of the n-th working day after the
//!   start's day** (17:30 with the default hours). The day of the start never counts, whatever
//!   the hour, whether it is a working day or not; the first working day after it is day 1.
//!   This is how Chinese law counts periods (民法典 第二百零一条: 开始的当日不计入，自下一日开始
//!   计算; 第二百零三条: the last day ends when business stops, 有业务时间的，停止业务活动的时间为截止
//!   时间), and how offices read "3个工作日": by close of business on the third working day,
//!   not at the same hour. (That is why it is not `WorkingMinutes(450 × n)`: a request
//!   accepted at 16:00 would then fall due at 16:00, and a request accepted at 08:00 would
//!   lose the day it was accepted on.) Example around a holiday: a request accepted on
//!   Wednesday 2026-09-30 at 10:00 with 3 working days: 1 to 7 October are the National Day
//!   holiday, so day 1 is Thursday 10-08, day 2 Friday 10-09, and day 3 is Saturday 10-10, a
//!   调休 working day: due 2026-10-10 17:30. `WorkingDays(0)` means "by close of business
//!   today": the close of the start's day if that is a working day not yet closed, otherwise
//!   the close of the next working day.
//!
//! [`BusinessCalendar::working_time_between`] measures the working time between two instants
//! (for reports: how long a case was really with a unit). It agrees with `add`: the working
//! time between a start and `add(start, WorkingMinutes(n))` is exactly n minutes.
//!
//! ```
//! use civicflow_core::calendar::{BusinessCalendar, LocalDate, Span, Zone};
//!
//! let calendar = BusinessCalendar::china();
//! let zone = calendar.zone();
//! let accepted = zone.from_local(LocalDate::parse("2026-09-30")?, 10 * 60)?;
//! let due = calendar.add(accepted, Span::WorkingDays(3));
//! assert_eq!(zone.to_local(due)?, (LocalDate::parse("2026-10-10")?, 17 * 60 + 30));
//! assert_eq!(zone.format(due), "2026-10-10T17:30:00+08:00");
//!
//! // The same office hours in Berlin, without holidays: 3 working days from Friday
//! // 2026-03-27 end at the close of Wednesday 2026-04-01, summer time since Sunday.
//! let berlin = BusinessCalendar::weekdays_only().with_zone(Zone::named("Europe/Berlin")?);
//! let friday = berlin.zone().from_local(LocalDate::parse("2026-03-27")?, 10 * 60)?;
//! let due = berlin.add(friday, Span::WorkingDays(3));
//! assert_eq!(berlin.zone().format(due), "2026-04-01T17:30:00+02:00");
//! # Ok::<(), civicflow_core::calendar::CalendarError>(())
//! ```
//!
//! Not modelled: half-day holidays that apply to some people only (Women's Day, Youth Day),
//! an office's own closures, and working hours that change with the season.

mod coverage;
mod data;
mod date;
mod error;
mod hours;
mod span;
#[cfg(test)]
mod tests;
mod zone;

use std::collections::BTreeMap;
use std::time::Duration;

pub use coverage::YearSchedule;
pub use date::{parse_rfc3339, LocalDate, Weekday, MINUTES_PER_DAY};
pub use error::{CalendarError, Problem};
pub use hours::{Period, WorkingHours};
pub use span::{
    DeadlineSpanError, Span, DEADLINE_MAX_DAYS, DEADLINE_MAX_WORKING_DAYS,
    DEADLINE_MAX_WORKING_HOURS, DEADLINE_MAX_WORKING_MINUTES,
};
pub use zone::Zone;

use crate::clock::Timestamp;
use data::YearData;
use date::{MICROS_PER_DAY, MICROS_PER_MINUTE};

/// The official 2025 and 2026 data, embedded at build time.
const CHINA_TOML: &str = include_str!("../../calendar/cn-public-holidays.toml");

/// A day the official data sets apart from the plain Monday-to-Friday rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Listed {
    working: bool,
    /// The year table that lists it.
    year: i32,
}

/// Working days and working hours in a time zone (Asia/Shanghai unless set with
/// [`BusinessCalendar::with_zone`]); computes deadlines. See the module documentation for the
/// rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessCalendar {
    hours: WorkingHours,
    /// Where the dates and the working periods are local.
    zone: Zone,
    years: BTreeMap<i32, YearData>,
    /// Every listed day, by day number (days since 1970-01-01).
    listed: BTreeMap<i64, Listed>,
}

impl BusinessCalendar {
    /// Mainland China: the official 2025 and 2026 holidays and 调休 days, the default working
    /// hours (08:30-12:00, 13:30-17:30), in Asia/Shanghai. Load later years with
    /// [`BusinessCalendar::load_toml`].
    pub fn china() -> Self {
        Self::from_toml(CHINA_TOML)
            .expect("the embedded holiday data is valid (checked by the calendar's tests)")
    }

    /// No holiday data at all: Monday to Friday are working days, with the default hours, in
    /// Asia/Shanghai (another zone with [`BusinessCalendar::with_zone`]).
    pub fn weekdays_only() -> Self {
        Self {
            hours: WorkingHours::default(),
            zone: Zone::shanghai(),
            years: BTreeMap::new(),
            listed: BTreeMap::new(),
        }
    }

    /// A calendar with the holiday data in `text` (the `cn-public-holidays.toml` format), the
    /// default working hours, in Asia/Shanghai.
    ///
    /// # Errors
    ///
    /// [`CalendarError::Syntax`] if `text` is not TOML, [`CalendarError::NotAYear`] for a
    /// table not named by a year, [`CalendarError::Data`] naming the year, field and value of
    /// the first problem found.
    pub fn from_toml(text: &str) -> Result<Self, CalendarError> {
        let mut calendar = Self::weekdays_only();
        calendar.load_toml(text)?;
        Ok(calendar)
    }

    /// Adds the years in `text` (typically next year's schedule, published each November).
    /// Either every year in `text` is added or, on error, none is.
    ///
    /// A year already loaded may be loaded again if it declares the same days (so the whole
    /// file can be reloaded after a year is appended to it).
    ///
    /// # Errors
    ///
    /// As [`BusinessCalendar::from_toml`], and also [`CalendarError::YearAlreadyLoaded`] for a
    /// year already loaded with different days, and [`CalendarError::Data`] with
    /// [`Problem::OffAndWork`] for a day one table lists as off and another as work.
    pub fn load_toml(&mut self, text: &str) -> Result<(), CalendarError> {
        self.load_years(data::parse_document(text)?)
    }

    /// Adds parsed years, all or none ([`BusinessCalendar::load_toml`]).
    fn load_years(&mut self, parsed: BTreeMap<i32, YearData>) -> Result<(), CalendarError> {
        let mut listed = self.listed.clone();
        let mut added = Vec::new();
        for (year, data) in parsed {
            if let Some(loaded) = self.years.get(&year) {
                if loaded.same_days(&data) {
                    continue;
                }
                return Err(CalendarError::YearAlreadyLoaded { year });
            }
            for (i, &(start, end)) in data.off.iter().enumerate() {
                let mut day = start.days_since_epoch();
                while day <= end.days_since_epoch() {
                    mark(&mut listed, year, day, false).map_err(|problem| CalendarError::Data {
                        year,
                        field: format!("off[{i}]"),
                        value: format!("[\"{start}\", \"{end}\"]"),
                        problem,
                    })?;
                    day += 1;
                }
            }
            for (i, &date) in data.work.iter().enumerate() {
                mark(&mut listed, year, date.days_since_epoch(), true).map_err(|problem| {
                    CalendarError::Data {
                        year,
                        field: format!("work[{i}]"),
                        value: format!("\"{date}\""),
                        problem,
                    }
                })?;
            }
            added.push((year, data));
        }
        self.listed = listed;
        self.years.extend(added);
        Ok(())
    }

    /// The same calendar with other working hours.
    pub fn with_hours(mut self, hours: WorkingHours) -> Self {
        self.hours = hours;
        self
    }

    /// The working hours.
    pub fn hours(&self) -> &WorkingHours {
        &self.hours
    }

    /// The same calendar in another time zone: its dates and working periods are then local
    /// there (the holiday data is a list of dates, read as dates of that zone).
    pub fn with_zone(mut self, zone: Zone) -> Self {
        self.zone = zone;
        self
    }

    /// The time zone: every date and time of day of the calendar is local to it, and every
    /// time civicflow shows is written in it ([`Zone::format`]).
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// Whether official data for `year` is loaded. Without it, the calendar counts Monday to
    /// Friday as working days and knows no holidays in that year.
    pub fn covers(&self, year: i32) -> bool {
        self.years.contains_key(&year)
    }

    /// The years whose data is loaded, in order.
    pub fn years(&self) -> impl Iterator<Item = i32> + '_ {
        self.years.keys().copied()
    }

    /// The notice a loaded year's data comes from.
    pub fn source(&self, year: i32) -> Option<&str> {
        self.years.get(&year).map(|data| data.source.as_str())
    }

    /// Whether `date` (a date in the calendar's zone) is a working day (see the module
    /// documentation).
    pub fn is_working_day(&self, date: LocalDate) -> bool {
        self.is_working_day_number(date.days_since_epoch())
    }

    /// Whether `at` falls inside a working period of a working day, by the local wall clock
    /// of the calendar's zone (a period's start is inside it, its end is not).
    pub fn is_working_time(&self, at: Timestamp) -> bool {
        let (day, time) = self.zone.day_and_micros(at);
        self.is_working_day_number(day)
            && self.hours.periods().iter().any(|p| {
                i64::from(p.start()) * MICROS_PER_MINUTE <= time
                    && time < i64::from(p.end()) * MICROS_PER_MINUTE
            })
    }

    /// The first working day after `date`, or `None` if it would be after 9999-12-31.
    pub fn next_working_day(&self, date: LocalDate) -> Option<LocalDate> {
        LocalDate::from_days_since_epoch(self.nth_working_day_after(date.days_since_epoch(), 1))
    }

    /// The deadline `span` after `start` (see the module documentation for where each kind of
    /// span lands). Saturates at the end of [`Timestamp`]'s range instead of overflowing.
    pub fn add(&self, start: Timestamp, span: Span) -> Timestamp {
        match span {
            Span::Calendar(duration) => start.saturating_add(duration),
            Span::WorkingMinutes(n) => {
                self.add_working(start, i128::from(n) * i128::from(MICROS_PER_MINUTE))
            }
            Span::WorkingHours(n) => {
                self.add_working(start, i128::from(n) * 60 * i128::from(MICROS_PER_MINUTE))
            }
            Span::WorkingDays(n) => self.add_working_days(start, n),
        }
    }

    /// The working time between `from` and `to`: the parts of working periods of working days
    /// that lie between them. Zero if `to` is not after `from`.
    pub fn working_time_between(&self, from: Timestamp, to: Timestamp) -> Duration {
        if to <= from {
            return Duration::ZERO;
        }
        let (from_day, from_time) = self.zone.day_and_micros(from);
        let (to_day, to_time) = self.zone.day_and_micros(to);
        let worked_before = |day: i64, time: i64| -> i128 {
            if self.is_working_day_number(day) {
                i128::from(self.hours.worked_before(time))
            } else {
                0
            }
        };
        let micros = if from_day == to_day {
            worked_before(to_day, to_time) - worked_before(from_day, from_time)
        } else {
            let per_day = i128::from(self.hours.micros_per_day());
            let first = if self.is_working_day_number(from_day) {
                per_day - worked_before(from_day, from_time)
            } else {
                0
            };
            first
                + self.working_days_in(from_day + 1, to_day) * per_day
                + worked_before(to_day, to_time)
        };
        Duration::from_micros(u64::try_from(micros.max(0)).unwrap_or(u64::MAX))
    }

    fn is_working_day_number(&self, day: i64) -> bool {
        match self.listed.get(&day) {
            Some(listed) => listed.working,
            None => !date::Weekday::of_day_number(day).is_weekend(),
        }
    }

    /// The instant at which the local wall clock of the calendar's zone shows `micros` after
    /// the midnight that starts `day` (resolved as [`Zone::from_local`] does).
    fn local(&self, day: i64, micros: i64) -> Timestamp {
        self.zone
            .instant(i128::from(day) * i128::from(MICROS_PER_DAY) + i128::from(micros))
    }

    fn add_working(&self, start: Timestamp, work: i128) -> Timestamp {
        if work <= 0 {
            return start;
        }
        let (day, time) = self.zone.day_and_micros(start);
        let per_day = i128::from(self.hours.micros_per_day());
        let mut left = work;
        if self.is_working_day_number(day) {
            let target = i128::from(self.hours.worked_before(time)) + left;
            if target <= per_day {
                let target = i64::try_from(target).expect("at most one day of microseconds");
                return self.local(day, self.hours.time_after_working(target));
            }
            left = target - per_day;
        }
        // The deadline is inside the k-th working day after `day`, `within` into its work.
        let k = (left - 1) / per_day + 1;
        let within = left - (k - 1) * per_day;
        let target_day = self.nth_working_day_after(day, i64::try_from(k).unwrap_or(i64::MAX));
        let within = i64::try_from(within).expect("at most one day of microseconds");
        self.local(target_day, self.hours.time_after_working(within))
    }

    fn add_working_days(&self, start: Timestamp, n: u32) -> Timestamp {
        let (day, time) = self.zone.day_and_micros(start);
        let close = self.hours.end_of_day_micros();
        let target_day = if n == 0 && self.is_working_day_number(day) && time <= close {
            day
        } else {
            self.nth_working_day_after(day, i64::from(n.max(1)))
        };
        self.local(target_day, close)
    }

    /// The `k`-th working day after `day` (`k >= 1`), by day number.
    ///
    /// Runs of plain weeks (no listed day in them, exactly five working days each) are
    /// skipped whole, so this is fast for any `k`; only the listed days are visited one by one.
    fn nth_working_day_after(&self, day: i64, k: i64) -> i64 {
        let mut day = day;
        let mut left = k;
        while left > 0 {
            if left > 5 {
                let weeks = (left - 1) / 5;
                let room = match self.listed.range(day.saturating_add(1)..).next() {
                    None => weeks,
                    Some((&listed, _)) => (listed - day - 1) / 7,
                };
                let jump = weeks.min(room);
                if jump > 0 {
                    day = day.saturating_add(jump.saturating_mul(7));
                    left -= jump * 5;
                    continue;
                }
            }
            if day == i64::MAX {
                break;
            }
            day += 1;
            if self.is_working_day_number(day) {
                left -= 1;
            }
        }
        day
    }

    /// Working days in the days `[from, to)`, by day number.
    fn working_days_in(&self, from: i64, to: i64) -> i128 {
        if to <= from {
            return 0;
        }
        let mut count = weekdays_before(to) - weekdays_before(from);
        for (&day, listed) in self.listed.range(from..to) {
            let plain = !date::Weekday::of_day_number(day).is_weekend();
            count += i128::from(listed.working) - i128::from(plain);
        }
        count
    }
}

impl Default for BusinessCalendar {
    /// [`BusinessCalendar::china`].
    fn default() -> Self {
        Self::china()
    }
}

/// Records that `day` is listed by `year` as working or not; a day listed both ways (by one
/// table or by two) is refused.
fn mark(
    listed: &mut BTreeMap<i64, Listed>,
    year: i32,
    day: i64,
    working: bool,
) -> Result<(), Problem> {
    match listed.get(&day) {
        Some(existing) if existing.working != working => Err(Problem::OffAndWork {
            date: LocalDate::from_days_since_epoch(day)
                .map_or_else(|| day.to_string(), |d| d.to_string()),
            other_year: existing.year,
        }),
        Some(_) => Ok(()),
        None => {
            listed.insert(day, Listed { working, year });
            Ok(())
        }
    }
}

/// Monday-to-Friday days in `[1970-01-05, day)` (negative before it), so that the number in
/// `[a, b)` is `weekdays_before(b) - weekdays_before(a)`.
fn weekdays_before(day: i64) -> i128 {
    // 1970-01-05 (day 4) was a Monday.
    let offset = i128::from(day) - 4;
    let weeks = offset.div_euclid(7);
    let rest = offset.rem_euclid(7);
    weeks * 5 + rest.min(5)
}
