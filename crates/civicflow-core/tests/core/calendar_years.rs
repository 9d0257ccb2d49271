//! Calendar years as data in the log, end to end on a real store: a deadline that reaches
//! past the calendar's data is provisional, a published year makes it final (a
//! `DeadlineRecomputed` caused by the publication) and the scheduler follows the new times; a
//! deadline already due is not moved; publishing is for a top unit's administrator, the same
//! days twice change nothing and other days are a revision; a release that carries the year
//! recomputes on open.
//!
//! Guards against a calendar that silently runs out (from 2027-01-01 the Spring Festival would
//! be counted as working days) and against recomputation that moves a deadline twice, moves
//! one already due, or is lost when the engine is reopened.

use std::sync::Arc;

use civicflow_core::calendar::{BusinessCalendar, LocalDate, YearSchedule, Zone};
use civicflow_core::domain::case::{CaseEvent, Channel};
use civicflow_core::domain::deadline::LadderStep;
use civicflow_core::domain::fields::FieldValue;
use civicflow_core::domain::Rejection;
use civicflow_core::engine::{Command, Engine, EngineConfig, Outcome, SubmitError, YearOrigin};
use civicflow_core::vault::MasterKey;
use civicflow_core::{CaseId, ManualClock, Timestamp};

use super::engine::{acting, build_chart, fields, open_engine, system, unit, Scratch};

/// `2027` as a test declares it (not the official notice): New Year's Day to Sunday off.
const YEAR_2027: &str = r#"
[2027]
source = "test schedule for 2027 (not the State Council's notice)"
off = [["2027-01-01", "2027-01-03"]]
"#;

/// A revision of it: the 4th too.
const YEAR_2027_REVISED: &str = r#"
[2027]
source = "test schedule for 2027, revised"
off = [["2027-01-01", "2027-01-04"]]
"#;

fn local(date: &str, hour: u16, minute: u16) -> Timestamp {
    Zone::shanghai()
        .from_local(LocalDate::parse(date).expect("a date"), hour * 60 + minute)
        .expect("a time")
}

fn schedule(text: &str) -> YearSchedule {
    let mut years = YearSchedule::parse_document(text).expect("a valid schedule");
    assert_eq!(years.len(), 1);
    years.remove(0)
}

fn publish(engine: &Engine, text: &str) -> Result<Outcome, SubmitError> {
    engine.submit(
        &acting("wang.admin", "community_admin", "tonghui"),
        Command::PublishCalendarYear {
            schedule: schedule(text),
        },
    )
}

/// A consumer dispute the grid accepts: 1 working day to act, reminded after 4 working hours,
/// breached 1 working day after the deadline.
fn open_dispute(engine: &Engine) -> CaseId {
    let Outcome::Case { case, .. } = engine
        .submit(
            &acting("li.grid1", "grid_worker", "grid-1"),
            Command::OpenCase {
                workflow: civicflow_core::domain::workflow::WorkflowId::new("consumer-dispute")
                    .expect("valid"),
                version: None,
                unit: unit("grid-1"),
                title: "退款纠纷 a refund refused".into(),
                description: String::new(),
                fields: fields(&[("kind", FieldValue::Choice("refund".into()))]),
                requester: None,
                channel: Channel::Door,
                place: None,
            },
        )
        .expect("opened")
    else {
        panic!("a case")
    };
    case
}

fn deadline(engine: &Engine, case: CaseId) -> civicflow_core::domain::deadline::ActiveDeadline {
    engine
        .case(&system(), case)
        .expect("readable")
        .state
        .deadline
        .expect("a running deadline")
}

/// A store with the chart and a dispute opened at 10:00 on Thursday 31 December 2026, the
/// day the release's calendar data ends: its deadline counts 2027 without holidays.
fn dispute_at_year_end(tag: &str) -> (Scratch, ManualClock, MasterKey, Engine, CaseId) {
    let scratch = Scratch::new(tag);
    let clock = ManualClock::new(local("2026-12-31", 10, 0));
    let key = MasterKey::generate().expect("randomness");
    let engine = open_engine(&scratch.0, &clock, &key);
    build_chart(&engine);
    let case = open_dispute(&engine);
    (scratch, clock, key, engine, case)
}

