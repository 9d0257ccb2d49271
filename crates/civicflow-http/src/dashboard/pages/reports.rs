//! The reports as pages: 三率 per unit and month as charts drawn on the server with their data
//! tables, and community statistics (`/reports`); shops' standing, flags and recommended
//! merchants (`/reports/standing`); the three lists (`/reports/lists`); the overdue and
//! escalation report (督办) of the caller's subtree (`/reports/overdue`).
//!
//! Each page is the API's answers rendered (`routes::reports::rates_of`, `stats_of`,
//! `standing_of`, `flags_in`, `recommended_in`, `list_of`, `overdue_of`), under the policy of
//! its API twins: the staff reports for 三率 and statistics, the roles that act for a unit for
//! the others. Query parameters are checked as the API checks them, errors naming them.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use civicflow_core::domain::lists::ListKind;
use civicflow_core::domain::org::{roles, OrgChart, Tier};
use civicflow_projections::models::page::{Cursor, Page as PageRequest, PAGE_MAX};
use maud::{html, Markup};
use serde_json::{json, Value};

use super::directives::{unit_label, when};
use crate::dashboard::render::chart::{self, Bar};
use crate::dashboard::render::labels::named;
use crate::dashboard::render::{bi, Page, PageError};
use crate::dashboard::session::Viewer;
use crate::error::{ApiError, ApiResult};
use crate::policy::Policy;
use crate::routes::reports::{
    self as api, check_month, query_param, FlagColourName, ListItemAnswer, OverdueAnswer,
    OverdueKindName, QueryParams, RankedUnitAnswer, RatesAnswer, StandingAnswer, StatsAnswer,
    SubjectAnswer,
};
use crate::routes::{Content, RouteSpec};
use crate::state::AppState;

/// The routes of the report pages.
pub(crate) fn routes() -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            method: Method::GET,
            path: "/reports",
            policy: Policy::Roles(roles::READ_STAFF_REPORTS),
            summary: "The reports page: 三率 (response, resolution and satisfaction rates) of the units of the caller's community for a month, as charts with their data tables (as GET /api/v1/reports/rates), and the community's statistics for the month's year (as GET /api/v1/reports/stats). Query: month (YYYY-MM; default the engine clock's month). Staff only, as the API twins.",
            tag: "dashboard",
            request: None,
            params: Some(month_params),
            response: None,
            content: Content::Html,
            status: 200,
            also: &[],
            errors: &[400, 404, 503],
            handler: get(rates_page),
        },
        RouteSpec {
            method: Method::GET,
            path: "/reports/standing",
            policy: Policy::Roles(roles::ACT_FOR_UNITS),
            summary: "Shops' standing: the points, cycle and flags of every shop at or below the caller's unit (as GET /api/v1/units/{id}/standing), the flags held in the caller's community for a month (as GET /api/v1/reports/flags) and the recommended merchants of a quarter (as GET /api/v1/reports/recommended). Query: month (YYYY-MM), quarter (e.g. 2026Q2); default the engine clock's.",
            tag: "dashboard",
            request: None,
            params: Some(standing_params),
            response: None,
            content: Content::Html,
            status: 200,
            also: &[],
            errors: &[400, 404, 503],
            handler: get(standing_page),
        },
        RouteSpec {
            method: Method::GET,
            path: "/reports/lists",
            policy: Policy::Roles(roles::ACT_FOR_UNITS),
            summary: "The three lists (资源、需求、项目清单) of the caller's community, each item with its unit and linked cases (as GET /api/v1/lists/{kind}). Query: retired (true: retired items too).",
            tag: "dashboard",
            request: None,
            params: Some(lists_params),
            response: None,
            content: Content::Html,
            status: 200,
            also: &[],
            errors: &[400, 503],
            handler: get(lists_page),
        },
        RouteSpec {
            method: Method::GET,
            path: "/reports/overdue",
            policy: Policy::Roles(roles::ACT_FOR_UNITS),
            summary: "The overdue and escalation report (督办) of the caller's subtree now, or of a unit of it (as GET /api/v1/units/{id}/overdue): counts per unit and every missed, escalated, breached or running overdue deadline, linking its case or directive. Query: unit (a unit of the caller's subtree; 404 otherwise).",
            tag: "dashboard",
            request: None,
            params: Some(overdue_params),
            response: None,
            content: Content::Html,
            status: 200,
            also: &[],
            errors: &[400, 404, 503],
            handler: get(overdue_page),
        },
    ]
}

