//! The pages, one module per page or family of pages; each lists its own routes.

pub(crate) mod admin;
pub(crate) mod board;
pub(crate) mod case;
pub(crate) mod directives;
pub(crate) mod mine;
pub(crate) mod new_case;
pub(crate) mod reports;

use crate::routes::RouteSpec;

/// Every page's routes.
pub(crate) fn routes() -> Vec<RouteSpec> {
    let mut routes = Vec::new();
    routes.extend(board::routes());
    routes.extend(case::routes());
    routes.extend(mine::routes());
    routes.extend(new_case::routes());
    routes.extend(directives::routes());
    routes.extend(reports::routes());
    routes.extend(admin::routes());
    routes
}
