//! The one shape every aggregate has: state folded from its events, commands decided purely
//! into events, a stream of its own, and who may see it.
//!
//! The engine knows aggregates only through [`Aggregate`]: it loads one by folding its
//! stream with [`Aggregate::apply`], asks [`Aggregate::decide`], and appends the
//! [`Decision`] in one atomic append with the versions it loaded (`engine/execute.rs`). A
//! test gives events and a command and compares the decision (`testkit::Scenario`).

use std::any::Any;
use std::fmt;

use super::org::{Acting, OrgChart};
use super::workflow::DefinitionRegistry;
use super::{Context, Rejection};
use crate::event::{DomainEvent, NewEvent, PayloadError};
use crate::ids::{CaseId, StreamId, Version};

/// An aggregate: a consistency boundary with a stream of its own.
///
/// Implemented by marker types, one per aggregate: [`super::case::Case`],
/// [`super::directive::Directive`], [`super::directive::Part`], [`super::org::Org`],
/// [`super::lists::ListItem`], [`super::merchants::Standing`], [`super::person::Person`],
/// [`super::access::Access`].
pub trait Aggregate: Sized + 'static {
    /// What names one instance (a case id; `()` for an aggregate there is one of).
    type Id: Clone + fmt::Debug + Send + Sync + 'static;
    /// What its events fold into. `Default` is the state before any event.
    type State: Clone + Default + fmt::Debug + Send + Sync + 'static;
    /// What may be asked of it.
    type Command: Clone + fmt::Debug + Send + Sync + 'static;
    /// What it records.
    type Event: DomainEvent + Clone + fmt::Debug + PartialEq + Send + Sync + 'static;

    /// What it is called in answers ("case", "directive part").
    const KIND: &'static str;

    /// The stream that holds an instance's events.
    ///
    /// # Errors
    /// A [`Rejection`] when the id cannot name a stream.
    fn stream(id: &Self::Id) -> Result<StreamId, Rejection>;

    /// Decides what `command` does to the instance `id` in `state`; pure: everything else it
    /// may consult is in `ctx`.
    ///
    /// # Errors
    /// A [`Rejection`] saying which actor, role, unit, stage or field is at fault.
    fn decide(
        id: &Self::Id,
        state: &Self::State,
        command: &Self::Command,
        ctx: &Context<'_>,
    ) -> Result<Decision<Self>, Rejection>;

    /// Folds one event into the state.
    fn apply(state: &mut Self::State, event: &Self::Event, fold: &Fold<'_>);

    /// Whether `viewer` may see the instance (the org chart as it is now). Whoever may not
    /// is told it does not exist.
    fn may_see(state: &Self::State, viewer: &Acting, org: &OrgChart) -> bool;

    /// The other cases `command` names, with the field that names each (a merge's target, a
    /// case linked to a list item). Before deciding, the engine refuses the command when one
    /// of them does not exist or the caller may not see it, with the same answer for both, so
    /// that a command cannot reach into a case its caller cannot read, nor tell a hidden case
    /// from a missing one.
    fn cases_named(_command: &Self::Command) -> Vec<(String, CaseId)> {
        Vec::new()
    }

    /// Which of a decision's own `events` caused what the decision creates and sets off
    /// (the index of the event whose id the engine writes as their cause): the first by
    /// default, the issuing of a directive for its parts, the opening for its requester.
    fn cause_of_consequences(_events: &[Self::Event]) -> usize {
        0
    }
}

/// What an [`Aggregate::apply`] may need besides the event.
#[derive(Debug, Clone, Copy)]
pub struct Fold<'a> {
    /// The event's version in the aggregate's stream.
    pub version: Version,
    /// The workflow definitions (a case's state names its definition's stages).
    pub definitions: &'a DefinitionRegistry,
}

