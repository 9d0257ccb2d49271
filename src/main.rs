//! The `civicflow` command.
fn main() {}
