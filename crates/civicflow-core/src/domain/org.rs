//! The org chart: the four-tier chain (社区 community → 网格 grid → 企业 enterprise → 商铺
//! shop), the units outside it that can be given work (departments, social organizations,
//! volunteer teams), the actors and the roles they hold at units.
//!
//! The chart is one event stream (`org-chart`), so that every check (does the parent exist,
//! would a move make a cycle) sees all of it. Authority follows the tree: a unit acts on what
//! lies in its own subtree.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::aggregate::{Aggregate, Decision, Fold};
use super::context::Context;
use super::events::domain_events;
use super::rejection::Rejection;
use super::workflow::Scope;
use crate::ids::{ActorId, Role, StreamId, UnitId};

/// The stream that holds the org chart.
pub fn org_stream() -> StreamId {
    StreamId::new("org-chart").expect("a valid stream id")
}

/// The roles civicflow knows, with what they are in the seed's words.
pub mod roles {
    /// 社区大党委 / community administrator.
    pub const COMMUNITY_ADMIN: &str = "community_admin";
    /// 网格员: the grid worker who meets residents and merchants at the door.
    pub const GRID_WORKER: &str = "grid_worker";
    /// The enterprise's liaison with the community.
    pub const ENTERPRISE_LIAISON: &str = "enterprise_liaison";
    /// 经营户: a shop owner (sees only their own shop).
    pub const SHOP_OWNER: &str = "shop_owner";
    /// 党员: a party member (patrols, 先锋 teams).
    pub const PARTY_MEMBER: &str = "party_member";
    /// 志愿者: a volunteer.
    pub const VOLUNTEER: &str = "volunteer";
    /// 居民: a resident or consumer who asks for something.
    pub const RESIDENT: &str = "resident";
    /// 部门: an officer of a government department (market regulation, …).
    pub const DEPARTMENT_OFFICER: &str = "department_officer";
    /// 法律援助: a legal-aid lawyer.
    pub const LEGAL_AID: &str = "legal_aid";
    /// 居务联络员: a liaison officer at a business-environment monitoring point.
    pub const LIAISON_OFFICER: &str = "liaison_officer";
    /// A social organization's coordinator.
    pub const SOCIAL_ORGANIZER: &str = "social_organizer";
    /// An auditor: reads everything, changes nothing.
    pub const AUDITOR: &str = "auditor";
    /// A civic app speaking Open311 on a resident's behalf.
    pub const OPEN311_CLIENT: &str = "open311_client";
    /// The system itself (the deadline scheduler, bootstrap): may do anything.
    pub const SYSTEM: &str = "system";

    /// Every built-in role with its name (Chinese first, English beside it), as
    /// `GET /api/v1/roles` shows it.
    pub const NAMES: &[(&str, &str)] = &[
        (COMMUNITY_ADMIN, "社区管理员 community administrator"),
        (GRID_WORKER, "网格员 grid worker"),
        (ENTERPRISE_LIAISON, "企业联络员 enterprise liaison"),
        (SHOP_OWNER, "经营户 shop owner"),
        (PARTY_MEMBER, "党员 party member"),
        (VOLUNTEER, "志愿者 volunteer"),
        (RESIDENT, "居民 resident"),
        (DEPARTMENT_OFFICER, "部门工作人员 department officer"),
        (LEGAL_AID, "法律援助 legal aid"),
        (LIAISON_OFFICER, "居务联络员 liaison officer"),
        (SOCIAL_ORGANIZER, "社会组织协调员 social organizer"),
        (AUDITOR, "审计员 auditor"),
        (OPEN311_CLIENT, "Open311 应用 Open311 client"),
        (SYSTEM, "系统 system"),
    ];

    /// Every built-in role.
    pub const ALL: &[&str] = &[
        COMMUNITY_ADMIN,
        GRID_WORKER,
        ENTERPRISE_LIAISON,
        SHOP_OWNER,
        PARTY_MEMBER,
        VOLUNTEER,
        RESIDENT,
        DEPARTMENT_OFFICER,
        LEGAL_AID,
        LIAISON_OFFICER,
        SOCIAL_ORGANIZER,
        AUDITOR,
        OPEN311_CLIENT,
        SYSTEM,
    ];

    /// The roles that act for a unit: everyone but residents and the civic apps that file
    /// for them (their unit is where they live, not what they answer for). They read their
    /// unit's inbox, directives and reports.
    pub const ACT_FOR_UNITS: &[&str] = &[
        COMMUNITY_ADMIN,
        GRID_WORKER,
        ENTERPRISE_LIAISON,
        SHOP_OWNER,
        PARTY_MEMBER,
        VOLUNTEER,
        DEPARTMENT_OFFICER,
        LEGAL_AID,
        LIAISON_OFFICER,
        SOCIAL_ORGANIZER,
        AUDITOR,
    ];

    /// The roles that read the staff reports (三率 and community statistics): the
    /// community's administrators, grid workers, department officers, liaison officers at
    /// the monitoring points, and auditors.
    pub const READ_STAFF_REPORTS: &[&str] = &[
        COMMUNITY_ADMIN,
        GRID_WORKER,
        DEPARTMENT_OFFICER,
        LIAISON_OFFICER,
        AUDITOR,
    ];