fn month_schema() -> Value {
    json!({"type": "string", "pattern": "^([0-9]{4}-(0[1-9]|1[0-2]))?$"})
}

fn month_params() -> Value {
    json!([query_param(
        "month",
        false,
        month_schema(),
        "the month, YYYY-MM (default: the engine clock's)"
    )])
}

fn standing_params() -> Value {
    json!([
        query_param(
            "month",
            false,
            month_schema(),
            "the flags' month, YYYY-MM (default: the engine clock's)"
        ),
        query_param(
            "quarter",
            false,
            json!({"type": "string", "pattern": "^([0-9]{4}Q[1-4])?$"}),
            "the recommended merchants' quarter, e.g. 2026Q2 (default: the engine clock's)"
        ),
    ])
}

fn lists_params() -> Value {
    json!([query_param(
        "retired",
        false,
        json!({"type": "string", "enum": ["true", "false", ""]}),
        "true: retired items too"
    )])
}

fn overdue_params() -> Value {
    json!([query_param(
        "unit",
        false,
        json!({"type": "string"}),
        "a unit of the caller's subtree (default: the caller's unit)"
    )])
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

/// The engine clock's month, `YYYY-MM`, in the calendar's zone.
fn this_month(state: &AppState) -> String {
    state
        .zone()
        .format(state.engine().now())
        .chars()
        .take(7)
        .collect()
}

/// The quarter of a checked `YYYY-MM`: `2026Q2`.
fn quarter_of(month: &str) -> String {
    let number: u8 = month.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
    format!("{}Q{}", &month[..4], (number.max(1) - 1) / 3 + 1)
}

/// The month asked for in `params` (checked as the API checks one), or this month.
fn month_param(state: &AppState, params: &QueryParams) -> ApiResult<String> {
    match params.get("month") {
        Some(month) => {
            check_month("month", month)?;
            Ok(month.to_owned())
        }
        None => Ok(this_month(state)),
    }
}

/// The report pages' own navigation, `current` marked.
fn report_nav(viewer: &Viewer, current: &str) -> Markup {
    let staff = roles::READ_STAFF_REPORTS.contains(&viewer.acting().role.as_str());
    let mut links = Vec::new();
    if staff {
        links.push(("/reports", bi("三率与统计", "Rates and statistics")));
    }
    links.push(("/reports/overdue", bi("督办", "Overdue and escalated")));
    links.push(("/reports/standing", bi("商户信用", "Shop standing")));
    links.push(("/reports/lists", bi("三张清单", "The three lists")));
    html! {
        nav.report-nav aria-label="报表 Reports" {
            ul.filters {
                @for (href, label) in links {
                    li {
                        @if href == current {
                            a href=(href) aria-current="page" { strong { (label) } }
                        } @else {
                            a href=(href) { (label) }
                        }
                    }
                }
            }
        }
    }
}

fn count_or_dash(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_owned(), chart::percent)
}

// ---------------------------------------------------------------------------------------------
// 三率 and statistics

/// One of the three rates: its name, what it is counted from, and how to read it off a unit.
struct Rate {
    key: &'static str,
    zh: &'static str,
    en: &'static str,
    /// What it divides, in words.
    of_zh: &'static str,
    of_en: &'static str,
    /// The numerator's and denominator's names.
    part: (&'static str, &'static str),
    whole: (&'static str, &'static str),
    value: fn(&RankedUnitAnswer) -> Option<f64>,
    counts: fn(&RankedUnitAnswer) -> (u32, u32),
}

