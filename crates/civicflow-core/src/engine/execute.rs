//! The one command path: load, decide, append with expected versions, decide again on a
//! conflict. Every command of [`Engine::submit`] goes through [`Engine::execute`].
//!
//! It is written once, as an `async fn` over how the append is waited for ([`Wait`]): a
//! blocking caller runs it with the log's synchronous append, which never suspends, so
//! [`block_on`] polls it once; the service's openings await the log's commit on their own
//! task ([`Engine::open_case_async`]) without a thread of their own.

use std::collections::VecDeque;
use std::future::{ready, Future, Ready};
use std::sync::{Arc, RwLock};
use std::task::{Context as TaskContext, Poll, Wake, Waker};

use super::load::{self, Loaded};
use super::{read, Engine, EngineError, Outcome, SubmitError};
use crate::domain::access::{Access, AccessCommand, TokenId};
use crate::domain::aggregate::{Aggregate, Decision};
use crate::domain::case::{Case, CaseCommand, CaseState};
use crate::domain::directive::{Directive, Part};
use crate::domain::lists::ListItem;
use crate::domain::merchants::Standing;
use crate::domain::org::{Acting, Org};
use crate::domain::person::Person;
use crate::domain::{Context, Rejection};
use crate::error::AppendError;
use crate::event::{AppendRequest, Appended, NewEvent, StreamWrite};
use crate::ids::{CaseId, CorrelationId, ExpectedVersion, IdempotencyKey, Position, StreamId};
use crate::store::{AppendResult, Completion, EventStore};

/// How many times a command is decided in all before a conflict is given up on.
pub(super) const ATTEMPTS: u32 = 5;

/// How many follow-ups one decision may set off in all (a merge sets off one).
const FOLLOW_UPS_MAX: usize = 16;

/// Which instance a command is for.
pub(super) enum Target<A: Aggregate> {
    /// One that may exist: its stream is loaded.
    Existing(A::Id),
    /// One whose id the engine has just minted (UUID v7): its stream cannot exist yet, so
    /// nothing is read before deciding, and a retry with the same idempotency key is
    /// recognised by the key alone.
    New(A::Id),
}

/// What a command did to its aggregate.
#[derive(Debug)]
pub(super) struct Executed<A: Aggregate> {
    pub(super) id: A::Id,
    /// The state after the command.
    pub(super) state: A::State,
    /// Events written to the aggregate's own stream (0: nothing changed, or a replay).
    pub(super) events: usize,
    /// Streams opened beside it (a directive's parts).
    pub(super) created: usize,
    /// The log position the command reached: its last event, the last event of the earlier
    /// append it replays, or the head when it wrote nothing.
    pub(super) position: Option<Position>,
}

impl<A: Stored> Executed<A> {
    /// The answer to the caller of `command`.
    pub(super) fn outcome(&self, command: &A::Command) -> Outcome {
        A::outcome(self, command)
    }
}

/// Side effects that must precede the append, run once after the first decision (also when
/// it writes nothing): the vault keeps a requester's details, erasing destroys a key.
pub(super) type BeforeAppend<'a> = Option<&'a (dyn Fn() -> Result<(), SubmitError> + Sync)>;

/// What the engine keeps of each aggregate besides the trait: a cache, how it answers, how
/// a keyed retry is recognised.
pub(super) trait Stored: Aggregate {
    /// The copy the engine keeps in memory and catches up from the log (the org chart,
    /// which every decision consults).
    fn cache(_engine: &Engine) -> Option<&RwLock<Loaded<Self>>> {
        None
    }

    /// The answer to the caller of `command`.
    fn outcome(executed: &Executed<Self>, command: &Self::Command) -> Outcome;

    /// The instance an earlier append with the same idempotency key opened.
    fn opened_by(_appended: &Appended) -> Option<Self::Id> {
        None
    }

    /// Refuses to answer a keyed retry with an earlier append that was another request.
    ///
    /// # Errors
    /// [`Rejection::Invalid`] on `idempotency_key`.
    fn check_replay(_state: &Self::State, _command: &Self::Command) -> Result<(), Rejection> {
        Ok(())
    }
}

/// The streams a decision writes, encoded, with their expected versions.
struct Staged<A: Aggregate> {
    /// The aggregate's own new events (folded into the answer's state).
    own: Vec<A::Event>,
    writes: Vec<StreamWrite>,
    created: usize,
}

