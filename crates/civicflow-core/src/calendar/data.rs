//! Reading and checking the holiday data (the `cn-public-holidays.toml` format).

use std::collections::{BTreeMap, BTreeSet};

use super::date::LocalDate;
use super::error::{CalendarError, Problem};

/// One year's official schedule, as written in its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YearData {
    pub(crate) source: String,
    /// The `off` ranges, inclusive, in the order written.
    pub(crate) off: Vec<(LocalDate, LocalDate)>,
    /// The `work` days, in the order written.
    pub(crate) work: Vec<LocalDate>,
}

impl YearData {
    /// Every day off, one by one.
    pub(crate) fn off_days(&self) -> BTreeSet<LocalDate> {
        let mut days = BTreeSet::new();
        for &(start, end) in &self.off {
            let mut day = Some(start);
            while let Some(d) = day.filter(|d| *d <= end) {
                days.insert(d);
                day = d.next_day();
            }
        }
        days
    }

    /// Whether two schedules declare the same days (whatever the source text or the grouping
    /// of ranges).
    pub(crate) fn same_days(&self, other: &Self) -> bool {
        self.off_days() == other.off_days()
            && self.work.iter().collect::<BTreeSet<_>>() == other.work.iter().collect()
    }
}

/// Parses a whole document: every year table, checked on its own. (Checks across tables, and
/// against years already loaded, are done by the calendar when it merges them.)
pub(crate) fn parse_document(text: &str) -> Result<BTreeMap<i32, YearData>, CalendarError> {
    let table: toml::Table = toml::from_str(text).map_err(|error| CalendarError::Syntax {
        message: error.to_string().trim_end().to_owned(),
    })?;
    let mut years = BTreeMap::new();
    for (key, value) in &table {
        let year = parse_year(key)?;
        years.insert(year, parse_year_table(year, value)?);
    }
    Ok(years)
}

fn parse_year(key: &str) -> Result<i32, CalendarError> {
    let not_a_year = |reason| CalendarError::NotAYear {
        key: key.to_owned(),
        reason,
    };
    if key.len() != 4 || !key.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_a_year(
            "a year table is named by a four-digit year, e.g. [2027]",
        ));
    }
    let year: i32 = key
        .parse()
        .map_err(|_| not_a_year("a year table is named by a four-digit year, e.g. [2027]"))?;
    if year == 0 {
        return Err(not_a_year("years start at 0001"));
    }
    Ok(year)
}

fn parse_year_table(year: i32, value: &toml::Value) -> Result<YearData, CalendarError> {
    let error = |field: &str, value: String, problem| CalendarError::Data {
        year,
        field: field.to_owned(),
        value,
        problem,
    };
    let fields = value
        .as_table()
        .ok_or_else(|| error("table", value.to_string(), Problem::NotATable))?;
    if let Some((name, value)) = fields
        .iter()
        .find(|(name, _)| !matches!(name.as_str(), "source" | "off" | "work"))
    {
        return Err(error(name, value.to_string(), Problem::UnknownField));
    }

    let source = match fields.get("source") {
        None => return Err(error("source", "(missing)".into(), Problem::Missing)),
        Some(toml::Value::String(text)) if text.trim().is_empty() => {
            return Err(error("source", value_text(text), Problem::Empty))
        }
        Some(toml::Value::String(text)) => text.clone(),
        Some(other) => {
            return Err(error(
                "source",
                other.to_string(),
                Problem::WrongType {
                    expected: "the text of the notice the days come from",
                },
            ))
        }
    };

    const RANGE: &str = "a range [\"YYYY-MM-DD\", \"YYYY-MM-DD\"]";
    let off_entries = match fields.get("off") {
        None => return Err(error("off", "(missing)".into(), Problem::Missing)),
        Some(toml::Value::Array(entries)) if entries.is_empty() => {
            return Err(error("off", "[]".into(), Problem::Empty))
        }
        Some(toml::Value::Array(entries)) => entries,
        Some(other) => {
            return Err(error(
                "off",
                other.to_string(),
                Problem::WrongType {
                    expected: "a list of ranges [\"YYYY-MM-DD\", \"YYYY-MM-DD\"]",
                },
            ))
        }
    };
    let mut off = Vec::with_capacity(off_entries.len());
    for (i, entry) in off_entries.iter().enumerate() {
        let field = format!("off[{i}]");
        let written = entry.to_string();
        let bounds = match entry {
            toml::Value::Array(bounds) if bounds.len() == 2 => bounds,
            _ => {
                return Err(error(
                    &field,
                    written,
                    Problem::WrongType { expected: RANGE },
                ))
            }
        };
        let mut dates = [LocalDate::MIN; 2];
        for (slot, bound) in dates.iter_mut().zip(bounds) {
            let text = bound.as_str().ok_or_else(|| {
                error(
                    &field,
                    written.clone(),
                    Problem::WrongType { expected: RANGE },
                )
            })?;
            *slot = parse_date_in(year, text)
                .map_err(|problem| error(&field, written.clone(), problem))?;
        }
        let [start, end] = dates;
        if end < start {
            return Err(error(&field, written, Problem::EndBeforeStart));
        }
        off.push((start, end));
    }

    let work_entries: &[toml::Value] = match fields.get("work") {
        None => &[],
        Some(toml::Value::Array(entries)) => entries,
        Some(other) => {
            return Err(error(
                "work",
                other.to_string(),
                Problem::WrongType {
                    expected: "a list of dates [\"YYYY-MM-DD\", ...]",
                },
            ))
        }
    };
    let mut work = Vec::with_capacity(work_entries.len());
    for (i, entry) in work_entries.iter().enumerate() {
        let field = format!("work[{i}]");
        let written = entry.to_string();
        let text = entry.as_str().ok_or_else(|| {
            error(
                &field,
                written.clone(),
                Problem::WrongType {
                    expected: "a date \"YYYY-MM-DD\"",
                },
            )
        })?;
        let date =
            parse_date_in(year, text).map_err(|problem| error(&field, written.clone(), problem))?;
        let weekday = date.weekday();
        if !weekday.is_weekend() {
            return Err(error(&field, written, Problem::NotAWeekend { weekday }));
        }
        work.push(date);
    }

    Ok(YearData { source, off, work })
}

/// A date of the table for `year`: in that year, or in December of the year before (the
/// New Year holiday of 2023 began on 2022-12-31, and the 2012 notice made 2011-12-31 a
/// working day).
fn parse_date_in(year: i32, text: &str) -> Result<LocalDate, Problem> {
    let date = LocalDate::parse(text).map_err(|error| match error {
        CalendarError::InvalidDate { reason, .. } => Problem::MalformedDate { reason },
        _ => Problem::MalformedDate {
            reason: "expected YYYY-MM-DD",
        },
    })?;
    let in_year = date.year() == year || (date.year() == year - 1 && date.month() == 12);
    if in_year {
        Ok(date)
    } else {
        Err(Problem::OutsideYear)
    }
}

fn value_text(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}
