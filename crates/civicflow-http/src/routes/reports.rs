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
use civicflow_core::domain::case::Channel;
use civicflow_core::domain::lists::ListKind;
use civicflow_core::domain::merchants::FlagColour;
use civicflow_core::domain::org::{roles, OrgChart, Tier};
use civicflow_core::domain::workflow::WorkflowId;
use civicflow_core::{Role, Timestamp, UnitId};
use civicflow_projections::models::case_board::{self, CaseFilter, CaseRow, CaseStatus};
use civicflow_projections::models::overdue::{self, OverdueCounts, OverdueItem, OverdueKind};
use civicflow_projections::models::page::{Cursor, Page, Paged, PAGE_MAX};
use civicflow_projections::models::rates::RateCounts;
use civicflow_projections::models::unit_inbox::{self, InboxItem, Relation, Subject};
use civicflow_projections::models::{community_stats, lists, rates, shop_standing};
use civicflow_projections::{FreshnessError, ProjectionError, View};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{json, Value};

use super::org::TierName;
use super::{Content, RouteSpec};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::openapi::answer_schema_of;
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
            response: Some(answer_schema_of::<InboxAnswer>),
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
            response: Some(answer_schema_of::<PageAnswer<CaseRowAnswer>>),
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
            response: Some(answer_schema_of::<OverdueAnswer>),
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
            response: Some(answer_schema_of::<RatesAnswer>),
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
            response: Some(answer_schema_of::<StatsAnswer>),
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
            response: Some(answer_schema_of::<ListAnswer>),
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
            response: Some(answer_schema_of::<StandingAnswer>),
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
            response: Some(answer_schema_of::<RecommendedAnswer>),
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
            response: Some(answer_schema_of::<FlagsAnswer>),
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

/// A page of a list, as the API shows it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PageAnswer<T> {
    /// The items, at most `limit`.
    pub items: Vec<T>,
    /// Pass as `after` for the next page; null at the end.
    pub next: Option<String>,
}

impl<T> PageAnswer<T> {
    /// The page of `items` that `next` continues.
    pub(crate) fn new(items: Vec<T>, next: Option<&Cursor>) -> Self {
        Self {
            items,
            next: next.map(ToString::to_string),
        }
    }
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

/// What an inbox or overdue item is about.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SubjectAnswer {
    /// A case.
    Case {
        /// The case.
        case_id: String,
    },
    /// One unit's part of a directive.
    DirectivePart {
        /// The directive.
        directive_id: String,
        /// The part's index in the directive.
        index: u32,
    },
}