    /// The roles that issue and revoke access tokens (for units at or below their own).
    pub const MANAGE_TOKENS: &[&str] = &[COMMUNITY_ADMIN];

    /// The roles that act as persons, not for a unit: residents, and the civic apps
    /// (`open311_client`) that file for them. Their unit is where they live, not what they
    /// answer for, so they may file a case at any unit and see the cases they filed.
    pub const PERSONS: &[&str] = &[RESIDENT, OPEN311_CLIENT];
}

/// How far a hand-over may reach: which units an action may make a case's lead or
/// co-handling unit (a workflow's `reach` on a `unit` field, `docs/workflows.md`).
///
/// Dispatch and co-handling follow the chain downwards: a grid hands its cases to its own
/// enterprises and shops, never to another grid's. Some steps cross the tree by design (a
/// referral to a department, legal aid, a social organization brought in); a workflow names
/// them with [`Reach::OutsideChain`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    /// The acting unit or a unit below it.
    #[default]
    Subtree,
    /// Also a unit outside the chain (a department, a social organization, a volunteer
    /// team) in the acting unit's community or in none (a district's office).
    OutsideChain,
}

impl Reach {
    /// Whether this is the default (what a definition need not write).
    pub fn is_default(&self) -> bool {
        *self == Reach::Subtree
    }

    /// The rule in words, for refusals.
    pub fn describe(self) -> &'static str {
        match self {
            Reach::Subtree => "a case is handed only to the acting unit or a unit below it",
            Reach::OutsideChain => {
                "a case is handed only to the acting unit, a unit below it, or a department, social organization or volunteer team of its community or of none"
            }
        }
    }

    /// The name in definitions.
    pub fn as_str(self) -> &'static str {
        match self {
            Reach::Subtree => "subtree",
            Reach::OutsideChain => "outside_chain",
        }
    }
}

/// Where a unit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// 社区: the top of the chain.
    Community,
    /// 网格: a grid of the community.
    Grid,
    /// 企业: an enterprise (a commercial complex) in a grid.
    Enterprise,
    /// 商铺: a shop in an enterprise.
    Shop,
    /// 部门: a government department, outside the chain.
    Department,
    /// 社会组织: a social organization, outside the chain.
    SocialOrganization,
    /// 志愿队: a volunteer team, outside the chain.
    VolunteerTeam,
}

impl Tier {
    /// The tier a parent must have; `None` for a community. Units outside the chain may hang
    /// under a community or under nothing (`Some(Community)` is then also accepted).
    pub fn parent_tier(self) -> Option<Tier> {
        match self {
            Tier::Community => None,
            Tier::Grid => Some(Tier::Community),
            Tier::Enterprise => Some(Tier::Grid),
            Tier::Shop => Some(Tier::Enterprise),
            Tier::Department | Tier::SocialOrganization | Tier::VolunteerTeam => {
                Some(Tier::Community)
            }
        }
    }

    /// Whether the tier is one of the four of the chain.
    pub fn in_chain(self) -> bool {
        matches!(
            self,
            Tier::Community | Tier::Grid | Tier::Enterprise | Tier::Shop
        )
    }

    /// The name with its article, for messages: `a grid`, `an enterprise`.
    pub fn with_article(self) -> String {
        let name = self.as_str();
        let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        format!("{article} {name}")
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Community => "community",
            Tier::Grid => "grid",
            Tier::Enterprise => "enterprise",
            Tier::Shop => "shop",
            Tier::Department => "department",
            Tier::SocialOrganization => "social_organization",
            Tier::VolunteerTeam => "volunteer_team",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person or a system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A person.
    Person,
    /// A system (an app, a scheduler).
    System,
}

/// An org unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// Its slug.
    pub id: UnitId,
    /// Its display name (`通惠社区`).
    pub name: String,
    /// Its tier.
    pub tier: Tier,
    /// Its parent, `None` for a community or a free-standing outside unit.
    pub parent: Option<UnitId>,
    /// Retired (`UnitRetired`): kept for the history that names it, but no case is filed at
    /// it or handed to it, no role granted at it and no unit created under it.
    pub retired: bool,
}

/// An actor and the roles they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorEntry {
    /// The actor.
    pub id: ActorId,
    /// Display name.
    pub name: String,
    /// Person or system.
    pub kind: ActorKind,
    /// `(role, unit)` pairs held.
    pub grants: BTreeSet<(Role, UnitId)>,
    /// The unit whose administrator registered them (`None`: the system did, or a log
    /// written before this was recorded): which community's administrators see them before
    /// they hold a role there.
    pub registered_at: Option<UnitId>,
}

/// Who is acting: an actor in one of their roles, for one unit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Acting {
    /// The actor.
    pub actor: ActorId,
    /// The role they act in.
    pub role: Role,
    /// The unit they act for.
    pub unit: UnitId,
}

impl Acting {
    /// An actor in a role at a unit.
    pub fn new(actor: ActorId, role: Role, unit: UnitId) -> Self {
        Self { actor, role, unit }
    }

