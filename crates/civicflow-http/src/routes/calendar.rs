//! The business calendar over HTTP: which years it has data for and where coverage ends
//! (any token), and publishing a year (a top unit's community administrator). Publishing is
//! an event decided by the core (`domain/calendar_years.rs`); the engine recomputes the
//! provisional deadlines the year covers before answering (`docs/service.md`, "Calendar").

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::routing::{get, put};
use axum::{Extension, Json};
use civicflow_core::calendar::{CalendarError, YearSchedule, Zone};
use civicflow_core::domain::org::roles;
use civicflow_core::domain::Rejection;
use civicflow_core::engine::{CalendarOverview, Command, Outcome, YearOrigin};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{json, Value};

use super::{Content, RouteSpec};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::openapi::answer_schema_of;
use crate::path::Path;
use crate::policy::Policy;
use crate::request_id::WriteOptions;
use crate::state::AppState;

/// The largest year body read: a year's table is a few hundred bytes.
const BODY_MAX: usize = 64 * 1024;

/// The routes of this module.
pub fn routes() -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/calendar",
            policy: Policy::Authenticated,
            summary: "The business calendar in force: its time zone, every year with official holiday data (its days, its source, whether the release carries it or it was published, and when), and where coverage ends. A deadline reaching past coverage is provisional.",
            tag: "calendar",
            request: None,
            params: None,
            response: Some(answer_schema_of::<CalendarAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[503],
            handler: get(overview),
        },
        RouteSpec {
            method: Method::PUT,
            path: "/api/v1/calendar/{year}",
            policy: Policy::Roles(&[roles::COMMUNITY_ADMIN]),
            summary: "Publish a year's official holidays and 调休 working days (community administrators of a top unit): the year's table of the calendar file, as TOML (`Content-Type: application/toml`, with or without its `[year]` header) or as JSON {source, off, work}. The same days again change nothing; other days are a revision. Provisional deadlines the year covers are computed again before the answer.",
            tag: "calendar",
            request: Some(year_schema),
            params: Some(year_param),
            response: Some(answer_schema_of::<PublishedYearAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[404, 415, 422, 503],
            handler: put(publish),
        },
    ]
}

fn year_param() -> Value {
    json!([{
        "name": "year", "in": "path", "required": true,
        "schema": {"type": "string", "pattern": "^[0-9]{4}$"},
        "description": "the year, four digits"
    }])
}

fn date_schema() -> Value {
    json!({"type": "string", "format": "date", "description": "YYYY-MM-DD"})
}

/// The JSON a year is published with. Not a Rust type: the body goes to the calendar's own
/// parser (as TOML), so that its errors name the same fields as for the calendar file.
fn year_schema() -> Value {
    json!({
        "type": "object",
        "required": ["source", "off"],
        "additionalProperties": false,
        "properties": {
            "source": {"type": "string", "description": "the notice the days come from"},
            "off": {"type": "array", "minItems": 1, "description": "days off, as inclusive ranges",
                    "items": {"type": "array", "minItems": 2, "maxItems": 2, "items": date_schema()}},
            "work": {"type": "array", "description": "weekend days that are working days (调休)",
                     "items": date_schema()}
        }
    })
}

/// The business calendar in force (`GET /api/v1/calendar`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct CalendarAnswer {
    /// Its IANA time zone.
    pub zone: String,
    /// Events in the calendar stream (0: only the release's years).
    pub revision: u32,
    /// Every year with official holiday data.
    pub years: Vec<CalendarYearAnswer>,
    /// The last year of the unbroken run of covered years from this one; null: this year is
    /// not covered.
    pub covered_through: Option<i32>,
    /// From then on, deadlines are counted on plain weekdays and are provisional.
    #[schemars(extend("format" = "date-time"))]
    pub coverage_ends_at: String,
}

