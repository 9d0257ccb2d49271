//! The units page: the org chart as the caller sees it (`GET /api/v1/units`), as a tree by
//! tier; forms to add a unit (`POST /api/v1/units`), rename or move one
//! (`PATCH /api/v1/units/{id}`) and retire one (`POST /api/v1/units/{id}/retire`).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post};
use civicflow_core::UnitId;
use maud::{html, Markup};
use schemars::JsonSchema;
use serde::Deserialize;

use super::{
    area_page, back, choice, csrf, optional, select_field, text, text_field, Form, Refused,
};
use crate::dashboard::render::{self, bi, PageError};
use crate::dashboard::session::{PageForm, Viewer};
use crate::error::ApiError;
use crate::json::Validate;
use crate::path::Path;
use crate::request_id::WriteOptions;
use crate::routes::org::{self, NewUnit, TierName, UnitAnswer, UnitChange, ADMINS};
use crate::routes::{Content, RouteSpec};
use crate::state::AppState;

const PAGE: &str = "/admin/units";

/// The routes of the units page.
pub(crate) fn routes() -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            method: Method::GET,
            path: PAGE,
            policy: ADMINS,
            summary: "The units page (community administrators): the org chart as the caller sees it, as a tree by tier, with forms to add, rename or move, and retire units.",
            tag: "dashboard",
            request: None,
            params: None,
            response: None,
            content: Content::Html,
            status: 200,
            also: &[],
            errors: &[503],
            handler: get(page),
        },
        RouteSpec {
            method: Method::POST,
            path: PAGE,
            policy: ADMINS,
            summary: "Add a unit (a form: id, name, tier, parent; no parent: a new community, for the store's administrators), as POST /api/v1/units: 303 to the units page; a refusal is the page again with the API's status and its message beside the field.",
            tag: "dashboard",
            request: Some(crate::openapi::schema_of::<AddForm>),
            params: None,
            response: None,
            content: Content::Html,
            status: 303,
            also: &[],
            errors: &[403, 404, 409, 415, 422, 503],
            handler: post(add),
        },
        RouteSpec {
            method: Method::POST,
            path: "/admin/units/change",
            policy: ADMINS,
            summary: "Rename a unit, move it under another parent, or both (a form: id, name, parent), as PATCH /api/v1/units/{id}: 303 to the units page; a refusal is the page again with the API's status and its message beside the field.",
            tag: "dashboard",
            request: Some(crate::openapi::schema_of::<ChangeForm>),
            params: None,
            response: None,
            content: Content::Html,
            status: 303,
            also: &[],
            errors: &[403, 404, 415, 422, 503],
            handler: post(change),
        },
        RouteSpec {
            method: Method::POST,
            path: "/admin/units/{id}/retire",
            policy: ADMINS,
            summary: "Retire a unit below the caller's (a form: csrf), as POST /api/v1/units/{id}/retire: 303 to the units page; refused (422, naming them) while it leads open cases or has units below it that are not retired; 404 outside the caller's subtree.",
            tag: "dashboard",
            request: Some(crate::openapi::schema_of::<crate::dashboard::session::CsrfForm>),
            params: None,
            response: None,
            content: Content::Html,
            status: 303,
            also: &[],
            errors: &[404, 415, 422, 503],
            handler: post(retire),
        },
    ]
}

/// The form that adds a unit.
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)] // Read as form pairs; the type describes the form in the OpenAPI document.
pub(crate) struct AddForm {
    /// The page's CSRF token (with the session cookie).
    #[serde(default)]
    csrf: Option<String>,
    /// Its slug: lowercase letters, digits, `-`, `_`, `.` (at most 64), unique in the store.
    #[schemars(length(min = 1, max = 64))]
    id: String,
    /// Its display name.
    #[schemars(length(min = 1, max = 200))]
    name: String,
    /// Its tier.
    tier: TierName,
    /// Its parent (a unit of the caller's subtree); empty for a new community.
    #[serde(default)]
    #[schemars(length(max = 64))]
    parent: Option<String>,
}

