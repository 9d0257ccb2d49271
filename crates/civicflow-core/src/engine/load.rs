//! Loading aggregates: read a stream, decode each event, fold it with the aggregate's `apply`.

use std::collections::BTreeMap;

use super::EngineError;
use crate::domain::access::{self, AccessEvent, AccessState};
use crate::domain::case::{self, CaseEvent, CaseState};
use crate::domain::directive::{self, DirectiveEvent, DirectiveState, PartEvent, PartState};
use crate::domain::lists::{self, ListEvent, ListItemState};
use crate::domain::merchants::{self, StandingEvent, StandingState};
use crate::domain::org::{self, OrgChart, OrgEvent};
use crate::domain::person::{self, PersonEvent, PersonState};
use crate::domain::workflow::DefinitionRegistry;
use crate::event::{DomainEvent, RecordedEvent};
use crate::ids::{CaseId, DirectiveId, ListItemId, PersonId, StreamId, Version};
use crate::store::EventStore;

/// A case's state and its events, decoded.
pub(super) type LoadedCase = (Option<CaseState>, Vec<(RecordedEvent, CaseEvent)>);

/// A directive and the state of each of its parts, by index.
pub(super) type LoadedDirective = (DirectiveState, BTreeMap<u32, PartState>);

/// How many events one read takes.
const PAGE: usize = 1024;

/// Every event of a stream, in version order.
pub(super) fn read_stream(
    log: &dyn EventStore,
    stream: &StreamId,
) -> Result<Vec<RecordedEvent>, EngineError> {
    let mut events = Vec::new();
    let mut from = Version::FIRST;
    loop {
        let page = log.read_stream(stream, from, PAGE)?;
        let Some(last) = page.last() else { break };
        from = last.version.next();
        let full = page.len() == PAGE;
        events.extend(page);
        if !full {
            break;
        }
    }
    Ok(events)
}

/// Decodes a recorded event as a domain event, naming the position when it does not decode.
pub(super) fn decode<E: DomainEvent>(event: &RecordedEvent) -> Result<E, EngineError> {
    event.decode::<E>().map_err(|e| EngineError::Decode {
        position: event.position,
        reason: e.to_string(),
    })
}

/// A case's state after its first `upto` events (all when `None`), and the events.
pub(super) fn load_case(
    log: &dyn EventStore,
    definitions: &DefinitionRegistry,
    id: CaseId,
    upto: impl Fn(&RecordedEvent) -> bool,
) -> Result<LoadedCase, EngineError> {
    let mut state = None;
    let mut events = Vec::new();
    for recorded in read_stream(log, &id.stream())? {
        if !upto(&recorded) {
            break;
        }
        let event: CaseEvent = decode(&recorded)?;
        state = case::apply(state, &event, definitions, recorded.version);
        events.push((recorded, event));
    }
    Ok((state, events))
}

/// The org chart from its stream, and the stream's version.
pub(super) fn load_org(log: &dyn EventStore) -> Result<(OrgChart, Option<Version>), EngineError> {
    let mut chart = OrgChart::default();
    let mut version = None;
    for recorded in read_stream(log, &org::org_stream())? {
        let event: OrgEvent = decode(&recorded)?;
        org::apply(&mut chart, &event);
        version = Some(recorded.version);
    }
    Ok((chart, version))
}

/// A directive, and the state of each of its parts.
pub(super) fn load_directive(
    log: &dyn EventStore,
    id: DirectiveId,
) -> Result<Option<LoadedDirective>, EngineError> {
    let mut state = None;
    for recorded in read_stream(log, &id.stream())? {
        let event: DirectiveEvent = decode(&recorded)?;
        state = directive::apply_directive(state, &event);
    }
    let Some(state) = state else { return Ok(None) };
    let mut parts = BTreeMap::new();
    for info in &state.parts {
        if let Some(part) = load_part(log, id, info.index)? {
            parts.insert(info.index, part);
        }
    }
    Ok(Some((state, parts)))
}

/// One part of a directive.
pub(super) fn load_part(
    log: &dyn EventStore,
    id: DirectiveId,
    index: u32,
) -> Result<Option<PartState>, EngineError> {
    let mut state = None;
    for recorded in read_stream(log, &id.part_stream(index))? {
        let event: PartEvent = decode(&recorded)?;
        state = directive::apply_part(state, &event, recorded.version);
    }
    Ok(state)
}

/// A list item.
pub(super) fn load_list_item(
    log: &dyn EventStore,
    id: ListItemId,
) -> Result<Option<ListItemState>, EngineError> {
    let mut state = None;
    for recorded in read_stream(log, &id.stream())? {
        let event: ListEvent = decode(&recorded)?;
        state = lists::apply(state, &event, recorded.version);
    }
    Ok(state)
}

/// A unit's standing.
pub(super) fn load_standing(
    log: &dyn EventStore,
    stream: &StreamId,
) -> Result<Option<StandingState>, EngineError> {
    let mut state = None;
    for recorded in read_stream(log, stream)? {
        let event: StandingEvent = decode(&recorded)?;
        state = Some(merchants::apply(state, &event, recorded.version));
    }
    Ok(state)
}

/// A person's lifecycle, and the stream's version.
pub(super) fn load_access(log: &dyn EventStore) -> Result<AccessState, EngineError> {
    let mut state = AccessState::default();
    for recorded in read_stream(log, &access::access_stream())? {
        let event: AccessEvent = decode(&recorded)?;
        access::apply(&mut state, &event, recorded.version);
    }
    Ok(state)
}

pub(super) fn load_person(
    log: &dyn EventStore,
    id: PersonId,
) -> Result<(PersonState, Option<Version>), EngineError> {
    let mut state = PersonState::default();
    let mut version = None;
    for recorded in read_stream(log, &id.stream())? {
        let event: PersonEvent = decode(&recorded)?;
        state = person::apply(state, &event);
        version = Some(recorded.version);
    }
    Ok((state, version))
}
