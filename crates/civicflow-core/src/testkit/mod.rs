//! What an embedder needs to test code of its own against civicflow (feature `testkit`):
//!
//! - [`Scenario`]: given / when / then for any aggregate, with a custom workflow, org chart
//!   and calendar; the harness civicflow's own workflow tests use.
//! - [`conformance`]: the event log's behavioural tests, written once against
//!   [`EventStore`](crate::EventStore); a storage backend runs them all with one macro.
//! - [`vault`]: the vault's conformance kit, the same for
//!   [`VaultStore`](crate::vault::VaultStore).
//! - [`Intercept`] and [`Intercepted`]: a test double of a log that says only what it
//!   changes (counting what is read, dropping events on purpose) and passes the rest on.

pub mod conformance;
mod intercept;
mod scenario;
pub mod vault;

pub use intercept::{Intercept, Intercepted};
pub use scenario::{org_chart, readable, readable_in, Mismatch, Scenario, Then, When};
