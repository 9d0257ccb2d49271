//! The PostgreSQL backend through the whole stack, on real servers: every test here uses a
//! throwaway cluster of this test process's own (`civicflow_postgres::testing::Cluster`,
//! started from the machine's PostgreSQL binaries; the tests fail, never skip, when they are
//! missing). The backend's own tests (the conformance kit, several instances racing, dropped
//! connections, restarts) are in `crates/civicflow-postgres/tests/`.

mod cli;
mod engine;
mod service;
