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
use crate::domain::case::Case;
use crate::domain::directive::{Directive, Part};
use crate::domain::lists::ListItem;
use crate::domain::merchants::Standing;
use crate::domain::org::{Acting, Org};
use crate::domain::person::Person;
use crate::domain::{Context, Rejection};
use crate::error::AppendError;
use crate::event::{AppendRequest, Appended, NewEvent, StreamWrite};
use crate::ids::{
    CaseId, CausationId, CorrelationId, DirectiveId, EventId, ExpectedVersion, IdempotencyKey,
    ListItemId, PersonId, Position, StreamId,
};
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
    /// nothing is read before deciding, and a retry with the same idempotency key finds the
    /// instance the first request made through the key.
    New(A::Id),
}

/// How a command is submitted besides who and what: its idempotency key, and where it sits
/// in a trace (the request's correlation id, what caused it).
#[derive(Debug, Clone, Default)]
pub(crate) struct How {
    /// Makes retries safe.
    pub(crate) key: Option<Keyed>,
    /// The request it belongs to (`None`: a new one).
    pub(crate) correlation: Option<CorrelationId>,
    /// What caused it (an event, for the scheduler's steps).
    pub(crate) causation: Option<CausationId>,
}

/// A command's idempotency key, as the log stores it, and the digest of the request
/// (`docs/engine.md`, "Retries").
#[derive(Debug, Clone)]
pub(crate) struct Keyed {
    /// The caller's key, for messages.
    pub(crate) given: IdempotencyKey,
    /// The key in the log: scoped to the actor.
    pub(crate) stored: IdempotencyKey,
    /// What makes a retry the same request.
    pub(crate) digest: [u8; 32],
}