    /// Parses the three parts.
    ///
    /// # Errors
    /// [`Rejection::FieldInvalid`] naming the part that is not valid.
    pub fn parse(actor: &str, role: &str, unit: &str) -> Result<Self, Rejection> {
        Ok(Self::new(
            ActorId::new(actor)?,
            Role::new(role)?,
            UnitId::new(unit)?,
        ))
    }

    /// The system acting for `unit`: the scheduler, bootstrap. Needs no grant.
    pub fn system(unit: UnitId) -> Self {
        Self::new(
            ActorId::new("system").expect("a valid actor id"),
            Role::new(roles::SYSTEM).expect("a valid role"),
            unit,
        )
    }

    /// Whether this is the system role.
    pub fn is_system(&self) -> bool {
        self.role.as_str() == roles::SYSTEM
    }

    /// The log's actor metadata for this acting.
    pub fn to_log_actor(&self) -> crate::ids::Actor {
        crate::ids::Actor::new(self.actor.clone(), self.role.clone(), self.unit.clone())
    }
}

/// The org chart as of some version of its stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgChart {
    units: BTreeMap<UnitId, Unit>,
    children: BTreeMap<UnitId, BTreeSet<UnitId>>,
    actors: BTreeMap<ActorId, ActorEntry>,
    /// Roles defined in the log (`RoleDefined`), with their names; the built-in ones
    /// ([`roles::NAMES`]) are not written.
    defined_roles: BTreeMap<Role, String>,
    /// The first community created in the store (by `civicflow init`): its administrators
    /// administer the store (they add further communities and their first administrators).
    first_community: Option<UnitId>,
}

impl OrgChart {
    /// A unit.
    pub fn unit(&self, id: &UnitId) -> Option<&Unit> {
        self.units.get(id)
    }

    /// Every unit, in id order.
    pub fn units(&self) -> impl Iterator<Item = &Unit> {
        self.units.values()
    }

    /// Whether `role` exists: a built-in role, or one defined in the log.
    pub fn role_exists(&self, role: &Role) -> bool {
        roles::ALL.contains(&role.as_str()) || self.defined_roles.contains_key(role)
    }

    /// Every role in force with its name: the built-in ones (the system's last), then the
    /// defined ones in id order.
    pub fn roles(&self) -> Vec<(Role, String, bool)> {
        let built_in = roles::NAMES
            .iter()
            .filter_map(|(id, name)| Some((Role::new(*id).ok()?, (*name).to_owned(), true)));
        let defined = self
            .defined_roles
            .iter()
            .map(|(id, name)| (id.clone(), name.clone(), false));
        built_in.chain(defined).collect()
    }

    /// The roles defined in the log (not the built-in ones).
    pub fn defined_roles(&self) -> impl Iterator<Item = &Role> {
        self.defined_roles.keys()
    }

    /// The first community created in the store, whose administrators administer the store.
    pub fn first_community(&self) -> Option<&UnitId> {
        self.first_community.as_ref()
    }

    /// Whether `acting` administers the store: the system, or a community administrator at
    /// the store's first community (`civicflow init` makes one). They alone add communities
    /// and make their first administrators.
    pub fn administers_store(&self, acting: &Acting) -> bool {
        acting.is_system()
            || (acting.role.as_str() == roles::COMMUNITY_ADMIN
                && self.first_community.as_ref() == Some(&acting.unit)
                && self.check_acting(acting).is_ok())
    }

    /// Whether `actor` is one `viewer`'s community sees: they hold a role in the viewer's
    /// community, or were registered there.
    pub fn actor_in_community(&self, actor: &ActorEntry, viewer: &UnitId) -> bool {
        let top = self.top_of(viewer);
        actor
            .grants
            .iter()
            .any(|(_, unit)| self.is_within(unit, &top))
            || actor
                .registered_at
                .as_ref()
                .is_some_and(|unit| self.is_within(unit, &top))
    }

    /// An actor.
    pub fn actor(&self, id: &ActorId) -> Option<&ActorEntry> {
        self.actors.get(id)
    }

    /// Every actor, in id order.
    pub fn actors(&self) -> impl Iterator<Item = &ActorEntry> {
        self.actors.values()
    }

    /// The direct children of a unit, in id order.
    pub fn children(&self, id: &UnitId) -> impl Iterator<Item = &UnitId> {
        self.children.get(id).into_iter().flatten()
    }

    /// A unit's parent.
    pub fn parent(&self, id: &UnitId) -> Option<&UnitId> {
        self.units.get(id).and_then(|u| u.parent.as_ref())
    }

    /// Whether `unit` is `ancestor` or lies below it.
    pub fn is_within(&self, unit: &UnitId, ancestor: &UnitId) -> bool {
        let mut current = Some(unit);
        let mut steps = 0;
        while let Some(id) = current {
            if id == ancestor {
                return true;
            }
            current = self.parent(id);
            steps += 1;
            if steps > self.units.len() {
                return false; // a cycle cannot be built, but never loop on one
            }
        }
        false
    }

