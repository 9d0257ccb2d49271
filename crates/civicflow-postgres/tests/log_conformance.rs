//! The event log's conformance kit (`civicflow_core::testkit::conformance`), unchanged, on
//! PostgreSQL: every check the embedded store passes, against a real server (the test
//! process's own throwaway cluster).

use civicflow_postgres::testing::PgBackend;

civicflow_core::event_store_conformance!(PgBackend::new());
