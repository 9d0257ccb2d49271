//! Tests of the business calendar, on the real 2025 and 2026 schedules.

use std::time::Duration;

use proptest::prelude::*;

use super::*;

/// The instant `date hh:mm` in Asia/Shanghai.
fn at(date: &str, hour: u16, minute: u16) -> Timestamp {
    at_in(&Zone::shanghai(), date, hour, minute)
}

/// The instant `date hh:mm` in `zone`.
fn at_in(zone: &Zone, date: &str, hour: u16, minute: u16) -> Timestamp {
    let date = LocalDate::parse(date).expect("test dates are valid");
    zone.from_local(date, hour * 60 + minute)
        .expect("test times are valid")
}

/// `YYYY-MM-DD HH:MM` in Asia/Shanghai (with `:SS.ffffff` when not on a whole minute).
fn show(t: Timestamp) -> String {
    show_in(&Zone::shanghai(), t)
}

/// `YYYY-MM-DD HH:MM` in `zone` (with `:SS.ffffff` when not on a whole minute).
fn show_in(zone: &Zone, t: Timestamp) -> String {
    let (date, minute) = zone.to_local(t).expect("test times are in range");
    let rest = zone.day_and_micros(t).1.rem_euclid(MICROS_PER_MINUTE);
    let mut text = format!("{date} {:02}:{:02}", minute / 60, minute % 60);
    if rest != 0 {
        text.push_str(&format!(":{:02}.{:06}", rest / 1_000_000, rest % 1_000_000));
    }
    text
}

fn date(text: &str) -> LocalDate {
    LocalDate::parse(text).expect("test dates are valid")
}

fn hours(n: u64) -> Duration {
    Duration::from_secs(n * 3600)
}

fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

// ---------------------------------------------------------------------------------------
// Dates and local time

#[test]
fn dates_validate_and_know_their_weekday() {
    assert!(LocalDate::new(2024, 2, 29).is_ok());
    assert!(LocalDate::new(2000, 2, 29).is_ok());
    assert!(LocalDate::new(2025, 2, 29).is_err());
    assert!(LocalDate::new(2100, 2, 29).is_err());
    assert!(LocalDate::new(2025, 4, 31).is_err());
    assert!(LocalDate::new(2025, 13, 1).is_err());
    assert!(LocalDate::new(2025, 0, 1).is_err());
    assert!(LocalDate::new(0, 1, 1).is_err());
    assert!(LocalDate::new(10_000, 1, 1).is_err());

    assert_eq!(date("1970-01-01").weekday(), Weekday::Thursday);
    assert_eq!(date("2026-02-14").weekday(), Weekday::Saturday);
    assert_eq!(date("2026-02-16").weekday(), Weekday::Monday);
    assert_eq!(date("2025-10-11").weekday(), Weekday::Saturday);
    assert_eq!(date("2026-09-25").weekday(), Weekday::Friday);
    assert_eq!(date("2026-10-10").weekday(), Weekday::Saturday);
    assert_eq!(date("1969-12-31").weekday(), Weekday::Wednesday);
}

#[test]
fn dates_parse_display_order_and_step() {
    for bad in [
        "2025-1-01",
        "2025-01-1",
        "25-01-01",
        "2025/01/01",
        "2025-01-01 ",
        "",
        "２０２５-01-01",
        "2025-02-30",
        "+025-01-01",
    ] {
        let error = LocalDate::parse(bad).expect_err(bad);
        assert!(
            matches!(&error, CalendarError::InvalidDate { value, .. } if value == bad),
            "{bad}: {error}"
        );
    }
    let d = date("2025-12-31");
    assert_eq!(d.to_string(), "2025-12-31");
    assert_eq!((d.year(), d.month(), d.day()), (2025, 12, 31));
    assert_eq!(d.next_day(), Some(date("2026-01-01")));
    assert_eq!(date("2024-03-01").previous_day(), Some(date("2024-02-29")));
    assert_eq!(date("2025-03-01").previous_day(), Some(date("2025-02-28")));
    assert_eq!(LocalDate::MAX.next_day(), None);
    assert_eq!(LocalDate::MIN.previous_day(), None);
    assert!(date("2025-12-31") < date("2026-01-01"));
    assert!(date("2026-01-31") < date("2026-02-01"));
    assert!(date("2026-02-01") < date("2026-02-02"));
    assert_eq!("2026-02-14".parse::<LocalDate>(), Ok(date("2026-02-14")));
}

#[test]
fn shanghai_is_utc_plus_eight_since_1991_and_its_history_is_kept() {
    let shanghai = Zone::shanghai();
    let to_local = |t| shanghai.to_local(t);
    let from_local = |d, m| shanghai.from_local(d, m);
    // 2026-04-01T01:30:00Z (see clock.rs) is 09:30 in Shanghai.
    let t = Timestamp::from_unix_seconds(1_775_007_000);
    assert_eq!(to_local(t), Ok((date("2026-04-01"), 9 * 60 + 30)));
    assert_eq!(from_local(date("2026-04-01"), 570), Ok(t));
    // Local midnight of New Year is 16:00 UTC the day before.
    let midnight = from_local(date("2026-01-01"), 0).expect("valid");
    assert_eq!(midnight.to_string(), "2025-12-31T16:00:00.000000Z");
    let just_before = Timestamp::from_unix_micros(midnight.as_unix_micros() - 1);
    assert_eq!(to_local(just_before), Ok((date("2025-12-31"), 1439)));
    // Seconds are dropped, not rounded.
    let later = Timestamp::from_unix_micros(t.as_unix_micros() + 59_999_999);
    assert_eq!(to_local(later), Ok((date("2026-04-01"), 570)));
    // 1440 is the midnight ending the day.
    assert_eq!(
        from_local(date("2025-12-31"), 1440),
        from_local(date("2026-01-01"), 0)
    );
    assert!(from_local(date("2025-12-31"), 1441).is_err());
    // Before 1991 the zone's history applies: the summers of 1986-1991 were UTC+9 (the
    // time zone database's rules, where a fixed UTC+8 was one hour off), the winters UTC+8.
    let summer_1988 = from_local(date("1988-07-01"), 12 * 60).expect("valid");
    assert_eq!(summer_1988.to_string(), "1988-07-01T03:00:00.000000Z");
    assert_eq!(shanghai.format(summer_1988), "1988-07-01T12:00:00+09:00");
    assert_eq!(to_local(summer_1988), Ok((date("1988-07-01"), 12 * 60)));
    let winter_1988 = from_local(date("1988-12-01"), 12 * 60).expect("valid");
    assert_eq!(winter_1988.to_string(), "1988-12-01T04:00:00.000000Z");
    // Outside 0001..=9999 there is no LocalDate.
    assert_eq!(
        to_local(Timestamp::from_unix_micros(i64::MAX)),
        Err(CalendarError::OutOfRange { micros: i64::MAX })
    );
    assert!(to_local(Timestamp::from_unix_micros(i64::MIN)).is_err());
    let last = from_local(LocalDate::MAX, 1439).expect("in range");
    assert_eq!(to_local(last), Ok((LocalDate::MAX, 1439)));
    let first = from_local(LocalDate::MIN, 0).expect("in range");
    assert_eq!(to_local(first), Ok((LocalDate::MIN, 0)));
}

// ---------------------------------------------------------------------------------------
// Working hours and spans as text

