//! The `civicflow` command's subcommands, one module each.

pub mod serve;
pub mod store;