impl Engine {
    /// Runs a command on one aggregate to the end, blocking the thread.
    pub(super) fn execute<A: Stored>(
        &self,
        acting: &Acting,
        target: Target<A>,
        command: &A::Command,
        key: Option<IdempotencyKey>,
        before_append: BeforeAppend<'_>,
    ) -> Result<Executed<A>, SubmitError> {
        block_on(self.run(acting, target, command, key, before_append, Blocking))
    }

    /// [`Engine::execute`] that awaits the log's commit instead of blocking a thread.
    pub(super) async fn execute_async<A: Stored>(
        &self,
        acting: &Acting,
        target: Target<A>,
        command: &A::Command,
        key: Option<IdempotencyKey>,
        before_append: BeforeAppend<'_>,
    ) -> Result<Executed<A>, SubmitError> {
        self.run(acting, target, command, key, before_append, Awaiting)
            .await
    }

    /// The one path.
    async fn run<A: Stored, W: Wait>(
        &self,
        acting: &Acting,
        target: Target<A>,
        command: &A::Command,
        key: Option<IdempotencyKey>,
        before_append: BeforeAppend<'_>,
        wait: W,
    ) -> Result<Executed<A>, SubmitError> {
        self.check_writable()?;
        let (id, mut fresh) = match target {
            Target::Existing(id) => (id, false),
            Target::New(id) => (id, true),
        };
        if let (true, Some(key)) = (fresh, &key) {
            if let Some(replayed) = self.replayed::<A>(command, key)? {
                return Ok(replayed);
            }
        }
        let stream = A::stream(&id)?;
        let mut hooked = false;
        let mut attempt = 1;
        loop {
            let loaded = if fresh {
                Loaded::default()
            } else {
                self.load::<A>(&stream)?
            };
            let staged = self.stage(acting, &id, &stream, &loaded, command)?;
            if !hooked {
                hooked = true;
                if let Some(hook) = before_append {
                    hook()?;
                }
            }
            if staged.writes.is_empty() {
                return Ok(Executed {
                    id,
                    state: loaded.state,
                    events: 0,
                    created: 0,
                    position: self.log.head().map(|h| h.position),
                });
            }
            let mut request = AppendRequest::to_streams(
                staged.writes,
                acting.to_log_actor(),
                CorrelationId::new_v7(self.now()),
            );
            request.idempotency_key = key.clone();
            match wait.append(&*self.log, request).await {
                Ok(Ok(appended)) => {
                    return Ok(self.applied(
                        id,
                        &stream,
                        loaded,
                        staged.own,
                        staged.created,
                        &appended,
                    ))
                }
                Ok(Err(_)) if attempt < ATTEMPTS => {
                    // Another writer got there first: decide again from what it wrote.
                    attempt += 1;
                    fresh = false;
                }
                Ok(Err(conflict)) => {
                    return Err(EngineError::Contention {
                        attempts: attempt,
                        stream: conflict.stream.to_string(),
                        expected: conflict.expected.to_string(),
                        actual: conflict
                            .actual
                            .map_or_else(|| "no stream".to_owned(), |v| format!("version {v}")),
                    }
                    .into())
                }
                // A concurrent retry with the same key got there first: answer what it got.
                Err(AppendError::IdempotencyKeyReused { .. }) if fresh => {
                    let key = key.as_ref().expect("only a keyed append reuses a key");
                    return self.replayed::<A>(command, key)?.ok_or_else(|| {
                        Rejection::invalid("idempotency_key", "was used for another request").into()
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The aggregate's state now: the engine's copy caught up with the log, or its stream
    /// read and folded.
    pub(super) fn load<A: Stored>(&self, stream: &StreamId) -> Result<Loaded<A>, EngineError> {
        let Some(cache) = A::cache(self) else {
            return load::load(&*self.log, &self.definitions, stream);
        };
        let mut loaded = read(cache).clone();
        let before = loaded.version;
        load::fold_into(
            &*self.log,
            &self.definitions,
            stream,
            &mut loaded,
            |_, _| true,
        )?;
        if loaded.version != before {
            let mut cached = cache
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if cached.version < loaded.version {
                *cached = loaded.clone();
            }
        }
        Ok(loaded)
    }

    /// Decides, and decides the follow-ups, into the writes of one append.
    fn stage<A: Stored>(
        &self,
        acting: &Acting,
        id: &A::Id,
        stream: &StreamId,
        loaded: &Loaded<A>,
        command: &A::Command,
    ) -> Result<Staged<A>, SubmitError> {
        let now = self.now();
        let decision = self.decide::<A>(acting, id, &loaded.state, command, now)?;
        let Decision {
            events: own,
            creates,
            follow_ups,
        } = decision;
        let mut writes = Vec::new();
        push_write(&mut writes, stream.clone(), expect(loaded), encode(&own)?);
        let created = creates.len();
        for create in creates {
            let events = create.encode().map_err(EngineError::from)?;
            push_write(
                &mut writes,
                create.stream,
                ExpectedVersion::NoStream,
                events,
            );
        }
        // Follow-ups are decided by the system, on the state each has now.
        let system = Acting::system(acting.unit.clone());
        let mut queue: VecDeque<(A::Id, A::Command)> = follow_ups.into();
        let mut decided = 0;
        while let Some((other, command)) = queue.pop_front() {
            decided += 1;
            if decided > FOLLOW_UPS_MAX {
                return Err(Rejection::invalid(
                    "command",
                    format!("sets off more than {FOLLOW_UPS_MAX} follow-ups"),
                )
                .into());
            }
            let other_stream = A::stream(&other)?;
            let other_loaded = self.load::<A>(&other_stream)?;
            let decision = self.decide::<A>(&system, &other, &other_loaded.state, &command, now)?;
            push_write(
                &mut writes,
                other_stream,
                expect(&other_loaded),
                encode(&decision.events)?,
            );
            for create in decision.creates {
                let events = create.encode().map_err(EngineError::from)?;
                push_write(
                    &mut writes,
                    create.stream,
                    ExpectedVersion::NoStream,
                    events,
                );
            }
            queue.extend(decision.follow_ups);
        }
        Ok(Staged {
            own,
            writes,
            created,
        })
    }

    /// Asks the aggregate, with the org chart as it is now.
    fn decide<A: Aggregate>(
        &self,
        acting: &Acting,
        id: &A::Id,
        state: &A::State,
        command: &A::Command,
        now: crate::clock::Timestamp,
    ) -> Result<Decision<A>, Rejection> {
        let org = read(&self.org);
        let ctx = Context {
            acting,
            org: &org.state,
            definitions: &self.definitions,
            time: &self.calendar,
            now,
        };
        A::decide(id, state, command, &ctx)
    }

    /// The answer once the append is durable: the new events folded into the state (and
    /// into the engine's copy, when it keeps one and nobody moved it meanwhile).
    fn applied<A: Stored>(
        &self,
        id: A::Id,
        stream: &StreamId,
        mut loaded: Loaded<A>,
        own: Vec<A::Event>,
        created: usize,
        appended: &Appended,
    ) -> Executed<A> {
        let before = loaded.version;
        if let Some(written) = appended.streams.iter().find(|s| &s.stream == stream) {
            for (i, event) in own.iter().enumerate() {
                let version = written.first_version.plus(i as u64);
                A::apply(
                    &mut loaded.state,
                    event,
                    &crate::domain::aggregate::Fold {
                        version,
                        definitions: &self.definitions,
                    },
                );
                loaded.version = Some(version);
            }
        }
        if let Some(cache) = A::cache(self) {
            let mut cached = cache
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if cached.version == before {
                *cached = loaded.clone();
            }
        }
        Executed {
            id,
            state: loaded.state,
            events: own.len(),
            created,
            position: Some(appended.last_position),
        }
    }

    /// What an earlier append with `key` made of the command, if there was one.
    fn replayed<A: Stored>(
        &self,
        command: &A::Command,
        key: &IdempotencyKey,
    ) -> Result<Option<Executed<A>>, SubmitError> {
        let Some(appended) = self.log.idempotent_result(key).map_err(EngineError::from)? else {
            return Ok(None);
        };
        let other = || Rejection::invalid("idempotency_key", "was used for another request");
        let id = A::opened_by(&appended).ok_or_else(other)?;
        let loaded = self.load::<A>(&A::stream(&id)?)?;
        if loaded.version.is_none() {
            return Err(other().into());
        }
        A::check_replay(&loaded.state, command)?;
        Ok(Some(Executed {
            id,
            state: loaded.state,
            events: 0,
            created: 0,
            position: Some(appended.last_position),
        }))
    }
}

/// `NoStream` for a stream without events, its version otherwise.
fn expect<A: Aggregate>(loaded: &Loaded<A>) -> ExpectedVersion {
    loaded
        .version
        .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact)
}

fn encode<E: crate::event::DomainEvent>(events: &[E]) -> Result<Vec<NewEvent>, EngineError> {
    events
        .iter()
        .map(NewEvent::from_domain)
        .collect::<Result<_, _>>()
        .map_err(EngineError::from)
}

/// Adds a write, unless it has no events.
fn push_write(
    writes: &mut Vec<StreamWrite>,
    stream: StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) {
    if !events.is_empty() {
        writes.push(StreamWrite::new(stream, expected, events));
    }
}

// ---------------------------------------------------------------------------------------------
// How the path waits for the log

/// How the one path waits for an append.
trait Wait {
    /// The append, as something to await.
    type Appending: Future<Output = AppendResult>;

    fn append(&self, log: &dyn EventStore, request: AppendRequest) -> Self::Appending;
}

/// The log's synchronous append: done before the future is first polled.
struct Blocking;

impl Wait for Blocking {
    type Appending = Ready<AppendResult>;

    fn append(&self, log: &dyn EventStore, request: AppendRequest) -> Self::Appending {
        ready(log.append(request))
    }
}

/// The log's asynchronous append: the commit wakes the task.
struct Awaiting;

impl Wait for Awaiting {
    type Appending = Completion<AppendResult>;

    fn append(&self, log: &dyn EventStore, request: AppendRequest) -> Self::Appending {
        log.append_async(request)
    }
}

/// Runs a future to completion on this thread. With [`Blocking`] the one path never
/// suspends, so this polls once; a future that does suspend parks the thread until woken.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = TaskContext::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

// ---------------------------------------------------------------------------------------------
// Each aggregate's answer

impl Stored for Case {
    fn outcome(done: &Executed<Self>, _: &Self::Command) -> Outcome {
        Outcome::Case {
            case: done.id,
            stage: done
                .state
                .as_ref()
                .map(|s| s.stage.clone())
                .unwrap_or_default(),
            version: done.state.as_ref().and_then(|s| s.version),
            events: done.events,
            position: done.position,
        }
    }

    fn opened_by(appended: &Appended) -> Option<CaseId> {
        appended
            .streams
            .iter()
            .find_map(|s| CaseId::of_stream(&s.stream))
    }

    /// The same opening: the same workflow, unit, title and description.
    fn check_replay(state: &Option<CaseState>, command: &CaseCommand) -> Result<(), Rejection> {
        let (Some(state), CaseCommand::Open(open)) = (state, command) else {
            return Err(Rejection::invalid(
                "idempotency_key",
                "was used for another request",
            ));
        };
        let same = state.workflow.id == open.workflow
            && state.unit == open.unit
            && state.title == open.title
            && state.description == open.description;
        if same {
            Ok(())
        } else {
            Err(Rejection::invalid(
                "idempotency_key",
                "was used before for a different case (another workflow, unit, title or description)",
            ))
        }
    }
}

impl Stored for Directive {
    fn outcome(done: &Executed<Self>, _: &Self::Command) -> Outcome {
        Outcome::Directive {
            directive: done.id,
            parts: done.created,
            position: done.position,
        }
    }
}

impl Stored for Part {
    fn outcome(done: &Executed<Self>, _: &Self::Command) -> Outcome {
        Outcome::Directive {
            directive: done.id.0,
            parts: 1,
            position: done.position,
        }
    }
}

impl Stored for Org {
    fn cache(engine: &Engine) -> Option<&RwLock<Loaded<Self>>> {
        Some(&engine.org)
    }

    fn outcome(done: &Executed<Self>, _: &Self::Command) -> Outcome {
        Outcome::Org {
            events: done.events,
            position: done.position,
        }
    }
}

impl Stored for ListItem {
    fn outcome(done: &Executed<Self>, _: &Self::Command) -> Outcome {
        Outcome::ListItem {
            item: done.id,
            position: done.position,
        }
    }
}

impl Stored for Standing {
    fn outcome(done: &Executed<Self>, _: &Self::Command) -> Outcome {
        Outcome::Standing {
            unit: done.id.clone(),
            points: done.state.as_ref().and_then(|s| s.points()),
            position: done.position,
        }
    }
}

impl Stored for Person {
    fn outcome(done: &Executed<Self>, _: &Self::Command) -> Outcome {
        Outcome::Person {
            person: done.id,
            position: done.position,
        }
    }
}

impl Stored for Access {
    /// The token the command issued or revoked.
    fn outcome(done: &Executed<Self>, command: &AccessCommand) -> Outcome {
        Outcome::Token {
            token: match command {
                AccessCommand::Issue { hash, .. } => TokenId::of_hash(hash),
                AccessCommand::Revoke { token, .. } => token.clone(),
            },
            position: done.position,
        }
    }
}