/// A year of official holiday data.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CalendarYearAnswer {
    /// The year.
    pub year: i32,
    /// The notice the days come from.
    pub source: String,
    /// Where the year comes from.
    #[serde(flatten)]
    pub origin: YearOriginAnswer,
    /// Days off, as inclusive ranges.
    pub off: Vec<[DateAnswer; 2]>,
    /// Weekend days that are working days (调休).
    pub work: Vec<DateAnswer>,
}

/// A day, YYYY-MM-DD.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(transparent)]
#[schemars(extend("format" = "date"))]
pub struct DateAnswer(String);

impl DateAnswer {
    /// The day, `YYYY-MM-DD`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a year of the calendar comes from.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(tag = "origin", rename_all = "snake_case")]
pub enum YearOriginAnswer {
    /// Carried by the release.
    Release,
    /// Published in the log.
    Published {
        /// 1, then one more per revision.
        revision: u32,
        /// When it was published (its latest revision).
        #[schemars(extend("format" = "date-time"))]
        published_at: String,
    },
}

/// A year published (`PUT /api/v1/calendar/{year}`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct PublishedYearAnswer {
    /// The year.
    pub year: i32,
    /// The year's revision in the log now.
    pub revision: u32,
    /// False: the calendar had these days already.
    pub changed: bool,
    /// Provisional deadlines computed again.
    pub recomputed: usize,
}

async fn overview(State(state): State<AppState>) -> ApiResult<Json<CalendarAnswer>> {
    Ok(Json(calendar_answer(&state).await?))
}

/// The business calendar in force (`GET /api/v1/calendar`).
///
/// # Errors
/// When the log cannot be read.
pub(crate) async fn calendar_answer(state: &AppState) -> ApiResult<CalendarAnswer> {
    let overview = state
        .blocking(|engine| engine.calendar_overview())
        .await??;
    Ok(CalendarAnswer::new(&overview, &state.zone()))
}

impl CalendarAnswer {
    /// The overview as the API shows it, its times in `zone`.
    pub fn new(overview: &CalendarOverview, zone: &Zone) -> Self {
        let years = overview
            .years
            .iter()
            .map(|year| {
                let schedule = &year.schedule;
                CalendarYearAnswer {
                    year: schedule.year,
                    source: schedule.source.clone(),
                    origin: match year.origin {
                        YearOrigin::Release => YearOriginAnswer::Release,
                        YearOrigin::Published { revision, at } => YearOriginAnswer::Published {
                            revision,
                            published_at: zone.format(at),
                        },
                    },
                    off: schedule
                        .off
                        .iter()
                        .map(|(a, b)| [DateAnswer(a.to_string()), DateAnswer(b.to_string())])
                        .collect(),
                    work: schedule
                        .work
                        .iter()
                        .map(|day| DateAnswer(day.to_string()))
                        .collect(),
                }
            })
            .collect();
        Self {
            zone: overview.zone.clone(),
            revision: overview.revision,
            years,
            covered_through: overview.covered_through,
            coverage_ends_at: zone.format(overview.coverage_ends_at),
        }
    }
}

async fn publish(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path(year): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<PublishedYearAnswer>> {
    let media = crate::json::media_type(&headers);
    Ok(Json(
        publish_as(&state, &caller, &year, &media, &body, options).await?,
    ))
}

/// Publishes `year`'s table as `caller` (`PUT /api/v1/calendar/{year}`): `body` in the media
/// type `media` (`application/toml`, with or without its `[year]` header, or JSON
/// `{source, off, work}`; empty: JSON).
///
/// # Errors
/// 404 for a `year` that is not four digits, 413 over the size limit, 415 for another media
/// type, 422 naming the field at fault as in the calendar file; the core's refusals (403 for
/// an administrator below the top).
pub(crate) async fn publish_as(
    state: &AppState,
    caller: &Caller,
    year: &str,
    media: &str,
    body: &[u8],
    options: civicflow_core::engine::SubmitOptions,
) -> ApiResult<PublishedYearAnswer> {
    let year = parse_year(year)?;
    if body.len() > BODY_MAX {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("a year's table is at most {BODY_MAX} bytes"),
        ));
    }
    let schedule = read_year(year, media, body)?;
    let acting = caller.acting.clone();
    let outcome = state
        .blocking(move |engine| {
            engine.submit_with(&acting, Command::PublishCalendarYear { schedule }, options)
        })
        .await??;
    let Outcome::Calendar {
        year,
        revision,
        events,
        recomputed,
        ..
    } = outcome
    else {
        return Err(ApiError::internal(
            "publishing a year answered something else",
        ));
    };
    Ok(PublishedYearAnswer {
        year,
        revision,
        changed: events > 0,
        recomputed,
    })
}

