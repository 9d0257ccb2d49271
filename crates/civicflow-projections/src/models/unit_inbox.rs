//! Unit inboxes (`unit_inbox`): what each unit must act on now, ordered by deadline.
//!
//! A unit's inbox holds
//!
//! - every **open case it leads** (主办) **or co-handles** (协办), with the actions of the
//!   case's current stage that the unit may take, read from the case's pinned definition, and
//!   for each action the roles that may take it. The lead gets the actions of scope `any`,
//!   `subtree`, `lead` and `handler`; a co-handler those of scope `any` and `handler` (a
//!   `subtree` action would need the co-handler to lie above the lead, which the inbox does not
//!   know; the engine still allows it). Actions of scope `requester` belong to a person, not
//!   to a unit, and are left out. A case whose stage offers the unit nothing stays in the inbox
//!   with no actions (it is still the unit's case: it waits on the requester, say);
//! - every **directive part** of the unit not yet reported, with `acknowledge` (until
//!   acknowledged) and `report`, for the roles that may respond to a directive.
//!
//! Items are ordered by the due time of the running deadline, earliest first; items without a
//! deadline come last; ties by item id.
//!
//! # Keys
//!
//! | table | key | row |
//! |---|---|---|
//! | [`ITEMS`] `item` | unit · `0x00` · due (u64 BE micros, `u64::MAX` without a deadline) · item id | [`InboxItem`] |
//! | [`CASES`] `case` | case id (16 bytes) | [`InboxCase`]: what the items derive from, and the item keys it occupies |
//! | [`PARTS`] `part` | directive id (16) · part index (u32 BE) | [`InboxPart`], likewise |
//! | [`DIRECTIVES`] `directive` | directive id (16) | its title |
//!
//! An item id is `0x01` · case id, or `0x02` · directive id · part index (u32 BE). Unit ids
//! hold no control characters, so `unit · 0x00` is a prefix of that unit's keys and of no other
//! unit's. A unit's inbox is one ordered prefix scan. When a case changes (stage, lead,
//! co-handlers, deadline), its items are rebuilt from its [`InboxCase`] row, and the keys it
//! occupied before that are no longer wanted are removed.

use std::collections::HashMap;
use std::sync::Mutex;

use civicflow_core::domain::case::CaseEvent;
use civicflow_core::domain::directive::{self, DirectiveEvent, PartEvent};
use civicflow_core::domain::workflow::{
    Definition, DefinitionRef, DefinitionRegistry, Definitions, Scope,
};
use civicflow_core::{CaseId, DirectiveId, Role, Timestamp, UnitId};
use serde::{Deserialize, Serialize};

use super::page::{scan_filtered, Page, Paged, Step};
use super::{follow_deadline_marked, follow_handlers, time_key};
use crate::{Decoded, Event, Projection, ProjectionError, Table, Tx, View};

/// The projection's name.
pub const NAME: &str = "unit_inbox";

/// The inboxes: unit · 0 · due · item id → [`InboxItem`].
pub const ITEMS: Table<InboxItem> = Table::new("item");
/// Cases: case id → [`InboxCase`].
pub const CASES: Table<InboxCase> = Table::new("case");
/// Directive parts: directive id · index → [`InboxPart`].
pub const PARTS: Table<InboxPart> = Table::new("part");
/// Directive titles: directive id → title.
pub const DIRECTIVES: Table<String> = Table::new("directive");

/// What an inbox item is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Subject {
    /// A case.
    Case(CaseId),
    /// One unit's part of a directive.
    Part {
        /// The directive.
        directive: DirectiveId,
        /// The part's index.
        index: u32,
    },
}

impl Subject {
    /// The item id as key bytes: `0x01` · case id, or `0x02` · directive id · index (BE).
    pub fn key_bytes(&self) -> Vec<u8> {
        match self {
            Subject::Case(case) => {
                let mut key = Vec::with_capacity(17);
                key.push(1);
                key.extend_from_slice(case.as_bytes());
                key
            }
            Subject::Part { directive, index } => {
                let mut key = Vec::with_capacity(21);
                key.push(2);
                key.extend_from_slice(directive.as_bytes());
                key.extend_from_slice(&index.to_be_bytes());
                key
            }
        }
    }
}

