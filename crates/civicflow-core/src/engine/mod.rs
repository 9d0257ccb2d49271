//! The engine: what an embedding system calls.
//!
//! It opens the storage (the log and the personal-data vault), the workflow definitions and
//! the business calendar. Every command goes one way (`execute.rs`): load the aggregate,
//! ask its pure `decide`, append the decision with the versions it was decided on, decide
//! again if another writer got there first. Reads load an aggregate and answer only what the
//! caller may see (`Aggregate::may_see`). It also runs the deadline scheduler
//! (`scheduler.rs`) and answers audits (`audit.rs`).
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
//! let audit = engine.audit(&worker, case)?;
//! assert!(audit.chain.is_intact());
//! assert_eq!(audit.steps[0].actor.role.as_str(), "grid_worker");
//! # drop(engine);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod as_of;
mod audit;
mod calendar;
mod command;
mod config;
mod execute;
mod grants;
mod leads;
mod load;
mod org_history;
mod scheduler;
mod workflows;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

pub use as_of::{AsOf, CaseThen};
pub use audit::{
    audit_log, audit_log_as_of, summarize, AuditStep, CaseAudit, DeadlineOutcome, DeadlineReport,
    HistoryEntry,
};
pub use calendar::{recorded_zone, CalendarOverview, CalendarYear, YearOrigin};
pub use command::{Command, EngineError, Outcome, Requester, SubmitError, SubmitOptions};
pub use config::{EngineConfig, Storage};
pub use org_history::OrgHistoryEntry;
pub use scheduler::{rebuild_deadline_index, DeadlineTarget, SchedulerHandle, StepTaken};
pub use workflows::{definitions_in_force, WorkflowOrigin, WorkflowVersion};

use crate::clock::{Clock, Timestamp};
use crate::domain::access::{Access, AccessState};
use crate::domain::aggregate::Aggregate;
use crate::domain::case::{self, Case, CaseCommand, CaseState, OpenCase};
use crate::domain::directive::{self, Directive, DirectiveCommand, Part, Progress, Sight};
use crate::domain::lists::{ListCommand, ListItem};
use crate::domain::merchants::Standing;
use crate::domain::org::{Acting, Org, OrgChart};
use crate::domain::person::{Person, PersonCommand};
use crate::domain::workflow::{Action, Definition, DefinitionRegistry, Definitions};
use crate::domain::Rejection;
use crate::ids::{CaseId, DirectiveId, ListItemId, PersonId, UnitId};
use crate::store::EventStore;
use crate::vault::{ContactDetails, MaskedContact, PersonData, Vault};

use execute::{How, Keyed, Target};
use load::Loaded;

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

/// A directive as a caller sees it: as issued, and its progress rolled up.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectiveView {
    /// The directive as issued.
    pub state: directive::DirectiveState,
    /// How much of it the caller sees.
    pub sight: Sight,
    /// Its progress: every part for [`Sight::Full`], the caller's subtree for
    /// [`Sight::Subtree`] (each part rolled up over the whole tree).
    pub progress: Progress,
}

