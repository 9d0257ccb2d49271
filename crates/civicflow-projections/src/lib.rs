//! # civicflow-projections
//!
//! Read models of the civicflow log, built with nothing but `civicflow-core`'s public API.
//!
//! - [`Runner`] runs [`Projection`]s: each from its checkpoint, committing its rows and its
//!   checkpoint together, catching up and then following the log live, rebuilding a new
//!   version blue/green, stopping at an event it cannot apply without holding the others up.
//! - [`Table`], [`Tx`] and [`View`] are the typed rows projections write and readers read.
//! - `models` holds civicflow's nine read models: the case board, unit inboxes, the overdue
//!   and escalation report, directive progress, the 三率 rates, shop standing, the three
//!   lists, community statistics and the Open311 requests.
//!
//! The design is in `docs/projections.md` of the repository.

mod event;
mod feed;
pub mod models;
mod runner;
mod table;

pub use event::{decode_event, Decoded, Event};
pub use runner::{FreshnessError, Phase, Projection, Runner, RunnerOptions, Status};
pub use table::{ProjectionError, Row, RowEntry, Table, Tx, View};
