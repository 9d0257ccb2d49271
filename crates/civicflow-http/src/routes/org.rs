//! The org chart over HTTP: units, actors and their roles, and the roles themselves. Reading
//! the units is for any valid token (a client files a case at one); changing anything is for
//! community administrators, within their own subtree, each change an event decided by the
//! core (`domain/org.rs`) and shown in audits. The store's administrators (those of its first
//! community, made by `civicflow init`) also add communities and their first administrators
//! (`docs/service.md`, "Administration").

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Extension, Json};
use civicflow_core::domain::org::{
    roles, Acting, ActorEntry, ActorKind, OrgChart, OrgCommand, Tier, Unit,
};
use civicflow_core::engine::{Command, SubmitOptions};
use civicflow_core::{ActorId, Role, UnitId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Content, RouteSpec};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::json::{cap, StrictJson, Validate};
use crate::openapi::schema_of;
use crate::path::Path;
use crate::policy::Policy;
use crate::request_id::WriteOptions;
use crate::state::AppState;

/// Who changes the chart: community administrators (the core checks the subtree). The
/// dashboard's administration pages have the same policy (`dashboard/pages/admin/`).
pub(crate) const ADMINS: Policy = Policy::Roles(&[roles::COMMUNITY_ADMIN]);

/// Who reads the actors and their grants: administrators and auditors.
const ACTOR_READERS: Policy = Policy::Roles(&[roles::COMMUNITY_ADMIN, roles::AUDITOR]);

/// The longest display name the core takes, in characters.
const NAME_MAX: usize = 200;

