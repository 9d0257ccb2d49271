//! Log events as projections see them: the record, and the domain event its stream holds,
//! decoded at most once however many projections read it.

use std::ops::Deref;
use std::sync::OnceLock;

use civicflow_core::domain::case::CaseEvent;
use civicflow_core::domain::directive::{DirectiveEvent, PartEvent};
use civicflow_core::domain::lists::ListEvent;
use civicflow_core::domain::merchants::StandingEvent;
use civicflow_core::domain::org::OrgEvent;
use civicflow_core::domain::person::PersonEvent;
use civicflow_core::{
    CaseId, DirectiveId, DomainEvent, ListItemId, PayloadError, RecordedEvent, UnitId,
};

use crate::ProjectionError;

/// A log event handed to a [`Projection`](crate::Projection): the record (it derefs to
/// [`RecordedEvent`]) and its domain event, decoded on first use and shared by every
/// projection that reads the same event.
#[derive(Debug)]
pub struct Event {
    record: RecordedEvent,
    decoded: OnceLock<Result<Decoded, String>>,
}

impl Event {
    /// An event to apply (the runner makes these; tests and tools may too).
    pub fn new(record: RecordedEvent) -> Self {
        Self {
            record,
            decoded: OnceLock::new(),
        }
    }

    /// The log record.
    pub fn record(&self) -> &RecordedEvent {
        &self.record
    }

    /// The domain event (see [`decode_event`]).
    ///
    /// # Errors
    /// [`ProjectionError::Event`] naming the event's type and stream when the payload does not
    /// decode as its stream's kind of event: the projection stops at this event.
    pub fn decoded(&self) -> Result<&Decoded, ProjectionError> {
        self.decoded
            .get_or_init(|| decode_event(&self.record).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|reason| {
                ProjectionError::event(format!(
                    "{} at {} does not decode: {reason}",
                    self.record.event_type.as_str(),
                    self.record.stream.as_str()
                ))
            })
    }
}

impl Deref for Event {
    type Target = RecordedEvent;

    fn deref(&self) -> &RecordedEvent {
        &self.record
    }
}

/// A domain event, with what its stream says about it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Decoded {
    /// An event of a case.
    Case(CaseId, CaseEvent),
    /// An event of a directive's own stream.
    Directive(DirectiveId, DirectiveEvent),
    /// An event of one part (unit) of a directive.
    Part(DirectiveId, u32, PartEvent),
    /// An event of the org chart.
    Org(OrgEvent),
    /// An event of a list item.
    List(ListItemId, ListEvent),
    /// An event of a unit's standing.
    Standing(UnitId, StandingEvent),
    /// An event of a person's lifecycle.
    Person(PersonEvent),
    /// A stream civicflow's domain does not know (an embedding system's own).
    Other,
}

fn decode<E: DomainEvent>(event: &RecordedEvent) -> Result<E, PayloadError> {
    event.decode::<E>()
}

/// Decodes an event by its stream's category.
///
/// # Errors
/// [`PayloadError`] when the payload does not decode as its stream's kind of event.
pub fn decode_event(event: &RecordedEvent) -> Result<Decoded, PayloadError> {
    let stream = event.stream.as_str();
    let (category, rest) = stream.split_once('-').unwrap_or((stream, ""));
    Ok(match category {
        "case" => match CaseId::parse(rest) {
            Ok(id) => Decoded::Case(id, decode(event)?),
            Err(_) => Decoded::Other,
        },
        "directive" => match rest.split_once('.') {
            Some((id, index)) => match (DirectiveId::parse(id), index.parse::<u32>()) {
                (Ok(id), Ok(index)) => Decoded::Part(id, index, decode(event)?),
                _ => Decoded::Other,
            },
            None => match DirectiveId::parse(rest) {
                Ok(id) => Decoded::Directive(id, decode(event)?),
                Err(_) => Decoded::Other,
            },
        },
        "org" if stream == "org-chart" => Decoded::Org(decode(event)?),
        "list" => match ListItemId::parse(rest) {
            Ok(id) => Decoded::List(id, decode(event)?),
            Err(_) => Decoded::Other,
        },
        "merchant" => match UnitId::new(rest) {
            Ok(unit) => Decoded::Standing(unit, decode(event)?),
            Err(_) => Decoded::Other,
        },
        "person" => Decoded::Person(decode(event)?),
        _ => Decoded::Other,
    })
}
