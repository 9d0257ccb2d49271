//! Operations: liveness, readiness, metrics, and the OpenAPI document. All public.

use axum::extract::State;
use axum::http::{header, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Json;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{Content, RouteSpec};
use crate::metrics::gauge;
use crate::openapi::answer_schema_of;
use crate::policy::Policy;
use crate::state::AppState;

/// The routes of this module.
pub fn routes() -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            method: Method::GET,
            path: "/healthz",
            policy: Policy::Public,
            summary: "Alive: the process answers.",
            tag: "operations",
            request: None,
            params: None,
            response: Some(answer_schema_of::<HealthAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[],
            handler: get(healthz),
        },
        RouteSpec {
            method: Method::GET,
            path: "/readyz",
            policy: Policy::Public,
            summary: "Ready: the log is writable, no projection has stopped, and every projection has caught up since start (503 otherwise).",
            tag: "operations",
            request: None,
            params: None,
            response: Some(answer_schema_of::<ReadyAnswer>),
            content: Content::Json,
            status: 200,
            also: &[503],
            errors: &[],
            handler: get(readyz),
        },
        RouteSpec {
            method: Method::GET,
            path: "/metrics",
            policy: Policy::Public,
            summary: "Metrics in the Prometheus text format.",
            tag: "operations",
            request: None,
            params: None,
            response: None,
            content: Content::Text,
            status: 200,
            also: &[],
            errors: &[],
            handler: get(metrics),
        },
        RouteSpec {
            method: Method::GET,
            path: "/api/openapi.json",
            policy: Policy::Public,
            summary: "This API, as an OpenAPI 3 document.",
            tag: "operations",
            request: None,
            params: None,
            response: Some(answer_schema_of::<Map<String, Value>>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[],
            handler: get(openapi),
        },
    ]
}

/// Alive (`GET /healthz`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct HealthAnswer {
    /// Always `ok`.
    pub status: String,
}

/// Ready or not (`GET /readyz`), and why.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReadyAnswer {
    /// Whether the service is ready.
    pub ready: bool,
    /// `writable`, or why the log cannot write now: `poisoned: ` and why, or (a shared store on
    /// PostgreSQL) `database unreachable: ` and what the connection said.
    pub log: String,
    /// Null, or why the log's background upkeep keeps failing (on sled: sealing its history
    /// into segment files). Not a reason to be unready: the log stays correct and writable,
    /// but its memory and files grow until the cause (often a full or read-only disk) is
    /// fixed.
    pub upkeep: Option<String>,
    /// Every projection's state.
    pub projections: Vec<ProjectionAnswer>,
}

/// A projection's state.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProjectionAnswer {
    /// Its name.
    pub name: String,
    /// The version of its code.
    pub version: u32,
    /// The last log position it applied; null: none yet.
    pub checkpoint: Option<u64>,
    /// What it is doing (`Live`, `Rebuilding { .. }`, `Failed { .. }`).
    pub phase: String,
}

async fn healthz() -> Json<HealthAnswer> {
    Json(HealthAnswer {
        status: "ok".to_owned(),
    })
}

