//! What a decision may look at besides the aggregate's own state.
//!
//! Domain logic is pure: it never reads the clock, the disk or the network. The engine hands
//! it everything else it needs in a [`Context`]: who is acting, the org chart, the workflow
//! definitions, working time, and the moment of the decision.

use super::deadline::CalendarStamp;
use super::org::{Acting, OrgChart};
use super::workflow::DefinitionRegistry;
use crate::calendar::{BusinessCalendar, Span, Zone};
use crate::clock::Timestamp;

/// Adds spans to moments, in wall-clock or working time. The business calendar is the real
/// one; tests may use [`WallClockOnly`].
pub trait WorkingTime: Send + Sync {
    /// The moment `span` after `start`.
    fn add(&self, start: Timestamp, span: Span) -> Timestamp;

    /// The calendar a deadline from `from` to `to` (its last step) is computed with, and
    /// whether it counted days of a year it has no data for.
    fn stamp(&self, from: Timestamp, to: Timestamp) -> CalendarStamp;

    /// `at` as a decision's words write it for people: RFC 3339 in this working time's zone
    /// (the calendar's; Asia/Shanghai unless a calendar says otherwise).
    fn format_time(&self, at: Timestamp) -> String {
        Zone::shanghai().format(at)
    }

    /// The month `at` falls in, `YYYY-MM`, in this working time's zone: the month people
    /// read in [`WorkingTime::format_time`] (which writes the local date first), so that a
    /// monthly figure counts exactly the events whose shown time lies in that month.
    fn month_of(&self, at: Timestamp) -> String {
        self.format_time(at).get(..7).unwrap_or_default().to_owned()
    }
}

impl WorkingTime for BusinessCalendar {
    fn add(&self, start: Timestamp, span: Span) -> Timestamp {
        BusinessCalendar::add(self, start, span)
    }

    /// Revision 0: a calendar not read from a log (the years it was built with).
    fn stamp(&self, from: Timestamp, to: Timestamp) -> CalendarStamp {
        BusinessCalendar::stamp(self, 0, from, to)
    }

    fn format_time(&self, at: Timestamp) -> String {
        self.zone().format(at)
    }
}

/// Working time that is simply wall-clock time (every minute of every day works).
#[derive(Debug, Clone, Copy, Default)]
pub struct WallClockOnly;

impl WorkingTime for WallClockOnly {
    fn add(&self, start: Timestamp, span: Span) -> Timestamp {
        let duration = match span {
            Span::Calendar(duration) => duration,
            Span::WorkingMinutes(m) => std::time::Duration::from_secs(u64::from(m) * 60),
            Span::WorkingHours(h) => std::time::Duration::from_secs(u64::from(h) * 3600),
            Span::WorkingDays(d) => std::time::Duration::from_secs(u64::from(d) * 86_400),
        };
        start.saturating_add(duration)
    }

    /// Wall-clock time needs no data: never provisional.
    fn stamp(&self, _: Timestamp, _: Timestamp) -> CalendarStamp {
        CalendarStamp {
            revision: 0,
            zone: "UTC".into(),
            missing_years: Vec::new(),
        }
    }
}

/// Everything a decision may consult.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// Who is acting.
    pub acting: &'a Acting,
    /// The org chart now.
    pub org: &'a OrgChart,
    /// The workflow definitions.
    pub definitions: &'a DefinitionRegistry,
    /// Working time (the business calendar).
    pub time: &'a dyn WorkingTime,
    /// The moment of the decision.
    pub now: Timestamp,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("acting", self.acting)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}
