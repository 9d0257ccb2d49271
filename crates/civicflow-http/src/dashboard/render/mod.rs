//! How every page is written out: the layout around a page's body, the headers every HTML
//! answer carries (a strict Content-Security-Policy among them), errors as pages, and the
//! small pieces every page uses (bilingual labels, times, forms).

pub(crate) mod chart;
pub(crate) mod form;
pub(crate) mod labels;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use super::assets;
use super::session::Viewer;
use crate::error::ApiError;

pub(crate) use labels::bi;

/// The Content-Security-Policy of every page: nothing but this service's own scripts,
/// styles, images and connections; no inline script or style anywhere; no framing.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// A page to answer: its title, body, status, and who it is for (the navigation).
pub(crate) struct Page {
    title: String,
    body: Markup,
    status: StatusCode,
    viewer: Option<Viewer>,
}

impl Page {
    /// A 200 page without navigation (the sign-in page).
    pub(crate) fn new(title: impl Into<String>, body: Markup) -> Self {
        Self {
            title: title.into(),
            body,
            status: StatusCode::OK,
            viewer: None,
        }
    }

    /// A 200 page for `viewer`, with the navigation their role has.
    pub(crate) fn for_viewer(viewer: &Viewer, title: impl Into<String>, body: Markup) -> Self {
        Self::new(title, body).viewer(viewer)
    }

    /// With the navigation of `viewer`.
    #[must_use]
    pub(crate) fn viewer(mut self, viewer: &Viewer) -> Self {
        self.viewer = Some(viewer.clone());
        self
    }

    /// With another status (a form answered 422 with its errors beside the fields).
    #[must_use]
    pub(crate) fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let markup = layout(&self.title, self.viewer.as_ref(), self.body);
        html_response(self.status, markup.into_string())
    }
}

/// An HTML fragment (what htmx swaps into a page), with the same headers as a page.
pub(crate) fn fragment(markup: Markup) -> Response {
    html_response(StatusCode::OK, markup.into_string())
}

/// `body` as an HTML answer with the headers every page carries.
pub(crate) fn html_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    secure_headers(response.headers_mut());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// The headers of every HTML answer: the CSP, no sniffing, no referrer to other sites (a
/// case's URL names it), never cached (a page shows one caller's cases), never framed.
/// (`same-origin`, not `no-referrer`: under `no-referrer` a browser sends `Origin: null` with
/// the dashboard's own forms, and the `Origin` check could not tell them from forged ones.)
pub(crate) fn secure_headers(headers: &mut axum::http::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// 303 See Other to `location` (after a form: the browser then GETs it), setting `cookie`.
pub(crate) fn see_other(location: &str, cookie: Option<String>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    secure_headers(response.headers_mut());
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The navigation a viewer's role has.
fn nav(viewer: &Viewer) -> Markup {
    use civicflow_core::domain::org::roles;
    let role = viewer.acting().role.as_str();
    let staff = roles::ACT_FOR_UNITS.contains(&role);
    let admin = roles::MANAGE_TOKENS.contains(&role);
    html! {
        nav aria-label="主导航 Main" {
            ul {
                @if staff {
                    li { a href="/board" { (bi("案件", "Cases")) } }
                    li { a href="/directives" { (bi("督办指令", "Directives")) } }
                    // The staff reports are for READ_STAFF_REPORTS; everyone who acts for a
                    // unit reads its overdue report.
                    @if roles::READ_STAFF_REPORTS.contains(&role) {
                        li { a href="/reports" { (bi("报表", "Reports")) } }
                    } @else {
                        li { a href="/reports/overdue" { (bi("督办报表", "Overdue report")) } }
                    }
                }
                li { a href="/mine" { (bi("我的诉求", "My requests")) } }
                li { a href="/cases/new" { (bi("新建", "New request")) } }
                @if admin {
                    li { a href="/admin" { (bi("管理", "Administration")) } }
                }
            }
        }
        div.who {
            span { (viewer.acting().actor.as_str()) " · " (labels::role(role)) " · " (viewer.acting().unit.as_str()) }
            @if viewer.session.is_some() {
                form method="post" action="/session/end" {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    button type="submit" { (bi("退出", "Sign out")) }
                }
            }
        }
    }
}

/// The whole document around a page's body.
pub(crate) fn layout(title: &str, viewer: Option<&Viewer>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // htmx must not inject its indicator style (the CSP has no inline style),
                // nor evaluate anything it is sent.
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"selfRequestsOnly":true}"#;
                title { (title) " · civicflow" }
                // No favicon request (and no 404 in every page's console).
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(assets::url(assets::STYLE));
                script src=(assets::url(assets::HTMX)) defer {}
                script src=(assets::url(assets::DASHBOARD_JS)) defer {}
            }
            body {
                a.skip href="#main" { (bi("跳到正文", "Skip to content")) }
                header.top {
                    a.brand href="/" { "civicflow" }
                    @if let Some(viewer) = viewer { (nav(viewer)) }
                }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

/// An error, answered as a page: the same status and words as the API's error.
#[derive(Debug)]
pub(crate) struct PageError {
    error: ApiError,
    viewer: Option<Viewer>,
}

impl PageError {
    /// With the navigation of `viewer`.
    #[must_use]
    pub(crate) fn viewer(mut self, viewer: &Viewer) -> Self {
        self.viewer = Some(viewer.clone());
        self
    }
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            viewer: None,
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        error_page(&self.error, self.viewer.as_ref())
    }
}

/// A page answered for a refusal (an error page, or a form shown again with the refusal
/// beside its field): at the error's status, carrying the API's stable error code in a
/// `<meta name="civicflow-error">` element, for tools that read pages (the authorization
/// matrix reads it as it reads a JSON error's code).
pub(crate) fn refused_page(
    viewer: Option<&Viewer>,
    title: &str,
    body: Markup,
    error: &ApiError,
) -> Response {
    let page = layout(title, viewer, body).into_string().replacen(
        "<meta charset=\"utf-8\">",
        &format!(
            "<meta charset=\"utf-8\"><meta name=\"civicflow-error\" content=\"{}\">",
            error.code
        ),
        1,
    );
    html_response(error.status, page)
}

/// `error` as a page.
pub(crate) fn error_page(error: &ApiError, viewer: Option<&Viewer>) -> Response {
    let heading = match error.status.as_u16() {
        400 => bi("请求有误", "Bad request"),
        401 => bi("请先登录", "Sign in first"),
        403 => bi("无权操作", "Not allowed"),
        404 => bi("未找到", "Not found"),
        409 => bi("已被他人更改", "Changed by someone else"),
        413 => bi("内容过大", "Too large"),
        415 => bi("格式不支持", "Unsupported format"),
        422 => bi("无法办理", "Refused"),
        429 => bi("请求过于频繁", "Too many requests"),
        503 => bi("暂时无法服务", "Unavailable for now"),
        _ => bi("出错了", "Something went wrong"),
    };
    let body = html! {
        section.error-page role="alert" {
            h1 { (heading) }
            p { @if let Some(field) = &error.field { strong { (field) } ": " } (error.message) }
            @if error.status == StatusCode::UNAUTHORIZED {
                p { a href="/" { (bi("登录", "Sign in")) } }
            } @else {
                p { a href="/" { (bi("返回首页", "Back to the start")) } }
            }
        }
    };
    let mut response = refused_page(
        viewer,
        &format!("{} {}", error.status.as_u16(), error.code),
        body,
        error,
    );
    if error.status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"civicflow\""),
        );
    }
    if let Some(seconds) = error.retry_after {
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}
