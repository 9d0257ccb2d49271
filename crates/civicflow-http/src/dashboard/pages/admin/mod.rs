//! The administration pages (issue 16, item 7): a hub, and a page per area (units, actors,
//! roles, tokens, workflow versions, calendar years), each listing what exists with a form
//! for each write the API offers there.
//!
//! Every page and form has the policy of its API twin's writes (community administrators:
//! `routes::org::ADMINS`, `routes::tokens::ADMINS`, the same roles for workflows and the
//! calendar), reads through the same functions as the JSON routes and submits the same engine
//! commands through them (`routes::org::create_unit_as`, `routes::tokens::issue_as`, …). A
//! form answers 303 back to its page; a refusal renders the page again with the API's status
//! and its message beside the field it names.

pub(crate) mod actors;
pub(crate) mod calendar;
pub(crate) mod roles;
pub(crate) mod tokens;
pub(crate) mod units;
pub(crate) mod workflows;

use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{html, Markup};

use crate::dashboard::render::{self, bi, Page};
use crate::dashboard::session::{PageForm, Viewer};
use crate::error::ApiError;
use crate::policy::Policy;
use crate::routes::{Content, RouteSpec};

/// Who the hub is for: those who manage tokens (`roles::MANAGE_TOKENS`, the community
/// administrators), as the navigation shows it.
const HUB: Policy = Policy::Roles(civicflow_core::domain::org::roles::MANAGE_TOKENS);

/// Every route of the administration pages.
pub(crate) fn routes() -> Vec<RouteSpec> {
    let mut routes = vec![RouteSpec {
        method: Method::GET,
        path: "/admin",
        policy: HUB,
        summary: "The administration hub (community administrators): links to the pages of units, actors, roles, tokens, workflow versions and calendar years.",
        tag: "dashboard",
        request: None,
        params: None,
        response: None,
        content: Content::Html,
        status: 200,
        also: &[],
        errors: &[],
        handler: get(hub),
    }];
    routes.extend(units::routes());
    routes.extend(actors::routes());
    routes.extend(roles::routes());
    routes.extend(tokens::routes());
    routes.extend(workflows::routes());
    routes.extend(calendar::routes());
    routes
}

async fn hub(viewer: Viewer) -> Response {
    let areas: [(&str, Markup, Markup); 6] = [
        (
            "/admin/units",
            bi("单位", "Units"),
            bi(
                "组织架构：社区、网格、企业、商铺及其他单位；新增、更名、移动、撤销。",
                "The org chart: add, rename, move and retire units.",
            ),
        ),
        (
            "/admin/actors",
            bi("人员", "Actors"),
            bi(
                "登记人员或系统，授予和收回角色。",
                "Register people and systems; grant and revoke roles.",
            ),
        ),
        (
            "/admin/roles",
            bi("角色", "Roles"),
            bi(
                "内置角色和自定义角色；定义新角色。",
                "Built-in and defined roles; define a new one.",
            ),
        ),
        (
            "/admin/tokens",
            bi("访问令牌", "Access tokens"),
            bi("发放和撤销访问令牌。", "Issue and revoke access tokens."),
        ),
        (
            "/admin/workflows",
            bi("流程版本", "Workflow versions"),
            bi(
                "流程及其各版本；上传新版本。",
                "Workflows and their versions; upload a new version.",
            ),
        ),
        (
            "/admin/calendar",
            bi("工作日历", "Business calendar"),
            bi(
                "已发布的年度节假日；发布一年。",
                "The years published; publish a year.",
            ),
        ),
    ];
    let body = html! {
        h1 { (bi("管理", "Administration")) }
        ul.admin-areas {
            @for (href, name, what) in &areas {
                li {
                    a href=(href) { (name) }
                    p.hint { (what) }
                }
            }
        }
    };
    Page::for_viewer(&viewer, "管理 Administration", body).into_response()
}

/// The breadcrumb of an area's page, back to the hub.
pub(super) fn back() -> Markup {
    html! {
        nav.breadcrumb aria-label="位置 Breadcrumb" {
            a href="/admin" { (bi("管理", "Administration")) }
        }
    }
}

/// A form that was refused: which one, the API's error, and what was sent (to fill the form
/// in again).
#[derive(Debug)]
pub(crate) struct Refused {
    /// The form's name (the prefix of its fields' ids).
    pub form: &'static str,
    /// Why.
    pub error: ApiError,
    /// The fields sent.
    pub values: PageForm,
}

impl Refused {
    /// `form` refused with `error`.
    pub(crate) fn new(form: &'static str, error: ApiError, values: PageForm) -> Self {
        Self {
            form,
            error,
            values,
        }
    }
}

/// An area's page for `viewer`: 200, or, when a form of it was `refused`, the API's status
/// with the API's error code in a `civicflow-error` meta element, as the error page carries
/// it (`render::error_page`), for tools that read the page.
pub(crate) fn area_page(
    viewer: &Viewer,
    title: &str,
    body: Markup,
    refused: Option<&Refused>,
) -> Response {
    let Some(refused) = refused else {
        return Page::for_viewer(viewer, title, body).into_response();
    };
    render::refused_page(Some(viewer), title, body, &refused.error)
}

