//! Reports over the read models: unit inboxes, the case board, the overdue and escalation
//! report, 三率, community statistics, the three lists, shop standing, recommended merchants
//! and flags.
//!
//! Every handler reads a projection through `fresh_view`: it first waits (briefly) until the
//! projection has applied the log as it stood when the request came in, so a client reads its
//! own writes; a projection that has stopped, or a store that fails, is 503.
//!
//! Scope: a unit-addressed route answers only for the caller's unit or a unit below it, and
//! 404 otherwise, as if the unit did not exist. Lists and boards are cut to the caller's
//! subtree, or to the caller's community (the top of the caller's chain) for what the
//! community publishes (the three lists, recommended merchants, flags, the 三率 ranking).
//! Residents and the civic apps acting for them act as persons, not for their unit, so the
//! unit-addressed reports are not theirs (403).
//!
//! Query parameters are parsed strictly: an unknown or repeated parameter, or a bad value, is
//! 400 naming the parameter. An empty value (`?role=`) counts as not given.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{Method, Uri};
use axum::routing::get;
use axum::{Extension, Json};
use civicflow_core::calendar::{parse_rfc3339, LocalDate, Zone};
use civicflow_core::domain::lists::ListKind;
use civicflow_core::domain::org::{roles, OrgChart, Tier};
use civicflow_core::domain::workflow::WorkflowId;
use civicflow_core::{Role, Timestamp, UnitId};
use civicflow_projections::models::case_board::{self, CaseFilter, CaseRow, CaseStatus};
use civicflow_projections::models::overdue::{self, OverdueItem};
use civicflow_projections::models::page::{Cursor, Page, Paged, PAGE_MAX};
use civicflow_projections::models::unit_inbox::{self, InboxItem, Subject};
use civicflow_projections::models::{community_stats, lists, rates, shop_standing};
use civicflow_projections::{FreshnessError, ProjectionError, View};
use serde_json::{json, Map, Value};

use super::{Content, RouteSpec};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::path::Path;
use crate::policy::Policy;
use crate::state::AppState;

/// How long a read waits for a projection to catch up with the log before it answers from
/// what the projection has (during a rebuild, say).
const FRESH_WAIT: Duration = Duration::from_secs(2);

/// The page size when `limit` is not given.
const DEFAULT_LIMIT: usize = 100;

/// The routes of this module.
pub fn routes() -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/units/{id}/inbox",
            policy: Policy::Roles(roles::ACT_FOR_UNITS),
            summary: "A unit's inbox, ordered by deadline: open cases it leads or co-handles and directive parts it has not reported, each with the actions open to the unit and the roles that may take them. Query: role (only items that role can act on), after (cursor), limit (1-1000). The caller's unit or one below it (404 otherwise); not for residents or civic apps.",
            tag: "reports",
            request: None,
            params: Some(inbox_params),
            response: Some(inbox_schema),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[400, 404, 503],
            handler: get(inbox),
        },
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/cases",
            policy: Policy::Roles(roles::ACT_FOR_UNITS),
            summary: "The case board, always within the caller's subtree, ordered by opening time. Query: workflow, status (open|closed), unit (a unit of the caller's subtree: its subtree only), opened_from, opened_until (RFC 3339 or YYYY-MM-DD, Asia/Shanghai), after (cursor), limit (1-1000). A filtered page may be short and still have a next cursor. Not for residents or civic apps.",
            tag: "reports",
            request: None,
            params: Some(board_params),
            response: Some(board_schema),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[400, 404, 503],
            handler: get(board),
        },
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/units/{id}/overdue",
            policy: Policy::Roles(roles::ACT_FOR_UNITS),
            summary: "The overdue and escalation report (督办) of a unit's subtree at a moment: missed, escalated and breached deadlines, running deadlines past due and not escalated, with counts per unit. Query: now (RFC 3339 or YYYY-MM-DD; default the engine's clock). The caller's unit or one below it (404 otherwise).",
            tag: "reports",
            request: None,
            params: Some(overdue_params),
            response: Some(overdue_schema),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[400, 404, 503],
            handler: get(overdue_report),
        },
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/reports/rates",
            policy: Policy::Roles(roles::READ_STAFF_REPORTS),
            summary: "三率: the month's response, resolution and satisfaction rates of the units of the caller's community, ranked by their mean. Query: month (YYYY-MM, required), tier (only units of that tier). Staff only: community_admin, grid_worker, department_officer, liaison_officer, auditor.",
            tag: "reports",
            request: None,
            params: Some(rates_params),
            response: Some(rates_schema),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[400, 503],
            handler: get(rates_report),
        },
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/reports/stats",
            policy: Policy::Roles(roles::READ_STAFF_REPORTS),
            summary: "Community statistics: activities, beneficiaries, volunteers, cases by workflow and outcome, mean and 90th-percentile time to close, the org's figures. Query: year (default all years), community (a community the caller is in or above; default all communities). Staff only: community_admin, grid_worker, department_officer, liaison_officer, auditor.",
            tag: "reports",
            request: None,
            params: Some(stats_params),
            response: Some(stats_schema),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[400, 404, 503],
            handler: get(stats_report),
        },
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/lists/{kind}",
            policy: Policy::Roles(roles::ACT_FOR_UNITS),
            summary: "One of the three lists (kind: resources, needs, projects), items of the caller's community in the order they were added, with their linked cases. Query: retired (true: retired items too), after (cursor), limit (1-1000). Not for residents or civic apps.",
            tag: "reports",
            request: None,
            params: Some(lists_params),
            response: Some(list_schema),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[400, 404, 503],
            handler: get(list_items),
        },
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/units/{id}/standing",
            policy: Policy::Roles(roles::ACT_FOR_UNITS),
            summary: "A shop's standing: its twelve-point cycle, deductions and restorations, flags, monthly assessments and quarterly ratings. The caller's unit or one below it (404 otherwise).",
            tag: "reports",
            request: None,
            params: None,
            response: Some(standing_schema),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[400, 404, 503],
            handler: get(standing),
        },
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/reports/recommended",
            policy: Policy::Authenticated,
            summary: "The recommended merchants (联盟推荐商户) of a quarter in the caller's community, best score first. Query: quarter (e.g. 2026Q2, required).",
            tag: "reports",
            request: None,
            params: Some(recommended_params),
            response: Some(recommended_schema),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[400, 503],
            handler: get(recommended),
        },
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/reports/flags",
            policy: Policy::Authenticated,
            summary: "The red and yellow flags (红黄旗) held for a month in the caller's community. Query: period (YYYY-MM, required).",
            tag: "reports",
            request: None,
            params: Some(flags_params),
            response: Some(flags_schema),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[400, 503],
            handler: get(flags),
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// Shared by the report and directive handlers

