//! The calendar in force: the years the release carries (the configuration's calendar),
//! with the years published in the log's `calendar` stream on top, and the provisional
//! deadlines computed again when a publication covers them.
//!
//! The engine keeps the calendar stream folded (like the org chart) and the calendar built
//! from it; both are caught up whenever the stream is loaded: on a publication, and on each
//! scheduler pass (so an instance sees what another published on a shared log).

use std::sync::{Arc, RwLock};

use super::execute::{Executed, How, Keyed, Stored, Target};
use super::load::Loaded;
use super::{read, Engine, EngineError, Outcome, SubmitError};
use crate::calendar::{BusinessCalendar, Span, YearSchedule};
use crate::clock::Timestamp;
use crate::domain::calendar_years::{
    calendar_stream, CalendarCommand, CalendarState, CalendarYears,
};
use crate::domain::case::CaseCommand;
use crate::domain::deadline::CalendarStamp;
use crate::domain::directive::DirectiveCommand;
use crate::domain::org::Acting;
use crate::domain::{Rejection, WorkingTime};
use crate::ids::{CausationId, IdempotencyKey, UnitId, Version};

/// The calendar deadlines are computed with now, and the revision of the stream it is built
/// from.
#[derive(Debug, Clone)]
pub(super) struct InForce {
    pub(super) calendar: Arc<BusinessCalendar>,
    /// The calendar stream's version it is built from.
    pub(super) version: Option<Version>,
}

impl InForce {
    fn revision(&self) -> u32 {
        self.version
            .map_or(0, |v| u32::try_from(v.get()).unwrap_or(u32::MAX))
    }
}

impl WorkingTime for InForce {
    fn add(&self, start: Timestamp, span: Span) -> Timestamp {
        self.calendar.add(start, span)
    }

    fn stamp(&self, from: Timestamp, to: Timestamp) -> CalendarStamp {
        self.calendar.stamp(self.revision(), from, to)
    }

    fn format_time(&self, at: Timestamp) -> String {
        self.calendar.zone().format(at)
    }
}

/// The calendar's state for the engine: the stream folded, and the calendar built from it.
#[derive(Debug)]
pub(super) struct CalendarCache {
    /// The configuration's calendar: the release's years, the working hours, the zone.
    base: BusinessCalendar,
    pub(super) stream: RwLock<Loaded<CalendarYears>>,
    in_force: RwLock<InForce>,
}

impl CalendarCache {
    pub(super) fn new(base: BusinessCalendar, stream: Loaded<CalendarYears>) -> Self {
        let in_force = build(&base, &stream);
        Self {
            base,
            stream: RwLock::new(stream),
            in_force: RwLock::new(in_force),
        }
    }
}

/// The base calendar with every published year on top. A published year that does not fit
/// (which the engine refuses before publishing) leaves the year as the base has it.
fn build(base: &BusinessCalendar, stream: &Loaded<CalendarYears>) -> InForce {
    let mut calendar = base.clone();
    for published in stream.state.years.values() {
        if let Ok(next) = calendar.with_schedule(&published.schedule) {
            calendar = next;
        }
    }
    InForce {
        calendar: Arc::new(calendar),
        version: stream.version,
    }
}

/// Where a year of the calendar comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YearOrigin {
    /// The data the release carries (the configuration's calendar).
    Release,
    /// Published in the log.
    Published {
        /// 1 as first published, then one more per revision.
        revision: u32,
        /// When this revision was published.
        at: Timestamp,
    },
}

/// One year of the calendar in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarYear {
    /// The days.
    pub schedule: YearSchedule,
    /// Where they come from.
    pub origin: YearOrigin,
}

/// The calendar in force, as [`Engine::calendar_overview`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarOverview {
    /// The time zone (an IANA name).
    pub zone: String,
    /// The calendar stream's revision (0: only the release's years).
    pub revision: u32,
    /// Every year with data, in order.
    pub years: Vec<CalendarYear>,
    /// The last year of the unbroken run of covered years from the current one (`None`: not
    /// even this year is covered).
    pub covered_through: Option<i32>,
    /// The moment coverage ends: the start of the first year without data after now.
    pub coverage_ends_at: Timestamp,
}

