//! The event log's conformance kit (filled in below).
