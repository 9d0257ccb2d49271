//! `civicflow init --config FILE`: a deployment kept under version control. One TOML file
//! declares the community, its first administrator, and the units, roles, actors (with their
//! roles) and workflow definition files the deployment has; applying it makes the store hold
//! what it says:
//!
//! - on an empty store it founds the store (as `civicflow init` does: the community, the
//!   administrator, their grant and token) and writes the rest;
//! - on a store founded before (by the same file or by `init`), it writes only what differs:
//!   each entry is created once, and a changed entry becomes its update event (a unit renamed
//!   or moved, a role granted, a changed workflow file published as its higher version).
//!   Applying the same file twice writes nothing the second time.
//!
//! The file adds and updates; it never removes. Retiring a unit and revoking a role are
//! decisions with consequences (open cases, tokens) made explicitly, over the API.
//!
//! Every change to the chart is one decision (`OrgCommand::All`: all or nothing), written as
//! the system; then each workflow file is published (an event each); then, on a founding, the
//! administrator's token. A file the engine refuses names the entry and the reason.
//!
//! ```toml
//! [community]
//! id = "lotus-street"
//! name = "荷花街社区 Lotus Street"
//!
//! [admin]                          # optional: `admin`, "Community administrator"
//! id = "wang.admin"
//! name = "王主任"
//!
//! [[roles]]
//! id = "street_sweeper"
//! name = "保洁员 street sweeper"
//!
//! [[units]]                        # parents before children, or in any order
//! id = "grid-1"
//! name = "第一网格 grid 1"
//! tier = "grid"
//! parent = "lotus-street"
//!
//! [[actors]]
//! id = "li.grid1"
//! name = "李网格员"
//! kind = "person"                  # optional; or "system"
//! roles = [{ role = "grid_worker", unit = "grid-1" }]
//!
//! [workflows]
//! files = ["workflows/street-lighting.toml"]   # relative to this file
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use civicflow::core::domain::org::{ActorKind, OrgChart, OrgCommand, Tier};
use civicflow::core::{ActorId, Role, UnitId};
use serde::Deserialize;

/// The file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentFile {
    /// The first community.
    pub community: CommunityEntry,
    /// Its first administrator.
    #[serde(default)]
    pub admin: Option<AdminEntry>,
    /// Roles beyond the built-in ones.
    #[serde(default)]
    pub roles: Vec<RoleEntry>,
    /// Units below the community (or other top units).
    #[serde(default)]
    pub units: Vec<UnitEntry>,
    /// Actors and their roles.
    #[serde(default)]
    pub actors: Vec<ActorEntryFile>,
    /// Workflow definition files.
    #[serde(default)]
    pub workflows: Option<WorkflowsEntry>,
}

/// `[community]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommunityEntry {
    /// Its unit id.
    pub id: String,
    /// Its display name.
    pub name: String,
}

/// `[admin]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminEntry {
    /// Their actor id.
    pub id: String,
    /// Their display name.
    pub name: String,
}

/// `[[roles]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleEntry {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// `[[units]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitEntry {
    /// Its id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// Its tier (`grid`, `enterprise`, `shop`, `department`, `social_organization`,
    /// `volunteer_team`, `community`).
    pub tier: Tier,
    /// Its parent; absent for a unit of no community (or a further community).
    #[serde(default)]
    pub parent: Option<String>,
}

/// `[[actors]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorEntryFile {
    /// Their id.
    pub id: String,
    /// Their display name.
    pub name: String,
    /// `person` (default) or `system`.
    #[serde(default)]
    pub kind: Option<ActorKind>,
    /// The roles they hold.
    #[serde(default)]
    pub roles: Vec<GrantEntry>,
}

/// A role at a unit.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantEntry {
    /// The role.
    pub role: String,
    /// The unit.
    pub unit: String,
}

/// `[workflows]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowsEntry {
    /// Definition files, relative to the configuration file.
    pub files: Vec<PathBuf>,
}

impl DeploymentFile {
    /// Reads and parses `path`.
    ///
    /// # Errors
    /// The file cannot be read or does not parse (the message names the key and line).
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The workflow files, resolved against the configuration file's directory.
    pub fn workflow_files(&self, config: &Path) -> Vec<PathBuf> {
        let base = config.parent().unwrap_or(Path::new("."));
        self.workflows
            .iter()
            .flat_map(|w| w.files.iter())
            .map(|file| base.join(file))
            .collect()
    }