impl Engine {
    /// The business calendar in force: the release's years and the published ones.
    pub fn calendar(&self) -> Arc<BusinessCalendar> {
        read(&self.calendar.in_force).calendar.clone()
    }

    /// The calendar deadlines are computed with now, as the engine last read its stream (a
    /// publication, the open, and every scheduler pass catch it up:
    /// [`Engine::refresh_calendar`]).
    pub(super) fn calendar_in_force(&self) -> InForce {
        read(&self.calendar.in_force).clone()
    }

    /// Reads what the calendar stream gained since the engine last looked, and rebuilds the
    /// calendar in force if it did.
    pub(super) fn refresh_calendar(&self) -> Result<(), EngineError> {
        let loaded = self.load::<CalendarYears>(&calendar_stream())?;
        self.rebuild_calendar(&loaded);
        Ok(())
    }

    fn rebuild_calendar(&self, loaded: &Loaded<CalendarYears>) {
        if read(&self.calendar.in_force).version >= loaded.version {
            return;
        }
        let built = build(&self.calendar.base, loaded);
        let mut in_force = self
            .calendar
            .in_force
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if in_force.version < built.version {
            *in_force = built;
        }
    }

    /// The calendar in force: its zone, its years and where each comes from, and where
    /// coverage ends.
    ///
    /// # Errors
    /// [`EngineError`] when the calendar stream cannot be read.
    pub fn calendar_overview(&self) -> Result<CalendarOverview, EngineError> {
        self.refresh_calendar()?;
        let state: CalendarState = read(&self.calendar.stream).state.clone();
        let in_force = self.calendar_in_force();
        let calendar = &in_force.calendar;
        let years = calendar
            .schedules()
            .into_iter()
            .map(|schedule| {
                let origin = match state.years.get(&schedule.year) {
                    Some(published) => YearOrigin::Published {
                        revision: published.revision,
                        at: published.published_at,
                    },
                    None => YearOrigin::Release,
                };
                CalendarYear { schedule, origin }
            })
            .collect();
        let this_year = calendar.year_of(self.now());
        let covered_through = calendar.covered_through(this_year);
        Ok(CalendarOverview {
            zone: calendar.zone_name().to_owned(),
            revision: in_force.revision(),
            years,
            covered_through,
            coverage_ends_at: calendar.start_of_year(covered_through.unwrap_or(this_year - 1) + 1),
        })
    }

    /// Publishes a year ([`super::Command::PublishCalendarYear`]): checked against the
    /// calendar in force, appended, then every provisional deadline it covers is computed
    /// again.
    pub(super) fn publish_calendar_year(
        &self,
        acting: &Acting,
        schedule: YearSchedule,
        how: &How,
    ) -> Result<Outcome, SubmitError> {
        self.refresh_calendar()?;
        let in_force = self.calendar_in_force();
        // A December day of the year before may be listed by this year's table: it must not
        // contradict the neighbouring year (the calendar refuses a day both off and work).
        in_force
            .calendar
            .with_schedule(&schedule)
            .map_err(|error| Rejection::FieldInvalid {
                field: "calendar".into(),
                reason: error.to_string(),
            })?;
        let in_force_already = in_force
            .calendar
            .schedule(schedule.year)
            .is_some_and(|current| current.same_days(&schedule));
        let year = schedule.year;
        let command = CalendarCommand::PublishYear {
            schedule,
            in_force_already,
        };
        let done =
            self.execute::<CalendarYears>(acting, Target::Existing(()), &command, how, None)?;
        self.rebuild_calendar(&Loaded {
            state: done.state.clone(),
            version: done.state.version,
        });
        let cause = self.last_calendar_event_id(&done);
        let recomputed = self.recompute_provisional_deadlines(cause)?;
        let revision = done.state.years.get(&year).map_or(0, |y| y.revision);
        Ok(Outcome::Calendar {
            year,
            revision,
            events: done.events,
            recomputed,
            position: done.position,
        })
    }