/// The routes of this module.
pub fn routes() -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/units",
            policy: Policy::Authenticated,
            summary: "The org chart as the caller sees it: the units of the caller's community (parents before children) and the units that belong to no community (a district's departments), each with its id, name, tier, parent, whether it is in the community → grid → enterprise → shop chain, and whether it is retired.",
            tag: "org",
            request: None,
            params: None,
            response: Some(schema_of::<UnitsAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[],
            handler: get(units),
        },
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/units",
            policy: ADMINS,
            summary: "Add a unit under a parent in the caller's subtree, of the tier the chain wants there (a grid under a community, an enterprise under a grid, a shop under an enterprise; a department, social organization or volunteer team under a community or under nothing). Without a parent, a new community: for the store's administrators only.",
            tag: "org",
            request: Some(schema_of::<NewUnit>),
            params: Some(crate::idempotency::header_param),
            response: Some(schema_of::<UnitAnswer>),
            content: Content::Json,
            status: 201,
            also: &[],
            errors: &[404, 409, 422, 503],
            handler: post(create_unit),
        },
        RouteSpec {
            method: Method::PATCH,
            path: "/api/v1/units/{id}",
            policy: ADMINS,
            summary: "Rename a unit, move it (and everything below it) under another parent of the right tier, or both at once: both or neither is written. 404 for a unit outside the caller's subtree.",
            tag: "org",
            request: Some(schema_of::<UnitChange>),
            params: Some(crate::idempotency::header_param),
            response: Some(schema_of::<UnitAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[403, 404, 422, 503],
            handler: patch(change_unit),
        },
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/units/{id}/retire",
            policy: ADMINS,
            summary: "Retire a unit below the caller's: it is kept for the history that names it, but no case is filed at it or handed to it and no role granted there. Refused (422, naming them) while it leads open cases or has units below it that are not retired. 404 for a unit outside the caller's subtree.",
            tag: "org",
            request: Some(schema_of::<Empty>),
            params: Some(crate::idempotency::header_param),
            response: Some(schema_of::<UnitAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[404, 422, 503],
            handler: post(retire_unit),
        },
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/units/{id}/history",
            policy: ACTOR_READERS,
            summary: "A unit's administrative history, oldest first: its creation, renames, moves and retirement, the creation and moves of units under it, and the roles granted and revoked there, each with who made the change (actor, role, unit), when, its log position and its chain hash. For administrators of the unit or above it, and auditors; 404 otherwise.",
            tag: "org",
            request: None,
            params: None,
            response: Some(schema_of::<UnitHistoryAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[404, 503],
            handler: get(unit_history),
        },
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/actors",
            policy: ACTOR_READERS,
            summary: "The actors of the caller's community (registered there or holding a role there), each with the roles they hold in it. For community administrators and auditors.",
            tag: "org",
            request: None,
            params: None,
            response: Some(schema_of::<ActorsAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[],
            handler: get(actors),
        },
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/actors",
            policy: ADMINS,
            summary: "Register an actor (a person, or a system such as a civic app): an id unique in the store and a display name. Grant them roles next.",
            tag: "org",
            request: Some(schema_of::<NewActor>),
            params: Some(crate::idempotency::header_param),
            response: Some(schema_of::<ActorAnswer>),
            content: Content::Json,
            status: 201,
            also: &[],
            errors: &[409, 422, 503],
            handler: post(register_actor),
        },
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/actors/{id}/roles",
            policy: ADMINS,
            summary: "Grant an actor a role (built in or defined) at a unit of the caller's subtree; the store's administrators also make the first administrator of a new community. Granting a role held already changes nothing.",
            tag: "org",
            request: Some(schema_of::<GrantBody>),
            params: Some(crate::idempotency::header_param),
            response: Some(schema_of::<ActorAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[403, 404, 422, 503],
            handler: post(grant_role),
        },
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/actors/{id}/roles/revoke",
            policy: ADMINS,
            summary: "Revoke a role an actor holds at a unit of the caller's subtree; every token issued for that role at that unit is revoked with it (refused from the next request). Revoking a role not held changes nothing.",
            tag: "org",
            request: Some(schema_of::<GrantBody>),
            params: Some(crate::idempotency::header_param),
            response: Some(schema_of::<ActorAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[403, 404, 422, 503],
            handler: post(revoke_role),
        },
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/roles",
            policy: Policy::Authenticated,
            summary: "The roles in force: the thirteen built-in ones (and the system's, which is never granted) and those defined in the store, each with its name.",
            tag: "org",
            request: None,
            params: None,
            response: Some(schema_of::<RolesAnswer>),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[],
            handler: get(list_roles),
        },
        RouteSpec {
            method: Method::POST,
            path: "/api/v1/roles",
            policy: ADMINS,
            summary: "Define a role (an id of lowercase letters, digits and _, and a name): workflows may then name it and administrators grant it. Defining it again with the same name changes nothing.",
            tag: "org",
            request: Some(schema_of::<NewRole>),
            params: Some(crate::idempotency::header_param),
            response: Some(schema_of::<RoleAnswer>),
            content: Content::Json,
            status: 201,
            also: &[200],
            errors: &[409, 422, 503],
            handler: post(define_role),
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// Bodies

/// The org chart as `GET /api/v1/units` answers it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UnitsAnswer {
    /// Parents before children.
    pub units: Vec<UnitAnswer>,
}

/// One unit of the chart.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UnitAnswer {
    /// Its slug.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// Its tier.
    pub tier: TierName,
    /// Its parent; null at the top.
    #[schemars(required, extend("nullable" = true))]
    pub parent: Option<String>,
    /// Whether it is one of the four tiers of the community → grid → enterprise → shop chain.
    pub in_chain: bool,
    /// Whether it is retired (no case filed at it or handed to it, no role granted there).
    pub retired: bool,
}

impl UnitAnswer {
    fn of(unit: &Unit) -> Self {
        Self {
            id: unit.id.to_string(),
            name: unit.name.clone(),
            tier: unit.tier.into(),
            parent: unit.parent.as_ref().map(UnitId::to_string),
            in_chain: unit.tier.in_chain(),
            retired: unit.retired,
        }
    }
}

/// A tier, as the API names it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TierName {
    /// 社区.
    Community,
    /// 网格.
    Grid,
    /// 企业.
    Enterprise,
    /// 商铺.
    Shop,
    /// A government department.
    Department,
    /// A social organization.
    SocialOrganization,
    /// A volunteer team.
    VolunteerTeam,
}

