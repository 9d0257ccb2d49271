//! The civic domain, pure: state, commands, events, and `decide`/`apply` for each aggregate.
//!
//! Nothing here does I/O or reads the clock: the engine passes the moment, the org chart, the
//! workflow definitions and working time in a [`Context`]. See `docs/engine.md`.

pub mod access;
pub mod aggregate;
pub mod calendar_years;
pub mod case;
mod context;
pub mod deadline;
pub mod directive;
mod events;
pub mod fields;
pub mod lists;
pub mod merchants;
pub mod org;
pub mod person;
mod rejection;
pub mod text;
pub mod workflow;

pub use aggregate::{Aggregate, AnyEvent, Create, Decision, Fold};
pub use context::{Context, WallClockOnly, WorkingTime};
pub use rejection::Rejection;