    /// The unit and everything below it, parents before children, siblings in id order.
    pub fn subtree(&self, root: &UnitId) -> Vec<UnitId> {
        let mut out = Vec::new();
        if !self.units.contains_key(root) {
            return out;
        }
        let mut stack = vec![root.clone()];
        while let Some(id) = stack.pop() {
            let children: Vec<&UnitId> = self.children(&id).collect();
            out.push(id);
            stack.extend(children.into_iter().rev().cloned());
        }
        out
    }

    /// The unit one tier up, which supervises (督办) this one; `None` at the top.
    pub fn supervisor(&self, id: &UnitId) -> Option<&UnitId> {
        self.parent(id)
    }

    /// Whether the actor holds `role` at `unit`.
    pub fn holds(&self, actor: &ActorId, role: &Role, unit: &UnitId) -> bool {
        self.actors
            .get(actor)
            .is_some_and(|a| a.grants.contains(&(role.clone(), unit.clone())))
    }

    /// Checks that `acting` is a real grant (the system role needs none).
    ///
    /// # Errors
    /// [`Rejection::NotGranted`] when the actor does not hold the role at the unit.
    pub fn check_acting(&self, acting: &Acting) -> Result<(), Rejection> {
        if acting.is_system() || self.holds(&acting.actor, &acting.role, &acting.unit) {
            Ok(())
        } else {
            Err(Rejection::NotGranted {
                actor: acting.actor.clone(),
                role: acting.role.clone(),
                unit: acting.unit.clone(),
            })
        }
    }

    /// Whether `unit` exists and lies in `acting`'s scope: their own unit or below it (what a
    /// unit's reports, inbox and live feed may be read for). Whoever asks for a unit out of
    /// scope is told it does not exist, as for one that does not.
    pub fn in_scope(&self, acting: &Acting, unit: &UnitId) -> bool {
        self.unit(unit).is_some() && self.is_within(unit, &acting.unit)
    }

    /// Whether `unit` lies in the community of `viewer`'s unit: what the community-wide
    /// reports, the three lists and shops' standing show a caller.
    pub fn same_community(&self, unit: &UnitId, viewer: &UnitId) -> bool {
        self.is_within(unit, &self.top_of(viewer))
    }

    /// Whether one of two units lies within the other (a unit and its ancestors and
    /// descendants are related; siblings and cousins are not).
    pub fn related(&self, a: &UnitId, b: &UnitId) -> bool {
        self.is_within(a, b) || self.is_within(b, a)
    }

    /// Whether `acting` may file a case at `unit` (which must exist), when the workflow's
    /// opening scope is `scope`: the system anywhere; persons ([`roles::PERSONS`]) at any
    /// unit, with either scope, since they address a unit rather than act for one; a unit at
    /// itself or below it (`subtree`), and with `any` also above it, asking upward, but never
    /// at a sibling or a cousin, where it has nothing to do and no one answers to it.
    pub fn may_open_at(&self, acting: &Acting, unit: &UnitId, scope: Scope) -> bool {
        if self.unit(unit).is_none_or(|u| u.retired) {
            return false;
        }
        if acting.is_system() || roles::PERSONS.contains(&acting.role.as_str()) {
            return true;
        }
        match scope {
            Scope::Subtree => self.is_within(unit, &acting.unit),
            // `any`, the only other scope an opening may have (`Definition::validate`).
            _ => self.related(unit, &acting.unit),
        }
    }

    /// Whether `acting` may make `unit` (which must exist) a case's lead or co-handling unit,
    /// within `reach`. The system hands over anywhere (escalations, follow-ups).
    pub fn may_hand_to(&self, acting: &Acting, unit: &UnitId, reach: Reach) -> bool {
        let Some(target) = self.unit(unit).filter(|u| !u.retired) else {
            return false;
        };
        if acting.is_system() || self.is_within(unit, &acting.unit) {
            return true;
        }
        // Outside the chain: a unit of the acting unit's community, or one that belongs to
        // no community (a district's tax office, hanging under nothing).
        reach == Reach::OutsideChain
            && !target.tier.in_chain()
            && (target.parent.is_none() || self.same_community(unit, &acting.unit))
    }

    /// The top of a unit's chain: its community (or the unit itself at the top).
    pub fn top_of(&self, unit: &UnitId) -> UnitId {
        let mut current = unit;
        for _ in 0..=self.units.len() {
            match self.parent(current) {
                Some(parent) => current = parent,
                None => break,
            }
        }
        current.clone()
    }
}