const RATES: [Rate; 3] = [
    Rate {
        key: "response",
        zh: "响应率",
        en: "Response rate",
        of_zh: "按期的期限占按期与逾期期限之比",
        of_en: "deadlines met of deadlines met or missed",
        part: ("按期", "met"),
        whole: ("按期与逾期", "met or missed"),
        value: |u| u.response_rate,
        counts: |u| (u.counts.met, u.counts.met.saturating_add(u.counts.missed)),
    },
    Rate {
        key: "resolution",
        zh: "解决率",
        en: "Resolution rate",
        of_zh: "已解决（或达成协议）占办结结果之比",
        of_en: "resolved (or agreed) of outcomes",
        part: ("已解决", "resolved"),
        whole: ("办结结果", "outcomes"),
        value: |u| u.resolution_rate,
        counts: |u| (u.counts.resolved, u.counts.outcomes),
    },
    Rate {
        key: "satisfaction",
        zh: "满意率",
        en: "Satisfaction rate",
        of_zh: "4 分或 5 分的评价占全部评价之比",
        of_en: "ratings of 4 or 5 of all ratings",
        part: ("满意", "satisfied"),
        whole: ("评价", "ratings"),
        value: |u| u.satisfaction_rate,
        counts: |u| (u.counts.satisfied, u.counts.ratings),
    },
];

fn unit_name(unit: &RankedUnitAnswer) -> String {
    unit.unit_name
        .clone()
        .unwrap_or_else(|| unit.unit_id.clone())
}

fn rate_section(rates: &RatesAnswer, rate: &Rate) -> Markup {
    let bars: Vec<Bar> = rates
        .ranking
        .iter()
        .map(|unit| {
            let value = (rate.value)(unit);
            let (part, whole) = (rate.counts)(unit);
            Bar {
                label: unit_name(unit),
                key: unit.unit_id.clone(),
                value,
                text: match value {
                    Some(v) => format!("{} ({part}/{whole})", chart::percent(v)),
                    None => "无数据 no data".to_owned(),
                },
            }
        })
        .collect();
    let id = format!("rate-{}", rate.key);
    let title = format!("{} {} · {}", rate.zh, rate.en, rates.month);
    let desc = if rates.ranking.is_empty() {
        format!(
            "{} 没有数据。No unit of {} has figures for {}.",
            rates.month, rates.community, rates.month
        )
    } else {
        format!(
            "{}各单位{}（{}），按三率均值排名。{} per unit of {} for {} ({}), in the order of the mean of the three rates.",
            rates.month, rate.zh, rate.of_zh, rate.en, rates.community, rates.month, rate.of_en
        )
    };
    html! {
        section.rate aria-labelledby={ (id) "-h" } {
            h2 id={ (id) "-h" } { (bi(rate.zh, rate.en)) }
            (chart::share_bars(&id, &title, &desc, "比率 Rate (%)", &bars))
            div.table-wrap {
                table {
                    caption { (bi(rate.zh, rate.en)) " · " (rates.month) " · " (bi("数据表", "data table")) }
                    thead {
                        tr {
                            th scope="col" { (bi("排名", "Rank")) }
                            th scope="col" { (bi("单位", "Unit")) }
                            th scope="col" { (bi(rate.zh, rate.en)) }
                            th scope="col" { (bi(rate.part.0, rate.part.1)) }
                            th scope="col" { (bi(rate.whole.0, rate.whole.1)) }
                        }
                    }
                    tbody {
                        @for unit in &rates.ranking {
                            @let (part, whole) = (rate.counts)(unit);
                            tr {
                                td { (unit.rank) }
                                th scope="row" { (unit_name(unit)) }
                                td { (count_or_dash((rate.value)(unit))) }
                                td { (part) }
                                td { (whole) }
                            }
                        }
                        @if rates.ranking.is_empty() {
                            tr { td colspan="5" { (bi("本月没有数据。", "No figures this month.")) } }
                        }
                    }
                }
            }
        }
    }
}

/// Seconds as hours, one decimal.
fn hours(seconds: Option<u64>) -> String {
    seconds.map_or_else(|| "—".to_owned(), |s| format!("{:.1} h", s as f64 / 3600.0))
}

