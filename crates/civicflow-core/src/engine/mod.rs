//! The engine: what an embedding system calls.
//!
//! It opens the event log, the personal-data vault, the workflow definitions and the business
//! calendar; for each command it loads the aggregate, asks the pure `decide`, and appends the
//! events (retrying when another writer got there first); it answers reads (a case, its
//! history, its state as of a version or a time, its audit) and runs the deadline scheduler.
//!
//! ```
//! use civicflow_core::domain::case::Channel;
//! use civicflow_core::domain::fields::{FieldValue, Fields};
//! use civicflow_core::domain::org::{Acting, ActorKind, OrgCommand, Tier};
//! use civicflow_core::domain::workflow::WorkflowId;
//! use civicflow_core::engine::{Command, Engine, EngineConfig, Outcome};
//! use civicflow_core::{ActorId, Role, UnitId};
//!
//! let dir = std::env::temp_dir().join(format!("civicflow-engine-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let engine = Engine::open(EngineConfig::new(&dir).with_generated_master_key())?;
//!
//! // The system builds a little chart: a community, a grid, and a grid worker.
//! let (tonghui, grid) = (UnitId::new("tonghui")?, UnitId::new("grid-1")?);
//! let system = Acting::system(tonghui.clone());
//! for (id, name, tier, parent) in [(&tonghui, "通惠社区", Tier::Community, None),
//!                                  (&grid, "第一网格", Tier::Grid, Some(tonghui.clone()))] {
//!     engine.submit(&system, Command::Org(OrgCommand::CreateUnit {
//!         id: id.clone(), name: name.into(), tier, parent }))?;
//! }
//! let li = ActorId::new("li.grid1")?;
//! engine.submit(&system, Command::Org(OrgCommand::RegisterActor {
//!     id: li.clone(), name: "李网格员".into(), kind: ActorKind::Person }))?;
//! engine.submit(&system, Command::Org(OrgCommand::GrantRole {
//!     actor: li.clone(), role: Role::new("grid_worker")?, unit: grid.clone() }))?;
//!
//! // The grid worker takes a request at the door and dispatches it to their own grid.
//! let worker = Acting::new(li, Role::new("grid_worker")?, grid.clone());
//! let category = Fields::from([("category".to_owned(), FieldValue::Choice("safety".into()))]);
//! let Outcome::Case { case, stage, .. } = engine.submit(&worker, Command::OpenCase {
//!     workflow: WorkflowId::new("service-request")?, version: None, unit: grid.clone(),
//!     title: "消防通道堵塞 fire lane blocked".into(), description: String::new(),
//!     fields: category, requester: None, channel: Channel::Door, place: None })? else { unreachable!() };
//! assert_eq!(stage, "received");
//!
//! // A wrong action is refused with the reason; nothing is written.
//! let refused = engine.submit(&worker, Command::Act {
//!     case, action: "close".into(), fields: Fields::new(), expected_version: None });
//! assert!(refused.unwrap_err().to_string().contains("close is not possible in stage received"));
//!
//! // The audit: every step with who, in which role and unit, when, and the chain check.
//! let audit = engine.audit(case)?;
//! assert!(audit.chain.is_intact());
//! assert_eq!(audit.steps[0].actor.role.as_str(), "grid_worker");
//! # drop(engine);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod audit;
mod load;
mod scheduler;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};

pub use audit::{
    audit_log, summarize, AuditStep, CaseAudit, DeadlineOutcome, DeadlineReport, HistoryEntry,
};
pub use scheduler::{SchedulerHandle, StepTaken};

use crate::calendar::BusinessCalendar;
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::domain::access::{self, AccessCommand, AccessState, TokenId};
use crate::domain::case::{self, CaseCommand, CaseEvent, CaseState, Channel, OpenCase, Place};
use crate::domain::directive::{self, DirectiveCommand, DirectiveKind, PartEvent, Progress};
use crate::domain::fields::Fields;
use crate::domain::lists::{self, ListCommand, ListKind};
use crate::domain::merchants::{self, StandingCommand, StandingState};
use crate::domain::org::{self, Acting, OrgChart, OrgCommand};
use crate::domain::person::{self, PersonEvent};
use crate::domain::workflow::{Action, Definition, DefinitionRegistry, WorkflowId};
use crate::domain::{Context, Rejection};
use crate::error::{AppendError, OpenError, ReadError};
use crate::event::{AppendRequest, DomainEvent, NewEvent, StreamWrite};
use crate::ids::{
    CaseId, CorrelationId, DirectiveId, ExpectedVersion, IdempotencyKey, ListItemId, PersonId,
    Position, StreamId, UnitId, Version,
};
use crate::store::{AppendResult, Durability, EventStore};
use crate::vault::{ContactDetails, MaskedContact, MasterKey, PersonData, Vault, VaultError};

/// An opening decided (its append goes beside it), to answer once the append is durable.
struct Opening {
    case: CaseId,
    /// The case's events.
    events: Vec<CaseEvent>,
}

/// How many times a command is decided again after another writer changed its aggregate.
const RETRIES: usize = 5;

/// Where an engine keeps its log and its vault.
///
/// [`Storage::embedded`] (the default of [`EngineConfig`]) opens both in the data directory;
/// an embedder with another backend builds one from its own [`EventStore`].
pub struct Storage {
    /// The event log.
    pub log: Arc<dyn EventStore>,
    /// The personal-data vault.
    pub vault: Vault,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("log", &self.log)
            .field("vault", &self.vault)
            .finish()
    }
}