/// A change to the org chart.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OrgCommand {
    /// Adds a unit.
    CreateUnit {
        /// Its slug.
        id: UnitId,
        /// Its display name.
        name: String,
        /// Its tier.
        tier: Tier,
        /// Its parent.
        parent: Option<UnitId>,
    },
    /// Renames a unit.
    RenameUnit {
        /// The unit.
        id: UnitId,
        /// The new display name.
        name: String,
    },
    /// Moves a unit (and everything below it) under another parent of the right tier.
    MoveUnit {
        /// The unit.
        id: UnitId,
        /// The new parent.
        parent: UnitId,
    },
    /// Registers an actor.
    RegisterActor {
        /// Their id.
        id: ActorId,
        /// Display name.
        name: String,
        /// Person or system.
        kind: ActorKind,
    },
    /// Gives an actor a role at a unit.
    GrantRole {
        /// The actor.
        actor: ActorId,
        /// The role.
        role: Role,
        /// The unit.
        unit: UnitId,
    },
    /// Takes a role at a unit away.
    RevokeRole {
        /// The actor.
        actor: ActorId,
        /// The role.
        role: Role,
        /// The unit.
        unit: UnitId,
    },
    /// Renames and moves a unit in one decision: both or neither (`None` leaves that part
    /// as it is).
    UpdateUnit {
        /// The unit.
        id: UnitId,
        /// The new display name.
        name: Option<String>,
        /// The new parent.
        parent: Option<UnitId>,
    },
    /// Defines a role beyond the built-in ones, which a workflow may then name and an
    /// administrator grant.
    DefineRole {
        /// Its id (a slug: lowercase letters, digits and `_`).
        id: Role,
        /// Its display name.
        name: String,
    },
    /// Retires a unit: refused while it leads open cases or has units below it that are not
    /// retired.
    RetireUnit {
        /// The unit.
        id: UnitId,
        /// The open cases it leads. The engine looks them up before deciding (whatever a
        /// caller gave is replaced), since a decision cannot read the log itself.
        open_cases: Vec<crate::ids::CaseId>,
    },
}

/// A unit was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitCreated {
    /// The unit.
    pub unit: UnitId,
    /// Display name.
    pub name: String,
    /// Tier.
    pub tier: Tier,
    /// Parent.
    pub parent: Option<UnitId>,
}

/// A unit was renamed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitRenamed {
    /// The unit.
    pub unit: UnitId,
    /// The old name.
    pub from: String,
    /// The new name.
    pub to: String,
}

/// A unit moved under another parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitMoved {
    /// The unit.
    pub unit: UnitId,
    /// The old parent.
    pub from: Option<UnitId>,
    /// The new parent.
    pub to: UnitId,
}

/// An actor was registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorRegistered {
    /// The actor.
    pub actor: ActorId,
    /// Display name.
    pub name: String,
    /// Person or system.
    pub kind: ActorKind,
    /// The unit of the administrator who registered them (`None` for the system): which
    /// community sees them before they hold a role there.
    pub registered_at: Option<UnitId>,
}

/// An actor was registered (version 1, before the registering unit was recorded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorRegisteredV1 {
    /// The actor.
    pub actor: ActorId,
    /// Display name.
    pub name: String,
    /// Person or system.
    pub kind: ActorKind,
}

impl ActorRegistered {
    /// A version-1 registration: who registered them was not recorded, so they are seen by
    /// the communities where they hold a role.
    pub fn from_v1(old: ActorRegisteredV1) -> Self {
        Self {
            actor: old.actor,
            name: old.name,
            kind: old.kind,
            registered_at: None,
        }
    }
}

/// A role was defined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDefined {
    /// The role.
    pub role: Role,
    /// Its display name.
    pub name: String,
}

/// A unit was retired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitRetired {
    /// The unit.
    pub unit: UnitId,
}

/// A role was granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleGranted {
    /// The actor.
    pub actor: ActorId,
    /// The role.
    pub role: Role,
    /// The unit.
    pub unit: UnitId,
}

/// A role was revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleRevoked {
    /// The actor.
    pub actor: ActorId,
    /// The role.
    pub role: Role,
    /// The unit.
    pub unit: UnitId,
}

domain_events! {
    /// The events of the org chart.
    pub enum OrgEvent {
        /// A unit was created.
        UnitCreated(UnitCreated) = "UnitCreated" v 1,
        /// A unit was renamed.
        UnitRenamed(UnitRenamed) = "UnitRenamed" v 1,
        /// A unit moved.
        UnitMoved(UnitMoved) = "UnitMoved" v 1,
        /// An actor was registered.
        ActorRegistered(ActorRegistered) = "ActorRegistered" v 2 {
            v 1 => ActorRegisteredV1 via ActorRegistered::from_v1,
        },
        /// A role was granted.
        RoleGranted(RoleGranted) = "RoleGranted" v 1,
        /// A role was revoked.
        RoleRevoked(RoleRevoked) = "RoleRevoked" v 1,
        /// A role was defined.
        RoleDefined(RoleDefined) = "RoleDefined" v 1,
        /// A unit was retired.
        UnitRetired(UnitRetired) = "UnitRetired" v 1,
    }
}

/// The longest display name of a unit or actor, in characters.
const NAME_CHARS_MAX: usize = 200;

fn check_name(field: &str, name: &str) -> Result<(), Rejection> {
    super::text::check(field, name, super::text::Lines::One)?;
    let chars = name.chars().count();
    if chars == 0 || chars > NAME_CHARS_MAX || super::text::is_blank(name) {
        return Err(Rejection::FieldInvalid {
            field: field.to_owned(),
            reason: format!("must be 1 to {NAME_CHARS_MAX} characters, not blank"),
        });
    }
    Ok(())
}