impl From<&Subject> for SubjectAnswer {
    fn from(subject: &Subject) -> Self {
        match subject {
            Subject::Case(case) => SubjectAnswer::Case {
                case_id: case.to_string(),
            },
            Subject::Part { directive, index } => SubjectAnswer::DirectivePart {
                directive_id: directive.to_string(),
                index: *index,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inbox

/// A unit's inbox (`GET /api/v1/units/{id}/inbox`), a page ordered by deadline.
#[derive(Debug, Serialize, JsonSchema)]
pub struct InboxAnswer {
    /// The unit.
    pub unit_id: String,
    /// The role asked for; null: every role.
    pub role: Option<String>,
    /// The items and the cursor of the next page.
    #[serde(flatten)]
    pub page: PageAnswer<InboxItemAnswer>,
}

/// One item of an inbox: an open case or an unreported directive part.
#[derive(Debug, Serialize, JsonSchema)]
pub struct InboxItemAnswer {
    /// What it is about.
    pub subject: SubjectAnswer,
    /// The case's or the directive's title.
    pub title: String,
    /// The case's workflow (id@version); null for a directive part.
    pub workflow: Option<String>,
    /// The case's stage (a part: its state).
    pub stage: String,
    /// How the unit is involved.
    pub relation: RelationName,
    /// When it is due; null: no deadline runs.
    pub due_at: Option<String>,
    /// The due time was counted without a year's calendar data.
    pub provisional: bool,
    /// The actions open to the unit, each with the roles that may take it.
    pub actions: Vec<InboxActionAnswer>,
}

/// An action open to a unit, and who may take it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct InboxActionAnswer {
    /// The action's id.
    pub action: String,
    /// The roles that may take it.
    pub roles: Vec<String>,
}

/// How a unit is involved in an inbox item.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RelationName {
    /// It leads the case.
    Lead,
    /// It co-handles the case.
    CoHandler,
    /// It was assigned the directive part.
    Assignee,
}

impl From<Relation> for RelationName {
    fn from(relation: Relation) -> Self {
        match relation {
            Relation::Lead => RelationName::Lead,
            Relation::CoHandler => RelationName::CoHandler,
            Relation::Assignee => RelationName::Assignee,
        }
    }
}

impl InboxItemAnswer {
    fn new(item: &InboxItem, zone: &Zone) -> Self {
        Self {
            subject: (&item.subject).into(),
            title: item.title.clone(),
            workflow: item.workflow.as_ref().map(ToString::to_string),
            stage: item.stage.clone(),
            relation: item.relation.into(),
            due_at: item.due_at.map(|at| zone.format(at)),
            provisional: item.provisional,
            actions: item
                .actions
                .expanded()
                .into_iter()
                .map(|a| InboxActionAnswer {
                    action: a.action,
                    roles: a.roles.iter().map(|r| r.as_str().to_owned()).collect(),
                })
                .collect(),
        }
    }
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
) -> ApiResult<Json<InboxAnswer>> {
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
    let items = items
        .iter()
        .map(|item| InboxItemAnswer::new(item, &zone))
        .collect();
    Ok(Json(InboxAnswer {
        unit_id: unit.as_str().to_owned(),
        role: role.as_ref().map(|r| r.as_str().to_owned()),
        page: PageAnswer::new(items, next.as_ref()),
    }))
}

// ---------------------------------------------------------------------------------------------
// Case board

/// A case on the board (`GET /api/v1/cases`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct CaseRowAnswer {
    /// The case.
    pub id: String,
    /// Its workflow, id@version.
    pub workflow: String,
    /// Its title.
    pub title: String,
    /// Its stage.
    pub stage: String,
    /// Open or closed.
    pub status: CaseStatusName,
    /// The unit it was filed with.
    pub unit_id: String,
    /// The unit that leads it.
    pub lead_unit_id: String,
    /// The units that co-handle it.
    pub co_handlers: Vec<String>,
    /// When its running deadline falls due; null: none runs.
    pub due_at: Option<String>,
    /// How it came in.
    pub channel: ChannelName,
    /// The requester's rating, 1 (very dissatisfied) to 5 (very satisfied); null: not rated.
    #[schemars(range(min = 1, max = 5))]
    pub rating: Option<u8>,
    /// The case it was merged into; null: not merged.
    pub merged_into: Option<String>,
    /// Whether a requester's contact is kept for it.
    pub has_requester: bool,
    /// When it was opened.
    pub opened_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// When it was closed; null: open.
    pub closed_at: Option<String>,
}

/// Whether a case is open.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatusName {
    /// Open.
    Open,
    /// Closed.
    Closed,
}

impl CaseStatusName {
    /// The status of a case that is `closed` or not.
    pub(crate) fn of(closed: bool) -> Self {
        if closed {
            CaseStatusName::Closed
        } else {
            CaseStatusName::Open
        }
    }
}

/// How a request came in.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelName {
    /// 上门受理: at the door, by a grid worker.
    Door,
    /// The 12345 hotline or the community's phone.
    Hotline,
    /// A civic app through Open311.
    Open311,
    /// The native API or an embedding system.
    Api,
    /// Raised by staff themselves (a patrol, a monitoring point).
    Staff,
}

impl From<Channel> for ChannelName {
    fn from(channel: Channel) -> Self {
        match channel {
            Channel::Door => ChannelName::Door,
            Channel::Hotline => ChannelName::Hotline,
            Channel::Open311 => ChannelName::Open311,
            Channel::Api => ChannelName::Api,
            Channel::Staff => ChannelName::Staff,
        }
    }
}

impl CaseRowAnswer {
    fn new(row: &CaseRow, zone: &Zone) -> Self {
        let time = |at: Timestamp| zone.format(at);
        Self {
            id: row.id.to_string(),
            workflow: row.workflow.to_string(),
            title: row.title.clone(),
            stage: row.stage.clone(),
            status: CaseStatusName::of(row.closed),
            unit_id: row.unit.as_str().to_owned(),
            lead_unit_id: row.lead.as_str().to_owned(),
            co_handlers: row
                .co_handlers
                .iter()
                .map(|u| u.as_str().to_owned())
                .collect(),
            due_at: row.due_at.map(time),
            channel: row.channel.into(),
            rating: row.rating,
            merged_into: row.merged_into.map(|c| c.to_string()),
            has_requester: row.requester.is_some(),
            opened_at: time(row.opened_at),
            updated_at: time(row.updated_at),
            closed_at: row.closed_at.map(time),
        }
    }
}

