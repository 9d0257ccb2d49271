//! The operators' dashboard: pages for the people who handle requests, served by the same
//! binary on the same tokens, scopes and engine commands as the API (issue 16; the design is
//! `docs/decisions/0012-operators-dashboard.md`, the guide `docs/dashboard.md`).
//!
//! - `session.rs`: signing in and out, the signed session cookie, CSRF and `Origin` checks;
//! - `pages/`: one file per page (or family of pages), each with its routes;
//! - `render/`: the layout, bilingual labels, forms generated from workflow fields, charts;
//! - `assets.rs` and `assets/`: the vendored htmx, our own script and stylesheet.
//!
//! Pages hold no rules: every read goes through the same read-model queries and scope checks
//! as the API's routes, every write through the same engine commands, and a refusal is the
//! API's own error, shown beside the field it names.

pub(crate) mod assets;
pub(crate) mod pages;
pub(crate) mod render;
pub(crate) mod session;

use crate::routes::RouteSpec;

/// Every route of the dashboard.
pub(crate) fn routes() -> Vec<RouteSpec> {
    let mut routes = session::routes();
    routes.extend(assets::routes());
    routes.extend(pages::routes());
    routes
}
