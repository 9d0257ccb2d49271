//! The calendar years page: the business calendar in force (`GET /api/v1/calendar`): its
//! zone, the years with official holiday data and where coverage ends; and a form to publish
//! a year's table as the calendar file has it (`PUT /api/v1/calendar/{year}` with
//! `application/toml`).

use axum::extract::State;
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post};
use civicflow_core::domain::org::roles;
use maud::html;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{area_page, back, csrf, text, text_area, text_field, when, Form, Refused};
use crate::dashboard::render::{self, bi, PageError};
use crate::dashboard::session::{PageForm, Viewer};
use crate::error::ApiResult;
use crate::policy::Policy;
use crate::request_id::WriteOptions;
use crate::routes::calendar::{self, YearOriginAnswer};
use crate::routes::{Content, RouteSpec};
use crate::state::AppState;

const PAGE: &str = "/admin/calendar";

/// Who publishes a year: as `PUT /api/v1/calendar/{year}` (the core checks the top unit).
const PUBLISHERS: Policy = Policy::Roles(&[roles::COMMUNITY_ADMIN]);

/// The routes of the calendar page.
pub(crate) fn routes() -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            method: Method::GET,
            path: PAGE,
            policy: PUBLISHERS,
            summary: "The calendar years page (community administrators): the business calendar's zone, every year with official holiday data (its source, where it comes from, its days) and where coverage ends, with a form to publish a year.",
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
            policy: PUBLISHERS,
            summary: "Publish a year's official holidays and 调休 working days (a form: year, four digits; table, the year's table of the calendar file as TOML, with or without its [year] header), as PUT /api/v1/calendar/{year} with application/toml (community administrators of a top unit): 303 to the page; a refusal is the page again with the API's status (404 for a year that is not four digits, 422 naming the field as in the file) beside the field.",
            tag: "dashboard",
            request: Some(crate::openapi::schema_of::<PublishForm>),
            params: None,
            response: None,
            content: Content::Html,
            status: 303,
            also: &[],
            errors: &[403, 404, 413, 415, 422, 503],
            handler: post(publish),
        },
    ]
}

/// The form that publishes a year.
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)] // Read as form pairs; the type describes the form in the OpenAPI document.
pub(crate) struct PublishForm {
    /// The page's CSRF token (with the session cookie).
    #[serde(default)]
    csrf: Option<String>,
    /// The year, four digits.
    #[schemars(length(min = 4, max = 4))]
    year: String,
    /// The year's table as TOML: `source`, `off` (inclusive ranges), `work` (调休 days).
    #[schemars(length(min = 1))]
    table: String,
}

/// What the table looks like, for the form's hint.
const EXAMPLE: &str = r#"source = "国务院办公厅关于2027年部分节假日安排的通知"
off = [["2027-01-01", "2027-01-03"], ["2027-02-05", "2027-02-11"]]
work = ["2027-02-14"]"#;

async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    render(&state, &viewer, None)
        .await
        .map_err(|e| PageError::from(e).viewer(&viewer))
}

async fn render(
    state: &AppState,
    viewer: &Viewer,
    refused: Option<&Refused>,
) -> ApiResult<Response> {
    let overview = calendar::calendar_answer(state).await?;
    let publish = Form::new("year-add", &["year", "table"], refused).rest("table");
    let body = html! {
        (back())
        h1 { (bi("工作日历", "Business calendar")) }
        dl.facts {
            dt { (bi("时区", "Time zone")) } dd { (overview.zone) }
            dt { (bi("连续覆盖至", "Covered through")) }
            dd {
                @if let Some(year) = overview.covered_through { (year) }
                @else { span.badge.provisional { (bi("本年未覆盖", "this year is not covered")) } }
            }
            dt { (bi("覆盖结束", "Coverage ends")) } dd { (when(&overview.coverage_ends_at)) }
        }
        p.hint { (bi("超出覆盖范围的期限按普通工作日计算，标为临时。", "Deadlines past coverage are counted on plain weekdays and marked provisional.")) }
        section aria-labelledby="years-title" {
            h2 #years-title { (bi("已有年份", "Years with official data")) }
            div.table-wrap {
                table {
                    thead {
                        tr {
                            th scope="col" { (bi("年份", "Year")) }
                            th scope="col" { (bi("依据", "Source")) }
                            th scope="col" { (bi("来源", "Origin")) }
                            th scope="col" { (bi("放假", "Days off")) }
                            th scope="col" { (bi("调休上班", "Working weekend days")) }
                        }
                    }
                    tbody {
                        @for year in &overview.years {
                            tr {
                                th scope="row" { (year.year) }
                                td { (year.source) }
                                td {
                                    @match &year.origin {
                                        YearOriginAnswer::Release => (bi("随版本发布", "release")),
                                        YearOriginAnswer::Published { revision, published_at } => {
                                            (bi("已发布", "published")) " r" (revision) " " (when(published_at))
                                        }
                                    }
                                }
                                td {
                                    @for (i, [from, to]) in year.off.iter().enumerate() {
                                        @if i > 0 { ", " }
                                        (date(from)) @if date(from) != date(to) { "–" (date(to)) }
                                    }
                                }
                                td {
                                    @if year.work.is_empty() { "—" }
                                    @for (i, day) in year.work.iter().enumerate() {
                                        @if i > 0 { ", " }
                                        (date(day))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="year-add-title" {
            h2 #year-add-title { (bi("发布一年", "Publish a year")) }
            form method="post" action=(PAGE) {
                (csrf(viewer))
                (text_field(&publish, "year", bi("年份", "Year"), true, 4,
                    Some(bi("四位数字", "four digits"))))
                (text_area(&publish, "table", bi("节假日表（TOML）", "The year's table (TOML)"), 8,
                    html! {
                        (bi("与日历文件中该年的表相同：", "As the year's table in the calendar file:"))
                        pre { code { (EXAMPLE) } }
                    }))
                button type="submit" { (bi("发布", "Publish")) }
            }
        }
    };
    Ok(area_page(
        viewer,
        "工作日历 Business calendar",
        body,
        refused,
    ))
}

/// A day as the answer writes it (`YYYY-MM-DD`).
fn date(day: &calendar::DateAnswer) -> &str {
    day.as_str()
}

async fn publish(
    State(state): State<AppState>,
    viewer: Viewer,
    WriteOptions(options): WriteOptions,
    form: PageForm,
) -> Result<Response, PageError> {
    let year = text(&form, "year");
    let table = form.get("table").unwrap_or_default().to_owned();
    let result = calendar::publish_as(
        &state,
        &viewer.caller,
        &year,
        "application/toml",
        table.as_bytes(),
        options,
    )
    .await
    // A year that is not four digits is the API's 404 for its path; here it is the field.
    .map_err(|e| {
        if e.status == axum::http::StatusCode::NOT_FOUND && e.field.is_none() {
            e.field("year")
        } else {
            e
        }
    });
    match result {
        Ok(_) => Ok(render::see_other(PAGE, None)),
        Err(error) => render(
            &state,
            &viewer,
            Some(&Refused::new("year-add", error, form)),
        )
        .await
        .map_err(|e| PageError::from(e).viewer(&viewer)),
    }
}
