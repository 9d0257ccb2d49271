//! Loading an aggregate: read its stream page by page, decode each event, fold it with the
//! aggregate's `apply`. One fold for every aggregate.

use super::EngineError;
use crate::domain::aggregate::{Aggregate, Fold};
use crate::domain::workflow::DefinitionRegistry;
use crate::event::{DomainEvent, RecordedEvent};
use crate::ids::{StreamId, Version};
use crate::store::EventStore;

/// How many events one read takes.
const PAGE: usize = 1024;

/// An aggregate's state and the version of its stream it is as of (`None`: no events).
#[derive(Debug)]
pub(crate) struct Loaded<A: Aggregate> {
    pub(crate) state: A::State,
    pub(crate) version: Option<Version>,
}

impl<A: Aggregate> Default for Loaded<A> {
    fn default() -> Self {
        Self {
            state: A::State::default(),
            version: None,
        }
    }
}

impl<A: Aggregate> Clone for Loaded<A> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            version: self.version,
        }
    }
}

/// Decodes a recorded event as a domain event, naming the position when it does not decode.
pub(crate) fn decode<E: DomainEvent>(event: &RecordedEvent) -> Result<E, EngineError> {
    event.decode::<E>().map_err(|e| EngineError::Decode {
        position: event.position,
        reason: e.to_string(),
    })
}

/// Folds the events of `id`'s stream after `loaded.version` into `loaded`, while `keep`
/// accepts them (it sees each event before it is folded; the first it refuses ends the
/// fold). The one fold of the engine: loading, catching a cache up, and reading a state as
/// of a version or a moment all go through it.
pub(crate) fn fold_into<A: Aggregate>(
    log: &dyn EventStore,
    definitions: &DefinitionRegistry,
    stream: &StreamId,
    loaded: &mut Loaded<A>,
    mut keep: impl FnMut(&RecordedEvent, &A::Event) -> bool,
) -> Result<(), EngineError> {
    let mut from = loaded.version.map_or(Version::FIRST, Version::next);
    loop {
        let page = log.read_stream(stream, from, PAGE)?;
        let full = page.len() == PAGE;
        for recorded in &page {
            let event: A::Event = decode(recorded)?;
            if !keep(recorded, &event) {
                return Ok(());
            }
            A::apply(
                &mut loaded.state,
                &event,
                &Fold {
                    version: recorded.version,
                    definitions,
                },
            );
            loaded.version = Some(recorded.version);
        }
        match page.last() {
            Some(last) if full => from = last.version.next(),
            _ => return Ok(()),
        }
    }
}

/// The whole state of the aggregate whose stream is `stream`.
pub(crate) fn load<A: Aggregate>(
    log: &dyn EventStore,
    definitions: &DefinitionRegistry,
    stream: &StreamId,
) -> Result<Loaded<A>, EngineError> {
    let mut loaded = Loaded::default();
    fold_into(log, definitions, stream, &mut loaded, |_, _| true)?;
    Ok(loaded)
}
