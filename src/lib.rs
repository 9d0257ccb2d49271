//! # civicflow
//!
//! Civic request handling as an event-sourced workflow engine. This facade re-exports the
//! member crates; the `civicflow` command is built from `src/main.rs`.
//!
//! - [`core`] (`civicflow-core`): the event log, the domain, the engine, the calendar and the
//!   personal-data vault.
//! - [`projections`] (`civicflow-projections`): read models with a runner that never skips an
//!   event and rebuilds without taking reads down.
//! - [`http`] (`civicflow-http`): the HTTP service.
//! - [`demo`]: the Tonghui demo data and a run of every closed loop.

pub use civicflow_core as core;
pub use civicflow_http as http;
pub use civicflow_projections as projections;

pub mod demo;
pub use civicflow_core::*;
