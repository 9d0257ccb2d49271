//! What an embedder needs to test code of its own against civicflow (feature `testkit`):
//!
//! - [`Scenario`]: given / when / then for any aggregate, with a custom workflow, org chart
//!   and calendar; the harness civicflow's own workflow tests use.
//! - [`conformance`]: the event log's behavioural tests, written once against
//!   [`EventStore`](crate::EventStore); a storage backend runs them all with one macro.

pub mod conformance;
mod scenario;

pub use scenario::{org_chart, readable, readable_in, Mismatch, Scenario, Then, When};
