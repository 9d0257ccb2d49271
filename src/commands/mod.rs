//! The `civicflow` command's subcommands, one module each.

pub mod backend;
pub mod calendar;
pub mod config;
pub mod erase;
pub mod init;
pub mod restore;
pub mod serve;
pub mod store;
pub mod workflows;

use civicflow::core::calendar::Zone;

/// `--time-zone NAME`: an IANA zone of the time zone database (`Asia/Shanghai`,
/// `Europe/Berlin`); an unknown name is refused with the calendar's words.
pub fn parse_zone(name: &str) -> Result<Zone, String> {
    Zone::named(name).map_err(|e| e.to_string())
}