#[test]
fn working_hours_default_parse_and_refuse() {
    let default = WorkingHours::default();
    assert_eq!(default.to_string(), "08:30-12:00, 13:30-17:30");
    assert_eq!(default.minutes_per_day(), 450);
    assert_eq!(default.end_of_day(), 17 * 60 + 30);
    assert_eq!(WorkingHours::parse("08:30-12:00,13:30-17:30"), Ok(default));
    let all_day = WorkingHours::parse("00:00-24:00").expect("valid");
    assert_eq!(all_day.minutes_per_day(), 1440);
    assert!(WorkingHours::parse("09:00-12:00, 12:00-17:00").is_ok());
    for bad in [
        "",
        "08:30",
        "12:00-08:30",
        "08:30-08:30",
        "08:30-12:00, 11:00-17:00",
        "13:30-17:30, 08:30-12:00",
        "8:30-12:00",
        "08:60-12:00",
        "08:30-24:01",
        "25:00-26:00",
        "+8:30-12:00",
    ] {
        let error = WorkingHours::parse(bad).expect_err(bad);
        assert!(
            matches!(&error, CalendarError::InvalidHours { value, .. } if value == bad),
            "{bad}: {error}"
        );
    }
    assert!(WorkingHours::new([]).is_err());
    assert!(Period::new(600, 600).is_err());
    assert!(Period::new(600, 1441).is_err());
}