/// Guards the rule the scheduler's index relies on to forget provisional deadlines once they
/// fall due (issue 17): a deadline already due is not moved by a publication, before or
/// after a reopen (the index then comes from its snapshot), and stays as it was counted.
#[test]
fn a_provisional_deadline_already_due_is_not_moved_by_a_publication() {
    let (scratch, clock, key, engine, case) = dispute_at_year_end("calendar-due-reopen");
    let first = deadline(&engine, case);
    assert!(first.is_provisional());

    // Every step falls due before 2027 is published, and is taken.
    clock.set(local("2027-01-05", 9, 0));
    let taken = engine.run_due_deadlines().expect("a pass");
    assert_eq!(taken.len(), 3, "{taken:?}");
    assert_eq!(engine.pending_deadline_steps().expect("the index").0, 0);
    let check = |engine: &Engine, text: &str| {
        let Outcome::Calendar { recomputed, .. } = publish(engine, text).expect("published") else {
            panic!("a calendar outcome")
        };
        assert_eq!(recomputed, 0);
        let now = deadline(engine, case);
        assert_eq!(now.due_at, first.due_at);
        assert!(now.is_provisional());
    };
    check(&engine, YEAR_2027);
    drop(engine);
    let engine = open_engine(&scratch.0, &clock, &key);
    check(&engine, YEAR_2027_REVISED);
}

#[test]
fn a_deadline_past_the_calendar_is_provisional_until_its_year_is_published() {
    // Thursday 31 December 2026, 10:00: the release's data ends tonight.
    let (scratch, clock, key, engine, case) = dispute_at_year_end("calendar-provisional");

    // Without 2027's data, Friday 1 January counts as a working day.
    let first = deadline(&engine, case);
    assert_eq!(first.due_at, local("2027-01-01", 17, 30));
    assert_eq!(first.remind_at, Some(local("2026-12-31", 15, 30)));
    assert_eq!(first.breach_at, Some(local("2027-01-04", 17, 30)));
    assert!(first.is_provisional());
    let stamp = &first.basis.as_ref().expect("a basis").calendar;
    assert_eq!(
        (stamp.revision, stamp.missing_years.clone()),
        (0, vec![2027])
    );

    // Publishing 2027 moves it past the holiday, in one event caused by the publication.
    let Outcome::Calendar {
        year,
        revision,
        events,
        recomputed,
        ..
    } = publish(&engine, YEAR_2027).expect("published")
    else {
        panic!("a calendar outcome")
    };
    assert_eq!((year, revision, events, recomputed), (2027, 1, 1, 1));
    let now = deadline(&engine, case);
    assert_eq!(now.due_at, local("2027-01-04", 17, 30));
    assert_eq!(now.breach_at, Some(local("2027-01-05", 17, 30)));
    assert_eq!(now.remind_at, first.remind_at, "2026's part did not move");
    assert!(!now.is_provisional());
    assert_eq!(now.basis.as_ref().expect("a basis").calendar.revision, 1);

    let published = engine
        .log()
        .read_stream(
            &civicflow_core::domain::calendar_years::calendar_stream(),
            civicflow_core::Version::FIRST,
            10,
        )
        .expect("the calendar stream");
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].actor.id.as_str(), "wang.admin");
    let case_events = engine
        .log()
        .read_stream(&case.stream(), civicflow_core::Version::FIRST, 100)
        .expect("the case stream");
    let last = case_events.last().expect("events");
    assert!(matches!(
        last.decode::<CaseEvent>().expect("decodes"),
        CaseEvent::DeadlineRecomputed(ref e) if e.was_due_at == first.due_at
    ));
    assert_eq!(
        last.causation_id.map(|c| c.to_string()),
        Some(published[0].event_id.to_string()),
        "the recomputation names the publication as its cause"
    );

    // The same days again change nothing.
    let Outcome::Calendar {
        revision,
        events,
        recomputed,
        ..
    } = publish(&engine, YEAR_2027).expect("published again")
    else {
        panic!("a calendar outcome")
    };
    assert_eq!((revision, events, recomputed), (1, 0, 0));

    // The scheduler follows the new times: nothing escalates on the holiday.
    clock.set(local("2027-01-01", 17, 31));
    let taken = engine.run_due_deadlines().expect("a pass");
    assert!(
        taken.iter().all(|t| t.step != LadderStep::Escalate),
        "{taken:?}"
    );
    clock.set(local("2027-01-04", 17, 31));
    let taken = engine.run_due_deadlines().expect("a pass");
    assert!(
        taken
            .iter()
            .any(|t| t.step == LadderStep::Escalate && t.due == local("2027-01-04", 17, 30)),
        "{taken:?}"
    );

    // Reopened, the calendar has 2027 from the log.
    drop(engine);
    let engine = open_engine(&scratch.0, &clock, &key);
    assert!(engine.calendar().covers(2027));
    let overview = engine.calendar_overview().expect("the overview");
    let origin = |year: i32| {
        overview
            .years
            .iter()
            .find(|y| y.schedule.year == year)
            .map(|y| y.origin)
    };
    assert_eq!(origin(2026), Some(YearOrigin::Release));
    assert!(matches!(
        origin(2027),
        Some(YearOrigin::Published { revision: 1, .. })
    ));
    assert_eq!(overview.covered_through, Some(2027));
    assert_eq!(overview.coverage_ends_at, local("2028-01-01", 0, 0));
}