async fn board(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
) -> ApiResult<Json<PageAnswer<CaseRowAnswer>>> {
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
    Ok(Json(PageAnswer::new(
        items
            .iter()
            .map(|row| CaseRowAnswer::new(row, &zone))
            .collect(),
        next.as_ref(),
    )))
}

// ---------------------------------------------------------------------------------------------
// Overdue

/// The overdue and escalation report of a unit's subtree (`GET /api/v1/units/{id}/overdue`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct OverdueAnswer {
    /// The unit at the top of the subtree.
    pub unit_id: String,
    /// The moment of the report.
    pub now: String,
    /// The counts of the whole subtree.
    pub totals: OverdueCountsAnswer,
    /// The counts of every unit of the subtree (zeros included), by unit id.
    pub counts: BTreeMap<String, OverdueCountsAnswer>,
    /// Every missed, escalated or breached deadline, and every running one past due.
    pub items: Vec<OverdueItemAnswer>,
}

/// How many deadlines of each kind.
#[derive(Debug, Clone, Copy, Default, Serialize, JsonSchema)]
pub struct OverdueCountsAnswer {
    /// Deadlines missed.
    pub missed: u64,
    /// Deadlines escalated.
    pub escalated: u64,
    /// Deadlines breached.
    pub breached: u64,
    /// Running deadlines past due and not escalated at `now`.
    pub running_overdue: u64,
}

impl OverdueCountsAnswer {
    fn add(&mut self, counts: &OverdueCounts) {
        self.missed += u64::from(counts.missed);
        self.escalated += u64::from(counts.escalated);
        self.breached += u64::from(counts.breached);
        self.running_overdue += u64::from(counts.running_overdue);
    }
}

/// One deadline of the report.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OverdueItemAnswer {
    /// What happened to it.
    pub kind: OverdueKindName,
    /// What it is about.
    pub subject: SubjectAnswer,
    /// The deadline's number within the case or part.
    pub seq: u32,
    /// The unit responsible for the deadline.
    pub unit_id: String,
    /// The stage the deadline belongs to (`report` for a directive part).
    pub stage: String,
    /// When the deadline fell (falls) due.
    pub due_at: String,
    /// The due time was counted without a year's calendar data (docs/service.md, Calendar).
    pub provisional: bool,
    /// When it happened; null for a running deadline.
    pub at: Option<String>,
    /// The supervising unit an escalation or breach went to.
    pub to: Option<String>,
}

/// What happened to an overdue deadline.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverdueKindName {
    /// The stage was left after the deadline.
    Missed,
    /// The deadline was escalated to the supervising unit.
    Escalated,
    /// The deadline was breached.
    Breached,
    /// Running and past due at the report's `now`, not escalated.
    RunningOverdue,
}

impl From<OverdueKind> for OverdueKindName {
    fn from(kind: OverdueKind) -> Self {
        match kind {
            OverdueKind::Missed => OverdueKindName::Missed,
            OverdueKind::Escalated => OverdueKindName::Escalated,
            OverdueKind::Breached => OverdueKindName::Breached,
            OverdueKind::RunningOverdue => OverdueKindName::RunningOverdue,
        }
    }
}

impl OverdueItemAnswer {
    fn new(item: &OverdueItem, zone: &Zone) -> Self {
        let time = |at: Timestamp| zone.format(at);
        Self {
            kind: item.kind.into(),
            subject: (&item.subject).into(),
            seq: item.seq,
            unit_id: item.unit.as_str().to_owned(),
            stage: item.stage.clone(),
            due_at: time(item.due_at),
            provisional: item.provisional,
            at: item.at.map(time),
            to: item.to.as_ref().map(|u| u.as_str().to_owned()),
        }
    }
}