/// A request's query parameters, checked against the names a route takes.
#[derive(Debug, Default)]
pub(crate) struct QueryParams(BTreeMap<String, String>);

impl QueryParams {
    /// Parses the query of `uri`, refusing a parameter not in `allowed` or given twice.
    ///
    /// # Errors
    /// 400 naming the parameter.
    pub(crate) fn parse(uri: &Uri, allowed: &[&str]) -> ApiResult<Self> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))?;
        let mut params = BTreeMap::new();
        for (name, value) in pairs {
            if !allowed.contains(&name.as_str()) {
                let known = if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.join(", ")
                };
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {name:?}; this route takes: {known}"
                ))
                .field(name));
            }
            if params.contains_key(&name) {
                return Err(ApiError::bad_request(format!(
                    "query parameter {name} is given twice"
                ))
                .field(name));
            }
            params.insert(name, value);
        }
        Ok(Self(params))
    }

    /// A parameter's value; an empty one counts as not given.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A required parameter.
    ///
    /// # Errors
    /// 400 naming it when it is missing.
    pub(crate) fn required(&self, name: &str, example: &str) -> ApiResult<&str> {
        self.get(name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "the query parameter {name} is required (e.g. {example})"
            ))
            .field(name)
        })
    }

    /// The page asked for: `after` (a cursor) and `limit` (1 or more; above 1000 is clamped
    /// to 1000). A limit of 0 is refused: no page could answer it, and clamping it up to 1
    /// would answer something else than was asked.
    ///
    /// # Errors
    /// 400 naming `after` or `limit`.
    pub(crate) fn page(&self) -> ApiResult<Page> {
        let limit = match self.get("limit") {
            None => DEFAULT_LIMIT,
            Some(text)
                if text.bytes().all(|b| b.is_ascii_digit()) && text.bytes().any(|b| b != b'0') =>
            {
                text.parse::<usize>().unwrap_or(usize::MAX).min(PAGE_MAX)
            }
            Some(text) => {
                return Err(ApiError::bad_request(format!(
                    "limit must be a whole number from 1 to {PAGE_MAX}, not {text:?}"
                ))
                .field("limit"))
            }
        };
        let after = self
            .get("after")
            .map(|text| {
                text.parse::<Cursor>().map_err(|e| {
                    ApiError::bad_request(format!(
                        "after: {e}; pass back the `next` of a previous page"
                    ))
                    .field("after")
                })
            })
            .transpose()?;
        Ok(Page { after, limit })
    }

    /// A boolean parameter (`true` or `false`).
    ///
    /// # Errors
    /// 400 naming it for any other value.
    pub(crate) fn flag(&self, name: &str) -> ApiResult<bool> {
        match self.get(name) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "{name} must be true or false, not {other:?}"
            ))
            .field(name)),
        }
    }

    /// A moment: RFC 3339 (`2026-04-14T09:30:00+08:00`, any offset) or a date
    /// (`2026-04-14`, its midnight in `zone`, the calendar's).
    ///
    /// # Errors
    /// 400 naming the parameter.
    pub(crate) fn time(&self, name: &str, zone: &Zone) -> ApiResult<Option<Timestamp>> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        let parsed = if text.len() == 10 {
            LocalDate::parse(text).and_then(|date| zone.from_local(date, 0))
        } else {
            parse_rfc3339(text)
        };
        parsed.map(Some).map_err(|e| {
            ApiError::bad_request(format!(
                "{name} must be an RFC 3339 time or a date (YYYY-MM-DD): {e}"
            ))
            .field(name)
        })
    }
}