/// How to open an [`Engine`].
#[derive(Debug)]
pub struct EngineConfig {
    /// The data directory: the embedded log in `log/`, the vault in `vault/`, the deadline
    /// index's snapshot.
    pub data_dir: PathBuf,
    /// The storage, when not the embedded one in `data_dir` (see [`Storage`]).
    pub storage: Option<Storage>,
    /// Where time comes from.
    pub clock: Arc<dyn Clock>,
    /// Working time for deadlines.
    pub calendar: BusinessCalendar,
    /// The workflow definitions.
    pub definitions: DefinitionRegistry,
    /// The key that wraps every person's key (see `docs/decisions/0004-personal-data.md`).
    pub master_key: Option<MasterKey>,
    /// Durability of the log.
    pub durability: Durability,
    /// The embedded log's page cache, in bytes.
    pub log_cache_bytes: u64,
}

impl EngineConfig {
    /// Defaults for `data_dir`: the system clock, China's calendar, the built-in workflows,
    /// fsync durability, and no master key yet (set one with [`EngineConfig::master_key`]).
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            storage: None,
            clock: Arc::new(SystemClock),
            calendar: BusinessCalendar::china(),
            definitions: DefinitionRegistry::built_in(),
            master_key: None,
            durability: Durability::Fsync,
            log_cache_bytes: 256 * 1024 * 1024,
        }
    }

    /// Uses this master key.
    pub fn master_key(mut self, key: MasterKey) -> Self {
        self.master_key = Some(key);
        self
    }

    /// Uses a fresh random master key (tests and examples: the vault is unreadable after).
    ///
    /// # Panics
    /// If the operating system has no randomness to give.
    pub fn with_generated_master_key(mut self) -> Self {
        self.master_key =
            Some(MasterKey::generate().expect("the operating system gives randomness"));
        self
    }

    /// Uses this clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses this calendar.
    pub fn calendar(mut self, calendar: BusinessCalendar) -> Self {
        self.calendar = calendar;
        self
    }

    /// Uses these definitions.
    pub fn definitions(mut self, definitions: DefinitionRegistry) -> Self {
        self.definitions = definitions;
        self
    }

    /// Sets the log's durability.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets the embedded log's page cache size in bytes (memory grows with the store up to it).
    pub fn log_cache_bytes(mut self, bytes: u64) -> Self {
        self.log_cache_bytes = bytes;
        self
    }

    /// Uses `storage` instead of the embedded storage in the data directory.
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = Some(storage);
        self
    }
}

/// Who asks, when a case is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requester {
    /// A person not seen before: their contact data goes into the vault.
    New(ContactDetails),
    /// A person already registered.
    Known(PersonId),
}

/// A command to the engine.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Command {
    /// Change the org chart.
    Org(OrgCommand),
    /// Open a case.
    OpenCase {
        /// The workflow.
        workflow: WorkflowId,
        /// Its version, `None` for the newest.
        version: Option<u32>,
        /// The unit it is filed at.
        unit: UnitId,
        /// Title.
        title: String,
        /// Description.
        description: String,
        /// Intake fields.
        fields: Fields,
        /// Who asks.
        requester: Option<Requester>,
        /// How it came in.
        channel: Channel,
        /// Where it is about, if the client said (public, unlike the requester; boxed: most
        /// openings have none).
        place: Option<Box<Place>>,
    },
    /// Issue or revoke an access token (see `domain::access`).
    Access(AccessCommand),
    /// Take an action on a case.
    Act {
        /// The case.
        case: CaseId,
        /// The action.
        action: String,
        /// Its fields.
        fields: Fields,
        /// The version the caller saw (refused if the case has moved on).
        expected_version: Option<Version>,
    },
    /// Move a case to another version of its workflow.
    MigrateCase {
        /// The case.
        case: CaseId,
        /// The version.
        to_version: u32,
    },
    /// Issue a directive to every unit below `unit`.
    IssueDirective {
        /// Title.
        title: String,
        /// What to do.
        body: String,
        /// Kind.
        kind: DirectiveKind,
        /// The issuing unit.
        unit: UnitId,
        /// How long each unit has.
        within: crate::calendar::Span,
    },
    /// The acting unit acknowledges its part of a directive.
    AcknowledgeDirective {
        /// The directive.
        directive: DirectiveId,
        /// A note.
        note: String,
    },
    /// The acting unit reports its part done.
    ReportDirective {
        /// The directive.
        directive: DirectiveId,
        /// What was done.
        note: String,
    },
    /// Add an item to one of the three lists.
    AddListItem {
        /// The list.
        list: ListKind,
        /// Title.
        title: String,
        /// Details.
        description: String,
        /// The unit.
        unit: UnitId,
    },
    /// Change, link or retire a list item.
    ListItem {
        /// The item.
        item: ListItemId,
        /// What to do.
        command: ListCommand,
    },
    /// Change a unit's standing (scores, flags, assessments, ratings).
    Standing {
        /// The unit.
        unit: UnitId,
        /// What to do.
        command: StandingCommand,
    },
    /// Register a person and keep their contact data in the vault.
    RegisterPerson {
        /// Their contact data.
        details: ContactDetails,
    },
    /// Erase a person: destroy their key, so their data can never be read again.
    ErasePerson {
        /// The person.
        person: PersonId,
        /// Why.
        reason: String,
    },
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The org chart changed (or was already so: no events).
    Org {
        /// Events written.
        events: usize,
    },
    /// A case was opened or changed.
    Case {
        /// The case.
        case: CaseId,
        /// Its stage now.
        stage: String,
        /// Its version now.
        version: Option<Version>,
        /// Events written.
        events: usize,
    },
    /// A directive was issued or a part changed.
    Directive {
        /// The directive.
        directive: DirectiveId,
        /// Parts reached (on issue) or the part changed.
        parts: usize,
    },
    /// A list item was added or changed.
    ListItem {
        /// The item.
        item: ListItemId,
    },
    /// A unit's standing changed.
    Standing {
        /// The unit.
        unit: UnitId,
        /// Its points now, if a cycle runs.
        points: Option<u8>,
    },
    /// A person was registered or erased.
    Person {
        /// The person.
        person: PersonId,
    },
    /// A token was issued or revoked (or was revoked already: no events).
    Token {
        /// The token.
        token: TokenId,
    },
}