async fn overdue_report(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Json<OverdueAnswer>> {
    let params = QueryParams::parse(&uri, &["now"])?;
    let now = params.time("now", &state.zone())?;
    Ok(Json(overdue_of(&state, &caller, &id, now).await?))
}

/// The overdue and escalation report of unit `id`'s subtree at `now` (default: the engine's
/// clock), for `caller` (`GET /api/v1/units/{id}/overdue` and the dashboard's report).
///
/// # Errors
/// 404 naming `id` for a unit outside the caller's scope; 503 when the read model cannot
/// answer.
pub(crate) async fn overdue_of(
    state: &AppState,
    caller: &Caller,
    id: &str,
    now: Option<Timestamp>,
) -> ApiResult<OverdueAnswer> {
    let org = state.engine().org();
    let unit = unit_in_scope(&org, caller, id, "id")?;
    let zone = state.zone();
    let now = now.unwrap_or_else(|| state.engine().now());
    let units = org.subtree(&unit);
    let view = fresh_view(state, overdue::NAME).await?;
    let report = overdue::report(&view, &units, now).map_err(projection_error)?;
    let mut totals = OverdueCountsAnswer::default();
    let mut counts = BTreeMap::new();
    for (unit, c) in &report.counts {
        totals.add(c);
        let mut of_unit = OverdueCountsAnswer::default();
        of_unit.add(c);
        counts.insert(unit.as_str().to_owned(), of_unit);
    }
    Ok(OverdueAnswer {
        unit_id: unit.as_str().to_owned(),
        now: zone.format(report.now),
        totals,
        counts,
        items: report
            .items
            .iter()
            .map(|item| OverdueItemAnswer::new(item, &zone))
            .collect(),
    })
}

// ---------------------------------------------------------------------------------------------
// 三率

/// 三率 of a month (`GET /api/v1/reports/rates`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct RatesAnswer {
    /// The month, YYYY-MM.
    pub month: String,
    /// The caller's community.
    pub community: String,
    /// The tier asked for; null: every tier.
    pub tier: Option<TierName>,
    /// The units, best mean first.
    pub ranking: Vec<RankedUnitAnswer>,
}

/// A unit's rates and its place in the ranking.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RankedUnitAnswer {
    /// Its place, from 1.
    pub rank: u32,
    /// The unit.
    pub unit_id: String,
    /// Its name; null when it is no longer in the org chart.
    pub unit_name: Option<String>,
    /// 响应率: deadlines met / deadlines met or missed; null: none.
    pub response_rate: Option<f64>,
    /// 解决率: resolved / outcomes; null: none.
    pub resolution_rate: Option<f64>,
    /// 满意率: ratings of 4 or 5 / ratings; null: none.
    pub satisfaction_rate: Option<f64>,
    /// The mean of the rates that have data; null: none has.
    pub mean: Option<f64>,
    /// What the rates are counted from.
    pub counts: RateCountsAnswer,
}

/// What a unit's rates are counted from.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RateCountsAnswer {
    /// Deadlines met.
    pub met: u32,
    /// Deadlines missed.
    pub missed: u32,
    /// Actions with an `outcome` field.
    pub outcomes: u32,
    /// Of those, outcome `resolved` or `agreement`.
    pub resolved: u32,
    /// Ratings given.
    pub ratings: u32,
    /// Of those, 4 or 5.
    pub satisfied: u32,
}

impl From<&RateCounts> for RateCountsAnswer {
    fn from(c: &RateCounts) -> Self {
        Self {
            met: c.met,
            missed: c.missed,
            outcomes: c.outcomes,
            resolved: c.resolved,
            ratings: c.ratings,
            satisfied: c.satisfied,
        }
    }
}

