//! The root package's integration tests, one test binary (`suite`): behaviour through the
//! public API, the service in-process and over real sockets, the `civicflow` command (the real
//! binary, `env!("CARGO_BIN_EXE_civicflow")`), and the reliability proofs of issue 7
//! (`docs/reliability.md`). One module per area; `sled/` holds the tests of the embedded sled
//! backend itself. The crash tests `tests/log_crash.rs` and `tests/projections_crash.rs` are
//! binaries of their own (`harness = false`: each is its own parent and child process).
//!
//! Every file directly under `tests/` is a test binary that links the whole stack; these
//! modules were such files, and are one binary so that it is built and linked once.
//!
//! Run one module or one test by its path: `cargo test --test suite http_authz`,
//! `cargo test --test suite sled::disk_full -- --nocapture`, `cargo test --test suite --
//! --exact cli::verify_and_head_report_an_intact_store` (`-- --list` names them all).
//!
//! The tests of every module run in parallel threads of this one process, so what a test
//! changes in its process it changes for all of them. The rules that keep them apart:
//!
//! - Scratch directories come from `common::TempDir` (the process id and one counter for the
//!   whole binary), never a fixed name.
//! - No test changes what is global to the process in place: the environment (`set_var`),
//!   the current directory, signal handlers, resource limits, a global `tracing`
//!   subscriber. Child processes get their environment per `Command` (`env`, `env_remove`)
//!   and their limits from `prlimit` (`sled::disk_full`). The one test that must install a
//!   global subscriber (`http_limits::the_authorization_header_never_reaches_the_logs`, which
//!   reads every log line of the process) runs alone in a process of its own:
//!   `common::alone::in_own_process` runs this binary again with that test only.
//! - A `civicflow serve` child listens on a port it chose itself (`--addr 127.0.0.1:0`, read
//!   back from its stderr by `common::serve::ServeProcess`): a port picked here and freed for
//!   the child could be taken by a server of a test running beside it before the child binds
//!   it, and the test would then talk to the wrong server.

// Shared with `tests/projections_crash.rs` (and, in part, the benchmarks), so beside them.
#[path = "../common/mod.rs"]
mod common;

mod cli;
mod cli_erase;
mod cli_init;
mod cli_restore;
mod cli_time_zone;
mod cli_tools;
mod cli_workflows;
mod crash_service;
mod dashboard_admin;
mod dashboard_browser;
mod dashboard_cases;
mod dashboard_reports;
mod dashboard_sessions;
mod deploy_walkthrough;
mod fuzz_http;
mod http_admin;
mod http_authz;
mod http_calendar;
mod http_cases;
mod http_connections;
mod http_events;
mod http_hygiene;
mod http_limits;
mod http_persons;
mod http_reports;
mod http_retries;
mod http_schemas;
mod http_scope;
mod http_standing;
mod http_tls;
mod http_tracing;
mod open311_get;
mod open311_post;
mod open311_services;
mod postgres;
mod projections_equivalence;
mod readme_quickstart;
mod security;
mod sled;