fn stats_section(state: &AppState, stats: &StatsAnswer) -> Markup {
    let registry = state.engine().definitions();
    let workflow_name = |id: &str| -> Markup {
        registry
            .latest_all()
            .into_iter()
            .find(|d| d.id.as_str() == id)
            .map_or_else(|| html! { (id) }, |d| named(&d.name))
    };
    html! {
        section aria-labelledby="stats-h" {
            h2 #stats-h {
                (bi("社区统计", "Community statistics"))
                @if let Some(year) = stats.year { " · " (year) }
            }
            dl.facts {
                dt { (bi("社区", "Community")) }
                dd { (stats.community.clone().unwrap_or_else(|| "—".into())) }
                dt { (bi("活动", "Activities")) } dd { (stats.activities) }
                dt { (bi("参与人次", "Participants")) } dd { (stats.participants) }
                dt { (bi("受益人次", "Beneficiary visits")) } dd { (stats.beneficiaries) }
                dt { (bi("活动志愿者", "Activity volunteers")) } dd { (stats.activity_volunteers) }
                dt { (bi("受理案件", "Cases opened")) } dd { (stats.opened) }
                dt { (bi("办结案件", "Cases closed")) } dd { (stats.closed) }
                dt { (bi("重新办理", "Reopened")) } dd { (stats.reopened) }
                dt { (bi("党员", "Party members")) } dd { (stats.org.party_members) }
                dt { (bi("志愿者", "Volunteers")) } dd { (stats.org.volunteers) }
                dt { (bi("网格员", "Grid workers")) } dd { (stats.org.grid_workers) }
                dt { (bi("居务联络员", "Liaison officers")) } dd { (stats.org.liaison_officers) }
                dt { (bi("监测点", "Monitoring points")) } dd { (stats.org.monitoring_points) }
            }
            div.table-wrap {
                table {
                    caption { (bi("各流程案件", "Cases by workflow")) }
                    thead {
                        tr {
                            th scope="col" { (bi("流程", "Workflow")) }
                            th scope="col" { (bi("受理", "Opened")) }
                            th scope="col" { (bi("办结", "Closed")) }
                            th scope="col" { (bi("重新办理", "Reopened")) }
                            th scope="col" { (bi("平均办结用时", "Mean time to close")) }
                            th scope="col" { (bi("90% 办结用时", "90th percentile")) }
                        }
                    }
                    tbody {
                        @for (id, w) in &stats.workflows {
                            tr {
                                th scope="row" { (workflow_name(id)) }
                                td { (w.opened) }
                                td { (w.closed) }
                                td { (w.reopened) }
                                td { (hours(w.mean_close_seconds)) }
                                td { (hours(w.p90_close_seconds)) }
                            }
                        }
                        @if stats.workflows.is_empty() {
                            tr { td colspan="6" { (bi("没有案件。", "No cases.")) } }
                        }
                    }
                }
            }
        }
    }
}

/// The community whose statistics the page shows: the top of the caller's chain when it is
/// a community (the API then checks the caller may read it), else every community (the API's
/// default).
fn own_community(org: &OrgChart, viewer: &Viewer) -> Option<String> {
    let top = org.top_of(&viewer.acting().unit);
    org.unit(&top)
        .filter(|u| u.tier == Tier::Community)
        .map(|u| u.id.as_str().to_owned())
}

async fn rates_page(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
) -> Result<Response, PageError> {
    let with_nav = |e: ApiError| PageError::from(e).viewer(&viewer);
    let params = QueryParams::parse(&uri, &["month"]).map_err(with_nav)?;
    let month = month_param(&state, &params).map_err(with_nav)?;
    let rates = api::rates_of(&state, &viewer.caller, &month, None)
        .await
        .map_err(with_nav)?;
    let year = month[..4].parse::<i32>().ok();
    let community = own_community(&state.engine().org(), &viewer);
    let stats = api::stats_of(&state, &viewer.caller, year, community.as_deref())
        .await
        .map_err(with_nav)?;
    let body = html! {
        h1 { (bi("三率与社区统计", "Rates and community statistics")) }
        (report_nav(&viewer, "/reports"))
        form.filters method="get" action="/reports" aria-label="选择月份 Choose the month" {
            div.field {
                label for="r-month" { (bi("月份", "Month")) }
                input #r-month type="month" name="month" value=(month) pattern="[0-9]{4}-[0-9]{2}";
            }
            button type="submit" { (bi("查看", "Show")) }
        }
        p.note {
            (bi("三率按各单位", "The three rates of the units of")) " " (rates.community) " · " (rates.month)
        }
        @for rate in &RATES { (rate_section(&rates, rate)) }
        (stats_section(&state, &stats))
    };
    Ok(Page::for_viewer(&viewer, "三率 Rates", body).into_response())
}