#[test]
fn a_deadline_already_due_is_not_moved() {
    let (_scratch, clock, _key, engine, case) = dispute_at_year_end("calendar-due");
    // Published only after the provisional deadline passed (and escalated): its steps ran
    // on it, so it stays.
    clock.set(local("2027-01-02", 9, 0));
    engine.run_due_deadlines().expect("a pass");
    let Outcome::Calendar { recomputed, .. } = publish(&engine, YEAR_2027).expect("published")
    else {
        panic!("a calendar outcome")
    };
    assert_eq!(recomputed, 0);
    let kept = deadline(&engine, case);
    assert_eq!(kept.due_at, local("2027-01-01", 17, 30));
    assert!(kept.is_provisional());
}

#[test]
fn only_a_top_units_administrator_publishes_and_other_days_are_a_revision() {
    let scratch = Scratch::new("calendar-publishers");
    let clock = ManualClock::new(local("2026-11-20", 10, 0));
    let key = MasterKey::generate().expect("randomness");
    let engine = open_engine(&scratch.0, &clock, &key);
    build_chart(&engine);
    let by = |who| {
        engine.submit(
            &who,
            Command::PublishCalendarYear {
                schedule: schedule(YEAR_2027),
            },
        )
    };
    assert!(matches!(
        by(acting("li.grid1", "grid_worker", "grid-1")),
        Err(SubmitError::Rejected(Rejection::RoleNotAllowed { .. }))
    ));
    assert!(
        !engine.calendar().covers(2027),
        "a refusal publishes nothing"
    );
    publish(&engine, YEAR_2027).expect("published");
    let Outcome::Calendar {
        revision, events, ..
    } = publish(&engine, YEAR_2027_REVISED).expect("revised")
    else {
        panic!("a calendar outcome")
    };
    assert_eq!((revision, events), (2, 1));
    assert!(!engine
        .calendar()
        .is_working_day(LocalDate::parse("2027-01-04").expect("a date")));
    // An empty notice is refused, naming the field.
    let mut nameless = schedule(YEAR_2027);
    nameless.source = "  ".into();
    let refused = engine
        .submit(
            &acting("wang.admin", "community_admin", "tonghui"),
            Command::PublishCalendarYear { schedule: nameless },
        )
        .expect_err("refused");
    assert!(
        matches!(&refused, SubmitError::Rejected(Rejection::FieldInvalid { field, .. }) if field == "source"),
        "{refused:?}"
    );
}

