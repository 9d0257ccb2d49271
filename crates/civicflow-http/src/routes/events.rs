//! Routes: events (see `docs/service.md`).

use super::RouteSpec;

/// The routes of this module.
pub fn routes() -> Vec<RouteSpec> {
    Vec::new()
}