impl From<Tier> for TierName {
    fn from(tier: Tier) -> Self {
        match tier {
            Tier::Community => TierName::Community,
            Tier::Grid => TierName::Grid,
            Tier::Enterprise => TierName::Enterprise,
            Tier::Shop => TierName::Shop,
            Tier::Department => TierName::Department,
            Tier::SocialOrganization => TierName::SocialOrganization,
            Tier::VolunteerTeam => TierName::VolunteerTeam,
        }
    }
}

impl From<TierName> for Tier {
    fn from(tier: TierName) -> Self {
        match tier {
            TierName::Community => Tier::Community,
            TierName::Grid => Tier::Grid,
            TierName::Enterprise => Tier::Enterprise,
            TierName::Shop => Tier::Shop,
            TierName::Department => Tier::Department,
            TierName::SocialOrganization => Tier::SocialOrganization,
            TierName::VolunteerTeam => Tier::VolunteerTeam,
        }
    }
}

/// A new unit.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUnit {
    /// Its slug: lowercase letters, digits, `-`, `_`, `.` (at most 64), unique in the store.
    #[schemars(length(min = 1, max = 64))]
    pub id: String,
    /// Its display name (Chinese first, English beside it, as the other names).
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    /// Its tier.
    pub tier: TierName,
    /// Its parent (a unit of the caller's subtree); absent or null for a new community.
    #[serde(default)]
    #[schemars(length(min = 1, max = 64))]
    pub parent: Option<String>,
}

impl Validate for NewUnit {
    fn validate(&self) -> Result<(), ApiError> {
        cap("id", &self.id, 64)?;
        cap("name", &self.name, NAME_MAX)?;
        cap("parent", self.parent.as_deref().unwrap_or(""), 64)
    }
}

/// A change to a unit: its name, its parent, or both.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnitChange {
    /// The new display name.
    #[serde(default)]
    #[schemars(length(min = 1, max = 200))]
    pub name: Option<String>,
    /// The new parent (a unit of the caller's subtree, of the tier the chain wants).
    #[serde(default)]
    #[schemars(length(min = 1, max = 64))]
    pub parent: Option<String>,
}

impl Validate for UnitChange {
    fn validate(&self) -> Result<(), ApiError> {
        if self.name.is_none() && self.parent.is_none() {
            return Err(
                ApiError::bad_request("give a name, a parent or both to change").field("name"),
            );
        }
        cap("name", self.name.as_deref().unwrap_or(""), NAME_MAX)?;
        cap("parent", self.parent.as_deref().unwrap_or(""), 64)
    }
}

/// No fields.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

impl Validate for Empty {
    fn validate(&self) -> Result<(), ApiError> {
        Ok(())
    }
}

/// A unit's administrative history.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UnitHistoryAnswer {
    /// The unit.
    pub unit_id: String,
    /// Oldest first.
    pub changes: Vec<ChangeAnswer>,
}

/// One change of the org chart.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ChangeAnswer {
    /// Its position in the log.
    pub position: u64,
    /// When it was recorded (RFC 3339 in the calendar's zone).
    pub recorded_at: String,
    /// The event's type (`UnitCreated`, `RoleGranted`, …).
    #[serde(rename = "type")]
    pub event_type: String,
    /// Who made it.
    pub actor: ChangedBy,
    /// What happened, in words.
    pub summary: String,
    /// The event's chain hash (hex).
    pub hash: String,
}

/// Who made a change.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ChangedBy {
    /// The actor.
    pub id: String,
    /// The role they acted in.
    pub role: String,
    /// The unit they acted for.
    pub unit_id: String,
}

/// The actors as `GET /api/v1/actors` answers them.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ActorsAnswer {
    /// In id order.
    pub actors: Vec<ActorAnswer>,
}

/// An actor and the roles they hold in the caller's community.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ActorAnswer {
    /// Their id.
    pub id: String,
    /// Their display name.
    pub name: String,
    /// A person or a system.
    pub kind: ActorKindName,
    /// The roles they hold in the caller's community, by unit.
    pub roles: Vec<GrantAnswer>,
}

