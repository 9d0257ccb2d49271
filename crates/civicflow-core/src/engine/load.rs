//! Loading an aggregate: read its stream page by page, decode each event, fold it with the
//! aggregate's `apply`. One fold for every aggregate.

use std::collections::VecDeque;

use super::EngineError;
use crate::domain::aggregate::{Aggregate, Fold};
use crate::domain::workflow::DefinitionRegistry;
use crate::event::{DomainEvent, RecordedEvent};
use crate::ids::{Position, StreamId, Version};
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

/// An aggregate folded forward along the log, for reading it as it was beside another
/// stream's events (the org chart at each step of a case's audit). Each page of the stream is
/// read and each event decoded once, however many times it is advanced.
pub(crate) struct FoldAlong<'a, A: Aggregate> {
    log: &'a dyn EventStore,
    definitions: &'a DefinitionRegistry,
    stream: StreamId,
    loaded: Loaded<A>,
    /// Read and not yet folded, in version (and so position) order.
    ahead: VecDeque<RecordedEvent>,
    /// The last read found the stream's end.
    at_end: bool,
}

impl<'a, A: Aggregate> FoldAlong<'a, A> {
    /// Nothing folded yet: the state before the stream's first event.
    pub(crate) fn new(
        log: &'a dyn EventStore,
        definitions: &'a DefinitionRegistry,
        stream: StreamId,
    ) -> Self {
        Self {
            log,
            definitions,
            stream,
            loaded: Loaded::default(),
            ahead: VecDeque::new(),
            at_end: false,
        }
    }

    /// The state after every event of the stream at a position before `position`: the
    /// aggregate as it stood when the log's event at `position` was written. Positions only
    /// grow, so asking for an earlier position than before answers the later state.
    pub(crate) fn before(&mut self, position: Position) -> Result<&A::State, EngineError> {
        loop {
            if self.ahead.is_empty() && !self.at_end {
                let from = self.loaded.version.map_or(Version::FIRST, Version::next);
                let page = self.log.read_stream(&self.stream, from, PAGE)?;
                self.at_end = page.len() < PAGE;
                self.ahead = page.into();
            }
            let Some(next) = self.ahead.front() else {
                break;
            };
            if next.position >= position {
                break;
            }
            let event: A::Event = decode(next)?;
            A::apply(
                &mut self.loaded.state,
                &event,
                &Fold {
                    version: next.version,
                    definitions: self.definitions,
                },
            );
            self.loaded.version = Some(next.version);
            self.ahead.pop_front();
        }
        Ok(&self.loaded.state)
    }
}