/// One form of a page, and its refusal when it is the form refused.
#[derive(Clone, Copy)]
pub(crate) struct Form<'a> {
    name: &'static str,
    fields: &'static [&'static str],
    /// The field an error goes beside when it names none of `fields` (a text area that holds
    /// a whole document, whose keys the error names); `None`: at the top of the form.
    rest: Option<&'static str>,
    refused: Option<&'a Refused>,
}

impl<'a> Form<'a> {
    /// Form `name` with `fields`, refused when `refused` is about it.
    pub(crate) fn new(
        name: &'static str,
        fields: &'static [&'static str],
        refused: Option<&'a Refused>,
    ) -> Self {
        Self {
            name,
            fields,
            rest: None,
            refused: refused.filter(|r| r.form == name),
        }
    }

    /// Errors naming no field of the form go beside `field`.
    #[must_use]
    pub(crate) fn rest(mut self, field: &'static str) -> Self {
        self.rest = Some(field);
        self
    }

    /// The id of `field`'s control.
    pub(crate) fn id(&self, field: &str) -> String {
        format!("{}-{}", self.name, field.replace('_', "-"))
    }

    /// What was sent in `field` when this form was refused.
    pub(crate) fn value(&self, field: &str) -> Option<&'a str> {
        self.refused.and_then(|r| r.values.get(field))
    }

    /// The form field an error's `field` names: the same name, or the name with `_id` (the
    /// core names `unit` what a body calls `unit_id`).
    fn named(&self, error_field: &str) -> Option<&'static str> {
        self.fields
            .iter()
            .copied()
            .find(|f| *f == error_field || f.strip_suffix("_id").is_some_and(|s| s == error_field))
    }

    /// The error to show beside `field`.
    pub(crate) fn error(&self, field: &str) -> Option<&'a ApiError> {
        let refused = self.refused?;
        let named = refused.error.field.as_deref().and_then(|f| self.named(f));
        match named {
            Some(named) => (named == field).then_some(&refused.error),
            None => (self.rest == Some(field)).then_some(&refused.error),
        }
    }

    /// The error to show at the top of the form: one that names none of its fields.
    pub(crate) fn top_error(&self) -> Option<&'a ApiError> {
        let refused = self.refused?;
        let named = refused.error.field.as_deref().and_then(|f| self.named(f));
        (named.is_none() && self.rest.is_none()).then_some(&refused.error)
    }

    /// The error at the top of the form, if any.
    pub(crate) fn alert(&self) -> Markup {
        html! {
            @if let Some(error) = self.top_error() {
                p.error #(format!("{}-error", self.name)) role="alert" { (message(error)) }
            }
        }
    }
}

/// An error's words, with the field it names (unless the words begin with it already).
fn message(error: &ApiError) -> Markup {
    let field = error
        .field
        .as_deref()
        .filter(|f| !error.message.starts_with(&format!("{f}:")));
    html! {
        @if let Some(field) = field { strong { (field) } ": " }
        (error.message)
    }
}

/// "required", beside a label.
fn required_mark(required: bool) -> Markup {
    html! { @if required { " " span.required { (bi("必填", "required")) } } }
}

/// The error of `field` under its control.
fn field_error(form: &Form<'_>, field: &str) -> Markup {
    html! {
        @if let Some(error) = form.error(field) {
            p.error #(format!("{}-error", form.id(field))) role="alert" { (message(error)) }
        }
    }
}