/// The form that renames or moves a unit.
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)] // Read as form pairs; the type describes the form in the OpenAPI document.
pub(crate) struct ChangeForm {
    /// The page's CSRF token (with the session cookie).
    #[serde(default)]
    csrf: Option<String>,
    /// The unit (of the caller's subtree).
    #[schemars(length(min = 1, max = 64))]
    id: String,
    /// Its new name; empty: unchanged.
    #[serde(default)]
    #[schemars(length(max = 200))]
    name: Option<String>,
    /// Its new parent; empty: unchanged.
    #[serde(default)]
    #[schemars(length(max = 64))]
    parent: Option<String>,
}

/// A tier in both languages.
fn tier_label(tier: TierName) -> Markup {
    match tier {
        TierName::Community => bi("社区", "community"),
        TierName::Grid => bi("网格", "grid"),
        TierName::Enterprise => bi("企业", "enterprise"),
        TierName::Shop => bi("商铺", "shop"),
        TierName::Department => bi("部门", "department"),
        TierName::SocialOrganization => bi("社会组织", "social organization"),
        TierName::VolunteerTeam => bi("志愿队", "volunteer team"),
    }
}

const TIERS: [(TierName, &str); 7] = [
    (TierName::Community, "community"),
    (TierName::Grid, "grid"),
    (TierName::Enterprise, "enterprise"),
    (TierName::Shop, "shop"),
    (TierName::Department, "department"),
    (TierName::SocialOrganization, "social_organization"),
    (TierName::VolunteerTeam, "volunteer_team"),
];

async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    Ok(render(&state, &viewer, None))
}

/// The page, with the form `refused` refused.
fn render(state: &AppState, viewer: &Viewer, refused: Option<&Refused>) -> Response {
    let units = org::units_answer(state, &viewer.caller).units;
    let chart = state.engine().org();
    // The units the caller administers (their own and below): parents to choose, units to
    // change; those strictly below theirs may be retired.
    let administered: Vec<&UnitAnswer> = units
        .iter()
        .filter(|u| UnitId::new(&u.id).is_ok_and(|id| chart.in_scope(&viewer.caller.acting, &id)))
        .collect();
    let own = viewer.acting().unit.as_str();
    let mut children: BTreeMap<Option<&str>, Vec<&UnitAnswer>> = BTreeMap::new();
    let known: std::collections::BTreeSet<&str> = units.iter().map(|u| u.id.as_str()).collect();
    for unit in &units {
        let parent = unit.parent.as_deref().filter(|p| known.contains(p));
        children.entry(parent).or_default().push(unit);
    }
    let choices: Vec<(String, Markup)> = administered
        .iter()
        .filter(|u| !u.retired)
        .map(|u| (u.id.clone(), html! { (u.name) " (" (u.id) ")" }))
        .collect();
    let tiers: Vec<(String, Markup)> = TIERS
        .iter()
        .map(|(tier, value)| ((*value).to_owned(), tier_label(*tier)))
        .collect();
    let retirable = |unit: &UnitAnswer| {
        !unit.retired && unit.id != own && administered.iter().any(|a| a.id == unit.id)
    };
    let add = Form::new("unit-add", &["id", "name", "tier", "parent"], refused);
    let change = Form::new("unit-change", &["id", "name", "parent"], refused);
    let retire = Form::new("unit-retire", &[], refused);
    let body = html! {
        (back())
        h1 { (bi("单位", "Units")) }
        section aria-labelledby="units-tree" {
            h2 #units-tree { (bi("组织架构", "Org chart")) }
            // A retirement refused: above the chart (its buttons have no fields).
            (retire.alert())
            div.tree {
                (tree(&children, None, viewer, &retirable))
            }
        }
        section aria-labelledby="unit-add-title" {
            h2 #unit-add-title { (bi("新增单位", "Add a unit")) }
            form method="post" action=(PAGE) {
                (csrf(viewer))
                (add.alert())
                (text_field(&add, "id", bi("编号", "Id"), true, 64,
                    Some(bi("小写字母、数字、- _ .，全库唯一", "lowercase letters, digits, - _ .; unique in the store"))))
                (text_field(&add, "name", bi("名称", "Name"), true, 200, None))
                (select_field(&add, "tier", bi("层级", "Tier"), true, None, &tiers))
                (select_field(&add, "parent", bi("上级单位", "Parent"), false,
                    Some(bi("无（新社区）", "none (a new community)")), &choices))
                button type="submit" { (bi("新增", "Add")) }
            }
        }
        section aria-labelledby="unit-change-title" {
            h2 #unit-change-title { (bi("更名或移动", "Rename or move")) }
            form method="post" action="/admin/units/change" {
                (csrf(viewer))
                (change.alert())
                (select_field(&change, "id", bi("单位", "Unit"), true, Some(html! { "—" }), &choices))
                (text_field(&change, "name", bi("新名称", "New name"), false, 200,
                    Some(bi("留空则不变", "leave empty to keep it"))))
                (select_field(&change, "parent", bi("新上级单位", "New parent"), false,
                    Some(bi("不变", "unchanged")), &choices))
                button type="submit" { (bi("保存", "Save")) }
            }
        }
    };
    area_page(viewer, "单位 Units", body, refused)
}

