//! The org chart and the workflow definitions: what a client needs to know to file a case in
//! the right place and to show which actions exist. Read-only; any valid token.

use axum::extract::State;
use axum::http::Method;
use axum::routing::get;
use axum::Json;
use civicflow_core::domain::fields::{FieldKind, FieldSpec};
use civicflow_core::domain::org::Tier;
use civicflow_core::domain::workflow::{DeadlineRule, Definition};
use civicflow_core::{Role, UnitId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Content, RouteSpec};
use crate::openapi::schema_of;
use crate::policy::Policy;
use crate::state::AppState;

/// The routes of this module.
pub fn routes() -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            method: Method::GET,
            path: "/api/v1/units",
            policy: Policy::Authenticated,
            summary: "The org chart: every unit with its id, name, tier and parent (parents before children), and whether it is in the community → grid → enterprise → shop chain.",
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
            method: Method::GET,
            path: "/api/v1/workflows",
            policy: Policy::Authenticated,
            summary: "The loaded workflow definitions, every version: stages (with the terminal flag and deadline), actions (from, to, roles, scope, fields) and the fields asked when a case is opened.",
            tag: "org",
            request: None,
            params: None,
            response: Some(workflows_schema),
            content: Content::Json,
            status: 200,
            also: &[],
            errors: &[],
            handler: get(workflows),
        },
    ]
}

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
    #[schemars(required)]
    pub parent: Option<String>,
    /// Whether it is one of the four tiers of the community → grid → enterprise → shop chain.
    pub in_chain: bool,
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

fn field_schema() -> Value {
    json!({
        "type": "object",
        "required": ["name", "type", "required"],
        "properties": {
            "name": {"type": "string"},
            "type": {"type": "string", "enum": [
                "text", "number", "integer", "bool", "datetime", "unit",
                "choice", "choices", "rating", "case"
            ]},
            "required": {"type": "boolean"},
            "label": {"type": "string"},
            "choices": {"type": "array", "items": {"type": "string"}},
            "reach": {
                "type": "string",
                "enum": ["subtree", "outside_chain"],
                "description": "unit fields only: which units the action may hand the case to (docs/workflows.md, Reach)"
            }
        }
    })
}

fn workflows_schema() -> Value {
    json!({
        "type": "object",
        "required": ["workflows"],
        "properties": {"workflows": {"type": "array", "items": {
            "type": "object",
            "required": ["id", "version", "name", "stages", "actions", "open"],
            "properties": {
                "id": {"type": "string"},
                "version": {"type": "integer"},
                "reference": {"type": "string", "description": "id@version"},
                "latest": {"type": "boolean", "description": "the newest version of its workflow (what new cases get)"},
                "name": {"type": "string"},
                "description": {"type": "string"},
                "public": {"type": "boolean"},
                "initial_stage": {"type": "string"},
                "open": {"type": "object", "properties": {
                    "roles": {"type": "array", "items": {"type": "string"}},
                    "scope": {"type": "string"},
                    "fields": {"type": "array", "items": field_schema()}
                }},
                "stages": {"type": "array", "items": {"type": "object",
                    "required": ["id", "name", "terminal"],
                    "properties": {
                        "id": {"type": "string"}, "name": {"type": "string"},
                        "terminal": {"type": "boolean"},
                        "deadline": {"type": ["object", "null"], "properties": {
                            "within": {"type": "string"}, "remind_after": {"type": ["string", "null"]},
                            "escalate": {"type": "boolean"}, "breach_after": {"type": ["string", "null"]}
                        }}
                    }}},
                "actions": {"type": "array", "items": {"type": "object",
                    "required": ["id", "name", "from", "to", "roles", "fields"],
                    "properties": {
                        "id": {"type": "string"}, "name": {"type": "string"},
                        "from": {"type": "array", "items": {"type": "string"}},
                        "to": {"type": "string"},
                        "roles": {"type": "array", "items": {"type": "string"}},
                        "scope": {"type": "string", "enum": ["any", "subtree", "lead", "handler", "requester"]},
                        "fields": {"type": "array", "items": field_schema()}
                    }}}
            }
        }}}
    })
}

async fn units(State(state): State<AppState>) -> Json<UnitsAnswer> {
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
        if let Some(unit) = org.unit(&id) {
            ordered.push(UnitAnswer {
                id: unit.id.to_string(),
                name: unit.name.clone(),
                tier: unit.tier.into(),
                parent: unit.parent.as_ref().map(UnitId::to_string),
                in_chain: unit.tier.in_chain(),
            });
        }
    }
    Json(UnitsAnswer { units: ordered })
}

fn roles_json(roles: &[Role]) -> Vec<&str> {
    roles.iter().map(Role::as_str).collect()
}

fn fields_json(fields: &[FieldSpec]) -> Vec<Value> {
    fields
        .iter()
        .map(|f| {
            let mut field = json!({
                "name": f.name,
                "type": f.kind.as_str(),
                "required": f.required,
                "label": f.label,
                "choices": f.choices,
            });
            if f.kind == FieldKind::Unit {
                field["reach"] = json!(f.reach.as_str());
            }
            field
        })
        .collect()
}

fn deadline_json(rule: &DeadlineRule) -> Value {
    json!({
        "within": rule.within.to_string(),
        "remind_after": rule.remind_after.map(|s| s.to_string()),
        "escalate": rule.escalate,
        "breach_after": rule.breach_after.map(|s| s.to_string()),
    })
}

/// A definition as the API shows it.
fn definition_json(definition: &Definition, latest: bool) -> Value {
    let stages: Vec<Value> = definition
        .stages
        .iter()
        .map(|stage| {
            json!({
                "id": stage.id,
                "name": stage.name,
                "terminal": stage.terminal,
                "deadline": stage.deadline.as_ref().map(deadline_json),
            })
        })
        .collect();
    let actions: Vec<Value> = definition
        .actions
        .iter()
        .map(|action| {
            json!({
                "id": action.id,
                "name": action.name,
                "from": action.from,
                "to": action.to,
                "roles": roles_json(&action.roles),
                "scope": action.scope,
                "fields": fields_json(&action.fields),
            })
        })
        .collect();
    json!({
        "id": definition.id.as_str(),
        "version": definition.version,
        "reference": definition.reference().to_string(),
        "latest": latest,
        "name": definition.name,
        "description": definition.description,
        "public": definition.public,
        "initial_stage": definition.initial_stage,
        "open": {
            "roles": roles_json(&definition.open.roles),
            "scope": definition.open.scope,
            "fields": fields_json(&definition.open.fields),
        },
        "stages": stages,
        "actions": actions,
    })
}

async fn workflows(State(state): State<AppState>) -> Json<Value> {
    let registry = state.engine().definitions();
    let workflows: Vec<Value> = registry
        .all()
        .map(|definition| {
            let latest = registry
                .latest(&definition.id)
                .is_some_and(|l| l.version == definition.version);
            definition_json(definition, latest)
        })
        .collect();
    Json(json!({ "workflows": workflows }))
}