#[test]
fn spans_parse_and_display() {
    let cases = [
        ("2 working hours", Span::WorkingHours(2)),
        ("1 working hour", Span::WorkingHours(1)),
        ("30 working minutes", Span::WorkingMinutes(30)),
        ("7 working days", Span::WorkingDays(7)),
        ("1 working day", Span::WorkingDays(1)),
        ("24 hours", Span::Calendar(hours(24))),
        ("90 minutes", Span::Calendar(minutes(90))),
        ("3 days", Span::Calendar(hours(72))),
        ("10 seconds", Span::Calendar(Duration::from_secs(10))),
        (
            "1500 milliseconds",
            Span::Calendar(Duration::from_millis(1500)),
        ),
    ];
    for (text, span) in cases {
        let parsed = Span::parse(text).expect(text);
        assert_eq!(parsed, span, "{text}");
        assert_eq!(Span::parse(&parsed.to_string()), Ok(parsed));
    }
    assert_eq!(Span::Calendar(hours(24)).to_string(), "1 day");
    assert_eq!(Span::Calendar(minutes(90)).to_string(), "90 minutes");
    assert_eq!(Span::WorkingDays(7).to_string(), "7 working days");
    for bad in [
        "",
        "7",
        "working days",
        "7 workdays",
        "-1 hours",
        "1.5 hours",
        "7 working weeks",
        "99999999999 working days",
        "99999999999999999999999999 days",
    ] {
        assert!(
            matches!(Span::parse(bad), Err(CalendarError::InvalidSpan { .. })),
            "{bad}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Working days from the official data

#[test]
fn the_embedded_data_covers_2025_and_2026() {
    let calendar = BusinessCalendar::china();
    assert!(calendar.covers(2025));
    assert!(calendar.covers(2026));
    assert!(!calendar.covers(2024));
    assert!(!calendar.covers(2027));
    assert_eq!(calendar.years().collect::<Vec<_>>(), [2025, 2026]);
    assert!(calendar
        .source(2025)
        .is_some_and(|s| s.contains("国办发明电〔2024〕12号")));
    assert!(calendar.source(2026).is_some_and(|s| s.contains("2026")));
    assert_eq!(calendar.hours(), &WorkingHours::default());
}

#[test]
fn holidays_and_tiaoxiu_days() {
    let calendar = BusinessCalendar::china();
    let working = |d: &str| calendar.is_working_day(date(d));
    // 调休: weekend days that are working days.
    assert!(working("2026-02-14"), "Saturday before the Spring Festival");
    assert!(working("2026-02-28"), "Saturday after the Spring Festival");
    assert!(working("2025-10-11"), "Saturday after National Day 2025");
    assert!(working("2025-09-28"), "Sunday before National Day 2025");
    assert!(working("2026-01-04"), "Sunday after New Year 2026");
    assert!(working("2026-09-20"), "Sunday before Mid-Autumn 2026");
    // Holidays on weekdays.
    assert!(!working("2026-02-16"), "a Monday in the Spring Festival");
    assert!(
        !working("2026-02-23"),
        "last day of the Spring Festival 2026"
    );
    assert!(!working("2026-09-25"), "Mid-Autumn 2026, a Friday");
    assert!(
        !working("2025-10-08"),
        "last day of National Day 2025, a Wednesday"
    );
    assert!(!working("2025-01-01"));
    // Plain days either side.
    assert!(working("2026-02-13"), "Friday");
    assert!(working("2026-02-24"), "Tuesday after the Spring Festival");
    assert!(working("2025-10-09"));
    assert!(!working("2025-10-12"), "a plain Sunday");
    assert!(!working("2026-02-21"), "a Saturday inside the holiday");
    // A year without data: weekdays work, weekends do not, no holidays known.
    assert!(
        working("2027-01-01"),
        "a Friday; 2027's New Year is not loaded"
    );
    assert!(!working("2027-01-02"));
}

#[test]
fn every_date_in_the_file_round_trips_and_is_applied() {
    let calendar = BusinessCalendar::china();
    let raw: toml::Table = toml::from_str(CHINA_TOML).expect("the file is TOML");
    let mut seen = 0;
    for (year, table) in &raw {
        let table = table.as_table().expect("a year table");
        let off = table["off"].as_array().expect("off is a list");
        for range in off {
            let range = range.as_array().expect("a range");
            let (start, end) = (
                range[0].as_str().expect("text"),
                range[1].as_str().expect("text"),
            );
            assert_eq!(date(start).to_string(), start);
            assert_eq!(date(end).to_string(), end);
            assert!(start.starts_with(year.as_str()));
            let mut day = Some(date(start));
            while let Some(d) = day.filter(|d| *d <= date(end)) {
                assert!(!calendar.is_working_day(d), "{d} is off");
                seen += 1;
                day = d.next_day();
            }
        }
        for work in table["work"].as_array().expect("work is a list") {
            let text = work.as_str().expect("text");
            assert_eq!(date(text).to_string(), text);
            assert!(date(text).weekday().is_weekend(), "{text}");
            assert!(calendar.is_working_day(date(text)), "{text} is worked");
            seen += 1;
        }
    }
    // 2025: 1 + 8 + 3 + 5 + 3 + 8 off, 5 work; 2026: 3 + 9 + 3 + 5 + 3 + 3 + 7 off, 6 work.
    assert_eq!(seen, 28 + 5 + 33 + 6);
}

#[test]
fn each_year_has_248_working_days() {
    // 2025: 261 weekdays - 18 weekday holidays + 5 调休 days = 248.
    // 2026: 261 weekdays - 19 weekday holidays + 6 调休 days = 248.
    let calendar = BusinessCalendar::china();
    for (year, expected) in [(2025, 248), (2026, 248), (2027, 261)] {
        let mut count = 0;
        let mut day = Some(date(&format!("{year}-01-01")));
        while let Some(d) = day.filter(|d| d.year() == year) {
            count += usize::from(calendar.is_working_day(d));
            day = d.next_day();
        }
        assert_eq!(count, expected, "{year}");
        let start = at(&format!("{year}-01-01"), 0, 0);
        let end = at(&format!("{}-01-01", year + 1), 0, 0);
        assert_eq!(
            calendar.working_time_between(start, end),
            minutes(450 * expected as u64),
            "{year}"
        );
    }
}

#[test]
fn next_working_day_skips_holidays() {
    let calendar = BusinessCalendar::china();
    assert_eq!(
        calendar.next_working_day(date("2026-02-14")),
        Some(date("2026-02-24"))
    );
    assert_eq!(
        calendar.next_working_day(date("2025-09-30")),
        Some(date("2025-10-09"))
    );
    assert_eq!(
        calendar.next_working_day(date("2025-10-10")),
        Some(date("2025-10-11"))
    );
    assert_eq!(calendar.next_working_day(LocalDate::MAX), None);
}

#[test]
fn working_time_is_inside_periods() {
    let calendar = BusinessCalendar::china();
    assert!(calendar.is_working_time(at("2026-03-02", 8, 30)));
    assert!(!calendar.is_working_time(at("2026-03-02", 12, 0)));
    assert!(!calendar.is_working_time(at("2026-03-02", 13, 0)));
    assert!(calendar.is_working_time(at("2026-03-02", 17, 29)));
    assert!(!calendar.is_working_time(at("2026-03-02", 17, 30)));
    assert!(!calendar.is_working_time(at("2026-02-16", 10, 0)));
    assert!(calendar.is_working_time(at("2026-02-14", 10, 0)));
}

// ---------------------------------------------------------------------------------------
// Deadlines

#[test]
fn working_hours_from_a_holiday_friday_afternoon() {
    let calendar = BusinessCalendar::china();
    // 2026-09-25..27 is the Mid-Autumn holiday (Friday to Sunday): counting starts on Monday.
    let due = calendar.add(at("2026-09-25", 16, 30), Span::WorkingHours(2));
    assert_eq!(show(due), "2026-09-28 10:30");
    // From the Thursday before: one hour on Thursday, one on Monday.
    let due = calendar.add(at("2026-09-24", 16, 30), Span::WorkingHours(2));
    assert_eq!(show(due), "2026-09-28 09:30");
    assert_eq!(
        calendar.working_time_between(at("2026-09-24", 16, 30), due),
        hours(2)
    );
    // Without the holiday data the Friday would count.
    let plain = BusinessCalendar::weekdays_only();
    let due = plain.add(at("2026-09-25", 16, 30), Span::WorkingHours(2));
    assert_eq!(show(due), "2026-09-28 09:30");
}

#[test]
fn working_days_skip_national_day() {
    let calendar = BusinessCalendar::china();
    // 2025: 10-01..08 off, Saturday 10-11 worked. Day 1 is Thursday 10-09, then 10-10,
    // 10-11 (Saturday, 调休), 10-13, 10-14, 10-15, 10-16.
    let due = calendar.add(at("2025-09-30", 10, 0), Span::WorkingDays(7));
    assert_eq!(show(due), "2025-10-16 17:30");
    // 2026: 10-01..07 off, Saturday 10-10 worked.
    let due = calendar.add(at("2026-09-30", 10, 0), Span::WorkingDays(7));
    assert_eq!(show(due), "2026-10-15 17:30");
    // The example of the module documentation.
    let due = calendar.add(at("2026-09-30", 10, 0), Span::WorkingDays(3));
    assert_eq!(show(due), "2026-10-10 17:30");
    // Starting before work or after it makes no difference: the start's day never counts.
    for (hour, minute) in [(0, 0), (7, 0), (12, 30), (17, 30), (23, 59)] {
        let due = calendar.add(at("2026-09-30", hour, minute), Span::WorkingDays(3));
        assert_eq!(show(due), "2026-10-10 17:30");
    }
}

#[test]
fn a_deadline_across_tiaoxiu_counts_the_saturday() {
    let calendar = BusinessCalendar::china();
    // Friday 10:00 + 8 working hours: 6 hours on Friday, 2 on the working Saturday.
    let start = at("2026-02-13", 10, 0);
    let due = calendar.add(start, Span::WorkingHours(8));
    assert_eq!(show(due), "2026-02-14 10:30");
    assert_eq!(calendar.working_time_between(start, due), hours(8));
    // The plain rule would have skipped to Monday.
    let plain = BusinessCalendar::weekdays_only();
    assert_eq!(
        show(plain.add(start, Span::WorkingHours(8))),
        "2026-02-16 10:30"
    );
    // Working days: Friday 13th, Saturday 14th (day 1), then the Spring Festival
    // (15th..23rd), Tuesday 24th (day 2).
    let due = calendar.add(at("2026-02-12", 16, 0), Span::WorkingDays(2));
    assert_eq!(show(due), "2026-02-14 17:30");
    let due = calendar.add(at("2026-02-13", 16, 0), Span::WorkingDays(2));
    assert_eq!(show(due), "2026-02-24 17:30");
    let due = calendar.add(at("2026-02-12", 9, 0), Span::WorkingDays(5));
    assert_eq!(show(due), "2026-02-26 17:30");
    // Sunday 2025-09-28 is a working day too.
    let due = calendar.add(at("2025-09-26", 17, 0), Span::WorkingHours(1));
    assert_eq!(show(due), "2025-09-28 09:00");
}

#[test]
fn starts_outside_working_hours() {
    let calendar = BusinessCalendar::china();
    // Monday 2026-03-02, a plain week.
    let cases = [
        ((7, 0), 60, "2026-03-02 09:30"),
        ((8, 30), 210, "2026-03-02 12:00"),
        ((8, 30), 211, "2026-03-02 13:31"),
        ((12, 30), 30, "2026-03-02 14:00"),
        ((12, 0), 30, "2026-03-02 14:00"),
        ((17, 0), 30, "2026-03-02 17:30"),
        ((17, 0), 31, "2026-03-03 08:31"),
        ((17, 30), 1, "2026-03-03 08:31"),
        ((20, 0), 60, "2026-03-03 09:30"),
        ((10, 0), 450, "2026-03-03 10:00"),
        ((8, 30), 450, "2026-03-02 17:30"),
        ((8, 30), 451, "2026-03-03 08:31"),
        ((8, 30), 450 * 5, "2026-03-06 17:30"),
        ((8, 30), 450 * 5 + 1, "2026-03-09 08:31"),
    ];
    for ((hour, minute), n, expected) in cases {
        let start = at("2026-03-02", hour, minute);
        let due = calendar.add(start, Span::WorkingMinutes(n));
        assert_eq!(show(due), expected, "{hour}:{minute} + {n} min");
        assert_eq!(calendar.working_time_between(start, due), minutes(n.into()));
    }
    // Zero working time is the start itself, working time or not.
    let night = at("2026-03-02", 22, 0);
    assert_eq!(calendar.add(night, Span::WorkingMinutes(0)), night);
    // Seconds are kept.
    let start = Timestamp::from_unix_micros(at("2026-03-02", 8, 30).as_unix_micros() + 30_000_000);
    assert_eq!(
        show(calendar.add(start, Span::WorkingMinutes(1))),
        "2026-03-02 08:31:30.000000"
    );
}

#[test]
fn zero_working_days_is_close_of_business() {
    let calendar = BusinessCalendar::china();
    let cases = [
        (at("2026-03-02", 10, 0), "2026-03-02 17:30"),
        (at("2026-03-02", 7, 0), "2026-03-02 17:30"),
        (at("2026-03-02", 17, 30), "2026-03-02 17:30"),
        (at("2026-03-02", 18, 0), "2026-03-03 17:30"),
        (at("2026-03-07", 10, 0), "2026-03-09 17:30"),
        (at("2026-02-14", 10, 0), "2026-02-14 17:30"),
        (at("2026-02-16", 10, 0), "2026-02-24 17:30"),
    ];
    for (start, expected) in cases {
        assert_eq!(show(calendar.add(start, Span::WorkingDays(0))), expected);
    }
    // One working day from a holiday is the first working day after it.
    let due = calendar.add(at("2026-02-16", 10, 0), Span::WorkingDays(1));
    assert_eq!(show(due), "2026-02-24 17:30");
}

#[test]
fn calendar_spans_ignore_the_calendar() {
    let calendar = BusinessCalendar::china();
    let due = calendar.add(at("2026-09-30", 22, 0), Span::Calendar(hours(24)));
    assert_eq!(show(due), "2026-10-01 22:00");
}

#[test]
fn other_working_hours() {
    let calendar =
        BusinessCalendar::china().with_hours(WorkingHours::parse("09:00-17:00").expect("valid"));
    let due = calendar.add(at("2026-03-02", 9, 0), Span::WorkingHours(8));
    assert_eq!(show(due), "2026-03-02 17:00");
    let due = calendar.add(at("2026-03-02", 9, 0), Span::WorkingDays(1));
    assert_eq!(show(due), "2026-03-03 17:00");
    assert_eq!(
        calendar.working_time_between(at("2026-03-02", 0, 0), at("2026-03-03", 0, 0)),
        hours(8)
    );
}

#[test]
fn huge_spans_saturate_instead_of_overflowing() {
    let mut one_minute = BusinessCalendar::china();
    one_minute = one_minute.with_hours(WorkingHours::parse("12:00-12:01").expect("valid"));
    let calendar = BusinessCalendar::china();
    let start = at("2026-03-02", 9, 0);
    let max = Timestamp::from_unix_micros(i64::MAX);
    let min = Timestamp::from_unix_micros(i64::MIN);
    // About 36,000 years: still representable.
    let far = calendar.add(start, Span::WorkingMinutes(u32::MAX));
    assert!(far > start && far < max);
    assert_eq!(
        calendar.working_time_between(start, far),
        minutes(u32::MAX.into())
    );
    // Beyond Timestamp's range: the last instant.
    assert_eq!(one_minute.add(start, Span::WorkingHours(u32::MAX)), max);
    assert!(calendar.add(start, Span::WorkingDays(u32::MAX)) > far);
    assert_eq!(calendar.add(max, Span::WorkingMinutes(1)), max);
    assert_eq!(calendar.add(max, Span::WorkingDays(1)), max);
    assert_eq!(calendar.add(max, Span::Calendar(hours(1))), max);
    assert!(calendar.add(min, Span::WorkingDays(3)) > min);
    assert!(calendar.working_time_between(min, max) > Duration::ZERO);
    assert_eq!(calendar.working_time_between(max, min), Duration::ZERO);
}

#[test]
fn working_time_between_reports() {
    let calendar = BusinessCalendar::china();
    let between = |a, b| calendar.working_time_between(a, b);
    // Over the Spring Festival: Friday 16:00 to Tuesday after it 09:00:
    // 1.5 h Friday + 7.5 h Saturday (调休) + 0.5 h Tuesday.
    assert_eq!(
        between(at("2026-02-13", 16, 0), at("2026-02-24", 9, 0)),
        minutes(90 + 450 + 30)
    );
    assert_eq!(
        between(at("2026-03-02", 12, 10), at("2026-03-02", 13, 20)),
        Duration::ZERO
    );
    assert_eq!(
        between(at("2026-03-02", 11, 0), at("2026-03-02", 14, 0)),
        minutes(90)
    );
    assert_eq!(
        between(at("2026-03-03", 0, 0), at("2026-03-02", 0, 0)),
        Duration::ZERO
    );
    assert_eq!(
        between(at("2026-10-01", 0, 0), at("2026-10-08", 0, 0)),
        Duration::ZERO
    );
}

// ---------------------------------------------------------------------------------------
// Loading data

const YEAR_2030: &str = r#"
# Invented data for the tests, not an official schedule.
[2030]
source = "test"
off = [["2030-01-01", "2030-01-01"], ["2030-02-04", "2030-02-08"]]
work = ["2030-02-09"]
"#;

/// Loads `text` into an empty calendar and returns the error.
fn refused(text: &str) -> CalendarError {
    BusinessCalendar::from_toml(text).expect_err("the data must be refused")
}

/// The `(year, field, problem)` of a data error.
fn data_error(text: &str) -> (i32, String, String, Problem) {
    match refused(text) {
        CalendarError::Data {
            year,
            field,
            value,
            problem,
        } => (year, field, value, problem),
        other => panic!("expected a data error, got {other:?}"),
    }
}

#[test]
fn later_years_load_atomically() {
    let mut calendar = BusinessCalendar::china();
    calendar.load_toml(YEAR_2030).expect("valid data");
    assert!(calendar.covers(2030));
    assert!(!calendar.is_working_day(date("2030-02-04")));
    assert!(calendar.is_working_day(date("2030-02-09")));
    assert!(
        !calendar.is_working_day(date("2026-02-16")),
        "2026 still loaded"
    );
    // The same data again (the whole file reloaded) is fine; different data is not.
    calendar.load_toml(YEAR_2030).expect("same days again");
    calendar.load_toml(CHINA_TOML).expect("same days again");
    let changed = YEAR_2030.replace("\"2030-02-09\"", "\"2030-02-10\"");
    assert_eq!(
        calendar.load_toml(&changed),
        Err(CalendarError::YearAlreadyLoaded { year: 2030 })
    );
    // All or nothing: a bad year in a document adds none of its years.
    let mixed = "[2031]\nsource = \"test\"\noff = [[\"2031-01-01\", \"2031-01-01\"]]\n\
                 [2032]\nsource = \"test\"\noff = [[\"2032-01-02\", \"2032-01-01\"]]\n";
    assert!(calendar.load_toml(mixed).is_err());
    assert!(!calendar.covers(2031));
    assert!(!calendar.covers(2032));
    // December of the previous year may be listed (2023's New Year began on 2022-12-31).
    let december = "[2033]\nsource = \"test\"\noff = [[\"2032-12-31\", \"2033-01-02\"]]\n";
    calendar.load_toml(december).expect("valid data");
    assert!(!calendar.is_working_day(date("2032-12-31")));
    assert!(!calendar.covers(2032));
}

#[test]
fn bad_data_is_named() {
    let off = |range: &str| format!("[2027]\nsource = \"test\"\noff = [{range}]\n");

    let (year, field, value, problem) = data_error(&off(r#"["2027-02-10", "2027-02-04"]"#));
    assert_eq!((year, field.as_str()), (2027, "off[0]"));
    assert_eq!(problem, Problem::EndBeforeStart);
    assert_eq!(value, r#"["2027-02-10", "2027-02-04"]"#);
    let message = refused(&off(r#"["2027-02-10", "2027-02-04"]"#)).to_string();
    assert!(
        message.contains("[2027] off[0]")
            && message.contains("2027-02-10")
            && message.contains("ends before it starts"),
        "{message}"
    );

    let (_, field, _, problem) = data_error(&format!(
        "{}work = [\"2027-01-09\", \"2027-02-05\"]\n",
        off(r#"["2027-01-01", "2027-01-01"]"#)
    ));
    assert_eq!(field, "work[1]");
    assert_eq!(
        problem,
        Problem::NotAWeekend {
            weekday: Weekday::Friday
        }
    );

    let (_, field, _, problem) = data_error(&format!(
        "{}work = [\"2027-02-06\"]\n",
        off(r#"["2027-02-04", "2027-02-10"]"#)
    ));
    assert_eq!(field, "work[0]");
    assert_eq!(
        problem,
        Problem::OffAndWork {
            date: "2027-02-06".into(),
            other_year: 2027
        }
    );

    // Across two tables: [2031] lists 2030-12-28 off, [2030] made it a working Saturday.
    let (year, field, _, problem) = data_error(
        "[2030]\nsource = \"test\"\noff = [[\"2030-01-01\", \"2030-01-01\"]]\n\
         work = [\"2030-12-28\"]\n\
         [2031]\nsource = \"test\"\noff = [[\"2030-12-28\", \"2031-01-01\"]]\n",
    );
    assert_eq!((year, field.as_str()), (2031, "off[0]"));
    assert_eq!(
        problem,
        Problem::OffAndWork {
            date: "2030-12-28".into(),
            other_year: 2030
        }
    );

    for (range, reason) in [
        (r#"["2027-02-30", "2027-03-01"]"#, "that day does not exist"),
        (r#"["2027-2-3", "2027-02-04"]"#, "expected YYYY-MM-DD"),
        (r#"["2027-13-01", "2027-02-04"]"#, "month"),
    ] {
        let (_, field, value, problem) = data_error(&off(range));
        assert_eq!(field, "off[0]");
        assert_eq!(value, range);
        assert!(
            matches!(problem, Problem::MalformedDate { reason: r } if r.contains(reason)),
            "{range}: {problem}"
        );
    }

    let (_, _, _, problem) = data_error(&off(r#"["2028-01-01", "2028-01-02"]"#));
    assert_eq!(problem, Problem::OutsideYear);
    let (_, _, _, problem) = data_error(&off(r#"["2026-11-30", "2027-01-01"]"#));
    assert_eq!(problem, Problem::OutsideYear);

    for (range, shape) in [
        (r#"["2027-01-01"]"#, "one date"),
        (r#"["2027-01-01", "2027-01-02", "2027-01-03"]"#, "three"),
        (r#""2027-01-01""#, "not a list"),
        (r#"[2027-01-01, 2027-01-02]"#, "TOML dates, not text"),
    ] {
        let (_, field, _, problem) = data_error(&off(range));
        assert_eq!(field, "off[0]", "{shape}");
        assert!(matches!(problem, Problem::WrongType { .. }), "{shape}");
    }

    let (_, field, _, problem) = data_error(
        "[2027]\nsource = \"test\"\noff = [[\"2027-01-01\", \"2027-01-01\"]]\nwrok = []\n",
    );
    assert_eq!((field.as_str(), problem), ("wrok", Problem::UnknownField));
    let (_, field, _, problem) = data_error("[2027]\noff = [[\"2027-01-01\", \"2027-01-01\"]]\n");
    assert_eq!((field.as_str(), problem), ("source", Problem::Missing));
    let (_, field, _, problem) = data_error("[2027]\nsource = \"test\"\n");
    assert_eq!((field.as_str(), problem), ("off", Problem::Missing));
    let (_, field, _, problem) = data_error("[2027]\nsource = \"test\"\noff = []\n");
    assert_eq!((field.as_str(), problem), ("off", Problem::Empty));
    let (_, field, _, problem) = data_error("[2027]\nsource = \" \"\noff = []\n");
    assert_eq!((field.as_str(), problem), ("source", Problem::Empty));
    let (_, field, _, problem) = data_error(&format!(
        "{}work = \"2027-01-09\"\n",
        off(r#"["2027-01-01", "2027-01-01"]"#)
    ));
    assert_eq!(field, "work");
    assert!(matches!(problem, Problem::WrongType { .. }));
    let (_, _, _, problem) = data_error("2027 = 1\n");
    assert_eq!(problem, Problem::NotATable);

    assert!(matches!(refused("[2027"), CalendarError::Syntax { .. }));
    assert!(matches!(
        refused("[twenty]\nsource = \"x\"\n"),
        CalendarError::NotAYear { key, .. } if key == "twenty"
    ));
    assert!(matches!(
        refused("[0000]\nsource = \"x\"\n"),
        CalendarError::NotAYear { .. }
    ));
}

#[test]
fn an_empty_document_loads_nothing() {
    let calendar = BusinessCalendar::from_toml("# nothing yet\n").expect("valid");
    assert_eq!(calendar.years().count(), 0);
    assert_eq!(calendar, BusinessCalendar::weekdays_only());
}

// ---------------------------------------------------------------------------------------
// Time zones

fn berlin() -> Zone {
    Zone::named("Europe/Berlin").expect("in the time zone database")
}

fn new_york() -> Zone {
    Zone::named("America/New_York").expect("in the time zone database")
}

#[test]
fn zones_are_found_by_name_and_unknown_names_are_refused() {
    assert_eq!(Zone::shanghai().name(), "Asia/Shanghai");
    assert_eq!(Zone::default(), Zone::shanghai());
    assert_eq!(berlin().name(), "Europe/Berlin");
    assert_eq!(berlin().to_string(), "Europe/Berlin");
    assert_eq!(format!("{:?}", berlin()), "Zone(\"Europe/Berlin\")");
    // Names are matched without regard to case; the database's spelling is kept.
    assert_eq!(
        Zone::named("europe/BERLIN").map(|z| z.name().to_owned()),
        Ok("Europe/Berlin".to_owned())
    );
    assert_eq!("America/New_York".parse::<Zone>(), Ok(new_york()));
    assert_eq!(
        Zone::named("UTC").map(|z| z.name().to_owned()),
        Ok("UTC".to_owned())
    );
    // Links (old names) are zones too.
    assert!(Zone::named("Asia/Chongqing").is_ok());
    for bad in [
        "Mars/Olympus_Mons",
        "",
        "+08:00",
        "UTC+8",
        "CST-8",
        "Etc/Unknown",
        "Asia/Shanghai ",
        "localtime",
        "posixrules",
        "Factory",
        "posix/Asia/Shanghai",
        "zone.tab",
    ] {
        let error = Zone::named(bad).expect_err(bad);
        assert_eq!(
            error,
            CalendarError::UnknownZone {
                name: bad.to_owned()
            }
        );
        assert_eq!(
            error.to_string(),
            format!(
                "`{bad}` is not a time zone in the time zone database: give an IANA name such \
                 as Asia/Shanghai, Europe/Berlin or America/New_York"
            )
        );
    }
    // (De)serialised as the name, checked when read.
    let json = serde_json::to_string(&berlin()).expect("serialises");
    assert_eq!(json, "\"Europe/Berlin\"");
    assert_eq!(serde_json::from_str::<Zone>(&json).ok(), Some(berlin()));
    assert!(serde_json::from_str::<Zone>("\"Mars/Olympus_Mons\"").is_err());
}

#[test]
fn format_writes_rfc3339_with_the_offset_in_force() {
    let shanghai = Zone::shanghai();
    // 2026-04-01T01:30:00Z is 09:30 in Shanghai.
    let t = Timestamp::from_unix_seconds(1_775_007_000);
    assert_eq!(shanghai.format(t), "2026-04-01T09:30:00+08:00");
    // 16:30 UTC is past midnight in Shanghai: the next day.
    assert_eq!(
        shanghai.format(Timestamp::from_unix_seconds(1_775_061_000)),
        "2026-04-02T00:30:00+08:00"
    );
    // Seconds are kept, smaller parts dropped (not rounded).
    assert_eq!(
        shanghai.format(Timestamp::from_unix_micros(1_775_007_059_999_999)),
        "2026-04-01T09:30:59+08:00"
    );
    // Berlin is UTC+2 in summer (from 2026-03-29), UTC+1 in winter; New York UTC-4 / UTC-5.
    assert_eq!(berlin().format(t), "2026-04-01T03:30:00+02:00");
    assert_eq!(new_york().format(t), "2026-03-31T21:30:00-04:00");
    let winter = parse_rfc3339("2026-01-15T12:00:00Z").expect("valid");
    assert_eq!(berlin().format(winter), "2026-01-15T13:00:00+01:00");
    assert_eq!(new_york().format(winter), "2026-01-15T07:00:00-05:00");
    assert_eq!(
        Zone::named("UTC").expect("UTC").format(winter),
        "2026-01-15T12:00:00+00:00"
    );
    // Shanghai's local mean time (before 1901) was UTC+08:05:43: written at +08:06, the
    // nearest whole minute RFC 3339 can write, with the time shifted to match, so the text
    // still names the same second.
    let old = parse_rfc3339("1900-06-01T00:00:00Z").expect("valid");
    assert_eq!(shanghai.offset_seconds(old), 8 * 3600 + 5 * 60 + 43);
    assert_eq!(shanghai.format(old), "1900-06-01T08:06:00+08:06");
    assert_eq!(parse_rfc3339(&shanghai.format(old)), Ok(old));
    // A time whose local date no LocalDate holds is written in UTC.
    let far = Timestamp::from_unix_micros(i64::MAX);
    assert_eq!(shanghai.format(far), far.to_string());
}

#[test]
fn local_times_a_clock_change_skips_or_repeats_are_resolved_compatibly() {
    let zone = berlin();
    // 2026-03-29: clocks go from 02:00 to 03:00 (01:00Z). 02:30 does not exist: read with
    // the offset before the gap (+01:00), it is 01:30Z, 03:30 by the new clock.
    let gap = zone
        .from_local(date("2026-03-29"), 2 * 60 + 30)
        .expect("valid");
    assert_eq!(gap, parse_rfc3339("2026-03-29T01:30:00Z").expect("valid"));
    assert_eq!(zone.format(gap), "2026-03-29T03:30:00+02:00");
    assert_eq!(zone.to_local(gap), Ok((date("2026-03-29"), 3 * 60 + 30)));
    assert_eq!(
        zone.format(zone.from_local(date("2026-03-29"), 3 * 60).expect("valid")),
        "2026-03-29T03:00:00+02:00"
    );
    // 2026-10-25: clocks go back from 03:00 to 02:00 (01:00Z). 02:30 comes twice: the
    // earlier is meant (00:30Z, +02:00).
    let fold = zone
        .from_local(date("2026-10-25"), 2 * 60 + 30)
        .expect("valid");
    assert_eq!(zone.format(fold), "2026-10-25T02:30:00+02:00");
    let second = Timestamp::from_unix_micros(fold.as_unix_micros() + 3_600_000_000);
    assert_eq!(zone.format(second), "2026-10-25T02:30:00+01:00");
    assert_eq!(zone.to_local(fold), zone.to_local(second));
    // Midnight ending a day is the next day's midnight, also across a change.
    assert_eq!(
        zone.from_local(date("2026-03-28"), 1440),
        zone.from_local(date("2026-03-29"), 0)
    );
    // The ends of LocalDate's range still convert both ways (beyond jiff's range of
    // instants, the offset at its end is used).
    for zone in [Zone::shanghai(), berlin(), new_york()] {
        let last = zone.from_local(LocalDate::MAX, 1439).expect("in range");
        assert_eq!(zone.to_local(last), Ok((LocalDate::MAX, 1439)), "{zone}");
        let first = zone.from_local(LocalDate::MIN, 0).expect("in range");
        assert_eq!(zone.to_local(first), Ok((LocalDate::MIN, 0)), "{zone}");
    }
}

/// A calendar in `zone` whose only data makes the Sundays of 2026's clock changes in Europe
/// working days (so that working periods on those days can be checked).
fn with_change_sundays_worked(zone: Zone) -> BusinessCalendar {
    BusinessCalendar::from_toml(
        r#"
        [2026]
        source = "test: the Sundays clocks change in Europe, worked"
        off = [["2026-12-25", "2026-12-25"]]
        work = ["2026-03-29", "2026-10-25"]
        "#,
    )
    .expect("valid data")
    .with_zone(zone)
}

#[test]
fn berlin_working_periods_are_local_wall_clock_periods_across_clock_changes() {
    let calendar = with_change_sundays_worked(berlin());
    assert_eq!(calendar.zone(), &berlin());
    let zone = calendar.zone().clone();
    let at = |d: &str, h: u16, m: u16| at_in(&zone, d, h, m);
    let show = |t: Timestamp| zone.format(t);
    for day in ["2026-03-29", "2026-10-25"] {
        // The day clocks change at 02:00 (or 03:00) still has 08:30-12:00 and 13:30-17:30
        // by the local clock: 7.5 hours of working time, 3.5 of them in the morning.
        assert!(calendar.is_working_day(date(day)));
        assert_eq!(
            calendar.working_time_between(at(day, 0, 0), at(day, 23, 59)),
            minutes(450),
            "{day}"
        );
        assert_eq!(
            calendar.working_time_between(at(day, 0, 0), at(day, 12, 0)),
            minutes(210),
            "{day}"
        );
        assert!(!calendar.is_working_time(at(day, 8, 29)));
        assert!(calendar.is_working_time(at(day, 8, 30)));
        assert!(!calendar.is_working_time(at(day, 12, 0)));
        assert!(calendar.is_working_time(at(day, 17, 29)));
        assert!(!calendar.is_working_time(at(day, 17, 30)));
        // 3.5 working hours from before the change end at local noon.
        assert_eq!(
            show(calendar.add(at(day, 1, 0), Span::WorkingMinutes(210))),
            format!(
                "{day}T12:00:00{}",
                if day.ends_with("03-29") {
                    "+02:00"
                } else {
                    "+01:00"
                }
            )
        );
    }
    // Across the night the clocks go forward (Saturday 28 March 23:00 local to Sunday
    // 23:00 is 23 hours of wall-clock time): the Sunday's 7.5 working hours, no more.
    assert_eq!(
        calendar.working_time_between(at("2026-03-28", 23, 0), at("2026-03-29", 23, 0)),
        minutes(450)
    );
    // Working days end at the local close of business, before and after the change.
    assert_eq!(
        show(calendar.add(at("2026-03-27", 10, 0), Span::WorkingDays(1))),
        "2026-03-29T17:30:00+02:00"
    );
    assert_eq!(
        show(calendar.add(at("2026-03-27", 10, 0), Span::WorkingDays(0))),
        "2026-03-27T17:30:00+01:00"
    );
    assert_eq!(
        show(calendar.add(at("2026-10-23", 10, 0), Span::WorkingDays(2))),
        "2026-10-26T17:30:00+01:00"
    );
    // Without the extra Sundays: Friday 2026-03-27 + 3 working days is Wednesday 1 April.
    let plain = BusinessCalendar::weekdays_only().with_zone(berlin());
    assert_eq!(
        show(plain.add(at("2026-03-27", 10, 0), Span::WorkingDays(3))),
        "2026-04-01T17:30:00+02:00"
    );
    // 2 working hours from Friday 16:30: one on Friday, one on Monday, 09:30 summer time.
    let due = plain.add(at("2026-03-27", 16, 30), Span::WorkingHours(2));
    assert_eq!(show(due), "2026-03-30T09:30:00+02:00");
    assert_eq!(
        plain.working_time_between(at("2026-03-27", 16, 30), due),
        hours(2)
    );
}

#[test]
fn new_york_deadlines_land_at_the_local_close_of_business() {
    // The same calendar (weekdays, 08:30-12:00 and 13:30-17:30) in New York.
    let calendar = BusinessCalendar::weekdays_only().with_zone(new_york());
    let zone = new_york();
    let at = |d: &str, h: u16, m: u16| at_in(&zone, d, h, m);
    let show = |t: Timestamp| zone.format(t);
    // Clocks go forward on Sunday 2026-03-08 and back on Sunday 2026-11-01.
    assert_eq!(
        show(calendar.add(at("2026-03-06", 10, 0), Span::WorkingDays(1))),
        "2026-03-09T17:30:00-04:00"
    );
    assert_eq!(
        show(calendar.add(at("2026-10-30", 10, 0), Span::WorkingDays(1))),
        "2026-11-02T17:30:00-05:00"
    );
    let due = calendar.add(at("2026-03-06", 16, 30), Span::WorkingHours(2));
    assert_eq!(show(due), "2026-03-09T09:30:00-04:00");
    assert_eq!(due, parse_rfc3339("2026-03-09T13:30:00Z").expect("valid"));
    // The deadline is local: the same span from the same instant ends at 17:30 of each
    // zone's own working day, hours apart.
    let start = parse_rfc3339("2026-06-10T12:00:00Z").expect("valid");
    let in_new_york = calendar.add(start, Span::WorkingDays(2));
    let in_shanghai = BusinessCalendar::weekdays_only().add(start, Span::WorkingDays(2));
    assert_eq!(show(in_new_york), "2026-06-12T17:30:00-04:00");
    assert_eq!(
        Zone::shanghai().format(in_shanghai),
        "2026-06-12T17:30:00+08:00"
    );
    assert_eq!(
        in_new_york.as_unix_micros() - in_shanghai.as_unix_micros(),
        12 * 3_600_000_000
    );
    // A Friday evening in New York is Saturday morning in Shanghai: not a working day there.
    let friday_evening = at("2026-06-12", 20, 0);
    assert!(!BusinessCalendar::weekdays_only().is_working_time(friday_evening));
    assert!(!calendar.is_working_time(friday_evening));
    assert!(calendar.is_working_time(at("2026-06-12", 17, 0)));
    assert!(!BusinessCalendar::weekdays_only().is_working_time(at("2026-06-12", 17, 0)));
}

#[test]
fn a_period_containing_the_change_counts_its_wall_clock_length() {
    // Documented limit: working time is counted on the local wall clock, so a period that
    // contains the change itself (a 24-hour service) counts 24 hours on a 23-hour day.
    let calendar = with_change_sundays_worked(berlin())
        .with_hours(WorkingHours::parse("00:00-24:00").expect("valid"));
    let zone = berlin();
    let from = at_in(&zone, "2026-03-29", 0, 0);
    let to = at_in(&zone, "2026-03-30", 0, 0);
    assert_eq!(
        to.as_unix_micros() - from.as_unix_micros(),
        23 * 3_600_000_000
    );
    assert_eq!(calendar.working_time_between(from, to), hours(24));
}

#[test]
fn the_zone_is_part_of_the_calendar() {
    let china = BusinessCalendar::china();
    assert_eq!(china.zone(), &Zone::shanghai());
    assert_eq!(BusinessCalendar::weekdays_only().zone(), &Zone::shanghai());
    let moved = china.clone().with_zone(berlin());
    assert_ne!(moved, china);
    assert_eq!(moved.zone(), &berlin());
    // The holiday data and hours stay: the same dates, now read in Berlin.
    assert!(moved.covers(2026));
    assert!(!moved.is_working_day(date("2026-10-01")));
    assert_eq!(moved.clone().with_zone(Zone::shanghai()), china);
}

// ---------------------------------------------------------------------------------------
// Properties

/// Any instant from 2024-01-01 to 2028-01-01 (around the data, and past its end).
fn instant() -> impl Strategy<Value = Timestamp> {
    let from = at("2024-01-01", 0, 0).as_unix_micros();
    let to = at("2028-01-01", 0, 0).as_unix_micros();
    (from..to).prop_map(Timestamp::from_unix_micros)
}

/// The k-th working day after `day`, one day at a time.
fn naive_nth_working_day_after(calendar: &BusinessCalendar, day: i64, k: i64) -> i64 {
    let mut day = day;
    let mut left = k;
    while left > 0 {
        day += 1;
        if calendar.is_working_day_number(day) {
            left -= 1;
        }
    }
    day
}

proptest! {
    #[test]
    fn working_time_between_inverts_add(start in instant(), n in 0u32..200_000) {
        let calendar = BusinessCalendar::china();
        let due = calendar.add(start, Span::WorkingMinutes(n));
        prop_assert!(due >= start);
        prop_assert_eq!(calendar.working_time_between(start, due), minutes(n.into()));
        // And the deadline is the earliest such instant.
        if n > 0 {
            let before = Timestamp::from_unix_micros(due.as_unix_micros() - 1);
            prop_assert!(calendar.working_time_between(start, before) < minutes(n.into()));
            prop_assert!(calendar.is_working_time(before));
        }
    }

    #[test]
    fn working_hours_are_sixty_working_minutes(start in instant(), n in 0u32..2_000) {
        let calendar = BusinessCalendar::china();
        prop_assert_eq!(
            calendar.add(start, Span::WorkingHours(n)),
            calendar.add(start, Span::WorkingMinutes(n * 60))
        );
    }

    #[test]
    fn working_time_between_matches_counting_minutes(
        start in instant(),
        length in 0i64..(20 * 1440),
    ) {
        let calendar = BusinessCalendar::china();
        // Whole minutes, so that a minute is working time or not as a whole.
        let start = Timestamp::from_unix_micros(
            start.as_unix_micros() - start.as_unix_micros().rem_euclid(MICROS_PER_MINUTE),
        );
        let mut counted = 0u64;
        for m in 0..length {
            let t = Timestamp::from_unix_micros(start.as_unix_micros() + m * MICROS_PER_MINUTE);
            counted += u64::from(calendar.is_working_time(t));
        }
        let end = Timestamp::from_unix_micros(start.as_unix_micros() + length * MICROS_PER_MINUTE);
        prop_assert_eq!(calendar.working_time_between(start, end), minutes(counted));
    }

    #[test]
    fn working_days_end_at_the_close_of_the_nth_working_day(start in instant(), n in 1u32..400) {
        let calendar = BusinessCalendar::china();
        let due = calendar.add(start, Span::WorkingDays(n));
        let (due_day, minute) = calendar.zone().to_local(due).expect("in range");
        let (start_day, _) = calendar.zone().to_local(start).expect("in range");
        prop_assert_eq!(minute, 17 * 60 + 30);
        prop_assert!(calendar.is_working_day(due_day));
        let mut counted = 0;
        let mut day = start_day.next_day();
        while let Some(d) = day.filter(|d| *d <= due_day) {
            counted += u32::from(calendar.is_working_day(d));
            day = d.next_day();
        }
        prop_assert_eq!(counted, n);
    }

    #[test]
    fn skipping_weeks_agrees_with_stepping(start in instant(), k in 1i64..3_000) {
        let calendar = BusinessCalendar::china();
        let (day, _) = Zone::shanghai().day_and_micros(start);
        prop_assert_eq!(
            calendar.nth_working_day_after(day, k),
            naive_nth_working_day_after(&calendar, day, k)
        );
        let plain = BusinessCalendar::weekdays_only();
        prop_assert_eq!(
            plain.nth_working_day_after(day, k),
            naive_nth_working_day_after(&plain, day, k)
        );
    }

    #[test]
    fn counting_working_days_agrees_with_stepping(start in instant(), length in 0i64..1_500) {
        let calendar = BusinessCalendar::china();
        let (from, _) = Zone::shanghai().day_and_micros(start);
        let stepped = (from..from + length)
            .filter(|&d| calendar.is_working_day_number(d))
            .count();
        prop_assert_eq!(
            calendar.working_days_in(from, from + length),
            i128::try_from(stepped).expect("small")
        );
    }

    #[test]
    fn dates_round_trip(days in LocalDate::MIN.days_since_epoch()..=LocalDate::MAX.days_since_epoch()) {
        let d = LocalDate::from_days_since_epoch(days).expect("in range");
        prop_assert_eq!(d.days_since_epoch(), days);
        prop_assert_eq!(LocalDate::parse(&d.to_string()), Ok(d));
        prop_assert_eq!(
            LocalDate::new(d.year(), d.month(), d.day()),
            Ok(d)
        );
        if let Some(next) = d.next_day() {
            prop_assert!(next > d);
            prop_assert_eq!(next.previous_day(), Some(d));
        }
        let shanghai = Zone::shanghai();
        let (back, minute) = shanghai
            .to_local(shanghai.from_local(d, 0).expect("valid"))
            .expect("in range");
        prop_assert_eq!((back, minute), (d, 0));
    }

    #[test]
    fn spans_round_trip_as_text(n in any::<u32>(), micros in any::<u64>(), kind in 0u8..4) {
        let span = match kind {
            0 => Span::WorkingMinutes(n),
            1 => Span::WorkingHours(n),
            2 => Span::WorkingDays(n),
            _ => Span::Calendar(Duration::from_micros(micros)),
        };
        prop_assert_eq!(Span::parse(&span.to_string()), Ok(span));
    }
}

/// Asia/Shanghai, Europe/Berlin or America/New_York.
fn some_zone() -> impl Strategy<Value = Zone> {
    prop_oneof![Just(Zone::shanghai()), Just(berlin()), Just(new_york())]
}

proptest! {
    // Clocks change at night, outside the working periods: in zones with daylight saving time
    // the deadlines still invert, and working days still end at 17:30 local.
    #[test]
    fn in_any_zone_working_time_between_inverts_add(
        zone in some_zone(),
        start in instant(),
        n in 0u32..200_000,
    ) {
        let calendar = BusinessCalendar::china().with_zone(zone);
        let due = calendar.add(start, Span::WorkingMinutes(n));
        prop_assert!(due >= start);
        prop_assert_eq!(calendar.working_time_between(start, due), minutes(n.into()));
        if n > 0 {
            let before = Timestamp::from_unix_micros(due.as_unix_micros() - 1);
            prop_assert!(calendar.working_time_between(start, before) < minutes(n.into()));
            prop_assert!(calendar.is_working_time(before));
        }
    }

    #[test]
    fn in_any_zone_working_days_end_at_the_local_close(
        zone in some_zone(),
        start in instant(),
        n in 1u32..400,
    ) {
        let calendar = BusinessCalendar::china().with_zone(zone.clone());
        let due = calendar.add(start, Span::WorkingDays(n));
        let (due_day, minute) = zone.to_local(due).expect("in range");
        let (start_day, _) = zone.to_local(start).expect("in range");
        prop_assert_eq!(minute, 17 * 60 + 30);
        prop_assert!(calendar.is_working_day(due_day));
        let mut counted = 0;
        let mut day = start_day.next_day();
        while let Some(d) = day.filter(|d| *d <= due_day) {
            counted += u32::from(calendar.is_working_day(d));
            day = d.next_day();
        }
        prop_assert_eq!(counted, n);
    }

    // What `format` writes, `parse_rfc3339` reads back as the same second.
    #[test]
    fn formatted_times_parse_back(zone in some_zone(), micros in -2_300_000_000_000_000i64..4_200_000_000_000_000) {
        let at = Timestamp::from_unix_micros(micros);
        let second = Timestamp::from_unix_micros(micros - micros.rem_euclid(1_000_000));
        prop_assert_eq!(parse_rfc3339(&zone.format(at)), Ok(second));
    }
}

#[test]
fn a_deadline_span_is_more_than_zero_and_at_most_a_year_of_its_kind() {
    use super::{DeadlineSpanError, Span};
    let day = Duration::from_secs(86_400);
    for span in [
        Span::Calendar(Duration::from_nanos(1)),
        Span::Calendar(day * 366),
        Span::WorkingMinutes(1),
        Span::WorkingMinutes(124_800),
        Span::WorkingHours(1),
        Span::WorkingHours(2_080),
        Span::WorkingDays(1),
        Span::WorkingDays(260),
    ] {
        assert_eq!(span.check_deadline(), Ok(()), "{span}");
    }
    for span in [
        Span::Calendar(Duration::ZERO),
        Span::WorkingMinutes(0),
        Span::WorkingHours(0),
        Span::WorkingDays(0),
    ] {
        assert_eq!(
            span.check_deadline(),
            Err(DeadlineSpanError::Zero),
            "{span}"
        );
    }
    for span in [
        Span::Calendar(day * 366 + Duration::from_nanos(1)),
        Span::Calendar(Duration::MAX),
        Span::WorkingMinutes(124_801),
        Span::WorkingHours(2_081),
        Span::WorkingDays(261),
        Span::WorkingDays(u32::MAX),
    ] {
        assert_eq!(
            span.check_deadline(),
            Err(DeadlineSpanError::TooLong(span)),
            "{span}"
        );
    }
    // The message names the bound of every kind and the span refused.
    let too_long = Span::parse("99999999 working days")
        .expect("parses: parsing does not bound, so spans stored before the bound still read")
        .check_deadline()
        .expect_err("too long");
    assert_eq!(
        too_long.to_string(),
        "must be at most a year: 366 days, 260 working days, 2080 working hours or 124800 \
         working minutes (99999999 working days is longer)"
    );
}