/// How the unit comes to have the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// It leads the case (主办).
    Lead,
    /// It co-handles the case (协办).
    CoHandler,
    /// The directive part is its own.
    Assignee,
}

/// An action the unit can take on an item, and who may take it (see [`Actions::expanded`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxAction {
    /// The action's id (`sign_for`, `reply`, …; `acknowledge` or `report` for a directive).
    pub action: String,
    /// The roles that may take it.
    pub roles: Vec<Role>,
}

/// The actions a unit can take on an item and the roles that may take each, stored compactly:
/// every role once, each action with the set of its roles as bits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actions {
    /// Every role that may take at least one of the actions, in order of first appearance
    /// (at most 64: roles past the 64th of one stage are not listed).
    pub roles: Vec<Role>,
    /// Each action's id with its roles: bit `i` stands for `roles[i]`.
    pub actions: Vec<(String, u64)>,
}

impl Actions {
    fn push(&mut self, action: &str, roles: &[Role]) {
        let mut bits = 0u64;
        for role in roles {
            let index = match self.roles.iter().position(|r| r == role) {
                Some(i) => i,
                None if self.roles.len() < 64 => {
                    self.roles.push(role.clone());
                    self.roles.len() - 1
                }
                None => continue,
            };
            bits |= 1 << index;
        }
        self.actions.push((action.to_owned(), bits));
    }

    /// Whether there is no action.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// The actions' ids, in the definition's order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.actions.iter().map(|(id, _)| id.as_str())
    }

    /// The roles that may take `action` (none for an action that is not there), in the order
    /// of [`Actions::roles`].
    pub fn roles_of(&self, action: &str) -> Vec<&Role> {
        self.actions
            .iter()
            .find(|(id, _)| id == action)
            .map(|(_, bits)| {
                self.roles
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| bits & (1 << i) != 0)
                    .map(|(_, r)| r)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether someone acting in `role` may take at least one of the actions.
    pub fn allow(&self, role: &Role) -> bool {
        self.roles.contains(role)
    }

    /// Each action with its roles spelled out.
    pub fn expanded(&self) -> Vec<InboxAction> {
        self.ids()
            .map(|id| InboxAction {
                action: id.to_owned(),
                roles: self.roles_of(id).into_iter().cloned().collect(),
            })
            .collect()
    }
}

/// One item of a unit's inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxItem {
    /// The case or directive part.
    pub subject: Subject,
    /// The case's or the directive's title.
    pub title: String,
    /// The case's workflow (`None` for a directive part).
    pub workflow: Option<DefinitionRef>,
    /// The case's stage; for a part `assigned` or `acknowledged`.
    pub stage: String,
    /// Why the unit has it.
    pub relation: Relation,
    /// When the running deadline falls due (`None`: no deadline).
    pub due_at: Option<Timestamp>,
    /// Whether the due time is provisional (counted without a year's calendar data).
    pub provisional: bool,
    /// What the unit can do now, and who may do it.
    pub actions: Actions,
}

impl InboxItem {
    /// Whether someone acting in `role` may take at least one of the item's actions.
    pub fn actionable_by(&self, role: &Role) -> bool {
        self.actions.allow(role)
    }
}

/// What the inbox keeps of a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxCase {
    /// Its workflow.
    pub workflow: DefinitionRef,
    /// Title.
    pub title: String,
    /// Stage.
    pub stage: String,
    /// Closed.
    pub closed: bool,
    /// Lead unit.
    pub lead: UnitId,
    /// Co-handling units, in id order.
    pub co_handlers: Vec<UnitId>,
    /// The running deadline's due time.
    pub due_at: Option<Timestamp>,
    /// The running deadline's number (0: none).
    pub deadline_seq: u32,
    /// Whether the running deadline is provisional.
    pub provisional: bool,
    /// The item keys the case occupies now.
    pub keys: Vec<Vec<u8>>,
}

/// What the inbox keeps of a directive part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxPart {
    /// The unit.
    pub unit: UnitId,
    /// The directive's title.
    pub title: String,
    /// The deadline's due time.
    pub due_at: Option<Timestamp>,
    /// Whether its due time is provisional.
    pub provisional: bool,
    /// Acknowledged.
    pub acknowledged: bool,
    /// Reported done (it has left the inbox).
    pub reported: bool,
    /// The item key it occupies now.
    pub key: Option<Vec<u8>>,
}

