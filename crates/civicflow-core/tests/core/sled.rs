//! The embedded sled backend itself, below the `EventStore` seam: damaged values under the
//! log's keys (`corruption`). What every backend must do is the conformance kit's
//! (`conformance`); the root package's `tests/suite/sled/` damages a stopped store's files,
//! limits the running server's file size and injects failed syncs.

mod corruption;