/// Checks a `YYYY-MM` month.
pub(crate) fn check_month(name: &str, text: &str) -> ApiResult<()> {
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

pub(crate) fn parse_tier(text: &str) -> ApiResult<Tier> {
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
) -> ApiResult<Json<RatesAnswer>> {
    let params = QueryParams::parse(&uri, &["month", "tier"])?;
    let month = params.required("month", "2026-04")?;
    check_month("month", month)?;
    let tier = params.get("tier").map(parse_tier).transpose()?;
    Ok(Json(rates_of(&state, &caller, month, tier).await?))
}

/// 三率 of `month` (checked `YYYY-MM`) for the units of `caller`'s community, of `tier` only
/// when given, ranked by their mean (`GET /api/v1/reports/rates` and the dashboard's charts).
///
/// # Errors
/// 503 when the read model cannot answer.
pub(crate) async fn rates_of(
    state: &AppState,
    caller: &Caller,
    month: &str,
    tier: Option<Tier>,
) -> ApiResult<RatesAnswer> {
    let org = state.engine().org();
    let view = fresh_view(state, rates::NAME).await?;
    let ranking = rates::ranking(&view, month).map_err(projection_error)?;
    let ranking = ranking
        .iter()
        .filter(|r| org.same_community(&r.rates.unit, &caller.acting.unit))
        .filter(|r| tier.is_none_or(|tier| org.unit(&r.rates.unit).is_some_and(|u| u.tier == tier)))
        .zip(1u32..)
        .map(|(r, rank)| RankedUnitAnswer {
            rank,
            unit_id: r.rates.unit.as_str().to_owned(),
            unit_name: org.unit(&r.rates.unit).map(|u| u.name.clone()),
            response_rate: r.rates.response_rate,
            resolution_rate: r.rates.resolution_rate,
            satisfaction_rate: r.rates.satisfaction_rate,
            mean: r.rates.mean,
            counts: (&r.rates.counts).into(),
        })
        .collect();
    Ok(RatesAnswer {
        month: month.to_owned(),
        community: org.top_of(&caller.acting.unit).as_str().to_owned(),
        tier: tier.map(TierName::from),
        ranking,
    })
}

// ---------------------------------------------------------------------------------------------
// Community statistics

/// Community statistics (`GET /api/v1/reports/stats`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct StatsAnswer {
    /// The community; null: all communities.
    pub community: Option<String>,
    /// The year; null: all years.
    pub year: Option<i32>,
    /// The years with figures.
    pub years: Vec<i32>,
    /// Activities held.
    pub activities: u64,
    /// Their participants.
    pub participants: u64,
    /// Their beneficiary visits (受益人次).
    pub beneficiaries: u64,
    /// Their volunteers (the sum over activities, not distinct people).
    pub activity_volunteers: u64,
    /// Cases opened, all workflows.
    pub opened: u64,
    /// Cases closed (first closes), all workflows.
    pub closed: u64,
    /// Reopenings, all workflows.
    pub reopened: u64,
    /// First closes by terminal stage, all workflows.
    pub outcomes: BTreeMap<String, u64>,
    /// By workflow id.
    pub workflows: BTreeMap<String, WorkflowStatsAnswer>,
    /// The org chart now.
    pub org: OrgFiguresAnswer,
}

/// One workflow's cases in a scope and period.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WorkflowStatsAnswer {
    /// Cases opened.
    pub opened: u64,
    /// Cases closed (first closes).
    pub closed: u64,
    /// Reopenings.
    pub reopened: u64,
    /// First closes by terminal stage.
    pub outcomes: BTreeMap<String, u64>,
    /// The mean time to close, in seconds; null: nothing closed.
    pub mean_close_seconds: Option<u64>,
    /// The 90th-percentile time to close, in seconds, by nearest rank; null: nothing closed.
    pub p90_close_seconds: Option<u64>,
}

/// The org chart's figures, as it stands now.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OrgFiguresAnswer {
    /// Distinct actors holding `party_member` (党员).
    pub party_members: u64,
    /// Distinct actors holding `volunteer` (志愿者).
    pub volunteers: u64,
    /// Distinct actors holding `grid_worker` (网格员).
    pub grid_workers: u64,
    /// Distinct actors holding `liaison_officer` (居务联络员).
    pub liaison_officers: u64,
    /// Distinct units with a liaison officer: the monitoring points.
    pub monitoring_points: u64,
    /// Units by tier (`community`, `grid`, …).
    pub units: BTreeMap<String, u64>,
}

