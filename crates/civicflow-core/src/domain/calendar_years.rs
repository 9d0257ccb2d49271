//! The business calendar's years as data in the log: one stream, `calendar`, where an
//! administrator publishes each year's official holidays and 调休 days (the State Council's
//! notice each November), and where the store's time zone is recorded.
//!
//! The years a release carries (2025 and 2026 today, `calendar/cn-public-holidays.toml`) are
//! the base every store starts from; a year published here adds to it or, published again
//! with other days, revises it. Every publication is an event with its actor, so an audit
//! shows who declared which days and when; a year's days never change silently. The engine
//! keeps the calendar in force (base and published years) in memory and recomputes the
//! provisional deadlines a publication covers (`docs/engine.md`, "Calendar years").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::aggregate::{Aggregate, Decision, Fold};
use super::context::Context;
use super::events::domain_events;
use super::org::{roles, Acting, OrgChart};
use super::rejection::Rejection;
use crate::calendar::YearSchedule;
use crate::clock::Timestamp;
use crate::ids::{Role, StreamId, Version};

/// The stream of the calendar's years and zone.
pub const CALENDAR_STREAM: &str = "calendar";

/// The stream id of [`CALENDAR_STREAM`].
pub fn calendar_stream() -> StreamId {
    StreamId::new(CALENDAR_STREAM).expect("a valid stream id")
}

/// The most characters of a year's `source` (the notice's title and number).
pub const SOURCE_CHARS_MAX: usize = 500;

/// A year's official schedule was published (first, or again as a revision).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarYearPublished {
    /// The days.
    pub schedule: YearSchedule,
    /// 1 for the first publication of the year, then 2, 3, … for each revision.
    pub revision: u32,
    /// When.
    pub at: Timestamp,
}

/// The store's time zone was recorded: deadlines and local dates are counted in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarZoneSet {
    /// An IANA time zone name (`Asia/Shanghai`).
    pub zone: String,
    /// When.
    pub at: Timestamp,
}

domain_events! {
    /// The events of the calendar stream.
    pub enum CalendarEvent {
        /// A year was published.
        YearPublished(CalendarYearPublished) = "CalendarYearPublished" v 1,
        /// The zone was recorded.
        ZoneSet(CalendarZoneSet) = "CalendarZoneSet" v 1,
    }
}

/// A year as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedYear {
    /// The days.
    pub schedule: YearSchedule,
    /// Its revision (1: as first published).
    pub revision: u32,
    /// When it was published (this revision).
    pub published_at: Timestamp,
}

/// The calendar stream folded: the published years and the recorded zone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CalendarState {
    /// The published years.
    pub years: BTreeMap<i32, PublishedYear>,
    /// The recorded zone (`None`: never recorded; the default applies).
    pub zone: Option<String>,
    /// The stream's version.
    pub version: Option<Version>,
}

impl CalendarState {
    /// The calendar's revision: how many events the stream holds (0: none; only the years
    /// the release carries are in force).
    pub fn revision(&self) -> u32 {
        self.version
            .map_or(0, |v| u32::try_from(v.get()).unwrap_or(u32::MAX))
    }
}

/// What may be asked of the calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalendarCommand {
    /// Publish a year's schedule, checked already against the calendar in force (the
    /// engine does that: `Engine::publish_calendar_year`). The same days as in force change
    /// nothing; other days are a revision.
    PublishYear {
        /// The schedule.
        schedule: YearSchedule,
        /// Whether the calendar in force already has exactly these days for the year (from
        /// the release's data or an earlier publication).
        in_force_already: bool,
    },
    /// Record the store's zone (the system, when a store is opened with a zone and has none
    /// recorded). A zone once recorded is kept: every local date in the log's read models
    /// was counted in it.
    SetZone {
        /// The IANA name, already checked to exist.
        zone: String,
    },
}

/// The roles that publish calendar years: a community administrator at the top of a tree.
const PUBLISHERS: &[&str] = &[roles::COMMUNITY_ADMIN];