    /// The changes to `chart` that make it hold what the file declares beyond the founding
    /// (roles, units, actors, grants), in an order the core accepts (roles first, parents
    /// before children, actors before their grants). Empty when the chart holds it all.
    ///
    /// # Errors
    /// An entry that cannot become an update (a unit's tier changed, a role defined with
    /// another name, an id that is not one), naming it.
    pub fn changes(&self, chart: &OrgChart) -> Result<Vec<OrgCommand>, String> {
        let mut commands = Vec::new();
        for role in &self.roles {
            let id = Role::new(&role.id).map_err(|e| format!("roles: {}: {e}", role.id))?;
            match chart.roles().into_iter().find(|(r, _, _)| r == &id) {
                None => commands.push(OrgCommand::DefineRole {
                    id,
                    name: role.name.clone(),
                }),
                Some((_, name, _)) if name == role.name => {}
                Some((_, name, _)) => {
                    return Err(format!(
                        "roles: {} is defined as {name:?} in the store; a role is never renamed",
                        role.id
                    ))
                }
            }
        }
        // Units: parents first, whatever the file's order (a unit whose parent is in neither
        // the chart nor the file is left to the core to refuse, naming it).
        let mut placed: BTreeSet<String> = chart.units().map(|u| u.id.to_string()).collect();
        let mut pending: Vec<&UnitEntry> = self.units.iter().collect();
        while !pending.is_empty() {
            let ready = pending
                .iter()
                .position(|u| u.parent.as_ref().is_none_or(|p| placed.contains(p)))
                .unwrap_or(0);
            let unit = pending.remove(ready);
            commands.extend(unit_changes(unit, chart)?);
            placed.insert(unit.id.clone());
        }
        for actor in &self.actors {
            let id = ActorId::new(&actor.id).map_err(|e| format!("actors: {}: {e}", actor.id))?;
            let known = chart.actor(&id);
            if known.is_none() {
                commands.push(OrgCommand::RegisterActor {
                    id: id.clone(),
                    name: actor.name.clone(),
                    kind: actor.kind.unwrap_or(ActorKind::Person),
                });
            }
            for grant in &actor.roles {
                let role = Role::new(&grant.role)
                    .map_err(|e| format!("actors: {}: role {}: {e}", actor.id, grant.role))?;
                let unit = UnitId::new(&grant.unit)
                    .map_err(|e| format!("actors: {}: unit {}: {e}", actor.id, grant.unit))?;
                if !chart.holds(&id, &role, &unit) {
                    commands.push(OrgCommand::GrantRole {
                        actor: id.clone(),
                        role,
                        unit,
                    });
                }
            }
        }
        Ok(commands)
    }
}

/// What makes the chart hold `unit` as the file declares it.
fn unit_changes(unit: &UnitEntry, chart: &OrgChart) -> Result<Vec<OrgCommand>, String> {
    let id = UnitId::new(&unit.id).map_err(|e| format!("units: {}: {e}", unit.id))?;
    let parent = unit
        .parent
        .as_deref()
        .map(UnitId::new)
        .transpose()
        .map_err(|e| format!("units: {}: parent: {e}", unit.id))?;
    let Some(existing) = chart.unit(&id) else {
        return Ok(vec![OrgCommand::CreateUnit {
            id,
            name: unit.name.clone(),
            tier: unit.tier,
            parent,
        }]);
    };
    if existing.tier != unit.tier {
        return Err(format!(
            "units: {}: it is {} in the store; a unit's tier never changes (add another unit)",
            unit.id,
            existing.tier.with_article()
        ));
    }
    let name = (existing.name != unit.name).then(|| unit.name.clone());
    let moved = match (&existing.parent, &parent) {
        (current, Some(wanted)) if current.as_ref() != Some(wanted) => Some(wanted.clone()),
        _ => None,
    };
    if name.is_none() && moved.is_none() {
        return Ok(Vec::new());
    }
    Ok(vec![OrgCommand::UpdateUnit {
        id,
        name,
        parent: moved,
    }])
}