/// Something other than a refusal went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Opening the log failed.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Appending failed.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// Reading failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A stored event does not decode as the domain event its stream holds.
    #[error("the event at position {position} does not decode: {reason}")]
    Decode {
        /// Its position.
        position: Position,
        /// Why.
        reason: String,
    },
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// Another writer kept changing the aggregate.
    #[error("gave up after {RETRIES} attempts: another writer kept changing {stream}")]
    Contention {
        /// The stream.
        stream: String,
    },
    /// The configuration is incomplete.
    #[error("configuration: {0}")]
    Config(String),
}

/// A command's result: refused (with why) or failed.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The domain refused the command; nothing was written.
    #[error("refused: {0}")]
    Rejected(#[from] Rejection),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<AppendError> for SubmitError {
    fn from(e: AppendError) -> Self {
        SubmitError::Engine(e.into())
    }
}

impl From<ReadError> for SubmitError {
    fn from(e: ReadError) -> Self {
        SubmitError::Engine(e.into())
    }
}

impl From<VaultError> for SubmitError {
    fn from(e: VaultError) -> Self {
        SubmitError::Engine(e.into())
    }
}

/// A case as a caller sees it.
#[derive(Debug, Clone)]
pub struct CaseView {
    /// Its state.
    pub state: CaseState,
    /// The definition it runs on.
    pub definition: Arc<Definition>,
    /// The actions the caller may take now.
    pub available_actions: Vec<Action>,
    /// The requester's contact data, masked (or erased, or none).
    pub contact: Contact,
}

/// A requester's contact data as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contact {
    /// The case has no requester.
    None,
    /// Masked (`李*`, `138****5678`).
    Masked(MaskedContact),
    /// The person was erased: their data can never be read again.
    Erased,
}

/// The civicflow engine.
pub struct Engine {
    log: Arc<dyn EventStore>,
    data_dir: PathBuf,
    vault: Vault,
    definitions: Arc<DefinitionRegistry>,
    calendar: BusinessCalendar,
    clock: Arc<dyn Clock>,
    org: RwLock<(OrgChart, Option<Version>)>,
    /// Org changes are decided and appended one at a time.
    org_writes: Mutex<()>,
    deadlines: scheduler::DeadlineIndex,
}

impl Drop for Engine {
    /// Saves the deadline index's snapshot, so that the next open need not read the whole
    /// log. A failure costs only that: the next open builds the index from the log.
    fn drop(&mut self) {
        let _ = self.deadlines.save(&*self.log);
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

impl Engine {
    /// Opens the engine on `config.data_dir`, then takes every deadline step that fell due
    /// while it was closed.
    ///
    /// # Errors
    /// [`EngineError`] when the log or the vault cannot be opened, or stored events do not
    /// decode.
    pub fn open(mut config: EngineConfig) -> Result<Self, EngineError> {
        let Storage { log, vault } = match config.storage.take() {
            Some(storage) => storage,
            None => Storage::embedded(&config)?,
        };
        let org = load::load_org(&*log)?;
        let definitions = Arc::new(config.definitions);
        let deadlines = scheduler::DeadlineIndex::open(&*log, &config.data_dir)?;
        let engine = Self {
            log,
            data_dir: config.data_dir,
            vault,
            definitions,
            calendar: config.calendar,
            clock: config.clock,
            org: RwLock::new(org),
            org_writes: Mutex::new(()),
            deadlines,
        };
        engine.run_due_deadlines()?;
        Ok(engine)
    }

    /// The event log underneath (for reads, subscriptions, verification).
    pub fn log(&self) -> &Arc<dyn EventStore> {
        &self.log
    }

    /// The workflow definitions.
    pub fn definitions(&self) -> &DefinitionRegistry {
        &self.definitions
    }

    /// The business calendar.
    pub fn calendar(&self) -> &BusinessCalendar {
        &self.calendar
    }

    /// The org chart now.
    pub fn org(&self) -> OrgChart {
        read(&self.org).0.clone()
    }

    /// The engine's data directory (the embedded store, the deadline index's snapshot).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The time on the engine's clock (the one its events are stamped and its deadlines
    /// run with).
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn context<'a>(&'a self, acting: &'a Acting, org: &'a OrgChart, now: Timestamp) -> Context<'a> {
        Context {
            acting,
            org,
            definitions: &self.definitions,
            time: &self.calendar,
            now,
        }
    }

