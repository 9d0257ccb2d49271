//! civicflow-core's integration tests, one test binary (`core`): the log's conformance kit
//! against sled, the engine end to end, domain tests as data, property tests of the
//! invariants, audit bundles (and their fuzzing); `sled/` holds the tests of the embedded sled
//! backend itself. One module per area.
//!
//! Every file directly under `tests/` is a test binary that links the whole crate and its
//! test kit; these modules were such files, and are one binary so that it is built and
//! linked once.
//!
//! Run one module or one test by its path: `cargo test -p civicflow-core --test core
//! conformance`, `cargo test -p civicflow-core --test core sled::corruption` (`-- --list`
//! names them all).

mod bundle;
mod bundle_fuzz;
mod conformance;
mod engine;
mod invariants;
mod sled;
mod support;
mod workflows;
