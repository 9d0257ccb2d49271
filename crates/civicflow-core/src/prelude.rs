//! The names an embedder uses most, in one import: `use civicflow_core::prelude::*;`.
//!
//! The engine and its commands, the aggregate trait, the org chart, workflows and fields,
//! the log's seam and its ids. Everything else is in its module.

pub use crate::domain::aggregate::{Aggregate, Decision};
pub use crate::domain::case::{Case, CaseCommand, CaseState, Channel};
pub use crate::domain::fields::{FieldValue, Fields};
pub use crate::domain::org::{Acting, ActorKind, OrgChart, OrgCommand, Tier};
pub use crate::domain::workflow::{DefinitionRegistry, WorkflowId};
pub use crate::domain::Rejection;
pub use crate::engine::{
    CaseView, Command, Engine, EngineConfig, EngineError, Outcome, Requester, Storage, SubmitError,
};
pub use crate::{
    ActorId, CaseId, Clock, DirectiveId, EventStore, ManualClock, Position, RecordedEvent, Role,
    StreamId, Subscription, SystemClock, Timestamp, UnitId, Version,
};