impl StatsAnswer {
    fn new(stats: community_stats::Stats, years: Vec<i32>) -> Self {
        // Taken apart field by field, so that a figure the projection adds does not compile
        // until the answer (and so its schema) says what becomes of it.
        let community_stats::Stats {
            community,
            year,
            activities,
            participants,
            beneficiaries,
            activity_volunteers,
            opened,
            closed,
            reopened,
            outcomes,
            workflows,
            org,
        } = stats;
        let community_stats::OrgFigures {
            party_members,
            volunteers,
            grid_workers,
            liaison_officers,
            monitoring_points,
            units,
        } = org;
        let workflows = workflows
            .into_iter()
            .map(|(id, w)| {
                let community_stats::WorkflowStats {
                    opened,
                    closed,
                    reopened,
                    outcomes,
                    mean_close_seconds,
                    p90_close_seconds,
                } = w;
                let answer = WorkflowStatsAnswer {
                    opened,
                    closed,
                    reopened,
                    outcomes,
                    mean_close_seconds,
                    p90_close_seconds,
                };
                (id, answer)
            })
            .collect();
        Self {
            community: community.map(|unit| unit.as_str().to_owned()),
            year,
            years,
            activities,
            participants,
            beneficiaries,
            activity_volunteers,
            opened,
            closed,
            reopened,
            outcomes,
            workflows,
            org: OrgFiguresAnswer {
                party_members,
                volunteers,
                grid_workers,
                liaison_officers,
                monitoring_points,
                units: units
                    .into_iter()
                    .map(|(tier, count)| (tier.as_str().to_owned(), count))
                    .collect(),
            },
        }
    }
}

async fn stats_report(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
) -> ApiResult<Json<StatsAnswer>> {
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
    Ok(Json(
        stats_of(&state, &caller, year, params.get("community")).await?,
    ))
}

/// Community statistics of `year` (default: all years) for `community` (a community the
/// caller is in or above; default: all communities) (`GET /api/v1/reports/stats` and the
/// dashboard's reports).
///
/// # Errors
/// 404 naming `community` for one the caller is not related to; 400 for a unit that is not
/// a community; 503 when the read model cannot answer.
pub(crate) async fn stats_of(
    state: &AppState,
    caller: &Caller,
    year: Option<i32>,
    community: Option<&str>,
) -> ApiResult<StatsAnswer> {
    let org = state.engine().org();
    let community = community
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
    let view = fresh_view(state, community_stats::NAME).await?;
    let stats = match &community {
        Some(unit) => community_stats::community_stats(&view, unit, year),
        None => community_stats::stats(&view, year),
    }
    .map_err(projection_error)?;
    let years = community_stats::years(&view, community.as_ref()).map_err(projection_error)?;
    Ok(StatsAnswer::new(stats, years))
}

// ---------------------------------------------------------------------------------------------
// The three lists

/// A page of one of the three lists (`GET /api/v1/lists/{kind}`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct ListAnswer {
    /// The list.
    pub kind: ListKindName,
    /// The items and the cursor of the next page.
    #[serde(flatten)]
    pub page: PageAnswer<ListItemAnswer>,
}

/// An item of one of the three lists.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ListItemAnswer {
    /// The item.
    pub id: String,
    /// Its list.
    pub list: ListKindName,
    /// Its title.
    pub title: String,
    /// Its details.
    pub description: String,
    /// The unit that offers, needs or runs it.
    pub unit_id: String,
    /// Cases linked to it, in the order they were linked.
    pub cases: Vec<String>,
    /// Whether it was retired.
    pub retired: bool,
    /// Why it was retired; null: it is current.
    pub retired_reason: Option<String>,
    /// When it was added.
    pub added_at: String,
    /// When it last changed.
    pub updated_at: String,
}

/// Which of the three lists.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListKindName {
    /// 资源清单.
    Resources,
    /// 需求清单.
    Needs,
    /// 项目清单.
    Projects,
}

impl From<ListKind> for ListKindName {
    fn from(kind: ListKind) -> Self {
        match kind {
            ListKind::Resources => ListKindName::Resources,
            ListKind::Needs => ListKindName::Needs,
            ListKind::Projects => ListKindName::Projects,
        }
    }
}

async fn list_items(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(kind): Path<String>,
    uri: Uri,
) -> ApiResult<Json<ListAnswer>> {
    let list = list_kind(&kind)?;
    let params = QueryParams::parse(&uri, &["retired", "after", "limit"])?;
    let retired = params.flag("retired")?;
    let page = params.page()?;
    Ok(Json(list_of(&state, &caller, list, retired, &page).await?))
}

/// The list `kind` names (`resources`, `needs`, `projects`).
///
/// # Errors
/// 404 naming `kind` for any other.
pub(crate) fn list_kind(kind: &str) -> ApiResult<ListKind> {
    Ok(match kind {
        "resources" => ListKind::Resources,
        "needs" => ListKind::Needs,
        "projects" => ListKind::Projects,
        _ => {
            return Err(ApiError::not_found(&format!(
                "list {kind} (the lists are resources, needs, projects)"
            ))
            .field("kind"))
        }
    })
}