impl Keyed {
    /// A key of the engine's own (the scheduler's `deadline:…`): stored as it is, and the
    /// same key is always the same request.
    pub(crate) fn system(key: IdempotencyKey) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(b"civicflow-system-key/1\0")
            .chain_update(key.as_str().as_bytes())
            .finalize()
            .into();
        Self {
            given: key.clone(),
            stored: key,
            digest,
        }
    }

    /// `key` of `acting`'s request, whose identifying bytes are `request`, digested with
    /// `digest` (the vault's keyed digest).
    pub(crate) fn new(
        acting: &Acting,
        key: IdempotencyKey,
        request: &[&[u8]],
        digest: impl FnOnce(&[&[u8]]) -> [u8; 32],
    ) -> Self {
        use sha2::{Digest, Sha256};
        // Per actor: two actors never collide, one actor's retry is recognised whichever
        // token or process it comes through. Hashed, because an actor id may hold characters
        // a key may not (Chinese names).
        let mut hasher = Sha256::new();
        hasher.update(b"civicflow-key/1\0");
        hasher.update((acting.actor.as_str().len() as u64).to_le_bytes());
        hasher.update(acting.actor.as_str().as_bytes());
        hasher.update(key.as_str().as_bytes());
        let scoped: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let stored = IdempotencyKey::new(format!("k1:{scoped}")).expect("67 id characters");
        let who = [
            acting.actor.as_str().as_bytes(),
            acting.role.as_str().as_bytes(),
            acting.unit.as_str().as_bytes(),
        ];
        let mut parts: Vec<&[u8]> = vec![b"civicflow-request/1"];
        for part in who.iter().chain(request) {
            parts.push(part);
            parts.push(b"\x1f");
        }
        Self {
            given: key,
            stored,
            digest: digest(&parts),
        }
    }
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
        how: &How,
        before_append: BeforeAppend<'_>,
    ) -> Result<Executed<A>, SubmitError> {
        block_on(self.run(acting, target, command, how, before_append, Blocking))
    }

    /// [`Engine::execute`] that awaits the log's commit instead of blocking a thread.
    pub(super) async fn execute_async<A: Stored>(
        &self,
        acting: &Acting,
        target: Target<A>,
        command: &A::Command,
        how: &How,
        before_append: BeforeAppend<'_>,
    ) -> Result<Executed<A>, SubmitError> {
        self.run(acting, target, command, how, before_append, Awaiting)
            .await
    }

    /// The one path.
    async fn run<A: Stored, W: Wait>(
        &self,
        acting: &Acting,
        target: Target<A>,
        command: &A::Command,
        how: &How,
        before_append: BeforeAppend<'_>,
        wait: W,
    ) -> Result<Executed<A>, SubmitError> {
        self.check_writable()?;
        let key = how.key.as_ref();
        // One correlation id for every attempt: they are one request.
        let correlation = how
            .correlation
            .unwrap_or_else(|| CorrelationId::new_v7(self.now()));
        let (id, mut fresh) = match target {
            Target::Existing(id) => (id, false),
            Target::New(id) => (id, true),
        };
        // A retry: answer what the first request got, decide nothing.
        if let Some(keyed) = key {
            if let Some(replayed) = self.replayed::<A>(keyed, (!fresh).then_some(&id))? {
                return Ok(replayed);
            }
        }
        let stream = A::stream(&id)?;
        let mut hooked = false;
        let mut attempt = 1;
        loop {
            // Another instance may have changed the chart since this one last looked.
            self.refresh_shared_org()?;
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
            let mut request =
                AppendRequest::to_streams(staged.writes, acting.to_log_actor(), correlation);
            request.causation_id = how.causation;
            if let Some(keyed) = key {
                request = request.with_idempotency(keyed.stored.clone(), keyed.digest);
            }
            match wait.append(&*self.log, request).await {
                // A concurrent retry with the same key and request got there first: what it
                // wrote is the answer, nothing of this attempt was written.
                Ok(Ok(appended)) if appended.deduplicated => {
                    let keyed = key.expect("only a keyed append is deduplicated");
                    return self.answer_again::<A>(keyed, (!fresh).then_some(&id), &appended);
                }
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
                // A concurrent request with the same key but another request got there first.
                Err(AppendError::IdempotencyKeyReused { .. }) => {
                    let keyed = key.expect("only a keyed append reuses a key");
                    return Err(Rejection::IdempotencyKeyReused {
                        key: keyed.given.to_string(),
                    }
                    .into());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// On a shared log, catches the engine's copy of the org chart up with what other
    /// instances wrote (on a log of its own, the engine's appends are all there is).
    pub(super) fn refresh_shared_org(&self) -> Result<(), EngineError> {
        if self.log.is_shared() {
            self.load::<Org>(&crate::domain::org::org_stream())?;
        }
        Ok(())
    }

    /// The aggregate's state now: the engine's copy caught up with the log, or its stream
    /// read and folded.
    pub(super) fn load<A: Stored>(&self, stream: &StreamId) -> Result<Loaded<A>, EngineError> {
        let Some(cache) = A::cache(self) else {
            return load::load(&*self.log, &self.definitions.current(), stream);
        };
        let mut loaded = read(cache).clone();
        let before = loaded.version;
        load::fold_into(
            &*self.log,
            &self.definitions.current(),
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
        for (field, case) in A::cases_named(command) {
            self.check_named_case(acting, field, case)?;
        }
        let now = self.now();
        let decision = self.decide::<A>(acting, id, &loaded.state, command, now)?;
        let Decision {
            events: own,
            creates,
            follow_ups,
        } = decision;
        let mut writes = Vec::new();
        // What the command's events set off (the streams it creates, the follow-ups) carries
        // the id of the event that caused it: an auditor sees why each happened.
        let mut own_events = encode(&own)?;
        let cause = own_events
            .get_mut(A::cause_of_consequences(&own))
            .map(|cause| {
                let id = EventId::new_v7(now);
                cause.event_id = Some(id);
                CausationId::from(id)
            });
        push_write(&mut writes, stream.clone(), expect(loaded), own_events);
        let created = creates.len();
        for create in creates {
            let events = create.encode().map_err(EngineError::from)?;
            push_write(
                &mut writes,
                create.stream,
                ExpectedVersion::NoStream,
                caused(events, cause),
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
                caused(encode(&decision.events)?, cause),
            );
            for create in decision.creates {
                let events = create.encode().map_err(EngineError::from)?;
                push_write(
                    &mut writes,
                    create.stream,
                    ExpectedVersion::NoStream,
                    caused(events, cause),
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

    /// Refuses a command that names, in `field`, a case that does not exist or that the
    /// caller may not see, with one answer for both ([`Aggregate::cases_named`]).
    fn check_named_case(
        &self,
        acting: &Acting,
        field: String,
        case: CaseId,
    ) -> Result<(), SubmitError> {
        let loaded = self.load::<Case>(&case.stream())?;
        let org = read(&self.org);
        if Case::may_see(&loaded.state, acting, &org.state) {
            Ok(())
        } else {
            Err(Rejection::FieldInvalid {
                field,
                reason: format!("case {case} does not exist"),
            }
            .into())
        }
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
        let calendar = self.calendar_in_force();
        let registry = self.definitions.current();
        let ctx = Context {
            acting,
            org: &org.state,
            definitions: &registry,
            time: &calendar,
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
        let registry = self.definitions.current();
        if let Some(written) = appended.streams.iter().find(|s| &s.stream == stream) {
            for (i, event) in own.iter().enumerate() {
                let version = written.first_version.plus(i as u64);
                A::apply(
                    &mut loaded.state,
                    event,
                    &crate::domain::aggregate::Fold {
                        version,
                        definitions: &registry,
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

    /// The first answer to a request made before with `keyed`'s key, or `None` when no
    /// durable append used the key. `existing`: the instance the command is for, when it
    /// names one (a new one is found through what the first append opened).
    ///
    /// # Errors
    /// [`Rejection::IdempotencyKeyReused`] when the key was used for another request.
    fn replayed<A: Stored>(
        &self,
        keyed: &Keyed,
        existing: Option<&A::Id>,
    ) -> Result<Option<Executed<A>>, SubmitError> {
        let Some(record) = self
            .log
            .idempotency_record(&keyed.stored)
            .map_err(EngineError::from)?
        else {
            return Ok(None);
        };
        if record.fingerprint != keyed.digest {
            return Err(Rejection::IdempotencyKeyReused {
                key: keyed.given.to_string(),
            }
            .into());
        }
        self.answer_again::<A>(keyed, existing, &record.appended)
            .map(Some)
    }

    /// The answer the first request with `keyed`'s key got, from what its append wrote: the
    /// instance's state as of that append, the number of its events, the streams it opened
    /// and its last position.
    fn answer_again<A: Stored>(
        &self,
        keyed: &Keyed,
        existing: Option<&A::Id>,
        appended: &Appended,
    ) -> Result<Executed<A>, SubmitError> {
        let reused = || Rejection::IdempotencyKeyReused {
            key: keyed.given.to_string(),
        };
        let id = match existing {
            Some(id) => id.clone(),
            None => A::opened_by(appended).ok_or_else(reused)?,
        };
        let stream = A::stream(&id)?;
        let own = appended.streams.iter().find(|s| s.stream == stream);
        let mut loaded = Loaded::<A>::default();
        let last = appended.last_position;
        load::fold_into(
            &*self.log,
            &self.definitions.current(),
            &stream,
            &mut loaded,
            |recorded, _| recorded.position <= last,
        )?;
        let events = own.map_or(0, |s| {
            usize::try_from(s.last_version.get() - s.first_version.get() + 1).unwrap_or(usize::MAX)
        });
        let created = appended
            .streams
            .iter()
            .filter(|s| s.stream != stream && s.first_version == crate::ids::Version::FIRST)
            .count();
        Ok(Executed {
            id,
            state: loaded.state,
            events,
            created,
            position: Some(last),
        })
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

/// `events`, each caused by `cause` (when there is one).
fn caused(events: Vec<NewEvent>, cause: Option<CausationId>) -> Vec<NewEvent> {
    match cause {
        Some(cause) => events.into_iter().map(|e| e.caused_by(cause)).collect(),
        None => events,
    }
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
}

impl Stored for Directive {
    fn opened_by(appended: &Appended) -> Option<DirectiveId> {
        appended
            .streams
            .iter()
            .find_map(|s| DirectiveId::of_stream(&s.stream))
    }

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
    fn opened_by(appended: &Appended) -> Option<ListItemId> {
        appended
            .streams
            .iter()
            .find_map(|s| ListItemId::of_stream(&s.stream))
    }

    fn outcome(done: &Executed<Self>, _: &Self::Command) -> Outcome {
        Outcome::ListItem {
            item: done.id,
            state: done.state.clone().map(Box::new),
            position: done.position,
        }
    }
}

impl Stored for Standing {
    fn outcome(done: &Executed<Self>, _: &Self::Command) -> Outcome {
        Outcome::Standing {
            unit: done.id.clone(),
            points: done.state.as_ref().and_then(|s| s.points()),
            state: done.state.clone().map(Box::new),
            position: done.position,
        }
    }
}

impl Stored for Person {
    fn opened_by(appended: &Appended) -> Option<PersonId> {
        appended
            .streams
            .iter()
            .find_map(|s| PersonId::of_stream(&s.stream))
    }

    fn outcome(done: &Executed<Self>, _: &Self::Command) -> Outcome {
        Outcome::Person {
            person: done.id,
            position: done.position,
        }
    }
}

impl Stored for Access {
    /// The token the command issued or revoked, or whose session it ended.
    fn outcome(done: &Executed<Self>, command: &AccessCommand) -> Outcome {
        Outcome::Token {
            token: match command {
                AccessCommand::Issue { hash, .. } => TokenId::of_hash(hash),
                AccessCommand::Revoke { token, .. } | AccessCommand::EndSession { token, .. } => {
                    token.clone()
                }
            },
            position: done.position,
        }
    }
}