/// Whether `acting` may change the chart at `unit`: the system anywhere, a community
/// administrator within their own subtree.
fn may_administer(
    chart: &OrgChart,
    acting: &Acting,
    unit: &UnitId,
    action: &str,
) -> Result<(), Rejection> {
    chart.check_acting(acting)?;
    if acting.is_system() {
        return Ok(());
    }
    if acting.role.as_str() != roles::COMMUNITY_ADMIN {
        return Err(Rejection::RoleNotAllowed {
            role: acting.role.clone(),
            action: action.to_owned(),
            allowed: vec![
                Role::new(roles::COMMUNITY_ADMIN).expect("valid"),
                Role::new(roles::SYSTEM).expect("valid"),
            ],
        });
    }
    if !chart.is_within(unit, &acting.unit) {
        return Err(Rejection::OutOfScope {
            unit: acting.unit.clone(),
            action: action.to_owned(),
            scope: "the acting unit or a unit below it".to_owned(),
            target: unit.clone(),
        });
    }
    Ok(())
}

fn check_parent(chart: &OrgChart, tier: Tier, parent: Option<&UnitId>) -> Result<(), Rejection> {
    match (tier.parent_tier(), parent) {
        (None, None) => Ok(()),
        (None, Some(p)) => Err(Rejection::invalid(
            "parent",
            format!("{} has no parent, {p} was given", tier.with_article()),
        )),
        (Some(_), None) if !tier.in_chain() => Ok(()),
        (Some(wanted), None) => Err(Rejection::invalid(
            "parent",
            format!("{} needs a parent {wanted}", tier.with_article()),
        )),
        (Some(wanted), Some(p)) => {
            let parent_unit = chart.unit(p).ok_or_else(|| Rejection::NotFound {
                what: "unit",
                id: p.to_string(),
            })?;
            if parent_unit.tier != wanted {
                return Err(Rejection::invalid(
                    "parent",
                    format!(
                        "{} belongs under {}, but {p} is {}",
                        tier.with_article(),
                        wanted.with_article(),
                        parent_unit.tier.with_article()
                    ),
                ));
            }
            Ok(())
        }
    }
}