/// A page of `list` (retired items too when `retired`), the items of the caller's community
/// only (`GET /api/v1/lists/{kind}` and the dashboard's lists).
///
/// # Errors
/// 400 for a bad cursor; 503 when the read model cannot answer.
pub(crate) async fn list_of(
    state: &AppState,
    caller: &Caller,
    list: ListKind,
    retired: bool,
    page: &Page,
) -> ApiResult<ListAnswer> {
    let org = state.engine().org();
    let zone = state.zone();
    let time = |at: Timestamp| zone.format(at);
    let view = fresh_view(state, lists::NAME).await?;
    let Paged { items, next } =
        lists::list(&view, list, retired, page).map_err(projection_error)?;
    let items = items
        .iter()
        .filter(|item| {
            civicflow_core::domain::lists::item_visible(&item.row.unit, &caller.acting, &org)
        })
        .map(|item| {
            let row = &item.row;
            ListItemAnswer {
                id: item.id.to_string(),
                list: row.list.into(),
                title: row.title.clone(),
                description: row.description.clone(),
                unit_id: row.unit.as_str().to_owned(),
                cases: row.cases.iter().map(ToString::to_string).collect(),
                retired: row.is_retired(),
                retired_reason: row.retired.clone(),
                added_at: time(row.added_at),
                updated_at: time(row.updated_at),
            }
        })
        .collect();
    Ok(ListAnswer {
        kind: list.into(),
        page: PageAnswer::new(items, next.as_ref()),
    })
}

// ---------------------------------------------------------------------------------------------
// Shop standing, recommended merchants, flags

/// A shop's standing (`GET /api/v1/units/{id}/standing`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct StandingAnswer {
    /// The shop.
    pub unit_id: String,
    /// The running twelve-point cycle (`2026`); null: none runs.
    pub cycle: Option<String>,
    /// The points left in the cycle; null: no cycle runs.
    pub points: Option<u8>,
    /// Points deducted in the running cycle.
    pub deducted: u16,
    /// Points restored in the running cycle.
    pub restored: u16,
    /// The running cycle's latest changes, oldest first.
    pub history: Vec<PointChangeAnswer>,
    /// Flags held, by period (`2026-04`).
    pub flags: BTreeMap<String, FlagColourName>,
    /// Monthly assessments: month (`2026-04`) → score (0-100).
    pub monthly: BTreeMap<String, u8>,
    /// Quarterly ratings, by quarter (`2026Q2`).
    pub quarterly: BTreeMap<String, QuarterAnswer>,
}

/// A deduction (negative) or a restoration (positive) of points.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PointChangeAnswer {
    /// When.
    pub at: String,
    /// Points: negative deducted, positive restored.
    pub change: i8,
    /// The points left after it.
    pub left: u8,
    /// The violation or the reason for restoring.
    pub reason: String,
}

/// A quarter's rating of a shop.
#[derive(Debug, Serialize, JsonSchema)]
pub struct QuarterAnswer {
    /// Whether it was recommended (联盟推荐商户).
    pub recommended: bool,
    /// Its score.
    #[schemars(range(max = 100))]
    pub score: u8,
}

/// A flag's colour.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlagColourName {
    /// 红旗: an example to follow.
    Red,
    /// 黄旗: a warning to improve.
    Yellow,
}

impl From<FlagColour> for FlagColourName {
    fn from(colour: FlagColour) -> Self {
        match colour {
            FlagColour::Red => FlagColourName::Red,
            FlagColour::Yellow => FlagColourName::Yellow,
        }
    }
}