    /// Appends events built from domain events: one write per stream, all or nothing.
    fn append<E: DomainEvent>(
        &self,
        acting: &Acting,
        writes: Vec<(StreamId, ExpectedVersion, Vec<E>)>,
        key: Option<IdempotencyKey>,
    ) -> Result<Result<crate::event::Appended, crate::event::Conflict>, EngineError> {
        let mut stream_writes = Vec::with_capacity(writes.len());
        for (stream, expected, events) in writes {
            if events.is_empty() {
                continue;
            }
            let events = events
                .iter()
                .map(NewEvent::from_domain)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| EngineError::Config(format!("an event does not encode: {e}")))?;
            stream_writes.push(StreamWrite::new(stream, expected, events));
        }
        let mut request = AppendRequest::to_streams(
            stream_writes,
            acting.to_log_actor(),
            CorrelationId::new_v7(self.now()),
        );
        request.idempotency_key = key;
        Ok(self.log.append(request)?)
    }

    /// Refuses a write at once while the log is poisoned, before anything is read (sled may
    /// fail reads too after a failed write, with words that do not say the log refuses writes).
    fn check_writable(&self) -> Result<(), SubmitError> {
        match self.log.write_refusal() {
            Some(refusal) => Err(SubmitError::Engine(EngineError::Append(refusal))),
            None => Ok(()),
        }
    }

    /// Submits a command as `acting`.
    ///
    /// # Errors
    /// [`SubmitError::Rejected`] with the domain's reason when the command is refused (nothing
    /// is written), [`SubmitError::Engine`] when storage fails.
    pub fn submit(&self, acting: &Acting, command: Command) -> Result<Outcome, SubmitError> {
        self.check_writable()?;
        match command {
            Command::Org(command) => self.submit_org(acting, &command),
            Command::Access(command) => self.submit_access(acting, &command),
            command @ Command::OpenCase { .. } => self.open_case_command(acting, command, None),
            Command::Act {
                case,
                action,
                fields,
                expected_version,
            } => self.submit_case(
                acting,
                case,
                &CaseCommand::Act {
                    action,
                    fields,
                    expected_version,
                },
                None,
            ),
            Command::MigrateCase { case, to_version } => {
                self.submit_case(acting, case, &CaseCommand::Migrate { to_version }, None)
            }
            Command::IssueDirective {
                title,
                body,
                kind,
                unit,
                within,
            } => {
                let directive = DirectiveId::new_v7(self.now());
                self.issue_directive(
                    acting,
                    &DirectiveCommand::Issue {
                        directive,
                        title,
                        body,
                        kind,
                        unit,
                        within,
                    },
                )
            }
            Command::AcknowledgeDirective { directive, note } => self.submit_part(
                acting,
                directive,
                None,
                &DirectiveCommand::Acknowledge { note },
                None,
            ),
            Command::ReportDirective { directive, note } => self.submit_part(
                acting,
                directive,
                None,
                &DirectiveCommand::Report { note },
                None,
            ),
            Command::AddListItem {
                list,
                title,
                description,
                unit,
            } => {
                let item = ListItemId::new_v7(self.now());
                self.submit_list(
                    acting,
                    item,
                    &ListCommand::Add {
                        item,
                        list,
                        title,
                        description,
                        unit,
                    },
                )
            }
            Command::ListItem { item, command } => self.submit_list(acting, item, &command),
            Command::Standing { unit, command } => self.submit_standing(acting, &unit, &command),
            Command::RegisterPerson { details } => {
                let person = PersonId::new_v7(self.now());
                let org = read(&self.org);
                let ctx = self.context(acting, &org.0, self.now());
                let events = person::decide_register(person, &Default::default(), &ctx)?;
                drop(org);
                self.vault.store(person, &details)?;
                self.append(
                    acting,
                    vec![(person.stream(), ExpectedVersion::NoStream, events)],
                    None,
                )?
                .map_err(|_| Rejection::AlreadyExists {
                    what: "person",
                    id: person.to_string(),
                })?;
                Ok(Outcome::Person { person })
            }
            Command::ErasePerson { person, reason } => {
                let (state, version) = load::load_person(&*self.log, person)?;
                let org = read(&self.org);
                let ctx = self.context(acting, &org.0, self.now());
                let events = person::decide_erase(person, &state, &reason, &ctx)?;
                drop(org);
                // Destroy the key first: if the append then fails, the data is gone already
                // and a retry records it; the other order could record an erasure that did
                // not happen.
                self.vault.erase(person)?;
                if !events.is_empty() {
                    let expected =
                        version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                    self.append(acting, vec![(person.stream(), expected, events)], None)?
                        .map_err(|c| EngineError::Contention {
                            stream: c.stream.to_string(),
                        })?;
                }
                Ok(Outcome::Person { person })
            }
        }
    }

    /// Submits a command with an idempotency key: a retry with the same key (say, after a
    /// timeout) answers what the first got and writes nothing. Only opening a case takes a
    /// key (the other commands carry the version they expect, which makes a retry safe).
    ///
    /// # Errors
    /// As [`Engine::submit`]; [`Rejection::Invalid`] on `idempotency_key` when the command is
    /// not an opening, or the key was used for a different case.
    pub fn submit_with_key(
        &self,
        acting: &Acting,
        command: Command,
        key: IdempotencyKey,
    ) -> Result<Outcome, SubmitError> {
        if !matches!(command, Command::OpenCase { .. }) {
            return Err(Rejection::invalid(
                "idempotency_key",
                "only opening a case takes an idempotency key",
            )
            .into());
        }
        if let Some(outcome) = self.replayed_opening(&command, &key)? {
            return Ok(outcome);
        }
        match self.open_case_command(acting, command.clone(), Some(key.clone())) {
            // A concurrent request with the same key got there first: answer what it got.
            Err(SubmitError::Engine(EngineError::Append(AppendError::IdempotencyKeyReused {
                ..
            }))) => self.replayed_opening(&command, &key)?.ok_or_else(|| {
                Rejection::invalid("idempotency_key", "was used for another request").into()
            }),
            other => other,
        }
    }

    /// The case an earlier opening with `key` made, if it opened the same case as `command`.
    fn replayed_opening(
        &self,
        command: &Command,
        key: &IdempotencyKey,
    ) -> Result<Option<Outcome>, SubmitError> {
        let Some(appended) = self.log.idempotent_result(key)? else {
            return Ok(None);
        };
        let case = appended
            .streams
            .iter()
            .find_map(|s| s.stream.as_str().strip_prefix("case-"))
            .and_then(|id| CaseId::parse(id).ok())
            .ok_or_else(|| Rejection::invalid("idempotency_key", "was used for another request"))?;
        let (Some(state), _) = load::load_case(&*self.log, &self.definitions, case, |_| true)?
        else {
            return Err(
                Rejection::invalid("idempotency_key", "was used for another request").into(),
            );
        };
        let version = state.version;
        if let Command::OpenCase {
            workflow,
            unit,
            title,
            description,
            ..
        } = command
        {
            let same = state.workflow.id == *workflow
                && state.unit == *unit
                && state.title == *title
                && state.description == *description;
            if !same {
                return Err(Rejection::invalid(
                    "idempotency_key",
                    "was used before for a different case (another workflow, unit, title or description)",
                )
                .into());
            }
        }
        Ok(Some(Outcome::Case {
            case,
            stage: state.stage,
            version,
            events: 0,
        }))
    }

    fn open_case_command(
        &self,
        acting: &Acting,
        command: Command,
        key: Option<IdempotencyKey>,
    ) -> Result<Outcome, SubmitError> {
        let (request, opening) = self.decide_opening(acting, command, key)?;
        let appended = self.log.append(request);
        self.opened(opening, appended)
    }

    /// Opens a case like [`Engine::submit`] does, but waits for the log without blocking a
    /// thread: the commit wakes the caller's task directly. This is the service's path for
    /// openings (the busiest write): it saves the hand-off to a blocking thread and back.
    ///
    /// Deciding is pure and quick; the only I/O before the append is the vault's, when the
    /// command records a new requester (so callers on an async runtime should send those
    /// through [`Engine::submit`] on a blocking thread).
    ///
    /// # Errors
    /// As [`Engine::submit`] and [`Engine::submit_with_key`].
    pub async fn open_case_async(
        &self,
        acting: &Acting,
        command: Command,
        key: Option<IdempotencyKey>,
    ) -> Result<Outcome, SubmitError> {
        self.check_writable()?;
        if let Some(key) = &key {
            if let Some(outcome) = self.replayed_opening(&command, key)? {
                return Ok(outcome);
            }
        }
        let retry = key.clone().map(|key| (command.clone(), key));
        let (request, opening) = self.decide_opening(acting, command, key)?;
        let appended = self.log.append_async(request).await;
        match (self.opened(opening, appended), retry) {
            // A concurrent request with the same key got there first: answer what it got.
            (
                Err(SubmitError::Engine(EngineError::Append(AppendError::IdempotencyKeyReused {
                    ..
                }))),
                Some((command, key)),
            ) => self.replayed_opening(&command, &key)?.ok_or_else(|| {
                Rejection::invalid("idempotency_key", "was used for another request").into()
            }),
            (other, _) => other,
        }
    }

    /// Decides an opening: the vault keeps a new requester's details, the domain decides,
    /// and the append is prepared (not made).
    fn decide_opening(
        &self,
        acting: &Acting,
        command: Command,
        key: Option<IdempotencyKey>,
    ) -> Result<(AppendRequest, Opening), SubmitError> {
        let Command::OpenCase {
            workflow,
            version,
            unit,
            title,
            description,
            fields,
            requester,
            channel,
            place,
        } = command
        else {
            return Err(Rejection::invalid("command", "not an opening").into());
        };
        let now = self.now();
        let case = CaseId::new_v7(now);
        let (person, new_person) = match requester {
            None => (None, false),
            Some(Requester::Known(person)) => (Some(person), false),
            Some(Requester::New(details)) => {
                let person = PersonId::new_v7(now);
                self.vault.store(person, &details)?;
                (Some(person), true)
            }
        };
        let open = OpenCase {
            case,
            workflow,
            version,
            unit,
            title,
            description,
            fields,
            requester: person,
            channel,
            place,
        };
        self.decide_open_case(acting, open, new_person, key)
    }

    fn submit_access(
        &self,
        acting: &Acting,
        command: &AccessCommand,
    ) -> Result<Outcome, SubmitError> {
        let token = match command {
            AccessCommand::Issue { hash, .. } => TokenId::of_hash(hash),
            AccessCommand::Revoke { token, .. } => token.clone(),
        };
        for _ in 0..RETRIES {
            let state = load::load_access(&*self.log)?;
            let org = read(&self.org);
            let ctx = self.context(acting, &org.0, self.now());
            let events = access::decide(&state, command, &ctx)?;
            drop(org);
            if events.is_empty() {
                return Ok(Outcome::Token { token });
            }
            let expected = state
                .version
                .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            if self
                .append(
                    acting,
                    vec![(access::access_stream(), expected, events)],
                    None,
                )?
                .is_ok()
            {
                return Ok(Outcome::Token { token });
            }
        }
        Err(EngineError::Contention {
            stream: access::ACCESS_STREAM.to_owned(),
        }
        .into())
    }

    /// Every token ever issued, with its grant and whether it was revoked.
    ///
    /// # Errors
    /// [`EngineError`] when the log cannot be read or an event does not decode.
    pub fn tokens(&self) -> Result<AccessState, EngineError> {
        load::load_access(&*self.log)
    }

    fn submit_org(&self, acting: &Acting, command: &OrgCommand) -> Result<Outcome, SubmitError> {
        let _serial = self
            .org_writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (chart, version) = read(&self.org).clone();
        let events = org::decide(&chart, command, acting)?;
        if events.is_empty() {
            return Ok(Outcome::Org { events: 0 });
        }
        let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
        let appended = self
            .append(
                acting,
                vec![(org::org_stream(), expected, events.clone())],
                None,
            )?
            .map_err(|c| EngineError::Contention {
                stream: c.stream.to_string(),
            })?;
        let mut guard = self.org.write().unwrap_or_else(PoisonError::into_inner);
        for event in &events {
            org::apply(&mut guard.0, event);
        }
        guard.1 = Some(appended.streams[0].last_version);
        Ok(Outcome::Org {
            events: events.len(),
        })
    }

    fn decide_open_case(
        &self,
        acting: &Acting,
        open: OpenCase,
        new_person: bool,
        key: Option<IdempotencyKey>,
    ) -> Result<(AppendRequest, Opening), SubmitError> {
        let case = open.case;
        let org = read(&self.org);
        let now = self.now();
        let ctx = self.context(acting, &org.0, now);
        let events = case::decide(None, &CaseCommand::Open(open.clone()), &ctx)?;
        let mut person_events = Vec::new();
        if let (true, Some(person)) = (new_person, open.requester) {
            // Whoever may open the case may record who asks.
            person_events = vec![PersonEvent::Registered(person::PersonRegistered {
                person,
                unit: open.unit.clone(),
                at: now,
            })];
        }
        drop(org);
        let mut request_writes = vec![(
            case.stream(),
            ExpectedVersion::NoStream,
            encode_all(&events)?,
        )];
        if let Some(person) = open.requester.filter(|_| new_person) {
            request_writes.push((
                person.stream(),
                ExpectedVersion::NoStream,
                encode_all(&person_events)?,
            ));
        }
        let request = self.append_request(acting, request_writes, key);
        Ok((request, Opening { case, events }))
    }

    /// What an opening answers once its append is done.
    fn opened(&self, opening: Opening, appended: AppendResult) -> Result<Outcome, SubmitError> {
        let Opening { case, events } = opening;
        appended?.map_err(|c| EngineError::Contention {
            stream: c.stream.to_string(),
        })?;
        let state = events.iter().fold(None, |state, event| {
            case::apply(state, event, &self.definitions, Version::FIRST)
        });
        let stage = state.as_ref().map(|s| s.stage.clone()).unwrap_or_default();
        let version = Version::new(events.len() as u64);
        Ok(Outcome::Case {
            case,
            stage,
            version,
            events: events.len(),
        })
    }

    fn append_encoded(
        &self,
        acting: &Acting,
        writes: Vec<(StreamId, ExpectedVersion, Vec<NewEvent>)>,
        key: Option<IdempotencyKey>,
    ) -> Result<Result<crate::event::Appended, crate::event::Conflict>, EngineError> {
        let request = self.append_request(acting, writes, key);
        Ok(self.log.append(request)?)
    }

    /// The log's request for `writes` (streams without events left out).
    fn append_request(
        &self,
        acting: &Acting,
        writes: Vec<(StreamId, ExpectedVersion, Vec<NewEvent>)>,
        key: Option<IdempotencyKey>,
    ) -> AppendRequest {
        let writes = writes
            .into_iter()
            .filter(|(_, _, events)| !events.is_empty())
            .map(|(stream, expected, events)| StreamWrite::new(stream, expected, events))
            .collect();
        let mut request = AppendRequest::to_streams(
            writes,
            acting.to_log_actor(),
            CorrelationId::new_v7(self.now()),
        );
        request.idempotency_key = key;
        request
    }

    /// Loads a case, decides, appends; on a conflict, does it again with the newer state.
    fn submit_case(
        &self,
        acting: &Acting,
        id: CaseId,
        command: &CaseCommand,
        key: Option<IdempotencyKey>,
    ) -> Result<Outcome, SubmitError> {
        for _ in 0..RETRIES {
            let (state, _) = load::load_case(&*self.log, &self.definitions, id, |_| true)?;
            let state = state.ok_or_else(|| Rejection::NotFound {
                what: "case",
                id: id.to_string(),
            })?;
            let org = read(&self.org);
            let ctx = self.context(acting, &org.0, self.now());
            let events = case::decide(Some(&state), command, &ctx)?;
            // A merge writes to the duplicate and to the case it joins, atomically.
            let mut writes = vec![(id.stream(), expect(state.version), encode_all(&events)?)];
            if let Some(CaseEvent::MergedInto(merge)) = events
                .iter()
                .find(|e| matches!(e, CaseEvent::MergedInto(_)))
            {
                let (target, _) =
                    load::load_case(&*self.log, &self.definitions, merge.target, |_| true)?;
                let target = target.ok_or_else(|| Rejection::NotFound {
                    what: "case",
                    id: merge.target.to_string(),
                })?;
                let system = Acting::system(target.lead.clone());
                let target_ctx = Context {
                    acting: &system,
                    ..ctx
                };
                let target_events = case::decide(
                    Some(&target),
                    &CaseCommand::AcceptDuplicate { duplicate: id },
                    &target_ctx,
                )?;
                writes.push((
                    merge.target.stream(),
                    expect(target.version),
                    encode_all(&target_events)?,
                ));
            }
            drop(org);
            if events.is_empty() {
                return Ok(Outcome::Case {
                    case: id,
                    stage: state.stage,
                    version: state.version,
                    events: 0,
                });
            }
            match self.append_encoded(acting, writes, key.clone())? {
                Ok(appended) => {
                    let version = appended.streams[0].last_version;
                    let mut after = Some(state);
                    for (i, event) in events.iter().enumerate() {
                        let v = appended.streams[0].first_version.plus(i as u64);
                        after = case::apply(after, event, &self.definitions, v);
                    }
                    let stage = after.map(|s| s.stage).unwrap_or_default();
                    return Ok(Outcome::Case {
                        case: id,
                        stage,
                        version: Some(version),
                        events: events.len(),
                    });
                }
                Err(_conflict) => continue,
            }
        }
        Err(EngineError::Contention {
            stream: id.stream().to_string(),
        }
        .into())
    }

    fn issue_directive(
        &self,
        acting: &Acting,
        command: &DirectiveCommand,
    ) -> Result<Outcome, SubmitError> {
        let org = read(&self.org);
        let ctx = self.context(acting, &org.0, self.now());
        let issued = directive::decide_issue(command, &ctx)?;
        drop(org);
        let id = match &issued.directive {
            directive::DirectiveEvent::Issued(e) => e.directive,
        };
        let mut writes = vec![(
            id.stream(),
            ExpectedVersion::NoStream,
            encode_all(std::slice::from_ref(&issued.directive))?,
        )];
        for (index, events) in &issued.parts {
            writes.push((
                id.part_stream(*index),
                ExpectedVersion::NoStream,
                encode_all(events)?,
            ));
        }
        self.append_encoded(acting, writes, None)?
            .map_err(|c| EngineError::Contention {
                stream: c.stream.to_string(),
            })?;
        Ok(Outcome::Directive {
            directive: id,
            parts: issued.parts.len(),
        })
    }

    /// Decides and appends on one part: the acting unit's part, or `index` when given.
    fn submit_part(
        &self,
        acting: &Acting,
        id: DirectiveId,
        index: Option<u32>,
        command: &DirectiveCommand,
        key: Option<IdempotencyKey>,
    ) -> Result<Outcome, SubmitError> {
        let index = match index {
            Some(index) => index,
            None => {
                let (directive, _) =
                    load::load_directive(&*self.log, id)?.ok_or_else(|| Rejection::NotFound {
                        what: "directive",
                        id: id.to_string(),
                    })?;
                directive
                    .part_of(&acting.unit)
                    .map(|p| p.index)
                    .ok_or_else(|| {
                        Rejection::invalid(
                            "unit",
                            format!("directive {id} has no part for {}", acting.unit),
                        )
                    })?
            }
        };
        for _ in 0..RETRIES {
            let part =
                load::load_part(&*self.log, id, index)?.ok_or_else(|| Rejection::NotFound {
                    what: "directive part",
                    id: format!("{id}.{index}"),
                })?;
            let org = read(&self.org);
            let ctx = self.context(acting, &org.0, self.now());
            let events: Vec<PartEvent> = directive::decide_part(&part, command, &ctx)?;
            drop(org);
            if events.is_empty() {
                return Ok(Outcome::Directive {
                    directive: id,
                    parts: 1,
                });
            }
            match self.append(
                acting,
                vec![(id.part_stream(index), expect(part.version), events.clone())],
                key.clone(),
            )? {
                Ok(_) => {
                    return Ok(Outcome::Directive {
                        directive: id,
                        parts: 1,
                    });
                }
                Err(_conflict) => continue,
            }
        }
        Err(EngineError::Contention {
            stream: id.part_stream(index).to_string(),
        }
        .into())
    }

    fn submit_list(
        &self,
        acting: &Acting,
        item: ListItemId,
        command: &ListCommand,
    ) -> Result<Outcome, SubmitError> {
        for _ in 0..RETRIES {
            let state = load::load_list_item(&*self.log, item)?;
            let org = read(&self.org);
            let ctx = self.context(acting, &org.0, self.now());
            let events = lists::decide(state.as_ref(), command, &ctx)?;
            drop(org);
            if events.is_empty() {
                return Ok(Outcome::ListItem { item });
            }
            let expected = state
                .as_ref()
                .and_then(|s| s.version)
                .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            if self
                .append(acting, vec![(item.stream(), expected, events)], None)?
                .is_ok()
            {
                return Ok(Outcome::ListItem { item });
            }
        }
        Err(EngineError::Contention {
            stream: item.stream().to_string(),
        }
        .into())
    }

    fn submit_standing(
        &self,
        acting: &Acting,
        unit: &UnitId,
        command: &StandingCommand,
    ) -> Result<Outcome, SubmitError> {
        let stream = merchants::merchant_stream(unit)?;
        for _ in 0..RETRIES {
            let state = load::load_standing(&*self.log, &stream)?;
            let org = read(&self.org);
            let ctx = self.context(acting, &org.0, self.now());
            let events = merchants::decide(unit, state.as_ref(), command, &ctx)?;
            drop(org);
            let expected = state
                .as_ref()
                .and_then(|s| s.version)
                .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            if let Ok(appended) = self.append(
                acting,
                vec![(stream.clone(), expected, events.clone())],
                None,
            )? {
                let mut after = state;
                for (i, event) in events.iter().enumerate() {
                    after = Some(merchants::apply(
                        after,
                        event,
                        appended.streams[0].first_version.plus(i as u64),
                    ));
                }
                return Ok(Outcome::Standing {
                    unit: unit.clone(),
                    points: after.and_then(|s| s.points()),
                });
            }
        }
        Err(EngineError::Contention {
            stream: stream.to_string(),
        }
        .into())
    }

    // -----------------------------------------------------------------------------------------
    // Reads

    /// A case as `acting` sees it: state, definition, the actions they may take now, and the
    /// requester's contact data masked.
    ///
    /// # Errors
    /// [`SubmitError::Rejected`] with `NotFound` for an unknown case, or when the case lies
    /// outside what the acting unit may see; [`SubmitError::Engine`] on storage failures.
    pub fn case(&self, acting: &Acting, id: CaseId) -> Result<CaseView, SubmitError> {
        let (state, _) = load::load_case(&*self.log, &self.definitions, id, |_| true)?;
        let state = state.ok_or_else(|| Rejection::NotFound {
            what: "case",
            id: id.to_string(),
        })?;
        let org = read(&self.org);
        if !self.may_see(acting, &state, &org.0) {
            return Err(Rejection::NotFound {
                what: "case",
                id: id.to_string(),
            }
            .into());
        }
        let definition = self
            .definitions
            .get(&state.workflow)
            .cloned()
            .ok_or_else(|| Rejection::UnknownWorkflow {
                workflow: state.workflow.to_string(),
            })?;
        let available_actions = case::available_actions(&state, &definition, acting, &org.0)
            .into_iter()
            .cloned()
            .collect();
        drop(org);
        let contact = self.masked_contact(state.requester)?;
        Ok(CaseView {
            state,
            definition,
            available_actions,
            contact,
        })
    }

    /// Whether `acting` may see a case: the system and auditors everywhere; a unit that leads
    /// or co-handles it, lies above its lead or filed it; the resident who filed it.
    pub fn may_see(&self, acting: &Acting, state: &CaseState, org: &OrgChart) -> bool {
        if acting.is_system()
            || (acting.role.as_str() == org::roles::AUDITOR && org.check_acting(acting).is_ok())
        {
            return true;
        }
        if org.check_acting(acting).is_err() {
            return false;
        }
        // Residents, and the civic apps that file for them, act as persons: their unit is
        // where they live, not what they answer for. They see the cases they filed.
        if matches!(
            acting.role.as_str(),
            org::roles::RESIDENT | org::roles::OPEN311_CLIENT
        ) {
            return acting.actor == state.filed_by;
        }
        org.is_within(&state.lead, &acting.unit)
            || org.is_within(&state.unit, &acting.unit)
            || state
                .co_handlers
                .iter()
                .any(|u| org.is_within(u, &acting.unit))
            || acting.actor == state.filed_by
    }

    fn masked_contact(&self, person: Option<PersonId>) -> Result<Contact, EngineError> {
        let Some(person) = person else {
            return Ok(Contact::None);
        };
        Ok(match self.vault.read(person)? {
            PersonData::Present(details) => Contact::Masked(details.masked()),
            PersonData::Erased | PersonData::Unknown => Contact::Erased,
        })
    }

    /// Shows the requester's contact data unmasked to a role the workflow allows, and records
    /// that it did (`ContactViewed`).
    ///
    /// # Errors
    /// [`SubmitError::Rejected`] when the role may not see it; `Ok(None)` when the person was
    /// erased.
    pub fn view_contact(
        &self,
        acting: &Acting,
        id: CaseId,
        purpose: &str,
    ) -> Result<Option<ContactDetails>, SubmitError> {
        self.check_writable()?;
        self.submit_case(
            acting,
            id,
            &CaseCommand::RecordContactView {
                purpose: purpose.to_owned(),
            },
            None,
        )?;
        let (state, _) = load::load_case(&*self.log, &self.definitions, id, |_| true)?;
        let person = state
            .and_then(|s| s.requester)
            .ok_or_else(|| Rejection::invalid("requester", "the case has no requester"))?;
        Ok(match self.vault.read(person)? {
            PersonData::Present(details) => Some(details),
            PersonData::Erased | PersonData::Unknown => None,
        })
    }

    /// The people whose phone number is `phone` (through the vault's keyed hash).
    ///
    /// # Errors
    /// [`EngineError::Vault`] when the vault fails.
    pub fn find_people_by_phone(&self, phone: &str) -> Result<Vec<PersonId>, EngineError> {
        Ok(self.vault.find_by_phone(phone)?)
    }

    /// A case's state as of a version of its stream (`None`: before it existed).
    ///
    /// # Errors
    /// [`EngineError`] on storage failures.
    pub fn case_at_version(
        &self,
        id: CaseId,
        version: Version,
    ) -> Result<Option<CaseState>, EngineError> {
        Ok(load::load_case(&*self.log, &self.definitions, id, |e| e.version <= version)?.0)
    }

    /// A case's state as of a moment (events recorded at or before it).
    ///
    /// # Errors
    /// [`EngineError`] on storage failures.
    pub fn case_at_time(
        &self,
        id: CaseId,
        at: Timestamp,
    ) -> Result<Option<CaseState>, EngineError> {
        Ok(load::load_case(&*self.log, &self.definitions, id, |e| e.recorded_at <= at)?.0)
    }

    /// A directive and its progress, rolled up.
    ///
    /// # Errors
    /// [`SubmitError::Rejected`] with `NotFound` for an unknown directive.
    pub fn directive(
        &self,
        id: DirectiveId,
    ) -> Result<(directive::DirectiveState, Progress), SubmitError> {
        let (state, parts) =
            load::load_directive(&*self.log, id)?.ok_or_else(|| Rejection::NotFound {
                what: "directive",
                id: id.to_string(),
            })?;
        let progress = directive::progress(&state, &parts);
        Ok((state, progress))
    }

    /// A list item.
    ///
    /// # Errors
    /// [`EngineError`] on storage failures.
    pub fn list_item(&self, id: ListItemId) -> Result<Option<lists::ListItemState>, EngineError> {
        load::load_list_item(&*self.log, id)
    }

    /// A unit's standing.
    ///
    /// # Errors
    /// [`SubmitError::Rejected`] when the unit id cannot name a stream.
    pub fn standing(&self, unit: &UnitId) -> Result<Option<StandingState>, SubmitError> {
        let stream = merchants::merchant_stream(unit)?;
        Ok(load::load_standing(&*self.log, &stream)?)
    }
}

/// Loads every `*.toml` workflow definition in `dir` into `registry` (in file-name order),
/// validating each. Returns what was loaded.
///
/// # Errors
/// [`EngineError::Config`] naming the file and the problem.
pub fn load_workflows(
    dir: &Path,
    registry: &mut DefinitionRegistry,
) -> Result<Vec<crate::domain::workflow::DefinitionRef>, EngineError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| EngineError::Config(format!("cannot read {}: {e}", dir.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut loaded = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| EngineError::Config(format!("cannot read {}: {e}", file.display())))?;
        let reference = registry
            .load_toml(&text)
            .map_err(|e| EngineError::Config(format!("{}: {e}", file.display())))?;
        loaded.push(reference);
    }
    Ok(loaded)
}

fn expect(version: Option<Version>) -> ExpectedVersion {
    version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact)
}

fn encode_all<E: DomainEvent>(events: &[E]) -> Result<Vec<NewEvent>, EngineError> {
    events
        .iter()
        .map(NewEvent::from_domain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| EngineError::Config(format!("an event does not encode: {e}")))
}