/// Waits (at most [`FRESH_WAIT`]) until projection `name` has applied the log as it stands
/// now, so that a client reads its own writes; then the view. A projection that does not get
/// there in time (it is rebuilding, say) answers with what it has.
///
/// # Errors
/// 503 when the projection stopped at an event it could not apply or the store fails.
pub(crate) async fn fresh_view<'s>(state: &'s AppState, name: &'static str) -> ApiResult<View<'s>> {
    if let Some(head) = state.engine().log().head() {
        let waiter = state.clone();
        let waited = tokio::task::spawn_blocking(move || {
            waiter.runner().wait_for(name, head.position, FRESH_WAIT)
        })
        .await
        .map_err(|e| ApiError::internal(format!("the wait failed: {e}")))?;
        match waited {
            Ok(()) | Err(FreshnessError::Timeout { .. }) => {}
            Err(e) => return Err(freshness_error(&e)),
        }
    }
    state.runner().view(name).map_err(|e| freshness_error(&e))
}

/// A projection that cannot answer: 503.
pub(crate) fn freshness_error(error: &FreshnessError) -> ApiError {
    tracing::warn!(error = %error, "a read model cannot answer");
    ApiError::unavailable(format!("the read model cannot answer now: {error}"))
}

/// A query that failed: 400 for the caller's cursor, 503 for the store, 500 otherwise.
pub(crate) fn projection_error(error: ProjectionError) -> ApiError {
    match error {
        ProjectionError::Query { field, reason } => {
            let field = if field == "cursor" { "after" } else { field };
            ApiError::bad_request(format!("invalid {field}: {reason}")).field(field)
        }
        ProjectionError::Store(e) => {
            tracing::error!(error = %e, "read-model store");
            ApiError::unavailable(format!("the read-model store failed: {e}"))
        }
        other => {
            tracing::error!(error = %other, "read-model query");
            ApiError::internal("a read model failed; the error is in the service's log")
        }
    }
}

/// The unit `id` when it lies in the caller's scope (`OrgChart::in_scope`).
///
/// # Errors
/// 404 naming `field` otherwise, or when it does not exist: the same answer either way.
pub(crate) fn unit_in_scope(
    org: &OrgChart,
    caller: &Caller,
    id: &str,
    field: &str,
) -> ApiResult<UnitId> {
    let not_found = || ApiError::not_found(&format!("unit {id}")).field(field);
    let unit = UnitId::new(id).map_err(|_| not_found())?;
    if !org.in_scope(&caller.acting, &unit) {
        return Err(not_found());
    }
    Ok(unit)
}

/// A page as the API shows it.
pub(crate) fn page_json(items: Vec<Value>, next: Option<&Cursor>) -> Value {
    json!({ "items": items, "next": next.map(ToString::to_string) })
}

/// The schema of a page of `item`.
pub(crate) fn page_schema(item: Value) -> Value {
    json!({
        "type": "object",
        "required": ["items", "next"],
        "properties": {
            "items": {"type": "array", "items": item},
            "next": {"type": ["string", "null"], "description": "pass as `after` for the next page; null at the end"}
        }
    })
}

/// A query parameter, as the OpenAPI document declares it. A route refuses any parameter it
/// does not declare with 400 ([`QueryParams::parse`]).
pub(crate) fn query_param(name: &str, required: bool, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": required, "schema": schema, "description": description})
}

/// `after` and `limit`, the query parameters of every paged list.
pub(crate) fn page_params() -> Vec<Value> {
    vec![
        query_param(
            "after",
            false,
            json!({"type": "string"}),
            "the `next` of the previous page",
        ),
        query_param(
            "limit",
            false,
            json!({"type": "integer", "minimum": 1, "maximum": PAGE_MAX}),
            "items per page (default 100; 0 is refused, larger values are clamped to 1000)",
        ),
    ]
}

/// A moment: RFC 3339, or a date (its midnight in Asia/Shanghai); see [`QueryParams::time`].
fn time_schema() -> Value {
    json!({"type": "string", "anyOf": [{"format": "date-time"}, {"format": "date"}]})
}

/// `YYYY-MM`.
fn month_schema() -> Value {
    json!({"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"})
}

fn inbox_params() -> Value {
    let mut params = vec![query_param(
        "role",
        false,
        json!({"type": "string"}),
        "only the items that role can act on",
    )];
    params.extend(page_params());
    Value::Array(params)
}

fn board_params() -> Value {
    let mut params = vec![
        query_param(
            "workflow",
            false,
            json!({"type": "string"}),
            "a workflow id",
        ),
        query_param(
            "status",
            false,
            json!({"type": "string", "enum": ["open", "closed"]}),
            "open or closed cases only",
        ),
        query_param(
            "unit",
            false,
            json!({"type": "string"}),
            "a unit of the caller's subtree: its subtree only",
        ),
        query_param("opened_from", false, time_schema(), "opened at or after"),
        query_param("opened_until", false, time_schema(), "opened before"),
    ];
    params.extend(page_params());
    Value::Array(params)
}

fn overdue_params() -> Value {
    json!([query_param(
        "now",
        false,
        time_schema(),
        "the moment (default: the engine's clock)"
    )])
}

fn rates_params() -> Value {
    json!([
        query_param("month", true, month_schema(), "the month"),
        query_param(
            "tier",
            false,
            json!({"type": "string", "enum": TIERS}),
            "only units of that tier"
        ),
    ])
}