// ---------------------------------------------------------------------------------------------
// Shops' standing, flags, recommended merchants

fn flag_label(colour: FlagColourName) -> Markup {
    match colour {
        FlagColourName::Red => html! { span.badge.ok { (bi("红旗", "red flag")) } },
        FlagColourName::Yellow => html! { span.badge.escalated { (bi("黄旗", "yellow flag")) } },
    }
}

async fn standing_page(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
) -> Result<Response, PageError> {
    let with_nav = |e: ApiError| PageError::from(e).viewer(&viewer);
    let params = QueryParams::parse(&uri, &["month", "quarter"]).map_err(with_nav)?;
    let month = month_param(&state, &params).map_err(with_nav)?;
    let quarter = params
        .get("quarter")
        .map_or_else(|| quarter_of(&this_month(&state)), str::to_owned);
    let recommended = api::recommended_in(&state, &viewer.caller, &quarter)
        .await
        .map_err(with_nav)?;
    let flags = api::flags_in(&state, &viewer.caller, &month)
        .await
        .map_err(with_nav)?;
    let org = state.engine().org();
    let shops: Vec<String> = org
        .subtree(&viewer.acting().unit)
        .into_iter()
        .filter(|u| org.unit(u).is_some_and(|u| u.tier == Tier::Shop))
        .map(|u| u.as_str().to_owned())
        .collect();
    let mut standings: Vec<StandingAnswer> = Vec::with_capacity(shops.len());
    for shop in &shops {
        standings.push(
            api::standing_of(&state, &viewer.caller, shop)
                .await
                .map_err(with_nav)?,
        );
    }
    let name_of = |id: &str| -> String {
        civicflow_core::UnitId::new(id)
            .ok()
            .and_then(|u| org.unit(&u).map(|u| u.name.clone()))
            .unwrap_or_else(|| id.to_owned())
    };
    let bars: Vec<Bar> = standings
        .iter()
        .map(|s| Bar {
            label: name_of(&s.unit_id),
            key: s.unit_id.clone(),
            value: s.points.map(|p| f64::from(p) / 12.0),
            text: s
                .points
                .map_or_else(|| "无积分周期 no cycle".to_owned(), |p| format!("{p}/12")),
        })
        .collect();
    let body = html! {
        h1 { (bi("商户信用", "Shop standing")) }
        (report_nav(&viewer, "/reports/standing"))
        form.filters method="get" action="/reports/standing" aria-label="选择月份与季度 Choose the month and quarter" {
            div.field {
                label for="s-month" { (bi("红黄旗月份", "Flags of the month")) }
                input #s-month type="month" name="month" value=(month) pattern="[0-9]{4}-[0-9]{2}";
            }
            div.field {
                label for="s-quarter" { (bi("推荐季度", "Recommended in the quarter")) }
                input #s-quarter type="text" name="quarter" value=(quarter) pattern="[0-9]{4}Q[1-4]" placeholder="2026Q2";
            }
            button type="submit" { (bi("查看", "Show")) }
        }
        section aria-labelledby="points-h" {
            h2 #points-h { (bi("十二分制积分", "Twelve-point standing")) }
            @if standings.is_empty() {
                p { (bi("本单位以下没有商铺。", "No shop lies at or below your unit.")) }
            } @else {
                (chart::share_bars(
                    "points",
                    "商铺积分 Shops' points",
                    "本单位及以下各商铺在当前周期剩余的积分（满分 12）。Points left in the running cycle of each shop at or below your unit, out of 12.",
                    "积分 Points (% of 12)",
                    &bars,
                ))
                div.table-wrap {
                    table {
                        caption { (bi("各商铺积分", "Each shop's standing")) }
                        thead {
                            tr {
                                th scope="col" { (bi("商铺", "Shop")) }
                                th scope="col" { (bi("周期", "Cycle")) }
                                th scope="col" { (bi("积分", "Points")) }
                                th scope="col" { (bi("扣分", "Deducted")) }
                                th scope="col" { (bi("恢复", "Restored")) }
                                th scope="col" { (bi("红黄旗", "Flags")) }
                                th scope="col" { (bi("月度评分", "Monthly scores")) }
                            }
                        }
                        tbody {
                            @for s in &standings {
                                tr {
                                    th scope="row" { (name_of(&s.unit_id)) }
                                    td { (s.cycle.clone().unwrap_or_else(|| "—".into())) }
                                    td { @if let Some(p) = s.points { (p) "/12" } @else { "—" } }
                                    td { (s.deducted) }
                                    td { (s.restored) }
                                    td {
                                        @for (period, colour) in &s.flags {
                                            (period) " " (flag_label(*colour)) " "
                                        }
                                        @if s.flags.is_empty() { "—" }
                                    }
                                    td {
                                        @for (m, score) in &s.monthly { (m) ": " (score) " " }
                                        @if s.monthly.is_empty() { "—" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="flags-h" {
            h2 #flags-h { (bi("红黄旗", "Red and yellow flags")) " · " (flags.period) }
            dl.facts {
                dt { (flag_label(FlagColourName::Red)) }
                dd {
                    @for unit in &flags.red { (unit_label(&org, unit)) "; " }
                    @if flags.red.is_empty() { "—" }
                }
                dt { (flag_label(FlagColourName::Yellow)) }
                dd {
                    @for unit in &flags.yellow { (unit_label(&org, unit)) "; " }
                    @if flags.yellow.is_empty() { "—" }
                }
            }
        }
        section aria-labelledby="recommended-h" {
            h2 #recommended-h { (bi("联盟推荐商户", "Recommended merchants")) " · " (recommended.quarter) }
            div.table-wrap {
                table {
                    caption { (bi("按评分排序", "Best score first")) }
                    thead {
                        tr {
                            th scope="col" { (bi("商户", "Merchant")) }
                            th scope="col" { (bi("评分", "Score")) }
                        }
                    }
                    tbody {
                        @for m in &recommended.merchants {
                            tr {
                                th scope="row" { (m.unit_name.clone().unwrap_or_else(|| m.unit_id.clone())) }
                                td { (m.score) }
                            }
                        }
                        @if recommended.merchants.is_empty() {
                            tr { td colspan="2" { (bi("本季度没有推荐商户。", "No recommended merchant this quarter.")) } }
                        }
                    }
                }
            }
        }
    };
    Ok(Page::for_viewer(&viewer, "商户信用 Shop standing", body).into_response())
}

// ---------------------------------------------------------------------------------------------
// The three lists

/// The lists, in the order the page shows them: the kind, its path name, its name in words.
const LISTS: [(ListKind, &str, &str, &str); 3] = [
    (ListKind::Needs, "needs", "需求清单", "Needs"),
    (ListKind::Resources, "resources", "资源清单", "Resources"),
    (ListKind::Projects, "projects", "项目清单", "Projects"),
];

/// Every item of `list` the caller sees: the API's pages, one after another.
async fn whole_list(
    state: &AppState,
    viewer: &Viewer,
    list: ListKind,
    retired: bool,
) -> ApiResult<Vec<ListItemAnswer>> {
    let mut items = Vec::new();
    let mut page = PageRequest::first(PAGE_MAX);
    loop {
        let answer = api::list_of(state, &viewer.caller, list, retired, &page).await?;
        items.extend(answer.page.items);
        match answer.page.next.as_deref().map(str::parse::<Cursor>) {
            Some(Ok(next)) => page = PageRequest::after(next, PAGE_MAX),
            Some(Err(e)) => {
                return Err(ApiError::internal(format!(
                    "a list's own cursor does not parse: {e}"
                )))
            }
            None => break,
        }
    }
    Ok(items)
}

async fn lists_page(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
) -> Result<Response, PageError> {
    let with_nav = |e: ApiError| PageError::from(e).viewer(&viewer);
    let params = QueryParams::parse(&uri, &["retired"]).map_err(with_nav)?;
    let retired = params.flag("retired").map_err(with_nav)?;
    let mut lists = Vec::new();
    for (kind, path, zh, en) in LISTS {
        let items = whole_list(&state, &viewer, kind, retired)
            .await
            .map_err(with_nav)?;
        lists.push((path, zh, en, items));
    }
    let org = state.engine().org();
    let body = html! {
        h1 { (bi("三张清单", "The three lists")) }
        (report_nav(&viewer, "/reports/lists"))
        p {
            @if retired {
                a href="/reports/lists" { (bi("只看现行条目", "Current items only")) }
            } @else {
                a href="/reports/lists?retired=true" { (bi("包括已撤销条目", "Include retired items")) }
            }
        }
        @for (path, zh, en, items) in &lists {
            section aria-labelledby={ "list-" (path) } {
                h2 id={ "list-" (path) } { (bi(zh, en)) " (" (items.len()) ")" }
                div.table-wrap {
                    table {
                        caption { (bi(zh, en)) ", " (bi("按加入顺序", "in the order added")) }
                        thead {
                            tr {
                                th scope="col" { (bi("条目", "Item")) }
                                th scope="col" { (bi("单位", "Unit")) }
                                th scope="col" { (bi("关联案件", "Linked cases")) }
                                th scope="col" { (bi("加入时间", "Added")) }
                            }
                        }
                        tbody {
                            @for item in items {
                                tr {
                                    th scope="row" {
                                        (item.title)
                                        @if item.retired { " " span.badge.closed { (bi("已撤销", "retired")) } }
                                        @if !item.description.is_empty() { p.hint { (item.description) } }
                                    }
                                    td { (unit_label(&org, &item.unit_id)) }
                                    td {
                                        @for (i, case) in item.cases.iter().enumerate() {
                                            @if i > 0 { ", " }
                                            a href={ "/cases/" (case) } { (bi("案件", "case")) " " (case.chars().take(8).collect::<String>()) "…" }
                                        }
                                        @if item.cases.is_empty() { "—" }
                                    }
                                    td { (when(&item.added_at)) }
                                }
                            }
                            @if items.is_empty() {
                                tr { td colspan="4" { (bi("清单为空。", "The list is empty.")) } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(Page::for_viewer(&viewer, "三张清单 The three lists", body).into_response())
}

// ---------------------------------------------------------------------------------------------
// Overdue and escalated

fn overdue_kind(kind: OverdueKindName) -> Markup {
    match kind {
        OverdueKindName::Missed => html! { span.badge.missed { (bi("逾期办结", "missed")) } },
        OverdueKindName::Escalated => {
            html! { span.badge.escalated { (bi("已升级督办", "escalated")) } }
        }
        OverdueKindName::Breached => html! { span.badge.breached { (bi("严重超时", "breached")) } },
        OverdueKindName::RunningOverdue => {
            html! { span.badge.overdue { (bi("在办逾期", "running overdue")) } }
        }
    }
}

fn subject_link(subject: &SubjectAnswer) -> Markup {
    match subject {
        SubjectAnswer::Case { case_id } => html! {
            a href={ "/cases/" (case_id) } { (bi("案件", "Case")) " " (case_id.chars().take(8).collect::<String>()) "…" }
        },
        SubjectAnswer::DirectivePart {
            directive_id,
            index,
        } => html! {
            a href={ "/directives/" (directive_id) } { (bi("指令任务", "Directive part")) " #" (index) }
        },
    }
}

fn overdue_markup(viewer: &Viewer, org: &OrgChart, report: &OverdueAnswer) -> Markup {
    let t = &report.totals;
    let units = org.subtree(&viewer.acting().unit);
    let counted: BTreeMap<&str, _> = report
        .counts
        .iter()
        .filter(|(_, c)| c.missed + c.escalated + c.breached + c.running_overdue > 0)
        .map(|(u, c)| (u.as_str(), c))
        .collect();
    html! {
        h1 { (bi("督办：逾期与升级", "Overdue and escalated (督办)")) }
        (report_nav(viewer, "/reports/overdue"))
        form.filters method="get" action="/reports/overdue" aria-label="选择单位 Choose the unit" {
            div.field {
                label for="o-unit" { (bi("单位", "Unit")) }
                select #o-unit name="unit" {
                    @for unit in &units {
                        @let name = org.unit(unit).map(|u| u.name.clone()).unwrap_or_default();
                        option value=(unit.as_str()) selected[report.unit_id == unit.as_str()] { (name) " (" (unit.as_str()) ")" }
                    }
                }
            }
            button type="submit" { (bi("查看", "Show")) }
        }
        p.note { (unit_label(org, &report.unit_id)) " · " (bi("截至", "as of")) " " (when(&report.now)) }
        dl.facts {
            dt { (bi("逾期办结", "Missed")) } dd { (t.missed) }
            dt { (bi("已升级督办", "Escalated")) } dd { (t.escalated) }
            dt { (bi("严重超时", "Breached")) } dd { (t.breached) }
            dt { (bi("在办逾期", "Running overdue")) } dd { (t.running_overdue) }
        }
        section aria-labelledby="counts-h" {
            h2 #counts-h { (bi("各单位", "Per unit")) }
            div.table-wrap {
                table {
                    caption { (bi("有逾期或升级的单位；其余单位为零", "Units with anything overdue or escalated; every other unit has none")) }
                    thead {
                        tr {
                            th scope="col" { (bi("单位", "Unit")) }
                            th scope="col" { (bi("逾期办结", "Missed")) }
                            th scope="col" { (bi("已升级", "Escalated")) }
                            th scope="col" { (bi("严重超时", "Breached")) }
                            th scope="col" { (bi("在办逾期", "Running overdue")) }
                        }
                    }
                    tbody {
                        @for (unit, c) in &counted {
                            tr data-unit=(unit) {
                                th scope="row" { (unit_label(org, unit)) }
                                td { (c.missed) }
                                td { (c.escalated) }
                                td { (c.breached) }
                                td { (c.running_overdue) }
                            }
                        }
                        @if counted.is_empty() {
                            tr { td colspan="5" { (bi("没有逾期或升级。", "Nothing overdue or escalated.")) } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="items-h" {
            h2 #items-h { (bi("明细", "Items")) " (" (report.items.len()) ")" }
            div.table-wrap {
                table {
                    caption { (bi("每一个逾期、升级或超时的期限", "Every missed, escalated, breached or running overdue deadline")) }
                    thead {
                        tr {
                            th scope="col" { (bi("事项", "About")) }
                            th scope="col" { (bi("情况", "What happened")) }
                            th scope="col" { (bi("责任单位", "Unit")) }
                            th scope="col" { (bi("环节", "Stage")) }
                            th scope="col" { (bi("期限", "Due")) }
                            th scope="col" { (bi("升级至", "Escalated to")) }
                        }
                    }
                    tbody {
                        @for item in &report.items {
                            tr {
                                td { (subject_link(&item.subject)) }
                                td {
                                    (overdue_kind(item.kind))
                                    @if let Some(at) = &item.at { " " (when(at)) }
                                }
                                td { (unit_label(org, &item.unit_id)) }
                                td { (item.stage) }
                                td {
                                    (when(&item.due_at))
                                    @if item.provisional { " " span.badge.provisional { (bi("暂定", "provisional")) } }
                                }
                                td {
                                    @if let Some(to) = &item.to { (unit_label(org, to)) } @else { "—" }
                                }
                            }
                        }
                        @if report.items.is_empty() {
                            tr { td colspan="6" { (bi("没有逾期或升级。", "Nothing overdue or escalated.")) } }
                        }
                    }
                }
            }
        }
    }
}

async fn overdue_page(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
) -> Result<Response, PageError> {
    let with_nav = |e: ApiError| PageError::from(e).viewer(&viewer);
    let params = QueryParams::parse(&uri, &["unit"]).map_err(with_nav)?;
    let unit = params
        .get("unit")
        .map_or_else(|| viewer.acting().unit.as_str().to_owned(), str::to_owned);
    let report = api::overdue_of(&state, &viewer.caller, &unit, None)
        .await
        .map_err(|mut e| {
            // The API's path parameter is the page's query parameter.
            if e.field.as_deref() == Some("id") {
                e.field = Some("unit".into());
            }
            with_nav(e)
        })?;
    let body = overdue_markup(&viewer, &state.engine().org(), &report);
    Ok(Page::for_viewer(&viewer, "督办 Overdue and escalated", body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_has_its_quarter() {
        assert_eq!(quarter_of("2026-01"), "2026Q1");
        assert_eq!(quarter_of("2026-04"), "2026Q2");
        assert_eq!(quarter_of("2026-09"), "2026Q3");
        assert_eq!(quarter_of("2026-12"), "2026Q4");
    }
}
