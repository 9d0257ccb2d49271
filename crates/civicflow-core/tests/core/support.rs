//! What several modules share: `case_store`, the small store of the audit-bundle tests.

pub mod case_store;