/// A one-line text field.
pub(crate) fn text_field(
    form: &Form<'_>,
    field: &'static str,
    label: Markup,
    required: bool,
    max: usize,
    hint: Option<Markup>,
) -> Markup {
    let id = form.id(field);
    let error = form.error(field).is_some();
    let hint_id = format!("{id}-hint");
    let error_id = format!("{id}-error");
    let described: Vec<&str> = [
        hint.is_some().then_some(hint_id.as_str()),
        error.then_some(error_id.as_str()),
    ]
    .into_iter()
    .flatten()
    .collect();
    html! {
        div.field {
            label for=(id) { (label) (required_mark(required)) }
            input #(id) type="text" name=(field) value=[form.value(field)] required[required]
                maxlength=(max) autocomplete="off" spellcheck="false"
                aria-invalid=[error.then_some("true")]
                aria-describedby=[(!described.is_empty()).then(|| described.join(" "))];
            @if let Some(hint) = hint { p.hint #(hint_id) { (hint) } }
            (field_error(form, field))
        }
    }
}

/// A text field with suggestions (a `<datalist>` of the page, by its id).
pub(crate) fn suggest_field(
    form: &Form<'_>,
    field: &'static str,
    label: Markup,
    list: &str,
    max: usize,
) -> Markup {
    let id = form.id(field);
    let error = form.error(field).is_some();
    html! {
        div.field {
            label for=(id) { (label) (required_mark(true)) }
            input #(id) type="text" name=(field) value=[form.value(field)] required
                list=(list) maxlength=(max) autocomplete="off" spellcheck="false"
                aria-invalid=[error.then_some("true")]
                aria-describedby=[error.then(|| format!("{id}-error"))];
            (field_error(form, field))
        }
    }
}

/// A choice among `options` (value, words); `blank`: a first choice "—" with an empty value.
pub(crate) fn select_field(
    form: &Form<'_>,
    field: &'static str,
    label: Markup,
    required: bool,
    blank: Option<Markup>,
    options: &[(String, Markup)],
) -> Markup {
    let id = form.id(field);
    let error = form.error(field).is_some();
    let chosen = form.value(field);
    html! {
        div.field {
            label for=(id) { (label) (required_mark(required)) }
            select #(id) name=(field) required[required]
                aria-invalid=[error.then_some("true")]
                aria-describedby=[error.then(|| format!("{id}-error"))] {
                @if let Some(blank) = &blank { option value="" { (blank) } }
                @for (value, words) in options {
                    option value=(value) selected[chosen == Some(value.as_str())] { (words) }
                }
            }
            (field_error(form, field))
        }
    }
}

/// A text area for a whole document (TOML).
pub(crate) fn text_area(
    form: &Form<'_>,
    field: &'static str,
    label: Markup,
    rows: u32,
    hint: Markup,
) -> Markup {
    let id = form.id(field);
    let error = form.error(field).is_some();
    let hint_id = format!("{id}-hint");
    let described = if error {
        format!("{hint_id} {id}-error")
    } else {
        hint_id.clone()
    };
    html! {
        div.field {
            label for=(id) { (label) (required_mark(true)) }
            textarea #(id) name=(field) rows=(rows) required spellcheck="false"
                aria-invalid=[error.then_some("true")] aria-describedby=(described) {
                @if let Some(value) = form.value(field) { (value) }
            }
            div.hint #(hint_id) { (hint) }
            (field_error(form, field))
        }
    }
}

/// The hidden CSRF field every form carries.
pub(crate) fn csrf(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

/// A form's text value: empty when absent.
pub(crate) fn text(form: &PageForm, field: &str) -> String {
    form.get(field).unwrap_or_default().trim().to_owned()
}

/// A form's optional value: `None` when absent or blank.
pub(crate) fn optional(form: &PageForm, field: &str) -> Option<String> {
    form.get(field)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// A value of a fixed set (`tier`, `kind`), read as the API's JSON reads it.
///
/// # Errors
/// 400 naming the field, with the values it takes.
pub(crate) fn choice<T: serde::de::DeserializeOwned>(
    form: &PageForm,
    field: &str,
    default: Option<T>,
) -> Result<T, ApiError> {
    match (optional(form, field), default) {
        (None, Some(default)) => Ok(default),
        (value, _) => {
            let value = value.unwrap_or_default();
            serde_json::from_value(serde_json::Value::String(value.clone())).map_err(|_| {
                ApiError::bad_request(format!("{field}: {value:?} is not one of the choices"))
                    .field(field)
            })
        }
    }
}

/// How a page's time is shown.
pub(crate) fn when(text: &str) -> Markup {
    let short: String = text.chars().take(16).collect::<String>().replace('T', " ");
    html! { time datetime=(text) { (short) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(field: Option<&str>) -> Refused {
        let mut error = ApiError::bad_request("no");
        error.field = field.map(str::to_owned);
        Refused::new(
            "f",
            error,
            PageForm(vec![("name".into(), "<b>x</b>".into())]),
        )
    }

    #[test]
    fn an_error_goes_beside_the_field_it_names_or_at_the_top() {
        let r = refused(Some("unit"));
        let form = Form::new("f", &["actor", "unit_id"], Some(&r));
        assert!(form.error("unit_id").is_some(), "unit names unit_id");
        assert!(form.error("actor").is_none());
        assert!(form.top_error().is_none());
        let r = refused(Some("expected_version"));
        let form = Form::new("f", &["actor"], Some(&r));
        assert!(form.top_error().is_some());
        let form = Form::new("f", &["definition"], Some(&r)).rest("definition");
        assert!(form.error("definition").is_some());
        assert!(form.top_error().is_none());
        let other = Form::new("g", &["actor"], Some(&r));
        assert!(other.top_error().is_none(), "another form's refusal");
        assert_eq!(
            Form::new("f", &[], Some(&r)).value("name"),
            Some("<b>x</b>")
        );
    }

    #[test]
    fn a_choice_is_read_as_the_api_reads_it() {
        use crate::routes::org::TierName;
        let form = PageForm(vec![("tier".into(), "grid".into())]);
        assert!(matches!(
            choice::<TierName>(&form, "tier", None),
            Ok(TierName::Grid)
        ));
        let form = PageForm(vec![("tier".into(), "castle".into())]);
        let error = choice::<TierName>(&form, "tier", None).expect_err("not a tier");
        assert_eq!(error.field.as_deref(), Some("tier"));
    }
}
