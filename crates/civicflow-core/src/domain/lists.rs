//! The three lists (三张清单) of the business-district alliance: resources (资源清单) the
//! alliance's members offer, needs (需求清单) it has found, and projects (项目清单) that match
//! the two. Joint-meeting resolutions update them; each item links to the cases that resolved
//! or used it. Each item is a stream of its own.

use serde::{Deserialize, Serialize};

use super::aggregate::{Aggregate, Decision, Fold};
use super::context::Context;
use super::events::domain_events;
use super::org::{roles, Acting, OrgChart};
use super::rejection::Rejection;
use crate::clock::Timestamp;
use crate::ids::{CaseId, ListItemId, Role, UnitId, Version};

/// Which of the three lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListKind {
    /// 资源清单.
    Resources,
    /// 需求清单.
    Needs,
    /// 项目清单.
    Projects,
}

/// An item of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListItemState {
    /// The item.
    pub id: ListItemId,
    /// Its list.
    pub list: ListKind,
    /// Title.
    pub title: String,
    /// Details.
    pub description: String,
    /// The unit that offers, needs or runs it.
    pub unit: UnitId,
    /// Cases linked to it (resolutions, activities).
    pub cases: Vec<CaseId>,
    /// Whether it was retired.
    pub retired: bool,
    /// When it was added.
    pub added_at: Timestamp,
    /// The version of its stream this state is as of.
    pub version: Option<Version>,
}

/// A command about a list item.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ListCommand {
    /// Add an item.
    Add {
        /// The new item's id (minted by the engine).
        item: ListItemId,
        /// The list.
        list: ListKind,
        /// Title.
        title: String,
        /// Details.
        description: String,
        /// The unit that offers, needs or runs it.
        unit: UnitId,
    },
    /// Change the title, the details or both (`None` keeps what the item has); the same
    /// text again changes nothing.
    Update {
        /// The new title.
        title: Option<String>,
        /// The new details.
        description: Option<String>,
    },
    /// Link a case (a joint-meeting resolution, an activity).
    Link {
        /// The case.
        case: CaseId,
    },
    /// Retire the item (an item retired already stays as it is).
    Retire {
        /// Why.
        reason: String,
    },
}

/// An item was added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListItemAdded {
    /// The item.
    pub item: ListItemId,
    /// The list.
    pub list: ListKind,
    /// Title.
    pub title: String,
    /// Details.
    pub description: String,
    /// The unit.
    pub unit: UnitId,
    /// When.
    pub at: Timestamp,
}

/// An item was changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListItemUpdated {
    /// New title.
    pub title: String,
    /// New details.
    pub description: String,
}

/// A case was linked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListItemLinked {
    /// The case.
    pub case: CaseId,
}

/// An item was retired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListItemRetired {
    /// Why.
    pub reason: String,
}

domain_events! {
    /// The events of a list item.
    pub enum ListEvent {
        /// Added.
        Added(ListItemAdded) = "ListItemAdded" v 1,
        /// Changed.
        Updated(ListItemUpdated) = "ListItemUpdated" v 1,
        /// A case linked.
        Linked(ListItemLinked) = "ListItemLinked" v 1,
        /// Retired.
        Retired(ListItemRetired) = "ListItemRetired" v 1,
    }
}

/// The roles that edit the lists: the community's administrators and grid workers, for
/// items of their unit or a unit below it.
pub const EDITORS: &[&str] = &[roles::COMMUNITY_ADMIN, roles::GRID_WORKER];

fn check_editor(unit: &UnitId, ctx: &Context<'_>) -> Result<(), Rejection> {
    ctx.org.check_acting(ctx.acting)?;
    if ctx.acting.is_system() {
        return Ok(());
    }
    if !EDITORS.contains(&ctx.acting.role.as_str()) {
        return Err(Rejection::RoleNotAllowed {
            role: ctx.acting.role.clone(),
            action: "edit the lists".into(),
            allowed: EDITORS
                .iter()
                .map(|r| Role::new(*r).expect("valid"))
                .collect(),
        });
    }
    if !ctx.org.is_within(unit, &ctx.acting.unit) {
        return Err(Rejection::OutOfScope {
            unit: ctx.acting.unit.clone(),
            action: "edit the lists".into(),
            scope: "the acting unit or a unit below it".into(),
            target: unit.clone(),
        });
    }
    Ok(())
}

/// Checks a list item's free text by the one rule for texts (`domain::text`); its description
/// is its one text of several lines, a title and a reason are one line.
fn check_text(field: &str, text: &str, max: usize, required: bool) -> Result<(), Rejection> {
    let lines = if field == "description" {
        super::text::Lines::Many
    } else {
        super::text::Lines::One
    };
    super::text::check(field, text, lines)?;
    if required && super::text::is_blank(text) {
        return Err(Rejection::FieldMissing {
            action: "list".into(),
            field: field.into(),
        });
    }
    if text.chars().count() > max {
        return Err(Rejection::FieldInvalid {
            field: field.into(),
            reason: format!("at most {max} characters"),
        });
    }
    Ok(())
}