fn check_publisher(ctx: &Context<'_>) -> Result<(), Rejection> {
    if ctx.acting.is_system() {
        return Ok(());
    }
    ctx.org.check_acting(ctx.acting)?;
    let allowed = || {
        PUBLISHERS
            .iter()
            .filter_map(|r| Role::new(*r).ok())
            .collect()
    };
    if !PUBLISHERS.contains(&ctx.acting.role.as_str()) {
        return Err(Rejection::RoleNotAllowed {
            role: ctx.acting.role.clone(),
            action: "publish a calendar year".into(),
            allowed: allowed(),
        });
    }
    // The calendar is the whole store's: only an administrator of a top unit (a community
    // or a district, nothing above it) declares it.
    if let Some(parent) = ctx.org.parent(&ctx.acting.unit) {
        return Err(Rejection::OutOfScope {
            unit: ctx.acting.unit.clone(),
            action: "publish a calendar year".into(),
            scope: "an administrator of a top unit (the calendar is the whole store's)".into(),
            target: parent.clone(),
        });
    }
    Ok(())
}

fn decide_events(
    state: &CalendarState,
    command: &CalendarCommand,
    ctx: &Context<'_>,
) -> Result<Vec<CalendarEvent>, Rejection> {
    match command {
        CalendarCommand::PublishYear {
            schedule,
            in_force_already,
        } => {
            check_publisher(ctx)?;
            super::text::check("source", &schedule.source, super::text::Lines::One)?;
            let chars = schedule.source.trim().chars().count();
            if chars == 0 || chars > SOURCE_CHARS_MAX {
                return Err(Rejection::FieldInvalid {
                    field: "source".into(),
                    reason: format!(
                        "name the notice the days come from, in 1 to {SOURCE_CHARS_MAX} characters"
                    ),
                });
            }
            if *in_force_already {
                return Ok(Vec::new());
            }
            let revision = state
                .years
                .get(&schedule.year)
                .map_or(1, |published| published.revision + 1);
            Ok(vec![CalendarEvent::YearPublished(CalendarYearPublished {
                schedule: YearSchedule {
                    source: schedule.source.trim().to_owned(),
                    ..schedule.clone()
                },
                revision,
                at: ctx.now,
            })])
        }
        CalendarCommand::SetZone { zone } => {
            if !ctx.acting.is_system() {
                return Err(Rejection::RoleNotAllowed {
                    role: ctx.acting.role.clone(),
                    action: "record the store's time zone".into(),
                    allowed: vec![Role::new(roles::SYSTEM).expect("valid")],
                });
            }
            match &state.zone {
                Some(recorded) if recorded == zone => Ok(Vec::new()),
                Some(recorded) => Err(Rejection::FieldInvalid {
                    field: "zone".into(),
                    reason: format!(
                        "the store keeps its time in {recorded}, recorded when it was set up; \
                         every local date in it was counted there, so it cannot move to {zone}"
                    ),
                }),
                None => Ok(vec![CalendarEvent::ZoneSet(CalendarZoneSet {
                    zone: zone.clone(),
                    at: ctx.now,
                })]),
            }
        }
    }
}

/// The calendar: the one stream `calendar`.
#[derive(Debug, Clone, Copy)]
pub struct CalendarYears;

impl Aggregate for CalendarYears {
    type Id = ();
    type State = CalendarState;
    type Command = CalendarCommand;
    type Event = CalendarEvent;

    const KIND: &'static str = "calendar";

    fn stream(_: &()) -> Result<StreamId, Rejection> {
        Ok(calendar_stream())
    }

    /// Refused: a caller other than a top unit's community administrator (or the system),
    /// an empty or overlong source, a zone other than the one recorded.
    fn decide(
        _: &(),
        state: &CalendarState,
        command: &CalendarCommand,
        ctx: &Context<'_>,
    ) -> Result<Decision<Self>, Rejection> {
        decide_events(state, command, ctx).map(Decision::events)
    }

    fn apply(state: &mut CalendarState, event: &CalendarEvent, fold: &Fold<'_>) {
        match event {
            CalendarEvent::YearPublished(e) => {
                state.years.insert(
                    e.schedule.year,
                    PublishedYear {
                        schedule: e.schedule.clone(),
                        revision: e.revision,
                        published_at: e.at,
                    },
                );
            }
            CalendarEvent::ZoneSet(e) => state.zone = Some(e.zone.clone()),
        }
        state.version = Some(fold.version);
    }

    /// The calendar is public: everyone with a token may read which days are worked.
    fn may_see(_: &CalendarState, _: &Acting, _: &OrgChart) -> bool {
        true
    }
}
