//! # civicflow-core
//!
//! Civic request handling as an event-sourced workflow engine: residents' and merchants'
//! requests, and directives sent down the four-tier chain (community → grid → enterprise →
//! shop), as streams of events in an append-only, hash-chained log.
//!
//! Start from the [`Engine`](engine::Engine): open it, give it an org chart and workflows,
//! submit commands, read what callers may see, audit a case, follow the log.
//!
//! ```
//! use civicflow_core::prelude::*;
//!
//! let dir = std::env::temp_dir().join(format!("civicflow-core-tour-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! // A workflow of the embedder's own, as data (the format: docs/workflows.md).
//! let mut workflows = DefinitionRegistry::built_in();
//! workflows.load_toml(r#"
//!     id = "streetlight"
//!     version = 1
//!     name = "Streetlight out"
//!     initial_stage = "reported"
//!     [open]
//!     roles = ["grid_worker"]
//!     scope = "subtree"
//!     [[stages]]
//!     id = "reported"
//!     deadline = { within = "1 working day" }
//!     [[stages]]
//!     id = "fixed"
//!     terminal = true
//!     [[actions]]
//!     id = "fix"
//!     from = ["reported"]
//!     to = "fixed"
//!     roles = ["grid_worker"]
//!     scope = "lead"
//! "#)?;
//! // Open: the embedded store in `dir` (or `EngineConfig::storage` for another backend).
//! let engine = Engine::open(
//!     EngineConfig::new(&dir).definitions(workflows).with_generated_master_key(),
//! )?;
//!
//! // The org chart is commands too: a community, a grid, a grid worker.
//! let (community, grid) = (UnitId::new("tonghui")?, UnitId::new("grid-1")?);
//! let system = Acting::system(community.clone());
//! let wang = ActorId::new("wang")?;
//! for command in [
//!     OrgCommand::CreateUnit { id: community.clone(), name: "通惠社区".into(),
//!                              tier: Tier::Community, parent: None },
//!     OrgCommand::CreateUnit { id: grid.clone(), name: "第一网格".into(),
//!                              tier: Tier::Grid, parent: Some(community.clone()) },
//!     OrgCommand::RegisterActor { id: wang.clone(), name: "王".into(), kind: ActorKind::Person },
//!     OrgCommand::GrantRole { actor: wang.clone(), role: Role::new("grid_worker")?,
//!                             unit: grid.clone() },
//! ] {
//!     engine.submit(&system, Command::Org(command))?;
//! }
//!
//! // Submit: a grid worker opens a case. The outcome says where the log got to.
//! let worker = Acting::new(wang, Role::new("grid_worker")?, grid.clone());
//! let opened = engine.submit(&worker, Command::OpenCase {
//!     workflow: WorkflowId::new("streetlight")?, version: None, unit: grid.clone(),
//!     title: "路灯不亮 streetlight out".into(), description: String::new(),
//!     fields: Fields::new(), requester: None, channel: Channel::Door, place: None })?;
//! let Outcome::Case { case, .. } = opened else { unreachable!() };
//! let written = opened.position().expect("the opening was written");
//!
//! // Read: what the caller may see, with the actions they may take now.
//! let view = engine.case(&worker, case)?;
//! assert_eq!(view.state.stage, "reported");
//! assert_eq!(view.available_actions[0].id, "fix");
//! engine.submit(&worker, Command::Act { case, action: "fix".into(), fields: Fields::new(),
//!                                       expected_version: view.state.version })?;
//!
//! // Audit: every step, who took it in which role for which unit, and the chain checked.
//! let audit = engine.audit(&worker, case)?;
//! assert!(audit.chain.is_intact());
//! assert_eq!(audit.steps.last().map(|s| s.stage_after.as_str()), Some("fixed"));
//!
//! // Follow the log from the opening on (read models do this; see below).
//! let mut log = engine.log().subscribe(written);
//! assert_eq!(log.next_blocking()?.stream, case.stream());
//! # drop(log);
//! # drop(engine);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **Read models.** The crate `civicflow-projections` runs the nine read models (the case
//! board, unit inboxes, the 三率 rates, …) beside an engine with one call,
//! `Runner::beside(&engine, store, options)`, and answers a read once a model has reached
//! the position an [`Outcome`](engine::Outcome) gave back (`Runner::view_at_least`).
//!
//! **What is here.**
//! - [`engine`]: [`Engine`](engine::Engine), [`Command`](engine::Command),
//!   [`Outcome`](engine::Outcome); the one command path; the deadline scheduler; audits.
//! - [`domain`]: the pure domain. Every aggregate implements
//!   [`Aggregate`](domain::Aggregate) (a stream, `decide`, `apply`, who may see it); the
//!   org chart and its roles; workflow definitions; fields; rejections.
//! - The log: [`EventStore`] (the storage seam every backend implements), subscriptions,
//!   the hash chain ([`ChainHash`], [`VerifyReport`]), audit [`bundle`]s; the embedded
//!   backend [`SledLog`]. Its format and guarantees: `docs/design.md`.
//! - [`readmodel`]: [`ReadModelStore`](readmodel::ReadModelStore), where read models keep
//!   their rows ([`SledReadModels`] embedded).
//! - [`vault`]: requesters' contact data outside the log, encrypted per person, erasable
//!   ([`VaultStore`](vault::VaultStore); [`SledVaultStore`] embedded).
//! - [`calendar`]: working time in Asia/Shanghai, holidays and 调休.
//! - `testkit` (feature `testkit`): the given/when/then [`Scenario`](testkit::Scenario) for
//!   any aggregate, and the conformance kit every storage backend runs.
//!
//! The architecture is in `ARCHITECTURE.md` of the repository, the reasons in
//! `docs/decisions/`.

pub mod bundle;
pub mod calendar;
mod chain;
mod clock;
mod codec;
#[cfg(test)]
mod codec_fuzz;
pub mod domain;
pub mod engine;
mod error;
mod event;
mod ids;
mod private_fs;
pub mod readmodel;
mod sled;
mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod vault;

pub mod prelude;

#[cfg(feature = "fault-injection")]
pub use self::sled::FaultInjection;
pub use self::sled::{Compaction, SledLog, SledLogConfig, SledReadModels, SledVaultStore};
#[cfg(feature = "testkit")]
pub use self::sled::{SledBackend, SledPlace};
pub use chain::{ChainBreak, ChainBreakReason, ChainHash, ChainHead, VerifyReport};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use codec::DecodeError;
pub use error::{AppendError, CloseError, OpenError, ReadError, RestoreError};
pub use event::{
    payload, AppendRequest, Appended, Conflict, DomainEvent, NewEvent, PayloadError, RecordedEvent,
    StreamAppended, StreamWrite, MAX_EVENT_BYTES,
};
pub use ids::{
    Actor, ActorId, CaseId, CausationId, CorrelationId, DirectiveId, EventId, EventType,
    ExpectedVersion, IdempotencyKey, InvalidValue, ListItemId, PersonId, Position, Role, StreamId,
    UnitId, Version,
};
pub use store::backend;
pub use store::{
    AllFrom, AppendResult, CommitSignal, Completer, Completion, Cursor, Durability, EventStore,
    Follow, IdempotencyRecord, LogStats, Reached, RestoreSink, StoredIdempotency, StoredRecord,
    StreamFrom, StreamSubscription, Subscription,
};
