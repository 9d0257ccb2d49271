//! What tests and benchmarks need to run against a real PostgreSQL (feature `testkit`).
//!
//! - [`Cluster`]: a throwaway PostgreSQL cluster of the test process's own, started from the
//!   machine's PostgreSQL binaries, so that no test depends on a server someone left running.

mod cluster;

pub use cluster::Cluster;