/// The path's year: four digits, 0001 to 9999 (any other is not a calendar year: 404).
fn parse_year(text: &str) -> Result<i32, ApiError> {
    text.parse::<i32>()
        .ok()
        .filter(|y| text.len() == 4 && (1..=9999).contains(y))
        .ok_or_else(|| ApiError::not_found("calendar year"))
}

/// The year's table from the body: TOML (the calendar file's format, with or without the
/// `[year]` header) or JSON with the same fields. Either way the calendar's own parser
/// checks it, so the errors name the same fields as for the file (`off[0]`, `work[1]`).
fn read_year(year: i32, media: &str, body: &[u8]) -> Result<YearSchedule, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| invalid("body", "is not UTF-8"))?;
    let document = match media {
        "application/toml" => {
            if text.trim_start().starts_with('[') && !text.trim_start().starts_with("[[") {
                text.to_owned()
            } else {
                format!("[{year:04}]\n{text}")
            }
        }
        "application/json" | "" => json_to_toml(year, text)?,
        other => {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("{other}: send the year as application/toml or application/json"),
            ))
        }
    };
    let mut years = YearSchedule::parse_document(&document).map_err(calendar_error)?;
    match (years.len(), years.first()) {
        (1, Some(first)) if first.year == year => Ok(years.remove(0)),
        _ => Err(invalid(
            "year",
            &format!("the body must hold exactly the table of {year:04}, the year in the path"),
        )),
    }
}

/// A JSON year as the TOML table the calendar file would hold, each value converted as it
/// is (a wrong type stays wrong, for the calendar's parser to name).
fn json_to_toml(year: i32, text: &str) -> Result<String, ApiError> {
    let value: Value = if text.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(text).map_err(|e| invalid("body", &format!("is not JSON: {e}")))?
    };
    let Value::Object(fields) = value else {
        return Err(invalid("body", "must be a JSON object {source, off, work}"));
    };
    let mut table = toml::Table::new();
    for (name, value) in fields {
        let converted =
            to_toml(&value).ok_or_else(|| invalid(&name, "null is not a value here"))?;
        table.insert(name, converted);
    }
    let mut document = toml::Table::new();
    document.insert(format!("{year:04}"), toml::Value::Table(table));
    toml::to_string(&document).map_err(|e| ApiError::internal(format!("a year as TOML: {e}")))
}

fn to_toml(value: &Value) -> Option<toml::Value> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64()?),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(items) => {
            toml::Value::Array(items.iter().map(to_toml).collect::<Option<Vec<_>>>()?)
        }
        Value::Object(fields) => toml::Value::Table(
            fields
                .iter()
                .map(|(k, v)| Some((k.clone(), to_toml(v)?)))
                .collect::<Option<toml::Table>>()?,
        ),
    })
}

fn invalid(field: &str, reason: &str) -> ApiError {
    ApiError::from(Rejection::FieldInvalid {
        field: field.to_owned(),
        reason: reason.to_owned(),
    })
}

/// A calendar error as a 422 naming the field it is about.
fn calendar_error(error: CalendarError) -> ApiError {
    let field = match &error {
        CalendarError::Data { field, .. } => field.clone(),
        CalendarError::NotAYear { .. } => "year".to_owned(),
        _ => "body".to_owned(),
    };
    invalid(&field, &error.to_string())
}
