//! The small second helper, for the aggregates that are not cases (the org chart, directives
//! and their parts, list items, merchants' standing, persons): the same given / when / then,
//! over a [`Table`]: an aggregate as a table of the fixture sees it (which instance, the
//! events always there). Each table decides through the aggregate's one `Aggregate` impl.

use std::fmt::Debug;

use civicflow_core::domain::org::Acting;
use civicflow_core::domain::{Context, Rejection};
use civicflow_core::Timestamp;

use super::fixture::{at, built_in, calendar, chart, NOW};
use super::scenario::readable;

/// An aggregate as a table of the fixture sees it: its events folded into a state (the real
/// `Aggregate::apply`), a command decided on the fixture's instance (the real
/// `Aggregate::decide`).
pub trait Table {
    type State;
    type Command: Debug + Clone;
    type Event: Debug + PartialEq + Clone;

    /// Events that are always there before `given` (shown as such in failures).
    fn background() -> Vec<Self::Event> {
        Vec::new()
    }

    fn fold(events: &[Self::Event]) -> Self::State;

    fn decide(
        state: &Self::State,
        command: &Self::Command,
        ctx: &Context<'_>,
    ) -> Result<Vec<Self::Event>, Rejection>;
}

/// Given events of `A`, decided at [`NOW`] unless `.at(..)` says otherwise.
pub struct Spec<A: Table> {
    given: Vec<A::Event>,
    now: Timestamp,
}

impl<A: Table> Spec<A> {
    pub fn new() -> Self {
        Self {
            given: Vec::new(),
            now: at(NOW),
        }
    }

    pub fn given(mut self, events: impl IntoIterator<Item = A::Event>) -> Self {
        self.given.extend(events);
        self
    }

    pub fn at(mut self, local: &str) -> Self {
        self.now = at(local);
        self
    }

    pub fn when(self, acting: Acting, command: A::Command) -> SpecWhen<A> {
        SpecWhen {
            spec: self,
            acting,
            command,
        }
    }
}

/// A spec with its command.
pub struct SpecWhen<A: Table> {
    spec: Spec<A>,
    acting: Acting,
    command: A::Command,
}

impl<A: Table> SpecWhen<A> {
    pub fn decide(&self) -> Result<Vec<A::Event>, Rejection> {
        let mut events = A::background();
        events.extend(self.spec.given.iter().cloned());
        let state = A::fold(&events);
        let ctx = Context {
            acting: &self.acting,
            org: chart(),
            definitions: built_in(),
            time: calendar(),
            now: self.spec.now,
        };
        A::decide(&state, &self.command, &ctx)
    }

    pub fn check(&self, expected: &Result<Vec<A::Event>, Rejection>) -> Result<(), String> {
        let actual = self.decide();
        if &actual == expected {
            return Ok(());
        }
        let background = if A::background().is_empty() {
            String::new()
        } else {
            "    (the fixture)\n".to_owned()
        };
        Err(format!(
            "at {}\ngiven:\n{background}{}\nwhen {} as {} at {}:\n    {}\nthen (expected):\n{}\nactual:\n{}",
            readable(&format!("Timestamp({})", self.spec.now.as_unix_micros())),
            list(&self.spec.given),
            self.acting.actor,
            self.acting.role,
            self.acting.unit,
            readable(&format!("{:?}", self.command)),
            show(expected),
            show(&actual),
        ))
    }

    #[track_caller]
    pub fn then(self, expected: Vec<A::Event>) {
        if let Err(message) = self.check(&Ok(expected)) {
            panic!("{message}");
        }
    }

    #[track_caller]
    pub fn then_rejected(self, expected: Rejection) {
        if let Err(message) = self.check(&Err(expected)) {
            panic!("{message}");
        }
    }
}

fn list<T: Debug>(items: &[T]) -> String {
    if items.is_empty() {
        return "    (nothing)".to_owned();
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| format!("    {}. {}", i + 1, readable(&format!("{item:?}"))))
        .collect::<Vec<_>>()
        .join("\n")
}

fn show<E: Debug>(outcome: &Result<Vec<E>, Rejection>) -> String {
    match outcome {
        Ok(events) => list(events),
        Err(rejection) => format!(
            "    rejected: {}\n    ({rejection})",
            readable(&format!("{rejection:?}"))
        ),
    }
}

/// A row of a table of specs.
pub struct SpecRow<A: Table> {
    when: SpecWhen<A>,
    then: Result<Vec<A::Event>, Rejection>,
}

pub fn ok<A: Table>(when: SpecWhen<A>, events: Vec<A::Event>) -> SpecRow<A> {
    SpecRow {
        when,
        then: Ok(events),
    }
}

pub fn no<A: Table>(when: SpecWhen<A>, rejection: Rejection) -> SpecRow<A> {
    SpecRow {
        when,
        then: Err(rejection),
    }
}

/// Runs every row and fails with all the rows that did not come out as expected.
#[track_caller]
pub fn run_specs<A: Table>(table: &str, rows: &[SpecRow<A>]) {
    let failures: Vec<String> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, row)| {
            row.when
                .check(&row.then)
                .err()
                .map(|m| format!("--- {table} row {i} ---\n{m}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} rows of {table} failed:\n\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n\n")
    );
}