/// Per definition and stage: the actions of the lead and of a co-handler.
type StageActions = HashMap<DefinitionRef, HashMap<String, [Actions; 2]>>;

/// The unit inbox projection. It reads the actions of each stage from the definitions.
#[derive(Debug)]
pub struct UnitInbox {
    definitions: Definitions,
    /// The actions of a stage for a relation, worked out once per definition, stage and
    /// relation (definitions are immutable once registered).
    stage_actions: Mutex<StageActions>,
    /// A directive part's actions: before and after it is acknowledged.
    part_actions: [Actions; 2],
}

impl UnitInbox {
    /// The projection, reading actions from `definitions` (the engine's registry).
    pub fn new(definitions: impl Into<Definitions>) -> Self {
        let responders: Vec<Role> = directive::RESPONDERS
            .iter()
            .filter_map(|r| Role::new(*r).ok())
            .collect();
        let mut unacknowledged = Actions::default();
        unacknowledged.push("acknowledge", &responders);
        unacknowledged.push("report", &responders);
        let mut acknowledged = Actions::default();
        acknowledged.push("report", &responders);
        Self {
            definitions: definitions.into(),
            stage_actions: Mutex::new(HashMap::new()),
            part_actions: [unacknowledged, acknowledged],
        }
    }

    /// The actions of `stage` of `workflow` for a unit in `relation` to the case.
    fn actions(&self, workflow: &DefinitionRef, stage: &str, relation: Relation) -> Actions {
        let index = usize::from(relation != Relation::Lead);
        let mut cache = self
            .stage_actions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(known) = cache.get(workflow).and_then(|stages| stages.get(stage)) {
            return known[index].clone();
        }
        // A definition not known yet (published on another instance, not learnt here yet)
        // has no actions now, and is not remembered as having none.
        let Some(definition) = self.definitions.current().get(workflow).cloned() else {
            return Actions::default();
        };
        let both = [
            stage_actions(&definition, stage, Relation::Lead),
            stage_actions(&definition, stage, Relation::CoHandler),
        ];
        let actions = both[index].clone();
        cache
            .entry(workflow.clone())
            .or_default()
            .insert(stage.to_owned(), both);
        actions
    }

    fn part_item(&self, subject: Subject, row: &InboxPart) -> InboxItem {
        InboxItem {
            subject,
            title: row.title.clone(),
            workflow: None,
            stage: if row.acknowledged {
                "acknowledged"
            } else {
                "assigned"
            }
            .into(),
            relation: Relation::Assignee,
            due_at: row.due_at,
            provisional: row.provisional,
            actions: self.part_actions[usize::from(row.acknowledged)].clone(),
        }
    }

    /// The items a case puts in inboxes now.
    fn case_items(&self, case: CaseId, row: &InboxCase) -> Vec<(Vec<u8>, InboxItem)> {
        if row.closed {
            return Vec::new();
        }
        let subject = Subject::Case(case);
        let mut items = Vec::with_capacity(1 + row.co_handlers.len());
        let units = std::iter::once((&row.lead, Relation::Lead))
            .chain(row.co_handlers.iter().map(|u| (u, Relation::CoHandler)));
        for (unit, relation) in units {
            let actions = self.actions(&row.workflow, &row.stage, relation);
            items.push((
                item_key(unit, row.due_at, &subject),
                InboxItem {
                    subject,
                    title: row.title.clone(),
                    workflow: Some(row.workflow.clone()),
                    stage: row.stage.clone(),
                    relation,
                    due_at: row.due_at,
                    provisional: row.provisional,
                    actions,
                },
            ));
        }
        items
    }