impl ActorAnswer {
    fn of(actor: &ActorEntry, org: &OrgChart, viewer: &UnitId) -> Self {
        let community = org.top_of(viewer);
        Self {
            id: actor.id.to_string(),
            name: actor.name.clone(),
            kind: match actor.kind {
                ActorKind::Person => ActorKindName::Person,
                ActorKind::System => ActorKindName::System,
            },
            roles: actor
                .grants
                .iter()
                .filter(|(_, unit)| org.is_within(unit, &community))
                .map(|(role, unit)| GrantAnswer {
                    role: role.to_string(),
                    unit_id: unit.to_string(),
                })
                .collect(),
        }
    }
}

/// Person or system.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKindName {
    /// A person.
    #[default]
    Person,
    /// A system (a civic app, an integration).
    System,
}

/// A role held at a unit.
#[derive(Debug, Serialize, JsonSchema)]
pub struct GrantAnswer {
    /// The role.
    pub role: String,
    /// The unit.
    pub unit_id: String,
}

/// A new actor.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewActor {
    /// Their id, unique in the store (at most 64 characters).
    #[schemars(length(min = 1, max = 64))]
    pub id: String,
    /// Their display name.
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    /// A person (the default) or a system.
    #[serde(default)]
    pub kind: ActorKindName,
}

impl Validate for NewActor {
    fn validate(&self) -> Result<(), ApiError> {
        cap("id", &self.id, 64)?;
        cap("name", &self.name, NAME_MAX)
    }
}

/// A role at a unit, to grant or revoke.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    /// The role (see `GET /api/v1/roles`).
    #[schemars(length(min = 1, max = 64))]
    pub role: String,
    /// The unit.
    #[schemars(length(min = 1, max = 64))]
    pub unit_id: String,
}

impl Validate for GrantBody {
    fn validate(&self) -> Result<(), ApiError> {
        cap("role", &self.role, 64)?;
        cap("unit_id", &self.unit_id, 64)
    }
}

/// The roles in force.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RolesAnswer {
    /// The built-in ones first.
    pub roles: Vec<RoleAnswer>,
}

/// A role.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RoleAnswer {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Built in (true) or defined in the store.
    pub built_in: bool,
}

/// A new role.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    /// Its id: a lowercase letter, then lowercase letters, digits and `_` (at most 64).
    #[schemars(length(min = 1, max = 64))]
    pub id: String,
    /// Its name.
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
}