/// What a command decided: events for the aggregate's own stream, and what else goes into
/// the same atomic append.
#[derive(Debug)]
pub struct Decision<A: Aggregate> {
    /// Events for the aggregate's own stream (none: the command changes nothing).
    pub events: Vec<A::Event>,
    /// New streams of other aggregates with their first events: a directive's parts, the
    /// person registered with an opening. The append fails if one exists already.
    pub creates: Vec<Create>,
    /// Commands to other instances of the same aggregate, decided by the system in the same
    /// append (the case a duplicate is merged into accepts it).
    pub follow_ups: Vec<(A::Id, A::Command)>,
}

impl<A: Aggregate> Decision<A> {
    /// A decision that changes nothing.
    pub fn nothing() -> Self {
        Self::events(Vec::new())
    }

    /// Just these events, for the aggregate's own stream.
    pub fn events(events: Vec<A::Event>) -> Self {
        Self {
            events,
            creates: Vec::new(),
            follow_ups: Vec::new(),
        }
    }

    /// Also opens `stream` with `events` in the same append.
    #[must_use]
    pub fn creating<E: AnyEvent>(mut self, stream: StreamId, events: Vec<E>) -> Self {
        self.creates.push(Create::new(stream, events));
        self
    }

    /// Also has the system decide `command` on `id` in the same append.
    #[must_use]
    pub fn following(mut self, id: A::Id, command: A::Command) -> Self {
        self.follow_ups.push((id, command));
        self
    }

    /// Whether the decision writes nothing at all.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.creates.is_empty() && self.follow_ups.is_empty()
    }
}

impl<A: Aggregate> Clone for Decision<A> {
    fn clone(&self) -> Self {
        Self {
            events: self.events.clone(),
            creates: self.creates.clone(),
            follow_ups: self.follow_ups.clone(),
        }
    }
}

/// A new stream and its first events, of any aggregate.
#[derive(Debug, Clone)]
pub struct Create {
    /// The stream; it must not exist yet.
    pub stream: StreamId,
    events: Vec<std::sync::Arc<dyn AnyEvent>>,
}

impl Create {
    /// `stream` with `events`.
    pub fn new<E: AnyEvent>(stream: StreamId, events: Vec<E>) -> Self {
        Self {
            stream,
            events: events
                .into_iter()
                .map(|e| std::sync::Arc::new(e) as std::sync::Arc<dyn AnyEvent>)
                .collect(),
        }
    }

    /// The events as `E`, when they are of that type (tests compare them).
    pub fn events_as<E: AnyEvent>(&self) -> Option<Vec<&E>> {
        self.events
            .iter()
            .map(|e| e.as_any().downcast_ref::<E>())
            .collect()
    }

    /// How many events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The events, encoded for the log.
    ///
    /// # Errors
    /// [`PayloadError`] when an event does not encode.
    pub fn encode(&self) -> Result<Vec<NewEvent>, PayloadError> {
        self.events.iter().map(|e| e.encode()).collect()
    }
}

/// Any domain event, behind a pointer: what [`Create`] holds, since a decision may open
/// streams of other aggregates than its own.
pub trait AnyEvent: fmt::Debug + Send + Sync + 'static {
    /// The event for the log.
    ///
    /// # Errors
    /// [`PayloadError`] when it does not encode.
    fn encode(&self) -> Result<NewEvent, PayloadError>;

    /// For downcasting to the concrete event type.
    fn as_any(&self) -> &dyn Any;
}

impl<E: DomainEvent + fmt::Debug + Send + Sync + 'static> AnyEvent for E {
    fn encode(&self) -> Result<NewEvent, PayloadError> {
        NewEvent::from_domain(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Folds `events` (versions 1, 2, … of a stream) into the state they make.
pub fn fold<A: Aggregate>(events: &[A::Event], definitions: &DefinitionRegistry) -> A::State {
    let mut state = A::State::default();
    for (i, event) in events.iter().enumerate() {
        let version = Version::FIRST.plus(i as u64);
        A::apply(
            &mut state,
            event,
            &Fold {
                version,
                definitions,
            },
        );
    }
    state
}