    fn apply_case(
        &self,
        id: CaseId,
        event: &CaseEvent,
        tx: &mut Tx<'_>,
    ) -> Result<(), ProjectionError> {
        let (old, new) = {
            let mut entry = tx.entry(&CASES, id.as_bytes())?;
            let row = if let CaseEvent::Opened(e) = event {
                let closed = self
                    .definitions
                    .current()
                    .get(&e.workflow)
                    .is_some_and(|d| d.is_terminal(&e.stage));
                let fresh = InboxCase {
                    workflow: e.workflow.clone(),
                    title: e.title.clone(),
                    stage: e.stage.clone(),
                    closed,
                    lead: e.unit.clone(),
                    co_handlers: Vec::new(),
                    due_at: None,
                    deadline_seq: 0,
                    provisional: false,
                    keys: Vec::new(),
                };
                entry.or_insert_with(|| fresh)
            } else {
                let Some(row) = entry.get_mut() else {
                    return Ok(());
                };
                if !change_case(row, event, &self.definitions.current()) {
                    return Ok(());
                }
                row
            };
            let new = self.case_items(id, row);
            let old =
                std::mem::replace(&mut row.keys, new.iter().map(|(k, _)| k.clone()).collect());
            (old, new)
        };
        replace_items(tx, old, new)
    }

    fn apply_part(
        &self,
        directive: DirectiveId,
        index: u32,
        event: &PartEvent,
        tx: &mut Tx<'_>,
    ) -> Result<(), ProjectionError> {
        let part_key = part_row_key(&directive, index);
        let title = match event {
            PartEvent::Assigned(_) => tx
                .get(&DIRECTIVES, directive.as_bytes())?
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        };
        let (old, new) = {
            let mut entry = tx.entry(&PARTS, &part_key)?;
            let row = match event {
                PartEvent::Assigned(e) => entry.or_insert_with(|| InboxPart {
                    unit: e.part.unit.clone(),
                    title,
                    due_at: None,
                    provisional: false,
                    acknowledged: false,
                    reported: false,
                    key: None,
                }),
                other => {
                    let Some(row) = entry.get_mut() else {
                        return Ok(());
                    };
                    match other {
                        PartEvent::DeadlineSet(e) => {
                            row.due_at = Some(e.due_at);
                            row.provisional = e
                                .basis
                                .as_ref()
                                .is_some_and(|b| b.calendar.is_provisional());
                        }
                        PartEvent::DeadlineRecomputed(e) => {
                            row.due_at = Some(e.due_at);
                            row.provisional = e.calendar.is_provisional();
                        }
                        PartEvent::Acknowledged(_) => row.acknowledged = true,
                        PartEvent::Reported(_) => row.reported = true,
                        _ => return Ok(()),
                    }
                    row
                }
            };
            let subject = Subject::Part { directive, index };
            let new = if row.reported {
                Vec::new()
            } else {
                vec![(
                    item_key(&row.unit, row.due_at, &subject),
                    self.part_item(subject, row),
                )]
            };
            let old = std::mem::replace(&mut row.key, new.first().map(|(k, _)| k.clone()));
            (old.into_iter().collect::<Vec<_>>(), new)
        };
        replace_items(tx, old, new)
    }
}

/// Applies a case event to the inbox's case row; whether anything the items show changed.
fn change_case(row: &mut InboxCase, event: &CaseEvent, definitions: &DefinitionRegistry) -> bool {
    match event {
        CaseEvent::ActionTaken(e) => {
            let closed = definitions
                .get(&row.workflow)
                .is_some_and(|d| d.is_terminal(&e.to));
            if e.to == row.stage && closed == row.closed {
                return false;
            }
            row.stage.clone_from(&e.to);
            row.closed = closed;
        }
        CaseEvent::Migrated(e) => row.workflow = e.to.clone(),
        other => {
            if let Some(changed) = follow_handlers(other, &mut row.lead, &mut row.co_handlers) {
                if let CaseEvent::Reopened(_) = other {
                    row.closed = false;
                }
                return changed;
            }
            return follow_deadline_marked(
                other,
                &mut row.due_at,
                &mut row.deadline_seq,
                &mut row.provisional,
            );
        }
    }
    true
}

/// The actions of `stage` a unit in `relation` to the case may take.
fn stage_actions(definition: &Definition, stage: &str, relation: Relation) -> Actions {
    let mut actions = Actions::default();
    for action in definition.actions_from(stage) {
        let fits = match action.scope {
            Scope::Any | Scope::Handler => true,
            Scope::Subtree | Scope::Lead => relation == Relation::Lead,
            Scope::Requester => false,
        };
        if fits {
            actions.push(&action.id, &action.roles);
        }
    }
    actions
}

