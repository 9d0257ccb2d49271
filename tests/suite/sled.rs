//! The embedded sled backend itself, below the `EventStore` seam: what only a store on sled's
//! files can suffer. Bytes of a stopped store's files changed (`damaged_files`; one chunk's
//! payload under sled's checksums for `civicflow verify`, `broken_chain`), a real file-size
//! limit on the running server (`disk_full`), failed syncs injected into the log
//! (`log_poison`), and a seal that cannot write its file reported as the log's upkeep
//! failing (`upkeep`). What every backend must do is the conformance kit's
//! (`crates/civicflow-core/tests/core/conformance.rs`); damaged values under the log's keys are
//! core's `sled::corruption`; SIGKILL during appends is `tests/log_crash.rs`.

mod broken_chain;
mod damaged_files;
mod disk_full;
mod log_poison;
mod upkeep;