    /// Records `zone` as the store's (the system, on open: the configuration named one and
    /// the store had none).
    pub(super) fn record_zone(&self, zone: &crate::calendar::Zone) -> Result<(), EngineError> {
        let system = Acting::system(UnitId::new("system").expect("a valid unit id"));
        let command = CalendarCommand::SetZone {
            zone: zone.name().to_owned(),
        };
        match self.execute::<CalendarYears>(
            &system,
            Target::Existing(()),
            &command,
            &How::default(),
            None,
        ) {
            Ok(done) => {
                self.rebuild_calendar(&Loaded {
                    state: done.state.clone(),
                    version: done.state.version,
                });
                Ok(())
            }
            Err(SubmitError::Engine(e)) => Err(e),
            Err(SubmitError::Rejected(r)) => Err(EngineError::Config(r.to_string())),
        }
    }

    /// The id of the calendar event a publication wrote (the cause of the recomputations).
    fn last_calendar_event_id(&self, done: &Executed<CalendarYears>) -> Option<CausationId> {
        let version = done.state.version?;
        let events = self.log.read_stream(&calendar_stream(), version, 1).ok()?;
        events
            .first()
            .filter(|_| done.events > 0)
            .map(|event| CausationId::from(event.event_id))
    }

    /// Computes again every provisional running deadline that the calendar in force now has
    /// data for; returns how many moved. Each is a system command with an idempotency key
    /// naming the deadline and the calendar's revision, so a publication moves a deadline
    /// once even if this runs again (after a crash, on the next open).
    pub(super) fn recompute_provisional_deadlines(
        &self,
        cause: Option<CausationId>,
    ) -> Result<usize, EngineError> {
        self.deadlines.catch_up(&*self.log)?;
        let in_force = self.calendar_in_force();
        let calendar = in_force.calendar.clone();
        let system = Acting::system(UnitId::new("system").expect("a valid unit id"));
        let mut moved = 0;
        for (target, seq) in self.deadlines.recomputable(|year| calendar.covers(year)) {
            let key = IdempotencyKey::new(format!(
                "recompute:{}:{seq}:{}",
                target.stream_name(),
                in_force.revision()
            ))
            .expect("stream names and numbers make a valid key");
            let how = How {
                key: Some(Keyed::system(key)),
                correlation: None,
                causation: cause,
            };
            let result = self.on_deadline(
                &system,
                target,
                CaseCommand::RecomputeDeadline { seq },
                DirectiveCommand::RecomputeDeadline { seq },
                &how,
            );
            let events = match result {
                Ok(events) => events,
                // Refused (the case is gone from under the index): nothing to move.
                Err(SubmitError::Rejected(_)) => 0,
                Err(SubmitError::Engine(e)) => return Err(e),
            };
            moved += events;
        }
        self.deadlines.catch_up(&*self.log)?;
        Ok(moved)
    }
}

/// The time zone a store recorded (`None`: it never recorded one, and keeps Asia/Shanghai's
/// time), read from its log: for tools that read a stopped store without opening an engine.
///
/// # Errors
/// [`EngineError`] when the log cannot be read or its calendar stream does not decode.
pub fn recorded_zone(
    log: &dyn crate::store::EventStore,
) -> Result<Option<crate::calendar::Zone>, EngineError> {
    let loaded = super::load::load::<CalendarYears>(
        log,
        &crate::domain::workflow::DefinitionRegistry::built_in(),
        &calendar_stream(),
    )?;
    loaded
        .state
        .zone
        .map(|name| {
            crate::calendar::Zone::named(&name)
                .map_err(|e| EngineError::Config(format!("the store's recorded time zone: {e}")))
        })
        .transpose()
}

impl Stored for CalendarYears {
    fn cache(engine: &Engine) -> Option<&RwLock<Loaded<Self>>> {
        Some(&engine.calendar.stream)
    }

    fn outcome(done: &Executed<Self>, command: &CalendarCommand) -> Outcome {
        let year = match command {
            CalendarCommand::PublishYear { schedule, .. } => schedule.year,
            CalendarCommand::SetZone { .. } => 0,
        };
        Outcome::Calendar {
            year,
            revision: done.state.years.get(&year).map_or(0, |y| y.revision),
            events: done.events,
            recomputed: 0,
            position: done.position,
        }
    }
}