fn stats_params() -> Value {
    json!([
        query_param(
            "year",
            false,
            json!({"type": "integer", "minimum": 1, "maximum": 9999}),
            "default: all years"
        ),
        query_param(
            "community",
            false,
            json!({"type": "string"}),
            "a community the caller is in or above (default: all)"
        ),
    ])
}

fn lists_params() -> Value {
    let mut params = vec![
        json!({"name": "kind", "in": "path", "required": true,
               "schema": {"type": "string", "enum": ["resources", "needs", "projects"]}}),
        query_param(
            "retired",
            false,
            json!({"type": "boolean"}),
            "true: retired items too",
        ),
    ];
    params.extend(page_params());
    Value::Array(params)
}

fn recommended_params() -> Value {
    json!([query_param(
        "quarter",
        true,
        json!({"type": "string", "pattern": "^[0-9]{4}Q[1-4]$"}),
        "e.g. 2026Q2"
    )])
}

fn flags_params() -> Value {
    json!([query_param(
        "period",
        true,
        month_schema(),
        "the month (YYYY-MM)"
    )])
}

/// The tiers, as the API names them.
const TIERS: [&str; 7] = [
    "community",
    "grid",
    "enterprise",
    "shop",
    "department",
    "social_organization",
    "volunteer_team",
];

fn subject_json(subject: &Subject) -> Value {
    match subject {
        Subject::Case(case) => json!({"type": "case", "case_id": case.to_string()}),
        Subject::Part { directive, index } => json!({
            "type": "directive_part",
            "directive_id": directive.to_string(),
            "index": index,
        }),
    }
}

fn subject_schema() -> Value {
    json!({"type": "object", "required": ["type"], "properties": {
        "type": {"type": "string", "enum": ["case", "directive_part"]},
        "case_id": {"type": "string"},
        "directive_id": {"type": "string"},
        "index": {"type": "integer"}
    }})
}

// ---------------------------------------------------------------------------------------------
// Inbox

fn inbox_schema() -> Value {
    json!({
        "type": "object",
        "required": ["unit_id", "items", "next"],
        "properties": {
            "unit_id": {"type": "string"},
            "role": {"type": ["string", "null"]},
            "items": {"type": "array", "items": {"type": "object",
                "required": ["subject", "title", "stage", "relation", "due_at", "actions"],
                "properties": {
                    "subject": subject_schema(),
                    "title": {"type": "string"},
                    "workflow": {"type": ["string", "null"]},
                    "stage": {"type": "string"},
                    "relation": {"type": "string", "enum": ["lead", "co_handler", "assignee"]},
                    "due_at": {"type": ["string", "null"]},
                    "provisional": {"type": "boolean", "description": "the due time was counted without a year's calendar data"},
                    "actions": {"type": "array", "items": {"type": "object", "properties": {
                        "action": {"type": "string"},
                        "roles": {"type": "array", "items": {"type": "string"}}
                    }}}
                }}},
            "next": {"type": ["string", "null"]}
        }
    })
}

