//! The dashboard's static files, embedded in the binary: the vendored htmx, our own script
//! and stylesheet. Each is served under a name with its content's hash
//! (`/assets/style.3f2a….css`) and `Cache-Control: immutable`, so a browser fetches it once
//! per release and never a stale one; no page waits on another host.

use std::sync::LazyLock;

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::path::Path;
use crate::policy::Policy;
use crate::routes::{Content, RouteSpec};

/// An embedded file.
pub(crate) struct Asset {
    /// Its name without the hash (`style.css`).
    pub name: &'static str,
    /// Its media type.
    pub media_type: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

/// The stylesheet.
pub(crate) const STYLE: &Asset = &Asset {
    name: "style.css",
    media_type: "text/css; charset=utf-8",
    bytes: include_bytes!("assets/style.css"),
};
/// htmx, vendored (`assets/VENDORED.md`).
pub(crate) const HTMX: &Asset = &Asset {
    name: "htmx-2.0.11.min.js",
    media_type: "text/javascript; charset=utf-8",
    bytes: include_bytes!("assets/htmx-2.0.11.min.js"),
};
/// Our own script (live updates).
pub(crate) const DASHBOARD_JS: &Asset = &Asset {
    name: "dashboard.js",
    media_type: "text/javascript; charset=utf-8",
    bytes: include_bytes!("assets/dashboard.js"),
};

const ALL: [&Asset; 3] = [STYLE, HTMX, DASHBOARD_JS];

/// Each asset's served name, computed once.
static SERVED: LazyLock<Vec<(String, &'static Asset)>> = LazyLock::new(|| {
    ALL.iter()
        .map(|asset| (served_name(asset), *asset))
        .collect()
});

/// `style.css` → `style.<first 16 hex digits of its SHA-256>.css`.
fn served_name(asset: &Asset) -> String {
    let hash: String = Sha256::digest(asset.bytes)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    match asset.name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{hash}.{ext}"),
        None => format!("{}.{hash}", asset.name),
    }
}

/// The URL a page links `asset` by.
pub(crate) fn url(asset: &Asset) -> String {
    let name = SERVED
        .iter()
        .find(|(_, a)| std::ptr::eq(*a, asset))
        .map_or_else(|| served_name(asset), |(n, _)| n.clone());
    format!("/assets/{name}")
}

/// The route of the assets.
pub(crate) fn routes() -> Vec<RouteSpec> {
    vec![RouteSpec {
        method: Method::GET,
        path: "/assets/{file}",
        policy: Policy::Public,
        summary: "A static file of the dashboard (its stylesheet and scripts), by the name with its content's hash that the pages link; cached for good.",
        tag: "dashboard",
        request: None,
        params: None,
        response: None,
        content: Content::Asset,
        status: 200,
        also: &[],
        errors: &[404],
        handler: get(serve),
    }]
}

async fn serve(Path(file): Path<String>) -> Response {
    let Some((_, asset)) = SERVED.iter().find(|(name, _)| *name == file) else {
        return ApiError::not_found(&format!("asset {file}"))
            .field("file")
            .into_response();
    };
    let mut response = (StatusCode::OK, asset.bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.media_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vendored files are the ones `assets/VENDORED.md` records, byte for byte.
    #[test]
    fn vendored_files_are_the_recorded_ones() {
        let table = include_str!("assets/VENDORED.md");
        let hash: String = Sha256::digest(HTMX.bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let row = table
            .lines()
            .find(|l| l.contains(HTMX.name))
            .expect("htmx has a row in VENDORED.md");
        assert!(
            row.contains(&hash),
            "htmx's SHA-256 {hash} is not in its row: {row}"
        );
    }

    #[test]
    fn served_names_carry_the_content_hash() {
        let name = served_name(STYLE);
        assert!(
            name.starts_with("style.") && name.ends_with(".css"),
            "{name}"
        );
        assert_eq!(name.len(), "style..css".len() + 16);
        assert_eq!(url(STYLE), format!("/assets/{name}"));
    }
}
