//! civicflow's event log and vault on PostgreSQL: several service instances on one shared,
//! hash-chained log.
//!
//! The embedded sled store stays the default; this crate is the second backend behind the
//! storage seam (`civicflow_core::EventStore`, `civicflow_core::vault::VaultStore`). Only this
//! crate knows the database driver. What it guarantees and what those guarantees rest on is
//! in `docs/postgres.md`; the design is `docs/decisions/0011-postgresql-backend.md`.
//!
//! - [`PgLog`]: the log, idempotency records and subscriptions. Positions are taken under the
//!   lock of one head row, in commit order, so no reader ever sees position N+1 before N.
//! - [`PgVaultStore`]: the vault's wrapped keys, ciphertexts and erasure markers.
//! - `testing` (feature `testkit`): throwaway clusters for tests and benchmarks.

mod database;
mod log;
mod schema;
#[cfg(feature = "testkit")]
pub mod testing;
mod vault;

pub use database::{is_postgres_url, redact, ConnectError, Database, StoreUrl, DEFAULT_SCHEMA};
pub use log::PgLog;
pub use schema::SCHEMA_VERSION;
pub use vault::PgVaultStore;