fn inbox_item_json(item: &InboxItem, zone: &Zone) -> Value {
    let time = |at: Timestamp| zone.format(at);
    let actions: Vec<Value> = item
        .actions
        .expanded()
        .into_iter()
        .map(|a| {
            json!({
                "action": a.action,
                "roles": a.roles.iter().map(Role::as_str).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "subject": subject_json(&item.subject),
        "title": item.title,
        "workflow": item.workflow.as_ref().map(ToString::to_string),
        "stage": item.stage,
        "relation": item.relation,
        "due_at": item.due_at.map(time),
        "provisional": item.provisional,
        "actions": actions,
    })
}

/// A role the service knows: a built-in one or one a loaded workflow names.
fn known_role(state: &AppState, text: &str) -> ApiResult<Role> {
    let unknown = || {
        ApiError::bad_request(format!(
            "role: {text:?} is not a role of this service (e.g. grid_worker)"
        ))
        .field("role")
    };
    let role = Role::new(text).map_err(|_| unknown())?;
    if state.engine().definitions().knows_role(&role) {
        Ok(role)
    } else {
        Err(unknown())
    }
}

async fn inbox(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Json<Value>> {
    let params = QueryParams::parse(&uri, &["role", "after", "limit"])?;
    let unit = unit_in_scope(&state.engine().org(), &caller, &id, "id")?;
    let role = params
        .get("role")
        .map(|r| known_role(&state, r))
        .transpose()?;
    let page = params.page()?;
    let view = fresh_view(&state, unit_inbox::NAME).await?;
    let Paged { items, next } =
        unit_inbox::inbox(&view, &unit, role.as_ref(), &page).map_err(projection_error)?;
    let zone = state.zone();
    let mut body = page_json(
        items
            .iter()
            .map(|item| inbox_item_json(item, &zone))
            .collect(),
        next.as_ref(),
    );
    body["unit_id"] = json!(unit.as_str());
    body["role"] = json!(role.as_ref().map(Role::as_str));
    Ok(Json(body))
}

// ---------------------------------------------------------------------------------------------
// Case board

fn board_row_schema() -> Value {
    json!({"type": "object",
    "required": ["id", "workflow", "title", "stage", "status", "unit_id", "lead_unit_id", "opened_at"],
    "properties": {
        "id": {"type": "string"},
        "workflow": {"type": "string", "description": "id@version"},
        "title": {"type": "string"},
        "stage": {"type": "string"},
        "status": {"type": "string", "enum": ["open", "closed"]},
        "unit_id": {"type": "string"},
        "lead_unit_id": {"type": "string"},
        "co_handlers": {"type": "array", "items": {"type": "string"}},
        "due_at": {"type": ["string", "null"]},
        "channel": {"type": "string"},
        "rating": {"type": ["integer", "null"]},
        "merged_into": {"type": ["string", "null"]},
        "has_requester": {"type": "boolean"},
        "opened_at": {"type": "string"},
        "updated_at": {"type": "string"},
        "closed_at": {"type": ["string", "null"]}
    }})
}

fn board_schema() -> Value {
    page_schema(board_row_schema())
}

fn board_row_json(row: &CaseRow, zone: &Zone) -> Value {
    let time = |at: Timestamp| zone.format(at);
    json!({
        "id": row.id.to_string(),
        "workflow": row.workflow.to_string(),
        "title": row.title,
        "stage": row.stage,
        "status": if row.closed { "closed" } else { "open" },
        "unit_id": row.unit.as_str(),
        "lead_unit_id": row.lead.as_str(),
        "co_handlers": row.co_handlers.iter().map(UnitId::as_str).collect::<Vec<_>>(),
        "due_at": row.due_at.map(time),
        "channel": row.channel,
        "rating": row.rating,
        "merged_into": row.merged_into.map(|c| c.to_string()),
        "has_requester": row.requester.is_some(),
        "opened_at": time(row.opened_at),
        "updated_at": time(row.updated_at),
        "closed_at": row.closed_at.map(time),
    })
}

async fn board(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
) -> ApiResult<Json<Value>> {
    let params = QueryParams::parse(
        &uri,
        &[
            "workflow",
            "status",
            "unit",
            "opened_from",
            "opened_until",
            "after",
            "limit",
        ],
    )?;
    let org = state.engine().org();
    let root = match params.get("unit") {
        Some(unit) => unit_in_scope(&org, &caller, unit, "unit")?,
        None => caller.acting.unit.clone(),
    };
    let mut filter = CaseFilter::all().within(org.subtree(&root));
    if let Some(workflow) = params.get("workflow") {
        let id = WorkflowId::new(workflow)
            .map_err(|e| ApiError::bad_request(format!("workflow: {e}")).field("workflow"))?;
        filter = filter.workflow(id);
    }
    match params.get("status") {
        None => {}
        Some("open") => filter = filter.status(CaseStatus::Open),
        Some("closed") => filter = filter.status(CaseStatus::Closed),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "status must be open or closed, not {other:?}"
            ))
            .field("status"))
        }
    }
    let zone = state.zone();
    filter.opened_from = params.time("opened_from", &zone)?;
    filter.opened_until = params.time("opened_until", &zone)?;
    let page = params.page()?;
    let view = fresh_view(&state, case_board::NAME).await?;
    let Paged { items, next } =
        case_board::list(&view, &filter, &page).map_err(projection_error)?;
    Ok(Json(page_json(
        items.iter().map(|row| board_row_json(row, &zone)).collect(),
        next.as_ref(),
    )))
}

// ---------------------------------------------------------------------------------------------
// Overdue

fn overdue_schema() -> Value {
    json!({
        "type": "object",
        "required": ["unit_id", "now", "counts", "items"],
        "properties": {
            "unit_id": {"type": "string"},
            "now": {"type": "string"},
            "counts": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                "missed": {"type": "integer"}, "escalated": {"type": "integer"},
                "breached": {"type": "integer"}, "running_overdue": {"type": "integer"}
            }}, "description": "per unit of the subtree"},
            "totals": {"type": "object"},
            "items": {"type": "array", "items": {"type": "object", "properties": {
                "kind": {"type": "string", "enum": ["missed", "escalated", "breached", "running_overdue"]},
                "subject": subject_schema(),
                "seq": {"type": "integer"},
                "unit_id": {"type": "string"},
                "stage": {"type": "string"},
                "due_at": {"type": "string"},
                "provisional": {"type": "boolean", "description": "the due time was counted without a year's calendar data (docs/service.md, Calendar)"},
                "at": {"type": ["string", "null"]},
                "to": {"type": ["string", "null"], "description": "the supervising unit an escalation or breach went to"}
            }}}
        }
    })
}

fn overdue_item_json(item: &OverdueItem, zone: &Zone) -> Value {
    let time = |at: Timestamp| zone.format(at);
    json!({
        "kind": item.kind,
        "subject": subject_json(&item.subject),
        "seq": item.seq,
        "unit_id": item.unit.as_str(),
        "stage": item.stage,
        "due_at": time(item.due_at),
        "provisional": item.provisional,
        "at": item.at.map(time),
        "to": item.to.as_ref().map(UnitId::as_str),
    })
}