/// Removes the keys of `old` that `new` does not hold, and writes `new`.
fn replace_items(
    tx: &mut Tx<'_>,
    old: Vec<Vec<u8>>,
    new: Vec<(Vec<u8>, InboxItem)>,
) -> Result<(), ProjectionError> {
    for key in old {
        if !new.iter().any(|(k, _)| *k == key) {
            tx.delete(&ITEMS, &key);
        }
    }
    for (key, item) in new {
        tx.put(&ITEMS, &key, item)?;
    }
    Ok(())
}

fn unit_prefix(unit: &UnitId) -> Vec<u8> {
    let mut key = Vec::with_capacity(unit.as_str().len() + 1 + 8 + 21);
    key.extend_from_slice(unit.as_str().as_bytes());
    key.push(0);
    key
}

fn item_key(unit: &UnitId, due: Option<Timestamp>, subject: &Subject) -> Vec<u8> {
    let mut key = unit_prefix(unit);
    key.extend_from_slice(&due.map_or(u64::MAX, time_key).to_be_bytes());
    key.extend_from_slice(&subject.key_bytes());
    key
}

fn part_row_key(directive: &DirectiveId, index: u32) -> [u8; 20] {
    let mut key = [0u8; 20];
    key[..16].copy_from_slice(directive.as_bytes());
    key[16..].copy_from_slice(&index.to_be_bytes());
    key
}

/// Whether an event of a case or part stream can change an inbox (decided on the type name,
/// before decoding).
fn relevant(event_type: &str) -> bool {
    matches!(
        event_type,
        "CaseOpened"
            | "ActionTaken"
            | "LeadAssigned"
            | "CoHandlerAdded"
            | "ReturnedToSender"
            | "CaseReopened"
            | "CaseMigrated"
            | "DeadlineSet"
            | "DeadlineRecomputed"
            | "DeadlineMet"
            | "DeadlineMissed"
            | "DirectiveIssued"
            | "PartAssigned"
            | "PartAcknowledged"
            | "PartReported"
    )
}

impl Projection for UnitInbox {
    fn name(&self) -> &'static str {
        NAME
    }

    /// 2: rows and items say whether a due time is provisional, and follow recomputations.
    fn version(&self) -> u32 {
        2
    }

    fn apply(&self, event: &Event, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        let stream = event.stream.as_str();
        if !(stream.starts_with("case-") || stream.starts_with("directive-"))
            || !relevant(event.event_type.as_str())
        {
            return Ok(());
        }
        match event.decoded()? {
            Decoded::Case(id, e) => self.apply_case(*id, e, tx),
            Decoded::Part(directive, index, e) => self.apply_part(*directive, *index, e, tx),
            Decoded::Directive(id, DirectiveEvent::Issued(e)) => {
                tx.put(&DIRECTIVES, id.as_bytes(), e.title.clone())
            }
            _ => Ok(()),
        }
    }
}

/// A page of `unit`'s inbox, ordered by due time (items without a deadline last), then item
/// id. With `role`, only the items where that role may take at least one action.
///
/// Stable like the case board: the cursor is the last key looked at. An item whose deadline
/// changes moves to its new place in the order.
///
/// # Errors
/// [`ProjectionError::Event`] when the cursor is not one of this unit's inbox; otherwise
/// [`ProjectionError`] when a row does not decode or the store fails.
pub fn inbox(
    view: &View<'_>,
    unit: &UnitId,
    role: Option<&Role>,
    page: &Page,
) -> Result<Paged<InboxItem>, ProjectionError> {
    let prefix = unit_prefix(unit);
    if let Some(cursor) = &page.after {
        if !cursor.as_bytes().starts_with(&prefix) {
            return Err(ProjectionError::query(
                "cursor",
                format!("not a cursor of {unit}'s inbox"),
            ));
        }
    }
    scan_filtered(
        view,
        &ITEMS,
        &prefix,
        page.after.as_ref().map(|c| c.as_bytes().to_vec()),
        (page.clamped_limit(), role.is_some()),
        |_, item: InboxItem| match role {
            Some(role) if !item.actionable_by(role) => Step::Skip,
            _ => Step::Keep(item),
        },
    )
}