/// The units under `parent` (the top ones for `None`), each with the units under it.
fn tree(
    children: &BTreeMap<Option<&str>, Vec<&UnitAnswer>>,
    parent: Option<&str>,
    viewer: &Viewer,
    retirable: &dyn Fn(&UnitAnswer) -> bool,
) -> Markup {
    let Some(units) = children.get(&parent) else {
        return html! {};
    };
    html! {
        ul {
            @for unit in units {
                li {
                    span.unit {
                        strong { (unit.name) } " "
                        code { (unit.id) } " "
                        span.badge { (tier_label(unit.tier)) }
                        @if unit.retired { " " span.badge.retired { (bi("已撤销", "retired")) } }
                    }
                    @if retirable(unit) {
                        form.inline method="post" action={ "/admin/units/" (unit.id) "/retire" } {
                            (csrf(viewer))
                            button.secondary type="submit" aria-label={ "撤销 Retire " (unit.id) } {
                                (bi("撤销", "Retire"))
                            }
                        }
                    }
                    (tree(children, Some(unit.id.as_str()), viewer, retirable))
                }
            }
        }
    }
}

async fn add(
    State(state): State<AppState>,
    viewer: Viewer,
    WriteOptions(options): WriteOptions,
    form: PageForm,
) -> Result<Response, PageError> {
    let result = async {
        let body = NewUnit {
            id: text(&form, "id"),
            name: text(&form, "name"),
            tier: choice(&form, "tier", None)?,
            parent: optional(&form, "parent"),
        };
        body.validate()?;
        org::create_unit_as(&state, &viewer.caller, body, options).await
    }
    .await;
    Ok(answer(
        &state,
        &viewer,
        result.map(|_| ()),
        "unit-add",
        form,
    ))
}

async fn change(
    State(state): State<AppState>,
    viewer: Viewer,
    WriteOptions(options): WriteOptions,
    form: PageForm,
) -> Result<Response, PageError> {
    let result = async {
        let body = UnitChange {
            name: optional(&form, "name"),
            parent: optional(&form, "parent"),
        };
        body.validate()?;
        org::change_unit_as(&state, &viewer.caller, &text(&form, "id"), body, options).await
    }
    .await;
    Ok(answer(
        &state,
        &viewer,
        result.map(|_| ()),
        "unit-change",
        form,
    ))
}

async fn retire(
    State(state): State<AppState>,
    viewer: Viewer,
    WriteOptions(options): WriteOptions,
    Path(id): Path<String>,
    form: PageForm,
) -> Result<Response, PageError> {
    let result = org::retire_unit_as(&state, &viewer.caller, &id, options).await;
    Ok(answer(
        &state,
        &viewer,
        result.map(|_| ()),
        "unit-retire",
        form,
    ))
}

/// 303 back to the page, or the page again with the refusal.
fn answer(
    state: &AppState,
    viewer: &Viewer,
    result: Result<(), ApiError>,
    name: &'static str,
    form: PageForm,
) -> Response {
    match result {
        Ok(()) => render::see_other(PAGE, None),
        Err(error) => render(state, viewer, Some(&Refused::new(name, error, form))),
    }
}