async fn overdue_report(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Json<Value>> {
    let params = QueryParams::parse(&uri, &["now"])?;
    let org = state.engine().org();
    let unit = unit_in_scope(&org, &caller, &id, "id")?;
    let zone = state.zone();
    let time = |at: Timestamp| zone.format(at);
    let now = params
        .time("now", &zone)?
        .unwrap_or_else(|| state.engine().now());
    let units = org.subtree(&unit);
    let view = fresh_view(&state, overdue::NAME).await?;
    let report = overdue::report(&view, &units, now).map_err(projection_error)?;
    let mut counts = Map::new();
    let (mut missed, mut escalated, mut breached, mut running) = (0u64, 0u64, 0u64, 0u64);
    for (unit, c) in &report.counts {
        missed += u64::from(c.missed);
        escalated += u64::from(c.escalated);
        breached += u64::from(c.breached);
        running += u64::from(c.running_overdue);
        counts.insert(
            unit.as_str().to_owned(),
            json!({
                "missed": c.missed,
                "escalated": c.escalated,
                "breached": c.breached,
                "running_overdue": c.running_overdue,
            }),
        );
    }
    Ok(Json(json!({
        "unit_id": unit.as_str(),
        "now": time(report.now),
        "totals": {
            "missed": missed,
            "escalated": escalated,
            "breached": breached,
            "running_overdue": running,
        },
        "counts": counts,
        "items": report
            .items
            .iter()
            .map(|item| overdue_item_json(item, &zone))
            .collect::<Vec<_>>(),
    })))
}

// ---------------------------------------------------------------------------------------------
// 三率

fn rates_schema() -> Value {
    json!({
        "type": "object",
        "required": ["month", "community", "ranking"],
        "properties": {
            "month": {"type": "string"},
            "community": {"type": "string"},
            "tier": {"type": ["string", "null"]},
            "ranking": {"type": "array", "items": {"type": "object", "properties": {
                "rank": {"type": "integer"},
                "unit_id": {"type": "string"},
                "unit_name": {"type": "string"},
                "response_rate": {"type": ["number", "null"], "description": "响应率: deadlines met / deadlines closed"},
                "resolution_rate": {"type": ["number", "null"], "description": "解决率: resolved / outcomes"},
                "satisfaction_rate": {"type": ["number", "null"], "description": "满意率: ratings of 4 or 5 / ratings"},
                "mean": {"type": ["number", "null"]},
                "counts": {"type": "object", "properties": {
                    "met": {"type": "integer"}, "missed": {"type": "integer"},
                    "outcomes": {"type": "integer"}, "resolved": {"type": "integer"},
                    "ratings": {"type": "integer"}, "satisfied": {"type": "integer"}
                }}
            }}}
        }
    })
}

/// Checks a `YYYY-MM` month.
fn check_month(name: &str, text: &str) -> ApiResult<()> {
    let bytes = text.as_bytes();
    let valid = bytes.len() == 7
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[5..].iter().all(u8::is_ascii_digit)
        && matches!(text.get(5..).map(str::parse::<u8>), Some(Ok(1..=12)));
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{name} must be YYYY-MM (e.g. 2026-04), not {text:?}"
        ))
        .field(name))
    }
}

fn parse_tier(text: &str) -> ApiResult<Tier> {
    [
        Tier::Community,
        Tier::Grid,
        Tier::Enterprise,
        Tier::Shop,
        Tier::Department,
        Tier::SocialOrganization,
        Tier::VolunteerTeam,
    ]
    .into_iter()
    .find(|t| t.as_str() == text)
    .ok_or_else(|| {
        ApiError::bad_request(format!(
            "tier must be community, grid, enterprise, shop, department, social_organization or volunteer_team, not {text:?}"
        ))
        .field("tier")
    })
}

async fn rates_report(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
) -> ApiResult<Json<Value>> {
    let params = QueryParams::parse(&uri, &["month", "tier"])?;
    let month = params.required("month", "2026-04")?;
    check_month("month", month)?;
    let tier = params.get("tier").map(parse_tier).transpose()?;
    let org = state.engine().org();
    let view = fresh_view(&state, rates::NAME).await?;
    let ranking = rates::ranking(&view, month).map_err(projection_error)?;
    let ranked: Vec<Value> = ranking
        .iter()
        .filter(|r| org.same_community(&r.rates.unit, &caller.acting.unit))
        .filter(|r| tier.is_none_or(|tier| org.unit(&r.rates.unit).is_some_and(|u| u.tier == tier)))
        .zip(1u32..)
        .map(|(r, rank)| {
            let c = &r.rates.counts;
            json!({
                "rank": rank,
                "unit_id": r.rates.unit.as_str(),
                "unit_name": org.unit(&r.rates.unit).map(|u| u.name.as_str()),
                "response_rate": r.rates.response_rate,
                "resolution_rate": r.rates.resolution_rate,
                "satisfaction_rate": r.rates.satisfaction_rate,
                "mean": r.rates.mean,
                "counts": {
                    "met": c.met, "missed": c.missed,
                    "outcomes": c.outcomes, "resolved": c.resolved,
                    "ratings": c.ratings, "satisfied": c.satisfied,
                },
            })
        })
        .collect();
    Ok(Json(json!({
        "month": month,
        "community": org.top_of(&caller.acting.unit).as_str(),
        "tier": tier.map(Tier::as_str),
        "ranking": ranked,
    })))
}

// ---------------------------------------------------------------------------------------------
// Community statistics