/// The civicflow engine.
pub struct Engine {
    log: Arc<dyn EventStore>,
    vault: Vault,
    data_dir: PathBuf,
    /// The definitions in force (the configuration's and the published ones), shared with
    /// the read models.
    definitions: Definitions,
    /// The workflows stream, folded (`workflows.rs`).
    workflows: workflows::WorkflowsCache,
    /// The calendar in force (the release's years and the published ones), with its stream.
    calendar: calendar::CalendarCache,
    clock: Arc<dyn Clock>,
    /// The org chart, which every decision consults; caught up from the log whenever the
    /// chart itself is loaded (`Stored::cache`).
    org: RwLock<Loaded<Org>>,
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
    /// Opens the engine as `config` says (by default on the embedded storage in its data
    /// directory), then takes every deadline step that fell due while it was closed.
    ///
    /// # Errors
    /// [`EngineError`] when the storage cannot be opened, or stored events do not decode.
    pub fn open(mut config: EngineConfig) -> Result<Self, EngineError> {
        let Storage { log, vault } = match config.storage.take() {
            Some(storage) => storage,
            None => Storage::embedded(&config)?,
        };
        let org = load::load::<Org>(
            &*log,
            &config.definitions,
            &crate::domain::org::org_stream(),
        )?;
        let calendar_stream = load::load::<crate::domain::calendar_years::CalendarYears>(
            &*log,
            &config.definitions,
            &crate::domain::calendar_years::calendar_stream(),
        )?;
        // The store's zone: the recorded one wins; a configuration that insists on another
        // is refused; one that names a zone for a store without one records it (below).
        let mut base_calendar = config.calendar;
        let mut record_zone = None;
        match (&calendar_stream.state.zone, config.time_zone) {
            (Some(recorded), Some(given)) if given.name() != recorded => {
                return Err(EngineError::Config(format!(
                    "this store keeps its time in {recorded} (recorded when its zone was first                      given); every local date in its read models was counted there, so it cannot                      be opened in {given}: leave the time zone out, or give {recorded}"
                )));
            }
            (Some(recorded), _) => {
                let zone = crate::calendar::Zone::named(recorded).map_err(|e| {
                    EngineError::Config(format!("the store's recorded time zone: {e}"))
                })?;
                base_calendar = base_calendar.with_zone(zone);
            }
            (None, given) => record_zone = given,
        }
        let workflows_stream = load::load::<crate::domain::workflow::published::Workflows>(
            &*log,
            &config.definitions,
            &crate::domain::workflow::published::workflows_stream(),
        )?;
        // The definitions published in the log, on top of the configuration's, before anything
        // folds a case that runs on one of them.
        let definitions = Definitions::new(config.definitions);
        if let Err(problem) = workflows::learn(&definitions, &org.state, &workflows_stream.state) {
            return Err(EngineError::Config(format!(
                "a workflow definition published in the log does not load: {problem}"
            )));
        }
        let deadlines = scheduler::DeadlineIndex::open(&*log, &config.data_dir)?;
        let engine = Self {
            log,
            vault,
            data_dir: config.data_dir,
            definitions,
            workflows: workflows::WorkflowsCache {
                stream: RwLock::new(workflows_stream),
            },
            calendar: calendar::CalendarCache::new(base_calendar, calendar_stream),
            clock: config.clock,
            org: RwLock::new(org),
            deadlines,
        };
        // A publication whose recomputations a crash interrupted is finished now (each is
        // keyed: none is done twice).
        if let Some(zone) = record_zone {
            engine.record_zone(&zone)?;
        }
        engine.recompute_provisional_deadlines(None)?;
        engine.run_due_deadlines()?;
        Ok(engine)
    }

    /// The event log underneath (for reads, subscriptions, verification).
    pub fn log(&self) -> &Arc<dyn EventStore> {
        &self.log
    }

    /// The workflow definitions in force now: the configuration's and those published in
    /// the log (`Command::PublishWorkflow`).
    pub fn definitions(&self) -> Arc<DefinitionRegistry> {
        self.definitions.current()
    }

    /// The definitions in force as a shared handle that follows publications: what the read
    /// models fold cases with (`civicflow_projections::models::all`).
    pub fn shared_definitions(&self) -> &Definitions {
        &self.definitions
    }