impl Validate for NewRole {
    fn validate(&self) -> Result<(), ApiError> {
        cap("id", &self.id, 64)?;
        cap("name", &self.name, NAME_MAX)
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// Whether `caller` sees `unit`: a unit of their community, one that belongs to no community
/// (a district's department, which every community may address), and for the store's
/// administrators every community's top unit.
fn sees(org: &OrgChart, caller: &Acting, unit: &Unit) -> bool {
    org.same_community(&unit.id, &caller.unit)
        || (unit.parent.is_none() && !unit.tier.in_chain())
        // The store's administrators see every community they may give a first administrator.
        || (unit.parent.is_none() && org.administers_store(caller))
}

async fn units(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Json<UnitsAnswer> {
    Json(units_answer(&state, &caller))
}

/// The org chart as `caller` sees it (`GET /api/v1/units`): parents before children.
pub(crate) fn units_answer(state: &AppState, caller: &Caller) -> UnitsAnswer {
    let org = state.engine().org();
    // Parents before children: every top unit's subtree in turn (siblings in id order).
    let mut ordered: Vec<UnitAnswer> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let tops: Vec<UnitId> = org
        .units()
        .filter(|u| u.parent.as_ref().is_none_or(|p| org.unit(p).is_none()))
        .map(|u| u.id.clone())
        .collect();
    let walk = tops.iter().flat_map(|top| org.subtree(top));
    // Anything a broken chart would leave out still shows (after the rest).
    let rest: Vec<UnitId> = org.units().map(|u| u.id.clone()).collect();
    for id in walk.chain(rest) {
        if !seen.insert(id.clone()) {
            continue;
        }
        if let Some(unit) = org.unit(&id).filter(|u| sees(&org, &caller.acting, u)) {
            ordered.push(UnitAnswer::of(unit));
        }
    }
    UnitsAnswer { units: ordered }
}

/// Submits an org command as the caller, off the async threads; `Ok(true)` when it wrote.
async fn submit(
    state: &AppState,
    caller: &Caller,
    command: OrgCommand,
    options: SubmitOptions,
) -> ApiResult<bool> {
    let acting = caller.acting.clone();
    let outcome = state
        .blocking(move |engine| engine.submit_with(&acting, Command::Org(command), options))
        .await??;
    Ok(matches!(outcome, civicflow_core::engine::Outcome::Org { events, .. } if events > 0))
}

/// A unit the caller administers (their unit or one below it); 404 for any other, as for
/// one that does not exist.
fn unit_in_subtree(org: &OrgChart, caller: &Acting, id: &str) -> ApiResult<UnitId> {
    let unit = UnitId::new(id).map_err(|_| ApiError::not_found("unit"))?;
    if org.in_scope(caller, &unit) {
        Ok(unit)
    } else {
        Err(ApiError::not_found("unit"))
    }
}

fn unit_answer(state: &AppState, id: &UnitId) -> ApiResult<UnitAnswer> {
    let org = state.engine().org();
    let unit = org
        .unit(id)
        .ok_or_else(|| ApiError::internal("a unit just written is not in the chart"))?;
    Ok(UnitAnswer::of(unit))
}

fn created(wrote: bool, body: impl Serialize) -> Response {
    let status = if wrote {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(body)).into_response()
}

async fn create_unit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    StrictJson(body): StrictJson<NewUnit>,
) -> ApiResult<Response> {
    let (wrote, answer) = create_unit_as(&state, &caller, body, options).await?;
    Ok(created(wrote, answer))
}

/// Adds a unit as `caller` (`POST /api/v1/units`): whether it wrote (false: the same unit
/// existed already), and the unit.
///
/// # Errors
/// 404 for a parent the caller cannot see; the core's refusals.
pub(crate) async fn create_unit_as(
    state: &AppState,
    caller: &Caller,
    body: NewUnit,
    options: SubmitOptions,
) -> ApiResult<(bool, UnitAnswer)> {
    let id = UnitId::new(&body.id).map_err(ApiError::from_invalid("id"))?;
    let parent = body
        .parent
        .as_deref()
        .map(|p| {
            // A parent the caller cannot see reads as one that does not exist.
            let org = state.engine().org();
            UnitId::new(p)
                .ok()
                .filter(|p| org.unit(p).is_some_and(|u| sees(&org, &caller.acting, u)))
                .ok_or_else(|| ApiError::not_found("unit").field("parent"))
        })
        .transpose()?;
    let command = OrgCommand::CreateUnit {
        id: id.clone(),
        name: body.name,
        tier: body.tier.into(),
        parent,
    };
    let wrote = submit(state, caller, command, options).await?;
    Ok((wrote, unit_answer(state, &id)?))
}

async fn change_unit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<UnitChange>,
) -> ApiResult<Json<UnitAnswer>> {
    Ok(Json(
        change_unit_as(&state, &caller, &id, body, options).await?,
    ))
}

/// Renames or moves unit `id` as `caller` (`PATCH /api/v1/units/{id}`).
///
/// # Errors
/// 404 for a unit (or parent) outside the caller's subtree; the core's refusals.
pub(crate) async fn change_unit_as(
    state: &AppState,
    caller: &Caller,
    id: &str,
    body: UnitChange,
    options: SubmitOptions,
) -> ApiResult<UnitAnswer> {
    let org = state.engine().org();
    let id = unit_in_subtree(&org, &caller.acting, id)?;
    let parent = body
        .parent
        .as_deref()
        .map(|p| {
            UnitId::new(p)
                .ok()
                .filter(|p| org.in_scope(&caller.acting, p))
                .ok_or_else(|| ApiError::not_found("unit").field("parent"))
        })
        .transpose()?;
    let command = OrgCommand::UpdateUnit {
        id: id.clone(),
        name: body.name,
        parent,
    };
    submit(state, caller, command, options).await?;
    unit_answer(state, &id)
}

async fn retire_unit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path(id): Path<String>,
    StrictJson(_): StrictJson<Empty>,
) -> ApiResult<Json<UnitAnswer>> {
    Ok(Json(retire_unit_as(&state, &caller, &id, options).await?))
}