fn stats_schema() -> Value {
    json!({
        "type": "object",
        "required": ["community", "year", "activities", "opened", "closed", "workflows", "org"],
        "properties": {
            "community": {"type": ["string", "null"], "description": "null: all communities"},
            "year": {"type": ["integer", "null"], "description": "null: all years"},
            "years": {"type": "array", "items": {"type": "integer"}, "description": "the years with figures"},
            "activities": {"type": "integer"},
            "participants": {"type": "integer"},
            "beneficiaries": {"type": "integer"},
            "activity_volunteers": {"type": "integer"},
            "opened": {"type": "integer"},
            "closed": {"type": "integer"},
            "reopened": {"type": "integer"},
            "outcomes": {"type": "object", "additionalProperties": {"type": "integer"}},
            "workflows": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                "opened": {"type": "integer"}, "closed": {"type": "integer"}, "reopened": {"type": "integer"},
                "outcomes": {"type": "object"},
                "mean_close_seconds": {"type": ["integer", "null"]},
                "p90_close_seconds": {"type": ["integer", "null"]}
            }}},
            "org": {"type": "object", "properties": {
                "party_members": {"type": "integer"}, "volunteers": {"type": "integer"},
                "grid_workers": {"type": "integer"}, "liaison_officers": {"type": "integer"},
                "monitoring_points": {"type": "integer"},
                "units": {"type": "object", "additionalProperties": {"type": "integer"}}
            }}
        }
    })
}

async fn stats_report(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
) -> ApiResult<Json<Value>> {
    let params = QueryParams::parse(&uri, &["year", "community"])?;
    let year = params
        .get("year")
        .map(|text| {
            text.parse::<i32>()
                .ok()
                .filter(|y| (1..=9999).contains(y))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("year must be a year (e.g. 2026), not {text:?}"))
                        .field("year")
                })
        })
        .transpose()?;
    let org = state.engine().org();
    let community = params
        .get("community")
        .map(|id| {
            // The community's staff (any unit in it) and those above it may read it.
            let not_found = || ApiError::not_found(&format!("community {id}")).field("community");
            let unit = UnitId::new(id).map_err(|_| not_found())?;
            let known = org.unit(&unit).ok_or_else(not_found)?;
            if !org.related(&caller.acting.unit, &unit) {
                return Err(not_found());
            }
            if known.tier != Tier::Community {
                return Err(ApiError::bad_request(format!(
                    "{id} is {}, not a community",
                    known.tier.with_article()
                ))
                .field("community"));
            }
            Ok(unit)
        })
        .transpose()?;
    let view = fresh_view(&state, community_stats::NAME).await?;
    let stats = match &community {
        Some(unit) => community_stats::community_stats(&view, unit, year),
        None => community_stats::stats(&view, year),
    }
    .map_err(projection_error)?;
    let years = community_stats::years(&view, community.as_ref()).map_err(projection_error)?;
    let mut body = serde_json::to_value(&stats)
        .map_err(|e| ApiError::internal(format!("the statistics do not encode: {e}")))?;
    body["years"] = json!(years);
    Ok(Json(body))
}

// ---------------------------------------------------------------------------------------------
// The three lists

fn list_schema() -> Value {
    let mut schema = page_schema(json!({"type": "object",
    "required": ["id", "list", "title", "unit_id", "cases", "retired"],
    "properties": {
        "id": {"type": "string"},
        "list": {"type": "string", "enum": ["resources", "needs", "projects"]},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "unit_id": {"type": "string"},
        "cases": {"type": "array", "items": {"type": "string"}},
        "retired": {"type": "boolean"},
        "retired_reason": {"type": ["string", "null"]},
        "added_at": {"type": "string"},
        "updated_at": {"type": "string"}
    }}));
    schema["properties"]["kind"] = json!({"type": "string"});
    schema
}

async fn list_items(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(kind): Path<String>,
    uri: Uri,
) -> ApiResult<Json<Value>> {
    let list = match kind.as_str() {
        "resources" => ListKind::Resources,
        "needs" => ListKind::Needs,
        "projects" => ListKind::Projects,
        _ => {
            return Err(ApiError::not_found(&format!(
                "list {kind} (the lists are resources, needs, projects)"
            ))
            .field("kind"))
        }
    };
    let params = QueryParams::parse(&uri, &["retired", "after", "limit"])?;
    let retired = params.flag("retired")?;
    let page = params.page()?;
    let org = state.engine().org();
    let zone = state.zone();
    let time = |at: Timestamp| zone.format(at);
    let view = fresh_view(&state, lists::NAME).await?;
    let Paged { items, next } =
        lists::list(&view, list, retired, &page).map_err(projection_error)?;
    let items: Vec<Value> = items
        .iter()
        .filter(|item| {
            civicflow_core::domain::lists::item_visible(&item.row.unit, &caller.acting, &org)
        })
        .map(|item| {
            let row = &item.row;
            json!({
                "id": item.id.to_string(),
                "list": row.list,
                "title": row.title,
                "description": row.description,
                "unit_id": row.unit.as_str(),
                "cases": row.cases.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "retired": row.is_retired(),
                "retired_reason": row.retired,
                "added_at": time(row.added_at),
                "updated_at": time(row.updated_at),
            })
        })
        .collect();
    let mut body = page_json(items, next.as_ref());
    body["kind"] = json!(kind);
    Ok(Json(body))
}

