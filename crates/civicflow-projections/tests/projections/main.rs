//! civicflow-projections' integration tests, one test binary (`projections`): the runner on a
//! real log and store (`runner`), workers keeping pace through the shared feed (`pacing`), concurrent writers under a live projection (`no_skips`),
//! and each read model on histories built through the engine (`models_cases`,
//! `models_other`, `models_open311`). One module per area; `common` is what they share.
//!
//! Every file directly under `tests/` is a test binary that links the whole stack; these
//! modules were such files, and are one binary so that it is built and linked once.
//!
//! Run one module or one test by its path: `cargo test -p civicflow-projections --test
//! projections runner` (`-- --list` names them all).
//!
//! The tests of every module run in parallel threads of this one process. None changes what
//! is global to it; scratch directories come from `common::Scratch` (the process id, the
//! test's name and one counter for the whole binary) or carry a prefix of their own.

mod common;

mod models_cases;
mod models_open311;
mod models_other;
mod no_skips;
mod pacing;
mod runner;