/// Retires unit `id` as `caller` (`POST /api/v1/units/{id}/retire`).
///
/// # Errors
/// 404 for a unit outside the caller's subtree; the core's refusals (422 while it leads open
/// cases or has units below it).
pub(crate) async fn retire_unit_as(
    state: &AppState,
    caller: &Caller,
    id: &str,
    options: SubmitOptions,
) -> ApiResult<UnitAnswer> {
    let id = unit_in_subtree(&state.engine().org(), &caller.acting, id)?;
    let command = OrgCommand::RetireUnit {
        id: id.clone(),
        open_cases: Vec::new(),
    };
    submit(state, caller, command, options).await?;
    unit_answer(state, &id)
}

async fn unit_history(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<UnitHistoryAnswer>> {
    let unit = UnitId::new(&id).map_err(|_| ApiError::not_found("unit"))?;
    let acting = caller.acting.clone();
    let asked = unit.clone();
    let entries = state
        .blocking(move |engine| engine.unit_history(&acting, &asked))
        .await??;
    let zone = state.zone();
    let changes = entries
        .into_iter()
        .map(|entry| ChangeAnswer {
            position: entry.recorded.position.get(),
            recorded_at: zone.format(entry.recorded.recorded_at),
            event_type: entry.recorded.event_type.to_string(),
            actor: ChangedBy {
                id: entry.recorded.actor.id.to_string(),
                role: entry.recorded.actor.role.to_string(),
                unit_id: entry.recorded.actor.unit.to_string(),
            },
            summary: entry.summary,
            hash: entry.recorded.hash.to_hex(),
        })
        .collect();
    Ok(Json(UnitHistoryAnswer {
        unit_id: unit.to_string(),
        changes,
    }))
}

async fn actors(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Json<ActorsAnswer> {
    Json(actors_answer(&state, &caller))
}

/// The actors of the caller's community with the roles they hold in it (`GET /api/v1/actors`).
pub(crate) fn actors_answer(state: &AppState, caller: &Caller) -> ActorsAnswer {
    let org = state.engine().org();
    let actors = org
        .actors()
        .filter(|a| org.actor_in_community(a, &caller.acting.unit))
        .map(|a| ActorAnswer::of(a, &org, &caller.acting.unit))
        .collect();
    ActorsAnswer { actors }
}

fn actor_answer(state: &AppState, caller: &Acting, id: &ActorId) -> ApiResult<ActorAnswer> {
    let org = state.engine().org();
    let actor = org
        .actor(id)
        .ok_or_else(|| ApiError::internal("an actor just written is not in the chart"))?;
    Ok(ActorAnswer::of(actor, &org, &caller.unit))
}

async fn register_actor(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    StrictJson(body): StrictJson<NewActor>,
) -> ApiResult<Response> {
    let (wrote, answer) = register_actor_as(&state, &caller, body, options).await?;
    Ok(created(wrote, answer))
}

/// Registers an actor as `caller` (`POST /api/v1/actors`): whether it wrote, and the actor.
///
/// # Errors
/// The core's refusals (409 for an id taken by another actor).
pub(crate) async fn register_actor_as(
    state: &AppState,
    caller: &Caller,
    body: NewActor,
    options: SubmitOptions,
) -> ApiResult<(bool, ActorAnswer)> {
    let id = ActorId::new(&body.id).map_err(ApiError::from_invalid("id"))?;
    let command = OrgCommand::RegisterActor {
        id: id.clone(),
        name: body.name,
        kind: match body.kind {
            ActorKindName::Person => ActorKind::Person,
            ActorKindName::System => ActorKind::System,
        },
    };
    let wrote = submit(state, caller, command, options).await?;
    Ok((wrote, actor_answer(state, &caller.acting, &id)?))
}

async fn grant_role(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<GrantBody>,
) -> ApiResult<Json<ActorAnswer>> {
    Ok(Json(
        change_grant(&state, &caller, options, &id, body, true).await?,
    ))
}

async fn revoke_role(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<GrantBody>,
) -> ApiResult<Json<ActorAnswer>> {
    Ok(Json(
        change_grant(&state, &caller, options, &id, body, false).await?,
    ))
}

/// Grants (`granting`) or revokes a role of actor `id` at a unit, as `caller`
/// (`POST /api/v1/actors/{id}/roles`, `…/roles/revoke`): the actor afterwards. A revocation
/// reaches the token index before this returns.
///
/// # Errors
/// 404 for an actor that does not exist or a unit the caller cannot see; the core's refusals.
pub(crate) async fn change_grant(
    state: &AppState,
    caller: &Caller,
    options: SubmitOptions,
    id: &str,
    body: GrantBody,
    granting: bool,
) -> ApiResult<ActorAnswer> {
    let org = state.engine().org();
    // Any actor of the store may be granted a role in the caller's subtree (a resident of
    // one community volunteering in another); the id must exist.
    let actor = ActorId::new(id)
        .ok()
        .filter(|a| org.actor(a).is_some())
        .ok_or_else(|| ApiError::not_found("actor"))?;
    let role = Role::new(&body.role).map_err(ApiError::from_invalid("role"))?;
    let unit = UnitId::new(&body.unit_id)
        .ok()
        .filter(|u| {
            org.unit(u)
                .is_some_and(|unit| sees(&org, &caller.acting, unit))
        })
        .ok_or_else(|| ApiError::not_found("unit").field("unit_id"))?;
    let command = if granting {
        OrgCommand::GrantRole {
            actor: actor.clone(),
            role,
            unit,
        }
    } else {
        OrgCommand::RevokeRole {
            actor: actor.clone(),
            role,
            unit,
        }
    };
    submit(state, caller, command, options).await?;
    if !granting {
        // The role's tokens were revoked with it: the index learns it before the answer, as
        // for a token revoked through its own route (a grant given again must not revive them).
        let tokens = state.engine().tokens()?;
        state.tokens().replace(&tokens);
    }
    actor_answer(state, &caller.acting, &actor)
}

async fn list_roles(State(state): State<AppState>) -> Json<RolesAnswer> {
    Json(roles_answer(&state))
}

/// The roles in force (`GET /api/v1/roles`).
pub(crate) fn roles_answer(state: &AppState) -> RolesAnswer {
    let roles = state
        .engine()
        .org()
        .roles()
        .into_iter()
        .map(|(id, name, built_in)| RoleAnswer {
            id: id.to_string(),
            name,
            built_in,
        })
        .collect();
    RolesAnswer { roles }
}

async fn define_role(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    StrictJson(body): StrictJson<NewRole>,
) -> ApiResult<Response> {
    let (wrote, answer) = define_role_as(&state, &caller, body, options).await?;
    Ok(created(wrote, answer))
}

/// Defines a role as `caller` (`POST /api/v1/roles`): whether it wrote (false: defined already
/// with that name), and the role.
///
/// # Errors
/// The core's refusals (409 for a role defined with another name, 422 for a bad id).
pub(crate) async fn define_role_as(
    state: &AppState,
    caller: &Caller,
    body: NewRole,
    options: SubmitOptions,
) -> ApiResult<(bool, RoleAnswer)> {
    let id = Role::new(&body.id).map_err(ApiError::from_invalid("id"))?;
    let command = OrgCommand::DefineRole {
        id: id.clone(),
        name: body.name,
    };
    let wrote = submit(state, caller, command, options).await?;
    let org = state.engine().org();
    let (id, name, built_in) = org
        .roles()
        .into_iter()
        .find(|(role, _, _)| role == &id)
        .ok_or_else(|| ApiError::internal("a role just defined is not in force"))?;
    Ok((
        wrote,
        RoleAnswer {
            id: id.to_string(),
            name,
            built_in,
        },
    ))
}
