//! # civicflow
//!
//! Civic request handling as an event-sourced workflow engine. This facade re-exports the
//! member crates; the `civicflow` command is built from `src/main.rs`.
//!
//! - [`core`] (`civicflow-core`): the event log on sled and the types everything speaks.

pub use civicflow_core as core;
pub use civicflow_core::*;
