//! The `civicflow` command's subcommands, one module each.

pub mod restore;
pub mod serve;
pub mod store;
