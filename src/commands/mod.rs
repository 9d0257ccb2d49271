//! The `civicflow` command's subcommands, one module each.

pub mod calendar;
pub mod restore;
pub mod serve;
pub mod store;
