//! civicflow-core's integration tests, one test binary (`core`): the log's conformance kit
//! against sled, the engine end to end, domain tests as data, property tests of the
//! invariants, audit bundles (and their fuzzing), the golden fixtures of every event payload
//! and version (`event_versions`); `sled/` holds the tests of the embedded sled
//! backend itself. One module per area.
//!
//! Every file directly under `tests/` is a test binary that links the whole crate and its
//! test kit; these modules were such files, and are one binary so that it is built and
//! linked once.
//!
//! Run one module or one test by its path: `cargo test -p civicflow-core --test core
//! conformance`, `cargo test -p civicflow-core --test core sled::corruption` (`-- --list`
//! names them all).
//!
//! The tests of every module run in parallel threads of this one process. None changes what
//! is global to it (the environment, the current directory, signal handlers, a global
//! subscriber). Scratch directories carry the process id and a prefix of their module
//! (`conformance`, `engine`, `invariants`, `corruption`) with a name or counter unique in it;
//! `bundle` and `bundle_fuzz` share `support::case_store`'s, which adds a counter of its own.

mod administration;
mod bundle;
mod bundle_fuzz;
mod calendar_years;
mod conformance;
mod engine;
mod event_versions;
mod invariants;
mod sled;
mod support;
mod workflows;