async fn standing(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Json<StandingAnswer>> {
    QueryParams::parse(&uri, &[])?;
    Ok(Json(standing_of(&state, &caller, &id).await?))
}

/// The standing of unit `id` (the caller's or one below it) (`GET /api/v1/units/{id}/standing`
/// and the dashboard's standing report).
///
/// # Errors
/// 404 naming `id` for a unit outside the caller's scope; 503 when the read model cannot
/// answer.
pub(crate) async fn standing_of(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<StandingAnswer> {
    let unit = unit_in_scope(&state.engine().org(), caller, id, "id")?;
    let view = fresh_view(state, shop_standing::NAME).await?;
    let row = shop_standing::standing(&view, &unit)
        .map_err(projection_error)?
        .unwrap_or_default();
    let zone = state.zone();
    Ok(StandingAnswer {
        unit_id: unit.as_str().to_owned(),
        cycle: row.cycle.as_ref().map(|(cycle, _)| cycle.clone()),
        points: row.points(),
        deducted: row.deducted,
        restored: row.restored,
        history: row
            .history
            .iter()
            .map(|c| PointChangeAnswer {
                at: zone.format(c.at),
                change: c.change,
                left: c.left,
                reason: c.reason.clone(),
            })
            .collect(),
        flags: row
            .flags
            .iter()
            .map(|(period, colour)| (period.clone(), (*colour).into()))
            .collect(),
        monthly: row.monthly.clone(),
        quarterly: row
            .quarterly
            .iter()
            .map(|(quarter, (recommended, score))| {
                let rating = QuarterAnswer {
                    recommended: *recommended,
                    score: *score,
                };
                (quarter.clone(), rating)
            })
            .collect(),
    })
}

/// The recommended merchants of a quarter (`GET /api/v1/reports/recommended`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct RecommendedAnswer {
    /// The quarter (`2026Q2`).
    pub quarter: String,
    /// The caller's community.
    pub community: String,
    /// The merchants, best score first.
    pub merchants: Vec<MerchantAnswer>,
}

/// A recommended merchant.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MerchantAnswer {
    /// The shop.
    pub unit_id: String,
    /// Its name; null when it is no longer in the org chart.
    pub unit_name: Option<String>,
    /// Its quarter's score.
    #[schemars(range(max = 100))]
    pub score: u8,
}

async fn recommended(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
) -> ApiResult<Json<RecommendedAnswer>> {
    let params = QueryParams::parse(&uri, &["quarter"])?;
    let quarter = params.required("quarter", "2026Q2")?;
    Ok(Json(recommended_in(&state, &caller, quarter).await?))
}

/// The recommended merchants of `quarter` (`2026Q2`) in the caller's community, best score
/// first (`GET /api/v1/reports/recommended` and the dashboard's standing report).
///
/// # Errors
/// 400 naming `quarter` for a malformed one; 503 when the read model cannot answer.
pub(crate) async fn recommended_in(
    state: &AppState,
    caller: &Caller,
    quarter: &str,
) -> ApiResult<RecommendedAnswer> {
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
    let view = fresh_view(state, shop_standing::NAME).await?;
    let merchants = shop_standing::recommended(&view, quarter)
        .map_err(projection_error)?
        .iter()
        .filter(|r| org.same_community(&r.unit, &caller.acting.unit))
        .map(|r| MerchantAnswer {
            unit_id: r.unit.as_str().to_owned(),
            unit_name: org.unit(&r.unit).map(|u| u.name.clone()),
            score: r.score,
        })
        .collect();
    Ok(RecommendedAnswer {
        quarter: quarter.to_owned(),
        community: org.top_of(&caller.acting.unit).as_str().to_owned(),
        merchants,
    })
}

/// The flags held for a month (`GET /api/v1/reports/flags`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct FlagsAnswer {
    /// The month (`2026-04`).
    pub period: String,
    /// The caller's community.
    pub community: String,
    /// Units holding a red flag (红旗), by unit id.
    pub red: Vec<String>,
    /// Units holding a yellow flag (黄旗), by unit id.
    pub yellow: Vec<String>,
}

async fn flags(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
) -> ApiResult<Json<FlagsAnswer>> {
    let params = QueryParams::parse(&uri, &["period"])?;
    let period = params.required("period", "2026-04")?;
    check_month("period", period)?;
    Ok(Json(flags_in(&state, &caller, period).await?))
}

/// The flags held for `period` (a checked `YYYY-MM`) in the caller's community (`GET
/// /api/v1/reports/flags` and the dashboard's standing report).
///
/// # Errors
/// 503 when the read model cannot answer.
pub(crate) async fn flags_in(
    state: &AppState,
    caller: &Caller,
    period: &str,
) -> ApiResult<FlagsAnswer> {
    let org = state.engine().org();
    let view = fresh_view(state, shop_standing::NAME).await?;
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
    Ok(FlagsAnswer {
        period: period.to_owned(),
        community: org.top_of(&caller.acting.unit).as_str().to_owned(),
        red: keep(&held.red),
        yellow: keep(&held.yellow),
    })
}