/// The events of a command to the chart.
fn decide_events(
    chart: &OrgChart,
    command: &OrgCommand,
    acting: &Acting,
) -> Result<Vec<OrgEvent>, Rejection> {
    match command {
        OrgCommand::CreateUnit {
            id,
            name,
            tier,
            parent,
        } => {
            match parent {
                // A unit without a parent is a new top (a community, or a unit outside every
                // community): the store's administrators create those.
                None => {
                    chart.check_acting(acting)?;
                    if !chart.administers_store(acting) {
                        return Err(Rejection::RoleNotAllowed {
                            role: acting.role.clone(),
                            action: "create a unit without a parent (a new community)".to_owned(),
                            allowed: vec![Role::new(roles::COMMUNITY_ADMIN).expect("valid")],
                        });
                    }
                }
                Some(parent) => {
                    may_administer(chart, acting, parent, "create a unit")?;
                    if chart.unit(parent).is_some_and(|u| u.retired) {
                        return Err(Rejection::invalid(
                            "parent",
                            format!("{parent} is retired: nothing is created under it"),
                        ));
                    }
                }
            }
            if !id.is_slug() {
                return Err(Rejection::invalid(
                    "unit",
                    format!(
                        "{id} is not a slug: use lowercase letters, digits, - _ . (at most 64)"
                    ),
                ));
            }
            if chart.unit(id).is_some() {
                return Err(Rejection::AlreadyExists {
                    what: "unit",
                    id: id.to_string(),
                });
            }
            check_name("name", name)?;
            check_parent(chart, *tier, parent.as_ref())?;
            Ok(vec![OrgEvent::UnitCreated(UnitCreated {
                unit: id.clone(),
                name: name.clone(),
                tier: *tier,
                parent: parent.clone(),
            })])
        }
        OrgCommand::RenameUnit { id, name } => {
            let unit = chart.unit(id).ok_or_else(|| Rejection::NotFound {
                what: "unit",
                id: id.to_string(),
            })?;
            may_administer(chart, acting, id, "rename a unit")?;
            check_name("name", name)?;
            if &unit.name == name {
                return Ok(Vec::new());
            }
            Ok(vec![OrgEvent::UnitRenamed(UnitRenamed {
                unit: id.clone(),
                from: unit.name.clone(),
                to: name.clone(),
            })])
        }
        OrgCommand::MoveUnit { id, parent } => {
            let unit = chart.unit(id).ok_or_else(|| Rejection::NotFound {
                what: "unit",
                id: id.to_string(),
            })?;
            may_administer(chart, acting, id, "move a unit")?;
            may_administer(chart, acting, parent, "move a unit")?;
            check_parent(chart, unit.tier, Some(parent))?;
            if chart.unit(parent).is_some_and(|u| u.retired) {
                return Err(Rejection::invalid(
                    "parent",
                    format!("{parent} is retired: nothing is moved under it"),
                ));
            }
            if chart.is_within(parent, id) {
                return Err(Rejection::invalid(
                    "parent",
                    format!("{parent} lies below {id}: the move would make a cycle"),
                ));
            }
            if unit.parent.as_ref() == Some(parent) {
                return Ok(Vec::new());
            }
            Ok(vec![OrgEvent::UnitMoved(UnitMoved {
                unit: id.clone(),
                from: unit.parent.clone(),
                to: parent.clone(),
            })])
        }
        OrgCommand::RegisterActor { id, name, kind } => {
            chart.check_acting(acting)?;
            if !acting.is_system() && acting.role.as_str() != roles::COMMUNITY_ADMIN {
                return Err(Rejection::RoleNotAllowed {
                    role: acting.role.clone(),
                    action: "register an actor".to_owned(),
                    allowed: vec![
                        Role::new(roles::COMMUNITY_ADMIN).expect("valid"),
                        Role::new(roles::SYSTEM).expect("valid"),
                    ],
                });
            }
            if chart.actor(id).is_some() {
                return Err(Rejection::AlreadyExists {
                    what: "actor",
                    id: id.to_string(),
                });
            }
            check_name("name", name)?;
            Ok(vec![OrgEvent::ActorRegistered(ActorRegistered {
                actor: id.clone(),
                name: name.clone(),
                kind: *kind,
                registered_at: (!acting.is_system()).then(|| acting.unit.clone()),
            })])
        }
        OrgCommand::GrantRole { actor, role, unit }
        | OrgCommand::RevokeRole { actor, role, unit } => {
            let granting = matches!(command, OrgCommand::GrantRole { .. });
            let action = if granting {
                "grant a role"
            } else {
                "revoke a role"
            };
            let target = chart.unit(unit).ok_or_else(|| Rejection::NotFound {
                what: "unit",
                id: unit.to_string(),
            })?;
            chart.actor(actor).ok_or_else(|| Rejection::NotFound {
                what: "actor",
                id: actor.to_string(),
            })?;
            // The store's administrators make (and unmake) the first administrators of a
            // new community: a community administrator at a top unit.
            let first_admin = role.as_str() == roles::COMMUNITY_ADMIN
                && target.parent.is_none()
                && chart.administers_store(acting);
            // Actor ids are the store's (a person may hold roles in two communities, a
            // resident of one volunteering in another): any administrator may grant a role
            // in their own subtree to any actor, whichever community registered them.
            if !first_admin {
                may_administer(chart, acting, unit, action)?;
            }
            if role.as_str() == roles::SYSTEM {
                return Err(Rejection::invalid(
                    "role",
                    "the system role is the engine's own and cannot be granted",
                ));
            }
            if !chart.role_exists(role) {
                let known: Vec<String> = chart
                    .roles()
                    .into_iter()
                    .map(|(r, _, _)| r.to_string())
                    .collect();
                return Err(Rejection::invalid(
                    "role",
                    format!("unknown role {role}; known: {}", known.join(", ")),
                ));
            }
            if granting && target.retired {
                return Err(Rejection::invalid(
                    "unit_id",
                    format!("{unit} is retired: no role is granted there"),
                ));
            }
            let held = chart.holds(actor, role, unit);
            let event = match (granting, held) {
                (true, true) | (false, false) => return Ok(Vec::new()),
                (true, false) => OrgEvent::RoleGranted(RoleGranted {
                    actor: actor.clone(),
                    role: role.clone(),
                    unit: unit.clone(),
                }),
                (false, true) => OrgEvent::RoleRevoked(RoleRevoked {
                    actor: actor.clone(),
                    role: role.clone(),
                    unit: unit.clone(),
                }),
            };
            Ok(vec![event])
        }
        OrgCommand::UpdateUnit { id, name, parent } => {
            let mut events = Vec::new();
            if name.is_none() && parent.is_none() {
                chart.unit(id).ok_or_else(|| Rejection::NotFound {
                    what: "unit",
                    id: id.to_string(),
                })?;
                may_administer(chart, acting, id, "change a unit")?;
            }
            if let Some(name) = name {
                let rename = OrgCommand::RenameUnit {
                    id: id.clone(),
                    name: name.clone(),
                };
                events.extend(decide_events(chart, &rename, acting)?);
            }
            if let Some(parent) = parent {
                let to = OrgCommand::MoveUnit {
                    id: id.clone(),
                    parent: parent.clone(),
                };
                events.extend(decide_events(chart, &to, acting)?);
            }
            Ok(events)
        }
        OrgCommand::DefineRole { id, name } => {
            chart.check_acting(acting)?;
            // Roles are the store's: any community's administrators may add one (a role
            // grants nothing by itself; a workflow says what it may do).
            if !acting.is_system() && acting.role.as_str() != roles::COMMUNITY_ADMIN {
                return Err(Rejection::RoleNotAllowed {
                    role: acting.role.clone(),
                    action: "define a role".to_owned(),
                    allowed: vec![Role::new(roles::COMMUNITY_ADMIN).expect("valid")],
                });
            }
            let slug = id.as_str();
            let valid = !slug.is_empty()
                && slug.len() <= 64
                && slug.starts_with(|c: char| c.is_ascii_lowercase())
                && slug
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid {
                return Err(Rejection::invalid(
                    "id",
                    format!("{slug} is not a role id: a lowercase letter, then lowercase letters, digits and _ (at most 64)"),
                ));
            }
            check_name("name", name)?;
            if let Some(existing) = chart.defined_roles.get(id) {
                if existing == name {
                    return Ok(Vec::new());
                }
            }
            if chart.role_exists(id) {
                return Err(Rejection::AlreadyExists {
                    what: "role",
                    id: id.to_string(),
                });
            }
            Ok(vec![OrgEvent::RoleDefined(RoleDefined {
                role: id.clone(),
                name: name.clone(),
            })])
        }
        OrgCommand::RetireUnit { id, open_cases } => {
            let unit = chart.unit(id).ok_or_else(|| Rejection::NotFound {
                what: "unit",
                id: id.to_string(),
            })?;
            may_administer(chart, acting, id, "retire a unit")?;
            if unit.retired {
                return Ok(Vec::new());
            }
            if !acting.is_system() && acting.unit == *id {
                return Err(Rejection::invalid(
                    "id",
                    format!("{id} is the unit you act for: an administrator above it retires it"),
                ));
            }
            let active: Vec<&UnitId> = chart
                .children(id)
                .filter(|c| chart.unit(c).is_some_and(|u| !u.retired))
                .collect();
            if !active.is_empty() {
                return Err(Rejection::invalid(
                    "id",
                    format!(
                        "{id} still has units below it that are not retired: {}; retire or move them first",
                        active.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            if !open_cases.is_empty() {
                return Err(Rejection::invalid(
                    "id",
                    format!(
                        "{id} still leads {} open case(s): {}; dispatch or close them first",
                        open_cases.len(),
                        open_cases
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            Ok(vec![OrgEvent::UnitRetired(UnitRetired {
                unit: id.clone(),
            })])
        }
    }
}

/// The org chart: one stream `org-chart` with every unit, actor and grant, so that parent
/// and cycle checks see everything.
#[derive(Debug, Clone, Copy)]
pub struct Org;

impl Aggregate for Org {
    type Id = ();
    type State = OrgChart;
    type Command = OrgCommand;
    type Event = OrgEvent;

    const KIND: &'static str = "org chart";

    fn stream(_: &()) -> Result<StreamId, Rejection> {
        Ok(org_stream())
    }

    /// Refused with the unit, actor, role or field at fault; a change the chart already
    /// has changes nothing.
    fn decide(
        _: &(),
        chart: &OrgChart,
        command: &OrgCommand,
        ctx: &Context<'_>,
    ) -> Result<Decision<Self>, Rejection> {
        decide_events(chart, command, ctx.acting).map(Decision::events)
    }

    fn apply(chart: &mut OrgChart, event: &OrgEvent, _fold: &Fold<'_>) {
        apply_event(chart, event);
    }

    /// Everyone the chart grants a role, and the system.
    fn may_see(_: &OrgChart, viewer: &Acting, org: &OrgChart) -> bool {
        org.check_acting(viewer).is_ok()
    }
}

/// Applies an org event.
fn apply_event(chart: &mut OrgChart, event: &OrgEvent) {
    match event {
        OrgEvent::UnitCreated(e) => {
            if let Some(parent) = &e.parent {
                chart
                    .children
                    .entry(parent.clone())
                    .or_default()
                    .insert(e.unit.clone());
            }
            chart.units.insert(
                e.unit.clone(),
                Unit {
                    id: e.unit.clone(),
                    name: e.name.clone(),
                    tier: e.tier,
                    parent: e.parent.clone(),
                    retired: false,
                },
            );
            if e.parent.is_none() && e.tier == Tier::Community && chart.first_community.is_none() {
                chart.first_community = Some(e.unit.clone());
            }
        }
        OrgEvent::UnitRenamed(e) => {
            if let Some(unit) = chart.units.get_mut(&e.unit) {
                unit.name = e.to.clone();
            }
        }
        OrgEvent::UnitMoved(e) => {
            if let Some(old) = &e.from {
                if let Some(siblings) = chart.children.get_mut(old) {
                    siblings.remove(&e.unit);
                }
            }
            chart
                .children
                .entry(e.to.clone())
                .or_default()
                .insert(e.unit.clone());
            if let Some(unit) = chart.units.get_mut(&e.unit) {
                unit.parent = Some(e.to.clone());
            }
        }
        OrgEvent::ActorRegistered(e) => {
            chart.actors.insert(
                e.actor.clone(),
                ActorEntry {
                    id: e.actor.clone(),
                    name: e.name.clone(),
                    kind: e.kind,
                    grants: BTreeSet::new(),
                    registered_at: e.registered_at.clone(),
                },
            );
        }
        OrgEvent::RoleGranted(e) => {
            if let Some(actor) = chart.actors.get_mut(&e.actor) {
                actor.grants.insert((e.role.clone(), e.unit.clone()));
            }
        }
        OrgEvent::RoleRevoked(e) => {
            if let Some(actor) = chart.actors.get_mut(&e.actor) {
                actor.grants.remove(&(e.role.clone(), e.unit.clone()));
            }
        }
        OrgEvent::RoleDefined(e) => {
            chart.defined_roles.insert(e.role.clone(), e.name.clone());
        }
        OrgEvent::UnitRetired(e) => {
            if let Some(unit) = chart.units.get_mut(&e.unit) {
                unit.retired = true;
            }
        }
    }
}