/// The events of a command about the list item `id`.
fn decide_events(
    id: &ListItemId,
    state: Option<&ListItemState>,
    command: &ListCommand,
    ctx: &Context<'_>,
) -> Result<Vec<ListEvent>, Rejection> {
    let not_found = || Rejection::NotFound {
        what: "list item",
        id: id.to_string(),
    };
    match (state, command) {
        (
            None,
            ListCommand::Add {
                item,
                list,
                title,
                description,
                unit,
            },
        ) => {
            if ctx.org.unit(unit).is_none() {
                return Err(Rejection::NotFound {
                    what: "unit",
                    id: unit.to_string(),
                });
            }
            check_editor(unit, ctx)?;
            check_text("title", title, 200, true)?;
            check_text("description", description, 4000, false)?;
            Ok(vec![ListEvent::Added(ListItemAdded {
                item: *item,
                list: *list,
                title: title.trim().to_owned(),
                description: description.trim().to_owned(),
                unit: unit.clone(),
                at: ctx.now,
            })])
        }
        (Some(state), ListCommand::Add { .. }) => Err(Rejection::AlreadyExists {
            what: "list item",
            id: state.id.to_string(),
        }),
        (None, _) => Err(not_found()),
        (Some(state), command) => {
            // An item the caller may not see is answered as one that does not exist, before
            // anything else is judged: a write tells no more than a read (`item_visible`).
            if !item_visible(&state.unit, ctx.acting, ctx.org) {
                return Err(not_found());
            }
            check_editor(&state.unit, ctx)?;
            if state.retired {
                if matches!(command, ListCommand::Retire { .. }) {
                    return Ok(Vec::new());
                }
                return Err(Rejection::invalid(
                    "item",
                    format!("list item {} is retired", state.id),
                ));
            }
            match command {
                ListCommand::Update { title, description } => {
                    let title = title.as_deref().unwrap_or(&state.title);
                    let description = description.as_deref().unwrap_or(&state.description);
                    check_text("title", title, 200, true)?;
                    check_text("description", description, 4000, false)?;
                    let (title, description) = (title.trim(), description.trim());
                    if title == state.title && description == state.description {
                        return Ok(Vec::new());
                    }
                    Ok(vec![ListEvent::Updated(ListItemUpdated {
                        title: title.to_owned(),
                        description: description.to_owned(),
                    })])
                }
                ListCommand::Link { case } if state.cases.contains(case) => Ok(Vec::new()),
                ListCommand::Link { case } => {
                    Ok(vec![ListEvent::Linked(ListItemLinked { case: *case })])
                }
                ListCommand::Retire { reason } => {
                    check_text("reason", reason, 1000, true)?;
                    Ok(vec![ListEvent::Retired(ListItemRetired {
                        reason: reason.trim().to_owned(),
                    })])
                }
                ListCommand::Add { .. } => Err(Rejection::AlreadyExists {
                    what: "list item",
                    id: state.id.to_string(),
                }),
            }
        }
    }
}

/// A list item: one stream `list-<uuid>` per item of the three lists.
#[derive(Debug, Clone, Copy)]
pub struct ListItem;

impl Aggregate for ListItem {
    type Id = ListItemId;
    type State = Option<ListItemState>;
    type Command = ListCommand;
    type Event = ListEvent;

    const KIND: &'static str = "list item";

    fn stream(id: &ListItemId) -> Result<crate::ids::StreamId, Rejection> {
        Ok(id.stream())
    }

    fn decide(
        id: &ListItemId,
        state: &Option<ListItemState>,
        command: &ListCommand,
        ctx: &Context<'_>,
    ) -> Result<Decision<Self>, Rejection> {
        decide_events(id, state.as_ref(), command, ctx).map(Decision::events)
    }

    fn apply(state: &mut Option<ListItemState>, event: &ListEvent, fold: &Fold<'_>) {
        *state = apply_event(state.take(), event, fold.version);
    }

    /// A linked case must be one the linking caller can see.
    fn cases_named(command: &ListCommand) -> Vec<(String, CaseId)> {
        match command {
            ListCommand::Link { case } => vec![("case".to_owned(), *case)],
            _ => Vec::new(),
        }
    }

    /// The lists are the community's: everyone of the item's community sees it.
    fn may_see(state: &Option<ListItemState>, viewer: &Acting, org: &OrgChart) -> bool {
        state
            .as_ref()
            .is_some_and(|item| item_visible(&item.unit, viewer, org))
    }
}

/// Whether an item of `unit` is visible to `viewer`: the system, and anyone acting in the
/// item's community.
pub fn item_visible(unit: &UnitId, viewer: &Acting, org: &OrgChart) -> bool {
    viewer.is_system() || org.same_community(unit, &viewer.unit)
}

/// Folds an event into an item's state.
fn apply_event(
    state: Option<ListItemState>,
    event: &ListEvent,
    version: Version,
) -> Option<ListItemState> {
    let mut state = match (state, event) {
        (None, ListEvent::Added(e)) => ListItemState {
            id: e.item,
            list: e.list,
            title: e.title.clone(),
            description: e.description.clone(),
            unit: e.unit.clone(),
            cases: Vec::new(),
            retired: false,
            added_at: e.at,
            version: None,
        },
        (None, _) => return None,
        (Some(state), _) => state,
    };
    match event {
        ListEvent::Added(_) => {}
        ListEvent::Updated(e) => {
            state.title = e.title.clone();
            state.description = e.description.clone();
        }
        ListEvent::Linked(e) => state.cases.push(e.case),
        ListEvent::Retired(_) => state.retired = true,
    }
    state.version = Some(version);
    Some(state)
}