#[test]
fn a_release_that_carries_the_year_recomputes_provisional_deadlines_on_open() {
    let scratch = Scratch::new("calendar-release");
    let clock = ManualClock::new(local("2026-12-31", 10, 0));
    let key = MasterKey::generate().expect("randomness");
    let engine = open_engine(&scratch.0, &clock, &key);
    build_chart(&engine);
    let case = open_dispute(&engine);
    assert!(deadline(&engine, case).is_provisional());
    drop(engine);

    // The next release carries 2027 (the configuration's calendar has it).
    let mut calendar = BusinessCalendar::china();
    calendar.load_toml(YEAR_2027).expect("2027 loads");
    let engine = Engine::open(
        EngineConfig::new(&scratch.0)
            .clock(Arc::new(clock.clone()))
            .master_key(key.clone())
            .calendar(calendar),
    )
    .expect("reopens");
    let now = deadline(&engine, case);
    assert_eq!(now.due_at, local("2027-01-04", 17, 30));
    assert!(!now.is_provisional());
    // Once: another open finds nothing left to move.
    drop(engine);
    let mut calendar = BusinessCalendar::china();
    calendar.load_toml(YEAR_2027).expect("2027 loads");
    let engine = Engine::open(
        EngineConfig::new(&scratch.0)
            .clock(Arc::new(clock.clone()))
            .master_key(key)
            .calendar(calendar),
    )
    .expect("reopens");
    let recomputations = engine
        .log()
        .read_stream(&case.stream(), civicflow_core::Version::FIRST, 100)
        .expect("the case stream")
        .iter()
        .filter(|e| e.event_type.as_str() == "DeadlineRecomputed")
        .count();
    assert_eq!(recomputations, 1);
}

#[test]
fn a_store_keeps_the_first_time_zone_it_is_given() {
    let scratch = Scratch::new("calendar-zone");
    let clock = ManualClock::new(local("2026-06-01", 9, 0));
    let key = MasterKey::generate().expect("randomness");
    let open = |zone: Option<&str>| {
        let mut config = EngineConfig::new(&scratch.0)
            .clock(Arc::new(clock.clone()))
            .master_key(key.clone());
        if let Some(zone) = zone {
            config = config.time_zone(Zone::named(zone).expect("a zone"));
        }
        Engine::open(config)
    };
    // A store never given a zone keeps Asia/Shanghai's time and records nothing.
    let engine = open(None).expect("opens");
    assert_eq!(engine.calendar().zone().name(), "Asia/Shanghai");
    assert_eq!(engine.calendar_overview().expect("overview").revision, 0);
    drop(engine);
    // The first zone given is recorded, as an event of the calendar stream.
    let engine = open(Some("Europe/Berlin")).expect("opens");
    assert_eq!(engine.calendar().zone().name(), "Europe/Berlin");
    assert_eq!(engine.calendar_overview().expect("overview").revision, 1);
    drop(engine);
    // Reopened without one, the store's zone is in force; with the same, nothing changes.
    let engine = open(None).expect("opens");
    assert_eq!(engine.calendar().zone().name(), "Europe/Berlin");
    assert_eq!(
        civicflow_core::engine::recorded_zone(&**engine.log())
            .expect("readable")
            .map(|z| z.name().to_owned()),
        Some("Europe/Berlin".to_owned())
    );
    drop(engine);
    let engine = open(Some("Europe/Berlin")).expect("opens");
    assert_eq!(engine.calendar_overview().expect("overview").revision, 1);
    drop(engine);
    // Another zone is refused, saying which one the store keeps.
    let refused = open(Some("America/New_York")).expect_err("refused");
    assert!(refused.to_string().contains("Europe/Berlin"), "{refused}");
}