// ---------------------------------------------------------------------------------------------
// Shop standing, recommended merchants, flags

fn standing_schema() -> Value {
    json!({
        "type": "object",
        "required": ["unit_id", "cycle", "points", "flags", "monthly", "quarterly"],
        "properties": {
            "unit_id": {"type": "string"},
            "cycle": {"type": ["string", "null"], "description": "the running twelve-point cycle (2026)"},
            "points": {"type": ["integer", "null"], "description": "points left in the cycle"},
            "deducted": {"type": "integer"},
            "restored": {"type": "integer"},
            "history": {"type": "array", "items": {"type": "object", "properties": {
                "at": {"type": "string"}, "change": {"type": "integer"},
                "left": {"type": "integer"}, "reason": {"type": "string"}
            }}},
            "flags": {"type": "object", "additionalProperties": {"type": "string", "enum": ["red", "yellow"]}},
            "monthly": {"type": "object", "additionalProperties": {"type": "integer"}},
            "quarterly": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                "recommended": {"type": "boolean"}, "score": {"type": "integer"}
            }}}
        }
    })
}

async fn standing(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Json<Value>> {
    QueryParams::parse(&uri, &[])?;
    let unit = unit_in_scope(&state.engine().org(), &caller, &id, "id")?;
    let view = fresh_view(&state, shop_standing::NAME).await?;
    let row = shop_standing::standing(&view, &unit)
        .map_err(projection_error)?
        .unwrap_or_default();
    let zone = state.zone();
    let time = |at: Timestamp| zone.format(at);
    let history: Vec<Value> = row
        .history
        .iter()
        .map(|c| json!({"at": time(c.at), "change": c.change, "left": c.left, "reason": c.reason}))
        .collect();
    let quarterly: Map<String, Value> = row
        .quarterly
        .iter()
        .map(|(quarter, (recommended, score))| {
            (
                quarter.clone(),
                json!({"recommended": recommended, "score": score}),
            )
        })
        .collect();
    Ok(Json(json!({
        "unit_id": unit.as_str(),
        "cycle": row.cycle.as_ref().map(|(cycle, _)| cycle),
        "points": row.points(),
        "deducted": row.deducted,
        "restored": row.restored,
        "history": history,
        "flags": row.flags,
        "monthly": row.monthly,
        "quarterly": quarterly,
    })))
}

fn recommended_schema() -> Value {
    json!({
        "type": "object",
        "required": ["quarter", "community", "merchants"],
        "properties": {
            "quarter": {"type": "string"},
            "community": {"type": "string"},
            "merchants": {"type": "array", "items": {"type": "object", "properties": {
                "unit_id": {"type": "string"}, "unit_name": {"type": ["string", "null"]},
                "score": {"type": "integer"}
            }}}
        }
    })
}

async fn recommended(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
) -> ApiResult<Json<Value>> {
    let params = QueryParams::parse(&uri, &["quarter"])?;
    let quarter = params.required("quarter", "2026Q2")?;
    let bytes = quarter.as_bytes();
    let valid = bytes.len() == 6
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'Q'
        && (b'1'..=b'4').contains(&bytes[5]);
    if !valid {
        return Err(ApiError::bad_request(format!(
            "quarter must look like 2026Q2, not {quarter:?}"
        ))
        .field("quarter"));
    }
    let org = state.engine().org();
    let view = fresh_view(&state, shop_standing::NAME).await?;
    let merchants: Vec<Value> = shop_standing::recommended(&view, quarter)
        .map_err(projection_error)?
        .iter()
        .filter(|r| org.same_community(&r.unit, &caller.acting.unit))
        .map(|r| {
            json!({
                "unit_id": r.unit.as_str(),
                "unit_name": org.unit(&r.unit).map(|u| u.name.as_str()),
                "score": r.score,
            })
        })
        .collect();
    Ok(Json(json!({
        "quarter": quarter,
        "community": org.top_of(&caller.acting.unit).as_str(),
        "merchants": merchants,
    })))
}

fn flags_schema() -> Value {
    json!({
        "type": "object",
        "required": ["period", "community", "red", "yellow"],
        "properties": {
            "period": {"type": "string"},
            "community": {"type": "string"},
            "red": {"type": "array", "items": {"type": "string"}},
            "yellow": {"type": "array", "items": {"type": "string"}}
        }
    })
}

async fn flags(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
) -> ApiResult<Json<Value>> {
    let params = QueryParams::parse(&uri, &["period"])?;
    let period = params.required("period", "2026-04")?;
    check_month("period", period)?;
    let org = state.engine().org();
    let view = fresh_view(&state, shop_standing::NAME).await?;
    let held = shop_standing::flags(&view, period).map_err(projection_error)?;
    let keep = |units: &[UnitId]| -> Vec<String> {
        units
            .iter()
            .filter(|u| org.same_community(u, &caller.acting.unit))
            .map(|u| u.as_str().to_owned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    Ok(Json(json!({
        "period": period,
        "community": org.top_of(&caller.acting.unit).as_str(),
        "red": keep(&held.red),
        "yellow": keep(&held.yellow),
    })))
}
