//! The three lists (`lists`, 三张清单): resources (资源清单), needs (需求清单) and projects
//! (项目清单), each item with its title, details, unit, linked cases, and whether it was
//! retired.
//!
//! # Figures
//!
//! An item is what the core's fold (the `apply` of [`civicflow_core::domain::lists::ListItem`]) makes of its
//! stream: the latest title and details, the cases in the order they were linked, retired
//! once `ListItemRetired` is applied (with the reason). `updated_at` is when its stream last
//! changed (the log's commit time of the event).
//!
//! # Order and tables
//!
//! A list is read in the order items were added (the time of `ListItemAdded`, then the item
//! id), oldest first. Items added after a page was read come after it, so paging with the
//! cursor never skips or repeats an item.
//!
//! | table | key | row |
//! |---|---|---|
//! | `i` | item id (16 bytes) | [`ListItemRow`] |
//! | `a` | list (1 byte) · added time (8, order-preserving) · item id (16) | `()`: every item |
//! | `l` | the same | `()`: items not retired |
//!
//! Both indexes share the key layout, so a cursor from one is valid in the other. Adding an
//! item writes three rows, linking one, retiring two; events of other streams are skipped on
//! the stream name.

use civicflow_core::domain::lists::{ListEvent, ListKind};
use civicflow_core::{CaseId, ListItemId, Timestamp, UnitId, Version};
use serde::{Deserialize, Serialize};

use super::page::{Page, Paged};
use super::time_key;
use crate::{Decoded, Event, Projection, ProjectionError, Table, Tx, View};

/// The projection's name.
pub const NAME: &str = "lists";

/// An item of one of the three lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListItemRow {
    /// Its list.
    pub list: ListKind,
    /// Title.
    pub title: String,
    /// Details.
    pub description: String,
    /// The unit that offers, needs or runs it.
    pub unit: UnitId,
    /// Cases linked to it, in the order they were linked.
    pub cases: Vec<CaseId>,
    /// Why it was retired (`None`: it is current).
    pub retired: Option<String>,
    /// When it was added.
    pub added_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl ListItemRow {
    /// Whether it was retired.
    pub fn is_retired(&self) -> bool {
        self.retired.is_some()
    }
}

const ITEMS: Table<ListItemRow> = Table::new("i");
const ALL: Table<()> = Table::new("a");
const LIVE: Table<()> = Table::new("l");

/// Key length of the order indexes.
const ORDER_KEY_LEN: usize = 25;

fn kind_byte(kind: ListKind) -> u8 {
    match kind {
        ListKind::Resources => 0,
        ListKind::Needs => 1,
        ListKind::Projects => 2,
    }
}

fn order_key(kind: ListKind, added_at: Timestamp, id: &ListItemId) -> [u8; ORDER_KEY_LEN] {
    let mut key = [0u8; ORDER_KEY_LEN];
    key[0] = kind_byte(kind);
    key[1..9].copy_from_slice(&time_key(added_at).to_be_bytes());
    key[9..].copy_from_slice(id.as_bytes());
    key
}

/// The three lists projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lists;

impl Projection for Lists {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn apply(&self, event: &Event, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        if !event.stream.as_str().starts_with("list-") {
            return Ok(());
        }
        let Decoded::List(id, list_event) = event.decoded()? else {
            return Ok(());
        };
        let key = id.as_bytes();
        if let ListEvent::Added(e) = &list_event {
            // The addition opens the item's stream (the engine creates it so): written without
            // reading what is not there.
            if event.version != Version::FIRST {
                return Ok(());
            }
            tx.put(
                &ITEMS,
                key,
                ListItemRow {
                    list: e.list,
                    title: e.title.clone(),
                    description: e.description.clone(),
                    unit: e.unit.clone(),
                    cases: Vec::new(),
                    retired: None,
                    added_at: e.at,
                    updated_at: event.recorded_at,
                },
            )?;
            let order = order_key(e.list, e.at, id);
            tx.put(&ALL, &order, ())?;
            tx.put(&LIVE, &order, ())?;
            return Ok(());
        }
        let mut retired_order = None;
        {
            let mut entry = tx.entry(&ITEMS, key)?;
            let Some(item) = entry.get_mut() else {
                // An event of an item never added changes nothing (as the core's fold).
                return Ok(());
            };
            item.updated_at = event.recorded_at;
            match &list_event {
                ListEvent::Updated(e) => {
                    item.title.clone_from(&e.title);
                    item.description.clone_from(&e.description);
                }
                ListEvent::Linked(e) => item.cases.push(e.case),
                ListEvent::Retired(e) => {
                    if item.retired.is_none() {
                        retired_order = Some(order_key(item.list, item.added_at, id));
                    }
                    item.retired = Some(e.reason.clone());
                }
                _ => {}
            }
        }
        if let Some(order) = retired_order {
            tx.delete(&LIVE, &order);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Queries

/// An item with its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListItem {
    /// The item.
    pub id: ListItemId,
    /// Its row.
    pub row: ListItemRow,
}

/// One of the three lists, in the order items were added, a page at a time; retired items
/// only with `include_retired`. The cursor is the last item returned, so items added between
/// pages come after it and nothing is skipped or repeated.
///
/// # Errors
/// [`ProjectionError`] for a malformed cursor or one of another list, a row that does not
/// decode, or a storage failure.
pub fn list(
    view: &View<'_>,
    kind: ListKind,
    include_retired: bool,
    page: &Page,
) -> Result<Paged<ListItem>, ProjectionError> {
    let limit = page.clamped_limit();
    let prefix = [kind_byte(kind)];
    let after = page
        .after
        .as_ref()
        .map(|c| c.key_in(&prefix, ORDER_KEY_LEN))
        .transpose()?;
    let index = if include_retired { &ALL } else { &LIVE };
    let keys = view.scan(index, &prefix, after, limit)?;
    let mut items = Vec::with_capacity(keys.len());
    for (key, ()) in &keys {
        let raw = key
            .get(9..ORDER_KEY_LEN)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .ok_or_else(|| ProjectionError::event("a list index key of the wrong size"))?;
        if let Some(row) = view.get(&ITEMS, &raw)? {
            items.push(ListItem {
                id: ListItemId::from_bytes(raw),
                row,
            });
        }
    }
    Ok(Paged::from_keys(items, &keys, limit))
}

/// An item of any list (`None`: no such item).
///
/// # Errors
/// [`ProjectionError`] when the row does not decode or storage fails.
pub fn item(view: &View<'_>, id: ListItemId) -> Result<Option<ListItemRow>, ProjectionError> {
    view.get(&ITEMS, id.as_bytes())
}