    /// The org chart now.
    pub fn org(&self) -> OrgChart {
        read(&self.org).state.clone()
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

    /// Refuses a write at once while the log is poisoned, before anything is read (after a
    /// failed write a backend may fail reads too, with words that do not say the log refuses
    /// writes).
    fn check_writable(&self) -> Result<(), SubmitError> {
        match self.log.write_refusal() {
            Some(refusal) => Err(SubmitError::Engine(EngineError::Append(refusal))),
            None => Ok(()),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Commands

    /// Submits a command as `acting`.
    ///
    /// # Errors
    /// [`SubmitError::Rejected`] with the domain's reason when the command is refused (nothing
    /// is written), [`SubmitError::Engine`] when storage fails or another writer kept changing
    /// the aggregate through five attempts.
    pub fn submit(&self, acting: &Acting, command: Command) -> Result<Outcome, SubmitError> {
        self.run_command(acting, command, &How::default())
    }

    /// Submits a command with the options of [`SubmitOptions`]: an idempotency key (see
    /// [`Engine::submit_with_key`]), the caller's correlation id (every event the command
    /// writes carries it, so a request can be traced through the log), and what caused it.
    ///
    /// # Errors
    /// As [`Engine::submit_with_key`].
    pub fn submit_with(
        &self,
        acting: &Acting,
        command: Command,
        options: SubmitOptions,
    ) -> Result<Outcome, SubmitError> {
        let how = self.how(acting, &command, options);
        self.run_command(acting, command, &how)
    }

    /// The engine's own form of `options` for `command`.
    fn how(&self, acting: &Acting, command: &Command, options: SubmitOptions) -> How {
        How {
            key: options
                .idempotency_key
                .map(|key| self.keyed(acting, key, command)),
            correlation: options.correlation_id,
            causation: options.causation_id,
        }
    }

    /// Submits a command with an idempotency key: a retry with the same key and the same
    /// command (say, after a timeout) answers what the first got and writes nothing; the same
    /// key with another command is refused. Keys are the actor's: another actor's key never
    /// collides. `docs/engine.md`, "Retries".
    ///
    /// # Errors
    /// As [`Engine::submit`]; [`Rejection::IdempotencyKeyReused`] when `acting`'s actor used
    /// the key for another request.
    pub fn submit_with_key(
        &self,
        acting: &Acting,
        command: Command,
        key: crate::ids::IdempotencyKey,
    ) -> Result<Outcome, SubmitError> {
        self.submit_with(acting, command, SubmitOptions::keyed(key))
    }

    /// What identifies `command` for its retries under `key`: its whole shape, and the
    /// contact details it carries (which its `Debug` masks), digested with a key only the
    /// master key gives.
    fn keyed(&self, acting: &Acting, key: crate::ids::IdempotencyKey, command: &Command) -> Keyed {
        let shape = format!("{command:?}");
        let details = match command {
            Command::OpenCase {
                requester: Some(Requester::New(details)),
                ..
            }
            | Command::RegisterPerson { details } => Some(details),
            _ => None,
        };
        let mut parts: Vec<&[u8]> = vec![shape.as_bytes()];
        if let Some(details) = details {
            for value in [
                details.name(),
                details.phone(),
                details.email(),
                details.address(),
            ] {
                parts.push(value.unwrap_or("\u{0}").as_bytes());
            }
        }
        Keyed::new(acting, key, &parts, |parts| {
            self.vault.request_digest(parts)
        })
    }

    /// The one dispatch of a command to its aggregate.
    fn run_command(
        &self,
        acting: &Acting,
        command: Command,
        how: &How,
    ) -> Result<Outcome, SubmitError> {
        match command {
            Command::Org(crate::domain::org::OrgCommand::RetireUnit { id, .. }) => {
                // The decision needs the open cases the unit leads, which only the log knows.
                let open_cases = self.open_cases_led_by(&id)?;
                let command = crate::domain::org::OrgCommand::RetireUnit { id, open_cases };
                self.execute::<Org>(acting, Target::Existing(()), &command, how, None)
                    .map(|done| done.outcome(&command))
            }
            Command::Org(command @ crate::domain::org::OrgCommand::RevokeRole { .. }) => {
                self.revoke_role(acting, command, how)
            }
            Command::Org(command) => self
                .execute::<Org>(acting, Target::Existing(()), &command, how, None)
                .map(|done| done.outcome(&command)),
            Command::Access(command) => self
                .execute::<Access>(acting, Target::Existing(()), &command, how, None)
                .map(|done| done.outcome(&command)),
            Command::PublishCalendarYear { schedule } => {
                self.publish_calendar_year(acting, schedule, how)
            }
            Command::PublishWorkflow { definition } => {
                self.publish_workflow(acting, definition, how)
            }
            command @ Command::OpenCase { .. } => self.open_case(acting, command, how),
            Command::Act {
                case,
                action,
                fields,
                expected_version,
            } => self.on_case(
                acting,
                case,
                &CaseCommand::Act {
                    action,
                    fields,
                    expected_version,
                },
                how,
            ),
            Command::MigrateCase { case, to_version } => {
                self.on_case(acting, case, &CaseCommand::Migrate { to_version }, how)
            }
            Command::IssueDirective {
                title,
                body,
                kind,
                unit,
                within,
            } => {
                let directive = DirectiveId::new_v7(self.now());
                let command = DirectiveCommand::Issue {
                    directive,
                    title,
                    body,
                    kind,
                    unit,
                    within,
                };
                self.execute::<Directive>(acting, Target::New(directive), &command, how, None)
                    .map(|done| done.outcome(&command))
            }
            Command::AcknowledgeDirective { directive, note } => self.on_own_part(
                acting,
                directive,
                &DirectiveCommand::Acknowledge { note },
                how,
            ),
            Command::ReportDirective { directive, note } => {
                self.on_own_part(acting, directive, &DirectiveCommand::Report { note }, how)
            }
            Command::AddListItem {
                list,
                title,
                description,
                unit,
            } => {
                let item = ListItemId::new_v7(self.now());
                let command = ListCommand::Add {
                    item,
                    list,
                    title,
                    description,
                    unit,
                };
                self.execute::<ListItem>(acting, Target::New(item), &command, how, None)
                    .map(|done| done.outcome(&command))
            }
            Command::ListItem { item, command } => self
                .execute::<ListItem>(acting, Target::Existing(item), &command, how, None)
                .map(|done| done.outcome(&command)),
            Command::Standing { unit, command } => self
                .execute::<Standing>(acting, Target::Existing(unit), &command, how, None)
                .map(|done| done.outcome(&command)),
            Command::RegisterPerson { details } => {
                let person = PersonId::new_v7(self.now());
                let command = PersonCommand::Register;
                // The details go into the vault once the registration is decided, before
                // it is appended.
                let store = || Ok(self.vault.store(person, &details)?);
                self.execute::<Person>(acting, Target::New(person), &command, how, Some(&store))
                    .map(|done| done.outcome(&command))
            }
            Command::ErasePerson { person, reason } => {
                let command = PersonCommand::Erase { reason };
                // The key is destroyed before the erasure is appended: if the append then
                // fails, the data is gone already and a retry records it; the other order
                // could record an erasure that did not happen.
                let erase = || Ok(self.vault.erase(person)?);
                self.execute::<Person>(
                    acting,
                    Target::Existing(person),
                    &command,
                    how,
                    Some(&erase),
                )
                .map(|done| done.outcome(&command))
            }
        }
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
        options: SubmitOptions,
    ) -> Result<Outcome, SubmitError> {
        let how = self.how(acting, &command, options);
        let (case, command, requester) = self.opening(command)?;
        let store = || self.store_requester(requester.as_ref());
        self.execute_async::<Case>(acting, Target::New(case), &command, &how, Some(&store))
            .await
            .map(|done| done.outcome(&command))
    }

    fn open_case(
        &self,
        acting: &Acting,
        command: Command,
        how: &How,
    ) -> Result<Outcome, SubmitError> {
        let (case, command, requester) = self.opening(command)?;
        let store = || self.store_requester(requester.as_ref());
        self.execute::<Case>(acting, Target::New(case), &command, how, Some(&store))
            .map(|done| done.outcome(&command))
    }

    /// The domain's opening for `command`, with a new case id; and a new requester's id and
    /// details, which go into the vault once the opening is decided.
    #[allow(clippy::type_complexity)]
    fn opening(
        &self,
        command: Command,
    ) -> Result<(CaseId, CaseCommand, Option<(PersonId, ContactDetails)>), SubmitError> {
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
        // A workflow another instance published on a shared log: learn it before deciding.
        let known = self
            .definitions
            .current()
            .latest(&workflow)
            .is_some_and(|latest| version.is_none_or(|v| v <= latest.version));
        if !known {
            self.refresh_workflows()?;
        }
        let now = self.now();
        let (person, new) = match requester {
            None => (None, None),
            Some(Requester::Known(person)) => (Some(person), None),
            Some(Requester::New(details)) => {
                let person = PersonId::new_v7(now);
                (Some(person), Some((person, details)))
            }
        };
        let case = CaseId::new_v7(now);
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
            new_requester: new.is_some(),
        };
        Ok((case, CaseCommand::Open(open), new))
    }

    /// Keeps a new requester's details in the vault.
    fn store_requester(
        &self,
        requester: Option<&(PersonId, ContactDetails)>,
    ) -> Result<(), SubmitError> {
        if let Some((person, details)) = requester {
            self.vault.store(*person, details)?;
        }
        Ok(())
    }

    /// A command on an existing case.
    fn on_case(
        &self,
        acting: &Acting,
        case: CaseId,
        command: &CaseCommand,
        how: &How,
    ) -> Result<Outcome, SubmitError> {
        self.execute::<Case>(acting, Target::Existing(case), command, how, None)
            .map(|done| done.outcome(command))
    }

    /// A command on the acting unit's own part of a directive.
    fn on_own_part(
        &self,
        acting: &Acting,
        directive: DirectiveId,
        command: &DirectiveCommand,
        how: &How,
    ) -> Result<Outcome, SubmitError> {
        let issued = self.load::<Directive>(&directive.stream())?;
        let state = issued.state.ok_or_else(|| Rejection::NotFound {
            what: "directive",
            id: directive.to_string(),
        })?;
        let index = state
            .part_of(&acting.unit)
            .map(|p| p.index)
            .ok_or_else(|| {
                Rejection::invalid(
                    "unit",
                    format!("directive {directive} has no part for {}", acting.unit),
                )
            })?;
        self.execute::<Part>(
            acting,
            Target::Existing((directive, index)),
            command,
            how,
            None,
        )
        .map(|done| done.outcome(command))
    }

    // -----------------------------------------------------------------------------------------
    // Reads

    /// The state of any aggregate as `acting` sees it, read from the log.
    ///
    /// # Errors
    /// [`SubmitError::Rejected`] with `NotFound` when it has no events or lies outside what
    /// `acting` may see (the same answer either way); [`SubmitError::Engine`] on storage
    /// failures.
    pub fn read<A: Aggregate>(&self, acting: &Acting, id: &A::Id) -> Result<A::State, SubmitError> {
        let loaded = load::load::<A>(&*self.log, &self.definitions.current(), &A::stream(id)?)?;
        self.seen::<A>(acting, id, loaded)
    }

    /// `loaded`, when it exists and `acting` may see it.
    fn seen<A: Aggregate>(
        &self,
        acting: &Acting,
        id: &A::Id,
        loaded: Loaded<A>,
    ) -> Result<A::State, SubmitError> {
        if loaded.version.is_some() && A::may_see(&loaded.state, acting, &read(&self.org).state) {
            Ok(loaded.state)
        } else {
            Err(Rejection::NotFound {
                what: A::KIND,
                id: A::stream(id)?.to_string(),
            }
            .into())
        }
    }

    /// A case as `acting` sees it: state, definition, the actions they may take now, and the
    /// requester's contact data masked.
    ///
    /// # Errors
    /// [`SubmitError::Rejected`] with `NotFound` for an unknown case, or when the case lies
    /// outside what the acting unit may see; [`SubmitError::Engine`] on storage failures.
    pub fn case(&self, acting: &Acting, id: CaseId) -> Result<CaseView, SubmitError> {
        let state = self.case_state(acting, id)?;
        let org = read(&self.org);
        let definition = self
            .definitions
            .current()
            .get(&state.workflow)
            .cloned()
            .ok_or_else(|| Rejection::UnknownWorkflow {
                workflow: state.workflow.to_string(),
            })?;
        let available_actions = case::available_actions(&state, &definition, acting, &org.state)
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

    /// The case `id` as `acting` sees it now ([`Engine::case_as_of`] reads its past).
    fn case_state(&self, acting: &Acting, id: CaseId) -> Result<CaseState, SubmitError> {
        let now = self.load::<Case>(&id.stream())?;
        if !Case::may_see(&now.state, acting, &read(&self.org).state) {
            return Err(Rejection::NotFound {
                what: "case",
                id: id.to_string(),
            }
            .into());
        }
        now.state.ok_or_else(|| {
            Rejection::NotFound {
                what: "case",
                id: id.to_string(),
            }
            .into()
        })
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
        self.view_contact_with(acting, id, purpose, SubmitOptions::default())
    }

    /// [`Engine::view_contact`] with [`SubmitOptions`]. With an idempotency key, a retry with
    /// the same key, case and purpose records no second view and answers the details as they
    /// are now (erased meanwhile: `None`); the same key for anything else is refused.
    ///
    /// # Errors
    /// As [`Engine::view_contact`]; [`Rejection::IdempotencyKeyReused`].
    pub fn view_contact_with(
        &self,
        acting: &Acting,
        id: CaseId,
        purpose: &str,
        options: SubmitOptions,
    ) -> Result<Option<ContactDetails>, SubmitError> {
        let command = CaseCommand::RecordContactView {
            purpose: purpose.to_owned(),
        };
        let how = How {
            key: options.idempotency_key.map(|key| {
                let shape = format!("view contact {id} {purpose:?}");
                Keyed::new(acting, key, &[shape.as_bytes()], |parts| {
                    self.vault.request_digest(parts)
                })
            }),
            correlation: options.correlation_id,
            causation: options.causation_id,
        };
        let done = self.execute::<Case>(acting, Target::Existing(id), &command, &how, None)?;
        let person = done
            .state
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

    /// A directive and its progress, rolled up, as `acting` sees it ([`Sight`]).
    ///
    /// # Errors
    /// [`SubmitError::Rejected`] with `NotFound` for an unknown directive, or one `acting`
    /// has no sight of.
    pub fn directive(
        &self,
        acting: &Acting,
        id: DirectiveId,
    ) -> Result<DirectiveView, SubmitError> {
        let not_found = || Rejection::NotFound {
            what: "directive",
            id: id.to_string(),
        };
        let state = load::load::<Directive>(&*self.log, &self.definitions.current(), &id.stream())?
            .state
            .ok_or_else(not_found)?;
        let mut parts = BTreeMap::new();
        for info in &state.parts {
            let part = load::load::<Part>(
                &*self.log,
                &self.definitions.current(),
                &id.part_stream(info.index),
            )?;
            if let Some(part) = part.state {
                parts.insert(info.index, part);
            }
        }
        let (sight, progress) =
            directive::progress_seen_by(&state, &parts, acting, &read(&self.org).state)
                .ok_or_else(not_found)?;
        Ok(DirectiveView {
            state,
            sight,
            progress,
        })
    }

    /// A list item, as `acting` sees it.
    ///
    /// # Errors
    /// As [`Engine::read`].
    pub fn list_item(
        &self,
        acting: &Acting,
        id: ListItemId,
    ) -> Result<crate::domain::lists::ListItemState, SubmitError> {
        self.read::<ListItem>(acting, &id)?.ok_or_else(|| {
            Rejection::NotFound {
                what: "list item",
                id: id.to_string(),
            }
            .into()
        })
    }

    /// A unit's standing, as `acting` sees it.
    ///
    /// # Errors
    /// As [`Engine::read`]; refused when the unit id cannot name a stream.
    pub fn standing(
        &self,
        acting: &Acting,
        unit: &UnitId,
    ) -> Result<crate::domain::merchants::StandingState, SubmitError> {
        self.read::<Standing>(acting, unit)?.ok_or_else(|| {
            Rejection::NotFound {
                what: "standing",
                id: unit.to_string(),
            }
            .into()
        })
    }

    /// The proposal for `quarter` of `unit`'s standing, derived from its monthly scores
    /// ([`crate::domain::merchants::propose_quarter`]), as `acting` may see it. A unit in the
    /// caller's scope with nothing recorded yet has a proposal too (every month missing).
    ///
    /// # Errors
    /// [`SubmitError::Rejected`] with `NotFound` on `unit` when it does not exist or lies
    /// outside what `acting` may see (the same answer either way), `FieldInvalid` on
    /// `quarter` when it is malformed; [`SubmitError::Engine`] on storage failures.
    pub fn quarter_proposal(
        &self,
        acting: &Acting,
        unit: &UnitId,
        quarter: &str,
    ) -> Result<crate::domain::merchants::QuarterProposal, SubmitError> {
        use crate::domain::merchants;
        let tier = {
            let org = read(&self.org);
            match org.state.unit(unit) {
                Some(info) if merchants::standing_visible(unit, acting, &org.state) => info.tier,
                _ => {
                    return Err(Rejection::NotFound {
                        what: "unit",
                        id: unit.to_string(),
                    }
                    .into())
                }
            }
        };
        merchants::quarter_months(quarter)?;
        let loaded = load::load::<Standing>(
            &*self.log,
            &self.definitions.current(),
            &Standing::stream(unit)?,
        )?;
        Ok(merchants::propose_quarter(
            loaded.state.as_ref(),
            quarter,
            tier,
        )?)
    }

    /// Every token ever issued, with its grant and whether it was revoked: what the service
    /// authenticates callers with.
    ///
    /// # Errors
    /// [`EngineError`] when the log cannot be read or an event does not decode.
    pub fn tokens(&self) -> Result<AccessState, EngineError> {
        Ok(load::load::<Access>(
            &*self.log,
            &self.definitions.current(),
            &crate::domain::access::access_stream(),
        )?
        .state)
    }
}

/// An aggregate's state read straight from a log, without an [`Engine`]: for tools on a
/// stopped store (opening an engine takes the deadline steps that fell due meanwhile, which
/// writes; this only reads). No visibility check: whoever holds the store's files reads it.
///
/// # Errors
/// [`SubmitError::Rejected`] when the id cannot name a stream; [`SubmitError::Engine`] when
/// the log cannot be read or an event does not decode.
pub fn read_from_log<A: Aggregate>(
    log: &dyn EventStore,
    definitions: &DefinitionRegistry,
    id: &A::Id,
) -> Result<A::State, SubmitError> {
    Ok(load::load::<A>(log, definitions, &A::stream(id)?)?.state)
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
