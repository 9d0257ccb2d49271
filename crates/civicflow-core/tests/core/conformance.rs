//! The event log's conformance kit (`civicflow_core::testkit::conformance`) against the
//! embedded backend, `SledLog`: every check of the kit is a test here.
//!
//! `cargo test -p civicflow-core --test core conformance::`; `CIVICFLOW_PROPTEST_CASES=1000`
//! runs the model test longer (in a release build: `--release`), `CIVICFLOW_PROPTEST_SEED=N`
//! replays the seed a failure named. What only sled does is tested beside it: failed syncs
//! (the root package's `tests/suite/sled/log_poison.rs`), SIGKILL during appends
//! (`tests/log_crash.rs`), damaged bytes (`sled::corruption` here,
//! `tests/suite/sled/damaged_files.rs`).

// The embedded backend's factory for the kit is `civicflow_core::SledBackend` (feature
// `testkit`): places in temporary directories, sled's default durability, the kit's tuning
// as sled's `index_flush_events`.
civicflow_core::event_store_conformance!(civicflow_core::SledBackend::new());
