//! What an embedding system asks of the engine ([`Command`]) and what it answers
//! ([`Outcome`], or [`SubmitError`]).

use crate::calendar::Span;
use crate::domain::access::{AccessCommand, TokenId};
use crate::domain::case::{Channel, Place};
use crate::domain::directive::DirectiveKind;
use crate::domain::fields::Fields;
use crate::domain::lists::{ListCommand, ListItemState, ListKind};
use crate::domain::merchants::{StandingCommand, StandingState};
use crate::domain::org::OrgCommand;
use crate::domain::workflow::WorkflowId;
use crate::domain::Rejection;
use crate::error::{AppendError, OpenError, ReadError};
use crate::event::PayloadError;
use crate::ids::{CaseId, DirectiveId, ListItemId, PersonId, Position, UnitId, Version};
use crate::vault::{ContactDetails, VaultError};

/// Who asks, when a case is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requester {
    /// A person not seen before: their contact data goes into the vault.
    New(ContactDetails),
    /// A person already registered.
    Known(PersonId),
}

/// How a command is submitted besides who and what ([`super::Engine::submit_with`]); every
/// part is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubmitOptions {
    /// Makes a retry safe: the same key with the same command answers the first answer
    /// (`docs/engine.md`, "Retries").
    pub idempotency_key: Option<crate::ids::IdempotencyKey>,
    /// The request the command belongs to: every event it writes carries it, so a request is
    /// traced through the log (the service takes it from `X-Request-Id` or `traceparent`).
    /// `None`: a new one.
    pub correlation_id: Option<crate::ids::CorrelationId>,
    /// What caused the command, when that is an event or a command of the caller's.
    pub causation_id: Option<crate::ids::CausationId>,
}

impl SubmitOptions {
    /// Only an idempotency key.
    pub fn keyed(key: crate::ids::IdempotencyKey) -> Self {
        Self {
            idempotency_key: Some(key),
            ..Self::default()
        }
    }

    /// With the caller's correlation id.
    #[must_use]
    pub fn correlated(mut self, correlation_id: crate::ids::CorrelationId) -> Self {
        self.correlation_id = Some(correlation_id);
        self
    }

    /// With an idempotency key.
    #[must_use]
    pub fn with_key(mut self, key: Option<crate::ids::IdempotencyKey>) -> Self {
        self.idempotency_key = key;
        self
    }
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
    /// Issue or revoke an access token, or end a dashboard session of one (see
    /// `domain::access`).
    Access(AccessCommand),
    /// Publish a year of the business calendar (a community administrator of a top unit):
    /// deadlines from then on count its holidays, and the provisional deadlines that reached
    /// into it are computed again (`docs/engine.md`, "Calendar years").
    PublishCalendarYear {
        /// The year's days, as `YearSchedule::parse_document` reads them.
        schedule: crate::calendar::YearSchedule,
    },
    /// Publish a workflow definition (a community administrator of a top unit, or the
    /// system): every instance of the store learns it from the log. A new version of an id
    /// must be higher than every one known; the same definition again changes nothing.
    PublishWorkflow {
        /// The definition as TOML (`Definition::to_toml` turns one built in Rust into it).
        definition: String,
    },
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
        within: Span,
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
    /// A workflow definition was published (or was so already: no events).
    Workflow {
        /// The workflow.
        workflow: String,
        /// The version.
        version: u32,
        /// Events written to the workflows stream.
        events: usize,
        /// See [`Outcome::position`].
        position: Option<Position>,
    },
    /// A calendar year was published (or was so already: no events).
    Calendar {
        /// The year.
        year: i32,
        /// Its revision in the log now (0: only the release's data has it).
        revision: u32,
        /// Events written to the calendar stream.
        events: usize,
        /// Provisional deadlines computed again.
        recomputed: usize,
        /// See [`Outcome::position`].
        position: Option<Position>,
    },
    /// The org chart changed (or was already so: no events).
    Org {
        /// Events written.
        events: usize,
        /// See [`Outcome::position`].
        position: Option<Position>,
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
        /// See [`Outcome::position`].
        position: Option<Position>,
    },
    /// A directive was issued or a part changed.
    Directive {
        /// The directive.
        directive: DirectiveId,
        /// Parts reached (on issue) or the part changed.
        parts: usize,
        /// See [`Outcome::position`].
        position: Option<Position>,
    },
    /// A list item was added or changed.
    ListItem {
        /// The item.
        item: ListItemId,
        /// The item after the command (for a retry, as the first request left it).
        state: Option<Box<ListItemState>>,
        /// See [`Outcome::position`].
        position: Option<Position>,
    },
    /// A unit's standing changed.
    Standing {
        /// The unit.
        unit: UnitId,
        /// Its points now, if a cycle runs.
        points: Option<u8>,
        /// The standing after the command (for a retry, as the first request left it).
        state: Option<Box<StandingState>>,
        /// See [`Outcome::position`].
        position: Option<Position>,
    },
    /// A person was registered or erased.
    Person {
        /// The person.
        person: PersonId,
        /// See [`Outcome::position`].
        position: Option<Position>,
    },
    /// A token was issued or revoked, or a session of it ended (or nothing changed: no
    /// events).
    Token {
        /// The token.
        token: TokenId,
        /// See [`Outcome::position`].
        position: Option<Position>,
    },
}

impl Outcome {
    /// The log position the command reached: its last event, the last event of the earlier
    /// request it answers again (an idempotent retry), or the log's head when it changed
    /// nothing (`None` only on an empty log). A read model that has reached it reflects the
    /// command: pass it to the projections' `Runner::view_at_least` to read your own write.
    pub fn position(&self) -> Option<Position> {
        match self {
            Outcome::Org { position, .. }
            | Outcome::Case { position, .. }
            | Outcome::Directive { position, .. }
            | Outcome::ListItem { position, .. }
            | Outcome::Standing { position, .. }
            | Outcome::Person { position, .. }
            | Outcome::Token { position, .. }
            | Outcome::Calendar { position, .. }
            | Outcome::Workflow { position, .. } => *position,
        }
    }
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
    /// Another writer kept changing the aggregate: every attempt found its stream moved on.
    #[error("gave up after {attempts} attempts: another writer kept changing {stream} (the last attempt expected {expected}, the stream was at {actual})")]
    Contention {
        /// How many times the command was decided.
        attempts: u32,
        /// The stream.
        stream: String,
        /// What the last attempt expected of it.
        expected: String,
        /// What it found.
        actual: String,
    },
    /// The deadline index's snapshot could not be written (the next open then reads the
    /// whole log instead).
    #[error("the deadline index's snapshot {}: {reason}", path.display())]
    Snapshot {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// A domain event does not encode (a bug: every released event encodes).
    #[error("an event does not encode: {0}")]
    Encode(#[from] PayloadError),
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