/// Ready: the log takes writes, no projection has stopped, and every one has caught up since
/// start. A projection that stopped (its store refused a write, say) answers its reads with
/// 503 until a restart, so the service is not ready whatever the log says.
fn is_ready(
    log_poisoned: bool,
    projections: &[civicflow_projections::Status],
    caught_up: bool,
) -> bool {
    let stopped = projections
        .iter()
        .any(|s| matches!(s.phase, civicflow_projections::Phase::Failed { .. }));
    !log_poisoned && !stopped && caught_up
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    // A shared store's database is asked (a round trip, at most a few seconds): off the
    // runtime's threads.
    let log = state.engine().log().clone();
    let upkeep = log.upkeep_failure();
    let health = tokio::task::spawn_blocking(move || log.health())
        .await
        .unwrap_or_else(|e| Err(format!("the health check failed: {e}")));
    let statuses = state.runner().status();
    let ready = is_ready(health.is_err(), &statuses, state.caught_up());
    let projections = statuses
        .into_iter()
        .map(|s| ProjectionAnswer {
            name: s.name.to_owned(),
            version: s.version,
            checkpoint: s.checkpoint.map(|p| p.get()),
            phase: format!("{:?}", s.phase),
        })
        .collect();
    let body = ReadyAnswer {
        ready,
        log: health.map_or_else(|why| why, |()| "writable".to_owned()),
        upkeep,
        projections,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    state.0.metrics.render(&mut out);
    let log = state.engine().log();
    let head = log.head().map_or(0, |h| h.position.get());
    gauge(
        &mut out,
        "civicflow_log_head_position",
        "The position of the newest durable event.",
        "",
        head as f64,
    );
    // Where the calendar's official data ends: deadlines past it are provisional
    // (`calendar_watch.rs` warns in the log from 45 days before).
    if let Ok(calendar) = state.engine().calendar_overview() {
        gauge(
            &mut out,
            "civicflow_calendar_covered_until_seconds",
            "When the business calendar's official holiday data ends (Unix seconds): deadlines reaching past it are provisional until the next year is published.",
            "",
            calendar.coverage_ends_at.as_unix_micros().div_euclid(1_000_000) as f64,
        );
    }
    let stats = log.stats();
    gauge(
        &mut out,
        "civicflow_log_commit_groups",
        "Commit groups made durable since start (one flush and sync each).",
        "",
        stats.commit_groups as f64,
    );
    gauge(
        &mut out,
        "civicflow_log_group_appends",
        "Appends carried by those commit groups (appends / groups is the mean batch size).",
        "",
        stats.appends as f64,
    );
    gauge(
        &mut out,
        "civicflow_log_largest_group",
        "The most appends one commit group carried.",
        "",
        stats.largest_group as f64,
    );
    gauge(
        &mut out,
        "civicflow_log_sealed_segments",
        "Sealed segment files the log's history is in (sled; 0 on PostgreSQL).",
        "",
        stats.sealed_segments as f64,
    );
    gauge(
        &mut out,
        "civicflow_log_upkeep_failing",
        "1 while the log's background upkeep (sealing history into segment files) keeps failing: see GET /readyz's upkeep for why.",
        "",
        f64::from(u8::from(log.upkeep_failure().is_some())),
    );
    out.push_str("# HELP civicflow_projection_lag_events Events of the log a projection has not applied yet.\n");
    out.push_str("# TYPE civicflow_projection_lag_events gauge\n");
    for status in state.runner().status() {
        let applied = status.checkpoint.map_or(0, |p| p.get());
        out.push_str(&format!(
            "civicflow_projection_lag_events{{projection=\"{}\"}} {}\n",
            status.name,
            head.saturating_sub(applied)
        ));
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

async fn openapi() -> Json<Value> {
    Json(crate::openapi::document(&super::all()))
}

#[cfg(test)]
mod tests {
    use civicflow_core::Position;
    use civicflow_projections::{Phase, Status};

    use super::is_ready;

    fn status(phase: Phase) -> Status {
        Status {
            name: "unit_inbox",
            version: 1,
            checkpoint: Position::new(7),
            phase,
        }
    }

    #[test]
    fn a_stopped_projection_or_a_poisoned_log_is_not_ready() {
        let live = [status(Phase::Live), status(Phase::Live)];
        assert!(is_ready(false, &live, true));
        assert!(!is_ready(true, &live, true), "a poisoned log");
        assert!(!is_ready(false, &live, false), "still catching up");
        let stopped = [
            status(Phase::Live),
            status(Phase::Failed {
                position: Position::new(8).expect("a position"),
                error: "read-model storage: the disk refused the write".into(),
            }),
        ];
        assert!(!is_ready(false, &stopped, true), "a projection stopped");
        let rebuilding = [status(Phase::Rebuilding { serving: Some(1) })];
        assert!(
            is_ready(false, &rebuilding, true),
            "a rebuild serves the old version"
        );
    }
}
